/* test_amqp_fake.c — libsimul-amqp against a scripted broker on a socketpair: what a real broker
 * will not do on demand. Frames over frame_max, malformed frames, a peer gone mid-message, a
 * broker that stops talking (heartbeats), acks and nacks in any order, a close mid-session, and a
 * caller cancelled mid-RPC whose reply must not reach the next caller. The fake encodes with
 * librabbitmq's codec, as the client does, and checks what the client sends. */
#include "test_main_helpers.h"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <amqp.h>
#include <amqp_framing.h>

#include <simul/amqp.h>

#define FAKE_BUF (1u << 18)

typedef struct fake {
    simul_stream *s;
    uint8_t *buf; /* FAKE_BUF bytes (tasks have small stacks) */
    size_t len;
    uint32_t frame_max;
    uint16_t heartbeat;
    int heartbeats_in;
    int close_code; /* connection.close the client sent */
    int (*script)(struct fake *f);
    int rc;
    simul_task *task;
    amqp_pool_t pool;
    void *arg;
    int conns;              /* connections made so far (recovery reconnects) */
    const char *mechanisms; /* offered in connection.start (default "PLAIN") */
    char mech_used[32];
    size_t response_len;
    volatile int phase, go; /* a script and its test stepping together */
} fake;

static void put_frame(fake *f, uint8_t type, uint16_t ch, const void *p, uint32_t n)
{
    uint8_t hdr[7] = {type,
                      (uint8_t)(ch >> 8),
                      (uint8_t)ch,
                      (uint8_t)(n >> 24),
                      (uint8_t)(n >> 16),
                      (uint8_t)(n >> 8),
                      (uint8_t)n};
    assert_int_equal(simul_stream_write(f->s, hdr, 7), 0);
    if (n)
        assert_int_equal(simul_stream_write(f->s, p, n), 0);
    assert_int_equal(simul_stream_write(f->s, "\xCE", 1), 0);
}

static void send_method(fake *f, uint16_t ch, uint32_t id, void *args)
{
    uint8_t b[8192];
    b[0] = (uint8_t)(id >> 24);
    b[1] = (uint8_t)(id >> 16);
    b[2] = (uint8_t)(id >> 8);
    b[3] = (uint8_t)id;
    amqp_bytes_t enc = {sizeof b - 4, b + 4};
    int n = amqp_encode_method(id, args, enc);
    assert_true(n >= 0);
    put_frame(f, 1, ch, b, (uint32_t)n + 4);
}

/* The next method from the client (heartbeats counted and skipped; content frames skipped).
 * Returns its id, or 0 at EOF. *args points into the pool. */
static uint32_t recv_method(fake *f, uint16_t *chan, void **args)
{
    for (;;) {
        simul_amqp_frame fr;
        ssize_t n = simul_amqp_frame_parse(f->buf, f->len, 0, &fr);
        assert_true(n >= 0);
        if (n == 0) {
            long r = simul_stream_read(f->s, f->buf + f->len, FAKE_BUF - f->len);
            if (r <= 0)
                return 0;
            f->len += (size_t)r;
            continue;
        }
        uint32_t id = 0;
        void *a = NULL;
        if (fr.type == 1) {
            id = (uint32_t)fr.payload[0] << 24 | (uint32_t)fr.payload[1] << 16 |
                 (uint32_t)fr.payload[2] << 8 | fr.payload[3];
            recycle_amqp_pool(&f->pool);
            amqp_bytes_t enc = {fr.size - 4, (void *)(fr.payload + 4)};
            assert_int_equal(amqp_decode_method(id, &f->pool, enc, &a), 0);
            if (chan)
                *chan = fr.channel;
        } else if (fr.type == 8) {
            f->heartbeats_in++;
        }
        memmove(f->buf, f->buf + n, f->len - (size_t)n);
        f->len -= (size_t)n;
        if (id == AMQP_CONNECTION_CLOSE_METHOD) {
            f->close_code = ((amqp_connection_close_t *)a)->reply_code;
            /* Answer as a broker does (the client may be gone already: no assertion). */
            static const uint8_t ok[12] = {1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 51, 0xCE};
            simul_stream_write(f->s, ok, sizeof ok);
        }
        if (id) {
            if (args)
                *args = a;
            return id;
        }
    }
}

