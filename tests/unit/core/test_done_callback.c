/* test_done_callback.c — asyncio's Task.add_done_callback for tasks: callbacks run from the loop
 * once the task finishes, in registration order, with its result, whether it was joined,
 * detached, cancelled or already done; remove_done_callback takes them back. */
#include "test_main_helpers.h"

typedef struct log {
    int n;
    int results[8];
    int tags[8];
    bool in_task[8];
} log_t;

typedef struct reg {
    log_t *log;
    int tag;
} reg;

static void record(int result, void *arg)
{
    reg *r = arg;
    log_t *l = r->log;
    l->results[l->n] = result;
    l->tags[l->n] = r->tag;
    l->in_task[l->n] = simul_task_current() != NULL;
    l->n++;
}

static int return_arg(void *arg)
{
    assert_int_equal(simul_sleep(0.001), 0);
    return (int)(intptr_t)arg;
}

static int sleep_long(void *arg)
{
    (void)arg;
    return simul_sleep(100.0);
}

static int order_and_result(void *arg)
{
    (void)arg;
    log_t l = {0};
    reg r1 = {&l, 1}, r2 = {&l, 2}, r3 = {&l, 3};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, return_arg, (void *)(intptr_t)42, NULL), 0);
    assert_int_equal(simul_task_add_done_callback(t, record, &r1), 0);
    assert_int_equal(simul_task_add_done_callback(t, record, &r2), 0);
    assert_int_equal(simul_task_add_done_callback(t, record, &r3), 0);
    assert_int_equal(simul_task_remove_done_callback(t, record, &r2), 1);
    assert_int_equal(simul_task_remove_done_callback(t, record, &r2), 0);
    int res = 0;
    assert_int_equal(simul_task_join(t, &res), 0);
    assert_int_equal(res, 42);
    /* Scheduled with call_soon when the task finished: run by the next pass. */
    while (l.n < 2) {
        assert_int_equal(simul_yield(), 0);
    }
    assert_int_equal(l.n, 2);
    assert_int_equal(l.tags[0], 1);
    assert_int_equal(l.tags[1], 3);
    assert_int_equal(l.results[0], 42);
    assert_int_equal(l.results[1], 42);
    assert_false(l.in_task[0]); /* from the loop, not from a task */

    /* Cancelled: the callback sees -ECANCELED. Detached: it still runs. */
    /* static: the detached one's callback runs at simul_run's shutdown, after this returns */
    static log_t l2;
    static reg c = {&l2, 7};
    assert_int_equal(simul_task_spawn(&t, sleep_long, NULL, NULL), 0);
    assert_int_equal(simul_task_add_done_callback(t, record, &c), 0);
    assert_int_equal(simul_task_detach(t), 0);
    assert_int_equal(simul_yield(), 0);
    /* (the handle is gone; cancel it through a second task that we keep) */
    simul_task *t2;
    assert_int_equal(simul_task_spawn(&t2, sleep_long, NULL, NULL), 0);
    reg c2 = {&l2, 8};
    assert_int_equal(simul_task_add_done_callback(t2, record, &c2), 0);
    assert_int_equal(simul_task_cancel(t2), 0);
    assert_int_equal(simul_task_join(t2, &res), 0);
    assert_int_equal(res, -ECANCELED);
    while (l2.n < 1) {
        assert_int_equal(simul_yield(), 0);
    }
    assert_int_equal(l2.n, 1);
    assert_int_equal(l2.tags[0], 8);
    assert_int_equal(l2.results[0], -ECANCELED);

    /* Already done (handle held): scheduled at once. */
    log_t l3 = {0};
    reg d = {&l3, 9};
    assert_int_equal(simul_task_spawn(&t, return_arg, (void *)(intptr_t)5, NULL), 0);
    while (!simul_task_done(t)) {
        assert_int_equal(simul_yield(), 0);
    }
    assert_int_equal(simul_task_add_done_callback(t, record, &d), 0);
    assert_int_equal(l3.n, 0); /* not inline: soon */
    while (l3.n < 1) {
        assert_int_equal(simul_yield(), 0);
    }
    assert_int_equal(l3.results[0], 5);
    assert_int_equal(simul_task_join(t, &res), 0);
    /* Given-back handles and bad arguments. */
    assert_int_equal(simul_task_add_done_callback(t, record, &d), -EINVAL);
    assert_int_equal(simul_task_add_done_callback(NULL, record, &d), -EINVAL);
    assert_int_equal(simul_task_spawn(&t, return_arg, NULL, NULL), 0);
    assert_int_equal(simul_task_add_done_callback(t, NULL, &d), -EINVAL);
    assert_int_equal(simul_task_join(t, &res), 0);
    /* The detached sleeper is cancelled by simul_run's shutdown; its callback's record is
     * freed when the callback runs (l2 tags 7 then). */
    return 0;
}

