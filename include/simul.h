/* simul.h — the asyncio model in C: one thread, one event loop, many stackful tasks.
 *
 * Conventions (docs/design/runtime.md has the design behind them):
 * - Every function that can fail returns >= 0 on success and a negative errno on failure
 *   (-EINVAL, -ENOMEM, ...). simul never reports through the errno variable: tasks share a
 *   thread, so errno can be overwritten by another task across a suspension.
 * - A function whose comment begins with "Suspends." may switch to other tasks before it
 *   returns. It must be called from a task (outside one it returns -EPERM). Every suspending
 *   function is a cancellation point: it returns -ECANCELED once the calling task has been
 *   cancelled (level-triggered: again on every later call, unless inside a shield scope) and
 *   -ETIMEDOUT once a deadline scope around it has expired.
 * - A suspending call that returns an error has taken nothing and completed nothing.
 * - Time is monotonic. Seconds are doubles (as in asyncio); *_ns variants take int64
 *   nanoseconds of the same clock.
 * - Only functions marked "Thread-safe." may be called from a thread other than the loop's.
 */
#ifndef SIMUL_H
#define SIMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define SIMUL_VERSION_MAJOR 0
#define SIMUL_VERSION_MINOR 1
#define SIMUL_VERSION_PATCH 0

/* ---------------------------------------------------------------------------------------------
 * Handles
 * ------------------------------------------------------------------------------------------- */

typedef struct simul_loop simul_loop;     /* one event loop; one per thread */
typedef struct simul_task simul_task;     /* a stackful coroutine run by the loop */
typedef struct simul_future simul_future; /* a one-shot result */
typedef struct simul_group simul_group;   /* a task group (structured concurrency) */
typedef struct simul_as_completed simul_as_completed; /* iterator over finishing tasks */
typedef struct simul_server simul_server; /* listening sockets (streams and protocols) */

/* A scheduled callback (call_soon / call_later / call_at). A value, not a pointer: cancelling
 * a handle whose callback already ran, or was already cancelled, is safe and returns -ENOENT.
 * The zero value is "no handle". */
typedef struct simul_handle {
    uint64_t id;
} simul_handle;

/* The body of a task. Its return value is the task's result: >= 0 for success, a negative
 * errno for failure. join, gather and task groups report it. */
typedef int (*simul_task_fn)(void *arg);

/* A plain callback run by the loop (not a task: it must not suspend). */
typedef void (*simul_callback)(void *arg);

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

/* A message for an error code (negative or positive errno). Never NULL; static storage. */
const char *simul_strerror(int err);
/* The symbolic name of an error code ("ECANCELED"). Never NULL; static storage. */
const char *simul_errname(int err);

/* ---------------------------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------------------------- */

/* Creates a loop and makes it the calling thread's current loop.
 * Returns 0, -EBUSY if the thread already has a loop, -ENOMEM, or an error from epoll/eventfd.
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

/* Debug mode (also turned on by the environment variable SIMUL_DEBUG=1): warns on stderr when
 * a task holds the loop longer than the slow-task threshold without suspending, reports failed
 * tasks whose result nobody joined, and names tasks still alive when the loop closes.
 * Returns 0. */
int simul_loop_set_debug(simul_loop *loop, bool on);
bool simul_loop_get_debug(const simul_loop *loop);
/* The slow-task threshold for debug mode (default 0.1 s). Returns 0 or -EINVAL. */
int simul_loop_set_slow_task_threshold(simul_loop *loop, double seconds);

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
 * own SIGINT handler, or ignores SIGINT, keeps it untouched. Restored when simul_run returns. */
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

/* ---------------------------------------------------------------------------------------------
 * Tasks
 * ------------------------------------------------------------------------------------------- */

typedef struct simul_task_opts {
    const char *name;  /* copied (at most 31 bytes kept); NULL gives "task-<id>" */
    size_t stack_size; /* 0 = the loop's default */
} simul_task_opts;

/* Starts fn(arg) as a new task on the current loop; it first runs once the caller suspends or
 * the loop gets to it. The function always runs (even if the task is cancelled before it
 * starts: its first suspending call then returns -ECANCELED), so ownership of `arg` passes to
 * it reliably. The loop keeps the task alive until fn returns, whether or not anyone holds the
 * handle.
 * If `out` is not NULL it receives a handle the caller owns and must give back with
 * simul_task_join() (or simul_wait_for / simul_gather / run_until_complete, which join) or
 * simul_task_detach(). With `out` NULL the task starts detached. `opts` may be NULL.
 * Returns 0, -ENXIO (no loop on this thread), -EINVAL, -ENOMEM (no memory or no stack). */
int simul_task_spawn(simul_task **out, simul_task_fn fn, void *arg, const simul_task_opts *opts);

/* Suspends until task `t` finishes, stores its result in *result (may be NULL) and releases the
 * handle. Returns 0 once joined; -ECANCELED / -ETIMEDOUT if the joiner was cancelled or timed
 * out first (the handle is still the caller's, and `t` keeps running: cancelling a joiner
 * never cancels the joined task — asyncio.shield comes for free); -EDEADLK for a task joining
 * itself; -EINVAL for a handle already joined or detached (detected while its record has not
 * been reused; always in debug mode). */
int simul_task_join(simul_task *t, int *result);

/* Gives the handle back without waiting; the task runs on. In debug mode a detached task that
 * fails is reported on stderr. Returns 0 or -EINVAL. */
int simul_task_detach(simul_task *t);

