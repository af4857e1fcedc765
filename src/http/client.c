/* client.c — the HTTP/1.1 client of libsimul-http: sessions, the per-origin connection pool,
 * requests and their responses (redirects, decoding, streaming). The idea: a request runs wholly
 * in the caller's task on a connection it holds alone until the response was read to its end;
 * only then does the connection go back to the pool. Any failure, timeout or cancellation just
 * closes what the task held, so no caller can ever be handed another's half-read response. */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include <simul.h>
#include <simul/http.h>
#ifdef SIMUL_HTTP_HAVE_TLS
#include <simul/tls.h>
#endif

#include "client_internal.h"

#define READ_CHUNK (16u * 1024u)

/* ---- sessions and the pool ---------------------------------------------------------------- */

typedef struct http_host http_host;

typedef struct http_conn {
    struct http_conn *next; /* in its host's idle list */
    http_host *host;
    simul_stream *s;
    char *buf; /* bytes read, [off, len) not yet taken by the parser */
    size_t off, len, cap;
    int64_t idle_since;
    bool reused; /* served a request before this one */
} http_conn;

struct http_host {
    http_host *next;
    char *key; /* "https://host:port" */
    http_conn *idle; /* newest first */
    uint32_t nidle, nconns;
};

struct simul_http_session {
    simul_http_session_opts o; /* normalised; strings owned */
    char *proxy_host, *proxy_port;
    char *proxy_auth; /* "Basic <base64(user:password)>" from the proxy URL, or NULL */
#ifdef SIMUL_HTTP_HAVE_TLS
    simul_tls_config *tls;
    bool own_tls;
#endif
    http_host *hosts;
    uint32_t nconns, nidle;
    size_t nresponses;
    simul_condition *freed; /* a connection came back or went away */
    int64_t next_sweep;     /* no idle connection can expire before this (simul_now_ns) */
    http_jar *jar;
};

struct simul_http_client_response {
    simul_http_session *s;
    http_conn *c; /* while the body is being read */
    simul_http_parser p;
    simul_http_header *fields;
    int status, minor;
    char *reason;
    char **names, **values; /* in one block with their strings: names */
    size_t nh;
    char *url;
    int redirects;
    bool stream;
    bool keep_alive;
    bool ended; /* the message was read to its end */
    bool any_byte; /* a byte of the response arrived */
    int err;       /* sticky */
    int64_t deadline; /* the whole request's, absolute (INT64_MAX: none) */
    /* The body piece the parser handed out and the caller has not taken yet: c->buf[poff..+plen) */
    size_t poff, plen;
    /* Decoding (gzip, deflate). */
    int enc; /* 0 none, 1 gzip, 2 deflate */
    z_stream z;
    bool z_init, z_end, z_sniffed;
    /* The whole body. */
    char *body;
    size_t body_len;
    /* The caller's reason buffer, during the calls that take one. */
    char *why;
    size_t whylen;
};

static void say(simul_http_client_response *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(simul_http_client_response *r, const char *fmt, ...)
{
    if (!r->why || !r->whylen || r->why[0])
        return; /* the first reason is the cause; what follows is its consequence */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, r->whylen, fmt, ap);
    va_end(ap);
}

static int64_t wall_now(void)
{
    return (int64_t)time(NULL);
}

/* "Basic " + base64(userinfo) (RFC 7617), malloc'd. */
static char *basic_auth(const char *userinfo)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(userinfo);
    char *out = malloc(6 + (n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    char *p = out + sprintf(out, "Basic ");
    const unsigned char *u = (const unsigned char *)userinfo;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)u[i] << 16 | (i + 1 < n ? (unsigned)u[i + 1] << 8 : 0) |
                     (i + 2 < n ? u[i + 2] : 0);
        *p++ = b64[v >> 18 & 63];
        *p++ = b64[v >> 12 & 63];
        *p++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? b64[v & 63] : '=';
    }
    *p = '\0';
    return out;
}

int simul_http_session_new(const simul_http_session_opts *opts, simul_http_session **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    simul_http_session_opts o = opts ? *opts : (simul_http_session_opts){0};
    if (o.idle_timeout < 0 || o.connect_timeout < 0 || o.request_timeout < 0 ||
        o.read_timeout < 0 || isnan(o.idle_timeout) || isnan(o.connect_timeout) ||
        isnan(o.request_timeout) || isnan(o.read_timeout))
        return -EINVAL;
    if (!o.max_total)
        o.max_total = 100;
    if (!o.max_idle_per_host)
        o.max_idle_per_host = 32;
    if (o.idle_timeout == 0)
        o.idle_timeout = 90;
    if (o.connect_timeout == 0)
        o.connect_timeout = 30;
    if (o.request_timeout == 0)
        o.request_timeout = 300;
    if (o.read_timeout == 0)
        o.read_timeout = 60;
    if (o.max_redirects == 0)
        o.max_redirects = 10;
    if (!o.max_body)
        o.max_body = 64u << 20;
    {
        simul_http_header one;
        simul_http_parser check;
        if (simul_http_parser_init(&check, SIMUL_HTTP_RESPONSE, &o.limits, &one, 1) < 0)
            return -EINVAL; /* a limit over 1 GiB */
    }
    simul_http_session *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int rc = -ENOMEM;
    s->o = o;
    s->o.tls = NULL;
    s->o.ca_file = NULL;
    s->o.proxy = NULL;
    s->o.user_agent = strdup(o.user_agent ? o.user_agent : "simul-http");
    if (!s->o.user_agent)
        goto fail;
    if (strpbrk(s->o.user_agent, "\r\n")) {
        rc = -EINVAL;
        goto fail;
    }
    if (o.proxy) {
        /* "http://[user:password@]host:port": the credentials become Proxy-Authorization. */
        char *purl = strdup(o.proxy);
        if (!purl)
            goto fail;
        char *auth = strstr(purl, "://");
        char *at = auth ? strchr(auth + 3, '@') : NULL;
        char *slash = auth ? strchr(auth + 3, '/') : NULL;
        if (at && (!slash || at < slash)) {
            *at = '\0';
            s->proxy_auth = basic_auth(auth + 3);
            memmove(auth + 3, at + 1, strlen(at + 1) + 1);
            if (!s->proxy_auth) {
                free(purl);
                goto fail;
            }
        }
        http_url pu;
        rc = http_url_parse(purl, &pu, NULL);
        free(purl);
        if (rc < 0)
            goto fail;
        rc = -EINVAL;
        if (pu.tls || strcmp(pu.target, "/") != 0) { /* an http:// proxy, no path */
            http_url_free(&pu);
            goto fail;
        }
        s->proxy_host = strdup(pu.host);
        s->proxy_port = strdup(pu.port);
        http_url_free(&pu);
        rc = -ENOMEM;
        if (!s->proxy_host || !s->proxy_port)
            goto fail;
    }
    if (o.cookies && !(s->jar = http_jar_new()))
        goto fail;
    if ((rc = simul_condition_new(&s->freed, NULL)) < 0)
        goto fail;
#ifdef SIMUL_HTTP_HAVE_TLS
    if (o.tls) {
        s->tls = o.tls;
    } else {
        if ((rc = simul_tls_config_new_client(&s->tls)) < 0)
            goto fail;
        s->own_tls = true;
        if (o.ca_file && (rc = simul_tls_config_set_ca(s->tls, o.ca_file, NULL, NULL, 0)) < 0)
            goto fail;
        if (o.insecure_skip_verify && (rc = simul_tls_config_insecure_skip_verify(s->tls)) < 0)
            goto fail;
        static const char *const alpn[] = {"http/1.1"};
        if ((rc = simul_tls_config_set_alpn(s->tls, alpn, 1)) < 0)
            goto fail;
    }
#endif
    *out = s;
    return 0;
fail:
    simul_condition_free(s->freed);
    http_jar_free(s->jar);
#ifdef SIMUL_HTTP_HAVE_TLS
    if (s->own_tls)
        simul_tls_config_free(s->tls);
#endif
    free((char *)s->o.user_agent);
    free(s->proxy_host);
    free(s->proxy_port);
    free(s->proxy_auth);
    free(s);
    return rc;
}

