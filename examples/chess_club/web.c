/* web.c — the chess club's web process, N of them under the supervisor's ready-made main:
 * POST /simuls stores a new simul in Redis and publishes its job to RabbitMQ, answering 202 only
 * once the broker confirmed it; GET /simuls/<id> its state from Redis; GET /simuls/<id>/events
 * its moves as Server-Sent Events. Each worker holds ONE pattern subscription (club:{*}:events)
 * whose messages a fan-out task formats ONCE as a shared SSE event (simul_http_sse_event,
 * reference-counted) and hands to the queues of the SSE clients of that simul, so any number of
 * browsers costs Redis one subscriber per process and each move one copy in memory, however
 * many watch it. A client's queue is bounded in events and in bytes; one that falls that far
 * behind is dropped (see CLIENT_QUEUE_BYTES). A client first gets what Redis
 * already stored, then the live moves (skipping any it has seen, refetching on a gap: pub/sub
 * loses what it sent while a connection was down). /readyz fails from the start of a drain.
 * Behind HAProxy it takes the PROXY protocol (--proxy-protocol 1: every connection starts with
 * the balancer's v1/v2 header naming the client) and believes X-Forwarded-For only from the
 * proxies listed in --trusted-proxies, so /whoami and the access log name the browser, not nginx.
 * Usage: club_web --host H --port P --workers N --redis HOST:PORT [--amqp URL]
 *        [--drain-delay S] [--stop-timeout S] [--keepalive S] [--proxy-protocol 0|1]
 *        [--trusted-proxies "ADDR, CIDR, ..."] [--confirm-timeout S] [--sse-send-timeout S]
 *        [--reuseport 0|1] */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <simul.h>
#include <simul/amqp.h>
#include <simul/http.h>
#include <simul/redis.h>
#include <simul/supervisor.h>

#include "analysis.h"
#include "store.h"

static const char *host = "127.0.0.1";
static const char *port = "8080";
static int workers = 2;
static const char *redis_addr = "127.0.0.1:6379";
static const char *amqp_url; /* NULL: no broker, POST /simuls answers 503 */
static double drain_delay = 0, stop_timeout = 25, keepalive = 75;
static bool proxy_protocol;
static bool reuseport; /* one SO_REUSEPORT socket per worker: see --reuseport in the usage */
static const char *trusted_proxies; /* NULL: forwarding headers ignored */
static double heartbeat = 15;
static double confirm_timeout = 5; /* s: POST /simuls waits this long for the broker's confirm */
/* An SSE client's queue: at most CLIENT_QUEUE events and CLIENT_QUEUE_BYTES of them (their wire
 * size: what the queue pins while it holds them; a move is ~200 bytes, so the count is the bound
 * for moves and the bytes for anything larger). A client that falls this far behind is dropped,
 * not coalesced: its queue is emptied at once (the memory given back now, not when it reads), it
 * gets an "overflow" event saying why, and the stream ends. Its EventSource reconnects and the
 * catch-up sends what Redis stored, which the page skips up to the moves it has: nothing is
 * lost, and a slow reader costs the process a bounded amount, never the other clients' latency.
 * Coalescing (keeping only each board's latest position) would lose the move list the page
 * shows, and Redis already holds the exact history to resend. */
#define CLIENT_QUEUE 1024
#define CLIENT_QUEUE_BYTES (256 * 1024)
#define FAREWELL_TIMEOUT 5.0 /* s: the overflow event's write to a client too slow to take it */
/* s: one event's write may wait this long for a client that reads nothing (its handler waits in
 * the write, so its queue's overflow alone would not free it); then the connection closes. */
static double sse_send_timeout = 30;

static simul_redis_conn *rds;
static simul_amqp_conn *amqp;
static simul_amqp_channel *pub; /* confirm mode */
static bool draining;
static int drain_kind;
static simul_event *drain_ev;

/* ---- SSE clients and the fan-out ---------------------------------------------------------- */

typedef struct sse_client {
    long id;
    simul_queue *q; /* simul_http_sse_event *, one reference each */
    size_t queued;  /* the wire bytes of the events in q */
    bool overflow;  /* it fell a queue's bound behind: its queue is shut down and emptied */
    struct sse_client *next, *prev;
} sse_client;
static sse_client *clients;
static unsigned long n_clients, clients_peak;

