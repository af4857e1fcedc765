/* test_amqp_tls.c — amqps against the suite's real RabbitMQ (its TLS listener, certificates made
 * by broker.sh with openssl): verification on by default (system store, host name), a CA file,
 * the name to verify / send as SNI, the reason in words on failure, recovery over TLS, and SASL
 * EXTERNAL with a client certificate whose CN is the user (rabbitmq_auth_mechanism_ssl). */
#include "amqp_broker_helpers.h"

static char url_buf[256];
static const char *tls_url(const char *user_pass, const char *host)
{
    snprintf(url_buf, sizeof url_buf, "amqps://%s%s%s:%d/", user_pass ? user_pass : "",
             user_pass ? "@" : "", host, tls_port());
    return url_buf;
}

/* A publish and a get over c: the connection carries traffic. */
static void round_trip(simul_amqp_conn *c, const char *what)
{
    simul_amqp_channel *ch;
    assert_int_equal(simul_amqp_channel_open(c, &ch), 0);
    char q[128];
    snprintf(q, sizeof q, "%s", qname(what));
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_AUTO_DELETE, NULL, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(simul_amqp_confirm_select(ch), 0);
    uint64_t seq;
    assert_int_equal(simul_amqp_publish(ch, "", q, what, strlen(what), NULL, 0, &seq), 0);
    assert_int_equal(simul_amqp_wait_confirm(ch, seq), 0);
    simul_amqp_message *m;
    assert_int_equal(simul_amqp_get(ch, q, SIMUL_AMQP_NO_ACK, &m), 0);
    assert_int_equal(m->len, strlen(what));
    assert_memory_equal(m->body, what, m->len);
    simul_amqp_message_free(m);
    assert_int_equal(simul_amqp_queue_delete(ch, q, 0, NULL), 0);
    assert_int_equal(simul_amqp_channel_close(ch), 0);
}

SIMUL_TASK_TEST(amqps_verified_with_ca_file_and_recovered_over_tls)
{
    (void)arg;
    char ca[512];
    simul_amqp_opts o = {.url = tls_url("guest:guest", "localhost"),
                         .tls_ca_file = pki("ca.crt", ca, sizeof ca),
                         .connection_name = "simul-tls",
                         .reconnect_min = 0.05,
                         .reconnect_max = 0.2};
    simul_amqp_conn *c = NULL;
    char why[256] = "";
    o.why = why;
    o.whylen = sizeof why;
    int rc = simul_amqp_connect(&o, &c);
    if (rc != 0)
        fail_msg("amqps connect: %s (%s)", strerror(-rc), why);
    assert_true(simul_amqp_is_tls(c));
    round_trip(c, "tls-before");
    /* The broker drops every connection: recovery reconnects, over TLS again (the only port it
     * knows is the TLS one). */
    assert_int_equal(broker("ctl", "close_all_connections 'tls bye'"), 0);
    WAIT_UNTIL(simul_amqp_conn_error(c, NULL) != NULL, 20);
    WAIT_UNTIL(simul_amqp_connected(c), 20);
    simul_amqp_stats st;
    simul_amqp_get_stats(c, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.recoveries, 1);
    assert_true(simul_amqp_is_tls(c));
    round_trip(c, "tls-after");
    assert_int_equal(simul_amqp_close(c), 0);
    return 0;
}

SIMUL_TASK_TEST(amqps_bad_ca_system_store_and_host_name_refused_with_reason)
{
    (void)arg;
    char ca[512], other[512], why[256];
    simul_amqp_conn *c = NULL;
    /* A CA that did not sign the broker's certificate. */
    simul_amqp_opts o = {.url = tls_url("guest:guest", "localhost"),
                         .tls_ca_file = pki("otherca.crt", other, sizeof other),
                         .why = why,
                         .whylen = sizeof why};
    assert_int_equal(simul_amqp_connect(&o, &c), -EKEYREJECTED);
    assert_null(c);
    assert_non_null(strstr(why, "certificate verify failed"));
    /* Verification is on by default: the system store does not know the test CA. */
    simul_amqp_opts d = {.url = tls_url("guest:guest", "localhost"), .why = why, .whylen = sizeof why};
    assert_int_equal(simul_amqp_connect(&d, &c), -EKEYREJECTED);
    assert_non_null(strstr(why, "certificate verify failed"));
    /* The host name is checked: the certificate names localhost only, not 127.0.0.1 ... */
    simul_amqp_opts h = {.url = tls_url("guest:guest", "127.0.0.1"),
                         .tls_ca_file = pki("ca.crt", ca, sizeof ca),
                         .why = why,
                         .whylen = sizeof why};
    assert_int_equal(simul_amqp_connect(&h, &c), -EKEYREJECTED);
    assert_non_null(strstr(why, "mismatch"));
    /* ... unless told which name to verify (and send as SNI). */
    h.tls_server_name = "localhost";
    int rc = simul_amqp_connect(&h, &c);
    if (rc != 0)
        fail_msg("connect with tls_server_name: %s (%s)", strerror(-rc), why);
    round_trip(c, "tls-sni");
    assert_int_equal(simul_amqp_close(c), 0);
    /* Plain AMQP spoken to the TLS port, and TLS to the plain port: refused, not hung. */
    char u[256];
    snprintf(u, sizeof u, "amqps://guest:guest@localhost:%d/", port());
    simul_amqp_opts p = {.url = u, .tls_ca_file = ca, .why = why, .whylen = sizeof why,
                         .connect_timeout = 5};
    rc = simul_amqp_connect(&p, &c);
    assert_true(rc == -EPROTO || rc == -ECONNRESET);
    assert_true(why[0] != 0);
    return 0;
}

