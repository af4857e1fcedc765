/* test_compat.c — programs written against 0.1's names still compile and call the same functions
 * (include/simul/compat.h). The rest of the tree builds with SIMUL_NO_COMPAT, so only this file
 * sees the old names. */
#undef SIMUL_NO_COMPAT
#include "test_main_helpers.h"

static void old_names_are_the_new_functions(void **state)
{
    (void)state;
    /* Each old name is a macro for the new one: taking both addresses compares the functions. */
    assert_ptr_equal((void *)&simul_process_free, (void *)&simul_process_close);
    assert_ptr_equal((void *)&simul_transport_get_peername, (void *)&simul_transport_peername);
    assert_ptr_equal((void *)&simul_transport_get_sockname, (void *)&simul_transport_sockname);
    assert_ptr_equal((void *)&simul_datagram_transport_get_peername,
                     (void *)&simul_datagram_transport_peername);
    assert_ptr_equal((void *)&simul_datagram_transport_get_sockname,
                     (void *)&simul_datagram_transport_sockname);
    assert_ptr_equal((void *)&simul_task_name, (void *)&simul_task_get_name);
    assert_ptr_equal((void *)&simul_to_thread_ex, (void *)&simul_to_thread_discard);
}

/* The old name called for real, from a task. */
SIMUL_TASK_TEST(old_task_name_call_works)
{
    (void)arg;
    assert_string_equal(simul_task_name(simul_task_current()), "test-main");
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(old_names_are_the_new_functions),
    cmocka_unit_test(old_task_name_call_works),
};

SIMUL_TEST_MAIN("compat", tests)
