/* loop.h — struct simul_loop, private to src/core: only core files include this header (the build
 * checks it). Layers above see the loop through simul__loop_head and the hook functions of
 * internal.h, so no file outside core reads or writes these fields. */
#ifndef SIMUL_CORE_LOOP_H
#define SIMUL_CORE_LOOP_H

#include "internal.h"

typedef struct simul__ts_item {
    struct simul__ts_item *next;
    simul_callback fn;
    void *arg;
} simul__ts_item;

struct simul_loop {
    simul__loop_head head; /* first: simul__loop_head_of casts the loop to it */
    simul__coro coro; /* the loop's own context: the thread's stack */
    simul__runnable *ready_head, *ready_tail;
    size_t nready;
    int budget;       /* task runs left before the loop must poll I/O and timers */
    int budget_max;   /* this pass's budget: shrinks while runs are long (see loop.c) */
    int64_t pass_start; /* coarse clock at the pass's start */
    bool pass_cut;      /* the last pass ended on its time slice */
    simul__heap timers;
    simul__io_dispatch io_dispatch; /* set by the io layer with head.io */
    int io_count;     /* fds registered by the layers above (simul__loop_io_count) */
    simul__close_hook *close_hooks; /* newest first */
    int thread_waits; /* tasks parked on work another thread will finish (resolver, executor) */
    size_t handles;   /* open I/O handles (transports, servers, streams): close refuses while any */
    /* cross-thread callbacks */
    pthread_mutex_t ts_lock;
    simul__ts_item *ts_head, *ts_tail;
    atomic_bool ts_pending; /* a wake-up is on its way: the pass must poll */
    atomic_bool closing;
    /* tasks */
    simul__stack_cache *stacks;
    size_t stack_size;
    int task_mode;    /* SIMUL_TASK_STACKFUL or SIMUL_TASK_COMPACT: what MODE_DEFAULT means */
    simul__runstack *runstacks; /* compact tasks' shared run stacks, made on first use */
    simul_task *all;  /* every task record handed out (live, or done with a held handle) */
    simul_task *free_head, *free_tail;
    size_t nfree;
    size_t live;
    /* The trim (task.c): given-back records and idle stacks nobody needed for a whole period
     * give their memory back at its end. */
    size_t free_low;     /* low-water mark of nfree this period */
    int64_t trim_at;     /* when the period ends (monotonic ns) */
    int64_t trim_period;
    uint64_t trims;      /* periods ended */
    size_t recs_trimmed; /* records given back by the trim, in all */
    uint64_t next_id;
    /* callbacks */
    simul__cb **cb_chunks;
    uint32_t cb_nchunks, cb_used;
    simul__cb *cb_free;
    /* state */
    pthread_t thread;
    bool running, stopping;
    bool stop_when_no_tasks;
    bool stuck_warned; /* debug: the deadlock hint is given once */
    int64_t slow_ns;
    simul__coro dead;  /* where finished tasks leave their last context */
    void *altstack;
    struct simul__debug_watch *watch; /* debug: the watchdog thread (debug.c), NULL if none */
    struct simul__done_cb *done_pending; /* done callbacks scheduled, not run yet (task.c) */
};

#endif
