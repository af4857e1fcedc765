/* ws_frame_bench.c — libsimul-http's WebSocket frame parser beside wslay's (Debian's
 * libwslay-dev, linked into this bench only) on the same masked client frames in the same run:
 * small text frames (a chat or a game feed), 4 KiB and 64 KiB binary frames. Prints frames per
 * second and MB/s of payload for each parser; each shape alternates the two, best of 5.
 *
 *   ws_frame_bench <rounds>          (bench/run_ws_frame.sh runs it, pinned to one core)
 *
 * Both do a server's receive work: the bytes are copied into the parser's buffer (ours: the
 * caller's buffer, unmasked in place; wslay: its recv callback copies into its own buffer), the
 * header parsed, the payload unmasked and handed out. Ours also checks text for UTF-8 (wslay's
 * frame layer does not), so the text figure flatters wslay. Before timing, both must agree on
 * the frame and payload byte counts. */
#define BENCH_NAME "ws_frame_bench"
#include "bench_util.h"

#include <string.h>

#include <simul/http.h>
#ifdef SIMUL_HAVE_WSLAY
#include <wslay/wslay.h>
#endif

typedef struct shape {
    const char *name;
    int op;
    size_t payload, frames;
    uint8_t *in;
    size_t len;
} shape;

static void build(shape *s)
{
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    s->len = s->frames * (s->payload + 14);
    s->in = malloc(s->len);
    uint8_t *pl = malloc(s->payload);
    if (!s->in || !pl) {
        die("out of memory");
    }
    for (size_t i = 0; i < s->payload; i++) {
        pl[i] = (uint8_t)('a' + i % 26); /* ASCII: valid text too */
    }
    size_t n = 0;
    for (size_t f = 0; f < s->frames; f++) {
        n += simul_ws_frame_header(s->in + n, s->op, true, s->payload, key);
        memcpy(s->in + n, pl, s->payload);
        simul_ws_mask(s->in + n, s->payload, key, 0);
        n += s->payload;
    }
    s->len = n;
    free(pl);
}

static uint8_t *work;

/* Ours: the input read into the buffer (one copy), then parsed whole. Returns frames seen;
 * *bytes the payload bytes. */
static size_t ours(const shape *s, size_t *bytes)
{
    memcpy(work, s->in, s->len);
    simul_ws_parser p;
    simul_ws_parser_init(&p, true, UINT64_MAX);
    size_t off = 0, frames = 0;
    *bytes = 0;
    for (;;) {
        size_t used;
        simul_ws_frame f;
        int ev = simul_ws_parser_feed(&p, work + off, s->len - off, &used, &f);
        if (ev < 0) {
            die("our parser failed: %s", simul_ws_error_reason(p.error));
        }
        off += used;
        if (ev == SIMUL_WS_NEED_MORE) {
            break;
        }
        *bytes += f.len;
        frames += f.fin;
    }
    return frames;
}

#ifdef SIMUL_HAVE_WSLAY
typedef struct feed {
    const uint8_t *in;
    size_t len, off;
} feed;

static ssize_t recv_cb(uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    feed *fd = user;
    size_t n = fd->len - fd->off < len ? fd->len - fd->off : len;
    if (n == 0) {
        return -1; /* no more: wslay reports WANT_READ */
    }
    memcpy(buf, fd->in + fd->off, n);
    fd->off += n;
    return (ssize_t)n;
}

static ssize_t send_cb(const uint8_t *d, size_t l, int f, void *u)
{
    (void)d, (void)f, (void)u;
    return (ssize_t)l;
}

static int genmask_cb(uint8_t *b, size_t l, void *u)
{
    (void)u;
    memset(b, 0, l);
    return 0;
}

static size_t wslay(const shape *s, size_t *bytes)
{
    feed fd = {s->in, s->len, 0};
    struct wslay_frame_callbacks cb = {send_cb, recv_cb, genmask_cb};
    wslay_frame_context_ptr ctx;
    if (wslay_frame_context_init(&ctx, &cb, &fd) != 0) {
        die("wslay_frame_context_init failed");
    }
    size_t frames = 0;
    uint64_t got = 0;
    *bytes = 0;
    for (;;) {
        struct wslay_frame_iocb io;
        ssize_t r = wslay_frame_recv(ctx, &io);
        if (r == WSLAY_ERR_WANT_READ) {
            break;
        }
        if (r < 0) {
            die("wslay_frame_recv failed: %zd", r);
        }
        *bytes += io.data_length;
        got += io.data_length;
        if (got == io.payload_length) {
            frames++;
            got = 0;
        }
    }
    wslay_frame_context_free(ctx);
    return frames;
}
#endif

static double timed(size_t (*fn)(const shape *, size_t *), const shape *s, long rounds,
                    size_t *frames)
{
    size_t bytes;
    int64_t t0 = mono_ns();
    size_t total = 0;
    for (long r = 0; r < rounds; r++) {
        total += fn(s, &bytes);
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    *frames = total;
    return secs;
}

int main(int argc, char **argv)
{
    long rounds = parse_count(argc > 1 ? argv[1] : NULL, 200);
    shape shapes[] = {
        {"text32", SIMUL_WS_TEXT, 32, 20000, NULL, 0},
        {"bin4k", SIMUL_WS_BINARY, 4096, 400, NULL, 0},
        {"bin64k", SIMUL_WS_BINARY, 65536, 25, NULL, 0},
    };
    size_t maxlen = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        build(&shapes[i]);
        maxlen = shapes[i].len > maxlen ? shapes[i].len : maxlen;
    }
    work = malloc(maxlen);
    if (!work) {
        die("out of memory");
    }
#ifdef SIMUL_HAVE_WSLAY
    printf("wslay=1\n");
#endif
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        shape *s = &shapes[i];
        size_t b1, f1 = ours(s, &b1);
        if (f1 != s->frames || b1 != s->frames * s->payload) {
            die("%s: ours saw %zu frames, %zu bytes", s->name, f1, b1);
        }
#ifdef SIMUL_HAVE_WSLAY
        size_t b2, f2 = wslay(s, &b2);
        if (f2 != f1 || b2 != b1) {
            die("%s: wslay saw %zu frames, %zu bytes; ours %zu, %zu", s->name, f2, b2, f1, b1);
        }
#endif
        double o[5], w[5];
        for (int r = 0; r < 5; r++) {
            size_t n;
            double t = timed(ours, s, rounds, &n);
            o[r] = (double)n / t;
#ifdef SIMUL_HAVE_WSLAY
            t = timed(wslay, s, rounds, &n);
            w[r] = (double)n / t;
#else
            w[r] = 0;
#endif
        }
        char key[64];
        snprintf(key, sizeof key, "ws_%s_frames_per_s", s->name);
        double bo = report_runs(key, o, 5, 0, false);
        printf("ws_%s_mb_per_s=%.1f\n", s->name, bo * (double)s->payload / 1e6);
#ifdef SIMUL_HAVE_WSLAY
        snprintf(key, sizeof key, "wslay_%s_frames_per_s", s->name);
        double bw = report_runs(key, w, 5, 0, false);
        printf("wslay_%s_mb_per_s=%.1f\n", s->name, bw * (double)s->payload / 1e6);
#endif
        free(s->in);
    }
    free(work);
    return 0;
}
