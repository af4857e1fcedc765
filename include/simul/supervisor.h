/* simul/supervisor.h — many processes, one service: a master that runs N worker processes on
 * shared listening sockets, restarts the ones that die, reloads them gracefully and stops them
 * within a deadline (gunicorn's arbiter, nginx's master process, systemd socket activation).
 * Part of the simul API: include <simul.h> (the umbrella), or this header alone. */
#ifndef SIMUL_SUPERVISOR_H
#define SIMUL_SUPERVISOR_H

#include <stdbool.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------------------------------------
 * The model
 *
 * The master owns the listening sockets for its whole life and runs on a simul loop: it makes
 * them (one shared socket, or with SIMUL_SUPERVISOR_REUSEPORT one SO_REUSEPORT socket per worker
 * slot), or takes those systemd passed (LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES), and starts each
 * worker by exec (by default this very program again, /proc/self/exe with the same argv): a
 * fresh process with its own loop, no state copied from the master, and a new binary on disk is
 * picked up by the next reload. A worker inherits its slot's sockets and the write end of a
 * readiness pipe (both named in its environment, read by simul_worker_sockets and
 * simul_worker_notify_ready), serves, and says READY=1 when it accepts. Because the master keeps
 * every socket open, no connection waiting in an accept queue is lost when a worker exits: the
 * next worker of the slot (reuseport) or any other worker (shared) accepts it.
 *
 * - A worker that dies is reported (its exit status, or the signal that killed it) and started
 *   again in its slot: at once the first time, then after a back-off that doubles from
 *   backoff_min up to backoff_max while it keeps dying; a worker that was ready and stayed up
 *   for backoff_reset seconds clears the count. A worker not ready within ready_timeout is
 *   killed and counts as a death.
 * - Reload (SIGHUP, or simul_supervisor_reload): a new generation of N workers is started and
 *   the master waits until every one of them is READY; only then is each old worker sent
 *   retire_signal (it stops accepting and finishes what it has) and given stop_timeout seconds
 *   before SIGKILL. If a new worker dies or is not ready in time, the reload fails: the new ones
 *   are retired and the old generation goes on serving.
 * - Stop (SIGTERM or SIGINT, or simul_supervisor_stop): every worker is sent stop_signal; those
 *   still alive after stop_timeout get SIGKILL; every worker is reaped before the stop returns.
 *   A second SIGTERM/SIGINT during the stop, or SIGQUIT, kills the workers at once.
 * - With reload_batch N, a reload goes N slots at a time (each batch ready, its old workers
 *   retired and gone, then the next).
 * - With watchdog_timeout, a ready worker must send WATCHDOG=1 (simul_worker_watchdog_start) at
 *   least that often, or it is killed (its loop is stuck) and started again.
 * - A worker of the first generation that exits before it was ever ready makes
 *   simul_supervisor_wait_ready fail (-ECHILD): the ready-made main then stops (exit 1).
 * - Workers die with the master (PR_SET_PDEATHSIG: SIGTERM) when it is killed itself.
 *
 * The worker side tells a retire from a stop by the signal: a behind-a-balancer server retires
 * by closing its listener at once (the others accept), but stops by failing its readiness check
 * (/readyz) first and accepting a little longer, so the balancer stops sending before it goes.
 * ------------------------------------------------------------------------------------------- */
typedef struct simul_supervisor simul_supervisor;

/* What happened, for logs and metrics (simul_supervisor_opts.on_event). */
typedef enum simul_supervisor_event_type {
    SIMUL_SUPERVISOR_SPAWNED = 1,   /* a worker was started (pid, slot, generation) */
    SIMUL_SUPERVISOR_READY,         /* it said READY=1 */
    SIMUL_SUPERVISOR_EXITED,        /* it exited: status (0..255, or -SIGNUM), expected or not */
    SIMUL_SUPERVISOR_RESTART,       /* an unexpected exit: started again after `delay` seconds */
    SIMUL_SUPERVISOR_NOT_READY,     /* not ready within ready_timeout: killed */
    SIMUL_SUPERVISOR_KILLED,        /* still draining after stop_timeout: SIGKILL sent */
    SIMUL_SUPERVISOR_RELOADING,     /* a reload began (generation: the new one) */
    SIMUL_SUPERVISOR_RELOADED,      /* every new worker is ready; the old ones are retiring */
    SIMUL_SUPERVISOR_RELOAD_FAILED, /* a new worker died or was not ready: the old ones stay */
    SIMUL_SUPERVISOR_STOPPING,      /* a stop began */
    SIMUL_SUPERVISOR_STOPPED,       /* every worker is reaped */
    SIMUL_SUPERVISOR_SPAWN_FAILED,  /* starting a worker failed (status: the negative errno) */
    SIMUL_SUPERVISOR_WATCHDOG,      /* no WATCHDOG=1 within watchdog_timeout: killed (SIGKILL) */
} simul_supervisor_event_type;

