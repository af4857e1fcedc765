/* sentinel.c — Sentinel discovery: the master's address asked of the sentinels at every
 * connection, so a failover is followed by the ordinary reconnection. The idea: discovery is the
 * connection's connect callback; each (re)connection asks the sentinels in turn (the one that
 * answered first next time), connects to the address given and checks with ROLE that it is a
 * master (a demoted one is refused and the sentinels asked again). Sentinel closes the clients of
 * a master it demotes, so the connection notices a failover at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

typedef struct sentinel_ctx {
    char **addrs; /* "host:port" of each sentinel, the last one that answered first */
    size_t n;
    char *master_name;
    char *password; /* the sentinels' (AUTH), or NULL */
    bool replica;   /* connect to a replica (reads), the master when none is up */
    unsigned rr;    /* which replica to try first next time (they take turns) */
} sentinel_ctx;

static void ctx_free(void *arg)
{
    sentinel_ctx *x = arg;
    if (!x)
        return;
    for (size_t i = 0; i < x->n; i++)
        free(x->addrs[i]);
    free(x->addrs);
    free(x->master_name);
    free(x->password);
    free(x);
}

/* One command on a raw stream, before any handshake: its whole reply. */
static int raw_call(simul_stream *s, int argc, const char *const *argv, simul_redis_reply **out)
{
    *out = NULL;
    simul_redis_buf b = {0};
    ssize_t n = simul_redis_encode(&b, argc, argv, NULL);
    int rc = n < 0 ? (int)n : simul_stream_write(s, b.data, b.len);
    simul_redis_buf_free(&b);
    if (rc < 0)
        return rc;
    simul_redis_limits lim = {.max_bulk = 1u << 20, .max_reply = 4u << 20};
    simul_redis_parser *p = NULL;
    if ((rc = simul_redis_parser_new(&p, &lim)) < 0)
        return rc;
    char buf[4096];
    while (rc == 0 && !*out) {
        long got = simul_stream_read(s, buf, sizeof buf);
        if (got <= 0) {
            rc = got == 0 ? -ECONNRESET : (int)got;
            break;
        }
        size_t off = 0;
        while (rc == 0 && !*out && off < (size_t)got) {
            ssize_t used = simul_redis_parse(p, buf + off, (size_t)got - off, out);
            if (used < 0)
                rc = (int)used;
            else
                off += (size_t)used;
        }
    }
    simul_redis_parser_free(p);
    return rc;
}

static int split_addr(const char *addr, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1] || (size_t)(colon - addr) >= hl || strlen(colon) > pl)
        return -EINVAL;
    snprintf(host, hl, "%.*s", (int)(colon - addr), addr);
    snprintf(port, pl, "%s", colon + 1);
    return 0;
}

