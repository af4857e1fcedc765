/* test_ws_frame.c — the WebSocket codec of libsimul-http (a pure function over bytes): every
 * frame shape and the autobahn-style bad cases, each fed whole, byte by byte and split at every
 * offset (the transcript must not change), the limits at their boundary, UTF-8 over every code
 * point, the encoder, masking and the handshake key. */
#include "test_main_helpers.h"

#include <simul/http.h>

/* ---- the harness: a caller that keeps unconsumed bytes ------------------------------------ */

typedef struct transcript {
    char text[1 << 17];
    size_t len;
    int rc;
    simul_ws_error error;
} transcript;

static void tput(transcript *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->text + t->len, sizeof t->text - t->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && t->len + (size_t)n < sizeof t->text);
    t->len += (size_t)n;
}

static void tbytes(transcript *t, const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (d[i] >= 0x20 && d[i] < 0x7f && d[i] != '%') {
            tput(t, "%c", d[i]);
        } else {
            tput(t, "%%%02x", d[i]);
        }
    }
}

/* Feeds in[0..n) in pieces of `step` bytes (0: whole; a split point: first `split`, then the
 * rest) to a parser and writes what it reported: messages whole, controls, the error. */
static void run(transcript *t, bool server, uint64_t max, const uint8_t *in, size_t n,
                size_t step, size_t split)
{
    memset(t, 0, sizeof *t);
    simul_ws_parser p;
    simul_ws_parser_init(&p, server, max);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    size_t have = 0, given = 0; /* buf[0..have): unconsumed */
    uint8_t *msg = malloc(n + 1);
    size_t mlen = 0;
    while (given < n || have) {
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
            t->rc = ev;
            if (ev < 0) {
                t->error = p.error;
                assert_int_equal(ev, p.error == SIMUL_WS_E_TOO_BIG ? -EMSGSIZE : -EPROTO);
                tput(t, "ERR %s|", simul_ws_error_reason(p.error));
                free(buf);
                free(msg);
                return;
            }
            assert_true(used <= have);
            if (ev == SIMUL_WS_DATA) {
                assert_true(f.data >= buf && f.data + f.len <= buf + have);
                memcpy(msg + mlen, f.data, f.len);
                mlen += f.len;
                if (f.fin) {
                    tput(t, "%s:", f.opcode == SIMUL_WS_TEXT ? "TEXT" : "BIN");
                    tbytes(t, msg, mlen);
                    tput(t, "|");
                    mlen = 0;
                }
            } else if (ev == SIMUL_WS_CONTROL) {
                tput(t, "%s:", f.opcode == SIMUL_WS_PING ? "PING"
                               : f.opcode == SIMUL_WS_PONG ? "PONG" : "CLOSE");
                if (f.opcode == SIMUL_WS_CLOSE) {
                    tput(t, "%d:", f.close_code);
                    if (f.len > 2) {
                        tbytes(t, f.data + 2, f.len - 2);
                    }
                } else {
                    tbytes(t, f.data, f.len);
                }
                tput(t, "|");
            }
            memmove(buf, buf + used, have - used);
            have -= used;
            if (ev == SIMUL_WS_NEED_MORE) {
                break;
            }
        }
        if (given == n) {
            break;
        }
    }
    if (have) {
        tput(t, "LEFT %zu|", have);
    }
    free(buf);
    free(msg);
}

/* The transcript of in fed whole; asserts the same for byte by byte and every split. */
static const char *parse_all(bool server, uint64_t max, const uint8_t *in, size_t n)
{
    static transcript whole, other;
    run(&whole, server, max, in, n, 0, 0);
    run(&other, server, max, in, n, 1, 0);
    assert_string_equal(other.text, whole.text);
    for (size_t s = 1; s < n; s++) {
        run(&other, server, max, in, n, 0, s);
        if (strcmp(other.text, whole.text) != 0) {
            fprintf(stderr, "split at %zu: %s\nwhole: %s\n", s, other.text, whole.text);
        }
        assert_string_equal(other.text, whole.text);
    }
    return whole.text;
}

