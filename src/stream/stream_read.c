/* stream_read.c — the reading half of a stream (asyncio's StreamReader). Data is read when a
 * call asks for it, straight into the caller's memory when the buffer is empty and the request
 * is large, else into the stream's buffer. A read that fails for any reason but EOF leaves every
 * received byte in the buffer, so cancelling a read never loses data. An idle stream holds no
 * buffer: a reader about to wait with its buffer empty gives it back (to a small per-thread
 * cache, so a busy connection that waits between messages pays a push and a pop, not malloc). */
#include <limits.h>
#include <string.h>

#include "stream.h"

#define RBUF_FIRST 4096       /* the buffer's first size */
#define RBUF_ROOM 1024        /* free space below which it is compacted or grown */
#define RBUF_KEEP (64 * 1024) /* a bigger one is given back once it is empty */
#define DIRECT_MIN 4096       /* reads at least this large skip the buffer when it is empty */

/* ---- buffers: taken when data arrives, given back when the stream goes idle -------------------- */

/* Buffers of RBUF_FIRST bytes given back by streams that went idle, for the next one that
 * receives. Bounded: a burst of connections going idle returns the rest to malloc. Per thread,
 * like every loop; emptied when the thread's last stream is freed, so none outlives its loop. */
#define RBUF_CACHE 32
#define TLS_IE __attribute__((tls_model("initial-exec")))
static __thread struct {
    char *buf[RBUF_CACHE];
    int n;
    long streams; /* stream records alive on this thread */
} rcache TLS_IE;

static void rbuf_give_back(simul_stream *s)
{
    if (s->rcap == RBUF_FIRST && rcache.n < RBUF_CACHE)
        rcache.buf[rcache.n++] = s->rbuf;
    else
        free(s->rbuf);
    s->rbuf = NULL;
    s->rcap = s->rpos = s->rend = 0;
}

void simul__stream_rbuf_born(void)
{
    rcache.streams++;
}

void simul__stream_rbuf_died(simul_stream *s)
{
    if (s->rbuf)
        rbuf_give_back(s);
    if (--rcache.streams <= 0) {
        rcache.streams = 0;
        while (rcache.n > 0)
            free(rcache.buf[--rcache.n]);
    }
}

/* The stream has no buffer: one from the cache, else a new one. 0 or -ENOMEM. */
static int rbuf_take(simul_stream *s)
{
    char *p = rcache.n > 0 ? rcache.buf[--rcache.n] : malloc(RBUF_FIRST);
    if (!p)
        return -ENOMEM;
    s->rbuf = p;
    s->rcap = RBUF_FIRST;
    return 0;
}

static int enter_read(simul_stream *s, simul_task **t, const char *call)
{
    int rc = simul__stream_enter(s, t, call);
    if (rc < 0)
        return rc;
    if (s->reader) {
        simul__stream_leave(s);
        return -EBUSY; /* reads from two tasks would interleave bytes unpredictably */
    }
    s->reader = *t;
    return 0;
}

static void leave_read(simul_stream *s)
{
    s->reader = NULL;
    simul__stream_leave(s);
}

/* Waits in the bottom until it may have data. A cancellation point; -ECONNABORTED once the
 * stream is being closed or aborted by another task (the bottom must not be touched then). */
static inline int wait_readable(simul_stream *s, simul_task *t)
{
    if (s->rbuf && s->rpos == s->rend)
        rbuf_give_back(s); /* idle from here on: no buffer while it waits */
    int rc = simul__stream_bwait(s, t, SIMUL_STREAM_READ);
    return simul__stream_resumed(s, t, rc);
}

/* One read of the bottom (read(2) for the fd bottom) into the buffer's free space. Returns the count, 0 at EOF, -EAGAIN, -ENOMEM, or
 * the read error (made sticky). Moves the buffer: pointers into it die here. */