static uint32_t expect(fake *f, uint32_t want, uint16_t *chan)
{
    uint32_t id = recv_method(f, chan, NULL);
    if (id != want)
        fail_msg("fake broker: expected method %08x, got %08x", want, id);
    return id;
}

static bool handshake(fake *f)
{
    uint8_t hdr[8];
    assert_int_equal(simul_stream_readexactly(f->s, hdr, 8, NULL), 8);
    assert_memory_equal(hdr, "AMQP\0\0\x09\x01", 8);
    amqp_connection_start_t st;
    memset(&st, 0, sizeof st);
    st.version_major = 0;
    st.version_minor = 9;
    st.mechanisms = amqp_cstring_bytes("PLAIN");
    st.locales = amqp_cstring_bytes("en_US");
    st.mechanisms = amqp_cstring_bytes(f->mechanisms ? f->mechanisms : "PLAIN");
    send_method(f, 0, AMQP_CONNECTION_START_METHOD, &st);
    amqp_connection_start_ok_t *so = NULL;
    if (recv_method(f, NULL, (void **)&so) != AMQP_CONNECTION_START_OK_METHOD)
        return false; /* the client refused (no mechanism it can use) */
    snprintf(f->mech_used, sizeof f->mech_used, "%.*s", (int)so->mechanism.len,
             (const char *)so->mechanism.bytes);
    f->response_len = so->response.len;
    amqp_connection_tune_t tu = {64, f->frame_max ? f->frame_max : 131072, f->heartbeat};
    send_method(f, 0, AMQP_CONNECTION_TUNE_METHOD, &tu);
    expect(f, AMQP_CONNECTION_TUNE_OK_METHOD, NULL);
    expect(f, AMQP_CONNECTION_OPEN_METHOD, NULL);
    amqp_connection_open_ok_t ok = {amqp_cstring_bytes("")};
    send_method(f, 0, AMQP_CONNECTION_OPEN_OK_METHOD, &ok);
    return true;
}

/* Answers channel.open on whatever channel the client picks; returns it. */
static uint16_t open_channel(fake *f)
{
    uint16_t ch = 0;
    expect(f, AMQP_CHANNEL_OPEN_METHOD, &ch);
    amqp_channel_open_ok_t ok = {amqp_cstring_bytes("")};
    send_method(f, ch, AMQP_CHANNEL_OPEN_OK_METHOD, &ok);
    return ch;
}

static int fake_main(void *arg)
{
    fake *f = arg;
    simul_stream *s = f->s;
    if (handshake(f))
        f->rc = f->script(f);
    f->s = NULL;           /* before the close: the client may reconnect while it flushes */
    simul_stream_close(s); /* the peer sees EOF once the script is over */
    return 0;
}

static int fake_connect(void *arg, simul_stream **out)
{
    fake *f = arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(simul_stream_from_fd(sv[0], out), 0);
    if (f->task) { /* a reconnection: the previous script has ended (it hung up) */
        assert_int_equal(simul_task_join(f->task, NULL), 0);
        f->task = NULL;
    }
    assert_int_equal(simul_stream_from_fd(sv[1], &f->s), 0);
    f->len = 0;
    f->conns++;
    assert_int_equal(simul_task_spawn(&f->task, fake_main, f, NULL), 0);
    return 0;
}

static simul_amqp_conn *fake_conn_opts(fake *f, int (*script)(fake *), double heartbeat,
                                       bool recovery)
{
    init_amqp_pool(&f->pool, 4096);
    f->buf = malloc(FAKE_BUF);
    assert_non_null(f->buf);
    f->script = script;
    simul_amqp_opts o = {.connect_cb = fake_connect,
                         .connect_arg = f,
                         .no_recovery = !recovery,
                         .heartbeat = heartbeat,
                         .reconnect_min = 0.01,
                         .reconnect_max = 0.02};
    simul_amqp_conn *c = NULL;
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    return c;
}

static simul_amqp_conn *fake_conn(fake *f, int (*script)(fake *), double heartbeat)
{
    return fake_conn_opts(f, script, heartbeat, false);
}

static void fake_done(fake *f)
{
    if (f->task)
        assert_int_equal(simul_task_join(f->task, NULL), 0);
    empty_amqp_pool(&f->pool);
    free(f->buf);
}

/* ---- frames over frame_max and malformed frames -------------------------------------------- */

