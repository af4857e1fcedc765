/* io.h — the I/O layer's private interface: one record per fd, and the readiness bits that let
 * a task skip a syscall it knows would return EAGAIN. Built on the core's park/wake; the core
 * forwards backend events through the I/O dispatch hook this layer sets (fdwait.c). */
#ifndef SIMUL_IO_IO_H
#define SIMUL_IO_IO_H

#include "../core/internal.h"

enum { SIMUL__DIR_READ = 0, SIMUL__DIR_WRITE = 1 };

/* An internal owner (a transport) that wants every edge, run from the loop's dispatch. */
typedef void (*simul__fd_handler)(void *owner, uint32_t events);

typedef struct simul__fd {
    int fd;
    uint32_t gen;        /* bumped when the fd is forgotten: stale events and waits notice */
    uint8_t registered;  /* in the backend */
    uint8_t level;       /* registered level-triggered for user callbacks, with `mask` */
    uint8_t mask;        /* registered interest (SIMUL__EV_READ | SIMUL__EV_WRITE) */
    uint8_t ready;       /* may be ready: try the syscall. Cleared on EAGAIN or a short
                            transfer, set by every edge from the backend. */
    uint8_t stream;      /* a short read means drained (stream sockets, pipes), not datagrams */
    uint8_t sock;        /* a socket: writes go through send(MSG_NOSIGNAL), never SIGPIPE */
    uint8_t typed;       /* `stream` and `sock` are known */
    uint8_t hup;         /* the peer shut down (sticky): a short read no longer means drained,
                            since the EOF behind the data will raise no new edge */
    simul__waitq waiters[2];
    simul_fd_cb cb[2];   /* add_reader / add_writer */
    void *cb_arg[2];
    simul__fd_handler handler;
    void *owner;
} simul__fd;

/* The record of fd on the current loop, created on first use (not yet registered). NULL with
 * *err set (-ENXIO no loop, -EBADF bad fd, -ENOMEM). */
simul__fd *simul__fd_get(simul_loop *loop, int fd, int *err);

/* For a socket the library just created (socket, accept): resets whatever a previous fd with
 * the same number left behind, and records whether it is a stream socket. Other fds (pipes) go
 * through simul__fd_get, which learns their type on first use. */
simul__fd *simul__fd_fresh(simul_loop *loop, int fd, bool stream, int *err);

/* Registers f with the backend (edge-triggered, both directions) if it is not yet. */
int simul__fd_register(simul__fd *f);

static inline bool simul__fd_ready(const simul__fd *f, int dir)
{
    return f->ready & (1u << dir);
}
static inline void simul__fd_clear(simul__fd *f, int dir)
{
    f->ready &= (uint8_t) ~(1u << dir);
}

/* Parks the running task until f's `dir` bit is set by an edge (returns at once if it is set).
 * Returns 0, -EBADF if the fd is forgotten meanwhile, -ECANCELED / -ETIMEDOUT. Call
 * simul__task_check first where the call is a cancellation point even without waiting. */
int simul__fd_wait(simul__fd *f, int dir);

/* simul__fd_wait, with *hook pointing at the wait while the task is parked: whoever owns the
 * hook can end the wait early with simul__fd_wait_end (a stream ends a copy parked on its
 * source, which is not the stream's fd, when the stream closes). */
int simul__fd_wait_hooked(simul__fd *f, int dir, simul__wait **hook);
/* Ends the wait *hook points at, if any, with `result`. */
void simul__fd_wait_end(simul__wait **hook, int result);

/* Ends every task's wait on f's `dir` with `result` (an owner closing the fd under them). */
void simul__fd_wake_all(simul__fd *f, int dir, int result);

/* Installs (or, with NULL, removes) the internal edge handler of a transport. */
int simul__fd_set_handler(simul__fd *f, simul__fd_handler h, void *owner);

/* Non-suspending transfers with the readiness bookkeeping: return the count, or -EAGAIN (bit
 * cleared: wait with simul__fd_wait), or another negative errno. */
long simul__fd_try_read(simul__fd *f, void *buf, size_t len);
long simul__fd_try_recv(simul__fd *f, void *buf, size_t len, int flags);
long simul__fd_try_write(simul__fd *f, const void *buf, size_t len);
struct iovec;
/* One iovec goes through simul__fd_try_write (send/write, no msghdr). */
long simul__fd_try_writev(simul__fd *f, const struct iovec *iov, int iovcnt);
/* simul__fd_wait for the running task, a cancellation point even when the fd is ready: -EPERM
 * outside a task (what an fd bottom's wait op needs). */
int simul__fd_task_wait(simul__fd *f, int dir);

#endif
