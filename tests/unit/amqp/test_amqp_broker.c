/* test_amqp_broker.c — libsimul-amqp against a real RabbitMQ: the node the suite's fixture started
 * (tests/amqp/broker.sh; its state directory in SIMUL_AMQP_BROKER). Cases that kill, freeze or
 * alarm the broker hold the fixture's resource lock, so no other case shares those moments.
 * No case waits for time: each waits for a state (a count, a flag, the broker's answer), bounded
 * by a deadline scope. */
#include "amqp_broker_helpers.h"

#ifndef SIMUL_AMQP_PIKA_PEER
#define SIMUL_AMQP_PIKA_PEER "tests/amqp/pika_peer.py"
#endif

/* ---- connection ---------------------------------------------------------------------------- */

SIMUL_TASK_TEST(connect_negotiates_and_closes)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url("?heartbeat=7&frame_max=8192&channel_max=32"));
    assert_true(simul_amqp_connected(c));
    assert_int_equal(simul_amqp_frame_max(c), 8192);
    assert_int_equal(simul_amqp_channel_max(c), 32);
    assert_int_equal(simul_amqp_heartbeat(c), 7);
    simul_amqp_channel *ch[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(simul_amqp_channel_open(c, &ch[i]), 0);
    assert_true(simul_amqp_channel_id(ch[0]) != simul_amqp_channel_id(ch[1]));
    assert_int_equal(simul_amqp_channel_close(ch[1]), 0);
    /* channel_max bounds the open channels: the 33rd is refused, a closed one's id is reused. */
    simul_amqp_channel *more[30], *extra;
    for (int i = 0; i < 30; i++)
        assert_int_equal(simul_amqp_channel_open(c, &more[i]), 0);
    assert_int_equal(simul_amqp_channel_open(c, &extra), -ENFILE);
    assert_int_equal(simul_amqp_channel_close(more[7]), 0);
    assert_int_equal(simul_amqp_channel_open(c, &extra), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(bad_credentials_and_vhost_refused)
{
    (void)arg;
    char u[256];
    simul_amqp_conn *c = NULL;
    snprintf(u, sizeof u, "amqp://guest:wrong@127.0.0.1:%d/", port());
    simul_amqp_opts o = {.url = u};
    assert_int_equal(simul_amqp_connect(&o, &c), -EACCES);
    assert_null(c);
    snprintf(u, sizeof u, "amqp://guest:guest@127.0.0.1:%d/no-such-vhost", port());
    o.url = u;
    assert_int_equal(simul_amqp_connect(&o, &c), -EACCES);
    /* Nothing listens there: the connect error itself. */
    o.url = "amqp://guest:guest@127.0.0.1:1/";
    assert_int_equal(simul_amqp_connect(&o, &c), -ECONNREFUSED);
    /* amqps is built in now (it used to need the caller's connect_cb: -EPROTONOSUPPORT): TLS to
     * a port where nothing listens fails with the connect error and says where. */
    char why[256] = "";
    o.url = "amqps://127.0.0.1:1/";
    o.why = why;
    o.whylen = sizeof why;
    assert_int_equal(simul_amqp_connect(&o, &c), -ECONNREFUSED);
    assert_non_null(strstr(why, "127.0.0.1:1"));
    return 0;
}

/* ---- channels, declarations, channel errors ------------------------------------------------ */

SIMUL_TASK_TEST(declare_bind_publish_get_purge_delete)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url(NULL));
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    char ex[128], q[256];
    snprintf(ex, sizeof ex, "%s", qname("ex"));
    assert_int_equal(simul_amqp_exchange_declare(ch, ex, "topic", 0, NULL, 0), 0);
    simul_amqp_arg qargs[] = {{.key = "x-max-length", .integer = 1000}};
    assert_int_equal(
        simul_amqp_queue_declare(ch, "", SIMUL_AMQP_EXCLUSIVE, qargs, 1, q, sizeof q, NULL, NULL),
        0);
    assert_true(strncmp(q, "amq.gen-", 8) == 0); /* server-named */
    assert_int_equal(simul_amqp_queue_bind(ch, q, ex, "a.*", NULL, 0), 0);
    simul_amqp_arg hdr[] = {{.key = "k1", .str = "v1"}, {.key = "k2", .integer = -42}};
    simul_amqp_props props = {.content_type = "text/plain",
                              .message_id = "m-1",
                              .delivery_mode = 2,
                              .priority = 3,
                              .timestamp = 1700000000,
                              .headers = hdr,
                              .nheaders = 2};
    assert_int_equal(simul_amqp_publish(ch, ex, "a.b", "hello", 5, &props, 0, NULL), 0);
    assert_int_equal(simul_amqp_publish(ch, ex, "x.y", "unrouted", 8, NULL, 0, NULL), 0);
    assert_int_equal(simul_amqp_publish(ch, ex, "a.c", "", 0, NULL, 0, NULL), 0);
    WAIT_UNTIL(ready_count(ch, q) == 2, 10);
    simul_amqp_message *m = NULL;
    assert_int_equal(simul_amqp_get(ch, q, 0, &m), 0);
    assert_int_equal(m->len, 5);
    assert_memory_equal(m->body, "hello", 5);
    assert_string_equal(m->exchange, ex);
    assert_string_equal(m->routing_key, "a.b");
    assert_string_equal(m->props.content_type, "text/plain");
    assert_string_equal(m->props.message_id, "m-1");
    assert_int_equal(m->props.delivery_mode, 2);
    assert_int_equal(m->props.priority, 3);
    assert_int_equal(m->props.timestamp, 1700000000);
    assert_int_equal(m->props.nheaders, 2);
    assert_string_equal(m->props.headers[0].key, "k1");
    assert_string_equal(m->props.headers[0].str, "v1");
    assert_null(m->props.headers[1].str);
    assert_int_equal(m->props.headers[1].integer, -42);
    assert_int_equal(m->message_count, 1);
    assert_false(m->redelivered);
    /* reject with requeue: it comes back, flagged */
    assert_int_equal(simul_amqp_reject(m, SIMUL_AMQP_REQUEUE), 0);
    simul_amqp_message_free(m);
    WAIT_UNTIL(ready_count(ch, q) == 2, 10);
    uint32_t purged = 0;
    assert_int_equal(simul_amqp_queue_purge(ch, q, &purged), 0);
    assert_int_equal(purged, 2);
    assert_int_equal(simul_amqp_get(ch, q, 0, &m), -ENOMSG);
    assert_int_equal(simul_amqp_publish(ch, ex, "a.b", "x", 1, NULL, 0, NULL), 0);
    WAIT_UNTIL(ready_count(ch, q) == 1, 10);
    if (simul_amqp_get(ch, q, SIMUL_AMQP_NO_ACK, &m) != 0)
        fail_msg("get: %s", simul_amqp_channel_error(ch, NULL));
    assert_int_equal(simul_amqp_ack(m, 0), -EINVAL); /* nothing to acknowledge */
    simul_amqp_message_free(m);
    assert_int_equal(simul_amqp_queue_unbind(ch, q, ex, "a.*", NULL, 0), 0);
    assert_int_equal(simul_amqp_publish(ch, ex, "a.b", "x", 1, NULL, 0, NULL), 0);
    uint32_t n = 99;
    if (simul_amqp_queue_delete(ch, q, 0, &n) != 0)
        fail_msg("delete: %s", simul_amqp_channel_error(ch, NULL));
    assert_int_equal(n, 0); /* unbound: nothing reached it */
    assert_int_equal(simul_amqp_exchange_delete(ch, ex, 0), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(channel_error_reported_connection_survives)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url(NULL));
    simul_amqp_channel *ch, *ch2;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    assert_int_equal(simul_amqp_channel_open(c, &ch2), 0);
    int code = 0;
    assert_null(simul_amqp_channel_error(ch, &code));
    assert_int_equal(simul_amqp_queue_declare(ch, qname("missing"), SIMUL_AMQP_PASSIVE, NULL, 0,
                                              NULL, 0, NULL, NULL),
                     -EREMOTEIO);
    const char *text = simul_amqp_channel_error(ch, &code);
    assert_int_equal(code, 404);
    assert_non_null(text);
    assert_non_null(strstr(text, "NOT_FOUND"));
    /* The channel stays closed, says why; the connection and the other channel go on. */
    assert_int_equal(simul_amqp_qos(ch, 1), -EREMOTEIO);
    assert_int_equal(simul_amqp_publish(ch, "", "x", "x", 1, NULL, 0, NULL), -EREMOTEIO);
    assert_true(simul_amqp_connected(c));
    assert_int_equal(simul_amqp_queue_declare(ch2, qname("ok"), SIMUL_AMQP_AUTO_DELETE, NULL, 0,
                                              NULL, 0, NULL, NULL),
                     0);
    /* 406: redeclare with other properties. */
    assert_int_equal(simul_amqp_queue_declare(ch2, qname("ok"), SIMUL_AMQP_DURABLE, NULL, 0, NULL,
                                              0, NULL, NULL),
                     -EREMOTEIO);
    simul_amqp_channel_error(ch2, &code);
    assert_int_equal(code, 406);
    assert_int_equal(simul_amqp_channel_close(ch), 0);
    assert_int_equal(simul_amqp_channel_close(ch2), 0);
    simul_amqp_channel *ch3;
    assert_int_equal(simul_amqp_channel_open(c, &ch3), 0);
    assert_int_equal(simul_amqp_queue_delete(ch3, qname("ok"), 0, NULL), 0);
    simul_amqp_stats st;
    simul_amqp_get_stats(c, &st);
    assert_int_equal(st.failures, 0);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* ---- publishing with confirms -------------------------------------------------------------- */

SIMUL_TASK_TEST(confirms_in_flight_single_and_batch)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url(NULL));
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    const char *q = qname("confirms");
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    enum { N = 5000 };
    static uint64_t seqs[N];
    char body[64];
    for (int i = 0; i < N; i++) {
        int n = snprintf(body, sizeof body, "msg-%d", i);
        assert_int_equal(simul_amqp_publish(ch, "", q, body, (size_t)n, NULL, 0, &seqs[i]), 0);
        assert_int_equal(seqs[i], (uint64_t)i + 1);
    }
    /* All of them in flight at once: nothing was awaited yet. */
    assert_true(simul_amqp_unconfirmed(ch) > 0);
    /* One in the middle on its own, then the rest as a batch. */
    assert_int_equal(simul_amqp_wait_confirm(ch, seqs[N / 2]), 0);
    assert_int_equal(simul_amqp_wait_confirm(ch, seqs[N - 1]), 0);
    uint64_t failed = 99;
    assert_int_equal(simul_amqp_wait_confirms(ch, &failed), 0);
    assert_int_equal(failed, 0);
    assert_int_equal(simul_amqp_unconfirmed(ch), 0);
    assert_int_equal(simul_amqp_wait_confirm(ch, seqs[0]), -EINVAL); /* consumed by the batch */
    simul_amqp_stats st;
    simul_amqp_get_stats(c, &st);
    assert_int_equal(st.acked, N);
    /* The broker coalesces acks (multiple): fewer ack frames than publishes is the usual case,
     * and every publish still has its own outcome. */
    WAIT_UNTIL(ready_count(ch, q) == N, 10);
    assert_int_equal(simul_amqp_queue_delete(ch, q, 0, NULL), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(mandatory_unroutable_is_returned)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url(NULL));
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    uint64_t seq = 0;
    assert_int_equal(
        simul_amqp_publish(ch, "", qname("nowhere"), "lost?", 5, NULL, SIMUL_AMQP_MANDATORY, &seq),
        0);
    simul_amqp_message *r = NULL;
    assert_int_equal(simul_amqp_next_return(ch, &r), 0);
    assert_int_equal(r->reply_code, 312);
    assert_string_equal(r->reply_text, "NO_ROUTE");
    assert_string_equal(r->routing_key, qname("nowhere"));
    assert_memory_equal(r->body, "lost?", 5);
    assert_int_equal(simul_amqp_ack(r, 0), -EINVAL);
    simul_amqp_message_free(r);
    /* The broker acks an unroutable message (after its return). */
    assert_int_equal(simul_amqp_wait_confirm(ch, seq), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* ---- consuming ----------------------------------------------------------------------------- */

SIMUL_TASK_TEST(consume_prefetch_bounds_and_ack_multiple)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url(NULL));
    simul_amqp_channel *ch, *pub;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    assert_int_equal(simul_amqp_channel_open(c, &pub), 0);
    const char *q = qname("prefetch");
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_confirm_select(pub), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(simul_amqp_publish(pub, "", q, &i, sizeof i, NULL, 0, NULL), 0);
    assert_int_equal(simul_amqp_wait_confirms(pub, NULL), 0);
    assert_int_equal(simul_amqp_qos(ch, 10), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, q, "my-tag", 0, &k), 0);
    assert_string_equal(simul_amqp_consumer_tag(k), "my-tag");
    /* The broker holds back everything beyond the prefetch: 90 stay ready. */
    WAIT_UNTIL(ready_count(pub, q) == 90, 10);
    simul_amqp_stats st;
    simul_amqp_get_stats(c, &st);
    assert_int_equal(st.delivered, 10);
    simul_amqp_message *m[10];
    for (int i = 0; i < 10; i++) {
        assert_int_equal(simul_amqp_consumer_next(k, &m[i]), 0);
        assert_int_equal(*(const int *)m[i]->body, i);
        assert_string_equal(m[i]->consumer_tag, "my-tag");
    }
    /* One ack for all ten. */
    assert_int_equal(simul_amqp_ack(m[9], SIMUL_AMQP_MULTIPLE), 0);
    for (int i = 0; i < 10; i++)
        simul_amqp_message_free(m[i]);
    WAIT_UNTIL(ready_count(pub, q) == 80, 10);
    /* nack with requeue (multiple) sends the next ten back, flagged. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(simul_amqp_consumer_next(k, &m[i]), 0);
    assert_int_equal(simul_amqp_nack(m[9], SIMUL_AMQP_MULTIPLE | SIMUL_AMQP_REQUEUE), 0);
    for (int i = 0; i < 10; i++)
        simul_amqp_message_free(m[i]);
    int redelivered = 0, seen = 0;
    while (seen < 90) {
        simul_amqp_message *x;
        assert_int_equal(simul_amqp_consumer_next(k, &x), 0);
        redelivered += x->redelivered;
        seen++;
        assert_int_equal(simul_amqp_ack(x, 0), 0);
        simul_amqp_message_free(x);
    }
    assert_int_equal(redelivered, 10);
    assert_int_equal(simul_amqp_consumer_cancel(k), 0);
    simul_amqp_message *x;
    assert_int_equal(simul_amqp_consumer_next(k, &x), -ESHUTDOWN);
    assert_false(simul_amqp_consumer_cancelled(k));
    simul_amqp_consumer_free(k);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(queue_deleted_under_consumer_is_reported)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url(NULL));
    simul_amqp_channel *ch, *admin;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    assert_int_equal(simul_amqp_channel_open(c, &admin), 0);
    const char *q = qname("deleted");
    assert_int_equal(simul_amqp_queue_declare(ch, q, 0, NULL, 0, NULL, 0, NULL, NULL), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, q, NULL, 0, &k), 0);
    assert_true(strncmp(simul_amqp_consumer_tag(k), "amq.ctag-", 9) == 0);
    assert_int_equal(simul_amqp_publish(admin, "", q, "last", 4, NULL, 0, NULL), 0);
    simul_amqp_message *m;
    assert_int_equal(simul_amqp_consumer_next(k, &m), 0);
    assert_int_equal(simul_amqp_ack(m, 0), 0);
    simul_amqp_message_free(m);
    assert_int_equal(simul_amqp_queue_delete(admin, q, 0, NULL), 0);
    assert_int_equal(simul_amqp_consumer_next(k, &m), -EIDRM);
    assert_true(simul_amqp_consumer_cancelled(k));
    /* The channel is fine. */
    assert_null(simul_amqp_channel_error(ch, NULL));
    assert_int_equal(simul_amqp_qos(ch, 5), 0);
    simul_amqp_consumer_free(k);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* A consumer task that takes deliveries until cancelled, acking each. */
