/* test_stream_helpers.h — test bottoms for streams, written against the public headers only (as
 * an integration such as TLS is): a pair of in-memory pipes joining two streams of one loop
 * (small capacity, so writers queue and drain waits), and a wrapping bottom that slides under an
 * open stream as TLS does with start_tls, passing bytes through in record-sized pieces. The stream
 * tests run each case over sockets and again over one of these (`<case>_mem`, `<case>_wrap`). */
#ifndef SIMUL_TEST_STREAM_HELPERS_H
#define SIMUL_TEST_STREAM_HELPERS_H

#include <sys/uio.h>

#include "test_main_helpers.h"

/* ---- the mode a case runs in ---------------------------------------------------------------- */

enum { TEST_SOCK, TEST_MEM, TEST_WRAP };
static int test_mode; /* each case runs in its own process */

/* A case run twice: `name` over sockets and `name_mem` over the in-memory pair. */
#define SIMUL_STREAM_TEST_MEM(name)                                                                \
    static int name##_task(void *arg);                                                             \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        test_mode = TEST_SOCK;                                                                     \
        assert_int_equal(simul_test_run(name##_task, NULL), 0);                                    \
    }                                                                                              \
    static void name##_mem(void **state)                                                           \
    {                                                                                              \
        (void)state;                                                                               \
        test_mode = TEST_MEM;                                                                      \
        assert_int_equal(simul_test_run(name##_task, NULL), 0);                                    \
    }                                                                                              \
    static int name##_task(void *arg)

/* A case run twice: `name` over sockets and `name_wrap` with every stream (the client's and the
 * server's) moved onto a wrapping bottom first. */
#define SIMUL_STREAM_TEST_WRAP(name)                                                               \
    static int name##_task(void *arg);                                                             \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        test_mode = TEST_SOCK;                                                                     \
        assert_int_equal(simul_test_run(name##_task, NULL), 0);                                    \
    }                                                                                              \
    static void name##_wrap(void **state)                                                          \
    {                                                                                              \
        (void)state;                                                                               \
        test_mode = TEST_WRAP;                                                                     \
        assert_int_equal(simul_test_run(name##_task, NULL), 0);                                    \
    }                                                                                              \
    static int name##_task(void *arg)

/* ---- the in-memory pair ---------------------------------------------------------------------- */

/* Small, so a few KiB of writes fill it and the writer's queue, drain and flusher are used. */
#define MEM_CAP 4096

/* One direction: a ring of MEM_CAP bytes. */
typedef struct mem_pipe {
    char buf[MEM_CAP];
    size_t head, len;
    bool wclosed;  /* the writer shut down or closed: EOF after the data */
    bool rclosed;  /* the reader closed: writes get -EPIPE */
    bool reset;    /* an abort: both sides get -ECONNRESET, unread data is gone */
    simul_event *readable; /* set when data, EOF or a reset arrives */
    simul_event *writable; /* set when room is made or the reader goes */
} mem_pipe;

typedef struct mem_link {
    mem_pipe p[2]; /* p[i]: what end i writes */
    int open;      /* ends not yet closed */
} mem_link;

typedef struct mem_end {
    mem_link *l;
    int side;
} mem_end;

static inline long mem_read(void *ctx, void *buf, size_t len)
{
    mem_end *e = ctx;
    mem_pipe *in = &e->l->p[1 - e->side];
    if (in->reset)
        return -ECONNRESET;
    if (in->len == 0)
        return in->wclosed ? 0 : -EAGAIN;
    size_t n = 0;
    while (n < len && in->len) {
        size_t run = MEM_CAP - in->head;
        if (run > in->len)
            run = in->len;
        if (run > len - n)
            run = len - n;
        memcpy((char *)buf + n, in->buf + in->head, run);
        in->head = (in->head + run) % MEM_CAP;
        in->len -= run;
        n += run;
    }
    simul_event_set(in->writable);
    return (long)n;
}

static inline long mem_writev(void *ctx, const struct iovec *iov, int cnt)
{
    mem_end *e = ctx;
    mem_pipe *out = &e->l->p[e->side];
    if (out->reset)
        return -ECONNRESET;
    if (out->rclosed || out->wclosed)
        return -EPIPE;
    if (out->len == MEM_CAP)
        return -EAGAIN;
    size_t n = 0;
    for (int i = 0; i < cnt && out->len < MEM_CAP; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left && out->len < MEM_CAP) {
            size_t tail = (out->head + out->len) % MEM_CAP;
            size_t run = tail >= out->head ? MEM_CAP - tail : out->head - tail;
            if (run > left)
                run = left;
            memcpy(out->buf + tail, p, run);
            out->len += run;
            p += run;
            left -= run;
            n += run;
        }
    }
    simul_event_set(out->readable);
    return (long)n;
}

/* Suspends on the pipe's event until the direction may be ready; a cancellation (or the stream
 * ending the wait as it closes) returns through simul_event_wait's -ECANCELED. */
static inline int mem_wait(void *ctx, int dir)
{
    mem_end *e = ctx;
    mem_pipe *in = &e->l->p[1 - e->side], *out = &e->l->p[e->side];
    if (dir == SIMUL_STREAM_READ) {
        if (in->len || in->wclosed || in->reset)
            return 0;
        simul_event_clear(in->readable);
        return simul_event_wait(in->readable);
    }
    if (out->len < MEM_CAP || out->rclosed || out->reset)
        return 0;
    simul_event_clear(out->writable);
    return simul_event_wait(out->writable);
}

static inline int mem_shutdown(void *ctx)
{
    mem_end *e = ctx;
    mem_pipe *out = &e->l->p[e->side];
    out->wclosed = true;
    simul_event_set(out->readable);
    return 0;
}

static inline void mem_close(void *ctx, bool abort)
{
    mem_end *e = ctx;
    mem_link *l = e->l;
    mem_pipe *in = &l->p[1 - e->side], *out = &l->p[e->side];
    out->wclosed = true;
    in->rclosed = true;
    if (abort) {
        out->reset = in->reset = true;
        out->len = in->len = 0;
    }
    for (int i = 0; i < 2; i++) {
        simul_event_set(l->p[i].readable);
        simul_event_set(l->p[i].writable);
    }
    free(e);
    if (--l->open == 0) {
        for (int i = 0; i < 2; i++) {
            simul_event_free(l->p[i].readable);
            simul_event_free(l->p[i].writable);
        }
        free(l);
    }
}

static const simul_stream_ops mem_ops = {
    .read = mem_read,
    .writev = mem_writev,
    .wait = mem_wait,
    .shutdown = mem_shutdown,
    .close = mem_close,
};

/* Two streams joined by in-memory pipes. */
static inline void mem_pair(simul_stream **a, simul_stream **b)
{
    mem_link *l = calloc(1, sizeof *l);
    assert_non_null(l);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(simul_event_new(&l->p[i].readable), 0);
        assert_int_equal(simul_event_new(&l->p[i].writable), 0);
    }
    l->open = 2;
    simul_stream **out[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        mem_end *e = calloc(1, sizeof *e);
        assert_non_null(e);
        e->l = l;
        e->side = i;
        assert_int_equal(simul_stream_from_bottom(&mem_ops, e, out[i]), 0);
    }
}

/* ---- the wrapping bottom -------------------------------------------------------------------- */

/* As TLS would: it owns the bottom it wraps and reaches it only through that bottom's ops, and
 * moves at most WRAP_RECORD bytes per call (short writes and reads, like records). Its own
 * buffering is none, so the stream's flow control is what bounds memory. */
#define WRAP_RECORD 1500

typedef struct wrap_ctx {
    const simul_stream_ops *lower;
    void *lctx;
    char *pre; /* bytes handed over by replace_bottom (unread), read first */
    size_t prelen, prepos;
} wrap_ctx;

static inline long wrap_read(void *ctx, void *buf, size_t len)
{
    wrap_ctx *w = ctx;
    if (len > WRAP_RECORD)
        len = WRAP_RECORD;
    if (w->prepos < w->prelen) {
        size_t n = w->prelen - w->prepos < len ? w->prelen - w->prepos : len;
        memcpy(buf, w->pre + w->prepos, n);
        w->prepos += n;
        return (long)n;
    }
    return w->lower->read(w->lctx, buf, len);
}

static inline int wrap_unread(void *ctx, const void *buf, size_t len)
{
    wrap_ctx *w = ctx;
    if (w->prepos < w->prelen)
        return -EBUSY; /* once only, in this test bottom */
    char *p = realloc(w->pre, len);
    if (!p)
        return -ENOMEM;
    memcpy(p, buf, len);
    w->pre = p;
    w->prelen = len;
    w->prepos = 0;
    return 0;
}

static inline long wrap_writev(void *ctx, const struct iovec *iov, int cnt)
{
    wrap_ctx *w = ctx;
    struct iovec v[8];
    size_t room = WRAP_RECORD;
    int n = 0;
    for (int i = 0; i < cnt && n < 8 && room; i++) {
        if (!iov[i].iov_len)
            continue;
        v[n].iov_base = iov[i].iov_base;
        v[n].iov_len = iov[i].iov_len < room ? iov[i].iov_len : room;
        room -= v[n].iov_len;
        n++;
    }
    return w->lower->writev(w->lctx, v, n);
}

static inline int wrap_wait(void *ctx, int dir)
{
    wrap_ctx *w = ctx;
    if (dir == SIMUL_STREAM_READ && w->prepos < w->prelen)
        return 0;
    return w->lower->wait(w->lctx, dir);
}

static inline int wrap_shutdown(void *ctx)
{
    wrap_ctx *w = ctx;
    return w->lower->shutdown ? w->lower->shutdown(w->lctx) : -EOPNOTSUPP;
}

static inline void wrap_close(void *ctx, bool abort)
{
    wrap_ctx *w = ctx;
    w->lower->close(w->lctx, abort);
    free(w->pre);
    free(w);
}

static inline int wrap_fd(void *ctx)
{
    wrap_ctx *w = ctx;
    return w->lower->fd ? w->lower->fd(w->lctx) : -1;
}

static const simul_stream_ops wrap_ops = {
    .read = wrap_read,
    .writev = wrap_writev,
    .wait = wrap_wait,
    .shutdown = wrap_shutdown,
    .close = wrap_close,
    .fd = wrap_fd, /* no ZEROCOPY: sendfile copies through the wrapper */
    .unread = wrap_unread,
};

/* Slides a wrapping bottom under s (start_tls's move). */
static inline void wrap_stream(simul_stream *s)
{
    wrap_ctx *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->lower = simul_stream_bottom(s, &w->lctx);
    assert_non_null(w->lower);
    assert_int_equal(simul_stream_replace_bottom(s, &wrap_ops, w), 0);
    void *ctx;
    assert_true(simul_stream_bottom(s, &ctx) == &wrap_ops && ctx == w);
}

/* In wrap mode: s goes onto a wrapping bottom. Returns s. */
static inline simul_stream *test_wrap(simul_stream *s)
{
    if (s && test_mode == TEST_WRAP)
        wrap_stream(s);
    return s;
}

/* ---- servers whose streams are wrapped in wrap mode ----------------------------------------- */

typedef struct wrap_server {
    simul_stream_handler handler;
    void *arg;
} wrap_server;

static inline int wrap_handler(simul_stream *s, void *arg)
{
    wrap_server *ws = arg;
    wrap_stream(s);
    return ws->handler(s, ws->arg);
}

/* simul_start_server_opts; in wrap mode each connection's stream is wrapped before the handler
 * sees it (as a TLS server handshakes first). */
static inline int test_start_server_opts(const simul_stream_server_opts *o,
                                         simul_stream_handler handler, void *arg,
                                         simul_server **out)
{
    if (test_mode != TEST_WRAP)
        return simul_start_server_opts(o, handler, arg, out);
    static wrap_server servers[16]; /* never freed: a test makes a few */
    static int used;
    assert_true(used < 16);
    wrap_server *ws = &servers[used++];
    ws->handler = handler;
    ws->arg = arg;
    return simul_start_server_opts(o, wrap_handler, ws, out);
}

static inline int test_start_server(const char *host, const char *port,
                                    simul_stream_handler handler, void *arg, simul_server **out)
{
    simul_stream_server_opts o = {.host = host, .port = port};
    return test_start_server_opts(&o, handler, arg, out);
}

#endif /* SIMUL_TEST_STREAM_HELPERS_H */
