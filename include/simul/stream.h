/* simul/stream.h — streams, transports and protocols, servers, UDP, sendfile, servers on many threads.
 * Part of the simul API: include <simul.h> (the umbrella), or this header alone. */
#ifndef SIMUL_STREAM_H
#define SIMUL_STREAM_H

#include "base.h"
#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * Streams (asyncio.open_connection / start_server)
 * ------------------------------------------------------------------------------------------- */
/* A server (asyncio.Server): the listening sockets of simul_start_server() (streams) or of the
 * protocol servers. It starts accepting as soon as it is made (start_serving=True). Connections
 * are accepted in batches as the kernel reports them; when the process runs out of file
 * descriptors (EMFILE, ENFILE) or memory the server stops accepting and retries after a back-off
 * (10 ms doubling up to 1 s) instead of spinning, and resumes once fds are free.
 * The server's owner closes it and frees it; its connections live on after close. */

/* Stops listening: closes the listening sockets (and removes a Unix socket's file, unless it was
 * replaced meanwhile). Connections already accepted go on. Idempotent. Does not suspend.
 * Returns 0, or -EINVAL. */
int simul_server_close(simul_server *s);

/* asyncio 3.13's Server.close_clients / abort_clients: end every connection the server accepted
 * that is still open, stream and protocol servers alike. Neither stops listening (that is
 * simul_server_close) and neither suspends; a connection accepted after the call, or still being
 * set up by the factory / connection_made that calls it, is not touched. Connections that end or
 * close themselves meanwhile are fine. simul_server_wait_closed then returns once they are gone.
 * close_clients closes gracefully: a transport as simul_transport_close (queued data is sent,
 * then connection_lost(ctx, 0)); a stream as simul_stream_close, the flush going on in a task of
 * its own. A peer that does not read keeps such a connection (and wait_closed) waiting, as in
 * asyncio: abort_clients ends it. (A connection closed with received data still unread is reset
 * by the kernel, whichever call closes it.) abort_clients resets (SO_LINGER 0: the peer gets
 * ECONNRESET, queued data is dropped): a transport as simul_transport_abort (connection_lost(ctx,
 * 0)), a stream as simul_stream_abort. A stream handler's call in progress (a read, drain)
 * resumes with -ECONNABORTED, and its later calls get -EBADF; the stream is released when the
 * handler returns, as always (a handler may still call simul_stream_close: -EBADF, harmless).
 * Returns how many open connections it reached (some may already have been closing), -EINVAL,
 * -ENXIO if called off the server's loop. */
int simul_server_close_clients(simul_server *s);
int simul_server_abort_clients(simul_server *s);

/* Suspends until the server is closed and every connection it accepted has ended (asyncio 3.12+
 * semantics). Returns 0, -ECANCELED / -ETIMEDOUT, -EINVAL. */
int simul_server_wait_closed(simul_server *s);

/* Suspends until the server is closed (by simul_server_close from another task or a callback).
 * If the caller is cancelled or times out first, it closes the server and returns -ECANCELED /
 * -ETIMEDOUT. Returns 0 once closed (at once if it is already); -EBUSY if another task is
 * already serving it forever; -EINVAL. */
int simul_server_serve_forever(simul_server *s);

/* Whether the server is still listening (asyncio's is_serving). */
bool simul_server_is_serving(const simul_server *s);

/* The listening fds (asyncio's Server.sockets): stores up to `max` of them in fds and returns how
 * many the server has (0 once closed). The fds stay the server's: do not close them. */
int simul_server_sockets(const simul_server *s, int *fds, int max);

/* The TCP port the server listens on (the one the kernel picked for port "0"); -EAFNOSUPPORT for
 * a Unix socket server, -EBADF once closed. */
int simul_server_port(const simul_server *s);

/* How many of its connections are live (accepted and not yet ended). */
size_t simul_server_connections(const simul_server *s);

/* Closes the server if it is not closed and gives the handle back. The memory stays until its
 * last connection has ended and no task waits in it, so connections may outlive the handle.
 * NULL is fine. */
void simul_server_free(simul_server *s);

/* A stream (asyncio's StreamReader and StreamWriter in one handle) over a connected stream
 * socket or a pipe, or over any other bottom (see "Bottoms" below: TLS, an in-memory pair); what
 * this says of the kernel and the fd holds for the bottom. One task may read while another
 * writes (full duplex); a second task reading at the same time gets -EBUSY; several tasks may
 * drain at once.
 *
 * Reading: data is read from the kernel when a read asks for it (no background reading), so an
 * idle stream holds no read buffer beyond the first few KiB it needed. A read of 4 KiB or more
 * with an empty buffer goes straight into the caller's memory (one read(2), no copy); so does a
 * readexactly() of 4 KiB or more, for all but what was already buffered. Smaller reads fill the
 * stream's buffer, so one read(2) serves several of them. Every read is a cancellation point
 * and honours deadline scopes, and a read cut short by either takes nothing: the bytes already
 * received stay in the stream for the next read. Errors from the kernel (-ECONNRESET, ...) are
 * sticky: once every buffered byte was read, each read returns the error again.
 *
 * Writing: write() never suspends. It hands the data to the kernel at once when nothing is queued
 * (one send(2), no copy, no loop pass) and queues what the kernel did not take; the queue is
 * flushed from the loop as the socket becomes writable, whether or not a task is in drain().
 * drain() is the flow control: it suspends while the queue is above the high-water mark until it
 * is at or below the low-water mark, so a writer that drains after each write holds at most the
 * high-water mark plus one write's size. A writer that never drains holds whatever it wrote.
 * Sends never raise SIGPIPE: a peer that is gone is -EPIPE or -ECONNRESET, sticky, from every
 * later write and drain.
 *
 * Lifecycle: the stream owns its fd. simul_stream_close() flushes, closes the fd and frees the
 * stream; a task inside another call on the stream meanwhile gets -ECONNABORTED from it.
 *
 * Errors from a call that was suspended: -ECANCELED means only "this task was cancelled" (and
 * wins when the cancel and an abort land in the same loop pass, as in asyncio), -ETIMEDOUT "its
 * deadline passed", -ECONNABORTED "another task (or a callback, or the server's close_clients /
 * abort_clients) closed or aborted this stream under the call" (asyncio raises
 * ConnectionAbortedError / ConnectionResetError there); the handle may be gone then.
 * simul_stream_abort() closes the fd at once (a reset, the queue dropped) but not the handle:
 * simul_stream_close() still frees it, so every stream is freed by exactly one close. */
typedef struct simul_stream simul_stream;
struct iovec;
struct sockaddr_storage;

#define SIMUL_STREAM_LIMIT (64u * 1024u)      /* default readline / readuntil limit */
#define SIMUL_STREAM_HIGH_WATER (64u * 1024u) /* default write-buffer high-water mark */
#define SIMUL_STREAM_LOW_WATER (16u * 1024u)  /* default low-water mark (high / 4, as asyncio) */

