/* http_get.c — fetches URLs concurrently with libsimul-http's client (one session, its pool
 * shared by every fetch) and prints, for each URL in the order given, its status, body bytes and
 * time; a failed fetch prints the reason (a certificate from an unknown CA says so).
 *
 *   http_get [--parallel N] [--ca FILE] [--insecure] [--timeout S] [--body] URL...
 *
 * Output (stdout), one line per URL: "200 1234 bytes 0.012 s http://..." or
 * "error: <reason> http://...". Exits 0 when every fetch got a response (any status), 1 when a
 * fetch failed, 2 on usage.
 */
#include <simul.h>
#include <simul/http.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_cli.h"

static const char *progname = "http_get";

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--parallel N] [--ca FILE] [--insecure] [--timeout S] [--body] URL...\n"
            "  Fetches the URLs, N at a time (default 4), over one pooled session, and prints\n"
            "  status, body bytes and time for each.\n"
            "  --ca FILE    trust the CAs in FILE (PEM) instead of the system store\n"
            "  --insecure   DANGER: do not verify certificates\n"
            "  --timeout S  each fetch's whole timeout in seconds (default 30)\n"
            "  --body       print each body after its line\n",
            progname);
}

typedef struct fetch {
    const char *url;
    int rc, status;
    size_t bytes;
    double seconds;
    char why[512];
    char *body;
} fetch;

typedef struct job {
    simul_http_session *s;
    fetch *f;
    size_t n, next;
    double timeout;
    bool body;
} job;

/* A worker: takes the next URL until none is left (so at most --parallel fetches run). */
static int worker(void *arg)
{
    job *j = arg;
    while (j->next < j->n) {
        fetch *f = &j->f[j->next++];
        int64_t t0 = simul_now_ns();
        simul_http_request_opts o = {.why = f->why, .whylen = sizeof f->why, .stream = true,
                                     .timeout = j->timeout};
        simul_http_client_response *r;
        f->rc = simul_http_session_request(j->s, "GET", f->url, &o, &r);
        if (f->rc == 0) {
            f->status = simul_http_client_response_status(r);
            /* Streamed, so a large body is counted without being held. */
            char buf[16384];
            long k;
            size_t cap = 0;
            while ((k = simul_http_client_response_read(r, buf, sizeof buf)) > 0) {
                if (j->body) {
                    if (f->bytes + (size_t)k + 1 > cap) {
                        cap = (f->bytes + (size_t)k + 1) * 2;
                        f->body = realloc(f->body, cap);
                    }
                    memcpy(f->body + f->bytes, buf, (size_t)k);
                    f->body[f->bytes + (size_t)k] = '\0';
                }
                f->bytes += (size_t)k;
            }
            if (k < 0) {
                f->rc = (int)k;
                snprintf(f->why, sizeof f->why, "body: %s", simul_strerror((int)k));
            }
            simul_http_client_response_close(r);
        }
        f->seconds = (double)(simul_now_ns() - t0) / 1e9;
    }
    return 0;
}

typedef struct config {
    size_t parallel;
    double timeout;
    const char *ca;
    bool insecure, body;
    fetch *f;
    size_t n;
} config;

static int run(void *arg)
{
    config *c = arg;
    fetch *f = c->f;
    size_t n = c->n, parallel = c->parallel;
    simul_http_session_opts so = {.ca_file = c->ca, .insecure_skip_verify = c->insecure,
                                  .max_per_host = (uint32_t)parallel,
                                  .max_total = (uint32_t)(parallel > 100 ? parallel : 100)};
    simul_http_session *s;
    int rc = simul_http_session_new(&so, &s);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot make the session: %s", progname, simul_strerror(rc));
        if (c->ca)
            fprintf(stderr, " (--ca %s)", c->ca);
        fputc('\n', stderr);
        return 1;
    }
    job j = {.s = s, .f = f, .n = n, .timeout = c->timeout, .body = c->body};
    size_t nw = parallel < n ? parallel : n;
    simul_task **t = calloc(nw, sizeof *t);
    int *res = calloc(nw, sizeof *res);
    size_t spawned = 0;
    for (size_t i = 0; i < nw; i++)
        if (simul_task_spawn(&t[spawned], worker, &j, NULL) == 0)
            spawned++;
    simul_gather(t, spawned, res);
    int status = spawned ? 0 : 1;
    for (size_t i = 0; i < n; i++) {
        if (f[i].rc == 0 && f[i].url) {
            printf("%d %zu bytes %.3f s %s\n", f[i].status, f[i].bytes, f[i].seconds, f[i].url);
            if (c->body && f[i].body)
                printf("%s\n", f[i].body);
        } else {
            printf("error: %s (%s) %s\n", f[i].why[0] ? f[i].why : simul_strerror(f[i].rc),
                   simul_errname(f[i].rc), f[i].url);
            status = 1;
        }
        free(f[i].body);
    }
    fflush(stdout);
    simul_http_session_close(s);
    free(res);
    free(t);
    return status;
}

int main(int argc, char **argv)
{
    /* The arguments are read before anything is allocated: a usage error just exits. */
    config c = {.parallel = 4, .timeout = 30};
    size_t n = 0; /* the URLs are gathered at the front of argv (its slots are ours to reuse) */
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        if ((v = option_value(arg, "--parallel", &i, argc, argv))) {
            if (!parse_count(v, &c.parallel) || c.parallel == 0 || c.parallel > 10000)
                usage_error("--parallel takes 1..10000");
        } else if ((v = option_value(arg, "--ca", &i, argc, argv))) {
            c.ca = v;
        } else if ((v = option_value(arg, "--timeout", &i, argc, argv))) {
            if (!parse_number(v, 0.001, 1e6, &c.timeout))
                usage_error("--timeout takes seconds");
        } else if (!strcmp(arg, "--insecure")) {
            c.insecure = true;
        } else if (!strcmp(arg, "--body")) {
            c.body = true;
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
    c.f = calloc(n, sizeof *c.f);
    for (size_t i = 0; i < n; i++)
        c.f[i].url = argv[i];
    c.n = n;
    int rc = simul_run(run, &c);
    free(c.f);
    return rc;
}
