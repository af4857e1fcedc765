/* test_http_client_parser.c — the response mode of libsimul-http's parser (the client's side):
 * status lines, the response framing rules (Content-Length, chunked, until close; HEAD, 1xx,
 * 204, 304 without bodies; CONNECT tunnels, 101), every rejection and limit, and what a close
 * means. Each response is fed whole, byte by byte and split at every offset: same transcript. */
#include "test_main_helpers.h"

#include <simul/http.h>

#include "test_http_transcript_helpers.h"

static void record_head(transcript *t, const simul_http_head *h)
{
    static const char *const framings[] = {"none", "length", "chunked", "close"};
    char line[200];
    snprintf(line, sizeof line, "HEAD %u [%.*s] 1.%u %s %llu%s%s\n", h->status,
             (int)h->reason.len, h->base + h->reason.off, h->version_minor, framings[h->framing],
             (unsigned long long)h->content_length, h->keep_alive ? " keep-alive" : " close",
             h->upgrade ? " upgrade" : "");
    puts_(t, line);
    for (uint32_t i = 0; i < h->nheaders; i++) {
        snprintf(line, sizeof line, "%.*s: [%.*s]\n", (int)h->headers[i].name.len,
                 h->base + h->headers[i].name.off, (int)h->headers[i].value.len,
                 h->base + h->headers[i].value.off);
        puts_(t, line);
    }
}

/* Feeds `in` cut at cuts[] through a caller that keeps unconsumed bytes in a fresh buffer; each
 * response in the input answers the next method of `methods` (a space-separated list, reused
 * from the start when exhausted... only at final responses); `eof`: the peer closes after the
 * last byte. */
typedef struct feed_opts {
    const simul_http_limits *lim;
    size_t cap;
    const char *method;
    bool eof;
} feed_opts;

static void feed_cuts(transcript *t, const char *in, size_t n, const size_t *cuts, size_t ncuts,
                      const void *ctx)
{
    const feed_opts *op = ctx;
    const simul_http_limits *lim = op->lim;
    size_t cap = op->cap;
    const char *method = op->method;
    bool eof = op->eof;
    memset(t, 0, sizeof *t);
    simul_http_header *hdrs = calloc(cap, sizeof *hdrs);
    simul_http_parser p;
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_RESPONSE, lim, hdrs, cap), 0);
    if (method)
        assert_int_equal(simul_http_parser_response_to(&p, method), 0);
    char *buf = malloc(n + 1);
    size_t have = 0, pos = 0, total = 0;
    for (size_t c = 0; c <= ncuts && t->rc >= 0; c++) {
        size_t upto = c < ncuts ? cuts[c] : n;
        memcpy(buf + have, in + pos, upto - pos);
        have += upto - pos;
        pos = upto;
        size_t off = 0;
        for (;;) {
            size_t used = 999999;
            int rc = simul_http_parser_feed(&p, buf + off, have - off, &used);
            t->rc = rc;
            if (rc < 0) {
                record_error(t, &p);
                break;
            }
            assert_true(used <= have - off);
            end_body_line(t, rc);
            if (rc == SIMUL_HTTP_HEAD) {
                record_head(t, &p.head);
                assert_int_equal(used, p.head.head_len);
            } else if (rc == SIMUL_HTTP_BODY) {
                record_body(t, &p);
            } else if (rc == SIMUL_HTTP_END) {
                puts_(t, "END\n");
                if (method && p.head.status >= 200) /* the next response answers the same */
                    simul_http_parser_response_to(&p, method);
            }
            off += used;
            total += used;
            if (rc == SIMUL_HTTP_NEED_MORE)
                break;
            if (rc == SIMUL_HTTP_END && p.head.upgrade) {
                char rest[64]; /* what the parser left for the next protocol */
                snprintf(rest, sizeof rest, "REST %zu\n", n - total);
                puts_(t, rest);
                goto done;
            }
        }
        if (t->rc >= 0)
            buf = keep_unconsumed(buf, n, off, &have);
    }
    if (t->rc >= 0 && eof) {
        if (t->in_body) {
            puts_(t, "\n");
            t->in_body = false;
        }
        int rc = simul_http_parser_eof(&p);
        t->rc = rc;
        if (rc == SIMUL_HTTP_END) {
            puts_(t, "EOF-END\n");
        } else if (rc == 0) {
            puts_(t, "EOF\n");
        } else {
            t->error = p.error;
            puts_(t, "EOF-ERROR ");
            puts_(t, simul_http_error_name(p.error));
            puts_(t, "\n");
        }
    }
