/* dispatch.c — what the reader does with each frame from the broker: replies matched to the head
 * of their channel's RPC FIFO, confirms settled (multiple included), and content (a method, a
 * header, body frames) assembled into one allocation and handed to its consumer, get or return.
 * The idea: everything here runs in the reader and never suspends, so frames are handled in order.
 */
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
    /* The headers through our bounded reader first (typed, and librabbitmq's recursive decoder
     * then never sees a table nested past SIMUL_AMQP_TABLE_MAX_DEPTH). */
    simul_amqp_table *ht = NULL;
    if (cls != AMQP_BASIC_CLASS || amqp__props_headers(f->payload + 12, f->size - 12, &ht) < 0)
        return -EPROTO;
    if (amqp_decode_properties(cls, &c->pool, enc, &decoded) != 0) {
        simul_amqp_table_free(ht);
        return -EPROTO;
    }
    amqp_basic_properties_t *bp = decoded;
    amqp_flags_t fl = bp->_flags;
    size_t need = sizeof(simul_amqp_message) + (size_t)size + 1;
    need += bsz(bp->content_type, fl, AMQP_BASIC_CONTENT_TYPE_FLAG) +
            bsz(bp->content_encoding, fl, AMQP_BASIC_CONTENT_ENCODING_FLAG) +
            bsz(bp->correlation_id, fl, AMQP_BASIC_CORRELATION_ID_FLAG) +
            bsz(bp->reply_to, fl, AMQP_BASIC_REPLY_TO_FLAG) +
            bsz(bp->expiration, fl, AMQP_BASIC_EXPIRATION_FLAG) +
            bsz(bp->message_id, fl, AMQP_BASIC_MESSAGE_ID_FLAG) +
            bsz(bp->type, fl, AMQP_BASIC_TYPE_FLAG) +
            bsz(bp->user_id, fl, AMQP_BASIC_USER_ID_FLAG) +
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
    if (!m) {
        simul_amqp_table_free(ht);
        return -ENOMEM;
    }
    m->props.header_table = ht;
    char *p = (char *)(m + 1);
    m->body = p;
    m->len = (size_t)size;
    p += size + 1;
    uintptr_t al = ((uintptr_t)p + 15) & ~(uintptr_t)15;
    p = (char *)al;
    simul_amqp_arg *ha = (simul_amqp_arg *)p;
    p += nh * sizeof *ha;
    m->props.content_type = bput(&p, bp->content_type, fl, AMQP_BASIC_CONTENT_TYPE_FLAG);
    m->props.content_encoding =
        bput(&p, bp->content_encoding, fl, AMQP_BASIC_CONTENT_ENCODING_FLAG);
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
            case AMQP_FIELD_KIND_BYTES:
                ha[j].str = bput(&p, v->value.bytes, 1, 1);
                break;
            case AMQP_FIELD_KIND_I8:
                ha[j].integer = v->value.i8;
                break;
            case AMQP_FIELD_KIND_U8:
                ha[j].integer = v->value.u8;
                break;
            case AMQP_FIELD_KIND_I16:
                ha[j].integer = v->value.i16;
                break;
            case AMQP_FIELD_KIND_U16:
                ha[j].integer = v->value.u16;
                break;
            case AMQP_FIELD_KIND_I32:
                ha[j].integer = v->value.i32;
                break;
            case AMQP_FIELD_KIND_U32:
                ha[j].integer = v->value.u32;
                break;
            case AMQP_FIELD_KIND_I64:
                ha[j].integer = v->value.i64;
                break;
            case AMQP_FIELD_KIND_U64:
            case AMQP_FIELD_KIND_TIMESTAMP:
                ha[j].integer = (int64_t)v->value.u64;
                break;
            case AMQP_FIELD_KIND_BOOLEAN:
                ha[j].integer = v->value.boolean;
                break;
            default:
                continue; /* other types are skipped */
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
    amqp__content_reset(ch, 0);
    if (kind == CONTENT_DELIVER) {
        c->st.delivered++;
        if (k && (k->flags & SIMUL_AMQP_NO_ACK))
            m->no_ack_ = true;
        if (k && !k->end && simul_queue_put_nowait(k->q, m) == 0) {
            if ((k->flags & SIMUL_AMQP_NO_ACK) && !c->pause_k && !k->cancel_sent &&
                simul_queue_qsize(k->q) >= c->o.no_ack_buffer) {
                /* No prefetch bounds it: the reader stops reading until it drains. */
                c->pause_k = k;
                simul_event_clear(c->resume_ev);
                c->st.read_pauses++;
            }
            return;
        }
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
            amqp__rpc_complete(r, 0);
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
    ch->m.exchange = amqp__bdup(exchange);
    ch->m.rkey = amqp__bdup(rkey);
    return ch->m.exchange && ch->m.rkey ? 0 : -ENOMEM;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

void amqp__send_close_ok(simul_amqp_conn *c, uint16_t chan, uint32_t id)
{
    amqp_channel_close_ok_t ok = {0};
    if (amqp__out_method(c, &c->out, chan, id, &ok) == 0)
        amqp__wake_writer(c);
}

static int channel_method(simul_amqp_conn *c, simul_amqp_channel *ch, uint32_t id, void *args)
{
    switch (id) {
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *cl = args;
        free(ch->err_text);
        ch->err_text = amqp__bdup(cl->reply_text);
        ch->err_code = cl->reply_code;
        amqp__send_close_ok(c, ch->id, AMQP_CHANNEL_CLOSE_OK_METHOD);
        amqp__channel_fail(ch, -EREMOTEIO, CH_FAILED);
        return 0;
    }
    case AMQP_BASIC_DELIVER_METHOD: {
        amqp_basic_deliver_t *d = args;
        if (ch->content != CONTENT_NONE)
            return -EPROTO;
        ch->content_consumer = consumer_find(ch, d->consumer_tag);
        ch->m.ctag = amqp__bdup(d->consumer_tag);
        return content_begin(ch, CONTENT_DELIVER, d->delivery_tag, d->redelivered, d->exchange,
                             d->routing_key);
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *r = args;
        if (ch->content != CONTENT_NONE)
            return -EPROTO;
        ch->m.code = r->reply_code;
        ch->m.text = amqp__bdup(r->reply_text);
        return content_begin(ch, CONTENT_RETURN, 0, false, r->exchange, r->routing_key);
    }
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = args;
        amqp__confirm_set(ch, a->delivery_tag, a->multiple, OUT_ACK);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *a = args;
        amqp__confirm_set(ch, a->delivery_tag, a->multiple, -EBADMSG);
        return 0;
    }
    case AMQP_BASIC_CANCEL_METHOD: {
        /* The broker cancelled a consumer: its queue was deleted (or its node went down). */
        amqp_basic_cancel_t *cn = args;
        simul_amqp_consumer *k = consumer_find(ch, cn->consumer_tag);
        if (k) {
            k->server_cancelled = true;
            amqp__consumer_end(k, -EIDRM);
        }
        if (!cn->nowait) {
            amqp_basic_cancel_ok_t ok = {cn->consumer_tag};
            if (amqp__out_method(c, &c->out, ch->id, AMQP_BASIC_CANCEL_OK_METHOD, &ok) == 0)
                amqp__wake_writer(c);
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
    amqp__rpc_pop(ch);
    k->reply_id = id;
    switch (id) {
    case AMQP_QUEUE_DECLARE_OK_METHOD: {
        amqp_queue_declare_ok_t *ok = args;
        k->str = amqp__bdup(ok->queue);
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
            k->consumer->tag = amqp__bdup(((amqp_basic_consume_ok_t *)args)->consumer_tag);
        } else if (k->abandoned) {
            /* Its caller left (cancel, deadline): nobody would take the deliveries. */
            amqp_basic_cancel_t bc = {((amqp_basic_consume_ok_t *)args)->consumer_tag, 1};
            if (amqp__out_method(c, &c->out, ch->id, AMQP_BASIC_CANCEL_METHOD, &bc) == 0)
                amqp__wake_writer(c);
        }
        break;
    case AMQP_BASIC_GET_OK_METHOD: {
        amqp_basic_get_ok_t *g = args;
        if (ch->content != CONTENT_NONE) {
            amqp__rpc_complete(k, -EPROTO);
            return -EPROTO;
        }
        ch->m.count = g->message_count;
        ch->content_rpc = k->abandoned ? NULL : k;
        if (k->abandoned)
            amqp__rpc_free(k);
        return content_begin(ch, CONTENT_GET, g->delivery_tag, g->redelivered, g->exchange,
                             g->routing_key);
    }
    case AMQP_CHANNEL_CLOSE_OK_METHOD:
        break;
    case AMQP_BASIC_RECOVER_OK_METHOD:
        /* Every unacknowledged delivery before this reply was requeued: its tag is void now. */
        ch->epoch++;
        break;
    default:
        break;
    }
    amqp__rpc_complete(k, 0);
    return 0;
}

/* One frame from the broker. A negative return fails the connection. */
int amqp__dispatch(simul_amqp_conn *c, const simul_amqp_frame *f)
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
        int rc = amqp__decode_method(c, f, &id, &args);
        if (rc < 0)
            return rc;
        switch (id) {
        case AMQP_CONNECTION_CLOSE_METHOD: {
            amqp_connection_close_t *cl = args;
            free(c->close_text);
            c->close_text = amqp__bdup(cl->reply_text);
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
        int rc = amqp__decode_method(c, f, &id, &args);
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