/* Closes a connection's socket and frees it: gracefully (a TLS close_notify) when it is
 * healthy, at once (abort) when it is not. Shielded: clean-up must finish even in a cancelled
 * task. */
static void conn_close(simul_http_session *s, http_conn *c, bool healthy)
{
    simul_scope sh;
    bool shielded = simul_scope_shield(&sh) == 0;
    if (!healthy)
        simul_stream_abort(c->s);
    simul_stream_close(c->s);
    if (shielded)
        simul_scope_end(&sh);
    c->host->nconns--;
    s->nconns--;
    free(c->buf);
    free(c);
}

/* Wakes the tasks waiting for a connection slot (no-op when none wait). */
static void notify_freed(simul_http_session *s)
{
    simul_scope sh;
    bool shielded = simul_scope_shield(&sh) == 0;
    if (simul_condition_acquire(s->freed) == 0) {
        simul_condition_notify_all(s->freed);
        simul_condition_release(s->freed);
    }
    if (shielded)
        simul_scope_end(&sh);
}

/* Closes idle connections older than idle_timeout (all hosts). */
static void sweep_idle(simul_http_session *s)
{
    /* At most a few sweeps per idle_timeout: an expired connection lives up to a quarter of the
     * timeout longer, and a request does not walk the idle lists every time. */
    int64_t now = simul_now_ns(), span = (int64_t)(s->o.idle_timeout * 1e9);
    if (now < s->next_sweep)
        return;
    s->next_sweep = now + span / 4;
    int64_t limit = now - span;
    bool any = false;
    for (http_host *h = s->hosts; h; h = h->next) {
        for (http_conn **pp = &h->idle; *pp;) {
            http_conn *c = *pp;
            if (c->idle_since < limit) {
                *pp = c->next;
                h->nidle--;
                s->nidle--;
                conn_close(s, c, true);
                any = true;
            } else {
                pp = &c->next;
            }
        }
    }
    if (any)
        notify_freed(s);
}

int simul_http_session_close(simul_http_session *s)
{
    if (!s)
        return 0;
    if (s->nresponses)
        return -EBUSY;
    for (http_host *h = s->hosts, *n; h; h = n) {
        n = h->next;
        while (h->idle) {
            http_conn *c = h->idle;
            h->idle = c->next;
            conn_close(s, c, true);
        }
        free(h->key);
        free(h);
    }
    simul_condition_free(s->freed);
    http_jar_free(s->jar);
#ifdef SIMUL_HTTP_HAVE_TLS
    if (s->own_tls)
        simul_tls_config_free(s->tls);
#endif
    free((char *)s->o.user_agent);
    free(s->proxy_host);
    free(s->proxy_port);
    free(s->proxy_auth);
    free(s);
    return 0;
}

size_t simul_http_session_connections(const simul_http_session *s)
{
    return s ? s->nconns : 0;
}

size_t simul_http_session_idle(const simul_http_session *s)
{
    return s ? s->nidle : 0;
}

const char *simul_http_session_cookie(simul_http_session *s, const char *url, const char *name,
                                      char *buf, size_t len)
{
    if (!s || !s->jar || !url || !name || !buf || !len)
        return NULL;
    http_url u;
    if (http_url_parse(url, &u, NULL) < 0)
        return NULL;
    const char *v = http_jar_get(s->jar, &u, name, wall_now());
    http_url_free(&u);
    if (!v)
        return NULL;
    snprintf(buf, len, "%s", v);
    return buf;
}

http_jar *http_session_jar(simul_http_session *s)
{
    return s->jar;
}

const char *http_session_user_agent(const simul_http_session *s)
{
    return s->o.user_agent;
}

static http_host *host_get(simul_http_session *s, const http_url *u)
{
    char *key = http_url_origin(u, false);
    if (!key)
        return NULL;
    for (http_host *h = s->hosts; h; h = h->next)
        if (strcmp(h->key, key) == 0) {
            free(key);
            return h;
        }
    http_host *h = calloc(1, sizeof *h);
    if (!h) {
        free(key);
        return NULL;
    }
    h->key = key;
    h->next = s->hosts;
    s->hosts = h;
    return h;
}

/* Whether an idle connection still looks usable: nothing unread, and the server has not closed
 * it (a peek finds EOF or a reset). Bytes waiting on a plain connection are a server talking
 * out of turn (a 408 before its close): not usable either. Under TLS a waiting record may be a
 * session ticket, so only EOF counts there. The peek is a syscall, so a connection back in the
 * pool for less than PEEK_AFTER_NS is taken without it: under load connections come back and
 * go again within microseconds, and a server that closed in that window is caught by the
 * retry (idempotent requests) like any close that slips past a peek. */
