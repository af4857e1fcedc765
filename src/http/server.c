/* server.c — libsimul-http's connections: one task per connection reads requests with the strict
 * parser, routes each, runs its handler in that same task and writes the response, in order
 * (pipelining needs nothing more). The idea: every wait is a stream call under a deadline scope
 * (header, body idle, keep-alive idle), and while a handler runs with its body read, a small
 * watcher task reads ahead on the socket: EOF or an error there means the client left, and it
 * cancels the connection's task, so the handler's next suspension returns -ECANCELED. */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/uio.h>
#include <time.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

typedef struct conn conn;

/* A response field kept as the line it is sent as ("Name: value\r\n"), so the head is built
 * with one copy per field; the helpers' constant fields point at static text. */
typedef struct res_header {
    struct res_header *next;
    const char *line;
    size_t len;
} res_header;

struct simul_http_request {
    conn *c;
    char *method, *target, *path, *query;
    uint8_t minor;
    simul_http_header *hdr; /* spans into head */
    char *head;             /* the head's copy, NUL-terminated pieces */
    uint32_t nhdr;
    http_kv *params;
    size_t nparams;
    http_kv *qkv;
    size_t nq;
    bool q_parsed;
    http_kv *cookies;
    size_t ncookies;
    bool cookies_parsed;
    bool body_done;      /* the parser reached END */
    bool body_streamed;  /* read as a stream: the whole body is no longer available */
    bool continue_sent;
    bool expect;
    bool body_error;     /* a broken body: the connection closes */
    int body_status;     /* the status a broken body asks for (400, 413, 408) */
    char *body;          /* the whole body, once read */
    size_t body_len;
    size_t piece_off, piece_len; /* body bytes handed out by the parser, not yet read */
    const http_route *route; /* the route matched, or NULL */
    const char *remote, *scheme; /* the client's address and scheme, once asked */
    struct req_cleanup *cleanups;
    struct http_form *form; /* forms.c's */
};

typedef struct req_cleanup {
    struct req_cleanup *next;
    void (*fn)(void *);
    void *p;
} req_cleanup;


struct simul_http_response {
    conn *c;
    int status;
    res_header *headers, **tail;
    char *body;
    size_t body_len;
    bool started, ended, chunked, head_only, close, sse;
    bool in_app;      /* the app's hooks apply (not a /healthz answer) */
    bool after_done;  /* the after hooks ran */
    bool in_errh;     /* an error handler runs: no second one */
    int error_status; /* simul_http_response_error's status, answered at the handler's return */
    uint64_t sent;    /* body bytes sent (the access log) */
};

struct conn {
    conn *prev, *next;
    simul_http_server *srv;
    simul_stream *s;
    simul_task *task;
    char *buf;
    size_t cap, start, end; /* unconsumed bytes: buf[start..end) */
    simul_http_parser p;
    simul_http_header *hdrs;
    http_arena arena;
    char *out; /* the response head being built */
    size_t out_cap, out_len;
    bool idle;      /* keep-alive, between requests: shutdown may end it */
    bool peer_gone; /* the watcher saw EOF or an error */
    bool drained;   /* ended idle by a shutdown: a plain close (FIN), not a reset */
    bool in_request;
    simul_task *watcher;
    bool watcher_running; /* it began: it uses c, so stopping it means joining it */
    bool watch_pending;   /* watcher_spawn is queued (watch_handle) */
    simul_handle watch_handle;
    bool sse_closing; /* the shutdown cancelled its event stream: end it gracefully */
    bool sse_live;    /* its response is an event stream that began (for the shutdown, which
                         may not read cur_res: it lies in the connection task's frames, away
                         from the run stack while a compact task waits) */
    struct sockaddr_storage peer; /* the peer (or the PROXY header's source) */
    socklen_t peer_len;
    char remote[INET6_ADDRSTRLEN + 8]; /* peer as text */
    bool tls;
    simul_http_request *cur_req; /* the request being served, or NULL */
    simul_http_response *cur_res;
    http_upgrade_hooks up; /* set while a protocol has taken the connection over */
    bool upgraded; /* it did: that protocol ended with its own close (a reset would drop it) */
};

typedef struct http_listener {
    simul_http_server *srv;
    int fd;
    simul_task *task;
    simul_backoff backoff; /* the accept loop's waits after a failed accept (reset by a success) */
} http_listener;

#define HTTP_MAX_LISTENERS 8

/* The connection cap of a threaded server, shared by its threads: one atomic count of the
 * connections being served on any of them. A thread at the cap waits on its own room event;
 * a connection that ends at the cap wakes every thread's (through their loops). */
typedef struct http_shared_cap {
    atomic_long count;
    long cap;
    void (*wake_all)(void *arg);
    void *arg;
} http_shared_cap;

struct simul_http_server {
    simul_http_app *app;
    simul_http_server_opts opts;
    http_listener ls[HTTP_MAX_LISTENERS];
    int nls;
    int port;
    simul_event *room;  /* set when a connection ends: the accept loops at the cap wait on it */
    simul_event *empty; /* set when the last connection ends */
    conn *conns;
    size_t nconns;
    size_t pending;     /* accepted, task not started yet (counted against the cap) */
    int64_t accepted;
    int64_t accept_errors; /* accepts that failed for want of fds or memory (and backed off) */
    bool draining;
    http_cidr *trust; /* trusted proxies (the shared one's on threads) */
    size_t ntrust;
    bool own_trust;   /* trust is this server's to free */
    http_shared_cap *shared; /* threaded: the cap counted across threads (NULL: srv's own) */
};

/* A connection counted in shared->count ended (or never started). */
static void shared_release(simul_http_server *srv)
{
    http_shared_cap *sh = srv->shared;
    if (sh && atomic_fetch_sub(&sh->count, 1) >= sh->cap) {
        sh->wake_all(sh->arg); /* it was full: threads may wait for room */
    }
}

int http_request_on_end(simul_http_request *req, void (*fn)(void *), void *p)
{
    req_cleanup *c = arena_alloc(&req->c->arena, sizeof *c);
    if (!c) {
        return -ENOMEM;
    }
    c->fn = fn;
    c->p = p;
    c->next = req->cleanups;
    req->cleanups = c;
    return 0;
}

struct http_form **http_request_form_slot(simul_http_request *req)
{
    return &req->form;
}

http_arena *http_request_arena(simul_http_request *req)
{
    return &req->c->arena;
}

/* ---- small helpers ----------------------------------------------------------------------- */

/* A status line's reason phrase with its length (measured by the compiler, not per answer). */
typedef struct reason_phrase {
    const char *text;
    size_t len;
} reason_phrase;
#define PHRASE(s) ((reason_phrase){s, sizeof s - 1})

static reason_phrase reason_of(int status)
{
    switch (status) {
    case 100: return PHRASE("Continue");
    case 200: return PHRASE("OK");
    case 201: return PHRASE("Created");
    case 202: return PHRASE("Accepted");
    case 204: return PHRASE("No Content");
    case 206: return PHRASE("Partial Content");
    case 301: return PHRASE("Moved Permanently");
    case 302: return PHRASE("Found");
    case 303: return PHRASE("See Other");
    case 304: return PHRASE("Not Modified");
    case 307: return PHRASE("Temporary Redirect");
    case 308: return PHRASE("Permanent Redirect");
    case 400: return PHRASE("Bad Request");
    case 401: return PHRASE("Unauthorized");
    case 403: return PHRASE("Forbidden");
    case 404: return PHRASE("Not Found");
    case 405: return PHRASE("Method Not Allowed");
    case 408: return PHRASE("Request Timeout");
    case 409: return PHRASE("Conflict");
    case 413: return PHRASE("Content Too Large");
    case 414: return PHRASE("URI Too Long");
    case 415: return PHRASE("Unsupported Media Type");
    case 416: return PHRASE("Range Not Satisfiable");
    case 422: return PHRASE("Unprocessable Content");
    case 429: return PHRASE("Too Many Requests");
    case 431: return PHRASE("Request Header Fields Too Large");
    case 500: return PHRASE("Internal Server Error");
    case 501: return PHRASE("Not Implemented");
    case 502: return PHRASE("Bad Gateway");
    case 503: return PHRASE("Service Unavailable");
    case 505: return PHRASE("HTTP Version Not Supported");
    default: return PHRASE("Unknown");
    }
}
#undef PHRASE

static const char *reason(int status)
{
    return reason_of(status).text;
}

/* The Date field's value, formatted once a second; *len its length, kept with it (29 bytes, the
 * IMF-fixdate's, until the year 10000). */
static const char *http_date(size_t *len)
{
    static _Thread_local char text[40];
    static _Thread_local size_t text_len;
    static _Thread_local time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        text_len = strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    *len = text_len;
    return text;
}

/* Bodies up to this size are copied behind the head and sent with it in one range. */
#define SMALL_BODY 2048

/* Makes room for n more bytes in c->out. */
static int out_reserve(conn *c, size_t n)
{
    if (c->out_len + n <= c->out_cap) {
        return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 512;
    while (cap < c->out_len + n) {
        cap *= 2;
    }
    char *p = realloc(c->out, cap);
    if (!p) {
        return -ENOMEM;
    }
    c->out = p;
    c->out_cap = cap;
    return 0;
}

/* ---- the request ------------------------------------------------------------------------- */

const char *simul_http_request_method(const simul_http_request *req) { return req->method; }
const char *simul_http_request_target(const simul_http_request *req) { return req->target; }
const char *simul_http_request_path(const simul_http_request *req) { return req->path; }
const char *simul_http_request_query_string(const simul_http_request *req) { return req->query; }
int simul_http_request_version_minor(const simul_http_request *req) { return req->minor; }

void *simul_http_alloc(simul_http_request *req, size_t size)
{
    return arena_alloc(&req->c->arena, size);
}

const char *simul_http_request_param(const simul_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++) {
        if (strcmp(req->params[i].name, name) == 0) {
            return req->params[i].value;
        }
    }
    return NULL;
}

int simul_http_request_param_int(const simul_http_request *req, const char *name, int64_t *out)
{
    const char *v = simul_http_request_param(req, name);
    if (!v) {
        return -ENOENT;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno) {
        return -EINVAL;
    }
    *out = x;
    return 0;
}

static int query_parse(simul_http_request *req)
{
    if (req->q_parsed) {
        return 0;
    }
    int rc = http_query_parse(&req->c->arena, req->query, &req->qkv, &req->nq);
    if (rc == 0) {
        req->q_parsed = true;
    }
    return rc;
}

const char *simul_http_request_query(simul_http_request *req, const char *name)
{
    if (query_parse(req) < 0) {
        return NULL;
    }
    for (size_t i = 0; i < req->nq; i++) {
        if (strcmp(req->qkv[i].name, name) == 0) {
            return req->qkv[i].value;
        }
    }
    return NULL;
}

