/* test_signal.c — signals on the loop: handlers run from the loop (not in signal context) in the
 * order the signals came, also while the loop is busy; removal restores the previous disposition;
 * simul_wait_signal with deadlines and cancellation; signals sent by other threads; one owner loop
 * per signal; and simul_run's SIGINT (cancels main, leaves a program's own handler alone).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "test_main_helpers.h"

static int seen[16], nseen;

static void record(int sig, void *arg)
{
    (void)arg;
    assert_non_null(simul_loop_current()); /* on the loop, not in signal context */
    if (nseen < 16)
        seen[nseen++] = sig;
}

static bool disposition_is(int sig, void (*h)(int))
{
    struct sigaction cur;
    sigaction(sig, NULL, &cur);
    return cur.sa_handler == h;
}

SIMUL_TASK_TEST(handlers_run_on_loop_in_order)
{
    (void)arg;
    nseen = 0;
    assert_int_equal(simul_add_signal_handler(SIGUSR1, record, NULL), 0);
    assert_int_equal(simul_add_signal_handler(SIGUSR2, record, NULL), 0);
    raise(SIGUSR1);
    raise(SIGUSR2);
    raise(SIGUSR1);
    assert_int_equal(nseen, 0); /* not yet: the loop runs them */
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(nseen, 3);
    assert_int_equal(seen[0], SIGUSR1);
    assert_int_equal(seen[1], SIGUSR2);
    assert_int_equal(seen[2], SIGUSR1);
    assert_int_equal(simul_remove_signal_handler(SIGUSR1), 1);
    assert_int_equal(simul_remove_signal_handler(SIGUSR2), 1);
    assert_true(disposition_is(SIGUSR1, SIG_DFL));
    return 0;
}

static atomic_int own_hits;
static void own_handler(int sig)
{
    (void)sig;
    atomic_fetch_add(&own_hits, 1);
}

SIMUL_TASK_TEST(remove_restores_previous_handler)
{
    (void)arg;
    nseen = 0;
    struct sigaction sa = {0};
    sa.sa_handler = own_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
    assert_int_equal(simul_add_signal_handler(SIGUSR1, record, NULL), 0);
    assert_int_equal(simul_add_signal_handler(SIGUSR1, record, NULL), 0); /* replaces */
    raise(SIGUSR1);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(nseen, 1);
    assert_int_equal(atomic_load(&own_hits), 0);
    assert_int_equal(simul_remove_signal_handler(SIGUSR1), 1);
    assert_int_equal(simul_remove_signal_handler(SIGUSR1), 0);
    assert_true(disposition_is(SIGUSR1, own_handler));
    raise(SIGUSR1);
    assert_int_equal(atomic_load(&own_hits), 1);
    assert_int_equal(simul_sleep(0.01), 0);
    assert_int_equal(nseen, 1);
    return 0;
}

SIMUL_TASK_TEST(bad_arguments)
{
    (void)arg;
    assert_int_equal(simul_add_signal_handler(SIGKILL, record, NULL), -EINVAL);
    assert_int_equal(simul_add_signal_handler(SIGSTOP, record, NULL), -EINVAL);
    assert_int_equal(simul_add_signal_handler(0, record, NULL), -EINVAL);
    assert_int_equal(simul_add_signal_handler(NSIG, record, NULL), -EINVAL);
    assert_int_equal(simul_add_signal_handler(SIGUSR1, NULL, NULL), -EINVAL);
    assert_int_equal(simul_remove_signal_handler(-1), -EINVAL);
    assert_int_equal(simul_remove_signal_handler(SIGUSR1), 0);
    assert_int_equal(simul_wait_signal((int[]){SIGUSR1}, 0), -EINVAL);
    assert_int_equal(simul_wait_signal((int[]){SIGKILL}, 1), -EINVAL);
    assert_int_equal(simul_wait_signal(NULL, 1), -EINVAL);
    return 0;
}

static void no_loop_or_task(void **state)
{
    (void)state;
    assert_int_equal(simul_add_signal_handler(SIGUSR1, record, NULL), -ENXIO);
    assert_int_equal(simul_remove_signal_handler(SIGUSR1), -ENXIO);
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_wait_signal((int[]){SIGUSR1}, 1), -EPERM);
    assert_int_equal(simul_loop_close(loop), 0);
}

static void send_usr2(void *arg)
{
    (void)arg;
    kill(getpid(), SIGUSR2);
}

SIMUL_TASK_TEST(wait_signal_returns_the_number)
{
    (void)arg;
    int sigs[] = {SIGUSR1, SIGUSR2};
    assert_int_equal(simul_call_later(0.01, send_usr2, NULL, NULL), 0);
    assert_int_equal(simul_wait_signal(sigs, 2), SIGUSR2);
    /* Caught only while waiting: the default disposition is back. */
    assert_true(disposition_is(SIGUSR1, SIG_DFL));
    assert_true(disposition_is(SIGUSR2, SIG_DFL));
    return 0;
}

