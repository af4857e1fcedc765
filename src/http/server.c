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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

typedef struct conn conn;

typedef struct res_header {
    struct res_header *next;
    const char *name, *value;
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
};

struct simul_http_response {
    conn *c;
    int status;
    res_header *headers, **tail;
    char *body;
    size_t body_len;
    bool started, ended, chunked, head_only, close, sse;
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
};

struct simul_http_server {
    simul_http_app *app;
    simul_http_server_opts opts;
    simul_server *server;
    conn *conns;
    size_t nconns;
    bool draining;
};

/* ---- small helpers ----------------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* The Date field's value, formatted once a second. */
static const char *http_date(void)
{
    static _Thread_local char text[40];
    static _Thread_local time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return text;
}

static int out_put(conn *c, const char *s, size_t n)
{
    if (c->out_len + n > c->out_cap) {
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
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    return 0;
}

static int out_puts(conn *c, const char *s)
{
    return out_put(c, s, strlen(s));
}

static int out_printf(conn *c, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        return -EINVAL;
    }
    return out_put(c, tmp, (size_t)n);
}

static bool has_ctl(const char *s)
{
    for (; *s; s++) {
        if (*s == '\r' || *s == '\n') {
            return true;
        }
    }
    return false;
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
static void watcher_start(conn *c)
{
    if (c->watcher || !c->in_request || c->peer_gone) {
        return;
    }
    if (c->start == c->end) {
        c->start = c->end = 0; /* room for what comes (a pending piece lies before start) */
    }
    simul_task_opts o = {.name = "http-watch", .stack_size = 16384};
    if (simul_task_spawn(&c->watcher, watcher_main, c, &o) < 0) {
        c->watcher = NULL; /* no watcher: a departure shows at the handler's writes only */
    }
}

static void watcher_stop(conn *c)
{
    if (!c->watcher) {
        return;
    }
    simul_task_cancel(c->watcher);
    if (!c->watcher_running) {
        /* It has not run yet (the handler did not suspend): it will end at its first line
         * without touching c, so no need to switch to it now. */
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

int simul_http_response_header(simul_http_response *res, const char *name, const char *value)
{
    if (!res || !name || !value || !*name || has_ctl(name) || has_ctl(value)) {
        return -EINVAL;
    }
    if (res->started) {
        return -EALREADY;
    }
    if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
        strcasecmp(name, "connection") == 0) {
        return -EINVAL;
    }
    for (const char *p = name; *p; p++) {
        if (*p == ':' || *p == ' ' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) {
            return -EINVAL;
        }
    }
    http_arena *a = &res->c->arena;
    res_header *h = arena_alloc(a, sizeof *h);
    if (!h || !(h->name = arena_strndup(a, name, strlen(name))) ||
        !(h->value = arena_strndup(a, value, strlen(value)))) {
        return -ENOMEM;
    }
    h->next = NULL;
    *res->tail = h;
    res->tail = &h->next;
    return 0;
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
        rc = simul_http_response_header(res, "Content-Type", "text/plain; charset=utf-8");
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
        rc = simul_http_response_header(res, "Content-Type", "application/json");
    }
    if (rc) {
        return rc;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
        return -ENOMEM;
    }
    rc = simul_http_response_body(res, text, strlen(text));
    free(text);
    return rc;
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
    if ((opts->path && (has_ctl(opts->path) || strchr(opts->path, ';'))) ||
        (opts->domain && (has_ctl(opts->domain) || strchr(opts->domain, ';'))) ||
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

/* Builds the head into c->out. length: the Content-Length, or -1 for a streamed body. */
static int build_head(simul_http_response *res, simul_http_request *req, long long length)
{
    conn *c = res->c;
    if (c->srv->draining) {
        res->close = true; /* a shutdown began: this is the connection's last answer */
    }
    c->out_len = 0;
    int rc = out_printf(c, "HTTP/1.%d %d %s\r\nDate: %s\r\n", req->minor ? 1 : 0, res->status,
                        reason(res->status), http_date());
    for (res_header *h = res->headers; h && rc == 0; h = h->next) {
        rc = out_puts(c, h->name);
        rc = rc ? rc : out_put(c, ": ", 2);
        rc = rc ? rc : out_puts(c, h->value);
        rc = rc ? rc : out_put(c, "\r\n", 2);
    }
    bool no_body = res->status < 200 || res->status == 204 || res->status == 304;
    if (rc == 0 && length >= 0 && !no_body) {
        rc = out_printf(c, "Content-Length: %lld\r\n", length);
    } else if (rc == 0 && length < 0 && !no_body) {
        if (req->minor >= 1) {
            res->chunked = true;
            rc = out_puts(c, "Transfer-Encoding: chunked\r\n");
        } else {
            res->close = true; /* HTTP/1.0: the body ends with the connection */
        }
    }
    if (rc == 0) {
        if (res->close) {
            rc = out_puts(c, "Connection: close\r\n");
        } else if (req->minor == 0) {
            rc = out_puts(c, "Connection: keep-alive\r\n");
        }
    }
    return rc ? rc : out_put(c, "\r\n", 2);
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
        rc = simul_stream_write(c->s, c->out, c->out_len);
    }
    if (rc == 0 && len > 0 && !res->head_only) {
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

int simul_http_sse_send(simul_http_response *res, const char *event, const char *id,
                        long retry_ms, const char *data)
{
    if (!res || (event && has_ctl(event)) || (id && has_ctl(id))) {
        return -EINVAL;
    }
    if (!res->started) {
        int rc = simul_http_sse_start(res);
        if (rc < 0) {
            return rc;
        }
    }
    conn *c = res->c;
    /* Built in the arena: an event is written as one chunk. */
    size_t dlen = data ? strlen(data) : 0, lines = 1;
    for (size_t i = 0; i < dlen; i++) {
        lines += data[i] == '\n';
    }
    size_t cap = dlen + lines * 7 + (event ? strlen(event) : 0) + (id ? strlen(id) : 0) + 64;
    char *ev = arena_alloc(&c->arena, cap);
    if (!ev) {
        return -ENOMEM;
    }
    size_t n = 0;
    if (event) {
        n += (size_t)snprintf(ev + n, cap - n, "event: %s\n", event);
    }
    if (id) {
        n += (size_t)snprintf(ev + n, cap - n, "id: %s\n", id);
    }
    if (retry_ms >= 0) {
        n += (size_t)snprintf(ev + n, cap - n, "retry: %ld\n", retry_ms);
    }
    const char *p = data ? data : "";
    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len && p[len - 1] == '\r') {
            len--;
        }
        memcpy(ev + n, "data: ", 6);
        n += 6;
        memcpy(ev + n, p, len);
        n += len;
        ev[n++] = '\n';
        if (!nl) {
            break;
        }
        p = nl + 1;
    }
    ev[n++] = '\n';
    return simul_http_response_write(res, ev, n);
}

int simul_http_sse_comment(simul_http_response *res, const char *text)
{
    if (!res || !text || has_ctl(text)) {
        return -EINVAL;
    }
    if (!res->started) {
        int rc = simul_http_sse_start(res);
        if (rc < 0) {
            return rc;
        }
    }
    size_t len = strlen(text);
    char *line = arena_alloc(&res->c->arena, len + 4);
    if (!line) {
        return -ENOMEM;
    }
    memcpy(line, ": ", 2);
    memcpy(line + 2, text, len);
    memcpy(line + 2 + len, "\n\n", 2);
    return simul_http_response_write(res, line, len + 4);
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
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.%d %d %s\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n%s\n",
                     minor, status, reason(status), http_date(), strlen(reason(status)) + 1,
                     allow ? "Allow: " : "", allow ? allow : "", allow ? "\r\n" : "",
                     reason(status));
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
    struct iovec iov[2] = {{res->c->out, res->c->out_len}, {res->body, res->body_len}};
    return simul_stream_writev(res->c->s, iov, 2);
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

    int hrc = 0;
    bool handled = false;
    if (srv->opts.health && (strcmp(req->path, "/healthz") == 0 ||
                             strcmp(req->path, "/readyz") == 0) &&
        (strcmp(req->method, "GET") == 0 || res->head_only)) {
        bool ready = req->path[1] == 'h' || !srv->draining;
        simul_http_response_text(res, ready ? 200 : 503, ready ? "ok\n" : "draining\n");
        handled = true;
    }
    http_match m;
    if (!handled) {
        http_route_find(srv->app, req->method, req->path, &c->arena, &m);
        if (m.bad_escape) {
            send_error(c, req->minor, 400, NULL);
            c->in_request = false;
            return false;
        }
        if (m.route) {
            req->params = m.params;
            req->nparams = m.nparams;
            if (req->body_done) {
                watcher_start(c);
            }
            hrc = m.route->handler(req, res, m.route->arg);
            handled = true;
        } else if (strcmp(req->method, "OPTIONS") == 0 &&
                   (m.path_matched || strcmp(req->path, "*") == 0)) {
            simul_http_response_status(res, 204);
            simul_http_response_header(res, "Allow", m.path_matched ? m.allow : "GET, HEAD, OPTIONS");
            handled = true;
        } else if (m.path_matched) {
            simul_http_response_text(res, 405, "Method Not Allowed\n");
            simul_http_response_header(res, "Allow", m.allow);
            handled = true;
        } else {
            simul_http_response_text(res, 404, "Not Found\n");
            handled = true;
        }
    }
    watcher_stop(c);
    c->in_request = false;
    if (c->peer_gone || simul_task_cancel_requested(c->task)) {
        return false; /* the client left, or the shutdown cancelled us */
    }
    if (req->body_error) {
        /* A broken or oversized body: the handler saw the error; answer for it if we can. */
        if (!res->started) {
            send_error(c, req->minor, req->body_status ? req->body_status : 400, NULL);
        }
        return false;
    }
    if (hrc < 0) {
        if (!res->started) {
            send_error(c, req->minor, 500, NULL);
        }
        return false;
    }
    if (!res->ended && res->started) {
        if (simul_http_response_end(res) < 0) {
            return false;
        }
    } else if (!res->started) {
        /* The body has to be skipped before the next request: if that fails, say close. */
        if (!res->close && !req->body_done && req->expect && !req->continue_sent) {
            res->close = true;
        }
        if (send_whole(res, req) < 0) {
            return false;
        }
    }
    if (res->close) {
        return false;
    }
    if (body_skip(req) < 0) {
        return false;
    }
    return conn_drain(c) == 0;
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
    if (c->peer_gone || (simul_task_cancel_requested(c->task) && !c->drained)) {
        simul_stream_abort(s);
    } else {
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
    arena_free(&c->arena);
    free(c->out);
    free(c->buf);
    free(c->hdrs);
    free(c);
    return 0;
}

/* ---- serving ----------------------------------------------------------------------------- */

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
        !(o->keepalive_timeout >= 0)) {
        return -EINVAL;
    }
    if (o->header_timeout == 0) o->header_timeout = 10;
    if (o->body_timeout == 0) o->body_timeout = 30;
    if (o->keepalive_timeout == 0) o->keepalive_timeout = 75;
    if (o->max_requests == 0) o->max_requests = 1000;
    return 0;
}

