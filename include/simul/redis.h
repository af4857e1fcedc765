/* simul/redis.h — libsimul-redis (pkg-config simul-redis, CMake simul::redis).
 * This section: the RESP codec, pure functions over bytes (no sockets, no loop): a resumable
 * RESP2/RESP3 reply parser that builds each reply in one arena, and a command encoder that
 * appends binary-safe argv to a growable buffer. Then the client: one multiplexed connection per
 * server over a simul_stream (automatic pipelining, cancel-safe replies, reconnect, pub/sub). */
#ifndef SIMUL_REDIS_H
#define SIMUL_REDIS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------------------------- */

typedef enum simul_redis_type {
    SIMUL_REDIS_STATUS = 1, /* +simple string: str, len */
    SIMUL_REDIS_ERROR,      /* -simple error or !blob error: str, len ("ERR ...") */
    SIMUL_REDIS_INTEGER,    /* :integer: integer */
    SIMUL_REDIS_STRING,     /* $bulk string: str, len (binary-safe) */
    SIMUL_REDIS_NIL,        /* $-1, *-1 (RESP2) or _ (RESP3) */
    SIMUL_REDIS_ARRAY,      /* *array: elem[0..len) */
    SIMUL_REDIS_MAP,        /* %map: elem[0..len), key i = elem[2i], value i = elem[2i+1] */
    SIMUL_REDIS_SET,        /* ~set: elem[0..len) */
    SIMUL_REDIS_PUSH,       /* >push (out-of-band, e.g. pub/sub messages): elem[0..len) */
    SIMUL_REDIS_ATTRIBUTE,  /* |attribute: a map-shaped node found only in reply->attrs */
    SIMUL_REDIS_BOOL,       /* #t / #f: integer is 1 or 0 */
    SIMUL_REDIS_DOUBLE,     /* ,double: dval, and its text in str, len (",inf" -> INFINITY) */
    SIMUL_REDIS_BIGNUM,     /* (big number: its decimal text in str, len */
    SIMUL_REDIS_VERBATIM,   /* =verbatim string: str, len (after "txt:"), format in vtype */
} simul_redis_type;

/* One node of a reply tree. Read-only for the caller; every node and every string of a reply
 * lives in that reply's arena and is valid until simul_redis_reply_free() of the root. Every str
 * is NUL-terminated (after len bytes), which helps with text but does not make a binary string
 * a C string. An aggregate's children are contiguous: elem[0..len). For MAP and ATTRIBUTE, len
 * counts nodes (two per pair), as hiredis' `elements` does; simul_redis_reply_len() says pairs.
 *
 * Memory: one arena per reply, chosen by measurement against per-node allocation (hiredis'
 * way; bench/resp_bench.c, heap counts by valgrind): a small reply costs one malloc (hiredis: two),
 * a 1000-element LRANGE about eight (hiredis: 2002), and freeing is one walk over the blocks.
 * Zero-copy views into the caller's buffer were not taken: a reply split across reads would pin
 * and force contiguous the client's read buffer (a 64 MB value with it); copying a bulk once, as
 * it arrives, is cheap beside that. A body not yet received is not allocated in advance: its
 * memory grows with the bytes that arrive, so a lying length costs nothing.
 *
 * Attributes (RESP3 `|`): an attribute is attached to the value that follows it, at any depth,
 * as that value's `attrs` (an ATTRIBUTE node); it is not counted as an element of the enclosing
 * aggregate. Two attributes in a row (with no value between) are refused with -EPROTO. */
typedef struct simul_redis_reply simul_redis_reply;
struct simul_redis_reply {
    uint8_t type;  /* simul_redis_type */
    uint8_t flags; /* internal */
    char vtype[4]; /* VERBATIM: the 3-letter format ("txt", "mkd"), NUL-terminated */
    size_t len;    /* strings: bytes; aggregates: nodes in elem */
    union {
        long long integer; /* INTEGER; BOOL (0 or 1) */
        double dval;       /* DOUBLE */
    };
    union {
        const char *str;         /* STATUS, ERROR, STRING, DOUBLE, BIGNUM, VERBATIM */
        simul_redis_reply *elem; /* ARRAY, MAP, SET, PUSH, ATTRIBUTE */
    };
    simul_redis_reply *attrs; /* the attribute that preceded this value, or NULL */
};

/* Frees a whole reply tree (one arena: one or a few free() calls). r must be a root returned by
 * simul_redis_parse(); NULL is ignored. */
void simul_redis_reply_free(simul_redis_reply *r);

/* Typed access. Each takes NULL or a node of any type and never fails: a wrong type or an index
 * out of range gives the neutral value (0, NULL). */
simul_redis_type simul_redis_reply_type(const simul_redis_reply *r); /* 0 for NULL */
/* INTEGER, BOOL: the value; DOUBLE: truncated toward zero (saturated); others 0. */
long long simul_redis_reply_integer(const simul_redis_reply *r);
/* DOUBLE: the value; INTEGER: converted; others 0.0. */
double simul_redis_reply_double(const simul_redis_reply *r);
/* STATUS, ERROR, STRING, DOUBLE, BIGNUM, VERBATIM: the bytes and (if len != NULL) their count;
 * others NULL (and *len = 0). */
const char *simul_redis_reply_str(const simul_redis_reply *r, size_t *len);
/* Aggregates: how many elements (for MAP and ATTRIBUTE: how many pairs); others 0. */
size_t simul_redis_reply_len(const simul_redis_reply *r);
/* ARRAY, SET, PUSH: element i; MAP, ATTRIBUTE: node i (elem[i]); NULL if out of range. */
const simul_redis_reply *simul_redis_reply_elem(const simul_redis_reply *r, size_t i);
/* MAP, ATTRIBUTE: key and value of pair i; NULL if out of range or not a map. */
const simul_redis_reply *simul_redis_reply_map_key(const simul_redis_reply *r, size_t i);
const simul_redis_reply *simul_redis_reply_map_value(const simul_redis_reply *r, size_t i);
/* MAP, ATTRIBUTE: the value whose key is a string (STATUS, STRING, VERBATIM) equal to key;
 * NULL if none. Linear. */
