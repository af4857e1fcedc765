/* udp.c — datagram endpoints as protocols (asyncio's create_datagram_endpoint), driven by the fd
 * layer's edges like the stream transports. A datagram's size says nothing about what is left,
 * so a READ edge reads until EAGAIN (within a budget, then deferred); a send is tried at
 * once and queued, one copy per datagram, only when the kernel says EAGAIN. */
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

#define READ_BUDGET 64 /* datagrams per edge or deferred pass */
/* Counted per queued datagram besides its bytes, as asyncio does, so that empty datagrams also
 * fill the queue. */
#define DGRAM_OVERHEAD 8

enum {
    F_CLOSING = 1u << 0, /* close/abort: no more reading; lost once the queue is sent */
    F_LOST = 1u << 1,    /* connection_lost is scheduled */
    F_WRITE_PAUSED = 1u << 2,
    F_CONNECTED = 1u << 3,
};

enum { D_READ = 1u, D_LOST = 2u };

typedef struct dgram {
    struct dgram *next;
    size_t len;
    socklen_t alen; /* 0 for a connected endpoint */
    struct sockaddr_storage addr;
    char data[];
} dgram;

struct simul_datagram_transport {
    simul__deferred def; /* first */
    simul__fd *f;
    const simul_datagram_protocol *proto;
    void *ctx;
    char *rbuf;
    dgram *qhead, *qtail;
    size_t qsize; /* bytes queued, DGRAM_OVERHEAD each included */
    size_t high, low;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    int err;
    unsigned flags;
};

typedef simul_datagram_transport dtp;

/* ---- closing ------------------------------------------------------------------------------ */

static void drop_queue(dtp *t)
{
    dgram *d = t->qhead;
    while (d) {
        dgram *n = d->next;
        free(d);
        d = n;
    }
    t->qhead = t->qtail = NULL;
    t->qsize = 0;
}

static void lose(dtp *t, int err)
{
    if (t->flags & F_LOST)
        return;
    t->err = err;
    t->flags |= F_CLOSING | F_LOST;
    simul__defer(&t->def, D_LOST, false);
}

static void finish(dtp *t)
{
    if (t->proto->connection_lost)
        t->proto->connection_lost(t->ctx, t->err);
    SIMUL__ASSERT(!t->def.queued);
    simul__fd_set_handler(t->f, NULL, NULL);
    simul_close(t->f->fd);
    drop_queue(t);
    simul__tp_buf_release();
    free(t);
}

void simul_datagram_transport_close(simul_datagram_transport *t)
{
    if (t->flags & F_CLOSING)
        return;
    t->flags |= F_CLOSING;
    if (!t->qhead)
        lose(t, 0);
}

void simul_datagram_transport_abort(simul_datagram_transport *t)
{
    if (t->flags & F_LOST)
        return;
    drop_queue(t);
    lose(t, 0);
}

bool simul_datagram_transport_is_closing(const simul_datagram_transport *t)
{
    return t->flags & F_CLOSING;
}

/* ---- sending ------------------------------------------------------------------------------ */

/* One send: the byte count, or a negative errno (-EAGAIN clears the WRITE bit). */
static long send_one(dtp *t, const void *data, size_t len, const struct sockaddr *addr,
                     socklen_t alen)
{
    if (!simul__fd_ready(t->f, SIMUL__DIR_WRITE))
        return -EAGAIN;
    ssize_t n;
    do
        n = sendto(t->f->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, addr, alen);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        simul__fd_clear(t->f, SIMUL__DIR_WRITE);
        return -EAGAIN;
    }
    return -errno;
}

static bool same_addr(const struct sockaddr *a, socklen_t alen, const struct sockaddr_storage *b,
                      socklen_t blen)
{
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET && alen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6 && alen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0 &&
               x->sin6_scope_id == y->sin6_scope_id;
    }
    return alen == blen && memcmp(a, b, alen) == 0;
}

