/* test_ws_client.c — simul_ws_connect, the WebSocket client by URL: against simul's own server
 * (plain, and wss with simul_http_serve over TLS), a python3-websockets server, through a
 * CONNECT proxy, and against servers scripted here that answer the handshake wrong (non-101,
 * missing or wrong Accept, extensions, malformed or endless heads, stalls, vanishing mid-answer,
 * frames right behind the 101). Nothing waits on time: timeouts only bound waits, and the cases
 * that check a timeout set it small and the server never answers. */
#include "test_main_helpers.h"

#include <simul/http.h>
#ifdef SIMUL_TLS_CERTS
#include <simul/tls.h>
#endif

#include "test_ws_helpers.h"

/* ---- simul's own server ------------------------------------------------------------------- */

static const char *protos[] = {"chat", "superchat"};
static const char *good_origins[] = {"https://good.example"};
static simul_ws_opts listed = {.origins = good_origins, .norigins = 1};

static int h_echo(simul_http_request *req, simul_http_response *res, void *arg)
{
    simul_ws_opts o = {.subprotocols = protos, .nsubprotocols = 2};
    if (arg) {
        o = *(simul_ws_opts *)arg;
    }
    simul_ws *ws;
    int rc = simul_ws_upgrade(req, res, &o, &ws);
    if (rc < 0) {
        return rc == -EPROTO ? 0 : rc;
    }
    ws_echo_all(ws);
    simul_ws_close(ws, 0, NULL);
    return 0;
}

/* /fields: the first message says what the handshake carried, then echo. */
static int h_fields(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    char first[1024];
    const char *ck = simul_http_request_header(req, "Cookie");
    const char *au = simul_http_request_header(req, "Authorization");
    const char *ua = simul_http_request_header(req, "User-Agent");
    const char *org = simul_http_request_header(req, "Origin");
    snprintf(first, sizeof first, "target=%s cookie=%s auth=%s ua=%s origin=%s",
             simul_http_request_target(req), ck ? ck : "-", au ? au : "-", ua ? ua : "-",
             org ? org : "-");
    simul_ws_opts o = {.origins = (const char *const[]){"*"}, .norigins = 1};
    simul_ws *ws;
    int rc = simul_ws_upgrade(req, res, &o, &ws);
    if (rc < 0) {
        return rc == -EPROTO ? 0 : rc;
    }
    simul_ws_send_text(ws, first);
    ws_echo_all(ws);
    simul_ws_close(ws, 0, NULL);
    return 0;
}

static int h_login(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    simul_http_response_header(res, "Set-Cookie", "sid=s3cret; Path=/");
    return simul_http_response_text(res, 200, "in");
}

typedef struct fixture {
    simul_http_app *app;
    simul_http_server *srv;
    int port;
    char base[64]; /* "ws://127.0.0.1:port" */
} fixture;

static void up_opts(fixture *f, const simul_http_server_opts *so, const char *scheme)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(simul_http_app_new(&f->app), 0);
    assert_int_equal(simul_http_route(f->app, "GET", "/echo", h_echo, NULL), 0);
    assert_int_equal(simul_http_route(f->app, "GET", "/listed", h_echo, &listed), 0);
    assert_int_equal(simul_http_route(f->app, "GET", "/fields", h_fields, NULL), 0);
    assert_int_equal(simul_http_route(f->app, "GET", "/login", h_login, NULL), 0);
    assert_int_equal(simul_http_serve(f->app, "127.0.0.1", "0", so, &f->srv), 0);
    f->port = simul_http_server_port(f->srv);
    snprintf(f->base, sizeof f->base, "%s://127.0.0.1:%d", scheme, f->port);
}

static void down(fixture *f)
{
    ws_server_down(f->srv, f->app);
}

static char *url(const char *base, const char *path)
{
    static char buf[4][256];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, sizeof buf[0], "%s%s", base, path);
    return b;
}

/* Sends text, expects it echoed. */
static void echo(simul_ws *ws, const char *text)
{
    const char *d;
    size_t n;
    assert_int_equal(simul_ws_send_text(ws, text), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, text);
}

/* Expects simul_ws_connect to fail with rc, status and words in its reason. */
static void expect_fail(simul_http_session *s, const char *u, simul_ws_connect_opts *o, int rc,
                        int status, const char *words)
{
    char why[512] = "x";
    simul_ws_connect_opts none = {0};
    if (!o) {
        o = &none;
    }
    o->why = why;
    o->whylen = sizeof why;
    int st = -1;
    simul_ws *ws = NULL;
    int got = simul_ws_connect(s, u, o, &st, &ws);
    if (got != rc || st != status || !strstr(why, words)) {
        fail_msg("%s: got %d (%s) status %d, why \"%s\"; wanted %d status %d with \"%s\"", u, got,
                 simul_strerror(got), st, why, rc, status, words);
    }
    assert_null(ws);
    o->why = NULL;
}

