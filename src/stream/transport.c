/* transport.c — stream transports and protocols (asyncio.Protocol over a socket), driven by the
 * fd layer's edges from the loop's dispatch: no task per connection. A READ edge costs one recv
 * into the thread's read buffer, data_received, and a write that goes straight to the socket
 * when nothing is queued. Whatever must not run inside its caller (connection_lost, reading on
 * after a budget or a resume) is deferred to a loop callback, so a transport is only ever freed
 * from the loop, with none of its callbacks on the stack. */
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "server.h"
#include "transport.h"
#include "wbuf.h"

/* Reads per edge (or per deferred pass) before the rest waits for the next pass: 1 MiB of a
 * fast sender, so one connection cannot hold the loop. */
#define READ_BUDGET 16
#define DEFAULT_HIGH 65536
#define DEFAULT_LOW 16384

enum {
    F_CLOSING = 1u << 0,     /* close/abort/failure: no more reading; lost once flushed */
    F_LOST = 1u << 1,        /* connection_lost is scheduled: the transport is inert */
    F_READ_PAUSED = 1u << 2, /* pause_reading */
    F_READ_EOF = 1u << 3,    /* the peer's EOF was delivered */
    F_EOF_WANTED = 1u << 4,  /* write_eof: SHUT_WR once the buffer is empty */
    F_EOF_SENT = 1u << 5,
};
#define NOT_READING (F_CLOSING | F_LOST | F_READ_PAUSED | F_READ_EOF)

enum { D_READ = 1u, D_LOST = 2u };

struct simul_transport {
    simul__deferred def; /* first: the deferred record is the transport */
    simul__fd *f;
    /* The bottom: `plain` while it is the built-in fd bottom (the fd layer is called directly);
     * a wrapping bottom (TLS) sits on that one, and the fd's edges still drive everything. */
    const simul_stream_ops *bops;
    void *bctx;
    bool plain;
    bool aborted; /* the bottom is closed with abort */
    const simul_protocol *proto;
    void *ctx;
    char *rbuf;     /* the thread's read buffer (a reference held) */
    simul__wbuf wq; /* queued bytes; paused: pause_writing delivered, resume_writing not yet */
    simul_server *server; /* counts this connection as live, if any */
    int err;              /* for connection_lost */
    unsigned flags;
};

/* ---- deferred work and the read buffer (shared with udp.c) -------------------------------- */

static __thread char *rbuf;
static __thread size_t rbuf_refs;
/* Records whose scheduling ran out of memory, retried by the next deferral or edge; only
 * meaningful on the loop that was current then. */
static __thread simul__deferred *oom_head;
static __thread simul_loop *oom_loop;

/* Every transport (stream or datagram) holds one reference from creation to its last callback,
 * which is also what makes simul_loop_close refuse while a transport is open. */
char *simul__tp_buf_acquire(void)
{
    if (!rbuf && !(rbuf = malloc(SIMUL__TP_BUF_SIZE)))
        return NULL;
    rbuf_refs++;
    simul__loop_handle_ref(simul__loop());
    return rbuf;
}

void simul__tp_buf_release(void)
{
    SIMUL__ASSERT(rbuf_refs > 0);
    simul__loop_handle_unref(simul__loop());
    if (--rbuf_refs == 0) {
        free(rbuf);
        rbuf = NULL;
    }
}

static void run_deferred(void *arg)
{
    simul__deferred *d = arg;
    unsigned bits = d->bits;
    d->bits = 0;
    d->queued = 0;
    d->run(d, bits); /* may free d, or defer it again */
}

static bool schedule(simul__deferred *d)
{
    simul_loop *loop = simul__loop();
    if (!loop)
        return false;
    /* A timer due now fires after the pass polls I/O: work that used up its budget waits for
     * everyone else's events instead of running again in the same pass. */
    if (d->after_poll)
        return simul_call_later(0, run_deferred, d, NULL) == 0;
    return simul__call_soon(loop, run_deferred, d, NULL) == 0;
}

void simul__defer_retry(void)
{
    if (SIMUL__LIKELY(!oom_head))
        return;
    if (oom_loop != simul__loop()) { /* that loop is gone, and its transports with it */
        oom_head = NULL;
        return;
    }
    while (oom_head && schedule(oom_head))
        oom_head = oom_head->next;
}

