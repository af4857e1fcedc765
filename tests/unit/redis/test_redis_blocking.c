/* test_redis_blocking.c — blocking commands on the pool of dedicated connections, against the
 * suite's redis-server: the shared connection keeps serving while they block; cancel and deadline
 * end them with CLIENT UNBLOCK and keep their connection (closed only when that cannot be done),
 * and an element popped just before a cancel is returned, never lost (raced many times); the
 * pool is bounded; close ends them. Every wait is for a state the server reports
 * (blocked_clients, stats), under a deadline. */
#include "redis_server.h"

typedef struct blocker {
    simul_redis_conn *c;
    const char *fmt, *a, *b;
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
    b->rc = simul_redis_command(b->c, &b->r, b->fmt, b->a, b->b);
    if (b->timeout > 0)
        simul_scope_end(&sc);
    return 0;
}

/* ["key", "value"] */
static void expect_pair(simul_redis_reply *r, const char *k, const char *v)
{
    assert_non_null(r);
    assert_int_equal(simul_redis_reply_len(r), 2);
    assert_string_equal(simul_redis_reply_elem(r, 0)->str, k);
    assert_string_equal(simul_redis_reply_elem(r, 1)->str, v);
}

/* How many CLIENT UNBLOCK the server has run (INFO commandstats, cumulative: read a difference).
 * The client waits for a state, never polls: at most UNBLOCK_TRIES (2) per cancelled command. */
static long long unblock_calls(simul_redis_conn *probe)
{
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(probe, &r, "INFO %s", "commandstats"), 0);
    const char *s = simul_redis_reply_str(r, NULL);
    assert_non_null(s);
    const char *p = strstr(s, "cmdstat_client|unblock:calls=");
    long long v = p ? atoll(p + strlen("cmdstat_client|unblock:calls=")) : 0;
    simul_redis_reply_free(r);
    return v;
}

SIMUL_TASK_TEST(blocking_commands_leave_shared_connection_free)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_tcp(&sv, 0), *probe = connect_tcp(&sv, 2);

    blocker b = {.c = c, .fmt = "BLPOP %s %s", .a = "q", .b = "0"};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    /* The shared connection answers while the BLPOP is held by the server. */
    for (int i = 0; i < 50; i++)
        call_expect(c, "OK", "SET %s %s", "k", "v");
    EXPECT_REPLY(c, "v", "GET k");
    assert_int_equal(info_field(probe, "clients", "blocked_clients"), 1);
    assert_int_equal(call_int(c, "RPUSH q %s", "item"), 1);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(b.rc, 0);
    expect_pair(b.r, "q", "item");
    simul_redis_reply_free(b.r);
    assert_int_equal(stats(c).dedicated_opened, 1);

    /* Reused: the next blocking command finds the idle connection. BRPOP, BLMOVE, BZPOPMIN,
     * XREAD with BLOCK given through %s, WAIT: all detected. */
    b = (blocker){.c = c, .fmt = "BRPOP %s %s", .a = "q2", .b = "0"};
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    assert_int_equal(call_int(c, "LPUSH q2 %s", "x"), 1);
    assert_int_equal(simul_task_join(t, NULL), 0);
    expect_pair(b.r, "q2", "x");
    simul_redis_reply_free(b.r);

    b = (blocker){.c = c, .fmt = "BLMOVE %s %s LEFT RIGHT 0", .a = "src", .b = "dst"};
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    assert_int_equal(call_int(c, "RPUSH src %s", "moved"), 1);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(b.rc, 0);
    assert_string_equal(b.r->str, "moved");
    simul_redis_reply_free(b.r);
    EXPECT_REPLY(c, "moved", "LINDEX dst 0");

    b = (blocker){.c = c, .fmt = "XREAD %s 0 STREAMS %s $", .a = "block", .b = "st"};
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "XADD st * f %s", "v1"), 0);
    simul_redis_reply_free(r);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(b.rc, 0);
    assert_non_null(b.r);
    simul_redis_reply_free(b.r);

    /* Not blocking: XREAD without BLOCK stays on the shared connection. */
    uint64_t before = stats(c).dedicated_opened;
    assert_int_equal(simul_redis_command(c, &r, "XREAD COUNT 1 STREAMS st 0"), 0);
    simul_redis_reply_free(r);
    /* WAIT with no replica: 0 replicas at once. */
    assert_int_equal(call_int(c, "WAIT 0 %s", "0"), 0);
    simul_redis_stats st = stats(c);
    assert_int_equal(st.dedicated_opened, before);
    assert_int_equal(st.dedicated_opened, 1); /* one connection served every blocking command */
    assert_int_equal(st.dedicated_closed, 0);
    assert_int_equal(st.failures, 0);

    simul_redis_close(probe);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

