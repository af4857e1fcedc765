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
 * own SIGINT handler, or ignores SIGINT, keeps it untouched. Restored when simul_run returns.
 * Inside simul_run, simul_add_signal_handler(SIGINT, ...) replaces this behaviour with the
 * program's handler for as long as it is installed (every SIGINT reaches it); a task waiting in
 * simul_wait_signal for SIGINT receives each one too, and the one-shot rule is back once it is
 * done waiting. */
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
/* A server (asyncio.Server): the listening sockets of simul_start_server() (streams) or of the
 * protocol servers. It starts accepting as soon as it is made (start_serving=True). Connections
 * are accepted in batches as the kernel reports them; when the process runs out of file
 * descriptors (EMFILE, ENFILE) or memory the server stops accepting and retries after a back-off
 * (10 ms doubling up to 1 s) instead of spinning, and resumes once fds are free.
 * The server's owner closes it and frees it; its connections live on after close. */

/* Stops listening: closes the listening sockets (and removes a Unix socket's file, unless it was
 * replaced meanwhile). Connections already accepted go on. Idempotent. Does not suspend.
 * Returns 0, or -EINVAL. */
int simul_server_close(simul_server *s);

/* asyncio 3.13's Server.close_clients / abort_clients: end every connection the server accepted
 * that is still open, stream and protocol servers alike. Neither stops listening (that is
 * simul_server_close) and neither suspends; a connection accepted after the call, or still being
 * set up by the factory / connection_made that calls it, is not touched. Connections that end or
 * close themselves meanwhile are fine. simul_server_wait_closed then returns once they are gone.
 * close_clients closes gracefully: a transport as simul_transport_close (queued data is sent,
 * then connection_lost(ctx, 0)); a stream as simul_stream_close, the flush going on in a task of
 * its own. A peer that does not read keeps such a connection (and wait_closed) waiting, as in
 * asyncio: abort_clients ends it. (A connection closed with received data still unread is reset
 * by the kernel, whichever call closes it.) abort_clients resets (SO_LINGER 0: the peer gets
 * ECONNRESET, queued data is dropped): a transport as simul_transport_abort (connection_lost(ctx,
 * 0)), a stream as simul_stream_abort. A stream handler's call in progress (a read, drain)
 * resumes with -ECANCELED, and its later calls get -EBADF; the stream is released when the
 * handler returns, as always (a handler may still call simul_stream_close: -EBADF, harmless).
 * Returns how many open connections it reached (some may already have been closing), -EINVAL,
 * -ENXIO if called off the server's loop. */
int simul_server_close_clients(simul_server *s);
int simul_server_abort_clients(simul_server *s);

/* Suspends until the server is closed and every connection it accepted has ended (asyncio 3.12+
 * semantics). Returns 0, -ECANCELED / -ETIMEDOUT, -EINVAL. */
int simul_server_wait_closed(simul_server *s);

/* Suspends until the server is closed (by simul_server_close from another task or a callback).
 * If the caller is cancelled or times out first, it closes the server and returns -ECANCELED /
 * -ETIMEDOUT. Returns 0 once closed (at once if it is already); -EBUSY if another task is
 * already serving it forever; -EINVAL. */
int simul_server_serve_forever(simul_server *s);

/* Whether the server is still listening (asyncio's is_serving). */
bool simul_server_is_serving(const simul_server *s);

/* The listening fds (asyncio's Server.sockets): stores up to `max` of them in fds and returns how
 * many the server has (0 once closed). The fds stay the server's: do not close them. */
int simul_server_sockets(const simul_server *s, int *fds, int max);

/* The TCP port the server listens on (the one the kernel picked for port "0"); -EAFNOSUPPORT for
 * a Unix socket server, -EBADF once closed. */
int simul_server_port(const simul_server *s);

/* How many of its connections are live (accepted and not yet ended). */
size_t simul_server_connections(const simul_server *s);

/* Closes the server if it is not closed and gives the handle back. The memory stays until its
 * last connection has ended and no task waits in it, so connections may outlive the handle.
 * NULL is fine. */
void simul_server_free(simul_server *s);

/* A stream (asyncio's StreamReader and StreamWriter in one handle) over a connected stream
 * socket or a pipe. One task may read while another writes (full duplex); a second task reading
 * at the same time gets -EBUSY; several tasks may drain at once.
 *
 * Reading: data is read from the kernel when a read asks for it (no background reading), so an
 * idle stream holds no read buffer beyond the first few KiB it needed. A read of 4 KiB or more
 * with an empty buffer goes straight into the caller's memory (one read(2), no copy); so does a
 * readexactly() of 4 KiB or more, for all but what was already buffered. Smaller reads fill the
 * stream's buffer, so one read(2) serves several of them. Every read is a cancellation point
 * and honours deadline scopes, and a read cut short by either takes nothing: the bytes already
 * received stay in the stream for the next read. Errors from the kernel (-ECONNRESET, ...) are
 * sticky: once every buffered byte was read, each read returns the error again.
 *
 * Writing: write() never suspends. It hands the data to the kernel at once when nothing is queued
 * (one send(2), no copy, no loop pass) and queues what the kernel did not take; the queue is
 * flushed from the loop as the socket becomes writable, whether or not a task is in drain().
 * drain() is the flow control: it suspends while the queue is above the high-water mark until it
 * is at or below the low-water mark, so a writer that drains after each write holds at most the
 * high-water mark plus one write's size. A writer that never drains holds whatever it wrote.
 * Sends never raise SIGPIPE: a peer that is gone is -EPIPE or -ECONNRESET, sticky, from every
 * later write and drain.
 *
 * Lifecycle: the stream owns its fd. simul_stream_close() flushes, closes the fd and frees the
 * stream; a task inside another call on the stream meanwhile gets -ECANCELED from it.
 * simul_stream_abort() closes the fd at once (a reset, the queue dropped) but not the handle:
 * simul_stream_close() still frees it, so every stream is freed by exactly one close. */
typedef struct simul_stream simul_stream;
struct iovec;
struct sockaddr_storage;

#define SIMUL_STREAM_LIMIT (64u * 1024u)      /* default readline / readuntil limit */
#define SIMUL_STREAM_HIGH_WATER (64u * 1024u) /* default write-buffer high-water mark */
#define SIMUL_STREAM_LOW_WATER (16u * 1024u)  /* default low-water mark (high / 4, as asyncio) */

/* Suspends. asyncio.open_connection: resolves host:port and connects (simul_tcp_connect: Happy
 * Eyeballs, TCP_NODELAY). Returns 0 and *out, or the connection error (-ECONNREFUSED,
 * -ETIMEDOUT, -ENETUNREACH, ...) or a SIMUL_EAI code for a name that does not resolve. */
int simul_open_connection(const char *host, const char *port, simul_stream **out);

/* Suspends. asyncio.open_unix_connection: connects to the Unix stream socket at path ("@name" for
 * the abstract namespace). Returns 0 and *out, or -ENOENT, -ECONNREFUSED, ... */
int simul_open_unix_connection(const char *path, simul_stream **out);

/* Wraps a connected stream socket (TCP, Unix) or a pipe / tty / character device end in a
 * stream, which owns the fd from then on (if the call fails, the fd stays the caller's). The fd
 * is made non-blocking (for a shared file description, e.g. an inherited stdin, that shows to
 * every process sharing it). A read-only or write-only fd makes a stream that fails the other
 * direction with -EBADF. Does not suspend. Returns 0 and *out; -EINVAL for a datagram socket;
 * -EPERM for an fd the loop cannot poll (a regular file); -EBUSY if the fd has reader or writer
 * callbacks; -EBADF, -ENXIO (no loop), -ENOMEM. */
int simul_stream_from_fd(int fd, simul_stream **out);

/* Suspends. Reads up to n bytes: whatever is buffered if anything is, else waits for data.
 * Returns the count (> 0), 0 at EOF (or for n == 0), or a negative errno (-ECONNRESET,
 * -ECANCELED, -ETIMEDOUT, -EBUSY if another task is reading, -EBADF while the stream closes). */
long simul_stream_read(simul_stream *s, void *buf, size_t n);

/* Suspends until exactly n bytes have been read into buf. Returns n. If EOF comes first it
 * returns -ENODATA (asyncio's IncompleteReadError) and the partial data is in buf: *got (may be
 * NULL) tells how much, and those bytes are consumed. On every other error (-ECANCELED,
 * -ETIMEDOUT, -ECONNRESET, ...) nothing is consumed: what had arrived goes back to the stream
 * for the next read and *got is 0 (only if that needed memory and there was none, *got tells
 * how many bytes of buf hold what was taken). */
long simul_stream_readexactly(simul_stream *s, void *buf, size_t n, size_t *got);

