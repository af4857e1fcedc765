/* test_amqp_table.c — field tables without a broker: every type built, encoded, parsed back and
 * read through the typed getters; the codec's view of the same bytes (librabbitmq decodes what we
 * encode); the limits (depth, items, key length, integer ranges) when building and when reading;
 * hostile bytes (truncations, unknown types, sizes past the end, deep nesting). */
#include "test_main_helpers.h"

#include <amqp.h>

#include <simul/amqp.h>

/* A table with one of everything, a nested table and an array of mixed values. */
static simul_amqp_table *every_type(void)
{
    simul_amqp_table *t, *sub, *arr;
    assert_int_equal(simul_amqp_table_new(&t), 0);
    assert_int_equal(simul_amqp_table_set_bool(t, "bool", true), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "i8", SIMUL_AMQP_T_I8, -128), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "u8", SIMUL_AMQP_T_U8, 255), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "i16", SIMUL_AMQP_T_I16, -32768), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "u16", SIMUL_AMQP_T_U16, 65535), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "i32", SIMUL_AMQP_T_I32, INT32_MIN), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "u32", SIMUL_AMQP_T_U32, UINT32_MAX), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "i64", SIMUL_AMQP_T_I64, INT64_MIN), 0);
    assert_int_equal(simul_amqp_table_set_float(t, "float", 1.5f), 0);
    assert_int_equal(simul_amqp_table_set_double(t, "double", -2.25e300), 0);
    assert_int_equal(simul_amqp_table_set_decimal(t, "decimal", 2, 12345), 0);
    assert_int_equal(simul_amqp_table_set_timestamp(t, "ts", 1700000000u), 0);
    assert_int_equal(simul_amqp_table_set_string(t, "str", "héllo"), 0);
    assert_int_equal(simul_amqp_table_set_bytes(t, "bytes", "a\0b", 3), 0);
    assert_int_equal(simul_amqp_table_set_void(t, "void"), 0);
    assert_int_equal(simul_amqp_table_new(&sub), 0);
    assert_int_equal(simul_amqp_table_set_string(sub, "inner", "x"), 0);
    assert_int_equal(simul_amqp_table_set_int(sub, "n", SIMUL_AMQP_T_I32, 7), 0);
    assert_int_equal(simul_amqp_array_new(&arr), 0);
    assert_int_equal(simul_amqp_table_set_int(arr, NULL, SIMUL_AMQP_T_I64, 1), 0);
    assert_int_equal(simul_amqp_table_set_string(arr, NULL, "two"), 0);
    assert_int_equal(simul_amqp_table_set_table(arr, NULL, sub), 0);
    assert_int_equal(simul_amqp_table_set_table(t, "table", sub), 0);
    assert_int_equal(simul_amqp_table_set_table(t, "array", arr), 0);
    simul_amqp_table_free(sub); /* copied in */
    simul_amqp_table_free(arr);
    return t;
}

