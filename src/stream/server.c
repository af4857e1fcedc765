/* server.c — the listening side shared by stream and protocol servers (asyncio.Server): each
 * listening fd's READ edge runs a bounded batch of accept4 calls, a busy listener continues on
 * the next loop pass instead of starving the others, and fd exhaustion stops accepting behind a
 * back-off timer (an edge-triggered listener cannot spin, but retrying at once would).
 * close_clients / abort_clients find the live connections through their fd records: each accept
 * notes (record, generation, owner), and a connection is live while its record still has that
 * generation and owner, so ending a connection needs no call back into the server. */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"

#define MAX_LISTENERS 16            /* every address of one host name; more is unusual */
#define ACCEPT_BATCH 64             /* accepts per listener per loop pass */

/* An accepted connection as its fd record saw it just after the accept callback. The record
 * outlives the fd (records live until the loop closes); simul_close bumps its generation. */
typedef struct conn_ref {
    simul__fd *f;
    void *owner;
    uint32_t gen;
} conn_ref;

typedef struct listener {
    simul_server *srv;
    simul__fd *f;
    int fd;
    bool tcp; /* set TCP_NODELAY on what it accepts */
} listener;

struct simul_server {
    simul_loop *loop;
    listener ls[MAX_LISTENERS];
    int n;
    simul__accept_cb cb;
    void *owner;
    void (*owner_free)(void *owner);
    size_t conns;  /* live connections (conn_begin - conn_end) */
    unsigned refs; /* tasks waiting in it, and the accept batch in progress */
    bool closed, freed;
    bool soon_pending; /* a continuation of the accept batches is scheduled */
    bool backing_off;  /* accepting stopped until the back-off timer fires */
    simul_handle soon, timer;
    simul_backoff backoff; /* the delays of back_off (10 ms doubling to 1 s; reset by an accept) */
    int port;           /* TCP port, 0 for a Unix socket */
    char *unix_path;    /* removed at close if it is still our socket */
    dev_t unix_dev;
    ino_t unix_ino;
    simul__waitq closedq; /* serve_forever: until closed */
    simul__waitq idleq;   /* wait_closed: until closed and no connection is live */
    simul_task *forever;  /* the task in serve_forever */
    void (*conn_close)(void *conn);
    void (*conn_abort)(void *conn);
    /* Connections as accepted, dead ones swept out lazily when the array is full (amortised
     * O(1) per accept); a slot is reserved before each accept4, so no live one goes untracked. */
    conn_ref *tracked;
    size_t ntracked, tracked_cap;
};

static void maybe_free(simul_server *s)
{
    if (!s->freed || s->conns || s->refs)
        return;
    if (s->owner_free)
        s->owner_free(s->owner);
    simul__loop_handle_unref(s->loop);
    free(s->tracked);
    free(s->unix_path);
    free(s);
}

/* ---- tracking connections ----------------------------------------------------------------- */

/* The connection's owner while it lives (its fd not yet closed), else NULL. */
static void *live_owner(const conn_ref *c)
{
    const simul__fd *f = c->f;
    return f->gen == c->gen && f->handler && f->owner == c->owner ? c->owner : NULL;
}

/* Makes room for one more connection: sweeps the dead ones out, and grows once more than half
 * of the array is live, so each sweep pays for the accepts since the last one. */
static bool track_reserve(simul_server *s)
{
    if (s->ntracked < s->tracked_cap)
        return true;
    size_t n = 0;
    for (size_t i = 0; i < s->ntracked; i++)
        if (live_owner(&s->tracked[i]))
            s->tracked[n++] = s->tracked[i];
    s->ntracked = n;
    if (s->tracked_cap && n * 2 <= s->tracked_cap)
        return true;
    size_t cap = s->tracked_cap ? s->tracked_cap * 2 : 16;
    conn_ref *v = cap <= SIZE_MAX / sizeof *v ? realloc(s->tracked, cap * sizeof *v) : NULL;
    if (!v)
        return n < s->tracked_cap;
    s->tracked = v;
    s->tracked_cap = cap;
    return true;
}