int simul_datagram_transport_sendto(simul_datagram_transport *t, const void *data, size_t len,
                                    const struct sockaddr *addr, simul_socklen_t addrlen)
{
    if (t->flags & F_CLOSING)
        return t->err ? t->err : -EPIPE;
    if (len && !data)
        return -EINVAL;
    if (t->flags & F_CONNECTED) {
        if (addr && !same_addr(addr, addrlen, &t->peer, t->peerlen))
            return -EISCONN;
        addr = NULL;
        addrlen = 0;
    } else if (!addr) {
        return -EDESTADDRREQ;
    } else if (addrlen > sizeof(struct sockaddr_storage)) {
        return -EINVAL;
    }
    if (!t->qhead) {
        long n = send_one(t, data, len, addr, addrlen);
        if (n >= 0)
            return 0;
        if (n != -EAGAIN)
            return (int)n;
    }
    if (len > SIZE_MAX - sizeof(dgram))
        return -EMSGSIZE;
    dgram *d = malloc(sizeof *d + len);
    if (!d)
        return -ENOMEM;
    d->next = NULL;
    d->len = len;
    d->alen = addrlen;
    if (addrlen)
        memcpy(&d->addr, addr, addrlen);
    if (len)
        memcpy(d->data, data, len);
    if (t->qtail)
        t->qtail->next = d;
    else
        t->qhead = d;
    t->qtail = d;
    t->qsize += len + DGRAM_OVERHEAD;
    if (!(t->flags & F_WRITE_PAUSED) && t->qsize > t->high) {
        t->flags |= F_WRITE_PAUSED;
        if (t->proto->pause_writing)
            t->proto->pause_writing(t->ctx);
    }
    return 0;
}

/* On a WRITE edge with datagrams queued. A datagram the kernel refuses with an error is dropped
 * and reported; the rest go on (edge-triggered: stopping here would wait for an edge that is
 * not coming). */
static void flush(dtp *t)
{
    dgram *d;
    while ((d = t->qhead)) {
        long n =
            send_one(t, d->data, d->len, d->alen ? (struct sockaddr *)&d->addr : NULL, d->alen);
        if (n == -EAGAIN)
            break;
        t->qhead = d->next;
        if (!t->qhead)
            t->qtail = NULL;
        t->qsize -= d->len + DGRAM_OVERHEAD;
        free(d);
        if (n < 0 && t->proto->error_received) {
            t->proto->error_received(t->ctx, (int)n);
            if (t->flags & F_LOST)
                return;
        }
    }
    if ((t->flags & F_WRITE_PAUSED) && t->qsize <= t->low) {
        t->flags &= ~(unsigned)F_WRITE_PAUSED;
        if (t->proto->resume_writing)
            t->proto->resume_writing(t->ctx);
        if (t->flags & F_LOST)
            return;
    }
    if (!t->qhead && (t->flags & F_CLOSING))
        lose(t, 0);
}

int simul_datagram_transport_set_write_buffer_limits(simul_datagram_transport *t, size_t high,
                                                     size_t low)
{
    if (low > high)
        return -EINVAL;
    t->high = high;
    t->low = low;
    if (!(t->flags & (F_LOST | F_WRITE_PAUSED)) && t->qsize > t->high) {
        t->flags |= F_WRITE_PAUSED;
        if (t->proto->pause_writing)
            t->proto->pause_writing(t->ctx);
    }
    return 0;
}

size_t simul_datagram_transport_get_write_buffer_size(const simul_datagram_transport *t)
{
    return t->qsize;
}

/* ---- receiving ---------------------------------------------------------------------------- */