static void check_every_type(const simul_amqp_table *t)
{
    assert_int_equal(simul_amqp_table_count(t), 17);
    bool b = false;
    assert_int_equal(simul_amqp_table_get_bool(t, "bool", &b), 0);
    assert_true(b);
    struct {
        const char *key;
        char type;
        int64_t v;
    } ints[] = {{"i8", 'b', -128},       {"u8", 'B', 255},       {"i16", 's', -32768},
                {"u16", 'u', 65535},     {"i32", 'I', INT32_MIN}, {"u32", 'i', UINT32_MAX},
                {"i64", 'l', INT64_MIN}, {"ts", 'T', 1700000000}};
    for (size_t i = 0; i < ARRAY_LEN(ints); i++) {
        int64_t x = 0;
        assert_int_equal(simul_amqp_table_get_int(t, ints[i].key, &x), 0);
        assert_true(x == ints[i].v);
        assert_int_equal(simul_amqp_table_get(t, ints[i].key)->type, ints[i].type);
    }
    double d = 0;
    assert_int_equal(simul_amqp_table_get_double(t, "float", &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(simul_amqp_table_get(t, "float")->type, SIMUL_AMQP_T_FLOAT);
    assert_int_equal(simul_amqp_table_get_double(t, "double", &d), 0);
    assert_true(d == -2.25e300);
    const simul_amqp_value *dec = simul_amqp_table_get(t, "decimal");
    assert_int_equal(dec->type, SIMUL_AMQP_T_DECIMAL);
    assert_int_equal(dec->u.decimal.scale, 2);
    assert_int_equal(dec->u.decimal.value, 12345);
    assert_int_equal(simul_amqp_table_get_double(t, "decimal", &d), 0);
    assert_true(fabs(d - 123.45) < 1e-9);
    const char *s;
    size_t n;
    assert_int_equal(simul_amqp_table_get_string(t, "str", &s, &n), 0);
    assert_int_equal(n, strlen("héllo"));
    assert_string_equal(s, "héllo");
    assert_int_equal(simul_amqp_table_get_string(t, "bytes", &s, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "a\0b", 3);
    assert_int_equal(simul_amqp_table_get(t, "bytes")->type, SIMUL_AMQP_T_BYTES);
    assert_int_equal(simul_amqp_table_get(t, "void")->type, SIMUL_AMQP_T_VOID);
    const simul_amqp_table *sub, *arr;
    assert_int_equal(simul_amqp_table_get_table(t, "table", &sub), 0);
    assert_false(simul_amqp_table_is_array(sub));
    assert_int_equal(simul_amqp_table_get_string(sub, "inner", &s, NULL), 0);
    assert_string_equal(s, "x");
    assert_int_equal(simul_amqp_table_get_table(t, "array", &arr), 0);
    assert_true(simul_amqp_table_is_array(arr));
    assert_int_equal(simul_amqp_table_count(arr), 3);
    const char *key = "set";
    const simul_amqp_value *v = simul_amqp_table_at(arr, 1, &key);
    assert_null(key);
    assert_int_equal(v->type, SIMUL_AMQP_T_STRING);
    assert_memory_equal(v->u.bytes.data, "two", 3);
    v = simul_amqp_table_at(arr, 2, NULL);
    assert_int_equal(v->type, SIMUL_AMQP_T_TABLE);
    int64_t x;
    assert_int_equal(simul_amqp_table_get_int(v->u.table, "n", &x), 0);
    assert_int_equal(x, 7);
    assert_null(simul_amqp_table_at(arr, 3, NULL));
    /* Wrong types and absent keys say so. */
    assert_int_equal(simul_amqp_table_get_int(t, "str", &x), -EINVAL);
    assert_int_equal(simul_amqp_table_get_bool(t, "i8", &b), -EINVAL);
    assert_int_equal(simul_amqp_table_get_string(t, "nope", &s, NULL), -ENOENT);
}

/* Every typed getter against every stored type: which types each one accepts (and what it
 * reads), -EINVAL for the rest, -ENOENT for an absent key or any key of an array; set_int takes
 * the seven integer tags only; a timestamp reads as an integer until it passes INT64_MAX. */
static void typed_getters_accept_their_types_only(void **state)
{
    (void)state;
    simul_amqp_table *t = every_type();
    assert_int_equal(simul_amqp_table_set_timestamp(t, "ts_big", (uint64_t)INT64_MAX + 1), 0);
    static const struct {
        const char *key;
        bool is_int, is_bool, is_double, is_string, is_table;
    } want[] = {
        {"bool", .is_bool = true},    {"i8", .is_int = true},       {"u8", .is_int = true},
        {"i16", .is_int = true},      {"u16", .is_int = true},      {"i32", .is_int = true},
        {"u32", .is_int = true},      {"i64", .is_int = true},      {"float", .is_double = true},
        {"double", .is_double = true}, {"decimal", .is_double = true}, {"ts", .is_int = true},
        {"str", .is_string = true},   {"bytes", .is_string = true}, {"void", .is_int = false},
        {"table", .is_table = true},  {"array", .is_table = true},
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        const char *k = want[i].key;
        int64_t x;
        bool b;
        double d;
        const char *s;
        const simul_amqp_table *sub;
        assert_int_equal(simul_amqp_table_get_int(t, k, &x), want[i].is_int ? 0 : -EINVAL);
        assert_int_equal(simul_amqp_table_get_bool(t, k, &b), want[i].is_bool ? 0 : -EINVAL);
        assert_int_equal(simul_amqp_table_get_double(t, k, &d), want[i].is_double ? 0 : -EINVAL);
        assert_int_equal(simul_amqp_table_get_string(t, k, &s, NULL),
                         want[i].is_string ? 0 : -EINVAL);
        assert_int_equal(simul_amqp_table_get_table(t, k, &sub), want[i].is_table ? 0 : -EINVAL);
    }
    int64_t x = 0;
    assert_int_equal(simul_amqp_table_get_int(t, "ts", &x), 0);
    assert_int_equal(x, 1700000000);
    assert_int_equal(simul_amqp_table_get_int(t, "ts_big", &x), -ERANGE);
    /* Absent keys, whatever the getter. */
    bool b;
    double d;
    const char *s;
    const simul_amqp_table *sub;
    assert_int_equal(simul_amqp_table_get_int(t, "nope", &x), -ENOENT);
    assert_int_equal(simul_amqp_table_get_bool(t, "nope", &b), -ENOENT);
    assert_int_equal(simul_amqp_table_get_double(t, "nope", &d), -ENOENT);
    assert_int_equal(simul_amqp_table_get_table(t, "nope", &sub), -ENOENT);
    assert_int_equal(simul_amqp_table_get_int(NULL, "i8", &x), -ENOENT);
    assert_int_equal(simul_amqp_table_get_int(t, NULL, &x), -ENOENT);
    /* An array has no keys: its values are read by position only. */
    assert_int_equal(simul_amqp_table_get_table(t, "array", &sub), 0);
    assert_int_equal(simul_amqp_table_get_string(sub, "", &s, NULL), -ENOENT);
    /* set_int: every integer tag, nothing else (a wrong tag leaves the table as it was). */
    static const char int_tags[] = {SIMUL_AMQP_T_I8,  SIMUL_AMQP_T_U8,  SIMUL_AMQP_T_I16,
                                    SIMUL_AMQP_T_U16, SIMUL_AMQP_T_I32, SIMUL_AMQP_T_U32,
                                    SIMUL_AMQP_T_I64};
    for (size_t i = 0; i < sizeof int_tags; i++)
        assert_int_equal(simul_amqp_table_set_int(t, "n", int_tags[i], 1), 0);
    size_t count = simul_amqp_table_count(t);
    static const char other_tags[] = {
        SIMUL_AMQP_T_VOID,  SIMUL_AMQP_T_BOOL,   SIMUL_AMQP_T_FLOAT,     SIMUL_AMQP_T_DOUBLE,
        SIMUL_AMQP_T_DECIMAL, SIMUL_AMQP_T_BYTES, SIMUL_AMQP_T_TIMESTAMP, SIMUL_AMQP_T_TABLE,
        SIMUL_AMQP_T_ARRAY, 'L',                 0};
    for (size_t i = 0; i < sizeof other_tags; i++)
        assert_int_equal(simul_amqp_table_set_int(t, "m", other_tags[i], 1), -EINVAL);
    assert_int_equal(simul_amqp_table_count(t), count);
    /* The typed setters refuse what they cannot hold, before touching the table. */
    assert_int_equal(simul_amqp_table_set_string(t, "m", NULL), -EINVAL);
    assert_int_equal(simul_amqp_table_set_table(t, "m", NULL), -EINVAL);
    assert_int_equal(simul_amqp_table_set_bytes(t, "m", NULL, 1), -EINVAL);
    assert_int_equal(simul_amqp_table_set_bytes(t, "m", NULL, 0), 0); /* empty bytes */
    assert_int_equal(simul_amqp_table_get_string(t, "m", &s, NULL), 0);
    assert_int_equal(simul_amqp_table_set_bool(NULL, "m", true), -EINVAL);
    assert_int_equal(simul_amqp_table_count(t), count + 1);
    simul_amqp_table_free(t);
}

static void every_type_round_trips(void **state)
{
    (void)state;
    simul_amqp_table *t = every_type();
    check_every_type(t);
    uint8_t buf[1024];
    ssize_t n = simul_amqp_table_encode(t, buf, sizeof buf);
    assert_true(n > 4);
    uint8_t small[1024];
    assert_int_equal(simul_amqp_table_encode(t, small, (size_t)n - 1), -EMSGSIZE);
    simul_amqp_table *back = NULL;
    assert_int_equal(simul_amqp_table_parse(buf, (size_t)n, &back), n);
    check_every_type(back);
    /* The same bytes again from the copy: equal encodings. */
    simul_amqp_table *copy = NULL;
    assert_int_equal(simul_amqp_table_copy(back, &copy), 0);
    uint8_t buf2[1024];
    assert_int_equal(simul_amqp_table_encode(copy, buf2, sizeof buf2), n);
    assert_memory_equal(buf, buf2, (size_t)n);
    /* librabbitmq's decoder reads what we wrote, type by type. */
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_table_t at;
    size_t off = 0;
    amqp_bytes_t enc = {(size_t)n, buf};
    assert_int_equal(amqp_decode_table(enc, &pool, &at, &off), AMQP_STATUS_OK);
    assert_int_equal(at.num_entries, 17);
    for (int i = 0; i < at.num_entries; i++) {
        const char *k;
        const simul_amqp_value *v = simul_amqp_table_at(t, (size_t)i, &k);
        assert_int_equal(at.entries[i].key.len, strlen(k));
        assert_int_equal(at.entries[i].value.kind, (uint8_t)v->type);
    }
    empty_amqp_pool(&pool);
    simul_amqp_table_free(copy);
    simul_amqp_table_free(back);
    simul_amqp_table_free(t);
}

static void building_checks_ranges_keys_and_limits(void **state)
{
    (void)state;
    simul_amqp_table *t, *a;
    assert_int_equal(simul_amqp_table_new(&t), 0);
    assert_int_equal(simul_amqp_array_new(&a), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "x", SIMUL_AMQP_T_I8, 128), -ERANGE);
    assert_int_equal(simul_amqp_table_set_int(t, "x", SIMUL_AMQP_T_U8, -1), -ERANGE);
    assert_int_equal(simul_amqp_table_set_int(t, "x", SIMUL_AMQP_T_U32, 1ll << 32), -ERANGE);
    assert_int_equal(simul_amqp_table_set_int(t, "x", SIMUL_AMQP_T_STRING, 1), -EINVAL);
    simul_amqp_value bad = {.type = 'L'}; /* u64: not a RabbitMQ type */
    assert_int_equal(simul_amqp_table_set(t, "x", &bad), -EINVAL);
    assert_int_equal(simul_amqp_table_set_bool(t, NULL, true), -EINVAL); /* a table needs keys */
    assert_int_equal(simul_amqp_table_set_bool(a, "k", true), -EINVAL); /* an array has none */
    char longkey[300];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    assert_int_equal(simul_amqp_table_set_bool(t, longkey, true), -EINVAL);
    longkey[255] = 0;
    assert_int_equal(simul_amqp_table_set_bool(t, longkey, true), 0);
    /* A key set again replaces its value. */
    assert_int_equal(simul_amqp_table_set_string(t, "k", "one"), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "k", SIMUL_AMQP_T_I32, 2), 0);
    int64_t x;
    assert_int_equal(simul_amqp_table_get_int(t, "k", &x), 0);
    assert_int_equal(x, 2);
    assert_int_equal(simul_amqp_table_count(t), 2);
    /* Nesting: MAX_DEPTH levels are fine, one more is refused. */
    simul_amqp_table *deep;
    assert_int_equal(simul_amqp_table_new(&deep), 0);
    for (int d = 1; d < SIMUL_AMQP_TABLE_MAX_DEPTH; d++) {
        simul_amqp_table *up;
        assert_int_equal(simul_amqp_table_new(&up), 0);
        assert_int_equal(simul_amqp_table_set_table(up, "d", deep), 0);
        simul_amqp_table_free(deep);
        deep = up;
    }
    simul_amqp_table *top;
    assert_int_equal(simul_amqp_table_new(&top), 0);
    assert_int_equal(simul_amqp_table_set_table(top, "d", deep), -E2BIG);
    /* The deepest table we may build parses back; one level more on the wire is refused. */
    static uint8_t buf[1 << 16];
    ssize_t n = simul_amqp_table_encode(deep, buf, sizeof buf);
    assert_true(n > 0);
    simul_amqp_table *back;
    assert_int_equal(simul_amqp_table_parse(buf, (size_t)n, &back), n);
    simul_amqp_table_free(back);
    /* wrap: {"d": <deep>} by hand */
    static uint8_t wrap[1 << 16];
    uint32_t inner = (uint32_t)n;
    uint32_t total = 1 + 1 + 1 + inner;
    wrap[0] = (uint8_t)(total >> 24), wrap[1] = (uint8_t)(total >> 16);
    wrap[2] = (uint8_t)(total >> 8), wrap[3] = (uint8_t)total;
    wrap[4] = 1, wrap[5] = 'd', wrap[6] = 'F';
    memcpy(wrap + 7, buf, (size_t)n);
    assert_int_equal(simul_amqp_table_parse(wrap, 7 + (size_t)n, &back), -E2BIG);
    simul_amqp_table_free(top);
    simul_amqp_table_free(deep);
    simul_amqp_table_free(a);
    simul_amqp_table_free(t);
}

static void hostile_bytes_refused(void **state)
{
    (void)state;
    simul_amqp_table *t = every_type();
    uint8_t buf[1024];
    ssize_t n = simul_amqp_table_encode(t, buf, sizeof buf);
    simul_amqp_table_free(t);
    simul_amqp_table *out = (simul_amqp_table *)1;
    /* Every truncation: refused, nothing leaked (ASan), *out NULL. */
    for (ssize_t cut = 0; cut < n; cut++) {
        ssize_t rc = simul_amqp_table_parse(buf, (size_t)cut, &out);
        assert_int_equal(rc, -EPROTO);
        assert_null(out);
    }
    /* A size that claims less than the entries take: the last entry crosses the end. */
    uint8_t c[1024];
    memcpy(c, buf, (size_t)n);
    c[3] = (uint8_t)(c[3] - 1);
    assert_int_equal(simul_amqp_table_parse(c, (size_t)n, &out), -EPROTO);
    /* An unknown type tag (u64 'L', garbage). */
    static const uint8_t unk[] = {0, 0, 0, 11, 1, 'k', 'L', 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(simul_amqp_table_parse(unk, sizeof unk, &out), -EPROTO);
    /* A string whose size runs past the table. */
    static const uint8_t str[] = {0, 0, 0, 8, 1, 'k', 'S', 0xff, 0xff, 0xff, 0xff, 'x'};
    assert_int_equal(simul_amqp_table_parse(str, sizeof str, &out), -EPROTO);
    /* A table of 100000 voids in an array: over MAX_ITEMS. */
    size_t items = 100000, len = 4 + 1 + 1 + 1 + 4 + items;
    uint8_t *big = malloc(len);
    assert_non_null(big);
    uint32_t tot = (uint32_t)(len - 4), arr = (uint32_t)items;
    big[0] = (uint8_t)(tot >> 24), big[1] = (uint8_t)(tot >> 16), big[2] = (uint8_t)(tot >> 8),
    big[3] = (uint8_t)tot;
    big[4] = 1, big[5] = 'a', big[6] = 'A';
    big[7] = (uint8_t)(arr >> 24), big[8] = (uint8_t)(arr >> 16), big[9] = (uint8_t)(arr >> 8),
    big[10] = (uint8_t)arr;
    memset(big + 11, 'V', items);
    assert_int_equal(simul_amqp_table_parse(big, len, &out), -E2BIG);
    /* Nesting far past the limit (each level an array holding an array): refused, no deep
     * recursion (the reader stops at the limit). */
    size_t levels = 20000;
    uint8_t *nest = calloc(1, 4 + levels * 5 + 16);
    assert_non_null(nest);
    size_t off = 0;
    /* top table {"a": A[ A[ A[ ... ] ] ]}: sizes written from the inside out */
    nest[off + 4] = 1, nest[off + 5] = 'a';
    size_t p = 6;
    for (size_t i = 0; i < levels; i++) {
        nest[p] = 'A';
        size_t inner_len = (levels - 1 - i) * 5;
        nest[p + 1] = (uint8_t)(inner_len >> 24), nest[p + 2] = (uint8_t)(inner_len >> 16);
        nest[p + 3] = (uint8_t)(inner_len >> 8), nest[p + 4] = (uint8_t)inner_len;
        p += 5;
    }
    size_t body = p - 4;
    nest[0] = (uint8_t)(body >> 24), nest[1] = (uint8_t)(body >> 16), nest[2] = (uint8_t)(body >> 8),
    nest[3] = (uint8_t)body;
    assert_int_equal(simul_amqp_table_parse(nest, p, &out), -E2BIG);
    /* The same bytes as a message's headers from a broker fail the frame, not the stack: a
     * method frame with a table is checked before the codec (connection.start). */
    free(nest);
    free(big);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_type_round_trips),
        cmocka_unit_test(typed_getters_accept_their_types_only),
        cmocka_unit_test(building_checks_ranges_keys_and_limits),
        cmocka_unit_test(hostile_bytes_refused),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_amqp_table");
}
