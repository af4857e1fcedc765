/* http_hello.c — the benchmark app of libsimul-http: GET / answers "Hello, World!", GET /json a
 * small JSON object. One loop; SIGINT/SIGTERM shut it down gracefully (in-flight requests get
 * up to 5 s). Usage: http_hello [--host H] [--port P] [--threads N]   (port 0 picks one;
 * "listening on" shows it). --threads N: N loops on N threads (0: one per CPU), drained on the
 * signal as the single loop is. --access-log: the combined-format log on stderr.
 * --workers N: a supervisor (simul/supervisor.h) runs N worker processes on one shared socket
 * (--reuseport: one SO_REUSEPORT socket per worker; sockets systemd passes in LISTEN_FDS are
 * used when present); SIGHUP reloads them, SIGTERM stops them. A worker drains on the signal:
 * a stop fails /readyz at once and keeps serving --drain-delay seconds (so a balancer's health
 * check sees it first; a second SIGTERM to the worker cuts the delay short), then stops
 * accepting, closes idle keep-alive connections and lets requests in flight finish; a retire
 * (reload) stops accepting at once. --watchdog S: a worker
 * whose loop is stuck for S seconds is killed and restarted; --reload-batch N: SIGHUP replaces N
 * workers at a time. GET /slow?ms=N answers after N ms (logging its start on stderr) and GET
 * /pid with the worker's pid (for the tests). */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <simul.h>
#include <simul/http.h>

static const char *host = "127.0.0.1";
static const char *port = "8080";
static int threads = -1; /* -1: one loop, the main thread's */
static bool access_log;
static int workers = -1; /* -1: no supervisor */
static bool reuseport;
static double drain_delay = 0;   /* s: /readyz fails while still serving, on a stop */
static double keepalive = 75;    /* s: above HAProxy's and nginx's idle timeouts to the backend */
static double stop_timeout = 25; /* s: in-flight requests' time at a drain; the master's is more */
static double watchdog = 0;      /* s: a worker whose loop is stuck this long is killed; 0 off */
static int reload_batch = 0;     /* workers replaced at a time on SIGHUP; 0: all at once */

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

/* ---- a worker under the supervisor: serve the inherited sockets, drain on the signal ---- */

static bool draining;        /* /readyz fails */
static int drain_kind;       /* SIMUL_WORKER_STOP / _RETIRE once asked */
static simul_event *drain_ev;

static int readyz(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    return simul_http_response_text(res, draining ? 503 : 200, draining ? "draining\n" : "ok\n");
}

static int healthz(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    return simul_http_response_text(res, 200, "ok\n");
}

static int pid_route(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    char b[32];
    snprintf(b, sizeof b, "%d\n", (int)getpid());
    return simul_http_response_text(res, 200, b);
}

static int slow(simul_http_request *req, simul_http_response *res, void *arg)
{
    (void)arg;
    const char *ms = simul_http_request_query(req, "ms");
    long n = ms ? strtol(ms, NULL, 10) : 100;
    if (n < 0 || n > 60000) {
        return simul_http_response_text(res, 400, "ms: 0..60000\n");
    }
    /* The tests wait for this line to know the request is in flight (state, not time). */
    fprintf(stderr, "http_hello: worker %d: /slow started\n", (int)getpid());
    int rc = simul_sleep((double)n / 1000.0);
    if (rc < 0) {
        return rc;
    }
    return simul_http_response_text(res, 200, "slept\n");
}

/* Keeps the drain signals caught from the start, so one that comes before the main task waits
 * is not lost (nor kills the worker with requests in flight). */
static void on_drain_signal(int sig, void *arg)
{
    (void)arg;
    int retire = simul_worker_is_supervised() ? atoi(getenv("SIMUL_SUPERVISOR_RETIRE_SIGNAL")
                                                         ? getenv("SIMUL_SUPERVISOR_RETIRE_SIGNAL")
                                                         : "0")
                                              : 0;
    int kind = sig == retire && sig != SIGTERM && sig != SIGINT ? SIMUL_WORKER_RETIRE
                                                                 : SIMUL_WORKER_STOP;
    if (!drain_kind || kind == SIMUL_WORKER_STOP) {
        drain_kind = kind; /* a stop overrides a retire: the whole service goes */
    }
    simul_event_set(drain_ev);
}

