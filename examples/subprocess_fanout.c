/* subprocess_fanout.c — runs shell commands concurrently, at most --jobs at a time, all within
 * one batch deadline (asyncio: a TaskGroup under asyncio.timeout, a Semaphore, and
 * create_subprocess_shell + communicate). The idea: one absolute deadline for the batch, a
 * deadline scope on it in every job, so every wait inside (the semaphore, communicate) ends with
 * -ETIMEDOUT at the same instant; each job then kills its child and reaps it in a shield, so
 * nothing is left behind.
 *
 *   subprocess_fanout [--jobs N] [--deadline SECONDS] -- CMD [CMD ...]   (4 jobs, 10 s)
 *
 * Prints one line per command in the order given: "job I: exit S, N bytes: <first line>",
 * "job I: timed out, killed", or "job I: cannot start: <why>"; then "done: A ok, B failed, C
 * timed out". Exits 0 if every command exited 0. */
#include <simul.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_cli.h"

static const char *progname = "subprocess_fanout";
static void print_usage(FILE *out)
{
    fprintf(out, "usage: %s [--jobs N] [--deadline SECONDS] -- CMD [CMD ...]\n", progname);
}

typedef struct job {
    const char *cmd;
    simul_semaphore *slots;
    int64_t deadline_ns; /* the batch's, absolute */
    int rc;        /* 0, -ETIMEDOUT, or the start error */
    int status;    /* asyncio's returncode when rc == 0: the exit code, or -N for signal N */
    char line[80]; /* the first line of its output */
    size_t bytes;
} job;

/* A job reports through its record and returns 0: in a task group a child that fails cancels
 * its siblings (TaskGroup's rule), and one URL's or command's failure must not cut the others. */
static int report(job *j, int rc)
{
    j->rc = rc;
    return 0;
}

static int run_job(void *arg)
{
    job *j = arg;
    simul_scope dl SIMUL_SCOPE_AUTO = SIMUL_SCOPE_INIT;
    simul_scope_deadline_ns(&dl, j->deadline_ns);
    simul_semaphore *held SIMUL_SEMAPHORE_AUTO = NULL;
    int rc = simul_semaphore_acquire(j->slots);
    if (rc < 0)
        return report(j, rc);
    held = j->slots; /* given back on every path out */
    /* A process group of its own: the kill reaches what the shell started too. */
    simul_process_opts o = {.stdout_mode = SIMUL_STDIO_PIPE, .stdin_mode = SIMUL_STDIO_DEVNULL,
                            .flags = SIMUL_PROCESS_NEW_PGROUP};
    simul_process *p;
    if ((rc = simul_process_shell(j->cmd, &o, &p)) < 0)
        return report(j, rc);
    simul_process_output out = {0};
    rc = simul_process_communicate(p, NULL, 0, 0, &out, &j->status);
    if (rc < 0) {
        /* Deadline (or cancel): kill it and reap it, shielded, so no child outlives the batch. */
        simul_scope sh SIMUL_SCOPE_AUTO = SIMUL_SCOPE_INIT;
        simul_scope_shield(&sh);
        simul_process_send_signal_group(p, SIGKILL);
        simul_process_wait(p, &j->status);
    }
    j->bytes = out.out_len;
    if (out.out) {
        size_t n = strcspn(out.out, "\n");
        n = n < out.out_len ? n : out.out_len;
        snprintf(j->line, sizeof j->line, "%.*s", (int)n, out.out);
    }
    simul_process_output_free(&out);
    simul_process_close(p);
    return report(j, rc);
}

typedef struct batch {
    size_t jobs;
    double deadline;
    job *list;
    size_t n;
} batch;

static int main_task(void *arg)
{
    batch *b = arg;
    simul_semaphore *slots;
    int rc = simul_semaphore_new(&slots, (unsigned)b->jobs);
    if (rc < 0)
        return rc;
    int64_t deadline_ns = simul_now_ns() + (int64_t)(b->deadline * 1e9);
    simul_group *g;
    if ((rc = simul_group_new(&g)) < 0)
        return rc;
    for (size_t i = 0; i < b->n; i++) {
        b->list[i].slots = slots;
        b->list[i].deadline_ns = deadline_ns;
        if (simul_group_spawn(g, run_job, &b->list[i], NULL) < 0)
            b->list[i].rc = -ENOMEM;
    }
    int first = 0;
    simul_group_join(g, &first); /* the jobs report through their records (and return 0) */
    simul_semaphore_free(slots);
    return 0;
}

int main(int argc, char **argv)
{
    batch b = {.jobs = 4, .deadline = 10.0};
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            if (!parse_count(argv[++i], &b.jobs) || b.jobs == 0)
                usage_error("--jobs wants a positive number, not '%s'", argv[i]);
        } else if (strcmp(argv[i], "--deadline") == 0 && i + 1 < argc) {
            char *end;
            b.deadline = strtod(argv[++i], &end);
            if (*end || !(b.deadline > 0))
                usage_error("--deadline wants seconds, not '%s'", argv[i]);
        } else {
            usage_error("unknown argument '%s'", argv[i]);
        }
    }
    if (i >= argc - 1)
        usage_error("no command after --");
    b.n = (size_t)(argc - i - 1);
    b.list = calloc(b.n, sizeof *b.list);
    if (!b.list)
        return 1;
    for (size_t k = 0; k < b.n; k++)
        b.list[k].cmd = argv[i + 1 + (int)k];
    int rc = simul_run(main_task, &b);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", progname, simul_strerror(rc));
        return 1;
    }
    size_t ok = 0, failed = 0, late = 0;
    for (size_t k = 0; k < b.n; k++) {
        job *j = &b.list[k];
        if (j->rc == -ETIMEDOUT) {
            printf("job %zu: timed out, killed\n", k + 1);
            late++;
        } else if (j->rc < 0) {
            printf("job %zu: cannot start: %s\n", k + 1, simul_strerror(j->rc));
            failed++;
        } else {
            int code = j->status >= 0 ? j->status : 128 - j->status; /* a shell's numbering */
            printf("job %zu: exit %d, %zu bytes: %s\n", k + 1, code, j->bytes, j->line);
            code == 0 ? ok++ : failed++;
        }
    }
    printf("done: %zu ok, %zu failed, %zu timed out\n", ok, failed, late);
    free(b.list);
    return failed || late ? 1 : 0;
}
