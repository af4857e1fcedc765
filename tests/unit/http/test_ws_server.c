/* test_ws_server.c — WebSocket over libsimul-http's server, and simul_ws_client_open: python3's
 * websockets (Debian's, /usr/bin/python3) as client against simul's server and as server against
 * simul's client; raw sockets for bad handshakes and bad frames (each answered with its close
 * code), frames sent right behind the handshake, automatic pong, keepalive, a vanished client
 * that cancels its handler, a graceful shutdown that sends 1001. Nothing waits on time: timeouts
 * only bound waits (python's included). */
#include "test_main_helpers.h"

#include <simul/http.h>
#ifdef SIMUL_TLS_CERTS
#include <simul/tls.h> /* wss: linked in when libsimul-tls is built (tests/CMakeLists.txt) */
#endif

#include "test_ws_helpers.h"

typedef struct state {
    simul_event *release;
    int cleanups;       /* handlers that saw their client vanish and cleaned up */
    int recv_rc;        /* what the handler's last recv returned */
    int close_code;     /* the close code the handler saw */
    char close_reason[128];
    int close_rc;       /* what simul_ws_close returned */
    int handlers_done;
    int echoed;         /* messages /echo sent back */
    char tmp[64];       /* the test's temp dir (python scripts) */
} state;
static state g;

static const char *protos[] = {"chat", "superchat"};

/* /echo: sends every message back until the peer closes. */
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
    for (;;) {
        const char *d;
        size_t n;
        rc = simul_ws_recv(ws, &d, &n);
        if (rc <= 0) {
            break;
        }
        if (n == 5 && memcmp(d, "close", 5) == 0) {
            rc = 1;
            break; /* the server closes first */
        }
        if ((rc = simul_ws_send(ws, rc, d, n)) < 0) {
            break;
        }
        g.echoed++;
    }
    g.recv_rc = rc;
    g.close_code = simul_ws_close_code(ws);
    snprintf(g.close_reason, sizeof g.close_reason, "%s", simul_ws_close_reason(ws));
    g.close_rc = simul_ws_close(ws, rc == 1 ? 4001 : 0, rc == 1 ? "server says bye" : NULL);
    g.handlers_done++;
    return 0;
}

/* /parts: a text sent in three parts with a ping among them, a binary, then close 4002. */
static int h_parts(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    simul_ws *ws;
    int rc = simul_ws_upgrade(req, res, NULL, &ws);
    if (rc < 0) {
        return rc == -EPROTO ? 0 : rc;
    }
    assert_int_equal(simul_ws_send_part(ws, SIMUL_WS_TEXT, "h\xc3", 2, false), 0);
    assert_int_equal(simul_ws_send(ws, SIMUL_WS_TEXT, "x", 1), -EBUSY); /* mid-message */
    assert_int_equal(simul_ws_ping(ws, "p", 1), 0);
    assert_int_equal(simul_ws_send_part(ws, SIMUL_WS_CONT, "\xa9l", 2, false), 0);
    assert_int_equal(simul_ws_send_part(ws, SIMUL_WS_CONT, "lo", 2, true), 0);
    assert_int_equal(simul_ws_send(ws, SIMUL_WS_BINARY, "\x00\xff", 2), 0);
    assert_int_equal(simul_ws_send(ws, SIMUL_WS_TEXT, "\xff", 1), -EINVAL); /* not UTF-8 */
    g.close_rc = simul_ws_close(ws, 4002, "done");
    g.handlers_done++;
    return 0;
}

/* /hold: waits for g.release without reading (a vanished client must cancel it). */
static int h_hold(simul_http_request *req, simul_http_response *res, void *arg)
{
    simul_ws_opts *o = arg;
    simul_ws *ws;
    int rc = simul_ws_upgrade(req, res, o, &ws);
    if (rc < 0) {
        return rc == -EPROTO ? 0 : rc;
    }
    rc = simul_ws_send_text(ws, "holding");
    if (rc == 0) {
        rc = simul_event_wait(g.release);
    }
    if (rc == -ECANCELED) {
        g.cleanups++;
    }
    g.recv_rc = rc;
    g.close_rc = simul_ws_close(ws, 0, NULL);
    g.close_code = 0;
    g.handlers_done++;
    return 0;
}

/* /forget: upgrades, says hi and returns without closing: the server closes with 1011. */
static int h_forget(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    simul_ws *ws;
    int rc = simul_ws_upgrade(req, res, NULL, &ws);
    if (rc == 0) {
        rc = simul_ws_send_text(ws, "hi");
    }
    g.handlers_done++;
    return rc == -EPROTO ? 0 : rc;
}

/* /flood: sends 64 KiB messages under a 0.1 s deadline to a client that stops reading: the send
 * that cannot go out returns -ETIMEDOUT (backpressure, then the deadline). */
static int h_flood(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    simul_ws_opts o = {.close_timeout = 0.1};
    simul_ws *ws;
    int rc = simul_ws_upgrade(req, res, &o, &ws);
    if (rc < 0) {
        return rc == -EPROTO ? 0 : rc;
    }
    static char chunk[65536];
    simul_scope sc;
    simul_scope_timeout(&sc, 0.1);
    long sent = 0;
    while ((rc = simul_ws_send(ws, SIMUL_WS_BINARY, chunk, sizeof chunk)) == 0) {
        sent++;
    }
    simul_scope_end(&sc);
    g.recv_rc = rc;
    g.close_code = (int)sent;
    simul_ws_close(ws, SIMUL_WS_CLOSE_POLICY, "too slow");
    g.handlers_done++;
    return 0;
}

