/* tls.c — TLS as a stream bottom (OpenSSL 3): a bottom that wraps the stream's current one.
 * The idea: OpenSSL talks to a custom BIO whose read/write call the wrapped bottom's own ops
 * (non-blocking; -EAGAIN becomes a BIO retry), so the SSL object never sees an fd and TLS works
 * over any bottom; a want-read or want-write from OpenSSL picks the direction our wait() waits in
 * below. Configurations build an SSL_CTX from their settings and swap it under a refcount.
 * Memory: OpenSSL keeps its record buffers while a connection is busy (no malloc per record) and
 * an idle check, a timer re-armed at most once per period while the connection moves, hands
 * them back once it has been quiet for a whole period. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <simul.h>
#include <simul/tls.h>

/* ---- configuration ------------------------------------------------------------------------- */

#define SESSION_CACHE_MAX 64

typedef struct cached_session {
    struct cached_session *next;
    char *key; /* "host:port" or "host" */
    SSL_SESSION *sess;
} cached_session;

struct simul_tls_config {
    atomic_int refs;
    bool server;
    pthread_mutex_t mu; /* ctx swap, the settings, the session cache */
    SSL_CTX *ctx;       /* current context; connections take a reference of their own */
    /* settings, from which a context is built */
    char *cert, *key, *ca_file, *ca_dir;
    bool insecure, allow_trunc;
    int min_version, max_version; /* max 0: the highest OpenSSL has */
    double hs_timeout;            /* seconds; 0: none */
    double idle_release;          /* seconds quiet before the buffers go; 0: at once */
    double close_timeout;         /* seconds a close_notify may wait for room below */
    int client_cert_mode;
    unsigned char *alpn; /* wire format */
    size_t alpn_len;
    simul_tls_sni_cb sni_cb;
    void *sni_arg;
    cached_session *sessions;
    int nsessions;
};

/* Per-connection state, the bottom's ctx. */
typedef struct tls_conn {
    const simul_stream_ops *lower;
    void *lctx;
    SSL *ssl;
    simul_tls_config *cfg;
    char *pre; /* bytes handed over by replace_bottom (read ahead as plaintext), read first */
    size_t prelen, prepos;
    int lower_err;   /* the wrapped bottom's error, seen by the BIO */
    bool lower_eof;  /* the wrapped bottom read EOF (OpenSSL asks through BIO_CTRL_EOF) */
    bool dry;        /* the last read below came back short or empty: until a wait below
                      * returns, a read with nothing in OpenSSL is -EAGAIN without calling it */
    int err;         /* sticky TLS error (negative) */
    int want[2];     /* per op direction: what the lower bottom must become ready for */
    bool shut_sent;  /* close_notify sent */
    bool hs_done;    /* the handshake finished (OpenSSL's own flag drops on a fatal error) */
    char *skey;      /* client session cache key */
    simul_transport *transport; /* under a transport: its handshake timer aborts it */
    simul_handle timer;
    simul_handle idle;   /* the idle check: pending while the buffers are held */
    double idle_period;  /* the config's idle_release when the connection started */
    bool used;           /* a read or write since the idle check was armed */
    bool collect;        /* bio_write appends to ob instead of writing below */
    bool lost_listed;    /* on the thread's list of failed transport connections */
    char *ob;            /* records made but not yet below, sent in one write */
    size_t oblen, obpos, obcap;
    size_t owed;         /* plaintext SSL_write took whose records are still in ob */
    bool wblocked;       /* the last write was refused (-EAGAIN): plaintext still waits above */
    struct tls_conn *lost_next;
    char alpn[256];  /* negotiated ALPN, NUL-terminated */
    char why[256];   /* the last error in words */
} tls_conn;

/* SSL_free_buffers is safe from OpenSSL 3.0.14 / 3.1.6 / 3.2.2 / 3.3.1 on (CVE-2024-4741: before,
 * it could free a buffer a partly processed record still pointed into). With an older library
 * the idle release falls back to SSL_MODE_RELEASE_BUFFERS (OpenSSL frees them after each
 * record itself, which that CVE does not touch). */
static bool free_buffers_safe(void)
{
    unsigned long v = OpenSSL_version_num(); /* 0xMNN00PP0 */
    unsigned long major = v >> 28, minor = (v >> 20) & 0xff, patch = (v >> 4) & 0xff;
    if (major != 3)
        return major > 3;
    switch (minor) {
    case 0:
        return patch >= 14;
    case 1:
        return patch >= 6;
    case 2:
        return patch >= 2;
    case 3:
        return patch >= 1;
    default:
        return true;
    }
}