typedef struct simul_supervisor_event {
    simul_supervisor_event_type type;
    int slot;            /* 0 .. workers-1; -1 for the supervisor's own events */
    unsigned generation; /* 1 at start, +1 per reload */
    int pid;             /* the worker's; 0 for the supervisor's own events */
    int status;          /* EXITED: 0..255 or -SIGNUM; SPAWN_FAILED: -errno */
    bool expected;       /* EXITED: the master had asked it to go (retire or stop) */
    double delay;        /* RESTART: seconds before the new start */
} simul_supervisor_event;

/* Runs on the master's loop (must not suspend). */
typedef void (*simul_supervisor_event_cb)(const simul_supervisor_event *ev, void *arg);

/* One line describing ev into buf (at most n bytes, NUL-terminated), as the default log writes
 * it ("worker 2 pid=4242 gen=1 killed by signal 9 (SIGKILL); restarting in 0.0 s"). Returns
 * what snprintf returns. */
int simul_supervisor_event_format(const simul_supervisor_event *ev, char *buf, size_t n);

#define SIMUL_SUPERVISOR_REUSEPORT 1u     /* one SO_REUSEPORT socket per slot (see the guide) */
#define SIMUL_SUPERVISOR_NO_LISTEN_FDS 2u /* ignore systemd's LISTEN_FDS even if meant for us */

typedef struct simul_supervisor_opts {
    int workers;      /* worker processes; 0 = the CPUs this process may run on; <= 1024 */
    const char *host; /* where to listen (simul_tcp_listen: NULL = every interface) */
    const char *port; /* "0" or NULL = a free port (simul_supervisor_port tells it) */
    int backlog;      /* listen backlog; 0 = 511 */
    unsigned flags;   /* SIMUL_SUPERVISOR_* */
    /* Listening sockets to share instead of listening (the caller's; the supervisor dups them).
     * systemd's LISTEN_FDS, when set for this process, take precedence over host/port. */
    const int *socks;
    int n_socks;
    /* The worker program: argv (NULL-terminated); NULL runs this program again
     * (/proc/self/exe) with self_argv. */
    const char *const *argv;
    const char *const *self_argv; /* the arguments for that re-exec (main's argv) */
    double ready_timeout;         /* seconds a new worker has to say READY=1; 0 = 30 */
    double stop_timeout;  /* seconds a retiring or stopping worker has before SIGKILL; 0 = 30 */
    double backoff_min;   /* the second restart in a row waits this; 0 = 0.1 s; both inf: -EINVAL */
    double backoff_max;   /* the back-off stops doubling here; 0 = 10 s */
    double backoff_reset; /* up and ready this long clears the back-off; 0 = 10 s */
    int stop_signal;      /* 0 = SIGTERM */
    int retire_signal;    /* sent to old workers on reload; 0 = stop_signal */
    /* gunicorn's worker timeout, systemd's WatchdogSec: a ready worker that sends no WATCHDOG=1
     * for this many seconds (its loop is stuck: a busy loop, a blocking call) is killed and
     * started again. The worker pings with simul_worker_watchdog_start. 0: off. */
    double watchdog_timeout;
    /* Reload this many slots at a time (gunicorn users' one-by-one reload: a peak of
     * workers + reload_batch processes instead of twice the workers): each batch's new workers
     * are ready before that batch's old ones retire, and those have exited before the next
     * batch starts (a reload takes that much longer). 0 = every slot at once. */
    int reload_batch;
    simul_supervisor_event_cb on_event; /* NULL: each event is logged to stderr (unless quiet) */
    void *event_arg;
    bool quiet;
} simul_supervisor_opts;

/* Listens (or takes the inherited sockets) and starts the workers, from a task (it suspends only
 * to reap what it started when it fails). Returns 0 and *out; -EINVAL (bad options), -ENXIO (no
 * loop), -EPERM (outside a task), the listen
 * error (-EADDRINUSE, ...), or the first spawn's error (-ENOENT, ...): with everything it
 * started stopped and reaped. opts is copied (its strings and arrays are read during the call
 * only). */
int simul_supervisor_start(const simul_supervisor_opts *opts, simul_supervisor **out);

/* Suspends until every worker of the current generation is ready. Returns 0; -ECHILD at start:
 * a worker of the first generation exited before it was ever ready (it is being restarted with
 * back-off, but a program that cannot boot rarely recovers: the ready-made main stops and exits
 * 1, as gunicorn's "Worker failed to boot"); -ECANCELED / -ETIMEDOUT; -ESHUTDOWN once a stop
 * began. */
int simul_supervisor_wait_ready(simul_supervisor *s);

/* Suspends. The graceful reload described above, reload_batch slots at a time. Returns 0 (the
 * new generation serves, the old one is retiring), -ECHILD (a new worker died or was not ready:
 * the slots not yet switched keep the old generation; with batches, those already switched stay
 * on the new one, and simul_supervisor_generation still names the old),
 * -EBUSY (a reload is in progress), -ESHUTDOWN (stopping), -ECANCELED / -ETIMEDOUT (the new
 * workers are retired and the old ones stay). */
