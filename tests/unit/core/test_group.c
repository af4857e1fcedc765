/* test_group.c — waiting for many tasks: gather, wait (FIRST_COMPLETED / FIRST_EXCEPTION /
 * ALL_COMPLETED), as_completed, and task groups (structured concurrency).
 */
#include "test_main_helpers.h"

/* A child that sleeps `ms` milliseconds then returns `ret`; records how it ended. */
typedef struct child {
    int ms;
    int ret;
    int started, sleep_rc, finished;
} child;

static int child_fn(void *arg)
{
    child *c = arg;
    c->started = 1;
    c->sleep_rc = simul_sleep(c->ms / 1000.0);
    c->finished = 1;
    return c->sleep_rc < 0 ? c->sleep_rc : c->ret;
}

static void spawn_children(simul_task **t, child *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(simul_task_spawn(&t[i], child_fn, &c[i], NULL), 0);
    }
}

/* ---- gather --------------------------------------------------------------------------- */

SIMUL_TASK_TEST(gather_results_and_failure_count)
{
    (void)arg;
    child c[5] = {
        {.ms = 30, .ret = 0}, {.ms = 10, .ret = 1},      {.ms = 20, .ret = -EIO},
        {.ms = 0, .ret = 3},  {.ms = 5, .ret = -ENOENT},
    };
    simul_task *t[5];
    spawn_children(t, c, 5);
    int results[5] = {99, 99, 99, 99, 99};
    double t0 = test_clock();
    assert_int_equal(simul_gather(t, 5, results), 2);
    double elapsed = test_clock() - t0;
    assert_true(elapsed >= 0.03 && elapsed < 30.0); /* upper: not stuck (a loaded machine is late) */
    assert_int_equal(results[0], 0);
    assert_int_equal(results[1], 1);
    assert_int_equal(results[2], -EIO);
    assert_int_equal(results[3], 3);
    assert_int_equal(results[4], -ENOENT);
    /* A failure does not cancel the others (no group here). */
    assert_int_equal(c[0].sleep_rc, 0);
    assert_int_equal(simul_task_count(), 1); /* all joined */
    /* results may be NULL; all succeeding gives 0. */
    child ok[2] = {{.ms = 1, .ret = 0}, {.ms = 2, .ret = 7}};
    spawn_children(t, ok, 2);
    assert_int_equal(simul_gather(t, 2, NULL), 0);
    assert_int_equal(simul_gather(t, 0, NULL), 0);
    return 0;
}

SIMUL_TASK_TEST(gather_bad_handle_joins_nothing)
{
    (void)arg;
    child c[2] = {{.ms = 1, .ret = 4}, {.ms = 1, .ret = 5}};
    simul_task *t[3];
    assert_int_equal(simul_task_spawn(&t[0], child_fn, &c[0], NULL), 0);
    t[1] = NULL;
    assert_int_equal(simul_task_spawn(&t[2], child_fn, &c[1], NULL), 0);
    assert_int_equal(simul_gather(t, 3, NULL), -EINVAL);
    int r = 0;
    assert_int_equal(simul_task_join(t[0], &r), 0);
    assert_int_equal(r, 4);
    assert_int_equal(simul_task_join(t[2], &r), 0);
    assert_int_equal(r, 5);
    return 0;
}

typedef struct gatherer_state {
    child c[3];
    volatile int gathering;
    int rc;
} gatherer_state;

static int gatherer(void *arg)
{
    gatherer_state *s = arg;
    simul_task *t[3];
    spawn_children(t, s->c, 3);
    s->gathering = 1;
    s->rc = simul_gather(t, 3, NULL);
    return s->rc;
}