/* The idle period connections of cfg use: 0 means OpenSSL releases after every record. */
static double idle_period_of(const simul_tls_config *cfg)
{
    return cfg->idle_release > 0 && free_buffers_safe() ? cfg->idle_release : 0;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;
static int conn_idx = -1; /* SSL ex_data index for tls_conn */

static void set_why(char *why, size_t whylen, const char *fmt, const char *arg)
{
    if (why && whylen)
        snprintf(why, whylen, fmt, arg);
}

/* Empties the thread's OpenSSL error queue, as every SSL call's caller must before the call
 * (SSL_get_error reads it). ERR_clear_error walks all 16 slots (~800 instructions): done on every
 * read and write (3-4 times per echoed message) it was a sixth of the data path's CPU, so it runs
 * only when there is something to clear; peeking costs a tenth of that. */
static inline void clear_errors(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
}

/* The first OpenSSL error's reason in words ("wrong version number"), or fallback. Clears the
 * queue (it is the thread's, shared by every connection on the loop). */
static void ssl_reason(char *why, size_t whylen, const char *fallback)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    set_why(why, whylen, "%s", r ? r : fallback);
    clear_errors();
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- the BIO: OpenSSL's byte pipe onto the wrapped bottom ---------------------------------- */

/* Appends to the connection's outgoing records (grown as needed: one batch at most, see
 * tls_writev). Returns 0 or -ENOMEM. */
static int ob_append(tls_conn *c, const char *data, size_t len)
{
    if (c->oblen + len > c->obcap) {
        size_t cap = c->obcap ? c->obcap : 4096;
        while (cap < c->oblen + len)
            cap *= 2;
        char *p = realloc(c->ob, cap);
        if (!p)
            return -ENOMEM;
        c->ob = p;
        c->obcap = cap;
    }
    memcpy(c->ob + c->oblen, data, len);
    c->oblen += len;
    return 0;
}

static inline bool ob_pending(const tls_conn *c)
{
    return c->obpos < c->oblen;
}

/* Sends the held records below in one write (more only if the bottom takes part). Returns 0
 * (all sent), -EAGAIN (some left: wait for WRITE below), or the bottom's error. */
static int ob_flush(tls_conn *c)
{
    while (c->obpos < c->oblen) {
        struct iovec v = {.iov_base = c->ob + c->obpos, .iov_len = c->oblen - c->obpos};
        long n = c->lower->writev(c->lctx, &v, 1);
        if (n == -EAGAIN || n == 0)
            return -EAGAIN;
        if (n < 0) {
            c->lower_err = (int)n;
            return (int)n;
        }
        c->obpos += (size_t)n;
    }
    c->obpos = c->oblen = 0;
    return 0;
}

static int bio_write(BIO *b, const char *data, int len)
{
    tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    /* Collecting (a batch of records, a close_notify), or records are still held: append, so
     * the bytes below keep OpenSSL's order; whoever made ob pending flushes it. */
    if (c->collect || ob_pending(c)) {
        if (ob_append(c, data, (size_t)len) < 0) {
            c->lower_err = -ENOMEM;
            return -1;
        }
        return len;
    }
    struct iovec v = {.iov_base = (void *)data, .iov_len = (size_t)len};
    long n = c->lower->writev(c->lctx, &v, 1);
    if (n == -EAGAIN) {
        BIO_set_retry_write(b);
        return -1;
    }
    if (n < 0) {
        c->lower_err = (int)n;
        return -1;
    }
    return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
    tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (c->prepos < c->prelen) {
        size_t n = c->prelen - c->prepos;
        if (n > (size_t)len)
            n = (size_t)len;
        memcpy(buf, c->pre + c->prepos, n);
        c->prepos += n;
        if (c->prepos == c->prelen) {
            free(c->pre);
            c->pre = NULL;
            c->prelen = c->prepos = 0;
        }
        return (int)n;
    }
    long n = c->lower->read(c->lctx, buf, (size_t)len);
    if (n == -EAGAIN) {
        c->dry = true;
        BIO_set_retry_read(b);
        return -1;
    }
    c->dry = n > 0 && n < len;
    if (n < 0) {
        c->lower_err = (int)n;
        return -1;
    }
    if (n == 0)
        c->lower_eof = true; /* OpenSSL tells truncation from a retry by BIO_eof */
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    /* (OpenSSL asks ~13 times per echoed message, mostly for kTLS: answer without a call) */
    if (cmd == BIO_CTRL_FLUSH)
        return 1;
    if (cmd == BIO_CTRL_EOF) {
        tls_conn *c = BIO_get_data(b);
        return c && c->lower_eof;
    }
    return 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_bio_method(void)
{
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "simul_bottom");
    if (!bio_method)
        return;
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
    BIO_meth_set_create(bio_method, bio_create);
    conn_idx = SSL_get_ex_new_index(0, "simul_tls_conn", NULL, NULL, NULL);
}

/* ---- errors -------------------------------------------------------------------------------- */

/* Turns a failed SSL call into the negative errno and the reason, after SSL_get_error gave e.
 * WANT_READ / WANT_WRITE are -EAGAIN with the lower direction in *dir. */
static int map_error(tls_conn *c, int rc, int *dir)
{
    /* (SSL_get_error answers WANT_* and ZERO_RETURN only when the thread's error queue is
     * empty: nothing to clear then, which saves a ~280-instruction peek per echoed message) */
    int e = SSL_get_error(c->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *dir = SIMUL_STREAM_READ;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *dir = SIMUL_STREAM_WRITE;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        break;
    }
    if (c->lower_err) {
        clear_errors();
        snprintf(c->why, sizeof c->why, "%s", simul_strerror(c->lower_err));
        return c->lower_err;
    }
    /* (with verification off OpenSSL still records a verdict: it is not the cause then, nor
     * after a handshake that succeeded) */
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK && !c->hs_done && SSL_get_verify_mode(c->ssl) != SSL_VERIFY_NONE) {
        clear_errors();
        snprintf(c->why, sizeof c->why, "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
        return -SIMUL_TLS_EVERIFY;
    }
    unsigned long ee = ERR_peek_error();
    if (ERR_GET_LIB(ee) == ERR_LIB_SSL && ERR_GET_REASON(ee) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        clear_errors();
        if (!c->hs_done) {
            snprintf(c->why, sizeof c->why, "connection closed during the handshake");
            return -ECONNRESET;
        }
        snprintf(c->why, sizeof c->why, "connection closed without close_notify (truncated)");
        return -SIMUL_TLS_ETRUNCATED;
    }
    if (!ee) { /* SSL_ERROR_SYSCALL with an empty queue: EOF below */
        snprintf(c->why, sizeof c->why, "connection closed %s",
                 c->hs_done ? "without close_notify (truncated)" : "during the handshake");
        return c->hs_done ? -SIMUL_TLS_ETRUNCATED : -ECONNRESET;
    }
    ssl_reason(c->why, sizeof c->why, "TLS error");
    return -EPROTO;
}

/* ---- the bottom's ops ---------------------------------------------------------------------- */

/* The idle check. A busy connection keeps OpenSSL's record buffers (SSL_MODE_RELEASE_BUFFERS
 * would free and malloc ~17 KiB per record: ~2k instructions per echoed message); instead each
 * read and write only marks the connection used (a store), and a timer armed once per period
 * looks: used since -> re-arm; quiet for a whole period -> SSL_free_buffers, which refuses while
 * a partial record or unsent bytes are held. The next read or write allocates them again and
 * re-arms. So an idle connection holds no record buffers after one to two periods. */
static void idle_check(void *arg);

static void idle_arm(tls_conn *c)
{
    if (simul_call_later(c->idle_period, idle_check, c, &c->idle) < 0)
        c->idle.id = 0; /* no loop here: tried again at the next read or write */
}

static void idle_check(void *arg)
{
    tls_conn *c = arg;
    c->idle.id = 0;
    if (c->err)
        return;
    if (c->used) {
        c->used = false;
        idle_arm(c);
        return;
    }
    if (ob_pending(c))
        return;
    free(c->ob);
    c->ob = NULL;
    c->obcap = 0;
    (void)SSL_free_buffers(c->ssl); /* 0 (kept) if a record is part read or part written */
}

/* Every read and write: cheap unless the idle check has fired since the last one. */
static inline void touch(tls_conn *c)
{
    c->used = true;
    if (!c->idle.id && c->hs_done && c->idle_period > 0)
        idle_arm(c);
}

static void handshake_done(tls_conn *c)
{
    c->hs_done = true;
    if (c->timer.id) {
        simul_handle_cancel(c->timer);
        c->timer.id = 0;
    }
    touch(c);
}

/* The thread's transport connections that failed or read the peer's end, and are not yet
 * freed: a transport hides its bottom once connection_lost is scheduled, so
 * simul_tls_transport_last_error finds the reason here inside connection_lost (the bottom is
 * closed only after it returns). Short: only those, each until its transport finishes. */
static _Thread_local tls_conn *lost_list;

static void lost_list_add(tls_conn *c)
{
    if (c->transport && !c->lost_listed) {
        c->lost_listed = true;
        c->lost_next = lost_list;
        lost_list = c;
    }
}

static void set_err(tls_conn *c, int r)
{
    c->err = r;
    lost_list_add(c);
}

static void lost_unlist(tls_conn *c)
{
    if (!c->lost_listed)
        return;
    for (tls_conn **pp = &lost_list; *pp; pp = &(*pp)->lost_next)
        if (*pp == c) {
            *pp = c->lost_next;
            break;
        }
    c->lost_listed = false;
}

static long tls_read(void *ctx, void *buf, size_t len)
{
    tls_conn *c = ctx;
    if (c->err)
        return c->err;
    if (len > INT_MAX)
        len = INT_MAX;
    size_t got = 0;
    touch(c);
    if (ob_pending(c) && !c->owed)
        (void)ob_flush(c); /* a close_notify held by write_eof (errors show at the next write) */
    /* The read after each message: OpenSSL holds nothing (no record, no part of one) and the
     * last read below came back short, so this one would find nothing either. Saying so here
     * saves the whole SSL_read_ex / SSL_get_error round that ends in WANT_READ (~1.5k
     * instructions per echoed message). The stream waits below next (tls_wait), which clears
     * dry; a spurious -EAGAIN only costs that wait, which returns at once if bytes are there.
     * Not under a transport: it reads on the fd's edges without calling wait. */
    if (c->dry && c->hs_done && !c->transport && c->prepos == c->prelen &&
        !SSL_has_pending(c->ssl)) {
        c->want[SIMUL_STREAM_READ] = SIMUL_STREAM_READ;
        return -EAGAIN;
    }
    clear_errors();
    int rc = SSL_read_ex(c->ssl, buf, len, &got);
    /* a lazy handshake (transports) ends inside a read or write, maybe one that then says
     * WANT_READ for want of application data */
    if (!c->hs_done && SSL_is_init_finished(c->ssl))
        handshake_done(c);
    if (rc == 1) {
        /* More records already read below (one read(2) takes what the socket holds: a
         * pipelining peer, bulk data): into the same buffer, so the stream sees them in one
         * read and the echo goes back as one record. Only while OpenSSL holds bytes; a partial
         * record ends it (WANT_READ, nothing lost). A close_notify is met again by the next
         * read; an error is kept in c->err, which the next read returns. */
        while (got < len && SSL_has_pending(c->ssl)) {
            size_t more = 0;
            int rc2 = SSL_read_ex(c->ssl, (char *)buf + got, len - got, &more);
            if (rc2 == 1) {
                got += more;
                continue;
            }
            int dir2 = SIMUL_STREAM_READ;
            int r2 = map_error(c, rc2, &dir2);
            if (r2 == -EAGAIN)
                c->want[SIMUL_STREAM_READ] = dir2;
            else if (r2 < 0)
                set_err(c, r2);
            else
                c->dry = false; /* the next read must ask OpenSSL: it says EOF again */
            break;
        }
        return (long)got;
    }
    int dir = SIMUL_STREAM_READ;
    int r = map_error(c, rc, &dir);
    if (r == -EAGAIN) {
        c->want[SIMUL_STREAM_READ] = dir;
        return r;
    }
    if (r < 0)
        set_err(c, r);
    else if (r == 0)
        lost_list_add(c); /* the peer's close_notify: the transport ends too */
    return r;
}

/* One writev below carries at most this much plaintext's records (the stream's high-water
 * mark): bounded memory for a peer that does not read, and 4 records per syscall for bulk. */
#define BATCH (64u * 1024u)

static long tls_writev(void *ctx, const struct iovec *iov, int iovcnt)
{
    tls_conn *c = ctx;
    if (c->err)
        return c->err;
    touch(c);
    /* Records of an earlier call still held: they go first; the plaintext they carry is
     * reported written only once they are below (the stream retries with the same head). */
    if (ob_pending(c)) {
        int f = ob_flush(c);
        if (f == -EAGAIN) {
            c->want[SIMUL_STREAM_WRITE] = SIMUL_STREAM_WRITE;
            c->wblocked = true;
            return -EAGAIN;
        }
        if (f < 0) {
            snprintf(c->why, sizeof c->why, "%s", simul_strerror(f));
            set_err(c, f);
            return f;
        }
    }
    if (c->owed) {
        size_t o = c->owed;
        c->owed = 0;
        c->wblocked = false;
        return (long)o;
    }
    /* One record's worth per call: the first buffer, topped up from the next ones when it is
     * small so that small writev pieces do not each become a record. A retry after WANT_* gets
     * the same leading bytes again (the stream's queue head), as OpenSSL requires. */
    enum { RECORD = 16384 };
    const char *p = iov[0].iov_base;
    size_t n = iov[0].iov_len;
    char *tmp = NULL; /* on the heap: task stacks are small */
    if (iovcnt > 1 && n < RECORD / 4 && (tmp = malloc(RECORD)) != NULL) {
        size_t k = 0;
        for (int i = 0; i < iovcnt && k < RECORD; i++) {
            size_t m = iov[i].iov_len < RECORD - k ? iov[i].iov_len : RECORD - k;
            memcpy(tmp + k, iov[i].iov_base, m);
            k += m;
        }
        p = tmp;
        n = k;
    }
    size_t done = 0;
    int rc = 0;
    if (n <= RECORD) {
        /* One record (the common case): straight below, no copy; a full bottom is OpenSSL's
         * retry (it keeps the record) */
        clear_errors();
        rc = SSL_write_ex(c->ssl, p, n, &done);
    } else {
        /* Several records (OpenSSL writes one per SSL_write with partial writes on): made into
         * ob and sent in one write. What the bottom does not take now stays in ob and the
         * plaintext is owed to the retry, so the stream's accounting stays exact. */
        if (n > BATCH)
            n = BATCH;
        c->collect = true;
        clear_errors();
        size_t d = 0;
        while (done < n && (rc = SSL_write_ex(c->ssl, p + done, n - done, &d)) == 1)
            done += d;
        c->collect = false;
        if (done) { /* an error after some records: the next call meets it again */
            clear_errors();
            rc = 1;
        }
        if (c->lower_err == -ENOMEM) {
            rc = 0;
            done = 0;
        }
    }
    free(tmp);
    if (!c->hs_done && SSL_is_init_finished(c->ssl))
        handshake_done(c);
    if (ob_pending(c)) { /* records collected (or a lazy handshake's): below in one write */
        int f = ob_flush(c);
        if (f == -EAGAIN) {
            c->owed = rc == 1 ? done : 0;
            c->want[SIMUL_STREAM_WRITE] = SIMUL_STREAM_WRITE;
            c->wblocked = true;
            return -EAGAIN;
        }
        if (f < 0) {
            snprintf(c->why, sizeof c->why, "%s", simul_strerror(f));
            set_err(c, f);
            return f;
        }
    }
    c->wblocked = rc != 1;
    if (rc == 1)
        return (long)done;
    int dir = SIMUL_STREAM_WRITE;
    int r = map_error(c, rc, &dir);
    if (r == -EAGAIN) {
        c->want[SIMUL_STREAM_WRITE] = dir;
        return r;
    }
    if (r == 0) /* close_notify received while writing: the peer is gone */
        r = -EPIPE;
    set_err(c, r);
    return r;
}

static int tls_wait(void *ctx, int dir)
{
    tls_conn *c = ctx;
    if (c->err)
        return 0; /* the next call reports it */
    /* (not SSL_has_pending: a partial record counts there, and waiting "ready" on it would spin;
     * after -EAGAIN from SSL_read nothing decrypted is pending) */
    if (dir == SIMUL_STREAM_READ && c->prepos < c->prelen)
        return 0;
    /* the next read asks OpenSSL again (cleared before: c may be gone once the wait returns,
     * the stream closed under it) */
    c->dry = false;
    return c->lower->wait(c->lctx, c->want[dir]);
}

/* A close_notify (and anything else held) that did not fit below when the stream closed: a
 * duplicate of the socket's fd keeps the connection open after the stream let its fd go, and
 * the loop writes the bytes when the socket has room, then closes, or drops them at the
 * config's close timeout (the peer then sees a truncation, as it would have without us). The
 * kernel's own linger works the same way for the bytes it already holds. */
typedef struct notify_linger {
    int fd;
    char *buf;
    size_t len, pos;
    simul_handle timer;
} notify_linger;

static void linger_end(notify_linger *l)
{
    if (l->timer.id)
        simul_handle_cancel(l->timer);
    simul_remove_writer(l->fd);
    simul_close(l->fd);
    free(l->buf);
    free(l);
}

static void linger_writable(int fd, void *arg)
{
    notify_linger *l = arg;
    while (l->pos < l->len) {
        ssize_t n = send(fd, l->buf + l->pos, l->len - l->pos, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, l->buf + l->pos, l->len - l->pos);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return; /* the next edge */
        if (n <= 0)
            break; /* the peer is gone: nothing more to deliver */
        l->pos += (size_t)n;
    }
    linger_end(l);
}

static void linger_expired(void *arg)
{
    notify_linger *l = arg;
    l->timer.id = 0;
    if (simul_loop_current() && simul_loop_get_debug(simul_loop_current()))
        fprintf(stderr, "simul-tls: close_notify not delivered in time (the peer does not read): "
                        "%zu bytes dropped\n", l->len - l->pos);
    linger_end(l);
}

/* Hands what ob holds to a linger on a duplicate of the fd below; false if that cannot be (no
 * fd, no loop, no memory: the bytes are dropped as before). */
static bool linger_start(tls_conn *c)
{
    int fd = c->lower->fd ? c->lower->fd(c->lctx) : -1;
    double t = c->cfg->close_timeout;
    if (fd < 0 || t <= 0 || !simul_loop_current())
        return false;
    notify_linger *l = calloc(1, sizeof *l);
    if (!l)
        return false;
    l->len = c->oblen - c->obpos;
    l->buf = malloc(l->len);
    l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (!l->buf || l->fd < 0) {
        if (l->fd >= 0)
            close(l->fd);
        free(l->buf);
        free(l);
        return false;
    }
    memcpy(l->buf, c->ob + c->obpos, l->len);
    if (simul_add_writer(l->fd, linger_writable, l) < 0 ||
        simul_call_later(t, linger_expired, l, &l->timer) < 0) {
        linger_end(l);
        return false;
    }
    c->obpos = c->oblen = 0;
    return true;
}

/* Sends close_notify: made into ob and written below at once when there is room (the stream
 * calls this after its queue is flushed, so there normally is). What does not fit stays in ob:
 * tls_close hands it to a linger, a read after write_eof tries again. */
static void send_close_notify(tls_conn *c)
{
    if (c->shut_sent || c->err || !c->hs_done)
        return;
    c->shut_sent = true;
    c->collect = true;
    clear_errors();
    (void)SSL_shutdown(c->ssl);
    clear_errors();
    c->collect = false;
    (void)ob_flush(c);
}

static int tls_shutdown(void *ctx)
{
    tls_conn *c = ctx;
    send_close_notify(c);
    if (ob_pending(c))
        return 0; /* the half-close below waits for the close_notify: at close, or a read */
    if (c->lower->shutdown)
        return c->lower->shutdown(c->lctx);
    return 0;
}

static void conn_free(tls_conn *c)
{
    if (c->timer.id)
        simul_handle_cancel(c->timer);
    if (c->idle.id)
        simul_handle_cancel(c->idle);
    lost_unlist(c);
    if (c->ssl)
        SSL_free(c->ssl); /* frees the BIO too */
    simul_tls_config_free(c->cfg);
    free(c->pre);
    free(c->skey);
    free(c->ob);
    free(c);
}

static void tls_close(void *ctx, bool abort)
{
    tls_conn *c = ctx;
    /* A close that dropped plaintext still queued above (a close cut short by a deadline: the
     * last write was refused) sends no close_notify: the peer sees a truncation, not a clean
     * end of data that is not all there. */
    if (!abort && !c->wblocked) {
        send_close_notify(c);
        if (ob_pending(c) && !c->err)
            (void)(ob_flush(c) == -EAGAIN && linger_start(c));
    }
    c->lower->close(c->lctx, abort);
    conn_free(c);
}

static int tls_fd(void *ctx)
{
    tls_conn *c = ctx;
    return c->lower->fd ? c->lower->fd(c->lctx) : -1;
}

static int tls_unread(void *ctx, const void *buf, size_t len)
{
    tls_conn *c = ctx;
    size_t left = c->prelen - c->prepos;
    char *p = malloc(left + len);
    if (!p)
        return -ENOMEM;
    if (left)
        memcpy(p, c->pre + c->prepos, left);
    memcpy(p + left, buf, len);
    free(c->pre);
    c->pre = p;
    c->prelen = left + len;
    c->prepos = 0;
    return 0;
}

static const simul_stream_ops tls_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .wait = tls_wait,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .fd = tls_fd, /* no ZEROCOPY: sendfile copies through TLS */
    .unread = tls_unread,
};