/* Cancelled (or timed out) while the server holds it: CLIENT UNBLOCK over the shared connection
 * ends it on the server, the item pushed next is not taken by the ghost, and the next blocking
 * command gets its own reply on the same (kept) dedicated connection. protocol 2: the id comes
 * from CLIENT ID; 0 (RESP3): from HELLO. */
static void cancel_blocking(bool by_deadline, int protocol)
{
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 20), 0);
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, protocol), *probe = connect_tcp(&sv, 2);
    /* Warm the pool: the cancelled command then runs on a reused connection. */
    assert_int_equal(call_int(c, "RPUSH q %s", "warm"), 1);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "BLPOP q 0"), 0);
    simul_redis_reply_free(r);

    long long calls0 = unblock_calls(probe);
    blocker b = {
        .c = c, .fmt = "BLPOP %s %s", .a = "q", .b = "0", .timeout = by_deadline ? 0.1 : 0};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    if (!by_deadline) {
        wait_blocked(probe, 1);
        simul_task_cancel(t);
    }
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(b.rc, by_deadline ? -ETIMEDOUT : -ECANCELED);
    assert_null(b.r);
    simul_redis_stats st = stats(c);
    assert_int_equal(st.dedicated_opened, 1);
    assert_int_equal(st.dedicated_closed, 0);
    assert_int_equal(st.unblocked, 1);
    assert_int_equal(st.unblock_late, 0);
    /* Already unblocked when the call returned: no waiting for the server here. */
    assert_int_equal(info_field(probe, "clients", "blocked_clients"), 0);
    /* Seen blocked by the server, so the first UNBLOCK ended it: no second one, no polling. */
    long long calls = unblock_calls(probe) - calls0;
    if (by_deadline)
        assert_true(calls >= 1 && calls <= 2);
    else
        assert_int_equal(calls, 1);

    assert_int_equal(call_int(c, "RPUSH q %s", "for the next caller"), 1);
    assert_int_equal(call_int(c, "LLEN %s", "q"), 1); /* the ghost took nothing */
    assert_int_equal(simul_redis_command(c, &r, "BLPOP q 0"), 0);
    expect_pair(r, "q", "for the next caller");
    simul_redis_reply_free(r);
    st = stats(c);
    assert_int_equal(st.dedicated_opened, 1); /* the same connection served it */
    assert_int_equal(st.dedicated_closed, 0);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.dropped_replies, 0); /* nothing pending on the shared connection */

    simul_redis_close(probe);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
}

SIMUL_TASK_TEST(cancelled_blocking_command_is_unblocked)
{
    (void)arg;
    NEED_REDIS();
    cancel_blocking(false, 0);
    cancel_blocking(false, 2);
    return 0;
}

SIMUL_TASK_TEST(deadline_blocking_command_is_unblocked)
{
    (void)arg;
    NEED_REDIS();
    cancel_blocking(true, 0);
    cancel_blocking(true, 2);
    return 0;
}

/* Cancelled the moment it was sent: the UNBLOCK (on the shared connection) may reach the server
 * before the BLPOP (on the dedicated one); the client then waits for the BLPOP to arrive and
 * unblocks it again, and the connection stays clean. With an element there, the server pops it
 * at once: the caller gets it (0) even though it was cancelled, as the element would be lost. */
