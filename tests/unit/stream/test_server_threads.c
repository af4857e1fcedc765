/* test_server_threads.c — a stream server on N threads (SO_REUSEPORT): 2 and 4 threads echo for
 * many clients at once and every thread takes some connections; port 0 and an explicit port;
 * a port held without SO_REUSEPORT, and a thread whose init fails, leave nothing running; stop
 * with clients connected (they see EOF, nothing hangs), stop twice, stop from a handler; waiting
 * from a task of another loop (which keeps running) and joining from a plain thread; threads = 0
 * is the CPU count; hooks and thread indexes; no fd or thread left behind.
 * Handlers run on the worker threads, where cmocka's assertions must not be used: they record
 * what they see in atomics that the test task checks.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "test_net_helpers.h"

/* ---- what the worker threads record ---------------------------------------------------------- */

static atomic_int handler_bad_index; /* a handler saw an index out of range */
static atomic_int handlers_running;
static atomic_int handler_cancelled; /* handlers whose read ended with -ECANCELED */
static atomic_int inits, finis, init_index_mask, fini_index_mask;
static atomic_int fail_init_index = -1; /* thread_init of this index fails with -ENOTRECOVERABLE */
static int test_threads;                /* the server's thread count, for the handler's check */

static void reset_records(int threads)
{
    atomic_store(&handler_bad_index, 0);
    atomic_store(&handlers_running, 0);
    atomic_store(&handler_cancelled, 0);
    atomic_store(&inits, 0);
    atomic_store(&finis, 0);
    atomic_store(&init_index_mask, 0);
    atomic_store(&fini_index_mask, 0);
    atomic_store(&fail_init_index, -1);
    test_threads = threads;
}

/* Echo, checking it runs on a worker thread; "STOP\n" as a whole read stops the server that arg
 * (if not NULL) points to. */
static int echo_on_worker(simul_stream *s, void *arg)
{
    int idx = simul_threaded_server_index();
    if (idx < 0 || idx >= test_threads)
        atomic_store(&handler_bad_index, 1);
    atomic_fetch_add(&handlers_running, 1);
    char buf[4096];
    for (;;) {
        long n = simul_stream_read(s, buf, sizeof buf);
        if (n == -ECANCELED)
            atomic_fetch_add(&handler_cancelled, 1);
        if (n <= 0)
            break;
        if (n == 5 && memcmp(buf, "STOP\n", 5) == 0 && arg)
            simul_threaded_server_stop(atomic_load((_Atomic(simul_threaded_server *) *)arg));
        if (simul_stream_write(s, buf, (size_t)n) < 0 || simul_stream_drain(s) < 0)
            break;
    }
    atomic_fetch_sub(&handlers_running, 1);
    return 0;
}

static int init_hook(int index, void *arg)
{
    (void)arg;
    if (simul_threaded_server_index() != index || !simul_loop_current())
        return -EPROTO;
    if (index == atomic_load(&fail_init_index))
        return -ENOTRECOVERABLE;
    /* The hook runs in a task: it may suspend. */
    int rc = simul_sleep(0.001);
    if (rc < 0)
        return rc;
    atomic_fetch_add(&inits, 1);
    atomic_fetch_or(&init_index_mask, 1 << index);
    return 0;
}

static void fini_hook(int index, void *arg)
{
    (void)arg;
    if (simul_threaded_server_index() == index) {
        atomic_fetch_add(&finis, 1);
        atomic_fetch_or(&fini_index_mask, 1 << index);
    }
}

/* ---- process state ------------------------------------------------------------------------- */

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int open_fds(void)
{
    return count_dir("/proc/self/fd");
}

/* Threads of this process. A joined thread may linger in /proc for a moment after pthread_join
 * returns (the kernel reaps it after clearing its tid), so callers poll with a bound. */
static int thread_count(void)
{
    return count_dir("/proc/self/task");
}

static void *noop_thread(void *arg)
{
    return arg;
}

/* The thread count to come back to. Runtimes start helper threads lazily on the first
 * pthread_create (TSan's background thread), so one thread is made and joined first, and the
 * count is read once it holds still. */
static int thread_baseline(void)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, noop_thread, NULL), 0);
    pthread_join(th, NULL);
    int n = thread_count();
    for (int i = 0; i < 100; i++) {
        nanosleep(&(struct timespec){0, 10000000}, NULL);
        int again = thread_count();
        if (again == n)
            break;
        n = again;
    }
    return n;
}

