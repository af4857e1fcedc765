/* ws_conn.c — WebSocket sessions over a simul_stream: the server's upgrade from a route, the
 * client's opening handshake, and the message calls both share. The idea: a reader task of the
 * session's own reads the stream all along (so pings are answered, keepalive runs and a vanished
 * peer is seen even while the handler only sends) and hands whole messages over through a
 * bounded queue; every frame is written with one non-suspending stream write, so the reader's
 * pongs and closes never land inside another frame. */
#include "internal.h"
#include "ws_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/uio.h>

typedef struct ws_msg {
    int type;
    size_t len, cap;
    char *data; /* len bytes and a NUL */
} ws_msg;

struct simul_ws {
    simul_stream *s;
    bool server;
    simul_ws_opts opts;
    simul_ws_parser p;
    uint8_t *rbuf;
    size_t rcap, rstart, rend;
    ws_msg *building; /* the message being reassembled */
    ws_msg *cur;      /* the message recv returned last (freed at the next recv) */
    simul_queue *q;
    simul_task *reader, *owner;
    simul_event *ended; /* the peer's close came, or the reader ended */
    simul_http_request *req; /* server: the request that was upgraded */
    int err;            /* what recv returns once the queue is empty */
    int close_code;
    char close_reason[124];
    char *subprotocol;
    char *extensions;  /* the 101's Sec-WebSocket-Extensions, or NULL */
    char **answer;     /* client: the 101's fields, name, value, ... (one allocation) */
    size_t nanswer;
    http_ws_z *z;      /* permessage-deflate's streams, or NULL */
    http_ws_buf zout;  /* a compressed message on its way out */
    uint32_t in_utf8;  /* the UTF-8 state of a compressed text message being inflated */
    bool out_compressed; /* the message sent in parts is compressed (RSV1 on its first frame) */
    bool close_sent, reader_done, receiving, sending, in_part, ping_out;
    bool own_stream;   /* opened by URL: the stream is closed with the session */
    uint32_t out_utf8; /* the UTF-8 state of a text message sent in parts */
    uint64_t rng;      /* the masking keys' generator (client) */
};

#define WS_RBUF (64u * 1024u)

/* ---- writing frames ------------------------------------------------------------------------- */

static uint32_t next_key(simul_ws *ws)
{
    /* splitmix64, seeded from getrandom: keys unpredictable to the peer without a syscall per
     * frame (RFC 6455 10.3 asks for keys a script on the page cannot guess). */
    uint64_t z = (ws->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)(z ^ (z >> 31));
}

/* Writes one frame with non-suspending stream writes (never split by another task's frame);
 * rsv1: a compressed message's first frame. Returns 0 or the stream's error. */
static int write_frame_rsv(simul_ws *ws, int op, bool fin, bool rsv1, const void *data,
                           size_t len)
{
    uint8_t h[14];
    if (ws->server) {
        size_t hl = simul_ws_frame_header(h, op, fin, len, NULL);
        h[0] |= rsv1 ? 0x40 : 0;
        struct iovec iov[2] = {{h, hl}, {(void *)data, len}};
        return simul_stream_writev(ws->s, iov, len ? 2 : 1);
    }
    uint32_t k = next_key(ws);
    uint8_t key[4];
    memcpy(key, &k, 4);
    size_t hl = simul_ws_frame_header(h, op, fin, len, key);
    h[0] |= rsv1 ? 0x40 : 0;
    int rc = simul_stream_write(ws->s, h, hl);
    uint8_t chunk[4096];
    for (size_t off = 0; rc == 0 && off < len; off += sizeof chunk) {
        size_t n = len - off < sizeof chunk ? len - off : sizeof chunk;
        memcpy(chunk, (const uint8_t *)data + off, n);
        simul_ws_mask(chunk, n, key, off);
        rc = simul_stream_write(ws->s, chunk, n);
    }
    return rc;
}

static int write_frame(simul_ws *ws, int op, bool fin, const void *data, size_t len)
{
    return write_frame_rsv(ws, op, fin, false, data, len);
}

static int write_close(simul_ws *ws, int code, const char *reason)
{
    uint8_t pl[125];
    size_t n = 0;
    if (code) {
        pl[0] = (uint8_t)(code >> 8);
        pl[1] = (uint8_t)code;
        n = 2;
        size_t r = reason ? strlen(reason) : 0;
        if (r > 123) {
            r = 123;
        }
        if (r) {
            memcpy(pl + 2, reason, r);
        }
        n += r;
    }
    ws->close_sent = true;
    return write_frame(ws, SIMUL_WS_CLOSE, true, pl, n);
}

/* ---- the reader ----------------------------------------------------------------------------- */

static void msg_free(void *arg)
{
    ws_msg *m = arg;
    if (m) {
        free(m->data);
        free(m);
    }
}

/* The reader is done: recv returns what is queued, then err. */
static void reader_end(simul_ws *ws, int err, int code)
{
    ws->err = err;
    if (!ws->close_code) {
        ws->close_code = code;
    }
    ws->reader_done = true;
    simul_queue_shutdown(ws->q, false, NULL);
    simul_event_set(ws->ended);
}

