/* test_task.c — tasks: spawn/join/detach, names and ids, current/count/foreach, many tasks,
 * yield fairness, suspending outside a task, sleep, and simul_run.
 */
#include <fenv.h>

#include "test_main_helpers.h"

static int return_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

/* Sleeps (suspending) until *flag is set, for at most 5 s. */
static void wait_until(const volatile int *flag)
{
    double end = test_clock() + 5.0;
    while (!*flag && test_clock() < end) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_true(*flag);
}

/* ---- spawn / join / detach ------------------------------------------------------------- */

static int ran_flag;
static int set_flag_return_7(void *arg)
{
    (void)arg;
    ran_flag = 1;
    return 7;
}

SIMUL_TASK_TEST(spawn_join_result)
{
    (void)arg;
    ran_flag = 0;
    simul_task *t = NULL;
    assert_int_equal(simul_task_spawn(&t, set_flag_return_7, NULL, NULL), 0);
    assert_non_null(t);
    assert_int_equal(ran_flag, 0); /* it first runs once the caller suspends */
    assert_false(simul_task_done(t));
    int result = 0;
    assert_int_equal(simul_task_join(t, &result), 0);
    assert_int_equal(ran_flag, 1);
    assert_int_equal(result, 7);
    /* result may be NULL. */
    assert_int_equal(simul_task_spawn(&t, return_arg, (void *)(intptr_t)3, NULL), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    return 0;
}

static int fail_eio(void *arg)
{
    (void)arg;
    assert_int_equal(simul_sleep(0.001), 0);
    return -EIO;
}

SIMUL_TASK_TEST(join_failing_task)
{
    (void)arg;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, fail_eio, NULL, NULL), 0);
    int result = 0;
    assert_int_equal(simul_task_join(t, &result), 0);
    assert_int_equal(result, -EIO);
    return 0;
}

SIMUL_TASK_TEST(join_twice_einval)
{
    (void)arg;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, return_arg, (void *)(intptr_t)1, NULL), 0);
    int result = 0;
    assert_int_equal(simul_task_join(t, &result), 0);
    assert_int_equal(result, 1);
    /* Nothing was spawned since, so the record cannot have been reused. */
    assert_int_equal(simul_task_join(t, &result), -EINVAL);
    assert_int_equal(simul_task_detach(t), -EINVAL);
    return 0;
}

static volatile int detached_done;
static int sleep_then_flag(void *arg)
{
    (void)arg;
    assert_int_equal(simul_sleep(0.01), 0);
    detached_done = 1;
    return 0;
}

SIMUL_TASK_TEST(join_after_detach_einval)
{
    (void)arg;
    detached_done = 0;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sleep_then_flag, NULL, NULL), 0);
    assert_int_equal(simul_task_detach(t), 0);
    /* The task is still alive (its record cannot be reused): the handle is gone though. */
    assert_int_equal(simul_task_join(t, NULL), -EINVAL);
    assert_int_equal(simul_task_detach(t), -EINVAL);
    wait_until(&detached_done);
    return 0;
}

SIMUL_TASK_TEST(join_self_edeadlk)
{
    (void)arg;
    int result = 12345;
    assert_int_equal(simul_task_join(simul_task_current(), &result), -EDEADLK);
    assert_int_equal(result, 12345);
    return 0;
}

SIMUL_TASK_TEST(detach_runs_on)
{
    (void)arg;
    detached_done = 0;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sleep_then_flag, NULL, NULL), 0);
    assert_int_equal(simul_task_count(), 2);
    assert_int_equal(simul_task_detach(t), 0);
    assert_int_equal(simul_task_count(), 2); /* the loop keeps it alive */
    wait_until(&detached_done);
    assert_int_equal(simul_yield(), 0);
    assert_int_equal(simul_task_count(), 1);
    /* out == NULL starts it detached. */
    detached_done = 0;
    assert_int_equal(simul_task_spawn(NULL, sleep_then_flag, NULL, NULL), 0);
    wait_until(&detached_done);
    assert_int_equal(simul_yield(), 0);
    assert_int_equal(simul_task_count(), 1);
    return 0;
}

