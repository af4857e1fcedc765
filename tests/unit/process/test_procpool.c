/* test_procpool.c — the process pool: results and large payloads both ways, calls in parallel
 * processes, FIFO queueing, workers that crash (signal, abort, _exit) reported and replaced,
 * cancellation and deadlines while queued and while running (the worker is killed and reaped),
 * size limits, what a worker inherits (fds, signal dispositions), dying with its parent, and
 * closing with calls in flight; workers that die idle (noticed and reaped by the loop, or found
 * dead with the request unread: the call goes to a fresh worker), max calls per worker, and the
 * submit form (from a callback, many gathered, cancelled or freed queued and running). Every case
 * ends with the fds it started with and no child left. test_procpool_fallback.c runs every case
 * again with SIMUL_NO_PIDFD=1.
 */
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "test_main_helpers.h"

/* ---- checks shared by every case ------------------------------------------------------------- */

static bool no_children(void)
{
    errno = 0;
    return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* Whether pid is gone for good (a zombie left to an init that does not reap counts as gone). */
static bool process_gone(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static bool wait_gone(pid_t pid, double seconds)
{
    double end = test_clock() + seconds;
    while (!process_gone(pid)) {
        if (test_clock() > end)
            return false;
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    return true;
}

/* Memory the workers share with the test (mapped before any fork). */
typedef struct shared {
    atomic_int ran;       /* fn_mark calls */
    atomic_int order[16]; /* fn_order: the sequence in which calls ran */
    atomic_int norder;
    atomic_int pid; /* the pid of the last worker that entered a long function */
    atomic_int held;    /* fn_hold calls that have started */
    atomic_int release; /* set by the test: fn_hold calls return */
} shared;
static shared *shm;

static void shm_setup(void)
{
    if (!shm) {
        shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(shm != MAP_FAILED);
    }
    memset((void *)shm, 0, sizeof *shm);
}

/* ---- functions run in the workers ------------------------------------------------------------ */

static int fn_sum(const void *in, size_t len, void **out, size_t *out_len)
{
    const uint32_t *v = in;
    uint64_t s = 0;
    for (size_t i = 0; i < len / sizeof *v; i++)
        s += v[i];
    uint64_t *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    *r = s;
    *out = r;
    *out_len = sizeof *r;
    return (int)(len / sizeof *v);
}

/* Each byte xor 0x5a, so a reply cannot be the request passed through by mistake. */
static int fn_xor(const void *in, size_t len, void **out, size_t *out_len)
{
    if (len == 0)
        return 0;
    unsigned char *r = malloc(len);
    if (!r)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++)
        r[i] = ((const unsigned char *)in)[i] ^ 0x5a;
    *out = r;
    *out_len = len;
    return 1;
}

static int fn_negative(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    return -42;
}

/* in: a size_t n. Replies n bytes of a pattern; returns 7. */
static int fn_make(const void *in, size_t len, void **out, size_t *out_len)
{
    if (len != sizeof(size_t))
        return -EINVAL;
    size_t n;
    memcpy(&n, in, sizeof n);
    unsigned char *r = malloc(n ? n : 1);
    if (!r)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        r[i] = (unsigned char)(i * 7 + 3);
    *out = r;
    *out_len = n;
    return 7;
}

static int fn_mark(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    atomic_fetch_add(&shm->ran, 1);
    return 1;
}

static int fn_order(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)len, (void)out, (void)out_len;
    int i = atomic_fetch_add(&shm->norder, 1);
    if (i < 16)
        atomic_store(&shm->order[i], *(const int *)in);
    return 0;
}

typedef struct span {
    int pid;
    double start, end;
} span;

/* in: a double of seconds to spin. Replies its pid and when it ran. */
static int fn_spin(const void *in, size_t len, void **out, size_t *out_len)
{
    if (len != sizeof(double))
        return -EINVAL;
    span *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    s->pid = getpid();
    atomic_store(&shm->pid, s->pid);
    s->start = test_clock();
    double secs;
    memcpy(&secs, in, sizeof secs);
    test_busy_wait(secs);
    s->end = test_clock();
    *out = s;
    *out_len = sizeof *s;
    return 0;
}

/* Holds its worker until the test sets shm->release. Replies its pid and when it ran. */
static int fn_hold(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len;
    span *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    s->pid = getpid();
    s->start = test_clock();
    atomic_fetch_add(&shm->held, 1);
    while (!atomic_load(&shm->release))
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    s->end = test_clock();
    *out = s;
    *out_len = sizeof *s;
    return 0;
}

static int fn_forever(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    atomic_store(&shm->pid, getpid());
    volatile int spin = 1;
    while (spin) {
    }
    return 0;
}

static int fn_getpid(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    return getpid();
}

/* A crash must not leave a core file or a sanitizer report (which fails the test run) behind. */
static void quiet_crash_setup(void)
{
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0)
        dup2(devnull, STDERR_FILENO);
}

static int fn_segv(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    quiet_crash_setup();
    raise(SIGSEGV);
    return 0;
}

static int fn_abort(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    quiet_crash_setup();
    abort();
}

static int fn_exit3(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    _exit(3);
}

