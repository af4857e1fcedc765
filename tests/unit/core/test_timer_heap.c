/* test_timer_heap.c — the loop's two timer heaps (src/core/timer.c) against a plain model: random
 * arms, re-arms, disarms and pops of task and callback timers, through phases where only one kind
 * is armed (the one-heap fast paths) and where both are, must pop in (deadline, arming order) and
 * report the same next deadline as a scan of the armed ones. */
#include "test_main_helpers.h"
#include "../../../src/core/internal.h"

#define NT 300

typedef struct model {
    simul__timer t[NT];
    int64_t deadline[NT];
    uint64_t order[NT]; /* arming order */
    bool armed[NT];
    uint32_t arms[NT];
} model;

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The armed timer that must come first, -1 if none. */
static int model_first(const model *m)
{
    int best = -1;
    for (int i = 0; i < NT; i++)
        if (m->armed[i] && (best < 0 || m->deadline[i] < m->deadline[best] ||
                            (m->deadline[i] == m->deadline[best] && m->order[i] < m->order[best])))
            best = i;
    return best;
}

static void run_phases(uint64_t seed)
{
    static model m;
    memset(&m, 0, sizeof m);
    simul__heap h = {0};
    for (int i = 0; i < NT; i++)
        m.t[i].kind = i % 2 ? SIMUL__TIMER_TASK : SIMUL__TIMER_CB;
    uint64_t order = 0;
    int64_t now = 0;
    /* Phase 0: callback timers only; 1: task timers only; 2: both; 3: both, mostly popping. */
    for (int phase = 0; phase < 4; phase++) {
        for (int step = 0; step < 2500; step++) {
            uint64_t r = rng(&seed);
            int i = (int)(r % NT);
            if (phase == 0)
                i &= ~1;
            else if (phase == 1)
                i |= 1;
            if (i >= NT)
                i = NT - 1;
            unsigned op = (unsigned)(r >> 32) % (phase == 3 ? 10u : 4u);
            if (op == 0 || op == 1) {
                /* Ties are common (the low bits are 0 for task timers), but a callback timer is
                 * never re-armed at a deadline it had before: its stale entry would look live
                 * and pop it out of order among its ties (entries keep no arming order). */
                int64_t dl = now + (int64_t)((r >> 40) % 50) * 4096;
                if (m.t[i].kind == SIMUL__TIMER_CB)
                    dl += 1 + (int64_t)(m.arms[i]++ % 4095);
                assert_int_equal(simul__heap_arm(&h, &m.t[i], dl), 0);
                m.deadline[i] = dl;
                m.order[i] = order++;
                m.armed[i] = true;
            } else if (op == 2) {
                simul__heap_disarm(&h, &m.t[i]);
                m.armed[i] = false;
            } else {
                now += (int64_t)((r >> 20) % 8) * 4096;
                simul__timer *t;
                while ((t = simul__heap_pop_due(&h, now))) {
                    int want = model_first(&m);
                    assert_true(want >= 0);
                    assert_ptr_equal(t, &m.t[want]);
                    assert_true(m.deadline[want] <= now);
                    assert_false(t->armed);
                    m.armed[want] = false;
                }
                int first = model_first(&m);
                assert_true(first < 0 || m.deadline[first] > now);
            }
            int first = model_first(&m);
            assert_true(simul__heap_next(&h) == (first < 0 ? SIMUL__INF : m.deadline[first]));
        }
        if (phase < 2) { /* leave the next phase's other kind empty at first */
            for (int i = 0; i < NT; i++) {
                simul__heap_disarm(&h, &m.t[i]);
                m.armed[i] = false;
            }
        }
    }
    simul__heap_free(&h);
}

static void pops_in_order_through_one_and_two_heap_phases(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++)
        run_phases(seed * 0x9e3779b97f4a7c15ull);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(pops_in_order_through_one_and_two_heap_phases),
};

SIMUL_TEST_MAIN("test_timer_heap", tests)