/* Handles one parsed event. Returns 1 to go on, 0 when the reader is done. */
static int on_event(simul_ws *ws, int ev, simul_ws_frame *f)
{
    if (ev == SIMUL_WS_DATA) {
        ws_msg *m = ws->building;
        if (!m) {
            m = ws->building = calloc(1, sizeof *m);
            if (!m) {
                goto oom;
            }
            m->type = f->opcode;
            ws->in_utf8 = 0;
        }
        if (f->compressed && ws->z) {
            /* Inflated in bounded steps: the buffer never passes max_message + 2 bytes. */
            http_ws_buf b = {(uint8_t *)m->data, m->len, m->cap};
            size_t before = b.len;
            int rc = http_ws_inflate(ws->z, f->data, f->len, f->fin, ws->opts.max_message, &b);
            m->data = (char *)b.p;
            m->len = b.len;
            m->cap = b.cap;
            if (rc == -ENOMEM) {
                goto oom;
            }
            if (rc < 0) {
                bool big = rc == -EMSGSIZE;
                write_close(ws, big ? SIMUL_WS_CLOSE_TOO_BIG : SIMUL_WS_CLOSE_INVALID_DATA,
                            big ? "message over the size limit once inflated"
                                : "invalid compressed data");
                reader_end(ws, big ? -EMSGSIZE : -EPROTO, SIMUL_WS_CLOSE_ABNORMAL);
                return 0;
            }
            if (m->type == SIMUL_WS_TEXT &&
                (!simul_ws_utf8_check(&ws->in_utf8, (const uint8_t *)m->data + before,
                                      m->len - before) ||
                 (f->fin && ws->in_utf8 != 0))) {
                write_close(ws, SIMUL_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text");
                reader_end(ws, -EPROTO, SIMUL_WS_CLOSE_ABNORMAL);
                return 0;
            }
        } else {
            if (m->len + f->len + 1 > m->cap) {
                size_t need = m->len + f->len + 1;
                size_t cap = m->cap ? m->cap * 2 : 256;
                cap = cap < need ? need : cap;
                char *nd = realloc(m->data, cap);
                if (!nd) {
                    goto oom;
                }
                m->data = nd;
                m->cap = cap;
            }
            memcpy(m->data + m->len, f->data, f->len);
            m->len += f->len;
        }
        if (!f->fin) {
            return 1;
        }
        if (!m->data && !(m->data = malloc(1))) {
            goto oom; /* an empty compressed message */
        }
        m->data[m->len] = '\0';
        ws->building = NULL;
        if (ws->close_sent) {
            msg_free(m); /* after our close, data is dropped (RFC 6455 1.4): only its close counts */
            return 1;
        }
        int rc = simul_queue_put(ws->q, m); /* backpressure: a full queue stops the reading */
        if (rc < 0) {
            msg_free(m);
            return rc == -ECANCELED ? 0 : 1;
        }
        return 1;
    oom:
        write_close(ws, SIMUL_WS_CLOSE_INTERNAL, "out of memory");
        reader_end(ws, -ENOMEM, SIMUL_WS_CLOSE_ABNORMAL);
        return 0;
    }
    switch (f->opcode) {
    case SIMUL_WS_PING:
        /* A peer that pings without reading would grow our write queue without bound: past
         * the high-water mark pongs are skipped (RFC 6455 5.5.3 lets us answer only the
         * latest ping; one not reading gets no answer it would read anyway). */
        if (!ws->close_sent && simul_stream_write_buffer_size(ws->s) <= SIMUL_STREAM_HIGH_WATER) {
            write_frame(ws, SIMUL_WS_PONG, true, f->data, f->len);
        }
        return 1;
    case SIMUL_WS_PONG:
        ws->ping_out = false;
        return 1;
    default: /* close */
        ws->close_code = f->close_code;
        if (f->len > 2) {
            memcpy(ws->close_reason, f->data + 2, f->len - 2);
            ws->close_reason[f->len - 2] = '\0';
        }
        if (!ws->close_sent) {
            /* Echo the code (RFC 6455 5.5.1); a close without one is answered without one. */
            write_close(ws, f->close_code == SIMUL_WS_CLOSE_NO_STATUS ? 0 : f->close_code, NULL);
        }
        reader_end(ws, 0, 0);
        return 0;
    }
}

static int reader_main(void *arg)
{
    simul_ws *ws = arg;
    for (;;) {
        for (;;) {
            size_t used = 0;
            simul_ws_frame f;
            int ev = simul_ws_parser_feed(&ws->p, ws->rbuf + ws->rstart, ws->rend - ws->rstart,
                                          &used, &f);
            if (ev < 0) {
                /* Fail the connection (RFC 6455 7.1.7): the close says why. */
                if (!ws->close_sent) {
                    write_close(ws, simul_ws_error_close_code(ws->p.error),
                                simul_ws_error_reason(ws->p.error));
                }
                reader_end(ws, ev, SIMUL_WS_CLOSE_ABNORMAL);
                return 0;
            }
            ws->rstart += used;
            if (ev == SIMUL_WS_NEED_MORE) {
                break;
            }
            int go = on_event(ws, ev, &f);
            if (go <= 0) {
                if (!ws->reader_done) {
                    reader_end(ws, -ECANCELED, SIMUL_WS_CLOSE_ABNORMAL);
                }
                return 0;
            }
        }
        if (ws->rstart == ws->rend) {
            ws->rstart = ws->rend = 0;
        } else if (ws->rstart > 0) {
            memmove(ws->rbuf, ws->rbuf + ws->rstart, ws->rend - ws->rstart);
            ws->rend -= ws->rstart;
            ws->rstart = 0;
        }
        /* After our close only its answer is awaited, for close_timeout (a shutdown's 1001 to a
         * client that never answers ends here, and so does its handler); else keepalive. */
        double wait = ws->close_sent ? ws->opts.close_timeout
                      : ws->ping_out ? ws->opts.ping_timeout
                                     : ws->opts.ping_interval;
        simul_scope sc;
        simul_scope_timeout(&sc, wait < 0 ? INFINITY : wait);
        long n = simul_stream_read(ws->s, ws->rbuf + ws->rend, ws->rcap - ws->rend);
        int expired = simul_scope_end(&sc);
        if (n > 0) {
            ws->rend += (size_t)n;
            ws->ping_out = false; /* anything from the peer shows it is alive */
            continue;
        }
        if (n == -ETIMEDOUT && expired == 1) {
            if (!ws->ping_out && !ws->close_sent) {
                ws->ping_out = true;
                write_frame(ws, SIMUL_WS_PING, true, "keepalive", 9);
                continue;
            }
            if (!ws->close_sent) {
                write_close(ws, SIMUL_WS_CLOSE_INTERNAL, "keepalive ping timeout");
            }
            n = -ETIMEDOUT; /* no answer to the ping, or to our close */
        } else if (n == -ECANCELED && simul_task_cancel_requested(simul_task_current())) {
            reader_end(ws, -ECANCELED, SIMUL_WS_CLOSE_ABNORMAL); /* the session is closing */
            return 0;
        }
        /* The peer vanished (EOF or an error without a close frame), or stopped answering. */
        reader_end(ws, n == 0 ? -ECONNRESET : n == -ETIMEDOUT ? -ECONNRESET : (int)n,
                   SIMUL_WS_CLOSE_ABNORMAL);
        if (ws->owner) {
            simul_task_cancel(ws->owner); /* a disconnect cancels the handler */
        }
        return 0;
    }
}

/* ---- the session's life --------------------------------------------------------------------- */

static int session_new(simul_stream *s, bool server, const simul_ws_opts *opts, simul_ws **out)
{
    simul_ws *ws = calloc(1, sizeof *ws);
    if (!ws) {
        return -ENOMEM;
    }
    if (opts) {
        ws->opts = *opts;
    }
    simul_ws_opts *o = &ws->opts;
    if (!o->max_message) o->max_message = SIMUL_WS_DEFAULT_MAX_MESSAGE;
    if (o->deflate_window_bits && (o->deflate_window_bits < 9 || o->deflate_window_bits > 15)) {
        free(ws);
        return -EINVAL; /* zlib's raw deflate windows: 2^9 to 2^15 */
    }
    if (!o->queue_max) o->queue_max = 16;
    if (o->ping_interval == 0) o->ping_interval = 20;
    if (!(o->ping_timeout > 0)) o->ping_timeout = 20;
    if (!(o->close_timeout > 0)) o->close_timeout = 5;
    ws->s = s;
    ws->server = server;
    ws->rcap = WS_RBUF;
    ws->rbuf = malloc(ws->rcap);
    if (getrandom(&ws->rng, sizeof ws->rng, 0) != (ssize_t)sizeof ws->rng) {
        ws->rng ^= (uint64_t)simul_now_ns(); /* no entropy yet: still a per-session key */
    }
    simul_ws_parser_init(&ws->p, server, o->max_message);
    if (!ws->rbuf || simul_queue_new(&ws->q, o->queue_max) < 0 ||
        simul_event_new(&ws->ended) < 0) {
        free(ws->rbuf);
        if (ws->q) {
            simul_queue_free(ws->q, NULL);
        }
        free(ws);
        return -ENOMEM;
    }
    *out = ws;
    return 0;
}

/* permessage-deflate was agreed: its streams, and RSV1 allowed on the peer's messages. */
static int enable_deflate(simul_ws *ws, const http_ws_pmd *pm, const char *ext)
{
    ws->z = calloc(1, sizeof *ws->z);
    if (!ws->z || !(ws->extensions = strdup(ext))) {
        return -ENOMEM;
    }
    int rc = http_ws_z_init(ws->z, pm, ws->opts.deflate_level);
    if (rc < 0) {
        free(ws->z);
        ws->z = NULL;
        return rc;
    }
    simul_ws_parser_allow_compressed(&ws->p, true);
    return 0;
}

static int session_start(simul_ws *ws)
{
    simul_task_opts to = {.name = "ws-reader"};
    return simul_task_spawn(&ws->reader, reader_main, ws, &to);
}

/* Stops the reader (if it runs) and frees everything. */
static void session_free(simul_ws *ws)
{
    if (ws->reader) {
        simul_scope sh;
        simul_scope_shield(&sh);
        simul_task_cancel(ws->reader);
        simul_task_join(ws->reader, NULL);
        simul_scope_end(&sh);
    }
    if (ws->req) {
        http_takeover_done(ws->req);
    }
    if (ws->own_stream && ws->s) {
        /* Flush the close frame, bounded as the close handshake is; a failed connection is
         * reset rather than flushed. */
        if (ws->reader_done && ws->err != 0 && ws->err != -ECANCELED) {
            simul_stream_abort(ws->s);
        }
        simul_scope dl;
        simul_scope_timeout(&dl, ws->opts.close_timeout);
        simul_stream_close(ws->s);
        simul_scope_end(&dl);
    }
    simul_queue_free(ws->q, msg_free);
    simul_event_free(ws->ended);
    msg_free(ws->building);
    msg_free(ws->cur);
    free(ws->rbuf);
    free(ws->subprotocol);
    free(ws->extensions);
    free(ws->answer);
    if (ws->z) {
        http_ws_z_free(ws->z);
        free(ws->z);
    }
    free(ws->zout.p);
    free(ws);
}

/* The server's hooks: a shutdown says 1001; a handler that forgot the close gets it. */
static void on_drain(void *arg)
{
    simul_ws *ws = arg;
    if (!ws->close_sent && !ws->reader_done) {
        write_close(ws, SIMUL_WS_CLOSE_GOING_AWAY, "server shutting down");
    }
}

static void on_release(void *arg)
{
    simul_ws *ws = arg;
    if (!ws->close_sent && !ws->reader_done) {
        write_close(ws, SIMUL_WS_CLOSE_INTERNAL, "handler ended");
    }
    session_free(ws);
}

/* ---- the server's upgrade ------------------------------------------------------------------- */

/* Whether a comma-separated header list holds `token` (case-insensitive). */
static bool list_has(const char *v, const char *token)
{
    size_t tl = strlen(token);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',') {
            v++;
        }
        const char *e = v;
        while (*e && *e != ',') {
            e++;
        }
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) {
            t--;
        }
        if ((size_t)(t - v) == tl && strncasecmp(v, token, tl) == 0) {
            return true;
        }
        v = e;
    }
    return false;
}

