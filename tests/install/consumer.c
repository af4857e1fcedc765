/* A program built against an installed simul (tests/install/install_test.sh): the library and
 * the sample integration, through pkg-config or CMake's find_package. Prints "consumer ok". */
#include <simul.h>
#include <simul/sample.h>
#include <stdio.h>

static int main_task(void *arg)
{
    (void)arg;
    int n = simul_sample_count(3);
    if (n != 3) {
        fprintf(stderr, "consumer: simul_sample_count(3) = %d (%s)\n", n, simul_strerror(n));
        return 1;
    }
    return simul_sleep(0.001);
}

int main(void)
{
    int rc = simul_run(main_task, NULL);
    if (rc != 0) {
        fprintf(stderr, "consumer: failed (%d)\n", rc);
        return 1;
    }
    printf("consumer ok\n");
    return 0;
}
