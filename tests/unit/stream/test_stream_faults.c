/* test_stream_faults.c — streams when the other side misbehaves or the process runs short: a
 * peer that resets mid-write (an error code, never SIGPIPE), a peer that never reads (the
 * writer's memory stays bounded by drain), bytes trickling in one at a time, reading EOF while
 * still writing, 2,000 connections at once, running out of fds on accept (the loop backs off
 * instead of spinning and resumes once fds are free), refused connections and names that do not
 * resolve. The cases with one server run again with every stream on a wrapping bottom (`_wrap`,
 * test_stream_helpers.h), as TLS streams will be.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "test_net_helpers.h"

static void stop(simul_server *srv)
{
    assert_int_equal(simul_server_close(srv), 0);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 20.0), 0);
    assert_int_equal(simul_server_wait_closed(srv), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    simul_server_free(srv);
}

/* Resets the connection (RST instead of FIN) as it closes. */
static void close_with_reset(simul_stream *s)
{
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(simul_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    assert_int_equal(simul_stream_close(s), 0);
}

static long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * sysconf(_SC_PAGESIZE);
}

/* A writer that pushes up to `goal` bytes in 64 KiB writes, draining after each. */
typedef struct pusher {
    size_t goal, written, max_queued;
    int result;
    bool done;
} pusher;

static int push_handler(simul_stream *s, void *arg)
{
    pusher *p = arg;
    static char chunk[65536];
    memset(chunk, 'p', sizeof chunk);
    p->result = 0;
    while (p->written < p->goal) {
        int rc = simul_stream_write(s, chunk, sizeof chunk);
        size_t q = simul_stream_write_buffer_size(s);
        if (q > p->max_queued)
            p->max_queued = q;
        if (rc == 0)
            rc = simul_stream_drain(s);
        if (rc < 0) {
            p->result = rc;
            break;
        }
        p->written += sizeof chunk;
    }
    p->done = true;
    return 0;
}

/* Waits until p->written stops growing for `quiet` seconds. */
static void wait_stalled(pusher *p, double quiet)
{
    size_t last = (size_t)-1;
    double since = test_clock();
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 30.0), 0);
    while (!p->done) {
        assert_int_equal(simul_sleep(0.02), 0);
        if (p->written != last) {
            last = p->written;
            since = test_clock();
        } else if (test_clock() - since >= quiet) {
            break;
        }
    }
    assert_int_equal(simul_scope_end(&sc), 0);
}

SIMUL_STREAM_TEST_WRAP(peer_resets_mid_write)
{
    (void)arg;
    assert_true(signal(SIGPIPE, SIG_DFL) != SIG_ERR); /* a SIGPIPE would kill the test */
    pusher p = {.goal = (size_t)1 << 32};
    simul_server *srv;
    assert_int_equal(test_start_server("127.0.0.1", "0", push_handler, &p, &srv), 0);
    simul_stream *c = connect_port(simul_server_port(srv));
    char buf[16384];
    size_t got = 0;
    while (got < (1u << 20)) { /* take some, so the writer is mid-stream */
        long n = simul_stream_read(c, buf, sizeof buf);
        assert_true(n > 0);
        got += (size_t)n;
    }
    close_with_reset(c);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    while (!p.done)
        assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    if (p.result != -ECONNRESET && p.result != -EPIPE)
        fail_msg("the writer got %s", simul_errname(p.result));
    stop(srv);
    return 0;
}

SIMUL_STREAM_TEST_WRAP(peer_never_reads_memory_stays_bounded)
{
    (void)arg;
    pusher p = {.goal = (size_t)256 << 20};
    simul_server *srv;
    assert_int_equal(test_start_server("127.0.0.1", "0", push_handler, &p, &srv), 0);
    long rss0 = resident_bytes();
    simul_stream *c = connect_port(simul_server_port(srv)); /* and never reads */
    wait_stalled(&p, 0.3);
    long grown = resident_bytes() - rss0;
    assert_false(p.done); /* blocked in drain: the peer's windows are full */
    assert_true(p.written < p.goal);
    /* The queue never held more than the high-water mark plus one write. */
    if (p.max_queued > SIMUL_STREAM_HIGH_WATER + 65536)
        fail_msg("queued %zu bytes", p.max_queued);
    if (grown > (8L << 20))
        fail_msg("the process grew by %ld bytes pushing %zu", grown, p.written);
    close_with_reset(c);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    while (!p.done)
        assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    assert_true(p.result == -ECONNRESET || p.result == -EPIPE);
    stop(srv);
    return 0;
}

