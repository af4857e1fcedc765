/* internal.h — what the files of libsimul-amqp share: the connection, channel and consumer
 * structures, the growable output buffer, and the amqp__ calls between client.c (connection,
 * reader, writer, recovery), dispatch.c (frames in) and channel.c (the public channel calls).
 * The idea: frames are encoded straight into the buffer the writer sends, so a frame is copied
 * once (its body from the caller) and never re-assembled. */
#ifndef SIMUL_AMQP_INTERNAL_H
#define SIMUL_AMQP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <amqp.h>

#include <simul/amqp.h>
#include <simul/backoff.h>
#include <simul/loop.h>
#include <simul/sync.h>
#include <simul/task.h>

typedef struct outbuf {
    uint8_t *data;
    size_t len, cap;
} outbuf;

/* Makes room for `more` bytes after len. 0 or -ENOMEM (the buffer is unchanged then). */
static inline int outbuf_reserve(outbuf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return -12; /* -ENOMEM */
        cap *= 2;
    }
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -12;
    b->data = d;
    b->cap = cap;
    return 0;
}

static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void outbuf_free(outbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#define OUT_HIGH (1u << 20) /* queued output above which publishers wait */
#define RETURNS_BOUND 1024
#define DEFAULT_FRAME_MAX 131072u
#define DEFAULT_CHANNEL_MAX 2047u
#define METHOD_ROOM 65536u /* room reserved to encode one method's arguments */

/* Confirm outcomes; a negative value is a failure's errno. */
#define OUT_PENDING 1
#define OUT_ACK 0

enum { CH_OPENING, CH_OPEN, CH_CLOSING, CH_FAILED, CH_DOWN };
enum { CONTENT_NONE, CONTENT_DELIVER, CONTENT_RETURN, CONTENT_GET };
enum { TOP_EXCHANGE, TOP_QUEUE, TOP_BIND, TOP_XBIND };

typedef struct rpc {
    struct rpc *next;
    simul_event *ev;
    uint32_t expect[2];
    uint32_t reply_id;
    int result;
    bool done, abandoned;
    char *str;                            /* queue name (declare-ok), consumer tag (consume-ok) */
    uint32_t n1, n2;                      /* message / consumer counts */
    simul_amqp_message *msg;              /* get-ok */
    struct simul_amqp_consumer *consumer; /* basic.consume: named at consume-ok, by the reader,
                                             before the deliveries that follow it are read */
} rpc;

typedef struct topo {
    struct topo *next;
    int kind;
    char *name, *type;             /* exchange / queue name; exchange type */
    char *queue, *exchange, *rkey; /* bindings (exchange bindings: queue is the destination,
                                      exchange the source) */
    unsigned flags;
    bool server_named;
    simul_amqp_table *args;
} topo;

struct simul_amqp_consumer {
    simul_amqp_consumer *next;
    simul_amqp_channel *ch;
    char *tag, *queue;
    unsigned flags;
    simul_queue *q;
    int end; /* 0 while active; why consumer_next ends once drained */
    bool reading, server_cancelled, cancel_sent;
    bool doomed; /* freed by the user while recovery was consuming again with it */
};

struct simul_amqp_channel {
    simul_amqp_conn *c;
    simul_amqp_channel *next; /* the connection's list */
    uint16_t id;
    int state;
    int err_code;
    char *err_text;
    uint64_t epoch; /* bumped by every (re)open: deliveries of older epochs are stale */
    rpc *head, *tail;
    uint16_t prefetch;
    bool has_qos;
    bool tx, tx_dirty; /* transaction mode; work done in the current transaction */
    int tx_lost;       /* the loss that took uncommitted work (0: none) */
    /* confirms: outcome of seq s at out[s % WINDOW] for s in [base, next_seq) */
    bool confirm;
    int *outcome;
    uint64_t base, next_seq, done_upto, tag_offset;
    uint64_t pending;
    simul_event *confirm_ev;
    /* content being assembled */
    int content;
    simul_amqp_consumer *content_consumer;
    rpc *content_rpc;
    uint64_t body_size, body_got;
    simul_amqp_message *msg;
    struct {
        uint64_t tag;
        bool redelivered;
        uint16_t code;
        uint32_t count;
        char *text, *exchange, *rkey, *ctag;
    } m;
    simul_queue *returns;
    simul_amqp_consumer *consumers;
    bool doomed; /* closed by the user while recovery was reopening it: recovery frees it */
};

struct simul_amqp_conn {
    simul_amqp_opts o;
    char *host, *port, *user, *password, *vhost, *conn_name;
    bool tls, tls_now;             /* TLS asked for; the current connection is on TLS */
    struct simul_tls_config *tls_cfg;
    bool tls_cfg_own;              /* made by us (freed with the connection) */
    char *tls_name;                /* the name verified and sent as SNI */
    char why[256];                 /* the last failed attempt's reason in words */
    simul_amqp_table *client_props; /* the user's, sent with ours */
    simul_stream *s;
    simul_stream *dead_s; /* aborted, freed once the writer left its drain */
    uint8_t *rbuf;
    size_t rcap, roff, rlen;
    uint32_t frame_max;
    uint16_t channel_max, heartbeat;
    simul_amqp_channel **chans; /* by id, [0..channel_max] */
    uint16_t last_id;
    simul_amqp_channel *channels;
    topo *topo, *topo_tail;
    amqp_pool_t pool;
    /* output */
    outbuf out, wout;
    simul_task *reader, *writer, *recovery;
    simul_amqp_channel *recovering_ch; /* what the recovery task holds across a suspension: */
    simul_amqp_consumer *recovering_k; /* closing / freeing them is deferred to it */
    simul_event *out_ev;               /* output queued */
    simul_event *drained_ev;           /* pulsed after each write */
    simul_event *ready_ev;             /* set while open (and when closing or dead) */
    simul_event *unblocked_ev;
    simul_event *idle_ev;
    simul_event *closeok_ev;
    simul_event *resume_ev;            /* set when a paused reader may read again */
    simul_amqp_consumer *pause_k;      /* the full NO_ACK consumer the reader waits for */
    bool in_drain;
    int write_err;
    int64_t last_read_ns, last_write_ns;
    simul_handle hb_h;
    bool hb_armed, hb_timeout;
    bool open, closing, dead, blocked, close_ok;
    int close_code;
    char *close_text;
    unsigned users;
    uint64_t epoch;
    simul_backoff reconnect; /* the reader's waits between reconnects (reset per outage) */
    simul_amqp_stats st;
};

/* Calls between the files (hidden: the objects are built with hidden visibility; the prefix keeps
 * them apart from a static link's other symbols). */
int amqp__args_table(const simul_amqp_arg *a, size_t n, simul_amqp_table **out);
int amqp__table_to_amqp(amqp_pool_t *pool, const simul_amqp_table *t, amqp_table_t *out);
int amqp__method_guard(uint32_t id, const uint8_t *args, size_t len);
int amqp__props_headers(const uint8_t *p, size_t len, simul_amqp_table **out);
char *amqp__bdup(amqp_bytes_t b);
amqp_bytes_t amqp__bytes(const char *s);
void amqp__channel_destroy(simul_amqp_channel *ch);
void amqp__channel_fail(simul_amqp_channel *ch, int err, int state);
int amqp__channel_open_raw(simul_amqp_channel *ch, bool gate);
void amqp__confirm_set(simul_amqp_channel *ch, uint64_t tag, bool multiple, int outcome);
void amqp__consumer_destroy(simul_amqp_consumer *k);
void amqp__consumer_end(simul_amqp_consumer *k, int why);
void amqp__consumer_unlink(simul_amqp_consumer *k);
void amqp__content_reset(simul_amqp_channel *ch, int err);
int amqp__decode_method(simul_amqp_conn *c, const simul_amqp_frame *f, uint32_t *id, void **args);
int amqp__dispatch(simul_amqp_conn *c, const simul_amqp_frame *f);
int amqp__do_confirm_select(simul_amqp_channel *ch, bool gate);
int amqp__do_consume(simul_amqp_consumer *k, bool gate);
int amqp__do_qos(simul_amqp_channel *ch, uint16_t prefetch, bool gate);
void amqp__enter(simul_amqp_conn *c);
void amqp__fail_rpcs(simul_amqp_channel *ch, int err);
void amqp__leave(simul_amqp_conn *c);
int amqp__out_content(simul_amqp_conn *c, outbuf *b, uint16_t chan, const void *body, size_t len,
                      const simul_amqp_props *props);
int amqp__out_method(simul_amqp_conn *c, outbuf *b, uint16_t chan, uint32_t id, void *args);
int amqp__rpc_call(simul_amqp_channel *ch, uint32_t id, void *args, uint32_t e1, uint32_t e2,
                   rpc **out, bool gate);
void amqp__rpc_complete(rpc *k, int result);
void amqp__rpc_free(rpc *k);
rpc *amqp__rpc_pop(simul_amqp_channel *ch);
bool amqp__same(const char *a, const char *b);
char *amqp__sdup(const char *s, int *err);
int amqp__topo_declare(simul_amqp_channel *ch, topo *t, bool gate, rpc **out);
void amqp__topo_free(topo *t);
void amqp__wake_writer(simul_amqp_conn *c);
int amqp__rpc_call_k(simul_amqp_channel *ch, uint32_t id, void *args, uint32_t e1, uint32_t e2,
                     rpc **out, bool gate, simul_amqp_consumer *consumer);
void amqp__topo_forget(simul_amqp_conn *c, int kind, const char *name);
void amqp__topo_add(simul_amqp_conn *c, topo *t);
topo *amqp__topo_make(int kind, const char *name, const char *type, unsigned flags,
                      const simul_amqp_arg *args, size_t nargs);
int amqp__publish_gate(simul_amqp_channel *ch);
void amqp__resume(simul_amqp_conn *c);
void amqp__send_close_ok(simul_amqp_conn *c, uint16_t chan, uint32_t id);

#endif
