/* simul/io.h — fd readiness (add_reader, wait for an fd) and signals.
 * Part of the simul API: include <simul.h> (the umbrella), or this header alone. */
#ifndef SIMUL_IO_H
#define SIMUL_IO_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * I/O readiness: wait for an fd, reader and writer callbacks
 * ------------------------------------------------------------------------------------------- */
/* Waiting on file descriptors. Any fd the kernel can poll (sockets, pipes, eventfds, ttys, ...)
 * works. The loop registers an fd the first time it is waited on and keeps it registered until
 * simul_fd_forget() or simul_close(): call one of them BEFORE closing an fd you waited on, so a
 * later fd with the same number does not inherit the registration. The task-level calls below
 * (simul_accept, simul_recv, ...) register their fds the same way. */

/* Suspends. Returns 0 once fd is readable (data, EOF, a pending connection, or an error the
 * next read will report) -- level-triggered: at once if it is readable now. -EBADF if the fd is
 * not open, or is forgotten / closed by another task while waiting. -EPERM outside a task. */
int simul_wait_readable(int fd);

/* Suspends. As simul_wait_readable(), for writability. */
int simul_wait_writable(int fd);

/* A callback run by the loop when an fd is ready. It must not suspend. */
typedef void (*simul_fd_cb)(int fd, void *arg);

/* asyncio's loop.add_reader: calls cb(fd, arg) from the loop every pass while fd is readable
 * (level-triggered), until simul_remove_reader(). Replaces the fd's previous reader. Returns 0,
 * -EBADF, -EPERM (an fd that cannot be polled, e.g. a regular file), -ENOMEM, -ENXIO (no loop). */
int simul_add_reader(int fd, simul_fd_cb cb, void *arg);
/* Returns 1 if a reader was removed, 0 if there was none, -ENXIO without a loop. */
int simul_remove_reader(int fd);
int simul_add_writer(int fd, simul_fd_cb cb, void *arg);
int simul_remove_writer(int fd);

/* Drops the loop's registration of fd (it stays open). Tasks waiting on it wake with -EBADF;
 * its reader and writer callbacks are removed. Returns 0 (also for an fd never registered). */
int simul_fd_forget(int fd);

/* simul_fd_forget() then close(). Returns 0 or the negative errno of close(). */
int simul_close(int fd);


/* ---------------------------------------------------------------------------------------------
 * Signals: handlers that run on the loop, awaitable signals
 * ------------------------------------------------------------------------------------------- */
/* A signal handler registered here is not run in signal context: the process-level handler only
 * writes the signal number to a self-pipe of the loop (safe whichever thread the kernel delivers
 * to; no signal mask needs changing), and the loop runs the callback on its next pass, as
 * asyncio's loop.add_signal_handler. Signals are process-wide, so each signal belongs to at most
 * one loop at a time (another loop gets -EBUSY). Signals that arrive together are seen in the
 * order they came (several deliveries of one pending signal may merge into one, as the kernel
 * does). Loop thread only; remove every handler before closing its loop. */

/* Runs on the loop (it must not suspend), with the signal's number. */
typedef void (*simul_signal_cb)(int sig, void *arg);

/* Calls cb(sig, arg) from the current loop each time `sig` arrives, until
 * simul_remove_signal_handler(sig). Replaces this loop's previous handler of sig. The process's
 * previous disposition is saved and put back on removal. Returns 0; -EINVAL (not a signal number,
 * SIGKILL, SIGSTOP, cb NULL); -ENXIO (no loop on this thread); -EBUSY (another loop owns sig);
 * -EMFILE / -ENOMEM. */
int simul_add_signal_handler(int sig, simul_signal_cb cb, void *arg);

/* Removes this loop's handler of sig and restores the disposition it replaced (unless a task of
 * the loop still waits for sig: then once the wait ends). Returns 1 if one was removed, 0 if
 * there was none, -EINVAL, -ENXIO. */
int simul_remove_signal_handler(int sig);

/* Suspends until one of sigs[0..n) arrives; returns its number. Only signals that arrive during
 * the call count: while it waits it catches those signals (their previous disposition comes back
 * when it returns, unless a handler above keeps them), so keep a handler installed to never miss
 * one between two waits. A signal with a handler still runs it; every task waiting for that
 * signal wakes. sigs is read during the call only. Returns the signal number; -ECANCELED /
 * -ETIMEDOUT; -EINVAL (n <= 0, a bad number); -EBUSY (another loop owns one of them); -EPERM
 * outside a task. */
int simul_wait_signal(const int *sigs, int n);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_IO_H */