SIMUL_TASK_TEST(spawn_null_fn_einval)
{
    (void)arg;
    simul_task *t = NULL;
    assert_int_equal(simul_task_spawn(&t, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(simul_task_count(), 1);
    return 0;
}

/* ---- names, ids, current ------------------------------------------------------------- */

SIMUL_TASK_TEST(task_names)
{
    (void)arg;
    assert_string_equal(simul_task_get_name(simul_task_current()), "test-main");
    simul_task *t;
    /* Default: "task-<id>". */
    assert_int_equal(simul_task_spawn(&t, return_arg, NULL, NULL), 0);
    char expect[64];
    snprintf(expect, sizeof expect, "task-%llu", (unsigned long long)simul_task_id(t));
    assert_string_equal(simul_task_get_name(t), expect);
    assert_int_equal(simul_task_set_name(t, "renamed"), 0);
    assert_string_equal(simul_task_get_name(t), "renamed");
    assert_int_equal(simul_task_set_name(t, NULL), -EINVAL);
    assert_string_equal(simul_task_get_name(t), "renamed");
    /* Truncated to 31 bytes. */
    const char *long_name = "0123456789abcdefghijklmnopqrstuvwxyzABCDEF"; /* 42 bytes */
    assert_int_equal(simul_task_set_name(t, long_name), 0);
    assert_int_equal(strlen(simul_task_get_name(t)), 31);
    assert_memory_equal(simul_task_get_name(t), long_name, 31);
    assert_int_equal(simul_task_join(t, NULL), 0);

    /* From the options: copied, and truncated too. */
    char buf[64];
    snprintf(buf, sizeof buf, "worker");
    simul_task_opts opts = {.name = buf, .stack_size = 0};
    assert_int_equal(simul_task_spawn(&t, return_arg, NULL, &opts), 0);
    buf[0] = 'X';
    assert_string_equal(simul_task_get_name(t), "worker");
    assert_int_equal(simul_task_join(t, NULL), 0);
    opts.name = long_name;
    assert_int_equal(simul_task_spawn(&t, return_arg, NULL, &opts), 0);
    assert_int_equal(strlen(simul_task_get_name(t)), 31);
    assert_memory_equal(simul_task_get_name(t), long_name, 31);
    assert_int_equal(simul_task_join(t, NULL), 0);
    return 0;
}

SIMUL_TASK_TEST(task_ids_unique)
{
    (void)arg;
    simul_task *t[16];
    for (int i = 0; i < 16; i++) {
        assert_int_equal(simul_task_spawn(&t[i], return_arg, NULL, NULL), 0);
    }
    for (int i = 0; i < 16; i++) {
        assert_true(simul_task_id(t[i]) != simul_task_id(simul_task_current()));
        for (int j = 0; j < i; j++) {
            assert_true(simul_task_id(t[i]) != simul_task_id(t[j]));
        }
    }
    for (int i = 0; i < 16; i++) {
        assert_int_equal(simul_task_join(t[i], NULL), 0);
    }
    return 0;
}

static simul_task *seen_current;
static int record_current(void *arg)
{
    (void)arg;
    seen_current = simul_task_current();
    return 0;
}

static void current_in_callback(void *arg)
{
    *(int *)arg = simul_task_current() == NULL ? 1 : -1;
}

SIMUL_TASK_TEST(task_current_inside_and_in_callbacks)
{
    (void)arg;
    assert_non_null(simul_task_current());
    simul_task *t;
    seen_current = NULL;
    assert_int_equal(simul_task_spawn(&t, record_current, NULL, NULL), 0);
    assert_int_equal(simul_wait(&t, 1, SIMUL_ALL_COMPLETED, INFINITY), 1);
    assert_ptr_equal(seen_current, t);
    assert_int_equal(simul_task_join(t, NULL), 0);
    int in_cb = 0;
    assert_int_equal(simul_call_soon(current_in_callback, &in_cb, NULL), 0);
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(in_cb, 1);
    return 0;
}

static void task_current_null_outside_loop(void **state)
{
    (void)state;
    assert_null(simul_task_current());
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_null(simul_task_current());
    assert_int_equal(simul_loop_close(loop), 0);
}

/* ---- count / foreach ----------------------------------------------------------------- */

static simul_future *hold;
static int await_hold(void *arg)
{
    (void)arg;
    int r = 0;
    assert_int_equal(simul_future_await(hold, &r, NULL), 0);
    return r;
}

typedef struct visit {
    int n;
    int stop_at;
    char names[8][32];
} visit;

static int visit_fn(simul_task *t, void *arg)
{
    visit *v = arg;
    if (v->n < 8) {
        snprintf(v->names[v->n], sizeof v->names[0], "%s", simul_task_get_name(t));
    }
    v->n++;
    return v->stop_at && v->n == v->stop_at;
}

SIMUL_TASK_TEST(task_count_and_foreach)
{
    (void)arg;
    assert_int_equal(simul_task_count(), 1);
    assert_int_equal(simul_future_new(&hold), 0);
    simul_task *t[5];
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "child-%d", i);
        simul_task_opts opts = {.name = name, .stack_size = 0};
        assert_int_equal(simul_task_spawn(&t[i], await_hold, NULL, &opts), 0);
    }
    assert_int_equal(simul_task_count(), 6);
    assert_int_equal(simul_sleep(0.005), 0); /* now they are all suspended */
    assert_int_equal(simul_task_count(), 6);
    visit v = {0};
    assert_int_equal(simul_task_foreach(visit_fn, &v), 6);
    assert_int_equal(v.n, 6);
    int found_main = 0, found_children = 0;
    for (int i = 0; i < 6; i++) {
        found_main += strcmp(v.names[i], "test-main") == 0;
        found_children += strncmp(v.names[i], "child-", 6) == 0;
    }
    assert_int_equal(found_main, 1);
    assert_int_equal(found_children, 5);
    visit early = {.stop_at = 3};
    assert_int_equal(simul_task_foreach(visit_fn, &early), 3);
    assert_int_equal(early.n, 3);
    assert_int_equal(simul_future_set_result(hold, 4, NULL), 0);
    for (int i = 0; i < 5; i++) {
        int r = 0;
        assert_int_equal(simul_task_join(t[i], &r), 0);
        assert_int_equal(r, 4);
    }
    assert_int_equal(simul_task_count(), 1);
    simul_future_free(hold);
    return 0;
}

