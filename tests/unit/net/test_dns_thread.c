/* test_dns_thread.c — name resolution off the loop: numeric hosts inline, names on the
 * resolver's own threads, EAI errors, cancellation and deadlines while queued / running / already
 * answered, many lookups at once (never more than 4 threads), idle threads exiting, and a loop
 * closed while its abandoned lookup still runs. Never depends on external DNS: slow or failing
 * lookups come from a test hook that replaces getaddrinfo in the workers.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "test_main_helpers.h"

/* Test hooks of src/io/dns.c (the tests link the static library). */
typedef int (*lookup_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
void simul__dns_test_set(lookup_fn fn, int64_t idle_after_ns);
void simul__dns_test_counts(int *threads, int *idle, int *pending, unsigned long *finished);

static int pool_threads(void)
{
    int th, idle, pend;
    unsigned long fin;
    simul__dns_test_counts(&th, &idle, &pend, &fin);
    return th;
}

static int pool_pending(void)
{
    int th, idle, pend;
    unsigned long fin;
    simul__dns_test_counts(&th, &idle, &pend, &fin);
    return pend;
}

static unsigned long pool_finished(void)
{
    int th, idle, pend;
    unsigned long fin;
    simul__dns_test_counts(&th, &idle, &pend, &fin);
    return fin;
}

/* Waits (the thread, not a task) until no request is left in the pool; false after 5 s. */
static bool pool_drained(void)
{
    double end = test_clock() + 5.0;
    while (pool_pending() != 0) {
        if (test_clock() > end)
            return false;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return true;
}

/* ---- the fake resolver ----------------------------------------------------------------------- */
/* "gate.test" blocks until the gate opens; "fail.test" fails with the code in fake_fail
 * (EAI_SYSTEM with errno fake_errno); "sleep.test" sleeps 5 ms; anything else answers as
 * 127.0.0.1. Counts concurrent calls. */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int in_hook, max_in_hook, hook_calls;
static atomic_int fake_fail = EAI_NONAME, fake_errno;

static void gate_set(bool open)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = open;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static int fake_lookup(const char *host, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    int now = atomic_fetch_add(&in_hook, 1) + 1;
    atomic_fetch_add(&hook_calls, 1);
    int max = atomic_load(&max_in_hook);
    while (now > max && !atomic_compare_exchange_weak(&max_in_hook, &max, now)) {
    }
    int rc;
    if (host && strcmp(host, "gate.test") == 0) {
        pthread_mutex_lock(&gate_mu);
        while (!gate_open)
            pthread_cond_wait(&gate_cv, &gate_mu);
        pthread_mutex_unlock(&gate_mu);
    } else if (host && strcmp(host, "sleep.test") == 0) {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    if (host && strcmp(host, "fail.test") == 0) {
        errno = atomic_load(&fake_errno);
        rc = atomic_load(&fake_fail);
    } else {
        struct addrinfo h = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
        if (hints)
            h.ai_family = hints->ai_family;
        rc = getaddrinfo("127.0.0.1", service, &h, res);
    }
    atomic_fetch_sub(&in_hook, 1);
    return rc;
}

static void use_fake(void)
{
    gate_set(false);
    atomic_store(&hook_calls, 0);
    atomic_store(&max_in_hook, 0);
    simul__dns_test_set(fake_lookup, 0);
}

static const struct addrinfo stream_hints = {.ai_socktype = SOCK_STREAM};

/* ---- numeric hosts --------------------------------------------------------------------------- */

SIMUL_TASK_TEST(numeric_hosts_answer_inline)
{
    (void)arg;
    struct addrinfo *res = NULL;
    assert_int_equal(simul_getaddrinfo("127.0.0.1", "8080", &stream_hints, &res), 0);
    assert_non_null(res);
    assert_int_equal(res->ai_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), 8080);
    assert_int_equal(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    simul_freeaddrinfo(res);

    res = NULL;
    assert_int_equal(simul_getaddrinfo("::1", "443", &stream_hints, &res), 0);
    assert_non_null(res);
    assert_int_equal(res->ai_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)res->ai_addr)->sin6_port), 443);
    simul_freeaddrinfo(res);

    /* host NULL (passive): the wildcard, still inline. */
    struct addrinfo passive = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    assert_int_equal(simul_getaddrinfo(NULL, "0", &passive, &res), 0);
    assert_non_null(res);
    simul_freeaddrinfo(res);
    simul_freeaddrinfo(NULL);

    /* None of these needed a thread. */
    assert_int_equal(pool_threads(), 0);
    assert_int_equal(pool_pending(), 0);

    /* Still a cancellation point inside a task. */
    simul_task_cancel(simul_task_current());
    assert_int_equal(simul_getaddrinfo("127.0.0.1", "1", NULL, &res), -ECANCELED);
    assert_null(res);
    return 0;
}

