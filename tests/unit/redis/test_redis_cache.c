/* test_redis_cache.c — client-side caching against the suite's redis-server: hits, the server's
 * invalidations (another client's write, our own, FLUSHALL), the memory bound with LRU eviction,
 * the cache emptied and tracking turned on again after a reconnection; on RESP2, invalidations
 * through a second connection (CLIENT TRACKING ... REDIRECT) and the cache emptied when it is lost.
 * Every wait is for a counter the connection reports. */
#include "redis_server.h"

static simul_redis_conn *connect_cached(server *sv, int protocol, size_t bytes)
{
    simul_redis_opts o = {
        .host = "127.0.0.1", .port = sv->portstr, .protocol = protocol, .cache_bytes = bytes};
    simul_redis_conn *c = NULL;
    assert_int_equal(simul_redis_connect(&o, &c), 0);
    return c;
}

/* Until the connection has processed n invalidations in all. */
static void wait_invalidations(simul_redis_conn *c, uint64_t n)
{
    while (stats(c).cache_invalidations < n)
        assert_int_equal(simul_yield(), 0);
}

SIMUL_TASK_TEST(cache_hits_and_invalidations)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_cached(&sv, 3, 1u << 20), *w = connect_tcp(&sv, 2);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
    assert_non_null(strstr(r->str, " flags=t ")); /* tracking on */
    simul_redis_reply_free(r);

    call_expect(w, "OK", "SET %s %s", "k", "v1");
    call_expect(c, "v1", "GET %s", "k", NULL); /* miss */
    call_expect(c, "v1", "GET %s", "k", NULL); /* hit */
    call_expect(c, "v1", "GET %s", "k", NULL);
    simul_redis_stats st = stats(c);
    assert_int_equal(st.cache_misses, 1);
    assert_int_equal(st.cache_hits, 2);
    assert_true(st.cache_bytes > 0);

    /* Another client writes: the server's invalidation drops the entry. */
    call_expect(w, "OK", "SET %s %s", "k", "v2");
    wait_invalidations(c, 1);
    call_expect(c, "v2", "GET %s", "k", NULL);
    assert_int_equal(stats(c).cache_misses, 2);

    /* Aggregates and binary keys come back the same from the cache (a map stays a map). */
    assert_int_equal(call_int(w, "HSET h a %s", "1"), 1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simul_redis_command(c, &r, "HGETALL h"), 0);
        assert_int_equal(r->type, SIMUL_REDIS_MAP);
        assert_int_equal(simul_redis_reply_len(r), 1);
        assert_string_equal(simul_redis_reply_map_get(r, "a")->str, "1");
        simul_redis_reply_free(r);
    }
    const char *set[] = {"SET", "bin\0key", "x\r\ny"};
    const size_t setl[] = {3, 7, 4};
    assert_int_equal(simul_redis_command_argv(w, 0, &r, 3, set, setl), 0);
    simul_redis_reply_free(r);
    const char *get[] = {"GET", "bin\0key"};
    const size_t getl[] = {3, 7};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simul_redis_command_argv(c, 0, &r, 2, get, getl), 0);
        assert_int_equal(r->len, 4);
        assert_memory_equal(r->str, "x\r\ny", 4);
        simul_redis_reply_free(r);
    }
    st = stats(c);
    assert_int_equal(st.cache_hits, 4);
    uint64_t inv = st.cache_invalidations;
    assert_int_equal(simul_redis_command_argv(w, 0, &r, 3, set, setl), 0); /* binary key changed */
    simul_redis_reply_free(r);
    wait_invalidations(c, inv + 1);
    assert_int_equal(simul_redis_command_argv(c, SIMUL_REDIS_NO_CACHE, &r, 2, get, getl), 0);
    simul_redis_reply_free(r);
    assert_int_equal(stats(c).cache_misses, st.cache_misses); /* NO_CACHE: not even counted */

    /* Our own write: the server's invalidation comes before the write's reply on the same
     * connection, so the next read is never answered with the old value. */
    call_expect(c, "OK", "SET %s %s", "own", "old");
    call_expect(c, "old", "GET %s", "own", NULL);
    call_expect(c, "old", "GET %s", "own", NULL); /* cached */
    uint64_t hits = stats(c).cache_hits;
    call_expect(c, "OK", "SET %s %s", "own", "new");
    call_expect(c, "new", "GET %s", "own", NULL);
    assert_int_equal(stats(c).cache_hits, hits);
    simul_redis_close(w);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

