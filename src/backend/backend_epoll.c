/* backend_epoll.c — the epoll backend, and the choice of backend. Edge-triggered registration for
 * the fd's lifetime, so waiting on an fd costs no epoll_ctl; epoll_pwait2 gives nanosecond
 * timeouts where present; an eventfd registered under its own address is the wake-up. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

#define MAX_EVENTS 256

typedef struct epoll_backend {
    simul__backend base;
    int epfd;
    int wake_fd;     /* eventfd: wake() writes, poll drains it without reporting */
    int have_pwait2; /* -1 unknown, 0 no, 1 yes */
    struct epoll_event events[MAX_EVENTS];
} epoll_backend;

static int ep_open(simul__backend **out)
{
    epoll_backend *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        int e = errno;
        free(b);
        return -e;
    }
    b->base.ops = &simul__backend_epoll;
    b->have_pwait2 = -1;
    b->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = &b->wake_fd};
    if (b->wake_fd < 0 || epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->wake_fd, &ev) < 0) {
        int e = errno;
        if (b->wake_fd >= 0)
            close(b->wake_fd);
        close(b->epfd);
        free(b);
        return -e;
    }
    *out = &b->base;
    return 0;
}

static void ep_close(simul__backend *base)
{
    epoll_backend *b = (epoll_backend *)base;
    close(b->wake_fd);
    close(b->epfd);
    free(b);
}

static void ep_wake(simul__backend *base)
{
    epoll_backend *b = (epoll_backend *)base;
    uint64_t one = 1;
    ssize_t w = write(b->wake_fd, &one, sizeof one);
    (void)w; /* EAGAIN means the counter is already non-zero: the poll will return */
}

static uint32_t to_epoll(uint32_t ev)
{
    uint32_t e = (ev & SIMUL__EV_LEVEL) ? EPOLLRDHUP : EPOLLET | EPOLLRDHUP;
    if (ev & SIMUL__EV_READ)
        e |= EPOLLIN;
    if (ev & SIMUL__EV_WRITE)
        e |= EPOLLOUT;
    return e;
}

static int ep_ctl(simul__backend *base, int op, int fd, uint32_t events, void *data)
{
    epoll_backend *b = (epoll_backend *)base;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = to_epoll(events);
    ev.data.ptr = data;
    return epoll_ctl(b->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static int ep_add(simul__backend *b, int fd, uint32_t events, void *data)
{
    return ep_ctl(b, EPOLL_CTL_ADD, fd, events, data);
}

static int ep_mod(simul__backend *b, int fd, uint32_t events, void *data)
{
    return ep_ctl(b, EPOLL_CTL_MOD, fd, events, data);
}

static int ep_del(simul__backend *base, int fd)
{
    epoll_backend *b = (epoll_backend *)base;
    return epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

static int ep_wait(epoll_backend *b, int64_t timeout_ns)
{
#ifdef SYS_epoll_pwait2
    if (b->have_pwait2 != 0 && timeout_ns > 0) {
        struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
        long n = syscall(SYS_epoll_pwait2, b->epfd, b->events, MAX_EVENTS, &ts, NULL, 0);
        if (n >= 0 || errno != ENOSYS) {
            b->have_pwait2 = 1;
            return (int)n;
        }
        b->have_pwait2 = 0;
    }
#endif
    int ms;
    if (timeout_ns < 0)
        ms = -1;
    else if (timeout_ns == 0)
        ms = 0;
    else if (timeout_ns >= (int64_t)1000000 * 0x7fffffff)
        ms = 0x7fffffff;
    else
        ms = (int)((timeout_ns + 999999) / 1000000); /* round up: never wake early */
    return epoll_wait(b->epfd, b->events, MAX_EVENTS, ms);
}

static int ep_poll(simul__backend *base, int64_t timeout_ns, simul__backend_cb cb, void *ctx)
{
    epoll_backend *b = (epoll_backend *)base;
    int n = ep_wait(b, timeout_ns);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        if (b->events[i].data.ptr == &b->wake_fd) {
            uint64_t v;
            ssize_t r = read(b->wake_fd, &v, sizeof v);
            (void)r;
            continue;
        }
        uint32_t e = b->events[i].events, ev = 0;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
            ev |= SIMUL__EV_READ;
        if (e & (EPOLLRDHUP | EPOLLHUP))
            ev |= SIMUL__EV_HUP;
        if (e & (EPOLLOUT | EPOLLHUP))
            ev |= SIMUL__EV_WRITE;
        if (e & EPOLLERR)
            ev |= SIMUL__EV_ERROR | SIMUL__EV_READ | SIMUL__EV_WRITE;
        cb(b->events[i].data.ptr, ev, ctx);
    }
    return n;
}

const simul__backend_ops simul__backend_epoll = {
    .name = "epoll",
    .open = ep_open,
    .close = ep_close,
    .add = ep_add,
    .mod = ep_mod,
    .del = ep_del,
    .poll = ep_poll,
    .wake = ep_wake,
};

int simul__backend_choose(const simul__backend_ops **out, const char **name)
{
    /* The switch an io_uring backend will add its name to. */
    static const simul__backend_ops *const all[] = {&simul__backend_epoll};
    const char *v = getenv("SIMUL_BACKEND");
    *name = v;
    if (!v || !*v) {
        *out = all[0];
        return 0;
    }
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(v, all[i]->name) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -EINVAL;
}