/* Suspends. asyncio.open_connection: resolves host:port and connects (simul_tcp_connect: Happy
 * Eyeballs, TCP_NODELAY). Returns 0 and *out, or the connection error (-ECONNREFUSED,
 * -ETIMEDOUT, -ENETUNREACH, ...) or a SIMUL_EAI code for a name that does not resolve. */
int simul_open_connection(const char *host, const char *port, simul_stream **out);

/* Suspends. asyncio.open_unix_connection: connects to the Unix stream socket at path ("@name" for
 * the abstract namespace). Returns 0 and *out, or -ENOENT, -ECONNREFUSED, ... */
int simul_open_unix_connection(const char *path, simul_stream **out);

/* Wraps a connected stream socket (TCP, Unix) or a pipe / tty / character device end in a
 * stream, which owns the fd from then on (if the call fails, the fd stays the caller's). The fd
 * is made non-blocking (for a shared file description, e.g. an inherited stdin, that shows to
 * every process sharing it). A read-only or write-only fd makes a stream that fails the other
 * direction with -EBADF. Does not suspend. Returns 0 and *out; -EINVAL for a datagram socket;
 * -EPERM for an fd the loop cannot poll (a regular file); -EBUSY if the fd has reader or writer
 * callbacks; -EBADF, -ENXIO (no loop), -ENOMEM. */
int simul_stream_from_fd(int fd, simul_stream **out);

/* Suspends. Reads up to n bytes: whatever is buffered if anything is, else waits for data.
 * Returns the count (> 0), 0 at EOF (or for n == 0), or a negative errno (-ECONNRESET,
 * -ECANCELED, -ETIMEDOUT, -ECONNABORTED if another task closes or aborts the stream meanwhile,
 * -EBUSY if another task is reading, -EBADF while the stream closes). */
long simul_stream_read(simul_stream *s, void *buf, size_t n);

/* Suspends until exactly n bytes have been read into buf. Returns n. If EOF comes first it
 * returns -ENODATA (asyncio's IncompleteReadError) and the partial data is in buf: *got (may be
 * NULL) tells how much, and those bytes are consumed. On every other error (-ECANCELED,
 * -ETIMEDOUT, -ECONNRESET, ...) nothing is consumed: what had arrived goes back to the stream
 * for the next read and *got is 0 (only if that needed memory and there was none, *got tells
 * how many bytes of buf hold what was taken). */
long simul_stream_readexactly(simul_stream *s, void *buf, size_t n, size_t *got);

/* Suspends until the separator (seplen >= 1 bytes) has arrived, and consumes the data up to and
 * including it. Returns its length (separator included) and points *data at it: the bytes stay
 * in the stream's buffer, valid until the next read call on the stream or its close.
 * Errors (nothing is consumed by any of them, as asyncio's readuntil):
 *   -EMSGSIZE  the data before the separator would exceed the stream's limit (the separator is
 *              not within `limit` bytes, or it was found beyond them). The data stays buffered:
 *              read it with simul_stream_read / readexactly, raise the limit, or close; calling
 *              readuntil again as it is gives -EMSGSIZE again.
 *   -ENODATA   EOF before the separator; the partial data stays buffered for simul_stream_read.
 *   -EINVAL (seplen 0), -ECANCELED, -ETIMEDOUT, -EBUSY, a read error. */
long simul_stream_readuntil(simul_stream *s, const void *sep, size_t seplen, const char **data);

/* Suspends. Reads one line ("\n"-terminated, the "\n" included) and points *line at it as
 * readuntil does. At EOF it returns the last, unterminated line, and 0 once nothing is left
 * (asyncio's readline). A line whose length before the "\n" exceeds the limit is -EMSGSIZE and,
 * unlike readuntil, is dropped so the stream goes on with the next line: the part already
 * buffered is discarded at once, and if its "\n" has not arrived yet the next readline first
 * skips the rest of it, through the "\n" (asyncio clears the buffer but then returns that rest as
 * a line). A read, readexactly or readuntil in between cancels the skip and sees the rest. */
long simul_stream_readline(simul_stream *s, const char **line);

/* Suspends. simul_stream_read without a buffer of the caller's: waits for data as read does and
 * points *data at up to n received bytes inside the stream's own buffer (consumed; valid until
 * the next read call on the stream or its close). Returns the count (> 0), 0 at EOF (or for
 * n == 0; *data then points at ""), or read's errors. The stream takes its buffer when data
 * arrives and gives it back when a read finds it empty and waits, so a connection that sits idle
 * in this call holds no read buffer, and its task no buffer on its stack either: the way to
 * write a server that keeps many idle connections (examples/echo_streams.c). Bytes are read in
 * at most the buffer's size (4 KiB while the buffered data fits it) per call. */
long simul_stream_read_borrow(simul_stream *s, size_t n, const char **data);

/* Whether EOF was read and nothing is left in the buffer (asyncio's at_eof). */
bool simul_stream_at_eof(const simul_stream *s);

/* The readline / readuntil limit (default SIMUL_STREAM_LIMIT; >= 1). Returns 0 or -EINVAL. */
int simul_stream_set_limit(simul_stream *s, size_t limit);

/* How many received bytes are buffered, not yet read. */
size_t simul_stream_read_buffer_size(const simul_stream *s);

/* Writes len bytes: tries the kernel at once when nothing is queued, queues (copies) the rest.
 * Never suspends; call simul_stream_drain for flow control. Returns 0 (the data is sent or
 * queued); -EPIPE / -ECONNRESET / ... once the connection has failed (nothing is queued);
 * -ESHUTDOWN after write_eof; -EBUSY while simul_stream_sendfile sends; -EBADF while the stream
 * closes; -ENOMEM (the stream is broken then: it may have sent part of the data). Also works
 * outside a task. */
int simul_stream_write(simul_stream *s, const void *buf, size_t len);

/* simul_stream_write for several buffers, in order (one sendmsg when nothing is queued). */
int simul_stream_writev(simul_stream *s, const struct iovec *iov, int iovcnt);

/* Suspends while the write queue is above the high-water mark, until it is at or below the
 * low-water mark (returns at once otherwise). Returns 0; the connection's error (-EPIPE,
 * -ECONNRESET, ...) once writing or reading has failed; -ECONNABORTED if another task closes or
 * aborts the stream meanwhile; -ECANCELED, -ETIMEDOUT. */
int simul_stream_drain(simul_stream *s);

/* asyncio's set_write_buffer_limits: drain waits while more than `high` bytes are queued until
 * at most `low` are. Returns 0 or -EINVAL (low > high). */
int simul_stream_set_write_buffer_limits(simul_stream *s, size_t high, size_t low);

/* How many bytes are queued, not yet taken by the kernel. */
size_t simul_stream_write_buffer_size(const simul_stream *s);

/* Half-closes: once the queue is flushed, shuts down the sending side (the peer reads EOF);
 * reading goes on. Idempotent. Returns 0; -EOPNOTSUPP for a stream that is not a socket (see
 * simul_stream_can_write_eof); the connection's error; -EBADF while the stream closes. */
