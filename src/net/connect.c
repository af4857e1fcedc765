/* connect.c — where streams and transports get their sockets: TCP connect with Happy Eyeballs,
 * TCP listen on every address of a host (dual-stack, one port for all), Unix stream sockets.
 * Happy Eyeballs runs each attempt as a child task; the caller only starts, waits and harvests,
 * and on every way out cancels and reaps the rest, closing every fd but the winner's. */
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/internal.h"
#include "dns.h"

#define ATTEMPT_DELAY_NS (250 * 1000000LL) /* RFC 8305 "Connection Attempt Delay" */
#define DEFAULT_BACKLOG 511                /* as nginx, and the stream servers */
/* Port "0" on several addresses: the port the first got may be taken on another family. */
#define PORT0_TRIES 3

/* ---- TCP connect ----------------------------------------------------------------------------- */

/* One attempt: the connected fd (TCP_NODELAY set), or the error; never leaves an fd open. */
static int attempt(void *arg)
{
    const struct addrinfo *ai = arg;
    int fd = simul_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return fd;
    int rc = simul_connect(fd, ai->ai_addr, (simul_socklen_t)ai->ai_addrlen);
    if (rc < 0) {
        simul_close(fd);
        return rc;
    }
    int one = 1;
    /* Streams write whole messages: do not hold them back for Nagle. Cannot fail on TCP. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static const struct addrinfo *next_of(const struct addrinfo *ai, int family, bool same)
{
    while (ai && (ai->ai_family == family) != same)
        ai = ai->ai_next;
    return ai;
}

/* RFC 8305 §4: keep getaddrinfo's order within each family, alternate families starting with
 * the family of the first address. Returns the count written to out. */
static size_t interleave(const struct addrinfo *res, const struct addrinfo **out)
{
    int fam = res->ai_family;
    const struct addrinfo *a = next_of(res, fam, true), *b = next_of(res, fam, false);
    size_t k = 0;
    bool take_a = true;
    while (a || b) {
        if ((take_a && a) || !b) {
            out[k++] = a;
            a = next_of(a->ai_next, fam, true);
        } else {
            out[k++] = b;
            b = next_of(b->ai_next, fam, false);
        }
        take_a = !take_a;
    }
    return k;
}

/* The result of a finished attempt; gives its handle back. Never suspends, cannot fail (unlike
 * a join, which would report the caller's own pending cancel first). */
static int take(simul_task *t)
{
    int r = t->result;
    simul__task_release_handle(t);
    return r;
}

/* Cancels the attempts still running and waits for them, shielded (the caller may itself be
 * cancelled); one that connected meanwhile lost the race: closed. */
static void reap(simul_task **pend, size_t npend)
{
    simul_scope shield;
    simul_scope_shield(&shield);
    for (size_t i = 0; i < npend; i++)
        simul__task_cancel_internal(pend[i]);
    for (size_t i = 0; i < npend; i++) {
        simul__task_wait_done(pend[i]);
        int r = take(pend[i]);
        if (r >= 0)
            simul_close(r);
    }
    simul_scope_end(&shield);
}

static int happy_eyeballs(const struct addrinfo **addrs, size_t n)
{
    simul_task **pend = calloc(n, sizeof *pend);
    if (!pend)
        return -ENOMEM;
    simul_task_opts opts = {.name = "tcp-connect-attempt"};
    size_t started = 0, npend = 0;
    int winner = -1, last = -ECONNREFUSED, rc = 0;
    int64_t next_at = 0;
    bool kick = true; /* start the next attempt now (the first, or one just failed) */
    while (winner < 0) {
        if (started < n && (kick || npend == 0 || simul__clock_ns() >= next_at)) {
            simul_task *t;
            int s = simul_task_spawn(&t, attempt, (void *)addrs[started++], &opts);
            if (s < 0) {
                last = s;
                continue; /* kick stays: counts as an attempt that failed at once */
            }
            pend[npend++] = t;
            next_at = simul__clock_ns() + ATTEMPT_DELAY_NS;
            kick = false;
            continue;
        }
        if (npend == 0)
            break; /* every address tried, every attempt failed */
        double timeout = INFINITY;
        if (started < n) {
            int64_t left = next_at - simul__clock_ns();
            timeout = left > 0 ? (double)left / 1e9 : 0;
        }
        rc = simul_wait(pend, npend, SIMUL_FIRST_COMPLETED, timeout);
        if (rc < 0)
            break; /* cancelled, timed out (or -ENOMEM): reap below and report it */
        rc = 0;
        for (size_t i = 0; i < npend;) {
            if (!simul_task_done(pend[i])) {
                i++;
                continue;
            }
            int r = take(pend[i]);
            pend[i] = pend[--npend];
            if (r >= 0 && winner < 0) {
                winner = r;
            } else if (r >= 0) {
                simul_close(r);
            } else {
                last = r;
                kick = true;
            }
        }
    }
    reap(pend, npend);
    free(pend);
    if (rc < 0)
        return rc; /* the loop only breaks on an error before there is a winner */
    return winner >= 0 ? winner : last;
}

int simul_tcp_connect(const char *host, const char *port)
{
    if (!simul__task_require(__func__))
        return -EPERM;
    if (!port)
        return -EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = simul_getaddrinfo(host, port, &hints, &res);
    if (rc < 0)
        return rc;
    size_t n = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n++;
    if (n == 1) {
        rc = attempt(res); /* nothing to race */
    } else {
        const struct addrinfo **order = malloc(n * sizeof *order);
        if (order) {
            rc = happy_eyeballs(order, interleave(res, order));
            free(order);
        } else {
            rc = -ENOMEM;
        }
    }
    simul_freeaddrinfo(res);
    return rc;
}

/* ---- TCP listen ------------------------------------------------------------------------------ */

static int port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

/* A listening socket on ss. v6only: -1 leave as is, else IPV6_V6ONLY's value (best effort: the
 * caller checks what it got). Returns the fd or a negative errno. */
static int listen_one(const struct sockaddr_storage *ss, socklen_t len, int backlog, unsigned flags,
                      int v6only)
{
    int fd = simul_socket(ss->ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int one = 1, rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    if ((flags & SIMUL_LISTEN_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (ss->ss_family == AF_INET6 && v6only >= 0)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, backlog) < 0)
        goto fail;
    return fd;
fail:
    rc = -errno;
    simul_close(fd);
    return rc;
}

/* An address family this host cannot use (no IPv6, or a disabled one): skipped, not fatal. */
static bool unusable(int rc)
{
    return rc == -EAFNOSUPPORT || rc == -EPROTONOSUPPORT || rc == -EADDRNOTAVAIL;
}

/* Listens on addrs[0..n) in order (each with IPV6_V6ONLY set, so families do not collide), all on
 * the port the first one got when the port is 0. Returns the count of fds or an error, with
 * nothing left open on error. */
static int listen_list(struct sockaddr_storage *addrs, const socklen_t *lens, size_t n, int backlog,
                       unsigned flags, int *fds, int max_fds)
{
    int count = 0, last = -EADDRNOTAVAIL, port = port_of(&addrs[0]);
    for (size_t i = 0; i < n && count < max_fds; i++) {
        set_port(&addrs[i], port);
        int fd = listen_one(&addrs[i], lens[i], backlog, flags, 1);
        if (fd < 0 && unusable(fd)) {
            last = fd;
            continue;
        }
        if (fd < 0) {
            while (count > 0)
                simul_close(fds[--count]);
            return fd;
        }
        if (port == 0) {
            struct sockaddr_storage got;
            socklen_t gl = sizeof got;
            if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
                port = port_of(&got);
        }
        fds[count++] = fd;
    }
    return count > 0 ? count : last;
}

/* host NULL/"": one IPv6 socket taking IPv4 too (IPV6_V6ONLY off) when the host has IPv6; an IPv4
 * socket when it has not, or when the IPv6 one could not be made dual-stack. */
static int listen_any(int port, int backlog, unsigned flags, int *fds, int max_fds)
{
    struct sockaddr_storage ss6 = {0}, ss4 = {0};
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss6;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss4;
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_any;
    s6->sin6_port = htons((uint16_t)port);
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_ANY);
    int count = 0;
    int fd = listen_one(&ss6, sizeof *s6, backlog, flags, 0);
    if (fd >= 0) {
        int v6only = 1;
        socklen_t ol = sizeof v6only;
        if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &ol) == 0 && v6only == 0)
            return fds[0] = fd, 1;
        fds[count++] = fd; /* v6-only (bindv6only=1 or a kernel that refuses): add IPv4 */
        if (count == max_fds)
            return count;
        struct sockaddr_storage got;
        socklen_t gl = sizeof got;
        if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
            port = port_of(&got);
    } else if (!unusable(fd)) {
        return fd;
    }
    s4->sin_port = htons((uint16_t)port);
    fd = listen_one(&ss4, sizeof *s4, backlog, flags, -1);
    if (fd < 0 && count > 0 && unusable(fd))
        return count; /* an IPv6-only host */
    if (fd < 0) {
        if (count > 0)
            simul_close(fds[0]);
        return fd;
    }
    fds[count++] = fd;
    return count;
}

