/* simul/compat.h — the old names of calls renamed when the naming rule was settled (see the
 * opening comment of <simul.h> and docs/asyncio-map.md, "Naming"), so programs written against
 * 0.1 compile unchanged. A renamed call whose shape stayed is a macro for its new name; the
 * transports' address getters, whose shape changed, stay as functions of their own with the old
 * shape. Included by the umbrella <simul.h>; define SIMUL_NO_COMPAT before including it to check
 * that a program uses the new names only. All of this goes away at 1.0. */
#ifndef SIMUL_COMPAT_H
#define SIMUL_COMPAT_H

#ifndef SIMUL_NO_COMPAT

#include "process.h"
#include "stream.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* Lifecycle: a process handle is an I/O handle (pipes, the exit watch), so `_close` ends it, as
 * simul_procpool_close ends a pool. */
#define simul_process_free simul_process_close

/* Getters: simul_<noun>_<property>, no get_ unless asyncio's own method has it, and one shape:
 * an address getter fills a struct sockaddr_storage and returns the length, as
 * simul_stream_peername does. The 0.1 transport getters had getpeername(2)'s shape (addr, *len,
 * 0 on success): they stay, as functions of their own with that shape, until 1.0. */
struct sockaddr;
int simul_transport_get_peername(const simul_transport *t, struct sockaddr *addr,
                                 simul_socklen_t *len);
int simul_transport_get_sockname(const simul_transport *t, struct sockaddr *addr,
                                 simul_socklen_t *len);
int simul_datagram_transport_get_peername(const simul_datagram_transport *t, struct sockaddr *addr,
                                          simul_socklen_t *len);
int simul_datagram_transport_get_sockname(const simul_datagram_transport *t, struct sockaddr *addr,
                                          simul_socklen_t *len);
/* ... and asyncio's Task.get_name, the partner of set_name, keeps its get_. */
#define simul_task_name simul_task_get_name

/* Variants: a suffix names what the variant adds; `_ex` says nothing. This one adds `discard`. */
#define simul_to_thread_ex simul_to_thread_discard

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_NO_COMPAT */

#endif /* SIMUL_COMPAT_H */
