/* test_queue.c — Queue, LifoQueue, PriorityQueue: order (FIFO, LIFO, priority, stable ties),
 * backpressure, direct hand-over to getters, _nowait codes, task_done/join, shutdown (both
 * modes), free with a discard callback, and cancellation/deadlines at each wait, including the
 * races where the cancel lands just after an item was handed over.
 */
#include "test_main_helpers.h"

#define ITEM(n) ((void *)(intptr_t)(n))
#define NUM(p) ((int)(intptr_t)(p))

/* Gets everything left without waiting, checking it against want[0..n). */
static void drain_expect(simul_queue *q, const int *want, int n)
{
    for (int i = 0; i < n; i++) {
        void *it = NULL;
        assert_int_equal(simul_queue_get_nowait(q, &it), 0);
        assert_int_equal(NUM(it), want[i]);
    }
    void *it;
    assert_int_equal(simul_queue_get_nowait(q, &it), -EAGAIN);
}

/* A getter or putter task. */
typedef struct op {
    simul_queue *q;
    int id;
    void *item; /* putter: what to put; getter: what it got */
    int rc;     /* 1 = not returned yet */
    int next_rc;
    double timeout; /* > 0: inside a deadline scope */
    int scope_end;
    int *log; /* getter: appends the item number here */
    int *nlog;
} op;

static void op_init(op *o, simul_queue *q, int id, void *item)
{
    memset(o, 0, sizeof *o);
    o->q = q;
    o->id = id;
    o->item = item;
    o->rc = 1;
    o->next_rc = 1;
    o->scope_end = -100;
}

static int getter(void *arg)
{
    op *o = arg;
    simul_scope s;
    if (o->timeout > 0)
        assert_int_equal(simul_scope_timeout(&s, o->timeout), 0);
    o->rc = simul_queue_get(o->q, &o->item);
    if (o->timeout > 0)
        o->scope_end = simul_scope_end(&s);
    if (o->rc == 0 && o->log)
        o->log[(*o->nlog)++] = NUM(o->item);
    o->next_rc = simul_yield();
    return 0;
}

static int putter(void *arg)
{
    op *o = arg;
    simul_scope s;
    if (o->timeout > 0)
        assert_int_equal(simul_scope_timeout(&s, o->timeout), 0);
    o->rc = simul_queue_put(o->q, o->item);
    if (o->timeout > 0)
        o->scope_end = simul_scope_end(&s);
    o->next_rc = simul_yield();
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = NUM(a) / 10, y = NUM(b) / 10; /* priority = tens; units tell equal ones apart */
    return (x > y) - (x < y);
}

static int cmp_big(const void *a, const void *b)
{
    int x = NUM(a) / 100000, y = NUM(b) / 100000;
    return (x > y) - (x < y);
}

/* ---- order ----------------------------------------------------------------------------------- */

