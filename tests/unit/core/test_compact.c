/* test_compact.c — compact tasks: frames copied off the shared run stack and back, checked by data
 * kept on their stacks across every kind of suspension; deep stacks growing the copy; the run
 * stack's overflow report; cancellation at each wait; thread jobs; debug reports and the dump.
 */
#include <signal.h>
#include <sys/wait.h>

#include "test_main_helpers.h"

static const simul_task_opts compact_opts = {.name = "compact", .mode = SIMUL_TASK_COMPACT};

static simul_task *spawn_compact(simul_task_fn fn, void *arg)
{
    simul_task *t = NULL;
    assert_int_equal(simul_task_spawn(&t, fn, arg, &compact_opts), 0);
    return t;
}

/* Fills a stack buffer with a pattern of `seed`; check_pattern says whether it is intact. */
static void fill_pattern(volatile unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed * 131u + i * 7u);
}

static int check_pattern(const volatile unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed * 131u + i * 7u))
            return 0;
    return 1;
}

/* ---- modes ------------------------------------------------------------------------------------ */

static int mode_of_self(void *arg)
{
    (void)arg;
    return 0;
}

static void mode_api(void **state)
{
    (void)state;
    unsetenv("SIMUL_TASKS");
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_loop_get_task_mode(loop), SIMUL_TASK_STACKFUL);
    assert_int_equal(simul_loop_set_task_mode(loop, 7), -EINVAL);
    assert_int_equal(simul_loop_set_task_mode(loop, SIMUL_TASK_MODE_DEFAULT), -EINVAL);
    assert_int_equal(simul_loop_set_task_mode(NULL, SIMUL_TASK_COMPACT), -EINVAL);
    assert_int_equal(simul_loop_set_task_mode(loop, SIMUL_TASK_COMPACT), 0);
    assert_int_equal(simul_loop_get_task_mode(loop), SIMUL_TASK_COMPACT);
    simul_task *t;
    simul_task_opts bad = {.mode = 9};
    assert_int_equal(simul_task_spawn(&t, mode_of_self, NULL, &bad), -EINVAL);
    assert_int_equal(simul_task_spawn(&t, mode_of_self, NULL, NULL), 0);
    int r = -1;
    assert_int_equal(simul_loop_run_until_complete(loop, t, &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(simul_loop_close(loop), 0);
    /* The environment names the default of a new loop. */
    setenv("SIMUL_TASKS", "compact", 1);
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_loop_get_task_mode(loop), SIMUL_TASK_COMPACT);
    assert_int_equal(simul_loop_close(loop), 0);
    setenv("SIMUL_TASKS", "stackful", 1);
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_loop_get_task_mode(loop), SIMUL_TASK_STACKFUL);
    assert_int_equal(simul_loop_close(loop), 0);
    unsetenv("SIMUL_TASKS");
}

/* ---- many tasks interleaving, their data on their stacks ------------------------------------ */

#define INTERLEAVE_TASKS 48
#define INTERLEAVE_ROUNDS 40

typedef struct {
    simul_queue *q;
    unsigned seed;
    int putter;
    int bad;
} inter_arg;

static int interleaver(void *arg)
{
    inter_arg *a = arg;
    size_t n = 200 + (a->seed * 97u) % 3000; /* stacks of different depths */
    volatile unsigned char buf[3200];
    fill_pattern(buf, n, a->seed);
    for (int round = 0; round < INTERLEAVE_ROUNDS; round++) {
        int rc;
        /* Putters and getters (by parity) do as many queue calls each: no deadlock. */
        if (round % 4 == 0) {
            rc = simul_yield();
        } else if (round % 4 == 1) {
            rc = simul_sleep(0.0001);
        } else if (a->putter) {
            rc = simul_queue_put(a->q, (void *)(uintptr_t)(a->seed + 1));
        } else {
            void *item = NULL;
            rc = simul_queue_get(a->q, &item);
            if (rc == 0 && item == NULL)
                a->bad++;
        }
        if (rc != 0 || !check_pattern(buf, n, a->seed))
            a->bad++;
    }
    return check_pattern(buf, n, a->seed) ? 0 : -EIO;
}