/* Requests cancellation of `t`. If `t` is suspended (and not shielded) it resumes at once with
 * -ECANCELED from the call it is suspended in; from then on every suspending call it makes
 * returns -ECANCELED, except inside a shield scope. Cancelling a finished task does nothing.
 * Returns 0, or -EINVAL. Safe to call from a callback or another task. */
int simul_task_cancel(simul_task *t);

/* Whether `t` has finished. */
bool simul_task_done(const simul_task *t);
/* Whether cancellation was requested for `t` (asyncio's Task.cancelling() > 0). */
bool simul_task_cancel_requested(const simul_task *t);
/* The task's name; valid while the handle is. */
const char *simul_task_name(const simul_task *t);
/* Renames a task (copies at most 31 bytes). Returns 0 or -EINVAL. */
int simul_task_set_name(simul_task *t, const char *name);
/* A small integer unique among the loop's tasks for its lifetime. */
uint64_t simul_task_id(const simul_task *t);

/* The task running now, or NULL in a callback or outside the loop. The pointer is borrowed:
 * do not join or detach it. */
simul_task *simul_task_current(void);

/* How many tasks are alive (spawned and not finished) on the current loop. */
size_t simul_task_count(void);

/* Calls fn(task, arg) for every live task on the current loop (asyncio.all_tasks). The task
 * pointers are borrowed for the call. Stops early if fn returns non-zero. Returns the number
 * visited, or -ENXIO. */
int simul_task_foreach(int (*fn)(simul_task *t, void *arg), void *arg);

/* ---------------------------------------------------------------------------------------------
 * Suspending, cancellation and deadlines
 * ------------------------------------------------------------------------------------------- */

/* Suspends. Lets every other ready task run once, then resumes (asyncio.sleep(0)). Ready
 * tasks run in FIFO order (new tasks in the order spawned); the loop polls I/O and fires due
 * timers after at most 64 task runs, so neither starves while tasks keep yielding.
 * Returns 0; -ECANCELED / -ETIMEDOUT, also when the cancel or deadline came while it waited;
 * -EPERM. */
int simul_yield(void);

/* Suspends for `seconds` (>= 0; INFINITY sleeps until cancelled). simul_sleep(0) is
 * simul_yield(), as asyncio.sleep(0) is.
 * Returns 0 when the time has passed; -ECANCELED; -ETIMEDOUT if a deadline scope ends first;
 * -EINVAL for a negative or NaN time; -EPERM outside a task. */
int simul_sleep(double seconds);
/* Suspends until the absolute time `when_ns` (simul_now_ns() units). */
int simul_sleep_until_ns(int64_t when_ns);

/* Returns -ECANCELED or -ETIMEDOUT if the current task would get one from its next suspending
 * call, else 0. Does not suspend: for long CPU loops that want to notice cancellation. */
int simul_checkpoint(void);

/* A scope lives on the caller's stack between begin and end; its fields are private.
 * Scopes nest and must end in the reverse order of their beginning, in the task that began
 * them. */
typedef struct simul_scope {
    struct simul_scope *outer_;
    int64_t deadline_ns_;
    struct simul_task *task_;
    unsigned flags_;
} simul_scope;

/* Begins a deadline scope (asyncio.timeout / Trio's move_on_after): once `seconds` have passed,
 * every suspending call inside it returns -ETIMEDOUT (level-triggered, like cancellation) until
 * the scope ends. Nested scopes take the earliest deadline. Not a suspending call.
 * Returns 0, -EINVAL (negative or NaN; INFINITY is allowed and never expires), -EPERM. */
int simul_scope_timeout(simul_scope *s, double seconds);
/* The same with an absolute deadline in simul_now_ns() units. */
int simul_scope_deadline_ns(simul_scope *s, int64_t deadline_ns);

/* Begins a shield scope for clean-up code: inside it, a cancellation of the task and the
 * deadlines of the scopes around it are held back (a deadline scope begun inside the shield
 * still applies). When the shield ends, a pending cancellation is delivered at the next
 * suspending call. Returns 0 or -EPERM. */
int simul_scope_shield(simul_scope *s);

/* Ends the innermost scope `s`. Returns 1 if `s` is a deadline scope whose deadline expired
 * (so -ETIMEDOUT seen inside came from it or from an earlier deadline), 0 if not, -EINVAL if `s`
 * is not the innermost scope of the calling task. */
int simul_scope_end(simul_scope *s);

/* ---------------------------------------------------------------------------------------------
 * Waiting for many tasks
 * ------------------------------------------------------------------------------------------- */

/* Suspends until every task in tasks[0..n) has finished, joins them all (the handles are
 * released) and stores each result in results[i] (`results` may be NULL). n may be 0 (returns
 * 0 at once, still a cancellation point); n > INT_MAX is -EINVAL.
 * Returns the number of tasks that failed (result < 0), so 0 means all succeeded.
 * If the gathering task is cancelled or times out first, gather cancels the tasks still
 * running, waits for them all (shielded), joins them, and returns -ECANCELED / -ETIMEDOUT.
 * -EINVAL for a bad handle (nothing is joined then). */
int simul_gather(simul_task **tasks, size_t n, int *results);

enum simul_return_when {
    SIMUL_ALL_COMPLETED = 0,
    SIMUL_FIRST_COMPLETED = 1,
    SIMUL_FIRST_EXCEPTION = 2, /* the first task whose result is negative, else all */
};

