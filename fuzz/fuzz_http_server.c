/* fuzz_http_server.c — whole connections of fuzzer bytes through libsimul-http's server, over an
 * in-memory bottom (simul_http_serve_stream): whatever a client sends — pipelined requests,
 * bodies read whole or streamed, JSON, urlencoded and multipart forms, PROXY headers, forwarding
 * headers — the server must end the connection with 0, never crash, hang, leak or write outside
 * HTTP's shape (every answer starts with "HTTP/1."). Input: [flags][chunk][bytes...]: the bytes
 * arrive in pieces of `chunk` (0: all at once), then EOF; flags bit 0: the listener expects a
 * PROXY header; bit 1: every peer is a trusted proxy; bit 2: small limits. Built as a libFuzzer
 * target with clang (-DSIMUL_BUILD_FUZZ=ON) and as a replay program for fuzz/corpus/http_server. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "simul.h"
#include <simul/http.h>

#define FUZZ_NAME "fuzz_http_server"
#include "fuzz_check.h"
#include "fuzz_feed.h"

/* ---- the app: one route per way of reading a request ---- */

static int h_text(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *q = simul_http_request_query(req, "q");
    const char *c = simul_http_request_cookie(req, "c");
    char out[256];
    snprintf(out, sizeof out, "%s|%s|%s|%s", q ? q : "-", c ? c : "-",
             simul_http_request_remote_addr(req), simul_http_request_scheme(req));
    return simul_http_response_text(res, 200, out);
}

static int h_body(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *d;
    long n = simul_http_request_body(req, &d);
    if (n < 0)
        return (int)n;
    return simul_http_response_body(res, d, (size_t)n);
}

static int h_stream(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    char buf[7];
    long n;
    while ((n = simul_http_request_read(req, buf, sizeof buf)) > 0) {
        int rc = simul_http_response_write(res, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return (int)n;
}

static int h_json(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    json_t *v;
    int rc = simul_http_request_json(req, &v);
    if (rc == -EBADMSG)
        return simul_http_response_error(res, 400);
    if (rc < 0)
        return rc;
    rc = simul_http_response_json(res, 200, v);
    json_decref(v);
    return rc;
}

static int h_form(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    simul_http_form_opts o = {.max_parts = 8, .max_field_bytes = 512, .max_file_bytes = 4096};
    int rc = simul_http_request_form_parse(req, &o);
    if (rc < 0)
        return simul_http_response_error(res, simul_http_form_status(rc) >= 500
                                                   ? 500 : simul_http_form_status(rc));
    const char *a = simul_http_request_form(req, "a");
    const simul_http_form_file *f = simul_http_request_form_file(req, "f");
    char out[128];
    snprintf(out, sizeof out, "%s %lld", a ? a : "-", f ? (long long)f->size : -1LL);
    return simul_http_response_text(res, 200, out);
}

static int h_sse(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req, (void)arg;
    int rc = simul_http_sse_send(res, "e", "1", 10, "a\nb");
    return rc ? rc : simul_http_sse_comment(res, "hb");
}

static int b_hook(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *k = simul_http_request_header(req, "X-Deny");
    if (k) {
        simul_http_response_text(res, 401, "no");
        return 1;
    }
    return 0;
}

static void a_hook(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req, (void)arg;
    simul_http_response_header(res, "X-Hooked", "1");
}

static simul_http_app *app;

static void setup(void)
{
    if (app)
        return;
    CHECK(simul_http_app_new(&app) == 0);
    CHECK(simul_http_route(app, "GET,POST", "/", h_text, NULL) == 0);
    CHECK(simul_http_route(app, "POST,PUT", "/body", h_body, NULL) == 0);
    CHECK(simul_http_route(app, "POST", "/stream", h_stream, NULL) == 0);
    CHECK(simul_http_route(app, "POST", "/json", h_json, NULL) == 0);
    CHECK(simul_http_route(app, "POST", "/form", h_form, NULL) == 0);
    CHECK(simul_http_route(app, "GET", "/sse", h_sse, NULL) == 0);
    CHECK(simul_http_route(app, "GET", "/p/<int:id>/<path:rest>", h_text, NULL) == 0);
    CHECK(simul_http_before_request(app, b_hook, NULL) == 0);
    CHECK(simul_http_after_request(app, a_hook, NULL) == 0);
}

typedef struct run {
    feed *f;
    simul_http_server_opts o;
} run;

static int one(void *arg)
{
    run *r = arg;
    simul_stream *s;
    CHECK(simul_stream_from_bottom(&feed_ops, r->f, &s) == 0);
    int rc = simul_http_serve_stream(app, s, &r->o);
    CHECK(rc == 0);
    simul_stream_abort(s);
    CHECK(simul_stream_close(s) == 0);
    CHECK(r->f->pos <= r->f->len);
    /* whatever was written is an HTTP answer (or nothing: a PROXY header refused, no answer) */
    CHECK(r->f->written == 0 || memcmp(r->f->first, "HTTP/1.", r->f->written < 7 ? r->f->written : 7) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 2)
        return 0;
    feed f = {.data = data + 2, .len = size - 2, .chunk = data[1]};
    run r = {.f = &f};
    r.o.proxy_protocol = data[0] & 1;
    r.o.trusted_proxies = (data[0] & 2) ? "0.0.0.0/0, ::/0" : NULL;
    if (data[0] & 4) {
        r.o.limits.max_request_line = 64;
        r.o.limits.max_header_bytes = 256;
        r.o.limits.max_headers = 8;
        r.o.limits.max_body = 300;
        r.o.max_requests = 3;
    }
    r.o.stack_size = 256 * 1024;
    CHECK(simul_run(one, &r) == 0);
    return 0;
}
