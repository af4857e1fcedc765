/* test_redis_client.c — the Redis connection against a real redis-server (the suite's shared one,
 * redis_server.h; a case that kills its server runs its own) and against a scripted fake
 * server on a socketpair (malformed replies, a peer gone mid-reply, HELLO refused). No case waits
 * for time: each waits for a state (a counter, INFO, a reply), bounded by a deadline scope. */
#include "redis_server.h"

/* ---- connection, handshake, replies -------------------------------------------------------- */

SIMUL_TASK_TEST(connect_resp3_handshake)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_opts o = {
        .host = "127.0.0.1", .port = sv.portstr, .db = 2, .client_name = "simul-test"};
    simul_redis_conn *c = NULL;
    assert_int_equal(simul_redis_connect(&o, &c), 0);
    assert_true(simul_redis_connected(c));
    assert_int_equal(simul_redis_protocol(c), 3);

    /* The handshake's effects, seen by the server. */
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
    const char *info = simul_redis_reply_str(r, NULL);
    assert_non_null(strstr(info, "name=simul-test "));
    assert_non_null(strstr(info, " db=2 "));
    assert_non_null(strstr(info, " resp=3"));
    simul_redis_reply_free(r);

    /* printf and argv forms, binary-safe, and RESP3 types. */
    assert_int_equal(simul_redis_command(c, &r, "SET %s %b", "k1", "v\0\r\n", (size_t)4), 0);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_command(c, &r, "GET %s", "k1"), 0);
    assert_int_equal(r->type, SIMUL_REDIS_STRING);
    assert_int_equal(r->len, 4);
    assert_memory_equal(r->str, "v\0\r\n", 4);
    simul_redis_reply_free(r);
    const char *argv[] = {"SET", "bin\0key", "v\0\r\nx"};
    const size_t lens[] = {3, 7, 5};
    assert_int_equal(simul_redis_command_argv(c, 0, &r, 3, argv, lens), 0);
    simul_redis_reply_free(r);
    const char *get[] = {"GET", "bin\0key"};
    const size_t glens[] = {3, 7};
    assert_int_equal(simul_redis_command_argv(c, 0, &r, 2, get, glens), 0);
    assert_int_equal(r->len, 5);
    assert_memory_equal(r->str, "v\0\r\nx", 5);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_command(c, &r, "GET %s", "missing"), 0);
    assert_int_equal(r->type, SIMUL_REDIS_NIL);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_command(c, &r, "HSET h a 1"), 0);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_command(c, &r, "HGETALL h"), 0);
    assert_int_equal(r->type, SIMUL_REDIS_MAP);
    simul_redis_reply_free(r);
    /* Subscribe commands go through simul_redis_subscribe. */
    assert_int_equal(simul_redis_command(c, &r, "SUBSCRIBE x"), -EINVAL);
    assert_null(r);

    assert_int_equal(simul_redis_close(c), 0);
    stop_server(&sv);
    return 0;
}

SIMUL_TASK_TEST(connect_unix_resp2)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_opts o = {.unix_path = sv.sock, .protocol = 2, .client_name = "unix-client"};
    simul_redis_conn *c = NULL;
    assert_int_equal(simul_redis_connect(&o, &c), 0);
    assert_int_equal(simul_redis_protocol(c), 2);
    simul_redis_reply *r = NULL;
    EXPECT_REPLY(c, "PONG", "PING");
    call_expect(c, "OK", "SET %s %s", "u", "over unix");
    call_expect(c, "over unix", "GET %s%s", "u", "");
    EXPECT_REPLY(c, "unix-client", "CLIENT GETNAME");
    assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
    assert_non_null(strstr(simul_redis_reply_str(r, NULL), " resp=2"));
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_close(c), 0);

    /* A path nobody listens on. */
    o.unix_path = "/nonexistent/redis.sock";
    assert_int_equal(simul_redis_connect(&o, &c), -ENOENT);
    assert_null(c);
    stop_server(&sv);
    return 0;
}

SIMUL_TASK_TEST(auth_and_select)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    const char *extra[] = {"--requirepass", "s3cret", NULL};
    start_server(&sv, extra);
    simul_redis_conn *c = NULL;
    for (int proto = 0; proto <= 2; proto += 2) {
        simul_redis_opts o = {.host = "127.0.0.1", .port = sv.portstr, .protocol = proto};
        assert_int_equal(simul_redis_connect(&o, &c), proto == 2 ? 0 : -EACCES);
        if (c) {
            /* RESP2 without AUTH connects (no handshake) but every command is refused. */
            simul_redis_reply *r = NULL;
            assert_int_equal(simul_redis_command(c, &r, "GET x"), -EREMOTEIO);
            assert_non_null(strstr(r->str, "NOAUTH"));
            simul_redis_reply_free(r);
            simul_redis_close(c);
            c = NULL;
        }
        o.password = "wrong";
        assert_int_equal(simul_redis_connect(&o, &c), -EACCES);
        o.password = "s3cret";
        o.db = 5;
        assert_int_equal(simul_redis_connect(&o, &c), 0);
        assert_int_equal(simul_redis_protocol(c), proto == 2 ? 2 : 3);
        simul_redis_reply *r = NULL;
        assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
        assert_non_null(strstr(simul_redis_reply_str(r, NULL), " db=5 "));
        simul_redis_reply_free(r);
        simul_redis_close(c);
        /* A db out of range fails the connect with the server's refusal. */
        o.db = 1000;
        assert_int_equal(simul_redis_connect(&o, &c), -EREMOTEIO);
        o.username = "default";
        o.db = 0;
        assert_int_equal(simul_redis_connect(&o, &c), 0);
        simul_redis_close(c);
    }
    stop_server(&sv);
    return 0;
}

