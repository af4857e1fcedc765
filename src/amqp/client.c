/* client.c — the AMQP connection: one reader task, one writer task, channels multiplexed on it.
 * The idea: every frame we send is queued without suspending (a publish is in the stream whole or
 * not at all) and the writer sends what a loop pass queued in one write; every reply is matched
 * by position to the head of its channel's FIFO of RPC records, so a caller that leaves (cancel,
 * deadline) only marks its record abandoned. Heartbeats and their check run on a timer, whatever
 * the tasks do; recovery replays a recorded topology on a fresh connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <amqp.h>
#include <amqp_framing.h>

#include <simul/amqp.h>
#include <simul/loop.h>
#include <simul/sync.h>
#include <simul/task.h>

#include "internal.h"

#define OUT_HIGH (1u << 20)      /* queued output above which publishers wait */
#define RETURNS_BOUND 1024
#define DEFAULT_FRAME_MAX 131072u
#define DEFAULT_CHANNEL_MAX 2047u
#define METHOD_ROOM 65536u       /* room reserved to encode one method's arguments */

/* Confirm outcomes; a negative value is a failure's errno. */
#define OUT_PENDING 1
#define OUT_ACK 0

enum { CH_OPENING, CH_OPEN, CH_CLOSING, CH_FAILED, CH_DOWN };
enum { CONTENT_NONE, CONTENT_DELIVER, CONTENT_RETURN, CONTENT_GET };
enum { TOP_EXCHANGE, TOP_QUEUE, TOP_BIND };

typedef struct rpc {
    struct rpc *next;
    simul_event *ev;
    uint32_t expect[2];
    uint32_t reply_id;
    int result;
    bool done, abandoned;
    char *str;             /* queue name (declare-ok), consumer tag (consume-ok) */
    uint32_t n1, n2;       /* message / consumer counts */
    simul_amqp_message *msg; /* get-ok */
    struct simul_amqp_consumer *consumer; /* basic.consume: named at consume-ok, by the reader,
                                             before the deliveries that follow it are read */
} rpc;

typedef struct arglist {
    simul_amqp_arg *a;
    size_t n;
} arglist;

typedef struct topo {
    struct topo *next;
    int kind;
    char *name, *type;        /* exchange / queue name; exchange type */
    char *queue, *exchange, *rkey; /* bindings */
    unsigned flags;
    bool server_named;
    arglist args;
} topo;

struct simul_amqp_consumer {
    simul_amqp_consumer *next;
    simul_amqp_channel *ch;
    char *tag, *queue;
    unsigned flags;
    simul_queue *q;
    int end;            /* 0 while active; why consumer_next ends once drained */
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
    uint64_t epoch;           /* bumped by every (re)open: deliveries of older epochs are stale */
    rpc *head, *tail;
    uint16_t prefetch;
    bool has_qos;
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
    simul_event *out_ev;     /* output queued */
    simul_event *drained_ev; /* pulsed after each write */
    simul_event *ready_ev;   /* set while open (and when closing or dead) */
    simul_event *unblocked_ev;
    simul_event *idle_ev;
    simul_event *closeok_ev;
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
    uint64_t rng;
    simul_amqp_stats st;
};

/* ---- small helpers ------------------------------------------------------------------------- */

static amqp_bytes_t bytes(const char *s)
{
    amqp_bytes_t b = {s ? strlen(s) : 0, (void *)(s ? s : "")};
    return b;
}

static char *bdup(amqp_bytes_t b)
{
    char *d = malloc(b.len + 1);
    if (d) {
        if (b.len)
            memcpy(d, b.bytes, b.len);
        d[b.len] = 0;
    }
    return d;
}

static char *sdup(const char *s, int *err)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *err = -ENOMEM;
    return d;
}

