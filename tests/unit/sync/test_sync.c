/* test_sync.c — Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier: FIFO wake order,
 * direct hand-over (no barging), every error code, deadline scopes, and cancellation at each wait
 * (before and after the hand-over), the lock held again after an interrupted condition wait.
 */
#include "test_main_helpers.h"

/* A record of the order in which tasks got somewhere. */
typedef struct order {
    int ids[64];
    int n;
} order;

static void order_add(order *o, int id)
{
    assert_true(o->n < (int)ARRAY_LEN(o->ids));
    o->ids[o->n++] = id;
}

static void assert_order(const order *o, const int *want, int n)
{
    assert_int_equal(o->n, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(o->ids[i], want[i]);
}

/* A generic waiter: runs one wait on its object, records the result, then reports what it holds
 * and what the next suspension says. */
typedef struct waiter {
    int id;
    order *o;
    void *obj;
    int rc;         /* result of the wait; 1 = not returned yet */
    int next_rc;    /* result of a yield after it */
    int holds;      /* lock: try_acquire said -EDEADLK (we own it) */
    int release_rc; /* result of releasing what it got */
    double timeout; /* > 0: wait inside a deadline scope of this length */
    int scope_end;  /* what simul_scope_end said */
    double elapsed;
} waiter;

static void waiter_init(waiter *w, int id, order *o, void *obj)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->o = o;
    w->obj = obj;
    w->rc = 1;
    w->next_rc = 1;
    w->release_rc = 1;
    w->scope_end = -100;
}

typedef int (*wait_fn)(waiter *w);

/* Runs fn inside an optional deadline scope and records everything. */
static int run_wait(waiter *w, wait_fn fn)
{
    simul_scope s;
    double t0 = test_clock();
    if (w->timeout > 0)
        assert_int_equal(simul_scope_timeout(&s, w->timeout), 0);
    w->rc = fn(w);
    if (w->timeout > 0)
        w->scope_end = simul_scope_end(&s);
    w->elapsed = test_clock() - t0;
    if (w->o && w->rc >= 0)
        order_add(w->o, w->id);
    return 0;
}

/* ---- Lock ------------------------------------------------------------------------------------ */

static int lock_wait(waiter *w)
{
    int rc = simul_lock_acquire(w->obj);
    if (rc == 0) {
        w->holds = simul_lock_try_acquire(w->obj) == -EDEADLK;
        w->next_rc = simul_yield();
        w->release_rc = simul_lock_release(w->obj);
    } else {
        w->holds = simul_lock_try_acquire(w->obj) == -EDEADLK;
        w->release_rc = simul_lock_release(w->obj);
    }
    return rc;
}

static int lock_waiter(void *arg)
{
    return run_wait(arg, lock_wait);
}

SIMUL_TASK_TEST(lock_basic)
{
    (void)arg;
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    assert_false(simul_lock_locked(l));
    assert_int_equal(simul_lock_release(l), -EPERM); /* not locked */
    assert_int_equal(simul_lock_acquire(l), 0);
    assert_true(simul_lock_locked(l));
    assert_int_equal(simul_lock_acquire(l), -EDEADLK);
    assert_int_equal(simul_lock_try_acquire(l), -EDEADLK);
    assert_int_equal(simul_lock_release(l), 0);
    assert_false(simul_lock_locked(l));
    assert_int_equal(simul_lock_try_acquire(l), 0);
    assert_true(simul_lock_locked(l));
    assert_int_equal(simul_lock_release(l), 0);
    assert_int_equal(simul_lock_release(l), -EPERM);
    assert_int_equal(simul_lock_new(NULL), -EINVAL);
    assert_int_equal(simul_lock_acquire(NULL), -EINVAL);
    assert_int_equal(simul_lock_try_acquire(NULL), -EINVAL);
    assert_int_equal(simul_lock_release(NULL), -EINVAL);
    assert_false(simul_lock_locked(NULL));
    simul_lock_free(l);
    simul_lock_free(NULL);
    return 0;
}

SIMUL_TASK_TEST(lock_fifo_order)
{
    (void)arg;
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    assert_int_equal(simul_lock_acquire(l), 0);
    static order o;
    static waiter w[6];
    simul_task *t[6];
    for (int i = 0; i < 6; i++) {
        waiter_init(&w[i], i, &o, l);
        t[i] = test_spawn(lock_waiter, &w[i]);
    }
    test_settle();
    for (int i = 0; i < 6; i++)
        assert_int_equal(w[i].rc, 1); /* all parked */
    assert_int_equal(simul_lock_release(l), 0);
    for (int i = 0; i < 6; i++)
        test_join_ok(t[i]);
    int want[] = {0, 1, 2, 3, 4, 5};
    assert_order(&o, want, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(w[i].rc, 0);
        assert_true(w[i].holds);
        assert_int_equal(w[i].release_rc, 0);
    }
    assert_false(simul_lock_locked(l));
    simul_lock_free(l);
    return 0;
}

SIMUL_TASK_TEST(lock_release_hands_off_no_barging)
{
    (void)arg;
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    assert_int_equal(simul_lock_acquire(l), 0);
    static waiter w;
    waiter_init(&w, 1, NULL, l);
    simul_task *t = test_spawn(lock_waiter, &w);
    test_settle();
    assert_int_equal(simul_lock_release(l), 0);
    /* The waiter owns the lock before it has even run: the releaser cannot take it back. */
    assert_true(simul_lock_locked(l));
    assert_int_equal(simul_lock_try_acquire(l), -EAGAIN);
    assert_int_equal(simul_lock_release(l), -EPERM);
    assert_int_equal(w.rc, 1);
    assert_int_equal(simul_lock_acquire(l), 0); /* waits for the waiter to finish with it */
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.release_rc, 0);
    assert_int_equal(simul_lock_release(l), 0);
    test_join_ok(t);
    simul_lock_free(l);
    return 0;
}

