/* pipeline.c — producers and consumers joined by a bounded queue: backpressure in action.
 * When the consumers are slower, the queue fills and simul_queue_put suspends the producers
 * until there is room, so they run at the consumers' pace instead of piling up memory.
 *
 *   pipeline [--producers P] [--consumers C] [--maxsize M] [--items N]
 *            [--produce-ms X] [--consume-ms Y] [--sample-ms S]
 *
 * The Python it mirrors:
 *     async def producer(q, n):
 *         for i in range(n): await q.put(i)          # waits while q is full
 *     async def consumer(q):
 *         while True:
 *             item = await q.get(); await asyncio.sleep(work); q.task_done()
 *
 * Prints how long the producers spent blocked in put and samples of the queue depth, then
 * `delivered=<n>`; exits 1 unless every one of the P x N items arrived exactly once.
 */
#include <simul.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "example_cli.h"

#define MAX_TASKS 10000
#define MAX_ITEMS_TOTAL 100000000ULL /* one byte each for the exactly-once check */
#define MAX_MS 60000.0

struct options {
    size_t producers, consumers, maxsize, items;
    double produce_ms, consume_ms, sample_ms;
};

static const char *progname = "pipeline";

/* ---------------------------------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------------------------------- */

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--producers P] [--consumers C] [--maxsize M] [--items N]\n"
            "          [--produce-ms X] [--consume-ms Y] [--sample-ms S]\n"
            "  --producers P   producer tasks (1..%d, default 4)\n"
            "  --consumers C   consumer tasks (1..%d, default 2)\n"
            "  --maxsize M     queue capacity; 0 = unbounded, no backpressure (default 8)\n"
            "  --items N       items per producer (default 250)\n"
            "  --produce-ms X  time a producer takes to make one item (default 0)\n"
            "  --consume-ms Y  time a consumer takes per item (default 1)\n"
            "  --sample-ms S   queue depth sampling period (default 50)\n"
            "Consumers slower than producers make the queue fill up; then put suspends the\n"
            "producers (backpressure). Prints delivered=<n>; exits 1 unless it is P x N.\n",
            progname, MAX_TASKS, MAX_TASKS);
}

static void want_count(const char *name, const char *val, size_t *out, size_t lo, size_t hi)
{
    if (!parse_count(val, out) || *out < lo || *out > hi)
        usage_error("%s wants a whole number from %zu to %zu, not '%s'", name, lo, hi, val);
}

static void want_ms(const char *name, const char *val, double *out, double lo)
{
    if (!parse_number(val, lo, MAX_MS, out))
        usage_error("%s wants milliseconds from %g to %g, not '%s'", name, lo, MAX_MS, val);
}

static struct options parse_options(int argc, char **argv)
{
    struct options o = {.producers = 4,
                        .consumers = 2,
                        .maxsize = 8,
                        .items = 250,
                        .produce_ms = 0,
                        .consume_ms = 1,
                        .sample_ms = 50};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_usage(stdout);
            exit(EXIT_SUCCESS);
        } else if ((v = option_value(arg, "--producers", &i, argc, argv)) != NULL) {
            want_count("--producers", v, &o.producers, 1, MAX_TASKS);
        } else if ((v = option_value(arg, "--consumers", &i, argc, argv)) != NULL) {
            want_count("--consumers", v, &o.consumers, 1, MAX_TASKS);
        } else if ((v = option_value(arg, "--maxsize", &i, argc, argv)) != NULL) {
            want_count("--maxsize", v, &o.maxsize, 0, SIZE_MAX);
        } else if ((v = option_value(arg, "--items", &i, argc, argv)) != NULL) {
            want_count("--items", v, &o.items, 0, (size_t)MAX_ITEMS_TOTAL);
        } else if ((v = option_value(arg, "--produce-ms", &i, argc, argv)) != NULL) {
            want_ms("--produce-ms", v, &o.produce_ms, 0);
        } else if ((v = option_value(arg, "--consume-ms", &i, argc, argv)) != NULL) {
            want_ms("--consume-ms", v, &o.consume_ms, 0);
        } else if ((v = option_value(arg, "--sample-ms", &i, argc, argv)) != NULL) {
            want_ms("--sample-ms", v, &o.sample_ms, 1);
        } else {
            usage_error("unknown argument '%s'", arg);
        }
    }
    if ((unsigned long long)o.producers * o.items > MAX_ITEMS_TOTAL)
        usage_error("--producers x --items must stay below %llu", MAX_ITEMS_TOTAL);
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * The pipeline
 * ------------------------------------------------------------------------------------------- */

struct producer {
    struct pipeline *p;
    size_t id;
    double blocked_s;  /* time spent in puts that found the queue full */
    size_t found_full; /* puts that had to wait for room */
    double done_at;
};

