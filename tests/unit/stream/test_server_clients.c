/* test_server_clients.c — ending a server's connections (asyncio 3.13 Server.close_clients /
 * abort_clients) for stream and protocol servers, and aborting one stream (transport.abort):
 * peers get every byte written before a close and then EOF, or a reset after an abort; handlers
 * blocked in reads wake at once; connection_lost runs once; wait_closed returns; connections
 * accepted afterwards are served; no fd is left behind. The stream cases run again with every
 * stream on a wrapping bottom (`_wrap`, test_stream_helpers.h), as TLS streams will be.
 */
#include <dirent.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_stream_helpers.h"

#define MAXC 16
#define BIG (4u << 20) /* more than the kernel holds for a small-buffered connection */

/* ---- helpers ------------------------------------------------------------------------------ */

static char *pattern; /* what servers write: byte i is pattern_at(i) */

static unsigned char pattern_at(size_t i)
{
    return (unsigned char)(i * 7 + i / 251);
}

static void pattern_make(void)
{
    pattern = malloc(BIG);
    assert_non_null(pattern);
    for (size_t i = 0; i < BIG; i++)
        pattern[i] = (char)pattern_at(i);
}

/* Keeps the kernel's share of a connection small, so most of a big write stays in our queue. */
static void small_buffers(int fd, int opt)
{
    int v = 4096;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v), 0);
}

/* Sleeps in small steps until *v >= want; fails after 10 s (a loaded machine, not a bound). */
static void wait_count(const int *v, int want)
{
    for (int i = 0; *v < want; i++) {
        if (i > 10000)
            fail_msg("waited 10 s for %d, have %d", want, *v);
        assert_int_equal(simul_sleep(0.001), 0);
    }
}

static void wait_conns(simul_server *srv, size_t want)
{
    for (int i = 0; simul_server_connections(srv) != want; i++) {
        if (i > 10000)
            fail_msg("waited 10 s for %zu connections, have %zu", want,
                     simul_server_connections(srv));
        assert_int_equal(simul_sleep(0.001), 0);
    }
}

static simul_stream *connect_to(simul_server *srv, bool small_rcvbuf)
{
    char p[16];
    snprintf(p, sizeof p, "%d", simul_server_port(srv));
    simul_stream *c = NULL;
    int rc = simul_open_connection("127.0.0.1", p, &c);
    if (rc < 0)
        fail_msg("open_connection: %s", simul_errname(rc));
    if (small_rcvbuf)
        small_buffers(simul_stream_fd(c), SO_RCVBUF);
    return test_wrap(c);
}

/* Reads until EOF or an error (bounded by a 10 s deadline), checking every byte against the
 * pattern. Returns 0 at EOF or the error; *total is the byte count. */
static long read_to_end(simul_stream *c, size_t *total)
{
    static char buf[65536];
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    *total = 0;
    long n;
    while ((n = simul_stream_read(c, buf, sizeof buf)) > 0) {
        for (long i = 0; i < n; i++)
            if ((unsigned char)buf[i] != pattern_at(*total + (size_t)i))
                fail_msg("byte %zu differs", *total + (size_t)i);
        *total += (size_t)n;
    }
    assert_int_equal(simul_scope_end(&sc), 0);
    return n;
}

/* ---- a stream server whose handlers block in a read ---------------------------------------- */

typedef struct hstate {
    simul_server *srv;
    size_t payload; /* written (not drained) before the read */
    bool small;     /* a small send buffer, so most of the payload stays queued */
    int started, in_read, done;
    long read_rc[64];    /* what each handler's blocked read returned */
    int write_after[64]; /* a write after it */
    size_t queued[64];   /* write queue when the read began */
    int close_rc[64];    /* commands: what the handler's own close returned */
    int clients_rc[64];  /* commands: what its close/abort_clients returned */
} hstate;

/* Writes the payload, then reads. A command byte makes it act at once, as a handler that ends
 * its own connection meanwhile: 'c' close own stream then close_clients, 'k' close_clients then
 * close own stream, 'a' abort_clients then close own stream. */
