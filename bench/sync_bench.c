/* sync_bench.c — coordination primitives of simul, through the public API only; the same shapes
 * as bench/ref/asyncio_sync.py.
 *
 *   sync_bench queue [N]  a producer task puts N items into a queue of maxsize 1 and a consumer
 *                         task gets them (each side one put/get per item); time per item
 *                         handed over, best of 5 runs (default 5M)        -> queue_roundtrip_ns
 *   sync_bench lock  [N]  two tasks contend on one lock, each N/2 times: acquire, yield while
 *                         holding it, release; every acquisition is a hand-over from the other
 *                         task; time per hand-over, best of 5 (default 5M) -> lock_handoff_ns
 *
 * Every result is a `key=value` line on stdout; diagnostics go to stderr. Any library error or
 * a shape that did not happen as described ends the process with a non-zero status.
 */
#define BENCH_NAME "sync_bench"
#include "bench_util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define RUNS 5

static void report(const char *key, long n, const double *runs)
{
    printf("%s_n=%ld\n", key, n);
    report_runs(key, runs, RUNS, 2, true);
}

/* ------------------------------------------------------------------------------------------ *
 * queue: producer -> Queue(maxsize=1) -> consumer
 * ------------------------------------------------------------------------------------------ */

static struct {
    simul_queue *q;
    long n;
    long sum; /* consumer's checksum: every item arrived, in order */
    long misordered;
} g_q;

static int producer(void *arg)
{
    (void)arg;
    for (long i = 0; i < g_q.n; i++)
        check(simul_queue_put(g_q.q, (void *)(intptr_t)i), "simul_queue_put");
    return 0;
}

static int consumer(void *arg)
{
    (void)arg;
    for (long i = 0; i < g_q.n; i++) {
        void *it;
        check(simul_queue_get(g_q.q, &it), "simul_queue_get");
        g_q.misordered += (intptr_t)it != i;
        g_q.sum += (long)(intptr_t)it;
    }
    return 0;
}

struct cfg {
    long n;
    double ns[RUNS];
};

static int queue_main(void *arg)
{
    struct cfg *c = arg;
    for (int r = 0; r < RUNS; r++) {
        check(simul_queue_new(&g_q.q, 1), "simul_queue_new");
        g_q.n = c->n;
        g_q.sum = g_q.misordered = 0;
        simul_task *p, *k;
        int64_t t0 = mono_ns();
        check(simul_task_spawn(&p, producer, NULL, NULL), "spawn producer");
        check(simul_task_spawn(&k, consumer, NULL, NULL), "spawn consumer");
        check(simul_task_join(p, NULL), "join producer");
        check(simul_task_join(k, NULL), "join consumer");
        int64_t t1 = mono_ns();
        if (g_q.misordered || g_q.sum != c->n * (c->n - 1) / 2 || !simul_queue_empty(g_q.q))
            die("queue: items lost or out of order");
        simul_queue_free(g_q.q, NULL);
        c->ns[r] = (double)(t1 - t0) / (double)c->n;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ *
 * lock: two tasks, acquire / yield / release
 * ------------------------------------------------------------------------------------------ */

static struct {
    simul_lock *lock;
    long iters;   /* acquisitions per task */
    int last;     /* the task that held the lock last */
    long non_alt; /* acquisitions that were not a hand-over from the other task */
} g_l;

static int contender(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < g_l.iters; i++) {
        check(simul_lock_acquire(g_l.lock), "simul_lock_acquire");
        if (g_l.last == me)
            g_l.non_alt++;
        g_l.last = me;
        check(simul_yield(), "simul_yield"); /* asyncio.sleep(0) while holding it */
        check(simul_lock_release(g_l.lock), "simul_lock_release");
    }
    return 0;
}

static int lock_main(void *arg)
{
    struct cfg *c = arg;
    for (int r = 0; r < RUNS; r++) {
        check(simul_lock_new(&g_l.lock), "simul_lock_new");
        g_l.iters = c->n / 2;
        g_l.last = -1;
        g_l.non_alt = 0;
        simul_task *a, *b;
        int64_t t0 = mono_ns();
        check(simul_task_spawn(&a, contender, (void *)(intptr_t)1, NULL), "spawn");
        check(simul_task_spawn(&b, contender, (void *)(intptr_t)2, NULL), "spawn");
        check(simul_task_join(a, NULL), "join");
        check(simul_task_join(b, NULL), "join");
        int64_t t1 = mono_ns();
        /* Expected: 1 (the first task's last acquisition after the other has finished). */
        if (g_l.non_alt > 1)
            die("lock: %ld of %ld acquisitions were not hand-overs", g_l.non_alt, 2 * g_l.iters);
        if (simul_lock_locked(g_l.lock))
            die("lock: left locked");
        simul_lock_free(g_l.lock);
        c->ns[r] = (double)(t1 - t0) / (double)(2 * g_l.iters);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        die("usage: sync_bench queue|lock [count]");
    struct cfg c = {0};
    simul_task_fn fn;
    const char *key;
    if (strcmp(argv[1], "queue") == 0) {
        fn = queue_main;
        key = "queue_roundtrip_ns";
    } else if (strcmp(argv[1], "lock") == 0) {
        fn = lock_main;
        key = "lock_handoff_ns";
    } else {
        die("unknown measure '%s'", argv[1]);
        return 1;
    }
    c.n = parse_count(argc == 3 ? argv[2] : NULL, 5000000);
    if (c.n < 2)
        die("count must be at least 2");
    int rc = simul_run(fn, &c);
    if (rc < 0)
        die("simul_run: %d %s", rc, simul_errname(rc));
    report(key, fn == lock_main ? (c.n / 2) * 2 : c.n, c.ns);
    return 0;
}
