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
 */
#ifndef SIMUL_H
#define SIMUL_H

#include "simul/base.h"
#include "simul/loop.h"
#include "simul/task.h"
#include "simul/sync.h"
#include "simul/io.h"
#include "simul/offload.h"
#include "simul/net.h"
#include "simul/stream.h"
#include "simul/process.h"

#endif /* SIMUL_H */
