/* test_http_accept.c — libsimul-http's accept loop and connection count. Out of fds: the test
 * lowers RLIMIT_NOFILE and fills the table, so accept fails with EMFILE; the server must keep
 * serving the connections it has, back off (simul_backoff) instead of spinning, and accept the
 * waiting clients once fds are freed, the back-off reset. simul_http_server_wait_connections
 * returns once connections end. Every wait is on the server's state, with a deadline. */
#include "test_main_helpers.h"

#include <arpa/inet.h>
#include <simul/http.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "test_http_server_helpers.h"

#include "../../../src/http/internal.h"

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

enum { WAITING = 8, ROOM = 16, MAX_FILLERS = 1024 };

static int h_hello(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    return simul_http_response_text(res, 200, "hello");
}

typedef struct fixture {
    int port;
    client *keep;          /* connected before the table was filled: served throughout */
    client *wait[WAITING]; /* sockets made before, connected while the table is full */
} fixture;

/* A request on the kept connection and its answer (on a pool thread). */
static int c_keep(void *arg)
{
    fixture *f = arg;
    response r;
    CHECK(cl_send(f->keep, GET("/")) == 0);
    CHECK(cl_response(f->keep, &r, false) == 0);
    int ok = r.status == 200 && strcmp(r.body, "hello") == 0;
    resp_free(&r);
    CHECK(ok);
    return 0;
}

/* One more request on a kept connection (on a pool thread). */
static int c_keep_on(void *arg)
{
    client *c = arg;
    response r;
    CHECK(cl_send(c, GET("/")) == 0 && cl_response(c, &r, false) == 0);
    int ok = r.status == 200;
    resp_free(&r);
    CHECK(ok);
    return 0;
}

/* Each waiting client's answer (on a pool thread, once fds are free again). */
static int c_waiting(void *arg)
{
    fixture *f = arg;
    for (int i = 0; i < WAITING; i++) {
        response r;
        CHECK(cl_response(f->wait[i], &r, false) == 0);
        int ok = r.status == 200 && strcmp(r.body, "hello") == 0;
        resp_free(&r);
        CHECK(ok);
    }
    return 0;
}

/* A fresh connection (a new fd on both sides) is served. */
static int c_fresh(void *arg)
{
    fixture *f = arg;
    response r;
    CHECK(cl_once(f->port, GET("/"), &r, false, NULL) == 0);
    int ok = r.status == 200;
    resp_free(&r);
    CHECK(ok);
    return 0;
}

static bool conns_are(simul_http_server *srv, size_t n)
{
    return simul_http_server_connections(srv) == n;
}

