/* test_future.c — futures: awaiting pending and done futures, many awaiters, set/cancel once,
 * done callbacks (order, run soon, added late), non-suspending result, freeing with waiters.
 */
#include "test_main_helpers.h"

static int the_value = 1234;

static void set_11_cb(void *arg)
{
    assert_int_equal(simul_future_set_result(arg, 11, &the_value), 0);
}

SIMUL_TASK_TEST(await_pending_completed_by_callback)
{
    (void)arg;
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    assert_false(simul_future_done(f));
    double t0 = test_clock(); /* before the timer is armed: a stall between cannot fake "early" */
    assert_int_equal(simul_call_later(0.02, set_11_cb, f, NULL), 0);
    int r = 0;
    void *v = NULL;
    assert_int_equal(simul_future_await(f, &r, &v), 0);
    double elapsed = test_clock() - t0;
    assert_true(elapsed >= 0.015 && elapsed < 30.0); /* upper: not stuck (a loaded machine is late) */
    assert_int_equal(r, 11);
    assert_ptr_equal(v, &the_value);
    assert_true(simul_future_done(f));
    r = 0;
    v = NULL;
    assert_int_equal(simul_future_result(f, &r, &v), 0);
    assert_int_equal(r, 11);
    assert_ptr_equal(v, &the_value);
    simul_future_free(f);
    return 0;
}

SIMUL_TASK_TEST(await_done_future)
{
    (void)arg;
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    assert_int_equal(simul_future_set_result(f, -EIO, NULL), 0);
    assert_true(simul_future_done(f));
    int r = 0;
    void *v = &r;
    double t0 = test_clock();
    assert_int_equal(simul_future_await(f, &r, &v), 0);
    assert_true(test_clock() - t0 < 30.0); /* not stuck (no time bound survives a loaded machine) */
    assert_int_equal(r, -EIO); /* a failure result is still a successful await */
    assert_null(v);
    /* Awaiting again gives the same; result/value pointers may be NULL. */
    assert_int_equal(simul_future_await(f, NULL, NULL), 0);
    assert_int_equal(simul_future_await(f, &r, NULL), 0);
    assert_int_equal(r, -EIO);
    simul_future_free(f);
    return 0;
}

enum { AWAITERS = 50 };

typedef struct awaiter {
    simul_future *f;
    int rc, r;
    void *v;
    int next_rc;
} awaiter;

static int await_fn(void *arg)
{
    awaiter *a = arg;
    a->rc = simul_future_await(a->f, &a->r, &a->v);
    a->next_rc = simul_sleep(0);
    return a->rc;
}

SIMUL_TASK_TEST(many_awaiters)
{
    (void)arg;
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    static awaiter a[AWAITERS];
    simul_task *t[AWAITERS];
    for (int i = 0; i < AWAITERS; i++) {
        a[i] = (awaiter){.f = f, .rc = 1, .r = 0, .v = NULL, .next_rc = 1};
        assert_int_equal(simul_task_spawn(&t[i], await_fn, &a[i], NULL), 0);
    }
    assert_int_equal(simul_sleep(0.01), 0);
    for (int i = 0; i < AWAITERS; i++) {
        assert_int_equal(a[i].rc, 1); /* all still waiting */
    }
    assert_int_equal(simul_future_set_result(f, 8, &the_value), 0);
    int results[AWAITERS];
    assert_int_equal(simul_gather(t, AWAITERS, results), 0);
    for (int i = 0; i < AWAITERS; i++) {
        assert_int_equal(a[i].rc, 0);
        assert_int_equal(a[i].r, 8);
        assert_ptr_equal(a[i].v, &the_value);
        assert_int_equal(a[i].next_rc, 0);
    }
    simul_future_free(f);
    return 0;
}

SIMUL_TASK_TEST(set_twice_ealready)
{
    (void)arg;
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    assert_int_equal(simul_future_set_result(f, 1, &the_value), 0);
    assert_int_equal(simul_future_set_result(f, 2, NULL), -EALREADY);
    assert_int_equal(simul_future_cancel(f), -EALREADY);
    int r = 0;
    void *v = NULL;
    assert_int_equal(simul_future_result(f, &r, &v), 0);
    assert_int_equal(r, 1);
    assert_ptr_equal(v, &the_value);
    simul_future_free(f);
    return 0;
}

