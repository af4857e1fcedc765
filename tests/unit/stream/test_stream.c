/* test_stream.c — streams (asyncio.open_connection / start_server): echo over TCP (IPv4, IPv6,
 * dual-stack) and Unix sockets, every reader call (read, readexactly, readuntil, readline) with
 * its limits and EOF cases, cancellation and deadlines that lose no data, full duplex, the write
 * queue and drain, write_eof, pipes, closing while other tasks wait, and the fast path (a write
 * the kernel takes is not queued). Cases on a connected pair run again over the in-memory bottom
 * (`_mem`), cases with a server again with every stream on a wrapping bottom (`_wrap`); the
 * bottom API's own rules (replace_bottom's refusals, from_bottom's checks) are at the end.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "test_net_helpers.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static simul_server *start_echo(const char *host, int *port)
{
    simul_server *srv = NULL;
    assert_int_equal(test_start_server(host, "0", echo_handler, NULL, &srv), 0);
    assert_non_null(srv);
    *port = simul_server_port(srv);
    assert_true(*port > 0);
    return srv;
}

static simul_stream *connect_to(const char *host, int port)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    simul_stream *s = NULL;
    int rc = simul_open_connection(host, p, &s);
    if (rc < 0)
        fail_msg("open_connection %s:%d: %s", host, port, simul_errname(rc));
    return test_wrap(s);
}

/* Closes the server and waits until every connection has ended. */
static void stop(simul_server *srv)
{
    assert_int_equal(simul_server_close(srv), 0);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    assert_int_equal(simul_server_wait_closed(srv), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    simul_server_free(srv);
}

/* The other end of a connected pair, as an int: the raw fd of a socketpair, or (mem mode)
 * PEER_MEM + i for the i-th peer stream of an in-memory pair. */
#define PEER_MEM 1000000
static simul_stream *mem_peers[8];
static int n_mem_peers;

static simul_stream *peer_stream(int peer)
{
    if (peer < PEER_MEM)
        return NULL;
    assert_true(peer - PEER_MEM < n_mem_peers);
    return mem_peers[peer - PEER_MEM];
}

/* A connected pair: a stream on one end, the other end as above. */
static simul_stream *stream_pair(int *peer)
{
    simul_stream *s = NULL;
    if (test_mode == TEST_MEM) {
        assert_true(n_mem_peers < 8);
        mem_pair(&s, &mem_peers[n_mem_peers]);
        *peer = PEER_MEM + n_mem_peers++;
        return s;
    }
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(simul_stream_from_fd(sv[0], &s), 0);
    *peer = sv[1];
    return s;
}

/* simul_sendall on the peer: all of it, or the error. */
static long peer_send(int peer, const void *buf, size_t len)
{
    simul_stream *ps = peer_stream(peer);
    if (!ps)
        return simul_sendall(peer, buf, len, NULL);
    int rc = simul_stream_write(ps, buf, len);
    if (rc == 0)
        rc = simul_stream_drain(ps);
    return rc < 0 ? rc : (long)len;
}

/* simul_recv on the peer. */
static long peer_recv(int peer, void *buf, size_t len)
{
    simul_stream *ps = peer_stream(peer);
    return ps ? simul_stream_read(ps, buf, len) : simul_recv(peer, buf, len, 0);
}

/* shutdown(SHUT_WR) of the peer. */
static int peer_shutdown(int peer)
{
    simul_stream *ps = peer_stream(peer);
    return ps ? simul_stream_write_eof(ps) : shutdown(peer, SHUT_WR);
}

/* simul_close of the peer. */
static int peer_close(int peer)
{
    simul_stream *ps = peer_stream(peer);
    return ps ? simul_stream_close(ps) : simul_close(peer);
}

static void send_all(int fd, const void *buf, size_t len)
{
    assert_int_equal(peer_send(fd, buf, len), (long)len);
}

/* A small send buffer, so a 64 KiB write queues. */
static void small_sndbuf(int fd)
{
    int v = 4096;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v), 0);
}

static void echo_lines(simul_stream *c, int count)
{
    for (int i = 0; i < count; i++) {
        char msg[64];
        int len = snprintf(msg, sizeof msg, "line %d of %d\n", i, count);
        assert_int_equal(simul_stream_write(c, msg, (size_t)len), 0);
        assert_int_equal(simul_stream_drain(c), 0);
        const char *line;
        assert_int_equal(simul_stream_readline(c, &line), len);
        assert_memory_equal(line, msg, (size_t)len);
    }
}

static bool have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* ---- echo over every kind of socket ------------------------------------------------------- */

SIMUL_STREAM_TEST_WRAP(echo_tcp_ipv4)
{
    (void)arg;
    int port;
    simul_server *srv = start_echo("127.0.0.1", &port);
    assert_true(simul_server_is_serving(srv));
    simul_stream *c = connect_to("127.0.0.1", port);
    echo_lines(c, 200);
    struct sockaddr_storage peer, self;
    assert_int_equal(simul_stream_peername(c, &peer), (int)sizeof(struct sockaddr_in));
    assert_int_equal(peer.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&peer)->sin_port), port);
    assert_true(simul_stream_sockname(c, &self) > 0);
    assert_true(simul_stream_fd(c) >= 0);
    assert_true(simul_stream_can_write_eof(c));
    assert_int_equal(simul_server_connections(srv), 1);
    assert_int_equal(simul_stream_close(c), 0);
    stop(srv);
    return 0;
}

