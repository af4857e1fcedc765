/* test_http_parser.c — the HTTP/1.1 request parser of libsimul-http (a pure function over bytes):
 * every request shape and every rejection, each fed whole, byte by byte and split at every
 * offset (the transcript of events must not change), and every limit at its boundary. */
#include "test_main_helpers.h"

#include <simul/http.h>

#include "test_http_transcript_helpers.h"

/* ---- the harness: a caller that keeps unconsumed bytes, as the server will ---------------- */

static void record_head(transcript *t, const simul_http_head *h)
{
    char line[160];
    puts_(t, "HEAD ");
    put_span(t, h->base, h->method);
    puts_(t, " ");
    put_span(t, h->base, h->target);
    static const char *const framings[] = {"none", "length", "chunked"};
    snprintf(line, sizeof line, " 1.%u %s %llu%s%s%s\n", h->version_minor, framings[h->framing],
             (unsigned long long)h->content_length, h->keep_alive ? " keep-alive" : " close",
             h->upgrade ? " upgrade" : "", h->expect_continue ? " continue" : "");
    puts_(t, line);
    for (uint32_t i = 0; i < h->nheaders; i++) {
        put_span(t, h->base, h->headers[i].name);
        puts_(t, ": [");
        put_span(t, h->base, h->headers[i].value);
        puts_(t, "]\n");
    }
}

/* Feeds `in` cut at the offsets in cuts[0..ncuts) (increasing), through a buffer that is moved
 * after every call (so a parser that kept pointers would fail), and records every event. */
typedef struct feed_opts {
    const simul_http_limits *lim;
    size_t cap;
} feed_opts;

static void feed_cuts(transcript *t, const char *in, size_t n, const size_t *cuts, size_t ncuts,
                      const void *ctx)
{
    const simul_http_limits *lim = ((const feed_opts *)ctx)->lim;
    size_t cap = ((const feed_opts *)ctx)->cap;
    memset(t, 0, sizeof *t);
    simul_http_header *hdrs = calloc(cap, sizeof *hdrs);
    simul_http_parser p;
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, lim, hdrs, cap), 0);
    char *buf = malloc(n + 1);
    size_t have = 0, pos = 0;
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
                assert_true(p.body >= buf + off && p.body + p.body_len <= buf + off + used);
                record_body(t, &p);
            } else if (rc == SIMUL_HTTP_END) {
                puts_(t, "END");
                for (uint32_t i = 0; i < p.head.ntrailers; i++) {
                    puts_(t, " ");
                    put_span(t, p.head.trailer_base, p.head.trailers[i].name);
                    puts_(t, "=");
                    put_span(t, p.head.trailer_base, p.head.trailers[i].value);
                }
                puts_(t, "\n");
            }
            off += used;
            if (rc == SIMUL_HTTP_NEED_MORE)
                break;
        }
        if (t->rc >= 0)
            buf = keep_unconsumed(buf, n, off, &have);
    }
    if (t->rc >= 0 && t->in_body)
        puts_(t, "\n");
    free(buf);
    free(hdrs);
}

static transcript *run_all(const char *in, size_t n, const simul_http_limits *lim, size_t cap)
{
    return run_all_splits(feed_cuts, &(feed_opts){lim, cap}, in, n);
}

#define CAP 128

/* The request parses to exactly `expected` (all splits). */
static void check_ok_lim(const char *in, size_t n, const char *expected,
                         const simul_http_limits *lim)
{
    transcript *t = run_all(in, n, lim, CAP);
    if (t->rc < 0 || strcmp(t->text, expected) != 0)
        fail_msg("input:\n%.*s\n--- got\n%s--- expected\n%s", (int)n, in, t->text, expected);
}
#define OK(in, expected) check_ok_lim(in, sizeof in - 1, expected, NULL)

/* The request is rejected with `err` (all splits), with its status. */
static void check_err_lim(const char *in, size_t n, simul_http_error err, int status,
                          const simul_http_limits *lim, size_t cap)
{
    transcript *t = run_all(in, n, lim, cap);
    if (t->rc >= 0 || t->error != err)
        fail_msg("input:\n%.*s\n--- got\n%s--- expected error %s", (int)n, in, t->text,
                 simul_http_error_name(err));
    assert_int_equal(simul_http_error_status(err), status);
    int st = status;
    assert_int_equal(t->rc, st == 413 || st == 414 || st == 431 ? -EMSGSIZE : -EPROTO);
}
#define ERR(in, err, status) check_err_lim(in, sizeof in - 1, err, status, NULL, CAP)

#define H "Host: a\r\n"

/* ---- valid requests ------------------------------------------------------------------------ */

static void get_minimal(void **state)
{
    (void)state;
    OK("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
       "HEAD GET / 1.1 none 0 keep-alive\nHost: [example.com]\nEND\n");
    OK("GET /a/b?c=d&e HTTP/1.0\r\n\r\n", "HEAD GET /a/b?c=d&e 1.0 none 0 close\nEND\n");
}

