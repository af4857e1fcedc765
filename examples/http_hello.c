/* http_hello.c — the benchmark app of libsimul-http: GET / answers "Hello, World!", GET /json a
 * small JSON object. One loop; SIGINT/SIGTERM shut it down gracefully (in-flight requests get
 * up to 5 s). Usage: http_hello [--host H] [--port P] [--threads N]   (port 0 picks one;
 * "listening on" shows it). --threads N: N loops on N threads (0: one per CPU), stopped on the
 * signal (their handlers cancelled). */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simul.h>
#include <simul/http.h>

static const char *host = "127.0.0.1";
static const char *port = "8080";
static int threads = -1; /* -1: one loop, the main thread's */

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
    json_t *v = json_pack("{s:s}", "message", "Hello, World!");
    if (!v) {
        return -ENOMEM;
    }
    int rc = simul_http_response_json(res, 200, v);
    json_decref(v);
    return rc;
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
    const int sigs[] = {SIGINT, SIGTERM};
    if (rc == 0 && threads >= 0) {
        simul_threaded_server *ts;
        rc = simul_http_serve_threads(app, host, port, threads, &opts, &ts);
        if (rc < 0) {
            fprintf(stderr, "http_hello: %s:%s: %s\n", host, port, simul_strerror(rc));
            simul_http_app_free(app);
            return 1;
        }
        printf("listening on %s:%d\n", host, simul_threaded_server_port(ts));
        fflush(stdout);
        simul_wait_signal(sigs, 2);
        simul_scope shield;
        simul_scope_shield(&shield);
        simul_threaded_server_stop(ts);
        simul_threaded_server_wait(ts);
        simul_scope_end(&shield);
        simul_threaded_server_free(ts);
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
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--host H] [--port P] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    return simul_run(serve, NULL) == 0 ? 0 : 1;
}