SIMUL_TASK_TEST(cache_is_bounded_lru)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    enum { BOUND = 20000, KEYS = 100, VLEN = 1000 };
    simul_redis_conn *c = connect_cached(&sv, 3, BOUND), *w = connect_tcp(&sv, 2);
    char v[VLEN];
    memset(v, 'v', sizeof v);
    simul_redis_reply *r = NULL;
    for (int i = 0; i < KEYS; i++) {
        assert_int_equal(simul_redis_command(w, &r, "SET key%d %b", i, v, sizeof v), 0);
        simul_redis_reply_free(r);
    }
    for (int i = 0; i < KEYS; i++) {
        assert_int_equal(simul_redis_command(c, &r, "GET key%d", i), 0);
        assert_int_equal(r->len, VLEN);
        simul_redis_reply_free(r);
        /* key0 is read between every other key: the most recently used, never evicted. */
        assert_int_equal(simul_redis_command(c, &r, "GET key%d", 0), 0);
        simul_redis_reply_free(r);
        assert_true(stats(c).cache_bytes <= BOUND);
    }
    simul_redis_stats st = stats(c);
    assert_true(st.cache_evictions >= KEYS - BOUND / VLEN);
    assert_int_equal(st.cache_hits, KEYS); /* every key0 read after the first */
    assert_int_equal(st.cache_misses, KEYS);
    /* An entry over the whole bound is never kept. */
    char *big = malloc(BOUND);
    memset(big, 'b', BOUND);
    assert_int_equal(simul_redis_command(w, &r, "SET big %b", big, (size_t)BOUND), 0);
    simul_redis_reply_free(r);
    free(big);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simul_redis_command(c, &r, "GET big"), 0);
        simul_redis_reply_free(r);
    }
    assert_int_equal(stats(c).cache_misses, KEYS + 2);

    /* FLUSHALL: one invalidation for everything. */
    uint64_t inv = stats(c).cache_invalidations;
    EXPECT_REPLY(w, "OK", "FLUSHALL");
    wait_invalidations(c, inv + 1);
    assert_int_equal(stats(c).cache_bytes, 0);
    simul_redis_close(w);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

SIMUL_TASK_TEST(cache_reconnect_empties_and_retracks)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_cached(&sv, 3, 1u << 20), *w = connect_tcp(&sv, 2);
    call_expect(w, "OK", "SET %s %s", "k", "before");
    call_expect(c, "before", "GET %s", "k", NULL);
    call_expect(c, "before", "GET %s", "k", NULL);
    assert_int_equal(stats(c).cache_hits, 1);
    /* The connection is killed; the key changes while it is down (no one to tell it). */
    long long id = call_int(c, "CLIENT %s", "ID");
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", id);
    assert_int_equal(call_int(w, "CLIENT KILL ID %s", ids), 1);
    call_expect(w, "OK", "SET %s %s", "k", "after");
    while (stats(c).connects < 2)
        assert_int_equal(simul_yield(), 0);
    assert_int_equal(stats(c).cache_bytes, 0); /* emptied by the reconnection */
    call_expect(c, "after", "GET %s", "k", NULL);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
    assert_non_null(strstr(r->str, " flags=t ")); /* tracking on again */
    simul_redis_reply_free(r);
    call_expect(w, "OK", "SET %s %s", "k", "again");
    wait_invalidations(c, 1);
    call_expect(c, "again", "GET %s", "k", NULL);
    simul_redis_close(c);

    simul_redis_close(w);
    redis_case_end(&sv, &guard);
    return 0;
}

/* The id the connection's tracking redirects to (CLIENT INFO's redir=), -1 when off. */
static long long redirect_of(simul_redis_conn *c)
{
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "CLIENT INFO"), 0);
    const char *p = strstr(r->str, " redir=");
    long long id = p ? atoll(p + 7) : -1;
    bool tracking = strstr(r->str, " flags=t ") != NULL;
    simul_redis_reply_free(r);
    return tracking ? id : -1;
}