/* Suspends. Asks one sentinel for the master's address. */
static int ask_sentinel(sentinel_ctx *x, size_t i, char *host, size_t hl, char *port, size_t pl)
{
    char sh[256], sp[16];
    int rc = split_addr(x->addrs[i], sh, sizeof sh, sp, sizeof sp);
    simul_stream *s = NULL;
    if (rc == 0)
        rc = simul_open_connection(sh, sp, &s);
    if (rc < 0)
        return rc;
    simul_redis_reply *r = NULL;
    if (x->password) {
        const char *auth[] = {"AUTH", x->password};
        rc = raw_call(s, 2, auth, &r);
        if (rc == 0 && r->type == SIMUL_REDIS_ERROR)
            rc = -EACCES;
        simul_redis_reply_free(r);
        r = NULL;
    }
    if (rc == 0) {
        const char *get[] = {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", x->master_name};
        rc = raw_call(s, 3, get, &r);
    }
    if (rc == 0) {
        size_t hn = 0, pn = 0;
        const char *h = simul_redis_reply_str(simul_redis_reply_elem(r, 0), &hn);
        const char *p = simul_redis_reply_str(simul_redis_reply_elem(r, 1), &pn);
        if (!h || !p || hn == 0 || hn >= hl || pn == 0 || pn >= pl)
            rc = r->type == SIMUL_REDIS_NIL ? -ENOENT : -EPROTO; /* nil: name unknown to it */
        else {
            snprintf(host, hl, "%.*s", (int)hn, h);
            snprintf(port, pl, "%.*s", (int)pn, p);
        }
    }
    simul_redis_reply_free(r);
    simul_stream_abort(s);
    simul_stream_close(s);
    return rc;
}

/* The value of `key` in one SENTINEL REPLICAS entry (a RESP2 flat array of pairs, or a map). */
static const char *entry_get(const simul_redis_reply *e, const char *key)
{
    size_t n = e->type == SIMUL_REDIS_MAP ? e->len : simul_redis_reply_len(e);
    for (size_t i = 0; i + 1 < n; i += 2) {
        const char *k = simul_redis_reply_str(simul_redis_reply_elem(e, i), NULL);
        if (k && strcmp(k, key) == 0)
            return simul_redis_reply_str(simul_redis_reply_elem(e, i + 1), NULL);
    }
    return NULL;
}

/* Suspends. A stream to a replica the sentinels consider up (not s_down / o_down /
 * disconnected, its link to the master ok) and that says so with ROLE; they take turns from one
 * connection to the next. -ENOENT when none is usable (the caller falls back to the master). */
static int open_replica(sentinel_ctx *x, simul_stream **out)
{
    int rc = -ENOENT;
    for (size_t i = 0; i < x->n; i++) {
        char sh[256], sp[16];
        simul_stream *s = NULL;
        if (split_addr(x->addrs[i], sh, sizeof sh, sp, sizeof sp) < 0 ||
            simul_open_connection(sh, sp, &s) < 0)
            continue;
        simul_redis_reply *r = NULL;
        int crc = 0;
        if (x->password) {
            const char *auth[] = {"AUTH", x->password};
            crc = raw_call(s, 2, auth, &r);
            simul_redis_reply_free(r);
            r = NULL;
        }
        const char *list[] = {"SENTINEL", "REPLICAS", x->master_name};
        if (crc == 0)
            crc = raw_call(s, 3, list, &r);
        simul_stream_abort(s);
        simul_stream_close(s);
        if (crc == -ECANCELED || crc == -ETIMEDOUT) {
            simul_redis_reply_free(r);
            return crc;
        }
        size_t n = crc == 0 ? simul_redis_reply_len(r) : 0;
        if (crc < 0 || !r || r->type != SIMUL_REDIS_ARRAY) {
            simul_redis_reply_free(r);
            continue;
        }
        unsigned start = x->rr++;
        for (size_t k = 0; k < n; k++) {
            const simul_redis_reply *e = simul_redis_reply_elem(r, (start + k) % n);
            const char *ip = entry_get(e, "ip"), *port = entry_get(e, "port");
            const char *flags = entry_get(e, "flags"), *link = entry_get(e, "master-link-status");
            if (!ip || !port || !flags || strstr(flags, "s_down") || strstr(flags, "o_down") ||
                strstr(flags, "disconnected") || (link && strcmp(link, "ok") != 0))
                continue;
            simul_stream *rs = NULL;
            int orc = simul_open_connection(ip, port, &rs);
            if (orc == -ECANCELED || orc == -ETIMEDOUT) {
                simul_redis_reply_free(r);
                return orc;
            }
            if (orc < 0)
                continue; /* down, and the sentinels do not know yet: the next one */
            const char *role[] = {"ROLE"};
            simul_redis_reply *rr = NULL;
            orc = raw_call(rs, 1, role, &rr);
            size_t wn = 0;
            const char *what = simul_redis_reply_str(simul_redis_reply_elem(rr, 0), &wn);
            bool ok = orc == 0 && ((what && wn == 5 && memcmp(what, "slave", 5) == 0) ||
                                   (rr && rr->type == SIMUL_REDIS_ERROR && rr->len >= 6 &&
                                    memcmp(rr->str, "NOAUTH", 6) == 0));
            simul_redis_reply_free(rr);
            if (ok) {
                simul_redis_reply_free(r);
                *out = rs;
                return 0;
            }
            simul_stream_abort(rs);
            simul_stream_close(rs);
        }
        simul_redis_reply_free(r);
        return -ENOENT; /* this sentinel knows no usable replica */
    }
    return rc;
}

/* The connect callback: the master now, checked with ROLE (or, for reads, a replica). */
static int sentinel_open(void *arg, simul_stream **out)
{
    sentinel_ctx *x = arg;
    if (x->replica) {
        int rc = open_replica(x, out);
        if (rc == 0 || rc == -ECANCELED || rc == -ETIMEDOUT)
            return rc;
        /* No replica is up: the master serves the reads. */
    }
    int last = -ENOTCONN;
    for (size_t i = 0; i < x->n; i++) {
        char host[256], port[16];
        int rc = ask_sentinel(x, i, host, sizeof host, port, sizeof port);
        if (rc == -ECANCELED || rc == -ETIMEDOUT)
            return rc;
        if (rc < 0) {
            last = rc;
            continue;
        }
        if (i > 0) {
            /* It answered: asked first next time. */
            char *a = x->addrs[i];
            memmove(x->addrs + 1, x->addrs, i * sizeof *x->addrs);
            x->addrs[0] = a;
        }
        simul_stream *s = NULL;
        rc = simul_open_connection(host, port, &s);
        if (rc < 0)
            return rc; /* the master the sentinels name is down: the back-off asks again */
        const char *role[] = {"ROLE"};
        simul_redis_reply *r = NULL;
        rc = raw_call(s, 1, role, &r);
        size_t n = 0;
        const char *what = simul_redis_reply_str(simul_redis_reply_elem(r, 0), &n);
        bool master = what && n == 6 && memcmp(what, "master", 6) == 0;
        /* A master that wants AUTH first cannot say (NOAUTH): taken on the sentinels' word. */
        bool noauth =
            r && r->type == SIMUL_REDIS_ERROR && r->len >= 6 && memcmp(r->str, "NOAUTH", 6) == 0;
        simul_redis_reply_free(r);
        if (rc == 0 && (master || noauth)) {
            *out = s;
            return 0;
        }
        simul_stream_abort(s);
        simul_stream_close(s);
        /* Not (or no longer) a master: a failover is under way; the reconnection's back-off
         * asks again. */
        return rc < 0 ? rc : -EAGAIN;
    }
    return last;
}

int simul_redis_sentinel_connect(const simul_redis_sentinel_opts *opts, simul_redis_conn **out)
{
    if (!opts || !out || !opts->sentinels || opts->nsentinels == 0 || !opts->master_name)
        return -EINVAL;
    *out = NULL;
    sentinel_ctx *x = calloc(1, sizeof *x);
    int rc = x ? 0 : -ENOMEM;
    if (rc == 0 && (!(x->addrs = calloc(opts->nsentinels, sizeof *x->addrs)) ||
                    !(x->master_name = strdup(opts->master_name)) ||
                    (opts->sentinel_password && !(x->password = strdup(opts->sentinel_password)))))
        rc = -ENOMEM;
    if (rc == 0)
        x->replica = opts->replica;
    for (size_t i = 0; rc == 0 && i < opts->nsentinels; i++) {
        char h[256], p[16];
        if (!opts->sentinels[i] || split_addr(opts->sentinels[i], h, sizeof h, p, sizeof p) < 0)
            rc = -EINVAL;
        else if (!(x->addrs[i] = strdup(opts->sentinels[i])))
            rc = -ENOMEM;
        else
            x->n++;
    }
    if (rc == 0) {
        simul_redis_opts o = opts->node;
        o.host = o.port = o.unix_path = NULL;
        o.connect_cb = sentinel_open;
        o.connect_arg = x;
        rc = simul_redis_connect(&o, out);
    }
    if (rc < 0) {
        ctx_free(x);
        return rc;
    }
    /* The connection (and its dedicated ones, which connect through the same callback) own it. */
    (*out)->owned_arg = x;
    (*out)->owned_free = ctx_free;
    /* READONLY (a write reaching a demoted master) means: find the master again. On a replica
     * connection it is only the answer to a write. */
    (*out)->rediscover = !opts->replica;
    return 0;
}

int simul_redis_sentinel_master_addr(const simul_redis_sentinel_opts *opts, char *host,
                                     size_t hostlen, int *port)
{
    if (!opts || !opts->sentinels || opts->nsentinels == 0 || !opts->master_name || !host ||
        hostlen == 0)
        return -EINVAL;
    sentinel_ctx x = {.addrs = (char **)opts->sentinels,
                      .n = opts->nsentinels,
                      .master_name = (char *)opts->master_name,
                      .password = (char *)opts->sentinel_password};
    int last = -ENOTCONN;
    for (size_t i = 0; i < x.n; i++) {
        char p[16];
        int rc = ask_sentinel(&x, i, host, hostlen, p, sizeof p);
        if (rc == 0) {
            if (port)
                *port = atoi(p);
            return 0;
        }
        if (rc == -ECANCELED || rc == -ETIMEDOUT)
            return rc;
        last = rc;
    }
    return last;
}
