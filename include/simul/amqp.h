/* simul/amqp.h — libsimul-amqp (pkg-config simul-amqp, CMake simul::amqp): an AMQP 0-9-1 client
 * (RabbitMQ) on simul_stream. First the frame reader, a pure function over bytes with limits;
 * then the client: one connection read by one task, channels multiplexed on it, publisher
 * confirms awaited one by one or as a batch, consumers as queues, heartbeats on timers, and
 * recovery (reconnect, declare again, consume again) on by default; amqps through libsimul-tls
 * (verified). The method codec is librabbitmq's (its generated encoder and decoder only: none of
 * its sockets); field tables (typed, every RabbitMQ type) are read by our own bounded reader. */
#ifndef SIMUL_AMQP_H
#define SIMUL_AMQP_H

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
 * Frames (pure functions: no sockets, no loop)
 * ------------------------------------------------------------------------------------------- */

#define SIMUL_AMQP_FRAME_METHOD 1
#define SIMUL_AMQP_FRAME_HEADER 2
#define SIMUL_AMQP_FRAME_BODY 3
#define SIMUL_AMQP_FRAME_HEARTBEAT 8
#define SIMUL_AMQP_FRAME_MIN 4096u   /* the spec's smallest frame_max */
#define SIMUL_AMQP_FRAME_OVERHEAD 8u /* type, channel, size, end byte */

/* One frame as it lies in the caller's buffer: payload points into it. */
typedef struct simul_amqp_frame {
    uint8_t type;
    uint16_t channel;
    uint32_t size;
    const uint8_t *payload;
} simul_amqp_frame;

/* Reads the first frame of data[0..len). frame_max bounds the whole frame (payload + 8), as the
 * negotiated frame_max does (0: no bound beyond 2^32). Returns the bytes the frame takes (> 0)
 * and *out; 0 when more bytes are needed (nothing is consumed: call again with more); -EMSGSIZE
 * (the header declares a frame over frame_max: known from the first 7 bytes, nothing waits for
 * the body); -EPROTO (an unknown frame type, a bad end byte, a heartbeat off channel 0 or with a
 * payload, a method frame too short for its class and method ids, a header frame shorter than 14
 * bytes). The reason in words: simul_amqp_frame_strerror(rc, data, len). */
ssize_t simul_amqp_frame_parse(const void *data, size_t len, uint32_t frame_max,
                               simul_amqp_frame *out);
/* Why simul_amqp_frame_parse returned rc on these bytes (static text). */
const char *simul_amqp_frame_strerror(ssize_t rc, const void *data, size_t len);

/* Decodes a method frame's payload with the codec (class and method ids first). Returns 0 and
 * *method_id ((class << 16) | method) when the arguments decode completely, -EPROTO when they do
 * not (truncated, a bad table, trailing garbage for a fixed layout), -EOPNOTSUPP for an unknown
 * method. Allocates only temporarily. For fuzzing and tests; the client does this internally. */
int simul_amqp_method_check(const simul_amqp_frame *f, uint32_t *method_id);

/* ---------------------------------------------------------------------------------------------
 * URL
 * ------------------------------------------------------------------------------------------- */

/* amqp://user:pass@host:port/vhost?heartbeat=S&frame_max=N&channel_max=N&connection_timeout=S
 * (RabbitMQ's URI spec): user, pass and vhost are percent-decoded; no path and an empty path ("/")
 * give the default vhost "/" (as pika and amqp091-go read it; the spec would say ""), "/%2f" gives
 * "/", "/v" gives "v"; defaults guest:guest@localhost:5672. "amqps"
 * sets tls (port 5671): simul_amqp_connect then speaks TLS (libsimul-tls, verified). An IPv6 host goes
 * in brackets. Strings are malloc'd into *out; simul_amqp_url_free frees them. */
typedef struct simul_amqp_url {
    char *user, *password, *host, *port, *vhost;
    bool tls;
    double heartbeat;       /* -1 when not given */
    uint32_t frame_max;     /* 0 when not given */
    uint16_t channel_max;   /* 0 when not given */
    double connect_timeout; /* 0 when not given */
} simul_amqp_url;
/* Returns 0; -EINVAL (not an amqp/amqps URL, a bad port, a bad percent escape, an unknown or bad
 * query parameter); -ENOMEM. */
int simul_amqp_url_parse(const char *url, simul_amqp_url *out);
void simul_amqp_url_free(simul_amqp_url *u);