SIMUL_TASK_TEST(echo_tcp_ipv6_and_dual_stack)
{
    (void)arg;
    if (!have_ipv6()) {
        skip(); /* no IPv6 loopback here */
    }
    int port;
    simul_server *srv = start_echo("::1", &port);
    simul_stream *c = connect_to("::1", port);
    echo_lines(c, 10);
    struct sockaddr_storage peer;
    assert_true(simul_stream_peername(c, &peer) > 0);
    assert_int_equal(peer.ss_family, AF_INET6);
    assert_int_equal(simul_stream_close(c), 0);
    stop(srv);
    /* Every interface: one port for both families. */
    srv = start_echo(NULL, &port);
    simul_stream *c4 = connect_to("127.0.0.1", port);
    simul_stream *c6 = connect_to("::1", port);
    echo_lines(c4, 5);
    echo_lines(c6, 5);
    assert_int_equal(simul_server_connections(srv), 2);
    assert_int_equal(simul_stream_close(c4), 0);
    assert_int_equal(simul_stream_close(c6), 0);
    stop(srv);
    return 0;
}

SIMUL_TASK_TEST(echo_unix_socket)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/simul_stream_%d.sock", (int)getpid());
    unlink(path);
    simul_server *srv = NULL;
    assert_int_equal(simul_start_unix_server(path, echo_handler, NULL, &srv), 0);
    assert_int_equal(simul_server_port(srv), -EAFNOSUPPORT);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    simul_stream *c = NULL;
    assert_int_equal(simul_open_unix_connection(path, &c), 0);
    echo_lines(c, 50);
    assert_int_equal(simul_stream_close(c), 0);
    stop(srv);
    assert_int_equal(stat(path, &st), -1); /* the server removed its socket file */
    /* The abstract namespace: no file at all. */
    char abstract[64];
    snprintf(abstract, sizeof abstract, "@simul_stream_%d", (int)getpid());
    assert_int_equal(simul_start_unix_server(abstract, echo_handler, NULL, &srv), 0);
    assert_int_equal(simul_open_unix_connection(abstract, &c), 0);
    echo_lines(c, 5);
    assert_int_equal(simul_stream_close(c), 0);
    stop(srv);
    return 0;
}

/* ---- reading --------------------------------------------------------------------------------- */

SIMUL_STREAM_TEST_MEM(read_returns_what_is_there)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    send_all(peer, "hello", 5);
    char buf[100];
    assert_int_equal(simul_stream_read(s, buf, sizeof buf), 5);
    assert_memory_equal(buf, "hello", 5);
    /* Small reads go through the buffer: one read(2) serves several calls. */
    send_all(peer, "abcdef", 6);
    assert_int_equal(simul_stream_read(s, buf, 2), 2);
    assert_int_equal(simul_stream_read_buffer_size(s), 4);
    assert_int_equal(simul_stream_read(s, buf + 2, 100), 4);
    assert_memory_equal(buf, "abcdef", 6);
    assert_int_equal(simul_stream_read(s, buf, 0), 0);
    assert_false(simul_stream_at_eof(s));
    assert_int_equal(peer_shutdown(peer), 0);
    assert_int_equal(simul_stream_read(s, buf, sizeof buf), 0);
    assert_true(simul_stream_at_eof(s));
    assert_int_equal(simul_stream_read(s, buf, sizeof buf), 0); /* EOF stays */
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

/* Sends j->n bytes in pieces, yielding between them, so the reader sees many edges. */
typedef struct {
    int fd;
    char *p;
    size_t n;
} send_job;

static int sender(void *a)
{
    send_job *j = a;
    size_t off = 0;
    while (off < j->n) {
        size_t k = j->n - off < 100000 ? j->n - off : 100000;
        long r = peer_send(j->fd, j->p + off, k);
        if (r < 0)
            return (int)r;
        off += k;
        simul_yield();
    }
    return 0;
}

SIMUL_STREAM_TEST_MEM(readexactly_small_large_and_short)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    size_t big = 3 << 20;
    char *out = malloc(big), *in = malloc(big);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < big; i++)
        out[i] = (char)(i * 7 + i / 4096);
    /* A header then a large body, as a framed protocol reads them. */
    uint32_t hdr = htonl((uint32_t)big);
    send_all(peer, &hdr, sizeof hdr);
    simul_task *w;
    send_job j = {peer, out, big};
    assert_int_equal(simul_task_spawn(&w, sender, &j, NULL), 0);
    uint32_t got_hdr;
    size_t got = 99;
    assert_int_equal(simul_stream_readexactly(s, &got_hdr, sizeof got_hdr, &got), 4);
    assert_int_equal(got, 4);
    assert_int_equal(ntohl(got_hdr), big);
    assert_int_equal(simul_stream_readexactly(s, in, big, &got), (long)big);
    assert_int_equal(got, big);
    assert_memory_equal(in, out, big);
    assert_int_equal(simul_task_join(w, NULL), 0);
    /* Short at EOF: -ENODATA and the partial data. */
    send_all(peer, "xyz", 3);
    assert_int_equal(peer_shutdown(peer), 0);
    char buf[16];
    assert_int_equal(simul_stream_readexactly(s, buf, 10, &got), -ENODATA);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "xyz", 3);
    assert_true(simul_stream_at_eof(s));
    assert_int_equal(simul_stream_readexactly(s, buf, 1, &got), -ENODATA);
    assert_int_equal(got, 0);
    assert_int_equal(simul_stream_readexactly(s, buf, 0, &got), 0);
    free(in);
    free(out);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

SIMUL_STREAM_TEST_MEM(readuntil_separator_split_across_reads)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    const char *line;
    /* "\r\n" arrives one byte at a time. */
    const char *msg = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    for (const char *p = msg; *p; p++) {
        send_all(peer, p, 1);
        if (p[0] == '\n') {
            const char *start = p;
            while (start > msg && !(start[-1] == '\n'))
                start--;
            long len = (long)(p - start + 1);
            assert_int_equal(simul_stream_readuntil(s, "\r\n", 2, &line), len);
            assert_memory_equal(line, start, (size_t)len);
        }
    }
    /* Separator bytes that only look like a start. */
    send_all(peer, "a\rb\r\r\nc", 7);
    assert_int_equal(simul_stream_readuntil(s, "\r\n", 2, &line), 6);
    assert_memory_equal(line, "a\rb\r\r\n", 6);
    assert_int_equal(simul_stream_readuntil(s, "", 0, &line), -EINVAL);
    /* EOF before the separator: -ENODATA, the data stays for read. */
    assert_int_equal(peer_shutdown(peer), 0);
    assert_int_equal(simul_stream_readuntil(s, "\r\n", 2, &line), -ENODATA);
    assert_false(simul_stream_at_eof(s));
    char c;
    assert_int_equal(simul_stream_read(s, &c, 1), 1);
    assert_int_equal(c, 'c');
    assert_true(simul_stream_at_eof(s));
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