const simul_redis_reply *simul_redis_reply_map_get(const simul_redis_reply *r, const char *key);

/* ---------------------------------------------------------------------------------------------
 * Parser
 * ------------------------------------------------------------------------------------------- */

/* Limits, each checked as soon as the header that declares it is read (nothing is allocated
 * for an oversized value). A reply over one of them fails with -EMSGSIZE. Zero means default. */
typedef struct simul_redis_limits {
    size_t max_bulk;     /* bytes of one string: bulk, blob error, verbatim, or one simple line
                            (status, error, double, big number); default 512 MiB (Redis'
                            proto-max-bulk-len) */
    size_t max_elements; /* elements declared by one aggregate header (pairs for a map or an
                            attribute); default 16 Mi */
    unsigned max_depth;  /* nesting of aggregates (an attribute counts as one): a top-level array
                            is depth 1; default 32, at most SIMUL_REDIS_DEPTH_MAX */
    size_t max_reply;    /* bytes of one whole reply on the wire (CRLFs included); default 1 GiB */
} simul_redis_limits;

#define SIMUL_REDIS_DEPTH_MAX 256

typedef struct simul_redis_parser simul_redis_parser;

/* Makes a parser with these limits (NULL: every default). Returns 0 or -ENOMEM, -EINVAL (a
 * max_depth over SIMUL_REDIS_DEPTH_MAX). One parser per connection. */
int simul_redis_parser_new(simul_redis_parser **out, const simul_redis_limits *limits);
/* Frees the parser and the reply it was building, if any. NULL is ignored. */
void simul_redis_parser_free(simul_redis_parser *p);

/* Feeds bytes to the parser and stops at the end of the first complete reply.
 * Returns how many bytes of data it consumed (every byte is either consumed or left for the next
 * call: keep the unconsumed ones and pass them again, followed by what arrives next) and sets
 * *reply to the completed reply (the caller owns it: simul_redis_reply_free), or to NULL when all
 * of data was consumed and the reply is not complete yet. Bytes may be split anywhere; the parser
 * keeps its place (a bulk string is copied once into the reply as it arrives, a header line is
 * never scanned twice), so feeding a reply whole, byte by byte or split anywhere gives the same
 * tree.
 * Errors (*reply NULL): -EPROTO (malformed; simul_redis_parser_error() says why), -EMSGSIZE (over
 * a limit), -ENOMEM. An error is sticky: the stream is out of sync, every later call returns it
 * again, and the connection must be closed.
 * Streamed RESP3 values (which Redis 7 does not send) are read too and give the same tree as their
 * sized form: a streamed string ($? then ;<n> chunks up to ;0) is one STRING, max_bulk bounding
 * its total; a streamed array, map, set or push (*? %? ~? >? up to '.') is one aggregate whose
 * elements max_elements bounds as they come. Other streamed forms (=? !? |?) are -EPROTO. */
ssize_t simul_redis_parse(simul_redis_parser *p, const void *data, size_t len,
                          simul_redis_reply **reply);
/* Why the parser failed (static text), or NULL while it has not. */
const char *simul_redis_parser_error(const simul_redis_parser *p);

/* ---------------------------------------------------------------------------------------------
 * Command encoder
 * ------------------------------------------------------------------------------------------- */

/* A growable byte buffer the encoder appends to. Zero-initialise it ({0}); data is malloc'd
 * (free it with simul_redis_buf_free) and may move when it grows. The caller may reset len to 0
 * (or consume from the front itself) between uses; the capacity stays. */
typedef struct simul_redis_buf {
    char *data;
    size_t len, cap;
} simul_redis_buf;

/* Makes room for `more` bytes after len. 0 or -ENOMEM. */
int simul_redis_buf_reserve(simul_redis_buf *b, size_t more);
void simul_redis_buf_free(simul_redis_buf *b);

/* Appends one command, argv[0..argc) as a RESP array of bulk strings. argvlen[i] is the length
 * of argv[i] (binary-safe); argvlen NULL means every argv[i] is a C string. One reservation,
 * no allocation per argument. Returns the bytes appended, or -EINVAL (argc < 1), -ENOMEM; on
 * error nothing is appended. */
ssize_t simul_redis_encode(simul_redis_buf *b, int argc, const char *const *argv,
                           const size_t *argvlen);

/* Appends one command from a printf-like format, as hiredis' redisFormatCommand: the format is
 * split on spaces (one or more ' ' end an argument; leading and trailing spaces are ignored) and
 * every other character belongs to the current argument; a conversion's output never splits an
 * argument, so "SET %s %b" always gives three arguments whatever the values hold, and an empty
 * %s or %b gives an empty argument. Conversions: %s (C string), %b (const void *, size_t: binary),
 * %d %i (int), %u (unsigned), %ld %lu, %lld %llu, %zu, %f (double, printed as "%.17g", which
 * reads back exactly; inf, -inf, nan print as such) and %% (a '%'). The bytes are those of
 * simul_redis_encode() on the same argv. Returns the bytes appended, or -EINVAL (an unknown
 * conversion, or no argument), -ENOMEM; on error nothing is appended. */
ssize_t simul_redis_encodef(simul_redis_buf *b, const char *fmt, ...);
ssize_t simul_redis_vencodef(simul_redis_buf *b, const char *fmt, va_list ap);

/* ---------------------------------------------------------------------------------------------
 * Client: one multiplexed connection
 * ------------------------------------------------------------------------------------------- */
/* One connection serves every task of its loop. A command is encoded into the connection's
 * output buffer and its record appended to a FIFO of pending commands without suspending, so it
 * is either wholly in the pipeline or not at all; the buffer is written once per loop pass (every
 * command issued by any task in that pass goes out in one write: automatic pipelining). A reader
 * task parses replies and hands each to the head of the FIFO. A caller that is cancelled or whose
 * deadline expires returns at once; its record stays in the FIFO, marked abandoned, so its reply
 * is still read and dropped and the next caller gets its own reply, never another's (the
 * redis-py failure cannot happen: the matching never depends on who is still waiting).
 * When the connection fails (EOF, a reset, a malformed reply), every pending command fails with
 * that error and is not resent (unless marked SIMUL_REDIS_RETRY_SAFE); the reader reconnects with
 * jittered exponential back-off and replays AUTH, HELLO, CLIENT SETNAME, SELECT and every
 * subscription. Commands issued meanwhile wait for the connection, bounded by their deadline.
 * All calls are for tasks of the loop that made the connection. */