/* ---- building input ------------------------------------------------------------------------ */

typedef struct bytes {
    uint8_t d[1 << 18];
    size_t n;
} bytes;

/* A frame as a client sends it (masked with a fixed key) or a server (mask false). */
static void frame(bytes *b, bool mask, int op, bool fin, const void *data, size_t len)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    assert_true(b->n + 14 + len <= sizeof b->d);
    b->n += simul_ws_frame_header(b->d + b->n, op, fin, len, mask ? key : NULL);
    memcpy(b->d + b->n, data, len);
    if (mask) {
        simul_ws_mask(b->d + b->n, len, key, 0);
    }
    b->n += len;
}

static void cframe(bytes *b, int op, bool fin, const char *s)
{
    frame(b, true, op, fin, s, strlen(s));
}

static void raw(bytes *b, const char *hex)
{
    /* "81 85 ..." */
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        b->d[b->n++] = (uint8_t)v;
        p += 2;
    }
}

static bytes B;

static const char *one(const char *hex, bool server)
{
    B.n = 0;
    raw(&B, hex);
    return parse_all(server, 0, B.d, B.n);
}

/* ---- cases --------------------------------------------------------------------------------- */

static void text_and_binary(void **state)
{
    (void)state;
    B.n = 0;
    cframe(&B, SIMUL_WS_TEXT, true, "Hello");
    frame(&B, true, SIMUL_WS_BINARY, true, "\x00\x01\xff", 3);
    cframe(&B, SIMUL_WS_TEXT, true, "");
    frame(&B, true, SIMUL_WS_BINARY, true, "", 0);
    cframe(&B, SIMUL_WS_TEXT, true, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
    assert_string_equal(parse_all(true, 0, B.d, B.n),
                        "TEXT:Hello|BIN:%00%01%ff|TEXT:|BIN:|"
                        "TEXT:h%c3%a9llo %e2%82%ac %f0%9f%98%80|");
    /* The RFC's own examples (5.7): unmasked for a client, masked for a server. */
    assert_string_equal(one("81 05 48 65 6c 6c 6f", false), "TEXT:Hello|");
    assert_string_equal(one("81 85 37 fa 21 3d 7f 9f 4d 51 58", true), "TEXT:Hello|");
    assert_string_equal(one("01 03 48 65 6c 80 02 6c 6f", false), "TEXT:Hello|");
    assert_string_equal(one("89 05 48 65 6c 6c 6f", false), "PING:Hello|");
    assert_string_equal(one("8a 85 37 fa 21 3d 7f 9f 4d 51 58", true), "PONG:Hello|");
}

static void lengths(void **state)
{
    (void)state;
    static const size_t sizes[] = {125, 126, 127, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        char *d = malloc(n);
        memset(d, 'a' + (int)i, n);
        B.n = 0;
        frame(&B, true, SIMUL_WS_BINARY, true, d, n);
        size_t hl = n < 126 ? 6 : n <= 65535 ? 8 : 14;
        assert_int_equal(B.n, hl + n);
        transcript *t = malloc(sizeof *t);
        run(t, true, 0, B.d, B.n, 0, 0);
        assert_int_equal(strlen(t->text), 4 + n + 1);
        run(t, true, 0, B.d, B.n, 7, 0); /* odd pieces: the mask phase carries over */
        assert_int_equal(strlen(t->text), 4 + n + 1);
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(t->text[4 + k], 'a' + (int)i);
        }
        free(t);
        free(d);
    }
}

