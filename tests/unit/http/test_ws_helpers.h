/* test_ws_helpers.h — what the WebSocket tests (test_ws_server.c, test_ws_client.c,
 * test_ws_deflate.c, test_ws_deflate_final.c) share: python3-websockets peers run from a temp
 * dir (a script written there, a server whose first stdout line is its port), an echo loop for
 * handlers, made-up servers for simul's client, and a raw-socket WebSocket client (upgrade,
 * masked frames out, server frames in, the closing handshake) built on
 * test_http_server_helpers.h's blocking client, so hostile bytes can be sent as they are. */
#ifndef TEST_WS_HELPERS_H
#define TEST_WS_HELPERS_H

#include <simul/http.h>
#include <sys/wait.h>

#include "test_http_server_helpers.h"

/* ---- python3-websockets ------------------------------------------------------------------- */

static inline bool have_websockets(void)
{
    return system("/usr/bin/python3 -c 'import websockets' 2>/dev/null") == 0;
}

/* A fresh temp dir named prefix-XXXXXX into dir (cap bytes), and its removal. */
static inline void ws_tmpdir(char *dir, size_t cap, const char *prefix)
{
    snprintf(dir, cap, "/tmp/%s-XXXXXX", prefix);
    assert_non_null(mkdtemp(dir));
}

