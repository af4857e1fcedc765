/* stream.h — what stream.c (lifecycle, writing, bottoms, servers) shares with stream_read.c
 * (reading) and sendfile.c: the stream record, its bottom (the byte source and sink under it:
 * the built-in fd bottom, called directly, or an ops table), and the enter/leave bookkeeping that
 * lets a stream be closed while other tasks are inside calls on it (the last one out frees it). */
#ifndef SIMUL_IO_STREAM_H
#define SIMUL_IO_STREAM_H

#include "server.h"
#include "wbuf.h"

/* A task inside the bottom's wait on behalf of a stream call: close and abort end those waits
 * (as a cancellation would), whatever the bottom parks on. On the waiting task's stack. */
typedef struct simul__bwaiter {
    simul_task *t;
    struct simul__bwaiter *next;
} simul__bwaiter;

struct simul_stream {
    simul_loop *loop;
    /* The bottom. `plain`: it is the built-in fd bottom, whose calls go straight to the fd layer
     * (no indirect call on the echo path); bops/bctx are still the real table for a wrapper. */
    const simul_stream_ops *bops;
    void *bctx;
    simul__fd *f; /* the fd the stream was made on (even under a wrapper), else NULL */
    int fd;       /* its number; -1 without one or once it is closed */
    uint8_t plain;
    uint8_t sock;       /* that fd is a socket */
    uint8_t gone;       /* the bottom is closed (by close or abort) */
    uint8_t eof;        /* read returned 0 */
    uint8_t skip_line;  /* readline: drop up to the next '\n' (the rest of an over-long line) */
    uint8_t eof_wanted; /* write_eof: shut down the sending side once the queue is empty */
    uint8_t eof_sent;
    uint8_t sending_file; /* simul_stream_sendfile owns the sending side: other writes -EBUSY */
    uint8_t closing;    /* close has begun: new calls get -EBADF */
    uint8_t fd_closed;  /* the handle is closed: the record is freed once `users` is 0 */
    simul_task *reader; /* the task inside a read call */
    simul_task *flusher; /* a bottom without fd edges: the task that flushes the queue */
    simul__bwaiter *bwaiters;
    unsigned users;     /* calls in progress (and the server's handler task) */
    unsigned holders;   /* simul_stream_retain's extra holders: the last release closes it */
    int rerr, werr;     /* sticky errors of the bottom */
    size_t limit;
    /* received, not yet read: rbuf[rpos, rend) */
    char *rbuf;
    size_t rcap, rpos, rend;
    simul__wbuf wq;       /* queued for the bottom, with the watermarks (paused: drain waits) */
    simul__waitq drainq;  /* drain: until not paused */
    simul__waitq flushq;  /* close: until the queue is empty */
    simul__waitq closedq; /* wait_closed */
    simul__wait *source_wait; /* a stream_sendfile copy parked on its source: close ends it */
    /* a server's connection */
    simul_server *srv;
    simul_stream_handler handler;
    void *harg;
};

/* A call on a stream begins (the task is counted; -EBADF once closing) / ends (the last one out
 * of a closed stream frees it). */
int simul__stream_enter(simul_stream *s, simul_task **t, const char *call);
void simul__stream_leave(simul_stream *s);

/* stream_read.c's count of stream records on this thread (stream_alloc), and what a record being
 * freed gives back (its read buffer; the thread's cached buffers with the last record). */
void simul__stream_rbuf_born(void);
void simul__stream_rbuf_died(simul_stream *s);

/* The bottom's non-blocking transfers: count, 0 at EOF (read), -EAGAIN, or -errno. */
static inline long simul__stream_bread(simul_stream *s, void *buf, size_t len)
{
    if (SIMUL__LIKELY(s->plain))
        return simul__fd_try_read(s->f, buf, len);
    return s->bops->read(s->bctx, buf, len);
}

static inline long simul__stream_bwritev(simul_stream *s, const struct iovec *iov, int cnt)
{
    if (SIMUL__LIKELY(s->plain)) /* simul__fd_try_writev does this too; inline here saves a hop */
        return cnt == 1 ? simul__fd_try_write(s->f, iov[0].iov_base, iov[0].iov_len)
                        : simul__fd_try_writev(s->f, iov, cnt);
    return s->bops->writev(s->bctx, iov, cnt);
}

/* Suspends in the bottom's wait for `dir` (SIMUL_STREAM_READ / _WRITE) after -EAGAIN. A
 * cancellation point; close and abort end it early. The caller checks `closing` afterwards. */
int simul__stream_bwait(simul_stream *s, simul_task *t, int dir);

/* What a call on the stream returns after a wait that ended with rc: once the stream is closing
 * (another task closed or aborted it), -ECONNABORTED, so that -ECANCELED keeps one meaning
 * ("this task was cancelled"); a task cancelled or past its deadline hears that instead, as
 * asyncio's cancel wins over a result in the same pass. The caller must not touch the bottom
 * after any error here. */
static inline int simul__stream_resumed(const simul_stream *s, simul_task *t, int rc)
{
    if (SIMUL__LIKELY(!s->closing) || rc == -ECANCELED || rc == -ETIMEDOUT)
        return rc;
    int c = simul__task_check(t);
    return c < 0 ? c : -ECONNABORTED;
}

/* The sending side failed with err (the first error sticks): the queue is dropped and drainers
 * and flushers hear. */
void simul__stream_fail_write(simul_stream *s, int err);

#endif
