/* fuzz_http_json_encode.c — differential target for libsimul-http's JSON encoder
 * (http_json_encode, src/http/json_encode.c) against the dump it stands in for:
 * json_dumpb(v, JSON_COMPACT | JSON_ENCODE_ANY). Both must give the same bytes or both fail; the
 * only refusals of ours that jansson does not share are documented ones, checked here on their
 * own: a key that is not UTF-8 (jansson writes a broken document) and nesting past
 * HTTP_JSON_MAX_DEPTH. What ours writes must read back (json_loadb) as the same value, unless a
 * key holds a NUL (jansson's parser refuses those); it stays in the caller's buffer iff it fits.
 *
 * Input: [mode][bytes...]. mode even: the bytes are JSON text (json_loadb, JSON_DECODE_ANY |
 * JSON_ALLOW_NUL). mode odd: the bytes are a little program that builds a value jansson's parser
 * cannot: strings and keys of any bytes (invalid UTF-8, NULs), reals from raw 8-byte doubles
 * (NaN and inf are refused by json_real; denormals, -0.0), nesting past the limit, shared
 * subtrees and cycles (made with json_object_set / json_array_append, broken again before the
 * decref). Ops, one byte each, then their operands:
 *   0 null  1 true  2 false  3 int <8 bytes>  4 real <8 bytes>  5 string <len> <bytes>
 *   6 array <count>  (pops count values)  7 object <count> then per member <klen> <key bytes>
 *   8 nest <n> (wraps the top in n*17 arrays, or objects when n is odd)  9 cycle (the top, a
 *   container, gets a member that leads back to it)  10 dup (the top again: a shared subtree)
 * The value is the top of the stack at the end. Built as a libFuzzer target with clang
 * (-DSIMUL_BUILD_FUZZ=ON) and always as a replay program over fuzz/corpus/http_json_encode. */
#define FUZZ_NAME "fuzz_http_json_encode"
#include "fuzz_check.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../src/http/internal.h" /* http_json_encode (in libsimul-http) */

enum { STACK = 64 };

typedef struct builder {
    json_t *st[STACK];
    size_t n;
    /* the cycles made, to break before the decref: container and the member that closes it */
    json_t *cyc[8];
    size_t ncyc;
    /* budgets that keep a run short and jansson's recursion on its stack: shared subtrees
     * multiply the document (at most 2^6 here), nesting costs jansson's dump a frame a level */
    size_t dups, nest;
} builder;

static void push(builder *b, json_t *v)
{
    CHECK(v);
    if (b->n == STACK) {
        json_decref(v);
        return;
    }
    b->st[b->n++] = v;
}

static json_t *pop(builder *b)
{
    return b->n ? b->st[--b->n] : json_null();
}

/* Reads up to want bytes at *p; returns how many were there. */
static size_t take(const uint8_t **p, const uint8_t *end, void *out, size_t want)
{
    size_t n = (size_t)(end - *p) < want ? (size_t)(end - *p) : want;
    memcpy(out, *p, n);
    *p += n;
    return n;
}

