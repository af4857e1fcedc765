/* fuzz_http_parse.h — what fuzz_http_request.c and fuzz_http_response.c share: a feed records
 * every parser event as text (out), and the same bytes fed whole, split at a fuzzed point and one
 * byte at a time must give the same text and verdict; the checks every mode's events share. */
#ifndef SIMUL_FUZZ_HTTP_PARSE_H
#define SIMUL_FUZZ_HTTP_PARSE_H

#include <stdint.h>
#include <string.h>

#include <simul/http.h>

#include "fuzz_check.h"

typedef struct out {
    char *text;
    size_t len, cap;
    int rc;
    simul_http_error error;
    size_t consumed; /* bytes consumed in all */
} out;

static void put(out *o, const void *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->text = realloc(o->text, o->cap);
        CHECK(o->text);
    }
    memcpy(o->text + o->len, s, n);
    o->len += n;
    o->text[o->len] = '\0';
}

static void put_u(out *o, unsigned long long v)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%llu,", v);
    put(o, b, (size_t)n);
}

static void check_span(simul_http_span s, size_t within)
{
    CHECK((size_t)s.off + s.len <= within);
}

/* A SIMUL_HTTP_BODY event: a piece never empty, inside what this feed call consumed
 * ([from, from + used)); *body counts the message's bytes, within the limit and Content-Length. */
static void on_body(out *o, const simul_http_parser *p, const char *from, size_t used,
                    uint64_t *body, const simul_http_limits *L)
{
    const simul_http_head *h = &p->head;
    CHECK(h->framing != SIMUL_HTTP_BODY_NONE);
    CHECK(p->body_len > 0 && p->body >= from && p->body + p->body_len <= from + used);
    if (*body == 0)
        put(o, "B", 1); /* (pieces differ between feeds: only the bytes count) */
    *body += p->body_len;
    CHECK(*body <= L->max_body);
    CHECK(h->framing != SIMUL_HTTP_BODY_LENGTH || *body <= h->content_length);
    put(o, p->body, p->body_len);
}

/* Need more means no progress was possible: the same bytes again change nothing. */
static void check_need_more_is_stable(simul_http_parser *p, const char *at, size_t len)
{
    size_t again = (size_t)-1;
    CHECK(simul_http_parser_feed(p, at, len, &again) == SIMUL_HTTP_NEED_MORE);
    CHECK(again == 0);
}

/* The unconsumed bytes buf[off..*have) moved to the front of a fresh buffer of n + 1 bytes, the
 * old one poisoned and freed (a parser that kept a pointer into it would read garbage). */
static char *keep_unconsumed(char *buf, size_t n, size_t off, size_t *have)
{
    char *fresh = malloc(n + 1);
    CHECK(fresh);
    memcpy(fresh, buf + off, *have - off);
    memset(buf, 0xAA, *have);
    free(buf);
    *have -= off;
    return fresh;
}

/* feed(o, in, n, cuts, ncuts, ctx): the target's feed of in[0..n) cut at `cuts` (increasing). */
typedef void (*fuzz_feed_fn)(out *o, const uint8_t *in, size_t n, const size_t *cuts,
                             size_t ncuts, const void *ctx);

static void check_same(const out *a, const out *b)
{
    CHECK(a->rc == b->rc && a->error == b->error);
    CHECK(a->len == b->len && (!a->len || !memcmp(a->text, b->text, a->len)));
}

/* The three feeds of in[0..n): whole, split at `split`, one byte at a time; all must agree. */
static void feed_three_ways(fuzz_feed_fn feed, const void *ctx, const uint8_t *in, size_t n,
                            size_t split)
{
    out whole, other;
    feed(&whole, in, n, NULL, 0, ctx);
    feed(&other, in, n, &split, split > 0 && split < n, ctx);
    check_same(&whole, &other);
    free(other.text);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    CHECK(cuts);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    feed(&other, in, n, cuts, n > 1 ? n - 1 : 0, ctx);
    check_same(&whole, &other);
    free(cuts);
    free(other.text);
    free(whole.text);
}

#endif /* SIMUL_FUZZ_HTTP_PARSE_H */
