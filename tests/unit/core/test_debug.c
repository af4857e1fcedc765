/* test_debug.c — debug mode's reports on stderr: slow tasks, failures nobody joined, survivors at
 * close; and silence when nothing is wrong. stderr is captured into a temporary file.
 */
#include "test_main_helpers.h"

/* Runs fn(arg) as a task on a fresh loop with debug mode on, capturing stderr; asserts the loop
 * then closes clean. Returns the captured text (malloc'd). */
static char *run_debug(simul_task_fn fn, void *arg, double threshold, bool debug)
{
    unsetenv("SIMUL_DEBUG");
    test_capture cap;
    test_capture_begin(&cap);
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_loop_set_debug(loop, debug), 0);
    if (threshold > 0) {
        assert_int_equal(simul_loop_set_slow_task_threshold(loop, threshold), 0);
    }
    simul_task *t;
    simul_task_opts opts = {.name = "test-main", .stack_size = 0};
    assert_int_equal(simul_task_spawn(&t, fn, arg, &opts), 0);
    int result = -1;
    assert_int_equal(simul_loop_run_until_complete(loop, t, &result), 0);
    assert_int_equal(simul_task_count(), 0);
    assert_int_equal(simul_loop_close(loop), 0);
    char *text = test_capture_end(&cap);
    assert_int_equal(result, 0);
    return text;
}

/* The number printed just before " ms" on the first line naming `task`, or -1. */
static double reported_ms(const char *text, const char *task)
{
    char quoted[64];
    snprintf(quoted, sizeof quoted, "'%s'", task);
    const char *p = strstr(text, quoted);
    if (!p) {
        return -1;
    }
    const char *eol = strchr(p, '\n');
    const char *ms = strstr(p, " ms");
    if (!ms || (eol && ms > eol)) {
        return -1;
    }
    const char *num = ms;
    while (num > p && (num[-1] == '.' || (num[-1] >= '0' && num[-1] <= '9'))) {
        num--;
    }
    return num == ms ? -1 : strtod(num, NULL);
}

typedef struct hog_case {
    double busy;
    const char *hog_name;
    double took; /* the hog's run as the wall clock saw it (a descheduled process makes it longer) */
} hog_case;

static int hog(void *arg)
{
    hog_case *hc = arg;
    double t0 = test_clock();
    test_busy_wait(hc->busy);
    hc->took = test_clock() - t0;
    return 0;
}

static int polite(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(simul_sleep(0.005), 0);
    }
    return 0;
}

static int spawn_hog_and_polite(void *arg)
{
    hog_case *hc = arg;
    simul_task *t[2];
    simul_task_opts o1 = {.name = hc->hog_name, .stack_size = 0};
    simul_task_opts o2 = {.name = "polite", .stack_size = 0};
    assert_int_equal(simul_task_spawn(&t[0], hog, hc, &o1), 0);
    assert_int_equal(simul_task_spawn(&t[1], polite, NULL, &o2), 0);
    assert_int_equal(simul_gather(t, 2, NULL), 0);
    return 0;
}

static void slow_task_warning(void **state)
{
    (void)state;
    hog_case hc = {.busy = 0.15, .hog_name = "hog"};
    char *text = run_debug(spawn_hog_and_polite, &hc, 0, true);
    assert_non_null(strstr(text, "'hog'"));
    assert_non_null(strstr(text, "ms"));
    double ms = reported_ms(text, "hog");
    assert_true(ms >= 140.0 && ms < 2000.0);
    assert_null(strstr(text, "'polite'"));
    assert_null(strstr(text, "'test-main'"));
    free(text);
}

static void slow_task_threshold_configurable(void **state)
{
    (void)state;
    hog_case hc = {.busy = 0.04, .hog_name = "small-hog"};
    char *text = run_debug(spawn_hog_and_polite, &hc, 0.02, true);
    double ms = reported_ms(text, "small-hog");
    assert_true(ms >= 35.0 && ms < 2000.0);
    free(text);
    /* Under the default threshold (0.1 s) the same 40 ms goes unreported — when it was 40 ms: a
     * process descheduled past the threshold mid-run is rightly reported, so the case is run
     * until the hog's own wall-clock run stayed well under it (state, not luck). */
    bool checked = false;
    for (int attempt = 0; attempt < 20 && !checked; attempt++) {
        text = run_debug(spawn_hog_and_polite, &hc, 0, true);
        if (hc.took < 0.08) {
            assert_null(strstr(text, "small-hog"));
            checked = true;
        } else if (hc.took > 0.12) {
            assert_non_null(strstr(text, "small-hog")); /* over the threshold: reported */
        }
        free(text);
    }
    assert_true(checked);
}

