/* test_debug_overflow.c — a stack overflow says what to do, and a frame larger than the guard
 * (an on-stack array) is caught at the guard too: simul's build flags give the user's code stack
 * probes (-fstack-clash-protection), so its first probe below the stack lands in the guard. The
 * overflow happens in a forked child; the parent reads its stderr and its death. */
#include <signal.h>
#include <sys/wait.h>

#include "test_main_helpers.h"

static volatile size_t touch_at = 0;

/* A 256 KiB array on a 64 KiB stack: four times the stack, sixteen times the guard. */
static int __attribute__((noinline)) big_frame(void)
{
    volatile char big[256 * 1024];
    big[touch_at] = 1;
    return big[touch_at];
}

static int big_frame_task(void *arg)
{
    (void)arg;
    return big_frame();
}

static void child(int err_fd)
{
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
    simul_task_opts opts = {.name = "big-frame", .stack_size = 64 * 1024};
    if (simul_task_spawn(&t, big_frame_task, NULL, &opts) != 0) {
        _exit(102);
    }
    int result = 0;
    simul_loop_run_until_complete(loop, t, &result);
    _exit(103); /* not reached */
}

static char *run_child(int *status)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        alarm(30);
        child(fds[1]);
    }
    close(fds[1]);
    size_t cap = 8192, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    ssize_t n;
    while ((n = read(fds[0], text + len, cap - len - 1)) != 0) {
        if (n < 0 && errno == EINTR) {
            continue;
        }
        assert_true(n > 0);
        len += (size_t)n;
        if (len + 1 >= cap) {
            break;
        }
    }
    text[len] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, status, 0), pid);
    print_message("child stderr: %s\n", text);
    return text;
}

static void big_frame_caught_at_the_guard(void **state)
{
    (void)state;
    int status = 0;
    char *text = run_child(&status);
    assert_true(WIFSIGNALED(status));
    assert_true(WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
    assert_non_null(strstr(text, "simul: task 'big-frame' overflowed its 64 KiB stack"));
    /* What to do about it. */
    assert_non_null(strstr(text, "simul_task_opts.stack_size for this task"));
    assert_non_null(strstr(text, "simul_loop_set_stack_size(loop, bytes) for every task"));
    assert_non_null(strstr(text, "move large arrays to the heap"));
    free(text);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(big_frame_caught_at_the_guard),
};

SIMUL_TEST_MAIN("test_debug_overflow", tests)
