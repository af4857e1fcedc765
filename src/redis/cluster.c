/* cluster.c — Redis Cluster: the slot map read from the cluster (CLUSTER SLOTS), one multiplexed
 * connection per node, commands routed by their keys' slot, MOVED / ASK / TRYAGAIN followed.
 * The idea: the map is only a guess that the cluster corrects: a MOVED answer fixes that slot at
 * once and refreshes the whole map (single-flight), an ASK answer is obeyed once (ASKING + the
 * command, contiguous on the target) without touching the map, so a slot migrating under traffic
 * costs the caller a redirect, never an error. Keys are found from the server's own COMMAND
 * table (first/last/step), COMMAND GETKEYS for the commands whose keys move. Transactions live in
 * one slot and start over on a MOVED; a sharded subscription subscribes again wherever its slot
 * went; readonly commands may go to a replica, falling back to the master. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"

#define SLOTS 16384
#define MAX_REDIRECTS_DEFAULT 16
#define MAX_WAITS 64
#define REPLICA_AVOID_NS 1000000000ull

typedef struct node {
    char *host, *port;
    simul_redis_conn *conn; /* NULL until first used, or after it failed */
    bool connecting;        /* a task is making conn: others wait on cl->changed */
    bool readonly;          /* READONLY was sent on conn (replica reads) */
    uint64_t avoid_until;   /* replica reads skip it until then (simul_now_ns): it failed */
} node;

typedef struct keyspec {
    char *name; /* lower case */
    int first, last, step;
    bool movable;
    bool readonly; /* flagged readonly (and not write): may be read from a replica */
} keyspec;

struct simul_redis_cluster {
    simul_redis_opts o; /* per-node template; strings point into the copies below */
    char *username, *password, *client_name;
    simul_redis_limits limits;
    unsigned max_redirects;
    node **nodes;
    size_t nnodes;
    int slot[SLOTS]; /* node index, -1: unknown */
    int replica[SLOTS]; /* a replica's node index (read_from_replicas), -1: none */
    bool read_replicas;
    keyspec *specs;
    size_t nspecs;
    bool refreshing;
    uint64_t refreshes;   /* map refreshes done (their count; waiters compare) */
    simul_event *changed; /* set when a refresh or a node connection ends; cleared at start */
    unsigned users;
    bool closing;
    simul_event *idle;
    struct simul_redis_cluster_subscription *subs; /* sharded subscriptions not yet closed */
    simul_redis_cluster_stats st;
};

/* ---- slots ---------------------------------------------------------------------------------- */

/* CRC16-CCITT (XModem), as the cluster specification defines the key slot. */
static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned simul_redis_cluster_keyslot(const char *key, size_t len)
{
    /* A hash tag: the bytes between the first '{' and the next '}', if not empty. */
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) % SLOTS;
    }
    return crc16(key, len) % SLOTS;
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static int node_find_or_add(simul_redis_cluster *cl, const char *host, size_t hn, const char *port,
                            size_t pn)
{
    for (size_t i = 0; i < cl->nnodes; i++) {
        node *x = cl->nodes[i];
        if (strlen(x->host) == hn && memcmp(x->host, host, hn) == 0 && strlen(x->port) == pn &&
            memcmp(x->port, port, pn) == 0)
            return (int)i;
    }
    node **grown = realloc(cl->nodes, (cl->nnodes + 1) * sizeof *grown);
    if (!grown)
        return -ENOMEM;
    cl->nodes = grown;
    node *x = calloc(1, sizeof *x);
    if (!x || !(x->host = strndup(host, hn)) || !(x->port = strndup(port, pn))) {
        if (x)
            free(x->host);
        free(x);
        return -ENOMEM;
    }
    cl->nodes[cl->nnodes] = x;
    return (int)cl->nnodes++;
}

/* "host:port" (the host may hold ':' for IPv6: the port is after the last one). */
static int node_from_addr(simul_redis_cluster *cl, const char *addr, size_t n)
{
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (addr[i] == ':')
            colon = addr + i;
    if (!colon || colon == addr || colon == addr + n - 1)
        return -EPROTO;
    return node_find_or_add(cl, addr, (size_t)(colon - addr), colon + 1,
                            n - (size_t)(colon - addr) - 1);
}

/* Suspends. The node's connection, made on first use (one task connects, others wait). */
static int node_conn(simul_redis_cluster *cl, int idx, simul_redis_conn **out)
{
    for (;;) {
        if (cl->closing)
            return -ESHUTDOWN;
        node *x = cl->nodes[idx];
        if (x->conn && simul_redis_connected(x->conn)) {
            *out = x->conn;
            return 0;
        }
        if (x->conn) {
            /* Failed (no reconnection for nodes: the map decides where to go next). Taken out
             * first so no other task closes it too. */
            simul_redis_conn *dead = x->conn;
            x->conn = NULL;
            simul_redis_close(dead);
            continue;
        }
        if (x->connecting) {
            simul_event_clear(cl->changed);
            int rc = simul_event_wait(cl->changed);
            if (rc < 0)
                return rc;
            continue;
        }
        x->connecting = true;
        simul_redis_opts o = cl->o;
        o.host = x->host;
        o.port = x->port;
        o.unix_path = NULL;
        o.no_reconnect = true;
        simul_redis_conn *c = NULL;
        int rc = simul_redis_connect(&o, &c);
        x = cl->nodes[idx]; /* the array may have grown meanwhile */
        x->connecting = false;
        simul_event_set(cl->changed);
        if (rc < 0)
            return rc;
        if (cl->closing) {
            simul_redis_close(c);
            return -ESHUTDOWN;
        }
        x->conn = c;
        x->readonly = false;
        cl->st.node_connects++;
    }
}

/* ---- the map -------------------------------------------------------------------------------- */

