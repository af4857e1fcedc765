/* simul/sync.h — coordination between tasks: locks, events, conditions, semaphores, barriers, queues, thread channels.
 * Part of the simul API: include <simul.h> (the umbrella), or this header alone. */
#ifndef SIMUL_SYNC_H
#define SIMUL_SYNC_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

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

#if defined(__GNUC__)
/* `async with lock:` in C (gcc's and clang's cleanup attribute; see SIMUL_SCOPE_AUTO in
 * simul/task.h for the rules and limits): a simul_lock pointer declared with SIMUL_LOCK_AUTO is
 * released on every path out of its block if it is not NULL. Set it once the acquire succeeded:
 *     simul_lock *held SIMUL_LOCK_AUTO = NULL;
 *     if ((rc = simul_lock_acquire(lock)) < 0)
 *         return rc;
 *     held = lock;          // released at every return below
 * Set it back to NULL to keep the lock past the block. */
#define SIMUL_LOCK_AUTO __attribute__((cleanup(simul_lock_release_at_exit)))
/* What SIMUL_LOCK_AUTO runs: releases *held unless it is NULL. Never suspends. */
static inline void simul_lock_release_at_exit(simul_lock **held)
{
    if (*held)
        (void)simul_lock_release(*held);
}
#endif

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
 * -ECANCELED / -ETIMEDOUT (no unit taken); -EINVAL; -EPERM outside a task.
 * A unit handed over in the same loop pass as a cancel of the waiter is kept: the acquire
 * returns 0 (completion wins, so no unit is lost), where asyncio 3.11+ reports the cancel. For
 * asyncio's behaviour, give the unit back when a cancel is pending (outside a shield scope,
 * where an acquire is meant to succeed), which loses nothing either:
 *     if (rc == 0 && simul_task_cancel_requested(simul_task_current()))
 *         rc = simul_semaphore_release(s) == 0 ? -ECANCELED : rc;
 * (the same line with simul_lock_release serves simul_lock_acquire). */
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

#if defined(__GNUC__)
/* `async with sem:` in C, as SIMUL_LOCK_AUTO: a simul_semaphore pointer declared with
 * SIMUL_SEMAPHORE_AUTO gives its unit back on every path out of its block unless it is NULL. */
#define SIMUL_SEMAPHORE_AUTO __attribute__((cleanup(simul_semaphore_release_at_exit)))
/* What SIMUL_SEMAPHORE_AUTO runs: releases one unit of *held unless it is NULL. Never suspends. */
static inline void simul_semaphore_release_at_exit(simul_semaphore **held)
{
    if (*held)
        (void)simul_semaphore_release(*held);
}
#endif
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

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_SYNC_H */
