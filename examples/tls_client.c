/* tls_client.c — fetches https://host[:port]/path with HTTP/1.0 over libsimul-tls and prints the
 * status line, the negotiated protocol version, cipher and ALPN protocol (asyncio's
 * open_connection(ssl=ctx) in one call). Verification is on: the system trust store, or --ca.
 *
 *   tls_client [--ca FILE] [--insecure] [--alpn P[,P...]] [--body] https://host[:port]/path
 *
 * Output (stdout): "status: HTTP/1.0 200 OK", "version: TLSv1.3", "cipher: ...", "alpn: ..."
 * ("-" if none), "resumed: no", then the body with --body. Exits 0 on a 2xx/3xx status, 1 on a
 * connection or TLS failure (the reason on stderr: "certificate verify failed: ..."), 2 on usage.
 */
#include <simul.h>
#include <simul/tls.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_cli.h"

static const char *progname = "tls_client";
static const char *ca_file;
static bool insecure, print_body;
static char alpn_buf[256];
static const char *alpn[8];
static int nalpn;
static char host[300], port[300] = "443", path[1024] = "/";

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [--ca FILE] [--insecure] [--alpn P[,P...]] [--body] https://host[:port]/path\n"
            "  Fetches the URL with HTTP/1.0 over TLS and prints the status line, the TLS\n"
            "  version, cipher and ALPN protocol.\n"
            "  --ca FILE    trust the CAs in FILE (PEM) instead of the system store\n"
            "  --insecure   DANGER: do not verify the server's certificate at all\n"
            "  --alpn LIST  offer these ALPN protocols (comma-separated)\n"
            "  --body       print the response body too\n",
            progname);
}

static void parse_url(const char *url)
{
    if (strncmp(url, "https://", 8) != 0)
        usage_error("the URL must start with https://: %s", url);
    const char *h = url + 8, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (slash)
        snprintf(path, sizeof path, "%s", slash);
    char hp[300];
    if (hl == 0 || hl >= sizeof hp)
        usage_error("bad host in %s", url);
    memcpy(hp, h, hl);
    hp[hl] = 0;
    char *colon = hp[0] == '[' ? NULL : strrchr(hp, ':');
    if (hp[0] == '[') { /* [v6]:port */
        char *close = strchr(hp, ']');
        if (!close)
            usage_error("bad host in %s", url);
        *close = 0;
        if (close[1] == ':')
            snprintf(port, sizeof port, "%s", close + 2);
        snprintf(host, sizeof host, "%s", hp + 1);
        return;
    }
    if (colon) {
        *colon = 0;
        snprintf(port, sizeof port, "%s", colon + 1);
    }
    snprintf(host, sizeof host, "%s", hp);
}

static int fetch(void *arg)
{
    (void)arg;
    simul_tls_config *cfg;
    int rc = simul_tls_config_new_client(&cfg);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", progname, simul_strerror(rc));
        return 1;
    }
    char why[256] = "";
    if (ca_file && (rc = simul_tls_config_set_ca(cfg, ca_file, NULL, why, sizeof why)) < 0) {
        fprintf(stderr, "%s: --ca %s: %s\n", progname, ca_file, why);
        simul_tls_config_free(cfg);
        return 1;
    }
    if (insecure)
        simul_tls_config_insecure_skip_verify(cfg);
    if (nalpn)
        simul_tls_config_set_alpn(cfg, alpn, nalpn);
    /* One deadline bounds the connect, the handshake and the response. */
    simul_scope deadline;
    simul_scope_timeout(&deadline, 30);
    simul_stream *s;
    rc = simul_tls_open_connection(host, port, cfg, &s, why, sizeof why);
    simul_tls_config_free(cfg); /* the connection keeps its own reference */
    if (rc < 0) {
        simul_scope_end(&deadline);
        fprintf(stderr, "%s: %s:%s: %s (%s)\n", progname, host, port, why, simul_errname(rc));
        return 1;
    }
    char req[1400];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: simul-tls\r\n\r\n",
                     path, host);
    rc = simul_stream_write(s, req, (size_t)n);
    const char *line = NULL;
    long len = rc < 0 ? rc : simul_stream_readline(s, &line);
    int status = 0;
    if (len > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        printf("status: %.*s\n", (int)len, line);
        sscanf(line, "HTTP/%*d.%*d %d", &status);
    }
    const char *a = simul_tls_alpn(s);
    printf("version: %s\ncipher: %s\nalpn: %s\nresumed: %s\n", simul_tls_version(s),
           simul_tls_cipher(s), a ? a : "-", simul_tls_session_resumed(s) ? "yes" : "no");
    if (len < 0) {
        fprintf(stderr, "%s: reading the response: %s\n", progname,
                simul_tls_last_error(s)[0] ? simul_tls_last_error(s) : simul_strerror((int)len));
    }
    /* The rest: headers, then the body until the server closes (HTTP/1.0). Servers that end
     * without close_notify show here as a truncation. */
    char buf[4096];
    bool in_body = false;
    long got;
    const char *l;
    while (len > 0 && !in_body && (got = simul_stream_readline(s, &l)) > 0)
        in_body = (got == 2 && l[0] == '\r') || (got == 1 && l[0] == '\n');
    while (len > 0 && (got = simul_stream_read(s, buf, sizeof buf)) > 0)
        if (print_body)
            fwrite(buf, 1, (size_t)got, stdout);
    simul_stream_close(s);
    simul_scope_end(&deadline);
    return len > 0 && status >= 200 && status < 400 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--ca") && i + 1 < argc) {
            ca_file = argv[++i];
        } else if (!strcmp(a, "--insecure")) {
            insecure = true;
        } else if (!strcmp(a, "--body")) {
            print_body = true;
        } else if (!strcmp(a, "--alpn") && i + 1 < argc) {
            snprintf(alpn_buf, sizeof alpn_buf, "%s", argv[++i]);
            for (char *p = strtok(alpn_buf, ","); p && nalpn < 8; p = strtok(NULL, ","))
                alpn[nalpn++] = p;
        } else if (a[0] != '-' && !url) {
            url = a;
        } else {
            usage_error("bad argument: %s", a);
        }
    }
    if (!url)
        usage_error("a URL is required");
    parse_url(url);
    int rc = simul_run(fetch, NULL);
    fflush(stdout);
    return rc < 0 ? 1 : rc;
}