/* ---------------------------------------------------------------------------------------------
 * Connection
 * ------------------------------------------------------------------------------------------- */
/* One connection serves every task of its loop; a reader task owns the socket's input, a writer
 * task its output (frames are queued without suspending and written together, once per pass).
 * Errors: negative errno values. A broker's refusal carries an AMQP reply code and text, kept on
 * the object it hit: -EREMOTEIO for a channel error (404 NOT_FOUND, 406 PRECONDITION_FAILED, ...:
 * simul_amqp_channel_error), -ECONNABORTED when the broker closed the connection
 * (simul_amqp_conn_error). -ECONNRESET: the connection was lost (EOF, reset); -ETIMEDOUT also
 * when heartbeats stopped (the broker is gone or frozen).
 * Recovery (default on): after a loss the reader reconnects with jittered exponential back-off,
 * opens every channel again and replays, in order, what was declared on it (exchanges, queues,
 * server-named queues under their new name, bindings, QoS, confirm mode) and its consumers. What
 * was in flight at the loss fails with the loss's error: RPCs, and publishes not yet confirmed
 * (their awaits return it; they are never resent). Deliveries handed out before the loss can no
 * longer be acknowledged: ack/nack/reject return -ESTALE (the broker requeues them and delivers
 * them again with `redelivered` set). Calls made while the connection is down wait for it,
 * bounded by their deadline scope. */
typedef struct simul_amqp_conn simul_amqp_conn;
typedef struct simul_amqp_channel simul_amqp_channel;
typedef struct simul_amqp_consumer simul_amqp_consumer;

/* Makes the connection's byte stream (suspends): TLS, a Unix socket, a test's socketpair. Called
 * for the first connection and each reconnection. 0 and *out (the connection owns it) or -errno. */
typedef int (*simul_amqp_connect_cb)(void *arg, simul_stream **out);

struct simul_tls_config; /* simul/tls.h */
typedef struct simul_amqp_table simul_amqp_table; /* a field table: see "Field tables" below */

typedef struct simul_amqp_opts {
    const char *url; /* parsed first; the fields below override what they set */
    const char *host, *port, *user, *password, *vhost;
    simul_amqp_connect_cb connect_cb;
    void *connect_arg;
    double heartbeat;       /* seconds proposed (whole seconds, at least 1); 0: the URL's
                               heartbeat= or 60; < 0 (or heartbeat=0 in the URL): none. The
                               lower of ours and the broker's wins. */
    uint32_t frame_max;     /* proposed (default 131072); the lower of ours and the broker's */
    uint16_t channel_max;   /* proposed (default 2047) */
    double connect_timeout; /* seconds for connect + handshake, each attempt; 0: 10 s */
    double reconnect_min, reconnect_max; /* back-off bounds (defaults 0.05 s and 5 s): the
                                            n-th wait is random in [d/2, d], d doubling from
                                            min up to max (SIMUL_BACKOFF_EQUAL); NaN: -EINVAL */
    bool no_recovery;            /* a lost connection stays lost: calls fail with -ENOTCONN */
    size_t max_message;          /* largest message body accepted from the broker (default 128 MiB,
                                    RabbitMQ's max_message_size): a bigger one is -EMSGSIZE and
                                    closes the connection */
    const char *connection_name; /* client property connection_name (shown by the broker) */
    bool sasl_external;          /* authenticate with EXTERNAL (the TLS client certificate:
                                    tls_cert_file, or the one connect_cb presented; RabbitMQ's
                                    rabbitmq_auth_mechanism_ssl, user = the certificate's CN)
                                    instead of PLAIN user and password */
    /* TLS (amqps:// URLs, or tls = true): each connection, reconnections included, goes through
     * libsimul-tls with the server's certificate verified against the system's trust store (or
     * tls_ca_file) and its name (tls_server_name, else the host), which is also sent as SNI.
     * Not used with connect_cb (that callback makes the stream itself). */
    bool tls;
    const char *tls_ca_file;     /* PEM file of the CAs to trust instead of the system's */
    const char *tls_cert_file;   /* client certificate chain (PEM), for EXTERNAL */
    const char *tls_key_file;    /* its private key (PEM) */
    const char *tls_server_name; /* the name to verify and send as SNI (default: the host) */
    bool tls_insecure_skip_verify;         /* DANGER: no verification at all (tests only) */
    struct simul_tls_config *tls_config;   /* a client config to use as is (borrowed: it must
                                              outlive the connection); overrides tls_ca_file,
                                              tls_cert_file, tls_key_file, insecure_skip_verify */
    size_t no_ack_buffer; /* deliveries a NO_ACK consumer holds before the reader pauses
                             (default 1024; see simul_amqp_consume) */
    const simul_amqp_table *client_properties; /* sent with ours (product, platform,
                                                  capabilities, connection_name); copied */
    char *why;     /* if not NULL: the reason in words of a failed simul_amqp_connect ("certificate
                      verify failed: unable to get local issuer certificate", the broker's close
                      text, ...), NUL-terminated in why[0..whylen). Written only by that call. */
    size_t whylen;
} simul_amqp_opts;

