/* test_executor_thread.c — simul_to_thread: results come back, many calls at once within the pool
 * size, cancellation and deadlines while queued / running / already finished (fn not run, or run
 * to its end with its argument discarded exactly once), a function blocked forever does not wedge
 * the others, idle workers exit, and a loop closed while an abandoned call still runs.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "test_main_helpers.h"

/* Test hooks of src/io/executor.c (the tests link the static library). */
void simul__executor_test_counts(int *threads, int *idle, int *inflight);
void simul__executor_test_set_idle(int64_t ns);
unsigned long simul__executor_test_posted(void);

/* Bound on every wait for a state below: only a broken pool reaches it, never a slow machine. */
#define STATE_BOUND 60.0

static int pool_threads(void)
{
    int th, idle, inflight;
    simul__executor_test_counts(&th, &idle, &inflight);
    return th;
}

static int pool_inflight(void)
{
    int th, idle, inflight;
    simul__executor_test_counts(&th, &idle, &inflight);
    return inflight;
}

/* Waits (the thread, not a task) until no call is left in the pool; false after STATE_BOUND. */
static bool pool_drained(void)
{
    double end = test_clock() + STATE_BOUND;
    while (pool_inflight() != 0) {
        if (test_clock() > end)
            return false;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return true;
}

/* ---- functions run on the workers ------------------------------------------------------------ */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int running, max_running, calls, discards, discard_result;

static void gate_set(bool open)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = open;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static void enter(void)
{
    atomic_fetch_add(&calls, 1);
    int now = atomic_fetch_add(&running, 1) + 1;
    int max = atomic_load(&max_running);
    while (now > max && !atomic_compare_exchange_weak(&max_running, &max, now)) {
    }
}

/* arg points to an int: returns it doubled, after `*arg` microseconds of sleep (0: none). */
static int double_it(void *arg)
{
    enter();
    int v = *(int *)arg;
    if (v > 0 && v < 5000)
        nanosleep(&(struct timespec){0, (long)v * 1000}, NULL);
    atomic_fetch_sub(&running, 1);
    return 2 * v;
}

/* Blocks until the gate opens; returns 7. */
static int wait_gate(void *arg)
{
    (void)arg;
    enter();
    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    atomic_fetch_sub(&running, 1);
    return 7;
}

/* A result that owns memory: fn allocates into the heap argument, discard frees both. */
typedef struct owned {
    char *text;
} owned;

static int make_text_after_gate(void *arg)
{
    owned *o = arg;
    wait_gate(NULL);
    o->text = strdup("made on a worker");
    return 1;
}

static void discard_owned(void *arg, int result)
{
    owned *o = arg;
    atomic_fetch_add(&discards, 1);
    atomic_store(&discard_result, result);
    free(o->text);
    free(o);
}

/* Reads one byte from the pipe fd in *arg: blocks until the write end is closed. */
static int read_pipe(void *arg)
{
    enter();
    char c;
    ssize_t n = read(*(int *)arg, &c, 1);
    atomic_fetch_sub(&running, 1);
    return (int)n;
}

static void reset_counters(void)
{
    atomic_store(&running, 0);
    atomic_store(&max_running, 0);
    atomic_store(&calls, 0);
    atomic_store(&discards, 0);
    atomic_store(&discard_result, INT_MIN);
    gate_set(false);
}

/* Suspends the calling task until `calls` reaches n; false after STATE_BOUND. */
static bool calls_reach(int n)
{
    double end = test_clock() + STATE_BOUND;
    while (atomic_load(&calls) < n) {
        if (test_clock() > end)
            return false;
        assert_int_equal(simul_sleep(0.001), 0);
    }
    return true;
}

/* Calls fn(new_arg()) under a deadline of `timeout` s, expecting -ETIMEDOUT with fn taken by a
 * worker, where it blocks until the test lets it go; returns once fn has been entered. The
 * deadline can also catch the call still in the queue, on a machine so loaded that no worker
 * got the CPU to take it in time: a correct outcome (asserted here: fn never runs, arg goes to
 * discard with -ECANCELED; cancel_while_queued_never_runs covers it), but not the one the caller
 * is about, so it tries again with twice the time. Which case it was is read from the pool's
 * state, not guessed from the clock. */
static void timed_out_while_running(simul_thread_fn fn, void *(*new_arg)(void),
                                    simul_thread_discard_cb discard, double timeout)
{
    int inflight0 = pool_inflight(), calls0 = atomic_load(&calls);
    int discards0 = atomic_load(&discards);
    for (;;) {
        simul_scope s;
        assert_int_equal(simul_scope_timeout(&s, timeout), 0);
        int r = 99;
        assert_int_equal(simul_to_thread_discard(fn, new_arg(), discard, &r), -ETIMEDOUT);
        assert_int_equal(simul_scope_end(&s), 1);
        assert_int_equal(r, 99);
        if (pool_inflight() == inflight0 + 1)
            break; /* a worker has it: it runs fn, which cannot return yet */
        /* Taken off the queue: never run, arg handed back. */
        assert_int_equal(pool_inflight(), inflight0);
        assert_int_equal(atomic_load(&calls), calls0);
        if (discard) {
            assert_int_equal(atomic_load(&discards), discards0 + 1);
            assert_int_equal(atomic_load(&discard_result), -ECANCELED);
            atomic_store(&discards, discards0); /* the caller counts the abandoned run's only */
        }
        assert_true(timeout < STATE_BOUND);
        timeout *= 2;
    }
    /* The call is back while fn has not returned (it cannot: the test holds it): the deadline
     * did not wait for fn. Its worker enters fn, if it has not yet. */
    assert_true(calls_reach(calls0 + 1));
    assert_int_equal(atomic_load(&running), 1);
    assert_int_equal(pool_inflight(), inflight0 + 1);
    if (discard)
        assert_int_equal(atomic_load(&discards), discards0); /* not before fn returns */
}

/* ---- cases ----------------------------------------------------------------------------------- */

SIMUL_TASK_TEST(results_come_back)
{
    (void)arg;
    reset_counters();
    int v = 21, r = 0;
    assert_int_equal(simul_to_thread(double_it, &v, &r), 0);
    assert_int_equal(r, 42);
    v = 0;
    assert_int_equal(simul_to_thread(double_it, &v, NULL), 0);
    /* fn's own failure is its result, not the call's */
    assert_int_equal(simul_to_thread_discard(double_it, &(int){-5}, NULL, &r), 0);
    assert_int_equal(r, -10);
    assert_int_equal(simul_to_thread(NULL, NULL, &r), -EINVAL);
    assert_true(pool_threads() >= 1);
    return 0;
}

static void outside_a_task(void **state)
{
    (void)state;
    int r;
    assert_int_equal(simul_to_thread(double_it, &(int){1}, &r), -EPERM);
}

static void max_threads_setting(void **state)
{
    (void)state;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    int def = simul_executor_max_threads();
    assert_true(def >= 5 && def <= 32);
    assert_true(def <= n + 4);
    assert_int_equal(simul_executor_set_max_threads(-1), -EINVAL);
    assert_int_equal(simul_executor_set_max_threads(3), 0);
    assert_int_equal(simul_executor_max_threads(), 3);
    assert_int_equal(simul_executor_set_max_threads(0), 0);
    assert_int_equal(simul_executor_max_threads(), def);
}

#define MANY 1000
static int vals[MANY], outs[MANY];

static int one_call(void *arg)
{
    int i = (int)(intptr_t)arg;
    vals[i] = i % 50; /* up to 49 us of sleep */
    return simul_to_thread(double_it, &vals[i], &outs[i]);
}

SIMUL_TASK_TEST(many_calls_within_pool_size)
{
    (void)arg;
    reset_counters();
    assert_int_equal(simul_executor_set_max_threads(4), 0);
    static simul_task *ts[MANY];
    for (int i = 0; i < MANY; i++)
        assert_int_equal(simul_task_spawn(&ts[i], one_call, (void *)(intptr_t)i, NULL), 0);
    static int results[MANY];
    assert_int_equal(simul_gather(ts, MANY, results), 0);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(results[i], 0);
        assert_int_equal(outs[i], 2 * (i % 50));
    }
    assert_int_equal(atomic_load(&calls), MANY);
    assert_true(atomic_load(&max_running) <= 4);
    assert_true(pool_threads() <= 4);
    assert_int_equal(pool_inflight(), 0);
    assert_int_equal(simul_executor_set_max_threads(0), 0);
    return 0;
}