static void get_browser(void **state)
{
    (void)state;
    OK("GET /index.html?q=1 HTTP/1.1\r\n"
       "Host: www.example.com:8080\r\n"
       "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
       "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
       "Accept-Language: en-US,en;q=0.5\r\n"
       "Accept-Encoding: gzip, deflate, br\r\n"
       "Connection: keep-alive\r\n"
       "Cookie: a=b; c=\"d e\"\r\n"
       "Upgrade-Insecure-Requests: 1\r\n"
       "Sec-Fetch-Dest: document\r\n"
       "\r\n",
       "HEAD GET /index.html?q=1 1.1 none 0 keep-alive\n"
       "Host: [www.example.com:8080]\n"
       "User-Agent: [Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0]\n"
       "Accept: [text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8]\n"
       "Accept-Language: [en-US,en;q=0.5]\n"
       "Accept-Encoding: [gzip, deflate, br]\n"
       "Connection: [keep-alive]\n"
       "Cookie: [a=b; c=\"d e\"]\n"
       "Upgrade-Insecure-Requests: [1]\n"
       "Sec-Fetch-Dest: [document]\n"
       "END\n");
}

static void header_values(void **state)
{
    (void)state;
    /* OWS around values trimmed, inner kept; empty value; HTAB; obs-text; every tchar. */
    OK("GET / HTTP/1.1\r\nHost:a\r\nX-A: \t v  w \t\r\nX-Empty:\r\nX-Sp:   \r\n"
       "X-Obs: caf\xc3\xa9\r\n!#$%&'*+-.^_`|~09azAZ: ok\r\n\r\n",
       "HEAD GET / 1.1 none 0 keep-alive\nHost: [a]\nX-A: [v  w]\nX-Empty: []\nX-Sp: []\n"
       "X-Obs: [caf\xc3\xa9]\n!#$%&'*+-.^_`|~09azAZ: [ok]\nEND\n");
}

static void target_forms(void **state)
{
    (void)state;
    OK("OPTIONS * HTTP/1.1\r\n" H "\r\n", "HEAD OPTIONS * 1.1 none 0 keep-alive\nHost: [a]\nEND\n");
    OK("GET http://x.org/p?q#f HTTP/1.1\r\n" H "\r\n",
       "HEAD GET http://x.org/p?q#f 1.1 none 0 keep-alive\nHost: [a]\nEND\n");
    OK("CONNECT x.org:443 HTTP/1.1\r\nHost: x.org:443\r\n\r\n",
       "HEAD CONNECT x.org:443 1.1 none 0 keep-alive upgrade\nHost: [x.org:443]\nEND\n");
    OK("M-SEARCH! /%41~ HTTP/1.1\r\n" H "\r\n",
       "HEAD M-SEARCH! /%41~ 1.1 none 0 keep-alive\nHost: [a]\nEND\n");
}

static void post_content_length(void **state)
{
    (void)state;
    OK("POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
       "Content-Length: 11\r\n\r\nhello=world",
       "HEAD POST /form 1.1 length 11 keep-alive\nHost: [a]\n"
       "Content-Type: [application/x-www-form-urlencoded]\nContent-Length: [11]\n"
       "BODY hello=world\nEND\n");
    OK("POST / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n",
       "HEAD POST / 1.1 length 0 keep-alive\nHost: [a]\nContent-Length: [0]\nEND\n");
    OK("POST / HTTP/1.1\r\n" H "content-LENGTH:  007 \r\n\r\nabcdefg",
       "HEAD POST / 1.1 length 7 keep-alive\nHost: [a]\ncontent-LENGTH: [007]\nBODY abcdefg\nEND\n");
    /* A body that is not yet all there: no END. */
    OK("POST / HTTP/1.1\r\n" H "Content-Length: 10\r\n\r\nabc",
       "HEAD POST / 1.1 length 10 keep-alive\nHost: [a]\nContent-Length: [10]\nBODY abc\n");
}

static void chunked_bodies(void **state)
{
    (void)state;
    OK("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
       "HEAD POST /up 1.1 chunked 0 keep-alive\nHost: [a]\nTransfer-Encoding: [chunked]\n"
       "BODY hello world\nEND\n");
    /* Hex sizes, leading zeros, upper and lower case, CRLF inside the data. */
    OK("POST / HTTP/1.1\r\n" H "Transfer-Encoding: CHUNKED\r\n\r\n"
       "000A\r\n0123456789\r\nb\r\nab\r\ncd\r\nefg\r\n00\r\n\r\n",
       "HEAD POST / 1.1 chunked 0 keep-alive\nHost: [a]\nTransfer-Encoding: [CHUNKED]\n"
       "BODY 0123456789ab\r\ncd\r\nefg\nEND\n");
    /* Trailers. */
    OK("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
       "3\r\nabc\r\n0\r\nX-Sum: 42\r\nX-B:  b \r\n\r\n",
       "HEAD POST / 1.1 chunked 0 keep-alive\nHost: [a]\nTransfer-Encoding: [chunked]\n"
       "BODY abc\nEND X-Sum=42 X-B=b\n");
}