/* Resolves for listening: inline for a numeric host (no task needed), else on the resolver. */
static int resolve_passive(const char *host, const char *port, struct addrinfo **res)
{
    struct addrinfo hints = {
        .ai_flags = AI_PASSIVE, .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (!simul__host_is_numeric(host, &hints))
        return simul_getaddrinfo(host, port, &hints, res);
    errno = 0;
    int eai = getaddrinfo(host, port, &hints, res);
    if (eai)
        *res = NULL;
    return simul__eai_error(eai, errno);
}

int simul_tcp_listen(const char *host, const char *port, int backlog, unsigned flags, int *fds,
                     int max_fds)
{
    if (!fds || max_fds <= 0 || (flags & ~SIMUL_LISTEN_REUSEPORT))
        return -EINVAL;
    if (!port)
        port = "0";
    if (backlog <= 0)
        backlog = DEFAULT_BACKLOG;
    bool any = !host || !*host;
    struct addrinfo *res;
    int rc = resolve_passive(any ? NULL : host, port, &res);
    if (rc < 0)
        return rc;
    /* Unique addresses (hosts files often list one address twice), in getaddrinfo's order. */
    size_t n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n++;
    struct sockaddr_storage *addrs = calloc(n, sizeof *addrs);
    socklen_t *lens = calloc(n, sizeof *lens);
    size_t k = 0;
    if (!addrs || !lens) {
        rc = -ENOMEM;
        goto out;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof addrs[0])
            continue;
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = lens[j] == ai->ai_addrlen && !memcmp(&addrs[j], ai->ai_addr, ai->ai_addrlen);
        if (!dup) {
            memcpy(&addrs[k], ai->ai_addr, ai->ai_addrlen);
            lens[k++] = ai->ai_addrlen;
        }
    }
    if (k == 0) {
        rc = -EADDRNOTAVAIL;
        goto out;
    }
    /* Port 0 on several sockets: the port the first got may be taken on another family; try a
     * few fresh ones before giving up. */
    bool pick = port_of(&addrs[0]) == 0;
    for (int i = 0; i < PORT0_TRIES; i++) {
        if (any)
            rc = listen_any(port_of(&addrs[0]), backlog, flags, fds, max_fds);
        else
            rc = listen_list(addrs, lens, k, backlog, flags, fds, max_fds);
        if (rc != -EADDRINUSE || !pick)
            break;
        for (size_t j = 0; j < k; j++)
            set_port(&addrs[j], 0);
    }
out:
    free(addrs);
    free(lens);
    freeaddrinfo(res);
    return rc;
}

