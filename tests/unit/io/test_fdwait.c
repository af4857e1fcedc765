/* test_fdwait.c — waiting on fds: wake-up on data, level semantics over the edge-triggered
 * registration, timeouts and cancellation, forgetting/closing under a waiter, fd-number reuse,
 * asyncio-style reader/writer callbacks, errors for fds that cannot be polled.
 */
#include <sys/socket.h>

#include "test_main_helpers.h"

typedef struct writer_arg {
    int fd;
    double delay;
    const char *data;
} writer_arg;

static int delayed_writer(void *arg)
{
    writer_arg *w = arg;
    assert_int_equal(simul_sleep(w->delay), 0);
    assert_int_equal(write(w->fd, w->data, strlen(w->data)), (ssize_t)strlen(w->data));
    return 0;
}

SIMUL_TASK_TEST(wait_readable_wakes_on_data)
{
    (void)arg;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    writer_arg wa = {p[1], 0.03, "hi"};
    simul_task *w;
    assert_int_equal(simul_task_spawn(&w, delayed_writer, &wa, NULL), 0);
    double t0 = test_clock();
    assert_int_equal(simul_wait_readable(p[0]), 0);
    double el = test_clock() - t0;
    assert_true(el >= 0.025 && el < 1.0);
    char buf[8];
    assert_int_equal(read(p[0], buf, sizeof buf), 2);
    assert_int_equal(simul_task_join(w, NULL), 0);
    assert_int_equal(simul_close(p[0]), 0);
    assert_int_equal(simul_close(p[1]), 0);
    return 0;
}

/* The public wait is level-triggered: data left unread makes it return at once, every time. */
SIMUL_TASK_TEST(wait_readable_is_level_triggered)
{
    (void)arg;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(write(p[1], "abcdef", 6), 6);
    char c;
    for (int i = 0; i < 6; i++) {
        simul_scope s;
        assert_int_equal(simul_scope_timeout(&s, 1.0), 0);
        assert_int_equal(simul_wait_readable(p[0]), 0);
        assert_int_equal(simul_scope_end(&s), 0);
        assert_int_equal(read(p[0], &c, 1), 1); /* one byte at a time: never drained until last */
        assert_int_equal(c, "abcdef"[i]);
    }
    /* Drained: the wait now blocks until the scope's deadline. */
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.05), 0);
    double t0 = test_clock();
    assert_int_equal(simul_wait_readable(p[0]), -ETIMEDOUT);
    assert_true(test_clock() - t0 >= 0.045);
    assert_int_equal(simul_scope_end(&s), 1);
    assert_int_equal(simul_close(p[0]), 0);
    assert_int_equal(simul_close(p[1]), 0);
    return 0;
}

static int reader_drain(void *arg)
{
    int fd = *(int *)arg;
    static char buf[65536]; /* not on the 64 KiB task stack */
    long total = 0;
    assert_int_equal(simul_sleep(0.02), 0);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            total += n;
            continue;
        }
        break;
    }
    return (int)(total > 0);
}

SIMUL_TASK_TEST(wait_writable_on_full_pipe)
{
    (void)arg;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(simul_wait_writable(p[1]), 0); /* empty pipe: at once */
    static char chunk[65536];
    while (write(p[1], chunk, sizeof chunk) > 0) {
    }
    assert_int_equal(errno, EAGAIN);
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.03), 0);
    assert_int_equal(simul_wait_writable(p[1]), -ETIMEDOUT);
    simul_scope_end(&s);
    simul_task *r;
    assert_int_equal(simul_task_spawn(&r, reader_drain, &p[0], NULL), 0);
    assert_int_equal(simul_scope_timeout(&s, 2.0), 0);
    assert_int_equal(simul_wait_writable(p[1]), 0);
    assert_int_equal(simul_scope_end(&s), 0);
    int res = 0;
    assert_int_equal(simul_task_join(r, &res), 0);
    assert_int_equal(res, 1);
    assert_int_equal(simul_close(p[0]), 0);
    assert_int_equal(simul_close(p[1]), 0);
    return 0;
}

static int wait_then_report(void *arg)
{
    return simul_wait_readable(*(int *)arg);
}