typedef struct simul_redis_conn simul_redis_conn;
typedef struct simul_redis_subscription simul_redis_subscription;

/* Makes the connection's stream (suspends). For TLS, a proxy, a test's socketpair: called for the
 * first connection and every reconnection, inside the connect timeout. Returns 0 and *out (the
 * connection owns it from then on) or a negative errno. */
typedef int (*simul_redis_connect_cb)(void *arg, simul_stream **out);

typedef struct simul_redis_opts {
    /* Where: connect_cb if set, else unix_path if set, else host:port (default 127.0.0.1:6379). */
    const char *host;
    const char *port;
    const char *unix_path;
    simul_redis_connect_cb connect_cb;
    void *connect_arg;
    /* Handshake, replayed on every reconnection. username NULL: AUTH with the password only. */
    const char *username;
    const char *password;
    int db;                  /* SELECT db when not 0 */
    const char *client_name; /* CLIENT SETNAME (in HELLO for RESP3) */
    int protocol;            /* 0: HELLO 3, falling back to RESP2 if the server refuses HELLO
                                (NOPROTO or unknown command); 3: RESP3 or fail
                                (-EPROTONOSUPPORT); 2: RESP2, no HELLO */
    double connect_timeout;  /* seconds for connect + handshake, each attempt; 0: 10 s */
    /* Reconnection: after a failure the reader waits a random time in [d/2, d], d doubling from
     * reconnect_min up to reconnect_max (defaults 0.01 s and 2 s), then tries again, forever,
     * until the connection is closed (simul_backoff's SIMUL_BACKOFF_EQUAL; a NaN or an infinite
     * reconnect_min is -EINVAL). no_reconnect: a failed connection stays down, and commands
     * fail with -ENOTCONN. */
    double reconnect_min;
    double reconnect_max;
    bool no_reconnect;
    const simul_redis_limits *limits; /* the reply parser's limits; NULL: defaults */
    /* Dedicated connections (blocking commands, transactions): at most this many at once, each
     * made on demand with the options above (and no reconnection), kept for reuse while idle.
     * 0: 8. A caller finding all of them busy waits for one, bounded by its deadline. */
    unsigned pool_size;
    /* Client-side caching (opt-in): 0 is off. Otherwise the connection sends CLIENT TRACKING ON
     * (RESP3: invalidations arrive as pushes on the same connection; RESP2: on a second
     * connection of its own, subscribed to __redis__:invalidate, that tracking is redirected to
     * with CLIENT TRACKING ON REDIRECT <its id>; while that one is down, nothing is cached, and
     * its loss empties the cache; as the two streams are not ordered, a RESP2 read is kept only
     * if no invalidation at all arrived while it was in flight) and keeps the replies of single-key
     * reads (GET, HGET, HGETALL, LRANGE, SMEMBERS, ZRANGE, ... see redis.h below) up to about
     * this many bytes, least recently used first out; the server's invalidation pushes drop the
     * entries of a changed key. Dedicated connections (blocking commands, transactions) do not
     * cache. */
    size_t cache_bytes;
} simul_redis_opts;

/* Suspends. Connects and runs the handshake (inside opts->connect_timeout), then starts the
 * connection's reader task. opts and its strings are copied. Returns 0 and *out; the connect
 * error (-ECONNREFUSED, -ENOENT, a SIMUL_EAI code, ...); -ETIMEDOUT; -EACCES (the server refused
 * the credentials: WRONGPASS, NOAUTH, NOPERM); -EPROTONOSUPPORT (protocol 3 refused); -EREMOTEIO
 * (another handshake command failed, e.g. SELECT out of range); -ECANCELED; -ENOMEM; -EINVAL;
 * -EPERM outside a task. */
int simul_redis_connect(const simul_redis_opts *opts, simul_redis_conn **out);

/* Suspends. Stops the reader, fails every pending command with -ECANCELED, wakes the readers of
 * its subscriptions (-ESHUTDOWN), waits until every task inside a call on the connection has
 * left it, closes the stream and frees the connection and the subscriptions not yet closed
 * (their handles die with it). Runs shielded: a cancel does not cut it short. NULL is ignored.
 * Returns 0. */
int simul_redis_close(simul_redis_conn *c);

/* Flags of one command. SIMUL_REDIS_RETRY_SAFE: if the connection fails while the command is in
 * flight, resend it after the reconnection (up to 3 times) instead of failing; for idempotent
 * commands only, as it may run twice. */
#define SIMUL_REDIS_RETRY_SAFE 1u
/* SIMUL_REDIS_SHARED: run a blocking command on the shared connection anyway (every command
 * behind it waits until it returns). */
#define SIMUL_REDIS_SHARED 2u
/* SIMUL_REDIS_NO_CACHE: read from the server even when the client-side cache holds the reply
 * (and do not keep this one). */
#define SIMUL_REDIS_NO_CACHE 4u

/* Client-side caching (simul_redis_opts.cache_bytes): the reads answered from the cache are the
 * single-key read-only commands GET, GETRANGE, STRLEN, EXISTS, TYPE, HGET, HMGET, HGETALL,
 * HEXISTS, HLEN, HKEYS, HVALS, HSTRLEN, LINDEX, LLEN, LRANGE, SCARD, SISMEMBER, SMISMEMBER,
 * SMEMBERS, ZCARD, ZSCORE, ZMSCORE, ZRANGE, ZRANK, ZREVRANK, ZCOUNT; an entry is the exact
 * command (all its arguments) and its reply. A reply is kept only if no invalidation arrived
 * between the server's answer and the caller taking it, and the cache is emptied when the
 * connection is made again (invalidations may have been lost meanwhile), so a cached read is
 * never older than one the server would have given at that point. A hit returns a fresh copy
 * the caller frees, as any reply. */