static void fragments_with_controls(void **state)
{
    (void)state;
    B.n = 0;
    cframe(&B, SIMUL_WS_TEXT, false, "fra");
    cframe(&B, SIMUL_WS_PING, true, "p1");
    cframe(&B, SIMUL_WS_CONT, false, "");
    cframe(&B, SIMUL_WS_CONT, false, "gme");
    cframe(&B, SIMUL_WS_PONG, true, "");
    cframe(&B, SIMUL_WS_CONT, true, "nted");
    frame(&B, true, SIMUL_WS_BINARY, false, "\x01", 1);
    frame(&B, true, SIMUL_WS_CONT, true, "\x02", 1);
    /* A character split across fragments is fine. */
    frame(&B, true, SIMUL_WS_TEXT, false, "\xe2\x82", 2);
    frame(&B, true, SIMUL_WS_CONT, true, "\xac", 1);
    cframe(&B, SIMUL_WS_CLOSE, true, "\x03\xe8" "bye");
    assert_string_equal(parse_all(true, 0, B.d, B.n),
                        "PING:p1|PONG:|TEXT:fragmented|BIN:%01%02|TEXT:%e2%82%ac|CLOSE:1000:bye|");
}

static void bad_reserved_bits(void **state)
{
    (void)state;
    assert_string_equal(one("c1 80 00 00 00 00", true), "ERR reserved bits set|");
    assert_string_equal(one("a1 80 00 00 00 00", true), "ERR reserved bits set|");
    assert_string_equal(one("91 80 00 00 00 00", true), "ERR reserved bits set|");
    assert_string_equal(one("f9 80 00 00 00 00", true), "ERR reserved bits set|");
    /* Fail fast: after a good message, without waiting for the frame's rest. */
    B.n = 0;
    cframe(&B, SIMUL_WS_TEXT, true, "ok");
    raw(&B, "c1");
    raw(&B, "85");
    assert_string_equal(parse_all(true, 0, B.d, B.n), "TEXT:ok|ERR reserved bits set|");
    assert_int_equal(simul_ws_error_close_code(SIMUL_WS_E_RESERVED_BITS), 1002);
}

static void bad_opcodes(void **state)
{
    (void)state;
    for (int op = 3; op <= 0xF; op++) {
        if (op >= 8 && op <= 0xA) {
            continue;
        }
        char hex[32];
        snprintf(hex, sizeof hex, "%02x 80 00 00 00 00", 0x80 | op);
        assert_string_equal(one(hex, true), "ERR reserved opcode|");
    }
}

static void bad_controls(void **state)
{
    (void)state;
    /* Fragmented ping / pong / close. */
    assert_string_equal(one("09 80 00 00 00 00", true), "ERR fragmented control frame|");
    assert_string_equal(one("0a 80 00 00 00 00", true), "ERR fragmented control frame|");
    assert_string_equal(one("08 80 00 00 00 00", true), "ERR fragmented control frame|");
    /* 126 bytes of ping payload (in the 16-bit form). */
    assert_string_equal(one("89 fe 00 7e", true), "ERR control frame payload over 125 bytes|");
    assert_string_equal(one("89 7e 00 7e", false), "ERR control frame payload over 125 bytes|");
    /* 125 is fine. */
    char p[126];
    memset(p, 'x', 125);
    p[125] = '\0';
    B.n = 0;
    cframe(&B, SIMUL_WS_PING, true, p);
    const char *t = parse_all(true, 0, B.d, B.n);
    assert_int_equal(strlen(t), 5 + 125 + 1);
}

static void bad_lengths(void **state)
{
    (void)state;
    /* 5 in the 16-bit form, 200 in the 64-bit form, the 64-bit top bit. */
    assert_string_equal(one("82 7e 00 05", false), "ERR payload length not in its minimal form|");
    assert_string_equal(one("82 7e 00 7d", false), "ERR payload length not in its minimal form|");
    assert_string_equal(one("82 7f 00 00 00 00 00 00 00 c8", false),
                        "ERR payload length not in its minimal form|");
    assert_string_equal(one("82 7f 00 00 00 00 00 00 ff ff", false),
                        "ERR payload length not in its minimal form|");
    assert_string_equal(one("82 7f 80 00 00 00 00 00 00 00", false),
                        "ERR 64-bit payload length with its top bit set|");
    /* The shortest long forms are accepted (no payload yet: nothing reported). */
    assert_string_equal(one("82 7e 00 7e", false), "");
    assert_string_equal(one("82 7f 00 00 00 00 00 01 00 00", false), "");
}