SIMUL_TASK_TEST(fifo_order_and_sizes)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 3), 0);
    assert_int_equal(simul_queue_maxsize(q), 3);
    assert_true(simul_queue_empty(q));
    assert_false(simul_queue_full(q));
    for (int i = 1; i <= 3; i++)
        assert_int_equal(simul_queue_put(q, ITEM(i)), 0);
    assert_int_equal(simul_queue_qsize(q), 3);
    assert_true(simul_queue_full(q));
    assert_false(simul_queue_empty(q));
    assert_int_equal(simul_queue_put_nowait(q, ITEM(4)), -EAGAIN);
    void *it;
    assert_int_equal(simul_queue_get(q, &it), 0);
    assert_int_equal(NUM(it), 1);
    assert_int_equal(simul_queue_put_nowait(q, ITEM(4)), 0);
    int want[] = {2, 3, 4};
    drain_expect(q, want, 3);
    assert_true(simul_queue_empty(q));
    assert_int_equal(simul_queue_put_nowait(q, NULL), 0); /* NULL is an item like any */
    it = ITEM(9);
    assert_int_equal(simul_queue_get(q, &it), 0);
    assert_null(it);
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(unbounded_grows_and_wraps)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 0), 0);
    assert_false(simul_queue_full(q));
    int next_in = 0, next_out = 0;
    /* Interleave so the ring wraps before it grows. */
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 37; i++)
            assert_int_equal(simul_queue_put_nowait(q, ITEM(next_in++)), 0);
        for (int i = 0; i < 20; i++) {
            void *it;
            assert_int_equal(simul_queue_get_nowait(q, &it), 0);
            assert_int_equal(NUM(it), next_out++);
        }
    }
    assert_int_equal(simul_queue_qsize(q), (size_t)(next_in - next_out));
    assert_false(simul_queue_full(q));
    while (next_out < next_in) {
        void *it;
        assert_int_equal(simul_queue_get_nowait(q, &it), 0);
        assert_int_equal(NUM(it), next_out++);
    }
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(lifo_order)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_lifo_queue_new(&q, 0), 0);
    for (int i = 1; i <= 40; i++)
        assert_int_equal(simul_queue_put(q, ITEM(i)), 0);
    for (int i = 40; i >= 21; i--) {
        void *it;
        assert_int_equal(simul_queue_get(q, &it), 0);
        assert_int_equal(NUM(it), i);
    }
    assert_int_equal(simul_queue_put(q, ITEM(100)), 0);
    void *it;
    assert_int_equal(simul_queue_get(q, &it), 0);
    assert_int_equal(NUM(it), 100);
    for (int i = 20; i >= 1; i--) {
        assert_int_equal(simul_queue_get_nowait(q, &it), 0);
        assert_int_equal(NUM(it), i);
    }
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(priority_order_stable)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_priority_queue_new(&q, 0, NULL), -EINVAL);
    assert_int_equal(simul_priority_queue_new(&q, 0, cmp_int), 0);
    /* tens = priority; put in a scrambled order, with several items per priority. */
    int in[] = {31, 10, 52, 32, 11, 50, 12, 33, 51, 20, 13, 34, 21, 53, 35};
    for (size_t i = 0; i < ARRAY_LEN(in); i++)
        assert_int_equal(simul_queue_put(q, ITEM(in[i])), 0);
    int want[] = {10, 11, 12, 13, 20, 21, 31, 32, 33, 34, 35, 52, 50, 51, 53};
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        void *it;
        assert_int_equal(simul_queue_get(q, &it), 0);
        assert_int_equal(NUM(it), want[i]);
    }
    simul_queue_free(q, NULL);
    /* Many equal ones, interleaved with gets: each priority strictly in put order. */
    assert_int_equal(simul_priority_queue_new(&q, 0, cmp_big), 0);
    int last[3] = {-1, -1, -1};
    int next = 0, got = 0, prev_prio = -1;
    unsigned seed = 12345;
    while (got < 3000) {
        if (next < 3000 && (rand_r(&seed) % 3 != 0 || simul_queue_empty(q))) {
            int prio = rand_r(&seed) % 3;
            assert_int_equal(simul_queue_put_nowait(q, ITEM(prio * 100000 + next++)), 0);
            continue;
        }
        void *it;
        assert_int_equal(simul_queue_get_nowait(q, &it), 0);
        int prio = NUM(it) / 100000, seq = NUM(it) % 100000;
        assert_true(seq > last[prio]); /* stable */
        last[prio] = seq;
        if (next == 3000) { /* all in: what comes out is sorted by priority */
            assert_true(prio >= prev_prio);
            prev_prio = prio;
        }
        got++;
    }
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(priority_bounded_blocked_putter_joins_heap)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_priority_queue_new(&q, 2, cmp_int), 0);
    assert_int_equal(simul_queue_put(q, ITEM(30)), 0);
    assert_int_equal(simul_queue_put(q, ITEM(20)), 0);
    static op p;
    op_init(&p, q, 0, ITEM(10));
    simul_task *t = test_spawn(putter, &p);
    test_settle();
    assert_int_equal(p.rc, 1);
    void *it;
    assert_int_equal(simul_queue_get(q, &it), 0);
    assert_int_equal(NUM(it), 20);
    assert_int_equal(simul_queue_qsize(q), 2); /* the putter's item moved in */
    test_join_ok(t);
    assert_int_equal(p.rc, 0);
    int want[] = {10, 30};
    drain_expect(q, want, 2);
    simul_queue_free(q, NULL);
    return 0;
}