/* glibc keeps freed heap resident: 1,000 SSE clients gone from a worker left ~40 MB of RSS with
 * under 1 MB in use, of which malloc_trim(0) gave back about 12 MB (the rest is task stacks,
 * pooled by libsimul). So the moment the clients fall to a quarter of a peak worth it, a trim is
 * due: rare (once per such fall), a few milliseconds. Not in the handler that counted the last
 * one out: most of a client's memory is its connection's, freed only when the connection ends,
 * after the handler (an ended stream's client closes after reading the end). So the trim task
 * waits, woken by that moment, for the connections of the clients that left to end: the
 * server's count back to what it was at the peak less those clients. */
#define TRIM_PEAK 256
static simul_http_server *web_srv;
static size_t conns_at_peak; /* the server's connections when clients_peak was reached */
static size_t trim_conns;    /* the trim waits for the connections to fall to this */
static simul_event *trim_ev; /* set the moment the clients fall to a quarter of their peak */

static int trim_task(void *arg)
{
    (void)arg;
    for (;;) {
        if (simul_event_wait(trim_ev) < 0) return 0;
        simul_event_clear(trim_ev);
        if (simul_http_server_wait_connections(web_srv, trim_conns) < 0) return 0;
#ifdef __GLIBC__
        malloc_trim(0);
#endif
    }
}

static void client_add(sse_client *c)
{
    c->next = clients;
    c->prev = NULL;
    if (clients) clients->prev = c;
    clients = c;
    if (++n_clients > clients_peak) {
        clients_peak = n_clients;
        conns_at_peak = simul_http_server_connections(web_srv);
    }
}

static void client_remove(sse_client *c)
{
    if (c->prev) c->prev->next = c->next;
    else clients = c->next;
    if (c->next) c->next->prev = c->prev;
    n_clients--;
    if (clients_peak >= TRIM_PEAK && n_clients <= clients_peak / 4) {
        size_t left = clients_peak - n_clients;
        trim_conns = conns_at_peak > left ? conns_at_peak - left : 0;
        clients_peak = n_clients; /* the next trim waits for a new peak worth it */
        conns_at_peak = trim_conns;
        simul_event_set(trim_ev);
    }
}

static void unref_item(void *item)
{
    simul_http_sse_event_unref(item);
}

/* One published message as the event every client of the simul is sent: a move ("move", id
 * "board:n", the payload re-encoded compact on one line) or the end ("end"); NULL for anything
 * else (not JSON, no board or n: nothing a page could use). */
static simul_http_sse_event *event_of(const char *payload, size_t plen)
{
    json_t *v = json_loadb(payload, plen, 0, NULL);
    if (!json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    simul_http_sse_event *ev = NULL;
    json_t *b = json_object_get(v, "board"), *n = json_object_get(v, "n");
    if (json_is_true(json_object_get(v, "end"))) {
        simul_http_sse_event_new(&ev, "end", NULL, -1, "{\"end\":true}");
    } else if (json_is_integer(b) && json_is_integer(n) && json_integer_value(b) >= 0 &&
               json_integer_value(b) < CLUB_MAX_BOARDS && json_integer_value(n) > 0 &&
               json_integer_value(n) <= INT_MAX) {
        char *s = json_dumps(v, JSON_COMPACT);
        char eid[48];
        snprintf(eid, sizeof eid, "%d:%d", (int)json_integer_value(b), (int)json_integer_value(n));
        if (s) simul_http_sse_event_new(&ev, "move", eid, -1, s);
        free(s);
    }
    json_decref(v);
    return ev;
}

/* A client that fell a bound behind: dropped (see CLIENT_QUEUE_BYTES). The immediate shutdown
 * hands its queued events back now; its handler sees -ESHUTDOWN and says why. */
static void client_overflow(sse_client *c)
{
    c->overflow = true;
    c->queued = 0;
    simul_queue_shutdown(c->q, true, unref_item);
}

/* Never suspends between taking a message and handing it to every queue, so no client that is
 * registered misses one. */
static int fanout_task(void *arg)
{
    simul_redis_subscription *sub = arg;
    for (;;) {
        simul_redis_reply *msg;
        int rc = simul_redis_subscription_next(sub, &msg);
        if (rc < 0) return rc == -ECANCELED || rc == -ESHUTDOWN ? 0 : rc;
        size_t n = simul_redis_reply_len(msg), clen = 0, plen = 0;
        const char *ch = n == 4 ? simul_redis_reply_str(simul_redis_reply_elem(msg, 2), &clen) : NULL;
        const char *payload = n == 4 ? simul_redis_reply_str(simul_redis_reply_elem(msg, 3), &plen)
                                     : NULL;
        long id = ch ? club_channel_id(ch, clen) : -1;
        simul_http_sse_event *ev = NULL; /* made for the first client that wants it */
        bool tried = false;
        for (sse_client *c = clients; id > 0 && payload && c; c = c->next) {
            if (c->id != id || c->overflow) continue;
            if (!tried) {
                ev = event_of(payload, plen);
                tried = true;
            }
            if (!ev) break;
            size_t size = simul_http_sse_event_size(ev);
            if (c->queued + size <= CLIENT_QUEUE_BYTES && simul_queue_put_nowait(c->q, ev) == 0) {
                simul_http_sse_event_ref(ev); /* the queue's reference */
                c->queued += size;
            } else {
                client_overflow(c); /* the count's bound, the bytes' or no memory */
            }
        }
        simul_http_sse_event_unref(ev); /* the queues hold theirs */
        simul_redis_reply_free(msg);
    }
}

/* ---- handlers ------------------------------------------------------------------------------ */

static int error_json(simul_http_response *res, int status, const char *why)
{
    json_t *v = json_pack("{s:s}", "error", why);
    int rc = v ? simul_http_response_json(res, status, v) : -ENOMEM;
    json_decref(v);
    return rc;
}

static int readyz(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    /* Only the drain: a Redis or broker outage hits every web process alike, and a balancer
     * with no server left would answer 503 to the requests that need neither. */
    return simul_http_response_text(res, draining ? 503 : 200, draining ? "draining\n" : "ok\n");
}

static int healthz(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    return simul_http_response_text(res, 200, "ok\n");
}

static int json_hello(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    json_t *v = json_pack("{s:s}", "message", "Hello, World!");
    int rc = v ? simul_http_response_json(res, 200, v) : -ENOMEM;
    json_decref(v);
    return rc;
}

/* Who the server thinks the client is: the PROXY header's source, then X-Forwarded-For walked
 * past the trusted proxies; `peer` is the TCP peer itself (the balancer). */
static int whoami(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    struct sockaddr_storage ss;
    char peer[64] = "?";
    if (simul_http_request_peername(req, &ss) > 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof peer);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof peer);
    }
    json_t *v = json_pack("{s:s,s:s,s:s,s:i}", "addr", simul_http_request_remote_addr(req),
                          "scheme", simul_http_request_scheme(req), "peer", peer, "pid",
                          (int)getpid());
    int rc = v ? simul_http_response_json(res, 200, v) : -ENOMEM;
    json_decref(v);
    return rc;
}

