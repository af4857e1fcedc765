/* conn.h — private to libsimul-redis: the connection's record and the calls its other files
 * (pool.c, txn.c, ...) share with client.c. Nothing here is public API. */
#ifndef SIMUL_REDIS_CONN_H
#define SIMUL_REDIS_CONN_H

#include <stdarg.h>
#include <stdbool.h>

#include <simul/backoff.h>
#include <simul/loop.h>
#include <simul/redis.h>
#include <simul/sync.h>
#include <simul/task.h>

#define RBUF_SIZE (16u * 1024u)
#define OUT_KEEP (1u << 20) /* an output buffer grown past this is freed after its write */
#define RETRY_ATTEMPTS 3    /* resends of a SIMUL_REDIS_RETRY_SAFE command */
#define SUB_BOUND_DEFAULT 1024

enum { CMD_NORMAL, CMD_SUB, CMD_UNSUB };
enum { SUB_CHANNEL, SUB_PATTERN, SUB_SHARD }; /* SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE */

typedef struct cmd {
    struct cmd *next; /* FIFO of pending commands, or the free list */
    simul_event *done_ev;
    simul_redis_reply *reply;
    int result;
    int kind;
    size_t confirms; /* CMD_SUB / CMD_UNSUB: confirmations (one per name) still expected */
    bool done;       /* result and reply are set */
    bool conn_err;   /* failed because the connection did (a retry-safe command may resend) */
    bool abandoned;  /* the caller left: the reader drops the reply and recycles the record */
    uint64_t seq;    /* the connection's invalidation count when the reply was matched */
} cmd;

struct simul_redis_subscription {
    simul_redis_conn *conn;
    simul_redis_subscription *next;
    int kind; /* SUB_CHANNEL, SUB_PATTERN, SUB_SHARD */
    bool reading;
    size_t n;
    char **names;
    simul_queue *q;
    size_t bound;
    uint64_t dropped;
};

struct simul_redis_conn {
    simul_redis_opts o; /* strings point into the copies below */
    char *host, *port, *unix_path, *username, *password, *client_name;
    simul_redis_limits limits;
    bool has_limits;

    simul_stream *s; /* NULL while down */
    simul_redis_parser *p;
    char *rbuf;
    size_t roff, rlen;

    simul_redis_buf out; /* commands queued this pass, written by flush_cb */
    bool flush_scheduled;
    simul_handle flush_h;
    int write_err;

    cmd *head, *tail, *free_cmds;
    size_t sub_cmds; /* CMD_SUB / CMD_UNSUB records in the FIFO (RESP2 push detection) */

    simul_event *ready; /* set while connected (and when closing or dead, to wake waiters) */
    simul_event *idle;  /* set when the last user leaves a closing connection */
    simul_task *reader;
    unsigned users; /* tasks inside a call on the connection */
    int proto;
    bool connected, closing, dead;

    simul_redis_subscription *subs;
    simul_redis_stats st;
    uint64_t rng;              /* cache.c's sampling */
    simul_backoff reconnect;   /* the reader's waits between reconnects (reset per outage) */
    struct redis_pool *pool;   /* dedicated connections (pool.c), made on first use */
    struct redis_cache *cache; /* client-side cache (cache.c), when opts.cache_bytes > 0 */
    bool rediscover; /* READONLY answers make it connect again (sentinel.c: a new master) */
    void *owned_arg; /* freed with the connection by owned_free (sentinel.c's connect_arg) */
    void (*owned_free)(void *);
    long long client_id; /* CLIENT ID of the current stream (HELLO's "id"; on RESP2 asked by
                            pool.c for a dedicated connection), 0 while unknown */
    /* RESP2 caching (cache.c): invalidations come on a second connection, subscribed to
     * __redis__:invalidate, that this one's tracking is redirected to. */
    simul_redis_conn *inval;
    simul_redis_subscription *inval_sub;
    simul_task *tracker;
    long long redirect_id; /* inval's CLIENT ID while it is up, else 0 */
    bool tracking2;        /* CLIENT TRACKING ON REDIRECT redirect_id is on for this stream */
    uint64_t inval_seq; /* invalidations seen (and flushes): a read older than one is
                           not cached */
};

typedef struct enc {
    int argc;
    const char *const *argv;
    const size_t *argvlen;
    const char *fmt;
    va_list *ap;
    uint64_t *seq; /* if set: the invalidation count when the reply was matched (cache.c) */
} enc;

struct redis_pool; /* pool.c */

struct simul_redis_pipeline {
    simul_redis_conn *conn;
    simul_redis_buf buf; /* the commands, encoded */
    size_t n;
    bool executed;
};

/* Encodes e into b (the argv or the format form). */
ssize_t redis__encode(simul_redis_buf *b, const enc *e);
/* Suspends. Puts one command into c's pipeline and waits for its reply (simul_redis_command_argv's
 * contract). kind: CMD_NORMAL, or CMD_SUB / CMD_UNSUB with `confirms` confirmations. */
int redis__execute(simul_redis_conn *c, unsigned flags, int kind, size_t confirms, const enc *e,
                   simul_redis_reply **reply);
/* Suspends. As redis__execute for one CMD_NORMAL command (no retry), except that a caller
 * leaving early (cancel, deadline) keeps its record: the error is returned with *held set (the
 * record still in c's FIFO, the caller still inside a call on c), and the caller must end it with
 * redis__held_unsend, redis__held_wait (until it returns with *ended) or redis__held_abandon. */