SIMUL_TASK_TEST(server_error_is_distinct)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 0);
    call_expect(c, "OK", "SET %s %s", "str", "abc");
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "INCR %s", "str"), -EREMOTEIO);
    assert_non_null(r);
    assert_int_equal(r->type, SIMUL_REDIS_ERROR);
    assert_non_null(strstr(r->str, "ERR value is not an integer"));
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_command(c, &r, "NOSUCHCOMMAND"), -EREMOTEIO);
    simul_redis_reply_free(r);
    /* An error inside EXEC's array stays in the tree: the call itself succeeded. */
    EXPECT_REPLY(c, "OK", "MULTI");
    EXPECT_REPLY(c, "QUEUED", "INCR str");
    assert_int_equal(simul_redis_command(c, &r, "EXEC"), 0);
    assert_int_equal(r->type, SIMUL_REDIS_ARRAY);
    assert_int_equal(simul_redis_reply_elem(r, 0)->type, SIMUL_REDIS_ERROR);
    simul_redis_reply_free(r);
    /* The connection is fine after all that. */
    call_expect(c, "abc", "GET %s%s", "str", "");
    simul_redis_stats st;
    simul_redis_get_stats(c, &st);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.connects, 1);
    simul_redis_close(c);
    stop_server(&sv);
    return 0;
}

/* ---- automatic pipelining ------------------------------------------------------------------ */

typedef struct getter {
    simul_redis_conn *c;
    int i;
    int ok;
} getter;

static int getter_main(void *arg)
{
    getter *g = arg;
    char key[32], want[32];
    snprintf(key, sizeof key, "key:%d", g->i);
    snprintf(want, sizeof want, "val:%d", g->i);
    simul_redis_reply *r = NULL;
    int rc = simul_redis_command(g->c, &r, "GET %s", key);
    if (rc < 0)
        return rc;
    g->ok =
        r->type == SIMUL_REDIS_STRING && r->len == strlen(want) && !memcmp(r->str, want, r->len);
    simul_redis_reply_free(r);
    return 0;
}

SIMUL_TASK_TEST(auto_pipelining)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 0);
    enum { N = 500 };
    for (int i = 0; i < N; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "key:%d", i);
        snprintf(v, sizeof v, "val:%d", i);
        call_expect(c, "OK", "SET %s %s", k, v);
    }
    simul_redis_stats before, after;
    simul_redis_get_stats(c, &before);
    static getter g[N];
    simul_task *t[N];
    for (int i = 0; i < N; i++) {
        g[i] = (getter){.c = c, .i = i};
        assert_int_equal(simul_task_spawn(&t[i], getter_main, &g[i], NULL), 0);
    }
    int results[N];
    assert_int_equal(simul_gather(t, N, results), 0);
    for (int i = 0; i < N; i++)
        assert_true(g[i].ok);
    simul_redis_get_stats(c, &after);
    assert_int_equal(after.commands - before.commands, N);
    assert_int_equal(after.replies - before.replies, N);
    /* Every command was issued in the same loop pass: one write carries them all. */
    assert_int_equal(after.writes - before.writes, 1);
    simul_redis_close(c);
    stop_server(&sv);
    return 0;
}

/* ---- cancel safety ------------------------------------------------------------------------- */

static int command_flags(simul_redis_conn *c, unsigned flags, simul_redis_reply **r,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = simul_redis_vcommand(c, flags, r, fmt, ap);
    va_end(ap);
    return rc;
}

typedef struct blocker {
    simul_redis_conn *c;
    const char *key;
    double timeout; /* 0: none */
    int rc;
    simul_redis_reply *r;
} blocker;

static int blocker_main(void *arg)
{
    blocker *b = arg;
    simul_scope sc;
    if (b->timeout > 0)
        assert_int_equal(simul_scope_timeout(&sc, b->timeout), 0);
    /* On the shared connection on purpose: these cases are about what a command pending there
     * does to the others (a blocking command otherwise goes to a dedicated connection). */
    b->rc = command_flags(b->c, SIMUL_REDIS_SHARED, &b->r, "BLPOP %s 0", b->key);
    if (b->timeout > 0)
        simul_scope_end(&sc);
    return 0;
}

/* redis-py's failure: a command cancelled mid-flight, then another call at once on the same
 * connection, which got the first command's reply. Here the second caller gets its own. */
static void cancel_then_call(bool by_deadline)
{
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 0), *probe = connect_tcp(&sv, 2);
    call_expect(c, "OK", "SET %s %s", "mine", "second caller's value");

    blocker b = {.c = c, .key = "q", .timeout = by_deadline ? 0.05 : 0};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    if (!by_deadline) {
        wait_blocked(probe, 1); /* the BLPOP is at the server, its reply pending */
        simul_task_cancel(t);
    }
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(b.rc, by_deadline ? -ETIMEDOUT : -ECANCELED);
    assert_null(b.r);

    /* Call again at once: the GET is queued behind the BLPOP on the same connection. */
    getter g = {.c = c, .i = -1};
    simul_task *gt;
    assert_int_equal(simul_task_spawn(&gt, getter_main, &g, NULL), 0);
    simul_redis_reply *r = NULL;
    /* Release the BLPOP: its reply (["q", "first caller's reply"]) arrives first. */
    assert_int_equal(simul_redis_command(probe, &r, "RPUSH q %s", "first caller's reply"), 0);
    simul_redis_reply_free(r);
    assert_int_equal(simul_redis_command(c, &r, "GET mine"), 0);
    assert_int_equal(r->type, SIMUL_REDIS_STRING);
    assert_string_equal(r->str, "second caller's value");
    simul_redis_reply_free(r);
    int grc;
    assert_int_equal(simul_task_join(gt, &grc), 0);
    assert_int_equal(grc, 0); /* key:-1 does not exist: ok stays 0 but the reply was its own */
    assert_false(g.ok);
    simul_redis_stats st;
    simul_redis_get_stats(c, &st);
    assert_int_equal(st.dropped_replies, 1); /* the BLPOP's reply, read and dropped */
    assert_int_equal(st.failures, 0);
    simul_redis_close(probe);
    simul_redis_close(c);
    stop_server(&sv);
}

