/* test_procpool_fallback.c — every case of test_procpool.c again with SIMUL_NO_PIDFD=1: no
 * worker has a pidfd, so an idle death is seen by the reply pipe's EOF alone and a killed worker
 * is reaped by pid, blocking for the moment it takes to die. Set before main (the process layer
 * reads the variable once, on first use).
 */
#include <stdlib.h>

#define PROCPOOL_NO_MAIN 1
#include "test_procpool.c"

__attribute__((constructor)) static void force_fallback(void)
{
    setenv("SIMUL_NO_PIDFD", "1", 1);
}

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
    return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), "test_procpool_fallback");
}
