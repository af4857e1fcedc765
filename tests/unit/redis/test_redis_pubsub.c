/* test_redis_pubsub.c — pub/sub at volume and the three kinds side by side, against the suite's
 * redis-server: SUBSCRIBE, PSUBSCRIBE and sharded SSUBSCRIBE on one connection (RESP3) and on
 * RESP2; 100,000 messages to a reader that keeps up, none lost; the drop-oldest policy for a
 * reader that does not read. Waits are for counts, never for time. */
#include "redis_server.h"

static void expect_msg(simul_redis_subscription *s, const char *kind, const char *a,
                       const char *payload)
{
    simul_redis_reply *m = NULL;
    assert_int_equal(simul_redis_subscription_next(s, &m), 0);
    size_t n = simul_redis_reply_len(m);
    assert_true(n == 3 || n == 4);
    assert_string_equal(simul_redis_reply_elem(m, 0)->str, kind);
    assert_string_equal(simul_redis_reply_elem(m, 1)->str, a);
    assert_string_equal(simul_redis_reply_elem(m, n - 1)->str, payload);
    simul_redis_reply_free(m);
}

static void three_kinds(server *sv, int protocol)
{
    simul_redis_conn *c = connect_tcp(sv, protocol), *pub = connect_tcp(sv, 0);
    const char *name[] = {"news"}, *pat[] = {"ne*"};
    simul_redis_subscription *ch = NULL, *pt = NULL, *sh = NULL, *dup = NULL;
    assert_int_equal(simul_redis_subscribe(c, 0, name, 1, 0, &ch), 0);
    assert_int_equal(simul_redis_subscribe(c, SIMUL_REDIS_SUB_PATTERN, pat, 1, 0, &pt), 0);
    /* The same name as a sharded channel is another subscription. */
    assert_int_equal(simul_redis_subscribe(c, SIMUL_REDIS_SUB_SHARDED, name, 1, 0, &sh), 0);
    assert_int_equal(simul_redis_subscribe(c, SIMUL_REDIS_SUB_SHARDED, name, 1, 0, &dup), -EEXIST);
    assert_int_equal(simul_redis_subscribe(c, SIMUL_REDIS_SUB_SHARDED | SIMUL_REDIS_SUB_PATTERN,
                                           pat, 1, 0, &dup),
                     -EINVAL);

    assert_int_equal(call_int(pub, "PUBLISH news %s", "plain"), 2); /* channel + pattern */
    assert_int_equal(call_int(pub, "SPUBLISH news %s", "sharded"), 1);
    expect_msg(ch, "message", "news", "plain");
    expect_msg(pt, "pmessage", "ne*", "plain");
    expect_msg(sh, "smessage", "news", "sharded");
    assert_int_equal(simul_redis_subscription_queued(ch) + simul_redis_subscription_queued(pt) +
                         simul_redis_subscription_queued(sh),
                     0);
    /* SUNSUBSCRIBE confirmed: sharded messages stop, the others go on. */
    assert_int_equal(simul_redis_subscription_close(sh), 0);
    assert_int_equal(call_int(pub, "SPUBLISH news %s", "nobody"), 0);
    assert_int_equal(call_int(pub, "PUBLISH news %s", "still"), 2);
    expect_msg(ch, "message", "news", "still");
    expect_msg(pt, "pmessage", "ne*", "still");
    if (protocol != 2)
        call_expect(c, "PONG", "PING", NULL, NULL); /* RESP3: commands share the connection */
    assert_int_equal(simul_redis_subscription_close(ch), 0);
    assert_int_equal(simul_redis_subscription_close(pt), 0);
    simul_redis_close(pub);
    simul_redis_close(c);
}

SIMUL_TASK_TEST(sharded_beside_channels_and_patterns)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    three_kinds(&sv, 3);
    three_kinds(&sv, 2);
    redis_case_end(&sv, &guard);
    return 0;
}

/* ---- 100,000 messages ---------------------------------------------------------------------- */

enum { PUBLISHERS = 10, PER_PUBLISHER = 10000 };

typedef struct publisher {
    simul_redis_conn *c;
    int id, rc;
} publisher;

static int publisher_main(void *arg)
{
    publisher *p = arg;
    for (int i = 0; i < PER_PUBLISHER; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "%d:%d", p->id, i);
        simul_redis_reply *r = NULL;
        p->rc = simul_redis_command(p->c, &r, "PUBLISH firehose %s", msg);
        simul_redis_reply_free(r);
        if (p->rc < 0)
            return 0;
    }
    return 0;
}

typedef struct subscriber {
    simul_redis_subscription *s;
    int next[PUBLISHERS]; /* the next sequence number expected from each publisher */
    long got, out_of_order;
} subscriber;

