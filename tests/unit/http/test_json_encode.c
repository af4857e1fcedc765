/* test_json_encode.c — libsimul-http's JSON encoder (http_json_encode, src/http/json_encode.c):
 * exact bytes for every kind of value, each also checked against jansson's json_dumpb(v,
 * JSON_COMPACT | JSON_ENCODE_ANY), which it must equal; the refusals (not UTF-8, nesting past the
 * limit, cycles), the growth path and the locale. fuzz/fuzz_http_json_encode.c does the rest. */
#include "test_main_helpers.h"

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>

#include <jansson.h>

#include "../../../src/http/internal.h"

#define FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

/* Encodes v (first into a buffer of `cap` bytes) and checks the bytes against `want` (len
 * bytes) and against jansson's dump. Steals the reference to v. */
static void expect_n(json_t *v, const char *want, size_t wlen, size_t cap)
{
    assert_non_null(v);
    char *buf = cap ? malloc(cap) : NULL;
    assert_true(!cap || buf);
    char *out = NULL;
    size_t n = 0;
    assert_int_equal(http_json_encode(v, buf, cap, &out, &n), 0);
    if (n != wlen || memcmp(out, want, n) != 0) {
        fail_msg("got [%.*s] (%zu bytes), want [%.*s] (%zu bytes)", (int)n, out, n, (int)wlen,
                 want, wlen);
    }
    /* In the caller's buffer exactly when it fits there. */
    assert_true((out == buf) == (n <= cap));
    size_t rn = json_dumpb(v, NULL, 0, FLAGS);
    assert_int_equal(rn, n);
    char *ref = malloc(rn);
    assert_non_null(ref);
    assert_int_equal(json_dumpb(v, ref, rn, FLAGS), rn);
    assert_memory_equal(ref, out, n);
    free(ref);
    if (out != buf) {
        free(out);
    }
    free(buf);
    json_decref(v);
}

static void expect(json_t *v, const char *want)
{
    expect_n(v, want, strlen(want), 512);
}

/* Not encodable, and jansson's dump fails too (unless jansson_writes: it writes a broken
 * document there). Steals v. */
static void refused(json_t *v, int jansson_writes)
{
    assert_non_null(v);
    char buf[64], *out = NULL;
    size_t n = 0;
    assert_int_equal(http_json_encode(v, buf, sizeof buf, &out, &n), -EINVAL);
    assert_int_equal(http_json_encode(v, NULL, 0, &out, &n), -EINVAL);
    if (!jansson_writes) {
        assert_int_equal(json_dumpb(v, NULL, 0, FLAGS), 0);
    }
    json_decref(v);
}

static void scalars(void **state)
{
    (void)state;
    expect(json_null(), "null");
    expect(json_true(), "true");
    expect(json_false(), "false");
    expect(json_string(""), "\"\"");
    expect(json_pack("{s:s}", "message", "Hello, World!"), "{\"message\":\"Hello, World!\"}");
}

static void integers(void **state)
{
    (void)state;
    expect(json_integer(0), "0");
    expect(json_integer(-1), "-1");
    expect(json_integer(7), "7");
    expect(json_integer(10), "10");
    expect(json_integer(99), "99");
    expect(json_integer(100), "100");
    expect(json_integer(1000000), "1000000");
    expect(json_integer(-1000000000000LL), "-1000000000000");
    expect(json_integer(INT64_MAX), "9223372036854775807");
    expect(json_integer(INT64_MIN), "-9223372036854775808");
    expect(json_integer(INT64_MIN + 1), "-9223372036854775807");
    expect(json_integer(1844674407370955161LL), "1844674407370955161");
}

static void reals(void **state)
{
    (void)state;
    expect(json_real(-0.0), "-0.0");
    expect(json_real(0.0), "0.0");
    expect(json_real(1e300), "1.0000000000000001e300");
    expect(json_real(1e-7), "9.9999999999999995e-8");
    expect(json_real(0.1), "0.10000000000000001");
    expect(json_real(1.5), "1.5");
    expect(json_real(-2.5), "-2.5");
    expect(json_real(100.0), "100.0");
    expect(json_real(3.0), "3.0");
    expect(json_real(1e16), "10000000000000000.0");
    expect(json_real(1e17), "1e17");
    expect(json_real(1e22), "1e22");
    expect(json_real(9007199254740992.0), "9007199254740992.0");
    expect(json_real(9007199254740994.0), "9007199254740994.0");
    expect(json_real(-9007199254740991.0), "-9007199254740991.0");
    expect(json_real(1.7976931348623157e308), "1.7976931348623157e308");
    expect(json_real(5e-324), "4.9406564584124654e-324");
    expect(json_real(2.2250738585072014e-308), "2.2250738585072014e-308");
    expect(json_real(0.0001), "0.0001");
    expect(json_real(0.00001), "1.0000000000000001e-5");
    expect(json_real(123456.789), "123456.789");
    expect(json_real(-1e-300), "-1e-300");
    /* jansson keeps NaN and inf out of its values: nothing to encode */
    assert_null(json_real(NAN));
    assert_null(json_real(INFINITY));
}

