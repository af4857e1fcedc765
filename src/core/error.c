/* error.c — names and messages for the negative errno values simul returns. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "simul.h"

#define E(x) {x, #x}
static const struct {
    int code;
    const char *name;
} names[] = {
    E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG), E(EBADF), E(ECHILD),
    E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST), E(ENODEV), E(EINVAL),
    E(ENFILE), E(EMFILE), E(ENOSPC), E(EPIPE), E(ERANGE), E(EDEADLK), E(ENAMETOOLONG),
    E(ENOSYS), E(ENOTEMPTY), E(ELOOP), E(ENOMSG), E(EPROTO), E(EBADMSG), E(EOVERFLOW),
    E(EMSGSIZE), E(EPROTONOSUPPORT), E(EOPNOTSUPP), E(EAFNOSUPPORT), E(EADDRINUSE),
    E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH), E(ECONNABORTED), E(ECONNRESET), E(ENOBUFS),
    E(EISCONN), E(ENOTCONN), E(ESHUTDOWN), E(ETIMEDOUT), E(ECONNREFUSED), E(EHOSTUNREACH),
    E(EALREADY), E(EINPROGRESS), E(ECANCELED), E(ENOTSOCK), E(EDESTADDRREQ), E(ENOTSUP),
};
#undef E

/* |err| without overflowing on INT_MIN (which then matches no code). */
static int magnitude(int err)
{
    return err == INT_MIN ? INT_MAX : err < 0 ? -err : err;
}

const char *simul_errname(int err)
{
    err = magnitude(err);
    if (err == 0)
        return "OK";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == err)
            return names[i].name;
    return "EUNKNOWN";
}

const char *simul_strerror(int err)
{
    err = magnitude(err);
    if (err == 0)
        return "Success";
    if (err == ECANCELED)
        return "Operation cancelled";
    if (err == ETIMEDOUT)
        return "Timed out (deadline passed)";
    /* strerror's table is static in glibc; unknown codes get a fixed text, not a buffer */
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == err)
            return strerror(err);
    return "Unknown error";
}
