/* test_sendfile.c — simul_sock_sendfile and simul_stream_sendfile: an 8 MiB file reaches a slow
 * reader byte for byte, offsets and counts (also past the end of the file) are honoured, a peer
 * that goes away is an error with the partial count and no SIGPIPE, cancellation and deadlines
 * stop a transfer with the exact count the peer got, a stream's queued writes go out before the
 * file and later ones after it, a pipe works as destination, and bad fds are clear errors.
 */
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "test_main_helpers.h"

/* Byte i of the test file: no short period, so a misplaced chunk shows. */
static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

/* A temporary file of `size` pattern bytes, already unlinked; its fd (read-only). */
static int make_file(size_t size)
{
    char path[] = "/tmp/simul-sendfile-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    unsigned char *buf = malloc(size ? size : 1);
    assert_non_null(buf);
    for (size_t i = 0; i < size; i++)
        buf[i] = pattern(i);
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, buf + done, size - done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    free(buf);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* A connected TCP pair on loopback: *client and *server, non-blocking. */
static void tcp_pair(int *client, int *server)
{
    int lfd;
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 8, 0, &lfd, 1), 1);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(sa.sin_port));
    *client = simul_tcp_connect("127.0.0.1", port);
    assert_true(*client >= 0);
    *server = simul_accept(lfd, NULL, NULL);
    assert_true(*server >= 0);
    simul_close(lfd);
}

/* ---- a reader task that checks what arrives -------------------------------------------------- */

typedef struct reader {
    int fd;
    size_t expect_from; /* file offset of the first byte expected */
    size_t got;
    size_t stop_after; /* close the socket after this many bytes (0: read to EOF) */
    int slow;          /* sleep a little every few reads (2: after every read) */
    int bad;           /* first mismatch + 1 */
    int rc;
} reader;

static int reader_task(void *p)
{
    reader *r = p;
    static unsigned char buf[16384];
    int reads = 0;
    for (;;) {
        long n = simul_recv(r->fd, buf, sizeof buf, 0);
        if (n < 0) {
            r->rc = (int)n;
            break;
        }
        if (n == 0)
            break;
        for (long i = 0; i < n; i++)
            if (!r->bad && buf[i] != pattern(r->expect_from + r->got + (size_t)i))
                r->bad = (int)(r->got + (size_t)i) + 1;
        r->got += (size_t)n;
        if (r->stop_after && r->got >= r->stop_after)
            break;
        if (r->slow && ++reads % (r->slow > 1 ? 1 : 8) == 0)
            simul_sleep(0.001);
    }
    if (r->stop_after) {
        simul_close(r->fd);
        r->fd = -1;
    }
    return 0;
}

#define BIG (8u * 1024 * 1024)

SIMUL_TASK_TEST(big_file_to_slow_reader_byte_for_byte)
{
    (void)arg;
    int file = make_file(BIG);
    int cli, srv;
    tcp_pair(&cli, &srv);
    reader r = {.fd = srv, .slow = 1};
    simul_task *rt;
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    size_t sent = 1;
    assert_int_equal(simul_sock_sendfile(cli, file, 0, 0, &sent), BIG);
    assert_int_equal(sent, BIG);
    assert_int_equal(lseek(file, 0, SEEK_CUR), 0); /* the file's offset is not used */
    shutdown(cli, SHUT_WR);
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, BIG);
    simul_close(cli);
    simul_close(srv);
    close(file);
    return 0;
}

/* Sends [offset, offset + count) and checks what a socketpair peer receives. */
static void send_and_check(int file, int64_t offset, size_t count, long expect)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    reader r = {.fd = sv[1], .expect_from = (size_t)offset};
    simul_task *rt;
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    size_t sent = 99;
    assert_int_equal(simul_sock_sendfile(sv[0], file, offset, count, &sent), expect);
    assert_int_equal(sent, (size_t)expect);
    simul_close(sv[0]);
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, (size_t)expect);
    simul_close(sv[1]);
}

SIMUL_TASK_TEST(offsets_and_counts)
{
    (void)arg;
    int file = make_file(100000);
    send_and_check(file, 0, 100000, 100000);
    send_and_check(file, 1000, 5000, 5000);
    send_and_check(file, 99000, 0, 1000);   /* count 0: to the end of the file */
    send_and_check(file, 99500, 5000, 500); /* the file ends first: the shorter count */
    send_and_check(file, 100000, 10, 0);    /* at the end */
    send_and_check(file, 1 << 30, 0, 0);    /* past it */
    send_and_check(file, 12345, 1, 1);
    assert_int_equal(lseek(file, 0, SEEK_CUR), 0);
    close(file);
    int empty = make_file(0);
    send_and_check(empty, 0, 0, 0);
    close(empty);
    return 0;
}