static int release_other(void *arg)
{
    return simul_lock_release(arg);
}

static int cb_rc;
static void release_cb(void *arg)
{
    cb_rc = simul_lock_release(arg);
}

SIMUL_TASK_TEST(lock_release_by_non_owner_eperm)
{
    (void)arg;
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    assert_int_equal(simul_lock_acquire(l), 0);
    simul_task *t = test_spawn(release_other, l);
    int r = 0;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -EPERM);
    cb_rc = 1;
    assert_int_equal(simul_call_soon(release_cb, l, NULL), 0);
    test_settle();
    assert_int_equal(cb_rc, -EPERM); /* a callback owns nothing */
    assert_true(simul_lock_locked(l));
    assert_int_equal(simul_lock_release(l), 0);
    simul_lock_free(l);
    return 0;
}

SIMUL_TASK_TEST(lock_cancel_while_waiting)
{
    (void)arg;
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    assert_int_equal(simul_lock_acquire(l), 0);
    static waiter w[2];
    waiter_init(&w[0], 0, NULL, l);
    waiter_init(&w[1], 1, NULL, l);
    simul_task *a = test_spawn(lock_waiter, &w[0]);
    simul_task *b = test_spawn(lock_waiter, &w[1]);
    test_settle();
    assert_int_equal(simul_task_cancel(a), 0);
    test_settle();
    assert_int_equal(w[0].rc, -ECANCELED);
    assert_false(w[0].holds);
    assert_int_equal(w[0].release_rc, -EPERM);
    /* The cancelled waiter left the queue: the lock goes to the next one. */
    assert_int_equal(simul_lock_release(l), 0);
    test_join_ok(a);
    test_join_ok(b);
    assert_int_equal(w[1].rc, 0);
    assert_true(w[1].holds);
    assert_false(simul_lock_locked(l));
    simul_lock_free(l);
    return 0;
}

SIMUL_TASK_TEST(lock_cancel_after_handoff_keeps_lock)
{
    (void)arg;
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    assert_int_equal(simul_lock_acquire(l), 0);
    static waiter w;
    waiter_init(&w, 0, NULL, l);
    simul_task *t = test_spawn(lock_waiter, &w);
    test_settle();
    assert_int_equal(simul_lock_release(l), 0); /* handed over ... */
    assert_int_equal(simul_task_cancel(t), 0);  /* ... and then the cancel lands */
    test_join_ok(t);
    assert_int_equal(w.rc, 0); /* the acquire succeeded: it owned the lock */
    assert_true(w.holds);
    assert_int_equal(w.next_rc, -ECANCELED); /* the cancel shows at the next suspension */
    assert_int_equal(w.release_rc, 0);
    assert_false(simul_lock_locked(l));
    simul_lock_free(l);
    return 0;
}

SIMUL_TASK_TEST(lock_cancelled_task_does_not_take_free_lock)
{
    (void)arg;
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    static waiter w;
    waiter_init(&w, 0, NULL, l);
    simul_task *t = test_spawn(lock_waiter, &w);
    assert_int_equal(simul_task_cancel(t), 0); /* before it ever ran */
    test_join_ok(t);
    assert_int_equal(w.rc, -ECANCELED); /* a cancellation point even when free */
    assert_false(simul_lock_locked(l));
    simul_lock_free(l);
    return 0;
}

SIMUL_TASK_TEST(lock_timeout_scope)
{
    (void)arg;
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    assert_int_equal(simul_lock_acquire(l), 0);
    static waiter w[2];
    waiter_init(&w[0], 0, NULL, l);
    w[0].timeout = 0.03;
    waiter_init(&w[1], 1, NULL, l);
    simul_task *a = test_spawn(lock_waiter, &w[0]);
    simul_task *b = test_spawn(lock_waiter, &w[1]);
    /* Joined while we still hold the lock: only its deadline can have ended the wait (it was a
     * 0.1 s sleep and an upper bound of 0.09 s, which a loaded machine's 100 ms preemptions
     * broke). The bound now says "ended by the deadline", not "the machine was quick". */
    test_join_ok(a);
    assert_int_equal(w[0].rc, -ETIMEDOUT);
    assert_int_equal(w[0].scope_end, 1);
    assert_true(w[0].elapsed >= 0.025 && w[0].elapsed < 1.0);
    assert_false(w[0].holds);
    assert_int_equal(w[1].rc, 1);
    assert_int_equal(simul_lock_release(l), 0);
    test_join_ok(b);
    assert_int_equal(w[1].rc, 0);
    assert_false(simul_lock_locked(l));
    simul_lock_free(l);
    return 0;
}

static int hold_and_return(void *arg)
{
    return simul_lock_acquire(arg); /* and never releases */
}

SIMUL_TASK_TEST(lock_owner_finishes_holding_debug_report)
{
    (void)arg;
    assert_int_equal(simul_loop_set_debug(simul_loop_current(), true), 0);
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    test_capture cap;
    test_capture_begin(&cap);
    simul_task *t;
    simul_task_opts opts = {.name = "forgetful"};
    assert_int_equal(simul_task_spawn(&t, hold_and_return, l, &opts), 0);
    test_join_ok(t);
    char *text = test_capture_end(&cap);
    assert_non_null(strstr(text, "'forgetful' finished while holding a lock"));
    free(text);
    /* It stays locked; nobody else may release it. */
    assert_true(simul_lock_locked(l));
    assert_int_equal(simul_lock_release(l), -EPERM);
    assert_int_equal(simul_lock_try_acquire(l), -EAGAIN);
    simul_lock_free(l);
    assert_int_equal(simul_loop_set_debug(simul_loop_current(), false), 0);
    return 0;
}

