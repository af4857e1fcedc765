/* dns.h — what connect.c shares with dns.c: the EAI-to-simul error mapping and the test that
 * decides whether a lookup can be answered at once, without the resolver's threads. */
#ifndef SIMUL_IO_DNS_H
#define SIMUL_IO_DNS_H

#include <stdbool.h>

struct addrinfo;

/* getaddrinfo's return code as a simul error: 0, a SIMUL_EAI code, -ENOMEM for EAI_MEMORY, or
 * -sys_errno for EAI_SYSTEM (-EIO if errno was 0). */
int simul__eai_error(int eai, int sys_errno);

/* Whether getaddrinfo(host, ...) needs no name service: host NULL, a numeric IPv4/IPv6
 * address, or AI_NUMERICHOST in hints. Such lookups run inline on the caller's thread. */
bool simul__host_is_numeric(const char *host, const struct addrinfo *hints);

#endif