/* Suspends until the condition `return_when` holds for tasks[0..n) or `timeout` seconds pass
 * (INFINITY: no timeout). Like asyncio.wait it joins nothing, cancels nothing and treats the
 * timeout as a normal return: it returns the number of tasks done (check each with
 * simul_task_done). -ECANCELED / -ETIMEDOUT (an outer deadline scope), -EINVAL. */
int simul_wait(simul_task **tasks, size_t n, int return_when, double timeout);

/* Suspends until `t` finishes or `timeout` seconds pass (asyncio.wait_for). On success joins `t`
 * and returns 0 with its result in *result. On timeout it cancels `t`, waits for it to end,
 * joins it and returns -ETIMEDOUT (*result gets the task's result). If the caller is cancelled
 * it does the same and returns -ECANCELED. Completion wins a race: if `t` had already finished
 * (with anything but -ECANCELED) when the timeout or cancel was handled, the call returns 0.
 * The handle is released in every case but -EINVAL / -EPERM / -EDEADLK. */
int simul_wait_for(simul_task *t, double timeout, int *result);

/* An iterator that yields tasks in the order they finish (asyncio.as_completed). The array is
 * not kept; the tasks stay the caller's: join each one it hands back, and do not join or detach
 * one before it was handed back. Returns 0, -EINVAL, -ENOMEM. */
int simul_as_completed_new(simul_as_completed **out, simul_task **tasks, size_t n);
/* Suspends until the next task finishes and stores it in *done. Returns 0; -ENOENT when every
 * task was handed back; -ECANCELED / -ETIMEDOUT (nothing is handed back then). */
int simul_as_completed_next(simul_as_completed *ac, simul_task **done);
/* Frees the iterator (the tasks not handed back stay the caller's). */
void simul_as_completed_free(simul_as_completed *ac);

/* ---------------------------------------------------------------------------------------------
 * Task groups (asyncio.TaskGroup, Trio nurseries)
 * ------------------------------------------------------------------------------------------- */

/* Creates a group owned by the calling task. Children spawned into it are the group's: the
 * owner waits for them all in simul_group_join(); the first child that fails (returns < 0,
 * other than -ECANCELED caused by the group itself) cancels its siblings. If the owner returns
 * without joining, its groups are cancelled and reaped when it finishes: no child outlives its
 * group. Returns 0, -EPERM (outside a task), -ENOMEM. */
int simul_group_new(simul_group **out);

/* Spawns a child into the group. Returns 0; -ECANCELED if the group is already cancelled (the
 * function does not run then); -EINVAL; -ENOMEM. */
int simul_group_spawn(simul_group *g, simul_task_fn fn, void *arg, const simul_task_opts *opts);

/* Cancels every child of the group. Returns 0 or -EINVAL. */
int simul_group_cancel(simul_group *g);

/* Suspends until every child has finished, then frees the group. *first_error (may be NULL)
 * gets the first child failure, or 0 if none failed. Returns 0; if the owner is cancelled or
 * times out while waiting it cancels the children, still waits for them (shielded), frees the
 * group and returns -ECANCELED / -ETIMEDOUT. -EINVAL if not called by the owner. */
int simul_group_join(simul_group *g, int *first_error);

/* ---------------------------------------------------------------------------------------------
 * Futures: one-shot results where callback code and task code meet
 * ------------------------------------------------------------------------------------------- */

typedef void (*simul_future_cb)(simul_future *f, void *arg);

/* Creates a pending future on the current loop. The caller owns it and frees it with
 * simul_future_free(). Returns 0, -ENXIO, -ENOMEM. */
int simul_future_new(simul_future **out);

/* Frees a future. Tasks still awaiting it resume with -ECANCELED first (simul_future_await
 * returns -ECANCELED: check simul_task_cancel_requested() to tell this from a cancel of the
 * awaiting task); done callbacks not yet run are dropped. */
void simul_future_free(simul_future *f);

/* Completes the future with `result` (>= 0 success, < 0 failure) and an optional value pointer
 * (borrowed: the future does not free it). Wakes every awaiting task and schedules the done
 * callbacks (they run soon, not inside this call). Returns 0, or -EALREADY if already done. */
int simul_future_set_result(simul_future *f, int result, void *value);

/* Completes the future as cancelled (its result is -ECANCELED). Returns 0 or -EALREADY. */
int simul_future_cancel(simul_future *f);

/* Suspends until the future is done (at once if it is). Stores its result and value.
 * Returns 0 once done; -ECANCELED / -ETIMEDOUT if the waiting task was cancelled or timed out
 * (the future is not touched then). Many tasks may await one future. */
int simul_future_await(simul_future *f, int *result, void **value);

bool simul_future_done(const simul_future *f);

/* Non-suspending: the result of a done future. Returns 0, or -EAGAIN while pending. */
int simul_future_result(const simul_future *f, int *result, void **value);

/* Adds a callback run (from the loop, soon) once the future is done; if it is done already the
 * callback is scheduled at once. Callbacks run in the order added. Returns 0 or -ENOMEM. */
int simul_future_add_done_callback(simul_future *f, simul_future_cb cb, void *arg);

/* ---------------------------------------------------------------------------------------------
 * Synchronization: Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier
 * ------------------------------------------------------------------------------------------- */