SIMUL_TASK_TEST(interleaving_tasks_keep_their_stacks)
{
    (void)arg;
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 4), 0);
    inter_arg args[INTERLEAVE_TASKS];
    simul_task *t[INTERLEAVE_TASKS];
    for (int i = 0; i < INTERLEAVE_TASKS; i++) {
        args[i] = (inter_arg){.q = q, .seed = (unsigned)i * 2654435761u, .putter = i % 2};
        /* Every fourth one stackful: the two kinds switch into each other too. */
        simul_task_opts o = {.name = "inter",
                             .mode = i % 4 == 3 ? SIMUL_TASK_STACKFUL : SIMUL_TASK_COMPACT};
        assert_int_equal(simul_task_spawn(&t[i], interleaver, &args[i], &o), 0);
    }
    for (int i = 0; i < INTERLEAVE_TASKS; i++) {
        int r = -1;
        assert_int_equal(simul_task_join(t[i], &r), 0);
        assert_int_equal(r, 0);
        assert_int_equal(args[i].bad, 0);
    }
    simul_queue_free(q, NULL);
    return 0;
}

/* ---- deep stacks -------------------------------------------------------------------------- */

static int __attribute__((noinline)) dig(int depth, int bottom)
{
    volatile unsigned char frame[600];
    fill_pattern(frame, sizeof frame, (unsigned)depth);
    int below;
    if (depth == bottom) {
        /* Suspended deep down, several times, while others run on the run stack. */
        for (int i = 0; i < 5; i++)
            if (simul_sleep(0.0005) != 0)
                return -1000000;
        below = 0;
    } else {
        below = dig(depth + 1, bottom);
    }
    return below + check_pattern(frame, sizeof frame, (unsigned)depth);
}

static int deep_task(void *arg)
{
    int bottom = (int)(intptr_t)arg;
    int shallow = dig(0, 2); /* a small copy first ... */
    int deep = dig(0, bottom); /* ... that must grow past its size ... */
    int again = dig(0, 3);     /* ... and shrink back */
    return shallow == 3 && deep == bottom + 1 && again == 4 ? 0 : -EIO;
}

static int churn(void *arg)
{
    volatile unsigned char buf[2000];
    unsigned seed = (unsigned)(uintptr_t)arg;
    fill_pattern(buf, sizeof buf, seed);
    for (int i = 0; i < 50; i++) {
        if (simul_sleep(0.0001) != 0 || !check_pattern(buf, sizeof buf, seed))
            return -EIO;
    }
    return 0;
}

SIMUL_TASK_TEST(deep_stack_grows_its_copy)
{
    (void)arg;
    simul_task *d = spawn_compact(deep_task, (void *)(intptr_t)250); /* ~170 KiB of frames */
    simul_task *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = spawn_compact(churn, (void *)(uintptr_t)(i + 10));
    int r = -1;
    assert_int_equal(simul_task_join(d, &r), 0);
    assert_int_equal(r, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(simul_task_join(c[i], &r), 0);
        assert_int_equal(r, 0);
    }
    return 0;
}

/* ---- the run stack's overflow ------------------------------------------------------------------ */

static volatile int no_limit = 1 << 30;

static int __attribute__((noinline)) recurse_forever(int depth)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    if (depth >= no_limit)
        return frame[0];
    return recurse_forever(depth + 1) + frame[depth & 255];
}

static int overflow_task(void *arg)
{
    (void)arg;
    return recurse_forever(0);
}

static int overflow_main(void *arg)
{
    (void)arg;
    simul_task *other = spawn_compact(churn, (void *)(uintptr_t)3); /* shares the run stack */
    simul_task *t;
    simul_task_opts o = {.name = "digger", .mode = SIMUL_TASK_COMPACT};
    if (simul_task_spawn(&t, overflow_task, NULL, &o) != 0)
        _exit(102);
    simul_task_join(t, NULL);
    simul_task_join(other, NULL);
    return 0;
}

/* Like test_overflow.c, relies on running in a process of its own (CTest runs each case so):
 * simul's SIGSEGV handler is installed once per process, and cmocka replaces it between cases. */
