/* test_deadline.c — deadline scopes (expiry, nesting, ordering rules, shields) and the timeouts
 * of wait_for, wait, join, gather, group_join and future_await.
 */
#include "test_main_helpers.h"

static int sleep_then_return(void *arg)
{
    int rc = simul_sleep(0.01);
    return rc < 0 ? rc : (int)(intptr_t)arg;
}

static void assert_elapsed(double t0, double lo, double hi)
{
    double e = test_clock() - t0;
    if (e < lo || e >= hi) {
        fail_msg("elapsed %.4f s, expected in [%.3f, %.3f)", e, lo, hi);
    }
}

/* What a deadline cuts short, and the deadline of a scope that must not expire: never reached on
 * any machine. "Cut at the deadline, not run to its course" is then elapsed < LONG / 2, a margin
 * no load eats (a loaded 2-core machine took 2.5 s to wake a 20 ms deadline); the lower bounds
 * (never before the deadline) hold on any machine. */
#define LONG 60.0

/* ---- scopes ----------------------------------------------------------------------------- */

SIMUL_TASK_TEST(scope_timeout_expires)
{
    (void)arg;
    simul_scope s;
    double t0 = test_clock();
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    assert_int_equal(simul_checkpoint(), 0);
    assert_int_equal(simul_sleep(LONG), -ETIMEDOUT);
    assert_elapsed(t0, 0.02, LONG / 2);
    /* Level-triggered until the scope ends. */
    t0 = test_clock();
    assert_int_equal(simul_sleep(0), -ETIMEDOUT);
    assert_int_equal(simul_yield(), -ETIMEDOUT);
    assert_int_equal(simul_sleep(LONG), -ETIMEDOUT);
    assert_int_equal(simul_checkpoint(), -ETIMEDOUT);
    assert_elapsed(t0, 0, LONG / 2); /* at once, not after LONG */
    assert_int_equal(simul_scope_end(&s), 1);
    /* A timeout is not a cancellation. */
    assert_false(simul_task_cancel_requested(simul_task_current()));
    assert_int_equal(simul_checkpoint(), 0);
    assert_int_equal(simul_sleep(0), 0);
    return 0;
}

SIMUL_TASK_TEST(scope_timeout_not_expiring)
{
    (void)arg;
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, LONG), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_yield(), 0);
    assert_int_equal(simul_scope_end(&s), 0);
    /* INFINITY never expires. */
    assert_int_equal(simul_scope_timeout(&s, INFINITY), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_scope_end(&s), 0);
    /* Ending a scope before its deadline: its timer must not fire later. 10 ms, so the sleep
     * below outlasts it; a stall between begin and end cannot expire it (a scope expires only at
     * a suspension point or checkpoint of its task, and there is none in between). */
    assert_int_equal(simul_scope_timeout(&s, 0.01), 0);
    assert_int_equal(simul_scope_end(&s), 0);
    assert_int_equal(simul_sleep(0.03), 0);
    return 0;
}

SIMUL_TASK_TEST(scope_deadline_ns_absolute)
{
    (void)arg;
    simul_scope s;
    assert_int_equal(simul_scope_deadline_ns(&s, simul_now_ns() + 20 * 1000000LL), 0);
    double t0 = test_clock();
    assert_int_equal(simul_sleep(LONG), -ETIMEDOUT);
    assert_elapsed(t0, 0.02, LONG / 2);
    assert_int_equal(simul_scope_end(&s), 1);
    /* A deadline already past: the next suspending call times out at once. */
    assert_int_equal(simul_scope_deadline_ns(&s, simul_now_ns() - 1000000LL), 0);
    assert_int_equal(simul_checkpoint(), -ETIMEDOUT);
    t0 = test_clock();
    assert_int_equal(simul_sleep(LONG), -ETIMEDOUT);
    assert_elapsed(t0, 0, LONG / 2);
    assert_int_equal(simul_scope_end(&s), 1);
    return 0;
}