/* ---- blocking, hand-over, backpressure ------------------------------------------------------- */

SIMUL_TASK_TEST(put_blocks_when_full_fifo_putters)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 2), 0);
    assert_int_equal(simul_queue_put(q, ITEM(1)), 0);
    assert_int_equal(simul_queue_put(q, ITEM(2)), 0);
    static op p[3];
    simul_task *t[3];
    for (int i = 0; i < 3; i++) {
        op_init(&p[i], q, i, ITEM(3 + i));
        t[i] = test_spawn(putter, &p[i]);
    }
    test_settle();
    for (int i = 0; i < 3; i++)
        assert_int_equal(p[i].rc, 1); /* backpressure: all three wait */
    assert_int_equal(simul_queue_qsize(q), 2);
    void *it;
    assert_int_equal(simul_queue_get(q, &it), 0);
    assert_int_equal(NUM(it), 1);
    test_settle();
    assert_int_equal(p[0].rc, 0); /* only the first putter got in */
    assert_int_equal(p[1].rc, 1);
    assert_int_equal(p[2].rc, 1);
    assert_int_equal(simul_queue_put_nowait(q, ITEM(99)), -EAGAIN); /* no barging */
    for (int i = 2; i <= 5; i++) {
        assert_int_equal(simul_queue_get(q, &it), 0);
        assert_int_equal(NUM(it), i);
    }
    for (int i = 0; i < 3; i++) {
        test_join_ok(t[i]);
        assert_int_equal(p[i].rc, 0);
    }
    assert_true(simul_queue_empty(q));
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(put_hands_item_to_waiting_getters_in_order)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 1), 0);
    static op g[4];
    static int log[8];
    static int nlog;
    simul_task *t[4];
    for (int i = 0; i < 4; i++) {
        op_init(&g[i], q, i, NULL);
        g[i].log = log;
        g[i].nlog = &nlog;
        t[i] = test_spawn(getter, &g[i]);
    }
    test_settle();
    for (int i = 0; i < 4; i++) {
        /* maxsize 1, yet four puts go through at once: each item goes straight to a getter */
        assert_int_equal(simul_queue_put_nowait(q, ITEM(10 + i)), 0);
        assert_int_equal(simul_queue_qsize(q), 0);
    }
    for (int i = 0; i < 4; i++) {
        test_join_ok(t[i]);
        assert_int_equal(g[i].rc, 0);
        assert_int_equal(NUM(g[i].item), 10 + i); /* first getter, first item */
    }
    assert_int_equal(nlog, 4);
    simul_queue_free(q, NULL);
    return 0;
}

typedef struct pc {
    simul_queue *q;
    int n;
    int got[200];
    int ngot;
    double blocked;
} pc;

static int slow_consumer(void *arg)
{
    pc *c = arg;
    for (int i = 0; i < c->n; i++) {
        void *it;
        assert_int_equal(simul_queue_get(c->q, &it), 0);
        c->got[c->ngot++] = NUM(it);
        assert_int_equal(simul_sleep(0.002), 0);
        assert_int_equal(simul_queue_task_done(c->q), 0);
    }
    return 0;
}

SIMUL_TASK_TEST(backpressure_slows_producer)
{
    (void)arg;
    static pc c;
    assert_int_equal(simul_queue_new(&c.q, 2), 0);
    c.n = 30;
    simul_task *t = test_spawn(slow_consumer, &c);
    double t0 = test_clock();
    for (int i = 0; i < c.n; i++)
        assert_int_equal(simul_queue_put(c.q, ITEM(i)), 0);
    double put_time = test_clock() - t0;
    /* 30 items at 2 ms each through 2 slots: the producer spent most of it blocked. */
    assert_true(put_time >= 0.04);
    assert_int_equal(simul_queue_join(c.q), 0);
    test_join_ok(t);
    for (int i = 0; i < c.n; i++)
        assert_int_equal(c.got[i], i);
    simul_queue_free(c.q, NULL);
    return 0;
}

/* ---- cancellation and deadlines -------------------------------------------------------------- */