typedef struct taker {
    simul_amqp_consumer *k;
    int n, rc;
} taker;

static int taker_main(void *arg)
{
    taker *t = arg;
    for (;;) {
        simul_amqp_message *m;
        int rc = simul_amqp_consumer_next(t->k, &m);
        if (rc < 0) {
            t->rc = rc;
            return 0;
        }
        t->n++;
        simul_amqp_ack(m, 0);
        simul_amqp_message_free(m);
    }
}

SIMUL_TASK_TEST(cancel_while_a_task_waits_and_basic_get)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url(NULL));
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    const char *q = qname("cancel");
    assert_int_equal(simul_amqp_queue_declare(ch, q, 0, NULL, 0, NULL, 0, NULL, NULL), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, q, NULL, 0, &k), 0);
    taker t = {.k = k};
    simul_task *tt = test_spawn(taker_main, &t);
    for (int i = 0; i < 20; i++)
        assert_int_equal(simul_amqp_publish(ch, "", q, "x", 1, NULL, 0, NULL), 0);
    WAIT_UNTIL(t.n == 20, 10);
    assert_int_equal(simul_amqp_consumer_next(k, &(simul_amqp_message *){NULL}), -EBUSY);
    assert_int_equal(simul_amqp_consumer_cancel(k), 0);
    test_join_ok(tt);
    assert_int_equal(t.rc, -ESHUTDOWN);
    simul_amqp_consumer_free(k);
    /* After the cancel, messages stay in the queue for basic.get. */
    assert_int_equal(simul_amqp_publish(ch, "", q, "after", 5, NULL, 0, NULL), 0);
    WAIT_UNTIL(ready_count(ch, q) == 1, 10);
    simul_amqp_message *m;
    assert_int_equal(simul_amqp_get(ch, q, 0, &m), 0);
    assert_memory_equal(m->body, "after", 5);
    assert_int_equal(simul_amqp_ack(m, 0), 0);
    simul_amqp_message_free(m);
    assert_int_equal(simul_amqp_queue_delete(ch, q, 0, NULL), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* ---- frames and frame_max ------------------------------------------------------------------ */

SIMUL_TASK_TEST(large_messages_split_at_small_frame_max)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url("?frame_max=4096"));
    assert_int_equal(simul_amqp_frame_max(c), 4096);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    const char *q = qname("large");
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    size_t sizes[] = {4088, 4089, 100000, 3 << 20};
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        uint8_t *b = malloc(sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            b[j] = (uint8_t)(j * 7 + i);
        assert_int_equal(simul_amqp_publish(ch, "", q, b, sizes[i], NULL, 0, NULL), 0);
        free(b);
    }
    assert_int_equal(simul_amqp_wait_confirms(ch, NULL), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, q, NULL, SIMUL_AMQP_NO_ACK, &k), 0);
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        simul_amqp_message *m;
        assert_int_equal(simul_amqp_consumer_next(k, &m), 0);
        assert_int_equal(m->len, sizes[i]);
        const uint8_t *b = m->body;
        for (size_t j = 0; j < sizes[i]; j++)
            if (b[j] != (uint8_t)(j * 7 + i))
                fail_msg("message %zu byte %zu", i, j);
        simul_amqp_message_free(m);
    }
    simul_amqp_stats st;
    simul_amqp_get_stats(c, &st);
    assert_true(st.frames_in > (3u << 20) / 4096); /* it did come in small frames */
    simul_amqp_consumer_free(k);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(message_over_max_message_fails_connection)
{
    (void)arg;
    /* Our own limit on what we accept (max_message): the header announces the size, and the
     * connection is closed before a byte of the body is buffered. */
    simul_amqp_opts o = {.url = url(NULL), .max_message = 1000, .no_recovery = true};
    simul_amqp_conn *c = NULL;
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    const char *q = qname("toolarge");
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    static char big[2000];
    assert_int_equal(simul_amqp_publish(ch, "", q, big, sizeof big, NULL, 0, NULL), 0);
    simul_amqp_message *m = NULL;
    int rc = simul_amqp_get(ch, q, 0, &m);
    assert_int_equal(rc, -EMSGSIZE);
    assert_false(simul_amqp_connected(c));
    assert_int_equal(simul_amqp_qos(ch, 1), -ENOTCONN);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* ---- the broker misbehaves: closes, freezes, alarms, dies ---------------------------------- */

SIMUL_TASK_TEST(server_close_reported_then_recovered)
{
    (void)arg;
    simul_amqp_opts o = {.url = url(NULL),
                         .connection_name = "simul-forced",
                         .reconnect_min = 0.05,
                         .reconnect_max = 0.2};
    simul_amqp_conn *c = NULL;
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    /* Topology to recover: an exchange, a server-named exclusive queue, a binding, a QoS, a
     * consumer, confirm mode. */
    char ex[128], q[256];
    snprintf(ex, sizeof ex, "%s", qname("rec-ex"));
    assert_int_equal(simul_amqp_exchange_declare(ch, ex, "fanout", SIMUL_AMQP_AUTO_DELETE, NULL, 0),
                     0);
    assert_int_equal(
        simul_amqp_queue_declare(ch, NULL, SIMUL_AMQP_EXCLUSIVE, NULL, 0, q, sizeof q, NULL, NULL),
        0);
    assert_int_equal(simul_amqp_queue_bind(ch, q, ex, "", NULL, 0), 0);
    assert_int_equal(simul_amqp_qos(ch, 20), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, q, NULL, 0, &k), 0);
    assert_int_equal(simul_amqp_publish(ch, ex, "", "before", 6, NULL, 0, NULL), 0);
    simul_amqp_message *m;
    assert_int_equal(simul_amqp_consumer_next(k, &m), 0);
    assert_memory_equal(m->body, "before", 6);
    /* The broker closes every connection (320 CONNECTION_FORCED). */
    assert_int_equal(broker("ctl", "close_all_connections 'test says bye'"), 0);
    WAIT_UNTIL(simul_amqp_conn_error(c, NULL) != NULL, 20);
    int code = 0;
    const char *text = simul_amqp_conn_error(c, &code);
    assert_int_equal(code, 320);
    assert_non_null(strstr(text, "test says bye"));
    /* A delivery from before the loss cannot be acknowledged any more. */
    WAIT_UNTIL(simul_amqp_connected(c), 20);
    assert_int_equal(simul_amqp_ack(m, 0), -ESTALE);
    simul_amqp_message_free(m);
    simul_amqp_stats st;
    simul_amqp_get_stats(c, &st);
    assert_int_equal(st.failures, 1);
    assert_int_equal(st.recoveries, 1);
    /* Everything came back: publishing to the exchange reaches the consumer through the queue
     * (declared again under a new server name) and its binding; confirms work. */
    uint64_t seq;
    assert_int_equal(simul_amqp_publish(ch, ex, "", "after", 5, NULL, 0, &seq), 0);
    assert_int_equal(simul_amqp_wait_confirm(ch, seq), 0);
    for (;;) {
        assert_int_equal(simul_amqp_consumer_next(k, &m), 0);
        bool after = m->len == 5 && memcmp(m->body, "after", 5) == 0;
        assert_int_equal(simul_amqp_ack(m, 0), 0);
        simul_amqp_message_free(m);
        if (after)
            break;
    }
    simul_amqp_consumer_free(k);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

typedef struct blocked_pub {
    simul_amqp_channel *ch;
    const char *q;
    int rc, confirm;
    bool done;
} blocked_pub;

static int blocked_pub_main(void *arg)
{
    blocked_pub *b = arg;
    uint64_t seq = 0;
    b->rc = simul_amqp_publish(b->ch, "", b->q, "waited", 6, NULL, 0, &seq);
    if (b->rc == 0)
        b->confirm = simul_amqp_wait_confirm(b->ch, seq);
    b->done = true;
    return 0;
}

SIMUL_TASK_TEST(memory_alarm_blocks_and_releases_publishers)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url(NULL));
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    const char *q = qname("alarm");
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    assert_int_equal(broker("ctl", "set_vm_memory_high_watermark 0.0000001 >/dev/null"), 0);
    /* The broker blocks a connection, and says so (connection.blocked), when it publishes while
     * the alarm is up: the first publish goes out and is held by the broker. */
    uint64_t first = 0;
    assert_int_equal(simul_amqp_publish(ch, "", q, "first", 5, NULL, 0, &first), 0);
    WAIT_UNTIL(simul_amqp_blocked(c), 30);
    /* A publisher with a deadline gives up, having queued nothing. */
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.2), 0);
    assert_int_equal(simul_amqp_publish(ch, "", q, "x", 1, NULL, 0, NULL), -ETIMEDOUT);
    simul_scope_end(&sc);
    simul_amqp_stats st;
    simul_amqp_get_stats(c, &st);
    assert_int_equal(st.published, 1);
    assert_int_equal(st.blocked_waits, 1);
    /* One without waits until the alarm clears. */
    blocked_pub b = {.ch = ch, .q = q};
    simul_task *t = test_spawn(blocked_pub_main, &b);
    WAIT_UNTIL((simul_amqp_get_stats(c, &st), st.blocked_waits == 2), 10);
    assert_false(b.done);
    assert_int_equal(broker("ctl", "set_vm_memory_high_watermark 0.4 >/dev/null"), 0);
    test_join_ok(t);
    assert_int_equal(b.rc, 0);
    assert_int_equal(b.confirm, 0);
    assert_int_equal(simul_amqp_wait_confirm(ch, first), 0);
    assert_false(simul_amqp_blocked(c));
    assert_int_equal(ready_count(ch, q), 2);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

