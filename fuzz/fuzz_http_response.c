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

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http_response: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct out {
    char *text;
    size_t len, cap;
    int rc;
    simul_http_error error;
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

static void feed(out *o, const uint8_t *in, size_t n, const size_t *cuts, size_t ncuts,
                 const simul_http_limits *lim, size_t cap, const char *method, bool eof)
{
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
                CHECK(in_message && h->framing != SIMUL_HTTP_BODY_NONE);
                CHECK(p.body_len > 0 && p.body >= buf + off && p.body + p.body_len <= buf + off + used);
                if (body == 0)
                    put(o, "B", 1);
                body += p.body_len;
                CHECK(body <= L->max_body);
                CHECK(h->framing != SIMUL_HTTP_BODY_LENGTH || body <= h->content_length);
                put(o, p.body, p.body_len);
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
                size_t again = (size_t)-1;
                CHECK(simul_http_parser_feed(&p, buf + off, have - off, &again) ==
                      SIMUL_HTTP_NEED_MORE);
                CHECK(again == 0);
                break;
            }
        }
        if (o->rc >= 0 && !upgraded) {
            char *fresh = malloc(n + 1);
            CHECK(fresh);
            memcpy(fresh, buf + off, have - off);
            memset(buf, 0xAA, have);
            free(buf);
            buf = fresh;
            have -= off;
        }
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

    out whole, other;
    feed(&whole, in, n, NULL, 0, lim, cap, method, eof);
    feed(&other, in, n, &split, split > 0 && split < n, lim, cap, method, eof);
    CHECK(whole.rc == other.rc && whole.error == other.error);
    CHECK(whole.len == other.len && (!whole.len || !memcmp(whole.text, other.text, whole.len)));
    free(other.text);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    CHECK(cuts);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    feed(&other, in, n, cuts, n > 1 ? n - 1 : 0, lim, cap, method, eof);
    CHECK(whole.rc == other.rc && whole.error == other.error);
    CHECK(whole.len == other.len && (!whole.len || !memcmp(whole.text, other.text, whole.len)));
    free(cuts);
    free(other.text);
    free(whole.text);
    return 0;
}
