/* table.c — AMQP 0-9-1 field tables with every type RabbitMQ uses (t b B s u I i l f d D S x T F A
 * V): the typed builder and reader, our own bounded wire reader and writer, and the bridge to the
 * librabbitmq codec's amqp_table_t. The idea: a table owns deep copies of everything it holds, so
 * what was declared survives for recovery, and every table that comes from the broker goes
 * through the bounded reader (depth, item count) before librabbitmq's recursive decoder sees it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>

#include <simul/amqp.h>

#include "internal.h"

typedef struct entry {
    char *key; /* NULL in an array */
    size_t klen;
    simul_amqp_value v; /* strings and sub-tables owned */
} entry;

struct simul_amqp_table {
    bool array;
    size_t n, cap;
    entry *e;
};

/* ---- building ------------------------------------------------------------------------------ */

static int new_common(simul_amqp_table **out, bool array)
{
    if (!out)
        return -EINVAL;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    (*out)->array = array;
    return 0;
}

int simul_amqp_table_new(simul_amqp_table **out)
{
    return new_common(out, false);
}

int simul_amqp_array_new(simul_amqp_table **out)
{
    return new_common(out, true);
}

static void value_free(simul_amqp_value *v)
{
    if (v->type == SIMUL_AMQP_T_STRING || v->type == SIMUL_AMQP_T_BYTES)
        free((void *)v->u.bytes.data);
    else if (v->type == SIMUL_AMQP_T_TABLE || v->type == SIMUL_AMQP_T_ARRAY)
        simul_amqp_table_free((simul_amqp_table *)v->u.table);
    v->type = SIMUL_AMQP_T_VOID;
}

void simul_amqp_table_free(simul_amqp_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].key);
        value_free(&t->e[i].v);
    }
    free(t->e);
    free(t);
}

bool simul_amqp_table_is_array(const simul_amqp_table *t)
{
    return t && t->array;
}

size_t simul_amqp_table_count(const simul_amqp_table *t)
{
    return t ? t->n : 0;
}

/* Nesting depth (a table without sub-tables: 1) and items (entries, nested ones included). */
static void measure(const simul_amqp_table *t, unsigned *depth, size_t *items)
{
    unsigned d = 0;
    for (size_t i = 0; i < t->n; i++) {
        const simul_amqp_value *v = &t->e[i].v;
        if ((v->type == SIMUL_AMQP_T_TABLE || v->type == SIMUL_AMQP_T_ARRAY) && v->u.table) {
            unsigned sd = 0;
            measure(v->u.table, &sd, items);
            if (sd > d)
                d = sd;
        }
    }
    *depth = d + 1;
    *items += t->n;
}

/* Type tags as C strings, for strchr: every integer width (in u.i), and every type there is. */
static const char int_types[] = {SIMUL_AMQP_T_I8,  SIMUL_AMQP_T_U8,  SIMUL_AMQP_T_I16,
                                 SIMUL_AMQP_T_U16, SIMUL_AMQP_T_I32, SIMUL_AMQP_T_U32,
                                 SIMUL_AMQP_T_I64, 0};
static const char all_types[] = {
    SIMUL_AMQP_T_VOID,   SIMUL_AMQP_T_BOOL,   SIMUL_AMQP_T_I8,        SIMUL_AMQP_T_U8,
    SIMUL_AMQP_T_I16,    SIMUL_AMQP_T_U16,    SIMUL_AMQP_T_I32,       SIMUL_AMQP_T_U32,
    SIMUL_AMQP_T_I64,    SIMUL_AMQP_T_FLOAT,  SIMUL_AMQP_T_DOUBLE,    SIMUL_AMQP_T_DECIMAL,
    SIMUL_AMQP_T_STRING, SIMUL_AMQP_T_BYTES,  SIMUL_AMQP_T_TIMESTAMP, SIMUL_AMQP_T_TABLE,
    SIMUL_AMQP_T_ARRAY,  0};

static bool type_in(char type, const char *types)
{
    return type != 0 && strchr(types, type) != NULL; /* strchr finds the terminator for 0 */
}

static bool is_int_type(char type)
{
    return type_in(type, int_types);
}

