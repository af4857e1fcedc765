/* simul/compat.h — the old names of calls renamed when the naming rule was settled (see the
 * opening comment of <simul.h> and docs/asyncio-map.md, "Naming"). Each is a macro for its new
 * name, so programs written against 0.1 compile unchanged (source compatibility only: the
 * library exports the new names). Included by the umbrella <simul.h>; define
 * SIMUL_NO_COMPAT before including it to check that a program uses the new names only.
 * These aliases go away at 1.0. */
#ifndef SIMUL_COMPAT_H
#define SIMUL_COMPAT_H

#ifndef SIMUL_NO_COMPAT

/* Lifecycle: a process handle is an I/O handle (pipes, the exit watch), so `_close` ends it, as
 * simul_procpool_close ends a pool. */
#define simul_process_free simul_process_close

/* Getters: simul_<noun>_<property>, no get_ unless asyncio's own method has it. getpeername and
 * getsockname are socket calls (asyncio offers them only through get_extra_info), so the
 * transports read as the stream does (simul_stream_peername). */
#define simul_transport_get_peername simul_transport_peername
#define simul_transport_get_sockname simul_transport_sockname
#define simul_datagram_transport_get_peername simul_datagram_transport_peername
#define simul_datagram_transport_get_sockname simul_datagram_transport_sockname
/* ... and asyncio's Task.get_name, the partner of set_name, keeps its get_. */
#define simul_task_name simul_task_get_name

/* Variants: a suffix names what the variant adds; `_ex` says nothing. This one adds `discard`. */
#define simul_to_thread_ex simul_to_thread_discard

#endif /* SIMUL_NO_COMPAT */

#endif /* SIMUL_COMPAT_H */
