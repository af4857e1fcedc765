/* test_amqp_more.c — against the suite's real RabbitMQ: typed field tables through the broker
 * (every type in message headers, a nested table intact, a headers exchange matching a bool and
 * an int, typed queue arguments, the broker's own x-death array of tables, client properties);
 * exchange-to-exchange bindings bound again by recovery; transactions; basic.recover; and the
 * memory bound of a NO_ACK consumer while a publisher pushes many messages. */
#include "amqp_broker_helpers.h"

/* ---- tables -------------------------------------------------------------------------------- */

static simul_amqp_table *every_type(void)
{
    simul_amqp_table *t, *sub, *arr, *deep;
    assert_int_equal(simul_amqp_table_new(&t), 0);
    assert_int_equal(simul_amqp_table_set_bool(t, "bool", true), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "i8", SIMUL_AMQP_T_I8, -100), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "u8", SIMUL_AMQP_T_U8, 200), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "i16", SIMUL_AMQP_T_I16, -30000), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "u16", SIMUL_AMQP_T_U16, 60000), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "i32", SIMUL_AMQP_T_I32, -2000000000), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "u32", SIMUL_AMQP_T_U32, 4000000000), 0);
    assert_int_equal(simul_amqp_table_set_int(t, "i64", SIMUL_AMQP_T_I64, -9000000000000000000),
                     0);
    assert_int_equal(simul_amqp_table_set_float(t, "float", 0.5f), 0);
    assert_int_equal(simul_amqp_table_set_double(t, "double", 3.25), 0);
    assert_int_equal(simul_amqp_table_set_decimal(t, "decimal", 3, 1234567), 0);
    assert_int_equal(simul_amqp_table_set_timestamp(t, "ts", 1800000000u), 0);
    assert_int_equal(simul_amqp_table_set_string(t, "str", "chess"), 0);
    assert_int_equal(simul_amqp_table_set_bytes(t, "bytes", "\x00\x01\xff", 3), 0);
    assert_int_equal(simul_amqp_table_set_void(t, "void"), 0);
    assert_int_equal(simul_amqp_table_new(&deep), 0);
    assert_int_equal(simul_amqp_table_set_string(deep, "leaf", "deepest"), 0);
    assert_int_equal(simul_amqp_table_new(&sub), 0);
    assert_int_equal(simul_amqp_table_set_int(sub, "board", SIMUL_AMQP_T_I32, 12), 0);
    assert_int_equal(simul_amqp_table_set_table(sub, "deep", deep), 0);
    assert_int_equal(simul_amqp_array_new(&arr), 0);
    assert_int_equal(simul_amqp_table_set_string(arr, NULL, "e4"), 0);
    assert_int_equal(simul_amqp_table_set_int(arr, NULL, SIMUL_AMQP_T_I16, 5), 0);
    assert_int_equal(simul_amqp_table_set_table(arr, NULL, deep), 0);
    assert_int_equal(simul_amqp_table_set_table(sub, "moves", arr), 0);
    assert_int_equal(simul_amqp_table_set_table(t, "nested", sub), 0);
    simul_amqp_table_free(deep);
    simul_amqp_table_free(sub);
    simul_amqp_table_free(arr);
    return t;
}

/* Both encode to the same bytes: same keys, order, types and values. */
static void assert_tables_equal(const simul_amqp_table *a, const simul_amqp_table *b)
{
    static uint8_t ea[65536], eb[65536];
    ssize_t na = simul_amqp_table_encode(a, ea, sizeof ea);
    ssize_t nb = simul_amqp_table_encode(b, eb, sizeof eb);
    assert_true(na > 0);
    assert_int_equal(na, nb);
    assert_memory_equal(ea, eb, (size_t)na);
}

