/* test_debug_dump.c — the task dump (simul_loop_dump_tasks, and on SIGQUIT once opted into with
 * simul_loop_set_dump_signal): a program deliberately stuck in each kind of wait (timer, fd read,
 * fd write, lock, event, queue, future, another task, a worker thread job, not started yet) is
 * dumped, and each task's line says what it waits on, in which call, with its stack's frames. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "test_main_helpers.h"

typedef struct stuck {
    int pipe_r, pipe_w;   /* nothing is ever written: the reader waits forever */
    int full_r, full_w;   /* full: the writer waits forever */
    int job_r, job_w;     /* the thread job blocks on job_r until the test writes to job_w */
    simul_lock *lock;
    simul_event *event;
    simul_queue *queue;
    simul_future *future;
    simul_task *sleeper;
    int parked;           /* tasks about to make their suspending call */
} stuck;

static int sleeper(void *arg)
{
    stuck *s = arg;
    s->parked++;
    return simul_sleep(100.0);
}

static int reader(void *arg)
{
    stuck *s = arg;
    s->parked++;
    return simul_wait_readable(s->pipe_r);
}

static int writer(void *arg)
{
    stuck *s = arg;
    s->parked++;
    return simul_wait_writable(s->full_w);
}

static int locker(void *arg)
{
    stuck *s = arg;
    s->parked++;
    return simul_lock_acquire(s->lock);
}

static int event_waiter(void *arg)
{
    stuck *s = arg;
    s->parked++;
    return simul_event_wait(s->event);
}

static int getter(void *arg)
{
    stuck *s = arg;
    s->parked++;
    void *item;
    return simul_queue_get(s->queue, &item);
}

static int awaiter(void *arg)
{
    stuck *s = arg;
    s->parked++;
    int r;
    void *v;
    return simul_future_await(s->future, &r, &v);
}

static int joiner(void *arg)
{
    stuck *s = arg;
    s->parked++;
    int r;
    return simul_task_join(s->sleeper, &r);
}

static int blocking_job(void *arg)
{
    stuck *s = arg;
    char c;
    return read(s->job_r, &c, 1) == 1 ? 0 : -EIO; /* a blocking call, on a worker thread */
}

static int offloader(void *arg)
{
    stuck *s = arg;
    s->parked++;
    int r;
    return simul_to_thread(blocking_job, s, &r);
}

static int never_started(void *arg)
{
    (void)arg;
    return 0;
}

static char *read_all(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    ssize_t got = pread(fd, buf, (size_t)st.st_size, 0);
    assert_true(got == st.st_size);
    buf[got] = '\0';
    return buf;
}

static void expect(const char *text, const char *words)
{
    if (!strstr(text, words)) {
        fail_msg("expected \"%s\" in the dump:\n%s", words, text);
    }
}

