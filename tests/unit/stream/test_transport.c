/* test_transport.c — stream transports and protocols: callback order, echo over socketpairs and
 * TCP (create_server / create_connection), writes that go out at once, writev, half-close both
 * ways, pause/resume of reading, the buffered protocol, set_protocol, Unix servers, names and
 * limits, and re-entrant close/abort from inside callbacks. Cases with the recording protocol run
 * again with every transport on a wrapping bottom (`_wrap`), slid under it in connection_made.
 */
#include <stdlib.h>
#include <sys/stat.h>

#include "test_transport_helpers.h"

/* Echo over a socketpair; the peer's EOF closes the transport (eof_received returns false):
 * made, data..., eof, lost(0), in that order, lost once. */
SIMUL_STREAM_TEST_WRAP(echo_and_callback_order)
{
    (void)arg;
    int sv[2];
    rec r = {.echo = true};
    simul_transport *t = transport_pair(sv, &rec_proto, &r);
    assert_ptr_equal(r.t, t);
    assert_string_equal(r.log, "M"); /* connection_made ran before the call returned */
    assert_int_equal(simul_transport_fd(t), sv[0]);
    size_t total = 0;
    for (int i = 1; i <= 200; i++) {
        char msg[300], back[300];
        size_t n = (size_t)(i % 300) + 1;
        memset(msg, 'a' + i % 26, n);
        assert_int_equal(simul_sendall(sv[1], msg, n, NULL), (long)n);
        recv_exact(sv[1], back, n);
        assert_memory_equal(msg, back, n);
        total += n;
    }
    assert_int_equal(r.len, total);
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
    WAIT_FOR(r.lost_count == 1, 5);
    assert_string_equal(r.log, "MDEL");
    assert_int_equal(r.lost_err, 0);
    char c;
    assert_int_equal(simul_recv(sv[1], &c, 1, 0), 0); /* the transport closed its socket */
    settle(0.01);
    assert_int_equal(r.lost_count, 1);
    assert_false(r.lost_nested);
    rec_free(&r);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

/* A write with nothing queued goes to the socket inside the call. */
SIMUL_STREAM_TEST_WRAP(write_goes_out_at_once)
{
    (void)arg;
    int sv[2];
    rec r = {0};
    simul_transport *t = transport_pair(sv, &rec_proto, &r);
    assert_int_equal(simul_transport_write(t, "hello", 5), 0);
    assert_int_equal(simul_transport_get_write_buffer_size(t), 0);
    char buf[5];
    assert_int_equal(recv(sv[1], buf, 5, MSG_DONTWAIT), 5); /* already there: no loop pass */
    assert_memory_equal(buf, "hello", 5);
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    assert_int_equal(simul_transport_writev(t, iov, 3), 0);
    assert_int_equal(recv(sv[1], buf, 5, MSG_DONTWAIT), 5);
    assert_memory_equal(buf, "abcde", 5);
    assert_int_equal(simul_transport_write(t, "", 0), 0);
    assert_int_equal(simul_transport_writev(t, iov, -1), -EINVAL);
    simul_transport_close(t);
    assert_true(simul_transport_is_closing(t));
    assert_int_equal(simul_transport_write(t, "x", 1), -EPIPE);
    assert_int_equal(r.lost_count, 0); /* never inside close() */
    WAIT_FOR(r.lost_count == 1, 5);
    assert_string_equal(r.log, "ML");
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

/* writev with more queued data than the socket takes: order kept across queue and iovecs. */
SIMUL_STREAM_TEST_WRAP(writev_queues_in_order)
{
    (void)arg;
    int sv[2];
    stream_pair(sv);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    rec r = {0};
    simul_transport *t;
    assert_int_equal(simul_connect_accepted_socket(sv[0], &rec_proto, &r, &t), 0);
    size_t total = 1 << 20;
    unsigned char *src = malloc(total), *dst = malloc(total);
    for (size_t i = 0; i < total; i++)
        src[i] = (unsigned char)(i * 7 + i / 251);
    size_t off = 0;
    while (off < total) {
        struct iovec iov[4];
        size_t piece = 1000;
        int n = 0;
        for (; n < 4 && off < total; n++) {
            size_t l = total - off < piece ? total - off : piece;
            iov[n].iov_base = src + off;
            iov[n].iov_len = l;
            off += l;
            piece += 777;
        }
        assert_int_equal(simul_transport_writev(t, iov, n), 0);
    }
    assert_true(simul_transport_get_write_buffer_size(t) > 0);
    assert_true(strchr(r.log, 'P') != NULL); /* 1 MiB queued: above 64 KiB */
    simul_transport_close(t);                /* flushes first */
    recv_exact(sv[1], dst, total);
    assert_memory_equal(src, dst, total);
    char c;
    assert_int_equal(simul_recv(sv[1], &c, 1, 0), 0);
    WAIT_FOR(r.lost_count == 1, 5);
    assert_int_equal(r.lost_err, 0);
    assert_string_equal(r.log, "MPRL");
    free(src);
    free(dst);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

/* TCP: create_server with a factory, create_connection, many messages both ways, clean close,
 * wait_closed returns once the server's connection is gone. */
SIMUL_STREAM_TEST_WRAP(tcp_server_and_connection)
{
    (void)arg;
    int server_lost = 0;
    char ps[16];
    simul_server *srv = local_server(echo_factory, &server_lost, ps);
    int port = simul_server_port(srv);
    assert_true(port > 0);
    rec c = {0};
    simul_transport *t;
    assert_int_equal(simul_create_connection("127.0.0.1", ps, &rec_proto, &c, &t), 0);
    assert_string_equal(c.log, "M");
    struct sockaddr_storage ps_, ms_;
    assert_int_equal(simul_transport_peername(t, &ps_), (int)sizeof(struct sockaddr_in));
    const struct sockaddr_in *peer = (const struct sockaddr_in *)&ps_;
    assert_int_equal(ntohs(peer->sin_port), port);
    assert_int_equal(simul_transport_sockname(t, &ms_), (int)sizeof(struct sockaddr_in));
    const struct sockaddr_in *me = (const struct sockaddr_in *)&ms_;
    assert_int_equal(me->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    size_t total = 0;
    char msg[5000];
    for (int i = 0; i < 500; i++) {
        size_t n = (size_t)(i * 37) % sizeof msg + 1;
        for (size_t k = 0; k < n; k++)
            msg[k] = (char)(i + k);
        assert_int_equal(simul_transport_write(t, msg, n), 0);
        total += n;
        WAIT_FOR(c.len == total, 5); /* one message in flight at a time */
        assert_memory_equal(c.data + total - n, msg, n);
    }
    WAIT_FOR(simul_server_connections(srv) == 1, 5);
    simul_transport_close(t);
    WAIT_FOR(c.lost_count == 1 && server_lost == 1, 5);
    assert_int_equal(c.lost_err, 0);
    assert_int_equal(simul_server_close(srv), 0);
    assert_int_equal(simul_server_wait_closed(srv), 0);
    assert_int_equal(simul_server_connections(srv), 0);
    simul_server_free(srv);
    rec_free(&c);
    return 0;
}

/* The options variant: two servers share a port with SIMUL_LISTEN_REUSEPORT; both serve. */
SIMUL_TASK_TEST(server_opts_reuseport)
{
    (void)arg;
    int lost_a = 0, lost_b = 0;
    simul_protocol_server_opts o = {.host = "127.0.0.1", .flags = SIMUL_LISTEN_REUSEPORT};
    simul_server *a, *b;
    assert_int_equal(simul_create_server_opts(&o, echo_factory, &lost_a, &a), 0);
    char ps[16];
    port_str(simul_server_port(a), ps);
    o.port = ps;
    o.backlog = 16;
    assert_int_equal(simul_create_server_opts(&o, echo_factory, &lost_b, &b), 0);
    assert_int_equal(simul_server_port(b), simul_server_port(a));
    assert_int_equal(simul_create_server_opts(NULL, echo_factory, NULL, &b), -EINVAL);
    rec *c = calloc(8, sizeof *c); /* 8 recorders are too big for a task stack */
    for (int i = 0; i < 8; i++) {
        simul_transport *t;
        assert_int_equal(simul_create_connection("127.0.0.1", ps, &rec_proto, &c[i], &t), 0);
        assert_int_equal(simul_transport_write(t, "hi", 2), 0);
    }
    for (int i = 0; i < 8; i++) {
        WAIT_FOR(c[i].len == 2, 5);
        simul_transport_close(c[i].t);
    }
    WAIT_FOR(lost_a + lost_b == 8, 5);
    for (int i = 0; i < 8; i++) {
        WAIT_FOR(c[i].lost_count == 1, 5);
        rec_free(&c[i]);
    }
    free(c);
    simul_server_free(a); /* closes, and goes once its connections are gone */
    simul_server_free(b);
    return 0;
}

static char unix_dir[64];

SIMUL_STREAM_TEST_WRAP(unix_server_and_connection)
{
    (void)arg;
    strcpy(unix_dir, "/tmp/simul_tp_XXXXXX");
    assert_non_null(mkdtemp(unix_dir));
    char path[128];
    snprintf(path, sizeof path, "%s/sock", unix_dir);
    int server_lost = 0;
    simul_server *srv;
    assert_int_equal(simul_create_unix_server(path, echo_factory, &server_lost, &srv), 0);
    rec c = {0};
    simul_transport *t;
    assert_int_equal(simul_create_unix_connection(path, &rec_proto, &c, &t), 0);
    assert_int_equal(simul_transport_write(t, "over unix", 9), 0);
    WAIT_FOR(c.len == 9, 5);
    assert_memory_equal(c.data, "over unix", 9);
    simul_transport_close(t);
    WAIT_FOR(c.lost_count == 1 && server_lost == 1, 5);
    server_shutdown(srv);
    rec_free(&c);
    rmdir(unix_dir);
    return 0;
}

SIMUL_TASK_TEST(create_connection_refused)
{
    (void)arg;
    struct sockaddr_in a;
    int lfd = tcp_listener(&a);
    assert_int_equal(simul_close(lfd), 0); /* nobody listens there now */
    char ps[16];
    port_str(ntohs(a.sin_port), ps);
    rec c = {0};
    simul_transport *t = (simul_transport *)&c;
    assert_int_equal(simul_create_connection("127.0.0.1", ps, &rec_proto, &c, &t), -ECONNREFUSED);
    assert_null(t);
    settle(0.01);
    assert_int_equal(c.nlog, 0); /* no callback at all */
    assert_int_equal(simul_create_connection("127.0.0.1", ps, NULL, &c, &t), -EINVAL);
    return 0;
}

/* eof_received returning true keeps the transport half-open: it still writes, and closes when
 * told. */
SIMUL_STREAM_TEST_WRAP(eof_received_keeps_half_open)
{
    (void)arg;
    int sv[2];
    rec r = {.keep_open = true};
    simul_transport *t = transport_pair(sv, &rec_proto, &r);
    assert_int_equal(simul_sendall(sv[1], "question", 8, NULL), 8);
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
    WAIT_FOR(strchr(r.log, 'E') != NULL, 5);
    assert_string_equal(r.log, "MDE");
    assert_false(simul_transport_is_closing(t));
    assert_false(simul_transport_is_reading(t));
    settle(0.02);
    assert_int_equal(r.lost_count, 0);
    assert_int_equal(simul_transport_write(t, "answer", 6), 0);
    char buf[6];
    recv_exact(sv[1], buf, 6);
    assert_memory_equal(buf, "answer", 6);
    simul_transport_close(t);
    WAIT_FOR(r.lost_count == 1, 5);
    assert_string_equal(r.log, "MDEL");
    char c;
    assert_int_equal(simul_recv(sv[1], &c, 1, 0), 0);
    rec_free(&r);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

/* write_eof sends queued data, then the FIN; reading goes on. */
SIMUL_STREAM_TEST_WRAP(write_eof_then_keep_reading)
{
    (void)arg;
    int sv[2];
    rec r = {0};
    simul_transport *t = transport_pair(sv, &rec_proto, &r);
    size_t big = 512 * 1024;
    char *data = malloc(big), *back = malloc(big);
    memset(data, 'z', big);
    assert_int_equal(simul_transport_write(t, data, big), 0);
    assert_true(simul_transport_get_write_buffer_size(t) > 0); /* some of it waits */
    assert_int_equal(simul_transport_write_eof(t), 0);
    assert_int_equal(simul_transport_write_eof(t), 0); /* again: nothing more */
    assert_int_equal(simul_transport_write(t, "x", 1), -EPIPE);
    recv_exact(sv[1], back, big);
    assert_memory_equal(data, back, big);
    char c;
    assert_int_equal(simul_recv(sv[1], &c, 1, 0), 0); /* the FIN after the data */
    /* The other direction still works. */
    assert_int_equal(simul_sendall(sv[1], "still here", 10, NULL), 10);
    WAIT_FOR(r.len == 10, 5);
    assert_memory_equal(r.data, "still here", 10);
    assert_int_equal(simul_close(sv[1]), 0);
    WAIT_FOR(r.lost_count == 1, 5);
    assert_int_equal(r.lost_err, 0);
    assert_true(strstr(r.log, "EL") != NULL);
    free(data);
    free(back);
    rec_free(&r);
    return 0;
}

/* pause_reading stops data_received; resume delivers what arrived meanwhile even though no new
 * edge comes after the resume (the edge came, and was ignored, while paused). */
SIMUL_STREAM_TEST_WRAP(pause_reading_then_resume_without_new_edge)
{
    (void)arg;
    int sv[2];
    rec r = {0};
    simul_transport *t = transport_pair(sv, &rec_proto, &r);
    /* Drain the fd once so the READ bit is known clear and only a real edge can set it. */
    assert_int_equal(simul_sendall(sv[1], "1", 1, NULL), 1);
    WAIT_FOR(r.len == 1, 5);
    settle(0.01);
    assert_true(simul_transport_is_reading(t));
    simul_transport_pause_reading(t);
    assert_false(simul_transport_is_reading(t));
    assert_int_equal(simul_sendall(sv[1], "234", 3, NULL), 3);
    settle(0.05);
    assert_int_equal(r.len, 1); /* held in the kernel */
    simul_transport_resume_reading(t);
    assert_int_equal(r.len, 1); /* not inside the call */
    WAIT_FOR(r.len == 4, 5);    /* nothing new was sent */
    assert_memory_equal(r.data, "1234", 4);
    /* Pausing inside connection_made: nothing at all until resumed, then everything. */
    int sv2[2];
    stream_pair(sv2);
    assert_int_equal(simul_sendall(sv2[1], "early", 5, NULL), 5);
    rec r2 = {.pause_on_made = true};
    simul_transport *t2;
    assert_int_equal(simul_connect_accepted_socket(sv2[0], &rec_proto, &r2, &t2), 0);
    settle(0.05);
    assert_int_equal(r2.len, 0);
    simul_transport_resume_reading(t2);
    simul_transport_resume_reading(t2); /* twice: harmless */
    WAIT_FOR(r2.len == 5, 5);
    assert_memory_equal(r2.data, "early", 5);
    simul_transport_close(t);
    simul_transport_close(t2);
    simul_transport_resume_reading(t); /* closing: no-op */
    WAIT_FOR(r.lost_count == 1 && r2.lost_count == 1, 5);
    rec_free(&r);
    rec_free(&r2);
    assert_int_equal(simul_close(sv[1]), 0);
    assert_int_equal(simul_close(sv2[1]), 0);
    return 0;
}

/* ---- buffered protocol ----------------------------------------------------------------- */

typedef struct bufrec {
    simul_transport *t;
    unsigned char store[100000];
    size_t len;
    size_t window; /* how much get_buffer offers */
    int gets, updates, lost;
    size_t last_hint;
} bufrec;

static int br_get(void *ctx, size_t hint, void **buf, size_t *len)
{
    bufrec *b = ctx;
    b->gets++;
    b->last_hint = hint;
    size_t room = sizeof b->store - b->len;
    *buf = b->store + b->len;
    *len = room < b->window ? room : b->window;
    return 0;
}

static void br_updated(void *ctx, size_t n)
{
    bufrec *b = ctx;
    b->updates++;
    b->len += n;
}

static void br_made(simul_transport *t, void *ctx)
{
    ((bufrec *)ctx)->t = t;
}

static void br_lost(void *ctx, int err)
{
    (void)err;
    ((bufrec *)ctx)->lost++;
}

static const simul_protocol buffered_proto = {
    .connection_made = br_made,
    .get_buffer = br_get,
    .buffer_updated = br_updated,
    .connection_lost = br_lost,
};

SIMUL_TASK_TEST(buffered_protocol_reads_into_its_buffer)
{
    (void)arg;
    int sv[2];
    bufrec *b = calloc(1, sizeof *b);
    b->window = 7; /* small windows: many reads, each straight into the store */
    simul_transport *t = transport_pair(sv, &buffered_proto, b);
    static unsigned char msg[50000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i % 251);
    assert_int_equal(simul_sendall(sv[1], msg, sizeof msg, NULL), (long)sizeof msg);
    WAIT_FOR(b->len == sizeof msg, 10);
    assert_memory_equal(b->store, msg, sizeof msg);
    assert_true(b->updates >= (int)(sizeof msg / 7));
    assert_true(b->last_hint > 0);
    simul_transport_close(t);
    WAIT_FOR(b->lost == 1, 5);
    free(b);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

static int br_get_fails(void *ctx, size_t hint, void **buf, size_t *len)
{
    (void)ctx;
    (void)hint;
    (void)buf;
    (void)len;
    return -ENOSPC;
}

static void rec_lost_only(void *ctx, int err)
{
    rec_lost(ctx, err);
}

/* A get_buffer that fails ends the connection with its error. */
SIMUL_TASK_TEST(buffered_protocol_get_buffer_error)
{
    (void)arg;
    static const simul_protocol p = {
        .get_buffer = br_get_fails,
        .buffer_updated = br_updated,
        .connection_lost = rec_lost_only,
    };
    int sv[2];
    rec r = {0};
    transport_pair(sv, &p, &r);
    assert_int_equal(simul_sendall(sv[1], "x", 1, NULL), 1);
    WAIT_FOR(r.lost_count == 1, 5);
    assert_int_equal(r.lost_err, -ENOSPC);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

/* ---- re-entrancy ------------------------------------------------------------------------ */

/* close() inside data_received: the echo written just before still goes out, then EOF; lost
 * comes later, not inside data_received. */
SIMUL_STREAM_TEST_WRAP(close_inside_data_received)
{
    (void)arg;
    int sv[2];
    rec r = {.echo = true, .close_on_data = true};
    transport_pair(sv, &rec_proto, &r);
    assert_int_equal(simul_sendall(sv[1], "bye", 3, NULL), 3);
    char buf[3];
    recv_exact(sv[1], buf, 3);
    assert_memory_equal(buf, "bye", 3);
    char c;
    assert_int_equal(simul_recv(sv[1], &c, 1, 0), 0);
    WAIT_FOR(r.lost_count == 1, 5);
    assert_false(r.lost_nested);
    assert_string_equal(r.log, "MDL");
    assert_int_equal(r.lost_err, 0);
    rec_free(&r);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

/* abort() inside connection_made: no data is delivered; lost(0) follows from the loop; the
 * transport stays valid until then. */
SIMUL_STREAM_TEST_WRAP(abort_inside_connection_made)
{
    (void)arg;
    int sv[2];
    stream_pair(sv);
    assert_int_equal(simul_sendall(sv[1], "ignored", 7, NULL), 7);
    rec r = {.abort_on_made = true};
    simul_transport *t;
    assert_int_equal(simul_connect_accepted_socket(sv[0], &rec_proto, &r, &t), 0);
    assert_true(simul_transport_is_closing(t));
    assert_int_equal(simul_transport_write(t, "x", 1), -EPIPE);
    assert_int_equal(simul_transport_write_eof(t), -EPIPE);
    simul_transport_abort(t); /* again: harmless */
    simul_transport_close(t);
    assert_string_equal(r.log, "M");
    WAIT_FOR(r.lost_count == 1, 5);
    assert_string_equal(r.log, "ML");
    settle(0.01);
    assert_int_equal(r.lost_count, 1);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

/* A protocol that switches the connection to another one on its first data. */
static rec switch_target;
static void switching_data(void *ctx, const void *data, size_t len)
{
    rec *r = ctx;
    rec_append(r, data, len);
    simul_transport_set_protocol(r->t, &rec_proto, &switch_target);
}

SIMUL_STREAM_TEST_WRAP(set_protocol_moves_later_callbacks)
{
    (void)arg;
    static const simul_protocol first = {
        .connection_made = rec_made,
        .data_received = switching_data,
        .connection_lost = rec_lost_only,
    };
    memset(&switch_target, 0, sizeof switch_target);
    int sv[2];
    rec r = {0};
    simul_transport *t = transport_pair(sv, &first, &r);
    switch_target.t = t;
    assert_int_equal(simul_sendall(sv[1], "one", 3, NULL), 3);
    WAIT_FOR(r.len == 3, 5);
    void *ctx = NULL;
    assert_ptr_equal(simul_transport_get_protocol(t, &ctx), &rec_proto);
    assert_ptr_equal(ctx, &switch_target);
    assert_int_equal(simul_sendall(sv[1], "two", 3, NULL), 3);
    WAIT_FOR(switch_target.len == 3, 5);
    assert_memory_equal(switch_target.data, "two", 3);
    simul_transport_close(t);
    WAIT_FOR(switch_target.lost_count == 1, 5);
    assert_int_equal(r.lost_count, 0); /* the old protocol hears nothing more */
    assert_int_equal(r.len, 3);
    rec_free(&r);
    rec_free(&switch_target);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

SIMUL_TASK_TEST(limits_and_bad_arguments)
{
    (void)arg;
    int sv[2];
    stream_pair(sv);
    rec r = {0};
    simul_transport *t;
    static const simul_protocol empty = {0};
    assert_int_equal(simul_connect_accepted_socket(sv[0], &empty, &r, &t), -EINVAL);
    assert_int_equal(simul_connect_accepted_socket(sv[0], &rec_proto, &r, NULL), -EINVAL);
    int ufd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_int_equal(simul_connect_accepted_socket(ufd, &rec_proto, &r, &t), -EPROTOTYPE);
    close(ufd);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(simul_connect_accepted_socket(pfd[0], &rec_proto, &r, &t), -ENOTSOCK);
    close(pfd[0]);
    close(pfd[1]);
    assert_int_equal(simul_connect_accepted_socket(-1, &rec_proto, &r, &t), -EBADF);
    assert_int_equal(r.nlog, 0);
    assert_int_equal(simul_connect_accepted_socket(sv[0], &rec_proto, &r, &t), 0);
    size_t lo = 0, hi = 0;
    simul_transport_get_write_buffer_limits(t, &lo, &hi);
    assert_int_equal(lo, 16384);
    assert_int_equal(hi, 65536);
    assert_int_equal(simul_transport_set_write_buffer_limits(t, 10, 20), -EINVAL);
    assert_int_equal(simul_transport_set_write_buffer_limits(t, 0, 0), 0);
    /* A socket that does not take more: the write queues, and with high = 0 that pauses. */
    int tiny = 1;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &tiny, sizeof tiny);
    static char blob[300000];
    memset(blob, 1, sizeof blob);
    assert_int_equal(simul_transport_write(t, blob, sizeof blob), 0);
    assert_true(simul_transport_get_write_buffer_size(t) > 0);
    assert_string_equal(r.log, "MP");
    simul_transport_abort(t); /* drops the queue */
    assert_int_equal(simul_transport_get_write_buffer_size(t), 0);
    WAIT_FOR(r.lost_count == 1, 5);
    assert_string_equal(r.log, "MPL"); /* no resume_writing on abort */
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

static void calls_outside_loop(void **state)
{
    (void)state;
    int sv[2];
    stream_pair(sv);
    rec r = {0};
    simul_transport *t;
    assert_int_equal(simul_connect_accepted_socket(sv[0], &rec_proto, &r, &t), -ENXIO);
    assert_int_equal(r.nlog, 0);
    close(sv[0]);
    close(sv[1]);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(echo_and_callback_order),
    cmocka_unit_test(echo_and_callback_order_wrap),
    cmocka_unit_test(write_goes_out_at_once),
    cmocka_unit_test(write_goes_out_at_once_wrap),
    cmocka_unit_test(writev_queues_in_order),
    cmocka_unit_test(writev_queues_in_order_wrap),
    cmocka_unit_test(tcp_server_and_connection),
    cmocka_unit_test(tcp_server_and_connection_wrap),
    cmocka_unit_test(server_opts_reuseport),
    cmocka_unit_test(unix_server_and_connection),
    cmocka_unit_test(unix_server_and_connection_wrap),
    cmocka_unit_test(create_connection_refused),
    cmocka_unit_test(eof_received_keeps_half_open),
    cmocka_unit_test(eof_received_keeps_half_open_wrap),
    cmocka_unit_test(write_eof_then_keep_reading),
    cmocka_unit_test(write_eof_then_keep_reading_wrap),
    cmocka_unit_test(pause_reading_then_resume_without_new_edge),
    cmocka_unit_test(pause_reading_then_resume_without_new_edge_wrap),
    cmocka_unit_test(buffered_protocol_reads_into_its_buffer),
    cmocka_unit_test(buffered_protocol_get_buffer_error),
    cmocka_unit_test(close_inside_data_received),
    cmocka_unit_test(close_inside_data_received_wrap),
    cmocka_unit_test(abort_inside_connection_made),
    cmocka_unit_test(abort_inside_connection_made_wrap),
    cmocka_unit_test(set_protocol_moves_later_callbacks),
    cmocka_unit_test(set_protocol_moves_later_callbacks_wrap),
    cmocka_unit_test(limits_and_bad_arguments),
    cmocka_unit_test(calls_outside_loop),
};

SIMUL_TEST_MAIN("test_transport", tests)
