/* test_udp.c — datagram endpoints as protocols: echo over UDP with boundaries kept (empty
 * datagrams too), connected endpoints and their address rules, ICMP port unreachable reported
 * through error_received, a send queue that fills (AF_UNIX datagrams push back) with
 * pause/resume and a bound, close flushing and abort dropping that queue, and bad arguments.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "test_main_helpers.h"

#define WAIT_FOR(cond, secs)                                                                       \
    do {                                                                                           \
        double wait_end_ = test_clock() + (secs);                                                  \
        while (!(cond) && test_clock() < wait_end_)                                                \
            assert_int_equal(simul_sleep(0.001), 0);                                               \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for: %s", #cond);                                          \
    } while (0)

typedef struct drec {
    simul_datagram_transport *t;
    char log[256];
    size_t nlog;
    int count; /* datagrams received */
    size_t bytes;
    char last[2048];
    size_t last_len;
    struct sockaddr_storage from;
    simul_socklen_t fromlen;
    int errors, last_error;
    int lost, lost_err;
    bool in_cb, lost_nested;
    bool echo; /* send each datagram back to where it came from */
    bool close_on_data;
    bool paused;
    int pauses, resumes;
} drec;

static void dlog(drec *r, char c)
{
    if (r->nlog + 1 < sizeof r->log) {
        r->log[r->nlog++] = c;
        r->log[r->nlog] = '\0';
    }
}

static void d_made(simul_datagram_transport *t, void *ctx)
{
    drec *r = ctx;
    r->t = t;
    dlog(r, 'M');
}

static void d_received(void *ctx, const void *data, size_t len, const struct sockaddr *addr,
                       simul_socklen_t addrlen)
{
    drec *r = ctx;
    r->in_cb = true;
    r->count++;
    r->bytes += len;
    assert_true(len <= sizeof r->last);
    memcpy(r->last, data, len);
    r->last_len = len;
    memcpy(&r->from, addr, addrlen);
    r->fromlen = addrlen;
    if (r->echo)
        assert_int_equal(simul_datagram_transport_sendto(r->t, data, len, addr, addrlen), 0);
    if (r->close_on_data)
        simul_datagram_transport_close(r->t);
    r->in_cb = false;
}

static void d_error(void *ctx, int err)
{
    drec *r = ctx;
    dlog(r, 'X');
    r->errors++;
    r->last_error = err;
}

static void d_lost(void *ctx, int err)
{
    drec *r = ctx;
    dlog(r, 'L');
    r->lost++;
    r->lost_err = err;
    r->lost_nested |= r->in_cb;
}

static void d_pause(void *ctx)
{
    drec *r = ctx;
    dlog(r, 'P');
    r->paused = true;
    r->pauses++;
}

static void d_resume(void *ctx)
{
    drec *r = ctx;
    dlog(r, 'R');
    r->paused = false;
    r->resumes++;
}

static const simul_datagram_protocol dproto = {
    .connection_made = d_made,
    .datagram_received = d_received,
    .error_received = d_error,
    .connection_lost = d_lost,
    .pause_writing = d_pause,
    .resume_writing = d_resume,
};

static int local_port(simul_datagram_transport *t)
{
    struct sockaddr_storage ss;
    assert_int_equal(simul_datagram_transport_sockname(t, &ss), (int)sizeof(struct sockaddr_in));
    return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
}

SIMUL_TASK_TEST(udp_echo_keeps_boundaries)
{
    (void)arg;
    drec s = {.echo = true}, c = {0};
    simul_datagram_transport *st, *ct;
    assert_int_equal(
        simul_create_datagram_endpoint("127.0.0.1", "0", NULL, NULL, 0, &dproto, &s, &st), 0);
    assert_string_equal(s.log, "M");
    int port = local_port(st);
    assert_true(port > 0);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    assert_int_equal(
        simul_create_datagram_endpoint(NULL, NULL, "127.0.0.1", ps, 0, &dproto, &c, &ct), 0);
    struct sockaddr_storage peer;
    assert_int_equal(simul_datagram_transport_peername(ct, &peer),
                     (int)sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(((const struct sockaddr_in *)&peer)->sin_port), port);
    assert_int_equal(simul_datagram_transport_peername(st, &peer), -ENOTCONN);
    for (int i = 0; i < 200; i++) {
        char msg[1500];
        size_t n = (size_t)(i * 53) % sizeof msg; /* 0 included: empty datagrams exist */
        for (size_t k = 0; k < n; k++)
            msg[k] = (char)(i ^ k);
        assert_int_equal(simul_datagram_transport_sendto(ct, msg, n, NULL, 0), 0);
        WAIT_FOR(c.count == i + 1, 5);
        assert_int_equal(c.last_len, n);
        assert_memory_equal(c.last, msg, n);
    }
    assert_int_equal(s.count, 200);
    assert_int_equal(simul_datagram_transport_get_write_buffer_size(ct), 0);
    assert_int_equal(local_port(ct),
                     ntohs(((struct sockaddr_in *)&s.from)->sin_port)); /* s saw c's address */
    simul_datagram_transport_close(ct);
    simul_datagram_transport_close(st);
    assert_true(simul_datagram_transport_is_closing(st));
    assert_int_equal(
        simul_datagram_transport_sendto(st, "x", 1, (struct sockaddr *)&s.from, s.fromlen), -EPIPE);
    assert_int_equal(c.lost + s.lost, 0); /* from the loop, later */
    WAIT_FOR(c.lost == 1 && s.lost == 1, 5);
    assert_string_equal(c.log, "ML");
    assert_int_equal(c.lost_err, 0);
    return 0;
}

