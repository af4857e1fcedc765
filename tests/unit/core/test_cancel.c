/* test_cancel.c — cancellation: every kind of suspension point returns -ECANCELED and the task's
 * clean-up runs; level-triggered delivery; checkpoint; shield scopes; cancel before the first
 * run and after the end; cancellation racing a completion resumes the task exactly once.
 */
#include "test_main_helpers.h"

/* What a cancelled target saw. */
typedef struct probe {
    volatile int suspending; /* set just before the suspending call under test */
    int rc;                  /* what that call returned */
    int cleanup;             /* the code after it ran */
    int checks;              /* target-specific checks that passed */
} probe;

static int return_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

/* What a cancel cuts short, and the bound of a wait for state: never reached on any machine.
 * "Cut by the cancel, not run to its course" is then elapsed < LONG / 2, a margin no load eats (a
 * loaded 2-core machine stalled processes 100-650 ms); before, 10 s waits against a 1 s bound. */
#define LONG 60.0

/* Yields until *flag is set (bounded). */
static void yield_until(const volatile int *flag)
{
    double end = test_clock() + LONG;
    while (!*flag && test_clock() < end) {
        assert_int_equal(simul_yield(), 0);
    }
    assert_true(*flag);
}

/* Spawns target(p), lets it reach its suspension point and settle, cancels it, joins it, and
 * checks the common contract: the call returned -ECANCELED, the clean-up ran, the task's result
 * is what it returned, and all of this happened promptly. */
static void cancel_case(simul_task_fn target, probe *p, int expected_checks)
{
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, target, p, NULL), 0);
    yield_until(&p->suspending);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_false(simul_task_done(t));
    assert_int_equal(p->cleanup, 0);
    double t0 = test_clock();
    assert_false(simul_task_cancel_requested(t));
    assert_int_equal(simul_task_cancel(t), 0);
    assert_true(simul_task_cancel_requested(t));
    assert_int_equal(simul_task_cancel(t), 0); /* twice is harmless */
    int result = 0;
    assert_int_equal(simul_task_join(t, &result), 0);
    assert_true(test_clock() - t0 < LONG / 2); /* cut by the cancel: the waits take LONG */
    assert_int_equal(p->rc, -ECANCELED);
    assert_int_equal(p->cleanup, 1);
    assert_int_equal(p->checks, expected_checks);
    assert_int_equal(result, -ECANCELED);
    /* Let detached leftovers (if any) finish. */
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(simul_task_count(), 1);
}

/* ---- one test per kind of suspension point ------------------------------------------------ */

static int at_sleep(void *arg)
{
    probe *p = arg;
    p->suspending = 1;
    p->rc = simul_sleep(LONG);
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_during_sleep)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_sleep, &p, 0);
    return 0;
}

static int at_sleep_until(void *arg)
{
    probe *p = arg;
    p->suspending = 1;
    p->rc = simul_sleep_until_ns(simul_now_ns() + (int64_t)(LONG * 1e9));
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_during_sleep_until)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_sleep_until, &p, 0);
    return 0;
}

static int at_yield(void *arg)
{
    probe *p = arg;
    int rc = 0, swallowed = 0;
    double end = test_clock() + LONG;
    while (rc == 0 && test_clock() < end) {
        p->suspending = 1;
        rc = simul_yield();
        /* The yield in progress when the cancel came must report it, not return 0. */
        if (rc == 0 && simul_task_cancel_requested(simul_task_current())) {
            swallowed++;
        }
    }
    p->rc = rc;
    p->cleanup = 1;
    p->checks += swallowed == 0;
    return rc;
}

SIMUL_TASK_TEST(cancel_during_yield)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_yield, &p, 1);
    return 0;
}

static int at_join(void *arg)
{
    probe *p = arg;
    gc_probe g = {0};
    simul_task *gc;
    assert_int_equal(simul_task_spawn(&gc, gc_sleeper, &g, NULL), 0);
    p->suspending = 1;
    int r = 0;
    p->rc = simul_task_join(gc, &r);
    /* Cancelling a joiner never cancels the joined task; the handle is still ours. */
    p->checks += !simul_task_done(gc) && !simul_task_cancel_requested(gc);
    simul_scope sh;
    assert_int_equal(simul_scope_shield(&sh), 0);
    assert_int_equal(simul_task_cancel(gc), 0);
    assert_int_equal(simul_task_join(gc, &r), 0);
    assert_int_equal(simul_scope_end(&sh), 0);
    p->checks += r == -ECANCELED && g.cleanup == 1;
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_during_join)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_join, &p, 2);
    return 0;
}

