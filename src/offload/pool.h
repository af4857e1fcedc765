/* pool.h — a private pool of detached worker threads that run jobs for suspended tasks (the
 * executor's and the resolver's, each with its own pool). A job changes hands under the pool's
 * one mutex, so exactly one side owns it at any moment. */
#ifndef SIMUL_IO_POOL_H
#define SIMUL_IO_POOL_H

#include "../core/internal.h"

typedef struct simul__pool simul__pool;
typedef struct simul__job simul__job;

struct simul__job {
    void (*work)(simul__job *j); /* on a worker, no lock held */
    void (*drop)(simul__job *j); /* on the worker after `work`, once its task gave up: frees j */
    /* private to pool.c */
    simul__job *next, *prev;
    simul__pool *pool;
    simul_loop *loop;
    simul__wait *w;
    int err; /* < 0: no worker could be started, `work` never ran */
    int late_rc; /* SIMUL__JOB_LATE: the interruption the finished work won over */
    bool queued, abandoned, finished, delivered;
};

struct simul__pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool inited;
    int (*default_max)(void); /* the size when none was set (computed once, lazily) */
    simul__job *head, *tail;
    int qlen, nthreads, nidle, max_threads;
    int inflight;         /* jobs submitted and not yet given back or dropped */
    unsigned long nposted; /* results posted to a loop (tests) */
    int64_t idle_ns;      /* an idle worker exits after this */
    simul__pool *all_next; /* every pool, for fork */
};

#define SIMUL__POOL_INIT(default_max_fn, idle)                                                     \
    { .mu = PTHREAD_MUTEX_INITIALIZER, .default_max = (default_max_fn), .idle_ns = (idle) }

/* What an interrupted simul__pool_run leaves in *fate. */
enum {
    SIMUL__JOB_NOT_RUN = 1, /* taken off the queue: `work` never runs; the job is the caller's */
    SIMUL__JOB_DROPPED = 2, /* `work` is running: the worker calls `drop` when it returns */
};
/* Left in *fate with a 0 return: the work had finished when the interruption came (completion
 * wins; j->late_rc holds the interruption for callers that prefer to report it). */
enum { SIMUL__JOB_LATE = 3 };

/* Suspends (the caller has checked for a task and for cancellation). Queues j and parks until a
 * worker ran j->work. Returns 0 (the job is the caller's again), j->err (no worker could be
 * started: nothing ran), or the interruption (-ECANCELED, -ETIMEDOUT, -ENOMEM) with *fate set.
 * If work had already finished when the interruption came, completion wins: 0. */
int simul__pool_run(simul__pool *p, simul__job *j, int *fate);

/* Thread-safe. Sets the maximum number of workers (n >= 1; 0 restores the default) and starts
 * workers for jobs already waiting; extra workers exit as they finish. */
int simul__pool_set_max(simul__pool *p, int n);
int simul__pool_get_max(simul__pool *p);

/* The CPUs this thread may run on (its affinity mask; else the CPUs online), at least 1. */
int simul__cpu_count(void);

/* asyncio's default pool size: min(32, cpus + 4). The +4 keeps a few threads for I/O-bound
 * functions on small machines; the cap keeps a big machine from starting hundreds. The
 * executor's pool and the file pool use it. */
int simul__pool_default_max(void);

/* Starts a thread with every signal blocked, so no handler of the application ever runs on a
 * library thread and process signals go to the application's own threads. attr may be NULL.
 * Returns 0 or a negative errno (nothing started). */
int simul__thread_start(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

/* Counters read together under the pool's lock (tests). */
void simul__pool_counts(simul__pool *p, int *threads, int *idle, int *inflight);
unsigned long simul__pool_posted(simul__pool *p);
/* Jobs waiting in the queue, not yet taken by a worker (tests). */
int simul__pool_queued(simul__pool *p);

/* Sets the idle time after which a worker exits (<= 0: `dflt`). Tests. */
void simul__pool_set_idle(simul__pool *p, int64_t ns, int64_t dflt);

#endif
