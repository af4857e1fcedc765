/* fuzz_http_ws.c — the WebSocket frame parser of libsimul-http, fed the same bytes whole, one
 * byte at a time and split at a fuzzed point: the three must give the same messages, control
 * frames and verdict. Every event is checked against the header's promises: data inside the
 * buffer, control payloads within 125 bytes, messages within max_message, text messages valid
 * UTF-8 (checked again here whole), close codes valid, errors with their close code.
 *
 * Input: [flags][split][frame bytes...]. flags bit 0: the client side (unmasked frames expected),
 * bit 1: a small max_message (64), bit 2: permessage-deflate negotiated (RSV1 allowed on a
 * message's first frame), bit 3: no context takeover. Compressed messages go through the
 * sessions' inflater piece by piece as they come: it must give the same bytes and verdict at
 * every split and never grow its buffer past max_message + 2 bytes. Built as a libFuzzer target with clang (-DSIMUL_BUILD_FUZZ=ON)
 * and always as a replay program over fuzz/corpus/http_ws (ctest). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul/http.h>

#include "../src/http/ws_internal.h" /* the sessions' inflater (in libsimul-http) */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http_ws: check failed at line %d: %s\n", __LINE__, #cond);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct out {
    uint64_t hash; /* of every event and byte, in order */
    int zrc;       /* the inflater's first error */
    size_t events;
    int rc;
    simul_ws_error error;
} out;

static void mix(out *o, const void *d, size_t n)
{
    const uint8_t *p = d;
    for (size_t i = 0; i < n; i++) {
        o->hash = (o->hash ^ p[i]) * 0x100000001b3ull;
    }
}

/* step 0: whole; else pieces of `step` bytes; split > 0: first split bytes, then the rest. */
static void run(out *o, bool server, uint64_t max, int flags, const uint8_t *in, size_t n,
                size_t step, size_t split)
{
    memset(o, 0, sizeof *o);
    o->hash = 0xcbf29ce484222325ull;
    simul_ws_parser p;
    simul_ws_parser_init(&p, server, max);
    bool deflate = flags & 4;
    simul_ws_parser_allow_compressed(&p, deflate);
    http_ws_z z;
    http_ws_pmd pm = {.our_bits = 15, .reset_in = flags & 8};
    CHECK(http_ws_z_init(&z, &pm, 0) == 0);
    http_ws_buf zb = {0};
    uint8_t *buf = malloc(n + 1);
    uint8_t *msg = malloc(n + 1);
    CHECK(buf && msg);
    size_t have = 0, given = 0, mlen = 0;
    int mop = 0;
    while (given < n) {
        size_t k = n - given;
        if (step) {
            k = k < step ? k : step;
        } else if (split && given < split) {
            k = split - given;
        }
        memcpy(buf + have, in + given, k);
        have += k;
        given += k;
        for (;;) {
            size_t used = 0;
            simul_ws_frame f;
            int ev = simul_ws_parser_feed(&p, buf, have, &used, &f);
            if (ev < 0) {
                CHECK(ev == -EPROTO || ev == -EMSGSIZE);
                CHECK((ev == -EMSGSIZE) == (p.error == SIMUL_WS_E_TOO_BIG));
                int code = simul_ws_error_close_code(p.error);
                CHECK(code == 1002 || code == 1007 || code == 1009);
                o->rc = ev;
                o->error = p.error;
                /* Sticky. */
                CHECK(simul_ws_parser_feed(&p, buf, have, &used, &f) == ev && used == 0);
                goto done;
            }
            CHECK(used <= have);
            if (ev == SIMUL_WS_DATA) {
                CHECK(f.opcode == SIMUL_WS_TEXT || f.opcode == SIMUL_WS_BINARY);
                CHECK(mop == 0 || mop == f.opcode);
                CHECK(f.len == 0 || (f.data >= buf && f.data + f.len <= buf + have));
                mop = f.opcode;
                CHECK(deflate || !f.compressed);
                if (f.compressed) {
                    /* As the session does: inflate each piece, stop at the first error. */
                    if (!o->zrc) {
                        int zr = http_ws_inflate(&z, f.data, f.len, f.fin, max, &zb);
                        CHECK(zr == 0 || zr == -EMSGSIZE || zr == -EPROTO);
                        CHECK(zb.len <= max + 1 && zb.cap <= max + 2);
                        if (zr < 0) {
                            o->zrc = zr;
                            mix(o, &zr, sizeof zr);
                        }
                    }
                    if (f.fin) {
                        if (!o->zrc) {
                            mix(o, &mop, sizeof mop);
                            mix(o, zb.p, zb.len);
                        }
                        zb.len = 0;
                        mop = 0;
                        o->events++;
                    }
                    goto next;
                }
                memcpy(msg + mlen, f.data, f.len);
                mlen += f.len;
                CHECK(mlen <= max);
                if (f.fin) {
                    if (mop == SIMUL_WS_TEXT) {
                        uint32_t st = 0;
                        CHECK(simul_ws_utf8_check(&st, msg, mlen) && st == 0);
                    }
                    mix(o, &mop, sizeof mop);
                    mix(o, msg, mlen);
                    o->events++;
                    mlen = 0;
                    mop = 0;
                }
            } else if (ev == SIMUL_WS_CONTROL) {
                CHECK(f.len <= 125 && f.fin);
                CHECK(f.opcode == SIMUL_WS_PING || f.opcode == SIMUL_WS_PONG ||
                      f.opcode == SIMUL_WS_CLOSE);
                if (f.opcode == SIMUL_WS_CLOSE) {
                    CHECK(f.len == 0 ? f.close_code == 1005
                                     : (f.len >= 2 && simul_ws_close_code_valid(f.close_code)));
                }
                mix(o, &f.opcode, 1);
                mix(o, f.data, f.len);
                o->events++;
            }
        next:
            memmove(buf, buf + used, have - used);
            have -= used;
            if (ev == SIMUL_WS_NEED_MORE) {
                break;
            }
        }
    }
    /* Whatever is left is an unfinished frame (a header, a control frame or payload to come). */
    mix(o, &have, sizeof have);
done:
    http_ws_z_free(&z);
    free(zb.p);
    free(buf);
    free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    bool server = !(data[0] & 1);
    uint64_t max = data[0] & 2 ? 64 : 1 << 20;
    size_t n = size - 2, split = n ? data[1] % (n + 1) : 0;
    const uint8_t *in = data + 2;
    out a, b, c;
    run(&a, server, max, data[0], in, n, 0, 0);
    run(&b, server, max, data[0], in, n, 1, 0);
    run(&c, server, max, data[0], in, n, 0, split);
    CHECK(a.hash == b.hash && a.hash == c.hash && a.zrc == b.zrc && a.zrc == c.zrc);
    CHECK(a.rc == b.rc && a.rc == c.rc && a.error == b.error && a.error == c.error);
    /* The encoder: a header it writes parses back to the same frame. */
    if (n >= 3) {
        uint8_t h[14 + 8];
        int op = in[0] % 3 == 0 ? SIMUL_WS_TEXT : SIMUL_WS_BINARY;
        uint64_t len = (uint64_t)in[1] << (in[2] % 24);
        size_t hl = simul_ws_frame_header(h, op, true, len, NULL);
        simul_ws_parser p;
        simul_ws_parser_init(&p, false, UINT64_MAX);
        size_t used;
        simul_ws_frame f;
        int ev = simul_ws_parser_feed(&p, h, hl, &used, &f);
        CHECK(ev == (len ? SIMUL_WS_NEED_MORE : SIMUL_WS_DATA) && used == hl);
    }
    return 0;
}