/* Suspends until the separator (seplen >= 1 bytes) has arrived, and consumes the data up to and
 * including it. Returns its length (separator included) and points *data at it: the bytes stay
 * in the stream's buffer, valid until the next read call on the stream or its close.
 * Errors (nothing is consumed by any of them, as asyncio's readuntil):
 *   -EMSGSIZE  the data before the separator would exceed the stream's limit (the separator is
 *              not within `limit` bytes, or it was found beyond them). The data stays buffered:
 *              read it with simul_stream_read / readexactly, raise the limit, or close; calling
 *              readuntil again as it is gives -EMSGSIZE again.
 *   -ENODATA   EOF before the separator; the partial data stays buffered for simul_stream_read.
 *   -EINVAL (seplen 0), -ECANCELED, -ETIMEDOUT, -EBUSY, a read error. */
long simul_stream_readuntil(simul_stream *s, const void *sep, size_t seplen, const char **data);

/* Suspends. Reads one line ("\n"-terminated, the "\n" included) and points *line at it as
 * readuntil does. At EOF it returns the last, unterminated line, and 0 once nothing is left
 * (asyncio's readline). A line whose length before the "\n" exceeds the limit is -EMSGSIZE and,
 * unlike readuntil, is dropped so the stream goes on with the next line: the part already
 * buffered is discarded at once, and if its "\n" has not arrived yet the next readline first
 * skips the rest of it, through the "\n" (asyncio clears the buffer but then returns that rest as
 * a line). A read, readexactly or readuntil in between cancels the skip and sees the rest. */
long simul_stream_readline(simul_stream *s, const char **line);

/* Whether EOF was read and nothing is left in the buffer (asyncio's at_eof). */
bool simul_stream_at_eof(const simul_stream *s);

/* The readline / readuntil limit (default SIMUL_STREAM_LIMIT; >= 1). Returns 0 or -EINVAL. */
int simul_stream_set_limit(simul_stream *s, size_t limit);

/* How many received bytes are buffered, not yet read. */
size_t simul_stream_read_buffer_size(const simul_stream *s);

/* Writes len bytes: tries the kernel at once when nothing is queued, queues (copies) the rest.
 * Never suspends; call simul_stream_drain for flow control. Returns 0 (the data is sent or
 * queued); -EPIPE / -ECONNRESET / ... once the connection has failed (nothing is queued);
 * -ESHUTDOWN after write_eof; -EBUSY while simul_stream_sendfile sends; -EBADF while the stream
 * closes; -ENOMEM (the stream is broken then: it may have sent part of the data). Also works
 * outside a task. */
int simul_stream_write(simul_stream *s, const void *buf, size_t len);

/* simul_stream_write for several buffers, in order (one sendmsg when nothing is queued). */
int simul_stream_writev(simul_stream *s, const struct iovec *iov, int iovcnt);

/* Suspends while the write queue is above the high-water mark, until it is at or below the
 * low-water mark (returns at once otherwise). Returns 0; the connection's error (-EPIPE,
 * -ECONNRESET, ...) once writing or reading has failed; -ECANCELED (also if the stream is
 * closed meanwhile), -ETIMEDOUT. */
int simul_stream_drain(simul_stream *s);

/* asyncio's set_write_buffer_limits: drain waits while more than `high` bytes are queued until
 * at most `low` are. Returns 0 or -EINVAL (low > high). */
int simul_stream_set_write_buffer_limits(simul_stream *s, size_t high, size_t low);

/* How many bytes are queued, not yet taken by the kernel. */
size_t simul_stream_write_buffer_size(const simul_stream *s);

/* Half-closes: once the queue is flushed, shuts down the sending side (the peer reads EOF);
 * reading goes on. Idempotent. Returns 0; -EOPNOTSUPP for a stream that is not a socket (see
 * simul_stream_can_write_eof); the connection's error; -EBADF while the stream closes. */
int simul_stream_write_eof(simul_stream *s);
bool simul_stream_can_write_eof(const simul_stream *s);

/* Closes the stream (asyncio's writer.close() followed by await writer.wait_closed()).
 * In a task it suspends while the queued data is flushed, then closes the fd and frees the
 * stream. A cancellation or deadline stops the wait (close in a shield scope to make sure it
 * flushes, or in a deadline scope to bound it): what is still queued is then discarded.
 * Outside a task (a callback, or with no loop running) it does not suspend: the flush finishes in
 * a task of its own ("stream-close") if one is needed, which keeps the loop alive until it ends.
 * Tasks inside other calls on the stream resume with -ECANCELED.
 * The handle is invalid once close returns, whatever it returns: 0 if everything written was
 * handed to the kernel, else the error that lost queued data (-EPIPE, -ECONNRESET, -ECANCELED,
 * -ETIMEDOUT, ...). -EBADF if the stream is already closing; -EINVAL for NULL. After
 * simul_stream_abort it only frees the handle and returns 0. */
int simul_stream_close(simul_stream *s);

/* asyncio's transport.abort() for a stream: drops the queued data, closes the fd with a reset
 * (SO_LINGER 0 on a socket: the peer gets ECONNRESET, not EOF) and wakes every task inside a
 * call on the stream (read, drain, close's flush, sendfile) with -ECANCELED, -ECONNABORTED for
 * a close that was waiting to flush. Does not suspend; works outside a task. The handle stays
 * valid, closing: later calls get -EBADF (simul_stream_fd too), is_closing is true, and
 * simul_stream_close must still be called, which then only frees it and returns 0 (a stream
 * server's handler need not: its stream is closed when it returns). Until then the stream counts
 * as open (simul_loop_close gives -EBUSY). Returns 0 (also when already aborted), -EBADF if
 * close has already closed the fd, -EINVAL for NULL. Not after simul_stream_close has
 * returned: the handle is gone then. */
int simul_stream_abort(simul_stream *s);

/* Suspends until another task (or a callback) has closed or aborted the stream. Meant for tasks
 * that share a stream with the one that closes it; the handle is invalid once this returns
 * after a close (after an abort it stays valid until simul_stream_close). Returns 0,
 * -ECANCELED, -ETIMEDOUT, -EINVAL. */
int simul_stream_wait_closed(simul_stream *s);

/* Whether close (or abort) has begun. */
bool simul_stream_is_closing(const simul_stream *s);

/* The stream's fd (still the stream's: do not close it), or -EBADF once it is closed. */
int simul_stream_fd(const simul_stream *s);

/* The peer's / the local address (getpeername / getsockname) into *addr. Returns the address
 * length, or a negative errno (-ENOTSOCK for a pipe, -ENOTCONN, ...). */
int simul_stream_peername(const simul_stream *s, struct sockaddr_storage *addr);
int simul_stream_sockname(const simul_stream *s, struct sockaddr_storage *addr);

/* A connection handler for simul_start_server: it runs as a task of its own for each accepted
 * connection (asyncio's client_connected_cb), and the stream is closed when it returns (as by
 * simul_stream_close: a flush, then the fd is closed), unless the handler closed it already.
 * The stream must not be used after the handler has returned, also by tasks the handler started.
 * The handler's return value is its task's result (in debug mode a negative one other than
 * -ECANCELED is reported on stderr, as for every detached task). */
typedef int (*simul_stream_handler)(simul_stream *s, void *arg);

typedef struct simul_stream_server_opts {
    const char *host;      /* NULL or "" = every interface, IPv6 and IPv4 (dual-stack) */
    const char *port;      /* NULL or "0" = a free port (see simul_server_port) */
    const char *unix_path; /* instead of host/port: a Unix stream socket ("@name": abstract) */
    int backlog;           /* listen backlog; 0 = 511 */
    unsigned flags;        /* SIMUL_LISTEN_REUSEPORT */
    size_t limit;          /* each stream's readline/readuntil limit; 0 = SIMUL_STREAM_LIMIT */
    size_t stack_size;     /* the handler tasks' stack; 0 = the loop's default */
} simul_stream_server_opts;

/* asyncio.start_server: listens on host:port (simul_tcp_listen: every address of host; NULL or
 * "" for every interface; port "0" picks one) and runs handler(stream, arg) as a new task for
 * each connection. May suspend to resolve a host name (a numeric host or NULL never does).
 * Returns 0 and *out (close and free it with simul_server_close / simul_server_free), or a
 * negative errno / SIMUL_EAI code. */
int simul_start_server(const char *host, const char *port, simul_stream_handler handler, void *arg,
                       simul_server **out);

/* asyncio.start_unix_server: the same on a Unix stream socket at path (a stale socket file is
 * replaced; the file is removed when the server closes). */
int simul_start_unix_server(const char *path, simul_stream_handler handler, void *arg,
                            simul_server **out);

/* simul_start_server with every option. */
int simul_start_server_opts(const simul_stream_server_opts *opts, simul_stream_handler handler,
                            void *arg, simul_server **out);

/* ---------------------------------------------------------------------------------------------
 * Transports and protocols (asyncio.Protocol, create_server, create_connection)
 * ------------------------------------------------------------------------------------------- */
