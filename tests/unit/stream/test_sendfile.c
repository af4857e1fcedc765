/* test_sendfile.c — simul_sock_sendfile and simul_stream_sendfile: an 8 MiB file reaches a slow
 * reader byte for byte, offsets and counts (also past the end of the file) are honoured, a peer
 * that goes away is an error with the partial count and no SIGPIPE, cancellation and deadlines
 * stop a transfer with the exact count the peer got, a stream's queued writes go out before the
 * file and later ones after it, a pipe works as destination, and bad fds are clear errors.
 * The copy (sources sendfile(2) cannot read: pipes, sockets, ttys, /dev/zero, procfs files) moves
 * the same bytes with the same guarantees, never blocks the loop nor changes the source's flags,
 * leaves no registration or fd behind, and the no-fallback variants refuse it with -EOPNOTSUPP.
 * A stream whose bottom is not a plain fd gets the copy (`_wrap` cases: every stream on a
 * wrapping bottom; the in-memory pair of test_stream_helpers.h).
 */
#include <dirent.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>

#include "test_stream_helpers.h"

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
    int zeros;         /* expect zero bytes, not the pattern */
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
            if (!r->bad && buf[i] != (r->zeros ? 0 : pattern(r->expect_from + r->got + (size_t)i)))
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

SIMUL_STREAM_TEST_WRAP(stream_queued_writes_go_first)
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
    test_wrap(s);
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