static void numeric_outside_a_task(void **state)
{
    (void)state;
    struct addrinfo *res = NULL;
    assert_int_equal(simul_getaddrinfo("127.0.0.1", "80", NULL, &res), 0);
    assert_non_null(res);
    simul_freeaddrinfo(res);
    /* A name needs a task to wait in. */
    res = (struct addrinfo *)&res;
    assert_int_equal(simul_getaddrinfo("localhost", "80", NULL, &res), -EPERM);
    assert_null(res);
    assert_int_equal(simul_getaddrinfo("127.0.0.1", "80", NULL, NULL), -EINVAL);
    assert_int_equal(pool_threads(), 0);
}

/* ---- names -------------------------------------------------------------------------------- */

SIMUL_TASK_TEST(localhost_resolves_on_a_worker)
{
    (void)arg;
    struct addrinfo *res = NULL;
    simul_scope sc; /* bounded even on a host whose resolver misbehaves */
    assert_int_equal(simul_scope_timeout(&sc, 10.0), 0);
    int rc = simul_getaddrinfo("localhost", "80", &stream_hints, &res);
    simul_scope_end(&sc);
    assert_int_equal(rc, 0);
    assert_non_null(res);
    int n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next, n++) {
        if (ai->ai_family == AF_INET) {
            struct sockaddr_in *s = (struct sockaddr_in *)ai->ai_addr;
            assert_int_equal(ntohl(s->sin_addr.s_addr) >> 24, 127);
            assert_int_equal(ntohs(s->sin_port), 80);
        } else {
            assert_int_equal(ai->ai_family, AF_INET6);
            struct sockaddr_in6 *s = (struct sockaddr_in6 *)ai->ai_addr;
            assert_true(IN6_IS_ADDR_LOOPBACK(&s->sin6_addr));
        }
    }
    assert_true(n >= 1);
    simul_freeaddrinfo(res);
    /* It took a thread of the resolver's own pool, which is still there (idle). */
    int th = pool_threads();
    assert_true(th >= 1 && th <= 4);
    assert_int_equal(pool_pending(), 0);
    return 0;
}

SIMUL_TASK_TEST(unresolvable_names_give_eai_errors)
{
    (void)arg;
    /* A guaranteed EAI_NONAME without any name service: AI_NUMERICHOST with a name. */
    struct addrinfo numeric = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = simul_getaddrinfo("no-such-host", "80", &numeric, &res);
    assert_int_equal(rc, SIMUL_EAI(EAI_NONAME));
    assert_null(res);
    assert_true(rc < 0);
    assert_true(simul_is_eai(rc));
    assert_string_equal(simul_errname(rc), "EAI_NONAME");
    assert_string_equal(simul_errname(-rc), "EAI_NONAME");
    assert_string_equal(simul_strerror(rc), gai_strerror(EAI_NONAME));
    assert_true(strlen(simul_strerror(rc)) > 5);
    assert_string_not_equal(simul_strerror(rc), "Unknown error");

    /* The same through a worker (the fake resolver says so). */
    use_fake();
    atomic_store(&fake_fail, EAI_NONAME);
    assert_int_equal(simul_getaddrinfo("fail.test", "80", NULL, &res), SIMUL_EAI(EAI_NONAME));
    assert_null(res);
    atomic_store(&fake_fail, EAI_AGAIN);
    rc = simul_getaddrinfo("fail.test", "80", NULL, &res);
    assert_int_equal(rc, SIMUL_EAI(EAI_AGAIN));
    assert_string_equal(simul_errname(rc), "EAI_AGAIN");
    /* EAI_SYSTEM carries errno from the worker thread; EAI_MEMORY is -ENOMEM. */
    atomic_store(&fake_fail, EAI_SYSTEM);
    atomic_store(&fake_errno, EMFILE);
    assert_int_equal(simul_getaddrinfo("fail.test", "80", NULL, &res), -EMFILE);
    atomic_store(&fake_errno, 0);
    assert_int_equal(simul_getaddrinfo("fail.test", "80", NULL, &res), -EIO);
    atomic_store(&fake_fail, EAI_MEMORY);
    assert_int_equal(simul_getaddrinfo("fail.test", "80", NULL, &res), -ENOMEM);
    assert_null(res);

    /* Plain errnos are not EAI codes, and EAI codes do not collide with them. */
    assert_false(simul_is_eai(-ECONNREFUSED));
    assert_false(simul_is_eai(0));
    assert_false(simul_is_eai(-SIMUL_EAI_BASE));
    assert_true(simul_is_eai(SIMUL_EAI(EAI_SERVICE)));
    assert_string_equal(simul_errname(-ECONNREFUSED), "ECONNREFUSED");
    assert_string_equal(simul_errname(SIMUL_EAI(EAI_SERVICE)), "EAI_SERVICE");
    assert_true(pool_drained());
    return 0;
}