/* Suspends. Connects and runs the handshake (protocol header, start/start-ok with PLAIN,
 * tune/tune-ok, open) inside the connect timeout. opts and its strings are copied.
 * Returns 0 and *out; the connect error (-ECONNREFUSED, ...); -EACCES (the broker refused the
 * credentials, 403, or the vhost, 530 NOT_ALLOWED); -ECONNABORTED (the broker closed the
 * handshake with another code); -EPROTO (not an AMQP 0-9-1 broker); -EPROTONOSUPPORT (the broker
 * does not offer the mechanism: PLAIN, or EXTERNAL with sasl_external — RabbitMQ offers
 * EXTERNAL only over TLS with a client certificate; or TLS asked for in a build without
 * libsimul-tls); -EKEYREJECTED (TLS: the broker's certificate failed verification) or -EPROTO (another
 * TLS failure, e.g. the broker refused our client certificate); -ETIMEDOUT; -EINVAL (bad options
 * or URL); -ENOENT (a TLS file cannot be read); -ECANCELED; -ENOMEM. The reason in words goes to
 * opts->why. */
int simul_amqp_connect(const simul_amqp_opts *opts, simul_amqp_conn **out);

/* The reason in words of the last failed connection attempt (a reconnection's included: "connect:
 * Connection refused", "certificate verify failed: ..."), "" if none. Valid until the next
 * attempt. */
const char *simul_amqp_last_error(const simul_amqp_conn *c);
/* Whether the current connection runs over TLS. */
bool simul_amqp_is_tls(const simul_amqp_conn *c);

/* Suspends. Sends connection.close and waits (at most 5 s) for close-ok, fails what is pending
 * with -ECANCELED, stops the reader, writer and timers, wakes consumers (-ESHUTDOWN), waits until
 * every task inside a call on the connection has left, and frees the connection, its channels
 * and consumers. Shielded. NULL is ignored. Returns 0. */
int simul_amqp_close(simul_amqp_conn *c);

/* Whether the connection is open (handshake and recovery done). */
bool simul_amqp_connected(const simul_amqp_conn *c);
/* Whether the broker has blocked publishing (connection.blocked: a resource alarm). */
bool simul_amqp_blocked(const simul_amqp_conn *c);
/* The last connection.close the broker sent: its reply text (NULL if none) and code in *code. */
const char *simul_amqp_conn_error(const simul_amqp_conn *c, int *code);
/* Negotiated values of the current connection. */
uint32_t simul_amqp_frame_max(const simul_amqp_conn *c);
uint16_t simul_amqp_channel_max(const simul_amqp_conn *c);
uint16_t simul_amqp_heartbeat(const simul_amqp_conn *c);

typedef struct simul_amqp_stats {
    uint64_t connects;   /* successful handshakes, recoveries included */
    uint64_t failures;   /* connections lost */
    uint64_t recoveries; /* recoveries completed (topology and consumers replayed) */
    uint64_t frames_in, frames_out;
    uint64_t writes; /* stream writes (frames are batched per loop pass) */
    uint64_t heartbeats_out, heartbeats_in;
    uint64_t published, acked, nacked, lost; /* publishes; confirms; lost at a connection loss */
    uint64_t returned;                       /* basic.return received */
    uint64_t delivered;     /* deliveries received (basic.deliver and basic.get-ok) */
    uint64_t blocked_waits; /* publishes that waited for connection.unblocked */
    uint64_t read_pauses;   /* times the reader stopped reading for a full NO_ACK consumer */
} simul_amqp_stats;
/* Copies the connection's counters into *out (does not suspend). */
void simul_amqp_get_stats(const simul_amqp_conn *c, simul_amqp_stats *out);

/* ---------------------------------------------------------------------------------------------
 * Channels
 * ------------------------------------------------------------------------------------------- */