static void run_stack_overflow_is_reported(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        alarm(30);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        if (dup2(fds[1], STDERR_FILENO) < 0)
            _exit(100);
        simul_loop *loop;
        if (simul_loop_new(&loop) != 0)
            _exit(101);
        simul_task *m;
        if (simul_task_spawn(&m, overflow_main, NULL, NULL) != 0)
            _exit(102);
        simul_loop_run_until_complete(loop, m, NULL);
        _exit(103);
    }
    close(fds[1]);
    char text[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof text - 1 && (n = read(fds[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)n;
    text[len] = 0;
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_true(WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
    assert_non_null(strstr(text, "simul: task 'digger' overflowed its 256 KiB stack"));
    assert_non_null(strstr(text, "simul_task_opts.stack_size"));
}

/* ---- cancellation at each kind of wait --------------------------------------------------------- */

enum wait_kind {
    W_SLEEP,
    W_JOIN,
    W_FUTURE,
    W_QUEUE_GET,
    W_QUEUE_PUT,
    W_LOCK,
    W_EVENT,
    W_SEMAPHORE,
    W_CONDITION,
    W_BARRIER,
    W_FD,
    W_GATHER,
    W_GROUP,
    W_CHANNEL,
    W_THREAD,
    W_KINDS
};

typedef struct {
    enum wait_kind kind;
    int parked; /* set just before suspending */
    int rc;
    int intact;
    /* the things to wait on */
    simul_future *f;
    simul_queue *q_empty, *q_full;
    simul_lock *lock;
    simul_event *ev;
    simul_semaphore *sem;
    simul_condition *cond;
    simul_barrier *bar;
    simul_channel *ch;
    int pipe_r;
    int thread_gate; /* a pipe the thread job blocks on */
} wait_case;

static int sleeper_forever(void *arg)
{
    (void)arg;
    return simul_sleep(3600);
}

static int block_on_fd(void *arg)
{
    char c;
    return (int)read((int)(intptr_t)arg, &c, 1);
}

static int waiter_task(void *arg)
{
    wait_case *c = arg;
    volatile unsigned char canary[1500];
    fill_pattern(canary, sizeof canary, (unsigned)c->kind + 77);
    int rc = 0;
    c->parked = 1;
    switch (c->kind) {
    case W_SLEEP:
        rc = simul_sleep(3600);
        break;
    case W_JOIN: {
        simul_task *t = spawn_compact(sleeper_forever, NULL);
        rc = simul_task_join(t, NULL);
        simul_task_cancel(t);
        simul_scope sh;
        simul_scope_shield(&sh);
        simul_task_join(t, NULL);
        simul_scope_end(&sh);
        break;
    }
    case W_FUTURE:
        rc = simul_future_await(c->f, NULL, NULL);
        break;
    case W_QUEUE_GET: {
        void *item;
        rc = simul_queue_get(c->q_empty, &item);
        break;
    }
    case W_QUEUE_PUT:
        rc = simul_queue_put(c->q_full, (void *)1);
        break;
    case W_LOCK:
        rc = simul_lock_acquire(c->lock);
        break;
    case W_EVENT:
        rc = simul_event_wait(c->ev);
        break;
    case W_SEMAPHORE:
        rc = simul_semaphore_acquire(c->sem);
        break;
    case W_CONDITION:
        rc = simul_condition_acquire(c->cond);
        if (rc == 0) {
            rc = simul_condition_wait(c->cond);
            simul_condition_release(c->cond);
        }
        break;
    case W_BARRIER:
        rc = simul_barrier_wait(c->bar);
        break;
    case W_FD:
        rc = simul_wait_readable(c->pipe_r);
        break;
    case W_GATHER: {
        simul_task *t[2] = {spawn_compact(sleeper_forever, NULL),
                            spawn_compact(sleeper_forever, NULL)};
        int res[2];
        rc = simul_gather(t, 2, res); /* cancels and joins them when cancelled */
        break;
    }
    case W_GROUP: {
        simul_group *g;
        assert_int_equal(simul_group_new(&g), 0);
        simul_group_spawn(g, sleeper_forever, NULL, &compact_opts);
        rc = simul_group_join(g, NULL);
        break;
    }
    case W_CHANNEL: {
        void *item;
        rc = simul_channel_get(c->ch, &item);
        break;
    }
    case W_THREAD: {
        int r = 0;
        rc = simul_to_thread(block_on_fd, (void *)(intptr_t)c->thread_gate, &r);
        break;
    }
    default:
        rc = -EINVAL;
    }
    c->rc = rc;
    c->intact = check_pattern(canary, sizeof canary, (unsigned)c->kind + 77);
    return 0;
}

SIMUL_TASK_TEST(cancel_at_each_wait)
{
    (void)arg;
    for (int k = 0; k < W_KINDS; k++) {
        wait_case c = {.kind = (enum wait_kind)k};
        int p[2], gate[2];
        assert_int_equal(pipe(p), 0);
        assert_int_equal(pipe(gate), 0);
        c.pipe_r = p[0];
        c.thread_gate = gate[0];
        assert_int_equal(simul_future_new(&c.f), 0);
        assert_int_equal(simul_queue_new(&c.q_empty, 1), 0);
        assert_int_equal(simul_queue_new(&c.q_full, 1), 0);
        assert_int_equal(simul_queue_put_nowait(c.q_full, (void *)2), 0);
        assert_int_equal(simul_lock_new(&c.lock), 0);
        assert_int_equal(simul_lock_acquire(c.lock), 0);
        assert_int_equal(simul_event_new(&c.ev), 0);
        assert_int_equal(simul_semaphore_new(&c.sem, 0), 0);
        assert_int_equal(simul_condition_new(&c.cond, NULL), 0);
        assert_int_equal(simul_barrier_new(&c.bar, 2), 0);
        assert_int_equal(simul_channel_new(&c.ch, 1), 0);

        simul_task *w = spawn_compact(waiter_task, &c);
        while (!c.parked)
            assert_int_equal(simul_yield(), 0);
        /* Others run on the run stack meanwhile: the waiter is evicted to its copy. */
        simul_task *o[3];
        for (int i = 0; i < 3; i++)
            o[i] = spawn_compact(churn, (void *)(uintptr_t)(100 + i));
        for (int i = 0; i < 5; i++)
            assert_int_equal(simul_sleep(0.0002), 0);
        assert_int_equal(simul_task_cancel(w), 0);
        assert_int_equal(simul_task_join(w, NULL), 0);
        if (c.rc != -ECANCELED || !c.intact)
            fail_msg("wait kind %d: rc %d, stack intact %d", k, c.rc, c.intact);
        for (int i = 0; i < 3; i++) {
            int r = -1;
            assert_int_equal(simul_task_join(o[i], &r), 0);
            assert_int_equal(r, 0);
        }
        /* The cancelled thread job was either never run or is blocked reading the gate: the
         * byte lets it end whenever it gets there, and the gate stays open for it (one pipe). */
        assert_int_equal(write(gate[1], "x", 1), 1);
        simul_lock_release(c.lock);
        simul_future_free(c.f);
        simul_queue_free(c.q_empty, NULL);
        simul_queue_free(c.q_full, NULL);
        simul_lock_free(c.lock);
        simul_event_free(c.ev);
        simul_semaphore_free(c.sem);
        simul_condition_free(c.cond);
        simul_barrier_free(c.bar);
        simul_channel_free(c.ch, NULL);
        close(p[0]);
        close(p[1]);
        if (k != W_THREAD) {
            close(gate[1]);
            close(gate[0]);
        }
    }
    return 0;
}

/* ---- a thread job writing into a compact task's stack buffer ----------------------------------- */

static int file_reader(void *arg)
{
    const char *path = arg;
    unsigned char buf[8192]; /* on the run stack, filled by a worker thread */
    int fd = simul_file_open(path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    int bad = 0;
    for (int round = 0; round < 8; round++) {
        memset(buf, 0, sizeof buf);
        long n = simul_file_pread(fd, buf, sizeof buf, 0);
        if (n != (long)sizeof buf || !check_pattern(buf, sizeof buf, 5))
            bad++;
    }
    simul_file_close(fd);
    return bad ? -EIO : 0;
}

SIMUL_TASK_TEST(thread_job_fills_a_stack_buffer)
{
    (void)arg;
    char path[] = "/tmp/simul_compact_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unsigned char data[8192];
    fill_pattern(data, sizeof data, 5);
    assert_int_equal(write(fd, data, sizeof data), (ssize_t)sizeof data);
    close(fd);
    simul_task *r[3], *o[3];
    for (int i = 0; i < 3; i++) {
        r[i] = spawn_compact(file_reader, path);
        o[i] = spawn_compact(churn, (void *)(uintptr_t)(200 + i));
    }
    for (int i = 0; i < 3; i++) {
        int res = -1;
        assert_int_equal(simul_task_join(r[i], &res), 0);
        assert_int_equal(res, 0);
        assert_int_equal(simul_task_join(o[i], &res), 0);
        assert_int_equal(res, 0);
    }
    unlink(path);
    return 0;
}

/* ---- deadlines: scopes live on the stack ----------------------------------------------------- */

static int deadline_task(void *arg)
{
    (void)arg;
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.005), 0);
    int rc = simul_sleep(3600);
    int expired = simul_scope_end(&sc);
    return rc == -ETIMEDOUT && expired == 1 ? 0 : -EIO;
}

SIMUL_TASK_TEST(deadline_scope_of_evicted_task)
{
    (void)arg;
    simul_task *d = spawn_compact(deadline_task, NULL);
    simul_task *o = spawn_compact(churn, (void *)(uintptr_t)9);
    int r = -1;
    assert_int_equal(simul_task_join(d, &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(simul_task_join(o, &r), 0);
    assert_int_equal(r, 0);
    return 0;
}

/* ---- debug mode names the hazard ----------------------------------------------------------------- */

static int read_int(void *arg)
{
    return *(int *)arg;
}

static int hazard_task(void *arg)
{
    simul_queue *q = arg;
    int local = 42;
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, read_int, &local, &compact_opts), 0);
    simul_task_cancel(t); /* never mind what it reads: the report is the point */
    simul_task_join(t, NULL);
    assert_int_equal(simul_queue_put_nowait(q, &local), 0);
    void *item;
    assert_int_equal(simul_queue_get_nowait(q, &item), 0);
    int heap_ok = 7;
    (void)heap_ok;
    return 0;
}

static int static_value = 3;

SIMUL_TASK_TEST(debug_names_stack_pointer_handed_out)
{
    (void)arg;
    assert_int_equal(simul_loop_set_debug(simul_loop_current(), true), 0);
    simul_queue *q;
    assert_int_equal(simul_queue_new(&q, 0), 0);
    test_capture cap;
    test_capture_begin(&cap);
    simul_task *t = spawn_compact(hazard_task, q);
    int r = -1;
    simul_task_join(t, &r);
    /* Not a hazard: static memory, and the stackful test body's own stack. */
    int mine = 1;
    simul_task *ok1, *ok2;
    assert_int_equal(simul_task_spawn(&ok1, read_int, &static_value, &compact_opts), 0);
    assert_int_equal(simul_task_spawn(&ok2, read_int, &mine, &compact_opts), 0);
    simul_task_join(ok1, NULL);
    simul_task_join(ok2, NULL);
    char *text = test_capture_end(&cap);
    assert_int_equal(r, 0);
    assert_non_null(strstr(text, "simul_task_spawn(): the argument"));
    assert_non_null(strstr(text, "simul_queue_put_nowait(): the item"));
    assert_non_null(strstr(text, "stack of compact task 'compact'"));
    const char *first = strstr(text, "simul_task_spawn(): the argument");
    assert_null(strstr(first + 1, "simul_task_spawn(): the argument")); /* only the one */
    free(text);
    simul_queue_free(q, NULL);
    assert_int_equal(simul_loop_set_debug(simul_loop_current(), false), 0);
    return 0;
}

/* ---- the task dump ------------------------------------------------------------------------------- */

static int __attribute__((noinline)) parked_in_dump_target(void)
{
    return simul_sleep(3600);
}

static int dump_target(void *arg)
{
    (void)arg;
    return parked_in_dump_target();
}

SIMUL_TASK_TEST(dump_walks_compact_tasks)
{
    (void)arg;
    simul_task *a = spawn_compact(dump_target, NULL);
    simul_task *b = spawn_compact(dump_target, NULL); /* evicts a */
    assert_int_equal(simul_sleep(0.001), 0);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_int_equal(simul_loop_dump_tasks(NULL, fileno(tmp)), 3);
    rewind(tmp);
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, tmp);
    text[n] = 0;
    fclose(tmp);
    assert_non_null(strstr(text, "compact task: stack saved off the run stack"));
    assert_non_null(strstr(text, "in simul_sleep()"));
    /* The walk restored the evicted one to take its backtrace. */
    const char *saved = strstr(text, "compact task: stack saved off the run stack");
    assert_non_null(strstr(saved, "#0"));
    /* Both still sleep, intact: cancel and join them. */
    simul_task_cancel(a);
    simul_task_cancel(b);
    int r = 0;
    assert_int_equal(simul_task_join(a, &r), 0);
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(simul_task_join(b, &r), 0);
    assert_int_equal(r, -ECANCELED);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(mode_api),
    cmocka_unit_test(interleaving_tasks_keep_their_stacks),
    cmocka_unit_test(deep_stack_grows_its_copy),
    cmocka_unit_test(run_stack_overflow_is_reported),
    cmocka_unit_test(cancel_at_each_wait),
    cmocka_unit_test(thread_job_fills_a_stack_buffer),
    cmocka_unit_test(deadline_scope_of_evicted_task),
    cmocka_unit_test(debug_names_stack_pointer_handed_out),
    cmocka_unit_test(dump_walks_compact_tasks),
};

SIMUL_TEST_MAIN("test_compact", tests)
