/* simul/process.h — subprocesses and the process pool.
 * Part of the simul API: include <simul.h> (the umbrella), or this header alone. */
#ifndef SIMUL_PROCESS_H
#define SIMUL_PROCESS_H

#include "base.h"
#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * Subprocesses (asyncio.create_subprocess_exec / create_subprocess_shell)
 * ------------------------------------------------------------------------------------------- */
/* Child processes. Spawning is posix_spawn (a vfork-style clone: no page-table copy, and an exec
 * failure comes back as the call's error). The child starts with every signal at its default
 * action and an empty signal mask (whatever handlers and masks this process has), and inherits
 * no fd of the library (they are all close-on-exec) and, unless SIMUL_PROCESS_KEEP_FDS, no fd
 * above 2 at all but the opts' pass_fds (as Python's close_fds=True).
 *
 * Exit watching: a pidfd (Linux >= 5.3) registered with the loop, reaped with
 * waitid(P_PIDFD, WNOHANG). Where pidfd_open is unavailable (ENOSYS, or EPERM in some sandboxes),
 * or when the environment variable SIMUL_NO_PIDFD=1 is set (read once per process), the loop
 * catches SIGCHLD (as simul_add_signal_handler does, while it has such children) and on each one
 * polls each of its own children with waitpid(pid, WNOHANG) -- never waitpid(-1), which would
 * steal other code's children -- plus a slow timer poll as a safety net (every 20 ms when another
 * loop owns SIGCHLD). In that mode do not install your own SIGCHLD handler on the same loop.
 *
 * No zombies: a child is reaped as soon as it exits, whether or not a task waits for it. A
 * handle closed while its child still runs hands the child to a process-wide reaper thread
 * (started on demand, gone when it has nothing left to reap) that reaps it when it exits: the
 * child is not killed (as asyncio), and the loop may close meanwhile. If this process sets
 * SIGCHLD to SIG_IGN the kernel reaps children itself and their status is reported as 255 (as
 * asyncio's "unknown child"). An open process handle counts as live I/O: simul_loop_close
 * returns -EBUSY until it is closed.
 *
 * Every function here is for the loop's thread only (simul_process_pid excepted). */
typedef struct simul_process simul_process;

/* What a child's stdin, stdout or stderr is connected to. */
enum simul_stdio {
    SIMUL_STDIO_INHERIT = 0, /* this process's own fd 0/1/2 (the default) */
    SIMUL_STDIO_PIPE = 1,    /* a pipe whose other end is a simul_stream (simul_process_stdin...) */
    SIMUL_STDIO_DEVNULL = 2, /* /dev/null */
    SIMUL_STDIO_FD = 3,      /* the caller's fd in stdin_fd / stdout_fd / stderr_fd (duplicated
                                into the child: it stays the caller's, open) */
    SIMUL_STDIO_STDOUT = 4,  /* stderr only: wherever stdout goes (2>&1) */
};

#define SIMUL_PROCESS_NEW_SESSION 1u /* setsid() in the child (Python's start_new_session): a
                                        session and a process group of its own, no terminal */
#define SIMUL_PROCESS_NEW_PGROUP 2u  /* a process group of its own (Python's process_group=0) */
#define SIMUL_PROCESS_KEEP_FDS 4u    /* the child inherits every fd not marked close-on-exec */

/* The value of simul_process_opts.umask that gives the child umask `mask` (0..0777). A plain
 * number there is -EINVAL: 0 must keep meaning "inherit", and 022 alone would be ambiguous. */
#define SIMUL_PROCESS_UMASK(mask) ((int)(0x10000 | (mask)))

/* The default output limit of simul_process_communicate (per pipe). */
#define SIMUL_PROCESS_OUTPUT_LIMIT (64u * 1024u * 1024u)