/* The line of task `name` in the dump (up to its end), copied. */
static char *line_of(const char *text, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\ntask '%s' (id ", name); /* at a line's start */
    const char *p = strstr(text, key);
    if (!p) {
        fail_msg("no line for task '%s' in the dump:\n%s", name, text);
    }
    p++;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char *line = malloc(n + 1);
    assert_non_null(line);
    memcpy(line, p, n);
    line[n] = '\0';
    return line;
}

static void expect_line(const char *text, const char *name, const char *words)
{
    char *line = line_of(text, name);
    if (!strstr(line, words)) {
        fail_msg("expected \"%s\" in the line of '%s': %s", words, name, line);
    }
    free(line);
}

/* How many backtrace frames ("    #N ") follow the line of task `name`. */
static int frames_of(const char *text, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\ntask '%s' (id ", name);
    const char *p = strstr(text, key);
    assert_non_null(p);
    p++;
    p = strchr(p, '\n');
    int n = 0;
    while (p && strncmp(p + 1, "    ", 4) == 0) {
        n += strncmp(p + 1, "    #", 5) == 0;
        p = strchr(p + 1, '\n');
    }
    return n;
}

typedef struct dump_case {
    bool by_signal;
    char *text;
} dump_case;

static int stuck_everywhere(void *arg)
{
    dump_case *dc = arg;
    stuck s = {0};
    int fds[2];
    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    s.pipe_r = fds[0], s.pipe_w = fds[1];
    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    s.full_r = fds[0], s.full_w = fds[1];
    char block[4096] = {0};
    while (write(s.full_w, block, sizeof block) > 0) {
    }
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    s.job_r = fds[0], s.job_w = fds[1];
    assert_int_equal(simul_lock_new(&s.lock), 0);
    assert_int_equal(simul_lock_acquire(s.lock), 0); /* held by main: the locker waits */
    assert_int_equal(simul_event_new(&s.event), 0);
    assert_int_equal(simul_queue_new(&s.queue, 0), 0);
    assert_int_equal(simul_future_new(&s.future), 0);

    struct {
        const char *name;
        simul_task_fn fn;
    } kinds[] = {
        {"sleeper", sleeper}, {"reader", reader}, {"writer", writer}, {"locker", locker},
        {"event-waiter", event_waiter}, {"getter", getter}, {"awaiter", awaiter},
        {"offloader", offloader},
    };
    size_t nk = ARRAY_LEN(kinds);
    simul_task *t[16];
    for (size_t i = 0; i < nk; i++) {
        simul_task_opts o = {.name = kinds[i].name};
        assert_int_equal(simul_task_spawn(&t[i], kinds[i].fn, &s, &o), 0);
    }
    s.sleeper = t[0];
    simul_task *j;
    simul_task_opts oj = {.name = "joiner"};
    assert_int_equal(simul_task_spawn(&j, joiner, &s, &oj), 0);
    /* Wait for state: every task has made its suspending call (each parks within its first run,
     * so one more pass after the last has counted itself). */
    while (s.parked < (int)nk + 1) {
        assert_int_equal(simul_yield(), 0);
    }
    assert_int_equal(simul_yield(), 0);
    simul_task *late;
    simul_task_opts ol = {.name = "late"};
    assert_int_equal(simul_task_spawn(&late, never_started, NULL, &ol), 0);

    FILE *out = tmpfile();
    assert_non_null(out);
    if (dc->by_signal) {
        /* SIGQUIT, opted into: the dump comes from the loop, between passes, to stderr. */
        while (!simul_task_done(late)) { /* it finishes first: a task done, handle held */
            assert_int_equal(simul_yield(), 0);
        }
        test_capture cap;
        test_capture_begin(&cap);
        assert_int_equal(simul_loop_set_dump_signal(simul_loop_current(), 0), 0);
        assert_int_equal(raise(SIGQUIT), 0);
        for (int i = 0; i < 5000; i++) { /* wait for state: the dump's last line */
            char *so_far = read_all(STDERR_FILENO);
            bool done = strstr(so_far, "end of task dump") != NULL;
            free(so_far);
            if (done) {
                break;
            }
            assert_int_equal(simul_sleep(0.001), 0);
        }
        assert_int_equal(simul_loop_set_dump_signal(simul_loop_current(), -1), 0);
        dc->text = test_capture_end(&cap);
    } else {
        simul_task_opts om = {.name = "dumper"};
        assert_int_equal(simul_task_set_name(simul_task_current(), om.name), 0);
        int n = simul_loop_dump_tasks(NULL, fileno(out));
        assert_int_equal(n, (int)nk + 3); /* the stuck ones, joiner, late, and main */
        dc->text = read_all(fileno(out));
    }
    fclose(out);

    /* Unstick everything, and let every task finish. */
    /* The offloader (last) is not cancelled: its job finishes once it reads, and joining it
     * orders that read before the pipe is closed below. */
    assert_int_equal(write(s.job_w, "x", 1), 1);
    for (size_t i = 0; i + 1 < nk; i++) {
        simul_task_cancel(t[i]);
    }
    int r;
    for (size_t i = 1; i < nk; i++) {
        simul_task_join(t[i], &r);
    }
    assert_int_equal(r, 0); /* the offloader's to_thread */
    assert_int_equal(simul_task_join(j, &r), 0);
    assert_int_equal(simul_task_join(late, &r), 0);
    assert_int_equal(simul_lock_release(s.lock), 0);
    simul_lock_free(s.lock);
    simul_event_free(s.event);
    simul_queue_free(s.queue, NULL);
    simul_future_free(s.future);
    close(s.pipe_r), close(s.pipe_w), close(s.full_r), close(s.full_w);
    close(s.job_r), close(s.job_w);
    return 0;
}

static void check_dump(const char *text, bool by_signal)
{
    expect(text, "simul: task dump: ");
    expect(text, "simul: end of task dump (");
    expect_line(text, "sleeper", "in simul_sleep(), on a timer due in ");
    expect_line(text, "reader", "in simul_wait_readable(), for fd ");
    expect_line(text, "reader", " to be readable");
    expect_line(text, "writer", "in simul_wait_writable(), for fd ");
    expect_line(text, "writer", " to be writable");
    expect_line(text, "locker", "in simul_lock_acquire(), queued on the waiters of 0x");
    expect_line(text, "event-waiter", "in simul_event_wait(), queued on the waiters of 0x");
    expect_line(text, "getter", "in simul_queue_get(), queued on the waiters of 0x");
    expect_line(text, "awaiter", "in simul_future_await(), queued on the waiters of 0x");
    expect_line(text, "joiner", "in simul_task_join(), for task 'sleeper' (id ");
    expect_line(text, "offloader", "in simul_to_thread(), for a job on a worker thread");
    /* Dumped at once, `late` has not run; before the signal, the test let it finish. */
    expect_line(text, "late", by_signal ? "finished with 0, its handle not yet joined"
                                        : "ready, not started yet");
    expect_line(text, "sleeper", "waiting 0.");
    if (by_signal) {
        expect(text, "(dumped from the loop, not from a task)");
        expect_line(text, "main", "waiting ");
    } else {
        expect_line(text, "dumper", "running (it called the dump)");
    }
    /* A backtrace of each suspended task's stack; none for the one never started. */
    const char *walked[] = {"sleeper", "reader", "writer", "locker", "event-waiter", "getter",
                            "awaiter", "joiner", "offloader"};
    for (size_t i = 0; i < ARRAY_LEN(walked); i++) {
        int n = frames_of(text, walked[i]);
        if (n < 3) {
            fail_msg("task '%s' has %d frames in the dump:\n%s", walked[i], n, text);
        }
    }
    assert_int_equal(frames_of(text, "late"), 0);
}

static void dump_names_every_kind_of_wait(void **state)
{
    (void)state;
    dump_case dc = {.by_signal = false};
    assert_int_equal(simul_run(stuck_everywhere, &dc), 0);
    print_message("%s", dc.text);
    check_dump(dc.text, false);
    free(dc.text);
}

static void dump_on_sigquit_when_opted_in(void **state)
{
    (void)state;
    dump_case dc = {.by_signal = true};
    assert_int_equal(simul_run(stuck_everywhere, &dc), 0);
    check_dump(dc.text, true);
    free(dc.text);
}

static void dump_bad_arguments(void **state)
{
    (void)state;
    assert_int_equal(simul_loop_dump_tasks(NULL, 1), -ENXIO);
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_loop_dump_tasks(loop, -1), -EINVAL);
    assert_int_equal(simul_loop_set_dump_signal(loop, -2), -EINVAL);
    assert_int_equal(simul_loop_set_dump_signal(NULL, 0), -EINVAL);
    assert_int_equal(simul_loop_set_dump_signal(loop, 100000), -EINVAL);
    FILE *out = tmpfile();
    assert_int_equal(simul_loop_dump_tasks(loop, fileno(out)), 0); /* no task: a header only */
    char *text = read_all(fileno(out));
    expect(text, "simul: task dump: 0 task(s) alive");
    free(text);
    fclose(out);
    assert_int_equal(simul_loop_close(loop), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(dump_names_every_kind_of_wait),
    cmocka_unit_test(dump_on_sigquit_when_opted_in),
    cmocka_unit_test(dump_bad_arguments),
};

SIMUL_TEST_MAIN("test_debug_dump", tests)
