/* test_main_helpers.h — shared scaffolding for the cmocka unit tests.
 * Every test binary runs one case per process when given its name (CTest registers one test per
 * case), and every case ends by closing its loop with nothing left alive.
 */
#ifndef SIMUL_TEST_MAIN_HELPERS_H
#define SIMUL_TEST_MAIN_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "simul.h"

/* Which sanitizer the test is built with (gcc defines __SANITIZE_*, clang has __has_feature). */
#if defined(__SANITIZE_ADDRESS__)
#define SIMUL_TEST_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define SIMUL_TEST_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(SIMUL_TEST_ASAN)
#define SIMUL_TEST_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(SIMUL_TEST_TSAN)
#define SIMUL_TEST_TSAN 1
#endif
#endif
#ifndef SIMUL_TEST_ASAN
#define SIMUL_TEST_ASAN 0
#endif
#ifndef SIMUL_TEST_TSAN
#define SIMUL_TEST_TSAN 0
#endif
#if SIMUL_TEST_ASAN || SIMUL_TEST_TSAN
#include <sanitizer/common_interface_defs.h>
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Our own monotonic clock, so timing assertions do not trust the library's clock. */
static inline double test_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Spins the CPU for `seconds` without suspending (to hold the loop). */
static inline void test_busy_wait(double seconds)
{
    double end = test_clock() + seconds;
    while (test_clock() < end) {
    }
}

/* Runs fn(arg) as a task (named "test-main") on a fresh loop until it returns, then asserts that
 * nothing is left alive: task count 0, simul_loop_close() == 0, no current loop. Returns the
 * task's result. */
static inline int simul_test_run(simul_task_fn fn, void *arg)
{
    simul_loop *loop = NULL;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_non_null(loop);
    simul_task *t = NULL;
    /* Stackful whatever the loop's mode: test bodies hand their locals to the tasks they spawn,
     * which a compact task may not do (SIMUL_TASKS=compact runs the spawned ones compact). */
    simul_task_opts opts = {.name = "test-main", .stack_size = 0, .mode = SIMUL_TASK_STACKFUL};
    assert_int_equal(simul_task_spawn(&t, fn, arg, &opts), 0);
    int result = INT_MIN;
    assert_int_equal(simul_loop_run_until_complete(loop, t, &result), 0);
    assert_int_equal(simul_task_count(), 0);
    assert_int_equal(simul_loop_close(loop), 0);
    assert_null(simul_loop_current());
    return result;
}

/* Defines a cmocka test `name` whose body runs as a task via simul_test_run() and must return 0:
 *     SIMUL_TASK_TEST(my_case) { ...; return 0; }     (the body sees `void *arg`, NULL)
 */
#define SIMUL_TASK_TEST(name)                                                                      \
    static int name##_task(void *arg);                                                             \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        assert_int_equal(simul_test_run(name##_task, NULL), 0);                                    \
    }                                                                                              \
    static int name##_task(void *arg)

/* ---- capturing stderr (for debug-mode and overflow reports) ------------------------------ */

typedef struct test_capture {
    int saved_fd;
    FILE *tmp;
} test_capture;

/* Redirects fd 2 to a temporary file until test_capture_end(). Sanitizer reports keep going to
 * the real stderr (where CTest looks for them), since a report usually ends the process before
 * the capture could be echoed. */
static inline void test_capture_begin(test_capture *c)
{
    fflush(stderr);
#if SIMUL_TEST_ASAN || SIMUL_TEST_TSAN
    static int report_fd = -1;
    if (report_fd < 0) {
        report_fd = dup(STDERR_FILENO);
        __sanitizer_set_report_fd((void *)(intptr_t)report_fd);
    }
#endif
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved_fd = dup(STDERR_FILENO);
    assert_true(c->saved_fd >= 0);
    assert_true(dup2(fileno(c->tmp), STDERR_FILENO) >= 0);
}

/* Restores fd 2 and returns what was written meanwhile (malloc'd, NUL-terminated). It is also
 * echoed to the real stderr so a failing test's log shows it. */