/* A Sec-WebSocket-Key: base64 of 16 bytes (22 characters and "=="). */
static bool key_ok(const char *k)
{
    if (!k || strlen(k) != 24 || k[22] != '=' || k[23] != '=') {
        return false;
    }
    for (int i = 0; i < 22; i++) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/')) {
            return false;
        }
    }
    /* The last character before the padding carries 2 bits: its low 4 bits must be 0. */
    return strchr("AQgw", k[21]) != NULL;
}

/* Whether any header field `name` lists `token`. */
static bool request_lists(const simul_http_request *req, const char *name, const char *token)
{
    size_t n = simul_http_request_header_count(req);
    for (size_t i = 0; i < n; i++) {
        const char *hn, *hv;
        if (simul_http_request_header_at(req, i, &hn, &hv) == 0 && strcasecmp(hn, name) == 0 &&
            list_has(hv, token)) {
            return true;
        }
    }
    return false;
}

/* Origin against the allowed list, or the same origin as Host (see simul_ws_opts.origins). */
static bool origin_ok(const simul_http_request *req, const simul_ws_opts *opts)
{
    const char *origin = simul_http_request_header(req, "Origin");
    if (!origin) {
        return true; /* not a browser: nothing a page could forge */
    }
    if (opts && opts->origins) {
        for (size_t i = 0; i < opts->norigins; i++) {
            if (strcmp(opts->origins[i], "*") == 0 || strcasecmp(opts->origins[i], origin) == 0) {
                return true;
            }
        }
        return false;
    }
    const char *host = simul_http_request_header(req, "Host");
    const char *sep = strstr(origin, "://");
    return host && sep && strcasecmp(sep + 3, host) == 0;
}

