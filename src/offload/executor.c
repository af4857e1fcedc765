/* executor.c — asyncio.to_thread: blocking functions run on one process-wide pool of worker
 * threads (pool.c) while the calling task waits. A caller that gives up returns at once; the
 * function runs on, and its argument goes to the discard callback when it returns. */
#include "pool.h"

#define IDLE_NS (10 * 1000000000LL) /* an idle worker exits after this */

typedef struct xjob {
    simul__job base;
    simul_thread_fn fn;
    void *arg;
    simul_thread_discard_cb discard;
    int result;
} xjob;

static simul__pool pool = SIMUL__POOL_INIT(simul__pool_default_max, IDLE_NS);

static void xwork(simul__job *j)
{
    xjob *x = (xjob *)j;
    x->result = x->fn(x->arg);
}

static void xdrop(simul__job *j)
{
    xjob *x = (xjob *)j;
    if (x->discard)
        x->discard(x->arg, x->result);
    free(x);
}

/* `call` is the public call the user made (debug reports and the task dump name it). */
static int to_thread(simul_thread_fn fn, void *arg, simul_thread_discard_cb discard, int *result,
                     const char *call)
{
    simul_task *self = simul__task_require(call);
    /* The worker reads arg while the caller is suspended, perhaps evicted from its run stack. */
    simul__debug_check_ptr(arg, call, "the argument");
    if (!fn)
        return -EINVAL;
    if (!self)
        return -EPERM;
    int rc = simul__task_check(self);
    if (rc < 0) {
        if (discard) /* an interrupted call hands arg over, however early it was interrupted */
            discard(arg, -ECANCELED);
        return rc;
    }
    xjob *x = calloc(1, sizeof *x);
    if (!x) {
        if (discard) /* -ENOMEM hands arg over too, so the caller never has to guess */
            discard(arg, -ECANCELED);
        return -ENOMEM;
    }
    x->base.work = xwork;
    x->base.drop = xdrop;
    x->fn = fn;
    x->arg = arg;
    x->discard = discard;
    int fate;
    rc = simul__pool_run(&pool, &x->base, &fate);
    if (rc < 0 && fate == SIMUL__JOB_DROPPED)
        return rc; /* the worker owns x now and discards when fn returns */
    bool interrupted = rc == -ECANCELED || rc == -ETIMEDOUT || rc == -ENOMEM;
    if (interrupted && fate == SIMUL__JOB_NOT_RUN && discard)
        discard(arg, -ECANCELED); /* never started: arg goes back through the same door */
    if (rc == 0 && result)
        *result = x->result;
    free(x);
    return rc;
}

int simul_to_thread_discard(simul_thread_fn fn, void *arg, simul_thread_discard_cb discard,
                            int *result)
{
    return to_thread(fn, arg, discard, result, __func__);
}

int simul_to_thread(simul_thread_fn fn, void *arg, int *result)
{
    return to_thread(fn, arg, NULL, result, __func__);
}

int simul_executor_set_max_threads(int n)
{
    return simul__pool_set_max(&pool, n);
}

int simul_executor_max_threads(void)
{
    return simul__pool_get_max(&pool);
}

/* ---- test hooks (the unit tests link the static library) ------------------------------------- */

void simul__executor_test_counts(int *threads, int *idle, int *inflight);
void simul__executor_test_counts(int *threads, int *idle, int *inflight)
{
    simul__pool_counts(&pool, threads, idle, inflight);
}

/* The idle time after which a worker exits (<= 0 restores the default). */
void simul__executor_test_set_idle(int64_t ns);
void simul__executor_test_set_idle(int64_t ns)
{
    simul__pool_set_idle(&pool, ns, IDLE_NS);
}

/* Results the workers have posted to a loop so far: a test holding the loop waits for this to
 * move to know the result is posted and not yet read. */
unsigned long simul__executor_test_posted(void);
unsigned long simul__executor_test_posted(void)
{
    return simul__pool_posted(&pool);
}
