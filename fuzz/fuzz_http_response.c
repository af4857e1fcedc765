/* fuzz_http_response.c — the response mode of libsimul-http's parser (the client's side), fed the
 * same bytes whole, one byte at a time and split at a fuzzed point: the three must give the same
 * events, fields, body bytes and verdict, the peer's close included. Each event is checked
 * against the header's promises: spans inside the head, body pieces never empty and inside the
 * buffer, body bytes equal to Content-Length and within the limit, no body where the rules say
 * none (HEAD, 1xx, 204, 304, a tunnel), nothing consumed after an upgrade.
 *
 * Input: [flags][split][response bytes...]. flags bit 0: small limits; bit 1: a small header
 * array; bit 2: the responses answer HEAD; bit 3: CONNECT; bit 4: the peer closes after the
 * last byte. Replayed over fuzz/corpus/http_response by ctest. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul/http.h>

#define FUZZ_NAME "fuzz_http_response"
#include "fuzz_http_parse.h"

static int on_error(out *o, simul_http_parser *p, int rc)
{
    o->error = p->error;
    CHECK(p->error > SIMUL_HTTP_OK && p->error < SIMUL_HTTP_E_COUNT_);
    int st = simul_http_error_status(p->error);
    bool limit = st == 413 || st == 414 || st == 431 || p->error == SIMUL_HTTP_E_STATUS_LINE_TOO_LONG;
    CHECK(rc == (limit ? -EMSGSIZE : -EPROTO));
    put(o, "E", 1);
    put_u(o, p->error);
    return rc;
}

typedef struct opts {
    const simul_http_limits *lim;
    size_t cap;
    const char *method;
    bool eof;
} opts;

static void feed(out *o, const uint8_t *in, size_t n, const size_t *cuts, size_t ncuts,
                 const void *ctx)
{
    const opts *op = ctx;
    const simul_http_limits *lim = op->lim;
    size_t cap = op->cap;
    const char *method = op->method;
    bool eof = op->eof;
    memset(o, 0, sizeof *o);
    simul_http_header *hdrs = calloc(cap, sizeof *hdrs);
    simul_http_parser p;
    CHECK(hdrs && simul_http_parser_init(&p, SIMUL_HTTP_RESPONSE, lim, hdrs, cap) == 0);
    CHECK(simul_http_parser_response_to(&p, method) == 0);
    const simul_http_limits *L = &p.priv_.limits;
    char *buf = malloc(n + 1);
    CHECK(buf);
    size_t have = 0, pos = 0;
    uint64_t body = 0;
    bool in_message = false, upgraded = false;
    for (size_t c = 0; c <= ncuts && o->rc >= 0 && !upgraded; c++) {
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
                on_error(o, &p, rc);
                break;
            }
            CHECK(rc <= SIMUL_HTTP_END && used <= have - off);
            const simul_http_head *h = &p.head;
            if (rc == SIMUL_HTTP_HEAD) {
                CHECK(!in_message);
                in_message = true;
                body = 0;
                CHECK(h->base == buf + off && used == h->head_len && used > 0);
                CHECK(h->head_len <= (size_t)L->max_request_line + L->max_header_bytes);
                CHECK(h->status >= 100 && h->status <= 999);
                check_span(h->reason, h->head_len);
                CHECK(h->method.len == 0 && h->target.len == 0);
                CHECK(h->version_minor <= 1);
                CHECK(h->nheaders <= cap && h->nheaders <= L->max_headers);
                bool none = h->status < 200 || h->status == 204 || h->status == 304 ||
                            !strcmp(method, "HEAD") ||
                            (!strcmp(method, "CONNECT") && h->status / 100 == 2);
                CHECK(!none || h->framing == SIMUL_HTTP_BODY_NONE);
                CHECK(none || h->framing != SIMUL_HTTP_BODY_NONE);
                CHECK(h->framing != SIMUL_HTTP_BODY_LENGTH || h->content_length <= L->max_body);
                CHECK(h->framing != SIMUL_HTTP_BODY_CLOSE || !h->keep_alive);
                CHECK(!h->upgrade || !h->keep_alive);
                put(o, "H", 1);
                put_u(o, h->status);
                put(o, h->base + h->reason.off, h->reason.len);
                put_u(o, h->version_minor);
                put_u(o, h->framing);
                put_u(o, h->content_length);
                put_u(o, (unsigned)h->keep_alive << 1 | (unsigned)h->upgrade);
                for (uint32_t i = 0; i < h->nheaders; i++) {
                    simul_http_header f = h->headers[i];
                    check_span(f.name, h->head_len);
                    check_span(f.value, h->head_len);
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
                CHECK(h->framing != SIMUL_HTTP_BODY_CLOSE);
                put(o, "T", 1);
                put_u(o, body);
                if (h->status >= 200 || h->status == 101)
                    CHECK(simul_http_parser_response_to(&p, method) == 0 || h->upgrade ||
                          !h->keep_alive);
            }
            off += used;
            if (rc == SIMUL_HTTP_END && h->upgrade) {
                /* The rest is the next protocol's: the parser takes nothing more. */
                upgraded = true;
                size_t again = (size_t)-1;
                if (have > off)
                    CHECK(simul_http_parser_feed(&p, buf + off, have - off, &again) < 0);
                put(o, "U", 1);
                break;
            }
            if (rc == SIMUL_HTTP_NEED_MORE) {
                check_need_more_is_stable(&p, buf + off, have - off);
                break;
            }
        }
        if (o->rc >= 0 && !upgraded)
            buf = keep_unconsumed(buf, n, off, &have);
    }
    if (o->rc >= 0 && eof && !upgraded) {
        int rc = simul_http_parser_eof(&p);
        o->rc = rc;
        if (rc < 0) {
            on_error(o, &p, rc);
        } else if (rc == SIMUL_HTTP_END) {
            CHECK(in_message && p.head.framing == SIMUL_HTTP_BODY_CLOSE);
            put(o, "C", 1);
            put_u(o, body);
        } else {
            CHECK(rc == SIMUL_HTTP_NEED_MORE && !in_message);
            put(o, "Z", 1);
        }
    }
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
    simul_http_limits small = {.max_request_line = 40, .max_header_bytes = 128, .max_headers = 6,
                               .max_chunk_line = 24, .max_body = 100};
    const simul_http_limits *lim = (flags & 1) ? &small : NULL;
    size_t cap = (flags & 2) ? 3 : 64;
    const char *method = (flags & 4) ? "HEAD" : (flags & 8) ? "CONNECT" : "GET";
    bool eof = flags & 16;

    feed_three_ways(feed, &(opts){lim, cap, method, eof}, in, n, split);
    return 0;
}