/* Blocking commands: BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, WAIT,
 * WAITAOF, and XREAD / XREADGROUP with a BLOCK argument, are recognised by simul_redis_command*
 * and run on a dedicated connection from the pool (simul_redis_opts.pool_size), so the shared
 * connection is never held up. (WAIT and WAITAOF count the acknowledgements of their own
 * connection's last write, none on a dedicated one: to wait for the writes made on the shared
 * connection, send them with SIMUL_REDIS_SHARED.) Such a command is cancellable and honours the
 * caller's deadline like any other. When its caller leaves (cancel, deadline), the client ends the command on the
 * server, shielded and within about a second (the lower of 1 s and connect_timeout): CLIENT
 * UNBLOCK <the dedicated connection's CLIENT ID> over the shared connection (asked at most twice,
 * never polled), then the dedicated connection's reply (the command's timeout reply), handed
 * over by its reader as it arrives, is dropped and the connection goes back to the pool. The race this must
 * settle: the server may have served the command (popped the element, moved it, delivered the
 * stream entries to a group) just before the cancel. That reply is real data that exists nowhere
 * else any more, so it is NOT dropped: the call returns 0 and the reply (stats: unblock_late),
 * and the caller's cancel stays pending for its next suspension (cancellation is level-triggered;
 * a deadline has expired anyway). So a cancelled BLPOP returns either -ECANCELED / -ETIMEDOUT and
 * took nothing, or 0 and the element it took. If the unblock cannot be done (the shared
 * connection is down, the server does not give the client id, no answer within the bound) the
 * dedicated connection is closed instead, never reused with a reply pending. Explicit pipelines
 * always run on the shared connection. */

/* Suspends until the reply of one command, argv[0..argc) (argvlen NULL: C strings).
 * Returns 0 and *reply (the caller frees it with simul_redis_reply_free), or:
 *   -EREMOTEIO  the server answered with an error reply: *reply holds it (type
 *               SIMUL_REDIS_ERROR, the message in str), the caller frees it. The connection is
 *               fine. Only a top-level error counts (errors inside EXEC's array stay in the tree).
 *   -ECANCELED / -ETIMEDOUT  the caller was cancelled or its deadline expired first (the command
 *               may or may not have run; its reply, when it comes, is dropped; for a blocking
 *               command, see above: it did not run, or the call returns its reply);
 *   -ECONNRESET (EOF or reset), -EPIPE, -EPROTO (malformed reply), -EMSGSIZE (a reply over the
 *               limits), another read / write error: the connection failed while the command was
 *               in flight; it was not resent (see SIMUL_REDIS_RETRY_SAFE);
 *   -ENOTCONN   down and not reconnecting (no_reconnect);
 *   -EINVAL (argc < 1, a bad format), -ENOMEM, -ESHUTDOWN (the connection is closing).
 * On every error but -EREMOTEIO, *reply is NULL. A SUBSCRIBE-family command is refused with
 * -EINVAL: use simul_redis_subscribe. */
int simul_redis_command_argv(simul_redis_conn *c, unsigned flags, simul_redis_reply **reply,
                             int argc, const char *const *argv, const size_t *argvlen);
/* The same with a format (simul_redis_encodef's conversions: "SET %s %b", key, val, vlen). */
int simul_redis_command(simul_redis_conn *c, simul_redis_reply **reply, const char *fmt, ...);
int simul_redis_vcommand(simul_redis_conn *c, unsigned flags, simul_redis_reply **reply,
                         const char *fmt, va_list ap);

/* An explicit pipeline: commands added to it (encoded at once, nothing sent) go out together
 * by simul_redis_pipeline_exec, contiguous in the connection's stream (no other task's command
 * between them) and in one write with whatever else that loop pass sends. A pipeline belongs to
 * one task and may be executed once. (Automatic pipelining already batches independent calls;
 * this is for a batch one task wants back as a whole.) */
typedef struct simul_redis_pipeline simul_redis_pipeline;

/* Makes an empty pipeline on c. Does not suspend. 0 and *out, -EINVAL, -ENOMEM. */
int simul_redis_pipeline_new(simul_redis_conn *c, simul_redis_pipeline **out);
/* Adds one command (as simul_redis_command / _command_argv). Does not suspend. Returns 0;
 * -EINVAL (a bad format, argc < 1, a SUBSCRIBE-family command, or after exec), -ENOMEM. */
int simul_redis_pipeline_add(simul_redis_pipeline *p, const char *fmt, ...);
int simul_redis_pipeline_add_argv(simul_redis_pipeline *p, int argc, const char *const *argv,
                                  const size_t *argvlen);
/* How many commands were added. */
size_t simul_redis_pipeline_len(const simul_redis_pipeline *p);
/* Suspends until every reply is in. replies[i] (the caller frees each, NULL on failure) and
 * results[i] (0, -EREMOTEIO with its error reply, or the connection's error) for command i; either
 * array may be NULL (then the replies are freed). Returns 0 once every command has its outcome
 * (check results[i]); -ECANCELED / -ETIMEDOUT (every reply not yet handed over is dropped, as for
 * one command; replies[] and results[] are then left NULL / the error); -ENOTCONN, -ESHUTDOWN,
 * -EINVAL (executed twice, empty). Nothing is resent after a connection failure. */
int simul_redis_pipeline_exec(simul_redis_pipeline *p, simul_redis_reply **replies, int *results);
/* Frees the pipeline (NULL is ignored). Not while its exec is in progress. */
void simul_redis_pipeline_free(simul_redis_pipeline *p);

/* Whether the connection is up and its handshake done (not reconnecting). */
bool simul_redis_connected(const simul_redis_conn *c);
/* 2 or 3: the protocol of the current (or last) connection. */
int simul_redis_protocol(const simul_redis_conn *c);