SIMUL_TASK_TEST(gather_cancelled_cancels_children)
{
    (void)arg;
    gatherer_state s = {.c = {{.ms = 60000}, {.ms = 60000}, {.ms = 60000}}};
    simul_task *g;
    assert_int_equal(simul_task_spawn(&g, gatherer, &s, NULL), 0);
    while (!s.gathering) {
        assert_int_equal(simul_yield(), 0);
    }
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_task_count(), 5);
    assert_int_equal(simul_task_cancel(g), 0);
    int r = 0;
    double t0 = test_clock();
    assert_int_equal(simul_task_join(g, &r), 0);
    assert_true(test_clock() - t0 < 30.0); /* at once, not when the 60 s children end */
    assert_int_equal(r, -ECANCELED);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.c[i].started, 1);
        assert_int_equal(s.c[i].sleep_rc, -ECANCELED);
        assert_int_equal(s.c[i].finished, 1);
    }
    assert_int_equal(simul_task_count(), 1);
    return 0;
}

/* ---- wait --------------------------------------------------------------------------- */

static void cancel_and_join_all(simul_task **t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(simul_task_cancel(t[i]), 0);
        assert_int_equal(simul_task_join(t[i], NULL), 0);
    }
}

SIMUL_TASK_TEST(wait_first_completed)
{
    (void)arg;
    /* The others take 60 s, not 1 s: a machine that stalled the process past them saw 3 done. */
    child c[3] = {{.ms = 60000}, {.ms = 10}, {.ms = 60000}};
    simul_task *t[3];
    spawn_children(t, c, 3);
    double t0 = test_clock();
    assert_int_equal(simul_wait(t, 3, SIMUL_FIRST_COMPLETED, INFINITY), 1);
    double elapsed = test_clock() - t0;
    assert_true(elapsed >= 0.01 && elapsed < 30.0);
    assert_false(simul_task_done(t[0]));
    assert_true(simul_task_done(t[1]));
    assert_false(simul_task_done(t[2]));
    assert_false(simul_task_cancel_requested(t[0]));
    cancel_and_join_all(t, 3);
    return 0;
}

SIMUL_TASK_TEST(wait_first_exception)
{
    (void)arg;
    child c[3] = {{.ms = 5, .ret = 0}, {.ms = 20, .ret = -EIO}, {.ms = 60000, .ret = 0}};
    simul_task *t[3];
    spawn_children(t, c, 3);
    double t0 = test_clock();
    assert_int_equal(simul_wait(t, 3, SIMUL_FIRST_EXCEPTION, INFINITY), 2);
    double elapsed = test_clock() - t0;
    assert_true(elapsed >= 0.02 && elapsed < 30.0);
    assert_true(simul_task_done(t[0]));
    assert_true(simul_task_done(t[1]));
    assert_false(simul_task_done(t[2]));
    assert_false(simul_task_cancel_requested(t[2]));
    int r = 0;
    assert_int_equal(simul_task_join(t[1], &r), 0);
    assert_int_equal(r, -EIO);
    assert_int_equal(simul_task_join(t[0], &r), 0);
    assert_int_equal(r, 0);
    cancel_and_join_all(&t[2], 1);
    /* Without any failure it waits for all. */
    child ok[3] = {{.ms = 5}, {.ms = 20}, {.ms = 10}};
    spawn_children(t, ok, 3);
    t0 = test_clock();
    assert_int_equal(simul_wait(t, 3, SIMUL_FIRST_EXCEPTION, INFINITY), 3);
    assert_true(test_clock() - t0 >= 0.02);
    assert_int_equal(simul_gather(t, 3, NULL), 0);
    return 0;
}

SIMUL_TASK_TEST(wait_all_completed)
{
    (void)arg;
    child c[3] = {{.ms = 5, .ret = 1}, {.ms = 20, .ret = -EIO}, {.ms = 10, .ret = 2}};
    simul_task *t[3];
    spawn_children(t, c, 3);
    double t0 = test_clock();
    assert_int_equal(simul_wait(t, 3, SIMUL_ALL_COMPLETED, INFINITY), 3);
    assert_true(test_clock() - t0 >= 0.02);
    for (int i = 0; i < 3; i++) {
        assert_true(simul_task_done(t[i]));
    }
    /* wait joined nothing: the handles are still ours. */
    int results[3];
    assert_int_equal(simul_gather(t, 3, results), 1);
    assert_int_equal(results[0], 1);
    assert_int_equal(results[1], -EIO);
    assert_int_equal(results[2], 2);
    return 0;
}

