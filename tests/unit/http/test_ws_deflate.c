/* test_ws_deflate.c — permessage-deflate (RFC 7692) on simul's WebSocket server and client:
 * python3-websockets as client and as server in both context-takeover modes, offers and answers
 * the RFC says to decline or fail, and hostile compressed frames by raw socket (a zip bomb over
 * the inflated limit gets 1009, garbage and bad UTF-8 get 1007, RSV1 where it may not be gets
 * 1002). Compressed frames here are made with zlib directly, as a peer would. */
#include "test_main_helpers.h"

#include <simul/http.h>
#include <zlib.h>

#include "test_ws_helpers.h"

typedef struct state {
    int handlers_done;
    int recv_rc;
    int close_code;
    char ext[160]; /* simul_ws_extensions of the last session, "" if none */
    char tmp[64];
} state;
static state g;

static int h_echo(simul_http_request *req, simul_http_response *res, void *arg)
{
    simul_ws_opts o = {0};
    if (arg) {
        o = *(simul_ws_opts *)arg;
    }
    simul_ws *ws;
    int rc = simul_ws_upgrade(req, res, &o, &ws);
    if (rc < 0) {
        return rc == -EPROTO ? 0 : rc;
    }
    const char *e = simul_ws_extensions(ws);
    snprintf(g.ext, sizeof g.ext, "%s", e ? e : "");
    g.recv_rc = ws_echo_all(ws);
    g.close_code = simul_ws_close_code(ws);
    simul_ws_close(ws, 0, NULL);
    g.handlers_done++;
    return 0;
}

static simul_ws_opts o_window = {.deflate = true, .deflate_window_bits = 10, .deflate_level = 9};

typedef struct fixture {
    simul_http_app *app;
    simul_http_server *srv;
    int port;
    char script[256];
    const char *mode;
} fixture;

static void up(fixture *f)
{
    memset(&g, 0, sizeof g);
    memset(f, 0, sizeof *f);
    assert_int_equal(simul_http_app_new(&f->app), 0);
    assert_int_equal(simul_http_route(f->app, "GET", "/plain", h_echo, NULL), 0);
    ws_deflate_routes(f->app, h_echo);
    assert_int_equal(simul_http_route(f->app, "GET", "/window", h_echo, &o_window), 0);
    assert_int_equal(simul_http_serve(f->app, "127.0.0.1", "0", NULL, &f->srv), 0);
    f->port = simul_http_server_port(f->srv);
    ws_tmpdir(g.tmp, sizeof g.tmp, "simul-wsz");
}

static void down(fixture *f)
{
    ws_server_down(f->srv, f->app);
    ws_rmdir(g.tmp);
}

static void script(fixture *f, const char *name, const char *text)
{
    ws_write_script(g.tmp, name, text, f->script, sizeof f->script);
}

/* ---- python3-websockets as the client -------------------------------------------------------- */

static const char py_client[] =
    "import asyncio, os, sys\n"
    WS_PY_DEFLATE_CONNECT
    "        ext = ws.response_headers.get('Sec-WebSocket-Extensions')\n"
    "        assert ext and ext.startswith('permessage-deflate'), ext\n"
    "        assert len(ws.extensions) == 1, ws.extensions\n"
    "        if mode == 'nctx':\n"
    "            assert 'server_no_context_takeover' in ext, ext\n"
    "            assert 'client_no_context_takeover' in ext, ext\n"
    "        for i in range(60):\n"
    "            m = f'message {i} ' + 'h\\u00e9llo \\u20ac ' * i\n"
    "            await ws.send(m)\n"
    "            assert await ws.recv() == m\n"
    "        big = (b'simul, a chess simul on tasks ' * 40000)[:1000000]\n"
    "        await ws.send(big)\n"
    "        assert await ws.recv() == big\n"
    "        rnd = os.urandom(200000)\n"
    "        await ws.send(rnd)\n"
    "        assert await ws.recv() == rnd\n"
    "        await ws.send(['frag', 'men', 'ted \\U0001F600'])\n"
    "        assert await ws.recv() == 'fragmented \\U0001F600'\n"
    "        await ws.send('')\n"
    "        assert await ws.recv() == ''\n"
    "        await ws.send(b'')\n"
    "        r = await ws.recv()\n        assert r == b'', repr(r)\n"
    "        await ws.close(1000, 'done')\n"
    "asyncio.run(main(int(sys.argv[1]), sys.argv[2]))\n";

