/* client.c — the AMQP connection: one reader task, one writer task, channels multiplexed on it.
 * The idea: every frame we send is queued without suspending (a publish is in the stream whole or
 * not at all) and the writer sends what a loop pass queued in one write; every reply is matched
 * by position to the head of its channel's FIFO of RPC records, so a caller that leaves (cancel,
 * deadline) only marks its record abandoned. Heartbeats and their check run on a timer, whatever
 * the tasks do; recovery replays a recorded topology on a fresh connection. */
#include <errno.h>
#include <stdarg.h>
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

#ifdef SIMUL_AMQP_HAVE_TLS
#include <simul/tls.h>
#endif

/* Records why the attempt failed (the first reason wins until the next attempt). */
static void set_why(simul_amqp_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_why(simul_amqp_conn *c, const char *fmt, ...)
{
    if (c->why[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
}

/* ---- small helpers ------------------------------------------------------------------------- */

amqp_bytes_t amqp__bytes(const char *s)
{
    amqp_bytes_t b = {s ? strlen(s) : 0, (void *)(s ? s : "")};
    return b;
}

char *amqp__bdup(amqp_bytes_t b)
{
    char *d = malloc(b.len + 1);
    if (d) {
        if (b.len)
            memcpy(d, b.bytes, b.len);
        d[b.len] = 0;
    }
    return d;
}

char *amqp__sdup(const char *s, int *err)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *err = -ENOMEM;
    return d;
}

bool amqp__same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static void pulse(simul_event *e)
{
    /* Wakes every waiter now; later waiters wait for the next pulse. */
    simul_event_set(e);
    simul_event_clear(e);
}

void amqp__enter(simul_amqp_conn *c)
{
    c->users++;
}

void amqp__leave(simul_amqp_conn *c)
{
    if (--c->users == 0 && c->closing)
        simul_event_set(c->idle_ev);
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

void amqp__wake_writer(simul_amqp_conn *c)
{
    simul_event_set(c->out_ev);
}

/* Appends a method frame; on failure nothing is appended. */
int amqp__out_method(simul_amqp_conn *c, outbuf *b, uint16_t chan, uint32_t id, void *args)
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
        if (c->frame_max && (uint64_t)n + 4 + SIMUL_AMQP_FRAME_OVERHEAD > c->frame_max)
            return -EMSGSIZE; /* arguments (a table) too big for one frame */
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

static int out_content(simul_amqp_conn *c, outbuf *b, uint16_t chan, const void *body, size_t len,
                       amqp_basic_properties_t *bpp);

static amqp_basic_properties_t props_of(simul_amqp_conn *c, const simul_amqp_props *p)
{
    (void)c;
    amqp_basic_properties_t bp;
    memset(&bp, 0, sizeof bp);
    if (!p)
        return bp;
#define STRPROP(field, flag)                                                                       \
    if (p->field) {                                                                                \
        bp._flags |= flag;                                                                         \
        bp.field = amqp__bytes(p->field);                                                          \
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
    return bp;
}

/* The headers to send: the typed table, then the argument list after it (a table of ours in
 * *tmp when both or the list alone are given: the caller frees it after encoding). */
static int headers_of(simul_amqp_conn *c, const simul_amqp_props *p, amqp_basic_properties_t *bp,
                      simul_amqp_table **tmp)
{
    *tmp = NULL;
    if (!p || (!p->header_table && !p->nheaders))
        return 0;
    const simul_amqp_table *t = p->header_table;
    if (p->nheaders) {
        int rc = p->header_table ? simul_amqp_table_copy(p->header_table, tmp)
                                 : simul_amqp_table_new(tmp);
        for (size_t i = 0; rc == 0 && i < p->nheaders; i++) {
            const simul_amqp_arg *a = &p->headers[i];
            const char *key = a->key ? a->key : "";
            if (a->value)
                rc = simul_amqp_table_set(*tmp, key, a->value);
            else if (a->str)
                rc = simul_amqp_table_set_string(*tmp, key, a->str);
            else
                rc = simul_amqp_table_set_int(*tmp, key, SIMUL_AMQP_T_I64, a->integer);
        }
        if (rc < 0)
            return rc;
        t = *tmp;
    }
    bp->_flags |= AMQP_BASIC_HEADERS_FLAG;
    return amqp__table_to_amqp(&c->pool, t, &bp->headers);
}

/* Appends a content header and the body frames (split at frame_max). */
int amqp__out_content(simul_amqp_conn *c, outbuf *b, uint16_t chan, const void *body, size_t len,
                      const simul_amqp_props *props)
{
    amqp_basic_properties_t bp = props_of(c, props);
    simul_amqp_table *tmp = NULL;
    int hrc = headers_of(c, props, &bp, &tmp);
    if (hrc < 0) {
        simul_amqp_table_free(tmp);
        return hrc;
    }
    int rc = out_content(c, b, chan, body, len, &bp);
    simul_amqp_table_free(tmp);
    return rc;
}

static int out_content(simul_amqp_conn *c, outbuf *b, uint16_t chan, const void *body, size_t len,
                       amqp_basic_properties_t *bpp)
{
    amqp_basic_properties_t bp = *bpp;
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
    if (n < 0 || (uint64_t)n + 12 + SIMUL_AMQP_FRAME_OVERHEAD > c->frame_max)
        return -EMSGSIZE; /* a content header must fit in one frame */
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
            amqp__wake_writer(c);
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
            ssize_t n =
                simul_amqp_frame_parse(c->rbuf + c->roff, c->rlen - c->roff, c->frame_max, f);
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
            if (n == -ECONNABORTED && c->hb_timeout)
                return -ETIMEDOUT;
            if (n == -ECONNABORTED && c->write_err)
                return c->write_err;
            return (int)n;
        }
        c->rlen += (size_t)n;
        c->last_read_ns = simul_now_ns();
    }
}

/* Decodes a method frame into the pool. */
int amqp__decode_method(simul_amqp_conn *c, const simul_amqp_frame *f, uint32_t *id, void **args)
{
    *id = get32(f->payload);
    if (amqp__method_guard(*id, f->payload + 4, f->size - 4) < 0)
        return -EPROTO;
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
        return amqp__decode_method(c, &f, id, args);
    }
}

static int hs_send(simul_amqp_conn *c, uint32_t id, void *args)
{
    c->out.len = 0;
    int rc = amqp__out_method(c, &c->out, 0, id, args);
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
    if (!mechanism_offered(st->mechanisms, mech)) {
        set_why(c, "the broker does not offer SASL %s (it offers: %.*s)%s", mech,
                (int)(st->mechanisms.len > 120 ? 120 : st->mechanisms.len),
                (const char *)st->mechanisms.bytes,
                c->o.sasl_external && !c->tls_now
                    ? "; EXTERNAL needs TLS with a client certificate"
                    : "");
        return -EPROTONOSUPPORT;
    }
    /* client properties, capabilities first */
    amqp_table_entry_t caps[6];
    const char *capnames[6] = {"publisher_confirms",         "consumer_cancel_notify",
                               "connection.blocked",         "basic.nack",
                               "exchange_exchange_bindings", "authentication_failure_close"};
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
    amqp_table_t client_props = {np, props};
    if (c->client_props) {
        /* Ours, then the user's (a key of ours the user sets is sent as the user's). */
        amqp_table_t user;
        if (amqp__table_to_amqp(&c->pool, c->client_props, &user) < 0)
            return -ENOMEM;
        amqp_table_entry_t *all =
            amqp_pool_alloc(&c->pool, ((size_t)np + (size_t)user.num_entries) * sizeof *all);
        if (!all)
            return -ENOMEM;
        int k = 0;
        for (int i = 0; i < np; i++) {
            bool overridden = false;
            for (int j = 0; j < user.num_entries; j++)
                if (user.entries[j].key.len == props[i].key.len &&
                    !memcmp(user.entries[j].key.bytes, props[i].key.bytes, props[i].key.len))
                    overridden = true;
            if (!overridden)
                all[k++] = props[i];
        }
        for (int j = 0; j < user.num_entries; j++)
            all[k++] = user.entries[j];
        client_props.num_entries = k;
        client_props.entries = all;
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
    so.client_properties = client_props;
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
    if (rc == -ECONNRESET) {
        set_why(c, "the broker hung up after the credentials (refused)");
        return -EACCES; /* brokers without authentication_failure_close just hang up */
    }
    if (rc < 0)
        return rc;
    if (id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *cl = args;
        set_why(c, "%u %.*s", cl->reply_code, (int)cl->reply_text.len,
                (const char *)cl->reply_text.bytes);
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
        c->close_text = amqp__bdup(cl->reply_text);
        c->close_code = cl->reply_code;
        set_why(c, "%u %s", cl->reply_code, c->close_text ? c->close_text : "");
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
    c->tls_now = false;
    if (c->o.connect_cb) {
        int rc = c->o.connect_cb(c->o.connect_arg, out);
        if (rc < 0)
            set_why(c, "connect_cb: %s", strerror(-rc));
#ifdef SIMUL_AMQP_HAVE_TLS
        else
            c->tls_now = simul_tls_is_tls(*out);
#endif
        return rc;
    }
    int rc = simul_open_connection(c->host, c->port, out);
    if (rc < 0) {
        set_why(c, "connect %s:%s: %s", c->host, c->port, strerror(-rc));
        return rc;
    }
#ifdef SIMUL_AMQP_HAVE_TLS
    if (c->tls) {
        rc = simul_tls_start_tls(*out, c->tls_cfg, c->tls_name);
        if (rc < 0) {
            const char *r = simul_tls_last_error(*out);
            set_why(c, "TLS to %s:%s: %s", c->host, c->port, r && *r ? r : strerror(-rc));
            simul_stream_abort(*out);
            simul_stream_close(*out);
            *out = NULL;
            return rc;
        }
        c->tls_now = true;
    }
#endif
    return 0;
}

#ifdef SIMUL_AMQP_HAVE_TLS
/* The TLS client configuration from the options (verification on unless told otherwise). */
static int tls_setup(simul_amqp_conn *c, const simul_amqp_opts *o)
{
    if (o->tls_config) {
        c->tls_cfg = o->tls_config;
        return 0;
    }
    int rc = simul_tls_config_new_client(&c->tls_cfg);
    if (rc < 0)
        return rc;
    c->tls_cfg_own = true;
    char why[200] = "";
    if (o->tls_ca_file) {
        rc = simul_tls_config_set_ca(c->tls_cfg, o->tls_ca_file, NULL, why, sizeof why);
        if (rc < 0) {
            set_why(c, "tls_ca_file %s: %s", o->tls_ca_file, why);
            return rc;
        }
    }
    if (o->tls_cert_file || o->tls_key_file) {
        if (!o->tls_cert_file || !o->tls_key_file) {
            set_why(c, "tls_cert_file and tls_key_file go together");
            return -EINVAL;
        }
        rc = simul_tls_config_set_cert(c->tls_cfg, o->tls_cert_file, o->tls_key_file, why,
                                       sizeof why);
        if (rc < 0) {
            set_why(c, "client certificate %s: %s", o->tls_cert_file, why);
            return rc;
        }
    }
    if (o->tls_insecure_skip_verify)
        simul_tls_config_insecure_skip_verify(c->tls_cfg);
    return 0;
}
#endif

/* Suspends. One attempt: connect and handshake within the connect timeout. */
static int establish(simul_amqp_conn *c)
{
    c->why[0] = 0;
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
#ifdef SIMUL_AMQP_HAVE_TLS
            const char *r = c->tls_now ? simul_tls_last_error(c->s) : NULL;
            if (r && *r)
                set_why(c, "TLS: %s", r); /* e.g. the broker refused our certificate */
#endif
            if (rc == -ECONNRESET)
                set_why(c, "%s:%s closed the connection during the AMQP handshake", c->host,
                        c->port);
            simul_stream_abort(c->s);
            simul_stream_close(c->s);
            c->s = NULL;
        }
    }
    if (simul_scope_end(&sc) == 1 && rc < 0) {
        rc = -ETIMEDOUT;
        c->why[0] = 0;
        set_why(c, "connect and handshake took over %g s", c->o.connect_timeout);
    }
    if (rc < 0) {
        set_why(c, "%s", strerror(-rc));
        return rc;
    }
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

void amqp__rpc_free(rpc *k)
{
    if (!k)
        return;
    simul_event_free(k->ev);
    free(k->str);
    simul_amqp_message_free(k->msg);
    free(k);
}

void amqp__rpc_complete(rpc *k, int result)
{
    if (k->abandoned) {
        amqp__rpc_free(k);
        return;
    }
    k->result = result;
    k->done = true;
    simul_event_set(k->ev);
}

rpc *amqp__rpc_pop(simul_amqp_channel *ch)
{
    rpc *k = ch->head;
    if (k) {
        ch->head = k->next;
        if (!ch->head)
            ch->tail = NULL;
    }
    return k;
}

void amqp__fail_rpcs(simul_amqp_channel *ch, int err)
{
    rpc *k;
    while ((k = amqp__rpc_pop(ch)))
        amqp__rpc_complete(k, err);
}

/* ---- channels: failure --------------------------------------------------------------------- */

/* Drops the content being assembled; a basic.get waiting for it fails with err. */
void amqp__content_reset(simul_amqp_channel *ch, int err)
{
    if (ch->content_rpc) {
        rpc *r = ch->content_rpc;
        ch->content_rpc = NULL;
        amqp__rpc_complete(r, err);
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

void amqp__resume(simul_amqp_conn *c)
{
    c->pause_k = NULL;
    simul_event_set(c->resume_ev);
}

void amqp__consumer_end(simul_amqp_consumer *k, int why)
{
    if (k->ch->c->pause_k == k)
        amqp__resume(k->ch->c); /* nobody will take its deliveries now */
    if (k->end)
        return;
    k->end = why;
    simul_queue_shutdown(k->q, false, NULL);
}

/* The channel is gone for good (closed by an error, by us, or the connection without recovery):
 * its calls, confirms and consumers end with err. */
void amqp__channel_fail(simul_amqp_channel *ch, int err, int state)
{
    simul_amqp_conn *c = ch->c;
    ch->state = state;
    if (ch->id && c->chans && c->chans[ch->id] == ch)
        c->chans[ch->id] = NULL;
    ch->id = 0;
    amqp__content_reset(ch, err);
    amqp__fail_rpcs(ch, err);
    fail_confirms(ch, err);
    for (simul_amqp_consumer *k = ch->consumers; k; k = k->next)
        amqp__consumer_end(k, err == -EREMOTEIO ? -EREMOTEIO : -ESHUTDOWN);
    if (ch->returns)
        simul_queue_shutdown(ch->returns, false, NULL);
}

/* ---- confirms ------------------------------------------------------------------------------ */

void amqp__confirm_set(simul_amqp_channel *ch, uint64_t tag, bool multiple, int outcome)
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
    if (c->pause_k)
        amqp__resume(c);
    for (simul_amqp_channel *ch = c->channels; ch; ch = ch->next) {
        amqp__content_reset(ch, err);
        amqp__fail_rpcs(ch, err);
        fail_confirms(ch, err);
        if (ch->tx && ch->tx_dirty && !ch->tx_lost)
            ch->tx_lost = err < 0 ? err : -ECONNRESET; /* the broker rolled it back */
        ch->tx_dirty = false;
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

int amqp__rpc_call(simul_amqp_channel *ch, uint32_t id, void *args, uint32_t e1, uint32_t e2,
                   rpc **out, bool gate)
{
    return amqp__rpc_call_k(ch, id, args, e1, e2, out, gate, NULL);
}

int amqp__rpc_call_k(simul_amqp_channel *ch, uint32_t id, void *args, uint32_t e1, uint32_t e2,
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
    int rc = amqp__out_method(c, &c->out, ch->id, id, args);
    if (rc < 0) {
        amqp__rpc_free(k);
        return rc;
    }
    if (ch->tail)
        ch->tail->next = k;
    else
        ch->head = k;
    ch->tail = k;
    amqp__wake_writer(c);
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
        amqp__rpc_free(k);
    return rc;
}

/* Opens ch on the current connection under a new id. */
int amqp__channel_open_raw(simul_amqp_channel *ch, bool gate)
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
    int rc = amqp__rpc_call(ch, AMQP_CHANNEL_OPEN_METHOD, &op, AMQP_CHANNEL_OPEN_OK_METHOD, 0, NULL,
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

int amqp__do_confirm_select(simul_amqp_channel *ch, bool gate)
{
    amqp_confirm_select_t cs = {0};
    int rc = amqp__rpc_call(ch, AMQP_CONFIRM_SELECT_METHOD, &cs, AMQP_CONFIRM_SELECT_OK_METHOD, 0,
                            NULL, gate);
    if (rc == 0)
        ch->tag_offset = ch->next_seq - 1; /* the broker numbers from 1 on each channel */
    return rc;
}

int amqp__do_qos(simul_amqp_channel *ch, uint16_t prefetch, bool gate)
{
    amqp_basic_qos_t q = {0, prefetch, 0};
    return amqp__rpc_call(ch, AMQP_BASIC_QOS_METHOD, &q, AMQP_BASIC_QOS_OK_METHOD, 0, NULL, gate);
}

int amqp__do_consume(simul_amqp_consumer *k, bool gate)
{
    amqp_basic_consume_t bc;
    memset(&bc, 0, sizeof bc);
    bc.queue = amqp__bytes(k->queue);
    bc.consumer_tag = amqp__bytes(k->tag);
    bc.no_ack = (k->flags & SIMUL_AMQP_NO_ACK) != 0;
    bc.exclusive = (k->flags & SIMUL_AMQP_EXCLUSIVE) != 0;
    return amqp__rpc_call_k(k->ch, AMQP_BASIC_CONSUME_METHOD, &bc, AMQP_BASIC_CONSUME_OK_METHOD, 0,
                            NULL, gate, k);
}

static int reopen(simul_amqp_channel *ch)
{
    int rc = amqp__channel_open_raw(ch, false);
    if (rc == 0 && ch->has_qos)
        rc = amqp__do_qos(ch, ch->prefetch, false);
    if (rc == 0 && ch->confirm)
        rc = amqp__do_confirm_select(ch, false);
    if (rc == 0 && ch->tx) {
        amqp_tx_select_t t = {0};
        rc = amqp__rpc_call(ch, AMQP_TX_SELECT_METHOD, &t, AMQP_TX_SELECT_OK_METHOD, 0, NULL,
                            false);
    }
    return rc;
}

void amqp__consumer_unlink(simul_amqp_consumer *k)
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
        rc = amqp__do_consume(k, false);
        c->recovering_k = NULL;
        simul_amqp_consumer *next = k->next;
        if (k->doomed) {
            if (rc == 0 && ch->id && c->s) {
                amqp_basic_cancel_t bc = {amqp__bytes(k->tag), 1};
                if (amqp__out_method(c, &c->out, ch->id, AMQP_BASIC_CANCEL_METHOD, &bc) == 0)
                    amqp__wake_writer(c);
            }
            amqp__consumer_unlink(k);
            amqp__consumer_destroy(k);
            rc = rc == -EREMOTEIO ? reopen(ch) : rc;
        } else if (rc == -EREMOTEIO) {
            /* Its queue is gone for good: say so to its reader, and reopen the channel. */
            k->server_cancelled = true;
            amqp__consumer_end(k, -EIDRM);
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
            rc = amqp__channel_open_raw(&tmp, false);
            if (rc < 0)
                goto out;
        }
        rpc *r = NULL;
        char *old = t->kind == TOP_QUEUE && t->server_named ? strdup(t->name) : NULL;
        rc = amqp__topo_declare(&tmp, t, false, &r);
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
        amqp__rpc_free(r);
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
            amqp__channel_destroy(ch);
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
        amqp__rpc_call(&tmp, AMQP_CHANNEL_CLOSE_METHOD, &cl, AMQP_CHANNEL_CLOSE_OK_METHOD, 0, NULL,
                       false);
    }
    if (tmp.id && c->chans && c->chans[tmp.id] == &tmp)
        c->chans[tmp.id] = NULL;
    amqp__fail_rpcs(&tmp, -ECANCELED);
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
            amqp__consumer_end(k, why);
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
            rc = amqp__dispatch(c, &f);
            if (rc < 0)
                break;
            /* A NO_ACK consumer is full: read nothing more (TCP pushes back on the broker) until
             * its reader has taken half of what waits. */
            while (c->pause_k && rc == 0)
                rc = simul_event_wait(c->resume_ev);
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
            if (c->s && amqp__out_method(c, &c->out, 0, AMQP_CONNECTION_CLOSE_METHOD, &cl) == 0)
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
                    amqp__channel_fail(ch, rc, CH_FAILED);
            end_all_consumers(c, -ESHUTDOWN);
            simul_event_set(c->ready_ev);
            break;
        }
        /* Each outage starts from reconnect_min again (equal jitter: the n-th wait lies in
         * [d/2, d], d = reconnect_min * 2^n up to reconnect_max). */
        simul_backoff_reset(&c->reconnect);
        for (;;) {
            if (simul_sleep(simul_backoff_next(&c->reconnect)) < 0 || c->closing)
                return 0;
            if (establish(c) == 0)
                break;
            if (c->closing)
                return 0;
        }
        amqp__wake_writer(c);
        simul_task_opts to = {.name = "amqp-recovery", .stack_size = 0};
        if (simul_task_spawn(&c->recovery, recovery_main, c, &to) < 0) {
            c->recovery = NULL;
            simul_stream_abort(c->s);
        }
    }
    return 0;
}

/* ---- public: connect, close ---------------------------------------------------------------- */

void amqp__topo_free(topo *t)
{
    free(t->name);
    free(t->type);
    free(t->queue);
    free(t->exchange);
    free(t->rkey);
    simul_amqp_table_free(t->args);
    free(t);
}

void amqp__consumer_destroy(simul_amqp_consumer *k)
{
    if (k->ch && k->ch->c->pause_k == k)
        amqp__resume(k->ch->c);
    simul_queue_free(k->q, (simul_queue_discard_cb)simul_amqp_message_free);
    free(k->tag);
    free(k->queue);
    free(k);
}

void amqp__channel_destroy(simul_amqp_channel *ch)
{
    simul_amqp_conn *c = ch->c;
    for (simul_amqp_channel **pp = &c->channels; *pp; pp = &(*pp)->next)
        if (*pp == ch) {
            *pp = ch->next;
            break;
        }
    if (ch->id && c->chans && c->chans[ch->id] == ch)
        c->chans[ch->id] = NULL;
    amqp__content_reset(ch, -ECANCELED);
    amqp__fail_rpcs(ch, -ECANCELED);
    while (ch->consumers) {
        simul_amqp_consumer *k = ch->consumers;
        ch->consumers = k->next;
        amqp__consumer_destroy(k);
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
        amqp__channel_destroy(c->channels);
    while (c->topo) {
        topo *t = c->topo;
        c->topo = t->next;
        amqp__topo_free(t);
    }
    simul_event_free(c->out_ev);
    simul_event_free(c->drained_ev);
    simul_event_free(c->ready_ev);
    simul_event_free(c->unblocked_ev);
    simul_event_free(c->idle_ev);
    simul_event_free(c->closeok_ev);
    simul_event_free(c->resume_ev);
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
    free(c->tls_name);
    simul_amqp_table_free(c->client_props);
#ifdef SIMUL_AMQP_HAVE_TLS
    if (c->tls_cfg_own)
        simul_tls_config_free(c->tls_cfg);
#endif
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
    }
#ifndef SIMUL_AMQP_HAVE_TLS
    if ((u.tls || opts->tls) && !opts->connect_cb) {
        simul_amqp_url_free(&u);
        if (opts->why && opts->whylen)
            snprintf(opts->why, opts->whylen, "TLS asked for, but libsimul-amqp was built "
                                              "without libsimul-tls");
        return -EPROTONOSUPPORT;
    }
#endif
    simul_amqp_conn *c = calloc(1, sizeof *c);
    if (!c) {
        simul_amqp_url_free(&u);
        return -ENOMEM;
    }
    int err = 0;
    c->o = *opts;
    c->host = amqp__sdup(opts->host ? opts->host : u.host ? u.host : "127.0.0.1", &err);
    c->port = amqp__sdup(opts->port ? opts->port : u.port ? u.port : "5672", &err);
    c->user = amqp__sdup(opts->user ? opts->user : u.user ? u.user : "guest", &err);
    c->password = amqp__sdup(opts->password ? opts->password
                             : u.password   ? u.password
                                            : "guest",
                             &err);
    c->vhost = amqp__sdup(opts->vhost ? opts->vhost : u.vhost ? u.vhost : "/", &err);
    c->conn_name = amqp__sdup(opts->connection_name, &err);
    if (opts->client_properties && simul_amqp_table_copy(opts->client_properties,
                                                         &c->client_props) < 0)
        err = -ENOMEM;
    c->tls = !opts->connect_cb && (opts->tls || u.tls);
    if (c->tls && !opts->port && !u.port)
        c->port = (free(c->port), amqp__sdup("5671", &err));
    if (c->tls)
        c->tls_name = amqp__sdup(opts->tls_server_name ? opts->tls_server_name : c->host, &err);
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
    if (c->o.no_ack_buffer == 0)
        c->o.no_ack_buffer = 1024;
    c->o.url = c->o.host = c->o.port = c->o.user = c->o.password = c->o.vhost = NULL;
    c->o.connection_name = NULL;
    c->o.tls_ca_file = c->o.tls_cert_file = c->o.tls_key_file = c->o.tls_server_name = NULL;
    c->o.tls_config = NULL;
    c->o.client_properties = NULL;
    c->o.why = NULL;
    c->o.whylen = 0;
    simul_backoff_opts bo = {
        .base = c->o.reconnect_min, .cap = c->o.reconnect_max, .jitter = SIMUL_BACKOFF_EQUAL};
    if (err == 0 && simul_backoff_init(&c->reconnect, &bo) < 0) { /* a NaN or infinite bound */
        conn_free(c);
        return -EINVAL;
    }
    init_amqp_pool(&c->pool, 16384);
    if (err < 0 || simul_event_new(&c->out_ev) < 0 || simul_event_new(&c->drained_ev) < 0 ||
        simul_event_new(&c->ready_ev) < 0 || simul_event_new(&c->unblocked_ev) < 0 ||
        simul_event_new(&c->idle_ev) < 0 || simul_event_new(&c->closeok_ev) < 0 ||
        simul_event_new(&c->resume_ev) < 0) {
        conn_free(c);
        return -ENOMEM;
    }
    int rc = 0;
#ifdef SIMUL_AMQP_HAVE_TLS
    if (c->tls)
        rc = tls_setup(c, opts);
#endif
    if (rc == 0)
        rc = establish(c);
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
        if (opts->why && opts->whylen)
            snprintf(opts->why, opts->whylen, "%s", c->why[0] ? c->why : strerror(-rc));
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
        if (amqp__out_method(c, &c->out, 0, AMQP_CONNECTION_CLOSE_METHOD, &cl) == 0) {
            amqp__wake_writer(c);
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
        amqp__channel_fail(ch, -ECANCELED, CH_FAILED);
    end_all_consumers(c, -ESHUTDOWN);
    while (c->users > 0)
        simul_event_wait(c->idle_ev);
    if (shielded)
        simul_scope_end(&shield);
    conn_free(c);
    return 0;
}

const char *simul_amqp_last_error(const simul_amqp_conn *c)
{
    return c ? c->why : "";
}

bool simul_amqp_is_tls(const simul_amqp_conn *c)
{
    return c && c->s && c->tls_now;
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