/* Ties at the 17th digit go to even, as printf's: doubles with 18 significant digits ending in
 * 5 (between 2^50 and 2^51 the step is 0.25). */
static void reals_round_half_even(void **state)
{
    (void)state;
    expect(json_real(1000000000000000.25), "1000000000000000.2");
    expect(json_real(1000000000000000.75), "1000000000000000.8");
    expect(json_real(2251799813685247.75), "2251799813685247.8");
    expect(json_real(2251799813685246.25), "2251799813685246.2");
    expect(json_real(-1000000000000001.25), "-1000000000000001.2");
    expect(json_real(0.5), "0.5");
    expect(json_real(9.5367431640625e-7), "9.5367431640625e-7"); /* 2^-20: exact */
    expect(json_real(0.000123), "0.00012300000000000001");
    expect(json_real(0.99999999999999989), "0.99999999999999989");
    expect(json_real(9.9999999999999982e-5), "9.9999999999999978e-5"); /* the nearest double */
}

/* Many reals of every shape (random bits, short decimals, halves at every scale), each against
 * jansson's dump, which prints with snprintf("%.17g"). */
static void reals_match_jansson(void **state)
{
    (void)state;
    uint64_t r = 88172645463325252ull;
    for (long i = 0; i < 200000; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        double d;
        switch (i % 4) {
        case 0: memcpy(&d, &r, sizeof d); break;
        case 1: d = (double)((int64_t)(r % 2000000) - 1000000) / pow(10, (double)(r % 9)); break;
        case 2: d = ldexp((double)(r % (1u << 20)) + 0.5, -(int)(r >> 58)); break;
        default: d = (double)(r % 100000) / 1000.0 * ((r >> 63) ? -1 : 1); break;
        }
        json_t *v = json_real(d);
        if (!v) {
            assert_false(isfinite(d));
            continue;
        }
        char want[64], got[64], *out;
        size_t wn = json_dumpb(v, want, sizeof want, FLAGS), n;
        assert_int_equal(http_json_encode(v, got, sizeof got, &out, &n), 0);
        if (n != wn || memcmp(got, want, n) != 0) {
            fail_msg("%a: got [%.*s], want [%.*s]", d, (int)n, got, (int)wn, want);
        }
        json_decref(v);
    }
}

static void escapes(void **state)
{
    (void)state;
    expect(json_string("\" \\ / \b \f \n \r \t"), "\"\\\" \\\\ / \\b \\f \\n \\r \\t\"");
    expect(json_string("\x01\x1f\x7f"), "\"\\u0001\\u001F\x7f\""); /* upper-case hex, DEL raw */
    expect(json_stringn("a\0b", 3), "\"a\\u0000b\"");
    expect(json_stringn("\0", 1), "\"\\u0000\"");
    expect(json_string("\x0b\x0e\x10\x1a"), "\"\\u000B\\u000E\\u0010\\u001A\"");
    /* non-ASCII as is (no JSON_ENSURE_ASCII), '/' as is (no JSON_ESCAPE_SLASH) */
    expect(json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 </script>"),
           "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 </script>\"");
    expect(json_string("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"),
           "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");
}

/* Every byte value alone and at every offset in a run of plain text (the 16- and 8-byte scans
 * and the tail), each against jansson: same bytes, or both refuse. */
static void every_byte_at_every_offset(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        for (size_t at = 0; at < 40; at++) {
            char s[41];
            memset(s, 'a', sizeof s);
            s[at] = (char)c;
            json_t *v = json_stringn_nocheck(s, sizeof s);
            size_t rn = json_dumpb(v, NULL, 0, FLAGS);
            char *out = NULL;
            size_t n = 0;
            int rc = http_json_encode(v, NULL, 0, &out, &n);
            if (rn == 0) {
                assert_int_equal(rc, -EINVAL); /* a lone byte >= 0x80 is not UTF-8 */
                assert_true(c >= 0x80);
            } else {
                assert_int_equal(rc, 0);
                char *ref = malloc(rn);
                assert_non_null(ref);
                json_dumpb(v, ref, rn, FLAGS);
                assert_int_equal(n, rn);
                assert_memory_equal(out, ref, n);
                free(ref);
                free(out);
            }
            json_decref(v);
        }
    }
}