typedef struct rpc_probe {
    simul_amqp_channel *ch;
    int rc;
    bool done;
} rpc_probe;

static int rpc_probe_main(void *arg)
{
    rpc_probe *p = arg;
    p->rc = simul_amqp_qos(p->ch, 3);
    p->done = true;
    return 0;
}

SIMUL_TASK_TEST(heartbeats_flow_while_a_consumer_does_not_read)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url("?heartbeat=1"));
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    const char *q = qname("idle-consumer");
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_qos(ch, 10), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(simul_amqp_publish(ch, "", q, "w", 1, NULL, 0, NULL), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, q, NULL, 0, &k), 0);
    /* The handler is "busy" (nobody calls consumer_next) for several heartbeat intervals: the
     * timer keeps both directions alive. */
    simul_amqp_stats st;
    WAIT_UNTIL((simul_amqp_get_stats(c, &st), st.heartbeats_in >= 5 && st.heartbeats_out >= 5), 20);
    assert_true(simul_amqp_connected(c));
    assert_int_equal(st.failures, 0);
    assert_null(simul_amqp_conn_error(c, NULL));
    assert_int_equal(st.delivered, 10);
    simul_amqp_message *m;
    assert_int_equal(simul_amqp_consumer_next(k, &m), 0);
    assert_int_equal(simul_amqp_ack(m, 0), 0);
    simul_amqp_message_free(m);
    simul_amqp_consumer_free(k);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* Counts the loop's 100 ms ticks until the probe is done: time as the loop saw it. A process held
 * off the CPU (a loaded machine stalled ours for 100-650 ms, and once a frozen-broker run took
 * 51.9 s of wall time) loses ticks, not adds them, while a client that truly took long to notice
 * keeps ticking. */