static int refuse(simul_http_response *res, int status, const char *why)
{
    simul_http_response_text(res, status, why);
    if (status == 426) {
        simul_http_response_header(res, "Sec-WebSocket-Version", "13");
        simul_http_response_header(res, "Upgrade", "websocket");
    }
    return -EPROTO;
}

int simul_ws_upgrade(simul_http_request *req, simul_http_response *res, const simul_ws_opts *opts,
                     simul_ws **out)
{
    if (!req || !res || !out) {
        return -EINVAL;
    }
    if (simul_http_response_started(res)) {
        return -EALREADY;
    }
    if (strcmp(simul_http_request_method(req), "GET") != 0 ||
        simul_http_request_version_minor(req) < 1) {
        return refuse(res, 400, "WebSocket: a GET over HTTP/1.1 is needed\n");
    }
    if (!request_lists(req, "Upgrade", "websocket")) {
        return refuse(res, 426, "WebSocket: Upgrade: websocket is needed\n");
    }
    if (!request_lists(req, "Connection", "upgrade")) {
        return refuse(res, 400, "WebSocket: Connection: upgrade is needed\n");
    }
    const char *ver = simul_http_request_header(req, "Sec-WebSocket-Version");
    if (!ver || strcmp(ver, "13") != 0) {
        return refuse(res, 426, "WebSocket: only version 13 is spoken\n");
    }
    const char *key = simul_http_request_header(req, "Sec-WebSocket-Key");
    if (!key_ok(key)) {
        return refuse(res, 400, "WebSocket: bad Sec-WebSocket-Key\n");
    }
    if (!origin_ok(req, opts)) {
        return refuse(res, 403, "WebSocket: origin not allowed\n");
    }
    /* The subprotocol: the server's first preference the client offers. */
    const char *proto = NULL;
    for (size_t i = 0; opts && i < opts->nsubprotocols && !proto; i++) {
        if (request_lists(req, "Sec-WebSocket-Protocol", opts->subprotocols[i])) {
            proto = opts->subprotocols[i];
        }
    }
    simul_ws *ws;
    int rc = session_new(NULL, true, opts, &ws);
    if (rc < 0) {
        return rc;
    }
    if (proto && !(ws->subprotocol = strdup(proto))) {
        session_free(ws);
        return -ENOMEM;
    }
    /* permessage-deflate: the first offer we can honour, if the application wants it. */
    char ext[160] = "";
    if (ws->opts.deflate) {
        const char *vals[16];
        size_t nv = 0, nh = simul_http_request_header_count(req);
        for (size_t i = 0; i < nh && nv < 16; i++) {
            const char *hn, *hv;
            if (simul_http_request_header_at(req, i, &hn, &hv) == 0 &&
                strcasecmp(hn, "Sec-WebSocket-Extensions") == 0) {
                vals[nv++] = hv;
            }
        }
        http_ws_pmd pm;
        rc = http_ws_pmd_accept(vals, nv, &ws->opts, &pm, ext, sizeof ext);
        if (rc > 0) {
            rc = enable_deflate(ws, &pm, ext);
        }
        if (rc < 0) {
            session_free(ws);
            return rc == -ENOSPC ? -EPROTO : rc;
        }
    }
    char accept[29], head[512];
    simul_ws_accept_key(key, strlen(key), accept);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s\r\n",
                     accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
                     proto ? "\r\n" : "", ext[0] ? "Sec-WebSocket-Extensions: " : "", ext,
                     ext[0] ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head) {
        session_free(ws);
        return refuse(res, 400, "WebSocket: subprotocol name too long\n");
    }
    http_upgrade_hooks hooks = {on_drain, on_release, ws};
    const char *rest;
    size_t rest_len;
    rc = http_takeover(req, res, head, (size_t)n, &hooks, &ws->s, &rest, &rest_len);
    if (rc < 0) {
        session_free(ws);
        return rc;
    }
    ws->req = req;
    if (rest_len > ws->rcap) {
        rest_len = ws->rcap; /* cannot happen: the connection's buffer is smaller */
    }
    memcpy(ws->rbuf, rest, rest_len); /* frames the client sent right behind its request */
    ws->rend = rest_len;
    if (!ws->opts.no_cancel_on_disconnect) {
        ws->owner = simul_task_current();
    }
    rc = session_start(ws);
    if (rc < 0) {
        session_free(ws); /* unhooks itself: the connection just closes */
        return rc;
    }
    *out = ws;
    return 0;
}