int simul_http_serve(simul_http_app *app, const char *host, const char *port,
                     const simul_http_server_opts *opts, simul_http_server **out)
{
    if (!app || !out) {
        return -EINVAL;
    }
    simul_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        return -ENOMEM;
    }
    int rc = opts_normalise(&srv->opts, opts);
    if (rc < 0) {
        free(srv);
        return rc;
    }
    srv->app = app;
    simul_stream_server_opts so = {.host = host, .port = port,
                                   .stack_size = srv->opts.stack_size,
                                   .socks = srv->opts.socks, .n_socks = srv->opts.n_socks};
    rc = simul_start_server_opts(&so, conn_main, srv, &srv->server);
    if (rc < 0) {
        free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

/* ---- on many threads: a server state per thread, made by its thread_init ----------------- */

static _Thread_local simul_http_server *thread_srv;

static int thread_init(int index, void *arg)
{
    (void)index;
    http_shared *sh = arg;
    simul_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        return -ENOMEM;
    }
    srv->app = sh->app;
    srv->opts = sh->opts;
    thread_srv = srv;
    return 0;
}

static void thread_fini(int index, void *arg)
{
    (void)index;
    (void)arg;
    free(thread_srv); /* its connections have ended */
    thread_srv = NULL;
}

static int conn_main_threaded(simul_stream *s, void *arg)
{
    (void)arg;
    return conn_main(s, thread_srv);
}