static bool valid_type(char type)
{
    return type_in(type, all_types);
}

static bool int_fits(char type, int64_t x)
{
    switch (type) {
    case SIMUL_AMQP_T_I8:
        return x >= INT8_MIN && x <= INT8_MAX;
    case SIMUL_AMQP_T_U8:
        return x >= 0 && x <= UINT8_MAX;
    case SIMUL_AMQP_T_I16:
        return x >= INT16_MIN && x <= INT16_MAX;
    case SIMUL_AMQP_T_U16:
        return x >= 0 && x <= UINT16_MAX;
    case SIMUL_AMQP_T_I32:
        return x >= INT32_MIN && x <= INT32_MAX;
    case SIMUL_AMQP_T_U32:
        return x >= 0 && x <= (int64_t)UINT32_MAX;
    default:
        return true;
    }
}

/* A deep copy of v into *d. */
static int value_copy(simul_amqp_value *d, const simul_amqp_value *v)
{
    *d = *v;
    if (v->type == SIMUL_AMQP_T_STRING || v->type == SIMUL_AMQP_T_BYTES) {
        if (v->u.bytes.len && !v->u.bytes.data)
            return -EINVAL;
        char *p = malloc(v->u.bytes.len + 1);
        if (!p)
            return -ENOMEM;
        if (v->u.bytes.len)
            memcpy(p, v->u.bytes.data, v->u.bytes.len);
        p[v->u.bytes.len] = 0; /* a convenience for C strings: not part of the value */
        d->u.bytes.data = p;
    } else if (v->type == SIMUL_AMQP_T_TABLE || v->type == SIMUL_AMQP_T_ARRAY) {
        simul_amqp_table *c = NULL;
        int rc = v->u.table ? simul_amqp_table_copy(v->u.table, &c)
                            : new_common(&c, v->type == SIMUL_AMQP_T_ARRAY);
        if (rc < 0)
            return rc;
        c->array = v->type == SIMUL_AMQP_T_ARRAY;
        d->u.table = c;
    }
    return 0;
}

int simul_amqp_table_copy(const simul_amqp_table *t, simul_amqp_table **out)
{
    if (!t || !out)
        return -EINVAL;
    simul_amqp_table *c = NULL;
    int rc = new_common(&c, t->array);
    if (rc < 0)
        return rc;
    if (t->n) {
        c->e = calloc(t->n, sizeof *c->e);
        if (!c->e) {
            free(c);
            return -ENOMEM;
        }
        c->cap = t->n;
    }
    for (size_t i = 0; i < t->n && rc == 0; i++) {
        entry *d = &c->e[i];
        if (t->e[i].key) {
            d->key = malloc(t->e[i].klen + 1);
            if (!d->key) {
                rc = -ENOMEM;
                break;
            }
            memcpy(d->key, t->e[i].key, t->e[i].klen + 1);
            d->klen = t->e[i].klen;
        }
        rc = value_copy(&d->v, &t->e[i].v);
        if (rc < 0)
            d->v.type = SIMUL_AMQP_T_VOID;
        c->n = i + 1;
    }
    if (rc < 0) {
        simul_amqp_table_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* The zeroed slot past the last entry, the array grown if need be (t->n is the caller's to count
 * once the slot is filled): NULL when out of memory. */
static entry *next_entry(simul_amqp_table *t)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        entry *ne = realloc(t->e, cap * sizeof *ne);
        if (!ne)
            return NULL;
        t->e = ne;
        t->cap = cap;
    }
    entry *e = &t->e[t->n];
    memset(e, 0, sizeof *e);
    return e;
}

static entry *find(const simul_amqp_table *t, const char *key)
{
    if (!t || t->array || !key)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].klen == kl && memcmp(t->e[i].key, key, kl) == 0)
            return &t->e[i];
    return NULL;
}

