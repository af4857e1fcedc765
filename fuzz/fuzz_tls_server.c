/* fuzz_tls_server.c — a server-side TLS handshake (libsimul-tls) fed fuzzer bytes through an
 * in-memory bottom: whatever a client sends, the server must end with a result from the
 * documented set (0, -EPROTO, -ECONNRESET, -SIMUL_TLS_EVERIFY ...), never crash, hang or leak.
 *
 * Input: [chunk][bytes...]: the bytes arrive in pieces of `chunk` (0: all at once), then EOF.
 * What the server writes is discarded. After a handshake that succeeds (a replayed real one
 * cannot: the server's random differs), the rest is read as application data until EOF.
 * Built as a libFuzzer target with clang (-DSIMUL_BUILD_FUZZ=ON) and as a replay program for
 * the corpus in fuzz/corpus/tls_server (a ctest); both need libsimul-tls (OpenSSL 3). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "simul.h"
#include <simul/tls.h>

#define FUZZ_NAME "fuzz_tls_server"
#include "fuzz_check.h"
#include "fuzz_feed.h"

/* A throwaway self-signed certificate (CN=fuzz.test, P-256), for this target only. */
static const char cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBfzCCASWgAwIBAgIURkELh2oa73s9Hb4T2bQRkvIzdbIwCgYIKoZIzj0EAwIw\n"
    "FDESMBAGA1UEAwwJZnV6ei50ZXN0MCAXDTI2MTIwNjE5MzAwM1oYDzIxMjYxMTEy\n"
    "MTkzMDAzWjAUMRIwEAYDVQQDDAlmdXp6LnRlc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
    "PQMBBwNCAAStFzSFzSumLitpTP4LdA/g+nntffKWNoEKvDE5+nCGZGzG/nnWgRAt\n"
    "mQzA4tfhPYLk2Yo5i2YhLe6mEEITGfHAo1MwUTAdBgNVHQ4EFgQUYUJwAnyiCelj\n"
    "aYWetP0wDqzQvhIwHwYDVR0jBBgwFoAUYUJwAnyiCeljaYWetP0wDqzQvhIwDwYD\n"
    "VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA9yDeQon/Gcfh1H99mQKt\n"
    "k9Od9bN6nZikyOxbkYTL4tQCIBqu2hAaX5HCYv7o8UPG6o27BAO44aObe9IziaEO\n"
    "2x6V\n"
    "-----END CERTIFICATE-----\n";
static const char key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgaAIUq1nJBH4Nh4jW\n"
    "3RALTdFMEVKfMEEMVfE4mn5z5oOhRANCAAStFzSFzSumLitpTP4LdA/g+nntffKW\n"
    "NoEKvDE5+nCGZGzG/nnWgRAtmQzA4tfhPYLk2Yo5i2YhLe6mEEITGfHA\n"
    "-----END PRIVATE KEY-----\n";

static simul_tls_config *cfg;

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static void setup(void)
{
    if (cfg)
        return;
    char dir[] = "/tmp/fuzz_tls.XXXXXX", c[64], k[64];
    CHECK(mkdtemp(dir));
    snprintf(c, sizeof c, "%s/c.pem", dir);
    snprintf(k, sizeof k, "%s/k.pem", dir);
    CHECK(write_file(c, cert_pem) == 0 && write_file(k, key_pem) == 0);
    char why[256];
    CHECK(simul_tls_config_new_server(&cfg) == 0);
    int rc = simul_tls_config_set_cert(cfg, c, k, why, sizeof why);
    if (rc < 0)
        fprintf(stderr, "fuzz_tls_server: %s\n", why);
    CHECK(rc == 0);
    const char *alpn[] = {"http/1.1", "h2"};
    CHECK(simul_tls_config_set_alpn(cfg, alpn, 2) == 0);
    remove(c);
    remove(k);
    remove(dir);
}

static int one(void *arg)
{
    feed *f = arg;
    simul_stream *s;
    CHECK(simul_stream_from_bottom(&feed_ops, f, &s) == 0);
    int rc = simul_tls_accept(s, cfg);
    CHECK(rc == 0 || rc == -EPROTO || rc == -ECONNRESET || rc == -SIMUL_TLS_EVERIFY ||
          rc == -SIMUL_TLS_ETRUNCATED);
    CHECK(simul_tls_last_error(s) != NULL);
    CHECK((rc == 0) == (simul_tls_last_error(s)[0] == 0));
    if (rc == 0) {
        char buf[4096];
        long n;
        while ((n = simul_stream_read(s, buf, sizeof buf)) > 0) {
        }
        CHECK(n == 0 || n == -EPROTO || n == -SIMUL_TLS_ETRUNCATED || n == -ECONNRESET);
    }
    simul_stream_abort(s);
    CHECK(simul_stream_close(s) == 0);
    CHECK(f->pos <= f->len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1)
        return 0;
    feed f = {.data = data + 1, .len = size - 1, .chunk = data[0]};
    CHECK(simul_run(one, &f) == 0);
    return 0;
}
