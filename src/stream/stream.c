/* stream.c — streams (asyncio.open_connection / start_server): making them, the writing half,
 * closing, and the stream server. A write goes to the kernel at once when nothing is queued (the
 * echo path: one send, no copy, no loop pass); the rest is queued and flushed by the fd's edge
 * handler, so it drains even when no task waits, and drain() is only flow control. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "stream.h"

#define WBUF_FIRST 4096
#define WBUF_KEEP (64 * 1024) /* a bigger queue buffer is given back once it is empty */

/* `closing` (stream.h) has two values here. Every other file reads it as a flag: no new calls,
 * and the fd record is not to be touched. Abort closes the fd at once but leaves the handle to
 * simul_stream_close, so an aborted stream is freed exactly once, by the call that frees every
 * stream; an aborted stream has fd -1 while fd_closed is still 0. */
enum {
    CLOSING_CLOSE = 1, /* simul_stream_close began: the handle is given back */
    CLOSING_ABORT = 2, /* aborted: the fd is gone, the handle waits for simul_stream_close */
};

static void destroy(simul_stream *s)
{
    free(s->rbuf);
    free(s->wbuf);
    free(s);
}

int simul__stream_enter(simul_stream *s, simul_task **tp, const char *call)
{
    simul_task *t = simul__task_require(call);
    if (!t)
        return -EPERM;
    if (!s)
        return -EINVAL;
    if (s->closing)
        return -EBADF;
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    s->users++;
    *tp = t;
    return 0;
}

void simul__stream_leave(simul_stream *s)
{
    if (--s->users == 0 && s->fd_closed)
        destroy(s);
}

static void wake_all(simul__waitq *q, int result)
{
    simul__wait *w;
    while ((w = simul__waitq_pop(q)))
        simul__wake(w, result);
}

/* Parks the running task on q. A cancellation point. */
static int park_on(simul_task *t, simul__waitq *q)
{
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    simul__wait w = {.unlink = simul__waitq_unlink};
    simul__waitq_push(q, &w);
    return simul__park(&w, SIMUL__INF);
}

/* ---- sending ------------------------------------------------------------------------------ */

/* One non-blocking send of iov with the may-be-ready bookkeeping: the count, or -EAGAIN (the
 * WRITE bit is clear: an edge will come), or the error. Never raises SIGPIPE (the fd layer's). */
static long try_send(simul_stream *s, const struct iovec *iov, int cnt)
{
    return cnt == 1 ? simul__fd_try_write(s->f, iov[0].iov_base, iov[0].iov_len)
                    : simul__fd_try_writev(s->f, iov, cnt);
}

/* The connection failed: the queue can never go, so it is dropped (memory back at once) and
 * everyone waiting for it hears. */
static void fail_write(simul_stream *s, int err)
{
    if (!s->werr)
        s->werr = err;
    s->wpos = s->wend = 0;
    s->paused = 0;
    wake_all(&s->drainq, 0);
    wake_all(&s->flushq, 0);
}

static void shut_wr(simul_stream *s)
{
    s->eof_sent = 1;
    if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN)
        fail_write(s, -errno);
}

/* Sends what is queued until the kernel refuses; wakes drainers below the low-water mark. Runs
 * from the loop's dispatch on every WRITE edge while something is queued. */
static void flush(simul_stream *s)
{
    while (s->wpos < s->wend) {
        struct iovec v = {s->wbuf + s->wpos, s->wend - s->wpos};
        long n = try_send(s, &v, 1);
        if (n > 0) {
            s->wpos += (size_t)n;
        } else if (n == -EAGAIN || n == 0) {
            break;
        } else {
            fail_write(s, (int)n);
            return;
        }
    }
    if (s->wpos == s->wend) {
        s->wpos = s->wend = 0;
        if (s->wcap > WBUF_KEEP) {
            free(s->wbuf);
            s->wbuf = NULL;
            s->wcap = 0;
        }
        if (s->eof_wanted && !s->eof_sent)
            shut_wr(s);
        wake_all(&s->flushq, 0);
    }
    if (s->paused && s->wend - s->wpos <= s->low) {
        s->paused = 0;
        wake_all(&s->drainq, 0);
    }
}

static void on_edge(void *owner, uint32_t events)
{
    simul_stream *s = owner;
    if ((events & SIMUL__EV_WRITE) && s->wpos < s->wend)
        flush(s);
}