static long fill(simul_stream *s)
{
    if (s->rpos == s->rend) {
        s->rpos = s->rend = 0;
        if (s->rcap > RBUF_KEEP) { /* one long line must not pin its buffer forever */
            free(s->rbuf);
            s->rbuf = NULL;
            s->rcap = 0;
        }
    }
    if (SIMUL__UNLIKELY(!s->rbuf) && rbuf_take(s) < 0)
        return -ENOMEM;
    if (s->rcap - s->rend < RBUF_ROOM) {
        if (s->rpos > 0) {
            memmove(s->rbuf, s->rbuf + s->rpos, s->rend - s->rpos);
            s->rend -= s->rpos;
            s->rpos = 0;
        }
        if (s->rcap - s->rend < RBUF_ROOM) {
            size_t cap = s->rcap ? s->rcap * 2 : RBUF_FIRST;
            char *p = realloc(s->rbuf, cap);
            if (!p)
                return -ENOMEM;
            s->rbuf = p;
            s->rcap = cap;
        }
    }
    long n = simul__stream_bread(s, s->rbuf + s->rend, s->rcap - s->rend);
    if (n > 0)
        s->rend += (size_t)n;
    else if (n == 0)
        s->eof = 1;
    else if (n != -EAGAIN)
        s->rerr = (int)n;
    return n;
}

/* Copies up to n buffered bytes out. */
static size_t take(simul_stream *s, void *buf, size_t n)
{
    size_t have = s->rend - s->rpos;
    if (n > have)
        n = have;
    if (n) {
        memcpy(buf, s->rbuf + s->rpos, n);
        s->rpos += n;
    }
    return n;
}

/* Puts bytes taken from the stream back in front of the buffer. 0 or -ENOMEM. */
static int unread(simul_stream *s, const void *p, size_t len)
{
    if (s->rpos >= len) {
        s->rpos -= len;
        memcpy(s->rbuf + s->rpos, p, len);
        return 0;
    }
    size_t have = s->rend - s->rpos;
    if (have + len > s->rcap) {
        size_t cap = have + len < RBUF_FIRST ? RBUF_FIRST : have + len;
        char *q = realloc(s->rbuf, cap);
        if (!q)
            return -ENOMEM;
        s->rbuf = q;
        s->rcap = cap;
    }
    memmove(s->rbuf + len, s->rbuf + s->rpos, have);
    memcpy(s->rbuf, p, len);
    s->rpos = 0;
    s->rend = have + len;
    return 0;
}

/* ---- read, readexactly ---------------------------------------------------------------------- */

static long read_some(simul_stream *s, simul_task *t, void *buf, size_t n)
{
    if (n > LONG_MAX)
        n = LONG_MAX;
    for (;;) {
        if (s->rend > s->rpos || n == 0)
            return (long)take(s, buf, n);
        if (s->rerr)
            return s->rerr;
        if (s->eof)
            return 0;
        long r;
        if (n >= DIRECT_MIN) {
            /* The fast path: one read(2) (or bottom read) into the caller's memory, no copy. */
            r = simul__stream_bread(s, buf, n);
            if (r >= 0) {
                s->eof = r == 0;
                return r;
            }
            if (r != -EAGAIN)
                return s->rerr = (int)r;
        } else {
            r = fill(s);
            if (r >= 0)
                continue;
            if (r != -EAGAIN)
                return r;
        }
        int rc = wait_readable(s, t);
        if (rc < 0)
            return rc;
    }
}

long simul_stream_read(simul_stream *s, void *buf, size_t n)
{
    simul_task *t;
    int rc = enter_read(s, &t, __func__);
    if (rc < 0)
        return rc;
    s->skip_line = 0;
    long r = (buf || n == 0) ? read_some(s, t, buf, n) : -EINVAL;
    leave_read(s);
    return r;
}