typedef struct simul_process_opts {
    const char *const *argv; /* exec: program and arguments, NULL-terminated; a program without
                                '/' is looked up in PATH (env's PATH if env is given, else this
                                process's). shell: must be NULL. */
    const char *const *env;  /* "NAME=value" strings, NULL-terminated; NULL = this environment */
    const char *cwd;         /* the child's working directory; NULL = this process's */
    int stdin_mode, stdout_mode, stderr_mode; /* enum simul_stdio; 0 = inherit */
    int stdin_fd, stdout_fd, stderr_fd;       /* read for SIMUL_STDIO_FD only */
    unsigned flags;                           /* SIMUL_PROCESS_* */
    /* Python's pass_fds: fds (>= 3, open) that stay open in the child under the same numbers
     * whether or not they are close-on-exec here (only the child's copy loses the flag; this
     * process's fds are not touched). Every other fd above 2 is still closed (below the highest
     * passed one: those open without close-on-exec when the call starts, so one that another
     * thread opens that way meanwhile may reach the child, as with any fork+exec). Read during
     * the call only. */
    const int *pass_fds;
    size_t n_pass_fds;
    /* Python's umask=: 0 (the default) inherits this process's umask; SIMUL_PROCESS_UMASK(m)
     * sets m in the child only. Setting one spawns from a short-lived thread of its own
     * (unshare(CLONE_FS); some 50 us more), so no other thread of this process ever sees m. */
    int umask;
    /* Python's process_group=N with N > 0: the child joins the existing process group N (e.g.
     * the group of a first child started with SIMUL_PROCESS_NEW_PGROUP, to signal a pipeline
     * as one). 0: unset. */
    int join_pgid;
} simul_process_opts;

/* asyncio.create_subprocess_exec: starts opts->argv[0] with opts->argv. Does not suspend (the
 * spawn itself blocks the loop for the ~0.1-1 ms a vfork+exec takes). Returns 0 and *out (the
 * caller closes it with simul_process_close); or, with nothing started and nothing left open: the
 * exec's error (-ENOENT no such program or cwd, -EACCES not executable, -ENOEXEC, -ENOTDIR, ...),
 * -EINVAL (no argv / argv[0], a bad mode or flag, argv given to the shell variant, a pass_fds
 * entry below 3 or n_pass_fds without pass_fds, a umask not made by SIMUL_PROCESS_UMASK,
 * join_pgid < 0 or with NEW_PGROUP / NEW_SESSION), -EBADF (a SIMUL_STDIO_FD or pass_fds fd that
 * is not open), -EPERM (no group join_pgid in this session, or a sandbox refuses the umask
 * thread's unshare(CLONE_FS)), -ENOSYS (pass_fds with a libc older than glibc 2.29, which cannot
 * clear a passed fd's close-on-exec in the child only), -ENXIO (no loop), -EMFILE / -ENOMEM /
 * -EAGAIN. */
int simul_process_exec(const simul_process_opts *opts, simul_process **out);

/* asyncio.create_subprocess_shell: runs `/bin/sh -c cmd` with opts (which may be NULL: all
 * inherited). A command that does not exist is not an error here: the shell exits with 127. */
int simul_process_shell(const char *cmd, const simul_process_opts *opts, simul_process **out);

/* The parent's end of a SIMUL_STDIO_PIPE: a stream (write-only for stdin, read-only for stdout and
 * stderr) owned by the process handle, or NULL if that stdio is not a pipe or the stream was
 * closed. Use it with the simul_stream_* calls; close it with simul_stream_close when done (e.g.
 * stdin, so the child reads EOF) -- the handle knows, and this returns NULL from then on. Streams
 * still open when the handle is closed are closed by simul_process_close. */
simul_stream *simul_process_stdin(const simul_process *p);
simul_stream *simul_process_stdout(const simul_process *p);
simul_stream *simul_process_stderr(const simul_process *p);

/* The child's pid (valid until the handle is closed; after the child is reaped the number may
 * belong to another process: use simul_process_send_signal, not kill(2)). Thread-safe. */
int simul_process_pid(const simul_process *p);

/* Suspends until the child has exited and stores its status in *status (may be NULL), as
 * asyncio's returncode: the exit code 0..255, or -N if signal N killed it. At once if it has
 * exited already. Returns 0; -ECANCELED / -ETIMEDOUT (the child keeps running and is still
 * reaped when it exits: wait again, or close); -ECANCELED also when the handle is closed by
 * another task meanwhile; -EINVAL; -EPERM outside a task. */
int simul_process_wait(simul_process *p, int *status);

/* Does not suspend: 0 and the status (as simul_process_wait) if the child has exited (it reaps it
 * now if it has exited and was not reaped yet), -EAGAIN while it runs, -EINVAL. */
int simul_process_returncode(simul_process *p, int *status);

/* What simul_process_communicate collected: each buffer is malloc'd and NUL-terminated (the
 * count excludes the NUL), NULL when that stdio is not a pipe. Free with
 * simul_process_output_free. */
typedef struct simul_process_output {
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
} simul_process_output;

