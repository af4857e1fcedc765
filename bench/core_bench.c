/* core_bench.c — core measurements of simul, through the public API only.
 *
 *   core_bench switch [N]   two tasks ping-pong with simul_yield(); N switches (default 10M),
 *                           best of 5 runs                                    -> switch_ns
 *   core_bench spawn  [N]   one task: spawn a task returning 0, join it; N pairs (default 2M),
 *                           best of 3 runs                                    -> spawn_join_per_s
 *   core_bench rss    [N]   N tasks (default 1M) each simul_sleep(1.0), spawned from the main
 *                           task, then all joined; (VmHWM - VmRSS before) / N -> rss_per_task_bytes
 *   core_bench timer  [N]   N simul_call_later() with uniform random delays in [0,1) (fixed
 *                           seed); scheduling cost, then worst lateness      -> timer_ns,
 *                                                                               timer_worst_late_ms
 *
 *   core_bench <measure>-compact [N]   the same with compact tasks (SIMUL_TASKS=compact); keys
 *                           prefixed compact_ (compact_rss_per_task_bytes, compact_switch_ns...)
 *
 * Run one measure per process so that the peak RSS of one does not pollute another.
 * Every result is a `key=value` line on stdout; diagnostics go to stderr. Any library error
 * ends the process with a non-zero status.
 */
#define BENCH_NAME "core_bench"
#include "bench_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */

/* A field of /proc/self/status in kB ("VmRSS", "VmHWM"), or -1. */
static const char *g_prefix = ""; /* "compact_" for the -compact measures */

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    size_t klen = strlen(key);
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rand01(uint64_t *s) { return (double)(splitmix64(s) >> 11) * 0x1.0p-53; }