size_t simul_http_request_query_all(simul_http_request *req, const char *name, const char **vals,
                                    size_t max)
{
    if (query_parse(req) < 0) {
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < req->nq; i++) {
        if (strcmp(req->qkv[i].name, name) == 0) {
            if (n < max) {
                vals[n] = req->qkv[i].value;
            }
            n++;
        }
    }
    return n;
}

const char *simul_http_request_header(const simul_http_request *req, const char *name)
{
    for (uint32_t i = 0; i < req->nhdr; i++) {
        if (strcasecmp(req->head + req->hdr[i].name.off, name) == 0) {
            return req->head + req->hdr[i].value.off;
        }
    }
    return NULL;
}

size_t simul_http_request_header_count(const simul_http_request *req)
{
    return req->nhdr;
}

int simul_http_request_header_at(const simul_http_request *req, size_t i, const char **name,
                                 const char **value)
{
    if (i >= req->nhdr) {
        return -ENOENT;
    }
    *name = req->head + req->hdr[i].name.off;
    *value = req->head + req->hdr[i].value.off;
    return 0;
}

const char *simul_http_request_cookie(simul_http_request *req, const char *name)
{
    if (!req->cookies_parsed) {
        req->cookies_parsed = true;
        size_t cap = 0;
        for (uint32_t i = 0; i < req->nhdr; i++) {
            if (strcasecmp(req->head + req->hdr[i].name.off, "cookie") == 0) {
                for (const char *p = req->head + req->hdr[i].value.off; *p; p++) {
                    cap += *p == ';';
                }
                cap++;
            }
        }
        req->cookies = cap ? arena_alloc(&req->c->arena, cap * sizeof *req->cookies) : NULL;
        if (!req->cookies) {
            return NULL;
        }
        for (uint32_t i = 0; i < req->nhdr; i++) {
            if (strcasecmp(req->head + req->hdr[i].name.off, "cookie") != 0) {
                continue;
            }
            const char *p = req->head + req->hdr[i].value.off;
            while (*p) {
                while (*p == ' ' || *p == ';') {
                    p++;
                }
                const char *end = strchr(p, ';');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                const char *eq = memchr(p, '=', len);
                if (eq && eq > p && req->ncookies < cap) {
                    const char *v = eq + 1;
                    size_t vlen = len - (size_t)(v - p);
                    while (vlen && v[vlen - 1] == ' ') {
                        vlen--;
                    }
                    if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
                        v++;
                        vlen -= 2;
                    }
                    http_kv *kv = &req->cookies[req->ncookies];
                    kv->name = arena_strndup(&req->c->arena, p, (size_t)(eq - p));
                    kv->value = arena_strndup(&req->c->arena, v, vlen);
                    if (kv->name && kv->value) {
                        req->ncookies++;
                    }
                }
                p += len;
            }
        }
    }
    for (size_t i = 0; i < req->ncookies; i++) {
        if (strcmp(req->cookies[i].name, name) == 0) {
            return req->cookies[i].value;
        }
    }
    return NULL;
}

int simul_http_request_peername(const simul_http_request *req, struct sockaddr_storage *addr)
{
    return simul_stream_peername(req->c->s, addr);
}

/* Fills req->remote and req->scheme: the peer's, or what a trusted peer forwarded (see
 * simul_http_server_opts.trusted_proxies). */
static void http_forwarded(simul_http_request *req)
{
    conn *c = req->c;
    simul_http_server *srv = c->srv;
    req->remote = c->remote;
    req->scheme = c->tls ? "https" : "http";
    if (!http_trusted(srv->trust, srv->ntrust, &c->peer)) {
        return;
    }
    /* Forwarded (RFC 7239) wins over the X- fields when present: elements separated by ',',
     * pairs by ';'. The walk goes from the last element (the nearest proxy's) to the first. */
    char addr[INET6_ADDRSTRLEN + 8], *best = NULL;
    const char *proto = NULL;
    size_t proto_len = 0;
    bool any_fwd = false;
    for (int pass = 0; pass < 2; pass++) {
        const char *field = pass == 0 ? "forwarded" : "x-forwarded-for";
        /* collect the field's lines, in order, into one list */
        size_t total = 0;
        for (uint32_t i = 0; i < req->nhdr; i++) {
            if (strcasecmp(req->head + req->hdr[i].name.off, field) == 0) {
                total += req->hdr[i].value.len + 1;
            }
        }
        if (total == 0) {
            continue;
        }
        char *list = arena_alloc(&c->arena, total + 1);
        if (!list) {
            return;
        }
        size_t n = 0;
        for (uint32_t i = 0; i < req->nhdr; i++) {
            if (strcasecmp(req->head + req->hdr[i].name.off, field) == 0) {
                if (n) {
                    list[n++] = ',';
                }
                memcpy(list + n, req->head + req->hdr[i].value.off, req->hdr[i].value.len);
                n += req->hdr[i].value.len;
            }
        }
        list[n] = '\0';
        any_fwd = true;
        /* from the right */
        size_t end = n;
        while (end > 0) {
            size_t start = end;
            bool quoted = false;
            while (start > 0 && (list[start - 1] != ',' || quoted)) {
                if (list[start - 1] == '"') {
                    quoted = !quoted;
                }
                start--;
            }
            const char *el = list + start;
            size_t el_len = end - start;
            const char *a = el;
            size_t a_len = el_len;
            const char *el_proto = NULL;
            size_t el_proto_len = 0;
            if (pass == 0) {
                a = NULL;
                /* pairs: for=..;proto=..;by=.. */
                const char *p = el, *e = el + el_len;
                while (p < e) {
                    const char *semi = p;
                    bool q = false;
                    while (semi < e && (*semi != ';' || q)) {
                        if (*semi == '"') {
                            q = !q;
                        }
                        semi++;
                    }
                    while (p < semi && (*p == ' ' || *p == '\t')) {
                        p++;
                    }
                    if (semi - p > 4 && strncasecmp(p, "for=", 4) == 0) {
                        a = p + 4;
                        a_len = (size_t)(semi - a);
                    } else if (semi - p > 6 && strncasecmp(p, "proto=", 6) == 0) {
                        el_proto = p + 6;
                        el_proto_len = (size_t)(semi - el_proto);
                    }
                    p = semi + 1;
                }
            }
            if (!a || !http_forwarded_addr(a, a_len, addr, sizeof addr)) {
                break; /* malformed or obfuscated ("unknown"): the walk ends here */
            }
            best = arena_strndup(&c->arena, addr, strlen(addr));
            if (el_proto) {
                proto = el_proto;
                proto_len = el_proto_len;
            }
            if (!http_trusted_text(srv->trust, srv->ntrust, addr)) {
                break; /* the first untrusted hop: the client */
            }
            end = start ? start - 1 : 0;
        }
        break; /* Forwarded present: the X- fields are not read */
    }
    if (best) {
        req->remote = best;
    }
    if (!proto && any_fwd) {
        /* X-Forwarded-Proto: the last value */
        const char *xp = NULL;
        for (uint32_t i = 0; i < req->nhdr; i++) {
            if (strcasecmp(req->head + req->hdr[i].name.off, "x-forwarded-proto") == 0) {
                xp = req->head + req->hdr[i].value.off;
            }
        }
        if (xp) {
            const char *comma = strrchr(xp, ',');
            proto = comma ? comma + 1 : xp;
            proto_len = strlen(proto);
        }
    } else if (!proto) {
        for (uint32_t i = 0; i < req->nhdr; i++) {
            if (strcasecmp(req->head + req->hdr[i].name.off, "x-forwarded-proto") == 0) {
                const char *xp = req->head + req->hdr[i].value.off;
                const char *comma = strrchr(xp, ',');
                proto = comma ? comma + 1 : xp;
                proto_len = strlen(proto);
            }
        }
    }
    while (proto && proto_len && (*proto == ' ' || *proto == '"')) {
        proto++, proto_len--;
    }
    while (proto && proto_len && (proto[proto_len - 1] == ' ' || proto[proto_len - 1] == '"')) {
        proto_len--;
    }
    if (proto && proto_len == 5 && strncasecmp(proto, "https", 5) == 0) {
        req->scheme = "https";
    } else if (proto && proto_len == 4 && strncasecmp(proto, "http", 4) == 0) {
        req->scheme = "http";
    }
}

/* The connection's peer as text, once. */
static void conn_remote(conn *c)
{
    int len = simul_stream_peername(c->s, &c->peer);
    c->peer_len = len > 0 ? (socklen_t)len : 0;
    http_addr_text(&c->peer, c->peer_len, c->remote, sizeof c->remote);
}

const char *simul_http_request_remote_addr(simul_http_request *req)
{
    if (!req->remote) {
        http_forwarded(req);
    }
    return req->remote;
}

const char *simul_http_request_scheme(simul_http_request *req)
{
    if (!req->scheme) {
        http_forwarded(req);
    }
    return req->scheme;
}

/* ---- reading ----------------------------------------------------------------------------- */

/* Suspends. Reads more bytes into the buffer (compacting it first), within `seconds`.
 * Returns the count, 0 at EOF, or a negative errno. */