static void bad_masking(void **state)
{
    (void)state;
    assert_string_equal(one("81 05 48 65 6c 6c 6f", true), "ERR wrong masking for this side|");
    assert_string_equal(one("81 85 37 fa 21 3d 7f 9f 4d 51 58", false),
                        "ERR wrong masking for this side|");
}

static void bad_fragmentation(void **state)
{
    (void)state;
    B.n = 0;
    cframe(&B, SIMUL_WS_CONT, true, "x");
    assert_string_equal(parse_all(true, 0, B.d, B.n), "ERR continuation frame without a message|");
    B.n = 0;
    cframe(&B, SIMUL_WS_TEXT, false, "a");
    cframe(&B, SIMUL_WS_TEXT, true, "b");
    assert_string_equal(parse_all(true, 0, B.d, B.n), "ERR new message inside a fragmented one|");
    B.n = 0;
    cframe(&B, SIMUL_WS_BINARY, false, "a");
    cframe(&B, SIMUL_WS_PING, true, "");
    cframe(&B, SIMUL_WS_BINARY, true, "b");
    assert_string_equal(parse_all(true, 0, B.d, B.n),
                        "PING:|ERR new message inside a fragmented one|");
    /* A continuation after a finished message. */
    B.n = 0;
    cframe(&B, SIMUL_WS_TEXT, true, "a");
    cframe(&B, SIMUL_WS_CONT, true, "b");
    assert_string_equal(parse_all(true, 0, B.d, B.n),
                        "TEXT:a|ERR continuation frame without a message|");
}

static void close_frames(void **state)
{
    (void)state;
    assert_string_equal(one("88 00", false), "CLOSE:1005:|");
    assert_string_equal(one("88 01 03", false), "ERR close frame with a 1-byte payload|");
    static const int valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                1013, 1014, 3000, 3999, 4000, 4999};
    static const int invalid[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
                                  5000, 65535};
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        char hex[32], want[32];
        snprintf(hex, sizeof hex, "88 02 %02x %02x", valid[i] >> 8, valid[i] & 0xff);
        snprintf(want, sizeof want, "CLOSE:%d:|", valid[i]);
        assert_string_equal(one(hex, false), want);
        assert_true(simul_ws_close_code_valid(valid[i]));
    }
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        char hex[32];
        snprintf(hex, sizeof hex, "88 02 %02x %02x", invalid[i] >> 8, invalid[i] & 0xff);
        assert_string_equal(one(hex, false), "ERR invalid close code|");
        assert_false(simul_ws_close_code_valid(invalid[i]));
    }
    /* The reason must be UTF-8. */
    assert_string_equal(one("88 04 03 e8 c3 a9", false), "CLOSE:1000:%c3%a9|");
    assert_string_equal(one("88 04 03 e8 ff 41", false), "ERR invalid UTF-8 in text|");
    assert_string_equal(one("88 04 03 e8 41 c3", false), "ERR invalid UTF-8 in text|");
    /* Nothing may follow the close. */
    assert_string_equal(one("88 02 03 e8 81 00", false),
                        "CLOSE:1000:|ERR frame after the close frame|");
}

