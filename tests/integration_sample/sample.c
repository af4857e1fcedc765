/* The sample integration: a few lines on simul's public API only, built and installed by the
 * same function as the real integrations, so tests/install can prove that machinery. */
#include <errno.h>
#include <simul.h>
#include <simul/sample.h>

static int count_one(void *arg)
{
    int rc = simul_yield();
    ++*(int *)arg;
    return rc;
}

int simul_sample_count(int n)
{
    if (n < 0)
        return -EINVAL;
    int count = 0, first_error = 0;
    simul_group *g;
    int rc = simul_group_new(&g);
    if (rc < 0)
        return rc;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = simul_group_spawn(g, count_one, &count, NULL);
    if (rc < 0)
        simul_group_cancel(g);
    int jrc = simul_group_join(g, &first_error);
    return rc < 0 ? rc : jrc < 0 ? jrc : first_error < 0 ? first_error : count;
}