SIMUL_TASK_TEST(wait_signal_deadline_and_cancel)
{
    (void)arg;
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.05), 0);
    double t0 = test_clock();
    assert_int_equal(simul_wait_signal((int[]){SIGUSR1}, 1), -ETIMEDOUT);
    assert_true(test_clock() - t0 >= 0.04);
    assert_int_equal(simul_scope_end(&s), 1);
    assert_true(disposition_is(SIGUSR1, SIG_DFL));

    /* A handler and a waiter for the same signal: both see it. */
    nseen = 0;
    assert_int_equal(simul_add_signal_handler(SIGUSR2, record, NULL), 0);
    assert_int_equal(simul_call_later(0.01, send_usr2, NULL, NULL), 0);
    assert_int_equal(simul_wait_signal((int[]){SIGUSR2}, 1), SIGUSR2);
    assert_int_equal(nseen, 1);
    assert_int_equal(simul_remove_signal_handler(SIGUSR2), 1);

    simul_task_cancel(simul_task_current());
    assert_int_equal(simul_wait_signal((int[]){SIGUSR1}, 1), -ECANCELED);
    assert_true(disposition_is(SIGUSR1, SIG_DFL));
    return 0;
}

static atomic_bool flag;
static void set_flag(int sig, void *arg)
{
    (void)sig;
    (void)arg;
    atomic_store(&flag, true);
}

SIMUL_TASK_TEST(busy_loop_still_sees_signals)
{
    (void)arg;
    atomic_store(&flag, false);
    assert_int_equal(simul_add_signal_handler(SIGUSR1, set_flag, NULL), 0);
    raise(SIGUSR1);
    double end = test_clock() + 2;
    /* Only yields: the loop never blocks in a poll, yet must notice the pipe. */
    while (!atomic_load(&flag) && test_clock() < end)
        assert_int_equal(simul_yield(), 0);
    assert_true(atomic_load(&flag));
    assert_int_equal(simul_remove_signal_handler(SIGUSR1), 1);
    return 0;
}

static atomic_int count;

/* Sends SIGUSR1 20 times, each once the loop has handled the previous one (a signal sent while
 * one is still pending merges with it, by POSIX). */
static void *kill_usr1(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        kill(getpid(), SIGUSR1); /* any thread may take it: the pipe gets it to the loop */
        double end = test_clock() + 5;
        while (atomic_load(&count) <= i && test_clock() < end)
            nanosleep(&(struct timespec){0, 100000}, NULL);
    }
    return NULL;
}
static void count_it(int sig, void *arg)
{
    (void)sig;
    (void)arg;
    atomic_fetch_add(&count, 1);
}

/* A second loop on another thread: SIGUSR1 belongs to the first one. */
static void *other_loop(void *arg)
{
    (void)arg;
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    int rc = simul_add_signal_handler(SIGUSR1, count_it, NULL);
    int rc2 = simul_add_signal_handler(SIGUSR2, count_it, NULL);
    if (rc2 == 0)
        simul_remove_signal_handler(SIGUSR2);
    simul_loop_close(loop);
    return (void *)(intptr_t)(rc == -EBUSY && rc2 == 0);
}

SIMUL_TASK_TEST(thread_signals_from_other_threads)
{
    (void)arg;
    atomic_store(&count, 0);
    assert_int_equal(simul_add_signal_handler(SIGUSR1, count_it, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kill_usr1, NULL), 0);
    double end = test_clock() + 5;
    while (atomic_load(&count) < 20 && test_clock() < end)
        assert_int_equal(simul_sleep(0.005), 0);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&count), 20);

    void *ok;
    assert_int_equal(pthread_create(&th, NULL, other_loop, NULL), 0);
    pthread_join(th, &ok);
    assert_true((intptr_t)ok);
    assert_int_equal(simul_remove_signal_handler(SIGUSR1), 1);
    return 0;
}

/* ---- simul_run and SIGINT -------------------------------------------------------------------- */

static int main_raises_sigint(void *arg)
{
    double *slept = arg;
    raise(SIGINT);
    double t0 = test_clock();
    int rc = simul_sleep(INFINITY);
    *slept = test_clock() - t0;
    if (rc != -ECANCELED)
        return -EPROTO;
    /* Clean-up inside a shield still suspends normally. */
    simul_scope sh;
    simul_scope_shield(&sh);
    rc = simul_sleep(0.01);
    simul_scope_end(&sh);
    return rc == 0 ? -ECANCELED : -EPROTO;
}

static void run_sigint_cancels_main(void **state)
{
    (void)state;
    assert_true(disposition_is(SIGINT, SIG_DFL));
    double slept = -1;
    assert_int_equal(simul_run(main_raises_sigint, &slept), -ECANCELED);
    assert_true(slept >= 0 && slept < 1.0);
    assert_true(disposition_is(SIGINT, SIG_DFL));
    assert_null(simul_loop_current());
}

static int main_raises_sigint_and_naps(void *arg)
{
    (void)arg;
    raise(SIGINT);
    return simul_sleep(0.05);
}

