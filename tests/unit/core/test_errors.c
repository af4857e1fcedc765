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

/* Every errno the headers promise somewhere ("-ENODATA", ...) has a name and a message: a user
 * who prints simul_strerror(rc) must never see "Unknown error" for a documented return. The
 * headers (include/simul.h and every include/simul/<area>.h) are read from the source tree
 * (__FILE__ is the test's own path there). */
static int check_codes_in(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    int checked = 0;
    for (char *p = text; (p = strstr(p, "-E")) != NULL; p += 2) {
        char name[32];
        size_t k = 0;
        while (k + 1 < sizeof name && ((p[1 + k] >= 'A' && p[1 + k] <= 'Z') ||
                                       (p[1 + k] >= '0' && p[1 + k] <= '9')))
            name[k] = p[1 + k], k++;
        name[k] = '\0';
        if (k < 4) /* "-E" in prose */
            continue;
        bool found = false;
        for (int code = 1; code < 200 && !found; code++)
            found = strcmp(simul_errname(-code), name) == 0 &&
                    strcmp(simul_strerror(-code), "Unknown error") != 0;
        if (!found)
            fail_msg("%s documents -%s but simul_errname does not know it", path, name);
        checked++;
    }
    return checked;
}

static void every_documented_code_is_known(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strstr(path, "tests/unit/");
    if (!slash)
        skip(); /* built from elsewhere: the headers' path is unknown */
    strcpy(slash, "include/simul");
    DIR *d = opendir(path);
    assert_non_null(d);
    int checked = 0, headers = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".h") != 0)
            continue;
        char file[8192];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        checked += check_codes_in(file);
        headers++;
    }
    closedir(d);
    strcat(path, ".h");
    checked += check_codes_in(path);
    assert_true(headers >= 9);
    assert_true(checked > 100);
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
    cmocka_unit_test(every_documented_code_is_known),
};

SIMUL_TEST_MAIN("test_errors", tests)
