/* fdwait.c — suspending a task until an fd is ready: the primitive under all of simul's I/O.
 * An fd is registered once, edge-triggered for both directions, and a per-fd "may be ready" bit
 * remembers each edge, so a task tries its syscall first and parks only after EAGAIN (or a short
 * transfer): no epoll_ctl per wait. User reader/writer callbacks switch the fd to level mode. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io.h"

/* The loop's io state (simul__loop_io): made on first use, when it also takes the loop's I/O
 * dispatch and a close hook, so the core never names this layer. */
struct simul__fdtab {
    simul__fd **v; /* indexed by fd; records live until the loop closes */
    int cap;
    simul__close_hook on_close;
};

#define RW (SIMUL__EV_READ | SIMUL__EV_WRITE)

/* Event keys carry the record's generation, so an event queued for an fd that was forgotten
 * (and maybe reopened with the same number) in the same batch is recognised as stale. Bit 63
 * keeps keys apart from pointers (a backend may register its own wake-up under a pointer). */
static void *key_of(const simul__fd *f)
{
    return (void *)(uintptr_t)((1ull << 63) | ((uint64_t)f->gen << 32) | (uint32_t)f->fd);
}

static simul__fd *lookup(simul_loop *loop, int fd)
{
    struct simul__fdtab *t = simul__loop_io(loop);
    return (t && fd >= 0 && fd < t->cap) ? t->v[fd] : NULL;
}

static void io_event(simul_loop *loop, void *data, uint32_t events);
static void fdtab_close(simul_loop *loop, void *arg);

simul__fd *simul__fd_get(simul_loop *loop, int fd, int *err)
{
    if (!loop) {
        *err = -ENXIO;
        return NULL;
    }
    simul__fd *f = lookup(loop, fd);
    if (SIMUL__LIKELY(f))
        return f;
    if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
        *err = -EBADF;
        return NULL;
    }
    struct simul__fdtab *t = simul__loop_io(loop);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) {
            *err = -ENOMEM;
            return NULL;
        }
        simul__loop_set_io(loop, io_event, t);
        t->on_close = (simul__close_hook){.fn = fdtab_close, .arg = t};
        simul__loop_close_hook_add(loop, &t->on_close);
    }
    if (fd >= t->cap) {
        int cap = t->cap ? t->cap : 64;
        while (cap <= fd)
            cap *= 2;
        simul__fd **v = realloc(t->v, (size_t)cap * sizeof *v);
        if (!v) {
            *err = -ENOMEM;
            return NULL;
        }
        for (int i = t->cap; i < cap; i++)
            v[i] = NULL;
        t->v = v;
        t->cap = cap;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        *err = -ENOMEM;
        return NULL;
    }
    f->fd = fd;
    f->gen = 1;
    f->ready = RW; /* unknown: try the syscall */
    t->v[fd] = f;
    return f;
}

static void learn_type(simul__fd *f)
{
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(f->fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0) {
        f->sock = 1;
        f->stream = type == SOCK_STREAM;
    } else {
        f->sock = 0;
        f->stream = errno == ENOTSOCK; /* pipes, ttys, eventfds: a short read drains */
    }
    f->typed = 1;
}

void simul__fd_wake_all(simul__fd *f, int dir, int result)
{
    simul__waitq_wake_all(&f->waiters[dir], result);
}

/* Drops the registration and everything attached to it; the record stays for reuse. */
static void reset(simul_loop *loop, simul__fd *f, bool del)
{
    if (f->registered) {
        if (del) {
            simul__backend *b = simul__loop_backend(loop);
            b->ops->del(b, f->fd);
        }
        f->registered = 0;
        simul__loop_io_count(loop, -1);
    }
    simul__fd_wake_all(f, SIMUL__DIR_READ, -EBADF);
    simul__fd_wake_all(f, SIMUL__DIR_WRITE, -EBADF);
    f->cb[0] = f->cb[1] = NULL;
    f->handler = NULL;
    f->owner = NULL;
    f->level = 0;
    f->mask = 0;
    f->ready = RW;
    f->typed = 0;
    f->hup = 0;
    f->gen++;
}

