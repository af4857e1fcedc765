/* test_redis_edges.c — the edges the issue lists, against real servers: 10,000 commands in one
 * explicit pipeline (one write), binary keys (every byte value), a server stopped with SIGSTOP
 * while commands wait (their deadlines end them; the connection survives and the late replies
 * are dropped), a reply over the parser's limit from a real server (-EMSGSIZE, connection closed
 * and made again). The SIGSTOP case runs its own server; the others share the suite's. */
#include "redis_server.h"

SIMUL_TASK_TEST(ten_thousand_pipelined_commands)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 30);
    simul_redis_conn *c = connect_tcp(&sv, 0);
    enum { N = 10000 };
    simul_redis_pipeline *p = NULL;
    assert_int_equal(simul_redis_pipeline_new(c, &p), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(simul_redis_pipeline_add(p, "INCR %s", "n"), 0);
    assert_int_equal(simul_redis_pipeline_len(p), N);
    static simul_redis_reply *r[N];
    static int res[N];
    uint64_t writes = stats(c).writes;
    assert_int_equal(simul_redis_pipeline_exec(p, r, res), 0);
    assert_int_equal(stats(c).writes - writes, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(res[i], 0);
        assert_int_equal(r[i]->integer, i + 1); /* in order */
        simul_redis_reply_free(r[i]);
    }
    simul_redis_pipeline_free(p);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

SIMUL_TASK_TEST(binary_keys_every_byte)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 30);
    for (int proto = 2; proto <= 3; proto++) {
        simul_redis_conn *c = connect_tcp(&sv, proto);
        /* 256 one-byte keys, and one key of all 256 bytes; values hold CR, LF, NUL. */
        for (int b = 0; b < 256; b++) {
            char key = (char)b, val[4] = {'\r', '\n', 0, (char)b};
            const char *argv[] = {"SET", &key, val};
            const size_t lens[] = {3, 1, 4};
            simul_redis_reply *r = NULL;
            assert_int_equal(simul_redis_command_argv(c, 0, &r, 3, argv, lens), 0);
            simul_redis_reply_free(r);
        }
        char all[256];
        for (int b = 0; b < 256; b++)
            all[b] = (char)b;
        simul_redis_reply *r = NULL;
        assert_int_equal(simul_redis_command(c, &r, "SET %b %b", all, sizeof all, all, sizeof all),
                         0);
        simul_redis_reply_free(r);
        assert_int_equal(call_int(c, "DBSIZE%s", ""), 257);
        for (int b = 0; b < 256; b++) {
            char key = (char)b, want[4] = {'\r', '\n', 0, (char)b};
            assert_int_equal(simul_redis_command(c, &r, "GET %b", &key, (size_t)1), 0);
            assert_int_equal(r->type, SIMUL_REDIS_STRING);
            assert_int_equal(r->len, 4);
            assert_memory_equal(r->str, want, 4);
            simul_redis_reply_free(r);
        }
        assert_int_equal(simul_redis_command(c, &r, "GET %b", all, sizeof all), 0);
        assert_int_equal(r->len, 256);
        assert_memory_equal(r->str, all, 256);
        simul_redis_reply_free(r);
        /* Keys come back binary too. */
        assert_int_equal(simul_redis_command(c, &r, "KEYS %s", "*"), 0);
        assert_int_equal(simul_redis_reply_len(r), 257);
        simul_redis_reply_free(r);
        EXPECT_REPLY(c, "OK", "FLUSHDB");
        simul_redis_close(c);
    }
    redis_case_end(&sv, &guard);
    return 0;
}

typedef struct waiter {
    simul_redis_conn *c;
    int i, rc;
} waiter;

static int waiter_main(void *arg)
{
    waiter *w = arg;
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.2), 0);
    simul_redis_reply *r = NULL;
    char key[16];
    snprintf(key, sizeof key, "w%d", w->i);
    w->rc = simul_redis_command(w->c, &r, "INCR %s", key);
    simul_redis_reply_free(r);
    simul_scope_end(&sc);
    return 0;
}

