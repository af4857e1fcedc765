/* simul/offload.h — blocking work off the loop: to_thread / run_in_executor and files.
 * Part of the simul API: include <simul.h> (the umbrella), or this header alone. */
#ifndef SIMUL_OFFLOAD_H
#define SIMUL_OFFLOAD_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * Threads: run blocking functions off the loop (asyncio.to_thread / run_in_executor)
 * ------------------------------------------------------------------------------------------- */
/* One process-wide pool serves every loop (threads are a process resource: a pool per loop would
 * multiply them). At most simul_executor_max_threads() workers (default min(32, CPUs + 4), as
 * asyncio); they start on demand when no worker is idle and exit after 10 s idle. Workers are
 * detached with every signal blocked, so one stuck in a function at exit does not hold the
 * process. The name resolver has its own pool (slow lookups never starve this one). */

/* A function run on a worker thread. Its result is >= 0 or a negative errno, by convention. It
 * runs outside any loop: it must not call suspending functions (they return -EPERM) nor touch
 * loop objects, except through thread-safe calls (simul_loop_call_soon_threadsafe, channels). */
typedef int (*simul_thread_fn)(void *arg);

/* Takes back `arg` of a call whose caller gave up (see simul_to_thread_discard). `result` is fn's
 * return value, or -ECANCELED if fn never ran. */
typedef void (*simul_thread_discard_cb)(void *arg, int result);

/* Suspends (asyncio.to_thread). Runs fn(arg) on a worker thread and waits for it: returns 0 with
 * fn's return value in *result (may be NULL); fn's writes through arg are visible on return.
 * If the caller is cancelled or its deadline expires first it returns -ECANCELED / -ETIMEDOUT
 * at once:
 * - fn still queued (every worker busy): it is taken off the queue and never runs (as a queued
 *   concurrent.futures job that is cancelled);
 * - fn running: it runs to its end on its thread; its result is dropped;
 * - fn already finished: completion wins, the call returns 0 with the result.
 * So `arg` must stay valid until fn returns, which may be after an interrupted call returned:
 * with this function use memory that outlives the call (not the caller's stack), or wrap the
 * call in a shield scope (then cancellation waits for fn), or use simul_to_thread_discard.
 * Other returns: -EINVAL (fn NULL), -EPERM outside a task, -ENOMEM, or the pthread_create error
 * (-EAGAIN) when no worker exists and none can be started (nothing ran). */
int simul_to_thread(simul_thread_fn fn, void *arg, int *result);

/* Suspends. simul_to_thread with ownership of `arg` for callers that give up: when the call
 * returns -ECANCELED, -ETIMEDOUT or -ENOMEM (however early: also a task already cancelled when
 * it calls), `arg` is no longer the caller's and discard(arg, result) is called exactly once —
 * before the call returns (result -ECANCELED) if fn never ran, else on the worker thread right
 * after fn returns (result = fn's). discard must therefore be thread-safe in the way fn is; it
 * may free arg and whatever fn left in it. On every other return (0, -EINVAL, -EPERM, -EAGAIN)
 * `arg` stays the caller's and discard is not called. discard may be NULL. */
int simul_to_thread_discard(simul_thread_fn fn, void *arg, simul_thread_discard_cb discard,
                            int *result);

/* Thread-safe. Sets the maximum number of worker threads (n >= 1; 0 restores the default). A
 * larger pool starts workers at once for queued calls; a smaller one shrinks as workers finish
 * their current function. Returns 0 or -EINVAL. */
int simul_executor_set_max_threads(int n);
/* Thread-safe. The maximum number of worker threads. */
int simul_executor_max_threads(void);

/* ---------------------------------------------------------------------------------------------
 * Files: blocking file calls off the loop, sendfile
 * ------------------------------------------------------------------------------------------- */
/* Blocking file calls run off the loop while the calling task waits (as aiofiles does for
 * asyncio). Today they run on a worker pool of their own (sized as the executor's, threads
 * started on demand and gone after 10 s idle; its own so that a FIFO open or a hung network
 * mount holding workers never starves simul_to_thread, nor the reverse); nothing here promises
 * threads, so an io_uring backend can take them over unchanged.
 *
 * Every function in this part suspends: call it from a task (-EPERM elsewhere). Thread-safety:
 * tasks of different loops, on different threads, may call any of them at the same time (they
 * share only the pool, which is locked); none may be called from a plain thread or a callback.
 * Calls on one fd from several tasks run concurrently, as the same syscalls from several threads
 * would: in no set order, and read/write share the fd's file offset (use pread/pwrite).
 *
 * Cancellation and deadlines: every call returns -ECANCELED / -ETIMEDOUT promptly, even while
 * its syscall is stuck in the kernel (opening a FIFO nobody writes, a dead NFS server). From
 * that moment the call never touches the caller's memory again: reads land in a buffer the
 * library owns and are copied out only on success, writes copy the data before they start, and
 * paths are copied. The syscall itself: if it had not started, it never runs; if it was running,
 * it runs to its end and what it made is released (an fd opened for a caller that gave up is
 * closed, data read is freed); if it had already finished, completion wins and the call returns
 * its result (the cancel shows at the next suspending call). So an interrupted write may have
 * written nothing, all of its data or, where write(2) would have stopped short (disk full), a
 * prefix; for simul_file_write the fd's offset moved by that much. After an interrupted write,
 * treat the content (and, for write, the offset) as unknown until rewritten.
 *
 * Errors are those of the syscall as negative errno (-ENOENT, -EACCES, -EISDIR, -EBADF, ...);
 * a negative fd is -EBADF and a NULL path or buffer -EINVAL without reaching the kernel. */
