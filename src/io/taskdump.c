/* taskdump.c — the task dump on a signal (simul_loop_set_dump_signal), as Go dumps goroutines on
 * SIGQUIT. The idea: the signal is an ordinary loop signal handler, so the dump
 * (simul_loop_dump_tasks, in core) runs on the loop between two passes, where every task is
 * suspended and its stack can be walked, never inside the process's signal handler. */
#include <signal.h>

#include "../core/internal.h"

static __thread int dump_signo; /* the signal this thread's loop dumps on, 0 if none */

static void on_dump_signal(int sig, void *arg)
{
    (void)sig;
    simul_loop_dump_tasks(arg, 2);
}

int simul_loop_set_dump_signal(simul_loop *loop, int signo)
{
    if (!loop || loop != simul__loop() || signo < -1 || signo >= NSIG)
        return -EINVAL;
    if (signo == -1) {
        if (dump_signo) /* (already gone if an earlier loop closed: nothing to undo then) */
            simul_remove_signal_handler(dump_signo);
        dump_signo = 0;
        return 0;
    }
    if (signo == 0)
        signo = SIGQUIT;
    if (dump_signo && dump_signo != signo)
        simul_remove_signal_handler(dump_signo);
    int rc = simul_add_signal_handler(signo, on_dump_signal, loop);
    dump_signo = rc == 0 ? signo : 0;
    return rc;
}
