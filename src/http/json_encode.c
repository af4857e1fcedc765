/* json_encode.c — the JSON answers' encoder: jansson values written byte for byte as
 * json_dumpb(v, JSON_COMPACT | JSON_ENCODE_ANY) writes them (fuzz_http_json_encode holds it to
 * that), at a fraction of the cost: a depth limit instead of a hash set of open containers refuses
 * cycles, strings go in runs found 16 bytes at a time, numbers without printf where exact. */
#include "internal.h"

#include <jansson.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct enc {
    char *buf;   /* where the output starts: the caller's buffer, or ours (malloc'd) */
    char *p;     /* the next byte */
    char *end;   /* buf's end */
    char *given; /* the caller's buffer (never freed here) */
} enc;

/* Makes room for `need` more bytes: the caller's buffer is left for a malloc'd one twice as big
 * (or as big as needed), the output so far copied over. */
static int grow(enc *e, size_t need)
{
    size_t used = (size_t)(e->p - e->buf);
    size_t cap = (size_t)(e->end - e->buf);
    size_t ncap = cap < 256 ? 512 : cap * 2;
    if (ncap - used < need) {
        if (need > SIZE_MAX / 2 - used) {
            return -ENOMEM;
        }
        ncap = used + need + ncap / 2;
    }
    char *nb;
    if (e->buf == e->given) {
        nb = malloc(ncap);
        if (nb && used) {
            memcpy(nb, e->buf, used);
        }
    } else {
        nb = realloc(e->buf, ncap);
    }
    if (!nb) {
        return -ENOMEM;
    }
    e->buf = nb;
    e->p = nb + used;
    e->end = nb + ncap;
    return 0;
}

static inline int reserve(enc *e, size_t need)
{
    return (size_t)(e->end - e->p) >= need ? 0 : grow(e, need);
}

/* ---- strings ------------------------------------------------------------------------------ */

/* What a byte is to the string writer: copied as is, escaped, the first byte of a 2-, 3- or
 * 4-byte UTF-8 sequence, or a byte no valid UTF-8 starts with (a continuation byte, C0/C1, F5-FF:
 * jansson's utf8_check_first). */
enum { B_PLAIN, B_ESC, B_LEAD2, B_LEAD3, B_LEAD4, B_BAD };

static const unsigned char byte_class[256] = {
#define R16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
    R16(B_ESC), R16(B_ESC), /* 0x00-0x1f: control characters */
    B_PLAIN, B_PLAIN, B_ESC, B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, /* 0x22 '"' */
    B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN,
    R16(B_PLAIN), R16(B_PLAIN), /* 0x30-0x4f */
    B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, /* 0x5c '\\' */
    B_PLAIN, B_PLAIN, B_PLAIN, B_PLAIN, B_ESC, B_PLAIN, B_PLAIN, B_PLAIN,
    R16(B_PLAIN), R16(B_PLAIN), /* 0x60-0x7f: DEL is not escaped (jansson neither) */
    R16(B_BAD), R16(B_BAD), R16(B_BAD), R16(B_BAD), /* 0x80-0xbf: continuation bytes */
    B_BAD, B_BAD, B_LEAD2, B_LEAD2, B_LEAD2, B_LEAD2, B_LEAD2, B_LEAD2, /* C0, C1: overlong */
    B_LEAD2, B_LEAD2, B_LEAD2, B_LEAD2, B_LEAD2, B_LEAD2, B_LEAD2, B_LEAD2,
    R16(B_LEAD2),
    R16(B_LEAD3),
    B_LEAD4, B_LEAD4, B_LEAD4, B_LEAD4, B_LEAD4, B_BAD, B_BAD, B_BAD, /* F5-FF: above U+10FFFF */
    B_BAD, B_BAD, B_BAD, B_BAD, B_BAD, B_BAD, B_BAD, B_BAD,
#undef R16
};

/* The length of the valid UTF-8 sequence at s[0..n) whose lead byte has class `cls`, 0 if it is
 * not one: truncated, a bad continuation, overlong, a surrogate or above U+10FFFF. */
