/* run.c — simul_run, the asyncio.run of simul: a loop for one main task, then a clean
 * teardown (the leftovers are cancelled and awaited) and a closed loop. */
#include "internal.h"

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
    simul_task_opts opts = {.name = "main"};
    rc = simul_task_spawn(&t, main_fn, arg, &opts);
    if (rc < 0) {
        simul_loop_close(loop);
        return rc;
    }
    int result = 0;
    rc = simul_loop_run_until_complete(loop, t, &result);
    if (rc == 0)
        rc = result;
    if (loop->live) {
        simul_task_foreach(cancel_one, NULL);
        loop->stop_when_no_tasks = true;
        simul_loop_run(loop);
        loop->stop_when_no_tasks = false;
    }
    if (loop->handles) {
        /* Handles the program never closed (asyncio.run drops them too): their memory is lost,
         * the loop is not. Debug mode names them. */
        if (loop->debug)
            simul__debug_survivors(loop);
        loop->handles = 0;
    }
    int crc = simul_loop_close(loop);
    SIMUL__ASSERT(crc == 0);
    return rc;
}
