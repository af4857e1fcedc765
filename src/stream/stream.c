/* stream.c — streams (asyncio.open_connection / start_server): making them over a bottom, the
 * writing half, closing, and the stream server. A write goes to the bottom at once when nothing
 * is queued (the echo path: one send, no copy, no loop pass); the rest is queued and flushed in
 * the background (by the fd's edge handler for the fd bottom, else by a flusher task), so it
 * drains even when no task waits, and drain() is only flow control. */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "stream.h"

/* `closing` (stream.h) has two values here. Every other file reads it as a flag: no new calls,
 * and the bottom is not to be touched. Abort closes the bottom at once but leaves the handle to
 * simul_stream_close, so an aborted stream is freed exactly once, by the call that frees every
 * stream; an aborted stream is `gone` while fd_closed is still 0. */
enum {
    CLOSING_CLOSE = 1, /* simul_stream_close began: the handle is given back */
    CLOSING_ABORT = 2, /* aborted: the bottom is gone, the handle waits for simul_stream_close */
};

static void destroy(simul_stream *s)
{
    simul__stream_rbuf_died(s);
    simul__wbuf_drop(&s->wq);
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

/* ---- the bottom ---------------------------------------------------------------------------- */

int simul__stream_bwait(simul_stream *s, simul_task *t, int dir)
{
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    /* Listed while inside, so that close and abort can end the wait (end_bottom_waits). */
    /* Off the run stack for a compact task: close and abort walk this list while t sleeps. */
    SIMUL__REC(simul__bwaiter, me, t);
    if (!me)
        return -ENOMEM;
    *me = (simul__bwaiter){.t = t, .next = s->bwaiters};
    s->bwaiters = me;
    rc = s->plain ? simul__fd_wait(s->f, dir) : s->bops->wait(s->bctx, dir);
    simul__bwaiter **pp = &s->bwaiters;
    while (*pp != me)
        pp = &(*pp)->next;
    *pp = me->next;
    return rc;
}

/* Ends the bottom waits of the stream's calls (not the flusher's unless `flusher`), as a
 * cancellation ends a wait: through the wait record the task is parked in, whatever the bottom
 * parked it on. Each resumes with -ECONNABORTED (not -ECANCELED: that says "you were cancelled"),
 * finds the stream closing and does not touch the bottom again. */
static void end_bottom_waits(simul_stream *s, bool flusher)
{
    for (simul__bwaiter *b = s->bwaiters; b; b = b->next) {
        if (!flusher && b->t == s->flusher)
            continue;
        simul__task_interrupt(b->t, -ECONNABORTED);
    }
}

/* The built-in fd bottom. Its ctx is the stream itself (the fd record and number live there),
 * and a plain stream never calls these: stream.h's inline paths call the fd layer directly.
 * A wrapping bottom calls them through the table. */
static long fd_read(void *ctx, void *buf, size_t len)
{
    return simul__fd_try_read(((simul_stream *)ctx)->f, buf, len);
}

static long fd_writev(void *ctx, const struct iovec *iov, int cnt)
{
    return simul__fd_try_writev(((simul_stream *)ctx)->f, iov, cnt);
}

static int fd_wait(void *ctx, int dir)
{
    simul_stream *s = ctx;
    return s->fd < 0 ? -EBADF : simul__fd_task_wait(s->f, dir);
}

static int fd_shutdown(void *ctx)
{
    simul_stream *s = ctx;
    return shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN ? -errno : 0;
}

static void fd_close(void *ctx, bool abort)
{
    simul_stream *s = ctx;
    if (s->fd < 0)
        return;
    if (abort && s->sock) {
        /* Without linger 0 the close would send a FIN after whatever the kernel still holds;
         * with it the kernel drops that and resets the connection. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (s->loop == simul__loop()) {
        simul__fd_set_handler(s->f, NULL, NULL);
        simul_close(s->fd);
    } else {
        close(s->fd); /* the loop is gone: so is every record and every waiter */
    }
    s->fd = -1;
}

static int fd_fd(void *ctx)
{
    return ((simul_stream *)ctx)->fd;
}

static const simul_stream_ops fd_sock_ops = {
    .read = fd_read,
    .writev = fd_writev,
    .wait = fd_wait,
    .shutdown = fd_shutdown,
    .close = fd_close,
    .fd = fd_fd,
    .flags = SIMUL_STREAM_BOTTOM_ZEROCOPY,
};

/* Pipes, ttys: no half-close. */
static const simul_stream_ops fd_pipe_ops = {
    .read = fd_read,
    .writev = fd_writev,
    .wait = fd_wait,
    .close = fd_close,
    .fd = fd_fd,
    .flags = SIMUL_STREAM_BOTTOM_ZEROCOPY,
};

/* The bottom goes (once). */
static void close_bottom(simul_stream *s, bool abort)
{
    if (s->gone)
        return;
    s->gone = 1;
    s->bops->close(s->bctx, abort);
}

/* ---- sending ------------------------------------------------------------------------------ */

/* The connection failed: the queue can never go, so it is dropped (memory back at once) and
 * everyone waiting for it hears. */
void simul__stream_fail_write(simul_stream *s, int err)
{
    if (!s->werr)
        s->werr = err;
    simul__wbuf_drop(&s->wq);
    simul__waitq_wake_all(&s->drainq, 0);
    simul__waitq_wake_all(&s->flushq, 0);
}

static void shut_wr(simul_stream *s)
{
    s->eof_sent = 1;
    int rc = s->bops->shutdown(s->bctx);
    if (rc < 0)
        simul__stream_fail_write(s, rc);
}

/* Sends what is queued until the bottom refuses; wakes drainers below the low-water mark. Runs
 * from the loop's dispatch on every WRITE edge while something is queued (the fd bottom), or
 * from the flusher task. */
static void flush(simul_stream *s)
{
    if (s->gone)
        return;
    struct iovec v;
    while (simul__wbuf_iov(&s->wq, &v)) {
        long n = simul__stream_bwritev(s, &v, 1);
        if (n > 0) {
            simul__wbuf_consume(&s->wq, (size_t)n); /* empty: memory back (wbuf.h) */
        } else if (n == -EAGAIN || n == 0) {
            break;
        } else {
            simul__stream_fail_write(s, (int)n);
            return;
        }
    }
    if (simul__wbuf_empty(&s->wq)) {
        if (s->eof_wanted && !s->eof_sent)
            shut_wr(s);
        simul__waitq_wake_all(&s->flushq, 0);
    }
    if (simul__wbuf_resume_check(&s->wq))
        simul__waitq_wake_all(&s->drainq, 0);
}

static void on_edge(void *owner, uint32_t events)
{
    simul_stream *s = owner;
    /* Under a wrapping bottom the flusher task sends: the wrapper may need to read first. */
    if ((events & SIMUL__EV_WRITE) && s->plain && !simul__wbuf_empty(&s->wq))
        flush(s);
}

/* A bottom without fd edges: a task flushes the queue, parked in the bottom's WRITE wait while
 * it cannot go. It ends when the queue is empty or failed, or the stream is aborted (which ends
 * its wait); a close waits for it through flushq as for the edge-driven flush. */
static int flusher_main(void *arg)
{
    simul_stream *s = arg;
    simul_task *t = simul__task_self();
    for (;;) {
        flush(s);
        if (simul__wbuf_empty(&s->wq) || s->werr || s->gone || s->plain)
            break;
        int rc = simul__stream_bwait(s, t, SIMUL_STREAM_WRITE);
        if (s->gone || s->werr)
            break;
        if (rc < 0) {
            /* The bottom broke, or this task was cancelled (a loop shutting down): the queue
             * cannot go, and a close waiting for it must hear. */
            simul__stream_fail_write(s, rc);
            break;
        }
    }
    s->flusher = NULL;
    simul__stream_leave(s);
    return 0;
}

/* Something is queued on a bottom without fd edges: make sure a flusher runs. 0 or -ENOMEM. */
static int start_flusher(simul_stream *s)
{
    if (s->plain || s->flusher)
        return 0;
    simul_task_opts o = {.name = "stream-flush", .stack_size = 0};
    simul_task *h;
    int rc = simul_task_spawn(&h, flusher_main, s, &o);
    if (rc < 0)
        return rc;
    s->users++; /* its hold: the record outlives a close until the task has left */
    s->flusher = h; /* valid until the task ends (it clears this first) */
    simul_task_detach(h);
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
    if (simul__wbuf_empty(&s->wq)) {
        /* Nothing queued, so order allows the bottom to have it now: the common case costs
         * exactly one send and the data is never copied. */
        long n = simul__stream_bwritev(s, iov, nfirst);
        if (n >= 0 && (size_t)n == total)
            return 0;
        if (n >= 0) {
            sent = (size_t)n;
        } else if (n != -EAGAIN) {
            simul__stream_fail_write(s, (int)n);
            return (int)n;
        }
    }
    int rc = simul__wbuf_append_iov(&s->wq, iov, cnt, sent, total);
    if (rc == 0)
        rc = start_flusher(s);
    if (rc < 0) {
        if (sent || !simul__wbuf_empty(&s->wq))
            simul__stream_fail_write(s, rc); /* part of it went: the byte stream has a hole */
        return rc;
    }
    simul__wbuf_pause_check(&s->wq);
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
            rc = simul__stream_resumed(s, t, rc);
            break;
        }
        if (s->werr || s->rerr) { /* as asyncio: a broken connection is reported here */
            rc = s->werr ? s->werr : s->rerr;
            break;
        }
        if (!s->wq.paused)
            break;
        if ((rc = simul__waitq_park(t, &s->drainq)) < 0)
            break;
    }
    simul__stream_leave(s);
    return rc;
}