SIMUL_TASK_TEST(lock_free_with_waiter_cancels_it)
{
    (void)arg;
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    assert_int_equal(simul_lock_acquire(l), 0);
    static waiter w;
    waiter_init(&w, 0, NULL, NULL);
    w.obj = l;
    simul_task *t = test_spawn(lock_waiter, &w);
    test_settle();
    w.obj = NULL; /* what the waiter does after the wake must not touch the freed lock */
    simul_lock_free(l);
    int r = 1;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(w.rc, -ECANCELED);
    return 0;
}

/* ---- calls outside a task -------------------------------------------------------------------- */

typedef struct outside {
    simul_lock *l;
    simul_event *e;
    simul_condition *c;
    simul_semaphore *s;
    simul_barrier *b;
    int rc[8];
    bool ran;
} outside;

static void outside_cb(void *arg)
{
    outside *o = arg;
    o->rc[0] = simul_lock_acquire(o->l);
    o->rc[1] = simul_lock_try_acquire(o->l);
    o->rc[2] = simul_event_wait(o->e);
    o->rc[3] = simul_condition_wait(o->c);
    o->rc[4] = simul_semaphore_acquire(o->s);
    o->rc[5] = simul_barrier_wait(o->b);
    o->rc[6] = simul_condition_notify(o->c, 1);
    /* the non-suspending ones work from callbacks */
    o->rc[7] = simul_semaphore_try_acquire(o->s) | simul_semaphore_release(o->s) |
               simul_event_set(o->e) | simul_barrier_reset(o->b);
    o->ran = true;
}

SIMUL_TASK_TEST(suspending_calls_outside_task_eperm)
{
    (void)arg;
    static outside o;
    assert_int_equal(simul_lock_new(&o.l), 0);
    assert_int_equal(simul_event_new(&o.e), 0);
    assert_int_equal(simul_condition_new(&o.c, NULL), 0);
    assert_int_equal(simul_semaphore_new(&o.s, 1), 0);
    assert_int_equal(simul_barrier_new(&o.b, 1), 0);
    assert_int_equal(simul_call_soon(outside_cb, &o, NULL), 0);
    test_settle();
    assert_true(o.ran);
    for (int i = 0; i < 7; i++)
        assert_int_equal(o.rc[i], -EPERM);
    assert_int_equal(o.rc[7], 0);
    assert_true(simul_event_is_set(o.e));
    simul_lock_free(o.l);
    simul_event_free(o.e);
    simul_condition_free(o.c);
    simul_semaphore_free(o.s);
    simul_barrier_free(o.b);
    return 0;
}

/* ---- Event ----------------------------------------------------------------------------------- */

static int event_wait(waiter *w)
{
    int rc = simul_event_wait(w->obj);
    w->next_rc = simul_yield();
    return rc;
}

static int event_waiter(void *arg)
{
    return run_wait(arg, event_wait);
}

SIMUL_TASK_TEST(event_set_wakes_all_in_order)
{
    (void)arg;
    simul_event *e;
    assert_int_equal(simul_event_new(&e), 0);
    assert_false(simul_event_is_set(e));
    static order o;
    static waiter w[5];
    simul_task *t[5];
    for (int i = 0; i < 5; i++) {
        waiter_init(&w[i], i, &o, e);
        t[i] = test_spawn(event_waiter, &w[i]);
    }
    test_settle();
    assert_int_equal(o.n, 0);
    assert_int_equal(simul_event_set(e), 0);
    assert_true(simul_event_is_set(e));
    for (int i = 0; i < 5; i++)
        test_join_ok(t[i]);
    int want[] = {0, 1, 2, 3, 4};
    assert_order(&o, want, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(w[i].rc, 0);
    simul_event_free(e);
    return 0;
}

SIMUL_TASK_TEST(event_set_wait_clear_timeout)
{
    (void)arg;
    simul_event *e;
    assert_int_equal(simul_event_new(&e), 0);
    assert_int_equal(simul_event_set(e), 0);
    assert_int_equal(simul_event_set(e), 0); /* idempotent */
    double t0 = test_clock();
    assert_int_equal(simul_event_wait(e), 0);
    assert_true(test_clock() - t0 < 1.0); /* at once (a missed set would block for ever); 0.05 s
                                             was within a loaded machine's preemption */
    assert_int_equal(simul_event_clear(e), 0);
    assert_false(simul_event_is_set(e));
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.03), 0);
    t0 = test_clock();
    assert_int_equal(simul_event_wait(e), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&s), 1);
    assert_true(test_clock() - t0 >= 0.025);
    assert_int_equal(simul_event_new(NULL), -EINVAL);
    assert_int_equal(simul_event_wait(NULL), -EINVAL);
    assert_int_equal(simul_event_set(NULL), -EINVAL);
    assert_int_equal(simul_event_clear(NULL), -EINVAL);
    simul_event_free(e);
    simul_event_free(NULL);
    return 0;
}