SIMUL_TASK_TEST(blocking_command_cancelled_at_once)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_tcp(&sv, 0), *probe = connect_tcp(&sv, 2);
    assert_int_equal(call_int(c, "RPUSH %s x", "unsent"), 1);
    simul_redis_reply *r = NULL;
    assert_int_equal(simul_redis_command(c, &r, "BLPOP unsent 0"), 0); /* warm the pool */
    simul_redis_reply_free(r);
    blocker b = {.c = c, .fmt = "BLPOP %s %s", .a = "unsent", .b = "0"};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    assert_int_equal(simul_yield(), 0); /* it queued its command */
    simul_task_cancel(t);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(b.rc, -ECANCELED);
    assert_null(b.r);
    assert_int_equal(info_field(probe, "clients", "blocked_clients"), 0);
    simul_redis_stats st = stats(c);
    assert_int_equal(st.dedicated_closed, 0);
    assert_int_equal(st.unblocked, 1);

    assert_int_equal(call_int(c, "RPUSH %s y", "unsent"), 1);
    b = (blocker){.c = c, .fmt = "BLPOP %s %s", .a = "unsent", .b = "0"};
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    assert_int_equal(simul_yield(), 0);
    simul_task_cancel(t);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(b.rc, 0); /* popped before the cancel could act: handed over */
    expect_pair(b.r, "unsent", "y");
    simul_redis_reply_free(b.r);
    st = stats(c);
    assert_int_equal(st.unblock_late, 1);
    assert_int_equal(st.dedicated_closed, 0);

    assert_int_equal(call_int(c, "RPUSH %s z", "unsent"), 1);
    assert_int_equal(simul_redis_command(c, &r, "BLPOP unsent 0"), 0);
    expect_pair(r, "unsent", "z");
    simul_redis_reply_free(r);
    assert_int_equal(stats(c).dedicated_opened, 1);
    simul_redis_close(probe);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

/* The fallback: the shared connection cannot send CLIENT UNBLOCK (RESP2 in subscribe mode
 * accepts no other command), so the dedicated connection is closed, as before; the server drops
 * the blocked client and the element pushed later stays in the list. */
SIMUL_TASK_TEST(blocking_command_unblock_fallback_closes)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_tcp(&sv, 2), *probe = connect_tcp(&sv, 2);
    const char *ch[] = {"fallback-ch"};
    simul_redis_subscription *sub = NULL;
    assert_int_equal(simul_redis_subscribe(c, 0, ch, 1, 0, &sub), 0);
    blocker b = {.c = c, .fmt = "BLPOP %s %s", .a = "fallback", .b = "0"};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    simul_task_cancel(t);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(b.rc, -ECANCELED);
    assert_null(b.r);
    simul_redis_stats st = stats(c);
    assert_int_equal(st.unblocked, 0);
    assert_int_equal(st.dedicated_closed, 1);
    wait_blocked(probe, 0); /* the server saw the close */
    assert_int_equal(call_int(probe, "RPUSH %s x", "fallback"), 1);
    assert_int_equal(call_int(probe, "LLEN %s", "fallback"), 1);
    assert_int_equal(call_int(probe, "DEL %s", "fallback"), 1);
    assert_int_equal(simul_redis_subscription_close(sub), 0);
    simul_redis_close(probe);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

/* The race: an element pushed while its popper is being cancelled (or its deadline expires).
 * Whichever wins at the server, the element is either still in the list or returned to the
 * caller (0 and the element, the cancel still pending): pushes == pops + what is left, every
 * time. Rounds vary the moment of the cancel against the push (before the command reached the
 * server, right after the push went out, a few loop passes later). */
typedef struct popper {
    simul_redis_conn *c;
    const char *key;
    double timeout; /* >0: a deadline instead of a cancel */
    int rc;
    simul_redis_reply *r;
    bool started;
    bool no_reply; /* pass NULL for the reply (the element is then freed, still counted) */
} popper;

static int popper_main(void *arg)
{
    popper *p = arg;
    simul_scope sc;
    if (p->timeout > 0)
        assert_int_equal(simul_scope_timeout(&sc, p->timeout), 0);
    p->started = true;
    p->rc = simul_redis_command(p->c, p->no_reply ? NULL : &p->r, "BLPOP %s 0", p->key);
    if (p->timeout > 0)
        simul_scope_end(&sc);
    return 0;
}

typedef struct pusher_arg {
    simul_redis_conn *c;
    const char *key;
    char v[32];
    int passes;   /* loop passes to let go by first */
    double delay; /* or seconds (against a deadline) */
    int rc;
} pusher_arg;

static int pusher_main(void *arg)
{
    pusher_arg *a = arg;
    for (int i = 0; i < a->passes; i++)
        assert_int_equal(simul_yield(), 0);
    if (a->delay > 0)
        assert_int_equal(simul_sleep(a->delay), 0);
    simul_redis_reply *r = NULL;
    a->rc = simul_redis_command(a->c, &r, "RPUSH %s %s", a->key, a->v);
    simul_redis_reply_free(r);
    return 0;
}

