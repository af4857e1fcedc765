/* test_backoff.c — simul_backoff (include/simul/backoff.h): every jitter kind stays within its
 * bounds and the cap, grows as documented, starts over after a reset, and a seeded state repeats
 * its sequence exactly; bad options are refused. No loop and no clock: it is arithmetic. */
#include "test_main_helpers.h"

#define ROUNDS 2000

/* cmocka 1.1 has no double assertion: |got - want| <= eps, both printed when it fails. */
#define assert_near(got, want, eps)                                                                \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (!(fabs(g_ - w_) <= (eps)))                                                             \
            fail_msg("%s = %.17g, want %.17g", #got, g_, w_);                                      \
    } while (0)

static simul_backoff make(simul_backoff_jitter j, double base, double cap, uint64_t seed)
{
    simul_backoff b;
    simul_backoff_opts o = {.base = base, .cap = cap, .jitter = j, .seed = seed};
    assert_int_equal(simul_backoff_init(&b, &o), 0);
    return b;
}

/* Without jitter: base, 2 base, 4 base, ... then the cap, exactly (the supervisor's and the
 * cluster's shape). */
static void no_jitter_doubles_to_the_cap(void **state)
{
    (void)state;
    simul_backoff b = make(SIMUL_BACKOFF_NO_JITTER, 0.01, 0.05, 1);
    const double want[] = {0.01, 0.02, 0.04, 0.05, 0.05, 0.05};
    for (size_t i = 0; i < ARRAY_LEN(want); i++)
        assert_near(simul_backoff_next(&b), want[i], 1e-12);
    assert_int_equal(b.failures, ARRAY_LEN(want));
    /* Thousands of failures: still the cap, no overflow to infinity or NaN. */
    for (int i = 0; i < 100000; i++)
        assert_near(simul_backoff_next(&b), 0.05, 1e-12);
    /* The pure form agrees, for any n, including the largest. */
    simul_backoff_opts o = {.base = 0.01, .cap = 0.05};
    for (unsigned n = 0; n < 4; n++)
        assert_near(simul_backoff_delay(&o, n, 0.5), want[n], 1e-12);
    assert_near(simul_backoff_delay(&o, UINT_MAX, 0), 0.05, 1e-12);
    /* A multiplier of 1: constant. gRPC's 1.6 grows by 1.6. */
    o.multiplier = 1;
    assert_near(simul_backoff_delay(&o, 1000, 0), 0.01, 1e-12);
    o.multiplier = 1.6;
    o.cap = 120;
    o.base = 1;
    assert_near(simul_backoff_delay(&o, 3, 0), 1.6 * 1.6 * 1.6, 1e-9);
    assert_near(simul_backoff_delay(&o, 50, 0), 120, 1e-9);
    /* No cap given: base * 64. */
    simul_backoff_opts d = {.base = 0.005};
    assert_near(simul_backoff_delay(&d, 6, 0), 0.32, 1e-12);
    assert_near(simul_backoff_delay(&d, 7, 0), 0.32, 1e-12);
}

/* Equal jitter (the Redis and AMQP reconnects): step n lies in [d/2, d], d = min(cap, base 2^n);
 * full jitter in [0, d]; gRPC's proportional in [0.8 d, min(cap, 1.2 d)]. Over many draws the
 * whole range is used (not one constant), and the mean sits in the middle. */
static void jitter_bounds(simul_backoff_jitter j, double lo_frac, double hi_frac)
{
    const double base = 0.01, cap = 2;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        simul_backoff b = make(j, base, cap, seed);
        double sum_last = 0, min_frac = 2, max_frac = -1;
        for (int r = 0; r < ROUNDS; r++) {
            simul_backoff_reset(&b);
            for (unsigned n = 0; n < 12; n++) {
                double d = base * (double)(1u << n);
                if (d > cap)
                    d = cap;
                double got = simul_backoff_next(&b);
                assert_true(got >= lo_frac * d - 1e-12);
                assert_true(got <= hi_frac * d + 1e-12);
                assert_true(got <= cap);
                double f = got / d;
                min_frac = f < min_frac ? f : min_frac;
                max_frac = f > max_frac ? f : max_frac;
                if (n == 11)
                    sum_last += got;
            }
        }
        /* Spread: close to both ends of the range over 24000 draws. */
        assert_true(min_frac < lo_frac + 0.01);
        assert_true(max_frac > hi_frac - 0.01);
        double mean = sum_last / ROUNDS, mid = (lo_frac + hi_frac) / 2 * cap;
        assert_true(fabs(mean - mid) < 0.05 * cap);
    }
}

static void equal_jitter_bounds(void **state)
{
    (void)state;
    jitter_bounds(SIMUL_BACKOFF_EQUAL, 0.5, 1);
}