static int line_echo(simul_stream *s, void *arg)
{
    (void)arg;
    const char *line;
    long n;
    while ((n = simul_stream_readline(s, &line)) > 0) {
        if (simul_stream_write(s, line, (size_t)n) < 0)
            break;
    }
    return 0;
}

SIMUL_STREAM_TEST_WRAP(trickle_one_byte_at_a_time)
{
    (void)arg;
    simul_server *srv;
    assert_int_equal(test_start_server("127.0.0.1", "0", line_echo, NULL, &srv), 0);
    simul_stream *c = connect_port(simul_server_port(srv));
    char text[1024];
    size_t len = 0;
    for (int i = 0; i < 30; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "line number %d\n", i);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(simul_stream_write(c, text + i, 1), 0);
        if (i % 3 == 0)
            assert_int_equal(simul_sleep(0.0005), 0);
    }
    size_t off = 0;
    for (int i = 0; i < 30; i++) {
        const char *line;
        long n = simul_stream_readline(c, &line);
        const char *nl = memchr(text + off, '\n', len - off);
        assert_int_equal(n, nl + 1 - (text + off));
        assert_memory_equal(line, text + off, (size_t)n);
        off += (size_t)n;
    }
    assert_int_equal(simul_stream_close(c), 0);
    stop(srv);
    return 0;
}

/* Reads the request to EOF, then answers with 4 MiB: EOF read while the writing goes on. */
static int big_reply(simul_stream *s, void *arg)
{
    (void)arg;
    char buf[4096];
    long n;
    size_t req = 0;
    while ((n = simul_stream_read(s, buf, sizeof buf)) > 0)
        req += (size_t)n;
    if (n < 0 || !simul_stream_at_eof(s))
        return -EPROTO;
    static char chunk[65536];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)(i % 253);
    for (int i = 0; i < 64; i++) {
        int rc = simul_stream_write(s, chunk, sizeof chunk);
        if (rc == 0)
            rc = simul_stream_drain(s);
        if (rc < 0)
            return rc;
    }
    return (int)req;
}

SIMUL_STREAM_TEST_WRAP(half_close_reading_eof_while_writing)
{
    (void)arg;
    simul_server *srv;
    assert_int_equal(test_start_server("127.0.0.1", "0", big_reply, NULL, &srv), 0);
    simul_stream *c = connect_port(simul_server_port(srv));
    assert_int_equal(simul_stream_write(c, "request body", 12), 0);
    assert_int_equal(simul_stream_write_eof(c), 0);
    size_t total = 0;
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    long n;
    while ((n = simul_stream_read(c, buf, 1 << 20)) > 0) {
        for (long i = 0; i < n; i++)
            assert_int_equal(buf[i], (char)((total + (size_t)i) % 65536 % 253));
        total += (size_t)n;
    }
    assert_int_equal(n, 0);
    assert_int_equal(total, 64u << 16);
    free(buf);
    assert_int_equal(simul_stream_close(c), 0);
    stop(srv);
    return 0;
}

/* ---- many connections ------------------------------------------------------------------------ */

enum { MANY = 2000 };

typedef struct crowd {
    int port;
    int connected, finished, failures;
    size_t peak;
    simul_server *srv;
} crowd;

static crowd the_crowd;

