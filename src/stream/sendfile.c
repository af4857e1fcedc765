/* sendfile.c — file-to-socket transfers (loop.sock_sendfile, loop.sendfile): sendfile(2) on the
 * non-blocking destination, parking on its writability (the fd layer's, or a stream bottom's)
 * whenever the kernel says EAGAIN. A stream whose bottom is not a plain fd is copied into. Sources sendfile(2) cannot read (pipes, sockets, devices, files of file systems
 * without splice support) are copied through a buffer instead, as asyncio's fallback=True does:
 * the source is read without blocking the loop and the destination written with the same waits.
 * The stream variant first lets the stream's queue drain, so order holds.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "stream.h"

#define CHUNK_MAX (1L << 30)      /* per sendfile(2) call: far below its 0x7ffff000 cap */
#define QUANTUM (8 * 1024 * 1024) /* bytes sent without a wait before other tasks get a turn */
/* The copy's buffer: many pipefuls, and within SIMUL_FILE_IO_MAX so one pool trip fills it. */
#define COPY_CHUNK (256 * 1024)

/* One transfer in progress. `s` is the stream the destination belongs to, or NULL: once it is
 * closing, its bottom may be gone, so every resumption checks it before touching it. A stream's
 * destination is written and waited on through its bottom; `out` is the fd record where the
 * destination is a plain fd (NULL for a zero-copy custom bottom: no readiness bits then). */
typedef struct xfer {
    simul_task *t;
    simul__fd *out;
    int outfd; /* for sendfile(2) */
    simul_stream *s;
    int in;
    int64_t offset;
    size_t count; /* 0: to the end of the source */
    size_t *sent;
    size_t done;     /* bytes the destination accepted */
    bool copying;    /* the fallback runs */
    bool out_failed; /* the copy's error came from the destination */
    long since_wait; /* bytes moved since the task last let others run */
} xfer;

/* sendfile(2) has no MSG_NOSIGNAL: SIGPIPE is held back for the call and one it raised is taken
 * off the thread again, unless one was already pending (the application's, left alone). */
static ssize_t sendfile_nosigpipe(int out, int in, off_t *off, size_t n)
{
    sigset_t pipe, old, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    ssize_t r;
    do
        r = sendfile(out, in, off, n);
    while (r < 0 && errno == EINTR);
    int e = errno;
    /* Not only on EPIPE: a sendfile that moved some bytes and then met the closed peer returns
     * the count, with SIGPIPE raised all the same (seen with a client that vanished mid-file). */
    if (!was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return r;
}

/* The destination, checked up front so that a bad fd is a clear error and never a blocking
 * call on the loop's thread. */
static int check_dest(int out)
{
    struct stat st;
    if (fstat(out, &st) < 0)
        return -errno;
    if (S_ISSOCK(st.st_mode)) {
        int type = 0;
        socklen_t len = sizeof type;
        if (getsockopt(out, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
            return -errno;
        if (type != SOCK_STREAM)
            return -EINVAL;
    } else if (!S_ISFIFO(st.st_mode)) {
        return -EINVAL; /* a regular file would block the loop on the disk: use the file calls */
    }
    int fl = fcntl(out, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK))
        return -EINVAL; /* a blocking send would stall every task of the loop */
    return 0;
}

/* The source: sets *zero_copy for what sendfile(2) can read (regular files, block devices).
 * Pipes, sockets and character devices are byte streams read from where they stand, so only
 * offset 0 makes sense for them; without the fallback they are -EOPNOTSUPP. */
static int check_source(int in, int64_t offset, bool fallback, bool *zero_copy)
{
    struct stat st;
    if (fstat(in, &st) < 0)
        return -errno;
    int fl = fcntl(in, F_GETFL);
    if (fl < 0)
        return -errno;
    if ((fl & O_ACCMODE) == O_WRONLY)
        return -EBADF; /* as read(2) says for a file not open for reading */
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
        *zero_copy = true;
        return 0;
    }
    if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISCHR(st.st_mode))
        return -EINVAL; /* a directory */
    if (!fallback)
        return -EOPNOTSUPP;
    if (offset != 0)
        return -ESPIPE;
    *zero_copy = false;
    return 0;
}

/* After a suspension: the stream may have begun closing meanwhile, taking the fd with it
 * (-ECONNABORTED then, unless this task was cancelled: simul__stream_resumed). */
static long resumed(const xfer *x, long rc)
{
    if (x->s && x->s->closing)
        return simul__stream_resumed(x->s, x->t, rc < 0 ? (int)rc : 0);
    return rc;
}

/* Suspends until the destination may take more: through the stream's bottom (close and abort
 * end that wait), or on the socket's fd. */
