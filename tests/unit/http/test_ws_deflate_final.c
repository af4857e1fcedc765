/* test_ws_deflate_final.c — permessage-deflate messages whose deflate data ends with a final
 * block (BFINAL=1), which RFC 7692 allows (7.2.1, the example of 7.2.3.4): the window must carry
 * on into the next message under context takeover (7.2.2), on the server and on the client. The
 * peer here is zlib itself: Z_FINISH ends a flush, and the next stream is primed with the
 * history (deflateSetDictionary), as a sender on such a platform would; python3-websockets is
 * made to send the same way. The bounds stay: 1009 past the size, 1007 on bad data, 1002 on RSV1. */
#include "test_main_helpers.h"

#include <simul/http.h>
#include <zlib.h>

#include "test_ws_helpers.h"

/* ---- a peer's compressor ----------------------------------------------------------------------- */

enum { SYNC, FINAL, FINAL_BARE };

typedef struct peer {
    z_stream z;
    bool fresh_each_message; /* the peer's no_context_takeover */
    uint8_t hist[32768];     /* the last 32 KiB sent, to prime the stream after a final block */
    size_t hl;
    int finals;              /* final blocks made so far */
} peer;

static void peer_init(peer *p, bool fresh_each_message)
{
    memset(p, 0, sizeof *p); /* zalloc, zfree, opaque: Z_NULL */
    p->fresh_each_message = fresh_each_message;
    assert_int_equal(deflateInit2(&p->z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
}

static void remember(peer *p, const uint8_t *d, size_t n)
{
    if (n >= sizeof p->hist) {
        memcpy(p->hist, d + n - sizeof p->hist, sizeof p->hist);
        p->hl = sizeof p->hist;
        return;
    }
    if (p->hl + n > sizeof p->hist) {
        size_t drop = p->hl + n - sizeof p->hist;
        memmove(p->hist, p->hist + drop, p->hl - drop);
        p->hl -= drop;
    }
    memcpy(p->hist + p->hl, d, n);
    p->hl += n;
}

/* Appends the deflate of d to out[*n..cap), flushed as `how`: SYNC (an empty stored block, 00 00
 * 00 ff ff), FINAL (a final block, then that empty stored block: RFC 7692 7.2.1 step 2) or
 * FINAL_BARE (a final block and nothing after). After a final block the next stream starts primed
 * with what was sent. Returns 0 or the failing line. */
static int peer_part(peer *p, const void *d, size_t len, int how, uint8_t *out, size_t cap,
                     size_t *n)
{
    p->z.next_in = (Bytef *)d;
    p->z.avail_in = (uInt)len;
    p->z.next_out = out + *n;
    p->z.avail_out = (uInt)(cap - *n);
    int rc = deflate(&p->z, how == SYNC ? Z_SYNC_FLUSH : Z_FINISH);
    CHECK(how == SYNC ? rc == Z_OK : rc == Z_STREAM_END);
    CHECK(p->z.avail_in == 0 && p->z.avail_out > 0);
    *n = cap - p->z.avail_out;
    remember(p, d, len);
    if (how != SYNC) {
        p->finals++;
        CHECK(deflateReset(&p->z) == Z_OK);
        if (p->hl) {
            CHECK(deflateSetDictionary(&p->z, p->hist, (uInt)p->hl) == Z_OK);
        }
        if (how == FINAL) {
            CHECK(*n + 5 <= cap);
            memcpy(out + *n, "\x00\x00\x00\xff\xff", 5);
            *n += 5;
        }
    }
    return 0;
}

/* Ends a message made of parts: the 00 00 ff ff it ends with goes (RFC 7692 7.2.1 step 3); with
 * no context takeover the next message starts afresh. */
static void peer_end_message(peer *p, uint8_t *out, size_t *n)
{
    if (*n >= 4 && memcmp(out + *n - 4, "\x00\x00\xff\xff", 4) == 0) {
        *n -= 4;
    }
    if (p->fresh_each_message) {
        deflateReset(&p->z);
        p->hl = 0;
    }
}

/* One whole message, flushed as `how`. */
static int peer_message(peer *p, const void *d, size_t len, int how, uint8_t *out, size_t cap,
                        size_t *n)
{
    *n = 0;
    int rc = peer_part(p, d, len, how, out, cap, n);
    if (rc == 0) {
        peer_end_message(p, out, n);
    }
    return rc;
}

/* ---- the traffic: messages that end with final blocks, and what they must inflate to ------- */

/* Cuts a compressed payload into frames of `step` bytes (0: one frame), RSV1 on the first. */
static size_t frames_of(uint8_t *out, int op, const uint8_t *pl, size_t n, size_t step,
                        bool masked)
{
    if (!step || step >= n) {
        return ws_mkframe(out, 0xC0 | op, pl, n, masked);
    }
    size_t w = 0;
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        int b0 = (off == 0 ? 0x40 | op : 0) | (off + k == n ? 0x80 : 0);
        w += ws_mkframe(out + w, b0, pl + off, k, masked);
    }
    return w;
}

#define NMSG 10
typedef struct traffic {
    uint8_t *wire; /* the frames, back to back */
    size_t len;
    char *want[NMSG]; /* each message as it must arrive (malloc'd) */
    size_t want_len[NMSG];
    int op[NMSG];
    size_t second_len; /* the compressed size of the second message */
} traffic;

static void traffic_free(traffic *t)
{
    free(t->wire);
    for (int i = 0; i < NMSG; i++) {
        free(t->want[i]);
    }
}

static char *dup_n(const void *d, size_t n)
{
    char *p = malloc(n + 1);
    assert_non_null(p);
    memcpy(p, d, n);
    p[n] = '\0';
    return p;
}

/* The messages, from a peer with (ctx) or without context takeover, as client frames (masked)
 * or server frames. Every one but the fourth and the last ends its deflate data with a final
 * block. */
static int make_traffic(traffic *t, bool ctx, bool masked)
{
    memset(t, 0, sizeof *t);
    peer *p = malloc(sizeof *p);
    size_t cap = 1 << 20;
    uint8_t *pl = malloc(cap);
    t->wire = malloc(2 * cap);
    CHECK(p && pl && t->wire);
    peer_init(p, !ctx);
    size_t n;
    int m = 0;
    static const char *const texts[] = {
        "the quick brown fox jumps over the lazy dog, and the lazy dog sleeps on",
        "the quick brown fox jumps over the lazy dog, and the lazy dog sleeps on, again",
        "the quick brown fox jumps over the lazy dog: a final block with nothing after it",
        "a sync flush between them: the quick brown fox jumps over the lazy dog",
    };
    /* 1: the RFC's form (a final block, then 0x00), 2: the same again, which with context
     * takeover is mostly a back-reference into the first, 3: a final block with nothing after,
     * 4: an ordinary sync flush. */
    static const int hows[] = {FINAL, FINAL, FINAL_BARE, SYNC};
    for (int i = 0; i < 4; i++, m++) {
        CHECK(peer_message(p, texts[i], strlen(texts[i]), hows[i], pl, cap, &n) == 0);
        if (i == 1) {
            t->second_len = n;
        }
        t->len += frames_of(t->wire + t->len, SIMUL_WS_TEXT, pl, n, 0, masked);
        t->want[m] = dup_n(texts[i], strlen(texts[i]));
        t->want_len[m] = strlen(texts[i]);
        t->op[m] = SIMUL_WS_TEXT;
    }
    /* 5: one message flushed three times with final blocks, each part referring back to the
     * one before (the window must carry on inside a message even without context takeover),
     * sent in frames of 7 bytes so flushes and frames do not line up. */
    static const char *const parts[] = {"part one: the quick brown fox; ",
                                        "part two: the quick brown fox again; ",
                                        "part three: the quick brown fox \xc3\xa9t\xc3\xa9"};
    n = 0;
    char joined[256] = "";
    for (int i = 0; i < 3; i++) {
        CHECK(peer_part(p, parts[i], strlen(parts[i]), FINAL, pl, cap, &n) == 0);
        strcat(joined, parts[i]);
    }
    peer_end_message(p, pl, &n);
    t->len += frames_of(t->wire + t->len, SIMUL_WS_TEXT, pl, n, 7, masked);
    t->want[m] = dup_n(joined, strlen(joined));
    t->want_len[m] = strlen(joined);
    t->op[m++] = SIMUL_WS_TEXT;
    /* 6: 8 KiB of barely compressible bytes in four final-block flushes of 2 KiB, in frames
     * of 1000 bytes. */
    size_t bl = 8192;
    uint8_t *bin = malloc(bl);
    CHECK(bin);
    uint32_t x = 12345;
    for (size_t i = 0; i < bl; i++) {
        x = x * 1103515245u + 12345u;
        bin[i] = (uint8_t)(x >> 24);
    }
    n = 0;
    for (int i = 0; i < 4; i++) {
        CHECK(peer_part(p, bin + i * 2048, 2048, FINAL, pl, cap, &n) == 0);
    }
    peer_end_message(p, pl, &n);
    t->len += frames_of(t->wire + t->len, SIMUL_WS_BINARY, pl, n, 1000, masked);
    t->want[m] = dup_n(bin, bl);
    t->want_len[m] = bl;
    t->op[m++] = SIMUL_WS_BINARY;
    free(bin);
    /* 7: 600 empty final blocks (03 00: a fixed block with only its end code), then words
     * that refer back past them: each costs what a block header does (no copy of the window). */
    n = 0;
    for (int i = 0; i < 600; i++) {
        pl[n++] = 0x03;
        pl[n++] = 0x00;
    }
    static const char after[] = "after 600 empty final blocks: the quick brown fox jumps";
    CHECK(peer_part(p, after, strlen(after), FINAL, pl, cap, &n) == 0);
    peer_end_message(p, pl, &n);
    t->len += frames_of(t->wire + t->len, SIMUL_WS_TEXT, pl, n, 0, masked);
    t->want[m] = dup_n(after, strlen(after));
    t->want_len[m] = strlen(after);
    t->op[m++] = SIMUL_WS_TEXT;
    /* 8: an empty message ended by a final block (03 00, then 00). */
    CHECK(peer_message(p, "", 0, FINAL, pl, cap, &n) == 0);
    t->len += frames_of(t->wire + t->len, SIMUL_WS_TEXT, pl, n, 0, masked);
    t->want[m] = dup_n("", 0);
    t->op[m++] = SIMUL_WS_TEXT;
    /* 9: 300 KB of text in one final block (the output grows past the first buffers). */
    size_t tl = 300000;
    char *txt = malloc(tl);
    CHECK(txt);
    for (size_t i = 0; i < tl; i++) {
        txt[i] = (char)('a' + (i * 7 + i / 13) % 26);
    }
    CHECK(peer_message(p, txt, tl, FINAL, pl, cap, &n) == 0);
    t->len += frames_of(t->wire + t->len, SIMUL_WS_TEXT, pl, n, 0, masked);
    t->want[m] = txt;
    t->want_len[m] = tl;
    t->op[m++] = SIMUL_WS_TEXT;
    /* 10: the last words, in a sync flush after all that. */
    static const char last[] = "the lazy dog, finally: the quick brown fox jumps over the lazy dog";
    CHECK(peer_message(p, last, strlen(last), SYNC, pl, cap, &n) == 0);
    t->len += frames_of(t->wire + t->len, SIMUL_WS_TEXT, pl, n, 0, masked);
    t->want[m] = dup_n(last, strlen(last));
    t->want_len[m] = strlen(last);
    t->op[m++] = SIMUL_WS_TEXT;
    CHECK(m == NMSG);
    CHECK(p->finals >= 12);
    deflateEnd(&p->z);
    free(p);
    free(pl);
    return 0;
}

/* ---- our server receiving ------------------------------------------------------------------ */

typedef struct state {
    int handlers_done;
    int recv_rc;
    int close_code;
    int messages;
} state;
static state g;

static int h_echo(simul_http_request *req, simul_http_response *res, void *arg)
{
    simul_ws *ws;
    int rc = simul_ws_upgrade(req, res, (simul_ws_opts *)arg, &ws);
    if (rc < 0) {
        return rc == -EPROTO ? 0 : rc;
    }
    g.recv_rc = ws_echo_count(ws, &g.messages);
    g.close_code = simul_ws_close_code(ws);
    simul_ws_close(ws, 0, NULL);
    g.handlers_done++;
    return 0;
}

typedef struct fixture {
    simul_http_app *app;
    simul_http_server *srv;
    int port;
    bool ctx;
    char tmp[64];
    char script[128];
} fixture;

static void up(fixture *f)
{
    memset(&g, 0, sizeof g);
    memset(f, 0, sizeof *f);
    assert_int_equal(simul_http_app_new(&f->app), 0);
    ws_deflate_routes(f->app, h_echo);
    assert_int_equal(simul_http_serve(f->app, "127.0.0.1", "0", NULL, &f->srv), 0);
    f->port = simul_http_server_port(f->srv);
    ws_tmpdir(f->tmp, sizeof f->tmp, "simul-wsfin");
}

static void down(fixture *f)
{
    ws_server_down(f->srv, f->app);
    ws_rmdir(f->tmp);
}

/* Sends the traffic to the server, and checks each echo: a compressed message (the server
 * keeps its own context, so one inflater follows them all) with the right bytes. */
static int c_traffic(void *arg)
{
    fixture *f = arg;
    traffic t;
    CHECK(make_traffic(&t, f->ctx, true) == 0);
    if (f->ctx) {
        CHECK(t.second_len < 30); /* it refers back across the first one's final block */
    }
    client *c = malloc(sizeof *c);
    char ext[160];
    CHECK(ws_cl_upgrade_ext(c, f->port, f->ctx ? "/ctx" : "/nctx", "permessage-deflate", ext,
                            sizeof ext) == 0);
    CHECK(strncmp(ext, "permessage-deflate", 18) == 0);
    CHECK(cl_sendn(c, (const char *)t.wire, t.len) == 0);
    z_stream zi;
    memset(&zi, 0, sizeof zi); /* zalloc, zfree, opaque: Z_NULL */
    CHECK(inflateInit2(&zi, -15) == Z_OK);
    size_t cap = 1 << 20;
    uint8_t *pl = malloc(cap), *out = malloc(cap);
    CHECK(pl && out);
    for (int i = 0; i < NMSG; i++) {
        int b0;
        size_t len;
        CHECK(cl_frame(c, &b0, pl, cap - 4, &len) == 0);
        if (b0 != (0xC0 | t.op[i])) {
            fprintf(stderr, "message %d: frame 0x%02x (%.*s)\n", i, b0, (int)len - 2, pl + 2);
            return __LINE__;
        }
        memcpy(pl + len, "\x00\x00\xff\xff", 4);
        zi.next_in = pl;
        zi.avail_in = (uInt)len + 4;
        zi.next_out = out;
        zi.avail_out = (uInt)cap;
        CHECK(inflate(&zi, Z_SYNC_FLUSH) == Z_OK);
        size_t got = cap - zi.avail_out;
        CHECK(got == t.want_len[i] && memcmp(out, t.want[i], got) == 0);
    }
    inflateEnd(&zi);
    uint8_t cl[16];
    CHECK(cl_sendn(c, (const char *)cl, ws_mkframe(cl, 0x88, "\x03\xe8", 2, true)) == 0);
    int b0;
    size_t len;
    CHECK(cl_frame(c, &b0, pl, cap, &len) == 0 && (b0 & 0x0f) == SIMUL_WS_CLOSE);
    CHECK(cl_closed(c));
    close(c->fd);
    free(c);
    free(pl);
    free(out);
    traffic_free(&t);
    return 0;
}

static void server_traffic(bool ctx)
{
    fixture f;
    up(&f);
    f.ctx = ctx;
    assert_int_equal(client_run(c_traffic, &f), 0);
    ws_wait_handlers(&g.handlers_done, 1);
    assert_int_equal(g.handlers_done, 1);
    assert_int_equal(g.messages, NMSG);
    assert_int_equal(g.close_code, 1000);
    down(&f);
}

SIMUL_TASK_TEST(server_final_blocks_context_takeover)
{
    (void)arg;
    server_traffic(true);
    return 0;
}

SIMUL_TASK_TEST(server_final_blocks_no_context_takeover)
{
    (void)arg;
    server_traffic(false);
    return 0;
}

/* ---- hostile final blocks ------------------------------------------------------------------- */

/* After the `good` frames (each message echoed), sends `bad` and expects the close `code`. */
static int expect_close_after(fixture *f, const char *path, const uint8_t *good, size_t glen,
                              int gmsgs, const uint8_t *bad, size_t blen, int code)
{
    client *c = malloc(sizeof *c);
    char ext[160];
    CHECK(ws_cl_upgrade_ext(c, f->port, path, "permessage-deflate", ext, sizeof ext) == 0);
    CHECK(strcmp(ext, "permessage-deflate") == 0);
    static uint8_t pl[1 << 16];
    if (glen) {
        CHECK(cl_sendn(c, (const char *)good, glen) == 0);
        for (int i = 0; i < gmsgs; i++) {
            int b0;
            size_t len;
            CHECK(cl_frame(c, &b0, pl, sizeof pl, &len) == 0);
            CHECK((b0 & 0x0f) != SIMUL_WS_CLOSE);
        }
    }
    int rc = expect_close(c, bad, blen, code);
    close(c->fd);
    free(c);
    return rc;
}

/* The hostile payloads, shared by the server's and the client's cases: each is one message's
 * compressed payload (RSV1 on its first frame). */
typedef struct hostile {
    const char *what;
    uint8_t *pl;
    size_t n;
    int code; /* the close code the server answers with */
    int err;  /* what the client's recv returns */
} hostile;

#define NHOSTILE 5
static int make_hostile(hostile *h)
{
    size_t cap = 1 << 16;
    for (int i = 0; i < NHOSTILE; i++) {
        h[i].pl = malloc(cap);
        CHECK(h[i].pl);
        h[i].n = 0;
    }
    /* The stream ended by a final block, then one that is cut: the cut is 1007, here. */
    peer *p = malloc(sizeof *p);
    CHECK(p);
    peer_init(p, false);
    h[0].what = "a final block, then a block cut short";
    CHECK(peer_part(p, "the quick brown fox", 19, FINAL, h[0].pl, cap, &h[0].n) == 0);
    CHECK(peer_part(p, "the quick brown fox again", 25, SYNC, h[0].pl, cap, &h[0].n) == 0);
    h[0].n -= 8;
    deflateEnd(&p->z);
    h[0].code = 1007;
    h[0].err = -EPROTO;
    /* A bomb spread over two final-block streams, each under the limit of 1024: 1000 zeros,
     * then 1000 more (the size counts across streams) -> 1009. */
    peer_init(p, false);
    static const uint8_t zeros[1000];
    h[1].what = "a bomb across final blocks";
    for (int i = 0; i < 2; i++) {
        CHECK(peer_part(p, zeros, sizeof zeros, FINAL, h[1].pl, cap, &h[1].n) == 0);
    }
    peer_end_message(p, h[1].pl, &h[1].n);
    deflateEnd(&p->z);
    h[1].code = 1009;
    h[1].err = -EMSGSIZE;
    /* Garbage (BTYPE 11) right after a final block -> 1007. */
    peer_init(p, false);
    h[2].what = "garbage after a final block";
    CHECK(peer_part(p, "hello", 5, FINAL_BARE, h[2].pl, cap, &h[2].n) == 0);
    memcpy(h[2].pl + h[2].n, "\xff\xff\xff", 3);
    h[2].n += 3;
    deflateEnd(&p->z);
    h[2].code = 1007;
    h[2].err = -EPROTO;
    /* A message cut inside a block: what is left would be read as the next one's start. */
    peer_init(p, false);
    h[3].what = "a message cut inside a block";
    CHECK(peer_part(p, "hello hello hello world", 23, SYNC, h[3].pl, cap, &h[3].n) == 0);
    h[3].n -= 7;
    deflateEnd(&p->z);
    h[3].code = 1007;
    h[3].err = -EPROTO;
    /* A final block with the flush's 00 00 ff ff left on: the tail put back then opens a stored
     * block (RFC 7692 7.2.1 says to remove them) -> 1007. */
    peer_init(p, false);
    h[4].what = "00 00 ff ff left on";
    CHECK(peer_part(p, "hello", 5, FINAL, h[4].pl, cap, &h[4].n) == 0);
    deflateEnd(&p->z);
    h[4].code = 1007;
    h[4].err = -EPROTO;
    free(p);
    return 0;
}

static int c_hostile(void *arg)
{
    fixture *f = arg;
    hostile h[NHOSTILE];
    CHECK(make_hostile(h) == 0);
    /* First a good message ending with a final block (so the stream is in its resumed state),
     * then each hostile one. */
    traffic t;
    CHECK(make_traffic(&t, true, true) == 0);
    static uint8_t fr[1 << 17];
    for (int i = 0; i < NHOSTILE; i++) {
        size_t n = frames_of(fr, SIMUL_WS_BINARY, h[i].pl, h[i].n, i == 1 ? 4 : 0, true);
        /* The bomb goes to /small (1024 bytes), alone: the good traffic is bigger than that. */
        int rc = i == 1 ? expect_close_after(f, "/small", NULL, 0, 0, fr, n, h[i].code)
                        : expect_close_after(f, "/ctx", t.wire, t.len, NMSG, fr, n, h[i].code);
        if (rc) {
            fprintf(stderr, "hostile %d (%s) failed\n", i, h[i].what);
            return rc;
        }
        free(h[i].pl);
    }
    /* RSV1 on a continuation after a message ended by a final block -> 1002. */
    peer *p = malloc(sizeof *p);
    CHECK(p);
    peer_init(p, false);
    uint8_t pl[64];
    size_t n = 0;
    CHECK(peer_message(p, "hello", 5, FINAL, pl, sizeof pl, &n) == 0);
    deflateEnd(&p->z);
    free(p);
    size_t w = ws_mkframe(fr, 0x41, pl, n, true);
    w += ws_mkframe(fr + w, 0xC0, "", 0, true);
    CHECK(expect_close_after(f, "/ctx", t.wire, t.len, NMSG, fr, w, 1002) == 0);
    traffic_free(&t);
    return 0;
}

SIMUL_TASK_TEST(server_hostile_final_blocks)
{
    (void)arg;
    fixture f;
    up(&f);
    assert_int_equal(client_run(c_hostile, &f), 0);
    down(&f);
    return 0;
}

/* ---- our client receiving -------------------------------------------------------------------- */

typedef struct sender {
    const char *ext;      /* the 101's Sec-WebSocket-Extensions value */
    const uint8_t *wire;  /* server frames to send after it */
    size_t len;
} sender;

static int sender_handler(simul_stream *s, void *arg)
{
    sender *sd = arg;
    char answer[512];
    snprintf(answer, sizeof answer,
             WS_OK101 "Sec-WebSocket-Accept: %%s\r\nSec-WebSocket-Extensions: %s\r\n\r\n",
             sd->ext);
    return ws_fake_server(s, answer, sd->wire, sd->len, NULL, 0);
}

/* Opens a client session to a server that answers `ext` and sends wire; returns the session
 * and its stream (the server in *srv). */
static void sender_open(sender *sd, const simul_ws_opts *o, simul_server **srv, simul_stream **s,
                        simul_ws **ws)
{
    assert_int_equal(ws_fake_open(sender_handler, sd, o, NULL, srv, s, ws), 0);
}

static void sender_close(simul_server *srv, simul_stream *s, simul_ws *ws)
{
    simul_ws_close(ws, 0, NULL);
    ws_fake_close(srv, s);
}

static void client_traffic(bool ctx)
{
    traffic t;
    assert_int_equal(make_traffic(&t, ctx, false), 0);
    if (ctx) {
        assert_true(t.second_len < 30);
    }
    simul_ws_opts o = {.deflate = true, .max_message = 4u << 20, .close_timeout = 0.5,
                       .deflate_peer_no_context_takeover = !ctx};
    sender sd = {.ext = ctx ? "permessage-deflate" : "permessage-deflate; server_no_context_takeover",
                 .wire = t.wire, .len = t.len};
    simul_server *srv;
    simul_stream *s;
    simul_ws *ws;
    sender_open(&sd, &o, &srv, &s, &ws);
    for (int i = 0; i < NMSG; i++) {
        const char *d;
        size_t n;
        assert_int_equal(simul_ws_recv(ws, &d, &n), t.op[i]);
        assert_int_equal(n, t.want_len[i]);
        assert_memory_equal(d, t.want[i], n);
    }
    sender_close(srv, s, ws);
    traffic_free(&t);
}

SIMUL_TASK_TEST(client_final_blocks_context_takeover)
{
    (void)arg;
    client_traffic(true);
    return 0;
}

SIMUL_TASK_TEST(client_final_blocks_no_context_takeover)
{
    (void)arg;
    client_traffic(false);
    return 0;
}

SIMUL_TASK_TEST(client_hostile_final_blocks)
{
    (void)arg;
    hostile h[NHOSTILE];
    assert_int_equal(make_hostile(h), 0);
    traffic t;
    assert_int_equal(make_traffic(&t, true, false), 0);
    static uint8_t wire[(1 << 20) * 2 + (1 << 17)];
    for (int i = 0; i < NHOSTILE; i++) {
        /* The good traffic first, then the hostile message. */
        memcpy(wire, t.wire, t.len);
        size_t n = t.len + frames_of(wire + t.len, SIMUL_WS_BINARY, h[i].pl, h[i].n, 0, false);
        sender sd = {.ext = "permessage-deflate", .wire = wire, .len = n};
        simul_ws_opts o = {.deflate = true, .close_timeout = 0.5,
                           .max_message = i == 1 ? 1024 : 4u << 20};
        if (i == 1) {
            /* The good traffic has messages over 1024 bytes: the bomb alone. */
            sd.wire = wire + t.len;
            sd.len = n - t.len;
        }
        simul_server *srv;
        simul_stream *s;
        simul_ws *ws;
        sender_open(&sd, &o, &srv, &s, &ws);
        const char *d;
        size_t len;
        int rc;
        int got = 0;
        while ((rc = simul_ws_recv(ws, &d, &len)) > 0) {
            got++;
        }
        if (rc != h[i].err) {
            fprintf(stderr, "hostile %d (%s): recv %d after %d messages\n", i, h[i].what, rc, got);
        }
        assert_int_equal(rc, h[i].err);
        assert_int_equal(got, i == 1 ? 0 : NMSG);
        sender_close(srv, s, ws);
        free(h[i].pl);
    }
    traffic_free(&t);
    return 0;
}

/* ---- python3-websockets made to end its flushes with final blocks ------------------------------ */

/* websockets compresses each frame with compress() + flush(Z_SYNC_FLUSH) on a zlib compressobj;
 * this swaps in one whose flush is Z_FINISH and the empty stored block of RFC 7692 7.2.1, and
 * whose next stream starts primed with the history (zdict), so what it sends keeps referring
 * back. It counts the final blocks it made. */
#define PY_FINAL \
    "import types, zlib as _z\n" \
    "import websockets.extensions.permessage_deflate as _pmd\n" \
    "class FinalFlush:\n" \
    "    made = 0\n" \
    "    def __init__(self, wbits=-15, **kw):\n" \
    "        self.wbits, self.kw, self.hist = wbits, kw, b''\n" \
    "        self.c = _z.compressobj(wbits=wbits, **kw)\n" \
    "    def compress(self, data):\n" \
    "        self.hist = (self.hist + bytes(data))[-32768:]\n" \
    "        return self.c.compress(data)\n" \
    "    def flush(self, mode=_z.Z_FINISH):\n" \
    "        out = self.c.flush(_z.Z_FINISH)\n" \
    "        FinalFlush.made += 1\n" \
    "        kw = dict(self.kw, zdict=self.hist) if self.hist else self.kw\n" \
    "        self.c = _z.compressobj(wbits=self.wbits, **kw)\n" \
    "        return out + b'\\x00\\x00\\x00\\xff\\xff'\n" \
    "_shim = types.SimpleNamespace(**{k: getattr(_z, k) for k in dir(_z) " \
    "if not k.startswith('__')})\n" \
    "_shim.compressobj = FinalFlush\n" \
    "_pmd.zlib = _shim\n"

static const char py_client[] =
    PY_FINAL
    "import asyncio, sys\n"
    WS_PY_DEFLATE_CONNECT
    "        assert len(ws.extensions) == 1, ws.extensions\n"
    "        for i in range(40):\n"
    "            m = f'message {i}: ' + 'the quick brown fox jumps over the lazy dog ' * (i % 5 + 1)\n"
    "            await ws.send(m)\n"
    "            assert await ws.recv() == m\n"
    "        await ws.send(['frag ', 'men ', 'ted: the quick brown fox \\u00e9'])\n"
    "        assert await ws.recv() == 'frag men ted: the quick brown fox \\u00e9'\n"
    "        big = (b'simul, a chess simul on tasks ' * 40000)[:1000000]\n"
    "        await ws.send(big)\n"
    "        assert await ws.recv() == big\n"
    "        await ws.send('')\n"
    "        assert await ws.recv() == ''\n"
    "        await ws.send('after all that: the quick brown fox jumps over the lazy dog')\n"
    "        assert await ws.recv() == 'after all that: the quick brown fox jumps over the lazy dog'\n"
    "        await ws.close(1000, 'done')\n"
    "    assert FinalFlush.made >= 44, FinalFlush.made\n"
    "asyncio.run(main(int(sys.argv[1]), sys.argv[2]))\n";

static void python_client(const char *mode)
{
    if (!have_websockets()) {
        skip();
    }
    fixture f;
    up(&f);
    ws_write_script(f.tmp, "client.py", py_client, f.script, sizeof f.script);
    pysrv pc = {0};
    snprintf(pc.cmd, sizeof pc.cmd, "timeout 60 /usr/bin/python3 '%s' %d %s", f.script, f.port,
             mode);
    assert_int_equal(client_run(pysrv_run, &pc), 0);
    ws_wait_handlers(&g.handlers_done, 1);
    assert_int_equal(g.handlers_done, 1);
    assert_int_equal(g.recv_rc, 0);
    assert_int_equal(g.close_code, 1000);
    assert_int_equal(g.messages, 44);
    down(&f);
}

SIMUL_TASK_TEST(python_client_final_blocks_context_takeover)
{
    (void)arg;
    python_client("ctx");
    return 0;
}

SIMUL_TASK_TEST(python_client_final_blocks_no_context_takeover)
{
    (void)arg;
    python_client("nctx");
    return 0;
}

static const char py_server[] =
    PY_FINAL
    "import asyncio, sys\n"
    WS_PY_DEFLATE_ECHO
    "        if msg == 'fragments':\n"
    "            await ws.send(['the quick ', 'brown fox ', 'jumps \\u00e9'])\n"
    "    assert FinalFlush.made >= 40, FinalFlush.made\n"
    WS_PY_DEFLATE_SERVE;

static void python_server(const char *mode, const simul_ws_opts *o)
{
    if (!have_websockets()) {
        skip();
    }
    fixture f;
    up(&f);
    pysrv ps = {0};
    simul_stream *s;
    simul_ws *ws;
    ws_py_server_open(&ps, f.tmp, py_server, mode, o, &s, &ws);
    assert_non_null(simul_ws_extensions(ws));
    const char *d;
    size_t n;
    char m[256];
    for (int i = 0; i < 40; i++) {
        snprintf(m, sizeof m, "message %d: the quick brown fox jumps over the lazy dog %d", i,
                 i % 3);
        assert_int_equal(simul_ws_send_text(ws, m), 0);
        assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
        assert_string_equal(d, m);
    }
    size_t bl = 600000;
    char *b = malloc(bl);
    assert_non_null(b);
    for (size_t i = 0; i < bl; i++) {
        b[i] = (char)(i % 251 < 200 ? 'a' + i % 7 : i * 2654435761u >> 24);
    }
    ws_echo_check(ws, SIMUL_WS_BINARY, b, bl);
    free(b);
    assert_int_equal(simul_ws_send_text(ws, "fragments"), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "fragments");
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "the quick brown fox jumps \xc3\xa9");
    assert_int_equal(simul_ws_send(ws, SIMUL_WS_TEXT, "", 0), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_int_equal(n, 0);
    assert_int_equal(simul_ws_send_text(ws, "the quick brown fox, last"), 0);
    assert_int_equal(simul_ws_recv(ws, &d, &n), SIMUL_WS_TEXT);
    assert_string_equal(d, "the quick brown fox, last");
    ws_py_server_close(&ps, s, ws);
    down(&f);
}

SIMUL_TASK_TEST(python_server_final_blocks_context_takeover)
{
    (void)arg;
    python_server("ctx", ws_deflate_opts("ctx"));
    return 0;
}

SIMUL_TASK_TEST(python_server_final_blocks_no_context_takeover)
{
    (void)arg;
    python_server("nctx", ws_deflate_opts("nctx"));
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(server_final_blocks_context_takeover),
        cmocka_unit_test(server_final_blocks_no_context_takeover),
        cmocka_unit_test(server_hostile_final_blocks),
        cmocka_unit_test(client_final_blocks_context_takeover),
        cmocka_unit_test(client_final_blocks_no_context_takeover),
        cmocka_unit_test(client_hostile_final_blocks),
        cmocka_unit_test(python_client_final_blocks_context_takeover),
        cmocka_unit_test(python_client_final_blocks_no_context_takeover),
        cmocka_unit_test(python_server_final_blocks_context_takeover),
        cmocka_unit_test(python_server_final_blocks_no_context_takeover),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_ws_deflate_final");
}
