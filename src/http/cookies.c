/* cookies.c — the client session's cookie jar (RFC 6265 5.2-5.4): Set-Cookie parsed into
 * name, value, domain, path, expiry and flags; the Cookie field built from those whose domain,
 * path and scheme match. The idea: a small list per session, replaced by (name, domain, path),
 * expired entries dropped as they are met; no public suffix list, so a Domain attribute is kept
 * only when the host that set it domain-matches it. */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client_internal.h"

typedef struct cookie {
    struct cookie *next;
    char *name, *value, *domain, *path;
    bool host_only, secure;
    int64_t expires; /* wall-clock seconds; 0: a session cookie */
} cookie;

/* Bounds a server cannot push the jar past (RFC 6265 6.1's minimums a client must support,
 * as browsers cap them): a cookie's name and value, and the cookies kept in all. */
#define MAX_COOKIE_BYTES 4096
#define MAX_COOKIES 3000

struct http_jar {
    cookie *list; /* newest first */
    size_t count;
};

http_jar *http_jar_new(void)
{
    return calloc(1, sizeof(http_jar));
}

static void cookie_free(cookie *c)
{
    free(c->name);
    free(c->value);
    free(c->domain);
    free(c->path);
    free(c);
}

void http_jar_free(http_jar *j)
{
    if (!j)
        return;
    for (cookie *c = j->list, *n; c; c = n) {
        n = c->next;
        cookie_free(c);
    }
    free(j);
}

static bool is_ip(const char *h)
{
    return strchr(h, ':') || strspn(h, "0123456789.") == strlen(h);
}

/* RFC 6265 5.1.3: host equals domain, or ends with "." + domain and is a name. */
static bool domain_match(const char *host, const char *domain)
{
    if (strcasecmp(host, domain) == 0)
        return true;
    size_t h = strlen(host), d = strlen(domain);
    return h > d && host[h - d - 1] == '.' && strcasecmp(host + h - d, domain) == 0 && !is_ip(host);
}

/* RFC 6265 5.1.4. */
static bool path_match(const char *req, size_t rlen, const char *cpath)
{
    size_t c = strlen(cpath);
    if (rlen == c && memcmp(req, cpath, c) == 0)
        return true;
    return rlen > c && memcmp(req, cpath, c) == 0 && (cpath[c - 1] == '/' || req[c] == '/');
}

static char *trimmed(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return strndup(s, n);
}

static void sweep(http_jar *j, int64_t now)
{
    for (cookie **pp = &j->list; *pp;) {
        cookie *c = *pp;
        if (c->expires && c->expires <= now) {
            *pp = c->next;
            cookie_free(c);
            j->count--;
        } else {
            pp = &c->next;
        }
    }
}