static int at_future_await(void *arg)
{
    probe *p = arg;
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    p->suspending = 1;
    int r = 777;
    void *v = &r;
    p->rc = simul_future_await(f, &r, &v);
    p->checks += !simul_future_done(f); /* the future is not touched */
    p->checks += r == 777;
    simul_future_free(f);
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_during_future_await)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_future_await, &p, 2);
    return 0;
}

static int at_gather(void *arg)
{
    probe *p = arg;
    gc_probe g[2] = {{0}};
    simul_task *gc[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simul_task_spawn(&gc[i], gc_sleeper, &g[i], NULL), 0);
    }
    p->suspending = 1;
    int results[2] = {0, 0};
    p->rc = simul_gather(gc, 2, results);
    /* gather cancelled the children, waited for them and joined them. */
    for (int i = 0; i < 2; i++) {
        p->checks += g[i].started && g[i].rc == -ECANCELED && g[i].cleanup;
    }
    p->checks += simul_task_count() == 2;
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_during_gather)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_gather, &p, 3);
    return 0;
}

static int at_wait(void *arg)
{
    probe *p = arg;
    gc_probe g = {0};
    simul_task *gc;
    assert_int_equal(simul_task_spawn(&gc, gc_sleeper, &g, NULL), 0);
    p->suspending = 1;
    p->rc = simul_wait(&gc, 1, SIMUL_ALL_COMPLETED, INFINITY);
    /* wait cancels nothing. */
    p->checks += !simul_task_done(gc) && !simul_task_cancel_requested(gc);
    simul_scope sh;
    assert_int_equal(simul_scope_shield(&sh), 0);
    assert_int_equal(simul_task_cancel(gc), 0);
    int r = 0;
    assert_int_equal(simul_task_join(gc, &r), 0);
    assert_int_equal(simul_scope_end(&sh), 0);
    p->checks += r == -ECANCELED;
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_during_wait)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_wait, &p, 2);
    return 0;
}

static int at_wait_for(void *arg)
{
    probe *p = arg;
    gc_probe g = {0};
    simul_task *gc;
    assert_int_equal(simul_task_spawn(&gc, gc_sleeper, &g, NULL), 0);
    p->suspending = 1;
    int r = 0;
    p->rc = simul_wait_for(gc, LONG, &r);
    /* The inner task was cancelled, waited for and joined. */
    p->checks += r == -ECANCELED && g.rc == -ECANCELED && g.cleanup;
    p->checks += simul_task_count() == 2;
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_during_wait_for)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_wait_for, &p, 2);
    return 0;
}

static int at_as_completed_next(void *arg)
{
    probe *p = arg;
    gc_probe g[2] = {{0}};
    simul_task *gc[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simul_task_spawn(&gc[i], gc_sleeper, &g[i], NULL), 0);
    }
    simul_as_completed *ac;
    assert_int_equal(simul_as_completed_new(&ac, gc, 2), 0);
    p->suspending = 1;
    simul_task *done = NULL;
    p->rc = simul_as_completed_next(ac, &done);
    p->checks += done == NULL; /* nothing handed back */
    p->checks += !simul_task_cancel_requested(gc[0]) && !simul_task_cancel_requested(gc[1]);
    simul_as_completed_free(ac);
    simul_scope sh;
    assert_int_equal(simul_scope_shield(&sh), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simul_task_cancel(gc[i]), 0);
        assert_int_equal(simul_task_join(gc[i], NULL), 0);
    }
    assert_int_equal(simul_scope_end(&sh), 0);
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_during_as_completed_next)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_as_completed_next, &p, 2);
    return 0;
}

static int at_group_join(void *arg)
{
    probe *p = arg;
    gc_probe g[2] = {{0}};
    simul_group *grp;
    assert_int_equal(simul_group_new(&grp), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simul_group_spawn(grp, gc_sleeper, &g[i], NULL), 0);
    }
    p->suspending = 1;
    int first_error = 12345;
    p->rc = simul_group_join(grp, &first_error);
    /* The children were cancelled and reaped before group_join returned. */
    for (int i = 0; i < 2; i++) {
        p->checks += g[i].rc == -ECANCELED && g[i].cleanup;
    }
    p->checks += simul_task_count() == 2;
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_during_group_join)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_group_join, &p, 3);
    return 0;
}