#define PEEK_AFTER_NS 50000000 /* 50 ms */
static bool conn_usable(http_conn *c)
{
    if (c->off != c->len)
        return false;
    if (simul_now_ns() - c->idle_since < PEEK_AFTER_NS)
        return true;
    bool tls = false;
#ifdef SIMUL_HTTP_HAVE_TLS
    tls = simul_tls_is_tls(c->s);
#endif
    if (!tls && simul_stream_read_buffer_size(c->s) > 0)
        return false;
    int fd = simul_stream_fd(c->s);
    if (fd < 0)
        return false;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return false;
    if (n > 0)
        return tls;
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

/* ---- connecting ----------------------------------------------------------------------------- */

/* Reads more bytes into c->buf (after dropping what the parser took): the stall timeout applies
 * to this one read. Returns the count, 0 at EOF, or an error (with the reason said). */
static long conn_read(simul_http_client_response *r, http_conn *c, double stall)
{
    if (c->off == c->len) {
        c->off = c->len = 0;
    } else if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->cap - c->len < READ_CHUNK / 4) {
        size_t ncap = c->cap ? c->cap * 2 : READ_CHUNK;
        char *nb = realloc(c->buf, ncap);
        if (!nb)
            return -ENOMEM;
        c->buf = nb;
        c->cap = ncap;
    }
    simul_scope sc;
    simul_scope_timeout(&sc, stall);
    long n = simul_stream_read(c->s, c->buf + c->len, c->cap - c->len);
    int expired = simul_scope_end(&sc);
    if (n > 0) {
        c->len += (size_t)n;
        return n;
    }
    if (n == -ETIMEDOUT) {
        if (r->deadline != INT64_MAX && simul_now_ns() >= r->deadline)
            say(r, "request timed out");
        else if (expired == 1)
            say(r, "read stalled: no data for %g s", stall);
        else
            say(r, "timed out");
    } else if (n == -ECANCELED) {
        say(r, "cancelled");
    } else if (n < 0) {
#ifdef SIMUL_HTTP_HAVE_TLS
        const char *tr = simul_tls_last_error(c->s);
        if (tr && *tr) {
            say(r, "TLS: %s", tr);
            return n;
        }
#endif
        say(r, "read failed: %s", strerror((int)-n));
    }
    return n;
}

static int conn_write(simul_http_client_response *r, http_conn *c, const struct iovec *iov,
                      int n)
{
    int rc = simul_stream_writev(c->s, iov, n);
    if (rc >= 0)
        rc = simul_stream_drain(c->s);
    if (rc < 0) {
        if (rc == -ETIMEDOUT)
            say(r, "request timed out while sending");
        else if (rc == -ECANCELED)
            say(r, "cancelled");
        else
            say(r, "send failed: %s", strerror(-rc));
    }
    return rc;
}