#define LIST_MAX 50 /* GET /simuls: the most recent simuls, newest first */

/* The page's index: the last LIST_MAX ids (club:next counts them) with state and size, one
 * pipeline of HMGETs. */
static int list_simuls(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    simul_redis_reply *r;
    int rc = simul_redis_command(rds, &r, "GET club:next");
    const char *s = rc == 0 ? simul_redis_reply_str(r, NULL) : NULL;
    long last = s ? atol(s) : 0;
    simul_redis_reply_free(r);
    if (rc < 0) return error_json(res, 503, "redis unavailable");
    long first = last - LIST_MAX + 1 > 1 ? last - LIST_MAX + 1 : 1;
    int n = last >= first ? (int)(last - first + 1) : 0;
    simul_redis_reply *rows[LIST_MAX] = {0};
    int results[LIST_MAX];
    if (n > 0) {
        simul_redis_pipeline *p;
        rc = simul_redis_pipeline_new(rds, &p);
        char key[CLUB_KEY_MAX];
        for (long id = last; rc == 0 && id >= first; id--) {
            club_key_simul(key, id);
            rc = simul_redis_pipeline_add(p, "HMGET %s state boards moves played pace_ms", key);
        }
        if (rc == 0) rc = simul_redis_pipeline_exec(p, rows, results);
        simul_redis_pipeline_free(p);
    }
    json_t *v = json_object(), *a = json_array();
    for (int i = 0; rc == 0 && i < n; i++) {
        const char *f[5];
        for (size_t k = 0; k < 5; k++) {
            const simul_redis_reply *e = rows[i] ? simul_redis_reply_elem(rows[i], k) : NULL;
            f[k] = e ? simul_redis_reply_str(e, NULL) : NULL;
        }
        if (!f[0] || !f[1]) continue; /* an id given out whose HSET failed */
        json_array_append_new(a, json_pack("{s:I,s:s,s:i,s:i,s:i,s:i}", "id",
                                           (json_int_t)(last - i), "state", f[0], "boards",
                                           atoi(f[1]), "moves", f[2] ? atoi(f[2]) : 0, "played",
                                           f[3] ? atoi(f[3]) : 0, "pace_ms",
                                           f[4] ? atoi(f[4]) : 0));
    }
    json_object_set_new(v, "simuls", a);
    for (int i = 0; i < n; i++) simul_redis_reply_free(rows[i]);
    if (rc < 0) {
        json_decref(v);
        return error_json(res, 503, "redis unavailable");
    }
    rc = simul_http_response_json(res, 200, v);
    json_decref(v);
    return rc;
}