static int at_sleep_in_deadline_scope(void *arg)
{
    probe *p = arg;
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, LONG), 0);
    p->suspending = 1;
    p->rc = simul_sleep(LONG);
    p->checks += simul_scope_end(&s) == 0; /* the deadline did not expire */
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_during_sleep_in_deadline_scope)
{
    (void)arg;
    probe p = {0};
    cancel_case(at_sleep_in_deadline_scope, &p, 1);
    return 0;
}

/* ---- level-triggered delivery ------------------------------------------------------------- */

static int level_target(void *arg)
{
    probe *p = arg;
    p->suspending = 1;
    p->rc = simul_sleep(LONG);
    double t0 = test_clock();
    /* Every later suspending call returns -ECANCELED at once. */
    assert_int_equal(simul_sleep(0), -ECANCELED);
    assert_int_equal(simul_yield(), -ECANCELED);
    assert_int_equal(simul_sleep(60.0), -ECANCELED);
    assert_int_equal(simul_sleep_until_ns(simul_now_ns() + 60000000000LL), -ECANCELED);
    assert_int_equal(simul_checkpoint(), -ECANCELED);
    assert_true(simul_task_cancel_requested(simul_task_current()));
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    assert_int_equal(simul_future_set_result(f, 9, NULL), 0);
    int r = 0;
    assert_int_equal(simul_future_await(f, &r, NULL), -ECANCELED); /* even though it is done */
    assert_int_equal(r, 0);
    simul_future_free(f);
    simul_task *gc;
    assert_int_equal(simul_task_spawn(&gc, return_arg, (void *)(intptr_t)4, NULL), 0);
    assert_int_equal(simul_task_join(gc, &r), -ECANCELED);
    assert_int_equal(simul_wait(&gc, 1, SIMUL_ALL_COMPLETED, INFINITY), -ECANCELED);
    assert_int_equal(simul_task_detach(gc), 0); /* the handle was still ours */
    assert_true(test_clock() - t0 < 30.0);      /* each of those would take 60 s */
    p->checks = 1;
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_is_level_triggered)
{
    (void)arg;
    probe p = {0};
    cancel_case(level_target, &p, 1);
    return 0;
}

SIMUL_TASK_TEST(cancel_self_then_checkpoint)
{
    (void)arg;
    assert_int_equal(simul_checkpoint(), 0);
    assert_int_equal(simul_task_cancel(simul_task_current()), 0);
    assert_true(simul_task_cancel_requested(simul_task_current()));
    assert_int_equal(simul_checkpoint(), -ECANCELED);
    assert_int_equal(simul_checkpoint(), -ECANCELED);
    assert_int_equal(simul_sleep(0.01), -ECANCELED);
    return 0;
}

/* A CPU loop that polls checkpoint notices a cancel requested by a callback. */
static void cancel_cb(void *arg)
{
    simul_task_cancel(arg);
}

SIMUL_TASK_TEST(checkpoint_sees_cancel_from_callback)
{
    (void)arg;
    assert_int_equal(simul_call_soon(cancel_cb, simul_task_current(), NULL), 0);
    assert_int_equal(simul_checkpoint(), 0); /* the callback has not run yet */
    double t0 = test_clock();
    assert_int_equal(simul_sleep(60.0), -ECANCELED);
    assert_true(test_clock() - t0 < 30.0); /* at once, not after 60 s, on any machine's load */
    assert_int_equal(simul_checkpoint(), -ECANCELED);
    return 0;
}

/* ---- shield --------------------------------------------------------------------------------- */

static int shielded_target(void *arg)
{
    probe *p = arg;
    simul_scope sh;
    assert_int_equal(simul_scope_shield(&sh), 0);
    p->suspending = 1;
    double t0 = test_clock();
    int rc = simul_sleep(0.05);
    double elapsed = test_clock() - t0;
    p->checks += rc == 0 && elapsed >= 0.05;
    p->checks += simul_task_cancel_requested(simul_task_current());
    p->checks += simul_checkpoint() == 0;
    p->checks += simul_yield() == 0;
    p->checks += simul_scope_end(&sh) == 0;
    /* Delivered at the next suspending call after the shield. */
    p->rc = simul_sleep(0);
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(shield_holds_back_cancel)
{
    (void)arg;
    probe p = {0};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, shielded_target, &p, NULL), 0);
    yield_until(&p.suspending);
    assert_int_equal(simul_task_cancel(t), 0); /* lands during the shielded sleep */
    int result = 0;
    assert_int_equal(simul_task_join(t, &result), 0);
    assert_int_equal(p.checks, 5);
    assert_int_equal(p.rc, -ECANCELED);
    assert_int_equal(result, -ECANCELED);
    return 0;
}