/* Through the proxy: CONNECT host:port, and a 2xx opens the tunnel. */
static int proxy_connect(simul_http_client_response *r, http_conn *c, const http_url *u)
{
    char head[1200];
    const char *lb = u->ipv6 ? "[" : "", *rb = u->ipv6 ? "]" : "";
    const char *pa = r->s->proxy_auth;
    int n = snprintf(head, sizeof head, "CONNECT %s%s%s:%s HTTP/1.1\r\nHost: %s%s%s:%s\r\n%s%s%s\r\n",
                     lb, u->host, rb, u->port, lb, u->host, rb, u->port,
                     pa ? "Proxy-Authorization: " : "", pa ? pa : "", pa ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return -EINVAL;
    struct iovec iov = {head, (size_t)n};
    int rc = conn_write(r, c, &iov, 1);
    if (rc < 0)
        return rc;
    simul_http_header f[32];
    simul_http_parser p;
    simul_http_parser_init(&p, SIMUL_HTTP_RESPONSE, NULL, f, 32);
    simul_http_parser_response_to(&p, "CONNECT");
    for (;;) {
        size_t used;
        int ev = simul_http_parser_feed(&p, c->buf + c->off, c->len - c->off, &used);
        if (ev < 0) {
            say(r, "proxy: %s", simul_http_error_reason(p.error));
            return ev;
        }
        if (ev == SIMUL_HTTP_HEAD) {
            int st = p.head.status;
            c->off += used;
            if (st / 100 == 2 && p.head.upgrade) {
                if (c->off != c->len) {
                    say(r, "proxy: bytes after its CONNECT answer");
                    return -EPROTO;
                }
                return 0;
            }
            if (st < 200)
                continue; /* an interim answer */
            say(r, "proxy refused CONNECT to %s:%s: %d %.*s", u->host, u->port, st,
                (int)p.head.reason.len, p.head.base + p.head.reason.off);
            return -ECONNREFUSED;
        }
        if (ev == SIMUL_HTTP_END)
            continue;
        long k = conn_read(r, c, r->s->o.read_timeout);
        if (k == 0) {
            say(r, "proxy closed the connection");
            return -ECONNRESET;
        }
        if (k < 0)
            return (int)k;
    }
}

/* A new connection to u's origin (or through the proxy), TLS for https, within the connect
 * timeout. */
static int conn_open(simul_http_client_response *r, const http_url *u, http_host *h,
                     http_conn **out)
{
    simul_http_session *s = r->s;
    http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->host = h;
    const char *chost = s->proxy_host ? s->proxy_host : u->host;
    const char *cport = s->proxy_host ? s->proxy_port : u->port;
    /* The slot is taken before the first suspension, so that tasks connecting at the same time
     * count against the limits. */
    h->nconns++;
    s->nconns++;
    simul_scope sc;
    simul_scope_timeout(&sc, s->o.connect_timeout);
    int rc;
    int fd = simul_tcp_connect(chost, cport);
    if (fd < 0) {
        h->nconns--;
        s->nconns--;
        notify_freed(s);
        rc = fd;
        int expired = simul_scope_end(&sc);
        if (rc == -ETIMEDOUT && expired == 1)
            say(r, "connect to %s:%s timed out after %g s", chost, cport, s->o.connect_timeout);
        else if (rc == -ETIMEDOUT)
            say(r, "request timed out while connecting");
        else if (rc == -ECANCELED)
            say(r, "cancelled");
        else if (simul_is_eai(rc))
            say(r, "cannot resolve %s: %s", chost, simul_strerror(rc));
        else
            say(r, "connect to %s:%s failed: %s", chost, cport, strerror(-rc));
        free(c);
        return rc;
    }
    if ((rc = simul_stream_from_fd(fd, &c->s)) < 0) {
        simul_scope_end(&sc);
        close(fd);
        free(c);
        h->nconns--;
        s->nconns--;
        notify_freed(s);
        say(r, "cannot make a stream: %s", strerror(-rc));
        return rc;
    }
    if (s->proxy_host && (rc = proxy_connect(r, c, u)) < 0)
        goto fail;
    if (u->tls) {
#ifdef SIMUL_HTTP_HAVE_TLS
        rc = simul_tls_start_tls(c->s, s->tls, u->host);
        if (rc < 0) {
            const char *tr = simul_tls_last_error(c->s);
            if (rc == -ETIMEDOUT || rc == -ECANCELED) {
                /* (said below) */
            } else if (tr && *tr) {
                bool unknown_ca = strstr(tr, "local issuer") || strstr(tr, "self-signed") ||
                                  strstr(tr, "self signed");
                say(r, "TLS handshake with %s:%s failed: %s%s", u->host, u->port, tr,
                    unknown_ca ? " (certificate from an unknown CA)" : "");
            } else {
                say(r, "TLS handshake with %s:%s failed: %s", u->host, u->port, strerror(-rc));
            }
            goto fail;
        }
#else
        say(r, "https needs libsimul-tls, which this build lacks");
        rc = -EPROTONOSUPPORT;
        goto fail;
#endif
    }
    simul_scope_end(&sc);
    *out = c;
    return 0;
fail:;
    int expired = simul_scope_end(&sc);
    if (rc == -ETIMEDOUT)
        say(r, expired == 1 ? "connect (TLS handshake) timed out" : "request timed out");
    else if (rc == -ECANCELED)
        say(r, "cancelled");
    conn_close(s, c, false);
    notify_freed(s);
    return rc;
}

static bool slot_free(void *arg)
{
    void **a = arg;
    simul_http_session *s = a[0];
    http_host *h = a[1];
    if (h->idle)
        return true;
    if (s->nconns < s->o.max_total && (!s->o.max_per_host || h->nconns < s->o.max_per_host))
        return true;
    return s->nconns >= s->o.max_total && s->nidle > 0; /* an idle one elsewhere can go */
}

/* A connection for u: an idle one of its origin, or a new one within the limits (closing an
 * idle connection of another origin if the total is reached), or wait for one to come back. */
static int conn_acquire(simul_http_client_response *r, const http_url *u, http_conn **out)
{
    simul_http_session *s = r->s;
    http_host *h = host_get(s, u);
    if (!h)
        return -ENOMEM;
    sweep_idle(s);
    for (;;) {
        while (h->idle) {
            http_conn *c = h->idle;
            h->idle = c->next;
            h->nidle--;
            s->nidle--;
            c->next = NULL;
            bool fresh = simul_now_ns() - c->idle_since <= (int64_t)(s->o.idle_timeout * 1e9);
            if (fresh && conn_usable(c)) {
                c->reused = true;
                *out = c;
                return 0;
            }
            conn_close(s, c, false);
        }
        if (!s->o.max_per_host || h->nconns < s->o.max_per_host) {
            if (s->nconns < s->o.max_total)
                return conn_open(r, u, h, out);
            /* The total is reached: an idle connection of another origin makes room (the
             * oldest one of the first host that has one). */
            for (http_host *o = s->hosts; o; o = o->next) {
                if (!o->idle)
                    continue;
                http_conn **pp = &o->idle;
                while ((*pp)->next)
                    pp = &(*pp)->next;
                http_conn *v = *pp;
                *pp = NULL;
                o->nidle--;
                s->nidle--;
                conn_close(s, v, true);
                break;
            }
            if (s->nconns < s->o.max_total)
                return conn_open(r, u, h, out);
        }
        int rc = simul_condition_acquire(s->freed);
        if (rc == 0) {
            void *arg[2] = {s, h};
            rc = simul_condition_wait_for(s->freed, slot_free, arg);
            simul_condition_release(s->freed);
        }
        if (rc < 0) {
            say(r, rc == -ETIMEDOUT ? "request timed out waiting for a connection"
                                    : "cancelled while waiting for a connection");
            return rc;
        }
    }
}

/* The response is done with its connection: back to the pool if the message ended cleanly, both
 * sides keep it alive and nothing else arrived; else closed. */
static void conn_release(simul_http_client_response *r)
{
    http_conn *c = r->c;
    if (!c)
        return;
    r->c = NULL;
    simul_http_session *s = r->s;
    http_host *h = c->host;
    bool keep = r->ended && !r->err && r->keep_alive && c->off == c->len &&
                h->nidle < s->o.max_idle_per_host;
    if (keep) {
        c->idle_since = simul_now_ns();
        c->next = h->idle;
        h->idle = c;
        h->nidle++;
        s->nidle++;
    } else {
        conn_close(s, c, r->ended && !r->err);
    }
    notify_freed(s);
}

/* ---- the response ------------------------------------------------------------------------- */

static void response_free(simul_http_client_response *r)
{
    if (r->z_init)
        inflateEnd(&r->z);
    free(r->names);
    free(r->url);
    free(r->body);
    free(r->fields);
    r->s->nresponses--;
    free(r);
}

void simul_http_client_response_close(simul_http_client_response *r)
{
    if (!r)
        return;
    conn_release(r);
    response_free(r);
}

/* The head as the parser reported it, copied out (the read buffer moves): the field pointers
 * and every string in one allocation. */
static int keep_head(simul_http_client_response *r)
{
    const simul_http_head *h = &r->p.head;
    free(r->names);
    r->names = r->values = NULL;
    r->reason = NULL;
    r->nh = 0;
    r->status = h->status;
    r->minor = h->version_minor;
    r->keep_alive = h->keep_alive;
    size_t n = h->nheaders, bytes = h->reason.len + 1;
    for (size_t i = 0; i < n; i++)
        bytes += h->headers[i].name.len + h->headers[i].value.len + 2;
    char **block = malloc((2 * n + 1) * sizeof(char *) + bytes);
    if (!block)
        return -ENOMEM;
    char *p = (char *)(block + 2 * n + 1);
#define KEEP(span)                                                                                 \
    (memcpy(p, h->base + (span).off, (span).len), p[(span).len] = '\0', p += (span).len + 1,       \
     p - (span).len - 1)
    r->names = block;
    r->values = block + n;
    r->reason = KEEP(h->reason);
    for (size_t i = 0; i < n; i++) {
        r->names[i] = KEEP(h->headers[i].name);
        r->values[i] = KEEP(h->headers[i].value);
    }
#undef KEEP
    r->nh = n;
    return 0;
}

/* A failure of the response: sticks, and the connection is closed at once. */
static int fail(simul_http_client_response *r, int rc)
{
    if (!r->err)
        r->err = rc;
    conn_release(r);
    return r->err;
}

/* The next parser event of the response (HEAD, BODY or END), reading as needed. */
static int next_event(simul_http_client_response *r)
{
    http_conn *c = r->c;
    for (;;) {
        size_t used;
        int ev = simul_http_parser_feed(&r->p, c->buf + c->off, c->len - c->off, &used);
        if (ev < 0) {
            say(r, "response: %s", simul_http_error_reason(r->p.error));
            return fail(r, ev);
        }
        if (ev == SIMUL_HTTP_BODY) {
            r->poff = (size_t)(r->p.body - c->buf);
            r->plen = r->p.body_len;
        }
        if (ev != SIMUL_HTTP_NEED_MORE) {
            if (ev == SIMUL_HTTP_HEAD) {
                int rc = keep_head(r);
                c->off += used;
                if (rc < 0)
                    return fail(r, rc);
                return ev;
            }
            c->off += used;
            return ev;
        }
        c->off += used;
        long n = conn_read(r, c, r->s->o.read_timeout);
        if (n > 0) {
            r->any_byte = true;
            continue;
        }
        if (n < 0)
            return fail(r, (int)n);
        /* The server closed: the end of a close-delimited body, or a cut. */
        ev = simul_http_parser_eof(&r->p);
        if (ev == SIMUL_HTTP_END)
            return ev;
        if (ev == 0) {
            say(r, "server closed the connection before answering");
        } else {
            say(r, "server closed the connection inside the response (%s)",
                r->p.head.status ? "body cut short" : "head cut short");
        }
        return fail(r, -ECONNRESET);
    }
}

/* The next raw (undecoded) body bytes: > 0 with *data, 0 at the end (the connection released),
 * or an error. */
static long raw_piece(simul_http_client_response *r, const char **data)
{
    if (r->err)
        return r->err;
    if (r->ended)
        return 0;
    if (!r->plen) {
        int ev = next_event(r);
        if (ev < 0)
            return ev;
        if (ev == SIMUL_HTTP_END) {
            r->ended = true;
            conn_release(r);
            return 0;
        }
        if (ev != SIMUL_HTTP_BODY) { /* (a head inside a body cannot be) */
            say(r, "response: unexpected event");
            return fail(r, -EPROTO);
        }
    }
    *data = r->c->buf + r->poff;
    long n = (long)r->plen;
    r->plen = 0;
    return n;
}

/* Reads decoded body bytes into buf: > 0, 0 at the end, or an error. A scope with the whole
 * request's deadline is the caller's. */
static long body_read(simul_http_client_response *r, char *buf, size_t n)
{
    if (r->err)
        return r->err;
    if (!r->enc) {
        if (r->plen) {
            size_t k = r->plen < n ? r->plen : n;
            memcpy(buf, r->c->buf + r->poff, k);
            r->poff += k;
            r->plen -= k;
            return (long)k;
        }
        const char *d = NULL;
        long k = raw_piece(r, &d);
        if (k <= 0)
            return k;
        size_t take = (size_t)k < n ? (size_t)k : n;
        memcpy(buf, d, take);
        /* The rest of the piece stays pending (it is still in the connection's buffer, which
         * moves only when more is read: after the piece is taken). */
        r->poff = (size_t)(d - r->c->buf) + take;
        r->plen = (size_t)k - take;
        return (long)take;
    }
    for (;;) {
        if (r->z_end) {
            /* Whatever follows the compressed stream is dropped, but the message must end. */
            const char *d = NULL;
            long k;
            while ((k = raw_piece(r, &d)) > 0) {
            }
            return k;
        }
        if (r->z.avail_in == 0) {
            const char *d = NULL;
            long k = raw_piece(r, &d);
            if (k < 0)
                return k;
            if (k == 0) {
                say(r, "compressed body cut short");
                r->err = -EPROTO;
                return r->err;
            }
            if (r->enc == 2 && !r->z_sniffed) {
                /* "deflate" is a zlib stream by the RFC, raw deflate by some servers: a zlib
                 * header is a CMF/FLG pair whose value is a multiple of 31. */
                unsigned char b0 = (unsigned char)d[0], b1 = k > 1 ? (unsigned char)d[1] : 0;
                bool zlib = (b0 & 0x0f) == 8 && k > 1 && ((b0 << 8) | b1) % 31 == 0;
                inflateEnd(&r->z);
                if (inflateInit2(&r->z, zlib ? 15 : -15) != Z_OK) {
                    r->z_init = false;
                    return fail(r, -ENOMEM);
                }
                r->z_sniffed = true;
            }
            r->z.next_in = (Bytef *)d;
            r->z.avail_in = (uInt)k;
        }
        r->z.next_out = (Bytef *)buf;
        r->z.avail_out = (uInt)(n > (1u << 30) ? (1u << 30) : n);
        int zr = inflate(&r->z, Z_NO_FLUSH);
        size_t got = (size_t)((char *)r->z.next_out - buf);
        if (zr == Z_STREAM_END) {
            r->z_end = true;
            r->z.avail_in = 0;
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            say(r, "cannot decode the %s body: %s", r->enc == 1 ? "gzip" : "deflate",
                r->z.msg ? r->z.msg : "corrupt data");
            return fail(r, -EPROTO);
        }
        if (got)
            return (long)got;
    }
}

/* The whole-request deadline as a scope around the reads after the request call. */
static long read_scoped(simul_http_client_response *r, char *buf, size_t n)
{
    simul_scope sc;
    bool scoped = r->deadline != INT64_MAX && simul_scope_deadline_ns(&sc, r->deadline) == 0;
    long k = body_read(r, buf, n);
    if (scoped)
        simul_scope_end(&sc);
    if (k < 0 && !r->err)
        fail(r, (int)k);
    return k;
}

long simul_http_client_response_read(simul_http_client_response *r, void *buf, size_t n)
{
    if (!r || !r->stream || (!buf && n))
        return -EINVAL;
    if (!n)
        return 0;
    r->why = NULL;
    return read_scoped(r, buf, n);
}

/* Reads the whole body into r->body (at most max bytes decoded). */
static int read_whole(simul_http_client_response *r, uint64_t max)
{
    /* The first buffer fits a body of known length (so a small one costs a small malloc). */
    size_t cap = 0, len = 0, first = 1024;
    if (r->p.head.framing == SIMUL_HTTP_BODY_LENGTH && !r->enc)
        first = (size_t)(r->p.head.content_length < max ? r->p.head.content_length : max) + 1;
    else if (r->p.head.framing == SIMUL_HTTP_BODY_NONE)
        first = 1;
    char *b = NULL;
    for (;;) {
        if (cap == len || (cap - len < 4096 && cap >= 4096)) {
            size_t ncap = cap ? cap * 2 : first;
            char *nb = realloc(b, ncap + 1);
            if (!nb) {
                free(b);
                return fail(r, -ENOMEM);
            }
            b = nb;
            cap = ncap;
        }
        long k = read_scoped(r, b + len, cap - len);
        if (k < 0) {
            free(b);
            return (int)k;
        }
        if (k == 0)
            break;
        len += (size_t)k;
        if (len > max) {
            free(b);
            say(r, "response body over the limit of %llu bytes", (unsigned long long)max);
            return fail(r, -EMSGSIZE);
        }
    }
    b[len] = '\0';
    r->body = b;
    r->body_len = len;
    return 0;
}

int simul_http_client_response_status(const simul_http_client_response *r)
{
    return r ? r->status : -EINVAL;
}

const char *simul_http_client_response_reason(const simul_http_client_response *r)
{
    return r ? r->reason : NULL;
}

int simul_http_client_response_version_minor(const simul_http_client_response *r)
{
    return r ? r->minor : -EINVAL;
}

const char *simul_http_client_response_url(const simul_http_client_response *r)
{
    return r ? r->url : NULL;
}

int simul_http_client_response_redirects(const simul_http_client_response *r)
{
    return r ? r->redirects : -EINVAL;
}

const char *simul_http_client_response_header(const simul_http_client_response *r,
                                              const char *name)
{
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->nh; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

size_t simul_http_client_response_header_count(const simul_http_client_response *r)
{
    return r ? r->nh : 0;
}

int simul_http_client_response_header_at(const simul_http_client_response *r, size_t i,
                                         const char **name, const char **value)
{
    if (!r || i >= r->nh)
        return -EINVAL;
    if (name)
        *name = r->names[i];
    if (value)
        *value = r->values[i];
    return 0;
}

const char *simul_http_client_response_body(const simul_http_client_response *r, size_t *len)
{
    if (!r || r->stream)
        return NULL;
    if (len)
        *len = r->body_len;
    return r->body ? r->body : "";
}

int simul_http_client_response_json(simul_http_client_response *r, json_t **out)
{
    if (!r || !out)
        return -EINVAL;
    *out = NULL;
    if (r->stream && !r->body) {
        r->why = NULL;
        int rc = read_whole(r, r->s->o.max_body);
        if (rc < 0)
            return rc;
    }
    json_error_t e;
    json_t *v = json_loadb(r->body ? r->body : "", r->body_len, JSON_DECODE_ANY, &e);
    if (!v)
        return -EBADMSG;
    *out = v;
    return 0;
}

/* ---- requests ----------------------------------------------------------------------------- */

static bool is_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
              strchr(extra, c)))
            return false;
    }
    return true;
}