SIMUL_TASK_TEST(cancel_mid_flight_then_call)
{
    (void)arg;
    NEED_REDIS();
    cancel_then_call(false);
    return 0;
}

SIMUL_TASK_TEST(deadline_mid_flight_then_call)
{
    (void)arg;
    NEED_REDIS();
    cancel_then_call(true);
    return 0;
}

/* Many interleavings: workers SET and GET their own keys and check every reply against the key;
 * a chaos task cancels random workers at random points (before the send, queued, written,
 * replied but not yet resumed). */
typedef struct worker {
    simul_redis_conn *c;
    int id;
    int bad;
} worker;

static int worker_main(void *arg)
{
    worker *w = arg;
    char key[32], val[48];
    for (int step = 0;; step++) {
        snprintf(key, sizeof key, "w:%d", w->id);
        snprintf(val, sizeof val, "w:%d:%d", w->id, step);
        simul_redis_reply *r = NULL;
        int rc = simul_redis_command(w->c, &r, "SET %s %s", key, val);
        if (rc < 0)
            return rc;
        if (r->type != SIMUL_REDIS_STATUS || strcmp(r->str, "OK") != 0)
            w->bad++;
        simul_redis_reply_free(r);
        rc = simul_redis_command(w->c, &r, "GET %s", key);
        if (rc < 0)
            return rc;
        if (r->type != SIMUL_REDIS_STRING || strcmp(r->str, val) != 0)
            w->bad++;
        simul_redis_reply_free(r);
        rc = simul_redis_command(w->c, &r, "STRLEN %s", key);
        if (rc < 0)
            return rc;
        if (r->type != SIMUL_REDIS_INTEGER || r->integer != (long long)strlen(val))
            w->bad++;
        simul_redis_reply_free(r);
    }
}

SIMUL_TASK_TEST(random_cancels_never_cross_replies)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 0);
    enum { W = 40, CANCELS = 1000 };
    static worker w[W];
    simul_task *t[W];
    unsigned seed = 12345;
    int next_id = 0, cancels = 0;
    for (int i = 0; i < W; i++) {
        w[i] = (worker){.c = c, .id = next_id++};
        assert_int_equal(simul_task_spawn(&t[i], worker_main, &w[i], NULL), 0);
    }
    while (cancels < CANCELS) {
        /* Land anywhere: at once, after a few passes, or after some replies came in. */
        unsigned mode = (unsigned)rand_r(&seed) % 3;
        if (mode == 1) {
            int yields = (int)(rand_r(&seed) % 4);
            for (int y = 0; y < yields; y++)
                assert_int_equal(simul_yield(), 0);
        } else if (mode == 2) {
            simul_redis_stats now;
            simul_redis_get_stats(c, &now);
            uint64_t until = now.replies + 1 + (unsigned)rand_r(&seed) % 40;
            while (now.replies < until) {
                assert_int_equal(simul_yield(), 0);
                simul_redis_get_stats(c, &now);
            }
        }
        int i = (int)(rand_r(&seed) % W);
        simul_task_cancel(t[i]);
        int rc;
        assert_int_equal(simul_task_join(t[i], &rc), 0);
        assert_int_equal(rc, -ECANCELED);
        assert_int_equal(w[i].bad, 0);
        cancels++;
        w[i] = (worker){.c = c, .id = next_id++};
        assert_int_equal(simul_task_spawn(&t[i], worker_main, &w[i], NULL), 0);
    }
    for (int i = 0; i < W; i++) {
        simul_task_cancel(t[i]);
        int rc;
        assert_int_equal(simul_task_join(t[i], &rc), 0);
        assert_int_equal(w[i].bad, 0);
    }
    /* After it all the connection still answers in step. */
    call_expect(c, "OK", "SET %s %s", "final", "x");
    call_expect(c, "x", "GET %s%s", "final", "");
    simul_redis_stats st;
    simul_redis_get_stats(c, &st);
    assert_int_equal(st.failures, 0);
    assert_true(st.dropped_replies > 0);                 /* some cancels did land mid-flight */
    assert_true(st.replies - st.dropped_replies > 5000); /* and most commands were answered */
    print_message("cancels=%d commands=%llu dropped_replies=%llu writes=%llu\n", cancels,
                  (unsigned long long)st.commands, (unsigned long long)st.dropped_replies,
                  (unsigned long long)st.writes);
    simul_redis_close(c);
    stop_server(&sv);
    return 0;
}

/* ---- a scripted fake server on a socketpair ------------------------------------------------ */

typedef struct fake {
    int peer_fd;           /* the server's end, taken by the fake task */
    const char *script[8]; /* what to answer to command i (NULL: close without answering) */
    int hold;              /* read this many commands before answering the first */
    int connects;
    simul_task *task; /* the fake, started by fake_connect; the case joins it */
} fake;

static int fake_main(void *arg);

