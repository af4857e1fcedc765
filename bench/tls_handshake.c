/* tls_handshake — the load client of bench/run_tls.sh's handshake benchmark: TLS handshakes per
 * second against any TLS server (simul's echo_streams --tls-cert, nginx), with libssl directly.
 * K connections in flight on one epoll loop, each doing connect, handshake, close_notify, read to
 * the peer's EOF (which takes in the server's session tickets), abortive close (no TIME_WAIT to
 * run the ports out), then the next. --resume offers the latest ticket received (full mode
 * offers none); every handshake that did not resume in that mode is counted (resumed=).
 *
 *   tls_handshake --host H --port P [--connections K] [--seconds T] [--resume]
 *
 * Prints key=value lines: handshakes, seconds, handshakes_per_s, resumed, errors, version,
 * cipher, client_cpu_pct. Exits 1 if any connection failed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CONNECTING, HANDSHAKE, SHUTDOWN };

typedef struct conn {
    int fd, state;
    SSL *ssl;
} conn;

static SSL_CTX *ctx;
static SSL_SESSION *last; /* the latest session ticket received (--resume) */
static bool resume;
static struct sockaddr_in addr;
static int ep;
static long handshakes, resumed, errors;
static char version[32] = "none", cipher[64] = "none";

/* A session ticket arrived: keep the newest (we own the reference we return 1 for). */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    if (!resume)
        return 0;
    if (last)
        SSL_SESSION_free(last);
    last = sess;
    return 1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void watch(conn *c, int op, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) {
        perror("epoll_ctl");
        exit(1);
    }
}

static void start(conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("socket");
        exit(1);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    if (resume && last)
        SSL_set_session(c->ssl, last);
    c->state = CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        perror("connect");
        exit(1);
    }
    watch(c, EPOLL_CTL_ADD, EPOLLOUT);
}

static void finish(conn *c, bool ok)
{
    if (!ok)
        errors++;
    /* Abortive close: an RST instead of a FIN, so no TIME_WAIT piles up on either side. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    SSL_free(c->ssl);
    close(c->fd); /* also leaves the epoll set */
}

/* Advances one connection; returns false when it is finished. want: the events it waits for. */
static bool step(conn *c, unsigned *want)
{
    int rc, err;
    switch (c->state) {
    case CONNECTING: {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr) {
            fprintf(stderr, "tls_handshake: connect: %s\n", strerror(soerr));
            finish(c, false);
            return false;
        }
        c->state = HANDSHAKE;
    } /* fall through */
    case HANDSHAKE:
        rc = SSL_connect(c->ssl);
        if (rc != 1) {
            err = SSL_get_error(c->ssl, rc);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                *want = err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
                return true;
            }
            fprintf(stderr, "tls_handshake: handshake failed: ");
            ERR_print_errors_fp(stderr);
            fputc('\n', stderr);
            finish(c, false);
            return false;
        }
        handshakes++;
        if (SSL_session_reused(c->ssl))
            resumed++;
        if (handshakes == 1) {
            snprintf(version, sizeof version, "%s", SSL_get_version(c->ssl));
            snprintf(cipher, sizeof cipher, "%s", SSL_get_cipher_name(c->ssl));
        }
        SSL_shutdown(c->ssl); /* our close_notify; then read to the peer's end (and tickets) */
        c->state = SHUTDOWN;
        /* fall through */
    case SHUTDOWN:
        for (;;) {
            char buf[512];
            rc = SSL_read(c->ssl, buf, sizeof buf);
            if (rc > 0)
                continue;
            err = SSL_get_error(c->ssl, rc);
            if (err == SSL_ERROR_WANT_READ) {
                *want = EPOLLIN;
                return true;
            }
            /* close_notify, or EOF / reset after it: either way the server is done with us. */
            ERR_clear_error();
            finish(c, true);
            return false;
        }
    }
    return false;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0, nconn = 8;
    double seconds = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--resume")) {
            resume = true;
        } else if (v && !strcmp(a, "--host")) {
            host = v, i++;
        } else if (v && !strcmp(a, "--port")) {
            port = atoi(v), i++;
        } else if (v && !strcmp(a, "--connections")) {
            nconn = atoi(v), i++;
        } else if (v && !strcmp(a, "--seconds")) {
            seconds = atof(v), i++;
        } else {
            fprintf(stderr, "usage: %s --host H --port P [--connections K] [--seconds T] [--resume]\n",
                    argv[0]);
            return 2;
        }
    }
    if (port <= 0 || nconn <= 0 || inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "tls_handshake: need --port and a numeric IPv4 --host\n");
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the server's cost is what is measured */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);

    ep = epoll_create1(EPOLL_CLOEXEC);
    conn *cs = calloc((size_t)nconn, sizeof *cs);
    struct epoll_event *evs = calloc((size_t)nconn, sizeof *evs);
    double t0 = now(), c0 = cpu_seconds(), deadline = t0 + seconds;
    int live = 0;
    for (int i = 0; i < nconn; i++, live++)
        start(&cs[i]);
    bool stopping = false;
    while (live > 0) {
        int n = epoll_wait(ep, evs, nconn, 1000);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        if (!stopping && now() >= deadline)
            stopping = true;
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            unsigned want = 0;
            if (step(c, &want)) {
                watch(c, EPOLL_CTL_MOD, want);
            } else if (stopping) {
                live--;
            } else {
                start(c);
            }
        }
    }
    double t = now() - t0, cpu = cpu_seconds() - c0;
    printf("handshakes=%ld\nseconds=%.3f\nhandshakes_per_s=%.0f\nresumed=%ld\nerrors=%ld\n"
           "version=%s\ncipher=%s\nclient_cpu_pct=%.0f\n",
           handshakes, t, handshakes / t, resumed, errors, version, cipher, cpu / t * 100);
    if (last)
        SSL_SESSION_free(last);
    SSL_CTX_free(ctx);
    free(cs);
    free(evs);
    return errors ? 1 : 0;
}