SIMUL_TASK_TEST(get_cancelled_while_waiting_loses_nothing)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 0), 0);
    static op g[2];
    op_init(&g[0], q, 0, NULL);
    op_init(&g[1], q, 1, NULL);
    simul_task *a = test_spawn(getter, &g[0]);
    simul_task *b = test_spawn(getter, &g[1]);
    test_settle();
    assert_int_equal(simul_task_cancel(a), 0);
    test_join_ok(a);
    assert_int_equal(g[0].rc, -ECANCELED);
    assert_int_equal(simul_queue_put(q, ITEM(5)), 0); /* goes to b, not to the cancelled a */
    assert_int_equal(simul_queue_put(q, ITEM(6)), 0); /* stays in the queue */
    test_join_ok(b);
    assert_int_equal(g[1].rc, 0);
    assert_int_equal(NUM(g[1].item), 5);
    int want[] = {6};
    drain_expect(q, want, 1);
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(get_cancelled_after_handoff_keeps_item)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 0), 0);
    static op g;
    op_init(&g, q, 0, NULL);
    simul_task *t = test_spawn(getter, &g);
    test_settle();
    assert_int_equal(simul_queue_put(q, ITEM(7)), 0); /* handed over ... */
    assert_int_equal(simul_task_cancel(t), 0);        /* ... then the cancel lands */
    test_join_ok(t);
    assert_int_equal(g.rc, 0);
    assert_int_equal(NUM(g.item), 7);
    assert_int_equal(g.next_rc, -ECANCELED);
    assert_true(simul_queue_empty(q));
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(put_cancelled_while_blocked_not_enqueued)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 1), 0);
    assert_int_equal(simul_queue_put(q, ITEM(1)), 0);
    static op p[2];
    op_init(&p[0], q, 0, ITEM(2));
    op_init(&p[1], q, 1, ITEM(3));
    simul_task *a = test_spawn(putter, &p[0]);
    simul_task *b = test_spawn(putter, &p[1]);
    test_settle();
    assert_int_equal(simul_task_cancel(a), 0);
    test_join_ok(a);
    assert_int_equal(p[0].rc, -ECANCELED);
    void *it;
    assert_int_equal(simul_queue_get(q, &it), 0);
    assert_int_equal(NUM(it), 1);
    test_join_ok(b);
    assert_int_equal(p[1].rc, 0);
    int want[] = {3}; /* item 2 never got in */
    drain_expect(q, want, 1);
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(put_cancelled_after_move_in_counts)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 1), 0);
    assert_int_equal(simul_queue_put(q, ITEM(1)), 0);
    static op p;
    op_init(&p, q, 0, ITEM(2));
    simul_task *t = test_spawn(putter, &p);
    test_settle();
    void *it;
    assert_int_equal(simul_queue_get(q, &it), 0); /* moves item 2 in ... */
    assert_int_equal(simul_task_cancel(t), 0);    /* ... then the cancel lands */
    test_join_ok(t);
    assert_int_equal(p.rc, 0); /* it was enqueued, so the put succeeded */
    assert_int_equal(p.next_rc, -ECANCELED);
    int want[] = {2};
    drain_expect(q, want, 1);
    /* both items counted as unfinished */
    assert_int_equal(simul_queue_task_done(q), 0);
    assert_int_equal(simul_queue_task_done(q), 0);
    assert_int_equal(simul_queue_task_done(q), -EOVERFLOW);
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(get_and_put_timeouts)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 1), 0);
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    double t0 = test_clock();
    void *it = ITEM(42);
    assert_int_equal(simul_queue_get(q, &it), -ETIMEDOUT);
    assert_int_equal(NUM(it), 42); /* untouched */
    assert_true(test_clock() - t0 >= 0.015);
    assert_int_equal(simul_scope_end(&s), 1);
    assert_int_equal(simul_queue_put(q, ITEM(1)), 0);
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    assert_int_equal(simul_queue_put(q, ITEM(2)), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&s), 1);
    int want[] = {1};
    drain_expect(q, want, 1);
    /* the timed-out waits left nothing behind: a put goes straight in */
    static op g;
    op_init(&g, q, 0, NULL);
    g.timeout = 1.0;
    simul_task *t = test_spawn(getter, &g);
    test_settle();
    assert_int_equal(simul_queue_put(q, ITEM(3)), 0);
    test_join_ok(t);
    assert_int_equal(g.rc, 0);
    assert_int_equal(NUM(g.item), 3);
    assert_int_equal(g.scope_end, 0);
    /* items 1 and 3 were put (2 timed out): two task_done, then join returns at once */
    assert_int_equal(simul_queue_task_done(q), 0);
    assert_int_equal(simul_queue_task_done(q), 0);
    assert_int_equal(simul_queue_task_done(q), -EOVERFLOW);
    assert_int_equal(simul_queue_join(q), 0);
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(join_cancelled)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 0), 0);
    assert_int_equal(simul_queue_put(q, ITEM(1)), 0);
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    assert_int_equal(simul_queue_join(q), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&s), 1);
    simul_queue_free(q, NULL);
    return 0;
}