static int get_int(json_t *o, const char *name, long lo, long hi, long def, long *out)
{
    json_t *v = json_object_get(o, name);
    if (!v) {
        *out = def;
        return def < 0 ? -1 : 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) return -1;
    *out = (long)json_integer_value(v);
    return 0;
}

static int post_simul(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    json_t *body;
    int rc = simul_http_request_json(req, &body);
    if (rc == -EBADMSG) return error_json(res, 400, "the body is not JSON");
    if (rc < 0) return rc;
    long boards, moves, pace;
    if (!json_is_object(body) || get_int(body, "boards", 1, CLUB_MAX_BOARDS, -1, &boards) < 0 ||
        get_int(body, "moves", 1, CLUB_MAX_MOVES, -1, &moves) < 0 ||
        get_int(body, "pace_ms", 0, CLUB_MAX_PACE_MS, 0, &pace) < 0) {
        json_decref(body);
        return error_json(res, 400, "want {\"boards\": 1..64, \"moves\": 1..1000, "
                                    "\"pace_ms\": 0..10000 (optional)}");
    }
    json_decref(body);
    if (!pub) return error_json(res, 503, "no message broker configured");
    simul_redis_reply *r;
    rc = simul_redis_command(rds, &r, "INCR club:next");
    long id = rc == 0 ? (long)simul_redis_reply_integer(r) : -1;
    simul_redis_reply_free(r);
    if (rc < 0) return error_json(res, 503, "redis unavailable");
    /* The whole initial state in one HSET (atomic): boards, moves, pace, state, n:b per board. */
    char key[CLUB_KEY_MAX], nums[3][24], ts[24];
    club_key_simul(key, id);
    snprintf(nums[0], 24, "%ld", boards);
    snprintf(nums[1], 24, "%ld", moves);
    snprintf(nums[2], 24, "%ld", pace);
    snprintf(ts, sizeof ts, "%ld", (long)time(NULL));
    const char *argv[8 + 2 * 2 + 4 * CLUB_MAX_BOARDS];
    char fields[CLUB_MAX_BOARDS][2][24];
    int argc = 0;
    argv[argc++] = "HSET";
    argv[argc++] = key;
    argv[argc++] = "boards", argv[argc++] = nums[0];
    argv[argc++] = "moves", argv[argc++] = nums[1];
    argv[argc++] = "pace_ms", argv[argc++] = nums[2];
    argv[argc++] = "state", argv[argc++] = "queued";
    argv[argc++] = "played", argv[argc++] = "0";
    argv[argc++] = "created", argv[argc++] = ts;
    for (int b = 0; b < boards; b++) {
        snprintf(fields[b][0], 24, "n:%d", b);
        snprintf(fields[b][1], 24, "fen:%d", b);
        argv[argc++] = fields[b][0], argv[argc++] = "0";
        argv[argc++] = fields[b][1], argv[argc++] = club_start_fen;
    }
    rc = simul_redis_command_argv(rds, 0, &r, argc, argv, NULL);
    simul_redis_reply_free(r);
    if (rc < 0) return error_json(res, 503, "redis unavailable");
    /* The job: the id, persistent, confirmed before the client hears of it. */
    char idbuf[24];
    snprintf(idbuf, sizeof idbuf, "%ld", id);
    simul_amqp_props props = {.delivery_mode = 2, .content_type = "text/plain"};
    uint64_t seq = 0;
    /* Bounded: while the broker is away (a restart, the connection recovering) the client gets
     * its 503 in confirm_timeout rather than hanging until the broker is back. */
    simul_scope sc;
    simul_scope_timeout(&sc, confirm_timeout);
    rc = simul_amqp_publish(pub, "", CLUB_QUEUE, idbuf, strlen(idbuf), &props, 0, &seq);
    if (rc == 0) rc = simul_amqp_wait_confirm(pub, seq);
    simul_scope_end(&sc);
    if (rc < 0) {
        /* Not taken (or unknown: a job published but not confirmed in time may still be
         * delivered, and its simul played; the 503 says only that it is not promised): the
         * simul is marked failed; the client may post again. */
        simul_redis_command(rds, &r, "HSET %s state failed", key);
        simul_redis_reply_free(r);
        return error_json(res, 503, "the job was not confirmed by the broker");
    }
    json_t *v = json_pack("{s:I}", "id", (json_int_t)id);
    char loc[48];
    snprintf(loc, sizeof loc, "/simuls/%ld", id);
    rc = simul_http_response_header(res, "Location", loc);
    if (rc == 0) rc = v ? simul_http_response_json(res, 202, v) : -ENOMEM;
    json_decref(v);
    return rc;
}

