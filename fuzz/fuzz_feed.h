/* fuzz_feed.h — the in-memory bottom the stream targets (fuzz_http_server.c, fuzz_tls_server.c)
 * read the fuzzer's bytes from: `chunk` bytes a read (0: all at once), then EOF; always ready, so
 * nothing waits; what is written is counted and its first bytes kept (an answer's start). */
#ifndef SIMUL_FUZZ_FEED_H
#define SIMUL_FUZZ_FEED_H

#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "simul.h"

typedef struct feed {
    const uint8_t *data;
    size_t len, pos, chunk;
    size_t written;
    char first[8]; /* the first bytes written: an answer's start */
} feed;

static long feed_read(void *ctx, void *buf, size_t len)
{
    feed *f = ctx;
    size_t n = f->len - f->pos;
    if (n == 0)
        return 0;
    if (f->chunk && n > f->chunk)
        n = f->chunk;
    if (n > len)
        n = len;
    memcpy(buf, f->data + f->pos, n);
    f->pos += n;
    return (long)n;
}

static long feed_writev(void *ctx, const struct iovec *iov, int cnt)
{
    feed *f = ctx;
    size_t n = 0;
    for (int i = 0; i < cnt; i++) {
        for (size_t k = 0; k < iov[i].iov_len && f->written + k - n < sizeof f->first; k++) {
            size_t at = f->written + n + k;
            if (at < sizeof f->first)
                f->first[at] = ((const char *)iov[i].iov_base)[k];
        }
        n += iov[i].iov_len;
    }
    f->written += n;
    return (long)n;
}

static int feed_wait(void *ctx, int dir)
{
    (void)ctx, (void)dir;
    return 0; /* always ready: read never says -EAGAIN */
}

static void feed_close(void *ctx, bool abort)
{
    (void)ctx, (void)abort;
}

static const simul_stream_ops feed_ops = {
    .read = feed_read, .writev = feed_writev, .wait = feed_wait, .close = feed_close};

#endif /* SIMUL_FUZZ_FEED_H */