SIMUL_TASK_TEST(future_cancel_gives_awaiters_ecanceled)
{
    (void)arg;
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    awaiter a[3];
    simul_task *t[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (awaiter){.f = f, .rc = 1, .r = 0, .v = NULL, .next_rc = 1};
        assert_int_equal(simul_task_spawn(&t[i], await_fn, &a[i], NULL), 0);
    }
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(simul_future_cancel(f), 0);
    assert_true(simul_future_done(f));
    assert_int_equal(simul_future_cancel(f), -EALREADY);
    assert_int_equal(simul_future_set_result(f, 1, NULL), -EALREADY);
    assert_int_equal(simul_gather(t, 3, NULL), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a[i].rc, 0); /* the await worked; the future's result says cancelled */
        assert_int_equal(a[i].r, -ECANCELED);
        assert_int_equal(a[i].next_rc, 0); /* the awaiting tasks were not cancelled */
    }
    int r = 0;
    assert_int_equal(simul_future_result(f, &r, NULL), 0);
    assert_int_equal(r, -ECANCELED);
    simul_future_free(f);
    return 0;
}

/* One awaiter cancelled: it leaves the wait list, the others still get the result. */
SIMUL_TASK_TEST(cancelled_awaiter_does_not_disturb_others)
{
    (void)arg;
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    awaiter a[5];
    simul_task *t[5];
    for (int i = 0; i < 5; i++) {
        a[i] = (awaiter){.f = f, .rc = 1, .r = 0, .v = NULL, .next_rc = 1};
        assert_int_equal(simul_task_spawn(&t[i], await_fn, &a[i], NULL), 0);
    }
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(simul_task_cancel(t[0]), 0);
    assert_int_equal(simul_task_cancel(t[2]), 0);
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(a[0].rc, -ECANCELED);
    assert_int_equal(a[2].rc, -ECANCELED);
    assert_int_equal(a[1].rc, 1); /* still waiting */
    assert_int_equal(simul_future_set_result(f, 3, NULL), 0);
    int results[5];
    assert_int_equal(simul_gather(t, 5, results), 2);
    for (int i = 0; i < 5; i++) {
        if (i == 0 || i == 2) {
            assert_int_equal(results[i], -ECANCELED);
            assert_int_equal(a[i].next_rc, -ECANCELED);
        } else {
            assert_int_equal(a[i].rc, 0);
            assert_int_equal(a[i].r, 3);
            assert_int_equal(a[i].next_rc, 0);
        }
    }
    simul_future_free(f);
    return 0;
}

/* ---- done callbacks ---------------------------------------------------------------------- */

typedef struct cb_log {
    simul_future *f;
    int ids[8];
    int n;
    int result_seen[8];
    int done_seen[8];
} cb_log;

static cb_log cbl;

static void done_cb(simul_future *f, void *arg)
{
    int i = cbl.n++;
    cbl.ids[i] = (int)(intptr_t)arg;
    cbl.done_seen[i] = f == cbl.f && simul_future_done(f);
    int r = 0;
    cbl.result_seen[i] = simul_future_result(f, &r, NULL) == 0 ? r : -9999;
    assert_null(simul_task_current());
}

SIMUL_TASK_TEST(done_callbacks_run_soon_in_order)
{
    (void)arg;
    memset(&cbl, 0, sizeof cbl);
    assert_int_equal(simul_future_new(&cbl.f), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_future_add_done_callback(cbl.f, done_cb, (void *)(intptr_t)i), 0);
    }
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(cbl.n, 0); /* not before the future is done */
    assert_int_equal(simul_future_set_result(cbl.f, 21, NULL), 0);
    assert_int_equal(cbl.n, 0); /* not inside set_result */
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(cbl.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cbl.ids[i], i);
        assert_int_equal(cbl.done_seen[i], 1);
        assert_int_equal(cbl.result_seen[i], 21);
    }
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(cbl.n, 3); /* each exactly once */
    simul_future_free(cbl.f);
    return 0;
}

static void set_from_callback(void *arg)
{
    (void)arg;
    assert_int_equal(simul_future_set_result(cbl.f, 4, NULL), 0);
    cbl.ids[7] = cbl.n; /* how many done callbacks had run inside set_result */
}