/* The simul's hash, or NULL (rc -ENOENT when there is none). */
static int load_simul(long id, simul_redis_reply **h, long *boards)
{
    char key[CLUB_KEY_MAX];
    club_key_simul(key, id);
    int rc = simul_redis_command(rds, h, "HGETALL %s", key);
    if (rc < 0) {
        simul_redis_reply_free(*h);
        *h = NULL;
        return rc;
    }
    const simul_redis_reply *v = simul_redis_reply_map_get(*h, "boards");
    const char *s = v ? simul_redis_reply_str(v, NULL) : NULL;
    *boards = s ? atol(s) : 0;
    if (*boards < 1 || *boards > CLUB_MAX_BOARDS) {
        simul_redis_reply_free(*h);
        *h = NULL;
        return -ENOENT;
    }
    return 0;
}

static const char *hfield(const simul_redis_reply *h, const char *name)
{
    const simul_redis_reply *v = simul_redis_reply_map_get(h, name);
    return v ? simul_redis_reply_str(v, NULL) : NULL;
}

static int get_simul(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    int64_t id;
    if (simul_http_request_param_int(req, "id", &id) < 0 || id <= 0) return error_json(res, 404, "no such simul");
    simul_redis_reply *h;
    long nb;
    int rc = load_simul((long)id, &h, &nb);
    if (rc == -ENOENT) return error_json(res, 404, "no such simul");
    if (rc < 0) return error_json(res, 503, "redis unavailable");
    /* The move lists in one pipeline: one round trip for every board. */
    simul_redis_pipeline *p;
    rc = simul_redis_pipeline_new(rds, &p);
    char key[CLUB_KEY_MAX];
    for (int b = 0; rc == 0 && b < nb; b++) {
        club_key_moves(key, (long)id, (int)b);
        rc = simul_redis_pipeline_add(p, "LRANGE %s 0 -1", key);
    }
    simul_redis_reply *lists[CLUB_MAX_BOARDS] = {0};
    int results[CLUB_MAX_BOARDS];
    if (rc == 0) rc = simul_redis_pipeline_exec(p, lists, results);
    simul_redis_pipeline_free(p);
    json_t *v = json_object(), *bs = json_array();
    json_object_set_new(v, "id", json_integer(id));
    const char *names[] = {"state", "played", "moves", "pace_ms", "master"};
    for (size_t i = 0; i < 5; i++) {
        const char *s = hfield(h, names[i]);
        if (s) json_object_set_new(v, names[i], i == 0 ? json_string(s) : json_integer(atol(s)));
    }
    for (int b = 0; rc == 0 && b < nb; b++) {
        char f[3][24];
        snprintf(f[0], 24, "n:%d", b);
        snprintf(f[1], 24, "fen:%d", b);
        snprintf(f[2], 24, "result:%d", b);
        json_t *mv = json_array();
        for (size_t i = 0; lists[b] && i < simul_redis_reply_len(lists[b]); i++) {
            size_t len;
            const char *m = simul_redis_reply_str(simul_redis_reply_elem(lists[b], i), &len);
            json_array_append_new(mv, json_stringn(m ? m : "", m ? len : 0));
        }
        const char *n = hfield(h, f[0]), *fen = hfield(h, f[1]), *result = hfield(h, f[2]);
        json_array_append_new(bs, json_pack("{s:i,s:i,s:s,s:s?,s:o}", "board", (int)b, "n",
                                            n ? atoi(n) : 0, "fen", fen ? fen : "", "result",
                                            result, "moves", mv));
    }
    json_object_set_new(v, "boards", bs);
    for (int b = 0; b < nb; b++) simul_redis_reply_free(lists[b]);
    simul_redis_reply_free(h);
    if (rc < 0) {
        json_decref(v);
        return error_json(res, 503, "redis unavailable");
    }
    rc = simul_http_response_json(res, 200, v);
    json_decref(v);
    return rc;
}

/* simul_http_sse_send, or -ETIMEDOUT once the write waited sse_send_timeout for the client. */
static int sse_send_bounded(simul_http_response *res, const char *event, const char *id,
                            const char *data)
{
    simul_scope sc;
    simul_scope_timeout(&sc, sse_send_timeout);
    int rc = event ? simul_http_sse_send(res, event, id, -1, data)
                   : simul_http_sse_comment(res, data);
    simul_scope_end(&sc);
    return rc;
}