/* These objects are not thread-safe: each is used by the tasks (and callbacks) of one loop; to
 * cross threads use a channel. Waiters are served in arrival order (FIFO). Whoever lets a waiter
 * proceed hands it what it waited for before it runs (the lock, a unit, its barrier index), so
 * nobody barges in, and a cancel or deadline that lands after the hand-over does not undo it: the
 * call returns success and the cancel shows at the next suspending call. A call that returns
 * -ECANCELED or -ETIMEDOUT has taken nothing (a condition wait still gives its lock back).
 * Freeing an object that tasks still wait on is a bug: they resume with -ECANCELED (debug mode
 * says so on stderr). */

typedef struct simul_lock simul_lock;           /* asyncio.Lock */
typedef struct simul_event simul_event;         /* asyncio.Event */
typedef struct simul_condition simul_condition; /* asyncio.Condition */
typedef struct simul_semaphore simul_semaphore; /* asyncio.Semaphore and BoundedSemaphore */
typedef struct simul_barrier simul_barrier;     /* asyncio.Barrier */

/* Creates an unlocked lock. The caller frees it with simul_lock_free(). Needs no loop.
 * Returns 0, -EINVAL, -ENOMEM. */
int simul_lock_new(simul_lock **out);
/* Frees a lock (held or not). */
void simul_lock_free(simul_lock *l);

/* Suspends until the calling task owns the lock (at once if it is free). Unlike asyncio's, the
 * lock has an owner: only the task that acquired it may release it.
 * Returns 0; -ECANCELED / -ETIMEDOUT (the lock was not taken); -EDEADLK if the caller already
 * owns it; -EINVAL; -EPERM outside a task.
 * A task that finishes while owning a lock leaves it locked for good (no other task may release
 * it); debug mode names the task on stderr. */
int simul_lock_acquire(simul_lock *l);

/* Takes the lock if it is free, without suspending. Returns 0; -EAGAIN if another task owns it;
 * -EDEADLK if the caller does; -EINVAL; -EPERM outside a task. */
int simul_lock_try_acquire(simul_lock *l);

/* Releases the lock. If tasks wait, ownership passes straight to the first of them (the caller
 * cannot take it back before that task has run). Returns 0; -EPERM if the calling task does not
 * own the lock (including outside a task, and when it is not locked at all); -EINVAL. */
int simul_lock_release(simul_lock *l);

/* Whether some task owns the lock. */
bool simul_lock_locked(const simul_lock *l);

/* Creates an event, initially not set. Freed with simul_event_free(). Returns 0, -EINVAL,
 * -ENOMEM. */
int simul_event_new(simul_event **out);
/* Frees an event (NULL is ignored). */
void simul_event_free(simul_event *e);
/* Sets the event and wakes every task waiting for it. Also from callbacks. Returns 0 or
 * -EINVAL. */
int simul_event_set(simul_event *e);
/* Resets the event to not set (tasks already woken still return 0). Returns 0 or -EINVAL. */
int simul_event_clear(simul_event *e);
/* Whether the event is set. */
bool simul_event_is_set(const simul_event *e);
/* Suspends until the event is set (at once if it is). Returns 0; -ECANCELED / -ETIMEDOUT;
 * -EINVAL; -EPERM outside a task. */
int simul_event_wait(simul_event *e);

/* Creates a condition variable over `lock` (borrowed: it must outlive the condition), or over a
 * lock of its own if `lock` is NULL. Freed with simul_condition_free() (which frees its own
 * lock). Returns 0, -EINVAL, -ENOMEM. */
int simul_condition_new(simul_condition **out, simul_lock *lock);
/* Frees a condition, and its lock if it made its own (NULL is ignored). */
void simul_condition_free(simul_condition *c);
/* Suspends. simul_lock_acquire() on the condition's lock. */
int simul_condition_acquire(simul_condition *c);
/* simul_lock_release() on the condition's lock. */
int simul_condition_release(simul_condition *c);
/* Whether some task owns the condition's lock. */
bool simul_condition_locked(const simul_condition *c);

/* Suspends. The caller must own the condition's lock: releases it, waits to be notified, and
 * owns the lock again when the call returns, whatever it returns (if cancelled or timed out it
 * still waits for the lock, shielded, before returning the error).
 * Returns 0 once notified (also when a cancel or deadline landed after the notification: a
 * notification is never lost); -ECANCELED / -ETIMEDOUT if interrupted before it; -EPERM if the
 * caller does not own the lock (or outside a task); -EINVAL. */
int simul_condition_wait(simul_condition *c);

/* Suspends until pred(arg) is true, calling simul_condition_wait() while it is false (the caller
 * owns the lock; pred is called with the lock held). Returns 0 when pred is true, or the first
 * error of simul_condition_wait() (the lock is held in every case but -EPERM / -EINVAL). */
int simul_condition_wait_for(simul_condition *c, bool (*pred)(void *arg), void *arg);

/* Wakes up to `n` waiting tasks, first come first served. The caller must own the lock. Each
 * woken task moves to the lock's queue and runs once it owns the lock, so notify_all does not
 * stampede. Returns the number of tasks notified; -EPERM if the caller does not own the lock;
 * -EINVAL. */
int simul_condition_notify(simul_condition *c, size_t n);
/* simul_condition_notify(c, all). */
int simul_condition_notify_all(simul_condition *c);

/* Creates a semaphore with `value` units. simul_bounded_semaphore_new() makes one whose release
 * fails with -EOVERFLOW once the value would exceed the initial value (asyncio.BoundedSemaphore).
 * Freed with simul_semaphore_free(). Returns 0, -EINVAL, -ENOMEM. */