static inline size_t utf8_seq(const unsigned char *s, size_t n, int cls)
{
    if (cls == B_LEAD2) {
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0; /* C2..DF: never overlong */
    }
    if (cls == B_LEAD3) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) {
            return 0;
        }
        if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0)) {
            return 0; /* overlong, or a UTF-16 surrogate D800-DFFF */
        }
        return 3;
    }
    if (cls == B_LEAD4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) {
            return 0;
        }
        if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90)) {
            return 0; /* overlong, or above U+10FFFF */
        }
        return 4;
    }
    return 0;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* The bytes of w that need a look (>= 0x80, < 0x20, '"' or '\\') marked by their top bit; 0 when
 * all 8 are plain. The "has a byte less than n" bit tricks can also mark a byte above a marked
 * one (a borrow), never below: the lowest mark is exact, and only the lowest is used. */
static inline uint64_t special8(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
    return (w | ((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS;
}

/* The index of the first byte that needs a look in s[0..n), n if none. */
static inline size_t plain_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    /* 16 at a time: one signed compare finds both < 0x20 and >= 0x80 (negative as signed). */
    const __m128i sp = _mm_set1_epi8(0x20), qu = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');
    for (; n - i >= 16; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i m = _mm_or_si128(_mm_cmplt_epi8(x, sp),
                                 _mm_or_si128(_mm_cmpeq_epi8(x, qu), _mm_cmpeq_epi8(x, bs)));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask) {
            return i + (size_t)__builtin_ctz(mask);
        }
    }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t m = special8(w);
        if (m) {
            return i + ((size_t)__builtin_ctzll(m) >> 3);
        }
    }
#endif
    while (i < n && byte_class[s[i]] == B_PLAIN) {
        i++;
    }
    return i;
}

static const char hexdig[] = "0123456789ABCDEF"; /* jansson writes "\\u%04X": upper case */

static int put_string(enc *e, const char *str, size_t len)
{
    /* Room for the plain case up front; each escape asks for its extra bytes. */
    if (len > SIZE_MAX - 2 || reserve(e, len + 2)) {
        return -ENOMEM;
    }
    *e->p++ = '"';
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0; /* s[run..i) is plain, not yet copied */
    for (;;) {
        i += plain_run(s + i, len - i);
        if (i == len) {
            break;
        }
        int cls = byte_class[s[i]];
        if (cls != B_ESC) {
            size_t k = utf8_seq(s + i, len - i, cls);
            if (k == 0) {
                return -EINVAL; /* not UTF-8: jansson's dump fails too */
            }
            i += k; /* copied as is: no \\u escapes for non-ASCII (no JSON_ENSURE_ASCII) */
            continue;
        }
        /* The run so far, then the escape: room for those and the rest (1 byte of the escape
         * and the closing quote were counted already), so the buffer grows only when the
         * output does not fit. */
        unsigned char c = s[i];
        const char *short_esc = NULL;
        switch (c) {
        case '"': short_esc = "\\\""; break;
        case '\\': short_esc = "\\\\"; break;
        case '\b': short_esc = "\\b"; break;
        case '\f': short_esc = "\\f"; break;
        case '\n': short_esc = "\\n"; break;
        case '\r': short_esc = "\\r"; break;
        case '\t': short_esc = "\\t"; break;
        }
        size_t esc = short_esc ? 2 : 6;
        if (reserve(e, (i - run) + esc + (len - i - 1) + 1)) {
            return -ENOMEM;
        }
        memcpy(e->p, s + run, i - run);
        e->p += i - run;
        if (short_esc) {
            memcpy(e->p, short_esc, 2);
        } else {
            memcpy(e->p, "\\u00", 4);
            e->p[4] = hexdig[c >> 4];
            e->p[5] = hexdig[c & 15];
        }
        e->p += esc;
        run = ++i;
    }
    /* reserve() above kept room for the rest of the string and its closing quote */
    memcpy(e->p, s + run, len - run);
    e->p += len - run;
    *e->p++ = '"';
    return 0;
}

/* ---- numbers ------------------------------------------------------------------------------ */