static long conn_fill(conn *c, double seconds)
{
    if (c->start == c->end) {
        c->start = c->end = 0;
    } else if (c->end == c->cap && c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    if (c->end == c->cap) {
        return -EMSGSIZE; /* cannot happen: the parser's limits are below cap */
    }
    simul_scope sc;
    simul_scope_timeout(&sc, seconds);
    long n = simul_stream_read(c->s, c->buf + c->end, c->cap - c->end);
    simul_scope_end(&sc);
    if (n > 0) {
        c->end += (size_t)n;
    }
    return n;
}

static void watcher_start(conn *c);

/* Suspends. The next piece of body into req->piece_*; 0 with body_done at the end. */
static int body_next(simul_http_request *req)
{
    conn *c = req->c;
    if (req->body_error) {
        return -EPROTO;
    }
    if (req->expect && !req->continue_sent) {
        req->continue_sent = true;
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        int rc = simul_stream_write(c->s, cont, sizeof cont - 1);
        if (rc < 0) {
            return rc;
        }
    }
    for (;;) {
        size_t used = 0;
        int ev = simul_http_parser_feed(&c->p, c->buf + c->start, c->end - c->start, &used);
        if (ev < 0) {
            req->body_error = true;
            req->body_status = simul_http_error_status(c->p.error);
            return ev;
        }
        if (ev == SIMUL_HTTP_BODY) {
            req->piece_off = (size_t)(c->p.body - c->buf);
            req->piece_len = c->p.body_len;
            c->start += used;
            return 0;
        }
        c->start += used;
        if (ev == SIMUL_HTTP_END) {
            req->body_done = true;
            watcher_start(c);
            return 0;
        }
        long n = conn_fill(c, c->srv->opts.body_timeout);
        if (n <= 0) {
            req->body_error = true;
            req->body_status = n == -ETIMEDOUT ? 408 : 400;
            if (n == -ETIMEDOUT && simul_checkpoint() == 0) {
                return -ETIMEDOUT;
            }
            return n == 0 ? -ECONNRESET : (int)n;
        }
    }
}

long simul_http_request_read(simul_http_request *req, void *buf, size_t n)
{
    if (!req || (!buf && n)) {
        return -EINVAL;
    }
    if (req->body) {
        return -EBUSY;
    }
    req->body_streamed = true;
    while (req->piece_len == 0 && !req->body_done) {
        int rc = body_next(req);
        if (rc < 0) {
            return rc;
        }
    }
    if (req->piece_len == 0 || n == 0) {
        return 0;
    }
    size_t k = n < req->piece_len ? n : req->piece_len;
    memcpy(buf, req->c->buf + req->piece_off, k);
    req->piece_off += k;
    req->piece_len -= k;
    return (long)k;
}

long simul_http_request_body(simul_http_request *req, const char **data)
{
    if (!req || !data) {
        return -EINVAL;
    }
    if (req->body) {
        *data = req->body;
        return (long)req->body_len;
    }
    if (req->body_streamed) {
        return -EBUSY;
    }
    conn *c = req->c;
    /* Content-Length is the client's word: start at most at 64 KiB and grow with what comes. */
    size_t cap = 1024;
    if (c->p.head.framing == SIMUL_HTTP_BODY_LENGTH) {
        cap = c->p.head.content_length < 65536 ? (size_t)c->p.head.content_length : 65536;
    }
    char *body = arena_alloc(&c->arena, cap + 1);
    size_t len = 0;
    if (!body) {
        return -ENOMEM;
    }
    while (!req->body_done || req->piece_len) {
        if (req->piece_len == 0) {
            int rc = body_next(req);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        if (len + req->piece_len > cap) {
            size_t ncap = cap * 2 > len + req->piece_len ? cap * 2 : len + req->piece_len;
            char *nb = arena_alloc(&c->arena, ncap + 1);
            if (!nb) {
                return -ENOMEM;
            }
            memcpy(nb, body, len);
            body = nb;
            cap = ncap;
        }
        memcpy(body + len, c->buf + req->piece_off, req->piece_len);
        len += req->piece_len;
        req->piece_len = 0;
    }
    body[len] = '\0';
    req->body = body;
    req->body_len = len;
    *data = body;
    return (long)len;
}

int simul_http_request_json(simul_http_request *req, json_t **out)
{
    const char *data;
    long n = simul_http_request_body(req, &data);
    if (n < 0) {
        return (int)n;
    }
    json_error_t err;
    json_t *v = json_loadb(data, (size_t)n, 0, &err);
    if (!v) {
        return -EBADMSG;
    }
    *out = v;
    return 0;
}

/* ---- the watcher: a client that leaves cancels its handler ------------------------------- */

static int watcher_main(void *arg)
{
    if (simul_checkpoint() < 0) {
        return 0; /* cancelled before it ran (the handler never suspended): c may be gone */
    }
    conn *c = arg;
    c->watcher_running = true;
    for (;;) {
        if (c->end == c->cap) {
            /* The client pipelined a full buffer: stop reading (backpressure) until the handler
             * is done; a client that leaves now shows up at the handler's writes. */
            simul_sleep(INFINITY);
            return 0;
        }
        long n = simul_stream_read(c->s, c->buf + c->end, c->cap - c->end);
        if (n > 0) {
            c->end += (size_t)n;
            continue;
        }
        if (n == -ECANCELED && simul_task_cancel_requested(simul_task_current())) {
            return 0; /* the handler is done: not a departure */
        }
        c->peer_gone = true;
        simul_task_cancel(c->task);
        return 0;
    }
}

/* Starts the watcher once the request's body is all read (it shares the buffer's tail). */
/* Spawns the watcher: run from the loop, so only once the handler has suspended (a handler that
 * answers without suspending, the common case, never pays for a task: ~600 instructions a
 * request, 7% of a hello-world's, measured with callgrind). */
static void watcher_spawn(void *arg)
{
    conn *c = arg;
    c->watch_pending = false;
    if (c->watcher || !c->in_request || c->peer_gone) {
        return;
    }
    simul_task_opts o = {.name = "http-watch", .stack_size = 16384};
    if (simul_task_spawn(&c->watcher, watcher_main, c, &o) < 0) {
        c->watcher = NULL; /* no watcher: a departure shows at the handler's writes only */
    }
}

static void watcher_start(conn *c)
{
    if (c->watcher || c->watch_pending || !c->in_request || c->peer_gone) {
        return;
    }
    if (c->start == c->end) {
        c->start = c->end = 0; /* room for what comes (a pending piece lies before start) */
    }
    if (simul_call_soon(watcher_spawn, c, &c->watch_handle) == 0) {
        c->watch_pending = true;
    }
}

static void watcher_stop(conn *c)
{
    if (c->watch_pending) {
        simul_handle_cancel(c->watch_handle); /* the handler never suspended */
        c->watch_pending = false;
    }
    if (!c->watcher) {
        return;
    }
    simul_task_cancel(c->watcher);
    if (!c->watcher_running) {
        /* It has not run yet: it will end at its first line without touching c, so no need
         * to switch to it now. */
        simul_task_detach(c->watcher);
    } else {
        simul_scope sh;
        simul_scope_shield(&sh);
        simul_task_join(c->watcher, NULL);
        simul_scope_end(&sh);
    }
    c->watcher = NULL;
    c->watcher_running = false;
}

/* ---- the response ------------------------------------------------------------------------ */

int simul_http_response_status(simul_http_response *res, int status)
{
    if (!res || status < 100 || status > 999) {
        return -EINVAL;
    }
    if (res->started) {
        return -EALREADY;
    }
    res->status = status;
    return 0;
}

int simul_http_response_code(const simul_http_response *res)
{
    return res ? res->status : -EINVAL;
}

/* Appends a field line the caller vouches for (a constant of ours). */
static int header_line(simul_http_response *res, const char *line, size_t len)
{
    if (res->started) {
        return -EALREADY;
    }
    res_header *h = arena_alloc(&res->c->arena, sizeof *h);
    if (!h) {
        return -ENOMEM;
    }
    h->line = line;
    h->len = len;
    h->next = NULL;
    *res->tail = h;
    res->tail = &h->next;
    return 0;
}

#define HEADER_CONST(res, text) header_line((res), text, sizeof text - 1)

/* Whether a field of this name is the framework's to write (framing and the connection). */
static bool reserved_field(const char *name, size_t len)
{
    switch (len) {
    case 10: return strcasecmp(name, "connection") == 0;
    case 14: return strcasecmp(name, "content-length") == 0;
    case 17: return strcasecmp(name, "transfer-encoding") == 0;
    default: return false;
    }
}

int simul_http_response_header(simul_http_response *res, const char *name, const char *value)
{
    if (!res || !name || !value || !*name) {
        return -EINVAL;
    }
    size_t nlen = 0;
    for (; name[nlen]; nlen++) { /* a token: visible ASCII without ':' (CR, LF, SP included) */
        unsigned char ch = (unsigned char)name[nlen];
        if (ch == ':' || ch < 0x21 || ch > 0x7e) {
            return -EINVAL;
        }
    }
    size_t vlen = strcspn(value, "\r\n");
    if (value[vlen]) {
        return -EINVAL;
    }
    if (res->started) {
        return -EALREADY;
    }
    if (reserved_field(name, nlen)) {
        return -EINVAL;
    }
    size_t len = nlen + 2 + vlen + 2;
    char *line = arena_alloc(&res->c->arena, len);
    if (!line) {
        return -ENOMEM;
    }
    memcpy(line, name, nlen);
    memcpy(line + nlen, ": ", 2);
    memcpy(line + nlen + 2, value, vlen);
    memcpy(line + len - 2, "\r\n", 2);
    return header_line(res, line, len);
}

int simul_http_response_body(simul_http_response *res, const void *data, size_t len)
{
    if (!res || (!data && len)) {
        return -EINVAL;
    }
    if (res->started) {
        return -EALREADY;
    }
    char *b = arena_alloc(&res->c->arena, len ? len : 1);
    if (!b) {
        return -ENOMEM;
    }
    if (len) {
        memcpy(b, data, len);
    }
    res->body = b;
    res->body_len = len;
    return 0;
}

int simul_http_response_text(simul_http_response *res, int status, const char *text)
{
    int rc = simul_http_response_status(res, status);
    if (rc == 0) {
        rc = HEADER_CONST(res, "Content-Type: text/plain; charset=utf-8\r\n");
    }
    return rc ? rc : simul_http_response_body(res, text, text ? strlen(text) : 0);
}

int simul_http_response_json(simul_http_response *res, int status, const json_t *v)
{
    if (!v) {
        return -EINVAL;
    }
    int rc = simul_http_response_status(res, status);
    if (rc == 0) {
        rc = HEADER_CONST(res, "Content-Type: application/json\r\n");
    }
    if (rc) {
        return rc;
    }
    if (res->started) {
        return -EALREADY;
    }
    /* Our encoder (json_encode.c: jansson's compact dump, byte for byte, at about a tenth of its
     * cost), straight into the request's arena: a small answer costs no malloc and no copy; a
     * bigger one grows in a malloc'd buffer and is copied into the arena once. */
    size_t cap = 512;
    char *buf = arena_alloc(&res->c->arena, cap);
    if (!buf) {
        return -ENOMEM;
    }
    char *out;
    size_t n;
    rc = http_json_encode(v, buf, cap, &out, &n);
    if (rc) {
        return rc; /* -EINVAL: not encodable (a string not UTF-8, nested too deep: a cycle) */
    }
    if (out != buf) {
        buf = arena_alloc(&res->c->arena, n);
        if (buf) {
            memcpy(buf, out, n);
        }
        free(out);
        if (!buf) {
            return -ENOMEM;
        }
    }
    res->body = buf;
    res->body_len = n;
    return 0;
}

int simul_http_response_redirect(simul_http_response *res, int status, const char *location)
{
    if (!location || (status != 301 && status != 302 && status != 303 && status != 307 &&
                      status != 308)) {
        return -EINVAL;
    }
    int rc = simul_http_response_status(res, status);
    if (rc == 0) {
        rc = simul_http_response_header(res, "Location", location);
    }
    return rc ? rc : simul_http_response_body(res, NULL, 0);
}

static bool cookie_octets_ok(const char *v)
{
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch < 0x21 || ch > 0x7e || ch == '"' || ch == ',' || ch == ';' || ch == '\\') {
            return false;
        }
    }
    return true;
}