SIMUL_TASK_TEST(own_server)
{
    (void)arg;
    int fds0 = test_fd_count();
    fixture f;
    up_opts(&f, NULL, "ws");
    simul_http_session_opts so = {.cookies = true, .user_agent = "wsc-test"};
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(&so, &s), 0);
    /* Subprotocols offered, the server's first preference among them chosen. */
    static const char *offer[] = {"superchat", "chat"};
    simul_ws_connect_opts o = {.ws = {.subprotocols = offer, .nsubprotocols = 2}};
    simul_ws *ws;
    int st = 0;
    assert_int_equal(simul_ws_connect(s, url(f.base, "/echo"), &o, &st, &ws), 0);
    assert_int_equal(st, 101);
    assert_string_equal(simul_ws_subprotocol(ws), "chat");
    echo(ws, "h\xc3\xa9llo");
    char *big = malloc(300000);
    memset(big, 'b', 300000);
    const char *d;
    size_t n;
    assert_int_equal(simul_ws_send(ws, SIMUL_WS_BINARY, big, 300000), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_BINARY);
    assert_int_equal(n, 300000);
    assert_memory_equal(d, big, n);
    free(big);
    /* Never pooled: the session has no connection of its own. */
    assert_int_equal(simul_http_session_connections(s), 0);
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    /* Cookies the session keeps, extra fields, Origin, the User-Agent, the query kept. */
    simul_http_client_response *r;
    char lu[128];
    snprintf(lu, sizeof lu, "http://127.0.0.1:%d/login", f.port);
    assert_int_equal(simul_http_session_get(s, lu, &r), 0);
    simul_http_client_response_close(r);
    const char *hdrs[] = {"Authorization", "Bearer t0ken", NULL};
    simul_ws_connect_opts fo = {.origin = "https://app.example", .headers = hdrs};
    assert_int_equal(simul_ws_connect(s, url(f.base, "/fields?room=1#frag"), &fo, NULL, &ws), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "target=/fields?room=1 cookie=sid=s3cret auth=Bearer t0ken "
                           "ua=wsc-test origin=https://app.example");
    echo(ws, "after the fields");
    assert_int_equal(simul_ws_close(ws, 4000, "done"), 0);
    /* http:// is taken as aiohttp takes it. */
    char hu[128];
    snprintf(hu, sizeof hu, "http://127.0.0.1:%d/echo", f.port);
    assert_int_equal(simul_ws_connect(s, hu, NULL, NULL, &ws), 0);
    echo(ws, "over an http URL");
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    /* An origin check refuses: 403 and its words. */
    simul_ws_connect_opts bad = {.origin = "https://evil.example"};
    expect_fail(s, url(f.base, "/listed"), &bad, -EPROTO, 403, "403 Forbidden: WebSocket: origin "
                                                                "not allowed");
    simul_ws_connect_opts good = {.origin = "https://good.example"};
    assert_int_equal(simul_ws_connect(s, url(f.base, "/listed"), &good, NULL, &ws), 0);
    echo(ws, "allowed");
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    /* A route that is not a WebSocket. */
    expect_fail(s, url(f.base, "/login"), NULL, -EPROTO, 200, "answered 200 OK");
    expect_fail(s, url(f.base, "/nowhere"), NULL, -EPROTO, 404, "404");
    /* Many opens and closes: no fd left behind. */
    for (int i = 0; i < 50; i++) {
        assert_int_equal(simul_ws_connect(s, url(f.base, "/echo"), NULL, NULL, &ws), 0);
        echo(ws, "again");
        assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    }
    assert_int_equal(simul_http_session_close(s), 0);
    down(&f); /* (the server's ends of the refused handshakes close with it) */
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

