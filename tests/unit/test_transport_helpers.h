/* test_transport_helpers.h — a recording protocol and small socket helpers shared by the stream
 * transport tests (test_transport.c, test_transport_faults.c). The recorder logs every callback
 * as one letter (M made, D data, E eof, L lost, P pause_writing, R resume_writing), keeps the
 * bytes it got, and can echo, close, pause or keep a half-open connection on demand. In wrap mode
 * (test_stream_helpers.h) connection_made first slides a wrapping bottom under the transport, as
 * a TLS protocol server does, so the same cases run with every transport on a wrapper. */
#ifndef SIMUL_TEST_TRANSPORT_HELPERS_H
#define SIMUL_TEST_TRANSPORT_HELPERS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "test_stream_helpers.h"

typedef struct rec {
    simul_transport *t;
    char log[4096];
    size_t nlog;
    char *data; /* everything received */
    size_t len, cap;
    int lost_err;
    int lost_count;
    bool in_cb;       /* inside one of our callbacks: connection_lost must never see it */
    bool lost_nested; /* connection_lost ran inside another callback of ours */
    /* behaviour */
    bool echo;          /* write back what arrives */
    bool keep_open;     /* eof_received's answer */
    bool close_on_data; /* close() inside data_received (after echoing) */
    bool abort_on_made; /* abort() inside connection_made */
    bool pause_on_made; /* pause_reading() inside connection_made */
    bool free_on_lost;  /* the context is malloc'd: free it in connection_lost */
    int *lost_counter;  /* incremented in connection_lost, if set */
} rec;

static inline void rec_log(rec *r, char c)
{
    if (r->nlog + 1 < sizeof r->log) {
        r->log[r->nlog++] = c;
        r->log[r->nlog] = '\0';
    }
}

static inline void rec_append(rec *r, const void *data, size_t len)
{
    if (r->len + len > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + len)
            cap *= 2;
        r->data = realloc(r->data, cap);
        assert_non_null(r->data);
        r->cap = cap;
    }
    memcpy(r->data + r->len, data, len);
    r->len += len;
}

/* Slides the wrapping bottom of test_stream_helpers.h under t. */
static inline void transport_wrap(simul_transport *t)
{
    wrap_ctx *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->lower = simul_transport_bottom(t, &w->lctx);
    assert_non_null(w->lower);
    assert_int_equal(simul_transport_replace_bottom(t, &wrap_ops, w), 0);
    void *ctx;
    assert_true(simul_transport_bottom(t, &ctx) == &wrap_ops && ctx == w);
}

static inline void rec_made(simul_transport *t, void *ctx)
{
    rec *r = ctx;
    if (test_mode == TEST_WRAP)
        transport_wrap(t);
    r->t = t;
    rec_log(r, 'M');
    if (r->abort_on_made)
        simul_transport_abort(t);
    if (r->pause_on_made)
        simul_transport_pause_reading(t);
}

static inline void rec_data(void *ctx, const void *data, size_t len)
{
    rec *r = ctx;
    r->in_cb = true;
    if (!r->nlog || r->log[r->nlog - 1] != 'D')
        rec_log(r, 'D');
    rec_append(r, data, len);
    if (r->echo)
        simul_transport_write(r->t, data, len);
    if (r->close_on_data)
        simul_transport_close(r->t);
    r->in_cb = false;
}

static inline bool rec_eof(void *ctx)
{
    rec *r = ctx;
    rec_log(r, 'E');
    return r->keep_open;
}

static inline void rec_lost(void *ctx, int err)
{
    rec *r = ctx;
    rec_log(r, 'L');
    r->lost_err = err;
    r->lost_count++;
    r->lost_nested |= r->in_cb;
    if (r->lost_counter)
        (*r->lost_counter)++;
    if (r->free_on_lost) {
        free(r->data);
        free(r);
    }
}

static inline void rec_pause(void *ctx)
{
    rec_log(ctx, 'P');
}

static inline void rec_resume(void *ctx)
{
    rec_log(ctx, 'R');
}

static const simul_protocol rec_proto = {
    .connection_made = rec_made,
    .data_received = rec_data,
    .eof_received = rec_eof,
    .connection_lost = rec_lost,
    .pause_writing = rec_pause,
    .resume_writing = rec_resume,
};

static inline void rec_free(rec *r)
{
    free(r->data);
    r->data = NULL;
}

/* A server factory: a fresh echoing recorder per connection, freed when it is lost. `arg` points
 * at an int counting lost connections. */
static inline int echo_factory(void *arg, const simul_protocol **proto, void **ctx)
{
    rec *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->echo = true;
    r->free_on_lost = true;
    r->lost_counter = arg;
    *proto = &rec_proto;
    *ctx = r;
    return 0;
}

/* Sleeps in small steps until `cond` holds; fails the test after `secs`. */
#define WAIT_FOR(cond, secs)                                                                       \
    do {                                                                                           \
        double wait_end_ = test_clock() + (secs);                                                  \
        while (!(cond) && test_clock() < wait_end_)                                                \
            assert_int_equal(simul_sleep(0.001), 0);                                               \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for: %s", #cond);                                          \
    } while (0)

/* Lets the loop run a few passes (deferred callbacks, edges already queued). */
static inline void settle(double secs)
{
    assert_int_equal(simul_sleep(secs), 0);
}

/* Receives exactly n bytes (task level). */
static inline void recv_exact(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        long k = simul_recv(fd, (char *)buf + got, n - got, 0);
        if (k <= 0)
            fail_msg("recv_exact: %ld after %zu of %zu bytes", k, got, n);
        got += (size_t)k;
    }
}

static inline void stream_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* A TCP listener on 127.0.0.1 with a kernel-chosen port (task-level accept). */
static inline int tcp_listener(struct sockaddr_in *addr)
{
    int fd = simul_socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof *addr), 0);
    socklen_t len = sizeof *addr;
    assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    assert_int_equal(listen(fd, 128), 0);
    return fd;
}

static inline void port_str(int port, char out[16])
{
    snprintf(out, 16, "%d", port);
}

/* A transport over sv[0] of a fresh socketpair, with `proto` and `ctx`; the test is the peer on
 * sv[1] and closes it. */
static inline simul_transport *transport_pair(int sv[2], const simul_protocol *proto, void *ctx)
{
    stream_pair(sv);
    simul_transport *t = NULL;
    assert_int_equal(simul_connect_accepted_socket(sv[0], proto, ctx, &t), 0);
    return t;
}

/* A TCP server on 127.0.0.1 at a kernel-chosen port; `port` receives the port as a string, as
 * simul_create_connection and simul_tcp_connect take it. */
static inline simul_server *local_server(simul_protocol_factory factory, void *arg, char port[16])
{
    simul_server *srv = NULL;
    assert_int_equal(simul_create_server("127.0.0.1", "0", factory, arg, &srv), 0);
    port_str(simul_server_port(srv), port);
    return srv;
}

/* Closes `srv`, waits until its last connection is gone, and frees it. */
static inline void server_shutdown(simul_server *srv)
{
    assert_int_equal(simul_server_close(srv), 0);
    assert_int_equal(simul_server_wait_closed(srv), 0);
    simul_server_free(srv);
}

#endif /* SIMUL_TEST_TRANSPORT_HELPERS_H */