done:
    if (t->in_body)
        puts_(t, "\n");
    free(buf);
    free(hdrs);
}

static transcript *run_all(const char *in, size_t n, const simul_http_limits *lim, size_t cap,
                           const char *method, bool eof)
{
    return run_all_splits(feed_cuts, &(feed_opts){lim, cap, method, eof}, in, n);
}

static void check(const char *in, size_t n, const char *method, bool eof, const char *expected,
                  const simul_http_limits *lim, size_t cap)
{
    transcript *t = run_all(in, n, lim, cap, method, eof);
    if (strcmp(t->text, expected) != 0)
        fail_msg("input:\n%.*s\n--- got\n%s--- expected\n%s", (int)n, in, t->text, expected);
}
#define OK(in, expected) check(in, sizeof in - 1, NULL, false, expected, NULL, 64)
#define OK_TO(method, in, expected) check(in, sizeof in - 1, method, false, expected, NULL, 64)
#define OK_EOF(in, expected) check(in, sizeof in - 1, NULL, true, expected, NULL, 64)
#define OK_LIM(in, lim, cap, expected) check(in, sizeof in - 1, NULL, false, expected, lim, cap)

static void status_lines(void **state)
{
    (void)state;
    OK("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
       "HEAD 200 [OK] 1.1 length 2 keep-alive\nContent-Length: [2]\nBODY hi\nEND\n");
    OK("HTTP/1.1 404 Not Found Here\r\nContent-Length: 0\r\n\r\n",
       "HEAD 404 [Not Found Here] 1.1 length 0 keep-alive\nContent-Length: [0]\nEND\n");
    OK("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
       "HEAD 200 [] 1.1 length 0 keep-alive\nContent-Length: [0]\nEND\n");
    /* No SP before an empty reason: tolerated (Go and curl do too). */
    OK("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
       "HEAD 200 [] 1.1 length 0 keep-alive\nContent-Length: [0]\nEND\n");
    OK("HTTP/1.1 599 \xc3\xa9t\xc3\xa9\r\nContent-Length: 0\r\n\r\n",
       "HEAD 599 [\xc3\xa9t\xc3\xa9] 1.1 length 0 keep-alive\nContent-Length: [0]\nEND\n");
    /* HTTP/1.0: close unless keep-alive. */
    OK("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
       "HEAD 200 [OK] 1.0 length 1 close\nContent-Length: [1]\nBODY x\nEND\n");
    OK("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
       "HEAD 200 [OK] 1.0 length 1 keep-alive\nConnection: [keep-alive]\nContent-Length: [1]\n"
       "BODY x\nEND\n");
    OK("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
       "HEAD 200 [OK] 1.1 length 1 close\nConnection: [close]\nContent-Length: [1]\nBODY x\nEND\n");
}

static void chunked_response(void **state)
{
    (void)state;
    OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n"
       "0\r\nX-Sum: 1\r\n\r\n",
       "HEAD 200 [OK] 1.1 chunked 0 keep-alive\nTransfer-Encoding: [chunked]\nBODY hello world\n"
       "END\n");
    /* Two responses in a row on a keep-alive connection. */
    OK("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
       "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n",
       "HEAD 200 [OK] 1.1 length 1 keep-alive\nContent-Length: [1]\nBODY a\nEND\n"
       "HEAD 201 [Created] 1.1 chunked 0 keep-alive\nTransfer-Encoding: [chunked]\nBODY b\nEND\n");
}