SIMUL_STREAM_TEST_MEM(readuntil_limit_leaves_data)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    assert_int_equal(simul_stream_set_limit(s, 10), 0);
    assert_int_equal(simul_stream_set_limit(s, 0), -EINVAL);
    const char *d;
    /* Exactly the limit before the separator is fine. */
    send_all(peer, "0123456789;", 11);
    assert_int_equal(simul_stream_readuntil(s, ";", 1, &d), 11);
    /* Separator found beyond the limit: -EMSGSIZE, nothing consumed. */
    send_all(peer, "0123456789A;rest", 16);
    assert_int_equal(simul_stream_readuntil(s, ";", 1, &d), -EMSGSIZE);
    assert_int_equal(simul_stream_read_buffer_size(s), 16);
    assert_int_equal(simul_stream_readuntil(s, ";", 1, &d), -EMSGSIZE); /* again */
    char buf[32];
    assert_int_equal(simul_stream_readexactly(s, buf, 12, NULL), 12);
    assert_memory_equal(buf, "0123456789A;", 12);
    /* Not found within the limit: -EMSGSIZE without waiting for more. */
    send_all(peer, "0123456789ABCDEF", 16); /* after "rest": 20 bytes, no ';' */
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 5.0), 0);
    long r;
    while ((r = simul_stream_readuntil(s, ";", 1, &d)) == -EMSGSIZE &&
           simul_stream_read_buffer_size(s) < 20) {
    }
    assert_int_equal(simul_scope_end(&sc), 0);
    assert_int_equal(r, -EMSGSIZE);
    assert_int_equal(simul_stream_read(s, buf, sizeof buf), 20);
    assert_memory_equal(buf, "rest0123456789ABCDEF", 20);
    /* Raising the limit lets a long one through. */
    assert_int_equal(simul_stream_set_limit(s, 100), 0);
    send_all(peer, "a long record of forty bytes or so....;", 39);
    assert_int_equal(simul_stream_readuntil(s, ";", 1, &d), 39);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

SIMUL_STREAM_TEST_MEM(readline_too_long_is_dropped)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    assert_int_equal(simul_stream_set_limit(s, 8), 0);
    const char *line;
    /* The newline is already there: the long line goes, the next one is intact. */
    send_all(peer, "much too long\nok\n", 17);
    assert_int_equal(simul_stream_readline(s, &line), -EMSGSIZE);
    assert_int_equal(simul_stream_readline(s, &line), 3);
    assert_memory_equal(line, "ok\n", 3);
    /* The newline comes later: the rest is skipped by the next readline. */
    send_all(peer, "0123456789abcdef", 16);
    assert_int_equal(simul_stream_readline(s, &line), -EMSGSIZE);
    assert_int_equal(simul_stream_read_buffer_size(s), 0);
    send_all(peer, "ghij", 4);
    send_all(peer, "klm\nnext\n", 9);
    assert_int_equal(simul_stream_readline(s, &line), 5);
    assert_memory_equal(line, "next\n", 5);
    /* EOF: the last line without "\n", then 0. */
    send_all(peer, "tail", 4);
    assert_int_equal(peer_shutdown(peer), 0);
    assert_int_equal(simul_stream_readline(s, &line), 4);
    assert_memory_equal(line, "tail", 4);
    assert_int_equal(simul_stream_readline(s, &line), 0);
    assert_true(simul_stream_at_eof(s));
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

SIMUL_STREAM_TEST_MEM(readline_limit_default_64k)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    size_t n = SIMUL_STREAM_LIMIT;
    char *big = malloc(n + 2);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\n';
    simul_task *w;
    send_job j = {peer, big, n + 1};
    assert_int_equal(simul_task_spawn(&w, sender, &j, NULL), 0);
    const char *line;
    assert_int_equal(simul_stream_readline(s, &line), (long)n + 1); /* exactly the limit: fine */
    assert_int_equal(simul_task_join(w, NULL), 0);
    big[n] = 'x';
    big[n + 1] = '\n';
    j.n = n + 2;
    assert_int_equal(simul_task_spawn(&w, sender, &j, NULL), 0);
    assert_int_equal(simul_stream_readline(s, &line), -EMSGSIZE);
    assert_int_equal(simul_task_join(w, NULL), 0);
    send_all(peer, "after\n", 6);
    assert_int_equal(simul_stream_readline(s, &line), 6);
    assert_memory_equal(line, "after\n", 6);
    free(big);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

/* ---- cancellation and deadlines lose nothing ---------------------------------------------- */

static int readexactly_task(void *arg)
{
    simul_stream *s = arg;
    char buf[100];
    size_t got = 77;
    long r = simul_stream_readexactly(s, buf, sizeof buf, &got);
    assert_int_equal(got, 0);
    return (int)r;
}