static bool value_ok(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return false;
    return true;
}

/* A growing string for the request head. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

/* Appends strings (no format: the request head is built on every request, and vsnprintf was a
 * third of the client's instructions per request). NULL ends the list. */
static void sb_cat(sbuf *b, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, b);
    for (const char *p; (p = va_arg(ap, const char *));) {
        size_t n = strlen(p);
        if (b->cap - b->len <= n) {
            size_t ncap = (b->cap + n) * 2 + 256;
            char *np = realloc(b->p, ncap);
            if (!np) {
                b->oom = true;
                break;
            }
            b->p = np;
            b->cap = ncap;
        }
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
    va_end(ap);
}

static bool user_has(const char *const *hdrs, const char *name)
{
    for (size_t i = 0; hdrs && hdrs[i] && hdrs[i + 1]; i += 2)
        if (strcasecmp(hdrs[i], name) == 0)
            return true;
    return false;
}

/* What one attempt sends. */
typedef struct req {
    const char *method;
    const http_url *u;
    const char *const *headers;
    bool drop_auth; /* after a redirect to another host: no Authorization / Cookie of the caller */
    const void *body;
    size_t body_len;
    bool has_body;
    simul_http_body_cb cb;
    void *cb_arg;
    const char *content_type;
} req;

static int build_head(simul_http_session *s, const req *q, sbuf *b)
{
    const http_url *u = q->u;
    b->cap = 512;
    if (!(b->p = malloc(b->cap)))
        return -ENOMEM;
    sb_cat(b, q->method, " ", u->target, " HTTP/1.1\r\n", NULL);
    if (!user_has(q->headers, "Host"))
        sb_cat(b, "Host: ", u->ipv6 ? "[" : "", u->host, u->ipv6 ? "]" : "",
               u->default_port ? "" : ":", u->default_port ? "" : u->port, "\r\n", NULL);
    if (!user_has(q->headers, "User-Agent"))
        sb_cat(b, "User-Agent: ", s->o.user_agent, "\r\n", NULL);
    if (!s->o.no_decompress && !user_has(q->headers, "Accept-Encoding"))
        sb_cat(b, "Accept-Encoding: gzip, deflate\r\n", NULL);
    for (size_t i = 0; q->headers && q->headers[i]; i += 2) {
        const char *n = q->headers[i], *v = q->headers[i + 1];
        if (!v || !is_token(n) || !value_ok(v))
            return -EINVAL;
        if (!strcasecmp(n, "Content-Length") || !strcasecmp(n, "Transfer-Encoding") ||
            !strcasecmp(n, "Connection"))
            return -EINVAL; /* the framing is the client's */
        if (q->drop_auth && (!strcasecmp(n, "Authorization") || !strcasecmp(n, "Cookie")))
            continue;
        sb_cat(b, n, ": ", v, "\r\n", NULL);
    }
    if (s->jar) {
        char *ck = http_jar_header(s->jar, u, wall_now());
        if (ck) {
            sb_cat(b, "Cookie: ", ck, "\r\n", NULL);
            free(ck);
        }
    }
    if (q->content_type && (q->has_body || q->cb))
        sb_cat(b, "Content-Type: ", q->content_type, "\r\n", NULL);
    if (q->cb) {
        sb_cat(b, "Transfer-Encoding: chunked\r\n", NULL);
    } else if (q->has_body || !strcmp(q->method, "POST") || !strcmp(q->method, "PUT") ||
               !strcmp(q->method, "PATCH")) {
        char num[24], *e = num + sizeof num;
        *--e = '\0';
        size_t v = q->body_len;
        do
            *--e = (char)('0' + v % 10);
        while ((v /= 10));
        sb_cat(b, "Content-Length: ", e, "\r\n", NULL);
    }
    sb_cat(b, "\r\n", NULL);
    return b->oom ? -ENOMEM : 0;
}

