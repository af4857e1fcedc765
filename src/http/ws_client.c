/* ws_client.c — the WebSocket client by URL (simul_ws_connect): a ws/wss URL becomes a
 * connection of its own from the HTTP client's session (proxy, TLS, its CAs) and a handshake
 * carrying the session's cookies and the caller's fields. The idea: nothing new on the wire
 * here — the URL is the HTTP client's, the connection is simul_http_session_open_stream's and
 * the handshake is ws_conn.c's; this file only joins them under one deadline with one reason. */
#include "client_internal.h"
#include "ws_internal.h"

#include <simul.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void say(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || !whylen || why[0]) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static bool is_token(const char *s)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c)) {
            return false;
        }
    }
    return true;
}

/* A field value: visible ASCII, obs-text, spaces and tabs inside (no CR, LF or NUL). */
static bool value_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* Fields the handshake writes itself: a caller's would contradict them. */
static bool reserved(const char *name)
{
    static const char *const own[] = {"Host", "Upgrade", "Connection", "Sec-WebSocket-Key",
                                      "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
                                      "Sec-WebSocket-Extensions", "Content-Length",
                                      "Transfer-Encoding"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        if (strcasecmp(name, own[i]) == 0) {
            return true;
        }
    }
    return false;
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *a, const char *c)
{
    size_t n = strlen(a) + 2 + strlen(c) + 2;
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256) + n;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    b->len += (size_t)sprintf(b->p + b->len, "%s: %s\r\n", a, c);
}

typedef struct cookie_ctx {
    http_jar *jar;
    const http_url *u;
} cookie_ctx;

static void keep_cookie(void *arg, const char *name, size_t nl, const char *value, size_t vl)
{
    cookie_ctx *c = arg;
    if (nl == 10 && strncasecmp(name, "Set-Cookie", 10) == 0) {
        char *v = strndup(value, vl);
        if (v) {
            http_jar_store(c->jar, c->u, v, (int64_t)time(NULL));
            free(v);
        }
    }
}

int simul_ws_connect(simul_http_session *s, const char *url, const simul_ws_connect_opts *opts,
                     int *status, simul_ws **out)
{
    simul_ws_connect_opts none = {0};
    const simul_ws_connect_opts *o = opts ? opts : &none;
    char *why = o->why;
    size_t whylen = o->whylen;
    if (why && whylen) {
        why[0] = '\0';
    }
    if (status) {
        *status = 0;
    }
    if (!s || !url || !out) {
        say(why, whylen, "WebSocket: no session, URL or result pointer");
        return -EINVAL;
    }
    *out = NULL;
    if (!(o->open_timeout >= 0) && o->open_timeout == o->open_timeout) {
        say(why, whylen, "WebSocket: a negative open_timeout");
        return -EINVAL;
    }
    /* ws -> http, wss -> https: the HTTP client's URL rules (and cookies' secure flag) apply. */
    char *hu;
    if (strncasecmp(url, "ws://", 5) == 0 || strncasecmp(url, "wss://", 6) == 0) {
        bool tls = url[2] == 's' || url[2] == 'S';
        const char *rest = url + (tls ? 6 : 5);
        hu = malloc(strlen(rest) + 9);
        if (hu) {
            sprintf(hu, "%s%s", tls ? "https://" : "http://", rest);
        }
    } else if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        hu = strdup(url);
    } else {
        say(why, whylen, "not a ws://, wss://, http:// or https:// URL: %s", url);
        return -EINVAL;
    }
    if (!hu) {
        return -ENOMEM;
    }
    http_url u;
    const char *reason = NULL;
    int rc = http_url_parse(hu, &u, &reason);
    if (rc < 0) {
        say(why, whylen, "%s: %s", reason ? reason : "bad URL", url);
        free(hu);
        return rc;
    }
    /* The request's fields beyond the handshake's own. */
    sbuf b = {0};
    put(&b, "User-Agent", http_session_user_agent(s));
    if (o->origin) {
        if (!value_ok(o->origin)) {
            say(why, whylen, "WebSocket: a control character in the Origin");
            rc = -EINVAL;
            goto out;
        }
        put(&b, "Origin", o->origin);
    }
    bool has_cookie = false;
    for (size_t i = 0; o->headers && o->headers[i]; i += 2) {
        const char *n = o->headers[i], *v = o->headers[i + 1];
        if (!v || !is_token(n) || !value_ok(v)) {
            say(why, whylen, "WebSocket: a bad request field %s", is_token(n) ? n : "name");
            rc = -EINVAL;
            goto out;
        }
        if (reserved(n)) {
            say(why, whylen, "WebSocket: %s is the handshake's own field", n);
            rc = -EINVAL;
            goto out;
        }
        has_cookie |= strcasecmp(n, "Cookie") == 0;
        put(&b, n, v);
    }
    http_jar *jar = http_session_jar(s);
    if (jar && !has_cookie) {
        char *ck = http_jar_header(jar, &u, (int64_t)time(NULL));
        if (ck) {
            put(&b, "Cookie", ck);
            free(ck);
        }
    }
    if (b.oom) {
        rc = -ENOMEM;
        goto out;
    }
    char host[300];
    snprintf(host, sizeof host, "%s%s%s%s%s", u.ipv6 ? "[" : "", u.host, u.ipv6 ? "]" : "",
             u.default_port ? "" : ":", u.default_port ? "" : u.port);

    double limit = o->open_timeout > 0 ? o->open_timeout : 10;
    simul_scope sc;
    simul_scope_timeout(&sc, limit);
    simul_stream *st = NULL;
    char cwhy[256] = "";
    rc = simul_http_session_open_stream(s, hu, &st, cwhy, sizeof cwhy);
    bool connected = rc == 0;
    if (connected) {
        cookie_ctx cc = {jar, &u};
        http_ws_handshake hs = {.s = st, .own_stream = true, .host = host, .path = u.target,
                                .extra = b.p, .opts = &o->ws, .limits = &o->limits,
                                .status = status, .why = why, .whylen = whylen,
                                .on_field = jar ? keep_cookie : NULL, .arg = &cc};
        rc = http_ws_client_handshake(&hs, out);
    }
    int expired = simul_scope_end(&sc);
    if (rc == -ETIMEDOUT && expired == 1) {
        say(why, whylen, "WebSocket open timed out after %g s (%s)", limit,
            connected ? "waiting for the handshake answer" : "connecting");
    } else if (!connected) {
        say(why, whylen, "%s", cwhy[0] ? cwhy : strerror(-rc));
    } else if (rc == -ETIMEDOUT) {
        say(why, whylen, "WebSocket handshake timed out (the caller's deadline)");
    } else if (rc == -ECANCELED) {
        say(why, whylen, "cancelled");
    }
    if (rc < 0 && st) {
        /* A failed handshake leaves the connection in no known state: reset it. */
        simul_stream_abort(st);
        simul_stream_close(st);
    }
out:
    free(b.p);
    http_url_free(&u);
    free(hu);
    return rc;
}