SIMUL_STREAM_TEST_MEM(cancelled_reads_keep_their_bytes)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    /* readexactly(100) gets 30 bytes, then is cancelled: the 30 stay in the stream. */
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, readexactly_task, s, NULL), 0);
    char msg[30];
    for (int i = 0; i < 30; i++)
        msg[i] = (char)('A' + i);
    send_all(peer, msg, 30);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_task_cancel(t), 0);
    int res = 0;
    assert_int_equal(simul_task_join(t, &res), 0);
    assert_int_equal(res, -ECANCELED);
    assert_int_equal(simul_stream_read_buffer_size(s), 30);
    /* A large readexactly (straight into the caller's buffer) timed out: same. */
    char *big = malloc(1 << 20);
    assert_non_null(big);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.05), 0);
    size_t got = 1;
    send_all(peer, msg, 30);
    assert_int_equal(simul_stream_readexactly(s, big, 1 << 20, &got), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&sc), 1);
    assert_int_equal(got, 0);
    assert_int_equal(simul_stream_read_buffer_size(s), 60);
    /* A timed-out readline leaves its partial line. */
    send_all(peer, "partial", 7);
    const char *line;
    assert_int_equal(simul_scope_timeout(&sc, 0.02), 0);
    assert_int_equal(simul_stream_readline(s, &line), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&sc), 1);
    send_all(peer, " line\n", 6);
    char all[80];
    assert_int_equal(simul_stream_readexactly(s, all, 60, NULL), 60);
    assert_memory_equal(all, msg, 30);
    assert_memory_equal(all + 30, msg, 30);
    assert_int_equal(simul_stream_readline(s, &line), 13);
    assert_memory_equal(line, "partial line\n", 13);
    /* A cancelled task's read fails even with data there (a cancellation point). */
    send_all(peer, "z", 1);
    assert_int_equal(simul_task_cancel(simul_task_current()), 0);
    assert_int_equal(simul_stream_read(s, all, 1), -ECANCELED);
    simul_scope sh;
    assert_int_equal(simul_scope_shield(&sh), 0);
    assert_int_equal(simul_stream_read(s, all, 1), 1);
    assert_int_equal(all[0], 'z');
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(simul_scope_end(&sh), 0);
    free(big);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

/* ---- concurrency on one stream ----------------------------------------------------------------
 */

static int read_one(void *arg)
{
    char c;
    return (int)simul_stream_read(arg, &c, 1);
}

static int write_many(void *arg)
{
    simul_stream *s = arg;
    for (int i = 0; i < 1000; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "w%d\n", i);
        int rc = simul_stream_write(s, msg, (size_t)len);
        if (rc == 0)
            rc = simul_stream_drain(s);
        if (rc < 0)
            return rc;
        if (i % 100 == 0)
            simul_yield();
    }
    return 0;
}

SIMUL_STREAM_TEST_WRAP(full_duplex_and_two_readers)
{
    (void)arg;
    int port;
    simul_server *srv = start_echo("127.0.0.1", &port);
    simul_stream *c = connect_to("127.0.0.1", port);
    /* One task writes while this one reads the echoes. */
    simul_task *w;
    assert_int_equal(simul_task_spawn(&w, write_many, c, NULL), 0);
    for (int i = 0; i < 1000; i++) {
        char want[32];
        int len = snprintf(want, sizeof want, "w%d\n", i);
        const char *line;
        assert_int_equal(simul_stream_readline(c, &line), len);
        assert_memory_equal(line, want, (size_t)len);
    }
    int res = -1;
    assert_int_equal(simul_task_join(w, &res), 0);
    assert_int_equal(res, 0);
    /* A second reader while one waits: -EBUSY. */
    simul_task *r;
    assert_int_equal(simul_task_spawn(&r, read_one, c, NULL), 0);
    assert_int_equal(simul_yield(), 0);
    char ch;
    assert_int_equal(simul_stream_read(c, &ch, 1), -EBUSY);
    assert_int_equal(simul_stream_write(c, "!", 1), 0);
    assert_int_equal(simul_task_join(r, &res), 0);
    assert_int_equal(res, 1);
    assert_int_equal(simul_stream_close(c), 0);
    stop(srv);
    return 0;
}

/* ---- writing ----------------------------------------------------------------------------------
 */

typedef struct drainer {
    int fd;
    size_t total;
    double delay;
} drainer;

static int read_all_raw(void *arg)
{
    drainer *d = arg;
    char buf[16384]; /* task stacks are 64 KiB */
    for (;;) {
        if (d->delay > 0)
            simul_sleep(d->delay);
        long n = peer_recv(d->fd, buf, sizeof buf);
        if (n <= 0)
            return (int)n;
        d->total += (size_t)n;
    }
}

SIMUL_STREAM_TEST_MEM(write_fast_path_queues_nothing)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    /* The kernel takes small writes at once: nothing is queued, no drain needed. */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(simul_stream_write(s, "0123456789", 10), 0);
        assert_int_equal(simul_stream_write_buffer_size(s), 0);
    }
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    assert_int_equal(simul_stream_writev(s, iov, 3), 0);
    assert_int_equal(simul_stream_write_buffer_size(s), 0);
    char buf[1100];
    assert_int_equal(peer_recv(peer, buf, sizeof buf), 1005);
    assert_memory_equal(buf + 1000, "abcde", 5);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