static int apply_slots(simul_redis_cluster *cl, const simul_redis_reply *r, int asked)
{
    if (!r || r->type != SIMUL_REDIS_ARRAY)
        return -EPROTO;
    int *map = malloc(2 * SLOTS * sizeof *map); /* 128 KiB: not on a task's stack */
    if (!map)
        return -ENOMEM;
    int *rmap = map + SLOTS;
    for (int i = 0; i < 2 * SLOTS; i++)
        map[i] = -1;
    int rc = 0;
    for (size_t i = 0; i < r->len; i++) {
        const simul_redis_reply *e = &r->elem[i];
        const simul_redis_reply *lo = simul_redis_reply_elem(e, 0),
                                *hi = simul_redis_reply_elem(e, 1);
        const simul_redis_reply *m = simul_redis_reply_elem(e, 2);
        if (!lo || !hi || lo->type != SIMUL_REDIS_INTEGER || hi->type != SIMUL_REDIS_INTEGER ||
            lo->integer < 0 || hi->integer >= SLOTS || lo->integer > hi->integer) {
            rc = -EPROTO;
            break;
        }
        size_t hn = 0;
        const char *host = simul_redis_reply_str(simul_redis_reply_elem(m, 0), &hn);
        const simul_redis_reply *port = simul_redis_reply_elem(m, 1);
        if (!host || !port || port->type != SIMUL_REDIS_INTEGER) {
            rc = -EPROTO;
            break;
        }
        char ps[16];
        int pn = snprintf(ps, sizeof ps, "%lld", port->integer);
        int idx;
        if (hn == 0 || (hn == 1 && host[0] == '?')) {
            /* An unknown address: the node we asked ("" in CLUSTER SLOTS means that one). */
            node *a = cl->nodes[asked];
            idx = node_find_or_add(cl, a->host, strlen(a->host), ps, (size_t)pn);
        } else {
            idx = node_find_or_add(cl, host, hn, ps, (size_t)pn);
        }
        if (idx < 0) {
            rc = idx;
            break;
        }
        for (long long s = lo->integer; s <= hi->integer; s++)
            map[s] = idx;
        /* Its replicas follow the master; a range is read from one of them, picked by the
         * range's position so that several replicas share the reads of their master. */
        size_t nrep = r->elem[i].len > 3 ? r->elem[i].len - 3 : 0;
        int ridx = -1;
        for (size_t k = 0; k < nrep && ridx < 0; k++) {
            const simul_redis_reply *rp = simul_redis_reply_elem(e, 3 + (i + k) % nrep);
            size_t rhn = 0;
            const char *rh = simul_redis_reply_str(simul_redis_reply_elem(rp, 0), &rhn);
            const simul_redis_reply *rport = simul_redis_reply_elem(rp, 1);
            if (!rh || rhn == 0 || (rhn == 1 && rh[0] == '?') || !rport ||
                rport->type != SIMUL_REDIS_INTEGER)
                continue;
            char rps[16];
            int rpn = snprintf(rps, sizeof rps, "%lld", rport->integer);
            ridx = node_find_or_add(cl, rh, rhn, rps, (size_t)rpn);
            if (ridx < 0) {
                rc = ridx;
                break;
            }
        }
        if (rc < 0)
            break;
        for (long long s = lo->integer; s <= hi->integer; s++)
            rmap[s] = ridx;
    }
    if (rc == 0) {
        memcpy(cl->slot, map, SLOTS * sizeof *map);
        memcpy(cl->replica, rmap, SLOTS * sizeof *map);
    }
    free(map);
    return rc;
}

/* Suspends. Reads the slot map from the first node that answers (single-flight: a task that
 * finds a refresh running waits for its outcome instead). */