/* After the accept callback: note the connection if it set itself up on the fd record. */
static void track(simul_server *s, simul__fd *f, uint32_t gen)
{
    if (f->gen != gen || !f->handler || !f->owner)
        return; /* refused or already gone */
    SIMUL__ASSERT(s->ntracked < s->tracked_cap);
    s->tracked[s->ntracked++] = (conn_ref){.f = f, .owner = f->owner, .gen = gen};
}

/* ---- accepting ---------------------------------------------------------------------------- */

enum { DRAINED, MORE, STOP };

static void pump(simul_server *s);

static void on_soon(void *arg)
{
    simul_server *s = arg;
    s->soon_pending = false;
    pump(s);
}

static void on_backoff(void *arg)
{
    simul_server *s = arg;
    s->backing_off = false;
    pump(s);
}

/* Out of fds or memory: accepting again at once would fail again (and the connection waits in
 * the backlog meanwhile), so stop until a timer says to retry. Edges that arrive meanwhile are
 * ignored; the listeners keep their may-be-ready bit, so the retry tries them. */
static void back_off(simul_server *s)
{
    if (simul_call_later(simul_backoff_next(&s->backoff), on_backoff, s, &s->timer) == 0)
        s->backing_off = true;
    /* else: no timer, no memory; the next edge retries (edge-triggered: no spin either way) */
}

static int accept_batch(listener *l)
{
    simul_server *s = l->srv;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (s->closed)
            return STOP;
        if (!track_reserve(s)) { /* out of memory: as ENOMEM from accept4 */
            back_off(s);
            return STOP;
        }
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int c = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            switch (errno) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                simul__fd_clear(l->f, SIMUL__DIR_READ); /* EPOLLET: the next arrival is an edge */
                return DRAINED;
            case EINTR:
            case ECONNABORTED: /* died in the queue */
            case EPROTO:
            case EPERM: /* refused by a firewall rule */
            case ENETDOWN:
            case ENOPROTOOPT:
            case EHOSTDOWN:
            case ENONET:
            case EHOSTUNREACH:
            case EOPNOTSUPP:
            case ENETUNREACH:
                continue; /* accept(2): errors of the connection, not of the listener */
            default:      /* EMFILE, ENFILE, ENOBUFS, ENOMEM, and anything unexpected */
                back_off(s);
                return STOP;
            }
        }
        simul_backoff_reset(&s->backoff);
        if (l->tcp) {
            int one = 1;
            (void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        int err;
        simul__fd *f = simul__fd_fresh(s->loop, c, true, &err);
        if (!f) {
            close(c);
            continue;
        }
        uint32_t gen = f->gen;
        s->cb(s, s->owner, c, (const struct sockaddr *)&peer, plen);
        track(s, f, gen);
    }
    return MORE;
}

/* Runs one batch on every listener that may have connections waiting; if any still has some,
 * continues on the next pass (call_soon), so one busy listener does not hold the loop. */
static void pump(simul_server *s)
{
    if (s->closed || s->backing_off || s->soon_pending)
        return;
    s->refs++; /* a callback may close or free the server */
    bool more = false;
    for (int i = 0; i < s->n; i++) {
        listener *l = &s->ls[i];
        if (!simul__fd_ready(l->f, SIMUL__DIR_READ))
            continue;
        int r = accept_batch(l);
        if (r == STOP)
            break;
        more |= r == MORE;
    }
    if (more && !s->closed && !s->backing_off) {
        if (simul__call_soon(s->loop, on_soon, s, &s->soon) == 0)
            s->soon_pending = true;
        else
            back_off(s);
    }
    s->refs--;
    maybe_free(s);
}

static void on_edge(void *owner, uint32_t events)
{
    if (events & SIMUL__EV_READ)
        pump(((listener *)owner)->srv);
}

/* ---- making one ----------------------------------------------------------------------------- */

static void close_listeners(simul_server *s)
{
    for (int i = 0; i < s->n; i++) {
        listener *l = &s->ls[i];
        if (l->f)
            simul__fd_set_handler(l->f, NULL, NULL);
        simul_close(l->fd);
    }
    s->n = 0;
}

