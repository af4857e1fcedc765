/* http_hello.c — the benchmark app of libsimul-http: GET / answers "Hello, World!", GET /json a
 * small JSON object. One loop; SIGINT/SIGTERM shut it down gracefully (in-flight requests get
 * up to 5 s). Usage: http_hello [--host H] [--port P] [--threads N]   (port 0 picks one;
 * "listening on" shows it). --threads N: N loops on N threads (0: one per CPU), drained on the
 * signal as the single loop is. --access-log: the combined-format log on stderr. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul.h>
#include <simul/http.h>

static const char *host = "127.0.0.1";
static const char *port = "8080";
static int threads = -1; /* -1: one loop, the main thread's */
static bool access_log;

static int hello(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    return simul_http_response_text(res, 200, "Hello, World!");
}

static int json(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    /* A new object each request, encoded each request (as the TechEmpower JSON test asks);
     * the _nocheck calls skip re-validating constant UTF-8 that is known good. */
    json_t *v = json_object();
    if (!v || json_object_set_new_nocheck(v, "message", json_string_nocheck("Hello, World!")) < 0) {
        json_decref(v);
        return -ENOMEM;
    }
    int rc = simul_http_response_json(res, 200, v);
    json_decref(v);
    return rc;
}

static int drain_threads(void *arg)
{
    return simul_http_threads_shutdown(arg, 5);
}

static int serve(void *arg)
{
    (void)arg;
    simul_http_app *app;
    simul_http_server *srv;
    int rc = simul_http_app_new(&app);
    if (rc == 0) {
        rc = simul_http_route(app, "GET", "/", hello, NULL);
    }
    if (rc == 0) {
        rc = simul_http_route(app, "GET", "/json", json, NULL);
    }
    simul_http_server_opts opts = {.health = true};
    if (access_log) {
        opts.access_log = simul_http_access_log_file;
    }
    const int sigs[] = {SIGINT, SIGTERM};
    if (rc == 0 && threads >= 0) {
        simul_http_threads *ts;
        rc = simul_http_serve_threads(app, host, port, threads, &opts, &ts);
        if (rc < 0) {
            fprintf(stderr, "http_hello: %s:%s: %s\n", host, port, simul_strerror(rc));
            simul_http_app_free(app);
            return 1;
        }
        printf("listening on %s:%d\n", host, simul_http_threads_port(ts));
        fflush(stdout);
        simul_wait_signal(sigs, 2);
        simul_scope shield;
        simul_scope_shield(&shield);
        int drained = 0;
        simul_to_thread(drain_threads, ts, &drained); /* it blocks: off the loop */
        simul_scope_end(&shield);
        simul_http_threads_free(ts);
        simul_http_app_free(app);
        return 0;
    }
    if (rc == 0) {
        rc = simul_http_serve(app, host, port, &opts, &srv);
    }
    if (rc < 0) {
        fprintf(stderr, "http_hello: %s:%s: %s\n", host, port, simul_strerror(rc));
        simul_http_app_free(app);
        return 1;
    }
    printf("listening on %s:%d\n", host, simul_http_server_port(srv));
    fflush(stdout);
    simul_wait_signal(sigs, 2); /* a signal, or -ECANCELED from simul_run's Ctrl-C handling */
    simul_scope shield;
    simul_scope_shield(&shield);
    simul_http_server_shutdown(srv, 5);
    simul_scope_end(&shield);
    simul_http_server_free(srv);
    simul_http_app_free(app);
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = argv[++i];
        } else if (strcmp(argv[i], "--access-log") == 0) {
            access_log = true;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--host H] [--port P] [--threads N] [--access-log]\n", argv[0]);
            return 2;
        }
    }
    return simul_run(serve, NULL) == 0 ? 0 : 1;
}