long simul_stream_read_borrow(simul_stream *s, size_t n, const char **data)
{
    if (data)
        *data = NULL;
    if (!data)
        return -EINVAL;
    simul_task *t;
    int rc = enter_read(s, &t, __func__);
    if (rc < 0)
        return rc;
    s->skip_line = 0;
    if (n > LONG_MAX)
        n = LONG_MAX;
    long r;
    for (;;) {
        size_t have = s->rend - s->rpos;
        if (have || n == 0) {
            r = (long)(have < n ? have : n);
            *data = s->rbuf ? s->rbuf + s->rpos : "";
            s->rpos += (size_t)r;
            break;
        }
        if (s->rerr || s->eof) {
            r = s->rerr;
            *data = "";
            break;
        }
        /* Empty: one read into the whole buffer (taken now if the stream was idle), as the
         * direct path of simul_stream_read reads into the caller's memory. */
        if (SIMUL__UNLIKELY(!s->rbuf) && rbuf_take(s) < 0) {
            r = -ENOMEM;
            break;
        }
        r = simul__stream_bread(s, s->rbuf, s->rcap);
        if (SIMUL__LIKELY(r > 0)) {
            s->rend = (size_t)r;
            if ((size_t)r > n)
                r = (long)n;
            *data = s->rbuf;
            s->rpos = (size_t)r;
            break;
        }
        s->rpos = s->rend = 0;
        if (SIMUL__LIKELY(r == -EAGAIN)) {
            /* Idle from here on: the buffer goes back before the wait. */
            if (s->rcap == RBUF_FIRST && rcache.n < RBUF_CACHE)
                rcache.buf[rcache.n++] = s->rbuf;
            else
                free(s->rbuf);
            s->rbuf = NULL;
            s->rcap = 0;
            r = simul__stream_resumed(s, t, simul__stream_bwait(s, t, SIMUL_STREAM_READ));
            if (r < 0)
                break;
        } else if (r == 0) {
            s->eof = 1;
        } else {
            s->rerr = (int)r;
        }
    }
    leave_read(s);
    return r;
}

/* Small requests gather in the buffer (one read(2) may serve the next call too) and are copied
 * out only once complete, so an interrupted one has taken nothing. */
static long exactly_small(simul_stream *s, simul_task *t, char *buf, size_t n, size_t *done)
{
    for (;;) {
        size_t have = s->rend - s->rpos;
        if (have >= n) {
            *done = take(s, buf, n);
            return (long)n;
        }
        if (s->rerr)
            return s->rerr;
        if (s->eof) {
            *done = take(s, buf, have);
            return -ENODATA;
        }
        long r = fill(s);
        if (r >= 0)
            continue;
        if (r != -EAGAIN)
            return r;
        int rc = wait_readable(s, t);
        if (rc < 0)
            return rc;
    }
}

/* Large requests: what is buffered, then read(2) straight into buf. */
static long exactly_large(simul_stream *s, simul_task *t, char *buf, size_t n, size_t *done)
{
    *done = take(s, buf, n);
    while (*done < n) {
        if (s->rerr)
            return s->rerr;
        if (s->eof)
            return -ENODATA;
        long r = simul__stream_bread(s, buf + *done, n - *done);
        if (r > 0) {
            *done += (size_t)r;
        } else if (r == 0) {
            s->eof = 1;
        } else if (r != -EAGAIN) {
            s->rerr = (int)r;
        } else {
            int rc = wait_readable(s, t);
            if (rc < 0)
                return rc;
        }
    }
    return (long)n;
}

long simul_stream_readexactly(simul_stream *s, void *buf, size_t n, size_t *got)
{
    if (got)
        *got = 0;
    simul_task *t;
    int rc = enter_read(s, &t, __func__);
    if (rc < 0)
        return rc;
    s->skip_line = 0;
    size_t done = 0;
    long r;
    if (!buf && n)
        r = -EINVAL;
    else if (n > LONG_MAX)
        r = -EINVAL;
    else if (n < DIRECT_MIN)
        r = exactly_small(s, t, buf, n, &done);
    else
        r = exactly_large(s, t, buf, n, &done);
    /* Failed for another reason than EOF: nothing is taken. The stream is not closed yet (a
     * closing one is still ours until we leave), so the bytes can go back. */
    if (r < 0 && r != -ENODATA && done && unread(s, buf, done) == 0)
        done = 0;
    if (got)
        *got = done;
    leave_read(s);
    return r;
}