SIMUL_STREAM_TEST_WRAP(stream_errors)
{
    (void)arg;
    int file = make_file(BIG);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    test_wrap(s);
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
    test_wrap(s);
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

/* Another task closes the stream while the file is on its way: -ECONNABORTED, the partial count. */
SIMUL_STREAM_TEST_WRAP(stream_closed_mid_transfer)
{
    (void)arg;
    int file = make_file(BIG);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    test_wrap(s);
    closer c = {s};
    simul_task *ct;
    assert_int_equal(simul_task_spawn(&ct, close_later, &c, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_stream_sendfile(s, file, 0, 0, &sent), -ECONNABORTED);
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
SIMUL_STREAM_TEST_WRAP(stream_writes_during_sendfile_are_busy)
{
    (void)arg;
    int file = make_file(BIG);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    test_wrap(s);
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
    /* sources sendfile(2) cannot read: a pipe, a socket (copied, so an offset makes no sense
     * for them; without the fallback refused), a directory (nothing can read it), the write end
     * of a pipe (not open for reading) */
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(simul_sock_sendfile_nofallback(sv[0], p[0], 0, 0, NULL), -EOPNOTSUPP);
    assert_int_equal(simul_sock_sendfile_nofallback(sv[0], sv[1], 0, 0, NULL), -EOPNOTSUPP);
    assert_int_equal(simul_sock_sendfile(sv[0], p[0], 1, 0, NULL), -ESPIPE);
    assert_int_equal(simul_sock_sendfile(sv[0], sv[1], 4096, 0, NULL), -ESPIPE);
    assert_int_equal(simul_sock_sendfile(sv[0], p[1], 0, 0, NULL), -EBADF);
    int d = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(simul_sock_sendfile(sv[0], d, 0, 0, NULL), -EINVAL);
    assert_int_equal(simul_sock_sendfile_nofallback(sv[0], d, 0, 0, NULL), -EINVAL);
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

/* ---- sources sendfile(2) cannot read: the copy (asyncio's fallback=True) -------------------- */

#define COPY_BUF (256u * 1024) /* sendfile.c's copy buffer: the most a cut-short copy may lose */

/* Writes `total` pattern bytes into a non-blocking pipe or socket, then closes it (EOF for the
 * reader) unless keep_open. */
typedef struct feeder {
    int fd;
    size_t total;
    double delay; /* sleep this long first: the copy finds the source empty */
    bool keep_open;
    size_t wrote;
    int rc;
} feeder;

static int feeder_task(void *p)
{
    feeder *fe = p;
    unsigned char *buf = malloc(65536);
    assert_non_null(buf);
    if (fe->delay > 0)
        fe->rc = simul_sleep(fe->delay);
    while (fe->rc == 0 && fe->wrote < fe->total) {
        size_t n = fe->total - fe->wrote < 65536 ? fe->total - fe->wrote : 65536;
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(fe->wrote + i);
        ssize_t w = send(fe->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == ENOTSOCK)
            w = write(fe->fd, buf, n);
        if (w > 0)
            fe->wrote += (size_t)w;
        else if (w < 0 && errno == EAGAIN)
            fe->rc = simul_wait_writable(fe->fd);
        else
            fe->rc = -errno;
    }
    free(buf);
    if (!fe->keep_open) {
        simul_close(fe->fd);
        fe->fd = -1;
    }
    return 0;
}

/* A pipe whose write end alone is non-blocking (as a child's stdout often is not on the reading
 * side): the copy must read the blocking end without blocking the loop. */
static void source_pipe(int p[2], bool read_end_nonblocking)
{
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
    if (read_end_nonblocking)
        assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
}

#define PIPE_TOTAL (6u * 1024 * 1024 + 123)

/* MiBs from a pipe (count 0: until its writer closes) reach a TCP peer byte for byte; the
 * source fd's flags are as they were, and it is left unregistered (a plain close() is fine). */
static void pipe_to_socket(bool nonblocking)
{
    int fds = test_fd_count();
    int p[2];
    source_pipe(p, nonblocking);
    int flags = fcntl(p[0], F_GETFL);
    int cli, srv;
    tcp_pair(&cli, &srv);
    feeder fe = {.fd = p[1], .total = PIPE_TOTAL};
    reader r = {.fd = srv, .slow = 1};
    simul_task *ft, *rt;
    assert_int_equal(simul_task_spawn(&ft, feeder_task, &fe, NULL), 0);
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    size_t sent = 1;
    assert_int_equal(simul_sock_sendfile(cli, p[0], 0, 0, &sent), PIPE_TOTAL);
    assert_int_equal(sent, PIPE_TOTAL);
    assert_int_equal(fcntl(p[0], F_GETFL), flags);
    shutdown(cli, SHUT_WR);
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(simul_task_join(ft, NULL), 0);
    assert_int_equal(fe.rc, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, PIPE_TOTAL);
    simul_close(cli);
    simul_close(srv);
    close(p[0]);
    assert_int_equal(test_fd_count(), fds);
}

SIMUL_TASK_TEST(copy_blocking_pipe_to_socket)
{
    (void)arg;
    pipe_to_socket(false);
    return 0;
}

SIMUL_TASK_TEST(copy_nonblocking_pipe_to_socket)
{
    (void)arg;
    pipe_to_socket(true);
    return 0;
}

/* With a count the copy takes exactly that many bytes from the pipe, not a buffer more: the
 * next reader of the pipe gets the byte after them. */
SIMUL_TASK_TEST(copy_from_pipe_with_count_takes_no_more)
{
    (void)arg;
    int p[2];
    source_pipe(p, false);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    size_t count = 1024 * 1024 + 7;
    feeder fe = {.fd = p[1], .total = count + 16};
    reader r = {.fd = sv[1]};
    simul_task *ft, *rt;
    assert_int_equal(simul_task_spawn(&ft, feeder_task, &fe, NULL), 0);
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_sock_sendfile(sv[0], p[0], 0, count, &sent), (long)count);
    assert_int_equal(sent, count);
    simul_close(sv[0]);
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, count);
    /* the feeder could write (and close) only because the copy left the last bytes alone */
    assert_int_equal(simul_task_join(ft, NULL), 0);
    assert_int_equal(fe.rc, 0);
    unsigned char next[17];
    assert_int_equal(read(p[0], next, sizeof next), 16);
    for (size_t i = 0; i < 16; i++)
        assert_int_equal(next[i], pattern(count + i));
    simul_close(sv[1]);
    close(p[0]);
    return 0;
}

/* A socket source (blocking, as a caller may hand one over) is read with MSG_DONTWAIT until its
 * peer shuts down. */
SIMUL_TASK_TEST(copy_socketpair_source)
{
    (void)arg;
    int fds = test_fd_count();
    int src[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, src), 0);
    assert_int_equal(fcntl(src[1], F_SETFL, O_NONBLOCK), 0);
    int cli, srv;
    tcp_pair(&cli, &srv);
    feeder fe = {.fd = src[1], .total = 3u * 1024 * 1024 + 1, .delay = 0.02};
    reader r = {.fd = srv};
    simul_task *ft, *rt;
    assert_int_equal(simul_task_spawn(&ft, feeder_task, &fe, NULL), 0);
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_sock_sendfile(cli, src[0], 0, 0, &sent), (long)fe.total);
    assert_int_equal(sent, fe.total);
    assert_false(fcntl(src[0], F_GETFL) & O_NONBLOCK);
    simul_close(cli);
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(simul_task_join(ft, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, fe.total);
    simul_close(srv);
    close(src[0]);
    assert_int_equal(test_fd_count(), fds);
    return 0;
}

/* A tty (a pty's slave in raw mode) refuses RWF_NOWAIT: a non-blocking one is read with plain
 * read(2) and waits in the loop, a blocking one is read on the file pool. Either way the bytes
 * arrive in order and the fd's flags stay as they were. */
static void tty_source(bool nonblocking)
{
    int fds = test_fd_count();
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    int flags = O_RDONLY | O_NOCTTY | O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0);
    int tty = open(ptsname(master), flags);
    assert_true(tty >= 0);
    struct termios tio;
    assert_int_equal(tcgetattr(tty, &tio), 0);
    cfmakeraw(&tio); /* bytes pass unchanged, no echo */
    assert_int_equal(tcsetattr(tty, TCSANOW, &tio), 0);
    int before = fcntl(tty, F_GETFL);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    size_t count = 300 * 1000 + 1;
    feeder fe = {.fd = master, .total = count, .keep_open = true, .delay = 0.02};
    reader r = {.fd = sv[1]};
    simul_task *ft, *rt;
    assert_int_equal(simul_task_spawn(&ft, feeder_task, &fe, NULL), 0);
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_sock_sendfile(sv[0], tty, 0, count, &sent), (long)count);
    assert_int_equal(sent, count);
    assert_int_equal(fcntl(tty, F_GETFL), before);
    simul_close(sv[0]);
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(simul_task_join(ft, NULL), 0);
    assert_int_equal(fe.rc, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, count);
    simul_close(sv[1]);
    close(tty);
    simul_close(master);
    assert_int_equal(test_fd_count(), fds);
}

