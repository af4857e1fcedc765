/* bench_util.h — what the simul benches share: the clock they time with, how they fail, how they
 * read a count, and the best-of-N lines they print (bench/lib.sh parses every `key=value` line).
 * Define BENCH_NAME (the program's name, the prefix of its diagnostics) before including it. */
#ifndef SIMUL_BENCH_UTIL_H
#define SIMUL_BENCH_UTIL_H

#include "simul.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench_util.h"
#endif

static inline int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Ends the bench with status 1; results already printed reach stdout before the message. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs(BENCH_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* A library error is fatal: a number measured around it would mean nothing. */
static inline void check(int rc, const char *what)
{
    if (rc < 0)
        die("%s failed: %d %s (%s)", what, rc, simul_errname(rc), simul_strerror(rc));
}

/* A positive count from the command line, or `dflt` when the argument is absent (NULL). */
static inline long parse_count(const char *s, long dflt)
{
    if (!s)
        return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v <= 0)
        die("bad count '%s'", s);
    return v;
}

/* Prints `<key>_runs=r0,r1,...` and `<key>=<best>` with `decimals` digits after the point and
 * returns the best run: the smallest for a time, the largest for a rate. */
static inline double report_runs(const char *key, const double *runs, int n, int decimals,
                                 bool lower_is_better)
{
    double best = runs[0];
    printf("%s_runs=", key);
    for (int r = 0; r < n; r++) {
        printf("%s%.*f", r ? "," : "", decimals, runs[r]);
        if (lower_is_better ? runs[r] < best : runs[r] > best)
            best = runs[r];
    }
    printf("\n%s=%.*f\n", key, decimals, best);
    return best;
}

#endif /* SIMUL_BENCH_UTIL_H */
