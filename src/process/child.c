/* child.c — the child-process helper of the process layer (see child.h): pidfd open with its
 * fallback switch, reap, exit decoding, signals. Every function is safe on any thread and keeps
 * no per-child state: the caller holds pid and pidfd, the pidfd making each act exact. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"

#ifndef PIDFD_SIGNAL_PROCESS_GROUP
#define PIDFD_SIGNAL_PROCESS_GROUP (1u << 2) /* Linux 6.9; older kernels say EINVAL */
#endif

static atomic_bool no_pidfd;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
    const char *e = getenv("SIMUL_NO_PIDFD");
    if (e && strcmp(e, "1") == 0)
        atomic_store(&no_pidfd, true);
}

bool simul__child_no_pidfd(void)
{
    pthread_once(&env_once, read_env);
    return atomic_load(&no_pidfd);
}

int simul__child_pidfd_open(pid_t pid)
{
    if (simul__child_no_pidfd())
        return -1;
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0); /* close-on-exec by definition */
    if (fd < 0 && (errno == ENOSYS || errno == EPERM))
        atomic_store(&no_pidfd, true); /* the kernel or a sandbox says no: stop asking */
    return fd;
#else
    (void)pid;
    atomic_store(&no_pidfd, true);
    return -1;
#endif
}

int simul__child_status(const siginfo_t *si)
{
    /* CLD_KILLED and CLD_DUMPED carry the signal; WEXITED reports nothing else. */
    return si->si_code == CLD_EXITED ? si->si_status : -si->si_status;
}

/* One waitid on the child, EINTR retried. */
static int wait_child(pid_t pid, int pidfd, siginfo_t *si, int flags)
{
    int r;
    do {
        memset(si, 0, sizeof *si);
        r = pidfd >= 0 ? waitid((idtype_t)P_PIDFD, (id_t)pidfd, si, WEXITED | flags) : -1;
        if (pidfd < 0 || (r < 0 && errno == EINVAL)) /* no P_PIDFD before Linux 5.4 */
            r = waitid(P_PID, (id_t)pid, si, WEXITED | flags);
    } while (r < 0 && errno == EINTR);
    return r;
}

int simul__child_try_reap(pid_t pid, int pidfd, int *status)
{
    siginfo_t si;
    if (wait_child(pid, pidfd, &si, WNOHANG) < 0) {
        *status = SIMUL__CHILD_UNKNOWN; /* ECHILD: reaped elsewhere, or SIGCHLD ignored */
        return 1;
    }
    if (si.si_pid == 0)
        return 0;
    *status = simul__child_status(&si);
    return 1;
}

int simul__child_reap(pid_t pid, int pidfd)
{
    siginfo_t si;
    if (wait_child(pid, pidfd, &si, 0) < 0)
        return SIMUL__CHILD_UNKNOWN;
    return simul__child_status(&si);
}

int simul__child_signal(pid_t pid, int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0) {
        if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0)
            return 0;
        if (errno != ENOSYS)
            return -errno; /* ESRCH: reaped elsewhere; its pid may be another process's now */
    }
#else
    (void)pidfd;
#endif
    return kill(pid, sig) < 0 ? -errno : 0;
}

int simul__child_signal_group(pid_t pgid, bool child_unreaped, int leader_pidfd, int sig)
{
    /* Unreaped, the child is in the group (or leads it as a zombie): the number is held. */
    if (child_unreaped)
        return kill(-pgid, sig) < 0 ? -errno : 0;
    if (leader_pidfd < 0)
        return -ESRCH;
#ifdef SYS_pidfd_send_signal
    if (syscall(SYS_pidfd_send_signal, leader_pidfd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP) == 0)
        return 0;
    if (errno == EPERM)
        return -EPERM;
#endif
    return -ESRCH; /* an empty group, or a kernel without group signals through pidfds */
}
