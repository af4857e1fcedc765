/* test_subprocess_fallback.c — every case of test_subprocess.c again with SIMUL_NO_PIDFD=1, so
 * exits are seen through the loop's SIGCHLD and waitpid(pid, WNOHANG) per child; plus what only
 * that path has: SIGCHLD's disposition comes back once the loop has no such child, other code's
 * children are never reaped by the loop, and a SIGCHLD owned by another loop falls back on the
 * timer poll.
 */
#define SUBPROCESS_NO_MAIN 1
#include "test_subprocess.c"

#include <pthread.h>

static bool sigchld_is_default(void)
{
    struct sigaction sa;
    sigaction(SIGCHLD, NULL, &sa);
    return sa.sa_handler == SIG_DFL;
}

SUB_TEST(fallback_sigchld_restored_after_last_child)
{
    (void)arg;
    assert_true(sigchld_is_default());
    const char *argv[] = {"sleep", "0.1", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    assert_int_equal(simul__process_test_watch(p), 0);
    assert_false(sigchld_is_default()); /* caught while the loop has a child to watch */
    assert_int_equal(wait_status(p), 0);
    assert_true(sigchld_is_default());
    simul_process_close(p);
    return 0;
}

SUB_TEST(fallback_never_reaps_other_code_children)
{
    (void)arg;
    /* A child the library did not make: its SIGCHLD wakes the loop, which must leave it alone. */
    pid_t other = fork();
    if (other == 0)
        _exit(7);
    assert_true(other > 0);
    const char *argv[] = {"sleep", "0.2", NULL};
    simul_process *p = start(argv, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
    assert_int_equal(wait_status(p), 0);
    simul_process_close(p);
    int st;
    assert_int_equal(waitpid(other, &st, 0), other); /* still ours to reap */
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 7);
    return 0;
}

/* Another thread's loop holds SIGCHLD (as a handler) until told to stop. */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int hold_state; /* 0 starting, 1 holding, 2 release */

static void on_chld(int sig, void *arg)
{
    (void)sig;
    (void)arg;
}

static void *holder(void *arg)
{
    (void)arg;
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_add_signal_handler(SIGCHLD, on_chld, NULL), 0);
    pthread_mutex_lock(&hold_mu);
    hold_state = 1;
    pthread_cond_broadcast(&hold_cv);
    while (hold_state != 2)
        pthread_cond_wait(&hold_cv, &hold_mu);
    pthread_mutex_unlock(&hold_mu);
    assert_int_equal(simul_remove_signal_handler(SIGCHLD), 1);
    assert_int_equal(simul_loop_close(loop), 0);
    return NULL;
}

SUB_TEST(fallback_thread_sigchld_owned_by_another_loop)
{
    (void)arg;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, holder, NULL), 0);
    pthread_mutex_lock(&hold_mu);
    while (hold_state != 1)
        pthread_cond_wait(&hold_cv, &hold_mu);
    pthread_mutex_unlock(&hold_mu);
    /* SIGCHLD is the other loop's (-EBUSY here): exits are still seen, by the timer poll. */
    const char *argv[] = {"sleep", "0.05", NULL};
    for (int i = 0; i < 3; i++) {
        simul_process *p =
            start(argv, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT, SIMUL_STDIO_INHERIT);
        assert_int_equal(wait_status(p), 0);
        simul_process_close(p);
    }
    pthread_mutex_lock(&hold_mu);
    hold_state = 2;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
    assert_int_equal(pthread_join(th, NULL), 0);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(echo_through_stdout_pipe),
    cmocka_unit_test(watch_uses_pidfd_or_forced_fallback),
    cmocka_unit_test(cat_round_trip_stdin_to_stdout),
    cmocka_unit_test(communicate_several_mb_through_cat),
    cmocka_unit_test(communicate_large_output_both_pipes_no_deadlock),
    cmocka_unit_test(communicate_discards_output_when_out_is_null),
    cmocka_unit_test(stderr_separate_and_merged),
    cmocka_unit_test(devnull_stdin_and_stdout),
    cmocka_unit_test(inherited_stdin_and_caller_fd_stdout),
    cmocka_unit_test(env_and_cwd),
    cmocka_unit_test(exec_errors_leave_nothing_behind),
    cmocka_unit_test(bad_arguments),
    cmocka_unit_test(no_loop_and_no_task),
    cmocka_unit_test(every_exit_code),
    cmocka_unit_test(killed_by_signal_and_terminate),
    cmocka_unit_test(child_starts_with_default_signals_and_empty_mask),
    cmocka_unit_test(child_inherits_no_library_fd),
    cmocka_unit_test(writing_to_a_child_that_exited_is_epipe),
    cmocka_unit_test(closing_stdout_early_gives_the_child_sigpipe),
    cmocka_unit_test(wait_cancelled_and_timed_out_child_still_reaped),
    cmocka_unit_test(communicate_with_deadline_then_kill),
    cmocka_unit_test(communicate_cancelled_keeps_partial_output),
    cmocka_unit_test(communicate_output_limit),
    cmocka_unit_test(communicate_twice_at_once_is_ebusy),
    cmocka_unit_test(a_thousand_children_in_a_row),
    cmocka_unit_test(a_hundred_children_at_once),
    cmocka_unit_test(free_wakes_waiter_and_tolerates_closed_pipes),
    cmocka_unit_test(reaper_thread_reaps_children_freed_while_running),
    cmocka_unit_test(free_of_exited_child_reaps_at_once),
    cmocka_unit_test(lines_arrive_while_the_child_runs),
    cmocka_unit_test(new_session_flag),
    cmocka_unit_test(pass_fds_child_writes_to_a_passed_pipe),
    cmocka_unit_test(pass_fds_keeps_only_those_fds),
    cmocka_unit_test(pass_fds_bad_input_starts_nothing),
    cmocka_unit_test(new_session_child_leads_its_session_and_group),
    cmocka_unit_test(group_kill_reaches_the_grandchild),
    cmocka_unit_test(group_signal_after_the_leader_exited),
    cmocka_unit_test(join_pgid_puts_a_second_child_in_the_first_group),
    cmocka_unit_test(umask_set_by_a_spawn_thread_in_the_child_only),
    cmocka_unit_test(umask_spawn_thread_bad_values_and_exec_errors),
    cmocka_unit_test(fallback_sigchld_restored_after_last_child),
    cmocka_unit_test(fallback_never_reaps_other_code_children),
    cmocka_unit_test(fallback_thread_sigchld_owned_by_another_loop),
};

int main(int argc, char **argv)
{
    setenv("SIMUL_NO_PIDFD", "1", 1); /* before the library reads it, once */
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "subprocess_fallback");
}