static bool threads_back_to(int want)
{
    double end = test_clock() + 5.0;
    while (thread_count() != want) {
        if (test_clock() > end)
            return false;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return true;
}

static int cpus_allowed(void)
{
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    return CPU_COUNT(&set);
}

static simul_threaded_server *serve(int threads, const char *port, void *arg)
{
    simul_threaded_server_opts o = {
        .host = "127.0.0.1", .port = port, .threads = threads, .handler = echo_on_worker,
        .arg = arg};
    simul_threaded_server *ts = NULL;
    int rc = simul_serve_threads(&o, &ts);
    if (rc < 0)
        fail_msg("simul_serve_threads: %s", simul_errname(rc));
    assert_non_null(ts);
    return ts;
}

/* ---- clients (tasks of the test's loop, on the main thread) ---------------------------------- */

typedef struct client {
    int port, id, rounds;
    simul_stream *s; /* connected by the spawner, so every connection exists before any echo */
} client;

/* rounds messages of varying size, each echoed byte for byte. */
static int client_echo(void *arg)
{
    client *c = arg;
    char msg[3000], got[3000];
    int rc = 0;
    for (int r = 0; r < c->rounds && rc == 0; r++) {
        size_t len = 1 + (size_t)((c->id * 131 + r * 977) % (int)sizeof msg);
        for (size_t i = 0; i < len; i++)
            msg[i] = (char)(c->id + r + (int)i);
        if ((rc = simul_stream_write(c->s, msg, len)) < 0)
            break;
        long n = simul_stream_readexactly(c->s, got, len, NULL);
        if (n != (long)len)
            rc = n < 0 ? (int)n : -EPROTO;
        else if (memcmp(msg, got, len) != 0)
            rc = -EBADMSG;
    }
    int crc = simul_stream_close(c->s);
    return rc < 0 ? rc : crc;
}

/* n connections at once, all connected before any echo, `rounds` echoes each. */
static void echo_many(int port, int n, int rounds)
{
    client *cs = calloc((size_t)n, sizeof *cs);
    simul_task **ts = calloc((size_t)n, sizeof *ts);
    int *res = calloc((size_t)n, sizeof *res);
    assert_true(cs && ts && res);
    for (int i = 0; i < n; i++) {
        cs[i] = (client){.port = port, .id = i, .rounds = rounds, .s = connect_port(port)};
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(simul_task_spawn(&ts[i], client_echo, &cs[i], NULL), 0);
    simul_scope dl;
    assert_int_equal(simul_scope_timeout(&dl, 30.0), 0);
    assert_int_equal(simul_gather(ts, (size_t)n, res), 0);
    assert_int_equal(simul_scope_end(&dl), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(res[i], 0);
    free(cs);
    free(ts);
    free(res);
}

/* Every thread handed some connections to the handler, and they add up to `total`. */
static void assert_spread(simul_threaded_server *ts, int64_t total)
{
    int64_t sum = 0;
    for (int i = 0; i < simul_threaded_server_threads(ts); i++) {
        int64_t a = simul_threaded_server_accepted(ts, i);
        print_message("thread %d accepted %lld\n", i, (long long)a);
        assert_true(a > 0);
        sum += a;
    }
    assert_int_equal(sum, total);
}

static void echo_on_threads(int threads, int conns)
{
    reset_records(threads);
    simul_threaded_server *ts = serve(threads, NULL, NULL);
    assert_int_equal(simul_threaded_server_threads(ts), threads);
    int port = simul_threaded_server_port(ts);
    assert_true(port > 0 && port < 65536);
    echo_many(port, conns, 20);
    /* The handlers have returned once their clients closed; the counters are final. */
    assert_int_equal(simul_threaded_server_stop(ts), 0);
    assert_int_equal(simul_threaded_server_wait(ts), 0);
    /* SO_REUSEPORT hashes each connection to a thread: with `conns` of them all landing on one
     * thread has probability below threads * (1 - 1/threads)^conns (~1e-19 here). */
    assert_spread(ts, conns);
    assert_int_equal(atomic_load(&handler_bad_index), 0);
    assert_int_equal(simul_threaded_server_free(ts), 0);
}

/* ---- cases --------------------------------------------------------------------------------- */

SIMUL_TASK_TEST(two_threads_echo_and_spread)
{
    (void)arg;
    echo_on_threads(2, 128);
    return 0;
}

SIMUL_TASK_TEST(four_threads_echo_and_spread)
{
    (void)arg;
    echo_on_threads(4, 192);
    return 0;
}

/* An explicit port: every thread binds it (the 64+ connections reach all of them). */
SIMUL_TASK_TEST(explicit_port_on_every_thread)
{
    (void)arg;
    reset_records(2);
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(probe, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(probe, (struct sockaddr *)&a, &len), 0);
    close(probe); /* a port that was free a moment ago (no listener: nothing lingers) */
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
    simul_threaded_server *ts = serve(2, port, NULL);
    assert_int_equal(simul_threaded_server_port(ts), ntohs(a.sin_port));
    echo_many(simul_threaded_server_port(ts), 96, 2);
    assert_int_equal(simul_threaded_server_stop(ts), 0);
    assert_int_equal(simul_threaded_server_wait(ts), 0);
    assert_spread(ts, 96);
    assert_int_equal(simul_threaded_server_free(ts), 0);
    return 0;
}

/* Port "0" (the other cases pass NULL) picks a free port, the same for every thread. */
SIMUL_TASK_TEST(port_zero_picks_one_port)
{
    (void)arg;
    reset_records(3);
    simul_threaded_server *ts = serve(3, "0", NULL);
    int port = simul_threaded_server_port(ts);
    assert_true(port > 0 && port < 65536);
    echo_many(port, 96, 1);
    assert_int_equal(simul_threaded_server_free(ts), 0); /* free stops, then joins */
    return 0;
}

/* The port is held by a listener without SO_REUSEPORT: -EADDRINUSE, no thread, no fd left. */
SIMUL_TASK_TEST(port_in_use_fails_cleanly)
{
    (void)arg;
    reset_records(4);
    int holder = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(holder, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(holder, 8), 0);
    assert_int_equal(getsockname(holder, (struct sockaddr *)&a, &len), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
    int fds = open_fds(), threads = thread_baseline();
    simul_threaded_server_opts o = {
        .host = "127.0.0.1", .port = port, .threads = 4, .handler = echo_on_worker,
        .thread_init = init_hook, .thread_fini = fini_hook};
    simul_threaded_server *ts = (simul_threaded_server *)&o; /* must be reset to NULL */
    assert_int_equal(simul_serve_threads(&o, &ts), -EADDRINUSE);
    assert_null(ts);
    assert_true(threads_back_to(threads));
    assert_int_equal(open_fds(), fds);
    /* Thread 0 initialised and failed to listen: its fini ran; no other thread was started. */
    assert_int_equal(atomic_load(&inits), 1);
    assert_int_equal(atomic_load(&finis), 1);
    close(holder);
    return 0;
}

/* A later thread fails (its init does): the threads already listening are stopped and joined,
 * and the call returns that thread's error. */
SIMUL_TASK_TEST(later_thread_failure_stops_the_others)
{
    (void)arg;
    reset_records(4);
    atomic_store(&fail_init_index, 2);
    int fds = open_fds(), threads = thread_baseline();
    simul_threaded_server_opts o = {
        .host = "127.0.0.1", .threads = 4, .handler = echo_on_worker,
        .thread_init = init_hook, .thread_fini = fini_hook};
    simul_threaded_server *ts;
    assert_int_equal(simul_serve_threads(&o, &ts), -ENOTRECOVERABLE);
    assert_null(ts);
    assert_true(threads_back_to(threads));
    assert_int_equal(open_fds(), fds);
    assert_int_equal(atomic_load(&inits), 3);
    assert_int_equal(atomic_load(&init_index_mask), 0xb); /* 0, 1, 3 */
    assert_int_equal(atomic_load(&fini_index_mask), 0xb); /* each one that initialised */
    return 0;
}

SIMUL_TASK_TEST(bad_arguments)
{
    (void)arg;
    simul_threaded_server *ts = NULL;
    simul_threaded_server_opts o = {.host = "127.0.0.1", .threads = 2};
    assert_int_equal(simul_serve_threads(&o, &ts), -EINVAL); /* no handler */
    o.handler = echo_on_worker;
    o.threads = -1;
    assert_int_equal(simul_serve_threads(&o, &ts), -EINVAL);
    o.threads = SIMUL_THREADED_SERVER_MAX_THREADS + 1;
    assert_int_equal(simul_serve_threads(&o, &ts), -EINVAL);
    o.threads = 2;
    o.backlog = -1;
    assert_int_equal(simul_serve_threads(&o, &ts), -EINVAL);
    assert_int_equal(simul_serve_threads(NULL, &ts), -EINVAL);
    o.backlog = 0;
    assert_int_equal(simul_serve_threads(&o, NULL), -EINVAL);
    assert_null(ts);
    assert_int_equal(simul_threaded_server_port(NULL), -EINVAL);
    assert_int_equal(simul_threaded_server_threads(NULL), -EINVAL);
    assert_int_equal(simul_threaded_server_accepted(NULL, 0), -EINVAL);
    assert_int_equal(simul_threaded_server_stop(NULL), -EINVAL);
    assert_int_equal(simul_threaded_server_join(NULL), -EINVAL);
    assert_int_equal(simul_threaded_server_wait(NULL), -EINVAL);
    assert_int_equal(simul_threaded_server_free(NULL), 0);
    assert_int_equal(simul_threaded_server_index(), -1);
    reset_records(2);
    ts = serve(2, NULL, NULL);
    assert_int_equal(simul_threaded_server_accepted(ts, -1), -EINVAL);
    assert_int_equal(simul_threaded_server_accepted(ts, 2), -EINVAL);
    assert_int_equal(simul_threaded_server_accepted(ts, 1), 0);
    assert_int_equal(simul_threaded_server_free(ts), 0);
    return 0;
}

/* Idle clients stay connected; stop cancels their handlers, the clients read EOF (or a reset),
 * and wait returns: no hang. */
SIMUL_TASK_TEST(stop_with_clients_connected)
{
    (void)arg;
    reset_records(2);
    simul_threaded_server *ts = serve(2, NULL, NULL);
    int port = simul_threaded_server_port(ts);
    enum { N = 24 };
    simul_stream *cs[N];
    for (int i = 0; i < N; i++) {
        cs[i] = connect_port(port);
        assert_int_equal(simul_stream_write(cs[i], "hi\n", 3), 0);
        const char *line;
        assert_int_equal(simul_stream_readline(cs[i], &line), 3);
    }
    assert_int_equal(atomic_load(&handlers_running), N);
    double t0 = test_clock();
    assert_int_equal(simul_threaded_server_stop(ts), 0);
    simul_scope dl;
    assert_int_equal(simul_scope_timeout(&dl, 20.0), 0);
    for (int i = 0; i < N; i++) {
        char c;
        long n = simul_stream_read(cs[i], &c, 1);
        assert_true(n == 0 || n == -ECONNRESET);
        assert_int_equal(simul_stream_close(cs[i]), 0);
    }
    assert_int_equal(simul_threaded_server_wait(ts), 0);
    assert_int_equal(simul_scope_end(&dl), 0);
    assert_true(test_clock() - t0 < 20.0);
    assert_int_equal(atomic_load(&handlers_running), 0);
    assert_int_equal(atomic_load(&handler_cancelled), N);
    /* Nobody listens any more. */
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    simul_stream *late;
    assert_int_equal(simul_open_connection("127.0.0.1", p, &late), -ECONNREFUSED);
    assert_int_equal(simul_threaded_server_free(ts), 0);
    return 0;
}

SIMUL_TASK_TEST(stop_twice)
{
    (void)arg;
    reset_records(2);
    simul_threaded_server *ts = serve(2, NULL, NULL);
    assert_int_equal(simul_threaded_server_stop(ts), 0);
    assert_int_equal(simul_threaded_server_stop(ts), 0);
    assert_int_equal(simul_threaded_server_wait(ts), 0);
    assert_int_equal(simul_threaded_server_stop(ts), 0); /* after the threads ended, too */
    assert_int_equal(simul_threaded_server_wait(ts), 0); /* and waiting again returns at once */
    assert_int_equal(simul_threaded_server_free(ts), 0);
    return 0;
}

/* A handler stops the server it belongs to (stop is thread-safe and never blocks). The handler
 * finds the server through its arg, published (atomically: the handlers read it on other threads)
 * once serve returns. */
static _Atomic(simul_threaded_server *) published;

SIMUL_TASK_TEST(stop_from_a_handler)
{
    (void)arg;
    reset_records(2);
    atomic_store(&published, NULL);
    simul_threaded_server_opts o = {
        .host = "127.0.0.1", .threads = 2, .handler = echo_on_worker, .arg = &published};
    simul_threaded_server *ts;
    assert_int_equal(simul_serve_threads(&o, &ts), 0);
    atomic_store(&published, ts);
    simul_stream *c = connect_port(simul_threaded_server_port(ts));
    assert_int_equal(simul_stream_write(c, "STOP\n", 5), 0);
    simul_scope dl;
    assert_int_equal(simul_scope_timeout(&dl, 20.0), 0);
    assert_int_equal(simul_threaded_server_wait(ts), 0);
    assert_int_equal(simul_scope_end(&dl), 0);
    /* The handler was cancelled by the stop it asked for: its echo may or may not have gone. */
    char buf[8];
    long n;
    while ((n = simul_stream_read(c, buf, sizeof buf)) > 0) {
    }
    assert_true(n == 0 || n == -ECONNRESET);
    assert_int_equal(simul_stream_close(c), 0);
    assert_int_equal(simul_threaded_server_free(ts), 0);
    return 0;
}

/* ---- waiting from another loop ---------------------------------------------------------------- */

static atomic_int ticks;

static int ticker(void *arg)
{
    (void)arg;
    for (;;) {
        if (simul_sleep(0.002) < 0)
            return 0;
        atomic_fetch_add(&ticks, 1);
    }
}

typedef struct stopper_arg {
    simul_threaded_server *ts;
    double delay;
} stopper_arg;

static void *stop_later(void *arg)
{
    stopper_arg *sa = arg;
    nanosleep(&(struct timespec){(time_t)sa->delay,
                                 (long)((sa->delay - (double)(time_t)sa->delay) * 1e9)},
              NULL);
    simul_threaded_server_stop(sa->ts);
    return NULL;
}

/* wait suspends only its task: the loop's other tasks keep running while it waits; a deadline
 * ends it; another thread's stop ends it with 0. */
SIMUL_TASK_TEST(wait_from_a_task_of_another_loop)
{
    (void)arg;
    reset_records(2);
    atomic_store(&ticks, 0);
    simul_threaded_server *ts = serve(2, NULL, NULL);
    simul_task *tick;
    assert_int_equal(simul_task_spawn(&tick, ticker, NULL, NULL), 0);

    simul_scope dl;
    assert_int_equal(simul_scope_timeout(&dl, 0.1), 0);
    assert_int_equal(simul_threaded_server_wait(ts), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&dl), 1);
    assert_true(atomic_load(&ticks) > 0); /* the loop ran meanwhile */

    /* Still serving after the abandoned wait. */
    echo_many(simul_threaded_server_port(ts), 4, 2);

    stopper_arg sa = {.ts = ts, .delay = 0.2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_later, &sa), 0);
    int before = atomic_load(&ticks);
    assert_int_equal(simul_scope_timeout(&dl, 20.0), 0);
    assert_int_equal(simul_threaded_server_wait(ts), 0);
    assert_int_equal(simul_scope_end(&dl), 0);
    assert_true(atomic_load(&ticks) > before);
    pthread_join(th, NULL);

    /* join would stall this running loop. */
    assert_int_equal(simul_threaded_server_join(ts), -EDEADLK);
    simul_task_cancel(tick);
    assert_int_equal(simul_task_join(tick, NULL), 0);
    assert_int_equal(simul_threaded_server_free(ts), 0);
    return 0;
}

/* Several tasks wait at once; a cancelled waiter leaves the others waiting. */
static int waiter(void *arg)
{
    return simul_threaded_server_wait(arg);
}

SIMUL_TASK_TEST(many_waiters_and_a_cancelled_one)
{
    (void)arg;
    reset_records(2);
    simul_threaded_server *ts = serve(2, NULL, NULL);
    simul_task *w[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(simul_task_spawn(&w[i], waiter, ts, NULL), 0);
    assert_int_equal(simul_sleep(0.02), 0);
    assert_int_equal(simul_task_cancel(w[1]), 0);
    int r = 1;
    assert_int_equal(simul_task_join(w[1], &r), 0);
    assert_int_equal(r, -ECANCELED);
    assert_false(simul_task_done(w[0]));
    assert_int_equal(simul_threaded_server_stop(ts), 0);
    assert_int_equal(simul_task_join(w[0], &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(simul_task_join(w[2], &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(simul_threaded_server_free(ts), 0);
    return 0;
}

/* ---- plain threads, no loop ------------------------------------------------------------------ */

/* main()-style use: serve, another thread stops, join returns; no loop on this thread. */
static void join_from_plain_thread(void **state)
{
    (void)state;
    reset_records(2);
    simul_threaded_server *ts = serve(2, "0", NULL);
    assert_null(simul_loop_current());
    stopper_arg sa = {.ts = ts, .delay = 0.1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_later, &sa), 0);
    double t0 = test_clock();
    assert_int_equal(simul_threaded_server_join(ts), 0);
    assert_true(test_clock() - t0 < 20.0);
    assert_int_equal(simul_threaded_server_join(ts), 0); /* again: nothing left to join */
    pthread_join(th, NULL);
    assert_int_equal(simul_threaded_server_free(ts), 0);
}

/* threads = 0: one per CPU the process may run on; hooks run once per thread, on that thread. */
static void threads_zero_is_cpu_count(void **state)
{
    (void)state;
    int cpus = cpus_allowed();
    reset_records(cpus);
    simul_threaded_server_opts o = {
        .host = "127.0.0.1", .threads = 0, .handler = echo_on_worker,
        .thread_init = init_hook, .thread_fini = fini_hook};
    simul_threaded_server *ts;
    assert_int_equal(simul_serve_threads(&o, &ts), 0);
    assert_int_equal(simul_threaded_server_threads(ts), cpus);
    int all = cpus >= 31 ? -1 : (1 << cpus) - 1;
    assert_int_equal(atomic_load(&inits), cpus);
    if (all != -1)
        assert_int_equal(atomic_load(&init_index_mask), all);
    assert_int_equal(atomic_load(&finis), 0);
    assert_int_equal(simul_threaded_server_free(ts), 0);
    assert_int_equal(atomic_load(&finis), cpus);
    if (all != -1)
        assert_int_equal(atomic_load(&fini_index_mask), all);
}

/* Start, serve, stop, free several times: fds and threads come back to where they were. */
SIMUL_TASK_TEST(no_fd_or_thread_leak)
{
    (void)arg;
    int fds = open_fds(), threads = thread_baseline();
    for (int round = 0; round < 3; round++) {
        reset_records(3);
        simul_threaded_server *ts = serve(3, NULL, NULL);
        echo_many(simul_threaded_server_port(ts), 16, 2);
        /* a connection left open at stop */
        simul_stream *c = connect_port(simul_threaded_server_port(ts));
        assert_int_equal(simul_stream_write(c, "x", 1), 0);
        char b;
        assert_int_equal(simul_stream_read(c, &b, 1), 1);
        assert_int_equal(simul_threaded_server_stop(ts), 0);
        assert_int_equal(simul_threaded_server_wait(ts), 0);
        assert_int_equal(simul_threaded_server_free(ts), 0);
        assert_int_equal(simul_stream_close(c), 0);
    }
    assert_true(threads_back_to(threads));
    assert_int_equal(open_fds(), fds);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(two_threads_echo_and_spread),
    cmocka_unit_test(four_threads_echo_and_spread),
    cmocka_unit_test(explicit_port_on_every_thread),
    cmocka_unit_test(port_zero_picks_one_port),
    cmocka_unit_test(port_in_use_fails_cleanly),
    cmocka_unit_test(later_thread_failure_stops_the_others),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(stop_with_clients_connected),
    cmocka_unit_test(stop_twice),
    cmocka_unit_test(stop_from_a_handler),
    cmocka_unit_test(wait_from_a_task_of_another_loop),
    cmocka_unit_test(many_waiters_and_a_cancelled_one),
    cmocka_unit_test(join_from_plain_thread),
    cmocka_unit_test(threads_zero_is_cpu_count),
    cmocka_unit_test(no_fd_or_thread_leak),
};

SIMUL_TEST_MAIN("server_threads", tests)