/* Counts the worker's open fds above 2. */
static int fn_count_fds(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    int n = 0;
    for (int fd = 3; fd < 4096; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

/* Bit 0: SIGUSR1's disposition is the default; bit 1: SIGINT is ignored; bit 2: SIGUSR2 is not
 * blocked; bit 3: simul sees no loop. */
static int fn_signals(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    struct sigaction sa;
    sigset_t mask;
    int bits = 0;
    if (sigaction(SIGUSR1, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        bits |= 1;
    if (sigaction(SIGINT, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
        bits |= 2;
    if (sigprocmask(SIG_BLOCK, NULL, &mask) == 0 && !sigismember(&mask, SIGUSR2))
        bits |= 4;
    if (simul_loop_current() == NULL && simul_sleep(0.001) == -EPERM)
        bits |= 8;
    return bits;
}

/* ---- helpers for tasks ----------------------------------------------------------------------- */

typedef struct call_args {
    simul_procpool *pool;
    simul_proc_fn fn;
    const void *in;
    size_t in_len;
    void *out;
    size_t out_len;
    int result;
} call_args;

static int call_task(void *arg)
{
    call_args *c = arg;
    c->result = INT_MIN;
    return simul_procpool_call(c->pool, c->fn, c->in, c->in_len, &c->out, &c->out_len, &c->result);
}

/* Every case: the fds it began with, no child process left. */
#define LEAK_BEGIN() int fds_at_start_ = test_fd_count()
#define LEAK_END()                                                                                 \
    do {                                                                                           \
        assert_int_equal(test_fd_count(), fds_at_start_);                                               \
        assert_true(no_children());                                                                \
    } while (0)

/* ---- cases ----------------------------------------------------------------------------------- */

SIMUL_TASK_TEST(results_come_back)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(2, &p), 0);
    assert_int_equal(simul_procpool_size(p), 2);
    assert_int_equal(simul_procpool_workers(p), 0); /* started on demand */

    uint32_t v[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = (uint32_t)i + 1;
    void *out = NULL;
    size_t len = 0;
    int r = 0;
    assert_int_equal(simul_procpool_call(p, fn_sum, v, sizeof v, &out, &len, &r), 0);
    assert_int_equal(r, 1000);
    assert_int_equal(len, sizeof(uint64_t));
    assert_int_equal(*(uint64_t *)out, 500500);
    free(out);
    assert_int_equal(simul_procpool_workers(p), 1);

    assert_int_equal(simul_procpool_call(p, fn_xor, "hello", 5, &out, &len, &r), 0);
    assert_int_equal(r, 1);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "\x32\x3f\x36\x36\x35", 5);
    free(out);

    /* empty request, empty reply */
    out = (void *)1;
    assert_int_equal(simul_procpool_call(p, fn_xor, NULL, 0, &out, &len, &r), 0);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_int_equal(r, 0);
    /* fn's failure is its result, not the call's */
    assert_int_equal(simul_procpool_call(p, fn_negative, NULL, 0, &out, &len, &r), 0);
    assert_int_equal(r, -42);
    /* nobody wants the reply: it is read and dropped */
    assert_int_equal(simul_procpool_call(p, fn_xor, "abc", 3, NULL, NULL, NULL), 0);
    /* the worker is reused: one process served every call */
    int pid1 = 0, pid2 = 0;
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid1), 0);
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid2), 0);
    assert_int_equal(pid1, pid2);
    assert_int_not_equal(pid1, getpid());
    assert_int_equal(simul_procpool_workers(p), 1);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(large_payloads_both_ways)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    size_t n = 8u << 20;
    unsigned char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)(i * 31 + (i >> 13));
    void *out = NULL;
    size_t len = 0;
    int r = 0;
    assert_int_equal(simul_procpool_call(p, fn_xor, big, n, &out, &len, &r), 0);
    assert_int_equal(r, 1);
    assert_int_equal(len, n);
    unsigned char *o = out;
    for (size_t i = 0; i < n; i++)
        if (o[i] != (big[i] ^ 0x5a))
            fail_msg("byte %zu differs", i);
    free(out);
    free(big);

    size_t want = 24u << 20; /* a reply much larger than its request */
    assert_int_equal(simul_procpool_call(p, fn_make, &want, sizeof want, &out, &len, &r), 0);
    assert_int_equal(r, 7);
    assert_int_equal(len, want);
    o = out;
    for (size_t i = 0; i < want; i++)
        if (o[i] != (unsigned char)(i * 7 + 3))
            fail_msg("reply byte %zu differs", i);
    free(out);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

static atomic_int ticks;
/* Once both fn_hold calls are in, ticks three times on the loop, then lets them return: the
 * loop provably stays free while both workers run (state, not timing: a loaded machine only
 * makes it slower). */
static int hold_ticker(void *arg)
{
    (void)arg;
    while (atomic_load(&shm->held) < 2)
        if (simul_sleep(0.005) < 0)
            return 0;
    while (atomic_load(&ticks) < 3) {
        if (simul_sleep(0.01) < 0)
            return 0;
        atomic_fetch_add(&ticks, 1);
    }
    atomic_store(&shm->release, 1);
    return 0;
}

SIMUL_TASK_TEST(parallel_calls_run_in_separate_processes)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(2, &p), 0);
    call_args c[2];
    simul_task *t[2], *tick;
    atomic_store(&ticks, 0);
    assert_int_equal(simul_task_spawn(&tick, hold_ticker, NULL, NULL), 0);
    double t0 = test_clock();
    for (int i = 0; i < 2; i++) {
        c[i] = (call_args){.pool = p, .fn = fn_hold};
        assert_int_equal(simul_task_spawn(&t[i], call_task, &c[i], NULL), 0);
    }
    int res[2];
    assert_int_equal(simul_gather(t, 2, res), 0);
    double wall = test_clock() - t0;
    assert_int_equal(simul_task_join(tick, NULL), 0);
    span *a = c[0].out, *b = c[1].out;
    assert_non_null(a);
    assert_non_null(b);
    assert_int_not_equal(a->pid, b->pid);
    /* Both ran at the same time: each started before the other ended. */
    assert_true(a->start < b->end && b->start < a->end);
    /* The loop stayed free meanwhile. */
    assert_true(atomic_load(&ticks) >= 3);
    print_message("two held functions took %.0f ms wall; %d ticks of 10 ms meanwhile\n",
                  wall * 1e3, atomic_load(&ticks));
    free(a);
    free(b);
    assert_int_equal(simul_procpool_workers(p), 2);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