SIMUL_TASK_TEST(copy_nonblocking_tty_source)
{
    (void)arg;
    tty_source(true);
    return 0;
}

SIMUL_TASK_TEST(copy_blocking_tty_source_on_the_pool)
{
    (void)arg;
    tty_source(false);
    return 0;
}

/* /dev/zero never ends and cannot be polled: a count bounds it, an offset is refused. */
SIMUL_TASK_TEST(copy_dev_zero_with_count)
{
    (void)arg;
    int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    assert_true(zero >= 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    size_t count = 3u * 1024 * 1024 + 5;
    reader r = {.fd = sv[1], .zeros = 1};
    simul_task *rt;
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_sock_sendfile(sv[0], zero, 0, count, &sent), (long)count);
    assert_int_equal(sent, count);
    assert_int_equal(simul_sock_sendfile(sv[0], zero, 10, count, &sent), -ESPIPE);
    assert_int_equal(sent, 0);
    assert_int_equal(simul_sock_sendfile_nofallback(sv[0], zero, 0, count, &sent), -EOPNOTSUPP);
    simul_close(sv[0]);
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, count);
    simul_close(sv[1]);
    close(zero);
    return 0;
}

/* Everything waiting in a non-blocking AF_UNIX socket, up to cap bytes. */
static size_t drain(int fd, unsigned char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
        if (n <= 0)
            return got;
        got += (size_t)n;
    }
}

/* A regular file sendfile(2) refuses (procfs: EINVAL) is copied with pread at the same offsets:
 * offset and count mean what they mean for any file. Without the fallback: -EOPNOTSUPP. */
SIMUL_TASK_TEST(copy_file_sendfile_refuses)
{
    (void)arg;
    const char *path = "/proc/self/auxv"; /* binary, fixed for the process' life */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    static unsigned char want[65536], got[65536];
    ssize_t len = pread(fd, want, sizeof want, 0);
    assert_true(len > 16 && len < (ssize_t)sizeof want);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    off_t probe = 0;
    bool refused = sendfile(sv[0], fd, &probe, 1) < 0 && errno == EINVAL;
    drain(sv[1], got, sizeof got);
    if (refused) {
        size_t sent = 5;
        assert_int_equal(simul_sock_sendfile_nofallback(sv[0], fd, 0, 0, &sent), -EOPNOTSUPP);
        assert_int_equal(sent, 0);
        assert_int_equal(drain(sv[1], got, sizeof got), 0);
    } else {
        print_message("note: this kernel splices %s, so the copy is not what runs\n", path);
    }
    struct {
        int64_t offset;
        size_t count;
        long expect;
    } cases[] = {{0, 0, len}, {7, 16, 16}, {len - 3, 50, 3}, {len, 0, 0}, {len + 10, 0, 0}};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t sent = 99;
        assert_int_equal(simul_sock_sendfile(sv[0], fd, cases[i].offset, cases[i].count, &sent),
                         cases[i].expect);
        assert_int_equal(sent, (size_t)cases[i].expect);
        assert_int_equal(drain(sv[1], got, sizeof got), (size_t)cases[i].expect);
        assert_memory_equal(got, want + (cases[i].expect ? cases[i].offset : 0),
                            (size_t)cases[i].expect);
    }
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0); /* the file's offset is not used */
    simul_close(sv[0]);
    simul_close(sv[1]);
    close(fd);
    return 0;
}

/* An offset on a source that has none is a clear error that consumes nothing. */
SIMUL_STREAM_TEST_WRAP(copy_offset_on_non_seekable_source)
{
    (void)arg;
    int p[2];
    source_pipe(p, false);
    assert_int_equal(write(p[1], "abc", 3), 3);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    test_wrap(s);
    size_t sent = 9;
    assert_int_equal(simul_sock_sendfile(srv, p[0], 1, 0, &sent), -ESPIPE);
    assert_int_equal(sent, 0);
    assert_int_equal(simul_stream_sendfile(s, p[0], 3, 3, &sent), -ESPIPE);
    assert_int_equal(sent, 0);
    char buf[8];
    assert_int_equal(read(p[0], buf, sizeof buf), 3);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(simul_stream_write(s, "ok", 2), 0); /* the stream is not harmed */
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(simul_recv(srv, buf, sizeof buf, 0), 2);
    simul_close(srv);
    close(p[0]);
    close(p[1]);
    return 0;
}