static int fake_connect(void *arg, simul_stream **out)
{
    fake *f = arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -errno;
    int rc = simul_stream_from_fd(sv[0], out);
    if (rc < 0) {
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    f->peer_fd = sv[1];
    f->connects++;
    /* The fake must run while the connect waits for the handshake's answers. */
    assert_int_equal(simul_task_spawn(&f->task, fake_main, f, NULL), 0);
    return 0;
}

/* The fake: reads commands (RESP arrays) and answers each with its script line. */
static int fake_main(void *arg)
{
    fake *f = arg;
    simul_stream *s = NULL;
    assert_int_equal(simul_stream_from_fd(f->peer_fd, &s), 0);
    simul_redis_parser *p = NULL;
    assert_int_equal(simul_redis_parser_new(&p, NULL), 0);
    char buf[4096];
    size_t off = 0, len = 0;
    int answered = 0, got = 0;
    for (;;) {
        simul_redis_reply *cmdr = NULL;
        while (!cmdr) {
            if (off == len) {
                long n = simul_stream_read(s, buf, sizeof buf);
                if (n <= 0)
                    goto out;
                off = 0;
                len = (size_t)n;
            }
            ssize_t k = simul_redis_parse(p, buf + off, len - off, &cmdr);
            assert_true(k >= 0);
            off += (size_t)k;
        }
        simul_redis_reply_free(cmdr);
        got++;
        if (got < f->hold)
            continue;
        while (answered < got) {
            const char *line = f->script[answered++];
            if (!line)
                goto out;
            simul_stream_write(s, line, strlen(line));
        }
    }
out:
    simul_redis_parser_free(p);
    simul_stream_close(s);
    return 0;
}

typedef struct caller {
    simul_redis_conn *c;
    int rc;
} caller;

static int caller_main(void *arg)
{
    caller *k = arg;
    simul_redis_reply *r = NULL;
    k->rc = simul_redis_command(k->c, &r, "GET %s", "x");
    simul_redis_reply_free(r);
    return 0;
}

/* Three commands in flight, then the fake misbehaves: all three fail with `want`, none hangs. */
static void fake_failure(const char *const *script, int want, const simul_redis_limits *lim)
{
    fake f = {.hold = 3};
    for (int i = 0; script[i]; i++)
        f.script[i] = script[i];
    simul_redis_opts o = {.connect_cb = fake_connect,
                          .connect_arg = &f,
                          .protocol = 2,
                          .no_reconnect = true,
                          .limits = lim};
    simul_redis_conn *c = NULL;
    assert_int_equal(simul_redis_connect(&o, &c), 0);
    caller k[3];
    simul_task *t[3];
    for (int i = 0; i < 3; i++) {
        k[i] = (caller){.c = c, .rc = 1};
        assert_int_equal(simul_task_spawn(&t[i], caller_main, &k[i], NULL), 0);
    }
    assert_int_equal(simul_gather(t, 3, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(k[i].rc, want);
    /* Down for good (no_reconnect): later commands fail at once. */
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "PING"), -ENOTCONN);
    assert_false(simul_redis_connected(c));
    assert_int_equal(simul_redis_close(c), 0);
    assert_int_equal(simul_task_join(f.task, NULL), 0);
}

SIMUL_TASK_TEST(malformed_reply_fails_all_in_flight)
{
    (void)arg;
    const char *script[] = {"?what\r\n", NULL};
    fake_failure(script, -EPROTO, NULL);
    return 0;
}

SIMUL_TASK_TEST(peer_gone_mid_reply_fails_all_in_flight)
{
    (void)arg;
    /* One whole reply, half of the next, then the peer closes. */
    const char *script[] = {"$10\r\nabc", NULL};
    fake_failure(script, -ECONNRESET, NULL);
    return 0;
}

SIMUL_TASK_TEST(reply_over_limit_fails_all_in_flight)
{
    (void)arg;
    simul_redis_limits lim = {.max_bulk = 16};
    const char *script[] = {"$17\r\n", NULL};
    fake_failure(script, -EMSGSIZE, &lim);
    return 0;
}

SIMUL_TASK_TEST(connect_timeout_when_handshake_hangs)
{
    (void)arg;
    fake f = {.hold = 1000}; /* reads HELLO and never answers */
    simul_redis_opts o = {.connect_cb = fake_connect, .connect_arg = &f, .connect_timeout = 0.05};
    simul_redis_conn *c = NULL;
    assert_int_equal(simul_redis_connect(&o, &c), -ETIMEDOUT);
    assert_null(c);
    assert_int_equal(simul_task_join(f.task, NULL), 0); /* it saw the connection closed */
    return 0;
}

SIMUL_TASK_TEST(hello_refused_falls_back_to_resp2)
{
    (void)arg;
    fake f = {.hold = 1,
              .script = {"-ERR unknown command 'HELLO', with args beginning with: '3'\r\n",
                         "+PONG\r\n", NULL}};
    simul_redis_opts o = {.connect_cb = fake_connect, .connect_arg = &f, .no_reconnect = true};
    simul_redis_conn *c = NULL;
    assert_int_equal(simul_redis_connect(&o, &c), 0);
    assert_int_equal(simul_redis_protocol(c), 2);
    EXPECT_REPLY(c, "PONG", "PING");
    assert_int_equal(simul_redis_close(c), 0);
    assert_int_equal(simul_task_join(f.task, NULL), 0);

    /* RESP3 required: the same refusal fails the connect. */
    fake g = {.hold = 1, .script = {"-NOPROTO sorry, this protocol version is not supported\r\n"}};
    o.connect_arg = &g;
    o.protocol = 3;
    assert_int_equal(simul_redis_connect(&o, &c), -EPROTONOSUPPORT);
    assert_null(c);
    assert_int_equal(simul_task_join(g.task, NULL), 0);
    return 0;
}

/* ---- reconnection -------------------------------------------------------------------------- */

/* The back-off bounds (simul_backoff, equal jitter) are checked before anything is opened: a NaN
 * or an infinite reconnect_min, a NaN reconnect_max, a negative one: -EINVAL. An infinite
 * reconnect_max is a back-off without a cap, accepted. */
SIMUL_TASK_TEST(reconnect_bounds_checked)
{
    (void)arg;
    const double bad[][2] = {{NAN, 0}, {INFINITY, 0}, {0.01, NAN}, {-1, 0}, {0, -1}};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        simul_redis_opts o = {.unix_path = "/nonexistent/simul-redis.sock",
                              .reconnect_min = bad[i][0],
                              .reconnect_max = bad[i][1]};
        simul_redis_conn *c = NULL;
        assert_int_equal(simul_redis_connect(&o, &c), -EINVAL);
        assert_null(c);
    }
    /* Valid bounds get as far as the connect itself (no such socket). */
    simul_redis_opts o = {.unix_path = "/nonexistent/simul-redis.sock", .reconnect_max = INFINITY};
    simul_redis_conn *c = NULL;
    int rc = simul_redis_connect(&o, &c);
    assert_true(rc == -ENOENT || rc == -ENOTDIR);
    assert_null(c);
    return 0;
}