void simul__defer(simul__deferred *d, unsigned bits, bool after_poll)
{
    d->bits |= (uint8_t)bits;
    if (d->queued) /* one pending callback per record carries all its work */
        return;
    d->queued = 1;
    d->after_poll = after_poll;
    simul__defer_retry();
    if (!schedule(d)) {
        oom_loop = simul__loop();
        d->next = oom_head;
        oom_head = d;
    }
}

/* ---- failing, closing, finishing ---------------------------------------------------------- */

/* connection_lost(err) is scheduled; from now on the transport ignores events and refuses work. */
static void lose(simul_transport *t, int err)
{
    if (t->flags & F_LOST)
        return;
    t->err = err;
    t->flags |= F_CLOSING | F_LOST;
    simul__defer(&t->def, D_LOST, false);
}

static void fail(simul_transport *t, int err)
{
    if (t->flags & F_LOST)
        return;
    simul__wbuf_drop(&t->wq);
    lose(t, err);
}

/* Deferred: the last callback, then the bottom (the socket) and the memory. */
static void finish(simul_transport *t)
{
    if (t->proto && t->proto->connection_lost)
        t->proto->connection_lost(t->ctx, t->err);
    SIMUL__ASSERT(!t->def.queued); /* every deferral checks F_LOST first */
    t->bops->close(t->bctx, t->aborted);
    if (t->server)
        simul__server_conn_end(t->server);
    simul__wbuf_drop(&t->wq);
    simul__tp_buf_release();
    free(t);
}

/* ---- writing ------------------------------------------------------------------------------ */

static inline size_t queued(const simul_transport *t)
{
    return simul__wbuf_len(&t->wq);
}

static void maybe_pause(simul_transport *t)
{
    if (simul__wbuf_pause_check(&t->wq) && t->proto->pause_writing)
        t->proto->pause_writing(t->ctx);
}

static int refused(const simul_transport *t)
{
    return t->err ? t->err : -EPIPE;
}

static int do_shutdown(simul_transport *t)
{
    t->flags |= F_EOF_SENT;
    return t->bops->shutdown ? t->bops->shutdown(t->bctx) : -EOPNOTSUPP;
}

/* The bottom's non-blocking transfers (stream.h's rule: the fd bottom without an indirect call). */
static inline long b_write(simul_transport *t, const void *buf, size_t len)
{
    if (SIMUL__LIKELY(t->plain))
        return simul__fd_try_write(t->f, buf, len);
    struct iovec v = {(void *)buf, len};
    return t->bops->writev(t->bctx, &v, 1);
}

static inline long b_read(simul_transport *t, void *buf, size_t len)
{
    if (SIMUL__LIKELY(t->plain))
        return simul__fd_try_recv(t->f, buf, len, 0);
    return t->bops->read(t->bctx, buf, len);
}

/* Whether reading (writing) may make progress: the fd's bit for the fd bottom; a wrapping bottom
 * may hold bytes of its own (a TLS record read whole), so only its -EAGAIN says no. */
static inline bool may_read(const simul_transport *t)
{
    return !t->plain || simul__fd_ready(t->f, SIMUL__DIR_READ);
}

static inline bool may_write(const simul_transport *t)
{
    return !t->plain || simul__fd_ready(t->f, SIMUL__DIR_WRITE);
}

/* The queue just emptied: finish a close or a write_eof that waited for it. */
static void drained(simul_transport *t)
{
    if (t->flags & F_CLOSING) {
        lose(t, 0);
    } else if ((t->flags & (F_EOF_WANTED | F_EOF_SENT)) == F_EOF_WANTED) {
        int rc = do_shutdown(t);
        if (rc < 0)
            fail(t, rc);
    }
}

/* On a WRITE edge with bytes queued: send until the kernel stops taking them (a short write
 * clears the bit: the next edge says when there is room again). */
static void flush(simul_transport *t)
{
    while (!simul__wbuf_empty(&t->wq)) {
        long n = b_write(t, simul__wbuf_data(&t->wq), queued(t));
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            fail(t, (int)n);
            return;
        }
        simul__wbuf_consume(&t->wq, (size_t)n); /* empty: memory back (wbuf.h) */
        if (!may_write(t))
            break;
    }
    if (simul__wbuf_resume_check(&t->wq)) {
        if (t->proto->resume_writing)
            t->proto->resume_writing(t->ctx); /* may write, close, abort */
        if (t->flags & F_LOST)
            return;
    }
    /* Invariant from here: bytes still queued means the WRITE bit is clear and an edge will
     * come (resume_writing's own writes went straight out or kept that invariant); under a
     * wrapping bottom, that the bottom said -EAGAIN, and every edge of the fd retries. */
    if (simul__wbuf_empty(&t->wq))
        drained(t);
}