/* ---- the client's opening handshake --------------------------------------------------------- */

static void say(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || !whylen || why[0]) {
        return; /* the first reason is the cause; what follows is its consequence */
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static bool has_ctl(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

/* Whether a response field's span equals name (case-insensitive). */
static bool span_is(const char *base, simul_http_span sp, const char *name)
{
    return sp.len == strlen(name) && strncasecmp(base + sp.off, name, sp.len) == 0;
}

/* Whether any field `name` of the head lists token (case-insensitive). */
static bool head_lists(const simul_http_head *h, const char *name, const char *token)
{
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const simul_http_header *f = &h->headers[i];
        char tmp[1024];
        if (span_is(h->base, f->name, name) && f->value.len < sizeof tmp) {
            memcpy(tmp, h->base + f->value.off, f->value.len);
            tmp[f->value.len] = '\0';
            if (list_has(tmp, token)) {
                return true;
            }
        }
    }
    return false;
}

/* The fields `name` in the head: how many, and the first's value. */
static int head_field(const simul_http_head *h, const char *name, const char **v, size_t *len)
{
    int n = 0;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const simul_http_header *f = &h->headers[i];
        if (span_is(h->base, f->name, name) && n++ == 0) {
            *v = h->base + f->value.off;
            *len = f->value.len;
        }
    }
    return n;
}

/* Checks a 101's fields (RFC 6455 4.1, the client's steps 2-6). Returns 0 or -EPROTO with the
 * reason said. */
static int check_101(simul_ws *ws, const simul_http_head *h, const char *accept, char *why,
                     size_t whylen)
{
    const char *v = NULL;
    size_t vl = 0;
    if (!head_lists(h, "Upgrade", "websocket")) {
        say(why, whylen, "WebSocket handshake: the 101 lacks Upgrade: websocket");
        return -EPROTO;
    }
    if (!head_lists(h, "Connection", "upgrade")) {
        say(why, whylen, "WebSocket handshake: the 101 lacks Connection: upgrade");
        return -EPROTO;
    }
    int n = head_field(h, "Sec-WebSocket-Accept", &v, &vl);
    if (n == 0) {
        say(why, whylen, "WebSocket handshake: the 101 lacks Sec-WebSocket-Accept");
        return -EPROTO;
    }
    if (n > 1 || vl != 28 || memcmp(v, accept, 28) != 0) {
        say(why, whylen, "WebSocket handshake: wrong Sec-WebSocket-Accept (the server did not "
                         "answer this key)");
        return -EPROTO;
    }
    n = head_field(h, "Sec-WebSocket-Extensions", &v, &vl);
    if (n && !ws->opts.deflate) {
        say(why, whylen, "WebSocket handshake: the server chose extension \"%.*s\", none was "
                         "offered", (int)(vl > 64 ? 64 : vl), v);
        return -EPROTO;
    }
    if (n > 1) {
        say(why, whylen, "WebSocket handshake: more than one Sec-WebSocket-Extensions");
        return -EPROTO;
    }
    if (n == 1) {
        char val[256], reason[160] = "";
        http_ws_pmd pm;
        if (vl >= sizeof val) {
            say(why, whylen, "WebSocket handshake: Sec-WebSocket-Extensions over 255 bytes");
            return -EPROTO;
        }
        memcpy(val, v, vl);
        val[vl] = '\0';
        int rc = http_ws_pmd_check_answer(val, &ws->opts, &pm, reason, sizeof reason);
        if (rc < 0) {
            say(why, whylen, "%s", reason);
            return rc;
        }
        rc = enable_deflate(ws, &pm, val);
        if (rc < 0) {
            return rc;
        }
    }
    n = head_field(h, "Sec-WebSocket-Protocol", &v, &vl);
    if (n > 1) {
        say(why, whylen, "WebSocket handshake: more than one Sec-WebSocket-Protocol");
        return -EPROTO;
    }
    if (n == 1) {
        for (size_t i = 0; i < ws->opts.nsubprotocols; i++) {
            if (strlen(ws->opts.subprotocols[i]) == vl &&
                memcmp(ws->opts.subprotocols[i], v, vl) == 0) {
                ws->subprotocol = strndup(v, vl);
                return ws->subprotocol ? 0 : -ENOMEM;
            }
        }
        say(why, whylen, "WebSocket handshake: the server chose subprotocol \"%.*s\", which was "
                         "not offered", (int)(vl > 64 ? 64 : vl), v);
        return -EPROTO;
    }
    return 0;
}

/* Keeps the 101's fields for simul_ws_response_header*: pointers and strings in one block. */
static int keep_answer(simul_ws *ws, const simul_http_head *h)
{
    size_t n = h->nheaders, bytes = 2 * n * sizeof(char *);
    for (size_t i = 0; i < n; i++) {
        bytes += h->headers[i].name.len + h->headers[i].value.len + 2;
    }
    char **a = malloc(bytes ? bytes : 1);
    if (!a) {
        return -ENOMEM;
    }
    char *p = (char *)(a + 2 * n);
    for (size_t i = 0; i < n; i++) {
        const simul_http_header *f = &h->headers[i];
        a[2 * i] = p;
        memcpy(p, h->base + f->name.off, f->name.len);
        p += f->name.len;
        *p++ = '\0';
        a[2 * i + 1] = p;
        memcpy(p, h->base + f->value.off, f->value.len);
        p += f->value.len;
        *p++ = '\0';
    }
    ws->answer = a;
    ws->nanswer = n;
    return 0;
}