SIMUL_TASK_TEST(deadline_inside_shield_still_applies)
{
    (void)arg;
    assert_int_equal(simul_task_cancel(simul_task_current()), 0);
    simul_scope sh, dl;
    assert_int_equal(simul_scope_shield(&sh), 0);
    double t0 = test_clock(); /* before the deadline is armed: a stall between cannot fake "early" */
    assert_int_equal(simul_scope_timeout(&dl, 0.02), 0);
    assert_int_equal(simul_sleep(60.0), -ETIMEDOUT);
    double elapsed = test_clock() - t0;
    assert_true(elapsed >= 0.02);
    assert_true(elapsed < 30.0); /* cut at the deadline, not after 60 s, on any machine's load */
    assert_int_equal(simul_checkpoint(), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&dl), 1);
    assert_int_equal(simul_sleep(0), 0); /* still shielded from the cancel */
    assert_int_equal(simul_scope_end(&sh), 0);
    assert_int_equal(simul_sleep(0), -ECANCELED);
    return 0;
}

/* ---- cancel before the first run / after the end ------------------------------------------ */

static int first_run_probe(void *arg)
{
    probe *p = arg;
    p->checks += simul_task_cancel_requested(simul_task_current());
    p->checks += simul_checkpoint() == -ECANCELED;
    p->rc = simul_sleep(0);
    p->cleanup = 1;
    return p->rc;
}

SIMUL_TASK_TEST(cancel_before_first_run)
{
    (void)arg;
    probe p = {0};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, first_run_probe, &p, NULL), 0);
    assert_int_equal(simul_task_cancel(t), 0);
    assert_int_equal(p.cleanup, 0);
    int result = 0;
    assert_int_equal(simul_task_join(t, &result), 0);
    assert_int_equal(p.cleanup, 1); /* the function still ran */
    assert_int_equal(p.checks, 2);
    assert_int_equal(p.rc, -ECANCELED);
    assert_int_equal(result, -ECANCELED);
    return 0;
}

SIMUL_TASK_TEST(cancel_finished_task_does_nothing)
{
    (void)arg;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, return_arg, (void *)(intptr_t)3, NULL), 0);
    assert_int_equal(simul_wait(&t, 1, SIMUL_ALL_COMPLETED, INFINITY), 1);
    assert_true(simul_task_done(t));
    assert_int_equal(simul_task_cancel(t), 0);
    assert_false(simul_task_cancel_requested(t));
    int result = 0;
    assert_int_equal(simul_task_join(t, &result), 0);
    assert_int_equal(result, 3);
    return 0;
}

/* ---- cancellation racing completion: resumed exactly once ---------------------------------- */

static struct {
    simul_future *f;
    simul_task *t;
    int value;
} race;

static void complete_then_cancel(void *arg)
{
    (void)arg;
    assert_int_equal(simul_future_set_result(race.f, 5, &race.value), 0);
    assert_int_equal(simul_task_cancel(race.t), 0);
}

static void cancel_then_complete(void *arg)
{
    (void)arg;
    assert_int_equal(simul_task_cancel(race.t), 0);
    assert_int_equal(simul_future_set_result(race.f, 5, &race.value), 0);
}

/* After the racy resume, a shielded 20 ms sleep must last 20 ms: a second (stray) resume would
 * cut it short. */
static void assert_no_stray_resume(void)
{
    simul_scope sh;
    assert_int_equal(simul_scope_shield(&sh), 0);
    double t0 = test_clock();
    assert_int_equal(simul_sleep(0.02), 0);
    assert_true(test_clock() - t0 >= 0.02);
    assert_int_equal(simul_scope_end(&sh), 0);
}