/* Reads until `stop_after` bytes, then closes its end with nothing in between that could let
 * the sender run: *sent must then be what it read plus what was still queued. */
typedef struct vanisher {
    int fd;
    size_t stop_after;
    size_t got, queued;
    int bad;
} vanisher;

static int vanisher_task(void *p)
{
    vanisher *v = p;
    static unsigned char buf[16384];
    while (v->got < v->stop_after) {
        ssize_t n = read(v->fd, buf, sizeof buf);
        if (n < 0 && errno == EAGAIN) {
            if (simul_wait_readable(v->fd) < 0)
                return -1;
            continue;
        }
        if (n <= 0)
            return -1;
        for (ssize_t i = 0; i < n; i++)
            if (!v->bad && buf[i] != pattern(v->got + (size_t)i))
                v->bad = (int)(v->got + (size_t)i) + 1;
        v->got += (size_t)n;
    }
    int queued = 0;
    assert_int_equal(ioctl(v->fd, FIONREAD, &queued), 0);
    v->queued = (size_t)queued;
    simul_close(v->fd);
    return 0;
}

/* The peer goes away mid-copy: -EPIPE (or -ECONNRESET), no SIGPIPE (it would end the process),
 * and *sent is exactly what the destination took. */
static void peer_vanishes(bool pipe_dest)
{
    int p[2];
    source_pipe(p, false);
    int d[2];
    if (pipe_dest)
        assert_int_equal(pipe2(d, O_NONBLOCK | O_CLOEXEC), 0);
    else
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, d), 0);
    int out = pipe_dest ? d[1] : d[0], in = pipe_dest ? d[0] : d[1];
    feeder fe = {.fd = p[1], .total = 64u * 1024 * 1024, .keep_open = true};
    vanisher v = {.fd = in, .stop_after = 300 * 1024};
    simul_task *ft, *vt;
    assert_int_equal(simul_task_spawn(&ft, feeder_task, &fe, NULL), 0);
    assert_int_equal(simul_task_spawn(&vt, vanisher_task, &v, NULL), 0);
    size_t sent = 0;
    long rc = simul_sock_sendfile(out, p[0], 0, 0, &sent);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    int vrc = 1;
    assert_int_equal(simul_task_join(vt, &vrc), 0);
    assert_int_equal(vrc, 0);
    assert_int_equal(v.bad, 0);
    assert_int_equal(sent, v.got + v.queued);
    assert_true(sent < fe.total);
    assert_int_equal(simul_task_cancel(ft), 0);
    assert_int_equal(simul_task_join(ft, NULL), 0);
    simul_close(out);
    simul_close(p[1]);
    close(p[0]);
}

SIMUL_TASK_TEST(copy_peer_vanishes_socket)
{
    (void)arg;
    peer_vanishes(false);
    return 0;
}

SIMUL_TASK_TEST(copy_peer_vanishes_pipe)
{
    (void)arg;
    peer_vanishes(true);
    return 0;
}

/* Cancellation or a deadline while the destination is full: the exact count the peer gets, and
 * what was read from the pipe but not sent is lost from it (at most one buffer): the pipe's next
 * reader continues somewhere in [sent, sent + 256 KiB]. */
static void interrupted_copy(bool by_deadline)
{
    int fds = test_fd_count();
    int p[2];
    source_pipe(p, false);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    int small = 64 * 1024;
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    feeder fe = {.fd = p[1], .total = 64u * 1024 * 1024, .keep_open = true};
    sender s = {.sock = sv[0], .file = p[0], .timeout = by_deadline ? 0.2 : 0, .rc = 1};
    simul_task *ft, *st;
    assert_int_equal(simul_task_spawn(&ft, feeder_task, &fe, NULL), 0);
    assert_int_equal(simul_task_spawn(&st, sender_task, &s, NULL), 0);
    assert_int_equal(simul_sleep(0.1), 0);
    double t0 = test_clock();
    if (!by_deadline)
        assert_int_equal(simul_task_cancel(st), 0);
    assert_int_equal(simul_task_join(st, NULL), 0);
    assert_true(test_clock() - t0 < 2.0);
    assert_int_equal(s.rc, by_deadline ? -ETIMEDOUT : -ECANCELED);
    assert_true(s.sent > 0 && s.sent < fe.total); /* nobody read: the socket buffers filled up */
    assert_int_equal(simul_task_cancel(ft), 0);
    assert_int_equal(simul_task_join(ft, NULL), 0);
    simul_close(sv[0]);
    reader r = {.fd = sv[1]};
    assert_int_equal(reader_task(&r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, s.sent);
    /* the feeder kept the pipe full: find where its next reader stands */
    unsigned char next[32];
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0); /* a failure, not a hang */
    assert_int_equal(read(p[0], next, sizeof next), (ssize_t)sizeof next);
    size_t at = SIZE_MAX;
    for (size_t q = s.sent; q <= s.sent + COPY_BUF && at == SIZE_MAX; q++) {
        size_t i = 0;
        while (i < sizeof next && next[i] == pattern(q + i))
            i++;
        if (i == sizeof next)
            at = q;
    }
    assert_true(at != SIZE_MAX);
    simul_close(sv[1]);
    close(p[0]);
    simul_close(p[1]);
    assert_int_equal(test_fd_count(), fds);
}

