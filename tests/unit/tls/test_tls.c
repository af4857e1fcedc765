/* test_tls.c — libsimul-tls: TLS clients and servers in one loop over loopback TCP (and once
 * over the in-memory bottom), against the suite's own PKI (tests/tls/make_certs.sh, made at
 * configure time into SIMUL_TLS_CERTS). Each case waits for state (a handler finished, bytes
 * arrived), never for time; the only timeouts are the deadlines under test. */
#include <malloc.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "test_net_helpers.h"

#include <simul/tls.h>

#include <openssl/crypto.h>

#ifndef SIMUL_TLS_CERTS
#error "SIMUL_TLS_CERTS must name the directory make_certs.sh filled"
#endif
#define CERT(name) SIMUL_TLS_CERTS "/" name

/* ---- counting OpenSSL's memory ---------------------------------------------------------------
 * Every OpenSSL allocation of the process goes through these (set before OpenSSL's first one),
 * so a case can see how many bytes OpenSSL holds and how many mallocs it made. */

static atomic_long ossl_live, ossl_big_mallocs; /* big: 4 KiB or more (record buffers) */
static int ossl_counting; /* CRYPTO_set_mem_functions' result */
enum { HDR = 16 };        /* keeps malloc's alignment */

static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file, (void)line;
    size_t *p = malloc(n + HDR);
    if (!p)
        return NULL;
    p[0] = n;
    atomic_fetch_add(&ossl_live, (long)n);
    if (n >= 4096)
        atomic_fetch_add(&ossl_big_mallocs, 1);
    return (char *)p + HDR;
}

static void *ossl_realloc(void *q, size_t n, const char *file, int line)
{
    if (!q)
        return ossl_malloc(n, file, line);
    size_t *p = (size_t *)((char *)q - HDR);
    size_t old = p[0];
    p = realloc(p, n + HDR);
    if (!p)
        return NULL;
    p[0] = n;
    atomic_fetch_add(&ossl_live, (long)n - (long)old);
    if (n >= 4096)
        atomic_fetch_add(&ossl_big_mallocs, 1);
    return (char *)p + HDR;
}

static void ossl_free(void *q, const char *file, int line)
{
    (void)file, (void)line;
    if (!q)
        return;
    size_t *p = (size_t *)((char *)q - HDR);
    atomic_fetch_sub(&ossl_live, (long)p[0]);
    free(p);
}

__attribute__((constructor)) static void count_openssl_memory(void)
{
    ossl_counting = CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
}

/* ---- a TLS test server ----------------------------------------------------------------------- */

#define MAXH 8

typedef struct srv srv;
typedef int (*after_fn)(simul_stream *s, srv *v);

struct srv {
    simul_tls_config *cfg;
    simul_server *server;
    char port[16];
    double hs_timeout;  /* the handler's deadline for the handshake (default 10 s) */
    bool plain;         /* no TLS: `after` runs on the plaintext stream */
    after_fn after;     /* after a good handshake; NULL: echo */
    int handled;        /* handlers finished */
    int rc[MAXH];       /* accept's result per connection, in finishing order */
    char why[MAXH][256];
    char subject[MAXH][256];
    char alpn[MAXH][32];
    bool resumed[MAXH];
    int after_rc[MAXH];
    long got;           /* bytes a plaintext handler has seen */
    simul_event *done;  /* set whenever a handler finishes */
    simul_event *progress;
};

static int srv_handler(simul_stream *s, void *arg)
{
    srv *v = arg;
    int i = v->handled < MAXH ? v->handled : MAXH - 1;
    int rc = 0;
    if (!v->plain) {
        simul_scope sc;
        assert_int_equal(simul_scope_timeout(&sc, v->hs_timeout > 0 ? v->hs_timeout : 10), 0);
        rc = simul_tls_accept(s, v->cfg);
        simul_scope_end(&sc);
        const char *w = simul_tls_last_error(s);
        snprintf(v->why[i], sizeof v->why[i], "%s", w ? w : "(not tls)");
        if (rc == 0) {
            if (simul_tls_peer_subject(s, v->subject[i], sizeof v->subject[i]) < 0)
                v->subject[i][0] = 0;
            const char *a = simul_tls_alpn(s);
            snprintf(v->alpn[i], sizeof v->alpn[i], "%s", a ? a : "");
            v->resumed[i] = simul_tls_session_resumed(s);
        }
    }
    v->rc[i] = rc;
    if (rc == 0)
        v->after_rc[i] = v->after ? v->after(s, v) : echo_handler(s, NULL);
    v->handled++;
    simul_event_set(v->done);
    return 0;
}

static void srv_start(srv *v, simul_tls_config *cfg)
{
    v->cfg = cfg;
    assert_int_equal(simul_event_new(&v->done), 0);
    assert_int_equal(simul_event_new(&v->progress), 0);
    assert_int_equal(simul_start_server("127.0.0.1", "0", srv_handler, v, &v->server), 0);
    snprintf(v->port, sizeof v->port, "%d", simul_server_port(v->server));
}

/* Waits until n handlers have finished. */
static void srv_wait(srv *v, int n)
{
    while (v->handled < n) {
        simul_event_clear(v->done);
        assert_int_equal(simul_event_wait(v->done), 0);
    }
}

static void srv_stop(srv *v)
{
    simul_server_close(v->server);
    assert_int_equal(simul_server_wait_closed(v->server), 0);
    simul_server_free(v->server);
    simul_event_free(v->done);
    simul_event_free(v->progress);
}

static simul_tls_config *server_cfg(const char *cert, const char *key)
{
    simul_tls_config *cfg;
    assert_int_equal(simul_tls_config_new_server(&cfg), 0);
    char why[256];
    int rc = simul_tls_config_set_cert(cfg, cert, key, why, sizeof why);
    if (rc < 0)
        fail_msg("set_cert: %s: %s", simul_errname(rc), why);
    return cfg;
}

static simul_tls_config *client_cfg(void)
{
    simul_tls_config *cfg;
    assert_int_equal(simul_tls_config_new_client(&cfg), 0);
    assert_int_equal(simul_tls_config_set_ca(cfg, CERT("ca.crt"), NULL, NULL, 0), 0);
    return cfg;
}

static simul_stream *tls_connect(srv *v, simul_tls_config *cfg, const char *host)
{
    simul_stream *s = NULL;
    char why[256];
    int rc = simul_tls_open_connection(host, v->port, cfg, &s, why, sizeof why);
    if (rc < 0)
        fail_msg("tls_open_connection: %s: %s", simul_errname(rc), why);
    return s;
}

/* A line echoed through s. */
static void echo_line(simul_stream *s, const char *line)
{
    assert_int_equal(simul_stream_write(s, line, strlen(line)), 0);
    assert_int_equal(simul_stream_drain(s), 0);
    const char *got;
    long n = simul_stream_readline(s, &got);
    assert_int_equal(n, (long)strlen(line));
    assert_memory_equal(got, line, (size_t)n);
}

/* Ends a client stream cleanly: write_eof (close_notify), EOF back from the echo, close. */
static void finish(simul_stream *s)
{
    assert_int_equal(simul_stream_write_eof(s), 0);
    char b[16];
    assert_int_equal(simul_stream_read(s, b, sizeof b), 0);
    assert_int_equal(simul_stream_close(s), 0);
}

/* ---- round trip, accessors, every stream feature ----------------------------------------- */

