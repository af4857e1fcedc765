/* txn.c — MULTI/EXEC with WATCH on a dedicated connection, and Lua scripts by SHA-1.
 * The idea: WATCH state lives in a server connection, so a transaction holds a connection of the
 * pool for its whole life (reads of watched keys, then MULTI ... EXEC in one write); a conflict
 * (EXEC's nil) is its own error, -EAGAIN, so simul_redis_transaction can retry the caller's
 * function. A connection whose transaction was cut short is closed, never handed on mid-WATCH. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "conn.h"

struct simul_redis_txn {
    simul_redis_conn *c, *d;
    simul_redis_buf q; /* queued commands, encoded */
    size_t nq;
    bool watching, executed;
    bool broken; /* a command on d failed or was abandoned: d is closed, not reused */
    /* On a cluster (cluster.c): every key must be in `slot`, checked before sending; a MOVED or
     * ASK answer to any of its commands is kept in `redirect` for the retry loop. */
    simul_redis_cluster *cl;
    int slot;
    char *redirect;
};

static void txn_free(simul_redis_txn *t)
{
    simul_redis_buf_free(&t->q);
    free(t->redirect);
    free(t);
}

static bool is_redirect(const simul_redis_reply *r)
{
    size_t n = 0;
    const char *m = r && r->type == SIMUL_REDIS_ERROR ? simul_redis_reply_str(r, &n) : NULL;
    return m && ((n > 6 && memcmp(m, "MOVED ", 6) == 0) || (n > 4 && memcmp(m, "ASK ", 4) == 0));
}

/* Keeps the first redirect answer seen (the cluster's retry loop reads it). */
static void note_redirect(simul_redis_txn *t, const simul_redis_reply *r)
{
    if (t->cl && !t->redirect && is_redirect(r))
        t->redirect = strndup(r->str, r->len);
}

void redis__txn_set_cluster(simul_redis_txn *t, simul_redis_cluster *cl, int slot)
{
    t->cl = cl;
    t->slot = slot;
}

const char *redis__txn_redirect(const simul_redis_txn *t)
{
    return t->redirect;
}

/* On a cluster: whether the command's keys are all in the transaction's slot. 0, -EXDEV;
 * may_suspend false skips commands whose keys only the server can name (it then refuses them
 * with CROSSSLOT, and EXEC with EXECABORT). */
static int slot_check(simul_redis_txn *t, const enc *e, bool may_suspend)
{
    if (!t->cl)
        return 0;
    simul_redis_buf b = {0};
    ssize_t n = redis__encode(&b, e);
    simul_redis_reply *tree = NULL;
    int rc = n < 0 ? (int)n : redis__decode_argv(&b, &tree);
    simul_redis_buf_free(&b);
    if (rc < 0)
        return rc;
    const char **argv = malloc(tree->len * sizeof *argv);
    size_t *lens = malloc(tree->len * sizeof *lens);
    rc = argv && lens ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < tree->len; i++) {
        argv[i] = tree->elem[i].str;
        lens[i] = tree->elem[i].len;
    }
    if (rc == 0) {
        int slot = redis__cluster_slot(t->cl, (int)tree->len, argv, lens, may_suspend);
        if (slot == -EXDEV || (slot >= 0 && slot != t->slot))
            rc = -EXDEV;
        else if (slot < -1 && slot != -EAGAIN)
            rc = slot;
    }
    free(argv);
    free(lens);
    simul_redis_reply_free(tree);
    return rc;
}

int simul_redis_txn_begin(simul_redis_conn *c, const char *const *watch, size_t nwatch,
                          simul_redis_txn **out)
{
    return redis__txn_begin(c, watch, nwatch, out, NULL);
}

int redis__txn_begin(simul_redis_conn *c, const char *const *watch, size_t nwatch,
                     simul_redis_txn **out, simul_redis_reply **werr)
{
    if (werr)
        *werr = NULL;
    if (!c || !out || (nwatch > 0 && !watch) || nwatch > 1000000)
        return -EINVAL;
    *out = NULL;
    simul_redis_txn *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->c = c;
    redis__enter(c);
    int rc = redis__pool_acquire(c, &t->d);
    if (rc == 0 && nwatch > 0) {
        const char **argv = malloc((nwatch + 1) * sizeof *argv);
        if (!argv) {
            rc = -ENOMEM;
        } else {
            argv[0] = "WATCH";
            memcpy(argv + 1, watch, nwatch * sizeof *argv);
            simul_redis_reply *r = NULL;
            enc e = {.argc = (int)nwatch + 1, .argv = argv};
            rc = redis__execute(t->d, 0, CMD_NORMAL, 0, &e, &r);
            if (rc == -EREMOTEIO && werr)
                *werr = r; /* a cluster node's MOVED, for the caller */
            else
                simul_redis_reply_free(r);
            free(argv);
            t->watching = rc == 0;
        }
        if (rc < 0)
            redis__pool_release(c, t->d, rc == -EREMOTEIO);
    }
    if (rc < 0) {
        redis__leave(c);
        txn_free(t);
        return rc;
    }
    /* The transaction stays inside a call on c until closed: closing c (a cluster replacing a
     * failed node's connection) waits for it instead of freeing the pool under it. */
    *out = t;
    return 0;
}