static int script_oversized(fake *f)
{
    uint16_t ch = open_channel(f);
    expect(f, AMQP_BASIC_QOS_METHOD, NULL);
    /* A body frame whose header declares 8000 bytes against frame_max 4096: the client must refuse
     * it from the header alone (the body is never sent) and close with 501. */
    uint8_t hdr[7] = {3, (uint8_t)(ch >> 8), (uint8_t)ch, 0, 0, 0x1f, 0x40};
    assert_int_equal(simul_stream_write(f->s, hdr, 7), 0);
    expect(f, AMQP_CONNECTION_CLOSE_METHOD, NULL);
    while (recv_method(f, NULL, NULL))
        ;
    return 0;
}

SIMUL_TASK_TEST(frame_over_frame_max_closes_with_501)
{
    (void)arg;
    fake f = {.frame_max = 4096};
    simul_amqp_conn *c = fake_conn(&f, script_oversized, -1);
    assert_int_equal(simul_amqp_frame_max(c), 4096);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    assert_int_equal(simul_amqp_qos(ch, 5), -EMSGSIZE);
    assert_false(simul_amqp_connected(c));
    assert_int_equal(simul_amqp_qos(ch, 5), -ENOTCONN);
    fake_done(&f);
    assert_int_equal(f.close_code, 501);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

static int script_malformed(fake *f)
{
    open_channel(f);
    expect(f, AMQP_BASIC_QOS_METHOD, NULL);
    /* A method frame whose end byte is wrong. */
    assert_int_equal(
        simul_stream_write(f->s, "\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x0b\xCD", 12), 0);
    expect(f, AMQP_CONNECTION_CLOSE_METHOD, NULL);
    while (recv_method(f, NULL, NULL))
        ;
    return 0;
}

SIMUL_TASK_TEST(malformed_frame_closes_with_502)
{
    (void)arg;
    fake f = {0};
    simul_amqp_conn *c = fake_conn(&f, script_malformed, -1);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    assert_int_equal(simul_amqp_qos(ch, 5), -EPROTO);
    fake_done(&f);
    assert_int_equal(f.close_code, 502);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* ---- a peer gone mid-message --------------------------------------------------------------- */

static int script_gone_mid_body(fake *f)
{
    uint16_t ch = open_channel(f);
    expect(f, AMQP_BASIC_GET_METHOD, NULL);
    amqp_basic_get_ok_t g;
    memset(&g, 0, sizeof g);
    g.delivery_tag = 1;
    g.exchange = amqp_cstring_bytes("");
    g.routing_key = amqp_cstring_bytes("q");
    send_method(f, ch, AMQP_BASIC_GET_OK_METHOD, &g);
    /* header: class 60, body size 10, no properties */
    uint8_t h[14] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0};
    put_frame(f, 2, ch, h, sizeof h);
    put_frame(f, 3, ch, "hello", 5);
    return 0; /* and hang up: 5 of 10 bytes sent */
}

SIMUL_TASK_TEST(peer_gone_mid_message_fails_get)
{
    (void)arg;
    fake f = {0};
    simul_amqp_conn *c = fake_conn(&f, script_gone_mid_body, -1);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    simul_amqp_message *m = NULL;
    assert_int_equal(simul_amqp_get(ch, "q", 0, &m), -ECONNRESET);
    assert_null(m);
    fake_done(&f);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* ---- heartbeats ---------------------------------------------------------------------------- */

static int script_silent(fake *f)
{
    /* Reads (and counts the client's heartbeats) but never says a word. */
    while (recv_method(f, NULL, NULL))
        ;
    return 0;
}

SIMUL_TASK_TEST(silent_broker_detected_by_heartbeat_check)
{
    (void)arg;
    fake f = {.heartbeat = 1};
    simul_amqp_conn *c = fake_conn(&f, script_silent, 1);
    assert_int_equal(simul_amqp_heartbeat(c), 1);
    double t0 = test_clock();
    simul_amqp_stats st;
    while (simul_amqp_connected(c)) {
        assert_true(test_clock() - t0 < 10);
        assert_int_equal(simul_sleep(0.05), 0);
    }
    /* Two intervals of silence, checked every half interval: 2..3 s. */
    double took = test_clock() - t0;
    assert_true(took >= 1.9);
    simul_amqp_get_stats(c, &st);
    assert_true(st.heartbeats_out >= 2);
    assert_int_equal(st.failures, 1);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), -ENOTCONN);
    fake_done(&f);
    assert_true(f.heartbeats_in >= 2);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* While the loop is held (a handler computing without suspending), a thread plays the broker's
 * heartbeats into the socket: when the loop runs again, the check must see them pending and not
 * call the broker dead. */
typedef struct beater {
    int fd;
    volatile int stop;
} beater;

static void *beater_main(void *arg)
{
    beater *b = arg;
    static const unsigned char hb[8] = {8, 0, 0, 0, 0, 0, 0, 0xCE};
    while (!b->stop) {
        if (write(b->fd, hb, sizeof hb) != (ssize_t)sizeof hb)
            break;
        usleep(100000);
    }
    return NULL;
}

SIMUL_TASK_TEST(loop_held_past_two_heartbeats_is_not_a_miss)
{
    (void)arg;
    fake f = {.heartbeat = 1};
    simul_amqp_conn *c = fake_conn(&f, script_silent, 1);
    test_settle();
    beater b = {.fd = simul_stream_fd(f.s)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, beater_main, &b), 0);
    test_busy_wait(2.6); /* more than two intervals without letting the reader run */
    b.stop = 1;
    pthread_join(th, NULL);
    for (int i = 0; i < 20; i++)
        assert_int_equal(simul_sleep(0.01), 0);
    simul_amqp_stats st;
    simul_amqp_get_stats(c, &st);
    assert_true(simul_amqp_connected(c));
    assert_int_equal(st.failures, 0);
    assert_true(st.heartbeats_in >= 10);
    assert_int_equal(simul_amqp_close(c), 0);
    fake_done(&f);
    return 0;
}

