/* echo_streams.c — the seed's stream echo server (asyncio.start_server): one task per connection
 * that reads, writes the bytes back and drains, until the peer closes.
 *
 *   echo_streams [--host H] [--port P] [--threads N] [--tls-cert FILE --tls-key FILE]
 *                                      (defaults: 127.0.0.1, port 8888; port 0 picks one)
 *
 * Prints "listening on H:P" once connections are accepted (the port the kernel chose, for 0), and
 * runs until SIGINT or SIGTERM, then closes the server and exits 0.
 *
 * --threads N serves the same echo from N threads, each with its own loop and its own listening
 * socket on H:P (SO_REUSEPORT: the kernel spreads the connections); 0 = one per CPU. The main
 * thread only owns the signals: it waits for SIGINT/SIGTERM, stops the threads, and prints how many
 * connections each one took ("thread I: C connections") before exiting. Without the flag, one loop
 * on the main thread serves everything.
 *
 * --tls-cert/--tls-key (built with libsimul-tls): every connection handshakes TLS first (10 s
 * deadline), then echoes the decrypted bytes.
 */
#include <simul.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* The most one read hands over (the stream reads at most its buffer's free space at a time). */
#define CHUNK (16 * 1024)

static const char *host = "127.0.0.1";
static const char *port = "8888";
static int threads = -1; /* --threads N; -1: no worker threads, the main thread's loop serves */
#ifdef SIMUL_EXAMPLE_TLS
#include <simul/tls.h>
static const char *tls_cert, *tls_key;
static simul_tls_config *tls; /* --tls-cert: serve TLS (shared by every thread's loop) */

/* The handshake, in a frame of its own (OpenSSL's stack and the echo's buffer are not live at
 * once), bounded by a deadline so that a client that never finishes it is dropped. */
__attribute__((noinline)) static int tls_handshake(simul_stream *s)
{
    simul_scope deadline;
    simul_scope_timeout(&deadline, 10);
    int rc = simul_tls_accept(s, tls);
    simul_scope_end(&deadline);
    return rc;
}
#endif

static void usage(FILE *to, const char *argv0)
{
    fprintf(to,
            "usage: %s [--host H] [--port P] [--threads N]\n"
            "  An echo server on asyncio-style streams: every connection gets a task that\n"
            "  reads, writes the data back and drains, until the peer closes.\n"
            "  --host H   address to listen on (default 127.0.0.1; \"\" = every interface)\n"
            "  --port P   port (default 8888; 0 picks a free one, printed on startup)\n"
            "  --threads N  serve from N threads, a loop each, all listening on H:P\n"
            "             (SO_REUSEPORT); 0 = one per CPU. Prints each thread's connection\n"
            "             count at exit. Default: one loop on the main thread.\n"
            "  --tls-cert FILE --tls-key FILE  serve TLS with this certificate chain and key\n"
            "  Prints \"listening on H:P\" when ready; stops on SIGINT or SIGTERM.\n",
            argv0);
}

/* The bytes are borrowed from the stream's own buffer (no copy, and no buffer on this task's
 * stack): while a connection is idle its stream gives that buffer back, so 10,000 idle
 * connections cost their records and their tasks' few stack pages (bench/run_idle.sh). */
static int echo_loop(simul_stream *s)
{
    for (;;) {
        const char *data;
        long n = simul_stream_read_borrow(s, CHUNK, &data);
        if (n <= 0)
            break; /* EOF, a reset peer, or cancelled at shutdown */
        /* write tries the socket at once; drain waits only if the peer is not keeping up. */
        if (simul_stream_write(s, data, (size_t)n) < 0 || simul_stream_drain(s) < 0)
            break;
    }
    return 0; /* the stream is closed when the handler returns */
}

static int echo(simul_stream *s, void *arg)
{
    (void)arg;
#ifdef SIMUL_EXAMPLE_TLS
    if (tls && tls_handshake(s) < 0)
        return 0;
#endif
    return echo_loop(s);
}

/* Stops the server on SIGINT or SIGTERM. Waiting for the signals catches them even when the shell
 * that started us in the background made SIGINT ignored (simul_run only takes Ctrl-C over when
 * SIGINT has its default action). */
static int watch_signals(void *arg)
{
    simul_server *srv = arg;
    static const int sigs[] = {SIGINT, SIGTERM};
    int sig = simul_wait_signal(sigs, 2);
    if (sig > 0)
        simul_server_close(srv); /* serve_forever returns */
    return sig == -ECANCELED || sig > 0 ? 0 : sig;
}