int simul_stream_write_eof(simul_stream *s);
bool simul_stream_can_write_eof(const simul_stream *s);

/* Closes the stream (asyncio's writer.close() followed by await writer.wait_closed()).
 * In a task it suspends while the queued data is flushed, then closes the fd and frees the
 * stream. A cancellation or deadline stops the wait (close in a shield scope to make sure it
 * flushes, or in a deadline scope to bound it): what is still queued is then discarded.
 * Outside a task (a callback, or with no loop running) it does not suspend: the flush finishes in
 * a task of its own ("stream-close") if one is needed, which keeps the loop alive until it ends.
 * On a bottom without fd edges, a flush cut short by a deadline leaves the stream's flusher task
 * to end on the next loop pass.
 * Tasks inside other calls on the stream resume with -ECONNABORTED.
 * The handle is invalid once close returns, whatever it returns: 0 if everything written was
 * handed to the kernel, else the error that lost queued data (-EPIPE, -ECONNRESET, -ECANCELED,
 * -ETIMEDOUT, ...). -EBADF if the stream is already closing; -EINVAL for NULL. After
 * simul_stream_abort it only frees the handle and returns 0. */
int simul_stream_close(simul_stream *s);

/* asyncio's transport.abort() for a stream: drops the queued data, closes the fd with a reset
 * (SO_LINGER 0 on a socket: the peer gets ECONNRESET, not EOF) and wakes every task inside a
 * call on the stream (read, drain, wait_bottom, close's flush, sendfile) with -ECONNABORTED
 * (also a close that was waiting to flush; a task cancelled in the same pass gets -ECANCELED).
 * Does not suspend; works outside a task. The handle stays valid, closing: later calls get
 * -EBADF (simul_stream_fd too), is_closing is true, and simul_stream_close must still be called, which then only frees it and returns 0 (a stream
 * server's handler need not: its stream is closed when it returns). Until then the stream counts
 * as open (simul_loop_close gives -EBUSY). Returns 0 (also when already aborted), -EBADF if
 * close has already closed the fd, -EINVAL for NULL. Not after simul_stream_close has
 * returned: the handle is gone then. -ECANCELED from a stream call always means this task was
 * cancelled; -ECONNABORTED that the stream was aborted or closed under the call. */
int simul_stream_abort(simul_stream *s);

/* A shareable stream: each holder lets go with simul_stream_release, and the last one closes it
 * (a reference count, as a broadcast server needs: the tasks a handler started, or a list of
 * clients, keep the handler's stream usable after the handler returns). retain adds a holder;
 * the stream's creator, or a stream server's handler, is the first. A handler that retained its
 * stream may return at once: the server counts the connection until the last release closes
 * it. simul_stream_close still closes it for everyone at once (later calls get -EBADF; holders
 * then must not call release: the handle is gone), and abort still resets it. Never suspends.
 * Returns 0; -EBADF once the stream is closing; -EINVAL for NULL. */
int simul_stream_retain(simul_stream *s);
/* Suspends (only the last holder's, to flush as simul_stream_close does). Lets go of one hold:
 * returns 0 while other holders remain; the last release is simul_stream_close and returns what
 * it returns. The handle is the caller's no more, whatever it returns. */
int simul_stream_release(simul_stream *s);

/* Suspends until another task (or a callback) has closed or aborted the stream. Meant for tasks
 * that share a stream with the one that closes it; the handle is invalid once this returns
 * after a close (after an abort it stays valid until simul_stream_close). Returns 0,
 * -ECANCELED, -ETIMEDOUT, -EINVAL. */
int simul_stream_wait_closed(simul_stream *s);

/* Whether close (or abort) has begun. */
bool simul_stream_is_closing(const simul_stream *s);

/* The stream's fd (still the stream's: do not close it): its bottom's fd (under a wrapping
 * bottom, the fd below it), -EBADF once it is closed, -EOPNOTSUPP for a bottom without one. */
int simul_stream_fd(const simul_stream *s);

/* The peer's / the local address (getpeername / getsockname) into *addr. Returns the address
 * length, or a negative errno (-ENOTSOCK for a pipe or a bottom without an fd, -ENOTCONN, ...). */
int simul_stream_peername(const simul_stream *s, struct sockaddr_storage *addr);
int simul_stream_sockname(const simul_stream *s, struct sockaddr_storage *addr);

/* ---------------------------------------------------------------------------------------------
 * Bottoms: what a stream reads from and writes to
 * ------------------------------------------------------------------------------------------- */
/* Under every stream is a bottom: a non-blocking byte stream given by an ops table and its
 * context. simul_open_connection, simul_stream_from_fd and the stream servers put a stream on
 * the built-in fd bottom (a socket or pipe, driven by the loop's edges, called without an
 * indirect call); simul_stream_from_bottom puts one on any other (an in-memory pair, a
 * protocol's framing); simul_stream_replace_bottom slides a bottom that wraps the current one
 * under an open stream (TLS: start_tls). Everything a stream does works the same over any
 * bottom: the readers and their limits, write / drain and the watermarks, write_eof, close,
 * abort, wait_closed, deadlines and cancellation, server close_clients / abort_clients;
 * sendfile copies through the bottom unless it is zero-copy (SIMUL_STREAM_BOTTOM_ZEROCOPY).
 * The stream keeps the buffers (read buffer, write queue, flow control); a bottom only moves
 * bytes and waits.
 *
 * Writes to a bottom without fd edges are flushed in the background by a task of the stream's
 * ("stream-flush"), started when something is queued and ended when the queue is empty: a bottom
 * needs no readiness callback, only its wait. A wrapping bottom (TLS) calls the bottom it wraps
 * through that bottom's own ops (simul_stream_bottom before the replace), and may do so from
 * any of its own ops: a TLS write that needs to read first waits in the lower bottom's READ.
 * Work a bottom does between stream calls (an explicit TLS handshake) waits with
 * simul_stream_wait_bottom, so that deadlines, cancellation and a close from another task end it
 * as they end the stream's own calls; or it happens inside the first read / writev, which return
 * -EAGAIN until it is done. */
enum { SIMUL_STREAM_READ = 0, SIMUL_STREAM_WRITE = 1 };

/* Bottom flags. ZEROCOPY: bytes written to the bottom's fd reach the peer unchanged, so
 * simul_stream_sendfile may sendfile(2) into that fd (the fd bottom has it; TLS must not). */
#define SIMUL_STREAM_BOTTOM_ZEROCOPY 1u