typedef struct incr {
    simul_redis_conn *c;
    unsigned flags;
    int rc;
    simul_redis_reply *r;
} incr;

static int incr_main(void *arg)
{
    incr *k = arg;
    const char *argv[] = {"INCR", "counter"};
    k->rc = simul_redis_command_argv(k->c, k->flags, &k->r, 2, argv, NULL);
    return 0;
}

static int retry_safe_main(void *arg)
{
    incr *k = arg;
    const char *argv[] = {"SET", "retried", "yes"};
    k->rc = simul_redis_command_argv(k->c, k->flags, &k->r, 3, argv, NULL);
    return 0;
}

static int bounded_get_main(void *arg)
{
    incr *k = arg;
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.05), 0);
    k->rc = simul_redis_command(k->c, &k->r, "GET %s", "counter");
    simul_scope_end(&sc);
    return 0;
}

static int get_counter_main(void *arg)
{
    incr *k = arg;
    k->rc = simul_redis_command(k->c, &k->r, "GET %s", "counter");
    return 0;
}

SIMUL_TASK_TEST(server_killed_mid_traffic_then_reconnect)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_own_server(&sv, NULL);
    simul_redis_opts o = {.host = "127.0.0.1",
                          .port = sv.portstr,
                          .db = 3,
                          .client_name = "rc",
                          .reconnect_min = 0.002,
                          .reconnect_max = 0.02};
    simul_redis_conn *c = NULL, *probe = connect_tcp(&sv, 2);
    assert_int_equal(simul_redis_connect(&o, &c), 0);

    /* In flight when the server dies: a BLPOP the server holds, INCRs queued behind it (the
     * server reads no more from a blocked client), and a retry-safe SET. */
    blocker b = {.c = c, .key = "q"};
    simul_task *bt;
    assert_int_equal(simul_task_spawn(&bt, blocker_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    simul_redis_stats st0, st;
    simul_redis_get_stats(c, &st0);
    enum { K = 5 };
    incr in[K + 1];
    simul_task *t[K + 1];
    for (int i = 0; i <= K; i++) {
        in[i] = (incr){.c = c, .flags = i == K ? SIMUL_REDIS_RETRY_SAFE : 0};
        assert_int_equal(
            simul_task_spawn(&t[i], i == K ? retry_safe_main : incr_main, &in[i], NULL), 0);
    }
    do { /* until their write went out */
        assert_int_equal(simul_yield(), 0);
        simul_redis_get_stats(c, &st);
    } while (st.writes == st0.writes);
    simul_redis_close(probe);
    kill_server(&sv, SIGKILL);

    assert_int_equal(simul_task_join(bt, NULL), 0);
    assert_int_equal(b.rc, -ECONNRESET);
    assert_null(b.r);
    for (int i = 0; i < K; i++) {
        assert_int_equal(simul_task_join(t[i], NULL), 0);
        assert_int_equal(in[i].rc, -ECONNRESET);
        assert_null(in[i].r);
    }
    assert_false(simul_redis_connected(c));

    /* While down, a command waits for the connection, bounded by its deadline. */
    incr bounded = {.c = c};
    simul_task *gt;
    assert_int_equal(simul_task_spawn(&gt, bounded_get_main, &bounded, NULL), 0);
    assert_int_equal(simul_task_join(gt, NULL), 0);
    assert_int_equal(bounded.rc, -ETIMEDOUT);
    incr waiter = {.c = c};
    assert_int_equal(simul_task_spawn(&gt, get_counter_main, &waiter, NULL), 0);
    assert_int_equal(simul_yield(), 0);

    /* The same port again: the client comes back by itself. */
    assert_true(run_server(&sv, NULL));
    assert_int_equal(simul_task_join(gt, NULL), 0);
    assert_int_equal(waiter.rc, 0);
    /* The failed INCRs were not resent: the new server never saw the counter. */
    assert_int_equal(waiter.r->type, SIMUL_REDIS_NIL);
    simul_redis_reply_free(waiter.r);
    /* The retry-safe SET was, once. */
    assert_int_equal(simul_task_join(t[K], NULL), 0);
    expect_status(in[K].rc, in[K].r, "OK");
    call_expect(c, "yes", "GET %s%s", "retried", "");
    /* The handshake was replayed: name and db. */
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
    assert_non_null(strstr(simul_redis_reply_str(r, NULL), "name=rc "));
    assert_non_null(strstr(simul_redis_reply_str(r, NULL), " db=3 "));
    simul_redis_reply_free(r);
    assert_int_equal(call_int(c, "INCR %s", "counter"), 1);
    simul_redis_get_stats(c, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.failures, 1);
    simul_redis_close(c);
    stop_server(&sv);
    return 0;
}

/* ---- pub/sub ------------------------------------------------------------------------------- */

static void expect_msg(simul_redis_subscription *s, const char *channel, const char *payload)
{
    simul_redis_reply *m = NULL;
    assert_int_equal(simul_redis_subscription_next(s, &m), 0);
    assert_true(m->type == SIMUL_REDIS_PUSH || m->type == SIMUL_REDIS_ARRAY);
    size_t n = simul_redis_reply_len(m);
    assert_true(n == 3 || n == 4);
    assert_string_equal(simul_redis_reply_elem(m, n - 2)->str, channel);
    assert_string_equal(simul_redis_reply_elem(m, n - 1)->str, payload);
    simul_redis_reply_free(m);
}

SIMUL_TASK_TEST(pubsub_resp3_shared_connection)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 3), *pub = connect_tcp(&sv, 2);
    simul_redis_subscription *news = NULL, *logs = NULL, *dup = NULL;
    const char *chans[] = {"news", "sports"};
    assert_int_equal(simul_redis_subscribe(c, 0, chans, 2, 0, &news), 0);
    const char *pat[] = {"log.*"};
    assert_int_equal(simul_redis_subscribe(c, SIMUL_REDIS_SUB_PATTERN, pat, 1, 4, &logs), 0);
    assert_int_equal(simul_redis_subscribe(c, 0, chans + 1, 1, 0, &dup), -EEXIST);

    assert_int_equal(call_int(pub, "PUBLISH news %s", "hello"), 1);
    assert_int_equal(call_int(pub, "PUBLISH sports %s", "goal"), 1);
    /* Ordinary commands share the connection meanwhile. */
    call_expect(c, "OK", "SET %s %s", "k", "v");
    call_expect(c, "v", "GET %s%s", "k", "");
    expect_msg(news, "news", "hello");
    expect_msg(news, "sports", "goal");

    /* A slow reader: the bound is 4, ten messages arrive; the oldest six are dropped. */
    simul_redis_stats st0, st;
    simul_redis_get_stats(c, &st0);
    for (int i = 0; i < 10; i++) {
        char ch[16], payload[16];
        snprintf(ch, sizeof ch, "log.%d", i);
        snprintf(payload, sizeof payload, "m%d", i);
        simul_redis_reply *r = NULL;
        assert_int_equal(simul_redis_command(pub, &r, "PUBLISH %s %s", ch, payload), 0);
        assert_int_equal(r->integer, 1);
        simul_redis_reply_free(r);
    }
    do { /* until all ten were received */
        assert_int_equal(simul_yield(), 0);
        simul_redis_get_stats(c, &st);
    } while (st.pushes < st0.pushes + 10);
    assert_int_equal(simul_redis_subscription_dropped(logs), 6);
    for (int i = 6; i < 10; i++) {
        char ch[16], payload[16];
        snprintf(ch, sizeof ch, "log.%d", i);
        snprintf(payload, sizeof payload, "m%d", i);
        expect_msg(logs, ch, payload);
    }

    /* Unsubscribed: nobody receives news any more; the pattern goes on. */
    assert_int_equal(simul_redis_subscription_close(news), 0);
    assert_int_equal(call_int(pub, "PUBLISH news %s", "late"), 0);
    assert_int_equal(call_int(pub, "PUBLISH log.x %s", "log.x"), 1);
    expect_msg(logs, "log.x", "log.x");
    assert_int_equal(simul_redis_subscription_close(logs), 0);
    assert_int_equal(call_int(pub, "PUBLISH log.y %s", "y"), 0);
    call_expect(c, "v", "GET %s%s", "k", "");
    simul_redis_close(pub);
    simul_redis_close(c);
    stop_server(&sv);
    return 0;
}