static int run(void *arg)
{
    (void)arg;
    simul_server *srv;
    int rc = simul_start_server(host, port, echo, NULL, &srv);
    if (rc < 0) {
        fprintf(stderr, "echo_streams: cannot listen on %s:%s: %s\n", host, port,
                simul_strerror(rc));
        return 1;
    }
    simul_task *watcher;
    if ((rc = simul_task_spawn(&watcher, watch_signals, srv, NULL)) < 0) {
        fprintf(stderr, "echo_streams: %s\n", simul_strerror(rc));
        simul_server_free(srv);
        return 1;
    }
    printf("listening on %s:%d\n", host, simul_server_port(srv));
    fflush(stdout);
    /* 0 once a signal closed the server; -ECANCELED if simul_run's own Ctrl-C handling cancelled
     * us (serve_forever closes the server then). */
    rc = simul_server_serve_forever(srv);
    simul_scope shield;
    simul_scope_shield(&shield);
    simul_task_cancel(watcher);
    simul_task_join(watcher, NULL);
    simul_scope_end(&shield);
    /* Connections still open end when simul_run cancels their tasks. */
    simul_server_free(srv);
    return rc == 0 || rc == -ECANCELED ? 0 : 1;
}

/* --threads N: the main thread's loop only waits for the signals; the worker loops serve. */
static int run_threads(void *arg)
{
    (void)arg;
    simul_threaded_server_opts o = {.host = host, .port = port, .threads = threads, .handler = echo};
    simul_threaded_server *ts;
    int rc = simul_serve_threads(&o, &ts);
    if (rc < 0) {
        fprintf(stderr, "echo_streams: cannot listen on %s:%s with %d thread(s): %s\n", host, port,
                threads, simul_strerror(rc));
        return 1;
    }
    printf("listening on %s:%d\n", host, simul_threaded_server_port(ts));
    fflush(stdout);
    static const int sigs[] = {SIGINT, SIGTERM};
    /* A signal, or -ECANCELED when simul_run's own Ctrl-C handling (SIGINT at its default
     * action) cancelled this task first: stop either way. */
    int sig = simul_wait_signal(sigs, 2);
    simul_threaded_server_stop(ts);
    /* Shielded: a cancelled task's wait would return at once, and free would then block this
     * loop instead; the handlers were cancelled by stop, so this ends. */
    simul_scope shield;
    simul_scope_shield(&shield);
    rc = simul_threaded_server_wait(ts);
    simul_scope_end(&shield);
    int n = simul_threaded_server_threads(ts);
    for (int i = 0; i < n; i++)
        printf("thread %d: %lld connections\n", i, (long long)simul_threaded_server_accepted(ts, i));
    fflush(stdout);
    simul_threaded_server_free(ts);
    return rc == 0 && (sig > 0 || sig == -ECANCELED) ? 0 : 1;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, argv[0]);
            return 0;
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            long n = strtol(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || n < 0 || n > SIMUL_THREADED_SERVER_MAX_THREADS) {
                fprintf(stderr, "echo_streams: --threads wants 0 .. %d, not '%s'\n",
                        SIMUL_THREADED_SERVER_MAX_THREADS, argv[i]);
                return 2;
            }
            threads = (int)n;
#ifdef SIMUL_EXAMPLE_TLS
        } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc) {
            tls_cert = argv[++i];
        } else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
            tls_key = argv[++i];
#endif
        } else {
            fprintf(stderr, "echo_streams: bad argument '%s'\n", argv[i]);
            usage(stderr, argv[0]);
            return 2;
        }
    }
    raise_nofile();
#ifdef SIMUL_EXAMPLE_TLS
    char why[256];
    if (tls_cert && (simul_tls_config_new_server(&tls) < 0 ||
                     simul_tls_config_set_cert(tls, tls_cert, tls_key, why, sizeof why) < 0)) {
        fprintf(stderr, "echo_streams: --tls-cert %s: %s\n", tls_cert, tls ? why : "no memory");
        return 1;
    }
#endif
    int rc = simul_run(threads < 0 ? run : run_threads, NULL);
#ifdef SIMUL_EXAMPLE_TLS
    simul_tls_config_free(tls);
#endif
    return rc;
}