/* ---- Unix sockets ---------------------------------------------------------------------------- */

/* path, or "@name" for Linux's abstract namespace (no file; a leading NUL on the wire). */
static int unix_addr(const char *path, struct sockaddr_un *sa, socklen_t *len)
{
    if (!path || !*path)
        return -EINVAL;
    size_t n = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (path[0] == '@') {
        if (n > sizeof sa->sun_path) /* the '@' becomes the NUL: n bytes, no terminator */
            return -ENAMETOOLONG;
        memcpy(sa->sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
    }
    if (n >= sizeof sa->sun_path) /* room for the terminator: longer ones are cut silently */
        return -ENAMETOOLONG;
    memcpy(sa->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int simul_unix_connect(const char *path)
{
    struct sockaddr_un sa;
    socklen_t len;
    if (!simul__task_require(__func__))
        return -EPERM;
    int rc = unix_addr(path, &sa, &len);
    if (rc < 0)
        return rc;
    /* 1, 2, 4 ... 128 ms, then 128 ms: short enough to notice room soon, no spin meanwhile. */
    static const simul_backoff_opts bo = {.base = 0.001, .cap = 0.128};
    for (unsigned waits = 0;; waits++) {
        int fd = simul_socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0)
            return fd;
        rc = simul_connect(fd, (const struct sockaddr *)&sa, len);
        if (rc == 0)
            return fd;
        simul_close(fd);
        /* A full backlog: a Unix connect does not queue (no EINPROGRESS) and no readiness
         * tells when there is room, so wait a little and retry, as a blocking connect would. */
        if (rc != -EAGAIN)
            return rc;
        rc = simul_sleep(simul_backoff_delay(&bo, waits, 0));
        if (rc < 0)
            return rc;
    }
}

/* A socket file nobody listens on (left by a process that died): connecting is refused. */
static bool stale(const struct sockaddr_un *sa, socklen_t len, const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return false; /* never unlink something that is not a socket */
    int p = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p < 0)
        return false;
    bool refused = connect(p, (const struct sockaddr *)sa, len) < 0 && errno == ECONNREFUSED;
    close(p);
    return refused;
}

int simul_unix_listen(const char *path, int backlog)
{
    struct sockaddr_un sa;
    socklen_t len;
    int rc = unix_addr(path, &sa, &len);
    if (rc < 0)
        return rc;
    if (backlog <= 0)
        backlog = DEFAULT_BACKLOG;
    int fd = simul_socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    rc = bind(fd, (const struct sockaddr *)&sa, len) < 0 ? -errno : 0;
    if (rc == -EADDRINUSE && path[0] != '@' && stale(&sa, len, path)) {
        unlink(path);
        rc = bind(fd, (const struct sockaddr *)&sa, len) < 0 ? -errno : 0;
    }
    if (rc == 0 && listen(fd, backlog) < 0)
        rc = -errno;
    if (rc < 0) {
        simul_close(fd);
        return rc;
    }
    return fd;
}
