/* echo_protocol.c — the seed's callback echo server (asyncio.Protocol + loop.create_server): no
 * task per connection; the loop calls data_received, which writes the bytes straight back.
 *
 *   echo_protocol [--host H] [--port P]     (defaults: 127.0.0.1, port 8888; port 0 picks one)
 *                 [--tls-cert FILE --tls-key FILE]   (TLS, with libsimul-tls: the handshake
 *                                                     runs inside the transport's reads)
 *
 * Prints "listening on H:P" once connections are accepted (the port the kernel chose, for 0), and
 * runs until SIGINT or SIGTERM, then closes the server and its connections and exits 0.
 */
#include <simul.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char *host = "127.0.0.1";
static const char *port = "8888";
#ifdef SIMUL_EXAMPLE_TLS
#include <simul/tls.h>
static const char *tls_cert, *tls_key;
static simul_tls_config *tls;
#endif

/* One per connection: the callbacks get only their context, and they need the transport.
 * Shutdown needs no list of them: simul_server_abort_clients reaches every connection. */
typedef struct conn {
    simul_transport *t;
} conn;

static void usage(FILE *to, const char *argv0)
{
    fprintf(to,
            "usage: %s [--host H] [--port P]\n"
            "  An echo server on asyncio-style protocols: the loop calls data_received for\n"
            "  each connection, which writes the data straight back (no task per connection).\n"
            "  --host H   address to listen on (default 127.0.0.1; \"\" = every interface)\n"
            "  --port P   port (default 8888; 0 picks a free one, printed on startup)\n"
            "  --tls-cert FILE --tls-key FILE  serve TLS (when built with libsimul-tls)\n"
            "  Prints \"listening on H:P\" when ready; stops on SIGINT or SIGTERM.\n",
            argv0);
}

static void echo_made(simul_transport *t, void *ctx)
{
    ((conn *)ctx)->t = t;
#ifdef SIMUL_EXAMPLE_TLS
    if (tls && simul_tls_transport_accept(t, tls) < 0)
        simul_transport_abort(t);
#endif
}

/* The whole echo: the write goes to the socket at once when nothing is queued. */
static void echo_data(void *ctx, const void *data, size_t len)
{
    simul_transport_write(((conn *)ctx)->t, data, len);
}

/* A client that sends without reading fills our write buffer: stop reading it until the buffer
 * drains, so its data waits in the kernel instead of our memory. */
static void echo_pause(void *ctx)
{
    simul_transport_pause_reading(((conn *)ctx)->t);
}

static void echo_resume(void *ctx)
{
    simul_transport_resume_reading(((conn *)ctx)->t);
}

static void echo_lost(void *ctx, int err)
{
    (void)err; /* a reset client is business as usual for an echo server */
    free(ctx);
}

/* eof_received is left NULL: the peer's EOF closes the connection once the echo is flushed. */
static const simul_protocol echo_protocol = {
    .connection_made = echo_made,
    .data_received = echo_data,
    .connection_lost = echo_lost,
    .pause_writing = echo_pause,
    .resume_writing = echo_resume,
};

static int echo_factory(void *arg, const simul_protocol **proto, void **ctx)
{
    (void)arg;
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM; /* this connection is refused; the server goes on */
    *proto = &echo_protocol;
    *ctx = c;
    return 0;
}

/* SIGINT / SIGTERM close the server: serve_forever returns and run() ends the connections. The
 * handler stays until they are all gone, so a second signal during shutdown (a supervisor that
 * signals the whole process group as well as us) is absorbed rather than killing us mid-way. */
static void on_signal(int sig, void *arg)
{
    (void)sig;
    simul_server_close(arg);
}

static int run(void *arg)
{
    (void)arg;
    simul_server *srv;
    int rc = simul_create_server(host, port, echo_factory, NULL, &srv);
    if (rc < 0) {
        fprintf(stderr, "echo_protocol: cannot listen on %s:%s: %s\n", host, port,
                simul_strerror(rc));
        return 1;
    }
    if ((rc = simul_add_signal_handler(SIGINT, on_signal, srv)) < 0 ||
        (rc = simul_add_signal_handler(SIGTERM, on_signal, srv)) < 0) {
        fprintf(stderr, "echo_protocol: cannot catch SIGINT/SIGTERM: %s\n", simul_strerror(rc));
        simul_remove_signal_handler(SIGINT);
        simul_server_free(srv);
        return 1;
    }
    printf("listening on %s:%d\n", host, simul_server_port(srv));
    fflush(stdout);
    rc = simul_server_serve_forever(srv);
    /* The server no longer accepts; end the connections it still has, then wait for their
     * connection_lost (wait_closed counts them). */
    simul_server_abort_clients(srv);
    int wrc = simul_server_wait_closed(srv);
    simul_server_free(srv);
    simul_remove_signal_handler(SIGINT);
    simul_remove_signal_handler(SIGTERM);
    return rc < 0 || wrc < 0 ? 1 : 0;
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
#ifdef SIMUL_EXAMPLE_TLS
        } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc) {
            tls_cert = argv[++i];
        } else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
            tls_key = argv[++i];
#endif
        } else {
            fprintf(stderr, "echo_protocol: bad argument '%s'\n", argv[i]);
            usage(stderr, argv[0]);
            return 2;
        }
    }
    raise_nofile();
#ifdef SIMUL_EXAMPLE_TLS
    char why[256] = "no memory";
    if (tls_cert && (simul_tls_config_new_server(&tls) < 0 ||
                     simul_tls_config_set_cert(tls, tls_cert, tls_key, why, sizeof why) < 0)) {
        fprintf(stderr, "echo_protocol: --tls-cert %s: %s\n", tls_cert, why);
        return 1;
    }
    int rc = simul_run(run, NULL);
    simul_tls_config_free(tls);
    return rc;
#else
    return simul_run(run, NULL);
#endif
}