void http_jar_store(http_jar *j, const http_url *u, const char *sc, int64_t now)
{
    size_t first = strcspn(sc, ";");
    const char *eq = memchr(sc, '=', first);
    if (!eq || first > MAX_COOKIE_BYTES)
        return;
    cookie *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->name = trimmed(sc, (size_t)(eq - sc));
    c->value = trimmed(eq + 1, first - (size_t)(eq + 1 - sc));
    bool have_max_age = false;
    const char *a = sc + first;
    while (*a == ';') {
        a++;
        size_t n = strcspn(a, ";");
        const char *e = memchr(a, '=', n);
        char *key = trimmed(a, e ? (size_t)(e - a) : n);
        char *val = e ? trimmed(e + 1, n - (size_t)(e + 1 - a)) : strdup("");
        if (key && val) {
            if (strcasecmp(key, "Max-Age") == 0) {
                char *end;
                long long v = strtoll(val, &end, 10);
                if (*val && !*end) {
                    have_max_age = true;
                    c->expires = v <= 0 ? 1 : now + v; /* 1: long expired (delete) */
                }
            } else if (strcasecmp(key, "Expires") == 0 && !have_max_age) {
                struct tm tm = {0};
                const char *end = strptime(val, "%a, %d %b %Y %H:%M:%S GMT", &tm);
                if (end && !*end) {
                    int64_t t = (int64_t)timegm(&tm);
                    c->expires = t <= 0 ? 1 : t;
                }
            } else if (strcasecmp(key, "Domain") == 0 && *val) {
                free(c->domain);
                c->domain = strdup(val[0] == '.' ? val + 1 : val);
                for (char *p = c->domain; p && *p; p++)
                    *p = (char)tolower((unsigned char)*p);
            } else if (strcasecmp(key, "Path") == 0 && val[0] == '/') {
                free(c->path);
                c->path = strdup(val);
            } else if (strcasecmp(key, "Secure") == 0) {
                c->secure = true;
            }
        }
        free(key);
        free(val);
        a += n;
    }
    /* RFC 6265bis 5.6 step 14: a Secure cookie only from a secure origin (an http server cannot
     * plant one that https pages would trust). */
    if (!c->name || !c->value || !*c->name || (c->secure && !u->tls)) {
        cookie_free(c);
        return;
    }
    if (c->domain) {
        if (!domain_match(u->host, c->domain)) { /* a cookie for someone else: ignored */
            cookie_free(c);
            return;
        }
    } else {
        c->domain = strdup(u->host);
        c->host_only = true;
    }
    if (!c->path) {
        /* RFC 6265 5.1.4: the default path is the request path's directory. */
        size_t path = strcspn(u->target, "?");
        size_t dir = path;
        while (dir > 0 && u->target[dir - 1] != '/')
            dir--;
        c->path = dir <= 1 ? strdup("/") : strndup(u->target, dir - 1);
    }
    if (!c->domain || !c->path) {
        cookie_free(c);
        return;
    }
    /* Replaces the cookie of the same name, domain and path (or deletes it when expired). */
    for (cookie **pp = &j->list; *pp; pp = &(*pp)->next) {
        cookie *o = *pp;
        if (!strcmp(o->name, c->name) && !strcasecmp(o->domain, c->domain) &&
            !strcmp(o->path, c->path)) {
            *pp = o->next;
            cookie_free(o);
            j->count--;
            break;
        }
    }
    if (c->expires && c->expires <= now) {
        cookie_free(c);
        return;
    }
    sweep(j, now);
    if (j->count >= MAX_COOKIES) { /* the oldest goes */
        cookie **pp = &j->list;
        while ((*pp)->next)
            pp = &(*pp)->next;
        cookie_free(*pp);
        *pp = NULL;
        j->count--;
    }
    c->next = j->list;
    j->list = c;
    j->count++;
}

/* Whether c goes with a request to u (an expired one does not; sweep drops it). */
static bool applies(cookie *c, const http_url *u, int64_t now)
{
    if (c->expires && c->expires <= now)
        return false;
    if (c->host_only ? strcasecmp(c->domain, u->host) != 0 : !domain_match(u->host, c->domain))
        return false;
    if (c->secure && !u->tls)
        return false;
    return path_match(u->target, strcspn(u->target, "?"), c->path);
}

static int longer_path_first(const void *a, const void *b)
{
    size_t x = strlen((*(cookie *const *)a)->path), y = strlen((*(cookie *const *)b)->path);
    return x < y ? 1 : x > y ? -1 : 0;
}

char *http_jar_header(http_jar *j, const http_url *u, int64_t now)
{
    sweep(j, now);
    size_t n = 0, count = 0;
    for (cookie *c = j->list; c; c = c->next)
        if (applies(c, u, now)) {
            n += strlen(c->name) + strlen(c->value) + 3;
            count++;
        }
    if (!count)
        return NULL;
    char *s = malloc(n + 1);
    cookie **v = malloc(count * sizeof *v);
    if (!s || !v) {
        free(s);
        free(v);
        return NULL;
    }
    size_t k = 0;
    for (cookie *c = j->list; c; c = c->next)
        if (applies(c, u, now))
            v[k++] = c;
    /* Longer paths first (RFC 6265 5.4 step 2); qsort is not stable, but the order among equal
     * paths is not specified either. */
    qsort(v, count, sizeof *v, longer_path_first);
    char *p = s;
    for (k = 0; k < count; k++)
        p += sprintf(p, "%s%s=%s", k ? "; " : "", v[k]->name, v[k]->value);
    free(v);
    return s;
}

const char *http_jar_get(http_jar *j, const http_url *u, const char *name, int64_t now)
{
    for (cookie *c = j->list; c; c = c->next)
        if (!strcmp(c->name, name) && applies(c, u, now))
            return c->value;
    return NULL;
}
