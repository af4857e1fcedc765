/* test_sync_stress.c — randomized stress of queues and sync primitives: many producers and
 * consumers, random deadlines, and a chaos task that cancels workers at random moments and
 * replaces them. Checks: every item put is got exactly once (and none whose put failed), mutual
 * exclusion holds, a semaphore never admits more than its value, a condition wait always returns
 * holding its lock, and nothing is left held at the end.
 * The seed is printed at the start; SIMUL_STRESS_SEED=<n> replays it (timing still varies).
 * Each case runs for a bounded time (SIMUL_STRESS_SECONDS, default 0.6 s of chaos).
 */
#include "test_main_helpers.h"

#define ITEM(n) ((void *)(intptr_t)(n))
#define NUM(p) ((int)(intptr_t)(p))

enum { MAX_ITEMS = 400000, MAX_WORKERS = 24 };

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static void seed_rng(const char *what)
{
    const char *env = getenv("SIMUL_STRESS_SEED");
    uint64_t seed;
    if (env && *env)
        seed = strtoull(env, NULL, 0);
    else
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(test_clock() * 1e9);
    if (!seed)
        seed = 1;
    fprintf(stderr, "%s: seed=%llu (replay with SIMUL_STRESS_SEED=%llu)\n", what,
            (unsigned long long)seed, (unsigned long long)seed);
    rng_state = seed;
}

static double budget(void)
{
    const char *env = getenv("SIMUL_STRESS_SECONDS");
    double s = env && *env ? atof(env) : 0.6;
    return s > 0 && s < 60 ? s : 0.6;
}

/* A random short deadline (0-150 us) half of the time; returns whether a scope was begun. */
static bool maybe_deadline(simul_scope *s)
{
    if (below(2))
        return false;
    assert_int_equal(simul_scope_timeout(s, (double)below(150) * 1e-6), 0);
    return true;
}

static void end_deadline(simul_scope *s, bool begun)
{
    if (begun)
        assert_true(simul_scope_end(s) >= 0);
}