static void done_callbacks_in_order_with_result(void **state)
{
    (void)state;
    assert_int_equal(simul_run(order_and_result, NULL), 0);
}

/* The detached task's callback ran at shutdown, when simul_run cancelled it. */
static log_t shutdown_log;
static reg shutdown_reg = {&shutdown_log, 11};

static int detach_with_callback(void *arg)
{
    (void)arg;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sleep_long, NULL, NULL), 0);
    assert_int_equal(simul_task_add_done_callback(t, record, &shutdown_reg), 0);
    assert_int_equal(simul_task_detach(t), 0);
    return simul_sleep(0.001);
}

static void done_callback_runs_at_shutdown(void **state)
{
    (void)state;
    assert_int_equal(simul_run(detach_with_callback, NULL), 0);
    assert_int_equal(shutdown_log.n, 1);
    assert_int_equal(shutdown_log.tags[0], 11);
    assert_int_equal(shutdown_log.results[0], -ECANCELED);
}

/* A group child's callback, and a callback registered by a detached task on itself. */
static int self_register(void *arg)
{
    reg *r = arg;
    assert_int_equal(simul_task_add_done_callback(simul_task_current(), record, r), 0);
    return 3;
}

static int group_case(void *arg)
{
    (void)arg;
    log_t l = {0};
    reg a = {&l, 1}, b = {&l, 2};
    assert_int_equal(simul_task_spawn(NULL, self_register, &a, NULL), 0);
    simul_group *g;
    assert_int_equal(simul_group_new(&g), 0);
    assert_int_equal(simul_group_spawn(g, self_register, &b, NULL), 0);
    int first = 0;
    assert_int_equal(simul_group_join(g, &first), 0);
    while (l.n < 2) {
        assert_int_equal(simul_yield(), 0);
    }
    assert_int_equal(l.results[0], 3);
    assert_int_equal(l.results[1], 3);
    return 0;
}

static void done_callbacks_detached_and_group(void **state)
{
    (void)state;
    assert_int_equal(simul_run(group_case, NULL), 0);
}

/* A callback still pending when the loop closes is dropped (as asyncio's close drops its ready
 * callbacks) and its record freed: the ASan suite's leak check sees to that. */
static void pending_callback_dropped_at_close(void **state)
{
    (void)state;
    log_t l = {0};
    reg r = {&l, 1};
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, return_arg, (void *)(intptr_t)1, NULL), 0);
    assert_int_equal(simul_task_add_done_callback(t, record, &r), 0);
    int res = 0;
    assert_int_equal(simul_loop_run_until_complete(loop, t, &res), 0);
    assert_int_equal(res, 1);
    assert_int_equal(simul_loop_close(loop), 0);
    assert_true(l.n <= 1);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(done_callbacks_in_order_with_result),
    cmocka_unit_test(done_callbacks_detached_and_group),
    cmocka_unit_test(done_callback_runs_at_shutdown),
    cmocka_unit_test(pending_callback_dropped_at_close),
};

SIMUL_TEST_MAIN("test_done_callback", tests)