/* Suspends until channel.open-ok. Returns 0 and *out; -ENFILE (channel_max reached); the
 * connection's errors. The channel belongs to the connection (freed with it at the latest). */
int simul_amqp_channel_open(simul_amqp_conn *c, simul_amqp_channel **out);
/* Suspends. Closes the channel (channel.close / close-ok, unless it is already closed), fails its
 * pending calls and confirms with -ECANCELED, shuts its consumers (-ESHUTDOWN) and frees it.
 * Its consumers' handles must be freed first or die with it. Returns 0. */
int simul_amqp_channel_close(simul_amqp_channel *ch);
/* The channel error that closed the channel (reply text, code in *code), or NULL while open. A
 * channel closed by the broker stays closed (calls return -EREMOTEIO); close it and open another.
 * The connection is not affected. */
const char *simul_amqp_channel_error(const simul_amqp_channel *ch, int *code);
/* The channel's number on the current connection. */
uint16_t simul_amqp_channel_id(const simul_amqp_channel *ch);

/* Declarations. Each suspends until the broker's reply; returns 0, -EREMOTEIO (a channel
 * error: the channel is closed, see simul_amqp_channel_error) or the connection's errors.
 * What is declared (not passive) is recorded for recovery; delete and unbind forget it. */
#define SIMUL_AMQP_PASSIVE 1u /* check only (404 if it does not exist) */
#define SIMUL_AMQP_DURABLE 2u
#define SIMUL_AMQP_AUTO_DELETE 4u
#define SIMUL_AMQP_EXCLUSIVE 8u   /* queue.declare, basic.consume */
#define SIMUL_AMQP_INTERNAL 16u   /* exchange.declare */
#define SIMUL_AMQP_IF_UNUSED 32u  /* delete */
#define SIMUL_AMQP_IF_EMPTY 64u   /* queue.delete */
#define SIMUL_AMQP_NO_ACK 128u    /* basic.consume, basic.get */
#define SIMUL_AMQP_MANDATORY 256u /* basic.publish */
#define SIMUL_AMQP_MULTIPLE 512u  /* ack, nack */
#define SIMUL_AMQP_REQUEUE 1024u  /* nack, reject */

/* ---------------------------------------------------------------------------------------------
 * Field tables: arguments, message headers, client properties
 * ------------------------------------------------------------------------------------------- */
/* Every field type RabbitMQ uses, named by its tag on the wire (RabbitMQ's 0-9-1 errata). */
#define SIMUL_AMQP_T_VOID 'V'      /* no value (Python None) */
#define SIMUL_AMQP_T_BOOL 't'
#define SIMUL_AMQP_T_I8 'b'
#define SIMUL_AMQP_T_U8 'B'
#define SIMUL_AMQP_T_I16 's'
#define SIMUL_AMQP_T_U16 'u'
#define SIMUL_AMQP_T_I32 'I'
#define SIMUL_AMQP_T_U32 'i'
#define SIMUL_AMQP_T_I64 'l'
#define SIMUL_AMQP_T_FLOAT 'f'
#define SIMUL_AMQP_T_DOUBLE 'd'
#define SIMUL_AMQP_T_DECIMAL 'D'   /* value / 10^scale */
#define SIMUL_AMQP_T_STRING 'S'    /* long string (UTF-8 by convention) */
#define SIMUL_AMQP_T_BYTES 'x'     /* byte array */
#define SIMUL_AMQP_T_TIMESTAMP 'T' /* seconds since the epoch */
#define SIMUL_AMQP_T_TABLE 'F'     /* nested table */
#define SIMUL_AMQP_T_ARRAY 'A'     /* array of values of any types */
/* Limits on a table, checked when one is built and when one is read from the broker: nesting
 * (a flat table is depth 1) and items (entries, nested ones included). */
#define SIMUL_AMQP_TABLE_MAX_DEPTH 32
#define SIMUL_AMQP_TABLE_MAX_ITEMS 65536

/* simul_amqp_table (declared above): a table, or an array (entries without keys). */

/* One value. Integers of every width are in u.i (their type bounds them); STRING and BYTES in
 * u.bytes (data need not be NUL-terminated; a table's own copy always is, past len); TABLE and
 * ARRAY in u.table. */
