/* test_amqp_sni.c — what amqps puts on the wire before any AMQP byte, seen by a TLS server of our
 * own (libsimul-tls, the suite's PKI from tests/tls/make_certs.sh): the server name sent as SNI
 * (the host, or tls_server_name) and used for verification — the server answers other.test with
 * another certificate, which verifies only if the client both sent and checked that name — and
 * no SNI for an IP address. The server hangs up after the protocol header: the connect fails,
 * with the reason in words, after a verified handshake. */
#include "test_main_helpers.h"

#include <signal.h>

#include <simul/amqp.h>

#ifdef SIMUL_TLS_CERTS
#include <simul/tls.h>

#define CERT(f) SIMUL_TLS_CERTS "/" f

typedef struct srv {
    simul_tls_config *cfg, *other;
    char sni[128];
    int seen_sni, handled;
    char header[9];
} srv;


static simul_tls_config *pick(const char *name, void *arg)
{
    srv *v = arg;
    snprintf(v->sni, sizeof v->sni, "%s", name);
    v->seen_sni++;
    return strcmp(name, "other.test") == 0 ? v->other : NULL;
}

static int handler(simul_stream *s, void *arg)
{
    srv *v = arg;
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 10), 0);
    if (simul_tls_accept(s, v->cfg) == 0)
        simul_stream_readexactly(s, v->header, 8, NULL); /* "AMQP\0\0\9\1", then we hang up */
    simul_scope_end(&sc);
    v->handled++;
    return 0;
}

static simul_tls_config *server_cfg(const char *crt, const char *key)
{
    simul_tls_config *c;
    assert_int_equal(simul_tls_config_new_server(&c), 0);
    assert_int_equal(simul_tls_config_set_cert(c, crt, key, NULL, 0), 0);
    return c;
}

SIMUL_TASK_TEST(server_name_sent_as_sni_and_verified)
{
    (void)arg;
    srv v = {0};
    v.cfg = server_cfg(CERT("server.crt"), CERT("server.key"));
    v.other = server_cfg(CERT("other.crt"), CERT("other.key"));
    assert_int_equal(simul_tls_config_set_sni_cb(v.cfg, pick, &v), 0);
    simul_server *server;
    assert_int_equal(simul_start_server("127.0.0.1", "0", handler, &v, &server), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", simul_server_port(server));
    char why[256];
    simul_amqp_conn *c = NULL;
    /* tls_server_name other.test, connecting to 127.0.0.1: the server hands out other.test's
     * certificate only because the name came as SNI, and it verifies against that name. */
    simul_amqp_opts o = {.host = "127.0.0.1",
                         .port = port,
                         .tls = true,
                         .tls_ca_file = CERT("ca.crt"),
                         .tls_server_name = "other.test",
                         .no_recovery = true,
                         .connect_timeout = 10,
                         .why = why,
                         .whylen = sizeof why};
    int rc = simul_amqp_connect(&o, &c);
    assert_true(rc < 0 && rc != -EKEYREJECTED);
    assert_int_equal(v.seen_sni, 1);
    assert_string_equal(v.sni, "other.test");
    assert_memory_equal(v.header, "AMQP\0\0\x09\x01", 8); /* the handshake passed: AMQP came */
    assert_true(why[0] != 0);
    fprintf(stderr, "after the header the server hung up: %s (%s)\n", simul_errname(rc), why);
    /* The host name itself by default. */
    o.host = "localhost";
    o.tls_server_name = NULL;
    rc = simul_amqp_connect(&o, &c);
    assert_true(rc < 0 && rc != -EKEYREJECTED);
    assert_int_equal(v.seen_sni, 2);
    assert_string_equal(v.sni, "localhost");
    /* An IP address is verified (the certificate lists 127.0.0.1) but never sent as SNI. */
    o.host = "127.0.0.1";
    rc = simul_amqp_connect(&o, &c);
    assert_true(rc < 0 && rc != -EKEYREJECTED);
    assert_int_equal(v.seen_sni, 2);
    /* other.test's name for a server that does not switch certificates: refused, with why. */
    assert_int_equal(simul_tls_config_set_sni_cb(v.cfg, NULL, NULL), 0);
    o.tls_server_name = "other.test";
    assert_int_equal(simul_amqp_connect(&o, &c), -EKEYREJECTED);
    assert_non_null(strstr(why, "certificate verify failed"));
    while (v.handled < 4)
        assert_int_equal(simul_sleep(0.01), 0);
    simul_server_close(server);
    assert_int_equal(simul_server_wait_closed(server), 0);
    simul_server_free(server);
    simul_tls_config_free(v.cfg);
    simul_tls_config_free(v.other);
    return 0;
}
#else
SIMUL_TASK_TEST(server_name_sent_as_sni_and_verified)
{
    (void)arg;
    skip(); /* no libsimul-tls in this build */
    return 0;
}
#endif

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(server_name_sent_as_sni_and_verified),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_amqp_sni");
}