static json_t *build(builder *b, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        uint8_t op = *p++ % 11;
        uint8_t len = 0;
        switch (op) {
        case 0: push(b, json_null()); break;
        case 1: push(b, json_true()); break;
        case 2: push(b, json_false()); break;
        case 3: {
            int64_t i = 0;
            take(&p, end, &i, 8);
            push(b, json_integer((json_int_t)i));
            break;
        }
        case 4: {
            double d = 0;
            take(&p, end, &d, 8);
            json_t *r = json_real(d);
            CHECK(!r == !isfinite(d)); /* jansson keeps NaN and inf out of its values */
            if (r) {
                push(b, r);
            }
            break;
        }
        case 5: {
            char s[256];
            take(&p, end, &len, 1);
            size_t n = take(&p, end, s, len);
            push(b, json_stringn_nocheck(s, n)); /* any bytes: UTF-8 or not */
            break;
        }
        case 6: {
            take(&p, end, &len, 1);
            json_t *a = json_array();
            json_t *items[STACK];
            size_t k = 0;
            for (; k < len && b->n; k++) {
                items[k] = pop(b);
            }
            while (k) {
                CHECK(json_array_append_new(a, items[--k]) == 0);
            }
            push(b, a);
            break;
        }
        case 7: {
            take(&p, end, &len, 1);
            json_t *o = json_object();
            for (size_t k = 0; k < len && b->n; k++) {
                char key[256];
                uint8_t kl = 0;
                take(&p, end, &kl, 1);
                size_t n = take(&p, end, key, kl);
                CHECK(json_object_setn_new_nocheck(o, key, n, pop(b)) == 0); /* any key bytes */
            }
            push(b, o);
            break;
        }
        case 8: {
            take(&p, end, &len, 1);
            if (b->nest + (size_t)len * 17 > 5000) {
                break;
            }
            b->nest += (size_t)len * 17;
            json_t *v = pop(b);
            for (size_t k = 0; k < (size_t)len * 17; k++) {
                json_t *w = (len & 1) ? json_object() : json_array();
                CHECK((len & 1) ? json_object_set_new(w, "k", v) == 0
                                : json_array_append_new(w, v) == 0);
                v = w;
            }
            push(b, v);
            break;
        }
        case 9: {
            if (!b->n || b->ncyc == sizeof b->cyc / sizeof *b->cyc) {
                break;
            }
            json_t *t = b->st[b->n - 1];
            if (!json_is_object(t) && !json_is_array(t)) {
                break;
            }
            for (size_t k = 0; k < b->ncyc; k++) {
                if (b->cyc[k] == t) {
                    t = NULL; /* one cycle per container: each is broken once */
                }
            }
            if (!t) {
                break;
            }
            /* t -> [t]: jansson refuses t as its own member, not a cycle through another */
            json_t *w = json_array();
            CHECK(json_array_append(w, t) == 0);
            if (json_is_object(t)) {
                CHECK(json_object_set_new(t, "\x01cycle", w) == 0);
            } else {
                CHECK(json_array_append_new(t, w) == 0);
            }
            b->cyc[b->ncyc++] = t;
            break;
        }
        case 10:
            if (b->n && b->dups++ < 6) {
                push(b, json_incref(b->st[b->n - 1]));
            }
            break;
        }
    }
    json_t *v = b->n ? json_incref(b->st[b->n - 1]) : json_null();
    return v;
}

static void unbuild(builder *b)
{
    /* Cycles broken first (last made, first broken: a later one may sit inside an earlier), or
     * the refcounts never reach zero. */
    while (b->ncyc) {
        json_t *t = b->cyc[--b->ncyc];
        if (json_is_object(t)) {
            json_object_del(t, "\x01cycle");
        } else {
            /* the member added last that is the wrapper [t] */
            for (size_t i = json_array_size(t); i-- > 0;) {
                json_t *w = json_array_get(t, i);
                if (json_is_array(w) && json_array_size(w) == 1 && json_array_get(w, 0) == t) {
                    json_array_remove(t, i);
                    break;
                }
            }
        }
    }
    while (b->n) {
        json_decref(b->st[--b->n]);
    }
}

/* Whether some key is not UTF-8 or holds a NUL, and the deepest nesting of containers (with a cap: only
 * asked of values with no cycle). */
static void inspect(const json_t *v, size_t depth, size_t *max, int *bad_key, int *nul_key)
{
    if (!json_is_object(v) && !json_is_array(v)) {
        return;
    }
    depth++;
    if (depth > *max) {
        *max = depth;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            inspect(json_array_get(v, i), depth, max, bad_key, nul_key);
        }
        return;
    }
    for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
        json_t *k = json_stringn(json_object_iter_key(it), json_object_iter_key_len(it));
        if (!k) {
            *bad_key = 1; /* json_stringn checks UTF-8 as jansson's dump does */
        }
        json_decref(k);
        if (memchr(json_object_iter_key(it), 0, json_object_iter_key_len(it))) {
            *nul_key = 1;
        }
        inspect(json_object_iter_value(it), depth, max, bad_key, nul_key);
    }
}

/* Deep equality, stricter than json_equal (which looks keys up as C strings, so misses keys
 * with a NUL, and takes -0.0 for 0.0): same members in the same order, reals bit for bit. */