typedef struct simul_amqp_value {
    char type; /* SIMUL_AMQP_T_* */
    union {
        bool boolean;
        int64_t i;
        uint64_t timestamp;
        float f;
        double d;
        struct {
            uint8_t scale;
            uint32_t value;
        } decimal;
        struct {
            const void *data;
            size_t len;
        } bytes;
        const simul_amqp_table *table;
    } u;
} simul_amqp_value;

/* A new empty table / array (no I/O). Returns 0 and *out, -ENOMEM. Free with _table_free. */
int simul_amqp_table_new(simul_amqp_table **out);
int simul_amqp_array_new(simul_amqp_table **out);
/* Frees t and everything in it. NULL is ignored. */
void simul_amqp_table_free(simul_amqp_table *t);
/* A deep copy. Returns 0 and *out, -ENOMEM, -EINVAL. */
int simul_amqp_table_copy(const simul_amqp_table *t, simul_amqp_table **out);
bool simul_amqp_table_is_array(const simul_amqp_table *t);

/* Sets key to a deep copy of v (a table: key required, at most 255 bytes, an existing key is
 * replaced; an array: key NULL, v is appended). Returns 0; -EINVAL (a bad type, a key where
 * none belongs or none where one does); -ERANGE (an integer outside its type); -E2BIG (past
 * SIMUL_AMQP_TABLE_MAX_DEPTH or _MAX_ITEMS); -ENOMEM. The typed setters below build v. */
int simul_amqp_table_set(simul_amqp_table *t, const char *key, const simul_amqp_value *v);
int simul_amqp_table_set_void(simul_amqp_table *t, const char *key);
int simul_amqp_table_set_bool(simul_amqp_table *t, const char *key, bool b);
/* type: SIMUL_AMQP_T_I8, _U8, _I16, _U16, _I32, _U32 or _I64 (RabbitMQ wants signed types for
 * x-message-ttl, x-max-priority, x-max-length ...). */
int simul_amqp_table_set_int(simul_amqp_table *t, const char *key, char type, int64_t x);
int simul_amqp_table_set_float(simul_amqp_table *t, const char *key, float f);
int simul_amqp_table_set_double(simul_amqp_table *t, const char *key, double d);
int simul_amqp_table_set_decimal(simul_amqp_table *t, const char *key, uint8_t scale,
                                 uint32_t value);
int simul_amqp_table_set_timestamp(simul_amqp_table *t, const char *key, uint64_t seconds);
int simul_amqp_table_set_string(simul_amqp_table *t, const char *key, const char *s);
int simul_amqp_table_set_bytes(simul_amqp_table *t, const char *key, const void *p, size_t n);
/* sub (a table or an array) is copied. */
int simul_amqp_table_set_table(simul_amqp_table *t, const char *key, const simul_amqp_table *sub);

/* Entries in order of insertion (as on the wire). */
size_t simul_amqp_table_count(const simul_amqp_table *t);
/* Entry i (NULL past the end); *key (may be NULL) gets its key (NULL in an array). */
const simul_amqp_value *simul_amqp_table_at(const simul_amqp_table *t, size_t i, const char **key);
/* The value of key, NULL if absent. */
const simul_amqp_value *simul_amqp_table_get(const simul_amqp_table *t, const char *key);
/* Typed reads: 0; -ENOENT (no such key); -EINVAL (another type). get_int takes every integer
 * type and timestamps; get_double float, double and decimal; get_string strings and byte
 * arrays (len may be NULL); get_table tables and arrays. */
int simul_amqp_table_get_int(const simul_amqp_table *t, const char *key, int64_t *out);
int simul_amqp_table_get_bool(const simul_amqp_table *t, const char *key, bool *out);
int simul_amqp_table_get_double(const simul_amqp_table *t, const char *key, double *out);
int simul_amqp_table_get_string(const simul_amqp_table *t, const char *key, const char **s,
                                size_t *len);
int simul_amqp_table_get_table(const simul_amqp_table *t, const char *key,
                               const simul_amqp_table **out);

/* The wire form (a pure function, fuzzed): reads one field table (its 4-byte size, then entries)
 * from data[0..len). Returns the bytes it took and *out; -EPROTO (truncated, an unknown type, a
 * size past the end); -E2BIG (deeper than SIMUL_AMQP_TABLE_MAX_DEPTH or more than _MAX_ITEMS
 * items); -ENOMEM. */
ssize_t simul_amqp_table_parse(const void *data, size_t len, simul_amqp_table **out);
/* Writes t's wire form into buf[0..cap). Returns its size; -EMSGSIZE (cap too small). */
ssize_t simul_amqp_table_encode(const simul_amqp_table *t, void *buf, size_t cap);

