/* test_errors.c — simul_strerror / simul_errname: one table, either sign, never NULL. */
#include "test_main_helpers.h"

static void errname_known_codes(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
    } known[] = {
        {ECANCELED, "ECANCELED"}, {ETIMEDOUT, "ETIMEDOUT"},   {EINVAL, "EINVAL"},
        {EPERM, "EPERM"},         {ENOENT, "ENOENT"},         {ENOMEM, "ENOMEM"},
        {EBUSY, "EBUSY"},         {ENXIO, "ENXIO"},           {EDEADLK, "EDEADLK"},
        {EALREADY, "EALREADY"},   {EAGAIN, "EAGAIN"},         {EIO, "EIO"},
        {ESHUTDOWN, "ESHUTDOWN"}, {EPROTO, "EPROTO"},         {EMSGSIZE, "EMSGSIZE"},
        {EPIPE, "EPIPE"},         {ECONNRESET, "ECONNRESET"},
    };
    for (size_t i = 0; i < ARRAY_LEN(known); i++) {
        assert_string_equal(simul_errname(-known[i].code), known[i].name);
        assert_string_equal(simul_errname(known[i].code), known[i].name);
    }
}

static void strerror_known_codes(void **state)
{
    (void)state;
    const int codes[] = {ECANCELED, ETIMEDOUT, EINVAL};
    for (size_t i = 0; i < ARRAY_LEN(codes); i++) {
        const char *neg = simul_strerror(-codes[i]);
        const char *pos = simul_strerror(codes[i]);
        assert_non_null(neg);
        assert_non_null(pos);
        assert_true(strlen(neg) > 0);
        assert_string_equal(neg, pos); /* either sign */
        /* A message, not the symbol, and distinct per code. */
        assert_string_not_equal(neg, simul_errname(codes[i]));
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(neg, simul_strerror(-codes[j]));
        }
        /* Static storage: stable across calls. */
        assert_ptr_equal(simul_strerror(-codes[i]), neg);
    }
}

static void unknown_codes_never_null(void **state)
{
    (void)state;
    const int codes[] = {-99999, 99999, INT_MIN + 1, INT_MAX, 0};
    for (size_t i = 0; i < ARRAY_LEN(codes); i++) {
        const char *msg = simul_strerror(codes[i]);
        const char *name = simul_errname(codes[i]);
        assert_non_null(msg);
        assert_non_null(name);
        assert_true(strlen(msg) > 0);
        assert_true(strlen(name) > 0);
        if (codes[i] != 0) {
            assert_string_not_equal(name, "ECANCELED");
            assert_string_not_equal(name, "EINVAL");
            assert_string_not_equal(msg, simul_strerror(-EINVAL));
        }
    }
    /* INT_MIN has no positive counterpart: must not crash. */
    assert_non_null(simul_strerror(INT_MIN));
    assert_non_null(simul_errname(INT_MIN));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(errname_known_codes),
    cmocka_unit_test(strerror_known_codes),
    cmocka_unit_test(unknown_codes_never_null),
};

SIMUL_TEST_MAIN("test_errors", tests)