/* ---- task_done and join ---------------------------------------------------------------------- */

typedef struct joiner {
    simul_queue *q;
    int rc;
    double when;
} joiner;

static int join_fn(void *arg)
{
    joiner *j = arg;
    j->rc = simul_queue_join(j->q);
    j->when = test_clock();
    return 0;
}

SIMUL_TASK_TEST(task_done_and_join)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 0), 0);
    assert_int_equal(simul_queue_task_done(q), -EOVERFLOW);
    assert_int_equal(simul_queue_join(q), 0); /* nothing unfinished */
    for (int i = 0; i < 3; i++)
        assert_int_equal(simul_queue_put(q, ITEM(i)), 0);
    static joiner j[2];
    simul_task *t[2];
    for (int i = 0; i < 2; i++) {
        j[i] = (joiner){.q = q, .rc = 1};
        t[i] = test_spawn(join_fn, &j[i]);
    }
    test_settle();
    void *it;
    for (int i = 0; i < 3; i++)
        assert_int_equal(simul_queue_get(q, &it), 0);
    test_settle();
    assert_int_equal(j[0].rc, 1); /* got, but not done */
    assert_int_equal(simul_queue_task_done(q), 0);
    assert_int_equal(simul_queue_task_done(q), 0);
    test_settle();
    assert_int_equal(j[0].rc, 1);
    assert_int_equal(simul_queue_task_done(q), 0);
    for (int i = 0; i < 2; i++) {
        test_join_ok(t[i]);
        assert_int_equal(j[i].rc, 0);
    }
    assert_int_equal(simul_queue_task_done(q), -EOVERFLOW);
    simul_queue_free(q, NULL);
    return 0;
}

/* ---- shutdown -------------------------------------------------------------------------------- */

SIMUL_TASK_TEST(shutdown_graceful_drains_then_fails)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 2), 0);
    assert_int_equal(simul_queue_put(q, ITEM(1)), 0);
    assert_int_equal(simul_queue_put(q, ITEM(2)), 0);
    static op p;
    op_init(&p, q, 0, ITEM(3));
    simul_task *tp = test_spawn(putter, &p);
    test_settle();
    assert_false(simul_queue_is_shutdown(q));
    assert_int_equal(simul_queue_shutdown(q, false, NULL), 0);
    assert_true(simul_queue_is_shutdown(q));
    test_join_ok(tp);
    assert_int_equal(p.rc, -ESHUTDOWN); /* the blocked putter's item never got in */
    assert_int_equal(simul_queue_put(q, ITEM(4)), -ESHUTDOWN);
    assert_int_equal(simul_queue_put_nowait(q, ITEM(4)), -ESHUTDOWN);
    void *it;
    assert_int_equal(simul_queue_get(q, &it), 0);
    assert_int_equal(NUM(it), 1);
    assert_int_equal(simul_queue_get_nowait(q, &it), 0);
    assert_int_equal(NUM(it), 2);
    assert_int_equal(simul_queue_get(q, &it), -ESHUTDOWN);
    assert_int_equal(simul_queue_get_nowait(q, &it), -ESHUTDOWN);
    assert_int_equal(simul_queue_shutdown(q, false, NULL), 0); /* again: harmless */
    /* join still counts the two items that were got */
    assert_int_equal(simul_queue_task_done(q), 0);
    assert_int_equal(simul_queue_task_done(q), 0);
    assert_int_equal(simul_queue_join(q), 0);
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(shutdown_wakes_blocked_getters)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 0), 0);
    static op g[3];
    simul_task *t[3];
    for (int i = 0; i < 3; i++) {
        op_init(&g[i], q, i, NULL);
        t[i] = test_spawn(getter, &g[i]);
    }
    test_settle();
    assert_int_equal(simul_queue_shutdown(q, false, NULL), 0);
    for (int i = 0; i < 3; i++) {
        test_join_ok(t[i]);
        assert_int_equal(g[i].rc, -ESHUTDOWN);
    }
    simul_queue_free(q, NULL);
    return 0;
}

