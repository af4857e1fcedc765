/* amqp_work_queue.c — a RabbitMQ work queue on libsimul-amqp: `publish` sends N persistent
 * messages with publisher confirms (a window of them in flight, never one round trip each) and
 * `consume` takes N with a prefetch and acknowledges them (in groups: `multiple`). Both print an
 * order-independent checksum of the bodies (the sum of their FNV-1a hashes), so the two sides can
 * be compared.
 *
 *   amqp_work_queue --url amqp://guest:guest@127.0.0.1:5672/ publish --queue Q --count N --size B
 *   amqp_work_queue --url ... consume --queue Q --count N --prefetch K
 *   amqp_work_queue --url amqps://localhost:5671/ --cacert ca.pem [--cert c.pem --key k.pem
 *                   --external] ...     (TLS, verified; EXTERNAL login with a client certificate)
 *
 * A publish the broker did not confirm (nacked, or lost with the connection) is published again,
 * so the queue gets every message at least once; the consumer counts messages, so a message
 * delivered twice (redelivered after a connection loss) is counted twice and the checksums then
 * differ: that is what at-least-once means, and the output says `redelivered=`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul.h>
#include <simul/amqp.h>

#include "example_cli.h"

static const char *progname = "amqp_work_queue";

static void print_usage(FILE *out)
{
    fprintf(
        out,
        "usage: %s [--url URL] publish --queue Q --count N [--size B] [--window W] [--transient]\n"
        "       %s [--url URL] consume --queue Q --count N [--prefetch K]\n"
        "  URL defaults to amqp://guest:guest@127.0.0.1:5672/; B to 1024; W (confirms in\n"
        "  flight) to 1000; K to 100. --transient: delivery mode 1 (not written to disk)\n"
        "  amqps:// URLs: TLS verified against the system's CAs or --cacert FILE; --cert FILE\n"
        "  --key FILE: a client certificate; --external: log in with it (SASL EXTERNAL)\n",
        progname, progname);
}

typedef struct cfg {
    const char *url, *mode, *queue, *cacert, *cert, *key;
    bool external;
    size_t count, size, window, prefetch;
    bool transient;
} cfg;

static uint64_t fnv1a(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Body i: its index, then bytes that depend on it (so every message differs). */
static void fill(uint8_t *b, size_t n, uint64_t i)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ull + 1;
    for (size_t k = 0; k < n; k++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        b[k] = (uint8_t)(x * 2685821657736338717ull >> 56);
    }
    memcpy(b, &i, n < sizeof i ? n : sizeof i);
}

static int publish(simul_amqp_conn *c, const cfg *g)
{
    simul_amqp_channel *ch;
    int rc = simul_amqp_channel_open(c, &ch);
    if (rc == 0)
        rc = simul_amqp_queue_declare(ch, g->queue, SIMUL_AMQP_DURABLE, NULL, 0, NULL, 0, NULL,
                                      NULL);
    if (rc == 0)
        rc = simul_amqp_confirm_select(ch);
    if (rc < 0) {
        fprintf(stderr, "%s: setup: %s\n", progname, simul_strerror(rc));
        return rc;
    }
    uint8_t *body = malloc(g->size ? g->size : 1);
    uint64_t *seq = malloc(g->window * sizeof *seq);
    uint64_t *idx = malloc(g->window * sizeof *idx);
    uint64_t *retry = malloc(g->window * sizeof *retry);
    if (!body || !seq || !idx || !retry)
        return -ENOMEM;
    simul_amqp_props props = {.delivery_mode = g->transient ? 1 : 2,
                              .content_type = "application/octet-stream"};
    uint64_t sum = 0, confirmed = 0, republished = 0, next = 0;
    size_t nretry = 0;
    while (confirmed < g->count) {
        /* A window of publishes in flight, then its confirms (one wait for them all). */
        size_t n = 0;
        while (n < g->window && (nretry > 0 || next < g->count)) {
            uint64_t i = nretry > 0 ? retry[--nretry] : next++;
            fill(body, g->size, i);
            rc = simul_amqp_publish(ch, "", g->queue, body, g->size, &props, 0, &seq[n]);
            if (rc < 0) {
                fprintf(stderr, "%s: publish: %s\n", progname, simul_strerror(rc));
                return rc;
            }
            idx[n++] = i;
        }
        for (size_t k = 0; k < n; k++) {
            rc = simul_amqp_wait_confirm(ch, seq[k]);
            if (rc == 0) {
                fill(body, g->size, idx[k]);
                sum += fnv1a(body, g->size);
                confirmed++;
            } else if (rc == -EBADMSG || rc == -ECONNRESET || rc == -ECONNABORTED ||
                       rc == -ETIMEDOUT) {
                retry[nretry++] = idx[k]; /* not taken (or unknown): send it again */
                republished++;
            } else {
                fprintf(stderr, "%s: confirm: %s\n", progname, simul_strerror(rc));
                return rc;
            }
        }
        simul_amqp_wait_confirms(ch, NULL); /* consume the outcomes */
    }
    printf("confirmed=%llu\nrepublished=%llu\nchecksum=%016llx\n", (unsigned long long)confirmed,
           (unsigned long long)republished, (unsigned long long)sum);
    free(body);
    free(seq);
    free(idx);
    free(retry);
    return simul_amqp_channel_close(ch);
}