/* ---- confirms: out of order, multiple, nack, and the rest lost at the drop ------------------ */

static int script_confirms(fake *f)
{
    uint16_t ch = open_channel(f);
    expect(f, AMQP_CONFIRM_SELECT_METHOD, NULL);
    amqp_confirm_select_ok_t ok = {0};
    send_method(f, ch, AMQP_CONFIRM_SELECT_OK_METHOD, &ok);
    for (int i = 0; i < 10; i++)
        expect(f, AMQP_BASIC_PUBLISH_METHOD, NULL);
    amqp_basic_ack_t a5 = {5, 0};
    send_method(f, ch, AMQP_BASIC_ACK_METHOD, &a5);
    amqp_basic_ack_t a3 = {3, 1}; /* 1..3 */
    send_method(f, ch, AMQP_BASIC_ACK_METHOD, &a3);
    amqp_basic_nack_t n4 = {4, 0, 0};
    send_method(f, ch, AMQP_BASIC_NACK_METHOD, &n4);
    amqp_basic_nack_t n7 = {7, 1, 0}; /* 6..7 */
    send_method(f, ch, AMQP_BASIC_NACK_METHOD, &n7);
    /* Wait until the client has seen them (it asks for qos), then drop: 8..10 are lost. */
    expect(f, AMQP_BASIC_QOS_METHOD, NULL);
    return 0;
}