static int py_run(void *arg)
{
    fixture *f = arg;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "timeout 60 /usr/bin/python3 '%s' %d %s", f->script, f->port,
             f->mode);
    return ws_exit_code(system(cmd));
}

static void python_client(const char *mode, const char *want_ext)
{
    if (!have_websockets()) {
        skip();
    }
    fixture f;
    up(&f);
    f.mode = mode;
    script(&f, "client.py", py_client);
    int result = -1;
    assert_int_equal(simul_to_thread(py_run, &f, &result), 0);
    assert_int_equal(result, 0);
    ws_wait_handlers(&g.handlers_done, 1);
    assert_int_equal(g.handlers_done, 1);
    assert_int_equal(g.recv_rc, 0);
    assert_int_equal(g.close_code, 1000);
    assert_string_equal(g.ext, want_ext);
    down(&f);
}

SIMUL_TASK_TEST(python_client_context_takeover)
{
    (void)arg;
    /* websockets offers client_max_window_bits; we do not bound the client's window. */
    python_client("ctx", "permessage-deflate");
    return 0;
}

SIMUL_TASK_TEST(python_client_no_context_takeover)
{
    (void)arg;
    python_client("nctx", "permessage-deflate; server_no_context_takeover; "
                          "client_no_context_takeover");
    return 0;
}

/* ---- python3-websockets as the server --------------------------------------------------------- */

static const char py_server[] =
    "import asyncio, sys\n"
    WS_PY_DEFLATE_ECHO
    "        if msg == 'fragments':\n"
    "            await ws.send(['a', 'b\\u00e9', 'c'])\n"
    WS_PY_DEFLATE_SERVE;

static void python_server(const char *mode, const simul_ws_opts *o, const char *want_ext)
{
    if (!have_websockets()) {
        skip();
    }
    fixture f;
    up(&f);
    pysrv ps = {0};
    simul_stream *s;
    simul_ws *ws;
    ws_py_server_open(&ps, g.tmp, py_server, mode, o, &s, &ws);
    assert_non_null(simul_ws_extensions(ws));
    assert_string_equal(simul_ws_extensions(ws), want_ext);
    const char *d;
    size_t n;
    char m[256];
    for (int i = 0; i < 60; i++) {
        snprintf(m, sizeof m, "message %d: the same words again and again and again %d", i, i);
        assert_int_equal(simul_ws_send_text(ws, m), 0);
        assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
        assert_string_equal(d, m);
    }
    size_t bl = 1500000;
    char *b = malloc(bl);
    for (size_t i = 0; i < bl; i++) {
        b[i] = (char)(i % 251 < 200 ? 'a' + i % 7 : i * 2654435761u >> 24);
    }
    ws_echo_check(ws, SIMUL_WS_BINARY, b, 1000000);
    free(b);
    /* A message sent in parts (one deflate stream, RSV1 on the first frame only). */
    assert_int_equal(simul_ws_send_part(ws, SIMUL_WS_TEXT, "frag", 4, false), 0);
    assert_int_equal(simul_ws_send_part(ws, SIMUL_WS_CONT, "men\xc3", 4, false), 0);
    assert_int_equal(simul_ws_send_part(ws, SIMUL_WS_CONT, "\xa9ted", 4, true), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "fragmen\xc3\xa9ted");
    assert_int_equal(simul_ws_send_text(ws, "fragments"), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "fragments");
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "ab\xc3\xa9""c");
    assert_int_equal(simul_ws_send(ws, SIMUL_WS_TEXT, "", 0), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_int_equal(n, 0);
    ws_py_server_close(&ps, s, ws);
    down(&f);
}

SIMUL_TASK_TEST(python_server_context_takeover)
{
    (void)arg;
    /* websockets' defaults: both windows at 12 bits (our compressor follows the answer). */
    simul_ws_opts o = {.deflate = true, .max_message = 4u << 20};
    python_server("ctx", &o, "permessage-deflate; server_max_window_bits=12; "
                             "client_max_window_bits=12");
    return 0;
}