SIMUL_TASK_TEST(copy_cancel_mid_transfer_exact_count)
{
    (void)arg;
    interrupted_copy(false);
    return 0;
}

SIMUL_TASK_TEST(copy_deadline_mid_transfer_exact_count)
{
    (void)arg;
    interrupted_copy(true);
    return 0;
}

/* Waiting for a source that stays empty is a wait like any other: cancel and deadlines end it
 * promptly, nothing sent. */
SIMUL_TASK_TEST(copy_waiting_on_empty_source_is_interruptible)
{
    (void)arg;
    int p[2];
    source_pipe(p, false);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    for (int by_deadline = 0; by_deadline < 2; by_deadline++) {
        sender s = {.sock = sv[0], .file = p[0], .rc = 1, .sent = 7};
        s.timeout = by_deadline ? 0.1 : 0;
        simul_task *st;
        assert_int_equal(simul_task_spawn(&st, sender_task, &s, NULL), 0);
        assert_int_equal(simul_sleep(0.05), 0);
        double t0 = test_clock();
        if (!by_deadline)
            assert_int_equal(simul_task_cancel(st), 0);
        assert_int_equal(simul_task_join(st, NULL), 0);
        assert_true(test_clock() - t0 < 2.0);
        assert_int_equal(s.rc, by_deadline ? -ETIMEDOUT : -ECANCELED);
        assert_int_equal(s.sent, 0);
    }
    simul_close(sv[0]);
    simul_close(sv[1]);
    close(p[0]);
    close(p[1]);
    return 0;
}

/* The copy had to wait on the pipe, so the loop registered it; it gives the registration back,
 * so a plain close() and a new pipe with the same number work (a stale registration would make
 * the second copy wait forever: the deadline turns that into a failure). */
SIMUL_TASK_TEST(copy_leaves_source_unregistered)
{
    (void)arg;
    int fds = test_fd_count();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    int first = -1;
    for (int round = 0; round < 2; round++) {
        int p[2];
        source_pipe(p, false);
        if (round == 0)
            first = p[0];
        else
            assert_int_equal(p[0], first); /* the number was reused */
        feeder fe = {.fd = p[1], .total = 100000, .delay = 0.05};
        simul_task *ft;
        assert_int_equal(simul_task_spawn(&ft, feeder_task, &fe, NULL), 0);
        simul_scope sc;
        assert_int_equal(simul_scope_timeout(&sc, 5.0), 0);
        size_t sent = 0;
        assert_int_equal(simul_sock_sendfile(sv[0], p[0], 0, 0, &sent), 100000);
        simul_scope_end(&sc);
        assert_int_equal(simul_task_join(ft, NULL), 0);
        static unsigned char got[100001]; /* fits in the socket's buffers: no reader needed */
        assert_int_equal(drain(sv[1], got, sizeof got), 100000);
        for (size_t i = 0; i < 100000; i++)
            assert_int_equal(got[i], pattern(i));
        close(p[0]); /* plain close: the fd layer must not hold on to the number */
    }
    simul_close(sv[0]);
    simul_close(sv[1]);
    assert_int_equal(test_fd_count(), fds);
    return 0;
}

/* A feeder that holds back the source's last byte until `release` is set: the copy cannot finish
 * before then, whatever the machine's speed. */
typedef struct held_feeder {
    feeder fe;
    size_t total;
    simul_event *release;
} held_feeder;

static int held_feeder_task(void *p)
{
    held_feeder *h = p;
    h->fe.total = h->total - 1;
    h->fe.keep_open = true;
    feeder_task(&h->fe);
    if (h->fe.rc == 0)
        h->fe.rc = simul_event_wait(h->release);
    /* feeder_task goes on from fe.wrote: it writes the last byte and closes the pipe */
    h->fe.total = h->total;
    h->fe.keep_open = false;
    return feeder_task(&h->fe);
}

typedef struct releasing_meddler {
    meddler m;
    simul_event *release;
} releasing_meddler;

static int meddle_then_release(void *p)
{
    releasing_meddler *rm = p;
    meddle_later(&rm->m);
    return simul_event_set(rm->release);
}

