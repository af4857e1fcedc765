/* test_auto_release.c — the `async with` idiom (SIMUL_SCOPE_AUTO, SIMUL_LOCK_AUTO,
 * SIMUL_SEMAPHORE_AUTO): scopes end and locks and semaphores are given back on every path out of
 * the block (return, goto, break, error path), and never twice. */
#include "test_main_helpers.h"

static int early_return(simul_lock *lock, simul_semaphore *sem, bool fail)
{
    simul_scope s SIMUL_SCOPE_AUTO = SIMUL_SCOPE_INIT;
    int rc = simul_scope_timeout(&s, 5.0);
    if (rc < 0)
        return rc;
    simul_lock *held SIMUL_LOCK_AUTO = NULL;
    if ((rc = simul_lock_acquire(lock)) < 0)
        return rc;
    held = lock;
    simul_semaphore *unit SIMUL_SEMAPHORE_AUTO = NULL;
    if ((rc = simul_semaphore_acquire(sem)) < 0)
        return rc;
    unit = sem;
    if (fail)
        return -EIO; /* everything above is let go here */
    return simul_sleep(0.001);
}

static int loop_with_break(simul_lock *lock)
{
    for (int i = 0;; i++) {
        simul_lock *held SIMUL_LOCK_AUTO = NULL;
        int rc = simul_lock_acquire(lock);
        if (rc < 0)
            return rc;
        held = lock;
        if (i == 3)
            break; /* released here too, once */
    }
    return 0;
}

static int nested_scopes_expire(void)
{
    simul_scope outer SIMUL_SCOPE_AUTO = SIMUL_SCOPE_INIT;
    assert_int_equal(simul_scope_timeout(&outer, 10.0), 0);
    {
        simul_scope inner SIMUL_SCOPE_AUTO = SIMUL_SCOPE_INIT;
        assert_int_equal(simul_scope_timeout(&inner, 0.005), 0);
        assert_int_equal(simul_sleep(1.0), -ETIMEDOUT);
        /* Ended by hand to read "expired": the clean-up leaves it alone. */
        assert_int_equal(simul_scope_end(&inner), 1);
    }
    /* Only the outer scope is left: a sleep well inside its deadline works. */
    return simul_sleep(0.001);
}

static int case_main(void *arg)
{
    (void)arg;
    simul_lock *lock;
    simul_semaphore *sem;
    assert_int_equal(simul_lock_new(&lock), 0);
    assert_int_equal(simul_semaphore_new(&sem, 1), 0);
    assert_int_equal(early_return(lock, sem, true), -EIO);
    assert_false(simul_lock_locked(lock));
    assert_int_equal(simul_semaphore_value(sem), 1);
    assert_int_equal(early_return(lock, sem, false), 0);
    assert_false(simul_lock_locked(lock));
    assert_int_equal(simul_semaphore_value(sem), 1);
    assert_int_equal(loop_with_break(lock), 0);
    assert_false(simul_lock_locked(lock));
    assert_int_equal(nested_scopes_expire(), 0);
    /* No scope is left open on this task: a long deadline-free sleep is cancelled, not timed out. */
    simul_scope probe;
    assert_int_equal(simul_scope_timeout(&probe, 0.002), 0);
    assert_int_equal(simul_sleep(1.0), -ETIMEDOUT);
    assert_int_equal(simul_scope_end(&probe), 1);
    assert_int_equal(simul_sleep(0.001), 0);
    /* A lock the scope's clean-up let go is free for another task at once. */
    assert_int_equal(simul_lock_try_acquire(lock), 0);
    assert_int_equal(simul_lock_release(lock), 0);
    simul_semaphore_free(sem);
    simul_lock_free(lock);
    return 0;
}

static void auto_release_on_every_path(void **state)
{
    (void)state;
    setenv("SIMUL_DEBUG", "1", 1);
    test_capture cap;
    test_capture_begin(&cap);
    assert_int_equal(simul_run(case_main, NULL), 0);
    char *text = test_capture_end(&cap);
    unsetenv("SIMUL_DEBUG");
    assert_string_equal(text, ""); /* debug mode saw no scope left open, nothing held */
    free(text);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(auto_release_on_every_path),
};

SIMUL_TEST_MAIN("test_auto_release", tests)