int simul_semaphore_new(simul_semaphore **out, unsigned value);
int simul_bounded_semaphore_new(simul_semaphore **out, unsigned value);
/* Frees a semaphore of either kind (NULL is ignored). */
void simul_semaphore_free(simul_semaphore *s);

/* Suspends until a unit is available and takes it (at once if the value is > 0). Returns 0;
 * -ECANCELED / -ETIMEDOUT (no unit taken); -EINVAL; -EPERM outside a task. */
int simul_semaphore_acquire(simul_semaphore *s);
/* Takes a unit if one is available, without suspending (also from callbacks). Returns 0,
 * -EAGAIN, -EINVAL. */
int simul_semaphore_try_acquire(simul_semaphore *s);
/* Gives a unit back. If tasks wait, the unit goes to the first of them and only it wakes.
 * Also from callbacks. Returns 0; -EOVERFLOW for a bounded semaphore released more times than
 * acquired (or a value that would pass UINT_MAX); -EINVAL. */
int simul_semaphore_release(simul_semaphore *s);
/* Whether an acquire would suspend (the value is 0). */
bool simul_semaphore_locked(const simul_semaphore *s);
/* The units available now (0 while tasks wait). */
unsigned simul_semaphore_value(const simul_semaphore *s);

/* Creates a barrier for `parties` tasks (1 .. INT_MAX). Freed with simul_barrier_free().
 * Returns 0, -EINVAL, -ENOMEM. */
int simul_barrier_new(simul_barrier **out, unsigned parties);
/* Frees a barrier (NULL is ignored). */
void simul_barrier_free(simul_barrier *b);

/* Suspends until `parties` tasks are waiting, then releases them all; the barrier is then ready
 * for the next round. Returns the caller's index, 0 .. parties-1, in arrival order (the last
 * task to arrive gets parties-1 and does not suspend). A task cancelled or timed out while it
 * waits leaves the round (-ECANCELED / -ETIMEDOUT) and the round waits for another task, as in
 * asyncio. Returns -EPIPE (asyncio's BrokenBarrierError) if the barrier is broken, or when
 * simul_barrier_abort() or simul_barrier_reset() ends the round the caller waits in;
 * -EINVAL; -EPERM outside a task. */
int simul_barrier_wait(simul_barrier *b);
/* Ends the current round (its waiters get -EPIPE) and makes a broken barrier usable again.
 * Returns 0 or -EINVAL. */
int simul_barrier_reset(simul_barrier *b);
/* Breaks the barrier: its waiters and every later wait get -EPIPE until a reset. Returns 0 or
 * -EINVAL. */
int simul_barrier_abort(simul_barrier *b);
/* The number of tasks each round waits for. */
unsigned simul_barrier_parties(const simul_barrier *b);
/* The number of tasks waiting in the current round. */
unsigned simul_barrier_n_waiting(const simul_barrier *b);
/* Whether the barrier was aborted and not reset since. */
bool simul_barrier_broken(const simul_barrier *b);

/* ---------------------------------------------------------------------------------------------
 * Queues: FIFO, LIFO and priority queues between tasks
 * ------------------------------------------------------------------------------------------- */
/* asyncio.Queue, LifoQueue and PriorityQueue, with Python 3.13's shutdown. Items are void *
 * pointers the caller owns (NULL is a valid item); the queue never frees them itself, only hands
 * them to a discard callback where one is given. Not thread-safe (see channels). Waiting getters
 * and putters are served FIFO. A put that finds a waiting getter hands the item straight to it;
 * a get from a full queue moves the first blocked putter's item in: in both cases the waiter's
 * call succeeds even if a cancel or deadline lands before it runs, so no item is lost or
 * duplicated. A put that returns an error has not enqueued its item. */

typedef struct simul_queue simul_queue;

/* Orders a priority queue: < 0 if item `a` comes out before `b`, 0 if equal (then the one put
 * first comes out first), > 0 otherwise. It receives the items themselves (not pointers to
 * them, unlike qsort) and must not touch the queue. */
typedef int (*simul_queue_cmp_cb)(const void *a, const void *b);
/* Receives an item the queue drops (free, immediate shutdown). */
typedef void (*simul_queue_discard_cb)(void *item);

/* Creates a FIFO queue holding at most `maxsize` items (0: unbounded). Needs no loop; the
 * caller frees it with simul_queue_free(). Returns 0, -EINVAL, -ENOMEM. */
int simul_queue_new(simul_queue **out, size_t maxsize);
/* The same, last in first out (asyncio.LifoQueue). */
int simul_lifo_queue_new(simul_queue **out, size_t maxsize);
/* The same, smallest item first by `cmp`, stable for equal items (asyncio.PriorityQueue).
 * -EINVAL if cmp is NULL. */
int simul_priority_queue_new(simul_queue **out, size_t maxsize, simul_queue_cmp_cb cmp);

/* Frees the queue. Items still queued go to `discard` (may be NULL: they are just dropped; the
 * library never frees an item). Tasks still waiting on the queue resume with -ESHUTDOWN
 * (shut the queue down and let them return first). */
void simul_queue_free(simul_queue *q, simul_queue_discard_cb discard);

/* Suspends while the queue is full (backpressure), then enqueues `item`. Returns 0;
 * -ESHUTDOWN if the queue is or gets shut down (the item was not enqueued); -ECANCELED /
 * -ETIMEDOUT (not enqueued); -ENOMEM; -EINVAL; -EPERM outside a task. */