int simul_amqp_table_set(simul_amqp_table *t, const char *key, const simul_amqp_value *v)
{
    if (!t || !v || !valid_type(v->type) || (t->array ? key != NULL : key == NULL))
        return -EINVAL;
    if (key && strlen(key) > 255)
        return -EINVAL; /* a short string on the wire */
    if (!int_fits(v->type, v->u.i))
        return -ERANGE;
    if ((v->type == SIMUL_AMQP_T_TABLE || v->type == SIMUL_AMQP_T_ARRAY) && v->u.table) {
        unsigned d = 0;
        size_t items = 0;
        measure(v->u.table, &d, &items);
        if (d + 1 > SIMUL_AMQP_TABLE_MAX_DEPTH || items + t->n + 1 > SIMUL_AMQP_TABLE_MAX_ITEMS)
            return -E2BIG;
        if (v->u.table == t)
            return -EINVAL;
    }
    if (t->n + 1 > SIMUL_AMQP_TABLE_MAX_ITEMS)
        return -E2BIG;
    simul_amqp_value copy;
    int rc = value_copy(&copy, v);
    if (rc < 0)
        return rc;
    entry *e = find(t, key);
    if (e) { /* a key set again replaces its value */
        value_free(&e->v);
        e->v = copy;
        return 0;
    }
    e = next_entry(t);
    if (!e) {
        value_free(&copy);
        return -ENOMEM;
    }
    if (key) {
        e->klen = strlen(key);
        e->key = malloc(e->klen + 1);
        if (!e->key) {
            value_free(&copy);
            return -ENOMEM;
        }
        memcpy(e->key, key, e->klen + 1);
    }
    e->v = copy;
    t->n++;
    return 0;
}

/* The typed setters: each names one value of its type and goes through the one checked path
 * above (simul_amqp_table_set), so the checks live in one place. */
static int set_value(simul_amqp_table *t, const char *key, simul_amqp_value v)
{
    return simul_amqp_table_set(t, key, &v);
}

static int set_bytes(simul_amqp_table *t, const char *key, char type, const void *p, size_t n)
{
    return set_value(t, key, (simul_amqp_value){.type = type, .u.bytes = {.data = p, .len = n}});
}

int simul_amqp_table_set_void(simul_amqp_table *t, const char *key)
{
    return set_value(t, key, (simul_amqp_value){.type = SIMUL_AMQP_T_VOID});
}

int simul_amqp_table_set_bool(simul_amqp_table *t, const char *key, bool b)
{
    return set_value(t, key, (simul_amqp_value){.type = SIMUL_AMQP_T_BOOL, .u.boolean = b});
}

int simul_amqp_table_set_int(simul_amqp_table *t, const char *key, char type, int64_t x)
{
    if (!is_int_type(type))
        return -EINVAL;
    return set_value(t, key, (simul_amqp_value){.type = type, .u.i = x});
}

int simul_amqp_table_set_float(simul_amqp_table *t, const char *key, float f)
{
    return set_value(t, key, (simul_amqp_value){.type = SIMUL_AMQP_T_FLOAT, .u.f = f});
}

int simul_amqp_table_set_double(simul_amqp_table *t, const char *key, double d)
{
    return set_value(t, key, (simul_amqp_value){.type = SIMUL_AMQP_T_DOUBLE, .u.d = d});
}

int simul_amqp_table_set_decimal(simul_amqp_table *t, const char *key, uint8_t scale,
                                 uint32_t value)
{
    return set_value(t, key, (simul_amqp_value){.type = SIMUL_AMQP_T_DECIMAL,
                                                .u.decimal = {.scale = scale, .value = value}});
}

int simul_amqp_table_set_timestamp(simul_amqp_table *t, const char *key, uint64_t seconds)
{
    return set_value(t, key,
                     (simul_amqp_value){.type = SIMUL_AMQP_T_TIMESTAMP, .u.timestamp = seconds});
}

int simul_amqp_table_set_string(simul_amqp_table *t, const char *key, const char *s)
{
    if (!s)
        return -EINVAL;
    return set_bytes(t, key, SIMUL_AMQP_T_STRING, s, strlen(s));
}

int simul_amqp_table_set_bytes(simul_amqp_table *t, const char *key, const void *p, size_t n)
{
    return set_bytes(t, key, SIMUL_AMQP_T_BYTES, p, n);
}

