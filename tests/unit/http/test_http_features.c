/* test_http_features.c — libsimul-http's server beyond the basics, over real loopback sockets:
 * hooks and error handlers (streaming kept), static files (sendfile, 304, Range, no escapes),
 * forms (urlencoded, multipart streamed to sinks, limits, curl -F), the client address behind
 * trusted proxies and the PROXY protocol (parser cases, prefixes, bad headers), the connection
 * cap (the accept loop waits), the access log, HEAD, OPTIONS. Clients are plain blocking sockets
 * on a pool thread, and curl for the real-client cases. Nothing waits on time. */
#include "test_main_helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <jansson.h>
#include <simul/http.h>
#include <sys/stat.h>

#include "test_http_server_helpers.h"

typedef struct fixture {
    simul_http_app *app;
    simul_http_server *srv;
    int port;
    char dir[256]; /* a temp dir: the static root is dir/root */
    char log[8192];
    size_t log_len;
    int teardowns, last_td_status, last_td_error;
} fixture;
static fixture *gf;

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_cmd(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* ---- handlers ---------------------------------------------------------------------------- */

static int h_chunks(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    for (int i = 0; i < 3; i++) {
        int rc = simul_http_response_write(res, "part;", 5);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int h_abort(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req, (void)arg;
    simul_http_response_header(res, "X-Dropped", "1"); /* abort drops what was set */
    return simul_http_response_error(res, 403);
}

static int h_addr(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    char out[256];
    snprintf(out, sizeof out, "%s %s", simul_http_request_remote_addr(req),
             simul_http_request_scheme(req));
    return simul_http_response_text(res, 200, out);
}

static int e_json404(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    json_t *v = json_pack("{s:s,s:i}", "error", simul_http_request_path(req), "status", 404);
    int rc = simul_http_response_json(res, 404, v);
    json_decref(v);
    return rc;
}

static int e_any(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req, (void)arg;
    char out[64];
    /* the status comes set: keep it */
    snprintf(out, sizeof out, "custom error page");
    simul_http_response_header(res, "Content-Type", "text/html");
    return simul_http_response_body(res, out, strlen(out));
}

static int b_auth(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *k = simul_http_request_header(req, "X-Key");
    if (k && strcmp(k, "secret") == 0) {
        return 0;
    }
    simul_http_response_text(res, 401, "who are you?");
    return 1;
}

static int b_boom(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)res, (void)arg;
    return simul_http_request_header(req, "X-Boom") ? -EIO : 0;
}

static void a_tag(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    simul_http_response_header(res, "X-After", arg);
}

static void t_count(simul_http_request *req, int status, int error, void *arg)
{
    (void)req;
    fixture *f = arg;
    f->teardowns++;
    f->last_td_status = status;
    f->last_td_error = error;
}

static void log_line(const char *line, void *arg)
{
    fixture *f = arg;
    size_t n = strlen(line);
    if (f->log_len + n + 2 < sizeof f->log) {
        memcpy(f->log + f->log_len, line, n);
        f->log_len += n;
        f->log[f->log_len++] = '\n';
        f->log[f->log_len] = '\0';
    }
}

/* forms */
static int h_form(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    int rc = simul_http_request_form_parse(req, NULL);
    if (rc < 0) {
        char m[64];
        snprintf(m, sizeof m, "form: %d\n", rc);
        return simul_http_response_text(res, simul_http_form_status(rc), m);
    }
    const char *vals[4];
    size_t n = simul_http_request_form_all(req, "a", vals, 4);
    const char *b = simul_http_request_form(req, "b");
    const simul_http_form_file *file = simul_http_request_form_file(req, "up");
    char out[512];
    int k = snprintf(out, sizeof out, "a=%zu:%s,%s b=%s", n, n > 0 ? vals[0] : "-",
                     n > 1 ? vals[1] : "-", b ? b : "-");
    if (file) {
        /* the file's bytes: check them against the pattern the client sent */
        unsigned long long bad = 0, sum = 0;
        char buf[4096]; /* the connection task's stack is 64 KiB */
        uint64_t off = 0;
        ssize_t got;
        while ((got = read(file->fd, buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < got; i++) {
                bad += buf[i] != (char)('a' + (off + (uint64_t)i) % 26);
                sum++;
            }
            off += (uint64_t)got;
        }
        snprintf(out + k, sizeof out - (size_t)k, " file=%s/%s/%s size=%llu read=%llu bad=%llu",
                 file->name, file->filename, file->content_type,
                 (unsigned long long)file->size, sum, bad);
    }
    return simul_http_response_text(res, 200, out);
}

/* a sink that counts, and records the largest piece: a file is never whole in memory */
typedef struct count_sink {
    uint64_t bytes;
    size_t biggest;
    int opened, closed;
} count_sink;
static count_sink g_sink;

static int cs_open(const simul_http_form_file *part, void **ctx, void *arg)
{
    (void)part;
    *ctx = arg;
    ((count_sink *)arg)->opened++;
    return 0;
}

static int cs_write(void *ctx, const void *data, size_t len, void *arg)
{
    (void)data, (void)arg;
    count_sink *s = ctx;
    s->bytes += len;
    if (len > s->biggest) {
        s->biggest = len;
    }
    return 0;
}

static int cs_close(void *ctx, int error, void *arg)
{
    (void)arg, (void)error;
    ((count_sink *)ctx)->closed++;
    return 0;
}

static const simul_http_part_sink counting = {cs_open, cs_write, cs_close};

static int h_form_sink(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    simul_http_form_opts o = {.sink = &counting, .sink_arg = &g_sink, .max_file_bytes = 0};
    int rc = simul_http_request_form_parse(req, &o);
    if (rc < 0) {
        return simul_http_response_text(res, simul_http_form_status(rc), "bad form\n");
    }
    const simul_http_form_file *file = simul_http_request_form_file(req, "up");
    char out[128];
    snprintf(out, sizeof out, "size=%llu fd=%d", file ? (unsigned long long)file->size : 0ULL,
             file ? file->fd : -2);
    return simul_http_response_text(res, 200, out);
}

static int sse_cleanups, sse_error;
static simul_event *sse_started;

/* An event stream that never ends by itself. */
static int h_sse_forever(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req, (void)arg;
    int rc = simul_http_sse_send(res, "hello", "1", -1, "first");
    simul_event_set(sse_started);
    while (rc == 0) {
        rc = simul_sleep(INFINITY);
    }
    sse_error = rc;
    sse_cleanups++;
    return rc;
}

static simul_http_app *make_app(fixture *f, bool statics)
{
    simul_http_app *app;
    simul_http_group *priv;
    assert_int_equal(simul_http_app_new(&app), 0);
    assert_int_equal(simul_http_route(app, "GET", "/", h_text, "root"), 0);
    assert_int_equal(simul_http_route(app, "GET", "/chunks", h_chunks, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/fail", h_fail, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/abort", h_abort, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/addr", h_addr, NULL), 0);
    assert_int_equal(simul_http_route(app, "POST", "/form", h_form, NULL), 0);
    assert_int_equal(simul_http_route(app, "POST", "/form-sink", h_form_sink, NULL), 0);
    assert_int_equal(simul_http_route(app, "PUT", "/only-put", h_text, "put"), 0);
    assert_int_equal(simul_http_route(app, "GET", "/sse-forever", h_sse_forever, NULL), 0);
    assert_int_equal(simul_http_group_new(app, NULL, "/private", &priv), 0);
    assert_int_equal(simul_http_group_route(priv, "GET", "/data", h_text, "the data"), 0);
    assert_int_equal(simul_http_group_route(priv, "GET", "/stream", h_chunks, NULL), 0);
    assert_int_equal(simul_http_group_before_request(priv, b_auth, NULL), 0);
    assert_int_equal(simul_http_group_after_request(priv, a_tag, "group"), 0);
    assert_int_equal(simul_http_before_request(app, b_boom, NULL), 0);
    assert_int_equal(simul_http_after_request(app, a_tag, "app"), 0);
    assert_int_equal(simul_http_teardown_request(app, t_count, f), 0);
    assert_int_equal(simul_http_error_handler(app, 404, e_json404, NULL), 0);
    assert_int_equal(simul_http_error_handler(app, 0, e_any, NULL), 0);
    assert_int_equal(simul_http_error_handler(app, 200, e_any, NULL), -EINVAL);
    if (statics) {
        char root[300];
        snprintf(root, sizeof root, "%s/root", f->dir);
        simul_http_static_opts so = {.max_age = 60};
        assert_int_equal(simul_http_static(app, "/static", root, &so), 0);
        assert_int_equal(simul_http_static(app, "/nope", "/nonexistent-dir-x", NULL), -ENOENT);
    }
    return app;
}

static void up(fixture *f, const simul_http_server_opts *opts, bool statics)
{
    memset(f, 0, sizeof *f);
    gf = f;
    snprintf(f->dir, sizeof f->dir, "%s/simul-http-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    f->app = make_app(f, false);
    if (statics) {
        /* the static root: files, a subdir with an index, a symlink inside and one out */
        assert_int_equal(run_cmd("cd %s && mkdir -p root/sub outside && "
                                 "printf 'hello static\\n' > root/a.txt && "
                                 "printf '<h1>index</h1>' > root/sub/index.html && "
                                 "printf 'top secret' > outside/secret.txt && "
                                 "printf 'body{}' > root/s.css && "
                                 "head -c 1048576 /dev/urandom > root/big.bin && "
                                 "ln -s ../outside/secret.txt root/escape.txt && "
                                 "ln -s /etc/passwd root/passwd && "
                                 "ln -s a.txt root/inside.txt && "
                                 "touch -d '2020-01-02 03:04:05 UTC' root/a.txt",
                                 f->dir),
                         0);
        simul_http_app_free(f->app);
        f->app = make_app(f, true);
    }
    assert_int_equal(simul_http_serve(f->app, "127.0.0.1", "0", opts, &f->srv), 0);
    f->port = simul_http_server_port(f->srv);
    assert_true(f->port > 0);
}

static void down(fixture *f)
{
    assert_int_equal(simul_http_server_shutdown(f->srv, 10), 0);
    simul_http_server_free(f->srv);
    simul_http_app_free(f->app);
    run_cmd("rm -rf %s", f->dir);
}

/* One exchange: status and (if want) body; head gets the response head when not NULL. */
static int xchg(int port, const char *req, int status, const char *want, char *head, size_t hcap,
                bool head_req)
{
    response r;
    int rc = cl_once(port, req, &r, head_req, NULL);
    if (rc < 0 || r.status != status || (want && strcmp(r.body, want) != 0)) {
        fprintf(stderr, "for\n%s\ngot %d (rc %d) [%s]\n%s\nwanted %d [%s]\n", req, r.status, rc,
                r.body ? r.body : "", r.head, status, want ? want : "*");
        resp_free(&r);
        return __LINE__;
    }
    if (head) {
        snprintf(head, hcap, "%s", r.head);
    }
    resp_free(&r);
    return 0;
}
#define X(req, status, body) CHECK(xchg(f->port, req, status, body, NULL, 0, false) == 0)
#define XH(req, status, body, h) CHECK(xchg(f->port, req, status, body, h, sizeof h, false) == 0)

/* ---- hooks and error handlers ------------------------------------------------------------ */

static int c_hooks(void *arg)
{
    fixture *f = arg;
    char h[8192], v[256];
    XH(GET("/"), 200, "root", h);
    CHECK(hdr_get(h, "X-After", v, sizeof v) && strcmp(v, "app") == 0);
    /* a streamed body: the after hook ran at the head, the body is still chunked */
    XH(GET("/chunks"), 200, "part;part;part;", h);
    CHECK(hdr_get(h, "Transfer-Encoding", v, sizeof v) && strcmp(v, "chunked") == 0);
    CHECK(hdr_get(h, "X-After", v, sizeof v));
    /* the group's before hook answers 401; the after hooks still tag it */
    XH(GET("/private/data"), 401, "who are you?", h);
    XH("GET /private/data HTTP/1.1\r\nHost: t\r\nX-Key: secret\r\n\r\n", 200, "the data", h);
    XH("GET /private/stream HTTP/1.1\r\nHost: t\r\nX-Key: secret\r\n\r\n", 200, "part;part;part;", h);
    CHECK(hdr_get(h, "Transfer-Encoding", v, sizeof v));
    /* the app's before hook failing: 500 through the catch-all error handler */
    X("GET / HTTP/1.1\r\nHost: t\r\nX-Boom: 1\r\n\r\n", 500, "custom error page");
    /* error handlers: 404 as JSON, a failing handler's 500, abort's 403 (its header dropped) */
    XH(GET("/nowhere?x=1"), 404, "{\"error\":\"/nowhere\",\"status\":404}", h);
    CHECK(hdr_get(h, "Content-Type", v, sizeof v) && strcmp(v, "application/json") == 0);
    CHECK(hdr_get(h, "X-After", v, sizeof v)); /* after hooks run for error answers too */
    X(GET("/fail"), 500, "custom error page");
    XH(GET("/abort"), 403, "custom error page", h);
    CHECK(!hdr_get(h, "X-Dropped", v, sizeof v));
    /* 405 keeps its Allow through the error handler */
    XH(GET("/only-put"), 405, "custom error page", h);
    CHECK(hdr_get(h, "Allow", v, sizeof v) && strcmp(v, "PUT, OPTIONS") == 0);
    /* OPTIONS lists the methods; HEAD is answered from GET without a body */
    XH("OPTIONS /private/data HTTP/1.1\r\nHost: t\r\n\r\n", 204, "", h);
    CHECK(hdr_get(h, "Allow", v, sizeof v) && strcmp(v, "GET, HEAD, OPTIONS") == 0);
    CHECK(xchg(f->port, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", 200, "", h, sizeof h, true) == 0);
    CHECK(hdr_get(h, "Content-Length", v, sizeof v) && strcmp(v, "4") == 0);
    return 0;
}

SIMUL_TASK_TEST(hooks_and_error_handlers)
{
    (void)arg;
    fixture f;
    up(&f, NULL, false);
    assert_int_equal(client_run(c_hooks, &f), 0);
    /* every request that reached the app was torn down once; the last was the HEAD */
    assert_int_equal(f.teardowns, 12);
    assert_int_equal(f.last_td_status, 200);
    assert_int_equal(f.last_td_error, 0);
    down(&f);
    return 0;
}

/* ---- static files ------------------------------------------------------------------------ */

static int c_static(void *arg)
{
    fixture *f = arg;
    char h[8192], v[256], etag[128], lm[128], req[1024];
    XH(GET("/static/a.txt"), 200, "hello static\n", h);
    CHECK(hdr_get(h, "Content-Type", v, sizeof v) && strcmp(v, "text/plain; charset=utf-8") == 0);
    CHECK(hdr_get(h, "Accept-Ranges", v, sizeof v) && strcmp(v, "bytes") == 0);
    CHECK(hdr_get(h, "Cache-Control", v, sizeof v) && strcmp(v, "public, max-age=60") == 0);
    CHECK(hdr_get(h, "Last-Modified", lm, sizeof lm) &&
          strcmp(lm, "Thu, 02 Jan 2020 03:04:05 GMT") == 0);
    CHECK(hdr_get(h, "ETag", etag, sizeof etag) && etag[0] == '"');
    XH(GET("/static/s.css"), 200, "body{}", h);
    CHECK(hdr_get(h, "Content-Type", v, sizeof v) && strcmp(v, "text/css; charset=utf-8") == 0);
    /* 304: If-None-Match (also in a list, also weak), If-Modified-Since at or after */
    snprintf(req, sizeof req, "GET /static/a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n\r\n", etag);
    XH(req, 304, "", h);
    CHECK(hdr_get(h, "ETag", v, sizeof v) && strcmp(v, etag) == 0);
    CHECK(!hdr_get(h, "Content-Length", v, sizeof v));
    snprintf(req, sizeof req, "GET /static/a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\", W/%s\r\n\r\n", etag);
    X(req, 304, "");
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"other\"\r\n\r\n", 200, "hello static\n");
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Thu, 02 Jan 2020 03:04:05 GMT\r\n\r\n", 304, "");
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Wed, 01 Jan 2020 00:00:00 GMT\r\n\r\n", 200, "hello static\n");
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: garbage\r\n\r\n", 200, "hello static\n");
    /* If-None-Match wins over If-Modified-Since */
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"other\"\r\nIf-Modified-Since: Thu, 02 Jan 2020 03:04:05 GMT\r\n\r\n", 200, NULL);
    /* Range: 206 with Content-Range; suffix; open end; 416; several near ranges coalesced into
     * one 206 (test_http_ranges has multipart/byteranges) */
    XH("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4\r\n\r\n", 206, "hello", h);
    CHECK(hdr_get(h, "Content-Range", v, sizeof v) && strcmp(v, "bytes 0-4/13") == 0);
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=-7\r\n\r\n", 206, "static\n");
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=6-\r\n\r\n", 206, "static\n");
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=6-1000\r\n\r\n", 206, "static\n");
    XH("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=13-\r\n\r\n", 416, NULL, h);
    CHECK(hdr_get(h, "Content-Range", v, sizeof v) && strcmp(v, "bytes */13") == 0);
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,3-4\r\n\r\n", 206, "hello");
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=5-2\r\n\r\n", 200, "hello static\n");
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: lines=1-2\r\n\r\n", 200, "hello static\n");
    snprintf(req, sizeof req, "GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4\r\nIf-Range: %s\r\n\r\n", etag);
    X(req, 206, "hello");
    X("GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4\r\nIf-Range: \"stale\"\r\n\r\n", 200, "hello static\n");
    /* HEAD: the head with the length, no body */
    CHECK(xchg(f->port, "HEAD /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n", 200, "", h, sizeof h, true) == 0);
    CHECK(hdr_get(h, "Content-Length", v, sizeof v) && strcmp(v, "13") == 0);
    /* directories: the index, a redirect to the slash, a dir without index */
    X(GET("/static/sub/"), 200, "<h1>index</h1>");
    XH(GET("/static/sub"), 404, NULL, h); /* a directory without the slash is not a file */
    XH(GET("/static"), 301, NULL, h);
    CHECK(hdr_get(h, "Location", v, sizeof v) && strcmp(v, "/static/") == 0);
    X(GET("/static/"), 404, NULL); /* no root/index.html */
    /* no escapes: .., encoded .., encoded slash, NUL, symlinks out; a symlink inside is fine */
    X(GET("/static/../outside/secret.txt"), 404, NULL);
    X(GET("/static/sub/../../outside/secret.txt"), 404, NULL);
    X(GET("/static/%2e%2e/outside/secret.txt"), 404, NULL);
    X(GET("/static/%2E%2E%2Foutside%2Fsecret.txt"), 404, NULL);
    X(GET("/static/sub/..%2F..%2Foutside/secret.txt"), 404, NULL);
    X(GET("/static/a.txt%00.png"), 400, NULL); /* a NUL is never decoded into a parameter */
    X(GET("/static//etc/passwd"), 404, NULL);
    X(GET("/static/./a.txt"), 404, NULL);
    X(GET("/static/escape.txt"), 404, NULL);
    X(GET("/static/passwd"), 404, NULL);
    X(GET("/static/inside.txt"), 200, "hello static\n");
    X(GET("/static/missing.txt"), 404, NULL);
    X(GET("/static/a.txt/x"), 404, NULL);
    X("POST /static/a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 405, NULL);
    /* real clients: curl's byte range and a whole 1 MiB file by sendfile, compared */
    CHECK(run_cmd("cd %s && curl -sf -o got.bin http://127.0.0.1:%d/static/big.bin && "
                  "cmp -s got.bin root/big.bin && "
                  "curl -sf -r 1000-1999 -o part.bin http://127.0.0.1:%d/static/big.bin && "
                  "test $(stat -c %%s part.bin) = 1000 && "
                  "tail -c +1001 root/big.bin | head -c 1000 > want.bin && cmp -s part.bin want.bin",
                  f->dir, f->port, f->port) == 0);
    CHECK(run_cmd("cd %s && curl -sf -D hdr.txt -o /dev/null http://127.0.0.1:%d/static/a.txt && "
                  "etag=$(grep -i '^etag:' hdr.txt | cut -d' ' -f2 | tr -d '\\r') && "
                  "code=$(curl -s -o /dev/null -w '%%{http_code}' -H \"If-None-Match: $etag\" "
                  "http://127.0.0.1:%d/static/a.txt) && test \"$code\" = 304",
                  f->dir, f->port, f->port) == 0);
    return 0;
}

SIMUL_TASK_TEST(static_files)
{
    (void)arg;
    fixture f;
    up(&f, NULL, true);
    assert_int_equal(client_run(c_static, &f), 0);
    down(&f);
    return 0;
}

/* ---- forms ------------------------------------------------------------------------------- */

#define MP_HEAD(len) "POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: " len "\r\n\r\n"

static int send_body(int port, const char *path, const char *ctype, const char *body,
                     size_t blen, response *r)
{
    client *c = malloc(sizeof *c);
    char head[512];
    snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\n"
             "Content-Length: %zu\r\n\r\n", path, ctype, blen);
    int rc = cl_connect(c, port);
    rc = rc ? rc : cl_send(c, head);
    rc = rc ? rc : cl_sendn(c, body, blen);
    rc = rc ? rc : cl_response(c, r, false);
    close(c->fd);
    free(c);
    return rc;
}

#define FORM(ct_, b_, st_, want_)                                                              \
    do {                                                                                           \
        response r_;                                                                               \
        CHECK(send_body(f->port, "/form", ct_, b_, sizeof b_ - 1, &r_) == 0);                      \
        const char *w_ = (want_);                                                                  \
        if (r_.status != (st_) || (w_ && strcmp(r_.body, w_) != 0)) {                             \
            fprintf(stderr, "form: got %d [%s]\n", r_.status, r_.body);                           \
            resp_free(&r_);                                                                        \
            return __LINE__;                                                                       \
        }                                                                                          \
        resp_free(&r_);                                                                            \
    } while (0)

static int c_forms(void *arg)
{
    fixture *f = arg;
    const char *mp = "multipart/form-data; boundary=XyZ";
    FORM("application/x-www-form-urlencoded", "a=1&b=two+words&a=%C3%A9", 200,
         "a=2:1,\xc3\xa9 b=two words");
    FORM("application/x-www-form-urlencoded; charset=utf-8", "a=%zz", 400, NULL);
    FORM("text/plain", "a=1", 415, NULL);
    FORM(mp, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n"
             "--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nline1\r\nline2\r\n"
             "--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"f.txt\"\r\n"
             "Content-Type: text/x-test\r\n\r\nabcdefghij\r\n"
             "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\r\n"
             "--XyZ--\r\nepilogue ignored",
         200, "a=2:x, b=line1\r\nline2 file=up/f.txt/text/x-test size=10 read=10 bad=0");
    /* a preamble, quoted boundary, a body with a near-delimiter inside */
    FORM("multipart/form-data; boundary=\"XyZ\"",
         "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n--XyZnot\r\n--Xy\r\n"
         "--XyZ--",
         200, "a=0:-,- b=--XyZnot\r\n--Xy");
    /* malformed: no closing delimiter, no name, no boundary, junk after a delimiter */
    FORM(mp, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx", 400, NULL);
    FORM(mp, "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--", 400, NULL);
    FORM("multipart/form-data", "--XyZ--", 400, NULL);
    FORM(mp, "--XyZjunk\r\n\r\n--XyZ--", 400, NULL);
    FORM(mp, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"", 400, NULL);
    /* limits: a field over 64 KiB, too many parts -> 413 */
    {
        size_t n = 70000;
        char *body = malloc(n + 200);
        int k = sprintf(body, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n");
        memset(body + k, 'q', n);
        k += (int)n;
        k += sprintf(body + k, "\r\n--XyZ--");
        response r;
        CHECK(send_body(f->port, "/form", mp, body, (size_t)k, &r) == 0);
        CHECK(r.status == 413);
        resp_free(&r);
        k = 0;
        for (int i = 0; i < 200; i++) {
            k += sprintf(body + k, "--XyZ\r\nContent-Disposition: form-data; name=\"p%d\"\r\n\r\nv\r\n", i);
        }
        k += sprintf(body + k, "--XyZ--");
        CHECK(send_body(f->port, "/form", mp, body, (size_t)k, &r) == 0);
        CHECK(r.status == 413);
        resp_free(&r);
        free(body);
    }
    /* a 3 MiB file streamed to a temp file (the body limit raised to 8 MiB), checked byte by
     * byte; with the counting sink no piece is over the 64 KiB window */
    {
        size_t n = 3u << 20;
        char *body = malloc(n + 400);
        int k = sprintf(body, "--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nbig\r\n"
                              "--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"big.bin\"\r\n"
                              "Content-Type: application/octet-stream\r\n\r\n");
        for (size_t i = 0; i < n; i++) {
            body[k + (int)i] = (char)('a' + i % 26);
        }
        k += (int)n;
        k += sprintf(body + k, "\r\n--XyZ--\r\n");
        response r;
        CHECK(send_body(f->port, "/form", mp, body, (size_t)k, &r) == 0);
        CHECK(r.status == 200);
        CHECK(strcmp(r.body, "a=0:-,- b=big file=up/big.bin/application/octet-stream size=3145728 "
                             "read=3145728 bad=0") == 0);
        resp_free(&r);
        CHECK(send_body(f->port, "/form-sink", mp, body, (size_t)k, &r) == 0);
        CHECK(r.status == 200 && strcmp(r.body, "size=3145728 fd=-1") == 0);
        resp_free(&r);
        free(body);
    }
    /* curl -F: a real client's multipart (and its Expect: 100-continue for a big upload) */
    CHECK(run_cmd("cd %s && head -c 2000000 /dev/zero | tr '\\0' 'z' > up.bin && "
                  "out=$(curl -sf -F a=1 -F a=2 -F 'b=from curl' -F up=@up.bin "
                  "http://127.0.0.1:%d/form) && "
                  "echo \"$out\" | grep -q 'a=2:1,2 b=from curl file=up/up.bin/application/octet-stream size=2000000'",
                  f->dir, f->port) == 0);
    /* python's http.client: an urlencoded POST */
    CHECK(run_cmd("/usr/bin/python3 -c \"import http.client,urllib.parse,sys\n"
                  "c=http.client.HTTPConnection('127.0.0.1',%d)\n"
                  "c.request('POST','/form',urllib.parse.urlencode({'a':'x y','b':'&='}),"
                  "{'Content-Type':'application/x-www-form-urlencoded'})\n"
                  "r=c.getresponse(); b=r.read().decode()\n"
                  "sys.exit(0 if r.status==200 and b=='a=1:x y,- b=&=' else 1)\"",
                  f->port) == 0);
    return 0;
}

SIMUL_TASK_TEST(forms)
{
    (void)arg;
    fixture f;
    simul_http_server_opts o = {.limits.max_body = 8u << 20};
    memset(&g_sink, 0, sizeof g_sink);
    up(&f, &o, false);
    assert_int_equal(client_run(c_forms, &f), 0);
    assert_int_equal(g_sink.bytes, 3u << 20);
    assert_true(g_sink.biggest <= 65536 + 16);
    assert_int_equal(g_sink.opened, 1);
    assert_int_equal(g_sink.closed, 1);
    down(&f);
    return 0;
}

/* ---- the PROXY protocol parser ----------------------------------------------------------- */

static void proxy_ok(const char *h, size_t n, int version, const char *src, int sport, bool local)
{
    simul_http_proxy_info info;
    /* every prefix asks for more; the whole header parses the same with bytes after it */
    for (size_t i = 0; i < n; i++) {
        long k = simul_http_proxy_parse(h, i, &info);
        if (k != 0) {
            fprintf(stderr, "prefix %zu of %zu: %ld\n", i, n, k);
        }
        assert_int_equal(k, 0);
    }
    char buf[2048];
    memcpy(buf, h, n);
    memcpy(buf + n, "GET / HTTP/1.1\r\n", 16);
    assert_int_equal(simul_http_proxy_parse(buf, n + 16, &info), (long)n);
    assert_int_equal(info.version, version);
    assert_int_equal(info.local, local);
    if (!local) {
        char text[64];
        int port;
        if (info.src.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&info.src)->sin_addr, text, sizeof text);
            port = ntohs(((struct sockaddr_in *)&info.src)->sin_port);
        } else {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&info.src)->sin6_addr, text, sizeof text);
            port = ntohs(((struct sockaddr_in6 *)&info.src)->sin6_port);
        }
        assert_string_equal(text, src);
        assert_int_equal(port, sport);
    }
}

static void proxy_bad(const char *h, size_t n, long want)
{
    simul_http_proxy_info info;
    long k = simul_http_proxy_parse(h, n, &info);
    if (k != want) {
        fprintf(stderr, "bad header [%.*s]: %ld, wanted %ld\n", (int)n, h, k, want);
    }
    assert_int_equal(k, want);
}

#define V1OK(s, src, port) proxy_ok(s, sizeof s - 1, 1, src, port, false)
#define V1BAD(s) proxy_bad(s, sizeof s - 1, -EPROTO)

static size_t v2(unsigned char *b, int cmd, int fam, const void *addrs, size_t alen, size_t tlv)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(b, sig, 12);
    b[12] = (unsigned char)(0x20 | cmd);
    b[13] = (unsigned char)fam;
    size_t body = alen + tlv;
    b[14] = (unsigned char)(body >> 8);
    b[15] = (unsigned char)body;
    if (alen) {
        memcpy(b + 16, addrs, alen);
    }
    memset(b + 16 + alen, 0x04, tlv); /* a NOOP TLV's bytes: skipped */
    return 16 + body;
}

static void proxy_protocol_parser(void **state)
{
    (void)state;
    V1OK("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", "192.0.2.1", 56324);
    V1OK("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", "2001:db8::1", 1);
    proxy_ok("PROXY UNKNOWN\r\n", 15, 1, NULL, 0, true);
    proxy_ok("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", 35, 1, NULL, 0, true);
    V1BAD("PROXY TCP4 192.0.2.1  198.51.100.2 56324 443\r\n"); /* two spaces */
    V1BAD("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n");    /* bare LF */
    V1BAD("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 \r\n"); /* trailing space */
    V1BAD("PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n");  /* port range */
    V1BAD("PROXY TCP4 192.0.2.1 198.51.100.2 0443 443\r\n");   /* leading zero */
    V1BAD("PROXY TCP4 192.0.2.1 198.51.100.2 -1 443\r\n");
    V1BAD("PROXY TCP4 2001:db8::1 198.51.100.2 1 443\r\n");    /* family mismatch */
    V1BAD("PROXY TCP4 192.0.2.256 198.51.100.2 1 443\r\n");
    V1BAD("PROXY TCP5 192.0.2.1 198.51.100.2 1 443\r\n");
    V1BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n");
    V1BAD("PROXY \r\n");
    V1BAD("PROXY TCP4 1.2.3.4 1.2.3.5 1 2\r\r\n");
    V1BAD("GET / HTTP/1.1\r\n");
    V1BAD("proxy TCP4 1.2.3.4 1.2.3.5 1 2\r\n");
    /* too long without a LF: -EMSGSIZE at 107 bytes */
    char longl[200];
    memset(longl, 'A', sizeof longl);
    memcpy(longl, "PROXY TCP4 ", 11);
    proxy_bad(longl, 106, 0);
    proxy_bad(longl, 107, -EMSGSIZE);
    proxy_bad(longl, 200, -EMSGSIZE);
    /* v2 */
    unsigned char b[2048];
    unsigned char a4[12] = {203, 0, 113, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb};
    size_t n = v2(b, 1, 0x11, a4, 12, 0);
    proxy_ok((char *)b, n, 2, "203.0.113.7", 8080, false);
    n = v2(b, 1, 0x11, a4, 12, 20); /* with TLVs after the addresses */
    proxy_ok((char *)b, n, 2, "203.0.113.7", 8080, false);
    unsigned char a6[36] = {0x20, 0x01, 0x0d, 0xb8, [15] = 9, [16] = 0x20, [17] = 0x01, [32] = 0, [33] = 80};
    n = v2(b, 1, 0x21, a6, 36, 0);
    proxy_ok((char *)b, n, 2, "2001:db8::9", 80, false);
    n = v2(b, 0, 0x00, NULL, 0, 0); /* LOCAL */
    proxy_ok((char *)b, n, 2, NULL, 0, true);
    n = v2(b, 1, 0x00, NULL, 0, 0); /* PROXY with UNSPEC */
    proxy_ok((char *)b, n, 2, NULL, 0, true);
    n = v2(b, 1, 0x11, a4, 8, 0); /* too short for IPv4 */
    proxy_bad((char *)b, n, -EPROTO);
    n = v2(b, 2, 0x11, a4, 12, 0); /* command 2 */
    proxy_bad((char *)b, n, -EPROTO);
    n = v2(b, 1, 0x51, a4, 12, 0); /* family 5 */
    proxy_bad((char *)b, n, -EPROTO);
    n = v2(b, 1, 0x11, a4, 12, 0);
    b[12] = 0x31; /* version 3 */
    proxy_bad((char *)b, n, -EPROTO);
    n = v2(b, 1, 0x11, a4, 12, 0);
    b[14] = 0xff; /* 65 KiB announced: over the limit before it arrives */
    proxy_bad((char *)b, 16, -EMSGSIZE);
    n = v2(b, 1, 0x11, a4, 12, 0);
    b[3] = 0; /* a broken signature */
    proxy_bad((char *)b, n, -EPROTO);
    proxy_bad("", 0, 0);
    assert_int_equal(simul_http_proxy_parse(NULL, 1, NULL), -EINVAL);
}

/* ---- client address: PROXY on a listener, trusted proxies -------------------------------- */

static int c_proxy_listener(void *arg)
{
    fixture *f = arg;
    X("PROXY TCP4 192.0.2.9 10.0.0.1 5555 80\r\n" GET("/addr"), 200, "192.0.2.9 http");
    X("PROXY TCP6 2001:db8::5 2001:db8::1 5555 80\r\n" GET("/addr"), 200, "2001:db8::5 http");
    X("PROXY UNKNOWN\r\n" GET("/addr"), 200, "127.0.0.1 http");
    unsigned char b[256];
    unsigned char a4[12] = {198, 51, 100, 4, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb};
    size_t n = v2(b, 1, 0x11, a4, 12, 5);
    memcpy(b + n, GET("/addr"), sizeof GET("/addr") - 1);
    n += sizeof GET("/addr") - 1;
    client *c = malloc(sizeof *c);
    response r;
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_sendn(c, (char *)b, n) == 0); /* binary: NUL bytes inside */
    CHECK(cl_response(c, &r, false) == 0 && r.status == 200 &&
          strcmp(r.body, "198.51.100.4 http") == 0);
    resp_free(&r);
    close(c->fd);
    free(c);
    /* no header, or a broken one: closed without an answer */
    int rc = cl_once(f->port, GET("/addr"), &r, false, NULL);
    resp_free(&r);
    CHECK(rc == -ENODATA || rc == -ECONNRESET);
    rc = cl_once(f->port, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" GET("/addr"), &r, false, NULL);
    resp_free(&r);
    CHECK(rc == -ENODATA || rc == -ECONNRESET);
    /* the forwarded headers of a peer that is not trusted are ignored */
    X("PROXY TCP4 192.0.2.9 10.0.0.1 5555 80\r\n"
      "GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n", 200, "192.0.2.9 http");
    /* a trusted one's are believed (the PROXY source is the peer the trust applies to) */
    X("PROXY TCP4 10.1.2.3 10.0.0.1 5555 80\r\n"
      "GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n",
      200, "6.6.6.6 https");
    return 0;
}

SIMUL_TASK_TEST(proxy_protocol_listener)
{
    (void)arg;
    fixture f;
    simul_http_server_opts o = {.proxy_protocol = true, .trusted_proxies = "10.0.0.0/8"};
    up(&f, &o, false);
    assert_int_equal(client_run(c_proxy_listener, &f), 0);
    down(&f);
    return 0;
}

static int c_trusted(void *arg)
{
    fixture *f = arg;
    /* peer 127.0.0.1 is trusted, as are 10/8 hops: the first untrusted from the right wins */
    X("GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.7\r\n\r\n", 200, "1.2.3.4 http");
    X("GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 9.9.9.9, 1.2.3.4\r\n\r\n", 200, "1.2.3.4 http");
    /* two field lines are one list */
    X("GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 5.5.5.5\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n",
      200, "5.5.5.5 http");
    /* all trusted: the leftmost */
    X("GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\r\n", 200, "10.0.0.1 http");
    /* junk ends the walk at the last good one */
    X("GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.1.1.1, junk, 10.0.0.3\r\n\r\n", 200, "10.0.0.3 http");
    X("GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: nothing\r\n\r\n", 200, "127.0.0.1 http");
    /* proto */
    X("GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: https\r\n\r\n", 200, "127.0.0.1 https");
    X("GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: gopher\r\n\r\n", 200, "127.0.0.1 http");
    /* Forwarded (RFC 7239) wins over the X- fields */
    X("GET /addr HTTP/1.1\r\nHost: t\r\nForwarded: for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.9\r\n"
      "X-Forwarded-For: 3.3.3.3\r\n\r\n", 200, "2001:db8::7 https");
    X("GET /addr HTTP/1.1\r\nHost: t\r\nForwarded: for=198.51.100.17;by=10.0.0.1\r\n\r\n", 200,
      "198.51.100.17 http");
    X("GET /addr HTTP/1.1\r\nHost: t\r\nForwarded: for=unknown\r\n\r\n", 200, "127.0.0.1 http");
    X("GET /addr HTTP/1.1\r\nHost: t\r\nForwarded: for=\"1.2.3.4:80\"\r\n\r\n", 200, "1.2.3.4 http");
    return 0;
}

static int c_untrusted(void *arg)
{
    fixture *f = arg;
    X("GET /addr HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
      "Forwarded: for=5.6.7.8;proto=https\r\n\r\n", 200, "127.0.0.1 http");
    return 0;
}

SIMUL_TASK_TEST(trusted_proxies)
{
    (void)arg;
    fixture f;
    simul_http_server_opts o = {.trusted_proxies = "127.0.0.1, 10.0.0.0/8"};
    up(&f, &o, false);
    assert_int_equal(client_run(c_trusted, &f), 0);
    down(&f);
    up(&f, NULL, false);
    assert_int_equal(client_run(c_untrusted, &f), 0);
    down(&f);
    simul_http_server *s;
    simul_http_app *app;
    assert_int_equal(simul_http_app_new(&app), 0);
    o.trusted_proxies = "10.0.0.0/33";
    assert_int_equal(simul_http_serve(app, "127.0.0.1", "0", &o, &s), -EINVAL);
    o.trusted_proxies = "not-an-ip";
    assert_int_equal(simul_http_serve(app, "127.0.0.1", "0", &o, &s), -EINVAL);
    simul_http_app_free(app);
    return 0;
}

/* ---- the connection cap and the access log ----------------------------------------------- */

static int c_cap(void *arg)
{
    fixture *f = arg;
    client *a = malloc(sizeof *a), *b = malloc(sizeof *b), *c = malloc(sizeof *c);
    response r;
    CHECK(cl_connect(a, f->port) == 0);
    CHECK(cl_connect(b, f->port) == 0);
    /* both served (so both accepted) */
    CHECK(cl_send(a, GET("/")) == 0 && cl_response(a, &r, false) == 0 && r.status == 200);
    resp_free(&r);
    CHECK(cl_send(b, GET("/")) == 0 && cl_response(b, &r, false) == 0 && r.status == 200);
    resp_free(&r);
    /* the third connects (the kernel's backlog) but is not accepted while two are open */
    CHECK(cl_connect(c, f->port) == 0);
    CHECK(cl_send(c, GET("/")) == 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK(cl_more(c) == -EAGAIN); /* nothing: it waits (a bound, not a measure) */
    tv.tv_sec = 20;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    close(a->fd); /* one leaves: the third is accepted and answered */
    CHECK(cl_response(c, &r, false) == 0 && r.status == 200 && strcmp(r.body, "root") == 0);
    resp_free(&r);
    close(b->fd);
    close(c->fd);
    free(a);
    free(b);
    free(c);
    return 0;
}

static int c_log_escape(void *arg)
{
    fixture *f = arg;
    X("GET /nowhere?q=%22 HTTP/1.1\r\nHost: t\r\nReferer: a\"b\\c\r\nUser-Agent: ua\xc3\xa9\r\n\r\n",
      404, NULL);
    X("GET /  HTTP/1.1\r\nHost: t\r\n\r\n", 400, NULL); /* refused by the parser */
    return 0;
}

static bool no_conns(fixture *f)
{
    return simul_http_server_connections(f->srv) == 0;
}

SIMUL_TASK_TEST(connection_cap_and_access_log)
{
    (void)arg;
    fixture f;
    simul_http_server_opts o = {.max_connections = 2, .access_log = log_line,
                                .access_log_arg = &f};
    up(&f, &o, false);
    assert_int_equal(client_run(c_cap, &f), 0);
    for (int i = 0; i < 20000 && !no_conns(&f); i++) {
        assert_int_equal(simul_sleep(0.001), 0); /* a bounded wait on state */
    }
    assert_true(no_conns(&f));
    /* three requests logged in the combined format */
    const char *l = f.log;
    int lines = 0;
    for (const char *p = l; (p = strchr(p, '\n')); p++) {
        lines++;
    }
    assert_int_equal(lines, 3);
    char when[64], line[256];
    int status = 0, bytes = 0;
    assert_int_equal(sscanf(l, "127.0.0.1 - - [%63[^]]] \"%255[^\"]\" %d %d \"-\" \"-\"", when,
                            line, &status, &bytes), 4);
    assert_string_equal(line, "GET / HTTP/1.1");
    assert_int_equal(status, 200);
    assert_int_equal(bytes, 4);
    assert_non_null(strstr(when, " +0000"));
    down(&f);
    /* quotes and control bytes a client sends are escaped: one line per request */
    f.log_len = 0;
    simul_http_server_opts o2 = {.access_log = log_line, .access_log_arg = &f};
    up(&f, &o2, false);
    assert_int_equal(client_run(c_log_escape, &f), 0);
    assert_non_null(strstr(f.log, "\"GET /nowhere?q=%22 HTTP/1.1\" 404 "));
    assert_non_null(strstr(f.log, "\"a\\x22b\\x5Cc\" \"ua\\xC3\\xA9\"\n"));
    assert_non_null(strstr(f.log, "\"-\" 400 12 \"-\" \"-\"\n"));
    down(&f);
    return 0;
}

/* ---- peers that vanish: mid-upload and mid-sendfile, nothing left open ------------------- */

static int c_vanish(void *arg)
{
    fixture *f = arg;
    for (int i = 0; i < 20; i++) {
        /* half a multipart upload (its temp file open), then gone */
        client *c = malloc(sizeof *c);
        CHECK(cl_connect(c, f->port) == 0);
        CHECK(cl_send(c, "POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; "
                         "boundary=B\r\nContent-Length: 100000\r\n\r\n--B\r\n"
                         "Content-Disposition: form-data; name=\"up\"; filename=\"x\"\r\n\r\n"
                         "some of the file") == 0);
        if (i % 2) {
            struct linger lg = {1, 0}; /* a reset rather than an EOF */
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(c->fd);
        /* a 1 MiB file asked for, a few bytes read, then gone (small buffers: sendfile waits) */
        CHECK(cl_connect(c, f->port) == 0);
        int small = 4096;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        CHECK(cl_send(c, GET("/static/big.bin")) == 0);
        CHECK(cl_more(c) > 0);
        if (i % 2) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(c->fd);
        free(c);
    }
    /* the server is unharmed */
    X(GET("/static/a.txt"), 200, "hello static\n");
    return 0;
}

SIMUL_TASK_TEST(peer_vanishes_mid_upload_and_mid_sendfile)
{
    (void)arg;
    fixture f;
    up(&f, NULL, true);
    int before = count_fds();
    assert_int_equal(client_run(c_vanish, &f), 0);
    for (int i = 0; i < 20000 && simul_http_server_connections(f.srv) != 0; i++) {
        assert_int_equal(simul_sleep(0.001), 0); /* a bounded wait on state */
    }
    assert_int_equal(simul_http_server_connections(f.srv), 0);
    assert_int_equal(count_fds(), before); /* temp files and static files all closed */
    down(&f);
    return 0;
}

/* ---- the shutdown ends event streams cleanly ---------------------------------------------- */

typedef struct sse_run {
    fixture *f;
    int result;
} sse_run;

static int c_sse_client(void *arg)
{
    sse_run *r = arg;
    response resp;
    bool closed = false;
    int rc = cl_once(r->f->port, GET("/sse-forever"), &resp, false, &closed);
    /* the whole chunked body came, its last chunk included, then the close */
    bool ok = rc == 0 && resp.status == 200 && closed &&
              strcmp(resp.body, "event: hello\nid: 1\ndata: first\n\n") == 0;
    if (!ok) {
        fprintf(stderr, "sse: rc %d status %d closed %d body [%s]\n", rc, resp.status, closed,
                resp.body ? resp.body : "");
    }
    resp_free(&resp);
    return ok ? 0 : __LINE__;
}

static int sse_client_task(void *arg)
{
    sse_run *r = arg;
    return simul_to_thread(c_sse_client, r, &r->result);
}

SIMUL_TASK_TEST(shutdown_closes_event_streams)
{
    (void)arg;
    fixture f;
    sse_cleanups = 0;
    sse_error = 0;
    assert_int_equal(simul_event_new(&sse_started), 0);
    up(&f, NULL, false);
    sse_run r = {.f = &f, .result = -1};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sse_client_task, &r, NULL), 0);
    assert_int_equal(simul_event_wait(sse_started), 0);
    /* a long deadline: the stream must not wait for it */
    int64_t t0 = simul_now_ns();
    assert_int_equal(simul_http_server_shutdown(f.srv, 60), 0);
    assert_true(simul_now_ns() - t0 < (int64_t)30e9); /* a bound, never a measure */
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(r.result, 0);
    assert_int_equal(sse_cleanups, 1);
    assert_int_equal(sse_error, -ECANCELED);
    simul_http_server_free(f.srv);
    simul_http_app_free(f.app);
    run_cmd("rm -rf %s", f.dir);
    simul_event_free(sse_started);
    return 0;
}

/* ---- on threads: a graceful drain --------------------------------------------------------- */

static atomic_int t_started, t_release;

static int h_slow_t(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req, (void)arg;
    atomic_store(&t_started, 1);
    for (int i = 0; i < 200000 && !atomic_load(&t_release); i++) {
        int rc = simul_sleep(0.001); /* polls a flag set by another thread: a bounded wait */
        if (rc < 0) {
            return rc;
        }
    }
    return simul_http_response_text(res, 200, "finished");
}

typedef struct tdrain {
    simul_http_threads *ts;
    int port, result, client;
} tdrain;

static int td_client(void *arg)
{
    tdrain *d = arg;
    response r;
    bool closed = false;
    int rc = cl_once(d->port, GET("/slow-t"), &r, false, &closed);
    char v[64];
    bool ok = rc == 0 && r.status == 200 && strcmp(r.body, "finished") == 0 &&
              hdr_get(r.head, "Connection", v, sizeof v) && strcmp(v, "close") == 0 && closed;
    resp_free(&r);
    return ok ? 0 : __LINE__;
}

static int td_client_task(void *arg)
{
    tdrain *d = arg;
    return simul_to_thread(td_client, d, &d->client);
}

static int td_shutdown(void *arg)
{
    tdrain *d = arg;
    d->result = simul_http_threads_shutdown(d->ts, 30);
    return 0;
}

static int td_shutdown_task(void *arg)
{
    int r;
    return simul_to_thread(td_shutdown, arg, &r);
}

/* connect() refused: every thread stopped listening */
static int td_refused(void *arg)
{
    tdrain *d = arg;
    for (int i = 0; i < 20000; i++) {
        client c;
        int rc = cl_connect(&c, d->port);
        if (rc == -ECONNREFUSED) {
            return 0;
        }
        if (rc == 0) {
            close(c.fd);
        }
        usleep(1000);
    }
    return __LINE__;
}

SIMUL_TASK_TEST(threads_drain)
{
    (void)arg;
    simul_http_app *app;
    assert_int_equal(simul_http_app_new(&app), 0);
    assert_int_equal(simul_http_route(app, "GET", "/slow-t", h_slow_t, NULL), 0);
    atomic_store(&t_started, 0);
    atomic_store(&t_release, 0);
    tdrain *d = calloc(1, sizeof *d);
    assert_int_equal(simul_http_serve_threads(app, "127.0.0.1", "0", 2, NULL, &d->ts), 0);
    d->port = simul_http_threads_port(d->ts);
    d->client = -1;
    simul_task *ct, *st;
    assert_int_equal(simul_task_spawn(&ct, td_client_task, d, NULL), 0);
    for (int i = 0; i < 20000 && !atomic_load(&t_started); i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_true(atomic_load(&t_started));
    assert_int_equal(simul_task_spawn(&st, td_shutdown_task, d, NULL), 0);
    int refused = -1;
    assert_int_equal(simul_to_thread(td_refused, d, &refused), 0);
    assert_int_equal(refused, 0); /* draining: no longer accepting, the request still running */
    atomic_store(&t_release, 1);
    assert_int_equal(simul_task_join(st, NULL), 0);
    assert_int_equal(simul_task_join(ct, NULL), 0);
    assert_int_equal(d->result, 0); /* it finished within the deadline */
    assert_int_equal(d->client, 0); /* answered in full, with Connection: close */
    simul_http_threads_free(d->ts);
    free(d);
    simul_http_app_free(app);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hooks_and_error_handlers),
        cmocka_unit_test(static_files),
        cmocka_unit_test(forms),
        cmocka_unit_test(proxy_protocol_parser),
        cmocka_unit_test(proxy_protocol_listener),
        cmocka_unit_test(trusted_proxies),
        cmocka_unit_test(connection_cap_and_access_log),
        cmocka_unit_test(threads_drain),
        cmocka_unit_test(shutdown_closes_event_streams),
        cmocka_unit_test(peer_vanishes_mid_upload_and_mid_sendfile),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_http_features");
}