struct consumer {
    struct pipeline *p;
    size_t got;
};

struct pipeline {
    const struct options *o;
    simul_queue *q;
    unsigned char *seen; /* seen[item]: how many times it arrived */
    size_t delivered, duplicates, out_of_range;
    size_t max_depth;
    double start;
    struct producer *prod;
    struct consumer *cons;
};

/* simul_sleep for a time given in ms; 0 costs nothing. */
static int work(double ms)
{
    return ms > 0 ? simul_sleep(ms / 1e3) : 0;
}

static int producer_task(void *arg)
{
    struct producer *pr = arg;
    struct pipeline *p = pr->p;
    for (size_t i = 0; i < p->o->items; i++) {
        int rc = work(p->o->produce_ms);
        if (rc < 0)
            return rc;
        uintptr_t item = pr->id * p->o->items + i;
        bool full = simul_queue_full(p->q);
        double t0 = full ? simul_now() : 0;
        rc = simul_queue_put(p->q, (void *)item); /* suspends while the queue is full */
        if (full) {
            pr->found_full++;
            pr->blocked_s += simul_now() - t0;
        }
        if (rc < 0)
            return rc;
        size_t depth = simul_queue_qsize(p->q);
        if (depth > p->max_depth)
            p->max_depth = depth;
    }
    pr->done_at = simul_now() - p->start;
    return 0;
}

static int consumer_task(void *arg)
{
    struct consumer *c = arg;
    struct pipeline *p = c->p;
    size_t total = p->o->producers * p->o->items;
    for (;;) {
        void *it;
        int rc = simul_queue_get(p->q, &it);
        if (rc == -ESHUTDOWN)
            return 0; /* drained and shut down: the normal end */
        if (rc < 0)
            return rc;
        uintptr_t item = (uintptr_t)it;
        if (item >= total) {
            p->out_of_range++;
        } else {
            if (p->seen[item])
                p->duplicates++;
            p->seen[item] = 1;
        }
        p->delivered++;
        c->got++;
        rc = work(p->o->consume_ms);
        simul_queue_task_done(p->q); /* even if the work was cut short */
        if (rc < 0)
            return rc;
    }
}

/* Samples the queue depth until cancelled. */
static int monitor_task(void *arg)
{
    struct pipeline *p = arg;
    for (;;) {
        if (simul_sleep(p->o->sample_ms / 1e3) < 0)
            return 0;
        size_t depth = simul_queue_qsize(p->q), shown = depth < 40 ? depth : 40;
        char bar[41];
        memset(bar, '#', shown);
        bar[shown] = '\0';
        if (p->o->maxsize)
            printf("depth t=%.3fs: %zu/%zu %s\n", simul_now() - p->start, depth, p->o->maxsize,
                   bar);
        else
            printf("depth t=%.3fs: %zu (unbounded) %s%s\n", simul_now() - p->start, depth, bar,
                   depth > shown ? "..." : "");
        fflush(stdout);
    }
}

static int spawn_named(simul_task **out, simul_task_fn fn, void *arg, const char *kind, size_t i)
{
    char name[32];
    snprintf(name, sizeof name, "%s-%zu", kind, i);
    simul_task_opts topts = {.name = name};
    return simul_task_spawn(out, fn, arg, &topts);
}

/* Reports the first failed task of a gather; returns 0 or that failure. */
static int check_results(const char *what, int failed, const int *results, size_t n)
{
    if (failed < 0) {
        fprintf(stderr, "%s: gathering %s: %s\n", progname, what, simul_strerror(failed));
        return failed;
    }
    for (size_t i = 0; i < n && failed > 0; i++)
        if (results[i] < 0) {
            fprintf(stderr, "%s: %s %zu failed: %s\n", progname, what, i,
                    simul_strerror(results[i]));
            return results[i];
        }
    return 0;
}