/* Copies iov minus its first `skip` bytes to the end of the queue. 0 or -ENOMEM. */
static int enqueue(simul_stream *s, const struct iovec *iov, int cnt, size_t skip, size_t total)
{
    size_t add = total - skip;
    if (s->wcap - s->wend < add) {
        if (s->wpos > 0) {
            memmove(s->wbuf, s->wbuf + s->wpos, s->wend - s->wpos);
            s->wend -= s->wpos;
            s->wpos = 0;
        }
        if (s->wcap - s->wend < add) {
            if (add > SIZE_MAX / 2 - s->wend)
                return -ENOMEM;
            size_t cap = s->wcap ? s->wcap * 2 : WBUF_FIRST;
            while (cap < s->wend + add)
                cap *= 2;
            char *p = realloc(s->wbuf, cap);
            if (!p)
                return -ENOMEM;
            s->wbuf = p;
            s->wcap = cap;
        }
    }
    for (int i = 0; i < cnt; i++) {
        size_t len = iov[i].iov_len;
        const char *base = iov[i].iov_base;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(s->wbuf + s->wend, base + skip, len - skip);
        s->wend += len - skip;
        skip = 0;
    }
    return 0;
}

static int write_iov(simul_stream *s, const struct iovec *iov, int cnt)
{
    if (!s || cnt < 0 || (cnt > 0 && !iov))
        return -EINVAL;
    if (s->closing)
        return -EBADF;
    if (s->werr)
        return s->werr;
    if (s->eof_wanted)
        return -ESHUTDOWN;
    if (s->sending_file)
        return -EBUSY;
    size_t total = 0;
    int nfirst = cnt < IOV_MAX ? cnt : IOV_MAX;
    for (int i = 0; i < cnt; i++) {
        if (iov[i].iov_len > SIZE_MAX / 2 - total || (iov[i].iov_len && !iov[i].iov_base))
            return -EINVAL;
        total += iov[i].iov_len;
    }
    if (total == 0)
        return 0;
    size_t sent = 0;
    if (s->wpos == s->wend) {
        /* Nothing queued, so order allows the kernel to have it now: the common case costs
         * exactly one send and the data is never copied. */
        long n = try_send(s, iov, nfirst);
        if (n >= 0 && (size_t)n == total)
            return 0;
        if (n >= 0) {
            sent = (size_t)n;
        } else if (n != -EAGAIN) {
            fail_write(s, (int)n);
            return (int)n;
        }
    }
    int rc = enqueue(s, iov, cnt, sent, total);
    if (rc < 0) {
        if (sent)
            fail_write(s, rc); /* part of it went: the byte stream has a hole now */
        return rc;
    }
    if (s->wend - s->wpos > s->high)
        s->paused = 1;
    return 0;
}

int simul_stream_write(simul_stream *s, const void *buf, size_t len)
{
    struct iovec v = {(void *)buf, len};
    return write_iov(s, &v, 1);
}

int simul_stream_writev(simul_stream *s, const struct iovec *iov, int iovcnt)
{
    return write_iov(s, iov, iovcnt);
}

int simul_stream_drain(simul_stream *s)
{
    simul_task *t;
    int rc = simul__stream_enter(s, &t, __func__);
    if (rc < 0)
        return rc;
    for (;;) {
        if (s->closing) {
            rc = -ECANCELED;
            break;
        }
        if (s->werr || s->rerr) { /* as asyncio: a broken connection is reported here */
            rc = s->werr ? s->werr : s->rerr;
            break;
        }
        if (!s->paused)
            break;
        if ((rc = park_on(t, &s->drainq)) < 0)
            break;
    }
    simul__stream_leave(s);
    return rc;
}

int simul_stream_set_write_buffer_limits(simul_stream *s, size_t high, size_t low)
{
    if (!s || low > high)
        return -EINVAL;
    s->high = high;
    s->low = low;
    size_t q = s->wend - s->wpos;
    if (q > high) {
        s->paused = 1;
    } else if (s->paused && q <= low) {
        s->paused = 0;
        wake_all(&s->drainq, 0);
    }
    return 0;
}

size_t simul_stream_write_buffer_size(const simul_stream *s)
{
    return s ? s->wend - s->wpos : 0;
}

bool simul_stream_can_write_eof(const simul_stream *s)
{
    return s && s->sock;
}

