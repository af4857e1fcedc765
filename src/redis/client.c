/* client.c — the Redis connection: one multiplexed connection per server, shared by every task.
 * The idea: a command is encoded and its record queued (FIFO) without suspending, so it is in the
 * pipeline whole or not at all; replies are matched to records by position alone, never by who
 * still waits, so a caller that leaves (cancel, deadline) only marks its record abandoned and the
 * reader drops its reply. One write per loop pass carries every command queued in that pass. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <simul/backoff.h>
#include <simul/loop.h>
#include <simul/redis.h>
#include <simul/sync.h>
#include <simul/task.h>

#include "conn.h"

/* ---- small helpers ------------------------------------------------------------------------- */

static char *dup_or_null(const char *s, int *err)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *err = -ENOMEM;
    return d;
}

static bool str_is(const simul_redis_reply *r, const char *s)
{
    size_t n;
    const char *p = simul_redis_reply_str(r, &n);
    return p && n == strlen(s) && strncasecmp(p, s, n) == 0;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return s && n >= k && strncmp(s, prefix, k) == 0;
}

static void free_reply_item(void *item)
{
    simul_redis_reply_free(item);
}

void redis__enter(simul_redis_conn *c)
{
    c->users++;
}

void redis__leave(simul_redis_conn *c)
{
    if (--c->users == 0 && c->closing)
        simul_event_set(c->idle);
}

/* ---- command records ----------------------------------------------------------------------- */

static cmd *cmd_get(simul_redis_conn *c)
{
    cmd *k = c->free_cmds;
    if (k) {
        c->free_cmds = k->next;
    } else {
        k = calloc(1, sizeof *k);
        if (!k)
            return NULL;
        if (simul_event_new(&k->done_ev) < 0) {
            free(k);
            return NULL;
        }
    }
    simul_event *ev = k->done_ev;
    memset(k, 0, sizeof *k);
    k->done_ev = ev;
    return k;
}

static void cmd_put(simul_redis_conn *c, cmd *k)
{
    simul_event_clear(k->done_ev);
    k->next = c->free_cmds;
    c->free_cmds = k;
}

static cmd *fifo_pop(simul_redis_conn *c)
{
    cmd *k = c->head;
    if (k) {
        c->head = k->next;
        if (!c->head)
            c->tail = NULL;
        if (k->kind != CMD_NORMAL)
            c->sub_cmds--;
    }
    return k;
}

/* Hands a record its outcome exactly once: the waiter takes it, or, if the waiter left, the
 * reply is dropped here and the record recycled. */
static void cmd_complete(simul_redis_conn *c, cmd *k, int result, simul_redis_reply *r,
                         bool conn_err)
{
    if (k->abandoned) {
        simul_redis_reply_free(r);
        if (r)
            c->st.dropped_replies++;
        cmd_put(c, k);
        return;
    }
    k->result = result;
    k->reply = r;
    k->conn_err = conn_err;
    k->seq = c->inval_seq;
    k->done = true;
    simul_event_set(k->done_ev);
}

/* ---- the connection's failure -------------------------------------------------------------- */

/* Fails every pending command with err and drops the stream. Does not suspend. */
static void conn_drop(simul_redis_conn *c, int err)
{
    if (c->connected && !c->closing)
        c->st.failures++;
    c->connected = false;
    simul_event_clear(c->ready);
    if (c->flush_scheduled) {
        simul_handle_cancel(c->flush_h);
        c->flush_scheduled = false;
    }
    c->out.len = 0;
    cmd *k;
    while ((k = fifo_pop(c)))
        cmd_complete(c, k, err, NULL, true);
    if (c->s) {
        simul_stream_abort(c->s);
        simul_stream_close(c->s); /* after abort: only frees, does not suspend */
        c->s = NULL;
    }
    c->write_err = 0;
    c->roff = c->rlen = 0;
}

/* ---- writing: one write per loop pass ------------------------------------------------------ */

static void flush_cb(void *arg)
{
    simul_redis_conn *c = arg;
    c->flush_scheduled = false;
    if (c->s && c->out.len > 0) {
        int rc = simul_stream_write(c->s, c->out.data, c->out.len);
        c->st.writes++;
        if (rc < 0 && !c->write_err) {
            /* The reader is parked in a read: abort wakes it, and it reports this error. */
            c->write_err = rc;
            simul_stream_abort(c->s);
        }
    }
    c->out.len = 0;
    if (c->out.cap > OUT_KEEP)
        simul_redis_buf_free(&c->out);
}