SIMUL_TASK_TEST(pubsub_resubscribes_after_reconnect)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_opts o = {
        .host = "127.0.0.1", .port = sv.portstr, .reconnect_min = 0.002, .reconnect_max = 0.02};
    simul_redis_conn *c = NULL, *pub = connect_tcp(&sv, 2);
    assert_int_equal(simul_redis_connect(&o, &c), 0);
    simul_redis_subscription *s = NULL, *p = NULL;
    const char *chans[] = {"ch"}, *pats[] = {"pa*"};
    assert_int_equal(simul_redis_subscribe(c, 0, chans, 1, 0, &s), 0);
    assert_int_equal(simul_redis_subscribe(c, SIMUL_REDIS_SUB_PATTERN, pats, 1, 0, &p), 0);
    long long id = call_int(c, "CLIENT %s", "ID");
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", id);
    assert_int_equal(call_int(pub, "CLIENT KILL ID %s", ids), 1);
    /* Until the reconnected client has subscribed again (PUBLISH counts the receivers). */
    while (call_int(pub, "PUBLISH ch %s", "after") != 1)
        assert_int_equal(simul_yield(), 0);
    while (call_int(pub, "PUBLISH pat %s", "after-p") != 1)
        assert_int_equal(simul_yield(), 0);
    expect_msg(s, "ch", "after");
    expect_msg(p, "pat", "after-p");
    simul_redis_stats st;
    simul_redis_get_stats(c, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.failures, 1);
    assert_int_equal(simul_redis_subscription_close(s), 0);
    assert_int_equal(simul_redis_subscription_close(p), 0);
    simul_redis_close(pub);
    simul_redis_close(c);
    stop_server(&sv);
    return 0;
}

SIMUL_TASK_TEST(pubsub_resp2_dedicated_connection)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 2), *pub = connect_tcp(&sv, 2);
    simul_redis_subscription *s = NULL;
    const char *chans[] = {"a", "b"};
    assert_int_equal(simul_redis_subscribe(c, 0, chans, 2, 0, &s), 0);
    assert_int_equal(call_int(pub, "PUBLISH b %s", "over resp2"), 1);
    expect_msg(s, "b", "over resp2");
    /* In RESP2 subscribe mode the server refuses ordinary commands: a server error, in step. */
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "GET %s", "x"), -EREMOTEIO);
    simul_redis_reply_free(r);
    assert_int_equal(call_int(pub, "PUBLISH a %s", "again"), 1);
    expect_msg(s, "a", "again");
    assert_int_equal(simul_redis_subscription_close(s), 0);
    /* Out of subscribe mode: ordinary commands again. */
    call_expect(c, "OK", "SET %s %s", "x", "1");
    simul_redis_close(pub);
    simul_redis_close(c);
    stop_server(&sv);
    return 0;
}

typedef struct sub_reader {
    simul_redis_subscription *s;
    int rc;
} sub_reader;

static int sub_reader_main(void *arg)
{
    sub_reader *k = arg;
    simul_redis_reply *m = NULL;
    k->rc = simul_redis_subscription_next(k->s, &m);
    simul_redis_reply_free(m);
    return 0;
}

