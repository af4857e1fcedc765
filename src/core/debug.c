/* debug.c — what debug mode reports: tasks that hold the loop, failures nobody collected,
 * tasks still alive when the loop closes; and the library's own assertion failures. */
#include <stdlib.h>
#include <string.h>

#include "loop.h"

bool simul__debug_env(void)
{
    const char *v = getenv("SIMUL_DEBUG");
    return v && *v && strcmp(v, "0") != 0;
}

void simul__debug_slow(simul_loop *loop, simul_task *t, int64_t ran_ns)
{
    fprintf(stderr,
            "simul: task '%s' held the loop for %.1f ms without suspending (threshold %.1f ms)\n",
            t->name, (double)ran_ns / 1e6, (double)loop->slow_ns / 1e6);
}

void simul__debug_failed_unjoined(simul_task *t, const char *why)
{
    fprintf(stderr, "simul: task '%s' %s: it failed with %s (%s)\n", t->name, why,
            simul_errname(t->result), simul_strerror(t->result));
}

void simul__debug_survivors(simul_loop *loop)
{
    if (loop->handles)
        fprintf(stderr, "simul: the loop cannot close: %zu I/O handle(s) (servers, transports, "
                        "streams) still open\n", loop->handles);
    if (!loop->live)
        return;
    fprintf(stderr, "simul: the loop cannot close: %zu task(s) still alive:", loop->live);
    int shown = 0;
    for (simul_task *t = loop->all; t && shown < 20; t = t->all_next) {
        if (t->state == SIMUL__TASK_DONE)
            continue;
        fprintf(stderr, " '%s'", t->name);
        shown++;
    }
    fprintf(stderr, loop->live > 20 ? " ...\n" : "\n");
}

void simul__assert_fail(const char *what, const char *file, int line)
{
    simul_loop *loop = simul__loop();
    const char *task = loop && loop->head.current ? loop->head.current->name : "(no task)";
    fprintf(stderr, "simul: internal assertion failed: %s at %s:%d in task '%s'\n", what, file,
            line, task);
    abort();
}

void simul__debug_outside_task(simul_loop *loop, const char *call)
{
    (void)loop;
    fprintf(stderr, "simul: %s() called outside a task (from a callback or the loop's thread); "
                    "it returns -EPERM\n", call);
}

void simul__debug_stuck(simul_loop *loop)
{
    fprintf(stderr, "simul: the loop is blocking with %zu suspended task(s) and no timer, fd or "
                    "pending callback that could wake them (deadlock?); only another thread "
                    "calling simul_loop_call_soon_threadsafe can\n", loop->live);
}
