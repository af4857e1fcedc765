/* proxy.c — libsimul-http's view of the client behind proxies: the PROXY protocol header (v1 text,
 * v2 binary: a pure parser over bytes with hard size limits) and the trusted-proxy list (CIDR
 * blocks) that decides whether X-Forwarded-For / -Proto and Forwarded may be believed at all. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* ---- PROXY protocol ---------------------------------------------------------------------- */

static const unsigned char v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* "TCP4 1.2.3.4 5.6.7.8 1111 2222": one address of family af and a port into sa. */
static int v1_addr(int af, const char *ip, const char *port, struct sockaddr_storage *sa)
{
    /* a port is 1-5 digits, no sign, no leading zero but "0" (as the spec's grammar) */
    size_t pl = strlen(port);
    if (pl == 0 || pl > 5 || (port[0] == '0' && pl > 1)) {
        return -EPROTO;
    }
    unsigned long p = 0;
    for (size_t i = 0; i < pl; i++) {
        if (port[i] < '0' || port[i] > '9') {
            return -EPROTO;
        }
        p = p * 10 + (unsigned long)(port[i] - '0');
    }
    if (p > 65535) {
        return -EPROTO;
    }
    memset(sa, 0, sizeof *sa);
    if (af == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)p);
        return inet_pton(AF_INET, ip, &in->sin_addr) == 1 ? 0 : -EPROTO;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)p);
    return inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1 ? 0 : -EPROTO;
}

static long parse_v1(const char *b, size_t len, simul_http_proxy_info *out)
{
    /* "PROXY " ... CRLF, at most 107 bytes with the CRLF */
    size_t lim = len < SIMUL_HTTP_PROXY_V1_MAX ? len : SIMUL_HTTP_PROXY_V1_MAX;
    const char *lf = memchr(b, '\n', lim);
    if (!lf) {
        return len >= SIMUL_HTTP_PROXY_V1_MAX ? -EMSGSIZE : 0;
    }
    size_t n = (size_t)(lf - b) + 1;
    if (n < 8 || b[n - 2] != '\r') {
        return -EPROTO;
    }
    char line[SIMUL_HTTP_PROXY_V1_MAX + 1];
    memcpy(line, b, n - 2);
    line[n - 2] = '\0';
    if (memchr(line, '\r', n - 2) || strlen(line) != n - 2) {
        return -EPROTO; /* a CR or NUL inside */
    }
    char *f[7];
    int nf = 0;
    char *p = line;
    /* fields separated by exactly one space */
    for (;;) {
        if (nf == 7) {
            return -EPROTO;
        }
        f[nf++] = p;
        char *sp = strchr(p, ' ');
        if (!sp) {
            break;
        }
        *sp = '\0';
        p = sp + 1;
    }
    for (int i = 0; i < nf; i++) {
        if (!*f[i]) {
            return -EPROTO;
        }
    }
    memset(out, 0, sizeof *out);
    out->version = 1;
    out->header_len = (uint32_t)n;
    if (strcmp(f[0], "PROXY") != 0) {
        return -EPROTO;
    }
    if (nf == 2 && strcmp(f[1], "UNKNOWN") == 0) {
        out->local = true; /* the receiver uses the real connection's addresses */
        return (long)n;
    }
    if (nf >= 2 && strcmp(f[1], "UNKNOWN") == 0) {
        out->local = true; /* "UNKNOWN" may be followed by anything: ignored, as the spec says */
        return (long)n;
    }
    int af = 0;
    if (nf == 6 && strcmp(f[1], "TCP4") == 0) {
        af = AF_INET;
    } else if (nf == 6 && strcmp(f[1], "TCP6") == 0) {
        af = AF_INET6;
    } else {
        return -EPROTO;
    }
    if (v1_addr(af, f[2], f[4], &out->src) < 0 || v1_addr(af, f[3], f[5], &out->dst) < 0) {
        return -EPROTO;
    }
    out->src_len = out->dst_len = af == AF_INET ? sizeof(struct sockaddr_in)
                                                : sizeof(struct sockaddr_in6);
    return (long)n;
}

static long parse_v2(const unsigned char *b, size_t len, simul_http_proxy_info *out)
{
    if (len < 16) {
        return 0;
    }
    unsigned ver = b[12] >> 4, cmd = b[12] & 0xF, fam = b[13] >> 4, proto = b[13] & 0xF;
    size_t body = (size_t)b[14] << 8 | b[15];
    if (ver != 2 || cmd > 1) {
        return -EPROTO;
    }
    if (16 + body > SIMUL_HTTP_PROXY_V2_MAX) {
        return -EMSGSIZE;
    }
    if (len < 16 + body) {
        return 0;
    }
    memset(out, 0, sizeof *out);
    out->version = 2;
    out->header_len = (uint32_t)(16 + body);
    if (cmd == 0) {
        out->local = true; /* LOCAL: a health check of the proxy's own; the addresses are ours */
        return (long)(16 + body);
    }
    const unsigned char *a = b + 16;
    if (fam == 1 && (proto == 1 || proto == 2)) {
        if (body < 12) {
            return -EPROTO;
        }
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src, *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        out->src_len = out->dst_len = sizeof(struct sockaddr_in);
    } else if (fam == 2 && (proto == 1 || proto == 2)) {
        if (body < 36) {
            return -EPROTO;
        }
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src,
                            *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        out->src_len = out->dst_len = sizeof(struct sockaddr_in6);
    } else if (fam == 0 || fam == 3) {
        /* UNSPEC, or AF_UNIX (216 bytes of paths): kept as the real connection's, as the spec
         * allows ("the receiver must ignore the address information") */
        if (fam == 3 && body < 216) {
            return -EPROTO;
        }
        out->local = true;
    } else {
        return -EPROTO;
    }
    return (long)(16 + body);
}