static int order_task(void *arg)
{
    call_args *c = arg;
    return simul_procpool_call(c->pool, fn_order, c->in, sizeof(int), NULL, NULL, NULL);
}

SIMUL_TASK_TEST(calls_beyond_workers_queue_fifo)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    enum { N = 8 };
    int ids[N];
    call_args c[N];
    simul_task *t[N];
    for (int i = 0; i < N; i++) {
        ids[i] = i;
        c[i] = (call_args){.pool = p, .in = &ids[i]};
        assert_int_equal(simul_task_spawn(&t[i], order_task, &c[i], NULL), 0);
    }
    int res[N];
    assert_int_equal(simul_gather(t, N, res), 0);
    assert_int_equal(atomic_load(&shm->norder), N);
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&shm->order[i]), i);
    assert_int_equal(simul_procpool_workers(p), 1);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(crashed_worker_is_reported_and_replaced)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    struct {
        simul_proc_fn fn;
        int status;
    } crashes[] = {{fn_segv, -SIGSEGV}, {fn_abort, -SIGABRT}, {fn_exit3, 3}};
    int last_pid = 0;
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &last_pid), 0);
    for (size_t i = 0; i < ARRAY_LEN(crashes); i++) {
        void *out = (void *)1;
        size_t len = 99;
        int r = 0;
        assert_int_equal(simul_procpool_call(p, crashes[i].fn, "x", 1, &out, &len, &r),
                         -EOWNERDEAD);
        assert_int_equal(r, crashes[i].status);
        assert_null(out);
        assert_int_equal(len, 0);
        /* reaped before the call returned */
        assert_true(process_gone(last_pid));
        assert_true(no_children());
        assert_int_equal(simul_procpool_workers(p), 0);
        /* the next call gets a fresh worker */
        int pid = 0;
        assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid), 0);
        assert_int_not_equal(pid, last_pid);
        last_pid = pid;
        assert_int_equal(simul_procpool_workers(p), 1);
    }
    assert_string_equal(simul_errname(-EOWNERDEAD), "EOWNERDEAD");
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

/* A worker the kernel reaps itself (SIGCHLD ignored) leaves no status to learn: the call fails
 * with -EOWNERDEAD and the result is the process layer's one "unknown" value, 255 (asyncio's
 * returncode for an unknown child; subprocesses report the same). The pool goes on. */
