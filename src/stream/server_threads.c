/* server_threads.c — one stream server spread over N threads, each running its own loop and its
 * own listening socket on the same host:port (SO_REUSEPORT: the kernel spreads the connections by
 * a hash of their addresses). Threads share nothing but two channels: closing `stop` ends every
 * worker's wait (the only cross-thread wake-up needed), and closing `done` tells waiters on any
 * loop or thread that the last worker has ended. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../io/io.h"

enum { W_STARTING, W_LISTENING, W_FAILED };

/* A handler task of one worker, on that task's stack while the handler runs: stop cancels them. */
typedef struct conn {
    struct conn *prev, *next;
    simul_task *task;
} conn;

typedef struct worker {
    simul_threaded_server *ts;
    int index;
    pthread_t th;
    bool created, joined; /* joined: under ts->join_mu */
    int state;            /* W_*, under ts->mu */
    int err;              /* W_FAILED: why (under ts->mu) */
    int port;             /* W_LISTENING: the port it got (under ts->mu) */
    _Atomic uint64_t accepted;
    /* The worker's own thread only: */
    bool stopping;
    conn *conns;
} worker;

struct simul_threaded_server {
    simul_threaded_server_opts o; /* host is our copy */
    char port_str[16];            /* what threads 1..n-1 bind: the port thread 0 got */
    int n;
    int port;
    pthread_mutex_t mu; /* state, err, port, running, launched */
    pthread_cond_t cv;  /* a worker left W_STARTING */
    int running;        /* threads created and not yet ended */
    bool launched;      /* simul_serve_threads succeeded: the last thread to end closes `done` */
    pthread_mutex_t join_mu;
    simul_channel *stop; /* closed by stop: every worker's wait ends */
    simul_channel *done; /* closed when the last worker thread ends */
    worker w[];
};

/* The worker running on this thread, so a call that would wait for its own thread can refuse. */
static _Thread_local worker *tl_worker;

/* ---- on a worker's loop ---------------------------------------------------------------------- */

/* Runs as the connection's handler task on the accepting thread's loop. */
static int conn_handler(simul_stream *s, void *arg)
{
    worker *w = arg;
    const simul_threaded_server_opts *o = &w->ts->o;
    atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
    /* Off the run stack for a compact handler: the worker walks this list while it sleeps. */
    SIMUL__REC(conn, c, simul__task_self());
    if (!c)
        return -ENOMEM;
    *c = (conn){.task = simul_task_current(), .next = w->conns};
    if (c->next)
        c->next->prev = c;
    w->conns = c;
    /* Accepted in the batch that raced with stop: the handler runs (it owns the stream) but its
     * first suspending call says -ECANCELED, as for the connections stop cancelled. */
    if (w->stopping)
        simul_task_cancel(c->task);
    int rc = o->handler(s, o->arg);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    return rc;
}

static void report(worker *w, int state, int err, int port)
{
    simul_threaded_server *ts = w->ts;
    pthread_mutex_lock(&ts->mu);
    w->state = state;
    w->err = err;
    w->port = port;
    pthread_cond_broadcast(&ts->cv);
    pthread_mutex_unlock(&ts->mu);
}

/* The worker loop's main task: listen, wait for stop, close, cancel the connections, wait until
 * they have ended. */
