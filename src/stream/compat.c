/* compat.c — the 0.1 shapes of the transports' address getters (include/simul/compat.h), kept
 * until 1.0 on top of the current ones: the address is copied out, truncated to *len as
 * getpeername(2) truncates, and *len set to the full length. */
#undef SIMUL_NO_COMPAT
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "simul.h"

static int old_shape(int rc, const struct sockaddr_storage *ss, struct sockaddr *addr,
                     simul_socklen_t *len)
{
    if (rc < 0)
        return rc;
    size_t n = *len < (simul_socklen_t)rc ? *len : (size_t)rc;
    memcpy(addr, ss, n);
    *len = (simul_socklen_t)rc;
    return 0;
}

int simul_transport_get_peername(const simul_transport *t, struct sockaddr *addr,
                                 simul_socklen_t *len)
{
    if (!addr || !len)
        return -EINVAL;
    struct sockaddr_storage ss;
    return old_shape(simul_transport_peername(t, &ss), &ss, addr, len);
}

int simul_transport_get_sockname(const simul_transport *t, struct sockaddr *addr,
                                 simul_socklen_t *len)
{
    if (!addr || !len)
        return -EINVAL;
    struct sockaddr_storage ss;
    return old_shape(simul_transport_sockname(t, &ss), &ss, addr, len);
}

int simul_datagram_transport_get_peername(const simul_datagram_transport *t, struct sockaddr *addr,
                                          simul_socklen_t *len)
{
    if (!addr || !len)
        return -EINVAL;
    struct sockaddr_storage ss;
    return old_shape(simul_datagram_transport_peername(t, &ss), &ss, addr, len);
}

int simul_datagram_transport_get_sockname(const simul_datagram_transport *t, struct sockaddr *addr,
                                          simul_socklen_t *len)
{
    if (!addr || !len)
        return -EINVAL;
    struct sockaddr_storage ss;
    return old_shape(simul_datagram_transport_sockname(t, &ss), &ss, addr, len);
}