static void bad_utf8_text(void **state)
{
    (void)state;
    /* In one frame, fail fast: the error comes before the frame is complete. */
    assert_string_equal(one("81 05 48 ff", false), "ERR invalid UTF-8 in text|");
    assert_string_equal(one("81 02 c0 80", false), "ERR invalid UTF-8 in text|");
    assert_string_equal(one("81 03 ed a0 80", false), "ERR invalid UTF-8 in text|");
    /* Across fragments: a bad continuation in the second. */
    assert_string_equal(one("01 02 ce ba 80 02 e1 41", false), "ERR invalid UTF-8 in text|");
    /* A message that ends inside a character. */
    assert_string_equal(one("81 01 ce", false), "ERR invalid UTF-8 in text|");
    assert_string_equal(one("01 01 ce 80 00", false), "ERR invalid UTF-8 in text|");
    /* The same bytes as binary are fine. */
    assert_string_equal(one("82 02 c0 80", false), "BIN:%c0%80|");
    assert_int_equal(simul_ws_error_close_code(SIMUL_WS_E_UTF8), 1007);
}

static void utf8_every_code_point(void **state)
{
    (void)state;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80) {
            b[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[0] = (uint8_t)(0xC0 | cp >> 6);
            b[1] = (uint8_t)(0x80 | (cp & 63));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xE0 | cp >> 12);
            b[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
            b[2] = (uint8_t)(0x80 | (cp & 63));
            n = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | cp >> 18);
            b[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
            b[2] = (uint8_t)(0x80 | ((cp >> 6) & 63));
            b[3] = (uint8_t)(0x80 | (cp & 63));
            n = 4;
        }
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        uint32_t st = 0;
        bool ok = simul_ws_utf8_check(&st, b, n) && st == 0;
        if (ok == surrogate) {
            fail_msg("U+%04X judged %s", cp, ok ? "valid" : "invalid");
        }
        /* Byte by byte gives the same answer. */
        st = 0;
        bool ok2 = true;
        for (size_t i = 0; i < n && ok2; i++) {
            ok2 = simul_ws_utf8_check(&st, b + i, 1);
        }
        assert_int_equal(ok2 && st == 0, ok);
    }
    /* Overlong forms of every length, beyond U+10FFFF, stray bytes. */
    static const char *bad[] = {"\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xe0\x9f\xbf",
                                "\xf0\x80\x80\xaf", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
                                "\xf5\x80\x80\x80", "\xff", "\xfe", "\x80", "\xbf",
                                "\xe2\x82\x41", "\xf0\x9f\x98\x41"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint32_t st = 0;
        assert_false(simul_ws_utf8_check(&st, (const uint8_t *)bad[i], strlen(bad[i])));
    }
    /* The ASCII fast path next to multi-byte characters. */
    const char *mix = "abcdefghijklmnop\xc3\xa9qrstuvwxyz0123456789\xf0\x9f\x98\x80";
    uint32_t st = 0;
    assert_true(simul_ws_utf8_check(&st, (const uint8_t *)mix, strlen(mix)) && st == 0);
}

static void max_message(void **state)
{
    (void)state;
    /* Exactly at the limit, in three fragments: fine; one byte more: 1009, before the payload. */
    B.n = 0;
    cframe(&B, SIMUL_WS_TEXT, false, "abcd");
    cframe(&B, SIMUL_WS_CONT, false, "efgh");
    cframe(&B, SIMUL_WS_CONT, true, "ij");
    cframe(&B, SIMUL_WS_TEXT, true, "0123456789");
    assert_string_equal(parse_all(true, 10, B.d, B.n), "TEXT:abcdefghij|TEXT:0123456789|");
    B.n = 0;
    cframe(&B, SIMUL_WS_TEXT, false, "abcd");
    cframe(&B, SIMUL_WS_CONT, true, "efghijk");
    assert_string_equal(parse_all(true, 10, B.d, B.n), "ERR message over the size limit|");
    transcript *t = malloc(sizeof *t);
    run(t, true, 10, B.d, B.n, 0, 0);
    assert_int_equal(t->rc, -EMSGSIZE);
    assert_int_equal(simul_ws_error_close_code(t->error), 1009);
    /* A huge declared length is refused from the header alone. */
    B.n = 0;
    raw(&B, "82 ff 00 00 00 01 00 00 00 00 01 02 03 04");
    run(t, true, 0, B.d, B.n, 0, 0);
    assert_int_equal(t->rc, -EMSGSIZE);
    free(t);
    /* Control frames do not count against it. */
    B.n = 0;
    cframe(&B, SIMUL_WS_PING, true, "0123456789abc");
    assert_string_equal(parse_all(true, 10, B.d, B.n), "PING:0123456789abc|");
}