SIMUL_TASK_TEST(bad_arguments)
{
    (void)arg;
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    simul_ws *ws;
    expect_fail(s, "ftp://127.0.0.1/", NULL, -EINVAL, 0, "not a ws://");
    expect_fail(s, "ws://", NULL, -EINVAL, 0, "ws://");
    expect_fail(s, "ws://user:pw@127.0.0.1/", NULL, -EINVAL, 0, "user information");
    expect_fail(s, "ws://127.0.0.1:99999/", NULL, -EINVAL, 0, "invalid port");
    const char *crlf[] = {"X-A", "b\r\nInjected: 1", NULL};
    simul_ws_connect_opts o = {.headers = crlf};
    expect_fail(s, "ws://127.0.0.1:1/", &o, -EINVAL, 0, "bad request field X-A");
    const char *badname[] = {"X A", "b", NULL};
    o.headers = badname;
    expect_fail(s, "ws://127.0.0.1:1/", &o, -EINVAL, 0, "bad request field");
    const char *own[] = {"sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA==", NULL};
    o.headers = own;
    expect_fail(s, "ws://127.0.0.1:1/", &o, -EINVAL, 0, "handshake's own field");
    simul_ws_connect_opts org = {.origin = "https://a\nb"};
    expect_fail(s, "ws://127.0.0.1:1/", &org, -EINVAL, 0, "Origin");
    static const char *badproto[] = {"a b"};
    simul_ws_connect_opts bp = {.ws = {.subprotocols = badproto, .nsubprotocols = 1}};
    /* (checked after the connect: a closed port refuses first) */
    expect_fail(s, "ws://127.0.0.1:1/", &bp, -ECONNREFUSED, 0, "refused");
    simul_ws_connect_opts neg = {.open_timeout = -1};
    expect_fail(s, "ws://127.0.0.1:1/", &neg, -EINVAL, 0, "open_timeout");
    assert_int_equal(simul_ws_connect(NULL, "ws://127.0.0.1/", NULL, NULL, &ws), -EINVAL);
    assert_int_equal(simul_ws_connect(s, NULL, NULL, NULL, &ws), -EINVAL);
    assert_int_equal(simul_http_session_close(s), 0);
    return 0;
}

/* ---- scripted servers: the handshake answered wrong ----------------------------------------- */

typedef struct script_state {
    const char *answer;  /* printf format with %s for the right Accept; NULL: never answer */
    const void *after;   /* bytes sent right behind the answer */
    size_t after_len;
    bool close_after;    /* close right after the answer (else read until the client leaves) */
    size_t pad;          /* that many bytes of header fields before the answer's end */
    simul_event *got_request;
    char request[4096];
} script_state;

static int script_handler(simul_stream *s, void *arg)
{
    script_state *ss = arg;
    const char *data;
    long n = simul_stream_readuntil(s, "\r\n\r\n", 4, &data);
    if (n <= 0) {
        return 0;
    }
    snprintf(ss->request, sizeof ss->request, "%.*s", (int)n, data);
    simul_event_set(ss->got_request);
    char key[64] = "", accept[29] = "";
    const char *k = strcasestr(ss->request, "\r\nSec-WebSocket-Key: ");
    if (k) {
        sscanf(k + 21, "%63[^\r]", key);
    }
    simul_ws_accept_key(key, strlen(key), accept);
    if (ss->answer) {
        static char head[8192];
        int hl = snprintf(head, sizeof head, ss->answer, accept);
        if (ss->pad) {
            /* An endless head: the answer's fields without its final CRLF, then padding. */
            simul_stream_write(s, head, (size_t)hl - 2);
            char line[128];
            memset(line, 'p', sizeof line);
            memcpy(line, "X-Pad: ", 7);
            line[126] = '\r';
            line[127] = '\n';
            for (size_t i = 0; i < ss->pad / sizeof line; i++) {
                if (simul_stream_write(s, line, sizeof line) < 0 || simul_stream_drain(s) < 0) {
                    return 0;
                }
            }
        } else {
            simul_stream_write(s, head, (size_t)hl);
        }
        if (ss->after_len) {
            simul_stream_write(s, ss->after, ss->after_len);
        }
        simul_stream_drain(s);
        if (ss->close_after) {
            return 0;
        }
    }
    char buf[4096];
    while (simul_stream_read(s, buf, sizeof buf) > 0) {
        /* until the client leaves */
    }
    return 0;
}

typedef struct sfix {
    simul_server *srv;
    script_state ss;
    char url[128];
} sfix;

static void sup(sfix *f, const char *answer)
{
    memset(f, 0, sizeof *f);
    f->ss.answer = answer;
    assert_int_equal(simul_event_new(&f->ss.got_request), 0);
    assert_int_equal(simul_start_server("127.0.0.1", "0", script_handler, &f->ss, &f->srv), 0);
    snprintf(f->url, sizeof f->url, "ws://127.0.0.1:%d/chat", simul_server_port(f->srv));
}

static void sdown(sfix *f)
{
    simul_server_close(f->srv);
    simul_server_abort_clients(f->srv);
    simul_server_wait_closed(f->srv);
    simul_server_free(f->srv);
    simul_event_free(f->ss.got_request);
}

#define UP101 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"

typedef struct bad_case {
    const char *answer;
    bool close_after;
    int rc, status;
    const char *words;
} bad_case;