int simul_stream_set_write_buffer_limits(simul_stream *s, size_t high, size_t low)
{
    if (!s || low > high)
        return -EINVAL;
    s->wq.high = high;
    s->wq.low = low;
    if (!simul__wbuf_pause_check(&s->wq) && simul__wbuf_resume_check(&s->wq))
        simul__waitq_wake_all(&s->drainq, 0);
    return 0;
}

size_t simul_stream_write_buffer_size(const simul_stream *s)
{
    return s ? simul__wbuf_len(&s->wq) : 0;
}

bool simul_stream_can_write_eof(const simul_stream *s)
{
    return s && s->bops->shutdown;
}

int simul_stream_write_eof(simul_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->closing)
        return -EBADF;
    if (!s->bops->shutdown)
        return -EOPNOTSUPP;
    if (s->werr)
        return s->werr;
    if (s->eof_wanted)
        return 0;
    if (s->sending_file)
        return -EBUSY;
    s->eof_wanted = 1;
    if (simul__wbuf_empty(&s->wq))
        shut_wr(s);
    return s->werr;
}

/* ---- closing ------------------------------------------------------------------------------ */

/* The bottom goes; the record goes once the last task inside a call has left. */
static void finish(simul_stream *s)
{
    simul__wbuf_drop(&s->wq);
    if (s->loop == simul__loop()) {
        /* A flusher still parked (a close cut short by a deadline) must be out of the bottom
         * before it goes: it resumes, finds the stream gone and leaves. */
        end_bottom_waits(s, true);
        close_bottom(s, false); /* unless abort closed it */
        simul__loop_handle_unref(s->loop);
        simul__waitq_wake_all(&s->closedq, 0);
    } else {
        close_bottom(s, false); /* the loop is gone: so is every waiter */
    }
    s->fd_closed = 1;
    simul__stream_leave(s); /* close's own count */
}

