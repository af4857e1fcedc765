/* child.h — what subprocesses and the process pool share about a child of this process: a pidfd
 * to watch it, a reap that cannot touch a reused pid, one decoding of its exit, and signals that
 * reach it and only it. The idea: once a pidfd exists, every act on the child goes through it,
 * so a child reaped behind our back (waitpid(-1) elsewhere, SIGCHLD ignored) is an error, never
 * another process that got its number. No loop state here: the reaper thread uses it too. */
#ifndef SIMUL_PROCESS_CHILD_H
#define SIMUL_PROCESS_CHILD_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

/* The status of a child whose exit nobody can learn any more: reaped by someone else, or by the
 * kernel itself when SIGCHLD is SIG_IGN. 255, as asyncio reports an "unknown child": it stays in
 * the 0..255 / -SIGNUM range every returncode is documented with, where a caller that prints or
 * compares it expects it. Both simul_process_wait's status and a dead pool worker's result use
 * it. */
#define SIMUL__CHILD_UNKNOWN 255

/* Whether pidfds are off for this process: SIMUL_NO_PIDFD=1 in the environment (read once), or
 * the kernel or a sandbox refused one (ENOSYS, EPERM: not asked again). */
bool simul__child_no_pidfd(void);

/* A pidfd for the child pid (close-on-exec), or -1: pidfds are off, or this one failed. */
int simul__child_pidfd_open(pid_t pid);

/* A child's exit as asyncio's returncode: the exit code 0..255, or -N if signal N ended it. */
int simul__child_status(const siginfo_t *si);

/* Reaps the child if it has exited, never waiting: 1 with *status set, 0 while it runs. With a
 * pidfd it reaps through it (P_PIDFD; by pid before Linux 5.4). An error means nobody can reap it
 * any more: 1 with SIMUL__CHILD_UNKNOWN, so no caller retries forever. */
int simul__child_try_reap(pid_t pid, int pidfd, int *status);

/* As simul__child_try_reap, but waits for the exit (a child known to be dying: killed, or told
 * to exit). Returns its status. */
int simul__child_reap(pid_t pid, int pidfd);

/* Sends sig to the unreaped child: through its pidfd if it has one (exact even if the child was
 * reaped elsewhere: -ESRCH then), else by pid. 0 or a negative errno. */
int simul__child_signal(pid_t pid, int pidfd, int sig);

/* Sends sig to the process group pgid led (or joined) by our child. While the child is unreaped
 * the number is held and kill(-pgid) is exact; after the reap only the leader's pidfd names the
 * group (Linux 6.9 group signals); without it, -ESRCH. */
int simul__child_signal_group(pid_t pgid, bool child_unreaped, int leader_pidfd, int sig);

#endif