static int txn_run(simul_redis_txn *t, simul_redis_reply **reply, const enc *e)
{
    if (!t || t->executed)
        return -EINVAL;
    if (t->broken)
        return -ENOTCONN;
    int rc = slot_check(t, e, true);
    if (rc < 0)
        return rc;
    simul_redis_reply *r = NULL;
    rc = redis__execute(t->d, 0, CMD_NORMAL, 0, e, &r);
    if (rc < 0 && rc != -EREMOTEIO)
        t->broken = true;
    note_redirect(t, r);
    if (reply)
        *reply = r;
    else
        simul_redis_reply_free(r);
    return rc;
}

int simul_redis_txn_command_argv(simul_redis_txn *t, simul_redis_reply **reply, int argc,
                                 const char *const *argv, const size_t *argvlen)
{
    if (reply)
        *reply = NULL;
    if (argc < 1 || !argv || !argv[0])
        return -EINVAL;
    enc e = {.argc = argc, .argv = argv, .argvlen = argvlen};
    return txn_run(t, reply, &e);
}

int simul_redis_txn_command(simul_redis_txn *t, simul_redis_reply **reply, const char *fmt, ...)
{
    if (reply)
        *reply = NULL;
    if (!fmt)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    enc e = {.fmt = fmt, .ap = &ap};
    int rc = txn_run(t, reply, &e);
    va_end(ap);
    return rc;
}

int simul_redis_txn_queue_argv(simul_redis_txn *t, int argc, const char *const *argv,
                               const size_t *argvlen)
{
    if (!t || t->executed || argc < 1 || !argv || !argv[0])
        return -EINVAL;
    enc e = {.argc = argc, .argv = argv, .argvlen = argvlen};
    int rc = slot_check(t, &e, false);
    if (rc < 0)
        return rc;
    ssize_t n = simul_redis_encode(&t->q, argc, argv, argvlen);
    if (n < 0)
        return (int)n;
    t->nq++;
    return 0;
}

int simul_redis_txn_queue(simul_redis_txn *t, const char *fmt, ...)
{
    if (!t || t->executed || !fmt)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    enc e = {.fmt = fmt, .ap = &ap};
    int rc = slot_check(t, &e, false);
    ssize_t n = rc < 0 ? rc : simul_redis_vencodef(&t->q, fmt, ap);
    va_end(ap);
    if (n < 0)
        return (int)n;
    t->nq++;
    return 0;
}

int simul_redis_txn_exec(simul_redis_txn *t, simul_redis_reply **reply)
{
    if (reply)
        *reply = NULL;
    if (!t || t->executed)
        return -EINVAL;
    if (t->broken)
        return -ENOTCONN;
    t->executed = true;
    /* MULTI, the queued commands and EXEC as one pipeline: one write, contiguous. */
    size_t n = t->nq + 2;
    simul_redis_pipeline p = {.conn = t->d};
    simul_redis_reply **replies = calloc(n, sizeof *replies);
    int *results = calloc(n, sizeof *results);
    int rc = replies && results ? 0 : -ENOMEM;
    if (rc == 0 && simul_redis_encode(&p.buf, 1, (const char *[]){"MULTI"}, NULL) < 0)
        rc = -ENOMEM;
    if (rc == 0 && simul_redis_buf_reserve(&p.buf, t->q.len) < 0)
        rc = -ENOMEM;
    if (rc == 0) {
        if (t->q.len)
            memcpy(p.buf.data + p.buf.len, t->q.data, t->q.len);
        p.buf.len += t->q.len;
        if (simul_redis_encode(&p.buf, 1, (const char *[]){"EXEC"}, NULL) < 0)
            rc = -ENOMEM;
    }
    p.n = n;
    if (rc == 0)
        rc = simul_redis_pipeline_exec(&p, replies, results);
    for (size_t i = 1; rc == 0 && i < n; i++)
        note_redirect(t, replies[i]); /* a queued command's MOVED makes EXEC's EXECABORT */
    if (rc == 0) {
        simul_redis_reply *x = replies[n - 1];
        replies[n - 1] = NULL;
        rc = results[n - 1];
        if (rc == 0 && x && x->type == SIMUL_REDIS_NIL) {
            rc = -EAGAIN; /* a watched key changed: nothing ran */
            simul_redis_reply_free(x);
            x = NULL;
        } else if (rc < 0 && rc != -EREMOTEIO) {
            t->broken = true;
        }
        /* EXECABORT (-EREMOTEIO, x holds it): a queued command was refused, nothing ran. */
        if (reply)
            *reply = x;
        else
            simul_redis_reply_free(x);
    } else {
        t->broken = true;
    }
    t->watching = false; /* EXEC (whatever it said) ends every WATCH */
    for (size_t i = 0; replies && i < n; i++)
        simul_redis_reply_free(replies[i]);
    free(replies);
    free(results);
    simul_redis_buf_free(&p.buf);
    return rc;
}