SIMUL_TASK_TEST(nested_inner_shorter)
{
    (void)arg;
    simul_scope outer, inner;
    assert_int_equal(simul_scope_timeout(&outer, LONG), 0);
    double t0 = test_clock();
    assert_int_equal(simul_scope_timeout(&inner, 0.02), 0);
    assert_int_equal(simul_sleep(LONG), -ETIMEDOUT);
    assert_elapsed(t0, 0.02, LONG / 2);
    assert_int_equal(simul_scope_end(&inner), 1);
    assert_int_equal(simul_sleep(0.01), 0); /* the outer one has time left */
    assert_int_equal(simul_scope_end(&outer), 0);
    return 0;
}

SIMUL_TASK_TEST(nested_outer_shorter)
{
    (void)arg;
    simul_scope outer, inner;
    double t0 = test_clock();
    assert_int_equal(simul_scope_timeout(&outer, 0.02), 0);
    assert_int_equal(simul_scope_timeout(&inner, LONG), 0);
    assert_int_equal(simul_sleep(LONG), -ETIMEDOUT);
    assert_elapsed(t0, 0.02, LONG / 2);
    assert_int_equal(simul_scope_end(&inner), 0); /* its own deadline did not expire */
    assert_int_equal(simul_sleep(0), -ETIMEDOUT); /* the outer one did */
    assert_int_equal(simul_scope_end(&outer), 1);
    assert_int_equal(simul_sleep(0), 0);
    return 0;
}

SIMUL_TASK_TEST(scope_end_out_of_order_einval)
{
    (void)arg;
    simul_scope outer, inner;
    assert_int_equal(simul_scope_timeout(&outer, LONG), 0);
    assert_int_equal(simul_scope_shield(&inner), 0);
    assert_int_equal(simul_scope_end(&outer), -EINVAL);
    assert_int_equal(simul_scope_end(&inner), 0);
    assert_int_equal(simul_scope_end(&inner), -EINVAL); /* already ended */
    assert_int_equal(simul_scope_end(&outer), 0);
    assert_int_equal(simul_scope_end(&outer), -EINVAL);
    return 0;
}

typedef struct foreign_end {
    simul_scope *s;
    int rc;
} foreign_end;

static int end_foreign_scope(void *arg)
{
    foreign_end *fe = arg;
    fe->rc = simul_scope_end(fe->s);
    return 0;
}

/* Scopes end in the task that began them. */
SIMUL_TASK_TEST(scope_end_from_other_task_einval)
{
    (void)arg;
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, LONG), 0);
    foreign_end fe = {.s = &s, .rc = 1};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, end_foreign_scope, &fe, NULL), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(fe.rc, -EINVAL);
    assert_int_equal(simul_scope_end(&s), 0);
    return 0;
}

SIMUL_TASK_TEST(scope_invalid_timeout_einval)
{
    (void)arg;
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, NAN), -EINVAL);
    assert_int_equal(simul_scope_timeout(&s, -0.5), -EINVAL);
    assert_int_equal(simul_scope_timeout(&s, -INFINITY), -EINVAL);
    /* Nothing began. */
    simul_scope good;
    assert_int_equal(simul_scope_timeout(&good, LONG), 0);
    assert_int_equal(simul_scope_end(&good), 0);
    assert_int_equal(simul_sleep(0), 0);
    return 0;
}

SIMUL_TASK_TEST(shield_holds_back_outer_deadline)
{
    (void)arg;
    simul_scope outer, sh;
    double t0 = test_clock();
    assert_int_equal(simul_scope_timeout(&outer, 0.01), 0);
    assert_int_equal(simul_scope_shield(&sh), 0);
    assert_int_equal(simul_sleep(0.05), 0);
    assert_elapsed(t0, 0.05, LONG / 2);
    assert_int_equal(simul_checkpoint(), 0);
    assert_int_equal(simul_scope_end(&sh), 0);
    assert_int_equal(simul_checkpoint(), -ETIMEDOUT);
    assert_int_equal(simul_sleep(0), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&outer), 1);
    return 0;
}