static int worker_task(void *arg)
{
    worker *w = arg;
    simul_threaded_server *ts = w->ts;
    const simul_threaded_server_opts *o = &ts->o;
    int rc = o->thread_init ? o->thread_init(w->index, o->arg) : 0;
    if (rc < 0) {
        report(w, W_FAILED, rc, 0);
        return rc;
    }
    simul_stream_server_opts so = {
        .host = o->host,
        .port = w->index == 0 ? o->port : ts->port_str,
        .backlog = o->backlog,
        .flags = SIMUL_LISTEN_REUSEPORT,
        .limit = o->limit,
        .stack_size = o->stack_size,
    };
    simul_server *srv;
    if ((rc = simul_start_server_opts(&so, conn_handler, w, &srv)) < 0) {
        report(w, W_FAILED, rc, 0);
        if (o->thread_fini)
            o->thread_fini(w->index, o->arg);
        return rc;
    }
    report(w, W_LISTENING, 0, simul_server_port(srv));

    /* Nobody puts into `stop`: this returns -EPIPE once stop closed it (or an error if something
     * cancelled this task; either way the worker ends). */
    void *unused;
    (void)simul_channel_get(ts->stop, &unused);

    w->stopping = true;
    simul_server_close(srv);
    for (conn *c = w->conns; c; c = c->next)
        simul_task_cancel(c->task);
    /* Shielded: the connections must be gone before the loop is torn down, even if this task was
     * cancelled; the handlers were, so they return. */
    simul_scope shield;
    simul_scope_shield(&shield);
    (void)simul_server_wait_closed(srv);
    simul_scope_end(&shield);
    simul_server_free(srv);
    if (o->thread_fini)
        o->thread_fini(w->index, o->arg);
    return 0;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    simul_threaded_server *ts = w->ts;
    tl_worker = w;
    int rc = simul_run(worker_task, w); /* not the main thread: simul_run leaves SIGINT alone */
    bool last;
    pthread_mutex_lock(&ts->mu);
    if (w->state == W_STARTING) { /* the loop could not even be made */
        w->state = W_FAILED;
        w->err = rc < 0 ? rc : -EIO;
        pthread_cond_broadcast(&ts->cv);
    }
    last = --ts->running == 0 && ts->launched;
    pthread_mutex_unlock(&ts->mu);
    /* The channel lives until free, which joins this thread first. */
    if (last)
        simul_channel_close(ts->done);
    tl_worker = NULL;
    return NULL;
}

/* ---- starting --------------------------------------------------------------------------------- */

/* The CPUs this process may run on (taskset, cgroup cpusets), which is what a thread per core
 * means; the online count if that cannot be read. */
static int cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < SIMUL_THREADED_SERVER_MAX_THREADS ? n
                                                                : SIMUL_THREADED_SERVER_MAX_THREADS)
                 : 1;
}

static int start_worker(worker *w)
{
    simul_threaded_server *ts = w->ts;
    /* The workers start with the asynchronous signals blocked, so the kernel delivers them to the
     * application's own threads (the one that owns SIGINT/SIGTERM handling). Faults stay
     * deliverable: a stack overflow on a worker loop must still be reported. */
    sigset_t block, old;
    sigfillset(&block);
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&block, faults[i]);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    pthread_mutex_lock(&ts->mu);
    ts->running++;
    pthread_mutex_unlock(&ts->mu);
    int rc = pthread_create(&w->th, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_mutex_lock(&ts->mu);
        ts->running--;
        pthread_mutex_unlock(&ts->mu);
        return -rc;
    }
    w->created = true;
    return 0;
}

/* Blocks until workers [from, to) have left W_STARTING. Returns the first failure by index, or 0. */
static int await_started(simul_threaded_server *ts, int from, int to)
{
    int err = 0;
    pthread_mutex_lock(&ts->mu);
    for (int i = from; i < to; i++) {
        while (ts->w[i].state == W_STARTING)
            pthread_cond_wait(&ts->cv, &ts->mu);
        if (ts->w[i].state == W_FAILED && err == 0)
            err = ts->w[i].err;
    }
    pthread_mutex_unlock(&ts->mu);
    return err;
}

static void join_all(simul_threaded_server *ts)
{
    pthread_mutex_lock(&ts->join_mu);
    for (int i = 0; i < ts->n; i++) {
        worker *w = &ts->w[i];
        if (w->created && !w->joined) {
            pthread_join(w->th, NULL);
            w->joined = true;
        }
    }
    pthread_mutex_unlock(&ts->join_mu);
}

static void destroy(simul_threaded_server *ts)
{
    simul_channel_free(ts->stop, NULL);
    simul_channel_free(ts->done, NULL);
    pthread_cond_destroy(&ts->cv);
    pthread_mutex_destroy(&ts->mu);
    pthread_mutex_destroy(&ts->join_mu);
    free((char *)ts->o.host);
    free(ts);
}