static void foreach_without_loop_enxio(void **state)
{
    (void)state;
    visit v = {0};
    assert_int_equal(simul_task_foreach(visit_fn, &v), -ENXIO);
    assert_int_equal(v.n, 0);
}

/* ---- many tasks ------------------------------------------------------------------------- */

/* ThreadSanitizer counts every fiber as a thread and dies past 8128 of them: under TSan this
 * checks concurrency with 5000 tasks instead. */
enum { MANY = SIMUL_TEST_TSAN ? 5000 : 100000 };

static int sleep_50ms(void *arg)
{
    int rc = simul_sleep(0.05);
    return rc < 0 ? rc : (int)((intptr_t)arg % 1000);
}

SIMUL_TASK_TEST(hundred_thousand_sleeping_tasks)
{
    (void)arg;
    simul_task **t = calloc(MANY, sizeof *t);
    assert_non_null(t);
    double t0 = test_clock();
    for (int i = 0; i < MANY; i++) {
        int rc = simul_task_spawn(&t[i], sleep_50ms, (void *)(intptr_t)i, NULL);
        if (rc != 0) {
            fail_msg("spawn #%d failed: %d (%s)", i, rc, simul_errname(rc));
        }
    }
    assert_int_equal(simul_task_count(), MANY + 1);
    for (int i = 0; i < MANY; i++) {
        int r = -1;
        assert_int_equal(simul_task_join(t[i], &r), 0);
        if (r != i % 1000) {
            fail_msg("task #%d returned %d", i, r);
        }
    }
    double elapsed = test_clock() - t0;
    print_message("%d tasks sleeping 0.05 s: %.3f s\n", MANY, elapsed);
    assert_true(elapsed >= 0.05);
    /* One after another the sleeps would take MANY * 0.05 s (5000 s): the bound says they
     * overlapped, not how fast the machine is. 10 s was too tight: an ASan run on a loaded
     * 2-core machine took 14.4 s. It stays under the case's 60 s timeout. */
    assert_true(elapsed < 45.0);
    assert_int_equal(simul_task_count(), 1);
    free(t);
    return 0;
}