typedef struct simul_stream_ops {
    /* Does not suspend. Reads up to len (> 0) bytes into buf. Returns the count (> 0), 0 at EOF,
     * -EAGAIN when nothing is there yet (the stream then calls wait(READ)), or a negative errno
     * (sticky for the stream: -ECONNRESET, -EPROTO, ...). Required. */
    long (*read)(void *ctx, void *buf, size_t len);
    /* Does not suspend. Writes from iov (1 <= iovcnt <= IOV_MAX, at least one byte). Returns the
     * count taken (a short count is fine: the rest is tried again), -EAGAIN when nothing can be
     * taken now (the stream then calls wait(WRITE)), or a negative errno (-EPIPE, -ECONNRESET:
     * sticky). Must not raise SIGPIPE. Required. */
    long (*writev)(void *ctx, const struct iovec *iov, int iovcnt);
    /* Suspends until `dir` (SIMUL_STREAM_READ / _WRITE) may be ready: read or writev may make
     * progress now (returning 0 early is allowed: the stream tries again). Honours cancellation
     * and deadlines like every suspension (-ECANCELED / -ETIMEDOUT; a cancelled task gets
     * -ECANCELED at once), and may return another negative errno for a broken bottom. A wrapping
     * bottom maps the direction to what it needs below (TLS: a write that must read first waits
     * for READ on the bottom it wraps). The stream ends a wait early when it is closed or aborted
     * by another task, the way a cancellation does (whatever the wait parks on returns
     * -ECONNABORTED): wait must then return. Only ever called from a task. Required. */
    int (*wait)(void *ctx, int dir);
    /* Does not suspend. Half-closes: the peer reads EOF after what was written; reading goes on.
     * Called once, after the stream's queue is flushed. Returns 0 or a negative errno. NULL: the
     * bottom cannot (simul_stream_write_eof is -EOPNOTSUPP, can_write_eof false). */
    int (*shutdown)(void *ctx);
    /* Does not suspend. Releases the bottom: exactly once, after the stream's queue was flushed
     * (or dropped), with no stream call inside read / writev / wait. A wrapping bottom closes the
     * one it wraps, with the same `abort`. abort: drop what is pending and reset where the
     * transport can (the fd bottom sets SO_LINGER 0). Required. */
    void (*close)(void *ctx, bool abort);
    /* The fd under the bottom (for simul_stream_fd, peername and sockname, and zero-copy
     * sendfile with SIMUL_STREAM_BOTTOM_ZEROCOPY), or -1. A wrapping bottom may report the fd of
     * the one it wraps. NULL: none. */
    int (*fd)(void *ctx);
    unsigned flags; /* SIMUL_STREAM_BOTTOM_* */
    /* Does not suspend. Only for simul_stream_replace_bottom: the stream hands the new bottom
     * the bytes it had already read from the old one but not delivered yet (a PROXY protocol
     * header's reader may have taken the TLS ClientHello behind it in the same read); they come
     * first in what the new bottom reads, before anything it reads below (TLS: into its incoming
     * buffer, as asyncio's start_tls does since gh-142352). Called at most once, inside
     * replace_bottom. Returns 0 or a negative errno (the replace then fails with it). NULL: such
     * a replace is refused with -EBUSY. */
    int (*unread)(void *ctx, const void *buf, size_t len);
} simul_stream_ops;

/* A stream over a bottom: ops (kept by the caller, unchanged, until the bottom is closed:
 * typically a static const table) and ctx. Does not suspend. From then on the stream owns the
 * bottom and calls ops->close once (simul_stream_close or _abort); if the call fails, the bottom
 * stays the caller's. The stream counts as open (simul_loop_close gives -EBUSY) until closed.
 * Returns 0 and *out; -EINVAL (a required op missing); -ENXIO (no loop); -ENOMEM. */
int simul_stream_from_bottom(const simul_stream_ops *ops, void *ctx, simul_stream **out);

/* Slides a new bottom under an open stream (start_tls): the new bottom wraps the current one,
 * which the caller got from simul_stream_bottom and which the new bottom now owns (its close
 * closes it). Does not suspend. Bytes already written go through the old bottom only: the call
 * is refused while any are queued, so call it after the last plaintext write is flushed (e.g.
 * simul_stream_set_write_buffer_limits(s, 0, 0) then simul_stream_drain(s), then restore the
 * limits). Bytes already read from the old bottom but not yet read from the stream belong to
 * the new byte stream (the peer sent them after what was read): they go to the new bottom
 * through ops->unread, and the stream's read buffer is empty afterwards (without ops->unread the
 * call is -EBUSY while any are buffered). Later reads and writes, write_eof, close and abort go
 * to the new bottom. Returns 0; -EBUSY (bytes queued, or buffered without ops->unread, a read or
 * sendfile in progress in another task); -EBADF (closing); the stream's error if reading or
 * writing already failed, or -ESHUTDOWN after write_eof or EOF read; -EINVAL (a required op
 * missing); ops->unread's error. On an error the old bottom stays and nothing was handed over. */
int simul_stream_replace_bottom(simul_stream *s, const simul_stream_ops *ops, void *ctx);

/* Suspends in the stream's current bottom's wait for `dir` (SIMUL_STREAM_READ / _WRITE), as the
 * stream's own calls do after -EAGAIN: for an integration that drives its bottom by hand between
 * stream calls (a TLS handshake: read and write the bottom it wraps, and wait through this).
 * The wait counts as a call on the stream: a cancellation point, bounded by deadline scopes, and
 * a close or abort from another task (a server's close_clients) ends it with -ECONNABORTED.
 * After -ECONNABORTED, -ECANCELED or -EBADF the stream may have closed its bottom: touch the
 * bottom again only if simul_stream_bottom still returns it. Returns 0 (the direction may be
 * ready: try again), -ECONNABORTED, -ECANCELED, -ETIMEDOUT, -EBADF (closing), -EPERM (not a task), -EINVAL, or the bottom's error. */
int simul_stream_wait_bottom(simul_stream *s, int dir);

/* The stream's current bottom: its ops, and its ctx in *ctx (may be NULL). NULL once the stream
 * is closed or aborted (or s is NULL). The built-in fd bottom has a table too, so a wrapping
 * bottom calls it like any other. Still the stream's: do not close it except through a bottom
 * given to simul_stream_replace_bottom. */
const simul_stream_ops *simul_stream_bottom(const simul_stream *s, void **ctx);

/* A connection handler for simul_start_server: it runs as a task of its own for each accepted
 * connection (asyncio's client_connected_cb), and the stream is closed when it returns (as by
 * simul_stream_close: a flush, then the fd is closed), unless the handler closed it already.
 * The stream must not be used after the handler has returned, also by tasks the handler started.
 * The handler's return value is its task's result (in debug mode a negative one other than
 * -ECANCELED is reported on stderr, as for every detached task). */
typedef int (*simul_stream_handler)(simul_stream *s, void *arg);

