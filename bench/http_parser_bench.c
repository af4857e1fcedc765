/* http_parser_bench.c — libsimul-http's request parser beside llhttp, on the same bytes in the
 * same run: a browser's GET, a POST with a Content-Length body and a chunked POST, pipelined in
 * one buffer, parsed whole, again and again; prints requests per second for each parser.
 *
 *   http_parser_bench <rounds>         (bench/run_http_parser.sh runs it, pinned to one core)
 *
 * Both do the work a server needs: every header's name and value located (ours: spans in its
 * table; llhttp: the on_header_field/on_header_value callbacks record pointer and length), the
 * body bytes handed out, the end of each message seen. Before timing, both must agree on the
 * counts of requests, fields and body bytes.
 *
 * The llhttp here is Debian bookworm's node-llhttp: llhttp 8.1.0 (early 2023), built into this
 * bench only, never into the library, with its defaults (no lenient flag). It predates llhttp's
 * later request-smuggling fixes: 8.1.1 (CVE-2023-30589: a lone CR taken as the end of a header
 * line, so "X-Abc: \rxTransfer-Encoding: chunked" became a second field), then 9.x (lenient
 * behaviours made opt-in flags, e.g. llhttp_set_lenient_optional_cr_before_lf: a LF without its
 * CR is an error unless asked for). Probed on this 8.1.0, these parse without error, and ours
 * rejects each:
 * "Foo:\rAContent-Length: 10", "X-Abc: \rxTransfer-Encoding: chunked", a request line ended by
 * a bare LF, "GET  / HTTP/1.1" (two spaces), an obs-fold line (" Content-Length: 5" folded into
 * the previous field). Does that matter for the comparison? Those fixes add checks on bytes the
 * parser already looks at; on these well-formed requests a newer llhttp does the same work or a
 * little more, so measuring against 8.1.0 does not flatter ours: ours does all of those checks
 * and more (Host, Content-Length lists, chunk extension grammar) in the figures below. */
#define BENCH_NAME "http_parser_bench"
#include "bench_util.h"

#include <string.h>

#include <simul/http.h>

#ifdef SIMUL_HAVE_LLHTTP
#include <llhttp.h>
#endif

static const char get_req[] =
    "GET /index.html?q=simul HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=8f3a2c1e9b7d4a60; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: none\r\n"
    "Sec-Fetch-User: ?1\r\n"
    "Priority: u=0, i\r\n"
    "\r\n";

static const char post_req[] = "POST /api/boards/12/moves HTTP/1.1\r\n"
                               "Host: www.example.com\r\n"
                               "User-Agent: curl/7.88.1\r\n"
                               "Accept: */*\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 48\r\n"
                               "\r\n"
                               "{\"board\": 12, \"move\": \"e2e4\", \"clock_ms\": 53120}";

static const char chunked_req[] = "POST /upload HTTP/1.1\r\n"
                                  "Host: www.example.com\r\n"
                                  "User-Agent: python-requests/2.28.1\r\n"
                                  "Accept: */*\r\n"
                                  "Transfer-Encoding: chunked\r\n"
                                  "Content-Type: application/octet-stream\r\n"
                                  "\r\n"
                                  "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                                  "10\r\n0123456789ABCDEF\r\n"
                                  "0\r\n\r\n";

#define COPIES 64 /* of the three requests, pipelined in one buffer */

typedef struct counts {
    uint64_t requests, fields, body;
} counts;

static counts ours(const char *buf, size_t len)
{
    static simul_http_header hdrs[SIMUL_HTTP_DEFAULT_MAX_HEADERS];
    simul_http_parser p;
    check(simul_http_parser_init(&p, SIMUL_HTTP_REQUEST, NULL, hdrs, SIMUL_HTTP_DEFAULT_MAX_HEADERS),
          "simul_http_parser_init");
    counts c = {0, 0, 0};
    size_t off = 0;
    for (;;) {
        size_t used;
        int ev = simul_http_parser_feed(&p, buf + off, len - off, &used);
        off += used;
        if (ev == SIMUL_HTTP_HEAD)
            c.fields += p.head.nheaders;
        else if (ev == SIMUL_HTTP_BODY)
            c.body += p.body_len;
        else if (ev == SIMUL_HTTP_END)
            c.requests++;
        else if (ev == SIMUL_HTTP_NEED_MORE)
            break;
        else
            die("our parser: %s", simul_http_error_reason(p.error));
    }
    return c;
}

#ifdef SIMUL_HAVE_LLHTTP
/* What a server collects from llhttp's callbacks: each field's name and value in place. */
typedef struct ll_state {
    counts c;
    struct {
        const char *p;
        size_t n;
    } name[SIMUL_HTTP_DEFAULT_MAX_HEADERS], value[SIMUL_HTTP_DEFAULT_MAX_HEADERS];
    const char *url;
    size_t url_len;
    unsigned nfields;
} ll_state;

static int ll_url(llhttp_t *p, const char *at, size_t n)
{
    ll_state *s = p->data;
    s->url = at;
    s->url_len = n;
    return 0;
}

static int ll_field(llhttp_t *p, const char *at, size_t n)
{
    ll_state *s = p->data;
    if (s->nfields >= SIMUL_HTTP_DEFAULT_MAX_HEADERS)
        return -1;
    s->name[s->nfields].p = at;
    s->name[s->nfields].n = n;
    return 0;
}