int simul_redis_txn_close(simul_redis_txn *t)
{
    if (!t)
        return 0;
    /* Still watching (never executed): closing the connection is what surely drops the WATCH
     * without a round trip that could stall a cancelled caller. */
    bool reuse = !t->broken && !t->watching;
    redis__pool_release(t->c, t->d, reuse);
    redis__leave(t->c); /* entered by begin */
    txn_free(t);
    return 0;
}

int simul_redis_transaction(simul_redis_conn *c, const char *const *watch, size_t nwatch,
                            simul_redis_txn_fn fn, void *arg, unsigned max_attempts,
                            simul_redis_reply **reply)
{
    if (reply)
        *reply = NULL;
    if (!c || !fn)
        return -EINVAL;
    int rc = -EAGAIN;
    for (unsigned attempt = 0; max_attempts == 0 || attempt < max_attempts; attempt++) {
        simul_redis_txn *t = NULL;
        rc = simul_redis_txn_begin(c, watch, nwatch, &t);
        if (rc < 0)
            return rc;
        rc = fn(t, arg);
        if (rc == 0)
            rc = simul_redis_txn_exec(t, reply);
        simul_redis_txn_close(t);
        if (rc != -EAGAIN)
            return rc;
        c->st.txn_conflicts++;
        rc = simul_checkpoint(); /* a conflict loop still honours cancel and deadline */
        if (rc < 0)
            return rc;
        rc = -EAGAIN;
    }
    return rc;
}

/* ---- scripts ------------------------------------------------------------------------------- */

struct simul_redis_script {
    char *src;
    size_t len;
    char sha[41];
};

int simul_redis_script_new(const char *source, simul_redis_script **out)
{
    if (!source || !out)
        return -EINVAL;
    simul_redis_script *s = calloc(1, sizeof *s);
    if (!s || !(s->src = strdup(source))) {
        free(s);
        return -ENOMEM;
    }
    s->len = strlen(source);
    /* Redis names a script by the SHA-1 of its source in lowercase hex (OpenSSL's digest). */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(s->src, s->len, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) {
        free(s->src);
        free(s);
        return -ENOMEM; /* OpenSSL could not allocate its context */
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 20; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = 0;
    *out = s;
    return 0;
}

void simul_redis_script_free(simul_redis_script *s)
{
    if (!s)
        return;
    free(s->src);
    free(s);
}

const char *simul_redis_script_sha1(const simul_redis_script *s)
{
    return s ? s->sha : NULL;
}

int simul_redis_script_call(simul_redis_conn *c, simul_redis_script *s, simul_redis_reply **reply,
                            int nkeys, const char *const *keys, const size_t *keylens, int nargs,
                            const char *const *args, const size_t *arglens)
{
    if (reply)
        *reply = NULL;
    if (!c || !s || nkeys < 0 || nargs < 0 || (nkeys > 0 && !keys) || (nargs > 0 && !args) ||
        nkeys > 1000000 || nargs > 1000000)
        return -EINVAL;
    int argc = 3 + nkeys + nargs;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return -ENOMEM;
    }
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = s->sha;
    lens[1] = 40;
    argv[2] = nk;
    lens[2] = strlen(nk);
    for (int i = 0; i < nkeys; i++) {
        argv[3 + i] = keys[i];
        lens[3 + i] = keylens ? keylens[i] : strlen(keys[i]);
    }
    for (int i = 0; i < nargs; i++) {
        argv[3 + nkeys + i] = args[i];
        lens[3 + nkeys + i] = arglens ? arglens[i] : strlen(args[i]);
    }
    simul_redis_reply *r = NULL;
    int rc = simul_redis_command_argv(c, 0, &r, argc, argv, lens);
    size_t n = 0;
    const char *m = rc == -EREMOTEIO ? simul_redis_reply_str(r, &n) : NULL;
    if (m && n >= 8 && memcmp(m, "NOSCRIPT", 8) == 0) {
        /* Not cached on this server (restarted, SCRIPT FLUSH, another node): EVAL sends the
         * source, and the server caches it under the same SHA-1 for the next call. */
        simul_redis_reply_free(r);
        r = NULL;
        argv[0] = "EVAL";
        lens[0] = 4;
        argv[1] = s->src;
        lens[1] = s->len;
        rc = simul_redis_command_argv(c, 0, &r, argc, argv, lens);
        c->st.script_fallbacks++;
    }
    free(argv);
    free(lens);
    if (reply)
        *reply = r;
    else
        simul_redis_reply_free(r);
    return rc;
}