static int worker_serve(void *arg)
{
    (void)arg;
    int fds[16];
    int n = simul_worker_sockets(fds, 16);
    if (n <= 0 || n > 16) {
        fprintf(stderr, "http_hello: worker without sockets\n");
        return 1;
    }
    int rc = simul_event_new(&drain_ev);
    const int sigs[] = {SIGTERM, SIGINT, SIGUSR2};
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        rc = simul_add_signal_handler(sigs[i], on_drain_signal, NULL);
    }
    simul_http_app *app = NULL;
    simul_http_server *srv = NULL;
    if (rc == 0) rc = simul_http_app_new(&app);
    if (rc == 0) rc = simul_http_route(app, "GET", "/", hello, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/json", json, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/readyz", readyz, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/healthz", healthz, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/pid", pid_route, NULL);
    if (rc == 0) rc = simul_http_route(app, "GET", "/slow", slow, NULL);
    simul_http_server_opts opts = {.keepalive_timeout = keepalive, .socks = fds, .n_socks = n};
    if (rc == 0) rc = simul_http_serve(app, NULL, NULL, &opts, &srv);
    if (rc == 0) rc = simul_worker_watchdog_start() < 0 ? -ENOMEM : 0;
    if (rc == 0) rc = simul_worker_notify_ready() < 0 ? -EPIPE : 0;
    if (rc < 0) {
        fprintf(stderr, "http_hello: worker %d: %s\n", (int)getpid(), simul_strerror(rc));
        if (srv) {
            simul_http_server_shutdown(srv, 0);
            simul_http_server_free(srv);
        }
        simul_http_app_free(app);
        return 1;
    }
    simul_event_wait(drain_ev);
    simul_scope shield;
    simul_scope_shield(&shield);
    if (drain_kind == SIMUL_WORKER_STOP) {
        /* The service goes: fail readiness first and keep serving while the balancer's checks
         * notice (its inter * fall, with a margin), then stop accepting. A second stop signal
         * to the worker ends the delay early (an operator in a hurry; the tests, which hold the
         * window open as long as they check it). */
        draining = true;
        if (drain_delay > 0) {
            simul_event_clear(drain_ev);
            simul_scope delay;
            simul_scope_timeout(&delay, drain_delay);
            simul_event_wait(drain_ev);
            simul_scope_end(&delay);
        }
    }
    draining = true;
    int r = simul_http_server_shutdown(srv, stop_timeout);
    simul_scope_end(&shield);
    simul_http_server_free(srv);
    simul_http_app_free(app);
    for (size_t i = 0; i < 3; i++) {
        simul_remove_signal_handler(sigs[i]);
    }
    simul_event_free(drain_ev);
    return r == 0 ? 0 : 3;
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
    simul_http_server_opts opts = {.health = true, .keepalive_timeout = keepalive};
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
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            workers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--reuseport") == 0) {
            reuseport = true;
        } else if (strcmp(argv[i], "--drain-delay") == 0 && i + 1 < argc) {
            drain_delay = atof(argv[++i]);
        } else if (strcmp(argv[i], "--keepalive") == 0 && i + 1 < argc) {
            keepalive = atof(argv[++i]);
        } else if (strcmp(argv[i], "--stop-timeout") == 0 && i + 1 < argc) {
            stop_timeout = atof(argv[++i]);
        } else if (strcmp(argv[i], "--watchdog") == 0 && i + 1 < argc) {
            watchdog = atof(argv[++i]);
        } else if (strcmp(argv[i], "--reload-batch") == 0 && i + 1 < argc) {
            reload_batch = atoi(argv[++i]);
        } else {
            fprintf(stderr,
                    "usage: %s [--host H] [--port P] [--threads N | --workers N [--reuseport]\n"
                    "       [--drain-delay S] [--stop-timeout S] [--watchdog S] [--reload-batch N]]\n"
                    "       [--keepalive S] [--access-log]\n",
                    argv[0]);
            return 2;
        }
    }
    if (workers >= 0 || simul_worker_is_supervised()) {
        /* The master waits a little longer than a worker's own drain before SIGKILL. */
        simul_supervisor_opts so = {.workers = workers, .host = host, .port = port,
                                    .flags = reuseport ? SIMUL_SUPERVISOR_REUSEPORT : 0,
                                    .stop_timeout = drain_delay + stop_timeout + 5,
                                    .retire_signal = SIGUSR2, .watchdog_timeout = watchdog,
                                    .reload_batch = reload_batch};
        return simul_supervisor_main(argc, argv, &so, worker_serve, NULL);
    }
    return simul_run(serve, NULL) == 0 ? 0 : 1;
}