static int refresh(simul_redis_cluster *cl)
{
    if (cl->refreshing) {
        uint64_t seen = cl->refreshes;
        while (cl->refreshing && cl->refreshes == seen) {
            simul_event_clear(cl->changed);
            int rc = simul_event_wait(cl->changed);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    cl->refreshing = true;
    int rc = -ENOTCONN;
    /* Nodes with a live connection first, then the rest (the seeds are nodes too). */
    for (int pass = 0; pass < 2 && rc < 0; pass++) {
        for (size_t i = 0; i < cl->nnodes && rc < 0; i++) {
            node *x = cl->nodes[i];
            bool live = x->conn && simul_redis_connected(x->conn);
            if (live != (pass == 0))
                continue;
            simul_redis_conn *c = NULL;
            int crc = node_conn(cl, (int)i, &c);
            if (crc < 0) {
                if (crc == -ECANCELED || crc == -ETIMEDOUT || crc == -ESHUTDOWN) {
                    rc = crc;
                    break;
                }
                continue;
            }
            simul_redis_reply *r = NULL;
            const char *argv[] = {"CLUSTER", "SLOTS"};
            crc = simul_redis_command_argv(c, 0, &r, 2, argv, NULL);
            if (crc == 0)
                crc = apply_slots(cl, r, (int)i);
            simul_redis_reply_free(r);
            if (crc == 0)
                rc = 0;
            else if (crc == -ECANCELED || crc == -ETIMEDOUT)
                rc = crc;
        }
    }
    cl->refreshing = false;
    cl->refreshes++;
    cl->st.refreshes++;
    simul_event_set(cl->changed);
    return rc;
}

/* ---- keys ----------------------------------------------------------------------------------- */

static int spec_cmp(const void *a, const void *b)
{
    return strcmp(((const keyspec *)a)->name, ((const keyspec *)b)->name);
}

static int load_specs(simul_redis_cluster *cl, simul_redis_conn *c)
{
    simul_redis_reply *r = NULL;
    const char *argv[] = {"COMMAND"};
    int rc = simul_redis_command_argv(c, 0, &r, 1, argv, NULL);
    if (rc < 0) {
        simul_redis_reply_free(r);
        return rc;
    }
    size_t n = simul_redis_reply_len(r);
    cl->specs = calloc(n ? n : 1, sizeof *cl->specs);
    if (!cl->specs) {
        simul_redis_reply_free(r);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const simul_redis_reply *e = simul_redis_reply_elem(r, i);
        size_t nl = 0;
        const char *name = simul_redis_reply_str(simul_redis_reply_elem(e, 0), &nl);
        if (!name)
            continue;
        keyspec *k = &cl->specs[cl->nspecs];
        if (!(k->name = strndup(name, nl))) {
            simul_redis_reply_free(r);
            return -ENOMEM;
        }
        for (char *p = k->name; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        const simul_redis_reply *flags = simul_redis_reply_elem(e, 2);
        for (size_t f = 0; f < simul_redis_reply_len(flags); f++) {
            size_t fl = 0;
            const char *s = simul_redis_reply_str(simul_redis_reply_elem(flags, f), &fl);
            if (s && fl == 11 && memcmp(s, "movablekeys", 11) == 0)
                k->movable = true;
            if (s && fl == 8 && memcmp(s, "readonly", 8) == 0)
                k->readonly = true;
        }
        /* A blocking read (XREAD BLOCK) would run on the replica's pool, whose connections
         * have not said READONLY: those stay with the master. */
        if (redis__maybe_blocking(k->name, strlen(k->name)))
            k->readonly = false;
        k->first = (int)simul_redis_reply_integer(simul_redis_reply_elem(e, 3));
        k->last = (int)simul_redis_reply_integer(simul_redis_reply_elem(e, 4));
        k->step = (int)simul_redis_reply_integer(simul_redis_reply_elem(e, 5));
        cl->nspecs++;
    }
    simul_redis_reply_free(r);
    qsort(cl->specs, cl->nspecs, sizeof *cl->specs, spec_cmp);
    return 0;
}

static const keyspec *spec_find(const simul_redis_cluster *cl, const char *name, size_t n)
{
    char low[64];
    if (n >= sizeof low)
        return NULL;
    for (size_t i = 0; i < n; i++)
        low[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
    low[n] = 0;
    keyspec key = {.name = low};
    return bsearch(&key, cl->specs, cl->nspecs, sizeof *cl->specs, spec_cmp);
}

static size_t arglen(const char *const *argv, const size_t *lens, int i)
{
    return lens ? lens[i] : strlen(argv[i]);
}

/* Folds one key into *slot: -1 none yet; -EXDEV once two keys differ. */
static void fold(int *slot, const char *key, size_t n)
{
    int s = (int)simul_redis_cluster_keyslot(key, n);
    if (*slot == -1)
        *slot = s;
    else if (*slot >= 0 && *slot != s)
        *slot = -EXDEV;
}

/* Suspends (COMMAND GETKEYS for movable keys). The slot of the command's keys: >= 0; -1 when it
 * has none; -EXDEV when they are in more than one slot; another error from GETKEYS. */
static int command_slot(simul_redis_cluster *cl, int argc, const char *const *argv,
                        const size_t *lens)
{
    size_t n0 = arglen(argv, lens, 0);
    const keyspec *k = spec_find(cl, argv[0], n0);
    int slot = -1;
    if (!k)
        return -1; /* unknown here: any node (it answers "unknown command" itself) */
    if (k->movable) {
        /* The keys depend on the arguments (EVAL's numkeys, XREAD's STREAMS, ...): the server
         * says which they are. */
        const char **gv = malloc((size_t)(argc + 2) * sizeof *gv);
        size_t *gl = malloc((size_t)(argc + 2) * sizeof *gl);
        if (!gv || !gl) {
            free(gv);
            free(gl);
            return -ENOMEM;
        }
        gv[0] = "COMMAND";
        gl[0] = 7;
        gv[1] = "GETKEYS";
        gl[1] = 7;
        for (int i = 0; i < argc; i++) {
            gv[i + 2] = argv[i];
            gl[i + 2] = arglen(argv, lens, i);
        }
        simul_redis_conn *c = NULL;
        int rc = -ENOTCONN;
        for (size_t i = 0; i < cl->nnodes && rc < 0; i++)
            rc = node_conn(cl, (int)i, &c);
        simul_redis_reply *r = NULL;
        if (rc == 0)
            rc = simul_redis_command_argv(c, 0, &r, argc + 2, gv, gl);
        free(gv);
        free(gl);
        cl->st.getkeys++;
        if (rc == -EREMOTEIO) {
            simul_redis_reply_free(r); /* "no key arguments" */
            return -1;
        }
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < simul_redis_reply_len(r); i++) {
            size_t kn = 0;
            const char *key = simul_redis_reply_str(simul_redis_reply_elem(r, i), &kn);
            if (key)
                fold(&slot, key, kn);
        }
        simul_redis_reply_free(r);
        return slot;
    }
    if (k->first <= 0)
        return -1;
    int last = k->last < 0 ? argc + k->last : k->last;
    int step = k->step > 0 ? k->step : 1;
    for (int i = k->first; i <= last && i < argc; i += step)
        fold(&slot, argv[i], arglen(argv, lens, i));
    return slot;
}

int redis__cluster_slot(simul_redis_cluster *cl, int argc, const char *const *argv,
                        const size_t *lens, bool may_suspend)
{
    if (!may_suspend) {
        const keyspec *k = spec_find(cl, argv[0], arglen(argv, lens, 0));
        if (k && k->movable)
            return -EAGAIN;
    }
    return command_slot(cl, argc, argv, lens);
}

/* ---- commands ------------------------------------------------------------------------------- */

static bool err_is(const simul_redis_reply *r, const char *prefix, const char **rest, size_t *rn)
{
    size_t n = 0;
    const char *s = simul_redis_reply_str(r, &n);
    size_t k = strlen(prefix);
    if (!s || n < k || memcmp(s, prefix, k) != 0)
        return false;
    if (rest) {
        *rest = s + k;
        *rn = n - k;
    }
    return true;
}

/* "MOVED 3999 127.0.0.1:6381": the node of the address after the slot. */
static int redirect_target(simul_redis_cluster *cl, const char *rest, size_t n)
{
    const char *sp = memchr(rest, ' ', n);
    if (!sp)
        return -EPROTO;
    size_t off = (size_t)(sp - rest) + 1;
    return node_from_addr(cl, rest + off, n - off);
}

static bool conn_error(int rc)
{
    return rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -ENOTCONN || rc == -EPIPE ||
           rc == -ECONNABORTED || rc == -EHOSTUNREACH || rc == -ENETUNREACH || rc == -ESHUTDOWN;
}

/* ASKING and the command, contiguous on the target connection. */
static int asking_call(simul_redis_conn *c, unsigned flags, simul_redis_reply **reply, int argc,
                       const char *const *argv, const size_t *lens)
{
    (void)flags;
    simul_redis_pipeline *p = NULL;
    int rc = simul_redis_pipeline_new(c, &p);
    if (rc < 0)
        return rc;
    const char *asking[] = {"ASKING"};
    simul_redis_reply *r[2] = {NULL, NULL};
    int res[2] = {0, 0};
    rc = simul_redis_pipeline_add_argv(p, 1, asking, NULL);
    if (rc == 0)
        rc = simul_redis_pipeline_add_argv(p, argc, argv, lens);
    if (rc == 0)
        rc = simul_redis_pipeline_exec(p, r, res);
    simul_redis_pipeline_free(p);
    simul_redis_reply_free(r[0]);
    if (rc < 0)
        return rc;
    *reply = r[1];
    return res[1];
}

/* Between retries of a redirected or refused command: 5 ms doubling up to 320 ms, no jitter
 * (the wait is for one cluster's topology to settle, not a herd of clients to spread out). */
static int backoff(unsigned attempt)
{
    static const simul_backoff_opts o = {.base = 0.005, .cap = 0.32};
    return simul_sleep(simul_backoff_delay(&o, attempt, 0));
}

int simul_redis_cluster_command_argv(simul_redis_cluster *cl, unsigned flags,
                                     simul_redis_reply **reply, int argc, const char *const *argv,
                                     const size_t *argvlen)
{
    if (reply)
        *reply = NULL;
    if (!cl || argc < 1 || !argv || !argv[0])
        return -EINVAL;
    if (cl->closing)
        return -ESHUTDOWN;
    cl->users++;
    int slot = command_slot(cl, argc, argv, argvlen);
    int rc = slot;
    if (slot == -EXDEV)
        cl->st.crossslot++;
    int ask = -1; /* the node an ASK sent us to, for one try */
    /* Reads may go to the slot's replica (read_from_replicas); any trouble there (unreachable,
     * READONLY refused, lost in flight: a read is safe to resend) sends it to the master. */
    bool to_replica = false;
    if (cl->read_replicas && slot >= 0) {
        const keyspec *k = spec_find(cl, argv[0], arglen(argv, argvlen, 0));
        to_replica = k && k->readonly;
    }
    /* Redirects (MOVED, ASK) are bounded by max_redirects; waits (TRYAGAIN, CLUSTERDOWN, a node
     * unreachable, a slot unserved) by MAX_WAITS pauses, about 20 s, and the caller's deadline. */
    unsigned redirects = 0, waits = 0;
    for (unsigned attempt = 0; slot >= -1; attempt++) {
        if (redirects > cl->max_redirects) {
            rc = -ELOOP;
            break;
        }
        if (waits > MAX_WAITS) {
            rc = rc < 0 ? rc : -EAGAIN;
            break;
        }
        int idx = ask >= 0 ? ask : slot >= 0 ? cl->slot[slot] : (cl->nnodes ? 0 : -1);
        bool on_replica = false;
        /* The replica's index is read once: node_conn and READONLY suspend, and meanwhile
         * another task's refresh may drop the replica from the map (-1: it failed) or name
         * another one. */
        int ridx = to_replica && ask < 0 && slot >= 0 && idx >= 0 ? cl->replica[slot] : -1;
        if (ridx >= 0 && cl->nodes[ridx]->avoid_until <= (uint64_t)simul_now_ns()) {
            simul_redis_conn *rc_ = NULL;
            int rrc = node_conn(cl, ridx, &rc_);
            node *x = cl->nodes[ridx];
            if (rrc == 0 && !x->readonly) {
                const char *ro[] = {"READONLY"};
                rrc = simul_redis_command_argv(rc_, 0, NULL, 1, ro, NULL);
                /* Only for the connection it was said on: the node's may have been replaced
                 * (failed and made again by another task) meanwhile. */
                if (rrc == 0 && x->conn == rc_)
                    x->readonly = true;
            }
            if (rrc == -ECANCELED || (rrc == -ETIMEDOUT && simul_checkpoint() < 0)) {
                rc = rrc;
                break;
            }
            if (rrc == 0) {
                idx = ridx;
                on_replica = true;
            } else {
                /* The master serves this one, and the replica's reads for a second (until the
                 * cluster marks it failed and the map leaves it out). */
                to_replica = false;
                x->avoid_until = (uint64_t)simul_now_ns() + REPLICA_AVOID_NS;
                cl->st.replica_fallbacks++;
                refresh(cl);
                idx = cl->slot[slot];
            }
        }
        if (idx < 0) {
            /* A slot no master serves (yet): the map may be stale, or the cluster down. */
            rc = refresh(cl);
            if (rc == 0 && cl->slot[slot] < 0)
                rc = backoff(waits++);
            if (rc < 0)
                break;
            continue;
        }
        simul_redis_conn *c = NULL;
        rc = node_conn(cl, idx, &c);
        if (rc < 0) {
            if (!conn_error(rc) && rc != -ETIMEDOUT)
                break;
            if (rc == -ETIMEDOUT && simul_checkpoint() < 0)
                break; /* the caller's own deadline */
            /* Nothing was sent: safe to look again (a failover moves the slot). */
            ask = -1;
            if ((rc = refresh(cl)) < 0 || (rc = backoff(waits++)) < 0)
                break;
            continue;
        }
        simul_redis_reply *r = NULL;
        if (ask >= 0) {
            cl->st.asks++;
            rc = asking_call(c, flags, &r, argc, argv, argvlen);
            ask = -1;
        } else {
            rc = simul_redis_command_argv(c, flags, &r, argc, argv, argvlen);
        }
        if (on_replica) {
            if (conn_error(rc)) {
                /* The replica went away with the read in flight: reads are safe to resend. */
                simul_redis_reply_free(r);
                to_replica = false;
                cl->nodes[idx]->avoid_until = (uint64_t)simul_now_ns() + REPLICA_AVOID_NS;
                cl->st.replica_fallbacks++;
                refresh(cl);
                continue;
            }
            cl->st.replica_reads++;
        }
        const char *rest = NULL;
        size_t rn = 0;
        if (rc == -EREMOTEIO && err_is(r, "MOVED ", &rest, &rn)) {
            /* The slot lives elsewhere for good: fix it now, then re-read the whole map (a
             * MOVED usually means more than one slot changed). */
            int to = redirect_target(cl, rest, rn);
            simul_redis_reply_free(r);
            if (to < 0) {
                rc = to;
                break;
            }
            cl->st.moved++;
            redirects++;
            if (slot >= 0)
                cl->slot[slot] = to;
            if ((rc = refresh(cl)) < 0 && rc != -ENOTCONN)
                break;
            if (slot >= 0)
                cl->slot[slot] = to; /* a map read from a node that has not heard yet */
            continue;
        }
        if (rc == -EREMOTEIO && err_is(r, "ASK ", &rest, &rn)) {
            int to = redirect_target(cl, rest, rn);
            simul_redis_reply_free(r);
            if (to < 0) {
                rc = to;
                break;
            }
            ask = to;
            redirects++;
            continue;
        }
        if (rc == -EREMOTEIO &&
            (err_is(r, "TRYAGAIN", NULL, NULL) || err_is(r, "CLUSTERDOWN", NULL, NULL))) {
            /* A multi-key command while its keys are split by a migration, or a cluster
             * healing: wait a little and try again. */
            bool down = err_is(r, "CLUSTERDOWN", NULL, NULL);
            simul_redis_reply_free(r);
            cl->st.tryagain++;
            if ((down && (rc = refresh(cl)) < 0) || (rc = backoff(waits++)) < 0)
                break;
            continue;
        }
        if (conn_error(rc)) {
            /* The node went away with the command in flight: the map is refreshed for the next
             * caller; the command is resent only when the caller marked it safe. */
            refresh(cl);
            if ((flags & SIMUL_REDIS_RETRY_SAFE) && waits++ < MAX_WAITS) {
                simul_redis_reply_free(r);
                continue;
            }
        }
        if (reply)
            *reply = r;
        else
            simul_redis_reply_free(r);
        break;
    }
    if (--cl->users == 0 && cl->closing)
        simul_event_set(cl->idle);
    return rc;
}

int simul_redis_cluster_command(simul_redis_cluster *cl, simul_redis_reply **reply, const char *fmt,
                                ...)
{
    if (reply)
        *reply = NULL;
    if (!cl || !fmt)
        return -EINVAL;
    simul_redis_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    ssize_t n = simul_redis_vencodef(&b, fmt, ap);
    va_end(ap);
    simul_redis_reply *argv = NULL;
    int rc = n < 0 ? (int)n : redis__decode_argv(&b, &argv);
    if (rc == 0) {
        const char **v = malloc(argv->len * sizeof *v);
        size_t *l = malloc(argv->len * sizeof *l);
        rc = v && l ? 0 : -ENOMEM;
        for (size_t i = 0; rc == 0 && i < argv->len; i++) {
            v[i] = argv->elem[i].str;
            l[i] = argv->elem[i].len;
        }
        if (rc == 0)
            rc = simul_redis_cluster_command_argv(cl, 0, reply, (int)argv->len, v, l);
        free(v);
        free(l);
    }
    simul_redis_reply_free(argv);
    simul_redis_buf_free(&b);
    return rc;
}

/* ---- transactions ---------------------------------------------------------------------------- */

/* The slot a transaction lives in: hashkey's, and every watched key's (-EXDEV if they differ;
 * -EINVAL with no key at all). */
static int txn_slot(const char *hashkey, const char *const *watch, size_t nwatch)
{
    int slot = -1;
    if (hashkey)
        fold(&slot, hashkey, strlen(hashkey));
    for (size_t i = 0; i < nwatch; i++) {
        if (!watch[i])
            return -EINVAL;
        fold(&slot, watch[i], strlen(watch[i]));
    }
    return slot == -1 ? -EINVAL : slot;
}

/* Follows one redirect answer ("MOVED 12 host:port", "ASK ...") for a transaction of `slot`:
 * MOVED fixes the slot and re-reads the map; ASK (the slot is being migrated: its keys may sit
 * on two nodes, which no transaction can span) waits a little, as TRYAGAIN. 0 or an error. */
static int txn_follow(simul_redis_cluster *cl, int slot, const char *redirect, unsigned *waits)
{
    size_t n = strlen(redirect);
    if (n > 6 && memcmp(redirect, "MOVED ", 6) == 0) {
        int to = redirect_target(cl, redirect + 6, n - 6);
        if (to < 0)
            return to;
        cl->st.moved++;
        cl->slot[slot] = to;
        int rc = refresh(cl);
        if (rc < 0 && rc != -ENOTCONN)
            return rc;
        cl->slot[slot] = to; /* a map read from a node that has not heard yet */
        return 0;
    }
    cl->st.tryagain++;
    return backoff((*waits)++);
}

/* Suspends. The connection of the node that serves slot now (refreshing the map and pausing
 * while none does, or it cannot be reached). */
static int slot_conn(simul_redis_cluster *cl, int slot, unsigned *waits, simul_redis_conn **out)
{
    for (;;) {
        if (*waits > MAX_WAITS)
            return -EAGAIN;
        int idx = cl->slot[slot];
        int rc;
        if (idx < 0) {
            rc = refresh(cl);
            if (rc == 0 && cl->slot[slot] < 0)
                rc = backoff((*waits)++);
            if (rc < 0)
                return rc;
            continue;
        }
        rc = node_conn(cl, idx, out);
        if (rc == 0)
            return 0;
        if (!conn_error(rc) && rc != -ETIMEDOUT)
            return rc;
        if (rc == -ETIMEDOUT && (rc = simul_checkpoint()) < 0)
            return rc;
        if ((rc = refresh(cl)) < 0 || (rc = backoff((*waits)++)) < 0)
            return rc;
    }
}

/* Suspends. Begins a transaction on the slot's master, following MOVED answers to WATCH. */
static int cluster_txn_begin(simul_redis_cluster *cl, int slot, const char *const *watch,
                             size_t nwatch, unsigned *redirects, unsigned *waits,
                             simul_redis_txn **out)
{
    for (;;) {
        if (*redirects > cl->max_redirects)
            return -ELOOP;
        simul_redis_conn *c = NULL;
        int rc = slot_conn(cl, slot, waits, &c);
        if (rc < 0)
            return rc;
        simul_redis_reply *werr = NULL;
        rc = redis__txn_begin(c, watch, nwatch, out, &werr);
        if (rc == 0) {
            redis__txn_set_cluster(*out, cl, slot);
            return 0;
        }
        size_t n = 0;
        const char *m = simul_redis_reply_str(werr, &n);
        bool redirect =
            m && ((n > 6 && memcmp(m, "MOVED ", 6) == 0) || (n > 4 && memcmp(m, "ASK ", 4) == 0));
        char *copy = redirect ? strndup(m, n) : NULL;
        simul_redis_reply_free(werr);
        if (redirect && !copy)
            return -ENOMEM;
        if (!redirect) {
            if (!conn_error(rc))
                return rc;
            /* The node failed under us: nothing ran; look again. */
            if ((rc = refresh(cl)) < 0 || (rc = backoff((*waits)++)) < 0)
                return rc;
            continue;
        }
        (*redirects)++;
        rc = txn_follow(cl, slot, copy, waits);
        free(copy);
        if (rc < 0)
            return rc;
    }
}

int simul_redis_cluster_txn_begin(simul_redis_cluster *cl, const char *hashkey,
                                  const char *const *watch, size_t nwatch, simul_redis_txn **out)
{
    if (out)
        *out = NULL;
    if (!cl || !out || (nwatch > 0 && !watch))
        return -EINVAL;
    int slot = txn_slot(hashkey, watch, nwatch);
    if (slot == -EXDEV)
        cl->st.crossslot++;
    if (slot < 0)
        return slot;
    if (cl->closing)
        return -ESHUTDOWN;
    cl->users++;
    unsigned redirects = 0, waits = 0;
    int rc = cluster_txn_begin(cl, slot, watch, nwatch, &redirects, &waits, out);
    if (--cl->users == 0 && cl->closing)
        simul_event_set(cl->idle);
    return rc;
}

int simul_redis_cluster_transaction(simul_redis_cluster *cl, const char *hashkey,
                                    const char *const *watch, size_t nwatch,
                                    simul_redis_txn_fn fn, void *arg, unsigned max_attempts,
                                    simul_redis_reply **reply)
{
    if (reply)
        *reply = NULL;
    if (!cl || !fn || (nwatch > 0 && !watch))
        return -EINVAL;
    int slot = txn_slot(hashkey, watch, nwatch);
    if (slot == -EXDEV)
        cl->st.crossslot++;
    if (slot < 0)
        return slot;
    if (cl->closing)
        return -ESHUTDOWN;
    cl->users++;
    unsigned redirects = 0, waits = 0, conflicts = 0;
    int rc;
    for (;;) {
        simul_redis_txn *t = NULL;
        rc = cluster_txn_begin(cl, slot, watch, nwatch, &redirects, &waits, &t);
        if (rc < 0)
            break;
        rc = fn(t, arg);
        simul_redis_reply *x = NULL;
        if (rc == 0)
            rc = simul_redis_txn_exec(t, &x);
        /* A redirect answer anywhere means the slot's master was not this node (or the slot is
         * moving): nothing of EXEC ran (EXECABORT, or never sent). Begin again there. */
        const char *red = rc != 0 ? redis__txn_redirect(t) : NULL;
        char *copy = red ? strdup(red) : NULL;
        simul_redis_txn_close(t);
        if (red && !copy) {
            simul_redis_reply_free(x);
            rc = -ENOMEM;
            break;
        }
        if (copy) {
            simul_redis_reply_free(x);
            redirects++;
            if (redirects > cl->max_redirects) {
                free(copy);
                rc = -ELOOP;
                break;
            }
            rc = txn_follow(cl, slot, copy, &waits);
            free(copy);
            if (rc < 0)
                break;
            continue;
        }
        if (rc == -EAGAIN) { /* a watched key changed: again, as simul_redis_transaction */
            conflicts++;
            if ((max_attempts && conflicts >= max_attempts) || (rc = simul_checkpoint()) < 0) {
                rc = rc < 0 ? rc : -EAGAIN;
                break;
            }
            continue;
        }
        if (reply)
            *reply = x;
        else
            simul_redis_reply_free(x);
        break;
    }
    if (--cl->users == 0 && cl->closing)
        simul_event_set(cl->idle);
    return rc;
}

/* ---- sharded pub/sub -------------------------------------------------------------------------- */

struct simul_redis_cluster_subscription {
    simul_redis_cluster *cl;
    simul_redis_cluster_subscription *next;
    int slot;
    char **names;
    size_t n, bound;
    simul_redis_conn *conn; /* its own connection to the slot's master; NULL while detached */
    simul_redis_subscription *sub;
    uint64_t dropped;       /* of earlier attachments */
    uint64_t resubscribes;
    bool reading;
};

static void csub_detach(simul_redis_cluster_subscription *cs)
{
    if (cs->sub) {
        cs->dropped += simul_redis_subscription_dropped(cs->sub);
        simul_redis_subscription_close(cs->sub); /* -ENOTCONN when the node is gone: fine */
        cs->sub = NULL;
    }
    simul_redis_close(cs->conn);
    cs->conn = NULL;
}

/* Suspends. Subscribes on the node the map names for the slot, on a connection of its own
 * (pub/sub on RESP2 cannot share one; and its life follows the subscription, not the node's
 * shared connection). A refusal (MOVED: the map was stale) or an unreachable node: the map is
 * read again and the next try waits a growing pause, within MAX_WAITS and the caller's deadline. */
static int csub_attach(simul_redis_cluster_subscription *cs)
{
    simul_redis_cluster *cl = cs->cl;
    for (unsigned waits = 0;; waits++) {
        if (cl->closing)
            return -ESHUTDOWN;
        if (waits > MAX_WAITS)
            return -EAGAIN;
        int rc = 0;
        if (waits > 0 && ((rc = refresh(cl)) < 0 && rc != -ENOTCONN))
            return rc;
        if (waits > 1 && (rc = backoff(waits - 2)) < 0)
            return rc;
        int idx = cl->slot[cs->slot];
        if (idx < 0)
            continue;
        simul_redis_opts o = cl->o;
        o.host = cl->nodes[idx]->host;
        o.port = cl->nodes[idx]->port;
        o.unix_path = NULL;
        o.no_reconnect = true;
        o.cache_bytes = 0;
        rc = simul_redis_connect(&o, &cs->conn);
        if (rc < 0) {
            cs->conn = NULL;
            if (rc == -ECANCELED || (rc == -ETIMEDOUT && simul_checkpoint() < 0))
                return rc;
            continue;
        }
        rc = simul_redis_subscribe(cs->conn, SIMUL_REDIS_SUB_SHARDED, (const char *const *)cs->names,
                                   cs->n, cs->bound, &cs->sub);
        if (rc == 0)
            return 0;
        cs->sub = NULL;
        simul_redis_close(cs->conn);
        cs->conn = NULL;
        if (rc == -ECANCELED || rc == -ETIMEDOUT || rc == -ENOMEM || rc == -EINVAL)
            return rc;
        /* -EREMOTEIO (MOVED: not this node's slot any more), a connection error: again. */
    }
}

int simul_redis_cluster_ssubscribe(simul_redis_cluster *cl, const char *const *channels, size_t n,
                                   size_t bound, simul_redis_cluster_subscription **out)
{
    if (out)
        *out = NULL;
    if (!cl || !channels || n == 0 || n > 100000 || !out)
        return -EINVAL;
    int slot = -1;
    for (size_t i = 0; i < n; i++) {
        if (!channels[i])
            return -EINVAL;
        fold(&slot, channels[i], strlen(channels[i]));
    }
    if (slot == -EXDEV) {
        cl->st.crossslot++;
        return -EXDEV;
    }
    if (cl->closing)
        return -ESHUTDOWN;
    simul_redis_cluster_subscription *cs = calloc(1, sizeof *cs);
    if (!cs || !(cs->names = calloc(n, sizeof *cs->names))) {
        free(cs);
        return -ENOMEM;
    }
    cs->cl = cl;
    cs->slot = slot;
    cs->bound = bound;
    int rc = 0;
    for (; cs->n < n && rc == 0; cs->n++)
        if (!(cs->names[cs->n] = strdup(channels[cs->n])))
            rc = -ENOMEM;
    cl->users++;
    if (rc == 0)
        rc = csub_attach(cs);
    if (--cl->users == 0 && cl->closing)
        simul_event_set(cl->idle);
    if (rc < 0) {
        for (size_t i = 0; i < cs->n; i++)
            free(cs->names[i]);
        free(cs->names);
        free(cs);
        return rc;
    }
    cs->next = cl->subs;
    cl->subs = cs;
    *out = cs;
    return 0;
}

/* A push telling that the server ended one of our subscriptions (slot moved). */
static bool is_server_sunsubscribe(const simul_redis_reply *m)
{
    size_t n = 0;
    const char *k = simul_redis_reply_str(simul_redis_reply_elem(m, 0), &n);
    return k && n == 12 && strncasecmp(k, "sunsubscribe", 12) == 0;
}

int simul_redis_cluster_subscription_next(simul_redis_cluster_subscription *cs,
                                          simul_redis_reply **msg)
{
    if (!cs || !msg)
        return -EINVAL;
    *msg = NULL;
    if (cs->reading)
        return -EBUSY;
    simul_redis_cluster *cl = cs->cl;
    if (cl->closing)
        return -ESHUTDOWN;
    cs->reading = true;
    cl->users++;
    int rc;
    for (;;) {
        if (!cs->sub) {
            rc = csub_attach(cs);
            if (rc < 0)
                break;
            cs->resubscribes++;
        }
        simul_redis_reply *m = NULL;
        rc = simul_redis_subscription_next(cs->sub, &m);
        if (rc == 0 && is_server_sunsubscribe(m)) {
            /* The slot moved (a resharding): follow it. Messages already queued were taken. */
            simul_redis_reply_free(m);
            csub_detach(cs);
            cl->st.moved++;
            continue;
        }
        if (rc == -ESHUTDOWN && !cl->closing) {
            /* The node's connection was lost (a crash, a restart, a failover): read the map
             * again and subscribe where the slot lives now. */
            csub_detach(cs);
            continue;
        }
        if (rc == 0)
            *msg = m;
        break;
    }
    cs->reading = false;
    if (--cl->users == 0 && cl->closing)
        simul_event_set(cl->idle);
    return rc;
}

uint64_t simul_redis_cluster_subscription_dropped(const simul_redis_cluster_subscription *cs)
{
    if (!cs)
        return 0;
    return cs->dropped + (cs->sub ? simul_redis_subscription_dropped(cs->sub) : 0);
}

uint64_t simul_redis_cluster_subscription_resubscribes(const simul_redis_cluster_subscription *cs)
{
    return cs ? cs->resubscribes : 0;
}

int simul_redis_cluster_subscription_close(simul_redis_cluster_subscription *cs)
{
    if (!cs)
        return 0;
    if (cs->reading)
        return -EBUSY; /* freed under its reader (parked in a read, or connecting) otherwise */
    simul_scope shield;
    bool shielded = simul_scope_shield(&shield) == 0;
    csub_detach(cs); /* SUNSUBSCRIBE, then the connection closed */
    for (simul_redis_cluster_subscription **pp = &cs->cl->subs; *pp; pp = &(*pp)->next) {
        if (*pp == cs) {
            *pp = cs->next;
            break;
        }
    }
    for (size_t i = 0; i < cs->n; i++)
        free(cs->names[i]);
    free(cs->names);
    free(cs);
    if (shielded)
        simul_scope_end(&shield);
    return 0;
}

/* ---- pipelines split per node --------------------------------------------------------------- */

typedef struct pcmd {
    simul_redis_reply *argv; /* the command, decoded to an array of strings */
    int slot;
} pcmd;

struct simul_redis_cluster_pipeline {
    simul_redis_cluster *cl;
    pcmd *cmds;
    size_t n, cap;
    bool executed;
};

int simul_redis_cluster_pipeline_new(simul_redis_cluster *cl, simul_redis_cluster_pipeline **out)
{
    if (!cl || !out)
        return -EINVAL;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    (*out)->cl = cl;
    return 0;
}

static int padd(simul_redis_cluster_pipeline *p, simul_redis_buf *b)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        pcmd *g = realloc(p->cmds, cap * sizeof *g);
        if (!g)
            return -ENOMEM;
        p->cmds = g;
        p->cap = cap;
    }
    pcmd *k = &p->cmds[p->n];
    int rc = redis__decode_argv(b, &k->argv);
    if (rc == 0)
        p->n++;
    return rc;
}

int simul_redis_cluster_pipeline_add(simul_redis_cluster_pipeline *p, const char *fmt, ...)
{
    if (!p || p->executed || !fmt)
        return -EINVAL;
    simul_redis_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    ssize_t n = simul_redis_vencodef(&b, fmt, ap);
    va_end(ap);
    int rc = n < 0 ? (int)n : padd(p, &b);
    simul_redis_buf_free(&b);
    return rc;
}

int simul_redis_cluster_pipeline_add_argv(simul_redis_cluster_pipeline *p, int argc,
                                          const char *const *argv, const size_t *argvlen)
{
    if (!p || p->executed || argc < 1 || !argv || !argv[0])
        return -EINVAL;
    simul_redis_buf b = {0};
    ssize_t n = simul_redis_encode(&b, argc, argv, argvlen);
    int rc = n < 0 ? (int)n : padd(p, &b);
    simul_redis_buf_free(&b);
    return rc;
}

size_t simul_redis_cluster_pipeline_len(const simul_redis_cluster_pipeline *p)
{
    return p ? p->n : 0;
}

typedef struct group {
    simul_redis_cluster_pipeline *p;
    int node;
    size_t *idx, n; /* the commands of this node, in pipeline order */
    simul_redis_reply **replies;
    int *results;
} group;

static void argv_of(const pcmd *k, const char ***v, size_t **l)
{
    *v = malloc(k->argv->len * sizeof **v);
    *l = malloc(k->argv->len * sizeof **l);
    for (size_t i = 0; *v && *l && i < k->argv->len; i++) {
        (*v)[i] = k->argv->elem[i].str;
        (*l)[i] = k->argv->elem[i].len;
    }
}

/* One node's share as one pipeline on its connection. */
static int group_main(void *arg)
{
    group *g = arg;
    simul_redis_cluster *cl = g->p->cl;
    simul_redis_conn *c = NULL;
    int rc = node_conn(cl, g->node, &c);
    simul_redis_pipeline *pl = NULL;
    if (rc == 0)
        rc = simul_redis_pipeline_new(c, &pl);
    for (size_t i = 0; rc == 0 && i < g->n; i++) {
        const pcmd *k = &g->p->cmds[g->idx[i]];
        const char **v;
        size_t *l;
        argv_of(k, &v, &l);
        rc = v && l ? simul_redis_pipeline_add_argv(pl, (int)k->argv->len, v, l) : -ENOMEM;
        free(v);
        free(l);
    }
    int *res = NULL;
    simul_redis_reply **rep = NULL;
    if (rc == 0) {
        res = calloc(g->n, sizeof *res);
        rep = calloc(g->n, sizeof *rep);
        rc = res && rep ? simul_redis_pipeline_exec(pl, rep, res) : -ENOMEM;
    }
    for (size_t i = 0; i < g->n; i++) {
        g->results[g->idx[i]] = rc < 0 ? rc : res[i];
        g->replies[g->idx[i]] = rc < 0 ? NULL : rep[i];
    }
    free(res);
    free(rep);
    simul_redis_pipeline_free(pl);
    return 0;
}

static bool needs_redo(int result, const simul_redis_reply *r)
{
    if (result == -EREMOTEIO)
        return err_is(r, "MOVED ", NULL, NULL) || err_is(r, "ASK ", NULL, NULL) ||
               err_is(r, "TRYAGAIN", NULL, NULL) || err_is(r, "CLUSTERDOWN", NULL, NULL);
    return result == -ECONNREFUSED; /* its node was gone before anything was sent */
}

int simul_redis_cluster_pipeline_exec(simul_redis_cluster_pipeline *p, simul_redis_reply **replies,
                                      int *results)
{
    if (!p || p->executed || p->n == 0)
        return -EINVAL;
    p->executed = true;
    simul_redis_cluster *cl = p->cl;
    if (cl->closing)
        return -ESHUTDOWN;
    cl->users++;
    simul_redis_reply **rep = calloc(p->n, sizeof *rep);
    int *res = calloc(p->n, sizeof *res);
    group *groups = calloc(cl->nnodes + 1, sizeof *groups);
    size_t ngroups = 0;
    int rc = rep && res && groups ? 0 : -ENOMEM;
    /* Route every command; those without a node yet (stale map) go through the one-command
     * path after the groups. */
    for (size_t i = 0; rc == 0 && i < p->n; i++) {
        pcmd *k = &p->cmds[i];
        const char **v;
        size_t *l;
        argv_of(k, &v, &l);
        k->slot = v && l ? command_slot(cl, (int)k->argv->len, v, l) : -ENOMEM;
        free(v);
        free(l);
        if (k->slot < -1 && k->slot != -EXDEV) {
            rc = k->slot;
            break;
        }
        res[i] = k->slot == -EXDEV ? -EXDEV : 1; /* 1: not done yet */
        if (k->slot == -EXDEV) {
            cl->st.crossslot++;
            continue;
        }
        int node = k->slot >= 0 ? cl->slot[k->slot] : (cl->nnodes ? 0 : -1);
        if (node < 0)
            continue;
        group *g = NULL;
        for (size_t j = 0; j < ngroups; j++)
            if (groups[j].node == node)
                g = &groups[j];
        if (!g) {
            g = &groups[ngroups++];
            *g = (group){.p = p, .node = node, .replies = rep, .results = res};
            if (!(g->idx = malloc(p->n * sizeof *g->idx))) {
                rc = -ENOMEM;
                break;
            }
        }
        g->idx[g->n++] = i;
    }
    if (rc == 0 && ngroups > 0) {
        simul_task **t = calloc(ngroups, sizeof *t);
        size_t spawned = 0;
        rc = t ? 0 : -ENOMEM;
        /* Counted only once made: a failed spawn's empty handle in the gather would make it
         * refuse them all (-EINVAL, nothing joined), and the groups spawned before would run on
         * after their arrays were freed below. */
        for (; rc == 0 && spawned < ngroups; spawned++) {
            rc = simul_task_spawn(&t[spawned], group_main, &groups[spawned], NULL);
            if (rc < 0)
                break;
        }
        if (spawned > 0) {
            int g = simul_gather(t, spawned, NULL);
            if (g == -ECANCELED || g == -ETIMEDOUT)
                rc = g;
        }
        cl->st.pipeline_groups += spawned;
        free(t);
    }
    /* Redirected, refused before sending, or not routed: one by one, following the cluster. */
    for (size_t i = 0; rc == 0 && i < p->n; i++) {
        if (res[i] != 1 && !needs_redo(res[i], rep[i]))
            continue;
        simul_redis_reply_free(rep[i]);
        rep[i] = NULL;
        const char **v;
        size_t *l;
        argv_of(&p->cmds[i], &v, &l);
        res[i] = v && l ? simul_redis_cluster_command_argv(cl, 0, &rep[i],
                                                           (int)p->cmds[i].argv->len, v, l)
                        : -ENOMEM;
        free(v);
        free(l);
        if (res[i] == -ECANCELED || res[i] == -ETIMEDOUT)
            rc = res[i];
    }
    for (size_t i = 0; i < p->n; i++) {
        if (results)
            results[i] = rc < 0 ? rc : res ? res[i] : rc;
        if (replies && rc == 0)
            replies[i] = rep[i];
        else if (rep)
            simul_redis_reply_free(rep[i]);
        if (replies && rc < 0)
            replies[i] = NULL;
    }
    for (size_t j = 0; groups && j < ngroups; j++)
        free(groups[j].idx);
    free(groups);
    free(rep);
    free(res);
    if (--cl->users == 0 && cl->closing)
        simul_event_set(cl->idle);
    return rc;
}

void simul_redis_cluster_pipeline_free(simul_redis_cluster_pipeline *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        simul_redis_reply_free(p->cmds[i].argv);
    free(p->cmds);
    free(p);
}

/* ---- connect, close ------------------------------------------------------------------------- */

static void cluster_free(simul_redis_cluster *cl)
{
    for (size_t i = 0; i < cl->nnodes; i++) {
        free(cl->nodes[i]->host);
        free(cl->nodes[i]->port);
        free(cl->nodes[i]);
    }
    free(cl->nodes);
    for (size_t i = 0; i < cl->nspecs; i++)
        free(cl->specs[i].name);
    free(cl->specs);
    simul_event_free(cl->changed);
    simul_event_free(cl->idle);
    free(cl->username);
    free(cl->password);
    free(cl->client_name);
    free(cl);
}

int simul_redis_cluster_connect(const simul_redis_cluster_opts *opts, simul_redis_cluster **out)
{
    if (!opts || !out || !opts->seeds || opts->nseeds == 0)
        return -EINVAL;
    *out = NULL;
    simul_redis_cluster *cl = calloc(1, sizeof *cl);
    if (!cl)
        return -ENOMEM;
    int rc = 0;
    cl->o = opts->node;
    cl->o.connect_cb = NULL; /* per node: host and port come from the map */
    cl->o.db = 0;            /* a cluster has one database */
    if (opts->node.username && !(cl->username = strdup(opts->node.username)))
        rc = -ENOMEM;
    if (opts->node.password && !(cl->password = strdup(opts->node.password)))
        rc = -ENOMEM;
    if (opts->node.client_name && !(cl->client_name = strdup(opts->node.client_name)))
        rc = -ENOMEM;
    cl->o.username = cl->username;
    cl->o.password = cl->password;
    cl->o.client_name = cl->client_name;
    if (opts->node.limits) {
        cl->limits = *opts->node.limits;
        cl->o.limits = &cl->limits;
    }
    cl->max_redirects = opts->max_redirects ? opts->max_redirects : MAX_REDIRECTS_DEFAULT;
    cl->read_replicas = opts->read_from_replicas;
    for (int i = 0; i < SLOTS; i++)
        cl->slot[i] = cl->replica[i] = -1;
    if (rc == 0 && (simul_event_new(&cl->changed) < 0 || simul_event_new(&cl->idle) < 0))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < opts->nseeds; i++) {
        if (!opts->seeds[i])
            rc = -EINVAL;
        else
            rc = node_from_addr(cl, opts->seeds[i], strlen(opts->seeds[i]));
        if (rc == -EPROTO)
            rc = -EINVAL;
        if (rc > 0)
            rc = 0;
    }
    if (rc == 0)
        rc = refresh(cl);
    if (rc == 0) {
        rc = -ENOTCONN;
        for (size_t i = 0; i < cl->nnodes && rc < 0; i++) {
            simul_redis_conn *c = cl->nodes[i]->conn;
            if (c && simul_redis_connected(c))
                rc = load_specs(cl, c);
        }
    }
    if (rc < 0) {
        cl->closing = true;
        for (size_t i = 0; i < cl->nnodes; i++)
            simul_redis_close(cl->nodes[i]->conn);
        cluster_free(cl);
        return rc;
    }
    *out = cl;
    return 0;
}