/* A refusal's words: "403 Forbidden" and the start of its body if it came along. */
static void say_refusal(simul_http_parser *p, const char *buf, size_t len, char *why,
                        size_t whylen)
{
    const simul_http_head *h = &p->head;
    char body[96] = "";
    size_t used;
    if (h->framing != SIMUL_HTTP_BODY_NONE &&
        simul_http_parser_feed(p, buf, len, &used) == SIMUL_HTTP_BODY) {
        size_t k = 0;
        for (size_t i = 0; i < p->body_len && k + 1 < sizeof body; i++) {
            char c = p->body[i];
            if (c == '\r' || c == '\n') {
                c = ' ';
            }
            if ((unsigned char)c >= 0x20 && c != 0x7f && !(c == ' ' && k && body[k - 1] == ' ')) {
                body[k++] = c; /* (lines joined by one space) */
            }
        }
        while (k && body[k - 1] == ' ') {
            k--;
        }
        body[k] = '\0';
    }
    say(why, whylen, "WebSocket handshake refused: the server answered %u %.*s%s%s%s",
        (unsigned)h->status, (int)(h->reason.len > 64 ? 64 : h->reason.len),
        h->base + h->reason.off, h->status == 426 ? " (it wants another protocol version)" : "",
        body[0] ? ": " : "", body);
}

int http_ws_client_handshake(const http_ws_handshake *hs, simul_ws **out)
{
    char *why = hs->why;
    size_t whylen = hs->whylen;
    if (hs->status) {
        *hs->status = 0;
    }
    simul_stream *s = hs->s;
    if (!s || !hs->host || !hs->path || !out || hs->path[0] != '/' || has_ctl(hs->host) ||
        has_ctl(hs->path) || strchr(hs->path, ' ') || strchr(hs->host, ' ')) {
        say(why, whylen, "WebSocket: a bad host or path");
        return -EINVAL;
    }
    const simul_ws_opts *opts = hs->opts;
    for (size_t i = 0; opts && i < opts->nsubprotocols; i++) {
        const char *sp = opts->subprotocols[i];
        if (!sp || !*sp || has_ctl(sp) || strpbrk(sp, " ,;\"")) {
            say(why, whylen, "WebSocket: a subprotocol name that is not a token");
            return -EINVAL;
        }
    }
    simul_ws *ws;
    int rc = session_new(s, false, opts, &ws);
    if (rc < 0) {
        return rc;
    }
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 4) {
        uint32_t k = next_key(ws);
        memcpy(raw + i, &k, 4);
    }
    char key[25], accept[29];
    http_ws_base64_16(raw, key);
    simul_ws_accept_key(key, 24, accept);
    /* The request: offered subprotocols joined by ", ", then the caller's fields. */
    size_t cap = 700 + strlen(hs->host) + strlen(hs->path) + (hs->extra ? strlen(hs->extra) : 0);
    for (size_t i = 0; i < ws->opts.nsubprotocols; i++) {
        cap += strlen(ws->opts.subprotocols[i]) + 2;
    }
    char *req = malloc(cap);
    if (!req) {
        session_free(ws);
        return -ENOMEM;
    }
    int n = snprintf(req, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                     hs->path, hs->host, key);
    for (size_t i = 0; i < ws->opts.nsubprotocols; i++) {
        n += snprintf(req + n, cap - (size_t)n, "%s%s", i ? ", " : "Sec-WebSocket-Protocol: ",
                      ws->opts.subprotocols[i]);
    }
    if (ws->opts.nsubprotocols) {
        n += snprintf(req + n, cap - (size_t)n, "\r\n");
    }
    if (ws->opts.deflate) {
        char offer[160];
        if (http_ws_pmd_offer(&ws->opts, offer, sizeof offer) == 0) {
            n += snprintf(req + n, cap - (size_t)n, "Sec-WebSocket-Extensions: %s\r\n", offer);
        }
    }
    n += snprintf(req + n, cap - (size_t)n, "%s\r\n", hs->extra ? hs->extra : "");
    rc = simul_stream_write(s, req, (size_t)n);
    free(req);
    if (rc == 0) {
        rc = simul_stream_drain(s);
    }
    if (rc < 0) {
        if (rc != -ETIMEDOUT && rc != -ECANCELED) {
            say(why, whylen, "WebSocket handshake: send failed: %s", strerror(-rc));
        }
        session_free(ws);
        return rc;
    }
    /* The answer, through the HTTP parser in response mode (strict, with limits). The head
     * fits the session's read buffer whole (the limits stay far below 64 KiB); the bytes behind
     * a 101 stay in it for the frame reader. */
    /* As many fields as the limits allow (max_headers, default 100), on the heap. */
    const simul_http_limits *lim = hs->limits;
    uint32_t maxh = lim && lim->max_headers ? lim->max_headers : SIMUL_HTTP_DEFAULT_MAX_HEADERS;
    if (maxh > 100000) {
        say(why, whylen, "WebSocket: limits.max_headers over 100000");
        session_free(ws);
        return -EINVAL;
    }
    simul_http_header *fields = malloc(maxh * sizeof *fields);
    if (!fields) {
        session_free(ws);
        return -ENOMEM;
    }
    simul_http_parser p;
    rc = simul_http_parser_init(&p, SIMUL_HTTP_RESPONSE, hs->limits, fields, maxh);
    if (rc == 0) {
        rc = simul_http_parser_response_to(&p, "GET");
    }
    uint64_t head_max =
        (uint64_t)(lim && lim->max_request_line ? lim->max_request_line
                                                 : SIMUL_HTTP_DEFAULT_MAX_REQUEST_LINE) +
        (lim && lim->max_header_bytes ? lim->max_header_bytes : SIMUL_HTTP_DEFAULT_MAX_HEADER_BYTES);
    if (rc < 0 || head_max >= ws->rcap) {
        say(why, whylen, "WebSocket: response head limits over %zu bytes", ws->rcap);
        free(fields);
        session_free(ws);
        return -EINVAL;
    }
    size_t off = 0;
    for (;;) {
        size_t used = 0;
        int ev = simul_http_parser_feed(&p, (const char *)ws->rbuf + off, ws->rend - off, &used);
        if (ev < 0) {
            if (p.error == SIMUL_HTTP_E_TOO_MANY_HEADERS) {
                say(why, whylen, "WebSocket handshake: the answer is over a limit: too many "
                                 "header fields (more than %u: limits.max_headers)", maxh);
            }
            say(why, whylen, "WebSocket handshake: %s: %s",
                ev == -EMSGSIZE ? "the answer is over a limit" : "malformed response",
                simul_http_error_reason(p.error));
            rc = ev;
            break;
        }
        if (ev == SIMUL_HTTP_HEAD) {
            int st = p.head.status;
            if (hs->status) {
                *hs->status = st;
            }
            if (st != 101 && st < 200) {
                off += used; /* an interim answer (100, 103): the real one follows */
                continue;
            }
            if (hs->on_field) {
                for (uint32_t i = 0; i < p.head.nheaders; i++) {
                    const simul_http_header *f = &p.head.headers[i];
                    hs->on_field(hs->arg, p.head.base + f->name.off, f->name.len,
                                 p.head.base + f->value.off, f->value.len);
                }
            }
            if (st != 101) {
                say_refusal(&p, (const char *)ws->rbuf + off + used, ws->rend - off - used, why,
                            whylen);
                rc = -EPROTO;
                break;
            }
            rc = check_101(ws, &p.head, accept, why, whylen);
            if (rc == 0) {
                rc = keep_answer(ws, &p.head);
            }
            off += used;
            break;
        }
        off += used;
        if (ev == SIMUL_HTTP_END) {
            continue; /* the end of an interim answer */
        }
        /* NEED_MORE: keep what the parser has not taken, read more. */
        if (off > 0) {
            memmove(ws->rbuf, ws->rbuf + off, ws->rend - off);
            ws->rend -= off;
            off = 0;
        }
        long k = simul_stream_read(s, ws->rbuf + ws->rend, ws->rcap - ws->rend);
        if (k > 0) {
            ws->rend += (size_t)k;
            continue;
        }
        if (k == 0) {
            say(why, whylen, "WebSocket handshake: the server closed the connection %s",
                ws->rend ? "in the middle of its answer" : "without answering");
            rc = -ECONNRESET;
        } else {
            rc = (int)k;
            if (rc != -ETIMEDOUT && rc != -ECANCELED) {
                say(why, whylen, "WebSocket handshake: read failed: %s", strerror(-rc));
            }
        }
        break;
    }
    free(fields);
    if (rc < 0) {
        session_free(ws);
        return rc;
    }
    ws->rstart = off; /* frames the server sent right behind its 101 */
    ws->own_stream = hs->own_stream;
    rc = session_start(ws);
    if (rc < 0) {
        ws->own_stream = false; /* the caller still has the stream */
        session_free(ws);
        return rc;
    }
    *out = ws;
    return 0;
}