/* simul_stream_sendfile from a pipe keeps the stream's sending side to itself: another task's
 * write, write_eof and sendfile get -EBUSY, and the peer receives the pipe's bytes untouched.
 * The meddler acts while the copy provably runs: the call marks the stream busy before it first
 * suspends (so before any other task runs), and the pipe's last byte comes only after the
 * meddler's three tries. */
SIMUL_TASK_TEST(copy_stream_from_pipe_writes_are_busy)
{
    (void)arg;
    int fds = test_fd_count();
    int file = make_file(10);
    int p[2];
    source_pipe(p, false);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    size_t total = 4u * 1024 * 1024;
    simul_event *release;
    assert_int_equal(simul_event_new(&release), 0);
    held_feeder hf = {.fe = {.fd = p[1]}, .total = total, .release = release};
    reader r = {.fd = srv, .slow = 2};
    releasing_meddler rm = {
        .m = {.s = s, .file = file, .write_rc = 1, .eof_rc = 1, .sendfile_rc = 1},
        .release = release};
    meddler *m = &rm.m;
    simul_task *ft, *rt, *mt;
    assert_int_equal(simul_task_spawn(&ft, held_feeder_task, &hf, NULL), 0);
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    assert_int_equal(simul_task_spawn(&mt, meddle_then_release, &rm, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_stream_sendfile(s, p[0], 0, 0, &sent), (long)total);
    assert_int_equal(sent, total);
    assert_int_equal(simul_task_join(mt, NULL), 0);
    assert_int_equal(m->write_rc, -EBUSY);
    assert_int_equal(m->eof_rc, -EBUSY);
    assert_int_equal(m->sendfile_rc, -EBUSY);
    assert_int_equal(simul_task_join(ft, NULL), 0);
    assert_int_equal(hf.fe.rc, 0);
    assert_int_equal(hf.fe.wrote, total);
    simul_event_free(release);
    assert_int_equal(simul_stream_close(s), 0); /* the peer reads EOF after the bytes */
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, total);
    simul_close(srv);
    close(p[0]);
    close(file);
    assert_int_equal(test_fd_count(), fds);
    return 0;
}

typedef struct parked_copy {
    simul_stream *s;
    int src;
    long rc;
    bool done;
} parked_copy;

static int copy_until_closed(void *p)
{
    parked_copy *c = p;
    size_t sent = 0;
    c->rc = simul_stream_sendfile(c->s, c->src, 0, 0, &sent);
    c->done = true;
    return 0;
}

/* The close wakes a copy parked on its source at once (not at some later look): after the
 * close, the copy has returned within a couple of loop passes. */
SIMUL_STREAM_TEST_WRAP(copy_parked_on_source_ends_in_the_close_pass)
{
    (void)arg;
    int p[2];
    source_pipe(p, false);
    int cli, srv;
    tcp_pair(&cli, &srv);
    parked_copy c = {.src = p[0], .rc = 1};
    assert_int_equal(simul_stream_from_fd(cli, &c.s), 0);
    test_wrap(c.s);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, copy_until_closed, &c, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(simul_yield(), 0); /* the copy reads EAGAIN and parks on the pipe */
    assert_false(c.done);
    assert_int_equal(simul_stream_close(c.s), 0);
    for (int i = 0; i < 2 && !c.done; i++)
        assert_int_equal(simul_yield(), 0);
    assert_true(c.done);
    assert_int_equal(c.rc, -ECONNABORTED);
    assert_int_equal(simul_task_join(t, NULL), 0);
    simul_close(srv);
    close(p[0]);
    close(p[1]);
    return 0;
}

/* Another task closes the stream while the copy waits for an empty pipe: the close does not
 * touch the pipe, yet the call ends promptly with -ECONNABORTED and the count sent before. */
SIMUL_STREAM_TEST_WRAP(copy_stream_closed_while_source_is_empty)
{
    (void)arg;
    int p[2];
    source_pipe(p, false);
    assert_int_equal(write(p[1], "abc", 3), 3);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    test_wrap(s);
    closer c = {s};
    simul_task *ct;
    assert_int_equal(simul_task_spawn(&ct, close_later, &c, NULL), 0);
    double t0 = test_clock();
    size_t sent = 0;
    assert_int_equal(simul_stream_sendfile(s, p[0], 0, 0, &sent), -ECONNABORTED);
    assert_true(test_clock() - t0 < 2.0);
    assert_int_equal(sent, 3);
    int rc = 1;
    assert_int_equal(simul_task_join(ct, &rc), 0);
    assert_int_equal(rc, 0);
    char buf[8];
    assert_int_equal(simul_recv(srv, buf, sizeof buf, 0), 3);
    assert_int_equal(simul_recv(srv, buf, sizeof buf, 0), 0);
    simul_close(srv);
    close(p[0]);
    close(p[1]);
    return 0;
}