static void errors_sticky(void **state)
{
    (void)state;
    simul_ws_parser p;
    simul_ws_parser_init(&p, true, 0);
    uint8_t bad[] = {0xC1, 0x80, 0, 0, 0, 0};
    size_t used;
    simul_ws_frame f;
    assert_int_equal(simul_ws_parser_feed(&p, bad, sizeof bad, &used, &f), -EPROTO);
    uint8_t good[] = {0x81, 0x80, 0, 0, 0, 0};
    assert_int_equal(simul_ws_parser_feed(&p, good, sizeof good, &used, &f), -EPROTO);
    assert_int_equal(p.error, SIMUL_WS_E_RESERVED_BITS);
    assert_int_equal(used, 0);
    for (int e = 0; e < SIMUL_WS_E_COUNT_; e++) {
        assert_non_null(simul_ws_error_reason((simul_ws_error)e));
    }
    assert_string_equal(simul_ws_error_reason(SIMUL_WS_E_COUNT_), "unknown error");
}

static void encoder_and_mask(void **state)
{
    (void)state;
    uint8_t h[14];
    assert_int_equal(simul_ws_frame_header(h, SIMUL_WS_TEXT, true, 5, NULL), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 5);
    assert_int_equal(simul_ws_frame_header(h, SIMUL_WS_BINARY, false, 126, NULL), 4);
    assert_int_equal(h[0], 0x02);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2] << 8 | h[3], 126);
    assert_int_equal(simul_ws_frame_header(h, SIMUL_WS_BINARY, true, 65536, NULL), 10);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7], 1);
    uint8_t key[4] = {1, 2, 3, 4};
    assert_int_equal(simul_ws_frame_header(h, SIMUL_WS_PING, true, 0, key), 6);
    assert_int_equal(h[1], 0x80);
    assert_memory_equal(h + 2, key, 4);
    /* The mask against a byte-at-a-time reference, at every phase and length. */
    uint8_t a[100], b[100];
    for (size_t phase = 0; phase < 4; phase++) {
        for (size_t len = 0; len < 40; len++) {
            for (size_t i = 0; i < len; i++) {
                a[i] = b[i] = (uint8_t)(i * 7 + 1);
            }
            simul_ws_mask(a, len, key, phase);
            for (size_t i = 0; i < len; i++) {
                b[i] ^= key[(phase + i) & 3];
            }
            assert_memory_equal(a, b, len);
        }
    }
}

static void accept_key(void **state)
{
    (void)state;
    char out[29];
    const char *k = "dGhlIHNhbXBsZSBub25jZQ=="; /* RFC 6455 1.3 */
    simul_ws_accept_key(k, strlen(k), out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    k = "x3JJHMbDL1EzLkh9GBhXDw=="; /* RFC 6455 4.2.2's other example */
    simul_ws_accept_key(k, strlen(k), out);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_and_binary),
        cmocka_unit_test(lengths),
        cmocka_unit_test(fragments_with_controls),
        cmocka_unit_test(bad_reserved_bits),
        cmocka_unit_test(bad_opcodes),
        cmocka_unit_test(bad_controls),
        cmocka_unit_test(bad_lengths),
        cmocka_unit_test(bad_masking),
        cmocka_unit_test(bad_fragmentation),
        cmocka_unit_test(close_frames),
        cmocka_unit_test(bad_utf8_text),
        cmocka_unit_test(utf8_every_code_point),
        cmocka_unit_test(max_message),
        cmocka_unit_test(errors_sticky),
        cmocka_unit_test(encoder_and_mask),
        cmocka_unit_test(accept_key),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_ws_frame");
}
