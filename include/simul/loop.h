/* simul/loop.h — the event loop and callbacks (asyncio loop, call_soon, call_later).
 * Part of the simul API: include <simul.h> (the umbrella), or this header alone. */
#ifndef SIMUL_LOOP_H
#define SIMUL_LOOP_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------------------------- */

/* Creates a loop and makes it the calling thread's current loop. The environment variable
 * SIMUL_BACKEND chooses the I/O backend: unset, empty or "epoll" (the only one today) picks epoll;
 * any other value is -EINVAL (debug mode, SIMUL_DEBUG=1, says which value was refused).
 * Returns 0, -EBUSY if the thread already has a loop, -EINVAL for an unknown SIMUL_BACKEND,
 * -ENOMEM, or an error from epoll/eventfd.
 * The caller owns the loop and ends it with simul_loop_close(). */
int simul_loop_new(simul_loop **out);

/* Closes a loop that has nothing alive: frees it and clears the thread's current loop.
 * Returns 0; -EBUSY while a task is alive or the loop is running (debug mode names the
 * survivors on stderr); -EPERM from another thread. */
int simul_loop_close(simul_loop *loop);

/* The calling thread's loop, or NULL. */
simul_loop *simul_loop_current(void);

/* Runs the loop until simul_loop_stop() (asyncio's run_forever).
 * Returns 0; -EBUSY if already running; -EPERM if not the loop's thread. */
int simul_loop_run(simul_loop *loop);

/* Runs the loop until task `t` finishes, then joins it: stores its result and releases the
 * handle (asyncio's run_until_complete). Returns 0, or -EBUSY / -EPERM / -EINVAL. */
int simul_loop_run_until_complete(simul_loop *loop, simul_task *t, int *result);

/* Asks a running loop to return from run once the current pass is over. Returns 0. */
int simul_loop_stop(simul_loop *loop);

/* Default stack size for tasks spawned on this loop (rounded up to the page size; at least
 * 16 KiB; default 64 KiB). Returns 0 or -EINVAL. */
int simul_loop_set_stack_size(simul_loop *loop, size_t bytes);

/* The mode of tasks spawned with SIMUL_TASK_MODE_DEFAULT (see simul_task_opts.mode):
 * SIMUL_TASK_STACKFUL or SIMUL_TASK_COMPACT. A new loop takes it from the environment variable
 * SIMUL_TASKS (=compact or =stackful), else STACKFUL. Returns 0 or -EINVAL; get returns the mode. */
int simul_loop_set_task_mode(simul_loop *loop, int mode);
int simul_loop_get_task_mode(const simul_loop *loop);

/* Debug mode (also turned on by the environment variable SIMUL_DEBUG=1), each report on stderr
 * naming the call the user made and what to do: a task that holds the loop longer than the
 * slow-task threshold without suspending (when it suspends, and while it still runs, from a
 * watchdog thread, once it has run twice the threshold); failed tasks whose result nobody joined;
 * a suspending call made outside a task (with SIMUL_DEBUG=1, also before any loop exists); a task
 * handle joined, gathered, waited for or detached twice; scopes still open when their task
 * returns; tasks and handles still alive when the loop closes; tasks simul_run's shutdown
 * cancelled. Returns 0. */
int simul_loop_set_debug(simul_loop *loop, bool on);
bool simul_loop_get_debug(const simul_loop *loop);
/* The slow-task threshold for debug mode (default 0.1 s). Returns 0 or -EINVAL. */
int simul_loop_set_slow_task_threshold(simul_loop *loop, double seconds);

/* The task dump: what a hung program is doing (asyncio.all_tasks() with Task.print_stack(), what
 * aiomonitor shows). Writes to fd every task of `loop` (NULL: this thread's loop): its name and
 * id; its state; what it waits on (an fd and direction, another task, a job on a worker thread,
 * a timer, or the call it is suspended in: a lock, event, condition, semaphore, queue, future,
 * channel) and for how long; its deadline and pending cancellation; and a backtrace of its stack
 * (function names for exported symbols, link with -rdynamic for all; else module+offset, for
 * addr2line). Call it on the loop's thread, from a task or a callback (not thread-safe, not
 * from a signal handler: see simul_loop_set_dump_signal). Never suspends. Returns the number of
 * tasks listed; -ENXIO (no loop), -EINVAL (bad fd, another thread's loop). */
