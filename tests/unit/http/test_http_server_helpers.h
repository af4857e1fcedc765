/* test_http_server_helpers.h — plain blocking-socket HTTP clients for the server's tests. They
 * run on a thread of the pool (simul_to_thread), so the server keeps running on the test's loop
 * meanwhile; they report failures by returning the failing line (0 = success), since cmocka's
 * asserts must stay on the test's thread. Receive timeouts only bound waits. */
#ifndef TEST_HTTP_SERVER_HELPERS_H
#define TEST_HTTP_SERVER_HELPERS_H

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "client check failed at line %d: %s\n", __LINE__, #cond);             \
            return __LINE__;                                                                       \
        }                                                                                          \
    } while (0)

typedef struct client {
    int fd;
    char buf[1 << 17];
    size_t len; /* bytes received, not yet parsed */
} client;

typedef struct response {
    int status;
    char head[8192]; /* the head as received, NUL-terminated */
    char *body;      /* malloc'd, NUL-terminated */
    size_t body_len;
    bool eof;        /* the server closed after it */
} response;

static inline int cl_connect(client *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) {
        return -errno;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 20}; /* a bound on every wait, never a measure */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = -errno;
        close(c->fd);
        return e;
    }
    return 0;
}

static inline int cl_sendn(client *c, const char *s, size_t n)
{
    while (n) {
        ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
        if (k < 0) {
            return -errno;
        }
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

static inline int cl_send(client *c, const char *s)
{
    return cl_sendn(c, s, strlen(s));
}

/* Reads more; 0 at EOF, < 0 on error (a timeout included). */
static inline long cl_more(client *c)
{
    if (c->len == sizeof c->buf) {
        return -ENOBUFS;
    }
    ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (k < 0) {
        return -errno;
    }
    c->len += (size_t)k;
    return k;
}

static inline void cl_drop(client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static inline const char *hdr_get(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ') {
                v++;
            }
            const char *e = strstr(v, "\r\n");
            size_t n = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return out;
        }
    }
    return NULL;
}

/* Reads one response (head_req: it answers a HEAD, no body). Returns 0 or a negative errno /
 * -EPROTO. Fills r (free r->body). */
static inline int cl_response(client *c, response *r, bool head_req)
{
    memset(r, 0, sizeof *r);
    char *end;
    for (;;) {
        c->buf[c->len < sizeof c->buf ? c->len : sizeof c->buf - 1] = '\0';
        if (c->len >= 4 && (end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
            break;
        }
        long k = cl_more(c);
        if (k <= 0) {
            return k == 0 ? -ENODATA : (int)k;
        }
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    if (hlen >= sizeof r->head) {
        return -EPROTO;
    }
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    cl_drop(c, hlen);
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1) {
        return -EPROTO;
    }
    char v[64];
    size_t cap = 1 << 20;
    r->body = malloc(cap + 1);
    if (head_req || r->status == 204 || r->status == 304 || r->status < 200) {
        r->body[0] = '\0';
        return 0;
    }
    if (hdr_get(r->head, "Content-Length", v, sizeof v)) {
        size_t n = strtoul(v, NULL, 10);
        while (c->len < n) {
            long k = cl_more(c);
            if (k <= 0) {
                return k == 0 ? -ENODATA : (int)k;
            }
        }
        memcpy(r->body, c->buf, n);
        r->body_len = n;
        cl_drop(c, n);
    } else if (hdr_get(r->head, "Transfer-Encoding", v, sizeof v)) {
        for (;;) {
            char *crlf;
            while (!(crlf = memmem(c->buf, c->len, "\r\n", 2))) {
                long k = cl_more(c);
                if (k <= 0) {
                    return k == 0 ? -ENODATA : (int)k;
                }
            }
            size_t n = strtoul(c->buf, NULL, 16);
            size_t line = (size_t)(crlf - c->buf) + 2;
            while (c->len < line + n + 2) {
                long k = cl_more(c);
                if (k <= 0) {
                    return k == 0 ? -ENODATA : (int)k;
                }
            }
            if (r->body_len + n > cap) {
                return -EMSGSIZE;
            }
            memcpy(r->body + r->body_len, c->buf + line, n);
            r->body_len += n;
            cl_drop(c, line + n + 2);
            if (n == 0) {
                break;
            }
        }
    } else { /* until EOF */
        for (;;) {
            long k = cl_more(c);
            if (k < 0) {
                return (int)k;
            }
            if (k == 0) {
                break;
            }
        }
        memcpy(r->body, c->buf, c->len < cap ? c->len : cap);
        r->body_len = c->len;
        c->len = 0;
        r->eof = true;
    }
    r->body[r->body_len] = '\0';
    return 0;
}

/* Whether the server closed: EOF with nothing more (or a reset). */
static inline bool cl_closed(client *c)
{
    for (;;) {
        long k = cl_more(c);
        if (k == 0 || k == -ECONNRESET) {
            return c->len == 0;
        }
        if (k < 0) {
            return false;
        }
    }
}

/* One request on a fresh connection: its response, and whether the server closed after it. */
static inline int cl_once(int port, const char *req, response *r, bool head_req, bool *closed)
{
    client *c = malloc(sizeof *c);
    int rc = cl_connect(c, port);
    if (rc == 0) {
        rc = cl_send(c, req);
    }
    if (rc == 0) {
        rc = cl_response(c, r, head_req);
    }
    if (rc == 0 && closed) {
        *closed = r->eof || cl_closed(c);
    }
    close(c->fd);
    free(c);
    return rc;
}

static inline void resp_free(response *r)
{
    free(r->body);
    r->body = NULL;
}

/* ---- on the test's side (the loop's thread) ---- */

/* Runs a blocking client fn(f) on a pool thread while the loop serves; its result (0: passed). */
static inline int client_run(int (*fn)(void *), void *f)
{
    int result = -1;
    assert_int_equal(simul_to_thread(fn, f, &result), 0);
    return result;
}

/* The process's open descriptors (-1 if /proc is missing): a leak shows as growth. */
static inline int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        return -1;
    }
    while (readdir(d)) {
        n++;
    }
    closedir(d);
    return n;
}

/* Handlers the apps share: arg as a text/plain 200; a handler that fails (-EIO). */
static inline int h_text(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    return simul_http_response_text(res, 200, arg);
}

static inline int h_fail(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req, (void)res, (void)arg;
    return -EIO;
}

#endif