static int blocked_handler(simul_stream *s, void *arg)
{
    hstate *h = arg;
    int me = h->started++;
    assert_true(me < 64);
    if (h->payload) {
        if (h->small)
            small_buffers(simul_stream_fd(s), SO_SNDBUF);
        assert_int_equal(simul_stream_write(s, pattern, h->payload), 0);
    }
    h->queued[me] = simul_stream_write_buffer_size(s);
    h->in_read++;
    char b[16];
    long n = simul_stream_read(s, b, sizeof b);
    h->read_rc[me] = n;
    if (n == 1 && b[0] == 'c') {
        h->close_rc[me] = simul_stream_close(s);
        h->clients_rc[me] = simul_server_close_clients(h->srv);
    } else if (n == 1 && (b[0] == 'k' || b[0] == 'a')) {
        h->clients_rc[me] =
            b[0] == 'k' ? simul_server_close_clients(h->srv) : simul_server_abort_clients(h->srv);
        h->close_rc[me] = simul_stream_close(s);
    } else if (n == 1 && b[0] == 'e') {
        /* an echo, for the connection accepted after close_clients */
        assert_int_equal(simul_stream_write(s, b, 1), 0);
        n = simul_stream_read(s, b, sizeof b);
        h->read_rc[me] = n;
    } else {
        h->write_after[me] = simul_stream_write(s, "x", 1);
    }
    h->done++;
    return 0;
}

static simul_server *start_blocked(hstate *h)
{
    simul_server *srv;
    assert_int_equal(test_start_server("127.0.0.1", "0", blocked_handler, h, &srv), 0);
    h->srv = srv;
    return srv;
}

static int server_wait_closed_task(void *srv)
{
    return simul_server_wait_closed(srv);
}