/* Frees both buffers and zeroes *o (NULL is fine). */
void simul_process_output_free(simul_process_output *o);

/* Suspends. asyncio's communicate: writes input[0..input_len) to stdin, then closes stdin (a
 * child that exits without reading it all is not an error: -EPIPE is ignored), while reading
 * stdout and stderr to their ends at the same time (so neither pipe can fill up and deadlock the
 * child), closes them, and waits for the exit. `limit` bounds what is collected per pipe (0:
 * SIMUL_PROCESS_OUTPUT_LIMIT; SIZE_MAX: none). `out` may be NULL: the output is read and dropped.
 * Returns 0 with *out and *status (may be NULL) filled; on every other return *out holds what was
 * collected so far (free it in every case), and the call leaves:
 *   -ECANCELED / -ETIMEDOUT, -EMSGSIZE (a pipe gave more than limit bytes; *out holds limit + 1 of
 *       them): the child untouched and running (or exited and reaped: check returncode); stdin
 *       closed if all of input was handed to the pipe, else still open (some of input may be
 *       queued in it, still flowing); stdout / stderr open, positioned after what *out holds.
 *       Typically: simul_process_kill, then simul_process_wait.
 *   -EINVAL (input but stdin is not a pipe; p NULL or closed), -EBUSY (another communicate on p,
 *       or another task reading one of the pipes), -EPERM outside a task, -ENOMEM: as above.
 * Pipes already closed by the caller are treated as not pipes. */
int simul_process_communicate(simul_process *p, const void *input, size_t input_len, size_t limit,
                              simul_process_output *out, int *status);

/* Sends signal `sig` (0 checks the child exists). Returns 0; -ESRCH once the child has been
 * reaped (the pid is never signalled after that, so it cannot hit another process); -EINVAL. */
int simul_process_send_signal(simul_process *p, int sig);
/* simul_process_send_signal(p, SIGTERM) / (p, SIGKILL). */
int simul_process_terminate(simul_process *p);
int simul_process_kill(simul_process *p);

/* Sends `sig` to the child's whole process group: the child and everything it started that
 * stayed in the group (a shell's pipelines and background jobs; sh -c 'a & b' killed whole).
 * The child must have been started with SIMUL_PROCESS_NEW_PGROUP or _NEW_SESSION (its group is
 * then its pid) or join_pgid (that group), else -EINVAL: its group would be this process's own.
 * Once the child has been reaped, members it left behind are still reached if the child led the
 * group and the kernel signals groups through pidfds (Linux >= 6.9: exactly that group, never a
 * later one with the same number); otherwise, and when the group is empty, -ESRCH. Returns 0
 * (some member got it); -ESRCH; -EPERM (no member may be signalled by this process); -EINVAL
 * (a bad p or sig). */
int simul_process_send_signal_group(simul_process *p, int sig);

/* Closes the handle (an I/O handle: its pipes and its exit watch; invalid afterwards). Does not
 * suspend. Pipe streams still open are closed: in a task, data still queued for stdin is
 * discarded (drain or close stdin first to deliver it); in a callback it is flushed by a task of
 * its own, as simul_stream_close does there. Tasks inside simul_process_wait / communicate on p
 * get -ECANCELED. A child still running is not killed (unlike simul_procpool_close's workers): it
 * is handed to the reaper thread (see above). NULL is fine. (Its old name simul_process_free
 * works until 1.0: simul/compat.h.) */
void simul_process_close(simul_process *p);

/* ---------------------------------------------------------------------------------------------
 * Process pool: CPU-bound functions in worker processes (concurrent.futures.ProcessPoolExecutor)
 * ------------------------------------------------------------------------------------------- */