/* Sends a streamed body as chunks, each flushed (drain) before the next is asked for. */
static int send_chunked(simul_http_client_response *r, http_conn *c, const req *q)
{
    char *chunk = malloc(READ_CHUNK + 32);
    if (!chunk)
        return -ENOMEM;
    int rc = 0;
    for (;;) {
        long k = q->cb(q->cb_arg, chunk + 16, READ_CHUNK);
        if (k < 0 || k > (long)READ_CHUNK) {
            say(r, "the request body's callback failed: %s",
                k < 0 ? strerror((int)-k) : "returned more than asked");
            rc = k < 0 ? (int)k : -EINVAL;
            break;
        }
        char size[20];
        int sn = snprintf(size, sizeof size, "%lx\r\n", (unsigned long)k);
        struct iovec iov[3] = {{size, (size_t)sn}, {chunk + 16, (size_t)k}, {(char *)"\r\n", 2}};
        if (k == 0) {
            iov[0] = (struct iovec){(char *)"0\r\n\r\n", 5};
            rc = conn_write(r, c, iov, 1);
            break;
        }
        if ((rc = conn_write(r, c, iov, 3)) < 0)
            break;
    }
    free(chunk);
    return rc;
}

static bool idempotent(const char *m)
{
    return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "OPTIONS") ||
           !strcmp(m, "TRACE") || !strcmp(m, "PUT") || !strcmp(m, "DELETE");
}

