/* channel.c — the public calls on channels: declarations (recorded for recovery), QoS, publishing
 * with confirms, consumers, acknowledgements, basic.get. The idea: each call encodes its frames
 * into the connection's output without suspending and waits only for its own outcome (an RPC
 * record, a confirm slot, a queue), bounded by the caller's deadline. */
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
    if (simul_event_new(&ch->confirm_ev) < 0 || simul_queue_new(&ch->returns, RETURNS_BOUND) < 0) {
        simul_event_free(ch->confirm_ev);
        free(ch);
        return -ENOMEM;
    }
    ch->next = c->channels;
    c->channels = ch;
    amqp__enter(c);
    int rc = amqp__channel_open_raw(ch, true);
    amqp__leave(c);
    if (rc < 0) {
        amqp__channel_destroy(ch);
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
    amqp__enter(c);
    if (ch->state == CH_OPEN && c->open && c->s && ch->id) {
        amqp_channel_close_t cl;
        memset(&cl, 0, sizeof cl);
        cl.reply_code = 200;
        cl.reply_text = amqp_cstring_bytes("closed");
        ch->state = CH_CLOSING;
        /* close-ok may queue behind deliveries: the reader reads on (a closing channel's
         * deliveries are dropped, so nothing grows). */
        if (c->pause_k && c->pause_k->ch == ch)
            amqp__resume(c);
        /* Calls queued before ours fail now: their replies will not come. */
        amqp__fail_rpcs(ch, -ECANCELED);
        simul_scope t;
        if (simul_scope_timeout(&t, 10) == 0) {
            amqp__rpc_call(ch, AMQP_CHANNEL_CLOSE_METHOD, &cl, AMQP_CHANNEL_CLOSE_OK_METHOD, 0,
                           NULL, false);
            simul_scope_end(&t);
        }
    }
    amqp__channel_fail(ch, -ECANCELED, CH_FAILED);
    amqp__leave(c);
    if (shielded)
        simul_scope_end(&shield);
    if (c->recovering_ch == ch)
        ch->doomed = true; /* the recovery task is inside a call on it: it frees it */
    else
        amqp__channel_destroy(ch);
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

int amqp__topo_declare(simul_amqp_channel *ch, topo *t, bool gate, rpc **out)
{
    simul_amqp_conn *c = ch->c;
    recycle_amqp_pool(&c->pool);
    amqp_table_t args;
    if (amqp__table_to_amqp(&c->pool, t->args, &args) < 0)
        return -ENOMEM;
    if (t->kind == TOP_EXCHANGE) {
        amqp_exchange_declare_t d;
        memset(&d, 0, sizeof d);
        d.exchange = amqp__bytes(t->name);
        d.type = amqp__bytes(t->type ? t->type : "direct");
        d.passive = (t->flags & SIMUL_AMQP_PASSIVE) != 0;
        d.durable = (t->flags & SIMUL_AMQP_DURABLE) != 0;
        d.auto_delete = (t->flags & SIMUL_AMQP_AUTO_DELETE) != 0;
        d.internal = (t->flags & SIMUL_AMQP_INTERNAL) != 0;
        d.arguments = args;
        return amqp__rpc_call(ch, AMQP_EXCHANGE_DECLARE_METHOD, &d, AMQP_EXCHANGE_DECLARE_OK_METHOD,
                              0, out, gate);
    }
    if (t->kind == TOP_QUEUE) {
        amqp_queue_declare_t d;
        memset(&d, 0, sizeof d);
        d.queue = amqp__bytes(t->server_named ? "" : t->name);
        d.passive = (t->flags & SIMUL_AMQP_PASSIVE) != 0;
        d.durable = (t->flags & SIMUL_AMQP_DURABLE) != 0;
        d.exclusive = (t->flags & SIMUL_AMQP_EXCLUSIVE) != 0;
        d.auto_delete = (t->flags & SIMUL_AMQP_AUTO_DELETE) != 0;
        d.arguments = args;
        return amqp__rpc_call(ch, AMQP_QUEUE_DECLARE_METHOD, &d, AMQP_QUEUE_DECLARE_OK_METHOD, 0,
                              out, gate);
    }
    if (t->kind == TOP_XBIND) {
        amqp_exchange_bind_t x;
        memset(&x, 0, sizeof x);
        x.destination = amqp__bytes(t->queue);
        x.source = amqp__bytes(t->exchange);
        x.routing_key = amqp__bytes(t->rkey);
        x.arguments = args;
        return amqp__rpc_call(ch, AMQP_EXCHANGE_BIND_METHOD, &x, AMQP_EXCHANGE_BIND_OK_METHOD, 0,
                              out, gate);
    }
    amqp_queue_bind_t b;
    memset(&b, 0, sizeof b);
    b.queue = amqp__bytes(t->queue);
    b.exchange = amqp__bytes(t->exchange);
    b.routing_key = amqp__bytes(t->rkey);
    b.arguments = args;
    return amqp__rpc_call(ch, AMQP_QUEUE_BIND_METHOD, &b, AMQP_QUEUE_BIND_OK_METHOD, 0, out, gate);
}

void amqp__topo_add(simul_amqp_conn *c, topo *t)
{
    /* A declaration of the same thing replaces the older record (same name / same binding). */
    for (topo **pp = &c->topo; *pp; pp = &(*pp)->next) {
        topo *o = *pp;
        bool dup =
            o->kind == t->kind && (t->kind == TOP_BIND || t->kind == TOP_XBIND
                                       ? amqp__same(o->queue, t->queue) &&
                                                             amqp__same(o->exchange, t->exchange) &&
                                                             amqp__same(o->rkey, t->rkey)
                                                       : amqp__same(o->name, t->name));
        if (dup) {
            *pp = o->next;
            amqp__topo_free(o);
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

void amqp__topo_forget(simul_amqp_conn *c, int kind, const char *name)
{
    for (topo **pp = &c->topo; *pp;) {
        topo *o = *pp;
        bool hit = (o->kind == kind && amqp__same(o->name, name)) ||
                   (o->kind == TOP_BIND && kind == TOP_QUEUE && amqp__same(o->queue, name)) ||
                   (o->kind == TOP_BIND && kind == TOP_EXCHANGE && amqp__same(o->exchange, name)) ||
                   (o->kind == TOP_XBIND && kind == TOP_EXCHANGE &&
                    (amqp__same(o->exchange, name) || amqp__same(o->queue, name)));
        if (hit) {
            *pp = o->next;
            amqp__topo_free(o);
        } else {
            pp = &o->next;
        }
    }
}

topo *amqp__topo_make(int kind, const char *name, const char *type, unsigned flags,
                      const simul_amqp_arg *args, size_t nargs)
{
    topo *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    int err = 0;
    t->kind = kind;
    t->name = amqp__sdup(name ? name : "", &err);
    t->type = amqp__sdup(type, &err);
    t->flags = flags;
    if (err || amqp__args_table(args, nargs, &t->args) < 0) {
        amqp__topo_free(t);
        return NULL;
    }
    return t;
}

int simul_amqp_exchange_declare(simul_amqp_channel *ch, const char *name, const char *type,
                                unsigned flags, const simul_amqp_arg *args, size_t nargs)
{
    if (!ch || !name)
        return -EINVAL;
    topo *t = amqp__topo_make(TOP_EXCHANGE, name, type ? type : "direct", flags, args, nargs);
    if (!t)
        return -ENOMEM;
    amqp__enter(ch->c);
    int rc = amqp__topo_declare(ch, t, true, NULL);
    amqp__leave(ch->c);
    if (rc == 0 && !(flags & SIMUL_AMQP_PASSIVE))
        amqp__topo_add(ch->c, t);
    else
        amqp__topo_free(t);
    return rc;
}

int simul_amqp_exchange_delete(simul_amqp_channel *ch, const char *name, unsigned flags)
{
    if (!ch || !name)
        return -EINVAL;
    amqp_exchange_delete_t d;
    memset(&d, 0, sizeof d);
    d.exchange = amqp__bytes(name);
    d.if_unused = (flags & SIMUL_AMQP_IF_UNUSED) != 0;
    amqp__enter(ch->c);
    int rc = amqp__rpc_call(ch, AMQP_EXCHANGE_DELETE_METHOD, &d, AMQP_EXCHANGE_DELETE_OK_METHOD, 0,
                            NULL, true);
    amqp__leave(ch->c);
    if (rc == 0)
        amqp__topo_forget(ch->c, TOP_EXCHANGE, name);
    return rc;
}

int simul_amqp_queue_declare(simul_amqp_channel *ch, const char *name, unsigned flags,
                             const simul_amqp_arg *args, size_t nargs, char *name_out,
                             size_t name_cap, uint32_t *messages, uint32_t *consumers)
{
    if (!ch)
        return -EINVAL;
    topo *t = amqp__topo_make(TOP_QUEUE, name, NULL, flags, args, nargs);
    if (!t)
        return -ENOMEM;
    t->server_named = !name || !*name;
    rpc *r = NULL;
    amqp__enter(ch->c);
    int rc = amqp__topo_declare(ch, t, true, &r);
    amqp__leave(ch->c);
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
    amqp__rpc_free(r);
    if (rc == 0 && !(flags & SIMUL_AMQP_PASSIVE))
        amqp__topo_add(ch->c, t);
    else
        amqp__topo_free(t);
    return rc;
}

/* Queue bindings (kind TOP_BIND) and exchange bindings (TOP_XBIND: queue is the destination). */
static int bind_common(simul_amqp_channel *ch, int kind, bool bind, const char *queue,
                       const char *exchange, const char *rkey, const simul_amqp_arg *args,
                       size_t nargs)
{
    if (!ch || !queue || !exchange)
        return -EINVAL;
    topo *t = amqp__topo_make(kind, NULL, NULL, 0, args, nargs);
    int err = 0;
    if (t) {
        t->queue = amqp__sdup(queue, &err);
        t->exchange = amqp__sdup(exchange, &err);
        t->rkey = amqp__sdup(rkey ? rkey : "", &err);
    }
    if (!t || err) {
        if (t)
            amqp__topo_free(t);
        return -ENOMEM;
    }
    amqp__enter(ch->c);
    int rc;
    if (bind) {
        rc = amqp__topo_declare(ch, t, true, NULL);
    } else if (kind == TOP_XBIND) {
        recycle_amqp_pool(&ch->c->pool);
        amqp_exchange_unbind_t x;
        memset(&x, 0, sizeof x);
        x.destination = amqp__bytes(queue);
        x.source = amqp__bytes(exchange);
        x.routing_key = amqp__bytes(t->rkey);
        rc = amqp__table_to_amqp(&ch->c->pool, t->args, &x.arguments);
        if (rc == 0)
            rc = amqp__rpc_call(ch, AMQP_EXCHANGE_UNBIND_METHOD, &x, AMQP_EXCHANGE_UNBIND_OK_METHOD,
                                0, NULL, true);
    } else {
        recycle_amqp_pool(&ch->c->pool);
        amqp_queue_unbind_t u;
        memset(&u, 0, sizeof u);
        u.queue = amqp__bytes(queue);
        u.exchange = amqp__bytes(exchange);
        u.routing_key = amqp__bytes(t->rkey);
        rc = amqp__table_to_amqp(&ch->c->pool, t->args, &u.arguments);
        if (rc == 0)
            rc = amqp__rpc_call(ch, AMQP_QUEUE_UNBIND_METHOD, &u, AMQP_QUEUE_UNBIND_OK_METHOD, 0,
                                NULL, true);
    }
    amqp__leave(ch->c);
    if (rc == 0 && bind) {
        amqp__topo_add(ch->c, t);
        return 0;
    }
    if (rc == 0) {
        for (topo **pp = &ch->c->topo; *pp; pp = &(*pp)->next) {
            topo *o = *pp;
            if (o->kind == kind && amqp__same(o->queue, queue) &&
                amqp__same(o->exchange, exchange) && amqp__same(o->rkey, t->rkey)) {
                *pp = o->next;
                amqp__topo_free(o);
                break;
            }
        }
    }
    amqp__topo_free(t);
    return rc;
}

int simul_amqp_queue_bind(simul_amqp_channel *ch, const char *queue, const char *exchange,
                          const char *routing_key, const simul_amqp_arg *args, size_t nargs)
{
    return bind_common(ch, TOP_BIND, true, queue, exchange, routing_key, args, nargs);
}

int simul_amqp_queue_unbind(simul_amqp_channel *ch, const char *queue, const char *exchange,
                            const char *routing_key, const simul_amqp_arg *args, size_t nargs)
{
    return bind_common(ch, TOP_BIND, false, queue, exchange, routing_key, args, nargs);
}

int simul_amqp_exchange_bind(simul_amqp_channel *ch, const char *destination, const char *source,
                             const char *routing_key, const simul_amqp_arg *args, size_t nargs)
{
    return bind_common(ch, TOP_XBIND, true, destination, source, routing_key, args, nargs);
}

int simul_amqp_exchange_unbind(simul_amqp_channel *ch, const char *destination,
                               const char *source, const char *routing_key,
                               const simul_amqp_arg *args, size_t nargs)
{
    return bind_common(ch, TOP_XBIND, false, destination, source, routing_key, args, nargs);
}

int simul_amqp_queue_delete(simul_amqp_channel *ch, const char *queue, unsigned flags,
                            uint32_t *messages)
{
    if (!ch || !queue)
        return -EINVAL;
    amqp_queue_delete_t d;
    memset(&d, 0, sizeof d);
    d.queue = amqp__bytes(queue);
    d.if_unused = (flags & SIMUL_AMQP_IF_UNUSED) != 0;
    d.if_empty = (flags & SIMUL_AMQP_IF_EMPTY) != 0;
    rpc *r = NULL;
    amqp__enter(ch->c);
    int rc =
        amqp__rpc_call(ch, AMQP_QUEUE_DELETE_METHOD, &d, AMQP_QUEUE_DELETE_OK_METHOD, 0, &r, true);
    amqp__leave(ch->c);
    if (rc == 0) {
        if (messages)
            *messages = r->n1;
        amqp__topo_forget(ch->c, TOP_QUEUE, queue);
    }
    amqp__rpc_free(r);
    return rc;
}

int simul_amqp_queue_purge(simul_amqp_channel *ch, const char *queue, uint32_t *messages)
{
    if (!ch || !queue)
        return -EINVAL;
    amqp_queue_purge_t p;
    memset(&p, 0, sizeof p);
    p.queue = amqp__bytes(queue);
    rpc *r = NULL;
    amqp__enter(ch->c);
    int rc =
        amqp__rpc_call(ch, AMQP_QUEUE_PURGE_METHOD, &p, AMQP_QUEUE_PURGE_OK_METHOD, 0, &r, true);
    amqp__leave(ch->c);
    if (rc == 0 && messages)
        *messages = r->n1;
    amqp__rpc_free(r);
    return rc;
}

int simul_amqp_qos(simul_amqp_channel *ch, uint16_t prefetch)
{
    if (!ch)
        return -EINVAL;
    amqp__enter(ch->c);
    int rc = amqp__do_qos(ch, prefetch, true);
    amqp__leave(ch->c);
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
    amqp__enter(ch->c);
    int rc = amqp__do_confirm_select(ch, true);
    amqp__leave(ch->c);
    if (rc == 0)
        ch->confirm = true;
    return rc;
}

/* Waits while publishing must not go on: broker blocked, output over its high-water mark, the
 * confirm window full, the connection down. */
int amqp__publish_gate(simul_amqp_channel *ch)
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
    amqp__enter(c);
    int rc = amqp__publish_gate(ch);
    if (rc == 0) {
        recycle_amqp_pool(&c->pool);
        amqp_basic_publish_t p;
        memset(&p, 0, sizeof p);
        p.exchange = amqp__bytes(exchange);
        p.routing_key = amqp__bytes(routing_key);
        p.mandatory = (flags & SIMUL_AMQP_MANDATORY) != 0;
        size_t start = c->out.len;
        rc = amqp__out_method(c, &c->out, ch->id, AMQP_BASIC_PUBLISH_METHOD, &p);
        if (rc == 0)
            rc = amqp__out_content(c, &c->out, ch->id, body, len, props);
        if (rc < 0) {
            c->out.len = start;
        } else {
            c->st.published++;
            if (ch->tx)
                ch->tx_dirty = true;
            if (ch->confirm) {
                uint64_t s = ch->next_seq++;
                ch->outcome[s % SIMUL_AMQP_CONFIRM_WINDOW] = OUT_PENDING;
                ch->pending++;
                if (seq)
                    *seq = s;
            }
            amqp__wake_writer(c);
        }
    }
    amqp__leave(c);
    return rc;
}

int simul_amqp_wait_confirm(simul_amqp_channel *ch, uint64_t seq)
{
    if (!ch || !ch->confirm || seq < ch->base || seq >= ch->next_seq)
        return -EINVAL;
    amqp__enter(ch->c);
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
    amqp__leave(ch->c);
    return rc;
}

int simul_amqp_wait_confirms(simul_amqp_channel *ch, uint64_t *failed)
{
    if (failed)
        *failed = 0;
    if (!ch || !ch->confirm)
        return -EINVAL;
    uint64_t target = ch->next_seq;
    amqp__enter(ch->c);
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
    amqp__leave(ch->c);
    return rc;
}

uint64_t simul_amqp_unconfirmed(const simul_amqp_channel *ch)
{
    return ch ? ch->pending : 0;
}

void simul_amqp_message_free(simul_amqp_message *m)
{
    if (!m)
        return;
    simul_amqp_table_free((simul_amqp_table *)m->props.header_table);
    free(m);
}

int simul_amqp_next_return(simul_amqp_channel *ch, simul_amqp_message **out)
{
    if (!ch || !out)
        return -EINVAL;
    *out = NULL;
    void *item = NULL;
    amqp__enter(ch->c);
    int rc = simul_queue_get(ch->returns, &item);
    amqp__leave(ch->c);
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
    k->queue = amqp__sdup(queue, &err);
    k->tag = amqp__sdup(tag && *tag ? tag : NULL, &err);
    if (err || simul_queue_new(&k->q, 0) < 0) {
        free(k->queue);
        free(k->tag);
        free(k);
        return -ENOMEM;
    }
    /* Listed before consume-ok: deliveries may follow it in the same read. */
    k->next = ch->consumers;
    ch->consumers = k;
    amqp__enter(ch->c);
    int rc = amqp__do_consume(k, true);
    amqp__leave(ch->c);
    if (rc < 0) {
        for (simul_amqp_consumer **pp = &ch->consumers; *pp; pp = &(*pp)->next)
            if (*pp == k) {
                *pp = k->next;
                break;
            }
        amqp__consumer_destroy(k);
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
    amqp__enter(k->ch->c);
    int rc = simul_queue_get(k->q, &item);
    amqp__leave(k->ch->c);
    k->reading = false;
    if (rc == 0) {
        *out = item;
        simul_amqp_conn *c = k->ch->c;
        if (c->pause_k == k && simul_queue_qsize(k->q) <= c->o.no_ack_buffer / 2)
            amqp__resume(c); /* room again: the reader reads the socket on */
        return 0;
    }
    if (rc == -ESHUTDOWN && k->end)
        return k->end;
    return rc;
}

size_t simul_amqp_consumer_buffered(const simul_amqp_consumer *k)
{
    return k ? simul_queue_qsize(k->q) : 0;
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
        /* cancel-ok may queue behind deliveries the reader has not read: it reads on (what the
         * broker sent before it still arrives, past no_ack_buffer). */
        if (ch->c->pause_k == k)
            amqp__resume(ch->c);
        amqp_basic_cancel_t bc;
        memset(&bc, 0, sizeof bc);
        bc.consumer_tag = amqp__bytes(k->tag);
        amqp__enter(ch->c);
        rc = amqp__rpc_call(ch, AMQP_BASIC_CANCEL_METHOD, &bc, AMQP_BASIC_CANCEL_OK_METHOD, 0, NULL,
                            true);
        amqp__leave(ch->c);
    }
    amqp__consumer_end(k, -ESHUTDOWN);
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
        bc.consumer_tag = amqp__bytes(k->tag);
        bc.nowait = 1;
        if (amqp__out_method(c, &c->out, ch->id, AMQP_BASIC_CANCEL_METHOD, &bc) == 0)
            amqp__wake_writer(c);
    }
    if (ch->content_consumer == k)
        ch->content_consumer = NULL;
    if (c->recovering_k == k) {
        /* The recovery task is consuming again with it: it unlinks and frees it. */
        k->doomed = true;
        amqp__consumer_end(k, -ESHUTDOWN);
    } else {
        amqp__consumer_unlink(k);
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
        amqp__consumer_destroy(k);
}

static int ack_common(const simul_amqp_message *m, uint32_t id, unsigned flags)
{
    if (!m || !m->channel || !m->delivery_tag || m->no_ack_)
        return -EINVAL;
    simul_amqp_channel *ch = m->channel;
    simul_amqp_conn *c = ch->c;
    if (ch->state == CH_FAILED)
        return ch->err_text ? -EREMOTEIO : -ESHUTDOWN;
    /* The delivery's channel, as it is now: a connection loss sets every channel down (and a
     * reopen bumps the epoch) at once. Not c->open: that is set only once recovery has reopened
     * every channel, and a consumer's channel reopened first gets deliveries meanwhile; refused,
     * their acks would leave the prefetch window full for good. */
    if (m->epoch_ != ch->epoch || !c->s || ch->state != CH_OPEN || !ch->id)
        return -ESTALE;
    int rc;
    if (id == AMQP_BASIC_ACK_METHOD) {
        amqp_basic_ack_t a = {m->delivery_tag, (flags & SIMUL_AMQP_MULTIPLE) != 0};
        rc = amqp__out_method(c, &c->out, ch->id, id, &a);
    } else if (id == AMQP_BASIC_NACK_METHOD) {
        amqp_basic_nack_t a = {m->delivery_tag, (flags & SIMUL_AMQP_MULTIPLE) != 0,
                               (flags & SIMUL_AMQP_REQUEUE) != 0};
        rc = amqp__out_method(c, &c->out, ch->id, id, &a);
    } else {
        amqp_basic_reject_t a = {m->delivery_tag, (flags & SIMUL_AMQP_REQUEUE) != 0};
        rc = amqp__out_method(c, &c->out, ch->id, id, &a);
    }
    if (rc == 0) {
        if (ch->tx)
            ch->tx_dirty = true;
        amqp__wake_writer(c);
    }
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
    g.queue = amqp__bytes(queue);
    g.no_ack = (flags & SIMUL_AMQP_NO_ACK) != 0;
    rpc *r = NULL;
    amqp__enter(ch->c);
    int rc = amqp__rpc_call(ch, AMQP_BASIC_GET_METHOD, &g, AMQP_BASIC_GET_OK_METHOD,
                            AMQP_BASIC_GET_EMPTY_METHOD, &r, true);
    amqp__leave(ch->c);
    if (rc == 0) {
        if (r->reply_id == AMQP_BASIC_GET_EMPTY_METHOD) {
            rc = -ENOMSG;
        } else {
            *out = r->msg;
            (*out)->no_ack_ = g.no_ack != 0;
            r->msg = NULL;
        }
    }
    amqp__rpc_free(r);
    return rc;
}

/* ---- public: recover, transactions --------------------------------------------------------- */

int simul_amqp_recover(simul_amqp_channel *ch)
{
    if (!ch)
        return -EINVAL;
    amqp_basic_recover_t r = {1};
    amqp__enter(ch->c);
    /* recover-ok bumps the channel's epoch in the reader: deliveries before it turn stale. */
    int rc = amqp__rpc_call(ch, AMQP_BASIC_RECOVER_METHOD, &r, AMQP_BASIC_RECOVER_OK_METHOD, 0,
                            NULL, true);
    amqp__leave(ch->c);
    return rc;
}

int simul_amqp_tx_select(simul_amqp_channel *ch)
{
    if (!ch)
        return -EINVAL;
    if (ch->tx)
        return 0;
    amqp_tx_select_t t = {0};
    amqp__enter(ch->c);
    int rc = amqp__rpc_call(ch, AMQP_TX_SELECT_METHOD, &t, AMQP_TX_SELECT_OK_METHOD, 0, NULL, true);
    amqp__leave(ch->c);
    if (rc == 0) {
        ch->tx = true;
        ch->tx_dirty = false;
        ch->tx_lost = 0;
    }
    return rc;
}

static int tx_end(simul_amqp_channel *ch, bool commit)
{
    if (!ch)
        return -EINVAL;
    if (!ch->tx)
        return -EINVAL; /* not in transaction mode (the broker would say 406) */
    int lost = ch->tx_lost;
    amqp_tx_commit_t t = {0};
    amqp__enter(ch->c);
    /* After a loss the transaction is broken: what was done since the reconnection goes too. */
    uint32_t id = commit && !lost ? AMQP_TX_COMMIT_METHOD : AMQP_TX_ROLLBACK_METHOD;
    uint32_t ok = commit && !lost ? AMQP_TX_COMMIT_OK_METHOD : AMQP_TX_ROLLBACK_OK_METHOD;
    int rc = amqp__rpc_call(ch, id, &t, ok, 0, NULL, true);
    amqp__leave(ch->c);
    if (rc == 0) {
        ch->tx_dirty = false;
        ch->tx_lost = 0;
        if (commit && lost)
            rc = lost;
    }
    return rc;
}

int simul_amqp_tx_commit(simul_amqp_channel *ch)
{
    return tx_end(ch, true);
}

int simul_amqp_tx_rollback(simul_amqp_channel *ch)
{
    return tx_end(ch, false);
}