int simul_queue_put(simul_queue *q, void *item);
/* Suspends while the queue is empty, then removes the next item into *item. Returns 0;
 * -ESHUTDOWN once the queue is shut down and empty (at once after an immediate shutdown);
 * -ECANCELED / -ETIMEDOUT (nothing removed); -EINVAL; -EPERM outside a task. */
int simul_queue_get(simul_queue *q, void **item);
/* Enqueues without suspending (also from callbacks). Returns 0, -EAGAIN if full, -ESHUTDOWN,
 * -ENOMEM, -EINVAL. */
int simul_queue_put_nowait(simul_queue *q, void *item);
/* Removes the next item without suspending (also from callbacks). Returns 0, -EAGAIN if
 * empty, -ESHUTDOWN if shut down and empty, -EINVAL. */
int simul_queue_get_nowait(simul_queue *q, void **item);

/* Items in the queue (not counting items handed straight to getters). */
size_t simul_queue_qsize(const simul_queue *q);
/* The maxsize given at creation (0: unbounded). */
size_t simul_queue_maxsize(const simul_queue *q);
/* Whether qsize is 0. */
bool simul_queue_empty(const simul_queue *q);
/* Whether the queue is bounded and holds maxsize items. */
bool simul_queue_full(const simul_queue *q);

/* Marks one item taken by a get as processed. Every successful put counts one unfinished item
 * until its task_done. Returns 0; -EOVERFLOW if called more times than items were put; -EINVAL. */
int simul_queue_task_done(simul_queue *q);
/* Suspends until every item put has been marked done (at once if none is unfinished). Returns
 * 0; -ECANCELED / -ETIMEDOUT; -EINVAL; -EPERM outside a task. */
int simul_queue_join(simul_queue *q);

/* Shuts the queue down (Python 3.13): later puts fail with -ESHUTDOWN and blocked putters wake
 * with -ESHUTDOWN (their items not enqueued); blocked getters wake with -ESHUTDOWN. Without
 * `immediate` the items already queued can still be got, then gets fail with -ESHUTDOWN. With
 * `immediate` the queue is emptied at once, each item passed to `discard` (may be NULL) and
 * counted as done, which may release join(). Calling it again is harmless. Also from callbacks.
 * Returns 0 or -EINVAL. */
int simul_queue_shutdown(simul_queue *q, bool immediate, simul_queue_discard_cb discard);
/* Whether simul_queue_shutdown() was called. */
bool simul_queue_is_shutdown(const simul_queue *q);

/* ---------------------------------------------------------------------------------------------
 * Channels: a thread-safe queue between other threads and the loop
 * ------------------------------------------------------------------------------------------- */
/* A bounded FIFO of void * items between threads and loops: put and get from a task on any loop
 * (suspending, cancellable, with deadline scopes), from any thread (blocking with a timeout), or
 * without waiting from anywhere. Waiters of both kinds are served in arrival order with direct
 * hand-over, so an item is delivered exactly once even when a cancel races with it. Items are
 * the caller's; the channel never frees one except through a discard callback.
 * Closing: puts fail with -EPIPE at once; gets drain the items still queued, then fail with
 * -EPIPE. Every function here but simul_channel_new / _free is thread-safe. */

typedef struct simul_channel simul_channel;

/* Creates a channel holding at most `capacity` items (>= 1; the buffer is allocated now). Needs
 * no loop. Returns 0, -EINVAL, -ENOMEM. */
int simul_channel_new(simul_channel **out, size_t capacity);

/* Frees a channel nobody uses any more: no task or thread may be inside a call on it (close it
 * and let them return first; a waiter left is an assertion failure). Items still queued go to
 * `discard` (may be NULL). */
void simul_channel_free(simul_channel *ch, simul_queue_discard_cb discard);

/* Thread-safe. Closes the channel: blocked putters fail with -EPIPE (items not enqueued);
 * blocked getters (the channel is empty) fail with -EPIPE. Idempotent. Returns 0 or -EINVAL. */
int simul_channel_close(simul_channel *ch);
/* Thread-safe. Whether the channel was closed. */
bool simul_channel_closed(simul_channel *ch);
/* Thread-safe. Items queued now. */
size_t simul_channel_size(simul_channel *ch);
/* Thread-safe. The capacity given at creation. */
size_t simul_channel_capacity(const simul_channel *ch);

/* Suspends. Thread-safe (a task on any thread's loop). Waits while the channel is full, then
 * enqueues `item` or hands it to a waiting getter. Returns 0; -EPIPE if closed (not enqueued);
 * -ECANCELED / -ETIMEDOUT (not enqueued); -EINVAL; -EPERM outside a task. */
int simul_channel_put(simul_channel *ch, void *item);
/* Suspends. Thread-safe (a task on any thread's loop). Waits while the channel is empty, then
 * removes the next item into *item. Returns 0; -EPIPE once closed and drained; -ECANCELED /
 * -ETIMEDOUT (nothing removed); -EINVAL; -EPERM outside a task. */
int simul_channel_get(simul_channel *ch, void **item);

/* Thread-safe. Blocks the calling thread (not a task: it would stall its loop) for at most
 * `timeout` seconds (INFINITY: no limit; 0: do not block) while the channel is full, then
 * enqueues `item`. Returns 0; -ETIMEDOUT (not enqueued); -EPIPE if closed; -EDEADLK when called
 * on a thread whose loop is running; -EINVAL for a negative or NaN timeout. */