typedef struct simul_stream_server_opts {
    const char *host;      /* NULL or "" = every interface, IPv6 and IPv4 (dual-stack) */
    const char *port;      /* NULL or "0" = a free port (see simul_server_port) */
    const char *unix_path; /* instead of host/port: a Unix stream socket ("@name": abstract) */
    int backlog;           /* listen backlog; 0 = 511 */
    unsigned flags;        /* SIMUL_LISTEN_REUSEPORT */
    size_t limit;          /* each stream's readline/readuntil limit; 0 = SIMUL_STREAM_LIMIT */
    size_t stack_size;     /* the handler tasks' stack; 0 = the loop's default */
    /* asyncio's start_server(sock=...): listening sockets made elsewhere (inherited from a
     * supervisor or systemd's LISTEN_FDS) served instead of host/port/unix_path (which must be
     * unset). The server owns them from a successful call on (made non-blocking and
     * close-on-exec, closed by simul_server_close); on an error they stay the caller's (-EINVAL
     * also for a socket that is not listening). */
    const int *socks;
    int n_socks; /* 0: none; at most 16 */
} simul_stream_server_opts;

/* asyncio.start_server: listens on host:port (simul_tcp_listen: every address of host; NULL or
 * "" for every interface; port "0" picks one) and runs handler(stream, arg) as a new task for
 * each connection. May suspend to resolve a host name (a numeric host or NULL never does).
 * Returns 0 and *out (close and free it with simul_server_close / simul_server_free), or a
 * negative errno / SIMUL_EAI code. */
int simul_start_server(const char *host, const char *port, simul_stream_handler handler, void *arg,
                       simul_server **out);

/* asyncio.start_unix_server: the same on a Unix stream socket at path (a stale socket file is
 * replaced; the file is removed when the server closes). */
int simul_start_unix_server(const char *path, simul_stream_handler handler, void *arg,
                            simul_server **out);

/* simul_start_server with every option. */
int simul_start_server_opts(const simul_stream_server_opts *opts, simul_stream_handler handler,
                            void *arg, simul_server **out);

/* ---------------------------------------------------------------------------------------------
 * Transports and protocols (asyncio.Protocol, create_server, create_connection)
 * ------------------------------------------------------------------------------------------- */
/* Callback-driven connections, as asyncio's transports and protocols: the loop calls a protocol's
 * functions when data arrives, and the protocol writes through its transport. No task is involved
 * per connection: a transport is driven by its socket's readiness from the loop itself.
 * Protocol callbacks must not suspend, and may call any transport function on their own
 * transport or another, including close and abort. They run from the loop, never inside the call
 * that caused them, with two exceptions as in asyncio: connection_made runs inside the call that
 * makes the transport, and pause_writing inside the write (or set_write_buffer_limits) that took
 * the buffer over the high-water mark. */
typedef struct simul_transport simul_transport;
struct iovec;

/* A protocol: the callbacks of one connection (asyncio.Protocol / BufferedProtocol), each given
 * the context `ctx` the protocol was started with. Keep the struct valid (typically static const)
 * until connection_lost returns. Every member may be NULL except data_received, which a buffered
 * protocol (get_buffer and buffer_updated both set) replaces. Order: connection_made once, then
 * data_received / buffer_updated any number of times, then eof_received at most once, then
 * connection_lost exactly once, always last. pause_writing / resume_writing alternate, starting
 * with pause_writing, at any time between connection_made and connection_lost. */
typedef struct simul_protocol {
    /* The connection is up. `t` stays valid until connection_lost returns. */
    void (*connection_made)(simul_transport *t, void *ctx);
    /* Some bytes arrived. `data` is valid only during the call. */
    void (*data_received)(void *ctx, const void *data, size_t len);
    /* The peer closed its side. Return false (or leave NULL) and the transport closes itself
     * (flushing what is queued); return true to keep it half-open: writing still works and
     * closing is up to you. */
    bool (*eof_received)(void *ctx);
    /* The connection is gone: err is 0 after close/abort or a clean end, else the error
     * (-ECONNRESET, -EPIPE, -ETIMEDOUT, ...). The transport's memory (and its fd) is released
     * when this returns. */
    void (*connection_lost)(void *ctx, int err);
    /* The transport's write buffer went above the high-water mark / back to the low-water
     * mark: stop writing until resume_writing, or the buffer grows without bound. */
    void (*pause_writing)(void *ctx);
    void (*resume_writing)(void *ctx);
    /* Buffered protocol (asyncio.BufferedProtocol): the kernel reads straight into the
     * protocol's memory, no copy. get_buffer stores a buffer (*len > 0 bytes) that the next read
     * fills; sizehint is the size the transport would read (any positive *len works). A negative
     * return (or an empty buffer: -ENOBUFS) fails the connection with that error.
     * buffer_updated says how many bytes the read put at the start of that buffer. */
    int (*get_buffer)(void *ctx, size_t sizehint, void **buf, size_t *len);
    void (*buffer_updated)(void *ctx, size_t nbytes);
} simul_protocol;

/* Called by a protocol server for each accepted connection: stores the protocol and its context
 * for it. Returns >= 0, or a negative errno to refuse the connection (it is closed; no callback
 * of the protocol runs then). */
typedef int (*simul_protocol_factory)(void *arg, const simul_protocol **proto, void **ctx);

/* asyncio's loop.create_server: listens on host:port as simul_tcp_listen does (host NULL or "" =
 * every interface; port NULL or "0" = a free port, see simul_server_port) and starts accepting
 * at once. Each connection gets the protocol that factory(arg, ...) gives. May suspend to
 * resolve a host name (a numeric host or NULL never does). The server is the caller's: end it
 * with simul_server_close and free it with simul_server_free (connections live on until closed;
 * wait_closed waits for them). Returns 0 and *out, or a negative errno / SIMUL_EAI code. */
int simul_create_server(const char *host, const char *port, simul_protocol_factory factory,
                        void *arg, simul_server **out);
/* As simul_create_server, on a Unix stream socket at `path` (asyncio's create_unix_server; a
 * stale socket file is replaced, and the file is removed when the server closes). */
int simul_create_unix_server(const char *path, simul_protocol_factory factory, void *arg,
                             simul_server **out);

typedef struct simul_protocol_server_opts {
    const char *host;      /* NULL or "" = every interface, IPv6 and IPv4 (dual-stack) */
    const char *port;      /* NULL or "0" = a free port */
    const char *unix_path; /* instead of host/port: a Unix stream socket */
    int backlog;           /* listen backlog; 0 = 511 */
    unsigned flags;        /* SIMUL_LISTEN_REUSEPORT */
} simul_protocol_server_opts;

/* simul_create_server with every option. */
int simul_create_server_opts(const simul_protocol_server_opts *opts, simul_protocol_factory factory,
                             void *arg, simul_server **out);

/* Suspends. asyncio's loop.create_connection: connects to host:port with simul_tcp_connect,
 * calls proto->connection_made before returning, and starts reading. Returns 0 and *out (valid
 * until connection_lost returns), or the connection error (-ECONNREFUSED, SIMUL_EAI codes, ...;
 * no callback runs then). */
int simul_create_connection(const char *host, const char *port, const simul_protocol *proto,
                            void *ctx, simul_transport **out);
/* As simul_create_connection, to a Unix stream socket (asyncio's create_unix_connection). */
int simul_create_unix_connection(const char *path, const simul_protocol *proto, void *ctx,
                                 simul_transport **out);

