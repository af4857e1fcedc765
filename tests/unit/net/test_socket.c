/* test_socket.c — task-level sockets over loopback: accept/connect/recv/send round trips, short
 * reads followed by later data (the drained-bit shortcut must not lose an edge), refused
 * connections, cancellation and deadlines on every wait, sendall's progress report, SIGPIPE,
 * UDP datagrams.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include "test_main_helpers.h"

/* A listening socket on 127.0.0.1 with a kernel-chosen port. */
static int listen_any(struct sockaddr_in *addr)
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

static int connect_to(const struct sockaddr_in *addr)
{
    int fd = simul_socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int rc = simul_connect(fd, (const struct sockaddr *)addr, sizeof *addr);
    if (rc < 0) {
        simul_close(fd);
        return rc;
    }
    return fd;
}

/* Echoes until EOF; returns the byte count. */
static int echo_server(void *arg)
{
    int lfd = *(int *)arg;
    int c = simul_accept(lfd, NULL, NULL);
    if (c < 0)
        return c;
    char buf[4096];
    int total = 0;
    for (;;) {
        long n = simul_recv(c, buf, sizeof buf, 0);
        if (n <= 0) {
            simul_close(c);
            return n < 0 ? (int)n : total;
        }
        long s = simul_sendall(c, buf, (size_t)n, NULL);
        if (s < 0) {
            simul_close(c);
            return (int)s;
        }
        total += (int)n;
    }
}

SIMUL_TASK_TEST(echo_round_trips)
{
    (void)arg;
    struct sockaddr_in a;
    int lfd = listen_any(&a);
    simul_task *srv;
    assert_int_equal(simul_task_spawn(&srv, echo_server, &lfd, NULL), 0);
    int fd = connect_to(&a);
    assert_true(fd >= 0);
    int total = 0;
    for (int i = 0; i < 1000; i++) {
        char msg[64], back[64];
        memset(msg, 'a' + i % 26, sizeof msg);
        assert_int_equal(simul_sendall(fd, msg, sizeof msg, NULL), (long)sizeof msg);
        size_t got = 0;
        while (got < sizeof back) {
            long n = simul_recv(fd, back + got, sizeof back - got, 0);
            assert_true(n > 0);
            got += (size_t)n;
        }
        assert_memory_equal(msg, back, sizeof msg);
        total += (int)sizeof msg;
    }
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    char c;
    assert_int_equal(simul_recv(fd, &c, 1, 0), 0); /* server closed after our EOF */
    int res = 0;
    assert_int_equal(simul_task_join(srv, &res), 0);
    assert_int_equal(res, total);
    assert_int_equal(simul_close(fd), 0);
    assert_int_equal(simul_close(lfd), 0);
    return 0;
}

typedef struct trickle {
    int fd;
    int pieces;
} trickle;

static int trickle_sender(void *arg)
{
    trickle *t = arg;
    for (int i = 0; i < t->pieces; i++) {
        assert_int_equal(simul_sleep(0.002), 0);
        char c = (char)i;
        assert_int_equal(simul_send(t->fd, &c, 1, 0), 1);
    }
    return 0;
}

/* Each recv asks for more than is there (a short read marks the fd drained); every later byte
 * must still wake the reader. */