typedef struct simul_redis_stats {
    uint64_t commands;        /* commands put into the pipeline (handshake not counted) */
    uint64_t writes;          /* stream writes of pipelined commands (one per loop pass with any) */
    uint64_t replies;         /* replies matched to a command */
    uint64_t dropped_replies; /* of those, replies whose caller had gone (cancelled, timed out) */
    uint64_t pushes;          /* out-of-band messages (pub/sub) received */
    uint64_t connects;        /* successful connections, the first included */
    uint64_t failures;        /* connections lost */
    uint64_t flow_waits;      /* commands that waited for the write queue to drain below its
                                 high-water mark (SIMUL_STREAM_HIGH_WATER) before going out */
    uint64_t dedicated_opened; /* dedicated connections made (blocking commands, transactions) */
    uint64_t dedicated_closed; /* of those, closed: cancelled / timed out and not unblocked,
                                  failed, or closed with the connection */
    uint64_t pool_waits;       /* callers that found every dedicated connection busy */
    uint64_t unblocked;        /* cancelled / timed-out blocking commands ended by CLIENT UNBLOCK
                                  (their connection kept) */
    uint64_t unblock_late;     /* cancelled / timed-out blocking commands whose reply came first:
                                  handed to the caller (0 and the reply) instead of lost */
    uint64_t txn_conflicts;    /* simul_redis_transaction attempts whose EXEC found a watched
                                  key changed (and were retried) */
    uint64_t script_fallbacks; /* simul_redis_script_call's NOSCRIPT answers (then EVAL) */
    uint64_t cache_hits;          /* reads answered by the client-side cache */
    uint64_t cache_misses;        /* cacheable reads sent to the server */
    uint64_t cache_invalidations; /* keys invalidated by the server (a flush counts one) */
    uint64_t cache_evictions;     /* entries dropped for the memory bound */
    uint64_t cache_bytes;         /* bytes held by the cache now */
    uint64_t tracker_setups;      /* RESP2 caching: invalidation connections set up */
} simul_redis_stats;
/* Copies the connection's counters (simul_redis_stats, counted since simul_redis_connect, over
 * every reconnect) into *out. Does nothing if c or out is NULL. Never suspends. */
void simul_redis_get_stats(const simul_redis_conn *c, simul_redis_stats *out);

/* ---------------------------------------------------------------------------------------------
 * Client: transactions (MULTI/EXEC with WATCH) and scripts
 * ------------------------------------------------------------------------------------------- */
/* A transaction holds a dedicated connection of the pool from begin to close (WATCH belongs to a
 * server connection): read the watched keys with simul_redis_txn_command, queue the writes with
 * simul_redis_txn_queue, then simul_redis_txn_exec sends MULTI, the queue and EXEC in one write.
 * A transaction belongs to one task. Close every transaction before closing its connection. */
typedef struct simul_redis_txn simul_redis_txn;

/* Suspends. Takes a dedicated connection (waiting for one, bounded by the caller's deadline) and
 * WATCHes watch[0..nwatch) (none when nwatch is 0). 0 and *out; the pool's and WATCH's errors. */
int simul_redis_txn_begin(simul_redis_conn *c, const char *const *watch, size_t nwatch,
                          simul_redis_txn **out);
/* Suspends. One command now, on the transaction's connection (before EXEC: reads of watched
 * keys). As simul_redis_command; -ENOTCONN once an earlier command of it failed or was
 * cancelled (the transaction cannot go on; close it), -EINVAL after exec. */
int simul_redis_txn_command(simul_redis_txn *t, simul_redis_reply **reply, const char *fmt, ...);
int simul_redis_txn_command_argv(simul_redis_txn *t, simul_redis_reply **reply, int argc,
                                 const char *const *argv, const size_t *argvlen);
/* Queues one command for MULTI ... EXEC (encoded now, sent by exec). Does not suspend. 0,
 * -EINVAL (a bad format, after exec), -ENOMEM. */
int simul_redis_txn_queue(simul_redis_txn *t, const char *fmt, ...);
int simul_redis_txn_queue_argv(simul_redis_txn *t, int argc, const char *const *argv,
                               const size_t *argvlen);
/* Suspends. Sends MULTI, the queued commands and EXEC; once per transaction. Returns:
 *   0         EXEC ran them: *reply is its array, one reply per queued command (an error among
 *             them is an element of type SIMUL_REDIS_ERROR: Redis does not roll back);
 *   -EAGAIN   a watched key changed since WATCH: nothing ran (EXEC's nil), *reply NULL: read
 *             and try again (simul_redis_transaction does);
 *   -EREMOTEIO  the server refused a queued command (EXECABORT) or MULTI: nothing ran; *reply
 *             holds the error;
 *   -ECANCELED / -ETIMEDOUT, a connection error, -ENOTCONN (an earlier failure), -EINVAL. */
int simul_redis_txn_exec(simul_redis_txn *t, simul_redis_reply **reply);
/* Suspends (when the connection must be closed). Ends the transaction and frees it: the
 * connection goes back to the pool when it is clean (executed, or never watched, and no command
 * was cut short), else it is closed, which drops any WATCH. Returns 0. NULL is ignored. */
int simul_redis_txn_close(simul_redis_txn *t);

/* The optimistic-locking loop (redis-py's Redis.transaction): begin watching watch[0..nwatch),
 * run fn (which reads with simul_redis_txn_command and queues with simul_redis_txn_queue; a
 * negative return abandons the transaction and is returned), exec; on -EAGAIN start again, up to
 * max_attempts times (0: until it succeeds or the caller's deadline / cancel ends it). Returns
 * exec's result and *reply; -EAGAIN when every attempt conflicted. */
typedef int (*simul_redis_txn_fn)(simul_redis_txn *t, void *arg);
int simul_redis_transaction(simul_redis_conn *c, const char *const *watch, size_t nwatch,
                            simul_redis_txn_fn fn, void *arg, unsigned max_attempts,
                            simul_redis_reply **reply);

/* A Lua script known by its SHA-1 (redis-py's register_script): the SHA-1 is computed here once;
 * each call sends EVALSHA, and on NOSCRIPT (the server never saw it, restarted, SCRIPT FLUSH)
 * EVAL with the source, which caches it on the server again. A script object holds no
 * connection and may be used on any. */