SIMUL_TASK_TEST(cancelled_waiter_leaves_fd_usable)
{
    (void)arg;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, wait_then_report, &p[0], NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_task_cancel(t), 0);
    int res = 0;
    assert_int_equal(simul_task_join(t, &res), 0);
    assert_int_equal(res, -ECANCELED);
    /* A new waiter still hears the next write. */
    assert_int_equal(simul_task_spawn(&t, wait_then_report, &p[0], NULL), 0);
    assert_int_equal(simul_yield(), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(simul_task_join(t, &res), 0);
    assert_int_equal(res, 0);
    assert_int_equal(simul_close(p[0]), 0);
    assert_int_equal(simul_close(p[1]), 0);
    return 0;
}

SIMUL_TASK_TEST(close_under_waiter_gives_ebadf)
{
    (void)arg;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    simul_task *t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(simul_task_spawn(&t[i], wait_then_report, &p[0], NULL), 0);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_close(p[0]), 0);
    for (int i = 0; i < 3; i++) {
        int res = 0;
        assert_int_equal(simul_task_join(t[i], &res), 0);
        assert_int_equal(res, -EBADF);
    }
    assert_int_equal(simul_close(p[1]), 0);
    return 0;
}

/* An fd closed with plain close() (no simul_close) whose number comes back for a new pipe:
 * waiting on the new one still works. */
SIMUL_TASK_TEST(fd_number_reused_after_plain_close)
{
    (void)arg;
    int p[2], q[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(write(p[1], "a", 1), 1);
    assert_int_equal(simul_wait_readable(p[0]), 0);
    close(p[0]);
    close(p[1]);
    assert_int_equal(pipe2(q, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(q[0], p[0]); /* lowest free numbers come back */
    writer_arg wa = {q[1], 0.01, "b"};
    simul_task *w;
    assert_int_equal(simul_task_spawn(&w, delayed_writer, &wa, NULL), 0);
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 2.0), 0);
    assert_int_equal(simul_wait_readable(q[0]), 0);
    assert_int_equal(simul_scope_end(&s), 0);
    assert_int_equal(simul_task_join(w, NULL), 0);
    assert_int_equal(simul_close(q[0]), 0);
    assert_int_equal(simul_close(q[1]), 0);
    return 0;
}

SIMUL_TASK_TEST(unpollable_and_bad_fds)
{
    (void)arg;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_int_equal(simul_wait_readable(fileno(tmp)), -EPERM); /* regular files can't be polled */
    assert_int_equal(simul_add_reader(fileno(tmp), (simul_fd_cb)abort, NULL), -EPERM);
    simul_fd_forget(fileno(tmp));
    fclose(tmp);
    assert_int_equal(simul_wait_readable(1000), -EBADF);
    assert_int_equal(simul_wait_readable(-1), -EBADF);
    assert_int_equal(simul_add_reader(0, NULL, NULL), -EINVAL);
    assert_int_equal(simul_close(-1), -EBADF);
    return 0;
}

static void wait_outside_task(void **state)
{
    (void)state;
    assert_int_equal(simul_wait_readable(0), -EPERM);
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_wait_readable(0), -EPERM);
    assert_int_equal(simul_loop_close(loop), 0);
    assert_int_equal(simul_add_reader(0, (simul_fd_cb)abort, NULL), -ENXIO);
}

/* ---- reader / writer callbacks ---------------------------------------------------------- */

typedef struct cb_state {
    int calls;
    int fd;
    bool drain_at;
    int remove_after;
} cb_state;

static void count_reader(int fd, void *arg)
{
    cb_state *s = arg;
    assert_int_equal(fd, s->fd);
    s->calls++;
    if (s->calls == s->remove_after)
        assert_int_equal(simul_remove_reader(fd), 1);
}

/* Level-triggered as in asyncio: a reader that does not drain is called again every pass. */
SIMUL_TASK_TEST(add_reader_level_triggered_until_removed)
{
    (void)arg;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    cb_state s = {.fd = p[0], .remove_after = 5};
    assert_int_equal(simul_add_reader(p[0], count_reader, &s), 0);
    assert_int_equal(simul_sleep(0.02), 0);
    assert_int_equal(s.calls, 0); /* nothing to read yet */
    assert_int_equal(write(p[1], "z", 1), 1);
    assert_int_equal(simul_sleep(0.05), 0); /* idle passes happen only on events; sleep spans */
    assert_int_equal(s.calls, 5);           /* removed itself on the 5th call */
    assert_int_equal(simul_remove_reader(p[0]), 0);
    /* The fd still works for a task wait afterwards. */
    assert_int_equal(simul_wait_readable(p[0]), 0);
    assert_int_equal(simul_close(p[0]), 0);
    assert_int_equal(simul_close(p[1]), 0);
    return 0;
}