SIMUL_TASK_TEST(close_fails_waiters)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 3), *probe = connect_tcp(&sv, 2);
    simul_redis_subscription *s = NULL;
    const char *chans[] = {"z"};
    assert_int_equal(simul_redis_subscribe(c, 0, chans, 1, 0, &s), 0);
    sub_reader sr = {.s = s, .rc = 1};
    blocker b = {.c = c, .key = "never"};
    simul_task *t[2];
    assert_int_equal(simul_task_spawn(&t[0], sub_reader_main, &sr, NULL), 0);
    assert_int_equal(simul_task_spawn(&t[1], blocker_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    assert_int_equal(simul_redis_close(c), 0); /* frees the subscription too */
    assert_int_equal(simul_gather(t, 2, NULL), 0);
    assert_int_equal(sr.rc, -ESHUTDOWN);
    assert_int_equal(b.rc, -ECANCELED);
    simul_redis_close(probe);
    stop_server(&sv);
    return 0;
}

/* ---- volume: many pipelined commands, flow control, a 64 MB value --------------------------- */

typedef struct setter {
    simul_redis_conn *c;
    int id;
    int bad;
} setter;

static int setter_main(void *arg)
{
    setter *w = arg;
    static char val[1024];
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof key, "s:%d:%d", w->id, i);
        memset(val, 'a' + (w->id + i) % 26, sizeof val);
        simul_redis_reply *r = NULL;
        int rc = simul_redis_command(w->c, &r, "SET %s %b", key, val, sizeof val);
        if (rc < 0)
            return rc;
        w->bad += r->type != SIMUL_REDIS_STATUS;
        simul_redis_reply_free(r);
        rc = simul_redis_command(w->c, &r, "GET %s", key);
        if (rc < 0)
            return rc;
        w->bad += r->len != sizeof val || r->str[0] != 'a' + (w->id + i) % 26;
        simul_redis_reply_free(r);
    }
    return 0;
}

typedef struct big_set {
    simul_redis_conn *c;
    const char *v;
    size_t n;
    int rc;
} big_set;

static int big_set_main(void *arg)
{
    big_set *b = arg;
    simul_redis_reply *r = NULL;
    b->rc = simul_redis_command(b->c, &r, "SET big %b", b->v, b->n);
    simul_redis_reply_free(r);
    return 0;
}

SIMUL_TASK_TEST(pipelined_volume_and_large_value)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 0);
    /* 100 tasks x 100 x (SET 1 KiB + GET): 20,000 commands, the write queue over its mark. */
    enum { T = 100 };
    static setter w[T];
    simul_task *t[T];
    for (int i = 0; i < T; i++) {
        w[i] = (setter){.c = c, .id = i};
        assert_int_equal(simul_task_spawn(&t[i], setter_main, &w[i], NULL), 0);
    }
    int results[T];
    assert_int_equal(simul_gather(t, T, results), 0);
    for (int i = 0; i < T; i++)
        assert_int_equal(w[i].bad, 0);
    simul_redis_stats st;
    simul_redis_get_stats(c, &st);
    assert_true(st.writes < st.commands / 10);

    /* A 64 MB value both ways. */
    size_t big = 64u << 20;
    char *v = malloc(big);
    assert_non_null(v);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)(i * 131 + (i >> 20));
    big_set bs = {.c = c, .v = v, .n = big};
    simul_task *bt;
    assert_int_equal(simul_task_spawn(&bt, big_set_main, &bs, NULL), 0);
    /* Until its write went out: the stream then holds most of it, over the high-water mark, and
     * the next command waits for the queue to drain before it is queued. */
    simul_redis_stats st0 = st;
    do {
        assert_int_equal(simul_yield(), 0);
        simul_redis_get_stats(c, &st);
    } while (st.writes == st0.writes);
    call_expect(c, "PONG", "PING", NULL, NULL);
    simul_redis_get_stats(c, &st);
    assert_true(st.flow_waits > st0.flow_waits);
    assert_int_equal(simul_task_join(bt, NULL), 0);
    assert_int_equal(bs.rc, 0);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "GET big"), 0);
    assert_int_equal(r->len, big);
    assert_memory_equal(r->str, v, big);
    simul_redis_reply_free(r);
    free(v);
    simul_redis_close(c);
    stop_server(&sv);
    return 0;
}

/* ---- explicit pipelines -------------------------------------------------------------------- */

typedef struct piper {
    simul_redis_conn *c;
    int id;
    int bad;
    int rc;
} piper;

/* MULTI ... EXEC as one pipeline: contiguous in the stream, so no other task's command lands
 * inside the transaction (it would be answered QUEUED). */
static int tx_main(void *arg)
{
    piper *w = arg;
    for (int round = 0; round < 20; round++) {
        simul_redis_pipeline *p = NULL;
        assert_int_equal(simul_redis_pipeline_new(w->c, &p), 0);
        char key[32];
        snprintf(key, sizeof key, "tx:%d", w->id);
        assert_int_equal(simul_redis_pipeline_add(p, "MULTI"), 0);
        assert_int_equal(simul_redis_pipeline_add(p, "INCR %s", key), 0);
        assert_int_equal(simul_redis_pipeline_add(p, "INCR %s", key), 0);
        assert_int_equal(simul_redis_pipeline_add(p, "EXEC"), 0);
        simul_redis_reply *r[4];
        int res[4];
        w->rc = simul_redis_pipeline_exec(p, r, res);
        simul_redis_pipeline_free(p);
        if (w->rc < 0)
            return w->rc;
        w->bad += res[0] != 0 || res[1] != 0 || res[2] != 0 || res[3] != 0;
        w->bad += r[3]->type != SIMUL_REDIS_ARRAY || r[3]->len != 2 ||
                  r[3]->elem[1].integer != r[3]->elem[0].integer + 1 ||
                  r[3]->elem[1].integer != 2 * (round + 1);
        for (int i = 0; i < 4; i++)
            simul_redis_reply_free(r[i]);
    }
    return 0;
}

