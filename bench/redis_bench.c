/* redis_bench — GET/SET throughput of libsimul-redis against a running redis-server, in the two
 * shapes bench/run_redis.sh compares with redis-benchmark:
 *   c50       50 tasks, each on its own connection (redis-benchmark -c 50: 50 clients, one
 *             command in flight each)
 *   autopipe  1,000 tasks on ONE connection: the connection pipelines what they issue in a loop
 *             pass into one write (redis-benchmark -P 16 batches 16 commands per client)
 *
 *   redis_bench MODE HOST PORT OPS [TASKS]
 *
 * Each task alternates SET key:<task> <3-byte value> and GET of it (redis-benchmark's default
 * value size) until OPS commands are done in all. Prints ops=, seconds=, ops_per_sec=, writes=
 * (stream writes that carried them) and errors= (must be 0; exit 1 otherwise). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul.h>
#include <simul/redis.h>

typedef struct bench {
    const char *mode, *host, *port;
    long ops, tasks;
    long left; /* commands still to issue */
    long errors;
    simul_redis_conn **conns;
    long nconns;
} bench;

typedef struct worker {
    bench *b;
    simul_redis_conn *c;
    long id;
} worker;

static int worker_main(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    char key[32];
    snprintf(key, sizeof key, "key:%ld", w->id);
    for (long i = 0; b->left > 0; i++) {
        b->left--;
        simul_redis_reply *r = NULL;
        int rc = (i & 1) ? simul_redis_command(w->c, &r, "GET %s", key)
                         : simul_redis_command(w->c, &r, "SET %s %s", key, "xxx");
        simul_redis_reply_free(r);
        if (rc < 0)
            b->errors++;
    }
    return 0;
}

static int main_task(void *arg)
{
    bench *b = arg;
    bool own = strcmp(b->mode, "c50") == 0;
    b->nconns = own ? b->tasks : 1;
    b->conns = calloc((size_t)b->nconns, sizeof *b->conns);
    simul_redis_opts o = {.host = b->host, .port = b->port, .protocol = 2};
    for (long i = 0; i < b->nconns; i++) {
        int rc = simul_redis_connect(&o, &b->conns[i]);
        if (rc < 0) {
            fprintf(stderr, "redis_bench: connect: %s\n", simul_strerror(rc));
            return 1;
        }
    }
    worker *w = calloc((size_t)b->tasks, sizeof *w);
    simul_task **t = calloc((size_t)b->tasks, sizeof *t);
    b->left = b->ops;
    double t0 = simul_now();
    for (long i = 0; i < b->tasks; i++) {
        w[i] = (worker){.b = b, .c = b->conns[own ? i : 0], .id = i};
        if (simul_task_spawn(&t[i], worker_main, &w[i], NULL) < 0)
            return 1;
    }
    simul_gather(t, (size_t)b->tasks, NULL);
    double dt = simul_now() - t0;
    unsigned long long writes = 0;
    for (long i = 0; i < b->nconns; i++) {
        simul_redis_stats st;
        simul_redis_get_stats(b->conns[i], &st);
        writes += st.writes;
        simul_redis_close(b->conns[i]);
    }
    printf("ops=%ld\nseconds=%.4f\nops_per_sec=%.0f\nwrites=%llu\nerrors=%ld\n", b->ops, dt,
           dt > 0 ? (double)b->ops / dt : 0.0, writes, b->errors);
    free(w);
    free(t);
    free(b->conns);
    return b->errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[1], "c50") != 0 && strcmp(argv[1], "autopipe") != 0)) {
        fprintf(stderr, "usage: %s c50|autopipe HOST PORT OPS [TASKS]\n", argv[0]);
        return 2;
    }
    bench b = {.mode = argv[1], .host = argv[2], .port = argv[3], .ops = atol(argv[4])};
    b.tasks = argc > 5 ? atol(argv[5]) : (strcmp(b.mode, "c50") == 0 ? 50 : 1000);
    if (b.ops < 1 || b.tasks < 1)
        return 2;
    int rc = simul_run(main_task, &b);
    return rc < 0 ? 1 : rc;
}