static void full_jitter_bounds(void **state)
{
    (void)state;
    jitter_bounds(SIMUL_BACKOFF_FULL, 0, 1);
}

static void proportional_jitter_bounds(void **state)
{
    (void)state;
    /* At the cap the upper +20 % is cut off: the mean at step 11 is the mean of
     * min(cap, uniform(0.8, 1.2) cap) = 0.95 cap; checked by hand below rather than by the
     * helper's middle. */
    const double base = 0.01, cap = 2;
    simul_backoff b = make(SIMUL_BACKOFF_PROPORTIONAL, base, cap, 7);
    double sum = 0;
    for (int r = 0; r < ROUNDS; r++) {
        simul_backoff_reset(&b);
        for (unsigned n = 0; n < 12; n++) {
            double d = base * (double)(1u << n);
            d = d > cap ? cap : d;
            double got = simul_backoff_next(&b);
            assert_true(got >= 0.8 * d - 1e-12 && got <= 1.2 * d + 1e-12 && got <= cap);
            if (n == 11)
                sum += got;
        }
    }
    assert_true(fabs(sum / ROUNDS - 0.95 * cap) < 0.03 * cap);
    /* A jitter_frac of its own. */
    simul_backoff_opts o = {
        .base = 1, .cap = 10, .jitter = SIMUL_BACKOFF_PROPORTIONAL, .jitter_frac = 0.5};
    assert_near(simul_backoff_delay(&o, 0, 0), 0.5, 1e-12);
    assert_near(simul_backoff_delay(&o, 1, 0.5), 2, 1e-12);
}

/* Decorrelated (AWS, redis-py): the first delay is base; each next one lies in
 * [base, min(cap, 3 * previous)], so it can also shrink; never above the cap. */
static void decorrelated_bounds(void **state)
{
    (void)state;
    simul_backoff b = make(SIMUL_BACKOFF_DECORRELATED, 0.01, 1, 42);
    bool shrank = false, reached = false;
    for (int r = 0; r < ROUNDS; r++) {
        simul_backoff_reset(&b);
        double prev = simul_backoff_next(&b);
        assert_near(prev, 0.01, 1e-12);
        for (int n = 1; n < 20; n++) {
            double got = simul_backoff_next(&b);
            double hi = 3 * prev < 1 ? 3 * prev : 1;
            assert_true(got >= 0.01 - 1e-12 && got <= hi + 1e-12);
            shrank |= got < prev;
            reached |= got > 0.9;
            prev = got;
        }
    }
    assert_true(shrank);
    assert_true(reached);
}

/* Growth on average: with equal jitter each step's delay is at least the previous step's lower
 * bound, so step n + 1 >= step n / 2 ... and the mean doubles until the cap. */
static void mean_grows_until_the_cap(void **state)
{
    (void)state;
    simul_backoff b = make(SIMUL_BACKOFF_EQUAL, 0.01, 2, 9);
    double mean[10] = {0};
    for (int r = 0; r < ROUNDS; r++) {
        simul_backoff_reset(&b);
        for (int n = 0; n < 10; n++)
            mean[n] += simul_backoff_next(&b) / ROUNDS;
    }
    for (int n = 1; n < 8; n++) {
        double ratio = mean[n] / mean[n - 1];
        assert_true(ratio > 1.85 && ratio < 2.15);
    }
    assert_true(mean[9] / mean[8] < 1.1); /* both at the cap (0.01 * 2^8 = 2.56 > 2) */
}

/* Reset after a success: the next delay is the first one again, the count is 0; the random
 * source is not reseeded (two outages do not repeat the same draws). */
static void reset_starts_over(void **state)
{
    (void)state;
    simul_backoff b = make(SIMUL_BACKOFF_NO_JITTER, 0.1, 10, 3);
    for (int i = 0; i < 5; i++)
        simul_backoff_next(&b);
    assert_near(simul_backoff_next(&b), 3.2, 1e-12);
    simul_backoff_reset(&b);
    assert_int_equal(b.failures, 0);
    assert_near(simul_backoff_next(&b), 0.1, 1e-12);

    simul_backoff j = make(SIMUL_BACKOFF_FULL, 1, 1, 11);
    double first[8], again[8];
    for (int i = 0; i < 8; i++)
        first[i] = simul_backoff_next(&j);
    simul_backoff_reset(&j);
    for (int i = 0; i < 8; i++)
        again[i] = simul_backoff_next(&j);
    assert_memory_not_equal(first, again, sizeof first);
}

/* `immediate`: the first delays are 0 (a worker that died once is restarted at once), then the
 * exponential sequence from base; a reset brings the free ones back. */