/* ---- yield -------------------------------------------------------------------------------- */

static int yield_log[64];
static int yield_log_n;

static int yielder(void *arg)
{
    for (int i = 0; i < 5; i++) {
        yield_log[yield_log_n++] = (int)(intptr_t)arg;
        assert_int_equal(simul_yield(), 0);
    }
    return 0;
}

SIMUL_TASK_TEST(yield_round_robin)
{
    (void)arg;
    yield_log_n = 0;
    simul_task *t[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_task_spawn(&t[i], yielder, (void *)(intptr_t)i, NULL), 0);
    }
    assert_int_equal(simul_gather(t, 3, NULL), 0);
    assert_int_equal(yield_log_n, 15);
    for (int i = 0; i < 15; i++) {
        assert_int_equal(yield_log[i], i % 3);
    }
    return 0;
}

/* A task that does 2 ms of work between yields (the seed's "await asyncio.sleep(0)
 * periodically") must not hold timers back for a whole run budget: counted in runs alone, 64
 * yields of 2 ms kept a 10 ms ticker 128 ms late. The pass's time slice bounds it to a few runs
 * (the first pass), then about one run.
 * Lateness is counted in the yielder's runs begun after the ticker's timer was due: that is what
 * the loop decides. Wall-clock milliseconds also count the time the machine gave other processes
 * (a loaded 2-core machine took the process away for 108 ms, then 650 ms), so the bound in
 * milliseconds is on the loop thread's CPU time instead: what it spent running other work while
 * the timer was due, which a busy machine cannot inflate. */
typedef struct ticker_state {
    volatile bool stop;
    double worst;     /* wall clock: printed, not asserted */
    double worst_cpu; /* this thread's CPU time from the timer due to the ticker awake */
    double due;       /* when the ticker's current sleep ends (0: it is not sleeping) */
    int late_runs;    /* the yielder's runs begun after `due`, before the ticker woke */
    int worst_runs;   /* the most of those for one tick */
    int ticks;
} ticker_state;