static int plain_main(void *arg)
{
    piper *w = arg;
    for (int i = 0; i < 40; i++) {
        simul_redis_reply *r = NULL;
        w->rc = simul_redis_command(w->c, &r, "PING");
        if (w->rc < 0)
            return w->rc;
        w->bad += r->type != SIMUL_REDIS_STATUS || strcmp(r->str, "PONG") != 0;
        simul_redis_reply_free(r);
    }
    return 0;
}

SIMUL_TASK_TEST(explicit_pipeline)
{
    (void)arg;
    NEED_REDIS();
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 0), *probe = connect_tcp(&sv, 2);

    /* 1,000 commands with a server error in the middle: each has its own outcome. */
    simul_redis_pipeline *p = NULL;
    assert_int_equal(simul_redis_pipeline_new(c, &p), 0);
    call_expect(c, "OK", "SET %s %s", "str", "abc");
    enum { N = 1000 };
    for (int i = 0; i < N; i++) {
        char k[16];
        snprintf(k, sizeof k, "p:%d", i);
        if (i == 500)
            assert_int_equal(simul_redis_pipeline_add(p, "INCR str"), 0);
        else
            assert_int_equal(simul_redis_pipeline_add(p, "INCRBY %s %d", k, i), 0);
    }
    assert_int_equal(simul_redis_pipeline_add(p, "SUBSCRIBE x"), -EINVAL);
    assert_int_equal(simul_redis_pipeline_len(p), N);
    static simul_redis_reply *r[N];
    static int res[N];
    simul_redis_stats st0, st;
    simul_redis_get_stats(c, &st0);
    assert_int_equal(simul_redis_pipeline_exec(p, r, res), 0);
    simul_redis_get_stats(c, &st);
    assert_int_equal(st.writes - st0.writes, 1);
    for (int i = 0; i < N; i++) {
        if (i == 500) {
            assert_int_equal(res[i], -EREMOTEIO);
            assert_int_equal(r[i]->type, SIMUL_REDIS_ERROR);
        } else {
            assert_int_equal(res[i], 0);
            assert_int_equal(r[i]->integer, i);
        }
        simul_redis_reply_free(r[i]);
    }
    assert_int_equal(simul_redis_pipeline_exec(p, r, res), -EINVAL); /* once only */
    simul_redis_pipeline_free(p);

    /* Transactions as pipelines beside plain commands from other tasks. */
    enum { T = 8 };
    piper w[2 * T];
    simul_task *t[2 * T];
    for (int i = 0; i < 2 * T; i++) {
        w[i] = (piper){.c = c, .id = i};
        assert_int_equal(simul_task_spawn(&t[i], i < T ? tx_main : plain_main, &w[i], NULL), 0);
    }
    assert_int_equal(simul_gather(t, 2 * T, NULL), 0);
    for (int i = 0; i < 2 * T; i++) {
        assert_int_equal(w[i].rc, 0);
        assert_int_equal(w[i].bad, 0);
    }

    /* Cancelled mid-flight: its replies are dropped, the next caller gets its own. */
    assert_int_equal(simul_redis_pipeline_new(c, &p), 0);
    assert_int_equal(simul_redis_pipeline_add(p, "SET %s %s", "pk", "pv"), 0);
    assert_int_equal(simul_redis_pipeline_add(p, "BLPOP %s 0", "pq"), 0);
    assert_int_equal(simul_redis_pipeline_add(p, "GET %s", "pk"), 0);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.05), 0);
    assert_int_equal(simul_redis_pipeline_exec(p, r, res), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&sc), 1);
    simul_redis_pipeline_free(p);
    for (int i = 0; i < 3; i++) {
        assert_null(r[i]);
        assert_int_equal(res[i], -ETIMEDOUT);
    }
    getter g = {.c = c, .i = 7};
    call_expect(probe, "OK", "SET %s %s", "key:7", "val:7"); /* c is held by the BLPOP */
    simul_task *gt;
    assert_int_equal(simul_task_spawn(&gt, getter_main, &g, NULL), 0);
    wait_blocked(probe, 1);
    simul_redis_reply *x = NULL;
    assert_int_equal(simul_redis_command(probe, &x, "RPUSH pq %s", "v"), 0);
    simul_redis_reply_free(x);
    assert_int_equal(simul_task_join(gt, NULL), 0);
    assert_true(g.ok);
    simul_redis_close(probe);
    simul_redis_close(c);
    stop_server(&sv);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_resp3_handshake),
        cmocka_unit_test(connect_unix_resp2),
        cmocka_unit_test(auth_and_select),
        cmocka_unit_test(reconnect_bounds_checked),
        cmocka_unit_test(server_error_is_distinct),
        cmocka_unit_test(auto_pipelining),
        cmocka_unit_test(cancel_mid_flight_then_call),
        cmocka_unit_test(deadline_mid_flight_then_call),
        cmocka_unit_test(random_cancels_never_cross_replies),
        cmocka_unit_test(malformed_reply_fails_all_in_flight),
        cmocka_unit_test(peer_gone_mid_reply_fails_all_in_flight),
        cmocka_unit_test(reply_over_limit_fails_all_in_flight),
        cmocka_unit_test(connect_timeout_when_handshake_hangs),
        cmocka_unit_test(hello_refused_falls_back_to_resp2),
        cmocka_unit_test(server_killed_mid_traffic_then_reconnect),
        cmocka_unit_test(pubsub_resp3_shared_connection),
        cmocka_unit_test(pubsub_resubscribes_after_reconnect),
        cmocka_unit_test(pubsub_resp2_dedicated_connection),
        cmocka_unit_test(close_fails_waiters),
        cmocka_unit_test(pipelined_volume_and_large_value),
        cmocka_unit_test(explicit_pipeline),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_redis_client");
}
