/* pool.c — the bounded pool of dedicated connections beside the shared one: blocking commands
 * (BLPOP, XREAD BLOCK, WAIT, ...) and transactions run there, one caller per connection, so the
 * shared pipeline never waits behind them. The idea: a connection comes back to the pool only
 * with nothing pending on it; one whose caller left mid-command is closed, so no later caller
 * can ever read a reply that was not its own. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"

#define POOL_SIZE_DEFAULT 8

typedef struct slot {
    struct slot *next;
    simul_redis_conn *d;
} slot;

struct redis_pool {
    simul_semaphore *sem; /* one unit per connection a caller may hold */
    slot *idle;           /* connected, nothing pending */
    slot *busy;           /* held by a caller */
    slot *spare;          /* free records */
};

static bool name_is(const char *s, size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(s, name, n) == 0;
}

static const char *const blocking_names[] = {"BLPOP",  "BRPOP",    "BRPOPLPUSH", "BLMOVE",
                                             "BLMPOP", "BZPOPMIN", "BZPOPMAX",   "BZMPOP",
                                             "WAIT",   "WAITAOF",  "XREAD",      "XREADGROUP"};

bool redis__maybe_blocking(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof blocking_names / sizeof blocking_names[0]; i++)
        if (name_is(name, n, blocking_names[i]))
            return true;
    return false;
}

bool redis__is_blocking(int argc, const char *const *argv, const size_t *argvlen)
{
    size_t n0 = argvlen ? argvlen[0] : strlen(argv[0]);
    if (!redis__maybe_blocking(argv[0], n0))
        return false;
    if (!name_is(argv[0], n0, "XREAD") && !name_is(argv[0], n0, "XREADGROUP"))
        return true;
    /* XREAD blocks only with BLOCK, which comes before STREAMS (after it, keys and ids). */
    for (int i = 1; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        if (name_is(argv[i], n, "BLOCK"))
            return true;
        if (name_is(argv[i], n, "STREAMS"))
            return false;
    }
    return false;
}

int redis__decode_argv(const simul_redis_buf *b, simul_redis_reply **out)
{
    /* The encoder's output is a RESP array of bulk strings: our parser reads it back. */
    *out = NULL;
    simul_redis_parser *p = NULL;
    int rc = simul_redis_parser_new(&p, NULL);
    if (rc < 0)
        return rc;
    simul_redis_reply *tree = NULL;
    ssize_t n = simul_redis_parse(p, b->data, b->len, &tree);
    simul_redis_parser_free(p);
    if (n < 0 || !tree || tree->type != SIMUL_REDIS_ARRAY || tree->len < 1) {
        simul_redis_reply_free(tree);
        return n < 0 ? (int)n : -EINVAL;
    }
    *out = tree;
    return 0;
}

int redis__argv_from_encoded(const simul_redis_buf *b, unsigned flags, simul_redis_conn *c,
                             simul_redis_reply **reply)
{
    simul_redis_reply *tree = NULL;
    int rc = redis__decode_argv(b, &tree);
    if (rc < 0)
        return rc;
    const char **argv = malloc(tree->len * sizeof *argv);
    size_t *lens = malloc(tree->len * sizeof *lens);
    rc = argv && lens ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < tree->len; i++) {
        argv[i] = tree->elem[i].str;
        lens[i] = tree->elem[i].len;
    }
    if (rc == 0)
        rc = simul_redis_command_argv(c, flags, reply, (int)tree->len, argv, lens);
    free(argv);
    free(lens);
    simul_redis_reply_free(tree);
    return rc;
}

static int pool_get(simul_redis_conn *c, struct redis_pool **out)
{
    if (!c->pool) {
        struct redis_pool *p = calloc(1, sizeof *p);
        if (!p)
            return -ENOMEM;
        unsigned size = c->o.pool_size ? c->o.pool_size : POOL_SIZE_DEFAULT;
        if (simul_semaphore_new(&p->sem, size) < 0) {
            free(p);
            return -ENOMEM;
        }
        c->pool = p;
    }
    *out = c->pool;
    return 0;
}

static void close_dedicated(simul_redis_conn *c, simul_redis_conn *d)
{
    simul_redis_close(d); /* shielded: finishes even for a cancelled caller */
    c->st.dedicated_closed++;
}

