/* sendfile.c — zero-copy file-to-socket transfers (loop.sock_sendfile, loop.sendfile): sendfile(2)
 * on the non-blocking destination, parking on its writability through the fd layer whenever
 * the kernel says EAGAIN. The stream variant first lets the stream's queue drain, so order holds.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "stream.h"

#define CHUNK_MAX (1L << 30)      /* per sendfile(2) call: far below its 0x7ffff000 cap */
#define QUANTUM (8 * 1024 * 1024) /* bytes sent without a wait before other tasks get a turn */

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
    if (r < 0 && e == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return r;
}

/* What sendfile(2) can work with, checked up front so that a bad fd is a clear error and never
 * a blocking call on the loop's thread. */
static int check_fds(int out, int in)
{
    struct stat st;
    if (fstat(in, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return -EINVAL;
    int ifl = fcntl(in, F_GETFL);
    if (ifl < 0)
        return -errno;
    if ((ifl & O_ACCMODE) == O_WRONLY)
        return -EBADF; /* as read(2) says for a file not open for reading */
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

/* The transfer loop. `s` is the stream the fd belongs to, or NULL: once it is closing, its fd
 * may be gone, so every resumption checks it before touching the fd. */
static long transfer(simul_task *t, simul__fd *f, simul_stream *s, int file_fd, int64_t offset,
                     size_t count, size_t *sent)
{
    size_t done = 0;
    long since_wait = 0;
    bool to_eof = count == 0;
    for (;;) {
        size_t want = to_eof ? (size_t)CHUNK_MAX : count - done;
        if (want == 0)
            break;
        if (want > (size_t)CHUNK_MAX)
            want = CHUNK_MAX;
        long rc;
        if (simul__fd_ready(f, SIMUL__DIR_WRITE)) {
            off_t off = (off_t)(offset + (int64_t)done);
            ssize_t n = sendfile_nosigpipe(f->fd, file_fd, &off, want);
            if (n > 0) {
                done += (size_t)n;
                if (sent)
                    *sent = done;
                /* A short count may mean a full socket buffer or the end of the file: the next
                 * call tells (EAGAIN or 0), so the ready bit is not guessed at. */
                since_wait += n;
                if (since_wait < QUANTUM)
                    continue;
                since_wait = 0;
                rc = simul_yield(); /* a reader as fast as us must not starve the loop */
            } else if (n == 0) {
                break; /* end of file */
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                simul__fd_clear(f, SIMUL__DIR_WRITE);
                continue;
            } else {
                return -errno;
            }
        } else {
            rc = simul__task_check(t);
            if (rc == 0)
                rc = simul__fd_wait(f, SIMUL__DIR_WRITE);
            since_wait = 0;
        }
        if (s && s->closing)
            return -ECANCELED;
        if (rc < 0)
            return rc;
    }
    return (long)done;
}

static int check_args(int file_fd, int64_t offset, size_t count)
{
    if (file_fd < 0)
        return -EBADF;
    if (offset < 0 || count > (size_t)LONG_MAX || (uint64_t)count > (uint64_t)(INT64_MAX - offset))
        return -EINVAL;
    return 0;
}

long simul_sock_sendfile(int sock, int file_fd, int64_t offset, size_t count, size_t *sent)
{
    if (sent)
        *sent = 0;
    simul_task *t = simul__task_require(__func__);
    if (!t)
        return -EPERM;
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    if (sock < 0)
        return -EBADF;
    if ((rc = check_args(file_fd, offset, count)) < 0 || (rc = check_fds(sock, file_fd)) < 0)
        return rc;
    simul__fd *f = simul__fd_get(t->loop, sock, &rc);
    if (!f)
        return rc;
    return transfer(t, f, NULL, file_fd, offset, count, sent);
}

/* ---- streams --------------------------------------------------------------------------------- */

#define FLUSH_RECHECK_NS (100 * 1000000LL)

/* Waits until the stream's write queue is empty (its edge handler flushes it), the connection
 * failed, or the stream is closing. */
static int wait_flushed(simul_stream *s, simul_task *t)
{
    while (s->wpos < s->wend && !s->werr && !s->closing) {
        int rc = simul__task_check(t);
        if (rc < 0)
            return rc;
        /* flushq is woken when the queue empties or fails; a close whose own flush was cut short
         * frees the queue without waking it, hence a periodic look as well. */
        simul__wait w = {.unlink = simul__waitq_unlink};
        simul__waitq_push(&s->flushq, &w);
        rc = simul__park(&w, simul__clock_ns() + FLUSH_RECHECK_NS);
        if (rc < 0)
            return rc;
    }
    if (s->closing)
        return -ECANCELED;
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
    s->werr = err;
    s->wpos = s->wend = 0;
    s->paused = 0;
    simul__wait *w;
    while ((w = simul__waitq_pop(&s->drainq)))
        simul__wake(w, 0);
    while ((w = simul__waitq_pop(&s->flushq)))
        simul__wake(w, 0);
}

long simul_stream_sendfile(simul_stream *s, int file_fd, int64_t offset, size_t count, size_t *sent)
{
    if (sent)
        *sent = 0;
    simul_task *t;
    int rc = simul__stream_enter(s, &t, __func__);
    if (rc < 0)
        return rc;
    long r;
    if (s->werr)
        r = s->werr;
    else if (s->eof_wanted)
        r = -ESHUTDOWN;
    else if (s->sending_file)
        r = -EBUSY;
    else if ((r = check_args(file_fd, offset, count)) == 0 &&
             (r = check_fds(s->fd, file_fd)) == 0) {
        s->sending_file = 1; /* from the flush on: a write in between would land inside the file */
        if ((r = wait_flushed(s, t)) == 0) {
            r = transfer(t, s->f, s, file_fd, offset, count, sent);
            if (connection_error(r))
                stream_failed(s, (int)r);
        }
        s->sending_file = 0;
    }
    simul__stream_leave(s);
    return r;
}