int simul_http_response_set_cookie(simul_http_response *res, const char *name, const char *value,
                                   const simul_http_cookie_opts *opts)
{
    if (!res || !name || !*name || !value || !cookie_octets_ok(value)) {
        return -EINVAL;
    }
    for (const char *p = name; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x21 || ch > 0x7e || strchr("()<>@,;:\\\"/[]?={}", ch)) {
            return -EINVAL;
        }
    }
    simul_http_cookie_opts def = {.path = "/", .max_age = -1, .http_only = true};
    if (!opts) {
        opts = &def;
    }
    if ((opts->path && (http_has_crlf(opts->path) || strchr(opts->path, ';'))) ||
        (opts->domain && (http_has_crlf(opts->domain) || strchr(opts->domain, ';'))) ||
        (opts->same_site && !cookie_octets_ok(opts->same_site))) {
        return -EINVAL;
    }
    char line[4096];
    int n = snprintf(line, sizeof line, "%s=%s", name, value);
    size_t len = n > 0 ? (size_t)n : 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (len < sizeof line) {                                                                   \
            int k_ = snprintf(line + len, sizeof line - len, __VA_ARGS__);                         \
            len += k_ > 0 ? (size_t)k_ : 0;                                                        \
        }                                                                                          \
    } while (0)
    if (opts->path) {
        ADD("; Path=%s", opts->path);
    }
    if (opts->domain) {
        ADD("; Domain=%s", opts->domain);
    }
    if (opts->max_age >= 0) {
        ADD("; Max-Age=%lld", (long long)opts->max_age);
    }
    if (opts->secure) {
        ADD("; Secure");
    }
    if (opts->http_only) {
        ADD("; HttpOnly");
    }
    if (opts->same_site) {
        ADD("; SameSite=%s", opts->same_site);
    }
#undef ADD
    if (len >= sizeof line) {
        return -EMSGSIZE;
    }
    return simul_http_response_header(res, "Set-Cookie", line);
}

bool simul_http_response_started(const simul_http_response *res)
{
    return res && res->started;
}

static void run_after(simul_http_request *req, simul_http_response *res);

#define PUT_CONST(p, text) (memcpy((p), text, sizeof text - 1), (p) += sizeof text - 1)

/* Builds the head into c->out. length: the Content-Length, or -1 for a streamed body.
 * Sized first, then copied: no formatting calls on the path every answer takes. */
static int build_head(simul_http_response *res, simul_http_request *req, long long length)
{
    conn *c = res->c;
    run_after(req, res);
    if (c->srv->draining) {
        res->close = true; /* a shutdown began: this is the connection's last answer */
    }
    bool no_body = res->status < 200 || res->status == 204 || res->status == 304;
    if (length < 0 && !no_body) {
        if (req->minor >= 1) {
            res->chunked = true;
        } else {
            res->close = true; /* HTTP/1.0: the body ends with the connection */
        }
    }
    reason_phrase why = reason_of(res->status);
    size_t date_len;
    const char *date = http_date(&date_len);
    size_t need = sizeof "HTTP/1.1 200 \r\nDate: \r\n" + why.len + date_len +
                  sizeof "Content-Length: 18446744073709551615\r\n" +
                  sizeof "Transfer-Encoding: chunked\r\n" + sizeof "Connection: keep-alive\r\n" +
                  sizeof "\r\n";
    for (res_header *h = res->headers; h; h = h->next) {
        need += h->len;
    }
    c->out_len = 0;
    int rc = out_reserve(c, need);
    if (rc) {
        return rc;
    }
    char *p = c->out;
    PUT_CONST(p, "HTTP/1.");
    *p++ = req->minor ? '1' : '0';
    *p++ = ' ';
    *p++ = (char)('0' + res->status / 100); /* 100..999, checked when set */
    *p++ = (char)('0' + res->status / 10 % 10);
    *p++ = (char)('0' + res->status % 10);
    *p++ = ' ';
    memcpy(p, why.text, why.len);
    p += why.len;
    PUT_CONST(p, "\r\nDate: ");
    memcpy(p, date, date_len);
    p += date_len;
    PUT_CONST(p, "\r\n");
    for (res_header *h = res->headers; h; h = h->next) {
        memcpy(p, h->line, h->len);
        p += h->len;
    }
    if (!no_body) {
        if (length >= 0) {
            PUT_CONST(p, "Content-Length: ");
            p += http_fmt_int(p, length);
            PUT_CONST(p, "\r\n");
        } else if (res->chunked) {
            PUT_CONST(p, "Transfer-Encoding: chunked\r\n");
        }
    }
    if (res->close) {
        PUT_CONST(p, "Connection: close\r\n");
    } else if (req->minor == 0) {
        PUT_CONST(p, "Connection: keep-alive\r\n");
    }
    PUT_CONST(p, "\r\n");
    c->out_len = (size_t)(p - c->out);
    return 0;
}

/* Waits while the write buffer is over the high-water mark. */
static int conn_drain(conn *c)
{
    int rc = simul_stream_drain(c->s);
    if (rc == 0 && c->peer_gone) {
        rc = -ECANCELED;
    }
    return rc;
}

static simul_http_request *req_of(simul_http_response *res);

int simul_http_response_write(simul_http_response *res, const void *data, size_t len)
{
    if (!res || (!data && len)) {
        return -EINVAL;
    }
    if (res->ended) {
        return -EALREADY;
    }
    conn *c = res->c;
    if (c->peer_gone) {
        return -ECANCELED;
    }
    int rc = 0;
    if (!res->started) {
        rc = build_head(res, req_of(res), -1);
        if (rc < 0) {
            return rc;
        }
        res->started = true;
        c->sse_live = res->sse;
        rc = simul_stream_write(c->s, c->out, c->out_len);
    }
    if (rc == 0 && len > 0 && !res->head_only) {
        res->sent += len;
        if (res->chunked) {
            char size[24];
            int k = snprintf(size, sizeof size, "%zx\r\n", len);
            struct iovec iov[3] = {{size, (size_t)k}, {(void *)data, len}, {"\r\n", 2}};
            rc = simul_stream_writev(c->s, iov, 3);
        } else {
            rc = simul_stream_write(c->s, data, len);
        }
    }
    if (rc == 0) {
        rc = conn_drain(c);
    }
    if (rc == 0) {
        rc = simul_checkpoint(); /* "its next write or wait": a cancelled handler learns here */
    }
    return rc;
}

int simul_http_response_end(simul_http_response *res)
{
    if (!res) {
        return -EINVAL;
    }
    if (res->ended) {
        return -EALREADY;
    }
    int rc = 0;
    if (!res->started) {
        rc = simul_http_response_write(res, NULL, 0);
        if (rc < 0) {
            return rc;
        }
    }
    res->ended = true;
    if (res->chunked && !res->head_only) {
        rc = simul_stream_write(res->c->s, "0\r\n\r\n", 5);
    }
    return rc ? rc : conn_drain(res->c);
}

int simul_http_response_sendfile(simul_http_response *res, int fd, int64_t offset, uint64_t len)
{
    if (!res || fd < 0 || offset < 0) {
        return -EINVAL;
    }
    if (res->started) {
        return -EALREADY;
    }
    conn *c = res->c;
    if (c->peer_gone) {
        return -ECANCELED;
    }
    simul_http_request *req = req_of(res);
    int rc = build_head(res, req, (long long)len);
    if (rc < 0) {
        return rc;
    }
    res->started = res->ended = true;
    rc = simul_stream_write(c->s, c->out, c->out_len);
    bool no_body = res->head_only || res->status < 200 || res->status == 204 ||
                   res->status == 304;
    if (rc == 0 && !no_body && len > 0) {
        size_t sent = 0;
        long n = simul_stream_sendfile(c->s, fd, offset, (size_t)len, &sent);
        res->sent = sent;
        if (n >= 0 && (uint64_t)n < len) {
            rc = -EIO; /* the file shrank under us: the client sees a short body, and the close */
        } else if (n < 0) {
            rc = (int)n;
        }
    }
    if (rc == 0) {
        rc = conn_drain(c);
    }
    if (rc < 0) {
        res->close = true;
    }
    return rc;
}

int http_response_sendfile_parts(simul_http_response *res, int fd, const http_file_part *parts,
                                 size_t n, const char *epilogue, uint64_t total)
{
    if (!res || fd < 0 || (!parts && n)) {
        return -EINVAL;
    }
    if (res->started) {
        return -EALREADY;
    }
    conn *c = res->c;
    if (c->peer_gone) {
        return -ECANCELED;
    }
    simul_http_request *req = req_of(res);
    int rc = build_head(res, req, (long long)total);
    if (rc < 0) {
        return rc;
    }
    res->started = res->ended = true;
    rc = simul_stream_write(c->s, c->out, c->out_len);
    bool no_body = res->head_only || res->status < 200 || res->status == 204 ||
                   res->status == 304;
    for (size_t i = 0; rc == 0 && !no_body && i < n; i++) {
        /* Each part's header, then its bytes straight from the file; the buffer is drained
         * between parts so a slow client holds at most one part's header in memory. */
        rc = simul_stream_write(c->s, parts[i].head, strlen(parts[i].head));
        rc = rc ? rc : conn_drain(c);
        if (rc == 0 && parts[i].len) {
            size_t sent = 0;
            long k = simul_stream_sendfile(c->s, fd, (int64_t)parts[i].offset,
                                           (size_t)parts[i].len, &sent);
            res->sent += sent;
            if (k >= 0 && (uint64_t)k < parts[i].len) {
                rc = -EIO; /* the file shrank under us */
            } else if (k < 0) {
                rc = (int)k;
            }
        }
    }
    if (rc == 0 && !no_body && epilogue) {
        rc = simul_stream_write(c->s, epilogue, strlen(epilogue));
    }
    if (rc == 0) {
        rc = conn_drain(c);
    }
    if (rc < 0) {
        res->close = true;
    }
    return rc;
}

int simul_http_sse_start(simul_http_response *res)
{
    if (!res) {
        return -EINVAL;
    }
    if (res->started) {
        return -EALREADY;
    }
    int rc = simul_http_response_header(res, "Content-Type", "text/event-stream");
    rc = rc ? rc : simul_http_response_header(res, "Cache-Control", "no-cache");
    rc = rc ? rc : simul_http_response_header(res, "X-Accel-Buffering", "no");
    if (rc == 0) {
        res->sse = true;
        rc = simul_http_response_write(res, NULL, 0);
    }
    return rc;
}

/* simul_http_sse_send, simul_http_sse_comment and the shared events: sse.c. */

/* ---- upgrades: another protocol takes the connection over (WebSocket) --------------------- */

int http_takeover(simul_http_request *req, simul_http_response *res, const void *head,
                  size_t len, const http_upgrade_hooks *hooks, simul_stream **s,
                  const char **rest, size_t *rest_len)
{
    conn *c = req->c;
    if (res->started) {
        return -EALREADY;
    }
    watcher_stop(c); /* the new protocol reads the stream itself; what it read is in c->buf */
    if (c->peer_gone) {
        return -ECONNRESET;
    }
    int rc = simul_stream_write(c->s, head, len);
    if (rc < 0) {
        return rc;
    }
    res->started = res->ended = res->close = true;
    c->up = *hooks;
    c->upgraded = true;
    *s = c->s;
    *rest = c->buf + c->start;
    *rest_len = c->end - c->start;
    c->start = c->end = 0;
    return 0;
}

