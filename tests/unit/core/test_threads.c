/* test_threads.c — what other threads may and may not do with a loop: call_soon_threadsafe from
 * many threads (all run, per-thread order kept, the idle loop wakes), close/run from a thread
 * that is not the loop's (-EPERM).
 */
#include <pthread.h>

#include "test_main_helpers.h"

static void stop_cb(void *arg)
{
    simul_loop_stop(arg);
}

static void new_loop(simul_loop **loop)
{
    *loop = NULL;
    assert_int_equal(simul_loop_new(loop), 0);
    assert_non_null(*loop);
}

static void close_loop(simul_loop *loop)
{
    assert_int_equal(simul_task_count(), 0);
    assert_int_equal(simul_loop_close(loop), 0);
    assert_null(simul_loop_current());
}

static void *close_from_thread(void *arg)
{
    return (void *)(intptr_t)simul_loop_close(arg);
}

static void *run_from_thread(void *arg)
{
    return (void *)(intptr_t)simul_loop_run(arg);
}

static void loop_close_and_run_from_other_thread_eperm(void **state)
{
    (void)state;
    simul_loop *loop;
    new_loop(&loop);
    pthread_t th;
    void *ret;
    assert_int_equal(pthread_create(&th, NULL, close_from_thread, loop), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, -EPERM);
    assert_int_equal(pthread_create(&th, NULL, run_from_thread, loop), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, -EPERM);
    close_loop(loop);
}

/* ---- call_soon_threadsafe ---------------------------------------------------------------- */

enum { POST_THREADS = 4, POSTS_PER_THREAD = 10000 };

typedef struct post {
    int thread;
    int seq;
} post;

typedef struct post_state {
    simul_loop *loop;
    post posts[POST_THREADS][POSTS_PER_THREAD];
    int next_seq[POST_THREADS]; /* loop thread only */
    int out_of_order;
    int received;
    int post_errors; /* written by the posting threads */
    pthread_t loop_thread;
    int wrong_thread;
} post_state;

static post_state *posts_state;

static void post_cb(void *arg)
{
    post *p = arg;
    post_state *s = posts_state;
    if (!pthread_equal(pthread_self(), s->loop_thread)) {
        s->wrong_thread++;
    }
    if (p->seq != s->next_seq[p->thread]) {
        s->out_of_order++;
    }
    s->next_seq[p->thread] = p->seq + 1;
    if (++s->received == POST_THREADS * POSTS_PER_THREAD) {
        simul_loop_stop(s->loop);
    }
}

static void *poster(void *arg)
{
    post *mine = arg;
    int errors = 0;
    for (int i = 0; i < POSTS_PER_THREAD; i++) {
        if (simul_loop_call_soon_threadsafe(posts_state->loop, post_cb, &mine[i]) != 0) {
            errors++;
        }
    }
    return (void *)(intptr_t)errors;
}

static void watchdog_cb(void *arg)
{
    *(int *)arg = 1;
    simul_loop_stop(simul_loop_current());
}

static void call_soon_threadsafe_from_threads(void **state)
{
    (void)state;
    post_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    posts_state = s;
    new_loop(&s->loop);
    s->loop_thread = pthread_self();
    assert_int_equal(simul_loop_call_soon_threadsafe(s->loop, NULL, NULL), -EINVAL);
    pthread_t th[POST_THREADS];
    for (int t = 0; t < POST_THREADS; t++) {
        for (int i = 0; i < POSTS_PER_THREAD; i++) {
            s->posts[t][i] = (post){t, i};
        }
        assert_int_equal(pthread_create(&th[t], NULL, poster, s->posts[t]), 0);
    }
    int fired = 0;
    simul_handle watchdog = {0};
    assert_int_equal(simul_call_later(20.0, watchdog_cb, &fired, &watchdog), 0);
    assert_int_equal(simul_loop_run(s->loop), 0);
    for (int t = 0; t < POST_THREADS; t++) {
        void *ret;
        assert_int_equal(pthread_join(th[t], &ret), 0);
        s->post_errors += (int)(intptr_t)ret;
    }
    assert_int_equal(fired, 0);
    assert_int_equal(s->post_errors, 0);
    assert_int_equal(s->received, POST_THREADS * POSTS_PER_THREAD);
    assert_int_equal(s->out_of_order, 0);
    assert_int_equal(s->wrong_thread, 0);
    for (int t = 0; t < POST_THREADS; t++) {
        assert_int_equal(s->next_seq[t], POSTS_PER_THREAD);
    }
    assert_int_equal(simul_handle_cancel(watchdog), 0);
    close_loop(s->loop);
    free(s);
}

/* The loop sleeps in its poll with nothing to do; a post from another thread wakes it. */
static void *late_poster(void *arg)
{
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    return (void *)(intptr_t)simul_loop_call_soon_threadsafe(arg, stop_cb, arg);
}

static void call_soon_threadsafe_wakes_idle_loop(void **state)
{
    (void)state;
    simul_loop *loop;
    new_loop(&loop);
    int fired = 0;
    simul_handle watchdog = {0};
    assert_int_equal(simul_call_later(20.0, watchdog_cb, &fired, &watchdog), 0);
    pthread_t th;
    double t0 = test_clock(); /* before the thread starts its 50 ms: a stall cannot fake "early" */
    assert_int_equal(pthread_create(&th, NULL, late_poster, loop), 0);
    assert_int_equal(simul_loop_run(loop), 0);
    double elapsed = test_clock() - t0;
    void *ret;
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, 0);
    assert_int_equal(fired, 0);
    assert_true(elapsed >= 0.04);
    assert_true(elapsed < 10.0); /* woken by the post, not by the 20 s watchdog (fired == 0 too) */
    assert_int_equal(simul_handle_cancel(watchdog), 0);
    close_loop(loop);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(loop_close_and_run_from_other_thread_eperm),
    cmocka_unit_test(call_soon_threadsafe_from_threads),
    cmocka_unit_test(call_soon_threadsafe_wakes_idle_loop),
};

SIMUL_TEST_MAIN("test_threads", tests)
