/* pool.c — detached worker threads for jobs whose tasks wait on them (see pool.h). The hand-over
 * protocol: the pool mutex orders queueing, running, abandoning and posting the result, and a
 * worker touches a loop only while the job's task is parked on it, so it keeps the loop alive. */
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include "pool.h"

enum { GONE = SIMUL__JOB_DROPPED, LATE = SIMUL__JOB_LATE }; /* an abandoning unlink's w->aux */

static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
static simul__pool *all_pools;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* ---- the queue (mutex held) ------------------------------------------------------------------ */

static void q_push(simul__pool *p, simul__job *j)
{
    j->next = NULL;
    j->prev = p->tail;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    j->queued = true;
    p->qlen++;
}

static void q_remove(simul__pool *p, simul__job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        p->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        p->tail = j->prev;
    j->next = j->prev = NULL;
    j->queued = false;
    p->qlen--;
}

/* ---- completion ------------------------------------------------------------------------------ */

static void deliver(void *arg)
{
    simul__job *j = arg;
    /* The worker posted this holding the mutex: once we get it, its call_soon_threadsafe has
     * returned, so the loop may be closed from here on without the worker still inside it. */
    pthread_mutex_lock(&j->pool->mu);
    pthread_mutex_unlock(&j->pool->mu);
    j->delivered = true;
    simul__wait *w = j->w;
    if (w) {
        j->w = NULL;
        simul__wake(w, 0);
    }
}

/* j's work is over (or failed to start). Called and returns with the mutex held. */
static void complete_locked(simul__pool *p, simul__job *j)
{
    for (;;) {
        if (j->abandoned) {
            /* Nobody waits: the job is ours. `drop` may run user code: not under the mutex. */
            p->inflight--;
            pthread_mutex_unlock(&p->mu);
            j->drop(j);
            pthread_mutex_lock(&p->mu);
            return;
        }
        /* Not abandoned: the task is parked on j->loop, so that loop cannot close while we hold
         * the mutex, which the task's unlink needs. */
        int rc = simul_loop_call_soon_threadsafe(j->loop, deliver, j);
        if (rc == 0) {
            j->finished = true;
            p->nposted++;
            return;
        }
        SIMUL__ASSERT(rc == -ENOMEM);
        /* Let go so the task can still give up meanwhile; retry shortly. */
        pthread_mutex_unlock(&p->mu);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
        pthread_mutex_lock(&p->mu);
    }
}

/* ---- workers --------------------------------------------------------------------------------- */

static struct timespec deadline_after(struct timespec from, int64_t ns)
{
    int64_t n = (int64_t)from.tv_nsec + ns % 1000000000;
    from.tv_sec += (time_t)(ns / 1000000000 + n / 1000000000);
    from.tv_nsec = (long)(n % 1000000000);
    return from;
}

static void *worker(void *arg)
{
    simul__pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct timespec idle_from;
        clock_gettime(CLOCK_MONOTONIC, &idle_from);
        while (!p->head || p->nthreads > p->max_threads) {
            if (p->nthreads > p->max_threads) /* the pool was made smaller */
                goto out;
            /* From idle_ns as it is now: a new setting applies to workers already idle. */
            struct timespec until = deadline_after(idle_from, p->idle_ns);
            p->nidle++;
            int rc = pthread_cond_timedwait(&p->cv, &p->mu, &until);
            p->nidle--;
            if (rc == ETIMEDOUT && !p->head)
                goto out;
        }
        simul__job *j = p->head;
        q_remove(p, j);
        pthread_mutex_unlock(&p->mu);
        j->work(j);
        pthread_mutex_lock(&p->mu);
        complete_locked(p, j);
    }
out:
    p->nthreads--;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int simul__cpu_count(void)
{
    cpu_set_t set;
    long n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < INT_MAX ? (int)n : 1;
}

int simul__pool_default_max(void)
{
    int n = simul__cpu_count();
    return n + 4 < 32 ? n + 4 : 32;
}

int simul__thread_start(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    /* The new thread inherits the creator's mask: block everything around the create. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(th, attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

static int start_thread(simul__pool *p)
{
    pthread_attr_t a;
    pthread_t th;
    if (pthread_attr_init(&a))
        return -ENOMEM;
    /* Detached: a worker stuck in user code at exit is simply dropped with the process. */
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = simul__thread_start(&th, &a, worker, p);
    pthread_attr_destroy(&a);
    return rc;
}

/* Starts n workers already counted in nthreads. Called without the mutex. */
static void start_threads(simul__pool *p, int n)
{
    for (int i = 0; i < n; i++) {
        int rc = start_thread(p);
        if (rc == 0)
            continue;
        pthread_mutex_lock(&p->mu);
        p->nthreads -= n - i;
        if (p->nthreads == 0) {
            /* No worker will ever take the queue: fail what is in it through the normal delivery
             * (the submitting task parks right after this and is woken like any other). */
            simul__job *j;
            while ((j = p->head)) {
                q_remove(p, j);
                j->err = rc;
                complete_locked(p, j);
            }
        }
        pthread_mutex_unlock(&p->mu);
        return;
    }
}

/* How many more workers the queue needs now. Mutex held; counts them as started. */
static int want_threads_locked(simul__pool *p)
{
    int need = p->qlen - p->nidle, room = p->max_threads - p->nthreads;
    int n = need < room ? need : room;
    if (n < 0)
        n = 0;
    p->nthreads += n;
    return n;
}

/* ---- fork and initialisation ----------------------------------------------------------------- */

static void init_cv(simul__pool *p)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* idle timeouts immune to clock changes */
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
}