static const bad_case bad_cases[] = {
    {"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
     false, -EPROTO, 426, "426 Upgrade Required (it wants another protocol version)"},
    {"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nno\r\nentry", false, -EPROTO, 403,
     "403 Forbidden: no entry"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, -EPROTO, 200, "200 OK: ok"},
    {UP101 "\r\n", false, -EPROTO, 101, "lacks Sec-WebSocket-Accept"},
    {UP101 "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", false, -EPROTO, 101,
     "wrong Sec-WebSocket-Accept"},
    {UP101 "Sec-WebSocket-Accept: %1$s\r\nSec-WebSocket-Accept: %1$s\r\n\r\n", false, -EPROTO, 101,
     "wrong Sec-WebSocket-Accept"},
    {"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
     "%s\r\n\r\n", false, -EPROTO, 101, "lacks Upgrade: websocket"},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: "
     "%s\r\n\r\n", false, -EPROTO, 101, "lacks Connection: upgrade"},
    {UP101 "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
     false, -EPROTO, 101, "extension \"permessage-deflate\""},
    {UP101 "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n", false, -EPROTO,
     101, "subprotocol \"mqtt\", which was not offered"},
    /* Malformed: the HTTP parser's strict rules and their reasons. */
    {"HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n", false, -EPROTO, 0,
     "malformed response: LF without CR"},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade : websocket\r\n\r\n", false, -EPROTO, 0,
     "malformed response: whitespace before header colon"},
    {"HTTP/1.1 1O1 Switching Protocols\r\n\r\n", false, -EPROTO, 0, "malformed response"},
    {"SSH-2.0-OpenSSH_9.2\r\n\r\n", false, -EPROTO, 0, "malformed response"},
    /* Vanishing: before any answer, and in the middle of the head. */
    {"", true, -ECONNRESET, 0, "closed the connection without answering"},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgr", true, -ECONNRESET, 0,
     "closed the connection in the middle of its answer"},
};

SIMUL_TASK_TEST(bad_servers)
{
    (void)arg;
    simul_http_session *s;
    simul_http_session_opts so = {.cookies = true};
    assert_int_equal(simul_http_session_new(&so, &s), 0);
    int fds0 = test_fd_count();
    static const char *offer[] = {"chat"};
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        const bad_case *c = &bad_cases[i];
        sfix f;
        sup(&f, c->answer);
        f.ss.close_after = c->close_after;
        simul_ws_connect_opts o = {.ws = {.subprotocols = offer, .nsubprotocols = 1}};
        expect_fail(s, f.url, &o, c->rc, c->status, c->words);
        sdown(&f);
    }
    /* An endless head: over the limit, -EMSGSIZE (the parser's words). */
    sfix f;
    sup(&f, UP101 "Sec-WebSocket-Accept: %s\r\n\r\n");
    f.ss.pad = 1 << 20;
    expect_fail(s, f.url, NULL, -EMSGSIZE, 0, "over a limit: too many header fields");
    sdown(&f);
    /* Smaller limits are the caller's to set. */
    sup(&f, UP101 "Sec-WebSocket-Accept: %s\r\nX-Long: 0123456789012345678901234567890123456789\r\n\r\n");
    simul_ws_connect_opts lim = {.limits = {.max_header_bytes = 64}};
    expect_fail(s, f.url, &lim, -EMSGSIZE, 0, "over a limit: header section too large");
    sdown(&f);
    /* A subprotocol name that is not a token: refused before the request goes out. */
    sup(&f, NULL);
    static const char *badproto[] = {"a b"};
    simul_ws_connect_opts bp = {.ws = {.subprotocols = badproto, .nsubprotocols = 1}};
    expect_fail(s, f.url, &bp, -EINVAL, 0, "subprotocol name that is not a token");
    assert_true(f.ss.request[0] == '\0');
    sdown(&f);
    /* A stalled handshake: the open timeout, in words. */
    sup(&f, NULL);
    simul_ws_connect_opts quick = {.open_timeout = 0.5};
    expect_fail(s, f.url, &quick, -ETIMEDOUT, 0,
                "WebSocket open timed out after 0.5 s (waiting for the handshake answer)");
    assert_true(f.ss.request[0] != '\0'); /* it was the answer that never came */
    sdown(&f);
    /* The caller's own deadline scope works the same. */
    sup(&f, NULL);
    simul_scope dl;
    simul_scope_timeout(&dl, 0.5);
    expect_fail(s, f.url, NULL, -ETIMEDOUT, 0, "deadline");
    assert_int_equal(simul_scope_end(&dl), 1);
    sdown(&f);
    assert_int_equal(test_fd_count(), fds0);
    assert_int_equal(simul_http_session_close(s), 0);
    return 0;
}

/* The 101's fields for the caller (websockets' response_headers), and the cap on their count:
 * a clear error past it, and the caller's limit to raise it. */