static void race_push_against_cancel(bool by_deadline, int protocol)
{
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 120), 0);
    server sv;
    start_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, protocol), *pusher = connect_tcp(&sv, 2);
    simul_redis_conn *probe = connect_tcp(&sv, 2);
    char key[64];
    snprintf(key, sizeof key, "race:%d:%d", by_deadline, protocol);
    enum { ROUNDS = 400 };
    long long pushed = 0, popped = 0, cancelled = 0, left = 0;
    long long calls0 = unblock_calls(probe);
    for (int i = 0; i < ROUNDS; i++) {
        popper p = {.c = c,
                    .key = key,
                    .timeout = by_deadline ? 0.0005 * (1 + i % 5) : 0,
                    .no_reply = i % 10 == 9};
        simul_task *t;
        assert_int_equal(simul_task_spawn(&t, popper_main, &p, NULL), 0);
        if (!by_deadline && i % 3 != 0)
            wait_blocked(probe, 1);
        else
            assert_int_equal(simul_yield(), 0);
        /* The push goes out 0..3 loop passes from now and the cancel lands 0..3 passes from now
         * (the deadline: expires 0.5..2.5 ms after the BLPOP began), so the UNBLOCK (on c) and
         * the RPUSH (on pusher) race at the server, or the popped element's reply races with
         * the cancel here. Timing only spreads the interleavings; the check holds for each. */
        pusher_arg pa = {.c = pusher, .key = key, .passes = (i / 4) % 4};
        if (by_deadline)
            pa.delay = 0.0004 * (i % 7);
        snprintf(pa.v, sizeof pa.v, "v%d", i);
        simul_task *pt;
        assert_int_equal(simul_task_spawn(&pt, pusher_main, &pa, NULL), 0);
        if (!by_deadline) {
            for (int y = 0; y < i % 4; y++)
                assert_int_equal(simul_yield(), 0);
            simul_task_cancel(t);
        }
        assert_int_equal(simul_task_join(pt, NULL), 0);
        assert_int_equal(pa.rc, 0);
        pushed++;
        assert_int_equal(simul_task_join(t, NULL), 0);
        /* What the round left in the list is counted and removed: the next round's popper
         * must block. */
        left += call_int(probe, "LLEN %s", key);
        assert_true(call_int(probe, "DEL %s", key) >= 0);
        if (p.rc == 0 && p.no_reply) {
            popped++;
        } else if (p.rc == 0) {
            expect_pair(p.r, key, simul_redis_reply_elem(p.r, 1)->str);
            popped++;
            simul_redis_reply_free(p.r);
        } else {
            assert_int_equal(p.rc, by_deadline ? -ETIMEDOUT : -ECANCELED);
            assert_null(p.r);
            cancelled++;
        }
    }
    print_message("race %s RESP%d: pushed %lld, popped %lld (late %llu), cancelled %lld, left "
                  "%lld, unblocked %llu, closed %llu\n",
                  by_deadline ? "deadline" : "cancel", protocol ? protocol : 3, pushed, popped,
                  (unsigned long long)stats(c).unblock_late, cancelled, left,
                  (unsigned long long)stats(c).unblocked,
                  (unsigned long long)stats(c).dedicated_closed);
    assert_int_equal(pushed, popped + left);
    assert_int_equal(info_field(probe, "clients", "blocked_clients"), 0);
    assert_int_equal(stats(c).failures, 0);
    /* Whatever the interleaving, at most two UNBLOCK per round: a state wait, not a poll. */
    long long calls = unblock_calls(probe) - calls0;
    print_message("race: %lld CLIENT UNBLOCK for %d rounds\n", calls, ROUNDS);
    assert_true(calls <= 2 * ROUNDS);
    assert_true(calls >= (long long)stats(c).unblocked);
    simul_redis_close(probe);
    simul_redis_close(pusher);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
}

SIMUL_TASK_TEST(cancel_racing_push_loses_nothing)
{
    (void)arg;
    NEED_REDIS();
    race_push_against_cancel(false, 0);
    race_push_against_cancel(false, 2);
    return 0;
}