/* ---- cancellation and deadlines -------------------------------------------------------------- */

typedef struct lookup_job {
    const char *host;
    int rc;
    double took;
} lookup_job;

static int lookup_task(void *arg)
{
    lookup_job *j = arg;
    struct addrinfo *res = NULL;
    double t0 = test_clock();
    j->rc = simul_getaddrinfo(j->host, "80", NULL, &res);
    j->took = test_clock() - t0;
    if (j->rc == 0) {
        assert_non_null(res);
        simul_freeaddrinfo(res);
    } else {
        assert_null(res);
    }
    return j->rc;
}

/* Yields until the fake resolver has `n` calls in progress (bounded). */
static void wait_in_hook(int n)
{
    double end = test_clock() + 5.0;
    while (atomic_load(&in_hook) < n) {
        assert_true(test_clock() < end);
        assert_int_equal(simul_sleep(0.001), 0);
    }
}

SIMUL_TASK_TEST(cancel_while_lookup_runs)
{
    (void)arg;
    use_fake();
    lookup_job j = {.host = "gate.test"};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, lookup_task, &j, NULL), 0);
    wait_in_hook(1);
    assert_int_equal(pool_pending(), 1);
    assert_int_equal(simul_task_cancel(t), 0);
    int r = 0;
    double t0 = test_clock();
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_true(test_clock() - t0 < 0.5); /* at once, not when the lookup ends */
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(j.rc, -ECANCELED);
    /* The worker still holds the request; it frees it when the lookup returns. */
    assert_int_equal(pool_pending(), 1);
    gate_set(true);
    assert_true(pool_drained());
    return 0;
}

SIMUL_TASK_TEST(deadline_while_lookup_runs)
{
    (void)arg;
    use_fake();
    simul_scope sc;
    assert_int_equal(simul_scope_timeout(&sc, 0.05), 0);
    struct addrinfo *res = NULL;
    double t0 = test_clock();
    int rc = simul_getaddrinfo("gate.test", "80", NULL, &res);
    double took = test_clock() - t0;
    assert_int_equal(simul_scope_end(&sc), 1);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_null(res);
    assert_true(took >= 0.04 && took < 1.0);
    gate_set(true);
    assert_true(pool_drained());
    /* The pool works on afterwards. */
    assert_int_equal(simul_getaddrinfo("other.test", "80", NULL, &res), 0);
    simul_freeaddrinfo(res);
    return 0;
}

SIMUL_TASK_TEST(cancel_while_queued)
{
    (void)arg;
    use_fake();
    /* Four lookups hold every worker; the fifth waits in the queue. */
    lookup_job jobs[5];
    simul_task *t[5];
    for (int i = 0; i < 5; i++) {
        jobs[i] = (lookup_job){.host = "gate.test"};
        assert_int_equal(simul_task_spawn(&t[i], lookup_task, &jobs[i], NULL), 0);
    }
    wait_in_hook(4);
    assert_int_equal(pool_threads(), 4);
    assert_int_equal(pool_pending(), 5);
    assert_int_equal(atomic_load(&in_hook), 4);
    /* Cancel the queued one: it is freed at once, no worker ever sees it. */
    assert_int_equal(simul_task_cancel(t[4]), 0);
    int r;
    assert_int_equal(simul_task_join(t[4], &r), 0);
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(pool_pending(), 4);
    gate_set(true);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(simul_task_join(t[i], &r), 0);
        assert_int_equal(r, 0);
    }
    assert_int_equal(atomic_load(&hook_calls), 4);
    assert_true(pool_drained());
    return 0;
}