static void invalid_utf8(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\x80",         "\xbf",         "\xc0\xaf",         "\xc1\xbf",     "\xc3",
        "\xc3\x28",     "\xe0\x80\x80", "\xe0\x9f\xbf",     "\xed\xa0\x80", "\xed\xbf\xbf",
        "\xe2\x82",     "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80", "\xff", "\xf0\x9f\x98",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char s[64];
        /* alone, after 20 plain bytes (the wide scan finds it), and as a key */
        refused(json_stringn_nocheck(bad[i], strlen(bad[i])), 0);
        int n = snprintf(s, sizeof s, "01234567890123456789%s tail", bad[i]);
        refused(json_stringn_nocheck(s, (size_t)n), 0);
        json_t *o = json_object();
        assert_int_equal(json_object_setn_new_nocheck(o, bad[i], strlen(bad[i]), json_null()), 0);
        refused(o, 1); /* jansson writes {":null} here: a broken document */
    }
}

static void keys_in_insertion_order(void **state)
{
    (void)state;
    json_t *o = json_object();
    json_object_set_new(o, "z", json_integer(1));
    json_object_set_new(o, "a", json_integer(2));
    json_object_set_new(o, "m", json_integer(3));
    json_object_set_new(o, "a", json_integer(4)); /* replaced in place */
    json_object_setn_new(o, "k\0ey", 4, json_true());
    json_object_set_new(o, "q\"\n", json_null());
    json_object_set_new(o, "", json_string(""));
    expect(o, "{\"z\":1,\"a\":4,\"m\":3,\"k\\u0000ey\":true,\"q\\\"\\n\":null,\"\":\"\"}");
}

static void nested_and_empty(void **state)
{
    (void)state;
    expect(json_object(), "{}");
    expect(json_array(), "[]");
    expect(json_pack("[{}, [], [[]], {s:{}}]", "a"), "[{},[],[[]],{\"a\":{}}]");
    expect(json_pack("{s:[i,{s:[]},[i,[i,{}]]],s:{s:n,s:b},s:f}", "a", 1, "b", 2, 3, "c", "d",
                     "e", 0, "g", 0.5),
           "{\"a\":[1,{\"b\":[]},[2,[3,{}]]],\"c\":{\"d\":null,\"e\":false},\"g\":0.5}");
    /* a shared subtree is written at each place (not a cycle) */
    json_t *s = json_pack("{s:i}", "x", 1);
    json_t *a = json_pack("[O,O,O]", s, s, s);
    json_decref(s);
    expect(a, "[{\"x\":1},{\"x\":1},{\"x\":1}]");
}

static void big_string_grows(void **state)
{
    (void)state;
    size_t len = 100 * 1024;
    char *s = malloc(len);
    assert_non_null(s);
    for (size_t i = 0; i < len; i++) {
        s[i] = (char)('a' + i % 26);
    }
    s[len / 2] = '\n';
    s[len - 1] = '"';
    char *want = malloc(len + 4);
    assert_non_null(want);
    want[0] = '"';
    memcpy(want + 1, s, len);
    memcpy(want + 1 + len / 2, "\\n", 2);
    memcpy(want + 3 + len / 2, s + len / 2 + 1, len - len / 2 - 2);
    memcpy(want + len + 1, "\\\"\"", 3);
    expect_n(json_stringn(s, len), want, len + 4, 512); /* grows from the caller's 512 bytes */
    expect_n(json_stringn(s, len), want, len + 4, 0);   /* from nothing */
    free(want);
    free(s);
}

static void exact_fit_stays_in_buffer(void **state)
{
    (void)state;
    /* 27 bytes: in a 27-byte buffer it stays there; in 26 it moves to the heap */
    expect_n(json_pack("{s:s}", "message", "Hello, World!"), "{\"message\":\"Hello, World!\"}", 27,
             27);
    expect_n(json_pack("{s:s}", "message", "Hello, World!"), "{\"message\":\"Hello, World!\"}", 27,
             26);
    const char *w = "[0.10000000000000001,1.0000000000000001e300,\"a\\tb\"]";
    expect_n(json_pack("[f,f,s]", 0.1, 1e300, "a\tb"), w, strlen(w), strlen(w));
    expect_n(json_pack("[f,f,s]", 0.1, 1e300, "a\tb"), w, strlen(w), strlen(w) - 1);
}

