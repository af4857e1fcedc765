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
    uint8_t armed;
    uint8_t kind;  /* SIMUL__TIMER_TASK or SIMUL__TIMER_CB */
} simul__timer;

enum { SIMUL__TIMER_TASK = 1, SIMUL__TIMER_CB = 2 };

/* Entries are 16 bytes so that the four children of a node share one cache line. A disarmed
 * timer leaves its entry behind (no back-pointer to maintain on every move): an entry counts
 * only while its timer is armed with the same deadline, and stale ones are dropped when they
 * surface or when they outnumber the live ones. Timer memory is never returned while the loop
 * lives, so a stale entry always points at a valid record. */
typedef struct simul__heap_entry {
    int64_t deadline;
    simul__timer *timer;
} simul__heap_entry;

typedef struct simul__heap {
    simul__heap_entry *mem, *v; /* v = mem + 3: children of node i start at 4i+4-3 */
    uint32_t n, cap;
    uint32_t live;               /* armed timers */
    uint64_t seq;
} simul__heap;

int simul__heap_arm(simul__heap *h, simul__timer *t, int64_t deadline);
void simul__heap_disarm(simul__heap *h, simul__timer *t);
/* The earliest armed timer if it is due at `now`, disarmed; else NULL. */
simul__timer *simul__heap_pop_due(simul__heap *h, int64_t now);
/* The earliest armed deadline, SIMUL__INF if none. */
int64_t simul__heap_next(simul__heap *h);
void simul__heap_free(simul__heap *h);
/* Drops every stale entry: afterwards every entry's timer is armed. O(n). */
void simul__heap_compact(simul__heap *h);

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
    simul__stack stack;
    int64_t run_start;       /* debug: when it was last switched in */
    char name[32];
};

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

typedef struct simul__ts_item {
    struct simul__ts_item *next;
    simul_callback fn;
    void *arg;
} simul__ts_item;

/* ---- the loop ------------------------------------------------------------------------------- */

struct simul_loop {
    simul__coro coro; /* the loop's own context: the thread's stack */
    simul_task *current;
    simul__runnable *ready_head, *ready_tail;
    size_t nready;
    int budget;       /* task runs left before the loop must poll I/O and timers */
    int budget_max;   /* this pass's budget: shrinks while runs are long (see loop.c) */
    int64_t pass_start; /* coarse clock at the pass's start */
    bool pass_cut;      /* the last pass ended on its time slice */
    simul__heap timers;
    simul__backend *backend;
    int wake_fd;
    int io_count;     /* fds registered by users of the backend (not the wake-up eventfd) */
    struct simul__fdtab *fds; /* the I/O layer's per-fd records (src/io/fdwait.c) */
    int thread_waits; /* tasks parked on work another thread will finish (resolver, executor) */
    size_t handles;   /* open I/O handles (transports, servers, streams): close refuses while any */
    /* cross-thread callbacks */
    pthread_mutex_t ts_lock;
    simul__ts_item *ts_head, *ts_tail;
    atomic_bool ts_pending;
    atomic_bool closing;
    /* tasks */
    simul__stack_cache *stacks;
    size_t stack_size;
    simul_task *all;  /* every task record handed out (live, or done with a held handle) */
    simul_task *free_head, *free_tail;
    size_t nfree;
    size_t live;
    uint64_t next_id;
    /* callbacks */
    simul__cb **cb_chunks;
    uint32_t cb_nchunks, cb_used;
    simul__cb *cb_free;
    /* state */
    pthread_t thread;
    bool running, stopping;
    bool stop_when_no_tasks;
    bool debug;
    bool stuck_warned; /* debug: the deadlock hint is given once */
    int64_t slow_ns;
    simul__coro dead;  /* where finished tasks leave their last context */
    void *altstack;
};

extern __thread simul_loop *simul__loop_tls __attribute__((tls_model("initial-exec")));

static inline simul_loop *simul__loop(void)
{
    return simul__loop_tls;
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

/* src/io/fdwait.c: the loop hands it every backend event but its own wake-up, and frees the
 * fd records at close. */
void simul__io_event(simul_loop *loop, void *data, uint32_t events);
void simul__io_free(simul_loop *loop);
/* src/io/signal.c: removes the handlers a closing loop still has (restoring dispositions). */
void simul__signal_loop_close(simul_loop *loop);

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
    return loop ? loop->current : NULL;
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
bool simul__task_handle_ok(const simul_task *t);
void simul__task_release_handle(simul_task *t);
void simul__task_free_all(simul_loop *loop);
/* Returns surplus free task records to malloc after a burst (loop context). */
void simul__task_trim(simul_loop *loop);
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

#endif