SIMUL_TASK_TEST(worker_reaped_elsewhere_reports_unknown_status)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    assert_int_equal(sigaction(SIGCHLD, &ign, &old), 0);
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    int r = 0;
    assert_int_equal(simul_procpool_call(p, fn_exit3, "x", 1, NULL, NULL, &r), -EOWNERDEAD);
    assert_int_equal(r, 255);
    int pid = 0;
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid), 0);
    assert_true(pid > 0);
    assert_int_equal(simul_procpool_close(p), 0);
    assert_int_equal(sigaction(SIGCHLD, &old, NULL), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(crash_leaves_other_calls_running)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(2, &p), 0);
    double secs = 0.3;
    call_args good = {.pool = p, .fn = fn_spin, .in = &secs, .in_len = sizeof secs};
    call_args bad = {.pool = p, .fn = fn_segv};
    simul_task *t[2];
    assert_int_equal(simul_task_spawn(&t[0], call_task, &good, NULL), 0);
    assert_int_equal(simul_task_spawn(&t[1], call_task, &bad, NULL), 0);
    int res[2];
    assert_int_equal(simul_gather(t, 2, res), 1);
    assert_int_equal(res[0], 0);
    assert_int_equal(res[1], -EOWNERDEAD);
    assert_int_equal(bad.result, -SIGSEGV);
    span *s = good.out;
    assert_non_null(s);
    assert_true(s->end - s->start >= 0.29);
    free(s);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(cancel_while_queued_never_runs)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    double secs = 0.3;
    call_args busy = {.pool = p, .fn = fn_spin, .in = &secs, .in_len = sizeof secs};
    call_args queued = {.pool = p, .fn = fn_mark};
    simul_task *tb, *tq;
    assert_int_equal(simul_task_spawn(&tb, call_task, &busy, NULL), 0);
    assert_int_equal(simul_task_spawn(&tq, call_task, &queued, NULL), 0);
    assert_int_equal(simul_sleep(0.1), 0);
    assert_int_equal(simul_task_cancel(tq), 0);
    int r;
    assert_int_equal(simul_task_join(tq, &r), 0);
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(simul_task_join(tb, &r), 0);
    assert_int_equal(r, 0);
    free(busy.out);
    assert_int_equal(simul_sleep(0.05), 0);
    assert_int_equal(atomic_load(&shm->ran), 0);
    /* the worker was not disturbed: the next call runs on it */
    assert_int_equal(simul_procpool_call(p, fn_mark, NULL, 0, NULL, NULL, &r), 0);
    assert_int_equal(atomic_load(&shm->ran), 1);
    assert_int_equal(simul_procpool_workers(p), 1);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(cancel_while_running_kills_the_worker)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    call_args c = {.pool = p, .fn = fn_forever};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, call_task, &c, NULL), 0);
    double end = test_clock() + 10;
    while (atomic_load(&shm->pid) == 0 && test_clock() < end)
        assert_int_equal(simul_sleep(0.01), 0);
    pid_t pid = atomic_load(&shm->pid);
    assert_true(pid > 0);
    double t0 = test_clock();
    assert_int_equal(simul_task_cancel(t), 0);
    int r;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -ECANCELED);
    assert_true(test_clock() - t0 < 5);
    /* killed and reaped by the time the call returned */
    assert_true(process_gone(pid));
    assert_int_equal(simul_procpool_workers(p), 0);
    assert_true(no_children());
    int pid2 = 0;
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid2), 0);
    assert_int_not_equal(pid2, pid);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(deadline_bounds_a_function_that_never_returns)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    simul_scope s;
    double t0 = test_clock();
    assert_int_equal(simul_scope_timeout(&s, 0.2), 0);
    int r = 12345;
    assert_int_equal(simul_procpool_call(p, fn_forever, NULL, 0, NULL, NULL, &r), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&s), 1);
    double took = test_clock() - t0;
    assert_true(took >= 0.19 && took < 5);
    assert_int_equal(r, 12345); /* no result for an interrupted call */
    pid_t pid = atomic_load(&shm->pid);
    assert_true(pid > 0 && process_gone(pid));
    assert_int_equal(simul_procpool_call(p, fn_mark, NULL, 0, NULL, NULL, &r), 0);
    assert_int_equal(r, 1);
    /* a deadline already past: nothing starts */
    assert_int_equal(simul_scope_timeout(&s, 0), 0);
    assert_int_equal(simul_procpool_call(p, fn_mark, NULL, 0, NULL, NULL, &r), -ETIMEDOUT);
    simul_scope_end(&s);
    assert_int_equal(atomic_load(&shm->ran), 1);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(size_limits)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    assert_int_equal(simul_procpool_set_limits(p, 1024, 2048), 0);
    static char buf[4096];
    int r = 0, pid = 0, pid2 = 0;
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid), 0);
    /* request over the limit: refused before anything is sent */
    assert_int_equal(simul_procpool_call(p, fn_mark, buf, 1025, NULL, NULL, &r), -EMSGSIZE);
    assert_int_equal(atomic_load(&shm->ran), 0);
    assert_int_equal(simul_procpool_call(p, fn_mark, buf, 1024, NULL, NULL, &r), 0);
    assert_int_equal(atomic_load(&shm->ran), 1);
    /* reply over the limit: fn ran, its result comes back, the reply does not */
    size_t want = 2049;
    void *out = (void *)1;
    size_t len = 1;
    r = 0;
    assert_int_equal(simul_procpool_call(p, fn_make, &want, sizeof want, &out, &len, &r),
                     -EMSGSIZE);
    assert_int_equal(r, 7);
    assert_null(out);
    assert_int_equal(len, 0);
    want = 2048;
    assert_int_equal(simul_procpool_call(p, fn_make, &want, sizeof want, &out, &len, &r), 0);
    assert_int_equal(len, 2048);
    free(out);
    /* none of it cost the worker */
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid2), 0);
    assert_int_equal(pid, pid2);
    /* the default: 64 MiB (refused before `in` is read, so a short buffer shows that) */
    assert_int_equal(simul_procpool_set_limits(p, 0, 0), 0);
    assert_int_equal(
        simul_procpool_call(p, fn_mark, buf, SIMUL_PROCPOOL_MAX_MESSAGE + 1, NULL, NULL, &r),
        -EMSGSIZE);
    want = SIMUL_PROCPOOL_MAX_MESSAGE + 1;
    assert_int_equal(simul_procpool_call(p, fn_make, &want, sizeof want, &out, &len, &r),
                     -EMSGSIZE);
    assert_int_equal(simul_procpool_set_limits(NULL, 1, 1), -EINVAL);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(close_with_calls_in_flight)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(2, &p), 0);
    enum { N = 5 };
    call_args c[N];
    simul_task *t[N];
    for (int i = 0; i < N; i++) {
        /* two run forever, three wait for a worker */
        c[i] = (call_args){.pool = p, .fn = i < 2 ? fn_forever : fn_mark};
        assert_int_equal(simul_task_spawn(&t[i], call_task, &c[i], NULL), 0);
    }
    assert_int_equal(simul_sleep(0.2), 0);
    assert_int_equal(simul_procpool_workers(p), 2);
    assert_int_equal(simul_procpool_close(p), 0);
    /* every worker is reaped by close itself */
    assert_true(no_children());
    int res[N];
    assert_int_equal(simul_gather(t, N, res), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(res[i], -ECANCELED);
        assert_null(c[i].out);
    }
    assert_int_equal(atomic_load(&shm->ran), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(close_while_a_worker_is_starting)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    call_args c = {.pool = p, .fn = fn_mark};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, call_task, &c, NULL), 0);
    assert_int_equal(simul_yield(), 0); /* the call has asked the loop for a fork */
    assert_int_equal(simul_procpool_close(p), 0);
    int r;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(atomic_load(&shm->ran), 0);

    /* Once more, closing right after the fork (the request goes out with it), with a function
     * that cannot finish first. */
    assert_int_equal(simul_procpool_new(1, &p), 0);
    c.pool = p;
    c.fn = fn_forever;
    assert_int_equal(simul_task_spawn(&t, call_task, &c, NULL), 0);
    assert_int_equal(simul_yield(), 0); /* the call asks for a fork */
    assert_int_equal(simul_yield(), 0); /* the loop forks; the call is ready, not yet run */
    assert_int_equal(simul_procpool_workers(p), 1);
    assert_int_equal(simul_procpool_close(p), 0);
    assert_true(no_children());
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -ECANCELED);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(close_reaps_idle_workers)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(3, &p), 0);
    double secs = 0.05;
    call_args c[3];
    simul_task *t[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (call_args){.pool = p, .fn = fn_spin, .in = &secs, .in_len = sizeof secs};
        assert_int_equal(simul_task_spawn(&t[i], call_task, &c[i], NULL), 0);
    }
    int res[3];
    assert_int_equal(simul_gather(t, 3, res), 0);
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        pids[i] = ((span *)c[i].out)->pid;
        free(c[i].out);
    }
    assert_int_equal(simul_procpool_workers(p), 3);
    assert_false(no_children());
    assert_int_equal(simul_procpool_close(p), 0);
    for (int i = 0; i < 3; i++)
        assert_true(process_gone(pids[i]));
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(worker_keeps_no_inherited_fd)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    int r = -1;
    assert_int_equal(simul_procpool_call(p, fn_count_fds, NULL, 0, NULL, NULL, &r), 0);
    assert_int_equal(r, 2); /* its two pipe ends */
    /* The worker (alive, idle) was forked while sv[0] was open; once we close it the peer sees
     * EOF, so no copy of it survives in the worker. */
    assert_int_equal(simul_procpool_workers(p), 1);
    assert_int_equal(close(sv[0]), 0);
    char c;
    assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), 0);
    close(sv[1]);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