int simul_transport_write(simul_transport *t, const void *data, size_t len)
{
    if (SIMUL__UNLIKELY(t->flags & (F_CLOSING | F_EOF_WANTED)))
        return refused(t);
    if (SIMUL__UNLIKELY(len == 0))
        return 0;
    if (SIMUL__LIKELY(simul__wbuf_empty(&t->wq))) {
        /* Nothing queued: try the socket now (a write finished here costs no loop pass). */
        long n = b_write(t, data, len);
        if (SIMUL__LIKELY(n == (long)len))
            return 0;
        if (n < 0 && n != -EAGAIN) {
            fail(t, (int)n);
            return (int)n;
        }
        if (n > 0) {
            data = (const char *)data + n;
            len -= (size_t)n;
        }
    }
    int rc = simul__wbuf_append(&t->wq, data, len);
    if (rc < 0) {
        fail(t, rc);
        return rc;
    }
    maybe_pause(t);
    return 0;
}

int simul_transport_writev(simul_transport *t, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || (iovcnt > 0 && !iov))
        return -EINVAL;
    if (t->flags & (F_CLOSING | F_EOF_WANTED))
        return refused(t);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX / 2 - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    if (total == 0)
        return 0;
    size_t skip = 0; /* bytes the kernel took */
    if (simul__wbuf_empty(&t->wq)) {
        int cnt = iovcnt < IOV_MAX ? iovcnt : IOV_MAX;
        long n = t->plain ? simul__fd_try_writev(t->f, iov, cnt) : t->bops->writev(t->bctx, iov, cnt);
        if (n < 0 && n != -EAGAIN) {
            fail(t, (int)n);
            return (int)n;
        }
        if (n > 0)
            skip = (size_t)n;
        if (skip == total)
            return 0;
    }
    int rc = simul__wbuf_append_iov(&t->wq, iov, iovcnt, skip, total);
    if (rc < 0) {
        fail(t, rc);
        return rc;
    }
    maybe_pause(t);
    return 0;
}

int simul_transport_write_eof(simul_transport *t)
{
    if (t->flags & F_CLOSING)
        return refused(t);
    if (t->flags & F_EOF_WANTED)
        return 0;
    t->flags |= F_EOF_WANTED;
    return simul__wbuf_empty(&t->wq) ? do_shutdown(t) : 0;
}

void simul_transport_close(simul_transport *t)
{
    if (t->flags & F_CLOSING)
        return;
    t->flags |= F_CLOSING;
    if (simul__wbuf_empty(&t->wq))
        lose(t, 0);
}

void simul_transport_abort(simul_transport *t)
{
    if (t->flags & F_LOST)
        return;
    simul__wbuf_drop(&t->wq);
    t->aborted = true;
    lose(t, 0);
}

bool simul_transport_is_closing(const simul_transport *t)
{
    return t->flags & F_CLOSING;
}

int simul_transport_set_write_buffer_limits(simul_transport *t, size_t high, size_t low)
{
    if (low > high)
        return -EINVAL;
    t->wq.high = high;
    t->wq.low = low;
    if (!(t->flags & F_LOST))
        maybe_pause(t);
    return 0;
}

void simul_transport_get_write_buffer_limits(const simul_transport *t, size_t *low, size_t *high)
{
    if (low)
        *low = t->wq.low;
    if (high)
        *high = t->wq.high;
}

size_t simul_transport_get_write_buffer_size(const simul_transport *t)
{
    return queued(t);
}

/* ---- reading ------------------------------------------------------------------------------ */

static void on_eof(simul_transport *t)
{
    t->flags |= F_READ_EOF;
    bool keep_open = t->proto->eof_received ? t->proto->eof_received(t->ctx) : false;
    if (!keep_open)
        simul_transport_close(t);
}

/* Reads while the fd may have data, up to the budget; the rest waits until the loop has polled
 * I/O once more (the fd's READ bit stays set: no new edge would come for bytes already there). */