SIMUL_TASK_TEST(address_rules)
{
    (void)arg;
    drec u = {0}, k = {0};
    simul_datagram_transport *ut, *kt;
    assert_int_equal(
        simul_create_datagram_endpoint("127.0.0.1", "0", NULL, NULL, 0, &dproto, &u, &ut), 0);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", local_port(ut));
    assert_int_equal(simul_datagram_transport_sendto(ut, "x", 1, NULL, 0), -EDESTADDRREQ);
    assert_int_equal(
        simul_create_datagram_endpoint(NULL, NULL, "127.0.0.1", ps, 0, &dproto, &k, &kt), 0);
    struct sockaddr_in same = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)local_port(ut)),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in other = same;
    other.sin_port = htons(9);
    assert_int_equal(
        simul_datagram_transport_sendto(kt, "y", 1, (struct sockaddr *)&other, sizeof other),
        -EISCONN);
    assert_int_equal(
        simul_datagram_transport_sendto(kt, "z", 1, (struct sockaddr *)&same, sizeof same), 0);
    WAIT_FOR(u.count == 1, 5);
    assert_memory_equal(u.last, "z", 1);
    /* Too big for UDP: the send's own error comes back, not through error_received. */
    static char huge[70000];
    assert_int_equal(simul_datagram_transport_sendto(kt, huge, sizeof huge, NULL, 0), -EMSGSIZE);
    assert_int_equal(k.errors, 0);
    simul_datagram_transport_abort(ut);
    simul_datagram_transport_abort(kt);
    WAIT_FOR(u.lost == 1 && k.lost == 1, 5);
    return 0;
}

/* A connected endpoint to a port nobody listens on: the ICMP comes back as error_received
 * (ECONNREFUSED), and the endpoint stays usable. */
SIMUL_TASK_TEST(port_unreachable_is_error_received)
{
    (void)arg;
    int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(probe, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(probe, (struct sockaddr *)&a, &alen), 0);
    close(probe); /* the port is free now: nothing answers there */
    char ps[16];
    snprintf(ps, sizeof ps, "%d", ntohs(a.sin_port));
    drec c = {0};
    simul_datagram_transport *ct;
    assert_int_equal(
        simul_create_datagram_endpoint(NULL, NULL, "127.0.0.1", ps, 0, &dproto, &c, &ct), 0);
    int rc = simul_datagram_transport_sendto(ct, "hello?", 6, NULL, 0);
    assert_int_equal(rc, 0);
    /* The refusal shows up either through error_received or as the next send's result. */
    double end = test_clock() + 5;
    int direct = 0;
    while (c.errors == 0 && !direct && test_clock() < end) {
        assert_int_equal(simul_sleep(0.005), 0);
        if (c.errors == 0) {
            rc = simul_datagram_transport_sendto(ct, "again", 5, NULL, 0);
            direct = rc == -ECONNREFUSED;
            if (!direct)
                assert_int_equal(rc, 0);
        }
    }
    assert_true(c.errors > 0 || direct);
    if (c.errors)
        assert_int_equal(c.last_error, -ECONNREFUSED);
    assert_false(simul_datagram_transport_is_closing(ct));
    assert_int_equal(c.lost, 0);
    simul_datagram_transport_close(ct);
    WAIT_FOR(c.lost == 1, 5);
    assert_int_equal(c.lost_err, 0);
    return 0;
}

/* AF_UNIX datagrams push back when the receiver does not read: the queue fills, pause_writing
 * comes above the high-water mark, the queue stays bounded, everything arrives in order once
 * the receiver reads, and close sends what is queued before connection_lost. */