SIMUL_TASK_TEST(peer_closes_mid_transfer)
{
    (void)arg;
    int file = make_file(BIG);
    int cli, srv;
    tcp_pair(&cli, &srv);
    reader r = {.fd = srv, .stop_after = 256 * 1024};
    simul_task *rt;
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    size_t sent = 0;
    long rc = simul_sock_sendfile(cli, file, 0, 0, &sent); /* SIGPIPE would end the process */
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    assert_true(sent >= r.stop_after && sent < BIG);
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(r.bad, 0);
    /* the socket stays broken */
    assert_true(simul_sock_sendfile(cli, file, 0, 10, &sent) < 0);
    assert_int_equal(sent, 0);
    simul_close(cli);
    close(file);
    return 0;
}

typedef struct sender {
    int sock, file;
    double timeout; /* > 0: a deadline scope of this many seconds */
    size_t sent;
    long rc;
} sender;

static int sender_task(void *p)
{
    sender *s = p;
    simul_scope sc;
    if (s->timeout > 0)
        simul_scope_timeout(&sc, s->timeout);
    s->rc = simul_sock_sendfile(s->sock, s->file, 0, 0, &s->sent);
    if (s->timeout > 0)
        simul_scope_end(&sc);
    return 0;
}

/* An interrupted transfer reports exactly what the peer gets. */
static void interrupted_transfer(bool by_deadline)
{
    int file = make_file(BIG);
    int cli, srv;
    tcp_pair(&cli, &srv);
    sender s = {.sock = cli, .file = file, .timeout = by_deadline ? 0.2 : 0, .rc = 1};
    simul_task *st;
    assert_int_equal(simul_task_spawn(&st, sender_task, &s, NULL), 0);
    assert_int_equal(simul_sleep(0.1), 0);
    double t0 = test_clock();
    if (!by_deadline)
        assert_int_equal(simul_task_cancel(st), 0);
    assert_int_equal(simul_task_join(st, NULL), 0);
    assert_true(test_clock() - t0 < 2.0);
    assert_int_equal(s.rc, by_deadline ? -ETIMEDOUT : -ECANCELED);
    assert_true(s.sent > 0 && s.sent < BIG); /* nobody read: the socket buffers filled up */
    simul_close(cli);
    reader r = {.fd = srv};
    assert_int_equal(reader_task(&r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, s.sent);
    simul_close(srv);
    close(file);
}

SIMUL_TASK_TEST(cancel_mid_transfer_reports_partial)
{
    (void)arg;
    interrupted_transfer(false);
    return 0;
}

SIMUL_TASK_TEST(deadline_mid_transfer_reports_partial)
{
    (void)arg;
    interrupted_transfer(true);
    return 0;
}

/* ---- streams --------------------------------------------------------------------------------- */

#define HEAD (1u << 20)
#define FILE_SIZE (3u * 1024 * 1024 + 17)

typedef struct stream_reader {
    int fd;
    size_t got;
    int bad;
} stream_reader;

/* Expects HEAD bytes of 'h', the file, then "END", then EOF. */
static unsigned char expected(size_t i)
{
    if (i < HEAD)
        return 'h';
    if (i < HEAD + FILE_SIZE)
        return pattern(i - HEAD);
    return (unsigned char)"END"[i - HEAD - FILE_SIZE];
}

static int stream_reader_task(void *p)
{
    stream_reader *r = p;
    static unsigned char buf[16384];
    simul_sleep(0.05); /* let the writer's queue build up first */
    for (;;) {
        long n = simul_recv(r->fd, buf, sizeof buf, 0);
        if (n <= 0)
            return (int)n;
        for (long i = 0; i < n; i++)
            if (!r->bad && (r->got + (size_t)i >= HEAD + FILE_SIZE + 3 ||
                            buf[i] != expected(r->got + (size_t)i)))
                r->bad = (int)(r->got + (size_t)i) + 1;
        r->got += (size_t)n;
    }
}

SIMUL_TASK_TEST(stream_queued_writes_go_first)
{
    (void)arg;
    int file = make_file(FILE_SIZE);
    int cli, srv;
    tcp_pair(&cli, &srv);
    int small = 32 * 1024; /* so that the head cannot all fit in the kernel's buffers */
    assert_int_equal(setsockopt(cli, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(srv, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    char *head = malloc(HEAD);
    memset(head, 'h', HEAD);
    assert_int_equal(simul_stream_write(s, head, HEAD), 0);
    free(head);
    assert_true(simul_stream_write_buffer_size(s) > 0); /* nobody reads yet: queued */
    stream_reader r = {.fd = srv};
    simul_task *rt;
    assert_int_equal(simul_task_spawn(&rt, stream_reader_task, &r, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_stream_sendfile(s, file, 0, 0, &sent), FILE_SIZE);
    assert_int_equal(sent, FILE_SIZE);
    assert_int_equal(simul_stream_write(s, "END", 3), 0);
    assert_int_equal(simul_stream_close(s), 0);
    int rc = -1;
    assert_int_equal(simul_task_join(rt, &rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, HEAD + FILE_SIZE + 3);
    simul_close(srv);
    close(file);
    return 0;
}

SIMUL_TASK_TEST(stream_errors)
{
    (void)arg;
    int file = make_file(BIG);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    assert_int_equal(simul_stream_sendfile(NULL, file, 0, 0, NULL), -EINVAL);
    assert_int_equal(simul_stream_sendfile(s, -1, 0, 0, NULL), -EBADF);
    assert_int_equal(simul_stream_sendfile(s, file, -5, 0, NULL), -EINVAL);
    /* the peer goes away: the error is the stream's from then on */
    reader r = {.fd = srv, .stop_after = 100 * 1024};
    simul_task *rt;
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    size_t sent = 0;
    long rc = simul_stream_sendfile(s, file, 0, 0, &sent);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    assert_true(sent >= r.stop_after && sent < BIG);
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(simul_stream_write(s, "x", 1), (int)rc);
    assert_int_equal(simul_stream_sendfile(s, file, 0, 0, &sent), rc);
    assert_int_equal(sent, 0);
    assert_int_equal(simul_stream_close(s), (int)rc);

    /* after write_eof */
    tcp_pair(&cli, &srv);
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    assert_int_equal(simul_stream_write_eof(s), 0);
    assert_int_equal(simul_stream_sendfile(s, file, 0, 10, NULL), -ESHUTDOWN);
    assert_int_equal(simul_stream_close(s), 0);
    simul_close(srv);
    close(file);
    return 0;
}

typedef struct closer {
    simul_stream *s;
} closer;

static int close_later(void *p)
{
    closer *c = p;
    simul_sleep(0.1);
    return simul_stream_close(c->s);
}

/* Another task closes the stream while the file is on its way: -ECANCELED, the partial count. */
SIMUL_TASK_TEST(stream_closed_mid_transfer)
{
    (void)arg;
    int file = make_file(BIG);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    closer c = {s};
    simul_task *ct;
    assert_int_equal(simul_task_spawn(&ct, close_later, &c, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_stream_sendfile(s, file, 0, 0, &sent), -ECANCELED);
    assert_true(sent > 0 && sent < BIG);
    int rc = 1;
    assert_int_equal(simul_task_join(ct, &rc), 0);
    assert_int_equal(rc, 0);
    reader r = {.fd = srv};
    reader_task(&r);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, sent);
    simul_close(srv);
    close(file);
    return 0;
}

typedef struct meddler {
    simul_stream *s;
    int write_rc, eof_rc;
    long sendfile_rc;
    int file;
} meddler;

static int meddle_later(void *p)
{
    meddler *m = p;
    simul_sleep(0.02);
    m->write_rc = simul_stream_write(m->s, "X", 1);
    m->eof_rc = simul_stream_write_eof(m->s);
    m->sendfile_rc = simul_stream_sendfile(m->s, m->file, 0, 1, NULL);
    return 0;
}

/* While the file is on its way the sending side is the call's: another task's write, write_eof
 * and sendfile get -EBUSY, and the peer receives the file untouched. */
SIMUL_TASK_TEST(stream_writes_during_sendfile_are_busy)
{
    (void)arg;
    int file = make_file(BIG);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    /* a slow reader keeps the transfer going while the meddler tries */
    reader r = {.fd = srv, .slow = 2};
    simul_task *rt, *mt;
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    meddler m = {.s = s, .file = file, .write_rc = 1, .eof_rc = 1, .sendfile_rc = 1};
    assert_int_equal(simul_task_spawn(&mt, meddle_later, &m, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_stream_sendfile(s, file, 0, 0, &sent), (long)BIG);
    assert_int_equal(simul_task_join(mt, NULL), 0);
    assert_int_equal(m.write_rc, -EBUSY);
    assert_int_equal(m.eof_rc, -EBUSY);
    assert_int_equal(m.sendfile_rc, -EBUSY);
    assert_int_equal(simul_stream_close(s), 0); /* the peer reads EOF after the file */
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, BIG);
    simul_close(srv);
    close(file);
    return 0;
}

/* ---- other destinations and bad fds ---------------------------------------------------------- */

typedef struct pipe_reader {
    int fd;
    size_t got;
    int bad;
} pipe_reader;

static int pipe_reader_task(void *p)
{
    pipe_reader *r = p;
    static unsigned char buf[65536];
    for (;;) {
        int rc = simul_wait_readable(r->fd);
        if (rc < 0)
            return rc;
        ssize_t n = read(r->fd, buf, sizeof buf);
        if (n < 0 && errno == EAGAIN)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : 0;
        for (ssize_t i = 0; i < n; i++)
            if (!r->bad && buf[i] != pattern(r->got + (size_t)i))
                r->bad = (int)(r->got + (size_t)i) + 1;
        r->got += (size_t)n;
    }
}

SIMUL_TASK_TEST(pipe_destination)
{
    (void)arg;
    int file = make_file(1u << 20);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    pipe_reader r = {.fd = p[0]};
    simul_task *rt;
    assert_int_equal(simul_task_spawn(&rt, pipe_reader_task, &r, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_sock_sendfile(p[1], file, 0, 0, &sent), 1 << 20);
    simul_close(p[1]);
    int rc = 1;
    assert_int_equal(simul_task_join(rt, &rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, 1u << 20);
    simul_close(p[0]);
    close(file);
    return 0;
}

SIMUL_TASK_TEST(bad_fds_are_clear_errors)
{
    (void)arg;
    int file = make_file(1000);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    size_t sent = 7;
    assert_int_equal(simul_sock_sendfile(-1, file, 0, 0, &sent), -EBADF);
    assert_int_equal(sent, 0);
    assert_int_equal(simul_sock_sendfile(sv[0], -1, 0, 0, NULL), -EBADF);
    int closed = dup(file);
    close(closed);
    assert_int_equal(simul_sock_sendfile(closed, file, 0, 0, NULL), -EBADF);
    assert_int_equal(simul_sock_sendfile(sv[0], closed, 0, 0, NULL), -EBADF);
    assert_int_equal(simul_sock_sendfile(sv[0], file, -1, 0, NULL), -EINVAL);
    assert_int_equal(simul_sock_sendfile(sv[0], file, INT64_MAX, 10, NULL), -EINVAL);
    /* sources sendfile(2) cannot read: a pipe, a socket, a directory */
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(simul_sock_sendfile(sv[0], p[0], 0, 0, NULL), -EINVAL);
    assert_int_equal(simul_sock_sendfile(sv[0], sv[1], 0, 0, NULL), -EINVAL);
    int d = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(simul_sock_sendfile(sv[0], d, 0, 0, NULL), -EINVAL);
    close(d);
    /* a file open only for writing */
    char path[] = "/tmp/simul-sendfile-XXXXXX";
    int wo = mkstemp(path);
    assert_true(wo >= 0);
    int wonly = open(path, O_WRONLY | O_CLOEXEC);
    unlink(path);
    close(wo);
    assert_int_equal(simul_sock_sendfile(sv[0], wonly, 0, 0, NULL), -EBADF);
    /* destinations: a regular file, a blocking socket, a datagram socket */
    assert_int_equal(simul_sock_sendfile(wonly, file, 0, 0, NULL), -EINVAL);
    close(wonly);
    int blk[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, blk), 0);
    assert_int_equal(simul_sock_sendfile(blk[0], file, 0, 0, NULL), -EINVAL);
    int udp = simul_socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(udp >= 0);
    assert_int_equal(simul_sock_sendfile(udp, file, 0, 0, NULL), -EINVAL);
    /* nothing was sent by any of them */
    char c;
    assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    simul_close(udp);
    close(blk[0]);
    close(blk[1]);
    simul_close(p[0]);
    simul_close(p[1]);
    simul_close(sv[0]);
    simul_close(sv[1]);
    close(file);
    return 0;
}

static void outside_a_task(void **state)
{
    (void)state;
    size_t sent = 5;
    assert_int_equal(simul_sock_sendfile(1, 0, 0, 0, &sent), -EPERM);
    assert_int_equal(sent, 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(big_file_to_slow_reader_byte_for_byte),
    cmocka_unit_test(offsets_and_counts),
    cmocka_unit_test(peer_closes_mid_transfer),
    cmocka_unit_test(cancel_mid_transfer_reports_partial),
    cmocka_unit_test(deadline_mid_transfer_reports_partial),
    cmocka_unit_test(stream_queued_writes_go_first),
    cmocka_unit_test(stream_errors),
    cmocka_unit_test(stream_closed_mid_transfer),
    cmocka_unit_test(stream_writes_during_sendfile_are_busy),
    cmocka_unit_test(pipe_destination),
    cmocka_unit_test(bad_fds_are_clear_errors),
    cmocka_unit_test(outside_a_task),
};

SIMUL_TEST_MAIN("sendfile", tests)
