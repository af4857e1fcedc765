/* test_redis_txn.c — MULTI/EXEC with WATCH on dedicated connections, the optimistic-retry loop,
 * and scripts by SHA-1 with the NOSCRIPT fallback, against the suite's redis-server. A conflict
 * is made deterministically (another connection writes the watched key between WATCH and EXEC),
 * never left to chance. */
#include "redis_server.h"

SIMUL_TASK_TEST(watch_conflict_is_distinct)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_tcp(&sv, 0);
    call_expect(c, "OK", "SET %s %s", "k", "1");

    const char *watch[] = {"k"};
    simul_redis_txn *t = NULL;
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_txn_begin(c, watch, 1, &t), 0);
    assert_int_equal(simul_redis_txn_command(t, &r, "GET k"), 0);
    assert_string_equal(r->str, "1");
    simul_redis_reply_free(r);
    call_expect(c, "OK", "SET %s %s", "k", "changed"); /* another client writes */
    assert_int_equal(simul_redis_txn_queue(t, "SET k %s", "2"), 0);
    assert_int_equal(simul_redis_txn_queue(t, "INCR %s", "other"), 0);
    assert_int_equal(simul_redis_txn_exec(t, &r), -EAGAIN);
    assert_null(r);
    assert_int_equal(simul_redis_txn_exec(t, &r), -EINVAL); /* once */
    assert_int_equal(simul_redis_txn_close(t), 0);
    EXPECT_REPLY(c, "changed", "GET k"); /* nothing ran */
    assert_int_equal(call_int(c, "EXISTS %s", "other"), 0);

    /* Again, undisturbed: both run; the connection was reused. */
    assert_int_equal(simul_redis_txn_begin(c, watch, 1, &t), 0);
    assert_int_equal(simul_redis_txn_queue(t, "SET k %s", "2"), 0);
    assert_int_equal(simul_redis_txn_queue(t, "INCR %s", "other"), 0);
    assert_int_equal(simul_redis_txn_exec(t, &r), 0);
    assert_int_equal(r->type, SIMUL_REDIS_ARRAY);
    assert_int_equal(r->len, 2);
    assert_string_equal(r->elem[0].str, "OK");
    assert_int_equal(r->elem[1].integer, 1);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_txn_close(t), 0);
    EXPECT_REPLY(c, "2", "GET k");

    /* A refused command: EXECABORT, nothing ran. A runtime error: an element, the rest ran. */
    assert_int_equal(simul_redis_txn_begin(c, NULL, 0, &t), 0);
    assert_int_equal(simul_redis_txn_queue(t, "SET %s %s", "k", "3"), 0);
    assert_int_equal(simul_redis_txn_queue(t, "SET %s", "k"), 0); /* wrong arity */
    assert_int_equal(simul_redis_txn_exec(t, &r), -EREMOTEIO);
    assert_int_equal(r->type, SIMUL_REDIS_ERROR);
    assert_non_null(strstr(r->str, "EXECABORT"));
    simul_redis_reply_free(r);
    simul_redis_txn_close(t);
    EXPECT_REPLY(c, "2", "GET k");
    assert_int_equal(simul_redis_txn_begin(c, NULL, 0, &t), 0);
    assert_int_equal(simul_redis_txn_queue(t, "SET %s %s", "s", "text"), 0);
    assert_int_equal(simul_redis_txn_queue(t, "INCR %s", "s"), 0);
    assert_int_equal(simul_redis_txn_queue(t, "SET %s %s", "k", "4"), 0);
    assert_int_equal(simul_redis_txn_exec(t, &r), 0);
    assert_int_equal(r->elem[1].type, SIMUL_REDIS_ERROR);
    assert_string_equal(r->elem[2].str, "OK");
    simul_redis_reply_free(r);
    simul_redis_txn_close(t);
    EXPECT_REPLY(c, "4", "GET k");

    simul_redis_stats st = stats(c);
    assert_int_equal(st.dedicated_opened, 1);
    assert_int_equal(st.dedicated_closed, 0);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

/* Read-modify-write of a counter by GET + SET under WATCH, from many tasks at once: only the
 * retry loop makes the total exact. */
typedef struct rmw {
    simul_redis_conn *c, *meddler;
    int meddle; /* attempts left on which to change the key behind the transaction's back */
} rmw;

