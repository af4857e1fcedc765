/* pool.c — the bounded pool of dedicated connections beside the shared one: blocking commands
 * (BLPOP, XREAD BLOCK, WAIT, ...) and transactions run there, one caller per connection, so the
 * shared pipeline never waits behind them. The idea: a connection comes back to the pool only
 * with nothing pending on it. One whose caller left mid-command is ended on the server by CLIENT
 * UNBLOCK (over the shared connection) and its reply read before reuse; a reply that beat the
 * unblock is data the server already gave away, so the caller gets it; when that cannot be done
 * the connection is closed, so no later caller can ever read a reply that was not its own. */
#include <errno.h>
#include <stdio.h>
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

/* The bound on the shielded exchanges a caller that left still finishes on its dedicated
 * connection (its CLIENT ID, the UNBLOCK of its blocking command, below). */
#define UNBLOCK_TIMEOUT 1.0

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
            if (rc == 0 && s->d->client_id == 0) {
                /* RESP2 (no HELLO reply): ask, so a cancelled command can be unblocked. A
                 * server that refuses (ACL) leaves it 0: such a command closes d instead.
                 * Shielded, within the connect timeout: it is part of opening d, and a caller
                 * cancelled meanwhile must not leave d without its id for good (its blocking
                 * commands would then be ended by closing d, losing a reply on its way). */
                const char *argv[] = {"CLIENT", "ID"};
                enc ie = {.argc = 2, .argv = argv};
                simul_redis_reply *r = NULL;
                simul_scope shield, dl;
                bool shielded = simul_scope_shield(&shield) == 0;
                double t = c->o.connect_timeout < UNBLOCK_TIMEOUT ? c->o.connect_timeout
                                                                  : UNBLOCK_TIMEOUT;
                bool timed = simul_scope_timeout(&dl, t) == 0;
                if (redis__execute(s->d, 0, CMD_NORMAL, 0, &ie, &r) == 0)
                    s->d->client_id = simul_redis_reply_integer(r);
                simul_redis_reply_free(r);
                if (timed)
                    simul_scope_end(&dl);
                if (shielded)
                    simul_scope_end(&shield);
            }
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

/* Ends a blocking command whose caller left (why: -ECANCELED / -ETIMEDOUT) while it is held on
 * d, shielded and within UNBLOCK_TIMEOUT, with no polling: every wait is for a state.
 * 1. d's command must be at the server before it can be found blocked: if its bytes are still
 *    queued in d's stream (a huge argv), wait until the kernel took them.
 * 2. CLIENT UNBLOCK <d's id> over the shared connection c. 1: d was blocked, and d's reply is now
 *    the command's timeout reply (nil, or WAIT's count), caused by us. 0: d was not blocked at
 *    that moment: the server already answered it (its reply is on its way), or, rarely, had not
 *    read it yet (the two sockets' bytes may reach the server out of order). One more UNBLOCK,
 *    sent after the first's answer came back (so after the server's pass that answered it), tells
 *    the two apart in practice: 1 then means the command had arrived late and is ended now.
 * 3. Wait for d's reply: d's reader matches it and wakes us (redis__held_wait), bounded by the
 *    deadline. Ours is dropped and d is clean for the next caller. One that was not caused by
 *    our UNBLOCK is real data the server has already committed (an element popped, a stream
 *    entry delivered to a group): it is handed to the caller, with its result, rather than lost;
 *    the caller's cancel stays pending (level-triggered) for its next wait.
 * d is closed only when this fails (no id, c down, the deadline) — the old way: the server drops
 * a blocked client that closes (nothing lost), and only a reply still on its way at the
 * deadline is lost with it. */
#define UNBLOCK_TRIES 2

static void hand(simul_redis_reply **reply, simul_redis_reply *r)
{
    if (reply)
        *reply = r;
    else
        simul_redis_reply_free(r);
}