static int race_awaiter(void *arg)
{
    probe *p = arg;
    int r = 0;
    void *v = NULL;
    p->suspending = 1;
    int rc = simul_future_await(race.f, &r, &v);
    p->checks = rc == 0 ? (r == 5 && v == &race.value) : -1;
    p->rc = rc;
    assert_no_stray_resume();
    p->cleanup = simul_sleep(0); /* the cancel is still pending: -ECANCELED */
    return rc;
}

static void race_case(simul_callback cb, int expect_rc)
{
    probe p = {0};
    race.value = 99;
    assert_int_equal(simul_future_new(&race.f), 0);
    assert_int_equal(simul_task_spawn(&race.t, race_awaiter, &p, NULL), 0);
    yield_until(&p.suspending);
    assert_int_equal(simul_call_later(0.01, cb, NULL, NULL), 0);
    int result = 1;
    assert_int_equal(simul_task_join(race.t, &result), 0);
    assert_int_equal(p.rc, expect_rc);
    assert_int_equal(result, expect_rc);
    if (expect_rc == 0) {
        assert_int_equal(p.checks, 1);
    }
    assert_int_equal(p.cleanup, -ECANCELED);
    /* Either way the future holds the result. */
    int r = 0;
    void *v = NULL;
    assert_int_equal(simul_future_result(race.f, &r, &v), 0);
    assert_int_equal(r, 5);
    assert_ptr_equal(v, &race.value);
    simul_future_free(race.f);
}

SIMUL_TASK_TEST(cancel_and_completion_same_pass_completion_wins)
{
    (void)arg;
    race_case(complete_then_cancel, 0);
    return 0;
}

SIMUL_TASK_TEST(cancel_then_completion_same_pass_cancel_wins)
{
    (void)arg;
    race_case(cancel_then_complete, -ECANCELED);
    return 0;
}

/* A sleep whose deadline is the same instant as a callback that cancels the sleeper: either
 * answer is fine, but exactly one, and the cancel is never lost. */
static struct {
    int64_t when;
    int rc;
    int next_rc;
    volatile int armed;
} tr;

static int timer_racer(void *arg)
{
    (void)arg;
    tr.armed = 1;
    tr.rc = simul_sleep_until_ns(tr.when);
    assert_no_stray_resume();
    tr.next_rc = simul_sleep(0);
    return tr.rc;
}

SIMUL_TASK_TEST(cancel_and_timer_same_deadline_resume_once)
{
    (void)arg;
    tr.when = simul_now_ns() + 20 * 1000000LL;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, timer_racer, NULL, NULL), 0);
    yield_until(&tr.armed);
    assert_int_equal(simul_call_at_ns(tr.when, cancel_cb, t, NULL), 0);
    int result = 1;
    assert_int_equal(simul_task_join(t, &result), 0);
    print_message("sleep racing a cancel at the same deadline returned %d\n", tr.rc);
    assert_true(tr.rc == 0 || tr.rc == -ECANCELED);
    assert_int_equal(result, tr.rc);
    assert_int_equal(tr.next_rc, -ECANCELED);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(cancel_during_sleep),
    cmocka_unit_test(cancel_during_sleep_until),
    cmocka_unit_test(cancel_during_yield),
    cmocka_unit_test(cancel_during_join),
    cmocka_unit_test(cancel_during_future_await),
    cmocka_unit_test(cancel_during_gather),
    cmocka_unit_test(cancel_during_wait),
    cmocka_unit_test(cancel_during_wait_for),
    cmocka_unit_test(cancel_during_as_completed_next),
    cmocka_unit_test(cancel_during_group_join),
    cmocka_unit_test(cancel_during_sleep_in_deadline_scope),
    cmocka_unit_test(cancel_is_level_triggered),
    cmocka_unit_test(cancel_self_then_checkpoint),
    cmocka_unit_test(checkpoint_sees_cancel_from_callback),
    cmocka_unit_test(shield_holds_back_cancel),
    cmocka_unit_test(deadline_inside_shield_still_applies),
    cmocka_unit_test(cancel_before_first_run),
    cmocka_unit_test(cancel_finished_task_does_nothing),
    cmocka_unit_test(cancel_and_completion_same_pass_completion_wins),
    cmocka_unit_test(cancel_then_completion_same_pass_cancel_wins),
    cmocka_unit_test(cancel_and_timer_same_deadline_resume_once),
};

SIMUL_TEST_MAIN("test_cancel", tests)