/* CPU-bound functions run in worker processes, so heavy work neither holds the loop nor is kept
 * to one core. Workers are forked from the loop's thread (no exec): a function of the program is
 * valid in them as it is, and arguments and results travel as bytes over pipes. A pool belongs to
 * the loop that made it; every function here is for that loop's thread only (none is
 * thread-safe); simul_procpool_call must come from its tasks, simul_procpool_submit may also come
 * from its callbacks.
 *
 * Workers start on demand, one per call while fewer than `workers` exist, and are reused; calls
 * beyond that wait in FIFO order. A worker:
 * - keeps stdin, stdout and stderr and closes every other fd it inherited (a socket the program
 *   closes is really closed: no forked copy keeps the peer from seeing EOF);
 * - runs with every signal unblocked, handlers reset to the default, SIGPIPE ignored (EPIPE
 *   instead) and SIGINT ignored: Ctrl-C reaches the whole process group, and the program
 *   (simul_run cancels main) decides what happens to the calls: closing the pool, or
 *   cancelling them, kills their workers;
 * - dies with the loop's thread (PR_SET_PDEATHSIG) and when its request pipe reaches EOF;
 * - is watched by the loop even while idle (its reply pipe and its pidfd): one that dies idle
 *   (the OOM killer, a kill -9) is reaped at once and replaced on demand, so no call fails for
 *   it and no zombie stays (without pidfd_open, or with SIMUL_NO_PIDFD=1, the pipe's EOF alone
 *   tells, and reaping a killed worker blocks for the moment it takes to die);
 * - leaves by _exit: its stdio buffers are not flushed (fflush or write(2) what it prints);
 *   buffered stdout of the program is flushed before each fork so it is not printed twice;
 * - must not call simul functions (the loop is not there: they fail) nor rely on locks that
 *   other threads of the program may have held at fork time (malloc and stdio are fork-safe).
 * A worker runs on the loop thread's stack (the main thread's: 8 MiB by default), not a task's.
 * The pool reaps every worker it started, each by its pid, never waitpid(-1). */
typedef struct simul_procpool simul_procpool;

/* Runs in a worker process on a copy of the caller's input (in, in_len; in is NULL when in_len
 * is 0). It may malloc a reply into *out with its length in *out_len (both start NULL / 0); the
 * library sends it back and frees it. Its return value is the call's result (>= 0 or a negative
 * errno, by convention). */
typedef int (*simul_proc_fn)(const void *in, size_t in_len, void **out, size_t *out_len);

#define SIMUL_PROCPOOL_MAX_MESSAGE ((size_t)64 << 20) /* default request / reply limit: 64 MiB */

/* Creates a pool of at most `workers` processes (0 = the CPUs this thread may run on) on the
 * current loop. Starts no process yet. The pool counts as an open handle: simul_loop_close
 * returns -EBUSY until simul_procpool_close. Returns 0 and *out; -EINVAL (workers < 0 or > 4096,
 * out NULL); -ENXIO (no loop on this thread); -ENOMEM. */
int simul_procpool_new(int workers, simul_procpool **out);

/* Suspends. Runs fn(in, in_len, ...) in a worker (ProcessPoolExecutor.submit + await): starts
 * one if none is idle and fewer than `workers` exist, else waits for one in FIFO order.
 * Returns 0 with fn's return value in *result, and its reply in *out (malloc'd in the caller's
 * process: free it; NULL when the reply is empty) and *out_len. result, out and out_len may be
 * NULL (the reply is then dropped). `in` is only read during the call.
 * Errors (*out is NULL and *out_len 0 on every one):
 * -EOWNERDEAD  the worker died during the call (a signal, _exit, exit): *result gets -SIGNUM
 *              for a signal (-SIGSEGV, -SIGABRT, ...), or the exit status (as asyncio's
 *              returncode), or 255 if someone else reaped it. The pool starts a fresh
 *              worker for the next call; the other calls go on. Only the call whose request
 *              the worker had begun to read gets this: a worker found dead before it read any
 *              byte of the request (every byte written still sits in the request pipe:
 *              FIONREAD on the pool's end equals what was written, or the first write failed
 *              with EPIPE) costs nothing, and the call is given once to another worker; a
 *              second such death in a row fails it with -EOWNERDEAD.
 * -ECANCELED / -ETIMEDOUT  the caller was cancelled or its deadline passed: if the call was
 *              still waiting for a worker, fn never runs; if fn was running (or its request or
 *              reply was on the way), its worker is killed (SIGKILL) and reaped before the call
 *              returns, so a runaway fn cannot hold a core: a deadline scope bounds any call.
 *              Once the whole reply is read, completion wins (0). -ECANCELED also when the pool
 *              is closed meanwhile.
 * -EMSGSIZE    in_len is above the pool's request limit (nothing ran), or fn's reply was above
 *              the reply limit (fn ran: *result holds its return value; the reply was dropped).
 * -EAGAIN      fork failed (process limit): nothing ran. -ENOMEM: nothing ran, or the reply
 *              could not be stored (the worker is then replaced). -EPROTO: the worker wrote a
 *              malformed reply (fn wrote over the worker's memory or its pipe): it is replaced.
 * -EINVAL (pool or fn NULL, in NULL with in_len > 0, a pool of another loop), -EPERM outside a
 * task. */
