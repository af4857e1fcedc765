/* test_http_server.c — libsimul-http's server over real loopback sockets: routing (typed
 * parameters, groups, 404, 405 with Allow, HEAD, OPTIONS), the request (query, headers, cookies,
 * bodies whole, streamed, chunked, JSON, 100-continue), the response (streaming, SSE, cookies,
 * redirects), every limit with its status, keep-alive and pipelining, timeouts, clients that
 * vanish, a disconnect that cancels its handler, graceful shutdown, and 10,000 requests on one
 * connection. The clients are plain blocking sockets on a pool thread (test_http_server_helpers.h);
 * the test's task serves meanwhile. Nothing waits on time: timeouts only bound waits. */
#include "test_main_helpers.h"

#include <jansson.h>
#include <malloc.h>
#include <simul/http.h>

#include "test_http_server_helpers.h"

/* ---- the app under test ------------------------------------------------------------------ */

typedef struct state {
    simul_event *started, *release;
    int cleanups;    /* handlers that saw their client leave and cleaned up */
    int last_error;  /* what the streaming handler's failing call returned */
} state;
static state g;

static int h_board(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    int64_t id = 0;
    char out[128];
    if (simul_http_request_param_int(req, "id", &id) < 0) {
        return -EINVAL;
    }
    snprintf(out, sizeof out, "board %lld", (long long)id);
    return simul_http_response_text(res, 200, out);
}

static int h_echo_param(simul_http_request *req, simul_http_response *res, void *arg)
{
    return simul_http_response_text(res, 200, simul_http_request_param(req, arg));
}

static int h_query(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *v[8];
    size_t n = simul_http_request_query_all(req, "a", v, 8);
    char out[512] = "";
    for (size_t i = 0; i < n && i < 8; i++) {
        strcat(out, "[");
        strcat(out, v[i]);
        strcat(out, "]");
    }
    const char *b = simul_http_request_query(req, "b");
    strcat(out, b ? b : "(none)");
    return simul_http_response_text(res, 200, out);
}

static int h_headers(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    char out[512];
    const char *x = simul_http_request_header(req, "x-TEST");
    const char *c1 = simul_http_request_cookie(req, "sid");
    const char *c2 = simul_http_request_cookie(req, "theme");
    snprintf(out, sizeof out, "%s|%s|%s|%s", x ? x : "-", c1 ? c1 : "-", c2 ? c2 : "-",
             simul_http_request_method(req));
    simul_http_cookie_opts co = {.path = "/", .max_age = 60, .http_only = true,
                                 .same_site = "Lax"};
    int rc = simul_http_response_set_cookie(res, "sid", "new", &co);
    if (rc == 0) {
        rc = simul_http_response_set_cookie(res, "bad name", "x", NULL) == -EINVAL ? 0 : -1;
    }
    /* a line break in an attribute would end the field and start another */
    simul_http_cookie_opts crlf_path = {.path = "/\r\nX-Forged: 1"}, lf_domain = {.domain = "a\nb"};
    if (rc == 0 && (simul_http_response_set_cookie(res, "a", "b", &crlf_path) != -EINVAL ||
                    simul_http_response_set_cookie(res, "a", "b", &lf_domain) != -EINVAL)) {
        rc = -1;
    }
    return rc ? rc : simul_http_response_text(res, 200, out);
}

/* Bad fields are refused one by one (and leave nothing behind); good ones are sent in order,
 * a long one included (the head outgrows its first buffer). */