static const char digits2[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                              "34353637383940414243444546474849505152535455565758596061626364656667"
                              "6869707172737475767778798081828384858687888990919293949596979899";

/* Writes v as "%lld" does, returns the length (20 at most). Also the server's Content-Length. */
size_t http_fmt_int(char *out, long long v)
{
    char tmp[24];
    char *q = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    while (u >= 100) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        *--q = digits2[d + 1];
        *--q = digits2[d];
    }
    if (u >= 10) {
        *--q = digits2[u * 2 + 1];
        *--q = digits2[u * 2];
    } else {
        *--q = (char)('0' + u);
    }
    if (v < 0) {
        *--q = '-';
    }
    size_t n = (size_t)(tmp + sizeof tmp - q);
    memcpy(out, q, n);
    return n;
}

static int put_int(enc *e, long long v)
{
    char tmp[24];
    size_t n = http_fmt_int(tmp, v);
    if (reserve(e, n)) {
        return -ENOMEM;
    }
    memcpy(e->p, tmp, n);
    e->p += n;
    return 0;
}

/* jansson's jsonp_dtostr at its default precision: "%.17g", ".0" appended when the text has
 * neither '.' nor 'e' (so it reads back as a real), and the exponent without '+' or leading
 * zeros ("1e+300" -> "1e300", "1e-07" -> "1e-7"). */
#ifdef __SIZEOF_INT128__
static const uint64_t pow10_u64[20] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull, 100000000ull,
    1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull, 10000000000000ull,
    100000000000000ull, 1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
    1000000000000000000ull, 10000000000000000000ull,
};

/* "%.17g" of a finite d with 1e-6 <= |d| < 2^53 and a fraction (a binary exponent below 0),
 * exact: the 17 significant digits are d * 10^k rounded half to even, computed in 128 bits
 * (mantissa < 2^53 times 10^k <= 10^22 < 2^74), then laid out as %g does (fixed for decimal
 * exponents -4..16, else d.ddde-X; trailing zeros dropped). Returns the length, or -1 outside
 * that range (the caller falls back to snprintf). The fuzz target and test_json_encode hold it
 * to glibc's printf. */