SIMUL_TASK_TEST(short_reads_then_more_data)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    trickle tr = {sv[1], 50};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, trickle_sender, &tr, NULL), 0);
    int got = 0;
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 5.0), 0);
    while (got < tr.pieces) {
        char buf[100];
        long n = simul_recv(sv[0], buf, sizeof buf, 0);
        assert_true(n > 0);
        for (long i = 0; i < n; i++)
            assert_int_equal(buf[i], (char)(got + i));
        got += (int)n;
    }
    assert_int_equal(simul_scope_end(&s), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(simul_close(sv[0]), 0);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

/* Data and the peer's FIN in one edge: the short read must not hide the EOF behind it. */
static int recv_data_then_eof(void *arg)
{
    int fd = *(int *)arg;
    char buf[64];
    if (simul_recv(fd, buf, sizeof buf, 0) != 5)
        return -EIO;
    long n = simul_recv(fd, buf, sizeof buf, 0);
    return n == 0 ? 0 : (n < 0 ? (int)n : -EIO);
}

SIMUL_TASK_TEST(eof_right_after_data)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 2.0), 0);
    simul_task *r;
    assert_int_equal(simul_task_spawn(&r, recv_data_then_eof, &sv[0], NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0); /* the reader is parked, the fd registered */
    assert_int_equal(write(sv[1], "hello", 5), 5);
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
    int res = 1;
    assert_int_equal(simul_task_join(r, &res), 0);
    assert_int_equal(res, 0);
    assert_int_equal(simul_scope_end(&s), 0);
    assert_int_equal(simul_close(sv[0]), 0);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

SIMUL_TASK_TEST(connect_refused)
{
    (void)arg;
    struct sockaddr_in a;
    int lfd = listen_any(&a);
    assert_int_equal(simul_close(lfd), 0); /* the port is now closed */
    assert_int_equal(connect_to(&a), -ECONNREFUSED);
    return 0;
}

SIMUL_TASK_TEST(recv_deadline_and_cancel)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    char c;
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.02), 0);
    double t0 = test_clock();
    assert_int_equal(simul_recv(sv[0], &c, 1, 0), -ETIMEDOUT);
    assert_true(test_clock() - t0 >= 0.018);
    assert_int_equal(simul_scope_end(&s), 1);
    /* The socket still works after the timed-out wait. */
    assert_int_equal(simul_send(sv[1], "k", 1, 0), 1);
    assert_int_equal(simul_recv(sv[0], &c, 1, 0), 1);
    assert_int_equal(c, 'k');
    /* A cancelled task's recv fails even when data is there (cancellation point). */
    assert_int_equal(simul_send(sv[1], "m", 1, 0), 1);
    assert_int_equal(simul_task_cancel(simul_task_current()), 0);
    assert_int_equal(simul_recv(sv[0], &c, 1, 0), -ECANCELED);
    assert_int_equal(simul_close(sv[0]), 0);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

static int accept_forever(void *arg)
{
    return simul_accept(*(int *)arg, NULL, NULL);
}

SIMUL_TASK_TEST(accept_cancelled)
{
    (void)arg;
    struct sockaddr_in a;
    int lfd = listen_any(&a);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, accept_forever, &lfd, NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_task_cancel(t), 0);
    int res = 0;
    assert_int_equal(simul_task_join(t, &res), 0);
    assert_int_equal(res, -ECANCELED);
    assert_int_equal(simul_close(lfd), 0);
    return 0;
}

typedef struct slow_reader {
    int fd;
    size_t total;
} slow_reader;

static int slow_read_all(void *arg)
{
    slow_reader *r = arg;
    static char buf[16384];
    for (;;) {
        assert_int_equal(simul_sleep(0.001), 0);
        long n = simul_recv(r->fd, buf, sizeof buf, 0);
        if (n <= 0)
            return (int)n;
        r->total += (size_t)n;
    }
}

/* sendall to a reader slower than the sender: every byte arrives; a cancel mid-way reports how
 * much the kernel took. */
