/* socket.c — task-level socket calls on plain fds (asyncio's loop.sock_*): each tries the
 * non-blocking syscall first and parks on the fd's readiness only when the kernel says EAGAIN
 * (one loop, try_then_wait), so a call that can complete at once costs exactly its syscall. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../io/io.h"

_Static_assert(sizeof(simul_socklen_t) == sizeof(socklen_t), "simul_socklen_t is socklen_t");

/* The running task and the record of fd, with the cancellation check every suspending call
 * makes first. */
static simul__fd *enter(int fd, const char *call, int *err)
{
    simul_task *t = simul__task_require(call);
    if (!t) {
        *err = -EPERM;
        return NULL;
    }
    int rc = simul__task_check(t);
    if (rc < 0) {
        *err = rc;
        return NULL;
    }
    return simul__fd_get(t->loop, fd, err);
}

int simul_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return -errno;
    simul_loop *loop = simul__loop();
    if (loop) {
        int rc;
        if (!simul__fd_fresh(loop, fd, (type & 0xf) == SOCK_STREAM, &rc)) {
            close(fd);
            return rc;
        }
    }
    return fd;
}

/* One attempt's arguments: each call fills what its syscall takes. */
typedef struct sock_op {
    void *buf;
    const void *cbuf;
    size_t len;
    int flags;
    struct sockaddr *addr; /* accept, recvfrom: where the peer's address goes */
    socklen_t *addrlen;
    const struct sockaddr *to; /* sendto */
    socklen_t tolen;
} sock_op;

/* One non-blocking attempt: a result, or -EAGAIN with the direction's readiness bit cleared
 * (nothing to try before the next edge), or another negative errno. */
typedef long (*try_fn)(simul__fd *f, const sock_op *op);

/* The loop every call here runs: try the syscall, park on the fd's `dir` edge on -EAGAIN, try
 * again. Always inlined with a constant `try`, so each call compiles to its own direct loop, as
 * when it was written out five times (objdump: no indirect call left). */
static inline __attribute__((always_inline)) long try_then_wait(simul__fd *f, int dir, try_fn try,
                                                                const sock_op *op)
{
    for (;;) {
        long n = try(f, op);
        if (n != -EAGAIN)
            return n;
        int rc = simul__fd_wait(f, dir);
        if (rc < 0)
            return rc;
    }
}

/* The end every attempt shares: the count, or EAGAIN (the kernel's word: the bit is cleared until
 * the next edge), or the error. */
static long settle(simul__fd *f, int dir, ssize_t n)
{
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        simul__fd_clear(f, dir);
        return -EAGAIN;
    }
    return -errno;
}

static long try_accept(simul__fd *f, const sock_op *op)
{
    if (!simul__fd_ready(f, SIMUL__DIR_READ))
        return -EAGAIN;
    int c;
    /* ECONNABORTED and friends: the connection died in the queue; try the next. */
    do
        c = accept4(f->fd, op->addr, op->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    while (c < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EPROTO));
    return settle(f, SIMUL__DIR_READ, c);
}

static long try_recv(simul__fd *f, const sock_op *op)
{
    return simul__fd_try_recv(f, op->buf, op->len, op->flags);
}

static long try_send(simul__fd *f, const sock_op *op)
{
    if (!simul__fd_ready(f, SIMUL__DIR_WRITE))
        return -EAGAIN;
    ssize_t n;
    do
        n = send(f->fd, op->cbuf, op->len, op->flags | MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n >= 0 && (size_t)n < op->len)
        simul__fd_clear(f, SIMUL__DIR_WRITE); /* the buffer is full */
    return settle(f, SIMUL__DIR_WRITE, n);
}

static long try_recvfrom(simul__fd *f, const sock_op *op)
{
    if (!simul__fd_ready(f, SIMUL__DIR_READ))
        return -EAGAIN;
    ssize_t n;
    do
        n = recvfrom(f->fd, op->buf, op->len, op->flags | MSG_DONTWAIT, op->addr, op->addrlen);
    while (n < 0 && errno == EINTR);
    return settle(f, SIMUL__DIR_READ, n); /* a datagram: its size says nothing about what is left */
}