static void run_leaves_own_sigint_handler(void **state)
{
    (void)state;
    struct sigaction sa = {0};
    sa.sa_handler = own_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGINT, &sa, NULL), 0);
    atomic_store(&own_hits, 0);
    assert_int_equal(simul_run(main_raises_sigint_and_naps, NULL), 0); /* not cancelled */
    assert_int_equal(atomic_load(&own_hits), 1);
    assert_true(disposition_is(SIGINT, own_handler));
}

static void count_sigint(int sig, void *arg)
{
    (void)sig;
    ++*(int *)arg;
}

static int main_replaces_ctrl_c(void *arg)
{
    int *hits = arg;
    int rc = simul_add_signal_handler(SIGINT, count_sigint, hits);
    if (rc < 0)
        return rc;
    /* Each raise is dispatched before the next one: the kernel must not have gone back to the
     * default action (simul_run's Ctrl-C is one-shot) after the first. */
    for (int i = 0; i < 3 && rc == 0; i++) {
        raise(SIGINT);
        rc = simul_sleep(0.02);
    }
    simul_remove_signal_handler(SIGINT);
    return rc;
}

static void run_handler_replacing_ctrl_c_sees_every_sigint(void **state)
{
    (void)state;
    assert_true(disposition_is(SIGINT, SIG_DFL));
    int hits = 0;
    assert_int_equal(simul_run(main_replaces_ctrl_c, &hits), 0); /* main not cancelled */
    assert_int_equal(hits, 3);
    assert_true(disposition_is(SIGINT, SIG_DFL));
}

static void raise_sigint(void *arg)
{
    (void)arg;
    raise(SIGINT);
}

static int main_waits_after_ctrl_c(void *arg)
{
    int *got = arg;
    raise(SIGINT); /* simul_run's one-shot takes it (the kernel puts SIG_DFL back) and cancels us */
    if (simul_sleep(1.0) != -ECANCELED)
        return -EPROTO;
    simul_scope sh;
    simul_scope_shield(&sh);
    /* A wait for SIGINT now must make the disposition ours again, or this raise kills the test. */
    int rc = simul_call_later(0.01, raise_sigint, NULL, NULL);
    if (rc == 0) {
        static const int sigs[] = {SIGINT};
        simul_scope dl;
        simul_scope_timeout(&dl, 2.0);
        *got = simul_wait_signal(sigs, 1);
        simul_scope_end(&dl);
    }
    simul_scope_end(&sh);
    return rc;
}

static void wait_signal_after_ctrl_c_fired(void **state)
{
    (void)state;
    int got = 0;
    assert_int_equal(simul_run(main_waits_after_ctrl_c, &got), 0);
    assert_int_equal(got, SIGINT);
    assert_true(disposition_is(SIGINT, SIG_DFL));
}

static bool sigint_is_one_shot(void)
{
    struct sigaction cur;
    return sigaction(SIGINT, NULL, &cur) == 0 && cur.sa_handler != SIG_DFL &&
           (cur.sa_flags & SA_RESETHAND);
}

static int main_waits_sigint_then_checks(void *arg)
{
    bool *one_shot_again = arg;
    if (!sigint_is_one_shot())
        return -EPROTO; /* simul_run's Ctrl-C: a second one kills */
    simul_scope sh;
    simul_scope_shield(&sh); /* the SIGINT also cancels us: the checks still run */
    int rc = simul_call_later(0.01, raise_sigint, NULL, NULL);
    static const int sigs[] = {SIGINT};
    simul_scope dl;
    simul_scope_timeout(&dl, 2.0);
    int got = rc == 0 ? simul_wait_signal(sigs, 1) : rc;
    simul_scope_end(&dl);
    *one_shot_again = sigint_is_one_shot();
    simul_scope_end(&sh);
    return got == SIGINT ? 0 : -EPROTO;
}

static void wait_signal_gives_ctrl_c_back_its_one_shot(void **state)
{
    (void)state;
    bool one_shot_again = false;
    assert_int_equal(simul_run(main_waits_sigint_then_checks, &one_shot_again), 0);
    assert_true(one_shot_again);
    assert_true(disposition_is(SIGINT, SIG_DFL));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(handlers_run_on_loop_in_order),
    cmocka_unit_test(remove_restores_previous_handler),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(no_loop_or_task),
    cmocka_unit_test(wait_signal_returns_the_number),
    cmocka_unit_test(wait_signal_deadline_and_cancel),
    cmocka_unit_test(busy_loop_still_sees_signals),
    cmocka_unit_test(thread_signals_from_other_threads),
    cmocka_unit_test(run_sigint_cancels_main),
    cmocka_unit_test(run_leaves_own_sigint_handler),
    cmocka_unit_test(run_handler_replacing_ctrl_c_sees_every_sigint),
    cmocka_unit_test(wait_signal_after_ctrl_c_fired),
    cmocka_unit_test(wait_signal_gives_ctrl_c_back_its_one_shot),
};

SIMUL_TEST_MAIN("test_signal", tests)