simul__fd *simul__fd_fresh(simul_loop *loop, int fd, bool stream, int *err)
{
    simul__fd *f = lookup(loop, fd);
    if (f) {
        /* A previous fd with this number was closed without simul_close(): its registration
         * died with it (unless it was dup'ed), so delete and forget quietly. */
        if (f->registered || f->waiters[0].head || f->waiters[1].head || f->cb[0] || f->cb[1] ||
            f->handler)
            reset(loop, f, true);
    } else if (!(f = simul__fd_get(loop, fd, err))) {
        return NULL;
    }
    f->stream = stream;
    f->hup = 0;
    f->sock = 1;
    f->typed = 1;
    f->ready = RW;
    return f;
}

/* The registration f should have: level mode with the callbacks' (and waiters') interest while
 * user callbacks exist, else edge-triggered for both directions. */
static int apply(simul__fd *f, bool rearm)
{
    simul_loop *loop = simul__loop();
    uint8_t level = 0, mask = RW;
    if (f->cb[0] || f->cb[1]) {
        level = 1;
        mask = (uint8_t)((f->cb[0] || f->waiters[0].head ? SIMUL__EV_READ : 0) |
                         (f->cb[1] || f->waiters[1].head ? SIMUL__EV_WRITE : 0));
    }
    if (f->registered && !rearm && level == f->level && mask == f->mask)
        return 0;
    uint32_t ev = mask | (level ? SIMUL__EV_LEVEL : 0);
    simul__backend *b = simul__loop_backend(loop);
    int rc;
    if (f->registered) {
        rc = b->ops->mod(b, f->fd, ev, key_of(f));
        if (rc == -ENOENT) /* closed and reopened behind our back: register the new file */
            rc = b->ops->add(b, f->fd, ev, key_of(f));
    } else {
        rc = b->ops->add(b, f->fd, ev, key_of(f));
        if (rc == -EEXIST)
            rc = b->ops->mod(b, f->fd, ev, key_of(f));
        if (rc == 0) {
            f->registered = 1;
            simul__loop_io_count(loop, 1);
        }
    }
    if (rc == 0) {
        f->level = level;
        f->mask = mask;
    }
    return rc;
}

int simul__fd_register(simul__fd *f)
{
    return f->registered ? 0 : apply(f, false);
}

int simul__fd_wait_hooked(simul__fd *f, int dir, simul__wait **hook)
{
    if (simul__fd_ready(f, dir))
        return 0;
    int rc = f->level ? apply(f, false) : simul__fd_register(f);
    if (rc < 0)
        return rc;
    SIMUL__REC(simul__wait, w, simul__task_self());
    if (!w)
        return -ENOMEM;
    *w = (simul__wait){.unlink = simul__waitq_unlink, .fd = f->fd,
                       .kind = dir == SIMUL__DIR_READ ? SIMUL__WAIT_FD_READ : SIMUL__WAIT_FD_WRITE};
    simul__waitq_push(&f->waiters[dir], w);
    if (hook)
        *hook = w;
    rc = simul__park(w, SIMUL__INF);
    if (hook && *hook == w)
        *hook = NULL;
    return rc;
}

int simul__fd_wait(simul__fd *f, int dir)
{
    return simul__fd_wait_hooked(f, dir, NULL);
}

void simul__fd_wait_end(simul__wait **hook, int result)
{
    simul__wait *w = *hook;
    if (!w)
        return;
    *hook = NULL;
    simul__waitq_remove(w);
    simul__wake(w, result);
}

/* The loop's I/O dispatch: an edge (or a level report) for one registration. */
static void io_event(simul_loop *loop, void *data, uint32_t events)
{
    uint64_t key = (uint64_t)(uintptr_t)data;
    simul__fd *f = lookup(loop, (int)(uint32_t)key);
    if (!f || !f->registered || (uint32_t)((key >> 32) & 0x7fffffffu) != (f->gen & 0x7fffffffu))
        return; /* forgotten since the event was queued */
    uint32_t gen = f->gen;
    f->ready |= (uint8_t)(events & RW);
    if (events & SIMUL__EV_HUP)
        f->hup = 1;
    if (events & SIMUL__EV_READ)
        simul__fd_wake_all(f, SIMUL__DIR_READ, 0);
    if (events & SIMUL__EV_WRITE)
        simul__fd_wake_all(f, SIMUL__DIR_WRITE, 0);
    if (f->handler)
        f->handler(f->owner, events);
    /* Callbacks may remove themselves or forget the fd: re-check before each. */
    if ((events & SIMUL__EV_READ) && f->gen == gen && f->cb[0])
        f->cb[0](f->fd, f->cb_arg[0]);
    if ((events & SIMUL__EV_WRITE) && f->gen == gen && f->cb[1])
        f->cb[1](f->fd, f->cb_arg[1]);
    /* Level mode reports a direction until it is dropped: drop interest no one holds. */
    if (f->gen == gen && f->level)
        apply(f, false);
}

