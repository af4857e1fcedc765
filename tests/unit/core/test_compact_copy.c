/* test_compact_copy.c — a compact task's saved-stack copy keeps its capacity: a task that
 * alternates deep and shallow suspension points (re)allocates it a bounded number of times, not
 * at every change, and a task that stays shallow after one deep excursion gets the memory back.
 * The count is the coro layer's own (simul__coro_save_allocs: this thread's switches). */
#include "test_main_helpers.h"
#include "../../../src/core/internal.h"

#define DEEP_BYTES 8192 /* the deep suspension point's frame */
#define SWINGS 200      /* suspensions of the alternating task */

static const simul_task_opts compact = {.name = "copy", .mode = SIMUL_TASK_COMPACT};

struct alt {
    int every;   /* suspend deep every `every`-th time, shallow otherwise */
    int saves;   /* suspensions */
    int bad;
    uint32_t cap, len; /* its copy after the last suspension */
};

static __attribute__((noinline)) int deep_yield(unsigned seed)
{
    volatile unsigned char frame[DEEP_BYTES];
    for (size_t i = 0; i < sizeof frame; i++)
        frame[i] = (unsigned char)(seed + i);
    int rc = simul_yield();
    for (size_t i = 0; i < sizeof frame; i++)
        if (frame[i] != (unsigned char)(seed + i))
            return -EIO;
    return rc;
}

static int alternator(void *arg)
{
    struct alt *a = arg;
    for (int i = 0; i < a->saves; i++) {
        int rc = a->every && i % a->every == a->every - 1 ? deep_yield((unsigned)i) : simul_yield();
        if (rc != 0)
            a->bad++;
    }
    simul_task *self = simul_task_current();
    a->cap = self->coro.save_cap & ~(uint32_t)63;
    a->len = self->coro.save_len;
    return 0;
}

/* Yields as many times as the alternator, so every yield of either one evicts the other. */
static int partner(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n; i++)
        if (simul_yield() != 0)
            return -EIO;
    return 0;
}

/* Runs an alternator and its partner; returns the copies (re)allocated meanwhile. */
static unsigned long run_pair(struct alt *a)
{
    unsigned long before = simul__coro_save_allocs;
    simul_task *ta, *tb;
    int n = a->saves;
    assert_int_equal(simul_task_spawn(&ta, alternator, a, &compact), 0);
    assert_int_equal(simul_task_spawn(&tb, partner, &n, &compact), 0);
    int ra = -1, rb = -1;
    assert_int_equal(simul_task_join(ta, &ra), 0);
    assert_int_equal(simul_task_join(tb, &rb), 0);
    assert_int_equal(ra, 0);
    assert_int_equal(rb, 0);
    assert_int_equal(a->bad, 0);
    return simul__coro_save_allocs - before;
}

/* Deep, shallow, deep, ...: the copy grows once to the deep size and stays there. Before, each
 * change of depth reallocated it (grown to fit, shrunk below half): ~SWINGS of them. */
SIMUL_TASK_TEST(alternating_depths_keep_the_copy)
{
    (void)arg;
#ifndef SIMUL_CORO_COMPACT
    skip(); /* no compact tasks on this platform: they run stackful */
#endif
    struct alt a = {.every = 2, .saves = SWINGS};
    unsigned long allocs = run_pair(&a);
    fprintf(stderr, "alternating every 2nd: %lu copy allocations over %d suspensions\n", allocs,
            SWINGS);
    /* The alternator's first copy and its one growth, the partner's first copy. */
    assert_true(allocs <= 4);
    assert_true(a.cap >= DEEP_BYTES);
    return 0;
}

/* Deep only every tenth time: the shallow runs between are too short to shrink it. */
SIMUL_TASK_TEST(occasional_deep_point_keeps_the_copy)
{
    (void)arg;
#ifndef SIMUL_CORO_COMPACT
    skip();
#endif
    struct alt a = {.every = 10, .saves = SWINGS};
    unsigned long allocs = run_pair(&a);
    fprintf(stderr, "deep every 10th: %lu copy allocations over %d suspensions\n", allocs, SWINGS);
    assert_true(allocs <= 4);
    return 0;
}

/* One deep excursion, then shallow for good: the copy comes back down to about what the frames
 * take (within 4x), in a few halvings, so an idle task does not keep its deepest moment. */
static int deep_once(void *arg)
{
    struct alt *a = arg;
    if (deep_yield(7) != 0)
        a->bad++;
    return alternator(a);
}

SIMUL_TASK_TEST(copy_shrinks_after_staying_shallow)
{
    (void)arg;
#ifndef SIMUL_CORO_COMPACT
    skip();
#endif
    struct alt a = {.every = 0, .saves = SWINGS};
    unsigned long before = simul__coro_save_allocs;
    simul_task *ta, *tb;
    int n = SWINGS + 1;
    assert_int_equal(simul_task_spawn(&ta, deep_once, &a, &compact), 0);
    assert_int_equal(simul_task_spawn(&tb, partner, &n, &compact), 0);
    int ra = -1, rb = -1;
    assert_int_equal(simul_task_join(ta, &ra), 0);
    assert_int_equal(simul_task_join(tb, &rb), 0);
    assert_int_equal(ra, 0);
    assert_int_equal(rb, 0);
    assert_int_equal(a.bad, 0);
    unsigned long allocs = simul__coro_save_allocs - before;
    fprintf(stderr, "deep once then shallow: copy %u bytes for %u bytes of frames, %lu "
                    "allocations\n", a.cap, a.len, allocs);
    assert_true(a.len > 0);
    assert_true(a.cap <= 4 * a.len + 64);
    /* First copy, growth, a halving per SHRINK_AFTER saves (8 KiB to a few hundred bytes: at
     * most 6), the partner's first copy. */
    assert_true(allocs <= 9);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(alternating_depths_keep_the_copy),
        cmocka_unit_test(occasional_deep_point_keeps_the_copy),
        cmocka_unit_test(copy_shrinks_after_staying_shallow),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "compact_copy");
}
