/* test_debug_messages.c — debug mode names every mistake the new user made (issue 19): a
 * suspending call before any loop or outside a task names the call the user made, a handle joined
 * twice, scopes left open, a task spinning without suspending (reported while it still spins),
 * and a task cancelled at shutdown reads as what it is. Each case checks the message's words. */
#include "test_main_helpers.h"

#include <sys/stat.h>

static void expect(const char *text, const char *words)
{
    if (!strstr(text, words)) {
        fail_msg("expected \"%s\" in:\n%s", words, text);
    }
}

static void expect_not(const char *text, const char *words)
{
    if (strstr(text, words)) {
        fail_msg("did not expect \"%s\" in:\n%s", words, text);
    }
}

/* ---- a suspending call before any loop exists ----------------------------------------------- */

static void before_any_loop_names_the_call(void **state)
{
    (void)state;
    assert_null(simul_loop_current());
    setenv("SIMUL_DEBUG", "1", 1);
    test_capture cap;
    test_capture_begin(&cap);
    assert_int_equal(simul_sleep(0.01), -EPERM);
    simul_stream *s = NULL;
    assert_int_equal(simul_open_connection("127.0.0.1", "1", &s), -EPERM);
    char *text = test_capture_end(&cap);
    unsetenv("SIMUL_DEBUG");
    expect(text, "simul: simul_sleep() called before any event loop exists on this thread");
    expect(text, "it returns -EPERM");
    expect(text, "simul_run(main_task, arg)");
    expect(text, "simul_open_connection() called before any event loop");
    expect_not(text, "simul_sleep_until_ns");
    expect_not(text, "simul_tcp_connect");
    free(text);

    /* Without SIMUL_DEBUG: the same -EPERM, quietly. */
    test_capture_begin(&cap);
    assert_int_equal(simul_sleep(0.01), -EPERM);
    text = test_capture_end(&cap);
    assert_string_equal(text, "");
    free(text);
}

/* ---- outside a task, with a loop: the call the user made is named --------------------------- */

static int thread_job(void *arg)
{
    (void)arg;
    return 0;
}

static void ignore_data(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
}

static void from_callback(void *arg)
{
    int *rcs = arg;
    rcs[0] = simul_sleep(0.01);
    simul_stream *s = NULL;
    rcs[1] = simul_open_connection("127.0.0.1", "1", &s);
    int r = 0;
    rcs[2] = simul_to_thread(thread_job, NULL, &r);
    simul_condition *c = NULL;
    assert_int_equal(simul_condition_new(&c, NULL), 0);
    rcs[3] = simul_condition_acquire(c);
    simul_condition_free(c);
    simul_transport *t = NULL;
    static const simul_protocol proto = {.data_received = ignore_data};
    rcs[4] = simul_create_connection("127.0.0.1", "1", &proto, NULL, &t);
}

static int call_from_callback(void *arg)
{
    simul_handle h;
    assert_int_equal(simul_call_soon(from_callback, arg, &h), 0);
    return simul_sleep(0.01);
}

static void outside_task_names_the_user_call(void **state)
{
    (void)state;
    unsetenv("SIMUL_DEBUG");
    test_capture cap;
    test_capture_begin(&cap);
    simul_loop *loop;
    assert_int_equal(simul_loop_new(&loop), 0);
    assert_int_equal(simul_loop_set_debug(loop, true), 0);
    /* On the loop's thread, outside simul_loop_run. */
    assert_int_equal(simul_sleep(0.01), -EPERM);
    int rcs[5] = {1, 1, 1, 1, 1};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, call_from_callback, rcs, NULL), 0);
    int r = -1;
    assert_int_equal(simul_loop_run_until_complete(loop, t, &r), 0);
    assert_int_equal(simul_loop_close(loop), 0);
    char *text = test_capture_end(&cap);
    assert_int_equal(r, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rcs[i], -EPERM);
    }
    expect(text, "simul: simul_sleep() called outside a task");
    expect(text, "simul_open_connection() called outside a task");
    expect(text, "simul_to_thread() called outside a task");
    expect(text, "simul_condition_acquire() called outside a task");
    expect(text, "simul_create_connection() called outside a task");
    expect(text, "it must run inside a task (simul_task_spawn)");
    /* Never the internal calls they delegate to. */
    expect_not(text, "simul_sleep_until_ns");
    expect_not(text, "simul_tcp_connect");
    expect_not(text, "simul_to_thread_discard");
    expect_not(text, "simul_lock_acquire");
    free(text);
}

/* ---- a handle joined twice ------------------------------------------------------------------ */

static int return_7(void *arg)
{
    (void)arg;
    return 7;
}