SIMUL_TASK_TEST(python_server_no_context_takeover)
{
    (void)arg;
    simul_ws_opts o = {.deflate = true, .deflate_no_context_takeover = true,
                       .deflate_peer_no_context_takeover = true, .max_message = 4u << 20};
    python_server("nctx", &o, "permessage-deflate; server_no_context_takeover; "
                              "client_no_context_takeover");
    return 0;
}

/* ---- raw sockets ------------------------------------------------------------------------------ */

/* Raw deflate of data with a sync flush, the 00 00 ff ff tail removed (RFC 7692 7.2.1). z keeps
 * its context across calls (a peer with context takeover). */
static size_t zpack_x(z_stream *z, const void *data, size_t len, uint8_t *out, size_t cap,
                      bool strip)
{
    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)len;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    int rc = deflate(z, Z_SYNC_FLUSH);
    if (rc != Z_OK || z->avail_out == 0) {
        return 0;
    }
    size_t n = cap - z->avail_out;
    return !strip ? n : n >= 4 ? n - 4 : 0;
}

static size_t zpack(z_stream *z, const void *data, size_t len, uint8_t *out, size_t cap)
{
    return zpack_x(z, data, len, out, cap, true);
}

static int hostile(fixture *f, const char *path, const uint8_t *frames, size_t n, int code)
{
    client *c = malloc(sizeof *c);
    char ext[160];
    CHECK(ws_cl_upgrade_ext(c, f->port, path, "permessage-deflate", ext, sizeof ext) == 0);
    CHECK(strcmp(ext, "permessage-deflate") == 0);
    int rc = expect_close(c, frames, n, code);
    close(c->fd);
    free(c);
    return rc;
}

