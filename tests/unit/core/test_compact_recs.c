/* test_compact_recs.c — a compact task's runtime records (SIMUL__REC) come from a side area of its
 * own, taken and given back stack-like: deep nesting across overflow chunks while other compact
 * tasks run, a record another task writes while its owner is evicted, cancellation and deadlines
 * at waits whose records sit in a chunk, and steady-state waits that call malloc not once (counted
 * by interposing malloc, or by the sanitizers' allocation hook). */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "test_main_helpers.h"
#include "../../../src/core/internal.h"

#if SIMUL_TEST_ASAN || SIMUL_TEST_TSAN
/* From <sanitizer/allocator_interface.h>, which gcc does not install. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
#endif

static const simul_task_opts compact_opts = {.name = "compact", .mode = SIMUL_TASK_COMPACT};

/* ---- counting allocations ------------------------------------------------------------------ */

static atomic_long g_allocs;
static atomic_bool g_counting;

static void count_alloc(void)
{
    if (atomic_load_explicit(&g_counting, memory_order_relaxed))
        atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
}

#if SIMUL_TEST_ASAN || SIMUL_TEST_TSAN
/* The sanitizers own malloc: their hook sees every allocation. */
static void on_malloc(const volatile void *p, size_t n)
{
    (void)p;
    (void)n;
    count_alloc();
}
static void on_free(const volatile void *p)
{
    (void)p;
}
static void counting_setup(void)
{
    static int installed;
    if (!installed++)
        __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}
#elif defined(__GLIBC__)
/* glibc lets a program replace malloc (its manual: "Replacing malloc"); these forward to glibc's
 * own, counting as they go. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

void *malloc(size_t n)
{
    count_alloc();
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t m)
{
    count_alloc();
    return __libc_calloc(n, m);
}
void *realloc(void *p, size_t n)
{
    count_alloc();
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n)
{
    count_alloc();
    return __libc_memalign(align, n);
}
void *memalign(size_t align, size_t n)
{
    count_alloc();
    return __libc_memalign(align, n);
}
int posix_memalign(void **out, size_t align, size_t n)
{
    count_alloc();
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
void free(void *p)
{
    __libc_free(p);
}
static void counting_setup(void)
{
}
#define COUNTING_WORKS 1
#else
static void counting_setup(void)
{
}
#endif
#if (SIMUL_TEST_ASAN || SIMUL_TEST_TSAN) && !defined(COUNTING_WORKS)
#define COUNTING_WORKS 1
#endif

/* ---- deep nesting ---------------------------------------------------------------------------- */

typedef struct rec_small {
    uint64_t v[5];
} rec_small;
typedef struct rec_big {
    uint64_t v[25];
} rec_big;

static uint64_t pattern(unsigned seed, int level, int i)
{
    return (uint64_t)seed * 0x9e3779b97f4a7c15ull ^ ((uint64_t)level << 20) ^ (uint64_t)i;
}

/* Whether p lies in t's side area: its inline bytes or one of its chunks. */
static bool in_side_area(simul_task *t, const void *p)
{
    simul__rec_tail *tail = simul__rec_tail_of(t);
    const char *c = p;
    if (c >= tail->mem && c < tail->mem + SIMUL__REC_INLINE)
        return true;
    for (simul__rec_chunk *k = tail->first; k; k = k->next)
        if (c >= (const char *)(k + 1) && c < (const char *)(k + 1) + k->cap)
            return true;
    return false;
}

typedef int (*bottom_fn)(void *arg);

/* Takes a big and a small record per level (the sizes alternate their order, so chunk ends are
 * met at both), fills them, recurses, and checks them on the way back. -EIO: a record changed
 * under its task, or a compact task's record is on the run stack or outside its side area. */
static int deep(int level, int depth, unsigned seed, bottom_fn bottom, void *arg)
{
    simul_task *self = simul_task_current();
    SIMUL__REC(rec_big, a, self);
    SIMUL__REC(rec_small, b, self);
    if (!a || !b)
        return -ENOMEM;
    if (self->compact && (simul__on_run_stack(self, a) || simul__on_run_stack(self, b) ||
                          !in_side_area(self, a) || !in_side_area(self, b)))
        return -EIO;
    for (int i = 0; i < 25; i++)
        a->v[i] = pattern(seed, level, i);
    for (int i = 0; i < 5; i++)
        b->v[i] = ~pattern(seed, level, i);
    int rc = level + 1 < depth ? deep(level + 1, depth, seed, bottom, arg) : bottom(arg);
    for (int i = 0; i < 25; i++)
        if (a->v[i] != pattern(seed, level, i))
            return -EIO;
    for (int i = 0; i < 5; i++)
        if (b->v[i] != ~pattern(seed, level, i))
            return -EIO;
    return rc;
}

