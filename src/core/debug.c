/* debug.c — what debug mode reports: tasks that hold the loop, failures nobody collected,
 * tasks still alive when the loop closes; and the library's own assertion failures. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
    const char *task = loop && loop->current ? loop->current->name : "(no task)";
    fprintf(stderr, "simul: internal assertion failed: %s at %s:%d in task '%s'\n", what, file,
            line, task);
    abort();
}
