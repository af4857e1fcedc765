/* client_internal.h — what the client's files (client.c: sessions, pool, requests; cookies.c:
 * the jar; client_url.c: URLs) share. Private to src/http/. */
#ifndef SIMUL_HTTP_CLIENT_INTERNAL_H
#define SIMUL_HTTP_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A parsed absolute http(s) URL; the strings point into buf (one allocation). */
typedef struct http_url {
    char *buf;
    bool tls;
    const char *host;   /* without brackets; lower-cased */
    const char *port;   /* digits ("80" / "443" when not given) */
    const char *target; /* origin-form: "/path?query" (never empty) */
    bool ipv6;
    bool default_port;
} http_url;

/* Parses an absolute URL (http or https; no userinfo; the fragment dropped). Returns 0 or
 * -EINVAL (with a reason), -ENOMEM. */
int http_url_parse(const char *s, http_url *u, const char **reason);
void http_url_free(http_url *u);
/* "scheme://host[:port]" (brackets for IPv6), malloc'd; with_target adds the target. */
char *http_url_origin(const http_url *u, bool with_target);
/* Resolves a Location against base (absolute, scheme-relative, absolute-path or relative
 * reference), malloc'd, or NULL. */
char *http_url_resolve(const http_url *base, const char *loc);

/* The cookie jar (RFC 6265, without a public suffix list: a Domain attribute must domain-match
 * the host that set it, so a server can set cookies for its parent domains). */
typedef struct http_jar http_jar;
http_jar *http_jar_new(void);
void http_jar_free(http_jar *j);
/* A Set-Cookie value received from u (now: wall-clock seconds). Bad ones are ignored. */
void http_jar_store(http_jar *j, const http_url *u, const char *set_cookie, int64_t now);
/* The Cookie field value for a request to u, malloc'd, or NULL if no cookie applies. */
char *http_jar_header(http_jar *j, const http_url *u, int64_t now);
/* The value of cookie `name` that would be sent to u, or NULL (points into the jar). */
const char *http_jar_get(http_jar *j, const http_url *u, const char *name, int64_t now);

/* For the WebSocket client (ws_client.c): the session's jar (NULL unless it keeps cookies) and
 * its User-Agent. */
struct simul_http_session;
http_jar *http_session_jar(struct simul_http_session *s);
const char *http_session_user_agent(const struct simul_http_session *s);

#endif /* SIMUL_HTTP_CLIENT_INTERNAL_H */