/* One request on one connection, up to the final response's head. *retry is set when the
 * connection was a pooled one that the server had closed before any byte of an answer, and
 * the request may be sent again. */
static int attempt(simul_http_client_response *r, const req *q, bool *retry)
{
    simul_http_session *s = r->s;
    *retry = false;
    sbuf b = {0};
    int rc = build_head(s, q, &b);
    if (rc < 0) {
        free(b.p);
        say(r, rc == -EINVAL ? "invalid request header" : "out of memory");
        return rc;
    }
    http_conn *c;
    if ((rc = conn_acquire(r, q->u, &c)) < 0) {
        free(b.p);
        return rc;
    }
    r->c = c;
    r->ended = false;
    r->any_byte = false;
    r->plen = 0;
    simul_http_limits lim = s->o.limits;
    lim.max_body = UINT64_MAX; /* the body's limit is the session's, counted decoded */
    simul_http_parser_init(&r->p, SIMUL_HTTP_RESPONSE, &lim, r->fields,
                           s->o.limits.max_headers ? s->o.limits.max_headers
                                                   : SIMUL_HTTP_DEFAULT_MAX_HEADERS);
    simul_http_parser_response_to(&r->p, q->method);
    struct iovec iov[2] = {{b.p, b.len}, {(void *)q->body, q->body_len}};
    rc = conn_write(r, c, iov, q->body_len ? 2 : 1);
    free(b.p);
    if (rc == 0 && q->cb)
        rc = send_chunked(r, c, q);
    bool reused = c->reused;
    if (rc < 0) {
        /* A pooled connection the server closed meanwhile fails the write (-EPIPE, reset). */
        *retry = reused && (rc == -EPIPE || rc == -ECONNRESET) && !q->cb;
        if (!*retry && (rc == -EPIPE || rc == -ECONNRESET)) {
            /* A server may answer before it stops reading (a 413 for a body too large, a 401):
             * that answer, if it came, is the result, as Go and curl report it. */
            int ev;
            while ((ev = next_event(r)) == SIMUL_HTTP_END ||
                   (ev == SIMUL_HTTP_HEAD && r->status < 200))
                ;
            if (ev == SIMUL_HTTP_HEAD) {
                if (r->why)
                    r->why[0] = '\0';
                r->keep_alive = false; /* (the request was not sent whole) */
                return 0;
            }
            r->err = 0;
        }
        return fail(r, rc);
    }
    for (;;) {
        int ev = next_event(r);
        if (ev < 0) {
            /* (-ENOLINK: a TLS peer that closed without close_notify) */
            *retry = reused && !r->any_byte && idempotent(q->method) && !q->cb &&
                     (ev == -ECONNRESET || ev == -EPIPE || ev == -ENOLINK);
            return ev;
        }
        if (ev == SIMUL_HTTP_HEAD) {
            if (r->status >= 200 || r->status == 101)
                return 0;
            continue; /* 1xx: its END follows, then the final response */
        }
        /* (the END of an interim response) */
    }
}

static void set_encoding(simul_http_client_response *r)
{
    r->enc = 0;
    if (r->s->o.no_decompress || r->p.head.framing == SIMUL_HTTP_BODY_NONE)
        return;
    const char *ce = simul_http_client_response_header(r, "Content-Encoding");
    if (!ce)
        return;
    if (!strcasecmp(ce, "gzip") || !strcasecmp(ce, "x-gzip"))
        r->enc = 1;
    else if (!strcasecmp(ce, "deflate"))
        r->enc = 2;
    else
        return; /* identity, or one we do not decode: the bytes as they came */
    memset(&r->z, 0, sizeof r->z);
    if (inflateInit2(&r->z, r->enc == 1 ? 15 + 16 : 15) != Z_OK) {
        r->enc = 0;
        return;
    }
    r->z_init = true;
    r->z_end = r->z_sniffed = false;
}