int simul_ws_client_open(simul_stream *s, const char *host, const char *path,
                         const simul_ws_opts *opts, int *status, simul_ws **out)
{
    http_ws_handshake hs = {.s = s, .host = host, .path = path, .opts = opts, .status = status};
    return http_ws_client_handshake(&hs, out);
}

/* ---- messages ------------------------------------------------------------------------------- */

int simul_ws_recv(simul_ws *ws, const char **data, size_t *len)
{
    if (!ws || !data || !len) {
        return -EINVAL;
    }
    if (ws->receiving) {
        return -EBUSY;
    }
    msg_free(ws->cur);
    ws->cur = NULL;
    ws->receiving = true;
    void *item;
    int rc = simul_queue_get(ws->q, &item);
    ws->receiving = false;
    if (rc == -ESHUTDOWN) {
        return ws->err;
    }
    if (rc < 0) {
        return rc;
    }
    ws->cur = item;
    *data = ws->cur->data;
    *len = ws->cur->len;
    return ws->cur->type;
}

/* After a frame: wait while the write buffer is full (backpressure). */
static int send_done(simul_ws *ws, int rc)
{
    if (rc == 0) {
        rc = simul_stream_drain(ws->s);
    }
    if (rc == -EPIPE || rc == -ECONNRESET || rc == -EBADF || rc == -ESHUTDOWN) {
        rc = -EPIPE;
    }
    return rc;
}

static int send_check(simul_ws *ws)
{
    if (ws->sending) {
        return -EBUSY;
    }
    if (ws->close_sent || (ws->reader_done && ws->err != 0)) {
        return -EPIPE;
    }
    return 0;
}