/* Optional arguments (x-message-ttl, x-queue-type, x-max-length, x-dead-letter-exchange, ...):
 * a typed value, else a string, else a 64-bit integer. */
typedef struct simul_amqp_arg {
    const char *key;
    const char *str; /* the value if not NULL (and no value), else integer */
    int64_t integer;
    const simul_amqp_value *value; /* if not NULL: the value, any type (copied) */
} simul_amqp_arg;

/* Suspends until exchange.declare-ok: declares exchange name of type ("direct", "fanout",
 * "topic", "headers") with flags and arguments; recovery declares it again. Returns 0; a channel
 * error as -EREMOTEIO (code and text from simul_amqp_channel_error); the connection's error. */
int simul_amqp_exchange_declare(simul_amqp_channel *ch, const char *name, const char *type,
                                unsigned flags, const simul_amqp_arg *args, size_t nargs);
/* Suspends until exchange.delete-ok; recovery forgets it. Returns as exchange_declare. */
int simul_amqp_exchange_delete(simul_amqp_channel *ch, const char *name, unsigned flags);
/* name "" (or NULL) asks the broker for a name: it is written to name_out (size name_cap, may be
 * NULL) and recovery declares it again and follows its new name. *messages and *consumers (may
 * be NULL) get the counts the broker reported. */
int simul_amqp_queue_declare(simul_amqp_channel *ch, const char *name, unsigned flags,
                             const simul_amqp_arg *args, size_t nargs, char *name_out,
                             size_t name_cap, uint32_t *messages, uint32_t *consumers);
int simul_amqp_queue_bind(simul_amqp_channel *ch, const char *queue, const char *exchange,
                          const char *routing_key, const simul_amqp_arg *args, size_t nargs);
int simul_amqp_queue_unbind(simul_amqp_channel *ch, const char *queue, const char *exchange,
                            const char *routing_key, const simul_amqp_arg *args, size_t nargs);
/* Exchange-to-exchange bindings (RabbitMQ's extension): messages published to `source` that
 * match routing_key (and args) are routed to `destination` too. Recorded for recovery like queue
 * bindings (bound again after a reconnection); unbind, or deleting either exchange, forgets it. */
int simul_amqp_exchange_bind(simul_amqp_channel *ch, const char *destination, const char *source,
                             const char *routing_key, const simul_amqp_arg *args, size_t nargs);
int simul_amqp_exchange_unbind(simul_amqp_channel *ch, const char *destination,
                               const char *source, const char *routing_key,
                               const simul_amqp_arg *args, size_t nargs);
/* *messages (may be NULL): the messages the queue held / that were purged. */
int simul_amqp_queue_delete(simul_amqp_channel *ch, const char *queue, unsigned flags,
                            uint32_t *messages);
int simul_amqp_queue_purge(simul_amqp_channel *ch, const char *queue, uint32_t *messages);
/* basic.qos: at most `prefetch` unacknowledged deliveries on this channel (0: no limit). */
int simul_amqp_qos(simul_amqp_channel *ch, uint16_t prefetch);

/* ---------------------------------------------------------------------------------------------
 * Publishing
 * ------------------------------------------------------------------------------------------- */

/* Message properties (basic class). NULL strings and zero numbers are left out. */
typedef struct simul_amqp_props {
    const char *content_type, *content_encoding, *correlation_id, *reply_to, *expiration,
        *message_id, *type, *user_id, *app_id;
    uint8_t delivery_mode; /* 2: persistent */
    uint8_t priority;
    uint64_t timestamp;
    const simul_amqp_arg *headers;
    size_t nheaders;
    /* Typed headers (publish: sent, then `headers` after them; a received message: every header
     * with its type, owned by the message, NULL if it had none). */
    const simul_amqp_table *header_table;
} simul_amqp_props;

/* Suspends until the broker acknowledged every later publish's confirm: puts the channel in
 * confirm mode (confirm.select). From then on each publish gets a sequence number. Returns 0 or
 * the errors of a declaration. */
int simul_amqp_confirm_select(simul_amqp_channel *ch);

