/* simul/tls.h — TLS on any simul_stream (libsimul-tls, pkg-config simul-tls, OpenSSL 3).
 * TLS is a bottom (see "Bottoms" in simul/stream.h) that wraps the stream's current one, so every
 * stream call (readuntil, readexactly, drain and the watermarks, write_eof, close, abort,
 * deadlines, cancellation, a server's close_clients) works unchanged over it. */
#ifndef SIMUL_TLS_H
#define SIMUL_TLS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* Errors. Every call returns a negative errno; the reason in words for a connection is
 * simul_tls_last_error(stream) (or the `why` buffer of simul_tls_open_connection).
 *   SIMUL_TLS_EVERIFY (-EKEYREJECTED): the peer's certificate failed verification (unknown CA,
 *       expired, host name mismatch, self-signed ...): "certificate verify failed: <reason>".
 *   -EPROTO: any other handshake or record failure (plaintext sent to a TLS port: "wrong version
 *       number" / "packet length too long"; no common protocol version: "unsupported protocol";
 *       the peer rejected us: "tlsv1 alert unknown ca", "tlsv13 alert certificate required").
 *   SIMUL_TLS_ETRUNCATED (-ENOLINK): the peer ended the connection (EOF below TLS) without a
 *       close_notify: the data may have been cut short. Sticky, as every read error. Turn it into
 *       a clean EOF with simul_tls_config_allow_truncation for peers that never send one.
 *   The bottom's own errors (-ECONNRESET, -EPIPE, ...) come through as they are. */
#define SIMUL_TLS_EVERIFY EKEYREJECTED
#define SIMUL_TLS_ETRUNCATED ENOLINK

/* A TLS configuration: an OpenSSL context shared by many connections (on any number of loops and
 * threads: the calls on it are thread-safe). Reference counted: every connection made with it
 * holds a reference, so simul_tls_config_free may be called while connections live on. The
 * setters apply to connections started afterwards; connections already running keep what they
 * started with (each setter builds a fresh OpenSSL context and swaps it in under a reference
 * count: this is how a server reloads its certificate without a restart). */
typedef struct simul_tls_config simul_tls_config;

/* A new client configuration: verification ON (the system trust store; the host name or IP
 * address given to the connecting call is checked against the certificate), TLS 1.2 minimum,
 * renegotiation off, session resumption on (a session cache per configuration keyed by
 * host:port). Does not suspend. Returns 0 and *out, -ENOMEM, -EPROTO (OpenSSL failed). */
int simul_tls_config_new_client(simul_tls_config **out);

/* A new server configuration: a certificate must be set (simul_tls_config_set_cert) before it
 * is used; session tickets on (TLS 1.3: one ticket per handshake, not OpenSSL's two); client
 * certificates not asked for. Returns as above. */
int simul_tls_config_new_server(simul_tls_config **out);

/* Drops the caller's reference. NULL is fine. */
void simul_tls_config_free(simul_tls_config *cfg);

/* Certificate chain (PEM, leaf first) and private key: the server's, or a client certificate.
 * Replaces the previous one for new connections (a reload). Returns 0, or -EPROTO / -ENOENT with
 * the reason in why (may be NULL). */
int simul_tls_config_set_cert(simul_tls_config *cfg, const char *chain_file, const char *key_file,
                              char *why, size_t whylen);

/* Trust these CAs (a PEM file and / or a directory hashed by c_rehash) instead of the system
 * store (client: to verify servers; server: to verify client certificates). Either may be NULL.
 * Returns 0, or -EPROTO / -ENOENT with the reason in why. */
int simul_tls_config_set_ca(simul_tls_config *cfg, const char *ca_file, const char *ca_dir,
                            char *why, size_t whylen);

/* DANGER: turns certificate verification OFF for a client configuration (any certificate, any
 * host name is accepted: a man in the middle reads everything). For tests and for peers reached
 * over a channel that is authenticated otherwise. Returns 0 or -EINVAL (a server config). */
int simul_tls_config_insecure_skip_verify(simul_tls_config *cfg);

/* Treats an EOF without close_notify as a clean EOF (0) instead of SIMUL_TLS_ETRUNCATED, for
 * peers that never send close_notify (some HTTP/1.0 servers): only safe where the protocol
 * frames its own messages (Content-Length, RESP). Returns 0. */
int simul_tls_config_allow_truncation(simul_tls_config *cfg, bool allow);

