/* cache.c — client-side caching: CLIENT TRACKING ON (RESP3), single-key reads answered from
 * memory, the server's invalidation pushes dropping the entries of a changed key, LRU under a
 * byte bound. The idea that keeps it correct: an invalidation travels on the same connection as
 * the replies, so a reply is stale only if an invalidation came after it; every invalidation bumps
 * a counter, each reply records the counter when it was matched, and a reply is kept only if the
 * counter has not moved by the time its caller stores it. A new connection empties the cache. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"

#define BUCKETS_MIN 256
#define ENTRY_OVERHEAD 96 /* the record and the allocator's share, counted against the bound */

typedef struct entry {
    struct entry *hnext;       /* bucket chain by command */
    struct entry *knext;       /* bucket chain by key */
    struct entry *prev, *next; /* LRU list, most recent first */
    uint64_t hash, khash;
    char *cmd; /* the encoded command, then the key, then the reply (RESP3): one allocation */
    size_t cmdlen;
    const char *key;
    size_t keylen;
    const char *resp;
    size_t resplen;
    size_t bytes;
} entry;

struct redis_cache {
    entry **byhash, **bykey;
    size_t nb, count, bytes, max;
    entry *head, *tail;
};

static const char *const cacheable[] = {
    "GET",     "GETRANGE", "STRLEN", "EXISTS",    "TYPE",       "HGET",     "HMGET",
    "HGETALL", "HEXISTS",  "HLEN",   "HKEYS",     "HVALS",      "HSTRLEN",  "LINDEX",
    "LLEN",    "LRANGE",   "SCARD",  "SISMEMBER", "SMISMEMBER", "SMEMBERS", "ZCARD",
    "ZSCORE",  "ZMSCORE",  "ZRANGE", "ZRANK",     "ZREVRANK",   "ZCOUNT"};

bool redis__cacheable_name(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof cacheable / sizeof cacheable[0]; i++)
        if (n == strlen(cacheable[i]) && strncasecmp(name, cacheable[i], n) == 0)
            return true;
    return false;
}

bool redis__cacheable(const simul_redis_conn *c, int argc, const char *const *argv,
                      const size_t *argvlen)
{
    if (!c->cache || argc < 2 || (c->proto != 3 && !(c->tracking2 && c->inval)))
        return false;
    return redis__cacheable_name(argv[0], argvlen ? argvlen[0] : strlen(argv[0]));
}

static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

/* ---- the reply as RESP3 bytes (a hit parses them again: a fresh tree the caller owns) ------ */

