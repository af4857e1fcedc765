/* echo_epoll.c — the raw-syscall floor for the echo benchmark: one thread, level-triggered
 * epoll, read() then write() straight back. Nothing a runtime could do is cheaper than this, so
 * simul's echo servers are measured against its CPU time per message.
 * Usage: echo_epoll --host H --port P */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE 65536
#define MAX_EVENTS 256

/* A connection holds a buffer only while the kernel refused part of an echo; meanwhile it
 * stops reading (EPOLLOUT instead of EPOLLIN), which is the backpressure. */
typedef struct conn {
    int fd;
    char *pending;
    size_t pending_len, pending_off;
} conn;

static int epfd;
static int listen_fd;
static char readbuf[READ_SIZE];

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s --host H --port P\n", argv0);
    exit(2);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int listen_on(const char *host, const char *port)
{
    struct addrinfo hints = {0}, *res, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "echo_epoll: %s:%s: %s\n", host, port, gai_strerror(rc));
        exit(1);
    }
    int fd = -1;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "echo_epoll: cannot listen on %s:%s: %s\n", host, port, strerror(errno));
        exit(1);
    }
    return fd;
}

static void conn_close(conn *c)
{
    close(c->fd); /* close removes it from the epoll set */
    free(c->pending);
    free(c);
}

static void set_events(conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void accept_all(void)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fprintf(stderr, "echo_epoll: accept: %s\n", strerror(errno));
            return; /* EMFILE: level-triggered, so we retry on the next wait */
        }
        /* As asyncio and uvloop do for every TCP transport. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            conn_close(c);
    }
}

/* Writes what is pending; returns -1 if the connection died, else 0. */
static int flush_pending(conn *c)
{
    while (c->pending_off < c->pending_len) {
        ssize_t n =
            send(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->pending_off += (size_t)n;
    }
    free(c->pending);
    c->pending = NULL;
    c->pending_len = c->pending_off = 0;
    set_events(c, EPOLLIN);
    return 0;
}

/* One read per readiness event: level-triggered epoll reports the rest on the next wait. */
static int on_readable(conn *c)
{
    ssize_t n = read(c->fd, readbuf, sizeof readbuf);
    if (n == 0)
        return -1;
    if (n < 0)
        return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = send(c->fd, readbuf + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            c->pending_len = (size_t)n - off;
            c->pending = malloc(c->pending_len);
            if (!c->pending)
                return -1;
            memcpy(c->pending, readbuf + off, c->pending_len);
            c->pending_off = 0;
            set_events(c, EPOLLOUT);
            return 0;
        }
        off += (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = NULL, *port = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = argv[++i];
        else
            usage(argv[0]);
    }
    if (!host || !port)
        usage(argv[0]);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    listen_fd = listen_on(host, port);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("echo_epoll: epoll_create1");
        return 1;
    }
    /* data.ptr NULL marks the listening socket. */
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &lev) < 0) {
        perror("echo_epoll: epoll_ctl");
        return 1;
    }

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("echo_epoll: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn *c = events[i].data.ptr;
            if (!c) {
                accept_all();
                continue;
            }
            int rc;
            if (c->pending)
                rc = (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) ? flush_pending(c) : 0;
            else
                rc = on_readable(c);
            if (rc < 0)
                conn_close(c);
        }
    }
}