static int echo_once(simul_stream *s, int id, int i)
{
    char msg[64];
    int len = snprintf(msg, sizeof msg, "client %d message %d\n", id, i);
    const char *line;
    int rc = simul_stream_write(s, msg, (size_t)len);
    long n = rc < 0 ? rc : simul_stream_readline(s, &line);
    if (n < 0)
        return (int)n;
    return n == len && memcmp(line, msg, (size_t)len) == 0 ? 0 : -EPROTO;
}

static int client(void *arg)
{
    int id = (int)(intptr_t)arg;
    crowd *k = &the_crowd;
    char p[16];
    snprintf(p, sizeof p, "%d", k->port);
    simul_stream *s = NULL;
    int rc = simul_open_connection("127.0.0.1", p, &s);
    if (rc < 0) {
        k->failures++;
        return rc;
    }
    /* One round trip (the server has accepted it), then wait for everyone: all MANY connections
     * are open and served at once before any of them goes on. */
    rc = echo_once(s, id, 0);
    k->connected++;
    while (rc == 0 && k->connected + k->failures < MANY)
        rc = simul_sleep(0.002);
    size_t live = simul_server_connections(k->srv);
    if (live > k->peak)
        k->peak = live;
    for (int i = 1; i < 3 && rc == 0; i++)
        rc = echo_once(s, id, i);
    simul_stream_close(s);
    k->finished++;
    if (rc < 0)
        k->failures++;
    return rc;
}

SIMUL_TASK_TEST(thousands_of_connections)
{
    (void)arg;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t need = 2 * MANY + 64;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        fprintf(stderr, "skipped: RLIMIT_NOFILE hard limit %lu < %lu\n", (unsigned long)rl.rlim_max,
                (unsigned long)need);
        skip();
    }
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    crowd *k = &the_crowd;
    memset(k, 0, sizeof *k);
    simul_stream_server_opts o = {.host = "127.0.0.1", .port = "0", .backlog = MANY};
    assert_int_equal(simul_start_server_opts(&o, echo_handler, NULL, &k->srv), 0);
    k->port = simul_server_port(k->srv);
    static simul_task *tasks[MANY];
    static int results[MANY];
    for (int i = 0; i < MANY; i++)
        assert_int_equal(simul_task_spawn(&tasks[i], client, (void *)(intptr_t)i, NULL), 0);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 40.0), 0);
    int failed = simul_gather(tasks, MANY, results);
    assert_int_equal(simul_scope_end(&sc), 0);
    if (failed != 0) {
        for (int i = 0; i < MANY; i++)
            if (results[i] < 0) {
                fail_msg("%d clients failed, e.g. #%d: %s", failed, i, simul_errname(results[i]));
            }
    }
    assert_int_equal(k->finished, MANY);
    assert_int_equal(k->peak, MANY);
    stop(k->srv);
    return 0;
}

/* ---- fd exhaustion on accept ----------------------------------------------------------------- */

enum { EMFILE_CLIENTS = 100, EMFILE_ROOM = 20 };

static int emfile_handled;

static int count_handler(simul_stream *s, void *arg)
{
    (void)arg;
    char buf[256];
    while (simul_stream_read(s, buf, sizeof buf) > 0) {
    }
    emfile_handled++;
    return 0;
}

/* The limit that leaves exactly `room` fds free: new fds take the lowest free numbers, and the
 * limit bounds the numbers (fds already open above it stay). */
static rlim_t limit_leaving(int room)
{
    int fd = 0;
    for (int free_seen = 0;; fd++) {
        if (fcntl(fd, F_GETFD) < 0 && ++free_seen == room)
            break;
    }
    return (rlim_t)fd + 1;
}