static inline char *test_capture_end(test_capture *c)
{
    fflush(stderr);
    assert_true(dup2(c->saved_fd, STDERR_FILENO) >= 0);
    close(c->saved_fd);
    /* fd 2 shared the temp file's offset, so its end is what was written. */
    off_t end = lseek(fileno(c->tmp), 0, SEEK_END);
    long size = end > 0 ? (long)end : 0;
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    ssize_t got = pread(fileno(c->tmp), text, (size_t)size, 0);
    text[got > 0 ? got : 0] = '\0';
    fclose(c->tmp);
    fprintf(stderr, "---- captured stderr (%ld bytes) ----\n%s---- end of captured stderr ----\n",
            (long)size, text);
    return text;
}

/* ---- main: one case per process ----------------------------------------------------------- */

/* Usage: <binary>                    run every case in this process
 *        <binary> CASE               run only CASE (exit 2 if there is no such case)
 *        <binary> --list             print the case names, one per line
 *        <binary> --check-names A B  exit 1 unless the cases are exactly {A, B, ...}: CTest runs
 *                                    this with the names it parsed from the source, so a case
 *                                    table and the CTest registration cannot drift apart. */
static inline int simul_test_main(int argc, char **argv, const struct CMUnitTest *tests, size_t n,
                                  const char *group)
{
    if (argc == 1) {
        return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    }
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < n; i++) {
            printf("%s\n", tests[i].name);
        }
        return 0;
    }
    if (strcmp(argv[1], "--check-names") == 0) {
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            int found = 0;
            for (int a = 2; a < argc; a++) {
                found += strcmp(tests[i].name, argv[a]) == 0;
            }
            if (found != 1) {
                fprintf(stderr, "%s: case '%s' is registered %d times in CTest (expected once)\n",
                        group, tests[i].name, found);
                bad = 1;
            }
        }
        for (int a = 2; a < argc; a++) {
            int found = 0;
            for (size_t i = 0; i < n; i++) {
                found += strcmp(tests[i].name, argv[a]) == 0;
            }
            if (found != 1) {
                fprintf(stderr, "%s: CTest name '%s' matches %d cases in the table\n", group,
                        argv[a], found);
                bad = 1;
            }
        }
        if (!bad) {
            printf("%s: %zu cases, in sync with CTest\n", group, n);
        }
        return bad;
    }
    if (argc == 2) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(tests[i].name, argv[1]) == 0) {
                return _cmocka_run_group_tests(group, &tests[i], 1, NULL, NULL);
            }
        }
        fprintf(stderr, "%s: no test case named '%s' (try --list)\n", group, argv[1]);
        return 2;
    }
    fprintf(stderr, "usage: %s [CASE | --list | --check-names NAME...]\n", argv[0]);
    return 2;
}

/* ---- small task helpers -------------------------------------------------------------------- */

/* How many fds the process has open (the directory's own fd not counted): a test takes it
 * before and after to prove it leaks none. */
static inline int test_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* Spawns fn(arg) with default options; the test fails if it cannot. */
static inline simul_task *test_spawn(simul_task_fn fn, void *arg)
{
    simul_task *t = NULL;
    assert_int_equal(simul_task_spawn(&t, fn, arg, NULL), 0);
    return t;
}

/* Joins t and asserts that it returned 0. */
static inline void test_join_ok(simul_task *t)
{
    int r = -1;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, 0);
}

/* Lets every ready task run a few times (five yields of the caller). */
static inline void test_settle(void)
{
    for (int i = 0; i < 5; i++)
        assert_int_equal(simul_yield(), 0);
}

/* A grandchild that sleeps "forever" and records how it ended (cancellation tests). */
typedef struct gc_probe {
    int started, rc, cleanup;
} gc_probe;

static inline int gc_sleeper(void *arg)
{
    gc_probe *g = arg;
    g->started = 1;
    g->rc = simul_sleep(60.0); /* never runs its course: cut by a cancel or a deadline */
    g->cleanup = 1;
    return g->rc;
}

#define SIMUL_TEST_MAIN(group, tests)                                                              \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return simul_test_main(argc, argv, tests, ARRAY_LEN(tests), group);                        \
    }

#endif /* SIMUL_TEST_MAIN_HELPERS_H */