struct stat;

/* The most one read / write / pread / pwrite moves per call (a short count beyond it, as read(2)
 * may give): the library's buffer for it is allocated per call. The *_all helpers loop. */
#define SIMUL_FILE_IO_MAX (4u << 20)

/* Suspends. open(2) with O_CLOEXEC added. Returns the fd (a plain blocking fd: use it with
 * these calls, not with the loop's readiness calls) or a negative errno. If interrupted, an open
 * that completes later is closed on the worker: no fd leaks. Thread-safety: any task, any loop. */
int simul_file_open(const char *path, int flags, unsigned mode);

/* Suspends. Closes fd (forgetting any loop registration of its number first). The fd is closed
 * whatever the result, also on -ECANCELED / -ETIMEDOUT (on the worker, or here if no worker had
 * taken it yet): never close it again. Returns 0 or close(2)'s error (-EIO: data written earlier
 * was lost); -EBADF (fd < 0) and -EPERM are the only cases where nothing is closed.
 * Thread-safety: any task, any loop; no task may still use fd (its number is reused at once). */
int simul_file_close(int fd);

/* Suspends. read(2) of at most min(len, SIMUL_FILE_IO_MAX) bytes at the fd's offset. Returns the
 * count (0 at end of file) or a negative errno. On -ECANCELED / -ETIMEDOUT buf is untouched (a
 * late read goes to the library's buffer and is dropped, but it still moved the fd's offset).
 * Thread-safety: any task, any loop; tasks reading one fd share its offset (use pread). */
long simul_file_read(int fd, void *buf, size_t len);

/* Suspends. pread(2): as simul_file_read at `offset` (>= 0, else -EINVAL), the fd's offset
 * untouched. Thread-safety: any task, any loop; safe for several tasks sharing an fd. */
long simul_file_pread(int fd, void *buf, size_t len, int64_t offset);

/* Suspends. write(2) of at most min(len, SIMUL_FILE_IO_MAX) bytes, copied before the call starts
 * (buf is free again on return, whatever it returns). Returns the count written or a negative
 * errno. What an interrupted write may have done: see above. Thread-safety: any task, any loop;
 * concurrent writes to one fd land in no set order (with O_APPEND each lands whole at the end). */
long simul_file_write(int fd, const void *buf, size_t len);

/* Suspends. pwrite(2) at `offset` (>= 0), as simul_file_write. (On an fd opened with O_APPEND,
 * Linux appends, as pwrite(2) does.) Thread-safety: any task, any loop; concurrent pwrites to
 * overlapping ranges land in no set order. */
long simul_file_pwrite(int fd, const void *buf, size_t len, int64_t offset);

/* Suspends until all len bytes are written (SIMUL_FILE_IO_MAX per syscall). Returns len or a
 * negative errno; *written (may be NULL) always gets the bytes known written, also on error,
 * cancellation or timeout (a chunk interrupted in flight may add to them: see above).
 * Thread-safety: any task, any loop; not atomic: the chunks of two concurrent calls on one fd
 * may interleave. */
long simul_file_write_all(int fd, const void *buf, size_t len, size_t *written);
/* The same with pwrite from `offset` on. */
long simul_file_pwrite_all(int fd, const void *buf, size_t len, int64_t offset, size_t *written);

/* Suspends. fsync(2) / fdatasync(2). Returns 0 or a negative errno (-EIO: written data was
 * lost). An interrupted sync may still complete. Thread-safety: any task, any loop; it covers
 * what any thread wrote to the file before it began. */
int simul_file_fsync(int fd);
int simul_file_fdatasync(int fd);

/* Suspends. ftruncate(2) to `length` (>= 0). Returns 0 or a negative errno. Thread-safety: any
 * task, any loop. */
int simul_file_truncate(int fd, int64_t length);

/* Suspends. stat(2) / fstat(2) into *st (written only on success). Returns 0 or a negative
 * errno. Thread-safety: any task, any loop. */
int simul_file_stat(const char *path, struct stat *st);
int simul_file_fstat(int fd, struct stat *st);

/* Suspends. unlink(2) / rename(2). Return 0 or a negative errno; an interrupted one may still
 * take effect. Thread-safety: any task, any loop. */
int simul_file_unlink(const char *path);
int simul_file_rename(const char *from, const char *to);

/* Suspends. Reads the whole file at `path` (pathlib's read_bytes) in one trip to the pool: open,
 * read to end of file, close. Returns 0 with *data (malloc'd, the caller frees it with free();
 * a NUL byte follows the data, not counted, so text can be used as a string) and *len (may be
 * NULL); or -EMSGSIZE if the file holds more than `limit` bytes, or a negative errno (-ENOENT,
 * -EISDIR, ...), with *data NULL. Works for files whose size stat cannot tell (procfs).
 * Thread-safety: any task, any loop; a file another writer changes meanwhile may be read in a
 * state between its versions. */
int simul_file_read_bytes(const char *path, size_t limit, char **data, size_t *len);

/* Suspends. Writes data as the whole content of `path` (pathlib's write_bytes): created with
 * `mode` (umask applies, e.g. 0644) or truncated, written, closed, in one trip to the pool; the
 * data is copied first. Returns 0 or a negative errno (close's included). Not atomic: an error or
 * an interruption can leave the file truncated or partly written (write elsewhere and
 * simul_file_rename over it for an atomic replacement). Thread-safety: any task, any loop; two
 * concurrent calls on one path leave one's content or a mix. */
int simul_file_write_bytes(const char *path, const void *data, size_t len, unsigned mode);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_OFFLOAD_H */