static int emfile_child_main(void *arg)
{
    int report = *(int *)arg;
    simul_server *srv;
    int rc = simul_start_server("127.0.0.1", "0", count_handler, NULL, &srv);
    if (rc < 0)
        return 10;
    int port = simul_server_port(srv);
    /* Room for EMFILE_ROOM more fds (and the report pipe's, closed below): the rest of the
     * clients hit EMFILE in accept. Lowered before the port is reported, so that no client can
     * connect before it. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = limit_leaving(EMFILE_ROOM);
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 12;
    if (write(report, &port, sizeof port) != sizeof port)
        return 11;
    close(report);
    simul_scope sc;
    simul_scope_timeout(&sc, 20.0);
    while (emfile_handled < EMFILE_CLIENTS && simul_sleep(0.01) == 0) {
    }
    simul_scope_end(&sc);
    simul_server_close(srv);
    simul_server_wait_closed(srv);
    simul_server_free(srv);
    return emfile_handled == EMFILE_CLIENTS ? 0 : 13;
}

static void emfile_on_accept_backs_off(void **state)
{
    (void)state;
    int pp[2];
    assert_int_equal(pipe(pp), 0);
    double t0 = test_clock();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pp[0]);
        int rc = simul_run(emfile_child_main, &pp[1]);
        _exit(rc);
    }
    close(pp[1]);
    int port = 0;
    assert_int_equal(read(pp[0], &port, sizeof port), (ssize_t)sizeof port);
    close(pp[0]);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fds[EMFILE_CLIENTS];
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fds[i] >= 0);
        /* Completes in the kernel's backlog whether or not the server accepts. */
        assert_int_equal(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
    }
    /* The child is out of fds now; it must sit idle, not spin. */
    usleep(1000000);
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        close(fds[i]);
    /* Freed fds: it resumes accepting (each remaining connection reads EOF at once). */
    int status = 0;
    struct rusage ru;
    pid_t w = 0;
    while ((w = wait4(pid, &status, WNOHANG, &ru)) == 0 && test_clock() - t0 < 30)
        usleep(10000);
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the server did not accept every connection after fds were freed");
    }
    double wall = test_clock() - t0;
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("child exited with %d", WEXITSTATUS(status));
    if (cpu > 0.3 * wall)
        fail_msg("the server used %.3f s of CPU in %.3f s: it spun on EMFILE", cpu, wall);
}

/* ---- errors ------------------------------------------------------------------------------- */

SIMUL_TASK_TEST(refused_and_unresolvable_are_clear_errors)
{
    (void)arg;
    simul_server *srv;
    assert_int_equal(simul_start_server("127.0.0.1", "0", echo_handler, NULL, &srv), 0);
    char p[16];
    snprintf(p, sizeof p, "%d", simul_server_port(srv));
    stop(srv); /* nothing listens there now */
    simul_stream *c = (simul_stream *)1;
    assert_int_equal(simul_open_connection("127.0.0.1", p, &c), -ECONNREFUSED);
    assert_null(c);
    int rc = simul_open_connection("no-such-host.invalid", "80", &c);
    if (!simul_is_eai(rc))
        fail_msg("an unresolvable name gave %s", simul_errname(rc));
    fprintf(stderr, "unresolvable: %s (%s)\n", simul_errname(rc), simul_strerror(rc));
    assert_null(c);
    assert_int_equal(simul_open_unix_connection("/nonexistent/simul.sock", &c), -ENOENT);
    simul_server *bad = (simul_server *)1;
    assert_true(
        simul_is_eai(simul_start_server("no-such-host.invalid", "0", echo_handler, NULL, &bad)));
    assert_null(bad);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(peer_resets_mid_write),
    cmocka_unit_test(peer_resets_mid_write_wrap),
    cmocka_unit_test(peer_never_reads_memory_stays_bounded),
    cmocka_unit_test(peer_never_reads_memory_stays_bounded_wrap),
    cmocka_unit_test(trickle_one_byte_at_a_time),
    cmocka_unit_test(trickle_one_byte_at_a_time_wrap),
    cmocka_unit_test(half_close_reading_eof_while_writing),
    cmocka_unit_test(half_close_reading_eof_while_writing_wrap),
    cmocka_unit_test(thousands_of_connections),
    cmocka_unit_test(emfile_on_accept_backs_off),
    cmocka_unit_test(refused_and_unresolvable_are_clear_errors),
};

SIMUL_TEST_MAIN("test_stream_faults", tests)
