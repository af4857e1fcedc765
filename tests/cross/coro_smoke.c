/* coro_smoke.c — a self-checking run of the core on another architecture (cross-compiled and
 * run under qemu-user by aarch64.sh): switches, FP state across switches, sleeps, gather,
 * cancellation, deadlines, groups. Prints "coro_smoke: ok" or the first failed check. */
#include <errno.h>
#include <math.h>
#include <simul.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "coro_smoke: FAILED %s at line %d\n", #c, __LINE__);                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int order[8], norder;

static int pinger(void *arg)
{
    /* Callee-saved FP registers must survive switches. */
    volatile double acc = (double)(long)arg;
    for (int i = 0; i < 1000; i++) {
        acc = acc * 1.0000001 + 0.5;
        CHECK(simul_yield() == 0);
    }
    order[norder++ % 8] = (int)(long)arg;
    return acc > 0 ? (int)(long)arg : -1;
}

static int sleeper(void *arg)
{
    return simul_sleep((double)(long)arg / 1000.0) == 0 ? 0 : -1;
}

static int forever(void *arg)
{
    (void)arg;
    int rc = simul_sleep(INFINITY);
    CHECK(rc == -ECANCELED);
    CHECK(simul_yield() == -ECANCELED); /* level-triggered */
    return rc;
}

static int failing(void *arg)
{
    (void)arg;
    return -EIO;
}

static int main_task(void *arg)
{
    (void)arg;
    simul_task *t[3];
    for (long i = 0; i < 3; i++)
        CHECK(simul_task_spawn(&t[i], pinger, (void *)(i + 1), NULL) == 0);
    int res[3];
    CHECK(simul_gather(t, 3, res) == 0);
    CHECK(res[0] == 1 && res[1] == 2 && res[2] == 3);

    double t0 = simul_now();
    for (long i = 0; i < 3; i++)
        CHECK(simul_task_spawn(&t[i], sleeper, (void *)(20 + 10 * i), NULL) == 0);
    CHECK(simul_gather(t, 3, NULL) == 0);
    double el = simul_now() - t0;
    CHECK(el >= 0.039 && el < 1.0);

    simul_task *f;
    CHECK(simul_task_spawn(&f, forever, NULL, NULL) == 0);
    CHECK(simul_yield() == 0);
    CHECK(simul_task_cancel(f) == 0);
    int r;
    CHECK(simul_task_join(f, &r) == 0 && r == -ECANCELED);

    simul_scope sc;
    CHECK(simul_scope_timeout(&sc, 0.02) == 0);
    CHECK(simul_sleep(5) == -ETIMEDOUT);
    CHECK(simul_scope_end(&sc) == 1);

    simul_group *g;
    CHECK(simul_group_new(&g) == 0);
    CHECK(simul_group_spawn(g, forever, NULL, NULL) == 0);
    CHECK(simul_group_spawn(g, failing, NULL, NULL) == 0);
    int first;
    CHECK(simul_group_join(g, &first) == 0 && first == -EIO);
    return 42;
}

int main(void)
{
    CHECK(simul_run(main_task, NULL) == 42);
    puts("coro_smoke: ok");
    return 0;
}