static void on_usr1(int sig)
{
    (void)sig;
}

SIMUL_TASK_TEST(worker_signal_dispositions)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    struct sigaction sa = {.sa_handler = on_usr1}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    sigset_t usr2, oldmask;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr2, &oldmask), 0);
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    int r = 0;
    assert_int_equal(simul_procpool_call(p, fn_signals, NULL, 0, NULL, NULL, &r), 0);
    assert_int_equal(r, 1 | 2 | 4 | 8);

    /* Ctrl-C reaches the whole process group: a worker in the middle of a call goes on. */
    double secs = 0.4;
    call_args c = {.pool = p, .fn = fn_spin, .in = &secs, .in_len = sizeof secs};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, call_task, &c, NULL), 0);
    double end = test_clock() + 10;
    while (atomic_load(&shm->pid) == 0 && test_clock() < end)
        assert_int_equal(simul_sleep(0.01), 0);
    pid_t worker = atomic_load(&shm->pid);
    assert_true(worker > 0); /* never kill(0): that would reach every test in ctest's group */
    assert_int_equal(kill(worker, SIGINT), 0);
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, 0);
    assert_non_null(c.out);
    free(c.out);
    assert_int_equal(simul_procpool_close(p), 0);
    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    sigaction(SIGUSR1, &old, NULL);
    LEAK_END();
    return 0;
}

/* ---- workers that die idle ------------------------------------------------------------------- */

static char proc_state(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* Waits without suspending (the loop must not see anything meanwhile) until pid's state is one
 * of `states` ("Z", "T", ...), or it is gone when `states` is NULL. */
static bool spin_until_state(pid_t pid, const char *states, double seconds)
{
    double end = test_clock() + seconds;
    for (;;) {
        char st = proc_state(pid);
        if (states ? (st && strchr(states, st)) : st == 0)
            return true;
        if (test_clock() > end)
            return false;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

SIMUL_TASK_TEST(idle_worker_killed_is_reaped_and_replaced)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    int pid1 = 0, pid2 = 0;
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid1), 0);
    assert_int_equal(simul_procpool_workers(p), 1);
    assert_int_equal(kill(pid1, SIGKILL), 0); /* as the OOM killer would */
    /* The loop notices by itself (no call is made) and reaps it: no zombie stays. */
    double end = test_clock() + 10;
    while (simul_procpool_workers(p) != 0 && test_clock() < end)
        assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_procpool_workers(p), 0);
    assert_true(no_children());
    assert_int_equal(proc_state(pid1), 0); /* /proc entry gone: reaped, not a zombie */
    /* The next call starts a fresh worker and succeeds. */
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid2), 0);
    assert_int_not_equal(pid2, pid1);
    assert_int_equal(simul_procpool_workers(p), 1);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(worker_found_dead_at_hand_over_call_goes_to_a_fresh_one)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    int pid1 = 0, pid2 = 0;
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid1), 0);
    /* Killed and already a zombie, but the loop has not run since: the call is handed to it,
     * its first write fails with EPIPE, so the request was provably never read. */
    assert_int_equal(kill(pid1, SIGKILL), 0);
    assert_true(spin_until_state(pid1, "Z", 10));
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid2), 0);
    assert_true(pid2 > 0);
    assert_int_not_equal(pid2, pid1);
    assert_int_equal(proc_state(pid1), 0);
    assert_int_equal(simul_procpool_workers(p), 1);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(worker_dead_with_request_unread_call_goes_to_a_fresh_one)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    int pid1 = 0, r = 0;
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid1), 0);
    /* Stopped, the worker cannot read: the request lands in its pipe, then it dies. Every byte
     * is still in the pipe, so the call is retried on a fresh worker. */
    assert_int_equal(kill(pid1, SIGSTOP), 0);
    assert_true(spin_until_state(pid1, "Tt", 10));
    simul_procpool_job *j;
    assert_int_equal(simul_procpool_submit(p, fn_getpid, "xyz", 3, &j), 0);
    assert_int_equal(kill(pid1, SIGKILL), 0);
    int status = 1;
    void *value = NULL;
    assert_int_equal(simul_future_await(simul_procpool_job_future(j), &status, &value), 0);
    assert_int_equal(status, 0);
    assert_ptr_equal(value, j);
    assert_int_equal(simul_procpool_job_result(j, NULL, NULL, &r), 0);
    assert_true(r > 0);
    assert_int_not_equal(r, pid1);
    simul_procpool_job_free(j);
    assert_int_equal(proc_state(pid1), 0);

    /* Contrast: a worker killed after it read the request (fn running) fails that call. */
    assert_int_equal(simul_procpool_submit(p, fn_forever, NULL, 0, &j), 0);
    double end = test_clock() + 10;
    while (atomic_load(&shm->pid) == 0 && test_clock() < end)
        assert_int_equal(simul_sleep(0.01), 0);
    pid_t pid = atomic_load(&shm->pid);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(simul_future_await(simul_procpool_job_future(j), &status, NULL), 0);
    assert_int_equal(status, -EOWNERDEAD);
    assert_int_equal(simul_procpool_job_result(j, NULL, NULL, &r), -EOWNERDEAD);
    assert_int_equal(r, -SIGKILL);
    assert_true(process_gone(pid));
    assert_true(no_children()); /* reaped before the job completed */
    simul_procpool_job_free(j);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