static inline void ws_rmdir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Writes text to dir/name; path (cap bytes) gets the file's path. */
static inline void ws_write_script(const char *dir, const char *name, const char *text,
                                   char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* A child's exit status from system()/pclose(): its exit code, 99 if it did not exit. */
static inline int ws_exit_code(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

/* A python server started with popen(cmd) that prints its port first. pysrv_start and pysrv_wait
 * block: run them with simul_to_thread. */
typedef struct pysrv {
    char cmd[768];
    FILE *p;
    int port;
} pysrv;

static inline int pysrv_start(void *arg)
{
    pysrv *ps = arg;
    ps->p = popen(ps->cmd, "r");
    if (!ps->p || fscanf(ps->p, "%d", &ps->port) != 1) {
        return __LINE__;
    }
    return 0;
}

static inline int pysrv_wait(void *arg)
{
    pysrv *ps = arg;
    return ws_exit_code(pclose(ps->p));
}

/* Runs ps->cmd (a python client) to its end; its exit code. Blocks: run it with simul_to_thread. */
static inline int pysrv_run(void *arg)
{
    pysrv *ps = arg;
    return ws_exit_code(system(ps->cmd));
}

/* Writes the python server `text` into dir, starts it with args and opens simul's client to it
 * with o. */
static inline void ws_py_server_open(pysrv *ps, const char *dir, const char *text,
                                     const char *args, const simul_ws_opts *o, simul_stream **s,
                                     simul_ws **ws)
{
    char path[256];
    ws_write_script(dir, "server.py", text, path, sizeof path);
    snprintf(ps->cmd, sizeof ps->cmd, "timeout 60 /usr/bin/python3 '%s' %s", path, args);
    int result = -1;
    assert_int_equal(simul_to_thread(pysrv_start, ps, &result), 0);
    assert_int_equal(result, 0);
    char port[16];
    snprintf(port, sizeof port, "%d", ps->port);
    assert_int_equal(simul_open_connection("127.0.0.1", port, s), 0);
    assert_int_equal(simul_ws_client_open(*s, "127.0.0.1:1", "/", o, NULL, ws), 0);
}

/* Closes simul's side and expects the python server to exit 0. */
static inline void ws_py_server_close(pysrv *ps, simul_stream *s, simul_ws *ws)
{
    assert_int_equal(simul_ws_close(ws, 0, NULL), 0);
    assert_int_equal(simul_stream_close(s), 0);
    int result = -1;
    assert_int_equal(simul_to_thread(pysrv_wait, ps, &result), 0);
    assert_int_equal(result, 0);
}

/* Sends data as one message of type op and expects it back as it was. */
static inline void ws_echo_check(simul_ws *ws, int op, const void *data, size_t len)
{
    const char *d;
    size_t n;
    assert_int_equal(simul_ws_send(ws, op, data, len), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), op);
    assert_int_equal(n, len);
    assert_memory_equal(d, data, n);
}

/* The permessage-deflate scripts' shared parts (test_ws_deflate.c, test_ws_deflate_final.c);
 * mode 'nctx' asks for no context takeover either way, 'ctx' takes websockets' defaults.
 * WS_PY_DEFLATE_CONNECT: a client's main(port, mode) up to its open session `ws`. */
#define WS_PY_DEFLATE_CONNECT                                                                      \
    "from websockets.client import connect\n"                                                      \
    "from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory\n"        \
    "async def main(port, mode):\n"                                                                \
    "    kw = {}\n"                                                                                \
    "    if mode == 'nctx':\n"                                                                     \
    "        kw = {'compression': None, 'extensions': [ClientPerMessageDeflateFactory(\n"          \
    "              server_no_context_takeover=True, client_no_context_takeover=True)]}\n"          \
    "    async with connect(f'ws://127.0.0.1:{port}/{mode}', open_timeout=20, "                    \
    "close_timeout=20,\n"                                                                          \
    "                       max_size=2**22, **kw) as ws:\n"

/* An echo server's handler up to the echo inside `async for msg in ws:`; the script goes on
 * there (what else it sends, checks at the end), and WS_PY_DEFLATE_SERVE ends the handler and
 * serves in `mode` on a free port, printed first. */
#define WS_PY_DEFLATE_ECHO                                                                         \
    "from websockets.server import serve\n"                                                        \
    "from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory\n"        \
    "async def handler(ws):\n"                                                                     \
    "    assert len(ws.extensions) == 1, ws.extensions\n"                                          \
    "    async for msg in ws:\n"                                                                   \
    "        await ws.send(msg)\n"

#define WS_PY_DEFLATE_SERVE                                                                        \
    "    done.set_result(None)\n"                                                                  \
    "async def main(mode):\n"                                                                      \
    "    global done\n"                                                                            \
    "    done = asyncio.get_running_loop().create_future()\n"                                      \
    "    kw = {}\n"                                                                                \
    "    if mode == 'nctx':\n"                                                                     \
    "        kw = {'compression': None, 'extensions': [ServerPerMessageDeflateFactory(\n"          \
    "              server_no_context_takeover=True, client_no_context_takeover=True)]}\n"          \
    "    async with serve(handler, '127.0.0.1', 0, max_size=2**22, **kw) as srv:\n"                \
    "        print(srv.sockets[0].getsockname()[1], flush=True)\n"                                 \
    "        await asyncio.wait_for(done, 60)\n"                                                   \
    "asyncio.run(main(sys.argv[1]))\n"

/* ---- handlers ----------------------------------------------------------------------------- */

/* Sends every message back until the peer closes (0) or something fails (< 0): that result.
 * *echoed (NULL: not wanted) counts the messages sent back. */
static inline int ws_echo_count(simul_ws *ws, int *echoed)
{
    for (;;) {
        const char *d;
        size_t n;
        int rc = simul_ws_recv(ws, &d, &n);
        if (rc <= 0 || (rc = simul_ws_send(ws, rc, d, n)) < 0) {
            return rc;
        }
        if (echoed) {
            (*echoed)++;
        }
    }
}

static inline int ws_echo_all(simul_ws *ws)
{
    return ws_echo_count(ws, NULL);
}

/* The permessage-deflate tests' session options by mode: "ctx" (context takeover, messages up
 * to 4 MiB), "nctx" (no context takeover either way) and "small" (messages up to 1 KiB). */
static inline simul_ws_opts *ws_deflate_opts(const char *mode)
{
    static simul_ws_opts ctx = {.deflate = true, .max_message = 4u << 20};
    static simul_ws_opts nctx = {.deflate = true, .deflate_no_context_takeover = true,
                                 .deflate_peer_no_context_takeover = true,
                                 .max_message = 4u << 20};
    static simul_ws_opts small = {.deflate = true, .max_message = 1024};
    return strcmp(mode, "nctx") == 0 ? &nctx : strcmp(mode, "small") == 0 ? &small : &ctx;
}

/* Routes GET /ctx, /nctx and /small to h, its arg that mode's options. */
static inline void ws_deflate_routes(simul_http_app *app, simul_http_handler h)
{
    assert_int_equal(simul_http_route(app, "GET", "/ctx", h, ws_deflate_opts("ctx")), 0);
    assert_int_equal(simul_http_route(app, "GET", "/nctx", h, ws_deflate_opts("nctx")), 0);
    assert_int_equal(simul_http_route(app, "GET", "/small", h, ws_deflate_opts("small")), 0);
}

/* Waits on the loop until the handlers count *done reaches n (bounded: 20 s). */
static inline void ws_wait_handlers(const int *done, int n)
{
    for (int i = 0; i < 20000 && *done < n; i++) {
        assert_int_equal(simul_sleep(0.001), 0);
    }
}

/* Shuts srv down (every connection must be gone) and frees it and its app. */
static inline void ws_server_down(simul_http_server *srv, simul_http_app *app)
{
    assert_int_equal(simul_http_server_shutdown(srv, 10), 0);
    assert_int_equal(simul_http_server_connections(srv), 0);
    simul_http_server_free(srv);
    simul_http_app_free(app);
}

/* ---- made-up servers for simul's client ------------------------------------------------------ */

#define WS_OK101 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"

/* A made-up server's side of a handshake: reads the request (a copy into request, rcap bytes,
 * when not NULL), answers `answer` (a printf format: %s gets the right accept key), sends
 * `after` (alen bytes) and reads until the client goes. */
static inline int ws_fake_server(simul_stream *s, const char *answer, const void *after,
                                 size_t alen, char *request, size_t rcap)
{
    const char *head;
    long n = simul_stream_readuntil(s, "\r\n\r\n", 4, &head);
    if (n < 0) {
        return 0;
    }
    if (request) {
        snprintf(request, rcap, "%.*s", (int)n, head);
    }
    const char *k = memmem(head, (size_t)n, "Sec-WebSocket-Key: ", 19);
    char accept[29] = "";
    if (k) {
        simul_ws_accept_key(k + 19, 24, accept);
    }
    char out[1024];
    int len = snprintf(out, sizeof out, answer, accept);
    simul_stream_write(s, out, (size_t)len);
    if (alen) {
        simul_stream_write(s, after, alen);
    }
    char sink[256];
    while (simul_stream_read(s, sink, sizeof sink) > 0) {
    }
    return 0;
}

/* Starts a server running handler(arg) on a free port and connects a stream to it: simul's
 * client opening on it with o gives its result (status as it gives it). */
static inline int ws_fake_open(simul_stream_handler handler, void *arg, const simul_ws_opts *o,
                               int *status, simul_server **srv, simul_stream **s, simul_ws **ws)
{
    assert_int_equal(simul_start_server("127.0.0.1", "0", handler, arg, srv), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", simul_server_port(*srv));
    assert_int_equal(simul_open_connection("127.0.0.1", port, s), 0);
    return simul_ws_client_open(*s, "127.0.0.1", "/", o, status, ws);
}

/* Closes the stream and the made-up server. */
static inline void ws_fake_close(simul_server *srv, simul_stream *s)
{
    simul_stream_close(s);
    simul_server_close(srv);
    simul_server_wait_closed(srv);
    simul_server_free(srv);
}

/* ---- a raw-socket client ------------------------------------------------------------------ */

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

/* Connects c and upgrades it to path with extra header lines (each ending in CRLF; NULL: none),
 * `after` sent in the same write right behind the request; checks the 101 and its accept key.
 * head (cap bytes, NULL: not wanted) gets the 101's head; what follows it stays in c->buf. */
static inline int ws_cl_upgrade(client *c, int port, const char *path, const char *extra,
                                const void *after, size_t alen, char *head, size_t cap)
{
    CHECK(cl_connect(c, port) == 0);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " KEY "\r\n%s\r\n",
                     path, extra ? extra : "");
    CHECK(n > 0 && alen + (size_t)n < sizeof req);
    if (alen) {
        memcpy(req + n, after, alen);
    }
    CHECK(cl_sendn(c, req, (size_t)n + alen) == 0);
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
        CHECK(cl_more(c) > 0);
    }
    size_t hl = (size_t)(end + 4 - c->buf);
    CHECK(memcmp(c->buf, "HTTP/1.1 101 ", 13) == 0);
    CHECK(memmem(c->buf, hl, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", 52));
    if (head) {
        CHECK(hl < cap);
        memcpy(head, c->buf, hl);
        head[hl] = '\0';
    }
    memmove(c->buf, c->buf + hl, c->len - hl);
    c->len -= hl;
    return 0;
}

/* ws_cl_upgrade offering extension `ext` (NULL: no offer); the 101's Sec-WebSocket-Extensions
 * goes into got ("" if none). */
static inline int ws_cl_upgrade_ext(client *c, int port, const char *path, const char *ext,
                                    char *got, size_t gotlen)
{
    char offer[1024] = "", head[4096];
    if (ext) {
        snprintf(offer, sizeof offer, "Sec-WebSocket-Extensions: %s\r\n", ext);
    }
    CHECK(ws_cl_upgrade(c, port, path, offer, NULL, 0, head, sizeof head) == 0);
    if (!hdr_get(head, "Sec-WebSocket-Extensions", got, gotlen)) {
        got[0] = '\0';
    }
    return 0;
}

/* Reads one server frame (a server never masks): its first byte, payload into out (cap bytes at
 * most). */
static inline int cl_frame(client *c, int *b0, uint8_t *out, size_t cap, size_t *len)
{
    for (;;) {
        if (c->len >= 2) {
            uint64_t n = c->buf[1] & 0x7f;
            size_t hl = n == 126 ? 4 : n == 127 ? 10 : 2;
            if (c->len >= hl) {
                if (hl == 4) {
                    n = (uint64_t)(uint8_t)c->buf[2] << 8 | (uint8_t)c->buf[3];
                } else if (hl == 10) {
                    n = 0;
                    for (int i = 0; i < 8; i++) {
                        n = n << 8 | (uint8_t)c->buf[2 + i];
                    }
                }
                CHECK(!(c->buf[1] & 0x80));
                if (c->len >= hl + n) {
                    CHECK(n <= cap);
                    *b0 = (uint8_t)c->buf[0];
                    memcpy(out, c->buf + hl, n);
                    *len = n;
                    memmove(c->buf, c->buf + hl + n, c->len - hl - n);
                    c->len -= hl + n;
                    return 0;
                }
            }
        }
        CHECK(cl_more(c) > 0);
    }
}

/* A frame (b0 as given, so a case may set reserved bits) into out, masked when `masked` (a
 * client's); its length. */
static inline size_t ws_mkframe(uint8_t *out, int b0, const void *data, size_t len, bool masked)
{
    static const uint8_t key[4] = {9, 8, 7, 6};
    size_t hl = simul_ws_frame_header(out, b0 & 0x0f, b0 & 0x80, len, masked ? key : NULL);
    out[0] = (uint8_t)b0;
    memcpy(out + hl, data, len);
    if (masked) {
        simul_ws_mask(out + hl, len, key, 0);
    }
    return hl + len;
}

/* A masked client frame into out; its length. */
static inline size_t mk(uint8_t *out, int b0, const void *data, size_t len)
{
    return ws_mkframe(out, b0, data, len, true);
}

/* Sends frames, expects a close with `code` (frames before it skipped), answers it, and expects
 * the server to end the connection. */
static inline int expect_close(client *c, const uint8_t *frames, size_t n, int code)
{
    CHECK(cl_sendn(c, (const char *)frames, n) == 0);
    int b0 = 0;
    size_t len, cap = 1 << 16;
    uint8_t *pl = malloc(cap);
    CHECK(pl);
    int rc;
    do {
        rc = cl_frame(c, &b0, pl, cap, &len);
    } while (rc == 0 && (b0 & 0x0f) != SIMUL_WS_CLOSE);
    int got = rc == 0 && len >= 2 ? pl[0] << 8 | pl[1] : -1;
    if (rc == 0 && got != code) {
        fprintf(stderr, "close code %d, wanted %d (%.*s)\n", got, code, (int)len - 2, pl + 2);
    }
    uint8_t out[32];
    size_t on = got >= 0 ? mk(out, 0x88, pl, 2) : 0;
    free(pl);
    CHECK(rc == 0);
    CHECK(got == code);
    CHECK(cl_sendn(c, (const char *)out, on) == 0);
    CHECK(cl_closed(c));
    return 0;
}

#endif