int simul_amqp_table_set_table(simul_amqp_table *t, const char *key, const simul_amqp_table *sub)
{
    if (!sub)
        return -EINVAL;
    return set_value(t, key, (simul_amqp_value){
                                 .type = sub->array ? SIMUL_AMQP_T_ARRAY : SIMUL_AMQP_T_TABLE,
                                 .u.table = sub});
}

/* ---- reading ------------------------------------------------------------------------------- */

const simul_amqp_value *simul_amqp_table_at(const simul_amqp_table *t, size_t i, const char **key)
{
    if (key)
        *key = NULL;
    if (!t || i >= t->n)
        return NULL;
    if (key)
        *key = t->e[i].key;
    return &t->e[i].v;
}

const simul_amqp_value *simul_amqp_table_get(const simul_amqp_table *t, const char *key)
{
    entry *e = find(t, key);
    return e ? &e->v : NULL;
}

/* The value at key when its type is one of types (the typed getters' common part): 0 and *v,
 * -ENOENT (no such key), -EINVAL (another type). */
static int get_typed(const simul_amqp_table *t, const char *key, const char *types,
                     const simul_amqp_value **v)
{
    *v = simul_amqp_table_get(t, key);
    if (!*v)
        return -ENOENT;
    return type_in((*v)->type, types) ? 0 : -EINVAL;
}

int simul_amqp_table_get_int(const simul_amqp_table *t, const char *key, int64_t *out)
{
    const simul_amqp_value *v;
    int rc = get_typed(t, key, int_types, &v);
    if (rc == -EINVAL && v->type == SIMUL_AMQP_T_TIMESTAMP) {
        if (v->u.timestamp > INT64_MAX)
            return -ERANGE;
        *out = (int64_t)v->u.timestamp;
        return 0;
    }
    if (rc == 0)
        *out = v->u.i;
    return rc;
}

int simul_amqp_table_get_bool(const simul_amqp_table *t, const char *key, bool *out)
{
    const simul_amqp_value *v;
    int rc = get_typed(t, key, (const char[]){SIMUL_AMQP_T_BOOL, 0}, &v);
    if (rc == 0)
        *out = v->u.boolean;
    return rc;
}

int simul_amqp_table_get_double(const simul_amqp_table *t, const char *key, double *out)
{
    const simul_amqp_value *v;
    int rc = get_typed(
        t, key, (const char[]){SIMUL_AMQP_T_FLOAT, SIMUL_AMQP_T_DOUBLE, SIMUL_AMQP_T_DECIMAL, 0},
        &v);
    if (rc < 0)
        return rc;
    if (v->type == SIMUL_AMQP_T_FLOAT)
        *out = v->u.f;
    else if (v->type == SIMUL_AMQP_T_DOUBLE)
        *out = v->u.d;
    else {
        double scale = 1; /* 10^scale without libm */
        for (unsigned i = 0; i < v->u.decimal.scale && scale < 1e300; i++)
            scale *= 10;
        *out = v->u.decimal.value / scale;
    }
    return 0;
}

int simul_amqp_table_get_string(const simul_amqp_table *t, const char *key, const char **s,
                                size_t *len)
{
    const simul_amqp_value *v;
    int rc = get_typed(t, key, (const char[]){SIMUL_AMQP_T_STRING, SIMUL_AMQP_T_BYTES, 0}, &v);
    if (rc < 0)
        return rc;
    *s = v->u.bytes.data;
    if (len)
        *len = v->u.bytes.len;
    return 0;
}

int simul_amqp_table_get_table(const simul_amqp_table *t, const char *key,
                               const simul_amqp_table **out)
{
    const simul_amqp_value *v;
    int rc = get_typed(t, key, (const char[]){SIMUL_AMQP_T_TABLE, SIMUL_AMQP_T_ARRAY, 0}, &v);
    if (rc == 0)
        *out = v->u.table;
    return rc;
}