static int h_fields(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    static const char *bad[][2] = {
        {"Content-Length", "1"}, {"TRANSFER-encoding", "chunked"}, {"connection", "close"},
        {"Bad Name", "x"},       {"Bad:Name", "x"},                {"", "x"},
        {"X-Cr", "a\rb"},        {"X-Lf", "a\nb"},                 {"X-Del\x7f", "x"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (simul_http_response_header(res, bad[i][0], bad[i][1]) != -EINVAL) {
            return simul_http_response_text(res, 500, bad[i][0]);
        }
    }
    static char long_value[3001];
    memset(long_value, 'v', sizeof long_value - 1);
    int rc = simul_http_response_header(res, "X-First", "1");
    rc = rc ? rc : simul_http_response_header(res, "X-Long", long_value);
    rc = rc ? rc : simul_http_response_header(res, "Content-Lengthy", ""); /* not reserved */
    return rc ? rc : simul_http_response_text(res, 201, "fields");
}

static int h_redirect(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    return simul_http_response_redirect(res, 302, "/there");
}

/* GET /status/<code>: that status, a one-byte body. */
static int h_status(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    int64_t code = 0;
    int rc = simul_http_request_param_int(req, "code", &code);
    return rc < 0 ? rc : simul_http_response_text(res, (int)code, "s");
}

static int h_body(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *data;
    long n = simul_http_request_body(req, &data);
    if (n < 0) {
        return (int)n;
    }
    simul_http_response_header(res, "Content-Type", "application/octet-stream");
    return simul_http_response_body(res, data, (size_t)n);
}

/* Reads the body as a stream, 3 bytes at a time, and answers its length and its bytes. */
static int h_stream_in(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    char all[4096], piece[3];
    size_t len = 0;
    for (;;) {
        long n = simul_http_request_read(req, piece, sizeof piece);
        if (n < 0) {
            return (int)n;
        }
        if (n == 0) {
            break;
        }
        if (len + (size_t)n < sizeof all) {
            memcpy(all + len, piece, (size_t)n);
        }
        len += (size_t)n;
    }
    all[len < sizeof all ? len : sizeof all - 1] = '\0';
    return simul_http_response_text(res, 200, all);
}

static int h_json(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    json_t *in;
    int rc = simul_http_request_json(req, &in);
    if (rc == -EBADMSG) {
        return simul_http_response_text(res, 400, "not json");
    }
    if (rc < 0) {
        return rc;
    }
    json_t *out = json_pack("{s:O,s:i}", "got", in, "n", 7);
    json_decref(in);
    rc = simul_http_response_json(res, 201, out);
    json_decref(out);
    return rc;
}

static int h_chunks(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    simul_http_response_header(res, "Content-Type", "text/plain");
    for (int i = 0; i < 5; i++) {
        char piece[16];
        snprintf(piece, sizeof piece, "part%d;", i);
        int rc = simul_http_response_write(res, piece, strlen(piece));
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int h_sse(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    int rc = simul_http_sse_start(res);
    /* a line break in a field or a comment would forge another field: refused, nothing sent */
    if (rc == 0 && (simul_http_sse_send(res, "mo\rve", NULL, -1, "x") != -EINVAL ||
                    simul_http_sse_send(res, NULL, "1\n", -1, "x") != -EINVAL ||
                    simul_http_sse_comment(res, "a\r\ndata: forged") != -EINVAL)) {
        rc = -1;
    }
    rc = rc ? rc : simul_http_sse_send(res, "move", "1", 3000, "e4\ne5");
    rc = rc ? rc : simul_http_sse_comment(res, "heartbeat");
    rc = rc ? rc : simul_http_sse_send(res, NULL, NULL, -1, "done");
    return rc;
}

/* Streams forever (or waits forever after the head): only a departure or a cancel ends it. */
static int h_forever(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    bool write = arg != NULL;
    int rc = simul_http_response_write(res, "start\n", 6);
    if (g.started) {
        simul_event_set(g.started);
    }
    static char big[16384];
    memset(big, 'x', sizeof big);
    while (rc == 0) {
        rc = write ? simul_http_response_write(res, big, sizeof big) : simul_sleep(INFINITY);
    }
    g.last_error = rc;
    g.cleanups++; /* the clean-up a real handler would do */
    return rc;
}

/* Waits for the test to release it (an in-flight request during a shutdown). */
static int h_slow(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    simul_event_set(g.started);
    int rc = simul_event_wait(g.release);
    if (rc < 0) {
        g.cleanups++;
        return rc;
    }
    return simul_http_response_text(res, 200, "finished");
}

/* A request is a task context: a deadline scope bounds the handler's own waits. */
static int h_deadline(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    simul_scope sc;
    simul_scope_timeout(&sc, 0.01);
    int rc = simul_sleep(INFINITY);
    simul_scope_end(&sc);
    return rc == -ETIMEDOUT ? simul_http_response_text(res, 504, "too slow") : -EIO;
}

static simul_http_app *make_app(void)
{
    simul_http_app *app;
    simul_http_group *api, *v1;
    assert_int_equal(simul_http_app_new(&app), 0);
    assert_int_equal(simul_http_route(app, "GET", "/", h_text, "root"), 0);
    assert_int_equal(simul_http_route(app, "GET", "/boards/<int:id>", h_board, NULL), 0);
    assert_int_equal(simul_http_route(app, "DELETE", "/boards/<int:id>", h_text, "deleted"), 0);
    assert_int_equal(simul_http_route(app, "GET", "/files/<path:rest>", h_echo_param, "rest"), 0);
    assert_int_equal(simul_http_route(app, "GET", "/hello/<name>", h_echo_param, "name"), 0);
    assert_int_equal(simul_http_route(app, "GET", "/query", h_query, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET,POST", "/headers", h_headers, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/redirect", h_redirect, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/status/<int:code>", h_status, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/fields", h_fields, NULL), 0);
    assert_int_equal(simul_http_route(app, "POST, PUT", "/body", h_body, NULL), 0);
    assert_int_equal(simul_http_route(app, "POST", "/stream-in", h_stream_in, NULL), 0);
    assert_int_equal(simul_http_route(app, "POST", "/json", h_json, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/chunks", h_chunks, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/sse", h_sse, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/fail", h_fail, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/forever-write", h_forever, "w"), 0);
    assert_int_equal(simul_http_route(app, "GET", "/forever-wait", h_forever, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/slow", h_slow, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/deadline", h_deadline, NULL), 0);
    assert_int_equal(simul_http_group_new(app, NULL, "/api", &api), 0);
    assert_int_equal(simul_http_group_new(app, api, "/v1/", &v1), 0);
    assert_int_equal(simul_http_group_route(api, "GET", "/", h_text, "api root"), 0);
    assert_int_equal(simul_http_group_route(v1, "GET", "/items/<int:id>", h_board, NULL), 0);
    /* bad patterns */
    assert_int_equal(simul_http_route(app, "GET", "nope", h_text, NULL), -EINVAL);
    assert_int_equal(simul_http_route(app, "GET", "/a/<float:x>", h_text, NULL), -EINVAL);
    assert_int_equal(simul_http_route(app, "GET", "/a/<path:x>/b", h_text, NULL), -EINVAL);
    assert_int_equal(simul_http_route(app, "GET,", "/a", h_text, NULL), -EINVAL);
    assert_int_equal(simul_http_route(app, "", "/a", h_text, NULL), -EINVAL);
    return app;
}

/* ---- a server per test, a client on a pool thread ---------------------------------------- */

typedef struct fixture {
    simul_http_app *app;
    simul_http_server *srv;
    int port;
} fixture;

static void up(fixture *f, const simul_http_server_opts *opts)
{
    memset(&g, 0, sizeof g);
    assert_int_equal(simul_event_new(&g.started), 0);
    assert_int_equal(simul_event_new(&g.release), 0);
    f->app = make_app();
    assert_int_equal(simul_http_serve(f->app, "127.0.0.1", "0", opts, &f->srv), 0);
    f->port = simul_http_server_port(f->srv);
    assert_true(f->port > 0);
}

static void down(fixture *f)
{
    assert_int_equal(simul_http_server_shutdown(f->srv, 10), 0);
    assert_int_equal(simul_http_server_connections(f->srv), 0);
    simul_http_server_free(f->srv);
    simul_http_app_free(f->app);
    simul_event_free(g.started);
    simul_event_free(g.release);
}

/* Runs fn(port) on a pool thread; returns its result (0 = every check passed). */
/* Waits (a bounded wait on state) until pred holds. */
static void wait_state(bool (*pred)(fixture *), fixture *f)
{
    for (int i = 0; i < 20000 && !pred(f); i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_true(pred(f));
}

static bool no_conns(fixture *f)
{
    return simul_http_server_connections(f->srv) == 0;
}

static bool one_cleanup(fixture *f)
{
    (void)f;
    return g.cleanups == 1;
}

/* Asserts one exchange: status, and body when want_body is not NULL. */
static int expect(int port, const char *req, int status, const char *want_body, bool head)
{
    response r;
    int rc = cl_once(port, req, &r, head, NULL);
    if (rc < 0) {
        fprintf(stderr, "request failed: %s\n%s\n", strerror(-rc), req);
        resp_free(&r);
        return __LINE__;
    }
    if (r.status != status || (want_body && strcmp(r.body, want_body) != 0)) {
        fprintf(stderr, "for\n%s\ngot %d [%s]\n%s\nwanted %d [%s]\n", req, r.status, r.body,
                r.head, status, want_body ? want_body : "*");
        resp_free(&r);
        return __LINE__;
    }
    resp_free(&r);
    return 0;
}

#define EXPECT(req, status, body) CHECK(expect(f->port, req, status, body, false) == 0)
#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* ---- routing ----------------------------------------------------------------------------- */

static int c_routing(void *arg)
{
    fixture *f = arg;
    EXPECT(GET("/"), 200, "root");
    EXPECT(GET("/boards/42"), 200, "board 42");
    EXPECT(GET("/boards/-7"), 200, "board -7");
    EXPECT(GET("/boards/abc"), 404, NULL);
    EXPECT(GET("/boards/42/x"), 404, NULL);
    EXPECT(GET("/boards/"), 404, NULL);
    EXPECT(GET("/files/a/b/c.txt"), 200, "a/b/c.txt");
    EXPECT(GET("/files/"), 404, NULL);
    EXPECT(GET("/hello/J%C3%A9r%C3%B4me%20X"), 200, "J\xc3\xa9r\xc3\xb4me X");
    EXPECT(GET("/hello/a%2Fb"), 200, "a/b");
    EXPECT(GET("/hello/bad%zz"), 400, NULL);
    EXPECT(GET("/api"), 200, "api root");
    EXPECT(GET("/api/v1/items/9"), 200, "board 9");
    EXPECT(GET("/api/v1/items/x"), 404, NULL);
    EXPECT(GET("/nowhere"), 404, "Not Found\n");
    EXPECT("DELETE /boards/3 HTTP/1.1\r\nHost: t\r\n\r\n", 200, "deleted");
    EXPECT("PUT /headers HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 405, NULL);
    /* 405 and OPTIONS carry Allow: every method on the path, HEAD with GET, OPTIONS */
    response r;
    CHECK(cl_once(f->port, "PATCH /boards/1 HTTP/1.1\r\nHost: t\r\n\r\n", &r, false, NULL) == 0);
    char v[128];
    CHECK(r.status == 405);
    CHECK(hdr_get(r.head, "Allow", v, sizeof v) && strcmp(v, "GET, HEAD, DELETE, OPTIONS") == 0);
    resp_free(&r);
    CHECK(cl_once(f->port, "OPTIONS /headers HTTP/1.1\r\nHost: t\r\n\r\n", &r, false, NULL) == 0);
    CHECK(r.status == 204);
    CHECK(hdr_get(r.head, "Allow", v, sizeof v) && strcmp(v, "GET, HEAD, POST, OPTIONS") == 0);
    resp_free(&r);
    CHECK(cl_once(f->port, "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", &r, false, NULL) == 0);
    CHECK(r.status == 204);
    resp_free(&r);
    /* HEAD: GET's head (its Content-Length), no body: the next response follows at once */
    client *c = malloc(sizeof *c);
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, "HEAD /boards/5 HTTP/1.1\r\nHost: t\r\n\r\n" GET("/")) == 0);
    CHECK(cl_response(c, &r, true) == 0);
    CHECK(r.status == 200 && hdr_get(r.head, "Content-Length", v, sizeof v) && strcmp(v, "7") == 0);
    resp_free(&r);
    CHECK(cl_response(c, &r, false) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "root") == 0);
    resp_free(&r);
    /* HEAD of a streamed body sends no chunk either */
    CHECK(cl_send(c, "HEAD /chunks HTTP/1.1\r\nHost: t\r\n\r\n" GET("/")) == 0);
    CHECK(cl_response(c, &r, true) == 0);
    CHECK(r.status == 200);
    resp_free(&r);
    CHECK(cl_response(c, &r, false) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "root") == 0);
    resp_free(&r);
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(routing)
{
    (void)arg;
    fixture f;
    up(&f, NULL);
    assert_int_equal(client_run(c_routing, &f), 0);
    down(&f);
    return 0;
}

/* ---- the request ------------------------------------------------------------------------- */

static int c_request(void *arg)
{
    fixture *f = arg;
    EXPECT(GET("/query?a=1&b=x+y&a=%41%42&a="), 200, "[1][AB][]x y");
    EXPECT(GET("/query"), 200, "(none)");
    EXPECT(GET("/query?a=%4"), 400, NULL);
    EXPECT(GET("/query?a=%G1"), 400, NULL);
    EXPECT("GET /headers HTTP/1.1\r\nHost: t\r\nX-Test: yes\r\nCookie: theme=dark; sid=\"abc\"\r\n\r\n",
           200, "yes|abc|dark|GET");
    response r;
    char v[256];
    CHECK(cl_once(f->port, GET("/headers"), &r, false, NULL) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "-|-|-|GET") == 0);
    CHECK(hdr_get(r.head, "Set-Cookie", v, sizeof v) &&
          strcmp(v, "sid=new; Path=/; Max-Age=60; HttpOnly; SameSite=Lax") == 0);
    resp_free(&r);
    /* the head byte for byte (the Date's value aside), in 1.1 and in 1.0 with keep-alive */
    CHECK(cl_once(f->port, GET("/fields"), &r, false, NULL) == 0);
    char want[4096], date[64], vs[3001];
    memset(vs, 'v', 3000);
    vs[3000] = '\0';
    CHECK(r.status == 201 && strcmp(r.body, "fields") == 0);
    CHECK(hdr_get(r.head, "Date", date, sizeof date) && strlen(date) == 29 &&
          strcmp(date + 25, " GMT") == 0);
    snprintf(want, sizeof want,
             "HTTP/1.1 201 Created\r\nDate: %s\r\nX-First: 1\r\nX-Long: %s\r\n"
             "Content-Lengthy: \r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 6\r\n\r\n",
             date, vs);
    CHECK(strcmp(r.head, want) == 0);
    resp_free(&r);
    CHECK(cl_once(f->port, "GET /fields HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r, false,
                  NULL) == 0);
    CHECK(hdr_get(r.head, "Date", date, sizeof date));
    snprintf(want, sizeof want,
             "HTTP/1.0 201 Created\r\nDate: %s\r\nX-First: 1\r\nX-Long: %s\r\n"
             "Content-Lengthy: \r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 6\r\n"
             "Connection: keep-alive\r\n\r\n",
             date, vs);
    CHECK(strcmp(r.head, want) == 0 && strcmp(r.body, "fields") == 0);
    resp_free(&r);
    /* the status line's reason phrase (its length from the table), the shortest, the longest,
     * one the table does not have; the Date's 29 bytes right after it */
    static const char *const lines[] = {
        "/status/200 HTTP/1.1 200 OK\r\nDate: ",
        "/status/431 HTTP/1.1 431 Request Header Fields Too Large\r\nDate: ",
        "/status/505 HTTP/1.1 505 HTTP Version Not Supported\r\nDate: ",
        "/status/299 HTTP/1.1 299 Unknown\r\nDate: ",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        const char *line = strchr(lines[i], ' ') + 1;
        char req[96];
        snprintf(req, sizeof req, "GET %.*s HTTP/1.1\r\nHost: t\r\n\r\n",
                 (int)(line - 1 - lines[i]), lines[i]);
        CHECK(cl_once(f->port, req, &r, false, NULL) == 0);
        size_t n = strlen(line);
        CHECK(strncmp(r.head, line, n) == 0 && strncmp(r.head + n + 29, "\r\n", 2) == 0 &&
              strcmp(r.body, "s") == 0);
        resp_free(&r);
    }
    CHECK(cl_once(f->port, GET("/redirect"), &r, false, NULL) == 0);
    CHECK(r.status == 302 && hdr_get(r.head, "Location", v, sizeof v) && strcmp(v, "/there") == 0);
    resp_free(&r);
    /* bodies: Content-Length, chunked, streamed in small reads, JSON */
    EXPECT("POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world", 200,
           "hello world");
    EXPECT("PUT /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", 200, "hello world");
    EXPECT("POST /stream-in HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789", 200,
           "0123456789");
    EXPECT("POST /stream-in HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
           "4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n", 200, "abcdefg");
    EXPECT("POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n{\"k\":[1]}", 201,
           "{\"got\":{\"k\":[1]},\"n\":7}");
    EXPECT("POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n{x:", 400, "not json");
    /* a handler that fails before answering: 500 */
    EXPECT(GET("/fail"), 500, NULL);
    /* a handler's own deadline: its wait returns -ETIMEDOUT, it answers 504 */
    EXPECT(GET("/deadline"), 504, "too slow");
    return 0;
}

SIMUL_TASK_TEST(request_parts)
{
    (void)arg;
    fixture f;
    up(&f, NULL);
    assert_int_equal(client_run(c_request, &f), 0);
    down(&f);
    return 0;
}

/* Expect: 100-continue: the server says 100 when the handler reads, then answers. */
static int c_continue(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    response r;
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, "POST /body HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                     "Content-Length: 4\r\n\r\n") == 0);
    CHECK(cl_response(c, &r, false) == 0);
    CHECK(r.status == 100);
    resp_free(&r);
    CHECK(cl_send(c, "ping") == 0);
    CHECK(cl_response(c, &r, false) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "ping") == 0);
    resp_free(&r);
    /* A route that never reads the body: no 100, the answer, and the connection closes
     * (the client may not send the body at all). */
    CHECK(cl_send(c, "POST /headers HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                     "Content-Length: 4\r\n\r\n") == 0);
    CHECK(cl_response(c, &r, false) == 0);
    CHECK(r.status == 200);
    char v[64];
    CHECK(hdr_get(r.head, "Connection", v, sizeof v) && strcmp(v, "close") == 0);
    resp_free(&r);
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(expect_continue)
{
    (void)arg;
    fixture f;
    up(&f, NULL);
    assert_int_equal(client_run(c_continue, &f), 0);
    down(&f);
    return 0;
}

/* ---- the response: streaming and SSE ----------------------------------------------------- */

static int c_streaming(void *arg)
{
    fixture *f = arg;
    response r;
    char v[64];
    CHECK(cl_once(f->port, GET("/chunks"), &r, false, NULL) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "part0;part1;part2;part3;part4;") == 0);
    CHECK(hdr_get(r.head, "Transfer-Encoding", v, sizeof v) && strcmp(v, "chunked") == 0);
    resp_free(&r);
    /* HTTP/1.0: no chunks, the body ends with the connection */
    bool closed;
    CHECK(cl_once(f->port, "GET /chunks HTTP/1.0\r\n\r\n", &r, false, &closed) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "part0;part1;part2;part3;part4;") == 0 && closed);
    resp_free(&r);
    CHECK(cl_once(f->port, GET("/sse"), &r, false, NULL) == 0);
    CHECK(r.status == 200);
    CHECK(hdr_get(r.head, "Content-Type", v, sizeof v) && strcmp(v, "text/event-stream") == 0);
    CHECK(hdr_get(r.head, "X-Accel-Buffering", v, sizeof v) && strcmp(v, "no") == 0);
    CHECK(hdr_get(r.head, "Cache-Control", v, sizeof v) && strcmp(v, "no-cache") == 0);
    CHECK(strcmp(r.body, "event: move\nid: 1\nretry: 3000\ndata: e4\ndata: e5\n\n"
                         ": heartbeat\n\ndata: done\n\n") == 0);
    resp_free(&r);
    return 0;
}

SIMUL_TASK_TEST(streaming_and_sse)
{
    (void)arg;
    fixture f;
    up(&f, NULL);
    assert_int_equal(client_run(c_streaming, &f), 0);
    down(&f);
    return 0;
}

/* ---- limits and errors: each status, then the close -------------------------------------- */

static int expect_close(int port, const char *req, int status)
{
    response r;
    bool closed = false;
    int rc = cl_once(port, req, &r, false, &closed);
    int st = r.status;
    resp_free(&r);
    if (rc < 0 || st != status || !closed) {
        fprintf(stderr, "rc %d status %d closed %d for %.60s\n", rc, st, closed, req);
        return __LINE__;
    }
    return 0;
}

#define EXPECT_CLOSE(req, status) CHECK(expect_close(f->port, req, status) == 0)

static int c_limits(void *arg)
{
    fixture *f = arg;
    static char big[4096];
    /* 414: the request line over max_request_line (256 here) */
    snprintf(big, sizeof big, "GET /%0300d HTTP/1.1\r\nHost: t\r\n\r\n", 0);
    EXPECT_CLOSE(big, 414);
    /* 431: header bytes (512 here), header count (8 here) */
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %0600d\r\n\r\n", 0);
    EXPECT_CLOSE(big, 431);
    EXPECT_CLOSE("GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n"
                 "F: 1\r\nG: 1\r\nH: 1\r\nI: 1\r\n\r\n", 431);
    /* 413: Content-Length over max_body (64 here), and a chunked body that grows over it */
    EXPECT_CLOSE("POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 65\r\n\r\n", 413);
    snprintf(big, sizeof big, "POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "40\r\n%064d\r\n1\r\nx\r\n0\r\n\r\n", 0);
    EXPECT_CLOSE(big, 413);
    /* 400: malformed, smuggling shapes; 501; 505 */
    EXPECT_CLOSE("GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    EXPECT_CLOSE("GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400);
    EXPECT_CLOSE("GET / HTTP/1.1\r\n\r\n", 400);
    EXPECT_CLOSE("POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: "
                 "chunked\r\n\r\n0\r\n\r\n", 400);
    EXPECT_CLOSE("POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
    EXPECT_CLOSE("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);
    EXPECT_CLOSE("GET http://t/ HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    /* a bad chunk size after the handler began reading: 400 and the close */
    EXPECT_CLOSE("POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "zz\r\n", 400);
    /* an error after a good request on the same connection: the good answer comes first */
    client *c = malloc(sizeof *c);
    response r;
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, GET("/") "GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n" GET("/")) == 0);
    CHECK(cl_response(c, &r, false) == 0 && r.status == 200);
    resp_free(&r);
    CHECK(cl_response(c, &r, false) == 0 && r.status == 400);
    resp_free(&r);
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(limits_and_errors)
{
    (void)arg;
    fixture f;
    simul_http_server_opts o = {.limits = {.max_request_line = 256, .max_header_bytes = 512,
                                           .max_headers = 8, .max_body = 64}};
    up(&f, &o);
    assert_int_equal(client_run(c_limits, &f), 0);
    down(&f);
    return 0;
}

/* ---- connections ------------------------------------------------------------------------- */

static int c_keepalive(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    response r;
    char v[64];
    CHECK(cl_connect(c, f->port) == 0);
    /* pipelined: five requests in one write, the answers in order */
    CHECK(cl_send(c, GET("/boards/1") GET("/hello/two") "POST /body HTTP/1.1\r\nHost: t\r\n"
                     "Content-Length: 5\r\n\r\nthree" GET("/nowhere") GET("/boards/5")) == 0);
    const char *want[] = {"board 1", "two", "three", "Not Found\n", "board 5"};
    for (int i = 0; i < 5; i++) {
        CHECK(cl_response(c, &r, false) == 0);
        CHECK(strcmp(r.body, want[i]) == 0);
        CHECK(!hdr_get(r.head, "Connection", v, sizeof v));
        resp_free(&r);
    }
    /* a request split byte by byte */
    const char *req = "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsplit!";
    for (const char *p = req; *p; p++) {
        CHECK(cl_sendn(c, p, 1) == 0);
    }
    CHECK(cl_response(c, &r, false) == 0 && strcmp(r.body, "split!") == 0);
    resp_free(&r);
    /* Connection: close ends it after the answer */
    CHECK(cl_send(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") == 0);
    CHECK(cl_response(c, &r, false) == 0 && strcmp(r.body, "root") == 0);
    CHECK(hdr_get(r.head, "Connection", v, sizeof v) && strcmp(v, "close") == 0);
    resp_free(&r);
    CHECK(cl_closed(c));
    close(c->fd);
    /* HTTP/1.0 with keep-alive stays open; without it closes */
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == 0);
    CHECK(cl_response(c, &r, false) == 0 && strcmp(r.body, "root") == 0);
    CHECK(hdr_get(r.head, "Connection", v, sizeof v) && strcmp(v, "keep-alive") == 0);
    CHECK(strncmp(r.head, "HTTP/1.0 200", 12) == 0);
    resp_free(&r);
    CHECK(cl_send(c, "GET / HTTP/1.0\r\n\r\n") == 0);
    CHECK(cl_response(c, &r, false) == 0 && strcmp(r.body, "root") == 0);
    resp_free(&r);
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(keepalive_pipelining)
{
    (void)arg;
    fixture f;
    up(&f, NULL);
    assert_int_equal(client_run(c_keepalive, &f), 0);
    down(&f);
    return 0;
}

static int c_max_requests(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    response r;
    char v[64];
    /* the requests-per-connection limit (3 here): the third answer says close */
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, GET("/") GET("/") GET("/") GET("/")) == 0);
    for (int i = 0; i < 3; i++) {
        CHECK(cl_response(c, &r, false) == 0 && strcmp(r.body, "root") == 0);
        CHECK((hdr_get(r.head, "Connection", v, sizeof v) != NULL) == (i == 2));
        resp_free(&r);
    }
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(requests_per_connection)
{
    (void)arg;
    fixture f;
    simul_http_server_opts o = {.max_requests = 3};
    up(&f, &o);
    assert_int_equal(client_run(c_max_requests, &f), 0);
    down(&f);
    return 0;
}

/* A slowloris (a head that never ends) gets 408 and the close; a body that stops gets 408; an
 * idle keep-alive connection is closed. The timeouts are short so the waits end soon; what is
 * checked is the state (the answer, the close), not when. */
static int c_timeouts(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    response r;
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ") == 0);
    CHECK(cl_response(c, &r, false) == 0 && r.status == 408);
    resp_free(&r);
    CHECK(cl_closed(c));
    close(c->fd);
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc") == 0);
    CHECK(cl_response(c, &r, false) == 0 && r.status == 408);
    resp_free(&r);
    CHECK(cl_closed(c));
    close(c->fd);
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, GET("/")) == 0);
    CHECK(cl_response(c, &r, false) == 0 && r.status == 200);
    resp_free(&r);
    CHECK(cl_closed(c)); /* the keep-alive timeout */
    close(c->fd);
    /* a connection that sends nothing at all is closed too, silently */
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(timeouts)
{
    (void)arg;
    fixture f;
    simul_http_server_opts o = {.header_timeout = 0.2, .body_timeout = 0.2,
                                .keepalive_timeout = 0.2};
    up(&f, &o);
    assert_int_equal(client_run(c_timeouts, &f), 0);
    down(&f);
    return 0;
}

/* ---- clients that vanish ----------------------------------------------------------------- */

static int c_vanish_mid_request(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, "GET / HTTP/1.1\r\nHost") == 0);
    close(c->fd);
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab") == 0);
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(client_vanishes_mid_request)
{
    (void)arg;
    fixture f;
    up(&f, NULL);
    assert_int_equal(client_run(c_vanish_mid_request, &f), 0);
    wait_state(no_conns, &f);
    down(&f);
    return 0;
}

/* Reads the streaming head and a little of the body, then leaves (a reset: unread data). */
static int c_leave_after_start(void *arg)
{
    fixture *f = arg;
    const char *path = g.last_error == 1 ? GET("/forever-write") : GET("/forever-wait");
    client *c = malloc(sizeof *c);
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, path) == 0);
    while (!memmem(c->buf, c->len, "start\n", 6)) {
        CHECK(cl_more(c) > 0);
    }
    close(c->fd);
    free(c);
    return 0;
}

/* A handler that streams forever: the client leaves, its next write fails, it cleans up. */
SIMUL_TASK_TEST(client_vanishes_mid_response)
{
    (void)arg;
    fixture f;
    up(&f, NULL);
    g.last_error = 1; /* the client takes /forever-write */
    assert_int_equal(client_run(c_leave_after_start, &f), 0);
    wait_state(one_cleanup, &f);
    assert_true(g.last_error == -ECANCELED || g.last_error == -EPIPE ||
                g.last_error == -ECONNRESET);
    wait_state(no_conns, &f);
    down(&f);
    return 0;
}

/* A handler that waits forever after its head: only the watcher can see the client leave; it
 * cancels the handler, whose wait returns -ECANCELED, and it cleans up. */
SIMUL_TASK_TEST(disconnect_cancels_handler)
{
    (void)arg;
    fixture f;
    up(&f, NULL);
    assert_int_equal(client_run(c_leave_after_start, &f), 0);
    wait_state(one_cleanup, &f);
    assert_int_equal(g.last_error, -ECANCELED);
    wait_state(no_conns, &f);
    down(&f);
    return 0;
}

/* ---- graceful shutdown ------------------------------------------------------------------- */

typedef struct shut {
    fixture *f;
    int result;
    client idle;
} shut;

/* The in-flight request: answered in full, with Connection: close. */
static int c_inflight(void *arg)
{
    shut *s = arg;
    response r;
    bool closed = false;
    char v[64];
    CHECK(cl_once(s->f->port, GET("/slow"), &r, false, &closed) == 0);
    CHECK(r.status == 200 && strcmp(r.body, "finished") == 0 && closed);
    CHECK(hdr_get(r.head, "Connection", v, sizeof v) && strcmp(v, "close") == 0);
    resp_free(&r);
    return 0;
}

static int inflight_task(void *arg)
{
    shut *s = arg;
    return simul_to_thread(c_inflight, s, &s->result);
}

static int idle_open(void *arg)
{
    shut *s = arg;
    response r;
    CHECK(cl_connect(&s->idle, s->f->port) == 0);
    CHECK(cl_send(&s->idle, GET("/readyz")) == 0);
    CHECK(cl_response(&s->idle, &r, false) == 0 && r.status == 200);
    resp_free(&r);
    CHECK(cl_send(&s->idle, GET("/healthz")) == 0);
    CHECK(cl_response(&s->idle, &r, false) == 0 && r.status == 200);
    resp_free(&r);
    return 0;
}

static int idle_closed(void *arg)
{
    shut *s = arg;
    CHECK(cl_closed(&s->idle));
    close(s->idle.fd);
    return 0;
}

static int releaser(void *arg)
{
    fixture *f = arg;
    (void)f;
    /* the shutdown has begun (this task runs once the shutdown suspends): let the handler end */
    return simul_event_set(g.release);
}

SIMUL_TASK_TEST(graceful_shutdown)
{
    (void)arg;
    fixture f;
    simul_http_server_opts o = {.health = true};
    up(&f, &o);
    shut *s = calloc(1, sizeof *s);
    s->f = &f;
    int result = -1;
    assert_int_equal(simul_to_thread(idle_open, s, &result), 0);
    assert_int_equal(result, 0);
    simul_task *t, *rel;
    assert_int_equal(simul_task_spawn(&t, inflight_task, s, NULL), 0);
    assert_int_equal(simul_event_wait(g.started), 0);
    assert_int_equal(simul_http_server_connections(f.srv), 2);
    assert_int_equal(simul_task_spawn(&rel, releaser, &f, NULL), 0);
    assert_int_equal(simul_http_server_shutdown(f.srv, 30), 0); /* all finished in time */
    assert_int_equal(simul_task_join(rel, NULL), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(s->result, 0);
    assert_int_equal(g.cleanups, 0);
    assert_int_equal(simul_to_thread(idle_closed, s, &result), 0);
    assert_int_equal(result, 0);
    free(s);
    down(&f); /* a second shutdown is harmless */
    return 0;
}

/* A handler that does not finish within the shutdown's deadline is cancelled and cleans up. */
static int c_stuck(void *arg)
{
    shut *s = arg;
    response r;
    int rc = cl_once(s->f->port, GET("/slow"), &r, false, NULL);
    resp_free(&r);
    CHECK(rc == -ENODATA || rc == -ECONNRESET); /* no answer: the connection was ended */
    return 0;
}

static int stuck_task(void *arg)
{
    shut *s = arg;
    return simul_to_thread(c_stuck, s, &s->result);
}

SIMUL_TASK_TEST(shutdown_cancels_stragglers)
{
    (void)arg;
    fixture f;
    up(&f, NULL);
    shut *s = calloc(1, sizeof *s);
    s->f = &f;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, stuck_task, s, NULL), 0);
    assert_int_equal(simul_event_wait(g.started), 0);
    assert_int_equal(simul_http_server_shutdown(f.srv, 0.05), 1);
    assert_int_equal(g.cleanups, 1);
    assert_int_equal(simul_http_server_connections(f.srv), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(s->result, 0);
    free(s);
    down(&f);
    return 0;
}

/* ---- 10,000 requests on one connection, no fd growth ------------------------------------- */

static int c_many(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    response r;
    CHECK(cl_connect(c, f->port) == 0);
    char batch[100 * sizeof GET("/boards/1")];
    for (int round = 0; round < 100; round++) {
        /* 100 pipelined, then their 100 answers */
        size_t len = 0;
        for (int i = 0; i < 100; i++) {
            memcpy(batch + len, GET("/boards/1"), sizeof GET("/boards/1") - 1);
            len += sizeof GET("/boards/1") - 1;
        }
        CHECK(cl_sendn(c, batch, len) == 0);
        for (int i = 0; i < 100; i++) {
            CHECK(cl_response(c, &r, false) == 0 && r.status == 200);
            CHECK(strcmp(r.body, "board 1") == 0);
            resp_free(&r);
        }
    }
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(ten_thousand_keepalive)
{
    (void)arg;
    fixture f;
    simul_http_server_opts o = {.max_requests = 20000};
    up(&f, &o);
    /* warm up the pool thread (its own fds, if any) before counting */
    response r;
    (void)r;
    int before = count_fds();
    assert_int_equal(client_run(c_many, &f), 0);
    wait_state(no_conns, &f);
    assert_int_equal(count_fds(), before);
#if !SIMUL_TEST_ASAN && !SIMUL_TEST_TSAN
    /* and no heap growth: a second 10,000 after the first warmed every cache and pool */
    struct mallinfo2 m0 = mallinfo2();
    assert_int_equal(client_run(c_many, &f), 0);
    wait_state(no_conns, &f);
    struct mallinfo2 m1 = mallinfo2();
    /* 64 KiB of slack: a leak of 7 bytes a request would show */
    assert_true(m1.uordblks < m0.uordblks + 65536);
    assert_int_equal(count_fds(), before);
#endif
    down(&f);
    return 0;
}

/* ---- on two threads ---------------------------------------------------------------------- */

static int c_threads(void *arg)
{
    fixture *f = arg;
    for (int i = 0; i < 8; i++) {
        client *c = malloc(sizeof *c);
        response r;
        CHECK(cl_connect(c, f->port) == 0);
        CHECK(cl_send(c, GET("/boards/3") GET("/api/v1/items/4") GET("/nowhere")) == 0);
        CHECK(cl_response(c, &r, false) == 0 && strcmp(r.body, "board 3") == 0);
        resp_free(&r);
        CHECK(cl_response(c, &r, false) == 0 && strcmp(r.body, "board 4") == 0);
        resp_free(&r);
        CHECK(cl_response(c, &r, false) == 0 && r.status == 404);
        resp_free(&r);
        close(c->fd);
        free(c);
    }
    return 0;
}

static int threads_drain(void *arg)
{
    return simul_http_threads_shutdown(arg, 10);
}

SIMUL_TASK_TEST(serve_threads)
{
    (void)arg;
    fixture f;
    memset(&g, 0, sizeof g);
    f.app = make_app();
    simul_http_threads *ts;
    assert_int_equal(simul_http_serve_threads(f.app, "127.0.0.1", "0", 2, NULL, &ts), 0);
    f.port = simul_http_threads_port(ts);
    assert_true(f.port > 0);
    assert_int_equal(client_run(c_threads, &f), 0);
    int result = -1;
    assert_int_equal(simul_to_thread(threads_drain, ts, &result), 0);
    assert_int_equal(result, 0); /* nothing in flight: all finished in time */
    assert_int_equal(simul_http_threads_accepted(ts, 0) + simul_http_threads_accepted(ts, 1), 8);
    simul_http_threads_free(ts);
    simul_http_app_free(f.app);
    return 0;
}

/* ---- one connection on a caller's stream ------------------------------------------------- */

/* The client end of the pair: two pipelined requests, their answers in order, then EOF. */
static int c_pair(void *arg)
{
    client *c = calloc(1, sizeof *c);
    CHECK(c);
    c->fd = *(int *)arg;
    const char *reqs = GET("/") GET("/boards/7");
    CHECK(send(c->fd, reqs, strlen(reqs), MSG_NOSIGNAL) == (ssize_t)strlen(reqs));
    response r;
    CHECK(cl_response(c, &r, false) == 0 && r.status == 200 && strcmp(r.body, "root") == 0);
    resp_free(&r);
    CHECK(cl_response(c, &r, false) == 0 && r.status == 200 && strcmp(r.body, "board 7") == 0);
    resp_free(&r);
    shutdown(c->fd, SHUT_WR); /* the client is done: the server sees EOF and ends */
    free(c);
    return 0;
}

typedef struct pair_run {
    simul_http_app *app;
    int fd;
    int rc;
} pair_run;

static int serve_pair(void *arg)
{
    pair_run *p = arg;
    simul_stream *s;
    p->rc = simul_stream_from_fd(p->fd, &s);
    if (p->rc == 0) {
        p->rc = simul_http_serve_stream(p->app, s, NULL);
        simul_stream_close(s);
    }
    return 0;
}

/* simul_http_serve_stream on one end of a socketpair, called from a compact task: the server's
 * own task must not hold pointers into the caller's frame, which moves while it runs. */
SIMUL_TASK_TEST(serve_stream_from_a_compact_task)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pair_run *p = calloc(1, sizeof *p); /* not on this task's stack: the compact task reads it */
    assert_non_null(p);
    p->app = make_app();
    p->fd = sv[0];
    p->rc = 1;
    simul_task *t;
    simul_task_opts to = {.name = "serve-pair", .mode = SIMUL_TASK_COMPACT};
    assert_int_equal(simul_task_spawn(&t, serve_pair, p, &to), 0);
    assert_int_equal(client_run(c_pair, &sv[1]), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(p->rc, 0);
    close(sv[1]);
    simul_http_app_free(p->app);
    free(p);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routing),
        cmocka_unit_test(request_parts),
        cmocka_unit_test(expect_continue),
        cmocka_unit_test(streaming_and_sse),
        cmocka_unit_test(limits_and_errors),
        cmocka_unit_test(keepalive_pipelining),
        cmocka_unit_test(requests_per_connection),
        cmocka_unit_test(timeouts),
        cmocka_unit_test(client_vanishes_mid_request),
        cmocka_unit_test(client_vanishes_mid_response),
        cmocka_unit_test(disconnect_cancels_handler),
        cmocka_unit_test(graceful_shutdown),
        cmocka_unit_test(shutdown_cancels_stragglers),
        cmocka_unit_test(ten_thousand_keepalive),
        cmocka_unit_test(serve_threads),
        cmocka_unit_test(serve_stream_from_a_compact_task),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_http_server");
}
