/* test_redis_tls.c — the client over TLS (libsimul-tls) against redis-server --tls-port with the
 * suite's own certificates (tests/tls/make_certs.sh): commands, automatic pipelining, a blocking
 * command and a transaction on dedicated connections (made through the same callback, so over
 * TLS too), reconnection and resubscription after the server drops the connection, and a
 * certificate the client must refuse. Its own server: the suite's shared one has no TLS port. */
#include "redis_server.h"

#ifdef SIMUL_REDIS_TLS_CERTS
#include <simul/tls.h>

typedef struct tls_target {
    simul_tls_config *cfg;
    const char *port;
    int connects;
} tls_target;

static int tls_connect(void *arg, simul_stream **out)
{
    tls_target *t = arg;
    t->connects++;
    char why[256];
    return simul_tls_open_connection("127.0.0.1", t->port, t->cfg, out, why, sizeof why);
}

static void start_tls_server(server *sv, char *tls_port, size_t len)
{
    snprintf(tls_port, len, "%d", free_port());
    const char *extra[] = {"--tls-port",
                           tls_port,
                           "--tls-cert-file",
                           SIMUL_REDIS_TLS_CERTS "/server.crt",
                           "--tls-key-file",
                           SIMUL_REDIS_TLS_CERTS "/server.key",
                           "--tls-ca-cert-file",
                           SIMUL_REDIS_TLS_CERTS "/ca.crt",
                           "--tls-auth-clients",
                           "no",
                           NULL};
    start_own_server(sv, extra);
    while (!accepts(atoi(tls_port))) /* opened with the plain port; a poll for certainty */
        usleep(1000);
}

/* "laddr=127.0.0.1:P " of CLIENT INFO: which port the server saw this connection on. */
static bool on_port(const simul_redis_reply *r, const char *port)
{
    char want[64];
    snprintf(want, sizeof want, "laddr=127.0.0.1:%s ", port);
    return r && r->str && strstr(r->str, want);
}

typedef struct blpop_task {
    simul_redis_conn *c;
    int rc;
    simul_redis_reply *r;
} blpop_task;

static int blpop_main(void *arg)
{
    blpop_task *b = arg;
    b->rc = simul_redis_command(b->c, &b->r, "BLPOP %s 0", "tq");
    return 0;
}

SIMUL_TASK_TEST(tls_commands_pool_and_reconnect)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 30), 0);
    server sv;
    char tls_port[16];
    start_tls_server(&sv, tls_port, sizeof tls_port);
    tls_target tt = {.port = tls_port};
    assert_int_equal(simul_tls_config_new_client(&tt.cfg), 0);
    assert_int_equal(
        simul_tls_config_set_ca(tt.cfg, SIMUL_REDIS_TLS_CERTS "/ca.crt", NULL, NULL, 0), 0);
    simul_redis_opts o = {.connect_cb = tls_connect, .connect_arg = &tt, .client_name = "tls"};
    simul_redis_conn *c = NULL, *probe = connect_tcp(&sv, 2);
    assert_int_equal(simul_redis_connect(&o, &c), 0);
    assert_int_equal(simul_redis_protocol(c), 3);

    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
    assert_true(on_port(r, tls_port));
    simul_redis_reply_free(r);
    /* A value bigger than a TLS record, both ways. */
    size_t n = 1u << 20;
    char *v = malloc(n);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)(i * 7);
    assert_int_equal(simul_redis_command(c, &r, "SET big %b", v, n), 0);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_command(c, &r, "GET big"), 0);
    assert_int_equal(r->len, n);
    assert_memory_equal(r->str, v, n);
    simul_redis_reply_free(r);
    free(v);

    /* A blocking command: its dedicated connection is made through the callback, over TLS. */
    blpop_task b = {.c = c};
    simul_task *bt;
    assert_int_equal(simul_task_spawn(&bt, blpop_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    assert_int_equal(tt.connects, 2);
    call_expect(c, "OK", "SET %s %s", "beside", "the BLPOP");
    assert_int_equal(call_int(c, "RPUSH tq %s", "x"), 1);
    assert_int_equal(simul_task_join(bt, NULL), 0);
    assert_int_equal(b.rc, 0);
    simul_redis_reply_free(b.r);
    simul_redis_txn *t = NULL;
    assert_int_equal(simul_redis_txn_begin(c, NULL, 0, &t), 0);
    assert_int_equal(simul_redis_txn_command(t, &r, "CLIENT INFO"), 0);
    assert_true(on_port(r, tls_port));
    simul_redis_reply_free(r);
    simul_redis_txn_close(t);

    /* Pub/sub, then the server drops the connection: reconnected over TLS, resubscribed. */
    const char *chans[] = {"tch"};
    simul_redis_subscription *s = NULL;
    assert_int_equal(simul_redis_subscribe(c, 0, chans, 1, 0, &s), 0);
    long long id = call_int(c, "CLIENT %s", "ID");
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", id);
    assert_int_equal(call_int(probe, "CLIENT KILL ID %s", ids), 1);
    while (call_int(probe, "PUBLISH tch %s", "after") != 1)
        assert_int_equal(simul_yield(), 0);
    simul_redis_reply *m = NULL;
    assert_int_equal(simul_redis_subscription_next(s, &m), 0);
    assert_string_equal(simul_redis_reply_elem(m, 2)->str, "after");
    simul_redis_reply_free(m);
    assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
    assert_true(on_port(r, tls_port));
    simul_redis_reply_free(r);
    simul_redis_stats st;
    simul_redis_get_stats(c, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(tt.connects, 3);
    simul_redis_subscription_close(s);
    simul_redis_close(c);
    simul_redis_close(probe);
    simul_tls_config_free(tt.cfg);
    simul_scope_end(&guard);
    stop_server(&sv);
    return 0;
}

SIMUL_TASK_TEST(tls_untrusted_server_refused)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 30), 0);
    server sv;
    char tls_port[16];
    start_tls_server(&sv, tls_port, sizeof tls_port);
    /* Trusting only the client CA: the server's chain does not verify. */
    tls_target tt = {.port = tls_port};
    assert_int_equal(simul_tls_config_new_client(&tt.cfg), 0);
    assert_int_equal(
        simul_tls_config_set_ca(tt.cfg, SIMUL_REDIS_TLS_CERTS "/clientca.crt", NULL, NULL, 0), 0);
    simul_redis_opts o = {.connect_cb = tls_connect, .connect_arg = &tt};
    simul_redis_conn *c = NULL;
    int rc = simul_redis_connect(&o, &c);
    assert_true(rc < 0);
    assert_int_not_equal(rc, -ETIMEDOUT); /* refused at once, by the verification */
    assert_null(c);
    simul_tls_config_free(tt.cfg);
    simul_scope_end(&guard);
    stop_server(&sv);
    return 0;
}

#else /* no libsimul-tls */

SIMUL_TASK_TEST(tls_commands_pool_and_reconnect)
{
    (void)arg;
    skip(); /* libsimul-tls is not built (OpenSSL 3 missing) */
    return 0;
}

SIMUL_TASK_TEST(tls_untrusted_server_refused)
{
    (void)arg;
    skip();
    return 0;
}

#endif

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_commands_pool_and_reconnect),
        cmocka_unit_test(tls_untrusted_server_refused),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_redis_tls");
}