static void read_some(simul_transport *t)
{
    for (int i = 0; i < READ_BUDGET; i++) {
        if ((t->flags & NOT_READING) || !may_read(t))
            return;
        const simul_protocol *p = t->proto;
        long n;
        if (p->get_buffer) {
            void *buf = NULL;
            size_t len = 0;
            int rc = p->get_buffer(t->ctx, SIMUL__TP_BUF_SIZE, &buf, &len);
            if (t->flags & NOT_READING) /* get_buffer closed or paused */
                return;
            if (rc < 0 || !buf || !len) {
                fail(t, rc < 0 ? rc : -ENOBUFS);
                return;
            }
            n = b_read(t, buf, len);
            if (n > 0)
                p->buffer_updated(t->ctx, (size_t)n);
        } else {
            n = b_read(t, t->rbuf, SIMUL__TP_BUF_SIZE);
            if (SIMUL__LIKELY(n > 0))
                p->data_received(t->ctx, t->rbuf, (size_t)n);
        }
        if (SIMUL__LIKELY(n > 0))
            continue; /* after a short read the fd layer knows it is drained: no extra recv */
        if (n == -EAGAIN)
            return;
        if (n == 0)
            on_eof(t);
        else
            fail(t, (int)n);
        return;
    }
    if (!(t->flags & NOT_READING) && may_read(t))
        simul__defer(&t->def, D_READ, true);
}

static void kick_reading(simul_transport *t)
{
    if (!(t->flags & NOT_READING) && may_read(t))
        simul__defer(&t->def, D_READ, false);
}

void simul_transport_pause_reading(simul_transport *t)
{
    if (!(t->flags & F_CLOSING))
        t->flags |= F_READ_PAUSED;
}

void simul_transport_resume_reading(simul_transport *t)
{
    if (!(t->flags & F_READ_PAUSED) || (t->flags & F_CLOSING))
        return;
    t->flags &= ~(unsigned)F_READ_PAUSED;
    /* Edge-triggered: bytes that arrived while paused raised their edge already (the bit is
     * still set). Read them from the loop, not inside this call. */
    kick_reading(t);
}

bool simul_transport_is_reading(const simul_transport *t)
{
    return !(t->flags & NOT_READING);
}

/* ---- events ------------------------------------------------------------------------------- */

static void on_edge(void *owner, uint32_t events)
{
    simul_transport *t = owner;
    simul__defer_retry();
    if (SIMUL__UNLIKELY(t->flags & F_LOST))
        return;
    /* Under a wrapping bottom either direction's edge may unblock either side (a TLS write may
     * wait for the peer's bytes, a TLS read for room to send): retry both. */
    uint32_t w = t->plain ? SIMUL__EV_WRITE : SIMUL__EV_READ | SIMUL__EV_WRITE;
    if ((events & w) && !simul__wbuf_empty(&t->wq)) {
        flush(t);
        if (t->flags & F_LOST)
            return;
    }
    if (events & (t->plain ? SIMUL__EV_READ : SIMUL__EV_READ | SIMUL__EV_WRITE))
        read_some(t);
    if (SIMUL__UNLIKELY(events & SIMUL__EV_ERROR) && !(t->flags & F_LOST)) {
        /* An error neither a read nor a write has reported (reading paused, nothing queued). */
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(t->f->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err)
            fail(t, -err);
    }
}

static void on_deferred(simul__deferred *d, unsigned bits)
{
    simul_transport *t = (simul_transport *)d;
    if (bits & D_LOST)
        finish(t);
    else if (bits & D_READ)
        read_some(t);
}

/* ---- the fd bottom and replacing it -------------------------------------------------------- */

/* The built-in fd bottom of a transport, its ctx the transport: a plain transport never calls
 * these (the fd layer is called directly); a wrapping bottom calls them through the table. */
static long tfd_read(void *ctx, void *buf, size_t len)
{
    return simul__fd_try_recv(((simul_transport *)ctx)->f, buf, len, 0);
}

static long tfd_writev(void *ctx, const struct iovec *iov, int cnt)
{
    return simul__fd_try_writev(((simul_transport *)ctx)->f, iov, cnt);
}

/* For a wrapping bottom driven from a task (a handshake run by hand): a transport itself never
 * waits, its edges call it. */
static int tfd_wait(void *ctx, int dir)
{
    return simul__fd_task_wait(((simul_transport *)ctx)->f, dir);
}

