/* test_stream_idle.c — idle streams hold no read buffer: simul_stream_read_borrow hands out bytes
 * from the stream's own buffer, which is taken when data arrives and given back when a read finds
 * it empty and waits (the record is inspected through src/stream/stream.h to see that). Runs over
 * sockets and over a wrapping bottom, as TLS streams are. */
#include <sys/socket.h>
#include <unistd.h>

#include "test_stream_helpers.h"

#include "../../../src/stream/stream.h"

static simul_stream *pair(simul_stream **peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    simul_stream *s;
    assert_int_equal(simul_stream_from_fd(sv[0], &s), 0);
    test_wrap(s);
    assert_int_equal(simul_stream_from_fd(sv[1], peer), 0);
    test_wrap(*peer);
    return s;
}

typedef struct borrower {
    simul_stream *s;
    long rc;
    char got[64];
} borrower;

static int drain_task(void *arg)
{
    return simul_stream_drain(arg);
}

static int borrow_task(void *arg)
{
    borrower *b = arg;
    const char *d;
    b->rc = simul_stream_read_borrow(b->s, sizeof b->got, &d);
    if (b->rc > 0)
        memcpy(b->got, d, (size_t)b->rc);
    return 0;
}

/* The calls' contract: pieces of at most n, pointers into the stream, 0 at EOF, bad arguments. */
SIMUL_STREAM_TEST_WRAP(borrow_reads_in_place)
{
    (void)arg;
    simul_stream *peer;
    simul_stream *s = pair(&peer);
    const char *d = (const char *)1;
    assert_int_equal(simul_stream_read_borrow(s, 4, NULL), -EINVAL);
    assert_int_equal(simul_stream_read_borrow(NULL, 4, &d), -EINVAL);
    assert_null(d);
    assert_int_equal(simul_stream_write(peer, "hello world", 11), 0);
    assert_int_equal(simul_stream_read_borrow(s, 5, &d), 5);
    assert_memory_equal(d, "hello", 5);
    assert_int_equal(simul_stream_read_borrow(s, 0, &d), 0);
    assert_non_null(d);
    assert_int_equal(simul_stream_read_borrow(s, 100, &d), 6);
    assert_memory_equal(d, " world", 6);
    /* Mixed with the other reads: bytes come in order whichever call takes them. */
    assert_int_equal(simul_stream_write(peer, "abc\ndef", 7), 0);
    const char *line;
    assert_int_equal(simul_stream_readline(s, &line), 4);
    assert_memory_equal(line, "abc\n", 4);
    assert_int_equal(simul_stream_read_borrow(s, 100, &d), 3);
    assert_memory_equal(d, "def", 3);
    /* Bigger than the buffer: handed out in buffer-sized pieces, nothing lost or reordered. */
    enum { BIG = 100000 };
    char *big = malloc(BIG);
    assert_non_null(big);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)(i * 13 + i / 7);
    assert_int_equal(simul_stream_write(peer, big, BIG), 0);
    size_t got = 0;
    simul_task *dr;
    assert_int_equal(simul_task_spawn(&dr, drain_task, peer, NULL), 0);
    while (got < BIG) {
        long n = simul_stream_read_borrow(s, BIG, &d);
        assert_true(n > 0);
        assert_memory_equal(d, big + got, (size_t)n);
        got += (size_t)n;
    }
    assert_int_equal(simul_task_join(dr, NULL), 0);
    free(big);
    assert_int_equal(simul_stream_write_eof(peer), 0);
    assert_int_equal(simul_stream_read_borrow(s, 100, &d), 0);
    assert_string_equal(d, "");
    assert_int_equal(simul_stream_read_borrow(s, 100, &d), 0);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(simul_stream_close(peer), 0);
    return 0;
}

/* Idle: no buffer; data: one is taken; consumed and waiting again: given back. Data that
 * arrived but is not consumed keeps its buffer, and a cancelled or aborted wait loses nothing. */