static int schedule_flush(simul_redis_conn *c)
{
    if (c->flush_scheduled)
        return 0;
    /* call_soon runs after every task already ready in this pass: all their commands share the
     * write. */
    int rc = simul_call_soon(flush_cb, c, &c->flush_h);
    if (rc == 0)
        c->flush_scheduled = true;
    return rc;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* Suspends until the next whole reply of the current stream. */
static int next_reply(simul_redis_conn *c, simul_redis_reply **r)
{
    for (;;) {
        if (c->roff < c->rlen) {
            ssize_t n = simul_redis_parse(c->p, c->rbuf + c->roff, c->rlen - c->roff, r);
            if (n < 0)
                return (int)n;
            c->roff += (size_t)n;
            if (*r)
                return 0;
        }
        c->roff = c->rlen = 0;
        long n = simul_stream_read(c->s, c->rbuf, RBUF_SIZE);
        if (n == 0)
            return -ECONNRESET; /* the server went away mid-stream */
        if (n < 0)
            return (n == -ECONNABORTED && c->write_err) ? c->write_err : (int)n;
        c->rlen = (size_t)n;
    }
}

static bool is_confirm(const simul_redis_reply *k)
{
    return str_is(k, "subscribe") || str_is(k, "psubscribe") || str_is(k, "ssubscribe") ||
           str_is(k, "unsubscribe") || str_is(k, "punsubscribe") || str_is(k, "sunsubscribe");
}

static const char *sub_verb(int kind, bool sub)
{
    static const char *const verbs[3][2] = {{"UNSUBSCRIBE", "SUBSCRIBE"},
                                            {"PUNSUBSCRIBE", "PSUBSCRIBE"},
                                            {"SUNSUBSCRIBE", "SSUBSCRIBE"}};
    return verbs[kind][sub];
}

/* Whether r is out-of-band: a RESP3 push, or, on RESP2 in subscribe mode, an array shaped like
 * one (the server then accepts no command whose reply could look the same). */
static bool is_push(const simul_redis_conn *c, const simul_redis_reply *r)
{
    if (r->type == SIMUL_REDIS_PUSH)
        return true;
    if (c->proto != 2 || r->type != SIMUL_REDIS_ARRAY || r->len < 3 || (!c->subs && !c->sub_cmds))
        return false;
    const simul_redis_reply *k = &r->elem[0];
    return str_is(k, "message") || str_is(k, "pmessage") || str_is(k, "smessage") || is_confirm(k);
}

static simul_redis_subscription *sub_find(simul_redis_conn *c, const char *name, size_t n, int kind)
{
    for (simul_redis_subscription *s = c->subs; s; s = s->next) {
        if (s->kind != kind)
            continue;
        for (size_t i = 0; i < s->n; i++)
            if (strlen(s->names[i]) == n && memcmp(s->names[i], name, n) == 0)
                return s;
    }
    return NULL;
}

/* Queues a message for its subscription; a full queue loses its oldest message. */
static void deliver(simul_redis_subscription *s, simul_redis_reply *r)
{
    if (simul_queue_full(s->q)) {
        void *old = NULL;
        if (simul_queue_get_nowait(s->q, &old) == 0) {
            simul_redis_reply_free(old);
            s->dropped++;
        }
    }
    if (simul_queue_put_nowait(s->q, r) < 0) {
        simul_redis_reply_free(r);
        s->dropped++;
    }
}

/* A push: a message goes to its subscription; a confirmation counts for the (un)subscribe at the
 * head of the FIFO (the server sends them where that command's reply would be). Returns how many
 * confirmations it was (0 or 1), for the handshake's count. */
static int push_dispatch(simul_redis_conn *c, simul_redis_reply *r, bool in_handshake)
{
    const simul_redis_reply *kind = simul_redis_reply_elem(r, 0);
    const simul_redis_reply *e1 = simul_redis_reply_elem(r, 1);
    size_t n = 0;
    const char *name = simul_redis_reply_str(e1, &n);
    int sk = str_is(kind, "message")    ? SUB_CHANNEL
             : str_is(kind, "pmessage") ? SUB_PATTERN
             : str_is(kind, "smessage") ? SUB_SHARD
                                        : -1;
    if (sk >= 0) {
        simul_redis_subscription *s = name ? sub_find(c, name, n, sk) : NULL;
        if (s && !in_handshake && simul_queue_full(s->q)) {
            /* Full: give its reader one turn first (it is often runnable, woken by the puts
             * of this very batch), so a reader that keeps up loses nothing; then drop. The
             * subscription may be closed meanwhile: find it again. */
            simul_yield();
            s = sub_find(c, name, n, sk);
        }
        if (s)
            deliver(s, r);
        else
            simul_redis_reply_free(r); /* a subscription closed or given up meanwhile */
        return 0;
    }
    if (redis__cache_push(c, r)) /* a client-side caching invalidation (cache.c) */
        return 0;
    if (str_is(kind, "sunsubscribe") && !in_handshake && !(c->head && c->head->kind == CMD_UNSUB)) {
        /* Not ours: the server ended a sharded subscription (in a cluster, its slot moved to
         * another node). Its reader is told, as a message, so it can subscribe where it lives
         * now (simul_redis_cluster_ssubscribe does). */
        simul_redis_subscription *s = name ? sub_find(c, name, n, SUB_SHARD) : NULL;
        if (s)
            deliver(s, r);
        else
            simul_redis_reply_free(r);
        return 0;
    }
    bool confirm = is_confirm(kind);
    simul_redis_reply_free(r);
    if (!confirm)
        return 0; /* other pushes are not used */
    if (in_handshake)
        return 1;
    cmd *k = c->head;
    if (k && k->kind != CMD_NORMAL && k->confirms > 0 && --k->confirms == 0)
        cmd_complete(c, fifo_pop(c), 0, NULL, false);
    return 1;
}

static int handle_push(simul_redis_conn *c, simul_redis_reply *r, bool in_handshake)
{
    int rc = push_dispatch(c, r, in_handshake);
    /* Counted once handled (delivered, dropped or matched), not before: a reader of the stats
     * that sees the count sees the outcome too, even across push_dispatch's yield. */
    c->st.pushes++;
    return rc;
}

/* Matches one reply. A reply with nothing pending means the stream is out of step: -EPROTO. */
static int dispatch(simul_redis_conn *c, simul_redis_reply *r)
{
    if (is_push(c, r)) {
        handle_push(c, r, false);
        return 0;
    }
    cmd *k = fifo_pop(c);
    if (!k) {
        simul_redis_reply_free(r);
        return -EPROTO;
    }
    c->st.replies++;
    bool demoted =
        c->rediscover && r->type == SIMUL_REDIS_ERROR && starts_with(r->str, r->len, "READONLY");
    cmd_complete(c, k, r->type == SIMUL_REDIS_ERROR ? -EREMOTEIO : 0, r, false);
    /* The master we found is a replica now (a failover): connect again, which asks where the
     * master is (sentinel.c); what is pending here would meet READONLY too. */
    return demoted ? -ECONNRESET : 0;
}

/* ---- connecting and the handshake ---------------------------------------------------------- */

static int open_stream(simul_redis_conn *c, simul_stream **out)
{
    if (c->o.connect_cb)
        return c->o.connect_cb(c->o.connect_arg, out);
    if (c->unix_path)
        return simul_open_unix_connection(c->unix_path, out);
    return simul_open_connection(c->host ? c->host : "127.0.0.1", c->port ? c->port : "6379", out);
}

static int send_now(simul_redis_conn *c, int argc, const char *const *argv)
{
    c->out.len = 0;
    ssize_t n = simul_redis_encode(&c->out, argc, argv, NULL);
    if (n < 0)
        return (int)n;
    int rc = simul_stream_write(c->s, c->out.data, c->out.len);
    c->out.len = 0;
    return rc;
}

/* One handshake command: the reply (pushes routed meanwhile). 0, -EREMOTEIO with *r, or the
 * connection's error. */
static int hs_call(simul_redis_conn *c, simul_redis_reply **out, int argc, const char *const *argv)
{
    *out = NULL;
    int rc = send_now(c, argc, argv);
    if (rc < 0)
        return rc;
    for (;;) {
        simul_redis_reply *r = NULL;
        rc = next_reply(c, &r);
        if (rc < 0)
            return rc;
        if (is_push(c, r)) {
            handle_push(c, r, true);
            continue;
        }
        *out = r;
        return r->type == SIMUL_REDIS_ERROR ? -EREMOTEIO : 0;
    }
}

static int auth_error(const simul_redis_reply *r)
{
    size_t n;
    const char *m = simul_redis_reply_str(r, &n);
    if (starts_with(m, n, "WRONGPASS") || starts_with(m, n, "NOAUTH") ||
        starts_with(m, n, "NOPERM"))
        return -EACCES;
    return -EREMOTEIO;
}

static int resubscribe(simul_redis_conn *c)
{
    size_t expected = 0;
    for (simul_redis_subscription *s = c->subs; s; s = s->next) {
        const char **argv = malloc((s->n + 1) * sizeof *argv);
        if (!argv)
            return -ENOMEM;
        argv[0] = sub_verb(s->kind, true);
        for (size_t i = 0; i < s->n; i++)
            argv[i + 1] = s->names[i];
        int rc = send_now(c, (int)s->n + 1, argv);
        free(argv);
        if (rc < 0)
            return rc;
        expected += s->n;
    }
    while (expected > 0) {
        simul_redis_reply *r = NULL;
        int rc = next_reply(c, &r);
        if (rc < 0)
            return rc;
        if (!is_push(c, r)) {
            simul_redis_reply_free(r);
            return -EREMOTEIO; /* an error reply to a replayed SUBSCRIBE */
        }
        expected -= (size_t)handle_push(c, r, true);
    }
    return 0;
}

static int handshake(simul_redis_conn *c)
{
    simul_redis_reply *r = NULL;
    int rc;
    c->proto = 2;
    c->client_id = 0;
    if (c->o.protocol != 2) {
        const char *argv[7] = {"HELLO", "3"};
        int argc = 2;
        if (c->password) {
            argv[argc++] = "AUTH";
            argv[argc++] = c->username ? c->username : "default";
            argv[argc++] = c->password;
        }
        if (c->client_name) {
            argv[argc++] = "SETNAME";
            argv[argc++] = c->client_name;
        }
        rc = hs_call(c, &r, argc, argv);
        if (rc == 0) {
            c->proto = 3;
            /* HELLO names the server's id for this connection (CLIENT UNBLOCK needs it). */
            c->client_id = simul_redis_reply_integer(simul_redis_reply_map_get(r, "id"));
        } else if (rc == -EREMOTEIO) {
            size_t n;
            const char *m = simul_redis_reply_str(r, &n);
            /* Redis < 6 does not know HELLO; a server may refuse protocol 3 (NOPROTO). */
            bool refused = starts_with(m, n, "NOPROTO") || starts_with(m, n, "ERR unknown command");
            rc = refused ? (c->o.protocol == 3 ? -EPROTONOSUPPORT : 0) : auth_error(r);
        }
        simul_redis_reply_free(r);
        r = NULL;
        if (rc < 0)
            return rc;
    }
    if (c->proto == 2 && c->password) {
        const char *argv[3] = {"AUTH"};
        int argc = 1;
        if (c->username)
            argv[argc++] = c->username;
        argv[argc++] = c->password;
        rc = hs_call(c, &r, argc, argv);
        if (rc == -EREMOTEIO)
            rc = auth_error(r);
        simul_redis_reply_free(r);
        if (rc < 0)
            return rc;
    }
    if (c->proto == 2 && c->client_name) {
        const char *argv[] = {"CLIENT", "SETNAME", c->client_name};
        rc = hs_call(c, &r, 3, argv);
        simul_redis_reply_free(r);
        if (rc < 0)
            return rc;
    }
    if (c->o.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->o.db);
        const char *argv[] = {"SELECT", db};
        rc = hs_call(c, &r, 2, argv);
        simul_redis_reply_free(r);
        if (rc < 0)
            return rc;
    }
    if (c->cache) {
        /* A new connection: what was cached may have changed while nobody told us. */
        redis__cache_flush(c);
        c->tracking2 = false;
        if (c->proto == 3) {
            const char *argv[] = {"CLIENT", "TRACKING", "ON"};
            rc = hs_call(c, &r, 3, argv);
            simul_redis_reply_free(r);
            if (rc < 0)
                return rc;
        } else if (c->redirect_id > 0) {
            /* RESP2: to the invalidation connection (cache.c); if that is gone meanwhile, no
             * caching until it is back (the tracker turns it on again). */
            char id[32];
            snprintf(id, sizeof id, "%lld", c->redirect_id);
            const char *argv[] = {"CLIENT", "TRACKING", "ON", "REDIRECT", id};
            rc = hs_call(c, &r, 5, argv);
            simul_redis_reply_free(r);
            c->tracking2 = rc == 0;
            if (rc < 0 && rc != -EREMOTEIO)
                return rc;
        }
    }
    return resubscribe(c);
}