static int gate_call(void *arg)
{
    int r = 0;
    int rc = simul_to_thread(wait_gate, NULL, &r);
    (void)arg;
    return rc < 0 ? rc : r;
}

SIMUL_TASK_TEST(cancel_while_queued_never_runs)
{
    (void)arg;
    reset_counters();
    assert_int_equal(simul_executor_set_max_threads(1), 0);
    simul_task *busy;
    assert_int_equal(simul_task_spawn(&busy, gate_call, NULL, NULL), 0);
    while (atomic_load(&running) == 0) /* the only worker is taken */
        assert_int_equal(simul_sleep(0.001), 0);

    /* A second call waits in the queue; cancel its task there. */
    owned *o = calloc(1, sizeof *o);
    assert_non_null(o);
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.05), 0);
    int r = 99;
    assert_int_equal(simul_to_thread_discard(make_text_after_gate, o, discard_owned, &r), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&s), 1);
    assert_int_equal(r, 99);
    /* Never started: discarded before the call returned, with -ECANCELED. */
    assert_int_equal(atomic_load(&discards), 1);
    assert_int_equal(atomic_load(&discard_result), -ECANCELED);
    assert_int_equal(atomic_load(&calls), 1);

    gate_set(true);
    int br = 0;
    assert_int_equal(simul_task_join(busy, &br), 0);
    assert_int_equal(br, 7);
    assert_int_equal(atomic_load(&calls), 1); /* still: the cancelled one never ran */
    assert_int_equal(pool_inflight(), 0);
    assert_int_equal(simul_executor_set_max_threads(0), 0);
    return 0;
}