typedef struct ticker {
    const rpc_probe *p;
    int ticks;
} ticker;

static int ticker_main(void *arg)
{
    ticker *tk = arg;
    while (!tk->p->done) {
        if (simul_sleep(0.1) < 0)
            return 0;
        tk->ticks++;
    }
    return 0;
}

SIMUL_TASK_TEST(frozen_broker_detected_by_heartbeats)
{
    (void)arg;
    simul_amqp_opts o = {.url = url("?heartbeat=1"), .no_recovery = true};
    simul_amqp_conn *c = NULL;
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    assert_int_equal(simul_amqp_heartbeat(c), 1);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    /* Heartbeats flow both ways while nothing else does. */
    simul_amqp_stats st;
    WAIT_UNTIL((simul_amqp_get_stats(c, &st), st.heartbeats_in >= 2 && st.heartbeats_out >= 2), 10);
    assert_int_equal(broker("signal", "STOP"), 0);
    rpc_probe p = {.ch = ch};
    ticker tk = {.p = &p};
    simul_task *t = test_spawn(rpc_probe_main, &p);
    simul_task *tt = test_spawn(ticker_main, &tk);
    double t0 = test_clock();
    test_join_ok(t);
    double took = test_clock() - t0;
    test_join_ok(tt);
    assert_int_equal(broker("signal", "CONT"), 0);
    print_message("frozen broker detected after %.2f s, %d ticks of 0.1 s\n", took, tk.ticks);
    /* -ETIMEDOUT: the heartbeat check gave up on the broker (the client has no timeout of its own
     * on calls; anything else ends them with another error, and without the check the call would
     * wait for ever). */
    assert_int_equal(p.rc, -ETIMEDOUT);
    /* Promptly: two heartbeat intervals (2 s) of silence, checked every 0.5 s, is ~20-25 ticks;
     * 100 ticks (10 s as the loop saw it) says it was the check, not some late accident, on any
     * load. The wall-clock bound only says it was not stuck. */
    assert_true(tk.ticks <= 100);
    assert_true(took < 300);
    assert_false(simul_amqp_connected(c));
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* ---- volume: 100,000 confirmed 1 KiB messages, none lost, none duplicated -------------------- */

typedef struct tally {
    simul_amqp_consumer *k;
    uint8_t *seen; /* per message id: times seen */
    size_t total, unique, dup_flagged, dup_unflagged, stale_acks;
    size_t want; /* stop once this many unique */
    int rc;
} tally;

static int tally_main(void *arg)
{
    tally *t = arg;
    while (t->unique < t->want) {
        simul_amqp_message *m;
        int rc = simul_amqp_consumer_next(t->k, &m);
        if (rc < 0) {
            t->rc = rc;
            return 0;
        }
        uint32_t id;
        if (m->len != 1024) {
            t->rc = -EBADMSG;
            simul_amqp_message_free(m);
            return 0;
        }
        memcpy(&id, m->body, sizeof id);
        t->total++;
        if (t->seen[id]++ == 0)
            t->unique++;
        else if (m->redelivered)
            t->dup_flagged++;
        else
            t->dup_unflagged++;
        if (simul_amqp_ack(m, 0) == -ESTALE)
            t->stale_acks++;
        simul_amqp_message_free(m);
    }
    return 0;
}

typedef struct publisher {
    simul_amqp_channel *ch;
    const char *q;
    uint32_t n;
    uint8_t *outcome; /* per id: 1 acked, 2 failed (lost / nacked) */
    uint32_t acked, failed;
    bool kill_at_half;
    int rc;
} publisher;

static int publisher_main(void *arg)
{
    publisher *p = arg;
    uint8_t body[1024];
    memset(body, 'x', sizeof body);
    simul_amqp_props props = {.delivery_mode = 2};
    enum { BATCH = 2000 };
    uint64_t seqs[BATCH];
    uint32_t ids[BATCH];
    uint32_t id = 0;
    while (id < p->n) {
        size_t nb = 0;
        while (nb < BATCH && id < p->n) {
            memcpy(body, &id, sizeof id);
            int rc = simul_amqp_publish(p->ch, "", p->q, body, sizeof body, &props, 0, &seqs[nb]);
            if (rc == 0) {
                ids[nb++] = id++;
            } else if (rc == -ECONNRESET || rc == -ECONNABORTED || rc == -ETIMEDOUT) {
                continue; /* not queued: publish the same id again once the connection is back */
            } else {
                p->rc = rc;
                return 0;
            }
        }
        for (size_t i = 0; i < nb; i++) {
            int rc = simul_amqp_wait_confirm(p->ch, seqs[i]);
            if (rc == 0) {
                p->outcome[ids[i]] = 1;
                p->acked++;
            } else {
                /* Lost in the drop (or nacked): reported, not resent by the library. */
                p->outcome[ids[i]] = 2;
                p->failed++;
            }
        }
        simul_amqp_wait_confirms(p->ch, NULL);
        if (p->kill_at_half && id >= p->n / 2) {
            p->kill_at_half = false;
            /* Publish a batch without waiting, then kill the broker while it is in flight. */
            for (size_t i = 0; i < 200 && id < p->n; i++) {
                memcpy(body, &id, sizeof id);
                if (simul_amqp_publish(p->ch, "", p->q, body, sizeof body, &props, 0, &seqs[i]) < 0)
                    break;
                ids[i] = id++;
                nb = i + 1;
            }
            if (broker("kill", NULL) != 0 || broker("start", ">/dev/null") != 0) {
                p->rc = -EIO;
                return 0;
            }
            for (size_t i = 0; i < nb; i++) {
                int rc = simul_amqp_wait_confirm(p->ch, seqs[i]);
                p->outcome[ids[i]] = rc == 0 ? 1 : 2;
                if (rc == 0)
                    p->acked++;
                else
                    p->failed++;
            }
            simul_amqp_wait_confirms(p->ch, NULL);
        }
    }
    return 0;
}

static void volume(uint32_t n, bool kill)
{
    simul_amqp_opts o = {.url = url(NULL), .reconnect_min = 0.1, .reconnect_max = 1};
    simul_amqp_conn *c = NULL;
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    simul_amqp_channel *pch, *cch;
    assert_int_equal(simul_amqp_channel_open(c, &pch), 0);
    assert_int_equal(simul_amqp_channel_open(c, &cch), 0);
    char q[128];
    snprintf(q, sizeof q, "%s", qname(kill ? "volume-kill" : "volume"));
    assert_int_equal(
        simul_amqp_queue_declare(pch, q, SIMUL_AMQP_DURABLE, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_queue_purge(pch, q, NULL), 0);
    assert_int_equal(simul_amqp_confirm_select(pch), 0);
    assert_int_equal(simul_amqp_qos(cch, 500), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(cch, q, NULL, 0, &k), 0);
    publisher p = {.ch = pch, .q = q, .n = n, .outcome = calloc(n, 1), .kill_at_half = kill};
    tally t = {.k = k, .seen = calloc(n, 1), .want = n};
    simul_task *pt = test_spawn(publisher_main, &p);
    simul_task *tt = test_spawn(tally_main, &t);
    test_join_ok(pt);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.acked + p.failed, n);
    /* Every confirmed message arrives; lost ones may or may not have reached the queue. */
    if (kill) {
        t.want = 0;
        for (uint32_t i = 0; i < n; i++)
            t.want += p.outcome[i] == 1;
        double until = test_clock() + 120;
        while (t.unique < t.want && t.rc == 0) {
            if (test_clock() > until) {
                simul_amqp_stats st;
                simul_amqp_get_stats(c, &st);
                fail_msg("consumer stalled: unique %zu of %zu; connects %llu failures %llu "
                         "recoveries %llu delivered %llu; consumer queue %s",
                         t.unique, t.want, (unsigned long long)st.connects,
                         (unsigned long long)st.failures, (unsigned long long)st.recoveries,
                         (unsigned long long)st.delivered,
                         simul_amqp_connected(c) ? "connected" : "down");
            }
            assert_int_equal(simul_sleep(0.05), 0);
        }
        /* Then whatever of the unconfirmed ones got through. */
        WAIT_UNTIL(ready_count(pch, q) == 0, 60);
        uint32_t left = 0;
        for (uint32_t i = 0; i < n; i++)
            left += p.outcome[i] == 1 && !t.seen[i];
        assert_int_equal(left, 0);
        t.want = t.unique; /* stop the tally */
        simul_task_cancel(tt);
        simul_task_join(tt, NULL);
    } else {
        test_join_ok(tt);
    }
    assert_int_equal(t.rc == -ECANCELED ? 0 : t.rc, 0);
    size_t confirmed_missing = 0, unconfirmed_seen = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (p.outcome[i] == 1 && !t.seen[i])
            confirmed_missing++;
        if (p.outcome[i] == 2 && t.seen[i])
            unconfirmed_seen++;
    }
    print_message("published %u: acked %u, lost %u; consumed %zu (unique %zu, redelivered dups "
                  "%zu, unflagged dups %zu, unconfirmed but arrived %zu, stale acks %zu)\n",
                  n, p.acked, p.failed, t.total, t.unique, t.dup_flagged, t.dup_unflagged,
                  unconfirmed_seen, t.stale_acks);
    assert_int_equal(confirmed_missing, 0);
    assert_int_equal(t.dup_unflagged, 0);
    if (!kill) {
        assert_int_equal(p.acked, n);
        assert_int_equal(t.unique, n);
        assert_int_equal(t.total, n);
    } else {
        simul_amqp_stats st;
        simul_amqp_get_stats(c, &st);
        assert_true(st.recoveries >= 1);
        assert_int_equal(st.lost, p.failed);
    }
    simul_amqp_consumer_free(k);
    assert_int_equal(simul_amqp_queue_delete(pch, q, 0, NULL), 0);
    free(p.outcome);
    free(t.seen);
    assert_int_equal(simul_amqp_close(c), 0);
}