static int consume(simul_amqp_conn *c, const cfg *g)
{
    simul_amqp_channel *ch;
    simul_amqp_consumer *k = NULL;
    int rc = simul_amqp_channel_open(c, &ch);
    if (rc == 0)
        rc = simul_amqp_queue_declare(ch, g->queue, SIMUL_AMQP_DURABLE, NULL, 0, NULL, 0, NULL,
                                      NULL);
    if (rc == 0)
        rc = simul_amqp_qos(ch, (uint16_t)g->prefetch);
    if (rc == 0)
        rc = simul_amqp_consume(ch, g->queue, NULL, 0, &k);
    if (rc < 0) {
        fprintf(stderr, "%s: setup: %s\n", progname, simul_strerror(rc));
        return rc;
    }
    uint64_t sum = 0, got = 0, redelivered = 0;
    /* Acknowledge in groups (multiple): half a prefetch at a time keeps the broker sending. */
    size_t group = g->prefetch / 2 ? g->prefetch / 2 : 1, pending = 0;
    simul_amqp_message *last = NULL;
    while (got < g->count) {
        simul_amqp_message *m;
        rc = simul_amqp_consumer_next(k, &m);
        if (rc < 0) {
            fprintf(stderr, "%s: consume: %s\n", progname, simul_strerror(rc));
            return rc;
        }
        sum += fnv1a(m->body, m->len);
        got++;
        redelivered += m->redelivered;
        simul_amqp_message_free(last);
        last = m;
        if (++pending >= group || got == g->count) {
            rc = simul_amqp_ack(m, SIMUL_AMQP_MULTIPLE);
            if (rc < 0 && rc != -ESTALE) { /* stale: redelivered anyway */
                fprintf(stderr, "%s: ack: %s\n", progname, simul_strerror(rc));
                return rc;
            }
            pending = 0;
        }
    }
    simul_amqp_message_free(last);
    printf("consumed=%llu\nredelivered=%llu\nchecksum=%016llx\n", (unsigned long long)got,
           (unsigned long long)redelivered, (unsigned long long)sum);
    simul_amqp_consumer_cancel(k);
    simul_amqp_consumer_free(k);
    return simul_amqp_channel_close(ch);
}

static int main_task(void *arg)
{
    const cfg *g = arg;
    char why[256] = "";
    simul_amqp_opts o = {.url = g->url,
                         .connection_name = "amqp_work_queue",
                         .tls_ca_file = g->cacert,
                         .tls_cert_file = g->cert,
                         .tls_key_file = g->key,
                         .sasl_external = g->external,
                         .why = why,
                         .whylen = sizeof why};
    simul_amqp_conn *c = NULL;
    int rc = simul_amqp_connect(&o, &c);
    if (rc < 0) {
        fprintf(stderr, "%s: connect %s: %s (%s)\n", progname, g->url, simul_strerror(rc), why);
        return rc;
    }
    rc = strcmp(g->mode, "publish") == 0 ? publish(c, g) : consume(c, g);
    simul_amqp_close(c);
    return rc;
}

int main(int argc, char **argv)
{
    cfg g = {
        .url = "amqp://guest:guest@127.0.0.1:5672/", .size = 1024, .window = 1000, .prefetch = 100};
    bool have_count = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if ((v = option_value(a, "--url", &i, argc, argv))) {
            g.url = v;
        } else if ((v = option_value(a, "--queue", &i, argc, argv))) {
            g.queue = v;
        } else if ((v = option_value(a, "--count", &i, argc, argv))) {
            if (!parse_count(v, &g.count))
                usage_error("bad --count %s", v);
            have_count = true;
        } else if ((v = option_value(a, "--size", &i, argc, argv))) {
            if (!parse_count(v, &g.size) || g.size > (64u << 20))
                usage_error("bad --size %s", v);
        } else if ((v = option_value(a, "--window", &i, argc, argv))) {
            if (!parse_count(v, &g.window) || g.window == 0 || g.window > 65536)
                usage_error("bad --window %s", v);
        } else if ((v = option_value(a, "--prefetch", &i, argc, argv))) {
            if (!parse_count(v, &g.prefetch) || g.prefetch == 0 || g.prefetch > 65535)
                usage_error("bad --prefetch %s", v);
        } else if ((v = option_value(a, "--cacert", &i, argc, argv))) {
            g.cacert = v;
        } else if ((v = option_value(a, "--cert", &i, argc, argv))) {
            g.cert = v;
        } else if ((v = option_value(a, "--key", &i, argc, argv))) {
            g.key = v;
        } else if (!strcmp(a, "--external")) {
            g.external = true;
        } else if (!strcmp(a, "--transient")) {
            g.transient = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_usage(stdout);
            return 0;
        } else if (!g.mode && (!strcmp(a, "publish") || !strcmp(a, "consume"))) {
            g.mode = a;
        } else {
            usage_error("unexpected argument %s", a);
        }
    }
    if (!g.mode || !g.queue || !have_count)
        usage_error("a mode (publish or consume), --queue and --count are required");
    int rc = simul_run(main_task, &g);
    return rc < 0 ? 1 : 0;
}