static simul_ws_opts small = {.max_message = 1024};
static const char *good_origins[] = {"https://good.example", "HTTP://Other.Example:8080"};
static simul_ws_opts listed = {.origins = good_origins, .norigins = 2};
/* The timeout is long so that a loaded machine never makes the answered ping look missed. */
static simul_ws_opts keepalive = {.ping_interval = 0.02, .ping_timeout = 1.0};

static simul_http_app *make_app(void)
{
    simul_http_app *app;
    assert_int_equal(simul_http_app_new(&app), 0);
    assert_int_equal(simul_http_route(app, "GET", "/echo", h_echo, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/small", h_echo, &small), 0);
    assert_int_equal(simul_http_route(app, "GET", "/listed", h_echo, &listed), 0);
    assert_int_equal(simul_http_route(app, "GET", "/parts", h_parts, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/forget", h_forget, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/flood", h_flood, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/hold", h_hold, NULL), 0);
    assert_int_equal(simul_http_route(app, "GET", "/keepalive", h_hold, &keepalive), 0);
    return app;
}

typedef struct fixture {
    simul_http_app *app;
    simul_http_server *srv;
    int port;
    int result;
    char script[256];
} fixture;

static void up(fixture *f)
{
    memset(&g, 0, sizeof g);
    memset(f, 0, sizeof *f);
    assert_int_equal(simul_event_new(&g.release), 0);
    f->app = make_app();
    assert_int_equal(simul_http_serve(f->app, "127.0.0.1", "0", NULL, &f->srv), 0);
    f->port = simul_http_server_port(f->srv);
    assert_true(f->port > 0);
    ws_tmpdir(g.tmp, sizeof g.tmp, "simul-ws");
}

static void down(fixture *f)
{
    ws_server_down(f->srv, f->app);
    simul_event_free(g.release);
    ws_rmdir(g.tmp);
}

/* ---- python3-websockets as the client ------------------------------------------------------ */

/* Writes a python script into the temp dir; f->script gets its path. */
static void script(fixture *f, const char *name, const char *text)
{
    ws_write_script(g.tmp, name, text, f->script, sizeof f->script);
}

/* Runs the script with the port as argument; 0 if it exited 0. */
static int py_run(void *arg)
{
    fixture *f = arg;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "timeout 60 /usr/bin/python3 '%s' %d", f->script, f->port);
    return ws_exit_code(system(cmd));
}

static const char py_echo[] =
    "import asyncio, sys\n"
    "from websockets.client import connect\n"
    "async def main(port):\n"
    "    async with connect(f'ws://127.0.0.1:{port}/echo', subprotocols=['superchat', 'chat'],\n"
    "                       open_timeout=20, close_timeout=20) as ws:\n"
    "        assert ws.subprotocol == 'chat', ws.subprotocol\n"
    "        await ws.send('h\\u00e9llo \\u20ac \\U0001F600')\n"
    "        assert await ws.recv() == 'h\\u00e9llo \\u20ac \\U0001F600'\n"
    "        big = bytes(range(256)) * 1000\n"
    "        await ws.send(big)\n"
    "        assert await ws.recv() == big\n"
    "        await ws.send(['frag', 'men', 'ted'])\n"
    "        assert await ws.recv() == 'fragmented'\n"
    "        await ws.send('')\n"
    "        assert await ws.recv() == ''\n"
    "        pong = await ws.ping(b'are you there')\n"
    "        await asyncio.wait_for(pong, 20)\n"
    "        for i in range(200):\n"
    "            await ws.send(f'm{i}')\n"
    "        for i in range(200):\n"
    "            assert await ws.recv() == f'm{i}'\n"
    "        await ws.close(1000, 'client done')\n"
    "        assert ws.close_code == 1000, ws.close_code\n"
    "asyncio.run(main(int(sys.argv[1])))\n";

SIMUL_TASK_TEST(python_client_echo)
{
    (void)arg;
    if (!have_websockets()) {
        skip();
    }
    fixture f;
    up(&f);
    script(&f, "echo.py", py_echo);
    assert_int_equal(client_run(py_run, &f), 0);
    for (int i = 0; i < 20000 && g.handlers_done < 1; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(g.handlers_done, 1);
    assert_int_equal(g.recv_rc, 0);
    assert_int_equal(g.close_code, 1000);
    assert_string_equal(g.close_reason, "client done");
    assert_int_equal(g.close_rc, 0);
    down(&f);
    return 0;
}

static const char py_server_closes[] =
    "import asyncio, sys\n"
    "from websockets.client import connect\n"
    "from websockets.exceptions import ConnectionClosed\n"
    "async def main(port):\n"
    "    async with connect(f'ws://127.0.0.1:{port}/parts', open_timeout=20) as ws:\n"
    "        assert ws.subprotocol is None\n"
    "        assert await ws.recv() == 'h\\u00e9llo'\n"
    "        assert await ws.recv() == b'\\x00\\xff'\n"
    "        try:\n"
    "            await ws.recv()\n"
    "            sys.exit(3)\n"
    "        except ConnectionClosed as e:\n"
    "            assert e.rcvd.code == 4002 and e.rcvd.reason == 'done', e\n"
    "    async with connect(f'ws://127.0.0.1:{port}/echo', open_timeout=20) as ws:\n"
    "        await ws.send('close')\n"
    "        try:\n"
    "            await ws.recv()\n"
    "            sys.exit(4)\n"
    "        except ConnectionClosed as e:\n"
    "            assert e.rcvd.code == 4001 and e.rcvd.reason == 'server says bye', e\n"
    "asyncio.run(main(int(sys.argv[1])))\n";

SIMUL_TASK_TEST(python_client_server_closes)
{
    (void)arg;
    if (!have_websockets()) {
        skip();
    }
    fixture f;
    up(&f);
    script(&f, "parts.py", py_server_closes);
    assert_int_equal(client_run(py_run, &f), 0);
    for (int i = 0; i < 20000 && g.handlers_done < 2; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(g.handlers_done, 2);
    assert_int_equal(g.close_rc, 0); /* the client answered the close */
    down(&f);
    return 0;
}

/* A graceful shutdown sends 1001 to a client that waits in recv; its handler's recv returns 0. */
static const char py_wait[] =
    "import asyncio, sys\n"
    "from websockets.client import connect\n"
    "from websockets.exceptions import ConnectionClosed\n"
    "async def main(port):\n"
    "    async with connect(f'ws://127.0.0.1:{port}/echo', open_timeout=20) as ws:\n"
    "        await ws.send('ready')\n"
    "        assert await ws.recv() == 'ready'\n"
    "        try:\n"
    "            await asyncio.wait_for(ws.recv(), 30)\n"
    "            sys.exit(3)\n"
    "        except ConnectionClosed as e:\n"
    "            assert e.rcvd.code == 1001, e\n"
    "asyncio.run(main(int(sys.argv[1])))\n";

static int py_task(void *arg)
{
    fixture *f = arg;
    return simul_to_thread(py_run, f, &f->result);
}

SIMUL_TASK_TEST(shutdown_sends_going_away)
{
    (void)arg;
    if (!have_websockets()) {
        skip();
    }
    fixture f;
    up(&f);
    script(&f, "wait.py", py_wait);
    simul_task *t;
    f.result = -1;
    assert_int_equal(simul_task_spawn(&t, py_task, &f, NULL), 0);
    /* Wait for the state: one upgraded connection whose client has had its echo. */
    for (int i = 0; i < 20000 && g.echoed < 1; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(g.echoed, 1);
    assert_int_equal(simul_http_server_connections(f.srv), 1);
    assert_int_equal(simul_http_server_shutdown(f.srv, 30), 0); /* finished in time */
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(f.result, 0);
    assert_int_equal(g.recv_rc, 0);
    assert_int_equal(g.close_code, 1001);
    assert_int_equal(g.close_rc, 0);
    simul_http_server_free(f.srv);
    simul_http_app_free(f.app);
    simul_event_free(g.release);
    ws_rmdir(g.tmp);
    return 0;
}

/* ---- raw sockets: handshakes ----------------------------------------------------------------- */

#define UPGRADE(path, extra)                                                                       \
    "GET " path " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"         \
    "Sec-WebSocket-Version: 13\r\n" extra "\r\n"

typedef struct hs_case {
    const char *req;
    int status;
} hs_case;

static const hs_case bad_handshakes[] = {
    {"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 426},                              /* plain GET */
    {UPGRADE("/echo", ""), 400},                                                 /* no key */
    {UPGRADE("/echo", "Sec-WebSocket-Key: abc\r\n"), 400},                       /* short key */
    {UPGRADE("/echo", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=!\r\n"), 400},  /* not base64 */
    {UPGRADE("/echo", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n"), 400},  /* stray bits */
    {"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " KEY "\r\n\r\n", 426},     /* version */
    {"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " KEY "\r\n\r\n", 400},    /* Connection */
    {"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " KEY "\r\n\r\n", 426},    /* Upgrade */
    {"GET /echo HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " KEY "\r\n\r\n", 400},    /* HTTP/1.0 */
    /* Origins: a foreign page (cross-site WebSocket hijacking), a lookalike, a listed route. */
    {UPGRADE("/echo", "Sec-WebSocket-Key: " KEY "\r\nOrigin: http://evil.example\r\n"), 403},
    {UPGRADE("/echo", "Sec-WebSocket-Key: " KEY "\r\nOrigin: http://x.evil\r\n"), 403},
    {UPGRADE("/echo", "Sec-WebSocket-Key: " KEY "\r\nOrigin: null\r\n"), 403},
    {UPGRADE("/listed", "Sec-WebSocket-Key: " KEY "\r\nOrigin: http://x\r\n"), 403},
    {UPGRADE("/listed", "Sec-WebSocket-Key: " KEY "\r\nOrigin: https://good.example.evil\r\n"),
     403},
};

/* Upgrades that are fine: the same origin (the Host), a listed one (case-insensitive), none. */
static const char *const good_handshakes[] = {
    UPGRADE("/echo", "Sec-WebSocket-Key: " KEY "\r\nOrigin: http://x\r\n"),
    UPGRADE("/echo", "Sec-WebSocket-Key: " KEY "\r\nOrigin: https://X\r\n"),
    UPGRADE("/listed", "Sec-WebSocket-Key: " KEY "\r\nOrigin: https://GOOD.example\r\n"),
    UPGRADE("/listed", "Sec-WebSocket-Key: " KEY "\r\nOrigin: http://other.example:8080\r\n"),
    UPGRADE("/listed", "Sec-WebSocket-Key: " KEY "\r\n"),
};

static int c_bad_handshakes(void *arg)
{
    fixture *f = arg;
    for (size_t i = 0; i < sizeof bad_handshakes / sizeof *bad_handshakes; i++) {
        response r;
        int rc = cl_once(f->port, bad_handshakes[i].req, &r, false, NULL);
        if (rc < 0 || r.status != bad_handshakes[i].status) {
            fprintf(stderr, "case %zu: rc %d status %d\n%s\n", i, rc, r.status, r.head);
            resp_free(&r);
            return __LINE__;
        }
        if (r.status == 426) {
            char v[16];
            CHECK(hdr_get(r.head, "Sec-WebSocket-Version", v, sizeof v) && strcmp(v, "13") == 0);
        }
        resp_free(&r);
    }
    for (size_t i = 0; i < sizeof good_handshakes / sizeof *good_handshakes; i++) {
        client *c = malloc(sizeof *c);
        CHECK(cl_connect(c, f->port) == 0);
        CHECK(cl_send(c, good_handshakes[i]) == 0);
        while (!memmem(c->buf, c->len, "\r\n\r\n", 4)) {
            CHECK(cl_more(c) > 0);
        }
        if (memcmp(c->buf, "HTTP/1.1 101 ", 13) != 0) {
            fprintf(stderr, "good case %zu: %.*s\n", i, (int)c->len, c->buf);
            return __LINE__;
        }
        close(c->fd);
        free(c);
    }
    return 0;
}

SIMUL_TASK_TEST(bad_handshakes_refused)
{
    (void)arg;
    fixture f;
    up(&f);
    assert_int_equal(client_run(c_bad_handshakes, &f), 0);
    down(&f);
    return 0;
}

/* ---- raw sockets: frames --------------------------------------------------------------------- */

/* Upgrades c to path (and sends `after` in the same write, right behind the request); checks
 * the 101 and its accept key. */
static int cl_upgrade(client *c, int port, const char *path, const void *after, size_t alen)
{
    return ws_cl_upgrade(c, port, path, NULL, after, alen, NULL, 0);
}

/* Reads one server frame: opcode, payload into out (NUL-terminated). */
static int cl_frame_text(client *c, int *op, char *out, size_t cap, size_t *len)
{
    int b0 = 0;
    CHECK(cap > 0 && cl_frame(c, &b0, (uint8_t *)out, cap - 1, len) == 0);
    *op = b0 & 0x0f;
    out[*len] = '\0';
    return 0;
}

/* Upgrades, sends frames, expects a close with `code` and then the server's close of the TCP
 * connection. */
static int expect_failure(int port, const char *path, const uint8_t *frames, size_t n, int code)
{
    client *c = malloc(sizeof *c);
    CHECK(c);
    int rc = cl_upgrade(c, port, path, NULL, 0);
    if (rc == 0) {
        rc = expect_close(c, frames, n, code);
        close(c->fd);
    }
    free(c);
    return rc;
}

static int c_bad_frames(void *arg)
{
    fixture *f = arg;
    uint8_t b[4096];
    size_t n;
    /* Unmasked. */
    b[0] = 0x81;
    b[1] = 0x01;
    b[2] = 'x';
    CHECK(expect_failure(f->port, "/echo", b, 3, 1002) == 0);
    n = mk(b, 0xC1, "x", 1); /* RSV1 */
    CHECK(expect_failure(f->port, "/echo", b, n, 1002) == 0);
    n = mk(b, 0x83, "", 0); /* opcode 3 */
    CHECK(expect_failure(f->port, "/echo", b, n, 1002) == 0);
    n = mk(b, 0x09, "", 0); /* fragmented ping */
    CHECK(expect_failure(f->port, "/echo", b, n, 1002) == 0);
    char big[200];
    memset(big, 'p', sizeof big);
    n = mk(b, 0x89, big, 126); /* ping over 125 */
    CHECK(expect_failure(f->port, "/echo", b, n, 1002) == 0);
    n = mk(b, 0x80, "x", 1); /* continuation without a message */
    CHECK(expect_failure(f->port, "/echo", b, n, 1002) == 0);
    n = mk(b, 0x81, "\xce\xba\xed\xa0\x80", 5); /* a surrogate */
    CHECK(expect_failure(f->port, "/echo", b, n, 1007) == 0);
    n = mk(b, 0x01, "\xce", 1);
    n += mk(b + n, 0x80, "", 0); /* ends inside a character */
    CHECK(expect_failure(f->port, "/echo", b, n, 1007) == 0);
    n = mk(b, 0x88, "\x03\xed", 2); /* close code 1005 on the wire */
    CHECK(expect_failure(f->port, "/echo", b, n, 1002) == 0);
    char kb[1100];
    memset(kb, 'k', sizeof kb);
    n = mk(b, 0x82, kb, 1025); /* over /small's 1024 */
    CHECK(expect_failure(f->port, "/small", b, n, 1009) == 0);
    n = mk(b, 0x02, kb, 600);
    n += mk(b + n, 0x80, kb, 600); /* over it across fragments */
    CHECK(expect_failure(f->port, "/small", b, n, 1009) == 0);
    n = mk(b, 0x82, kb, 1024); /* exactly the limit is fine: echoed, then a bad frame */
    n += mk(b + n, 0xA1, "", 0);
    CHECK(expect_failure(f->port, "/small", b, n, 1002) == 0);
    return 0;
}

SIMUL_TASK_TEST(bad_frames_fail_the_connection)
{
    (void)arg;
    fixture f;
    up(&f);
    assert_int_equal(client_run(c_bad_frames, &f), 0);
    down(&f);
    return 0;
}

/* Frames sent in the same write as the request; a ping answered with its payload; a close
 * without a code answered without one. */
static int c_pipelined(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    uint8_t b[256];
    size_t n = mk(b, 0x81, "first", 5);
    n += mk(b + n, 0x89, "ping!", 5);
    n += mk(b + n, 0x82, "\x01\x02", 2);
    CHECK(cl_upgrade(c, f->port, "/echo", b, n) == 0);
    int op;
    char pl[64];
    size_t len;
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0);
    CHECK(op == SIMUL_WS_PONG && len == 5 && memcmp(pl, "ping!", 5) == 0); /* answered at once */
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0);
    CHECK(op == SIMUL_WS_TEXT && strcmp(pl, "first") == 0);
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0);
    CHECK(op == SIMUL_WS_BINARY && len == 2 && pl[0] == 1 && pl[1] == 2);
    n = mk(b, 0x88, "", 0);
    CHECK(cl_sendn(c, (const char *)b, n) == 0);
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0);
    CHECK(op == SIMUL_WS_CLOSE && len == 0);
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(frames_behind_the_handshake)
{
    (void)arg;
    fixture f;
    up(&f);
    assert_int_equal(client_run(c_pipelined, &f), 0);
    for (int i = 0; i < 20000 && g.handlers_done < 1; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(g.recv_rc, 0);
    assert_int_equal(g.close_code, SIMUL_WS_CLOSE_NO_STATUS);
    down(&f);
    return 0;
}

/* A client that pings without reading: the pongs queued for it stay bounded (they are skipped
 * past the write buffer's high-water mark), so it gets far fewer than it asked for. */
static int c_ping_flood(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    CHECK(cl_upgrade(c, f->port, "/echo", NULL, 0) == 0);
    /* Unbounded, the server would queue PINGS pongs (38 MB); bounded, what the kernel's
     * buffers hold (tcp_wmem + tcp_rmem maxima here: ~10 MB, ~80,000 pongs) and 64 KiB more. */
    enum { PINGS = 300000 };
    char pl[125];
    memset(pl, 'p', sizeof pl);
    uint8_t frame[256];
    size_t n = mk(frame, 0x89, pl, sizeof pl);
    uint8_t *all = malloc(n * 1000);
    for (int i = 0; i < 1000; i++) {
        memcpy(all + i * n, frame, n);
    }
    for (int k = 0; k < PINGS / 1000; k++) {
        CHECK(cl_sendn(c, (const char *)all, n * 1000) == 0);
    }
    free(all);
    n = mk(frame, 0x88, "\x03\xe8", 2);
    CHECK(cl_sendn(c, (const char *)frame, n) == 0);
    long pongs = 0;
    int op;
    char got[256];
    size_t len;
    do {
        CHECK(cl_frame_text(c, &op, got, sizeof got, &len) == 0);
        pongs += op == SIMUL_WS_PONG;
    } while (op != SIMUL_WS_CLOSE);
    fprintf(stderr, "pongs received for %d pings: %ld\n", PINGS, pongs);
    CHECK(pongs > 0 && pongs < PINGS / 2);
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(ping_flood_stays_bounded)
{
    (void)arg;
    fixture f;
    up(&f);
    assert_int_equal(client_run(c_ping_flood, &f), 0);
    down(&f);
    return 0;
}

/* A client that vanishes (no close frame) cancels a handler that is not even reading. */
static int c_vanish(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    CHECK(cl_upgrade(c, f->port, "/hold", NULL, 0) == 0);
    int op;
    char pl[64];
    size_t len;
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0 && strcmp(pl, "holding") == 0);
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(vanished_client_cancels_handler)
{
    (void)arg;
    fixture f;
    up(&f);
    assert_int_equal(client_run(c_vanish, &f), 0);
    for (int i = 0; i < 20000 && g.handlers_done < 1; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(g.cleanups, 1);
    assert_int_equal(g.recv_rc, -ECANCELED);
    assert_int_equal(g.close_rc, -ECONNRESET);
    down(&f);
    return 0;
}

/* Keepalive: a quiet client gets a ping; one that never answers gets close 1011 and the close,
 * and its handler is cancelled. */
static int c_silent(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    CHECK(cl_upgrade(c, f->port, "/keepalive", NULL, 0) == 0);
    int op;
    char pl[128];
    size_t len;
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0 && strcmp(pl, "holding") == 0);
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0 && op == SIMUL_WS_PING);
    /* Answer one ping: the next quiet spell brings another. */
    uint8_t b[160];
    CHECK(cl_sendn(c, (const char *)b, mk(b, 0x8A, pl, len)) == 0);
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0 && op == SIMUL_WS_PING);
    /* Now stay silent. */
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0 && op == SIMUL_WS_CLOSE);
    CHECK(len >= 2 && ((uint8_t)pl[0] << 8 | (uint8_t)pl[1]) == 1011);
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(keepalive_pings_and_gives_up)
{
    (void)arg;
    fixture f;
    up(&f);
    assert_int_equal(client_run(c_silent, &f), 0);
    for (int i = 0; i < 20000 && g.handlers_done < 1; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(g.cleanups, 1);
    down(&f);
    return 0;
}

/* A handler that returns with its session open: the server closes it (1011) and the
 * connection. */
static int c_forgotten(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    CHECK(cl_upgrade(c, f->port, "/forget", NULL, 0) == 0);
    int op;
    char pl[128];
    size_t len;
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0 && strcmp(pl, "hi") == 0);
    CHECK(cl_frame_text(c, &op, pl, sizeof pl, &len) == 0 && op == SIMUL_WS_CLOSE);
    CHECK(len >= 2 && ((uint8_t)pl[0] << 8 | (uint8_t)pl[1]) == 1011);
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(handler_returning_open_session_is_closed)
{
    (void)arg;
    fixture f;
    up(&f);
    assert_int_equal(client_run(c_forgotten, &f), 0);
    assert_int_equal(g.handlers_done, 1);
    down(&f);
    return 0;
}

/* ---- simul's client -------------------------------------------------------------------------- */

SIMUL_TASK_TEST(client_against_own_server)
{
    (void)arg;
    fixture f;
    up(&f);
    char port[16];
    snprintf(port, sizeof port, "%d", f.port);
    simul_stream *s;
    assert_int_equal(simul_open_connection("127.0.0.1", port, &s), 0);
    static const char *offer[] = {"superchat"};
    simul_ws_opts o = {.subprotocols = offer, .nsubprotocols = 1};
    simul_ws *ws;
    int status = 0;
    assert_int_equal(simul_ws_client_open(s, "127.0.0.1", "/echo", &o, &status, &ws), 0);
    assert_int_equal(status, 101);
    assert_string_equal(simul_ws_subprotocol(ws), "superchat");
    const char *d;
    size_t n;
    assert_int_equal(simul_ws_send_text(ws, "hello"), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "hello");
    size_t big = 300000;
    char *b = malloc(big);
    for (size_t i = 0; i < big; i++) {
        b[i] = (char)(i * 31);
    }
    /* Over /echo's default 1 MiB? No: 300 kB, masked in chunks by the client. */
    assert_int_equal(simul_ws_send(ws, SIMUL_WS_BINARY, b, big), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_BINARY);
    assert_int_equal(n, big);
    assert_memory_equal(d, b, big);
    free(b);
    assert_int_equal(simul_ws_send_part(ws, SIMUL_WS_TEXT, "ab", 2, false), 0);
    assert_int_equal(simul_ws_ping(ws, "x", 1), 0);
    assert_int_equal(simul_ws_send_part(ws, SIMUL_WS_CONT, "cd", 2, true), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "abcd");
    /* A deadline scope bounds recv. */
    simul_scope sc;
    simul_scope_timeout(&sc, 0.01);
    assert_int_equal(simul_ws_recv(ws, &d, &n), -ETIMEDOUT);
    simul_scope_end(&sc);
    /* The server closes first (4001), the client answers. */
    assert_int_equal(simul_ws_send_text(ws, "close"), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), 0);
    assert_int_equal(simul_ws_close_code(ws), 4001);
    assert_string_equal(simul_ws_close_reason(ws), "server says bye");
    assert_int_equal(simul_ws_send_text(ws, "late"), -EPIPE);
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    assert_int_equal(simul_stream_close(s), 0);
    for (int i = 0; i < 20000 && g.handlers_done < 1; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(g.close_rc, 0);
    /* The client closes first. */
    assert_int_equal(simul_open_connection("127.0.0.1", port, &s), 0);
    assert_int_equal(simul_ws_client_open(s, "127.0.0.1", "/echo", NULL, NULL, &ws), 0);
    assert_null(simul_ws_subprotocol(ws));
    assert_int_equal(simul_ws_close(ws, 4100, "bye from simul"), 0);
    assert_int_equal(simul_stream_close(s), 0);
    for (int i = 0; i < 20000 && g.handlers_done < 2; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(g.close_code, 4100);
    assert_string_equal(g.close_reason, "bye from simul");
    /* A route that does not upgrade, and a path with no route: -EPROTO and the status. */
    assert_int_equal(simul_open_connection("127.0.0.1", port, &s), 0);
    assert_int_equal(simul_ws_client_open(s, "127.0.0.1", "/nothing", NULL, &status, &ws),
                     -EPROTO);
    assert_int_equal(status, 404);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(simul_open_connection("127.0.0.1", port, &s), 0);
    assert_int_equal(simul_ws_client_open(s, "x", "bad path", NULL, &status, &ws), -EINVAL);
    assert_int_equal(simul_stream_close(s), 0);
    down(&f);
    return 0;
}

/* A task waiting in recv when another closes the session returns before the session is freed. */
typedef struct receiver {
    simul_ws *ws;
    int rc;
    bool entered;
} receiver;

static int receiver_main(void *arg)
{
    receiver *r = arg;
    const char *d;
    size_t n;
    r->entered = true;
    r->rc = simul_ws_recv(r->ws, &d, &n);
    return 0;
}

SIMUL_TASK_TEST(client_close_wakes_receiver)
{
    (void)arg;
    fixture f;
    up(&f);
    char port[16];
    snprintf(port, sizeof port, "%d", f.port);
    simul_stream *s;
    assert_int_equal(simul_open_connection("127.0.0.1", port, &s), 0);
    receiver r = {.rc = 99};
    assert_int_equal(simul_ws_client_open(s, "127.0.0.1", "/echo", NULL, NULL, &r.ws), 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, receiver_main, &r, NULL), 0);
    while (!r.entered) {
        assert_int_equal(simul_yield(), 0); /* it runs up to its wait in recv */
    }
    const char *d;
    size_t n;
    assert_int_equal(simul_ws_recv(r.ws, &d, &n), -EBUSY); /* one receiver at a time */
    assert_int_equal(simul_ws_close(r.ws, 0, NULL), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(simul_stream_close(s), 0);
    down(&f);
    return 0;
}

SIMUL_TASK_TEST(send_deadline_under_backpressure)
{
    (void)arg;
    fixture f;
    up(&f);
    char port[16];
    snprintf(port, sizeof port, "%d", f.port);
    simul_stream *s;
    assert_int_equal(simul_open_connection("127.0.0.1", port, &s), 0);
    simul_ws_opts o = {.queue_max = 1}; /* its reader stops after one message */
    simul_ws *ws;
    assert_int_equal(simul_ws_client_open(s, "127.0.0.1", "/flood", &o, NULL, &ws), 0);
    for (int i = 0; i < 20000 && g.handlers_done < 1; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_int_equal(g.handlers_done, 1);
    assert_int_equal(g.recv_rc, -ETIMEDOUT);
    assert_true(g.close_code >= 1); /* messages that went out before the buffers filled */
    /* The client takes what was sent, then the close. */
    const char *d;
    size_t n;
    int got = 0, rc;
    while ((rc = simul_ws_recv(ws, &d, &n)) == SIMUL_WS_BINARY) {
        assert_int_equal(n, 65536);
        got++;
    }
    assert_true(got >= 1);
    simul_ws_close(ws, 0, NULL);
    assert_int_equal(simul_stream_close(s), 0);
    down(&f);
    return 0;
}

/* Misbehaving servers made here: a wrong accept key, no Upgrade field, a 200, an unoffered
 * subprotocol, an extension, and a server that masks its frames. */
typedef struct liar {
    const char *answer; /* after the request's head; "%s" gets the right accept key */
    const char *frame;  /* raw bytes sent after it (may be NULL) */
    size_t frame_len;
} liar;

static int liar_handler(simul_stream *s, void *arg)
{
    const liar *l = arg;
    return ws_fake_server(s, l->answer, l->frame, l->frame ? l->frame_len : 0, NULL, 0);
}

static int liar_open(const liar *l, simul_ws **ws, int *status)
{
    static const char *offer[] = {"chat"};
    simul_ws_opts o = {.subprotocols = offer, .nsubprotocols = 1, .close_timeout = 0.2};
    simul_server *srv;
    simul_stream *s;
    int rc = ws_fake_open(liar_handler, (void *)l, &o, status, &srv, &s, ws);
    if (rc == 0) {
        const char *d;
        size_t n;
        rc = simul_ws_recv(*ws, &d, &n);
        simul_ws_close(*ws, 0, NULL);
    }
    ws_fake_close(srv, s);
    return rc;
}


SIMUL_TASK_TEST(client_rejects_bad_servers)
{
    (void)arg;
    simul_ws *ws;
    int st;
    liar wrong_key = {WS_OK101 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", 0, 0};
    assert_int_equal(liar_open(&wrong_key, &ws, &st), -EPROTO);
    assert_int_equal(st, 101);
    liar no_upgrade = {"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: %s\r\n\r\n", 0, 0};
    assert_int_equal(liar_open(&no_upgrade, &ws, &st), -EPROTO);
    liar ok200 = {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: %s\r\n\r\n", 0, 0};
    assert_int_equal(liar_open(&ok200, &ws, &st), -EPROTO);
    assert_int_equal(st, 200);
    liar proto = {WS_OK101 "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: other\r\n\r\n", 0,
                  0};
    assert_int_equal(liar_open(&proto, &ws, &st), -EPROTO);
    liar ext = {WS_OK101 "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: x\r\n\r\n", 0, 0};
    assert_int_equal(liar_open(&ext, &ws, &st), -EPROTO);
    /* A right handshake, then a masked frame: recv gets -EPROTO. */
    liar masked = {WS_OK101 "Sec-WebSocket-Accept: %s\r\n\r\n", "\x81\x81\x00\x00\x00\x00x", 7};
    assert_int_equal(liar_open(&masked, &ws, &st), -EPROTO);
    /* Right handshake and a text frame: fine. */
    liar good = {WS_OK101 "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
                 "\x81\x02hi", 4};
    assert_int_equal(liar_open(&good, &ws, &st), SIMUL_WS_TEXT);
    return 0;
}

/* python3-websockets as the server, simul's client against it. */
static const char py_server[] =
    "import asyncio, sys\n"
    "from websockets.server import serve\n"
    "from websockets.exceptions import ConnectionClosed\n"
    "async def handler(ws):\n"
    "    try:\n"
    "        async for msg in ws:\n"
    "            await ws.send(msg)\n"
    "            if msg == 'fragments':\n"
    "                await ws.send(['a', 'b', 'c'])\n"
    "            if msg == 'bye':\n"
    "                await ws.close(4003, 'py bye')\n"
    "    except ConnectionClosed as e:\n"
    "        assert e.sent.code == 4003 and e.rcvd.code == 4003, e\n"
    "    done.set_result(None)\n"
    "async def main():\n"
    "    global done\n"
    "    done = asyncio.get_running_loop().create_future()\n"
    "    async with serve(handler, '127.0.0.1', 0, subprotocols=['chat']) as srv:\n"
    "        print(srv.sockets[0].getsockname()[1], flush=True)\n"
    "        await asyncio.wait_for(done, 60)\n"
    "asyncio.run(main())\n";

SIMUL_TASK_TEST(client_against_python_server)
{
    (void)arg;
    if (!have_websockets()) {
        skip();
    }
    fixture f;
    up(&f);
    pysrv ps = {0};
    static const char *offer[] = {"chat"};
    simul_ws_opts o = {.subprotocols = offer, .nsubprotocols = 1};
    simul_stream *s;
    simul_ws *ws;
    ws_py_server_open(&ps, g.tmp, py_server, "", &o, &s, &ws);
    assert_string_equal(simul_ws_subprotocol(ws), "chat");
    const char *d;
    size_t n;
    assert_int_equal(simul_ws_send_text(ws, "h\xc3\xa9"), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "h\xc3\xa9");
    char *b = malloc(200000);
    memset(b, 0x5a, 200000);
    ws_echo_check(ws, SIMUL_WS_BINARY, b, 200000);
    free(b);
    assert_int_equal(simul_ws_send_text(ws, "fragments"), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "fragments");
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "abc");
    assert_int_equal(simul_ws_send_text(ws, "bye"), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "bye");
    assert_int_equal(simul_ws_recv(ws, &d, &n), 0);
    assert_int_equal(simul_ws_close_code(ws), 4003);
    assert_string_equal(simul_ws_close_reason(ws), "py bye");
    ws_py_server_close(&ps, s, ws);
    down(&f);
    return 0;
}

/* wss: simul's client over a TLS stream (libsimul-tls) against a python3-websockets server
 * with the test PKI's server certificate. */
static const char py_wss_server[] =
    "import asyncio, ssl, sys\n"
    "from websockets.server import serve\n"
    "async def handler(ws):\n"
    "    async for msg in ws:\n"
    "        await ws.send(msg)\n"
    "    done.set_result(None)\n"
    "async def main(certs):\n"
    "    global done\n"
    "    done = asyncio.get_running_loop().create_future()\n"
    "    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "    ctx.load_cert_chain(certs + '/server.crt', certs + '/server.key')\n"
    "    async with serve(handler, '127.0.0.1', 0, ssl=ctx) as srv:\n"
    "        print(srv.sockets[0].getsockname()[1], flush=True)\n"
    "        await asyncio.wait_for(done, 60)\n"
    "asyncio.run(main(sys.argv[1]))\n";

SIMUL_TASK_TEST(client_over_tls_against_python_server)
{
    (void)arg;
#ifndef SIMUL_TLS_CERTS
    skip(); /* libsimul-tls is not built */
#else
    if (!have_websockets()) {
        skip();
    }
    fixture f;
    up(&f);
    script(&f, "wss.py", py_wss_server);
    pysrv ps = {0};
    snprintf(ps.cmd, sizeof ps.cmd, "timeout 60 /usr/bin/python3 '%s' '%s'", f.script,
             SIMUL_TLS_CERTS);
    int result = -1;
    assert_int_equal(simul_to_thread(pysrv_start, &ps, &result), 0);
    assert_int_equal(result, 0);
    char port[16], why[256] = "";
    snprintf(port, sizeof port, "%d", ps.port);
    simul_tls_config *cfg;
    assert_int_equal(simul_tls_config_new_client(&cfg), 0);
    assert_int_equal(simul_tls_config_set_ca(cfg, SIMUL_TLS_CERTS "/ca.crt", NULL, why, sizeof why),
                     0);
    simul_stream *s;
    int rc = simul_tls_open_connection("127.0.0.1", port, cfg, &s, why, sizeof why);
    if (rc < 0) {
        fail_msg("TLS connect: %s (%s)", simul_strerror(rc), why);
    }
    simul_ws *ws;
    assert_int_equal(simul_ws_client_open(s, "127.0.0.1", "/", NULL, NULL, &ws), 0);
    const char *d;
    size_t n;
    char *b = malloc(100000);
    memset(b, 'w', 100000);
    assert_int_equal(simul_ws_send(ws, SIMUL_WS_BINARY, b, 100000), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_BINARY);
    assert_int_equal(n, 100000);
    assert_memory_equal(d, b, n);
    free(b);
    assert_int_equal(simul_ws_send_text(ws, "over TLS"), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "over TLS");
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    simul_stream_close(s);
    simul_tls_config_free(cfg);
    assert_int_equal(simul_to_thread(pysrv_wait, &ps, &result), 0);
    assert_int_equal(result, 0);
    down(&f);
#endif
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(python_client_echo),
        cmocka_unit_test(python_client_server_closes),
        cmocka_unit_test(shutdown_sends_going_away),
        cmocka_unit_test(bad_handshakes_refused),
        cmocka_unit_test(bad_frames_fail_the_connection),
        cmocka_unit_test(frames_behind_the_handshake),
        cmocka_unit_test(ping_flood_stays_bounded),
        cmocka_unit_test(vanished_client_cancels_handler),
        cmocka_unit_test(keepalive_pings_and_gives_up),
        cmocka_unit_test(handler_returning_open_session_is_closed),
        cmocka_unit_test(client_against_own_server),
        cmocka_unit_test(client_close_wakes_receiver),
        cmocka_unit_test(send_deadline_under_backpressure),
        cmocka_unit_test(client_rejects_bad_servers),
        cmocka_unit_test(client_against_python_server),
        cmocka_unit_test(client_over_tls_against_python_server),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_ws_server");
}
