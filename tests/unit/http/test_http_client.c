/* test_http_client.c — libsimul-http's client (simul_http_session) against simul's own server
 * (in the same loop) and against misbehaving servers scripted here on simul_start_server:
 * keep-alive reuse, bodies (memory, streamed, JSON, gzip/deflate), HEAD/204/304, redirects and
 * their method rules, loops, cookies, pool limits and idle expiry, timeouts (connect, whole,
 * stalled read), cancellation mid-body, stale pooled connections, lying servers, HTTPS with
 * verification, and 10,000 requests with fds flat. Nothing waits on time: timeouts only bound
 * waits, and the tests that check a timeout set it small and wait for the state. */
#include "test_main_helpers.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <malloc.h>
#include <netinet/in.h>
#include <simul/http.h>
#include <simul/tls.h>
#include <sys/socket.h>
#include <zlib.h>

/* ---- simul's own server ------------------------------------------------------------------- */

typedef struct counters {
    int active, max_active; /* handlers of /slow running at once */
    simul_event *slow_release;
} counters;
static counters g;

static int h_text(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    return simul_http_response_text(res, 200, arg);
}

static int h_echo(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *body;
    long n = simul_http_request_body(req, &body);
    if (n < 0)
        return (int)n;
    char head[256];
    snprintf(head, sizeof head, "%s %s ct=%s te=%s|", simul_http_request_method(req),
             simul_http_request_target(req),
             simul_http_request_header(req, "Content-Type") ? simul_http_request_header(req, "Content-Type") : "-",
             simul_http_request_header(req, "Transfer-Encoding") ? "chunked" : "-");
    size_t hl = strlen(head);
    char *out = malloc(hl + (size_t)n + 1);
    memcpy(out, head, hl);
    memcpy(out + hl, body, (size_t)n);
    int rc = simul_http_response_body(res, out, hl + (size_t)n);
    free(out);
    return rc;
}

static int h_json(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    json_t *v;
    int rc = simul_http_request_json(req, &v);
    if (rc < 0)
        return simul_http_response_text(res, 400, "bad json");
    json_object_set_new(v, "seen", json_true());
    rc = simul_http_response_json(res, 200, v);
    json_decref(v);
    return rc;
}

static int h_status(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    int64_t st;
    simul_http_request_param_int(req, "st", &st);
    return simul_http_response_status(res, (int)st);
}

static int h_redirect(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    int64_t st, n;
    simul_http_request_param_int(req, "st", &st);
    simul_http_request_param_int(req, "n", &n);
    char loc[64];
    if (n <= 0)
        snprintf(loc, sizeof loc, "/echo");
    else
        snprintf(loc, sizeof loc, "/r/%lld/%lld", (long long)st, (long long)(n - 1));
    return simul_http_response_redirect(res, (int)st, loc);
}

static int h_loop(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    return simul_http_response_redirect(res, 302, "loop"); /* relative: to itself */
}

static int h_setcookie(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    simul_http_response_set_cookie(res, "sid", "abc123", NULL);
    simul_http_cookie_opts o = {.path = "/only", .max_age = -1};
    simul_http_response_set_cookie(res, "narrow", "x", &o);
    return simul_http_response_redirect(res, 302, "/cookies");
}

static int h_cookies(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *c = simul_http_request_header(req, "Cookie");
    return simul_http_response_text(res, 200, c ? c : "(none)");
}

static int h_slow(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    g.active++;
    if (g.active > g.max_active)
        g.max_active = g.active;
    int rc = simul_event_wait(g.slow_release);
    g.active--;
    if (rc < 0)
        return rc;
    return simul_http_response_text(res, 200, "slow");
}

static int h_big(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    char chunk[1000];
    memset(chunk, 'b', sizeof chunk);
    for (int i = 0; i < 200; i++) { /* 200,000 bytes, chunked */
        int rc = simul_http_response_write(res, chunk, sizeof chunk);
        if (rc < 0)
            return rc;
    }
    return 0;
}

typedef struct fixture {
    simul_http_app *app;
    simul_http_server *srv;
    int port;
    char base[64];
} fixture;

static void up(fixture *f)
{
    memset(&g, 0, sizeof g);
    assert_int_equal(simul_event_new(&g.slow_release), 0);
    assert_int_equal(simul_http_app_new(&f->app), 0);
    simul_http_route(f->app, "GET", "/", h_text, "hello");
    simul_http_route(f->app, "GET,POST,PUT", "/echo", h_echo, NULL);
    simul_http_route(f->app, "POST", "/json", h_json, NULL);
    simul_http_route(f->app, "GET", "/status/<int:st>", h_status, NULL);
    simul_http_route(f->app, "GET,POST", "/r/<int:st>/<int:n>", h_redirect, NULL);
    simul_http_route(f->app, "GET", "/loop", h_loop, NULL);
    simul_http_route(f->app, "GET", "/setcookie", h_setcookie, NULL);
    simul_http_route(f->app, "GET", "/cookies", h_cookies, NULL);
    simul_http_route(f->app, "GET", "/only/cookies", h_cookies, NULL);
    simul_http_route(f->app, "GET", "/slow", h_slow, NULL);
    simul_http_route(f->app, "GET", "/big", h_big, NULL);
    assert_int_equal(simul_http_serve(f->app, "127.0.0.1", "0", NULL, &f->srv), 0);
    f->port = simul_http_server_port(f->srv);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->port);
}

static void down(fixture *f)
{
    simul_event_set(g.slow_release);
    assert_true(simul_http_server_shutdown(f->srv, 10) >= 0);
    simul_http_server_free(f->srv);
    simul_http_app_free(f->app);
    simul_event_free(g.slow_release);
}

static char *url(const fixture *f, const char *path)
{
    static char u[8][256];
    static int k;
    char *s = u[k++ % 8];
    snprintf(s, 256, "%s%s", f->base, path);
    return s;
}