int simul_channel_put_blocking(simul_channel *ch, void *item, double timeout);
/* Thread-safe. Blocks the calling thread for at most `timeout` seconds while the channel is
 * empty, then removes the next item into *item. Returns 0; -ETIMEDOUT; -EPIPE once closed and
 * drained; -EDEADLK on a thread whose loop is running; -EINVAL. */
int simul_channel_get_blocking(simul_channel *ch, void **item, double timeout);

/* Thread-safe, never waits (from any thread, task or callback). Returns 0, -EAGAIN if full,
 * -EPIPE if closed, -EINVAL. */
int simul_channel_put_nowait(simul_channel *ch, void *item);
/* Thread-safe, never waits. Returns 0, -EAGAIN if empty, -EPIPE if closed and drained,
 * -EINVAL. */
int simul_channel_get_nowait(simul_channel *ch, void **item);

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
 * Sockets: task-level accept, connect, recv, send
 * ------------------------------------------------------------------------------------------- */
/* Task-level sockets on plain fds, as asyncio's loop.sock_* calls. Every fd these return is
 * non-blocking and close-on-exec; close it with simul_close(). Sends never raise SIGPIPE (a peer
 * that is gone is -EPIPE). Every suspending call honours cancellation and deadline scopes. */
struct sockaddr;
typedef unsigned int simul_socklen_t; /* socklen_t, without pulling in <sys/socket.h> */

/* A non-blocking, close-on-exec socket(2). Returns the fd or a negative errno. Never suspends. */
int simul_socket(int domain, int type, int protocol);

/* Suspends until a connection arrives. Returns the new fd (non-blocking, close-on-exec) and
 * fills addr/len if given. EMFILE/ENFILE are returned to the caller (servers built on this back
 * off; see the streams and transports). */
int simul_accept(int fd, struct sockaddr *addr, simul_socklen_t *len);

/* Suspends until connected. Returns 0 or the connection error (-ECONNREFUSED, -ETIMEDOUT,
 * -ENETUNREACH, ...). If cancelled or timed out the socket is in an undefined state: close it. */
int simul_connect(int fd, const struct sockaddr *addr, simul_socklen_t len);

/* Suspends until some data arrives. Returns the count (0 at EOF) or a negative errno. */
long simul_recv(int fd, void *buf, size_t len, int flags);

/* Suspends until the kernel takes some bytes. Returns the count taken or a negative errno. */
long simul_send(int fd, const void *buf, size_t len, int flags);

/* Suspends until all len bytes are sent. Returns len, or a negative errno; *sent (may be NULL)
 * always gets the count the kernel took, also on error, cancellation or timeout. */
long simul_sendall(int fd, const void *buf, size_t len, size_t *sent);

/* Datagrams: suspend until one arrives / is taken. Return the byte count or a negative errno. */
long simul_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                    simul_socklen_t *addrlen);
long simul_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                  simul_socklen_t addrlen);


/* ---------------------------------------------------------------------------------------------
 * Name resolution: getaddrinfo off the loop
 * ------------------------------------------------------------------------------------------- */
struct addrinfo;

/* Resolver failures (getaddrinfo's EAI_* codes) come back as SIMUL_EAI(EAI_x), a negative value
 * far from every errno (compare with it: `rc == SIMUL_EAI(EAI_NONAME)`). simul_errname() gives
 * the EAI name ("EAI_NONAME"), simul_strerror() gai_strerror's text ("Name or service not
 * known"). EAI_SYSTEM comes back as the plain -errno, EAI_MEMORY as -ENOMEM. */
#define SIMUL_EAI_BASE 20000
#define SIMUL_EAI(eai) (-(SIMUL_EAI_BASE - (eai)))
/* Whether err is a SIMUL_EAI code. */
bool simul_is_eai(int err);

/* Suspends. getaddrinfo(3) run on the resolver's own small thread pool (up to 4 threads, started
 * on demand, gone after 5 s idle; never the executor's: slow lookups cannot starve other
 * blocking work). host, service and hints are copied. A numeric host (or host NULL, or
 * AI_NUMERICHOST) needs no name service and is answered at once on the calling thread (a service
 * name is then read from /etc/services there): that case does not suspend and also works
 * outside a task, but inside one it is still a cancellation point. Returns 0 and *res (free it
 * with simul_freeaddrinfo), or a negative errno / SIMUL_EAI code (*res is NULL then); -EPERM for
 * a name lookup outside a task. Cancellable and honours deadlines (-ECANCELED / -ETIMEDOUT at
 * once): the lookup thread finishes on its own and its result is dropped, even if the loop has
 * been closed meanwhile. */
int simul_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                      struct addrinfo **res);
/* Frees a result of simul_getaddrinfo (NULL is fine). */
void simul_freeaddrinfo(struct addrinfo *res);

/* Suspends. Resolves host:port (TCP) and connects, trying the addresses in turn with Happy
 * Eyeballs (RFC 8305: families interleaved, a new attempt every 250 ms while earlier ones are
 * pending, or at once when one fails; the first to connect wins, the others are closed).
 * host NULL is the loopback address. Returns the connected fd (non-blocking, close-on-exec,
 * TCP_NODELAY set, registered with the loop) or the last attempt's error (-ECONNREFUSED, ...),
 * a SIMUL_EAI code, -ECANCELED / -ETIMEDOUT (every attempt is cancelled and its fd closed
 * before it returns), -EINVAL (port NULL), -EPERM. No timeout of its own: use a deadline scope. */
int simul_tcp_connect(const char *host, const char *port);

