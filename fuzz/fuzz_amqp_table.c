/* fuzz_amqp_table.c — libFuzzer target for the field-table reader (simul_amqp_table_parse): any
 * bytes give a table or -EPROTO / -E2BIG, never a crash or a leak; a table read is within the
 * depth and item limits, encodes back to exactly the bytes it was read from, and those bytes read
 * again give the same encoding. Replayed by ctest fuzz.amqp_table over fuzz/corpus/amqp_table. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <simul/amqp.h>

static size_t depth_of(const simul_amqp_table *t, size_t *items)
{
    size_t d = 0;
    for (size_t i = 0; i < simul_amqp_table_count(t); i++) {
        const char *key;
        const simul_amqp_value *v = simul_amqp_table_at(t, i, &key);
        if (!v || (simul_amqp_table_is_array(t) ? key != NULL : key == NULL))
            abort();
        (*items)++;
        if (v->type == SIMUL_AMQP_T_TABLE || v->type == SIMUL_AMQP_T_ARRAY) {
            size_t s = depth_of(v->u.table, items);
            if (s > d)
                d = s;
        }
    }
    return d + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    simul_amqp_table *t = NULL;
    ssize_t n = simul_amqp_table_parse(data, size, &t);
    if (n < 0) {
        if ((n != -EPROTO && n != -E2BIG) || t)
            abort();
        return 0;
    }
    if (!t || (size_t)n > size || n < 4)
        abort();
    size_t items = 0;
    if (depth_of(t, &items) > SIMUL_AMQP_TABLE_MAX_DEPTH || items > SIMUL_AMQP_TABLE_MAX_ITEMS)
        abort();
    uint8_t *enc = malloc((size_t)n);
    if (!enc)
        abort();
    /* Bools read as 0/1: any other non-zero byte is written back as 1, so compare after one
     * normalising trip. */
    ssize_t m = simul_amqp_table_encode(t, enc, (size_t)n);
    if (m != n)
        abort();
    simul_amqp_table *t2 = NULL;
    if (simul_amqp_table_parse(enc, (size_t)m, &t2) != m)
        abort();
    uint8_t *enc2 = malloc((size_t)m);
    if (!enc2 || simul_amqp_table_encode(t2, enc2, (size_t)m) != m || memcmp(enc, enc2, (size_t)m))
        abort();
    simul_amqp_table *c = NULL;
    if (simul_amqp_table_copy(t2, &c) != 0 || simul_amqp_table_encode(c, enc2, (size_t)m) != m ||
        memcmp(enc, enc2, (size_t)m))
        abort();
    simul_amqp_table_free(c);
    free(enc2);
    simul_amqp_table_free(t2);
    free(enc);
    simul_amqp_table_free(t);
    return 0;
}