SIMUL_TASK_TEST(wait_invalid_return_when_einval)
{
    (void)arg;
    child c = {.ms = 1};
    simul_task *t;
    spawn_children(&t, &c, 1);
    assert_int_equal(simul_wait(&t, 1, 99, INFINITY), -EINVAL);
    assert_int_equal(simul_task_join(t, NULL), 0);
    return 0;
}

/* ---- as_completed ------------------------------------------------------------------------- */

SIMUL_TASK_TEST(as_completed_order)
{
    (void)arg;
    child c[3] = {{.ms = 30, .ret = 1}, {.ms = 10, .ret = 2}, {.ms = 20, .ret = 3}};
    simul_task *t[3];
    spawn_children(t, c, 3);
    simul_as_completed *ac;
    assert_int_equal(simul_as_completed_new(&ac, t, 3), 0);
    int order[3];
    for (int k = 0; k < 3; k++) {
        simul_task *done = NULL;
        assert_int_equal(simul_as_completed_next(ac, &done), 0);
        assert_non_null(done);
        assert_true(simul_task_done(done));
        int r = 0;
        assert_int_equal(simul_task_join(done, &r), 0);
        order[k] = r;
    }
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 3);
    assert_int_equal(order[2], 1);
    simul_task *done = NULL;
    assert_int_equal(simul_as_completed_next(ac, &done), -ENOENT);
    assert_int_equal(simul_as_completed_next(ac, &done), -ENOENT);
    simul_as_completed_free(ac);
    /* An empty iterator is exhausted at once. */
    assert_int_equal(simul_as_completed_new(&ac, t, 0), 0);
    assert_int_equal(simul_as_completed_next(ac, &done), -ENOENT);
    simul_as_completed_free(ac);
    return 0;
}

SIMUL_TASK_TEST(as_completed_free_early_keeps_handles)
{
    (void)arg;
    child c[2] = {{.ms = 1, .ret = 1}, {.ms = 20, .ret = 2}};
    simul_task *t[2];
    spawn_children(t, c, 2);
    simul_as_completed *ac;
    assert_int_equal(simul_as_completed_new(&ac, t, 2), 0);
    simul_task *done = NULL;
    assert_int_equal(simul_as_completed_next(ac, &done), 0);
    assert_ptr_equal(done, t[0]);
    simul_as_completed_free(ac);
    int r = 0;
    assert_int_equal(simul_task_join(t[1], &r), 0);
    assert_int_equal(r, 2);
    assert_int_equal(simul_task_join(t[0], &r), 0);
    assert_int_equal(r, 1);
    return 0;
}

/* ---- task groups -------------------------------------------------------------------------- */

SIMUL_TASK_TEST(group_all_succeed)
{
    (void)arg;
    simul_group *g;
    assert_int_equal(simul_group_new(&g), 0);
    child c[5] = {{.ms = 5}, {.ms = 15}, {.ms = 0}, {.ms = 10}, {.ms = 1}};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(simul_group_spawn(g, child_fn, &c[i], NULL), 0);
    }
    assert_int_equal(simul_task_count(), 6);
    int first_error = 12345;
    double t0 = test_clock();
    assert_int_equal(simul_group_join(g, &first_error), 0);
    assert_true(test_clock() - t0 >= 0.015);
    assert_int_equal(first_error, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(c[i].finished, 1);
        assert_int_equal(c[i].sleep_rc, 0);
    }
    assert_int_equal(simul_task_count(), 1);
    /* An empty group joins at once. */
    assert_int_equal(simul_group_new(&g), 0);
    assert_int_equal(simul_group_join(g, NULL), 0);
    return 0;
}

