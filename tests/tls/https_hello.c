/* https_hello.c — a tiny HTTPS/1.0 server on libsimul-tls for the interop script
 * (tests/e2e/tls_interop_test.sh): curl and python3's ssl module fetch from it. Each request gets
 * "hello from simul-tls" with the negotiated ALPN protocol and version, then close_notify.
 *
 *   https_hello --cert FILE --key FILE [--port P]     prints "listening on 127.0.0.1:P"
 * Stops on SIGTERM or SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <simul.h>
#include <simul/tls.h>

static simul_tls_config *cfg;

static int handler(simul_stream *s, void *arg)
{
    (void)arg;
    simul_scope deadline;
    simul_scope_timeout(&deadline, 10);
    int rc = simul_tls_accept(s, cfg);
    const char *head;
    long n = rc < 0 ? rc : simul_stream_readuntil(s, "\r\n\r\n", 4, &head);
    simul_scope_end(&deadline);
    if (rc < 0 || n < 0) {
        fprintf(stderr, "https_hello: %s: %s\n", simul_errname(rc < 0 ? rc : (int)n),
                simul_tls_last_error(s) ? simul_tls_last_error(s) : "");
        return 0;
    }
    char body[256], msg[512];
    const char *alpn = simul_tls_alpn(s);
    int bl = snprintf(body, sizeof body, "hello from simul-tls alpn=%s version=%s\n",
                      alpn ? alpn : "-", simul_tls_version(s));
    int ml = snprintf(msg, sizeof msg,
                      "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n%s",
                      bl, body);
    simul_stream_write(s, msg, (size_t)ml);
    return 0; /* closing sends close_notify */
}

static int run(void *arg)
{
    const char *port = arg;
    simul_server *srv;
    int rc = simul_start_server("127.0.0.1", port, handler, NULL, &srv);
    if (rc < 0) {
        fprintf(stderr, "https_hello: listen: %s\n", simul_strerror(rc));
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", simul_server_port(srv));
    fflush(stdout);
    static const int sigs[] = {SIGINT, SIGTERM};
    simul_wait_signal(sigs, 2);
    simul_server_close(srv);
    simul_server_free(srv);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *port = "0";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cert"))
            cert = argv[i + 1];
        else if (!strcmp(argv[i], "--key"))
            key = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            port = argv[i + 1];
    }
    char why[256];
    const char *alpn[] = {"http/1.1"};
    if (!cert || simul_tls_config_new_server(&cfg) < 0 ||
        simul_tls_config_set_cert(cfg, cert, key, why, sizeof why) < 0 ||
        simul_tls_config_set_alpn(cfg, alpn, 1) < 0) {
        fprintf(stderr, "usage: https_hello --cert FILE --key FILE [--port P]\n");
        return 2;
    }
    int rc = simul_run(run, (void *)port);
    simul_tls_config_free(cfg);
    return rc;
}