static int discarded[16];
static int ndiscarded;

static void discard(void *item)
{
    discarded[ndiscarded++] = NUM(item);
}

SIMUL_TASK_TEST(shutdown_immediate_discards_and_releases_join)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 3), 0);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(simul_queue_put(q, ITEM(i)), 0);
    void *it;
    assert_int_equal(simul_queue_get(q, &it), 0); /* one item being processed */
    assert_int_equal(simul_queue_put(q, ITEM(4)), 0);
    static op p;
    op_init(&p, q, 0, ITEM(5));
    simul_task *tp = test_spawn(putter, &p);
    static joiner j;
    j = (joiner){.q = q, .rc = 1};
    simul_task *tj = test_spawn(join_fn, &j);
    test_settle();
    ndiscarded = 0;
    assert_int_equal(simul_queue_shutdown(q, true, discard), 0);
    assert_int_equal(ndiscarded, 3);
    assert_int_equal(discarded[0], 2);
    assert_int_equal(discarded[1], 3);
    assert_int_equal(discarded[2], 4);
    assert_true(simul_queue_empty(q));
    assert_int_equal(simul_queue_get_nowait(q, &it), -ESHUTDOWN);
    test_join_ok(tp);
    assert_int_equal(p.rc, -ESHUTDOWN);
    test_settle();
    assert_int_equal(j.rc, 1); /* item 1 is still unfinished */
    assert_int_equal(simul_queue_task_done(q), 0);
    test_join_ok(tj);
    assert_int_equal(j.rc, 0);
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(shutdown_immediate_releases_join_at_once)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_lifo_queue_new(&q, 0), 0);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(simul_queue_put(q, ITEM(i)), 0);
    static joiner j;
    j = (joiner){.q = q, .rc = 1};
    simul_task *tj = test_spawn(join_fn, &j);
    static op g;
    test_settle();
    assert_int_equal(simul_queue_shutdown(q, true, NULL), 0);
    test_join_ok(tj);
    assert_int_equal(j.rc, 0);
    op_init(&g, q, 0, NULL);
    simul_task *tg = test_spawn(getter, &g);
    test_join_ok(tg);
    assert_int_equal(g.rc, -ESHUTDOWN);
    simul_queue_free(q, NULL);
    return 0;
}

SIMUL_TASK_TEST(free_discards_items_and_wakes_waiters)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_priority_queue_new(&q, 0, cmp_int), 0);
    assert_int_equal(simul_queue_put(q, ITEM(20)), 0);
    assert_int_equal(simul_queue_put(q, ITEM(10)), 0);
    ndiscarded = 0;
    simul_queue_free(q, discard);
    assert_int_equal(ndiscarded, 2);
    assert_int_equal(discarded[0], 10);
    assert_int_equal(discarded[1], 20);
    /* a getter parked on a queue being freed resumes with -ESHUTDOWN */
    assert_int_equal(simul_queue_new(&q, 0), 0);
    static op g;
    op_init(&g, q, 0, NULL);
    simul_task *t = test_spawn(getter, &g);
    test_settle();
    simul_queue_free(q, NULL);
    test_join_ok(t);
    assert_int_equal(g.rc, -ESHUTDOWN);
    simul_queue_free(NULL, NULL);
    return 0;
}

/* ---- errors ---------------------------------------------------------------------------------- */

typedef struct cb_state {
    simul_queue *q;
    int rc[6];
    bool ran;
} cb_state;

