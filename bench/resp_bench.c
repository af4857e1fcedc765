/* resp_bench.c — libsimul-redis' RESP parser beside hiredis' reader (redisReaderFeed /
 * redisReaderGetReply) on the same RESP2 replies in the same process: a pipeline of +OK, of
 * integers, of short bulk strings, 1000-element arrays of bulks (LRANGE), and nested arrays
 * (XRANGE-like). Each side reads the same bytes in 16 KiB pieces, as from a socket, and frees
 * every reply; both must count the same replies and string bytes.
 *
 *   resp_bench [CASE] [MB] [ONLY]   CASE: ok, int, bulk, lrange, nested or all (default); MB:
 *                                   bytes of replies per run (default 64); best of 5 runs per
 *                                   side; ONLY (simul or hiredis) runs one side, for a profiler.
 * Prints key=value lines: resp_<case>_simul_replies_per_s, resp_<case>_hiredis_replies_per_s,
 * the same in MB/s, and resp_<case>_vs_hiredis (simul / hiredis: >1 means simul is faster). */
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <simul/redis.h>

#define CHUNK 16384
#define RUNS 5

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct stream {
    char *data;
    size_t len, cap;
    size_t replies;
} stream;

static void put(stream *s, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (s->len + (size_t)n > s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1 << 20;
        while (s->len + (size_t)n > s->cap)
            s->cap *= 2;
        s->data = realloc(s->data, s->cap);
        if (!s->data)
            abort();
    }
    memcpy(s->data + s->len, tmp, (size_t)n);
    s->len += (size_t)n;
}

/* One reply of each case. */
static void reply_of(stream *s, const char *c, size_t i)
{
    if (strcmp(c, "ok") == 0) {
        put(s, "+OK\r\n");
    } else if (strcmp(c, "int") == 0) {
        put(s, ":%zu\r\n", i * 7919 % 1000003);
    } else if (strcmp(c, "bulk") == 0) {
        put(s, "$12\r\nvalue:%06zu\r\n", i % 1000000);
    } else if (strcmp(c, "lrange") == 0) {
        put(s, "*1000\r\n");
        for (int k = 0; k < 1000; k++)
            put(s, "$9\r\nitem:%04d\r\n", k);
    } else { /* nested: XRANGE of 10 entries, each [id, [field, value, field, value]] */
        put(s, "*10\r\n");
        for (int k = 0; k < 10; k++)
            put(s,
                "*2\r\n$15\r\n1700000000000-%d\r\n*4\r\n$5\r\nfield\r\n$5\r\nv%04d\r\n"
                "$3\r\nseq\r\n:%d\r\n",
                k, k, k);
    }
    s->replies++;
}

typedef struct tally {
    size_t replies, bytes;
} tally;

static void count_simul(const simul_redis_reply *r, tally *t)
{
    if (r->type == SIMUL_REDIS_ARRAY)
        for (size_t i = 0; i < r->len; i++)
            count_simul(&r->elem[i], t);
    else if (r->type == SIMUL_REDIS_STRING || r->type == SIMUL_REDIS_STATUS)
        t->bytes += r->len;
}

static void count_hiredis(const redisReply *r, tally *t)
{
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            count_hiredis(r->element[i], t);
    else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        t->bytes += r->len;
}

__attribute__((noinline)) static double run_simul(const stream *s, tally *t)
{
    simul_redis_parser *p = NULL;
    if (simul_redis_parser_new(&p, NULL) != 0)
        abort();
    double t0 = now();
    for (size_t off = 0; off < s->len; off += CHUNK) {
        size_t n = s->len - off < CHUNK ? s->len - off : CHUNK;
        const char *c = s->data + off;
        while (n) {
            simul_redis_reply *r = NULL;
            ssize_t rc = simul_redis_parse(p, c, n, &r);
            if (rc < 0)
                abort();
            c += rc;
            n -= (size_t)rc;
            if (r) {
                t->replies++;
                count_simul(r, t);
                simul_redis_reply_free(r);
            }
        }
    }
    double dt = now() - t0;
    simul_redis_parser_free(p);
    return dt;
}

__attribute__((noinline)) static double run_hiredis(const stream *s, tally *t)
{
    redisReader *rd = redisReaderCreate();
    double t0 = now();
    for (size_t off = 0; off < s->len; off += CHUNK) {
        size_t n = s->len - off < CHUNK ? s->len - off : CHUNK;
        if (redisReaderFeed(rd, s->data + off, n) != REDIS_OK)
            abort();
        for (;;) {
            void *r = NULL;
            if (redisReaderGetReply(rd, &r) != REDIS_OK)
                abort();
            if (!r)
                break;
            t->replies++;
            count_hiredis(r, t);
            freeReplyObject(r);
        }
    }
    double dt = now() - t0;
    redisReaderFree(rd);
    return dt;
}

static const char *only = "";

static void bench_case(const char *c, double mb)
{
    stream s = {0};
    for (size_t i = 0; s.len < (size_t)(mb * 1048576.0); i++)
        reply_of(&s, c, i);
    double best_s = 1e30, best_h = 1e30;
    tally ts = {0}, th = {0};
    for (int run = 0; run < RUNS; run++) { /* alternate, so drift hits both alike */
        tally a = {0}, b = {0};
        double ds = strcmp(only, "hiredis") ? run_simul(&s, &a) : 1;
        double dh = strcmp(only, "simul") ? run_hiredis(&s, &b) : 1;
        if (*only)
            a = b = (tally){s.replies, 0};
        if (ds < best_s)
            best_s = ds;
        if (dh < best_h)
            best_h = dh;
        ts = a;
        th = b;
    }
    if (ts.replies != s.replies || th.replies != s.replies || ts.bytes != th.bytes) {
        fprintf(stderr, "resp_bench: %s: replies %zu/%zu/%zu bytes %zu/%zu disagree\n", c,
                s.replies, ts.replies, th.replies, ts.bytes, th.bytes);
        exit(1);
    }
    double mbs = (double)s.len / 1048576.0;
    printf("resp_%s_replies=%zu\n", c, s.replies);
    printf("resp_%s_simul_replies_per_s=%.0f\n", c, (double)s.replies / best_s);
    printf("resp_%s_hiredis_replies_per_s=%.0f\n", c, (double)s.replies / best_h);
    printf("resp_%s_simul_mb_per_s=%.1f\n", c, mbs / best_s);
    printf("resp_%s_hiredis_mb_per_s=%.1f\n", c, mbs / best_h);
    printf("resp_%s_vs_hiredis=%.2f\n", c, best_h / best_s);
    fflush(stdout);
    free(s.data);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "all";
    double mb = argc > 2 ? atof(argv[2]) : 64.0;
    only = argc > 3 ? argv[3] : "";
    static const char *const cases[] = {"ok", "int", "bulk", "lrange", "nested"};
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(which, "all") == 0 || strcmp(which, cases[i]) == 0) {
            bench_case(cases[i], mb);
            ran++;
        }
    }
    if (!ran) {
        fprintf(stderr, "usage: %s [ok|int|bulk|lrange|nested|all] [MB]\n", argv[0]);
        return 2;
    }
    return 0;
}