SIMUL_TASK_TEST(cancel_after_answer_posted)
{
    (void)arg;
    use_fake();
    gate_set(true);
    lookup_job j = {.host = "quick.test"};
    simul_task *t;
    unsigned long before = pool_finished();
    assert_int_equal(simul_task_spawn(&t, lookup_task, &j, NULL), 0);
    assert_int_equal(simul_yield(), 0); /* the child submits and parks */
    assert_int_equal(pool_pending(), 1);
    /* Hold the loop (no suspension) until the worker has posted the answer: it now waits in
     * the loop's queue, and the cancel below races it. */
    double end = test_clock() + 5.0;
    while (pool_finished() == before)
        assert_true(test_clock() < end);
    assert_int_equal(simul_task_cancel(t), 0);
    int r = 0;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -ECANCELED);
    /* The task waited for the posted answer (one pass) and freed it: nothing left. */
    assert_int_equal(pool_pending(), 0);
    return 0;
}

enum { MANY = 300 };

SIMUL_TASK_TEST(many_concurrent_lookups)
{
    (void)arg;
    use_fake();
    static lookup_job jobs[MANY];
    static simul_task *t[MANY];
    for (int i = 0; i < MANY; i++) {
        jobs[i] = (lookup_job){.host = i % 3 ? "sleep.test" : "quick.test"};
        assert_int_equal(simul_task_spawn(&t[i], lookup_task, &jobs[i], NULL), 0);
    }
    static int results[MANY];
    double t0 = test_clock();
    assert_int_equal(simul_gather(t, MANY, results), 0);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(results[i], 0);
    /* 200 lookups of 5 ms on 4 threads: about 0.25 s; never more than 4 at once. */
    assert_true(test_clock() - t0 < 10.0);
    int max = atomic_load(&max_in_hook);
    assert_true(max >= 2 && max <= 4);
    assert_true(pool_threads() <= 4);
    assert_int_equal(atomic_load(&hook_calls), MANY);
    assert_true(pool_drained());
    return 0;
}

SIMUL_TASK_TEST(idle_workers_exit)
{
    (void)arg;
    simul__dns_test_set(fake_lookup, 50 * 1000000LL);
    gate_set(true);
    struct addrinfo *res = NULL;
    for (int round = 0; round < 2; round++) {
        /* Workers left by earlier cases (all cases in one process) go first. */
        double end = test_clock() + 5.0;
        while (pool_threads() != 0) {
            assert_true(test_clock() < end);
            assert_int_equal(simul_sleep(0.01), 0);
        }
        if (round == 1)
            break;
        assert_int_equal(simul_getaddrinfo("quick.test", "80", NULL, &res), 0);
        simul_freeaddrinfo(res);
        assert_int_equal(pool_threads(), 1);
    }
    /* A new lookup starts a new worker. */
    assert_int_equal(simul_getaddrinfo("quick.test", "80", NULL, &res), 0);
    simul_freeaddrinfo(res);
    assert_int_equal(pool_threads(), 1);
    return 0;
}

/* ---- the loop goes away while an abandoned lookup still runs --------------------------------- */

static int abandon_lookup_main(void *arg)
{
    (void)arg;
    lookup_job j = {.host = "gate.test"};
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, lookup_task, &j, NULL), 0);
    wait_in_hook(1);
    assert_int_equal(simul_task_cancel(t), 0);
    int r = 0;
    assert_int_equal(simul_task_join(t, &r), 0);
    assert_int_equal(r, -ECANCELED);
    return 0;
}

static void thread_loop_closed_while_lookup_runs(void **state)
{
    (void)state;
    use_fake();
    /* The loop is closed (and freed) with the lookup still blocked in its worker. */
    assert_int_equal(simul_test_run(abandon_lookup_main, NULL), 0);
    assert_int_equal(pool_pending(), 1);
    assert_int_equal(atomic_load(&in_hook), 1);
    /* Now it returns: the worker must drop the answer without touching the dead loop. */
    gate_set(true);
    assert_true(pool_drained());
    /* And a new loop resolves as before. */
    gate_set(false);
    assert_int_equal(simul_test_run(abandon_lookup_main, NULL), 0);
    gate_set(true);
    assert_true(pool_drained());
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(numeric_hosts_answer_inline),
    cmocka_unit_test(numeric_outside_a_task),
    cmocka_unit_test(localhost_resolves_on_a_worker),
    cmocka_unit_test(unresolvable_names_give_eai_errors),
    cmocka_unit_test(cancel_while_lookup_runs),
    cmocka_unit_test(deadline_while_lookup_runs),
    cmocka_unit_test(cancel_while_queued),
    cmocka_unit_test(cancel_after_answer_posted),
    cmocka_unit_test(many_concurrent_lookups),
    cmocka_unit_test(idle_workers_exit),
    cmocka_unit_test(thread_loop_closed_while_lookup_runs),
};

SIMUL_TEST_MAIN("test_dns_thread", tests)