/* asyncio's loop.connect_accepted_socket: wraps a connected stream socket (accepted, connected,
 * one end of a socketpair) in a transport. Does not suspend. The transport owns fd from then on
 * (made non-blocking; TCP_NODELAY set for TCP) and closes it after connection_lost. Calls
 * proto->connection_made before returning. Returns 0 and *out; -ENOTSOCK / -EPROTOTYPE for an
 * fd that is not a stream socket, -EBUSY if it has add_reader/add_writer callbacks, -ENXIO (no
 * loop), -ENOMEM (the fd stays the caller's on every error). */
int simul_connect_accepted_socket(int fd, const simul_protocol *proto, void *ctx,
                                  simul_transport **out);

/* Sends data (copied: the buffer is free again on return). When nothing is queued the socket is
 * tried at once; what it does not take is queued and sent as it drains. Crossing the high-water
 * mark calls pause_writing (inside this call). Returns 0 when the bytes are sent or queued;
 * -EPIPE after close, abort or write_eof; the connection's error once it failed (connection_lost
 * reports it too); -ENOMEM (the connection fails: some bytes may have gone). */
int simul_transport_write(simul_transport *t, const void *data, size_t len);
/* As simul_transport_write for a gather list (one sendmsg when nothing is queued). -EINVAL for
 * iovcnt < 0. */
int simul_transport_writev(simul_transport *t, const struct iovec *iov, int iovcnt);

/* Half-closes: shuts the write side down once the queued data is sent (at once if none). Reading
 * goes on. Returns 0, or the error of shutdown(2). Writing afterwards is -EPIPE. */
int simul_transport_write_eof(simul_transport *t);

/* Closes: stops reading, sends what is queued, then closes; connection_lost(ctx, 0) follows from
 * the loop (never inside this call). Idempotent. */
void simul_transport_close(simul_transport *t);
/* Closes now, dropping queued data; connection_lost(ctx, 0) follows from the loop. */
void simul_transport_abort(simul_transport *t);
/* Whether close or abort was called or the connection failed. */
bool simul_transport_is_closing(const simul_transport *t);

/* Stops data_received (and eof_received) until resume_reading. Nothing is lost: data that
 * arrives meanwhile waits in the kernel and is delivered after resume_reading. Both are no-ops
 * on a closing transport or when already in that state. */
void simul_transport_pause_reading(simul_transport *t);
void simul_transport_resume_reading(simul_transport *t);
bool simul_transport_is_reading(const simul_transport *t);

/* Write-buffer flow control (defaults 64 KiB / 16 KiB, as asyncio): pause_writing when the
 * queued bytes exceed `high`, resume_writing once they are back to `low` or below. Returns 0 or
 * -EINVAL (low > high). May call pause_writing at once. */
int simul_transport_set_write_buffer_limits(simul_transport *t, size_t high, size_t low);
void simul_transport_get_write_buffer_limits(const simul_transport *t, size_t *low, size_t *high);
/* Bytes queued in the transport (not yet taken by the kernel). */
size_t simul_transport_get_write_buffer_size(const simul_transport *t);

/* The peer's / the local address of the socket (getpeername / getsockname) into *addr, as
 * simul_stream_peername does. Returns the address length, or a negative errno. */
int simul_transport_peername(const simul_transport *t, struct sockaddr_storage *addr);
int simul_transport_sockname(const simul_transport *t, struct sockaddr_storage *addr);
/* The socket (owned by the transport: do not close it, read it or wait on it). */
int simul_transport_fd(const simul_transport *t);

/* Switches the connection to another protocol (asyncio's set_protocol): later callbacks go to
 * it; the old one gets none, not even connection_lost. */
void simul_transport_set_protocol(simul_transport *t, const simul_protocol *proto, void *ctx);
const simul_protocol *simul_transport_get_protocol(const simul_transport *t, void **ctx);

/* A transport's bottom (see "Bottoms" above): the built-in fd bottom of its socket, or one that
 * wraps it (TLS: asyncio's loop.start_tls(transport, ...), or a TLS protocol server whose
 * connection_made slides TLS under the transport and then set_protocol's the user's). A
 * transport has no task: it stays driven by its socket's readiness edges, and under a wrapping
 * bottom every edge (either direction) retries both its queued writes and its reading, until the
 * bottom says -EAGAIN; the bottom's wait is never called by the transport. So the new bottom must
 * sit on the transport's own fd bottom (directly or through other wrappers). Does not suspend;
 * may be called from the protocol's callbacks (data_received included: the next read goes
 * through the new bottom). Returns 0; -EBUSY while bytes are queued (they belong to the old byte
 * stream: wait for resume_writing, or write nothing between the last plaintext and the call);
 * -EPIPE (or the connection's error) once closing or after write_eof; -EINVAL. The transport
 * owns the new bottom from then on and closes it (with abort after simul_transport_abort) when
 * connection_lost has returned. */
int simul_transport_replace_bottom(simul_transport *t, const simul_stream_ops *ops, void *ctx);
/* The transport's current bottom and its ctx (NULL once connection_lost is scheduled). */
const simul_stream_ops *simul_transport_bottom(const simul_transport *t, void **ctx);

/* ---------------------------------------------------------------------------------------------
 * UDP: datagram endpoints
 * ------------------------------------------------------------------------------------------- */
/* Datagram endpoints as protocols (asyncio's create_datagram_endpoint). Same rules as the stream
 * protocols: callbacks run from the loop, must not suspend, and may call any transport function;
 * connection_lost comes exactly once, last, and never inside the call that caused it. */
typedef struct simul_datagram_transport simul_datagram_transport;

typedef struct simul_datagram_protocol {
    void (*connection_made)(simul_datagram_transport *t, void *ctx);
    /* One datagram from addr (valid only during the call). Required. */
    void (*datagram_received)(void *ctx, const void *data, size_t len, const struct sockaddr *addr,
                              simul_socklen_t addrlen);
    /* A send or receive failed (-ECONNREFUSED after an ICMP port unreachable, -EMSGSIZE for a
     * datagram larger than 64 KiB, ...). The endpoint stays open. */
    void (*error_received)(void *ctx, int err);
    /* err is 0 after close/abort. The transport's memory is released when this returns. */
    void (*connection_lost)(void *ctx, int err);
    /* Flow control of the send queue, as for streams. */
    void (*pause_writing)(void *ctx);
    void (*resume_writing)(void *ctx);
} simul_datagram_protocol;

/* Flags of simul_create_datagram_endpoint (SIMUL_LISTEN_REUSEPORT also works). */
#define SIMUL_DATAGRAM_BROADCAST 2u /* SO_BROADCAST */

/* Suspends (name resolution). A UDP endpoint bound to local_host:local_port (both NULL: an
 * ephemeral port chosen by the kernel) and, if remote_host or remote_port is given, connected to
 * that address (sends go there and only its datagrams are received). The family follows the
 * remote address if any, else the local one. Calls proto->connection_made before returning.
 * Returns 0 and *out (valid until connection_lost returns), -EINVAL (neither address given),
 * or a negative errno / SIMUL_EAI code (no callback runs then). */