/* Lowest protocol version: 0x0303 (TLS 1.2, the default) or 0x0304 (TLS 1.3). Returns 0 or
 * -EINVAL. */
int simul_tls_config_set_min_version(simul_tls_config *cfg, int version);
/* Highest protocol version: 0x0303, 0x0304, or 0 (the default: the highest OpenSSL has). */
int simul_tls_config_set_max_version(simul_tls_config *cfg, int version);

/* How long a handshake may take (default 60 s, asyncio's ssl_handshake_timeout; 0: no limit).
 * simul_tls_start_tls / simul_tls_accept / simul_tls_open_connection return -ETIMEDOUT
 * ("handshake timed out") past it, whatever deadline scope the caller is in (an earlier one of
 * the caller's still comes first); a transport's connection is aborted (connection_lost(ctx, 0),
 * as after simul_transport_abort). Returns 0 or -EINVAL. */
int simul_tls_config_set_handshake_timeout(simul_tls_config *cfg, double seconds);

/* Bounded memory while idle: a connection keeps OpenSSL's record buffers (~34 KiB: one read
 * and one write buffer) while it moves, so reads and writes allocate nothing, and hands them
 * back once it has been quiet (no read or write call) for `seconds` (default 1; released
 * between one and two periods after the last use; a partial record held keeps them). 0 releases
 * them whenever nothing is held, after every record (SSL_MODE_RELEASE_BUFFERS: a malloc and a
 * free of ~17 KiB per record), which is also what an OpenSSL older than 3.0.14 (3.1.6, 3.2.2,
 * 3.3.1) gets whatever the setting (its SSL_free_buffers is unsafe: CVE-2024-4741). Applies to
 * connections started afterwards. Returns 0 or -EINVAL. */
int simul_tls_config_set_idle_release(simul_tls_config *cfg, double seconds);

/* How long a close_notify may wait for room below once the stream (or transport) is closed
 * (default 5 s). A close never suspends for it: if the socket is full (the peer does not read)
 * the alert waits in the loop on a duplicate of the socket's fd, which is closed when the alert
 * is out or at this deadline (the peer then sees a truncation: SIMUL_TLS_ETRUNCATED). 0: drop it
 * at once. The data written before it is not affected (close flushes it first). Returns 0 or
 * -EINVAL. */
int simul_tls_config_set_close_timeout(simul_tls_config *cfg, double seconds);

/* ALPN: the protocols a client offers, or the ones a server accepts, in order of preference
 * (the server picks its first that the client offers; a client that offers none of them is
 * refused with "no application protocol"). protos: `n` NUL-terminated names ("h2",
 * "http/1.1"), each 1..255 bytes. Returns 0, -EINVAL. */
int simul_tls_config_set_alpn(simul_tls_config *cfg, const char *const *protos, int n);

/* Server: client certificates. SIMUL_TLS_CLIENT_CERT_NONE (the default) asks for none; _OPTIONAL
 * asks and verifies one if given (a bad one fails the handshake); _REQUIRED fails the handshake
 * without one. Set the CAs that issue them with simul_tls_config_set_ca. Returns 0, -EINVAL. */
enum { SIMUL_TLS_CLIENT_CERT_NONE, SIMUL_TLS_CLIENT_CERT_OPTIONAL, SIMUL_TLS_CLIENT_CERT_REQUIRED };
int simul_tls_config_set_client_cert_mode(simul_tls_config *cfg, int mode);

/* Server: SNI. cb runs during each handshake that names a server (not from a task: it must not
 * suspend) and returns the configuration to use for it (its certificate, ALPN, client-cert
 * mode), or NULL to go on with cfg. The returned config must stay alive while cfg is used.
 * A NULL cb removes it. Returns 0, -EINVAL (a client config). */
typedef simul_tls_config *(*simul_tls_sni_cb)(const char *server_name, void *arg);
int simul_tls_config_set_sni_cb(simul_tls_config *cfg, simul_tls_sni_cb cb, void *arg);

/* Suspends. asyncio.open_connection(ssl=ctx): connects to host:port (simul_open_connection), then
 * handshakes as a client of cfg with server name `host` (SNI unless host is an IP address, and
 * the name or address the certificate must match). Returns 0 and *out (a stream over TLS), or the
 * connection error, or a TLS error as above with the reason in why (may be NULL), -ECANCELED,
 * -ETIMEDOUT (a deadline scope bounds the connect and the handshake together). Nothing is left
 * open on an error. */