SIMUL_TASK_TEST(event_set_then_clear_still_wakes)
{
    (void)arg;
    simul_event *e;
    assert_int_equal(simul_event_new(&e), 0);
    static waiter w[3];
    simul_task *t[3];
    for (int i = 0; i < 3; i++) {
        waiter_init(&w[i], i, NULL, e);
        t[i] = test_spawn(event_waiter, &w[i]);
    }
    test_settle();
    assert_int_equal(simul_event_set(e), 0);
    assert_int_equal(simul_event_clear(e), 0); /* before any waiter ran */
    for (int i = 0; i < 3; i++) {
        test_join_ok(t[i]);
        assert_int_equal(w[i].rc, 0);
    }
    simul_event_free(e);
    return 0;
}

SIMUL_TASK_TEST(event_cancel_waiter)
{
    (void)arg;
    simul_event *e;
    assert_int_equal(simul_event_new(&e), 0);
    static waiter w[2];
    waiter_init(&w[0], 0, NULL, e);
    waiter_init(&w[1], 1, NULL, e);
    simul_task *a = test_spawn(event_waiter, &w[0]);
    simul_task *b = test_spawn(event_waiter, &w[1]);
    test_settle();
    assert_int_equal(simul_task_cancel(a), 0);
    test_join_ok(a);
    assert_int_equal(w[0].rc, -ECANCELED);
    assert_int_equal(simul_event_set(e), 0);
    test_join_ok(b);
    assert_int_equal(w[1].rc, 0);
    simul_event_free(e);
    return 0;
}

SIMUL_TASK_TEST(event_set_then_cancel_returns_zero)
{
    (void)arg;
    simul_event *e;
    assert_int_equal(simul_event_new(&e), 0);
    static waiter w;
    waiter_init(&w, 0, NULL, e);
    simul_task *t = test_spawn(event_waiter, &w);
    test_settle();
    assert_int_equal(simul_event_set(e), 0);
    assert_int_equal(simul_task_cancel(t), 0);
    test_join_ok(t);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.next_rc, -ECANCELED);
    simul_event_free(e);
    return 0;
}

/* ---- Condition ------------------------------------------------------------------------------- */

static int cond_wait(waiter *w)
{
    simul_condition *c = w->obj;
    assert_int_equal(simul_condition_acquire(c), 0);
    int rc = simul_condition_wait(c);
    assert_true(simul_condition_locked(c));
    w->release_rc = simul_condition_release(c); /* 0 proves it owned the lock again */
    w->next_rc = simul_yield();
    return rc;
}

static int cond_waiter(void *arg)
{
    return run_wait(arg, cond_wait);
}

SIMUL_TASK_TEST(cond_notify_n_fifo)
{
    (void)arg;
    simul_condition *c;
    assert_int_equal(simul_condition_new(&c, NULL), 0);
    static order o;
    static waiter w[5];
    simul_task *t[5];
    for (int i = 0; i < 5; i++) {
        waiter_init(&w[i], i, &o, c);
        t[i] = test_spawn(cond_waiter, &w[i]);
    }
    test_settle();
    assert_false(simul_condition_locked(c)); /* every waiter released it */
    assert_int_equal(simul_condition_acquire(c), 0);
    assert_int_equal(simul_condition_notify(c, 1), 1);
    assert_int_equal(simul_condition_release(c), 0);
    test_settle();
    int want1[] = {0};
    assert_order(&o, want1, 1);
    assert_int_equal(simul_condition_acquire(c), 0);
    assert_int_equal(simul_condition_notify(c, 2), 2);
    assert_int_equal(simul_condition_release(c), 0);
    test_settle();
    int want2[] = {0, 1, 2};
    assert_order(&o, want2, 3);
    assert_int_equal(simul_condition_acquire(c), 0);
    assert_int_equal(simul_condition_notify_all(c), 2);
    assert_int_equal(simul_condition_notify_all(c), 0);
    assert_int_equal(simul_condition_release(c), 0);
    for (int i = 0; i < 5; i++) {
        test_join_ok(t[i]);
        assert_int_equal(w[i].rc, 0);
        assert_int_equal(w[i].release_rc, 0);
    }
    int want3[] = {0, 1, 2, 3, 4};
    assert_order(&o, want3, 5);
    simul_condition_free(c);
    return 0;
}

/* notify_all while holding the lock: the woken tasks queue for the lock instead of all waking. */
SIMUL_TASK_TEST(cond_notify_all_waiters_wake_one_at_a_time)
{
    (void)arg;
    simul_condition *c;
    assert_int_equal(simul_condition_new(&c, NULL), 0);
    static order o;
    static waiter w[4];
    simul_task *t[4];
    for (int i = 0; i < 4; i++) {
        waiter_init(&w[i], i, &o, c);
        t[i] = test_spawn(cond_waiter, &w[i]);
    }
    test_settle();
    assert_int_equal(simul_condition_acquire(c), 0);
    assert_int_equal(simul_condition_notify_all(c), 4);
    test_settle();
    assert_int_equal(o.n, 0); /* nobody runs while the notifier holds the lock */
    for (int i = 0; i < 4; i++)
        assert_int_equal(w[i].rc, 1);
    assert_int_equal(simul_condition_release(c), 0);
    for (int i = 0; i < 4; i++)
        test_join_ok(t[i]);
    int want[] = {0, 1, 2, 3};
    assert_order(&o, want, 4);
    simul_condition_free(c);
    return 0;
}

