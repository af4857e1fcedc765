/* bounded_fetch.c — fetches URLs concurrently, at most --jobs at a time, each fetch under its own
 * timeout and the whole batch under one deadline (asyncio: a TaskGroup under asyncio.timeout, a
 * Semaphore, and an aiohttp session with a per-request ClientTimeout). The idea: one absolute
 * deadline for the batch, a deadline scope on it in every job, so every wait inside (the
 * semaphore, connect, the head, the body) ends with -ETIMEDOUT at the same instant; the session's
 * pool never gets a half-read connection back (a cut fetch closes its own).
 *
 *   bounded_fetch [--jobs N] [--timeout S] [--deadline S] [--ca FILE] URL...   (4, 10 s, 30 s)
 *
 * Prints one line per URL in the order given: "fetch I: 200, N bytes", "fetch I: timed out
 * (its own timeout)", "fetch I: cut by the batch deadline", or "fetch I: failed: <reason>"; then
 * "done: A ok, B failed, C timed out". Exits 0 if every fetch got a 2xx answer. */
#include <simul.h>
#include <simul/http.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_cli.h"

static const char *progname = "bounded_fetch";
static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--jobs N] [--timeout S] [--deadline S] [--ca FILE] URL...\n"
            "  Fetches every URL, N at a time (default 4), each within --timeout seconds (10)\n"
            "  and all within --deadline seconds (30).\n",
            progname);
}

typedef struct job {
    const char *url;
    simul_http_session *session;
    simul_semaphore *slots;
    int64_t deadline_ns; /* the batch's, absolute */
    double timeout;      /* this fetch's own */
    int rc;              /* 0, -ETIMEDOUT, or the error */
    bool batch_cut;      /* the batch deadline, not its own timeout, ended it */
    int status;
    size_t bytes;
    char why[256];
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
    if (rc < 0) {
        j->batch_cut = rc == -ETIMEDOUT;
        return report(j, rc);
    }
    held = j->slots; /* given back on every path out */
    /* The request's own timeout covers connect, head and body (streamed below, so a large body
     * is counted, not held); the batch scope above bounds it too, whichever comes first. */
    simul_http_request_opts o = {.why = j->why, .whylen = sizeof j->why, .stream = true,
                                 .timeout = j->timeout};
    simul_http_client_response *r;
    int64_t started = simul_now_ns();
    rc = simul_http_session_request(j->session, "GET", j->url, &o, &r);
    if (rc == 0) {
        j->status = simul_http_client_response_status(r);
        char buf[16384];
        long k;
        while ((k = simul_http_client_response_read(r, buf, sizeof buf)) > 0)
            j->bytes += (size_t)k;
        rc = k < 0 ? (int)k : 0;
        simul_http_client_response_close(r); /* pooled only if read to its end */
    }
    if (rc == -ETIMEDOUT)
        j->batch_cut = simul_now_ns() >= j->deadline_ns &&
                       (double)(j->deadline_ns - started) / 1e9 < j->timeout;
    return report(j, rc);
}

typedef struct batch {
    size_t jobs;
    double timeout, deadline;
    const char *ca;
    job *list;
    size_t n;
} batch;

static int main_task(void *arg)
{
    batch *b = arg;
    simul_http_session_opts so = {.ca_file = b->ca};
    simul_http_session *session;
    int rc = simul_http_session_new(&so, &session);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot make the session: %s\n", progname, simul_strerror(rc));
        return rc;
    }
    simul_semaphore *slots;
    if ((rc = simul_semaphore_new(&slots, (unsigned)b->jobs)) < 0) {
        simul_http_session_close(session);
        return rc;
    }
    int64_t deadline_ns = simul_now_ns() + (int64_t)(b->deadline * 1e9);
    simul_group *g;
    if ((rc = simul_group_new(&g)) < 0) {
        simul_semaphore_free(slots);
        simul_http_session_close(session);
        return rc;
    }
    for (size_t i = 0; i < b->n; i++) {
        job *j = &b->list[i];
        j->session = session;
        j->slots = slots;
        j->deadline_ns = deadline_ns;
        j->timeout = b->timeout;
        if (simul_group_spawn(g, run_job, j, NULL) < 0)
            j->rc = -ENOMEM;
    }
    int first = 0;
    simul_group_join(g, &first); /* the jobs report through their records (and return 0) */
    simul_semaphore_free(slots);
    simul_http_session_close(session);
    return 0;
}

int main(int argc, char **argv)
{
    batch b = {.jobs = 4, .timeout = 10, .deadline = 30};
    size_t n = 0; /* the URLs are gathered at the front of argv */
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        if ((v = option_value(arg, "--jobs", &i, argc, argv))) {
            if (!parse_count(v, &b.jobs) || b.jobs == 0 || b.jobs > 10000)
                usage_error("--jobs takes 1..10000");
        } else if ((v = option_value(arg, "--timeout", &i, argc, argv))) {
            if (!parse_number(v, 0.001, 1e6, &b.timeout))
                usage_error("--timeout takes seconds");
        } else if ((v = option_value(arg, "--deadline", &i, argc, argv))) {
            if (!parse_number(v, 0.001, 1e6, &b.deadline))
                usage_error("--deadline takes seconds");
        } else if ((v = option_value(arg, "--ca", &i, argc, argv))) {
            b.ca = v;
        } else if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            print_usage(stdout);
            return 0;
        } else if (arg[0] == '-') {
            usage_error("unknown option %s", arg);
        } else {
            argv[n++] = argv[i];
        }
    }
    if (!n)
        usage_error("no URL");
    b.n = n;
    b.list = calloc(n, sizeof *b.list);
    if (!b.list)
        return 1;
    for (size_t k = 0; k < n; k++)
        b.list[k].url = argv[k];
    int rc = simul_run(main_task, &b);
    if (rc < 0) {
        free(b.list);
        return 1;
    }
    size_t ok = 0, failed = 0, late = 0;
    for (size_t k = 0; k < n; k++) {
        job *j = &b.list[k];
        if (j->rc == -ETIMEDOUT) {
            printf("fetch %zu: %s\n", k + 1,
                   j->batch_cut ? "cut by the batch deadline" : "timed out (its own timeout)");
            late++;
        } else if (j->rc < 0) {
            printf("fetch %zu: failed: %s\n", k + 1, j->why[0] ? j->why : simul_strerror(j->rc));
            failed++;
        } else {
            printf("fetch %zu: %d, %zu bytes\n", k + 1, j->status, j->bytes);
            j->status / 100 == 2 ? ok++ : failed++;
        }
    }
    printf("done: %zu ok, %zu failed, %zu timed out\n", ok, failed, late);
    free(b.list);
    return failed || late ? 1 : 0;
}