/* Suspends until d's queued bytes (its blocking command) are all with the kernel. */
static int sent_out(simul_redis_conn *d)
{
    if (!d->s || simul_stream_write_buffer_size(d->s) == 0)
        return 0;
    /* d is dedicated (one caller, who is here) and its writes never wait on these marks: drain
     * to empty, then the defaults again. */
    int rc = simul_stream_set_write_buffer_limits(d->s, 0, 0);
    if (rc == 0)
        rc = simul_stream_drain(d->s);
    simul_stream_set_write_buffer_limits(d->s, SIMUL_STREAM_HIGH_WATER, SIMUL_STREAM_LOW_WATER);
    return rc;
}

static int unblock(simul_redis_conn *c, simul_redis_conn *d, cmd *k, int why,
                   simul_redis_reply **reply, bool *reuse)
{
    *reuse = false;
    if (redis__held_unsend(d, k)) { /* never sent: nothing to undo */
        *reuse = true;
        return why;
    }
    simul_scope shield, dl;
    bool shielded = simul_scope_shield(&shield) == 0;
    double t = c->o.connect_timeout < UNBLOCK_TIMEOUT ? c->o.connect_timeout : UNBLOCK_TIMEOUT;
    bool timed = simul_scope_timeout(&dl, t) == 0;
    bool ours = false, asked = false, ended = false;
    int rc = why;
    if (d->client_id > 0 && !redis__held_done(k) && sent_out(d) == 0) {
        char id[32];
        snprintf(id, sizeof id, "%lld", d->client_id);
        const char *argv[] = {"CLIENT", "UNBLOCK", id};
        enc e = {.argc = 3, .argv = argv};
        for (int i = 0; i < UNBLOCK_TRIES && !redis__held_done(k); i++) {
            simul_redis_reply *r = NULL;
            int urc = redis__execute(c, 0, CMD_NORMAL, 0, &e, &r);
            long long n = simul_redis_reply_integer(r);
            simul_redis_reply_free(r);
            if (urc < 0)
                break; /* c is down or closing, or the deadline: close d (after a 0 that came
                          back, d's reply may still be waited for) */
            asked = true;
            if (n == 1) {
                ours = true;
                break;
            }
        }
    }
    if (asked || redis__held_done(k)) {
        /* The state wait: d's reader wakes us with the reply, or the deadline ends it. */
        simul_redis_reply *dr = NULL;
        int wrc = redis__held_wait(d, k, &dr, &ended);
        if (ended && ours) {
            simul_redis_reply_free(dr); /* the timeout reply our UNBLOCK caused */
            c->st.unblocked++;
            *reuse = wrc == 0 || wrc == -EREMOTEIO;
        } else if (ended) {
            rc = wrc;
            hand(reply, dr);
        }
    }
    if (ended && !ours) {
        /* The server answered before our UNBLOCK: the caller gets it (nothing lost). d failing
         * meanwhile is no news to a caller that left: it keeps its own error. */
        *reuse = rc == 0 || rc == -EREMOTEIO;
        if (*reuse)
            c->st.unblock_late++;
        else
            rc = why;
    }
    if (!ended)
        redis__held_abandon(d, k); /* closed below: its reply can reach nobody */
    if (timed)
        simul_scope_end(&dl);
    if (shielded)
        simul_scope_end(&shield);
    return rc;
}

int redis__run_dedicated(simul_redis_conn *c, unsigned flags, const enc *e,
                         simul_redis_reply **reply)
{
    (void)flags; /* never resent: a blocking command's connection does not reconnect */
    if (c->closing)
        return -ESHUTDOWN;
    redis__enter(c);
    simul_redis_conn *d = NULL;
    int rc = redis__pool_acquire(c, &d);
    if (rc == 0) {
        cmd *held = NULL;
        bool reuse;
        rc = redis__execute_held(d, e, reply, &held);
        c->st.commands++;
        if (held) {
            rc = unblock(c, d, held, rc, reply, &reuse);
        } else {
            /* Nothing of it is left on d: a reply (or error reply) came, the connection failed,
             * or the cancel / deadline came before it was queued. pool_release keeps d only if
             * it is clean (up, nothing pending), so a deadline that expired early does not cost
             * the connection. */
            reuse = true;
        }
        if (rc == 0 || rc == -EREMOTEIO)
            c->st.replies++;
        redis__pool_release(c, d, reuse);
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
