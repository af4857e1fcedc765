/* stream.h — what stream.c (lifecycle, writing, servers) shares with stream_read.c (reading):
 * the stream record and the enter/leave bookkeeping that lets a stream be closed while other
 * tasks are inside calls on it (the last one out frees it). */
#ifndef SIMUL_IO_STREAM_H
#define SIMUL_IO_STREAM_H

#include "server.h"

struct simul_stream {
    simul_loop *loop;
    simul__fd *f;
    int fd;
    uint8_t sock;       /* a socket: send(MSG_NOSIGNAL); else write() with SIGPIPE held back */
    uint8_t eof;        /* read returned 0 */
    uint8_t skip_line;  /* readline: drop up to the next '\n' (the rest of an over-long line) */
    uint8_t paused;     /* above the high-water mark, until at or below the low one */
    uint8_t eof_wanted; /* write_eof: shut down the sending side once the queue is empty */
    uint8_t eof_sent;
    uint8_t sending_file; /* simul_stream_sendfile owns the sending side: other writes -EBUSY */
    uint8_t closing;    /* close has begun: new calls get -EBADF */
    uint8_t fd_closed;  /* the fd is closed: the record is freed once `users` is 0 */
    simul_task *reader; /* the task inside a read call */
    unsigned users;     /* calls in progress (and the server's handler task) */
    int rerr, werr;     /* sticky errors of the kernel */
    size_t limit;
    /* received, not yet read: rbuf[rpos, rend) */
    char *rbuf;
    size_t rcap, rpos, rend;
    /* queued for the kernel: wbuf[wpos, wend) */
    char *wbuf;
    size_t wcap, wpos, wend;
    size_t high, low;
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

#endif