/* ---- readuntil, readline -------------------------------------------------------------------- */

/* Finds sep in the buffer, reading as needed, as asyncio's readuntil does: -EMSGSIZE when the
 * data before the separator would exceed the limit, -ENODATA at EOF; nothing is consumed then. */
static long until(simul_stream *s, simul_task *t, const char *sep, size_t seplen, const char **data)
{
    size_t off = 0; /* bytes already searched, minus the separator's possible start */
    for (;;) {
        size_t have = s->rend - s->rpos;
        if (have >= seplen) {
            const char *base = s->rbuf + s->rpos;
            const char *hit = seplen == 1 ? memchr(base + off, sep[0], have - off)
                                          : memmem(base + off, have - off, sep, seplen);
            if (hit) {
                size_t i = (size_t)(hit - base);
                if (i > s->limit)
                    return -EMSGSIZE;
                *data = base;
                s->rpos += i + seplen;
                return (long)(i + seplen);
            }
            off = have + 1 - seplen;
            if (off > s->limit)
                return -EMSGSIZE;
        }
        if (s->rerr)
            return s->rerr;
        if (s->eof)
            return -ENODATA;
        long r = fill(s);
        if (r >= 0)
            continue;
        if (r != -EAGAIN)
            return r;
        int rc = wait_readable(s, t);
        if (rc < 0)
            return rc;
    }
}

long simul_stream_readuntil(simul_stream *s, const void *sep, size_t seplen, const char **data)
{
    if (data)
        *data = NULL;
    if (!sep || !seplen || !data)
        return -EINVAL;
    simul_task *t;
    int rc = enter_read(s, &t, __func__);
    if (rc < 0)
        return rc;
    s->skip_line = 0;
    long r = seplen > LONG_MAX / 2 ? -EINVAL : until(s, t, sep, seplen, data);
    leave_read(s);
    return r;
}

long simul_stream_readline(simul_stream *s, const char **line)
{
    if (line)
        *line = NULL;
    if (!line)
        return -EINVAL;
    simul_task *t;
    int rc = enter_read(s, &t, __func__);
    if (rc < 0)
        return rc;
    long r = 0;
    /* The rest of a line that was too long: dropped as it arrives, so memory stays bounded. */
    while (s->skip_line) {
        size_t have = s->rend - s->rpos;
        const char *nl = have ? memchr(s->rbuf + s->rpos, '\n', have) : NULL;
        if (nl) {
            s->rpos = (size_t)(nl + 1 - s->rbuf);
            s->skip_line = 0;
            break;
        }
        s->rpos = s->rend;
        if (s->rerr || s->eof) {
            s->skip_line = 0;
            break;
        }
        r = fill(s);
        if (r >= 0)
            continue;
        if (r != -EAGAIN || (r = wait_readable(s, t)) < 0)
            goto out;
    }
    r = until(s, t, "\n", 1, line);
    if (r == -ENODATA) { /* EOF: the last line has no "\n" (0: nothing left) */
        size_t have = s->rend - s->rpos;
        *line = have ? s->rbuf + s->rpos : "";
        s->rpos = s->rend;
        r = (long)have;
    } else if (r == -EMSGSIZE) {
        size_t have = s->rend - s->rpos;
        const char *nl = memchr(s->rbuf + s->rpos, '\n', have);
        if (nl) {
            s->rpos = (size_t)(nl + 1 - s->rbuf);
        } else {
            s->rpos = s->rend;
            s->skip_line = 1;
        }
    }
out:
    leave_read(s);
    return r;
}

/* ---- state ---------------------------------------------------------------------------------- */

bool simul_stream_at_eof(const simul_stream *s)
{
    return s && s->eof && s->rpos == s->rend;
}

int simul_stream_set_limit(simul_stream *s, size_t limit)
{
    if (!s || limit == 0 || limit > LONG_MAX / 2)
        return -EINVAL;
    s->limit = limit;
    return 0;
}

size_t simul_stream_read_buffer_size(const simul_stream *s)
{
    return s ? s->rend - s->rpos : 0;
}