SIMUL_TASK_TEST(server_stopped_commands_meet_deadline)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 30), 0);
    server sv;
    start_own_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 0);
    call_expect(c, "OK", "SET %s %s", "k", "before");
    assert_int_equal(kill(sv.pid, SIGSTOP), 0);

    enum { W = 20 };
    waiter w[W];
    simul_task *t[W];
    for (int i = 0; i < W; i++) {
        w[i] = (waiter){.c = c, .i = i};
        assert_int_equal(simul_task_spawn(&t[i], waiter_main, &w[i], NULL), 0);
    }
    assert_int_equal(simul_gather(t, W, NULL), 0);
    for (int i = 0; i < W; i++)
        assert_int_equal(w[i].rc, -ETIMEDOUT);
    /* A new connection to the stopped server: the kernel accepts, the handshake times out. */
    simul_redis_opts o = {.host = "127.0.0.1", .port = sv.portstr, .connect_timeout = 0.2};
    simul_redis_conn *c2 = NULL;
    assert_int_equal(simul_redis_connect(&o, &c2), -ETIMEDOUT);
    assert_null(c2);
    assert_true(simul_redis_connected(c)); /* deadlines never fail the connection */

    assert_int_equal(kill(sv.pid, SIGCONT), 0);
    /* The late replies arrive first and are dropped; this caller gets its own. */
    call_expect(c, "before", "GET %s", "k", NULL);
    simul_redis_stats st = stats(c);
    assert_int_equal(st.dropped_replies, W);
    assert_int_equal(st.failures, 0);
    /* The timed-out INCRs did run (the server had them): at-most-once is the caller's call. */
    for (int i = 0; i < W; i++) {
        char key[16];
        snprintf(key, sizeof key, "w%d", i);
        call_expect(c, "1", "GET %s", key, NULL);
    }
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

SIMUL_TASK_TEST(real_reply_over_limit_closes_connection)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 30);
    simul_redis_conn *big = connect_tcp(&sv, 0);
    size_t n = 2u << 20;
    char *v = malloc(n);
    memset(v, 'x', n);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(big, &r, "SET big %b", v, n), 0);
    simul_redis_reply_free(r);
    free(v);

    simul_redis_limits lim = {.max_bulk = 1u << 20};
    simul_redis_opts o = {.host = "127.0.0.1", .port = sv.portstr, .limits = &lim};
    simul_redis_conn *c = NULL;
    assert_int_equal(simul_redis_connect(&o, &c), 0);
    long long id = call_int(c, "CLIENT %s", "ID");
    assert_int_equal(simul_redis_command(c, &r, "GET big"), -EMSGSIZE);
    assert_null(r);
    /* The connection was closed (the rest of the value is never read) and made again. */
    call_expect(c, "OK", "SET %s %s", "small", "fits");
    call_expect(c, "fits", "GET %s", "small", NULL);
    assert_true(call_int(c, "CLIENT %s", "ID") != id);
    simul_redis_stats st = stats(c);
    assert_int_equal(st.failures, 1);
    assert_int_equal(st.connects, 2);
    /* The server no longer has the first connection. */
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", id);
    simul_redis_reply *list = NULL;
    assert_int_equal(simul_redis_command(big, &list, "CLIENT LIST ID %s", ids), 0);
    assert_int_equal(list->len, 0);
    simul_redis_reply_free(list);
    simul_redis_close(c);
    simul_redis_close(big);
    redis_case_end(&sv, &guard);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ten_thousand_pipelined_commands),
        cmocka_unit_test(binary_keys_every_byte),
        cmocka_unit_test(server_stopped_commands_meet_deadline),
        cmocka_unit_test(real_reply_over_limit_closes_connection),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_redis_edges");
}