SIMUL_TASK_TEST(confirm_outcomes_and_loss_reported)
{
    (void)arg;
    fake f = {0};
    simul_amqp_conn *c = fake_conn(&f, script_confirms, -1);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    uint64_t seq[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(simul_amqp_publish(ch, "", "q", "m", 1, NULL, 0, &seq[i]), 0);
    assert_int_equal(simul_amqp_wait_confirm(ch, seq[6]), -EBADMSG);
    assert_int_equal(simul_amqp_unconfirmed(ch), 3);
    assert_int_equal(simul_amqp_qos(ch, 1), -ECONNRESET);
    int want[10] = {0,        0,        0,           -EBADMSG,    0,
                    -EBADMSG, -EBADMSG, -ECONNRESET, -ECONNRESET, -ECONNRESET};
    for (int i = 0; i < 10; i++)
        assert_int_equal(simul_amqp_wait_confirm(ch, seq[i]), want[i]);
    uint64_t failed = 0;
    assert_int_equal(simul_amqp_wait_confirms(ch, &failed), -EBADMSG);
    assert_int_equal(failed, 6);
    simul_amqp_stats st;
    simul_amqp_get_stats(c, &st);
    assert_int_equal(st.acked, 4);
    assert_int_equal(st.nacked, 3);
    assert_int_equal(st.lost, 3);
    fake_done(&f);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* ---- a caller cancelled mid-RPC ------------------------------------------------------------ */

static int script_slow_replies(fake *f)
{
    uint16_t ch = open_channel(f);
    /* Two purges arrive; the first caller is gone by the time we answer. */
    expect(f, AMQP_QUEUE_PURGE_METHOD, NULL);
    expect(f, AMQP_QUEUE_PURGE_METHOD, NULL);
    amqp_queue_purge_ok_t a = {111}, b = {222};
    send_method(f, ch, AMQP_QUEUE_PURGE_OK_METHOD, &a);
    send_method(f, ch, AMQP_QUEUE_PURGE_OK_METHOD, &b);
    while (recv_method(f, NULL, NULL))
        ;
    return 0;
}

typedef struct purger {
    simul_amqp_channel *ch;
    uint32_t n;
    int rc;
} purger;

static int purger_main(void *arg)
{
    purger *p = arg;
    p->rc = simul_amqp_queue_purge(p->ch, "q", &p->n);
    return 0;
}

SIMUL_TASK_TEST(cancelled_caller_never_gets_or_steals_a_reply)
{
    (void)arg;
    fake f = {0};
    simul_amqp_conn *c = fake_conn(&f, script_slow_replies, -1);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    purger p1 = {.ch = ch}, p2 = {.ch = ch};
    simul_task *t1 = test_spawn(purger_main, &p1);
    test_settle();
    simul_task_cancel(t1);
    simul_task *t2 = test_spawn(purger_main, &p2);
    test_join_ok(t1);
    test_join_ok(t2);
    assert_int_equal(p1.rc, -ECANCELED);
    assert_int_equal(p2.rc, 0);
    assert_int_equal(p2.n, 222); /* its own reply, not the first one's */
    assert_int_equal(simul_amqp_close(c), 0);
    fake_done(&f);
    assert_int_equal(f.close_code, 200);
    return 0;
}

/* ---- closing and freeing what recovery is busy with ---------------------------------------- */

static void wait_go(fake *f, int phase)
{
    f->phase = phase;
    while (!f->go)
        assert_int_equal(simul_sleep(0.001), 0);
    f->go = 0;
}

static int script_recovery_races(fake *f)
{
    uint16_t ch = open_channel(f);
    if (f->conns == 1) {
        uint16_t c2;
        expect(f, AMQP_BASIC_CONSUME_METHOD, &c2);
        amqp_basic_consume_ok_t ok = {amqp_cstring_bytes("t1")};
        send_method(f, ch, AMQP_BASIC_CONSUME_OK_METHOD, &ok);
        wait_go(f, 1);
        return 0; /* hang up: recovery begins */
    }
    if (f->conns == 2) {
        /* Recovery consumes again; the test frees the consumer before consume-ok. */
        expect(f, AMQP_BASIC_CONSUME_METHOD, NULL);
        wait_go(f, 2);
        amqp_basic_consume_ok_t ok = {amqp_cstring_bytes("t1")};
        send_method(f, ch, AMQP_BASIC_CONSUME_OK_METHOD, &ok);
        expect(f, AMQP_BASIC_CANCEL_METHOD, NULL); /* the consumer nobody reads is cancelled */
        wait_go(f, 3);
        return 0; /* hang up again */
    }
    return -1;
}

static int script_recovery_races_3(fake *f)
{
    /* Third connection: recovery reopens the channel; the test closes it before open-ok. */
    uint16_t ch = 0;
    expect(f, AMQP_CHANNEL_OPEN_METHOD, &ch);
    wait_go(f, 4);
    amqp_channel_open_ok_t ok = {amqp_cstring_bytes("")};
    send_method(f, ch, AMQP_CHANNEL_OPEN_OK_METHOD, &ok);
    open_channel(f); /* the test opens a fresh one afterwards */
    while (recv_method(f, NULL, NULL))
        ;
    return 0;
}

static int script_recovery_dispatch(fake *f)
{
    return f->conns <= 2 ? script_recovery_races(f) : script_recovery_races_3(f);
}

#define WAIT_PHASE(f, p)                                                                           \
    do {                                                                                           \
        double until_ = test_clock() + 10;                                                         \
        while ((f)->phase != (p)) {                                                                \
            assert_true(test_clock() < until_);                                                    \
            assert_int_equal(simul_sleep(0.001), 0);                                               \
        }                                                                                          \
    } while (0)

/* Waits (10 s at most) until the connection has recovered n times. */
static void wait_recoveries(simul_amqp_conn *c, unsigned long long n)
{
    simul_amqp_stats st;
    double until = test_clock() + 10;
    do {
        assert_true(test_clock() < until);
        assert_int_equal(simul_sleep(0.001), 0);
        simul_amqp_get_stats(c, &st);
    } while (st.recoveries < n);
}

SIMUL_TASK_TEST(close_and_free_while_recovery_holds_them)
{
    (void)arg;
    fake f = {0};
    simul_amqp_conn *c = fake_conn_opts(&f, script_recovery_dispatch, -1, true);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, "q", "t1", 0, &k), 0);
    WAIT_PHASE(&f, 1);
    f.go = 1; /* first connection drops */
    WAIT_PHASE(&f, 2);
    /* Recovery waits for consume-ok with k: free it now. */
    simul_amqp_consumer_free(k);
    f.go = 1;
    WAIT_PHASE(&f, 3);
    f.go = 1; /* second connection drops */
    WAIT_PHASE(&f, 4);
    /* Recovery waits for channel.open-ok with ch: close it now. */
    assert_int_equal(simul_amqp_channel_close(ch), 0);
    f.go = 1;
    wait_recoveries(c, 2);
    assert_true(simul_amqp_connected(c));
    simul_amqp_channel *ch2;
    assert_int_equal(simul_amqp_channel_open(c, &ch2), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    fake_done(&f);
    return 0;
}

/* ---- acks while the connection is still recovering ----------------------------------------- */

/* Recovery reopens the consumer's channel and consumes again, and the broker delivers at once,
 * while recovery still reopens the next channel. The ack of such a delivery belongs to the new
 * channel: it must go out, not be refused as stale because the whole connection is not back yet
 * (refused, every delivery of the prefetch window stays unacked and the consumer stalls: the
 * real broker test broker_killed_mid_stream_recovers_and_reconciles did, under ASan). */
static int script_ack_during_recovery(fake *f)
{
    if (f->conns == 1) {
        open_channel(f); /* the other channel */
        open_channel(f); /* the consumer's */
        uint16_t ch = 0;
        expect(f, AMQP_BASIC_CONSUME_METHOD, &ch);
        amqp_basic_consume_ok_t ok = {amqp_cstring_bytes("t1")};
        send_method(f, ch, AMQP_BASIC_CONSUME_OK_METHOD, &ok);
        wait_go(f, 1);
        return 0; /* hang up: recovery begins */
    }
    /* Recovery: the consumer's channel first (the most recently opened), then the other. */
    uint16_t ch = open_channel(f), c2 = 0;
    expect(f, AMQP_BASIC_CONSUME_METHOD, &c2);
    assert_int_equal(c2, ch);
    amqp_basic_consume_ok_t ok = {amqp_cstring_bytes("t1")};
    send_method(f, ch, AMQP_BASIC_CONSUME_OK_METHOD, &ok);
    amqp_basic_deliver_t d;
    memset(&d, 0, sizeof d);
    d.consumer_tag = amqp_cstring_bytes("t1");
    d.delivery_tag = 1;
    d.exchange = amqp_cstring_bytes("");
    d.routing_key = amqp_cstring_bytes("q");
    send_method(f, ch, AMQP_BASIC_DELIVER_METHOD, &d);
    uint8_t h[14] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0}; /* class 60, 5 bytes */
    put_frame(f, 2, ch, h, sizeof h);
    put_frame(f, 3, ch, "hello", 5);
    uint16_t other = 0;
    expect(f, AMQP_CHANNEL_OPEN_METHOD, &other); /* held: recovery is not over */
    amqp_basic_ack_t *ack = NULL;
    uint16_t ach = 0;
    if (recv_method(f, &ach, (void **)&ack) != AMQP_BASIC_ACK_METHOD)
        fail_msg("fake broker: expected the ack during recovery");
    assert_int_equal(ach, ch);
    assert_int_equal(ack->delivery_tag, 1);
    f->phase = 2;
    amqp_channel_open_ok_t ook = {amqp_cstring_bytes("")};
    send_method(f, other, AMQP_CHANNEL_OPEN_OK_METHOD, &ook);
    while (recv_method(f, NULL, NULL))
        ;
    return 0;
}