/* Suspends. One attempt: connect, then the handshake, within the connect timeout. On success
 * the connection is up and commands may flow. */
static int establish(simul_redis_conn *c)
{
    simul_scope sc;
    int rc = simul_scope_timeout(&sc, c->o.connect_timeout);
    if (rc < 0)
        return rc;
    simul_stream *s = NULL;
    rc = open_stream(c, &s);
    if (rc == 0) {
        c->s = s;
        c->roff = c->rlen = 0;
        simul_redis_parser_free(c->p);
        c->p = NULL;
        rc = simul_redis_parser_new(&c->p, c->has_limits ? &c->limits : NULL);
        if (rc == 0)
            rc = handshake(c);
        if (rc < 0) {
            simul_stream_abort(c->s);
            simul_stream_close(c->s);
            c->s = NULL;
        }
    }
    simul_scope_end(&sc);
    if (rc < 0)
        return rc;
    c->connected = true;
    c->st.connects++;
    simul_event_set(c->ready);
    return 0;
}

/* The reader task: matches replies while the connection is up; when it fails, fails what is
 * pending and reconnects with jittered exponential back-off, until the connection is closed. */
static int reader_main(void *arg)
{
    simul_redis_conn *c = arg;
    for (;;) {
        int rc;
        for (;;) {
            simul_redis_reply *r = NULL;
            rc = next_reply(c, &r);
            if (rc < 0)
                break;
            rc = dispatch(c, r);
            if (rc < 0)
                break;
        }
        if (c->closing)
            break;
        conn_drop(c, rc);
        if (c->o.no_reconnect) {
            c->dead = true;
            simul_event_set(c->ready); /* waiters see `dead` */
            /* Nothing will come any more: readers get what is queued, then -ESHUTDOWN. */
            for (simul_redis_subscription *s = c->subs; s; s = s->next)
                simul_queue_shutdown(s->q, false, free_reply_item);
            break;
        }
        /* Each outage starts from reconnect_min again (equal jitter: the n-th wait lies in
         * [d/2, d], d = reconnect_min * 2^n up to reconnect_max). */
        simul_backoff_reset(&c->reconnect);
        for (;;) {
            if (simul_sleep(simul_backoff_next(&c->reconnect)) < 0 || c->closing)
                return 0;
            if (establish(c) == 0)
                break;
            if (c->closing)
                return 0;
        }
    }
    return 0;
}