int simul_http_session_request(simul_http_session *s, const char *method, const char *url,
                               const simul_http_request_opts *opts,
                               simul_http_client_response **out)
{
    simul_http_request_opts o = opts ? *opts : (simul_http_request_opts){0};
    if (o.why && o.whylen)
        o.why[0] = '\0';
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!s || !method || !url || !is_token(method) || (o.body && o.body_cb) ||
        (o.json && (o.body || o.body_cb)) || o.timeout < 0 || isnan(o.timeout)) {
        if (o.why && o.whylen)
            snprintf(o.why, o.whylen, "invalid arguments");
        return -EINVAL;
    }
    simul_http_client_response *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->s = s;
    s->nresponses++;
    r->why = o.why;
    r->whylen = o.whylen;
    r->stream = o.stream;
    uint32_t cap = s->o.limits.max_headers ? s->o.limits.max_headers : SIMUL_HTTP_DEFAULT_MAX_HEADERS;
    r->fields = calloc(cap, sizeof *r->fields);
    char *json_body = NULL;
    http_url u = {0};
    int rc = -ENOMEM;
    if (!r->fields)
        goto fail;
    double timeout = o.timeout > 0 ? o.timeout : s->o.request_timeout;
    r->deadline = isinf(timeout) ? INT64_MAX : simul_now_ns() + (int64_t)(timeout * 1e9);
    simul_scope whole;
    bool scoped = r->deadline != INT64_MAX && simul_scope_deadline_ns(&whole, r->deadline) == 0;

    req q = {.method = method, .headers = o.headers, .content_type = o.content_type};
    if (o.json) {
        json_body = json_dumps(o.json, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!json_body)
            goto end;
        q.body = json_body;
        q.body_len = strlen(json_body);
        q.has_body = true;
        if (!q.content_type)
            q.content_type = "application/json";
    } else if (o.body_cb) {
        q.cb = o.body_cb;
        q.cb_arg = o.body_arg;
    } else {
        q.body = o.body;
        q.body_len = o.body ? o.body_len : 0;
        q.has_body = o.body != NULL;
    }
    char *cur = strdup(url);
    if (!cur)
        goto end;
    char method_buf[32];
    for (;;) {
        const char *reason = NULL;
        if ((rc = http_url_parse(cur, &u, &reason)) < 0) {
            say(r, "%s: %s", reason ? reason : "bad URL", cur);
            break;
        }
        q.u = &u;
        bool retry;
        rc = attempt(r, &q, &retry);
        if (rc < 0 && retry) {
            if (r->why)
                r->why[0] = '\0';
            r->err = 0;
            rc = attempt(r, &q, &retry);
        }
        if (rc < 0)
            break;
        if (s->jar) {
            for (size_t i = 0; i < r->nh; i++)
                if (!strcasecmp(r->names[i], "Set-Cookie"))
                    http_jar_store(s->jar, &u, r->values[i], wall_now());
        }
        const char *loc = simul_http_client_response_header(r, "Location");
        int st = r->status;
        bool redirect = (st == 301 || st == 302 || st == 303 || st == 307 || st == 308) && loc &&
                        s->o.max_redirects > 0;
        if (redirect && (st == 307 || st == 308) && q.cb)
            redirect = false; /* a streamed body cannot be sent again: the caller decides */
        if (!redirect)
            break;
        char *next = http_url_resolve(&u, loc);
        if (!next) {
            rc = -ENOMEM;
            break;
        }
        /* Drop the redirect's body (raw: not decoded): read a small one to keep the
         * connection, else close it. */
        char sink[4096];
        long k;
        size_t dropped = 0;
        while (dropped < 65536 && (k = body_read(r, sink, sizeof sink)) > 0)
            dropped += (size_t)k;
        r->err = 0;
        conn_release(r);
        if (r->redirects >= s->o.max_redirects) {
            say(r, "too many redirects (%d), the last to %s", r->redirects, next);
            free(next);
            rc = -ELOOP;
            break;
        }
        http_url nu;
        bool other_host = true;
        if (http_url_parse(next, &nu, NULL) == 0) {
            other_host = strcmp(nu.host, u.host) != 0;
            http_url_free(&nu);
        }
        q.drop_auth = q.drop_auth || other_host;
        if (st == 303 || ((st == 301 || st == 302) && !strcmp(q.method, "POST"))) {
            if (strcmp(q.method, "HEAD") != 0) {
                snprintf(method_buf, sizeof method_buf, "GET");
                q.method = method_buf;
            }
            q.body = NULL;
            q.body_len = 0;
            q.has_body = false;
            q.cb = NULL;
            q.content_type = NULL;
        }
        http_url_free(&u);
        free(cur);
        cur = next;
        r->redirects++;
    }
    if (rc == 0) {
        r->url = http_url_origin(&u, true);
        set_encoding(r);
        if (!r->url)
            rc = -ENOMEM;
        else if (!r->stream)
            rc = read_whole(r, s->o.max_body);
    }
    free(cur);
end:
    if (scoped)
        simul_scope_end(&whole);
    http_url_free(&u);
    free(json_body);
    if (rc < 0 && rc == -ENOMEM)
        say(r, "out of memory");
    if (rc == 0) {
        r->why = NULL;
        *out = r;
        return 0;
    }
fail:
    simul_http_client_response_close(r);
    return rc;
}

int simul_http_session_open_stream(simul_http_session *s, const char *url, simul_stream **out,
                                   char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!s || !url)
        return -EINVAL;
    /* A response record only for its reason buffer (conn_open says into it). */
    simul_http_client_response r = {.s = s, .why = why, .whylen = whylen, .deadline = INT64_MAX};
    http_url u;
    const char *reason = NULL;
    int rc = http_url_parse(url, &u, &reason);
    if (rc < 0) {
        say(&r, "%s: %s", reason ? reason : "bad URL", url);
        return rc;
    }
    http_host *h = host_get(s, &u);
    http_conn *c = NULL;
    rc = h ? conn_open(&r, &u, h, &c) : -ENOMEM;
    http_url_free(&u);
    if (rc < 0)
        return rc;
    /* Out of the pool's books: the connection is the caller's now. */
    h->nconns--;
    s->nconns--;
    *out = c->s;
    free(c->buf);
    free(c);
    notify_freed(s);
    return 0;
}

int simul_http_session_get(simul_http_session *s, const char *url,
                           simul_http_client_response **out)
{
    return simul_http_session_request(s, "GET", url, NULL, out);
}

int simul_http_session_post(simul_http_session *s, const char *url, const char *content_type,
                            const void *body, size_t len, simul_http_client_response **out)
{
    simul_http_request_opts o = {.body = body ? body : "", .body_len = body ? len : 0,
                                 .content_type = content_type};
    return simul_http_session_request(s, "POST", url, &o, out);
}

int simul_http_session_post_json(simul_http_session *s, const char *url, const json_t *v,
                                 simul_http_client_response **out)
{
    if (!v)
        return -EINVAL;
    simul_http_request_opts o = {.json = v};
    return simul_http_session_request(s, "POST", url, &o, out);
}