static int fast_g17(char *out, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    int bexp = (int)((bits >> 52) & 0x7ff);
    if (bexp == 0 || bexp == 0x7ff) {
        return -1; /* zero, denormal (far below 1e-6), inf, NaN */
    }
    uint64_t m = (bits & ((1ull << 52) - 1)) | (1ull << 52);
    int shift = 1075 - bexp; /* |d| = m / 2^shift */
    if (shift <= 0 || shift > 90) {
        return -1; /* whole (>= 2^53), or below ~1e-11 */
    }
    /* k = 16 - (decimal exponent): first guess from the binary exponent (no libm), corrected until
     * the integer part of m * 10^k / 2^shift has exactly 17 digits. */
    int e2 = bexp - 1023, t = e2 * 78913; /* 78913 / 2^18 ~ log10(2): floor, or 1 below */
    int x10 = t >= 0 ? t >> 18 : -((-t + (1 << 18) - 1) >> 18);
    int k = 16 - x10;
    unsigned __int128 n, q = 0;
    for (int tries = 0; tries < 3; tries++) {
        if (k < 0 || k > 22) {
            return -1;
        }
        n = (unsigned __int128)m * (k > 19 ? pow10_u64[19] : pow10_u64[k]);
        if (k > 19) {
            n *= pow10_u64[k - 19];
        }
        q = n >> shift;
        if (q < pow10_u64[16]) {
            k++;
        } else if (q >= pow10_u64[17]) {
            k--;
        } else {
            break;
        }
    }
    if (q < pow10_u64[16] || q >= pow10_u64[17]) {
        return -1;
    }
    unsigned __int128 rest = n & (((unsigned __int128)1 << shift) - 1);
    unsigned __int128 half = (unsigned __int128)1 << (shift - 1);
    if (rest > half || (rest == half && (q & 1))) {
        q++;
    }
    int x = 16 - k; /* the decimal exponent of the rounded value */
    if (q == pow10_u64[17]) {
        q = pow10_u64[16];
        x++;
    }
    char dig[17];
    uint64_t v = (uint64_t)q;
    for (int i = 16; i >= 0; i--) {
        dig[i] = (char)('0' + v % 10);
        v /= 10;
    }
    int nd = 17;
    while (nd > 1 && dig[nd - 1] == '0') {
        nd--; /* %g drops trailing zeros */
    }
    char *o = out;
    if (d < 0) {
        *o++ = '-';
    }
    if (x < -4 || x >= 17) {
        *o++ = dig[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e'; /* jansson's form: no '+', no leading zeros */
        if (x < 0) {
            *o++ = '-';
            x = -x;
        }
        o += http_fmt_int(o, x);
    } else if (x >= 0) {
        memcpy(o, dig, (size_t)x + 1);
        o += x + 1;
        if (nd > x + 1) {
            *o++ = '.';
            memcpy(o, dig + x + 1, (size_t)(nd - x - 1));
            o += nd - x - 1;
        } else {
            memcpy(o, ".0", 2); /* jansson's: a real stays a real */
            o += 2;
        }
    } else {
        *o++ = '0';
        *o++ = '.';
        for (int i = -1; i > x; i--) {
            *o++ = '0';
        }
        memcpy(o, dig, (size_t)nd);
        o += nd;
    }
    return (int)(o - out);
}
#endif

static int fmt_real(char *out, double d)
{
    char *o = out;
    /* A whole number below 2^53 prints as its integer digits under %.17g (at most 16 of them,
     * fewer than the precision, so no exponent): the integer writer and ".0" are exact. */
    if (fabs(d) < 9007199254740992.0 && d == (double)(long long)d) {
        if (d == 0 && signbit(d)) {
            *o++ = '-';
        }
        o += http_fmt_int(o, (long long)d);
        memcpy(o, ".0", 2);
        return (int)(o + 2 - out);
    }
#ifdef __SIZEOF_INT128__
    int fast = fast_g17(out, d);
    if (fast >= 0) {
        return fast;
    }
#endif
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, "%.17g", d);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        return -1;
    }
    /* Copied over with the locale's decimal point (maybe several bytes) made '.' and the
     * exponent trimmed: the same bytes in every locale. */
    const char *s = tmp;
    int dot = 0;
    if (*s == '-') {
        *o++ = *s++;
    }
    while (*s >= '0' && *s <= '9') {
        *o++ = *s++;
    }
    if (*s && *s != 'e') {
        *o++ = '.';
        dot = 1;
        while (*s && *s != 'e' && !(*s >= '0' && *s <= '9')) {
            s++;
        }
        while (*s >= '0' && *s <= '9') {
            *o++ = *s++;
        }
    }
    if (*s == 'e') {
        *o++ = *s++;
        if (*s == '+') {
            s++;
        } else if (*s == '-') {
            *o++ = *s++;
        }
        while (*s == '0') {
            s++;
        }
        while (*s >= '0' && *s <= '9') {
            *o++ = *s++;
        }
    } else if (!dot) {
        *o++ = '.';
        *o++ = '0';
    }
    return (int)(o - out);
}

static int put_real(enc *e, double d)
{
    char txt[64];
    int n = isfinite(d) ? fmt_real(txt, d) : -1; /* json_real() refuses NaN and inf: a guard */
    if (n < 0) {
        return -EINVAL;
    }
    if (reserve(e, (size_t)n)) {
        return -ENOMEM;
    }
    memcpy(e->p, txt, (size_t)n);
    e->p += n;
    return 0;
}

/* ---- the walk ----------------------------------------------------------------------------- */

/* An open container: an object and its iterator, or an array, its size and the next index. */
typedef struct frame {
    const json_t *v;
    void *iter;
    size_t i, n;
} frame;

enum { INLINE_FRAMES = 24 };

static inline int put_lit(enc *e, const char *s, size_t n)
{
    if (reserve(e, n)) {
        return -ENOMEM;
    }
    memcpy(e->p, s, n);
    e->p += n;
    return 0;
}

/* The key at iter, then ':' (jansson writes keys whole: embedded NULs as \u0000). */
static inline int put_key(enc *e, void *iter)
{
    int rc = put_string(e, json_object_iter_key(iter), json_object_iter_key_len(iter));
    return rc ? rc : put_lit(e, ":", 1);
}