static void read_some(dtp *t)
{
    for (int i = 0; i < READ_BUDGET; i++) {
        if ((t->flags & F_CLOSING) || !simul__fd_ready(t->f, SIMUL__DIR_READ))
            return;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        ssize_t n = recvfrom(t->f->fd, t->rbuf, SIMUL__TP_BUF_SIZE, MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&ss, &sl);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                simul__fd_clear(t->f, SIMUL__DIR_READ);
                return;
            }
            /* A pending socket error (ICMP unreachable on a connected endpoint): reading it
             * cleared it. */
            if (t->proto->error_received)
                t->proto->error_received(t->ctx, -errno);
            continue;
        }
        if ((size_t)n > SIMUL__TP_BUF_SIZE) { /* MSG_TRUNC gave the real size */
            if (t->proto->error_received)
                t->proto->error_received(t->ctx, -EMSGSIZE);
            continue;
        }
        t->proto->datagram_received(t->ctx, t->rbuf, (size_t)n, (struct sockaddr *)&ss, sl);
    }
    if (!(t->flags & F_CLOSING) && simul__fd_ready(t->f, SIMUL__DIR_READ))
        simul__defer(&t->def, D_READ, true);
}

static void on_edge(void *owner, uint32_t events)
{
    dtp *t = owner;
    simul__defer_retry();
    if (t->flags & F_LOST)
        return;
    if ((events & SIMUL__EV_WRITE) && t->qhead) {
        flush(t);
        if (t->flags & F_LOST)
            return;
    }
    if (events & SIMUL__EV_READ)
        read_some(t);
}

static void on_deferred(simul__deferred *d, unsigned bits)
{
    dtp *t = (dtp *)d;
    if (bits & D_LOST)
        finish(t);
    else if (bits & D_READ)
        read_some(t);
}

/* ---- making endpoints --------------------------------------------------------------------- */

static int resolve(const char *host, const char *port, int family, bool passive,
                   struct addrinfo **res)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_protocol = IPPROTO_UDP;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    return simul_getaddrinfo(host && *host ? host : NULL, port && *port ? port : "0", &hints, res);
}