SIMUL_TASK_TEST(deadline_racing_push_loses_nothing)
{
    (void)arg;
    NEED_REDIS();
    race_push_against_cancel(true, 0);
    return 0;
}

/* The server frozen (SIGSTOP) while a cancelled command waits to be unblocked: nothing answers,
 * so the deadline (here connect_timeout, 0.3 s, below the 1 s bound) ends the wait and the
 * dedicated connection is closed; the call returns -ECANCELED (the case's guard would catch a wait
 * without an end). Thawed, the server drops the closed client, the late UNBLOCK answer on the
 * shared connection is dropped, the shared connection goes on, and the element pushed next stays
 * in the list: the ghost took nothing. */
SIMUL_TASK_TEST(unblock_bounded_when_server_frozen)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 20), 0);
    server sv;
    start_own_server(&sv, NULL);
    simul_redis_opts o = {.host = "127.0.0.1", .port = sv.portstr, .connect_timeout = 0.3};
    simul_redis_conn *c = NULL, *probe = connect_tcp(&sv, 2);
    assert_int_equal(simul_redis_connect(&o, &c), 0);
    blocker b = {.c = c, .fmt = "BLPOP %s %s", .a = "frozen", .b = "0"};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    assert_int_equal(kill(sv.pid, SIGSTOP), 0);
    double t0 = simul_now();
    simul_task_cancel(t);
    assert_int_equal(simul_task_join(t, NULL), 0);
    print_message("unblock gave up after %.3f s\n", simul_now() - t0);
    assert_int_equal(b.rc, -ECANCELED);
    assert_null(b.r);
    simul_redis_stats st = stats(c);
    assert_int_equal(st.unblocked, 0);
    assert_int_equal(st.unblock_late, 0);
    assert_int_equal(st.dedicated_closed, 1);
    assert_int_equal(kill(sv.pid, SIGCONT), 0);

    wait_blocked(probe, 0);
    assert_int_equal(call_int(c, "RPUSH %s x", "frozen"), 1);
    assert_int_equal(call_int(c, "LLEN %s", "frozen"), 1);
    assert_int_equal(stats(c).failures, 0);
    simul_redis_close(probe);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

/* A caller cancelled while its dedicated connection is still being opened (RESP2: the CLIENT ID
 * asked after connecting, the server frozen so the cancel lands inside it). The id is still
 * learnt (shielded), and the blocking command is never sent: an element pushed afterwards stays
 * in the list. The next cancelled command on that connection is unblocked, not ended by closing
 * the connection (which loses a reply on its way). Both failed before: the cancelled CLIENT ID
 * left the id at 0 and the BLPOP went out anyway. */
