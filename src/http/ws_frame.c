/* ws_frame.c — the WebSocket codec (RFC 6455), a pure function over bytes: the frame parser with
 * its limits, the frame header encoder, masking, incremental UTF-8 checking and the handshake's
 * accept key. The idea: headers and control frames are consumed only once whole (they are small),
 * data payload is handed out in place as it comes, so nothing is copied and the split of the
 * bytes never changes the outcome. */
#include "ws_internal.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

/* ---- UTF-8 ----------------------------------------------------------------------------------
 * state: 0 between characters; else (bytes still expected) << 8 | (the first continuation's
 * allowed range: 0 any, 1 E0 (A0..BF), 2 ED (80..9F), 3 F0 (90..BF), 4 F4 (80..8F)). */
bool simul_ws_utf8_check(uint32_t *state, const uint8_t *s, size_t len)
{
    uint32_t st = *state;
    size_t i = 0;
    for (;;) {
        if (st == 0) {
            /* Fast path: ASCII eight bytes at a time. */
            while (i + 8 <= len) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ull) {
                    break;
                }
                i += 8;
            }
            while (i < len && s[i] < 0x80) {
                i++;
            }
            if (i == len) {
                *state = 0;
                return true;
            }
            uint8_t c = s[i++];
            if (c >= 0xC2 && c <= 0xDF) {
                st = 1u << 8;
            } else if (c == 0xE0) {
                st = 2u << 8 | 1;
            } else if (c == 0xED) {
                st = 2u << 8 | 2;
            } else if (c >= 0xE1 && c <= 0xEF) {
                st = 2u << 8;
            } else if (c == 0xF0) {
                st = 3u << 8 | 3;
            } else if (c == 0xF4) {
                st = 3u << 8 | 4;
            } else if (c >= 0xF1 && c <= 0xF3) {
                st = 3u << 8;
            } else {
                *state = st;
                return false; /* a continuation byte first, C0/C1 (overlong), F5..FF */
            }
            continue;
        }
        if (i == len) {
            *state = st;
            return true;
        }
        uint8_t c = s[i++];
        uint8_t lo = 0x80, hi = 0xBF;
        switch (st & 0xFF) {
        case 1: lo = 0xA0; break; /* E0: no overlong 3-byte forms */
        case 2: hi = 0x9F; break; /* ED: no surrogates */
        case 3: lo = 0x90; break; /* F0: no overlong 4-byte forms */
        case 4: hi = 0x8F; break; /* F4: nothing over U+10FFFF */
        default: break;
        }
        if (c < lo || c > hi) {
            *state = st;
            return false;
        }
        uint32_t left = (st >> 8) - 1;
        st = left ? left << 8 : 0;
    }
}

/* ---- errors --------------------------------------------------------------------------------- */
static const struct {
    const char *reason;
    int code;
} errors[SIMUL_WS_E_COUNT_] = {
    [SIMUL_WS_OK] = {"ok", 1000},
    [SIMUL_WS_E_RESERVED_BITS] = {"reserved bits set", 1002},
    [SIMUL_WS_E_OPCODE] = {"reserved opcode", 1002},
    [SIMUL_WS_E_MASK] = {"wrong masking for this side", 1002},
    [SIMUL_WS_E_CONTROL_FRAGMENTED] = {"fragmented control frame", 1002},
    [SIMUL_WS_E_CONTROL_TOO_LONG] = {"control frame payload over 125 bytes", 1002},
    [SIMUL_WS_E_LENGTH_NOT_MINIMAL] = {"payload length not in its minimal form", 1002},
    [SIMUL_WS_E_LENGTH_TOP_BIT] = {"64-bit payload length with its top bit set", 1002},
    [SIMUL_WS_E_UNEXPECTED_CONT] = {"continuation frame without a message", 1002},
    [SIMUL_WS_E_EXPECTED_CONT] = {"new message inside a fragmented one", 1002},
    [SIMUL_WS_E_CLOSE_LENGTH] = {"close frame with a 1-byte payload", 1002},
    [SIMUL_WS_E_CLOSE_CODE] = {"invalid close code", 1002},
    [SIMUL_WS_E_AFTER_CLOSE] = {"frame after the close frame", 1002},
    [SIMUL_WS_E_UTF8] = {"invalid UTF-8 in text", 1007},
    [SIMUL_WS_E_TOO_BIG] = {"message over the size limit", 1009},
};

int simul_ws_error_close_code(simul_ws_error e)
{
    return (unsigned)e < SIMUL_WS_E_COUNT_ ? errors[e].code : 1002;
}

const char *simul_ws_error_reason(simul_ws_error e)
{
    return (unsigned)e < SIMUL_WS_E_COUNT_ ? errors[e].reason : "unknown error";
}