/* ---- wait_for --------------------------------------------------------------------------- */

SIMUL_TASK_TEST(wait_for_timeout_cancels_inner)
{
    (void)arg;
    gc_probe g = {0};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, gc_sleeper, &g, NULL), 0);
    int result = 0;
    double t0 = test_clock();
    assert_int_equal(simul_wait_for(t, 0.02, &result), -ETIMEDOUT);
    assert_elapsed(t0, 0.02, LONG / 2);
    assert_int_equal(g.started, 1);
    assert_int_equal(g.rc, -ECANCELED);
    assert_int_equal(g.cleanup, 1);
    assert_int_equal(result, -ECANCELED);
    assert_int_equal(simul_task_count(), 1); /* joined and gone */
    /* The caller was not cancelled. */
    assert_false(simul_task_cancel_requested(simul_task_current()));
    assert_int_equal(simul_sleep(0), 0);
    return 0;
}

SIMUL_TASK_TEST(wait_for_success)
{
    (void)arg;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sleep_then_return, (void *)(intptr_t)9, NULL), 0);
    int result = 0;
    assert_int_equal(simul_wait_for(t, LONG, &result), 0);
    assert_int_equal(result, 9);
    /* A failing task within the time: 0, with its failure in *result. */
    assert_int_equal(simul_task_spawn(&t, sleep_then_return, (void *)(intptr_t)-EIO, NULL), 0);
    assert_int_equal(simul_wait_for(t, INFINITY, &result), 0);
    assert_int_equal(result, -EIO);
    assert_int_equal(simul_task_count(), 1);
    return 0;
}

/* The inner task's timer and the caller's deadline fall due in the same pass: whichever answer
 * wait_for gives, the task's result is not lost (asyncio's wait_for once lost it). */
static int64_t race_when;
static volatile int race_armed;
static int race_ret;

static int sleep_until_race_then_7(void *arg)
{
    (void)arg;
    race_armed = 1;
    int rc = simul_sleep_until_ns(race_when);
    race_ret = rc < 0 ? rc : 7;
    return race_ret;
}

SIMUL_TASK_TEST(wait_for_deadline_racing_completion_keeps_result)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        race_when = simul_now_ns() + 5 * 1000000LL;
        race_armed = 0;
        race_ret = 1;
        simul_task *t;
        assert_int_equal(simul_task_spawn(&t, sleep_until_race_then_7, NULL, NULL), 0);
        while (!race_armed) {
            assert_int_equal(simul_yield(), 0);
        }
        simul_scope s;
        assert_int_equal(simul_scope_deadline_ns(&s, race_when), 0);
        int result = 12345;
        int rc = simul_wait_for(t, INFINITY, &result);
        int expired = simul_scope_end(&s);
        if (i == 0) {
            print_message("wait_for racing its task's completion: rc %d, result %d\n", rc, result);
        }
        assert_true(rc == 0 || rc == -ETIMEDOUT);
        assert_int_equal(expired, 1);
        assert_int_equal(result, race_ret); /* what the task really returned */
        if (rc == 0) {
            assert_int_equal(result, 7);
        }
        assert_int_equal(simul_task_count(), 1);
    }
    return 0;
}

SIMUL_TASK_TEST(wait_for_invalid_timeout_einval)
{
    (void)arg;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sleep_then_return, (void *)(intptr_t)2, NULL), 0);
    int result = 0;
    assert_int_equal(simul_wait_for(t, NAN, &result), -EINVAL);
    assert_int_equal(simul_wait_for(t, -1.0, &result), -EINVAL);
    /* The handle was not released. */
    assert_false(simul_task_cancel_requested(t));
    assert_int_equal(simul_task_join(t, &result), 0);
    assert_int_equal(result, 2);
    return 0;
}

/* ---- wait with a timeout ---------------------------------------------------------------- */

static int sleep_for(void *arg)
{
    return simul_sleep((double)(intptr_t)arg / 1000.0);
}

