/* fuzz_amqp_client.c — libFuzzer target for what libsimul-amqp's client does with a broker's bytes:
 * after a valid handshake and channel.open-ok, the fuzz input is what the "broker" says next,
 * while client tasks wait in basic.get, basic.consume, consumer_next and confirms on channel 1.
 * Frame dispatch, RPC matching, content assembly (method, header, bodies), acks and nacks,
 * cancels and closes all meet hostile input. Invariants: no crash, no leak (the replay runs under
 * ASan in the ASan suite), every task ends (each waits under a deadline), and the loop closes with
 * nothing alive.
 *
 * Input layout: byte 0 picks the negotiated frame_max (4096 << (b % 4)), the rest is the stream.
 * Replayed by ctest fuzz.amqp_client over fuzz/corpus/amqp_client. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <simul.h>
#include <simul/amqp.h>

typedef struct run {
    const uint8_t *data;
    size_t len;
    uint32_t frame_max;
    simul_stream *server;
    simul_amqp_channel *ch;
} run;

static size_t frame(uint8_t *b, uint8_t type, uint16_t ch, const uint8_t *p, uint32_t n)
{
    b[0] = type;
    b[1] = (uint8_t)(ch >> 8);
    b[2] = (uint8_t)ch;
    b[3] = (uint8_t)(n >> 24);
    b[4] = (uint8_t)(n >> 16);
    b[5] = (uint8_t)(n >> 8);
    b[6] = (uint8_t)n;
    memcpy(b + 7, p, n);
    b[7 + n] = 0xCE;
    return n + 8;
}

/* The broker: a handshake, channel 1 open, then the fuzz bytes, then EOF. It never reads; the
 * client's writes sit in the socket buffer (small) until the end. */
static int server_main(void *arg)
{
    run *r = arg;
    uint8_t b[512];
    size_t n = 0;
    static const uint8_t start[] = {0,   10,  0,   10,  0,   9, 0, 0, 0, 0,   0,   0,   0,   5,
                                    'P', 'L', 'A', 'I', 'N', 0, 0, 0, 5, 'e', 'n', '_', 'U', 'S'};
    n += frame(b + n, 1, 0, start, sizeof start);
    uint8_t tune[] = {0, 10, 0, 30, 0, 16, 0, 0, 0, 0, 0, 0};
    tune[6] = (uint8_t)(r->frame_max >> 24);
    tune[7] = (uint8_t)(r->frame_max >> 16);
    tune[8] = (uint8_t)(r->frame_max >> 8);
    tune[9] = (uint8_t)r->frame_max;
    n += frame(b + n, 1, 0, tune, sizeof tune);
    static const uint8_t open_ok[] = {0, 10, 0, 41, 0};
    n += frame(b + n, 1, 0, open_ok, sizeof open_ok);
    static const uint8_t ch_open_ok[] = {0, 20, 0, 11, 0, 0, 0, 0};
    n += frame(b + n, 1, 1, ch_open_ok, sizeof ch_open_ok);
    static const uint8_t confirm_ok[] = {0, 85, 0, 11};
    n += frame(b + n, 1, 1, confirm_ok, sizeof confirm_ok);
    simul_stream_write(r->server, b, n);
    /* Let the client open its channel before the fuzz bytes arrive. */
    simul_sleep(0.001);
    simul_stream_write(r->server, r->data, r->len);
    simul_sleep(0.005);
    simul_stream_close(r->server);
    r->server = NULL;
    return 0;
}

static int connect_cb(void *arg, simul_stream **out)
{
    run *r = arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    if (simul_stream_from_fd(sv[0], out) < 0 || simul_stream_from_fd(sv[1], &r->server) < 0)
        abort();
    simul_task *t;
    if (simul_task_spawn(&t, server_main, r, NULL) < 0)
        abort();
    simul_task_detach(t);
    return 0;
}

static int getter_body(run *r);

static int getter(void *arg)
{
    simul_scope sc;
    simul_scope_timeout(&sc, 0.05); /* every wait ends: hostile input may never answer */
    getter_body(arg);
    simul_scope_end(&sc);
    return 0;
}

static int getter_body(run *r)
{
    simul_amqp_message *m = NULL;
    if (simul_amqp_get(r->ch, "q", 0, &m) == 0) {
        if (!m || (m->len && !m->body))
            abort();
        simul_amqp_ack(m, 0);
        simul_amqp_message_free(m);
    }
    return 0;
}

static int consumer_body(run *r);

static int consumer(void *arg)
{
    simul_scope sc;
    simul_scope_timeout(&sc, 0.05); /* every wait ends: hostile input may never answer */
    consumer_body(arg);
    simul_scope_end(&sc);
    return 0;
}

static int consumer_body(run *r)
{
    simul_amqp_consumer *k = NULL;
    if (simul_amqp_consume(r->ch, "q", "ctag", 0, &k) < 0)
        return 0;
    for (;;) {
        simul_amqp_message *m;
        if (simul_amqp_consumer_next(k, &m) < 0)
            break;
        simul_amqp_nack(m, SIMUL_AMQP_MULTIPLE | SIMUL_AMQP_REQUEUE);
        simul_amqp_message_free(m);
    }
    simul_amqp_consumer_free(k);
    return 0;
}

static int publisher_body(run *r);

static int publisher(void *arg)
{
    simul_scope sc;
    simul_scope_timeout(&sc, 0.05); /* every wait ends: hostile input may never answer */
    publisher_body(arg);
    simul_scope_end(&sc);
    return 0;
}

static int publisher_body(run *r)
{
    uint64_t seq = 0;
    for (int i = 0; i < 4; i++)
        if (simul_amqp_publish(r->ch, "", "q", "x", 1, NULL, SIMUL_AMQP_MANDATORY, &seq) < 0)
            return 0;
    simul_amqp_wait_confirm(r->ch, 2);
    simul_amqp_wait_confirms(r->ch, NULL);
    simul_amqp_message *m;
    while (simul_amqp_next_return(r->ch, &m) == 0)
        simul_amqp_message_free(m);
    return 0;
}

static int main_task(void *arg)
{
    run *r = arg;
    simul_scope sc;
    simul_scope_timeout(&sc, 0.05);
    simul_amqp_opts o = {.connect_cb = connect_cb,
                         .connect_arg = r,
                         .no_recovery = true,
                         .heartbeat = -1,
                         .max_message = 1 << 20};
    simul_amqp_conn *c = NULL;
    int rc = simul_amqp_connect(&o, &c);
    if (rc == 0)
        rc = simul_amqp_channel_open(c, &r->ch);
    if (rc == 0)
        rc = simul_amqp_confirm_select(r->ch);
    simul_scope_end(&sc);
    if (rc == 0) {
        /* Each task bounds its own waits, so gathering them ends; only then is the connection
         * (with the channel and consumer handles the tasks use) closed. */
        simul_task *t[3];
        simul_task_spawn(&t[0], getter, r, NULL);
        simul_task_spawn(&t[1], consumer, r, NULL);
        simul_task_spawn(&t[2], publisher, r, NULL);
        simul_gather(t, 3, NULL);
    }
    simul_amqp_close(c);
    /* The server task may still be in its last sleep: let it finish. */
    while (r->server)
        simul_sleep(0.001);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    run r = {.data = data + 1, .len = size - 1, .frame_max = 4096u << (data[0] % 4)};
    if (simul_run(main_task, &r) != 0)
        abort();
    return 0;
}
