/* test_server.c — the server core (asyncio.Server) under streams: ports and sockets, close and
 * its idempotence, serve_forever (ended by close, or cancelled: then it closes), wait_closed
 * waiting for live connections, freeing a server whose connections live on, accepting in bounded
 * batches, Unix socket files, and listen errors.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "test_net_helpers.h"

static void ping(simul_stream *c)
{
    assert_int_equal(simul_stream_write(c, "ping\n", 5), 0);
    const char *line;
    assert_int_equal(simul_stream_readline(c, &line), 5);
    assert_memory_equal(line, "ping\n", 5);
}

SIMUL_TASK_TEST(server_basics)
{
    (void)arg;
    simul_server *srv;
    assert_int_equal(simul_start_server("127.0.0.1", "0", echo_handler, NULL, &srv), 0);
    int port = simul_server_port(srv);
    assert_true(port > 0 && port < 65536);
    int fds[4] = {-1, -1, -1, -1};
    assert_int_equal(simul_server_sockets(srv, fds, 4), 1);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&a, &len), 0);
    assert_int_equal(ntohs(a.sin_port), port);
    assert_int_equal(simul_server_sockets(srv, NULL, 0), 1);
    assert_true(simul_server_is_serving(srv));
    assert_int_equal(simul_server_connections(srv), 0);
    simul_stream *c = connect_port(port);
    ping(c);
    assert_int_equal(simul_server_connections(srv), 1);
    assert_int_equal(simul_server_close(srv), 0);
    assert_int_equal(simul_server_close(srv), 0); /* idempotent */
    assert_false(simul_server_is_serving(srv));
    assert_int_equal(simul_server_port(srv), -EBADF);
    assert_int_equal(simul_server_sockets(srv, fds, 4), 0);
    /* Closing stops listening, not the connections. */
    ping(c);
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    simul_stream *c2 = NULL;
    assert_int_equal(simul_open_connection("127.0.0.1", p, &c2), -ECONNREFUSED);
    assert_int_equal(simul_stream_close(c), 0);
    assert_int_equal(simul_server_wait_closed(srv), 0);
    assert_int_equal(simul_server_connections(srv), 0);
    simul_server_free(srv);
    simul_server_free(NULL);
    assert_int_equal(simul_server_close(NULL), -EINVAL);
    assert_int_equal(simul_server_wait_closed(NULL), -EINVAL);
    return 0;
}

static int serve(void *arg)
{
    return simul_server_serve_forever(arg);
}

SIMUL_TASK_TEST(serve_forever_ends_at_close)
{
    (void)arg;
    simul_server *srv;
    assert_int_equal(simul_start_server("127.0.0.1", "0", echo_handler, NULL, &srv), 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, serve, srv, NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_false(simul_task_done(t));
    assert_int_equal(simul_server_serve_forever(srv), -EBUSY); /* one at a time */
    simul_stream *c = connect_port(simul_server_port(srv));
    ping(c);
    assert_int_equal(simul_stream_close(c), 0);
    assert_int_equal(simul_server_close(srv), 0);
    int res = -1;
    assert_int_equal(simul_task_join(t, &res), 0);
    assert_int_equal(res, 0);
    assert_int_equal(simul_server_serve_forever(srv), 0); /* closed: at once */
    assert_int_equal(simul_server_wait_closed(srv), 0);
    simul_server_free(srv);
    return 0;
}

SIMUL_TASK_TEST(serve_forever_cancelled_closes)
{
    (void)arg;
    simul_server *srv;
    assert_int_equal(simul_start_server("127.0.0.1", "0", echo_handler, NULL, &srv), 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, serve, srv, NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_task_cancel(t), 0);
    int res = 0;
    assert_int_equal(simul_task_join(t, &res), 0);
    assert_int_equal(res, -ECANCELED);
    assert_false(simul_server_is_serving(srv));
    simul_server_free(srv);
    /* A deadline does the same. */
    assert_int_equal(simul_start_server("127.0.0.1", "0", echo_handler, NULL, &srv), 0);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.02), 0);
    assert_int_equal(simul_server_serve_forever(srv), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&sc), 1);
    assert_false(simul_server_is_serving(srv));
    simul_server_free(srv);
    return 0;
}