static bool same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static double rand01(simul_amqp_conn *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (double)((c->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static void pulse(simul_event *e)
{
    /* Wakes every waiter now; later waiters wait for the next pulse. */
    simul_event_set(e);
    simul_event_clear(e);
}

static void enter(simul_amqp_conn *c)
{
    c->users++;
}

static void leave(simul_amqp_conn *c)
{
    if (--c->users == 0 && c->closing)
        simul_event_set(c->idle_ev);
}

static void args_free(arglist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free((char *)l->a[i].key);
        free((char *)l->a[i].str);
    }
    free(l->a);
    l->a = NULL;
    l->n = 0;
}

static int args_copy(arglist *l, const simul_amqp_arg *a, size_t n)
{
    l->a = NULL;
    l->n = 0;
    if (!n)
        return 0;
    l->a = calloc(n, sizeof *l->a);
    if (!l->a)
        return -ENOMEM;
    l->n = n;
    int err = 0;
    for (size_t i = 0; i < n; i++) {
        l->a[i].key = sdup(a[i].key ? a[i].key : "", &err);
        l->a[i].str = sdup(a[i].str, &err);
        l->a[i].integer = a[i].integer;
    }
    if (err)
        args_free(l);
    return err;
}

/* An argument list as an AMQP table, in the connection's pool (valid until the pool recycles). */
static amqp_table_t table_of(simul_amqp_conn *c, const simul_amqp_arg *a, size_t n)
{
    amqp_table_t t = {0, NULL};
    if (!n)
        return t;
    amqp_table_entry_t *e = amqp_pool_alloc(&c->pool, n * sizeof *e);
    if (!e)
        return t;
    for (size_t i = 0; i < n; i++) {
        e[i].key = bytes(a[i].key);
        if (a[i].str) {
            e[i].value.kind = AMQP_FIELD_KIND_UTF8;
            e[i].value.value.bytes = bytes(a[i].str);
        } else {
            e[i].value.kind = AMQP_FIELD_KIND_I64;
            e[i].value.value.i64 = a[i].integer;
        }
    }
    t.num_entries = (int)n;
    t.entries = e;
    return t;
}

/* ---- output: frames queued without suspending ---------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wake_writer(simul_amqp_conn *c)
{
    simul_event_set(c->out_ev);
}

/* Appends a method frame; on failure nothing is appended. */
static int out_method(simul_amqp_conn *c, outbuf *b, uint16_t chan, uint32_t id, void *args)
{
    size_t room = METHOD_ROOM;
    for (int attempt = 0; attempt < 8; attempt++, room *= 4) {
        if (outbuf_reserve(b, room + 12) < 0)
            return -ENOMEM;
        uint8_t *p = b->data + b->len;
        amqp_bytes_t enc = {room, p + 11};
        int n = amqp_encode_method(id, args, enc);
        if (n == AMQP_STATUS_BAD_AMQP_DATA || n == AMQP_STATUS_TABLE_TOO_BIG)
            continue; /* the arguments did not fit: more room */
        if (n < 0)
            return -EINVAL;
        p[0] = SIMUL_AMQP_FRAME_METHOD;
        put16(p + 1, chan);
        put32(p + 3, (uint32_t)n + 4);
        put32(p + 7, id);
        p[11 + n] = 0xCE;
        b->len += 12 + (size_t)n;
        c->st.frames_out++;
        return 0;
    }
    return -EMSGSIZE;
}

static amqp_basic_properties_t props_of(simul_amqp_conn *c, const simul_amqp_props *p)
{
    amqp_basic_properties_t bp;
    memset(&bp, 0, sizeof bp);
    if (!p)
        return bp;
#define STRPROP(field, flag)                                                                       \
    if (p->field) {                                                                                \
        bp._flags |= flag;                                                                         \
        bp.field = bytes(p->field);                                                                \
    }
    STRPROP(content_type, AMQP_BASIC_CONTENT_TYPE_FLAG)
    STRPROP(content_encoding, AMQP_BASIC_CONTENT_ENCODING_FLAG)
    STRPROP(correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG)
    STRPROP(reply_to, AMQP_BASIC_REPLY_TO_FLAG)
    STRPROP(expiration, AMQP_BASIC_EXPIRATION_FLAG)
    STRPROP(message_id, AMQP_BASIC_MESSAGE_ID_FLAG)
    STRPROP(type, AMQP_BASIC_TYPE_FLAG)
    STRPROP(user_id, AMQP_BASIC_USER_ID_FLAG)
    STRPROP(app_id, AMQP_BASIC_APP_ID_FLAG)
#undef STRPROP
    if (p->delivery_mode) {
        bp._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        bp.delivery_mode = p->delivery_mode;
    }
    if (p->priority) {
        bp._flags |= AMQP_BASIC_PRIORITY_FLAG;
        bp.priority = p->priority;
    }
    if (p->timestamp) {
        bp._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        bp.timestamp = p->timestamp;
    }
    if (p->nheaders) {
        bp._flags |= AMQP_BASIC_HEADERS_FLAG;
        bp.headers = table_of(c, p->headers, p->nheaders);
    }
    return bp;
}

/* Appends a content header and the body frames (split at frame_max). */
static int out_content(simul_amqp_conn *c, outbuf *b, uint16_t chan, const void *body, size_t len,
                       const simul_amqp_props *props)
{
    amqp_basic_properties_t bp = props_of(c, props);
    size_t room = METHOD_ROOM;
    int n = -1;
    for (int attempt = 0; attempt < 8; attempt++, room *= 4) {
        if (outbuf_reserve(b, room + 20) < 0)
            return -ENOMEM;
        uint8_t *p = b->data + b->len;
        amqp_bytes_t enc = {room, p + 19};
        n = amqp_encode_properties(AMQP_BASIC_CLASS, &bp, enc);
        if (n >= 0)
            break;
        if (n != AMQP_STATUS_BAD_AMQP_DATA && n != AMQP_STATUS_TABLE_TOO_BIG)
            return -EINVAL;
    }
    if (n < 0)
        return -EMSGSIZE;
    uint8_t *p = b->data + b->len;
    p[0] = SIMUL_AMQP_FRAME_HEADER;
    put16(p + 1, chan);
    put32(p + 3, (uint32_t)n + 12);
    put16(p + 7, AMQP_BASIC_CLASS);
    put16(p + 9, 0);
    put32(p + 11, (uint32_t)((uint64_t)len >> 32));
    put32(p + 15, (uint32_t)len);
    p[19 + n] = 0xCE;
    size_t start = b->len;
    b->len += 20 + (size_t)n;
    c->st.frames_out++;
    size_t chunk = c->frame_max - SIMUL_AMQP_FRAME_OVERHEAD;
    size_t nframes = len ? (len + chunk - 1) / chunk : 0;
    if (outbuf_reserve(b, len + nframes * SIMUL_AMQP_FRAME_OVERHEAD) < 0) {
        b->len = start;
        return -ENOMEM;
    }
    const uint8_t *src = body;
    for (size_t off = 0; off < len; off += chunk) {
        size_t k = len - off < chunk ? len - off : chunk;
        p = b->data + b->len;
        p[0] = SIMUL_AMQP_FRAME_BODY;
        put16(p + 1, chan);
        put32(p + 3, (uint32_t)k);
        memcpy(p + 7, src + off, k);
        p[7 + k] = 0xCE;
        b->len += k + 8;
        c->st.frames_out++;
    }
    return 0;
}

/* The writer task: writes what was queued, one write per pass, and drains (flow control). */
static int writer_main(void *arg)
{
    simul_amqp_conn *c = arg;
    for (;;) {
        while (c->out.len == 0 || !c->s) {
            simul_event_clear(c->out_ev);
            if (simul_event_wait(c->out_ev) < 0)
                return 0;
        }
        /* Let every task ready in this pass queue its frames first. */
        if (simul_yield() < 0)
            return 0;
        if (!c->s)
            continue;
        outbuf t = c->wout;
        c->wout = c->out;
        c->out = t;
        c->out.len = 0;
        simul_stream *s = c->s;
        int rc = simul_stream_write(s, c->wout.data, c->wout.len);
        c->wout.len = 0;
        c->st.writes++;
        c->last_write_ns = simul_now_ns();
        if (rc == 0) {
            c->in_drain = true;
            rc = simul_stream_drain(s);
            c->in_drain = false;
            if (c->dead_s == s) {
                /* The connection was dropped while we drained: the stream is ours to free. */
                simul_stream_close(s);
                c->dead_s = NULL;
                pulse(c->drained_ev);
                if (rc == -ECANCELED && simul_task_cancel_requested(simul_task_current()))
                    return 0;
                continue;
            }
        }
        if (rc < 0 && c->s == s) {
            if (rc == -ECANCELED && simul_task_cancel_requested(simul_task_current()))
                return 0;
            if (!c->write_err) {
                c->write_err = rc;
                simul_stream_abort(s); /* the reader wakes and reports it */
            }
        }
        pulse(c->drained_ev);
        if (c->wout.cap > (4u << 20))
            outbuf_free(&c->wout);
    }
}

/* ---- heartbeats ---------------------------------------------------------------------------- */

static void hb_arm(simul_amqp_conn *c);

static void hb_cb(void *arg)
{
    simul_amqp_conn *c = arg;
    c->hb_armed = false;
    if (!c->s || !c->heartbeat)
        return;
    int64_t now = simul_now_ns(), hb = (int64_t)c->heartbeat * 1000000000;
    if (now - c->last_read_ns > 2 * hb) {
        /* Bytes waiting in the socket mean the broker is alive and our reader was slow (the loop
         * was held): not a missed heartbeat. */
        int fd = simul_stream_fd(c->s), pending = 0;
        if ((fd >= 0 && ioctl(fd, FIONREAD, &pending) == 0 && pending > 0) ||
            simul_stream_read_buffer_size(c->s) > 0) {
            c->last_read_ns = now;
            hb_arm(c);
            return;
        }
        /* Two intervals without a byte: the broker is gone or frozen. */
        c->hb_timeout = true;
        simul_stream_abort(c->s);
        return;
    }
    if (now - c->last_write_ns >= hb / 2 && c->out.len == 0) {
        if (outbuf_reserve(&c->out, 8) == 0) {
            uint8_t *p = c->out.data + c->out.len;
            static const uint8_t hbf[8] = {8, 0, 0, 0, 0, 0, 0, 0xCE};
            memcpy(p, hbf, 8);
            c->out.len += 8;
            c->st.heartbeats_out++;
            wake_writer(c);
        }
    }
    hb_arm(c);
}

static void hb_arm(simul_amqp_conn *c)
{
    if (c->hb_armed || !c->heartbeat)
        return;
    if (simul_call_later(c->heartbeat / 2.0, hb_cb, c, &c->hb_h) == 0)
        c->hb_armed = true;
}

static void hb_stop(simul_amqp_conn *c)
{
    if (c->hb_armed) {
        simul_handle_cancel(c->hb_h);
        c->hb_armed = false;
    }
}

/* ---- input --------------------------------------------------------------------------------- */

/* Suspends until the next whole frame of the current stream; its payload stays valid until the
 * next call. */
static int read_frame(simul_amqp_conn *c, simul_amqp_frame *f)
{
    for (;;) {
        if (c->rlen > c->roff) {
            ssize_t n = simul_amqp_frame_parse(c->rbuf + c->roff, c->rlen - c->roff, c->frame_max, f);
            if (n < 0)
                return (int)n;
            if (n > 0) {
                c->roff += (size_t)n;
                c->st.frames_in++;
                return 0;
            }
        }
        if (c->roff > 0) {
            memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
            c->rlen -= c->roff;
            c->roff = 0;
        }
        if (c->rcap < c->frame_max) {
            uint8_t *nb = realloc(c->rbuf, c->frame_max);
            if (!nb)
                return -ENOMEM;
            c->rbuf = nb;
            c->rcap = c->frame_max;
        }
        long n = simul_stream_read(c->s, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0) {
            if (n == -ECANCELED && c->hb_timeout)
                return -ETIMEDOUT;
            if (n == -ECANCELED && c->write_err)
                return c->write_err;
            return (int)n;
        }
        c->rlen += (size_t)n;
        c->last_read_ns = simul_now_ns();
    }
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Decodes a method frame into the pool. */
static int decode_method(simul_amqp_conn *c, const simul_amqp_frame *f, uint32_t *id, void **args)
{
    *id = get32(f->payload);
    amqp_bytes_t enc = {f->size - 4, (void *)(f->payload + 4)};
    int rc = amqp_decode_method(*id, &c->pool, enc, args);
    return rc == AMQP_STATUS_OK ? 0 : -EPROTO;
}

/* ---- the handshake ------------------------------------------------------------------------- */

/* Next method frame on channel 0 during the handshake (heartbeats skipped). */
static int hs_method(simul_amqp_conn *c, uint32_t *id, void **args)
{
    for (;;) {
        simul_amqp_frame f;
        int rc = read_frame(c, &f);
        if (rc < 0)
            return rc;
        if (f.type == SIMUL_AMQP_FRAME_HEARTBEAT)
            continue;
        if (f.type != SIMUL_AMQP_FRAME_METHOD || f.channel != 0)
            return -EPROTO;
        return decode_method(c, &f, id, args);
    }
}

static int hs_send(simul_amqp_conn *c, uint32_t id, void *args)
{
    c->out.len = 0;
    int rc = out_method(c, &c->out, 0, id, args);
    if (rc == 0)
        rc = simul_stream_write(c->s, c->out.data, c->out.len);
    c->out.len = 0;
    return rc;
}

/* Whether the space-separated list offers mech. */
static bool mechanism_offered(amqp_bytes_t list, const char *mech)
{
    size_t n = strlen(mech), i = 0;
    const char *p = list.bytes;
    while (i < list.len) {
        size_t j = i;
        while (j < list.len && p[j] != ' ')
            j++;
        if (j - i == n && memcmp(p + i, mech, n) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

static int handshake(simul_amqp_conn *c)
{
    static const uint8_t header[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
    int rc = simul_stream_write(c->s, header, 8);
    if (rc < 0)
        return rc;
    c->frame_max = DEFAULT_FRAME_MAX; /* bound on what the broker sends before tune */
    uint32_t id;
    void *args;
    recycle_amqp_pool(&c->pool);
    /* A broker that does not speak 0-9-1 answers with its own header: not a frame. */
    rc = hs_method(c, &id, &args);
    if (rc < 0)
        return rc == -ECONNRESET ? -ECONNRESET : rc;
    if (id != AMQP_CONNECTION_START_METHOD)
        return -EPROTO;
    amqp_connection_start_t *st = args;
    if (st->version_major != 0 || st->version_minor != 9)
        return -EPROTO;
    const char *mech = c->o.sasl_external ? "EXTERNAL" : "PLAIN";
    if (!mechanism_offered(st->mechanisms, mech))
        return -EPROTONOSUPPORT;
    /* client properties, capabilities first */
    amqp_table_entry_t caps[6];
    const char *capnames[6] = {"publisher_confirms", "consumer_cancel_notify", "connection.blocked",
                               "basic.nack", "exchange_exchange_bindings",
                               "authentication_failure_close"};
    for (int i = 0; i < 6; i++) {
        caps[i].key = amqp_cstring_bytes(capnames[i]);
        caps[i].value.kind = AMQP_FIELD_KIND_BOOLEAN;
        caps[i].value.value.boolean = 1;
    }
    amqp_table_entry_t props[5];
    int np = 0;
    props[np].key = amqp_cstring_bytes("product");
    props[np].value.kind = AMQP_FIELD_KIND_UTF8;
    props[np++].value.value.bytes = amqp_cstring_bytes("simul-amqp");
    props[np].key = amqp_cstring_bytes("platform");
    props[np].value.kind = AMQP_FIELD_KIND_UTF8;
    props[np++].value.value.bytes = amqp_cstring_bytes("C (simul)");
    props[np].key = amqp_cstring_bytes("capabilities");
    props[np].value.kind = AMQP_FIELD_KIND_TABLE;
    props[np].value.value.table.num_entries = 6;
    props[np++].value.value.table.entries = caps;
    if (c->conn_name) {
        props[np].key = amqp_cstring_bytes("connection_name");
        props[np].value.kind = AMQP_FIELD_KIND_UTF8;
        props[np++].value.value.bytes = amqp_cstring_bytes(c->conn_name);
    }
    size_t ul = strlen(c->user), pl = strlen(c->password);
    char *resp = malloc(ul + pl + 2);
    if (!resp)
        return -ENOMEM;
    resp[0] = 0;
    memcpy(resp + 1, c->user, ul);
    resp[1 + ul] = 0;
    memcpy(resp + 2 + ul, c->password, pl);
    size_t resp_len = c->o.sasl_external ? 0 : ul + pl + 2; /* EXTERNAL: an empty response */
    amqp_connection_start_ok_t so;
    memset(&so, 0, sizeof so);
    so.client_properties.num_entries = np;
    so.client_properties.entries = props;
    so.mechanism = amqp_cstring_bytes(mech);
    so.response.len = resp_len;
    so.response.bytes = resp;
    so.locale = amqp_cstring_bytes("en_US");
    rc = hs_send(c, AMQP_CONNECTION_START_OK_METHOD, &so);
    free(resp);
    if (rc < 0)
        return rc;
    recycle_amqp_pool(&c->pool);
    rc = hs_method(c, &id, &args);
    if (rc == -ECONNRESET)
        return -EACCES; /* brokers without authentication_failure_close just hang up */
    if (rc < 0)
        return rc;
    if (id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *cl = args;
        return cl->reply_code == 403 ? -EACCES : -ECONNABORTED;
    }
    if (id != AMQP_CONNECTION_TUNE_METHOD)
        return -EPROTO;
    amqp_connection_tune_t *tu = args;
    /* Negotiation: the lower non-zero value of each side. */
    uint32_t fm = c->o.frame_max ? c->o.frame_max : DEFAULT_FRAME_MAX;
    if (tu->frame_max && tu->frame_max < fm)
        fm = tu->frame_max;
    if (fm < SIMUL_AMQP_FRAME_MIN)
        fm = SIMUL_AMQP_FRAME_MIN;
    uint16_t cm = c->o.channel_max ? c->o.channel_max : DEFAULT_CHANNEL_MAX;
    if (tu->channel_max && tu->channel_max < cm)
        cm = tu->channel_max;
    uint16_t hb;
    if (c->o.heartbeat < 0)
        hb = 0;
    else if (c->o.heartbeat == 0)
        hb = tu->heartbeat;
    else {
        double want = c->o.heartbeat < 1 ? 1 : c->o.heartbeat;
        hb = want > 65535 ? 65535 : (uint16_t)want;
        if (tu->heartbeat && tu->heartbeat < hb)
            hb = tu->heartbeat;
    }
    amqp_connection_tune_ok_t to = {cm, fm, hb};
    rc = hs_send(c, AMQP_CONNECTION_TUNE_OK_METHOD, &to);
    if (rc < 0)
        return rc;
    amqp_connection_open_t op;
    memset(&op, 0, sizeof op);
    op.virtual_host = amqp_cstring_bytes(c->vhost);
    op.capabilities = amqp_cstring_bytes("");
    rc = hs_send(c, AMQP_CONNECTION_OPEN_METHOD, &op);
    if (rc < 0)
        return rc;
    c->frame_max = fm;
    recycle_amqp_pool(&c->pool);
    rc = hs_method(c, &id, &args);
    if (rc < 0)
        return rc;
    if (id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *cl = args;
        free(c->close_text);
        c->close_text = bdup(cl->reply_text);
        c->close_code = cl->reply_code;
        return cl->reply_code == 403 || cl->reply_code == 530 ? -EACCES : -ECONNABORTED;
    }
    if (id != AMQP_CONNECTION_OPEN_OK_METHOD)
        return -EPROTO;
    if (cm != c->channel_max || !c->chans) {
        simul_amqp_channel **nc = calloc((size_t)cm + 1, sizeof *nc);
        if (!nc)
            return -ENOMEM;
        /* Channels are re-numbered at recovery: the old table is only a map of the old ids. */
        free(c->chans);
        c->chans = nc;
        c->last_id = 0;
    } else {
        memset(c->chans, 0, ((size_t)cm + 1) * sizeof *c->chans);
    }
    c->channel_max = cm;
    c->heartbeat = hb;
    return 0;
}

static int open_stream(simul_amqp_conn *c, simul_stream **out)
{
    if (c->o.connect_cb)
        return c->o.connect_cb(c->o.connect_arg, out);
    return simul_open_connection(c->host, c->port, out);
}

/* Suspends. One attempt: connect and handshake within the connect timeout. */
static int establish(simul_amqp_conn *c)
{
    simul_scope sc;
    int rc = simul_scope_timeout(&sc, c->o.connect_timeout);
    if (rc < 0)
        return rc;
    simul_stream *s = NULL;
    rc = open_stream(c, &s);
    if (rc == 0) {
        c->s = s;
        c->roff = c->rlen = 0;
        c->write_err = 0;
        c->hb_timeout = false;
        c->last_read_ns = c->last_write_ns = simul_now_ns();
        rc = handshake(c);
        if (rc < 0) {
            simul_stream_abort(c->s);
            simul_stream_close(c->s);
            c->s = NULL;
        }
    }
    if (simul_scope_end(&sc) == 1 && rc < 0)
        rc = -ETIMEDOUT;
    if (rc < 0)
        return rc;
    c->epoch++;
    c->st.connects++;
    c->blocked = false;
    simul_event_set(c->unblocked_ev);
    c->last_read_ns = c->last_write_ns = simul_now_ns();
    hb_arm(c);
    return 0;
}

/* ---- RPC records --------------------------------------------------------------------------- */

static rpc *rpc_new(void)
{
    rpc *k = calloc(1, sizeof *k);
    if (k && simul_event_new(&k->ev) < 0) {
        free(k);
        k = NULL;
    }
    return k;
}

static void rpc_free(rpc *k)
{
    if (!k)
        return;
    simul_event_free(k->ev);
    free(k->str);
    simul_amqp_message_free(k->msg);
    free(k);
}

static void rpc_complete(rpc *k, int result)
{
    if (k->abandoned) {
        rpc_free(k);
        return;
    }
    k->result = result;
    k->done = true;
    simul_event_set(k->ev);
}

static rpc *rpc_pop(simul_amqp_channel *ch)
{
    rpc *k = ch->head;
    if (k) {
        ch->head = k->next;
        if (!ch->head)
            ch->tail = NULL;
    }
    return k;
}

static void fail_rpcs(simul_amqp_channel *ch, int err)
{
    rpc *k;
    while ((k = rpc_pop(ch)))
        rpc_complete(k, err);
}

/* ---- channels: failure --------------------------------------------------------------------- */

/* Drops the content being assembled; a basic.get waiting for it fails with err. */
static void content_reset(simul_amqp_channel *ch, int err)
{
    if (ch->content_rpc) {
        rpc *r = ch->content_rpc;
        ch->content_rpc = NULL;
        rpc_complete(r, err);
    }
    simul_amqp_message_free(ch->msg);
    ch->msg = NULL;
    ch->content = CONTENT_NONE;
    ch->content_consumer = NULL;
    ch->content_rpc = NULL;
    free(ch->m.text);
    free(ch->m.exchange);
    free(ch->m.rkey);
    free(ch->m.ctag);
    memset(&ch->m, 0, sizeof ch->m);
}

/* Every unconfirmed publish gets err as its outcome. */
static void fail_confirms(simul_amqp_channel *ch, int err)
{
    if (!ch->confirm)
        return;
    for (uint64_t s = ch->done_upto; s < ch->next_seq; s++) {
        int *o = &ch->outcome[s % SIMUL_AMQP_CONFIRM_WINDOW];
        if (*o == OUT_PENDING) {
            *o = err;
            ch->c->st.lost++;
        }
    }
    ch->done_upto = ch->next_seq;
    ch->pending = 0;
    pulse(ch->confirm_ev);
}

static void consumer_end(simul_amqp_consumer *k, int why)
{
    if (k->end)
        return;
    k->end = why;
    simul_queue_shutdown(k->q, false, NULL);
}

/* The channel is gone for good (closed by an error, by us, or the connection without recovery):
 * its calls, confirms and consumers end with err. */
static void channel_fail(simul_amqp_channel *ch, int err, int state)
{
    simul_amqp_conn *c = ch->c;
    ch->state = state;
    if (ch->id && c->chans && c->chans[ch->id] == ch)
        c->chans[ch->id] = NULL;
    ch->id = 0;
    content_reset(ch, err);
    fail_rpcs(ch, err);
    fail_confirms(ch, err);
    for (simul_amqp_consumer *k = ch->consumers; k; k = k->next)
        consumer_end(k, err == -EREMOTEIO ? -EREMOTEIO : -ESHUTDOWN);
    if (ch->returns)
        simul_queue_shutdown(ch->returns, false, NULL);
}

/* ---- confirms ------------------------------------------------------------------------------ */

static void confirm_set(simul_amqp_channel *ch, uint64_t tag, bool multiple, int outcome)
{
    if (!ch->confirm)
        return;
    uint64_t seq = tag + ch->tag_offset;
    if (seq >= ch->next_seq || seq < ch->done_upto)
        return; /* not ours (or already settled): ignore */
    uint64_t from = multiple ? ch->done_upto : seq;
    for (uint64_t s = from; s <= seq; s++) {
        int *o = &ch->outcome[s % SIMUL_AMQP_CONFIRM_WINDOW];
        if (*o == OUT_PENDING) {
            *o = outcome;
            ch->pending--;
            if (outcome == OUT_ACK)
                ch->c->st.acked++;
            else
                ch->c->st.nacked++;
        }
    }
    while (ch->done_upto < ch->next_seq &&
           ch->outcome[ch->done_upto % SIMUL_AMQP_CONFIRM_WINDOW] != OUT_PENDING)
        ch->done_upto++;
    pulse(ch->confirm_ev);
}

/* ---- content: deliveries, returns, get-ok -------------------------------------------------- */

static size_t bsz(amqp_bytes_t b, amqp_flags_t flags, amqp_flags_t f)
{
    return (flags & f) ? b.len + 1 : 0;
}

static const char *bput(char **p, amqp_bytes_t b, amqp_flags_t flags, amqp_flags_t f)
{
    if (!(flags & f))
        return NULL;
    char *d = *p;
    if (b.len)
        memcpy(d, b.bytes, b.len);
    d[b.len] = 0;
    *p += b.len + 1;
    return d;
}

static const char *sput(char **p, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *d = *p;
    memcpy(d, s, n + 1);
    *p += n + 1;
    return d;
}

/* The content header: one allocation for the message, its strings and its body. */
static int content_header(simul_amqp_channel *ch, const simul_amqp_frame *f)
{
    simul_amqp_conn *c = ch->c;
    uint64_t size = (uint64_t)get32(f->payload + 4) << 32 | get32(f->payload + 8);
    if (size > c->o.max_message)
        return -EMSGSIZE;
    void *decoded = NULL;
    amqp_bytes_t enc = {f->size - 12, (void *)(f->payload + 12)};
    uint16_t cls = (uint16_t)(f->payload[0] << 8 | f->payload[1]);
    if (cls != AMQP_BASIC_CLASS || amqp_decode_properties(cls, &c->pool, enc, &decoded) != 0)
        return -EPROTO;
    amqp_basic_properties_t *bp = decoded;
    amqp_flags_t fl = bp->_flags;
    size_t need = sizeof(simul_amqp_message) + (size_t)size + 1;
    need += bsz(bp->content_type, fl, AMQP_BASIC_CONTENT_TYPE_FLAG) +
            bsz(bp->content_encoding, fl, AMQP_BASIC_CONTENT_ENCODING_FLAG) +
            bsz(bp->correlation_id, fl, AMQP_BASIC_CORRELATION_ID_FLAG) +
            bsz(bp->reply_to, fl, AMQP_BASIC_REPLY_TO_FLAG) +
            bsz(bp->expiration, fl, AMQP_BASIC_EXPIRATION_FLAG) +
            bsz(bp->message_id, fl, AMQP_BASIC_MESSAGE_ID_FLAG) +
            bsz(bp->type, fl, AMQP_BASIC_TYPE_FLAG) + bsz(bp->user_id, fl, AMQP_BASIC_USER_ID_FLAG) +
            bsz(bp->app_id, fl, AMQP_BASIC_APP_ID_FLAG);
    size_t nh = 0;
    if (fl & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < bp->headers.num_entries; i++) {
            amqp_table_entry_t *e = &bp->headers.entries[i];
            need += sizeof(simul_amqp_arg) + e->key.len + 1;
            if (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES)
                need += e->value.value.bytes.len + 1;
            nh++;
        }
    }
    need += (ch->m.text ? strlen(ch->m.text) + 1 : 0) +
            (ch->m.exchange ? strlen(ch->m.exchange) + 1 : 0) +
            (ch->m.rkey ? strlen(ch->m.rkey) + 1 : 0) + (ch->m.ctag ? strlen(ch->m.ctag) + 1 : 0);
    need += 16; /* alignment of the header array */
    simul_amqp_message *m = calloc(1, need);
    if (!m)
        return -ENOMEM;
    char *p = (char *)(m + 1);
    m->body = p;
    m->len = (size_t)size;
    p += size + 1;
    uintptr_t al = ((uintptr_t)p + 15) & ~(uintptr_t)15;
    p = (char *)al;
    simul_amqp_arg *ha = (simul_amqp_arg *)p;
    p += nh * sizeof *ha;
    m->props.content_type = bput(&p, bp->content_type, fl, AMQP_BASIC_CONTENT_TYPE_FLAG);
    m->props.content_encoding = bput(&p, bp->content_encoding, fl, AMQP_BASIC_CONTENT_ENCODING_FLAG);
    m->props.correlation_id = bput(&p, bp->correlation_id, fl, AMQP_BASIC_CORRELATION_ID_FLAG);
    m->props.reply_to = bput(&p, bp->reply_to, fl, AMQP_BASIC_REPLY_TO_FLAG);
    m->props.expiration = bput(&p, bp->expiration, fl, AMQP_BASIC_EXPIRATION_FLAG);
    m->props.message_id = bput(&p, bp->message_id, fl, AMQP_BASIC_MESSAGE_ID_FLAG);
    m->props.type = bput(&p, bp->type, fl, AMQP_BASIC_TYPE_FLAG);
    m->props.user_id = bput(&p, bp->user_id, fl, AMQP_BASIC_USER_ID_FLAG);
    m->props.app_id = bput(&p, bp->app_id, fl, AMQP_BASIC_APP_ID_FLAG);
    if (fl & AMQP_BASIC_DELIVERY_MODE_FLAG)
        m->props.delivery_mode = bp->delivery_mode;
    if (fl & AMQP_BASIC_PRIORITY_FLAG)
        m->props.priority = bp->priority;
    if (fl & AMQP_BASIC_TIMESTAMP_FLAG)
        m->props.timestamp = bp->timestamp;
    if (nh) {
        size_t j = 0;
        for (int i = 0; i < bp->headers.num_entries; i++) {
            amqp_table_entry_t *e = &bp->headers.entries[i];
            ha[j].key = bput(&p, e->key, 1, 1);
            amqp_field_value_t *v = &e->value;
            switch (v->kind) {
            case AMQP_FIELD_KIND_UTF8:
            case AMQP_FIELD_KIND_BYTES: ha[j].str = bput(&p, v->value.bytes, 1, 1); break;
            case AMQP_FIELD_KIND_I8: ha[j].integer = v->value.i8; break;
            case AMQP_FIELD_KIND_U8: ha[j].integer = v->value.u8; break;
            case AMQP_FIELD_KIND_I16: ha[j].integer = v->value.i16; break;
            case AMQP_FIELD_KIND_U16: ha[j].integer = v->value.u16; break;
            case AMQP_FIELD_KIND_I32: ha[j].integer = v->value.i32; break;
            case AMQP_FIELD_KIND_U32: ha[j].integer = v->value.u32; break;
            case AMQP_FIELD_KIND_I64: ha[j].integer = v->value.i64; break;
            case AMQP_FIELD_KIND_U64:
            case AMQP_FIELD_KIND_TIMESTAMP: ha[j].integer = (int64_t)v->value.u64; break;
            case AMQP_FIELD_KIND_BOOLEAN: ha[j].integer = v->value.boolean; break;
            default: continue; /* other types are skipped */
            }
            j++;
        }
        m->props.headers = ha;
        m->props.nheaders = j;
    }
    m->reply_text = sput(&p, ch->m.text);
    m->exchange = sput(&p, ch->m.exchange);
    m->routing_key = sput(&p, ch->m.rkey);
    m->consumer_tag = sput(&p, ch->m.ctag);
    m->channel = ch;
    m->delivery_tag = ch->m.tag;
    m->redelivered = ch->m.redelivered;
    m->reply_code = ch->m.code;
    m->message_count = ch->m.count;
    m->epoch_ = ch->epoch;
    ch->msg = m;
    ch->body_size = size;
    ch->body_got = 0;
    return 0;
}

/* The message is whole: hand it to its consumer, the returns queue, or the get's caller. */
static void content_done(simul_amqp_channel *ch)
{
    simul_amqp_conn *c = ch->c;
    simul_amqp_message *m = ch->msg;
    ch->msg = NULL;
    int kind = ch->content;
    simul_amqp_consumer *k = ch->content_consumer;
    rpc *r = ch->content_rpc;
    ch->content_rpc = NULL;
    content_reset(ch, 0);
    if (kind == CONTENT_DELIVER) {
        c->st.delivered++;
        if (k && (k->flags & SIMUL_AMQP_NO_ACK))
            m->no_ack_ = true;
        if (k && !k->end && simul_queue_put_nowait(k->q, m) == 0)
            return;
        /* No one takes it (the consumer is gone): give it back to the queue. */
        if (!k || !(k->flags & SIMUL_AMQP_NO_ACK))
            simul_amqp_reject(m, SIMUL_AMQP_REQUEUE);
        simul_amqp_message_free(m);
    } else if (kind == CONTENT_RETURN) {
        c->st.returned++;
        if (ch->returns) {
            if (simul_queue_full(ch->returns)) {
                void *old = NULL;
                if (simul_queue_get_nowait(ch->returns, &old) == 0)
                    simul_amqp_message_free(old);
            }
            if (simul_queue_put_nowait(ch->returns, m) == 0)
                return;
        }
        simul_amqp_message_free(m);
    } else if (kind == CONTENT_GET) {
        c->st.delivered++;
        if (r) {
            r->msg = m;
            rpc_complete(r, 0);
        } else {
            simul_amqp_message_free(m);
        }
    } else {
        simul_amqp_message_free(m);
    }
}

static simul_amqp_consumer *consumer_find(simul_amqp_channel *ch, amqp_bytes_t tag)
{
    for (simul_amqp_consumer *k = ch->consumers; k; k = k->next)
        if (k->tag && strlen(k->tag) == tag.len && memcmp(k->tag, tag.bytes, tag.len) == 0)
            return k;
    return NULL;
}

static int content_begin(simul_amqp_channel *ch, int kind, uint64_t tag, bool redelivered,
                         amqp_bytes_t exchange, amqp_bytes_t rkey)
{
    ch->content = kind;
    ch->m.tag = tag;
    ch->m.redelivered = redelivered;
    ch->m.exchange = bdup(exchange);
    ch->m.rkey = bdup(rkey);
    return ch->m.exchange && ch->m.rkey ? 0 : -ENOMEM;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static void send_close_ok(simul_amqp_conn *c, uint16_t chan, uint32_t id)
{
    amqp_channel_close_ok_t ok = {0};
    if (out_method(c, &c->out, chan, id, &ok) == 0)
        wake_writer(c);
}

static int channel_method(simul_amqp_conn *c, simul_amqp_channel *ch, uint32_t id, void *args)
{
    switch (id) {
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *cl = args;
        free(ch->err_text);
        ch->err_text = bdup(cl->reply_text);
        ch->err_code = cl->reply_code;
        send_close_ok(c, ch->id, AMQP_CHANNEL_CLOSE_OK_METHOD);
        channel_fail(ch, -EREMOTEIO, CH_FAILED);
        return 0;
    }
    case AMQP_BASIC_DELIVER_METHOD: {
        amqp_basic_deliver_t *d = args;
        if (ch->content != CONTENT_NONE)
            return -EPROTO;
        ch->content_consumer = consumer_find(ch, d->consumer_tag);
        ch->m.ctag = bdup(d->consumer_tag);
        return content_begin(ch, CONTENT_DELIVER, d->delivery_tag, d->redelivered, d->exchange,
                             d->routing_key);
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *r = args;
        if (ch->content != CONTENT_NONE)
            return -EPROTO;
        ch->m.code = r->reply_code;
        ch->m.text = bdup(r->reply_text);
        return content_begin(ch, CONTENT_RETURN, 0, false, r->exchange, r->routing_key);
    }
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = args;
        confirm_set(ch, a->delivery_tag, a->multiple, OUT_ACK);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *a = args;
        confirm_set(ch, a->delivery_tag, a->multiple, -EBADMSG);
        return 0;
    }
    case AMQP_BASIC_CANCEL_METHOD: {
        /* The broker cancelled a consumer: its queue was deleted (or its node went down). */
        amqp_basic_cancel_t *cn = args;
        simul_amqp_consumer *k = consumer_find(ch, cn->consumer_tag);
        if (k) {
            k->server_cancelled = true;
            consumer_end(k, -EIDRM);
        }
        if (!cn->nowait) {
            amqp_basic_cancel_ok_t ok = {cn->consumer_tag};
            if (out_method(c, &c->out, ch->id, AMQP_BASIC_CANCEL_OK_METHOD, &ok) == 0)
                wake_writer(c);
        }
        return 0;
    }
    default:
        break;
    }
    /* A reply: it belongs to the head of the channel's FIFO. */
    rpc *k = ch->head;
    if (!k)
        return -EPROTO;
    if (id != k->expect[0] && id != k->expect[1])
        return -EPROTO;
    rpc_pop(ch);
    k->reply_id = id;
    switch (id) {
    case AMQP_QUEUE_DECLARE_OK_METHOD: {
        amqp_queue_declare_ok_t *ok = args;
        k->str = bdup(ok->queue);
        k->n1 = ok->message_count;
        k->n2 = ok->consumer_count;
        break;
    }
    case AMQP_QUEUE_PURGE_OK_METHOD:
        k->n1 = ((amqp_queue_purge_ok_t *)args)->message_count;
        break;
    case AMQP_QUEUE_DELETE_OK_METHOD:
        k->n1 = ((amqp_queue_delete_ok_t *)args)->message_count;
        break;
    case AMQP_BASIC_CONSUME_OK_METHOD:
        if (k->consumer && !k->consumer->tag && !k->abandoned) {
            k->consumer->tag = bdup(((amqp_basic_consume_ok_t *)args)->consumer_tag);
        } else if (k->abandoned) {
            /* Its caller left (cancel, deadline): nobody would take the deliveries. */
            amqp_basic_cancel_t bc = {((amqp_basic_consume_ok_t *)args)->consumer_tag, 1};
            if (out_method(c, &c->out, ch->id, AMQP_BASIC_CANCEL_METHOD, &bc) == 0)
                wake_writer(c);
        }
        break;
    case AMQP_BASIC_GET_OK_METHOD: {
        amqp_basic_get_ok_t *g = args;
        if (ch->content != CONTENT_NONE) {
            rpc_complete(k, -EPROTO);
            return -EPROTO;
        }
        ch->m.count = g->message_count;
        ch->content_rpc = k->abandoned ? NULL : k;
        if (k->abandoned)
            rpc_free(k);
        return content_begin(ch, CONTENT_GET, g->delivery_tag, g->redelivered, g->exchange,
                             g->routing_key);
    }
    case AMQP_CHANNEL_CLOSE_OK_METHOD:
        break;
    default:
        break;
    }
    rpc_complete(k, 0);
    return 0;
}

/* One frame from the broker. A negative return fails the connection. */
static int dispatch(simul_amqp_conn *c, const simul_amqp_frame *f)
{
    if (f->type == SIMUL_AMQP_FRAME_HEARTBEAT) {
        c->st.heartbeats_in++;
        return 0;
    }
    if (f->channel == 0) {
        if (f->type != SIMUL_AMQP_FRAME_METHOD)
            return -EPROTO;
        recycle_amqp_pool(&c->pool);
        uint32_t id;
        void *args;
        int rc = decode_method(c, f, &id, &args);
        if (rc < 0)
            return rc;
        switch (id) {
        case AMQP_CONNECTION_CLOSE_METHOD: {
            amqp_connection_close_t *cl = args;
            free(c->close_text);
            c->close_text = bdup(cl->reply_text);
            c->close_code = cl->reply_code;
            /* close-ok goes out now: the connection is dropped before the writer would run. */
            static const uint8_t ok[12] = {1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 51, 0xCE};
            if (c->s)
                simul_stream_write(c->s, ok, sizeof ok);
            return -ECONNABORTED;
        }
        case AMQP_CONNECTION_CLOSE_OK_METHOD:
            c->close_ok = true;
            simul_event_set(c->closeok_ev);
            return -ESHUTDOWN;
        case AMQP_CONNECTION_BLOCKED_METHOD:
            c->blocked = true;
            simul_event_clear(c->unblocked_ev);
            return 0;
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            c->blocked = false;
            simul_event_set(c->unblocked_ev);
            return 0;
        default:
            return -EPROTO;
        }
    }
    simul_amqp_channel *ch = f->channel <= c->channel_max ? c->chans[f->channel] : NULL;
    if (!ch)
        return 0; /* a channel we closed: late frames are dropped */
    if (f->type == SIMUL_AMQP_FRAME_METHOD) {
        recycle_amqp_pool(&c->pool);
        uint32_t id;
        void *args;
        int rc = decode_method(c, f, &id, &args);
        if (rc < 0)
            return rc;
        if (ch->state == CH_CLOSING && id != AMQP_CHANNEL_CLOSE_OK_METHOD &&
            id != AMQP_CHANNEL_CLOSE_METHOD)
            return 0; /* closing: everything but the close handshake is dropped (spec 2.3.5) */
        return channel_method(c, ch, id, args);
    }
    if (ch->state == CH_CLOSING && ch->content == CONTENT_NONE)
        return 0; /* the content of a method dropped while closing */
    if (f->type == SIMUL_AMQP_FRAME_HEADER) {
        if (ch->content == CONTENT_NONE || ch->msg)
            return -EPROTO;
        recycle_amqp_pool(&c->pool);
        int rc = content_header(ch, f);
        if (rc < 0)
            return rc;
        if (ch->body_size == 0)
            content_done(ch);
        return 0;
    }
    /* body */
    if (!ch->msg || ch->body_got + f->size > ch->body_size)
        return -EPROTO;
    memcpy((char *)ch->msg->body + ch->body_got, f->payload, f->size);
    ch->body_got += f->size;
    if (ch->body_got == ch->body_size)
        content_done(ch);
    return 0;
}

/* ---- connection loss and recovery ---------------------------------------------------------- */

static void conn_drop(simul_amqp_conn *c, int err)
{
    if (c->open && !c->closing)
        c->st.failures++;
    c->open = false;
    simul_event_clear(c->ready_ev);
    hb_stop(c);
    c->out.len = 0;
    c->blocked = false;
    simul_event_set(c->unblocked_ev); /* blocked publishers go on to see the loss */
    for (simul_amqp_channel *ch = c->channels; ch; ch = ch->next) {
        content_reset(ch, err);
        fail_rpcs(ch, err);
        fail_confirms(ch, err);
        if (ch->state == CH_OPEN || ch->state == CH_OPENING || ch->state == CH_DOWN) {
            ch->state = CH_DOWN;
            ch->id = 0;
        } else if (ch->state == CH_CLOSING) {
            ch->state = CH_FAILED;
            ch->id = 0;
        }
    }
    if (c->chans)
        memset(c->chans, 0, ((size_t)c->channel_max + 1) * sizeof *c->chans);
    if (c->s) {
        simul_stream_abort(c->s);
        if (c->in_drain)
            c->dead_s = c->s; /* the writer frees it when its drain returns */
        else
            simul_stream_close(c->s);
        c->s = NULL;
    }
    c->roff = c->rlen = 0;
    pulse(c->drained_ev);
}

static uint16_t alloc_id(simul_amqp_conn *c)
{
    for (unsigned i = 0; i < c->channel_max; i++) {
        uint16_t id = (uint16_t)(c->last_id % c->channel_max + 1);
        c->last_id = id;
        if (!c->chans[id])
            return id;
    }
    return 0;
}

/* Sends one method on ch and waits for its reply. gate: wait for the connection to be open
 * first (users); recovery passes false. On success *out is the completed record (the caller
 * frees it) when out is not NULL. */
static int rpc_call_k(simul_amqp_channel *ch, uint32_t id, void *args, uint32_t e1, uint32_t e2,
                      rpc **out, bool gate, simul_amqp_consumer *consumer);

static int rpc_call(simul_amqp_channel *ch, uint32_t id, void *args, uint32_t e1, uint32_t e2,
                    rpc **out, bool gate)
{
    return rpc_call_k(ch, id, args, e1, e2, out, gate, NULL);
}

static int rpc_call_k(simul_amqp_channel *ch, uint32_t id, void *args, uint32_t e1, uint32_t e2,
                      rpc **out, bool gate, simul_amqp_consumer *consumer)
{
    simul_amqp_conn *c = ch->c;
    if (out)
        *out = NULL;
    for (;;) {
        if (c->closing)
            return -ESHUTDOWN;
        if (c->dead)
            return -ENOTCONN;
        if (ch->state == CH_FAILED)
            return ch->err_text ? -EREMOTEIO : -ESHUTDOWN;
        if (!gate || c->open)
            break;
        int rc = simul_event_wait(c->ready_ev);
        if (rc < 0)
            return rc;
    }
    if (!c->s || !ch->id)
        return -ECONNRESET;
    rpc *k = rpc_new();
    if (!k)
        return -ENOMEM;
    k->expect[0] = e1;
    k->expect[1] = e2 ? e2 : e1;
    k->consumer = consumer;
    int rc = out_method(c, &c->out, ch->id, id, args);
    if (rc < 0) {
        rpc_free(k);
        return rc;
    }
    if (ch->tail)
        ch->tail->next = k;
    else
        ch->head = k;
    ch->tail = k;
    wake_writer(c);
    while (!k->done) {
        rc = simul_event_wait(k->ev);
        if (rc < 0 && !k->done) {
            k->abandoned = true; /* the reader frees it when its reply comes (or the loss) */
            k->consumer = NULL;  /* the caller drops it; consume-ok then cancels at once */
            return rc;
        }
    }
    rc = k->result;
    if (rc == 0 && out)
        *out = k;
    else
        rpc_free(k);
    return rc;
}

/* Opens ch on the current connection under a new id. */
static int channel_open_raw(simul_amqp_channel *ch, bool gate)
{
    simul_amqp_conn *c = ch->c;
    if (gate) {
        while (!c->open) {
            if (c->closing)
                return -ESHUTDOWN;
            if (c->dead)
                return -ENOTCONN;
            int rc = simul_event_wait(c->ready_ev);
            if (rc < 0)
                return rc;
        }
    }
    if (!c->s)
        return -ECONNRESET;
    uint16_t id = alloc_id(c);
    if (!id)
        return -ENFILE;
    ch->id = id;
    ch->state = CH_OPENING;
    ch->epoch++;
    c->chans[id] = ch;
    amqp_channel_open_t op = {amqp_cstring_bytes("")};
    int rc = rpc_call(ch, AMQP_CHANNEL_OPEN_METHOD, &op, AMQP_CHANNEL_OPEN_OK_METHOD, 0, NULL,
                      false);
    if (rc < 0) {
        if (ch->id && c->chans[ch->id] == ch)
            c->chans[ch->id] = NULL;
        ch->id = 0;
        if (ch->state == CH_OPENING)
            ch->state = CH_DOWN;
        return rc;
    }
    ch->state = CH_OPEN;
    return 0;
}

static int do_confirm_select(simul_amqp_channel *ch, bool gate)
{
    amqp_confirm_select_t cs = {0};
    int rc = rpc_call(ch, AMQP_CONFIRM_SELECT_METHOD, &cs, AMQP_CONFIRM_SELECT_OK_METHOD, 0, NULL,
                      gate);
    if (rc == 0)
        ch->tag_offset = ch->next_seq - 1; /* the broker numbers from 1 on each channel */
    return rc;
}

static int do_qos(simul_amqp_channel *ch, uint16_t prefetch, bool gate)
{
    amqp_basic_qos_t q = {0, prefetch, 0};
    return rpc_call(ch, AMQP_BASIC_QOS_METHOD, &q, AMQP_BASIC_QOS_OK_METHOD, 0, NULL, gate);
}

static int do_consume(simul_amqp_consumer *k, bool gate)
{
    amqp_basic_consume_t bc;
    memset(&bc, 0, sizeof bc);
    bc.queue = bytes(k->queue);
    bc.consumer_tag = bytes(k->tag);
    bc.no_ack = (k->flags & SIMUL_AMQP_NO_ACK) != 0;
    bc.exclusive = (k->flags & SIMUL_AMQP_EXCLUSIVE) != 0;
    return rpc_call_k(k->ch, AMQP_BASIC_CONSUME_METHOD, &bc, AMQP_BASIC_CONSUME_OK_METHOD, 0,
                      NULL, gate, k);
}

static int topo_declare(simul_amqp_channel *ch, topo *t, bool gate, rpc **out);
static void channel_destroy(simul_amqp_channel *ch);
static void consumer_destroy(simul_amqp_consumer *k);

static int reopen(simul_amqp_channel *ch)
{
    int rc = channel_open_raw(ch, false);
    if (rc == 0 && ch->has_qos)
        rc = do_qos(ch, ch->prefetch, false);
    if (rc == 0 && ch->confirm)
        rc = do_confirm_select(ch, false);
    return rc;
}

static void consumer_unlink(simul_amqp_consumer *k)
{
    for (simul_amqp_consumer **pp = &k->ch->consumers; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
}

/* Reopens one channel with its QoS, confirm mode and consumers. */
static int recover_channel(simul_amqp_conn *c, simul_amqp_channel *ch)
{
    int rc = reopen(ch);
    simul_amqp_consumer *k = ch->consumers;
    while (rc == 0 && k && !ch->doomed) {
        if (k->end) {
            k = k->next;
            continue;
        }
        c->recovering_k = k;
        rc = do_consume(k, false);
        c->recovering_k = NULL;
        simul_amqp_consumer *next = k->next;
        if (k->doomed) {
            if (rc == 0 && ch->id && c->s) {
                amqp_basic_cancel_t bc = {bytes(k->tag), 1};
                if (out_method(c, &c->out, ch->id, AMQP_BASIC_CANCEL_METHOD, &bc) == 0)
                    wake_writer(c);
            }
            consumer_unlink(k);
            consumer_destroy(k);
            rc = rc == -EREMOTEIO ? reopen(ch) : rc;
        } else if (rc == -EREMOTEIO) {
            /* Its queue is gone for good: say so to its reader, and reopen the channel. */
            k->server_cancelled = true;
            consumer_end(k, -EIDRM);
            free(ch->err_text);
            ch->err_text = NULL;
            ch->state = CH_DOWN;
            rc = reopen(ch);
        }
        k = next;
    }
    return ch->doomed ? 0 : rc;
}

/* Replays the topology on a channel of its own, then reopens every channel with its QoS,
 * confirm mode and consumers. Runs as a task while the reader reads the replies. */
static int recovery_main(void *arg)
{
    simul_amqp_conn *c = arg;
    simul_amqp_channel tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.c = c;
    tmp.state = CH_DOWN;
    int rc = 0;
    for (topo *t = c->topo; t; t = t->next) {
        if (tmp.state != CH_OPEN) {
            rc = channel_open_raw(&tmp, false);
            if (rc < 0)
                goto out;
        }
        rpc *r = NULL;
        char *old = t->kind == TOP_QUEUE && t->server_named ? strdup(t->name) : NULL;
        rc = topo_declare(&tmp, t, false, &r);
        if (rc == 0 && old && r && r->str && strcmp(old, r->str) != 0) {
            /* A server-named queue comes back under a new name: follow it everywhere. */
            free(t->name);
            t->name = r->str;
            r->str = NULL;
            for (topo *b = c->topo; b; b = b->next)
                if (b->kind == TOP_BIND && strcmp(b->queue, old) == 0) {
                    char *n = strdup(t->name);
                    if (n) {
                        free(b->queue);
                        b->queue = n;
                    }
                }
            for (simul_amqp_channel *ch = c->channels; ch; ch = ch->next)
                for (simul_amqp_consumer *k = ch->consumers; k; k = k->next)
                    if (strcmp(k->queue, old) == 0) {
                        char *n = strdup(t->name);
                        if (n) {
                            free(k->queue);
                            k->queue = n;
                        }
                    }
        }
        free(old);
        rpc_free(r);
        if (rc == -EREMOTEIO) {
            tmp.state = CH_DOWN; /* that declaration is refused now: go on with the rest */
            free(tmp.err_text);
            tmp.err_text = NULL;
            continue;
        }
        if (rc < 0)
            goto out;
    }
    /* Channels one at a time, each looked up afresh: the user may close others meanwhile. */
    for (;;) {
        simul_amqp_channel *ch = c->channels;
        while (ch && ch->state != CH_DOWN)
            ch = ch->next;
        if (!ch)
            break;
        c->recovering_ch = ch;
        rc = recover_channel(c, ch);
        c->recovering_ch = NULL;
        if (ch->doomed) {
            channel_destroy(ch);
            rc = 0;
        } else if (rc == 0 && ch->state == CH_DOWN) {
            rc = -ECONNRESET;
        }
        if (rc < 0)
            goto out;
    }
out:
    if (tmp.state == CH_OPEN && tmp.id && c->s) {
        amqp_channel_close_t cl;
        memset(&cl, 0, sizeof cl);
        cl.reply_code = 200;
        cl.reply_text = amqp_cstring_bytes("recovery done");
        tmp.state = CH_CLOSING;
        rpc_call(&tmp, AMQP_CHANNEL_CLOSE_METHOD, &cl, AMQP_CHANNEL_CLOSE_OK_METHOD, 0, NULL,
                 false);
    }
    if (tmp.id && c->chans && c->chans[tmp.id] == &tmp)
        c->chans[tmp.id] = NULL;
    fail_rpcs(&tmp, -ECANCELED);
    free(tmp.err_text);
    if (rc == 0 && c->s) {
        c->open = true;
        c->st.recoveries++;
        simul_event_set(c->ready_ev);
    } else if (c->s) {
        /* Recovery failed on a live connection: drop it and let the reader start over. */
        simul_stream_abort(c->s);
    }
    return rc;
}

static void end_all_consumers(simul_amqp_conn *c, int why)
{
    for (simul_amqp_channel *ch = c->channels; ch; ch = ch->next) {
        for (simul_amqp_consumer *k = ch->consumers; k; k = k->next)
            consumer_end(k, why);
        if (ch->returns)
            simul_queue_shutdown(ch->returns, false, NULL);
    }
}

static int reader_main(void *arg)
{
    simul_amqp_conn *c = arg;
    for (;;) {
        int rc;
        for (;;) {
            simul_amqp_frame f;
            rc = read_frame(c, &f);
            if (rc < 0)
                break;
            rc = dispatch(c, &f);
            if (rc < 0)
                break;
        }
        if (rc == -EMSGSIZE || rc == -EPROTO) {
            /* Tell the broker why before hanging up (501 FRAME_ERROR / 502 SYNTAX_ERROR). */
            amqp_connection_close_t cl;
            memset(&cl, 0, sizeof cl);
            cl.reply_code = rc == -EMSGSIZE ? 501 : 502;
            cl.reply_text = amqp_cstring_bytes(rc == -EMSGSIZE ? "frame or message too large"
                                                               : "malformed frame");
            if (c->s && out_method(c, &c->out, 0, AMQP_CONNECTION_CLOSE_METHOD, &cl) == 0)
                simul_stream_write(c->s, c->out.data, c->out.len);
            c->out.len = 0;
        }
        if (c->recovery) {
            simul_task_cancel(c->recovery);
            simul_task_join(c->recovery, NULL);
            c->recovery = NULL;
        }
        if (c->closing)
            break;
        conn_drop(c, rc);
        if (c->o.no_recovery) {
            c->dead = true;
            for (simul_amqp_channel *ch = c->channels; ch; ch = ch->next)
                if (ch->state == CH_DOWN)
                    channel_fail(ch, rc, CH_FAILED);
            end_all_consumers(c, -ESHUTDOWN);
            simul_event_set(c->ready_ev);
            break;
        }
        double d = c->o.reconnect_min;
        for (;;) {
            if (simul_sleep(d / 2 + rand01(c) * d / 2) < 0 || c->closing)
                return 0;
            if (establish(c) == 0)
                break;
            if (c->closing)
                return 0;
            d = d * 2 < c->o.reconnect_max ? d * 2 : c->o.reconnect_max;
        }
        wake_writer(c);
        simul_task_opts to = {.name = "amqp-recovery", .stack_size = 0};
        if (simul_task_spawn(&c->recovery, recovery_main, c, &to) < 0) {
            c->recovery = NULL;
            simul_stream_abort(c->s);
        }
    }
    return 0;
}

/* ---- public: connect, close ---------------------------------------------------------------- */

static void topo_free(topo *t)
{
    free(t->name);
    free(t->type);
    free(t->queue);
    free(t->exchange);
    free(t->rkey);
    args_free(&t->args);
    free(t);
}

static void consumer_destroy(simul_amqp_consumer *k)
{
    simul_queue_free(k->q, (simul_queue_discard_cb)simul_amqp_message_free);
    free(k->tag);
    free(k->queue);
    free(k);
}

static void channel_destroy(simul_amqp_channel *ch)
{
    simul_amqp_conn *c = ch->c;
    for (simul_amqp_channel **pp = &c->channels; *pp; pp = &(*pp)->next)
        if (*pp == ch) {
            *pp = ch->next;
            break;
        }
    if (ch->id && c->chans && c->chans[ch->id] == ch)
        c->chans[ch->id] = NULL;
    content_reset(ch, -ECANCELED);
    fail_rpcs(ch, -ECANCELED);
    while (ch->consumers) {
        simul_amqp_consumer *k = ch->consumers;
        ch->consumers = k->next;
        consumer_destroy(k);
    }
    if (ch->returns)
        simul_queue_free(ch->returns, (simul_queue_discard_cb)simul_amqp_message_free);
    simul_event_free(ch->confirm_ev);
    free(ch->outcome);
    free(ch->err_text);
    free(ch);
}

static void conn_free(simul_amqp_conn *c)
{
    while (c->channels)
        channel_destroy(c->channels);
    while (c->topo) {
        topo *t = c->topo;
        c->topo = t->next;
        topo_free(t);
    }
    simul_event_free(c->out_ev);
    simul_event_free(c->drained_ev);
    simul_event_free(c->ready_ev);
    simul_event_free(c->unblocked_ev);
    simul_event_free(c->idle_ev);
    simul_event_free(c->closeok_ev);
    empty_amqp_pool(&c->pool);
    outbuf_free(&c->out);
    outbuf_free(&c->wout);
    free(c->chans);
    free(c->rbuf);
    free(c->host);
    free(c->port);
    free(c->user);
    free(c->password);
    free(c->vhost);
    free(c->conn_name);
    free(c->close_text);
    free(c);
}

int simul_amqp_connect(const simul_amqp_opts *opts, simul_amqp_conn **out)
{
    if (!opts || !out || opts->connect_timeout < 0 || opts->reconnect_min < 0 ||
        opts->reconnect_max < 0 || (opts->frame_max && opts->frame_max < SIMUL_AMQP_FRAME_MIN))
        return -EINVAL;
    *out = NULL;
    simul_amqp_url u;
    memset(&u, 0, sizeof u);
    u.heartbeat = -1;
    if (opts->url) {
        int rc = simul_amqp_url_parse(opts->url, &u);
        if (rc < 0)
            return rc;
        if (u.tls && !opts->connect_cb) {
            simul_amqp_url_free(&u);
            return -EPROTONOSUPPORT; /* amqps needs the caller's TLS connect_cb */
        }
    }
    simul_amqp_conn *c = calloc(1, sizeof *c);
    if (!c) {
        simul_amqp_url_free(&u);
        return -ENOMEM;
    }
    int err = 0;
    c->o = *opts;
    c->host = sdup(opts->host ? opts->host : u.host ? u.host : "127.0.0.1", &err);
    c->port = sdup(opts->port ? opts->port : u.port ? u.port : "5672", &err);
    c->user = sdup(opts->user ? opts->user : u.user ? u.user : "guest", &err);
    c->password = sdup(opts->password ? opts->password : u.password ? u.password : "guest", &err);
    c->vhost = sdup(opts->vhost ? opts->vhost : u.vhost ? u.vhost : "/", &err);
    c->conn_name = sdup(opts->connection_name, &err);
    if (opts->url) {
        if (!opts->heartbeat && u.heartbeat >= 0)
            c->o.heartbeat = u.heartbeat > 0 ? u.heartbeat : -1;
        if (!opts->frame_max && u.frame_max)
            c->o.frame_max = u.frame_max;
        if (!opts->channel_max && u.channel_max)
            c->o.channel_max = u.channel_max;
        if (!opts->connect_timeout && u.connect_timeout > 0)
            c->o.connect_timeout = u.connect_timeout;
    }
    simul_amqp_url_free(&u);
    if (c->o.heartbeat == 0)
        c->o.heartbeat = 60;
    if (c->o.connect_timeout == 0)
        c->o.connect_timeout = 10;
    if (c->o.reconnect_min == 0)
        c->o.reconnect_min = 0.05;
    if (c->o.reconnect_max == 0)
        c->o.reconnect_max = 5;
    if (c->o.reconnect_max < c->o.reconnect_min)
        c->o.reconnect_max = c->o.reconnect_min;
    if (c->o.max_message == 0)
        c->o.max_message = 128u << 20;
    c->o.url = c->o.host = c->o.port = c->o.user = c->o.password = c->o.vhost = NULL;
    c->o.connection_name = NULL;
    c->rng = (uint64_t)simul_now_ns() ^ (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ull;
    init_amqp_pool(&c->pool, 16384);
    if (err < 0 || simul_event_new(&c->out_ev) < 0 || simul_event_new(&c->drained_ev) < 0 ||
        simul_event_new(&c->ready_ev) < 0 || simul_event_new(&c->unblocked_ev) < 0 ||
        simul_event_new(&c->idle_ev) < 0 || simul_event_new(&c->closeok_ev) < 0) {
        conn_free(c);
        return -ENOMEM;
    }
    int rc = establish(c);
    if (rc == 0) {
        simul_task_opts to = {.name = "amqp-reader", .stack_size = 0};
        rc = simul_task_spawn(&c->reader, reader_main, c, &to);
        if (rc == 0) {
            simul_task_opts wo = {.name = "amqp-writer", .stack_size = 0};
            rc = simul_task_spawn(&c->writer, writer_main, c, &wo);
            if (rc < 0) {
                simul_task_cancel(c->reader);
                simul_task_join(c->reader, NULL);
                c->reader = NULL;
            }
        }
        if (rc < 0)
            conn_drop(c, rc);
    }
    if (rc < 0) {
        hb_stop(c);
        conn_free(c);
        return rc;
    }
    c->open = true;
    simul_event_set(c->ready_ev);
    *out = c;
    return 0;
}

int simul_amqp_close(simul_amqp_conn *c)
{
    if (!c)
        return 0;
    simul_scope shield;
    bool shielded = simul_scope_shield(&shield) == 0;
    bool was_open = c->open;
    c->closing = true; /* from here the reader ends instead of recovering */
    if (was_open && c->s) {
        /* A polite close: connection.close, then close-ok (bounded). */
        amqp_connection_close_t cl;
        memset(&cl, 0, sizeof cl);
        cl.reply_code = 200;
        cl.reply_text = amqp_cstring_bytes("bye");
        if (out_method(c, &c->out, 0, AMQP_CONNECTION_CLOSE_METHOD, &cl) == 0) {
            wake_writer(c);
            simul_scope t;
            if (simul_scope_timeout(&t, 5) == 0) {
                simul_event_wait(c->closeok_ev);
                simul_scope_end(&t);
            }
        }
    }
    c->open = false;
    simul_event_set(c->ready_ev);
    simul_event_set(c->unblocked_ev);
    if (c->reader) {
        simul_task_cancel(c->reader);
        simul_task_join(c->reader, NULL);
        c->reader = NULL;
    }
    if (c->recovery) {
        simul_task_cancel(c->recovery);
        simul_task_join(c->recovery, NULL);
        c->recovery = NULL;
    }
    conn_drop(c, -ECANCELED);
    if (c->writer) {
        simul_task_cancel(c->writer);
        simul_task_join(c->writer, NULL);
        c->writer = NULL;
    }
    if (c->dead_s) {
        simul_stream_close(c->dead_s);
        c->dead_s = NULL;
    }
    for (simul_amqp_channel *ch = c->channels; ch; ch = ch->next)
        channel_fail(ch, -ECANCELED, CH_FAILED);
    end_all_consumers(c, -ESHUTDOWN);
    while (c->users > 0)
        simul_event_wait(c->idle_ev);
    if (shielded)
        simul_scope_end(&shield);
    conn_free(c);
    return 0;
}

bool simul_amqp_connected(const simul_amqp_conn *c)
{
    return c && c->open;
}

bool simul_amqp_blocked(const simul_amqp_conn *c)
{
    return c && c->blocked;
}

const char *simul_amqp_conn_error(const simul_amqp_conn *c, int *code)
{
    if (code)
        *code = c ? c->close_code : 0;
    return c ? c->close_text : NULL;
}

uint32_t simul_amqp_frame_max(const simul_amqp_conn *c)
{
    return c->frame_max;
}

uint16_t simul_amqp_channel_max(const simul_amqp_conn *c)
{
    return c->channel_max;
}

uint16_t simul_amqp_heartbeat(const simul_amqp_conn *c)
{
    return c->heartbeat;
}

void simul_amqp_get_stats(const simul_amqp_conn *c, simul_amqp_stats *out)
{
    *out = c->st;
}

/* ---- public: channels ---------------------------------------------------------------------- */

int simul_amqp_channel_open(simul_amqp_conn *c, simul_amqp_channel **out)
{
    if (!c || !out)
        return -EINVAL;
    *out = NULL;
    simul_amqp_channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->c = c;
    ch->state = CH_DOWN;
    ch->next_seq = 1;
    ch->base = ch->done_upto = 1;
    if (simul_event_new(&ch->confirm_ev) < 0 ||
        simul_queue_new(&ch->returns, RETURNS_BOUND) < 0) {
        simul_event_free(ch->confirm_ev);
        free(ch);
        return -ENOMEM;
    }
    ch->next = c->channels;
    c->channels = ch;
    enter(c);
    int rc = channel_open_raw(ch, true);
    leave(c);
    if (rc < 0) {
        channel_destroy(ch);
        return rc;
    }
    *out = ch;
    return 0;
}

int simul_amqp_channel_close(simul_amqp_channel *ch)
{
    if (!ch)
        return 0;
    simul_amqp_conn *c = ch->c;
    simul_scope shield;
    bool shielded = simul_scope_shield(&shield) == 0;
    enter(c);
    if (ch->state == CH_OPEN && c->open && c->s && ch->id) {
        amqp_channel_close_t cl;
        memset(&cl, 0, sizeof cl);
        cl.reply_code = 200;
        cl.reply_text = amqp_cstring_bytes("closed");
        ch->state = CH_CLOSING;
        /* Calls queued before ours fail now: their replies will not come. */
        fail_rpcs(ch, -ECANCELED);
        simul_scope t;
        if (simul_scope_timeout(&t, 10) == 0) {
            rpc_call(ch, AMQP_CHANNEL_CLOSE_METHOD, &cl, AMQP_CHANNEL_CLOSE_OK_METHOD, 0, NULL,
                     false);
            simul_scope_end(&t);
        }
    }
    channel_fail(ch, -ECANCELED, CH_FAILED);
    leave(c);
    if (shielded)
        simul_scope_end(&shield);
    if (c->recovering_ch == ch)
        ch->doomed = true; /* the recovery task is inside a call on it: it frees it */
    else
        channel_destroy(ch);
    return 0;
}

const char *simul_amqp_channel_error(const simul_amqp_channel *ch, int *code)
{
    if (code)
        *code = ch && ch->err_text ? ch->err_code : 0;
    return ch ? ch->err_text : NULL;
}

uint16_t simul_amqp_channel_id(const simul_amqp_channel *ch)
{
    return ch ? ch->id : 0;
}

/* ---- public: declarations ------------------------------------------------------------------ */

static int topo_declare(simul_amqp_channel *ch, topo *t, bool gate, rpc **out)
{
    simul_amqp_conn *c = ch->c;
    recycle_amqp_pool(&c->pool);
    amqp_table_t args = table_of(c, t->args.a, t->args.n);
    if (t->kind == TOP_EXCHANGE) {
        amqp_exchange_declare_t d;
        memset(&d, 0, sizeof d);
        d.exchange = bytes(t->name);
        d.type = bytes(t->type ? t->type : "direct");
        d.passive = (t->flags & SIMUL_AMQP_PASSIVE) != 0;
        d.durable = (t->flags & SIMUL_AMQP_DURABLE) != 0;
        d.auto_delete = (t->flags & SIMUL_AMQP_AUTO_DELETE) != 0;
        d.internal = (t->flags & SIMUL_AMQP_INTERNAL) != 0;
        d.arguments = args;
        return rpc_call(ch, AMQP_EXCHANGE_DECLARE_METHOD, &d, AMQP_EXCHANGE_DECLARE_OK_METHOD, 0,
                        out, gate);
    }
    if (t->kind == TOP_QUEUE) {
        amqp_queue_declare_t d;
        memset(&d, 0, sizeof d);
        d.queue = bytes(t->server_named ? "" : t->name);
        d.passive = (t->flags & SIMUL_AMQP_PASSIVE) != 0;
        d.durable = (t->flags & SIMUL_AMQP_DURABLE) != 0;
        d.exclusive = (t->flags & SIMUL_AMQP_EXCLUSIVE) != 0;
        d.auto_delete = (t->flags & SIMUL_AMQP_AUTO_DELETE) != 0;
        d.arguments = args;
        return rpc_call(ch, AMQP_QUEUE_DECLARE_METHOD, &d, AMQP_QUEUE_DECLARE_OK_METHOD, 0, out,
                        gate);
    }
    amqp_queue_bind_t b;
    memset(&b, 0, sizeof b);
    b.queue = bytes(t->queue);
    b.exchange = bytes(t->exchange);
    b.routing_key = bytes(t->rkey);
    b.arguments = args;
    return rpc_call(ch, AMQP_QUEUE_BIND_METHOD, &b, AMQP_QUEUE_BIND_OK_METHOD, 0, out, gate);
}

static void topo_add(simul_amqp_conn *c, topo *t)
{
    /* A declaration of the same thing replaces the older record (same name / same binding). */
    for (topo **pp = &c->topo; *pp; pp = &(*pp)->next) {
        topo *o = *pp;
        bool dup = o->kind == t->kind &&
                   (t->kind == TOP_BIND ? same(o->queue, t->queue) &&
                                              same(o->exchange, t->exchange) &&
                                              same(o->rkey, t->rkey)
                                        : same(o->name, t->name));
        if (dup) {
            *pp = o->next;
            topo_free(o);
            break;
        }
    }
    t->next = NULL;
    c->topo_tail = NULL;
    topo **pp = &c->topo;
    while (*pp)
        pp = &(*pp)->next;
    *pp = t;
}

static void topo_forget(simul_amqp_conn *c, int kind, const char *name)
{
    for (topo **pp = &c->topo; *pp;) {
        topo *o = *pp;
        bool hit = (o->kind == kind && same(o->name, name)) ||
                   (o->kind == TOP_BIND && kind == TOP_QUEUE && same(o->queue, name)) ||
                   (o->kind == TOP_BIND && kind == TOP_EXCHANGE && same(o->exchange, name));
        if (hit) {
            *pp = o->next;
            topo_free(o);
        } else {
            pp = &o->next;
        }
    }
}

static topo *topo_make(int kind, const char *name, const char *type, unsigned flags,
                       const simul_amqp_arg *args, size_t nargs)
{
    topo *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    int err = 0;
    t->kind = kind;
    t->name = sdup(name ? name : "", &err);
    t->type = sdup(type, &err);
    t->flags = flags;
    if (err || args_copy(&t->args, args, nargs) < 0) {
        topo_free(t);
        return NULL;
    }
    return t;
}

int simul_amqp_exchange_declare(simul_amqp_channel *ch, const char *name, const char *type,
                                unsigned flags, const simul_amqp_arg *args, size_t nargs)
{
    if (!ch || !name)
        return -EINVAL;
    topo *t = topo_make(TOP_EXCHANGE, name, type ? type : "direct", flags, args, nargs);
    if (!t)
        return -ENOMEM;
    enter(ch->c);
    int rc = topo_declare(ch, t, true, NULL);
    leave(ch->c);
    if (rc == 0 && !(flags & SIMUL_AMQP_PASSIVE))
        topo_add(ch->c, t);
    else
        topo_free(t);
    return rc;
}

int simul_amqp_exchange_delete(simul_amqp_channel *ch, const char *name, unsigned flags)
{
    if (!ch || !name)
        return -EINVAL;
    amqp_exchange_delete_t d;
    memset(&d, 0, sizeof d);
    d.exchange = bytes(name);
    d.if_unused = (flags & SIMUL_AMQP_IF_UNUSED) != 0;
    enter(ch->c);
    int rc = rpc_call(ch, AMQP_EXCHANGE_DELETE_METHOD, &d, AMQP_EXCHANGE_DELETE_OK_METHOD, 0, NULL,
                      true);
    leave(ch->c);
    if (rc == 0)
        topo_forget(ch->c, TOP_EXCHANGE, name);
    return rc;
}

int simul_amqp_queue_declare(simul_amqp_channel *ch, const char *name, unsigned flags,
                             const simul_amqp_arg *args, size_t nargs, char *name_out,
                             size_t name_cap, uint32_t *messages, uint32_t *consumers)
{
    if (!ch)
        return -EINVAL;
    topo *t = topo_make(TOP_QUEUE, name, NULL, flags, args, nargs);
    if (!t)
        return -ENOMEM;
    t->server_named = !name || !*name;
    rpc *r = NULL;
    enter(ch->c);
    int rc = topo_declare(ch, t, true, &r);
    leave(ch->c);
    if (rc == 0) {
        if (name_out && name_cap) {
            size_t n = strlen(r->str);
            if (n >= name_cap)
                n = name_cap - 1;
            memcpy(name_out, r->str, n);
            name_out[n] = 0;
        }
        if (messages)
            *messages = r->n1;
        if (consumers)
            *consumers = r->n2;
        if (t->server_named) {
            free(t->name);
            t->name = r->str;
            r->str = NULL;
        }
    }
    rpc_free(r);
    if (rc == 0 && !(flags & SIMUL_AMQP_PASSIVE))
        topo_add(ch->c, t);
    else
        topo_free(t);
    return rc;
}

static int bind_common(simul_amqp_channel *ch, bool bind, const char *queue, const char *exchange,
                       const char *rkey, const simul_amqp_arg *args, size_t nargs)
{
    if (!ch || !queue || !exchange)
        return -EINVAL;
    topo *t = topo_make(TOP_BIND, NULL, NULL, 0, args, nargs);
    int err = 0;
    if (t) {
        t->queue = sdup(queue, &err);
        t->exchange = sdup(exchange, &err);
        t->rkey = sdup(rkey ? rkey : "", &err);
    }
    if (!t || err) {
        if (t)
            topo_free(t);
        return -ENOMEM;
    }
    enter(ch->c);
    int rc;
    if (bind) {
        rc = topo_declare(ch, t, true, NULL);
    } else {
        recycle_amqp_pool(&ch->c->pool);
        amqp_queue_unbind_t u;
        memset(&u, 0, sizeof u);
        u.queue = bytes(queue);
        u.exchange = bytes(exchange);
        u.routing_key = bytes(t->rkey);
        u.arguments = table_of(ch->c, args, nargs);
        rc = rpc_call(ch, AMQP_QUEUE_UNBIND_METHOD, &u, AMQP_QUEUE_UNBIND_OK_METHOD, 0, NULL, true);
    }
    leave(ch->c);
    if (rc == 0 && bind) {
        topo_add(ch->c, t);
        return 0;
    }
    if (rc == 0) {
        for (topo **pp = &ch->c->topo; *pp; pp = &(*pp)->next) {
            topo *o = *pp;
            if (o->kind == TOP_BIND && same(o->queue, queue) && same(o->exchange, exchange) &&
                same(o->rkey, t->rkey)) {
                *pp = o->next;
                topo_free(o);
                break;
            }
        }
    }
    topo_free(t);
    return rc;
}

int simul_amqp_queue_bind(simul_amqp_channel *ch, const char *queue, const char *exchange,
                          const char *routing_key, const simul_amqp_arg *args, size_t nargs)
{
    return bind_common(ch, true, queue, exchange, routing_key, args, nargs);
}

int simul_amqp_queue_unbind(simul_amqp_channel *ch, const char *queue, const char *exchange,
                            const char *routing_key, const simul_amqp_arg *args, size_t nargs)
{
    return bind_common(ch, false, queue, exchange, routing_key, args, nargs);
}

int simul_amqp_queue_delete(simul_amqp_channel *ch, const char *queue, unsigned flags,
                            uint32_t *messages)
{
    if (!ch || !queue)
        return -EINVAL;
    amqp_queue_delete_t d;
    memset(&d, 0, sizeof d);
    d.queue = bytes(queue);
    d.if_unused = (flags & SIMUL_AMQP_IF_UNUSED) != 0;
    d.if_empty = (flags & SIMUL_AMQP_IF_EMPTY) != 0;
    rpc *r = NULL;
    enter(ch->c);
    int rc = rpc_call(ch, AMQP_QUEUE_DELETE_METHOD, &d, AMQP_QUEUE_DELETE_OK_METHOD, 0, &r, true);
    leave(ch->c);
    if (rc == 0) {
        if (messages)
            *messages = r->n1;
        topo_forget(ch->c, TOP_QUEUE, queue);
    }
    rpc_free(r);
    return rc;
}

int simul_amqp_queue_purge(simul_amqp_channel *ch, const char *queue, uint32_t *messages)
{
    if (!ch || !queue)
        return -EINVAL;
    amqp_queue_purge_t p;
    memset(&p, 0, sizeof p);
    p.queue = bytes(queue);
    rpc *r = NULL;
    enter(ch->c);
    int rc = rpc_call(ch, AMQP_QUEUE_PURGE_METHOD, &p, AMQP_QUEUE_PURGE_OK_METHOD, 0, &r, true);
    leave(ch->c);
    if (rc == 0 && messages)
        *messages = r->n1;
    rpc_free(r);
    return rc;
}

int simul_amqp_qos(simul_amqp_channel *ch, uint16_t prefetch)
{
    if (!ch)
        return -EINVAL;
    enter(ch->c);
    int rc = do_qos(ch, prefetch, true);
    leave(ch->c);
    if (rc == 0) {
        ch->prefetch = prefetch;
        ch->has_qos = true;
    }
    return rc;
}

/* ---- public: publishing -------------------------------------------------------------------- */

int simul_amqp_confirm_select(simul_amqp_channel *ch)
{
    if (!ch)
        return -EINVAL;
    if (ch->confirm)
        return 0;
    if (!ch->outcome) {
        ch->outcome = malloc(SIMUL_AMQP_CONFIRM_WINDOW * sizeof *ch->outcome);
        if (!ch->outcome)
            return -ENOMEM;
    }
    enter(ch->c);
    int rc = do_confirm_select(ch, true);
    leave(ch->c);
    if (rc == 0)
        ch->confirm = true;
    return rc;
}

/* Waits while publishing must not go on: broker blocked, output over its high-water mark, the
 * confirm window full, the connection down. */
static int publish_gate(simul_amqp_channel *ch)
{
    simul_amqp_conn *c = ch->c;
    bool counted = false;
    for (;;) {
        if (c->closing)
            return -ESHUTDOWN;
        if (c->dead)
            return -ENOTCONN;
        if (ch->state == CH_FAILED)
            return ch->err_text ? -EREMOTEIO : -ESHUTDOWN;
        int rc;
        if (c->open && ch->state != CH_OPEN) {
            return -ESHUTDOWN; /* being closed by another task */
        } else if (!c->open) {
            rc = simul_event_wait(c->ready_ev);
        } else if (c->blocked) {
            if (!counted) {
                c->st.blocked_waits++;
                counted = true;
            }
            rc = simul_event_wait(c->unblocked_ev);
        } else if (c->out.len + (c->s ? simul_stream_write_buffer_size(c->s) : 0) > OUT_HIGH) {
            rc = simul_event_wait(c->drained_ev);
        } else if (ch->confirm && ch->next_seq - ch->base >= SIMUL_AMQP_CONFIRM_WINDOW) {
            /* The oldest outcome makes room once it is settled. */
            if (ch->outcome[ch->base % SIMUL_AMQP_CONFIRM_WINDOW] != OUT_PENDING) {
                ch->base++;
                continue;
            }
            rc = simul_event_wait(ch->confirm_ev);
        } else {
            return 0;
        }
        if (rc < 0)
            return rc;
    }
}

int simul_amqp_publish(simul_amqp_channel *ch, const char *exchange, const char *routing_key,
                       const void *body, size_t len, const simul_amqp_props *props, unsigned flags,
                       uint64_t *seq)
{
    if (seq)
        *seq = 0;
    if (!ch || (len && !body))
        return -EINVAL;
    simul_amqp_conn *c = ch->c;
    enter(c);
    int rc = publish_gate(ch);
    if (rc == 0) {
        recycle_amqp_pool(&c->pool);
        amqp_basic_publish_t p;
        memset(&p, 0, sizeof p);
        p.exchange = bytes(exchange);
        p.routing_key = bytes(routing_key);
        p.mandatory = (flags & SIMUL_AMQP_MANDATORY) != 0;
        size_t start = c->out.len;
        rc = out_method(c, &c->out, ch->id, AMQP_BASIC_PUBLISH_METHOD, &p);
        if (rc == 0)
            rc = out_content(c, &c->out, ch->id, body, len, props);
        if (rc < 0) {
            c->out.len = start;
        } else {
            c->st.published++;
            if (ch->confirm) {
                uint64_t s = ch->next_seq++;
                ch->outcome[s % SIMUL_AMQP_CONFIRM_WINDOW] = OUT_PENDING;
                ch->pending++;
                if (seq)
                    *seq = s;
            }
            wake_writer(c);
        }
    }
    leave(c);
    return rc;
}

int simul_amqp_wait_confirm(simul_amqp_channel *ch, uint64_t seq)
{
    if (!ch || !ch->confirm || seq < ch->base || seq >= ch->next_seq)
        return -EINVAL;
    enter(ch->c);
    int rc;
    for (;;) {
        if (seq < ch->base) {
            rc = -EINVAL;
            break;
        }
        int o = ch->outcome[seq % SIMUL_AMQP_CONFIRM_WINDOW];
        if (o != OUT_PENDING) {
            rc = o;
            break;
        }
        rc = simul_event_wait(ch->confirm_ev);
        if (rc < 0)
            break;
    }
    leave(ch->c);
    return rc;
}

int simul_amqp_wait_confirms(simul_amqp_channel *ch, uint64_t *failed)
{
    if (failed)
        *failed = 0;
    if (!ch || !ch->confirm)
        return -EINVAL;
    uint64_t target = ch->next_seq;
    enter(ch->c);
    int rc = 0;
    while (ch->done_upto < target) {
        rc = simul_event_wait(ch->confirm_ev);
        if (rc < 0)
            break;
    }
    if (rc == 0) {
        uint64_t nfail = 0;
        int first = 0;
        for (uint64_t s = ch->base; s < target; s++) {
            int o = ch->outcome[s % SIMUL_AMQP_CONFIRM_WINDOW];
            if (o != OUT_ACK) {
                nfail++;
                if (!first)
                    first = o;
            }
        }
        if (ch->base < target)
            ch->base = target;
        if (failed)
            *failed = nfail;
        rc = first;
    }
    leave(ch->c);
    return rc;
}

uint64_t simul_amqp_unconfirmed(const simul_amqp_channel *ch)
{
    return ch ? ch->pending : 0;
}

void simul_amqp_message_free(simul_amqp_message *m)
{
    free(m);
}

int simul_amqp_next_return(simul_amqp_channel *ch, simul_amqp_message **out)
{
    if (!ch || !out)
        return -EINVAL;
    *out = NULL;
    void *item = NULL;
    enter(ch->c);
    int rc = simul_queue_get(ch->returns, &item);
    leave(ch->c);
    if (rc == 0)
        *out = item;
    return rc;
}

/* ---- public: consuming --------------------------------------------------------------------- */

int simul_amqp_consume(simul_amqp_channel *ch, const char *queue, const char *tag, unsigned flags,
                       simul_amqp_consumer **out)
{
    if (!ch || !queue || !out)
        return -EINVAL;
    *out = NULL;
    simul_amqp_consumer *k = calloc(1, sizeof *k);
    if (!k)
        return -ENOMEM;
    int err = 0;
    k->ch = ch;
    k->flags = flags;
    k->queue = sdup(queue, &err);
    k->tag = sdup(tag && *tag ? tag : NULL, &err);
    if (err || simul_queue_new(&k->q, 0) < 0) {
        free(k->queue);
        free(k->tag);
        free(k);
        return -ENOMEM;
    }
    /* Listed before consume-ok: deliveries may follow it in the same read. */
    k->next = ch->consumers;
    ch->consumers = k;
    enter(ch->c);
    int rc = do_consume(k, true);
    leave(ch->c);
    if (rc < 0) {
        for (simul_amqp_consumer **pp = &ch->consumers; *pp; pp = &(*pp)->next)
            if (*pp == k) {
                *pp = k->next;
                break;
            }
        consumer_destroy(k);
        return rc;
    }
    *out = k;
    return 0;
}

int simul_amqp_consumer_next(simul_amqp_consumer *k, simul_amqp_message **out)
{
    if (!k || !out)
        return -EINVAL;
    *out = NULL;
    if (k->reading)
        return -EBUSY;
    k->reading = true;
    void *item = NULL;
    enter(k->ch->c);
    int rc = simul_queue_get(k->q, &item);
    leave(k->ch->c);
    k->reading = false;
    if (rc == 0) {
        *out = item;
        return 0;
    }
    if (rc == -ESHUTDOWN && k->end)
        return k->end;
    return rc;
}

bool simul_amqp_consumer_cancelled(const simul_amqp_consumer *k)
{
    return k && k->server_cancelled;
}

const char *simul_amqp_consumer_tag(const simul_amqp_consumer *k)
{
    return k ? k->tag : NULL;
}

int simul_amqp_consumer_cancel(simul_amqp_consumer *k)
{
    if (!k)
        return -EINVAL;
    simul_amqp_channel *ch = k->ch;
    int rc = 0;
    if (!k->end && !k->cancel_sent && ch->state == CH_OPEN && ch->c->open) {
        k->cancel_sent = true;
        amqp_basic_cancel_t bc;
        memset(&bc, 0, sizeof bc);
        bc.consumer_tag = bytes(k->tag);
        enter(ch->c);
        rc = rpc_call(ch, AMQP_BASIC_CANCEL_METHOD, &bc, AMQP_BASIC_CANCEL_OK_METHOD, 0, NULL,
                      true);
        leave(ch->c);
    }
    consumer_end(k, -ESHUTDOWN);
    return rc;
}

void simul_amqp_consumer_free(simul_amqp_consumer *k)
{
    if (!k)
        return;
    simul_amqp_channel *ch = k->ch;
    simul_amqp_conn *c = ch->c;
    if (!k->end && !k->cancel_sent && ch->state == CH_OPEN && c->open && ch->id) {
        /* Cancel without waiting: the reply is dropped (basic.cancel with nowait). */
        amqp_basic_cancel_t bc;
        memset(&bc, 0, sizeof bc);
        bc.consumer_tag = bytes(k->tag);
        bc.nowait = 1;
        if (out_method(c, &c->out, ch->id, AMQP_BASIC_CANCEL_METHOD, &bc) == 0)
            wake_writer(c);
    }
    if (ch->content_consumer == k)
        ch->content_consumer = NULL;
    if (c->recovering_k == k) {
        /* The recovery task is consuming again with it: it unlinks and frees it. */
        k->doomed = true;
        consumer_end(k, -ESHUTDOWN);
    } else {
        consumer_unlink(k);
    }
    /* Queued deliveries go back to the broker now rather than when the channel closes. */
    void *item;
    while (simul_queue_get_nowait(k->q, &item) == 0) {
        simul_amqp_message *m = item;
        if (!(k->flags & SIMUL_AMQP_NO_ACK))
            simul_amqp_reject(m, SIMUL_AMQP_REQUEUE);
        simul_amqp_message_free(m);
    }
    if (!k->doomed)
        consumer_destroy(k);
}

static int ack_common(const simul_amqp_message *m, uint32_t id, unsigned flags)
{
    if (!m || !m->channel || !m->delivery_tag || m->no_ack_)
        return -EINVAL;
    simul_amqp_channel *ch = m->channel;
    simul_amqp_conn *c = ch->c;
    if (ch->state == CH_FAILED)
        return ch->err_text ? -EREMOTEIO : -ESHUTDOWN;
    if (m->epoch_ != ch->epoch || !c->open || ch->state != CH_OPEN || !ch->id)
        return -ESTALE;
    int rc;
    if (id == AMQP_BASIC_ACK_METHOD) {
        amqp_basic_ack_t a = {m->delivery_tag, (flags & SIMUL_AMQP_MULTIPLE) != 0};
        rc = out_method(c, &c->out, ch->id, id, &a);
    } else if (id == AMQP_BASIC_NACK_METHOD) {
        amqp_basic_nack_t a = {m->delivery_tag, (flags & SIMUL_AMQP_MULTIPLE) != 0,
                               (flags & SIMUL_AMQP_REQUEUE) != 0};
        rc = out_method(c, &c->out, ch->id, id, &a);
    } else {
        amqp_basic_reject_t a = {m->delivery_tag, (flags & SIMUL_AMQP_REQUEUE) != 0};
        rc = out_method(c, &c->out, ch->id, id, &a);
    }
    if (rc == 0)
        wake_writer(c);
    return rc;
}

int simul_amqp_ack(const simul_amqp_message *m, unsigned flags)
{
    return ack_common(m, AMQP_BASIC_ACK_METHOD, flags);
}

int simul_amqp_nack(const simul_amqp_message *m, unsigned flags)
{
    return ack_common(m, AMQP_BASIC_NACK_METHOD, flags);
}

int simul_amqp_reject(const simul_amqp_message *m, unsigned flags)
{
    return ack_common(m, AMQP_BASIC_REJECT_METHOD, flags);
}

int simul_amqp_get(simul_amqp_channel *ch, const char *queue, unsigned flags,
                   simul_amqp_message **out)
{
    if (!ch || !queue || !out)
        return -EINVAL;
    *out = NULL;
    amqp_basic_get_t g;
    memset(&g, 0, sizeof g);
    g.queue = bytes(queue);
    g.no_ack = (flags & SIMUL_AMQP_NO_ACK) != 0;
    rpc *r = NULL;
    enter(ch->c);
    int rc = rpc_call(ch, AMQP_BASIC_GET_METHOD, &g, AMQP_BASIC_GET_OK_METHOD,
                      AMQP_BASIC_GET_EMPTY_METHOD, &r, true);
    leave(ch->c);
    if (rc == 0) {
        if (r->reply_id == AMQP_BASIC_GET_EMPTY_METHOD) {
            rc = -ENOMSG;
        } else {
            *out = r->msg;
            (*out)->no_ack_ = g.no_ack != 0;
            r->msg = NULL;
        }
    }
    rpc_free(r);
    return rc;
}
