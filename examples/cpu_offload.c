/* cpu_offload.c — a CPU-bound job next to a 10 ms timer, four ways. A task that computes without
 * suspending holds the loop: every other task, timer and socket waits until it is done. The job
 * here (counting primes by trial division) runs in turn:
 *   inline   in a task, straight through: the timer is late by about the job's whole duration;
 *   yield    in a task that calls simul_yield() every 2 ms (the seed's periodic
 *            `await asyncio.sleep(0)`): the timer is late by about one slice (the loop polls
 *            timers once a pass has run ~1 ms, and then gives such a task one run per pass);
 *   thread   through simul_to_thread (asyncio.to_thread): a worker thread of this process;
 *   process  through a process pool (ProcessPoolExecutor): a forked worker, another core.
 *
 *   cpu_offload [--work N] [--tick-ms T] [--yield-ms Y]
 *
 * The Python it mirrors:
 *     await asyncio.to_thread(count_primes, n)
 *     await loop.run_in_executor(ProcessPoolExecutor(1), count_primes, n)
 *
 * Prints one line per way, e.g.
 *     inline:  inline_worst_ms=391.2 job_ms=389.7 primes=114155
 * (the timer's worst lateness while the job ran, how long the job took, its result), then
 * results_agree=yes; exits 1 if a way failed or the four results differ.
 */
#include <simul.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_cli.h"

#define DEFAULT_WORK 3500000ULL /* ~350 ms of trial division on the project's VM, idle */
#define MAX_WORK 1000000000ULL

static const char *progname = "cpu_offload";

struct options {
    uint64_t work;
    double tick_ms, yield_ms;
};

static struct options opt = {DEFAULT_WORK, 10.0, 2.0};

/* ---- command line ---------------------------------------------------------------------------- */

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--work N] [--tick-ms T] [--yield-ms Y]\n"
            "  --work N      count the primes below N (1..%llu, default %llu)\n"
            "  --tick-ms T   the timer's period (0.1..1000, default 10)\n"
            "  --yield-ms Y  the yield way's slice between simul_yield() calls (0.01..1000,\n"
            "                default 2: the timer is late by about one slice)\n"
            "Runs the job inline, inline with yields, on a thread and in a worker process while a\n"
            "timer ticks, and prints the timer's worst lateness for each way.\n",
            progname, MAX_WORK, DEFAULT_WORK);
}
static uint64_t parse_work(const char *s)
{
    if (*s < '0' || *s > '9')
        usage_error("--work: not a number: '%s'", s);
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < 1 || v > MAX_WORK)
        usage_error("--work: expected 1..%llu, got '%s'", MAX_WORK, s);
    return v;
}

static double parse_ms(const char *name, const char *s, double lo, double hi)
{
    double v;
    if (!parse_number(s, lo, hi, &v))
        usage_error("%s: expected %g..%g ms, got '%s'", name, lo, hi, s);
    return v;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--work") && strcmp(a, "--tick-ms") && strcmp(a, "--yield-ms"))
            usage_error("unknown argument '%s'", a);
        if (i + 1 >= argc)
            usage_error("%s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--work") == 0)
            opt.work = parse_work(v);
        else if (strcmp(a, "--tick-ms") == 0)
            opt.tick_ms = parse_ms(a, v, 0.1, 1000);
        else
            opt.yield_ms = parse_ms(a, v, 0.01, 1000);
    }
}

/* ---- the job --------------------------------------------------------------------------------- */