static int put(simul_redis_buf *b, const void *p, size_t n)
{
    if (simul_redis_buf_reserve(b, n) < 0)
        return -ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int head(simul_redis_buf *b, char t, long long n)
{
    char h[32];
    int k = snprintf(h, sizeof h, "%c%lld\r\n", t, n);
    return put(b, h, (size_t)k);
}

static int write_reply(simul_redis_buf *b, const simul_redis_reply *r, unsigned depth)
{
    if (depth > SIMUL_REDIS_DEPTH_MAX)
        return -EMSGSIZE;
    int rc = 0;
    if (r->attrs)
        rc = write_reply(b, r->attrs, depth + 1);
    char t = 0;
    switch (r->type) {
    case SIMUL_REDIS_STATUS:
        t = '+';
        break;
    case SIMUL_REDIS_DOUBLE:
        t = ',';
        break;
    case SIMUL_REDIS_BIGNUM:
        t = '(';
        break;
    case SIMUL_REDIS_INTEGER:
        return rc < 0 ? rc : head(b, ':', r->integer);
    case SIMUL_REDIS_BOOL:
        return rc < 0 ? rc : put(b, r->integer ? "#t\r\n" : "#f\r\n", 4);
    case SIMUL_REDIS_NIL:
        return rc < 0 ? rc : put(b, "_\r\n", 3);
    case SIMUL_REDIS_STRING:
    case SIMUL_REDIS_ERROR:
        if (rc == 0)
            rc = head(b, r->type == SIMUL_REDIS_STRING ? '$' : '!', (long long)r->len);
        if (rc == 0)
            rc = put(b, r->str, r->len);
        return rc < 0 ? rc : put(b, "\r\n", 2);
    case SIMUL_REDIS_VERBATIM:
        if (rc == 0)
            rc = head(b, '=', (long long)r->len + 4);
        if (rc == 0)
            rc = put(b, r->vtype, 3);
        if (rc == 0)
            rc = put(b, ":", 1);
        if (rc == 0)
            rc = put(b, r->str, r->len);
        return rc < 0 ? rc : put(b, "\r\n", 2);
    case SIMUL_REDIS_ARRAY:
    case SIMUL_REDIS_SET:
    case SIMUL_REDIS_PUSH:
    case SIMUL_REDIS_MAP:
    case SIMUL_REDIS_ATTRIBUTE: {
        bool pairs = r->type == SIMUL_REDIS_MAP || r->type == SIMUL_REDIS_ATTRIBUTE;
        char a = r->type == SIMUL_REDIS_ARRAY  ? '*'
                 : r->type == SIMUL_REDIS_SET  ? '~'
                 : r->type == SIMUL_REDIS_PUSH ? '>'
                 : r->type == SIMUL_REDIS_MAP  ? '%'
                                               : '|';
        if (rc == 0)
            rc = head(b, a, (long long)(pairs ? r->len / 2 : r->len));
        for (size_t i = 0; rc == 0 && i < r->len; i++)
            rc = write_reply(b, &r->elem[i], depth + 1);
        return rc;
    }
    default:
        return -EPROTO;
    }
    /* Simple lines: no CR or LF inside (a status never has one; a double's and a big number's
     * text neither). */
    if (rc == 0)
        rc = put(b, &t, 1);
    if (rc == 0)
        rc = put(b, r->str, r->len);
    return rc < 0 ? rc : put(b, "\r\n", 2);
}

/* ---- the table ------------------------------------------------------------------------------ */

int redis__cache_new(simul_redis_conn *c)
{
    struct redis_cache *k = calloc(1, sizeof *k);
    if (!k)
        return -ENOMEM;
    k->nb = BUCKETS_MIN;
    k->byhash = calloc(k->nb, sizeof *k->byhash);
    k->bykey = calloc(k->nb, sizeof *k->bykey);
    if (!k->byhash || !k->bykey) {
        free(k->byhash);
        free(k->bykey);
        free(k);
        return -ENOMEM;
    }
    k->max = c->o.cache_bytes;
    c->cache = k;
    return 0;
}

static void unlink_entry(struct redis_cache *k, entry *e)
{
    for (entry **pp = &k->byhash[e->hash % k->nb]; *pp; pp = &(*pp)->hnext)
        if (*pp == e) {
            *pp = e->hnext;
            break;
        }
    for (entry **pp = &k->bykey[e->khash % k->nb]; *pp; pp = &(*pp)->knext)
        if (*pp == e) {
            *pp = e->knext;
            break;
        }
    if (e->prev)
        e->prev->next = e->next;
    else
        k->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        k->tail = e->prev;
    k->count--;
    k->bytes -= e->bytes;
    free(e->cmd);
    free(e);
}

void redis__cache_flush(simul_redis_conn *c)
{
    struct redis_cache *k = c->cache;
    if (!k)
        return;
    c->inval_seq++;
    while (k->head)
        unlink_entry(k, k->head);
    c->st.cache_bytes = 0;
}

void redis__cache_free(simul_redis_conn *c)
{
    struct redis_cache *k = c->cache;
    if (!k)
        return;
    redis__cache_flush(c);
    free(k->byhash);
    free(k->bykey);
    free(k);
    c->cache = NULL;
}

static void grow(struct redis_cache *k)
{
    size_t nb = k->nb * 2;
    entry **bh = calloc(nb, sizeof *bh), **bk = calloc(nb, sizeof *bk);
    if (!bh || !bk) {
        free(bh);
        free(bk);
        return; /* longer chains, still correct */
    }
    for (entry *e = k->head; e; e = e->next) {
        e->hnext = bh[e->hash % nb];
        bh[e->hash % nb] = e;
        e->knext = bk[e->khash % nb];
        bk[e->khash % nb] = e;
    }
    free(k->byhash);
    free(k->bykey);
    k->byhash = bh;
    k->bykey = bk;
    k->nb = nb;
}

static entry *lookup(struct redis_cache *k, const char *cmd, size_t n, uint64_t h)
{
    for (entry *e = k->byhash[h % k->nb]; e; e = e->hnext)
        if (e->hash == h && e->cmdlen == n && memcmp(e->cmd, cmd, n) == 0)
            return e;
    return NULL;
}

static void touch(struct redis_cache *k, entry *e)
{
    if (k->head == e)
        return;
    e->prev->next = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        k->tail = e->prev;
    e->prev = NULL;
    e->next = k->head;
    k->head->prev = e;
    k->head = e;
}

static void store(simul_redis_conn *c, const simul_redis_buf *cmd, uint64_t h, const char *key,
                  size_t keylen, const simul_redis_reply *r)
{
    struct redis_cache *k = c->cache;
    simul_redis_buf resp = {0};
    if (write_reply(&resp, r, 0) < 0) {
        simul_redis_buf_free(&resp);
        return;
    }
    size_t bytes = cmd->len + keylen + resp.len + ENTRY_OVERHEAD;
    entry *e = NULL;
    if (bytes <= k->max && !lookup(k, cmd->data, cmd->len, h))
        e = calloc(1, sizeof *e);
    if (e)
        e->cmd = malloc(cmd->len + keylen + resp.len);
    if (!e || !e->cmd) {
        free(e);
        simul_redis_buf_free(&resp);
        return;
    }
    memcpy(e->cmd, cmd->data, cmd->len);
    memcpy(e->cmd + cmd->len, key, keylen);
    memcpy(e->cmd + cmd->len + keylen, resp.data, resp.len);
    simul_redis_buf_free(&resp);
    e->cmdlen = cmd->len;
    e->key = e->cmd + cmd->len;
    e->keylen = keylen;
    e->resp = e->key + keylen;
    e->resplen = bytes - cmd->len - keylen - ENTRY_OVERHEAD;
    e->bytes = bytes;
    e->hash = h;
    e->khash = fnv(key, keylen);
    while (k->bytes + bytes > k->max && k->tail) {
        unlink_entry(k, k->tail); /* least recently used first */
        c->st.cache_evictions++;
    }
    if (k->count >= k->nb)
        grow(k);
    e->hnext = k->byhash[h % k->nb];
    k->byhash[h % k->nb] = e;
    e->knext = k->bykey[e->khash % k->nb];
    k->bykey[e->khash % k->nb] = e;
    e->next = k->head;
    if (k->head)
        k->head->prev = e;
    k->head = e;
    if (!k->tail)
        k->tail = e;
    k->count++;
    k->bytes += bytes;
    c->st.cache_bytes = k->bytes;
}

static void invalidate_key(simul_redis_conn *c, const char *key, size_t n)
{
    struct redis_cache *k = c->cache;
    uint64_t kh = fnv(key, n);
    entry **pp = &k->bykey[kh % k->nb];
    while (*pp) {
        entry *e = *pp;
        if (e->khash == kh && e->keylen == n && memcmp(e->key, key, n) == 0)
            unlink_entry(k, e); /* takes it out of this chain too: *pp is its successor */
        else
            pp = &e->knext;
    }
    c->st.cache_invalidations++;
    c->st.cache_bytes = k->bytes;
}

/* keys: the invalidated keys (an array), or nil / NULL: everything (FLUSHALL, FLUSHDB, or the
 * server forgot what we read because its tracking table is full). */
static void invalidate(simul_redis_conn *c, const simul_redis_reply *keys)
{
    c->inval_seq++;
    if (!keys || keys->type == SIMUL_REDIS_NIL) {
        redis__cache_flush(c);
        c->st.cache_invalidations++;
        return;
    }
    for (size_t i = 0; i < simul_redis_reply_len(keys); i++) {
        size_t kn = 0;
        const char *key = simul_redis_reply_str(simul_redis_reply_elem(keys, i), &kn);
        if (key)
            invalidate_key(c, key, kn);
    }
}

bool redis__cache_push(simul_redis_conn *c, simul_redis_reply *r)
{
    const simul_redis_reply *kind = simul_redis_reply_elem(r, 0);
    size_t n = 0;
    const char *s = simul_redis_reply_str(kind, &n);
    if (!c->cache || r->type != SIMUL_REDIS_PUSH || !s || n != 10 || memcmp(s, "invalidate", 10))
        return false;
    invalidate(c, simul_redis_reply_elem(r, 1));
    simul_redis_reply_free(r);
    return true;
}

/* ---- RESP2: the invalidation connection ------------------------------------------------------
 * RESP2 has no push replies, so the server sends invalidations as pub/sub messages on
 * __redis__:invalidate to another connection named by CLIENT TRACKING ON REDIRECT <its id>. The
 * two streams are not ordered against each other: an invalidation may be read before the reply it
 * makes stale. So a read is kept only if no invalidation at all arrived between its sending and
 * its storing (redis__cached_command takes the count before sending). If the invalidation
 * connection is lost, invalidations are lost with it: the cache is emptied and nothing is cached
 * until a new one is up and this connection's tracking redirected to it. */

static int tracker_setup(simul_redis_conn *c)
{
    simul_redis_opts o = c->o;
    o.protocol = 2;
    o.no_reconnect = true; /* its loss must be seen: the tracker makes a new one */
    o.cache_bytes = 0;
    o.pool_size = 1;
    o.limits = c->has_limits ? &c->limits : NULL;
    simul_redis_conn *inv = NULL;
    int rc = simul_redis_connect(&o, &inv);
    if (rc < 0)
        return rc;
    simul_redis_reply *r = NULL;
    const char *idv[] = {"CLIENT", "ID"};
    enc e = {.argc = 2, .argv = idv};
    rc = redis__execute(inv, 0, CMD_NORMAL, 0, &e, &r);
    long long id = simul_redis_reply_integer(r);
    simul_redis_reply_free(r);
    r = NULL;
    simul_redis_subscription *sub = NULL;
    const char *ch[] = {"__redis__:invalidate"};
    if (rc == 0)
        rc = id > 0 ? simul_redis_subscribe(inv, 0, ch, 1, 0, &sub) : -EPROTO;
    if (rc < 0) {
        simul_redis_close(inv);
        return rc;
    }
    c->inval = inv;
    c->inval_sub = sub;
    c->redirect_id = id;
    if (c->connected) {
        char ids[32];
        snprintf(ids, sizeof ids, "%lld", id);
        const char *tv[] = {"CLIENT", "TRACKING", "ON", "REDIRECT", ids};
        enc te = {.argc = 5, .argv = tv};
        rc = redis__execute(c, 0, CMD_NORMAL, 0, &te, &r);
        simul_redis_reply_free(r);
        /* Down meanwhile: the handshake of the reconnection turns it on. */
        c->tracking2 = rc == 0;
    }
    redis__cache_flush(c); /* whatever was read before is not tracked to this connection */
    c->st.tracker_setups++;
    return 0;
}

static void tracker_down(simul_redis_conn *c)
{
    c->tracking2 = false;
    c->redirect_id = 0;
    redis__cache_flush(c);
    if (c->inval_sub)
        simul_redis_subscription_close(c->inval_sub);
    c->inval_sub = NULL;
    simul_redis_close(c->inval);
    c->inval = NULL;
}

static int tracker_main(void *arg)
{
    simul_redis_conn *c = arg;
    double d = c->o.reconnect_min;
    while (!c->closing) {
        if (!c->inval) {
            int rc = tracker_setup(c);
            if (rc == -ECANCELED || c->closing)
                break;
            if (rc < 0) {
                uint64_t x = c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull;
                double j = (double)(x >> 11) / 9007199254740992.0;
                if (simul_sleep(d / 2 + j * d / 2) < 0)
                    break;
                d = d * 2 < c->o.reconnect_max ? d * 2 : c->o.reconnect_max;
                continue;
            }
            d = c->o.reconnect_min;
        }
        simul_redis_reply *m = NULL;
        int rc = simul_redis_subscription_next(c->inval_sub, &m);
        if (rc == 0) {
            /* ["message", "__redis__:invalidate", [keys] or nil] */
            invalidate(c, simul_redis_reply_elem(m, 2));
            simul_redis_reply_free(m);
            continue;
        }
        if (rc == -ECANCELED || c->closing)
            break;
        tracker_down(c); /* lost: invalidations may have been missed */
    }
    return 0;
}

void redis__cache_tracker_start(simul_redis_conn *c)
{
    if (tracker_setup(c) < 0)
        c->inval = NULL; /* the task tries again */
    simul_task_opts to = {.name = "redis-tracker", .stack_size = 0};
    if (simul_task_spawn(&c->tracker, tracker_main, c, &to) < 0) {
        c->tracker = NULL;
        tracker_down(c); /* no task to read invalidations: no caching */
    }
}

void redis__cache_tracker_stop(simul_redis_conn *c)
{
    if (c->tracker) {
        simul_task_cancel(c->tracker);
        simul_task_join(c->tracker, NULL);
        c->tracker = NULL;
    }
    if (c->inval)
        tracker_down(c);
}

int redis__cached_command(simul_redis_conn *c, unsigned flags, simul_redis_reply **reply, int argc,
                          const char *const *argv, const size_t *argvlen)
{
    simul_redis_buf cmd = {0};
    ssize_t n = simul_redis_encode(&cmd, argc, argv, argvlen);
    if (n < 0)
        return (int)n;
    uint64_t h = fnv(cmd.data, cmd.len);
    entry *e = c->connected ? lookup(c->cache, cmd.data, cmd.len, h) : NULL;
    if (e) {
        simul_redis_parser *p = NULL;
        simul_redis_reply *r = NULL;
        int rc = simul_redis_parser_new(&p, NULL);
        if (rc == 0) {
            ssize_t used = simul_redis_parse(p, e->resp, e->resplen, &r);
            rc = used < 0 ? (int)used : r ? 0 : -EPROTO;
        }
        simul_redis_parser_free(p);
        simul_redis_buf_free(&cmd);
        if (rc < 0)
            return rc;
        touch(c->cache, e);
        c->st.cache_hits++;
        if (reply)
            *reply = r;
        else
            simul_redis_reply_free(r);
        return 0;
    }
    c->st.cache_misses++;
    uint64_t seq = 0, sent = c->inval_seq;
    simul_redis_reply *r = NULL;
    enc en = {.argc = argc, .argv = argv, .argvlen = argvlen, .seq = &seq};
    int rc = redis__execute(c, flags, CMD_NORMAL, 0, &en, &r);
    /* Kept only when nothing was invalidated (nor the connection made again) since the server
     * answered: else the value may already be old. The cache may be gone if c closed. */
    if (rc == 0 && c->cache && seq == c->inval_seq && c->connected && !c->closing &&
        (c->proto == 3 || (sent == c->inval_seq && c->tracking2 && c->inval)))
        store(c, &cmd, h, argv[1], argvlen ? argvlen[1] : strlen(argv[1]), r);
    simul_redis_buf_free(&cmd);
    if (reply)
        *reply = r;
    else
        simul_redis_reply_free(r);
    return rc;
}