static tls_conn *conn_of(const simul_stream *s)
{
    void *ctx = NULL;
    const simul_stream_ops *ops = simul_stream_bottom(s, &ctx);
    return ops == &tls_ops ? ctx : NULL;
}

/* ---- building contexts --------------------------------------------------------------------- */

static int verify_mode(const simul_tls_config *cfg)
{
    if (!cfg->server)
        return cfg->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER;
    switch (cfg->client_cert_mode) {
    case SIMUL_TLS_CLIENT_CERT_OPTIONAL:
        return SSL_VERIFY_PEER;
    case SIMUL_TLS_CLIENT_CERT_REQUIRED:
        return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    default:
        return SSL_VERIFY_NONE;
    }
}

/* The client's session cache: OpenSSL hands each new session (TLS 1.3 tickets arrive after the
 * handshake) to this callback, which files it under the connection's host:port. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    tls_conn *c = SSL_get_ex_data(ssl, conn_idx);
    if (!c || !c->skey)
        return 0;
    simul_tls_config *cfg = c->cfg;
    pthread_mutex_lock(&cfg->mu);
    cached_session **pp = &cfg->sessions, *hit = NULL;
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->key, c->skey) == 0) {
            hit = *pp;
            break;
        }
    if (hit) {
        SSL_SESSION_free(hit->sess);
        hit->sess = sess;
    } else {
        if (cfg->nsessions >= SESSION_CACHE_MAX) { /* drop the oldest (the list's tail) */
            cached_session **t = &cfg->sessions;
            while ((*t)->next)
                t = &(*t)->next;
            SSL_SESSION_free((*t)->sess);
            free((*t)->key);
            free(*t);
            *t = NULL;
            cfg->nsessions--;
        }
        hit = calloc(1, sizeof *hit);
        if (hit)
            hit->key = strdup(c->skey);
        if (!hit || !hit->key) {
            free(hit);
            pthread_mutex_unlock(&cfg->mu);
            return 0;
        }
        hit->sess = sess;
        hit->next = cfg->sessions;
        cfg->sessions = hit;
        cfg->nsessions++;
    }
    pthread_mutex_unlock(&cfg->mu);
    return 1; /* we keep the reference */
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    simul_tls_config *cfg = arg;
    if (!cfg->alpn)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *o = NULL;
    if (SSL_select_next_proto(&o, outlen, cfg->alpn, (unsigned)cfg->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* "no application protocol" */
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *config_ctx(simul_tls_config *cfg); /* a new reference */

static int servername_cb(SSL *ssl, int *al, void *arg)
{
    (void)al;
    simul_tls_config *cfg = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!cfg->sni_cb || !name)
        return SSL_TLSEXT_ERR_OK;
    simul_tls_config *pick = cfg->sni_cb(name, cfg->sni_arg);
    if (!pick || pick == cfg)
        return SSL_TLSEXT_ERR_OK;
    SSL_CTX *ctx = config_ctx(pick);
    if (!ctx)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    SSL_set_SSL_CTX(ssl, ctx); /* takes its own reference */
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), NULL);
    SSL_CTX_free(ctx);
    return SSL_TLSEXT_ERR_OK;
}