SIMUL_TASK_TEST(cancelled_while_dedicated_opens_sends_nothing)
{
    (void)arg;
    NEED_REDIS();
    simul_scope guard;
    assert_int_equal(simul_scope_timeout(&guard, 20), 0);
    server sv;
    start_own_server(&sv, NULL);
    simul_redis_conn *c = connect_tcp(&sv, 2), *probe = connect_tcp(&sv, 2);
    assert_int_equal(kill(sv.pid, SIGSTOP), 0);
    blocker b = {.c = c, .fmt = "BLPOP %s %s", .a = "opening", .b = "0"};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    while (stats(c).dedicated_opened < 1) /* connected: its CLIENT ID now waits on the server */
        assert_int_equal(simul_yield(), 0);
    simul_task_cancel(t);
    assert_int_equal(kill(sv.pid, SIGCONT), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(b.rc, -ECANCELED);
    assert_null(b.r);
    assert_int_equal(info_field(probe, "clients", "blocked_clients"), 0);
    assert_int_equal(call_int(probe, "RPUSH %s x", "opening"), 1);
    assert_int_equal(call_int(probe, "LLEN %s", "opening"), 1); /* nobody popped it */
    assert_int_equal(call_int(probe, "DEL %s", "opening"), 1);
    simul_redis_stats st = stats(c);
    assert_int_equal(st.dedicated_closed, 0);

    b = (blocker){.c = c, .fmt = "BLPOP %s %s", .a = "opening", .b = "0"};
    assert_int_equal(simul_task_spawn(&t, blocker_main, &b, NULL), 0);
    wait_blocked(probe, 1);
    simul_task_cancel(t);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(b.rc, -ECANCELED);
    st = stats(c);
    assert_int_equal(st.unblocked, 1);
    assert_int_equal(st.dedicated_closed, 0);
    assert_int_equal(st.dedicated_opened, 1);
    assert_int_equal(stats(c).failures, 0);
    simul_redis_close(probe);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

SIMUL_TASK_TEST(pool_is_bounded)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_opts o = {.host = "127.0.0.1", .port = sv.portstr, .pool_size = 2};
    simul_redis_conn *c = NULL, *probe = connect_tcp(&sv, 2);
    assert_int_equal(simul_redis_connect(&o, &c), 0);

    enum { N = 5 };
    static const char *keys[N] = {"k0", "k1", "k2", "k3", "k4"};
    blocker b[N];
    simul_task *t[N];
    for (int i = 0; i < N; i++) {
        b[i] = (blocker){.c = c, .fmt = "BLPOP %s %s", .a = keys[i], .b = "0"};
        assert_int_equal(simul_task_spawn(&t[i], blocker_main, &b[i], NULL), 0);
    }
    /* Two hold connections, three wait for one. */
    wait_blocked(probe, 2);
    while (stats(c).pool_waits != N - 2)
        assert_int_equal(simul_yield(), 0);
    assert_int_equal(stats(c).dedicated_opened, 2);
    /* A waiter for a slot honours its deadline too. */
    blocker late = {.c = c, .fmt = "BLPOP %s %s", .a = "late", .b = "0", .timeout = 0.05};
    simul_task *lt;
    assert_int_equal(simul_task_spawn(&lt, blocker_main, &late, NULL), 0);
    assert_int_equal(simul_task_join(lt, NULL), 0);
    assert_int_equal(late.rc, -ETIMEDOUT);
    /* Feed every key: each completion hands its connection on. */
    for (int i = 0; i < N; i++)
        assert_int_equal(call_int(probe, "RPUSH %s v", keys[i]), 1);
    assert_int_equal(simul_gather(t, N, NULL), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(b[i].rc, 0);
        expect_pair(b[i].r, keys[i], "v");
        simul_redis_reply_free(b[i].r);
    }
    simul_redis_stats st = stats(c);
    assert_int_equal(st.dedicated_opened, 2);
    assert_int_equal(st.dedicated_closed, 0);
    assert_int_equal(info_field(probe, "clients", "connected_clients"), 4); /* c, probe, 2 */

    simul_redis_close(probe);
    simul_redis_close(c);
    redis_case_end(&sv, &guard);
    return 0;
}

SIMUL_TASK_TEST(close_ends_blocking_commands)
{
    (void)arg;
    REDIS_CASE_BEGIN(sv, guard, 20);
    simul_redis_conn *c = connect_tcp(&sv, 0), *probe = connect_tcp(&sv, 2);
    blocker b[2] = {{.c = c, .fmt = "BLPOP %s %s", .a = "a", .b = "0"},
                    {.c = c, .fmt = "WAIT %s %s", .a = "1", .b = "0"}}; /* no replica: forever */
    simul_task *t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(simul_task_spawn(&t[i], blocker_main, &b[i], NULL), 0);
    wait_blocked(probe, 2);
    assert_int_equal(simul_redis_close(c), 0);
    assert_int_equal(simul_gather(t, 2, NULL), 0);
    assert_int_equal(b[0].rc, -ESHUTDOWN);
    assert_int_equal(b[1].rc, -ESHUTDOWN);
    wait_blocked(probe, 0);
    simul_redis_close(probe);
    redis_case_end(&sv, &guard);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blocking_commands_leave_shared_connection_free),
        cmocka_unit_test(cancelled_blocking_command_is_unblocked),
        cmocka_unit_test(deadline_blocking_command_is_unblocked),
        cmocka_unit_test(blocking_command_cancelled_at_once),
        cmocka_unit_test(blocking_command_unblock_fallback_closes),
        cmocka_unit_test(cancel_racing_push_loses_nothing),
        cmocka_unit_test(deadline_racing_push_loses_nothing),
        cmocka_unit_test(unblock_bounded_when_server_frozen),
        cmocka_unit_test(cancelled_while_dedicated_opens_sends_nothing),
        cmocka_unit_test(pool_is_bounded),
        cmocka_unit_test(close_ends_blocking_commands),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_redis_blocking");
}