static int main_task(void *arg)
{
    struct pipeline *p = arg;
    const struct options *o = p->o;
    size_t np = o->producers, nc = o->consumers;
    simul_task **pt = calloc(np, sizeof *pt), **ct = calloc(nc, sizeof *ct), *mt = NULL;
    int *pres = calloc(np, sizeof *pres), *cres = calloc(nc, sizeof *cres);
    int rc = simul_queue_new(&p->q, o->maxsize);
    if (!pt || !ct || !pres || !cres)
        rc = -ENOMEM;
    if (rc < 0) {
        fprintf(stderr, "%s: setting up: %s\n", progname, simul_strerror(rc));
        goto out;
    }
    p->start = simul_now();
    /* Spawning cannot fail here short of memory; stop the program if it does. */
    for (size_t i = 0; i < nc && rc == 0; i++)
        rc = spawn_named(&ct[i], consumer_task, &p->cons[i], "consumer", i);
    for (size_t i = 0; i < np && rc == 0; i++)
        rc = spawn_named(&pt[i], producer_task, &p->prod[i], "producer", i);
    if (rc == 0)
        rc = spawn_named(&mt, monitor_task, p, "monitor", 0);
    if (rc < 0) {
        fprintf(stderr, "%s: spawning: %s\n", progname, simul_strerror(rc));
        exit(EXIT_FAILURE);
    }
    rc = check_results("producer", simul_gather(pt, np, pres), pres, np);
    /* Every item is in; wait until the consumers have processed them all, then shut the queue
     * down: the consumers' next get returns -ESHUTDOWN and they end. */
    int jrc = rc == 0 ? simul_queue_join(p->q) : 0;
    simul_queue_shutdown(p->q, rc < 0, NULL);
    int crc = check_results("consumer", simul_gather(ct, nc, cres), cres, nc);
    simul_task_cancel(mt);
    simul_task_join(mt, NULL);
    if (rc == 0)
        rc = jrc < 0 ? jrc : crc;
    simul_queue_free(p->q, NULL);
out:
    free(pt);
    free(ct);
    free(pres);
    free(cres);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
        const char *slash = strrchr(argv[0], '/');
        progname = slash != NULL ? slash + 1 : argv[0];
    }
    struct options o = parse_options(argc, argv);
    size_t total = o.producers * o.items;
    struct pipeline p = {.o = &o};
    p.seen = calloc(total ? total : 1, 1);
    p.prod = calloc(o.producers, sizeof *p.prod);
    p.cons = calloc(o.consumers, sizeof *p.cons);
    if (!p.seen || !p.prod || !p.cons) {
        fprintf(stderr, "%s: no memory for %zu items\n", progname, total);
        return EXIT_FAILURE;
    }
    for (size_t i = 0; i < o.producers; i++)
        p.prod[i] = (struct producer){.p = &p, .id = i};
    for (size_t i = 0; i < o.consumers; i++)
        p.cons[i] = (struct consumer){.p = &p};

    printf("pipeline: %zu producers x %zu items -> queue(maxsize %zu%s) -> %zu consumers; "
           "produce %.3f ms/item, consume %.3f ms/item\n",
           o.producers, o.items, o.maxsize, o.maxsize ? "" : " = unbounded", o.consumers,
           o.produce_ms, o.consume_ms);
    fflush(stdout);
    double t0 = simul_now();
    int rc = simul_run(main_task, &p);
    double elapsed = simul_now() - t0;

    double blocked = 0, last_done = 0;
    size_t found_full = 0;
    for (size_t i = 0; i < o.producers; i++) {
        struct producer *pr = &p.prod[i];
        double busy = pr->done_at > 0 ? pr->done_at : elapsed;
        printf("producer %zu: %zu items, %.3f s blocked in put (%.0f%% of its %.3f s), %zu "
               "puts found the queue full\n",
               i, o.items, pr->blocked_s, busy > 0 ? 100 * pr->blocked_s / busy : 0.0, busy,
               pr->found_full);
        blocked += pr->blocked_s;
        found_full += pr->found_full;
        if (pr->done_at > last_done)
            last_done = pr->done_at;
    }
    for (size_t i = 0; i < o.consumers; i++)
        printf("consumer %zu: %zu items\n", i, p.cons[i].got);
    size_t missing = 0;
    for (size_t i = 0; i < total; i++)
        missing += !p.seen[i];
    printf("producers_blocked_s=%.3f\n", blocked);
    printf("producers_blocked_pct=%.1f\n",
           last_done > 0 ? 100 * blocked / (last_done * (double)o.producers) : 0.0);
    printf("producers_done_s=%.3f\n", last_done);
    printf("puts_found_full=%zu\n", found_full);
    printf("max_depth=%zu\n", p.max_depth);
    printf("elapsed_s=%.3f\n", elapsed);
    printf("expected=%zu\n", total);
    printf("delivered=%zu\n", p.delivered);
    fflush(stdout);

    int status = EXIT_SUCCESS;
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", progname, simul_strerror(rc));
        status = EXIT_FAILURE;
    }
    if (p.delivered != total || missing || p.duplicates || p.out_of_range) {
        fprintf(stderr, "%s: delivered %zu of %zu items (%zu missing, %zu duplicates)\n", progname,
                p.delivered, total, missing, p.duplicates);
        status = EXIT_FAILURE;
    }
    if (o.maxsize && p.max_depth > o.maxsize) {
        fprintf(stderr, "%s: the queue held %zu items, above its maxsize %zu\n", progname,
                p.max_depth, o.maxsize);
        status = EXIT_FAILURE;
    }
    free(p.seen);
    free(p.prod);
    free(p.cons);
    return status;
}