static long dest_wait(xfer *x)
{
    long rc;
    if (x->s) {
        rc = simul__stream_bwait(x->s, x->t, SIMUL_STREAM_WRITE);
    } else {
        rc = simul__task_check(x->t);
        if (rc == 0)
            rc = simul__fd_wait(x->out, SIMUL__DIR_WRITE);
    }
    x->since_wait = 0;
    return resumed(x, rc);
}

/* Counts bytes the destination took; a fast pair of ends must not starve the loop. */
static long moved(xfer *x, size_t n)
{
    x->done += n;
    if (x->sent)
        *x->sent = x->done;
    x->since_wait += (long)n;
    if (x->since_wait < QUANTUM)
        return 0;
    x->since_wait = 0;
    return resumed(x, simul_yield());
}

/* The zero-copy loop. Returns the count sent, or -EOPNOTSUPP when the kernel refused the source at
 * once (EINVAL, ENOSYS, EOPNOTSUPP before any byte went: procfs, some FUSE file systems), so that
 * the caller can copy instead. */
static long zero_copy(xfer *x)
{
    bool to_eof = x->count == 0;
    for (;;) {
        size_t want = to_eof ? (size_t)CHUNK_MAX : x->count - x->done;
        if (want == 0)
            break;
        if (want > (size_t)CHUNK_MAX)
            want = CHUNK_MAX;
        long rc;
        if (!x->out || simul__fd_ready(x->out, SIMUL__DIR_WRITE)) {
            off_t off = (off_t)(x->offset + (int64_t)x->done);
            ssize_t n = sendfile_nosigpipe(x->outfd, x->in, &off, want);
            if (n > 0) {
                /* A short count may mean a full socket buffer or the end of the file: the next
                 * call tells (EAGAIN or 0), so the ready bit is not guessed at. */
                rc = moved(x, (size_t)n);
            } else if (n == 0) {
                break; /* end of file */
            } else if ((errno == EAGAIN || errno == EWOULDBLOCK) && x->out) {
                simul__fd_clear(x->out, SIMUL__DIR_WRITE);
                continue;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                rc = dest_wait(x);
            } else if (x->done == 0 &&
                       (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
                return -EOPNOTSUPP;
            } else {
                return -errno;
            }
        } else {
            rc = dest_wait(x);
        }
        if (rc < 0)
            return rc;
    }
    return (long)x->done;
}

/* ---- the copy (asyncio's fallback) ---------------------------------------------------------- */

/* How the copy reads its source without blocking the loop. */
enum how {
    HOW_RECV,   /* a socket: recv(MSG_DONTWAIT), whatever its O_NONBLOCK says */
    HOW_NOWAIT, /* pipes, devices: preadv2(RWF_NOWAIT) is non-blocking per call, also on an fd
                   the caller keeps blocking (its flags are shared with whoever else holds it) */
    HOW_READ,   /* an O_NONBLOCK fd whose kernel lacks RWF_NOWAIT for it */
    HOW_POOL,   /* a blocking fd without RWF_NOWAIT (a tty), or one that cannot be polled: read
                   on the file pool */
    HOW_PREAD,  /* a regular file sendfile(2) refused: pread on the file pool */
};

typedef struct source {
    enum how how;
    bool nonblock;
    simul__fd *f;          /* the loop's record, once the copy had to wait for the source */
    bool registered_by_us; /* give the registration back when done */
} source;

/* Parks until the source may be readable. The source is not the stream's fd, so the wait is
 * hooked on the stream: its close ends it. */
static int wait_source(const xfer *x, simul__fd *f)
{
    return simul__fd_wait_hooked(f, SIMUL__DIR_READ, x->s ? &x->s->source_wait : NULL);
}

/* One read of at most len bytes, suspending until some are there. Returns the count, 0 at the
 * end of the source, or a negative errno. */
static long source_read(xfer *x, source *src, void *buf, size_t len)
{
    for (;;) {
        ssize_t n;
        switch (src->how) {
        case HOW_PREAD:
            x->since_wait = 0;
            return resumed(x, simul_file_pread(x->in, buf, len, x->offset + (int64_t)x->done));
        case HOW_POOL:
            x->since_wait = 0;
            return resumed(x, simul_file_read(x->in, buf, len));
        case HOW_RECV:
            do
                n = recv(x->in, buf, len, MSG_DONTWAIT);
            while (n < 0 && errno == EINTR);
            break;
        case HOW_NOWAIT:
            do
                n = preadv2(x->in, &(struct iovec){buf, len}, 1, -1, RWF_NOWAIT);
            while (n < 0 && errno == EINTR);
            if (n < 0 && (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)) {
                src->how = src->nonblock ? HOW_READ : HOW_POOL;
                continue;
            }
            break;
        default:
            do
                n = read(x->in, buf, len);
            while (n < 0 && errno == EINTR);
            break;
        }
        if (n >= 0)
            return n;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc;
        if (!src->f) {
            src->f = simul__fd_get(x->t->loop, x->in, &rc);
            if (!src->f)
                return rc;
            src->registered_by_us = !src->f->registered;
        }
        /* The syscall said EAGAIN just now, whatever the record remembered: an edge (or the
         * initial report of a fresh registration) will set the bit again. */
        simul__fd_clear(src->f, SIMUL__DIR_READ);
        rc = simul__task_check(x->t);
        if (rc == 0)
            rc = wait_source(x, src->f);
        x->since_wait = 0;
        if (rc == -EPERM && !src->nonblock) {
            src->how = HOW_POOL; /* an fd epoll refuses: only a thread can wait on it */
            continue;
        }
        rc = (int)resumed(x, rc);
        if (rc < 0)
            return rc;
    }
}

/* Hands buf[0, len) to the destination, all of it unless an error, cancellation or deadline
 * stops it first; *sent follows every byte accepted. */
static long dest_write(xfer *x, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        struct iovec v = {(char *)buf + off, len - off};
        long n = x->s ? simul__stream_bwritev(x->s, &v, 1)
                      : simul__fd_try_write(x->out, v.iov_base, v.iov_len);
        long rc;
        if (n > 0) {
            off += (size_t)n;
            rc = moved(x, (size_t)n);
        } else if (n == -EAGAIN) {
            rc = dest_wait(x);
        } else {
            x->out_failed = n < 0;
            return n < 0 ? n : -EIO; /* 0 from a write of len > 0 does not happen on Linux */
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static long copy(xfer *x, bool zero_copy_refused)
{
    source src = {.how = HOW_PREAD};
    x->copying = true;
    if (!zero_copy_refused) {
        int fl = fcntl(x->in, F_GETFL);
        src.nonblock = fl >= 0 && (fl & O_NONBLOCK);
        int type;
        socklen_t tlen = sizeof type;
        src.how = getsockopt(x->in, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 ? HOW_RECV : HOW_NOWAIT;
    }
    size_t cap = x->count && x->count < COPY_CHUNK ? x->count : COPY_CHUNK;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    long rc = 0;
    for (;;) {
        size_t want = x->count ? x->count - x->done : cap;
        if (want == 0)
            break;
        if (want > cap)
            want = cap;
        long n = source_read(x, &src, buf, want);
        if (n <= 0) {
            rc = n;
            break;
        }
        /* From here, bytes taken from a pipe or socket exist only in buf: an interruption before
         * the destination took them loses them (documented). */
        if ((rc = dest_write(x, buf, (size_t)n)) < 0)
            break;
    }
    free(buf);
    if (src.f && src.registered_by_us && src.f->registered && !src.f->waiters[0].head &&
        !src.f->waiters[1].head && !src.f->cb[0] && !src.f->cb[1] && !src.f->handler)
        simul_fd_forget(x->in); /* the caller may well close() it without simul_close() */
    return rc < 0 ? rc : (long)x->done;
}

/* ---- the calls ------------------------------------------------------------------------------ */

static int check_args(int file_fd, int64_t offset, size_t count)
{
    if (file_fd < 0)
        return -EBADF;
    if (offset < 0 || count > (size_t)LONG_MAX || (uint64_t)count > (uint64_t)(INT64_MAX - offset))
        return -EINVAL;
    return 0;
}

/* Everything checkable before the transfer starts: the arguments, then the destination, then
 * the source (so that a bad destination is reported whatever the source). */
static int check_all(int out, int file_fd, int64_t offset, size_t count, bool fallback, bool *zc)
{
    int rc = check_args(file_fd, offset, count);
    if (rc == 0)
        rc = check_dest(out);
    if (rc == 0)
        rc = check_source(file_fd, offset, fallback, zc);
    return rc;
}

static long run_transfer(xfer *x, bool zc, bool fallback)
{
    if (!zc)
        return copy(x, false);
    long r = zero_copy(x);
    if (r == -EOPNOTSUPP && fallback)
        r = copy(x, true);
    return r;
}

static long sock_sendfile(int sock, int file_fd, int64_t offset, size_t count, size_t *sent,
                          bool fallback, const char *call)
{
    if (sent)
        *sent = 0;
    simul_task *t = simul__task_require(call);
    if (!t)
        return -EPERM;
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    if (sock < 0)
        return -EBADF;
    bool zc = false;
    if ((rc = check_all(sock, file_fd, offset, count, fallback, &zc)) < 0)
        return rc;
    simul__fd *f = simul__fd_get(t->loop, sock, &rc);
    if (!f)
        return rc;
    xfer x = {.t = t, .out = f, .outfd = sock, .in = file_fd, .offset = offset, .count = count,
              .sent = sent};
    return run_transfer(&x, zc, fallback);
}

long simul_sock_sendfile(int sock, int file_fd, int64_t offset, size_t count, size_t *sent)
{
    return sock_sendfile(sock, file_fd, offset, count, sent, true, __func__);
}

long simul_sock_sendfile_nofallback(int sock, int file_fd, int64_t offset, size_t count,
                                    size_t *sent)
{
    return sock_sendfile(sock, file_fd, offset, count, sent, false, __func__);
}

/* ---- streams --------------------------------------------------------------------------------- */

/* Waits until the stream's write queue is empty (its edge handler flushes it), the connection
 * failed, or the stream is closing. */
static int wait_flushed(simul_stream *s, simul_task *t)
{
    while (!simul__wbuf_empty(&s->wq) && !s->werr && !s->closing) {
        /* flushq is woken when the queue empties or fails, and when the stream begins closing. */
        int rc = simul__waitq_park(t, &s->flushq);
        if (rc < 0)
            return rc;
    }
    if (s->closing)
        return simul__stream_resumed(s, t, 0);
    return s->werr;
}

/* Whether err says the connection is broken (the file's errors, -EIO say nothing about it). */
static bool connection_error(long err)
{
    switch (-err) {
    case EPIPE:
    case ECONNRESET:
    case ECONNABORTED:
    case ENOTCONN:
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTUNREACH:
        return true;
    default:
        return false;
    }
}

/* The transfer failed on the connection: later writes and drains report it, as the stream's
 * own writes would have made them. */
static void stream_failed(simul_stream *s, int err)
{
    if (s->werr || s->closing)
        return;
    simul__stream_fail_write(s, err);
}

static long stream_sendfile(simul_stream *s, int file_fd, int64_t offset, size_t count,
                            size_t *sent, bool fallback, const char *call)
{
    if (sent)
        *sent = 0;
    simul_task *t;
    int rc = simul__stream_enter(s, &t, call);
    if (rc < 0)
        return rc;
    long r;
    bool zc = false;
    /* The fd bottom (or a custom one that says bytes written to its fd go out unchanged) can
     * take sendfile(2); any other is written through, so a file is copied as a file sendfile(2)
     * refused is. */
    int outfd = s->plain ? s->fd : (s->bops->fd ? s->bops->fd(s->bctx) : -1);
    bool zc_bottom = outfd >= 0 && (s->bops->flags & SIMUL_STREAM_BOTTOM_ZEROCOPY);
    if (s->werr)
        r = s->werr;
    else if (s->eof_wanted)
        r = -ESHUTDOWN;
    else if (s->sending_file)
        r = -EBUSY;
    else if (zc_bottom)
        r = check_all(outfd, file_fd, offset, count, fallback, &zc);
    else if ((r = check_args(file_fd, offset, count)) == 0 &&
             (r = check_source(file_fd, offset, fallback, &zc)) == 0 && zc && !fallback)
        r = -EOPNOTSUPP; /* a file, but no zero-copy into this bottom */
    if (r == 0) {
        s->sending_file = 1; /* from the flush on: a write in between would land inside the file */
        if ((r = wait_flushed(s, t)) == 0) {
            xfer x = {.t = t, .out = s->plain ? s->f : NULL, .outfd = outfd, .s = s, .in = file_fd};
            x.offset = offset;
            x.count = count;
            x.sent = sent;
            r = zc && !zc_bottom ? copy(&x, true) : run_transfer(&x, zc, fallback);
            /* A copy knows which end failed (a source socket's reset is not the stream's);
             * sendfile(2) does not say, but a file's errors are never connection ones. */
            if (connection_error(r) && (!x.copying || x.out_failed))
                stream_failed(s, (int)r);
        }
        s->sending_file = 0;
    }
    simul__stream_leave(s);
    return r;
}

long simul_stream_sendfile(simul_stream *s, int file_fd, int64_t offset, size_t count, size_t *sent)
{
    return stream_sendfile(s, file_fd, offset, count, sent, true, __func__);
}

long simul_stream_sendfile_nofallback(simul_stream *s, int file_fd, int64_t offset, size_t count,
                                      size_t *sent)
{
    return stream_sendfile(s, file_fd, offset, count, sent, false, __func__);
}