/* ---- the wire: a bounded reader and a writer (pure) ---------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t len, off;
    size_t items;
} rd;

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x = x << 8 | p[i];
    return x;
}

static int read_entries(rd *r, size_t end, simul_amqp_table *t, unsigned depth);

static int read_value(rd *r, size_t end, simul_amqp_value *v, unsigned depth)
{
    if (r->off >= end)
        return -EPROTO;
    char type = (char)r->p[r->off++];
    v->type = type;
    size_t need;
    switch (type) {
    case SIMUL_AMQP_T_VOID:
        return 0;
    case SIMUL_AMQP_T_BOOL:
    case SIMUL_AMQP_T_I8:
    case SIMUL_AMQP_T_U8:
        need = 1;
        break;
    case SIMUL_AMQP_T_I16:
    case SIMUL_AMQP_T_U16:
        need = 2;
        break;
    case SIMUL_AMQP_T_I32:
    case SIMUL_AMQP_T_U32:
    case SIMUL_AMQP_T_FLOAT:
        need = 4;
        break;
    case SIMUL_AMQP_T_I64:
    case SIMUL_AMQP_T_DOUBLE:
    case SIMUL_AMQP_T_TIMESTAMP:
        need = 8;
        break;
    case SIMUL_AMQP_T_DECIMAL:
        need = 5;
        break;
    case SIMUL_AMQP_T_STRING:
    case SIMUL_AMQP_T_BYTES:
    case SIMUL_AMQP_T_TABLE:
    case SIMUL_AMQP_T_ARRAY:
        need = 4;
        break;
    default:
        v->type = SIMUL_AMQP_T_VOID;
        return -EPROTO; /* a type RabbitMQ does not use (or garbage) */
    }
    if (end - r->off < need) {
        v->type = SIMUL_AMQP_T_VOID;
        return -EPROTO;
    }
    const uint8_t *p = r->p + r->off;
    r->off += need;
    switch (type) {
    case SIMUL_AMQP_T_BOOL:
        v->u.boolean = p[0] != 0;
        return 0;
    case SIMUL_AMQP_T_I8:
        v->u.i = (int8_t)p[0];
        return 0;
    case SIMUL_AMQP_T_U8:
        v->u.i = p[0];
        return 0;
    case SIMUL_AMQP_T_I16:
        v->u.i = (int16_t)be(p, 2);
        return 0;
    case SIMUL_AMQP_T_U16:
        v->u.i = (uint16_t)be(p, 2);
        return 0;
    case SIMUL_AMQP_T_I32:
        v->u.i = (int32_t)be(p, 4);
        return 0;
    case SIMUL_AMQP_T_U32:
        v->u.i = (uint32_t)be(p, 4);
        return 0;
    case SIMUL_AMQP_T_I64:
        v->u.i = (int64_t)be(p, 8);
        return 0;
    case SIMUL_AMQP_T_TIMESTAMP:
        v->u.timestamp = be(p, 8);
        return 0;
    case SIMUL_AMQP_T_FLOAT: {
        uint32_t b = (uint32_t)be(p, 4);
        memcpy(&v->u.f, &b, 4);
        return 0;
    }
    case SIMUL_AMQP_T_DOUBLE: {
        uint64_t b = be(p, 8);
        memcpy(&v->u.d, &b, 8);
        return 0;
    }
    case SIMUL_AMQP_T_DECIMAL:
        v->u.decimal.scale = p[0];
        v->u.decimal.value = (uint32_t)be(p + 1, 4);
        return 0;
    default:
        break;
    }
    size_t n = (size_t)be(p, 4);
    if (end - r->off < n) {
        v->type = SIMUL_AMQP_T_VOID;
        return -EPROTO;
    }
    if (type == SIMUL_AMQP_T_STRING || type == SIMUL_AMQP_T_BYTES) {
        char *s = malloc(n + 1);
        if (!s) {
            v->type = SIMUL_AMQP_T_VOID;
            return -ENOMEM;
        }
        memcpy(s, r->p + r->off, n);
        s[n] = 0;
        v->u.bytes.data = s;
        v->u.bytes.len = n;
        r->off += n;
        return 0;
    }
    if (depth + 1 > SIMUL_AMQP_TABLE_MAX_DEPTH) {
        v->type = SIMUL_AMQP_T_VOID;
        return -E2BIG;
    }
    simul_amqp_table *sub = NULL;
    int rc = new_common(&sub, type == SIMUL_AMQP_T_ARRAY);
    if (rc < 0) {
        v->type = SIMUL_AMQP_T_VOID;
        return rc;
    }
    v->u.table = sub; /* owned by v from here, freed with it on any error */
    return read_entries(r, r->off + n, sub, depth + 1);
}