/* Publishes one message: the frames are queued at once (method, header, body split at
 * frame_max), so a publish is in the stream whole or not at all. Suspends only while the broker
 * has blocked the connection (connection.blocked: waits for unblocked, bounded by the caller's
 * deadline) or while the output is above its high-water mark (the socket is slow).
 * flags: SIMUL_AMQP_MANDATORY (an unroutable message comes back as basic.return:
 * simul_amqp_next_return). *seq (may be NULL) gets the publish's sequence number on a channel in
 * confirm mode (0 otherwise). Returns 0; -ETIMEDOUT / -ECANCELED (nothing was queued);
 * -EREMOTEIO (the channel is closed); the connection's errors; -ENOMEM; -EINVAL. */
int simul_amqp_publish(simul_amqp_channel *ch, const char *exchange, const char *routing_key,
                       const void *body, size_t len, const simul_amqp_props *props, unsigned flags,
                       uint64_t *seq);

/* Suspends until publish `seq` is confirmed. Returns 0 (basic.ack), -EBADMSG (basic.nack: the
 * broker did not take it), the connection's error when the connection was lost before its
 * confirm (-ECONNRESET, -ETIMEDOUT, -ECONNABORTED: it may or may not have been taken; it is not
 * resent), -EREMOTEIO (the channel was closed by an error before the confirm), -ECANCELED /
 * -ETIMEDOUT (the caller's: the confirm is still tracked), -EINVAL (seq was never issued, or its
 * outcome was already consumed by a wait_confirms covering it). Each outcome can be awaited by
 * any number of waits until it is consumed: an outcome is kept until simul_amqp_wait_confirms
 * covers it or SIMUL_AMQP_CONFIRM_WINDOW later publishes have been confirmed. */
int simul_amqp_wait_confirm(simul_amqp_channel *ch, uint64_t seq);
/* Suspends until every publish issued so far on the channel has its outcome, then consumes those
 * outcomes. Returns 0 if all were acked; otherwise the first failure in sequence order (as
 * wait_confirm), with *failed (may be NULL) counting the publishes that were not acked. */
int simul_amqp_wait_confirms(simul_amqp_channel *ch, uint64_t *failed);
#define SIMUL_AMQP_CONFIRM_WINDOW 65536u
/* Publishes issued and not yet confirmed on the channel. */
uint64_t simul_amqp_unconfirmed(const simul_amqp_channel *ch);

/* A message as the broker hands it over: a delivery (consumer, basic.get) or a return. */
typedef struct simul_amqp_message {
    simul_amqp_channel *channel;
    uint64_t delivery_tag;
    bool redelivered;
    uint16_t reply_code;    /* returns: 312 NO_ROUTE, ... */
    const char *reply_text; /* returns */
    const char *exchange, *routing_key, *consumer_tag;
    uint32_t message_count; /* basic.get: messages left in the queue */
    simul_amqp_props props; /* strings inside live with the message; headers: string and
                               integer values only (other types are skipped); header_table:
                               every header, typed */
    const void *body;
    size_t len;
    uint64_t epoch_; /* internal: the channel incarnation it came on */
    bool no_ack_;    /* internal: taken with NO_ACK (nothing to acknowledge) */
} simul_amqp_message;
void simul_amqp_message_free(simul_amqp_message *m);

/* Suspends until the next basic.return on the channel (mandatory publishes that could not be
 * routed) and hands it over (free it with simul_amqp_message_free). Returns 0; -ECANCELED /
 * -ETIMEDOUT; -ESHUTDOWN (the channel closed). Up to 1024 returns wait; older ones are dropped
 * beyond that (counted in stats.returned all the same). */
int simul_amqp_next_return(simul_amqp_channel *ch, simul_amqp_message **out);

/* ---------------------------------------------------------------------------------------------
 * Consuming
 * ------------------------------------------------------------------------------------------- */

/* Suspends until basic.consume-ok. Deliveries for the consumer are queued on it and handed out by
 * simul_amqp_consumer_next; with a prefetch (simul_amqp_qos) the broker never sends more than
 * that many unacknowledged, so the queue's memory is bounded by it. A NO_ACK consumer, which no
 * prefetch bounds, is bounded by opts.no_ack_buffer instead: once that many deliveries wait in
 * its queue the connection's reader stops reading the socket (TCP pushes back to the broker,
 * whose queue keeps the messages: RabbitMQ refuses channel.flow from clients with 540
 * NOT_IMPLEMENTED) until the consumer has taken half of them. That pause holds every channel of
 * the connection: a task must not wait on another call on the same connection before taking the
 * deliveries it consumes (use a connection of its own for such a consumer). Cancelling such a
 * consumer, closing its channel or its connection never waits on the pause.
 * flags: SIMUL_AMQP_NO_ACK, SIMUL_AMQP_EXCLUSIVE. tag NULL: the broker names it. The
 * consumer is recorded for recovery. Returns 0 and *out, -EREMOTEIO (e.g. 404: no such queue),
 * the connection's errors. */