static void writer_cb(int fd, void *arg)
{
    cb_state *s = arg;
    s->calls++;
    assert_int_equal(write(fd, "w", 1), 1);
    if (s->calls == 3)
        assert_int_equal(simul_remove_writer(fd), 1);
}

SIMUL_TASK_TEST(add_writer_and_reader_together)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    cb_state ws = {.fd = sv[0]};
    cb_state rs = {.fd = sv[1], .remove_after = 1000};
    assert_int_equal(simul_add_writer(sv[0], writer_cb, &ws), 0);
    assert_int_equal(simul_sleep(0.03), 0);
    assert_int_equal(ws.calls, 3);
    char buf[8];
    assert_int_equal(read(sv[1], buf, sizeof buf), 3);
    /* A reader on the other end hears nothing more: the writer was removed. */
    assert_int_equal(simul_add_reader(sv[1], count_reader, &rs), 0);
    assert_int_equal(simul_sleep(0.02), 0);
    assert_int_equal(rs.calls, 0);
    /* Replacing a reader keeps one registration. */
    assert_int_equal(simul_add_reader(sv[1], count_reader, &rs), 0);
    assert_int_equal(simul_remove_reader(sv[1]), 1);
    assert_int_equal(simul_close(sv[0]), 0);
    assert_int_equal(simul_close(sv[1]), 0);
    return 0;
}

static void close_in_reader(int fd, void *arg)
{
    cb_state *s = arg;
    s->calls++;
    assert_int_equal(simul_close(fd), 0);
}

/* A callback that closes its own fd stops being called and leaves nothing registered. */
SIMUL_TASK_TEST(reader_closing_its_fd)
{
    (void)arg;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    cb_state s = {.fd = p[0]};
    assert_int_equal(simul_add_reader(p[0], close_in_reader, &s), 0);
    assert_int_equal(write(p[1], "q", 1), 1);
    assert_int_equal(simul_sleep(0.03), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(simul_close(p[1]), 0);
    return 0;
}

/* ---- many fds ---------------------------------------------------------------------------- */

#define NPAIRS 200

static int pair_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c = 0;
    int rc = simul_wait_readable(fd);
    if (rc < 0)
        return rc;
    return read(fd, &c, 1) == 1 ? c : -EIO;
}

SIMUL_TASK_TEST(many_fds_each_woken_once)
{
    (void)arg;
    int sv[NPAIRS][2];
    simul_task *t[NPAIRS];
    for (int i = 0; i < NPAIRS; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv[i]),
                         0);
        assert_int_equal(simul_task_spawn(&t[i], pair_reader, (void *)(intptr_t)sv[i][0], NULL), 0);
    }
    assert_int_equal(simul_yield(), 0);
    /* Write in reverse order: each task gets its own byte. */
    for (int i = NPAIRS - 1; i >= 0; i--) {
        char c = (char)('A' + i % 26);
        assert_int_equal(write(sv[i][1], &c, 1), 1);
    }
    for (int i = 0; i < NPAIRS; i++) {
        int res = 0;
        assert_int_equal(simul_task_join(t[i], &res), 0);
        assert_int_equal(res, 'A' + i % 26);
        assert_int_equal(simul_close(sv[i][0]), 0);
        assert_int_equal(simul_close(sv[i][1]), 0);
    }
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(wait_readable_wakes_on_data),
    cmocka_unit_test(wait_readable_is_level_triggered),
    cmocka_unit_test(wait_writable_on_full_pipe),
    cmocka_unit_test(cancelled_waiter_leaves_fd_usable),
    cmocka_unit_test(close_under_waiter_gives_ebadf),
    cmocka_unit_test(fd_number_reused_after_plain_close),
    cmocka_unit_test(unpollable_and_bad_fds),
    cmocka_unit_test(wait_outside_task),
    cmocka_unit_test(add_reader_level_triggered_until_removed),
    cmocka_unit_test(add_writer_and_reader_together),
    cmocka_unit_test(reader_closing_its_fd),
    cmocka_unit_test(many_fds_each_woken_once),
};

SIMUL_TEST_MAIN("test_fdwait", tests)