int simul_supervisor_reload(simul_supervisor *s);

/* Suspends. Stops every worker: stop_signal, then SIGKILL after `timeout` seconds (< 0: the
 * opts' stop_timeout; 0: SIGKILL at once), and reaps them all; the sockets are closed. Returns 0
 * (all exited in time), 1 (some were killed), -EINVAL. Cancellation does not cut it short (the
 * reaping is shielded). Calling it again returns at once. */
int simul_supervisor_stop(simul_supervisor *s, double timeout);

/* Suspends. Runs the supervisor as a master process does: SIGHUP reloads, SIGTERM and SIGINT
 * stop gracefully (a second one, or SIGQUIT, kills at once), until stopped. Installs handlers
 * for those four signals on the loop for the duration (-EBUSY if another loop owns one).
 * Returns 0 when stopped (1 if a worker had to be killed); if cancelled it stops (gracefully,
 * shielded) and returns -ECANCELED. */
int simul_supervisor_serve_forever(simul_supervisor *s);

/* The TCP port of the first listening socket (after a start on port "0"). */
int simul_supervisor_port(const simul_supervisor *s);
/* The generation now serving every slot (1 at start; a successful reload's after it). */
unsigned simul_supervisor_generation(const simul_supervisor *s);
/* Unexpected worker deaths so far. */
unsigned long simul_supervisor_deaths(const simul_supervisor *s);

typedef struct simul_supervisor_worker {
    int slot;
    unsigned generation;
    int pid;
    bool ready;    /* said READY=1 */
    bool retiring; /* asked to go (retire or stop) */
} simul_supervisor_worker;

/* The live worker processes: up to max into out; returns how many there are. */
int simul_supervisor_workers(const simul_supervisor *s, simul_supervisor_worker *out, int max);

/* Frees a stopped supervisor (stopping it first, without waiting, if needed: workers get
 * SIGKILL and are reaped by the process layer). NULL is fine. */
void simul_supervisor_free(simul_supervisor *s);

/* The ready-made main. In a worker (started by a supervisor: the environment says so) it
 * prepares the process (dies with its master, checks the master is still there) and returns
 * simul_run(worker, arg). Otherwise it is the master: it runs a loop with
 * simul_supervisor_start(opts) and simul_supervisor_serve_forever, logs to stderr, and returns
 * the process's exit code (0 after a clean stop, 1 on a start error or a killed worker).
 * opts->self_argv is taken from argv when NULL. Call it first thing in main:
 *
 *   int main(int argc, char **argv) {
 *       simul_supervisor_opts o = {.workers = 4, .host = "127.0.0.1", .port = "8080"};
 *       return simul_supervisor_main(argc, argv, &o, serve, NULL);
 *   }
 */
int simul_supervisor_main(int argc, char **argv, const simul_supervisor_opts *opts,
                          simul_task_fn worker, void *arg);

/* ---- the worker's side ---------------------------------------------------------------------- */

/* Whether this process is a worker of a simul supervisor. */
bool simul_worker_is_supervised(void);
/* This worker's slot (0 .. workers-1) and generation; -1 / 0 outside a supervisor. */
int simul_worker_slot(void);
unsigned simul_worker_generation(void);

/* The listening sockets this process inherited: from its supervisor, or else systemd's
 * LISTEN_FDS when LISTEN_PID is this process (fds 3, 4, ...). Stores up to max fds; returns how
 * many there are (0: none: listen yourself). Serve them with simul_http_server_opts.socks or
 * simul_stream_server_opts.socks. */
int simul_worker_sockets(int *fds, int max);

/* Tells the supervisor this worker accepts (READY=1): through the supervisor's pipe, or else to
 * systemd's NOTIFY_SOCKET (sd_notify, for a Type=notify service). Returns 1 if told, 0 if there
 * is nobody to tell, or a negative errno. Does not suspend. */
int simul_worker_notify_ready(void);

/* Starts a task on the current loop that sends WATCHDOG=1 to the supervisor three times per its
 * watchdog_timeout, for as long as the loop runs tasks (a stuck loop stops the pings: that is
 * the point). Returns 1 if started, 0 if the supervisor has no watchdog (or there is none),
 * -ENXIO (no loop) / -ENOMEM. The task ends when cancelled (simul_run cancels it at the end). */
int simul_worker_watchdog_start(void);

/* What simul_worker_wait_drain returns. */
#define SIMUL_WORKER_STOP 1   /* the service stops: fail readiness, drain, exit */
#define SIMUL_WORKER_RETIRE 2 /* a reload replaces this worker: stop accepting, finish, exit */

/* Suspends until the supervisor (or anyone) asks this process to go: SIGTERM or SIGINT give
 * SIMUL_WORKER_STOP, the supervisor's retire signal (when it differs) SIMUL_WORKER_RETIRE.
 * -ECANCELED / -ETIMEDOUT; -EBUSY (another loop owns one of the signals). */
int simul_worker_wait_drain(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* SIMUL_SUPERVISOR_H */