SIMUL_TASK_TEST(wait_timeout_returns_done_count)
{
    (void)arg;
    simul_task *t[3];
    assert_int_equal(simul_task_spawn(&t[0], sleep_for, (void *)(intptr_t)10, NULL), 0);
    assert_int_equal(simul_task_spawn(&t[1], sleep_for, (void *)(intptr_t)(LONG * 1000), NULL), 0);
    assert_int_equal(simul_task_spawn(&t[2], sleep_for, (void *)(intptr_t)(LONG * 1000), NULL), 0);
    /* t[0] is done before the wait: a machine that stalls past the 50 ms could otherwise fire
     * the wait's deadline in the same pass as t[0]'s timer, before t[0] runs to its end. */
    while (!simul_task_done(t[0]))
        assert_int_equal(simul_sleep(0.001), 0);
    double t0 = test_clock();
    assert_int_equal(simul_wait(t, 3, SIMUL_ALL_COMPLETED, 0.05), 1);
    assert_elapsed(t0, 0.05, LONG / 2);
    assert_true(simul_task_done(t[0]));
    for (int i = 1; i < 3; i++) {
        assert_false(simul_task_done(t[i]));
        assert_false(simul_task_cancel_requested(t[i])); /* wait cancels nothing */
    }
    /* Timeout 0: a poll. */
    t0 = test_clock();
    assert_int_equal(simul_wait(t, 3, SIMUL_ALL_COMPLETED, 0), 1);
    assert_elapsed(t0, 0, LONG / 2);
    /* The caller was not cancelled nor timed out. */
    assert_int_equal(simul_sleep(0), 0);
    int r = 1;
    assert_int_equal(simul_task_join(t[0], &r), 0);
    assert_int_equal(r, 0);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(simul_task_cancel(t[i]), 0);
        assert_int_equal(simul_task_join(t[i], &r), 0);
        assert_int_equal(r, -ECANCELED);
    }
    return 0;
}

SIMUL_TASK_TEST(wait_invalid_timeout_einval)
{
    (void)arg;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sleep_for, (void *)(intptr_t)1, NULL), 0);
    assert_int_equal(simul_wait(&t, 1, SIMUL_ALL_COMPLETED, NAN), -EINVAL);
    assert_int_equal(simul_wait(&t, 1, SIMUL_ALL_COMPLETED, -1.0), -EINVAL);
    assert_int_equal(simul_task_join(t, NULL), 0);
    return 0;
}

SIMUL_TASK_TEST(wait_in_expired_scope_etimedout)
{
    (void)arg;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sleep_for, (void *)(intptr_t)(LONG * 1000), NULL), 0);
    simul_scope s;
    double t0 = test_clock();
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    assert_int_equal(simul_wait(&t, 1, SIMUL_ALL_COMPLETED, INFINITY), -ETIMEDOUT);
    assert_elapsed(t0, 0.02, LONG / 2);
    assert_int_equal(simul_scope_end(&s), 1);
    assert_false(simul_task_cancel_requested(t));
    assert_int_equal(simul_task_cancel(t), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    return 0;
}

/* ---- other suspension points under a deadline ------------------------------------------ */

SIMUL_TASK_TEST(join_timeout_keeps_task)
{
    (void)arg;
    gc_probe g = {0};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, gc_sleeper, &g, NULL), 0);
    simul_scope s;
    double t0 = test_clock();
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    int r = 12345;
    assert_int_equal(simul_task_join(t, &r), -ETIMEDOUT);
    assert_elapsed(t0, 0.02, LONG / 2);
    assert_int_equal(r, 12345);
    assert_int_equal(simul_scope_end(&s), 1);
    /* The joined task runs on and the handle is still ours. */
    assert_false(simul_task_done(t));
    assert_false(simul_task_cancel_requested(t));
    assert_int_equal(simul_task_cancel(t), 0);
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(g.cleanup, 1);
    return 0;
}