int redis__pool_acquire(simul_redis_conn *c, simul_redis_conn **d)
{
    *d = NULL;
    if (c->closing)
        return -ESHUTDOWN;
    struct redis_pool *p;
    int rc = pool_get(c, &p);
    if (rc < 0)
        return rc;
    if (simul_semaphore_try_acquire(p->sem) < 0) {
        c->st.pool_waits++;
        rc = simul_semaphore_acquire(p->sem); /* the caller's cancel / deadline end it */
        if (rc < 0)
            return rc;
        if (c->closing) { /* closed while we waited: a slot, but nothing to use it for */
            simul_semaphore_release(p->sem);
            return -ESHUTDOWN;
        }
    }
    slot *s = NULL;
    while (p->idle) {
        s = p->idle;
        p->idle = s->next;
        if (simul_redis_connected(s->d))
            break;
        close_dedicated(c, s->d); /* the server closed it while idle (timeout, kill) */
        s->d = NULL;
        s->next = p->spare;
        p->spare = s;
        s = NULL;
    }
    if (!s) {
        s = p->spare;
        if (s)
            p->spare = s->next;
        else if (!(s = calloc(1, sizeof *s)))
            rc = -ENOMEM;
        if (rc == 0) {
            /* The shared connection's options; the protocol it settled on (no HELLO fallback
             * twice), no reconnection: a dedicated connection that fails is replaced. */
            simul_redis_opts o = c->o;
            o.no_reconnect = true;
            o.protocol = c->proto;
            o.limits = c->has_limits ? &c->limits : NULL;
            o.cache_bytes = 0; /* one caller at a time: nothing to share */
            rc = simul_redis_connect(&o, &s->d);
            if (rc == 0)
                c->st.dedicated_opened++;
            if (rc == 0 && c->closing) {
                close_dedicated(c, s->d);
                rc = -ESHUTDOWN;
            }
        }
        if (rc < 0) {
            if (s) {
                s->d = NULL;
                s->next = p->spare;
                p->spare = s;
            }
            simul_semaphore_release(p->sem);
            return rc;
        }
    }
    s->next = p->busy;
    p->busy = s;
    *d = s->d;
    return 0;
}

void redis__pool_release(simul_redis_conn *c, simul_redis_conn *d, bool reuse)
{
    struct redis_pool *p = c->pool;
    slot *s = NULL;
    for (slot **pp = &p->busy; *pp; pp = &(*pp)->next) {
        if ((*pp)->d == d) {
            s = *pp;
            *pp = s->next;
            break;
        }
    }
    /* Reused only when provably clean: up, nothing in its FIFO, no subscription. */
    if (reuse && !c->closing && simul_redis_connected(d) && !d->head && !d->subs) {
        s->next = p->idle;
        p->idle = s;
    } else {
        close_dedicated(c, d);
        s->d = NULL;
        s->next = p->spare;
        p->spare = s;
    }
    simul_semaphore_release(p->sem);
}

int redis__run_dedicated(simul_redis_conn *c, unsigned flags, const enc *e,
                         simul_redis_reply **reply)
{
    if (c->closing)
        return -ESHUTDOWN;
    redis__enter(c);
    simul_redis_conn *d = NULL;
    int rc = redis__pool_acquire(c, &d);
    if (rc == 0) {
        rc = redis__execute(d, flags & ~SIMUL_REDIS_RETRY_SAFE, CMD_NORMAL, 0, e, reply);
        c->st.commands++;
        if (rc == 0 || rc == -EREMOTEIO)
            c->st.replies++;
        /* -ECANCELED / -ETIMEDOUT leave the reply pending on d: d is closed, not reused. */
        redis__pool_release(c, d, rc == 0 || rc == -EREMOTEIO);
    }
    redis__leave(c);
    return rc;
}

void redis__pool_interrupt(simul_redis_conn *c)
{
    if (!c->pool)
        return;
    for (slot *s = c->pool->busy; s; s = s->next) {
        simul_redis_conn *d = s->d;
        if (d->s && !d->write_err) {
            /* As a failed write does: the reader wakes from its read with this error and fails
             * what is pending; no reconnection (no_reconnect). */
            d->write_err = -ESHUTDOWN;
            simul_stream_abort(d->s);
        }
    }
}

void redis__pool_free(simul_redis_conn *c)
{
    struct redis_pool *p = c->pool;
    if (!p)
        return;
    /* No user is left, so busy is empty: every holder released (and closed) its connection. */
    while (p->idle) {
        slot *s = p->idle;
        p->idle = s->next;
        close_dedicated(c, s->d);
        free(s);
    }
    while (p->spare) {
        slot *s = p->spare;
        p->spare = s->next;
        free(s);
    }
    simul_semaphore_free(p->sem);
    free(p);
    c->pool = NULL;
}