/* ---- max calls per worker -------------------------------------------------------------------- */

SIMUL_TASK_TEST(max_calls_replaces_workers)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    assert_int_equal(simul_procpool_set_max_calls(p, -1), -EINVAL);
    assert_int_equal(simul_procpool_set_max_calls(NULL, 1), -EINVAL);
    assert_int_equal(simul_procpool_set_max_calls(p, 3), 0);
    enum { N = 7 };
    int pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = 0;
        assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pids[i]), 0);
        assert_true(pids[i] > 0);
    }
    /* three calls per worker, then a fresh one */
    assert_int_equal(pids[0], pids[1]);
    assert_int_equal(pids[1], pids[2]);
    assert_int_not_equal(pids[3], pids[2]);
    assert_int_equal(pids[3], pids[4]);
    assert_int_equal(pids[4], pids[5]);
    assert_int_not_equal(pids[6], pids[5]);
    assert_int_not_equal(pids[6], pids[0]);
    /* the retired ones were reaped, not left as zombies */
    assert_int_equal(proc_state(pids[0]), 0);
    double end = test_clock() + 10;
    while (proc_state(pids[5]) != 0 && test_clock() < end)
        assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(proc_state(pids[5]), 0);
    assert_int_equal(simul_procpool_workers(p), 1);
    /* back to unlimited: the worker stays */
    assert_int_equal(simul_procpool_set_max_calls(p, 0), 0);
    for (int i = 0; i < 5; i++) {
        int pid = 0;
        assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &pid), 0);
        assert_int_equal(pid, pids[6]);
    }
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

/* ---- submit ---------------------------------------------------------------------------------- */

typedef struct from_cb {
    simul_procpool *pool;
    simul_procpool_job *job;
    int submit_rc, status, result, done;
    size_t len;
    unsigned char reply[8];
} from_cb;

static void job_done_cb(simul_future *f, void *arg)
{
    from_cb *c = arg;
    void *value = NULL;
    assert_int_equal(simul_future_result(f, &c->status, &value), 0);
    assert_ptr_equal(value, c->job);
    void *out = NULL;
    assert_int_equal(simul_procpool_job_result(c->job, &out, &c->len, &c->result), c->status);
    if (out && c->len <= sizeof c->reply)
        memcpy(c->reply, out, c->len);
    free(out);
    simul_procpool_job_free(c->job); /* from its own future's callback */
    c->job = NULL;
    c->done = 1;
}

static void submit_cb(void *arg)
{
    from_cb *c = arg;
    c->submit_rc = simul_procpool_submit(c->pool, fn_xor, "abc", 3, &c->job);
    if (c->submit_rc == 0)
        simul_future_add_done_callback(simul_procpool_job_future(c->job), job_done_cb, c);
}

SIMUL_TASK_TEST(submit_from_a_callback)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    from_cb c = {.pool = p, .submit_rc = 1, .status = 1};
    assert_int_equal(simul_call_soon(submit_cb, &c, NULL), 0);
    double end = test_clock() + 10;
    while (!c.done && test_clock() < end)
        assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(c.submit_rc, 0);
    assert_true(c.done);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.result, 1);
    assert_int_equal(c.len, 3);
    assert_memory_equal(c.reply, "\x3b\x38\x39", 3);
    assert_int_equal(simul_procpool_workers(p), 1);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(many_submits_gathered)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(2, &p), 0);
    enum { N = 64 };
    simul_procpool_job *jobs[N];
    uint32_t buf[4];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 4; k++)
            buf[k] = (uint32_t)(i * 4 + k);
        /* the input is copied: the buffer is reused at once */
        assert_int_equal(simul_procpool_submit(p, fn_sum, buf, sizeof buf, &jobs[i]), 0);
    }
    assert_true(simul_procpool_workers(p) <= 2);
    for (int i = 0; i < N; i++) {
        int status = 1, r = 0;
        assert_int_equal(simul_future_await(simul_procpool_job_future(jobs[i]), &status, NULL), 0);
        assert_int_equal(status, 0);
        void *out = NULL;
        size_t len = 0;
        assert_int_equal(simul_procpool_job_result(jobs[i], &out, &len, &r), 0);
        assert_int_equal(r, 4);
        assert_int_equal(len, sizeof(uint64_t));
        assert_int_equal(*(uint64_t *)out, (uint64_t)(16 * i + 6));
        free(out);
        /* the reply moved out: asking again gives none */
        out = (void *)1;
        assert_int_equal(simul_procpool_job_result(jobs[i], &out, NULL, NULL), 0);
        assert_null(out);
        simul_procpool_job_free(jobs[i]);
    }
    assert_int_equal(simul_procpool_workers(p), 2);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(submit_copies_a_large_input)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    size_t n = 6u << 20; /* several pipe buffers: sent across many writable edges */
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 13 + (i >> 11));
    simul_procpool_job *j;
    assert_int_equal(simul_procpool_submit(p, fn_xor, buf, n, &j), 0);
    memset(buf, 0, n); /* the job has its own copy */
    int status = 1, r = 0;
    assert_int_equal(simul_future_await(simul_procpool_job_future(j), &status, NULL), 0);
    assert_int_equal(status, 0);
    void *out = NULL;
    size_t len = 0;
    assert_int_equal(simul_procpool_job_result(j, &out, &len, &r), 0);
    assert_int_equal(r, 1);
    assert_int_equal(len, n);
    const unsigned char *o = out;
    for (size_t i = 0; i < n; i++)
        if (o[i] != ((unsigned char)(i * 13 + (i >> 11)) ^ 0x5a))
            fail_msg("byte %zu differs", i);
    free(out);
    free(buf);
    simul_procpool_job_free(j);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(cancel_or_free_a_queued_job_never_runs)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    double secs = 0.3;
    simul_procpool_job *busy, *cancelled, *freed, *after;
    assert_int_equal(simul_procpool_submit(p, fn_spin, &secs, sizeof secs, &busy), 0);
    assert_int_equal(simul_procpool_submit(p, fn_mark, NULL, 0, &cancelled), 0);
    assert_int_equal(simul_procpool_submit(p, fn_mark, NULL, 0, &freed), 0);
    assert_int_equal(simul_procpool_submit(p, fn_getpid, NULL, 0, &after), 0);
    assert_int_equal(simul_sleep(0.05), 0);
    assert_int_equal(simul_procpool_job_result(cancelled, NULL, NULL, NULL), -EINPROGRESS);
    assert_int_equal(simul_future_cancel(simul_procpool_job_future(cancelled)), 0);
    simul_procpool_job_free(freed);
    int status = 1, r = 0;
    assert_int_equal(simul_future_await(simul_procpool_job_future(after), &status, NULL), 0);
    assert_int_equal(status, 0);
    assert_int_equal(simul_procpool_job_result(after, NULL, NULL, &r), 0);
    /* the busy one ran on the same worker, undisturbed, and the queue went on behind it */
    assert_int_equal(simul_procpool_job_result(busy, NULL, NULL, NULL), 0);
    span *s = NULL;
    assert_int_equal(simul_procpool_job_result(busy, (void **)&s, NULL, NULL), 0);
    assert_non_null(s);
    assert_int_equal(s->pid, r);
    free(s);
    assert_int_equal(atomic_load(&shm->ran), 0);
    assert_int_equal(simul_procpool_job_result(cancelled, NULL, NULL, NULL), -ECANCELED);
    simul_procpool_job_free(cancelled);
    simul_procpool_job_free(busy);
    simul_procpool_job_free(after);
    assert_int_equal(simul_procpool_workers(p), 1);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

