/* simul/base.h — handle types, callbacks and error codes shared by every area.
 * Part of the simul API: include <simul.h> (the umbrella), or this header alone. */
#ifndef SIMUL_BASE_H
#define SIMUL_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define SIMUL_VERSION_MAJOR 0
#define SIMUL_VERSION_MINOR 1
#define SIMUL_VERSION_PATCH 0

/* ---------------------------------------------------------------------------------------------
 * Handles
 * ------------------------------------------------------------------------------------------- */

typedef struct simul_loop simul_loop;     /* one event loop; one per thread */
typedef struct simul_task simul_task;     /* a stackful coroutine run by the loop */
typedef struct simul_future simul_future; /* a one-shot result */
typedef struct simul_group simul_group;   /* a task group (structured concurrency) */
typedef struct simul_as_completed simul_as_completed; /* iterator over finishing tasks */
typedef struct simul_server simul_server; /* listening sockets (streams and protocols) */

/* A scheduled callback (call_soon / call_later / call_at). A value, not a pointer: cancelling
 * a handle whose callback already ran, or was already cancelled, is safe and returns -ENOENT.
 * The zero value is "no handle". */
typedef struct simul_handle {
    uint64_t id;
} simul_handle;

/* The body of a task. Its return value is the task's result: >= 0 for success, a negative
 * errno for failure. join, gather and task groups report it. */
typedef int (*simul_task_fn)(void *arg);

/* A plain callback run by the loop (not a task: it must not suspend). */
typedef void (*simul_callback)(void *arg);

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

/* A message for an error code (negative or positive errno). Never NULL; static storage. */
const char *simul_strerror(int err);
/* The symbolic name of an error code ("ECANCELED"). Never NULL; static storage. */
const char *simul_errname(int err);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_BASE_H */
