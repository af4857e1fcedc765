/* internal.h — private structures of the core shared across its files (names simul__*).
 * The one idea: every wait is a simul__wait record on the waiting task's stack that knows how
 * to unlink itself; completion, cancellation and deadlines all end a wait the same way. */
#ifndef SIMUL_CORE_INTERNAL_H
#define SIMUL_CORE_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../coro/coro.h"
#include "../coro/stack.h"
#include "../backend/backend.h"
#include "simul.h"

#define SIMUL__INF INT64_MAX
#define SIMUL__LIKELY(x) __builtin_expect(!!(x), 1)
#define SIMUL__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SIMUL__CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Always-on invariant check of the library itself: file, line and the running task's name. */
#define SIMUL__ASSERT(cond)                                                                        \
    do {                                                                                           \
        if (SIMUL__UNLIKELY(!(cond)))                                                              \
            simul__assert_fail(#cond, __FILE__, __LINE__);                                         \
    } while (0)
__attribute__((noreturn)) void simul__assert_fail(const char *what, const char *file, int line);

/* ---- timers (timer.c) -------------------------------------------------------------------- */

typedef struct simul__timer {
    int64_t deadline;
    uint64_t seq;  /* ties run in the order they were armed */
    /* Pairing-heap links (timer.c): first child, next sibling, and the previous sibling or,
     * for a first child, the parent. Meaningful only while armed. */
    struct simul__timer *child, *next, *prev;
    uint8_t armed;
    uint8_t kind;  /* SIMUL__TIMER_TASK or SIMUL__TIMER_CB */
} simul__timer;

enum { SIMUL__TIMER_TASK = 1, SIMUL__TIMER_CB = 2 };

/* Callback timers' entries (timer.c) are 16 bytes so that the four children of a node share one
 * cache line. A disarmed callback timer leaves its entry behind (no back-pointer to maintain on
 * every move): an entry counts only while its timer is armed with the same deadline, and stale
 * ones are dropped when they surface or when they outnumber the live ones. Callback records are
 * never returned while the loop lives, so a stale entry always points at a valid record. Task
 * timers are never in the array: they are linked into the pairing heap at `root` and unlinked
 * when disarmed, so a task record can be given back once its task is done. */
typedef struct simul__heap_entry {
    int64_t deadline;
    simul__timer *timer;
} simul__heap_entry;

typedef struct simul__heap {
    simul__heap_entry *mem, *v; /* v = mem + 3: children of node i start at 4i+4-3 */
    uint32_t n, cap;
    uint32_t arr_live;           /* armed callback timers */
    simul__timer *root;          /* task timers */
    uint32_t live;               /* armed timers, both kinds */
    uint64_t seq;
} simul__heap;

int simul__heap_arm(simul__heap *h, simul__timer *t, int64_t deadline);
void simul__heap_disarm(simul__heap *h, simul__timer *t);
/* The earliest armed timer if it is due at `now`, disarmed; else NULL. */
simul__timer *simul__heap_pop_due(simul__heap *h, int64_t now);
/* The earliest armed deadline, SIMUL__INF if none. */
int64_t simul__heap_next(simul__heap *h);
void simul__heap_free(simul__heap *h);

/* ---- the ready queue ------------------------------------------------------------------------ */

typedef struct simul__runnable {
    struct simul__runnable *next;
    uint8_t kind; /* SIMUL__RUN_TASK or SIMUL__RUN_CB */
} simul__runnable;

enum { SIMUL__RUN_TASK = 1, SIMUL__RUN_CB = 2 };

/* ---- waits ---------------------------------------------------------------------------------- */

typedef struct simul__wait simul__wait;
typedef struct simul__waitq {
    simul__wait *head, *tail;
} simul__waitq;

struct simul__wait {
    simul_task *task;
    simul__wait *next, *prev;        /* membership of `q`, if any */
    simul__waitq *q;
    void (*unlink)(simul__wait *w);  /* undoes the registration on cancel/timeout; may be NULL */
    void *ctx;                       /* the wait's own state */
    void *value;                     /* payload handed over at completion (futures, queues) */
    int aux;
    int result;
    /* What the task waits for, for the task dump (simul_loop_dump_tasks); 0 = see the call. */
    uint8_t kind;                    /* SIMUL__WAIT_* */
    int fd;                          /* SIMUL__WAIT_FD_*: the fd */
};

enum {
    SIMUL__WAIT_FD_READ = 1,  /* fd readable */
    SIMUL__WAIT_FD_WRITE,     /* fd writable */
    SIMUL__WAIT_TASK,         /* another task to finish: ctx is the simul__watch */
    SIMUL__WAIT_THREAD,       /* a job on a worker thread */
};

void simul__waitq_push(simul__waitq *q, simul__wait *w);
void simul__waitq_remove(simul__wait *w);
simul__wait *simul__waitq_pop(simul__waitq *q);
/* The unlink function for waits parked on a waitq. */
void simul__waitq_unlink(simul__wait *w);
/* Parks the running task `t` on q until a waker pops it (simul__waitq_wake_all, or
 * simul__waitq_pop + simul__wake). A cancellation point: -ECANCELED / -ETIMEDOUT without
 * parking when the task may not suspend; otherwise the wake-up's result. */
int simul__waitq_park(simul_task *t, simul__waitq *q);
/* Ends every wait parked on q, in FIFO order, with `result`. */
void simul__waitq_wake_all(simul__waitq *q, int result);

/* Something that wants to know when a task finishes (join, gather, wait, groups, ...). */
typedef struct simul__watch simul__watch;
struct simul__watch {
    simul__watch *next, *prev;
    simul_task *task;
    void (*notify)(simul__watch *w, simul_task *done);
    void *ctx;
};
void simul__watch_add(simul_task *t, simul__watch *w, void (*notify)(simul__watch *, simul_task *),
                      void *ctx);
void simul__watch_remove(simul__watch *w);

/* ---- tasks ---------------------------------------------------------------------------------- */

enum {
    SIMUL__TASK_READY = 1,
    SIMUL__TASK_RUNNING,
    SIMUL__TASK_PARKED,
    SIMUL__TASK_DONE,
};

#define SIMUL__TASK_MAGIC 0x5349544bu /* "SITK" */
#define SIMUL__TASK_DEAD 0x44454144u  /* "DEAD" */

/* scope flags */
enum { SIMUL__SCOPE_SHIELD = 1u, SIMUL__SCOPE_DEADLINE = 2u, SIMUL__SCOPE_EXPIRED = 4u };

struct simul_task {
    simul__runnable run;     /* ready-queue link: first, so a runnable is a task */
    uint32_t magic;
    uint8_t state;
    uint8_t cancel_requested;
    uint8_t shielded;        /* some shield scope is active */
    uint8_t handle_held;     /* the spawner's handle not yet joined or detached */
    uint8_t mark;            /* scratch for one call's bookkeeping (gather's duplicate check) */
    uint8_t shutdown_cancel; /* ended -ECANCELED while simul_run's teardown cancelled leftovers */
    uint8_t started;         /* its function has begun (its stack can be walked) */
    uint8_t scope_flags;     /* the innermost scope's kind, kept here: a scope left open lives
                                in a frame that is dead (and overwritten) once fn returns */
    uint8_t compact;         /* runs on a shared run stack (coro.shared): see SIMUL__REC */
    uint8_t expire_pending;  /* the deadline timer fired: mark the scopes once it runs again
                                (they live on its stack, which may be evicted meanwhile) */
    uint16_t nscopes;        /* scopes begun and not ended */
    const char *call;        /* the last suspending public call it made (simul__task_require) */
    int64_t park_since;      /* coarse clock when it last suspended */
    struct simul__dump_req *dump; /* set while the task dump borrows its stack for a backtrace */
    struct simul__done_cb *done_cbs; /* simul_task_add_done_callback, in registration order */
    simul__coro coro;
    simul_task_fn fn;
    void *arg;
    int result;
    simul__wait *wait;       /* the wait the task is parked in */
    int64_t wake_at;         /* natural end of the current wait (sleep); SIMUL__INF if none */
    int64_t deadline;        /* effective deadline of the scopes up to the innermost shield */
    simul__timer timer;      /* armed at min(wake_at, deadline) while parked */
    simul_scope *scope;      /* innermost scope */
    simul__watch *watchers;  /* told when the task finishes */
    simul_task *all_next, *all_prev; /* every record the loop has handed out */
    simul_group *group;      /* the group the task is a child of */
    simul_task *sib_next, *sib_prev;
    simul_group *groups;     /* groups this task owns */
    simul_task *free_next;
    simul_loop *loop;
    uint64_t id;
    int64_t run_start;       /* debug: when it was last switched in */
    /* Compact: the side area for its runtime records (SIMUL__REC): the next free byte, the end
     * of the current chunk, and that chunk (NULL: the inline bytes after the record). */
    char *rec_top, *rec_end;
    struct simul__rec_chunk *rec_chunk;
    char name[32];
};

/* ---- runtime records of a suspended task ------------------------------------------------ */

/* A record that others reach while its task is suspended (a wait linked into a queue, a watch on
 * another task, a wait's ctx a waker or a worker thread reads) must keep its address. A
 * stackful task's stack does; a compact task's frames move to a heap copy whenever another
 * compact task runs, so its records come from its own side area instead:
 *
 *     SIMUL__REC(simul__wait, w, t);    // simul__wait *w: in this frame, or in t's side area
 *     if (!w) return -ENOMEM;           // t the running task (or NULL: in the frame)
 *
 * and are given back when the enclosing block is left (every return included). The side area is
 * a stack: the records of one task are taken and given back in LIFO order, because they belong
 * to nested blocks of the one call chain the task runs. So it is a bump pointer into the inline
 * bytes at the tail of the compact record (enough for the waits an idle task sits in), then into
 * overflow chunks taken from malloc when a task nests deeper, kept until it finishes: a steady
 * state wait does no malloc, and no record moves once taken (chunks are never reallocated). */
typedef struct simul__rec_chunk {
    struct simul__rec_chunk *prev, *next; /* the chunk below (NULL: the inline bytes), above */
    size_t cap;                           /* bytes after this header */
    char *below_top; /* the top of the area below when the side area moved up into this one */
} simul__rec_chunk;

/* Inline bytes of a compact record: a sleep's wait (72), a stream read's bottom waiter and fd
 * wait (16 + 72). A join (40 + 72) or anything deeper uses a chunk. */
#define SIMUL__REC_INLINE 88u
/* What follows the simul_task in a compact record. */
typedef struct simul__rec_tail {
    simul__rec_chunk *first; /* the first overflow chunk, kept for reuse; NULL if none yet */
    char mem[SIMUL__REC_INLINE];
} simul__rec_tail;

static inline simul__rec_tail *simul__rec_tail_of(simul_task *t)
{
    return (simul__rec_tail *)(void *)(t + 1);
}

/* Two words, as the frame-only version of the past: a stackful task's waits pay nothing more. */
typedef struct simul__rec_h {
    void *p;
    simul_task *t; /* whose side area p is in; NULL: p is in the frame (or NULL) */
} simul__rec_h;

/* The slow path of a take: moves t's side area up a chunk (malloc'd the first time). NULL, and
 * nothing changed, when out of memory. */
void *simul__rec_grow(simul_task *t, size_t n);
/* Gives back the record at the base of t's current chunk: down to the area below. */
void simul__rec_shrink(simul_task *t);
/* Gives back a finished (or released) compact task's overflow chunks. */
void simul__rec_free(simul_task *t);

static inline simul__rec_h simul__rec_take(simul_task *t, void *local, size_t size)
{
    simul__rec_h h = {local, NULL};
    if (SIMUL__UNLIKELY(t && t->compact)) {
        size_t n = (size + 7) & ~(size_t)7;
        char *top = t->rec_top;
        if (SIMUL__LIKELY((size_t)(t->rec_end - top) >= n)) {
            t->rec_top = top + n;
            h.p = top;
        } else {
            h.p = simul__rec_grow(t, n);
        }
        if (h.p) {
            h.t = t;
#ifdef SIMUL_ASAN
            __asan_unpoison_memory_region(h.p, n);
#endif
        }
    }
    return h;
}

static inline void simul__rec_drop(simul__rec_h *h)
{
    simul_task *t = h->t;
    if (SIMUL__UNLIKELY(t != NULL)) {
        char *p = h->p;
        /* Not given back yet, and the newest but for the ones above it, which LIFO order
         * (nested blocks of one call chain) has given back already. */
        SIMUL__ASSERT(p < t->rec_top);
#ifdef SIMUL_ASAN
        /* Poisoned while free: a record used after its wait ended is reported, as it was when
         * it came from malloc. */
        __asan_poison_memory_region(p, (size_t)(t->rec_top - p));
#endif
        if (SIMUL__UNLIKELY(t->rec_chunk && p == (char *)(t->rec_chunk + 1)))
            simul__rec_shrink(t); /* the record that moved the area up a chunk */
        else
            t->rec_top = p;
    }
}

#define SIMUL__REC(type, name, task)                                                               \
    _Static_assert(_Alignof(type) <= 8, "SIMUL__REC: side area records are 8-aligned");          \
    type name##_frame_;                                                                            \
    __attribute__((cleanup(simul__rec_drop))) simul__rec_h name##_h_ =                             \
        simul__rec_take((task), &name##_frame_, sizeof(type));                                     \
    type *name = name##_h_.p

/* Whether p lies on t's run stack (t compact): memory that moves while t is suspended. */
static inline bool simul__on_run_stack(const simul_task *t, const void *p)
{
    return t && t->compact && (const char *)p >= t->coro.shared->lo &&
           (const char *)p < t->coro.shared->hi;
}

/* Debug mode: `p` points into the live frames of a compact task (the running one's, on its run
 * stack) and is being handed to `what` of the call `call`, which keeps it past a suspension: the
 * documented hazard. Reports it on stderr once per call site; returns true if it did. */
bool simul__debug_stack_ptr(const void *p, const char *call, const char *what);

/* ---- callbacks (call_soon / call_later) ----------------------------------------------------- */

typedef struct simul__cb {
    simul__runnable run;
    simul__timer timer;
    simul_callback fn;
    void *arg;
    uint32_t slot, gen;
    uint8_t state;
    struct simul__cb *free_next;
} simul__cb;

enum { SIMUL__CB_FREE = 0, SIMUL__CB_READY, SIMUL__CB_TIMED, SIMUL__CB_CANCELLED };

#define SIMUL__CB_CHUNK 4096u

/* ---- the loop: what the layers above may see ---------------------------------------------- */

/* struct simul_loop is private to src/core (loop.h). Its first member is this head: the few
 * fields that layers above read on hot paths, through the inline accessors below. Only core
 * writes them (the io layer sets `io` through simul__loop_set_io). */
typedef struct simul__loop_head {
    simul_task *current;     /* the running task; NULL in the loop's own context */
    simul__backend *backend; /* what the io layer registers fds with */
    void *io;                /* the io layer's state (its fd table), NULL until it makes one */
    bool debug;
} simul__loop_head;

static inline simul__loop_head *simul__loop_head_of(simul_loop *loop)
{
    return (simul__loop_head *)(void *)loop;
}
static inline simul__backend *simul__loop_backend(simul_loop *loop)
{
    return simul__loop_head_of(loop)->backend;
}
static inline void *simul__loop_io(simul_loop *loop)
{
    return simul__loop_head_of(loop)->io;
}
static inline bool simul__loop_debug(simul_loop *loop)
{
    return simul__loop_head_of(loop)->debug;
}

/* ---- the loop's hooks: how the layers above plug in without core calling them by name ----- */

/* I/O dispatch: every backend event (the backend keeps its wake-ups) goes to `fn`, with the
 * event's registration data. `io` is the dispatcher's state, read back with simul__loop_io. NULL
 * fn: events are dropped. */
typedef void (*simul__io_dispatch)(simul_loop *loop, void *data, uint32_t events);
void simul__loop_set_io(simul_loop *loop, simul__io_dispatch fn, void *io);
/* Fds registered with the backend for the layers above: while any are, every pass polls (a pass
 * with ready work and none skips the syscall), and the debug deadlock hint stays quiet. */
void simul__loop_io_count(simul_loop *loop, int delta);

/* Close hooks: simul_loop_close, once it has decided to close (no task, no handle), runs them
 * newest first, so a layer's state goes before the state it was built on. The record lives in
 * the registrant's memory (no allocation, no failure); a hook is taken off the list before it
 * runs, so it may free its record. */
typedef struct simul__close_hook {
    struct simul__close_hook *next;
    void (*fn)(simul_loop *loop, void *arg);
    void *arg;
} simul__close_hook;
void simul__loop_close_hook_add(simul_loop *loop, simul__close_hook *h);
/* Takes h off the list; nothing if it is not there (already run, or never added). */
void simul__loop_close_hook_remove(simul_loop *loop, simul__close_hook *h);

/* Handles (servers, streams, transports, processes, pools): simul_loop_close is -EBUSY while any
 * is held. */
void simul__loop_handle_ref(simul_loop *loop);
void simul__loop_handle_unref(simul_loop *loop);

/* A task parks on work another thread (or a signal) will finish: between begin and end the loop
 * is not stuck even with no I/O and no timer (the debug deadlock hint stays quiet). */
void simul__loop_thread_wait_begin(simul_loop *loop);
void simul__loop_thread_wait_end(simul_loop *loop);

/* Makes the loop poll soon: wakes a blocked poll, and a busy loop's next pass polls instead of
 * skipping the syscall. Any thread; async-signal-safe (the signal layer calls it from its C
 * handler). */
void simul__loop_wake(simul_loop *loop);

/* For simul_run: whether the loop is inside simul_loop_run*, how many tasks are alive, run until
 * none is, and forget the handles nobody closed (debug mode names them). */
bool simul__loop_running(simul_loop *loop);
size_t simul__loop_live_tasks(simul_loop *loop);
void simul__loop_run_until_no_tasks(simul_loop *loop);
void simul__loop_drop_handles(simul_loop *loop);

extern __thread simul_loop *simul__loop_tls __attribute__((tls_model("initial-exec")));

static inline simul_loop *simul__loop(void)
{
    return simul__loop_tls;
}

static inline void simul__debug_check_ptr(const void *p, const char *call, const char *what)
{
    simul_loop *loop = simul__loop();
    if (SIMUL__UNLIKELY(loop && simul__loop_head_of(loop)->debug))
        simul__debug_stack_ptr(p, call, what);
}

int64_t simul__clock_ns(void);
/* now + seconds as an absolute deadline; SIMUL__INF when out of range (INFINITY); -1 for a
 * negative or NaN time. */
int64_t simul__deadline_after(double seconds);

/* loop.c */
void simul__ready_push(simul_loop *loop, simul__runnable *r);
/* Chooses where a leaving task hands the CPU: the next ready task (made current) while the
 * pass budget lasts, else the loop's own context. Runs the debug slow-task check on `cur`. */
simul__coro *simul__next_context(simul_loop *loop, simul_task *cur);
/* Leaves the running task (already parked or re-queued) for the next ready task or the loop. */
void simul__switch_out(simul_loop *loop, simul_task *cur);
/* Internal call_soon that cannot fail for lack of a handle table slot: returns 0 or -ENOMEM. */
int simul__call_soon(simul_loop *loop, simul_callback cb, void *arg, simul_handle *out);
void simul__cb_fire(simul_loop *loop, simul__cb *cb);

/* task.c */
int simul__task_spawn_in(simul_loop *loop, simul_task **out, simul_task_fn fn, void *arg,
                         const simul_task_opts *opts);
void simul__task_cancel_internal(simul_task *t);
/* Parks the running task until `t` is done (0 at once if it is). No cancellation check. */
int simul__task_wait_done(simul_task *t);
void simul__task_timer_fire(simul_loop *loop, simul_task *t);
/* The running task or NULL, and -EPERM if none (for suspending calls). */
static inline simul_task *simul__task_self(void)
{
    simul_loop *loop = simul__loop();
    return loop ? simul__loop_head_of(loop)->current : NULL;
}
/* The running task for a call that needs one; NULL (and, in debug mode, a message naming
 * `call`) outside a task. */
simul_task *simul__task_require(const char *call);
/* -ECANCELED / -ETIMEDOUT if the task must not suspend now, else 0. */
int simul__task_check(simul_task *t);
/* Parks the running task in `w` until woken; `wake_at` is the wait's own end (for sleeps),
 * SIMUL__INF if none. Returns the wake-up result. Call simul__task_check first. */
int simul__park(simul__wait *w, int64_t wake_at);
/* Ends a wait: the task becomes ready and its park returns `result`. The caller has already
 * removed `w` from whatever list it was on. */
void simul__wake(simul__wait *w, int result);
/* Ends the wait `t` is parked in, whatever it is parked on, as a cancellation or a deadline
 * does: the wait is unlinked and t's park returns `result`. False if t is not parked. (A stream
 * closing under a task parked inside a bottom it does not own uses this.) */
bool simul__task_interrupt(simul_task *t, int result);
bool simul__task_handle_ok(const simul_task *t);
/* simul__task_handle_ok, and in debug mode a message naming `call` when it is not. */
bool simul__task_handle_usable(const simul_task *t, const char *call);
void simul__task_release_handle(simul_task *t);
void simul__task_free_all(simul_loop *loop);
/* Forgets the compact run stacks (their memory goes with the stack cache). */
void simul__task_free_runstacks(simul_loop *loop);
/* Frees the done callbacks scheduled but never run (the loop closes: asyncio drops them too). */
void simul__task_drop_done_callbacks(simul_loop *loop);
/* The trim, once per loop pass (loop context): tracks what the given-back records and idle
 * stacks are needed for, and at the end of each period (1 s) gives back those no task needed
 * during all of it. See docs/design/runtime.md, "Giving memory back". */
void simul__task_trim(simul_loop *loop);
/* The same when the loop is about to block in poll for `timeout` ns (-1: no limit): runs a
 * period that is over, and returns the timeout shortened to the next period's end while
 * something is left to give back, so an idle loop still gives a burst's memory back. */
int64_t simul__task_trim_idle(simul_loop *loop, int64_t timeout);
/* Tests: the trim period (ns, > 0; the next period ends that long from now), and the trim's
 * record so far. */
void simul__loop_set_trim_period(simul_loop *loop, int64_t ns);
typedef struct simul__trim_stats {
    uint64_t periods;       /* periods ended */
    size_t free_records;    /* given-back task records held for reuse now */
    size_t records_trimmed; /* records the trim gave back (stack to the pool, or to malloc) */
    simul__stack_stats stacks;
} simul__trim_stats;
void simul__loop_trim_stats(simul_loop *loop, simul__trim_stats *out);
/* Recomputes the effective deadline and shield of a task from its scope chain. */
void simul__task_rescope(simul_task *t);
/* Marks the scopes whose deadline passed at `now` as expired (they report it at their end). */
void simul__task_mark_expired(simul_task *t, int64_t now);

/* group.c */
void simul__group_child_done(simul_task *child);
void simul__group_reap_owned(simul_task *owner);

/* debug.c */
void simul__debug_slow(simul_loop *loop, simul_task *t, int64_t ran_ns);
void simul__debug_failed_unjoined(simul_task *t, const char *why);
void simul__debug_survivors(simul_loop *loop);
void simul__debug_outside_task(simul_loop *loop, const char *call);
void simul__debug_stuck(simul_loop *loop);
bool simul__debug_env(void);
/* A task handle that join, detach, gather, wait_for or run_until_complete refused: names `call`
 * and why (already given back, or not a task). */
void simul__debug_bad_handle(const char *call, const simul_task *t);
/* The task returned with scopes still open (they lived in its returned frame). */
void simul__debug_scopes_left_open(simul_task *t);
/* The watchdog: a thread that reports a task still running without suspending past the
 * slow-task threshold, while it runs (the hog's own report comes only when it suspends). */
void simul__debug_watch_start(simul_loop *loop);
void simul__debug_watch_in(simul_loop *loop, simul_task *t);
void simul__debug_watch_out(simul_loop *loop);
void simul__debug_watch_stop(simul_loop *loop);
/* Called by a task resumed only so the dump can walk its stack: records its backtrace and goes
 * back to the dumper (loop.c calls it after every switch back into a task). */
void simul__debug_dump_resume(simul_task *t);

#endif