/* Callback-driven connections, as asyncio's transports and protocols: the loop calls a protocol's
 * functions when data arrives, and the protocol writes through its transport. No task is involved
 * per connection: a transport is driven by its socket's readiness from the loop itself.
 * Protocol callbacks must not suspend, and may call any transport function on their own
 * transport or another, including close and abort. They run from the loop, never inside the call
 * that caused them, with two exceptions as in asyncio: connection_made runs inside the call that
 * makes the transport, and pause_writing inside the write (or set_write_buffer_limits) that took
 * the buffer over the high-water mark. */
typedef struct simul_transport simul_transport;
struct iovec;

/* A protocol: the callbacks of one connection (asyncio.Protocol / BufferedProtocol), each given
 * the context `ctx` the protocol was started with. Keep the struct valid (typically static const)
 * until connection_lost returns. Every member may be NULL except data_received, which a buffered
 * protocol (get_buffer and buffer_updated both set) replaces. Order: connection_made once, then
 * data_received / buffer_updated any number of times, then eof_received at most once, then
 * connection_lost exactly once, always last. pause_writing / resume_writing alternate, starting
 * with pause_writing, at any time between connection_made and connection_lost. */
typedef struct simul_protocol {
    /* The connection is up. `t` stays valid until connection_lost returns. */
    void (*connection_made)(simul_transport *t, void *ctx);
    /* Some bytes arrived. `data` is valid only during the call. */
    void (*data_received)(void *ctx, const void *data, size_t len);
    /* The peer closed its side. Return false (or leave NULL) and the transport closes itself
     * (flushing what is queued); return true to keep it half-open: writing still works and
     * closing is up to you. */
    bool (*eof_received)(void *ctx);
    /* The connection is gone: err is 0 after close/abort or a clean end, else the error
     * (-ECONNRESET, -EPIPE, -ETIMEDOUT, ...). The transport's memory (and its fd) is released
     * when this returns. */
    void (*connection_lost)(void *ctx, int err);
    /* The transport's write buffer went above the high-water mark / back to the low-water
     * mark: stop writing until resume_writing, or the buffer grows without bound. */
    void (*pause_writing)(void *ctx);
    void (*resume_writing)(void *ctx);
    /* Buffered protocol (asyncio.BufferedProtocol): the kernel reads straight into the
     * protocol's memory, no copy. get_buffer stores a buffer (*len > 0 bytes) that the next read
     * fills; sizehint is the size the transport would read (any positive *len works). A negative
     * return (or an empty buffer: -ENOBUFS) fails the connection with that error.
     * buffer_updated says how many bytes the read put at the start of that buffer. */
    int (*get_buffer)(void *ctx, size_t sizehint, void **buf, size_t *len);
    void (*buffer_updated)(void *ctx, size_t nbytes);
} simul_protocol;

/* Called by a protocol server for each accepted connection: stores the protocol and its context
 * for it. Returns >= 0, or a negative errno to refuse the connection (it is closed; no callback
 * of the protocol runs then). */
typedef int (*simul_protocol_factory)(void *arg, const simul_protocol **proto, void **ctx);

/* asyncio's loop.create_server: listens on host:port as simul_tcp_listen does (host NULL or "" =
 * every interface; port NULL or "0" = a free port, see simul_server_port) and starts accepting
 * at once. Each connection gets the protocol that factory(arg, ...) gives. May suspend to
 * resolve a host name (a numeric host or NULL never does). The server is the caller's: end it
 * with simul_server_close and free it with simul_server_free (connections live on until closed;
 * wait_closed waits for them). Returns 0 and *out, or a negative errno / SIMUL_EAI code. */
int simul_create_server(const char *host, const char *port, simul_protocol_factory factory,
                        void *arg, simul_server **out);
/* As simul_create_server, on a Unix stream socket at `path` (asyncio's create_unix_server; a
 * stale socket file is replaced, and the file is removed when the server closes). */
int simul_create_unix_server(const char *path, simul_protocol_factory factory, void *arg,
                             simul_server **out);

typedef struct simul_protocol_server_opts {
    const char *host;      /* NULL or "" = every interface, IPv6 and IPv4 (dual-stack) */
    const char *port;      /* NULL or "0" = a free port */
    const char *unix_path; /* instead of host/port: a Unix stream socket */
    int backlog;           /* listen backlog; 0 = 511 */
    unsigned flags;        /* SIMUL_LISTEN_REUSEPORT */
} simul_protocol_server_opts;

/* simul_create_server with every option. */
int simul_create_server_opts(const simul_protocol_server_opts *opts, simul_protocol_factory factory,
                             void *arg, simul_server **out);

/* Suspends. asyncio's loop.create_connection: connects to host:port with simul_tcp_connect,
 * calls proto->connection_made before returning, and starts reading. Returns 0 and *out (valid
 * until connection_lost returns), or the connection error (-ECONNREFUSED, SIMUL_EAI codes, ...;
 * no callback runs then). */
int simul_create_connection(const char *host, const char *port, const simul_protocol *proto,
                            void *ctx, simul_transport **out);
/* As simul_create_connection, to a Unix stream socket (asyncio's create_unix_connection). */
int simul_create_unix_connection(const char *path, const simul_protocol *proto, void *ctx,
                                 simul_transport **out);

/* asyncio's loop.connect_accepted_socket: wraps a connected stream socket (accepted, connected,
 * one end of a socketpair) in a transport. Does not suspend. The transport owns fd from then on
 * (made non-blocking; TCP_NODELAY set for TCP) and closes it after connection_lost. Calls
 * proto->connection_made before returning. Returns 0 and *out; -ENOTSOCK / -EPROTOTYPE for an
 * fd that is not a stream socket, -EBUSY if it has add_reader/add_writer callbacks, -ENXIO (no
 * loop), -ENOMEM (the fd stays the caller's on every error). */
int simul_connect_accepted_socket(int fd, const simul_protocol *proto, void *ctx,
                                  simul_transport **out);

/* Sends data (copied: the buffer is free again on return). When nothing is queued the socket is
 * tried at once; what it does not take is queued and sent as it drains. Crossing the high-water
 * mark calls pause_writing (inside this call). Returns 0 when the bytes are sent or queued;
 * -EPIPE after close, abort or write_eof; the connection's error once it failed (connection_lost
 * reports it too); -ENOMEM (the connection fails: some bytes may have gone). */
int simul_transport_write(simul_transport *t, const void *data, size_t len);
/* As simul_transport_write for a gather list (one sendmsg when nothing is queued). -EINVAL for
 * iovcnt < 0. */
int simul_transport_writev(simul_transport *t, const struct iovec *iov, int iovcnt);

/* Half-closes: shuts the write side down once the queued data is sent (at once if none). Reading
 * goes on. Returns 0, or the error of shutdown(2). Writing afterwards is -EPIPE. */
int simul_transport_write_eof(simul_transport *t);

/* Closes: stops reading, sends what is queued, then closes; connection_lost(ctx, 0) follows from
 * the loop (never inside this call). Idempotent. */
void simul_transport_close(simul_transport *t);
/* Closes now, dropping queued data; connection_lost(ctx, 0) follows from the loop. */
void simul_transport_abort(simul_transport *t);
/* Whether close or abort was called or the connection failed. */
bool simul_transport_is_closing(const simul_transport *t);

/* Stops data_received (and eof_received) until resume_reading. Nothing is lost: data that
 * arrives meanwhile waits in the kernel and is delivered after resume_reading. Both are no-ops
 * on a closing transport or when already in that state. */
void simul_transport_pause_reading(simul_transport *t);
void simul_transport_resume_reading(simul_transport *t);
bool simul_transport_is_reading(const simul_transport *t);

/* Write-buffer flow control (defaults 64 KiB / 16 KiB, as asyncio): pause_writing when the
 * queued bytes exceed `high`, resume_writing once they are back to `low` or below. Returns 0 or
 * -EINVAL (low > high). May call pause_writing at once. */
int simul_transport_set_write_buffer_limits(simul_transport *t, size_t high, size_t low);
void simul_transport_get_write_buffer_limits(const simul_transport *t, size_t *low, size_t *high);
/* Bytes queued in the transport (not yet taken by the kernel). */
size_t simul_transport_get_write_buffer_size(const simul_transport *t);

/* getpeername / getsockname of the socket. Return 0 or a negative errno. */
int simul_transport_get_peername(const simul_transport *t, struct sockaddr *addr,
                                 simul_socklen_t *len);
int simul_transport_get_sockname(const simul_transport *t, struct sockaddr *addr,
                                 simul_socklen_t *len);
/* The socket (owned by the transport: do not close it, read it or wait on it). */
int simul_transport_fd(const simul_transport *t);

/* Switches the connection to another protocol (asyncio's set_protocol): later callbacks go to
 * it; the old one gets none, not even connection_lost. */
void simul_transport_set_protocol(simul_transport *t, const simul_protocol *proto, void *ctx);
const simul_protocol *simul_transport_get_protocol(const simul_transport *t, void **ctx);

/* ---------------------------------------------------------------------------------------------
 * UDP: datagram endpoints
 * ------------------------------------------------------------------------------------------- */