/* Waits until the queue is flushed or the connection failed. */
static int wait_flushed(simul_stream *s, simul_task *t)
{
    int rc = 0;
    while (rc == 0 && !simul__wbuf_empty(&s->wq) && !s->werr)
        rc = simul__waitq_park(t, &s->flushq);
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
        /* Calls in progress in other tasks end with -ECONNABORTED: a reader or a sendfile parked
         * in the bottom, and drainers (they see `closing` when they resume). The flusher goes
         * on: the close waits for it. */
        end_bottom_waits(s, false);
        simul__waitq_wake_all(&s->drainq, 0);
        /* A stream_sendfile waiting for the queue or for its source (close has not parked on
         * flushq yet, so only it is there). */
        simul__waitq_wake_all(&s->flushq, 0);
        simul__fd_wait_end(&s->source_wait, -ECONNABORTED);
    }
    int rc = 0;
    if (here && !simul__wbuf_empty(&s->wq) && !s->werr) {
        simul_task *t = may_suspend ? simul__task_self() : NULL;
        if (t) {
            rc = wait_flushed(s, t);
        } else {
            flush(s);
            simul_task_opts o = {.name = "stream-close", .stack_size = 0};
            bool left = !simul__wbuf_empty(&s->wq) && !s->werr;
            if (left && simul_task_spawn(NULL, close_in_task, s, &o) == 0)
                return 0; /* that task finishes the close */
            if (left)
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

int simul_stream_retain(simul_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->closing == CLOSING_CLOSE || s->fd_closed)
        return -EBADF;
    s->holders++;
    return 0;
}

int simul_stream_release(simul_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->holders > 0) {
        s->holders--;
        return 0;
    }
    return simul_stream_close(s);
}