/* Yields a random number of times (stops early when cancelled). */
static int jitter(void)
{
    for (unsigned n = below(4); n > 0; n--) {
        int rc = simul_yield();
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- worker slots and the chaos task --------------------------------------------------------- */

typedef struct slots {
    simul_task *t[MAX_WORKERS];
    int n;
    simul_task_fn fn;
    void *arg;
    int spawned;
} slots;

static void slots_start(slots *s, int n, simul_task_fn fn, void *arg)
{
    s->n = n;
    s->fn = fn;
    s->arg = arg;
    for (int i = 0; i < n; i++) {
        s->t[i] = test_spawn(fn, arg);
        s->spawned++;
    }
}

static void slots_join(slots *s)
{
    for (int i = 0; i < s->n; i++)
        test_join_ok(s->t[i]);
}

typedef struct chaos {
    slots *groups[3];
    int ngroups;
    volatile bool stop;
    int cancels;
} chaos;

/* Cancels a random worker at a random moment, waits for it, starts a replacement. */
static int chaos_main(void *arg)
{
    chaos *c = arg;
    while (!c->stop) {
        if (below(8) == 0)
            assert_int_equal(simul_sleep((double)below(200) * 1e-6), 0);
        else
            for (unsigned n = below(30); n > 0; n--)
                assert_int_equal(simul_yield(), 0);
        if (c->stop)
            break;
        slots *s = c->groups[below((unsigned)c->ngroups)];
        int i = (int)below((unsigned)s->n);
        assert_int_equal(simul_task_cancel(s->t[i]), 0);
        test_join_ok(s->t[i]);
        s->t[i] = test_spawn(s->fn, s->arg);
        s->spawned++;
        c->cancels++;
    }
    return 0;
}

/* Starts the chaos task on one or two groups of workers (b may be NULL). */
static simul_task *chaos_start(chaos *c, slots *a, slots *b)
{
    memset(c, 0, sizeof *c);
    c->groups[c->ngroups++] = a;
    if (b)
        c->groups[c->ngroups++] = b;
    return test_spawn(chaos_main, c);
}

/* Stops the chaos task and waits until it has: from then on no worker is replaced. */
static void chaos_stop(chaos *c, simul_task *ct)
{
    c->stop = true;
    test_join_ok(ct);
}

/* ---- queues: every item exactly once --------------------------------------------------------- */

typedef struct qstress {
    simul_queue *q;
    int next_id; /* ids handed to producers */
    bool stop;   /* producers: no new ids */
    unsigned char put_ok[MAX_ITEMS];
    unsigned char got[MAX_ITEMS];
    int puts, gets, put_fail, get_timeouts, dup;
} qstress;

static int q_producer(void *arg)
{
    qstress *s = arg;
    while (!s->stop && s->next_id < MAX_ITEMS) {
        int id = s->next_id++;
        int rc;
        if (below(4) == 0) {
            /* the non-suspending way: retry on a full queue, yielding in between */
            while ((rc = simul_queue_put_nowait(s->q, ITEM(id))) == -EAGAIN) {
                rc = simul_yield();
                if (rc < 0)
                    break;
            }
        } else {
            simul_scope sc;
            bool d = maybe_deadline(&sc);
            rc = simul_queue_put(s->q, ITEM(id));
            end_deadline(&sc, d);
        }
        if (rc == 0) {
            s->put_ok[id] = 1;
            s->puts++;
        } else {
            assert_true(rc == -ETIMEDOUT || rc == -ECANCELED); /* id abandoned: never put */
            s->put_fail++;
            if (rc == -ECANCELED)
                return 0;
        }
        if (jitter() < 0)
            return 0;
    }
    return 0;
}

static int q_consumer(void *arg)
{
    qstress *s = arg;
    for (;;) {
        simul_scope sc;
        bool d = maybe_deadline(&sc);
        void *it = NULL;
        int rc = simul_queue_get(s->q, &it);
        end_deadline(&sc, d);
        if (rc == 0) {
            int id = NUM(it); /* recorded before anything else can suspend */
            assert_true(id >= 0 && id < MAX_ITEMS);
            if (s->got[id])
                s->dup++;
            s->got[id]++;
            s->gets++;
            assert_int_equal(simul_queue_task_done(s->q), 0);
        } else if (rc == -ETIMEDOUT) {
            s->get_timeouts++;
        } else {
            assert_true(rc == -ECANCELED || rc == -ESHUTDOWN);
            return 0;
        }
        if (jitter() < 0)
            return 0;
    }
}

static int cmp_num(const void *a, const void *b)
{
    int x = NUM(a) % 7, y = NUM(b) % 7;
    return (x > y) - (x < y);
}

static void queue_stress(int kind)
{
    static const char *names[] = {"queue_stress_fifo", "queue_stress_lifo",
                                  "queue_stress_priority"};
    seed_rng(names[kind]);
    static qstress s;
    memset(&s, 0, sizeof s);
    size_t maxsize = below(5) == 0 ? 0 : 1 + below(16);
    if (kind == 0)
        assert_int_equal(simul_queue_new(&s.q, maxsize), 0);
    else if (kind == 1)
        assert_int_equal(simul_lifo_queue_new(&s.q, maxsize), 0);
    else
        assert_int_equal(simul_priority_queue_new(&s.q, maxsize, cmp_num), 0);
    static slots prod, cons;
    memset(&prod, 0, sizeof prod);
    memset(&cons, 0, sizeof cons);
    slots_start(&prod, 2 + (int)below(10), q_producer, &s);
    slots_start(&cons, 2 + (int)below(10), q_consumer, &s);
    static chaos c;
    simul_task *ct = chaos_start(&c, &prod, &cons);
    double end = test_clock() + budget();
    while (test_clock() < end && s.next_id < MAX_ITEMS)
        assert_int_equal(simul_sleep(0.01), 0);
    chaos_stop(&c, ct);
    s.stop = true;
    slots_join(&prod);
    /* Graceful shutdown: the consumers drain what is queued, then get -ESHUTDOWN. */
    assert_int_equal(simul_queue_shutdown(s.q, false, NULL), 0);
    slots_join(&cons);
    assert_true(simul_queue_empty(s.q));
    int missing = 0, extra = 0;
    for (int id = 0; id < s.next_id; id++) {
        if (s.put_ok[id] && s.got[id] != 1)
            missing++;
        if (!s.put_ok[id] && s.got[id] != 0)
            extra++;
    }
    fprintf(stderr,
            "%s: maxsize=%zu producers=%d consumers=%d ids=%d puts=%d gets=%d put_fail=%d "
            "get_timeouts=%d cancels=%d\n",
            names[kind], maxsize, prod.n, cons.n, s.next_id, s.puts, s.gets, s.put_fail,
            s.get_timeouts, c.cancels);
    assert_int_equal(s.dup, 0);
    assert_int_equal(missing, 0);
    assert_int_equal(extra, 0);
    assert_int_equal(s.puts, s.gets);
    assert_true(s.puts > 100);
    assert_true(c.cancels > 10);
    assert_int_equal(simul_queue_join(s.q), 0); /* every item was marked done */
    assert_int_equal(simul_queue_task_done(s.q), -EOVERFLOW);
    simul_queue_free(s.q, NULL);
}

SIMUL_TASK_TEST(queue_stress_fifo)
{
    (void)arg;
    queue_stress(0);
    return 0;
}

SIMUL_TASK_TEST(queue_stress_lifo)
{
    (void)arg;
    queue_stress(1);
    return 0;
}

SIMUL_TASK_TEST(queue_stress_priority)
{
    (void)arg;
    queue_stress(2);
    return 0;
}

/* ---- Lock and Semaphore: exclusion, nothing left held ---------------------------------------- */

typedef struct xstress {
    simul_lock *lock;
    simul_semaphore *sem;
    unsigned units;
    bool stop;
    int inside, max_inside;
    simul_task *holder;
    int entries, violations, timeouts, cancels_inside;
} xstress;

/* A stretch inside the critical section that may be cut short by a cancel: the release after it
 * must happen anyway (release does not suspend). */
static void inside(xstress *s)
{
    s->inside++;
    s->entries++;
    if (s->inside > s->max_inside)
        s->max_inside = s->inside;
    if (jitter() < 0)
        s->cancels_inside++;
    s->inside--;
}

static int lock_worker(void *arg)
{
    xstress *s = arg;
    while (!s->stop) {
        int rc;
        if (below(5) == 0) {
            rc = simul_lock_try_acquire(s->lock);
            if (rc == -EAGAIN)
                rc = simul_yield() < 0 ? -ECANCELED : -EAGAIN;
        } else {
            simul_scope sc;
            bool d = maybe_deadline(&sc);
            rc = simul_lock_acquire(s->lock);
            end_deadline(&sc, d);
        }
        if (rc == 0) {
            if (s->holder != NULL)
                s->violations++;
            s->holder = simul_task_current();
            inside(s);
            if (s->holder != simul_task_current())
                s->violations++;
            s->holder = NULL;
            assert_int_equal(simul_lock_release(s->lock), 0);
        } else if (rc == -ETIMEDOUT) {
            s->timeouts++;
        } else if (rc == -ECANCELED) {
            return 0;
        } else {
            assert_int_equal(rc, -EAGAIN);
        }
        if (simul_checkpoint() == -ECANCELED)
            return 0;
    }
    return 0;
}

SIMUL_TASK_TEST(lock_stress_exclusion_under_cancel)
{
    (void)arg;
    seed_rng("lock_stress");
    static xstress s;
    memset(&s, 0, sizeof s);
    assert_int_equal(simul_lock_new(&s.lock), 0);
    static slots w;
    memset(&w, 0, sizeof w);
    slots_start(&w, 3 + (int)below(15), lock_worker, &s);
    static chaos c;
    simul_task *ct = chaos_start(&c, &w, NULL);
    assert_int_equal(simul_sleep(budget()), 0);
    chaos_stop(&c, ct);
    s.stop = true;
    slots_join(&w);
    fprintf(stderr, "lock_stress: workers=%d entries=%d timeouts=%d cancels=%d (%d inside)\n", w.n,
            s.entries, s.timeouts, c.cancels, s.cancels_inside);
    assert_int_equal(s.violations, 0);
    assert_int_equal(s.max_inside, 1);
    assert_false(simul_lock_locked(s.lock)); /* nothing left held */
    assert_true(s.entries > 100);
    assert_true(c.cancels > 10);
    simul_lock_free(s.lock);
    return 0;
}

static int sem_worker(void *arg)
{
    xstress *s = arg;
    while (!s->stop) {
        simul_scope sc;
        bool d = maybe_deadline(&sc);
        int rc = simul_semaphore_acquire(s->sem);
        end_deadline(&sc, d);
        if (rc == 0) {
            inside(s);
            if (s->inside >= (int)s->units)
                s->violations++;
            assert_int_equal(simul_semaphore_release(s->sem), 0);
        } else if (rc == -ETIMEDOUT) {
            s->timeouts++;
        } else {
            assert_int_equal(rc, -ECANCELED);
            return 0;
        }
        if (simul_checkpoint() == -ECANCELED)
            return 0;
    }
    return 0;
}

SIMUL_TASK_TEST(semaphore_stress_bound_under_cancel)
{
    (void)arg;
    seed_rng("semaphore_stress");
    static xstress s;
    memset(&s, 0, sizeof s);
    s.units = 1 + below(4);
    assert_int_equal(simul_bounded_semaphore_new(&s.sem, s.units), 0);
    static slots w;
    memset(&w, 0, sizeof w);
    slots_start(&w, 3 + (int)below(15), sem_worker, &s);
    static chaos c;
    simul_task *ct = chaos_start(&c, &w, NULL);
    assert_int_equal(simul_sleep(budget()), 0);
    chaos_stop(&c, ct);
    s.stop = true;
    slots_join(&w);
    fprintf(stderr,
            "semaphore_stress: units=%u workers=%d entries=%d max_inside=%d "
            "timeouts=%d cancels=%d\n",
            s.units, w.n, s.entries, s.max_inside, s.timeouts, c.cancels);
    assert_int_equal(s.violations, 0);
    assert_true(s.max_inside <= (int)s.units);
    assert_int_equal(simul_semaphore_value(s.sem), s.units); /* every unit came back */
    assert_int_equal(simul_semaphore_release(s.sem), -EOVERFLOW);
    assert_true(c.cancels > 10);
    simul_semaphore_free(s.sem);
    return 0;
}

/* ---- Condition: a bounded buffer; every wait returns holding the lock ------------------------ */

enum { CBUF = 4 };

typedef struct cstress {
    simul_condition *c;
    int buf[CBUF];
    int n;
    int next_id;
    bool stop;
    unsigned char put_ok[MAX_ITEMS];
    unsigned char got[MAX_ITEMS];
    int puts, gets, dup, waits, not_held;
    simul_task *holder; /* who is inside the lock, as the tasks see it */
} cstress;

static cstress cs;

static bool has_room(void *arg)
{
    (void)arg;
    return cs.n < CBUF || cs.stop;
}

static bool has_item(void *arg)
{
    (void)arg;
    return cs.n > 0 || cs.stop;
}

/* Waits for pred with a random deadline; checks the lock is ours whatever came back. */
static int cond_wait_checked(bool (*pred)(void *))
{
    simul_scope sc;
    bool d = maybe_deadline(&sc);
    cs.holder = NULL; /* the wait lets others in */
    int rc = simul_condition_wait_for(cs.c, pred, NULL);
    end_deadline(&sc, d);
    cs.waits++;
    /* Whatever came back, the lock is ours again: nobody else may be inside. */
    if (cs.holder != NULL || !simul_condition_locked(cs.c))
        cs.not_held++;
    cs.holder = simul_task_current();
    return rc;
}

static int c_producer(void *arg)
{
    (void)arg;
    for (;;) {
        int rc = simul_condition_acquire(cs.c);
        if (rc < 0)
            return 0; /* cancelled before it got the lock: holds nothing */
        if (cs.holder != NULL)
            cs.not_held++;
        cs.holder = simul_task_current();
        rc = cond_wait_checked(has_room);
        if (rc == 0 && !cs.stop && cs.next_id < MAX_ITEMS) {
            int id = cs.next_id++;
            cs.buf[cs.n++] = id;
            cs.put_ok[id] = 1;
            cs.puts++;
            simul_condition_notify(cs.c, 1);
        }
        bool done = cs.stop || rc == -ECANCELED;
        cs.holder = NULL;
        assert_int_equal(simul_condition_release(cs.c), 0); /* proves it owned the lock */
        if (done || jitter() < 0)
            return 0;
    }
}

static int c_consumer(void *arg)
{
    (void)arg;
    for (;;) {
        int rc = simul_condition_acquire(cs.c);
        if (rc < 0)
            return 0;
        if (cs.holder != NULL)
            cs.not_held++;
        cs.holder = simul_task_current();
        rc = cond_wait_checked(has_item);
        if (rc == 0 && cs.n > 0) {
            int id = cs.buf[--cs.n];
            if (cs.got[id])
                cs.dup++;
            cs.got[id]++;
            cs.gets++;
            simul_condition_notify(cs.c, 1);
        }
        bool done = (cs.stop && cs.n == 0) || rc == -ECANCELED;
        cs.holder = NULL;
        assert_int_equal(simul_condition_release(cs.c), 0);
        if (done || jitter() < 0)
            return 0;
    }
}

SIMUL_TASK_TEST(condition_stress_lock_held_on_return)
{
    (void)arg;
    seed_rng("condition_stress");
    memset(&cs, 0, sizeof cs);
    assert_int_equal(simul_condition_new(&cs.c, NULL), 0);
    static slots prod, cons;
    memset(&prod, 0, sizeof prod);
    memset(&cons, 0, sizeof cons);
    slots_start(&prod, 2 + (int)below(8), c_producer, NULL);
    slots_start(&cons, 2 + (int)below(8), c_consumer, NULL);
    static chaos c;
    simul_task *ct = chaos_start(&c, &prod, &cons);
    assert_int_equal(simul_sleep(budget()), 0);
    chaos_stop(&c, ct);
    /* Stop: wake everyone so they see it. */
    assert_int_equal(simul_condition_acquire(cs.c), 0);
    assert_null(cs.holder);
    cs.stop = true;
    assert_true(simul_condition_notify_all(cs.c) >= 0);
    assert_int_equal(simul_condition_release(cs.c), 0);
    slots_join(&prod);
    slots_join(&cons);
    /* what is left in the buffer was put but not got */
    for (int i = 0; i < cs.n; i++)
        cs.got[cs.buf[i]]++;
    int bad = 0;
    for (int id = 0; id < cs.next_id; id++)
        if (cs.got[id] != cs.put_ok[id])
            bad++;
    fprintf(stderr,
            "condition_stress: producers=%d consumers=%d puts=%d gets=%d waits=%d "
            "cancels=%d\n",
            prod.n, cons.n, cs.puts, cs.gets, cs.waits, c.cancels);
    assert_int_equal(cs.dup, 0);
    assert_int_equal(bad, 0);
    assert_int_equal(cs.not_held, 0);
    assert_false(simul_condition_locked(cs.c)); /* nothing left held */
    assert_true(cs.puts > 100);
    assert_true(c.cancels > 10);
    simul_condition_free(cs.c);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queue_stress_fifo),
        cmocka_unit_test(queue_stress_lifo),
        cmocka_unit_test(queue_stress_priority),
        cmocka_unit_test(lock_stress_exclusion_under_cancel),
        cmocka_unit_test(semaphore_stress_bound_under_cancel),
        cmocka_unit_test(condition_stress_lock_held_on_return),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_sync_stress");
}
