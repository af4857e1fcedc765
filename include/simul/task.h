/* simul/task.h — tasks, cancellation, deadlines, gather/wait, task groups and futures.
 * Part of the simul API: include <simul.h> (the umbrella), or this header alone. */
#ifndef SIMUL_TASK_H
#define SIMUL_TASK_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * Tasks
 * ------------------------------------------------------------------------------------------- */

/* How a task keeps its stack (simul_task_opts.mode, simul_loop_set_task_mode).
 * STACKFUL: a stack of its own (guarded mapping, default 64 KiB): a switch moves no memory, and
 *   pointers into the stack stay valid while the task is suspended. An idle task pins at least
 *   the page its stack top lives on.
 * COMPACT: the task runs on the loop's shared run stack; when it is evicted from it (another
 *   compact task runs) the part of its stack in use is copied to a right-sized heap buffer and
 *   copied back when it runs again. An idle task costs its record and its live frames (under
 *   1 KiB for a sleeper); a switch between compact tasks copies both stacks' in-use bytes. The
 *   hazard: an address on a compact task's stack is only valid while that task runs — never
 *   hand one to another task, a thread, or a runtime call that outlives the suspension (debug
 *   mode names the call that does it for spawn arguments, futures, queues and to_thread).
 *   x86-64 only: elsewhere COMPACT runs stackful.
 * DEFAULT: the loop's mode (STACKFUL unless simul_loop_set_task_mode or SIMUL_TASKS=compact in
 *   the environment when the loop was made). docs/design/runtime.md has the measured trade-off. */
enum { SIMUL_TASK_MODE_DEFAULT = 0, SIMUL_TASK_STACKFUL = 1, SIMUL_TASK_COMPACT = 2 };

typedef struct simul_task_opts {
    const char *name;  /* copied (at most 31 bytes kept); NULL gives "task-<id>" */
    size_t stack_size; /* 0 = the loop's default; for a compact task, the least run stack size */
    int mode;          /* SIMUL_TASK_MODE_DEFAULT (0), SIMUL_TASK_STACKFUL or SIMUL_TASK_COMPACT */
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
const char *simul_task_get_name(const simul_task *t);
/* Renames a task (copies at most 31 bytes). Returns 0 or -EINVAL. */
int simul_task_set_name(simul_task *t, const char *name);
/* A small integer unique among the loop's tasks for its lifetime. */
uint64_t simul_task_id(const simul_task *t);

/* A task's done callback: its result (>= 0, or a negative errno; -ECANCELED if it was cancelled)
 * and the arg given at registration. Runs on the loop, not in a task: it must not suspend. */
typedef void (*simul_task_done_cb)(int result, void *arg);

/* Calls cb(result, arg) once `t` has finished, soon after, from the loop (asyncio's
 * Task.add_done_callback, which schedules with call_soon): in registration order, whether or
 * not the handle is joined, detached or gathered meanwhile; at once (soon) if `t` has finished
 * already. `t` is a handle still held, or a task still running (simul_task_current() in a
 * detached task). The callback does not keep `t` alive: it gets the result, not the handle.
 * Never suspends. Returns 0; -EINVAL (no such task, or another loop's); -ENOMEM. */
int simul_task_add_done_callback(simul_task *t, simul_task_done_cb cb, void *arg);
/* Removes every registration of (cb, arg) not yet run (asyncio's remove_done_callback).
 * Returns how many were removed, or -EINVAL. */
int simul_task_remove_done_callback(simul_task *t, simul_task_done_cb cb, void *arg);

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

#if defined(__GNUC__)
/* The closest C has to `async with`: a scope declared with SIMUL_SCOPE_AUTO (and initialised
 * with SIMUL_SCOPE_INIT) is ended by the compiler on every path out of its block: return, break,
 * goto out, the end of the block (gcc's and clang's cleanup attribute). Nested ones end in
 * reverse order, as they must. Limits: nothing runs on longjmp or exit(); a scope ended by hand
 * (to read simul_scope_end's "expired") is not ended twice; the variable must stay in the block
 * that began the scope. Example:
 *     simul_scope s SIMUL_SCOPE_AUTO = SIMUL_SCOPE_INIT;
 *     if ((rc = simul_scope_timeout(&s, 1.5)) < 0)
 *         return rc;
 *     return fetch(...);   // the scope ends here, whatever fetch returns */
#define SIMUL_SCOPE_AUTO __attribute__((cleanup(simul_scope_end_at_exit)))
#define SIMUL_SCOPE_INIT {0}
/* What SIMUL_SCOPE_AUTO runs: ends `s` if it was begun and not ended yet. Never suspends. */
static inline void simul_scope_end_at_exit(simul_scope *s)
{
    if (s->task_)
        (void)simul_scope_end(s);
}
#endif

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

/* Whether the future is done: completed, failed or cancelled (asyncio's Future.done()).
 * false for NULL. Never suspends. */
bool simul_future_done(const simul_future *f);

/* Non-suspending: the result of a done future. Returns 0, or -EAGAIN while pending. */
int simul_future_result(const simul_future *f, int *result, void **value);

/* Adds a callback run (from the loop, soon) once the future is done; if it is done already the
 * callback is scheduled at once. Callbacks run in the order added. Returns 0 or -ENOMEM. */
int simul_future_add_done_callback(simul_future *f, simul_future_cb cb, void *arg);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_TASK_H */