SIMUL_TASK_TEST(sendall_progress_and_cancel)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    size_t len = 4 << 20;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, 7, len);
    slow_reader r = {sv[1], 0};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, slow_read_all, &r, NULL), 0);
    size_t sent = 1;
    assert_int_equal(simul_sendall(sv[0], big, len, &sent), (long)len);
    assert_int_equal(sent, len);
    /* Now a sendall that is interrupted by a deadline. */
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.01), 0);
    long rc = simul_sendall(sv[0], big, len, &sent);
    assert_int_equal(simul_scope_end(&s), 1);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(sent > 0 && sent < len);
    assert_int_equal(shutdown(sv[0], SHUT_WR), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(r.total, len + sent);
    free(big);
    assert_int_equal(simul_close(sv[0]), 0);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

/* Writing to a peer that is gone is an error code, never SIGPIPE (default action: death). */
SIMUL_TASK_TEST(send_to_closed_peer_no_sigpipe)
{
    (void)arg;
    assert_true(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    struct sockaddr_in a;
    int lfd = listen_any(&a);
    int fd = connect_to(&a);
    assert_true(fd >= 0);
    int c = simul_accept(lfd, NULL, NULL);
    assert_true(c >= 0);
    /* RST the connection: linger 0 then close. */
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    assert_int_equal(simul_close(c), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    long rc = 0;
    for (int i = 0; i < 10 && rc >= 0; i++)
        rc = simul_send(fd, "data", 4, 0);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    assert_int_equal(simul_close(fd), 0);
    assert_int_equal(simul_close(lfd), 0);
    return 0;
}

static int udp_echo(void *arg)
{
    int fd = *(int *)arg;
    char buf[2048];
    struct sockaddr_in from;
    simul_socklen_t flen = sizeof from;
    for (int i = 0; i < 3; i++) {
        long n = simul_recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        if (n < 0)
            return (int)n;
        long s = simul_sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
        if (s != n)
            return -EIO;
    }
    return 0;
}

SIMUL_TASK_TEST(udp_datagrams_keep_boundaries)
{
    (void)arg;
    int sfd = simul_socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(sfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(sfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(sfd, (struct sockaddr *)&a, &len), 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, udp_echo, &sfd, NULL), 0);
    int cfd = simul_socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(cfd >= 0);
    /* Three datagrams sent back to back stay three (short "reads" must not mark it drained). */
    const char *msgs[] = {"one", "second!", "3"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(simul_sendto(cfd, msgs[i], strlen(msgs[i]), 0, (struct sockaddr *)&a,
                                      sizeof a),
                         (long)strlen(msgs[i]));
    for (int i = 0; i < 3; i++) {
        char buf[64];
        simul_scope s;
        assert_int_equal(simul_scope_timeout(&s, 2.0), 0);
        long n = simul_recvfrom(cfd, buf, sizeof buf, 0, NULL, NULL);
        assert_int_equal(simul_scope_end(&s), 0);
        assert_int_equal(n, (long)strlen(msgs[i]));
        assert_memory_equal(buf, msgs[i], (size_t)n);
    }
    int res = -1;
    assert_int_equal(simul_task_join(t, &res), 0);
    assert_int_equal(res, 0);
    assert_int_equal(simul_close(cfd), 0);
    assert_int_equal(simul_close(sfd), 0);
    return 0;
}

static void socket_calls_outside_task(void **state)
{
    (void)state;
    char c;
    assert_int_equal(simul_recv(0, &c, 1, 0), -EPERM);
    assert_int_equal(simul_send(1, &c, 1, 0), -EPERM);
    assert_int_equal(simul_accept(0, NULL, NULL), -EPERM);
    int fd = simul_socket(AF_INET, SOCK_STREAM, 0); /* works without a loop: just a socket */
    assert_true(fd >= 0);
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(simul_close(fd), 0);
    assert_int_equal(simul_socket(12345, SOCK_STREAM, 0), -EAFNOSUPPORT);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(echo_round_trips),
    cmocka_unit_test(short_reads_then_more_data),
    cmocka_unit_test(eof_right_after_data),
    cmocka_unit_test(connect_refused),
    cmocka_unit_test(recv_deadline_and_cancel),
    cmocka_unit_test(accept_cancelled),
    cmocka_unit_test(sendall_progress_and_cancel),
    cmocka_unit_test(send_to_closed_peer_no_sigpipe),
    cmocka_unit_test(udp_datagrams_keep_boundaries),
    cmocka_unit_test(socket_calls_outside_task),
};

SIMUL_TEST_MAIN("test_socket", tests)