SIMUL_STREAM_TEST_MEM(queue_flushes_without_drain)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    size_t len = 8 << 20;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, 'q', len);
    /* Far more than the socket takes: most of it is queued... */
    assert_int_equal(simul_stream_write(s, big, len), 0);
    assert_true(simul_stream_write_buffer_size(s) > 0);
    /* ...and goes out as the peer reads, with no task in drain. */
    drainer d = {peer, 0, 0};
    simul_task *r;
    assert_int_equal(simul_task_spawn(&r, read_all_raw, &d, NULL), 0);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    while (d.total < len)
        assert_int_equal(simul_sleep(0.001), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    assert_int_equal(simul_stream_write_buffer_size(s), 0);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(simul_task_join(r, NULL), 0); /* EOF */
    assert_int_equal(d.total, len);
    free(big);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

SIMUL_STREAM_TEST_MEM(drain_waits_for_low_water)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    assert_int_equal(simul_stream_set_write_buffer_limits(s, 10, 20), -EINVAL);
    assert_int_equal(simul_stream_set_write_buffer_limits(s, 100000, 1000), 0);
    char chunk[50000];
    memset(chunk, 'd', sizeof chunk);
    /* Fill the socket until writes queue. */
    while (simul_stream_write_buffer_size(s) == 0)
        assert_int_equal(simul_stream_write(s, chunk, sizeof chunk), 0);
    assert_int_equal(simul_stream_drain(s), 0); /* at or below the high-water mark: at once */
    while (simul_stream_write_buffer_size(s) <= 100000)
        assert_int_equal(simul_stream_write(s, chunk, sizeof chunk), 0);
    /* Over the mark: drain waits until a slow reader brings the queue to 1000 or below. */
    drainer d = {peer, 0, 0.0005};
    simul_task *r;
    assert_int_equal(simul_task_spawn(&r, read_all_raw, &d, NULL), 0);
    assert_int_equal(simul_stream_drain(s), 0);
    assert_true(simul_stream_write_buffer_size(s) <= 1000);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(simul_task_join(r, NULL), 0);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

static int eof_then_reply(simul_stream *s, void *arg)
{
    (void)arg;
    /* Reads everything up to EOF, then answers with its size: the half-close protocol. */
    size_t total = 0;
    char buf[4096];
    long n;
    while ((n = simul_stream_read(s, buf, sizeof buf)) > 0)
        total += (size_t)n;
    if (n < 0)
        return (int)n;
    char msg[32];
    int len = snprintf(msg, sizeof msg, "got %zu\n", total);
    return simul_stream_write(s, msg, (size_t)len);
}

SIMUL_STREAM_TEST_WRAP(write_eof_half_close)
{
    (void)arg;
    simul_server *srv;
    assert_int_equal(test_start_server("127.0.0.1", "0", eof_then_reply, NULL, &srv), 0);
    simul_stream *c = connect_to("127.0.0.1", simul_server_port(srv));
    char data[10000];
    memset(data, 'h', sizeof data);
    assert_int_equal(simul_stream_write(c, data, sizeof data), 0);
    assert_int_equal(simul_stream_write_eof(c), 0);
    assert_int_equal(simul_stream_write_eof(c), 0); /* idempotent */
    assert_int_equal(simul_stream_write(c, "x", 1), -ESHUTDOWN);
    const char *line;
    assert_int_equal(simul_stream_readline(c, &line), 10);
    assert_memory_equal(line, "got 10000\n", 10);
    assert_int_equal(simul_stream_readline(c, &line), 0); /* the server closed */
    assert_int_equal(simul_stream_close(c), 0);
    stop(srv);
    return 0;
}

/* ---- pipes ------------------------------------------------------------------------------------
 */

SIMUL_TASK_TEST(pipe_streams_and_no_sigpipe)
{
    (void)arg;
    assert_true(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    int p[2];
    assert_int_equal(pipe(p), 0); /* blocking: from_fd makes them non-blocking */
    simul_stream *r = NULL, *w = NULL;
    assert_int_equal(simul_stream_from_fd(p[0], &r), 0);
    assert_int_equal(simul_stream_from_fd(p[1], &w), 0);
    assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    assert_false(simul_stream_can_write_eof(w));
    assert_int_equal(simul_stream_write_eof(w), -EOPNOTSUPP);
    struct sockaddr_storage ss;
    assert_int_equal(simul_stream_peername(w, &ss), -ENOTSOCK);
    assert_int_equal(simul_stream_write(w, "one\ntwo\n", 8), 0);
    const char *line;
    assert_int_equal(simul_stream_readline(r, &line), 4);
    assert_int_equal(simul_stream_readline(r, &line), 4);
    assert_memory_equal(line, "two\n", 4);
    /* More than a pipe holds: queued, then flushed as the reader reads. */
    size_t len = 1 << 20;
    char *big = malloc(len), *in = malloc(len);
    assert_non_null(big);
    assert_non_null(in);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)(i % 251);
    assert_int_equal(simul_stream_write(w, big, len), 0);
    assert_int_equal(simul_stream_readexactly(r, in, len, NULL), (long)len);
    assert_memory_equal(in, big, len);
    /* Reader gone: writes fail with -EPIPE and the process lives. */
    assert_int_equal(simul_stream_close(r), 0);
    int rc = simul_stream_write(w, big, len);
    assert_int_equal(rc, -EPIPE);
    assert_int_equal(simul_stream_drain(w), -EPIPE);
    assert_int_equal(simul_stream_close(w), -EPIPE);
    /* A datagram socket is no stream; a regular file cannot be polled. */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    simul_stream *bad = NULL;
    assert_int_equal(simul_stream_from_fd(u, &bad), -EINVAL);
    close(u);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_int_equal(simul_stream_from_fd(fileno(tmp), &bad), -EPERM);
    assert_null(bad);
    fclose(tmp); /* the fd stayed ours */
    assert_int_equal(simul_stream_from_fd(-1, &bad), -EBADF);
    free(big);
    free(in);
    return 0;
}

/* ---- closing -------------------------------------------------------------------------------- */

static int reader_until_error(void *arg)
{
    char buf[16];
    return (int)simul_stream_read(arg, buf, sizeof buf);
}

static int waits_closed(void *arg)
{
    return simul_stream_wait_closed(arg);
}

SIMUL_STREAM_TEST_MEM(close_while_others_wait)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    simul_task *r, *wc;
    assert_int_equal(simul_task_spawn(&r, reader_until_error, s, NULL), 0);
    assert_int_equal(simul_task_spawn(&wc, waits_closed, s, NULL), 0);
    assert_int_equal(simul_yield(), 0);
    assert_false(simul_stream_is_closing(s));
    assert_int_equal(simul_stream_close(s), 0);
    int res = 0;
    assert_int_equal(simul_task_join(r, &res), 0);
    assert_int_equal(res, -ECONNABORTED);
    assert_int_equal(simul_task_join(wc, &res), 0);
    assert_int_equal(res, 0);
    char c;
    assert_int_equal(peer_recv(peer, &c, 1), 0); /* the peer sees EOF */
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

SIMUL_STREAM_TEST_MEM(close_flushes_the_queue)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    size_t len = 4 << 20;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, 'c', len);
    assert_int_equal(simul_stream_write(s, big, len), 0);
    drainer d = {peer, 0, 0.0002};
    simul_task *r;
    assert_int_equal(simul_task_spawn(&r, read_all_raw, &d, NULL), 0);
    assert_int_equal(simul_stream_close(s), 0); /* waits for the slow reader */
    assert_int_equal(simul_task_join(r, NULL), 0);
    assert_int_equal(d.total, len);
    assert_int_equal(peer_close(peer), 0);
    /* A deadline bounds it: what is left is dropped. */
    s = stream_pair(&peer);
    assert_int_equal(simul_stream_write(s, big, len), 0);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.02), 0);
    assert_int_equal(simul_stream_close(s), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&sc), 1);
    free(big);
    assert_int_equal(peer_close(peer), 0);
    /* Over a bottom without fd edges the flusher task was parked when the deadline cut the close
     * short: woken by the close, it ends on the next pass (the ready queue is FIFO). */
    if (test_mode == TEST_MEM)
        assert_int_equal(simul_yield(), 0);
    return 0;
}