typedef struct simul_redis_script simul_redis_script;
/* Copies source (a C string). 0 and *out, -EINVAL, -ENOMEM. */
int simul_redis_script_new(const char *source, simul_redis_script **out);
void simul_redis_script_free(simul_redis_script *s);
/* Its SHA-1, 40 lowercase hex digits (as SCRIPT LOAD returns). */
const char *simul_redis_script_sha1(const simul_redis_script *s);
/* Suspends. Runs the script with keys[0..nkeys) and args[0..nargs) (lengths NULL: C strings).
 * As simul_redis_command_argv: 0 and *reply, -EREMOTEIO with the script's error, ... */
int simul_redis_script_call(simul_redis_conn *c, simul_redis_script *s, simul_redis_reply **reply,
                            int nkeys, const char *const *keys, const size_t *keylens, int nargs,
                            const char *const *args, const size_t *arglens);

/* ---------------------------------------------------------------------------------------------
 * Client: pub/sub
 * ------------------------------------------------------------------------------------------- */
/* A subscription is a queue of messages that one task reads. On a RESP3 connection it shares
 * the connection with ordinary commands (messages arrive as push replies); on a RESP2 connection
 * the server accepts only (un)subscribe commands and PING once anything is subscribed, so give
 * pub/sub its own connection there. A channel or pattern belongs to at most one subscription of a
 * connection. Subscriptions are replayed after a reconnection (messages published while the
 * connection was down are lost, as Redis' pub/sub is at-most-once).
 * Slow readers: the queue holds at most `bound` messages. When a message arrives and the queue
 * is full, the connection's reader first yields once, so a subscriber task that keeps up (it is
 * runnable, woken by the messages already queued) drains it and loses nothing; if the queue is
 * still full the OLDEST queued message is dropped and counted (simul_redis_subscription_dropped).
 * The connection never blocks on a reader, memory stays bounded, and a reader that falls behind
 * sees the latest messages. */

#define SIMUL_REDIS_SUB_PATTERN 1u /* PSUBSCRIBE: the names are glob patterns */
#define SIMUL_REDIS_SUB_SHARDED 2u /* SSUBSCRIBE: sharded channels (Redis 7; SPUBLISH) */

/* Suspends until the server confirmed the subscription to names[0..n) (SUBSCRIBE; PSUBSCRIBE
 * with SIMUL_REDIS_SUB_PATTERN; SSUBSCRIBE with SIMUL_REDIS_SUB_SHARDED, whose names must all
 * hash to one slot on a cluster). bound 0: 1024 messages. Returns 0 and *out; -EEXIST (a name is
 * already subscribed on this connection); -EINVAL; the errors of simul_redis_command_argv. */
int simul_redis_subscribe(simul_redis_conn *c, unsigned flags, const char *const *names, size_t n,
                          size_t bound, simul_redis_subscription **out);

/* Suspends until the next message and hands it over: a reply the caller frees, an array or push
 * ["message", channel, payload], ["pmessage", pattern, channel, payload] or
 * ["smessage", channel, payload]; or ["sunsubscribe", channel, count] when the server itself
 * ended a sharded subscription (its slot moved to another cluster node; nothing more will come
 * for that channel here). Returns 0; -ECANCELED / -ETIMEDOUT (nothing taken); -ESHUTDOWN once the
 * connection closes, or (no_reconnect) is lost, after what was queued; -EBUSY if another task is
 * reading it. */
int simul_redis_subscription_next(simul_redis_subscription *s, simul_redis_reply **msg);
/* Messages dropped because the queue was full. */
uint64_t simul_redis_subscription_dropped(const simul_redis_subscription *s);
/* Messages queued, not yet taken. */
size_t simul_redis_subscription_queued(const simul_redis_subscription *s);
/* Suspends. Unsubscribes (waiting for the confirmation unless the connection is down), drops
 * queued messages and frees the subscription. No task may be reading it: -EBUSY while one is
 * (nothing done; cancel the reader first). Returns 0, or the error of the UNSUBSCRIBE (the
 * subscription is freed anyway; messages still in flight for it are dropped). */
int simul_redis_subscription_close(simul_redis_subscription *s);

/* ---------------------------------------------------------------------------------------------
 * Sentinel
 * ------------------------------------------------------------------------------------------- */
/* A connection to the master a set of Sentinels names. Every connection attempt (the first,
 * every reconnection, every dedicated connection of the pool) asks the sentinels in turn for the
 * master's address (SENTINEL GET-MASTER-ADDR-BY-NAME; the one that answered is asked first next
 * time), connects there and checks with ROLE that it is a master (a demoted one is refused and the
 * attempt retried with the connection's back-off; a master that wants AUTH first is taken on the
 * sentinels' word). Sentinel disconnects the clients of a master it demotes, so after a failover
 * the connection reconnects to the new master: commands in flight fail as for any dropped
 * connection (SIMUL_REDIS_RETRY_SAFE resends), later ones go to the new master. A READONLY answer
 * (a write that reached the old master after it was demoted, before it dropped us) is returned
 * as -EREMOTEIO and makes the connection reconnect at once, to the master the sentinels name. */
typedef struct simul_redis_sentinel_opts {
    const char *const *sentinels; /* "host:port" of each sentinel */
    size_t nsentinels;
    const char *master_name;       /* as in `sentinel monitor NAME ...` */
    const char *sentinel_password; /* AUTH to the sentinels; NULL: none */
    simul_redis_opts node;         /* the master connection's options (host, port, unix_path and
                                      connect_cb are ignored) */
    /* Reads from a replica (redis-py's Sentinel.slave_for): every connection attempt asks the
     * sentinels for the master's replicas (SENTINEL REPLICAS) and connects to one they consider
     * up (not s_down, o_down or disconnected, link to the master ok) that answers ROLE as a
     * replica; replicas take turns from one attempt to the next. When none can be reached, the
     * connection goes to the master instead. So a replica's death makes the connection reconnect
     * (its commands in flight fail, as for any lost connection; SIMUL_REDIS_RETRY_SAFE resends)
     * to another replica or the master. Writes on it get the replica's READONLY error. */
    bool replica;
} simul_redis_sentinel_opts;

