/* resp_dump.h — a reply tree written back as canonical RESP3 (test and fuzz helper): two trees
 * are equal when their dumps are, and a dump parses back to the same dump. Errors are written as
 * blob errors, attributes before their value, maps and attributes by pairs. */
#ifndef SIMUL_TEST_RESP_DUMP_H
#define SIMUL_TEST_RESP_DUMP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul/redis.h>

typedef struct resp_dump {
    char *s;
    size_t len, cap;
} resp_dump;

static inline void dump_put(resp_dump *d, const void *p, size_t n)
{
    if (d->cap - d->len < n + 1) {
        size_t cap = d->cap ? d->cap : 256;
        while (cap - d->len < n + 1)
            cap *= 2;
        d->s = realloc(d->s, cap);
        if (!d->s)
            abort();
        d->cap = cap;
    }
    memcpy(d->s + d->len, p, n);
    d->len += n;
    d->s[d->len] = '\0';
}

static inline void dump_head(resp_dump *d, char c, long long v)
{
    char h[32];
    int n = snprintf(h, sizeof h, "%c%lld\r\n", c, v);
    dump_put(d, h, (size_t)n);
}

static inline void resp_dump_reply(resp_dump *d, const simul_redis_reply *r)
{
    if (r->attrs)
        resp_dump_reply(d, r->attrs);
    switch (r->type) {
    case SIMUL_REDIS_STATUS:
        dump_put(d, "+", 1);
        dump_put(d, r->str, r->len);
        dump_put(d, "\r\n", 2);
        break;
    case SIMUL_REDIS_ERROR:
    case SIMUL_REDIS_STRING:
        dump_head(d, r->type == SIMUL_REDIS_ERROR ? '!' : '$', (long long)r->len);
        dump_put(d, r->str, r->len);
        dump_put(d, "\r\n", 2);
        break;
    case SIMUL_REDIS_VERBATIM:
        dump_head(d, '=', (long long)r->len + 4);
        dump_put(d, r->vtype, 3);
        dump_put(d, ":", 1);
        dump_put(d, r->str, r->len);
        dump_put(d, "\r\n", 2);
        break;
    case SIMUL_REDIS_INTEGER:
        dump_head(d, ':', r->integer);
        break;
    case SIMUL_REDIS_NIL:
        dump_put(d, "_\r\n", 3);
        break;
    case SIMUL_REDIS_BOOL:
        dump_put(d, r->integer ? "#t\r\n" : "#f\r\n", 4);
        break;
    case SIMUL_REDIS_DOUBLE:
    case SIMUL_REDIS_BIGNUM:
        dump_put(d, r->type == SIMUL_REDIS_DOUBLE ? "," : "(", 1);
        dump_put(d, r->str, r->len);
        dump_put(d, "\r\n", 2);
        break;
    case SIMUL_REDIS_ARRAY:
    case SIMUL_REDIS_SET:
    case SIMUL_REDIS_PUSH:
    case SIMUL_REDIS_MAP:
    case SIMUL_REDIS_ATTRIBUTE: {
        static const char bytes[] = {[SIMUL_REDIS_ARRAY] = '*',
                                     [SIMUL_REDIS_SET] = '~',
                                     [SIMUL_REDIS_PUSH] = '>',
                                     [SIMUL_REDIS_MAP] = '%',
                                     [SIMUL_REDIS_ATTRIBUTE] = '|'};
        int pairs = r->type == SIMUL_REDIS_MAP || r->type == SIMUL_REDIS_ATTRIBUTE;
        dump_head(d, bytes[r->type], (long long)(pairs ? r->len / 2 : r->len));
        for (size_t i = 0; i < r->len; i++)
            resp_dump_reply(d, &r->elem[i]);
        break;
    }
    default:
        abort(); /* a node of no known type */
    }
}

#endif /* SIMUL_TEST_RESP_DUMP_H */
