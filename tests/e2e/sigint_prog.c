/* sigint_prog.c — the program tests/e2e/sigint_test.sh interrupts: simul_run with a main task
 * that prints "ready", sleeps until cancelled, then cleans up in a shield (sleeping
 * SIGINT_CLEANUP_SECONDS, default 0.2) and prints "cleanup done".
 * Exit status: 1 with "result=ECANCELED" on stdout when simul_run returned -ECANCELED (one
 * SIGINT), 0 if main finished on its own (never, unless cancelled), killed by SIGINT otherwise. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "simul.h"

static int main_task(void *arg)
{
    double cleanup = *(double *)arg;
    printf("ready\n");
    fflush(stdout);
    int rc = simul_sleep(INFINITY);
    printf("cancelled: %s\n", simul_errname(rc));
    fflush(stdout);
    simul_scope shield;
    simul_scope_shield(&shield);
    simul_sleep(cleanup); /* a second SIGINT now kills the process mid-clean-up */
    simul_scope_end(&shield);
    printf("cleanup done\n");
    fflush(stdout);
    return rc;
}

int main(void)
{
    const char *env = getenv("SIGINT_CLEANUP_SECONDS");
    double cleanup = env ? atof(env) : 0.2;
    int rc = simul_run(main_task, &cleanup);
    printf("result=%s\n", rc < 0 ? simul_errname(rc) : "0");
    return rc < 0 ? 1 : 0;
}