static int ll_value(llhttp_t *p, const char *at, size_t n)
{
    ll_state *s = p->data;
    s->value[s->nfields].p = at;
    s->value[s->nfields].n = n;
    return 0;
}

static int ll_value_done(llhttp_t *p)
{
    ll_state *s = p->data;
    s->nfields++;
    return 0;
}

static int ll_begin(llhttp_t *p)
{
    ll_state *s = p->data;
    s->nfields = 0;
    return 0;
}

static int ll_headers_done(llhttp_t *p)
{
    ll_state *s = p->data;
    s->c.fields += s->nfields;
    return 0;
}

static int ll_body(llhttp_t *p, const char *at, size_t n)
{
    (void)at;
    ll_state *s = p->data;
    s->c.body += n;
    return 0;
}

static int ll_done(llhttp_t *p)
{
    ll_state *s = p->data;
    s->c.requests++;
    return 0;
}

static counts theirs(const char *buf, size_t len)
{
    static llhttp_settings_t settings;
    static bool ready;
    if (!ready) {
        llhttp_settings_init(&settings);
        settings.on_message_begin = ll_begin;
        settings.on_url = ll_url;
        settings.on_header_field = ll_field;
        settings.on_header_value = ll_value;
        settings.on_header_value_complete = ll_value_done;
        settings.on_headers_complete = ll_headers_done;
        settings.on_body = ll_body;
        settings.on_message_complete = ll_done;
        ready = true;
    }
    static ll_state s;
    memset(&s.c, 0, sizeof s.c);
    llhttp_t p;
    llhttp_init(&p, HTTP_REQUEST, &settings);
    p.data = &s;
    llhttp_errno_t e = llhttp_execute(&p, buf, len);
    if (e != HPE_OK)
        die("llhttp: %s (%s)", llhttp_errno_name(e), llhttp_get_error_reason(&p));
    return s.c;
}
#endif

typedef counts (*parse_fn)(const char *, size_t);

/* Requests per second of one run of `rounds` passes of fn over buf. */
static double once(const char *key, parse_fn fn, const char *buf, size_t len, long rounds,
                   uint64_t per_pass)
{
    int64_t t0 = mono_ns();
    uint64_t sink = 0;
    for (long i = 0; i < rounds; i++)
        sink += fn(buf, len).requests;
    int64_t t1 = mono_ns();
    if (sink != per_pass * (uint64_t)rounds)
        die("%s: %llu requests parsed, expected %llu", key, (unsigned long long)sink,
            (unsigned long long)(per_pass * (uint64_t)rounds));
    return (double)sink / ((double)(t1 - t0) / 1e9);
}

/* Best of 5 runs each, the two parsers alternating run by run so that a change in the machine's
 * load hits both alike. */
static void measure(const char *name, const char *buf, size_t len, long rounds, uint64_t per_pass)
{
    char key_ours[64], key_ll[64];
    snprintf(key_ours, sizeof key_ours, "http_parser_%s_req_per_s", name);
    snprintf(key_ll, sizeof key_ll, "llhttp_%s_req_per_s", name);
    double a[5], b[5];
    for (int r = 0; r < 5; r++) {
#ifdef SIMUL_HAVE_LLHTTP
        b[r] = once(key_ll, theirs, buf, len, rounds, per_pass);
#endif
        a[r] = once(key_ours, ours, buf, len, rounds, per_pass);
    }
#ifdef SIMUL_HAVE_LLHTTP
    report_runs(key_ll, b, 5, 0, false);
#else
    (void)b;
#endif
    report_runs(key_ours, a, 5, 0, false);
}

int main(int argc, char **argv)
{
    long rounds = parse_count(argc > 1 ? argv[1] : NULL, 2000);
    static const struct {
        const char *name, *req;
        size_t len;
    } shapes[] = {
        {"get", get_req, sizeof get_req - 1},
        {"post", post_req, sizeof post_req - 1},
        {"chunked", chunked_req, sizeof chunked_req - 1},
    };
    /* Each shape alone, then the three interleaved: COPIES pipelined requests per buffer. */
    for (int s = 0; s <= 3; s++) {
        const char *name = s < 3 ? shapes[s].name : "mix";
        size_t len = 0;
        char *buf = malloc(3 * COPIES * sizeof get_req);
        if (!buf)
            die("out of memory");
        for (int i = 0; i < COPIES; i++) {
            int k = s < 3 ? s : i % 3;
            memcpy(buf + len, shapes[k].req, shapes[k].len);
            len += shapes[k].len;
        }
        counts a = ours(buf, len);
        if (a.requests != COPIES)
            die("%s: our parser saw %llu requests", name, (unsigned long long)a.requests);
        printf("http_parser_%s_bytes_per_request=%zu\n", name, len / COPIES);
#ifdef SIMUL_HAVE_LLHTTP
        counts b = theirs(buf, len);
        if (a.requests != b.requests || a.fields != b.fields || a.body != b.body)
            die("%s: the parsers disagree: requests %llu/%llu fields %llu/%llu body %llu/%llu",
                name, (unsigned long long)a.requests, (unsigned long long)b.requests,
                (unsigned long long)a.fields, (unsigned long long)b.fields,
                (unsigned long long)a.body, (unsigned long long)b.body);
#endif
        measure(name, buf, len, rounds, COPIES);
        free(buf);
    }
#ifdef SIMUL_HAVE_LLHTTP
    printf("llhttp_version=%d.%d.%d\n", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
           LLHTTP_VERSION_PATCH);
#endif
    return 0;
}