SIMUL_TASK_TEST(handshake_answer_fields)
{
    (void)arg;
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    sfix f;
    sup(&f, UP101 "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: chat\r\n"
                  "X-Server-Id: node 7\r\nx-trace:  abc  \r\n\r\n");
    static const char *offer[] = {"chat"};
    /* (the scripted server never answers a close: a short close_timeout) */
    simul_ws_connect_opts o = {.ws = {.subprotocols = offer, .nsubprotocols = 1,
                                      .close_timeout = 0.1}};
    simul_ws *ws;
    assert_int_equal(simul_ws_connect(s, f.url, &o, NULL, &ws), 0);
    assert_int_equal(simul_ws_response_header_count(ws), 6);
    const char *n, *v;
    assert_int_equal(simul_ws_response_header_at(ws, 0, &n, &v), 0);
    assert_string_equal(n, "Upgrade");
    assert_string_equal(v, "websocket");
    assert_int_equal(simul_ws_response_header_at(ws, 4, &n, &v), 0);
    assert_string_equal(n, "X-Server-Id");
    assert_string_equal(v, "node 7");
    assert_int_equal(simul_ws_response_header_at(ws, 6, &n, &v), -ERANGE);
    assert_string_equal(simul_ws_response_header(ws, "x-server-id"), "node 7");
    assert_string_equal(simul_ws_response_header(ws, "X-Trace"), "abc");
    assert_string_equal(simul_ws_response_header(ws, "sec-websocket-protocol"), "chat");
    assert_null(simul_ws_response_header(ws, "Sec-WebSocket-Extensions"));
    assert_string_equal(simul_ws_subprotocol(ws), "chat");
    assert_null(simul_ws_extensions(ws));
    assert_int_equal(simul_ws_close(ws, 0, NULL), -ETIMEDOUT);
    sdown(&f);
    /* 150 fields: over the default 100, refused in words; accepted under a raised limit. */
    static char big[150 * 24 + 256];
    size_t k = (size_t)snprintf(big, sizeof big, UP101 "Sec-WebSocket-Accept: %%s\r\n");
    for (int i = 0; i < 150; i++) {
        k += (size_t)snprintf(big + k, sizeof big - k, "X-F%d: %d\r\n", i, i);
    }
    snprintf(big + k, sizeof big - k, "\r\n");
    sup(&f, big);
    expect_fail(s, f.url, NULL, -EMSGSIZE, 0, "too many header fields (more than 100: "
                                              "limits.max_headers)");
    sdown(&f);
    sup(&f, big);
    char why[256] = "";
    simul_ws_connect_opts raised = {.limits = {.max_headers = 200, .max_header_bytes = 16384},
                                    .ws = {.close_timeout = 0.1}, .why = why,
                                    .whylen = sizeof why};
    int rc = simul_ws_connect(s, f.url, &raised, NULL, &ws);
    if (rc != 0) {
        fail_msg("raised limit: %d %s", rc, why);
    }
    assert_int_equal(simul_ws_response_header_count(ws), 153);
    assert_string_equal(simul_ws_response_header(ws, "x-f149"), "149");
    assert_int_equal(simul_ws_close(ws, 0, NULL), -ETIMEDOUT);
    sdown(&f);
    sup(&f, big);
    simul_ws_connect_opts silly = {.limits = {.max_headers = 1000000}};
    expect_fail(s, f.url, &silly, -EINVAL, 0, "max_headers over 100000");
    sdown(&f);
    assert_int_equal(simul_http_session_close(s), 0);
    return 0;
}