/* A task already cancelled when it calls: the call is interrupted before it queues anything,
 * and arg still goes to discard, exactly once (the caller must not free it itself). */
SIMUL_TASK_TEST(cancelled_before_the_call_still_discards)
{
    (void)arg;
    reset_counters();
    owned *o = calloc(1, sizeof *o);
    assert_non_null(o);
    assert_int_equal(simul_task_cancel(simul_task_current()), 0);
    int r = 99;
    assert_int_equal(simul_to_thread_discard(make_text_after_gate, o, discard_owned, &r), -ECANCELED);
    assert_int_equal(r, 99);
    assert_int_equal(atomic_load(&discards), 1);
    assert_int_equal(atomic_load(&discard_result), -ECANCELED);
    assert_int_equal(atomic_load(&calls), 0);
    return 0;
}

static int owned_call(void *arg)
{
    owned *o = calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    int r = 0;
    int rc = simul_to_thread_discard(make_text_after_gate, o, discard_owned, &r);
    if (rc == 0) { /* ours again */
        free(o->text);
        free(o);
    }
    (void)arg;
    return rc;
}

SIMUL_TASK_TEST(cancel_while_running_discards_once)
{
    (void)arg;
    reset_counters();
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, owned_call, NULL, NULL), 0);
    while (atomic_load(&running) == 0)
        assert_int_equal(simul_sleep(0.001), 0);
    assert_int_equal(simul_task_cancel(t), 0);
    int r = 0;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -ECANCELED);
    /* At once, not when fn returns: fn is still inside, held by the closed gate. */
    assert_int_equal(atomic_load(&running), 1);
    assert_int_equal(atomic_load(&discards), 0); /* fn still runs */
    assert_int_equal(pool_inflight(), 1);

    gate_set(true);
    assert_true(pool_drained());
    assert_int_equal(atomic_load(&discards), 1);
    assert_int_equal(atomic_load(&discard_result), 1); /* fn's result; its text freed by discard */
    return 0;
}

/* The worker has finished (and posted) when the cancel lands: completion wins. */
static atomic_bool fast_done;
static int fast_fn(void *arg)
{
    (void)arg;
    atomic_store(&fast_done, true);
    return 5;
}

static int fast_call(void *arg)
{
    int *out = arg;
    return simul_to_thread_discard(fast_fn, NULL, discard_owned, out);
}