int simul_amqp_consume(simul_amqp_channel *ch, const char *queue, const char *tag, unsigned flags,
                       simul_amqp_consumer **out);
/* Deliveries waiting in the consumer's queue. */
size_t simul_amqp_consumer_buffered(const simul_amqp_consumer *k);
/* Suspends until the next delivery and hands it over (the caller frees it). Returns 0;
 * -ECANCELED / -ETIMEDOUT (nothing taken); once the queue is drained: -EIDRM when the broker
 * cancelled the consumer (its queue was deleted: simul_amqp_consumer_cancelled says so),
 * -ESHUTDOWN after simul_amqp_consumer_cancel or when its channel or connection closed, -EREMOTEIO
 * when its channel was closed by an error; -EBUSY (another task is reading it). */
int simul_amqp_consumer_next(simul_amqp_consumer *k, simul_amqp_message **out);
/* Whether the broker cancelled the consumer (basic.cancel from the server). */
bool simul_amqp_consumer_cancelled(const simul_amqp_consumer *k);
/* The consumer tag (the broker's when none was given). */
const char *simul_amqp_consumer_tag(const simul_amqp_consumer *k);
/* Suspends until basic.cancel-ok (when the channel is open); deliveries already queued stay for
 * consumer_next, which then returns -ESHUTDOWN. Returns 0 or the channel's errors. */
int simul_amqp_consumer_cancel(simul_amqp_consumer *k);
/* Frees the consumer (cancelling it first without waiting if it still runs); queued deliveries
 * are dropped (unacked, the broker redelivers them when the channel closes). No task may be in
 * consumer_next. NULL is ignored. */
void simul_amqp_consumer_free(simul_amqp_consumer *k);

/* Acknowledgements of a delivery m (consumer or get). flags: SIMUL_AMQP_MULTIPLE (every delivery
 * up to m on its channel), SIMUL_AMQP_REQUEUE (nack, reject). Do not suspend (queued like a
 * publish). Return 0; -ESTALE (m came on a connection or channel incarnation that is gone: the
 * broker has requeued it already); -EREMOTEIO (the channel is closed); -EINVAL (a NO_ACK delivery
 * or a return); the connection's errors. */
int simul_amqp_ack(const simul_amqp_message *m, unsigned flags);
int simul_amqp_nack(const simul_amqp_message *m, unsigned flags);
int simul_amqp_reject(const simul_amqp_message *m, unsigned flags);

/* Suspends until basic.recover-ok: the broker requeues every unacknowledged delivery of the
 * channel and delivers them again (`redelivered` set; RabbitMQ supports requeue only). Deliveries
 * handed out before it can no longer be acknowledged (-ESTALE). Returns 0 or the channel's
 * errors. */
int simul_amqp_recover(simul_amqp_channel *ch);

/* Transactions (tx class). tx_select puts the channel in transaction mode (for good: recovery
 * selects it again); publishes and acknowledgements then take effect at tx_commit, or are
 * discarded by tx_rollback (a rolled-back ack leaves the delivery unacknowledged, not requeued).
 * Each suspends until the broker's reply. A connection lost with work in the transaction fails
 * the next tx_commit with the loss's error (-ECONNRESET, ...) after rolling back what was done
 * since the reconnection: redo the whole transaction. A commit whose reply never came (the
 * connection dropped meanwhile) returns the loss's error: it may or may not have been applied.
 * RabbitMQ refuses tx_select on a channel in confirm mode (406: -EREMOTEIO). Return 0 or the
 * channel's errors. */
int simul_amqp_tx_select(simul_amqp_channel *ch);
int simul_amqp_tx_commit(simul_amqp_channel *ch);
int simul_amqp_tx_rollback(simul_amqp_channel *ch);

/* Suspends. basic.get: one message from the queue if there is one. Returns 0 and *out (the
 * caller frees it; ack it unless SIMUL_AMQP_NO_ACK), -ENOMSG (the queue is empty), -EREMOTEIO,
 * the connection's errors. */
int simul_amqp_get(simul_amqp_channel *ch, const char *queue, unsigned flags,
                   simul_amqp_message **out);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_AMQP_H */