static void end_server(simul_server *srv)
{
    assert_int_equal(simul_server_close(srv), 0);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    assert_int_equal(simul_server_wait_closed(srv), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    assert_int_equal(simul_server_connections(srv), 0);
    simul_server_free(srv);
}

SIMUL_STREAM_TEST_WRAP(stream_close_clients_flushes_then_eof)
{
    (void)arg;
    int fds0 = test_fd_count();
    pattern_make();
    enum { N = 4 };
    hstate h = {.payload = 1u << 20, .small = true};
    simul_server *srv = start_blocked(&h);
    simul_stream *c[N];
    for (int i = 0; i < N; i++)
        c[i] = connect_to(srv, false); /* a small receive window would make TCP crawl */
    wait_count(&h.in_read, N);
    for (int i = 0; i < N; i++)
        assert_true(h.queued[i] > 0); /* the flush has work to do */
    assert_int_equal(simul_server_close_clients(srv), N);
    /* It does not stop listening (asyncio's does not either). */
    assert_true(simul_server_is_serving(srv));
    for (int i = 0; i < N; i++) {
        size_t total;
        assert_int_equal(read_to_end(c[i], &total), 0); /* EOF after every byte */
        assert_int_equal(total, h.payload);
        assert_int_equal(simul_stream_close(c[i]), 0);
    }
    wait_count(&h.done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(h.read_rc[i], -ECONNABORTED);
        assert_int_equal(h.write_after[i], -EBADF);
    }
    end_server(srv);
    free(pattern);
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

SIMUL_STREAM_TEST_WRAP(stream_abort_clients_resets)
{
    (void)arg;
    int fds0 = test_fd_count();
    pattern_make();
    enum { N = 3 };
    hstate h = {.payload = BIG, .small = true};
    simul_server *srv = start_blocked(&h);
    simul_stream *c[N];
    for (int i = 0; i < N; i++)
        c[i] = connect_to(srv, true);
    wait_count(&h.in_read, N);
    simul_task *w;
    assert_int_equal(simul_task_spawn(&w, server_wait_closed_task, srv, NULL), 0);
    assert_int_equal(simul_server_close(srv), 0); /* wait_closed now waits for the connections */
    assert_int_equal(simul_server_abort_clients(srv), N);
    for (int i = 0; i < N; i++) {
        size_t total;
        assert_int_equal(read_to_end(c[i], &total), -ECONNRESET);
        assert_true(total < h.payload); /* the queue was dropped */
        assert_int_equal(simul_stream_read(c[i], (char[1]){0}, 1), -ECONNRESET); /* sticky */
        assert_int_equal(simul_stream_close(c[i]), 0);
    }
    int res = -1;
    assert_int_equal(simul_task_join(w, &res), 0);
    assert_int_equal(res, 0);
    assert_int_equal(h.done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(h.read_rc[i], -ECONNABORTED);
        assert_int_equal(h.write_after[i], -EBADF);
    }
    /* Nothing left to reach. */
    assert_int_equal(simul_server_abort_clients(srv), 0);
    assert_int_equal(simul_server_close_clients(srv), 0);
    end_server(srv);
    free(pattern);
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

/* Handlers that end their own connection while the others are being ended: close own then
 * close_clients ('c'), close_clients then close own ('k'), abort_clients then close own ('a');
 * first one handler alone (exact counts), then two at once (whichever runs first ends the other's
 * stream too, so only the outcome is fixed: everyone ends, once). */
SIMUL_STREAM_TEST_WRAP(handler_ends_own_stream_meanwhile)
{
    (void)arg;
    int fds0 = test_fd_count();
    const char cmds[] = {'c', 'k', 'a'};
    for (int both = 0; both < 2; both++) {
        for (size_t k = 0; k < sizeof cmds; k++) {
            enum { N = 4 };
            char cmd = cmds[k];
            hstate h = {0};
            simul_server *srv = start_blocked(&h);
            simul_stream *c[N];
            for (int i = 0; i < N; i++) {
                c[i] = connect_to(srv, false);
                wait_count(&h.in_read, i + 1); /* handler i is the one of client i */
            }
            assert_int_equal(simul_stream_write(c[0], &cmd, 1), 0);
            if (both)
                assert_int_equal(simul_stream_write(c[1], &cmd, 1), 0);
            wait_count(&h.done, N);
            if (!both) {
                assert_int_equal(h.read_rc[0], 1);
                assert_int_equal(h.close_rc[0], cmd == 'k' ? -EBADF : 0);
                assert_int_equal(h.clients_rc[0], cmd == 'c' ? N - 1 : N);
            } else {
                int ran = 0;
                for (int i = 0; i < 2; i++) {
                    if (h.read_rc[i] == 1) {
                        ran++;
                        assert_true(h.clients_rc[i] >= N - 2 && h.clients_rc[i] <= N);
                    } else {
                        assert_int_equal(h.read_rc[i], -ECONNABORTED);
                    }
                }
                assert_true(ran >= 1);
            }
            for (int i = both ? 2 : 1; i < N; i++)
                assert_int_equal(h.read_rc[i], -ECONNABORTED);
            for (int i = 0; i < N; i++) {
                size_t total;
                long r = read_to_end(c[i], &total);
                assert_int_equal(total, 0);
                /* close: EOF; abort: a reset. With two commanders either may end the other's
                 * stream first: its own close gives EOF, and a close of a stream whose command
                 * was not read yet gives a reset (the kernel's rule for unread data). */
                long want = (both && i < 2 && (r == 0 || r == -ECONNRESET)) ? r
                            : cmd != 'a'                                    ? 0
                                                                            : -ECONNRESET;
                if (r != want)
                    fail_msg("both %d cmd %c client %d: %s", both, cmd, i, simul_errname((int)r));
                assert_int_equal(simul_stream_close(c[i]), 0);
            }
            end_server(srv);
        }
    }
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

SIMUL_STREAM_TEST_WRAP(connection_after_close_clients_is_served)
{
    (void)arg;
    int fds0 = test_fd_count();
    hstate h = {0};
    simul_server *srv = start_blocked(&h);
    simul_stream *a = connect_to(srv, false);
    wait_count(&h.in_read, 1);
    assert_int_equal(simul_server_close_clients(srv), 1);
    simul_stream *b = connect_to(srv, false);
    wait_count(&h.in_read, 2);
    assert_int_equal(simul_stream_write(b, "e", 1), 0);
    char ch = 0;
    assert_int_equal(simul_stream_read(b, &ch, 1), 1);
    assert_int_equal(ch, 'e');
    size_t total;
    assert_int_equal(read_to_end(a, &total), 0);
    wait_count(&h.done, 1);
    assert_int_equal(simul_server_connections(srv), 1); /* b's handler goes on */
    assert_int_equal(simul_stream_close(b), 0);
    wait_count(&h.done, 2);
    assert_int_equal(h.read_rc[1], 0); /* b's handler saw b's EOF, not a close */
    assert_int_equal(simul_stream_close(a), 0);
    end_server(srv);
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

/* Connections that come and go: the server's notes of them are swept and reused, and only the
 * live ones are reached. */
SIMUL_STREAM_TEST_WRAP(close_clients_after_churn)
{
    (void)arg;
    int fds0 = test_fd_count();
    enum { GONE = 40, LIVE = 5 };
    hstate h = {0};
    simul_server *srv = start_blocked(&h);
    for (int i = 0; i < GONE; i++) {
        simul_stream *c = connect_to(srv, false);
        assert_int_equal(simul_stream_write(c, "e", 1), 0);
        char ch = 0;
        assert_int_equal(simul_stream_read(c, &ch, 1), 1);
        assert_int_equal(simul_stream_close(c), 0);
        if (i % 3 == 0)
            wait_count(&h.done, i + 1); /* some gone before the next accept, some not yet */
    }
    wait_count(&h.done, GONE);
    simul_stream *c[LIVE];
    for (int i = 0; i < LIVE; i++)
        c[i] = connect_to(srv, false);
    wait_count(&h.in_read, GONE + LIVE);
    assert_int_equal(simul_server_close_clients(srv), LIVE);
    for (int i = 0; i < LIVE; i++) {
        size_t total;
        assert_int_equal(read_to_end(c[i], &total), 0);
        assert_int_equal(simul_stream_close(c[i]), 0);
    }
    end_server(srv);
    assert_int_equal(h.done, GONE + LIVE);
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

/* ---- protocol servers ------------------------------------------------------------------------ */

typedef struct pconn {
    simul_transport *t;
    int lost, lost_err;
} pconn;

typedef struct pstate {
    simul_server *srv;
    size_t payload;
    bool small;
    pconn c[MAXC];
    int n, made;
    int clients_rc; /* what the 'k' / 'a' command's close/abort_clients returned */
} pstate;

static pstate *ps;

static void p_made(simul_transport *t, void *ctx)
{
    pconn *c = ctx;
    c->t = t;
    if (test_mode == TEST_WRAP) { /* as a TLS protocol server: a wrapper under it first */
        wrap_ctx *w = calloc(1, sizeof *w);
        assert_non_null(w);
        w->lower = simul_transport_bottom(t, &w->lctx);
        assert_int_equal(simul_transport_replace_bottom(t, &wrap_ops, w), 0);
    }
    if (ps->payload) {
        if (ps->small)
            small_buffers(simul_transport_fd(t), SO_SNDBUF);
        assert_int_equal(simul_transport_write(t, pattern, ps->payload), 0);
        assert_true(simul_transport_get_write_buffer_size(t) > 0);
    }
    ps->made++;
}

/* Commands: 'k' close own transport then close_clients, 'a' the same with abort_clients. */
static void p_data(void *ctx, const void *data, size_t len)
{
    pconn *c = ctx;
    char cmd = len ? *(const char *)data : 0;
    if (cmd == 'k' || cmd == 'a') {
        simul_transport_close(c->t);
        ps->clients_rc =
            cmd == 'k' ? simul_server_close_clients(ps->srv) : simul_server_abort_clients(ps->srv);
    }
}

static void p_lost(void *ctx, int err)
{
    pconn *c = ctx;
    c->lost++;
    c->lost_err = err;
}

static const simul_protocol p_proto = {
    .connection_made = p_made,
    .data_received = p_data,
    .connection_lost = p_lost,
};

static int p_factory(void *arg, const simul_protocol **proto, void **ctx)
{
    pstate *s = arg;
    assert_true(s->n < MAXC);
    *proto = &p_proto;
    *ctx = &s->c[s->n++];
    return 0;
}

static simul_server *start_protocol(pstate *s)
{
    ps = s;
    simul_server *srv;
    assert_int_equal(simul_create_server("127.0.0.1", "0", p_factory, s, &srv), 0);
    s->srv = srv;
    return srv;
}

static void protocol_case(bool abort)
{
    int fds0 = test_fd_count();
    pattern_make();
    enum { N = 4 };
    pstate s = {.payload = abort ? BIG : 1u << 20, .small = true};
    simul_server *srv = start_protocol(&s);
    simul_stream *c[N];
    for (int i = 0; i < N; i++)
        c[i] = connect_to(srv, abort);
    wait_count(&s.made, N);
    wait_conns(srv, N);
    assert_int_equal(abort ? simul_server_abort_clients(srv) : simul_server_close_clients(srv), N);
    for (int i = 0; i < N; i++)
        assert_int_equal(s.c[i].lost, 0); /* connection_lost comes from the loop, later */
    for (int i = 0; i < N; i++) {
        size_t total;
        long r = read_to_end(c[i], &total);
        if (abort) {
            assert_int_equal(r, -ECONNRESET);
            assert_true(total < s.payload);
        } else {
            assert_int_equal(r, 0);
            assert_int_equal(total, s.payload);
        }
        assert_int_equal(simul_stream_close(c[i]), 0);
    }
    end_server(srv);
    for (int i = 0; i < N; i++) {
        assert_int_equal(s.c[i].lost, 1);
        assert_int_equal(s.c[i].lost_err, 0);
    }
    free(pattern);
    assert_int_equal(test_fd_count(), fds0);
}

SIMUL_STREAM_TEST_WRAP(protocol_close_clients_flushes_then_eof)
{
    (void)arg;
    protocol_case(false);
    return 0;
}

SIMUL_STREAM_TEST_WRAP(protocol_abort_clients_resets)
{
    (void)arg;
    protocol_case(true);
    return 0;
}

/* A protocol callback closes its own transport, then ends everyone's, inside data_received. */
SIMUL_STREAM_TEST_WRAP(protocol_callback_ends_own_meanwhile)
{
    (void)arg;
    int fds0 = test_fd_count();
    const char cmds[] = {'k', 'a'};
    for (size_t k = 0; k < sizeof cmds; k++) {
        enum { N = 3 };
        pstate s = {0};
        simul_server *srv = start_protocol(&s);
        simul_stream *c[N];
        for (int i = 0; i < N; i++)
            c[i] = connect_to(srv, false);
        wait_conns(srv, N);
        /* the connection accepted first is s.c[0], but which client that is does not matter */
        assert_int_equal(simul_stream_write(c[0], &cmds[k], 1), 0);
        for (int i = 0; i < N; i++) {
            size_t total;
            long r = read_to_end(c[i], &total);
            assert_true(r == 0 || (cmds[k] == 'a' && r == -ECONNRESET));
            assert_int_equal(simul_stream_close(c[i]), 0);
        }
        end_server(srv);
        assert_int_equal(s.clients_rc, N); /* its own (already closing) too */
        for (int i = 0; i < N; i++) {
            assert_int_equal(s.c[i].lost, 1);
            assert_int_equal(s.c[i].lost_err, 0);
        }
    }
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

/* ---- simul_stream_abort ---------------------------------------------------------------------- */

typedef struct pair {
    simul_stream *srv_side;
    int ready;
} pair;

/* Hands its stream to the test and waits until the test is done with it (the test aborts and
 * closes it; the handler's own close at return is then not needed). */
static int hand_over(simul_stream *s, void *arg)
{
    pair *p = arg;
    p->srv_side = s;
    p->ready = 1;
    return simul_stream_wait_closed(s) == 0 ? 0 : -1;
}

static int reader_task(void *arg)
{
    char b[16];
    return (int)simul_stream_read(arg, b, sizeof b);
}

static int drain_task(void *arg)
{
    return simul_stream_drain(arg);
}

static int closer_task(void *arg)
{
    return simul_stream_close(arg);
}

static int wait_closed_task(void *arg)
{
    return simul_stream_wait_closed(arg);
}

static void abort_cb(void *s)
{
    assert_int_equal(simul_stream_abort(s), 0);
}

static int join_rc(simul_task *t)
{
    int res = INT_MIN;
    assert_int_equal(simul_task_join(t, &res), 0);
    return res;
}

SIMUL_STREAM_TEST_WRAP(stream_abort_resets_and_drops_queue)
{
    (void)arg;
    int fds0 = test_fd_count();
    pattern_make();
    /* A client stream aborting towards a server's handler, and the other way round. */
    simul_stream *a, *b;
    simul_server *srv;
    pair p = {0};
    assert_int_equal(test_start_server("127.0.0.1", "0", hand_over, &p, &srv), 0);
    a = connect_to(srv, true);
    wait_count(&p.ready, 1);
    b = p.srv_side;
    small_buffers(simul_stream_fd(a), SO_SNDBUF);
    small_buffers(simul_stream_fd(b), SO_RCVBUF);
    assert_int_equal(simul_stream_write(a, pattern, BIG), 0);
    assert_true(simul_stream_write_buffer_size(a) > 0);
    simul_task *w;
    assert_int_equal(simul_task_spawn(&w, wait_closed_task, a, NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_stream_abort(a), 0);
    assert_int_equal(join_rc(w), 0); /* wait_closed: the fd is gone */
    /* The handle stays, closing: every call is refused without touching the old fd number. */
    assert_true(simul_stream_is_closing(a));
    assert_int_equal(simul_stream_write_buffer_size(a), 0);
    assert_int_equal(simul_stream_fd(a), -EBADF);
    assert_int_equal(simul_stream_write(a, "x", 1), -EBADF);
    assert_int_equal(simul_stream_read(a, (char[1]){0}, 1), -EBADF);
    assert_int_equal(simul_stream_drain(a), -EBADF);
    assert_int_equal(simul_stream_write_eof(a), -EBADF);
    struct sockaddr_storage ss;
    assert_int_equal(simul_stream_peername(a, &ss), -EBADF);
    assert_int_equal(simul_stream_abort(a), 0); /* idempotent */
    /* The peer gets what the kernel had, then the reset: nothing after it. */
    size_t total;
    assert_int_equal(read_to_end(b, &total), -ECONNRESET);
    assert_true(total < BIG);
    assert_int_equal(simul_stream_read(b, (char[1]){0}, 1), -ECONNRESET);
    /* Close frees what abort left, once, and reports nothing lost (abort already did). */
    assert_int_equal(simul_stream_close(a), 0);
    assert_int_equal(simul_stream_abort(b), 0); /* ends the handler's wait_closed */
    assert_int_equal(simul_server_close(srv), 0);
    assert_int_equal(simul_server_wait_closed(srv), 0); /* the handler's return freed b */
    simul_server_free(srv);
    assert_int_equal(simul_stream_abort(NULL), -EINVAL);
    free(pattern);
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

SIMUL_STREAM_TEST_WRAP(stream_abort_wakes_reader_drainer_closer)
{
    (void)arg;
    int fds0 = test_fd_count();
    pattern_make();
    int sv[2];
    /* Reader and drainer on one stream; a closer waiting for its flush on another. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    simul_stream *s, *peer;
    assert_int_equal(simul_stream_from_fd(sv[0], &s), 0);
    test_wrap(s);
    assert_int_equal(simul_stream_from_fd(sv[1], &peer), 0);
    test_wrap(peer);
    assert_int_equal(simul_stream_write(s, pattern, BIG), 0); /* above the high-water mark */
    simul_task *r, *d;
    assert_int_equal(simul_task_spawn(&r, reader_task, s, NULL), 0);
    assert_int_equal(simul_task_spawn(&d, drain_task, s, NULL), 0);
    assert_int_equal(simul_sleep(0.02), 0);
    assert_false(simul_task_done(r));
    assert_false(simul_task_done(d));
    double t0 = test_clock();
    assert_int_equal(simul_stream_abort(s), 0);
    assert_int_equal(join_rc(r), -ECONNABORTED);
    assert_int_equal(join_rc(d), -ECONNABORTED);
    assert_true(test_clock() - t0 < 2.0); /* woken, not timed out */
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(simul_stream_close(s = peer), 0);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(simul_stream_from_fd(sv[0], &s), 0);
    test_wrap(s);
    assert_int_equal(simul_stream_from_fd(sv[1], &peer), 0);
    test_wrap(peer);
    assert_int_equal(simul_stream_write(s, pattern, BIG), 0);
    simul_task *c;
    assert_int_equal(simul_task_spawn(&c, closer_task, s, NULL), 0);
    assert_int_equal(simul_sleep(0.02), 0);
    assert_false(simul_task_done(c)); /* the peer does not read: the flush waits */
    assert_true(simul_stream_is_closing(s));
    assert_int_equal(simul_stream_abort(s), 0);  /* the handle is still the closer's */
    assert_int_equal(join_rc(c), -ECONNABORTED); /* its queued data was lost to the abort */
    /* s is gone now (close freed it); the peer reads what the kernel had, then the end. */
    size_t total;
    long rr = read_to_end(peer, &total);
    assert_true(rr == 0 || rr == -ECONNRESET);
    assert_true(total < BIG);
    assert_int_equal(simul_stream_close(peer), 0);

    /* From a callback (no task), and on a pipe (no reset there: the reader sees EOF). */
    int pp[2];
    assert_int_equal(pipe2(pp, O_NONBLOCK | O_CLOEXEC), 0);
    simul_stream *w, *rd;
    assert_int_equal(simul_stream_from_fd(pp[1], &w), 0);
    test_wrap(w);
    assert_int_equal(simul_stream_from_fd(pp[0], &rd), 0);
    test_wrap(rd);
    assert_int_equal(simul_stream_write(w, "abc", 3), 0);
    assert_int_equal(simul_call_soon(abort_cb, w, NULL), 0);
    char b[8];
    assert_int_equal(simul_stream_read(rd, b, sizeof b), 3);
    assert_int_equal(simul_stream_read(rd, b, sizeof b), 0);
    assert_true(simul_stream_is_closing(w));
    assert_int_equal(simul_stream_close(w), 0);
    assert_int_equal(simul_stream_close(rd), 0);
    free(pattern);
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

/* ---- -ECONNABORTED: "someone ended this stream" apart from "you were cancelled" ------------- */

enum { W_READ, W_DRAIN, W_SENDFILE, W_BOTTOM, W_KINDS };
enum { H_CLOSE, H_ABORT, H_CANCEL, H_CANCEL_THEN_ABORT, H_ABORT_THEN_CANCEL, H_HOWS };

typedef struct waiter {
    simul_stream *s;
    int kind;
    int file;    /* W_SENDFILE: a memfd holding the pattern */
    size_t sent; /* W_SENDFILE: what the call reports sent */
    size_t got;  /* W_READ: bytes read (readexactly keeps what it had on error) */
} waiter;

static int waiter_task(void *arg)
{
    waiter *w = arg;
    switch (w->kind) {
    case W_READ: {
        char b[8]; /* more than the peer sends: the call parks holding part of it */
        long r = simul_stream_readexactly(w->s, b, sizeof b, &w->got);
        return (int)r;
    }
    case W_DRAIN:
        return simul_stream_drain(w->s);
    case W_SENDFILE:
        return (int)simul_stream_sendfile(w->s, w->file, 0, BIG, &w->sent);
    default:
        /* By hand, as an integration drives its bottom: wait may return 0 early (try again). */
        for (;;) {
            int rc = simul_stream_wait_bottom(w->s, SIMUL_STREAM_READ);
            if (rc < 0)
                return rc;
            void *ctx;
            const simul_stream_ops *ops = simul_stream_bottom(w->s, &ctx);
            char c;
            long n = ops->read(ctx, &c, 1);
            if (n != -EAGAIN)
                return 1000 + (int)n; /* the peer sent nothing: never */
        }
    }
}

/* One call of each kind parked on a stream, ended by another task's close or abort (it hears
 * -ECONNABORTED), or by a cancellation of its own task, alone or in the same pass as an abort
 * (it hears -ECANCELED). Nothing is lost: a close still delivers every byte written, and a
 * cancelled read leaves the bytes it had gathered for the next read. */
static void waiter_case(int kind, int how)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    small_buffers(sv[0], SO_SNDBUF);
    small_buffers(sv[1], SO_RCVBUF);
    simul_stream *s, *peer;
    assert_int_equal(simul_stream_from_fd(sv[0], &s), 0);
    test_wrap(s);
    assert_int_equal(simul_stream_from_fd(sv[1], &peer), 0);
    test_wrap(peer);
    waiter w = {.s = s, .kind = kind, .file = -1};
    size_t written = 0; /* by the stream's writes, before the waiter */
    if (kind == W_DRAIN) {
        assert_int_equal(simul_stream_write(s, pattern, BIG), 0); /* above the high-water mark */
        written = BIG;
    } else if (kind == W_SENDFILE) {
        w.file = memfd_create("waiter", MFD_CLOEXEC);
        assert_true(w.file >= 0);
        assert_int_equal(write(w.file, pattern, BIG), (ssize_t)BIG);
    } else if (kind == W_READ) {
        assert_int_equal(simul_stream_write(peer, "abc", 3), 0);
    }
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, waiter_task, &w, NULL), 0);
    /* Parked: the reader has gathered the 3 bytes, the others wait for room or data. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(simul_yield(), 0);
    if (simul_task_done(t))
        fail_msg("kind %d how %d: the call ended with %d before anyone ended it", kind, how,
                 join_rc(t));
    int want = how == H_CLOSE || how == H_ABORT ? -ECONNABORTED : -ECANCELED;
    simul_task *closer = NULL;
    switch (how) {
    case H_CLOSE: /* may wait for its flush: in a task of its own, the peer reads meanwhile */
        assert_int_equal(simul_task_spawn(&closer, closer_task, s, NULL), 0);
        break;
    case H_ABORT:
        assert_int_equal(simul_stream_abort(s), 0);
        break;
    case H_CANCEL:
        assert_int_equal(simul_task_cancel(t), 0);
        break;
    case H_CANCEL_THEN_ABORT:
        assert_int_equal(simul_task_cancel(t), 0);
        assert_int_equal(simul_stream_abort(s), 0);
        break;
    case H_ABORT_THEN_CANCEL:
        assert_int_equal(simul_stream_abort(s), 0);
        assert_int_equal(simul_task_cancel(t), 0);
        break;
    }
    int rc = join_rc(t);
    if (rc != want)
        fail_msg("kind %d how %d: %d (%s), want %d", kind, how, rc, simul_errname(rc), want);
    if (kind == W_SENDFILE)
        assert_true(w.sent < BIG);
    if (kind == W_READ)
        assert_int_equal(w.got, 0); /* nothing taken on error */
    bool aborted = how != H_CLOSE && how != H_CANCEL;
    if (how == H_CANCEL) {
        /* The stream is intact: what the reader had gathered is still there. */
        if (kind == W_READ) {
            char b[3];
            assert_int_equal(simul_stream_readexactly(s, b, 3, NULL), 3);
            assert_memory_equal(b, "abc", 3);
        }
        assert_int_equal(simul_task_spawn(&closer, closer_task, s, NULL), 0);
    }
    if (aborted) {
        assert_int_equal(simul_stream_read(s, (char[1]){0}, 1), -EBADF);
        assert_int_equal(simul_stream_close(s), 0);
    }
    size_t total;
    long r = read_to_end(peer, &total);
    if (aborted) {
        assert_true(r == 0 || r == -ECONNRESET);
    } else {
        /* Every byte the stream took reached the peer before EOF. */
        assert_int_equal(r, 0);
        assert_int_equal(total, kind == W_SENDFILE ? w.sent : written);
        assert_int_equal(join_rc(closer), 0);
    }
    assert_int_equal(simul_stream_close(peer), 0);
    if (w.file >= 0)
        close(w.file);
}

SIMUL_STREAM_TEST_WRAP(other_task_ends_calls_with_econnaborted)
{
    (void)arg;
    int fds0 = test_fd_count();
    pattern_make();
    for (int kind = 0; kind < W_KINDS; kind++)
        for (int how = 0; how < H_HOWS; how++)
            waiter_case(kind, how);
    free(pattern);
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

/* A handler that aborts its own stream and returns: the server closes (frees) it, once. */
static int aborting_handler(simul_stream *s, void *arg)
{
    (void)arg;
    char b[8];
    assert_int_equal(simul_stream_read(s, b, sizeof b), 2); /* the client is up */
    assert_int_equal(simul_stream_write(s, "bye", 3), 0);
    assert_int_equal(simul_stream_abort(s), 0);
    return 0;
}

SIMUL_STREAM_TEST_WRAP(handler_abort_then_return)
{
    (void)arg;
    int fds0 = test_fd_count();
    simul_server *srv;
    assert_int_equal(test_start_server("127.0.0.1", "0", aborting_handler, NULL, &srv), 0);
    for (int i = 0; i < 3; i++) {
        simul_stream *c = connect_to(srv, false);
        assert_int_equal(simul_stream_write(c, "go", 2), 0);
        char b[8];
        long r;
        do /* "bye" may or may not arrive before the reset */
            r = simul_stream_read(c, b, sizeof b);
        while (r > 0);
        assert_int_equal(r, -ECONNRESET);
        assert_int_equal(simul_stream_close(c), 0);
    }
    end_server(srv);
    assert_int_equal(test_fd_count(), fds0);
    return 0;
}

SIMUL_TASK_TEST(bad_arguments)
{
    (void)arg;
    assert_int_equal(simul_server_close_clients(NULL), -EINVAL);
    assert_int_equal(simul_server_abort_clients(NULL), -EINVAL);
    assert_int_equal(simul_stream_abort(NULL), -EINVAL);
    hstate h = {0};
    simul_server *srv = start_blocked(&h);
    assert_int_equal(simul_server_close_clients(srv), 0); /* nothing to reach */
    assert_int_equal(simul_server_abort_clients(srv), 0);
    end_server(srv);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(stream_close_clients_flushes_then_eof),
    cmocka_unit_test(stream_close_clients_flushes_then_eof_wrap),
    cmocka_unit_test(stream_abort_clients_resets),
    cmocka_unit_test(stream_abort_clients_resets_wrap),
    cmocka_unit_test(handler_ends_own_stream_meanwhile),
    cmocka_unit_test(handler_ends_own_stream_meanwhile_wrap),
    cmocka_unit_test(connection_after_close_clients_is_served),
    cmocka_unit_test(connection_after_close_clients_is_served_wrap),
    cmocka_unit_test(close_clients_after_churn),
    cmocka_unit_test(close_clients_after_churn_wrap),
    cmocka_unit_test(protocol_close_clients_flushes_then_eof),
    cmocka_unit_test(protocol_close_clients_flushes_then_eof_wrap),
    cmocka_unit_test(protocol_abort_clients_resets),
    cmocka_unit_test(protocol_abort_clients_resets_wrap),
    cmocka_unit_test(protocol_callback_ends_own_meanwhile),
    cmocka_unit_test(protocol_callback_ends_own_meanwhile_wrap),
    cmocka_unit_test(stream_abort_resets_and_drops_queue),
    cmocka_unit_test(stream_abort_resets_and_drops_queue_wrap),
    cmocka_unit_test(stream_abort_wakes_reader_drainer_closer),
    cmocka_unit_test(stream_abort_wakes_reader_drainer_closer_wrap),
    cmocka_unit_test(other_task_ends_calls_with_econnaborted),
    cmocka_unit_test(other_task_ends_calls_with_econnaborted_wrap),
    cmocka_unit_test(handler_abort_then_return),
    cmocka_unit_test(handler_abort_then_return_wrap),
    cmocka_unit_test(bad_arguments),
};

SIMUL_TEST_MAIN("test_server_clients", tests)