/* Suspends. As simul_redis_connect, to the master of opts->master_name; also -ENOENT (no
 * sentinel knows the name), -ENOTCONN (no sentinel answered), -EAGAIN (the address given is not
 * a master, a failover under way: try again). The result is an ordinary connection. */
int simul_redis_sentinel_connect(const simul_redis_sentinel_opts *opts, simul_redis_conn **out);
/* Suspends. The master's address as the sentinels give it now (host into host[0..hostlen)). */
int simul_redis_sentinel_master_addr(const simul_redis_sentinel_opts *opts, char *host,
                                     size_t hostlen, int *port);

/* ---------------------------------------------------------------------------------------------
 * Cluster
 * ------------------------------------------------------------------------------------------- */
/* A Redis Cluster client: the slot map read from the cluster (CLUSTER SLOTS), one multiplexed
 * connection per node (made on first use, each with automatic pipelining and a pool for blocking
 * commands), every command sent to the master of its keys' slot. The keys of a command are found
 * from the server's COMMAND table (read once at connect), or by COMMAND GETKEYS for commands whose
 * keys depend on their arguments (EVAL, XREAD, ZUNIONSTORE, ...; one more round trip).
 * - MOVED: the slot is fixed in the map at once, the whole map is read again (one refresh at a
 *   time; other callers wait for it), and the command goes to the new node.
 * - ASK (a slot being migrated): ASKING and the command go to the named node, once, contiguous;
 *   the map is left alone. TRYAGAIN (a multi-key command whose keys a migration has split) and
 *   CLUSTERDOWN: retried after a short growing pause (5 ms doubling), within the caller's
 *   deadline. So a slot migrated while commands run costs redirects, never an error.
 * - A node that cannot be reached before anything is sent: the map is read again and the command
 *   goes where it says (a failover). A node lost with the command in flight: the map is read
 *   again; the command fails (-ECONNRESET, ...) unless marked SIMUL_REDIS_RETRY_SAFE.
 * - Keys in more than one slot: -EXDEV at once, nothing sent (the server's CROSSSLOT); use hash
 *   tags ({user1}.name, {user1}.age) to keep keys together.
 * - More than max_redirects redirects (MOVED, ASK) for one command: -ELOOP. Waits (TRYAGAIN,
 *   CLUSTERDOWN, no node reachable) end after 64 pauses (about 20 s) with -EAGAIN, or sooner at
 *   the caller's deadline.
 * Transactions and sharded pub/sub: see below; reads from replicas: read_from_replicas. */
typedef struct simul_redis_cluster simul_redis_cluster;

typedef struct simul_redis_cluster_opts {
    const char *const *seeds; /* "host:port" of one or more nodes, to read the map from */
    size_t nseeds;
    simul_redis_opts node;  /* for each node connection: auth, protocol, timeouts, limits,
                               pool_size (host, port, unix_path, connect_cb and db are ignored) */
    unsigned max_redirects; /* per command; 0: 16 */
    /* Reads from replicas (redis-py's read_from_replicas; simul_redis_cluster_command*, while
     * cluster pipelines stay on the masters): a command the server flags readonly
     * (GET, MGET, HGETALL, XRANGE, EVALSHA_RO, ...; not a blocking one) goes to a replica of its
     * slot's master, on a connection that has sent READONLY; several replicas of one master
     * share its slot ranges. A replica that cannot be reached, refuses READONLY or is lost with
     * the read in flight: the read goes to the master (reads are safe to resend) and the map is
     * read again. Replicas replicate asynchronously: a read may not see a write just made
     * (leave this off when that matters: a WAIT sent through the cluster client goes to a
     * dedicated connection of some node, and covers none of the client's writes). */
    bool read_from_replicas;
} simul_redis_cluster_opts;

/* Suspends. Reads the slot map and the command table from the seeds. 0 and *out; -ENOTCONN (no
 * seed answered), -EINVAL, -ENOMEM, -ECANCELED, -ETIMEDOUT. */
int simul_redis_cluster_connect(const simul_redis_cluster_opts *opts, simul_redis_cluster **out);
/* Suspends. Closes every node connection (what is in flight fails) and frees the cluster. */
int simul_redis_cluster_close(simul_redis_cluster *cl);
/* Suspends. As simul_redis_command / _command_argv, routed by slot (see above): also -EXDEV
 * (keys in several slots), -ELOOP (too many redirects). */
int simul_redis_cluster_command(simul_redis_cluster *cl, simul_redis_reply **reply,
                                const char *fmt, ...);
int simul_redis_cluster_command_argv(simul_redis_cluster *cl, unsigned flags,
                                     simul_redis_reply **reply, int argc, const char *const *argv,
                                     const size_t *argvlen);
/* The slot of a key (CRC16 of the key, or of its {hash tag}, modulo 16384). */
unsigned simul_redis_cluster_keyslot(const char *key, size_t len);
/* Which node serves a slot in the current map: its host (into host[0..hostlen)) and port.
 * 0; -ENOENT (no node known for it), -EINVAL. */
int simul_redis_cluster_slot_node(const simul_redis_cluster *cl, unsigned slot, char *host,
                                  size_t hostlen, int *port);

/* A pipeline over the cluster: the commands are split by node, each node's share goes out as one
 * pipeline on its connection (all nodes at once), and commands redirected meanwhile (MOVED, ASK,
 * TRYAGAIN) are redone one by one; replies come back in the order added. Otherwise as
 * simul_redis_pipeline_* (a command whose keys span slots has result -EXDEV). */
typedef struct simul_redis_cluster_pipeline simul_redis_cluster_pipeline;
int simul_redis_cluster_pipeline_new(simul_redis_cluster *cl, simul_redis_cluster_pipeline **out);
int simul_redis_cluster_pipeline_add(simul_redis_cluster_pipeline *p, const char *fmt, ...);
int simul_redis_cluster_pipeline_add_argv(simul_redis_cluster_pipeline *p, int argc,
                                          const char *const *argv, const size_t *argvlen);
size_t simul_redis_cluster_pipeline_len(const simul_redis_cluster_pipeline *p);
int simul_redis_cluster_pipeline_exec(simul_redis_cluster_pipeline *p, simul_redis_reply **replies,
                                      int *results);