/* The calling thread's CPU time in seconds: every task here runs on the loop's thread. */
static double thread_cpu(void)
{
    struct timespec ts;
    assert_int_equal(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ticker(void *arg)
{
    ticker_state *st = arg;
    while (!st->stop) {
        double due = test_clock() + 0.01;
        double cpu0 = thread_cpu();
        st->due = due;
        st->late_runs = 0;
        if (simul_sleep(0.01) < 0)
            return -1;
        st->due = 0;
        double late = test_clock() - due;
        if (late > st->worst)
            st->worst = late;
        /* The sleep's own 10 ms are the yielder's CPU time too (less if the machine took the
         * process away then, which can only make this smaller): what is past them is late. */
        double late_cpu = thread_cpu() - cpu0 - 0.01;
        if (late_cpu > st->worst_cpu)
            st->worst_cpu = late_cpu;
        if (st->late_runs > st->worst_runs)
            st->worst_runs = st->late_runs;
        st->ticks++;
    }
    return 0;
}

static int busy_yielder(void *arg)
{
    ticker_state *st = arg;
    /* Counted in runs, not time: a run starts no more often than every 2 ms, so at most 6 begin
     * in one 10 ms sleep, plus at most 16 late ones: 600 runs see at least 27 ticks. */
    for (int run = 0; run < 600; run++) {
        double slice = test_clock() + 0.002;
        if (st->due > 0 && slice - 0.002 >= st->due)
            st->late_runs++;
        while (test_clock() < slice) {
        }
        assert_int_equal(simul_yield(), 0);
    }
    st->stop = true;
    return 0;
}

SIMUL_TASK_TEST(yielding_cpu_work_does_not_hold_timers_back)
{
    (void)arg;
    ticker_state st = {0};
    simul_task *t[2];
    assert_int_equal(simul_task_spawn(&t[0], ticker, &st, NULL), 0);
    assert_int_equal(simul_sleep(0.02), 0); /* the ticker is in its first sleep */
    assert_int_equal(simul_task_spawn(&t[1], busy_yielder, &st, NULL), 0);
    assert_int_equal(simul_gather(t, 2, NULL), 0);
    print_message("timer worst lateness %.1f ms (%.1f ms of CPU), %d runs of 2 ms\n",
                  st.worst * 1e3, st.worst_cpu * 1e3, st.worst_runs);
    /* About 5 with the slice (a coarse clock lets a pass run a few); 60 without it. */
    if (st.worst_runs > 16)
        fail_msg("a due timer waited for %d runs of a task yielding every 2 ms", st.worst_runs);
    /* The yielder's whole 1.2 s of work would be 1200 ms: the timer was not held for that. */
    if (st.worst_cpu > 0.5)
        fail_msg("timer worst lateness %.1f ms of CPU with a task yielding every 2 ms",
                 st.worst_cpu * 1e3);
    assert_true(st.ticks >= 20); /* it really ticked all along (1.2 s / 10 ms = 120 at best) */
    return 0;
}

/* ---- stacks and registers survive switches -------------------------------------------------- */

enum { STACK_TASKS = 200, STACK_BYTES = 16 * 1024 };

/* Fills 16 KiB of its own stack with its id, yields many times while the others do the same,
 * and checks nothing changed: live tasks never share (or clobber) stack memory. */
static int stack_filler(void *arg)
{
    unsigned char id = (unsigned char)(intptr_t)arg;
    volatile unsigned char buf[STACK_BYTES];
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (unsigned char)(id ^ (i & 0xff));
    }
    for (int round = 0; round < 5; round++) {
        assert_int_equal(simul_yield(), 0);
        for (size_t i = 0; i < sizeof buf; i += 61) {
            if (buf[i] != (unsigned char)(id ^ (i & 0xff))) {
                return -EFAULT;
            }
        }
    }
    return id;
}

SIMUL_TASK_TEST(tasks_have_separate_stacks)
{
    (void)arg;
    /* Twice, so the second round runs on recycled stacks. */
    for (int pass = 0; pass < 2; pass++) {
        simul_task *t[STACK_TASKS];
        for (int i = 0; i < STACK_TASKS; i++) {
            assert_int_equal(simul_task_spawn(&t[i], stack_filler, (void *)(intptr_t)i, NULL), 0);
        }
        int results[STACK_TASKS];
        assert_int_equal(simul_gather(t, STACK_TASKS, results), 0);
        for (int i = 0; i < STACK_TASKS; i++) {
            assert_int_equal(results[i], (unsigned char)i);
        }
    }
    return 0;
}

/* Each task's floating-point control state (rounding mode) is its own across switches. */
static int rounding_task(void *arg)
{
    int mode = (int)(intptr_t)arg;
    fesetround(mode);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(simul_yield(), 0);
        if (fegetround() != mode) {
            return -EFAULT;
        }
    }
    fesetround(FE_TONEAREST);
    return 0;
}

SIMUL_TASK_TEST(fp_rounding_mode_kept_across_switches)
{
    (void)arg;
    simul_task *t[3];
    assert_int_equal(simul_task_spawn(&t[0], rounding_task, (void *)(intptr_t)FE_DOWNWARD, NULL),
                     0);
    assert_int_equal(simul_task_spawn(&t[1], rounding_task, (void *)(intptr_t)FE_UPWARD, NULL), 0);
    assert_int_equal(simul_task_spawn(&t[2], rounding_task, (void *)(intptr_t)FE_TOWARDZERO, NULL),
                     0);
    int results[3];
    assert_int_equal(simul_gather(t, 3, results), 0);
    assert_int_equal(fegetround(), FE_TONEAREST);
    return 0;
}

/* ---- suspending outside a task: -EPERM --------------------------------------------------- */

typedef struct eperm_calls {
    int sleep, sleep_until, yield, join, await, wait, next;
} eperm_calls;

static void try_suspending_calls(eperm_calls *c, simul_task *t, simul_future *f,
                                 simul_as_completed *ac)
{
    c->sleep = simul_sleep(0.001);
    c->sleep_until = simul_sleep_until_ns(simul_now_ns() + 1000000);
    c->yield = simul_yield();
    int r = 0;
    c->join = simul_task_join(t, &r);
    c->await = simul_future_await(f, &r, NULL);
    c->wait = simul_wait(&t, 1, SIMUL_ALL_COMPLETED, 0.001);
    simul_task *done = NULL;
    c->next = simul_as_completed_next(ac, &done);
}