SIMUL_TASK_TEST(cond_requires_lock)
{
    (void)arg;
    simul_condition *c;
    assert_int_equal(simul_condition_new(&c, NULL), 0);
    assert_int_equal(simul_condition_wait(c), -EPERM);
    assert_int_equal(simul_condition_notify(c, 1), -EPERM);
    assert_int_equal(simul_condition_notify_all(c), -EPERM);
    assert_int_equal(simul_condition_release(c), -EPERM);
    assert_int_equal(simul_condition_wait(NULL), -EINVAL);
    assert_int_equal(simul_condition_notify(NULL, 1), -EINVAL);
    assert_int_equal(simul_condition_acquire(NULL), -EINVAL);
    assert_int_equal(simul_condition_release(NULL), -EINVAL);
    assert_int_equal(simul_condition_new(NULL, NULL), -EINVAL);
    assert_false(simul_condition_locked(NULL));
    assert_int_equal(simul_condition_acquire(c), 0);
    assert_int_equal(simul_condition_notify(c, 1), 0); /* nobody waits */
    assert_int_equal(simul_condition_release(c), 0);
    simul_condition_free(c);
    simul_condition_free(NULL);
    return 0;
}

SIMUL_TASK_TEST(cond_cancel_waiter_reacquires_lock)
{
    (void)arg;
    simul_condition *c;
    assert_int_equal(simul_condition_new(&c, NULL), 0);
    static waiter w;
    waiter_init(&w, 0, NULL, c);
    simul_task *t = test_spawn(cond_waiter, &w);
    test_settle();
    assert_int_equal(simul_condition_acquire(c), 0);
    assert_int_equal(simul_task_cancel(t), 0);
    test_settle();
    assert_int_equal(w.rc, 1); /* it cannot return without the lock, which we hold */
    assert_int_equal(simul_condition_release(c), 0);
    test_join_ok(t);
    assert_int_equal(w.rc, -ECANCELED);
    assert_int_equal(w.release_rc, 0); /* it held the lock when its wait returned */
    assert_int_equal(w.next_rc, -ECANCELED);
    assert_false(simul_condition_locked(c));
    simul_condition_free(c);
    return 0;
}

SIMUL_TASK_TEST(cond_timeout_reacquires_lock)
{
    (void)arg;
    simul_condition *c;
    assert_int_equal(simul_condition_new(&c, NULL), 0);
    static waiter w;
    waiter_init(&w, 0, NULL, c);
    w.timeout = 0.03;
    simul_task *t = test_spawn(cond_waiter, &w);
    test_settle();
    assert_int_equal(simul_condition_acquire(c), 0);
    assert_int_equal(simul_sleep(0.1), 0); /* the deadline passes while we hold the lock */
    assert_int_equal(w.rc, 1);
    assert_int_equal(simul_condition_release(c), 0);
    test_join_ok(t);
    assert_int_equal(w.rc, -ETIMEDOUT);
    assert_int_equal(w.scope_end, 1);
    assert_int_equal(w.release_rc, 0);
    assert_true(w.elapsed >= 0.09);
    simul_condition_free(c);
    return 0;
}

SIMUL_TASK_TEST(cond_notified_then_cancelled_returns_zero)
{
    (void)arg;
    simul_condition *c;
    assert_int_equal(simul_condition_new(&c, NULL), 0);
    static waiter w[2];
    waiter_init(&w[0], 0, NULL, c);
    waiter_init(&w[1], 1, NULL, c);
    simul_task *a = test_spawn(cond_waiter, &w[0]);
    simul_task *b = test_spawn(cond_waiter, &w[1]);
    test_settle();
    assert_int_equal(simul_condition_acquire(c), 0);
    assert_int_equal(simul_condition_notify(c, 1), 1); /* a is notified ... */
    assert_int_equal(simul_task_cancel(a), 0);         /* ... then cancelled */
    test_settle();
    assert_int_equal(simul_condition_release(c), 0);
    test_join_ok(a);
    assert_int_equal(w[0].rc, 0); /* the notification is not lost */
    assert_int_equal(w[0].release_rc, 0);
    assert_int_equal(w[0].next_rc, -ECANCELED);
    /* b was not notified by it */
    assert_int_equal(w[1].rc, 1);
    assert_int_equal(simul_condition_acquire(c), 0);
    assert_int_equal(simul_condition_notify(c, 1), 1);
    assert_int_equal(simul_condition_release(c), 0);
    test_join_ok(b);
    assert_int_equal(w[1].rc, 0);
    simul_condition_free(c);
    return 0;
}

typedef struct counter {
    simul_condition *c;
    int value;
    int target;
} counter;

static bool reached(void *arg)
{
    counter *k = arg;
    return k->value >= k->target;
}

static int incrementer(void *arg)
{
    counter *k = arg;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(simul_condition_acquire(k->c), 0);
        k->value++;
        assert_true(simul_condition_notify_all(k->c) >= 0);
        assert_int_equal(simul_condition_release(k->c), 0);
        assert_int_equal(simul_sleep(0.001), 0);
    }
    return 0;
}

SIMUL_TASK_TEST(cond_wait_for_predicate_shared_lock)
{
    (void)arg;
    simul_lock *l;
    assert_int_equal(simul_lock_new(&l), 0);
    static counter k;
    assert_int_equal(simul_condition_new(&k.c, l), 0);
    k.target = 3;
    simul_task *t = test_spawn(incrementer, &k);
    assert_int_equal(simul_lock_acquire(l), 0); /* the shared lock is the condition's */
    assert_true(simul_condition_locked(k.c));
    assert_int_equal(simul_condition_wait_for(k.c, reached, &k), 0);
    assert_true(k.value >= 3);
    assert_int_equal(simul_condition_wait_for(k.c, reached, &k), 0); /* already true */
    assert_int_equal(simul_condition_wait_for(k.c, NULL, NULL), -EINVAL);
    assert_int_equal(simul_lock_release(l), 0);
    assert_int_equal(simul_condition_wait_for(k.c, reached, &k), -EPERM);
    test_join_ok(t);
    simul_condition_free(k.c);
    assert_false(simul_lock_locked(l)); /* still a valid lock: the condition did not free it */
    assert_int_equal(simul_lock_acquire(l), 0);
    assert_int_equal(simul_lock_release(l), 0);
    simul_lock_free(l);
    return 0;
}