SIMUL_TASK_TEST(group_child_failure_cancels_siblings)
{
    (void)arg;
    simul_group *g;
    assert_int_equal(simul_group_new(&g), 0);
    /* c[3] would fail too, later: at 30 s, not 30 ms, which a loaded machine that stalled the
     * process for 20 ms fired in the same pass as c[1]'s 10 ms (the sleep then completed, as a
     * completion handed over before the cancel wins, and c[3] was not cancelled). */
    child c[4] = {
        {.ms = 60000}, {.ms = 10, .ret = -EIO}, {.ms = 60000}, {.ms = 30000, .ret = -EPIPE}};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(simul_group_spawn(g, child_fn, &c[i], NULL), 0);
    }
    int first_error = 0;
    double t0 = test_clock();
    assert_int_equal(simul_group_join(g, &first_error), 0);
    assert_true(test_clock() - t0 < 20.0); /* before c[3]'s own failure at 30 s, on any load */
    assert_int_equal(first_error, -EIO);
    assert_int_equal(c[0].sleep_rc, -ECANCELED);
    assert_int_equal(c[2].sleep_rc, -ECANCELED);
    assert_int_equal(c[3].sleep_rc, -ECANCELED); /* cancelled before it could fail */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(c[i].finished, 1);
    }
    assert_int_equal(simul_task_count(), 1);
    /* The owner itself was not cancelled. */
    assert_false(simul_task_cancel_requested(simul_task_current()));
    assert_int_equal(simul_sleep(0), 0);
    return 0;
}

/* The first failure cancels the siblings at once, not only when the owner joins. */
SIMUL_TASK_TEST(group_failure_cancels_siblings_before_join)
{
    (void)arg;
    simul_group *g;
    assert_int_equal(simul_group_new(&g), 0);
    child c[3] = {{.ms = 10000}, {.ms = 10, .ret = -EIO}, {.ms = 10000}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_group_spawn(g, child_fn, &c[i], NULL), 0);
    }
    assert_int_equal(simul_sleep(0.05), 0); /* the owner is not cancelled by the failure */
    /* A stalled process fires c[1]'s timer and ours in one pass: the siblings that c[1]'s
     * failure cancels are then queued behind us. Let them run; no join has happened yet. */
    assert_int_equal(c[1].finished, 1);
    test_settle();
    assert_int_equal(c[0].sleep_rc, -ECANCELED);
    assert_int_equal(c[0].finished, 1);
    assert_int_equal(c[2].sleep_rc, -ECANCELED);
    assert_int_equal(simul_task_count(), 1);
    int first_error = 0;
    assert_int_equal(simul_group_join(g, &first_error), 0);
    assert_int_equal(first_error, -EIO);
    return 0;
}

typedef struct owner_state {
    child c[3];
    volatile int joining;
    int join_rc;
    int first_error;
    int all_reaped;
} owner_state;

static int owner_joins(void *arg)
{
    owner_state *s = arg;
    simul_group *g;
    assert_int_equal(simul_group_new(&g), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_group_spawn(g, child_fn, &s->c[i], NULL), 0);
    }
    s->joining = 1;
    s->first_error = 12345;
    s->join_rc = simul_group_join(g, &s->first_error);
    s->all_reaped = simul_task_count() == 2; /* test-main and this owner */
    return s->join_rc;
}

SIMUL_TASK_TEST(group_owner_cancelled_while_joining)
{
    (void)arg;
    owner_state s = {.c = {{.ms = 60000}, {.ms = 60000}, {.ms = 60000}}};
    simul_task *o;
    assert_int_equal(simul_task_spawn(&o, owner_joins, &s, NULL), 0);
    while (!s.joining) {
        assert_int_equal(simul_yield(), 0);
    }
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_task_cancel(o), 0);
    int r = 0;
    assert_int_equal(simul_task_join(o, &r), 0);
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(s.join_rc, -ECANCELED);
    assert_int_equal(s.all_reaped, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.c[i].sleep_rc, -ECANCELED);
        assert_int_equal(s.c[i].finished, 1);
    }
    assert_int_equal(simul_task_count(), 1);
    return 0;
}

static int owner_walks_away(void *arg)
{
    owner_state *s = arg;
    simul_group *g;
    assert_int_equal(simul_group_new(&g), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_group_spawn(g, child_fn, &s->c[i], NULL), 0);
    }
    assert_int_equal(simul_sleep(0.01), 0); /* the children are running */
    return 7;                               /* without joining */
}