/* Builds a context from cfg's settings (cfg->mu held). Returns NULL with the reason in why. */
static SSL_CTX *build_ctx(simul_tls_config *cfg, char *why, size_t whylen, int *err)
{
    *err = -EPROTO;
    clear_errors();
    SSL_CTX *ctx = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        ssl_reason(why, whylen, "SSL_CTX_new failed");
        *err = -ENOMEM;
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, cfg->min_version);
    SSL_CTX_set_max_proto_version(ctx, cfg->max_version);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 (cfg->allow_trunc ? SSL_OP_IGNORE_UNEXPECTED_EOF : 0));
    /* (no SSL_MODE_RELEASE_BUFFERS unless asked for with an idle release of 0: the idle check
     * releases them, see idle_check) */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              (idle_period_of(cfg) > 0 ? 0 : SSL_MODE_RELEASE_BUFFERS));
    /* One read(2) per record instead of two (header, then body); safe with our wait: SSL_read
     * says WANT_READ only when what it holds is not a whole record */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_app_data(ctx, cfg);
    SSL_CTX_set_verify(ctx, verify_mode(cfg), NULL);
    if (cfg->cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1) {
            ssl_reason(why, whylen, "cannot load the certificate chain");
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key ? cfg->key : cfg->cert, SSL_FILETYPE_PEM) !=
                1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            ssl_reason(why, whylen, "cannot load the private key");
            goto fail;
        }
    }
    if (cfg->ca_file || cfg->ca_dir) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, cfg->ca_dir) != 1) {
            ssl_reason(why, whylen, "cannot load the CA certificates");
            goto fail;
        }
        if (cfg->server && cfg->ca_file) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
            if (names)
                SSL_CTX_set_client_CA_list(ctx, names);
        }
    } else if (!cfg->server && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ssl_reason(why, whylen, "cannot load the system trust store");
        goto fail;
    }
    if (cfg->server) {
        /* Resumption by tickets only (stateless, TLS 1.2 and 1.3): no server-side session
         * cache, so 10,000 clients leave nothing behind */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        static const unsigned char sid[] = "simul-tls";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
        /* One TLS 1.3 ticket, not OpenSSL's two: a client keeps one session anyway, and each
         * ticket is a record (and a send) of its own after the handshake */
        SSL_CTX_set_num_tickets(ctx, 1);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, cfg);
        SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
        SSL_CTX_set_tlsext_servername_arg(ctx, cfg);
    } else {
        if (cfg->alpn && SSL_CTX_set_alpn_protos(ctx, cfg->alpn, (unsigned)cfg->alpn_len) != 0) {
            ssl_reason(why, whylen, "cannot set ALPN");
            goto fail;
        }
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    }
    clear_errors();
    return ctx;
