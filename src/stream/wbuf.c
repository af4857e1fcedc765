/* wbuf.c — the one write queue of streams and transports (wbuf.h): append what the kernel did not
 * take, consume after each (partial) write. Space is made by sliding the queue to the front
 * before growing, so a queue that is written and flushed at the same pace never reallocates. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "wbuf.h"

/* Room for `add` more bytes at the tail. 0 or -ENOMEM. */
static int reserve(simul__wbuf *b, size_t add)
{
    if (b->cap - b->tail >= add)
        return 0;
    size_t used = b->tail - b->head;
    if (add > SIZE_MAX / 2 - used)
        return -ENOMEM;
    if (b->head > 0) {
        /* Slide first: the space at the front may be enough, and realloc copies less. */
        if (b->head >= used)
            memcpy(b->buf, b->buf + b->head, used); /* no overlap */
        else
            memmove(b->buf, b->buf + b->head, used);
        b->head = 0;
        b->tail = used;
        if (b->cap - used >= add)
            return 0;
    }
    size_t cap = b->cap ? b->cap * 2 : SIMUL__WBUF_FIRST;
    while (cap < used + add)
        cap *= 2;
    char *p = realloc(b->buf, cap); /* may grow in place: no copy at all */
    if (!p)
        return -ENOMEM;
    b->buf = p;
    b->cap = cap;
    return 0;
}

int simul__wbuf_append_iov(simul__wbuf *b, const struct iovec *iov, int cnt, size_t skip,
                           size_t total)
{
    int rc = reserve(b, total - skip);
    if (rc < 0)
        return rc;
    for (int i = 0; i < cnt; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(b->buf + b->tail, (const char *)iov[i].iov_base + skip, len - skip);
        b->tail += len - skip;
        skip = 0;
    }
    return 0;
}

int simul__wbuf_append(simul__wbuf *b, const void *data, size_t len)
{
    int rc = reserve(b, len);
    if (rc < 0)
        return rc;
    memcpy(b->buf + b->tail, data, len);
    b->tail += len;
    return 0;
}

int simul__wbuf_iov(const simul__wbuf *b, struct iovec *v)
{
    /* An empty queue may have no buffer at all: NULL + 0 is undefined (clang's UBSan says so). */
    v->iov_base = b->buf ? b->buf + b->head : NULL;
    v->iov_len = b->tail - b->head;
    return v->iov_len ? 1 : 0;
}

void simul__wbuf_consume(simul__wbuf *b, size_t n)
{
    b->head += n;
    if (b->head < b->tail)
        return;
    b->head = b->tail = 0;
    if (b->cap > SIMUL__WBUF_KEEP) { /* an idle connection holds no write buffer (wbuf.h) */
        free(b->buf);
        b->buf = NULL;
        b->cap = 0;
    }
}

void simul__wbuf_drop(simul__wbuf *b)
{
    free(b->buf);
    b->buf = NULL;
    b->cap = b->head = b->tail = 0;
    b->paused = false;
}
