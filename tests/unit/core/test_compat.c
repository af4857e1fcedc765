/* test_compat.c — programs written against 0.1's names still compile and call the same functions
 * (include/simul/compat.h). The rest of the tree builds with SIMUL_NO_COMPAT, so only this file
 * sees the old names. */
#undef SIMUL_NO_COMPAT
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

#include "test_main_helpers.h"

static void old_names_are_the_new_functions(void **state)
{
    (void)state;
    /* Each old name is a macro for the new one: taking both addresses compares the functions. */
    assert_ptr_equal((void *)&simul_process_free, (void *)&simul_process_close);
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

/* The transports' address getters changed shape (sockaddr_storage in, length out, as the
 * stream's); the 0.1 shape (addr, *len, 0) is kept as functions of its own: same addresses,
 * truncated to *len as getpeername(2) truncates, *len the full length. */
static void d_received(void *ctx, const void *data, size_t len, const struct sockaddr *addr,
                       simul_socklen_t addrlen)
{
    (void)ctx, (void)data, (void)len, (void)addr, (void)addrlen;
}
static void d_lost(void *ctx, int err)
{
    (void)err;
    (*(int *)ctx)++;
}
static const simul_datagram_protocol dproto = {.datagram_received = d_received,
                                               .connection_lost = d_lost};

SIMUL_TASK_TEST(old_address_getters_keep_their_shape)
{
    (void)arg;
    static int lost;
    simul_datagram_transport *st, *ct;
    assert_int_equal(
        simul_create_datagram_endpoint("127.0.0.1", "0", NULL, NULL, 0, &dproto, &lost, &st), 0);
    struct sockaddr_in a;
    simul_socklen_t len = sizeof a;
    assert_int_equal(simul_datagram_transport_get_sockname(st, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(len, sizeof a);
    struct sockaddr_storage ss;
    assert_int_equal(simul_datagram_transport_sockname(st, &ss), (int)sizeof a);
    assert_memory_equal(&ss, &a, sizeof a);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
    assert_int_equal(
        simul_create_datagram_endpoint(NULL, NULL, "127.0.0.1", port, 0, &dproto, &lost, &ct), 0);
    struct sockaddr_in p;
    len = sizeof p;
    assert_int_equal(simul_datagram_transport_get_peername(ct, (struct sockaddr *)&p, &len), 0);
    assert_int_equal(p.sin_port, a.sin_port);
    /* Truncated to the room given, the full length reported. */
    char small[4];
    len = sizeof small;
    assert_int_equal(simul_datagram_transport_get_peername(ct, (struct sockaddr *)small, &len), 0);
    assert_int_equal(len, sizeof p);
    assert_memory_equal(small, &p, sizeof small);
    len = sizeof p;
    assert_int_equal(simul_datagram_transport_get_peername(st, (struct sockaddr *)&p, &len),
                     -ENOTCONN);
    simul_datagram_transport_close(ct);
    simul_datagram_transport_close(st);
    for (int i = 0; i < 1000 && lost < 2; i++) /* connection_lost runs from the loop */
        assert_int_equal(simul_sleep(0), 0);
    assert_int_equal(lost, 2);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(old_names_are_the_new_functions),
    cmocka_unit_test(old_task_name_call_works),
    cmocka_unit_test(old_address_getters_keep_their_shape),
};

SIMUL_TEST_MAIN("compat", tests)