void http_takeover_done(simul_http_request *req)
{
    memset(&req->c->up, 0, sizeof req->c->up);
}

/* ---- one connection ---------------------------------------------------------------------- */

typedef struct exchange {
    simul_http_request req;
    simul_http_response res;
} exchange;

static simul_http_request *req_of(simul_http_response *res)
{
    return &((exchange *)((char *)res - offsetof(exchange, res)))->req;
}

/* Sends a short error answer and asks for the close. Does not suspend. */
static void send_error(conn *c, int minor, int status, const char *allow)
{
    char msg[512];
    size_t date_len;
    int n =
        snprintf(msg, sizeof msg,
                 "HTTP/1.%d %d %s\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n%s\n",
                 minor, status, reason(status), http_date(&date_len), reason_of(status).len + 1,
                 allow ? "Allow: " : "", allow ? allow : "", allow ? "\r\n" : "", reason(status));
    if (n > 0 && (size_t)n < sizeof msg) {
        simul_stream_write(c->s, msg, (size_t)n);
    }
}

/* Sends the buffered response (the handler did not stream). Does not suspend. */
static int send_whole(simul_http_response *res, simul_http_request *req)
{
    int rc = build_head(res, req, (long long)res->body_len);
    if (rc < 0) {
        return rc;
    }
    res->started = res->ended = true;
    bool no_body = res->head_only || res->status < 200 || res->status == 204 ||
                   res->status == 304;
    if (no_body || res->body_len == 0) {
        return simul_stream_write(res->c->s, res->c->out, res->c->out_len);
    }
    res->sent = res->body_len;
    conn *c = res->c;
    /* A small body rides in the head's buffer: one send(2) with one range costs the kernel less
     * than a sendmsg(2) importing two, and the copy is a few dozen bytes. */
    if (res->body_len <= SMALL_BODY && out_reserve(c, res->body_len) == 0) {
        memcpy(c->out + c->out_len, res->body, res->body_len);
        c->out_len += res->body_len;
        return simul_stream_write(c->s, c->out, c->out_len);
    }
    struct iovec iov[2] = {{c->out, c->out_len}, {res->body, res->body_len}};
    return simul_stream_writev(c->s, iov, 2);
}

/* Sets up the request from the parsed head: a copy of the head (NUL-terminated pieces) in the
 * arena, the path and query split. Returns 0, or a status to answer with. */
static int request_setup(conn *c, simul_http_request *req)
{
    const simul_http_head *h = &c->p.head;
    req->head = arena_alloc(&c->arena, h->head_len + 1);
    req->hdr = arena_alloc(&c->arena, (h->nheaders ? h->nheaders : 1) * sizeof *req->hdr);
    if (!req->head || !req->hdr) {
        return 500;
    }
    memcpy(req->head, h->base, h->head_len);
    req->head[h->head_len] = '\0';
    /* Each piece is followed by a byte that is not part of it (SP, ':', OWS, CR): end it there. */
    req->method = req->head + h->method.off;
    req->method[h->method.len] = '\0';
    req->target = req->head + h->target.off;
    req->target[h->target.len] = '\0';
    req->nhdr = h->nheaders;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        req->hdr[i] = h->headers[i];
        req->head[h->headers[i].name.off + h->headers[i].name.len] = '\0';
        req->head[h->headers[i].value.off + h->headers[i].value.len] = '\0';
    }
    req->minor = h->version_minor;
    req->expect = h->expect_continue;
    if (h->framing == SIMUL_HTTP_BODY_NONE) {
        /* The parser reports END in a call of its own (it consumes nothing). */
        size_t used = 0;
        int ev = simul_http_parser_feed(&c->p, c->buf + c->start, c->end - c->start, &used);
        c->start += used;
        if (ev != SIMUL_HTTP_END) {
            return 500;
        }
        req->body_done = true;
    }
    if (req->target[0] != '/') {
        /* "*" (OPTIONS), authority form (CONNECT) or absolute form: only origin form is
         * served here. */
        if (strcmp(req->target, "*") == 0 && strcmp(req->method, "OPTIONS") == 0) {
            req->path = "*";
            req->query = "";
            return 0;
        }
        return 400;
    }
    char *q = strchr(req->target, '?');
    if (q) {
        req->path = arena_strndup(&c->arena, req->target, (size_t)(q - req->target));
        req->query = q + 1;
    } else {
        req->path = req->target;
        req->query = "";
    }
    if (!req->path) {
        return 500;
    }
    if (*req->query && query_parse(req) < 0) {
        return 400;
    }
    return 0;
}

/* Reads what is left of the body and drops it, so the next request can be read.
 * Returns 0, or < 0: the connection must close. */
static int body_skip(simul_http_request *req)
{
    if (req->expect && !req->continue_sent && !req->body_done) {
        return -EPIPE; /* the client may never send it: close (RFC 9110 10.1.1) */
    }
    while (!req->body_done) {
        req->piece_len = 0;
        int rc = body_next(req);
        if (rc < 0) {
            return rc;
        }
    }
    req->piece_len = 0;
    return 0;
}

/* ---- the access log ---------------------------------------------------------------------- */

/* Appends s to line as the combined format's quoted fields want it: '"', '\' and bytes outside
 * printable ASCII as \xHH (nginx's escaping), so a log line is one line whatever the client sent. */
static size_t log_escape(char *line, size_t n, size_t cap, const char *s)
{
    for (; s && *s && n + 5 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') {
            n += (size_t)snprintf(line + n, cap - n, "\\x%02X", ch);
        } else {
            line[n++] = (char)ch;
        }
    }
    line[n] = '\0';
    return n;
}

void simul_http_access_log_file(const char *line, void *arg)
{
    FILE *f = arg ? arg : stderr;
    fprintf(f, "%s\n", line); /* one call: stdio locks the stream, threads do not interleave */
    fflush(f);
}

/* One line in the combined format (Apache's and nginx's default):
 * addr - user [time] "request line" status bytes "referer" "user-agent" */
static void access_log(conn *c, simul_http_request *req, simul_http_response *res)
{
    const simul_http_server_opts *o = &c->srv->opts;
    if (!o->access_log) {
        return;
    }
    char line[2048], when[40];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    size_t n = 0, cap = sizeof line;
    n = log_escape(line, n, cap, simul_http_request_remote_addr(req));
    n += (size_t)snprintf(line + n, cap - n, " - - [%s] \"", when);
    n = log_escape(line, n, cap, req->method);
    if (n + 2 < cap) {
        line[n++] = ' ';
    }
    n = log_escape(line, n, cap, req->target);
    if (n + 64 < cap) {
        n += (size_t)snprintf(line + n, cap - n, " HTTP/1.%d\" %d ", req->minor,
                              res->started ? res->status : 0);
        n += (size_t)(res->sent ? snprintf(line + n, cap - n, "%llu \"",
                                           (unsigned long long)res->sent)
                                : snprintf(line + n, cap - n, "- \""));
    }
    const char *ref = simul_http_request_header(req, "Referer");
    n = log_escape(line, n, cap, ref ? ref : "-");
    if (n + 4 < cap) {
        memcpy(line + n, "\" \"", 4);
        n += 3;
    }
    const char *ua = simul_http_request_header(req, "User-Agent");
    n = log_escape(line, n, cap, ua ? ua : "-");
    if (n + 2 < cap) {
        line[n++] = '"';
        line[n] = '\0';
    }
    o->access_log(line, o->access_log_arg);
}

/* A request the parser refused (or a slowloris): no request line to show, as nginx logs them. */
static void access_log_raw(conn *c, int status)
{
    const simul_http_server_opts *o = &c->srv->opts;
    if (!o->access_log) {
        return;
    }
    char line[256], when[40], addr[160];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    log_escape(addr, 0, sizeof addr, c->remote);
    snprintf(line, sizeof line, "%s - - [%s] \"-\" %d %zu \"-\" \"-\"", addr, when, status,
             reason_of(status).len + 1);
    o->access_log(line, o->access_log_arg);
}

/* ---- hooks and error answers ------------------------------------------------------------- */

/* Runs a group's hooks of `kind`, its parents' first. For HOOK_BEFORE returns the first non-0. */
static int group_hooks(const simul_http_group *g, int kind, simul_http_request *req,
                       simul_http_response *res)
{
    if (!g) {
        return 0;
    }
    int rc = group_hooks(g->parent, kind, req, res);
    for (const http_hook *h = g->hooks; h && rc == 0; h = h->next) {
        if (h->kind == HOOK_BEFORE && kind == HOOK_BEFORE) {
            rc = h->fn.before(req, res, h->arg);
        } else if (h->kind == HOOK_AFTER && kind == HOOK_AFTER) {
            h->fn.after(req, res, h->arg);
        }
    }
    return rc;
}

/* The app's before hooks, then the route's groups'. 0 to go on, 1 answered, < 0 failed. */
static int run_before(simul_http_request *req, simul_http_response *res, const http_route *route)
{
    int rc = 0;
    for (const http_hook *h = res->c->srv->app->hooks; h && rc == 0; h = h->next) {
        if (h->kind == HOOK_BEFORE) {
            rc = h->fn.before(req, res, h->arg);
        }
    }
    if (rc == 0 && route) {
        rc = group_hooks(route->group, HOOK_BEFORE, req, res);
    }
    return rc;
}

/* The after hooks, once, just before the head goes out. */
static void run_after(simul_http_request *req, simul_http_response *res)
{
    if (res->after_done || !res->in_app) {
        return;
    }
    res->after_done = true;
    for (const http_hook *h = res->c->srv->app->hooks; h; h = h->next) {
        if (h->kind == HOOK_AFTER) {
            h->fn.after(req, res, h->arg);
        }
    }
    if (req->route) {
        group_hooks(req->route->group, HOOK_AFTER, req, res);
    }
}

static void run_teardown(simul_http_request *req, simul_http_response *res, int error)
{
    for (const http_hook *h = res->c->srv->app->hooks; h; h = h->next) {
        if (h->kind == HOOK_TEARDOWN) {
            h->fn.teardown(req, res->started ? res->status : 0, error, h->arg);
        }
    }
}

static void res_reset(simul_http_response *res)
{
    res->headers = NULL;
    res->tail = &res->headers;
    res->body = NULL;
    res->body_len = 0;
    res->error_status = 0;
}

/* Answers status through the app's error handler for it, or the server's short text (the
 * response is not started). allow: the Allow field of a 405. Suspends if the handler does. */
static void answer_error(simul_http_request *req, simul_http_response *res, int status,
                         const char *allow)
{
    const http_errh *e = res->in_errh ? NULL : http_errh_find(res->c->srv->app, status);
    res_reset(res);
    res->status = status;
    if (allow) {
        simul_http_response_header(res, "Allow", allow);
    }
    if (e) {
        res->in_errh = true;
        int rc = e->fn(req, res, e->arg);
        if (res->started || (rc == 0 && !res->error_status)) {
            return;
        }
        res_reset(res); /* it failed: the server's own text */
        res->status = status;
        if (allow) {
            simul_http_response_header(res, "Allow", allow);
        }
    }
    char text[64];
    snprintf(text, sizeof text, "%s\n", reason(status));
    simul_http_response_text(res, status, text);
}