static const char *body_of(simul_http_client_response *r)
{
    size_t n;
    const char *b = simul_http_client_response_body(r, &n);
    assert_non_null(b);
    assert_int_equal(strlen(b), n);
    return b;
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

SIMUL_TASK_TEST(get_and_keep_alive)
{
    (void)arg;
    fixture f;
    up(&f);
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    for (int i = 0; i < 3; i++) {
        simul_http_client_response *r;
        assert_int_equal(simul_http_session_get(s, url(&f, "/"), &r), 0);
        assert_int_equal(simul_http_client_response_status(r), 200);
        assert_string_equal(simul_http_client_response_reason(r), "OK");
        assert_string_equal(body_of(r), "hello");
        assert_string_equal(simul_http_client_response_header(r, "content-type"),
                            "text/plain; charset=utf-8");
        assert_true(simul_http_client_response_header_count(r) >= 2);
        assert_int_equal(simul_http_client_response_version_minor(r), 1);
        assert_string_equal(simul_http_client_response_url(r), url(&f, "/"));
        simul_http_client_response_close(r);
        /* One connection, back in the pool after each response. */
        assert_int_equal(simul_http_session_connections(s), 1);
        assert_int_equal(simul_http_session_idle(s), 1);
        assert_int_equal(simul_http_server_connections(f.srv), 1);
    }
    /* 404 is a response like any other. */
    simul_http_client_response *r;
    assert_int_equal(simul_http_session_get(s, url(&f, "/nope"), &r), 0);
    assert_int_equal(simul_http_client_response_status(r), 404);
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_close(s), 0);
    down(&f);
    return 0;
}

static long gen_body(void *arg, void *buf, size_t n)
{
    int *left = arg;
    if (*left == 0)
        return 0;
    (*left)--;
    const char *piece = "piece,";
    assert_true(n >= 6);
    memcpy(buf, piece, 6);
    return 6;
}

SIMUL_TASK_TEST(bodies_and_json)
{
    (void)arg;
    fixture f;
    up(&f);
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    simul_http_client_response *r;
    assert_int_equal(simul_http_session_post(s, url(&f, "/echo"), "text/x", "abc", 3, &r), 0);
    assert_string_equal(body_of(r), "POST /echo ct=text/x te=-|abc");
    simul_http_client_response_close(r);
    /* A streamed (chunked) request body. */
    int left = 5;
    simul_http_request_opts o = {.body_cb = gen_body, .body_arg = &left, .content_type = "a/b"};
    assert_int_equal(simul_http_session_request(s, "PUT", url(&f, "/echo?x=1"), &o, &r), 0);
    assert_string_equal(body_of(r), "PUT /echo?x=1 ct=a/b te=chunked|piece,piece,piece,piece,piece,");
    simul_http_client_response_close(r);
    /* JSON both ways. */
    json_t *v = json_pack("{s:i, s:s}", "n", 7, "s", "x");
    assert_int_equal(simul_http_session_post_json(s, url(&f, "/json"), v, &r), 0);
    json_decref(v);
    assert_int_equal(simul_http_client_response_status(r), 200);
    json_t *back;
    assert_int_equal(simul_http_client_response_json(r, &back), 0);
    assert_int_equal(json_integer_value(json_object_get(back, "n")), 7);
    assert_true(json_is_true(json_object_get(back, "seen")));
    json_decref(back);
    simul_http_client_response_close(r);
    /* Not JSON: -EBADMSG. */
    assert_int_equal(simul_http_session_get(s, url(&f, "/"), &r), 0);
    assert_int_equal(simul_http_client_response_json(r, &back), -EBADMSG);
    simul_http_client_response_close(r);
    /* A body streamed to the caller, 200,000 bytes in small reads. */
    simul_http_request_opts so = {.stream = true};
    assert_int_equal(simul_http_session_request(s, "GET", url(&f, "/big"), &so, &r), 0);
    assert_null(simul_http_client_response_body(r, NULL));
    size_t total = 0;
    char buf[777];
    long k;
    while ((k = simul_http_client_response_read(r, buf, sizeof buf)) > 0) {
        for (long i = 0; i < k; i++)
            assert_int_equal(buf[i], 'b');
        total += (size_t)k;
    }
    assert_int_equal(k, 0);
    assert_int_equal(total, 200000);
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_idle(s), 1); /* read to the end: reused */
    /* The whole-body limit. */
    simul_http_session *small;
    simul_http_session_opts so2 = {.max_body = 1000};
    assert_int_equal(simul_http_session_new(&so2, &small), 0);
    char why[200];
    simul_http_request_opts wo = {.why = why, .whylen = sizeof why};
    assert_int_equal(simul_http_session_request(small, "GET", url(&f, "/big"), &wo, &r), -EMSGSIZE);
    assert_non_null(strstr(why, "over the limit"));
    assert_int_equal(simul_http_session_connections(small), 0); /* mid-body: closed */
    assert_int_equal(simul_http_session_close(small), 0);
    /* Bad arguments. */
    assert_int_equal(simul_http_session_get(s, "ftp://x/", &r), -EINVAL);
    assert_int_equal(simul_http_session_get(s, "http://a b/", &r), -EINVAL);
    assert_int_equal(simul_http_session_get(s, "http://u@host/", &r), -EINVAL);
    assert_int_equal(simul_http_session_request(s, "GE T", url(&f, "/"), NULL, &r), -EINVAL);
    const char *bad[] = {"X-A", "b\r\nInjected: 1", NULL};
    simul_http_request_opts bo = {.headers = bad};
    assert_int_equal(simul_http_session_request(s, "GET", url(&f, "/"), &bo, &r), -EINVAL);
    assert_int_equal(simul_http_session_close(s), 0);
    down(&f);
    return 0;
}

SIMUL_TASK_TEST(bodiless_responses)
{
    (void)arg;
    fixture f;
    up(&f);
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    simul_http_client_response *r;
    assert_int_equal(simul_http_session_request(s, "HEAD", url(&f, "/"), NULL, &r), 0);
    assert_int_equal(simul_http_client_response_status(r), 200);
    assert_string_equal(simul_http_client_response_header(r, "Content-Length"), "5");
    assert_string_equal(body_of(r), "");
    simul_http_client_response_close(r);
    const char *codes[] = {"/status/204", "/status/304"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simul_http_session_get(s, url(&f, codes[i]), &r), 0);
        assert_int_equal(simul_http_client_response_status(r), i ? 304 : 204);
        assert_string_equal(body_of(r), "");
        simul_http_client_response_close(r);
    }
    /* All on one connection: nothing was mistaken for a body. */
    assert_int_equal(simul_http_session_connections(s), 1);
    assert_int_equal(simul_http_session_get(s, url(&f, "/"), &r), 0);
    assert_string_equal(body_of(r), "hello");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_close(s), 0);
    down(&f);
    return 0;
}