/* Datagram endpoints as protocols (asyncio's create_datagram_endpoint). Same rules as the stream
 * protocols: callbacks run from the loop, must not suspend, and may call any transport function;
 * connection_lost comes exactly once, last, and never inside the call that caused it. */
typedef struct simul_datagram_transport simul_datagram_transport;

typedef struct simul_datagram_protocol {
    void (*connection_made)(simul_datagram_transport *t, void *ctx);
    /* One datagram from addr (valid only during the call). Required. */
    void (*datagram_received)(void *ctx, const void *data, size_t len, const struct sockaddr *addr,
                              simul_socklen_t addrlen);
    /* A send or receive failed (-ECONNREFUSED after an ICMP port unreachable, -EMSGSIZE for a
     * datagram larger than 64 KiB, ...). The endpoint stays open. */
    void (*error_received)(void *ctx, int err);
    /* err is 0 after close/abort. The transport's memory is released when this returns. */
    void (*connection_lost)(void *ctx, int err);
    /* Flow control of the send queue, as for streams. */
    void (*pause_writing)(void *ctx);
    void (*resume_writing)(void *ctx);
} simul_datagram_protocol;

/* Flags of simul_create_datagram_endpoint (SIMUL_LISTEN_REUSEPORT also works). */
#define SIMUL_DATAGRAM_BROADCAST 2u /* SO_BROADCAST */

/* Suspends (name resolution). A UDP endpoint bound to local_host:local_port (both NULL: an
 * ephemeral port chosen by the kernel) and, if remote_host or remote_port is given, connected to
 * that address (sends go there and only its datagrams are received). The family follows the
 * remote address if any, else the local one. Calls proto->connection_made before returning.
 * Returns 0 and *out (valid until connection_lost returns), -EINVAL (neither address given),
 * or a negative errno / SIMUL_EAI code (no callback runs then). */
int simul_create_datagram_endpoint(const char *local_host, const char *local_port,
                                   const char *remote_host, const char *remote_port, unsigned flags,
                                   const simul_datagram_protocol *proto, void *ctx,
                                   simul_datagram_transport **out);

/* asyncio's create_datagram_endpoint(sock=...): wraps a datagram socket (UDP, or AF_UNIX
 * SOCK_DGRAM such as one end of a socketpair); it counts as connected if it has a peer. Does not
 * suspend. The transport owns fd from then on (made non-blocking) and closes it after
 * connection_lost. Calls proto->connection_made before returning. Returns 0 and *out;
 * -ENOTSOCK / -EPROTOTYPE (not a datagram socket), -EBUSY, -ENXIO, -ENOMEM (the fd stays the
 * caller's on every error). */
int simul_create_datagram_endpoint_sock(int fd, const simul_datagram_protocol *proto, void *ctx,
                                        simul_datagram_transport **out);

/* Sends one datagram (copied) to addr, or, for a connected endpoint, to its peer (addr NULL or
 * the peer's address). Tried at once; queued when the kernel says EAGAIN (pause_writing above the
 * high-water mark; each datagram counts its size plus 8). Returns 0 when sent or queued, or the
 * error of that send (-EMSGSIZE, -ECONNREFUSED, ...; not reported to error_received); -EPIPE
 * after close/abort; -EDESTADDRREQ (no addr, not connected); -EISCONN (connected, another
 * addr). Errors of queued datagrams sent later go to error_received. */
int simul_datagram_transport_sendto(simul_datagram_transport *t, const void *data, size_t len,
                                    const struct sockaddr *addr, simul_socklen_t addrlen);
/* Sends what is queued, then closes; connection_lost(ctx, 0) follows from the loop. */
void simul_datagram_transport_close(simul_datagram_transport *t);
/* Closes now, dropping the queue; connection_lost(ctx, 0) follows from the loop. */
void simul_datagram_transport_abort(simul_datagram_transport *t);
bool simul_datagram_transport_is_closing(const simul_datagram_transport *t);
/* Send-queue flow control (defaults 64 KiB / 16 KiB). Returns 0 or -EINVAL (low > high). */
int simul_datagram_transport_set_write_buffer_limits(simul_datagram_transport *t, size_t high,
                                                     size_t low);
size_t simul_datagram_transport_get_write_buffer_size(const simul_datagram_transport *t);
int simul_datagram_transport_get_sockname(const simul_datagram_transport *t, struct sockaddr *addr,
                                          simul_socklen_t *len);
/* -ENOTCONN for an endpoint that is not connected. */
int simul_datagram_transport_get_peername(const simul_datagram_transport *t, struct sockaddr *addr,
                                          simul_socklen_t *len);