int simul_create_datagram_endpoint(const char *local_host, const char *local_port,
                                   const char *remote_host, const char *remote_port, unsigned flags,
                                   const simul_datagram_protocol *proto, void *ctx,
                                   simul_datagram_transport **out);

/* asyncio's create_datagram_endpoint(sock=...): wraps a datagram socket (UDP, or AF_UNIX
 * SOCK_DGRAM such as one end of a socketpair); it counts as connected if it has a peer. Does not
 * suspend. The transport owns fd from then on (made non-blocking) and closes it after
 * connection_lost. Calls proto->connection_made before returning. Returns 0 and *out;
 * -ENOTSOCK / -EPROTOTYPE (not a datagram socket), -EBUSY, -ENXIO, -ENOMEM (the fd stays the
 * caller's on every error). */
int simul_create_datagram_endpoint_sock(int fd, const simul_datagram_protocol *proto, void *ctx,
                                        simul_datagram_transport **out);

/* Sends one datagram (copied) to addr, or, for a connected endpoint, to its peer (addr NULL or
 * the peer's address). Tried at once; queued when the kernel says EAGAIN (pause_writing above the
 * high-water mark; each datagram counts its size plus 8). Returns 0 when sent or queued, or the
 * error of that send (-EMSGSIZE, -ECONNREFUSED, ...; not reported to error_received); -EPIPE
 * after close/abort; -EDESTADDRREQ (no addr, not connected); -EISCONN (connected, another
 * addr). Errors of queued datagrams sent later go to error_received. */
int simul_datagram_transport_sendto(simul_datagram_transport *t, const void *data, size_t len,
                                    const struct sockaddr *addr, simul_socklen_t addrlen);
/* Sends what is queued, then closes; connection_lost(ctx, 0) follows from the loop. */
void simul_datagram_transport_close(simul_datagram_transport *t);
/* Closes now, dropping the queue; connection_lost(ctx, 0) follows from the loop. */
void simul_datagram_transport_abort(simul_datagram_transport *t);
bool simul_datagram_transport_is_closing(const simul_datagram_transport *t);
/* Send-queue flow control (defaults 64 KiB / 16 KiB). Returns 0 or -EINVAL (low > high). */
int simul_datagram_transport_set_write_buffer_limits(simul_datagram_transport *t, size_t high,
                                                     size_t low);
size_t simul_datagram_transport_get_write_buffer_size(const simul_datagram_transport *t);
/* The local address / the connected peer's address into *addr, as simul_stream_sockname does.
 * Return the address length, or a negative errno: -ENOTCONN from peername for an endpoint that
 * is not connected. */
int simul_datagram_transport_sockname(const simul_datagram_transport *t,
                                      struct sockaddr_storage *addr);
int simul_datagram_transport_peername(const simul_datagram_transport *t,
                                      struct sockaddr_storage *addr);
int simul_datagram_transport_fd(const simul_datagram_transport *t);

/* sendfile (asyncio's loop.sock_sendfile / loop.sendfile, fallback=True by default): bytes from
 * a source fd to a socket or pipe. Zero-copy sendfile(2) where the kernel can; otherwise, as
 * asyncio's fallback, a copy that reads the source and sends what it read.
 * - file_fd, open for reading (else -EBADF):
 *   - a regular file (or block device): sendfile(2) from `offset`; the file's own offset is
 *     neither used nor moved. A file sendfile(2) refuses at once (EINVAL, ENOSYS, EOPNOTSUPP
 *     before any byte went: procfs, some FUSE file systems) is copied instead, read with
 *     simul_file_pread at the same offsets on the file pool.
 *   - a pipe, FIFO, socket or character device (/dev/zero, a tty): always copied, read as a byte
 *     stream from where it stands, so `offset` must be 0 (else -ESPIPE). Reading never blocks
 *     the loop and never changes the fd's flags: a socket is read with recv(MSG_DONTWAIT), a
 *     pipe or device with preadv2(RWF_NOWAIT) (non-blocking per call even on a blocking fd),
 *     parking on the fd's readability in between; where the kernel lacks that (a tty, older
 *     kernels) a blocking fd is read on the file pool instead (a read cut short there still
 *     takes what arrives next, and drops it, as simul_file_read says). An fd the copy waited on is
 *     left unregistered from the loop afterwards, as it was found. Another reader of the same
 *     source at the same time gets some of the bytes (neither sees all).
 *   - a directory: -EINVAL.
 * - count 0 means up to the end of the source (end of file, or a pipe / socket whose writers
 *   are gone; /dev/zero has none: give a count). If the source ends before `count` bytes, the
 *   call returns the shorter count sent (0 for an offset at or past the end): not an error.
 * - sendfile(2) reads the file's pages on the loop's thread: pages not in the page cache are
 *   read from disk with the loop waiting (as nginx without its aio threads).
 * - Never raises SIGPIPE: a peer that is gone is -EPIPE or -ECONNRESET.
 * - A long transfer to a fast reader lets other tasks run every few MiB.
 * - *sent (may be NULL) always gets the bytes the destination took, also on error, cancellation
 *   or timeout (as simul_sendall): the peer got exactly the first *sent bytes of the source
 *   (file[offset, offset + *sent)). A copy holds up to 256 KiB read from the source but not yet
 *   sent: when an error, cancellation or deadline stops it, those bytes are dropped. For a
 *   file that changes nothing (read them again from offset + *sent); a pipe or socket source has
 *   lost them: its next reader continues after them. A source read error (-EIO, a source
 *   socket's -ECONNRESET) is returned as is, with *sent as above. */

/* Suspends until count bytes of file_fd (from `offset`, >= 0) went to `sock`: a non-blocking
 * stream socket (or pipe write end) as the simul_socket / simul_accept / simul_tcp_connect fds
 * are. Returns the count sent; -EINVAL (a blocking destination, a datagram socket, a regular
 * file as destination, a directory as source, a negative offset); -ESPIPE (offset != 0 with a
 * pipe, socket or device source); -EBADF (an fd not open, or the source not open for reading);
 * the connection's error; a source's read error; -ENOMEM (the copy's buffer); -ECANCELED /
 * -ETIMEDOUT. Thread-safety: a task of the loop the socket is used with; one sending task per
 * socket at a time (bytes would interleave); a regular file may be shared by any number of
 * transfers at once (its offset is not used). */
long simul_sock_sendfile(int sock, int file_fd, int64_t offset, size_t count, size_t *sent);