SIMUL_STREAM_TEST_WRAP(idle_stream_holds_no_buffer)
{
    (void)arg;
    enum { N = 40 }; /* more than the per-thread cache keeps */
    simul_stream *s[N], *peer[N];
    borrower b[N];
    simul_task *t[N];
    for (int i = 0; i < N; i++) {
        s[i] = pair(&peer[i]);
        b[i] = (borrower){.s = s[i]};
        assert_int_equal(simul_task_spawn(&t[i], borrow_task, &b[i], NULL), 0);
    }
    assert_int_equal(simul_yield(), 0);
    for (int i = 0; i < N; i++)
        assert_null(s[i]->rbuf); /* parked, never received: nothing taken */
    for (int i = 0; i < N; i++)
        assert_int_equal(simul_stream_write(peer[i], "ping", 4), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(simul_task_join(t[i], NULL), 0);
        assert_int_equal(b[i].rc, 4);
        assert_memory_equal(b[i].got, "ping", 4);
        assert_non_null(s[i]->rbuf); /* busy: it keeps the buffer until it waits again */
        b[i] = (borrower){.s = s[i]};
        assert_int_equal(simul_task_spawn(&t[i], borrow_task, &b[i], NULL), 0);
    }
    assert_int_equal(simul_yield(), 0);
    for (int i = 0; i < N; i++)
        assert_null(s[i]->rbuf); /* consumed, waiting: given back */
    /* Ended by a cancel or by another task's abort while idle: -ECANCELED / -ECONNABORTED. */
    assert_int_equal(simul_task_cancel(t[0]), 0);
    assert_int_equal(simul_stream_abort(s[1]), 0);
    assert_int_equal(simul_task_join(t[0], NULL), 0);
    assert_int_equal(simul_task_join(t[1], NULL), 0);
    assert_int_equal(b[0].rc, -ECANCELED);
    assert_int_equal(b[1].rc, -ECONNABORTED);
    for (int i = 2; i < N; i++)
        assert_int_equal(simul_stream_write(peer[i], "pong", 4), 0);
    for (int i = 2; i < N; i++) {
        assert_int_equal(simul_task_join(t[i], NULL), 0);
        assert_int_equal(b[i].rc, 4);
        assert_memory_equal(b[i].got, "pong", 4);
    }
    /* Received but not read: the bytes stay (in a buffer) until a read takes them. */
    assert_int_equal(simul_stream_write(peer[0], "kept", 4), 0);
    const char *d;
    assert_int_equal(simul_stream_read_borrow(s[0], 2, &d), 2);
    assert_memory_equal(d, "ke", 2);
    assert_non_null(s[0]->rbuf);
    assert_int_equal(simul_stream_read_buffer_size(s[0]), 2);
    char two[2];
    assert_int_equal(simul_stream_readexactly(s[0], two, 2, NULL), 2);
    assert_memory_equal(two, "pt", 2);
    /* The other reads give it back too once they wait: a readline parked on an empty stream. */
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.01), 0);
    const char *line;
    assert_int_equal(simul_stream_readline(s[0], &line), -ETIMEDOUT);
    simul_scope_end(&sc);
    assert_null(s[0]->rbuf);
    for (int i = 0; i < N; i++) {
        assert_int_equal(simul_stream_close(s[i]), 0);
        assert_int_equal(simul_stream_close(peer[i]), 0);
    }
    return 0;
}

typedef struct sink {
    simul_stream *s;
    size_t want;
    int rc;
} sink;

static int sink_task(void *arg)
{
    sink *k = arg;
    char *buf = malloc(k->want);
    k->rc = buf ? (int)simul_stream_readexactly(k->s, buf, k->want, NULL) : -ENOMEM;
    free(buf);
    return 0;
}

/* The write side too: a burst the peer was slow to take is queued, and once the queue drains its
 * buffer is freed, whatever its size, so a connection idle after a burst (an SSE client after a
 * flurry of events) holds no write buffer. */
SIMUL_STREAM_TEST_WRAP(write_queue_given_back_after_a_burst)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    int small = 4096; /* the kernel's minimum: most of the burst has to be queued */
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    simul_stream *s, *peer;
    assert_int_equal(simul_stream_from_fd(sv[0], &s), 0);
    test_wrap(s);
    assert_int_equal(simul_stream_from_fd(sv[1], &peer), 0);
    test_wrap(peer);
    /* Under 64 KiB: the size a queue used to keep once it emptied. */
    enum { BURST = 24 * 1024 };
    char *data = malloc(BURST);
    assert_non_null(data);
    memset(data, 'x', BURST);
    assert_null(s->wq.buf);
    assert_int_equal(simul_stream_write(s, data, BURST), 0);
    assert_non_null(s->wq.buf); /* queued behind the full socket */
    sink k = {.s = peer, .want = BURST};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, sink_task, &k, NULL), 0);
    assert_int_equal(simul_stream_drain(s), 0);
    assert_int_equal(simul_task_join(t, NULL), 0);
    assert_int_equal(k.rc, BURST);
    assert_null(s->wq.buf);
    assert_int_equal(s->wq.cap, 0);
    /* A small write that the socket takes at once queues nothing. */
    assert_int_equal(simul_stream_write(s, "tick", 4), 0);
    assert_null(s->wq.buf);
    free(data);
    assert_int_equal(simul_stream_close(s), 0);
    assert_int_equal(simul_stream_close(peer), 0);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(write_queue_given_back_after_a_burst),
    cmocka_unit_test(write_queue_given_back_after_a_burst_wrap),
    cmocka_unit_test(borrow_reads_in_place),
    cmocka_unit_test(borrow_reads_in_place_wrap),
    cmocka_unit_test(idle_stream_holds_no_buffer),
    cmocka_unit_test(idle_stream_holds_no_buffer_wrap),
};

SIMUL_TEST_MAIN("test_stream_idle", tests)