int simul_tls_open_connection(const char *host, const char *port, simul_tls_config *cfg,
                              simul_stream **out, char *why, size_t whylen);

/* Suspends. asyncio's start_tls (client side): slides TLS under an open stream and handshakes as
 * a client of cfg, checking server_name (a host name or an IP address; NULL only with
 * simul_tls_config_insecure_skip_verify). Plaintext written before goes out first: if any is
 * still queued the call flushes it (write limits 0, drain; the limits are then back at the
 * defaults, SIMUL_STREAM_HIGH_WATER / _LOW_WATER); bytes already read
 * ahead but not consumed are taken as the start of the TLS stream. Returns 0; a TLS error (the
 * reason from simul_tls_last_error); -ECANCELED / -ETIMEDOUT (a deadline ends a stalled
 * handshake); the stream's error. On a handshake error the stream stays on TLS, broken: close
 * it. On an error before the handshake (-EBUSY, -ENOMEM) the stream is unchanged. */
int simul_tls_start_tls(simul_stream *s, simul_tls_config *cfg, const char *server_name);

/* Suspends. The server side of the above: for a stream an accepted connection gave, e.g. the
 * first line of a simul_start_server handler:
 *     if (simul_tls_accept(s, cfg) < 0) return 0;   // the stream is closed when we return
 * Bound it with a deadline scope so that a client that never finishes the handshake is timed
 * out. Returns as simul_tls_start_tls. */
int simul_tls_accept(simul_stream *s, simul_tls_config *cfg);

/* Does not suspend. TLS for a protocol (callback) connection, as asyncio's
 * loop.start_tls(transport, ...) and create_server(ssl=...): slides TLS under the transport
 * (typically from the factory's connection_made, before anything is written), then the
 * handshake runs inside the transport's own reads and writes as the socket's edges come; the
 * protocol's data_received sees plaintext only, and writes made meanwhile are queued and
 * encrypted once it is done. A failed handshake ends the connection: connection_lost(ctx, err)
 * with the error codes above. The protocol server pattern:
 *     static void made(simul_transport *t, void *ctx) { simul_tls_transport_accept(t, cfg); ... }
 * A handshake that does not end within the config's handshake timeout aborts the connection.
 * Returns 0; -EALREADY (already TLS); -EBUSY (bytes queued); -EPIPE (closing); -EINVAL;
 * -ENOMEM. */
int simul_tls_transport_start_tls(simul_transport *t, simul_tls_config *cfg,
                                  const char *server_name);
int simul_tls_transport_accept(simul_transport *t, simul_tls_config *cfg);
/* The reason of the transport's last TLS error ("" if none), and the negotiated version (NULL
 * before the handshake ends); NULL if t is not on TLS. Both work inside connection_lost when the
 * connection ended on the TLS side: a failure (a handshake error, SIMUL_TLS_ETRUNCATED
 * "connection closed without close_notify", "handshake timed out", the bottom's error: the
 * reason) or the peer's close_notify (""), so the protocol can log why; after a close the
 * program made itself they are NULL there. */
const char *simul_tls_transport_last_error(const simul_transport *t);
const char *simul_tls_transport_version(const simul_transport *t);

/* Whether s is on TLS (its current bottom is this library's). */
bool simul_tls_is_tls(const simul_stream *s);

/* The reason for the connection's last TLS error ("certificate verify failed: hostname
 * mismatch", "wrong version number", ...), "" if none; NULL if s is not on TLS. Valid until the
 * next call on the stream. */
const char *simul_tls_last_error(const simul_stream *s);

/* After the handshake: the negotiated version ("TLSv1.3"), cipher ("TLS_AES_256_GCM_SHA384"),
 * ALPN protocol (NULL if none was agreed), whether the session was resumed; NULL / false if s is
 * not on TLS. The strings are valid while the stream is open. */
const char *simul_tls_version(const simul_stream *s);
const char *simul_tls_cipher(const simul_stream *s);
const char *simul_tls_alpn(const simul_stream *s);
bool simul_tls_session_resumed(const simul_stream *s);

/* The verified peer certificate's subject ("CN=localhost", RFC 2253) into buf. Returns its
 * length, -ENOENT (no peer certificate), -ENOTCONN (s not on TLS), -ERANGE (buf too small). */
int simul_tls_peer_subject(const simul_stream *s, char *buf, size_t len);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_TLS_H */