static void queue_cb(void *arg)
{
    cb_state *s = arg;
    void *it;
    s->rc[0] = simul_queue_put(s->q, ITEM(1));
    s->rc[1] = simul_queue_get(s->q, &it);
    s->rc[2] = simul_queue_join(s->q);
    s->rc[3] = simul_queue_put_nowait(s->q, ITEM(2)); /* fine from a callback */
    s->rc[4] = simul_queue_get_nowait(s->q, &it);
    s->rc[5] = NUM(it);
    s->ran = true;
}

SIMUL_TASK_TEST(errors_and_callbacks)
{
    (void)arg;
    void *it;
    assert_int_equal(simul_queue_new(NULL, 0), -EINVAL);
    assert_int_equal(simul_lifo_queue_new(NULL, 0), -EINVAL);
    assert_int_equal(simul_priority_queue_new(NULL, 0, cmp_int), -EINVAL);
    assert_int_equal(simul_queue_put(NULL, NULL), -EINVAL);
    assert_int_equal(simul_queue_get(NULL, &it), -EINVAL);
    assert_int_equal(simul_queue_put_nowait(NULL, NULL), -EINVAL);
    assert_int_equal(simul_queue_get_nowait(NULL, &it), -EINVAL);
    assert_int_equal(simul_queue_task_done(NULL), -EINVAL);
    assert_int_equal(simul_queue_join(NULL), -EINVAL);
    assert_int_equal(simul_queue_shutdown(NULL, false, NULL), -EINVAL);
    assert_int_equal(simul_queue_qsize(NULL), 0);
    assert_true(simul_queue_empty(NULL));
    assert_false(simul_queue_full(NULL));
    static cb_state s;
    assert_int_equal(simul_queue_new(&s.q, 1), 0);
    assert_int_equal(simul_queue_get(s.q, NULL), -EINVAL);
    assert_int_equal(simul_queue_get_nowait(s.q, NULL), -EINVAL);
    assert_int_equal(simul_call_soon(queue_cb, &s, NULL), 0);
    test_settle();
    assert_true(s.ran);
    assert_int_equal(s.rc[0], -EPERM);
    assert_int_equal(s.rc[1], -EPERM);
    assert_int_equal(s.rc[2], -EPERM);
    assert_int_equal(s.rc[3], 0);
    assert_int_equal(s.rc[4], 0);
    assert_int_equal(s.rc[5], 2);
    /* a cancelled task's put is a cancellation point even with room */
    assert_int_equal(simul_task_cancel(simul_task_current()), 0);
    assert_int_equal(simul_queue_put(s.q, ITEM(1)), -ECANCELED);
    assert_int_equal(simul_queue_get(s.q, &it), -ECANCELED);
    assert_true(simul_queue_empty(s.q));
    simul_queue_free(s.q, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fifo_order_and_sizes),
        cmocka_unit_test(unbounded_grows_and_wraps),
        cmocka_unit_test(lifo_order),
        cmocka_unit_test(priority_order_stable),
        cmocka_unit_test(priority_bounded_blocked_putter_joins_heap),
        cmocka_unit_test(put_blocks_when_full_fifo_putters),
        cmocka_unit_test(put_hands_item_to_waiting_getters_in_order),
        cmocka_unit_test(backpressure_slows_producer),
        cmocka_unit_test(get_cancelled_while_waiting_loses_nothing),
        cmocka_unit_test(get_cancelled_after_handoff_keeps_item),
        cmocka_unit_test(put_cancelled_while_blocked_not_enqueued),
        cmocka_unit_test(put_cancelled_after_move_in_counts),
        cmocka_unit_test(get_and_put_timeouts),
        cmocka_unit_test(join_cancelled),
        cmocka_unit_test(task_done_and_join),
        cmocka_unit_test(shutdown_graceful_drains_then_fails),
        cmocka_unit_test(shutdown_wakes_blocked_getters),
        cmocka_unit_test(shutdown_immediate_discards_and_releases_join),
        cmocka_unit_test(shutdown_immediate_releases_join_at_once),
        cmocka_unit_test(free_discards_items_and_wakes_waiters),
        cmocka_unit_test(errors_and_callbacks),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_queue");
}