void simul_redis_cluster_pipeline_free(simul_redis_cluster_pipeline *p);

/* Transactions on a cluster (redis-py's RedisCluster pipeline(transaction=True)): a transaction
 * lives in one slot, on a dedicated connection of the slot's master. The slot is hashkey's and
 * every watched key's (hashkey NULL: the watched keys'); keys in two slots are -EXDEV at once,
 * nothing sent, and so is any command of the transaction (simul_redis_txn_command / _queue)
 * whose keys are not in that slot (a command whose keys only COMMAND GETKEYS can name is
 * checked when run with simul_redis_txn_command, and left to the server's CROSSSLOT, which
 * aborts EXEC, when queued). The transaction is then an ordinary simul_redis_txn (txn_command,
 * txn_queue, txn_exec, txn_close). simul_redis_cluster_txn_begin follows MOVED answers to WATCH;
 * later ones (to a read, to a queued command: EXEC then aborts, nothing ran) are the caller's
 * -EREMOTEIO with the MOVED error, which simul_redis_cluster_transaction handles. Close a
 * transaction before the cluster (it holds a node connection, whose closing waits for it). */
int simul_redis_cluster_txn_begin(simul_redis_cluster *cl, const char *hashkey,
                                  const char *const *watch, size_t nwatch, simul_redis_txn **out);
/* The retry loop (simul_redis_transaction on a cluster). On a MOVED answer anywhere in an attempt
 * (WATCH, a read, a queued command: EXEC's EXECABORT, so nothing ran) the slot is fixed in the
 * map, the map is read again and the whole attempt starts over on the new master, fn included
 * (its reads are stale); an ASK answer (the slot is being migrated, its keys may be on two nodes,
 * which no transaction can span) waits a growing pause and starts over, as TRYAGAIN. A node lost
 * before EXEC went out: start over elsewhere; lost with EXEC in flight: the error (it may have
 * run). A watched key changed: start over, up to max_attempts (0: no bound) as
 * simul_redis_transaction. Redirects are bounded by max_redirects (-ELOOP). Returns exec's result
 * and *reply, -EXDEV, -EINVAL (no key to route by), fn's error. */
int simul_redis_cluster_transaction(simul_redis_cluster *cl, const char *hashkey,
                                    const char *const *watch, size_t nwatch,
                                    simul_redis_txn_fn fn, void *arg, unsigned max_attempts,
                                    simul_redis_reply **reply);

/* Sharded pub/sub on a cluster (SSUBSCRIBE; redis-py's RedisCluster pubsub ssubscribe): the
 * channels must hash to one slot (-EXDEV otherwise, nothing sent); the subscription lives on the
 * slot's master, on a connection of its own, and follows the slot: when the server ends it (the
 * slot was migrated: a "sunsubscribe" push) or its node's connection is lost (a crash, a restart,
 * a failover), the reader's next call reads the map again and subscribes where the slot lives
 * now, waiting (growing pauses, within about 20 s and the caller's deadline) while no node
 * serves it. Messages published while it moves are lost (pub/sub is at-most-once). A reader
 * waiting in _next when that happens resubscribes at once. SPUBLISH goes through
 * simul_redis_cluster_command as any keyed command. Close subscriptions before the cluster; one
 * still open when the cluster closes wakes its reader (-ESHUTDOWN) and is freed with it. */
typedef struct simul_redis_cluster_subscription simul_redis_cluster_subscription;
/* Suspends until subscribed. bound: as simul_redis_subscribe. 0 and *out; -EXDEV, -EINVAL,
 * -EAGAIN (no node took it after the waits), -ECANCELED, -ETIMEDOUT, -ENOMEM, -ESHUTDOWN. */
int simul_redis_cluster_ssubscribe(simul_redis_cluster *cl, const char *const *channels, size_t n,
                                   size_t bound, simul_redis_cluster_subscription **out);
/* Suspends until the next message, ["smessage", channel, payload] (resubscribing first if the
 * slot moved or the node was lost). 0 and *msg (the caller frees it); -ECANCELED / -ETIMEDOUT;
 * -ESHUTDOWN (the cluster is closing); -EBUSY (another task is reading); -EAGAIN (no node took
 * the subscription after the waits; the next call tries again). */
int simul_redis_cluster_subscription_next(simul_redis_cluster_subscription *cs,
                                          simul_redis_reply **msg);
/* Messages dropped for the bound, over every resubscription. */
uint64_t simul_redis_cluster_subscription_dropped(const simul_redis_cluster_subscription *cs);
/* Times it subscribed again after a slot move or a lost node. */
uint64_t simul_redis_cluster_subscription_resubscribes(const simul_redis_cluster_subscription *cs);
/* Suspends (shielded). SUNSUBSCRIBE, its connection closed, the subscription freed. 0; -EBUSY
 * while a task is inside simul_redis_cluster_subscription_next on it (nothing done: cancel that
 * task first; simul_redis_cluster_close wakes such readers itself). */
int simul_redis_cluster_subscription_close(simul_redis_cluster_subscription *cs);

typedef struct simul_redis_cluster_stats {
    uint64_t moved;           /* MOVED answers followed */
    uint64_t asks;            /* commands sent with ASKING after an ASK answer */
    uint64_t tryagain;        /* TRYAGAIN / CLUSTERDOWN answers waited out */
    uint64_t refreshes;       /* slot map reads */
    uint64_t node_connects;   /* node connections made */
    uint64_t crossslot;       /* commands refused locally with -EXDEV */
    uint64_t getkeys;         /* COMMAND GETKEYS round trips (movable keys) */
    uint64_t pipeline_groups; /* per-node pipelines sent by cluster pipelines */
    uint64_t replica_reads;     /* commands answered by a replica (read_from_replicas) */
    uint64_t replica_fallbacks; /* reads sent to the master because their replica failed */
} simul_redis_cluster_stats;
/* Copies the cluster client's counters into *out (does not suspend). */
void simul_redis_cluster_get_stats(const simul_redis_cluster *cl, simul_redis_cluster_stats *out);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_REDIS_H */
