/* amqp_broker_helpers.h — what the real-broker test files share: the suite's RabbitMQ node
 * (tests/amqp/broker.sh, its state directory in SIMUL_AMQP_BROKER), run on a worker thread so the
 * loop goes on meanwhile, and waits on state bounded by a clock. */
#ifndef SIMUL_AMQP_BROKER_HELPERS_H
#define SIMUL_AMQP_BROKER_HELPERS_H

#include "test_main_helpers.h"

#include <signal.h>
#include <sys/wait.h>

#include <simul/amqp.h>

#ifndef SIMUL_AMQP_BROKER_SH
#define SIMUL_AMQP_BROKER_SH "tests/amqp/broker.sh"
#endif

static const char *state(void)
{
    const char *s = getenv("SIMUL_AMQP_BROKER");
    if (!s || !*s)
        fail_msg("SIMUL_AMQP_BROKER is not set: run through ctest (fixture amqp_broker)");
    return s;
}

static int run_shell(void *arg)
{
    int st = system(arg);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* broker.sh CMD STATE ARGS on a worker thread; its exit status. */
static inline int broker(const char *cmd, const char *args)
{
    char line[2048];
    snprintf(line, sizeof line, "bash %s %s %s %s", SIMUL_AMQP_BROKER_SH, cmd, state(),
             args ? args : "");
    int result = -1;
    assert_int_equal(simul_to_thread(run_shell, line, &result), 0);
    return result;
}

/* The first line broker.sh CMD STATE prints, into buf. */
static inline const char *broker_out(const char *cmd, char *buf, size_t len)
{
    char line[512];
    snprintf(line, sizeof line, "bash %s %s %s", SIMUL_AMQP_BROKER_SH, cmd, state());
    FILE *p = popen(line, "r");
    assert_non_null(p);
    assert_non_null(fgets(buf, (int)len, p));
    pclose(p);
    buf[strcspn(buf, "\n")] = 0;
    return buf;
}

static inline int port(void)
{
    char b[32];
    return atoi(broker_out("port", b, sizeof b));
}

static inline int tls_port(void)
{
    char b[32];
    return atoi(broker_out("tlsport", b, sizeof b));
}

/* A file of the broker's PKI (ca.crt, otherca.crt, client.crt/.key, stranger.crt/.key). */
static inline const char *pki(const char *file, char *buf, size_t len)
{
    char d[256];
    broker_out("dir", d, sizeof d);
    if ((size_t)snprintf(buf, len, "%.200s/tls/%s", d, file) >= len)
        fail_msg("path too long");
    return buf;
}

static char qname_buf[128];
static inline const char *qname(const char *what)
{
    snprintf(qname_buf, sizeof qname_buf, "simul-%s-%d", what, (int)getpid());
    return qname_buf;
}

/* The plain listener's URL with query appended (NULL: none), in a buffer the next call reuses. */
static char amqp_url_buf[256];
static inline const char *url(const char *query)
{
    snprintf(amqp_url_buf, sizeof amqp_url_buf, "amqp://guest:guest@127.0.0.1:%d/%s", port(),
             query ? query : "");
    return amqp_url_buf;
}

/* A connection to u that recovers quickly; fails the test if the connect does. */
static inline simul_amqp_conn *connect_url(const char *u)
{
    simul_amqp_opts o = {.url = u, .reconnect_min = 0.05, .reconnect_max = 0.5};
    simul_amqp_conn *c = NULL;
    int rc = simul_amqp_connect(&o, &c);
    if (rc != 0)
        fail_msg("connect %s: %s", u, strerror(-rc));
    return c;
}

static inline simul_amqp_conn *connect_plain(void)
{
    return connect_url(url(NULL));
}

/* The broker's count of ready messages in q (queue.declare passive). */
static inline uint32_t ready_count(simul_amqp_channel *ch, const char *q)
{
    uint32_t n = 0;
    assert_int_equal(
        simul_amqp_queue_declare(ch, q, SIMUL_AMQP_PASSIVE, NULL, 0, NULL, 0, &n, NULL), 0);
    return n;
}

/* Waits (yielding the loop, sleeping a little) until cond holds; fails after `seconds`. */
#define WAIT_UNTIL(cond, seconds)                                                                  \
    do {                                                                                           \
        double until_ = test_clock() + (seconds);                                                  \
        while (!(cond)) {                                                                          \
            if (test_clock() > until_)                                                             \
                fail_msg("timed out waiting for %s", #cond);                                       \
            assert_int_equal(simul_sleep(0.01), 0);                                                \
        }                                                                                          \
    } while (0)

#endif