SIMUL_TASK_TEST(ack_during_recovery_goes_out)
{
    (void)arg;
    fake f = {0};
    simul_amqp_conn *c = fake_conn_opts(&f, script_ack_during_recovery, -1, true);
    simul_amqp_channel *other, *ch;
    assert_int_equal(simul_amqp_channel_open(c, &other), 0);
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, "q", "t1", 0, &k), 0);
    WAIT_PHASE(&f, 1);
    f.go = 1; /* the connection drops */
    simul_amqp_message *m = NULL;
    assert_int_equal(simul_amqp_consumer_next(k, &m), 0);
    assert_int_equal(m->len, 5);
    assert_memory_equal(m->body, "hello", 5);
    assert_false(simul_amqp_connected(c)); /* the other channel's open-ok is held back */
    assert_int_equal(simul_amqp_ack(m, 0), 0);
    simul_amqp_message_free(m);
    WAIT_PHASE(&f, 2); /* the fake broker got it */
    wait_recoveries(c, 1);
    assert_true(simul_amqp_connected(c));
    assert_int_equal(simul_amqp_close(c), 0);
    fake_done(&f);
    return 0;
}

/* ---- SASL mechanisms ------------------------------------------------------------------------ */

static int script_idle(fake *f)
{
    while (recv_method(f, NULL, NULL))
        ;
    return 0;
}

