/* error.c — names and messages for the negative errno values simul returns. */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
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
    E(EOWNERDEAD), /* a process pool's worker died during a call */
    E(EREMOTEIO), /* a server answered with an error reply (libsimul-redis) */
    E(ENODATA), E(EISDIR), E(ENOTDIR), E(ENOEXEC), E(EPROTOTYPE), E(ETXTBSY), E(EROFS),
    E(EXDEV), E(EFBIG), E(ESPIPE), E(EMLINK), E(ENOTTY), E(EDQUOT), E(ESTALE),
    E(EKEYREJECTED), E(ENOLINK), /* TLS (simul/tls.h): verification failed, truncation */
    E(EIDRM), /* AMQP (simul/amqp.h): the broker cancelled a consumer (its queue was deleted) */
};
#undef E

/* Resolver failures: getaddrinfo's EAI_* codes, carried as SIMUL_EAI(code). */
#define E(x) {x, #x}
static const struct {
    int code;
    const char *name;
} eai_names[] = {
    E(EAI_BADFLAGS), E(EAI_NONAME), E(EAI_AGAIN), E(EAI_FAIL), E(EAI_FAMILY), E(EAI_SOCKTYPE),
    E(EAI_SERVICE), E(EAI_MEMORY), E(EAI_SYSTEM), E(EAI_OVERFLOW),
#ifdef EAI_NODATA
    E(EAI_NODATA),
#endif
#ifdef EAI_ADDRFAMILY
    E(EAI_ADDRFAMILY),
#endif
#ifdef EAI_INPROGRESS
    E(EAI_INPROGRESS), E(EAI_CANCELED), E(EAI_NOTCANCELED), E(EAI_ALLDONE), E(EAI_INTR),
#endif
#ifdef EAI_IDN_ENCODE
    E(EAI_IDN_ENCODE),
#endif
};
#undef E

/* EAI codes are small (glibc: -1..-105, BSDs: 1..15), so SIMUL_EAI values sit far from errno's. */
bool simul_is_eai(int err)
{
    return err <= -(SIMUL_EAI_BASE - 1000) && err >= -(SIMUL_EAI_BASE + 1000) &&
           err != -SIMUL_EAI_BASE;
}

/* The EAI code behind a SIMUL_EAI value (either sign), or 0. */
static int eai_of(int err)
{
    if (err > 0)
        err = -err;
    return simul_is_eai(err) ? err + SIMUL_EAI_BASE : 0;
}

/* |err| without overflowing on INT_MIN (which then matches no code). */
static int magnitude(int err)
{
    return err == INT_MIN ? INT_MAX : err < 0 ? -err : err;
}

const char *simul_errname(int err)
{
    int eai = eai_of(err);
    if (eai) {
        for (size_t i = 0; i < sizeof eai_names / sizeof eai_names[0]; i++)
            if (eai_names[i].code == eai)
                return eai_names[i].name;
        return "EAI_UNKNOWN";
    }
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
    int eai = eai_of(err);
    if (eai)
        return gai_strerror(eai); /* static strings ("Name or service not known") */
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