bool simul_ws_close_code_valid(int code)
{
    /* 1004-1006 and 1015 are reserved (never on the wire); 1012-1014 are IANA-registered. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* ---- the parser ----------------------------------------------------------------------------- */
void simul_ws_parser_init(simul_ws_parser *p, bool server, uint64_t max_message)
{
    memset(p, 0, sizeof *p);
    p->priv_.server = server;
    p->priv_.max_message = max_message ? max_message : SIMUL_WS_DEFAULT_MAX_MESSAGE;
}

void simul_ws_parser_allow_compressed(simul_ws_parser *p, bool on)
{
    p->priv_.rsv1_ok = on;
}

static int fail(simul_ws_parser *p, simul_ws_error e)
{
    p->error = e;
    return e == SIMUL_WS_E_TOO_BIG ? -EMSGSIZE : -EPROTO;
}

void simul_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t phase)
{
    size_t i = 0;
    phase &= 3;
    /* Align to the key, then eight bytes at a time. */
    while (i < len && ((phase + i) & 3)) {
        data[i] ^= key[(phase + i) & 3];
        i++;
    }
    uint32_t k32;
    memcpy(&k32, key, 4);
    uint64_t k64 = (uint64_t)k32 << 32 | k32;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= k64;
        memcpy(data + i, &w, 8);
    }
    for (; i < len; i++) {
        data[i] ^= key[(phase + i) & 3];
    }
}

int simul_ws_parser_feed(simul_ws_parser *p, uint8_t *buf, size_t len, size_t *consumed,
                         simul_ws_frame *f)
{
    *consumed = 0;
    memset(f, 0, sizeof *f);
    if (p->error) {
        return fail(p, p->error);
    }
    size_t off = 0;
    for (;;) {
        if (p->priv_.in_frame) {
            /* Inside a data frame's payload: hand out what is here. */
            size_t n = len - off;
            if (n > p->priv_.remaining) {
                n = (size_t)p->priv_.remaining;
            }
            if (n == 0 && p->priv_.remaining > 0) {
                *consumed = off;
                return SIMUL_WS_NEED_MORE;
            }
            uint8_t *d = buf + off;
            if (p->priv_.masked) {
                simul_ws_mask(d, n, p->priv_.key, p->priv_.phase);
                p->priv_.phase = (p->priv_.phase + (uint32_t)n) & 3;
            }
            bool text = p->priv_.msg_op == SIMUL_WS_TEXT && !p->priv_.compressed;
            if (text && !simul_ws_utf8_check(&p->priv_.utf8, d, n)) {
                return fail(p, SIMUL_WS_E_UTF8);
            }
            p->priv_.remaining -= n;
            off += n;
            bool end = p->priv_.remaining == 0;
            bool fin = end && p->priv_.fin;
            if (end) {
                p->priv_.in_frame = false;
            }
            if (fin && text && p->priv_.utf8 != 0) {
                return fail(p, SIMUL_WS_E_UTF8); /* the text ends inside a character */
            }
            if (n == 0 && !fin) {
                continue; /* an empty non-final fragment: nothing to report */
            }
            f->opcode = p->priv_.msg_op;
            f->fin = fin;
            f->compressed = p->priv_.compressed;
            f->data = d;
            f->len = n;
            if (fin) {
                p->priv_.msg_op = 0;
                p->priv_.msg_len = 0;
            }
            *consumed = off;
            return SIMUL_WS_DATA;
        }
        /* A frame header. */
        size_t avail = len - off;
        if (avail < 2) {
            *consumed = off;
            return SIMUL_WS_NEED_MORE;
        }
        if (p->priv_.closed) {
            return fail(p, SIMUL_WS_E_AFTER_CLOSE);
        }
        const uint8_t *h = buf + off;
        bool fin = h[0] & 0x80;
        int op = h[0] & 0x0F;
        bool masked = h[1] & 0x80;
        uint64_t plen = h[1] & 0x7F;
        /* What can be judged from the first two bytes is judged at once (fail fast). */
        uint8_t rsv = h[0] & 0x70;
        if (rsv && !(rsv == 0x40 && p->priv_.rsv1_ok &&
                     (op == SIMUL_WS_TEXT || op == SIMUL_WS_BINARY))) {
            return fail(p, SIMUL_WS_E_RESERVED_BITS); /* RSV1 only on a message's first frame */
        }
        if ((op > SIMUL_WS_BINARY && op < SIMUL_WS_CLOSE) || op > SIMUL_WS_PONG) {
            return fail(p, SIMUL_WS_E_OPCODE);
        }
        if (masked != p->priv_.server) {
            return fail(p, SIMUL_WS_E_MASK);
        }
        bool control = op >= SIMUL_WS_CLOSE;
        if (control && !fin) {
            return fail(p, SIMUL_WS_E_CONTROL_FRAGMENTED);
        }
        if (control && plen > 125) {
            return fail(p, SIMUL_WS_E_CONTROL_TOO_LONG);
        }
        if (op == SIMUL_WS_CONT && !p->priv_.msg_op) {
            return fail(p, SIMUL_WS_E_UNEXPECTED_CONT);
        }
        if ((op == SIMUL_WS_TEXT || op == SIMUL_WS_BINARY) && p->priv_.msg_op) {
            return fail(p, SIMUL_WS_E_EXPECTED_CONT);
        }
        size_t hlen = 2 + (plen == 126 ? 2 : plen == 127 ? 8 : 0) + (masked ? 4 : 0);
        if (avail < hlen) {
            *consumed = off;
            return SIMUL_WS_NEED_MORE;
        }
        size_t k = 2;
        if (plen == 126) {
            plen = (uint64_t)h[2] << 8 | h[3];
            k = 4;
            if (plen < 126) {
                return fail(p, SIMUL_WS_E_LENGTH_NOT_MINIMAL);
            }
        } else if (plen == 127) {
            plen = 0;
            for (int i = 0; i < 8; i++) {
                plen = plen << 8 | h[2 + i];
            }
            k = 10;
            if (plen >> 63) {
                return fail(p, SIMUL_WS_E_LENGTH_TOP_BIT);
            }
            if (plen <= 0xFFFF) {
                return fail(p, SIMUL_WS_E_LENGTH_NOT_MINIMAL);
            }
        }
        uint8_t key[4] = {0, 0, 0, 0};
        if (masked) {
            memcpy(key, h + k, 4);
        }
        if (control) {
            /* Consumed only whole: at most 139 bytes, so always contiguous. */
            if (avail < hlen + plen) {
                *consumed = off;
                return SIMUL_WS_NEED_MORE;
            }
            uint8_t *d = buf + off + hlen;
            if (masked) {
                simul_ws_mask(d, (size_t)plen, key, 0);
            }
            f->opcode = (uint8_t)op;
            f->fin = true;
            f->data = d;
            f->len = (size_t)plen;
            if (op == SIMUL_WS_CLOSE) {
                if (plen == 1) {
                    return fail(p, SIMUL_WS_E_CLOSE_LENGTH);
                }
                f->close_code = SIMUL_WS_CLOSE_NO_STATUS;
                if (plen >= 2) {
                    f->close_code = d[0] << 8 | d[1];
                    if (!simul_ws_close_code_valid(f->close_code)) {
                        return fail(p, SIMUL_WS_E_CLOSE_CODE);
                    }
                    uint32_t st = 0;
                    if (!simul_ws_utf8_check(&st, d + 2, (size_t)plen - 2) || st != 0) {
                        return fail(p, SIMUL_WS_E_UTF8);
                    }
                }
                p->priv_.closed = true;
            }
            *consumed = off + hlen + (size_t)plen;
            return SIMUL_WS_CONTROL;
        }
        /* A data frame: check the size before any payload arrives. */
        if (plen > p->priv_.max_message - p->priv_.msg_len) {
            return fail(p, SIMUL_WS_E_TOO_BIG);
        }
        if (op != SIMUL_WS_CONT) {
            p->priv_.msg_op = (uint8_t)op;
            p->priv_.utf8 = 0;
            p->priv_.compressed = rsv != 0;
        }
        p->priv_.msg_len += plen;
        p->priv_.remaining = plen;
        p->priv_.masked = masked;
        memcpy(p->priv_.key, key, 4);
        p->priv_.phase = 0;
        p->priv_.fin = fin;
        p->priv_.in_frame = true;
        off += hlen;
    }
}