/* Sends board moves Redis holds beyond what the client has (sent[b]); *ended when the simul
 * is finished. */
static int sse_catch_up(simul_http_response *res, long id, long nb, int *sent, bool *ended)
{
    simul_redis_reply *h;
    long nb2;
    int rc = load_simul(id, &h, &nb2);
    if (rc < 0) return rc;
    const char *state = hfield(h, "state");
    *ended = state && strcmp(state, "finished") == 0;
    simul_redis_reply_free(h);
    for (int b = 0; b < nb; b++) {
        char key[CLUB_KEY_MAX];
        club_key_moves(key, id, (int)b);
        simul_redis_reply *l;
        rc = simul_redis_command(rds, &l, "LRANGE %s %d -1", key, sent[b]);
        if (rc < 0) {
            simul_redis_reply_free(l);
            return rc;
        }
        for (size_t i = 0; i < simul_redis_reply_len(l); i++) {
            size_t len;
            const char *m = simul_redis_reply_str(simul_redis_reply_elem(l, i), &len);
            json_t *ev = json_pack("{s:i,s:i,s:s%}", "board", (int)b, "n", sent[b] + 1, "move",
                                   m ? m : "", m ? len : 0);
            char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
            json_decref(ev);
            char eid[32];
            snprintf(eid, sizeof eid, "%d:%d", b, sent[b] + 1);
            rc = s ? sse_send_bounded(res, "move", eid, s) : -ENOMEM;
            free(s);
            if (rc < 0) {
                simul_redis_reply_free(l);
                return rc;
            }
            sent[b]++;
        }
        simul_redis_reply_free(l);
    }
    return 0;
}

static int simul_events(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    int64_t id;
    if (simul_http_request_param_int(req, "id", &id) < 0 || id <= 0) return error_json(res, 404, "no such simul");
    simul_redis_reply *h;
    long nb;
    int rc = load_simul((long)id, &h, &nb);
    simul_redis_reply_free(h);
    if (rc == -ENOENT) return error_json(res, 404, "no such simul");
    if (rc < 0) return error_json(res, 503, "redis unavailable");
    if (draining) return error_json(res, 503, "draining");
    /* Registered before reading Redis: a move stored meanwhile is queued, and skipped below if
     * the read already had it. */
    sse_client c = {.id = (long)id};
    /* The count bound is the ring's size too: a ring only grows, so it is what a client that
     * once fell behind keeps until it leaves (8 KiB). */
    if ((rc = simul_queue_new(&c.q, CLIENT_QUEUE)) < 0) return rc;
    client_add(&c);
    int sent[CLUB_MAX_BOARDS] = {0};
    bool ended = false;
    rc = simul_http_sse_start(res);
    if (rc == 0) rc = sse_catch_up(res, (long)id, nb, sent, &ended);
    while (rc == 0 && !ended) {
        simul_http_sse_event *item = NULL;
        simul_scope sc;
        simul_scope_timeout(&sc, heartbeat);
        rc = simul_queue_get(c.q, (void **)&item);
        simul_scope_end(&sc);
        if (rc == -ETIMEDOUT) {
            /* Quiet: a heartbeat through the proxies, and a look at Redis in case a message was
             * lost while the subscription's connection was down. */
            rc = sse_send_bounded(res, NULL, NULL, "heartbeat");
            if (rc == 0) rc = sse_catch_up(res, (long)id, nb, sent, &ended);
            continue;
        }
        if (rc < 0) break; /* -ESHUTDOWN: overflow or a drain; the client reconnects */
        c.queued -= simul_http_sse_event_size(item);
        int b = -1, n = 0;
        sscanf(simul_http_sse_event_id(item), "%d:%d", &b, &n);
        if (strcmp(simul_http_sse_event_name(item), "end") == 0) {
            rc = sse_catch_up(res, (long)id, nb, sent, &ended); /* anything missed first */
            ended = true;
        } else if (b >= 0 && b < nb && n == sent[b] + 1) {
            simul_scope sc;
            simul_scope_timeout(&sc, sse_send_timeout);
            rc = simul_http_sse_send_event(res, item); /* the one copy every client shares */
            simul_scope_end(&sc);
            sent[b] = n;
        } else if (b >= 0 && b < nb && n > sent[b] + 1) {
            rc = sse_catch_up(res, (long)id, nb, sent, &ended); /* a gap: Redis has it */
            ended = false; /* the end event comes on its own */
        } /* else: a move the catch-up already sent */
        simul_http_sse_event_unref(item);
    }
    if (rc == -ESHUTDOWN && c.overflow) {
        /* Dropped for falling behind: said in the stream, within a bound (the client is slow:
         * its write may wait), before it ends. */
        char why[160];
        snprintf(why, sizeof why,
                 "{\"reason\":\"too slow: more than %d events or %d bytes behind; reconnect "
                 "to catch up\"}",
                 CLIENT_QUEUE, CLIENT_QUEUE_BYTES);
        simul_scope sc;
        simul_scope_timeout(&sc, FAREWELL_TIMEOUT);
        int wrc = simul_http_sse_send(res, "overflow", NULL, -1, why);
        simul_scope_end(&sc);
        if (wrc < 0) rc = wrc; /* the connection is closed rather than ended */
    }
    if (rc == 0 && ended) rc = simul_http_sse_send(res, "end", NULL, -1, "{\"end\":true}");
    client_remove(&c);
    simul_queue_free(c.q, unref_item);
    return rc == -ESHUTDOWN ? 0 : rc;
}