static void chunk_extensions(void **state)
{
    (void)state;
#define CH "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
#define CH_HEAD "HEAD POST / 1.1 chunked 0 keep-alive\nHost: [a]\nTransfer-Encoding: [chunked]\n"
    OK(CH "1;a\r\nx\r\n0\r\n\r\n", CH_HEAD "BODY x\nEND\n");
    OK(CH "1;a=b;c=d\r\nx\r\n0;last\r\n\r\n", CH_HEAD "BODY x\nEND\n");
    OK(CH "1 ; a = b\t;\tc\r\nx\r\n0\r\n\r\n", CH_HEAD "BODY x\nEND\n");
    OK(CH "1;a=\"q \\\" ;x\"\r\nx\r\n0\r\n\r\n", CH_HEAD "BODY x\nEND\n");
    OK(CH "1;a=\"\"\r\nx\r\n0\r\n\r\n", CH_HEAD "BODY x\nEND\n");
    OK(CH "1;a=\"caf\xc3\xa9\"\r\nx\r\n0\r\n\r\n", CH_HEAD "BODY x\nEND\n");
}

static void keep_alive_rules(void **state)
{
    (void)state;
    OK("GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n",
       "HEAD GET / 1.1 none 0 close\nHost: [a]\nConnection: [close]\nEND\n");
    OK("GET / HTTP/1.1\r\n" H "Connection: foo, CLOSE\r\n\r\n",
       "HEAD GET / 1.1 none 0 close\nHost: [a]\nConnection: [foo, CLOSE]\nEND\n");
    OK("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
       "HEAD GET / 1.0 none 0 keep-alive\nConnection: [Keep-Alive]\nEND\n");
    OK("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
       "HEAD GET / 1.0 none 0 close\nConnection: [keep-alive, close]\nEND\n");
    OK("GET / HTTP/1.1\r\n" H "Expect: 100-Continue\r\n\r\n",
       "HEAD GET / 1.1 none 0 keep-alive continue\nHost: [a]\nExpect: [100-Continue]\nEND\n");
    OK("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
       "HEAD POST / 1.0 length 1 close\nExpect: [100-continue]\nContent-Length: [1]\nBODY x\nEND\n");
}

static void upgrade_reported(void **state)
{
    (void)state;
    /* The bytes after an upgrade request belong to the new protocol: the parser reports END and
     * consumes none of them (here they are not HTTP, and the next call would reject them). */
    static const char in[] = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                             "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x05hello";
    simul_http_header h[8];
    simul_http_parser p;
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, NULL, h, 8), 0);
    size_t used, off = 0, n = sizeof in - 1;
    assert_int_equal(simul_http_parser_feed(&p, in, n, &used), SIMUL_HTTP_HEAD);
    assert_true(p.head.upgrade);
    assert_true(p.head.keep_alive);
    off += used;
    assert_int_equal(simul_http_parser_feed(&p, in + off, n - off, &used), SIMUL_HTTP_END);
    assert_int_equal(used, 0);
    assert_int_equal(n - off, 7);
    assert_memory_equal(in + off, "\x81\x05hello", 7);
    /* Upgrade without "Connection: upgrade" is not an upgrade. */
    OK("GET / HTTP/1.1\r\n" H "Upgrade: websocket\r\n\r\n",
       "HEAD GET / 1.1 none 0 keep-alive\nHost: [a]\nUpgrade: [websocket]\nEND\n");
    OK("GET / HTTP/1.1\r\n" H "Connection: keep-alive, upgrade\r\nUpgrade: h2c\r\n\r\n",
       "HEAD GET / 1.1 none 0 keep-alive upgrade\nHost: [a]\n"
       "Connection: [keep-alive, upgrade]\nUpgrade: [h2c]\nEND\n");
}

static void pipelined(void **state)
{
    (void)state;
    OK("GET /1 HTTP/1.1\r\n" H "\r\n"
       "POST /2 HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc"
       "POST /3 HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
       "GET /4 HTTP/1.1\r\n" H "Connection: close\r\n\r\n",
       "HEAD GET /1 1.1 none 0 keep-alive\nHost: [a]\nEND\n"
       "HEAD POST /2 1.1 length 3 keep-alive\nHost: [a]\nContent-Length: [3]\nBODY abc\nEND\n"
       "HEAD POST /3 1.1 chunked 0 keep-alive\nHost: [a]\nTransfer-Encoding: [chunked]\n"
       "BODY de\nEND\n"
       "HEAD GET /4 1.1 none 0 close\nHost: [a]\nConnection: [close]\nEND\n");
    /* An empty line between requests is skipped (RFC 9112 2.2). */
    OK("GET /1 HTTP/1.1\r\n" H "\r\n\r\n\r\nGET /2 HTTP/1.1\r\n" H "\r\n",
       "HEAD GET /1 1.1 none 0 keep-alive\nHost: [a]\nEND\n"
       "HEAD GET /2 1.1 none 0 keep-alive\nHost: [a]\nEND\n");
    /* Nothing may follow a message that closes the connection. */
    ERR("GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n", SIMUL_HTTP_E_AFTER_CLOSE, 400);
}

static void head_get_and_spans(void **state)
{
    (void)state;
    static const char in[] = "GET /x HTTP/1.1\r\nHost: h\r\nX-Long-Name:  v1 \r\nx-long-name: v2\r\n\r\n";
    simul_http_header h[4];
    simul_http_parser p;
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, NULL, h, 4), 0);
    size_t used;
    assert_int_equal(simul_http_parser_feed(&p, in, sizeof in - 1, &used), SIMUL_HTTP_HEAD);
    assert_int_equal(used, sizeof in - 1);
    size_t n = 0;
    const char *v = simul_http_head_get(&p.head, "x-LONG-name", &n);
    assert_non_null(v);
    assert_int_equal(n, 2);
    assert_memory_equal(v, "v1", 2);
    assert_null(simul_http_head_get(&p.head, "x-long-nam", &n));
    assert_true(simul_http_ptr(p.head.base, p.head.target) == in + 4);
    assert_int_equal(p.head.target.len, 2);
}