/* ---- the encoder ---------------------------------------------------------------------------- */
size_t simul_ws_frame_header(uint8_t out[14], int opcode, bool fin, uint64_t len,
                             const uint8_t *mask)
{
    size_t k = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        out[1] = (uint8_t)(m | len);
    } else if (len <= 0xFFFF) {
        out[1] = m | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        k = 4;
    } else {
        out[1] = m | 127;
        for (int i = 0; i < 8; i++) {
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        }
        k = 10;
    }
    if (mask) {
        memcpy(out + k, mask, 4);
        k += 4;
    }
    return k;
}

/* ---- the handshake's key: base64(SHA-1(key + GUID)) ---------------------------------------- */
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of n bytes into out (4 * ceil(n / 3) characters and a NUL). */
static void base64(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
}

void simul_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    /* OpenSSL's SHA-1 (libcrypto). A failure (out of memory) leaves a digest of zeros: an
     * accept key that matches no key, so the handshake fails rather than passes. */
    uint8_t d[20] = {0};
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
        !EVP_DigestUpdate(ctx, key, key_len) || !EVP_DigestUpdate(ctx, guid, sizeof guid - 1) ||
        !EVP_DigestFinal_ex(ctx, d, &n) || n != 20) {
        memset(d, 0, sizeof d);
    }
    EVP_MD_CTX_free(ctx);
    base64(d, 20, out);
}

void http_ws_base64_16(const uint8_t in[16], char out[25])
{
    base64(in, 16, out);
}