static int run_main(simul_task_fn fn, void *arg, const char *what) {
    int rc = simul_run(fn, arg);
    if (rc < 0)
        die("%s: simul_run returned %d %s (%s)", what, rc, simul_errname(rc), simul_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------------------------------------ *
 * switch: two tasks hand the CPU to each other with simul_yield().
 * ------------------------------------------------------------------------------------------ */

#define SWITCH_RUNS 5

static struct {
    long iters;    /* yields per task */
    int last;      /* id of the task that ran last */
    long non_alt;  /* yields after which the other task had not run */
} g_pp;

static int pinger(void *arg) {
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < g_pp.iters; i++) {
        g_pp.last = me;
        int rc = simul_yield();
        if (rc < 0)
            return rc;
        if (g_pp.last == me)
            g_pp.non_alt++;
    }
    return 0;
}

struct switch_cfg {
    long n;
    double run_ns[SWITCH_RUNS];
};

static int switch_main(void *arg) {
    struct switch_cfg *c = arg;
    for (int r = 0; r < SWITCH_RUNS; r++) {
        g_pp.iters = c->n / 2;
        g_pp.last = -1;
        g_pp.non_alt = 0;
        simul_task *a, *b;
        int ra = -1, rb = -1;
        int64_t t0 = mono_ns();
        check(simul_task_spawn(&a, pinger, (void *)(intptr_t)1, NULL), "spawn pinger");
        check(simul_task_spawn(&b, pinger, (void *)(intptr_t)2, NULL), "spawn pinger");
        check(simul_task_join(a, &ra), "join pinger");
        check(simul_task_join(b, &rb), "join pinger");
        int64_t t1 = mono_ns();
        if (ra != 0 || rb != 0)
            die("switch: pinger results %d %d", ra, rb);
        /* Expected: exactly 1 (the last yield of the task that finishes second finds nobody
         * else ready). More means simul_yield returned without running the other task. */
        if (g_pp.non_alt > 1)
            die("switch: %ld of %ld yields returned without the other task running",
                g_pp.non_alt, 2 * g_pp.iters);
        c->run_ns[r] = (double)(t1 - t0) / (double)(2 * g_pp.iters);
    }
    return 0;
}

static void bench_switch(long n) {
    struct switch_cfg c = {.n = n};
    run_main(switch_main, &c, "switch");
    char key[64];
    printf("%sswitch_n=%ld\n", g_prefix, (n / 2) * 2);
    snprintf(key, sizeof key, "%sswitch_ns", g_prefix);
    report_runs(key, c.run_ns, SWITCH_RUNS, 2, true);
}

/* ------------------------------------------------------------------------------------------ *
 * spawn: spawn a task that returns 0 at once, join it; repeat.
 * ------------------------------------------------------------------------------------------ */

#define SPAWN_RUNS 3

static long g_ran;

static int ret0(void *arg) {
    (void)arg;
    g_ran++;
    return 0;
}

struct spawn_cfg {
    long n;
    double per_s[SPAWN_RUNS];
};

static int spawn_main(void *arg) {
    struct spawn_cfg *c = arg;
    for (int r = 0; r < SPAWN_RUNS; r++) {
        g_ran = 0;
        int64_t t0 = mono_ns();
        for (long i = 0; i < c->n; i++) {
            simul_task *t;
            int res = -1;
            check(simul_task_spawn(&t, ret0, NULL, NULL), "simul_task_spawn");
            check(simul_task_join(t, &res), "simul_task_join");
            if (res != 0)
                die("spawn: joined result %d", res);
        }
        int64_t t1 = mono_ns();
        if (g_ran != c->n)
            die("spawn: %ld tasks ran, expected %ld", g_ran, c->n);
        c->per_s[r] = (double)c->n * 1e9 / (double)(t1 - t0);
    }
    return 0;
}

static void bench_spawn(long n) {
    struct spawn_cfg c = {.n = n};
    run_main(spawn_main, &c, "spawn");
    printf("spawn_join_n=%ld\n", n);
    double best = report_runs("spawn_join_per_s", c.per_s, SPAWN_RUNS, 0, false);
    printf("spawn_join_ns=%.1f\n", 1e9 / best);
}

/* ------------------------------------------------------------------------------------------ *
 * rss: N concurrent tasks, each sleeping 1 s.
 * ------------------------------------------------------------------------------------------ */

static long g_slept_short; /* sleepers that woke before 1 s had passed */
static long g_sleepers_started;

static int sleeper(void *arg) {
    (void)arg;
    g_sleepers_started++;
    int64_t t0 = mono_ns();
    int rc = simul_sleep(1.0);
    if (rc < 0)
        return rc;
    if (mono_ns() - t0 < 1000000000LL)
        g_slept_short++;
    return 0;
}

struct rss_cfg {
    long n;
    long base_kb, hwm_kb, after_kb;
    int64_t t_spawn, t_join;
    long failed;
};

static int rss_main(void *arg) {
    struct rss_cfg *c = arg;
    /* The handle array is the benchmark's own: allocate and touch it before the baseline. */
    simul_task **h = malloc((size_t)c->n * sizeof *h);
    if (!h)
        die("rss: out of memory for %ld handles", c->n);
    /* Not memset(0): the compiler makes malloc + memset(0) a calloc, which leaves fresh pages
     * untouched, and the array's 8 bytes a task would be charged to the tasks. */
    memset(h, 0xff, (size_t)c->n * sizeof *h);
    c->base_kb = status_kb("VmRSS");

    int64_t t0 = mono_ns();
    for (long i = 0; i < c->n; i++) {
        int rc = simul_task_spawn(&h[i], sleeper, NULL, NULL);
        if (rc < 0)
            die("rss: simul_task_spawn #%ld of %ld failed: %d %s (%s); VmRSS=%ld kB", i, c->n,
                rc, simul_errname(rc), simul_strerror(rc), status_kb("VmRSS"));
    }
    int64_t t1 = mono_ns();
    for (long i = 0; i < c->n; i++) {
        int res = -1;
        check(simul_task_join(h[i], &res), "rss: simul_task_join");
        if (res != 0)
            c->failed++;
    }
    int64_t t2 = mono_ns();
    c->hwm_kb = status_kb("VmHWM");
    c->after_kb = status_kb("VmRSS");
    c->t_spawn = t1 - t0;
    c->t_join = t2 - t1;
    free(h);
    return 0;
}

static void bench_rss(long n) {
    struct rss_cfg c = {.n = n};
    run_main(rss_main, &c, "rss");
    if (c.failed)
        die("rss: %ld sleepers returned an error", c.failed);
    if (g_sleepers_started != n)
        die("rss: %ld sleepers ran, expected %ld", g_sleepers_started, n);
    if (g_slept_short)
        fprintf(stderr, "core_bench: WARNING rss: %ld sleepers woke before 1 s had passed\n",
                g_slept_short);
    if (c.base_kb < 0 || c.hwm_kb < 0)
        die("rss: cannot read /proc/self/status");
    printf("%srss_tasks=%ld\n", g_prefix, n);
    printf("%srss_baseline_kb=%ld\n", g_prefix, c.base_kb);
    printf("%srss_peak_kb=%ld\n", g_prefix, c.hwm_kb);
    printf("%srss_after_join_kb=%ld\n", g_prefix, c.after_kb);
    printf("%srss_short_sleeps=%ld\n", g_prefix, g_slept_short);
    printf("%srss_per_task_bytes=%.0f\n", g_prefix, (double)(c.hwm_kb - c.base_kb) * 1024.0 / (double)n);
    printf("%sspawn_1m_us_per_task=%.3f\n", g_prefix, (double)c.t_spawn / 1e3 / (double)n);
    printf("%srss_join_all_s=%.3f\n", g_prefix, (double)c.t_join / 1e9);
    printf("%srss_total_elapsed_s=%.3f\n", g_prefix, (double)(c.t_spawn + c.t_join) / 1e9);
}

/* ------------------------------------------------------------------------------------------ *
 * timer: N call_later callbacks with random delays in [0, 1).
 * ------------------------------------------------------------------------------------------ */

static struct {
    long n, fired;
    int64_t loop_start_ns;    /* when scheduling ended and the loop began to run */
    int64_t worst_late_ns;    /* max(now - deadline) */
    int64_t worst_late_run_ns; /* max(now - max(deadline, loop_start)) */
    int64_t worst_early_ns;   /* max(deadline - now) over callbacks that ran early */
    long early;
    int64_t worst_skew_ns;    /* how far simul_now_ns() fell outside CLOCK_MONOTONIC reads around it */
    int64_t last_fire_ns;
    simul_loop *loop;
} g_tm;

static void timer_cb(void *arg) {
    int64_t dl = *(const int64_t *)arg;
    int64_t before = mono_ns();
    int64_t now = simul_now_ns();
    int64_t after = mono_ns();
    /* simul_now_ns() must lie within [before, after]; anything outside is a stale or wrong
     * clock (a preemption between the reads widens the window instead of faking a skew). */
    int64_t skew = now < before ? before - now : (now > after ? now - after : 0);
    if (skew > g_tm.worst_skew_ns)
        g_tm.worst_skew_ns = skew;
    int64_t late = now - dl;
    if (late > g_tm.worst_late_ns)
        g_tm.worst_late_ns = late;
    if (late < 0) {
        g_tm.early++;
        if (-late > g_tm.worst_early_ns)
            g_tm.worst_early_ns = -late;
    }
    int64_t eff = dl > g_tm.loop_start_ns ? dl : g_tm.loop_start_ns;
    if (now - eff > g_tm.worst_late_run_ns)
        g_tm.worst_late_run_ns = now - eff;
    g_tm.last_fire_ns = now;
    if (++g_tm.fired == g_tm.n)
        check(simul_loop_stop(g_tm.loop), "simul_loop_stop");
}

static void bench_timer(long n) {
    double *delay = malloc((size_t)n * sizeof *delay);
    int64_t *deadline = malloc((size_t)n * sizeof *deadline);
    if (!delay || !deadline)
        die("timer: out of memory");
    uint64_t seed = 0x5eed5eedULL;
    for (long i = 0; i < n; i++)
        delay[i] = rand01(&seed);
    memset(deadline, 0, (size_t)n * sizeof *deadline);

    memset(&g_tm, 0, sizeof g_tm);
    g_tm.n = n;
    g_tm.worst_late_ns = INT64_MIN;
    g_tm.worst_late_run_ns = INT64_MIN;
    check(simul_loop_new(&g_tm.loop), "simul_loop_new");

    /* The intended deadline of callback i is (the clock read at the start of its block of 256
     * calls) + delay: never later than the time call_later itself reads, so lateness is never
     * under-reported, and the clock reads cost nothing measurable in the scheduling time. */
    int64_t base = 0;
    int64_t t0 = mono_ns();
    for (long i = 0; i < n; i++) {
        if ((i & 255) == 0)
            base = simul_now_ns();
        deadline[i] = base + (int64_t)(delay[i] * 1e9);
        int rc = simul_call_later(delay[i], timer_cb, &deadline[i], NULL);
        if (rc < 0)
            die("timer: simul_call_later #%ld failed: %d %s", i, rc, simul_errname(rc));
    }
    int64_t t1 = mono_ns();
    g_tm.loop_start_ns = simul_now_ns();
    check(simul_loop_run(g_tm.loop), "simul_loop_run");
    int64_t t2 = mono_ns();
    if (g_tm.fired != n)
        die("timer: loop returned after %ld of %ld callbacks", g_tm.fired, n);
    check(simul_loop_close(g_tm.loop), "simul_loop_close");

    printf("timer_n=%ld\n", n);
    printf("timer_ns=%.1f\n", (double)(t1 - t0) / (double)n);
    printf("timer_schedule_s=%.3f\n", (double)(t1 - t0) / 1e9);
    printf("timer_worst_late_ms=%.3f\n", (double)g_tm.worst_late_ns / 1e6);
    /* The same, not counting the time the scheduling loop itself kept the loop from running. */
    printf("timer_worst_late_after_sched_ms=%.3f\n", (double)g_tm.worst_late_run_ns / 1e6);
    printf("timer_early_count=%ld\n", g_tm.early);
    printf("timer_worst_early_ms=%.3f\n", (double)g_tm.worst_early_ns / 1e6);
    printf("timer_now_skew_max_ms=%.3f\n", (double)g_tm.worst_skew_ns / 1e6);
    printf("timer_run_s=%.3f\n", (double)(t2 - t1) / 1e9);
    printf("timer_total_s=%.3f\n", (double)(t2 - t0) / 1e9);
    free(delay);
    free(deadline);
}

/* ------------------------------------------------------------------------------------------ *
 * wait: two tasks hand a token back and forth through two queues, so every get parks (a wait
 * record on the queue's wait list) and every put wakes the other task. "wait-deadline": the
 * same inside a one-hour deadline scope, so every park arms the task's timer and every wake
 * disarms it (a task timer cancelled). Meant for instruction counts (bench/run_core_instr.sh).
 * ------------------------------------------------------------------------------------------ */

static struct {
    simul_queue *q[2];
    long iters;
    bool deadline;
} g_wt;

static int wait_peer(void *arg) {
    int me = (int)(intptr_t)arg;
    simul_scope s SIMUL_SCOPE_AUTO = SIMUL_SCOPE_INIT;
    if (g_wt.deadline)
        check(simul_scope_timeout(&s, 3600.0), "wait: simul_scope_timeout");
    static char token;
    void *item;
    for (long i = 0; i < g_wt.iters; i++) {
        if (me == 0) {
            check(simul_queue_put(g_wt.q[0], &token), "wait: put");
            check(simul_queue_get(g_wt.q[1], &item), "wait: get");
        } else {
            check(simul_queue_get(g_wt.q[0], &item), "wait: get");
            check(simul_queue_put(g_wt.q[1], &token), "wait: put");
        }
    }
    return 0;
}

static int wait_main(void *arg) {
    long n = *(long *)arg;
    g_wt.iters = n / 2;
    check(simul_queue_new(&g_wt.q[0], 0), "wait: simul_queue_new");
    check(simul_queue_new(&g_wt.q[1], 0), "wait: simul_queue_new");
    simul_task *a, *b;
    int64_t t0 = mono_ns();
    check(simul_task_spawn(&b, wait_peer, (void *)(intptr_t)1, NULL), "wait: spawn");
    check(simul_task_spawn(&a, wait_peer, (void *)(intptr_t)0, NULL), "wait: spawn");
    int ra = -1, rb = -1;
    check(simul_task_join(a, &ra), "wait: join");
    check(simul_task_join(b, &rb), "wait: join");
    int64_t t1 = mono_ns();
    if (ra != 0 || rb != 0)
        die("wait: peer results %d %d", ra, rb);
    simul_queue_free(g_wt.q[0], NULL);
    simul_queue_free(g_wt.q[1], NULL);
    printf("%s%swait_n=%ld\n", g_prefix, g_wt.deadline ? "deadline_" : "", 2 * g_wt.iters);
    printf("%s%swait_ns=%.1f\n", g_prefix, g_wt.deadline ? "deadline_" : "",
           (double)(t1 - t0) / (double)(2 * g_wt.iters));
    return 0;
}

static void bench_wait(long n, bool deadline) {
    g_wt.deadline = deadline;
    run_main(wait_main, &n, "wait");
}

/* ------------------------------------------------------------------------------------------ *
 * sleep: SLEEPERS tasks each sleep until a deadline already past, n times in all: every sleep
 * parks, arms the task's timer, and the next loop pass finds it due (no wall time waited).
 * ------------------------------------------------------------------------------------------ */

#define SLEEPERS 64

static long g_sleep_iters;

static int short_sleeper(void *arg) {
    (void)arg;
    for (long i = 0; i < g_sleep_iters; i++)
        check(simul_sleep_until_ns(0), "sleep: simul_sleep_until_ns");
    return 0;
}

static int sleep_main(void *arg) {
    long n = *(long *)arg;
    g_sleep_iters = n / SLEEPERS;
    simul_task *t[SLEEPERS];
    int64_t t0 = mono_ns();
    for (int i = 0; i < SLEEPERS; i++)
        check(simul_task_spawn(&t[i], short_sleeper, NULL, NULL), "sleep: spawn");
    for (int i = 0; i < SLEEPERS; i++) {
        int r = -1;
        check(simul_task_join(t[i], &r), "sleep: join");
        if (r != 0)
            die("sleep: sleeper result %d", r);
    }
    int64_t t1 = mono_ns();
    printf("%ssleep_n=%ld\n", g_prefix, g_sleep_iters * SLEEPERS);
    printf("%ssleep_ns=%.1f\n", g_prefix, (double)(t1 - t0) / (double)(g_sleep_iters * SLEEPERS));
    return 0;
}

static void bench_sleep(long n) {
    run_main(sleep_main, &n, "sleep");
}

/* ------------------------------------------------------------------------------------------ *
 * later: LATER_FLIGHT callbacks in flight, each re-arming itself with call_later(0) when it runs,
 * n runs in all: the callback heap's arm and pop and the loop's timer pass, deterministic (every
 * deadline is due at the next pass). "later-mixed": the same while LATER_FLIGHT tasks sleep for
 * an hour, so the task timers' heap is not empty either.
 * ------------------------------------------------------------------------------------------ */

#define LATER_FLIGHT 64

static struct {
    long n, fired;
    simul_event *done;
} g_lt;

static void later_cb(void *arg) {
    (void)arg;
    if (++g_lt.fired >= g_lt.n) {
        if (g_lt.fired == g_lt.n)
            check(simul_event_set(g_lt.done), "later: simul_event_set");
        return;
    }
    check(simul_call_later(0.0, later_cb, NULL, NULL), "later: simul_call_later");
}

static int hour_sleeper(void *arg) {
    (void)arg;
    int rc = simul_sleep(3600.0);
    return rc == -ECANCELED ? 0 : rc;
}

static int later_main(void *arg) {
    bool mixed = *(bool *)arg;
    simul_task *sl[LATER_FLIGHT];
    if (mixed)
        for (int i = 0; i < LATER_FLIGHT; i++)
            check(simul_task_spawn(&sl[i], hour_sleeper, NULL, NULL), "later: spawn");
    check(simul_event_new(&g_lt.done), "later: simul_event_new");
    int64_t t0 = mono_ns();
    for (int i = 0; i < LATER_FLIGHT; i++)
        check(simul_call_later(0.0, later_cb, NULL, NULL), "later: simul_call_later");
    check(simul_event_wait(g_lt.done), "later: simul_event_wait");
    int64_t t1 = mono_ns();
    while (g_lt.fired < g_lt.n + LATER_FLIGHT - 1) /* the last ones in flight */
        check(simul_yield(), "later: simul_yield");
    if (mixed)
        for (int i = 0; i < LATER_FLIGHT; i++) {
            int r = -1;
            simul_task_cancel(sl[i]);
            check(simul_task_join(sl[i], &r), "later: join");
            if (r != 0)
                die("later: sleeper result %d", r);
        }
    simul_event_free(g_lt.done);
    printf("%slater_n=%ld\n", mixed ? "mixed_" : "", g_lt.n);
    printf("%slater_ns=%.1f\n", mixed ? "mixed_" : "", (double)(t1 - t0) / (double)g_lt.n);
    return 0;
}

static void bench_later(long n, bool mixed) {
    g_lt.n = n;
    run_main(later_main, &mixed, "later");
}

/* ------------------------------------------------------------------------------------------ *
 * later-cancel: call_later one hour ahead, then cancel it, n times (the callback heap's arm
 * and its lazy disarm, stale entries compacted now and then).
 * ------------------------------------------------------------------------------------------ */

static void never_cb(void *arg) {
    (void)arg;
    die("later-cancel: a cancelled callback ran");
}

static int later_cancel_main(void *arg) {
    long n = *(long *)arg;
    int64_t t0 = mono_ns();
    for (long i = 0; i < n; i++) {
        simul_handle h;
        check(simul_call_later(3600.0, never_cb, NULL, &h), "later-cancel: simul_call_later");
        check(simul_handle_cancel(h), "later-cancel: simul_handle_cancel");
    }
    int64_t t1 = mono_ns();
    printf("later_cancel_n=%ld\n", n);
    printf("later_cancel_ns=%.1f\n", (double)(t1 - t0) / (double)n);
    return 0;
}

static void bench_later_cancel(long n) {
    run_main(later_cancel_main, &n, "later-cancel");
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    /* "<measure>-compact": the same measure with compact tasks (the loop default, as
     * SIMUL_TASKS=compact makes it), its keys prefixed "compact_". */
    static char measure[32];
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s switch|spawn|rss|timer|wait|wait-deadline|sleep|later|later-mixed|later-cancel"
                        "[-compact] [count]\n", argv[0]);
        return 2;
    }
    const char *m = argv[1];
    size_t ml = strlen(m);
    if (ml > 8 && ml < sizeof measure && strcmp(m + ml - 8, "-compact") == 0) {
        memcpy(measure, m, ml - 8);
        measure[ml - 8] = 0;
        m = measure;
        g_prefix = "compact_";
        setenv("SIMUL_TASKS", "compact", 1);
    } else {
        unsetenv("SIMUL_TASKS");
    }
    const char *cnt = argc > 2 ? argv[2] : NULL;
    if (strcmp(m, "switch") == 0)
        bench_switch(parse_count(cnt, 10000000));
    else if (strcmp(m, "spawn") == 0)
        bench_spawn(parse_count(cnt, 2000000));
    else if (strcmp(m, "rss") == 0)
        bench_rss(parse_count(cnt, 1000000));
    else if (strcmp(m, "timer") == 0)
        bench_timer(parse_count(cnt, 1000000));
    else if (strcmp(m, "wait") == 0)
        bench_wait(parse_count(cnt, 2000000), false);
    else if (strcmp(m, "wait-deadline") == 0)
        bench_wait(parse_count(cnt, 2000000), true);
    else if (strcmp(m, "sleep") == 0)
        bench_sleep(parse_count(cnt, 2000000));
    else if (strcmp(m, "later") == 0)
        bench_later(parse_count(cnt, 2000000), false);
    else if (strcmp(m, "later-mixed") == 0)
        bench_later(parse_count(cnt, 2000000), true);
    else if (strcmp(m, "later-cancel") == 0)
        bench_later_cancel(parse_count(cnt, 2000000));
    else {
        fprintf(stderr, "core_bench: unknown measure '%s'\n", m);
        return 2;
    }
    fflush(stdout);
    return 0;
}
