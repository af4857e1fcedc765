/* test_stack_trim.c — the trim gives a burst's stack memory back and keeps a steady state's.
 * RSS is read from /proc/self/statm around a burst of tasks that each touch 32 KiB of stack;
 * every wait is for a state (the trim's own record, or RSS itself) with a deadline, and the
 * trim period is shortened through the loop's internal setter so the waits are short. */
#include <pthread.h>
#include <stdatomic.h>

#include "test_main_helpers.h"
#include "../../../src/core/internal.h"

#define BURST 2000
#define TOUCH (32 * 1024)            /* stack bytes each task of the burst touches */
#define DEADLINE_S 30.0              /* for every state this file waits for */
#define PERIOD_NS (20 * 1000000LL)   /* the trim period in these tests (the default is 1 s) */

static const simul_task_opts stackful = {.name = "toucher", .mode = SIMUL_TASK_STACKFUL};

/* Resident bytes, or -1. No cmocka assertion: the watcher thread calls it too. */
static long rss_or_error(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long size = 0, resident = -1;
    int got = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return got == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

static long rss_bytes(void)
{
    long r = rss_or_error();
    assert_true(r > 0);
    return r;
}

/* What may stay resident once the trim is done: the records the trim keeps (quarantine and
 * spare, 32), the pool's warm stacks (16), each with the 32 KiB its task touched, and some
 * slack for the heap. Under ASan, its shadow of the touched stacks and its own bookkeeping
 * (measured: about a quarter of the burst's growth) are outside the pool's reach: allow a
 * third. */
static long kept_bound(long growth)
{
    long bound = 48L * (TOUCH + 8192) + 2L * 1024 * 1024;
    if (SIMUL_TEST_ASAN)
        bound += growth / 3;
    return bound;
}

static void trim_stats(simul__trim_stats *st)
{
    simul__loop_trim_stats(simul_loop_current(), st);
}

/* The trim has nothing left to give back: records down to what it keeps, and no idle stack
 * beyond the warm few per size holds pages. */
static bool trim_settled(void)
{
    simul__trim_stats st;
    trim_stats(&st);
    return st.free_records <= 32 && st.stacks.idle - st.stacks.idle_cold <= 16;
}

/* ---- a burst ---------------------------------------------------------------------------- */

struct burst {
    simul_event *go;
    atomic_int started;
};

static __attribute__((noinline)) void touch_stack(void)
{
    volatile char buf[TOUCH];
    for (size_t i = 0; i < sizeof buf; i += 512)
        buf[i] = (char)i;
}

static int toucher(void *arg)
{
    struct burst *b = arg;
    touch_stack();
    atomic_fetch_add(&b->started, 1);
    return simul_event_wait(b->go);
}

/* Spawns BURST tasks that touch TOUCH bytes of stack each and wait; returns the RSS growth
 * while they are all alive, once they have all been joined. */
static long run_burst(long base)
{
    struct burst b = {0};
    assert_int_equal(simul_event_new(&b.go), 0);
    simul_task **h = calloc(BURST, sizeof *h);
    assert_non_null(h);
    for (int i = 0; i < BURST; i++)
        assert_int_equal(simul_task_spawn(&h[i], toucher, &b, &stackful), 0);
    double end = test_clock() + DEADLINE_S;
    while (atomic_load(&b.started) < BURST && test_clock() < end)
        assert_int_equal(simul_sleep(0.001), 0);
    assert_int_equal(atomic_load(&b.started), BURST);
    long growth = rss_bytes() - base;
    assert_int_equal(simul_event_set(b.go), 0);
    for (int i = 0; i < BURST; i++) {
        int res = -1;
        assert_int_equal(simul_task_join(h[i], &res), 0);
        assert_int_equal(res, 0);
    }
    free(h);
    simul_event_free(b.go);
    return growth;
}

static int yield_once(void *arg)
{
    (void)arg;
    return simul_yield();
}

/* A baseline taken after the loop's own first allocations, so they are not charged to the
 * burst. */
static long warm_baseline(void)
{
    static const simul_task_opts o = {.mode = SIMUL_TASK_STACKFUL};
    for (int i = 0; i < 4; i++) {
        simul_task *t;
        assert_int_equal(simul_task_spawn(&t, yield_once, NULL, &o), 0);
        assert_int_equal(simul_task_join(t, NULL), 0);
    }
    return rss_bytes();
}

/* 2,000 tasks touch 32 KiB each (~64 MiB resident with them); once they are joined and the
 * loop has run a couple of trim periods, RSS is back within what the trim keeps. */
SIMUL_TASK_TEST(burst_gives_stack_memory_back)
{
    (void)arg;
    simul__loop_set_trim_period(simul_loop_current(), PERIOD_NS);
    long base = warm_baseline();
    long growth = run_burst(base);
    /* The measure works: the burst's stacks really were resident. */
    assert_true(growth >= (long)BURST * TOUCH * 9 / 10);

    simul__trim_stats before;
    trim_stats(&before);
    double end = test_clock() + DEADLINE_S;
    while (!trim_settled() && test_clock() < end)
        assert_int_equal(simul_sleep(0.002), 0);
    assert_true(trim_settled());
    simul__trim_stats after;
    trim_stats(&after);
    long left = rss_bytes() - base;
    fprintf(stderr, "burst: +%ld KiB with %d tasks alive, +%ld KiB once trimmed (bound %ld KiB); "
                    "records trimmed %zu, stacks released %zu in %zu madvise calls\n",
            growth / 1024, BURST, left / 1024, kept_bound(growth) / 1024,
            after.records_trimmed - before.records_trimmed, after.stacks.released,
            after.stacks.madvise_calls);
    assert_true(left <= kept_bound(growth));
    assert_true(after.records_trimmed - before.records_trimmed >= BURST - 64);
    /* Neighbours went back together, not one call per stack. */
    assert_true(after.stacks.madvise_calls < BURST / 8);
    return 0;
}

/* The same burst, then the loop has nothing to do but one long wait: it still wakes up to give
 * the memory back (no timer per task: the poll timeout is cut to the trim period's end). A
 * thread watches RSS and wakes the test when it has fallen, or gives up at the deadline. */
struct watcher {
    simul_loop *loop;
    simul_event *done;
    long target;
    atomic_bool fell;
    int wake_rc;
};

static void wake_main(void *arg)
{
    struct watcher *w = arg;
    simul_event_set(w->done);
}

static void *watch_rss(void *arg)
{
    struct watcher *w = arg;
    double end = test_clock() + DEADLINE_S;
    while (test_clock() < end) {
        long r = rss_or_error();
        if (r > 0 && r <= w->target) {
            atomic_store(&w->fell, true);
            break;
        }
        struct timespec ts = {0, 2 * 1000000};
        nanosleep(&ts, NULL);
    }
    w->wake_rc = simul_loop_call_soon_threadsafe(w->loop, wake_main, w);
    return NULL;
}

SIMUL_TASK_TEST(idle_loop_gives_stack_memory_back)
{
    (void)arg;
    simul__loop_set_trim_period(simul_loop_current(), PERIOD_NS);
    long base = warm_baseline();
    long growth = run_burst(base);
    assert_true(growth >= (long)BURST * TOUCH * 9 / 10);
    struct watcher w = {.loop = simul_loop_current(), .target = base + kept_bound(growth)};
    assert_int_equal(simul_event_new(&w.done), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, watch_rss, &w), 0);
    /* Parked with no timer at all: only the trim can wake the loop before the watcher does. */
    assert_int_equal(simul_event_wait(w.done), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(w.wake_rc, 0);
    simul_event_free(w.done);
    fprintf(stderr, "idle: +%ld KiB with the tasks alive, +%ld KiB after (bound %ld KiB)\n",
            growth / 1024, (rss_bytes() - base) / 1024, kept_bound(growth) / 1024);
    assert_true(atomic_load(&w.fell));
    return 0;
}

/* ---- a steady state ----------------------------------------------------------------------- */

#define ROUND 200

static int touch_and_yield(void *arg)
{
    (void)arg;
    touch_stack();
    return simul_yield();
}

static void one_round(void)
{
    simul_task *h[ROUND];
    for (int i = 0; i < ROUND; i++)
        assert_int_equal(simul_task_spawn(&h[i], touch_and_yield, NULL, &stackful), 0);
    for (int i = 0; i < ROUND; i++)
        assert_int_equal(simul_task_join(h[i], NULL), 0);
}

/* Runs rounds until `periods` trim periods have ended and at least `min_rounds` ran. */
static long rounds_over_periods(uint64_t periods, long min_rounds)
{
    simul__trim_stats st;
    trim_stats(&st);
    uint64_t until = st.periods + periods;
    long n = 0;
    double end = test_clock() + DEADLINE_S;
    do {
        one_round();
        n++;
        trim_stats(&st);
    } while ((st.periods < until || n < min_rounds) && test_clock() < end);
    assert_true(st.periods >= until);
    return n;
}

/* Rounds of 200 tasks spawned, run and joined, across many trim periods: once warm, the steady
 * state takes no new stack (no mmap, no fresh slot), and the trim never gives back a stack the
 * next round needs (no stack handed out cold, no record trimmed, no madvise). */
SIMUL_TASK_TEST(steady_rounds_keep_their_stacks_warm)
{
    (void)arg;
    simul__loop_set_trim_period(simul_loop_current(), PERIOD_NS);
    rounds_over_periods(3, 10); /* warm-up, and the trim settles on the working set */
    simul__trim_stats a, b;
    trim_stats(&a);
    long n = rounds_over_periods(5, 50);
    trim_stats(&b);
    fprintf(stderr, "steady: %ld rounds (%ld tasks) over %llu periods: %zu slabs, %zu fresh "
                    "stacks, %zu cold gets, %zu records trimmed, %zu madvise calls during them\n",
            n, n * ROUND, (unsigned long long)(b.periods - a.periods),
            b.stacks.slabs - a.stacks.slabs, b.stacks.carved - a.stacks.carved,
            b.stacks.cold_gets - a.stacks.cold_gets, b.records_trimmed - a.records_trimmed,
            b.stacks.madvise_calls - a.stacks.madvise_calls);
    assert_int_equal(b.stacks.slabs, a.stacks.slabs);
    assert_int_equal(b.stacks.carved, a.stacks.carved);
    assert_int_equal(b.stacks.cold_gets, a.stacks.cold_gets);
    assert_int_equal(b.records_trimmed, a.records_trimmed);
    assert_int_equal(b.stacks.madvise_calls, a.stacks.madvise_calls);
    return 0;
}

/* After a burst, a smaller steady state: the trim gives back the burst's surplus and keeps the
 * rounds' working set, which then runs without a stack handed out cold. */
SIMUL_TASK_TEST(burst_then_steady_keeps_the_working_set)
{
    (void)arg;
    simul__loop_set_trim_period(simul_loop_current(), PERIOD_NS);
    long base = warm_baseline();
    long growth = run_burst(base);
    rounds_over_periods(3, 10); /* the burst's surplus goes; the rounds' stay */
    simul__trim_stats a, b;
    trim_stats(&a);
    rounds_over_periods(5, 50);
    trim_stats(&b);
    long left = rss_bytes() - base;
    fprintf(stderr, "burst then steady: +%ld KiB at the burst, +%ld KiB in the steady state "
                    "(%d tasks a round); %zu cold gets, %zu madvise calls in it\n",
            growth / 1024, left / 1024, ROUND, b.stacks.cold_gets - a.stacks.cold_gets,
            b.stacks.madvise_calls - a.stacks.madvise_calls);
    assert_int_equal(b.stacks.cold_gets, a.stacks.cold_gets);
    assert_int_equal(b.stacks.carved, a.stacks.carved);
    /* The working set (a round, the records kept, the warm stacks) and no more. */
    assert_true(left <= (long)ROUND * (TOUCH + 8192) + kept_bound(growth));
    return 0;
}

/* ---- what a trimmed stack keeps ----------------------------------------------------------- */

/* Whether the byte at `p` faults: the kernel's own copy from it fails with EFAULT (a write into a
 * pipe), where a load of ours would kill the test. */
static bool faults(const void *p)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    ssize_t w = write(fds[1], p, 1);
    int e = errno;
    close(fds[0]);
    close(fds[1]);
    return w < 0 && e == EFAULT;
}