int simul_http_response_error(simul_http_response *res, int status)
{
    if (!res || status < 400 || status > 599) {
        return -EINVAL;
    }
    if (res->started) {
        return -EALREADY;
    }
    res->error_status = status;
    return 0;
}

/* Serves one request whose head was just parsed. Returns true to go on with the connection. */
static bool serve_request(conn *c, unsigned nreq)
{
    simul_http_server *srv = c->srv;
    exchange x;
    memset(&x, 0, sizeof x);
    simul_http_request *req = &x.req;
    simul_http_response *res = &x.res;
    req->c = res->c = c;
    res->status = 200;
    res->tail = &res->headers;
    bool keep = c->p.head.keep_alive && !c->p.head.upgrade;
    int st = request_setup(c, req);
    if (st) {
        send_error(c, req->minor, st, NULL);
        return false;
    }
    if (!keep || srv->draining || nreq >= srv->opts.max_requests) {
        res->close = true;
    }
    res->head_only = strcmp(req->method, "HEAD") == 0;
    c->in_request = true;
    c->cur_req = req;
    c->cur_res = res;

    int hrc = 0;
    if (srv->opts.health && (strcmp(req->path, "/healthz") == 0 ||
                             strcmp(req->path, "/readyz") == 0) &&
        (strcmp(req->method, "GET") == 0 || res->head_only)) {
        bool ready = req->path[1] == 'h' || !srv->draining;
        simul_http_response_text(res, ready ? 200 : 503, ready ? "ok\n" : "draining\n");
    } else {
        res->in_app = true;
        http_match m;
        http_route_find(srv->app, req->method, req->path, &c->arena, &m);
        req->route = m.route;
        if (m.route) {
            req->params = m.params;
            req->nparams = m.nparams;
        }
        if (m.route && req->body_done) {
            watcher_start(c);
        }
        int brc = m.bad_escape ? 0 : run_before(req, res, m.route);
        if (m.bad_escape) {
            res->close = true;
            answer_error(req, res, 400, NULL);
        } else if (brc < 0) {
            hrc = brc;
        } else if (brc > 0) {
            /* a hook answered */
        } else if (m.route) {
            hrc = m.route->handler(req, res, m.route->arg);
            if (c->up.release) {
                c->up.release(c->up.arg); /* an upgraded protocol the handler left open */
                http_takeover_done(req);
            }
        } else if (strcmp(req->method, "OPTIONS") == 0 &&
                   (m.path_matched || strcmp(req->path, "*") == 0)) {
            simul_http_response_status(res, 204);
            simul_http_response_header(res, "Allow", m.path_matched ? m.allow : "GET, HEAD, OPTIONS");
        } else if (m.path_matched) {
            answer_error(req, res, 405, m.allow);
        } else {
            answer_error(req, res, 404, NULL);
        }
        if (hrc == 0 && !res->started && res->error_status) {
            answer_error(req, res, res->error_status, NULL);
        }
    }
    watcher_stop(c);
    c->in_request = false;
    bool go_on = false;
    int error = hrc < 0 ? hrc : 0;
    if (c->sse_closing && !c->peer_gone && res->started && !res->ended) {
        /* The shutdown ended this event stream: close it properly (the last chunk, then the
         * lingering close), so the client sees a finished response, not a reset. */
        simul_scope sh, dl;
        simul_scope_shield(&sh);
        simul_scope_timeout(&dl, 2);
        res->ended = true;
        if (res->chunked && !res->head_only) {
            simul_stream_write(c->s, "0\r\n\r\n", 5);
        }
        simul_stream_drain(c->s);
        simul_scope_end(&dl);
        simul_scope_end(&sh);
        error = -ECANCELED;
        goto out;
    }
    if (c->peer_gone || simul_task_cancel_requested(c->task)) {
        error = -ECANCELED; /* the client left, or the shutdown cancelled us */
        goto out;
    }
    if (req->body_error || hrc < 0) {
        /* A broken or oversized body (the handler saw the error), or a failed handler: answer
         * for it if we can, and close. */
        if (!res->started) {
            res->close = true;
            int status = req->body_error ? (req->body_status ? req->body_status : 400) : 500;
            answer_error(req, res, status, NULL);
            if (!res->started) {
                send_whole(res, req);
            } else if (!res->ended) {
                simul_http_response_end(res);
            }
        }
        goto out;
    }
    if (!res->ended && res->started) {
        if (simul_http_response_end(res) < 0) {
            goto out;
        }
    } else if (!res->started) {
        /* The body has to be skipped before the next request: if that fails, say close. */
        if (!res->close && !req->body_done && req->expect && !req->continue_sent) {
            res->close = true;
        }
        if (send_whole(res, req) < 0) {
            goto out;
        }
    }
    if (res->close) {
        goto out;
    }
    if (body_skip(req) < 0) {
        goto out;
    }
    go_on = conn_drain(c) == 0;
out:
    if (res->in_app) {
        run_teardown(req, res, error);
    }
    access_log(c, req, res);
    for (req_cleanup *k = req->cleanups; k; k = k->next) {
        k->fn(k->p);
    }
    c->cur_req = NULL;
    c->cur_res = NULL;
    c->sse_live = false;
    return go_on;
}

/* Suspends. Reads a PROXY protocol header (v1 or v2) off the stream, exactly its bytes (what
 * follows may be a TLS handshake), and takes its source as the peer. */
static int read_proxy_header(conn *c)
{
    unsigned char h[SIMUL_HTTP_PROXY_V2_MAX];
    size_t n = 0, want = 8;
    simul_http_proxy_info info;
    for (;;) {
        long rc = simul_stream_readexactly(c->s, h + n, want - n, NULL);
        if (rc < 0) {
            return (int)rc;
        }
        n = want;
        long k = simul_http_proxy_parse(h, n, &info);
        if (k < 0) {
            return (int)k;
        }
        if (k > 0) {
            break;
        }
        if (h[0] == 'P') {
            want = n + 1; /* v1: up to its LF, a byte at a time (from the stream's buffer) */
        } else if (n < 16) {
            want = 16;
        } else {
            want = 16 + ((size_t)h[14] << 8 | h[15]); /* the parser checked the bound */
        }
    }
    if (!info.local) {
        c->peer = info.src;
        c->peer_len = info.src_len;
        http_addr_text(&c->peer, c->peer_len, c->remote, sizeof c->remote);
    }
    return 0;
}

static int conn_main(simul_stream *s, void *arg)
{
    simul_http_server *srv = arg;
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        return -ENOMEM;
    }
    const simul_http_limits *lim = &srv->opts.limits;
    c->srv = srv;
    c->s = s;
    c->task = simul_task_current();
    c->cap = (size_t)lim->max_request_line + lim->max_header_bytes + 8192;
    c->buf = malloc(c->cap);
    c->hdrs = malloc(lim->max_headers * sizeof *c->hdrs);
    if (!c->buf || !c->hdrs ||
        simul_http_parser_init(&c->p, SIMUL_HTTP_REQUEST, lim, c->hdrs, lim->max_headers) < 0) {
        free(c->buf);
        free(c->hdrs);
        free(c);
        return -ENOMEM;
    }
    c->next = srv->conns;
    if (c->next) {
        c->next->prev = c;
    }
    srv->conns = c;
    srv->nconns++;

    unsigned nreq = 0;
    conn_remote(c);
    c->idle = true; /* a shutdown may end it until its first request */
    if (srv->opts.proxy_protocol) {
        simul_scope sc;
        simul_scope_timeout(&sc, srv->opts.header_timeout);
        int rc = read_proxy_header(c);
        simul_scope_end(&sc);
        if (rc < 0) {
            c->peer_gone = true; /* no answer: the peer does not speak HTTP to us yet */
            goto done;
        }
    }
    if (srv->opts.tls && srv->opts.tls_accept) {
        if (srv->opts.tls_accept(s, srv->opts.tls) < 0) {
            c->peer_gone = true;
            goto done;
        }
        c->tls = true;
    }
    c->idle = false;
    for (;;) {
        /* Read a head: the keep-alive (or first request's header) timeout while nothing came,
         * the header timeout from the first byte. */
        int64_t deadline = 0;
        int ev;
        for (;;) {
            size_t used = 0;
            ev = simul_http_parser_feed(&c->p, c->buf + c->start, c->end - c->start, &used);
            c->start += used;
            if (ev != SIMUL_HTTP_NEED_MORE) {
                break;
            }
            bool empty = c->start == c->end;
            /* A drain ends keep-alive connections between requests, not a fresh one: its
             * first request may already sit unread in the socket (accepted just before the
             * listener closed), and dropping it would reset the client. */
            if (empty && ((srv->draining && nreq) || simul_task_cancel_requested(c->task))) {
                goto done;
            }
            double wait;
            if (empty) {
                wait = nreq ? srv->opts.keepalive_timeout : srv->opts.header_timeout;
                c->idle = nreq > 0;
            } else {
                if (!deadline) {
                    deadline = simul_now_ns() + (int64_t)(srv->opts.header_timeout * 1e9);
                }
                wait = (double)(deadline - simul_now_ns()) / 1e9;
                if (wait < 0) {
                    wait = 0;
                }
            }
            long n = conn_fill(c, wait);
            c->idle = false;
            if (n == -ETIMEDOUT && !empty && simul_checkpoint() == 0) {
                send_error(c, 1, 408, NULL); /* a slowloris */
                access_log_raw(c, 408);
                goto done;
            }
            if (n <= 0) {
                goto done; /* EOF, idle timeout, reset, the shutdown */
            }
            if (!deadline) {
                deadline = simul_now_ns() + (int64_t)(srv->opts.header_timeout * 1e9);
            }
        }
        if (ev < 0) {
            send_error(c, 1, simul_http_error_status(c->p.error), NULL);
            access_log_raw(c, simul_http_error_status(c->p.error));
            goto done;
        }
        if (ev != SIMUL_HTTP_HEAD) {
            goto done; /* END without HEAD cannot happen */
        }
        nreq++;
        bool go_on = serve_request(c, nreq);
        arena_reset(&c->arena);
        if (!go_on) {
            break;
        }
    }