/* The close hook: the records go with the loop (the backend, closed after, drops the
 * registrations). */
static void fdtab_close(simul_loop *loop, void *arg)
{
    struct simul__fdtab *t = arg;
    for (int i = 0; i < t->cap; i++)
        free(t->v[i]);
    free(t->v);
    free(t);
    simul__loop_set_io(loop, NULL, NULL);
}

int simul__fd_set_handler(simul__fd *f, simul__fd_handler h, void *owner)
{
    if (h && (f->cb[0] || f->cb[1]))
        return -EBUSY;
    f->handler = h;
    f->owner = owner;
    int rc = h ? simul__fd_register(f) : 0;
    if (rc < 0) { /* e.g. -EPERM for a regular file: leave nothing installed */
        f->handler = NULL;
        f->owner = NULL;
    }
    return rc;
}

/* ---- transfers ---------------------------------------------------------------------------- */

/* writev(2) on a pipe, tty, ...: no MSG_NOSIGNAL there, so SIGPIPE is held back for the call and
 * one it raised is taken off the thread again (unless one was pending before). Not the hot path:
 * sockets use send. */
static ssize_t nosigpipe_writev(int fd, const struct iovec *iov, int cnt)
{
    sigset_t pipe, old, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    ssize_t n = writev(fd, iov, cnt);
    int e = errno;
    if (n < 0 && e == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return n;
}

static long after_read(simul__fd *f, ssize_t n, size_t len)
{
    if (n > 0) {
        if (!f->typed)
            learn_type(f);
        if (f->stream && (size_t)n < len && !f->hup)
            simul__fd_clear(f, SIMUL__DIR_READ); /* drained: the next arrival is a new edge */
        return n;
    }
    if (n == 0)
        return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        simul__fd_clear(f, SIMUL__DIR_READ);
        return -EAGAIN;
    }
    return -errno;
}

static long after_write(simul__fd *f, ssize_t n, size_t len)
{
    if (n >= 0) {
        if ((size_t)n < len)
            simul__fd_clear(f, SIMUL__DIR_WRITE); /* the buffer is full */
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        simul__fd_clear(f, SIMUL__DIR_WRITE);
        return -EAGAIN;
    }
    return -errno;
}

long simul__fd_try_read(simul__fd *f, void *buf, size_t len)
{
    if (!simul__fd_ready(f, SIMUL__DIR_READ))
        return -EAGAIN;
    ssize_t n;
    do /* recv on a socket skips the file layer read(2) goes through (~0.3 us less in the kernel) */
        n = f->sock ? recv(f->fd, buf, len, 0) : read(f->fd, buf, len);
    while (n < 0 && errno == EINTR);
    return after_read(f, n, len);
}