/* Suspends. As simul_sock_sendfile on a stream's socket (or pipe): first waits until the
 * stream's queued writes are flushed, so the file follows them in order, then sends the file
 * (zero-copy or copied, as above). Writes that follow the call go after the file. Meanwhile the
 * sending side is the call's: another task's simul_stream_write / writev / write_eof / sendfile
 * on the stream gets -EBUSY (its bytes would land in the middle of the file's). Returns the
 * count sent; the stream's write error if it already failed (-EPIPE, ...), which a transfer
 * failing on the connection also makes sticky for later writes (a source's errors do not);
 * -ESHUTDOWN after write_eof; -EBUSY (another sendfile is in progress); -EBADF while the stream
 * closes; -ECONNABORTED if it is closed or aborted meanwhile; -ECANCELED / -ETIMEDOUT; the other errors of
 * simul_sock_sendfile. After an interruption the peer has a partial file (*sent bytes) in the
 * byte stream: a framed protocol must usually close the stream then.
 * Thread-safety: a task of the stream's loop; readers of the stream may run meanwhile. */
long simul_stream_sendfile(simul_stream *s, int file_fd, int64_t offset, size_t count,
                           size_t *sent);

/* Suspends. As simul_sock_sendfile / simul_stream_sendfile with asyncio's fallback=False:
 * sendfile(2) only, never a copy. A source it cannot read (a pipe, socket or device, or a file
 * sendfile(2) refuses before any byte went) is -EOPNOTSUPP (= ENOTSUP), with nothing
 * sent. */
long simul_sock_sendfile_nofallback(int sock, int file_fd, int64_t offset, size_t count,
                                    size_t *sent);
long simul_stream_sendfile_nofallback(simul_stream *s, int file_fd, int64_t offset,
                                      size_t count, size_t *sent);

/* ---------------------------------------------------------------------------------------------
 * Many cores: one loop per thread, a server on N threads (SO_REUSEPORT)
 * ------------------------------------------------------------------------------------------- */
/* A stream server on N threads: each thread runs its own loop (a loop belongs to the thread that
 * made it) with its own listening socket on the same host:port, bound with SO_REUSEPORT, so the
 * kernel spreads incoming connections over the threads by a hash of their addresses (not by
 * load: a thread may get more than its share). Each connection is served by `handler` as a task
 * on the loop of the thread that accepted it, exactly as simul_start_server would; connections
 * never move between threads. The threads share nothing but what the handler shares (`arg`):
 * anything it touches on other threads' behalf must be thread-safe (atomics, channels, mutexes).
 * The worker threads start with the asynchronous signals blocked, so SIGINT, SIGTERM, ... go to
 * the application's own threads; install no signal handlers on the worker loops. */
typedef struct simul_threaded_server simul_threaded_server;

#define SIMUL_THREADED_SERVER_MAX_THREADS 1024

typedef struct simul_threaded_server_opts {
    const char *host; /* NULL or "" = every interface (dual-stack), as simul_start_server */
    const char *port; /* NULL or "0" = a free port: thread 0 picks it, the others bind it too */
    int threads;      /* 1 .. SIMUL_THREADED_SERVER_MAX_THREADS; 0 = the CPUs the process may
                         run on (sched_getaffinity) */
    simul_stream_handler handler; /* required; runs on the accepting thread's loop */
    void *arg;                    /* given to handler and the hooks, from every thread */
    int backlog;                  /* each thread's listen backlog; 0 = 511 */
    size_t limit;                 /* each stream's readline/readuntil limit; 0 = the default */
    size_t stack_size;            /* the handler tasks' stack; 0 = the loop's default */
    /* Optional. Run on each worker thread, in its loop's first task (they may suspend):
     * thread_init before that thread listens (a negative return fails the start with that
     * error); thread_fini after its server closed and its connections ended (only if
     * thread_init succeeded or was NULL). `index` is 0 .. threads-1. */
    int (*thread_init)(int index, void *arg);
    void (*thread_fini)(int index, void *arg);
} simul_threaded_server_opts;

/* Starts opts->threads worker threads, each with its own loop listening on host:port, and blocks
 * the calling thread until every one listens or one failed (milliseconds for a numeric host; a
 * host name is resolved on the worker threads, and thread_init runs before listening, so those
 * can take longer). Called from a task it stalls that task's loop for that time. opts is read
 * during the call (host is copied). With port 0, thread 0 gets a free port and the others bind
 * the same one. Returns 0 and *out; -EINVAL (no handler, threads or backlog out of range); or
 * the error of the first thread that failed (-EADDRINUSE when the port is held by a socket
 * without SO_REUSEPORT, a SIMUL_EAI code, thread_init's error, -EAGAIN from pthread_create, ...):
 * then the threads already listening were stopped and joined, and nothing is left running.
 * Thread-safe: it needs no loop, so plain main() code may call it too. */
int simul_serve_threads(const simul_threaded_server_opts *opts, simul_threaded_server **out);

/* Thread-safe. The TCP port every thread listens on (the one picked for port 0); -EINVAL. */
int simul_threaded_server_port(const simul_threaded_server *ts);
/* Thread-safe. The number of worker threads; -EINVAL. */
int simul_threaded_server_threads(const simul_threaded_server *ts);
/* Thread-safe. How many connections thread `index` has handed to the handler so far (a relaxed
 * counter: exact once the threads have ended); -EINVAL for a bad index. */
int64_t simul_threaded_server_accepted(simul_threaded_server *ts, int index);
/* Thread-safe. The index of the calling worker thread (in a handler or a hook), or -1 on a
 * thread that is not a threaded server's worker. */
int simul_threaded_server_index(void);

/* Thread-safe (any thread, a task on any loop, a handler of the server itself; never blocks).
 * Asks every thread to stop: each closes its listening socket, cancels its connections' handler
 * tasks (their suspending calls return -ECANCELED; the streams are closed when the handlers
 * return, so clients see EOF or a reset), waits until they have ended, runs thread_fini, closes
 * its loop and ends. Handlers must return once cancelled, or their thread never ends. Returns 0
 * (also when already stopped) or -EINVAL. */
int simul_threaded_server_stop(simul_threaded_server *ts);

/* Blocks the calling thread until every worker thread has ended (after a stop from elsewhere:
 * a signal-watching thread, a handler) and joins them. For plain main() code without a loop.
 * Returns 0; -EDEADLK on one of the server's own threads or on a thread whose loop is running
 * (it would stall that loop: use simul_threaded_server_wait); -EINVAL. Several threads may
 * join at once. */
int simul_threaded_server_join(simul_threaded_server *ts);

/* Suspends until every worker thread has ended. Thread-safe: from a task on any loop but the
 * server's own (there it is -EDEADLK: the thread cannot end while one of its tasks waits);
 * the caller's loop keeps running meanwhile. Many tasks may wait at once. Returns 0;
 * -ECANCELED / -ETIMEDOUT; -EPERM outside a task; -EINVAL. It does not stop the server. */
int simul_threaded_server_wait(simul_threaded_server *ts);

/* Stops the server if it is running, blocks until its threads have ended (at once after
 * simul_threaded_server_wait or _join returned), joins them and frees it. Any thread but the
 * server's own may call it (there it is -EDEADLK and nothing is done), but no other call on ts may
 * be in progress or follow. NULL is fine. Returns 0 or -EDEADLK. */
int simul_threaded_server_free(simul_threaded_server *ts);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_STREAM_H */
