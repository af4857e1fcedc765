/* url.c — amqp:// and amqps:// URLs (RabbitMQ's URI spec): a pure parser.
 * The idea: split at the first '@' after the scheme, the last ':' outside brackets and the first
 * '/' and '?', then percent-decode user, password and vhost, which may hold any byte but NUL. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <simul/amqp.h>

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string. -EINVAL for a bad escape or an encoded NUL. */
static int decode(const char *s, size_t n, char **out)
{
    char *d = malloc(n + 1);
    if (!d)
        return -ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n) {
                free(d);
                return -EINVAL;
            }
            int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
            if (a < 0 || b < 0 || (a == 0 && b == 0)) {
                free(d);
                return -EINVAL;
            }
            d[j++] = (char)(a * 16 + b);
            i += 2;
        } else {
            d[j++] = s[i];
        }
    }
    d[j] = 0;
    *out = d;
    return 0;
}

static int parse_double(const char *v, size_t n, double *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf)
        return -EINVAL;
    memcpy(buf, v, n);
    buf[n] = 0;
    char *end;
    double d = strtod(buf, &end);
    if (*end || !(d >= 0) || d > 1e9)
        return -EINVAL;
    *out = d;
    return 0;
}

static int parse_ulong(const char *v, size_t n, unsigned long max, unsigned long *out)
{
    if (n == 0 || n > 10)
        return -EINVAL;
    unsigned long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EINVAL;
        x = x * 10 + (unsigned long)(v[i] - '0');
    }
    if (x > max)
        return -EINVAL;
    *out = x;
    return 0;
}

static int parse_query(const char *q, size_t n, simul_amqp_url *u)
{
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && q[e] != '&')
            e++;
        const char *eq = memchr(q + i, '=', e - i);
        if (!eq)
            return -EINVAL;
        size_t klen = (size_t)(eq - (q + i));
        const char *v = eq + 1;
        size_t vlen = (size_t)(q + e - v);
        const char *k = q + i;
        unsigned long x = 0;
        int rc;
        if (klen == 9 && !memcmp(k, "heartbeat", 9)) {
            rc = parse_double(v, vlen, &u->heartbeat);
        } else if (klen == 9 && !memcmp(k, "frame_max", 9)) {
            rc = parse_ulong(v, vlen, 0xffffffffu, &x);
            if (rc == 0 && x != 0 && x < SIMUL_AMQP_FRAME_MIN)
                rc = -EINVAL;
            u->frame_max = (uint32_t)x;
        } else if (klen == 11 && !memcmp(k, "channel_max", 11)) {
            rc = parse_ulong(v, vlen, 65535, &x);
            u->channel_max = (uint16_t)x;
        } else if (klen == 18 && !memcmp(k, "connection_timeout", 18)) {
            /* RabbitMQ's clients take milliseconds here. */
            rc = parse_ulong(v, vlen, 0xffffffffu, &x);
            u->connect_timeout = (double)x / 1000.0;
        } else {
            rc = -EINVAL;
        }
        if (rc < 0)
            return rc;
        i = e + 1;
    }
    return 0;
}

void simul_amqp_url_free(simul_amqp_url *u)
{
    if (!u)
        return;
    free(u->user);
    free(u->password);
    free(u->host);
    free(u->port);
    free(u->vhost);
    memset(u, 0, sizeof *u);
}

int simul_amqp_url_parse(const char *url, simul_amqp_url *out)
{
    if (!url || !out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->heartbeat = -1;
    const char *p;
    if (!strncasecmp(url, "amqp://", 7)) {
        p = url + 7;
    } else if (!strncasecmp(url, "amqps://", 8)) {
        p = url + 8;
        out->tls = true;
    } else {
        return -EINVAL;
    }
    size_t n = strlen(p);
    const char *end = p + n;
    const char *q = memchr(p, '?', n);
    const char *auth_end = q ? q : end;
    const char *slash = memchr(p, '/', (size_t)(auth_end - p));
    const char *hp_end = slash ? slash : auth_end;
    int rc = 0;
    /* userinfo: up to the last '@' of the authority (a password may not hold a raw '@', but
     * the last one is where the host begins in every sane URL). */
    const char *at = NULL;
    for (const char *s = p; s < hp_end; s++)
        if (*s == '@')
            at = s;
    const char *host = p;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            rc = decode(p, (size_t)(colon - p), &out->user);
            if (rc == 0)
                rc = decode(colon + 1, (size_t)(at - colon - 1), &out->password);
        } else {
            rc = decode(p, (size_t)(at - p), &out->user);
        }
        host = at + 1;
    }
    const char *hend = hp_end, *port = NULL;
    if (rc == 0 && host < hp_end && *host == '[') {
        const char *rb = memchr(host, ']', (size_t)(hp_end - host));
        if (!rb)
            rc = -EINVAL;
        else {
            if (rb + 1 < hp_end) {
                if (rb[1] != ':')
                    rc = -EINVAL;
                port = rb + 2;
            }
            host++;
            hend = rb;
        }
    } else if (rc == 0) {
        const char *colon = hp_end > host ? memchr(host, ':', (size_t)(hp_end - host)) : NULL;
        if (colon) {
            hend = colon;
            port = colon + 1;
        }
    }
    if (rc == 0) {
        if (hend > host)
            rc = decode(host, (size_t)(hend - host), &out->host);
        else
            out->host = strdup("localhost");
    }
    if (rc == 0) {
        unsigned long x = 0;
        if (port) {
            rc = parse_ulong(port, (size_t)(hp_end - port), 65535, &x);
            if (rc == 0 && x == 0)
                rc = -EINVAL;
        } else {
            x = out->tls ? 5671 : 5672;
        }
        if (rc == 0) {
            char buf[8];
            int k = 0;
            char tmp[8];
            do {
                tmp[k++] = (char)('0' + x % 10);
                x /= 10;
            } while (x);
            for (int i = 0; i < k; i++)
                buf[i] = tmp[k - 1 - i];
            buf[k] = 0;
            out->port = strdup(buf);
        }
    }
    if (rc == 0) {
        if (slash) {
            const char *v = slash + 1;
            if (memchr(v, '/', (size_t)(auth_end - v)))
                rc = -EINVAL; /* the vhost is one segment: a '/' in it is written %2f */
            else if (v == auth_end)
                out->vhost = strdup("/"); /* "amqp://h/" means the default vhost, as pika and
                                              amqp091-go read it (not the spec's empty name) */
            else
                rc = decode(v, (size_t)(auth_end - v), &out->vhost);
        } else {
            out->vhost = strdup("/");
        }
    }
    if (rc == 0 && !out->user)
        out->user = strdup("guest");
    if (rc == 0 && !out->password)
        out->password = strdup("guest");
    if (rc == 0 && (!out->host || !out->port || !out->vhost || !out->user || !out->password))
        rc = -ENOMEM;
    if (rc == 0 && q)
        rc = parse_query(q + 1, (size_t)(end - q - 1), out);
    if (rc < 0)
        simul_amqp_url_free(out);
    return rc;
}