static int read_entries(rd *r, size_t end, simul_amqp_table *t, unsigned depth)
{
    while (r->off < end) {
        if (++r->items > SIMUL_AMQP_TABLE_MAX_ITEMS)
            return -E2BIG;
        entry *e = next_entry(t);
        if (!e)
            return -ENOMEM;
        if (!t->array) {
            size_t kl = r->p[r->off++];
            if (end - r->off < kl)
                return -EPROTO;
            e->key = malloc(kl + 1);
            if (!e->key)
                return -ENOMEM;
            memcpy(e->key, r->p + r->off, kl);
            e->key[kl] = 0;
            e->klen = kl;
            r->off += kl;
        }
        t->n++; /* counted now: its key and value are freed with the table on an error */
        int rc = read_value(r, end, &e->v, depth);
        if (rc < 0)
            return rc;
    }
    return r->off == end ? 0 : -EPROTO;
}

ssize_t simul_amqp_table_parse(const void *data, size_t len, simul_amqp_table **out)
{
    if (!out || (len && !data))
        return -EINVAL;
    *out = NULL;
    if (len < 4)
        return -EPROTO;
    rd r = {data, len, 4, 0};
    size_t n = (size_t)be(data, 4);
    if (n > len - 4)
        return -EPROTO;
    simul_amqp_table *t = NULL;
    int rc = new_common(&t, false);
    if (rc < 0)
        return rc;
    rc = read_entries(&r, 4 + n, t, 1);
    if (rc < 0) {
        simul_amqp_table_free(t);
        return rc;
    }
    *out = t;
    return (ssize_t)(4 + n);
}

typedef struct wr {
    uint8_t *p;
    size_t cap, off;
    bool over;
} wr;

static void put(wr *w, uint64_t x, int n)
{
    if (w->cap - w->off < (size_t)n) {
        w->over = true;
        w->off = w->cap;
        return;
    }
    for (int i = n - 1; i >= 0; i--) {
        w->p[w->off + (size_t)i] = (uint8_t)x;
        x >>= 8;
    }
    w->off += (size_t)n;
}

static void putb(wr *w, const void *b, size_t n)
{
    if (w->cap - w->off < n) {
        w->over = true;
        w->off = w->cap;
        return;
    }
    if (n)
        memcpy(w->p + w->off, b, n);
    w->off += n;
}

static void write_table(wr *w, const simul_amqp_table *t);

static void write_value(wr *w, const simul_amqp_value *v)
{
    put(w, (uint8_t)v->type, 1);
    switch (v->type) {
    case SIMUL_AMQP_T_BOOL:
        put(w, v->u.boolean ? 1 : 0, 1);
        break;
    case SIMUL_AMQP_T_I8:
    case SIMUL_AMQP_T_U8:
        put(w, (uint64_t)v->u.i, 1);
        break;
    case SIMUL_AMQP_T_I16:
    case SIMUL_AMQP_T_U16:
        put(w, (uint64_t)v->u.i, 2);
        break;
    case SIMUL_AMQP_T_I32:
    case SIMUL_AMQP_T_U32:
        put(w, (uint64_t)v->u.i, 4);
        break;
    case SIMUL_AMQP_T_I64:
        put(w, (uint64_t)v->u.i, 8);
        break;
    case SIMUL_AMQP_T_TIMESTAMP:
        put(w, v->u.timestamp, 8);
        break;
    case SIMUL_AMQP_T_FLOAT: {
        uint32_t b;
        memcpy(&b, &v->u.f, 4);
        put(w, b, 4);
        break;
    }
    case SIMUL_AMQP_T_DOUBLE: {
        uint64_t b;
        memcpy(&b, &v->u.d, 8);
        put(w, b, 8);
        break;
    }
    case SIMUL_AMQP_T_DECIMAL:
        put(w, v->u.decimal.scale, 1);
        put(w, v->u.decimal.value, 4);
        break;
    case SIMUL_AMQP_T_STRING:
    case SIMUL_AMQP_T_BYTES:
        if (v->u.bytes.len > UINT32_MAX) {
            w->over = true;
            return;
        }
        put(w, v->u.bytes.len, 4);
        putb(w, v->u.bytes.data, v->u.bytes.len);
        break;
    case SIMUL_AMQP_T_TABLE:
    case SIMUL_AMQP_T_ARRAY:
        write_table(w, v->u.table);
        break;
    default:
        break;
    }
}