static int encode(enc *e, const json_t *v)
{
    frame inl[INLINE_FRAMES];
    frame *st = inl;
    size_t cap = INLINE_FRAMES, depth = 0;
    int rc = 0;
    for (;;) {
        /* v: the next value to write */
        if (!v) {
            rc = -EINVAL;
            goto out;
        }
        switch (json_typeof(v)) {
        case JSON_NULL: rc = put_lit(e, "null", 4); break;
        case JSON_TRUE: rc = put_lit(e, "true", 4); break;
        case JSON_FALSE: rc = put_lit(e, "false", 5); break;
        case JSON_INTEGER: rc = put_int(e, (long long)json_integer_value(v)); break;
        case JSON_REAL: rc = put_real(e, json_real_value(v)); break;
        case JSON_STRING: rc = put_string(e, json_string_value(v), json_string_length(v)); break;
        case JSON_OBJECT:
        case JSON_ARRAY: {
            /* A cycle never ends: the depth limit is how it is refused (jansson keeps a set of
             * the open containers instead, a hash insert and delete per container). An empty
             * container counts too, as in jansson's parser: what it reads, this writes. */
            if (depth == HTTP_JSON_MAX_DEPTH) {
                rc = -EINVAL;
                goto out;
            }
            int obj = json_typeof(v) == JSON_OBJECT;
            void *iter = obj ? json_object_iter((json_t *)v) : NULL;
            size_t n = obj ? 0 : json_array_size(v);
            if (obj ? !iter : n == 0) {
                rc = put_lit(e, obj ? "{}" : "[]", 2);
                break;
            }
            if (depth == cap) {
                size_t ncap = cap * 4 < HTTP_JSON_MAX_DEPTH ? cap * 4 : HTTP_JSON_MAX_DEPTH;
                frame *ns = malloc(ncap * sizeof *ns);
                if (!ns) {
                    rc = -ENOMEM;
                    goto out;
                }
                memcpy(ns, st, depth * sizeof *ns);
                if (st != inl) {
                    free(st);
                }
                st = ns;
                cap = ncap;
            }
            st[depth++] = (frame){.v = v, .iter = iter, .i = 0, .n = n};
            if ((rc = put_lit(e, obj ? "{" : "[", 1)) != 0) {
                goto out;
            }
            if (obj) {
                if ((rc = put_key(e, iter)) != 0) {
                    goto out;
                }
                v = json_object_iter_value(iter);
            } else {
                v = json_array_get(v, 0);
            }
            continue;
        }
        default: rc = -EINVAL; break;
        }
        if (rc) {
            goto out;
        }
        /* A value is written: close the containers it ended, or move to the next member. */
        for (;;) {
            if (depth == 0) {
                goto out;
            }
            frame *f = &st[depth - 1];
            if (f->iter) {
                f->iter = json_object_iter_next((json_t *)f->v, f->iter);
                if (f->iter) {
                    if ((rc = put_lit(e, ",", 1)) != 0 || (rc = put_key(e, f->iter)) != 0) {
                        goto out;
                    }
                    v = json_object_iter_value(f->iter);
                    break;
                }
                rc = put_lit(e, "}", 1);
            } else {
                if (++f->i < f->n) {
                    if ((rc = put_lit(e, ",", 1)) != 0) {
                        goto out;
                    }
                    v = json_array_get(f->v, f->i);
                    break;
                }
                rc = put_lit(e, "]", 1);
            }
            if (rc) {
                goto out;
            }
            depth--;
        }
    }
out:
    if (st != inl) {
        free(st);
    }
    return rc;
}

int http_json_encode(const json_t *v, char *buf, size_t cap, char **out, size_t *len)
{
    if (!v || !out || !len || (!buf && cap)) {
        return -EINVAL;
    }
    enc e = {.buf = buf, .p = buf, .end = buf ? buf + cap : NULL, .given = buf};
    int rc = encode(&e, v);
    if (rc) {
        if (e.buf != buf) {
            free(e.buf);
        }
        return rc;
    }
    *out = e.buf;
    *len = (size_t)(e.p - e.buf);
    return 0;
}
