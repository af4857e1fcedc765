/* wbuf.h — the write queue of streams and transports: bytes the kernel (or the bottom) has not
 * taken yet, wbuf[head, tail), with the high/low-water accounting both do flow control with.
 * One contiguous region, so a flush is one write of it; memory goes back once it empties. */
#ifndef SIMUL_STREAM_WBUF_H
#define SIMUL_STREAM_WBUF_H

#include <stdbool.h>
#include <stddef.h>

struct iovec;

/* A buffer bigger than this is freed when the queue empties: none is kept. Streams and transports
 * write straight to the bottom while nothing is queued, so the queue is only used when the peer
 * is slow (the socket is full), which costs a wait anyway, and a malloc per such episode is
 * noise. Keeping one (up to 64 KiB, as before) made every connection that ever met a slow
 * moment hold it while idle (tests/unit/stream/test_stream_idle.c). */
#define SIMUL__WBUF_KEEP 0
#define SIMUL__WBUF_FIRST 4096

typedef struct simul__wbuf {
    char *buf;
    size_t cap, head, tail;
    size_t high, low; /* flow control: paused above high until at or below low */
    bool paused;
} simul__wbuf;

static inline size_t simul__wbuf_len(const simul__wbuf *b)
{
    return b->tail - b->head;
}

static inline bool simul__wbuf_empty(const simul__wbuf *b)
{
    return b->tail == b->head;
}

/* The queued bytes as one region (for one write or a writev of one). */
static inline const char *simul__wbuf_data(const simul__wbuf *b)
{
    return b->buf + b->head;
}

/* The queued bytes as an iovec for a writev (one region: the queue is kept contiguous, so a
 * flush is one write of all of it). Returns the count of iovecs filled: 0 if empty, else 1. */
int simul__wbuf_iov(const simul__wbuf *b, struct iovec *v);

/* Copies iov minus its first `skip` bytes (what a write already took) to the tail; `total` is
 * the iov's byte count. 0 or -ENOMEM (nothing added then). */
int simul__wbuf_append_iov(simul__wbuf *b, const struct iovec *iov, int cnt, size_t skip,
                           size_t total);
int simul__wbuf_append(simul__wbuf *b, const void *data, size_t len);

/* n bytes were written from the head. Once the queue is empty the buffer goes back to the start
 * and its memory goes back to malloc (SIMUL__WBUF_KEEP). */
void simul__wbuf_consume(simul__wbuf *b, size_t n);

/* Drops the queue and its memory (a failed or aborted connection). The limits stay; paused
 * clears. */
void simul__wbuf_drop(simul__wbuf *b);

/* Watermarks: true when this call paused (the queue went above high) / resumed (a paused
 * queue is at or below low now). */
static inline bool simul__wbuf_pause_check(simul__wbuf *b)
{
    if (b->paused || simul__wbuf_len(b) <= b->high)
        return false;
    b->paused = true;
    return true;
}

static inline bool simul__wbuf_resume_check(simul__wbuf *b)
{
    if (!b->paused || simul__wbuf_len(b) > b->low)
        return false;
    b->paused = false;
    return true;
}

#endif