/* ---- public: connect, close ---------------------------------------------------------------- */

static void conn_free(simul_redis_conn *c)
{
    simul_redis_subscription *s = c->subs;
    while (s) {
        simul_redis_subscription *next = s->next;
        simul_queue_free(s->q, free_reply_item);
        for (size_t i = 0; i < s->n; i++)
            free(s->names[i]);
        free(s->names);
        free(s);
        s = next;
    }
    cmd *k = c->free_cmds;
    while (k) {
        cmd *next = k->next;
        simul_event_free(k->done_ev);
        free(k);
        k = next;
    }
    redis__cache_free(c);
    if (c->owned_free)
        c->owned_free(c->owned_arg);
    simul_event_free(c->ready);
    simul_event_free(c->idle);
    simul_redis_parser_free(c->p);
    simul_redis_buf_free(&c->out);
    free(c->rbuf);
    free(c->host);
    free(c->port);
    free(c->unix_path);
    free(c->username);
    free(c->password);
    free(c->client_name);
    free(c);
}

int simul_redis_connect(const simul_redis_opts *opts, simul_redis_conn **out)
{
    if (!opts || !out || opts->protocol < 0 || opts->protocol == 1 || opts->protocol > 3 ||
        opts->connect_timeout < 0 || opts->reconnect_min < 0 || opts->reconnect_max < 0)
        return -EINVAL;
    *out = NULL;
    simul_redis_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    int err = 0;
    c->o = *opts;
    c->host = dup_or_null(opts->host, &err);
    c->port = dup_or_null(opts->port, &err);
    c->unix_path = dup_or_null(opts->unix_path, &err);
    c->username = dup_or_null(opts->username, &err);
    c->password = dup_or_null(opts->password, &err);
    c->client_name = dup_or_null(opts->client_name, &err);
    if (opts->limits) {
        c->limits = *opts->limits;
        c->has_limits = true;
    }
    if (c->o.connect_timeout == 0)
        c->o.connect_timeout = 10;
    if (c->o.reconnect_min == 0)
        c->o.reconnect_min = 0.01;
    if (c->o.reconnect_max == 0)
        c->o.reconnect_max = 2;
    if (c->o.reconnect_max < c->o.reconnect_min)
        c->o.reconnect_max = c->o.reconnect_min;
    simul_backoff_opts bo = {
        .base = c->o.reconnect_min, .cap = c->o.reconnect_max, .jitter = SIMUL_BACKOFF_EQUAL};
    if (err == 0 && simul_backoff_init(&c->reconnect, &bo) < 0) { /* a NaN or infinite bound */
        conn_free(c);
        return -EINVAL;
    }
    c->rng = (uint64_t)simul_now_ns() ^ (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ull;
    c->rbuf = malloc(RBUF_SIZE);
    if (!c->rbuf || err < 0 || simul_event_new(&c->ready) < 0 || simul_event_new(&c->idle) < 0) {
        conn_free(c);
        return -ENOMEM;
    }
    int rc = opts->cache_bytes > 0 ? redis__cache_new(c) : 0;
    if (rc == 0)
        rc = establish(c);
    if (rc == 0) {
        simul_task_opts to = {.name = "redis-reader", .stack_size = 0};
        rc = simul_task_spawn(&c->reader, reader_main, c, &to);
        if (rc < 0)
            conn_drop(c, rc);
    }
    if (rc == 0 && c->cache && c->proto == 2)
        redis__cache_tracker_start(c);
    if (rc < 0) {
        conn_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int simul_redis_close(simul_redis_conn *c)
{
    if (!c)
        return 0;
    simul_scope shield;
    bool shielded = simul_scope_shield(&shield) == 0;
    c->closing = true;
    simul_event_set(c->ready); /* waiters for the connection see `closing` */
    redis__cache_tracker_stop(c);
    if (c->reader) {
        simul_task_cancel(c->reader);
        simul_task_join(c->reader, NULL);
        c->reader = NULL;
    }
    conn_drop(c, -ECANCELED);
    redis__pool_interrupt(c);
    for (simul_redis_subscription *s = c->subs; s; s = s->next)
        simul_queue_shutdown(s->q, true, free_reply_item);
    while (c->users > 0)
        simul_event_wait(c->idle);
    redis__pool_free(c);
    if (shielded)
        simul_scope_end(&shield);
    conn_free(c);
    return 0;
}

/* ---- public: commands ---------------------------------------------------------------------- */

ssize_t redis__encode(simul_redis_buf *b, const enc *e)
{
    if (!e->fmt)
        return simul_redis_encode(b, e->argc, e->argv, e->argvlen);
    va_list ap;
    va_copy(ap, *e->ap);
    ssize_t n = simul_redis_vencodef(b, e->fmt, ap);
    va_end(ap);
    return n;
}

/* Suspends until the connection is up and its stream's write queue is at or below the
 * high-water mark (or the caller's cancel / deadline): a flood of commands waits here, before
 * anything of it is queued, instead of growing the queue without bound. */
static int wait_ready(simul_redis_conn *c)
{
    for (;;) {
        int rc = simul_checkpoint();
        if (rc < 0)
            return rc;
        if (c->closing)
            return -ESHUTDOWN;
        if (!c->connected) {
            if (c->dead)
                return -ENOTCONN;
            rc = simul_event_wait(c->ready);
            if (rc < 0)
                return rc;
            continue;
        }
        if (simul_stream_write_buffer_size(c->s) <= SIMUL_STREAM_HIGH_WATER)
            return 0;
        c->st.flow_waits++;
        rc = simul_stream_drain(c->s);
        if (rc < 0 && c->connected && !c->closing) {
            /* This task's own cancel or deadline, or the connection's error (the reader is
             * about to see it too): either way nothing of this command was sent. */
            int cp = simul_checkpoint();
            return cp < 0 ? cp : rc;
        }
    }
}

int redis__execute(simul_redis_conn *c, unsigned flags, int kind, size_t confirms, const enc *e,
                   simul_redis_reply **reply)
{
    if (c->closing)
        return -ESHUTDOWN;
    redis__enter(c);
    int rc;
    for (int attempt = 0;; attempt++) {
        rc = wait_ready(c);
        if (rc < 0)
            break;
        cmd *k = cmd_get(c);
        if (!k) {
            rc = -ENOMEM;
            break;
        }
        size_t mark = c->out.len;
        ssize_t n = redis__encode(&c->out, e);
        if (n >= 0)
            n = schedule_flush(c);
        if (n < 0) {
            c->out.len = mark; /* nothing of this command is queued */
            cmd_put(c, k);
            rc = (int)n;
            break;
        }
        /* From here the command is in the pipeline: its record stays in the FIFO until its
         * reply is matched, whatever happens to this task. */
        k->kind = kind;
        k->confirms = confirms;
        if (kind != CMD_NORMAL)
            c->sub_cmds++;
        if (c->tail)
            c->tail->next = k;
        else
            c->head = k;
        c->tail = k;
        c->st.commands++;
        rc = simul_event_wait(k->done_ev);
        if (!k->done) {
            k->abandoned = true;
            break;
        }
        /* Done: the outcome wins over a cancel that landed meanwhile (nothing is lost). */
        rc = k->result;
        simul_redis_reply *r = k->reply;
        if (e->seq)
            *e->seq = k->seq;
        bool retry = rc < 0 && k->conn_err && (flags & SIMUL_REDIS_RETRY_SAFE) &&
                     attempt < RETRY_ATTEMPTS && !c->closing && !c->o.no_reconnect;
        cmd_put(c, k);
        if (retry)
            continue;
        if (reply)
            *reply = r;
        else
            simul_redis_reply_free(r);
        break;
    }
    redis__leave(c);
    return rc;
}

int redis__execute_held(simul_redis_conn *c, const enc *e, simul_redis_reply **reply,
                        cmd **held)
{
    *held = NULL;
    if (c->closing)
        return -ESHUTDOWN;
    redis__enter(c);
    int rc = wait_ready(c);
    /* A caller already cancelled (or past its deadline) sends nothing: a blocking command sent
     * now could only be undone by an UNBLOCK race, and one the server answers (an element
     * popped) would have to be handed back. wait_ready does not suspend on a ready connection,
     * so it would not have told. */
    if (rc == 0)
        rc = simul_checkpoint();
    cmd *k = rc < 0 ? NULL : cmd_get(c);
    if (rc == 0 && !k)
        rc = -ENOMEM;
    if (rc < 0) {
        redis__leave(c);
        return rc;
    }
    size_t mark = c->out.len;
    ssize_t n = redis__encode(&c->out, e);
    if (n >= 0)
        n = schedule_flush(c);
    if (n < 0) {
        c->out.len = mark;
        cmd_put(c, k);
        redis__leave(c);
        return (int)n;
    }
    k->kind = CMD_NORMAL;
    k->confirms = 0;
    if (c->tail)
        c->tail->next = k;
    else
        c->head = k;
    c->tail = k;
    c->st.commands++;
    rc = simul_event_wait(k->done_ev);
    if (!k->done) {
        *held = k; /* still in the FIFO; the caller ends it (redis__held_*) */
        return rc;
    }
    rc = k->result;
    if (reply)
        *reply = k->reply;
    else
        simul_redis_reply_free(k->reply);
    cmd_put(c, k);
    redis__leave(c);
    return rc;
}

bool redis__held_unsend(simul_redis_conn *c, cmd *k)
{
    /* Still in the output buffer, the only command pending (a dedicated connection has one
     * caller): nothing of it reached the server, so taking it back leaves the stream clean. */
    if (!c->flush_scheduled || c->head != k || k->next || c->out.len == 0)
        return false;
    simul_handle_cancel(c->flush_h);
    c->flush_scheduled = false;
    c->out.len = 0;
    fifo_pop(c);
    cmd_put(c, k);
    redis__leave(c);
    return true;
}

bool redis__held_done(const cmd *k)
{
    return k->done;
}

int redis__held_wait(simul_redis_conn *c, cmd *k, simul_redis_reply **reply, bool *ended)
{
    *ended = false;
    int rc = simul_event_wait(k->done_ev);
    if (!k->done)
        return rc; /* still held */
    *ended = true;
    rc = k->result;
    if (reply)
        *reply = k->reply;
    else
        simul_redis_reply_free(k->reply);
    cmd_put(c, k);
    redis__leave(c);
    return rc;
}

void redis__held_abandon(simul_redis_conn *c, cmd *k)
{
    if (k->done) {
        simul_redis_reply_free(k->reply);
        cmd_put(c, k);
    } else {
        k->abandoned = true;
    }
    redis__leave(c);
}

static bool is_sub_command(const char *name, size_t n)
{
    static const char *const names[] = {"SUBSCRIBE",   "PSUBSCRIBE",   "SSUBSCRIBE",
                                        "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (n == strlen(names[i]) && strncasecmp(name, names[i], n) == 0)
            return true;
    return false;
}

int simul_redis_command_argv(simul_redis_conn *c, unsigned flags, simul_redis_reply **reply,
                             int argc, const char *const *argv, const size_t *argvlen)
{
    if (reply)
        *reply = NULL;
    if (!c || argc < 1 || !argv || !argv[0])
        return -EINVAL;
    if (is_sub_command(argv[0], argvlen ? argvlen[0] : strlen(argv[0])))
        return -EINVAL;
    enc e = {.argc = argc, .argv = argv, .argvlen = argvlen};
    if (!(flags & SIMUL_REDIS_SHARED) && redis__is_blocking(argc, argv, argvlen))
        return redis__run_dedicated(c, flags, &e, reply);
    if (c->cache && !(flags & SIMUL_REDIS_NO_CACHE) && redis__cacheable(c, argc, argv, argvlen))
        return redis__cached_command(c, flags, reply, argc, argv, argvlen);
    return redis__execute(c, flags, CMD_NORMAL, 0, &e, reply);
}

int simul_redis_vcommand(simul_redis_conn *c, unsigned flags, simul_redis_reply **reply,
                         const char *fmt, va_list ap)
{
    if (reply)
        *reply = NULL;
    if (!c || !fmt)
        return -EINVAL;
    const char *p = fmt + strspn(fmt, " ");
    if (is_sub_command(p, strcspn(p, " ")))
        return -EINVAL;
    if ((!(flags & SIMUL_REDIS_SHARED) && redis__maybe_blocking(p, strcspn(p, " "))) ||
        (c->cache && !(flags & SIMUL_REDIS_NO_CACHE) &&
         redis__cacheable_name(p, strcspn(p, " ")))) {
        /* Encoded once to see every argument (XREAD's BLOCK may come from a %s), then run
         * from that argv. */
        simul_redis_buf b = {0};
        va_list copy;
        va_copy(copy, ap);
        ssize_t n = simul_redis_vencodef(&b, fmt, copy);
        va_end(copy);
        int rc = n < 0 ? (int)n : redis__argv_from_encoded(&b, flags, c, reply);
        simul_redis_buf_free(&b);
        return rc;
    }
    va_list copy;
    va_copy(copy, ap);
    enc e = {.fmt = fmt, .ap = &copy};
    int rc = redis__execute(c, flags, CMD_NORMAL, 0, &e, reply);
    va_end(copy);
    return rc;
}

int simul_redis_command(simul_redis_conn *c, simul_redis_reply **reply, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = simul_redis_vcommand(c, 0, reply, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- public: explicit pipelines ----------------------------------------------------------- */

int simul_redis_pipeline_new(simul_redis_conn *c, simul_redis_pipeline **out)
{
    if (!c || !out)
        return -EINVAL;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    (*out)->conn = c;
    return 0;
}

int simul_redis_pipeline_add_argv(simul_redis_pipeline *p, int argc, const char *const *argv,
                                  const size_t *argvlen)
{
    if (!p || p->executed || argc < 1 || !argv || !argv[0] ||
        is_sub_command(argv[0], argvlen ? argvlen[0] : strlen(argv[0])))
        return -EINVAL;
    ssize_t n = simul_redis_encode(&p->buf, argc, argv, argvlen);
    if (n < 0)
        return (int)n;
    p->n++;
    return 0;
}

int simul_redis_pipeline_add(simul_redis_pipeline *p, const char *fmt, ...)
{
    if (!p || p->executed || !fmt)
        return -EINVAL;
    const char *w = fmt + strspn(fmt, " ");
    if (is_sub_command(w, strcspn(w, " ")))
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    ssize_t n = simul_redis_vencodef(&p->buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return (int)n;
    p->n++;
    return 0;
}

size_t simul_redis_pipeline_len(const simul_redis_pipeline *p)
{
    return p ? p->n : 0;
}

int simul_redis_pipeline_exec(simul_redis_pipeline *p, simul_redis_reply **replies, int *results)
{
    if (!p || p->executed || p->n == 0)
        return -EINVAL;
    simul_redis_conn *c = p->conn;
    for (size_t i = 0; i < p->n; i++) {
        if (replies)
            replies[i] = NULL;
        if (results)
            results[i] = -ECANCELED;
    }
    if (c->closing)
        return -ESHUTDOWN;
    redis__enter(c);
    cmd **k = calloc(p->n, sizeof *k);
    int rc = k ? wait_ready(c) : -ENOMEM;
    size_t got = 0;
    for (; rc == 0 && got < p->n; got++)
        if (!(k[got] = cmd_get(c)))
            rc = -ENOMEM;
    if (rc == 0)
        rc = simul_redis_buf_reserve(&c->out, p->buf.len);
    if (rc == 0)
        rc = schedule_flush(c);
    if (rc < 0) {
        for (size_t i = 0; i < got; i++)
            if (k[i])
                cmd_put(c, k[i]);
        free(k);
        redis__leave(c);
        return rc;
    }
    /* All at once, without suspending: contiguous in the stream and in the FIFO. */
    p->executed = true;
    memcpy(c->out.data + c->out.len, p->buf.data, p->buf.len);
    c->out.len += p->buf.len;
    for (size_t i = 0; i < p->n; i++) {
        if (c->tail)
            c->tail->next = k[i];
        else
            c->head = k[i];
        c->tail = k[i];
    }
    c->st.commands += p->n;
    size_t i = 0;
    for (; i < p->n; i++) {
        int w = simul_event_wait(k[i]->done_ev);
        if (!k[i]->done) {
            rc = w;
            break;
        }
        if (results)
            results[i] = k[i]->result;
        if (replies)
            replies[i] = k[i]->reply;
        else
            simul_redis_reply_free(k[i]->reply);
        cmd_put(c, k[i]);
    }
    if (rc < 0) {
        /* Cancelled or timed out: what is done is dropped here, the rest when it comes. */
        for (size_t j = 0; j < i; j++) {
            if (replies) {
                simul_redis_reply_free(replies[j]);
                replies[j] = NULL;
            }
            if (results)
                results[j] = rc;
        }
        for (; i < p->n; i++) {
            if (results)
                results[i] = rc;
            if (k[i]->done) {
                simul_redis_reply_free(k[i]->reply);
                cmd_put(c, k[i]);
            } else {
                k[i]->abandoned = true;
            }
        }
    }
    free(k);
    redis__leave(c);
    return rc;
}

void simul_redis_pipeline_free(simul_redis_pipeline *p)
{
    if (!p)
        return;
    simul_redis_buf_free(&p->buf);
    free(p);
}

bool simul_redis_connected(const simul_redis_conn *c)
{
    return c && c->connected;
}

int simul_redis_protocol(const simul_redis_conn *c)
{
    return c ? c->proto : 0;
}

void simul_redis_get_stats(const simul_redis_conn *c, simul_redis_stats *out)
{
    if (c && out)
        *out = c->st;
}

/* ---- public: pub/sub ----------------------------------------------------------------------- */

static void sub_unlink(simul_redis_conn *c, simul_redis_subscription *s)
{
    for (simul_redis_subscription **pp = &c->subs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            return;
        }
    }
}

static void sub_free(simul_redis_subscription *s)
{
    if (s->q)
        simul_queue_free(s->q, free_reply_item);
    for (size_t i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
    free(s);
}

/* Sends (P)(UN)SUBSCRIBE for every name of s and waits for one confirmation per name. */
static int sub_command(simul_redis_subscription *s, int kind)
{
    const char **argv = malloc((s->n + 1) * sizeof *argv);
    if (!argv)
        return -ENOMEM;
    argv[0] = sub_verb(s->kind, kind == CMD_SUB);
    for (size_t i = 0; i < s->n; i++)
        argv[i + 1] = s->names[i];
    enc e = {.argc = (int)s->n + 1, .argv = argv};
    simul_redis_reply *r = NULL;
    int rc = redis__execute(s->conn, 0, kind, s->n, &e, &r);
    simul_redis_reply_free(r);
    free(argv);
    return rc;
}

int simul_redis_subscribe(simul_redis_conn *c, unsigned flags, const char *const *names, size_t n,
                          size_t bound, simul_redis_subscription **out)
{
    if (!c || !names || n == 0 || n > 100000 || !out)
        return -EINVAL;
    *out = NULL;
    if ((flags & SIMUL_REDIS_SUB_PATTERN) && (flags & SIMUL_REDIS_SUB_SHARDED))
        return -EINVAL;
    int kind = (flags & SIMUL_REDIS_SUB_PATTERN)   ? SUB_PATTERN
               : (flags & SIMUL_REDIS_SUB_SHARDED) ? SUB_SHARD
                                                   : SUB_CHANNEL;
    for (size_t i = 0; i < n; i++) {
        if (!names[i])
            return -EINVAL;
        if (sub_find(c, names[i], strlen(names[i]), kind))
            return -EEXIST;
    }
    simul_redis_subscription *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->conn = c;
    s->kind = kind;
    s->bound = bound ? bound : SUB_BOUND_DEFAULT;
    s->names = calloc(n, sizeof *s->names);
    int rc = s->names ? simul_queue_new(&s->q, s->bound) : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++, s->n++)
        if (!(s->names[i] = strdup(names[i])))
            rc = -ENOMEM;
    if (rc < 0) {
        sub_free(s);
        return rc;
    }
    /* Linked first: a message may follow the confirmation at once, and a reconnection before
     * the SUBSCRIBE goes out replays it. */
    s->next = c->subs;
    c->subs = s;
    rc = sub_command(s, CMD_SUB);
    if (rc < 0) {
        /* The server may hold the subscription (a cancel after the send): its messages find no
         * subscription and are dropped. */
        if (!c->closing) {
            sub_unlink(c, s);
            sub_free(s);
        }
        return rc;
    }
    *out = s;
    return 0;
}

int simul_redis_subscription_next(simul_redis_subscription *s, simul_redis_reply **msg)
{
    if (!s || !msg)
        return -EINVAL;
    *msg = NULL;
    if (s->reading)
        return -EBUSY;
    simul_redis_conn *c = s->conn;
    redis__enter(c);
    s->reading = true;
    void *item = NULL;
    int rc = simul_queue_get(s->q, &item);
    s->reading = false;
    if (rc == 0)
        *msg = item;
    redis__leave(c);
    return rc;
}

uint64_t simul_redis_subscription_dropped(const simul_redis_subscription *s)
{
    return s ? s->dropped : 0;
}

int simul_redis_subscription_close(simul_redis_subscription *s)
{
    if (!s)
        return 0;
    if (s->reading)
        return -EBUSY; /* its queue would be freed under the task parked on it */
    simul_redis_conn *c = s->conn;
    sub_unlink(c, s);
    int rc = 0;
    if (c->connected && !c->closing)
        rc = sub_command(s, CMD_UNSUB);
    sub_free(s);
    return rc;
}

size_t simul_redis_subscription_queued(const simul_redis_subscription *s)
{
    return s ? simul_queue_qsize(s->q) : 0;
}