int simul__server_new(const simul__server_opts *o, simul__accept_cb cb, void *owner,
                      simul_server **out)
{
    if (out)
        *out = NULL;
    if (!o || !cb || !out)
        return -EINVAL;
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    simul_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->cb = cb;
    s->owner = owner;
    /* No jitter: one process's own listeners, nothing to spread out. */
    static const simul_backoff_opts bo = {.base = 0.01, .cap = 1, .seed = 1};
    (void)simul_backoff_init(&s->backoff, &bo); /* constant, valid options */
    int backlog = o->backlog > 0 ? o->backlog : 511;
    int fds[MAX_LISTENERS];
    int n, rc = 0;
    if (o->n_socks > 0) {
        if (o->n_socks > MAX_LISTENERS || !o->socks || o->unix_path || o->host || o->port) {
            free(s);
            return -EINVAL;
        }
        for (n = 0; n < o->n_socks; n++) {
            int arc = simul_listener_adopt(o->socks[n]);
            if (arc < 0) {
                free(s);
                return arc;
            }
            fds[n] = o->socks[n];
        }
    } else if (o->unix_path) {
        if (o->unix_path[0] != '@' && !(s->unix_path = strdup(o->unix_path))) {
            free(s);
            return -ENOMEM;
        }
        n = simul_unix_listen(o->unix_path, backlog);
        if (n >= 0) {
            fds[0] = n;
            n = 1;
        }
    } else {
        n = simul_tcp_listen(o->host, o->port && *o->port ? o->port : "0", backlog, o->flags, fds,
                             MAX_LISTENERS);
    }
    if (n < 0) {
        free(s->unix_path);
        free(s);
        return n;
    }
    for (int i = 0; i < n; i++) {
        listener *l = &s->ls[i];
        l->srv = s;
        l->fd = fds[i];
        s->n = i + 1;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0) {
            rc = -errno;
            break;
        }
        l->tcp = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
        if (l->tcp && !s->port)
            s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
        if (!(l->f = simul__fd_fresh(loop, l->fd, true, &rc)))
            break;
        /* Registering an edge-triggered fd reports its current state, so connections that came
         * before this are not missed. */
        if ((rc = simul__fd_set_handler(l->f, on_edge, l)) < 0) {
            simul__fd_set_handler(l->f, NULL, NULL);
            break;
        }
    }
    if (rc < 0 && o->n_socks > 0) {
        /* Adopted sockets stay the caller's on an error: unregister, never close. */
        for (int i = 0; i < s->n; i++) {
            if (s->ls[i].f)
                simul__fd_set_handler(s->ls[i].f, NULL, NULL);
            simul_fd_forget(s->ls[i].fd);
        }
        free(s);
        return rc;
    }
    if (rc < 0) {
        for (int i = n - 1; i >= s->n; i--)
            simul_close(fds[i]);
        close_listeners(s);
        free(s->unix_path);
        free(s);
        return rc;
    }
    if (s->unix_path) {
        struct stat st;
        if (stat(s->unix_path, &st) == 0) {
            s->unix_dev = st.st_dev;
            s->unix_ino = st.st_ino;
        } else {
            free(s->unix_path);
            s->unix_path = NULL;
        }
    }
    s->owner_free = o->owner_free;
    s->conn_close = o->conn_close;
    s->conn_abort = o->conn_abort;
    simul__loop_handle_ref(loop); /* until its memory goes: simul_loop_close refuses while a server is open */
    *out = s;
    return 0;
}

void simul__server_conn_begin(simul_server *s)
{
    s->conns++;
}

void simul__server_conn_end(simul_server *s)
{
    SIMUL__ASSERT(s->conns > 0);
    if (--s->conns == 0 && s->closed)
        simul__waitq_wake_all(&s->idleq, 0);
    /* Backing off for lack of fds, and one of ours just gave its fd back: retry now (on the next
     * pass, not inside the caller's close) rather than at the end of a back-off of up to 1 s. */
    if (s->backing_off && !s->closed && !s->soon_pending &&
        simul__call_soon(s->loop, on_soon, s, &s->soon) == 0) {
        simul_handle_cancel(s->timer);
        s->backing_off = false;
        s->soon_pending = true;
    }
    maybe_free(s);
}

