/* test_supervisor_fallback.c — the cases of test_supervisor.c again with SIMUL_NO_PIDFD=1: the
 * master learns of its workers' exits through SIGCHLD and waitpid(pid, WNOHANG) per worker (the
 * process layer's fallback), beside its own handlers of SIGHUP, SIGTERM, SIGINT and SIGQUIT. Set
 * before main (the process layer reads the variable once); the workers inherit it. */
#include <stdlib.h>

#define SUPERVISOR_NO_MAIN 1
#include "test_supervisor.c"

__attribute__((constructor)) static void force_fallback(void)
{
    setenv("SIMUL_NO_PIDFD", "1", 1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_ready_stop),
        cmocka_unit_test(test_restart_after_kill),
        cmocka_unit_test(test_backoff_doubles),
        cmocka_unit_test(test_reload_new_ready_before_old_exit),
        cmocka_unit_test(test_reload_one_by_one),
        cmocka_unit_test(test_reload_fails_old_stay),
        cmocka_unit_test(test_old_death_during_failed_reload),
        cmocka_unit_test(test_boot_failure),
        cmocka_unit_test(test_watchdog_kills_stuck_worker),
        cmocka_unit_test(test_stop_deadline_kills),
        cmocka_unit_test(test_reuseport_slots),
        cmocka_unit_test(test_listen_fds_inherited),
        cmocka_unit_test(test_notify_socket),
        cmocka_unit_test(test_foreign_worker),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_start_server_socks),
        cmocka_unit_test(test_start_outside_task),
    };
    return supervisor_tests_main(argc, argv, tests, ARRAY_LEN(tests),
                                 "test_supervisor_fallback");
}