SIMUL_TASK_TEST(accept_backs_off_on_emfile_and_recovers)
{
    (void)arg;
    fixture f = {0};
    simul_http_app *app;
    simul_http_server *srv;
    assert_int_equal(simul_http_app_new(&app), 0);
    assert_int_equal(simul_http_route(app, "GET", "/", h_hello, NULL), 0);
    assert_int_equal(simul_http_serve(app, "127.0.0.1", "0", NULL, &srv), 0);
    f.port = simul_http_server_port(srv);

    /* Before the table fills: one kept-alive connection (served once, so the pool thread and
     * the server's side of it exist), and the waiting clients' sockets, not yet connected. */
    f.keep = malloc(sizeof *f.keep);
    assert_int_equal(cl_connect(f.keep, f.port), 0);
    assert_int_equal(client_run(c_keep, &f), 0);
    for (int i = 0; i < WAITING; i++) {
        f.wait[i] = malloc(sizeof *f.wait[i]);
        memset(f.wait[i], 0, sizeof *f.wait[i]);
        f.wait[i]->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(f.wait[i]->fd >= 0);
        struct timeval tv = {.tv_sec = 20}; /* a bound on the reads, never a measure */
        setsockopt(f.wait[i]->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }

    /* Fill the table: a limit ROOM above the lowest free fd, then dups until EMFILE. */
    struct rlimit saved, rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC); /* the lowest free fd, and dup's source */
    assert_true(null >= 0);
    rl = saved;
    rl.rlim_cur = (rlim_t)null + ROOM;
    if (saved.rlim_cur != RLIM_INFINITY && rl.rlim_cur > saved.rlim_cur) {
        rl.rlim_cur = saved.rlim_cur; /* already near the limit: fill what is left */
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    static int fillers[MAX_FILLERS];
    int nfill = 0;
    for (;;) {
        int d = fcntl(null, F_DUPFD_CLOEXEC, 0);
        if (d < 0) {
            assert_int_equal(errno, EMFILE);
            break;
        }
        assert_true(nfill < MAX_FILLERS);
        fillers[nfill++] = d;
    }
    assert_true(nfill < MAX_FILLERS);

    /* The clients connect (no new fd on their side: the kernel completes them in the backlog)
     * and send their request; the server cannot accept them. */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < WAITING; i++) {
        assert_int_equal(connect(f.wait[i]->fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(cl_send(f.wait[i], GET("/")), 0);
    }

    /* It backs off: failures counted one per back-off, in a row (no success in between). */
    int64_t errors = 0;
    unsigned in_a_row = 0;
    double t0 = test_clock();
    for (int i = 0; i < 20000; i++) { /* a bounded wait on state */
        http_server_accept_state(srv, &errors, &in_a_row);
        if (errors >= 3) {
            break;
        }
        assert_int_equal(simul_sleep(0.001), 0);
    }
    double waited = test_clock() - t0;
    assert_true(errors >= 3);
    assert_int_equal((int64_t)in_a_row, errors);
    /* Waits of 10 ms then 20 ms lie between the first and the third failure: a loop that
     * retried at once would have failed thousands of times by now (a lower bound only). */
    assert_true(waited >= 0.03);
    assert_true(conns_are(srv, 1)); /* the kept connection only: nobody was accepted */

    /* It keeps running: the connection it has is served while the table is full. */
    assert_int_equal(client_run(c_keep, &f), 0);
    http_server_accept_state(srv, &errors, &in_a_row);
    assert_true(in_a_row >= 3); /* still backing off */

    /* fds freed: the next retry accepts every waiting client, and the back-off starts over. */
    while (nfill > 0) {
        close(fillers[--nfill]);
    }
    assert_int_equal(client_run(c_waiting, &f), 0);
    http_server_accept_state(srv, &errors, &in_a_row);
    assert_int_equal(in_a_row, 0);
    assert_true(conns_are(srv, 1 + WAITING)); /* all accepted, kept alive */
    close(null);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(client_run(c_fresh, &f), 0);
    http_server_accept_state(srv, &errors, &in_a_row);
    assert_int_equal(in_a_row, 0);

    for (int i = 0; i < WAITING; i++) {
        close(f.wait[i]->fd);
        free(f.wait[i]);
    }
    close(f.keep->fd);
    free(f.keep);
    for (int i = 0; i < 20000 && !conns_are(srv, 0); i++) {
        assert_int_equal(simul_sleep(0.001), 0); /* a bounded wait on state */
    }
    assert_true(conns_are(srv, 0));
    assert_int_equal(simul_http_server_shutdown(srv, 10), 0);
    simul_http_server_free(srv);
    simul_http_app_free(app);
    return 0;
}

/* ---- simul_http_server_wait_connections ---------------------------------------------------- */

typedef struct waiter {
    simul_http_server *srv;
    size_t n;
    int rc;
} waiter;

static int wait_task(void *arg)
{
    waiter *w = arg;
    w->rc = simul_http_server_wait_connections(w->srv, w->n);
    return 0;
}

enum { KEPT = 3 };

typedef struct kept {
    int port;
    client *c[KEPT];
} kept;

/* KEPT connections, each answered once and kept alive (on a pool thread). */
static int c_open(void *arg)
{
    kept *k = arg;
    for (int i = 0; i < KEPT; i++) {
        response r;
        CHECK(cl_connect(k->c[i], k->port) == 0);
        CHECK(cl_send(k->c[i], GET("/")) == 0 && cl_response(k->c[i], &r, false) == 0);
        int ok = r.status == 200;
        resp_free(&r);
        CHECK(ok);
    }
    return 0;
}

SIMUL_TASK_TEST(wait_connections_returns_as_they_end)
{
    (void)arg;
    simul_http_app *app;
    simul_http_server *srv;
    assert_int_equal(simul_http_app_new(&app), 0);
    assert_int_equal(simul_http_route(app, "GET", "/", h_hello, NULL), 0);
    assert_int_equal(simul_http_serve(app, "127.0.0.1", "0", NULL, &srv), 0);
    assert_int_equal(simul_http_server_wait_connections(NULL, 0), -EINVAL);
    assert_int_equal(simul_http_server_wait_connections(srv, 0), 0); /* none open: at once */

    kept k = {.port = simul_http_server_port(srv)};
    client **cs = k.c;
    for (int i = 0; i < KEPT; i++) {
        cs[i] = malloc(sizeof *cs[i]);
    }
    assert_int_equal(client_run(c_open, &k), 0);
    assert_int_equal(simul_http_server_connections(srv), KEPT);
    assert_int_equal(simul_http_server_wait_connections(srv, KEPT), 0); /* already at most */

    /* A waiter for one left waits while three are open, through a connection's request... */
    waiter w = {.srv = srv, .n = 1, .rc = 1};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, wait_task, &w, NULL), 0);
    assert_int_equal(simul_yield(), 0);
    assert_false(simul_task_done(t));
    assert_int_equal(client_run(c_keep_on, cs[0]), 0);
    assert_false(simul_task_done(t));
    /* ...and through the first of two closes; the second lets it go. */
    close(cs[0]->fd);
    for (int i = 0; i < 20000 && simul_http_server_connections(srv) > KEPT - 1; i++) {
        assert_int_equal(simul_sleep(0.001), 0); /* a bounded wait on state */
    }
    assert_int_equal(simul_http_server_connections(srv), KEPT - 1);
    assert_int_equal(simul_yield(), 0);
    assert_false(simul_task_done(t));
    close(cs[1]->fd);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 20.0), 0); /* a bound, never a measure */
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    assert_int_equal(w.rc, 0);
    assert_true(simul_http_server_connections(srv) <= 1);

    /* A waiter cancelled says so. */
    w = (waiter){.srv = srv, .n = 0, .rc = 1};
    assert_int_equal(simul_task_spawn(&t, wait_task, &w, NULL), 0);
    assert_int_equal(simul_yield(), 0);
    simul_task_cancel(t);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(w.rc, -ECANCELED);

    close(cs[2]->fd);
    for (int i = 0; i < KEPT; i++) {
        free(cs[i]);
    }
    assert_int_equal(simul_scope_timeout(&sc, 20.0), 0);
    assert_int_equal(simul_http_server_wait_connections(srv, 0), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    assert_int_equal(simul_http_server_connections(srv), 0);
    assert_int_equal(simul_http_server_shutdown(srv, 10), 0);
    simul_http_server_free(srv);
    simul_http_app_free(app);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accept_backs_off_on_emfile_and_recovers),
        cmocka_unit_test(wait_connections_returns_as_they_end),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_http_accept");
}