done:
    if (c->peer_gone || (simul_task_cancel_requested(c->task) && !c->sse_closing &&
                         !c->upgraded && !c->drained)) {
        simul_stream_abort(s);
    } else {
        simul_scope sh; /* an SSE stream ended by the shutdown: its task is cancelled */
        simul_scope_shield(&sh);
        /* Let the peer read the last answer before the close (a reset would drop it). */
        /* A lingering close, as nginx's: half-close, then read and drop until the peer's EOF
         * (bounded), since closing with unread bytes would reset the connection and could
         * drop the answer before the peer reads it. */
        simul_scope dl;
        simul_scope_timeout(&dl, 2);
        if (simul_stream_write_eof(s) == 0) {
            char sink[4096];
            while (simul_stream_read(s, sink, sizeof sink) > 0) {
            }
        }
        simul_scope_end(&dl);
        simul_scope_end(&sh);
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        srv->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    srv->nconns--;
    shared_release(srv);
    if (srv->room) {
        simul_event_set(srv->room); /* an accept loop at the cap may go on */
    }
    if (srv->nconns == 0 && srv->pending == 0 && srv->empty) {
        simul_event_set(srv->empty);
    }
    arena_free(&c->arena);
    free(c->out);
    free(c->buf);
    free(c->hdrs);
    free(c);
    return 0;
}


/* ---- serving: our own accept loop, so the connection cap holds accept() back ------------- */

typedef struct conn_start {
    simul_http_server *srv;
    simul_stream *s;
} conn_start;

static int conn_task(void *arg)
{
    conn_start st = *(conn_start *)arg;
    free(arg);
    st.srv->pending--;
    int rc = conn_main(st.s, st.srv);
    if (rc < 0) { /* it could not start: count it out here */
        shared_release(st.srv);
        simul_event_set(st.srv->room);
        if (st.srv->nconns == 0 && st.srv->pending == 0) {
            simul_event_set(st.srv->empty);
        }
    }
    simul_scope sh; /* the close's flush must not be skipped by a cancel (the shutdown's) */
    simul_scope_shield(&sh);
    simul_scope dl;
    simul_scope_timeout(&dl, 5);
    simul_stream_close(st.s);
    simul_scope_end(&dl);
    simul_scope_end(&sh);
    return 0;
}

/* Threaded: takes a slot in the shared count for a connection just accepted, waiting while
 * every slot is taken (the other threads may have filled them since this one's check). At most
 * one accepted connection per thread waits so. Returns 0, or < 0 when the wait was stopped. */
static int shared_take(simul_http_server *srv)
{
    http_shared_cap *sh = srv->shared;
    for (;;) {
        long cur = atomic_load(&sh->count);
        if (cur < sh->cap) {
            if (atomic_compare_exchange_weak(&sh->count, &cur, cur + 1)) {
                return 0;
            }
            continue;
        }
        simul_event_clear(srv->room);
        if (atomic_load(&sh->count) < sh->cap) {
            continue;
        }
        int rc = simul_event_wait(srv->room);
        if (rc < 0) {
            return rc;
        }
    }
}

static int accept_main(void *arg)
{
    http_listener *l = arg;
    simul_http_server *srv = l->srv;
    /* 10, 20, 40 ... 640 ms, then 1 s: the same delays as the stream servers' (no jitter: one
     * process's own listener, nothing to spread out). */
    static const simul_backoff_opts bo = {.base = 0.01, .cap = 1, .seed = 1};
    (void)simul_backoff_init(&l->backoff, &bo); /* constant, valid options */
    for (;;) {
        /* At the cap: wait for a connection to end. The newcomers wait in the kernel's backlog. */
        while (srv->shared ? atomic_load(&srv->shared->count) >= srv->shared->cap
                           : srv->nconns + srv->pending >= srv->opts.max_connections) {
            simul_event_clear(srv->room);
            if (srv->shared && atomic_load(&srv->shared->count) < srv->shared->cap) {
                break; /* a release came between the check and the clear */
            }
            if (simul_event_wait(srv->room) < 0) {
                return 0;
            }
        }
        int fd = simul_accept(l->fd, NULL, NULL);
        if (fd < 0) {
            if (fd == -ECANCELED || simul_task_cancel_requested(simul_task_current())) {
                return 0;
            }
            if (fd == -ECONNABORTED || fd == -EINTR || fd == -EAGAIN || fd == -EPROTO) {
                continue; /* that one connection failed: the next */
            }
            /* out of fds or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS), or anything unexpected:
             * back off (up to 1 s) instead of spinning */
            srv->accept_errors++;
            if (simul_sleep(simul_backoff_next(&l->backoff)) < 0) {
                return 0;
            }
            continue;
        }
        simul_backoff_reset(&l->backoff);
        if (srv->shared && shared_take(srv) < 0) {
            close(fd); /* stopped while waiting for room */
            return 0;
        }
        srv->accepted++;
        simul_stream *s;
        conn_start *st = malloc(sizeof *st);
        if (!st || simul_stream_from_fd(fd, &s) < 0) {
            free(st);
            close(fd);
            continue;
        }
        st->srv = srv;
        st->s = s;
        simul_task_opts o = {.name = "http-conn", .stack_size = srv->opts.stack_size};
        srv->pending++;
        if (simul_task_spawn(NULL, conn_task, st, &o) < 0) {
            srv->pending--;
            shared_release(srv);
            free(st);
            simul_stream_abort(s);
            simul_stream_close(s);
        }
    }
}

/* Fills srv's options from opts (NULL: defaults), the 0 fields with their defaults. */
static int opts_normalise(simul_http_server_opts *o, const simul_http_server_opts *opts)
{
    memset(o, 0, sizeof *o);
    if (opts) {
        *o = *opts;
    }
    simul_http_limits *l = &o->limits;
    if (!l->max_request_line) l->max_request_line = SIMUL_HTTP_DEFAULT_MAX_REQUEST_LINE;
    if (!l->max_header_bytes) l->max_header_bytes = SIMUL_HTTP_DEFAULT_MAX_HEADER_BYTES;
    if (!l->max_headers) l->max_headers = SIMUL_HTTP_DEFAULT_MAX_HEADERS;
    if (!l->max_chunk_line) l->max_chunk_line = SIMUL_HTTP_DEFAULT_MAX_CHUNK_LINE;
    if (!l->max_body) l->max_body = SIMUL_HTTP_DEFAULT_MAX_BODY;
    if (l->max_request_line > (1u << 30) || l->max_header_bytes > (1u << 30) ||
        l->max_headers > 100000 || !(o->header_timeout >= 0) || !(o->body_timeout >= 0) ||
        !(o->keepalive_timeout >= 0) || (o->tls && !o->tls_accept)) {
        return -EINVAL;
    }
    if (o->header_timeout == 0) o->header_timeout = 10;
    if (o->body_timeout == 0) o->body_timeout = 30;
    if (o->keepalive_timeout == 0) o->keepalive_timeout = 75;
    if (o->max_requests == 0) o->max_requests = 1000;
    if (o->max_connections == 0) o->max_connections = 10000;
    return 0;
}

static void server_release(simul_http_server *srv)
{
    for (int i = 0; i < srv->nls; i++) {
        if (srv->ls[i].fd >= 0) {
            close(srv->ls[i].fd);
        }
    }
    simul_event_free(srv->room);
    simul_event_free(srv->empty);
    if (srv->own_trust) {
        free(srv->trust);
    }
    free(srv);
}

/* opts.socks (a supervisor's or systemd's listening sockets, asyncio's sock=): each adopted
 * (simul_listener_adopt), copied to fds. Returns their count; -EINVAL
 * (host or port given too, too many, not listening); -EBADF. */
static int adopt_socks(const char *host, const char *port, const simul_http_server_opts *o,
                       int *fds)
{
    if (o->n_socks > HTTP_MAX_LISTENERS || !o->socks || (host && *host) || port) {
        return -EINVAL;
    }
    for (int i = 0; i < o->n_socks; i++) {
        int rc = simul_listener_adopt(o->socks[i]);
        if (rc < 0) {
            return rc;
        }
        fds[i] = o->socks[i];
    }
    return o->n_socks;
}

/* Listens (flags: SIMUL_LISTEN_REUSEPORT on threads) and starts the accept loops. */
static int server_start(simul_http_app *app, const char *host, const char *port, unsigned flags,
                        const simul_http_server_opts *o, http_cidr *trust, size_t ntrust,
                        simul_http_server **out)
{
    simul_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        return -ENOMEM;
    }
    srv->app = app;
    srv->opts = *o;
    srv->trust = trust;
    srv->ntrust = ntrust;
    int fds[HTTP_MAX_LISTENERS];
    int rc = simul_event_new(&srv->room);
    rc = rc ? rc : simul_event_new(&srv->empty);
    bool adopted = o->n_socks > 0;
    if (rc == 0 && adopted) {
        rc = adopt_socks(host, port, o, fds);
    } else if (rc == 0) {
        rc = simul_tcp_listen(host && *host ? host : NULL, port ? port : "0", 0, flags, fds,
                              HTTP_MAX_LISTENERS);
    }
    if (rc < 0) {
        server_release(srv);
        return rc;
    }
    srv->nls = rc;
    for (int i = 0; i < srv->nls; i++) {
        srv->ls[i].fd = fds[i];
        srv->ls[i].srv = srv;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fds[0], (struct sockaddr *)&ss, &sl) == 0) {
        srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    }
    for (int i = 0; i < srv->nls; i++) {
        simul_task_opts to = {.name = "http-accept", .stack_size = 32768};
        rc = simul_task_spawn(&srv->ls[i].task, accept_main, &srv->ls[i], &to);
        if (rc < 0) {
            for (int j = 0; j < i; j++) {
                simul_task_cancel(srv->ls[j].task);
                simul_task_join(srv->ls[j].task, NULL);
            }
            for (int j = 0; adopted && j < srv->nls; j++) {
                srv->ls[j].fd = -1; /* adopted sockets stay the caller's on an error */
            }
            server_release(srv);
            return rc;
        }
    }
    *out = srv;
    return 0;
}

int simul_http_serve(simul_http_app *app, const char *host, const char *port,
                     const simul_http_server_opts *opts, simul_http_server **out)
{
    if (!app || !out) {
        return -EINVAL;
    }
    simul_http_server_opts o;
    int rc = opts_normalise(&o, opts);
    if (rc < 0) {
        return rc;
    }
    http_cidr *trust;
    size_t ntrust;
    rc = http_trust_parse(o.trusted_proxies, &trust, &ntrust);
    if (rc < 0) {
        return rc;
    }
    rc = server_start(app, host, port, 0, &o, trust, ntrust, out);
    if (rc < 0) {
        free(trust);
        return rc;
    }
    (*out)->own_trust = true;
    return 0;
}

int simul_http_server_port(const simul_http_server *srv)
{
    return srv ? srv->port : -EINVAL;
}

size_t simul_http_server_connections(const simul_http_server *srv)
{
    return srv ? srv->nconns : 0;
}