/* The EXTERNAL user (the client certificate's CN) exists with rights on "/". */
static void external_user(void)
{
    broker("ctl", "add_user simul-ext unused-password >/dev/null 2>&1");
    assert_int_equal(broker("ctl", "set_permissions -p / simul-ext '.*' '.*' '.*' >/dev/null"), 0);
}

SIMUL_TASK_TEST(external_auth_with_client_certificate)
{
    (void)arg;
    external_user();
    char ca[512], crt[512], key[512], why[256] = "";
    simul_amqp_opts o = {.url = tls_url(NULL, "localhost"),
                         .tls_ca_file = pki("ca.crt", ca, sizeof ca),
                         .tls_cert_file = pki("client.crt", crt, sizeof crt),
                         .tls_key_file = pki("client.key", key, sizeof key),
                         .sasl_external = true,
                         .connection_name = "simul-external",
                         .why = why,
                         .whylen = sizeof why};
    simul_amqp_conn *c = NULL;
    int rc = simul_amqp_connect(&o, &c);
    if (rc != 0)
        fail_msg("EXTERNAL connect: %s (%s)", strerror(-rc), why);
    round_trip(c, "external");
    /* The broker took the certificate's CN as the user, by EXTERNAL. */
    assert_int_equal(broker("ctl", "list_connections name user auth_mechanism | grep simul-ext | "
                                   "grep -q EXTERNAL"),
                     0);
    assert_int_equal(simul_amqp_close(c), 0);

    /* No client certificate: RabbitMQ 3.10 offers EXTERNAL all the same and refuses the login
     * (403, its reason passed on). */
    simul_amqp_opts n = o;
    n.tls_cert_file = n.tls_key_file = NULL;
    assert_int_equal(simul_amqp_connect(&n, &c), -EACCES);
    fprintf(stderr, "no client certificate: %s\n", why);
    assert_non_null(strstr(why, "403"));
    assert_non_null(strstr(why, "EXTERNAL"));
    /* EXTERNAL without TLS: not offered either. */
    char u[256];
    snprintf(u, sizeof u, "amqp://127.0.0.1:%d/", port());
    simul_amqp_opts p = {.url = u, .sasl_external = true, .why = why, .whylen = sizeof why};
    assert_int_equal(simul_amqp_connect(&p, &c), -EPROTONOSUPPORT);
    assert_non_null(strstr(why, "needs TLS"));
    /* A certificate from the broker's CA whose CN is no user: refused (403). */
    simul_amqp_opts s = o;
    char scrt[512], skey[512];
    s.tls_cert_file = pki("stranger.crt", scrt, sizeof scrt);
    s.tls_key_file = pki("stranger.key", skey, sizeof skey);
    assert_int_equal(simul_amqp_connect(&s, &c), -EACCES);
    assert_non_null(strstr(why, "403"));
    /* A client certificate file that does not exist: the reason names it. */
    s.tls_cert_file = "/nonexistent/client.crt";
    assert_true(simul_amqp_connect(&s, &c) < 0);
    assert_non_null(strstr(why, "/nonexistent/client.crt"));
    return 0;
}

SIMUL_TASK_TEST(only_external_configured_refuses_plain)
{
    (void)arg;
    external_user();
    /* The broker reads auth_mechanisms at each connection: only EXTERNAL from now. */
    assert_int_equal(broker("ctl", "eval \"application:set_env(rabbit, auth_mechanisms, "
                                   "['EXTERNAL']).\" >/dev/null"),
                     0);
    char ca[512], crt[512], key[512], why[256] = "";
    simul_amqp_opts plain = {.url = tls_url("guest:guest", "localhost"),
                             .tls_ca_file = pki("ca.crt", ca, sizeof ca),
                             .tls_cert_file = pki("client.crt", crt, sizeof crt),
                             .tls_key_file = pki("client.key", key, sizeof key),
                             .why = why,
                             .whylen = sizeof why};
    simul_amqp_conn *c = NULL;
    int rc = simul_amqp_connect(&plain, &c);
    simul_amqp_opts ext = plain;
    ext.sasl_external = true;
    simul_amqp_conn *e = NULL;
    char why2[256] = "";
    ext.why = why2;
    int rc2 = simul_amqp_connect(&ext, &e);
    /* Back to the suite's configuration before asserting anything. */
    assert_int_equal(broker("ctl", "eval \"application:set_env(rabbit, auth_mechanisms, "
                                   "['EXTERNAL', 'AMQPLAIN', 'PLAIN']).\" "
                                   ">/dev/null"),
                     0);
    assert_int_equal(rc, -EPROTONOSUPPORT);
    assert_null(c);
    assert_non_null(strstr(why, "does not offer SASL PLAIN"));
    if (rc2 != 0)
        fail_msg("EXTERNAL with only EXTERNAL configured: %s (%s)", strerror(-rc2), why2);
    round_trip(e, "only-external");
    assert_int_equal(simul_amqp_close(e), 0);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(amqps_verified_with_ca_file_and_recovered_over_tls),
        cmocka_unit_test(amqps_bad_ca_system_store_and_host_name_refused_with_reason),
        cmocka_unit_test(external_auth_with_client_certificate),
        cmocka_unit_test(only_external_configured_refuses_plain),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_amqp_tls");
}