static pid_t wait_worker_entered(void)
{
    double end = test_clock() + 10;
    while (atomic_load(&shm->pid) == 0 && test_clock() < end)
        assert_int_equal(simul_sleep(0.01), 0);
    pid_t pid = atomic_load(&shm->pid);
    assert_true(pid > 0);
    atomic_store(&shm->pid, 0);
    return pid;
}

static void wait_reaped(simul_procpool *p, pid_t pid)
{
    double end = test_clock() + 10;
    while ((simul_procpool_workers(p) != 0 || proc_state(pid) != 0) && test_clock() < end)
        assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(simul_procpool_workers(p), 0);
    assert_int_equal(proc_state(pid), 0);
    assert_true(no_children());
}

SIMUL_TASK_TEST(cancel_or_free_a_running_job_kills_its_worker)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    /* cancel the future */
    simul_procpool_job *j;
    assert_int_equal(simul_procpool_submit(p, fn_forever, NULL, 0, &j), 0);
    pid_t pid = wait_worker_entered();
    assert_int_equal(simul_future_cancel(simul_procpool_job_future(j)), 0);
    wait_reaped(p, pid);
    int status = 1;
    assert_int_equal(simul_future_result(simul_procpool_job_future(j), &status, NULL), 0);
    assert_int_equal(status, -ECANCELED);
    assert_int_equal(simul_procpool_job_result(j, NULL, NULL, NULL), -ECANCELED);
    simul_procpool_job_free(j);

    /* free the job */
    assert_int_equal(simul_procpool_submit(p, fn_forever, NULL, 0, &j), 0);
    pid = wait_worker_entered();
    simul_procpool_job_free(j);
    wait_reaped(p, pid);

    /* the pool goes on with fresh workers */
    int r = 0;
    assert_int_equal(simul_procpool_call(p, fn_getpid, NULL, 0, NULL, NULL, &r), 0);
    assert_int_not_equal(r, pid);
    assert_int_equal(simul_procpool_close(p), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(close_completes_pending_jobs)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    simul_procpool_job *running, *queued, *done;
    assert_int_equal(simul_procpool_submit(p, fn_xor, "a", 1, &done), 0);
    int status = 1;
    assert_int_equal(simul_future_await(simul_procpool_job_future(done), &status, NULL), 0);
    assert_int_equal(status, 0);
    assert_int_equal(simul_procpool_submit(p, fn_forever, NULL, 0, &running), 0);
    assert_int_equal(simul_procpool_submit(p, fn_mark, NULL, 0, &queued), 0);
    pid_t pid = wait_worker_entered();
    assert_int_equal(simul_procpool_close(p), 0);
    assert_true(process_gone(pid));
    assert_true(no_children());
    assert_true(simul_future_done(simul_procpool_job_future(running)));
    assert_true(simul_future_done(simul_procpool_job_future(queued)));
    assert_int_equal(simul_procpool_job_result(running, NULL, NULL, NULL), -ECANCELED);
    assert_int_equal(simul_procpool_job_result(queued, NULL, NULL, NULL), -ECANCELED);
    /* jobs outlive the pool; the reply not taken goes with its job */
    simul_procpool_job_free(running);
    simul_procpool_job_free(queued);
    simul_procpool_job_free(done);
    assert_int_equal(atomic_load(&shm->ran), 0);
    LEAK_END();
    return 0;
}