SIMUL_TASK_TEST(cancel_after_result_posted_completion_wins)
{
    (void)arg;
    reset_counters();
    atomic_store(&fast_done, false);
    unsigned long posted = simul__executor_test_posted();
    int out = 0;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, fast_call, &out, NULL), 0);
    assert_int_equal(simul_yield(), 0); /* t submits and parks */
    /* Hold the loop (no suspension, so the result cannot be read) until the worker has posted
     * it, then cancel before it is read. */
    double end = test_clock() + STATE_BOUND;
    while (simul__executor_test_posted() == posted)
        assert_true(test_clock() < end);
    assert_true(atomic_load(&fast_done));
    assert_int_equal(simul_task_cancel(t), 0);
    int r = -1;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(out, 5);
    assert_int_equal(atomic_load(&discards), 0);
    assert_int_equal(pool_inflight(), 0);
    return 0;
}

static int rfd; /* outlives the call: the worker reads it after we gave up */
static void *the_pipe(void)
{
    return &rfd;
}

static int quick_call(void *arg)
{
    int v = (int)(intptr_t)arg, r = 0;
    int rc = simul_to_thread(double_it, &v, &r);
    return rc < 0 ? rc : r;
}

SIMUL_TASK_TEST(blocked_forever_is_timed_out_and_others_go_on)
{
    (void)arg;
    reset_counters();
    int p[2];
    assert_int_equal(pipe(p), 0);
    rfd = p[0];
    /* Timed out while read_pipe is blocked: the call is back, the read is not. */
    timed_out_while_running(read_pipe, the_pipe, NULL, 0.1);
    /* The task goes on, and other calls still complete on other workers. */
    for (int i = 1; i <= 20; i++) {
        simul_task *t;
        assert_int_equal(simul_task_spawn(&t, quick_call, (void *)(intptr_t)i, NULL), 0);
        int r = 0;
        assert_int_equal(simul_task_join(t, &r), 0);
        assert_int_equal(r, 2 * i);
    }
    assert_int_equal(pool_inflight(), 1);
    close(p[1]); /* the blocked read returns 0 */
    assert_true(pool_drained());
    close(p[0]);
    return 0;
}

SIMUL_TASK_TEST(idle_workers_exit)
{
    (void)arg;
    reset_counters();
    simul__executor_test_set_idle(50 * 1000000LL);
    int v = 1, r = 0;
    assert_int_equal(simul_to_thread(double_it, &v, &r), 0);
    double end = test_clock() + STATE_BOUND;
    while (pool_threads() > 0 && test_clock() < end)
        assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(pool_threads(), 0);
    /* and new ones start on demand */
    assert_int_equal(simul_to_thread(double_it, &v, &r), 0);
    assert_int_equal(r, 2);
    simul__executor_test_set_idle(0);
    return 0;
}

static void *new_owned(void)
{
    owned *o = calloc(1, sizeof *o);
    assert_non_null(o);
    return o;
}

/* Gives up on a call whose function is running (blocked on the gate). */
static int abandon_main(void *arg)
{
    (void)arg;
    timed_out_while_running(make_text_after_gate, new_owned, discard_owned, 0.05);
    return 0;
}

static void thread_loop_closed_while_call_runs(void **state)
{
    (void)state;
    reset_counters();
    /* The loop is closed (and freed) with the function still blocked on its worker. */
    assert_int_equal(simul_test_run(abandon_main, NULL), 0);
    assert_int_equal(pool_inflight(), 1);
    assert_int_equal(atomic_load(&running), 1);
    /* Now it returns: the worker discards without touching the dead loop. */
    gate_set(true);
    assert_true(pool_drained());
    assert_int_equal(atomic_load(&discards), 1);
    /* And a new loop uses the pool as before. */
    gate_set(false);
    assert_int_equal(simul_test_run(abandon_main, NULL), 0);
    gate_set(true);
    assert_true(pool_drained());
    assert_int_equal(atomic_load(&discards), 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(results_come_back),
    cmocka_unit_test(outside_a_task),
    cmocka_unit_test(max_threads_setting),
    cmocka_unit_test(many_calls_within_pool_size),
    cmocka_unit_test(cancel_while_queued_never_runs),
    cmocka_unit_test(cancel_while_running_discards_once),
    cmocka_unit_test(cancelled_before_the_call_still_discards),
    cmocka_unit_test(cancel_after_result_posted_completion_wins),
    cmocka_unit_test(blocked_forever_is_timed_out_and_others_go_on),
    cmocka_unit_test(idle_workers_exit),
    cmocka_unit_test(thread_loop_closed_while_call_runs),
};

SIMUL_TEST_MAIN("test_executor_thread", tests)