static void assert_all_eperm(const eperm_calls *c)
{
    assert_int_equal(c->sleep, -EPERM);
    assert_int_equal(c->sleep_until, -EPERM);
    assert_int_equal(c->yield, -EPERM);
    assert_int_equal(c->join, -EPERM);
    assert_int_equal(c->await, -EPERM);
    assert_int_equal(c->wait, -EPERM);
    assert_int_equal(c->next, -EPERM);
}

static struct {
    simul_task *t;
    simul_future *f;
    simul_as_completed *ac;
    eperm_calls calls;
} from_cb;

static void eperm_cb(void *arg)
{
    try_suspending_calls(&from_cb.calls, from_cb.t, from_cb.f, from_cb.ac);
    simul_loop_stop(arg);
}

static void suspending_outside_task_eperm(void **state)
{
    (void)state;
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    simul_task *t;
    simul_future *f;
    simul_as_completed *ac;
    assert_int_equal(simul_task_spawn(&t, return_arg, (void *)(intptr_t)5, NULL), 0);
    assert_int_equal(simul_future_new(&f), 0);
    assert_int_equal(simul_as_completed_new(&ac, &t, 1), 0);

    /* From the main thread, loop not running. */
    eperm_calls c;
    try_suspending_calls(&c, t, f, ac);
    assert_all_eperm(&c);
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 1.0), -EPERM);
    assert_int_equal(simul_scope_shield(&s), -EPERM);
    simul_group *g = NULL;
    assert_int_equal(simul_group_new(&g), -EPERM);

    /* From a callback while the loop runs. */
    from_cb.t = t;
    from_cb.f = f;
    from_cb.ac = ac;
    assert_int_equal(simul_call_soon(eperm_cb, loop, NULL), 0);
    assert_int_equal(simul_loop_run(loop), 0);
    assert_all_eperm(&from_cb.calls);

    /* Nothing was taken: the handle is still ours. */
    simul_as_completed_free(ac);
    assert_false(simul_future_done(f));
    simul_future_free(f);
    int result = 0;
    assert_int_equal(simul_loop_run_until_complete(loop, t, &result), 0);
    assert_int_equal(result, 5);
    assert_int_equal(simul_task_count(), 0);
    assert_int_equal(simul_loop_close(loop), 0);
}

/* ---- sleep ------------------------------------------------------------------------------- */

SIMUL_TASK_TEST(sleep_invalid_einval)
{
    (void)arg;
    double t0 = test_clock();
    assert_int_equal(simul_sleep(-0.01), -EINVAL);
    assert_int_equal(simul_sleep(-INFINITY), -EINVAL);
    assert_int_equal(simul_sleep(NAN), -EINVAL);
    assert_true(test_clock() - t0 < 1.0); /* no sleep at all; 0.05 s was a preemption's reach */
    return 0;
}

SIMUL_TASK_TEST(sleep_zero)
{
    (void)arg;
    double t0 = test_clock();
    for (int i = 0; i < 100; i++) {
        assert_int_equal(simul_sleep(0), 0);
    }
    assert_true(test_clock() - t0 < 0.5);
    return 0;
}

SIMUL_TASK_TEST(sleep_accuracy)
{
    (void)arg;
    double t0 = test_clock();
    double n0 = simul_now();
    assert_int_equal(simul_sleep(0.05), 0);
    double elapsed = test_clock() - t0;
    print_message("sleep(0.05) took %.4f s\n", elapsed);
    assert_true(elapsed >= 0.05);
    assert_true(elapsed < 0.5);
    assert_true(simul_now() - n0 >= 0.05);
    /* Absolute form. */
    int64_t when = simul_now_ns() + 30 * 1000000LL;
    assert_int_equal(simul_sleep_until_ns(when), 0);
    assert_true(simul_now_ns() >= when);
    /* A time in the past returns at once. */
    t0 = test_clock();
    assert_int_equal(simul_sleep_until_ns(simul_now_ns() - 1000000000LL), 0);
    assert_true(test_clock() - t0 < 0.5); /* not the 1 s it is past; 0.1 s: a preemption's reach */
    return 0;
}