static int rmw_fn(simul_redis_txn *t, void *arg)
{
    rmw *w = arg;
    simul_redis_reply *r = NULL;
    int rc = simul_redis_txn_command(t, &r, "GET counter");
    if (rc < 0)
        return rc;
    long long v = r->type == SIMUL_REDIS_NIL ? 0 : atoll(r->str);
    simul_redis_reply_free(r);
    if (w->meddle > 0) {
        w->meddle--;
        /* Another client writes the watched key: this attempt must conflict (its increment
         * counts in the expected total). */
        assert_true(call_int(w->meddler, "INCR %s", "counter") > v);
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v + 1);
    return simul_redis_txn_queue(t, "SET counter %s", buf);
}

typedef struct incr_task {
    rmw w;
    int n, rc;
} incr_task;

static int incr_main(void *arg)
{
    incr_task *it = arg;
    for (int i = 0; i < it->n; i++) {
        const char *watch[] = {"counter"};
        simul_redis_reply *r = NULL;
        it->rc = simul_redis_transaction(it->w.c, watch, 1, rmw_fn, &it->w, 0, &r);
        simul_redis_reply_free(r);
        if (it->rc < 0)
            return 0;
    }
    return 0;
}

SIMUL_TASK_TEST(transaction_retry_loop_is_exact)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 40);
    simul_redis_conn *c = connect_tcp(&sv, 0), *meddler = connect_tcp(&sv, 2);
    enum { T = 20, N = 10, MEDDLES = 3 };
    incr_task it[T];
    simul_task *t[T];
    for (int i = 0; i < T; i++) {
        it[i] =
            (incr_task){.w = {.c = c, .meddler = meddler, .meddle = i == 0 ? MEDDLES : 0}, .n = N};
        assert_int_equal(simul_task_spawn(&t[i], incr_main, &it[i], NULL), 0);
    }
    assert_int_equal(simul_gather(t, T, NULL), 0);
    for (int i = 0; i < T; i++)
        assert_int_equal(it[i].rc, 0);
    EXPECT_REPLY(c, "203", "GET counter"); /* T * N transactions + MEDDLES meddler INCRs */
    simul_redis_stats st = stats(c);
    assert_true(st.txn_conflicts >= MEDDLES);
    assert_true(st.dedicated_opened <= 8); /* the default pool bound */
    assert_int_equal(st.dedicated_closed, 0);

    /* max_attempts bounds a loop that always conflicts. */
    rmw always = {.c = c, .meddler = meddler, .meddle = 1000};
    const char *watch[] = {"counter"};
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_transaction(c, watch, 1, rmw_fn, &always, 3, &r), -EAGAIN);
    assert_null(r);
    assert_int_equal(always.meddle, 997);
    simul_redis_close(meddler);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

typedef struct txn_blocker {
    simul_redis_txn *t;
    int rc;
} txn_blocker;

static int txn_blocker_main(void *arg)
{
    txn_blocker *b = arg;
    simul_redis_reply *r = NULL;
    b->rc = simul_redis_txn_command(b->t, &r, "BLPOP %s 0", "never");
    simul_redis_reply_free(r);
    return 0;
}