long simul_http_proxy_parse(const void *buf, size_t len, simul_http_proxy_info *out)
{
    if (!buf || !out) {
        return -EINVAL;
    }
    const unsigned char *b = buf;
    /* Which version: decided by the first bytes; a prefix of both stays undecided. */
    size_t k = len < 12 ? len : 12;
    if (memcmp(b, v2sig, k) == 0) {
        return len < 12 ? 0 : parse_v2(b, len, out);
    }
    k = len < 6 ? len : 6;
    if (memcmp(b, "PROXY ", k) == 0) {
        return len < 6 ? 0 : parse_v1(buf, len, out);
    }
    return -EPROTO;
}

/* ---- trusted proxies --------------------------------------------------------------------- */

/* Parses "a.b.c.d/n" or an IPv6 one, or a bare address (a /32 or /128). */
static int cidr_parse(const char *s, size_t n, http_cidr *c)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) {
        return -EINVAL;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *slash = strchr(tmp, '/');
    long bits = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        bits = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1) {
            return -EINVAL;
        }
    }
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, tmp, c->addr + 12) == 1) {
        /* held as IPv4-mapped IPv6, so one compare serves both */
        c->addr[10] = c->addr[11] = 0xff;
        if (bits > 32) {
            return -EINVAL;
        }
        c->bits = bits < 0 ? 128 : 96 + (int)bits;
    } else if (inet_pton(AF_INET6, tmp, c->addr) == 1) {
        if (bits > 128) {
            return -EINVAL;
        }
        c->bits = bits < 0 ? 128 : (int)bits;
    } else {
        return -EINVAL;
    }
    return 0;
}

int http_trust_parse(const char *list, http_cidr **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!list || !*list) {
        return 0;
    }
    size_t cap = 1;
    for (const char *p = list; *p; p++) {
        cap += *p == ',';
    }
    http_cidr *v = calloc(cap, sizeof *v);
    if (!v) {
        return -ENOMEM;
    }
    size_t k = 0;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        const char *e = p;
        while (*e && *e != ',' && *e != ' ') {
            e++;
        }
        if (e > p && cidr_parse(p, (size_t)(e - p), &v[k++]) < 0) {
            free(v);
            return -EINVAL;
        }
        p = e;
    }
    *out = v;
    *n = k;
    return 0;
}

/* addr as 16 bytes (IPv4 mapped); false for other families. */
static bool addr16(const struct sockaddr_storage *sa, unsigned char a[16])
{
    if (sa->ss_family == AF_INET) {
        memset(a, 0, 10);
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->ss_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

static bool in_list(const http_cidr *v, size_t n, const unsigned char a[16])
{
    for (size_t i = 0; i < n; i++) {
        int bits = v[i].bits, full = bits / 8, rest = bits % 8;
        if (memcmp(v[i].addr, a, (size_t)full) != 0) {
            continue;
        }
        if (rest && ((v[i].addr[full] ^ a[full]) & (0xff << (8 - rest)) & 0xff)) {
            continue;
        }
        return true;
    }
    return false;
}

bool http_trusted(const http_cidr *v, size_t n, const struct sockaddr_storage *sa)
{
    unsigned char a[16];
    return n && addr16(sa, a) && in_list(v, n, a);
}

/* text -> 16 bytes; false if it is not an address. */
static bool text16(const char *t, unsigned char a[16])
{
    memset(a, 0, 16);
    if (inet_pton(AF_INET, t, a + 12) == 1) {
        a[10] = a[11] = 0xff;
        return true;
    }
    return inet_pton(AF_INET6, t, a) == 1;
}

bool http_trusted_text(const http_cidr *v, size_t n, const char *t)
{
    unsigned char a[16];
    return n && text16(t, a) && in_list(v, n, a);
}

void http_addr_text(const struct sockaddr_storage *sa, socklen_t len, char *out, size_t cap)
{
    snprintf(out, cap, "-");
    if (len == 0) {
        return;
    }
    if (sa->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            inet_ntop(AF_INET, (const char *)&in6->sin6_addr + 12, out, (socklen_t)cap);
        } else {
            inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)cap);
        }
    } else if (sa->ss_family == AF_UNIX) {
        snprintf(out, cap, "unix");
    }
}

/* One address from a Forwarded for= value or an X-Forwarded-For entry, into out (a canonical
 * text); false if it is not an IP address ("unknown", "_hidden", junk). Strips quotes, IPv6
 * brackets and ports. */
bool http_forwarded_addr(const char *s, size_t n, char *out, size_t cap)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++, n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        n--;
    }
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++, n -= 2;
    }
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) {
        return false;
    }
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close) {
            return false;
        }
        size_t k = (size_t)(close - s) - 1;
        if (k >= sizeof tmp) {
            return false;
        }
        memcpy(tmp, s + 1, k);
        tmp[k] = '\0';
    } else {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        char *colon = strchr(tmp, ':');
        if (colon && !strchr(colon + 1, ':')) {
            *colon = '\0'; /* "1.2.3.4:80" */
        }
    }
    unsigned char a[16];
    if (!text16(tmp, a)) {
        return false;
    }
    if (a[10] == 0xff && a[11] == 0xff && !memcmp(a, "\0\0\0\0\0\0\0\0\0\0", 10)) {
        inet_ntop(AF_INET, a + 12, out, (socklen_t)cap);
    } else {
        inet_ntop(AF_INET6, a, out, (socklen_t)cap);
    }
    return true;
}
