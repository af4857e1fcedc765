/* run.c — simul_run, the asyncio.run of simul: a loop for one main task, then a clean
 * teardown (the leftovers are cancelled and awaited) and a closed loop. Ctrl-C cancels main;
 * a second one kills the process (the first resets SIGINT to its default action). */
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "signal.h"
#include "../core/internal.h"

static void on_sigint(int sig, void *arg)
{
    (void)sig;
    simul_task **main_task = arg;
    if (*main_task) /* NULL once main has been joined: the teardown cancels everything anyway */
        simul_task_cancel(*main_task);
}

/* asyncio.run's rule: only on the main thread, and only if nobody changed SIGINT's handling
 * (not a handler of the program's, nor SIG_IGN as a shell gives background jobs). */
static bool sigint_is_ours_to_take(void)
{
    struct sigaction cur;
    if ((pid_t)syscall(SYS_gettid) != getpid() || sigaction(SIGINT, NULL, &cur) < 0)
        return false;
    return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL;
}

static int cancel_one(simul_task *t, void *arg)
{
    (void)arg;
    simul__task_cancel_internal(t);
    return 0;
}

int simul_run(simul_task_fn main_fn, void *arg)
{
    if (!main_fn)
        return -EINVAL;
    simul_loop *loop;
    int rc = simul_loop_new(&loop);
    if (rc < 0)
        return rc;
    simul_task *t;
    /* Stackful whatever the loop's default: a program's main hands its locals to the tasks it
     * spawns (the compact-task hazard), and one task's stack costs nothing. */
    simul_task_opts opts = {.name = "main", .mode = SIMUL_TASK_STACKFUL};
    rc = simul_task_spawn(&t, main_fn, arg, &opts);
    if (rc < 0) {
        simul_loop_close(loop);
        return rc;
    }
    simul_task *sigint_target = t;
    bool sigint = sigint_is_ours_to_take() &&
                  simul__signal_add(SIGINT, on_sigint, &sigint_target, true) == 0;
    int result = 0;
    rc = simul_loop_run_until_complete(loop, t, &result);
    sigint_target = NULL; /* joined: the handle is gone */
    if (rc == 0)
        rc = result;
    if (simul__loop_live_tasks(loop)) {
        simul_task_foreach(cancel_one, NULL);
        simul__loop_run_until_no_tasks(loop);
    }
    if (sigint)
        simul_remove_signal_handler(SIGINT); /* back to SIG_DFL, which it was */
    /* Handles the program never closed (asyncio.run drops them too): their memory is lost, the
     * loop is not. Debug mode names them. */
    simul__loop_drop_handles(loop);
    int crc = simul_loop_close(loop);
    SIMUL__ASSERT(crc == 0);
    return rc;
}