static int cond_raw_waiter(void *arg)
{
    waiter *w = arg;
    assert_int_equal(simul_condition_acquire(w->obj), 0);
    w->rc = simul_condition_wait(w->obj); /* and nothing on the condition after it */
    return 0;
}

SIMUL_TASK_TEST(cond_free_with_waiter_cancels_it)
{
    (void)arg;
    simul_condition *c;
    assert_int_equal(simul_condition_new(&c, NULL), 0);
    static waiter w;
    waiter_init(&w, 0, NULL, c);
    simul_task *t = test_spawn(cond_raw_waiter, &w);
    test_settle();
    /* Freed (with its own lock) under the waiter: it resumes without touching either. */
    simul_condition_free(c);
    test_join_ok(t);
    assert_int_equal(w.rc, -ECANCELED);
    return 0;
}

/* ---- Semaphore ------------------------------------------------------------------------------- */

static int sem_wait(waiter *w)
{
    int rc = simul_semaphore_acquire(w->obj);
    w->next_rc = simul_yield();
    return rc;
}

static int sem_waiter(void *arg)
{
    return run_wait(arg, sem_wait);
}

SIMUL_TASK_TEST(sem_basic)
{
    (void)arg;
    simul_semaphore *s;
    assert_int_equal(simul_semaphore_new(&s, 2), 0);
    assert_int_equal(simul_semaphore_value(s), 2);
    assert_false(simul_semaphore_locked(s));
    assert_int_equal(simul_semaphore_acquire(s), 0);
    assert_int_equal(simul_semaphore_try_acquire(s), 0);
    assert_true(simul_semaphore_locked(s));
    assert_int_equal(simul_semaphore_try_acquire(s), -EAGAIN);
    assert_int_equal(simul_semaphore_release(s), 0);
    assert_int_equal(simul_semaphore_release(s), 0);
    assert_int_equal(simul_semaphore_release(s), 0); /* unbounded: may go above the start */
    assert_int_equal(simul_semaphore_value(s), 3);
    assert_int_equal(simul_semaphore_new(NULL, 1), -EINVAL);
    assert_int_equal(simul_semaphore_acquire(NULL), -EINVAL);
    assert_int_equal(simul_semaphore_try_acquire(NULL), -EINVAL);
    assert_int_equal(simul_semaphore_release(NULL), -EINVAL);
    simul_semaphore_free(s);
    assert_int_equal(simul_semaphore_new(&s, UINT_MAX), 0);
    assert_int_equal(simul_semaphore_release(s), -EOVERFLOW);
    simul_semaphore_free(s);
    simul_semaphore_free(NULL);
    return 0;
}

SIMUL_TASK_TEST(bounded_sem_overflow)
{
    (void)arg;
    simul_semaphore *s;
    assert_int_equal(simul_bounded_semaphore_new(&s, 2), 0);
    assert_int_equal(simul_semaphore_release(s), -EOVERFLOW);
    assert_int_equal(simul_semaphore_value(s), 2);
    assert_int_equal(simul_semaphore_acquire(s), 0);
    assert_int_equal(simul_semaphore_acquire(s), 0);
    assert_int_equal(simul_semaphore_release(s), 0);
    assert_int_equal(simul_semaphore_release(s), 0);
    assert_int_equal(simul_semaphore_release(s), -EOVERFLOW);
    assert_int_equal(simul_semaphore_value(s), 2);
    simul_semaphore_free(s);
    assert_int_equal(simul_bounded_semaphore_new(&s, 0), 0);
    assert_int_equal(simul_semaphore_release(s), -EOVERFLOW);
    simul_semaphore_free(s);
    return 0;
}

SIMUL_TASK_TEST(sem_release_wakes_one_fifo)
{
    (void)arg;
    simul_semaphore *s;
    assert_int_equal(simul_semaphore_new(&s, 0), 0);
    static order o;
    static waiter w[4];
    simul_task *t[4];
    for (int i = 0; i < 4; i++) {
        waiter_init(&w[i], i, &o, s);
        t[i] = test_spawn(sem_waiter, &w[i]);
    }
    test_settle();
    assert_int_equal(o.n, 0);
    assert_int_equal(simul_semaphore_release(s), 0);
    assert_int_equal(simul_semaphore_value(s), 0); /* handed over, not banked */
    assert_int_equal(simul_semaphore_try_acquire(s), -EAGAIN);
    test_settle();
    int want1[] = {0};
    assert_order(&o, want1, 1);
    for (int i = 1; i < 4; i++)
        assert_int_equal(w[i].rc, 1);
    assert_int_equal(simul_semaphore_release(s), 0);
    assert_int_equal(simul_semaphore_release(s), 0);
    test_settle();
    int want2[] = {0, 1, 2};
    assert_order(&o, want2, 3);
    assert_int_equal(simul_semaphore_release(s), 0);
    assert_int_equal(simul_semaphore_release(s), 0); /* nobody waits: banked */
    for (int i = 0; i < 4; i++)
        test_join_ok(t[i]);
    assert_int_equal(simul_semaphore_value(s), 1);
    simul_semaphore_free(s);
    return 0;
}

