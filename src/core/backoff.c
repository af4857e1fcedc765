/* backoff.c — exponential back-off with jitter (include/simul/backoff.h), shared by the Redis and
 * AMQP reconnects, the Redis cluster's retries and the supervisor's restarts. The idea: the delay
 * is a pure function of (options, failures so far, one uniform draw), the draw coming from a
 * xorshift64* state kept in the caller's struct, so a seeded sequence repeats exactly. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "simul/backoff.h"

#define DEFAULT_CAP_DOUBLINGS 64.0 /* cap = base * 2^6 when none is given */
#define DEFAULT_JITTER_FRAC 0.2    /* gRPC's */

static int fill_defaults(simul_backoff_opts *o)
{
    if (o->multiplier == 0)
        o->multiplier = o->jitter == SIMUL_BACKOFF_DECORRELATED ? 3 : 2;
    if (o->cap == 0)
        o->cap = o->base * DEFAULT_CAP_DOUBLINGS;
    if (o->jitter_frac == 0 && o->jitter == SIMUL_BACKOFF_PROPORTIONAL)
        o->jitter_frac = DEFAULT_JITTER_FRAC;
    /* Written so that NaN fails every test. */
    if (!(o->base > 0) || !isfinite(o->base) || !(o->cap >= o->base) || !(o->multiplier >= 1) ||
        !isfinite(o->multiplier) || !(o->jitter_frac >= 0 && o->jitter_frac < 1))
        return -EINVAL;
    switch (o->jitter) {
    case SIMUL_BACKOFF_NO_JITTER:
    case SIMUL_BACKOFF_EQUAL:
    case SIMUL_BACKOFF_FULL:
    case SIMUL_BACKOFF_PROPORTIONAL:
    case SIMUL_BACKOFF_DECORRELATED:
        return 0;
    }
    return -EINVAL;
}

/* min(cap, base * m^n) without libm and without n steps: squaring, stopping at the cap (an
 * overflow to infinity is caught by the same test). */
static double grown(const simul_backoff_opts *o, unsigned n)
{
    double d = o->base, x = o->multiplier;
    while (n && d < o->cap && x > 1) {
        if (n & 1)
            d *= x;
        x *= x;
        n >>= 1;
    }
    return d < o->cap ? d : o->cap;
}

static double jittered(const simul_backoff_opts *o, double d, double u)
{
    double r;
    switch (o->jitter) {
    case SIMUL_BACKOFF_EQUAL:
        r = d / 2 + u * d / 2;
        break;
    case SIMUL_BACKOFF_FULL:
        r = u * d;
        break;
    case SIMUL_BACKOFF_PROPORTIONAL:
        r = d * (1 + o->jitter_frac * (2 * u - 1));
        break;
    case SIMUL_BACKOFF_DECORRELATED:
        r = o->base + u * (d - o->base);
        break;
    default:
        r = d;
        break;
    }
    /* gRPC's +20 % may pass the cap; the cap is a promise to the caller. */
    return r < o->cap ? r : o->cap;
}

double simul_backoff_delay(const simul_backoff_opts *opts, unsigned n, double u)
{
    if (!opts)
        return -EINVAL;
    simul_backoff_opts o = *opts;
    if (fill_defaults(&o) < 0 || !(u >= 0 && u < 1))
        return -EINVAL;
    if (n < o.immediate)
        return 0;
    return jittered(&o, grown(&o, n - o.immediate), u);
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* xorshift64*: the draws only need to differ between clients and repeat under one seed. */
static double draw(simul_backoff *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return (double)((b->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

int simul_backoff_init(simul_backoff *b, const simul_backoff_opts *o)
{
    if (!b)
        return -EINVAL;
    memset(b, 0, sizeof *b);
    if (!o)
        return -EINVAL;
    simul_backoff_opts c = *o;
    if (fill_defaults(&c) < 0)
        return -EINVAL;
    b->o = c;
    uint64_t seed = c.seed;
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        seed ^= (uint64_t)(uintptr_t)b << 17;
    }
    b->rng = splitmix64(seed);
    if (b->rng == 0) /* xorshift's one fixed point */
        b->rng = 0x9e3779b97f4a7c15ull;
    b->prev = c.base;
    return 0;
}

double simul_backoff_next(simul_backoff *b)
{
    unsigned n = b->failures;
    if (b->failures < UINT_MAX)
        b->failures++;
    if (n < b->o.immediate)
        return 0;
    n -= b->o.immediate;
    double u = b->o.jitter == SIMUL_BACKOFF_NO_JITTER ? 0 : draw(b);
    if (b->o.jitter != SIMUL_BACKOFF_DECORRELATED)
        return jittered(&b->o, grown(&b->o, n), u);
    /* Decorrelated: the ceiling grows from the last delay, not from the count. The first delay
     * is base itself, as AWS's "sleep = base" start. */
    double d;
    if (n == 0) {
        d = b->o.base;
    } else {
        double hi = b->prev * b->o.multiplier;
        hi = hi < b->o.cap ? hi : b->o.cap;
        d = b->o.base + u * (hi - b->o.base);
    }
    b->prev = d;
    return d;
}

void simul_backoff_reset(simul_backoff *b)
{
    b->failures = 0;
    b->prev = b->o.base;
}