int simul_stream_write_eof(simul_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->closing)
        return -EBADF;
    if (!s->sock)
        return -EOPNOTSUPP;
    if (s->werr)
        return s->werr;
    if (s->eof_wanted)
        return 0;
    if (s->sending_file)
        return -EBUSY;
    s->eof_wanted = 1;
    if (s->wpos == s->wend)
        shut_wr(s);
    return s->werr;
}

/* ---- closing ------------------------------------------------------------------------------ */

/* The fd goes; the record goes once the last task inside a call has left. */
static void finish(simul_stream *s)
{
    s->wpos = s->wend = 0;
    s->paused = 0;
    if (s->loop == simul__loop()) {
        if (s->fd >= 0) { /* else abort closed it */
            simul__fd_set_handler(s->f, NULL, NULL);
            simul_close(s->fd);
        }
        simul__loop_handle_unref(s->loop);
        wake_all(&s->closedq, 0);
    } else if (s->fd >= 0) {
        close(s->fd); /* the loop is gone: so is every record and every waiter */
    }
    s->fd = -1;
    s->fd_closed = 1;
    simul__stream_leave(s); /* close's own count */
}

/* Waits until the queue is flushed or the connection failed. */
static int wait_flushed(simul_stream *s, simul_task *t)
{
    int rc = 0;
    while (rc == 0 && s->wpos < s->wend && !s->werr)
        rc = park_on(t, &s->flushq);
    return rc;
}

static int close_in_task(void *arg)
{
    simul_stream *s = arg;
    wait_flushed(s, simul__task_self());
    finish(s);
    return 0;
}

/* simul_stream_close; with may_suspend false a close in a task does not wait for the flush
 * either: it goes on in a task of its own (as from a callback). */
static int close_stream(simul_stream *s, bool may_suspend)
{
    if (!s)
        return -EINVAL;
    if (s->closing == CLOSING_ABORT) {
        /* abort closed the fd, dropped the queue and woke everyone: only the handle is left */
        s->closing = CLOSING_CLOSE;
        s->users++;
        finish(s);
        return 0;
    }
    if (s->closing)
        return -EBADF;
    s->closing = CLOSING_CLOSE;
    s->users++;
    bool here = s->loop == simul__loop();
    if (here) {
        /* Calls in progress in other tasks end with -ECANCELED: a reader parked on the fd, and
         * drainers (they see `closing` when they resume). */
        simul__fd_wake_all(s->f, SIMUL__DIR_READ, -ECANCELED);
        simul__fd_wake_all(s->f, SIMUL__DIR_WRITE, -ECANCELED);
        wake_all(&s->drainq, 0);
        /* A stream_sendfile waiting for the queue or for its source (close has not parked on
         * flushq yet, so only it is there). */
        wake_all(&s->flushq, 0);
        simul__fd_wait_end(&s->source_wait, -ECANCELED);
    }
    int rc = 0;
    if (here && s->wpos < s->wend && !s->werr) {
        simul_task *t = may_suspend ? simul__task_self() : NULL;
        if (t) {
            rc = wait_flushed(s, t);
        } else {
            flush(s);
            simul_task_opts o = {.name = "stream-close", .stack_size = 0};
            if (s->wpos < s->wend && !s->werr && simul_task_spawn(NULL, close_in_task, s, &o) == 0)
                return 0; /* that task finishes the close */
            if (s->wpos < s->wend && !s->werr)
                rc = -ENOMEM;
        }
    }
    if (rc == 0)
        rc = s->werr;
    finish(s);
    return rc;
}

int simul_stream_close(simul_stream *s)
{
    return close_stream(s, true);
}