static int closes_itself(simul_stream *s, void *arg)
{
    (void)arg;
    const char *line;
    long n = simul_stream_readline(s, &line);
    if (n > 0)
        simul_stream_write(s, line, (size_t)n);
    return simul_stream_close(s); /* then the server's close is skipped */
}

SIMUL_STREAM_TEST_WRAP(handler_may_close_its_stream)
{
    (void)arg;
    simul_server *srv;
    assert_int_equal(test_start_server("127.0.0.1", "0", closes_itself, NULL, &srv), 0);
    for (int i = 0; i < 20; i++) {
        simul_stream *c = connect_to("127.0.0.1", simul_server_port(srv));
        assert_int_equal(simul_stream_write(c, "bye\n", 4), 0);
        const char *line;
        assert_int_equal(simul_stream_readline(c, &line), 4);
        assert_int_equal(simul_stream_readline(c, &line), 0);
        assert_int_equal(simul_stream_close(c), 0);
    }
    stop(srv);
    return 0;
}

static void close_from_callback(void *arg)
{
    /* Outside a task: the flush goes on in a task of its own. */
    assert_int_equal(simul_stream_close(arg), 0);
}

SIMUL_STREAM_TEST_MEM(close_outside_a_task_flushes_later)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    size_t len = 2 << 20;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, 'k', len);
    assert_int_equal(simul_stream_write(s, big, len), 0);
    assert_int_equal(simul_call_soon(close_from_callback, s, NULL), 0);
    assert_int_equal(simul_yield(), 0);
    drainer d = {peer, 0, 0};
    assert_int_equal(read_all_raw(&d), 0);
    assert_int_equal(d.total, len);
    free(big);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

/* ---- bottoms ------------------------------------------------------------------------------- */

/* A bottom without shutdown and fd: write_eof refuses, and the fd calls say there is none. */
static const simul_stream_ops mem_ops_bare = {
    .read = mem_read,
    .writev = mem_writev,
    .wait = mem_wait,
    .close = mem_close,
};

SIMUL_TASK_TEST(bottom_from_and_bottom_rules)
{
    (void)arg;
    simul_stream *s = NULL;
    simul_stream_ops bad = mem_ops;
    bad.wait = NULL;
    assert_int_equal(simul_stream_from_bottom(&bad, NULL, &s), -EINVAL);
    assert_null(s);
    assert_int_equal(simul_stream_from_bottom(NULL, NULL, &s), -EINVAL);
    assert_int_equal(simul_stream_from_bottom(&mem_ops, NULL, NULL), -EINVAL);
    /* An in-memory pair: the fd calls have nothing to report. */
    simul_stream *a, *b;
    mem_pair(&a, &b);
    void *ctx = NULL;
    assert_true(simul_stream_bottom(a, &ctx) == &mem_ops);
    assert_non_null(ctx);
    assert_int_equal(simul_stream_fd(a), -EOPNOTSUPP);
    struct sockaddr_storage ss;
    assert_int_equal(simul_stream_peername(a, &ss), -ENOTSOCK);
    assert_int_equal(simul_stream_sockname(a, &ss), -ENOTSOCK);
    assert_true(simul_stream_can_write_eof(a));
    /* Taken over without shutdown: write_eof is not possible there. */
    assert_int_equal(simul_stream_replace_bottom(a, &mem_ops_bare, ctx), 0);
    assert_false(simul_stream_can_write_eof(a));
    assert_int_equal(simul_stream_write_eof(a), -EOPNOTSUPP);
    assert_int_equal(simul_stream_write(a, "ab\n", 3), 0);
    const char *line;
    assert_int_equal(simul_stream_readline(b, &line), 3);
    assert_memory_equal(line, "ab\n", 3);
    /* The loop counts a stream on a bottom as open. */
    assert_int_equal(simul_stream_close(a), 0);
    assert_null(simul_stream_bottom(NULL, &ctx));
    assert_null(ctx);
    assert_int_equal(simul_stream_close(b), 0);
    return 0;
}

