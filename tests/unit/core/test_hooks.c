/* test_hooks.c — the hooks through which the layers above plug into the loop (src/core/internal.h):
 * handle ref/unref holding the loop open, close hooks run newest first and exactly once, and the
 * thread-wait counter telling debug mode that a parked task is not a deadlock. The tests link the
 * static library, so they reach these internal functions directly. */
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>

#include "test_main_helpers.h"
#include "../../../src/core/internal.h"

static void handle_ref_holds_the_loop_open(void **state)
{
    (void)state;
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    simul__loop_handle_ref(loop);
    simul__loop_handle_ref(loop);
    assert_int_equal(simul_loop_close(loop), -EBUSY);
    simul__loop_handle_unref(loop);
    assert_int_equal(simul_loop_close(loop), -EBUSY);
    simul__loop_handle_unref(loop);
    assert_int_equal(simul_loop_close(loop), 0);
    assert_null(simul_loop_current());
}

typedef struct order {
    char seen[8];
    int n;
} order;

typedef struct named_hook {
    simul__close_hook h;
    order *o;
    char name;
} named_hook;

static void record_hook(simul_loop *loop, void *arg)
{
    named_hook *x = arg;
    assert_non_null(loop);
    x->o->seen[x->o->n++] = x->name;
}

/* A hook whose record is its own malloc'd memory, freed as it runs (as signal.c's state does). */
static void freeing_hook(simul_loop *loop, void *arg)
{
    named_hook *x = arg;
    record_hook(loop, arg);
    free(x);
}

static void close_hooks_run_newest_first_once(void **state)
{
    (void)state;
    order o = {0};
    named_hook a = {.o = &o, .name = 'a'}, b = {.o = &o, .name = 'b'}, c = {.o = &o, .name = 'c'};
    named_hook *d = malloc(sizeof *d);
    assert_non_null(d);
    *d = (named_hook){.o = &o, .name = 'd'};
    a.h = (simul__close_hook){.fn = record_hook, .arg = &a};
    b.h = (simul__close_hook){.fn = record_hook, .arg = &b};
    c.h = (simul__close_hook){.fn = record_hook, .arg = &c};
    d->h = (simul__close_hook){.fn = freeing_hook, .arg = d};

    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    simul__loop_close_hook_add(loop, &a.h);
    simul__loop_close_hook_add(loop, &b.h);
    simul__loop_close_hook_add(loop, &d->h);
    simul__loop_close_hook_add(loop, &c.h);
    simul__loop_close_hook_remove(loop, &b.h); /* taken back: never runs */
    simul__loop_close_hook_remove(loop, &b.h); /* a second time: nothing */

    /* A close refused while a handle is held runs no hook. */
    simul__loop_handle_ref(loop);
    assert_int_equal(simul_loop_close(loop), -EBUSY);
    assert_int_equal(o.n, 0);
    simul__loop_handle_unref(loop);

    assert_int_equal(simul_loop_close(loop), 0);
    assert_int_equal(o.n, 3);
    assert_memory_equal(o.seen, "cda", 3);

    /* The next loop starts with no hooks. */
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_loop_close(loop), 0);
    assert_int_equal(o.n, 3);
}

/* The loop's own hooks (fd table, signals) run at close too: a loop that used an fd and a signal
 * handler, then closed, leaves the next loop a clean slate (the fd waits again, the signal is
 * free to take). */
static int use_fd_and_signal(void *arg)
{
    int *p = arg;
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(simul_wait_readable(p[0]), 0);
    return 0;
}

static void on_usr1(int sig, void *arg)
{
    (void)sig;
    (void)arg;
}

