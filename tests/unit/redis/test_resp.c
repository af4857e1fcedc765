/* test_resp.c — libsimul-redis' RESP codec: every reply type, nested aggregates, attributes, every
 * limit at its boundary and one past, malformed input of every kind, the same tree whole, byte by
 * byte and split at every point, the encoder, and a black-box run against a real redis-server
 * (the suite's shared one under CTest, else its own). */
#include "test_main_helpers.h"

#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <simul/redis.h>

#include "resp_dump.h"

/* ---- helpers ------------------------------------------------------------------------------- */

/* Parses all of `in` (n bytes) fed in chunks of `chunk` bytes (0: whole), with limits `lim`.
 * Returns the dump of every reply in order, then "E<errname>" if it failed, then "P" if bytes of
 * an incomplete reply are left over. The caller frees it. */
static char *feed(const void *in, size_t n, size_t chunk, const simul_redis_limits *lim)
{
    simul_redis_parser *p = NULL;
    assert_int_equal(simul_redis_parser_new(&p, lim), 0);
    resp_dump d = {0};
    dump_put(&d, "", 0);
    const char *s = in;
    size_t pos = 0;
    bool partial = false;
    while (pos < n) {
        size_t end = chunk && pos + chunk < n ? pos + chunk : n;
        size_t off = pos;
        while (off < end) {
            simul_redis_reply *r = NULL;
            ssize_t rc = simul_redis_parse(p, s + off, end - off, &r);
            if (rc < 0) {
                assert_null(r);
                assert_non_null(simul_redis_parser_error(p));
                char e[64];
                snprintf(e, sizeof e, "#ERR=%s", simul_errname((int)rc));
                dump_put(&d, e, strlen(e));
                /* Sticky. */
                assert_int_equal(simul_redis_parse(p, "+OK\r\n", 5, &r), rc);
                simul_redis_parser_free(p);
                return d.s;
            }
            off += (size_t)rc;
            if (r) {
                resp_dump_reply(&d, r);
                simul_redis_reply_free(r);
                partial = false;
            } else {
                assert_int_equal(off, end); /* no reply: everything was taken */
                partial = true;
            }
        }
        pos = end;
    }
    if (partial)
        dump_put(&d, "P", 1);
    simul_redis_parser_free(p);
    return d.s;
}