static int tfd_shutdown(void *ctx)
{
    return shutdown(((simul_transport *)ctx)->f->fd, SHUT_WR) < 0 ? -errno : 0;
}

/* abort keeps asyncio's transport.abort(): a plain close (server abort_clients adds linger 0). */
static void tfd_close(void *ctx, bool abort)
{
    (void)abort;
    simul_transport *t = ctx;
    simul__fd_set_handler(t->f, NULL, NULL);
    simul_close(t->f->fd);
}

static int tfd_fd(void *ctx)
{
    return ((simul_transport *)ctx)->f->fd;
}

static const simul_stream_ops tfd_ops = {
    .read = tfd_read,
    .writev = tfd_writev,
    .wait = tfd_wait,
    .shutdown = tfd_shutdown,
    .close = tfd_close,
    .fd = tfd_fd,
    .flags = SIMUL_STREAM_BOTTOM_ZEROCOPY,
};

int simul_transport_replace_bottom(simul_transport *t, const simul_stream_ops *ops, void *ctx)
{
    if (!t || !ops || !ops->read || !ops->writev || !ops->wait || !ops->close)
        return -EINVAL;
    if (t->flags & (F_CLOSING | F_EOF_WANTED))
        return refused(t);
    if (!simul__wbuf_empty(&t->wq))
        return -EBUSY; /* queued bytes belong to the old bottom's byte stream */
    t->bops = ops;
    t->bctx = ctx;
    t->plain = false;
    /* The new bottom may hold bytes already (a TLS record read during a handshake). */
    kick_reading(t);
    return 0;
}

const simul_stream_ops *simul_transport_bottom(const simul_transport *t, void **ctx)
{
    const simul_stream_ops *ops = t && !(t->flags & F_LOST) ? t->bops : NULL;
    if (ctx)
        *ctx = ops ? t->bctx : NULL;
    return ops;
}

/* ---- making transports -------------------------------------------------------------------- */

static bool protocol_ok(const simul_protocol *p)
{
    return p && (p->data_received || (p->get_buffer && p->buffer_updated));
}