static long try_sendto(simul__fd *f, const sock_op *op)
{
    if (!simul__fd_ready(f, SIMUL__DIR_WRITE))
        return -EAGAIN;
    ssize_t n;
    do
        n = sendto(f->fd, op->cbuf, op->len, op->flags | MSG_NOSIGNAL | MSG_DONTWAIT, op->to,
                   op->tolen);
    while (n < 0 && errno == EINTR);
    return settle(f, SIMUL__DIR_WRITE, n);
}

int simul_accept(int fd, struct sockaddr *addr, simul_socklen_t *len)
{
    int rc;
    simul__fd *f = enter(fd, __func__, &rc);
    if (!f)
        return rc;
    sock_op op = {.addr = addr, .addrlen = (socklen_t *)len};
    long c = try_then_wait(f, SIMUL__DIR_READ, try_accept, &op);
    if (c < 0)
        return (int)c;
    if (!simul__fd_fresh(simul__loop(), (int)c, true, &rc)) {
        close((int)c);
        return rc;
    }
    return (int)c;
}

int simul_connect(int fd, const struct sockaddr *addr, simul_socklen_t len)
{
    int rc;
    simul__fd *f = enter(fd, __func__, &rc);
    if (!f)
        return rc;
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -errno;
    /* In progress: writability is the answer, SO_ERROR says which. */
    simul__fd_clear(f, SIMUL__DIR_WRITE);
    rc = simul__fd_wait(f, SIMUL__DIR_WRITE);
    if (rc < 0)
        return rc;
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return -errno;
    return -err;
}

long simul_recv(int fd, void *buf, size_t len, int flags)
{
    int rc;
    simul__fd *f = enter(fd, __func__, &rc);
    if (!f)
        return rc;
    sock_op op = {.buf = buf, .len = len, .flags = flags};
    return try_then_wait(f, SIMUL__DIR_READ, try_recv, &op);
}

long simul_send(int fd, const void *buf, size_t len, int flags)
{
    int rc;
    simul__fd *f = enter(fd, __func__, &rc);
    if (!f)
        return rc;
    sock_op op = {.cbuf = buf, .len = len, .flags = flags};
    return try_then_wait(f, SIMUL__DIR_WRITE, try_send, &op);
}

long simul_sendall(int fd, const void *buf, size_t len, size_t *sent)
{
    size_t done = 0;
    int rc;
    simul__fd *f = enter(fd, __func__, &rc);
    if (sent)
        *sent = 0;
    if (!f)
        return rc;
    while (done < len) {
        sock_op op = {.cbuf = (const char *)buf + done, .len = len - done};
        long n = try_then_wait(f, SIMUL__DIR_WRITE, try_send, &op);
        if (n < 0)
            return n;
        done += (size_t)n;
        if (sent)
            *sent = done;
    }
    return (long)len;
}

long simul_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                    simul_socklen_t *addrlen)
{
    int rc;
    simul__fd *f = enter(fd, __func__, &rc);
    if (!f)
        return rc;
    sock_op op = {.buf = buf, .len = len, .flags = flags, .addr = addr,
                  .addrlen = (socklen_t *)addrlen};
    return try_then_wait(f, SIMUL__DIR_READ, try_recvfrom, &op);
}

long simul_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                  simul_socklen_t addrlen)
{
    int rc;
    simul__fd *f = enter(fd, __func__, &rc);
    if (!f)
        return rc;
    sock_op op = {.cbuf = buf, .len = len, .flags = flags, .to = addr, .tolen = addrlen};
    return try_then_wait(f, SIMUL__DIR_WRITE, try_sendto, &op);
}

int simul_listener_adopt(int fd)
{
    int acc = 0;
    socklen_t alen = sizeof acc;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) < 0 || !acc)
        return errno == EBADF ? -EBADF : -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -EBADF;
    return 0;
}