static void at_fork_prepare(void)
{
    pthread_mutex_lock(&all_mu);
    for (simul__pool *p = all_pools; p; p = p->all_next)
        pthread_mutex_lock(&p->mu);
}

static void at_fork_parent(void)
{
    for (simul__pool *p = all_pools; p; p = p->all_next)
        pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&all_mu);
}

/* Only the forking thread exists in the child: forget the workers and the queued jobs (they
 * belong to the parent's tasks). */
static void at_fork_child(void)
{
    for (simul__pool *p = all_pools; p; p = p->all_next) {
        p->head = p->tail = NULL;
        p->qlen = p->nthreads = p->nidle = p->inflight = 0;
        init_cv(p);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&all_mu);
}

static void fork_init(void)
{
    pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child);
}

/* Returns with the mutex held and the pool ready. */
static void lock_ready(simul__pool *p)
{
    pthread_once(&fork_once, fork_init);
    pthread_mutex_lock(&p->mu);
    if (p->inited)
        return;
    pthread_mutex_unlock(&p->mu);
    /* Lock order: all_mu before any pool's mutex (as in at_fork_prepare). */
    pthread_mutex_lock(&all_mu);
    pthread_mutex_lock(&p->mu);
    if (!p->inited) {
        init_cv(p);
        if (p->max_threads <= 0)
            p->max_threads = p->default_max();
        p->all_next = all_pools;
        all_pools = p;
        p->inited = true;
    }
    pthread_mutex_unlock(&all_mu);
}

/* ---- the task side --------------------------------------------------------------------------- */

static void abandon(simul__wait *w)
{
    simul__job *j = w->ctx;
    simul__pool *p = j->pool;
    j->w = NULL;
    pthread_mutex_lock(&p->mu);
    j->abandoned = true;
    if (j->queued) {
        q_remove(p, j); /* no worker has seen it */
        p->inflight--;
        w->aux = SIMUL__JOB_NOT_RUN;
    } else {
        w->aux = j->finished ? LATE : GONE; /* GONE: the worker drops it when work returns */
    }
    pthread_mutex_unlock(&p->mu);
}

static void give_back(simul__pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->inflight--;
    pthread_mutex_unlock(&p->mu);
}

int simul__pool_run(simul__pool *p, simul__job *j, int *fate)
{
    simul_loop *loop = simul__loop();
    simul_task *self = simul__task_self();
    SIMUL__REC(simul__wait, w, self); /* the worker's delivery wakes it: off a compact stack */
    if (!w) {
        *fate = SIMUL__JOB_NOT_RUN;
        return -ENOMEM;
    }
    *w = (simul__wait){.unlink = abandon, .ctx = j, .kind = SIMUL__WAIT_THREAD};
    j->pool = p;
    j->loop = loop;
    j->w = w;
    j->err = 0;
    j->queued = j->abandoned = j->finished = j->delivered = false;
    *fate = 0;

    lock_ready(p);
    q_push(p, j);
    p->inflight++;
    int n = want_threads_locked(p);
    if (p->nidle)
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    start_threads(p, n);

    simul__loop_thread_wait_begin(loop); /* a worker will wake it: the loop is not stuck */
    int rc = simul__park(w, SIMUL__INF);
    simul__loop_thread_wait_end(loop);
    if (rc == 0) {
        SIMUL__ASSERT(j->delivered);
        give_back(p);
        return j->err;
    }
    if (w->aux == LATE) {
        if (!j->delivered) {
            /* `deliver` is queued on this loop with j: wait for it so it never runs on freed
             * memory nor is left behind if the loop closes. It comes within a pass. */
            simul_scope shield;
            simul_scope_shield(&shield);
            /* `w` is ours till we return: reused, so this wait needs no memory. */
            *w = (simul__wait){0};
            j->w = w;
            simul__park(w, SIMUL__INF);
            simul_scope_end(&shield);
            SIMUL__ASSERT(j->delivered);
        }
        give_back(p);
        *fate = SIMUL__JOB_LATE;
        j->late_rc = rc;
        return j->err; /* the work was done: completion wins */
    }
    *fate = w->aux; /* DROPPED: j may already be freed by its worker */
    return rc;
}

/* ---- settings -------------------------------------------------------------------------------- */

int simul__pool_set_max(simul__pool *p, int n)
{
    if (n < 0)
        return -EINVAL;
    lock_ready(p);
    p->max_threads = n ? n : p->default_max();
    int start = want_threads_locked(p);
    pthread_cond_broadcast(&p->cv); /* idle workers above the new maximum exit */
    pthread_mutex_unlock(&p->mu);
    start_threads(p, start);
    return 0;
}

int simul__pool_get_max(simul__pool *p)
{
    lock_ready(p);
    int n = p->max_threads;
    pthread_mutex_unlock(&p->mu);
    return n;
}

unsigned long simul__pool_posted(simul__pool *p)
{
    lock_ready(p);
    unsigned long n = p->nposted;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int simul__pool_queued(simul__pool *p)
{
    lock_ready(p);
    int n = p->qlen;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void simul__pool_set_idle(simul__pool *p, int64_t ns, int64_t dflt)
{
    lock_ready(p);
    p->idle_ns = ns > 0 ? ns : dflt;
    pthread_cond_broadcast(&p->cv); /* idle workers re-read it (a shorter one may be past) */
    pthread_mutex_unlock(&p->mu);
}

void simul__pool_counts(simul__pool *p, int *threads, int *idle, int *inflight)
{
    lock_ready(p);
    *threads = p->nthreads;
    *idle = p->nidle;
    *inflight = p->inflight;
    pthread_mutex_unlock(&p->mu);
}