SIMUL_TASK_TEST(sem_cancel_while_waiting_and_after_handoff)
{
    (void)arg;
    simul_semaphore *s;
    assert_int_equal(simul_bounded_semaphore_new(&s, 1), 0);
    assert_int_equal(simul_semaphore_acquire(s), 0);
    static waiter w[2];
    waiter_init(&w[0], 0, NULL, s);
    waiter_init(&w[1], 1, NULL, s);
    simul_task *a = test_spawn(sem_waiter, &w[0]);
    simul_task *b = test_spawn(sem_waiter, &w[1]);
    test_settle();
    assert_int_equal(simul_task_cancel(a), 0); /* still waiting: it leaves */
    test_join_ok(a);
    assert_int_equal(w[0].rc, -ECANCELED);
    assert_int_equal(simul_semaphore_release(s), 0); /* goes to b ... */
    assert_int_equal(simul_task_cancel(b), 0);       /* ... and then b is cancelled */
    test_join_ok(b);
    assert_int_equal(w[1].rc, 0); /* b holds the unit */
    assert_int_equal(w[1].next_rc, -ECANCELED);
    assert_int_equal(simul_semaphore_value(s), 0);
    assert_int_equal(simul_semaphore_release(s), 0); /* b's unit, given back for it */
    assert_int_equal(simul_semaphore_value(s), 1);
    assert_int_equal(simul_semaphore_release(s), -EOVERFLOW);
    simul_semaphore_free(s);
    return 0;
}

SIMUL_TASK_TEST(sem_timeout_scope)
{
    (void)arg;
    simul_semaphore *s;
    assert_int_equal(simul_semaphore_new(&s, 0), 0);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.02), 0);
    double t0 = test_clock();
    assert_int_equal(simul_semaphore_acquire(s), -ETIMEDOUT);
    assert_true(test_clock() - t0 >= 0.015);
    assert_int_equal(simul_scope_end(&sc), 1);
    assert_int_equal(simul_semaphore_release(s), 0);
    assert_int_equal(simul_semaphore_value(s), 1); /* the timed-out wait took nothing */
    simul_semaphore_free(s);
    return 0;
}

/* ---- Barrier --------------------------------------------------------------------------------- */

static int barrier_wait(waiter *w)
{
    int rc = simul_barrier_wait(w->obj);
    w->next_rc = simul_yield();
    return rc;
}

static int barrier_waiter(void *arg)
{
    return run_wait(arg, barrier_wait);
}

SIMUL_TASK_TEST(barrier_indices_and_rounds)
{
    (void)arg;
    simul_barrier *b;
    assert_int_equal(simul_barrier_new(&b, 3), 0);
    assert_int_equal(simul_barrier_parties(b), 3);
    for (int round = 0; round < 3; round++) {
        static waiter w[2];
        simul_task *t[2];
        for (int i = 0; i < 2; i++) {
            waiter_init(&w[i], i, NULL, b);
            t[i] = test_spawn(barrier_waiter, &w[i]);
        }
        test_settle();
        assert_int_equal(simul_barrier_n_waiting(b), 2);
        assert_int_equal(w[0].rc, 1);
        assert_int_equal(simul_barrier_wait(b), 2); /* the last arrival */
        assert_int_equal(simul_barrier_n_waiting(b), 0);
        for (int i = 0; i < 2; i++) {
            test_join_ok(t[i]);
            assert_int_equal(w[i].rc, i);
        }
    }
    assert_false(simul_barrier_broken(b));
    simul_barrier_free(b);
    assert_int_equal(simul_barrier_new(&b, 1), 0);
    assert_int_equal(simul_barrier_wait(b), 0);
    assert_int_equal(simul_barrier_wait(b), 0);
    simul_barrier_free(b);
    assert_int_equal(simul_barrier_new(&b, 0), -EINVAL);
    assert_int_equal(simul_barrier_new(NULL, 2), -EINVAL);
    assert_int_equal(simul_barrier_wait(NULL), -EINVAL);
    assert_int_equal(simul_barrier_abort(NULL), -EINVAL);
    assert_int_equal(simul_barrier_reset(NULL), -EINVAL);
    simul_barrier_free(NULL);
    return 0;
}

SIMUL_TASK_TEST(barrier_abort_breaks_until_reset)
{
    (void)arg;
    simul_barrier *b;
    assert_int_equal(simul_barrier_new(&b, 3), 0);
    static waiter w[2];
    simul_task *t[2];
    for (int i = 0; i < 2; i++) {
        waiter_init(&w[i], i, NULL, b);
        t[i] = test_spawn(barrier_waiter, &w[i]);
    }
    test_settle();
    assert_int_equal(simul_barrier_abort(b), 0);
    assert_true(simul_barrier_broken(b));
    assert_int_equal(simul_barrier_n_waiting(b), 0);
    for (int i = 0; i < 2; i++) {
        test_join_ok(t[i]);
        assert_int_equal(w[i].rc, -EPIPE);
    }
    assert_int_equal(simul_barrier_wait(b), -EPIPE); /* broken: at once */
    assert_int_equal(simul_barrier_reset(b), 0);
    assert_false(simul_barrier_broken(b));
    for (int i = 0; i < 2; i++) {
        waiter_init(&w[i], i, NULL, b);
        t[i] = test_spawn(barrier_waiter, &w[i]);
    }
    test_settle();
    assert_int_equal(simul_barrier_wait(b), 2);
    for (int i = 0; i < 2; i++) {
        test_join_ok(t[i]);
        assert_int_equal(w[i].rc, i);
    }
    simul_barrier_free(b);
    return 0;
}