/* The side area is empty again (all given back) and, deep nesting done, back on its inline
 * bytes. */
static bool side_area_empty(simul_task *t)
{
    return !t->compact || (t->rec_chunk == NULL && t->rec_top == simul__rec_tail_of(t)->mem);
}

typedef struct pingpong {
    simul_queue *to_a, *to_b;
    int rounds;
    int depth;
    bool saw_chunk[2];
} pingpong;

typedef struct side {
    pingpong *pp;
    int me;
} side;

static int pingpong_bottom(void *arg)
{
    side *s = arg;
    pingpong *pp = s->pp;
    simul_task *self = simul_task_current();
    if (self->compact && self->rec_chunk)
        pp->saw_chunk[s->me] = true;
    static char token;
    void *item;
    for (int i = 0; i < pp->rounds; i++) {
        int rc;
        if (s->me == 0) {
            if ((rc = simul_queue_put(pp->to_b, &token)) < 0 ||
                (rc = simul_queue_get(pp->to_a, &item)) < 0)
                return rc;
        } else {
            if ((rc = simul_queue_get(pp->to_b, &item)) < 0 ||
                (rc = simul_queue_put(pp->to_a, &token)) < 0)
                return rc;
        }
        if ((rc = simul_sleep_until_ns(0)) < 0) /* a timer wait too */
            return rc;
    }
    return 0;
}

static int pingpong_side(void *arg)
{
    side *s = arg;
    int rc = deep(0, s->pp->depth, 17u + (unsigned)s->me, pingpong_bottom, s);
    if (rc == 0 && !side_area_empty(simul_task_current()))
        return -EFAULT;
    /* Once more: the chunks kept from the first descent serve the second. */
    if (rc == 0)
        rc = deep(0, s->pp->depth, 99u + (unsigned)s->me, pingpong_bottom, s);
    return rc;
}

/* Two compact tasks each 40 levels deep (two records a level, about 10 KiB of records across
 * several chunks) hand a token back and forth at the bottom: every switch evicts the other's
 * frames, and every record must keep its contents and stay off the run stack. */
SIMUL_TASK_TEST(nested_records_across_chunks_survive_switches)
{
    (void)arg;
    pingpong pp = {.rounds = 50, .depth = 40};
    assert_int_equal(simul_queue_new(&pp.to_a, 0), 0);
    assert_int_equal(simul_queue_new(&pp.to_b, 0), 0);
    side sa = {&pp, 0}, sb = {&pp, 1};
    simul_task *a, *b;
    assert_int_equal(simul_task_spawn(&b, pingpong_side, &sb, &compact_opts), 0);
    assert_int_equal(simul_task_spawn(&a, pingpong_side, &sa, &compact_opts), 0);
    int ra = -1, rb = -1;
    assert_int_equal(simul_task_join(a, &ra), 0);
    assert_int_equal(simul_task_join(b, &rb), 0);
    assert_int_equal(ra, 0);
    assert_int_equal(rb, 0);
#ifdef SIMUL_CORO_COMPACT
    assert_true(pp.saw_chunk[0] && pp.saw_chunk[1]); /* the nesting did reach the chunks */
#endif
    simul_queue_free(pp.to_a, NULL);
    simul_queue_free(pp.to_b, NULL);
    return 0;
}

/* ---- a record written by another task while its own is evicted ---------------------------- */

static simul__waitq g_q;
static int g_marker;

static int parks_on_its_record(void *arg)
{
    (void)arg;
    simul_task *self = simul_task_current();
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    SIMUL__REC(simul__wait, w, self);
    if (!w)
        return -ENOMEM;
    if (self->compact && (simul__on_run_stack(self, w) || !in_side_area(self, w)))
        return -EIO;
    *w = (simul__wait){.unlink = simul__waitq_unlink};
    simul__waitq_push(&g_q, w);
    rc = simul__park(w, SIMUL__INF);
    if (rc != 42 || w->value != &g_marker || w->aux != 7)
        return -EIO;
    return 0;
}

static int wakes_it_from_deep(void *arg)
{
    (void)arg;
    /* Frames of its own over the run stack where the sleeper's were. */
    volatile unsigned char buf[8192];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 13u + 5u);
    simul__wait *w = simul__waitq_pop(&g_q);
    if (!w)
        return -ENOENT;
    w->value = &g_marker;
    w->aux = 7;
    simul__wake(w, 42);
    return buf[100] == (unsigned char)(100 * 13u + 5u) ? 0 : -EIO;
}