static int subscriber_main(void *arg)
{
    subscriber *sub = arg;
    while (sub->got < (long)PUBLISHERS * PER_PUBLISHER) {
        simul_redis_reply *m = NULL;
        int rc = simul_redis_subscription_next(sub->s, &m);
        if (rc < 0)
            return rc;
        int id = -1, seq = -1;
        sscanf(simul_redis_reply_elem(m, 2)->str, "%d:%d", &id, &seq);
        assert_true(id >= 0 && id < PUBLISHERS);
        if (seq != sub->next[id])
            sub->out_of_order++;
        sub->next[id] = seq + 1;
        sub->got++;
        simul_redis_reply_free(m);
    }
    return 0;
}

SIMUL_TASK_TEST(hundred_thousand_messages_none_lost)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 50);
    simul_redis_conn *c = connect_tcp(&sv, 3), *pub = connect_tcp(&sv, 0);
    const char *name[] = {"firehose"};
    static subscriber sub;
    memset(&sub, 0, sizeof sub);
    assert_int_equal(simul_redis_subscribe(c, 0, name, 1, 0, &sub.s), 0); /* bound 1024 */
    simul_task *st;
    assert_int_equal(simul_task_spawn(&st, subscriber_main, &sub, NULL), 0);
    publisher p[PUBLISHERS];
    simul_task *pt[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++) {
        p[i] = (publisher){.c = pub, .id = i};
        assert_int_equal(simul_task_spawn(&pt[i], publisher_main, &p[i], NULL), 0);
    }
    assert_int_equal(simul_gather(pt, PUBLISHERS, NULL), 0);
    for (int i = 0; i < PUBLISHERS; i++)
        assert_int_equal(p[i].rc, 0);
    int rc = -1;
    assert_int_equal(simul_task_join(st, &rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(sub.got, (long)PUBLISHERS * PER_PUBLISHER);
    assert_int_equal(sub.out_of_order, 0);
    assert_int_equal(simul_redis_subscription_dropped(sub.s), 0);
    for (int i = 0; i < PUBLISHERS; i++)
        assert_int_equal(sub.next[i], PER_PUBLISHER);
    simul_redis_stats s;
    simul_redis_get_stats(pub, &s);
    assert_true(s.writes < s.commands / 4); /* the publishers shared writes (10 in flight) */
    assert_int_equal(simul_redis_subscription_close(sub.s), 0);
    simul_redis_close(pub);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

typedef struct reading_task {
    simul_redis_subscription *s;
    bool started;
    int rc;
} reading_task;

static int reading_main(void *arg)
{
    reading_task *rt = arg;
    simul_redis_reply *m = NULL;
    rt->started = true; /* the next call parks at once: nothing is queued */
    rt->rc = simul_redis_subscription_next(rt->s, &m);
    simul_redis_reply_free(m);
    return 0;
}

/* Nobody reads: the queue keeps the latest `bound` messages, the rest are counted as dropped,
 * and the connection goes on serving commands. */
SIMUL_TASK_TEST(reader_behind_drops_oldest)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_tcp(&sv, 3), *pub = connect_tcp(&sv, 0);
    const char *name[] = {"slow"};
    simul_redis_subscription *s = NULL;
    enum { BOUND = 16, TOTAL = 1000 };
    assert_int_equal(simul_redis_subscribe(c, 0, name, 1, BOUND, &s), 0);
    simul_redis_pipeline *p = NULL;
    assert_int_equal(simul_redis_pipeline_new(pub, &p), 0);
    for (int i = 0; i < TOTAL; i++)
        assert_int_equal(simul_redis_pipeline_add(p, "PUBLISH slow %d", i), 0);
    assert_int_equal(simul_redis_pipeline_exec(p, NULL, NULL), 0);
    simul_redis_pipeline_free(p);
    /* Every message has reached the connection once a PING sent after them is answered. */
    call_expect(c, "PONG", "PING", NULL, NULL);
    assert_int_equal(simul_redis_subscription_queued(s), BOUND);
    assert_int_equal(simul_redis_subscription_dropped(s), TOTAL - BOUND);
    for (int i = TOTAL - BOUND; i < TOTAL; i++) {
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        expect_msg(s, "message", "slow", want);
    }
    assert_int_equal(simul_redis_subscription_queued(s), 0);
    /* A reader parked on it: close refuses (it freed the queue under the reader before). */
    static reading_task rt;
    rt = (reading_task){.s = s};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, reading_main, &rt, NULL), 0);
    while (!rt.started)
        assert_int_equal(simul_yield(), 0);
    assert_int_equal(simul_redis_subscription_close(s), -EBUSY);
    assert_int_equal(simul_task_cancel(t), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(rt.rc, -ECANCELED);
    assert_int_equal(simul_redis_subscription_close(s), 0);
    simul_redis_close(pub);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sharded_beside_channels_and_patterns),
        cmocka_unit_test(hundred_thousand_messages_none_lost),
        cmocka_unit_test(reader_behind_drops_oldest),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_redis_pubsub");
}
