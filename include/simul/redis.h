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
     * until the connection is closed. no_reconnect: a failed connection stays down, and commands
     * fail with -ENOTCONN. */
    double reconnect_min;
    double reconnect_max;
    bool no_reconnect;
    const simul_redis_limits *limits; /* the reply parser's limits; NULL: defaults */
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

/* Suspends until the reply of one command, argv[0..argc) (argvlen NULL: C strings).
 * Returns 0 and *reply (the caller frees it with simul_redis_reply_free), or:
 *   -EREMOTEIO  the server answered with an error reply: *reply holds it (type
 *               SIMUL_REDIS_ERROR, the message in str), the caller frees it. The connection is
 *               fine. Only a top-level error counts (errors inside EXEC's array stay in the tree).
 *   -ECANCELED / -ETIMEDOUT  the caller was cancelled or its deadline expired first (the command
 *               may or may not have run; its reply, when it comes, is dropped);
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
} simul_redis_stats;
/* Copies the connection's counters (simul_redis_stats, counted since simul_redis_connect, over
 * every reconnect) into *out. Does nothing if c or out is NULL. Never suspends. */
void simul_redis_get_stats(const simul_redis_conn *c, simul_redis_stats *out);

/* ---------------------------------------------------------------------------------------------
 * Client: pub/sub
 * ------------------------------------------------------------------------------------------- */
/* A subscription is a queue of messages that one task reads. On a RESP3 connection it shares
 * the connection with ordinary commands (messages arrive as push replies); on a RESP2 connection
 * the server accepts only (un)subscribe commands and PING once anything is subscribed, so give
 * pub/sub its own connection there. A channel or pattern belongs to at most one subscription of a
 * connection. Subscriptions are replayed after a reconnection (messages published while the
 * connection was down are lost, as Redis' pub/sub is at-most-once).
 * Slow readers: the queue holds at most `bound` messages; when a message arrives and the queue
 * is full the OLDEST queued message is dropped and counted (simul_redis_subscription_dropped),
 * so the connection never blocks on a reader and memory stays bounded, and a reader that falls
 * behind sees the latest messages. */

#define SIMUL_REDIS_SUB_PATTERN 1u /* PSUBSCRIBE: the names are glob patterns */

/* Suspends until the server confirmed the subscription to names[0..n) (SUBSCRIBE, or PSUBSCRIBE
 * with SIMUL_REDIS_SUB_PATTERN). bound 0: 1024 messages. Returns 0 and *out; -EEXIST (a name is
 * already subscribed on this connection); -EINVAL; the errors of simul_redis_command_argv. */
int simul_redis_subscribe(simul_redis_conn *c, unsigned flags, const char *const *names, size_t n,
                          size_t bound, simul_redis_subscription **out);

/* Suspends until the next message and hands it over: a reply the caller frees, an array or push
 * ["message", channel, payload] or ["pmessage", pattern, channel, payload]. Returns 0;
 * -ECANCELED / -ETIMEDOUT (nothing taken); -ESHUTDOWN once the connection closes; -EBUSY if
 * another task is reading it. */
int simul_redis_subscription_next(simul_redis_subscription *s, simul_redis_reply **msg);
/* Messages dropped because the queue was full. */
uint64_t simul_redis_subscription_dropped(const simul_redis_subscription *s);
/* Suspends. Unsubscribes (waiting for the confirmation unless the connection is down), drops
 * queued messages and frees the subscription. No task may be reading it. Returns 0, or the
 * error of the UNSUBSCRIBE (the subscription is freed anyway; messages still in flight for it
 * are dropped). */
int simul_redis_subscription_close(simul_redis_subscription *s);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_REDIS_H */