SIMUL_TASK_TEST(redirects)
{
    (void)arg;
    fixture f;
    up(&f);
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    simul_http_client_response *r;
    /* 302 and 303 turn a POST into a GET without body; 307 and 308 keep both. */
    static const struct {
        const char *path, *expect;
    } cases[] = {
        {"/r/301/2", "GET /echo ct=- te=-|"},
        {"/r/302/1", "GET /echo ct=- te=-|"},
        {"/r/303/1", "GET /echo ct=- te=-|"},
        {"/r/307/2", "POST /echo ct=t/p te=-|data"},
        {"/r/308/1", "POST /echo ct=t/p te=-|data"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        assert_int_equal(simul_http_session_post(s, url(&f, cases[i].path), "t/p", "data", 4, &r), 0);
        assert_int_equal(simul_http_client_response_status(r), 200);
        assert_string_equal(body_of(r), cases[i].expect);
        assert_string_equal(simul_http_client_response_url(r), url(&f, "/echo"));
        /* /r/ST/N redirects N more times, then once to /echo. */
        assert_int_equal(simul_http_client_response_redirects(r), cases[i].path[7] - '0' + 1);
        simul_http_client_response_close(r);
    }
    /* A loop ends with -ELOOP at the limit, the reason said. */
    char why[200];
    simul_http_request_opts o = {.why = why, .whylen = sizeof why};
    assert_int_equal(simul_http_session_request(s, "GET", url(&f, "/loop"), &o, &r), -ELOOP);
    assert_non_null(strstr(why, "too many redirects (10)"));
    /* max_redirects < 0: the 3xx itself. */
    simul_http_session *nr;
    simul_http_session_opts no = {.max_redirects = -1};
    assert_int_equal(simul_http_session_new(&no, &nr), 0);
    assert_int_equal(simul_http_session_get(nr, url(&f, "/loop"), &r), 0);
    assert_int_equal(simul_http_client_response_status(r), 302);
    assert_string_equal(simul_http_client_response_header(r, "Location"), "loop");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_close(nr), 0);
    /* The redirects reused the connection (their bodies were read). */
    assert_int_equal(simul_http_session_connections(s), 1);
    assert_int_equal(simul_http_session_close(s), 0);
    down(&f);
    return 0;
}

SIMUL_TASK_TEST(cookies)
{
    (void)arg;
    fixture f;
    up(&f);
    simul_http_session *s, *plain;
    simul_http_session_opts o = {.cookies = true};
    assert_int_equal(simul_http_session_new(&o, &s), 0);
    assert_int_equal(simul_http_session_new(NULL, &plain), 0);
    simul_http_client_response *r;
    /* Set on a redirect, sent on the request it leads to; the /only cookie stays on its path. */
    assert_int_equal(simul_http_session_get(s, url(&f, "/setcookie"), &r), 0);
    assert_string_equal(body_of(r), "sid=abc123");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_get(s, url(&f, "/only/cookies"), &r), 0);
    assert_string_equal(body_of(r), "narrow=x; sid=abc123");
    simul_http_client_response_close(r);
    char buf[64];
    assert_string_equal(simul_http_session_cookie(s, url(&f, "/"), "sid", buf, sizeof buf), "abc123");
    /* Not to another host (localhost is not 127.0.0.1), and not without a jar. */
    char other[128];
    snprintf(other, sizeof other, "http://localhost:%d/cookies", f.port);
    assert_int_equal(simul_http_session_get(s, other, &r), 0);
    assert_string_equal(body_of(r), "(none)");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_get(plain, url(&f, "/setcookie"), &r), 0);
    assert_string_equal(body_of(r), "(none)");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_close(s), 0);
    assert_int_equal(simul_http_session_close(plain), 0);
    down(&f);
    return 0;
}

typedef struct getter {
    simul_http_session *s;
    const char *url;
    int rc, status;
} getter;

static int get_task(void *arg)
{
    getter *g2 = arg;
    simul_http_client_response *r;
    g2->rc = simul_http_session_get(g2->s, g2->url, &r);
    if (g2->rc == 0) {
        g2->status = simul_http_client_response_status(r);
        simul_http_client_response_close(r);
    }
    return 0;
}

SIMUL_TASK_TEST(pool_limits)
{
    (void)arg;
    fixture f;
    up(&f);
    simul_http_session *s;
    simul_http_session_opts o = {.max_per_host = 3};
    assert_int_equal(simul_http_session_new(&o, &s), 0);
    enum { N = 10 };
    getter gs[N];
    simul_task *t[N];
    for (int i = 0; i < N; i++) {
        gs[i] = (getter){.s = s, .url = url(&f, "/slow")};
        assert_int_equal(simul_task_spawn(&t[i], get_task, &gs[i], NULL), 0);
    }
    /* Wait for the server to hold three, then let them all go. */
    while (g.active < 3)
        simul_sleep(0.001);
    assert_int_equal(simul_http_session_connections(s), 3);
    simul_event_set(g.slow_release);
    int res[N];
    assert_int_equal(simul_gather(t, N, res), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(gs[i].rc, 0);
        assert_int_equal(gs[i].status, 200);
    }
    assert_int_equal(g.max_active, 3);
    assert_int_equal(simul_http_session_connections(s), 3);
    assert_int_equal(simul_http_session_idle(s), 3);
    assert_int_equal(simul_http_session_close(s), 0);
    /* The total limit across origins: an idle connection of another origin makes room. */
    simul_http_session_opts o2 = {.max_total = 1};
    assert_int_equal(simul_http_session_new(&o2, &s), 0);
    char other[128];
    snprintf(other, sizeof other, "http://localhost:%d/", f.port);
    simul_http_client_response *r;
    assert_int_equal(simul_http_session_get(s, url(&f, "/"), &r), 0);
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_get(s, other, &r), 0);
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_connections(s), 1);
    assert_int_equal(simul_http_session_close(s), 0);
    /* Idle expiry: an idle connection past idle_timeout is closed, not reused. */
    simul_http_session_opts o3 = {.idle_timeout = 0.001};
    assert_int_equal(simul_http_session_new(&o3, &s), 0);
    assert_int_equal(simul_http_session_get(s, url(&f, "/"), &r), 0);
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_idle(s), 1);
    simul_sleep(0.01); /* (past the timeout: what follows does not depend on how far) */
    assert_int_equal(simul_http_session_get(s, url(&f, "/"), &r), 0);
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_connections(s), 1);
    while (simul_http_server_connections(f.srv) != 1) /* the server sees the old one go */
        simul_sleep(0.001);
    assert_int_equal(simul_http_session_close(s), 0);
    down(&f);
    return 0;
}

/* ---- misbehaving servers, scripted -------------------------------------------------------- */

typedef struct script {
    int accepted, finished;
    int requests;
    simul_event *hold; /* never set: a handler that waits on it stalls */
} script;
static script sc;

static int w(simul_stream *s, const char *text)
{
    return simul_stream_write(s, text, strlen(text));
}

