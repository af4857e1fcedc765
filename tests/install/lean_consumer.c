/* A program on libsimul alone, built against a lean install (tests/install/lean_install_test.sh)
 * through pkg-config and through find_package(simul). Prints "lean consumer ok". */
#include <simul.h>
#include <stdio.h>

static int main_task(void *arg)
{
    (void)arg;
    return simul_sleep(0.001);
}

int main(void)
{
    int rc = simul_run(main_task, NULL);
    if (rc != 0) {
        fprintf(stderr, "lean consumer: %s\n", simul_strerror(rc));
        return 1;
    }
    printf("lean consumer ok\n");
    return 0;
}