/* A socket of `family`, bound to `local` and connected to `remote` (either may be NULL). */
static int open_one(int family, const struct addrinfo *local, const struct addrinfo *remote,
                    unsigned flags)
{
    int fd = simul_socket(family, SOCK_DGRAM, IPPROTO_UDP);
    if (fd < 0)
        return fd;
    int one = 1, rc = 0;
    if ((flags & SIMUL_LISTEN_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        rc = -errno;
    if (!rc && (flags & SIMUL_DATAGRAM_BROADCAST) &&
        setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0)
        rc = -errno;
    if (!rc && local && bind(fd, local->ai_addr, local->ai_addrlen) < 0)
        rc = -errno;
    if (!rc && remote && connect(fd, remote->ai_addr, remote->ai_addrlen) < 0)
        rc = -errno; /* UDP connect does not block */
    if (rc < 0) {
        simul_close(fd);
        return rc;
    }
    return fd;
}

/* Tries the remote addresses in order, each with the first local address of its family. */
static int open_socket(const struct addrinfo *local, const struct addrinfo *remote, unsigned flags,
                       struct sockaddr_storage *peer, socklen_t *peerlen)
{
    int rc = -EAFNOSUPPORT;
    if (!remote) {
        for (const struct addrinfo *l = local; l; l = l->ai_next) {
            rc = open_one(l->ai_family, l, NULL, flags);
            if (rc >= 0)
                return rc;
        }
        return rc;
    }
    for (const struct addrinfo *r = remote; r; r = r->ai_next) {
        const struct addrinfo *l = local;
        while (l && l->ai_family != r->ai_family)
            l = l->ai_next;
        if (local && !l)
            continue; /* no local address of this family */
        rc = open_one(r->ai_family, l, r, flags);
        if (rc >= 0) {
            memcpy(peer, r->ai_addr, r->ai_addrlen);
            *peerlen = r->ai_addrlen;
            return rc;
        }
    }
    return rc;
}

/* Routes fd's edges to t and hands it to the protocol. On error nothing is kept (fd stays open,
 * t is not freed). */
static int start(simul_loop *loop, dtp *t, int fd, const simul_datagram_protocol *proto, void *ctx,
                 simul_datagram_transport **out)
{
    int rc;
    if (!(t->rbuf = simul__tp_buf_acquire()))
        return -ENOMEM;
    t->f = simul__fd_get(loop, fd, &rc);
    if (t->f)
        rc = simul__fd_set_handler(t->f, on_edge, t);
    if (rc < 0) {
        simul__tp_buf_release();
        return rc;
    }
    t->def.run = on_deferred;
    t->proto = proto;
    t->ctx = ctx;
    t->high = 65536;
    t->low = 16384;
    *out = t;
    if (proto->connection_made)
        proto->connection_made(t, ctx);
    if (!(t->flags & F_CLOSING) && simul__fd_ready(t->f, SIMUL__DIR_READ))
        simul__defer(&t->def, D_READ, false);
    return 0;
}

int simul_create_datagram_endpoint(const char *local_host, const char *local_port,
                                   const char *remote_host, const char *remote_port, unsigned flags,
                                   const simul_datagram_protocol *proto, void *ctx,
                                   simul_datagram_transport **out)
{
    if (!out || !proto || !proto->datagram_received)
        return -EINVAL;
    *out = NULL;
    bool want_local = local_host || local_port, want_remote = remote_host || remote_port;
    if (!want_local && !want_remote)
        return -EINVAL;
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    struct addrinfo *local = NULL, *remote = NULL;
    int rc = 0;
    if (want_remote)
        rc = resolve(remote_host, remote_port, AF_UNSPEC, false, &remote);
    if (rc == 0 && want_local)
        rc = resolve(local_host, local_port, remote ? remote->ai_family : AF_UNSPEC, true, &local);
    int fd = -1;
    dtp *t = NULL;
    if (rc == 0) {
        t = calloc(1, sizeof *t);
        rc = t ? 0 : -ENOMEM;
    }
    if (rc == 0)
        rc = fd = open_socket(local, remote, flags, &t->peer, &t->peerlen);
    simul_freeaddrinfo(local);
    simul_freeaddrinfo(remote);
    if (rc >= 0) {
        if (want_remote)
            t->flags |= F_CONNECTED;
        rc = start(loop, t, fd, proto, ctx, out);
    }
    if (rc < 0) {
        if (fd >= 0)
            simul_close(fd);
        free(t);
    }
    return rc;
}

int simul_create_datagram_endpoint_sock(int fd, const simul_datagram_protocol *proto, void *ctx,
                                        simul_datagram_transport **out)
{
    if (!out || !proto || !proto->datagram_received)
        return -EINVAL;
    *out = NULL;
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    int type = 0;
    socklen_t tlen = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0)
        return -errno;
    if (type != SOCK_DGRAM)
        return -EPROTOTYPE;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return -errno;
    dtp *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->peerlen = sizeof t->peer;
    if (getpeername(fd, (struct sockaddr *)&t->peer, &t->peerlen) == 0)
        t->flags |= F_CONNECTED;
    else
        t->peerlen = 0;
    int rc = start(loop, t, fd, proto, ctx, out);
    if (rc < 0)
        free(t);
    return rc;
}

int simul_datagram_transport_sockname(const simul_datagram_transport *t,
                                      struct sockaddr_storage *addr)
{
    if (!t || !addr)
        return -EINVAL;
    socklen_t len = sizeof *addr;
    return getsockname(t->f->fd, (struct sockaddr *)addr, &len) < 0 ? -errno : (int)len;
}

int simul_datagram_transport_peername(const simul_datagram_transport *t,
                                      struct sockaddr_storage *addr)
{
    if (!t || !addr)
        return -EINVAL;
    if (!(t->flags & F_CONNECTED))
        return -ENOTCONN;
    memcpy(addr, &t->peer, t->peerlen);
    return (int)t->peerlen;
}

int simul_datagram_transport_fd(const simul_datagram_transport *t)
{
    return t->f->fd;
}