long simul__fd_try_recv(simul__fd *f, void *buf, size_t len, int flags)
{
    if (!simul__fd_ready(f, SIMUL__DIR_READ))
        return -EAGAIN;
    ssize_t n;
    do
        n = recv(f->fd, buf, len, flags | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (flags & MSG_PEEK)
        return n >= 0 ? n : after_read(f, n, len);
    return after_read(f, n, len);
}

long simul__fd_try_write(simul__fd *f, const void *buf, size_t len)
{
    if (!simul__fd_ready(f, SIMUL__DIR_WRITE))
        return -EAGAIN;
    if (!f->typed)
        learn_type(f);
    ssize_t n;
    do
        n = f->sock ? send(f->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT)
                    : nosigpipe_writev(f->fd, &(struct iovec){(void *)buf, len}, 1);
    while (n < 0 && errno == EINTR);
    return after_write(f, n, len);
}

long simul__fd_try_writev(simul__fd *f, const struct iovec *iov, int iovcnt)
{
    if (iovcnt == 1) /* the common case: send/write, no msghdr */
        return simul__fd_try_write(f, iov[0].iov_base, iov[0].iov_len);
    if (!simul__fd_ready(f, SIMUL__DIR_WRITE))
        return -EAGAIN;
    if (!f->typed)
        learn_type(f);
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n;
    do
        n = f->sock ? sendmsg(f->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) : nosigpipe_writev(f->fd, iov, iovcnt);
    while (n < 0 && errno == EINTR);
    return after_write(f, n, len);
}

int simul__fd_task_wait(simul__fd *f, int dir)
{
    simul_task *t = simul__task_self();
    int rc = t ? simul__task_check(t) : -EPERM;
    return rc < 0 ? rc : simul__fd_wait(f, dir);
}

/* ---- public: waits, callbacks, forgetting ------------------------------------------------- */

static int wait_public(int fd, int dir, const char *call)
{
    simul_task *t = simul__task_require(call);
    if (!t)
        return -EPERM;
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    simul__fd *f = simul__fd_get(t->loop, fd, &rc);
    if (!f)
        return rc;
    /* Level semantics over an edge registration: forget what we knew and re-arm, which makes
     * the kernel report the fd's current state as a fresh edge. */
    simul__fd_clear(f, dir);
    if (f->level) {
        SIMUL__REC(simul__wait, w, t);
        if (!w)
            return -ENOMEM;
        *w = (simul__wait){.unlink = simul__waitq_unlink, .fd = f->fd,
                           .kind = dir == SIMUL__DIR_READ ? SIMUL__WAIT_FD_READ
                                                          : SIMUL__WAIT_FD_WRITE};
        simul__waitq_push(&f->waiters[dir], w);
        rc = apply(f, false);
        if (rc < 0) {
            simul__waitq_remove(w);
            return rc;
        }
        rc = simul__park(w, SIMUL__INF);
    } else {
        rc = apply(f, true);
        if (rc < 0)
            return rc;
        rc = simul__fd_wait(f, dir);
    }
    return rc;
}

int simul_wait_readable(int fd)
{
    return wait_public(fd, SIMUL__DIR_READ, __func__);
}

int simul_wait_writable(int fd)
{
    return wait_public(fd, SIMUL__DIR_WRITE, __func__);
}

static int set_cb(int fd, int dir, simul_fd_cb cb, void *arg)
{
    simul_loop *loop = simul__loop();
    int rc;
    simul__fd *f = simul__fd_get(loop, fd, &rc);
    if (!f)
        return rc;
    if (f->handler)
        return -EBUSY; /* owned by a transport */
    simul_fd_cb old = f->cb[dir];
    void *old_arg = f->cb_arg[dir];
    f->cb[dir] = cb;
    f->cb_arg[dir] = arg;
    rc = apply(f, false);
    if (rc < 0) {
        f->cb[dir] = old;
        f->cb_arg[dir] = old_arg;
    }
    return rc;
}

static int remove_cb(int fd, int dir)
{
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    simul__fd *f = lookup(loop, fd);
    if (!f || !f->cb[dir])
        return 0;
    f->cb[dir] = NULL;
    f->cb_arg[dir] = NULL;
    apply(f, false);
    return 1;
}

int simul_add_reader(int fd, simul_fd_cb cb, void *arg)
{
    return cb ? set_cb(fd, SIMUL__DIR_READ, cb, arg) : -EINVAL;
}

int simul_add_writer(int fd, simul_fd_cb cb, void *arg)
{
    return cb ? set_cb(fd, SIMUL__DIR_WRITE, cb, arg) : -EINVAL;
}

int simul_remove_reader(int fd)
{
    return remove_cb(fd, SIMUL__DIR_READ);
}

int simul_remove_writer(int fd)
{
    return remove_cb(fd, SIMUL__DIR_WRITE);
}

int simul_fd_forget(int fd)
{
    simul_loop *loop = simul__loop();
    simul__fd *f = loop ? lookup(loop, fd) : NULL;
    if (f)
        reset(loop, f, true);
    return 0;
}

int simul_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    simul_fd_forget(fd);
    /* Linux closes the fd even when close() reports EINTR: never retry. */
    return close(fd) < 0 && errno != EINTR ? -errno : 0;
}