static json_t *nest(size_t depth, int objects)
{
    json_t *v = objects ? json_object() : json_array();
    for (size_t i = 1; i < depth; i++) {
        json_t *w = objects ? json_object() : json_array();
        if (objects) {
            json_object_set_new(w, "k", v);
        } else {
            json_array_append_new(w, v);
        }
        v = w;
    }
    return v;
}

static void depth_limit(void **state)
{
    (void)state;
    size_t d = HTTP_JSON_MAX_DEPTH;
    char *want = malloc(2 * d + 1);
    assert_non_null(want);
    memset(want, '[', d);
    memset(want + d, ']', d);
    expect_n(nest(d, 0), want, 2 * d, 512); /* at the limit: written */
    refused(nest(d + 1, 0), 1);             /* one past: refused (jansson writes it) */
    refused(nest(d + 1, 1), 1);
    free(want);
    json_t *o = nest(d, 1);
    char *out;
    size_t n;
    assert_int_equal(http_json_encode(o, NULL, 0, &out, &n), 0);
    assert_int_equal(n, 6 * (d - 1) + 2); /* {"k": and } per level, {} inside */
    free(out);
    json_decref(o);
    /* what jansson's parser reads at its limit, we write */
    char *text = malloc(2 * d + 1);
    assert_non_null(text);
    memset(text, '[', d);
    memset(text + d, ']', d);
    json_error_t err;
    json_t *v = json_loadb(text, 2 * d, 0, &err);
    assert_non_null(v);
    expect_n(v, text, 2 * d, 512);
    free(text);
}

static void cycles_refused(void **state)
{
    (void)state;
    /* jansson refuses a container as its own member, not a cycle through another */
    json_t *o = json_object(), *a = json_array();
    assert_int_equal(json_object_set(o, "self", o), -1);
    assert_int_equal(json_object_set(o, "a", a), 0);
    assert_int_equal(json_array_append(a, o), 0);
    char buf[64], *out;
    size_t n;
    assert_int_equal(http_json_encode(o, buf, sizeof buf, &out, &n), -EINVAL);
    assert_int_equal(http_json_encode(a, NULL, 0, &out, &n), -EINVAL);
    assert_int_equal(json_dumpb(o, NULL, 0, FLAGS), 0); /* jansson refuses it too */
    json_object_del(o, "a");                          /* broken, or it never frees */
    json_decref(a);
    json_decref(o);
}

static void bad_arguments(void **state)
{
    (void)state;
    char buf[8], *out;
    size_t n;
    json_t *v = json_null();
    assert_int_equal(http_json_encode(NULL, buf, sizeof buf, &out, &n), -EINVAL);
    assert_int_equal(http_json_encode(v, NULL, 8, &out, &n), -EINVAL);
    assert_int_equal(http_json_encode(v, buf, sizeof buf, NULL, &n), -EINVAL);
    assert_int_equal(http_json_encode(v, buf, sizeof buf, &out, NULL), -EINVAL);
}

/* A locale whose decimal point is ',' (de_DE, built into a temp dir with localedef): the same
 * bytes as in "C" (printf would write 0,1). Skipped where localedef or the sources are missing. */
static void locale_independent(void **state)
{
    (void)state;
    char dir[] = "/tmp/simul-json-locale-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[256];
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
    int st = system(cmd);
    int made = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) <= 1; /* 1: made, with warnings */
    setenv("LOCPATH", dir, 1);
    const char *loc = made ? setlocale(LC_NUMERIC, "de_DE.UTF-8") : NULL;
    if (loc) {
        char probe[16];
        snprintf(probe, sizeof probe, "%.1f", 0.5);
        assert_string_equal(probe, "0,5"); /* the trap is live */
        expect(json_real(0.1), "0.10000000000000001");
        expect(json_real(-1.25e-7), "-1.2499999999999999e-7");
        expect(json_real(2.5), "2.5");
        expect(json_real(1e300), "1.0000000000000001e300");
        setlocale(LC_NUMERIC, "C");
    }
    unsetenv("LOCPATH");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    if (!loc) {
        skip();
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scalars),
        cmocka_unit_test(integers),
        cmocka_unit_test(reals),
        cmocka_unit_test(reals_round_half_even),
        cmocka_unit_test(reals_match_jansson),
        cmocka_unit_test(escapes),
        cmocka_unit_test(every_byte_at_every_offset),
        cmocka_unit_test(invalid_utf8),
        cmocka_unit_test(keys_in_insertion_order),
        cmocka_unit_test(nested_and_empty),
        cmocka_unit_test(big_string_grows),
        cmocka_unit_test(exact_fit_stays_in_buffer),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(cycles_refused),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(locale_independent),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_json_encode");
}