static void loop_hooks_clean_up_fds_and_signals(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    for (int round = 0; round < 2; round++) {
        simul_loop *loop;
        assert_int_equal(simul_loop_new(&loop), 0);
        assert_int_equal(simul_add_signal_handler(SIGUSR1, on_usr1, NULL), 0);
        simul_task *t;
        assert_int_equal(simul_task_spawn(&t, use_fd_and_signal, p, NULL), 0);
        int result = -1;
        assert_int_equal(simul_loop_run_until_complete(loop, t, &result), 0);
        assert_int_equal(result, 0);
        char c;
        assert_int_equal(read(p[0], &c, 1), 1);
        /* the handler is still installed: the close hook of signal.c removes it */
        assert_int_equal(simul_loop_close(loop), 0);
        struct sigaction cur;
        assert_int_equal(sigaction(SIGUSR1, NULL, &cur), 0);
        assert_true(cur.sa_handler == SIG_DFL);
    }
    close(p[0]);
    close(p[1]);
}

/* ---- thread waits ------------------------------------------------------------------------------ */

typedef struct thread_wait_case {
    simul_loop *loop;
    simul_future *f;
    pid_t loop_tid;
    bool counted; /* the task declares its wait as finished by another thread */
} thread_wait_case;

static int park_on_future(void *arg)
{
    thread_wait_case *c = arg;
    if (c->counted)
        simul__loop_thread_wait_begin(c->loop);
    int result = 0;
    int rc = simul_future_await(c->f, &result, NULL);
    if (c->counted)
        simul__loop_thread_wait_end(c->loop);
    return rc < 0 ? rc : result;
}

static void complete_future(void *arg)
{
    simul_future_set_result(arg, 7, NULL);
}

/* True once the thread `tid` of this process sits in epoll_wait (the loop's blocking poll; libc
 * may make it an epoll_pwait). */
static bool blocked_in_epoll_wait(pid_t tid)
{
    char path[64], buf[64] = {0};
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool got = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!got)
        return false;
    long nr = atol(buf);
#ifdef SYS_epoll_wait
    if (nr == SYS_epoll_wait)
        return true;
#endif
    return nr == SYS_epoll_pwait;
}

static void *completer(void *arg)
{
    thread_wait_case *c = arg;
    /* State, not time: the loop has decided to block (so any hint is written) before it sleeps. */
    while (!blocked_in_epoll_wait(c->loop_tid)) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    assert_int_equal(simul_loop_call_soon_threadsafe(c->loop, complete_future, c->f), 0);
    return NULL;
}

static char *run_thread_wait_case(bool counted)
{
    thread_wait_case c = {.counted = counted, .loop_tid = (pid_t)syscall(SYS_gettid)};
    assert_int_equal(simul_loop_new(&c.loop), 0);
    assert_int_equal(simul_loop_set_debug(c.loop, true), 0);
    assert_int_equal(simul_future_new(&c.f), 0);
    test_capture cap;
    test_capture_begin(&cap);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, completer, &c), 0);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, park_on_future, &c, NULL), 0);
    int result = -1;
    assert_int_equal(simul_loop_run_until_complete(c.loop, t, &result), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    char *text = test_capture_end(&cap);
    assert_int_equal(result, 7);
    simul_future_free(c.f);
    assert_int_equal(simul_loop_close(c.loop), 0);
    return text;
}

/* A task parked on work another thread finishes is not a deadlock while the wait is counted; the
 * same park uncounted gets the debug hint (so the counter is what keeps it quiet). */
static void thread_wait_keeps_the_deadlock_hint_quiet(void **state)
{
    (void)state;
    char *text = run_thread_wait_case(true);
    assert_null(strstr(text, "deadlock?"));
    free(text);
    text = run_thread_wait_case(false);
    assert_non_null(strstr(text, "deadlock?"));
    free(text);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(handle_ref_holds_the_loop_open),
    cmocka_unit_test(close_hooks_run_newest_first_once),
    cmocka_unit_test(loop_hooks_clean_up_fds_and_signals),
    cmocka_unit_test(thread_wait_keeps_the_deadlock_hint_quiet),
};

SIMUL_TEST_MAIN("test_hooks", tests)