/* ---- simul_run ------------------------------------------------------------------------- */

static int main_returns(void *arg)
{
    assert_string_equal(simul_task_get_name(simul_task_current()), "main");
    assert_non_null(simul_loop_current());
    assert_int_equal(simul_sleep(0.001), 0);
    return (int)(intptr_t)arg;
}

static void simul_run_returns_main_result(void **state)
{
    (void)state;
    assert_int_equal(simul_run(main_returns, (void *)(intptr_t)42), 42);
    assert_null(simul_loop_current());
    assert_int_equal(simul_run(main_returns, (void *)(intptr_t)-EIO), -EIO);
    assert_null(simul_loop_current());
}

static void simul_run_with_a_loop_fails(void **state)
{
    (void)state;
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_run(main_returns, (void *)(intptr_t)1), -EBUSY);
    assert_ptr_equal(simul_loop_current(), loop);
    assert_int_equal(simul_loop_close(loop), 0);
}

static struct {
    int started, rc, cleanup;
    int late_ran, late_rc, late_cleanup;
} left;

static int sleep_forever(void *arg)
{
    (void)arg;
    left.started = 1;
    left.rc = simul_sleep(INFINITY);
    left.cleanup = 1;
    return left.rc;
}

static int spawned_last(void *arg)
{
    (void)arg;
    left.late_ran = 1;
    left.late_rc = simul_sleep(INFINITY);
    left.late_cleanup = 1;
    return left.late_rc;
}

static int main_leaves_tasks(void *arg)
{
    (void)arg;
    assert_int_equal(simul_task_spawn(NULL, sleep_forever, NULL, NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(left.started, 1);
    assert_int_equal(simul_task_spawn(NULL, spawned_last, NULL, NULL), 0);
    return 5;
}

static void simul_run_cancels_leftover_tasks(void **state)
{
    (void)state;
    memset(&left, 0, sizeof left);
    double t0 = test_clock();
    assert_int_equal(simul_run(main_leaves_tasks, NULL), 5);
    assert_true(test_clock() - t0 < 2.0);
    assert_int_equal(left.rc, -ECANCELED);
    assert_int_equal(left.cleanup, 1);
    assert_int_equal(left.late_ran, 1); /* the function always runs */
    assert_int_equal(left.late_rc, -ECANCELED);
    assert_int_equal(left.late_cleanup, 1);
    assert_null(simul_loop_current());
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(spawn_join_result),
    cmocka_unit_test(join_failing_task),
    cmocka_unit_test(join_twice_einval),
    cmocka_unit_test(join_after_detach_einval),
    cmocka_unit_test(join_self_edeadlk),
    cmocka_unit_test(detach_runs_on),
    cmocka_unit_test(spawn_null_fn_einval),
    cmocka_unit_test(task_names),
    cmocka_unit_test(task_ids_unique),
    cmocka_unit_test(task_current_inside_and_in_callbacks),
    cmocka_unit_test(task_current_null_outside_loop),
    cmocka_unit_test(task_count_and_foreach),
    cmocka_unit_test(foreach_without_loop_enxio),
    cmocka_unit_test(hundred_thousand_sleeping_tasks),
    cmocka_unit_test(yield_round_robin),
    cmocka_unit_test(yielding_cpu_work_does_not_hold_timers_back),
    cmocka_unit_test(tasks_have_separate_stacks),
    cmocka_unit_test(fp_rounding_mode_kept_across_switches),
    cmocka_unit_test(suspending_outside_task_eperm),
    cmocka_unit_test(sleep_invalid_einval),
    cmocka_unit_test(sleep_zero),
    cmocka_unit_test(sleep_accuracy),
    cmocka_unit_test(simul_run_returns_main_result),
    cmocka_unit_test(simul_run_with_a_loop_fails),
    cmocka_unit_test(simul_run_cancels_leftover_tasks),
};

SIMUL_TEST_MAIN("test_task", tests)