SIMUL_TASK_TEST(submit_bad_arguments)
{
    (void)arg;
    shm_setup();
    LEAK_BEGIN();
    simul_procpool *p;
    assert_int_equal(simul_procpool_new(1, &p), 0);
    simul_procpool_job *j = (simul_procpool_job *)1;
    assert_int_equal(simul_procpool_submit(NULL, fn_mark, NULL, 0, &j), -EINVAL);
    assert_null(j);
    assert_int_equal(simul_procpool_submit(p, NULL, NULL, 0, &j), -EINVAL);
    assert_int_equal(simul_procpool_submit(p, fn_mark, NULL, 3, &j), -EINVAL);
    assert_int_equal(simul_procpool_submit(p, fn_mark, NULL, 0, NULL), -EINVAL);
    assert_int_equal(simul_procpool_set_limits(p, 16, 0), 0);
    static char big[17];
    assert_int_equal(simul_procpool_submit(p, fn_mark, big, sizeof big, &j), -EMSGSIZE);
    assert_null(j);
    assert_int_equal(simul_procpool_job_result(NULL, NULL, NULL, NULL), -EINVAL);
    assert_null(simul_procpool_job_future(NULL));
    simul_procpool_job_free(NULL);
    assert_int_equal(simul_procpool_close(p), 0);
    assert_int_equal(atomic_load(&shm->ran), 0);
    LEAK_END();
    return 0;
}

/* The body of a child process of the test: a loop, a pool, a call that never returns. */
static int orphan_main(void *arg)
{
    (void)arg;
    simul_procpool *p;
    if (simul_procpool_new(1, &p) < 0)
        return 1;
    simul_procpool_call(p, fn_forever, NULL, 0, NULL, NULL, NULL);
    return 2;
}

static void worker_dies_with_its_parent(void **state)
{
    (void)state;
    shm_setup();
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(simul_run(orphan_main, NULL));
    double end = test_clock() + 10;
    while (atomic_load(&shm->pid) == 0 && test_clock() < end)
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    pid_t worker = atomic_load(&shm->pid);
    assert_true(worker > 0);
    assert_false(process_gone(worker));
    assert_int_equal(kill(child, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFSIGNALED(st));
    assert_true(wait_gone(worker, 10));
    assert_true(no_children());
}

static void bad_arguments(void **state)
{
    (void)state;
    simul_procpool *p = NULL;
    assert_int_equal(simul_procpool_new(1, &p), -ENXIO);
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_procpool_new(-1, &p), -EINVAL);
    assert_int_equal(simul_procpool_new(4097, &p), -EINVAL);
    assert_int_equal(simul_procpool_new(1, NULL), -EINVAL);
    assert_int_equal(simul_procpool_new(0, &p), 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_true(simul_procpool_size(p) >= 1 && simul_procpool_size(p) <= cpus);
    int r;
    /* outside a task */
    assert_int_equal(simul_procpool_call(p, fn_mark, NULL, 0, NULL, NULL, &r), -EPERM);
    assert_int_equal(simul_procpool_call(p, NULL, NULL, 0, NULL, NULL, &r), -EINVAL);
    assert_int_equal(simul_procpool_call(p, fn_mark, NULL, 5, NULL, NULL, &r), -EINVAL);
    assert_int_equal(simul_procpool_call(NULL, fn_mark, NULL, 0, NULL, NULL, &r), -EINVAL);
    assert_int_equal(simul_procpool_size(NULL), -EINVAL);
    assert_int_equal(simul_procpool_workers(NULL), -EINVAL);
    assert_int_equal(simul_procpool_close(NULL), -EINVAL);
    /* an open pool keeps the loop from closing */
    assert_int_equal(simul_loop_close(loop), -EBUSY);
    assert_int_equal(simul_procpool_close(p), 0);
    assert_int_equal(simul_loop_close(loop), 0);
}

#ifndef PROCPOOL_NO_MAIN
int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(results_come_back),
        cmocka_unit_test(large_payloads_both_ways),
        cmocka_unit_test(parallel_calls_run_in_separate_processes),
        cmocka_unit_test(calls_beyond_workers_queue_fifo),
        cmocka_unit_test(crashed_worker_is_reported_and_replaced),
        cmocka_unit_test(worker_reaped_elsewhere_reports_unknown_status),
        cmocka_unit_test(crash_leaves_other_calls_running),
        cmocka_unit_test(cancel_while_queued_never_runs),
        cmocka_unit_test(cancel_while_running_kills_the_worker),
        cmocka_unit_test(deadline_bounds_a_function_that_never_returns),
        cmocka_unit_test(size_limits),
        cmocka_unit_test(close_with_calls_in_flight),
        cmocka_unit_test(close_while_a_worker_is_starting),
        cmocka_unit_test(close_reaps_idle_workers),
        cmocka_unit_test(worker_keeps_no_inherited_fd),
        cmocka_unit_test(worker_signal_dispositions),
        cmocka_unit_test(worker_dies_with_its_parent),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(idle_worker_killed_is_reaped_and_replaced),
        cmocka_unit_test(worker_found_dead_at_hand_over_call_goes_to_a_fresh_one),
        cmocka_unit_test(worker_dead_with_request_unread_call_goes_to_a_fresh_one),
        cmocka_unit_test(max_calls_replaces_workers),
        cmocka_unit_test(submit_from_a_callback),
        cmocka_unit_test(many_submits_gathered),
        cmocka_unit_test(submit_copies_a_large_input),
        cmocka_unit_test(cancel_or_free_a_queued_job_never_runs),
        cmocka_unit_test(cancel_or_free_a_running_job_kills_its_worker),
        cmocka_unit_test(close_completes_pending_jobs),
        cmocka_unit_test(submit_bad_arguments),
    };
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_procpool");
}
#endif