SIMUL_TASK_TEST(bottom_replace_refusals)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    simul_stream *s = NULL;
    assert_int_equal(simul_stream_from_fd(sv[0], &s), 0);
    void *fdctx;
    const simul_stream_ops *fdops = simul_stream_bottom(s, &fdctx);
    assert_non_null(fdops);
    assert_int_equal(fdops->flags & SIMUL_STREAM_BOTTOM_ZEROCOPY, SIMUL_STREAM_BOTTOM_ZEROCOPY);
    assert_int_equal(fdops->fd(fdctx), sv[0]);
    wrap_ctx *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->lower = fdops;
    w->lctx = fdctx;
    simul_stream_ops bad = wrap_ops;
    bad.read = NULL;
    assert_int_equal(simul_stream_replace_bottom(s, &bad, w), -EINVAL);
    assert_int_equal(simul_stream_replace_bottom(NULL, &wrap_ops, w), -EINVAL);
    /* Bytes read ahead belong to the new byte stream: without an unread op the bottom cannot
     * take them over, so the call is refused (and nothing is lost). */
    assert_int_equal(simul_sendall(sv[1], "plain\nrest", 10, NULL), 10);
    const char *line;
    assert_int_equal(simul_stream_readline(s, &line), 6);
    assert_int_equal(simul_stream_read_buffer_size(s), 4);
    simul_stream_ops no_unread = wrap_ops;
    no_unread.unread = NULL;
    assert_int_equal(simul_stream_replace_bottom(s, &no_unread, w), -EBUSY);
    assert_int_equal(simul_stream_read_buffer_size(s), 4);
    char buf[8];
    assert_int_equal(simul_stream_read(s, buf, sizeof buf), 4);
    /* Queued bytes too: refused until flushed (limits 0 + drain, as a start_tls does). */
    small_sndbuf(sv[0]);
    static char chunk[65536]; /* task stacks are 64 KiB */
    memset(chunk, 'q', sizeof chunk);
    assert_int_equal(simul_stream_write(s, chunk, sizeof chunk), 0);
    assert_true(simul_stream_write_buffer_size(s) > 0);
    assert_int_equal(simul_stream_replace_bottom(s, &wrap_ops, w), -EBUSY);
    simul_task *r;
    drainer d = {sv[1], 0, 0};
    assert_int_equal(simul_task_spawn(&r, read_all_raw, &d, NULL), 0);
    assert_int_equal(simul_stream_set_write_buffer_limits(s, 0, 0), 0);
    assert_int_equal(simul_stream_drain(s), 0);
    assert_int_equal(simul_stream_write_buffer_size(s), 0);
    assert_int_equal(simul_stream_set_write_buffer_limits(s, SIMUL_STREAM_HIGH_WATER,
                                                          SIMUL_STREAM_LOW_WATER),
                     0);
    /* Now it takes: everything goes through the wrapper, which reports the fd below it. */
    assert_int_equal(simul_stream_replace_bottom(s, &wrap_ops, w), 0);
    assert_int_equal(simul_stream_fd(s), sv[0]);
    assert_int_equal(simul_stream_write(s, "wrapped", 7), 0);
    assert_int_equal(simul_stream_write_eof(s), 0);
    assert_int_equal(simul_stream_replace_bottom(s, &wrap_ops, w), -ESHUTDOWN);
    assert_int_equal(simul_task_join(r, NULL), 0); /* EOF through the wrapper's shutdown */
    assert_int_equal(d.total, sizeof chunk + 7);
    assert_int_equal(simul_stream_abort(s), 0);
    assert_int_equal(simul_stream_replace_bottom(s, &wrap_ops, w), -EBADF);
    assert_null(simul_stream_bottom(s, NULL));
    assert_int_equal(simul_stream_close(s), 0); /* the wrapper closed the fd below it */
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

static int closes_stream_task(void *arg)
{
    return simul_stream_close(arg);
}

static int wait_bottom_task(void *arg)
{
    return simul_stream_wait_bottom(arg, SIMUL_STREAM_READ);
}

/* A handshake driven by hand waits through the stream: data ends the wait, a deadline bounds it,
 * and a close from another task ends it with -ECONNABORTED, as for the stream's own calls. */
SIMUL_TASK_TEST(bottom_wait_by_hand)
{
    (void)arg;
    simul_stream *a, *b;
    mem_pair(&a, &b);
    assert_int_equal(simul_stream_wait_bottom(a, 7), -EINVAL);
    assert_int_equal(simul_stream_wait_bottom(a, SIMUL_STREAM_WRITE), 0); /* room: at once */
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.01), 0);
    assert_int_equal(simul_stream_wait_bottom(a, SIMUL_STREAM_READ), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&sc), 1);
    simul_task *w;
    assert_int_equal(simul_task_spawn(&w, wait_bottom_task, a, NULL), 0);
    assert_int_equal(simul_yield(), 0);
    assert_int_equal(simul_stream_write(b, "x", 1), 0);
    int res = -1;
    assert_int_equal(simul_task_join(w, &res), 0);
    assert_int_equal(res, 0);
    /* What the bottom holds is still there for the stream. */
    char c;
    assert_int_equal(simul_stream_read(a, &c, 1), 1);
    assert_int_equal(simul_task_spawn(&w, wait_bottom_task, a, NULL), 0);
    assert_int_equal(simul_yield(), 0);
    assert_false(simul_task_done(w));
    simul_task *cl;
    assert_int_equal(simul_task_spawn(&cl, closes_stream_task, a, NULL), 0);
    assert_int_equal(simul_task_join(w, &res), 0);
    assert_int_equal(res, -ECONNABORTED);
    assert_int_equal(simul_task_join(cl, &res), 0);
    assert_int_equal(res, 0);
    assert_int_equal(simul_stream_close(b), 0);
    return 0;
}

/* A PROXY-protocol header and the first bytes of the next protocol in one read: the header is
 * read as plaintext, the rest goes to the new bottom, which gives it back first (asyncio's
 * start_tls lost it until gh-142352). */
