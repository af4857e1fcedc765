/* test_overflow.c — a task that overflows its stack is reported by name and size, then the process
 * dies of the signal. The overflow happens in a forked child; the parent reads its stderr.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "test_main_helpers.h"

/* These run under ASan and TSan too (simul's handler works on their alternate stacks); only the
 * check that an ordinary fault is not misreported is skipped under ASan (see there). */

static volatile int depth_limit = INT_MAX; /* keeps the compiler from proving infinite recursion */

/* Each frame keeps a volatile array live across the recursive call, and uses the call's result,
 * so the recursion can be neither turned into a loop nor have its frames folded. Frames stay
 * small (~300 bytes) so the first faulting access lands in the guard region. */
static int __attribute__((noinline)) recurse(int depth)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    frame[255] = (char)(depth >> 8);
    if (depth >= depth_limit) {
        return frame[0];
    }
    int below = recurse(depth + 1);
    return below + frame[depth & 255];
}

static int deep_task(void *arg)
{
    (void)arg;
    return recurse(0);
}

/* Child side: never returns. */
static void overflow_child(int err_fd, const char *name, size_t stack_size)
{
    /* cmocka's own SIGSEGV handler must not catch this one: start from the defaults, so simul's
     * handler (installed when it sets up its first loop) chains to SIG_DFL. */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    if (dup2(err_fd, STDERR_FILENO) < 0) {
        _exit(100);
    }
    simul_loop *loop;
    if (simul_loop_new(&loop) != 0) {
        _exit(101);
    }
    simul_task *t;
    simul_task_opts opts = {.name = name, .stack_size = stack_size};
    if (simul_task_spawn(&t, deep_task, NULL, &opts) != 0) {
        _exit(102);
    }
    int result = 0;
    simul_loop_run_until_complete(loop, t, &result);
    _exit(103); /* not reached: the recursion never ends */
}

/* Runs the overflow in a child; returns its stderr (malloc'd) and its wait status. */
static char *run_overflow(const char *name, size_t stack_size, int *status)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        alarm(30); /* a hang ends as SIGALRM, which the checks below tell apart */
        overflow_child(fds[1], name, stack_size);
    }
    close(fds[1]);
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (;;) {
        if (len + 1024 > cap) {
            cap *= 2;
            text = realloc(text, cap);
            assert_non_null(text);
        }
        ssize_t n = read(fds[0], text + len, cap - len - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    text[len] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, status, 0), pid);
    print_message("child stderr: %s", text);
    if (WIFSIGNALED(*status)) {
        print_message("child died of signal %d\n", WTERMSIG(*status));
    } else if (WIFEXITED(*status)) {
        print_message("child exited with %d\n", WEXITSTATUS(*status));
    }
    return text;
}

static void overflow_reported_with_name(void **state)
{
    (void)state;
    int status = 0;
    char *text = run_overflow("deep", 64 * 1024, &status);
    assert_non_null(strstr(text, "simul: task 'deep' overflowed its 64 KiB stack"));
    assert_true(WIFSIGNALED(status));
    assert_true(WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
    free(text);
}

static void overflow_reports_actual_size(void **state)
{
    (void)state;
    int status = 0;
    char *text = run_overflow("deeper", 256 * 1024, &status);
    assert_non_null(strstr(text, "simul: task 'deeper' overflowed its 256 KiB stack"));
    assert_true(WIFSIGNALED(status));
    assert_true(WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
    free(text);
}

/* A fault that is not a stack overflow is not reported as one, and still kills the process.
 * (An inaccessible page rather than NULL, which UBSan would catch before the CPU does.) */
static int bad_access_task(void *arg)
{
    volatile int *p = arg;
    return *p;
}

static void other_fault_not_reported_as_overflow(void **state)
{
    (void)state;
    /* ASan's SIGSEGV handler, which simul's chains to for faults that are not overflows, reports
     * the fault itself and exits with status 1: there is nothing of simul's left to check. */
    if (SIMUL_TEST_ASAN) {
        skip();
    }
    void *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(page != MAP_FAILED);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        alarm(30);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        dup2(fds[1], STDERR_FILENO);
        simul_loop *loop;
        simul_task *t;
        int r;
        if (simul_loop_new(&loop) != 0 ||
            simul_task_spawn(&t, bad_access_task, page, &(simul_task_opts){.name = "bad-access"}) != 0) {
            _exit(101);
        }
        simul_loop_run_until_complete(loop, t, &r);
        _exit(103);
    }
    close(fds[1]);
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0) {
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    print_message("child stderr: %s\n", buf);
    assert_null(strstr(buf, "overflowed"));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    munmap(page, 4096);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(overflow_reported_with_name),
    cmocka_unit_test(overflow_reports_actual_size),
    cmocka_unit_test(other_fault_not_reported_as_overflow),
};

SIMUL_TEST_MAIN("test_overflow", tests)