SIMUL_TASK_TEST(barrier_reset_ends_round)
{
    (void)arg;
    simul_barrier *b;
    assert_int_equal(simul_barrier_new(&b, 3), 0);
    static waiter w[2];
    simul_task *t[2];
    for (int i = 0; i < 2; i++) {
        waiter_init(&w[i], i, NULL, b);
        t[i] = test_spawn(barrier_waiter, &w[i]);
    }
    test_settle();
    assert_int_equal(simul_barrier_reset(b), 0);
    assert_false(simul_barrier_broken(b));
    for (int i = 0; i < 2; i++) {
        test_join_ok(t[i]);
        assert_int_equal(w[i].rc, -EPIPE);
    }
    assert_int_equal(simul_barrier_n_waiting(b), 0);
    simul_barrier_free(b);
    return 0;
}

SIMUL_TASK_TEST(barrier_cancelled_waiter_leaves_round)
{
    (void)arg;
    simul_barrier *b;
    assert_int_equal(simul_barrier_new(&b, 3), 0);
    static waiter w[3];
    simul_task *t[3];
    for (int i = 0; i < 2; i++) {
        waiter_init(&w[i], i, NULL, b);
        t[i] = test_spawn(barrier_waiter, &w[i]);
    }
    test_settle();
    assert_int_equal(simul_task_cancel(t[0]), 0);
    test_join_ok(t[0]);
    assert_int_equal(w[0].rc, -ECANCELED);
    assert_int_equal(simul_barrier_n_waiting(b), 1);
    waiter_init(&w[2], 2, NULL, b);
    w[2].timeout = 0.02;
    t[2] = test_spawn(barrier_waiter, &w[2]);
    assert_int_equal(simul_sleep(0.05), 0);
    test_join_ok(t[2]);
    assert_int_equal(w[2].rc, -ETIMEDOUT);
    assert_int_equal(simul_barrier_n_waiting(b), 1);
    /* The round still needs three: one more task and us. Indices stay unique. */
    waiter_init(&w[2], 2, NULL, b);
    t[2] = test_spawn(barrier_waiter, &w[2]);
    test_settle();
    assert_int_equal(simul_barrier_n_waiting(b), 2);
    assert_int_equal(simul_barrier_wait(b), 2);
    test_join_ok(t[1]);
    test_join_ok(t[2]);
    assert_int_equal(w[1].rc, 0);
    assert_int_equal(w[2].rc, 1);
    simul_barrier_free(b);
    return 0;
}

SIMUL_TASK_TEST(barrier_trip_then_cancel_keeps_index)
{
    (void)arg;
    simul_barrier *b;
    assert_int_equal(simul_barrier_new(&b, 2), 0);
    static waiter w;
    waiter_init(&w, 0, NULL, b);
    simul_task *t = test_spawn(barrier_waiter, &w);
    test_settle();
    assert_int_equal(simul_barrier_wait(b), 1);
    assert_int_equal(simul_task_cancel(t), 0);
    test_join_ok(t);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.next_rc, -ECANCELED);
    simul_barrier_free(b);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lock_basic),
        cmocka_unit_test(lock_fifo_order),
        cmocka_unit_test(lock_release_hands_off_no_barging),
        cmocka_unit_test(lock_release_by_non_owner_eperm),
        cmocka_unit_test(lock_cancel_while_waiting),
        cmocka_unit_test(lock_cancel_after_handoff_keeps_lock),
        cmocka_unit_test(lock_cancelled_task_does_not_take_free_lock),
        cmocka_unit_test(lock_timeout_scope),
        cmocka_unit_test(lock_owner_finishes_holding_debug_report),
        cmocka_unit_test(lock_free_with_waiter_cancels_it),
        cmocka_unit_test(suspending_calls_outside_task_eperm),
        cmocka_unit_test(event_set_wakes_all_in_order),
        cmocka_unit_test(event_set_wait_clear_timeout),
        cmocka_unit_test(event_set_then_clear_still_wakes),
        cmocka_unit_test(event_cancel_waiter),
        cmocka_unit_test(event_set_then_cancel_returns_zero),
        cmocka_unit_test(cond_notify_n_fifo),
        cmocka_unit_test(cond_notify_all_waiters_wake_one_at_a_time),
        cmocka_unit_test(cond_requires_lock),
        cmocka_unit_test(cond_cancel_waiter_reacquires_lock),
        cmocka_unit_test(cond_timeout_reacquires_lock),
        cmocka_unit_test(cond_notified_then_cancelled_returns_zero),
        cmocka_unit_test(cond_wait_for_predicate_shared_lock),
        cmocka_unit_test(cond_free_with_waiter_cancels_it),
        cmocka_unit_test(sem_basic),
        cmocka_unit_test(bounded_sem_overflow),
        cmocka_unit_test(sem_release_wakes_one_fifo),
        cmocka_unit_test(sem_cancel_while_waiting_and_after_handoff),
        cmocka_unit_test(sem_timeout_scope),
        cmocka_unit_test(barrier_indices_and_rounds),
        cmocka_unit_test(barrier_abort_breaks_until_reset),
        cmocka_unit_test(barrier_reset_ends_round),
        cmocka_unit_test(barrier_cancelled_waiter_leaves_round),
        cmocka_unit_test(barrier_trip_then_cancel_keeps_index),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_sync");
}