SIMUL_STREAM_TEST_MEM(bottom_replace_hands_over_read_ahead)
{
    (void)arg;
    int peer;
    simul_stream *s = stream_pair(&peer);
    send_all(peer, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nHELLO", 37);
    const char *line;
    assert_int_equal(simul_stream_readuntil(s, "\r\n", 2, &line), 32);
    assert_int_equal(simul_stream_read_buffer_size(s), 5);
    wrap_stream(s);
    assert_int_equal(simul_stream_read_buffer_size(s), 0); /* handed over */
    send_all(peer, " AFTER\n", 7);
    assert_int_equal(simul_stream_readline(s, &line), 12);
    assert_memory_equal(line, "HELLO AFTER\n", 12);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(peer_close(peer), 0);
    return 0;
}

static int read_then_report(void *arg)
{
    char buf[16];
    return (int)simul_stream_read(arg, buf, sizeof buf);
}

static int drain_then_report(void *arg)
{
    return simul_stream_drain(arg);
}

/* abort over a bottom without fd edges: every waiter (a reader, a drainer, the flusher parked in
 * the bottom) wakes at once, and the peer sees a reset. */
SIMUL_TASK_TEST(bottom_abort_wakes_everyone)
{
    (void)arg;
    simul_stream *a, *b;
    mem_pair(&a, &b);
    static char chunk[100000]; /* task stacks are 64 KiB */
    memset(chunk, 'a', sizeof chunk);
    assert_int_equal(simul_stream_write(a, chunk, sizeof chunk), 0);
    assert_true(simul_stream_write_buffer_size(a) > SIMUL_STREAM_HIGH_WATER);
    simul_task *r, *d;
    assert_int_equal(simul_task_spawn(&r, read_then_report, a, NULL), 0);
    assert_int_equal(simul_task_spawn(&d, drain_then_report, a, NULL), 0);
    assert_int_equal(simul_yield(), 0);
    assert_int_equal(simul_stream_abort(a), 0);
    int res = 0;
    assert_int_equal(simul_task_join(r, &res), 0);
    assert_int_equal(res, -ECONNABORTED);
    assert_int_equal(simul_task_join(d, &res), 0);
    assert_int_equal(res, -ECONNABORTED);
    char buf[16];
    assert_int_equal(simul_stream_read(b, buf, sizeof buf), -ECONNRESET);
    assert_int_equal(simul_stream_write(b, "x", 1), -ECONNRESET);
    assert_int_equal(simul_stream_close(a), 0);
    assert_int_equal(simul_stream_close(b), -ECONNRESET);
    return 0;
}

/* ---- outside a task ----------------------------------------------------------------------- */

static void stream_calls_outside_task(void **state)
{
    (void)state;
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    simul_stream *s = NULL;
    assert_int_equal(simul_stream_from_fd(sv[0], &s), 0); /* no task needed */
    char c;
    assert_int_equal(simul_stream_read(s, &c, 1), -EPERM);
    assert_int_equal(simul_stream_drain(s), -EPERM);
    assert_int_equal(simul_stream_write(s, "x", 1), 0); /* never suspends: fine */
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(read(sv[1], &c, 1), 1);
    assert_int_equal(c, 'x');
    close(sv[1]);
    assert_int_equal(simul_loop_close(loop), 0);
    simul_stream *none = NULL;
    assert_int_equal(simul_stream_from_fd(0, &none), -ENXIO);
    assert_int_equal(simul_stream_close(NULL), -EINVAL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(echo_tcp_ipv4),
    cmocka_unit_test(echo_tcp_ipv4_wrap),
    cmocka_unit_test(echo_tcp_ipv6_and_dual_stack),
    cmocka_unit_test(echo_unix_socket),
    cmocka_unit_test(read_returns_what_is_there),
    cmocka_unit_test(read_returns_what_is_there_mem),
    cmocka_unit_test(readexactly_small_large_and_short),
    cmocka_unit_test(readexactly_small_large_and_short_mem),
    cmocka_unit_test(readuntil_separator_split_across_reads),
    cmocka_unit_test(readuntil_separator_split_across_reads_mem),
    cmocka_unit_test(readuntil_limit_leaves_data),
    cmocka_unit_test(readuntil_limit_leaves_data_mem),
    cmocka_unit_test(readline_too_long_is_dropped),
    cmocka_unit_test(readline_too_long_is_dropped_mem),
    cmocka_unit_test(readline_limit_default_64k),
    cmocka_unit_test(readline_limit_default_64k_mem),
    cmocka_unit_test(cancelled_reads_keep_their_bytes),
    cmocka_unit_test(cancelled_reads_keep_their_bytes_mem),
    cmocka_unit_test(full_duplex_and_two_readers),
    cmocka_unit_test(full_duplex_and_two_readers_wrap),
    cmocka_unit_test(write_fast_path_queues_nothing),
    cmocka_unit_test(write_fast_path_queues_nothing_mem),
    cmocka_unit_test(queue_flushes_without_drain),
    cmocka_unit_test(queue_flushes_without_drain_mem),
    cmocka_unit_test(drain_waits_for_low_water),
    cmocka_unit_test(drain_waits_for_low_water_mem),
    cmocka_unit_test(write_eof_half_close),
    cmocka_unit_test(write_eof_half_close_wrap),
    cmocka_unit_test(pipe_streams_and_no_sigpipe),
    cmocka_unit_test(close_while_others_wait),
    cmocka_unit_test(close_while_others_wait_mem),
    cmocka_unit_test(close_flushes_the_queue),
    cmocka_unit_test(close_flushes_the_queue_mem),
    cmocka_unit_test(handler_may_close_its_stream),
    cmocka_unit_test(handler_may_close_its_stream_wrap),
    cmocka_unit_test(close_outside_a_task_flushes_later),
    cmocka_unit_test(close_outside_a_task_flushes_later_mem),
    cmocka_unit_test(stream_calls_outside_task),
    cmocka_unit_test(bottom_from_and_bottom_rules),
    cmocka_unit_test(bottom_replace_refusals),
    cmocka_unit_test(bottom_abort_wakes_everyone),
    cmocka_unit_test(bottom_wait_by_hand),
    cmocka_unit_test(bottom_replace_hands_over_read_ahead),
    cmocka_unit_test(bottom_replace_hands_over_read_ahead_mem),
};

SIMUL_TEST_MAIN("test_stream", tests)
