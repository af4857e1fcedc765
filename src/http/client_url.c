/* client_url.c — the client's URLs: parsing an absolute http(s) URL into what a connection and a
 * request line need, and resolving a redirect's Location against it. The idea: one copy of the
 * URL, cut in place into host, port and target, so a URL is one allocation. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"

/* Bytes allowed in a request target as sent: VCHAR (a space or a control byte would break the
 * request line; the caller percent-encodes). */
static bool target_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

int http_url_parse(const char *s, http_url *u, const char **reason)
{
    memset(u, 0, sizeof *u);
    const char *why = "not an absolute http or https URL";
    size_t skip;
    if (strncasecmp(s, "http://", 7) == 0) {
        skip = 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        skip = 8;
        u->tls = true;
    } else {
        goto bad;
    }
    const char *a = s + skip;
    size_t alen = strcspn(a, "/?#");
    const char *rest = a + alen;
    size_t rlen = strcspn(rest, "#");
    /* host, port ("65535"), "/" + target, NULs */
    u->buf = malloc(alen + rlen + 16);
    if (!u->buf)
        return -ENOMEM;
    char *host = u->buf;
    if (memchr(a, '@', alen)) {
        why = "user information in a URL is not supported";
        goto bad;
    }
    const char *port = NULL;
    size_t hlen, plen = 0;
    if (alen && a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        if (!close) {
            why = "unterminated IPv6 address";
            goto bad;
        }
        hlen = (size_t)(close - a - 1);
        memcpy(host, a + 1, hlen);
        u->ipv6 = true;
        if (close + 1 < a + alen) {
            if (close[1] != ':') {
                why = "junk after the IPv6 address";
                goto bad;
            }
            port = close + 2;
            plen = (size_t)(a + alen - port);
        }
        for (size_t i = 0; i < hlen; i++)
            if (!isxdigit((unsigned char)host[i]) && host[i] != ':' && host[i] != '.')
                goto badhost;
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
        memcpy(host, a, hlen);
        if (colon) {
            port = colon + 1;
            plen = (size_t)(a + alen - port);
        }
        for (size_t i = 0; i < hlen; i++) {
            unsigned char c = (unsigned char)host[i];
            if (!isalnum(c) && c != '-' && c != '.' && c != '_')
                goto badhost;
            host[i] = (char)tolower(c);
        }
    }
    if (hlen == 0)
        goto badhost;
    host[hlen] = '\0';
    char *p = host + hlen + 1;
    if (port && plen) {
        unsigned long v = 0;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9' || i >= 5) {
                why = "invalid port";
                goto bad;
            }
            v = v * 10 + (unsigned)(port[i] - '0');
        }
        if (v == 0 || v > 65535) {
            why = "invalid port";
            goto bad;
        }
        /* (the digits as given, without leading zeros) */
        size_t k = 0;
        while (k + 1 < plen && port[k] == '0')
            k++;
        memcpy(p, port + k, plen - k);
        p[plen - k] = '\0';
        u->default_port = v == (u->tls ? 443u : 80u);
    } else {
        strcpy(p, u->tls ? "443" : "80");
        u->default_port = true;
    }
    u->port = p;
    p += strlen(p) + 1;
    u->target = p;
    if (rlen == 0 || rest[0] != '/')
        *p++ = '/';
    memcpy(p, rest, rlen);
    p[rlen] = '\0';
    if (!target_ok(u->target)) {
        why = "space or control character in the URL (percent-encode it)";
        goto bad;
    }
    u->host = host;
    return 0;
badhost:
    why = "invalid host in URL";
bad:
    free(u->buf);
    memset(u, 0, sizeof *u);
    if (reason)
        *reason = why;
    return -EINVAL;
}

void http_url_free(http_url *u)
{
    free(u->buf);
    memset(u, 0, sizeof *u);
}

char *http_url_origin(const http_url *u, bool with_target)
{
    /* (strings joined by hand: this runs on every request, to find the origin's pool) */
    const char *parts[] = {u->tls ? "https://" : "http://", u->ipv6 ? "[" : "", u->host,
                           u->ipv6 ? "]" : "", u->default_port ? "" : ":",
                           u->default_port ? "" : u->port, with_target ? u->target : ""};
    size_t len[7], n = 1;
    for (int i = 0; i < 7; i++)
        n += len[i] = strlen(parts[i]);
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    for (int i = 0; i < 7; i++) {
        memcpy(p, parts[i], len[i]);
        p += len[i];
    }
    *p = '\0';
    return s;
}

char *http_url_resolve(const http_url *base, const char *loc)
{
    if (strncasecmp(loc, "http://", 7) == 0 || strncasecmp(loc, "https://", 8) == 0)
        return strdup(loc);
    if (loc[0] == '/' && loc[1] == '/') {
        size_t n = strlen(loc) + 8;
        char *s = malloc(n);
        if (s)
            snprintf(s, n, "%s:%s", base->tls ? "https" : "http", loc);
        return s;
    }
    char *origin = http_url_origin(base, false);
    if (!origin)
        return NULL;
    size_t n = strlen(origin) + strlen(base->target) + strlen(loc) + 2;
    char *s = malloc(n);
    if (s) {
        if (loc[0] == '/') {
            snprintf(s, n, "%s%s", origin, loc);
        } else if (loc[0] == '?') {
            size_t path = strcspn(base->target, "?");
            snprintf(s, n, "%s%.*s%s", origin, (int)path, base->target, loc);
        } else {
            /* Relative to the base's directory (dot segments are left to the server). */
            size_t path = strcspn(base->target, "?");
            size_t dir = path;
            while (dir > 0 && base->target[dir - 1] != '/')
                dir--;
            snprintf(s, n, "%s%.*s%s", origin, (int)dir, base->target, loc);
        }
    }
    free(origin);
    return s;
}