static int join_twice(void *arg)
{
    (void)arg;
    simul_task *t;
    simul_task_opts o = {.name = "joined-once"};
    assert_int_equal(simul_task_spawn(&t, return_7, NULL, &o), 0);
    int r = 0;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, 7);
    assert_int_equal(simul_task_join(t, &r), -EINVAL);
    assert_int_equal(simul_gather(&t, 1, NULL), -EINVAL);
    assert_int_equal(simul_wait_for(t, 1.0, &r), -EINVAL);
    assert_int_equal(simul_task_detach(t), -EINVAL);
    simul_task *d;
    o.name = "detached-then-joined";
    assert_int_equal(simul_task_spawn(&d, return_7, NULL, &o), 0);
    assert_int_equal(simul_task_detach(d), 0);
    assert_int_equal(simul_sleep(0.001), 0);
    assert_int_equal(simul_task_join(d, &r), -EINVAL);
    return 0;
}

static char *run_task(simul_task_fn fn, void *arg, bool debug, double threshold)
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
    simul_task_opts o = {.name = "test-main"};
    assert_int_equal(simul_task_spawn(&t, fn, arg, &o), 0);
    int r = -1;
    assert_int_equal(simul_loop_run_until_complete(loop, t, &r), 0);
    assert_int_equal(simul_task_count(), 0);
    assert_int_equal(simul_loop_close(loop), 0);
    char *text = test_capture_end(&cap);
    assert_int_equal(r, 0);
    return text;
}

static void join_twice_reported(void **state)
{
    (void)state;
    char *text = run_task(join_twice, NULL, true, 0);
    expect(text, "simul: simul_task_join(): task 'joined-once' was already joined or detached");
    expect(text, "simul_gather(): task 'joined-once' was already joined or detached");
    expect(text, "simul_wait_for(): task 'joined-once' was already joined or detached");
    expect(text, "simul_task_detach(): task 'joined-once' was already joined or detached");
    expect(text, "simul_task_join(): task 'detached-then-joined' was already joined or detached");
    expect(text, "a task cannot be awaited twice");
    free(text);
    /* Not in debug mode: the same -EINVAL, quietly. */
    text = run_task(join_twice, NULL, false, 0);
    assert_string_equal(text, "");
    free(text);
}

/* ---- scopes still open when their task returns ---------------------------------------------- */

static int leave_deadline_open(void *arg)
{
    (void)arg;
    simul_scope s;
    assert_int_equal(simul_scope_timeout(&s, 0.01), 0);
    return 0; /* forgot simul_scope_end */
}

static int leave_shield_open(void *arg)
{
    (void)arg;
    simul_scope a, b;
    assert_int_equal(simul_scope_timeout(&a, 10.0), 0);
    assert_int_equal(simul_scope_shield(&b), 0);
    return 0;
}

static int spawn_leaky(void *arg)
{
    (void)arg;
    simul_task *t[2];
    simul_task_opts o1 = {.name = "leaky-deadline"};
    simul_task_opts o2 = {.name = "leaky-shield"};
    assert_int_equal(simul_task_spawn(&t[0], leave_deadline_open, NULL, &o1), 0);
    assert_int_equal(simul_task_spawn(&t[1], leave_shield_open, NULL, &o2), 0);
    int r[2] = {-1, -1};
    assert_int_equal(simul_gather(t, 2, r), 0);
    assert_int_equal(r[0], 0);
    assert_int_equal(r[1], 0);
    /* The forgotten 10 ms deadline is gone with its task; ours is untouched. */
    return simul_sleep(0.03);
}

static void scope_left_open_reported(void **state)
{
    (void)state;
    char *text = run_task(spawn_leaky, NULL, true, 0);
    expect(text, "simul: task 'leaky-deadline' returned with 1 scope(s) still open (the innermost "
                 "a deadline scope, from simul_scope_timeout / simul_scope_deadline_ns)");
    expect(text, "task 'leaky-shield' returned with 2 scope(s) still open (the innermost a shield "
                 "scope, from simul_scope_shield)");
    expect(text, "simul_scope_end() on every path out");
    free(text);
    text = run_task(spawn_leaky, NULL, false, 0);
    assert_string_equal(text, "");
    free(text);
}

/* ---- a task that spins without suspending: reported while it still spins -------------------- */

typedef struct spin {
    simul_event *e;
    bool seen_while_spinning;
    long waits;
} spin;

/* Whether the captured stderr (fd 2, a temporary file) holds `words` yet. */
static bool stderr_has(const char *words)
{
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0 || st.st_size <= 0) {
        return false;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    ssize_t got = pread(STDERR_FILENO, buf, (size_t)st.st_size, 0);
    buf[got > 0 ? got : 0] = '\0';
    bool has = strstr(buf, words) != NULL;
    free(buf);
    return has;
}

static int spinner(void *arg)
{
    spin *sp = arg;
    /* The new user's bug: waiting in a loop on an event that is already set never suspends.
     * Bounded: it stops once the watchdog's report is there (or after 10 s: the test fails). */
    double end = test_clock() + 10.0;
    while (test_clock() < end) {
        assert_int_equal(simul_event_wait(sp->e), 0);
        sp->waits++;
        if ((sp->waits & 1023) == 0 && stderr_has("'spinner' has been running for")) {
            sp->seen_while_spinning = true;
            break;
        }
    }
    return 0;
}

