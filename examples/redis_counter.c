/* redis_counter — N tasks INCR one key concurrently over ONE Redis connection, then print the
 * key's final value and the rate. The point: no pool, no lock; the connection pipelines what the
 * tasks issue in each loop pass into one write and hands every reply to its own task.
 *
 *   redis_counter [--url redis://HOST:PORT[/DB] | --url unix:///PATH] [--tasks N] [--incr M]
 *                 [--key K]
 *
 * The key is deleted first, so the final value is tasks x incr. Prints total=, expected=,
 * commands=, writes= (stream writes that carried them), commands_per_sec=. Exit 0 when total is
 * what was expected, 1 otherwise or on an error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul.h>
#include <simul/redis.h>

#include "example_cli.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--url redis://HOST:PORT[/DB] | --url unix:///PATH] [--tasks N]"
            " [--incr M] [--key K]\n",
            progname);
}

typedef struct config {
    simul_redis_opts opts;
    char host[256], port[16], path[1024];
    size_t tasks, incr;
    const char *key;
    simul_redis_conn *conn;
    int first_error;
} config;

static void parse_url(config *cfg, const char *url)
{
    if (strncmp(url, "unix://", 7) == 0) {
        snprintf(cfg->path, sizeof cfg->path, "%s", url + 7);
        cfg->opts.unix_path = cfg->path;
        return;
    }
    if (strncmp(url, "redis://", 8) != 0)
        usage_error("--url must start with redis:// or unix://");
    const char *h = url + 8, *colon = strrchr(h, ':'), *slash = strchr(h, '/');
    if (!colon || (slash && slash < colon))
        usage_error("--url redis://HOST:PORT[/DB]");
    snprintf(cfg->host, sizeof cfg->host, "%.*s", (int)(colon - h), h);
    snprintf(cfg->port, sizeof cfg->port, "%.*s",
             (int)(slash ? (size_t)(slash - colon - 1) : strlen(colon + 1)), colon + 1);
    if (slash && slash[1]) {
        size_t db;
        if (!parse_count(slash + 1, &db) || db > 1000000)
            usage_error("bad database number in --url");
        cfg->opts.db = (int)db;
    }
    cfg->opts.host = cfg->host;
    cfg->opts.port = cfg->port;
}

static int incr_task(void *arg)
{
    config *cfg = arg;
    for (size_t i = 0; i < cfg->incr; i++) {
        simul_redis_reply *r = NULL;
        int rc = simul_redis_command(cfg->conn, &r, "INCR %s", cfg->key);
        simul_redis_reply_free(r);
        if (rc < 0) {
            if (!cfg->first_error)
                cfg->first_error = rc;
            return rc;
        }
    }
    return 0;
}

static int main_task(void *arg)
{
    config *cfg = arg;
    int rc = simul_redis_connect(&cfg->opts, &cfg->conn);
    if (rc < 0) {
        fprintf(stderr, "%s: connect: %s\n", progname, simul_strerror(rc));
        return 1;
    }
    simul_redis_reply *r = NULL;
    rc = simul_redis_command(cfg->conn, &r, "DEL %s", cfg->key);
    simul_redis_reply_free(r);
    simul_redis_stats before, after;
    simul_redis_get_stats(cfg->conn, &before);
    double t0 = simul_now();
    simul_task **tasks = calloc(cfg->tasks, sizeof *tasks);
    size_t spawned = 0;
    for (; rc == 0 && tasks && spawned < cfg->tasks; spawned++)
        rc = simul_task_spawn(&tasks[spawned], incr_task, cfg, NULL);
    if (tasks)
        simul_gather(tasks, spawned, NULL);
    double elapsed = simul_now() - t0;
    simul_redis_get_stats(cfg->conn, &after);
    free(tasks);
    if (rc == 0)
        rc = cfg->first_error;
    long long total = -1;
    if (rc == 0) {
        rc = simul_redis_command(cfg->conn, &r, "GET %s", cfg->key);
        if (rc == 0)
            total = atoll(simul_redis_reply_str(r, NULL) ? simul_redis_reply_str(r, NULL) : "-1");
        simul_redis_reply_free(r);
    }
    simul_redis_close(cfg->conn);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", progname, simul_strerror(rc));
        return 1;
    }
    unsigned long long commands = (unsigned long long)(after.commands - before.commands);
    long long expected = (long long)(cfg->tasks * cfg->incr);
    printf("total=%lld\nexpected=%lld\ncommands=%llu\nwrites=%llu\ncommands_per_sec=%.0f\n", total,
           expected, commands, (unsigned long long)(after.writes - before.writes),
           elapsed > 0 ? (double)commands / elapsed : 0.0);
    return total == expected ? 0 : 1;
}

int main(int argc, char **argv)
{
    progname = argv[0];
    static config cfg = {.tasks = 100, .incr = 100, .key = "redis_counter"};
    cfg.opts.host = "127.0.0.1";
    cfg.opts.port = "6379";
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = option_value(argv[i], "--url", &i, argc, argv))) {
            parse_url(&cfg, v);
        } else if ((v = option_value(argv[i], "--tasks", &i, argc, argv))) {
            if (!parse_count(v, &cfg.tasks) || cfg.tasks < 1 || cfg.tasks > 1000000)
                usage_error("--tasks wants 1..1000000");
        } else if ((v = option_value(argv[i], "--incr", &i, argc, argv))) {
            if (!parse_count(v, &cfg.incr) || cfg.incr > 100000000)
                usage_error("--incr wants 0..100000000");
        } else if ((v = option_value(argv[i], "--key", &i, argc, argv))) {
            cfg.key = v;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return 0;
        } else {
            usage_error("unknown argument '%s'", argv[i]);
        }
    }
    int rc = simul_run(main_task, &cfg);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", progname, simul_strerror(rc));
        return 1;
    }
    return rc;
}