SIMUL_TASK_TEST(sasl_plain_external_and_none_offered)
{
    (void)arg;
    fake f = {.mechanisms = "AMQPLAIN PLAIN"};
    simul_amqp_conn *c = fake_conn(&f, script_idle, -1);
    assert_int_equal(simul_amqp_close(c), 0);
    fake_done(&f);
    assert_string_equal(f.mech_used, "PLAIN");
    assert_int_equal(f.response_len, strlen("guest") * 2 + 2); /* \0guest\0guest */

    fake g = {.mechanisms = "PLAIN EXTERNAL"};
    init_amqp_pool(&g.pool, 4096);
    g.buf = malloc(FAKE_BUF);
    g.script = script_idle;
    simul_amqp_opts o = {.connect_cb = fake_connect,
                         .connect_arg = &g,
                         .no_recovery = true,
                         .heartbeat = -1,
                         .sasl_external = true};
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    fake_done(&g);
    assert_string_equal(g.mech_used, "EXTERNAL");
    assert_int_equal(g.response_len, 0);

    fake h = {.mechanisms = "AMQPLAIN"};
    init_amqp_pool(&h.pool, 4096);
    h.buf = malloc(FAKE_BUF);
    h.script = script_idle;
    o.connect_arg = &h;
    o.sasl_external = false;
    assert_int_equal(simul_amqp_connect(&o, &c), -EPROTONOSUPPORT);
    fake_done(&h);
    return 0;
}

/* ---- connection.close from the broker mid-session ------------------------------------------- */

static int script_forced_close(fake *f)
{
    open_channel(f);
    expect(f, AMQP_BASIC_QOS_METHOD, NULL);
    amqp_connection_close_t cl;
    memset(&cl, 0, sizeof cl);
    cl.reply_code = 320;
    cl.reply_text = amqp_cstring_bytes("CONNECTION_FORCED - maintenance");
    send_method(f, 0, AMQP_CONNECTION_CLOSE_METHOD, &cl);
    expect(f, AMQP_CONNECTION_CLOSE_OK_METHOD, NULL);
    return 0;
}

SIMUL_TASK_TEST(server_close_reports_code_and_text)
{
    (void)arg;
    fake f = {0};
    simul_amqp_conn *c = fake_conn(&f, script_forced_close, -1);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    assert_int_equal(simul_amqp_qos(ch, 1), -ECONNABORTED);
    int code = 0;
    assert_string_equal(simul_amqp_conn_error(c, &code), "CONNECTION_FORCED - maintenance");
    assert_int_equal(code, 320);
    fake_done(&f);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_over_frame_max_closes_with_501),
        cmocka_unit_test(malformed_frame_closes_with_502),
        cmocka_unit_test(peer_gone_mid_message_fails_get),
        cmocka_unit_test(silent_broker_detected_by_heartbeat_check),
        cmocka_unit_test(loop_held_past_two_heartbeats_is_not_a_miss),
        cmocka_unit_test(confirm_outcomes_and_loss_reported),
        cmocka_unit_test(cancelled_caller_never_gets_or_steals_a_reply),
        cmocka_unit_test(server_close_reports_code_and_text),
        cmocka_unit_test(close_and_free_while_recovery_holds_them),
        cmocka_unit_test(ack_during_recovery_goes_out),
        cmocka_unit_test(sasl_plain_external_and_none_offered),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_amqp_fake");
}