SIMUL_TASK_TEST(cancelled_transaction_closes_its_connection)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_tcp(&sv, 0), *probe = connect_tcp(&sv, 2);
    const char *watch[] = {"w"};
    simul_redis_txn *t = NULL;
    assert_int_equal(simul_redis_txn_begin(c, watch, 1, &t), 0);
    txn_blocker b = {.t = t};
    simul_task *bt;
    assert_int_equal(simul_task_spawn(&bt, txn_blocker_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    simul_task_cancel(bt);
    assert_int_equal(simul_task_join(bt, NULL), 0);
    assert_int_equal(b.rc, -ECANCELED);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_txn_queue(t, "SET w %s", "x"), 0);
    assert_int_equal(simul_redis_txn_exec(t, &r), -ENOTCONN); /* its reply is still pending */
    assert_int_equal(simul_redis_txn_close(t), 0);
    assert_int_equal(stats(c).dedicated_closed, 1);
    wait_blocked(probe, 0);
    assert_int_equal(call_int(c, "EXISTS %s", "w"), 0);

    /* Closed while watching, never executed: closed too (drops the WATCH); the next one is
     * fresh and works. */
    assert_int_equal(simul_redis_txn_begin(c, watch, 1, &t), 0);
    assert_int_equal(simul_redis_txn_close(t), 0);
    assert_int_equal(stats(c).dedicated_closed, 2);
    assert_int_equal(simul_redis_txn_begin(c, watch, 1, &t), 0);
    assert_int_equal(simul_redis_txn_queue(t, "SET w %s", "y"), 0);
    assert_int_equal(simul_redis_txn_exec(t, &r), 0);
    simul_redis_reply_free(r);
    simul_redis_txn_close(t);
    EXPECT_REPLY(c, "y", "GET w");
    simul_redis_close(probe);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

SIMUL_TASK_TEST(script_sha1_and_noscript_fallback)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_tcp(&sv, 0);
    simul_redis_reply *r = NULL;
    EXPECT_REPLY(c, "OK", "SCRIPT FLUSH");

    /* SHA-1 vectors, then the server's own idea of the names (short, 55/56/64 bytes, long). */
    simul_redis_script *s = NULL;
    assert_int_equal(simul_redis_script_new("", &s), 0);
    assert_string_equal(simul_redis_script_sha1(s), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    simul_redis_script_free(s);
    assert_int_equal(simul_redis_script_new("abc", &s), 0);
    assert_string_equal(simul_redis_script_sha1(s), "a9993e364706816aba3e25717850c26c9cd0d89d");
    simul_redis_script_free(s);
    static const size_t sizes[] = {20, 55, 56, 63, 64, 65, 119, 120, 1000, 5000};
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        char *src = malloc(sizes[i] + 1);
        memset(src, ' ', sizes[i]);
        memcpy(src, "return 1", 8);
        src[sizes[i]] = 0;
        assert_int_equal(simul_redis_script_new(src, &s), 0);
        assert_int_equal(simul_redis_command(c, &r, "SCRIPT LOAD %s", src), 0);
        assert_string_equal(r->str, simul_redis_script_sha1(s));
        simul_redis_reply_free(r);
        simul_redis_script_free(s);
        free(src);
    }
    EXPECT_REPLY(c, "OK", "SCRIPT FLUSH");

    assert_int_equal(simul_redis_script_new("redis.call('SET', KEYS[1], ARGV[1]) "
                                            "return {KEYS[1], ARGV[1], #ARGV}",
                                            &s),
                     0);
    const char *keys[] = {"sk\0x"};
    const size_t klen[] = {4};
    const char *args[] = {"v1", "two"};
    for (int round = 0; round < 2; round++) {
        /* Round 0: NOSCRIPT, then EVAL. Round 1: EVALSHA alone. */
        assert_int_equal(simul_redis_script_call(c, s, &r, 1, keys, klen, 2, args, NULL), 0);
        assert_int_equal(r->len, 3);
        assert_int_equal(r->elem[0].len, 4);
        assert_memory_equal(r->elem[0].str, "sk\0x", 4);
        assert_string_equal(r->elem[1].str, "v1");
        assert_int_equal(r->elem[2].integer, 2);
        simul_redis_reply_free(r);
        assert_int_equal(stats(c).script_fallbacks, 1);
    }
    EXPECT_REPLY(c, "OK", "SCRIPT FLUSH");
    assert_int_equal(simul_redis_script_call(c, s, NULL, 1, keys, klen, 1, args, NULL), 0);
    assert_int_equal(stats(c).script_fallbacks, 2);
    simul_redis_script_free(s);

    /* A script's own error is -EREMOTEIO with its message, not a fallback. */
    assert_int_equal(simul_redis_script_new("return redis.error_reply('MINE no luck')", &s), 0);
    assert_int_equal(simul_redis_script_call(c, s, &r, 0, NULL, NULL, 0, NULL, NULL), -EREMOTEIO);
    assert_non_null(strstr(r->str, "MINE no luck"));
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_script_call(c, s, &r, 0, NULL, NULL, 0, NULL, NULL), -EREMOTEIO);
    simul_redis_reply_free(r);
    assert_int_equal(stats(c).script_fallbacks, 3);
    simul_redis_script_free(s);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(watch_conflict_is_distinct),
        cmocka_unit_test(transaction_retry_loop_is_exact),
        cmocka_unit_test(cancelled_transaction_closes_its_connection),
        cmocka_unit_test(script_sha1_and_noscript_fallback),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_redis_txn");
}