static int alloc_server(const simul_threaded_server_opts *o, int n, simul_threaded_server **out)
{
    simul_threaded_server *ts = calloc(1, sizeof *ts + (size_t)n * sizeof ts->w[0]);
    if (!ts)
        return -ENOMEM;
    ts->o = *o;
    ts->o.host = NULL;
    ts->o.threads = n;
    ts->n = n;
    int rc = 0;
    if (o->host && !(ts->o.host = strdup(o->host)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = simul_channel_new(&ts->stop, 1);
    if (rc == 0)
        rc = simul_channel_new(&ts->done, 1);
    if (rc < 0) {
        if (ts->stop)
            simul_channel_free(ts->stop, NULL);
        free((char *)ts->o.host);
        free(ts);
        return rc;
    }
    pthread_mutex_init(&ts->mu, NULL);
    pthread_cond_init(&ts->cv, NULL);
    pthread_mutex_init(&ts->join_mu, NULL);
    for (int i = 0; i < n; i++) {
        ts->w[i].ts = ts;
        ts->w[i].index = i;
        ts->w[i].state = W_STARTING;
        atomic_init(&ts->w[i].accepted, 0);
    }
    *out = ts;
    return 0;
}

int simul_serve_threads(const simul_threaded_server_opts *o, simul_threaded_server **out)
{
    if (out)
        *out = NULL;
    if (!o || !out || !o->handler || o->threads < 0 ||
        o->threads > SIMUL_THREADED_SERVER_MAX_THREADS || o->backlog < 0)
        return -EINVAL;
    int n = o->threads ? o->threads : cpu_count();
    simul_threaded_server *ts;
    int rc = alloc_server(o, n, &ts);
    if (rc < 0)
        return rc;
    /* Thread 0 first: with port 0 it picks the port the others then bind beside it. */
    if ((rc = start_worker(&ts->w[0])) == 0 && (rc = await_started(ts, 0, 1)) == 0) {
        ts->port = ts->w[0].port; /* written before the cond broadcast we waited on */
        snprintf(ts->port_str, sizeof ts->port_str, "%d", ts->port);
        int made = 1;
        while (made < n && (rc = start_worker(&ts->w[made])) == 0)
            made++;
        int err = await_started(ts, 1, made);
        if (rc == 0)
            rc = err;
    }
    ts->o.port = NULL; /* the caller's string: read by thread 0 only, before it reported */
    if (rc < 0) {
        /* Those that listen stop; every thread made is joined: nothing is left running. */
        simul_channel_close(ts->stop);
        join_all(ts);
        destroy(ts);
        return rc;
    }
    pthread_mutex_lock(&ts->mu);
    ts->launched = true;
    bool ended = ts->running == 0; /* a handler stopped it already (it had the pointer somehow) */
    pthread_mutex_unlock(&ts->mu);
    if (ended)
        simul_channel_close(ts->done);
    *out = ts;
    return 0;
}

/* ---- the rest of the public API ---------------------------------------------------------------- */

int simul_threaded_server_port(const simul_threaded_server *ts)
{
    return ts ? ts->port : -EINVAL;
}

int simul_threaded_server_threads(const simul_threaded_server *ts)
{
    return ts ? ts->n : -EINVAL;
}

int64_t simul_threaded_server_accepted(simul_threaded_server *ts, int index)
{
    if (!ts || index < 0 || index >= ts->n)
        return -EINVAL;
    return (int64_t)atomic_load_explicit(&ts->w[index].accepted, memory_order_relaxed);
}

int simul_threaded_server_index(void)
{
    return tl_worker ? tl_worker->index : -1;
}

int simul_threaded_server_stop(simul_threaded_server *ts)
{
    if (!ts)
        return -EINVAL;
    return simul_channel_close(ts->stop);
}

static bool on_own_thread(const simul_threaded_server *ts)
{
    return tl_worker && tl_worker->ts == ts;
}

int simul_threaded_server_join(simul_threaded_server *ts)
{
    if (!ts)
        return -EINVAL;
    simul_loop *loop = simul__loop();
    if (on_own_thread(ts) || (loop && simul__loop_running(loop)))
        return -EDEADLK;
    join_all(ts);
    return 0;
}

int simul_threaded_server_wait(simul_threaded_server *ts)
{
    if (!simul__task_require(__func__))
        return -EPERM;
    if (!ts)
        return -EINVAL;
    if (on_own_thread(ts))
        return -EDEADLK;
    void *unused;
    int rc = simul_channel_get(ts->done, &unused);
    return rc == -EPIPE ? 0 : rc; /* nothing is ever put: -EPIPE is "closed", i.e. all ended */
}

int simul_threaded_server_free(simul_threaded_server *ts)
{
    if (!ts)
        return 0;
    if (on_own_thread(ts))
        return -EDEADLK;
    simul_threaded_server_stop(ts);
    join_all(ts);
    destroy(ts);
    return 0;
}