/* ---- public ------------------------------------------------------------------------------- */

int simul_server_close(simul_server *s)
{
    if (!s)
        return -EINVAL;
    if (s->closed)
        return 0;
    s->closed = true;
    if (s->soon_pending)
        simul_handle_cancel(s->soon);
    if (s->backing_off)
        simul_handle_cancel(s->timer);
    s->soon_pending = s->backing_off = false;
    close_listeners(s);
    if (s->unix_path) {
        /* Only our socket: another server may have taken the path over since. */
        struct stat st;
        if (stat(s->unix_path, &st) == 0 && st.st_dev == s->unix_dev && st.st_ino == s->unix_ino)
            unlink(s->unix_path);
    }
    simul__waitq_wake_all(&s->closedq, 0);
    if (s->conns == 0)
        simul__waitq_wake_all(&s->idleq, 0);
    return 0;
}

int simul_server_wait_closed(simul_server *s)
{
    simul_task *t = simul__task_require(__func__);
    if (!t)
        return -EPERM;
    if (!s)
        return -EINVAL;
    int rc = simul__task_check(t);
    s->refs++;
    while (rc == 0 && !(s->closed && s->conns == 0))
        rc = simul__waitq_park(t, &s->idleq);
    s->refs--;
    maybe_free(s);
    return rc;
}

int simul_server_serve_forever(simul_server *s)
{
    simul_task *t = simul__task_require(__func__);
    if (!t)
        return -EPERM;
    if (!s)
        return -EINVAL;
    if (s->forever)
        return -EBUSY;
    int rc = 0;
    s->refs++;
    s->forever = t;
    while (rc == 0 && !s->closed)
        rc = simul__waitq_park(t, &s->closedq);
    s->forever = NULL;
    if (rc < 0)
        simul_server_close(s); /* asyncio: a cancelled serve_forever closes the server */
    s->refs--;
    maybe_free(s);
    return rc;
}

bool simul_server_is_serving(const simul_server *s)
{
    return s && !s->closed;
}

int simul_server_sockets(const simul_server *s, int *fds, int max)
{
    if (!s || (max > 0 && !fds))
        return -EINVAL;
    for (int i = 0; i < s->n && i < max; i++)
        fds[i] = s->ls[i].fd;
    return s->n;
}

int simul_server_port(const simul_server *s)
{
    if (!s)
        return -EINVAL;
    if (s->closed)
        return -EBADF;
    return s->port ? s->port : -EAFNOSUPPORT;
}

size_t simul_server_connections(const simul_server *s)
{
    return s ? s->conns : 0;
}

/* Ends every connection noted before the call; accepts only run from the loop, never inside
 * the calls made here, so the array does not move under the walk, and those calls only schedule
 * the ends (a stream's close task, a transport's connection_lost), so nothing is freed here. */
static int end_clients(simul_server *s, bool abort)
{
    if (!s)
        return -EINVAL;
    if (s->loop != simul__loop())
        return -ENXIO;
    int count = 0;
    s->refs++;
    size_t n = s->ntracked;
    for (size_t i = 0; i < n; i++) {
        conn_ref c = s->tracked[i];
        void *conn = live_owner(&c);
        if (!conn)
            continue;
        count++;
        if (!abort) {
            if (s->conn_close)
                s->conn_close(conn);
            else
                simul_transport_close(conn);
        } else if (s->conn_abort) {
            s->conn_abort(conn);
        } else {
            /* A transport's abort closes with a FIN; linger 0 makes that close a reset, so the
             * peer learns the data it has not received yet is gone. */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            (void)setsockopt(c.f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            simul_transport_abort(conn);
        }
    }
    s->refs--;
    maybe_free(s);
    return count;
}

int simul_server_close_clients(simul_server *s)
{
    return end_clients(s, false);
}

int simul_server_abort_clients(simul_server *s)
{
    return end_clients(s, true);
}

void simul_server_free(simul_server *s)
{
    if (!s)
        return;
    simul_server_close(s);
    s->freed = true;
    maybe_free(s);
}