/* A 101 with frames right behind it in the same write, a 100 before it, a cookie on it. */
SIMUL_TASK_TEST(frames_behind_the_101)
{
    (void)arg;
    simul_http_session *s;
    simul_http_session_opts so = {.cookies = true};
    assert_int_equal(simul_http_session_new(&so, &s), 0);
    sfix f;
    sup(&f, "HTTP/1.1 100 Continue\r\n\r\n" UP101 "Sec-WebSocket-Accept: %s\r\n"
            "Set-Cookie: ws=yes; Path=/\r\n\r\n");
    static const uint8_t frames[] = {0x81, 5, 'h', 'e', 'l', 'l', 'o',      /* text */
                                     0x89, 2, 'p', '1',                      /* ping */
                                     0x82, 3, 1, 2, 3,                       /* binary */
                                     0x88, 6, 0x0f, 0xa3, 'b', 'y', 'e', '!'}; /* close 4003 */
    f.ss.after = frames;
    f.ss.after_len = sizeof frames;
    simul_ws *ws;
    int st;
    assert_int_equal(simul_ws_connect(s, f.url, NULL, &st, &ws), 0);
    assert_int_equal(st, 101);
    const char *d;
    size_t n;
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "hello");
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_BINARY);
    assert_int_equal(n, 3);
    assert_memory_equal(d, "\1\2\3", 3);
    assert_int_equal(simul_ws_recv(ws, &d, &n), 0);
    assert_int_equal(simul_ws_close_code(ws), 4003);
    assert_string_equal(simul_ws_close_reason(ws), "bye!");
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    char buf[32];
    char cu[128];
    snprintf(cu, sizeof cu, "http://127.0.0.1:%d/", simul_server_port(f.srv));
    assert_non_null(simul_http_session_cookie(s, cu, "ws", buf, sizeof buf));
    assert_string_equal(buf, "yes");
    /* The request as sent: Host with its port, the path, the handshake fields. */
    assert_non_null(strstr(f.ss.request, "GET /chat HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", simul_server_port(f.srv));
    assert_non_null(strstr(f.ss.request, host));
    assert_non_null(strstr(f.ss.request, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_non_null(strstr(f.ss.request, "\r\nUser-Agent: simul-http\r\n"));
    assert_null(strstr(f.ss.request, "Cookie")); /* none for this origin yet */
    sdown(&f);
    assert_int_equal(simul_http_session_close(s), 0);
    return 0;
}

/* Cancelled mid-handshake: the connecting task gets -ECANCELED, nothing leaks. */
typedef struct cancel_arg {
    simul_http_session *s;
    const char *url;
    int rc;
} cancel_arg;

static int connect_task(void *arg)
{
    cancel_arg *a = arg;
    simul_ws *ws = NULL;
    a->rc = simul_ws_connect(a->s, a->url, NULL, NULL, &ws);
    if (ws) {
        simul_ws_close(ws, 0, NULL);
    }
    return 0;
}

SIMUL_TASK_TEST(cancel_mid_handshake)
{
    (void)arg;
    int fds0 = test_fd_count();
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    sfix f;
    sup(&f, NULL);
    cancel_arg ca = {s, f.url, 1};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, connect_task, &ca, NULL), 0);
    assert_int_equal(simul_event_wait(f.ss.got_request), 0); /* the request is out */
    simul_task_cancel(t);
    simul_task_join(t, NULL);
    assert_int_equal(ca.rc, -ECANCELED);
    sdown(&f);
    assert_int_equal(simul_http_session_close(s), 0);
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

/* ---- through a CONNECT proxy ---------------------------------------------------------------- */

typedef struct proxy_state {
    int connects;
    char target[160];
} proxy_state;

typedef struct pipe_arg {
    simul_stream *from, *to;
} pipe_arg;

static int pipe_task(void *arg)
{
    pipe_arg *p = arg;
    char buf[8192];
    long n;
    while ((n = simul_stream_read(p->from, buf, sizeof buf)) > 0) {
        if (simul_stream_write(p->to, buf, (size_t)n) < 0 || simul_stream_drain(p->to) < 0) {
            break;
        }
    }
    return 0;
}

static int proxy_handler(simul_stream *s, void *arg)
{
    proxy_state *ps = arg;
    const char *data;
    long n = simul_stream_readuntil(s, "\r\n\r\n", 4, &data);
    if (n <= 0) {
        return 0;
    }
    char head[4096], host[128] = "", port[16] = "";
    snprintf(head, sizeof head, "%.*s", (int)n, data);
    if (sscanf(head, "CONNECT %127[^:]:%15[0-9] HTTP/1.1", host, port) != 2) {
        simul_stream_write(s, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 47);
        simul_stream_drain(s);
        return 0;
    }
    ps->connects++;
    snprintf(ps->target, sizeof ps->target, "%s:%s", host, port);
    simul_stream *upstream;
    if (simul_open_connection(host, port, &upstream) < 0) {
        const char *bad = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
        simul_stream_write(s, bad, strlen(bad));
        simul_stream_drain(s);
        return 0;
    }
    const char *ok = "HTTP/1.1 200 Connection established\r\n\r\n";
    simul_stream_write(s, ok, strlen(ok));
    pipe_arg down = {upstream, s}, upw = {s, upstream};
    simul_task *t;
    if (simul_task_spawn(&t, pipe_task, &down, NULL) == 0) {
        pipe_task(&upw);
        simul_stream_abort(upstream);
        simul_task_cancel(t);
        simul_task_join(t, NULL);
    }
    simul_stream_close(upstream);
    return 0;
}

static void proxy_up(proxy_state *ps, simul_server **proxy, char *purl, size_t n)
{
    memset(ps, 0, sizeof *ps);
    assert_int_equal(simul_start_server("127.0.0.1", "0", proxy_handler, ps, proxy), 0);
    snprintf(purl, n, "http://127.0.0.1:%d", simul_server_port(*proxy));
}

static void proxy_down(simul_server *proxy)
{
    simul_server_close(proxy);
    simul_server_abort_clients(proxy);
    simul_server_wait_closed(proxy);
    simul_server_free(proxy);
}

SIMUL_TASK_TEST(through_a_proxy)
{
    (void)arg;
    fixture f;
    up_opts(&f, NULL, "ws");
    proxy_state ps;
    simul_server *proxy;
    char purl[64];
    proxy_up(&ps, &proxy, purl, sizeof purl);
    simul_http_session_opts so = {.proxy = purl};
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(&so, &s), 0);
    simul_ws *ws;
    assert_int_equal(simul_ws_connect(s, url(f.base, "/echo"), NULL, NULL, &ws), 0);
    echo(ws, "through the tunnel");
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    assert_int_equal(ps.connects, 1);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", f.port);
    assert_string_equal(ps.target, want);
    /* The proxy cannot reach the target: its refusal in words. */
    expect_fail(s, "ws://127.0.0.1:1/echo", NULL, -ECONNREFUSED, 0,
                "proxy refused CONNECT to 127.0.0.1:1: 502");
    assert_int_equal(simul_http_session_close(s), 0);
    proxy_down(proxy);
    down(&f);
    return 0;
}