static char *gz(const char *text, size_t *n, int bits)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = compressBound(strlen(text)) + 64;
    char *out = malloc(cap);
    z.next_in = (Bytef *)text;
    z.avail_in = (uInt)strlen(text);
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* Serves each request on the connection by its path. */
static int scripted_conn(simul_stream *s)
{
    for (;;) {
        const char *data;
        long n = simul_stream_readuntil(s, "\r\n\r\n", 4, &data);
        if (n <= 0)
            return 0;
        char head[4096]; /* (the stream's bytes are not NUL-terminated) */
        snprintf(head, sizeof head, "%.*s", (int)n, data);
        sc.requests++;
        char path[128] = "";
        sscanf(head, "%*s %127s", path);
        if (!strcmp(path, "/ok")) {
            w(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        } else if (!strcmp(path, "/ok-then-close")) {
            /* Keep-alive promised, then the server drops the idle connection. */
            w(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            simul_stream_drain(s);
            return 0;
        } else if (!strcmp(path, "/stall-head")) {
            simul_event_wait(sc.hold);
            return 0;
        } else if (!strcmp(path, "/stall-body")) {
            w(s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
            simul_stream_drain(s);
            simul_event_wait(sc.hold);
            return 0;
        } else if (!strcmp(path, "/vanish")) {
            w(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
            simul_stream_drain(s);
            return 0;
        } else if (!strcmp(path, "/vanish-chunked")) {
            w(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            simul_stream_drain(s);
            return 0;
        } else if (!strcmp(path, "/lying-short")) {
            /* Says 2, sends 6: the extra bytes must not become the next response. */
            w(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK");
        } else if (!strcmp(path, "/endless-headers")) {
            w(s, "HTTP/1.1 200 OK\r\n");
            char line[64];
            for (int i = 0; i < 100000; i++) {
                snprintf(line, sizeof line, "X-Endless-%d: yes\r\n", i);
                if (w(s, line) < 0 || simul_stream_drain(s) < 0)
                    return 0;
            }
            return 0;
        } else if (!strcmp(path, "/endless-line")) {
            w(s, "HTTP/1.1 200 OK\r\nX: ");
            char junk[4096];
            memset(junk, 'a', sizeof junk);
            for (int i = 0; i < 1000; i++)
                if (simul_stream_write(s, junk, sizeof junk) < 0 || simul_stream_drain(s) < 0)
                    return 0;
            return 0;
        } else if (!strcmp(path, "/garbage")) {
            w(s, "<html>not http</html>\r\n\r\n");
            return 0;
        } else if (!strcmp(path, "/gzip") || !strcmp(path, "/deflate") ||
                   !strcmp(path, "/rawdeflate")) {
            const char *text = "compressed text, compressed text, compressed text!";
            size_t n2;
            int bits = path[1] == 'g' ? 15 + 16 : path[1] == 'd' ? 15 : -15;
            char *z = gz(text, &n2, bits);
            char h[200];
            /* gzip by length, deflate chunked in 3-byte chunks. */
            if (bits == 31) {
                snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n", n2);
                w(s, h);
                simul_stream_write(s, z, n2);
            } else {
                w(s, "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n");
                for (size_t i = 0; i < n2; i += 3) {
                    size_t k = n2 - i < 3 ? n2 - i : 3;
                    snprintf(h, sizeof h, "%zx\r\n", k);
                    w(s, h);
                    simul_stream_write(s, z + i, k);
                    w(s, "\r\n");
                }
                w(s, "0\r\n\r\n");
            }
            free(z);
        } else if (!strcmp(path, "/c/set")) {
            w(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                 "Set-Cookie: a=1; Max-Age=100; Path=/\r\n"
                 "Set-Cookie: b=2; Domain=127.0.0.1; Path=/c\r\n"
                 "Set-Cookie: old=3; Expires=Wed, 21 Oct 2015 07:28:00 GMT\r\n"
                 "Set-Cookie: sec=4; Secure\r\n"
                 "Set-Cookie: evil=5; Domain=example.com\r\n"
                 "Set-Cookie: junk-without-equals\r\n\r\n");
        } else if (!strncmp(path, "/c/flood/", 9)) {
            /* 90 cookies a response (under the 100 fields a response may have). */
            int k = atoi(path + 9);
            w(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
            char line[96];
            for (int i = 0; i < 90; i++) {
                snprintf(line, sizeof line, "Set-Cookie: f%d_%d=v; Path=/elsewhere\r\n", k, i);
                w(s, line);
            }
            w(s, "\r\n");
        } else if (!strcmp(path, "/c/del")) {
            w(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: a=gone; Max-Age=0; Path=/\r\n\r\n");
        } else if (!strcmp(path, "/c/echo") || !strcmp(path, "/echo-cookie")) {
            const char *ck = strstr(head, "\r\nCookie: ");
            char val[256] = "(none)";
            if (ck)
                sscanf(ck + 10, "%255[^\r]", val);
            char h[400];
            snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(val), val);
            w(s, h);
        } else if (!strcmp(path, "/conn-close")) {
            w(s, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
            simul_stream_drain(s);
            return 0;
        } else if (!strcmp(path, "/trailers")) {
            w(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n");
        } else if (!strcmp(path, "/early-413")) {
            /* Answers before reading the body, then leaves. */
            w(s, "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo big!");
            simul_stream_drain(s);
            return 0;
        } else if (!strcmp(path, "/badgzip")) {
            w(s, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\nnotgzip!!!");
        } else if (!strcmp(path, "/interim")) {
            w(s, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal");
        } else if (!strcmp(path, "/close-delimited")) {
            w(s, "HTTP/1.0 200 OK\r\n\r\nuntil the close");
            simul_stream_drain(s);
            return 0;
        } else {
            w(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
        if (simul_stream_drain(s) < 0)
            return 0;
    }
}

static int scripted(simul_stream *s, void *arg)
{
    (void)arg;
    sc.accepted++;
    int rc = scripted_conn(s);
    sc.finished++;
    return rc;
}

typedef struct sfix {
    simul_server *srv;
    char base[64];
} sfix;

static void sup(sfix *f)
{
    memset(&sc, 0, sizeof sc);
    assert_int_equal(simul_event_new(&sc.hold), 0);
    assert_int_equal(simul_start_server("127.0.0.1", "0", scripted, NULL, &f->srv), 0);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", simul_server_port(f->srv));
}

static void sdown(sfix *f)
{
    simul_event_set(sc.hold); /* the stalling handlers end */
    simul_server_close(f->srv);
    simul_server_abort_clients(f->srv);
    simul_server_wait_closed(f->srv);
    simul_server_free(f->srv);
    simul_event_free(sc.hold);
}

static char *surl(const sfix *f, const char *path)
{
    static char u[4][256];
    static int k;
    char *s = u[k++ % 4];
    snprintf(s, 256, "%s%s", f->base, path);
    return s;
}

/* A request that must fail with rc, its reason containing `words`; returns nothing. */
static void expect_fail(simul_http_session *s, const char *u, int rc, const char *words,
                        const simul_http_request_opts *base)
{
    char why[300] = "unset";
    simul_http_request_opts o = base ? *base : (simul_http_request_opts){0};
    o.why = why;
    o.whylen = sizeof why;
    simul_http_client_response *r = NULL;
    int got = simul_http_session_request(s, "GET", u, &o, &r);
    if (got != rc || !strstr(why, words))
        fail_msg("%s: got %d (%s) '%s', expected %d '%s'", u, got, simul_errname(got), why, rc,
                 words);
    assert_null(r);
}

SIMUL_TASK_TEST(misbehaving_servers)
{
    (void)arg;
    sfix f;
    sup(&f);
    simul_http_session *s;
    /* A short stall timeout only where the server stalls (elsewhere a loaded machine could
     * trip it). */
    simul_http_session *stall;
    simul_http_session_opts so = {.read_timeout = 0.2};
    assert_int_equal(simul_http_session_new(&so, &stall), 0);
    expect_fail(stall, surl(&f, "/stall-head"), -ETIMEDOUT, "read stalled", NULL);
    expect_fail(stall, surl(&f, "/stall-body"), -ETIMEDOUT, "read stalled", NULL);
    assert_int_equal(simul_http_session_connections(stall), 0);
    assert_int_equal(simul_http_session_close(stall), 0);
    simul_http_session_opts o = {.limits = {.max_header_bytes = 8192, .max_headers = 50}};
    assert_int_equal(simul_http_session_new(&o, &s), 0);
    expect_fail(s, surl(&f, "/vanish"), -ECONNRESET, "body cut short", NULL);
    expect_fail(s, surl(&f, "/vanish-chunked"), -ECONNRESET, "body cut short", NULL);
    expect_fail(s, surl(&f, "/endless-headers"), -EMSGSIZE, "too many header fields", NULL);
    simul_http_session_opts o2 = {.limits = {.max_header_bytes = 8192}};
    simul_http_session *s2;
    assert_int_equal(simul_http_session_new(&o2, &s2), 0);
    expect_fail(s2, surl(&f, "/endless-line"), -EMSGSIZE, "header section too large", NULL);
    assert_int_equal(simul_http_session_close(s2), 0);
    expect_fail(s, surl(&f, "/garbage"), -EPROTO, "malformed status line", NULL);
    expect_fail(s, surl(&f, "/badgzip"), -EPROTO, "cannot decode the gzip body", NULL);
    /* The whole-request timeout (the stall timeout is the default 60 s here). */
    simul_http_request_opts t = {.timeout = 0.05};
    expect_fail(s, surl(&f, "/stall-head"), -ETIMEDOUT, "request timed out", &t);
    /* None of these left a connection behind. */
    assert_int_equal(simul_http_session_connections(s), 0);

    /* A lying Content-Length: the extra bytes are not taken for the next response; that
     * connection is not reused. */
    simul_http_client_response *r;
    int before = sc.accepted;
    assert_int_equal(simul_http_session_get(s, surl(&f, "/lying-short"), &r), 0);
    assert_string_equal(body_of(r), "ok");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_get(s, surl(&f, "/ok"), &r), 0);
    assert_string_equal(body_of(r), "ok");
    simul_http_client_response_close(r);
    assert_int_equal(sc.accepted, before + 2);

    /* gzip and deflate (zlib and raw), decoded; interim responses skipped; close-delimited. */
    const char *enc[] = {"/gzip", "/deflate", "/rawdeflate"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_http_session_get(s, surl(&f, enc[i]), &r), 0);
        assert_string_equal(body_of(r), "compressed text, compressed text, compressed text!");
        simul_http_client_response_close(r);
    }
    assert_int_equal(simul_http_session_get(s, surl(&f, "/interim"), &r), 0);
    assert_int_equal(simul_http_client_response_status(r), 200);
    assert_string_equal(body_of(r), "final");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_get(s, surl(&f, "/close-delimited"), &r), 0);
    assert_string_equal(body_of(r), "until the close");
    simul_http_client_response_close(r);

    /* A server that answers 413 before reading the body and closes: the answer is the result,
     * not the send's -EPIPE / -ECONNRESET. */
    size_t bn = 8u << 20;
    char *big = malloc(bn);
    memset(big, 'x', bn);
    assert_int_equal(simul_http_session_post(s, surl(&f, "/early-413"), NULL, big, bn, &r), 0);
    assert_int_equal(simul_http_client_response_status(r), 413);
    assert_string_equal(body_of(r), "too big!");
    simul_http_client_response_close(r);
    free(big);
    /* A pooled connection that the server closed: the next GET goes through anyway (a fresh
     * connection, found stale before use or retried once). */
    assert_int_equal(simul_http_session_close(s), 0);
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(simul_http_session_get(s, surl(&f, "/ok-then-close"), &r), 0);
        assert_string_equal(body_of(r), "ok");
        simul_http_client_response_close(r);
    }
    /* Idle past the peek threshold (50 ms): the close is seen before the connection is used,
     * so even a POST (never retried) goes through on a new connection. */
    simul_event_set(sc.hold); /* the stalled handlers of the cases above end too */
    for (int i = 0; i < 3; i++) {
        while (sc.finished != sc.accepted) /* the server has closed its side */
            simul_sleep(0.001);
        simul_sleep(0.06); /* (at least 60 ms: past the threshold, however long it takes) */
        assert_int_equal(simul_http_session_post(s, surl(&f, "/ok-then-close"), NULL, "x", 1, &r), 0);
        assert_string_equal(body_of(r), "ok");
        simul_http_client_response_close(r);
    }
    assert_int_equal(simul_http_session_close(s), 0);
    sdown(&f);
    return 0;
}

typedef struct canceller {
    simul_http_session *s;
    const char *url;
    bool stream_then_close;
    int rc;
    bool reached;
} canceller;

static int request_task(void *arg)
{
    canceller *c = arg;
    simul_http_client_response *r;
    simul_http_request_opts o = {.stream = true};
    c->rc = simul_http_session_request(c->s, "GET", c->url, &o, &r);
    if (c->rc == 0) {
        char b[4];
        c->reached = true;
        c->rc = (int)simul_http_client_response_read(r, b, sizeof b); /* stalls */
        simul_http_client_response_close(r);
    }
    return 0;
}

SIMUL_TASK_TEST(cookie_rules_and_framing)
{
    (void)arg;
    sfix f;
    sup(&f);
    simul_http_session *s;
    simul_http_session_opts o = {.cookies = true};
    assert_int_equal(simul_http_session_new(&o, &s), 0);
    simul_http_client_response *r;
    assert_int_equal(simul_http_session_get(s, surl(&f, "/c/set"), &r), 0);
    simul_http_client_response_close(r);
    /* Kept: a (Max-Age), b (Domain equal to the host, Path /c). Dropped: an Expires in the past,
     * a Domain that is not the host's, a field without '=', a Secure one over http. */
    assert_int_equal(simul_http_session_get(s, surl(&f, "/c/echo"), &r), 0);
    assert_string_equal(body_of(r), "b=2; a=1");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_get(s, surl(&f, "/echo-cookie"), &r), 0);
    assert_string_equal(body_of(r), "a=1"); /* b only under /c */
    simul_http_client_response_close(r);
    char buf[16];
    assert_null(simul_http_session_cookie(s, surl(&f, "/"), "old", buf, sizeof buf));
    assert_null(simul_http_session_cookie(s, surl(&f, "/"), "evil", buf, sizeof buf));
    /* A Secure cookie from an http origin is refused (RFC 6265bis). */
    assert_null(simul_http_session_cookie(s, "https://127.0.0.1/c/x", "sec", buf, sizeof buf));
    assert_string_equal(simul_http_session_cookie(s, surl(&f, "/c/x"), "b", buf, sizeof buf), "2");
    /* Max-Age=0 deletes. */
    assert_int_equal(simul_http_session_get(s, surl(&f, "/c/del"), &r), 0);
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_get(s, surl(&f, "/echo-cookie"), &r), 0);
    assert_string_equal(body_of(r), "(none)");
    simul_http_client_response_close(r);
    /* A request's own Cookie field goes along with the jar's. */
    const char *hdrs[] = {"X-Test", "1", NULL};
    simul_http_request_opts ho = {.headers = hdrs};
    assert_int_equal(simul_http_session_request(s, "GET", surl(&f, "/c/echo"), &ho, &r), 0);
    assert_string_equal(body_of(r), "b=2");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_connections(s), 1);
    /* A server cannot grow the jar without bound: past 3,000 cookies the oldest go. */
    for (int k = 0; k < 40; k++) { /* 3,600 cookies */
        char p2[32];
        snprintf(p2, sizeof p2, "/c/flood/%d", k);
        assert_int_equal(simul_http_session_get(s, surl(&f, p2), &r), 0);
        simul_http_client_response_close(r);
    }
    assert_null(simul_http_session_cookie(s, surl(&f, "/elsewhere"), "f0_0", buf, sizeof buf));
    assert_string_equal(simul_http_session_cookie(s, surl(&f, "/elsewhere"), "f39_89", buf, sizeof buf), "v");
    assert_string_equal(simul_http_session_cookie(s, surl(&f, "/elsewhere"), "f6_60", buf, sizeof buf), "v");
    assert_null(simul_http_session_cookie(s, surl(&f, "/elsewhere"), "f6_58", buf, sizeof buf));
    /* Connection: close is honoured: not pooled. Trailers end a chunked body and are dropped. */
    assert_int_equal(simul_http_session_get(s, surl(&f, "/conn-close"), &r), 0);
    assert_string_equal(body_of(r), "ok");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_connections(s), 0);
    assert_int_equal(simul_http_session_get(s, surl(&f, "/trailers"), &r), 0);
    assert_string_equal(body_of(r), "abc");
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_idle(s), 1);
    assert_int_equal(simul_http_session_close(s), 0);
    sdown(&f);
    return 0;
}

SIMUL_TASK_TEST(cancel_anywhere)
{
    (void)arg;
    sfix f;
    sup(&f);
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    /* Cancelled waiting for the head, and while reading the body. */
    const char *paths[] = {"/stall-head", "/stall-body"};
    for (int i = 0; i < 2; i++) {
        canceller c = {.s = s, .url = surl(&f, paths[i])};
        simul_task *t;
        int before = sc.requests;
        assert_int_equal(simul_task_spawn(&t, request_task, &c, NULL), 0);
        while (sc.requests == before || (i == 1 && !c.reached))
            simul_sleep(0.001);
        simul_sleep(0.001);
        simul_task_cancel(t);
        assert_int_equal(simul_task_join(t, NULL), 0);
        assert_int_equal(c.rc, i == 0 ? -ECANCELED : 3); /* the body read had 3 bytes in hand */
    }
    /* The stream-mode response closed mid-body: its connection was closed, not pooled. */
    assert_int_equal(simul_http_session_connections(s), 0);
    /* A response closed before its body was read: the connection is closed, and the next
     * request gets its own answer on a new connection. */
    simul_http_client_response *r;
    simul_http_request_opts o = {.stream = true};
    int before = sc.accepted;
    assert_int_equal(simul_http_session_request(s, "GET", surl(&f, "/stall-body"), &o, &r), 0);
    simul_http_client_response_close(r);
    assert_int_equal(simul_http_session_connections(s), 0);
    assert_int_equal(simul_http_session_get(s, surl(&f, "/ok"), &r), 0);
    assert_string_equal(body_of(r), "ok");
    simul_http_client_response_close(r);
    assert_int_equal(sc.accepted, before + 2);
    /* The caller's own deadline scope applies too. */
    simul_scope sco;
    simul_scope_timeout(&sco, 0.05);
    assert_int_equal(simul_http_session_get(s, surl(&f, "/stall-head"), &r), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&sco), 1);
    assert_int_equal(simul_http_session_close(s), 0);
    sdown(&f);
    return 0;
}

SIMUL_TASK_TEST(connect_errors)
{
    (void)arg;
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    /* A port nobody listens on. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    expect_fail(s, u, -ECONNREFUSED, "connect to 127.0.0.1", NULL);
    close(fd);
    /* A connect that cannot complete: a listener whose backlog is full... is racy; an
     * unroutable address is not reachable here (loopback only), so the connect timeout is
     * checked with a scope-less session timeout on a listener that never accepts and a TLS
     * handshake it never answers. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_port = 0;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 8), 0);
    getsockname(lfd, (struct sockaddr *)&a, &l);
    simul_http_session *t;
    simul_http_session_opts o = {.connect_timeout = 0.05, .insecure_skip_verify = true};
    assert_int_equal(simul_http_session_new(&o, &t), 0);
    snprintf(u, sizeof u, "https://127.0.0.1:%d/", ntohs(a.sin_port));
    expect_fail(t, u, -ETIMEDOUT, "timed out", NULL);
    close(lfd);
    assert_int_equal(simul_http_session_close(t), 0);
    /* A name that does not resolve (.invalid never does): a SIMUL_EAI code, said in words. */
    char why[200];
    simul_http_request_opts wo = {.why = why, .whylen = sizeof why};
    simul_http_client_response *r = NULL;
    int rc = simul_http_session_request(s, "GET", "http://no-such-host.invalid/", &wo, &r);
    assert_true(rc < 0 && simul_is_eai(rc));
    assert_non_null(strstr(why, "cannot resolve no-such-host.invalid"));
    assert_int_equal(simul_http_session_close(s), 0);
    return 0;
}

/* ---- an HTTP proxy: CONNECT, then bytes both ways ----------------------------------------- */

typedef struct proxy_state {
    int connects;
    bool refuse;
    char auth[128]; /* the Proxy-Authorization of the last CONNECT */
} proxy_state;

typedef struct pipe_arg {
    simul_stream *from, *to;
} pipe_arg;

static int pipe_task(void *arg)
{
    pipe_arg *p = arg;
    char buf[8192];
    long n;
    while ((n = simul_stream_read(p->from, buf, sizeof buf)) > 0)
        if (simul_stream_write(p->to, buf, (size_t)n) < 0 || simul_stream_drain(p->to) < 0)
            break;
    return 0;
}

static int proxy_handler(simul_stream *s, void *arg)
{
    proxy_state *ps = arg;
    const char *data;
    long n = simul_stream_readuntil(s, "\r\n\r\n", 4, &data);
    if (n <= 0)
        return 0;
    char head[4096];
    snprintf(head, sizeof head, "%.*s", (int)n, data);
    ps->connects++;
    const char *pa = strstr(head, "\r\nProxy-Authorization: ");
    ps->auth[0] = '\0';
    if (pa)
        sscanf(pa + 23, "%127[^\r]", ps->auth);
    char host[128] = "", port[16] = "";
    if (sscanf(head, "CONNECT %127[^:]:%15[0-9] HTTP/1.1", host, port) != 2 || ps->refuse) {
        w(s, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\nnope");
        simul_stream_drain(s);
        return 0;
    }
    simul_stream *up;
    if (simul_open_connection(host, port, &up) < 0) {
        w(s, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        simul_stream_drain(s);
        return 0;
    }
    w(s, "HTTP/1.1 200 Connection established\r\n\r\n");
    pipe_arg down = {up, s}, upw = {s, up};
    simul_task *t;
    if (simul_task_spawn(&t, pipe_task, &down, NULL) == 0) {
        pipe_task(&upw); /* until the client side ends */
        simul_stream_abort(up);
        simul_task_cancel(t);
        simul_task_join(t, NULL);
    }
    simul_stream_close(up);
    return 0;
}

SIMUL_TASK_TEST(proxy_connect)
{
    (void)arg;
    sfix f;
    sup(&f);
    proxy_state ps = {0};
    simul_server *proxy;
    assert_int_equal(simul_start_server("127.0.0.1", "0", proxy_handler, &ps, &proxy), 0);
    char purl[64];
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", simul_server_port(proxy));
    simul_http_session *s;
    simul_http_session_opts o = {.proxy = purl};
    assert_int_equal(simul_http_session_new(&o, &s), 0);
    for (int i = 0; i < 3; i++) {
        simul_http_client_response *r;
        assert_int_equal(simul_http_session_get(s, surl(&f, "/ok"), &r), 0);
        assert_string_equal(body_of(r), "ok");
        simul_http_client_response_close(r);
    }
    assert_int_equal(ps.connects, 1); /* one tunnel, kept alive */
    assert_int_equal(sc.accepted, 1);
    ps.refuse = true;
    char other[128];
    snprintf(other, sizeof other, "http://localhost:%d/ok", simul_server_port(f.srv));
    expect_fail(s, other, -ECONNREFUSED, "proxy refused CONNECT to localhost", NULL);
    /* A stream for a protocol that takes the connection over, through the same tunnel. */
    simul_stream *st;
    ps.refuse = false;
    assert_int_equal(simul_http_session_open_stream(s, surl(&f, "/"), &st, NULL, 0), 0);
    assert_int_equal(ps.connects, 3);
    assert_int_equal(simul_http_session_connections(s), 1); /* not the pool's */
    w(st, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    char got[41];
    size_t n;
    assert_int_equal(simul_stream_readexactly(st, got, 40, &n), 40);
    got[40] = '\0';
    assert_string_equal(got, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    simul_stream_close(st);
    char why[200];
    assert_int_equal(simul_http_session_open_stream(s, "nope://", &st, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "not an absolute http or https URL"));
    assert_int_equal(simul_http_session_close(s), 0);
    /* Credentials in the proxy URL: Basic Proxy-Authorization on the CONNECT. */
    char aurl[96];
    snprintf(aurl, sizeof aurl, "http://Aladdin:open sesame@127.0.0.1:%d", simul_server_port(proxy));
    simul_http_session_opts ao = {.proxy = aurl};
    assert_int_equal(simul_http_session_new(&ao, &s), 0);
    simul_http_client_response *ar;
    assert_int_equal(simul_http_session_get(s, surl(&f, "/ok"), &ar), 0);
    simul_http_client_response_close(ar);
    assert_string_equal(ps.auth, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="); /* RFC 7617's example */
    assert_int_equal(simul_http_session_close(s), 0);
    /* A proxy URL that is not http://host:port. */
    simul_http_session_opts bad = {.proxy = "https://127.0.0.1:1"};
    assert_int_equal(simul_http_session_new(&bad, &s), -EINVAL);
    simul_server_close(proxy);
    simul_server_abort_clients(proxy);
    simul_server_wait_closed(proxy);
    simul_server_free(proxy);
    sdown(&f);
    return 0;
}

/* ---- HTTPS: a TLS server scripted on simul_tls_accept ------------------------------------ */

#ifdef SIMUL_TLS_CERTS
static simul_tls_config *server_cfg;

static int tls_handler(simul_stream *s, void *arg)
{
    (void)arg;
    if (simul_tls_accept(s, server_cfg) < 0)
        return 0;
    return scripted(s, NULL);
}

SIMUL_TASK_TEST(https)
{
    (void)arg;
    memset(&sc, 0, sizeof sc);
    assert_int_equal(simul_event_new(&sc.hold), 0);
    assert_int_equal(simul_tls_config_new_server(&server_cfg), 0);
    assert_int_equal(simul_tls_config_set_cert(server_cfg, SIMUL_TLS_CERTS "/server.crt",
                                               SIMUL_TLS_CERTS "/server.key", NULL, 0), 0);
    simul_server *srv;
    assert_int_equal(simul_start_server("127.0.0.1", "0", tls_handler, NULL, &srv), 0);
    /* (sc.hold is set before the close below: no handler here stalls anyway) */
    char u[128], u2[128];
    snprintf(u, sizeof u, "https://127.0.0.1:%d/gzip", simul_server_port(srv));
    snprintf(u2, sizeof u2, "https://localhost:%d/ok", simul_server_port(srv));
    /* Verification on by default: the test CA is unknown to the system store. */
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    expect_fail(s, u, -EKEYREJECTED, "unknown CA", NULL);
    assert_int_equal(simul_http_session_close(s), 0);
    /* With the CA: works, keep-alive over TLS. */
    simul_http_session_opts o = {.ca_file = SIMUL_TLS_CERTS "/ca.crt"};
    assert_int_equal(simul_http_session_new(&o, &s), 0);
    for (int i = 0; i < 3; i++) {
        simul_http_client_response *r;
        assert_int_equal(simul_http_session_get(s, i == 1 ? u2 : u, &r), 0);
        assert_string_equal(body_of(r), i == 1 ? "ok" : "compressed text, compressed text, compressed text!");
        simul_http_client_response_close(r);
    }
    assert_int_equal(simul_http_session_connections(s), 2); /* two origins */
    assert_int_equal(sc.accepted, 2);
    /* A TLS server that closes each connection after its answer: every GET still succeeds. */
    char u3[128];
    snprintf(u3, sizeof u3, "https://127.0.0.1:%d/ok-then-close", simul_server_port(srv));
    for (int i = 0; i < 5; i++) {
        simul_http_client_response *r;
        assert_int_equal(simul_http_session_get(s, u3, &r), 0);
        assert_string_equal(body_of(r), "ok");
        simul_http_client_response_close(r);
    }
    assert_int_equal(simul_http_session_close(s), 0);
    /* HTTPS through a CONNECT proxy: TLS end to end inside the tunnel, verified. */
    proxy_state ps = {0};
    simul_server *proxy;
    assert_int_equal(simul_start_server("127.0.0.1", "0", proxy_handler, &ps, &proxy), 0);
    char purl[64];
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", simul_server_port(proxy));
    simul_http_session_opts po = {.ca_file = SIMUL_TLS_CERTS "/ca.crt", .proxy = purl};
    assert_int_equal(simul_http_session_new(&po, &s), 0);
    simul_http_client_response *pr;
    assert_int_equal(simul_http_session_get(s, u2, &pr), 0);
    assert_string_equal(body_of(pr), "ok");
    simul_http_client_response_close(pr);
    assert_int_equal(ps.connects, 1);
    /* open_stream over TLS: verified, the caller's stream speaks plaintext through it. */
    simul_stream *st;
    assert_int_equal(simul_http_session_open_stream(s, u2, &st, NULL, 0), 0);
    assert_true(simul_tls_is_tls(st));
    w(st, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    char got[41];
    size_t n;
    assert_int_equal(simul_stream_readexactly(st, got, 40, &n), 40);
    assert_memory_equal(got + 38, "ok", 2);
    simul_stream_close(st);
    assert_int_equal(simul_http_session_close(s), 0);
    simul_server_close(proxy);
    simul_server_abort_clients(proxy);
    simul_server_wait_closed(proxy);
    simul_server_free(proxy);
    /* A missing CA file fails at once. */
    simul_http_session_opts bad = {.ca_file = "/nonexistent/ca.pem"};
    assert_true(simul_http_session_new(&bad, &s) < 0);
    simul_server_close(srv);
    simul_server_abort_clients(srv);
    simul_server_wait_closed(srv);
    simul_server_free(srv);
    simul_tls_config_free(server_cfg);
    simul_event_free(sc.hold);
    return 0;
}
#endif

/* ---- 10,000 requests ---------------------------------------------------------------------- */

SIMUL_TASK_TEST(ten_thousand_requests)
{
    (void)arg;
    fixture f;
    up(&f);
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    enum { WORKERS = 8 };
    int n = SIMUL_TEST_ASAN || SIMUL_TEST_TSAN ? 2000 : 10000;
    int fds0 = 0;
    size_t heap0 = 0;
    for (int i = 0; i < n; i += WORKERS) {
        getter gs[WORKERS];
        simul_task *t[WORKERS];
        for (int k = 0; k < WORKERS; k++) {
            gs[k] = (getter){.s = s, .url = url(&f, k % 2 ? "/" : "/echo")};
            assert_int_equal(simul_task_spawn(&t[k], get_task, &gs[k], NULL), 0);
        }
        int res[WORKERS];
        assert_int_equal(simul_gather(t, WORKERS, res), 0);
        for (int k = 0; k < WORKERS; k++) {
            assert_int_equal(gs[k].rc, 0);
            assert_int_equal(gs[k].status, 200);
        }
        if (i == 1000) { /* warmed up: the pool is full, buffers are at their size */
            fds0 = open_fds();
            heap0 = mallinfo2().uordblks;
        }
    }
    assert_true(simul_http_session_connections(s) <= WORKERS);
    assert_int_equal(open_fds(), fds0);
    if (!SIMUL_TEST_ASAN && !SIMUL_TEST_TSAN)
        assert_true(mallinfo2().uordblks < heap0 + 64 * 1024); /* flat, within noise */
    assert_int_equal(simul_http_session_close(s), 0);
    down(&f);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_and_keep_alive),
        cmocka_unit_test(bodies_and_json),
        cmocka_unit_test(bodiless_responses),
        cmocka_unit_test(redirects),
        cmocka_unit_test(cookies),
        cmocka_unit_test(pool_limits),
        cmocka_unit_test(misbehaving_servers),
        cmocka_unit_test(cookie_rules_and_framing),
        cmocka_unit_test(cancel_anywhere),
        cmocka_unit_test(connect_errors),
        cmocka_unit_test(proxy_connect),
#ifdef SIMUL_TLS_CERTS
        cmocka_unit_test(https),
#endif
        cmocka_unit_test(ten_thousand_requests),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_http_client");
}