SIMUL_TASK_TEST(every_type_in_headers_round_trips_through_the_broker)
{
    (void)arg;
    simul_amqp_conn *c = connect_plain();
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    char q[128];
    snprintf(q, sizeof q, "%s", qname("types"));
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    simul_amqp_table *t = every_type();
    /* The legacy list goes after the table. */
    simul_amqp_arg extra[] = {{.key = "legacy", .str = "yes"}};
    simul_amqp_props p = {.header_table = t, .headers = extra, .nheaders = 1};
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    uint64_t seq;
    assert_int_equal(simul_amqp_publish(ch, "", q, "typed", 5, &p, 0, &seq), 0);
    assert_int_equal(simul_amqp_wait_confirm(ch, seq), 0);
    simul_amqp_message *m;
    assert_int_equal(simul_amqp_get(ch, q, SIMUL_AMQP_NO_ACK, &m), 0);
    const simul_amqp_table *h = m->props.header_table;
    assert_non_null(h);
    assert_int_equal(simul_amqp_table_count(h), simul_amqp_table_count(t) + 1);
    const char *s;
    assert_int_equal(simul_amqp_table_get_string(h, "legacy", &s, NULL), 0);
    assert_string_equal(s, "yes");
    /* Every value of t came back with its type and value, nested ones included. */
    simul_amqp_table *without = NULL;
    assert_int_equal(simul_amqp_table_new(&without), 0);
    for (size_t i = 0; i < simul_amqp_table_count(h); i++) {
        const char *k;
        const simul_amqp_value *v = simul_amqp_table_at(h, i, &k);
        if (strcmp(k, "legacy") != 0)
            assert_int_equal(simul_amqp_table_set(without, k, v), 0);
    }
    assert_tables_equal(t, without);
    const simul_amqp_table *nested, *deep;
    assert_int_equal(simul_amqp_table_get_table(h, "nested", &nested), 0);
    assert_int_equal(simul_amqp_table_get_table(nested, "deep", &deep), 0);
    assert_int_equal(simul_amqp_table_get_string(deep, "leaf", &s, NULL), 0);
    assert_string_equal(s, "deepest");
    /* The legacy view still has the string and integer headers. */
    bool saw = false;
    for (size_t i = 0; i < m->props.nheaders; i++)
        if (!strcmp(m->props.headers[i].key, "i32"))
            saw = m->props.headers[i].integer == -2000000000;
    assert_true(saw);
    simul_amqp_message_free(m);
    simul_amqp_table_free(without);
    simul_amqp_table_free(t);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(headers_exchange_matches_a_bool_and_an_int)
{
    (void)arg;
    simul_amqp_conn *c = connect_plain();
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    char ex[128], q[128];
    snprintf(ex, sizeof ex, "%s", qname("hdr-ex"));
    snprintf(q, sizeof q, "%s", qname("hdr-q"));
    assert_int_equal(simul_amqp_exchange_declare(ch, ex, "headers", SIMUL_AMQP_AUTO_DELETE, NULL, 0),
                     0);
    assert_int_equal(simul_amqp_queue_declare(ch, q, SIMUL_AMQP_EXCLUSIVE, NULL, 0, NULL, 0, NULL,
                                              NULL),
                     0);
    simul_amqp_value yes = {.type = SIMUL_AMQP_T_BOOL, .u.boolean = true};
    simul_amqp_value n42 = {.type = SIMUL_AMQP_T_I32, .u.i = 42};
    simul_amqp_arg bind[] = {
        {.key = "x-match", .str = "all"}, {.key = "vip", .value = &yes}, {.key = "n", .value = &n42}};
    assert_int_equal(simul_amqp_queue_bind(ch, q, ex, "", bind, 3), 0);
    /* Three messages: only the one with vip=true and n=42 matches; the others come back. */
    struct {
        bool vip;
        int n;
        bool routed;
    } cases[] = {{true, 42, true}, {false, 42, false}, {true, 43, false}};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        simul_amqp_table *h;
        assert_int_equal(simul_amqp_table_new(&h), 0);
        assert_int_equal(simul_amqp_table_set_bool(h, "vip", cases[i].vip), 0);
        assert_int_equal(simul_amqp_table_set_int(h, "n", SIMUL_AMQP_T_I32, cases[i].n), 0);
        simul_amqp_props p = {.header_table = h};
        char body[16];
        int len = snprintf(body, sizeof body, "m%zu", i);
        assert_int_equal(simul_amqp_publish(ch, ex, "", body, (size_t)len, &p,
                                            SIMUL_AMQP_MANDATORY, NULL),
                         0);
        simul_amqp_table_free(h);
    }
    simul_amqp_message *m;
    for (int r = 0; r < 2; r++) {
        assert_int_equal(simul_amqp_next_return(ch, &m), 0);
        assert_int_equal(m->reply_code, 312);
        assert_true(m->len == 2 && (((const char *)m->body)[1] == '1' ||
                                    ((const char *)m->body)[1] == '2'));
        simul_amqp_message_free(m);
    }
    assert_int_equal(simul_amqp_get(ch, q, SIMUL_AMQP_NO_ACK, &m), 0);
    assert_memory_equal(m->body, "m0", 2);
    bool vip = false;
    assert_int_equal(simul_amqp_table_get_bool(m->props.header_table, "vip", &vip), 0);
    assert_true(vip);
    simul_amqp_message_free(m);
    assert_int_equal(simul_amqp_get(ch, q, SIMUL_AMQP_NO_ACK, &m), -ENOMSG);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(typed_queue_arguments_and_the_brokers_x_death)
{
    (void)arg;
    simul_amqp_table *props;
    assert_int_equal(simul_amqp_table_new(&props), 0);
    assert_int_equal(simul_amqp_table_set_string(props, "simul-test-prop", "chess-club"), 0);
    simul_amqp_opts o = {.url = url(NULL), .client_properties = props};
    simul_amqp_conn *c = NULL;
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    simul_amqp_table_free(props); /* copied */
    /* Our client property reached the broker. */
    assert_int_equal(
        broker("ctl", "list_connections client_properties | grep -q 'simul-test-prop.*chess-club'"),
        0);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    /* x-max-priority as a signed byte: the broker orders by priority. */
    char pq[128], q[128], dlq[128];
    snprintf(pq, sizeof pq, "%s", qname("prio"));
    simul_amqp_value ten = {.type = SIMUL_AMQP_T_I8, .u.i = 10};
    simul_amqp_arg pargs[] = {{.key = "x-max-priority", .value = &ten}};
    assert_int_equal(
        simul_amqp_queue_declare(ch, pq, SIMUL_AMQP_AUTO_DELETE, pargs, 1, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    const uint8_t prios[] = {3, 9, 1, 5};
    for (size_t i = 0; i < sizeof prios; i++) {
        simul_amqp_props p = {.priority = prios[i]};
        assert_int_equal(simul_amqp_publish(ch, "", pq, &prios[i], 1, &p, 0, NULL), 0);
    }
    assert_int_equal(simul_amqp_wait_confirms(ch, NULL), 0);
    const uint8_t want[] = {9, 5, 3, 1};
    for (size_t i = 0; i < sizeof want; i++) {
        simul_amqp_message *m;
        assert_int_equal(simul_amqp_get(ch, pq, SIMUL_AMQP_NO_ACK, &m), 0);
        assert_int_equal(((const uint8_t *)m->body)[0], want[i]);
        simul_amqp_message_free(m);
    }
    /* The same argument as a string is refused by the broker: types matter (406). */
    simul_amqp_channel *ch2;
    assert_int_equal(simul_amqp_channel_open(c, &ch2), 0);
    char bad[128];
    snprintf(bad, sizeof bad, "%s", qname("badprio"));
    simul_amqp_arg sargs[] = {{.key = "x-max-priority", .str = "10"}};
    assert_int_equal(
        simul_amqp_queue_declare(ch2, bad, SIMUL_AMQP_AUTO_DELETE, sargs, 1, NULL, 0, NULL, NULL),
        -EREMOTEIO);
    int code = 0;
    simul_amqp_channel_error(ch2, &code);
    assert_int_equal(code, 406);
    assert_int_equal(simul_amqp_channel_close(ch2), 0);
    /* x-message-ttl 0 (a signed 32-bit value) with a dead-letter exchange and routing key: a
     * message nobody consumes at once expires into the dead-letter queue, with the broker's
     * x-death header: an array of tables holding strings, a count, a timestamp, an array. */
    snprintf(dlq, sizeof dlq, "%s", qname("dlq"));
    snprintf(q, sizeof q, "%s", qname("ttl"));
    assert_int_equal(
        simul_amqp_queue_declare(ch, dlq, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    simul_amqp_value ttl = {.type = SIMUL_AMQP_T_I32, .u.i = 0};
    simul_amqp_value dlx = {.type = SIMUL_AMQP_T_STRING, .u.bytes = {"", 0}};
    simul_amqp_arg targs[] = {{.key = "x-message-ttl", .value = &ttl},
                              {.key = "x-dead-letter-exchange", .value = &dlx},
                              {.key = "x-dead-letter-routing-key", .str = dlq}};
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, targs, 3, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_publish(ch, "", q, "expire", 6, NULL, 0, NULL), 0);
    assert_int_equal(simul_amqp_wait_confirms(ch, NULL), 0);
    simul_amqp_message *m = NULL;
    double until = test_clock() + 20;
    int rc;
    while ((rc = simul_amqp_get(ch, dlq, SIMUL_AMQP_NO_ACK, &m)) == -ENOMSG) {
        assert_true(test_clock() < until);
        assert_int_equal(simul_sleep(0.01), 0);
    }
    assert_int_equal(rc, 0);
    assert_memory_equal(m->body, "expire", 6);
    const simul_amqp_table *deaths, *d0, *keys;
    assert_int_equal(simul_amqp_table_get_table(m->props.header_table, "x-death", &deaths), 0);
    assert_true(simul_amqp_table_is_array(deaths));
    assert_int_equal(simul_amqp_table_count(deaths), 1);
    const simul_amqp_value *first = simul_amqp_table_at(deaths, 0, NULL);
    assert_int_equal(first->type, SIMUL_AMQP_T_TABLE);
    d0 = first->u.table;
    const char *s;
    assert_int_equal(simul_amqp_table_get_string(d0, "reason", &s, NULL), 0);
    assert_string_equal(s, "expired");
    assert_int_equal(simul_amqp_table_get_string(d0, "queue", &s, NULL), 0);
    assert_string_equal(s, q);
    int64_t count = 0;
    assert_int_equal(simul_amqp_table_get_int(d0, "count", &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(simul_amqp_table_get(d0, "time")->type, SIMUL_AMQP_T_TIMESTAMP);
    assert_int_equal(simul_amqp_table_get_table(d0, "routing-keys", &keys), 0);
    assert_true(simul_amqp_table_is_array(keys));
    simul_amqp_message_free(m);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* ---- exchange bindings, transactions, recover ---------------------------------------------- */

SIMUL_TASK_TEST(exchange_bindings_bound_again_by_recovery)
{
    (void)arg;
    simul_amqp_opts o = {.url = url(NULL), .reconnect_min = 0.05, .reconnect_max = 0.2};
    simul_amqp_conn *c = NULL;
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    char src[128], dst[128], q[128];
    snprintf(src, sizeof src, "%s", qname("e2e-src"));
    snprintf(dst, sizeof dst, "%s", qname("e2e-dst"));
    snprintf(q, sizeof q, "%s", qname("e2e-q"));
    assert_int_equal(simul_amqp_exchange_declare(ch, src, "direct", 0, NULL, 0), 0);
    assert_int_equal(simul_amqp_exchange_declare(ch, dst, "fanout", 0, NULL, 0), 0);
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_queue_bind(ch, q, dst, "", NULL, 0), 0);
    assert_int_equal(simul_amqp_exchange_bind(ch, dst, src, "moves", NULL, 0), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    assert_int_equal(simul_amqp_publish(ch, src, "moves", "one", 3, NULL, 0, NULL), 0);
    assert_int_equal(simul_amqp_publish(ch, src, "other", "no", 2, NULL, SIMUL_AMQP_MANDATORY, NULL),
                     0);
    assert_int_equal(simul_amqp_wait_confirms(ch, NULL), 0);
    simul_amqp_message *m;
    assert_int_equal(simul_amqp_next_return(ch, &m), 0); /* "other" matched no binding */
    simul_amqp_message_free(m);
    assert_int_equal(ready_count(ch, q), 1);
    /* Behind our back the source exchange (and its binding) is deleted, then every connection
     * is dropped: recovery declares the exchange and binds it again. */
    simul_amqp_conn *other = connect_plain();
    simul_amqp_channel *och;
    assert_int_equal(simul_amqp_channel_open(other, &och), 0);
    assert_int_equal(simul_amqp_exchange_delete(och, src, 0), 0);
    assert_int_equal(simul_amqp_close(other), 0);
    assert_int_equal(broker("ctl", "close_all_connections 'e2e bye'"), 0);
    WAIT_UNTIL(simul_amqp_conn_error(c, NULL) != NULL, 20);
    WAIT_UNTIL(simul_amqp_connected(c), 20);
    assert_int_equal(simul_amqp_publish(ch, src, "moves", "two", 3, NULL, 0, NULL), 0);
    assert_int_equal(simul_amqp_wait_confirms(ch, NULL), 0);
    assert_int_equal(ready_count(ch, q), 2);
    /* Unbound: routed nowhere, returned. */
    assert_int_equal(simul_amqp_exchange_unbind(ch, dst, src, "moves", NULL, 0), 0);
    assert_int_equal(simul_amqp_publish(ch, src, "moves", "three", 5, NULL, SIMUL_AMQP_MANDATORY,
                                        NULL),
                     0);
    assert_int_equal(simul_amqp_next_return(ch, &m), 0);
    assert_memory_equal(m->body, "three", 5);
    simul_amqp_message_free(m);
    assert_int_equal(simul_amqp_exchange_delete(ch, src, 0), 0);
    assert_int_equal(simul_amqp_exchange_delete(ch, dst, 0), 0);
    assert_int_equal(simul_amqp_queue_delete(ch, q, 0, NULL), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(transactions_commit_rollback_and_a_loss)
{
    (void)arg;
    simul_amqp_opts o = {.url = url(NULL), .reconnect_min = 0.05, .reconnect_max = 0.2};
    simul_amqp_conn *c = NULL;
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    simul_amqp_channel *tx, *look;
    assert_int_equal(simul_amqp_channel_open(c, &tx), 0);
    assert_int_equal(simul_amqp_channel_open(c, &look), 0);
    char q[128];
    snprintf(q, sizeof q, "%s", qname("tx"));
    assert_int_equal(simul_amqp_queue_declare(look, q, 0, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_tx_commit(tx), -EINVAL); /* not in tx mode */
    assert_int_equal(simul_amqp_tx_select(tx), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(simul_amqp_publish(tx, "", q, "t", 1, NULL, 0, NULL), 0);
    assert_int_equal(ready_count(look, q), 0); /* nothing before the commit */
    assert_int_equal(simul_amqp_tx_commit(tx), 0);
    assert_int_equal(ready_count(look, q), 3);
    for (int i = 0; i < 2; i++)
        assert_int_equal(simul_amqp_publish(tx, "", q, "r", 1, NULL, 0, NULL), 0);
    assert_int_equal(simul_amqp_tx_rollback(tx), 0);
    assert_int_equal(ready_count(look, q), 3);
    /* An ack in a transaction takes effect at the commit. */
    simul_amqp_message *m;
    assert_int_equal(simul_amqp_get(tx, q, 0, &m), 0);
    assert_int_equal(simul_amqp_ack(m, 0), 0);
    simul_amqp_message_free(m);
    assert_int_equal(simul_amqp_tx_commit(tx), 0);
    assert_int_equal(ready_count(look, q), 2);
    /* Work in the transaction when the connection drops: the commit says so (the broker rolled
     * it back) and the transaction goes on after it. */
    assert_int_equal(simul_amqp_publish(tx, "", q, "lost", 4, NULL, 0, NULL), 0);
    assert_int_equal(broker("ctl", "close_all_connections 'tx bye'"), 0);
    WAIT_UNTIL(simul_amqp_conn_error(c, NULL) != NULL, 20);
    WAIT_UNTIL(simul_amqp_connected(c), 20);
    assert_int_equal(simul_amqp_publish(tx, "", q, "half", 4, NULL, 0, NULL), 0);
    int rc = simul_amqp_tx_commit(tx);
    assert_true(rc == -ECONNABORTED || rc == -ECONNRESET);
    assert_int_equal(ready_count(look, q), 2); /* neither "lost" nor "half" */
    assert_int_equal(simul_amqp_publish(tx, "", q, "again", 5, NULL, 0, NULL), 0);
    assert_int_equal(simul_amqp_tx_commit(tx), 0);
    assert_int_equal(ready_count(look, q), 3);
    /* RabbitMQ refuses a transaction on a channel in confirm mode. */
    simul_amqp_channel *cf;
    assert_int_equal(simul_amqp_channel_open(c, &cf), 0);
    assert_int_equal(simul_amqp_confirm_select(cf), 0);
    assert_int_equal(simul_amqp_tx_select(cf), -EREMOTEIO);
    int code = 0;
    simul_amqp_channel_error(cf, &code);
    assert_int_equal(code, 406);
    assert_int_equal(simul_amqp_queue_delete(look, q, 0, NULL), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(basic_recover_redelivers_and_stales_old_tags)
{
    (void)arg;
    simul_amqp_conn *c = connect_plain();
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    char q[128];
    snprintf(q, sizeof q, "%s", qname("recover"));
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_EXCLUSIVE, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    static const char abc[] = "abc";
    for (int i = 0; i < 3; i++)
        assert_int_equal(simul_amqp_publish(ch, "", q, &abc[i], 1, NULL, 0, NULL), 0);
    assert_int_equal(simul_amqp_wait_confirms(ch, NULL), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, q, NULL, 0, &k), 0);
    simul_amqp_message *old[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_amqp_consumer_next(k, &old[i]), 0);
        assert_false(old[i]->redelivered);
    }
    assert_int_equal(simul_amqp_recover(ch), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_amqp_ack(old[i], 0), -ESTALE); /* their tags are void now */
        simul_amqp_message_free(old[i]);
    }
    for (int i = 0; i < 3; i++) {
        simul_amqp_message *m;
        assert_int_equal(simul_amqp_consumer_next(k, &m), 0);
        assert_true(m->redelivered);
        assert_int_equal(((const char *)m->body)[0], 'a' + i);
        assert_int_equal(simul_amqp_ack(m, 0), 0);
        simul_amqp_message_free(m);
    }
    /* The channel is healthy (the acks were good) and the queue is empty. */
    assert_int_equal(simul_amqp_consumer_cancel(k), 0);
    simul_amqp_consumer_free(k);
    assert_int_equal(ready_count(ch, q), 0);
    assert_null(simul_amqp_channel_error(ch, NULL));
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

/* ---- NO_ACK memory bound ------------------------------------------------------------------- */

typedef struct pusher {
    const char *q;
    int n;
    int rc;
    bool done;
} pusher;

static int pusher_main(void *arg)
{
    pusher *p = arg;
    simul_amqp_conn *c = connect_plain();
    simul_amqp_channel *ch;
    p->rc = simul_amqp_channel_open(c, &ch);
    if (p->rc == 0)
        p->rc = simul_amqp_confirm_select(ch);
    static char body[1024];
    memset(body, 'n', sizeof body);
    for (int i = 0; i < p->n && p->rc == 0; i++)
        p->rc = simul_amqp_publish(ch, "", p->q, body, sizeof body, NULL, 0, NULL);
    if (p->rc == 0)
        p->rc = simul_amqp_wait_confirms(ch, NULL);
    simul_amqp_close(c);
    p->done = true;
    return 0;
}

SIMUL_TASK_TEST(no_ack_consumer_memory_bounded_while_publisher_pushes)
{
    (void)arg;
    const size_t cap = 64;
    simul_amqp_opts o = {.url = url(NULL), .no_ack_buffer = cap};
    simul_amqp_conn *c = NULL;
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    char q[128];
    snprintf(q, sizeof q, "%s", qname("noack"));
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    simul_amqp_consumer *k;
    assert_int_equal(simul_amqp_consume(ch, q, NULL, SIMUL_AMQP_NO_ACK, &k), 0);
    /* A publisher on its own connection pushes 30,000 1 KiB messages while the consumer takes
     * none: the reader stops at the cap and the broker keeps the rest. */
    pusher p = {.q = q, .n = 30000};
    simul_task *pt;
    assert_int_equal(simul_task_spawn(&pt, pusher_main, &p, NULL), 0);
    WAIT_UNTIL(p.done, 120);
    assert_int_equal(p.rc, 0);
    simul_amqp_stats st;
    simul_amqp_get_stats(c, &st);
    assert_true(st.read_pauses >= 1);
    assert_int_equal(simul_amqp_consumer_buffered(k), cap);
    simul_amqp_conn *look = connect_plain();
    simul_amqp_channel *lch;
    assert_int_equal(simul_amqp_channel_open(look, &lch), 0);
    uint32_t held = ready_count(lch, q);
    fprintf(stderr, "paused: buffered %zu, delivered %llu, held by the broker %u\n",
            simul_amqp_consumer_buffered(k), (unsigned long long)st.delivered, held);
    assert_true(held > 30000 / 2); /* TCP pushed back: most never left the broker */
    assert_int_equal(simul_amqp_close(look), 0);
    /* Now the slow consumer takes them all, one at a time: the buffer never passes the cap and
     * nothing is lost. */
    size_t most = 0;
    for (int i = 0; i < 30000; i++) {
        simul_amqp_message *m;
        assert_int_equal(simul_amqp_consumer_next(k, &m), 0);
        assert_int_equal(m->len, 1024);
        simul_amqp_message_free(m);
        size_t b = simul_amqp_consumer_buffered(k);
        if (b > most)
            most = b;
    }
    assert_true(most <= cap);
    simul_amqp_get_stats(c, &st);
    assert_int_equal(st.delivered, 30000);
    fprintf(stderr, "drained: most buffered %zu, reader pauses %llu\n", most,
            (unsigned long long)st.read_pauses);
    assert_int_equal(simul_task_join(pt, NULL), 0);
    simul_amqp_consumer_free(k);
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(paused_no_ack_consumer_cancel_and_close_do_not_hang)
{
    (void)arg;
    simul_amqp_opts o = {.url = url(NULL), .no_ack_buffer = 16};
    simul_amqp_conn *c = NULL;
    assert_int_equal(simul_amqp_connect(&o, &c), 0);
    simul_amqp_channel *ch, *ch2;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    assert_int_equal(simul_amqp_channel_open(c, &ch2), 0);
    char q[128], q2[128];
    snprintf(q, sizeof q, "%s", qname("pause1"));
    snprintf(q2, sizeof q2, "%s", qname("pause2"));
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(
        simul_amqp_queue_declare(ch2, q2, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    pusher p = {.q = q, .n = 3000};
    simul_task *pt;
    assert_int_equal(simul_task_spawn(&pt, pusher_main, &p, NULL), 0);
    WAIT_UNTIL(p.done, 120);
    assert_int_equal(p.rc, 0);
    assert_int_equal(simul_task_join(pt, NULL), 0);
    pusher p2 = {.q = q2, .n = 3000};
    assert_int_equal(simul_task_spawn(&pt, pusher_main, &p2, NULL), 0);
    WAIT_UNTIL(p2.done, 120);
    assert_int_equal(p2.rc, 0);
    assert_int_equal(simul_task_join(pt, NULL), 0);
    simul_amqp_consumer *k, *k2;
    assert_int_equal(simul_amqp_consume(ch, q, NULL, SIMUL_AMQP_NO_ACK, &k), 0);
    WAIT_UNTIL(simul_amqp_consumer_buffered(k) == 16, 20);
    /* Paused with basic.cancel-ok still to come: the cancel does not wait on the pause. */
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 20), 0);
    assert_int_equal(simul_amqp_consumer_cancel(k), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    size_t got = 0;
    simul_amqp_message *m;
    while (simul_amqp_consumer_next(k, &m) == 0) {
        got++;
        simul_amqp_message_free(m);
    }
    assert_true(got >= 16);
    simul_amqp_consumer_free(k);
    /* Paused again on another channel: closing the channel, then the connection, returns. */
    assert_int_equal(simul_amqp_consume(ch2, q2, NULL, SIMUL_AMQP_NO_ACK, &k2), 0);
    WAIT_UNTIL(simul_amqp_consumer_buffered(k2) == 16, 20);
    assert_int_equal(simul_scope_timeout(&sc, 20), 0);
    assert_int_equal(simul_amqp_channel_close(ch2), 0);
    assert_int_equal(simul_amqp_close(c), 0);
    assert_int_equal(simul_scope_end(&sc), 0);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_type_in_headers_round_trips_through_the_broker),
        cmocka_unit_test(headers_exchange_matches_a_bool_and_an_int),
        cmocka_unit_test(typed_queue_arguments_and_the_brokers_x_death),
        cmocka_unit_test(exchange_bindings_bound_again_by_recovery),
        cmocka_unit_test(transactions_commit_rollback_and_a_loss),
        cmocka_unit_test(basic_recover_redelivers_and_stales_old_tags),
        cmocka_unit_test(no_ack_consumer_memory_bounded_while_publisher_pushes),
        cmocka_unit_test(paused_no_ack_consumer_cancel_and_close_do_not_hang),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_amqp_more");
}
