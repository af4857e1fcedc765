/* subprocess_bench.c — child processes through the public API; the same shapes as
 * bench/ref/asyncio_subprocess.py.
 *
 *   subprocess_bench seq  [N]     spawn /bin/true and wait for it, N times in a row (default
 *                                 2000); children per second, best of 3 -> subprocess_spawn_wait_per_s
 *   subprocess_bench conc [N] [K] the same N children with K tasks each spawning and waiting in
 *                                 turn, so K run at once (default K 8), best of 3
 *                                 -> subprocess_spawn_wait_c<K>_per_s
 *
 * stdio is inherited (no pipes): what is measured is spawn + exit watching + reaping. Every
 * result is a `key=value` line on stdout; any library error or a child that does not exit 0
 * ends the process with a non-zero status.
 */
#define BENCH_NAME "subprocess_bench"
#include "bench_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUNS 3

static const char *const true_argv[] = {"/bin/true", NULL};

/* Spawns and waits for *left children (shared by the workers) until none is left. */
static int worker(void *arg)
{
    long *left = arg;
    simul_process_opts o = {.argv = true_argv};
    while (*left > 0) {
        (*left)--;
        simul_process *p;
        check(simul_process_exec(&o, &p), "simul_process_exec");
        int st;
        check(simul_process_wait(p, &st), "simul_process_wait");
        if (st != 0)
            die("/bin/true exited with status %d", st);
        simul_process_close(p);
    }
    return 0;
}

typedef struct run_args {
    long n;
    long k;
} run_args;

static int run_once(void *arg)
{
    run_args *a = arg;
    long left = a->n;
    simul_task **ts = calloc((size_t)a->k, sizeof *ts);
    if (!ts)
        die("out of memory");
    for (long i = 0; i < a->k; i++)
        check(simul_task_spawn(&ts[i], worker, &left, NULL), "simul_task_spawn");
    check(simul_gather(ts, (size_t)a->k, NULL), "simul_gather");
    free(ts);
    return 0;
}

static double measure(const char *key, long n, long k)
{
    double best = 0;
    for (int r = 0; r < RUNS; r++) {
        run_args a = {n, k};
        int64_t t0 = mono_ns();
        int rc = simul_run(run_once, &a);
        int64_t t1 = mono_ns();
        check(rc, "simul_run");
        double per_s = (double)n * 1e9 / (double)(t1 - t0);
        printf("%s_run%d=%.0f\n", key, r, per_s);
        if (per_s > best)
            best = per_s;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    if (strcmp(what, "seq") == 0) {
        long n = parse_count(argc > 2 ? argv[2] : NULL, 2000);
        double v = measure("subprocess_spawn_wait", n, 1);
        printf("subprocess_spawn_wait_n=%ld\nsubprocess_spawn_wait_per_s=%.0f\n", n, v);
    } else if (strcmp(what, "conc") == 0) {
        long n = parse_count(argc > 2 ? argv[2] : NULL, 2000);
        long k = parse_count(argc > 3 ? argv[3] : NULL, 8);
        char key[64];
        snprintf(key, sizeof key, "subprocess_spawn_wait_c%ld", k);
        double v = measure(key, n, k);
        printf("subprocess_spawn_wait_c%ld_n=%ld\nsubprocess_spawn_wait_c%ld_per_s=%.0f\n", k, n,
               k, v);
    } else {
        fprintf(stderr, "usage: %s seq [N] | conc [N] [K]\n", argv[0]);
        return 2;
    }
    return 0;
}
