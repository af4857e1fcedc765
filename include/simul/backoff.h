/* simul/backoff.h — exponential back-off with jitter, the delay between retries of a connect, a
 * restart or a request. Pure arithmetic over a small state the caller keeps (no loop, no clock, no
 * allocation): simul_backoff_next gives the delay before the next attempt, simul_backoff_reset
 * starts over after a success; the caller sleeps (simul_sleep) and decides when it succeeded.
 * The shapes are those of well-known clients: redis-py's ExponentialBackoff, EqualJitterBackoff,
 * FullJitterBackoff / ExponentialWithJitterBackoff and DecorrelatedJitterBackoff, and gRPC's
 * connection back-off (doc/connection-backoff.md: ×1.6, ±20 %). */
#ifndef SIMUL_BACKOFF_H
#define SIMUL_BACKOFF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* How the exponential delay d = min(cap, base * multiplier^n) (n: failures before this one) is
 * randomised, so that many clients that failed together do not retry together. */
typedef enum simul_backoff_jitter {
    SIMUL_BACKOFF_NO_JITTER,    /* d itself (redis-py ExponentialBackoff) */
    SIMUL_BACKOFF_EQUAL,        /* d/2 + uniform(0, d/2) (redis-py EqualJitterBackoff) */
    SIMUL_BACKOFF_FULL,         /* uniform(0, d) (redis-py FullJitterBackoff, AWS "full") */
    SIMUL_BACKOFF_PROPORTIONAL, /* d * (1 + uniform(-j, +j)), j = jitter_frac (gRPC) */
    SIMUL_BACKOFF_DECORRELATED, /* min(cap, uniform(base, 3 * previous)) (redis-py, AWS) */
} simul_backoff_jitter;

typedef struct simul_backoff_opts {
    double base;       /* the first delay in seconds (> 0) */
    double cap;        /* no delay exceeds this (>= base; 0 = base * 2^6) */
    double multiplier; /* the growth per failure (>= 1; 0 = 2, gRPC uses 1.6) */
    simul_backoff_jitter jitter;
    double jitter_frac; /* SIMUL_BACKOFF_PROPORTIONAL: in [0, 1); 0 = 0.2 (gRPC's) */
    unsigned immediate; /* the first `immediate` delays are 0 (a supervisor restarts a worker
                           that died once at once, as nginx and gunicorn do) */
    uint64_t seed;      /* the random source's seed, for a repeatable sequence; 0 = a seed of
                           its own (the clock and the state's address), so clients differ */
} simul_backoff_opts;

/* The state: a plain struct the caller owns (embed it, no free). Its fields are read-only. */
typedef struct simul_backoff {
    simul_backoff_opts o; /* defaults filled in */
    unsigned failures;    /* delays handed out since the last reset */
    double prev;          /* SIMUL_BACKOFF_DECORRELATED: the last delay (base after a reset) */
    uint64_t rng;         /* xorshift64* state, never 0 */
} simul_backoff;

/* Sets b up from o (copied; NULL is not allowed). Does not suspend. Returns 0, or -EINVAL for a
 * base <= 0 or not finite, a cap below base, a multiplier below 1, a jitter_frac outside [0, 1)
 * or an unknown jitter kind (b is then left zeroed). */
int simul_backoff_init(simul_backoff *b, const simul_backoff_opts *o);

/* The delay in seconds before the next attempt, and the state advanced by one failure (redis-py's
 * compute(failures), gRPC's next backoff). Always in [0, cap]; without jitter exactly 0 for the
 * first `immediate` calls, then base, base * m, base * m^2, ... up to cap. Does not suspend. */
double simul_backoff_next(simul_backoff *b);

/* After a success: the next delay is the first one again (redis-py's reset(); gRPC resets once the
 * connection is accepted). The random source goes on (it is not reseeded). Does not suspend. */
void simul_backoff_reset(simul_backoff *b);

/* The pure form, for a caller that counts attempts itself: the delay before attempt n + 1 after n
 * failures (n = 0: the first delay), with u in [0, 1) as the random draw (ignored without jitter).
 * SIMUL_BACKOFF_DECORRELATED depends on the previous delay: here it is read as FULL jitter between
 * base and the exponential delay. o is used as given, with the defaults of simul_backoff_init;
 * -EINVAL (as a double) when it is invalid. Does not suspend. */
double simul_backoff_delay(const simul_backoff_opts *o, unsigned n, double u);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_BACKOFF_H */