static int c_hostile(void *arg)
{
    fixture *f = arg;
    static uint8_t zbuf[1 << 20], frame[(1 << 20) + 16];
    z_stream z;
    size_t zn, n;
    /* A zip bomb for /small (1024 bytes): 600 KB of zeros in about 600 bytes, under the
     * compressed limit; its inflated size crosses the limit at once -> 1009. */
    size_t bl = 100u << 20;
    uint8_t *zeros = calloc(1, bl);
    CHECK(zeros);
    memset(&z, 0, sizeof z); /* zalloc, zfree, opaque: Z_NULL */
    CHECK(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    zn = zpack(&z, zeros, 600000, zbuf, sizeof zbuf);
    deflateEnd(&z);
    CHECK(zn > 0 && zn < 1024);
    n = mk(frame, 0xC2, zbuf, zn);
    CHECK(hostile(f, "/small", frame, n, 1009) == 0);
    /* 100 MiB of zeros in about 100 KB against /ctx's 4 MiB limit -> 1009, never allocated. */
    memset(&z, 0, sizeof z); /* zalloc, zfree, opaque: Z_NULL */
    CHECK(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    zn = zpack(&z, zeros, bl, zbuf, sizeof zbuf);
    deflateEnd(&z);
    free(zeros);
    CHECK(zn > 0 && zn < (1u << 20));
    n = mk(frame, 0xC2, zbuf, zn);
    CHECK(hostile(f, "/ctx", frame, n, 1009) == 0);
    /* A bomb spread over fragments, each under the limit: 300 zeros a frame from one deflate
     * stream; the sum crosses /small's 1024 at the fourth. */
    memset(&z, 0, sizeof z); /* zalloc, zfree, opaque: Z_NULL */
    CHECK(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    static uint8_t z0[300];
    n = 0;
    for (int i = 0; i < 10; i++) {
        zn = zpack_x(&z, z0, sizeof z0, zbuf, sizeof zbuf, i == 9);
        n += mk(frame + n, i == 0 ? 0x42 : i == 9 ? 0x80 : 0x00, zbuf, zn);
    }
    deflateEnd(&z);
    CHECK(hostile(f, "/small", frame, n, 1009) == 0);
    /* Not deflate data (BTYPE 11) -> 1007. */
    n = mk(frame, 0xC2, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    CHECK(hostile(f, "/ctx", frame, n, 1007) == 0);
    /* Invalid UTF-8 inside a compressed text -> 1007. */
    memset(&z, 0, sizeof z); /* zalloc, zfree, opaque: Z_NULL */
    CHECK(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    zn = zpack(&z, "ok \xed\xa0\x80 surrogate", 16, zbuf, sizeof zbuf);
    deflateEnd(&z);
    n = mk(frame, 0xC1, zbuf, zn);
    CHECK(hostile(f, "/ctx", frame, n, 1007) == 0);
    /* RSV1 on a continuation, on a ping; RSV2; RSV1 on a session without the extension. */
    memset(&z, 0, sizeof z); /* zalloc, zfree, opaque: Z_NULL */
    CHECK(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    zn = zpack(&z, "hello", 5, zbuf, sizeof zbuf);
    deflateEnd(&z);
    n = mk(frame, 0x41, zbuf, zn);
    n += mk(frame + n, 0xC0, "", 0);
    CHECK(hostile(f, "/ctx", frame, n, 1002) == 0);
    n = mk(frame, 0xC9, "", 0);
    CHECK(hostile(f, "/ctx", frame, n, 1002) == 0);
    n = mk(frame, 0xA1, "x", 1);
    CHECK(hostile(f, "/ctx", frame, n, 1002) == 0);
    client *c = malloc(sizeof *c);
    char ext[160];
    CHECK(ws_cl_upgrade_ext(c, f->port, "/plain", "permessage-deflate", ext, sizeof ext) == 0);
    CHECK(ext[0] == '\0'); /* not enabled: declined */
    n = mk(frame, 0xC1, zbuf, zn);
    CHECK(expect_close(c, frame, n, 1002) == 0);
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(hostile_compressed_frames)
{
    (void)arg;
    fixture f;
    up(&f);
    int result = -1;
    assert_int_equal(simul_to_thread(c_hostile, &f, &result), 0);
    assert_int_equal(result, 0);
    down(&f);
    return 0;
}

/* Good compressed traffic by hand: two messages sharing context (the second refers back to the
 * first), an uncompressed message on the same session, and the server's answers: RSV1 set and
 * inflating (with the server's context kept) to what was sent. */
static int c_by_hand(void *arg)
{
    fixture *f = arg;
    client *c = malloc(sizeof *c);
    char ext[160];
    CHECK(ws_cl_upgrade_ext(c, f->port, "/ctx", "permessage-deflate; client_max_window_bits", ext,
                            sizeof ext) == 0);
    CHECK(strcmp(ext, "permessage-deflate") == 0);
    z_stream zo, zi;
    memset(&zo, 0, sizeof zo); /* zalloc, zfree, opaque: Z_NULL */
    CHECK(deflateInit2(&zo, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    memset(&zi, 0, sizeof zi); /* zalloc, zfree, opaque: Z_NULL */
    CHECK(inflateInit2(&zi, -15) == Z_OK);
    static const char *msgs[] = {"the quick brown fox jumps over the lazy dog",
                                 "the quick brown fox jumps over the lazy dog again", NULL};
    uint8_t zb[512], fr[600], pl[600], out[600];
    for (int i = 0; i < 3; i++) {
        size_t n;
        const char *m = msgs[i] ? msgs[i] : "plain, not compressed";
        if (msgs[i]) {
            size_t zn = zpack(&zo, m, strlen(m), zb, sizeof zb);
            CHECK(zn > 0);
            if (i == 1) {
                CHECK(zn < 20); /* a back-reference into the first message's context */
            }
            n = mk(fr, 0xC1, zb, zn);
        } else {
            n = mk(fr, 0x81, m, strlen(m));
        }
        CHECK(cl_sendn(c, (const char *)fr, n) == 0);
        int b0;
        size_t len;
        CHECK(cl_frame(c, &b0, pl, sizeof pl - 4, &len) == 0);
        CHECK(b0 == 0xC1); /* FIN, RSV1, text: every message sent is compressed */
        memcpy(pl + len, "\x00\x00\xff\xff", 4);
        zi.next_in = pl;
        zi.avail_in = (uInt)len + 4;
        zi.next_out = out;
        zi.avail_out = sizeof out;
        CHECK(inflate(&zi, Z_SYNC_FLUSH) == Z_OK);
        size_t got = sizeof out - zi.avail_out;
        CHECK(got == strlen(m) && memcmp(out, m, got) == 0);
    }
    deflateEnd(&zo);
    inflateEnd(&zi);
    uint8_t cl[16];
    CHECK(cl_sendn(c, (const char *)cl, mk(cl, 0x88, "\x03\xe8", 2)) == 0);
    int b0;
    size_t len;
    CHECK(cl_frame(c, &b0, pl, sizeof pl, &len) == 0 && (b0 & 0x0f) == SIMUL_WS_CLOSE);
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    return 0;
}

SIMUL_TASK_TEST(compressed_by_hand)
{
    (void)arg;
    fixture f;
    up(&f);
    int result = -1;
    assert_int_equal(simul_to_thread(c_by_hand, &f, &result), 0);
    assert_int_equal(result, 0);
    down(&f);
    return 0;
}

/* Offers the server must decline (RFC 7692 7.1) or may take, and what it answers. */
typedef struct offer_case {
    const char *path, *offer, *answer;
} offer_case;

static const offer_case offers[] = {
    {"/ctx", "permessage-deflate; server_max_window_bits=8", ""},  /* zlib cannot make it */
    {"/ctx", "permessage-deflate; server_max_window_bits=8, permessage-deflate",
     "permessage-deflate"},                                          /* the next offer */
    {"/ctx", "permessage-deflate; foo=1", ""},                      /* unknown parameter */
    {"/ctx", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", ""},
    {"/ctx", "permessage-deflate; client_max_window_bits=16", ""},   /* out of range */
    {"/ctx", "permessage-deflate; server_max_window_bits=010", ""},  /* not minimal */
    {"/ctx", "permessage-deflate; server_no_context_takeover=1", ""}, /* takes no value */
    {"/ctx", "permessage-deflate; server_max_window_bits=\"10\"",
     "permessage-deflate; server_max_window_bits=10"},               /* quoted */
    {"/ctx", "x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover",
     "permessage-deflate; server_no_context_takeover"},
    {"/ctx", "permessage-deflate; client_max_window_bits; server_max_window_bits=11",
     "permessage-deflate; server_max_window_bits=11"},
    {"/nctx", "permessage-deflate",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
    {"/window", "permessage-deflate; server_max_window_bits=12",
     "permessage-deflate; server_max_window_bits=10"},               /* ours is smaller */
    {"/plain", "permessage-deflate", ""},                            /* not enabled */
    {"/ctx", "permessage-deflate;", ""},                             /* an empty parameter */
    {"/ctx", "permessage-deflate; server_max_window_bits=", ""},
};

static int c_offers(void *arg)
{
    fixture *f = arg;
    for (size_t i = 0; i < sizeof offers / sizeof *offers; i++) {
        client *c = malloc(sizeof *c);
        char ext[160];
        CHECK(ws_cl_upgrade_ext(c, f->port, offers[i].path, offers[i].offer, ext, sizeof ext) == 0);
        if (strcmp(ext, offers[i].answer) != 0) {
            fprintf(stderr, "offer %zu \"%s\": answered \"%s\", wanted \"%s\"\n", i,
                    offers[i].offer, ext, offers[i].answer);
            return __LINE__;
        }
        close(c->fd);
        free(c);
    }
    return 0;
}

SIMUL_TASK_TEST(offers_declined_or_taken)
{
    (void)arg;
    fixture f;
    up(&f);
    int result = -1;
    assert_int_equal(simul_to_thread(c_offers, &f, &result), 0);
    assert_int_equal(result, 0);
    down(&f);
    return 0;
}

/* ---- the client against servers made here ----------------------------------------------------- */

typedef struct liar {
    const char *ext;   /* the answer's Sec-WebSocket-Extensions line(s), "Name: v\r\n..." */
    const uint8_t *frame;
    size_t frame_len;
    char request[2048]; /* what the client sent */
} liar;

static int liar_handler(simul_stream *s, void *arg)
{
    liar *l = arg;
    char answer[1024];
    snprintf(answer, sizeof answer, WS_OK101 "Sec-WebSocket-Accept: %%s\r\n%s\r\n", l->ext);
    return ws_fake_server(s, answer, l->frame, l->frame ? l->frame_len : 0, l->request,
                          sizeof l->request);
}

/* Opens to a liar; returns what open returned, or recv's result once open. */
static int liar_open(liar *l, const simul_ws_opts *o, char *got, size_t gotlen)
{
    simul_server *srv;
    simul_stream *s;
    simul_ws *ws;
    int rc = ws_fake_open(liar_handler, l, o, NULL, &srv, &s, &ws);
    if (rc == 0) {
        const char *d;
        size_t n;
        rc = simul_ws_recv(ws, &d, &n);
        if (got) {
            snprintf(got, gotlen, "%.*s", rc > 0 ? (int)n : 0, rc > 0 ? d : "");
        }
        simul_ws_close(ws, 0, NULL);
    }
    ws_fake_close(srv, s);
    return rc;
}

SIMUL_TASK_TEST(client_checks_answers)
{
    (void)arg;
    simul_ws_opts o = {.deflate = true, .close_timeout = 0.5};
    static const char *const bad[] = {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=8\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; foo\r\n",
        "Sec-WebSocket-Extensions: x-other\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n",
        ("Sec-WebSocket-Extensions: permessage-deflate\r\n"
         "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        liar l = {.ext = bad[i]};
        assert_int_equal(liar_open(&l, &o, NULL, 0), -EPROTO);
        assert_non_null(strstr(l.request, "Sec-WebSocket-Extensions: permessage-deflate; "
                                          "client_max_window_bits\r\n"));
    }
    /* Asked for server_no_context_takeover, answered without it: refused. */
    simul_ws_opts nctx = {.deflate = true, .deflate_peer_no_context_takeover = true,
                          .close_timeout = 0.5};
    liar l = {.ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n"};
    assert_int_equal(liar_open(&l, &nctx, NULL, 0), -EPROTO);
    assert_non_null(strstr(l.request, "server_no_context_takeover"));
    /* Not offered (deflate off): any extension is refused; and nothing is offered. */
    simul_ws_opts off = {.close_timeout = 0.5};
    liar l2 = {.ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n"};
    assert_int_equal(liar_open(&l2, &off, NULL, 0), -EPROTO);
    assert_null(strstr(l2.request, "Sec-WebSocket-Extensions"));

    /* Accepted, then frames: a compressed "hi" is read; garbage is -EPROTO; a bomb -EMSGSIZE;
     * RSV1 on a continuation -EPROTO. */
    uint8_t zb[4096], fr[4200];
    z_stream z;
    memset(&z, 0, sizeof z); /* zalloc, zfree, opaque: Z_NULL */
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t zn = zpack(&z, "hi", 2, zb, sizeof zb);
    deflateEnd(&z);
    size_t hl = simul_ws_frame_header(fr, SIMUL_WS_TEXT, true, zn, NULL);
    fr[0] |= 0x40;
    memcpy(fr + hl, zb, zn);
    char got[64];
    liar good = {.ext = "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9"
                        "; client_max_window_bits=9\r\n",
                 .frame = fr, .frame_len = hl + zn};
    assert_int_equal(liar_open(&good, &o, got, sizeof got), SIMUL_WS_TEXT);
    assert_string_equal(got, "hi");
    liar garbage = {.ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n",
                    .frame = (const uint8_t *)"\xc2\x04\xff\xff\xff\xff", .frame_len = 6};
    assert_int_equal(liar_open(&garbage, &o, NULL, 0), -EPROTO);
    uint8_t *zeros = calloc(1, 4u << 20);
    assert_non_null(zeros);
    memset(&z, 0, sizeof z); /* zalloc, zfree, opaque: Z_NULL */
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    zn = zpack(&z, zeros, 4u << 20, zb, sizeof zb); /* 4 MiB in about 4 KB, over the 1 MiB */
    deflateEnd(&z);
    free(zeros);
    assert_true(zn > 0 && zn < 4096);
    hl = simul_ws_frame_header(fr, SIMUL_WS_BINARY, true, zn, NULL);
    fr[0] |= 0x40;
    memcpy(fr + hl, zb, zn);
    liar bomb = {.ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n", .frame = fr,
                 .frame_len = hl + zn};
    assert_int_equal(liar_open(&bomb, &o, NULL, 0), -EMSGSIZE);
    liar cont = {.ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n",
                 .frame = (const uint8_t *)"\x41\x00\xc0\x00", .frame_len = 4};
    assert_int_equal(liar_open(&cont, &o, NULL, 0), -EPROTO);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(python_client_context_takeover),
        cmocka_unit_test(python_client_no_context_takeover),
        cmocka_unit_test(python_server_context_takeover),
        cmocka_unit_test(python_server_no_context_takeover),
        cmocka_unit_test(hostile_compressed_frames),
        cmocka_unit_test(compressed_by_hand),
        cmocka_unit_test(offers_declined_or_taken),
        cmocka_unit_test(client_checks_answers),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_ws_deflate");
}