int simul_http_serve_threads(simul_http_app *app, const char *host, const char *port,
                             int threads, const simul_http_server_opts *opts,
                             simul_threaded_server **out)
{
    if (!app || !out) {
        return -EINVAL;
    }
    http_shared *sh = calloc(1, sizeof *sh);
    if (!sh) {
        return -ENOMEM;
    }
    int rc = opts_normalise(&sh->opts, opts);
    if (rc < 0) {
        free(sh);
        return rc;
    }
    sh->app = app;
    sh->next = app->shared;
    app->shared = sh; /* freed with the app, which outlives the threads */
    simul_threaded_server_opts to = {.host = host, .port = port, .threads = threads,
                                     .handler = conn_main_threaded, .arg = sh,
                                     .stack_size = sh->opts.stack_size,
                                     .thread_init = thread_init, .thread_fini = thread_fini};
    return simul_serve_threads(&to, out);
}

int simul_http_server_port(const simul_http_server *srv)
{
    return srv ? simul_server_port(srv->server) : -EINVAL;
}

size_t simul_http_server_connections(const simul_http_server *srv)
{
    return srv ? srv->nconns : 0;
}

int simul_http_server_shutdown(simul_http_server *srv, double timeout)
{
    if (!srv || !(timeout >= 0)) {
        return -EINVAL;
    }
    srv->draining = true;
    simul_server_close(srv->server);
    for (conn *c = srv->conns; c; c = c->next) {
        if (c->idle) {
            c->drained = true;
            simul_task_cancel(c->task); /* idle keep-alive: nothing to finish */
        }
    }
    simul_scope dl;
    simul_scope_timeout(&dl, timeout);
    int rc = simul_server_wait_closed(srv->server);
    simul_scope_end(&dl);
    if (rc == 0) {
        return 0;
    }
    for (conn *c = srv->conns; c; c = c->next) {
        simul_task_cancel(c->task);
    }
    simul_scope sh;
    simul_scope_shield(&sh);
    simul_server_wait_closed(srv->server);
    simul_scope_end(&sh);
    return rc == -ETIMEDOUT ? 1 : rc;
}

void simul_http_server_free(simul_http_server *srv)
{
    if (!srv) {
        return;
    }
    simul_server_free(srv->server);
    free(srv);
}