static void until_close(void **state)
{
    (void)state;
    /* Neither Content-Length nor Transfer-Encoding: the body runs to the close. */
    OK_EOF("HTTP/1.1 200 OK\r\nServer: old\r\n\r\nall of this and more",
           "HEAD 200 [OK] 1.1 close 0 close\nServer: [old]\nBODY all of this and more\n"
           "EOF-END\n");
    OK_EOF("HTTP/1.0 200 OK\r\n\r\n", "HEAD 200 [OK] 1.0 close 0 close\nEOF-END\n");
    /* A clean close between messages; a close inside a head or a body is a truncation. */
    OK_EOF("HTTP/1.1 204 No Content\r\n\r\n", "HEAD 204 [No Content] 1.1 none 0 keep-alive\nEND\nEOF\n");
    OK_EOF("", "EOF\n");
    OK_EOF("HTTP/1.1 200 OK\r\nContent-Le", "EOF-ERROR TRUNCATED\n");
    OK_EOF("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
           "HEAD 200 [OK] 1.1 length 10 keep-alive\nContent-Length: [10]\nBODY short\n"
           "EOF-ERROR TRUNCATED\n");
    OK_EOF("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
           "HEAD 200 [OK] 1.1 chunked 0 keep-alive\nTransfer-Encoding: [chunked]\nBODY hello\n"
           "EOF-ERROR TRUNCATED\n");
    OK_EOF("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
           "HEAD 200 [OK] 1.1 chunked 0 keep-alive\nTransfer-Encoding: [chunked]\n"
           "EOF-ERROR TRUNCATED\n");
    /* Bytes after a close-delimited... cannot be: after a Connection: close message, bytes are an
     * error. */
    OK("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nxHTTP/1.1",
       "HEAD 200 [OK] 1.1 length 1 close\nConnection: [close]\nContent-Length: [1]\nBODY x\nEND\n"
       "ERROR AFTER_CLOSE\n");
}

static void bodiless(void **state)
{
    (void)state;
    /* HEAD: the Content-Length is the resource's size, no body follows; the next response is
     * parsed right after the head (here answering a second HEAD). */
    OK_TO("HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
          "HEAD 200 [OK] 1.1 none 1000000000 keep-alive\nContent-Length: [1000000000]\nEND\n"
          "HEAD 200 [OK] 1.1 none 0 keep-alive\nTransfer-Encoding: [chunked]\nEND\n");
    OK("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
       "HEAD 204 [No Content] 1.1 none 5 keep-alive\nContent-Length: [5]\nEND\n");
    OK("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
       "HEAD 304 [Not Modified] 1.1 none 0 keep-alive\nETag: [\"x\"]\nEND\n");
    /* 1xx then the final response: the parser keeps answering the same request. */
    OK_TO("HEAD", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
          "HEAD 100 [Continue] 1.1 none 0 keep-alive\nEND\n"
          "HEAD 103 [Early Hints] 1.1 none 0 keep-alive\nLink: [</a>]\nEND\n"
          "HEAD 200 [OK] 1.1 none 3 keep-alive\nContent-Length: [3]\nEND\n");
    OK("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
       "HEAD 100 [Continue] 1.1 none 0 keep-alive\nEND\n"
       "HEAD 200 [OK] 1.1 length 3 keep-alive\nContent-Length: [3]\nBODY abc\nEND\n");
}

static void upgrades(void **state)
{
    (void)state;
    /* 101: the bytes after the head are the new protocol's, untouched. */
    OK("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi",
       "HEAD 101 [Switching Protocols] 1.1 none 0 close upgrade\nUpgrade: [websocket]\n"
       "Connection: [Upgrade]\nEND\nREST 4\n");
    /* 2xx to CONNECT: a tunnel, whatever the fields say; a refusal has a body as usual. */
    OK_TO("CONNECT", "HTTP/1.1 200 Connection established\r\nContent-Length: 9\r\n\r\n\x16\x03\x01",
          "HEAD 200 [Connection established] 1.1 none 9 close upgrade\nContent-Length: [9]\nEND\n"
          "REST 3\n");
    OK_TO("CONNECT", "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno",
          "HEAD 407 [Proxy Authentication Required] 1.1 length 2 keep-alive\nContent-Length: [2]\n"
          "BODY no\nEND\n");
}

