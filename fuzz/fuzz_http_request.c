/* fuzz_http_request.c — the HTTP/1.1 request parser of libsimul-http, fed the same bytes whole,
 * one byte at a time and split at a fuzzed point: the three must give the same events, fields,
 * body bytes and verdict. Every event is checked against the header's promises: fields inside
 * the head and the buffer, body pieces inside the buffer and never empty, a message's body byte
 * count equal to its Content-Length (and within the limit), errors with their status.
 *
 * Input: [flags][split][request bytes...]. flags bit 0 selects small limits (to reach every
 * limit), bit 1 a small header array. Built as a libFuzzer target with clang
 * (-DSIMUL_BUILD_FUZZ=ON) and always as a replay program over fuzz/corpus/http_request (ctest).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul/http.h>

#define FUZZ_NAME "fuzz_http_request"
#include "fuzz_http_parse.h"

static bool is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
                  (c && memchr(extra, c, sizeof extra - 1));
        if (!ok)
            return false;
    }
    return true;
}

/* Feeds in[0..n) cut at `cuts` (increasing) through a caller that keeps unconsumed bytes at the
 * front of a fresh buffer each time, recording every event. */
typedef struct opts {
    const simul_http_limits *lim;
    size_t cap;
} opts;

static void feed(out *o, const uint8_t *in, size_t n, const size_t *cuts, size_t ncuts,
                 const void *ctx)
{
    const simul_http_limits *lim = ((const opts *)ctx)->lim;
    size_t cap = ((const opts *)ctx)->cap;
    memset(o, 0, sizeof *o);
    simul_http_header *hdrs = calloc(cap, sizeof *hdrs);
    simul_http_parser p;
    CHECK(hdrs && simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, lim, hdrs, cap) == 0);
    const simul_http_limits *L = &p.priv_.limits; /* with the defaults filled in */
    char *buf = malloc(n + 1);
    CHECK(buf);
    size_t have = 0, pos = 0;
    uint64_t body = 0; /* body bytes of the current message */
    bool in_message = false;
    for (size_t c = 0; c <= ncuts && o->rc >= 0; c++) {
        size_t upto = c < ncuts ? cuts[c] : n;
        memcpy(buf + have, in + pos, upto - pos);
        have += upto - pos;
        pos = upto;
        size_t off = 0;
        for (;;) {
            size_t used = (size_t)-1;
            int rc = simul_http_parser_feed(&p, buf + off, have - off, &used);
            o->rc = rc;
            if (rc < 0) {
                o->error = p.error;
                CHECK(p.error > SIMUL_HTTP_OK && p.error < SIMUL_HTTP_E_COUNT_);
                int st = simul_http_error_status(p.error);
                CHECK(rc == ((st == 413 || st == 414 || st == 431) ? -EMSGSIZE : -EPROTO));
                put(o, "E", 1);
                put_u(o, p.error);
                break;
            }
            CHECK(rc <= SIMUL_HTTP_END);
            CHECK(used <= have - off);
            const simul_http_head *h = &p.head;
            if (rc == SIMUL_HTTP_HEAD) {
                CHECK(!in_message);
                in_message = true;
                body = 0;
                CHECK(h->base == buf + off && used == h->head_len && used > 0);
                CHECK(h->head_len <= (size_t)L->max_request_line + L->max_header_bytes);
                check_span(h->method, h->head_len);
                check_span(h->target, h->head_len);
                CHECK(is_token(h->base + h->method.off, h->method.len));
                CHECK(h->target.len > 0 && h->method.off + h->method.len < h->target.off);
                CHECK(h->version_minor <= 1);
                CHECK(h->nheaders <= cap && h->nheaders <= L->max_headers);
                CHECK(h->headers == hdrs);
                CHECK(h->framing != SIMUL_HTTP_BODY_LENGTH || h->content_length <= L->max_body);
                CHECK(h->framing == SIMUL_HTTP_BODY_LENGTH || h->content_length == 0);
                CHECK(h->version_minor == 1 || h->framing != SIMUL_HTTP_BODY_CHUNKED);
                put(o, "H", 1);
                put(o, h->base + h->method.off, h->method.len);
                put(o, " ", 1);
                put(o, h->base + h->target.off, h->target.len);
                put_u(o, h->version_minor);
                put_u(o, h->framing);
                put_u(o, h->content_length);
                put_u(o, (unsigned)h->keep_alive << 2 | (unsigned)h->upgrade << 1 |
                             (unsigned)h->expect_continue);
                for (uint32_t i = 0; i < h->nheaders; i++) {
                    simul_http_header f = h->headers[i];
                    check_span(f.name, h->head_len);
                    check_span(f.value, h->head_len);
                    CHECK(is_token(h->base + f.name.off, f.name.len));
                    put(o, h->base + f.name.off, f.name.len);
                    put(o, ":", 1);
                    put(o, h->base + f.value.off, f.value.len);
                    put(o, "\n", 1);
                }
            } else if (rc == SIMUL_HTTP_BODY) {
                CHECK(in_message);
                on_body(o, &p, buf + off, used, &body, L);
            } else if (rc == SIMUL_HTTP_END) {
                CHECK(in_message);
                in_message = false;
                CHECK(h->framing != SIMUL_HTTP_BODY_LENGTH || body == h->content_length);
                CHECK(h->framing != SIMUL_HTTP_BODY_NONE || body == 0);
                CHECK(h->ntrailers == 0 || h->framing == SIMUL_HTTP_BODY_CHUNKED);
                CHECK(h->nheaders + h->ntrailers <= cap);
                put(o, "T", 1);
                put_u(o, body);
                for (uint32_t i = 0; i < h->ntrailers; i++) {
                    simul_http_header f = h->trailers[i];
                    check_span(f.name, used);
                    check_span(f.value, used);
                    CHECK(h->trailer_base >= buf + off && h->trailer_base <= buf + off + used);
                    CHECK(is_token(h->trailer_base + f.name.off, f.name.len));
                    put(o, h->trailer_base + f.name.off, f.name.len);
                    put(o, "=", 1);
                    put(o, h->trailer_base + f.value.off, f.value.len);
                }
            }
            off += used;
            o->consumed += used;
            if (rc == SIMUL_HTTP_NEED_MORE) {
                check_need_more_is_stable(&p, buf + off, have - off);
                break;
            }
        }
        if (o->rc >= 0)
            buf = keep_unconsumed(buf, n, off, &have);
    }
    if (o->rc >= 0)
        CHECK(o->consumed + have == n);
    free(buf);
    free(hdrs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t flags = data[0];
    size_t n = size - 2;
    size_t split = n ? data[1] * n / 255 : 0;
    const uint8_t *in = data + 2;
    simul_http_limits small = {.max_request_line = 64, .max_header_bytes = 128, .max_headers = 6,
                               .max_chunk_line = 24, .max_body = 100};
    const simul_http_limits *lim = (flags & 1) ? &small : NULL;
    size_t cap = (flags & 2) ? 3 : 64;

    feed_three_ways(feed, &(opts){lim, cap}, in, n, split);
    return 0;
}