SIMUL_TASK_TEST(cache_resp2_through_redirect)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_cached(&sv, 2, 1u << 20), *w = connect_tcp(&sv, 2);
    assert_int_equal(simul_redis_protocol(c), 2);
    long long redir = redirect_of(c);
    assert_true(redir > 0); /* tracking on, redirected to the invalidation connection */
    assert_int_equal(stats(c).tracker_setups, 1);

    call_expect(w, "OK", "SET %s %s", "k2", "v1");
    call_expect(c, "v1", "GET %s", "k2", NULL); /* miss */
    call_expect(c, "v1", "GET %s", "k2", NULL); /* hit */
    assert_int_equal(stats(c).cache_hits, 1);
    /* Another client writes: the invalidation comes on the other connection. */
    call_expect(w, "OK", "SET %s %s", "k2", "v2");
    wait_invalidations(c, 1);
    call_expect(c, "v2", "GET %s", "k2", NULL);
    call_expect(c, "v2", "GET %s", "k2", NULL);
    simul_redis_stats st = stats(c);
    assert_int_equal(st.cache_misses, 2);
    assert_int_equal(st.cache_hits, 2);
    /* Our own write too, and an aggregate. */
    assert_int_equal(call_int(w, "RPUSH l %s", "a"), 1);
    simul_redis_reply *r = NULL;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simul_redis_command(c, &r, "LRANGE l 0 -1"), 0);
        assert_int_equal(simul_redis_reply_len(r), 1);
        simul_redis_reply_free(r);
    }
    assert_int_equal(stats(c).cache_hits, 3);
    uint64_t inv = stats(c).cache_invalidations;
    assert_int_equal(call_int(c, "RPUSH l %s", "b"), 2);
    wait_invalidations(c, inv + 1);
    assert_int_equal(simul_redis_command(c, &r, "LRANGE l 0 -1"), 0);
    assert_int_equal(simul_redis_reply_len(r), 2);
    simul_redis_reply_free(r);
    /* FLUSHALL: a nil invalidation empties everything. */
    call_expect(c, "v2", "GET %s", "k2", NULL);
    assert_true(stats(c).cache_bytes > 0);
    inv = stats(c).cache_invalidations;
    call_expect(w, "OK", "FLUSHALL", NULL, NULL);
    wait_invalidations(c, inv + 1);
    assert_int_equal(stats(c).cache_bytes, 0);

    /* The invalidation connection is killed and the key changes meanwhile (its invalidation goes
     * nowhere): the cache is emptied, a new invalidation connection is made and tracking
     * redirected to it, and the read sees the new value. */
    call_expect(w, "OK", "SET %s %s", "k2", "old");
    call_expect(c, "old", "GET %s", "k2", NULL);
    call_expect(c, "old", "GET %s", "k2", NULL);
    assert_true(stats(c).cache_bytes > 0);
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", redir);
    assert_int_equal(call_int(w, "CLIENT KILL ID %s", ids), 1);
    call_expect(w, "OK", "SET %s %s", "k2", "new");
    while (stats(c).tracker_setups < 2)
        assert_int_equal(simul_yield(), 0);
    call_expect(c, "new", "GET %s", "k2", NULL);
    long long redir2 = redirect_of(c);
    assert_true(redir2 > 0);
    assert_true(redir2 != redir);
    call_expect(c, "new", "GET %s", "k2", NULL); /* cached again */
    inv = stats(c).cache_invalidations;
    call_expect(w, "OK", "SET %s %s", "k2", "newer");
    wait_invalidations(c, inv + 1);
    call_expect(c, "newer", "GET %s", "k2", NULL);
    assert_int_equal(stats(c).failures, 0);
    simul_redis_close(c);
    simul_redis_close(w);
    redis_case_end(&sv, &guard);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cache_hits_and_invalidations),
        cmocka_unit_test(cache_is_bounded_lru),
        cmocka_unit_test(cache_reconnect_empties_and_retracks),
        cmocka_unit_test(cache_resp2_through_redirect),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_redis_cache");
}