SIMUL_TASK_TEST(send_queue_flow_control)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    drec r = {0};
    simul_datagram_transport *t;
    assert_int_equal(simul_create_datagram_endpoint_sock(sv[0], &dproto, &r, &t), 0);
    assert_int_equal(simul_datagram_transport_set_write_buffer_limits(t, 10, 20), -EINVAL);
    assert_int_equal(simul_datagram_transport_set_write_buffer_limits(t, 8000, 2000), 0);
    enum { SIZE = 1000 };
    int sent = 0;
    size_t max_q = 0;
    while (!r.paused) {
        char msg[SIZE];
        memset(msg, 0, sizeof msg);
        memcpy(msg, &sent, sizeof sent);
        assert_int_equal(simul_datagram_transport_sendto(t, msg, sizeof msg, NULL, 0), 0);
        sent++;
        size_t q = simul_datagram_transport_get_write_buffer_size(t);
        if (q > max_q)
            max_q = q;
        assert_true(sent < 10000);
    }
    assert_true(max_q > 8000);
    assert_true(max_q <= 8000 + SIZE + 8);
    assert_string_equal(r.log, "MP");
    /* Queue a few more (the protocol ignores pause here), then close: they all go first. */
    for (int i = 0; i < 5; i++) {
        char msg[SIZE] = {0};
        memcpy(msg, &sent, sizeof sent);
        assert_int_equal(simul_datagram_transport_sendto(t, msg, sizeof msg, NULL, 0), 0);
        sent++;
    }
    simul_datagram_transport_close(t);
    assert_int_equal(r.lost, 0);
    for (int i = 0; i < sent; i++) {
        char msg[SIZE + 10];
        long n = simul_recv(sv[1], msg, sizeof msg, 0);
        assert_int_equal(n, SIZE);
        int seq;
        memcpy(&seq, msg, sizeof seq);
        assert_int_equal(seq, i);
    }
    WAIT_FOR(r.lost == 1, 5);
    assert_string_equal(r.log, "MPRL");
    assert_int_equal(r.lost_err, 0);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

SIMUL_TASK_TEST(abort_drops_queue_and_close_inside_callback)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    drec r = {0};
    simul_datagram_transport *t;
    assert_int_equal(simul_create_datagram_endpoint_sock(sv[0], &dproto, &r, &t), 0);
    int sent = 0;
    while (simul_datagram_transport_get_write_buffer_size(t) == 0) {
        assert_int_equal(simul_datagram_transport_sendto(t, "0123456789", 10, NULL, 0), 0);
        sent++;
        assert_true(sent < 100000);
    }
    simul_datagram_transport_abort(t);
    assert_int_equal(simul_datagram_transport_get_write_buffer_size(t), 0);
    WAIT_FOR(r.lost == 1, 5);
    int got = 0;
    char buf[16];
    while (recv(sv[1], buf, sizeof buf, MSG_DONTWAIT) == 10)
        got++;
    assert_int_equal(got, sent - 1); /* the queued one was dropped */
    assert_int_equal(simul_close(sv[1]), 0);

    /* close() inside datagram_received: lost comes later, from the loop. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    drec r2 = {.close_on_data = true};
    assert_int_equal(simul_create_datagram_endpoint_sock(sv[0], &dproto, &r2, &t), 0);
    assert_int_equal(send(sv[1], "a", 1, 0), 1);
    assert_int_equal(send(sv[1], "b", 1, 0), 1);
    WAIT_FOR(r2.lost == 1, 5);
    assert_false(r2.lost_nested);
    assert_int_equal(r2.count, 1); /* nothing after close */
    assert_string_equal(r2.log, "ML");
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

SIMUL_TASK_TEST(bad_arguments)
{
    (void)arg;
    drec r = {0};
    simul_datagram_transport *t = (void *)&r;
    assert_int_equal(simul_create_datagram_endpoint(NULL, NULL, NULL, NULL, 0, &dproto, &r, &t),
                     -EINVAL);
    assert_null(t);
    static const simul_datagram_protocol none = {0};
    assert_int_equal(simul_create_datagram_endpoint("127.0.0.1", "0", NULL, NULL, 0, &none, &r, &t),
                     -EINVAL);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(simul_create_datagram_endpoint_sock(s, &dproto, &r, &t), -EPROTOTYPE);
    close(s);
    assert_int_equal(simul_create_datagram_endpoint_sock(-1, &dproto, &r, &t), -EBADF);
    assert_int_equal(r.nlog, 0);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(udp_echo_keeps_boundaries),
    cmocka_unit_test(address_rules),
    cmocka_unit_test(port_unreachable_is_error_received),
    cmocka_unit_test(send_queue_flow_control),
    cmocka_unit_test(abort_drops_queue_and_close_inside_callback),
    cmocka_unit_test(bad_arguments),
};

SIMUL_TEST_MAIN("test_udp", tests)