SIMUL_TASK_TEST(group_owner_returns_without_joining)
{
    (void)arg;
    owner_state s = {.c = {{.ms = 60000}, {.ms = 60000}, {.ms = 60000}}};
    simul_task *o;
    assert_int_equal(simul_task_spawn(&o, owner_walks_away, &s, NULL), 0);
    int r = 0;
    double t0 = test_clock();
    assert_int_equal(simul_task_join(o, &r), 0);
    assert_true(test_clock() - t0 < 30.0); /* at once, not when the 60 s children end */
    assert_int_equal(r, 7);
    /* No child outlives its group: all were cancelled and reaped by the time the owner ended. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.c[i].started, 1);
        assert_int_equal(s.c[i].sleep_rc, -ECANCELED);
        assert_int_equal(s.c[i].finished, 1);
    }
    assert_int_equal(simul_task_count(), 1);
    return 0;
}

static int must_not_run(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

SIMUL_TASK_TEST(group_spawn_after_cancel_ecanceled)
{
    (void)arg;
    simul_group *g;
    assert_int_equal(simul_group_new(&g), 0);
    child c = {.ms = 10000};
    assert_int_equal(simul_group_spawn(g, child_fn, &c, NULL), 0);
    assert_int_equal(simul_group_cancel(g), 0);
    int ran = 0;
    assert_int_equal(simul_group_spawn(g, must_not_run, &ran, NULL), -ECANCELED);
    int first_error = 12345;
    assert_int_equal(simul_group_join(g, &first_error), 0);
    assert_int_equal(first_error, 0); /* -ECANCELED caused by the group is not a failure */
    assert_int_equal(ran, 0);
    assert_int_equal(c.sleep_rc, -ECANCELED);
    /* After a child failure the group is cancelled too. */
    assert_int_equal(simul_group_new(&g), 0);
    child bad = {.ms = 0, .ret = -EIO};
    assert_int_equal(simul_group_spawn(g, child_fn, &bad, NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(bad.finished, 1);
    assert_int_equal(simul_group_spawn(g, must_not_run, &ran, NULL), -ECANCELED);
    assert_int_equal(simul_group_join(g, &first_error), 0);
    assert_int_equal(first_error, -EIO);
    assert_int_equal(ran, 0);
    return 0;
}

typedef struct join_other {
    simul_group *g;
    int rc;
} join_other;

static int joins_foreign_group(void *arg)
{
    join_other *j = arg;
    int fe = 0;
    j->rc = simul_group_join(j->g, &fe);
    return 0;
}

SIMUL_TASK_TEST(group_join_by_non_owner_einval)
{
    (void)arg;
    join_other j = {.rc = 1};
    assert_int_equal(simul_group_new(&j.g), 0);
    child c = {.ms = 10};
    assert_int_equal(simul_group_spawn(j.g, child_fn, &c, NULL), 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, joins_foreign_group, &j, NULL), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(j.rc, -EINVAL);
    int fe = 1;
    assert_int_equal(simul_group_join(j.g, &fe), 0);
    assert_int_equal(fe, 0);
    assert_int_equal(c.finished, 1);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(gather_results_and_failure_count),
    cmocka_unit_test(gather_bad_handle_joins_nothing),
    cmocka_unit_test(gather_cancelled_cancels_children),
    cmocka_unit_test(wait_first_completed),
    cmocka_unit_test(wait_first_exception),
    cmocka_unit_test(wait_all_completed),
    cmocka_unit_test(wait_invalid_return_when_einval),
    cmocka_unit_test(as_completed_order),
    cmocka_unit_test(as_completed_free_early_keeps_handles),
    cmocka_unit_test(group_all_succeed),
    cmocka_unit_test(group_child_failure_cancels_siblings),
    cmocka_unit_test(group_failure_cancels_siblings_before_join),
    cmocka_unit_test(group_owner_cancelled_while_joining),
    cmocka_unit_test(group_owner_returns_without_joining),
    cmocka_unit_test(group_spawn_after_cancel_ecanceled),
    cmocka_unit_test(group_join_by_non_owner_einval),
};

SIMUL_TEST_MAIN("test_group", tests)
