/* offload_bench.c — what it costs to hand work off the loop and get the answer back, through the
 * public API only.
 *
 *   offload_bench thread  [N]  N sequential simul_to_thread() calls of a function that returns
 *                              at once (default 20000), best of 3     -> to_thread_roundtrip_us
 *   offload_bench process [N]  N sequential simul_procpool_call() calls on a 1-worker pool, a
 *                              64-byte request echoed back (default 5000), best of 3; the worker
 *                              is started before timing               -> procpool_roundtrip_us
 *
 * One measure per process. Every result is a `key=value` line on stdout; diagnostics go to
 * stderr. Any library error ends the process with a non-zero status.
 */
#define BENCH_NAME "offload_bench"
#include "bench_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUNS 3
#define PAYLOAD 64

static int nothing(void *arg)
{
    return (int)(intptr_t)arg;
}

static int echo(const void *in, size_t len, void **out, size_t *out_len)
{
    void *r = malloc(len ? len : 1);
    if (!r)
        return -1;
    memcpy(r, in, len);
    *out = r;
    *out_len = len;
    return 0;
}

static long n_calls;
static double run_us[RUNS];

static int bench_thread(void *arg)
{
    (void)arg;
    int result, rc;
    if ((rc = simul_to_thread(nothing, NULL, &result)) < 0) /* start a worker thread */
        die("to_thread: %s", simul_strerror(rc));
    for (int r = 0; r < RUNS; r++) {
        int64_t t0 = mono_ns();
        for (long i = 0; i < n_calls; i++) {
            rc = simul_to_thread(nothing, (void *)(intptr_t)(i & 1), &result);
            if (rc < 0 || result != (int)(i & 1))
                die("to_thread: %s (result %d)", simul_strerror(rc), result);
        }
        run_us[r] = (double)(mono_ns() - t0) / 1e3 / (double)n_calls;
    }
    return 0;
}

static int bench_process(void *arg)
{
    (void)arg;
    simul_procpool *pool;
    int rc = simul_procpool_new(1, &pool);
    if (rc < 0)
        die("procpool_new: %s", simul_strerror(rc));
    unsigned char msg[PAYLOAD];
    for (int i = 0; i < PAYLOAD; i++)
        msg[i] = (unsigned char)i;
    int result;
    if ((rc = simul_procpool_call(pool, echo, msg, sizeof msg, NULL, NULL, &result)) < 0)
        die("procpool_call: %s", simul_strerror(rc)); /* start the worker */
    for (int r = 0; r < RUNS; r++) {
        int64_t t0 = mono_ns();
        for (long i = 0; i < n_calls; i++) {
            void *out = NULL;
            size_t len = 0;
            msg[0] = (unsigned char)i;
            rc = simul_procpool_call(pool, echo, msg, sizeof msg, &out, &len, &result);
            if (rc < 0 || result != 0 || len != sizeof msg || memcmp(out, msg, len) != 0)
                die("procpool_call: %s (result %d, %zu bytes)", simul_strerror(rc), result, len);
            free(out);
        }
        run_us[r] = (double)(mono_ns() - t0) / 1e3 / (double)n_calls;
    }
    simul_procpool_close(pool);
    return 0;
}

static void report(const char *key)
{
    printf("%s_n=%ld\n", key, n_calls);
    report_runs(key, run_us, RUNS, 2, true);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (strcmp(argv[1], "thread") && strcmp(argv[1], "process"))) {
        fprintf(stderr, "usage: %s thread|process [N]\n", argv[0]);
        return 2;
    }
    bool thread = strcmp(argv[1], "thread") == 0;
    n_calls = parse_count(argc == 3 ? argv[2] : NULL, thread ? 20000 : 5000);
    int rc = simul_run(thread ? bench_thread : bench_process, NULL);
    if (rc != 0)
        die("run: %s", simul_strerror(rc));
    report(thread ? "to_thread_roundtrip_us" : "procpool_roundtrip_us");
    return 0;
}
