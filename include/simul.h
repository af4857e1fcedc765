/* simul.h — the asyncio model in C: one thread, one event loop, many stackful tasks.
 *
 * Conventions (docs/design/runtime.md has the design behind them):
 * - Every function that can fail returns >= 0 on success and a negative errno on failure
 *   (-EINVAL, -ENOMEM, ...). simul never reports through the errno variable: tasks share a
 *   thread, so errno can be overwritten by another task across a suspension.
 * - A function whose comment begins with "Suspends." may switch to other tasks before it
 *   returns. It must be called from a task (outside one it returns -EPERM). Every suspending
 *   function is a cancellation point: it returns -ECANCELED once the calling task has been
 *   cancelled (level-triggered: again on every later call, unless inside a shield scope) and
 *   -ETIMEDOUT once a deadline scope around it has expired.
 * - A suspending call that returns an error has taken nothing and completed nothing.
 * - Time is monotonic. Seconds are doubles (as in asyncio); *_ns variants take int64
 *   nanoseconds of the same clock.
 * - Only functions marked "Thread-safe." may be called from a thread other than the loop's.
 *
 * Naming (docs/asyncio-map.md, "Naming", has the reasons):
 * - simul_<noun>_<verb>; where asyncio has a name, it is the name (gather, wait_for, drain,
 *   readuntil, serve_forever, call_soon_threadsafe, put_nowait).
 * - Lifecycle. Objects without I/O (locks, queues, futures, channels, iterators, jobs) are made by
 *   _new and given back by _free. I/O handles are made by a verb that says what they do
 *   (open_connection, start_server, create_connection, stream_from_fd, process_exec, file_open;
 *   _new where nothing is opened: loop, procpool) and ended by _close, after which the handle is
 *   invalid. Two asyncio meanings keep their verb: simul_server_close stops listening (asyncio's
 *   Server.close: the server still answers is_serving / wait_closed, its connections go on) and
 *   simul_server_free then gives the handle back (simul_threaded_server_stop / _free alike);
 *   simul_channel_close stops puts (a channel is an object: simul_channel_free frees it).
 *   _start/_stop for an activity, _shutdown for a queue (asyncio's Queue.shutdown); a stream or
 *   transport half-closes with write_eof (asyncio's name).
 * - Getters are simul_<noun>_<property> (simul_stream_fd, simul_stream_peername,
 *   simul_server_port, simul_queue_qsize), setters simul_<noun>_set_<property>; a getter has
 *   get_ only where asyncio's method has it (simul_task_get_name, simul_loop_get_debug,
 *   simul_transport_get_write_buffer_size, simul_transport_get_protocol). An address getter
 *   (stream, transport, datagram transport: _peername, _sockname) fills a struct
 *   sockaddr_storage and returns the address length.
 * - A variant is its base name plus a suffix saying what differs: _ns (int64 nanoseconds of the
 *   monotonic clock instead of double seconds), _opts (every option, in a struct), _nowait (never
 *   suspends), _blocking (blocks the calling thread, for threads without a loop), _threadsafe
 *   (from any thread), _no<keyword> (an asyncio keyword argument turned off: _nofallback is
 *   fallback=False), or the argument it adds (_sock, _discard). No _ex, no numbers.
 * - Old names renamed by these rules still compile until 1.0 (simul/compat.h).
 */
#ifndef SIMUL_H
#define SIMUL_H

#include "simul/base.h"
#include "simul/backoff.h"
#include "simul/loop.h"
#include "simul/task.h"
#include "simul/sync.h"
#include "simul/io.h"
#include "simul/offload.h"
#include "simul/net.h"
#include "simul/stream.h"
#include "simul/process.h"
#include "simul/supervisor.h"
#include "simul/compat.h"

#endif /* SIMUL_H */