static void immediate_attempts(void **state)
{
    (void)state;
    simul_backoff b;
    simul_backoff_opts o = {.base = 0.1, .cap = 0.4, .immediate = 1};
    assert_int_equal(simul_backoff_init(&b, &o), 0);
    const double want[] = {0, 0.1, 0.2, 0.4, 0.4};
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        assert_near(simul_backoff_next(&b), want[i], 1e-12);
        assert_near(simul_backoff_delay(&o, (unsigned)i, 0.3), want[i], 1e-12);
    }
    simul_backoff_reset(&b);
    assert_near(simul_backoff_next(&b), 0, 0);
    assert_near(simul_backoff_next(&b), 0.1, 1e-12);
}

/* The same seed, the same sequence, for every kind; another seed, another sequence; seed 0 picks
 * one per state (two states made together differ). */
static void seeded_is_deterministic(void **state)
{
    (void)state;
    for (int j = SIMUL_BACKOFF_NO_JITTER; j <= SIMUL_BACKOFF_DECORRELATED; j++) {
        simul_backoff a = make((simul_backoff_jitter)j, 0.01, 5, 1234);
        simul_backoff c = make((simul_backoff_jitter)j, 0.01, 5, 1234);
        simul_backoff other = make((simul_backoff_jitter)j, 0.01, 5, 99);
        bool differs = false;
        for (int i = 0; i < 50; i++) {
            if (i == 20) {
                simul_backoff_reset(&a);
                simul_backoff_reset(&c);
                simul_backoff_reset(&other);
            }
            double x = simul_backoff_next(&a), y = simul_backoff_next(&c);
            assert_memory_equal(&x, &y, sizeof x); /* bit for bit */
            differs |= x != simul_backoff_next(&other);
        }
        assert_true(differs == (j != SIMUL_BACKOFF_NO_JITTER));
    }
    simul_backoff u = make(SIMUL_BACKOFF_FULL, 1, 1, 0), v = make(SIMUL_BACKOFF_FULL, 1, 1, 0);
    double su = 0, sv = 0;
    for (int i = 0; i < 4; i++) {
        su += simul_backoff_next(&u);
        sv += simul_backoff_next(&v);
    }
    assert_true(su != sv);
}

/* Bad options: refused with -EINVAL, the state zeroed; the pure form says -EINVAL too. */
static void bad_options_refused(void **state)
{
    (void)state;
    const simul_backoff_opts bad[] = {
        {.base = 0},
        {.base = -1},
        {.base = NAN},
        {.base = INFINITY},
        {.base = 1, .cap = 0.5},
        {.base = 1, .cap = NAN},
        {.base = 1, .multiplier = 0.5},
        {.base = 1, .multiplier = INFINITY},
        {.base = 1, .multiplier = NAN},
        {.base = 1, .jitter = SIMUL_BACKOFF_PROPORTIONAL, .jitter_frac = 1},
        {.base = 1, .jitter = SIMUL_BACKOFF_PROPORTIONAL, .jitter_frac = -0.1},
        {.base = 1, .jitter = (simul_backoff_jitter)99},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        simul_backoff b;
        memset(&b, 0xab, sizeof b);
        assert_int_equal(simul_backoff_init(&b, &bad[i]), -EINVAL);
        assert_int_equal(b.failures, 0);
        assert_near(simul_backoff_delay(&bad[i], 0, 0.5), -EINVAL, 0);
    }
    simul_backoff b;
    assert_int_equal(simul_backoff_init(&b, NULL), -EINVAL);
    assert_int_equal(simul_backoff_init(NULL, &(simul_backoff_opts){.base = 1}), -EINVAL);
    simul_backoff_opts ok = {.base = 1};
    assert_near(simul_backoff_delay(NULL, 0, 0.5), -EINVAL, 0);
    assert_near(simul_backoff_delay(&ok, 0, 1), -EINVAL, 0);
    assert_near(simul_backoff_delay(&ok, 0, -0.1), -EINVAL, 0);
    assert_near(simul_backoff_delay(&ok, 0, NAN), -EINVAL, 0);
    /* cap == base: a constant delay, allowed. */
    assert_near(simul_backoff_delay(&(simul_backoff_opts){.base = 1, .cap = 1}, 9, 0), 1, 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(no_jitter_doubles_to_the_cap),
    cmocka_unit_test(equal_jitter_bounds),
    cmocka_unit_test(full_jitter_bounds),
    cmocka_unit_test(proportional_jitter_bounds),
    cmocka_unit_test(decorrelated_bounds),
    cmocka_unit_test(mean_grows_until_the_cap),
    cmocka_unit_test(reset_starts_over),
    cmocka_unit_test(immediate_attempts),
    cmocka_unit_test(seeded_is_deterministic),
    cmocka_unit_test(bad_options_refused),
};

SIMUL_TEST_MAIN("test_backoff", tests)
