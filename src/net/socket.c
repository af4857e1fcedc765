/* socket.c — task-level socket calls on plain fds (asyncio's loop.sock_*): each tries the
 * non-blocking syscall first and parks on the fd's readiness only when the kernel says EAGAIN,
 * so a call that can complete at once costs exactly its syscall. */
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

int simul_accept(int fd, struct sockaddr *addr, simul_socklen_t *len)
{
    int rc;
    simul__fd *f = enter(fd, __func__, &rc);
    if (!f)
        return rc;
    for (;;) {
        if (simul__fd_ready(f, SIMUL__DIR_READ)) {
            int c = accept4(fd, addr, (socklen_t *)len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c >= 0) {
                if (!simul__fd_fresh(simul__loop(), c, true, &rc)) {
                    close(c);
                    return rc;
                }
                return c;
            }
            /* ECONNABORTED and friends: the connection died in the queue; try the next. */
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            simul__fd_clear(f, SIMUL__DIR_READ);
        }
        rc = simul__fd_wait(f, SIMUL__DIR_READ);
        if (rc < 0)
            return rc;
    }
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
    for (;;) {
        long n = simul__fd_try_recv(f, buf, len, flags);
        if (n != -EAGAIN)
            return n;
        rc = simul__fd_wait(f, SIMUL__DIR_READ);
        if (rc < 0)
            return rc;
    }
}

static long try_send(simul__fd *f, const void *buf, size_t len, int flags)
{
    if (!simul__fd_ready(f, SIMUL__DIR_WRITE))
        return -EAGAIN;
    ssize_t n;
    do
        n = send(f->fd, buf, len, flags | MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
        if ((size_t)n < len)
            simul__fd_clear(f, SIMUL__DIR_WRITE);
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        simul__fd_clear(f, SIMUL__DIR_WRITE);
        return -EAGAIN;
    }
    return -errno;
}

long simul_send(int fd, const void *buf, size_t len, int flags)
{
    int rc;
    simul__fd *f = enter(fd, __func__, &rc);
    if (!f)
        return rc;
    for (;;) {
        long n = try_send(f, buf, len, flags);
        if (n != -EAGAIN)
            return n;
        rc = simul__fd_wait(f, SIMUL__DIR_WRITE);
        if (rc < 0)
            return rc;
    }
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
        long n = try_send(f, (const char *)buf + done, len - done, 0);
        if (n >= 0) {
            done += (size_t)n;
            if (sent)
                *sent = done;
            continue;
        }
        if (n != -EAGAIN)
            return n;
        rc = simul__fd_wait(f, SIMUL__DIR_WRITE);
        if (rc < 0)
            return rc;
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
    for (;;) {
        if (simul__fd_ready(f, SIMUL__DIR_READ)) {
            ssize_t n = recvfrom(fd, buf, len, flags | MSG_DONTWAIT, addr, (socklen_t *)addrlen);
            if (n >= 0)
                return n; /* a datagram: its size says nothing about what is left */
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            simul__fd_clear(f, SIMUL__DIR_READ);
        }
        rc = simul__fd_wait(f, SIMUL__DIR_READ);
        if (rc < 0)
            return rc;
    }
}

long simul_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                  simul_socklen_t addrlen)
{
    int rc;
    simul__fd *f = enter(fd, __func__, &rc);
    if (!f)
        return rc;
    for (;;) {
        if (simul__fd_ready(f, SIMUL__DIR_WRITE)) {
            ssize_t n = sendto(fd, buf, len, flags | MSG_NOSIGNAL | MSG_DONTWAIT, addr, addrlen);
            if (n >= 0)
                return n;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            simul__fd_clear(f, SIMUL__DIR_WRITE);
        }
        rc = simul__fd_wait(f, SIMUL__DIR_WRITE);
        if (rc < 0)
            return rc;
    }
}