SIMUL_TASK_TEST(roundtrip)
{
    (void)arg;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    const char *hosts[] = {"127.0.0.1", "localhost"}; /* IP checked, name checked */
    for (int i = 0; i < 2; i++) {
        simul_stream *s = tls_connect(&v, cc, hosts[i]);
        assert_true(simul_tls_is_tls(s));
        assert_string_equal(simul_tls_version(s), "TLSv1.3");
        assert_non_null(simul_tls_cipher(s));
        assert_null(simul_tls_alpn(s));
        char subj[128];
        assert_true(simul_tls_peer_subject(s, subj, sizeof subj) > 0);
        assert_string_equal(subj, "CN=localhost");
        assert_string_equal(simul_tls_last_error(s), "");
        assert_true(simul_stream_fd(s) >= 0); /* the socket below */
        echo_line(s, "hello over tls\n");
        finish(s);
    }
    srv_wait(&v, 2);
    assert_int_equal(v.rc[0], 0);
    assert_int_equal(v.after_rc[0], 0); /* the echo saw a clean EOF (close_notify) */
    assert_int_equal(v.rc[1], 0);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* Writes `total` bytes of a pattern in pieces, draining after each. */
typedef struct pump {
    simul_stream *s;
    size_t total;
} pump;

static unsigned char pat(size_t i)
{
    return (unsigned char)(i * 7 + (i >> 13));
}

static int pump_task(void *arg)
{
    pump *p = arg;
    enum { PIECE = 50000 };
    unsigned char *buf = malloc(PIECE); /* task stacks are small */
    assert_non_null(buf);
    int rc = 0;
    for (size_t off = 0; off < p->total && rc == 0;) {
        size_t n = p->total - off < PIECE ? p->total - off : PIECE;
        for (size_t i = 0; i < n; i++)
            buf[i] = pat(off + i);
        rc = simul_stream_write(p->s, buf, n);
        if (rc == 0)
            rc = simul_stream_drain(p->s);
        /* the watermarks bound the queue as on plain streams */
        if (rc == 0 && simul_stream_write_buffer_size(p->s) > SIMUL_STREAM_HIGH_WATER)
            rc = -EOVERFLOW;
        off += n;
    }
    free(buf);
    return rc;
}

SIMUL_TASK_TEST(stream_features)
{
    (void)arg;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    simul_stream *s = tls_connect(&v, cc, "localhost");

    /* readuntil and readexactly across records */
    const char msg[] = "alpha--beta--0123456789";
    assert_int_equal(simul_stream_write(s, msg, sizeof msg - 1), 0);
    const char *d;
    assert_int_equal(simul_stream_readuntil(s, "--", 2, &d), 7);
    assert_memory_equal(d, "alpha--", 7);
    assert_int_equal(simul_stream_readuntil(s, "--", 2, &d), 6);
    char ten[10];
    assert_int_equal(simul_stream_readexactly(s, ten, 10, NULL), 10);
    assert_memory_equal(ten, "0123456789", 10);

    /* 8 MiB each way at once through the echo, with drain and the watermarks */
    const size_t total = 8u << 20;
    pump p = {s, total};
    simul_task *w;
    assert_int_equal(simul_task_spawn(&w, pump_task, &p, NULL), 0);
    unsigned char *buf = malloc(65536);
    assert_non_null(buf);
    for (size_t off = 0; off < total;) {
        long n = simul_stream_read(s, buf, 65536);
        assert_true(n > 0);
        for (long i = 0; i < n; i++)
            if (buf[i] != pat(off + (size_t)i))
                fail_msg("byte %zu differs", off + (size_t)i);
        off += (size_t)n;
    }
    free(buf);
    int wr = -1;
    assert_int_equal(simul_task_join(w, &wr), 0);
    assert_int_equal(wr, 0);
    /* write_eof sends close_notify: the echo sees a clean EOF and closes, so do we */
    finish(s);
    srv_wait(&v, 1);
    assert_int_equal(v.after_rc[0], 0);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

typedef struct reader {
    simul_stream *s;
    unsigned char *buf;
    size_t len;
} reader;

static int reader_task(void *arg)
{
    reader *r = arg;
    long n = simul_stream_readexactly(r->s, r->buf, r->len, NULL);
    return n == (long)r->len ? 0 : (int)n;
}

SIMUL_TASK_TEST(sendfile_through_tls)
{
    (void)arg;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    simul_stream *s = tls_connect(&v, cc, "localhost");
    /* a file of 300 kB after 4 written bytes: sendfile must copy it through TLS (the bottom has
     * no ZEROCOPY flag), not splice plaintext into the socket */
    char path[] = "/tmp/test_tls_sendfile.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    const size_t total = 300000;
    unsigned char *data = malloc(total + 4), *back = malloc(total + 4);
    assert_non_null(data);
    assert_non_null(back);
    memcpy(data, "head", 4);
    for (size_t i = 0; i < total; i++)
        data[4 + i] = pat(i);
    assert_int_equal(write(fd, data + 4, total), (ssize_t)total);
    reader r = {s, back, total + 4};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, reader_task, &r, NULL), 0);
    assert_int_equal(simul_stream_write(s, "head", 4), 0);
    size_t sent = 0;
    assert_int_equal(simul_stream_sendfile(s, fd, 0, 0, &sent), (long)total);
    assert_int_equal(sent, total);
    int rc = -1;
    assert_int_equal(simul_task_join(t, &rc), 0);
    assert_int_equal(rc, 0);
    assert_memory_equal(back, data, total + 4);
    free(data);
    free(back);
    close(fd);
    finish(s);
    srv_wait(&v, 1);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* The server sends a line, then ends the TCP connection with a FIN but no close_notify. */
static int truncate_after(simul_stream *s, srv *v)
{
    (void)v;
    assert_int_equal(simul_stream_write(s, "partial\n", 8), 0);
    assert_int_equal(simul_stream_drain(s), 0);
    assert_int_equal(shutdown(simul_stream_fd(s), SHUT_WR), 0);
    char b[16];
    long n = simul_stream_read(s, b, sizeof b); /* until the client closes */
    (void)n;
    simul_stream_abort(s);
    return 0;
}

SIMUL_TASK_TEST(truncation_reported)
{
    (void)arg;
    srv v = {0};
    v.after = truncate_after;
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    simul_stream *s = tls_connect(&v, cc, "localhost");
    const char *line;
    assert_int_equal(simul_stream_readline(s, &line), 8);
    char b[16];
    assert_int_equal(simul_stream_read(s, b, sizeof b), -SIMUL_TLS_ETRUNCATED);
    assert_int_equal(simul_stream_read(s, b, sizeof b), -SIMUL_TLS_ETRUNCATED); /* sticky */
    assert_non_null(strstr(simul_tls_last_error(s), "close_notify"));
    assert_string_equal(simul_errname(-SIMUL_TLS_ETRUNCATED), "ENOLINK");
    assert_string_not_equal(simul_strerror(-SIMUL_TLS_ETRUNCATED), "Unknown error");
    simul_stream_close(s);

    /* the opt-out: the same ending is a clean EOF */
    assert_int_equal(simul_tls_config_allow_truncation(cc, true), 0);
    s = tls_connect(&v, cc, "localhost");
    assert_int_equal(simul_stream_readline(s, &line), 8);
    long r = simul_stream_read(s, b, sizeof b);
    if (r != 0)
        fail_msg("allowed truncation: %s: %s", simul_errname((int)r), simul_tls_last_error(s));
    simul_stream_close(s);
    srv_wait(&v, 2);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

SIMUL_TASK_TEST(abort_resets_peer)
{
    (void)arg;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    simul_stream *s = tls_connect(&v, cc, "localhost");
    echo_line(s, "before abort\n");
    assert_int_equal(simul_stream_abort(s), 0);
    assert_int_equal(simul_stream_close(s), 0);
    srv_wait(&v, 1);
    /* the echo's read got the reset (no clean EOF, no close_notify) */
    assert_int_equal(v.after_rc[0], -ECONNRESET);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* ---- verification -------------------------------------------------------------------------- */

/* Connects to a server with cert/key using client config cc and host; returns the error and the
 * reason. */
static int try_cert(const char *cert, const char *key, simul_tls_config *cc, const char *host,
                    char *why, size_t whylen)
{
    srv v = {0};
    srv_start(&v, server_cfg(cert, key));
    simul_stream *s = NULL;
    int rc = simul_tls_open_connection(host, v.port, cc, &s, why, whylen);
    if (rc == 0)
        finish(s);
    else
        assert_null(s);
    srv_wait(&v, 1);
    if (rc < 0) /* the server saw the client's alert: a clean failure on its side */
        assert_int_equal(v.rc[0], -EPROTO);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return rc;
}

static void expect_verify(const char *cert, const char *key, simul_tls_config *cc,
                          const char *host, const char *reason)
{
    char why[256];
    int rc = try_cert(cert, key, cc, host, why, sizeof why);
    print_message("%s @ %s: %s: %s\n", cert, host, simul_errname(rc), why);
    assert_int_equal(rc, -SIMUL_TLS_EVERIFY);
    assert_non_null(strstr(why, "certificate verify failed: "));
    assert_non_null(strstr(why, reason));
}

/* A server certificate issued by an intermediate CA: the server sends the chain (leaf, then the
 * intermediate) and a client trusting only the root verifies it; without the intermediate in
 * the chain it cannot. */
SIMUL_TASK_TEST(chain_with_intermediate)
{
    (void)arg;
    simul_tls_config *cc = client_cfg();
    char why[256];
    int rc = try_cert(CERT("chained-chain.crt"), CERT("chained.key"), cc, "localhost", why,
                      sizeof why);
    if (rc < 0)
        fail_msg("through the intermediate: %s: %s", simul_errname(rc), why);
    expect_verify(CERT("chained.crt"), CERT("chained.key"), cc, "localhost",
                  "unable to get local issuer certificate");
    simul_tls_config_free(cc);
    return 0;
}

/* Trusted CAs from a directory hashed by `openssl rehash`; a directory without the CA (no
 * hash links) verifies nothing. */
SIMUL_TASK_TEST(ca_directory)
{
    (void)arg;
    simul_tls_config *cc;
    assert_int_equal(simul_tls_config_new_client(&cc), 0);
    char why[256];
    assert_int_equal(simul_tls_config_set_ca(cc, NULL, CERT("cadir"), why, sizeof why), 0);
    int rc = try_cert(CERT("server.crt"), CERT("server.key"), cc, "localhost", why, sizeof why);
    if (rc < 0)
        fail_msg("CA directory: %s: %s", simul_errname(rc), why);
    simul_tls_config_free(cc);
    assert_int_equal(simul_tls_config_new_client(&cc), 0);
    assert_int_equal(simul_tls_config_set_ca(cc, NULL, CERT("ca-db"), why, sizeof why), 0);
    expect_verify(CERT("server.crt"), CERT("server.key"), cc, "localhost",
                  "unable to get local issuer certificate");
    simul_tls_config_free(cc);
    return 0;
}

SIMUL_TASK_TEST(verify_unknown_ca)
{
    (void)arg;
    simul_tls_config *sys; /* the system store does not know the suite's CA */
    assert_int_equal(simul_tls_config_new_client(&sys), 0);
    expect_verify(CERT("server.crt"), CERT("server.key"), sys, "localhost",
                  "unable to get local issuer certificate");
    simul_tls_config_free(sys);
    return 0;
}

SIMUL_TASK_TEST(verify_expired)
{
    (void)arg;
    simul_tls_config *cc = client_cfg();
    expect_verify(CERT("expired.crt"), CERT("expired.key"), cc, "localhost",
                  "certificate has expired");
    simul_tls_config_free(cc);
    return 0;
}

SIMUL_TASK_TEST(verify_wrong_host)
{
    (void)arg;
    simul_tls_config *cc = client_cfg();
    expect_verify(CERT("wronghost.crt"), CERT("wronghost.key"), cc, "localhost",
                  "hostname mismatch");
    expect_verify(CERT("wronghost.crt"), CERT("wronghost.key"), cc, "127.0.0.1",
                  "IP address mismatch");
    /* a good certificate for another name than the one asked for */
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_stream *s;
    assert_int_equal(simul_open_connection("127.0.0.1", v.port, &s), 0);
    assert_int_equal(simul_tls_start_tls(s, cc, "www.example.org"), -SIMUL_TLS_EVERIFY);
    assert_non_null(strstr(simul_tls_last_error(s), "hostname mismatch"));
    char b[4];
    assert_int_equal(simul_stream_read(s, b, sizeof b), -SIMUL_TLS_EVERIFY); /* broken, sticky */
    simul_stream_close(s);
    srv_wait(&v, 1);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    simul_tls_config_free(cc);
    return 0;
}

SIMUL_TASK_TEST(verify_self_signed)
{
    (void)arg;
    simul_tls_config *cc = client_cfg();
    expect_verify(CERT("selfsigned.crt"), CERT("selfsigned.key"), cc, "localhost",
                  "self");
    simul_tls_config_free(cc);
    return 0;
}

SIMUL_TASK_TEST(insecure_skip_verify)
{
    (void)arg;
    simul_tls_config *cc;
    assert_int_equal(simul_tls_config_new_client(&cc), 0);
    assert_int_equal(simul_tls_config_insecure_skip_verify(cc), 0);
    char why[256];
    assert_int_equal(try_cert(CERT("selfsigned.crt"), CERT("selfsigned.key"), cc, "localhost",
                              why, sizeof why), 0);
    assert_int_equal(try_cert(CERT("expired.crt"), CERT("expired.key"), cc, "127.0.0.1", why,
                              sizeof why), 0);
    /* errors after an unverified handshake are what they are, not "verify failed" */
    srv v = {0};
    v.after = truncate_after;
    srv_start(&v, server_cfg(CERT("selfsigned.crt"), CERT("selfsigned.key")));
    simul_stream *s = tls_connect(&v, cc, "localhost");
    const char *line;
    assert_int_equal(simul_stream_readline(s, &line), 8);
    char b[8];
    assert_int_equal(simul_stream_read(s, b, sizeof b), -SIMUL_TLS_ETRUNCATED);
    simul_stream_close(s);
    srv_wait(&v, 1);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    /* a server config cannot be made insecure: it has nothing to skip */
    simul_tls_config *sc;
    assert_int_equal(simul_tls_config_new_server(&sc), 0);
    assert_int_equal(simul_tls_config_insecure_skip_verify(sc), -EINVAL);
    simul_tls_config_free(sc);
    simul_tls_config_free(cc);
    return 0;
}

/* ---- SNI, ALPN, resumption, client certificates -------------------------------------------- */

static simul_tls_config *sni_other;
static simul_tls_config *pick_sni(const char *name, void *arg)
{
    (void)arg;
    return strcmp(name, "other.test") == 0 ? sni_other : NULL;
}

SIMUL_TASK_TEST(sni_picks_cert)
{
    (void)arg;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    sni_other = server_cfg(CERT("other.crt"), CERT("other.key"));
    assert_int_equal(simul_tls_config_set_sni_cb(v.cfg, pick_sni, NULL), 0);
    simul_tls_config *cc = client_cfg();
    const char *names[] = {"other.test", "localhost"};
    const char *want[] = {"CN=other.test", "CN=localhost"};
    for (int i = 0; i < 2; i++) {
        simul_stream *s;
        assert_int_equal(simul_open_connection("127.0.0.1", v.port, &s), 0);
        int rc = simul_tls_start_tls(s, cc, names[i]);
        if (rc < 0)
            fail_msg("%s: %s", simul_errname(rc), simul_tls_last_error(s));
        char subj[128];
        assert_true(simul_tls_peer_subject(s, subj, sizeof subj) > 0);
        assert_string_equal(subj, want[i]);
        echo_line(s, "sni\n");
        finish(s);
    }
    srv_wait(&v, 2);
    simul_tls_config_free(cc);
    simul_tls_config_free(sni_other);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

SIMUL_TASK_TEST(alpn_negotiated)
{
    (void)arg;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    const char *sp[] = {"http/1.1", "redis"};
    assert_int_equal(simul_tls_config_set_alpn(v.cfg, sp, 2), 0);
    simul_tls_config *cc = client_cfg();
    const char *cp[] = {"h2", "http/1.1"};
    assert_int_equal(simul_tls_config_set_alpn(cc, cp, 2), 0);
    simul_stream *s = tls_connect(&v, cc, "localhost");
    assert_string_equal(simul_tls_alpn(s), "http/1.1");
    echo_line(s, "alpn\n");
    finish(s);
    srv_wait(&v, 1);
    assert_string_equal(v.alpn[0], "http/1.1");

    /* nothing in common: the server refuses */
    const char *none[] = {"h2"};
    assert_int_equal(simul_tls_config_set_alpn(cc, none, 1), 0);
    char why[256];
    assert_int_equal(simul_tls_open_connection("localhost", v.port, cc, &s, why, sizeof why),
                     -EPROTO);
    print_message("alpn mismatch: %s\n", why);
    assert_non_null(strstr(why, "no application protocol"));
    srv_wait(&v, 2);
    assert_int_equal(v.rc[1], -EPROTO);
    assert_int_equal(simul_tls_config_set_alpn(cc, NULL, 0), 0);
    const char *bad[] = {""};
    assert_int_equal(simul_tls_config_set_alpn(cc, bad, 1), -EINVAL);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

static void resumption(int version)
{
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    assert_int_equal(simul_tls_config_set_max_version(cc, version), 0);
    for (int i = 0; i < 3; i++) {
        simul_stream *s = tls_connect(&v, cc, "localhost");
        assert_string_equal(simul_tls_version(s), version == 0x0303 ? "TLSv1.2" : "TLSv1.3");
        assert_int_equal(simul_tls_session_resumed(s), i > 0);
        echo_line(s, "resume\n"); /* reading takes in the TLS 1.3 tickets */
        finish(s);
    }
    srv_wait(&v, 3);
    assert_false(v.resumed[0]);
    assert_true(v.resumed[1]);
    assert_true(v.resumed[2]);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
}

SIMUL_TASK_TEST(session_resumed)
{
    (void)arg;
    resumption(0x0304);
    return 0;
}

SIMUL_TASK_TEST(session_resumed_tls12)
{
    (void)arg;
    resumption(0x0303); /* a TLS 1.2 ticket, no server-side cache */
    return 0;
}

static srv *client_cert_server(int mode)
{
    static srv v;
    memset(&v, 0, sizeof v);
    simul_tls_config *sc = server_cfg(CERT("server.crt"), CERT("server.key"));
    assert_int_equal(simul_tls_config_set_ca(sc, CERT("clientca.crt"), NULL, NULL, 0), 0);
    assert_int_equal(simul_tls_config_set_client_cert_mode(sc, mode), 0);
    srv_start(&v, sc);
    return &v;
}

SIMUL_TASK_TEST(client_cert_required)
{
    (void)arg;
    srv *v = client_cert_server(SIMUL_TLS_CLIENT_CERT_REQUIRED);
    simul_tls_config *with = client_cfg();
    assert_int_equal(simul_tls_config_set_cert(with, CERT("client.crt"), CERT("client.key"), NULL,
                                               0), 0);
    simul_stream *s = tls_connect(v, with, "localhost");
    echo_line(s, "with a client cert\n");
    finish(s);
    srv_wait(v, 1);
    assert_int_equal(v->rc[0], 0);
    assert_string_equal(v->subject[0], "CN=simul test client");

    /* missing: TLS 1.3 ends the client's handshake before the server checks, so the client
     * learns it from its first read (the server's alert) */
    simul_tls_config *without = client_cfg();
    char why[256];
    int rc = simul_tls_open_connection("localhost", v->port, without, &s, why, sizeof why);
    if (rc == 0) {
        char b[8];
        rc = (int)simul_stream_read(s, b, sizeof b);
        snprintf(why, sizeof why, "%s", simul_tls_last_error(s));
        simul_stream_close(s);
    }
    print_message("client without a cert: %s: %s\n", simul_errname(rc), why);
    assert_int_equal(rc, -EPROTO);
    assert_non_null(strstr(why, "certificate required"));
    srv_wait(v, 2);
    assert_int_equal(v->rc[1], -EPROTO);
    print_message("server: %s\n", v->why[1]);
    assert_non_null(strstr(v->why[1], "certificate"));
    simul_tls_config_free(with);
    simul_tls_config_free(without);
    simul_tls_config_free(v->cfg);
    srv_stop(v);
    return 0;
}

SIMUL_TASK_TEST(client_cert_optional)
{
    (void)arg;
    srv *v = client_cert_server(SIMUL_TLS_CLIENT_CERT_OPTIONAL);
    simul_tls_config *without = client_cfg();
    simul_stream *s = tls_connect(v, without, "localhost");
    echo_line(s, "no client cert, fine\n");
    finish(s);
    simul_tls_config *with = client_cfg();
    assert_int_equal(simul_tls_config_set_cert(with, CERT("client.crt"), CERT("client.key"), NULL,
                                               0), 0);
    s = tls_connect(v, with, "localhost");
    echo_line(s, "with one\n");
    finish(s);
    /* a certificate from a CA the server does not trust fails even when optional */
    simul_tls_config *wrong = client_cfg();
    assert_int_equal(simul_tls_config_set_cert(wrong, CERT("server.crt"), CERT("server.key"),
                                               NULL, 0), 0);
    char why[256];
    int rc = simul_tls_open_connection("localhost", v->port, wrong, &s, why, sizeof why);
    if (rc == 0) {
        char b[8];
        rc = (int)simul_stream_read(s, b, sizeof b);
        simul_stream_close(s);
    }
    assert_int_equal(rc, -EPROTO);
    srv_wait(v, 3);
    assert_int_equal(v->rc[0], 0);
    assert_string_equal(v->subject[0], "");
    assert_int_equal(v->rc[1], 0);
    assert_string_equal(v->subject[1], "CN=simul test client");
    assert_int_equal(v->rc[2], -SIMUL_TLS_EVERIFY);
    print_message("untrusted client cert: %s\n", v->why[2]);
    simul_tls_config_free(with);
    simul_tls_config_free(without);
    simul_tls_config_free(wrong);
    simul_tls_config_free(v->cfg);
    srv_stop(v);
    return 0;
}

/* ---- start_tls ----------------------------------------------------------------------------- */

/* A STARTTLS server: reads "STARTTLS\n" once the ClientHello sent right behind it has arrived
 * too (FIONREAD), so the readline has read it ahead; then upgrades and echoes. */
static int starttls_after(simul_stream *s, srv *v)
{
    int fd = simul_stream_fd(s);
    for (;;) {
        int avail = 0;
        assert_int_equal(ioctl(fd, FIONREAD, &avail), 0);
        if (avail > 100)
            break;
        assert_int_equal(simul_sleep(0.001), 0);
    }
    const char *line;
    assert_int_equal(simul_stream_readline(s, &line), 9);
    assert_memory_equal(line, "STARTTLS\n", 9);
    v->got = (long)simul_stream_read_buffer_size(s); /* the ClientHello, read ahead */
    int rc = simul_tls_accept(s, v->cfg);
    if (rc < 0)
        return rc;
    return echo_handler(s, NULL);
}

SIMUL_TASK_TEST(start_tls_with_read_ahead)
{
    (void)arg;
    srv v = {0};
    v.plain = true;
    v.after = starttls_after;
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    simul_stream *s;
    assert_int_equal(simul_open_connection("127.0.0.1", v.port, &s), 0);
    /* a plaintext exchange first, left queued: start_tls flushes it */
    assert_int_equal(simul_stream_write(s, "STARTTLS\n", 9), 0);
    int rc = simul_tls_start_tls(s, cc, "localhost");
    if (rc < 0)
        fail_msg("start_tls: %s: %s", simul_errname(rc), simul_tls_last_error(s));
    assert_int_equal(simul_tls_start_tls(s, cc, "localhost"), -EALREADY);
    echo_line(s, "after starttls\n");
    finish(s);
    srv_wait(&v, 1);
    assert_true(v.got > 100);
    assert_int_equal(v.after_rc[0], 0);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* The same over the in-memory bottom: TLS needs no socket. */
typedef struct mem_srv {
    simul_stream *s;
    simul_tls_config *cfg;
} mem_srv;

static int mem_server_task(void *arg)
{
    mem_srv *m = arg;
    int rc = simul_tls_accept(m->s, m->cfg);
    if (rc == 0)
        rc = echo_handler(m->s, NULL);
    simul_stream_close(m->s);
    return rc;
}

SIMUL_TASK_TEST(over_memory_bottom)
{
    (void)arg;
    simul_stream *a, *b;
    mem_pair(&a, &b);
    mem_srv m = {b, server_cfg(CERT("server.crt"), CERT("server.key"))};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, mem_server_task, &m, NULL), 0);
    simul_tls_config *cc = client_cfg();
    int rc = simul_tls_start_tls(a, cc, "localhost");
    if (rc < 0)
        fail_msg("start_tls: %s: %s", simul_errname(rc), simul_tls_last_error(a));
    assert_int_equal(simul_stream_fd(a), -EOPNOTSUPP);
    echo_line(a, "over memory\n");
    pump p = {a, 1u << 20};
    simul_task *w;
    assert_int_equal(simul_task_spawn(&w, pump_task, &p, NULL), 0);
    unsigned char buf[4096];
    for (size_t off = 0; off < p.total;) {
        long n = simul_stream_read(a, buf, sizeof buf);
        assert_true(n > 0);
        assert_int_equal(buf[0], pat(off));
        off += (size_t)n;
    }
    int wr;
    assert_int_equal(simul_task_join(w, &wr), 0);
    assert_int_equal(wr, 0);
    finish(a);
    assert_int_equal(simul_task_join(t, &rc), 0);
    assert_int_equal(rc, 0);
    simul_tls_config_free(cc);
    simul_tls_config_free(m.cfg);
    return 0;
}

/* ---- bad input ----------------------------------------------------------------------------- */

/* After the handshake and one good line, raw bytes go below TLS: `v->got` picks which. */
static int raw_after(simul_stream *s, srv *v)
{
    assert_int_equal(simul_stream_write(s, "good\n", 5), 0);
    assert_int_equal(simul_stream_drain(s), 0);
    int fd = simul_stream_fd(s);
    /* an application-data record header announcing 256 bytes */
    static const unsigned char hdr[] = {0x17, 0x03, 0x03, 0x01, 0x00};
    unsigned char junk[64];
    memset(junk, 0xA5, sizeof junk);
    assert_int_equal(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
    if (v->got == 0) /* garbage: the whole record, bytes that decrypt to nothing */
        for (int i = 0; i < 4; i++)
            assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    else /* the peer vanishes mid-record */
        assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    shutdown(fd, SHUT_WR);
    char b[64];
    while (simul_stream_read(s, b, sizeof b) > 0) {
    }
    simul_stream_abort(s);
    return 0;
}

SIMUL_TASK_TEST(garbage_and_cut_records)
{
    (void)arg;
    srv v = {0};
    v.after = raw_after;
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    for (int mode = 0; mode < 2; mode++) {
        v.got = mode;
        simul_stream *s = tls_connect(&v, cc, "localhost");
        const char *line;
        assert_int_equal(simul_stream_readline(s, &line), 5);
        char b[64];
        long n = simul_stream_read(s, b, sizeof b);
        print_message("%s: %s: %s\n", mode ? "cut record" : "garbage record",
                      simul_errname((int)n), simul_tls_last_error(s));
        assert_int_equal(n, mode ? -SIMUL_TLS_ETRUNCATED : -EPROTO);
        assert_true(simul_tls_last_error(s)[0] != 0);
        simul_stream_close(s);
        srv_wait(&v, mode + 1);
    }
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* An idle connection holds no OpenSSL record buffers: they go after the idle period. */
static int idle_after(simul_stream *s, srv *v)
{
    char b[16];
    echo_line(s, "idle\n"); /* the client echoes it back */
    v->got++;
    simul_event_set(v->progress);
    long n = simul_stream_read(s, b, sizeof b); /* then waits, idle, until the client ends */
    if (n > 0) { /* woken up once more: echo that, then wait for the end */
        if (simul_stream_write(s, b, (size_t)n) < 0 || simul_stream_drain(s) < 0)
            return -1;
        n = simul_stream_read(s, b, sizeof b);
    }
    return n == 0 ? 0 : (int)n;
}

/* Waits (for state: polling OpenSSL's bytes, bounded) until OpenSSL holds at most `limit`. */
static bool wait_ossl_below(long limit)
{
    for (int i = 0; i < 1000; i++) {
        if (atomic_load(&ossl_live) <= limit)
            return true;
        simul_sleep(0.01);
    }
    return false;
}

SIMUL_TASK_TEST(idle_connections_memory)
{
    (void)arg;
    assert_int_equal(ossl_counting, 1);
    enum { N = 50 };
    srv v = {0};
    v.after = idle_after;
    simul_tls_config *sc = server_cfg(CERT("server.crt"), CERT("server.key"));
    simul_tls_config *cc = client_cfg();
    /* long enough that they are all held when counted, on a loaded machine too */
    assert_int_equal(simul_tls_config_set_idle_release(sc, 3600), 0);
    assert_int_equal(simul_tls_config_set_idle_release(cc, 3600), 0);
    assert_int_equal(simul_tls_config_set_idle_release(cc, -1), -EINVAL);
    srv_start(&v, sc);
    static simul_stream *conns[2 * N];
    long base = atomic_load(&ossl_live);
    for (int i = 0; i < N; i++) {
        conns[i] = tls_connect(&v, cc, "localhost");
        const char *line;
        assert_int_equal(simul_stream_readline(conns[i], &line), 5);
        assert_int_equal(simul_stream_write(conns[i], line, 5), 0);
    }
    while (v.got < N) { /* every server handler has its echo back and is idle in a read */
        simul_event_clear(v.progress);
        assert_int_equal(simul_event_wait(v.progress), 0);
    }
    long held = (atomic_load(&ossl_live) - base) / N;
    /* the same with a short idle period: the buffers go once the connections are quiet */
    assert_int_equal(simul_tls_config_set_idle_release(sc, 0.05), 0);
    assert_int_equal(simul_tls_config_set_idle_release(cc, 0.05), 0);
    long base2 = atomic_load(&ossl_live);
    for (int i = N; i < 2 * N; i++) {
        conns[i] = tls_connect(&v, cc, "localhost");
        const char *line;
        assert_int_equal(simul_stream_readline(conns[i], &line), 5);
        assert_int_equal(simul_stream_write(conns[i], line, 5), 0);
    }
    while (v.got < 2 * N) {
        simul_event_clear(v.progress);
        assert_int_equal(simul_event_wait(v.progress), 0);
    }
    /* released: the four record buffers of a pair (~16.5 KiB each) gone from every pair */
    bool released = wait_ossl_below(base2 + (held - 4 * 15000) * N);
    long idle = (atomic_load(&ossl_live) - base2) / N;
    print_message("OpenSSL bytes per TLS connection pair (client and server side), busy: %ld, "
                  "idle: %ld\n", held, idle);
    assert_true(held > 4 * 16384); /* two record buffers per side while it moves */
    assert_true(released);
    assert_true(idle < 40 * 1024); /* the SSL objects, sessions, keys: ~15 KiB a side */
    /* they work on: buffers again, an echo each way, then the end */
    for (int i = N; i < 2 * N; i++) {
        echo_line(conns[i], "again\n");
        finish(conns[i]);
    }
    for (int i = 0; i < N; i++)
        finish(conns[i]);
    srv_wait(&v, 2 * N);
    for (int i = 0; i < MAXH; i++) /* (the last slot is every later handler's) */
        assert_int_equal(v.after_rc[i], 0);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* The data path allocates no record buffer while a connection moves (they are kept); with an
 * idle release of 0 (SSL_MODE_RELEASE_BUFFERS) every record costs OpenSSL a ~17 KiB malloc.
 * (OpenSSL 3.0 still makes two or three 40-byte WPACKET mallocs per record it writes: not
 * counted here, not ours to avoid.) */
static long big_mallocs_per_100_echoes(double idle_release)
{
    srv v = {0};
    simul_tls_config *sc = server_cfg(CERT("server.crt"), CERT("server.key"));
    simul_tls_config *cc = client_cfg();
    assert_int_equal(simul_tls_config_set_idle_release(sc, idle_release), 0);
    assert_int_equal(simul_tls_config_set_idle_release(cc, idle_release), 0);
    srv_start(&v, sc);
    simul_stream *s = tls_connect(&v, cc, "localhost");
    echo_line(s, "warm up\n");
    long before = atomic_load(&ossl_big_mallocs);
    for (int i = 0; i < 1000; i++)
        echo_line(s, "a line through TLS and back\n");
    long per100 = (atomic_load(&ossl_big_mallocs) - before) / 10;
    finish(s);
    srv_wait(&v, 1);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return per100;
}

SIMUL_TASK_TEST(data_path_allocates_nothing)
{
    (void)arg;
    assert_int_equal(ossl_counting, 1);
    long kept = big_mallocs_per_100_echoes(3600);
    long released = big_mallocs_per_100_echoes(0);
    print_message("OpenSSL record-buffer mallocs per 100 echoes: buffers kept %ld, released per "
                  "record %ld\n",
                  kept, released);
    assert_true(kept <= 1); /* (a timer period may pass on a slow machine: one re-allocation) */
    assert_true(released >= 200);
    return 0;
}

SIMUL_TASK_TEST(plaintext_to_tls_port)
{
    (void)arg;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_stream *s;
    assert_int_equal(simul_open_connection("127.0.0.1", v.port, &s), 0);
    const char req[] = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(simul_stream_write(s, req, sizeof req - 1), 0);
    char b[256];
    long n;
    while ((n = simul_stream_read(s, b, sizeof b)) > 0) { /* an alert, maybe, then the end */
    }
    simul_stream_close(s);
    srv_wait(&v, 1);
    print_message("server: %s: %s\n", simul_errname(v.rc[0]), v.why[0]);
    assert_int_equal(v.rc[0], -EPROTO);
    assert_non_null(strstr(v.why[0], "http request"));
    /* unharmed */
    simul_tls_config *cc = client_cfg();
    s = tls_connect(&v, cc, "localhost");
    echo_line(s, "still serving\n");
    finish(s);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* ---- several records already below come back in one read ---------------------------------- */

#define NREC 10
#define REC_LEN 10

/* Echoes a sync line, waits until the client's NREC records are all in the socket (their bytes,
 * FIONREAD), then reads once: every record's plaintext must come in that one read. Then echoes
 * to EOF. */
static int records_after(simul_stream *s, srv *v)
{
    /* a line echoed first: the handshake's last read (which reads ahead) is over */
    char sync[5];
    assert_int_equal(simul_stream_readexactly(s, sync, sizeof sync, NULL), (long)sizeof sync);
    assert_int_equal(simul_stream_write(s, sync, sizeof sync), 0);
    assert_int_equal(simul_stream_drain(s), 0);
    assert_int_equal(simul_event_wait(v->progress), 0); /* the client has written them all */
    int avail = 0;
    /* 10 records of 10 bytes are 10 * (5 + 10 + 1 + 16) = 320 bytes on the wire */
    for (int i = 0; i < 20000 && avail < NREC * (REC_LEN + 22); i++) {
        assert_int_equal(ioctl(simul_stream_fd(s), FIONREAD, &avail), 0);
        if (avail < NREC * (REC_LEN + 22))
            assert_int_equal(simul_sleep(0.001), 0);
    }
    assert_true(avail >= NREC * (REC_LEN + 22)); /* (the close_notify may be there too) */
    char b[4096];
    long n = simul_stream_read(s, b, sizeof b);
    v->got = n;
    for (long i = 0; i < n; i++)
        assert_int_equal(b[i], (char)('a' + i / REC_LEN));
    return echo_handler(s, NULL);
}

SIMUL_TASK_TEST(buffered_records_read_at_once)
{
    (void)arg;
    srv v = {0};
    v.after = records_after;
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    simul_stream *s = tls_connect(&v, cc, "localhost");
    echo_line(s, "sync\n");
    char rec[REC_LEN];
    for (int i = 0; i < NREC; i++) { /* one record each: nothing is queued between them */
        memset(rec, 'a' + i, sizeof rec);
        assert_int_equal(simul_stream_write(s, rec, sizeof rec), 0);
        assert_int_equal(simul_stream_drain(s), 0);
        assert_int_equal(simul_stream_write_buffer_size(s), 0);
    }
    simul_event_set(v.progress);
    finish(s);
    srv_wait(&v, 1);
    assert_int_equal(v.rc[0], 0);
    assert_int_equal(v.got, NREC * REC_LEN); /* one stream read, not one per record */
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

static int banner_after(simul_stream *s, srv *v)
{
    assert_int_equal(simul_stream_write(s, "220 plaintext ready\r\n", 21), 0);
    char b[4096];
    long n;
    while ((n = simul_stream_read(s, b, sizeof b)) > 0)
        v->got += n;
    return 0;
}

SIMUL_TASK_TEST(tls_to_plaintext_port)
{
    (void)arg;
    srv v = {0};
    v.plain = true;
    v.after = banner_after;
    srv_start(&v, NULL);
    simul_tls_config *cc = client_cfg();
    simul_stream *s;
    char why[256];
    int rc = simul_tls_open_connection("localhost", v.port, cc, &s, why, sizeof why);
    print_message("client: %s: %s\n", simul_errname(rc), why);
    assert_int_equal(rc, -EPROTO);
    assert_non_null(strstr(why, "wrong version number"));
    srv_wait(&v, 1);
    assert_true(v.got > 0); /* it got our ClientHello */
    /* unharmed: a plaintext client is served */
    assert_int_equal(simul_open_connection("127.0.0.1", v.port, &s), 0);
    const char *line;
    assert_int_equal(simul_stream_readline(s, &line), 21);
    simul_stream_close(s);
    srv_wait(&v, 2);
    simul_tls_config_free(cc);
    srv_stop(&v);
    return 0;
}

/* A plaintext server that reads the ClientHello and hangs up. */
static int hangup_after(simul_stream *s, srv *v)
{
    char b[4096];
    v->got = simul_stream_read(s, b, sizeof b);
    return 0;
}

SIMUL_TASK_TEST(handshake_cut)
{
    (void)arg;
    /* client side: the server vanishes after the ClientHello */
    srv v = {0};
    v.plain = true;
    v.after = hangup_after;
    srv_start(&v, NULL);
    simul_tls_config *cc = client_cfg();
    simul_stream *s;
    char why[256];
    int rc = simul_tls_open_connection("localhost", v.port, cc, &s, why, sizeof why);
    print_message("client: %s: %s\n", simul_errname(rc), why);
    assert_true(rc == -ECONNRESET);
    assert_non_null(strstr(why, "during the handshake"));
    srv_wait(&v, 1);
    srv_stop(&v);

    /* server side: a client sends half a record and ends */
    srv t = {0};
    srv_start(&t, server_cfg(CERT("server.crt"), CERT("server.key")));
    assert_int_equal(simul_open_connection("127.0.0.1", t.port, &s), 0);
    const unsigned char half[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03};
    assert_int_equal(simul_stream_write(s, half, sizeof half), 0);
    assert_int_equal(simul_stream_write_eof(s), 0);
    srv_wait(&t, 1);
    print_message("server: %s: %s\n", simul_errname(t.rc[0]), t.why[0]);
    assert_int_equal(t.rc[0], -ECONNRESET);
    simul_stream_close(s);
    s = tls_connect(&t, cc, "localhost"); /* unharmed */
    echo_line(s, "ok\n");
    finish(s);
    srv_wait(&t, 2);
    simul_tls_config_free(cc);
    simul_tls_config_free(t.cfg);
    srv_stop(&t);
    return 0;
}

static int count_after(simul_stream *s, srv *v);

SIMUL_TASK_TEST(stalled_handshake_deadline)
{
    (void)arg;
    srv v = {0};
    v.hs_timeout = 0.2;
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_stream *s; /* connects and says nothing */
    assert_int_equal(simul_open_connection("127.0.0.1", v.port, &s), 0);
    char b[64];
    long n = simul_stream_read(s, b, sizeof b); /* until the server gives up */
    assert_true(n <= 0);
    srv_wait(&v, 1);
    assert_int_equal(v.rc[0], -ETIMEDOUT);
    simul_stream_close(s);

    /* client side: a server that never answers, bounded by the caller's deadline */
    srv q = {0};
    q.plain = true;
    q.after = count_after; /* reads, never answers */
    srv_start(&q, NULL);
    simul_tls_config *cc = client_cfg();
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.2), 0);
    char why[256];
    int rc = simul_tls_open_connection("localhost", q.port, cc, &s, why, sizeof why);
    print_message("stalled client: %s: %s\n", simul_errname(rc), why);
    assert_int_equal(simul_scope_end(&sc), 1);
    assert_int_equal(rc, -ETIMEDOUT);
    srv_wait(&q, 1);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    srv_stop(&q);
    return 0;
}

/* Counts what a plaintext server received (the echo would send the ClientHello back). */
static int count_after(simul_stream *s, srv *v)
{
    char b[4096];
    long n;
    while ((n = simul_stream_read(s, b, sizeof b)) > 0) {
        v->got += n;
        simul_event_set(v->progress);
    }
    return 0;
}

typedef struct hs_client {
    const char *port;
    simul_tls_config *cfg;
    simul_stream *s;
} hs_client;

static int start_tls_task(void *arg)
{
    hs_client *h = arg;
    return simul_tls_start_tls(h->s, h->cfg, "localhost");
}

SIMUL_TASK_TEST(cancel_mid_handshake)
{
    (void)arg;
    srv v = {0};
    v.plain = true;
    v.after = count_after;
    srv_start(&v, NULL);
    simul_tls_config *cc = client_cfg();
    hs_client h = {v.port, cc, NULL};
    assert_int_equal(simul_open_connection("127.0.0.1", v.port, &h.s), 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, start_tls_task, &h, NULL), 0);
    while (v.got == 0) { /* the ClientHello is out: the task waits for the answer */
        simul_event_clear(v.progress);
        assert_int_equal(simul_event_wait(v.progress), 0);
    }
    assert_int_equal(simul_task_cancel(t), 0);
    int rc = 0;
    assert_int_equal(simul_task_join(t, &rc), 0);
    assert_int_equal(rc, -ECANCELED);
    assert_true(simul_tls_is_tls(h.s));
    assert_int_equal(simul_stream_close(h.s), 0);
    srv_wait(&v, 1);

    /* server side: close_clients ends a handshake waiting in accept */
    srv w = {0};
    srv_start(&w, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_stream *s;
    assert_int_equal(simul_open_connection("127.0.0.1", w.port, &s), 0);
    while (simul_server_connections(w.server) == 0)
        assert_int_equal(simul_sleep(0.001), 0);
    assert_int_equal(simul_yield(), 0); /* the handler is in accept's wait now */
    assert_int_equal(simul_server_close_clients(w.server), 1);
    srv_wait(&w, 1);
    assert_int_equal(w.rc[0], -ECONNABORTED);
    simul_stream_close(s);
    simul_tls_config_free(cc);
    simul_tls_config_free(w.cfg);
    srv_stop(&w);
    srv_stop(&v);
    return 0;
}

SIMUL_TASK_TEST(cert_reload)
{
    (void)arg;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    simul_stream *old = tls_connect(&v, cc, "localhost");
    char subj[128];
    assert_true(simul_tls_peer_subject(old, subj, sizeof subj) > 0);
    assert_string_equal(subj, "CN=localhost");
    /* a bad reload changes nothing */
    char why[256];
    assert_true(simul_tls_config_set_cert(v.cfg, CERT("server2.crt"), CERT("server.key"), why,
                                          sizeof why) < 0);
    print_message("mismatched key: %s\n", why);
    assert_int_equal(simul_tls_config_set_cert(v.cfg, "/nonexistent.pem", NULL, why, sizeof why),
                     -EPROTO);
    assert_int_equal(simul_tls_config_set_cert(v.cfg, CERT("server2.crt"), CERT("server2.key"),
                                               why, sizeof why), 0);
    simul_stream *neu = tls_connect(&v, cc, "localhost");
    assert_true(simul_tls_peer_subject(neu, subj, sizeof subj) > 0);
    assert_string_equal(subj, "CN=localhost reloaded");
    echo_line(old, "old connection untouched\n");
    echo_line(neu, "new connection\n");
    finish(old);
    finish(neu);
    srv_wait(&v, 2);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* ---- what goes below: records batched into one write, close_notify that waits for room ---- */

/* A pass-through bottom between TLS and the socket: counts the writes that reach the socket,
 * can cap what each takes (partial writes) or refuse all (a full bottom). */
typedef struct cbot {
    const simul_stream_ops *ops;
    void *ctx;
    int writes;
    size_t bytes, cap;
    bool full;
    bool no_fin; /* shutdown does nothing: a close_notify with the socket left open */
} cbot;

static long cb_read(void *x, void *buf, size_t len)
{
    cbot *b = x;
    return b->ops->read(b->ctx, buf, len);
}

static long cb_writev(void *x, const struct iovec *iov, int n)
{
    cbot *b = x;
    if (b->full)
        return -EAGAIN;
    struct iovec one = iov[0];
    if (b->cap && one.iov_len > b->cap) { /* a partial write */
        one.iov_len = b->cap;
        iov = &one;
        n = 1;
    }
    long r = b->ops->writev(b->ctx, iov, n);
    if (r > 0) {
        b->writes++;
        b->bytes += (size_t)r;
    }
    return r;
}

static int cb_wait(void *x, int dir)
{
    cbot *b = x;
    return b->ops->wait(b->ctx, dir);
}

static int cb_shutdown(void *x)
{
    cbot *b = x;
    return b->no_fin ? 0 : b->ops->shutdown(b->ctx);
}

static void cb_close(void *x, bool abort)
{
    cbot *b = x;
    b->ops->close(b->ctx, abort);
}

static int cb_fd(void *x)
{
    cbot *b = x;
    return b->ops->fd(b->ctx);
}

static const simul_stream_ops cb_ops = {.read = cb_read, .writev = cb_writev, .wait = cb_wait,
                                        .shutdown = cb_shutdown, .close = cb_close, .fd = cb_fd};

/* A TLS client stream to v over a counting bottom b. */
static simul_stream *tls_connect_counted(srv *v, simul_tls_config *cc, cbot *b)
{
    simul_stream *s;
    assert_int_equal(simul_open_connection("127.0.0.1", v->port, &s), 0);
    b->ops = simul_stream_bottom(s, &b->ctx);
    assert_int_equal(simul_stream_replace_bottom(s, &cb_ops, b), 0);
    int rc = simul_tls_start_tls(s, cc, "localhost");
    if (rc < 0)
        fail_msg("start_tls: %s: %s", simul_errname(rc), simul_tls_last_error(s));
    return s;
}

/* Reads the pattern until EOF, checking every byte; the read's end in after_rc. */
/* A peer that sends its last records and close_notify together and keeps the socket open for
 * the answer (no FIN): the server reads the records in one read and must still see the
 * close_notify behind them, not wait for more bytes. */
SIMUL_TASK_TEST(close_notify_behind_records)
{
    (void)arg;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    cbot b = {.no_fin = true};
    simul_stream *s = tls_connect_counted(&v, cc, &b);
    echo_line(s, "sync\n");
    char rec[REC_LEN];
    for (int i = 0; i < NREC; i++) {
        memset(rec, 'a' + i, sizeof rec);
        assert_int_equal(simul_stream_write(s, rec, sizeof rec), 0);
    }
    assert_int_equal(simul_stream_write_eof(s), 0); /* close_notify, the socket stays open */
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 10), 0);
    char back[NREC * REC_LEN];
    assert_int_equal(simul_stream_readexactly(s, back, sizeof back, NULL), (long)sizeof back);
    for (size_t i = 0; i < sizeof back; i++)
        assert_int_equal(back[i], (char)('a' + i / REC_LEN));
    char x[16];
    assert_int_equal(simul_stream_read(s, x, sizeof x), 0); /* the server's close_notify */
    assert_int_equal(simul_scope_end(&sc), 0);
    assert_int_equal(simul_stream_close(s), 0);
    srv_wait(&v, 1);
    assert_int_equal(v.rc[0], 0);
    assert_int_equal(v.after_rc[0], 0); /* the echo ended on a clean EOF */
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

static int pattern_sink(simul_stream *s, srv *v)
{
    unsigned char *buf = malloc(65536);
    assert_non_null(buf);
    long n;
    size_t off = 0;
    while ((n = simul_stream_read(s, buf, 65536)) > 0) {
        for (long i = 0; i < n; i++)
            if (buf[i] != pat(off + (size_t)i))
                fail_msg("byte %zu differs", off + (size_t)i);
        off += (size_t)n;
    }
    free(buf);
    v->got = (long)off;
    return (int)n;
}

/* The plaintext of one big write goes below as records batched into one write each (up to
 * 64 KiB of plaintext), not one write per 16 KiB record; a bottom that takes part of a batch
 * gets the rest first, and every byte arrives in order. */
SIMUL_TASK_TEST(records_batched_into_one_write)
{
    (void)arg;
    srv v = {0};
    v.after = pattern_sink;
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    const size_t caps[2] = {0, 777};
    for (int round = 0; round < 2; round++) {
        cbot b = {.cap = caps[round]};
        simul_stream *s = tls_connect_counted(&v, cc, &b);
        b.writes = 0;
        b.bytes = 0;
        pump pm = {s, 1u << 20};
        assert_int_equal(pump_task(&pm), 0);
        int writes = b.writes;
        size_t bytes = b.bytes;
        assert_int_equal(simul_stream_write_eof(s), 0);
        char c;
        assert_int_equal(simul_stream_read(s, &c, 1), 0);
        assert_int_equal(simul_stream_close(s), 0);
        srv_wait(&v, round + 1);
        assert_int_equal(v.after_rc[round], 0);
        assert_int_equal(v.got, 1 << 20);
        print_message("1 MiB over TLS, each write below taking %s: %d writes, %zu B each\n",
                      round ? "777 B at most" : "all it can", writes, bytes / (size_t)writes);
        if (round == 0) /* one record per write would be 16 KiB each */
            assert_true(bytes / (size_t)writes > 24 * 1024);
        else
            assert_true(bytes / (size_t)writes <= 777);
    }
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

static int count_fds(void);

/* Echoes a line, then reads to the end; the end (0: close_notify, -ENOLINK: truncated, ...) in
 * after_rc. (The client reads the echo, and with it the session ticket: a socket closed with
 * bytes unread would be reset.) */
static int read_to_end(simul_stream *s, srv *v)
{
    (void)v;
    const char *line;
    long n = simul_stream_readline(s, &line);
    if (n > 0 && (simul_stream_write(s, line, (size_t)n) < 0 || simul_stream_drain(s) < 0))
        return -1;
    char b[256];
    while ((n = simul_stream_read(s, b, sizeof b)) > 0) {
    }
    return (int)n;
}

/* Waits (for state, bounded) until this process has at most n fds open. */
static bool wait_fds_at_most(int n)
{
    for (int i = 0; i < 1000; i++) {
        if (count_fds() <= n)
            return true;
        simul_sleep(0.01);
    }
    return false;
}

/* A close whose close_notify finds the bottom full does not block and does not drop it: it
 * goes out when the socket has room; with a close timeout of 0 it is dropped (the peer sees a
 * truncation); a socket that stays full is let go at the close timeout. */
SIMUL_TASK_TEST(close_notify_waits_for_room)
{
    (void)arg;
    srv v = {0};
    v.after = read_to_end;
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    assert_int_equal(simul_tls_config_set_close_timeout(cc, -1), -EINVAL);
    const double timeouts[2] = {5, 0};
    for (int round = 0; round < 2; round++) {
        assert_int_equal(simul_tls_config_set_close_timeout(cc, timeouts[round]), 0);
        cbot b = {0};
        simul_stream *s = tls_connect_counted(&v, cc, &b);
        echo_line(s, "data\n");
        b.full = true; /* the close_notify finds no room below */
        assert_int_equal(simul_stream_close(s), 0);
        srv_wait(&v, round + 1);
        print_message("close timeout %g: the peer's read ends with %s\n", timeouts[round],
                      simul_errname(v.after_rc[round]));
        assert_int_equal(v.after_rc[round], round == 0 ? 0 : -SIMUL_TLS_ETRUNCATED);
    }
    /* the socket itself full (the peer does not read): the linger ends at the timeout */
    assert_int_equal(simul_tls_config_set_close_timeout(cc, 0.1), 0);
    simul_event *go;
    assert_int_equal(simul_event_new(&go), 0);
    cbot b = {0};
    simul_stream *s = tls_connect_counted(&v, cc, &b);
    echo_line(s, "then stuck\n");
    char junk[4096] = {0};
    int fd = simul_stream_fd(s);
    while (send(fd, junk, sizeof junk, MSG_DONTWAIT) > 0) { /* (garbage to the server's TLS) */
    }
    int fds = count_fds();
    assert_int_equal(simul_stream_close(s), 0); /* at once: nothing queued, the alert lingers */
    assert_true(wait_fds_at_most(fds - 1)); /* the socket and the linger's dup both gone */
    srv_wait(&v, 3);
    simul_event_free(go);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* Server side: a client that vanishes mid-record after the handshake, with a FIN (truncation)
 * or a reset; the server's read says which, and it serves the next client. */
SIMUL_TASK_TEST(client_vanishes_mid_record)
{
    (void)arg;
    srv v = {0};
    v.after = read_to_end;
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    for (int mode = 0; mode < 2; mode++) {
        simul_stream *s = tls_connect(&v, cc, "localhost");
        echo_line(s, "then half a record\n");
        int fd = simul_stream_fd(s);
        static const unsigned char hdr[] = {0x17, 0x03, 0x03, 0x01, 0x00}; /* 256 bytes coming */
        unsigned char junk[40];
        memset(junk, 0x5A, sizeof junk);
        assert_int_equal(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
        assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
        if (mode == 0)
            assert_int_equal(shutdown(fd, SHUT_WR), 0); /* FIN mid-record */
        else
            simul_stream_abort(s); /* RST mid-record */
        srv_wait(&v, mode + 1);
        print_message("server, client gone mid-record (%s): %s: %s\n", mode ? "reset" : "FIN",
                      simul_errname(v.after_rc[mode]), v.why[mode]);
        assert_int_equal(v.after_rc[mode], mode ? -ECONNRESET : -SIMUL_TLS_ETRUNCATED);
        if (mode == 0)
            simul_stream_abort(s);
        simul_stream_close(s);
    }
    simul_stream *s = tls_connect(&v, cc, "localhost"); /* unharmed */
    echo_line(s, "next\n");
    finish(s);
    srv_wait(&v, 3);
    assert_int_equal(v.after_rc[2], 0);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* Echoes a line (with it the client reads its session ticket: a socket closed with bytes
 * unread would be reset), waits for the test's go (v->progress), reads the pattern to the end. */
static int sink_after_go(simul_stream *s, srv *v)
{
    const char *line;
    long n = simul_stream_readline(s, &line);
    if (n <= 0 || simul_stream_write(s, line, (size_t)n) < 0 || simul_stream_drain(s) < 0)
        return -1;
    simul_event_wait(v->progress);
    return pattern_sink(s, v);
}

/* A close cut short by a deadline drops the plaintext still queued: no close_notify then, so
 * the peer reads what arrived and a truncation (-ENOLINK), never a clean end of cut data. */
SIMUL_TASK_TEST(close_cut_short_is_no_clean_end)
{
    (void)arg;
    srv v = {0};
    v.after = sink_after_go;
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    simul_stream *s = tls_connect(&v, cc, "localhost");
    echo_line(s, "hello\n");
    enum { TOTAL = 32 << 20 }; /* more than loopback's socket buffers hold */
    unsigned char *buf = malloc(TOTAL);
    assert_non_null(buf);
    for (size_t i = 0; i < TOTAL; i++)
        buf[i] = pat(i);
    assert_int_equal(simul_stream_write(s, buf, TOTAL), 0); /* queued; the server does not read */
    free(buf);
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.2), 0);
    int rc = simul_stream_close(s); /* the flush cannot end: cut at the deadline */
    assert_int_equal(simul_scope_end(&sc), 1);
    assert_int_equal(rc, -ETIMEDOUT);
    simul_event_set(v.progress);
    srv_wait(&v, 1);
    print_message("the peer read %ld of %d bytes, then %s\n", v.got, TOTAL,
                  simul_errname(v.after_rc[0]));
    assert_true(v.got < TOTAL);
    assert_int_equal(v.after_rc[0], -SIMUL_TLS_ETRUNCATED);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* A peer that stops reading: drain blocks at the high-water mark as on a plain socket, and
 * what the writer holds stays bounded (the stream's queue, one batch of records, OpenSSL's
 * buffers); once the peer reads again every byte arrives. */
SIMUL_TASK_TEST(peer_stops_reading_memory_bounded)
{
    (void)arg;
    assert_int_equal(ossl_counting, 1);
    srv v = {0};
    v.after = sink_after_go;
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    simul_stream *s = tls_connect(&v, cc, "localhost");
    echo_line(s, "hello\n");
    long ossl0 = atomic_load(&ossl_live);
    size_t heap0 = mallinfo2().uordblks;
    enum { CHUNK = 16384 };
    unsigned char *buf = malloc(CHUNK);
    assert_non_null(buf);
    size_t off = 0, most_queued = 0;
    for (;;) { /* write and drain until drain cannot end: the peer holds back */
        for (size_t i = 0; i < CHUNK; i++)
            buf[i] = pat(off + i);
        assert_int_equal(simul_stream_write(s, buf, CHUNK), 0);
        off += CHUNK;
        simul_scope sc;
        assert_int_equal(simul_scope_timeout(&sc, 0.3), 0);
        int rc = simul_stream_drain(s);
        simul_scope_end(&sc);
        size_t q = simul_stream_write_buffer_size(s);
        if (q > most_queued)
            most_queued = q;
        if (rc == -ETIMEDOUT)
            break;
        assert_int_equal(rc, 0);
        assert_true(off < (256u << 20)); /* the kernel's buffers are far smaller */
    }
    long ossl_grew = atomic_load(&ossl_live) - ossl0;
    long heap_grew = (long)mallinfo2().uordblks - (long)heap0;
    print_message("peer not reading: %zu B written, %zu B queued at most; OpenSSL grew %ld B, "
                  "the heap %ld B\n", off, most_queued, ossl_grew, heap_grew);
    assert_true(most_queued <= SIMUL_STREAM_HIGH_WATER + CHUNK);
    assert_true(ossl_grew < 128 * 1024); /* its record buffers, nothing per byte written */
    if (!SIMUL_TEST_ASAN)
        assert_true(heap_grew < 512 * 1024); /* queue + one batch + buffers */
    /* the peer reads again: everything arrives, then a clean end */
    simul_event_set(v.progress);
    assert_int_equal(simul_stream_drain(s), 0);
    assert_int_equal(simul_stream_write_eof(s), 0);
    char c;
    assert_int_equal(simul_stream_read(s, &c, 1), 0);
    assert_int_equal(simul_stream_close(s), 0);
    srv_wait(&v, 1);
    assert_int_equal(v.after_rc[0], 0);
    assert_int_equal(v.got, (long)off);
    free(buf);
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

/* ---- protocol servers and the threaded server ---------------------------------------------- */

typedef struct psrv {
    simul_tls_config *cfg;
    int made, lost, lost_err[4];
    char why[4][256];
    simul_transport *t[4];
    simul_event *done;
} psrv;

typedef struct pconn {
    psrv *p;
    int i;
    simul_transport *t;
} pconn;

static void p_made(simul_transport *t, void *ctx)
{
    pconn *c = ctx;
    c->t = t;
    assert_int_equal(simul_tls_transport_accept(t, c->p->cfg), 0);
    assert_int_equal(simul_tls_transport_accept(t, c->p->cfg), -EALREADY);
    assert_null(simul_tls_transport_version(t)); /* not yet */
}

static void p_data(void *ctx, const void *data, size_t len)
{
    pconn *c = ctx;
    const char *v = simul_tls_transport_version(c->t); /* plaintext, after the handshake */
    assert_non_null(v);
    simul_transport_write(c->t, data, len);
}

static void p_lost(void *ctx, int err)
{
    pconn *c = ctx;
    c->p->lost_err[c->i] = err;
    /* the reason is readable here (the bottom closes after connection_lost returns) */
    const char *w = simul_tls_transport_last_error(c->t);
    snprintf(c->p->why[c->i], sizeof c->p->why[c->i], "%s", w ? w : "(null)");
    c->p->lost++;
    simul_event_set(c->p->done);
    free(c);
}

static const simul_protocol p_proto = {
    .connection_made = p_made, .data_received = p_data, .connection_lost = p_lost};

static int p_factory(void *arg, const simul_protocol **proto, void **ctx)
{
    psrv *p = arg;
    pconn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->p = p;
    c->i = p->made++ % 4;
    *proto = &p_proto;
    *ctx = c;
    return 0;
}

SIMUL_TASK_TEST(protocol_server)
{
    (void)arg;
    psrv p = {0};
    p.cfg = server_cfg(CERT("server.crt"), CERT("server.key"));
    assert_int_equal(simul_event_new(&p.done), 0);
    simul_server *server;
    assert_int_equal(simul_create_server("127.0.0.1", "0", p_factory, &p, &server), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", simul_server_port(server));
    simul_tls_config *cc = client_cfg();
    simul_stream *s;
    char why[256];
    int rc = simul_tls_open_connection("localhost", port, cc, &s, why, sizeof why);
    if (rc < 0)
        fail_msg("%s: %s", simul_errname(rc), why);
    echo_line(s, "through a protocol\n");
    /* 1 MiB each way: the transport's flow control under TLS */
    pump pm = {s, 1u << 20};
    simul_task *w;
    assert_int_equal(simul_task_spawn(&w, pump_task, &pm, NULL), 0);
    unsigned char *buf = malloc(65536);
    for (size_t off = 0; off < pm.total;) {
        long n = simul_stream_read(s, buf, 65536);
        assert_true(n > 0);
        for (long i = 0; i < n; i++)
            if (buf[i] != pat(off + (size_t)i))
                fail_msg("byte %zu differs", off + (size_t)i);
        off += (size_t)n;
    }
    free(buf);
    int wr;
    assert_int_equal(simul_task_join(w, &wr), 0);
    assert_int_equal(wr, 0);
    finish(s); /* close_notify: eof_received, the transport closes, close_notify back */
    /* a client with the wrong CA: the transport's handshake fails, connection_lost(err) */
    simul_tls_config *sys;
    assert_int_equal(simul_tls_config_new_client(&sys), 0);
    assert_int_equal(simul_tls_open_connection("localhost", port, sys, &s, why, sizeof why),
                     -SIMUL_TLS_EVERIFY);
    while (p.lost < 2) {
        simul_event_clear(p.done);
        assert_int_equal(simul_event_wait(p.done), 0);
    }
    assert_int_equal(p.lost_err[0], 0);
    assert_string_equal(p.why[0], "");
    print_message("protocol server, bad client: %s (%s)\n", simul_errname(p.lost_err[1]),
                  p.why[1]);
    assert_int_equal(p.lost_err[1], -EPROTO);
    assert_non_null(strstr(p.why[1], "unknown ca")); /* the client's alert */
    /* a client that ends its socket without close_notify: truncation, with its reason */
    assert_int_equal(simul_tls_open_connection("localhost", port, cc, &s, why, sizeof why), 0);
    echo_line(s, "then gone\n");
    assert_int_equal(shutdown(simul_stream_fd(s), SHUT_WR), 0);
    while (p.lost < 3) {
        simul_event_clear(p.done);
        assert_int_equal(simul_event_wait(p.done), 0);
    }
    print_message("protocol server, truncating client: %s (%s)\n", simul_errname(p.lost_err[2]),
                  p.why[2]);
    assert_int_equal(p.lost_err[2], -SIMUL_TLS_ETRUNCATED);
    assert_non_null(strstr(p.why[2], "without close_notify"));
    simul_stream_abort(s);
    simul_stream_close(s);
    simul_server_close(server);
    assert_int_equal(simul_server_wait_closed(server), 0);
    simul_server_free(server);
    simul_event_free(p.done);
    simul_tls_config_free(sys);
    simul_tls_config_free(cc);
    simul_tls_config_free(p.cfg);
    return 0;
}

SIMUL_TASK_TEST(protocol_server_handshake_timeout)
{
    (void)arg;
    psrv p = {0};
    p.cfg = server_cfg(CERT("server.crt"), CERT("server.key"));
    assert_int_equal(simul_tls_config_set_handshake_timeout(p.cfg, 0.2), 0);
    assert_int_equal(simul_tls_config_set_handshake_timeout(p.cfg, -1), -EINVAL);
    assert_int_equal(simul_event_new(&p.done), 0);
    simul_server *server;
    assert_int_equal(simul_create_server("127.0.0.1", "0", p_factory, &p, &server), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", simul_server_port(server));
    /* a good client, idle for longer than the timeout after its handshake: not aborted */
    simul_tls_config *cc = client_cfg();
    simul_stream *good = NULL;
    assert_int_equal(simul_tls_open_connection("localhost", port, cc, &good, NULL, 0), 0);
    echo_line(good, "handshake done\n");
    /* a client that connects and says nothing: aborted by the server's timer */
    simul_stream *s;
    assert_int_equal(simul_open_connection("127.0.0.1", port, &s), 0);
    char b[16];
    long n = simul_stream_read(s, b, sizeof b);
    assert_true(n == 0 || n == -ECONNRESET);
    assert_int_equal(p.lost, 1);
    assert_string_equal(p.why[1], "handshake timed out"); /* read in connection_lost */
    echo_line(good, "still here\n"); /* idle past the timeout, untouched */
    finish(good);
    while (p.lost < 2) {
        simul_event_clear(p.done);
        assert_int_equal(simul_event_wait(p.done), 0);
    }
    simul_stream_close(s);
    simul_server_close(server);
    assert_int_equal(simul_server_wait_closed(server), 0);
    simul_server_free(server);
    simul_event_free(p.done);
    simul_tls_config_free(cc);
    simul_tls_config_free(p.cfg);
    return 0;
}

SIMUL_TASK_TEST(stream_handshake_timeout)
{
    (void)arg;
    srv q = {0};
    q.plain = true;
    q.after = count_after; /* reads, never answers */
    srv_start(&q, NULL);
    simul_tls_config *cc = client_cfg();
    assert_int_equal(simul_tls_config_set_handshake_timeout(cc, 0.2), 0);
    simul_stream *s;
    char why[256];
    assert_int_equal(simul_tls_open_connection("localhost", q.port, cc, &s, why, sizeof why),
                     -ETIMEDOUT);
    assert_string_equal(why, "handshake timed out");
    srv_wait(&q, 1);
    simul_tls_config_free(cc);
    srv_stop(&q);
    return 0;
}

/* A client transport: connection_made slides TLS under it and writes at once (queued until the
 * handshake ends); data_received collects the echo. */
typedef struct ptc {
    simul_tls_config *cfg;
    simul_transport *t;
    char got[64];
    size_t len;
    int lost_err;
    bool lost;
    simul_event *ev;
} ptc;

static void c_made(simul_transport *t, void *ctx)
{
    ptc *c = ctx;
    c->t = t;
    assert_int_equal(simul_tls_transport_start_tls(t, c->cfg, "localhost"), 0);
    assert_int_equal(simul_transport_write(t, "from a transport\n", 17), 0);
}

static void c_data(void *ctx, const void *data, size_t len)
{
    ptc *c = ctx;
    assert_true(c->len + len <= sizeof c->got);
    memcpy(c->got + c->len, data, len);
    c->len += len;
    simul_event_set(c->ev);
}

static void c_lost(void *ctx, int err)
{
    ptc *c = ctx;
    c->lost = true;
    c->lost_err = err;
    simul_event_set(c->ev);
}

static const simul_protocol c_proto = {
    .connection_made = c_made, .data_received = c_data, .connection_lost = c_lost};

SIMUL_TASK_TEST(client_transport_start_tls)
{
    (void)arg;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    ptc c = {.cfg = client_cfg()};
    assert_int_equal(simul_event_new(&c.ev), 0);
    simul_transport *t;
    assert_int_equal(simul_create_connection("127.0.0.1", v.port, &c_proto, &c, &t), 0);
    while (c.len < 17) {
        simul_event_clear(c.ev);
        assert_int_equal(simul_event_wait(c.ev), 0);
    }
    assert_memory_equal(c.got, "from a transport\n", 17);
    assert_string_equal(simul_tls_transport_version(t), "TLSv1.3");
    assert_string_equal(simul_tls_transport_last_error(t), "");
    simul_transport_close(t); /* close_notify: the echo ends cleanly */
    while (!c.lost) {
        simul_event_clear(c.ev);
        assert_int_equal(simul_event_wait(c.ev), 0);
    }
    assert_int_equal(c.lost_err, 0);
    srv_wait(&v, 1);
    assert_int_equal(v.after_rc[0], 0);
    simul_event_free(c.ev);
    simul_tls_config_free(c.cfg);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

static simul_tls_config *thread_cfg;
static int thread_handler(simul_stream *s, void *arg)
{
    (void)arg;
    if (simul_tls_accept(s, thread_cfg) < 0)
        return 0;
    return echo_handler(s, NULL);
}

SIMUL_TASK_TEST(threaded_server_thread)
{
    (void)arg;
    thread_cfg = server_cfg(CERT("server.crt"), CERT("server.key"));
    simul_threaded_server_opts o = {.host = "127.0.0.1", .threads = 2, .handler = thread_handler};
    simul_threaded_server *ts;
    assert_int_equal(simul_serve_threads(&o, &ts), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", simul_threaded_server_port(ts));
    simul_tls_config *cc = client_cfg();
    for (int i = 0; i < 20; i++) {
        simul_stream *s;
        char why[256];
        int rc = simul_tls_open_connection("127.0.0.1", port, cc, &s, why, sizeof why);
        if (rc < 0)
            fail_msg("%s: %s", simul_errname(rc), why);
        echo_line(s, "threads\n");
        finish(s);
    }
    assert_int_equal(simul_threaded_server_stop(ts), 0);
    assert_int_equal(simul_threaded_server_wait(ts), 0);
    assert_int_equal(simul_threaded_server_free(ts), 0);
    simul_tls_config_free(cc);
    simul_tls_config_free(thread_cfg);
    return 0;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

SIMUL_TASK_TEST(many_handshakes)
{
    (void)arg;
    /* The issue asks for 10,000 handshakes in a row: 13 s in the plain build on a busy 2-core
     * machine, 20 s beside the rest of the suite at ctest -j2 (the case limit is 60 s). Under the
     * sanitizers each handshake costs ~20x more and ASan's quarantine keeps freed memory alive,
     * so 300 there: enough to show an fd leak; a memory leak shows in the leak check at exit. */
    const int rounds = SIMUL_TEST_ASAN ? 300 : 10000;
    srv v = {0};
    srv_start(&v, server_cfg(CERT("server.crt"), CERT("server.key")));
    simul_tls_config *cc = client_cfg();
    int fds = -1;
    size_t heap = 0;
    for (int i = 0; i < rounds; i++) {
        simul_stream *s = tls_connect(&v, cc, "localhost");
        echo_line(s, "x\n");
        finish(s);
        srv_wait(&v, i + 1);
        if (i == 10) {
            fds = count_fds();
            heap = mallinfo2().uordblks;
        }
    }
    assert_int_equal(count_fds(), fds);
    if (!SIMUL_TEST_ASAN) { /* (ASan's allocator is not malloc's) */
        size_t now = mallinfo2().uordblks;
        print_message("heap in use after 10 handshakes: %zu, after %d: %zu\n", heap, rounds, now);
        assert_true(now < heap + 256 * 1024);
    }
    simul_tls_config_free(cc);
    simul_tls_config_free(v.cfg);
    srv_stop(&v);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(roundtrip),
    cmocka_unit_test(buffered_records_read_at_once),
    cmocka_unit_test(close_notify_behind_records),
    cmocka_unit_test(stream_features),
    cmocka_unit_test(sendfile_through_tls),
    cmocka_unit_test(truncation_reported),
    cmocka_unit_test(abort_resets_peer),
    cmocka_unit_test(verify_unknown_ca),
    cmocka_unit_test(verify_expired),
    cmocka_unit_test(verify_wrong_host),
    cmocka_unit_test(verify_self_signed),
    cmocka_unit_test(chain_with_intermediate),
    cmocka_unit_test(ca_directory),
    cmocka_unit_test(insecure_skip_verify),
    cmocka_unit_test(sni_picks_cert),
    cmocka_unit_test(alpn_negotiated),
    cmocka_unit_test(session_resumed),
    cmocka_unit_test(session_resumed_tls12),
    cmocka_unit_test(client_cert_required),
    cmocka_unit_test(client_cert_optional),
    cmocka_unit_test(start_tls_with_read_ahead),
    cmocka_unit_test(over_memory_bottom),
    cmocka_unit_test(garbage_and_cut_records),
    cmocka_unit_test(idle_connections_memory),
    cmocka_unit_test(data_path_allocates_nothing),
    cmocka_unit_test(records_batched_into_one_write),
    cmocka_unit_test(close_notify_waits_for_room),
    cmocka_unit_test(client_vanishes_mid_record),
    cmocka_unit_test(close_cut_short_is_no_clean_end),
    cmocka_unit_test(peer_stops_reading_memory_bounded),
    cmocka_unit_test(plaintext_to_tls_port),
    cmocka_unit_test(tls_to_plaintext_port),
    cmocka_unit_test(handshake_cut),
    cmocka_unit_test(stalled_handshake_deadline),
    cmocka_unit_test(cancel_mid_handshake),
    cmocka_unit_test(cert_reload),
    cmocka_unit_test(protocol_server),
    cmocka_unit_test(protocol_server_handshake_timeout),
    cmocka_unit_test(client_transport_start_tls),
    cmocka_unit_test(stream_handshake_timeout),
    cmocka_unit_test(threaded_server_thread),
    cmocka_unit_test(many_handshakes),
};

SIMUL_TEST_MAIN("test_tls", tests)
