/* backend.h — the readiness backend under the loop: one interface, epoll today, io_uring later.
 * The lowest layer above coro: it knows fds and wake-ups, never tasks. Fds are registered once
 * for their lifetime (edge-triggered, both directions); the loop's cross-thread wake-up is the
 * backend's own (an eventfd for epoll), consumed inside poll and never reported. */
#ifndef SIMUL_BACKEND_BACKEND_H
#define SIMUL_BACKEND_BACKEND_H

#include <stdint.h>

typedef struct simul__backend simul__backend;

/* EV_LEVEL (registration only): level-triggered, for asyncio-style reader/writer callbacks. */
/* EV_HUP (events only): the peer shut its side down or the connection hung up (EPOLLRDHUP,
 * EPOLLHUP); comes with EV_READ. */
enum {
    SIMUL__EV_READ = 1u,
    SIMUL__EV_WRITE = 2u,
    SIMUL__EV_ERROR = 4u,
    SIMUL__EV_LEVEL = 8u,
    SIMUL__EV_HUP = 16u,
};

typedef void (*simul__backend_cb)(void *data, uint32_t events, void *ctx);

typedef struct simul__backend_ops {
    const char *name;
    /* A new instance with its wake-up armed. */
    int (*open)(simul__backend **out);
    void (*close)(simul__backend *b);
    /* Registers fd for `events` (edge-triggered unless SIMUL__EV_LEVEL); `data` comes back with
     * each event. */
    int (*add)(simul__backend *b, int fd, uint32_t events, void *data);
    int (*mod)(simul__backend *b, int fd, uint32_t events, void *data);
    int (*del)(simul__backend *b, int fd);
    /* Waits up to timeout_ns (0: don't block; <0: forever) and calls cb for each ready fd.
     * Returns the number of events or a negative errno (-EINTR is not an error). A wake-up
     * ends the wait but is not reported. */
    int (*poll)(simul__backend *b, int64_t timeout_ns, simul__backend_cb cb, void *ctx);
    /* Makes a poll in progress (or the next one) return. Any thread, and async-signal-safe. */
    void (*wake)(simul__backend *b);
} simul__backend_ops;

struct simul__backend {
    const simul__backend_ops *ops;
};

extern const simul__backend_ops simul__backend_epoll;

/* The backend chosen by the environment: SIMUL_BACKEND unset, empty or "epoll" picks epoll (the
 * only one today); any other value is -EINVAL, so a typo never silently runs another backend.
 * *name gets the value read (NULL if unset), for the caller's message. */
int simul__backend_choose(const simul__backend_ops **out, const char **name);

#endif