static void write_table(wr *w, const simul_amqp_table *t)
{
    size_t at = w->off;
    put(w, 0, 4);
    for (size_t i = 0; t && i < t->n; i++) {
        if (!t->array) {
            put(w, t->e[i].klen, 1);
            putb(w, t->e[i].key, t->e[i].klen);
        }
        write_value(w, &t->e[i].v);
    }
    size_t n = w->off - at - 4;
    if (!w->over && n <= UINT32_MAX) {
        for (int i = 3; i >= 0; i--) {
            w->p[at + (size_t)i] = (uint8_t)n;
            n >>= 8;
        }
    } else {
        w->over = true;
    }
}

ssize_t simul_amqp_table_encode(const simul_amqp_table *t, void *buf, size_t cap)
{
    if (!t || (cap && !buf))
        return -EINVAL;
    wr w = {buf, cap, 0, false};
    write_table(&w, t);
    if (w.over)
        return -EMSGSIZE;
    return (ssize_t)w.off;
}

/* ---- the bridge to librabbitmq's codec ----------------------------------------------------- */

static int to_field(amqp_pool_t *pool, const simul_amqp_value *v, amqp_field_value_t *f);

static int to_entries(amqp_pool_t *pool, const simul_amqp_table *t, amqp_table_t *tab,
                      amqp_array_t *arr)
{
    size_t n = t ? t->n : 0;
    void *mem = NULL;
    if (n) {
        mem = amqp_pool_alloc(pool, n * (tab ? sizeof(amqp_table_entry_t)
                                             : sizeof(amqp_field_value_t)));
        if (!mem)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (tab) {
            amqp_table_entry_t *e = (amqp_table_entry_t *)mem + i;
            e->key.len = t->e[i].klen;
            e->key.bytes = t->e[i].key;
            rc = to_field(pool, &t->e[i].v, &e->value);
        } else {
            rc = to_field(pool, &t->e[i].v, (amqp_field_value_t *)mem + i);
        }
        if (rc < 0)
            return rc;
    }
    if (tab) {
        tab->num_entries = (int)n;
        tab->entries = mem;
    } else {
        arr->num_entries = (int)n;
        arr->entries = mem;
    }
    return 0;
}

static int to_field(amqp_pool_t *pool, const simul_amqp_value *v, amqp_field_value_t *f)
{
    memset(f, 0, sizeof *f);
    f->kind = (uint8_t)v->type;
    switch (v->type) {
    case SIMUL_AMQP_T_BOOL:
        f->value.boolean = v->u.boolean;
        break;
    case SIMUL_AMQP_T_I8:
        f->value.i8 = (int8_t)v->u.i;
        break;
    case SIMUL_AMQP_T_U8:
        f->value.u8 = (uint8_t)v->u.i;
        break;
    case SIMUL_AMQP_T_I16:
        f->value.i16 = (int16_t)v->u.i;
        break;
    case SIMUL_AMQP_T_U16:
        f->value.u16 = (uint16_t)v->u.i;
        break;
    case SIMUL_AMQP_T_I32:
        f->value.i32 = (int32_t)v->u.i;
        break;
    case SIMUL_AMQP_T_U32:
        f->value.u32 = (uint32_t)v->u.i;
        break;
    case SIMUL_AMQP_T_I64:
        f->value.i64 = v->u.i;
        break;
    case SIMUL_AMQP_T_TIMESTAMP:
        f->value.u64 = v->u.timestamp;
        break;
    case SIMUL_AMQP_T_FLOAT:
        f->value.f32 = v->u.f;
        break;
    case SIMUL_AMQP_T_DOUBLE:
        f->value.f64 = v->u.d;
        break;
    case SIMUL_AMQP_T_DECIMAL:
        f->value.decimal.decimals = v->u.decimal.scale;
        f->value.decimal.value = v->u.decimal.value;
        break;
    case SIMUL_AMQP_T_STRING:
    case SIMUL_AMQP_T_BYTES:
        f->value.bytes.len = v->u.bytes.len;
        f->value.bytes.bytes = (void *)v->u.bytes.data;
        break;
    case SIMUL_AMQP_T_TABLE:
        return to_entries(pool, v->u.table, &f->value.table, NULL);
    case SIMUL_AMQP_T_ARRAY:
        return to_entries(pool, v->u.table, NULL, &f->value.array);
    default:
        break;
    }
    return 0;
}