static int wait_closed_task(void *arg)
{
    return simul_server_wait_closed(arg);
}

SIMUL_TASK_TEST(wait_closed_waits_for_connections)
{
    (void)arg;
    simul_server *srv;
    assert_int_equal(simul_start_server("127.0.0.1", "0", echo_handler, NULL, &srv), 0);
    simul_stream *c1 = connect_port(simul_server_port(srv));
    simul_stream *c2 = connect_port(simul_server_port(srv));
    ping(c1);
    ping(c2);
    simul_task *w;
    assert_int_equal(simul_task_spawn(&w, wait_closed_task, srv, NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_false(simul_task_done(w)); /* not closed yet */
    assert_int_equal(simul_server_close(srv), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_false(simul_task_done(w)); /* two connections live */
    assert_int_equal(simul_stream_close(c1), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_false(simul_task_done(w));
    assert_int_equal(simul_server_connections(srv), 1);
    assert_int_equal(simul_stream_close(c2), 0);
    int res = -1;
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 5.0), 0);
    assert_int_equal(simul_task_join(w, &res), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    assert_int_equal(res, 0);
    simul_server_free(srv);
    return 0;
}

SIMUL_TASK_TEST(free_with_live_connections)
{
    (void)arg;
    simul_server *srv;
    assert_int_equal(simul_start_server("127.0.0.1", "0", echo_handler, NULL, &srv), 0);
    simul_stream *c = connect_port(simul_server_port(srv));
    ping(c);
    simul_server_free(srv); /* its memory stays while the connection lives */
    ping(c);
    assert_int_equal(simul_stream_close(c), 0);
    /* The handler ends (EOF) and the server's memory goes with it: ASan would tell. */
    assert_int_equal(simul_sleep(0.02), 0);
    return 0;
}

SIMUL_TASK_TEST(accepts_in_bounded_batches)
{
    (void)arg;
    simul_server *srv;
    simul_stream_server_opts o = {.host = "127.0.0.1", .port = "0", .backlog = 1024};
    assert_int_equal(simul_start_server_opts(&o, echo_handler, NULL, &srv), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(simul_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    enum { N = 400 };
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(fds[i] >= 0);
        int rc = connect(fds[i], (struct sockaddr *)&a, sizeof a);
        assert_true(rc == 0 || errno == EINPROGRESS);
    }
    /* All of them wait in the backlog at once; the loop takes them in batches and runs other
     * work in between: this task sees the count rise in steps, never all at once. */
    size_t last = 0, max_step = 0;
    int passes = 0;
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    while (simul_server_connections(srv) < N) {
        assert_int_equal(simul_yield(), 0);
        size_t now = simul_server_connections(srv);
        if (now - last > max_step)
            max_step = now - last;
        last = now;
        passes++;
    }
    assert_int_equal(simul_scope_end(&sc), 0);
    assert_true(max_step <= 128);
    assert_true(passes >= N / 128);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    assert_int_equal(simul_server_close(srv), 0);
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    assert_int_equal(simul_server_wait_closed(srv), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    simul_server_free(srv);
    return 0;
}

SIMUL_TASK_TEST(unix_socket_file_lifecycle)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/simul_server_%d.sock", (int)getpid());
    unlink(path);
    simul_server *a, *b;
    assert_int_equal(simul_start_unix_server(path, echo_handler, NULL, &a), 0);
    /* A live server's path is not taken over. */
    assert_int_equal(simul_start_unix_server(path, echo_handler, NULL, &b), -EADDRINUSE);
    /* Another server on the same path after the file was removed: closing the first one must
     * not remove the second one's file. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(simul_start_unix_server(path, echo_handler, NULL, &b), 0);
    assert_int_equal(simul_server_close(a), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    simul_stream *c = NULL;
    assert_int_equal(simul_open_unix_connection(path, &c), 0);
    ping(c);
    assert_int_equal(simul_stream_close(c), 0);
    assert_int_equal(simul_server_close(b), 0);
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(simul_server_wait_closed(a), 0);
    assert_int_equal(simul_server_wait_closed(b), 0);
    simul_server_free(a);
    simul_server_free(b);
    /* A stale file (its server died without removing it) is replaced. */
    int fd = simul_unix_listen(path, 1);
    assert_true(fd >= 0);
    assert_int_equal(close(fd), 0); /* the file stays, nobody answers */
    assert_int_equal(simul_start_unix_server(path, echo_handler, NULL, &a), 0);
    assert_int_equal(simul_server_close(a), 0);
    assert_int_equal(simul_server_wait_closed(a), 0);
    simul_server_free(a);
    return 0;
}

SIMUL_TASK_TEST(listen_errors_and_reuseport)
{
    (void)arg;
    simul_server *a, *b = (simul_server *)1;
    assert_int_equal(simul_start_server("127.0.0.1", "0", echo_handler, NULL, &a), 0);
    char p[16];
    snprintf(p, sizeof p, "%d", simul_server_port(a));
    assert_int_equal(simul_start_server("127.0.0.1", p, echo_handler, NULL, &b), -EADDRINUSE);
    assert_null(b);
    simul_server_free(a);
    /* SO_REUSEPORT: two servers on one port. */
    simul_stream_server_opts o = {
        .host = "127.0.0.1", .port = "0", .flags = SIMUL_LISTEN_REUSEPORT};
    assert_int_equal(simul_start_server_opts(&o, echo_handler, NULL, &a), 0);
    snprintf(p, sizeof p, "%d", simul_server_port(a));
    o.port = p;
    assert_int_equal(simul_start_server_opts(&o, echo_handler, NULL, &b), 0);
    assert_int_equal(simul_server_port(a), simul_server_port(b));
    simul_server_free(a);
    simul_server_free(b);
    simul_stream_server_opts both = {.host = "127.0.0.1", .unix_path = "/tmp/x.sock"};
    assert_int_equal(simul_start_server_opts(&both, echo_handler, NULL, &a), -EINVAL);
    return 0;
}

/* Servers and streams are open I/O handles: the loop refuses to close while one is open. */
static void loop_close_refuses_open_handles(void **state)
{
    (void)state;
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    simul_server *srv;
    /* A numeric host needs no task: nothing suspends. */
    assert_int_equal(simul_start_server("127.0.0.1", "0", echo_handler, NULL, &srv), 0);
    assert_int_equal(simul_loop_close(loop), -EBUSY);
    simul_server_close(srv);
    assert_int_equal(simul_loop_close(loop), -EBUSY); /* closed, not yet freed */
    simul_server_free(srv);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(sv[0], &s), 0);
    assert_int_equal(simul_loop_close(loop), -EBUSY);
    assert_int_equal(simul_stream_close(s), 0);
    close(sv[1]);
    assert_int_equal(simul_loop_close(loop), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(server_basics),
    cmocka_unit_test(serve_forever_ends_at_close),
    cmocka_unit_test(serve_forever_cancelled_closes),
    cmocka_unit_test(wait_closed_waits_for_connections),
    cmocka_unit_test(free_with_live_connections),
    cmocka_unit_test(accepts_in_bounded_batches),
    cmocka_unit_test(unix_socket_file_lifecycle),
    cmocka_unit_test(listen_errors_and_reuseport),
    cmocka_unit_test(loop_close_refuses_open_handles),
};

SIMUL_TEST_MAIN("test_server", tests)