int simul_loop_dump_tasks(simul_loop *loop, int fd);

/* Opts into the task dump on a signal, as Go does on SIGQUIT: when `signo` arrives the loop
 * writes simul_loop_dump_tasks(loop, 2) to stderr on its next pass and runs on (the signal no
 * longer kills the process). signo 0 means SIGQUIT (Ctrl+backslash in a terminal); -1 turns
 * it off (the signal's previous disposition comes back). The handler is a simul_add_signal_handler one: it
 * replaces this loop's handler of that signal. A task that never suspends holds the dump off
 * until it does (debug mode reports such a task by itself). `loop` must be this thread's loop.
 * Returns 0; -EINVAL; or simul_add_signal_handler's error. */
int simul_loop_set_dump_signal(simul_loop *loop, int signo);

/* asyncio.run: creates a loop, runs main(arg) as the first task (named "main") until it
 * returns, cancels the tasks still alive and waits for them, then closes the loop (handles
 * main still held are released with it). Debug mode comes from SIMUL_DEBUG; for other loop
 * settings make the loop yourself (simul_loop_new, spawn, simul_loop_run_until_complete).
 * Returns main's result; if the loop could not be made, a negative errno (-EBUSY if the thread
 * has a loop already, -ENOMEM, ...) before main ever ran.
 * SIGINT (Ctrl-C), as asyncio.run: on the main thread, if SIGINT has its default disposition
 * when simul_run starts, the first SIGINT cancels main (its suspending calls return -ECANCELED
 * outside shield scopes, so it can clean up) and simul_run returns main's result, typically
 * -ECANCELED; that first SIGINT also resets SIGINT to the default action, so a second one kills
 * the process at once (status: killed by SIGINT, 130 in a shell). A program that installed its
 * own SIGINT handler, or ignores SIGINT, keeps it untouched. Restored when simul_run returns.
 * Inside simul_run, simul_add_signal_handler(SIGINT, ...) replaces this behaviour with the
 * program's handler for as long as it is installed (every SIGINT reaches it); a task waiting in
 * simul_wait_signal for SIGINT receives each one too, and the one-shot rule is back once it is
 * done waiting. main runs as a stackful task even when the loop's default is compact
 * (SIMUL_TASKS=compact): it may hand its locals to the tasks it spawns. */
int simul_run(simul_task_fn main, void *arg);

/* The loop's clock: monotonic seconds / nanoseconds (CLOCK_MONOTONIC). */
double simul_now(void);
int64_t simul_now_ns(void);

/* ---------------------------------------------------------------------------------------------
 * Callbacks
 * ------------------------------------------------------------------------------------------- */

/* Schedules cb(arg) to run on the current loop soon, after what is already ready (FIFO).
 * `out` may be NULL. Returns 0, -ENXIO if this thread has no loop, -ENOMEM. */
int simul_call_soon(simul_callback cb, void *arg, simul_handle *out);

/* Schedules cb(arg) after `delay` seconds (>= 0, finite). Callbacks due at the same time run
 * in the order they were scheduled. Returns 0, -EINVAL for a negative or NaN delay, -ENXIO,
 * -ENOMEM. */
int simul_call_later(double delay, simul_callback cb, void *arg, simul_handle *out);

/* Schedules cb(arg) at absolute time `when` (simul_now() units). A time in the past runs as
 * soon as possible. Returns 0, -EINVAL (NaN), -ENXIO, -ENOMEM. */
int simul_call_at(double when, simul_callback cb, void *arg, simul_handle *out);
int simul_call_at_ns(int64_t when_ns, simul_callback cb, void *arg, simul_handle *out);

/* Cancels a scheduled callback. Returns 0 if it was pending and will not run; -ENOENT if it
 * already ran, was already cancelled, or the handle is unknown. Loop thread only. */
int simul_handle_cancel(simul_handle h);

/* Thread-safe. Schedules cb(arg) on `loop` from any thread and wakes the loop (eventfd).
 * Callbacks posted by one thread run in the order posted. Returns 0, -EINVAL, -ENOMEM, or
 * -ESHUTDOWN once the loop is closing. The loop must stay valid for the duration of the call. */
int simul_loop_call_soon_threadsafe(simul_loop *loop, simul_callback cb, void *arg);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_LOOP_H */