/* t as the codec's table, in pool (pointing into t: valid while both live). */
int amqp__table_to_amqp(amqp_pool_t *pool, const simul_amqp_table *t, amqp_table_t *out)
{
    out->num_entries = 0;
    out->entries = NULL;
    if (!t)
        return 0;
    return to_entries(pool, t, out, NULL);
}

/* The legacy argument list (key, string or integer, or a typed value) as a table we own. */
int amqp__args_table(const simul_amqp_arg *a, size_t n, simul_amqp_table **out)
{
    *out = NULL;
    if (!n)
        return 0;
    if (!a)
        return -EINVAL;
    simul_amqp_table *t = NULL;
    int rc = simul_amqp_table_new(&t);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *key = a[i].key ? a[i].key : "";
        if (a[i].value)
            rc = simul_amqp_table_set(t, key, a[i].value);
        else if (a[i].str)
            rc = simul_amqp_table_set_string(t, key, a[i].str);
        else
            rc = simul_amqp_table_set_int(t, key, SIMUL_AMQP_T_I64, a[i].integer);
    }
    if (rc < 0) {
        simul_amqp_table_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* Methods a broker never sends whose arguments carry a table: refused before the codec decodes
 * them (its table decoder recurses without a bound). connection.start's server properties are
 * read with our bounded reader first. */
int amqp__method_guard(uint32_t id, const uint8_t *args, size_t len)
{
    switch (id) {
    case AMQP_CONNECTION_START_OK_METHOD:
    case AMQP_EXCHANGE_DECLARE_METHOD:
    case AMQP_EXCHANGE_BIND_METHOD:
    case AMQP_EXCHANGE_UNBIND_METHOD:
    case AMQP_QUEUE_DECLARE_METHOD:
    case AMQP_QUEUE_BIND_METHOD:
    case AMQP_QUEUE_UNBIND_METHOD:
    case AMQP_BASIC_CONSUME_METHOD:
        return -EPROTO;
    case AMQP_CONNECTION_START_METHOD: {
        if (len < 2)
            return -EPROTO;
        simul_amqp_table *t = NULL;
        ssize_t n = simul_amqp_table_parse(args + 2, len - 2, &t);
        simul_amqp_table_free(t);
        return n < 0 ? -EPROTO : 0;
    }
    default:
        return 0;
    }
}

/* The headers table of a content header's property list (after class, weight and body size), read
 * with our bounded reader: 0 and *out (NULL when there are no headers), -EPROTO. */
int amqp__props_headers(const uint8_t *p, size_t len, simul_amqp_table **out)
{
    *out = NULL;
    size_t off = 0;
    uint16_t flags = 0;
    bool first = true;
    for (;;) { /* flag words: bit 0 says another follows */
        if (len - off < 2)
            return -EPROTO;
        uint16_t w = (uint16_t)be(p + off, 2);
        off += 2;
        if (first)
            flags = w;
        first = false;
        if (!(w & 1))
            break;
    }
    if (!(flags & AMQP_BASIC_HEADERS_FLAG))
        return 0;
    for (uint16_t f = AMQP_BASIC_CONTENT_TYPE_FLAG; f > AMQP_BASIC_HEADERS_FLAG; f >>= 1) {
        if (!(flags & f))
            continue;
        if (len - off < 1 || len - off - 1 < p[off]) /* a short string */
            return -EPROTO;
        off += 1 + (size_t)p[off];
    }
    ssize_t n = simul_amqp_table_parse(p + off, len - off, out);
    return n < 0 ? -EPROTO : 0;
}