int simul_procpool_call(simul_procpool *pool, simul_proc_fn fn, const void *in, size_t in_len,
                        void **out, size_t *out_len, int *result);

/* A submitted call (concurrent.futures.Future of ProcessPoolExecutor.submit). It carries a
 * simul_future rather than being one: freeing a bare future tells nobody, so dropping it could
 * not cancel the call; freeing the job does. */
typedef struct simul_procpool_job simul_procpool_job;

/* Does not suspend; callable from a task or a callback of the pool's loop. Queues
 * fn(in, in_len, ...) exactly as simul_procpool_call does (same FIFO, same workers; `in` is
 * copied, so the caller's buffer is free at once) and returns 0 with *out, a job the caller
 * owns and frees with simul_procpool_job_free. Its future (simul_procpool_job_future) completes
 * with the status simul_procpool_call would return (0, -EOWNERDEAD, -EMSGSIZE, -ECANCELED when
 * the pool is closed, ...) and the job as value; simul_procpool_job_result gives the rest.
 * Cancelling the future (simul_future_cancel) cancels the call as a cancelled
 * simul_procpool_call: still queued, fn never runs; running, its worker is killed (SIGKILL) and
 * reaped by the pool. Returns -EINVAL (pool or fn or out NULL, in NULL with in_len > 0, a closed
 * pool or one of another loop), -EMSGSIZE (in_len above the request limit), -ENOMEM. */
int simul_procpool_submit(simul_procpool *pool, simul_proc_fn fn, const void *in, size_t in_len,
                          simul_procpool_job **out);

/* The job's future: await it, add done callbacks. Owned by the job (do not free it: it goes with
 * simul_procpool_job_free). */
simul_future *simul_procpool_job_future(simul_procpool_job *job);

/* Non-suspending: the outcome of a finished job. Returns its status (as simul_procpool_call:
 * 0 or a negative errno) with fn's return value (or the dead worker's status) in *result where
 * simul_procpool_call would give one; on 0 the reply: *out (malloc'd: the caller frees it; NULL
 * when empty) and *out_len. The reply moves to the first caller that asks for it (out non-NULL);
 * later calls get *out NULL. -EINPROGRESS while the job is pending; -EINVAL for NULL. A job
 * whose future was cancelled reports -ECANCELED, even if its reply arrived meanwhile. */
int simul_procpool_job_result(simul_procpool_job *job, void **out, size_t *out_len, int *result);

/* Frees a job at any time, with its future (tasks awaiting it get -ECANCELED), its input copy
 * and a reply nobody took. A pending job is cancelled first: queued, fn never runs; running,
 * its worker is killed (SIGKILL) and the pool reaps it (soon after, from the loop). Works after
 * simul_procpool_close. NULL is fine. */
void simul_procpool_job_free(simul_procpool_job *job);

/* Sets the largest request (in_len) and reply (*out_len) in bytes; 0 restores
 * SIMUL_PROCPOOL_MAX_MESSAGE. Applies to calls made afterwards. Returns 0 or -EINVAL. */
int simul_procpool_set_limits(simul_procpool *pool, size_t max_request, size_t max_reply);

/* ProcessPoolExecutor's max_tasks_per_child: a worker exits by itself once it has sent the reply
 * of this many calls (the pool reaps it) and a fresh one is started on demand; bounds what a
 * leaking fn can hold. 0 (the default): unlimited. Counts the calls workers already served;
 * applies from the next call each worker finishes. Returns 0, or -EINVAL (negative, pool NULL or
 * closed). */
int simul_procpool_set_max_calls(simul_procpool *pool, long max_calls_per_worker);

/* The maximum number of workers, and how many worker processes exist now (idle or busy). */
int simul_procpool_size(const simul_procpool *pool);
int simul_procpool_workers(const simul_procpool *pool);

/* Closes the pool (shutdown(cancel_futures=True) without waiting for running functions): calls
 * waiting for a worker and calls whose fn is running return -ECANCELED (pending jobs complete
 * with -ECANCELED, and stay the caller's to free); every worker is killed
 * (SIGKILL) and reaped, and every pipe closed, before this returns. Does not suspend (works
 * outside a task). The handle is invalid afterwards; the memory goes once the last call inside
 * has returned. Returns 0, or -EINVAL for NULL. */
int simul_procpool_close(simul_procpool *pool);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_PROCESS_H */