/* Parses s (a C string) whole, and asserts it gives exactly one reply with nothing left. */
static simul_redis_parser *one_parser;
static simul_redis_reply *one(const char *s)
{
    if (!one_parser)
        assert_int_equal(simul_redis_parser_new(&one_parser, NULL), 0);
    simul_redis_reply *r = NULL;
    ssize_t rc = simul_redis_parse(one_parser, s, strlen(s), &r);
    if (rc < 0)
        fail_msg("parse '%s': %s (%s)", s, simul_errname((int)rc),
                 simul_redis_parser_error(one_parser));
    assert_int_equal(rc, strlen(s));
    assert_non_null(r);
    return r;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The verdict of parsing s whole, byte by byte and split at every point must agree; returns the
 * error (0 if none) and checks the reason is set. */
static int verdict(const char *s, size_t n, const simul_redis_limits *lim)
{
    char *whole = feed(s, n, 0, lim);
    char *bytes = feed(s, n, 1, lim);
    assert_string_equal(whole, bytes);
    free(bytes);
    for (size_t k = 1; k < n; k++) {
        simul_redis_parser *p = NULL;
        assert_int_equal(simul_redis_parser_new(&p, lim), 0);
        resp_dump d = {0};
        dump_put(&d, "", 0);
        size_t cuts[2] = {k, n};
        size_t pos = 0;
        bool partial = false, failed = false;
        for (int c = 0; c < 2 && !failed; c++) {
            while (pos < cuts[c]) {
                simul_redis_reply *r = NULL;
                ssize_t rc = simul_redis_parse(p, s + pos, cuts[c] - pos, &r);
                if (rc < 0) {
                    char e[64];
                    snprintf(e, sizeof e, "#ERR=%s", simul_errname((int)rc));
                    dump_put(&d, e, strlen(e));
                    failed = true;
                    break;
                }
                pos += (size_t)rc;
                if (r) {
                    resp_dump_reply(&d, r);
                    simul_redis_reply_free(r);
                }
                partial = !r;
            }
        }
        if (!failed && partial)
            dump_put(&d, "P", 1);
        if (strcmp(d.s, whole) != 0)
            fail_msg("split at %zu: '%s' vs whole '%s'", k, d.s, whole);
        free(d.s);
        simul_redis_parser_free(p);
    }
    int err = 0;
    if (ends_with(whole, "#ERR=EPROTO"))
        err = -EPROTO;
    else if (ends_with(whole, "#ERR=EMSGSIZE"))
        err = -EMSGSIZE;
    else if (strstr(whole, "#ERR="))
        fail_msg("unexpected verdict '%s'", whole);
    free(whole);
    return err;
}

static int verdict_s(const char *s, const simul_redis_limits *lim)
{
    return verdict(s, strlen(s), lim);
}

static void expect_str(const simul_redis_reply *r, int type, const char *s)
{
    assert_non_null(r);
    assert_int_equal(r->type, type);
    size_t n;
    const char *p = simul_redis_reply_str(r, &n);
    assert_non_null(p);
    assert_int_equal(n, strlen(s));
    assert_memory_equal(p, s, n);
    assert_int_equal(p[n], '\0');
}

static void teardown_one(void)
{
    simul_redis_parser_free(one_parser);
    one_parser = NULL;
}

/* ---- types --------------------------------------------------------------------------------- */

static void resp2_types(void **state)
{
    (void)state;
    simul_redis_reply *r = one("+OK\r\n");
    expect_str(r, SIMUL_REDIS_STATUS, "OK");
    assert_null(r->attrs);
    simul_redis_reply_free(r);
    r = one("-ERR unknown command\r\n");
    expect_str(r, SIMUL_REDIS_ERROR, "ERR unknown command");
    simul_redis_reply_free(r);
    r = one(":-9223372036854775808\r\n");
    assert_int_equal(simul_redis_reply_type(r), SIMUL_REDIS_INTEGER);
    assert_true(simul_redis_reply_integer(r) == LLONG_MIN);
    simul_redis_reply_free(r);
    r = one(":9223372036854775807\r\n");
    assert_true(simul_redis_reply_integer(r) == LLONG_MAX);
    simul_redis_reply_free(r);
    r = one(":0\r\n");
    assert_int_equal(simul_redis_reply_integer(r), 0);
    simul_redis_reply_free(r);
    r = one("$5\r\nhello\r\n");
    expect_str(r, SIMUL_REDIS_STRING, "hello");
    simul_redis_reply_free(r);
    r = one("$0\r\n\r\n");
    expect_str(r, SIMUL_REDIS_STRING, "");
    simul_redis_reply_free(r);
    r = one("$-1\r\n");
    assert_int_equal(simul_redis_reply_type(r), SIMUL_REDIS_NIL);
    simul_redis_reply_free(r);
    r = one("*-1\r\n");
    assert_int_equal(simul_redis_reply_type(r), SIMUL_REDIS_NIL);
    simul_redis_reply_free(r);
    /* Binary-safe: CR, LF and NUL inside a bulk. */
    const char bin[] = "$6\r\na\r\n\0b\n\r\n";
    simul_redis_parser *p = NULL;
    assert_int_equal(simul_redis_parser_new(&p, NULL), 0);
    assert_int_equal(simul_redis_parse(p, bin, sizeof bin - 1, &r), sizeof bin - 1);
    assert_int_equal(r->len, 6);
    assert_memory_equal(r->str, "a\r\n\0b\n", 6);
    simul_redis_reply_free(r);
    simul_redis_parser_free(p);
    teardown_one();
}

static void resp3_types(void **state)
{
    (void)state;
    simul_redis_reply *r = one("_\r\n");
    assert_int_equal(r->type, SIMUL_REDIS_NIL);
    simul_redis_reply_free(r);
    r = one("#t\r\n");
    assert_int_equal(r->type, SIMUL_REDIS_BOOL);
    assert_int_equal(simul_redis_reply_integer(r), 1);
    simul_redis_reply_free(r);
    r = one("#f\r\n");
    assert_int_equal(simul_redis_reply_integer(r), 0);
    simul_redis_reply_free(r);
    struct {
        const char *in;
        double v;
    } dbl[] = {{",1.5\r\n", 1.5},      {",-0.25\r\n", -0.25},  {",10\r\n", 10.0},
               {",1e+300\r\n", 1e300}, {",3.5E-2\r\n", 0.035}, {",.5\r\n", 0.5}};
    for (size_t i = 0; i < ARRAY_LEN(dbl); i++) {
        r = one(dbl[i].in);
        assert_int_equal(r->type, SIMUL_REDIS_DOUBLE);
        assert_true(simul_redis_reply_double(r) == dbl[i].v);
        simul_redis_reply_free(r);
    }
    r = one(",inf\r\n");
    assert_true(isinf(r->dval) && r->dval > 0);
    expect_str(r, SIMUL_REDIS_DOUBLE, "inf");
    assert_true(simul_redis_reply_integer(r) == LLONG_MAX);
    simul_redis_reply_free(r);
    r = one(",-inf\r\n");
    assert_true(isinf(r->dval) && r->dval < 0);
    simul_redis_reply_free(r);
    r = one(",nan\r\n");
    assert_true(isnan(simul_redis_reply_double(r)));
    assert_int_equal(simul_redis_reply_integer(r), 0);
    simul_redis_reply_free(r);
    r = one("(3492890328409238509324850943850943825024385\r\n");
    expect_str(r, SIMUL_REDIS_BIGNUM, "3492890328409238509324850943850943825024385");
    simul_redis_reply_free(r);
    r = one("(-1\r\n");
    expect_str(r, SIMUL_REDIS_BIGNUM, "-1");
    simul_redis_reply_free(r);
    r = one("=15\r\ntxt:Some string\r\n");
    expect_str(r, SIMUL_REDIS_VERBATIM, "Some string");
    assert_string_equal(r->vtype, "txt");
    simul_redis_reply_free(r);
    r = one("=4\r\nmkd:\r\n");
    expect_str(r, SIMUL_REDIS_VERBATIM, "");
    assert_string_equal(r->vtype, "mkd");
    simul_redis_reply_free(r);
    r = one("!21\r\nSYNTAX invalid syntax\r\n");
    expect_str(r, SIMUL_REDIS_ERROR, "SYNTAX invalid syntax");
    simul_redis_reply_free(r);
    teardown_one();
}

static void aggregates(void **state)
{
    (void)state;
    simul_redis_reply *r = one("*3\r\n:1\r\n$3\r\nfoo\r\n*2\r\n+a\r\n$-1\r\n");
    assert_int_equal(r->type, SIMUL_REDIS_ARRAY);
    assert_int_equal(simul_redis_reply_len(r), 3);
    assert_int_equal(simul_redis_reply_integer(simul_redis_reply_elem(r, 0)), 1);
    expect_str(simul_redis_reply_elem(r, 1), SIMUL_REDIS_STRING, "foo");
    const simul_redis_reply *in = simul_redis_reply_elem(r, 2);
    assert_int_equal(simul_redis_reply_len(in), 2);
    expect_str(simul_redis_reply_elem(in, 0), SIMUL_REDIS_STATUS, "a");
    assert_int_equal(simul_redis_reply_type(simul_redis_reply_elem(in, 1)), SIMUL_REDIS_NIL);
    assert_null(simul_redis_reply_elem(r, 3));
    simul_redis_reply_free(r);

    r = one("%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n~2\r\n#t\r\n_\r\n");
    assert_int_equal(r->type, SIMUL_REDIS_MAP);
    assert_int_equal(simul_redis_reply_len(r), 2);
    assert_int_equal(r->len, 4);
    expect_str(simul_redis_reply_map_key(r, 0), SIMUL_REDIS_STATUS, "first");
    assert_int_equal(simul_redis_reply_integer(simul_redis_reply_map_value(r, 0)), 1);
    const simul_redis_reply *set = simul_redis_reply_map_get(r, "second");
    assert_int_equal(simul_redis_reply_type(set), SIMUL_REDIS_SET);
    assert_int_equal(simul_redis_reply_len(set), 2);
    assert_null(simul_redis_reply_map_get(r, "third"));
    assert_null(simul_redis_reply_map_key(r, 2));
    simul_redis_reply_free(r);

    r = one(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
    assert_int_equal(r->type, SIMUL_REDIS_PUSH);
    assert_int_equal(simul_redis_reply_len(r), 3);
    expect_str(simul_redis_reply_elem(r, 2), SIMUL_REDIS_STRING, "hi");
    simul_redis_reply_free(r);

    /* Empty aggregates complete at once, nested ones too. */
    r = one("*2\r\n*0\r\n%0\r\n");
    assert_int_equal(simul_redis_reply_len(r), 2);
    assert_int_equal(simul_redis_reply_len(simul_redis_reply_elem(r, 0)), 0);
    assert_int_equal(simul_redis_reply_type(simul_redis_reply_elem(r, 1)), SIMUL_REDIS_MAP);
    simul_redis_reply_free(r);
    r = one("~0\r\n");
    assert_int_equal(r->type, SIMUL_REDIS_SET);
    simul_redis_reply_free(r);

    /* A big array fed in small pieces grows its element array as elements arrive. */
    resp_dump in2 = {0};
    dump_head(&in2, '*', 5000);
    for (int i = 0; i < 5000; i++)
        dump_head(&in2, ':', i);
    char *whole = feed(in2.s, in2.len, 0, NULL);
    char *small = feed(in2.s, in2.len, 7, NULL);
    assert_string_equal(whole, in2.s);
    assert_string_equal(small, in2.s);
    free(whole);
    free(small);
    free(in2.s);

    /* Typed access is NULL-safe and neutral on a wrong type. */
    assert_int_equal(simul_redis_reply_type(NULL), 0);
    assert_int_equal(simul_redis_reply_integer(NULL), 0);
    assert_null(simul_redis_reply_str(NULL, NULL));
    assert_int_equal(simul_redis_reply_len(NULL), 0);
    assert_null(simul_redis_reply_elem(NULL, 0));
    r = one(":5\r\n");
    size_t n = 99;
    assert_null(simul_redis_reply_str(r, &n));
    assert_int_equal(n, 0);
    assert_int_equal(simul_redis_reply_len(r), 0);
    assert_true(simul_redis_reply_double(r) == 5.0);
    assert_null(simul_redis_reply_map_get(r, "x"));
    simul_redis_reply_free(r);
    simul_redis_reply_free(NULL);
    teardown_one();
}

static void attributes(void **state)
{
    (void)state;
    /* Before the reply: attached to the root. */
    simul_redis_reply *r = one("|1\r\n+ttl\r\n:3600\r\n$3\r\nval\r\n");
    expect_str(r, SIMUL_REDIS_STRING, "val");
    assert_non_null(r->attrs);
    assert_int_equal(r->attrs->type, SIMUL_REDIS_ATTRIBUTE);
    assert_int_equal(simul_redis_reply_len(r->attrs), 1);
    assert_int_equal(simul_redis_reply_integer(simul_redis_reply_map_get(r->attrs, "ttl")), 3600);
    simul_redis_reply_free(r);
    /* Inside an aggregate (the spec's example): not counted as an element, attached to the next. */
    r = one("*2\r\n|1\r\n+key-popularity\r\n*2\r\n$1\r\na\r\n,0.1923\r\n:2039123\r\n:9543892\r\n");
    assert_int_equal(simul_redis_reply_len(r), 2);
    assert_null(r->attrs);
    const simul_redis_reply *e0 = simul_redis_reply_elem(r, 0);
    assert_int_equal(simul_redis_reply_integer(e0), 2039123);
    assert_non_null(e0->attrs);
    const simul_redis_reply *pop = simul_redis_reply_map_get(e0->attrs, "key-popularity");
    assert_int_equal(simul_redis_reply_len(pop), 2);
    assert_null(simul_redis_reply_elem(r, 1)->attrs);
    simul_redis_reply_free(r);
    /* An empty attribute, an attribute of an attribute's value, one before an aggregate. */
    r = one("|0\r\n*1\r\n|1\r\n+k\r\n|1\r\n+kk\r\n+vv\r\n+v\r\n:7\r\n");
    assert_non_null(r->attrs);
    assert_int_equal(simul_redis_reply_len(r->attrs), 0);
    const simul_redis_reply *e = simul_redis_reply_elem(r, 0);
    assert_int_equal(simul_redis_reply_integer(e), 7);
    const simul_redis_reply *v = simul_redis_reply_map_value(e->attrs, 0);
    expect_str(v, SIMUL_REDIS_STATUS, "v");
    assert_non_null(v->attrs);
    simul_redis_reply_free(r);
    teardown_one();
    /* Two in a row: refused. */
    assert_int_equal(verdict_s("|1\r\n+a\r\n+b\r\n|0\r\n+c\r\n", NULL), -EPROTO);
    assert_int_equal(verdict_s("|0\r\n|0\r\n+c\r\n", NULL), -EPROTO);
}

/* Parses s whole, byte by byte and split everywhere (verdict()) and checks the replies' dump. */
static void expect_dump(const char *s, const char *want, const simul_redis_limits *lim)
{
    assert_int_equal(verdict_s(s, lim), 0);
    char *got = feed(s, strlen(s), 0, lim);
    assert_string_equal(got, want);
    free(got);
}

static void streamed(void **state)
{
    (void)state;
    expect_dump("$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;2\r\nld\r\n;0\r\n", "$11\r\nHello world\r\n",
                NULL);
    expect_dump("$?\r\n;0\r\n", "$0\r\n\r\n", NULL);
    expect_dump("*?\r\n:1\r\n:2\r\n:3\r\n.\r\n", "*3\r\n:1\r\n:2\r\n:3\r\n", NULL);
    expect_dump("%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n", "%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", NULL);
    expect_dump("~?\r\n.\r\n>?\r\n+x\r\n.\r\n", "~0\r\n>1\r\n+x\r\n", NULL);
    expect_dump("*?\r\n*?\r\n$?\r\n;2\r\nab\r\n;0\r\n.\r\n*2\r\n:1\r\n:2\r\n.\r\n",
                "*2\r\n*1\r\n$2\r\nab\r\n*2\r\n:1\r\n:2\r\n", NULL);
    expect_dump("*?\r\n|1\r\n+k\r\n+v\r\n:1\r\n.\r\n", "*1\r\n|1\r\n+k\r\n+v\r\n:1\r\n", NULL);
    /* Many elements: the array grows as they come. */
    resp_dump in = {0}, want = {0};
    dump_put(&in, "*?\r\n", 4);
    dump_head(&want, '*', 3000);
    for (int i = 0; i < 3000; i++) {
        dump_head(&in, ':', i);
        dump_head(&want, ':', i);
    }
    dump_put(&in, ".\r\n", 3);
    char *got = feed(in.s, in.len, 5, NULL);
    assert_string_equal(got, want.s);
    free(got);
    free(in.s);
    free(want.s);
    /* Limits: the string's total, the elements as they come, the depth. */
    simul_redis_limits lim = {.max_bulk = 5, .max_elements = 2, .max_depth = 2};
    assert_int_equal(verdict_s("$?\r\n;3\r\nabc\r\n;2\r\nde\r\n;0\r\n", &lim), 0);
    assert_int_equal(verdict_s("$?\r\n;3\r\nabc\r\n;3\r\ndef\r\n;0\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("*?\r\n:1\r\n:2\r\n.\r\n", &lim), 0);
    assert_int_equal(verdict_s("*?\r\n:1\r\n:2\r\n:3\r\n.\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("%?\r\n:1\r\n:1\r\n:2\r\n:2\r\n.\r\n", &lim), 0);
    assert_int_equal(verdict_s("%?\r\n:1\r\n:1\r\n:2\r\n:2\r\n:3\r\n:3\r\n.\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("*?\r\n*?\r\n.\r\n.\r\n", &lim), 0);
    assert_int_equal(verdict_s("*?\r\n*?\r\n*?\r\n", &lim), -EMSGSIZE);
    simul_redis_limits rl = {.max_reply = 12};
    assert_int_equal(verdict_s("$?\r\n;1\r\na\r\n", &rl), 0); /* 4 + 4 + 3, partial */
    assert_int_equal(verdict_s("$?\r\n;1\r\na\r\n;0\r\n", &rl), -EMSGSIZE);
}

/* ---- incremental ----------------------------------------------------------------------------- */

static const char corpus[] =
    "+OK\r\n-ERR x\r\n:42\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
    "*3\r\n:1\r\n*2\r\n$1\r\na\r\n+b\r\n%1\r\n+k\r\n~2\r\n#t\r\n#f\r\n"
    "_\r\n,1.5\r\n,-inf\r\n,nan\r\n(12345678901234567890\r\n=8\r\ntxt:abcd\r\n!3\r\nERR\r\n"
    ">2\r\n+pubsub\r\n:1\r\n|1\r\n+a\r\n+b\r\n*1\r\n|1\r\n+c\r\n:1\r\n$3\r\nxyz\r\n";

static void split_anywhere(void **state)
{
    (void)state;
    /* Every split point of a stream of every type gives the same replies (verdict() checks). */
    assert_int_equal(verdict(corpus, sizeof corpus - 1, NULL), 0);
    char *whole = feed(corpus, sizeof corpus - 1, 0, NULL);
    /* The dump of what was parsed parses back to itself. */
    char *again = feed(whole, strlen(whole), 3, NULL);
    assert_string_equal(again, whole);
    free(again);
    free(whole);
    /* Two-chunk splits at every pair of points of a smaller stream. */
    const char *s = "*2\r\n$3\r\nabc\r\n%1\r\n,2.5\r\n=6\r\ntxt:hi\r\n";
    size_t n = strlen(s);
    char *ref = feed(s, n, 0, NULL);
    for (size_t c = 1; c <= n; c++) {
        char *got = feed(s, n, c, NULL);
        assert_string_equal(got, ref);
        free(got);
    }
    free(ref);
}

static void pipeline_and_large_bulk(void **state)
{
    (void)state;
    simul_redis_parser *p = NULL;
    assert_int_equal(simul_redis_parser_new(&p, NULL), 0);
    /* Several replies in one buffer: each call stops after one. */
    const char *s = "+OK\r\n:1\r\n$2\r\nab\r\n";
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_parse(p, s, strlen(s), &r), 5);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_parse(p, s + 5, strlen(s) - 5, &r), 4);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_parse(p, s + 9, strlen(s) - 9, &r), 8);
    expect_str(r, SIMUL_REDIS_STRING, "ab");
    simul_redis_reply_free(r);
    /* Nothing: consumes nothing, no reply. */
    assert_int_equal(simul_redis_parse(p, s, 0, &r), 0);
    assert_null(r);

    /* A 4 MiB bulk in 1000-byte pieces: every piece consumed at once (copied once, no rescan),
     * then the reply at the last byte. */
    size_t big = (size_t)4 << 20;
    char *buf = malloc(big + 32);
    int h = snprintf(buf, 32, "$%zu\r\n", big);
    for (size_t i = 0; i < big; i++)
        buf[h + i] = (char)(i * 7);
    memcpy(buf + h + big, "\r\n", 2);
    size_t total = (size_t)h + big + 2, pos = 0;
    while (pos < total) {
        size_t n = total - pos < 1000 ? total - pos : 1000;
        ssize_t rc = simul_redis_parse(p, buf + pos, n, &r);
        assert_int_equal(rc, n);
        pos += n;
        if (pos < total)
            assert_null(r);
    }
    assert_non_null(r);
    assert_int_equal(r->len, big);
    assert_memory_equal(r->str, buf + h, big);
    simul_redis_reply_free(r);
    free(buf);
    simul_redis_parser_free(p);

    /* A header that declares 500 MB and sends 3 bytes costs kilobytes, not 500 MB: the body's
     * memory grows with what arrives. */
    assert_int_equal(simul_redis_parser_new(&p, NULL), 0);
    struct mallinfo2 before = mallinfo2();
    const char *liar = "*2\r\n$500000000\r\nabc";
    assert_int_equal(simul_redis_parse(p, liar, strlen(liar), &r), strlen(liar));
    assert_null(r);
    struct mallinfo2 after = mallinfo2();
    assert_true(after.uordblks + after.hblkhd <
                before.uordblks + before.hblkhd + ((size_t)1 << 20));
    simul_redis_parser_free(p);
}

/* ---- limits ---------------------------------------------------------------------------------- */

static void limit_bulk(void **state)
{
    (void)state;
    simul_redis_limits lim = {.max_bulk = 5};
    assert_int_equal(verdict_s("$5\r\nabcde\r\n", &lim), 0);
    assert_int_equal(verdict_s("$6\r\nabcdef\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("!5\r\nabcde\r\n", &lim), 0);
    assert_int_equal(verdict_s("!6\r\nabcdef\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("=5\r\ntxt:a\r\n", &lim), 0);
    assert_int_equal(verdict_s("=6\r\ntxt:ab\r\n", &lim), -EMSGSIZE);
    /* A simple line: its content. */
    assert_int_equal(verdict_s("+abcde\r\n", &lim), 0);
    assert_int_equal(verdict_s("+abcdef\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("-abcdef\r\n", &lim), -EMSGSIZE);
    /* ... seen before its CR arrives. */
    assert_int_equal(verdict_s("+abcdef", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("+abcde", &lim), 0);
    /* The header itself is refused: nothing allocated for a huge declared length. */
    assert_int_equal(verdict_s("$9223372036854775807\r\n", NULL), -EMSGSIZE);
    simul_redis_limits big = {.max_bulk = (size_t)1 << 40, .max_reply = (size_t)1 << 41};
    assert_int_equal(verdict_s("$1099511627777\r\n", &big), -EMSGSIZE);
}

static void limit_elements(void **state)
{
    (void)state;
    simul_redis_limits lim = {.max_elements = 3};
    assert_int_equal(verdict_s("*3\r\n:1\r\n:2\r\n:3\r\n", &lim), 0);
    assert_int_equal(verdict_s("*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("~4\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s(">4\r\n", &lim), -EMSGSIZE);
    /* Maps and attributes count pairs. */
    assert_int_equal(verdict_s("%3\r\n:1\r\n:1\r\n:2\r\n:2\r\n:3\r\n:3\r\n", &lim), 0);
    assert_int_equal(verdict_s("%4\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("|4\r\n", &lim), -EMSGSIZE);
    /* A lying count with nothing behind it allocates little and waits. */
    assert_int_equal(verdict_s("*16777216\r\n", NULL), 0);
    assert_int_equal(verdict_s("*16777217\r\n", NULL), -EMSGSIZE);
}

static void limit_depth(void **state)
{
    (void)state;
    simul_redis_limits lim = {.max_depth = 3};
    assert_int_equal(verdict_s("*1\r\n*1\r\n*1\r\n:1\r\n", &lim), 0);
    assert_int_equal(verdict_s("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("*1\r\n%1\r\n~1\r\n>0\r\n", &lim), -EMSGSIZE);
    /* An attribute is a level while it is read. */
    assert_int_equal(verdict_s("*1\r\n*1\r\n|1\r\n+a\r\n+b\r\n:1\r\n", &lim), 0);
    assert_int_equal(verdict_s("*1\r\n*1\r\n*1\r\n|1\r\n+a\r\n+b\r\n:1\r\n", &lim), -EMSGSIZE);
    /* Siblings do not add up. */
    assert_int_equal(verdict_s("*2\r\n*1\r\n*1\r\n:1\r\n*1\r\n*1\r\n:2\r\n", &lim), 0);
    /* The default is 32, the most SIMUL_REDIS_DEPTH_MAX. */
    resp_dump d = {0};
    for (int i = 0; i < 32; i++)
        dump_put(&d, "*1\r\n", 4);
    dump_put(&d, ":1\r\n", 4);
    assert_int_equal(verdict(d.s, d.len, NULL), 0);
    d.len = 0;
    for (int i = 0; i < 33; i++)
        dump_put(&d, "*1\r\n", 4);
    dump_put(&d, ":1\r\n", 4);
    assert_int_equal(verdict(d.s, d.len, NULL), -EMSGSIZE);
    free(d.s);
    simul_redis_parser *p = NULL;
    simul_redis_limits too = {.max_depth = SIMUL_REDIS_DEPTH_MAX + 1};
    assert_int_equal(simul_redis_parser_new(&p, &too), -EINVAL);
    too.max_depth = SIMUL_REDIS_DEPTH_MAX;
    assert_int_equal(simul_redis_parser_new(&p, &too), 0);
    simul_redis_parser_free(p);
}

static void limit_reply(void **state)
{
    (void)state;
    /* "*2\r\n" (4) + "$3\r\nabc\r\n" (9) + ":1\r\n" (4) = 17 bytes. */
    const char *s = "*2\r\n$3\r\nabc\r\n:1\r\n";
    simul_redis_limits lim = {.max_reply = 17};
    assert_int_equal(verdict_s(s, &lim), 0);
    lim.max_reply = 16;
    assert_int_equal(verdict_s(s, &lim), -EMSGSIZE);
    /* Per reply, not per stream: two 17-byte replies pass a 17-byte limit. */
    lim.max_reply = 17;
    char two[64];
    snprintf(two, sizeof two, "%s%s", s, s);
    assert_int_equal(verdict_s(two, &lim), 0);
    /* Bulk body counted at its header; a simple line as it comes. */
    lim.max_reply = 8;
    assert_int_equal(verdict_s("$2\r\nab\r\n", &lim), 0);
    assert_int_equal(verdict_s("$3\r\nabc\r\n", &lim), -EMSGSIZE);
    assert_int_equal(verdict_s("+abcde\r\n", &lim), 0);
    assert_int_equal(verdict_s("+abcdef\r\n", &lim), -EMSGSIZE);
    /* An attribute counts toward its reply. */
    assert_int_equal(verdict_s("|0\r\n:1\r\n", &lim), 0);
    assert_int_equal(verdict_s("|0\r\n:12\r\n", &lim), -EMSGSIZE);
}

/* ---- malformed ------------------------------------------------------------------------------- */

static void malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "x\r\n",
        "?\r\n",
        "\r\n",
        " +OK\r\n",
        ".\r\n", /* bad type byte */
        "$x\r\n",
        "$\r\n",
        "$-2\r\n",
        "$-0x\r\n",
        "$1 \r\n",
        "$+1\r\n",
        "=-1\r\n",
        "!-1\r\n",
        "*-2\r\n",
        "%-1\r\n",
        "~-1\r\n",
        ">-1\r\n",
        "|-1\r\n",
        "*x\r\n",
        "*\r\n", /* lengths */
        "$3\r\nabcd\r\n",
        "$3\r\nab\r\n",
        "$3\r\nabc\n\r",
        "$3\r\nabcXY", /* missing CRLF */
        "+OK\n\r\n",
        "+O\nK\r\n",
        "-\n\r\n",
        "*1\n:1\r\n",
        "+OK\rX\r\n",
        ":1\r:2\r\n", /* bare LF, CR */
        ":\r\n",
        ":-\r\n",
        ":1a\r\n",
        ": 1\r\n",
        ":+1\r\n",
        ":1.0\r\n", /* integers */
        ":9223372036854775808\r\n",
        ":-9223372036854775809\r\n", /* overflow */
        "$99999999999999999999\r\n",
        "*99999999999999999999\r\n",
        "_x\r\n",
        "#\r\n",
        "#x\r\n",
        "#tt\r\n",
        ",\r\n",
        ",1.5x\r\n",
        ",1e\r\n",
        ",-\r\n",
        ",0x10\r\n",
        ", 1\r\n",
        ",infx\r\n",
        "(\r\n",
        "(1.5\r\n",
        "(-\r\n",
        "(12a\r\n",
        "=3\r\ntxt\r\n",
        "=5\r\ntxt!a\r\n", /* verbatim format */
        "%?\r\n+a\r\n.\r\n",
        "*?\r\n|0\r\n.\r\n",
        "|?\r\n",
        "=?\r\n",
        "!?\r\n", /* streamed */
        "$?\r\n+x\r\n",
        "$?\r\n;-1\r\n",
        "$?\r\n;x\r\n",
        "$?\r\n;?\r\n",
        ";3\r\nabc\r\n",
        "*1\r\n.\r\n",
        "*?\r\n.x\r\n",
        "*?\r\nx\r\n",
        "$?\r\n;2\r\nabc\r\n",
        "$?\r\n.\r\n",
        "*2\r\n:1\r\nz\r\n",
        "%1\r\n+k\r\n:x\r\n", /* nested */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int rc = verdict_s(bad[i], NULL);
        if (rc != -EPROTO)
            fail_msg("'%s': expected EPROTO, got %d", bad[i], rc);
    }
    /* The reason is said, and the error is sticky. */
    simul_redis_parser *p = NULL;
    assert_int_equal(simul_redis_parser_new(&p, NULL), 0);
    assert_null(simul_redis_parser_error(p));
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_parse(p, "+OK\r\n", 5, &r), 5);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_parse(p, "*2\r\n:1\r\n:z\r\n", 13, &r), -EPROTO);
    assert_null(r);
    assert_string_equal(simul_redis_parser_error(p), "bad integer");
    assert_int_equal(simul_redis_parse(p, "+OK\r\n", 5, &r), -EPROTO);
    simul_redis_parser_free(p);
    /* A parser freed mid-reply frees what it built (ASan would say). */
    assert_int_equal(simul_redis_parser_new(&p, NULL), 0);
    assert_int_equal(simul_redis_parse(p, "*2\r\n$3\r\nab", 10, &r), 10);
    simul_redis_parser_free(p);
}

/* ---- encoder --------------------------------------------------------------------------------- */

static void encode_argv(void **state)
{
    (void)state;
    simul_redis_buf b = {0};
    const char *argv[] = {"SET", "key", "va\r\nl\0ue"};
    size_t lens[] = {3, 3, 8};
    ssize_t n = simul_redis_encode(&b, 3, argv, lens);
    const char want[] = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$8\r\nva\r\nl\0ue\r\n";
    assert_int_equal(n, sizeof want - 1);
    assert_int_equal(b.len, sizeof want - 1);
    assert_memory_equal(b.data, want, sizeof want - 1);
    /* Appends; C strings without lengths; an empty argument (NULL allowed with length 0). */
    const char *argv2[] = {"GET", ""};
    assert_true(simul_redis_encode(&b, 2, argv2, NULL) > 0);
    const char *argv3[] = {"ECHO", NULL};
    size_t lens3[] = {4, 0};
    assert_true(simul_redis_encode(&b, 2, argv3, lens3) > 0);
    assert_int_equal(simul_redis_encode(&b, 0, argv, lens), -EINVAL);
    /* Round trip through the parser: arrays of bulk strings. */
    simul_redis_parser *p = NULL;
    assert_int_equal(simul_redis_parser_new(&p, NULL), 0);
    size_t pos = 0;
    const char *const *all[] = {argv, argv2, argv3};
    const size_t *alllen[] = {lens, NULL, lens3};
    int counts[] = {3, 2, 2};
    for (int c = 0; c < 3; c++) {
        simul_redis_reply *r = NULL;
        ssize_t rc = simul_redis_parse(p, b.data + pos, b.len - pos, &r);
        assert_true(rc > 0);
        pos += (size_t)rc;
        assert_int_equal(simul_redis_reply_len(r), counts[c]);
        for (int i = 0; i < counts[c]; i++) {
            size_t l = alllen[c] ? alllen[c][i] : strlen(all[c][i]);
            const simul_redis_reply *e = simul_redis_reply_elem(r, (size_t)i);
            assert_int_equal(e->type, SIMUL_REDIS_STRING);
            assert_int_equal(e->len, l);
            if (l)
                assert_memory_equal(e->str, all[c][i], l);
        }
        simul_redis_reply_free(r);
    }
    assert_int_equal(pos, b.len);
    /* Long arguments: header digits. */
    b.len = 0;
    char *big = malloc(100000);
    memset(big, 'x', 100000);
    const char *argv4[] = {"SET", "k", big};
    size_t lens4[] = {3, 1, 100000};
    n = simul_redis_encode(&b, 3, argv4, lens4);
    assert_int_equal(n, 4 + 9 + 7 + 9 + 100000 + 2);
    assert_memory_equal(b.data + 20, "$100000\r\n", 9);
    free(big);
    simul_redis_parser_free(p);
    simul_redis_buf_free(&b);
    assert_null(b.data);
}

/* The encoding of argv (C strings) for comparison. */
static char *argv_bytes(int argc, const char *const *argv, const size_t *lens, size_t *n)
{
    simul_redis_buf b = {0};
    assert_true(simul_redis_encode(&b, argc, argv, lens) > 0);
    *n = b.len;
    return b.data;
}

static void check_format_eq(simul_redis_buf *b, ssize_t got, int argc, const char *const *argv,
                            const size_t *lens)
{
    size_t n;
    char *want = argv_bytes(argc, argv, lens, &n);
    assert_int_equal(got, n);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
    free(want);
    b->len = 0;
}

static void encode_format(void **state)
{
    (void)state;
    simul_redis_buf b = {0};
    ssize_t n = simul_redis_encodef(&b, "SET %s %b", "my key", "v\0al", (size_t)4);
    const char *a1[] = {"SET", "my key", "v\0al"};
    size_t l1[] = {3, 6, 4};
    check_format_eq(&b, n, 3, a1, l1);

    n = simul_redis_encodef(&b, "  ZADD   z:%d %f m%u-%lld%% ", 7, 1.5, 3u, -9000000000LL);
    const char *a2[] = {"ZADD", "z:7", "1.5", "m3--9000000000%"};
    check_format_eq(&b, n, 4, a2, NULL);

    n = simul_redis_encodef(&b, "X %ld %lu %llu %zu %i %f %f %f", -5L, 6UL, 7ULL, (size_t)8, -9,
                            0.1, INFINITY, -INFINITY);
    const char *a3[] = {"X", "-5", "6", "7", "8", "-9", "0.10000000000000001", "inf", "-inf"};
    check_format_eq(&b, n, 9, a3, NULL);

    /* An empty conversion gives an empty argument; a literal never does. */
    n = simul_redis_encodef(&b, "SET %s %b", "", "", (size_t)0);
    const char *a4[] = {"SET", "", ""};
    check_format_eq(&b, n, 3, a4, NULL);
    n = simul_redis_encodef(&b, "PING");
    const char *a5[] = {"PING"};
    check_format_eq(&b, n, 1, a5, NULL);

    /* Errors leave the buffer alone. */
    assert_int_equal(simul_redis_encodef(&b, "SET %q", 1), -EINVAL);
    assert_int_equal(simul_redis_encodef(&b, "SET %l", 1), -EINVAL);
    assert_int_equal(simul_redis_encodef(&b, "   "), -EINVAL);
    assert_int_equal(simul_redis_encodef(&b, ""), -EINVAL);
    assert_int_equal(b.len, 0);
    simul_redis_buf_free(&b);
}

/* ---- a real redis-server ------------------------------------------------------------------- */

typedef struct rconn {
    int fd;
    simul_redis_parser *p;
    char buf[65536];
    size_t off, len, chunk; /* chunk: bytes read per read(2), to cut real replies small */
    simul_redis_buf out;
} rconn;

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char dir[4096];
    while (path && *path) {
        const char *c = strchr(path, ':');
        size_t n = c ? (size_t)(c - path) : strlen(path);
        snprintf(dir, sizeof dir, "%.*s/%s", (int)n, path, prog);
        if (access(dir, X_OK) == 0)
            return true;
        path = c ? c + 1 : NULL;
    }
    return false;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    close(s);
    return ntohs(a.sin_port);
}

static int try_connect(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0)
        return s;
    close(s);
    return -1;
}

/* Starts redis-server on a free loopback port in dir; returns its pid and connects c. */
static pid_t start_redis(const char *dir, rconn *c)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port();
        char ports[16], log[4200];
        snprintf(ports, sizeof ports, "%d", port);
        snprintf(log, sizeof log, "%s/redis.log", dir);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            execlp("redis-server", "redis-server", "--port", ports, "--bind", "127.0.0.1", "--save",
                   "", "--appendonly", "no", "--dir", dir, "--logfile", log,
                   "--enable-debug-command", "yes", (char *)NULL);
            _exit(127);
        }
        /* Ready when it accepts; gone if the port was taken meanwhile (then another port). */
        for (int i = 0; i < 2000; i++) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid)
                break;
            int fd = try_connect(port);
            if (fd >= 0) {
                c->fd = fd;
                return pid;
            }
            usleep(5000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    fail_msg("redis-server did not start");
    return -1;
}

static void stop_redis(pid_t pid, const char *dir)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4200];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void rsend(rconn *c)
{
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t n = write(c->fd, c->out.data + off, c->out.len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    c->out.len = 0;
}

static simul_redis_reply *rread(rconn *c)
{
    for (;;) {
        if (c->off < c->len) {
            simul_redis_reply *r = NULL;
            ssize_t rc = simul_redis_parse(c->p, c->buf + c->off, c->len - c->off, &r);
            if (rc < 0)
                fail_msg("parse: %s (%s)", simul_errname((int)rc), simul_redis_parser_error(c->p));
            c->off += (size_t)rc;
            if (r)
                return r;
        }
        ssize_t n = read(c->fd, c->buf, c->chunk);
        assert_true(n > 0);
        c->off = 0;
        c->len = (size_t)n;
    }
}

static simul_redis_reply *rcall(rconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    assert_true(simul_redis_vencodef(&c->out, fmt, ap) > 0);
    va_end(ap);
    rsend(c);
    return rread(c);
}

static void real_server(void **state)
{
    (void)state;
    if (!on_path("redis-server")) {
        skip(); /* `make deps` installs it (package redis-server) */
        return;
    }
    char dir[] = "/tmp/simul-resp-XXXXXX";
    rconn *c = calloc(1, sizeof *c);
    c->chunk = sizeof c->buf;
    /* The suite's shared server when the CTest fixture runs (tests/redis/fixture.sh: its state
     * file has a port= line), else one of our own. */
    pid_t pid = 0;
    const char *fixture = getenv("SIMUL_REDIS_FIXTURE");
    FILE *f = fixture && *fixture ? fopen(fixture, "r") : NULL;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "port=", 5) == 0)
            c->fd = try_connect(atoi(line + 5));
    if (f)
        fclose(f);
    if (!f) {
        assert_non_null(mkdtemp(dir));
        pid = start_redis(dir, c);
    }
    assert_true(c->fd > 0);
    assert_int_equal(simul_redis_parser_new(&c->p, NULL), 0);
    if (!pid) {
        /* The shared server: a clean slate, and no client of an earlier case left (its PUBLISH
         * below counts receivers). */
        simul_redis_reply *x = rcall(c, "FLUSHALL");
        simul_redis_reply_free(x);
        for (int i = 0;; i++) {
            x = rcall(c, "INFO clients");
            const char *p = x->str ? strstr(x->str, "connected_clients:") : NULL;
            long n = p ? atol(p + strlen("connected_clients:")) : -1;
            simul_redis_reply_free(x);
            if (n == 1)
                break;
            assert_true(i < 2000);
            usleep(1000);
        }
    }

    /* RESP2 first: HELLO's absence means arrays of strings. */
    simul_redis_reply *r = rcall(c, "PING");
    expect_str(r, SIMUL_REDIS_STATUS, "PONG");
    simul_redis_reply_free(r);

    r = rcall(c, "HELLO 3");
    assert_int_equal(r->type, SIMUL_REDIS_MAP);
    assert_int_equal(simul_redis_reply_integer(simul_redis_reply_map_get(r, "proto")), 3);
    expect_str(simul_redis_reply_map_get(r, "server"), SIMUL_REDIS_STRING, "redis");
    simul_redis_reply_free(r);

    /* Binary-safe keys and values both ways. */
    r = rcall(c, "SET %b %b", "k\0\r\n", (size_t)4, "v\r\n\0", (size_t)4);
    expect_str(r, SIMUL_REDIS_STATUS, "OK");
    simul_redis_reply_free(r);
    r = rcall(c, "GET %b", "k\0\r\n", (size_t)4);
    assert_int_equal(r->len, 4);
    assert_memory_equal(r->str, "v\r\n\0", 4);
    simul_redis_reply_free(r);
    r = rcall(c, "GET nokey");
    assert_int_equal(r->type, SIMUL_REDIS_NIL); /* RESP3 null */
    simul_redis_reply_free(r);

    r = rcall(c, "ZADD z %f a", 1.5);
    simul_redis_reply_free(r);
    r = rcall(c, "ZSCORE z a");
    assert_int_equal(r->type, SIMUL_REDIS_DOUBLE);
    assert_true(r->dval == 1.5);
    simul_redis_reply_free(r);
    r = rcall(c, "ZINCRBY z %f a", INFINITY);
    assert_int_equal(r->type, SIMUL_REDIS_DOUBLE);
    assert_true(isinf(r->dval));
    simul_redis_reply_free(r);
    r = rcall(c, "INCRBYFLOAT f 2.5"); /* a bulk string even in RESP3 */
    expect_str(r, SIMUL_REDIS_STRING, "2.5");
    simul_redis_reply_free(r);

    r = rcall(c, "SADD s a b c");
    assert_int_equal(simul_redis_reply_integer(r), 3);
    simul_redis_reply_free(r);
    r = rcall(c, "SMEMBERS s");
    assert_int_equal(r->type, SIMUL_REDIS_SET);
    assert_int_equal(simul_redis_reply_len(r), 3);
    simul_redis_reply_free(r);

    r = rcall(c, "INFO server"); /* verbatim under RESP3 */
    assert_int_equal(r->type, SIMUL_REDIS_VERBATIM);
    assert_string_equal(r->vtype, "txt");
    assert_non_null(strstr(r->str, "redis_version:"));
    simul_redis_reply_free(r);

    r = rcall(c, "NOSUCHCOMMAND");
    assert_int_equal(r->type, SIMUL_REDIS_ERROR);
    simul_redis_reply_free(r);

    /* DEBUG PROTOCOL sends each RESP3 type (the server runs with the debug command enabled). */
    r = rcall(c, "DEBUG PROTOCOL bignum");
    assert_int_equal(r->type, SIMUL_REDIS_BIGNUM);
    simul_redis_reply_free(r);
    r = rcall(c, "DEBUG PROTOCOL true");
    assert_int_equal(r->type, SIMUL_REDIS_BOOL);
    assert_int_equal(r->integer, 1);
    simul_redis_reply_free(r);
    r = rcall(c, "DEBUG PROTOCOL verbatim");
    assert_int_equal(r->type, SIMUL_REDIS_VERBATIM);
    simul_redis_reply_free(r);
    r = rcall(c, "DEBUG PROTOCOL attrib");
    assert_non_null(r->attrs);
    assert_int_equal(r->attrs->type, SIMUL_REDIS_ATTRIBUTE);
    simul_redis_reply_free(r);
    r = rcall(c, "DEBUG PROTOCOL null");
    assert_int_equal(r->type, SIMUL_REDIS_NIL);
    simul_redis_reply_free(r);
    r = rcall(c, "DEBUG PROTOCOL double");
    assert_int_equal(r->type, SIMUL_REDIS_DOUBLE);
    simul_redis_reply_free(r);

    /* Pipelined, read 7 bytes at a time: real replies split everywhere. */
    c->chunk = 7;
    for (int i = 0; i < 200; i++)
        assert_true(simul_redis_encodef(&c->out, "RPUSH l %d", i) > 0);
    assert_true(simul_redis_encodef(&c->out, "LRANGE l 0 -1") > 0);
    assert_true(simul_redis_encodef(&c->out, "HSET h a 1 b 2") > 0);
    assert_true(simul_redis_encodef(&c->out, "HGETALL h") > 0);
    rsend(c);
    for (int i = 0; i < 200; i++) {
        r = rread(c);
        assert_int_equal(simul_redis_reply_integer(r), i + 1);
        simul_redis_reply_free(r);
    }
    r = rread(c);
    assert_int_equal(simul_redis_reply_len(r), 200);
    expect_str(simul_redis_reply_elem(r, 199), SIMUL_REDIS_STRING, "199");
    simul_redis_reply_free(r);
    simul_redis_reply_free(rread(c));
    r = rread(c);
    assert_int_equal(r->type, SIMUL_REDIS_MAP);
    expect_str(simul_redis_reply_map_get(r, "b"), SIMUL_REDIS_STRING, "2");
    simul_redis_reply_free(r);
    c->chunk = sizeof c->buf;

    /* Pub/sub under RESP3: the confirmation and the messages are pushes, and the same
     * connection still runs commands. */
    r = rcall(c, "SUBSCRIBE ch");
    assert_int_equal(r->type, SIMUL_REDIS_PUSH);
    expect_str(simul_redis_reply_elem(r, 0), SIMUL_REDIS_STRING, "subscribe");
    simul_redis_reply_free(r);
    assert_true(simul_redis_encodef(&c->out, "PUBLISH ch %s", "hello there") > 0);
    rsend(c);
    int pushes = 0, ints = 0;
    for (int i = 0; i < 2; i++) {
        r = rread(c);
        if (r->type == SIMUL_REDIS_PUSH) {
            expect_str(simul_redis_reply_elem(r, 0), SIMUL_REDIS_STRING, "message");
            expect_str(simul_redis_reply_elem(r, 2), SIMUL_REDIS_STRING, "hello there");
            pushes++;
        } else {
            assert_int_equal(simul_redis_reply_integer(r), 1);
            ints++;
        }
        simul_redis_reply_free(r);
    }
    assert_int_equal(pushes, 1);
    assert_int_equal(ints, 1);

    close(c->fd);
    if (pid)
        stop_redis(pid, dir);
    simul_redis_parser_free(c->p);
    simul_redis_buf_free(&c->out);
    free(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resp2_types),
        cmocka_unit_test(resp3_types),
        cmocka_unit_test(aggregates),
        cmocka_unit_test(attributes),
        cmocka_unit_test(streamed),
        cmocka_unit_test(split_anywhere),
        cmocka_unit_test(pipeline_and_large_bulk),
        cmocka_unit_test(limit_bulk),
        cmocka_unit_test(limit_elements),
        cmocka_unit_test(limit_depth),
        cmocka_unit_test(limit_reply),
        cmocka_unit_test(malformed),
        cmocka_unit_test(encode_argv),
        cmocka_unit_test(encode_format),
        cmocka_unit_test(real_server),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_resp");
}