/* ---- the worker ------------------------------------------------------------------------------ */

static void on_drain_signal(int sig, void *arg)
{
    (void)arg;
    const char *e = getenv("SIMUL_SUPERVISOR_RETIRE_SIGNAL");
    int retire = e ? atoi(e) : 0;
    int kind = sig == retire && sig != SIGTERM && sig != SIGINT ? SIMUL_WORKER_RETIRE
                                                                 : SIMUL_WORKER_STOP;
    if (!drain_kind || kind == SIMUL_WORKER_STOP) drain_kind = kind;
    simul_event_set(drain_ev);
}

static int connect_backends(void)
{
    static char rhost[256];
    const char *colon = strrchr(redis_addr, ':');
    if (!colon || (size_t)(colon - redis_addr) >= sizeof rhost) return -EINVAL;
    memcpy(rhost, redis_addr, (size_t)(colon - redis_addr));
    simul_redis_opts ro = {.host = rhost, .port = colon + 1, .client_name = "club_web"};
    int rc = simul_redis_connect(&ro, &rds);
    if (rc < 0 || !amqp_url) return rc;
    simul_amqp_opts ao = {.url = amqp_url, .connection_name = "club_web"};
    rc = simul_amqp_connect(&ao, &amqp);
    if (rc == 0) rc = simul_amqp_channel_open(amqp, &pub);
    if (rc == 0)
        rc = simul_amqp_queue_declare(pub, CLUB_QUEUE, SIMUL_AMQP_DURABLE, NULL, 0, NULL, 0, NULL,
                                      NULL);
    if (rc == 0) rc = simul_amqp_confirm_select(pub);
    return rc;
}