static void slow_task_silent_without_debug(void **state)
{
    (void)state;
    hog_case hc = {.busy = 0.15, .hog_name = "quiet-hog"};
    char *text = run_debug(spawn_hog_and_polite, &hc, 0, false);
    assert_string_equal(text, "");
    free(text);
}

static int fail_later(void *arg)
{
    (void)arg;
    assert_int_equal(simul_sleep(0.005), 0);
    return -EIO;
}

static int spawn_failers(void *arg)
{
    (void)arg;
    /* Detached from the start. */
    simul_task_opts o = {.name = "failer", .stack_size = 0};
    assert_int_equal(simul_task_spawn(NULL, fail_later, NULL, &o), 0);
    /* Detached after spawning. */
    simul_task *t;
    o.name = "failer-2";
    assert_int_equal(simul_task_spawn(&t, fail_later, NULL, &o), 0);
    assert_int_equal(simul_task_detach(t), 0);
    /* Joined: its failure was collected, so it is not reported. */
    o.name = "collected";
    assert_int_equal(simul_task_spawn(&t, fail_later, NULL, &o), 0);
    int r = 0;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -EIO);
    assert_int_equal(simul_sleep(0.02), 0);
    assert_int_equal(simul_task_count(), 1);
    return 0;
}

static void detached_failure_reported(void **state)
{
    (void)state;
    char *text = run_debug(spawn_failers, NULL, 0, true);
    assert_non_null(strstr(text, "'failer'"));
    assert_non_null(strstr(text, "'failer-2'"));
    assert_non_null(strstr(text, "EIO"));
    assert_null(strstr(text, "'collected'"));
    free(text);
}

static int return_0(void *arg)
{
    (void)arg;
    return 0;
}

static void survivors_named_at_close(void **state)
{
    (void)state;
    test_capture cap;
    test_capture_begin(&cap);
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_loop_set_debug(loop, true), 0);
    simul_task *t;
    simul_task_opts o = {.name = "survivor", .stack_size = 0};
    assert_int_equal(simul_task_spawn(&t, return_0, NULL, &o), 0);
    assert_int_equal(simul_loop_close(loop), -EBUSY);
    char *text = test_capture_end(&cap);
    assert_non_null(strstr(text, "survivor"));
    free(text);
    int r = -1;
    assert_int_equal(simul_loop_run_until_complete(loop, t, &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(simul_loop_close(loop), 0);
}

static int sleep_long(void *arg)
{
    (void)arg;
    return simul_sleep(10.0);
}

/* A well-behaved program in debug mode prints nothing. */
static int well_behaved(void *arg)
{
    (void)arg;
    simul_task *t[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simul_task_spawn(&t[i], polite, NULL, NULL), 0);
    }
    assert_int_equal(simul_gather(t, 3, NULL), 0);
    simul_task *c;
    assert_int_equal(simul_task_spawn(&c, sleep_long, NULL, NULL), 0);
    assert_int_equal(simul_sleep(0.005), 0);
    assert_int_equal(simul_task_cancel(c), 0);
    int r = 0;
    assert_int_equal(simul_task_join(c, &r), 0); /* a failure, but collected */
    assert_int_equal(r, -ECANCELED);
    return 0;
}

static void debug_silent_when_all_is_well(void **state)
{
    (void)state;
    char *text = run_debug(well_behaved, NULL, 0, true);
    assert_string_equal(text, "");
    free(text);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(slow_task_warning),
    cmocka_unit_test(slow_task_threshold_configurable),
    cmocka_unit_test(slow_task_silent_without_debug),
    cmocka_unit_test(detached_failure_reported),
    cmocka_unit_test(survivors_named_at_close),
    cmocka_unit_test(debug_silent_when_all_is_well),
};

SIMUL_TEST_MAIN("test_debug", tests)
