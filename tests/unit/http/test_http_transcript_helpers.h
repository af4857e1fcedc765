/* test_http_transcript_helpers.h — the harness test_http_parser.c (requests) and
 * test_http_client_parser.c (responses) share: a transcript of the parser's events as text, fed
 * by a caller that keeps unconsumed bytes at the front of a fresh buffer, and the rule that the
 * input fed whole, byte by byte and split at every offset gives the same transcript. */
#ifndef TEST_HTTP_TRANSCRIPT_HELPERS_H
#define TEST_HTTP_TRANSCRIPT_HELPERS_H

#include <simul/http.h>

typedef struct transcript {
    char text[1 << 16];
    size_t len;
    bool in_body;
    int rc;                 /* the last return: an event or a negative error */
    simul_http_error error; /* when rc < 0 */
} transcript;

static inline void put(transcript *t, const char *s, size_t n)
{
    assert_true(t->len + n < sizeof t->text);
    memcpy(t->text + t->len, s, n);
    t->len += n;
    t->text[t->len] = '\0';
}

static inline void puts_(transcript *t, const char *s)
{
    put(t, s, strlen(s));
}

static inline void put_span(transcript *t, const char *base, simul_http_span s)
{
    put(t, base + s.off, s.len);
}

/* The parser's error: ends a body line, then "ERROR <name>". */
static inline void record_error(transcript *t, const simul_http_parser *p)
{
    t->error = p->error;
    if (t->in_body)
        puts_(t, "\n");
    t->in_body = false;
    puts_(t, "ERROR ");
    puts_(t, simul_http_error_name(p->error));
    puts_(t, "\n");
}

/* Any event but more body (or need-more) ends the body line. */
static inline void end_body_line(transcript *t, int rc)
{
    if (rc != SIMUL_HTTP_BODY && rc != SIMUL_HTTP_NEED_MORE && t->in_body) {
        puts_(t, "\n");
        t->in_body = false;
    }
}

/* A body piece (never empty): "BODY " once, then the bytes, on one line. */
static inline void record_body(transcript *t, const simul_http_parser *p)
{
    assert_true(p->body_len > 0);
    if (!t->in_body)
        puts_(t, "BODY ");
    t->in_body = true;
    put(t, p->body, p->body_len);
}

/* The caller keeps what was not consumed, buf[off..*have), at the front of a fresh buffer of
 * n + 1 bytes; the old one is poisoned first (so a parser that kept pointers would fail). */
static inline char *keep_unconsumed(char *buf, size_t n, size_t off, size_t *have)
{
    char *fresh = malloc(n + 1);
    memcpy(fresh, buf + off, *have - off);
    memset(buf, 0xAA, *have);
    free(buf);
    *have -= off;
    return fresh;
}

/* feed(t, in, n, cuts, ncuts, ctx): the test's feed of in[0..n) cut at cuts (increasing). */
typedef void (*transcript_feed)(transcript *t, const char *in, size_t n, const size_t *cuts,
                                size_t ncuts, const void *ctx);

/* Runs `in` whole, byte by byte and split at every offset; all transcripts must be equal.
 * Returns the whole one (static storage). */
static inline transcript *run_all_splits(transcript_feed feed, const void *ctx, const char *in,
                                         size_t n)
{
    static transcript whole, other;
    feed(&whole, in, n, NULL, 0, ctx);
    size_t *cuts = calloc(n + 1, sizeof *cuts);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    feed(&other, in, n, cuts, n ? n - 1 : 0, ctx);
    if (strcmp(whole.text, other.text) != 0)
        fail_msg("byte by byte differs:\n--- whole\n%s--- bytes\n%s", whole.text, other.text);
    for (size_t k = 1; k < n; k++) {
        size_t cut = k;
        feed(&other, in, n, &cut, 1, ctx);
        if (strcmp(whole.text, other.text) != 0)
            fail_msg("split at %zu differs:\n--- whole\n%s--- split\n%s", k, whole.text,
                     other.text);
    }
    free(cuts);
    return &whole;
}

#endif /* TEST_HTTP_TRANSCRIPT_HELPERS_H */