#define ERR(in, err) check(in, sizeof in - 1, NULL, false, "ERROR " #err "\n", NULL, 64)
#define TE_HEAD "HEAD 200 [OK] 1.1 chunked 0 keep-alive\nTransfer-Encoding: [chunked]\n"
#define ERR_CHUNKED(in, body, err)                                                              \
    check(in, sizeof in - 1, NULL, false, TE_HEAD body "ERROR " #err "\n", NULL, 64)

static void reject_status_line(void **state)
{
    (void)state;
    ERR("HTTP/1.1 20 OK\r\n\r\n", STATUS);
    ERR("HTTP/1.1 2000 OK\r\n\r\n", STATUS);
    ERR("HTTP/1.1 099 Low\r\n\r\n", STATUS);
    ERR("HTTP/1.1 abc OK\r\n\r\n", STATUS);
    ERR("HTTP/1.1  200 OK\r\n\r\n", STATUS);
    ERR("HTTP/1.1 200 O\x01K\r\n\r\n", STATUS_LINE);
    ERR("HTTP/1.1 200 O\rK\r\n\r\n", BARE_CR);
    ERR("HTTP/1.1 200 OK\n\r\n", BARE_LF);
    ERR("HTTP/2 200\r\n\r\n", STATUS_LINE);
    ERR("HTTP/2.0 200 OK\r\n\r\n", VERSION_UNSUPPORTED);
    ERR("HTTP/1.2 200 OK\r\n\r\n", VERSION_UNSUPPORTED);
    ERR("HTTP/1.x 200 OK\r\n\r\n", VERSION);
    ERR("http/1.1 200 OK\r\n\r\n", STATUS_LINE);
    ERR("ICY 200 OK\r\n\r\n", STATUS_LINE);
    ERR("<html>hello</html>\r\n", STATUS_LINE);
    ERR("\r\nHTTP/1.1 200 OK\r\n\r\n", STATUS_LINE); /* a stray CRLF: the body before lied */
}

static void reject_fields(void **state)
{
    (void)state;
    ERR("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", CL_DUPLICATE);
    ERR("HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx", CL_LIST);
    ERR("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", CL_INVALID);
    ERR("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", TE_AND_CL);
    ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", TE_NOT_CHUNKED);
    ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", TE_UNSUPPORTED);
    ERR("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", TE_HTTP10);
    ERR("HTTP/1.1 200 OK\r\nX : y\r\n\r\n", SPACE_BEFORE_COLON);
    ERR("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", OBS_FOLD);
    ERR("HTTP/1.1 200 OK\r\nX: \x7f\r\n\r\n", HEADER_VALUE);
    ERR_CHUNKED("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n", "", CHUNK_SIZE);
    ERR_CHUNKED("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "BODY a\n",
                CHUNK_DATA_CRLF);
    ERR_CHUNKED("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n", "",
                CHUNK_SIZE_OVERFLOW);
    /* Even bodiless responses have their framing fields checked. */
    ERR("HTTP/1.1 204 No Content\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", CL_DUPLICATE);
}

static void limits(void **state)
{
    (void)state;
    simul_http_limits lim = {.max_request_line = 20, .max_header_bytes = 40, .max_headers = 2,
                             .max_chunk_line = 8, .max_body = 10};
    OK_LIM("HTTP/1.1 200 OKAYS\r\n\r\n", &lim, 64, "HEAD 200 [OKAYS] 1.1 close 0 close\n");
    OK_LIM("HTTP/1.1 200 OKAYSS\r\n\r\n", &lim, 64, "ERROR STATUS_LINE_TOO_LONG\n");
    /* An endless status line or header is cut at the limit, not read forever. */
    OK_LIM("HTTP/1.1 200 OKOKOKOKOKOKOKOKOKOKOKOK", &lim, 64, "ERROR STATUS_LINE_TOO_LONG\n");
    OK_LIM("HTTP/1.1 200 OK\r\nX-Endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &lim, 64,
           "ERROR HEADERS_TOO_LARGE\n");
    OK_LIM("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &lim, 64,
           "ERROR TOO_MANY_HEADERS\n");
    OK_LIM("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", NULL, 2, "ERROR TOO_MANY_HEADERS\n");
    OK_LIM("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", &lim, 64, "ERROR BODY_TOO_LARGE\n");
    OK_LIM("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\naaaaaa\r\n5\r\n", &lim, 64,
           "HEAD 200 [OK] 1.1 chunked 0 keep-alive\nTransfer-Encoding: [chunked]\n"
           "BODY aaaaaa\nERROR BODY_TOO_LARGE\n");
    OK_LIM("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a=bcd\r\n", &lim, 64,
           "HEAD 200 [OK] 1.1 chunked 0 keep-alive\nTransfer-Encoding: [chunked]\n"
           "ERROR CHUNK_LINE_TOO_LONG\n");
    OK_LIM("HTTP/1.1 200 OK\r\n\r\n0123456789abc", &lim, 64,
           "HEAD 200 [OK] 1.1 close 0 close\nBODY 0123456789\nERROR BODY_TOO_LARGE\n");
    /* A HEAD response's Content-Length is no body: no limit applies. */
    static const char head99[] = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
    check(head99, sizeof head99 - 1, "HEAD", false,
          "HEAD 200 [OK] 1.1 none 99 keep-alive\nContent-Length: [99]\nEND\n", &lim, 64);
}

static void error_codes(void **state)
{
    (void)state;
    simul_http_header h[4];
    simul_http_parser p;
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_RESPONSE, NULL, h, 4), 0);
    size_t used;
    assert_int_equal(simul_http_parser_feed(&p, "HTTP/1.1 20x\r\n", 14, &used), -EPROTO);
    assert_int_equal(simul_http_error_status(p.error), 400);
    assert_string_equal(simul_http_error_reason(p.error), "invalid status code");
    assert_int_equal(simul_http_parser_eof(&p), -EPROTO); /* sticky */
    assert_int_equal(simul_http_parser_response_to(&p, "GET"), -EINVAL);
    simul_http_limits lim = {.max_request_line = 8};
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_RESPONSE, &lim, h, 4), 0);
    assert_int_equal(simul_http_parser_feed(&p, "HTTP/1.1 200 OK\r\n", 17, &used), -EMSGSIZE);
    /* response_to: only between messages, only in response mode. */
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_RESPONSE, NULL, h, 4), 0);
    assert_int_equal(simul_http_parser_feed(&p, "HTTP/1.1", 8, &used), 0);
    assert_int_equal(simul_http_parser_response_to(&p, "HEAD"), -EINVAL);
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, NULL, h, 4), 0);
    assert_int_equal(simul_http_parser_response_to(&p, "HEAD"), -EINVAL);
    /* A HEAD answered by a final response does not carry over to the next one. */
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_RESPONSE, NULL, h, 4), 0);
    assert_int_equal(simul_http_parser_response_to(&p, "HEAD"), 0);
    static const char two[] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
    size_t off = 0;
    assert_int_equal(simul_http_parser_feed(&p, two, sizeof two - 1, &used), SIMUL_HTTP_HEAD);
    assert_int_equal(p.head.framing, SIMUL_HTTP_BODY_NONE);
    off += used;
    assert_int_equal(simul_http_parser_feed(&p, two + off, sizeof two - 1 - off, &used), SIMUL_HTTP_END);
    off += used;
    assert_int_equal(simul_http_parser_feed(&p, two + off, sizeof two - 1 - off, &used), SIMUL_HTTP_HEAD);
    assert_int_equal(p.head.framing, SIMUL_HTTP_BODY_LENGTH);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_lines),
        cmocka_unit_test(chunked_response),
        cmocka_unit_test(until_close),
        cmocka_unit_test(bodiless),
        cmocka_unit_test(upgrades),
        cmocka_unit_test(reject_status_line),
        cmocka_unit_test(reject_fields),
        cmocka_unit_test(limits),
        cmocka_unit_test(error_codes),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_http_client_parser");
}