/* A source socket's error ends the call but is not the stream's: the stream keeps working. */
SIMUL_STREAM_TEST_WRAP(copy_source_error_is_not_the_streams)
{
    (void)arg;
    int src[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, src), 0);
    assert_int_equal(write(src[1], "hello", 5), 5);
    assert_int_equal(write(src[0], "unread", 6), 6); /* left unread by src[1]: its close resets */
    close(src[1]);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    test_wrap(s);
    size_t sent = 0;
    assert_int_equal(simul_stream_sendfile(s, src[0], 0, 0, &sent), -ECONNRESET);
    assert_int_equal(sent, 5);
    assert_int_equal(simul_stream_write(s, " ok", 3), 0);
    assert_int_equal(simul_stream_close(s), 0);
    char buf[16];
    size_t got = 0;
    long n;
    while ((n = simul_recv(srv, buf + got, sizeof buf - got, 0)) > 0)
        got += (size_t)n;
    assert_int_equal(got, 8);
    assert_memory_equal(buf, "hello ok", 8);
    simul_close(srv);
    simul_close(src[0]);
    return 0;
}

/* The destination's error is the stream's, as for the zero-copy path: sticky for later writes. */
SIMUL_STREAM_TEST_WRAP(copy_destination_error_is_the_streams)
{
    (void)arg;
    int p[2];
    source_pipe(p, false);
    assert_int_equal(write(p[1], "abc", 3), 3);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(sv[0], &s), 0);
    test_wrap(s);
    simul_close(sv[1]); /* the peer is gone before the call */
    size_t sent = 9;
    assert_int_equal(simul_stream_sendfile(s, p[0], 0, 0, &sent), -EPIPE);
    assert_int_equal(sent, 0);
    assert_int_equal(simul_stream_write(s, "x", 1), -EPIPE);
    assert_int_equal(simul_stream_sendfile(s, p[0], 0, 0, &sent), -EPIPE);
    assert_int_equal(simul_stream_close(s), -EPIPE);
    close(p[0]);
    close(p[1]);
    return 0;
}

/* asyncio's fallback=False: -EOPNOTSUPP for what only a copy could send, nothing sent, the stream
 * untouched; a regular file still goes zero-copy. */
SIMUL_TASK_TEST(nofallback_refuses_what_needs_a_copy)
{
    (void)arg;
    int file = make_file(5000);
    int p[2];
    source_pipe(p, false);
    assert_int_equal(write(p[1], "abc", 3), 3);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    size_t sent = 3;
    assert_int_equal(simul_stream_sendfile_nofallback(s, p[0], 0, 0, &sent), -EOPNOTSUPP);
    assert_int_equal(sent, 0);
    assert_int_equal(simul_sock_sendfile_nofallback(srv, p[0], 0, 0, &sent), -EOPNOTSUPP);
    assert_int_equal(simul_stream_sendfile_nofallback(s, file, 10, 100, &sent), 100);
    assert_int_equal(sent, 100);
    assert_int_equal(simul_stream_close(s), 0);
    reader r = {.fd = srv, .expect_from = 10};
    assert_int_equal(reader_task(&r), 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, 100);
    char buf[8];
    assert_int_equal(read(p[0], buf, sizeof buf), 3); /* the pipe's bytes are still there */
    simul_close(srv);
    close(p[0]);
    close(p[1]);
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

/* ---- streams on other bottoms ---------------------------------------------------------------- */

/* Not a plain fd under the stream: a file is copied through the bottom (the fallback), and the
 * no-fallback variant refuses it with nothing sent. */
SIMUL_TASK_TEST(wrapped_stream_copies_a_file)
{
    (void)arg;
    int file = make_file(BIG);
    int cli, srv;
    tcp_pair(&cli, &srv);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(cli, &s), 0);
    wrap_stream(s);
    size_t sent = 3;
    assert_int_equal(simul_stream_sendfile_nofallback(s, file, 0, 100, &sent), -EOPNOTSUPP);
    assert_int_equal(sent, 0);
    reader r = {.fd = srv, .expect_from = 10};
    simul_task *rt;
    assert_int_equal(simul_task_spawn(&rt, reader_task, &r, NULL), 0);
    assert_int_equal(simul_stream_sendfile(s, file, 10, BIG - 10, &sent), (long)BIG - 10);
    assert_int_equal(sent, BIG - 10);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(simul_task_join(rt, NULL), 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, BIG - 10);
    simul_close(srv);
    close(file);
    return 0;
}

typedef struct mem_reader {
    simul_stream *s;
    size_t got;
    int bad;
} mem_reader;

static int mem_reader_task(void *p)
{
    mem_reader *r = p;
    static unsigned char buf[16384];
    long n;
    while ((n = simul_stream_read(r->s, buf, sizeof buf)) > 0) {
        for (long i = 0; i < n; i++)
            if (!r->bad && buf[i] != pattern(r->got + (size_t)i))
                r->bad = (int)(r->got + (size_t)i) + 1;
        r->got += (size_t)n;
    }
    return (int)n;
}