struct reuse {
    int guarded, unguarded, bad;
};

static int guard_checker(void *arg)
{
    struct reuse *r = arg;
    touch_stack(); /* the stack works: its pages fault in again */
    simul_task *self = simul_task_current();
    char *lo = self->coro.stack_lo;
    if (faults(lo - 1) && faults(lo - 4096))
        r->guarded++;
    else
        r->unguarded++;
    if (faults(lo))
        r->bad++;
    return 0;
}

/* Stacks whose pages the trim gave back are reused with their guard still below them (guard
 * markers and PROT_NONE pages survive MADV_DONTNEED, also across the runs of neighbours that go
 * back in one call) and their mapping intact. */
SIMUL_TASK_TEST(trimmed_stacks_keep_their_guards)
{
    (void)arg;
    simul__loop_set_trim_period(simul_loop_current(), PERIOD_NS);
    run_burst(warm_baseline());
    double end = test_clock() + DEADLINE_S;
    while (!trim_settled() && test_clock() < end)
        assert_int_equal(simul_sleep(0.002), 0);
    assert_true(trim_settled());
    simul__trim_stats a, b;
    trim_stats(&a);
    assert_true(a.stacks.idle_cold >= BURST / 2);
    struct reuse r = {0};
    simul_task *h[200];
    for (int i = 0; i < 200; i++)
        assert_int_equal(simul_task_spawn(&h[i], guard_checker, &r, &stackful), 0);
    for (int i = 0; i < 200; i++)
        assert_int_equal(simul_task_join(h[i], NULL), 0);
    trim_stats(&b);
    fprintf(stderr, "reuse: %zu stacks taken cold; %d guarded, %d not, %d bad\n",
            b.stacks.cold_gets - a.stacks.cold_gets, r.guarded, r.unguarded, r.bad);
    assert_true(b.stacks.cold_gets - a.stacks.cold_gets >= 100);
    assert_int_equal(r.guarded, 200);
    assert_int_equal(r.bad, 0);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_gives_stack_memory_back),
        cmocka_unit_test(idle_loop_gives_stack_memory_back),
        cmocka_unit_test(steady_rounds_keep_their_stacks_warm),
        cmocka_unit_test(burst_then_steady_keeps_the_working_set),
        cmocka_unit_test(trimmed_stacks_keep_their_guards),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "stack_trim");
}