/* ---- wss: simul's own server over TLS --------------------------------------------------------- */

#ifdef SIMUL_TLS_CERTS
SIMUL_TASK_TEST(wss_own_server)
{
    (void)arg;
    simul_tls_config *cfg;
    assert_int_equal(simul_tls_config_new_server(&cfg), 0);
    assert_int_equal(simul_tls_config_set_cert(cfg, SIMUL_TLS_CERTS "/server.crt",
                                               SIMUL_TLS_CERTS "/server.key", NULL, 0), 0);
    simul_http_server_opts sopts = {SIMUL_HTTP_TLS(cfg)};
    fixture f;
    up_opts(&f, &sopts, "wss");
    int fds0 = test_fd_count();
    /* Verification on by default: the suite's CA is unknown to the system's store. */
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    expect_fail(s, url(f.base, "/echo"), NULL, -EKEYREJECTED, 0,
                "certificate from an unknown CA");
    assert_int_equal(simul_http_session_close(s), 0);
    /* With the CA: the name is checked too (localhost and 127.0.0.1 are in the certificate). */
    simul_http_session_opts so = {.ca_file = SIMUL_TLS_CERTS "/ca.crt", .cookies = true};
    assert_int_equal(simul_http_session_new(&so, &s), 0);
    simul_ws *ws;
    char why[256] = "";
    simul_ws_connect_opts o = {.why = why, .whylen = sizeof why};
    int rc = simul_ws_connect(s, url(f.base, "/echo"), &o, NULL, &ws);
    if (rc < 0) {
        fail_msg("wss: %s (%s)", simul_strerror(rc), why);
    }
    echo(ws, "over TLS");
    char *big = malloc(200000);
    memset(big, 't', 200000);
    const char *d;
    size_t n;
    assert_int_equal(simul_ws_send(ws, SIMUL_WS_BINARY, big, 200000), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_BINARY);
    assert_int_equal(n, 200000);
    assert_memory_equal(d, big, n);
    free(big);
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    char lu[128];
    snprintf(lu, sizeof lu, "https://127.0.0.1:%d/login", f.port);
    simul_http_client_response *r;
    assert_int_equal(simul_http_session_get(s, lu, &r), 0);
    simul_http_client_response_close(r);
    char wu[128];
    snprintf(wu, sizeof wu, "wss://localhost:%d/fields", f.port);
    assert_int_equal(simul_ws_connect(s, wu, NULL, NULL, &ws), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_non_null(strstr(d, "target=/fields cookie=-")); /* another host: no cookie */
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    assert_int_equal(simul_ws_connect(s, url(f.base, "/fields"), NULL, NULL, &ws), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_non_null(strstr(d, "cookie=sid=s3cret"));
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    /* A graceful shutdown of the TLS server reaches an open client as close 1001. */
    assert_int_equal(simul_ws_connect(s, url(f.base, "/echo"), NULL, NULL, &ws), 0);
    echo(ws, "before the shutdown");
    /* wss through a CONNECT proxy: TLS end to end inside the tunnel. */
    proxy_state ps;
    simul_server *proxy;
    char purl[64];
    proxy_up(&ps, &proxy, purl, sizeof purl);
    simul_http_session_opts po = {.ca_file = SIMUL_TLS_CERTS "/ca.crt", .proxy = purl};
    simul_http_session *ps_s;
    assert_int_equal(simul_http_session_new(&po, &ps_s), 0);
    simul_ws *pws;
    assert_int_equal(simul_ws_connect(ps_s, url(f.base, "/echo"), NULL, NULL, &pws), 0);
    echo(pws, "TLS through the tunnel");
    assert_int_equal(simul_ws_close(pws, 0, NULL), 0);
    assert_int_equal(ps.connects, 1);
    assert_int_equal(simul_http_session_close(ps_s), 0);
    proxy_down(proxy);
    assert_int_equal(simul_http_server_shutdown(f.srv, 10), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), 0);
    assert_int_equal(simul_ws_close_code(ws), SIMUL_WS_CLOSE_GOING_AWAY);
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    assert_int_equal(simul_http_server_connections(f.srv), 0);
    simul_http_server_free(f.srv);
    simul_http_app_free(f.app);
    assert_int_equal(simul_http_session_close(s), 0);
    assert_int_equal(test_fd_count(), fds0 - 1); /* the server's listening socket is gone too */
    simul_tls_config_free(cfg);
    return 0;
}
#endif

/* ---- python3-websockets as the server ------------------------------------------------------- */

static const char py_server[] =
    "import asyncio, sys\n"
    "from websockets.server import serve\n"
    "from websockets.exceptions import ConnectionClosed\n"
    "async def handler(ws):\n"
    "    try:\n"
    "        hdr = ws.request_headers if hasattr(ws, 'request_headers') else ws.request.headers\n"
    "        await ws.send('auth=' + hdr.get('Authorization', '-'))\n"
    "        async for msg in ws:\n"
    "            await ws.send(msg)\n"
    "            if msg == 'bye':\n"
    "                await ws.close(4003, 'py bye')\n"
    "    except ConnectionClosed:\n"
    "        pass\n"
    "    done.set_result(None)\n"
    "async def main():\n"
    "    global done\n"
    "    done = asyncio.get_running_loop().create_future()\n"
    "    async with serve(handler, '127.0.0.1', 0, subprotocols=['chat']) as srv:\n"
    "        print(srv.sockets[0].getsockname()[1], flush=True)\n"
    "        await asyncio.wait_for(done, 60)\n"
    "asyncio.run(main())\n";

SIMUL_TASK_TEST(python_server)
{
    (void)arg;
    if (!have_websockets()) {
        skip();
    }
    char dir[64], path[128];
    ws_tmpdir(dir, sizeof dir, "simul-wsc");
    ws_write_script(dir, "server.py", py_server, path, sizeof path);
    pysrv ps = {0};
    snprintf(ps.cmd, sizeof ps.cmd, "timeout 60 /usr/bin/python3 '%s'", path);
    int result = -1;
    assert_int_equal(simul_to_thread(pysrv_start, &ps, &result), 0);
    assert_int_equal(result, 0);
    simul_http_session *s;
    assert_int_equal(simul_http_session_new(NULL, &s), 0);
    char u[128];
    snprintf(u, sizeof u, "ws://localhost:%d/room?x=1", ps.port);
    static const char *offer[] = {"v2.chat", "chat"};
    const char *hdrs[] = {"Authorization", "Bearer py", NULL};
    char why[256] = "";
    simul_ws_connect_opts o = {.ws = {.subprotocols = offer, .nsubprotocols = 2},
                               .headers = hdrs, .why = why, .whylen = sizeof why};
    simul_ws *ws;
    int st = 0;
    int rc = simul_ws_connect(s, u, &o, &st, &ws);
    if (rc < 0) {
        fail_msg("python server: %s (%s)", simul_strerror(rc), why);
    }
    assert_int_equal(st, 101);
    assert_string_equal(simul_ws_subprotocol(ws), "chat");
    const char *d;
    size_t n;
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "auth=Bearer py");
    echo(ws, "h\xc3\xa9 from simul");
    assert_int_equal(simul_ws_send_text(ws, "bye"), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_int_equal(simul_ws_recv(ws, &d, &n), 0);
    assert_int_equal(simul_ws_close_code(ws), 4003);
    assert_string_equal(simul_ws_close_reason(ws), "py bye");
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    assert_int_equal(simul_http_session_close(s), 0);
    assert_int_equal(simul_to_thread(pysrv_wait, &ps, &result), 0);
    assert_int_equal(result, 0);
    ws_rmdir(dir);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(own_server),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(bad_servers),
        cmocka_unit_test(frames_behind_the_101),
        cmocka_unit_test(handshake_answer_fields),
        cmocka_unit_test(cancel_mid_handshake),
        cmocka_unit_test(through_a_proxy),
#ifdef SIMUL_TLS_CERTS
        cmocka_unit_test(wss_own_server),
#endif
        cmocka_unit_test(python_server),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_ws_client");
}