/* Over the in-memory pair (4 KiB of room): the copy waits in the bottom, a close of the stream
 * ends it at once with the partial count, and the peer has exactly those bytes. */
SIMUL_TASK_TEST(mem_stream_copies_a_file)
{
    (void)arg;
    int file = make_file(FILE_SIZE);
    simul_stream *a, *b;
    mem_pair(&a, &b);
    mem_reader r = {.s = b};
    simul_task *rt;
    assert_int_equal(simul_task_spawn(&rt, mem_reader_task, &r, NULL), 0);
    size_t sent = 0;
    assert_int_equal(simul_stream_sendfile(a, file, 0, 0, &sent), FILE_SIZE);
    assert_int_equal(sent, FILE_SIZE);
    assert_int_equal(simul_stream_close(a), 0);
    int rc = -1;
    assert_int_equal(simul_task_join(rt, &rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, FILE_SIZE);
    assert_int_equal(simul_stream_close(b), 0);
    /* Nobody reads: the copy parks in the bottom until another task closes the stream. */
    mem_pair(&a, &b);
    closer c = {a};
    simul_task *ct;
    assert_int_equal(simul_task_spawn(&ct, close_later, &c, NULL), 0);
    assert_int_equal(simul_stream_sendfile(a, file, 0, 0, &sent), -ECONNABORTED);
    assert_int_equal(sent, MEM_CAP);
    assert_int_equal(simul_task_join(ct, &rc), 0);
    assert_int_equal(rc, 0);
    r = (mem_reader){.s = b};
    assert_int_equal(mem_reader_task(&r), 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, MEM_CAP);
    assert_int_equal(simul_stream_close(b), 0);
    close(file);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(wrapped_stream_copies_a_file),
    cmocka_unit_test(mem_stream_copies_a_file),
    cmocka_unit_test(big_file_to_slow_reader_byte_for_byte),
    cmocka_unit_test(offsets_and_counts),
    cmocka_unit_test(peer_closes_mid_transfer),
    cmocka_unit_test(cancel_mid_transfer_reports_partial),
    cmocka_unit_test(deadline_mid_transfer_reports_partial),
    cmocka_unit_test(stream_queued_writes_go_first),
    cmocka_unit_test(stream_queued_writes_go_first_wrap),
    cmocka_unit_test(stream_errors),
    cmocka_unit_test(stream_errors_wrap),
    cmocka_unit_test(stream_closed_mid_transfer),
    cmocka_unit_test(stream_closed_mid_transfer_wrap),
    cmocka_unit_test(stream_writes_during_sendfile_are_busy),
    cmocka_unit_test(stream_writes_during_sendfile_are_busy_wrap),
    cmocka_unit_test(pipe_destination),
    cmocka_unit_test(bad_fds_are_clear_errors),
    cmocka_unit_test(outside_a_task),
    cmocka_unit_test(copy_blocking_pipe_to_socket),
    cmocka_unit_test(copy_nonblocking_pipe_to_socket),
    cmocka_unit_test(copy_from_pipe_with_count_takes_no_more),
    cmocka_unit_test(copy_socketpair_source),
    cmocka_unit_test(copy_nonblocking_tty_source),
    cmocka_unit_test(copy_blocking_tty_source_on_the_pool),
    cmocka_unit_test(copy_dev_zero_with_count),
    cmocka_unit_test(copy_file_sendfile_refuses),
    cmocka_unit_test(copy_offset_on_non_seekable_source),
    cmocka_unit_test(copy_offset_on_non_seekable_source_wrap),
    cmocka_unit_test(copy_peer_vanishes_socket),
    cmocka_unit_test(copy_peer_vanishes_pipe),
    cmocka_unit_test(copy_cancel_mid_transfer_exact_count),
    cmocka_unit_test(copy_deadline_mid_transfer_exact_count),
    cmocka_unit_test(copy_waiting_on_empty_source_is_interruptible),
    cmocka_unit_test(copy_leaves_source_unregistered),
    cmocka_unit_test(copy_stream_from_pipe_writes_are_busy),
    cmocka_unit_test(copy_stream_closed_while_source_is_empty),
    cmocka_unit_test(copy_stream_closed_while_source_is_empty_wrap),
    cmocka_unit_test(copy_parked_on_source_ends_in_the_close_pass),
    cmocka_unit_test(copy_parked_on_source_ends_in_the_close_pass_wrap),
    cmocka_unit_test(copy_source_error_is_not_the_streams),
    cmocka_unit_test(copy_source_error_is_not_the_streams_wrap),
    cmocka_unit_test(copy_destination_error_is_the_streams),
    cmocka_unit_test(copy_destination_error_is_the_streams_wrap),
    cmocka_unit_test(nofallback_refuses_what_needs_a_copy),
};

SIMUL_TEST_MAIN("sendfile", tests)