int simul_stream_abort(simul_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->fd < 0)
        return s->fd_closed ? -EBADF : 0; /* closed (the handle is invalid), or aborted already */
    if (!s->closing)
        s->closing = CLOSING_ABORT;
    /* A close waiting for the flush (in a task, or the stream-close task) resumes to find the
     * queue gone and reports this as what lost its data. */
    if (!s->werr)
        s->werr = -ECONNABORTED;
    free(s->wbuf);
    s->wbuf = NULL;
    s->wcap = s->wpos = s->wend = 0;
    s->paused = 0;
    if (s->sock) {
        /* Without linger 0 the close would send a FIN after whatever the kernel still holds;
         * with it the kernel drops that and resets the connection. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (s->loop == simul__loop()) {
        /* Woken before the fd goes, with the answer close gives them: their calls see `closing`
         * and return without touching the fd record, which a new fd may reuse from now on. */
        simul__fd_wake_all(s->f, SIMUL__DIR_READ, -ECANCELED);
        simul__fd_wake_all(s->f, SIMUL__DIR_WRITE, -ECANCELED);
        wake_all(&s->drainq, 0);
        wake_all(&s->flushq, 0);
        simul__fd_wait_end(&s->source_wait, -ECANCELED);
        simul__fd_set_handler(s->f, NULL, NULL);
        simul_close(s->fd);
        wake_all(&s->closedq, 0);
    } else {
        close(s->fd);
    }
    s->fd = -1;
    return 0;
}

int simul_stream_wait_closed(simul_stream *s)
{
    simul_task *t = simul__task_require(__func__);
    if (!t)
        return -EPERM;
    if (!s)
        return -EINVAL;
    s->users++;
    int rc = 0;
    while (rc == 0 && s->fd >= 0) /* closed, or aborted */
        rc = park_on(t, &s->closedq);
    simul__stream_leave(s);
    return rc;
}

bool simul_stream_is_closing(const simul_stream *s)
{
    return s && s->closing;
}

int simul_stream_fd(const simul_stream *s)
{
    if (!s)
        return -EINVAL;
    return s->fd < 0 ? -EBADF : s->fd;
}

static int name_of(const simul_stream *s, struct sockaddr_storage *addr, bool peer)
{
    if (!s || !addr)
        return -EINVAL;
    if (s->fd < 0)
        return -EBADF;
    socklen_t len = sizeof *addr;
    int r = peer ? getpeername(s->fd, (struct sockaddr *)addr, &len)
                 : getsockname(s->fd, (struct sockaddr *)addr, &len);
    return r < 0 ? -errno : (int)len;
}

int simul_stream_peername(const simul_stream *s, struct sockaddr_storage *addr)
{
    return name_of(s, addr, true);
}

int simul_stream_sockname(const simul_stream *s, struct sockaddr_storage *addr)
{
    return name_of(s, addr, false);
}

/* ---- making streams ----------------------------------------------------------------------- */

/* A stream on fd (the caller keeps the fd if this fails). */
static int stream_new(int fd, bool sock, simul_stream **out)
{
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    int rc;
    simul__fd *f = simul__fd_get(loop, fd, &rc);
    if (!f)
        return rc;
    if (f->handler)
        return -EBUSY; /* another stream or transport owns this fd */
    simul_stream *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->f = f;
    s->fd = fd;
    s->sock = sock;
    s->limit = SIMUL_STREAM_LIMIT;
    s->high = SIMUL_STREAM_HIGH_WATER;
    s->low = SIMUL_STREAM_LOW_WATER;
    /* Stream sockets and pipes alike: a short read means the kernel had no more. */
    f->stream = 1;
    f->sock = sock;
    f->typed = 1;
    if ((rc = simul__fd_set_handler(f, on_edge, s)) < 0) {
        if (f->handler == on_edge)
            simul__fd_set_handler(f, NULL, NULL);
        free(s);
        return rc;
    }
    simul__loop_handle_ref(loop); /* until the fd is closed: simul_loop_close refuses while a stream is open */
    *out = s;
    return 0;
}

int simul_open_connection(const char *host, const char *port, simul_stream **out)
{
    if (out)
        *out = NULL;
    if (!out)
        return -EINVAL;
    int fd = simul_tcp_connect(host, port);
    if (fd < 0)
        return fd;
    int rc = stream_new(fd, true, out);
    if (rc < 0)
        simul_close(fd);
    return rc;
}

int simul_open_unix_connection(const char *path, simul_stream **out)
{
    if (out)
        *out = NULL;
    if (!out)
        return -EINVAL;
    int fd = simul_unix_connect(path);
    if (fd < 0)
        return fd;
    int rc = stream_new(fd, true, out);
    if (rc < 0)
        simul_close(fd);
    return rc;
}

int simul_stream_from_fd(int fd, simul_stream **out)
{
    if (out)
        *out = NULL;
    if (!out || fd < 0)
        return fd < 0 ? -EBADF : -EINVAL;
    if (!simul__loop())
        return -ENXIO;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    bool sock = true;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0) {
        if (type != SOCK_STREAM)
            return -EINVAL;
    } else if (errno == ENOTSOCK) {
        sock = false;
    } else {
        return -errno;
    }
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int rc = stream_new(fd, sock, out);
    if (rc < 0 && !(fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl);
    return rc;
}