int simul_redis_cluster_close(simul_redis_cluster *cl)
{
    if (!cl)
        return 0;
    simul_scope shield;
    bool shielded = simul_scope_shield(&shield) == 0;
    cl->closing = true;
    simul_event_set(cl->changed);
    /* Readers of sharded subscriptions wake with -ESHUTDOWN (closing: no resubscription). */
    for (simul_redis_cluster_subscription *cs = cl->subs; cs; cs = cs->next)
        if (cs->sub)
            simul_queue_shutdown(cs->sub->q, false, NULL);
    /* Closing the node connections fails what is in flight (-ECANCELED / -ESHUTDOWN): the
     * callers then leave. */
    for (size_t i = 0; i < cl->nnodes; i++) {
        simul_redis_conn *c = cl->nodes[i]->conn;
        cl->nodes[i]->conn = NULL;
        simul_redis_close(c);
    }
    while (cl->users > 0) {
        simul_event_clear(cl->idle);
        if (cl->users > 0)
            simul_event_wait(cl->idle);
    }
    /* Subscriptions left open die with the cluster (their handles too). */
    while (cl->subs)
        simul_redis_cluster_subscription_close(cl->subs);
    /* A caller may have connected a node meanwhile (its connect finished after closing). */
    for (size_t i = 0; i < cl->nnodes; i++) {
        simul_redis_close(cl->nodes[i]->conn);
        cl->nodes[i]->conn = NULL;
    }
    if (shielded)
        simul_scope_end(&shield);
    cluster_free(cl);
    return 0;
}

int simul_redis_cluster_slot_node(const simul_redis_cluster *cl, unsigned slot, char *host,
                                  size_t hostlen, int *port)
{
    if (!cl || slot >= SLOTS)
        return -EINVAL;
    int idx = cl->slot[slot];
    if (idx < 0)
        return -ENOENT;
    if (host)
        snprintf(host, hostlen, "%s", cl->nodes[idx]->host);
    if (port)
        *port = atoi(cl->nodes[idx]->port);
    return 0;
}

void simul_redis_cluster_get_stats(const simul_redis_cluster *cl, simul_redis_cluster_stats *out)
{
    if (cl && out)
        *out = cl->st;
}