int simul_datagram_transport_fd(const simul_datagram_transport *t);

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
 * returns -ECANCELED, -ETIMEDOUT or -ENOMEM (however early: also a task already cancelled when
 * it calls), `arg` is no longer the caller's and discard(arg, result) is called exactly once —
 * before the call returns (result -ECANCELED) if fn never ran, else on the worker thread right
 * after fn returns (result = fn's). discard must therefore be thread-safe in the way fn is; it
 * may free arg and whatever fn left in it. On every other return (0, -EINVAL, -EPERM, -EAGAIN)
 * `arg` stays the caller's and discard is not called. discard may be NULL. */
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

/* ---------------------------------------------------------------------------------------------
 * Subprocesses (asyncio.create_subprocess_exec / create_subprocess_shell)
 * ------------------------------------------------------------------------------------------- */
/* Child processes. Spawning is posix_spawn (a vfork-style clone: no page-table copy, and an exec
 * failure comes back as the call's error). The child starts with every signal at its default
 * action and an empty signal mask (whatever handlers and masks this process has), and inherits
 * no fd of the library (they are all close-on-exec) and, unless SIMUL_PROCESS_KEEP_FDS, no fd
 * above 2 at all but the opts' pass_fds (as Python's close_fds=True).
 *
 * Exit watching: a pidfd (Linux >= 5.3) registered with the loop, reaped with
 * waitid(P_PIDFD, WNOHANG). Where pidfd_open is unavailable (ENOSYS, or EPERM in some sandboxes),
 * or when the environment variable SIMUL_NO_PIDFD=1 is set (read once per process), the loop
 * catches SIGCHLD (as simul_add_signal_handler does, while it has such children) and on each one
 * polls each of its own children with waitpid(pid, WNOHANG) -- never waitpid(-1), which would
 * steal other code's children -- plus a slow timer poll as a safety net (every 20 ms when another
 * loop owns SIGCHLD). In that mode do not install your own SIGCHLD handler on the same loop.
 *
 * No zombies: a child is reaped as soon as it exits, whether or not a task waits for it. A
 * handle freed while its child still runs hands the child to a process-wide reaper thread
 * (started on demand, gone when it has nothing left to reap) that reaps it when it exits: the
 * child is not killed (as asyncio), and the loop may close meanwhile. If this process sets
 * SIGCHLD to SIG_IGN the kernel reaps children itself and their status is reported as 255 (as
 * asyncio's "unknown child"). An open process handle counts as live I/O: simul_loop_close
 * returns -EBUSY until it is freed.
 *
 * Every function here is for the loop's thread only (simul_process_pid excepted). */
typedef struct simul_process simul_process;

/* What a child's stdin, stdout or stderr is connected to. */
enum simul_stdio {
    SIMUL_STDIO_INHERIT = 0, /* this process's own fd 0/1/2 (the default) */
    SIMUL_STDIO_PIPE = 1,    /* a pipe whose other end is a simul_stream (simul_process_stdin...) */
    SIMUL_STDIO_DEVNULL = 2, /* /dev/null */
    SIMUL_STDIO_FD = 3,      /* the caller's fd in stdin_fd / stdout_fd / stderr_fd (duplicated
                                into the child: it stays the caller's, open) */
    SIMUL_STDIO_STDOUT = 4,  /* stderr only: wherever stdout goes (2>&1) */
};

#define SIMUL_PROCESS_NEW_SESSION 1u /* setsid() in the child (Python's start_new_session): a
                                        session and a process group of its own, no terminal */
#define SIMUL_PROCESS_NEW_PGROUP 2u  /* a process group of its own (Python's process_group=0) */
#define SIMUL_PROCESS_KEEP_FDS 4u    /* the child inherits every fd not marked close-on-exec */

/* The value of simul_process_opts.umask that gives the child umask `mask` (0..0777). A plain
 * number there is -EINVAL: 0 must keep meaning "inherit", and 022 alone would be ambiguous. */
#define SIMUL_PROCESS_UMASK(mask) ((int)(0x10000 | (mask)))

/* The default output limit of simul_process_communicate (per pipe). */
#define SIMUL_PROCESS_OUTPUT_LIMIT (64u * 1024u * 1024u)

typedef struct simul_process_opts {
    const char *const *argv; /* exec: program and arguments, NULL-terminated; a program without
                                '/' is looked up in PATH (env's PATH if env is given, else this
                                process's). shell: must be NULL. */
    const char *const *env;  /* "NAME=value" strings, NULL-terminated; NULL = this environment */
    const char *cwd;         /* the child's working directory; NULL = this process's */
    int stdin_mode, stdout_mode, stderr_mode; /* enum simul_stdio; 0 = inherit */
    int stdin_fd, stdout_fd, stderr_fd;       /* read for SIMUL_STDIO_FD only */
    unsigned flags;                           /* SIMUL_PROCESS_* */
    /* Python's pass_fds: fds (>= 3, open) that stay open in the child under the same numbers
     * whether or not they are close-on-exec here (only the child's copy loses the flag; this
     * process's fds are not touched). Every other fd above 2 is still closed (below the highest
     * passed one: those open without close-on-exec when the call starts, so one that another
     * thread opens that way meanwhile may reach the child, as with any fork+exec). Read during
     * the call only. */
    const int *pass_fds;
    size_t n_pass_fds;
    /* Python's umask=: 0 (the default) inherits this process's umask; SIMUL_PROCESS_UMASK(m)
     * sets m in the child only. Setting one spawns from a short-lived thread of its own
     * (unshare(CLONE_FS); some 50 us more), so no other thread of this process ever sees m. */
    int umask;
    /* Python's process_group=N with N > 0: the child joins the existing process group N (e.g.
     * the group of a first child started with SIMUL_PROCESS_NEW_PGROUP, to signal a pipeline
     * as one). 0: unset. */
    int join_pgid;
} simul_process_opts;

/* asyncio.create_subprocess_exec: starts opts->argv[0] with opts->argv. Does not suspend (the
 * spawn itself blocks the loop for the ~0.1-1 ms a vfork+exec takes). Returns 0 and *out (the
 * caller frees it with simul_process_free); or, with nothing started and nothing left open: the
 * exec's error (-ENOENT no such program or cwd, -EACCES not executable, -ENOEXEC, -ENOTDIR, ...),
 * -EINVAL (no argv / argv[0], a bad mode or flag, argv given to the shell variant, a pass_fds
 * entry below 3 or n_pass_fds without pass_fds, a umask not made by SIMUL_PROCESS_UMASK,
 * join_pgid < 0 or with NEW_PGROUP / NEW_SESSION), -EBADF (a SIMUL_STDIO_FD or pass_fds fd that
 * is not open), -EPERM (no group join_pgid in this session, or a sandbox refuses the umask
 * thread's unshare(CLONE_FS)), -ENOSYS (pass_fds with a libc older than glibc 2.29, which cannot
 * clear a passed fd's close-on-exec in the child only), -ENXIO (no loop), -EMFILE / -ENOMEM /
 * -EAGAIN. */
int simul_process_exec(const simul_process_opts *opts, simul_process **out);

/* asyncio.create_subprocess_shell: runs `/bin/sh -c cmd` with opts (which may be NULL: all
 * inherited). A command that does not exist is not an error here: the shell exits with 127. */
int simul_process_shell(const char *cmd, const simul_process_opts *opts, simul_process **out);

/* The parent's end of a SIMUL_STDIO_PIPE: a stream (write-only for stdin, read-only for stdout and
 * stderr) owned by the process handle, or NULL if that stdio is not a pipe or the stream was
 * closed. Use it with the simul_stream_* calls; close it with simul_stream_close when done (e.g.
 * stdin, so the child reads EOF) -- the handle knows, and this returns NULL from then on. Streams
 * still open when the handle is freed are closed by simul_process_free. */
simul_stream *simul_process_stdin(const simul_process *p);
simul_stream *simul_process_stdout(const simul_process *p);
simul_stream *simul_process_stderr(const simul_process *p);

/* The child's pid (valid until the handle is freed; after the child is reaped the number may
 * belong to another process: use simul_process_send_signal, not kill(2)). Thread-safe. */
int simul_process_pid(const simul_process *p);

/* Suspends until the child has exited and stores its status in *status (may be NULL), as
 * asyncio's returncode: the exit code 0..255, or -N if signal N killed it. At once if it has
 * exited already. Returns 0; -ECANCELED / -ETIMEDOUT (the child keeps running and is still
 * reaped when it exits: wait again, or free); -ECANCELED also when the handle is freed by
 * another task meanwhile; -EINVAL; -EPERM outside a task. */
int simul_process_wait(simul_process *p, int *status);

/* Does not suspend: 0 and the status (as simul_process_wait) if the child has exited (it reaps it
 * now if it has exited and was not reaped yet), -EAGAIN while it runs, -EINVAL. */
int simul_process_returncode(simul_process *p, int *status);

/* What simul_process_communicate collected: each buffer is malloc'd and NUL-terminated (the
 * count excludes the NUL), NULL when that stdio is not a pipe. Free with
 * simul_process_output_free. */
typedef struct simul_process_output {
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
} simul_process_output;

/* Frees both buffers and zeroes *o (NULL is fine). */
void simul_process_output_free(simul_process_output *o);

/* Suspends. asyncio's communicate: writes input[0..input_len) to stdin, then closes stdin (a
 * child that exits without reading it all is not an error: -EPIPE is ignored), while reading
 * stdout and stderr to their ends at the same time (so neither pipe can fill up and deadlock the
 * child), closes them, and waits for the exit. `limit` bounds what is collected per pipe (0:
 * SIMUL_PROCESS_OUTPUT_LIMIT; SIZE_MAX: none). `out` may be NULL: the output is read and dropped.
 * Returns 0 with *out and *status (may be NULL) filled; on every other return *out holds what was
 * collected so far (free it in every case), and the call leaves:
 *   -ECANCELED / -ETIMEDOUT, -EMSGSIZE (a pipe gave more than limit bytes; *out holds limit + 1 of
 *       them): the child untouched and running (or exited and reaped: check returncode); stdin
 *       closed if all of input was handed to the pipe, else still open (some of input may be
 *       queued in it, still flowing); stdout / stderr open, positioned after what *out holds.
 *       Typically: simul_process_kill, then simul_process_wait.
 *   -EINVAL (input but stdin is not a pipe; p NULL or freed), -EBUSY (another communicate on p,
 *       or another task reading one of the pipes), -EPERM outside a task, -ENOMEM: as above.
 * Pipes already closed by the caller are treated as not pipes. */
int simul_process_communicate(simul_process *p, const void *input, size_t input_len, size_t limit,
                              simul_process_output *out, int *status);

/* Sends signal `sig` (0 checks the child exists). Returns 0; -ESRCH once the child has been
 * reaped (the pid is never signalled after that, so it cannot hit another process); -EINVAL. */
int simul_process_send_signal(simul_process *p, int sig);
/* simul_process_send_signal(p, SIGTERM) / (p, SIGKILL). */
int simul_process_terminate(simul_process *p);
int simul_process_kill(simul_process *p);

/* Sends `sig` to the child's whole process group: the child and everything it started that
 * stayed in the group (a shell's pipelines and background jobs; sh -c 'a & b' killed whole).
 * The child must have been started with SIMUL_PROCESS_NEW_PGROUP or _NEW_SESSION (its group is
 * then its pid) or join_pgid (that group), else -EINVAL: its group would be this process's own.
 * Once the child has been reaped, members it left behind are still reached if the child led the
 * group and the kernel signals groups through pidfds (Linux >= 6.9: exactly that group, never a
 * later one with the same number); otherwise, and when the group is empty, -ESRCH. Returns 0
 * (some member got it); -ESRCH; -EPERM (no member may be signalled by this process); -EINVAL
 * (a bad p or sig). */
int simul_process_send_signal_group(simul_process *p, int sig);

/* Gives the handle back. Does not suspend. Pipe streams still open are closed: in a task, data
 * still queued for stdin is discarded (drain or close stdin first to deliver it); in a callback
 * it is flushed by a task of its own, as simul_stream_close does there. Tasks inside
 * simul_process_wait / communicate on p get -ECANCELED. A child still running is not killed: it
 * is handed to the reaper thread (see above). NULL is fine. */
void simul_process_free(simul_process *p);

/* ---------------------------------------------------------------------------------------------
 * Process pool: CPU-bound functions in worker processes (concurrent.futures.ProcessPoolExecutor)
 * ------------------------------------------------------------------------------------------- */
/* CPU-bound functions run in worker processes, so heavy work neither holds the loop nor is kept
 * to one core. Workers are forked from the loop's thread (no exec): a function of the program is
 * valid in them as it is, and arguments and results travel as bytes over pipes. A pool belongs to
 * the loop that made it; every function here is for that loop's thread only (none is
 * thread-safe); simul_procpool_call must come from its tasks, simul_procpool_submit may also come
 * from its callbacks.
 *
 * Workers start on demand, one per call while fewer than `workers` exist, and are reused; calls
 * beyond that wait in FIFO order. A worker:
 * - keeps stdin, stdout and stderr and closes every other fd it inherited (a socket the program
 *   closes is really closed: no forked copy keeps the peer from seeing EOF);
 * - runs with every signal unblocked, handlers reset to the default, SIGPIPE ignored (EPIPE
 *   instead) and SIGINT ignored: Ctrl-C reaches the whole process group, and the program
 *   (simul_run cancels main) decides what happens to the calls: closing the pool, or
 *   cancelling them, kills their workers;
 * - dies with the loop's thread (PR_SET_PDEATHSIG) and when its request pipe reaches EOF;
 * - is watched by the loop even while idle (its reply pipe and its pidfd): one that dies idle
 *   (the OOM killer, a kill -9) is reaped at once and replaced on demand, so no call fails for
 *   it and no zombie stays (without pidfd_open, or with SIMUL_NO_PIDFD=1, the pipe's EOF alone
 *   tells, and reaping a killed worker blocks for the moment it takes to die);
 * - leaves by _exit: its stdio buffers are not flushed (fflush or write(2) what it prints);
 *   buffered stdout of the program is flushed before each fork so it is not printed twice;
 * - must not call simul functions (the loop is not there: they fail) nor rely on locks that
 *   other threads of the program may have held at fork time (malloc and stdio are fork-safe).
 * A worker runs on the loop thread's stack (the main thread's: 8 MiB by default), not a task's.
 * The pool reaps every worker it started, each by its pid, never waitpid(-1). */
typedef struct simul_procpool simul_procpool;

/* Runs in a worker process on a copy of the caller's input (in, in_len; in is NULL when in_len
 * is 0). It may malloc a reply into *out with its length in *out_len (both start NULL / 0); the
 * library sends it back and frees it. Its return value is the call's result (>= 0 or a negative
 * errno, by convention). */
typedef int (*simul_proc_fn)(const void *in, size_t in_len, void **out, size_t *out_len);

#define SIMUL_PROCPOOL_MAX_MESSAGE ((size_t)64 << 20) /* default request / reply limit: 64 MiB */

/* Creates a pool of at most `workers` processes (0 = the CPUs this thread may run on) on the
 * current loop. Starts no process yet. The pool counts as an open handle: simul_loop_close
 * returns -EBUSY until simul_procpool_close. Returns 0 and *out; -EINVAL (workers < 0 or > 4096,
 * out NULL); -ENXIO (no loop on this thread); -ENOMEM. */
int simul_procpool_new(int workers, simul_procpool **out);

/* Suspends. Runs fn(in, in_len, ...) in a worker (ProcessPoolExecutor.submit + await): starts
 * one if none is idle and fewer than `workers` exist, else waits for one in FIFO order.
 * Returns 0 with fn's return value in *result, and its reply in *out (malloc'd in the caller's
 * process: free it; NULL when the reply is empty) and *out_len. result, out and out_len may be
 * NULL (the reply is then dropped). `in` is only read during the call.
 * Errors (*out is NULL and *out_len 0 on every one):
 * -EOWNERDEAD  the worker died during the call (a signal, _exit, exit): *result gets -SIGNUM
 *              for a signal (-SIGSEGV, -SIGABRT, ...), or the exit status (as asyncio's
 *              returncode), or INT_MIN if someone else reaped it. The pool starts a fresh
 *              worker for the next call; the other calls go on. Only the call whose request
 *              the worker had begun to read gets this: a worker found dead before it read any
 *              byte of the request (every byte written still sits in the request pipe:
 *              FIONREAD on the pool's end equals what was written, or the first write failed
 *              with EPIPE) costs nothing, and the call is given once to another worker; a
 *              second such death in a row fails it with -EOWNERDEAD.
 * -ECANCELED / -ETIMEDOUT  the caller was cancelled or its deadline passed: if the call was
 *              still waiting for a worker, fn never runs; if fn was running (or its request or
 *              reply was on the way), its worker is killed (SIGKILL) and reaped before the call
 *              returns, so a runaway fn cannot hold a core: a deadline scope bounds any call.
 *              Once the whole reply is read, completion wins (0). -ECANCELED also when the pool
 *              is closed meanwhile.
 * -EMSGSIZE    in_len is above the pool's request limit (nothing ran), or fn's reply was above
 *              the reply limit (fn ran: *result holds its return value; the reply was dropped).
 * -EAGAIN      fork failed (process limit): nothing ran. -ENOMEM: nothing ran, or the reply
 *              could not be stored (the worker is then replaced). -EPROTO: the worker wrote a
 *              malformed reply (fn wrote over the worker's memory or its pipe): it is replaced.
 * -EINVAL (pool or fn NULL, in NULL with in_len > 0, a pool of another loop), -EPERM outside a
 * task. */
int simul_procpool_call(simul_procpool *pool, simul_proc_fn fn, const void *in, size_t in_len,
                        void **out, size_t *out_len, int *result);

/* A submitted call (concurrent.futures.Future of ProcessPoolExecutor.submit). It carries a
 * simul_future rather than being one: freeing a bare future tells nobody, so dropping it could
 * not cancel the call; freeing the job does. */
typedef struct simul_procpool_job simul_procpool_job;

/* Does not suspend; callable from a task or a callback of the pool's loop. Queues
 * fn(in, in_len, ...) exactly as simul_procpool_call does (same FIFO, same workers; `in` is
 * copied, so the caller's buffer is free at once) and returns 0 with *out, a job the caller
 * owns and frees with simul_procpool_job_free. Its future (simul_procpool_job_future) completes
 * with the status simul_procpool_call would return (0, -EOWNERDEAD, -EMSGSIZE, -ECANCELED when
 * the pool is closed, ...) and the job as value; simul_procpool_job_result gives the rest.
 * Cancelling the future (simul_future_cancel) cancels the call as a cancelled
 * simul_procpool_call: still queued, fn never runs; running, its worker is killed (SIGKILL) and
 * reaped by the pool. Returns -EINVAL (pool or fn or out NULL, in NULL with in_len > 0, a closed
 * pool or one of another loop), -EMSGSIZE (in_len above the request limit), -ENOMEM. */
int simul_procpool_submit(simul_procpool *pool, simul_proc_fn fn, const void *in, size_t in_len,
                          simul_procpool_job **out);

/* The job's future: await it, add done callbacks. Owned by the job (do not free it: it goes with
 * simul_procpool_job_free). */
simul_future *simul_procpool_job_future(simul_procpool_job *job);

/* Non-suspending: the outcome of a finished job. Returns its status (as simul_procpool_call:
 * 0 or a negative errno) with fn's return value (or the dead worker's status) in *result where
 * simul_procpool_call would give one; on 0 the reply: *out (malloc'd: the caller frees it; NULL
 * when empty) and *out_len. The reply moves to the first caller that asks for it (out non-NULL);
 * later calls get *out NULL. -EINPROGRESS while the job is pending; -EINVAL for NULL. A job
 * whose future was cancelled reports -ECANCELED, even if its reply arrived meanwhile. */
int simul_procpool_job_result(simul_procpool_job *job, void **out, size_t *out_len, int *result);

/* Frees a job at any time, with its future (tasks awaiting it get -ECANCELED), its input copy
 * and a reply nobody took. A pending job is cancelled first: queued, fn never runs; running,
 * its worker is killed (SIGKILL) and the pool reaps it (soon after, from the loop). Works after
 * simul_procpool_close. NULL is fine. */
void simul_procpool_job_free(simul_procpool_job *job);

/* Sets the largest request (in_len) and reply (*out_len) in bytes; 0 restores
 * SIMUL_PROCPOOL_MAX_MESSAGE. Applies to calls made afterwards. Returns 0 or -EINVAL. */
int simul_procpool_set_limits(simul_procpool *pool, size_t max_request, size_t max_reply);

/* ProcessPoolExecutor's max_tasks_per_child: a worker exits by itself once it has sent the reply
 * of this many calls (the pool reaps it) and a fresh one is started on demand; bounds what a
 * leaking fn can hold. 0 (the default): unlimited. Counts the calls workers already served;
 * applies from the next call each worker finishes. Returns 0, or -EINVAL (negative, pool NULL or
 * closed). */
int simul_procpool_set_max_calls(simul_procpool *pool, long max_calls_per_worker);

/* The maximum number of workers, and how many worker processes exist now (idle or busy). */
int simul_procpool_size(const simul_procpool *pool);
int simul_procpool_workers(const simul_procpool *pool);

/* Closes the pool (shutdown(cancel_futures=True) without waiting for running functions): calls
 * waiting for a worker and calls whose fn is running return -ECANCELED (pending jobs complete
 * with -ECANCELED, and stay the caller's to free); every worker is killed
 * (SIGKILL) and reaped, and every pipe closed, before this returns. Does not suspend (works
 * outside a task). The handle is invalid afterwards; the memory goes once the last call inside
 * has returned. Returns 0, or -EINVAL for NULL. */
int simul_procpool_close(simul_procpool *pool);

/* ---------------------------------------------------------------------------------------------
 * Files: blocking file calls off the loop, sendfile
 * ------------------------------------------------------------------------------------------- */
/* Blocking file calls run off the loop while the calling task waits (as aiofiles does for
 * asyncio). Today they run on a worker pool of their own (sized as the executor's, threads
 * started on demand and gone after 10 s idle; its own so that a FIFO open or a hung network
 * mount holding workers never starves simul_to_thread, nor the reverse); nothing here promises
 * threads, so an io_uring backend can take them over unchanged.
 *
 * Every function in this part suspends: call it from a task (-EPERM elsewhere). Thread-safety:
 * tasks of different loops, on different threads, may call any of them at the same time (they
 * share only the pool, which is locked); none may be called from a plain thread or a callback.
 * Calls on one fd from several tasks run concurrently, as the same syscalls from several threads
 * would: in no set order, and read/write share the fd's file offset (use pread/pwrite).
 *
 * Cancellation and deadlines: every call returns -ECANCELED / -ETIMEDOUT promptly, even while
 * its syscall is stuck in the kernel (opening a FIFO nobody writes, a dead NFS server). From
 * that moment the call never touches the caller's memory again: reads land in a buffer the
 * library owns and are copied out only on success, writes copy the data before they start, and
 * paths are copied. The syscall itself: if it had not started, it never runs; if it was running,
 * it runs to its end and what it made is released (an fd opened for a caller that gave up is
 * closed, data read is freed); if it had already finished, completion wins and the call returns
 * its result (the cancel shows at the next suspending call). So an interrupted write may have
 * written nothing, all of its data or, where write(2) would have stopped short (disk full), a
 * prefix; for simul_file_write the fd's offset moved by that much. After an interrupted write,
 * treat the content (and, for write, the offset) as unknown until rewritten.
 *
 * Errors are those of the syscall as negative errno (-ENOENT, -EACCES, -EISDIR, -EBADF, ...);
 * a negative fd is -EBADF and a NULL path or buffer -EINVAL without reaching the kernel. */
struct stat;

/* The most one read / write / pread / pwrite moves per call (a short count beyond it, as read(2)
 * may give): the library's buffer for it is allocated per call. The *_all helpers loop. */
#define SIMUL_FILE_IO_MAX (4u << 20)

/* Suspends. open(2) with O_CLOEXEC added. Returns the fd (a plain blocking fd: use it with
 * these calls, not with the loop's readiness calls) or a negative errno. If interrupted, an open
 * that completes later is closed on the worker: no fd leaks. Thread-safety: any task, any loop. */
int simul_file_open(const char *path, int flags, unsigned mode);

/* Suspends. Closes fd (forgetting any loop registration of its number first). The fd is closed
 * whatever the result, also on -ECANCELED / -ETIMEDOUT (on the worker, or here if no worker had
 * taken it yet): never close it again. Returns 0 or close(2)'s error (-EIO: data written earlier
 * was lost); -EBADF (fd < 0) and -EPERM are the only cases where nothing is closed.
 * Thread-safety: any task, any loop; no task may still use fd (its number is reused at once). */
int simul_file_close(int fd);

/* Suspends. read(2) of at most min(len, SIMUL_FILE_IO_MAX) bytes at the fd's offset. Returns the
 * count (0 at end of file) or a negative errno. On -ECANCELED / -ETIMEDOUT buf is untouched (a
 * late read goes to the library's buffer and is dropped, but it still moved the fd's offset).
 * Thread-safety: any task, any loop; tasks reading one fd share its offset (use pread). */
long simul_file_read(int fd, void *buf, size_t len);

/* Suspends. pread(2): as simul_file_read at `offset` (>= 0, else -EINVAL), the fd's offset
 * untouched. Thread-safety: any task, any loop; safe for several tasks sharing an fd. */
long simul_file_pread(int fd, void *buf, size_t len, int64_t offset);

/* Suspends. write(2) of at most min(len, SIMUL_FILE_IO_MAX) bytes, copied before the call starts
 * (buf is free again on return, whatever it returns). Returns the count written or a negative
 * errno. What an interrupted write may have done: see above. Thread-safety: any task, any loop;
 * concurrent writes to one fd land in no set order (with O_APPEND each lands whole at the end). */
long simul_file_write(int fd, const void *buf, size_t len);

/* Suspends. pwrite(2) at `offset` (>= 0), as simul_file_write. (On an fd opened with O_APPEND,
 * Linux appends, as pwrite(2) does.) Thread-safety: any task, any loop; concurrent pwrites to
 * overlapping ranges land in no set order. */
long simul_file_pwrite(int fd, const void *buf, size_t len, int64_t offset);

/* Suspends until all len bytes are written (SIMUL_FILE_IO_MAX per syscall). Returns len or a
 * negative errno; *written (may be NULL) always gets the bytes known written, also on error,
 * cancellation or timeout (a chunk interrupted in flight may add to them: see above).
 * Thread-safety: any task, any loop; not atomic: the chunks of two concurrent calls on one fd
 * may interleave. */
long simul_file_write_all(int fd, const void *buf, size_t len, size_t *written);
/* The same with pwrite from `offset` on. */
long simul_file_pwrite_all(int fd, const void *buf, size_t len, int64_t offset, size_t *written);

/* Suspends. fsync(2) / fdatasync(2). Returns 0 or a negative errno (-EIO: written data was
 * lost). An interrupted sync may still complete. Thread-safety: any task, any loop; it covers
 * what any thread wrote to the file before it began. */
int simul_file_fsync(int fd);
int simul_file_fdatasync(int fd);

/* Suspends. ftruncate(2) to `length` (>= 0). Returns 0 or a negative errno. Thread-safety: any
 * task, any loop. */
int simul_file_truncate(int fd, int64_t length);

/* Suspends. stat(2) / fstat(2) into *st (written only on success). Returns 0 or a negative
 * errno. Thread-safety: any task, any loop. */
int simul_file_stat(const char *path, struct stat *st);
int simul_file_fstat(int fd, struct stat *st);

/* Suspends. unlink(2) / rename(2). Return 0 or a negative errno; an interrupted one may still
 * take effect. Thread-safety: any task, any loop. */
int simul_file_unlink(const char *path);
int simul_file_rename(const char *from, const char *to);

/* Suspends. Reads the whole file at `path` (pathlib's read_bytes) in one trip to the pool: open,
 * read to end of file, close. Returns 0 with *data (malloc'd, the caller frees it with free();
 * a NUL byte follows the data, not counted, so text can be used as a string) and *len (may be
 * NULL); or -EMSGSIZE if the file holds more than `limit` bytes, or a negative errno (-ENOENT,
 * -EISDIR, ...), with *data NULL. Works for files whose size stat cannot tell (procfs).
 * Thread-safety: any task, any loop; a file another writer changes meanwhile may be read in a
 * state between its versions. */
int simul_file_read_bytes(const char *path, size_t limit, char **data, size_t *len);

/* Suspends. Writes data as the whole content of `path` (pathlib's write_bytes): created with
 * `mode` (umask applies, e.g. 0644) or truncated, written, closed, in one trip to the pool; the
 * data is copied first. Returns 0 or a negative errno (close's included). Not atomic: an error or
 * an interruption can leave the file truncated or partly written (write elsewhere and
 * simul_file_rename over it for an atomic replacement). Thread-safety: any task, any loop; two
 * concurrent calls on one path leave one's content or a mix. */
int simul_file_write_bytes(const char *path, const void *data, size_t len, unsigned mode);

/* sendfile (asyncio's loop.sock_sendfile / loop.sendfile, fallback=True by default): bytes from
 * a source fd to a socket or pipe. Zero-copy sendfile(2) where the kernel can; otherwise, as
 * asyncio's fallback, a copy that reads the source and sends what it read.
 * - file_fd, open for reading (else -EBADF):
 *   - a regular file (or block device): sendfile(2) from `offset`; the file's own offset is
 *     neither used nor moved. A file sendfile(2) refuses at once (EINVAL, ENOSYS, EOPNOTSUPP
 *     before any byte went: procfs, some FUSE file systems) is copied instead, read with
 *     simul_file_pread at the same offsets on the file pool.
 *   - a pipe, FIFO, socket or character device (/dev/zero, a tty): always copied, read as a byte
 *     stream from where it stands, so `offset` must be 0 (else -ESPIPE). Reading never blocks
 *     the loop and never changes the fd's flags: a socket is read with recv(MSG_DONTWAIT), a
 *     pipe or device with preadv2(RWF_NOWAIT) (non-blocking per call even on a blocking fd),
 *     parking on the fd's readability in between; where the kernel lacks that (a tty, older
 *     kernels) a blocking fd is read on the file pool instead (a read cut short there still
 *     takes what arrives next, and drops it, as simul_file_read says). An fd the copy waited on is
 *     left unregistered from the loop afterwards, as it was found. Another reader of the same
 *     source at the same time gets some of the bytes (neither sees all).
 *   - a directory: -EINVAL.
 * - count 0 means up to the end of the source (end of file, or a pipe / socket whose writers
 *   are gone; /dev/zero has none: give a count). If the source ends before `count` bytes, the
 *   call returns the shorter count sent (0 for an offset at or past the end): not an error.
 * - sendfile(2) reads the file's pages on the loop's thread: pages not in the page cache are
 *   read from disk with the loop waiting (as nginx without its aio threads).
 * - Never raises SIGPIPE: a peer that is gone is -EPIPE or -ECONNRESET.
 * - A long transfer to a fast reader lets other tasks run every few MiB.
 * - *sent (may be NULL) always gets the bytes the destination took, also on error, cancellation
 *   or timeout (as simul_sendall): the peer got exactly the first *sent bytes of the source
 *   (file[offset, offset + *sent)). A copy holds up to 256 KiB read from the source but not yet
 *   sent: when an error, cancellation or deadline stops it, those bytes are dropped. For a
 *   file that changes nothing (read them again from offset + *sent); a pipe or socket source has
 *   lost them: its next reader continues after them. A source read error (-EIO, a source
 *   socket's -ECONNRESET) is returned as is, with *sent as above. */

/* Suspends until count bytes of file_fd (from `offset`, >= 0) went to `sock`: a non-blocking
 * stream socket (or pipe write end) as the simul_socket / simul_accept / simul_tcp_connect fds
 * are. Returns the count sent; -EINVAL (a blocking destination, a datagram socket, a regular
 * file as destination, a directory as source, a negative offset); -ESPIPE (offset != 0 with a
 * pipe, socket or device source); -EBADF (an fd not open, or the source not open for reading);
 * the connection's error; a source's read error; -ENOMEM (the copy's buffer); -ECANCELED /
 * -ETIMEDOUT. Thread-safety: a task of the loop the socket is used with; one sending task per
 * socket at a time (bytes would interleave); a regular file may be shared by any number of
 * transfers at once (its offset is not used). */
long simul_sock_sendfile(int sock, int file_fd, int64_t offset, size_t count, size_t *sent);

/* Suspends. As simul_sock_sendfile on a stream's socket (or pipe): first waits until the
 * stream's queued writes are flushed, so the file follows them in order, then sends the file
 * (zero-copy or copied, as above). Writes that follow the call go after the file. Meanwhile the
 * sending side is the call's: another task's simul_stream_write / writev / write_eof / sendfile
 * on the stream gets -EBUSY (its bytes would land in the middle of the file's). Returns the
 * count sent; the stream's write error if it already failed (-EPIPE, ...), which a transfer
 * failing on the connection also makes sticky for later writes (a source's errors do not);
 * -ESHUTDOWN after write_eof; -EBUSY (another sendfile is in progress); -EBADF while the stream
 * closes; -ECANCELED if it is closed meanwhile; -ECANCELED / -ETIMEDOUT; the other errors of
 * simul_sock_sendfile. After an interruption the peer has a partial file (*sent bytes) in the
 * byte stream: a framed protocol must usually close the stream then.
 * Thread-safety: a task of the stream's loop; readers of the stream may run meanwhile. */
long simul_stream_sendfile(simul_stream *s, int file_fd, int64_t offset, size_t count,
                           size_t *sent);

/* Suspends. As simul_sock_sendfile / simul_stream_sendfile with asyncio's fallback=False:
 * sendfile(2) only, never a copy. A source it cannot read (a pipe, socket or device, or a file
 * sendfile(2) refuses before any byte went) is -EOPNOTSUPP (= ENOTSUP), with nothing
 * sent. */
long simul_sock_sendfile_nofallback(int sock, int file_fd, int64_t offset, size_t count,
                                    size_t *sent);
long simul_stream_sendfile_nofallback(simul_stream *s, int file_fd, int64_t offset,
                                      size_t count, size_t *sent);

/* ---------------------------------------------------------------------------------------------
 * Many cores: one loop per thread, a server on N threads (SO_REUSEPORT)
 * ------------------------------------------------------------------------------------------- */
/* A stream server on N threads: each thread runs its own loop (a loop belongs to the thread that
 * made it) with its own listening socket on the same host:port, bound with SO_REUSEPORT, so the
 * kernel spreads incoming connections over the threads by a hash of their addresses (not by
 * load: a thread may get more than its share). Each connection is served by `handler` as a task
 * on the loop of the thread that accepted it, exactly as simul_start_server would; connections
 * never move between threads. The threads share nothing but what the handler shares (`arg`):
 * anything it touches on other threads' behalf must be thread-safe (atomics, channels, mutexes).
 * The worker threads start with the asynchronous signals blocked, so SIGINT, SIGTERM, ... go to
 * the application's own threads; install no signal handlers on the worker loops. */
typedef struct simul_threaded_server simul_threaded_server;

#define SIMUL_THREADED_SERVER_MAX_THREADS 1024

typedef struct simul_threaded_server_opts {
    const char *host; /* NULL or "" = every interface (dual-stack), as simul_start_server */
    const char *port; /* NULL or "0" = a free port: thread 0 picks it, the others bind it too */
    int threads;      /* 1 .. SIMUL_THREADED_SERVER_MAX_THREADS; 0 = the CPUs the process may
                         run on (sched_getaffinity) */
    simul_stream_handler handler; /* required; runs on the accepting thread's loop */
    void *arg;                    /* given to handler and the hooks, from every thread */
    int backlog;                  /* each thread's listen backlog; 0 = 511 */
    size_t limit;                 /* each stream's readline/readuntil limit; 0 = the default */
    size_t stack_size;            /* the handler tasks' stack; 0 = the loop's default */
    /* Optional. Run on each worker thread, in its loop's first task (they may suspend):
     * thread_init before that thread listens (a negative return fails the start with that
     * error); thread_fini after its server closed and its connections ended (only if
     * thread_init succeeded or was NULL). `index` is 0 .. threads-1. */
    int (*thread_init)(int index, void *arg);
    void (*thread_fini)(int index, void *arg);
} simul_threaded_server_opts;

/* Starts opts->threads worker threads, each with its own loop listening on host:port, and blocks
 * the calling thread until every one listens or one failed (milliseconds for a numeric host; a
 * host name is resolved on the worker threads, and thread_init runs before listening, so those
 * can take longer). Called from a task it stalls that task's loop for that time. opts is read
 * during the call (host is copied). With port 0, thread 0 gets a free port and the others bind
 * the same one. Returns 0 and *out; -EINVAL (no handler, threads or backlog out of range); or
 * the error of the first thread that failed (-EADDRINUSE when the port is held by a socket
 * without SO_REUSEPORT, a SIMUL_EAI code, thread_init's error, -EAGAIN from pthread_create, ...):
 * then the threads already listening were stopped and joined, and nothing is left running.
 * Thread-safe: it needs no loop, so plain main() code may call it too. */
int simul_serve_threads(const simul_threaded_server_opts *opts, simul_threaded_server **out);

/* Thread-safe. The TCP port every thread listens on (the one picked for port 0); -EINVAL. */
int simul_threaded_server_port(const simul_threaded_server *ts);
/* Thread-safe. The number of worker threads; -EINVAL. */
int simul_threaded_server_threads(const simul_threaded_server *ts);
/* Thread-safe. How many connections thread `index` has handed to the handler so far (a relaxed
 * counter: exact once the threads have ended); -EINVAL for a bad index. */
int64_t simul_threaded_server_accepted(simul_threaded_server *ts, int index);
/* Thread-safe. The index of the calling worker thread (in a handler or a hook), or -1 on a
 * thread that is not a threaded server's worker. */
int simul_threaded_server_index(void);

/* Thread-safe (any thread, a task on any loop, a handler of the server itself; never blocks).
 * Asks every thread to stop: each closes its listening socket, cancels its connections' handler
 * tasks (their suspending calls return -ECANCELED; the streams are closed when the handlers
 * return, so clients see EOF or a reset), waits until they have ended, runs thread_fini, closes
 * its loop and ends. Handlers must return once cancelled, or their thread never ends. Returns 0
 * (also when already stopped) or -EINVAL. */
int simul_threaded_server_stop(simul_threaded_server *ts);

/* Blocks the calling thread until every worker thread has ended (after a stop from elsewhere:
 * a signal-watching thread, a handler) and joins them. For plain main() code without a loop.
 * Returns 0; -EDEADLK on one of the server's own threads or on a thread whose loop is running
 * (it would stall that loop: use simul_threaded_server_wait); -EINVAL. Several threads may
 * join at once. */
int simul_threaded_server_join(simul_threaded_server *ts);

/* Suspends until every worker thread has ended. Thread-safe: from a task on any loop but the
 * server's own (there it is -EDEADLK: the thread cannot end while one of its tasks waits);
 * the caller's loop keeps running meanwhile. Many tasks may wait at once. Returns 0;
 * -ECANCELED / -ETIMEDOUT; -EPERM outside a task; -EINVAL. It does not stop the server. */
int simul_threaded_server_wait(simul_threaded_server *ts);

/* Stops the server if it is running, blocks until its threads have ended (at once after
 * simul_threaded_server_wait or _join returned), joins them and frees it. Any thread but the
 * server's own may call it (there it is -EDEADLK and nothing is done), but no other call on ts may
 * be in progress or follow. NULL is fine. Returns 0 or -EDEADLK. */
int simul_threaded_server_free(simul_threaded_server *ts);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_H */