SIMUL_TASK_TEST(record_written_while_its_task_is_evicted)
{
    (void)arg;
    for (int round = 0; round < 3; round++) {
        g_q = (simul__waitq){0};
        simul_task *a, *b;
        assert_int_equal(simul_task_spawn(&a, parks_on_its_record, NULL, &compact_opts), 0);
        assert_int_equal(simul_yield(), 0); /* a parks */
        assert_non_null(g_q.head);
        assert_int_equal(simul_task_spawn(&b, wakes_it_from_deep, NULL, &compact_opts), 0);
        int ra = -1, rb = -1;
        assert_int_equal(simul_task_join(b, &rb), 0);
        assert_int_equal(simul_task_join(a, &ra), 0);
        assert_int_equal(rb, 0);
        assert_int_equal(ra, 0);
    }
    return 0;
}

/* ---- cancellation and deadlines at a wait deep in the chunks ------------------------------ */

typedef struct deep_wait {
    simul_event *never;
    int depth;
    int kind; /* 0: wait for a cancel; 1: a deadline scope at the bottom */
    int after; /* what a second wait, taken after the interrupted one, returned */
} deep_wait;

static int sleep_bottom(void *arg)
{
    (void)arg;
    return simul_sleep_until_ns(0);
}

static int deep_wait_bottom(void *arg)
{
    deep_wait *d = arg;
    int rc;
    if (d->kind == 0) {
        rc = simul_event_wait(d->never);
    } else {
        simul_scope s SIMUL_SCOPE_AUTO = SIMUL_SCOPE_INIT;
        if ((rc = simul_scope_timeout(&s, 0.001)) < 0)
            return rc;
        rc = simul_event_wait(d->never);
    }
    /* The area is consistent after an interruption: more records and a wait, at this depth
     * (shielded, so the pending cancellation does not end it at once). */
    simul_scope sh SIMUL_SCOPE_AUTO = SIMUL_SCOPE_INIT;
    int r2 = simul_scope_shield(&sh);
    if (r2 == 0)
        r2 = deep(0, 8, 5u, sleep_bottom, NULL);
    d->after = r2;
    return rc;
}

static int deep_wait_task(void *arg)
{
    deep_wait *d = arg;
    int rc = deep(0, d->depth, 3u, deep_wait_bottom, d);
    if (!side_area_empty(simul_task_current()))
        return -EFAULT;
    return rc;
}

/* A compact task 30 levels deep (its wait records in an overflow chunk) is cancelled, then one
 * meets its deadline: the wait is unlinked from its record where it lies, the records above and
 * below keep their contents, and the area takes and gives back more records afterwards. */
SIMUL_TASK_TEST(cancel_and_deadline_at_a_wait_deep_in_chunks)
{
    (void)arg;
    simul_event *never;
    assert_int_equal(simul_event_new(&never), 0);
    for (int kind = 0; kind < 2; kind++) {
        deep_wait d = {.never = never, .depth = 30, .kind = kind, .after = -1};
        simul_task *t;
        assert_int_equal(simul_task_spawn(&t, deep_wait_task, &d, &compact_opts), 0);
        if (kind == 0) {
            /* Until it is parked at the bottom: wait for state, not for time. */
            while (!simul_task_done(t) && !(t->state == SIMUL__TASK_PARKED && t->wait))
                assert_int_equal(simul_yield(), 0);
            assert_int_equal(simul_task_cancel(t), 0);
        }
        int r = 0;
        assert_int_equal(simul_task_join(t, &r), 0);
        assert_int_equal(r, kind == 0 ? -ECANCELED : -ETIMEDOUT);
        assert_int_equal(d.after, 0);
    }
    simul_event_free(never);
    return 0;
}

/* ---- steady-state waits do no malloc ------------------------------------------------------- */

static int steady_main(void *arg);

typedef struct steady {
    simul_queue *to_a, *to_b;
    simul_event *ev;
    int fds[2];
    int rounds;
    atomic_int phase; /* 1: warm-up done by both; 2: counting done */
} steady;

/* One round of every kind of wait a compact task commonly sits in: a queue get (a waitq), a
 * timer (sleep), an event, an fd (socket readable), a deadline scope around a wait; run at the
 * bottom of a few levels of records (steady_task), so some sit in a chunk. (Every round suspends
 * at about the same depth: a task that alternates between deep and shallow suspension points
 * also resizes its frames' copy, see docs/design/runtime.md.) */