int simul_ws_send(simul_ws *ws, int type, const void *data, size_t len)
{
    if (!ws || (!data && len) || (type != SIMUL_WS_TEXT && type != SIMUL_WS_BINARY)) {
        return -EINVAL;
    }
    int rc = send_check(ws);
    if (rc < 0) {
        return rc;
    }
    if (ws->in_part) {
        return -EBUSY; /* a message sent in parts is not finished */
    }
    uint32_t st = 0;
    if (type == SIMUL_WS_TEXT && (!simul_ws_utf8_check(&st, data, len) || st != 0)) {
        return -EINVAL;
    }
    ws->sending = true;
    if (ws->z) {
        rc = http_ws_deflate(ws->z, data, len, true, &ws->zout);
        rc = rc < 0 ? rc : write_frame_rsv(ws, type, true, true, ws->zout.p, ws->zout.len);
    } else {
        rc = write_frame(ws, type, true, data, len);
    }
    rc = send_done(ws, rc);
    ws->sending = false;
    return rc;
}

int simul_ws_send_text(simul_ws *ws, const char *text)
{
    return text ? simul_ws_send(ws, SIMUL_WS_TEXT, text, strlen(text)) : -EINVAL;
}

int simul_ws_send_part(simul_ws *ws, int type, const void *data, size_t len, bool last)
{
    if (!ws || (!data && len)) {
        return -EINVAL;
    }
    int rc = send_check(ws);
    if (rc < 0) {
        return rc;
    }
    if (ws->in_part ? type != SIMUL_WS_CONT
                    : (type != SIMUL_WS_TEXT && type != SIMUL_WS_BINARY)) {
        return -EINVAL;
    }
    if (!ws->in_part) {
        ws->out_utf8 = type == SIMUL_WS_TEXT ? 0 : UINT32_MAX; /* MAX: binary, unchecked */
    }
    if (ws->out_utf8 != UINT32_MAX) {
        uint32_t st = ws->out_utf8;
        if (!simul_ws_utf8_check(&st, data, len) || (last && st != 0)) {
            return -EINVAL;
        }
        ws->out_utf8 = st;
    }
    ws->sending = true;
    if (ws->z) {
        /* One deflate stream across the parts, sync-flushed at each so every frame can be
         * inflated as it comes; RSV1 on the first frame only (RFC 7692 6.1). */
        rc = http_ws_deflate(ws->z, data, len, last, &ws->zout);
        rc = rc < 0 ? rc : write_frame_rsv(ws, ws->in_part ? SIMUL_WS_CONT : type, last,
                                           !ws->in_part, ws->zout.p, ws->zout.len);
    } else {
        rc = write_frame(ws, ws->in_part ? SIMUL_WS_CONT : type, last, data, len);
    }
    ws->in_part = !last;
    rc = send_done(ws, rc);
    ws->sending = false;
    return rc;
}

int simul_ws_ping(simul_ws *ws, const void *data, size_t len)
{
    if (!ws || len > 125 || (!data && len)) {
        return -EINVAL;
    }
    if (ws->close_sent || ws->reader_done) {
        return -EPIPE;
    }
    return write_frame(ws, SIMUL_WS_PING, true, data, len) < 0 ? -EPIPE : 0;
}

int simul_ws_close(simul_ws *ws, int code, const char *reason)
{
    if (!ws) {
        return -EINVAL;
    }
    int rc = 0;
    if (code == 0) {
        code = SIMUL_WS_CLOSE_NORMAL;
    }
    uint32_t st = 0;
    size_t rl = reason ? strlen(reason) : 0;
    if (!simul_ws_close_code_valid(code) || rl > 123 ||
        (reason && (!simul_ws_utf8_check(&st, (const uint8_t *)reason, rl) || st != 0))) {
        code = SIMUL_WS_CLOSE_INTERNAL;
        reason = NULL;
        rc = -EINVAL;
    }
    if (!ws->close_sent && !ws->reader_done) {
        write_close(ws, code, reason);
    }
    /* Messages nobody will take: dropped, so a reader held by a full queue goes on to the
     * peer's close; a task waiting in recv wakes (it returns what recv returns once closed). */
    simul_queue_shutdown(ws->q, true, msg_free);
    if (ws->receiving) {
        simul_scope sh;
        simul_scope_shield(&sh);
        while (ws->receiving) {
            simul_yield(); /* let it leave recv before the session is freed */
        }
        simul_scope_end(&sh);
    }
    /* Wait for the peer's close (or the end of the connection). */
    int wrc = 0;
    if (!ws->reader_done) {
        simul_scope dl;
        simul_scope_timeout(&dl, ws->opts.close_timeout);
        wrc = simul_event_wait(ws->ended);
        simul_scope_end(&dl);
    }
    if (rc == 0) {
        if (wrc < 0) {
            rc = wrc;
        } else if (ws->err != 0 && ws->err != -ECANCELED) {
            rc = -ECONNRESET;
        }
    }
    session_free(ws);
    return rc;
}

int simul_ws_close_code(const simul_ws *ws)
{
    return ws ? ws->close_code : 0;
}

const char *simul_ws_close_reason(const simul_ws *ws)
{
    return ws ? ws->close_reason : "";
}

const char *simul_ws_subprotocol(const simul_ws *ws)
{
    return ws ? ws->subprotocol : NULL;
}

const char *simul_ws_extensions(const simul_ws *ws)
{
    return ws ? ws->extensions : NULL;
}

size_t simul_ws_response_header_count(const simul_ws *ws)
{
    return ws ? ws->nanswer : 0;
}

int simul_ws_response_header_at(const simul_ws *ws, size_t i, const char **name,
                                const char **value)
{
    if (!ws || i >= ws->nanswer) {
        return -ERANGE;
    }
    if (name) {
        *name = ws->answer[2 * i];
    }
    if (value) {
        *value = ws->answer[2 * i + 1];
    }
    return 0;
}

const char *simul_ws_response_header(const simul_ws *ws, const char *name)
{
    for (size_t i = 0; ws && name && i < ws->nanswer; i++) {
        if (strcasecmp(ws->answer[2 * i], name) == 0) {
            return ws->answer[2 * i + 1];
        }
    }
    return NULL;
}