static bool is_prime(uint64_t n)
{
    if (n < 4)
        return n >= 2;
    if (n % 2 == 0)
        return false;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

static uint64_t count_primes(uint64_t lo, uint64_t hi)
{
    uint64_t n = 0;
    for (uint64_t i = lo; i < hi; i++)
        n += is_prime(i);
    return n;
}

/* The same job, giving the loop a turn every yield_ms. */
static int count_primes_yielding(uint64_t hi, uint64_t *count)
{
    int64_t slice = (int64_t)(opt.yield_ms * 1e6);
    int64_t until = simul_now_ns() + slice;
    uint64_t n = 0;
    for (uint64_t lo = 0; lo < hi;) {
        uint64_t step = hi - lo < 256 ? hi - lo : 256;
        n += count_primes(lo, lo + step);
        lo += step;
        if (simul_now_ns() >= until) {
            int rc = simul_yield();
            if (rc < 0)
                return rc;
            until = simul_now_ns() + slice;
        }
    }
    *count = n;
    return 0;
}

typedef struct thread_job {
    uint64_t hi, count;
} thread_job;

static int job_on_thread(void *arg)
{
    thread_job *j = arg;
    j->count = count_primes(0, j->hi);
    return 0;
}

/* In the worker process: in is the bound, the reply the count. */
static int job_in_process(const void *in, size_t len, void **out, size_t *out_len)
{
    uint64_t hi;
    if (len != sizeof hi)
        return -EINVAL;
    memcpy(&hi, in, sizeof hi);
    uint64_t *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    *r = count_primes(0, hi);
    *out = r;
    *out_len = sizeof *r;
    return 0;
}

static int nothing_on_thread(void *arg)
{
    (void)arg;
    return 0;
}

static int nothing_in_process(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    return 0;
}

/* ---- the timer ------------------------------------------------------------------------------- */

static int64_t worst_late_ns;

/* Ticks every tick_ms on absolute deadlines and records its worst lateness. After a late tick it
 * starts over from now, so one long stall counts once instead of as a burst of catch-up ticks. */
static int ticker(void *arg)
{
    (void)arg;
    int64_t period = (int64_t)(opt.tick_ms * 1e6);
    int64_t next = simul_now_ns() + period;
    for (;;) {
        int rc = simul_sleep_until_ns(next);
        if (rc < 0)
            return rc == -ECANCELED ? 0 : rc;
        int64_t now = simul_now_ns(), late = now - next;
        if (late > worst_late_ns)
            worst_late_ns = late;
        next += period;
        if (next <= now)
            next = now + period;
    }
}

/* ---- main ------------------------------------------------------------------------------------ */

enum way { INLINE, YIELD, THREAD, PROCESS, NWAYS };
static const char *const way_name[NWAYS] = {"inline", "yield", "thread", "process"};

static int run_way(enum way w, simul_procpool *pool, uint64_t *count, double *job_ms)
{
    /* A couple of ticks first, so the timer is in step and its worst resets from a calm loop. */
    int rc = simul_sleep(3 * opt.tick_ms / 1e3);
    if (rc < 0)
        return rc;
    worst_late_ns = 0;
    int64_t t0 = simul_now_ns();
    switch (w) {
    case INLINE:
        *count = count_primes(0, opt.work);
        break;
    case YIELD:
        rc = count_primes_yielding(opt.work, count);
        break;
    case THREAD: {
        thread_job j = {.hi = opt.work};
        int result = 0;
        rc = simul_to_thread(job_on_thread, &j, &result);
        if (rc == 0)
            rc = result;
        *count = j.count;
        break;
    }
    case PROCESS: {
        void *out = NULL;
        size_t len = 0;
        int result = 0;
        rc = simul_procpool_call(pool, job_in_process, &opt.work, sizeof opt.work, &out, &len,
                                 &result);
        if (rc == 0)
            rc = result;
        if (rc == 0 && len != sizeof *count)
            rc = -EPROTO;
        if (rc == 0)
            memcpy(count, out, sizeof *count);
        free(out);
        break;
    }
    default:
        return -EINVAL;
    }
    *job_ms = (double)(simul_now_ns() - t0) / 1e6;
    if (rc < 0)
        return rc;
    /* The tick that the job delayed fires only once the loop is free: let it. */
    return simul_sleep(2 * opt.tick_ms / 1e3);
}

static int amain(void *arg)
{
    (void)arg;
    simul_procpool *pool;
    int rc = simul_procpool_new(1, &pool);
    if (rc < 0) {
        fprintf(stderr, "%s: simul_procpool_new: %s\n", progname, simul_strerror(rc));
        return 1;
    }
    /* Start the worker process and thread before measuring: the ways compare the job, not
     * fork() or pthread_create(). */
    int result;
    if ((rc = simul_procpool_call(pool, nothing_in_process, NULL, 0, NULL, NULL, &result)) < 0 ||
        (rc = simul_to_thread(nothing_on_thread, NULL, &result)) < 0) {
        fprintf(stderr, "%s: warming up: %s\n", progname, simul_strerror(rc));
        simul_procpool_close(pool);
        return 1;
    }
    simul_task *tick;
    rc = simul_task_spawn(&tick, ticker, NULL, &(simul_task_opts){.name = "ticker"});
    if (rc < 0) {
        simul_procpool_close(pool);
        return 1;
    }
    uint64_t counts[NWAYS] = {0};
    int failed = 0;
    for (int w = 0; w < NWAYS; w++) {
        double job_ms = 0;
        rc = run_way((enum way)w, pool, &counts[w], &job_ms);
        if (rc < 0) {
            fprintf(stderr, "%s: %s: %s\n", progname, way_name[w], simul_strerror(rc));
            failed = 1;
            continue;
        }
        printf("%-8s %s_worst_ms=%.1f job_ms=%.1f primes=%llu\n", way_name[w], way_name[w],
               (double)worst_late_ns / 1e6, job_ms, (unsigned long long)counts[w]);
        fflush(stdout);
    }
    simul_task_cancel(tick);
    simul_task_join(tick, NULL);
    simul_procpool_close(pool);
    bool agree = !failed;
    for (int w = 1; w < NWAYS; w++)
        agree = agree && counts[w] == counts[0];
    printf("results_agree=%s\n", agree ? "yes" : "no");
    return agree ? 0 : 1;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    int rc = simul_run(amain, NULL);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", progname, simul_strerror(rc));
        return 1;
    }
    return rc;
}