static int steady_round(steady *st, int me)
{
    static char token;
    void *item;
    int rc;
    if (me == 0) {
        if ((rc = simul_queue_put(st->to_b, &token)) < 0 ||
            (rc = simul_queue_get(st->to_a, &item)) < 0)
            return rc;
        if ((rc = simul_wait_readable(st->fds[0])) < 0)
            return rc;
        char c;
        if (read(st->fds[0], &c, 1) != 1)
            return -EIO;
        if ((rc = simul_event_wait(st->ev)) < 0)
            return rc;
        simul_event_clear(st->ev);
    } else {
        if ((rc = simul_queue_get(st->to_b, &item)) < 0 ||
            (rc = simul_queue_put(st->to_a, &token)) < 0)
            return rc;
        if (write(st->fds[1], "x", 1) != 1)
            return -EIO;
        if ((rc = simul_yield()) < 0)
            return rc;
        if ((rc = simul_event_set(st->ev)) < 0)
            return rc;
    }
    simul_scope s SIMUL_SCOPE_AUTO = SIMUL_SCOPE_INIT;
    if ((rc = simul_scope_timeout(&s, 3600.0)) < 0)
        return rc;
    return simul_sleep_until_ns(0);
}

typedef struct steady_side {
    steady *st;
    int me;
} steady_side;

static int steady_bottom(void *arg)
{
    steady_side *ss = arg;
    return steady_round(ss->st, ss->me);
}

#define WARM_ROUNDS 50

static int socketpair_nb(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0 ? -errno
                                                                                         : 0;
}

static int steady_task(void *arg)
{
    steady_side *ss = arg;
    steady *st = ss->st;
    for (int i = 0; i < WARM_ROUNDS + st->rounds; i++) {
        /* Task 0 opens the window once both are past their first rounds (the queue keeps
         * them in step) and closes it after its last counted round. */
        if (ss->me == 0 && i == WARM_ROUNDS)
            atomic_store(&g_counting, true);
        int rc = deep(0, 6, 11u + (unsigned)i, steady_bottom, ss);
        if (rc < 0)
            return rc;
    }
    if (ss->me == 0)
        atomic_store(&g_counting, false);
    return 0;
}

static void steady_waits_do_not_malloc(void **state)
{
    (void)state;
#ifndef COUNTING_WORKS
    skip(); /* no way to count allocations here */
#endif
#ifndef SIMUL_CORO_COMPACT
    skip(); /* no compact tasks on this platform: they run stackful */
#endif
    counting_setup();
    assert_int_equal(simul_test_run(steady_main, NULL), 0);
}

/* Runs the two tasks; the counted rounds must not have called malloc at all (before the side
 * area, each compact wait took one, and a join two). */
static int steady_main(void *arg)
{
    (void)arg;
    steady st = {.rounds = 2000};
    assert_int_equal(simul_queue_new(&st.to_a, 0), 0);
    assert_int_equal(simul_queue_new(&st.to_b, 0), 0);
    assert_int_equal(simul_event_new(&st.ev), 0);
    assert_int_equal(socketpair_nb(st.fds), 0);
    steady_side sa = {&st, 0}, sb = {&st, 1};
    simul_task *a, *b;
    assert_int_equal(simul_task_spawn(&b, steady_task, &sb, &compact_opts), 0);
    assert_int_equal(simul_task_spawn(&a, steady_task, &sa, &compact_opts), 0);
    atomic_store(&g_allocs, 0);
    int ra = -1, rb = -1;
    assert_int_equal(simul_task_join(a, &ra), 0);
    assert_int_equal(simul_task_join(b, &rb), 0);
    assert_int_equal(ra, 0);
    assert_int_equal(rb, 0);
    long n = atomic_load(&g_allocs);
    if (n != 0)
        fprintf(stderr, "%ld allocations in %d rounds of steady-state waits\n", n, st.rounds);
    assert_int_equal(n, 0);
    close(st.fds[0]);
    close(st.fds[1]);
    simul_event_free(st.ev);
    simul_queue_free(st.to_a, NULL);
    simul_queue_free(st.to_b, NULL);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(nested_records_across_chunks_survive_switches),
    cmocka_unit_test(record_written_while_its_task_is_evicted),
    cmocka_unit_test(cancel_and_deadline_at_a_wait_deep_in_chunks),
    cmocka_unit_test(steady_waits_do_not_malloc),
};

SIMUL_TEST_MAIN("test_compact_recs", tests)