int redis__execute_held(simul_redis_conn *c, const enc *e, simul_redis_reply **reply,
                        cmd **held);
/* Does not suspend. Takes the held command back if none of it was written yet (true: ended). */
bool redis__held_unsend(simul_redis_conn *c, cmd *k);
/* Whether the held command has its outcome. */
bool redis__held_done(const cmd *k);
/* Suspends until the held command's outcome (then *ended, and its result and *reply as
 * redis__execute's), or the caller's cancel / deadline (the error; still held). */
int redis__held_wait(simul_redis_conn *c, cmd *k, simul_redis_reply **reply, bool *ended);
/* Does not suspend. Gives the held command up: its reply, when it comes, is dropped. */
void redis__held_abandon(simul_redis_conn *c, cmd *k);
/* A task enters a call on c (close waits until every one has left). */
void redis__enter(simul_redis_conn *c);
void redis__leave(simul_redis_conn *c);

/* pool.c: the bounded pool of dedicated connections (blocking commands, transactions). */
/* Whether argv is a command that blocks its connection (BLPOP, ..., XREAD BLOCK, WAIT). */
bool redis__is_blocking(int argc, const char *const *argv, const size_t *argvlen);
/* Whether a command named name[0..n) may block (then its whole argv is looked at). */
bool redis__maybe_blocking(const char *name, size_t n);
/* One encoded command (a RESP array of bulk strings) read back as a reply tree: argv[i] is
 * (*out)->elem[i].str / .len. 0, -EINVAL, -ENOMEM. */
int redis__decode_argv(const simul_redis_buf *b, simul_redis_reply **out);
/* Suspends. The encoded command in b, decoded back to argv and run as simul_redis_command_argv
 * (on a dedicated connection when it blocks). */
int redis__argv_from_encoded(const simul_redis_buf *b, unsigned flags, simul_redis_conn *c,
                             simul_redis_reply **reply);
/* Suspends. Runs one command on a dedicated connection of c's pool. */
int redis__run_dedicated(simul_redis_conn *c, unsigned flags, const enc *e,
                         simul_redis_reply **reply);
/* Suspends (a slot, then maybe a connection). A dedicated connection, the caller's alone, until
 * redis__pool_release. 0, -ESHUTDOWN, -ECANCELED, -ETIMEDOUT, the connect error. */
int redis__pool_acquire(simul_redis_conn *c, simul_redis_conn **d);
/* Suspends (when d is closed). reuse: d may serve the next caller (no reply pending on it). */
void redis__pool_release(simul_redis_conn *c, simul_redis_conn *d, bool reuse);
/* Does not suspend: every busy dedicated connection fails its command with -ESHUTDOWN. */
void redis__pool_interrupt(simul_redis_conn *c);
/* Suspends: closes the idle dedicated connections and frees the pool (no user is left). */
void redis__pool_free(simul_redis_conn *c);

/* txn.c, for cluster.c. As simul_redis_txn_begin; a WATCH error reply goes to *werr (if not
 * NULL; the caller frees it). */
int redis__txn_begin(simul_redis_conn *c, const char *const *watch, size_t nwatch,
                     simul_redis_txn **out, simul_redis_reply **werr);
/* Binds t to a cluster slot: its commands' keys are checked against it (-EXDEV). */
void redis__txn_set_cluster(simul_redis_txn *t, simul_redis_cluster *cl, int slot);
/* The first MOVED / ASK answer any of t's commands got ("MOVED 12 host:port"), or NULL. */
const char *redis__txn_redirect(const simul_redis_txn *t);
/* cluster.c: the slot of a command's keys: >= 0; -1 no key; -EXDEV several slots; -EAGAIN when
 * only COMMAND GETKEYS could say and may_suspend is false; another error. */
int redis__cluster_slot(simul_redis_cluster *cl, int argc, const char *const *argv,
                        const size_t *lens, bool may_suspend);

/* cache.c: takes r (and returns true) when it is a client-side caching invalidation. */
bool redis__cache_push(simul_redis_conn *c, simul_redis_reply *r);
/* Makes c->cache (opts.cache_bytes > 0). 0, -ENOMEM. */
int redis__cache_new(simul_redis_conn *c);
void redis__cache_free(simul_redis_conn *c);
/* Every entry dropped (a new connection: invalidations may have been missed). */
void redis__cache_flush(simul_redis_conn *c);
/* RESP2: the invalidation connection and the task that reads it (the first setup done now,
 * failures retried by the task). Suspends. */
void redis__cache_tracker_start(simul_redis_conn *c);
/* Suspends (shielded by the caller): stops the task, closes the invalidation connection. */
void redis__cache_tracker_stop(simul_redis_conn *c);
/* Whether argv is a read the cache may answer (a single-key read-only command). */
bool redis__cacheable(const simul_redis_conn *c, int argc, const char *const *argv,
                      const size_t *argvlen);
bool redis__cacheable_name(const char *name, size_t n);
/* Suspends (on a miss). Answers argv from the cache or runs it and keeps the reply. */
int redis__cached_command(simul_redis_conn *c, unsigned flags, simul_redis_reply **reply, int argc,
                          const char *const *argv, const size_t *argvlen);

#endif /* SIMUL_REDIS_CONN_H */