static int worker_serve(void *arg)
{
    (void)arg;
    int fds[16];
    int n = simul_worker_sockets(fds, 16);
    if (n <= 0 || n > 16) {
        fprintf(stderr, "club_web: worker without sockets\n");
        return 1;
    }
    int rc = simul_event_new(&drain_ev);
    const int sigs[] = {SIGTERM, SIGINT, SIGUSR2};
    for (size_t i = 0; rc == 0 && i < 3; i++) rc = simul_add_signal_handler(sigs[i], on_drain_signal, NULL);
    simul_http_app *app = NULL;
    simul_http_server *srv = NULL;
    simul_redis_conn *subc = NULL;
    simul_redis_subscription *sub = NULL;
    simul_task *fanout = NULL, *trimmer = NULL;
    if (rc == 0) rc = connect_backends();
    if (rc == 0) {
        /* Its own connection: the subscription never waits behind commands, nor they behind it. */
        static char rhost[256];
        const char *colon = strrchr(redis_addr, ':');
        memcpy(rhost, redis_addr, (size_t)(colon - redis_addr));
        simul_redis_opts ro = {.host = rhost, .port = colon + 1, .client_name = "club_web_sub"};
        rc = simul_redis_connect(&ro, &subc);
    }
    const char *pat[] = {CLUB_EVENTS_PATTERN};
    if (rc == 0) rc = simul_redis_subscribe(subc, SIMUL_REDIS_SUB_PATTERN, pat, 1, 4096, &sub);
    if (rc == 0) rc = simul_task_spawn(&fanout, fanout_task, sub, NULL);
    if (rc == 0) rc = simul_http_app_new(&app);
    if (rc == 0) rc = simul_http_route(app, "POST", "/simuls", post_simul, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/simuls", list_simuls, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/simuls/<int:id>", get_simul, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/whoami", whoami, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/simuls/<int:id>/events", simul_events, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/readyz", readyz, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/healthz", healthz, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/json", json_hello, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/perft", club_perft, NULL); /* analysis.c */
    simul_http_server_opts opts = {.keepalive_timeout = keepalive, .socks = fds, .n_socks = n,
                                   .proxy_protocol = proxy_protocol,
                                   .trusted_proxies = trusted_proxies};
    if (rc == 0) rc = simul_http_serve(app, NULL, NULL, &opts, &srv);
    web_srv = srv;
    if (rc == 0) rc = simul_event_new(&trim_ev);
    if (rc == 0) rc = simul_task_spawn(&trimmer, trim_task, NULL, NULL);
    if (rc == 0) rc = simul_worker_notify_ready() < 0 ? -EPIPE : 0;
    if (rc == 0) {
        simul_event_wait(drain_ev); /* until a drain signal */
    } else {
        fprintf(stderr, "club_web: worker %d: %s\n", (int)getpid(), simul_strerror(rc));
    }
    simul_scope shield;
    simul_scope_shield(&shield);
    draining = true;
    if (rc == 0 && drain_kind == SIMUL_WORKER_STOP && drain_delay > 0) simul_sleep(drain_delay);
    /* SSE streams end now (their browsers reconnect to another process), then the rest drains. */
    for (sse_client *c = clients; c; c = c->next) simul_queue_shutdown(c->q, false, unref_item);
    if (srv) simul_http_server_shutdown(srv, stop_timeout);
    if (fanout) {
        simul_task_cancel(fanout);
        simul_task_join(fanout, NULL);
    }
    if (trimmer) {
        simul_task_cancel(trimmer);
        simul_task_join(trimmer, NULL);
    }
    simul_scope_end(&shield);
    simul_http_server_free(srv);
    simul_http_app_free(app);
    simul_scope_shield(&shield);
    if (sub) simul_redis_subscription_close(sub);
    simul_redis_close(subc);
    if (amqp) simul_amqp_close(amqp);
    simul_redis_close(rds);
    simul_scope_end(&shield);
    for (size_t i = 0; i < 3; i++) simul_remove_signal_handler(sigs[i]);
    simul_event_free(drain_ev);
    simul_event_free(trim_ev);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (strcmp(a, "--host") == 0) host = v;
        else if (strcmp(a, "--port") == 0) port = v;
        else if (strcmp(a, "--workers") == 0) workers = atoi(v);
        else if (strcmp(a, "--redis") == 0) redis_addr = v;
        else if (strcmp(a, "--amqp") == 0) amqp_url = v;
        else if (strcmp(a, "--drain-delay") == 0) drain_delay = atof(v);
        else if (strcmp(a, "--stop-timeout") == 0) stop_timeout = atof(v);
        else if (strcmp(a, "--keepalive") == 0) keepalive = atof(v);
        else if (strcmp(a, "--confirm-timeout") == 0) confirm_timeout = atof(v);
        else if (strcmp(a, "--sse-send-timeout") == 0) sse_send_timeout = atof(v);
        else if (strcmp(a, "--proxy-protocol") == 0) proxy_protocol = atoi(v) != 0;
        else if (strcmp(a, "--trusted-proxies") == 0) trusted_proxies = v;
        else if (strcmp(a, "--reuseport") == 0) reuseport = atoi(v) != 0;
        else goto usage;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    simul_supervisor_opts so = {.workers = workers, .host = host, .port = port,
                                .stop_timeout = drain_delay + stop_timeout + 5,
                                .retire_signal = SIGUSR2,
                                /* A shared socket goes to whichever worker's loop wakes first,
                                 * and a worker whose CPU work runs off its loop (GET /perft)
                                 * wakes first: it took 15 of 16 connections. Reuseport hashes
                                 * them evenly (docs/guide/deploy.md). */
                                .flags = reuseport ? SIMUL_SUPERVISOR_REUSEPORT : 0};
    return simul_supervisor_main(argc, argv, &so, worker_serve, NULL);
usage:
    fprintf(stderr,
            "usage: %s [--host H] [--port P] [--workers N] [--redis HOST:PORT] [--amqp URL]\n"
            "       [--drain-delay S] [--stop-timeout S] [--keepalive S] [--proxy-protocol 0|1]\n"
            "       [--trusted-proxies LIST] [--confirm-timeout S] [--sse-send-timeout S]\n"
            "       [--reuseport 0|1]\n",
            argv[0]);
    return 2;
}