/* ---- rejections ---------------------------------------------------------------------------- */

static void reject_request_line(void **state)
{
    (void)state;
    ERR("GET  / HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_REQUEST_LINE, 400);
    ERR("GET /  HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_REQUEST_LINE, 400);
    ERR(" GET / HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_REQUEST_LINE, 400);
    ERR("GET / HTTP/1.1 \r\n" H "\r\n", SIMUL_HTTP_E_REQUEST_LINE, 400);
    ERR("GET / \r\n" H "\r\n", SIMUL_HTTP_E_REQUEST_LINE, 400);
    ERR("GET /\r\n" H "\r\n", SIMUL_HTTP_E_REQUEST_LINE, 400); /* HTTP/0.9 */
    ERR("GET\r\n" H "\r\n", SIMUL_HTTP_E_REQUEST_LINE, 400);
    ERR("GET / HTTP/1.1 x\r\n" H "\r\n", SIMUL_HTTP_E_REQUEST_LINE, 400);
    ERR("GET\t/ HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_METHOD, 400);
    ERR("GE(T / HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_METHOD, 400);
    ERR("G\xc3\x89T / HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_METHOD, 400);
}

static void reject_target(void **state)
{
    (void)state;
    ERR("GET /a\x01 HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_TARGET, 400);
    ERR("GET /a\x7f HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_TARGET, 400);
    ERR("GET /a\tb HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_TARGET, 400);
    ERR("GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_TARGET, 400);
    ERR("GET /a\0b HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_TARGET, 400);
}

static void reject_version(void **state)
{
    (void)state;
    ERR("GET / HTTP/1\r\n" H "\r\n", SIMUL_HTTP_E_VERSION, 400);
    ERR("GET / http/1.1\r\n" H "\r\n", SIMUL_HTTP_E_VERSION, 400);
    ERR("GET / HTTP/1.10\r\n" H "\r\n", SIMUL_HTTP_E_VERSION, 400);
    ERR("GET / HTTP/1,1\r\n" H "\r\n", SIMUL_HTTP_E_VERSION, 400);
    ERR("GET / HTTP/a.1\r\n" H "\r\n", SIMUL_HTTP_E_VERSION, 400);
    ERR("GET / HTTP/2.0\r\n" H "\r\n", SIMUL_HTTP_E_VERSION_UNSUPPORTED, 505);
    ERR("GET / HTTP/1.2\r\n" H "\r\n", SIMUL_HTTP_E_VERSION_UNSUPPORTED, 505);
    ERR("GET / HTTP/0.9\r\n" H "\r\n", SIMUL_HTTP_E_VERSION_UNSUPPORTED, 505);
}

static void reject_bare_cr(void **state)
{
    (void)state;
    ERR("GET / HTTP/1.1\rX\r\n" H "\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    ERR("GET /\r HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    ERR("GET\r / HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    ERR("GET / HTTP/1.1\r\r\n" H "\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    /* CVE-2023-30589's shape: a CR in a value must not end the line. */
    ERR("GET / HTTP/1.1\r\n" H "X-Abc: \rxTransfer-Encoding: chunked\r\n\r\n",
        SIMUL_HTTP_E_BARE_CR, 400);
    ERR("GET / HTTP/1.1\r\n" H "X-Abc\r: x\r\n\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    ERR("GET / HTTP/1.1\r\n" H "X:\r\r\n\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    ERR("GET / HTTP/1.1\r\n" H "\r\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    ERR(CH "1\rx\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    ERR(CH "1;a\rb\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    ERR(CH "1;a=\"\r\"\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    ERR(CH "1\r\nx\rX0\r\n\r\n", SIMUL_HTTP_E_BARE_CR, 400);
    ERR(CH "0\r\nX: \ry\r\n\r\n", SIMUL_HTTP_E_BARE_CR, 400);
}

static void reject_bare_lf(void **state)
{
    (void)state;
    ERR("GET / HTTP/1.1\n" H "\r\n", SIMUL_HTTP_E_BARE_LF, 400);
    ERR("\nGET / HTTP/1.1\r\n" H "\r\n", SIMUL_HTTP_E_BARE_LF, 400);
    ERR("GET / HTTP/1.1\r\nHost: a\n\r\n", SIMUL_HTTP_E_BARE_LF, 400);
    ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n",
        SIMUL_HTTP_E_BARE_LF, 400);
    ERR("GET / HTTP/1.1\r\n" H "\n", SIMUL_HTTP_E_BARE_LF, 400);
    ERR(CH "1\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_BARE_LF, 400);
    ERR(CH "1;a\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_BARE_LF, 400); /* the "funky chunks" LF */
    ERR(CH "1\r\nx\n0\r\n\r\n", SIMUL_HTTP_E_BARE_LF, 400);
    ERR(CH "0\r\n\n", SIMUL_HTTP_E_BARE_LF, 400);
    ERR(CH "0\r\nX: y\n\r\n", SIMUL_HTTP_E_BARE_LF, 400);
}

static void reject_obs_fold(void **state)
{
    (void)state;
    ERR("GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n", SIMUL_HTTP_E_OBS_FOLD, 400);
    ERR("GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n", SIMUL_HTTP_E_OBS_FOLD, 400);
    ERR("GET / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n , chunked\r\n\r\n",
        SIMUL_HTTP_E_OBS_FOLD, 400);
    ERR("GET / HTTP/1.1\r\n Host: a\r\n\r\n", SIMUL_HTTP_E_OBS_FOLD, 400);
    ERR(CH "0\r\nX: a\r\n b\r\n\r\n", SIMUL_HTTP_E_OBS_FOLD, 400);
}

static void reject_header_name(void **state)
{
    (void)state;
    ERR("GET / HTTP/1.1\r\n" H "Content-Length : 5\r\n\r\nhello", SIMUL_HTTP_E_SPACE_BEFORE_COLON,
        400);
    ERR("GET / HTTP/1.1\r\n" H "Content-Length\t: 5\r\n\r\nhello",
        SIMUL_HTTP_E_SPACE_BEFORE_COLON, 400);
    ERR(CH "0\r\nX : y\r\n\r\n", SIMUL_HTTP_E_SPACE_BEFORE_COLON, 400);
    ERR("GET / HTTP/1.1\r\n" H "X(y): z\r\n\r\n", SIMUL_HTTP_E_HEADER_NAME, 400);
    ERR("GET / HTTP/1.1\r\n" H ": z\r\n\r\n", SIMUL_HTTP_E_HEADER_NAME, 400);
    ERR("GET / HTTP/1.1\r\n" H "NoColon\r\n\r\n", SIMUL_HTTP_E_HEADER_NAME, 400);
    ERR("GET / HTTP/1.1\r\n" H "X y: z\r\n\r\n", SIMUL_HTTP_E_SPACE_BEFORE_COLON, 400);
    ERR("GET / HTTP/1.1\r\n" H "X\x01: z\r\n\r\n", SIMUL_HTTP_E_HEADER_NAME, 400);
    ERR("GET / HTTP/1.1\r\n" H "\xc3\xa9: z\r\n\r\n", SIMUL_HTTP_E_HEADER_NAME, 400);
    ERR(CH "0\r\nX(: y\r\n\r\n", SIMUL_HTTP_E_HEADER_NAME, 400);
}

static void reject_header_value(void **state)
{
    (void)state;
    ERR("GET / HTTP/1.1\r\n" H "X: a\x01z\r\n\r\n", SIMUL_HTTP_E_HEADER_VALUE, 400);
    ERR("GET / HTTP/1.1\r\n" H "X: a\x7fz\r\n\r\n", SIMUL_HTTP_E_HEADER_VALUE, 400);
    ERR("GET / HTTP/1.1\r\n" H "X: a\0z\r\n\r\n", SIMUL_HTTP_E_HEADER_VALUE, 400);
    ERR("GET / HTTP/1.1\r\n" H "X: \x1b[31m\r\n\r\n", SIMUL_HTTP_E_HEADER_VALUE, 400);
    ERR(CH "0\r\nX: \x01\r\n\r\n", SIMUL_HTTP_E_HEADER_VALUE, 400);
}

static void reject_content_length(void **state)
{
    (void)state;
#define P "POST / HTTP/1.1\r\n" H
    ERR(P "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", SIMUL_HTTP_E_CL_DUPLICATE, 400);
    ERR(P "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", SIMUL_HTTP_E_CL_DUPLICATE, 400);
    ERR(P "Content-Length: 1, 1\r\n\r\nx", SIMUL_HTTP_E_CL_LIST, 400);
    ERR(P "Content-Length: 1,2\r\n\r\nxy", SIMUL_HTTP_E_CL_LIST, 400);
    ERR(P "Content-Length: ,1\r\n\r\nx", SIMUL_HTTP_E_CL_LIST, 400);
    ERR(P "Content-Length: +5\r\n\r\nhello", SIMUL_HTTP_E_CL_INVALID, 400);
    ERR(P "Content-Length: -1\r\n\r\n", SIMUL_HTTP_E_CL_INVALID, 400);
    ERR(P "Content-Length: 0x5\r\n\r\nhello", SIMUL_HTTP_E_CL_INVALID, 400);
    ERR(P "Content-Length: 5 5\r\n\r\nhello", SIMUL_HTTP_E_CL_INVALID, 400);
    ERR(P "Content-Length:\r\n\r\n", SIMUL_HTTP_E_CL_INVALID, 400);
    ERR(P "Content-Length: 1.0\r\n\r\nx", SIMUL_HTTP_E_CL_INVALID, 400);
}

static void reject_transfer_encoding(void **state)
{
    (void)state;
    ERR(P "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        SIMUL_HTTP_E_TE_AND_CL, 400);
    ERR(P "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        SIMUL_HTTP_E_TE_AND_CL, 400);
    ERR(P "Transfer-Encoding: gzip\r\n\r\n", SIMUL_HTTP_E_TE_NOT_CHUNKED, 400);
    ERR(P "Transfer-Encoding: chunked, gzip\r\n\r\n", SIMUL_HTTP_E_TE_NOT_CHUNKED, 400);
    ERR(P "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
        SIMUL_HTTP_E_TE_NOT_CHUNKED, 400);
    ERR(P "Transfer-Encoding: chunkedx\r\n\r\n", SIMUL_HTTP_E_TE_NOT_CHUNKED, 400);
    ERR(P "Transfer-Encoding: chunked, chunked\r\n\r\n", SIMUL_HTTP_E_TE_INVALID, 400);
    ERR(P "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        SIMUL_HTTP_E_TE_INVALID, 400);
    ERR(P "Transfer-Encoding: chunked;q=1\r\n\r\n", SIMUL_HTTP_E_TE_INVALID, 400);
    ERR(P "Transfer-Encoding: , chunked\r\n\r\n", SIMUL_HTTP_E_TE_INVALID, 400);
    ERR(P "Transfer-Encoding: chunked,\r\n\r\n", SIMUL_HTTP_E_TE_INVALID, 400);
    ERR(P "Transfer-Encoding:\r\n\r\n", SIMUL_HTTP_E_TE_INVALID, 400);
    ERR(P "Transfer-Encoding: \"chunked\"\r\n\r\n", SIMUL_HTTP_E_TE_INVALID, 400);
    ERR(P "Transfer-Encoding: gzip, chunked\r\n\r\n", SIMUL_HTTP_E_TE_UNSUPPORTED, 501);
    ERR("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        SIMUL_HTTP_E_TE_HTTP10, 400);
}

static void reject_host(void **state)
{
    (void)state;
    ERR("GET / HTTP/1.1\r\n\r\n", SIMUL_HTTP_E_HOST_MISSING, 400);
    ERR("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", SIMUL_HTTP_E_HOST_DUPLICATE, 400);
}

static void reject_chunk_size(void **state)
{
    (void)state;
    ERR(CH "\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_SIZE, 400);
    ERR(CH "g\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_SIZE, 400);
    ERR(CH "0x1\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_SIZE, 400);
    ERR(CH "-1\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_SIZE, 400);
    ERR(CH " 1\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_SIZE, 400);
    ERR(CH "1 \r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_SIZE, 400);
    ERR(CH "1_0\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_SIZE, 400);
    ERR(CH "1 1\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_SIZE, 400);
    ERR(CH "0_0\r\n\r\n", SIMUL_HTTP_E_CHUNK_SIZE, 400);
    /* 2^64 + 1 would wrap to 1 in a careless parser. */
    ERR(CH "10000000000000001\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_SIZE_OVERFLOW, 400);
    ERR(CH "fffffffffffffffff\r\n", SIMUL_HTTP_E_CHUNK_SIZE_OVERFLOW, 400);
    /* 16 digits fit (then the body limit speaks); leading zeros are not digits that overflow. */
    ERR(CH "ffffffffffffffff\r\n", SIMUL_HTTP_E_BODY_TOO_LARGE, 413);
    OK(CH "00000000000000000001\r\nx\r\n0\r\n\r\n", CH_HEAD "BODY x\nEND\n");
    ERR(CH "1\r\nxy\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_DATA_CRLF, 400);
}

static void reject_chunk_ext(void **state)
{
    (void)state;
    ERR(CH "1;\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;=b\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;a=\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;a=\"b\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;a b\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;a \r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;a=\"b\" c\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;a=b=c\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;a\x01\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;a=\"\x01\"\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;a=\"\\\x01\"\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
    ERR(CH "1;a=(b)\r\nx\r\n0\r\n\r\n", SIMUL_HTTP_E_CHUNK_EXT, 400);
}

/* ---- limits: at the boundary and one past ------------------------------------------------- */

/* A request whose line is exactly n bytes with its CRLF. */
static size_t request_of_line(char *out, size_t n, const char *rest)
{
    size_t pad = n - strlen("GET / HTTP/1.1\r\n");
    int k = sprintf(out, "GET /%*s HTTP/1.1\r\n%s", (int)pad, "", rest);
    memset(out + 5, 'a', pad);
    return (size_t)k;
}

static void limit_request_line(void **state)
{
    (void)state;
    char in[512];
    simul_http_limits lim = {.max_request_line = 100};
    size_t n = request_of_line(in, 100, H "\r\n");
    transcript *t = run_all(in, n, &lim, CAP);
    assert_true(t->rc >= 0);
    assert_non_null(strstr(t->text, "END\n"));
    n = request_of_line(in, 101, H "\r\n");
    check_err_lim(in, n, SIMUL_HTTP_E_URI_TOO_LONG, 414, &lim, CAP);
    /* Also when the line never ends. */
    n = request_of_line(in, 101, "");
    check_err_lim(in, n - 1, SIMUL_HTTP_E_URI_TOO_LONG, 414, &lim, CAP);
    /* Empty lines before the request count. */
    n = request_of_line(in + 2, 99, H "\r\n");
    memcpy(in, "\r\n", 2);
    check_err_lim(in, n + 2, SIMUL_HTTP_E_URI_TOO_LONG, 414, &lim, CAP);
    /* The default. */
    static char big[SIMUL_HTTP_DEFAULT_MAX_REQUEST_LINE + 64];
    n = request_of_line(big, SIMUL_HTTP_DEFAULT_MAX_REQUEST_LINE + 1, H "\r\n");
    simul_http_header h[4];
    simul_http_parser p;
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, NULL, h, 4), 0);
    size_t used;
    assert_int_equal(simul_http_parser_feed(&p, big, n, &used), -EMSGSIZE);
    assert_int_equal(p.error, SIMUL_HTTP_E_URI_TOO_LONG);
}

static void limit_header_bytes(void **state)
{
    (void)state;
    /* The header section of "Host: a\r\nX: <pad>\r\n\r\n" is 9 + 5 + pad + 2 bytes. */
    simul_http_limits lim = {.max_header_bytes = 64};
    char in[256];
    size_t pad = 64 - 16;
    int n = sprintf(in, "GET / HTTP/1.1\r\nHost: a\r\nX: %*s\r\n\r\n", (int)pad, "");
    memset(in + 16 + 12, 'v', pad);
    transcript *t = run_all(in, (size_t)n, &lim, CAP);
    assert_true(t->rc >= 0);
    assert_non_null(strstr(t->text, "END\n"));
    n = sprintf(in, "GET / HTTP/1.1\r\nHost: a\r\nX: %*s\r\n\r\n", (int)pad + 1, "");
    memset(in + 16 + 12, 'v', pad + 1);
    check_err_lim(in, (size_t)n, SIMUL_HTTP_E_HEADERS_TOO_LARGE, 431, &lim, CAP);
    /* An unfinished section over the limit fails without waiting for its end. */
    check_err_lim(in, (size_t)n - 1, SIMUL_HTTP_E_HEADERS_TOO_LARGE, 431, &lim, CAP);
    /* Trailers have the same limit, counted on their own. */
    n = sprintf(in, CH "0\r\nX: %*s\r\n\r\n", (int)(64 - 7), "");
    memset(in + n - 4 - 57, 't', 57);
    t = run_all(in, (size_t)n, &lim, CAP);
    assert_true(t->rc >= 0);
    n = sprintf(in, CH "0\r\nX: %*s\r\n\r\n", (int)(64 - 6), "");
    memset(in + n - 4 - 58, 't', 58);
    check_err_lim(in, (size_t)n, SIMUL_HTTP_E_HEADERS_TOO_LARGE, 431, &lim, CAP);
}

static void limit_header_count(void **state)
{
    (void)state;
    simul_http_limits lim = {.max_headers = 5};
    static const char five[] = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\nE: 4\r\n\r\n";
    static const char six[] = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\nE: 4\r\nF: 5\r\n\r\n";
    transcript *t = run_all(five, sizeof five - 1, &lim, CAP);
    assert_true(t->rc >= 0);
    check_err_lim(six, sizeof six - 1, SIMUL_HTTP_E_TOO_MANY_HEADERS, 431, &lim, CAP);
    /* The caller's array bounds it too. */
    t = run_all(five, sizeof five - 1, NULL, 5);
    assert_true(t->rc >= 0);
    check_err_lim(six, sizeof six - 1, SIMUL_HTTP_E_TOO_MANY_HEADERS, 431, NULL, 5);
    /* Trailers count with the head's fields. */
    static const char tr[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nC: 2\r\n"
                             "D: 3\r\n\r\n0\r\nE: 4\r\nF: 5\r\n\r\n";
    check_err_lim(tr, sizeof tr - 1, SIMUL_HTTP_E_TOO_MANY_HEADERS, 431, &lim, CAP);
    check_err_lim(tr, sizeof tr - 3, SIMUL_HTTP_E_TOO_MANY_HEADERS, 431, &lim, CAP);
}

static void limit_body(void **state)
{
    (void)state;
    simul_http_limits lim = {.max_body = 10};
    static const char at[] = P "Content-Length: 10\r\n\r\n0123456789";
    static const char past[] = P "Content-Length: 11\r\n\r\n0123456789a";
    transcript *t = run_all(at, sizeof at - 1, &lim, CAP);
    assert_true(t->rc >= 0);
    assert_non_null(strstr(t->text, "BODY 0123456789\nEND\n"));
    check_err_lim(past, sizeof past - 1, SIMUL_HTTP_E_BODY_TOO_LARGE, 413, &lim, CAP);
    /* A huge Content-Length is 413, not an overflow. */
    static const char huge[] = P "Content-Length: 99999999999999999999999\r\n\r\n";
    check_err_lim(huge, sizeof huge - 1, SIMUL_HTTP_E_BODY_TOO_LARGE, 413, NULL, CAP);
    /* Chunked: the total counts. */
    static const char cat[] = CH "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n";
    static const char cpast[] = CH "5\r\n01234\r\n6\r\n56789a\r\n0\r\n\r\n";
    t = run_all(cat, sizeof cat - 1, &lim, CAP);
    assert_true(t->rc >= 0);
    assert_non_null(strstr(t->text, "BODY 0123456789\nEND\n"));
    check_err_lim(cpast, sizeof cpast - 1, SIMUL_HTTP_E_BODY_TOO_LARGE, 413, &lim, CAP);
    /* No limit. */
    lim.max_body = UINT64_MAX;
    t = run_all(huge, sizeof huge - 1, &lim, CAP);
    assert_true(t->rc >= 0);
}

static void limit_chunk_line(void **state)
{
    (void)state;
    simul_http_limits lim = {.max_chunk_line = 16};
    /* "1;aaaaaaaaaaaaa\r\n" is 17 bytes, one less is 16. */
    static const char at[] = CH "1;aaaaaaaaaaaa\r\nx\r\n0\r\n\r\n";
    static const char past[] = CH "1;aaaaaaaaaaaaa\r\nx\r\n0\r\n\r\n";
    transcript *t = run_all(at, sizeof at - 1, &lim, CAP);
    assert_true(t->rc >= 0);
    check_err_lim(past, sizeof past - 1, SIMUL_HTTP_E_CHUNK_LINE_TOO_LONG, 400, &lim, CAP);
    check_err_lim(past, sizeof past - 10, SIMUL_HTTP_E_CHUNK_LINE_TOO_LONG, 400, &lim, CAP);
}

/* ---- the API around the parser ------------------------------------------------------------ */

static void errors_sticky(void **state)
{
    (void)state;
    simul_http_header h[4];
    simul_http_parser p;
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, NULL, h, 4), 0);
    size_t used = 7;
    assert_int_equal(simul_http_parser_feed(&p, "GET  / HTTP/1.1\r\n", 17, &used), -EPROTO);
    assert_int_equal(used, 0);
    assert_int_equal(simul_http_parser_feed(&p, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, &used),
                     -EPROTO);
    assert_int_equal(p.error, SIMUL_HTTP_E_REQUEST_LINE);
    /* Nothing yet: need more, nothing consumed. */
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, NULL, h, 4), 0);
    assert_int_equal(simul_http_parser_feed(&p, "", 0, &used), SIMUL_HTTP_NEED_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(simul_http_parser_feed(&p, "GET / HT", 8, &used), SIMUL_HTTP_NEED_MORE);
    assert_int_equal(used, 0);
}

static void error_table(void **state)
{
    (void)state;
    for (int e = 1; e < SIMUL_HTTP_E_COUNT_; e++) {
        int st = simul_http_error_status((simul_http_error)e);
        assert_true(st == 400 || st == 413 || st == 414 || st == 431 || st == 501 || st == 505);
        const char *name = simul_http_error_name((simul_http_error)e);
        const char *reason = simul_http_error_reason((simul_http_error)e);
        assert_true(strlen(name) > 0 && strlen(reason) > 0);
        for (int f = 1; f < e; f++) {
            assert_string_not_equal(name, simul_http_error_name((simul_http_error)f));
            assert_string_not_equal(reason, simul_http_error_reason((simul_http_error)f));
        }
    }
    assert_int_equal(simul_http_error_status(SIMUL_HTTP_OK), 0);
    assert_string_equal(simul_http_error_name((simul_http_error)999), "UNKNOWN");
}

static void init_checks(void **state)
{
    (void)state;
    simul_http_header h[4];
    simul_http_parser p;
    assert_int_equal(simul_http_parser_init(&p, (simul_http_mode)7, NULL, h, 4), -EINVAL);
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, NULL, NULL, 4), -EINVAL);
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, NULL, h, 0), -EINVAL);
    simul_http_limits lim = {.max_header_bytes = (1u << 30) + 1};
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, &lim, h, 4), -EINVAL);
    assert_int_equal(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, NULL, h, 4), 0);
    assert_int_equal(p.priv_.limits.max_request_line, SIMUL_HTTP_DEFAULT_MAX_REQUEST_LINE);
    assert_int_equal(p.priv_.limits.max_body, SIMUL_HTTP_DEFAULT_MAX_BODY);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_minimal),
        cmocka_unit_test(get_browser),
        cmocka_unit_test(header_values),
        cmocka_unit_test(target_forms),
        cmocka_unit_test(post_content_length),
        cmocka_unit_test(chunked_bodies),
        cmocka_unit_test(chunk_extensions),
        cmocka_unit_test(keep_alive_rules),
        cmocka_unit_test(upgrade_reported),
        cmocka_unit_test(pipelined),
        cmocka_unit_test(head_get_and_spans),
        cmocka_unit_test(reject_request_line),
        cmocka_unit_test(reject_target),
        cmocka_unit_test(reject_version),
        cmocka_unit_test(reject_bare_cr),
        cmocka_unit_test(reject_bare_lf),
        cmocka_unit_test(reject_obs_fold),
        cmocka_unit_test(reject_header_name),
        cmocka_unit_test(reject_header_value),
        cmocka_unit_test(reject_content_length),
        cmocka_unit_test(reject_transfer_encoding),
        cmocka_unit_test(reject_host),
        cmocka_unit_test(reject_chunk_size),
        cmocka_unit_test(reject_chunk_ext),
        cmocka_unit_test(limit_request_line),
        cmocka_unit_test(limit_header_bytes),
        cmocka_unit_test(limit_header_count),
        cmocka_unit_test(limit_body),
        cmocka_unit_test(limit_chunk_line),
        cmocka_unit_test(errors_sticky),
        cmocka_unit_test(error_table),
        cmocka_unit_test(init_checks),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_http_parser");
}
