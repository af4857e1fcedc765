/* test_stream_share.c — a shareable stream (simul_stream_retain / _release): a broadcast server
 * whose handlers retain their stream and return at once; a broadcaster writes to every client
 * after the handlers are gone, then lets go, and the last release closes each connection (the
 * clients read the message, then EOF), while the server counts the connections until then. */
#include "test_main_helpers.h"

#define CLIENTS 3

typedef struct chat {
    simul_stream *clients[CLIENTS];
    int n;
    int handlers_returned;
} chat;

static int handler(simul_stream *s, void *arg)
{
    chat *c = arg;
    assert_int_equal(simul_stream_retain(s), 0);
    c->clients[c->n++] = s;
    c->handlers_returned++;
    return 0; /* the stream stays open: the chat holds it */
}

static int broadcast(void *arg)
{
    chat *c = arg;
    simul_server *srv;
    assert_int_equal(simul_start_server("127.0.0.1", "0", handler, c, &srv), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", simul_server_port(srv));
    simul_stream *cl[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_equal(simul_open_connection("127.0.0.1", port, &cl[i]), 0);
    }
    while (c->handlers_returned < CLIENTS) { /* wait for state: every handler has returned */
        assert_int_equal(simul_yield(), 0);
    }
    /* After their handlers returned, the streams are still usable through the holds. */
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_equal(simul_stream_write(c->clients[i], "hello all\n", 10), 0);
        assert_int_equal(simul_stream_drain(c->clients[i]), 0);
    }
    /* A second holder on the first: its release leaves the stream open. */
    assert_int_equal(simul_stream_retain(c->clients[0]), 0);
    assert_int_equal(simul_stream_release(c->clients[0]), 0);
    assert_false(simul_stream_is_closing(c->clients[0]));
    for (int i = 0; i < CLIENTS; i++) {
        const char *line;
        long n = simul_stream_readline(cl[i], &line);
        assert_int_equal(n, 10);
        assert_memory_equal(line, "hello all\n", 10);
    }
    /* The last holder lets go: each connection closes, the client sees EOF. */
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_equal(simul_stream_release(c->clients[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        char b[8];
        assert_int_equal(simul_stream_read(cl[i], b, sizeof b), 0);
        assert_int_equal(simul_stream_close(cl[i]), 0);
    }
    /* The server counted them until then: wait_closed returns now. */
    assert_int_equal(simul_server_close(srv), 0);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    assert_int_equal(simul_server_wait_closed(srv), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    simul_server_free(srv);
    return 0;
}

static void broadcast_after_handlers_returned(void **state)
{
    (void)state;
    chat c = {0};
    assert_int_equal(simul_run(broadcast, &c), 0);
    assert_int_equal(c.n, CLIENTS);
}

static int server_waits_for_last_release(void *arg)
{
    chat *c = arg;
    simul_server *srv;
    assert_int_equal(simul_start_server("127.0.0.1", "0", handler, c, &srv), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", simul_server_port(srv));
    simul_stream *cl;
    assert_int_equal(simul_open_connection("127.0.0.1", port, &cl), 0);
    while (c->handlers_returned < 1) {
        assert_int_equal(simul_yield(), 0);
    }
    assert_int_equal(simul_server_close(srv), 0);
    /* Still held: wait_closed does not return yet. */
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.05), 0);
    assert_int_equal(simul_server_wait_closed(srv), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&sc), 1);
    assert_int_equal(simul_stream_release(c->clients[0]), 0);
    assert_int_equal(simul_server_wait_closed(srv), 0);
    simul_server_free(srv);
    assert_int_equal(simul_stream_close(cl), 0);
    return 0;
}

static void server_counts_shared_connections(void **state)
{
    (void)state;
    chat c = {0};
    assert_int_equal(simul_run(server_waits_for_last_release, &c), 0);
}

static int bad_uses(void *arg)
{
    (void)arg;
    assert_int_equal(simul_stream_retain(NULL), -EINVAL);
    assert_int_equal(simul_stream_release(NULL), -EINVAL);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    simul_stream *r;
    assert_int_equal(simul_stream_from_fd(fds[0], &r), 0);
    assert_int_equal(simul_stream_retain(r), 0);
    assert_int_equal(simul_stream_abort(r), 0);
    assert_int_equal(simul_stream_release(r), 0);   /* a hold let go */
    assert_int_equal(simul_stream_release(r), 0);   /* the last: close frees the aborted one */
    close(fds[1]);
    return 0;
}

static void retain_release_bad_uses(void **state)
{
    (void)state;
    assert_int_equal(simul_run(bad_uses, NULL), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(broadcast_after_handlers_returned),
    cmocka_unit_test(server_counts_shared_connections),
    cmocka_unit_test(retain_release_bad_uses),
};

SIMUL_TEST_MAIN("test_stream_share", tests)