int simul_stream_abort(simul_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->gone)
        return s->fd_closed ? -EBADF : 0; /* closed (the handle is invalid), or aborted already */
    if (!s->closing)
        s->closing = CLOSING_ABORT;
    /* A close waiting for the flush (in a task, or the stream-close task) resumes to find the
     * queue gone and reports this as what lost its data. */
    if (!s->werr)
        s->werr = -ECONNABORTED;
    simul__wbuf_drop(&s->wq);
    if (s->loop == simul__loop()) {
        /* Woken before the bottom goes, with the answer close gives them: their calls see
         * `closing` and return without touching the bottom (or the fd record, which a new fd
         * may reuse from now on). */
        end_bottom_waits(s, true);
        simul__waitq_wake_all(&s->drainq, 0);
        simul__waitq_wake_all(&s->flushq, 0);
        simul__fd_wait_end(&s->source_wait, -ECONNABORTED);
        close_bottom(s, true);
        simul__waitq_wake_all(&s->closedq, 0);
    } else {
        close_bottom(s, true);
    }
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
    while (rc == 0 && !s->gone) /* closed, or aborted */
        rc = simul__waitq_park(t, &s->closedq);
    simul__stream_leave(s);
    return rc;
}

bool simul_stream_is_closing(const simul_stream *s)
{
    return s && s->closing;
}

/* The fd under the bottom, -1 for none. */
static int bottom_fd(const simul_stream *s)
{
    if (s->plain)
        return s->fd;
    return s->bops->fd ? s->bops->fd(s->bctx) : -1;
}

int simul_stream_fd(const simul_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->gone)
        return -EBADF;
    int fd = bottom_fd(s);
    return fd < 0 ? -EOPNOTSUPP : fd;
}

static int name_of(const simul_stream *s, struct sockaddr_storage *addr, bool peer)
{
    if (!s || !addr)
        return -EINVAL;
    if (s->gone)
        return -EBADF;
    int fd = bottom_fd(s);
    if (fd < 0)
        return -ENOTSOCK;
    socklen_t len = sizeof *addr;
    int r = peer ? getpeername(fd, (struct sockaddr *)addr, &len)
                 : getsockname(fd, (struct sockaddr *)addr, &len);
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

/* A stream record with the defaults, on no bottom yet. */
static simul_stream *stream_alloc(simul_loop *loop)
{
    simul_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    simul__stream_rbuf_born();
    s->loop = loop;
    s->fd = -1;
    s->limit = SIMUL_STREAM_LIMIT;
    s->wq.high = SIMUL_STREAM_HIGH_WATER;
    s->wq.low = SIMUL_STREAM_LOW_WATER;
    return s;
}

/* The stream is made: it counts as an open handle from now on. */
static void stream_opened(simul_loop *loop, simul_stream *s, simul_stream **out)
{
    simul__loop_handle_ref(loop); /* until the bottom is closed: simul_loop_close refuses while a stream is open */
    *out = s;
}

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
    simul_stream *s = stream_alloc(loop);
    if (!s)
        return -ENOMEM;
    s->f = f;
    s->fd = fd;
    s->sock = sock;
    s->plain = 1;
    s->bops = sock ? &fd_sock_ops : &fd_pipe_ops;
    s->bctx = s;
    /* Stream sockets and pipes alike: a short read means the kernel had no more. */
    f->stream = 1;
    f->sock = sock;
    f->typed = 1;
    if ((rc = simul__fd_set_handler(f, on_edge, s)) < 0) {
        if (f->handler == on_edge)
            simul__fd_set_handler(f, NULL, NULL);
        destroy(s);
        return rc;
    }
    stream_opened(loop, s, out);
    return 0;
}