SIMUL_TASK_TEST(done_callbacks_not_inside_set_from_callback)
{
    (void)arg;
    memset(&cbl, 0, sizeof cbl);
    assert_int_equal(simul_future_new(&cbl.f), 0);
    assert_int_equal(simul_future_add_done_callback(cbl.f, done_cb, (void *)(intptr_t)5), 0);
    cbl.ids[7] = -1;
    assert_int_equal(simul_call_soon(set_from_callback, NULL, NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(cbl.ids[7], 0);
    assert_int_equal(cbl.n, 1);
    assert_int_equal(cbl.ids[0], 5);
    simul_future_free(cbl.f);
    return 0;
}

SIMUL_TASK_TEST(add_done_callback_on_done_future)
{
    (void)arg;
    memset(&cbl, 0, sizeof cbl);
    assert_int_equal(simul_future_new(&cbl.f), 0);
    assert_int_equal(simul_future_cancel(cbl.f), 0);
    assert_int_equal(simul_future_add_done_callback(cbl.f, done_cb, (void *)(intptr_t)1), 0);
    assert_int_equal(cbl.n, 0); /* scheduled, not called inline */
    assert_int_equal(simul_future_add_done_callback(cbl.f, done_cb, (void *)(intptr_t)2), 0);
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(cbl.n, 2);
    assert_int_equal(cbl.ids[0], 1);
    assert_int_equal(cbl.ids[1], 2);
    assert_int_equal(cbl.result_seen[0], -ECANCELED);
    simul_future_free(cbl.f);
    return 0;
}

SIMUL_TASK_TEST(future_result_eagain_while_pending)
{
    (void)arg;
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    int r = 77;
    void *v = &r;
    assert_int_equal(simul_future_result(f, &r, &v), -EAGAIN);
    assert_int_equal(r, 77);
    assert_ptr_equal(v, &r);
    assert_false(simul_future_done(f));
    simul_future_free(f);
    return 0;
}

/* ---- free ------------------------------------------------------------------------------------ */

SIMUL_TASK_TEST(free_with_waiting_task)
{
    (void)arg;
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    awaiter a = {.f = f, .rc = 1, .r = 55, .v = NULL, .next_rc = 1};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, await_fn, &a, NULL), 0);
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(a.rc, 1);
    simul_future_free(f);
    int r = 0;
    double t0 = test_clock();
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_true(test_clock() - t0 < 30.0); /* not stuck (no time bound survives a loaded machine) */
    assert_int_equal(a.rc, -ECANCELED);
    assert_int_equal(r, -ECANCELED);
    /* That was the future going away, not a cancellation of the task. */
    assert_int_equal(a.next_rc, 0);
    return 0;
}

SIMUL_TASK_TEST(free_drops_pending_done_callbacks)
{
    (void)arg;
    memset(&cbl, 0, sizeof cbl);
    assert_int_equal(simul_future_new(&cbl.f), 0);
    assert_int_equal(simul_future_add_done_callback(cbl.f, done_cb, NULL), 0);
    assert_int_equal(simul_future_set_result(cbl.f, 1, NULL), 0);
    simul_future_free(cbl.f); /* before the callback got to run */
    cbl.f = NULL;
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(cbl.n, 0);
    /* A pending future with callbacks, freed: nothing runs either. */
    assert_int_equal(simul_future_new(&cbl.f), 0);
    assert_int_equal(simul_future_add_done_callback(cbl.f, done_cb, NULL), 0);
    simul_future_free(cbl.f);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(cbl.n, 0);
    return 0;
}

static void stop_cb(void *arg)
{
    simul_loop_stop(arg);
}

/* Futures work from plain callbacks and the main thread too (not only inside tasks). */
static void future_outside_tasks(void **state)
{
    (void)state;
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    simul_future *f;
    assert_int_equal(simul_future_new(&f), 0);
    memset(&cbl, 0, sizeof cbl);
    cbl.f = f;
    assert_int_equal(simul_future_add_done_callback(f, done_cb, (void *)(intptr_t)3), 0);
    assert_int_equal(simul_future_set_result(f, 2, NULL), 0);
    assert_int_equal(cbl.n, 0);
    /* The done callbacks are queued (call_soon) before this timer is even armed, so they run
     * before the stop however late the loop runs: the 10 ms is not a window. */
    assert_int_equal(simul_call_later(0.01, stop_cb, loop, NULL), 0);
    assert_int_equal(simul_loop_run(loop), 0);
    assert_int_equal(cbl.n, 1);
    assert_int_equal(cbl.result_seen[0], 2);
    simul_future_free(f);
    assert_int_equal(simul_loop_close(loop), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(await_pending_completed_by_callback),
    cmocka_unit_test(await_done_future),
    cmocka_unit_test(many_awaiters),
    cmocka_unit_test(set_twice_ealready),
    cmocka_unit_test(future_cancel_gives_awaiters_ecanceled),
    cmocka_unit_test(cancelled_awaiter_does_not_disturb_others),
    cmocka_unit_test(done_callbacks_run_soon_in_order),
    cmocka_unit_test(done_callbacks_not_inside_set_from_callback),
    cmocka_unit_test(add_done_callback_on_done_future),
    cmocka_unit_test(future_result_eagain_while_pending),
    cmocka_unit_test(free_with_waiting_task),
    cmocka_unit_test(free_drops_pending_done_callbacks),
    cmocka_unit_test(future_outside_tasks),
};

SIMUL_TEST_MAIN("test_future", tests)