/* A transport for fd, its edges routed to it; no protocol yet. */
static int transport_new(int fd, simul_transport **out)
{
    int rc;
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    simul__fd *f = simul__fd_get(loop, fd, &rc);
    if (!f)
        return rc;
    simul_transport *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    if (!(t->rbuf = simul__tp_buf_acquire())) {
        free(t);
        return -ENOMEM;
    }
    t->def.run = on_deferred;
    t->f = f;
    t->bops = &tfd_ops;
    t->bctx = t;
    t->plain = true;
    t->wq.high = DEFAULT_HIGH;
    t->wq.low = DEFAULT_LOW;
    rc = simul__fd_set_handler(f, on_edge, t);
    if (rc < 0) {
        simul__tp_buf_release();
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* Undoes transport_new (the fd stays open). */
static void transport_discard(simul_transport *t)
{
    simul__fd_set_handler(t->f, NULL, NULL);
    simul__tp_buf_release();
    free(t);
}

/* Hands the connection to its protocol: connection_made, then reading (from the loop). */
static void transport_start(simul_transport *t, const simul_protocol *p, void *ctx)
{
    t->proto = p;
    t->ctx = ctx;
    if (p->connection_made)
        p->connection_made(t, ctx);
    kick_reading(t); /* bytes may be there already, and their edge gone by */
}

static void set_nodelay(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
        (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

int simul_connect_accepted_socket(int fd, const simul_protocol *proto, void *ctx,
                                  simul_transport **out)
{
    if (!out || !protocol_ok(proto))
        return -EINVAL;
    *out = NULL;
    int type = 0;
    socklen_t tlen = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0)
        return -errno;
    if (type != SOCK_STREAM)
        return -EPROTOTYPE;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return -errno;
    simul_transport *t;
    int rc = transport_new(fd, &t);
    if (rc < 0)
        return rc;
    set_nodelay(fd);
    *out = t;
    transport_start(t, proto, ctx);
    return 0;
}

static int connect_with(int fd, const simul_protocol *proto, void *ctx, simul_transport **out)
{
    if (fd < 0)
        return fd;
    simul_transport *t;
    int rc = transport_new(fd, &t);
    if (rc < 0) {
        simul_close(fd);
        return rc;
    }
    *out = t;
    transport_start(t, proto, ctx);
    return 0;
}

int simul_create_connection(const char *host, const char *port, const simul_protocol *proto,
                            void *ctx, simul_transport **out)
{
    if (!out || !protocol_ok(proto))
        return -EINVAL;
    *out = NULL;
    if (!simul__task_require(__func__)) /* debug mode names this call, not simul_tcp_connect */
        return -EPERM;
    return connect_with(simul_tcp_connect(host, port), proto, ctx, out);
}

int simul_create_unix_connection(const char *path, const simul_protocol *proto, void *ctx,
                                 simul_transport **out)
{
    if (!out || !protocol_ok(proto) || !path)
        return -EINVAL;
    *out = NULL;
    if (!simul__task_require(__func__)) /* debug mode names this call, not simul_unix_connect */
        return -EPERM;
    return connect_with(simul_unix_connect(path), proto, ctx, out);
}

/* ---- servers ------------------------------------------------------------------------------ */

typedef struct tp_server {
    simul_protocol_factory factory;
    void *arg;
} tp_server;

static void on_accept(simul_server *srv, void *owner, int fd, const struct sockaddr *peer,
                      socklen_t peerlen)
{
    (void)peer;
    (void)peerlen;
    tp_server *s = owner;
    simul_transport *t;
    if (transport_new(fd, &t) < 0) {
        simul_close(fd);
        return;
    }
    /* After everything that can fail: a protocol the factory made always sees its callbacks. */
    const simul_protocol *p = NULL;
    void *ctx = NULL;
    if (s->factory(s->arg, &p, &ctx) < 0 || !protocol_ok(p)) {
        transport_discard(t);
        simul_close(fd);
        return;
    }
    t->server = srv;
    simul__server_conn_begin(srv);
    transport_start(t, p, ctx);
}

static void release_owner(void *owner)
{
    free(owner);
}

static int create_server(const simul__server_opts *o, simul_protocol_factory factory, void *arg,
                         simul_server **out)
{
    if (!out || !factory)
        return -EINVAL;
    *out = NULL;
    tp_server *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    s->factory = factory;
    s->arg = arg;
    simul__server_opts opts = *o;
    opts.owner_free = release_owner;
    int rc = simul__server_new(&opts, on_accept, s, out);
    if (rc < 0)
        free(s);
    return rc;
}

int simul_create_server(const char *host, const char *port, simul_protocol_factory factory,
                        void *arg, simul_server **out)
{
    simul__server_opts o = {.host = host, .port = port};
    return create_server(&o, factory, arg, out);
}

int simul_create_unix_server(const char *path, simul_protocol_factory factory, void *arg,
                             simul_server **out)
{
    if (!path)
        return -EINVAL;
    simul__server_opts o = {.unix_path = path};
    return create_server(&o, factory, arg, out);
}

int simul_create_server_opts(const simul_protocol_server_opts *opts, simul_protocol_factory factory,
                             void *arg, simul_server **out)
{
    if (!opts)
        return -EINVAL;
    simul__server_opts o = {.host = opts->host,
                            .port = opts->port,
                            .unix_path = opts->unix_path,
                            .backlog = opts->backlog,
                            .flags = opts->flags};
    return create_server(&o, factory, arg, out);
}

/* ---- the rest of the surface -------------------------------------------------------------- */

int simul_transport_peername(const simul_transport *t, struct sockaddr_storage *addr)
{
    if (!t || !addr)
        return -EINVAL;
    socklen_t len = sizeof *addr;
    return getpeername(t->f->fd, (struct sockaddr *)addr, &len) < 0 ? -errno : (int)len;
}

int simul_transport_sockname(const simul_transport *t, struct sockaddr_storage *addr)
{
    if (!t || !addr)
        return -EINVAL;
    socklen_t len = sizeof *addr;
    return getsockname(t->f->fd, (struct sockaddr *)addr, &len) < 0 ? -errno : (int)len;
}

int simul_transport_fd(const simul_transport *t)
{
    return t->f->fd;
}

void simul_transport_set_protocol(simul_transport *t, const simul_protocol *proto, void *ctx)
{
    if (!protocol_ok(proto))
        return;
    t->proto = proto;
    t->ctx = ctx;
}

const simul_protocol *simul_transport_get_protocol(const simul_transport *t, void **ctx)
{
    if (ctx)
        *ctx = t->ctx;
    return t->proto;
}