static bool ops_ok(const simul_stream_ops *ops)
{
    return ops && ops->read && ops->writev && ops->wait && ops->close;
}

int simul_stream_from_bottom(const simul_stream_ops *ops, void *ctx, simul_stream **out)
{
    if (out)
        *out = NULL;
    if (!out || !ops_ok(ops))
        return -EINVAL;
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    simul_stream *s = stream_alloc(loop);
    if (!s)
        return -ENOMEM;
    s->bops = ops;
    s->bctx = ctx;
    stream_opened(loop, s, out);
    return 0;
}

int simul_stream_replace_bottom(simul_stream *s, const simul_stream_ops *ops, void *ctx)
{
    if (!s || !ops_ok(ops))
        return -EINVAL;
    if (s->closing || s->gone)
        return -EBADF;
    if (s->werr || s->rerr)
        return s->werr ? s->werr : s->rerr;
    if (s->eof_wanted || s->eof)
        return -ESHUTDOWN;
    /* Queued bytes belong to the old bottom's byte stream; a task inside a read or a sendfile is
     * using the old bottom right now. */
    if (!simul__wbuf_empty(&s->wq) || s->reader || s->sending_file || s->flusher)
        return -EBUSY;
    /* Bytes read ahead from the old bottom came after the switch point: the new one reads them
     * first (the PROXY header + ClientHello case that asyncio's start_tls once lost). */
    if (s->rend > s->rpos) {
        if (!ops->unread)
            return -EBUSY;
        int rc = ops->unread(ctx, s->rbuf + s->rpos, s->rend - s->rpos);
        if (rc < 0)
            return rc;
        s->rpos = s->rend = 0;
    }
    s->skip_line = 0;
    s->bops = ops;
    s->bctx = ctx;
    s->plain = 0; /* the fd's edges no longer flush: the new bottom may need to read first */
    return 0;
}

int simul_stream_wait_bottom(simul_stream *s, int dir)
{
    simul_task *t;
    int rc = simul__stream_enter(s, &t, __func__);
    if (rc < 0)
        return rc;
    if (dir != SIMUL_STREAM_READ && dir != SIMUL_STREAM_WRITE)
        rc = -EINVAL;
    else
        rc = simul__stream_bwait(s, t, dir);
    /* the bottom may be closed already: the caller must not touch it */
    rc = simul__stream_resumed(s, t, rc);
    simul__stream_leave(s);
    return rc;
}

const simul_stream_ops *simul_stream_bottom(const simul_stream *s, void **ctx)
{
    const simul_stream_ops *ops = s && !s->gone ? s->bops : NULL;
    if (ctx)
        *ctx = ops ? s->bctx : NULL;
    return ops;
}

int simul_open_connection(const char *host, const char *port, simul_stream **out)
{
    if (out)
        *out = NULL;
    if (!out)
        return -EINVAL;
    if (!simul__task_require(__func__)) /* debug mode names this call, not the one below */
        return -EPERM;
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
    if (!simul__task_require(__func__)) /* debug mode names this call, not the one below */
        return -EPERM;
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
 * caller is a task; the handler's calls in progress resume with -ECONNABORTED, later ones get
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
    bool shared = s->closing != CLOSING_CLOSE && s->holders > 0;
    if (shared)
        s->holders--; /* the handler's hold ends; the last simul_stream_release closes it */
    if (s->closing != CLOSING_CLOSE && !shared) { /* not given back yet (open, or aborted) */
        simul_stream_close(s);
    } else {
        /* Closed by another task or close_clients, maybe still flushing in a task of its own:
         * the connection counts as live (wait_closed) until its fd is closed, as a transport
         * does until connection_lost. A cancel ends the wait; the close goes on regardless. */
        simul_task *t = simul__task_self();
        while (!s->gone && simul__waitq_park(t, &s->closedq) == 0) {
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
        .socks = o->socks,
        .n_socks = o->n_socks,
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