/* ---- the stream server -------------------------------------------------------------------- */

/* close_clients / abort_clients on one connection (server.h): never suspends, even when the
 * caller is a task; the handler's calls in progress resume with -ECANCELED, later ones get
 * -EBADF, and the handler's hold keeps the memory until it returns. */
static void server_conn_close(void *conn)
{
    (void)close_stream(conn, false);
}

static void server_conn_abort(void *conn)
{
    (void)simul_stream_abort(conn);
}

typedef struct stream_server {
    simul_stream_handler handler;
    void *arg;
    size_t limit;
    size_t stack_size;
} stream_server;

static int conn_main(void *arg)
{
    simul_stream *s = arg;
    simul_server *srv = s->srv;
    int rc = s->handler(s, s->harg);
    if (s->closing != CLOSING_CLOSE) { /* not given back yet (open, or aborted) */
        simul_stream_close(s);
    } else {
        /* Closed by another task or close_clients, maybe still flushing in a task of its own:
         * the connection counts as live (wait_closed) until its fd is closed, as a transport
         * does until connection_lost. A cancel ends the wait; the close goes on regardless. */
        simul_task *t = simul__task_self();
        while (s->fd >= 0 && park_on(t, &s->closedq) == 0) {
        }
    }
    simul__stream_leave(s); /* the handler's hold: frees the stream once it is closed */
    simul__server_conn_end(srv);
    return rc;
}

static void on_accept(simul_server *srv, void *owner, int fd, const struct sockaddr *peer,
                      socklen_t peerlen)
{
    (void)peer;
    (void)peerlen;
    stream_server *ss = owner;
    simul_stream *s;
    if (stream_new(fd, true, &s) < 0) {
        simul_close(fd);
        return;
    }
    s->limit = ss->limit;
    s->srv = srv;
    s->handler = ss->handler;
    s->harg = ss->arg;
    /* The handler task's hold: if the handler closes the stream itself, the memory stays until
     * the task has finished with it. */
    s->users = 1;
    simul__server_conn_begin(srv);
    simul_task_opts o = {.name = "stream-handler", .stack_size = ss->stack_size};
    if (simul_task_spawn(NULL, conn_main, s, &o) < 0) {
        /* No memory for a task: drop the connection (the peer sees it closed). */
        simul__fd_set_handler(s->f, NULL, NULL);
        simul_close(fd);
        simul__loop_handle_unref(s->loop);
        destroy(s);
        simul__server_conn_end(srv);
    }
}

int simul_start_server_opts(const simul_stream_server_opts *o, simul_stream_handler handler,
                            void *arg, simul_server **out)
{
    if (out)
        *out = NULL;
    if (!o || !handler || !out || (o->unix_path && (o->host || o->port)) || o->limit > LONG_MAX / 2)
        return -EINVAL;
    stream_server *ss = malloc(sizeof *ss);
    if (!ss)
        return -ENOMEM;
    ss->handler = handler;
    ss->arg = arg;
    ss->limit = o->limit ? o->limit : SIMUL_STREAM_LIMIT;
    ss->stack_size = o->stack_size;
    simul__server_opts so = {
        .host = o->host,
        .port = o->port,
        .unix_path = o->unix_path,
        .backlog = o->backlog,
        .flags = o->flags,
        .owner_free = free,
        .conn_close = server_conn_close,
        .conn_abort = server_conn_abort,
    };
    int rc = simul__server_new(&so, on_accept, ss, out);
    if (rc < 0)
        free(ss);
    return rc;
}

int simul_start_server(const char *host, const char *port, simul_stream_handler handler, void *arg,
                       simul_server **out)
{
    simul_stream_server_opts o = {.host = host, .port = port};
    return simul_start_server_opts(&o, handler, arg, out);
}

int simul_start_unix_server(const char *path, simul_stream_handler handler, void *arg,
                            simul_server **out)
{
    if (!path) {
        if (out)
            *out = NULL;
        return -EINVAL;
    }
    simul_stream_server_opts o = {.unix_path = path};
    return simul_start_server_opts(&o, handler, arg, out);
}