SIMUL_TASK_TEST(hundred_thousand_confirmed_none_lost_none_duplicated)
{
    (void)arg;
    volume(100000, false);
    return 0;
}

SIMUL_TASK_TEST(broker_killed_mid_stream_recovers_and_reconciles)
{
    (void)arg;
    volume(20000, true);
    return 0;
}

/* ---- interop with pika --------------------------------------------------------------------- */

SIMUL_TASK_TEST(interop_with_pika_both_ways)
{
    (void)arg;
    simul_amqp_conn *c = connect_url(url(NULL));
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    char q1[128], q2[128];
    snprintf(q1, sizeof q1, "%s", qname("to-pika"));
    snprintf(q2, sizeof q2, "%s", qname("from-pika"));
    assert_int_equal(simul_amqp_queue_declare(ch, q1, 0, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_queue_declare(ch, q2, 0, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    /* Us -> pika: 500 messages of growing size with properties and headers; pika checks them. */
    char body[5000];
    for (int i = 0; i < 500; i++) {
        for (int j = 0; j < i * 10; j++)
            body[j] = (char)('a' + (i + j) % 26);
        char mid[32];
        snprintf(mid, sizeof mid, "id-%d", i);
        simul_amqp_arg h[] = {{.key = "n", .integer = i}, {.key = "s", .str = "simul"}};
        simul_amqp_props pr = {.content_type = "application/x-test",
                               .message_id = mid,
                               .delivery_mode = 2,
                               .headers = h,
                               .nheaders = 2};
        assert_int_equal(simul_amqp_publish(ch, "", q1, body, (size_t)i * 10, &pr, 0, NULL), 0);
    }
    assert_int_equal(simul_amqp_wait_confirms(ch, NULL), 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s consume %d %s 500", SIMUL_AMQP_PIKA_PEER, port(),
             q1);
    assert_int_equal(system(cmd), 0);
    /* Pika -> us. */
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s publish %d %s 500", SIMUL_AMQP_PIKA_PEER, port(),
             q2);
    assert_int_equal(system(cmd), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, q2, NULL, 0, &k), 0);
    for (int i = 0; i < 500; i++) {
        simul_amqp_message *m;
        assert_int_equal(simul_amqp_consumer_next(k, &m), 0);
        assert_int_equal(m->len, (size_t)i * 10);
        for (int j = 0; j < i * 10; j++)
            if (((const char *)m->body)[j] != (char)('A' + (i + j) % 26))
                fail_msg("pika message %d byte %d", i, j);
        char mid[32];
        snprintf(mid, sizeof mid, "pika-%d", i);
        assert_string_equal(m->props.message_id, mid);
        assert_string_equal(m->props.content_type, "text/x-pika");
        assert_int_equal(m->props.nheaders, 1);
        assert_string_equal(m->props.headers[0].key, "n");
        assert_int_equal(m->props.headers[0].integer, i);
        assert_int_equal(simul_amqp_ack(m, 0), 0);
        simul_amqp_message_free(m);
    }
    simul_amqp_consumer_free(k);
    assert_int_equal(simul_amqp_queue_delete(ch, q1, 0, NULL), 0);
    assert_int_equal(simul_amqp_queue_delete(ch, q2, 0, NULL), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_negotiates_and_closes),
        cmocka_unit_test(bad_credentials_and_vhost_refused),
        cmocka_unit_test(declare_bind_publish_get_purge_delete),
        cmocka_unit_test(channel_error_reported_connection_survives),
        cmocka_unit_test(confirms_in_flight_single_and_batch),
        cmocka_unit_test(mandatory_unroutable_is_returned),
        cmocka_unit_test(consume_prefetch_bounds_and_ack_multiple),
        cmocka_unit_test(queue_deleted_under_consumer_is_reported),
        cmocka_unit_test(cancel_while_a_task_waits_and_basic_get),
        cmocka_unit_test(large_messages_split_at_small_frame_max),
        cmocka_unit_test(message_over_max_message_fails_connection),
        cmocka_unit_test(server_close_reported_then_recovered),
        cmocka_unit_test(memory_alarm_blocks_and_releases_publishers),
        cmocka_unit_test(heartbeats_flow_while_a_consumer_does_not_read),
        cmocka_unit_test(frozen_broker_detected_by_heartbeats),
        cmocka_unit_test(hundred_thousand_confirmed_none_lost_none_duplicated),
        cmocka_unit_test(broker_killed_mid_stream_recovers_and_reconciles),
        cmocka_unit_test(interop_with_pika_both_ways),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_amqp_broker");
}