fail:
    if (ERR_peek_error() == 0 && why && whylen && !why[0])
        set_why(why, whylen, "%s", "configuration failed");
    SSL_CTX_free(ctx);
    return NULL;
}

/* Rebuilds and swaps cfg->ctx (cfg->mu held). Connections keep the context they started with. */
static int rebuild(simul_tls_config *cfg, char *why, size_t whylen)
{
    int err;
    SSL_CTX *ctx = build_ctx(cfg, why, whylen, &err);
    if (!ctx)
        return err;
    SSL_CTX_free(cfg->ctx);
    cfg->ctx = ctx;
    return 0;
}

static SSL_CTX *config_ctx(simul_tls_config *cfg)
{
    pthread_mutex_lock(&cfg->mu);
    SSL_CTX *ctx = cfg->ctx;
    if (ctx)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&cfg->mu);
    return ctx;
}

static int config_new(bool server, simul_tls_config **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    pthread_once(&bio_once, make_bio_method);
    if (!bio_method || conn_idx < 0)
        return -ENOMEM;
    simul_tls_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return -ENOMEM;
    atomic_init(&cfg->refs, 1);
    cfg->server = server;
    cfg->min_version = TLS1_2_VERSION;
    cfg->hs_timeout = 60; /* asyncio's ssl_handshake_timeout */
    cfg->idle_release = 1;
    cfg->close_timeout = 5;
    pthread_mutex_init(&cfg->mu, NULL);
    int rc = rebuild(cfg, NULL, 0);
    if (rc < 0) {
        pthread_mutex_destroy(&cfg->mu);
        free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int simul_tls_config_new_client(simul_tls_config **out)
{
    return config_new(false, out);
}

int simul_tls_config_new_server(simul_tls_config **out)
{
    return config_new(true, out);
}

static simul_tls_config *config_ref(simul_tls_config *cfg)
{
    atomic_fetch_add(&cfg->refs, 1);
    return cfg;
}

void simul_tls_config_free(simul_tls_config *cfg)
{
    if (!cfg || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    SSL_CTX_free(cfg->ctx);
    while (cfg->sessions) {
        cached_session *cs = cfg->sessions;
        cfg->sessions = cs->next;
        SSL_SESSION_free(cs->sess);
        free(cs->key);
        free(cs);
    }
    free(cfg->cert);
    free(cfg->key);
    free(cfg->ca_file);
    free(cfg->ca_dir);
    free(cfg->alpn);
    pthread_mutex_destroy(&cfg->mu);
    free(cfg);
}

/* Swaps two string settings in, rebuilds, and puts the old ones back if that failed. */
static int set_pair(simul_tls_config *cfg, char **a, char **b, const char *va, const char *vb,
                    char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = 0;
    char *na = dup_or_null(va), *nb = dup_or_null(vb);
    if ((va && !na) || (vb && !nb)) {
        free(na);
        free(nb);
        return -ENOMEM;
    }
    pthread_mutex_lock(&cfg->mu);
    char *oa = *a, *ob = *b;
    *a = na;
    *b = nb;
    int rc = rebuild(cfg, why, whylen);
    if (rc < 0) {
        *a = oa;
        *b = ob;
        oa = na;
        ob = nb;
    }
    pthread_mutex_unlock(&cfg->mu);
    free(oa);
    free(ob);
    return rc;
}

int simul_tls_config_set_cert(simul_tls_config *cfg, const char *chain_file, const char *key_file,
                              char *why, size_t whylen)
{
    if (!cfg || !chain_file)
        return -EINVAL;
    return set_pair(cfg, &cfg->cert, &cfg->key, chain_file, key_file, why, whylen);
}

int simul_tls_config_set_ca(simul_tls_config *cfg, const char *ca_file, const char *ca_dir,
                            char *why, size_t whylen)
{
    if (!cfg || (!ca_file && !ca_dir))
        return -EINVAL;
    return set_pair(cfg, &cfg->ca_file, &cfg->ca_dir, ca_file, ca_dir, why, whylen);
}

/* Changes one plain setting under the lock and rebuilds. */
#define SET_AND_REBUILD(cfg, stmt)                                                                 \
    do {                                                                                           \
        pthread_mutex_lock(&(cfg)->mu);                                                            \
        stmt;                                                                                      \
        int rc_ = rebuild((cfg), NULL, 0);                                                         \
        pthread_mutex_unlock(&(cfg)->mu);                                                          \
        return rc_;                                                                                \
    } while (0)

int simul_tls_config_insecure_skip_verify(simul_tls_config *cfg)
{
    if (!cfg || cfg->server)
        return -EINVAL;
    SET_AND_REBUILD(cfg, cfg->insecure = true);
}

int simul_tls_config_allow_truncation(simul_tls_config *cfg, bool allow)
{
    if (!cfg)
        return -EINVAL;
    SET_AND_REBUILD(cfg, cfg->allow_trunc = allow);
}

int simul_tls_config_set_min_version(simul_tls_config *cfg, int version)
{
    if (!cfg || (version != TLS1_2_VERSION && version != TLS1_3_VERSION))
        return -EINVAL;
    SET_AND_REBUILD(cfg, cfg->min_version = version);
}

int simul_tls_config_set_max_version(simul_tls_config *cfg, int version)
{
    if (!cfg || (version != 0 && version != TLS1_2_VERSION && version != TLS1_3_VERSION))
        return -EINVAL;
    SET_AND_REBUILD(cfg, cfg->max_version = version);
}

int simul_tls_config_set_handshake_timeout(simul_tls_config *cfg, double seconds)
{
    if (!cfg || !(seconds >= 0) || seconds > 1e9)
        return -EINVAL;
    pthread_mutex_lock(&cfg->mu);
    cfg->hs_timeout = seconds;
    pthread_mutex_unlock(&cfg->mu);
    return 0;
}

int simul_tls_config_set_idle_release(simul_tls_config *cfg, double seconds)
{
    if (!cfg || !(seconds >= 0) || seconds > 1e9)
        return -EINVAL;
    SET_AND_REBUILD(cfg, cfg->idle_release = seconds);
}

int simul_tls_config_set_close_timeout(simul_tls_config *cfg, double seconds)
{
    if (!cfg || !(seconds >= 0) || seconds > 1e9)
        return -EINVAL;
    pthread_mutex_lock(&cfg->mu);
    cfg->close_timeout = seconds;
    pthread_mutex_unlock(&cfg->mu);
    return 0;
}

int simul_tls_config_set_alpn(simul_tls_config *cfg, const char *const *protos, int n)
{
    if (!cfg || n < 0 || (n > 0 && !protos))
        return -EINVAL;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        size_t l = protos[i] ? strlen(protos[i]) : 0;
        if (l == 0 || l > 255)
            return -EINVAL;
        len += 1 + l;
    }
    unsigned char *w = NULL;
    if (n) {
        w = malloc(len);
        if (!w)
            return -ENOMEM;
        unsigned char *p = w;
        for (int i = 0; i < n; i++) {
            size_t l = strlen(protos[i]);
            *p++ = (unsigned char)l;
            memcpy(p, protos[i], l);
            p += l;
        }
    }
    pthread_mutex_lock(&cfg->mu);
    free(cfg->alpn);
    cfg->alpn = w;
    cfg->alpn_len = len;
    int rc = rebuild(cfg, NULL, 0);
    pthread_mutex_unlock(&cfg->mu);
    return rc;
}

int simul_tls_config_set_client_cert_mode(simul_tls_config *cfg, int mode)
{
    if (!cfg || !cfg->server || mode < SIMUL_TLS_CLIENT_CERT_NONE ||
        mode > SIMUL_TLS_CLIENT_CERT_REQUIRED)
        return -EINVAL;
    SET_AND_REBUILD(cfg, cfg->client_cert_mode = mode);
}

int simul_tls_config_set_sni_cb(simul_tls_config *cfg, simul_tls_sni_cb cb, void *arg)
{
    if (!cfg || !cfg->server)
        return -EINVAL;
    pthread_mutex_lock(&cfg->mu);
    cfg->sni_cb = cb;
    cfg->sni_arg = arg;
    pthread_mutex_unlock(&cfg->mu);
    return 0;
}

/* ---- connections --------------------------------------------------------------------------- */

static bool is_ip(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* A TLS bottom over s's current one, not yet installed. */
static int conn_new(const simul_stream_ops *lower, void *lctx, simul_tls_config *cfg,
                    const char *name, const char *port, tls_conn **out)
{
    tls_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->lower = lower;
    c->lctx = lctx;
    if (!c->lower) {
        free(c);
        return -EBADF;
    }
    c->want[SIMUL_STREAM_READ] = SIMUL_STREAM_READ;
    c->want[SIMUL_STREAM_WRITE] = SIMUL_STREAM_WRITE;
    SSL_CTX *ctx = config_ctx(cfg);
    c->ssl = ctx ? SSL_new(ctx) : NULL;
    SSL_CTX_free(ctx);
    BIO *bio = c->ssl ? BIO_new(bio_method) : NULL;
    if (!bio) {
        if (c->ssl)
            SSL_free(c->ssl);
        free(c);
        clear_errors();
        return -ENOMEM;
    }
    BIO_set_data(bio, c);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_ex_data(c->ssl, conn_idx, c);
    c->cfg = config_ref(cfg);
    pthread_mutex_lock(&cfg->mu);
    c->idle_period = idle_period_of(cfg);
    pthread_mutex_unlock(&cfg->mu);
    int rc = 0;
    if (cfg->server) {
        SSL_set_accept_state(c->ssl);
    } else {
        SSL_set_connect_state(c->ssl);
        if (name && !cfg->insecure) {
            if (is_ip(name)) {
                if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1)
                    rc = -EINVAL;
            } else {
                SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                if (SSL_set1_host(c->ssl, name) != 1)
                    rc = -EINVAL;
            }
        } else if (!name && !cfg->insecure) {
            rc = -EINVAL; /* verification needs a name to check */
        }
        if (name && !is_ip(name) && SSL_set_tlsext_host_name(c->ssl, name) != 1)
            rc = -EINVAL;
        if (rc == 0 && name) {
            size_t kl = strlen(name) + (port ? strlen(port) : 0) + 2;
            c->skey = malloc(kl);
            if (!c->skey) {
                rc = -ENOMEM;
            } else {
                snprintf(c->skey, kl, "%s:%s", name, port ? port : "");
                pthread_mutex_lock(&cfg->mu);
                for (cached_session *cs = cfg->sessions; cs; cs = cs->next)
                    if (strcmp(cs->key, c->skey) == 0) {
                        SSL_set_session(c->ssl, cs->sess);
                        break;
                    }
                pthread_mutex_unlock(&cfg->mu);
            }
        }
    }
    clear_errors();
    if (rc < 0) {
        conn_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Flushes s's queued plaintext (replace_bottom refuses while bytes are queued). */
static int flush_plain(simul_stream *s)
{
    if (simul_stream_write_buffer_size(s) == 0)
        return 0;
    int rc = simul_stream_set_write_buffer_limits(s, 0, 0);
    if (rc == 0)
        rc = simul_stream_drain(s);
    simul_stream_set_write_buffer_limits(s, SIMUL_STREAM_HIGH_WATER, SIMUL_STREAM_LOW_WATER);
    return rc;
}

/* Runs the handshake by hand, waiting through the stream so that deadlines, cancellation and a
 * close from elsewhere end it. */
static int handshake_loop(simul_stream *s, tls_conn *c);

static int handshake(simul_stream *s, tls_conn *c)
{
    double t = c->cfg->hs_timeout;
    if (t <= 0)
        return handshake_loop(s, c);
    simul_scope sc; /* nested: a caller's earlier deadline still comes first */
    int rc = simul_scope_timeout(&sc, t);
    if (rc < 0)
        return rc;
    rc = handshake_loop(s, c);
    if (simul_scope_end(&sc) == 1 && rc == -ETIMEDOUT && conn_of(s) == c)
        snprintf(c->why, sizeof c->why, "handshake timed out");
    return rc;
}

static int handshake_loop(simul_stream *s, tls_conn *c)
{
    for (;;) {
        clear_errors();
        int rc = SSL_do_handshake(c->ssl);
        if (rc == 1) {
            handshake_done(c);
            return 0;
        }
        int dir = SIMUL_STREAM_READ;
        int r = map_error(c, rc, &dir);
        if (r != -EAGAIN) {
            if (r == 0) {
                r = -ECONNRESET;
                snprintf(c->why, sizeof c->why, "connection closed during the handshake");
            }
            set_err(c, r);
            return r;
        }
        c->want[SIMUL_STREAM_READ] = dir;
        r = simul_stream_wait_bottom(s, SIMUL_STREAM_READ);
        if (r < 0) {
            /* the stream may have closed its bottom (close_clients): touch c only if it is
             * still there */
            if (conn_of(s) == c && r != -ECANCELED && r != -ETIMEDOUT)
                set_err(c, r);
            return r;
        }
    }
}

static int start(simul_stream *s, simul_tls_config *cfg, const char *name, const char *port)
{
    if (!s || !cfg)
        return -EINVAL;
    if (conn_of(s))
        return -EALREADY;
    int rc = flush_plain(s);
    if (rc < 0)
        return rc;
    tls_conn *c;
    void *lctx = NULL;
    const simul_stream_ops *lower = simul_stream_bottom(s, &lctx);
    rc = conn_new(lower, lctx, cfg, name, port, &c);
    if (rc < 0)
        return rc;
    rc = simul_stream_replace_bottom(s, &tls_ops, c);
    if (rc < 0) {
        conn_free(c);
        return rc;
    }
    return handshake(s, c);
}

int simul_tls_start_tls(simul_stream *s, simul_tls_config *cfg, const char *server_name)
{
    if (cfg && cfg->server)
        return -EINVAL;
    return start(s, cfg, server_name, NULL);
}

int simul_tls_accept(simul_stream *s, simul_tls_config *cfg)
{
    if (cfg && !cfg->server)
        return -EINVAL;
    return start(s, cfg, NULL, NULL);
}

int simul_tls_open_connection(const char *host, const char *port, simul_tls_config *cfg,
                              simul_stream **out, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = 0;
    if (!host || !port || !cfg || !out || cfg->server)
        return -EINVAL;
    *out = NULL;
    simul_stream *s;
    int rc = simul_open_connection(host, port, &s);
    if (rc < 0) {
        set_why(why, whylen, "%s", simul_strerror(rc));
        return rc;
    }
    rc = start(s, cfg, host, port);
    if (rc < 0) {
        const char *w = simul_tls_last_error(s);
        set_why(why, whylen, "%s", w && w[0] ? w : simul_strerror(rc));
        simul_stream_abort(s);
        simul_stream_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- transports (protocols): the handshake runs inside the transport's reads and writes ---- */

/* A transport's handshake that did not end in time: abort the connection (the timer is
 * cancelled when the handshake ends or the bottom is closed, so c is alive here). */
static void handshake_expired(void *arg)
{
    tls_conn *c = arg;
    c->timer.id = 0;
    if (c->hs_done)
        return;
    set_err(c, -ETIMEDOUT);
    snprintf(c->why, sizeof c->why, "handshake timed out");
    simul_transport_abort(c->transport);
}

static int transport_start(simul_transport *t, simul_tls_config *cfg, const char *name)
{
    if (!t || !cfg)
        return -EINVAL;
    void *lctx = NULL;
    const simul_stream_ops *lower = simul_transport_bottom(t, &lctx);
    if (!lower)
        return -EPIPE;
    if (lower == &tls_ops)
        return -EALREADY;
    tls_conn *c;
    int rc = conn_new(lower, lctx, cfg, name, NULL, &c);
    if (rc < 0)
        return rc;
    rc = simul_transport_replace_bottom(t, &tls_ops, c);
    if (rc < 0) {
        conn_free(c);
        return rc;
    }
    /* A transport moves only on its socket's edges: start the handshake now (a client's
     * ClientHello goes out) so that the peer's answer makes the next edge. Errors stay in c and
     * end the connection at the transport's next read (connection_lost(err)). */
    c->transport = t;
    clear_errors();
    int hs = SSL_do_handshake(c->ssl);
    if (hs == 1) {
        handshake_done(c);
    } else {
        int dir;
        int r = map_error(c, hs, &dir);
        if (r < 0 && r != -EAGAIN)
            set_err(c, r);
        else if (cfg->hs_timeout > 0)
            simul_call_later(cfg->hs_timeout, handshake_expired, c, &c->timer);
    }
    return 0;
}

int simul_tls_transport_start_tls(simul_transport *t, simul_tls_config *cfg,
                                  const char *server_name)
{
    if (cfg && cfg->server)
        return -EINVAL;
    return transport_start(t, cfg, server_name);
}

int simul_tls_transport_accept(simul_transport *t, simul_tls_config *cfg)
{
    if (cfg && !cfg->server)
        return -EINVAL;
    return transport_start(t, cfg, NULL);
}

static tls_conn *conn_of_transport(const simul_transport *t)
{
    void *ctx = NULL;
    const simul_stream_ops *ops = t ? simul_transport_bottom(t, &ctx) : NULL;
    if (ops == &tls_ops)
        return ctx;
    if (!ops && t) /* connection_lost: the bottom is hidden but still there */
        for (tls_conn *c = lost_list; c; c = c->lost_next)
            if (c->transport == t)
                return c;
    return NULL;
}

const char *simul_tls_transport_last_error(const simul_transport *t)
{
    tls_conn *c = conn_of_transport(t);
    return c ? c->why : NULL;
}

const char *simul_tls_transport_version(const simul_transport *t)
{
    tls_conn *c = conn_of_transport(t);
    return c && c->hs_done ? SSL_get_version(c->ssl) : NULL;
}

/* ---- accessors ----------------------------------------------------------------------------- */

bool simul_tls_is_tls(const simul_stream *s)
{
    return conn_of(s) != NULL;
}

const char *simul_tls_last_error(const simul_stream *s)
{
    tls_conn *c = conn_of(s);
    return c ? c->why : NULL;
}

const char *simul_tls_version(const simul_stream *s)
{
    tls_conn *c = conn_of(s);
    return c && c->hs_done ? SSL_get_version(c->ssl) : NULL;
}

const char *simul_tls_cipher(const simul_stream *s)
{
    tls_conn *c = conn_of(s);
    return c && c->hs_done ? SSL_get_cipher_name(c->ssl) : NULL;
}

const char *simul_tls_alpn(const simul_stream *s)
{
    tls_conn *c = conn_of(s);
    if (!c)
        return NULL;
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(c->ssl, &p, &len);
    if (!p || !len)
        return NULL;
    memcpy(c->alpn, p, len);
    c->alpn[len] = 0;
    return c->alpn;
}

bool simul_tls_session_resumed(const simul_stream *s)
{
    tls_conn *c = conn_of(s);
    return c && SSL_session_reused(c->ssl) == 1;
}

int simul_tls_peer_subject(const simul_stream *s, char *buf, size_t len)
{
    tls_conn *c = conn_of(s);
    if (!c)
        return -ENOTCONN;
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (!peer)
        return -ENOENT;
    BIO *m = BIO_new(BIO_s_mem());
    if (!m)
        return -ENOMEM;
    X509_NAME_print_ex(m, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    char *data;
    long n = BIO_get_mem_data(m, &data);
    int rc;
    if (n < 0 || (size_t)n >= len) {
        rc = -ERANGE;
    } else {
        memcpy(buf, data, (size_t)n);
        buf[n] = 0;
        rc = (int)n;
    }
    BIO_free(m);
    return rc;
}