static int waiter(void *arg)
{
    (void)arg;
    return simul_sleep(0.001);
}

static int spin_case(void *arg)
{
    spin *sp = arg;
    assert_int_equal(simul_event_new(&sp->e), 0);
    assert_int_equal(simul_event_set(sp->e), 0);
    simul_task *t[2];
    simul_task_opts o1 = {.name = "spinner"}, o2 = {.name = "waiter"};
    assert_int_equal(simul_task_spawn(&t[1], waiter, NULL, &o2), 0);
    assert_int_equal(simul_task_spawn(&t[0], spinner, sp, &o1), 0);
    assert_int_equal(simul_gather(t, 2, NULL), 0);
    simul_event_free(sp->e);
    return 0;
}

static void spinning_task_reported_while_it_spins(void **state)
{
    (void)state;
    spin sp = {0};
    char *text = run_task(spin_case, &sp, true, 0.02);
    assert_true(sp.seen_while_spinning);
    expect(text, "simul: task 'spinner' has been running for ");
    expect(text, "ms without suspending and still is (threshold 20.0 ms)");
    expect(text, "simul_event_wait on an event already set");
    expect(text, "simul_yield()");
    /* And once it suspends, how long it held the loop. */
    expect(text, "task 'spinner' held the loop for");
    expect_not(text, "'waiter'");
    free(text);
}

/* ---- a task cancelled at shutdown ----------------------------------------------------------- */

static int sleep_forever(void *arg)
{
    (void)arg;
    return simul_sleep(INFINITY);
}

static int main_leaves_a_task(void *arg)
{
    (void)arg;
    simul_task *t; /* a handle, never joined: main returns first */
    simul_task_opts o = {.name = "left-running"};
    assert_int_equal(simul_task_spawn(&t, sleep_forever, NULL, &o), 0);
    return simul_sleep(0.001);
}

static void shutdown_cancel_is_not_a_failure(void **state)
{
    (void)state;
    setenv("SIMUL_DEBUG", "1", 1);
    test_capture cap;
    test_capture_begin(&cap);
    assert_int_equal(simul_run(main_leaves_a_task, NULL), 0);
    char *text = test_capture_end(&cap);
    unsetenv("SIMUL_DEBUG");
    expect(text, "simul: task 'left-running' was still running when the main task returned, so "
                 "the shutdown cancelled it (as asyncio.run does)");
    expect_not(text, "failed with ECANCELED");
    expect_not(text, "failed");
    free(text);
    /* Not in debug mode: nothing (asyncio.run cancels leftovers silently). */
    test_capture_begin(&cap);
    assert_int_equal(simul_run(main_leaves_a_task, NULL), 0);
    text = test_capture_end(&cap);
    assert_string_equal(text, "");
    free(text);
}

/* ---- a process that cannot start: the message names the program or the directory ----------- */

static int start_missing(void *arg)
{
    (void)arg;
    simul_process *p = NULL;
    const char *const argv1[] = {"/nonexistent/simul-test-prog", NULL};
    simul_process_opts o = {.argv = argv1};
    assert_int_equal(simul_process_exec(&o, &p), -ENOENT);
    const char *const argv2[] = {"simul-test-no-such-program", NULL};
    o.argv = argv2;
    assert_int_equal(simul_process_exec(&o, &p), -ENOENT);
    const char *const argv3[] = {"/bin/true", NULL};
    o.argv = argv3;
    o.cwd = "/nonexistent/simul-test-dir";
    assert_true(simul_process_exec(&o, &p) < 0);
    return 0;
}

static void process_start_failure_names_what(void **state)
{
    (void)state;
    char *text = run_task(start_missing, NULL, true, 0);
    expect(text, "simul: simul_process_exec(): cannot start '/nonexistent/simul-test-prog': ");
    expect(text, "cannot start 'simul-test-no-such-program': ");
    expect(text, "(not found in PATH)");
    expect(text, "cannot start '/bin/true': its working directory '/nonexistent/simul-test-dir' "
                 "is not usable");
    free(text);
    text = run_task(start_missing, NULL, false, 0);
    assert_string_equal(text, "");
    free(text);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(before_any_loop_names_the_call),
    cmocka_unit_test(outside_task_names_the_user_call),
    cmocka_unit_test(join_twice_reported),
    cmocka_unit_test(scope_left_open_reported),
    cmocka_unit_test(spinning_task_reported_while_it_spins),
    cmocka_unit_test(shutdown_cancel_is_not_a_failure),
    cmocka_unit_test(process_start_failure_names_what),
};

SIMUL_TEST_MAIN("test_debug_messages", tests)