int simul_http_server_wait_connections(simul_http_server *srv, size_t n)
{
    if (!srv || !srv->room) {
        return -EINVAL;
    }
    /* room is set each time a connection ends (after which its task frees it without
     * suspending); the accept loops share it, and every waiter clears it before checking. */
    while (srv->nconns > n) {
        simul_event_clear(srv->room);
        if (srv->nconns <= n) {
            break;
        }
        int rc = simul_event_wait(srv->room);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

void http_server_accept_state(const simul_http_server *srv, int64_t *errors, unsigned *in_a_row)
{
    unsigned most = 0;
    for (int i = 0; i < srv->nls; i++) {
        if (srv->ls[i].backoff.failures > most) {
            most = srv->ls[i].backoff.failures;
        }
    }
    *errors = srv->accept_errors;
    *in_a_row = most;
}

/* Stops accepting: the accept loops end, the listening sockets close. */
static void stop_listening(simul_http_server *srv)
{
    simul_scope sh;
    simul_scope_shield(&sh);
    for (int i = 0; i < srv->nls; i++) {
        if (srv->ls[i].task) {
            simul_task_cancel(srv->ls[i].task);
            simul_task_join(srv->ls[i].task, NULL);
            srv->ls[i].task = NULL;
        }
        if (srv->ls[i].fd >= 0) {
            close(srv->ls[i].fd);
            srv->ls[i].fd = -1;
        }
    }
    simul_scope_end(&sh);
}

static int wait_empty(simul_http_server *srv)
{
    while (srv->nconns || srv->pending) {
        simul_event_clear(srv->empty);
        int rc = simul_event_wait(srv->empty);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int simul_http_server_shutdown(simul_http_server *srv, double timeout)
{
    if (!srv || !(timeout >= 0)) {
        return -EINVAL;
    }
    srv->draining = true;
    stop_listening(srv);
    for (conn *c = srv->conns; c; c = c->next) {
        if (c->idle) {
            c->drained = true;
            simul_task_cancel(c->task); /* idle keep-alive: nothing to finish */
        } else if (c->sse_live) {
            /* an event stream never finishes by itself: close it now, cleanly (the handler's
             * next send or wait returns -ECANCELED; EventSource clients reconnect elsewhere) */
            c->sse_closing = true;
            simul_task_cancel(c->task);
        } else if (c->up.drain) {
            c->up.drain(c->up.arg); /* an upgraded connection (WebSocket: close 1001) */
        }
    }
    simul_scope dl;
    simul_scope_timeout(&dl, timeout);
    int rc = wait_empty(srv);
    simul_scope_end(&dl);
    if (rc == 0) {
        return 0;
    }
    for (conn *c = srv->conns; c; c = c->next) {
        simul_task_cancel(c->task);
    }
    simul_scope sh;
    simul_scope_shield(&sh);
    wait_empty(srv);
    simul_scope_end(&sh);
    return rc == -ETIMEDOUT ? 1 : rc;
}

void simul_http_server_free(simul_http_server *srv)
{
    if (!srv) {
        return;
    }
    /* Freed without a shutdown: at least the accept loops must end (they use srv). */
    for (int i = 0; i < srv->nls; i++) {
        if (srv->ls[i].task) {
            stop_listening(srv);
            break;
        }
    }
    server_release(srv);
}

/* ---- on many threads: a loop per thread, each with its own server on a SO_REUSEPORT port --- */

typedef struct http_worker {
    struct simul_http_threads *t;
    int index;
    pthread_t thread;
    simul_loop *loop;
    simul_event *stop; /* set from any thread through the loop */
    simul_http_server *srv;
    int start_rc, result;
    int64_t accepted;
} http_worker;

struct simul_http_threads {
    simul_http_app *app;
    simul_http_server_opts opts;
    http_cidr *trust;
    size_t ntrust;
    char *host;
    char port[16];
    int n;
    double drain_timeout;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    http_shared_cap cap; /* max_connections across the threads */
    int started; /* workers that listen or failed */
    bool stopped, joined;
    http_worker w[];
};

static void worker_stop_cb(void *arg)
{
    http_worker *w = arg;
    simul_event_set(w->stop);
}

/* On a worker's loop: a connection ended somewhere at the cap, room for this thread's accept. */
static void worker_room_cb(void *arg)
{
    http_worker *w = arg;
    if (w->srv) {
        simul_event_set(w->srv->room);
    }
}

static void threads_wake_all(void *arg)
{
    simul_http_threads *t = arg;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < t->n; i++) {
        if (t->w[i].loop) {
            simul_loop_call_soon_threadsafe(t->w[i].loop, worker_room_cb, &t->w[i]);
        }
    }
    pthread_mutex_unlock(&t->mu);
}

static int worker_main(void *arg)
{
    http_worker *w = arg;
    simul_http_threads *t = w->t;
    int rc = simul_event_new(&w->stop);
    if (rc == 0) {
        rc = server_start(t->app, t->host, t->port, SIMUL_LISTEN_REUSEPORT, &t->opts, t->trust,
                          t->ntrust, &w->srv);
    }
    if (rc == 0) {
        w->srv->shared = &t->cap; /* (its accept loops have not run yet: same loop, no yield) */
    }
    pthread_mutex_lock(&t->mu);
    w->start_rc = rc;
    w->loop = rc == 0 ? simul_loop_current() : NULL;
    if (rc == 0 && w->index == 0 && strcmp(t->port, "0") == 0) {
        snprintf(t->port, sizeof t->port, "%d", w->srv->port); /* the others bind it too */
    }
    t->started++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (rc < 0) {
        simul_event_free(w->stop);
        return rc;
    }
    simul_event_wait(w->stop);
    w->result = simul_http_server_shutdown(w->srv, t->drain_timeout);
    w->accepted = w->srv->accepted;
    simul_http_server_free(w->srv);
    w->srv = NULL;
    pthread_mutex_lock(&t->mu);
    w->loop = NULL; /* no more posts: the loop is about to close */
    pthread_mutex_unlock(&t->mu);
    simul_event_free(w->stop);
    return 0;
}

static void *worker_thread(void *arg)
{
    http_worker *w = arg;
    int rc = simul_run(worker_main, w);
    if (rc < 0 && w->start_rc == 0) {
        w->start_rc = rc;
    }
    return NULL;
}

int simul_http_serve_threads(simul_http_app *app, const char *host, const char *port,
                             int threads, const simul_http_server_opts *opts,
                             simul_http_threads **out)
{
    if (!app || !out || threads < 0 || threads > 1024) {
        return -EINVAL;
    }
    if (threads == 0) {
        cpu_set_t set;
        threads = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    }
    simul_http_threads *t = calloc(1, sizeof *t + (size_t)threads * sizeof(http_worker));
    if (!t) {
        return -ENOMEM;
    }
    int rc = opts_normalise(&t->opts, opts);
    if (rc == 0) {
        rc = http_trust_parse(t->opts.trusted_proxies, &t->trust, &t->ntrust);
    }
    if (rc == 0 && host && !(t->host = strdup(host))) {
        rc = -ENOMEM;
    }
    if (rc < 0) {
        free(t);
        return rc;
    }
    t->app = app;
    snprintf(t->port, sizeof t->port, "%s", port ? port : "0");
    t->n = threads;
    atomic_init(&t->cap.count, 0);
    t->cap.cap = (long)t->opts.max_connections;
    t->cap.wake_all = threads_wake_all;
    t->cap.arg = t;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    /* The workers start with the asynchronous signals blocked: they belong to the app's threads. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int made = 0;
    for (int i = 0; i < threads && rc == 0; i++) {
        http_worker *w = &t->w[i];
        w->t = t;
        w->index = i;
        rc = -pthread_create(&w->thread, NULL, worker_thread, w);
        if (rc == 0) {
            made++;
            /* thread 0 first: with port 0 it picks the port the others bind */
            pthread_mutex_lock(&t->mu);
            while (t->started < made) {
                pthread_cond_wait(&t->cv, &t->mu);
            }
            if (w->start_rc < 0) {
                rc = w->start_rc;
            }
            pthread_mutex_unlock(&t->mu);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    t->n = made;
    if (rc < 0) {
        simul_http_threads_shutdown(t, 0);
        simul_http_threads_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int simul_http_threads_port(const simul_http_threads *t)
{
    return t ? atoi(t->port) : -EINVAL;
}

int64_t simul_http_threads_accepted(const simul_http_threads *t, int index)
{
    return t && index >= 0 && index < t->n ? t->w[index].accepted : -EINVAL;
}

int simul_http_threads_shutdown(simul_http_threads *t, double timeout)
{
    if (!t || !(timeout >= 0)) {
        return -EINVAL;
    }
    pthread_mutex_lock(&t->mu);
    if (!t->stopped) {
        t->stopped = true;
        t->drain_timeout = timeout;
        for (int i = 0; i < t->n; i++) {
            if (t->w[i].loop) {
                simul_loop_call_soon_threadsafe(t->w[i].loop, worker_stop_cb, &t->w[i]);
            }
        }
    }
    pthread_mutex_unlock(&t->mu);
    int result = 0;
    pthread_mutex_lock(&t->mu);
    bool join = !t->joined;
    t->joined = true;
    pthread_mutex_unlock(&t->mu);
    if (join) {
        for (int i = 0; i < t->n; i++) {
            pthread_join(t->w[i].thread, NULL);
        }
    }
    for (int i = 0; i < t->n; i++) {
        if (t->w[i].result > result) {
            result = t->w[i].result;
        }
    }
    return result;
}

void simul_http_threads_free(simul_http_threads *t)
{
    if (!t) {
        return;
    }
    simul_http_threads_shutdown(t, 0);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->trust);
    free(t->host);
    free(t);
}

/* ---- one connection on a stream the caller has ------------------------------------------- */

typedef struct one_conn {
    simul_http_server *srv;
    simul_stream *s;
} one_conn;

static int one_conn_main(void *arg)
{
    one_conn *o = arg;
    return conn_main(o->s, o->srv);
}

int simul_http_serve_stream(simul_http_app *app, simul_stream *s, const simul_http_server_opts *opts)
{
    if (!app || !s) {
        return -EINVAL;
    }
    simul_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        return -ENOMEM;
    }
    int rc = opts_normalise(&srv->opts, opts);
    if (rc == 0) {
        rc = http_trust_parse(srv->opts.trusted_proxies, &srv->trust, &srv->ntrust);
    }
    if (rc < 0) {
        free(srv);
        return rc;
    }
    srv->own_trust = true;
    srv->app = app;
    srv->nls = 0;
    /* Its own task: a client that leaves cancels the connection's task, never the caller. Its
     * argument is on the heap: the caller may be a compact task, whose frame moves while the
     * connection's task runs. */
    one_conn *o = malloc(sizeof *o);
    if (!o) {
        server_release(srv);
        return -ENOMEM;
    }
    *o = (one_conn){srv, s};
    simul_task *t;
    simul_task_opts to = {.name = "http-conn", .stack_size = srv->opts.stack_size};
    rc = simul_task_spawn(&t, one_conn_main, o, &to);
    if (rc == 0) {
        int jr = simul_task_join(t, &rc);
        if (jr < 0) { /* the caller was cancelled: so is the connection, then it is waited for */
            simul_task_cancel(t);
            simul_scope sh;
            simul_scope_shield(&sh);
            simul_task_join(t, NULL);
            simul_scope_end(&sh);
            rc = jr;
        }
    }
    free(o);
    server_release(srv);
    return rc;
}
