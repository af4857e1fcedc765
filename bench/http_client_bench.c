/* http_client_bench.c — requests per second of libsimul-http's client: C concurrent tasks, each
 * a loop of GETs through one session (its pool: C keep-alive connections) for S seconds after a
 * warm-up; bodies read whole. The figure the same as bench/ref's aiohttp and Go clients and wrk
 * report, from the same URL in the same run (bench/run_http_client.sh).
 *
 *   http_client_bench URL CONCURRENCY SECONDS      prints simul_req_per_s=..., simul_errors=...
 */
#include <simul.h>
#include <simul/http.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct shared {
    simul_http_session *s;
    const char *url;
    int64_t start, stop; /* counting window (ns) */
    long count, errors;
} shared;

static int worker(void *arg)
{
    shared *sh = arg;
    for (;;) {
        int64_t now = simul_now_ns();
        if (now >= sh->stop)
            return 0;
        simul_http_client_response *r;
        int rc = simul_http_session_get(sh->s, sh->url, &r);
        if (rc == 0) {
            if (simul_http_client_response_status(r) != 200)
                rc = -1;
            simul_http_client_response_close(r);
        }
        now = simul_now_ns();
        if (now >= sh->start && now < sh->stop) {
            if (rc == 0)
                sh->count++;
            else
                sh->errors++;
        }
    }
}

typedef struct args {
    const char *url;
    int conc;
    double secs;
} args;

static int run(void *arg)
{
    args *a = arg;
    shared sh = {.url = a->url};
    simul_http_session_opts o = {.max_per_host = (uint32_t)a->conc,
                                 .max_total = (uint32_t)a->conc,
                                 .max_idle_per_host = (uint32_t)a->conc};
    if (simul_http_session_new(&o, &sh.s) < 0)
        return 1;
    int64_t t0 = simul_now_ns();
    sh.start = t0 + (int64_t)(a->secs * 0.2e9); /* a fifth of the time to warm up */
    sh.stop = sh.start + (int64_t)(a->secs * 1e9);
    simul_task **t = calloc((size_t)a->conc, sizeof *t);
    int *res = calloc((size_t)a->conc, sizeof *res);
    for (int i = 0; i < a->conc; i++)
        simul_task_spawn(&t[i], worker, &sh, NULL);
    simul_gather(t, (size_t)a->conc, res);
    printf("simul_req_per_s=%.0f\nsimul_errors=%ld\n", (double)sh.count / a->secs, sh.errors);
    simul_http_session_close(sh.s);
    free(t);
    free(res);
    return sh.count > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s URL CONCURRENCY SECONDS\n", argv[0]);
        return 2;
    }
    args a = {argv[1], atoi(argv[2]), atof(argv[3])};
    if (a.conc <= 0 || a.secs <= 0)
        return 2;
    return simul_run(run, &a);
}