SIMUL_TASK_TEST(gather_timeout_cancels_children)
{
    (void)arg;
    gc_probe g[3] = {{0}};
    simul_task *t[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_task_spawn(&t[i], gc_sleeper, &g[i], NULL), 0);
    }
    simul_scope s;
    double t0 = test_clock();
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    assert_int_equal(simul_gather(t, 3, NULL), -ETIMEDOUT);
    assert_elapsed(t0, 0.02, LONG / 2);
    assert_int_equal(simul_scope_end(&s), 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].rc, -ECANCELED);
        assert_int_equal(g[i].cleanup, 1);
    }
    assert_int_equal(simul_task_count(), 1); /* joined */
    return 0;
}

SIMUL_TASK_TEST(group_join_timeout_cancels_children)
{
    (void)arg;
    gc_probe g[3] = {{0}};
    simul_group *grp;
    assert_int_equal(simul_group_new(&grp), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_group_spawn(grp, gc_sleeper, &g[i], NULL), 0);
    }
    simul_scope s;
    double t0 = test_clock();
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    int first_error = 1;
    assert_int_equal(simul_group_join(grp, &first_error), -ETIMEDOUT);
    assert_elapsed(t0, 0.02, LONG / 2);
    assert_int_equal(simul_scope_end(&s), 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].rc, -ECANCELED);
        assert_int_equal(g[i].cleanup, 1);
    }
    assert_int_equal(simul_task_count(), 1);
    return 0;
}

SIMUL_TASK_TEST(future_await_timeout)
{
    (void)arg;
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    simul_scope s;
    double t0 = test_clock();
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    int r = 55;
    assert_int_equal(simul_future_await(f, &r, NULL), -ETIMEDOUT);
    assert_elapsed(t0, 0.02, LONG / 2);
    assert_int_equal(simul_scope_end(&s), 1);
    assert_int_equal(r, 55);
    assert_false(simul_future_done(f));
    /* Still usable. */
    assert_int_equal(simul_future_set_result(f, 6, NULL), 0);
    assert_int_equal(simul_future_await(f, &r, NULL), 0);
    assert_int_equal(r, 6);
    simul_future_free(f);
    return 0;
}

SIMUL_TASK_TEST(as_completed_next_timeout)
{
    (void)arg;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sleep_for, (void *)(intptr_t)(LONG * 1000), NULL), 0);
    simul_as_completed *ac;
    assert_int_equal(simul_as_completed_new(&ac, &t, 1), 0);
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    simul_task *done = NULL;
    assert_int_equal(simul_as_completed_next(ac, &done), -ETIMEDOUT);
    assert_null(done);
    assert_int_equal(simul_scope_end(&s), 1);
    simul_as_completed_free(ac);
    assert_int_equal(simul_task_cancel(t), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(scope_timeout_expires),
    cmocka_unit_test(scope_timeout_not_expiring),
    cmocka_unit_test(scope_deadline_ns_absolute),
    cmocka_unit_test(nested_inner_shorter),
    cmocka_unit_test(nested_outer_shorter),
    cmocka_unit_test(scope_end_out_of_order_einval),
    cmocka_unit_test(scope_end_from_other_task_einval),
    cmocka_unit_test(scope_invalid_timeout_einval),
    cmocka_unit_test(shield_holds_back_outer_deadline),
    cmocka_unit_test(wait_for_timeout_cancels_inner),
    cmocka_unit_test(wait_for_success),
    cmocka_unit_test(wait_for_deadline_racing_completion_keeps_result),
    cmocka_unit_test(wait_for_invalid_timeout_einval),
    cmocka_unit_test(wait_timeout_returns_done_count),
    cmocka_unit_test(wait_invalid_timeout_einval),
    cmocka_unit_test(wait_in_expired_scope_etimedout),
    cmocka_unit_test(join_timeout_keeps_task),
    cmocka_unit_test(gather_timeout_cancels_children),
    cmocka_unit_test(group_join_timeout_cancels_children),
    cmocka_unit_test(future_await_timeout),
    cmocka_unit_test(as_completed_next_timeout),
};

SIMUL_TEST_MAIN("test_deadline", tests)
