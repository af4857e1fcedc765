/* internal.h — what the files of libsimul-amqp share: the growable output buffer.
 * The idea: frames are encoded straight into the buffer the writer sends, so a frame is copied
 * once (its body from the caller) and never re-assembled. */
#ifndef SIMUL_AMQP_INTERNAL_H
#define SIMUL_AMQP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct outbuf {
    uint8_t *data;
    size_t len, cap;
} outbuf;

/* Makes room for `more` bytes after len. 0 or -ENOMEM (the buffer is unchanged then). */
static inline int outbuf_reserve(outbuf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return -12; /* -ENOMEM */
        cap *= 2;
    }
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -12;
    b->data = d;
    b->cap = cap;
    return 0;
}

static inline void outbuf_free(outbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