/* Resolves host:port (AI_PASSIVE) and listens on every address it gives: host NULL or "" means
 * every interface (one IPv6 socket with IPV6_V6ONLY off that takes IPv4 too; a plain IPv4 socket
 * on a host without IPv6), port "0" (or NULL) picks a free port (the same port for every
 * family). Addresses of a family the host cannot use are skipped. SO_REUSEADDR is set; flags may
 * hold SIMUL_LISTEN_REUSEPORT; backlog <= 0 means 511. Listens on at most max_fds addresses and
 * stores the fds (non-blocking, close-on-exec) in fds; returns how many, or a negative errno /
 * SIMUL_EAI code with nothing left open. Never suspends on a numeric or empty host (works
 * outside a task then); suspends to resolve a name (-EPERM outside a task). */
#define SIMUL_LISTEN_REUSEPORT 1u
int simul_tcp_listen(const char *host, const char *port, int backlog, unsigned flags, int *fds,
                     int max_fds);

/* Unix stream sockets: a path starting with '@' names Linux's abstract namespace (no file). A
 * path too long for sockaddr_un is -ENAMETOOLONG (never cut short), an empty one -EINVAL. */

/* Suspends. Connects to path. Returns the connected fd or a negative errno (-ENOENT,
 * -ECONNREFUSED, ...). A full listen backlog is retried after short sleeps, as a blocking connect
 * would wait (cancel it or put a deadline scope around it). */
int simul_unix_connect(const char *path);

/* Listens on path. A socket file left by a dead server (connecting to it is refused) is unlinked
 * and the bind retried; a live one, or a file that is not a socket, gives -EADDRINUSE.
 * backlog <= 0 means 511. Returns the listening fd or a negative errno. Never suspends (works
 * outside a task). */
int simul_unix_listen(const char *path, int backlog);


/* ---------------------------------------------------------------------------------------------
 * Streams (asyncio.open_connection / start_server)
 * ------------------------------------------------------------------------------------------- */
/* @@SERVER@@ */

/* @@STREAM@@ */

/* ---------------------------------------------------------------------------------------------
 * Transports and protocols (asyncio.Protocol, create_server, create_connection)
 * ------------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------------
 * UDP: datagram endpoints
 * ------------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------------
 * Threads: run blocking functions off the loop (asyncio.to_thread / run_in_executor)
 * ------------------------------------------------------------------------------------------- */
/* One process-wide pool serves every loop (threads are a process resource: a pool per loop would
 * multiply them). At most simul_executor_max_threads() workers (default min(32, CPUs + 4), as
 * asyncio); they start on demand when no worker is idle and exit after 10 s idle. Workers are
 * detached with every signal blocked, so one stuck in a function at exit does not hold the
 * process. The name resolver has its own pool (slow lookups never starve this one). */

/* A function run on a worker thread. Its result is >= 0 or a negative errno, by convention. It
 * runs outside any loop: it must not call suspending functions (they return -EPERM) nor touch
 * loop objects, except through thread-safe calls (simul_loop_call_soon_threadsafe, channels). */
typedef int (*simul_thread_fn)(void *arg);

/* Takes back `arg` of a call whose caller gave up (see simul_to_thread_ex). `result` is fn's
 * return value, or -ECANCELED if fn never ran. */
typedef void (*simul_thread_discard_cb)(void *arg, int result);

/* Suspends (asyncio.to_thread). Runs fn(arg) on a worker thread and waits for it: returns 0 with
 * fn's return value in *result (may be NULL); fn's writes through arg are visible on return.
 * If the caller is cancelled or its deadline expires first it returns -ECANCELED / -ETIMEDOUT
 * at once:
 * - fn still queued (every worker busy): it is taken off the queue and never runs (as a queued
 *   concurrent.futures job that is cancelled);
 * - fn running: it runs to its end on its thread; its result is dropped;
 * - fn already finished: completion wins, the call returns 0 with the result.
 * So `arg` must stay valid until fn returns, which may be after an interrupted call returned:
 * with this function use memory that outlives the call (not the caller's stack), or wrap the
 * call in a shield scope (then cancellation waits for fn), or use simul_to_thread_ex.
 * Other returns: -EINVAL (fn NULL), -EPERM outside a task, -ENOMEM, or the pthread_create error
 * (-EAGAIN) when no worker exists and none can be started (nothing ran). */
int simul_to_thread(simul_thread_fn fn, void *arg, int *result);

/* Suspends. simul_to_thread with ownership of `arg` for callers that give up: when the call
 * returns -ECANCELED or -ETIMEDOUT, `arg` is no longer the caller's and discard(arg, result) is
 * called exactly once — before the call returns (result -ECANCELED) if fn never ran, else on the
 * worker thread right after fn returns (result = fn's). discard must therefore be thread-safe in
 * the way fn is; it may free arg and whatever fn left in it. On every other return `arg` stays
 * the caller's and discard is not called. discard may be NULL. */
int simul_to_thread_ex(simul_thread_fn fn, void *arg, simul_thread_discard_cb discard,
                       int *result);

/* Thread-safe. Sets the maximum number of worker threads (n >= 1; 0 restores the default). A
 * larger pool starts workers at once for queued calls; a smaller one shrinks as workers finish
 * their current function. Returns 0 or -EINVAL. */
int simul_executor_set_max_threads(int n);
/* Thread-safe. The maximum number of worker threads. */
int simul_executor_max_threads(void);

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

#endif /* SIMUL_H */