static int same(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b)) {
        return 0;
    }
    switch (json_typeof(a)) {
    case JSON_INTEGER: return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) {
            return 0;
        }
        for (size_t i = 0; i < json_array_size(a); i++) {
            if (!same(json_array_get(a, i), json_array_get(b, i))) {
                return 0;
            }
        }
        return 1;
    case JSON_OBJECT: {
        void *i = json_object_iter((json_t *)a), *j = json_object_iter((json_t *)b);
        for (; i && j; i = json_object_iter_next((json_t *)a, i),
                       j = json_object_iter_next((json_t *)b, j)) {
            size_t n = json_object_iter_key_len(i);
            if (n != json_object_iter_key_len(j) ||
                memcmp(json_object_iter_key(i), json_object_iter_key(j), n) != 0 ||
                !same(json_object_iter_value(i), json_object_iter_value(j))) {
                return 0;
            }
        }
        return !i && !j;
    }
    default: return 1;
    }
}

/* Whether a container leads back to one that holds it (path: the open containers). */
typedef struct path {
    const json_t *v;
    const struct path *up;
} path;

static int reaches_cycle(const json_t *v, const path *up)
{
    if (!json_is_object(v) && !json_is_array(v)) {
        return 0;
    }
    for (const path *p = up; p; p = p->up) {
        if (p->v == v) {
            return 1;
        }
    }
    path here = {v, up};
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (reaches_cycle(json_array_get(v, i), &here)) {
                return 1;
            }
        }
        return 0;
    }
    for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
        if (reaches_cycle(json_object_iter_value(it), &here)) {
            return 1;
        }
    }
    return 0;
}

static void compare(const json_t *v, int has_cycle, size_t first_cap)
{
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    size_t rn = json_dumpb(v, NULL, 0, flags);
    char *ref = NULL;
    if (rn) {
        ref = malloc(rn);
        CHECK(ref && json_dumpb(v, ref, rn, flags) == rn);
    }

    char first[256];
    char *out = NULL;
    size_t n = 0;
    int rc = http_json_encode(v, first_cap ? first : NULL, first_cap, &out, &n);
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        CHECK(!has_cycle);
        CHECK(ref && n == rn && memcmp(out, ref, n) == 0);
        CHECK((out == first) == (first_cap && n <= first_cap));
        /* It reads back as the value it was written from. */
        json_error_t err;
        json_t *back = json_loadb(out, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (back) {
            CHECK(same(back, v));
            json_decref(back);
        } else {
            /* jansson's parser refuses a NUL in a key (JSON_ALLOW_NUL or not) */
            size_t depth = 0;
            int bad_key = 0, nul_key = 0;
            inspect(v, 0, &depth, &bad_key, &nul_key);
            CHECK(nul_key);
        }
        if (out != first) {
            free(out);
        }
    } else if (ref) {
        /* We refuse what jansson writes: only for a documented reason. */
        CHECK(!has_cycle);
        size_t depth = 0;
        int bad_key = 0, nul_key = 0;
        inspect(v, 0, &depth, &bad_key, &nul_key);
        CHECK(bad_key || depth > HTTP_JSON_MAX_DEPTH);
    }
    if (!ref && !has_cycle) {
        CHECK(rc == -EINVAL); /* jansson fails: a string not UTF-8 */
    }
    free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    uint8_t mode = data[0];
    size_t caps[] = {0, 1, 64, 256};
    size_t cap = caps[(mode >> 1) & 3];
    if ((mode & 1) == 0) {
        json_error_t err;
        json_t *v = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                               &err);
        if (!v) {
            return 0;
        }
        /* What jansson's parser reads, ours writes: no bad keys, no depth past its limit. */
        char *out = NULL;
        size_t n = 0;
        CHECK(http_json_encode(v, NULL, 0, &out, &n) == 0);
        free(out);
        compare(v, 0, cap);
        json_decref(v);
        return 0;
    }
    builder b = {.n = 0, .ncyc = 0, .dups = 0, .nest = 0};
    json_t *v = build(&b, data + 1, data + size);
    compare(v, b.ncyc > 0 && reaches_cycle(v, NULL), cap); /* no cycle op, no cycle */
    json_decref(v);
    unbuild(&b);
    return 0;
}
