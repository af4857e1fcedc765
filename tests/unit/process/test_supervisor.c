/* test_supervisor.c — the supervisor (simul/supervisor.h) with real worker processes: this test
 * binary re-executed as its own worker (main dispatches on the supervisor's environment), whose
 * behaviour TEST_SUP_MODE picks (serve, crash after ready, never ready, ignore SIGTERM). Ready,
 * restart with the death's reason and a doubling back-off, reload (new ready before any old one
 * exits; a failed reload keeps the old ones), stop with a deadline and SIGKILL, reuseport slots,
 * systemd's LISTEN_FDS and NOTIFY_SOCKET, a foreign worker program, bad options. Every case
 * checks that no worker is left. Waits are on the supervisor's events, never on time. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "test_main_helpers.h"

/* ---- the worker: this binary again --------------------------------------------------------- */

static simul_event *w_ev;
static int w_sig;

static void w_on_sig(int sig, void *arg)
{
    (void)arg;
    w_sig = sig;
    simul_event_set(w_ev);
}

static int w_conn(simul_stream *s, void *arg)
{
    (void)arg;
    char b[32];
    int n = snprintf(b, sizeof b, "%d\n", (int)getpid());
    simul_stream_write(s, b, (size_t)n);
    simul_stream_drain(s);
    return 0;
}

static int test_worker(void *arg)
{
    (void)arg;
    const char *mode = getenv("TEST_SUP_MODE");
    mode = mode ? mode : "serve";
    if (strcmp(mode, "never_ready") == 0) {
        simul_sleep(600); /* the master kills it */
        return 9;
    }
    if (strcmp(mode, "ignore_term") == 0)
        signal(SIGTERM, SIG_IGN);
    if (strcmp(mode, "boot_fail") == 0)
        return 5; /* a bad configuration: exits before it is ever ready */
    int fds[16];
    int n = simul_worker_sockets(fds, 16);
    if (n <= 0)
        return 20;
    if (simul_event_new(&w_ev) < 0)
        return 21;
    if (strcmp(mode, "ignore_term") != 0)
        simul_add_signal_handler(SIGTERM, w_on_sig, NULL);
    simul_add_signal_handler(SIGUSR2, w_on_sig, NULL);
    simul_stream_server_opts so = {.socks = fds, .n_socks = n};
    simul_server *srv;
    if (simul_start_server_opts(&so, w_conn, NULL, &srv) < 0)
        return 22;
    if (simul_worker_watchdog_start() < 0)
        return 24;
    if (simul_worker_notify_ready() != 1)
        return 23;
    const char *hang = getenv("TEST_SUP_HANG_SLOT");
    if (hang && atoi(hang) == simul_worker_slot()) {
        simul_sleep(0.05);
        for (;;)
            pause(); /* the loop is stuck: no more pings */
    }
    int rc = 0;
    if (strcmp(mode, "crash") == 0) {
        rc = 3;
    } else {
        simul_event_wait(w_ev);
        rc = w_sig == SIGUSR2 ? 7 : 0; /* retired: 7; stopped: 0 */
    }
    simul_server_close(srv);
    simul_server_free(srv);
    simul_remove_signal_handler(SIGTERM);
    simul_remove_signal_handler(SIGUSR2);
    simul_event_free(w_ev);
    return rc;
}

/* ---- the master's side: events recorded, waited for -------------------------------------- */

#define MAXEV 256
typedef struct rec {
    simul_supervisor_event ev[MAXEV];
    int n;
    simul_event *changed;
} rec;

static void on_ev(const simul_supervisor_event *ev, void *arg)
{
    rec *r = arg;
    if (r->n < MAXEV)
        r->ev[r->n++] = *ev;
    char line[192];
    simul_supervisor_event_format(ev, line, sizeof line);
    fprintf(stderr, "event: %s\n", line);
    simul_event_set(r->changed);
}

static int count(const rec *r, simul_supervisor_event_type t)
{
    int k = 0;
    for (int i = 0; i < r->n; i++)
        k += r->ev[i].type == t;
    return k;
}

/* Suspends until `want` events of type t were recorded. */
static void wait_events(rec *r, simul_supervisor_event_type t, int want)
{
    while (count(r, t) < want) {
        simul_event_clear(r->changed);
        assert_int_equal(simul_event_wait(r->changed), 0);
    }
}

static const char *self_argv[] = {"/proc/self/exe", NULL};

static simul_supervisor_opts base_opts(rec *r, int workers)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(simul_event_new(&r->changed), 0);
    return (simul_supervisor_opts){.workers = workers,
                                   .host = "127.0.0.1",
                                   .port = "0",
                                   .self_argv = self_argv,
                                   .on_event = on_ev,
                                   .event_arg = r,
                                   .retire_signal = SIGUSR2,
                                   .ready_timeout = 20,
                                   .stop_timeout = 20};
}

/* The pid a worker answers a connection with. */
static int ask_pid(int port)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    int fd = simul_tcp_connect("127.0.0.1", p);
    assert_true(fd >= 0);
    char buf[32] = {0};
    size_t have = 0;
    for (;;) {
        ssize_t n = simul_recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    simul_close(fd);
    return atoi(buf);
}

static bool gone(int pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

static void finish(simul_supervisor *s, rec *r, int *pids, int npids)
{
    simul_supervisor_free(s);
    simul_event_free(r->changed);
    for (int i = 0; i < npids; i++)
        assert_true(gone(pids[i]));
}

/* ---- cases ------------------------------------------------------------------------------ */

SIMUL_TASK_TEST(test_start_ready_stop)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "serve", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 3);
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    assert_true(simul_supervisor_port(s) > 0);
    assert_int_equal(simul_supervisor_wait_ready(s), 0);
    simul_supervisor_worker ws[8];
    assert_int_equal(simul_supervisor_workers(s, ws, 8), 3);
    int pids[3];
    for (int i = 0; i < 3; i++) {
        assert_true(ws[i].ready);
        assert_int_equal(ws[i].generation, 1);
        pids[i] = ws[i].pid;
    }
    int got = ask_pid(simul_supervisor_port(s));
    assert_true(got == pids[0] || got == pids[1] || got == pids[2]);
    assert_int_equal(simul_supervisor_stop(s, -1), 0);
    assert_int_equal(count(&r, SIMUL_SUPERVISOR_EXITED), 3);
    for (int i = 0; i < r.n; i++)
        if (r.ev[i].type == SIMUL_SUPERVISOR_EXITED) {
            assert_true(r.ev[i].expected);
            assert_int_equal(r.ev[i].status, 0);
        }
    assert_int_equal(simul_supervisor_deaths(s), 0);
    assert_int_equal(simul_supervisor_workers(s, NULL, 0), 0);
    assert_int_equal(simul_supervisor_stop(s, -1), 0); /* again: at once */
    finish(s, &r, pids, 3);
    return 0;
}

SIMUL_TASK_TEST(test_restart_after_kill)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "serve", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 2);
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    assert_int_equal(simul_supervisor_wait_ready(s), 0);
    simul_supervisor_worker ws[4];
    assert_int_equal(simul_supervisor_workers(s, ws, 4), 2);
    int victim = ws[0].pid, slot = ws[0].slot;
    assert_int_equal(kill(victim, SIGKILL), 0);
    wait_events(&r, SIMUL_SUPERVISOR_READY, 3);
    /* The death is reported with its signal, unexpected, then a restart at once. */
    int exited = -1, restart = -1;
    for (int i = 0; i < r.n; i++) {
        if (r.ev[i].type == SIMUL_SUPERVISOR_EXITED && exited < 0)
            exited = i;
        if (r.ev[i].type == SIMUL_SUPERVISOR_RESTART && restart < 0)
            restart = i;
    }
    assert_true(exited >= 0 && restart > exited);
    assert_int_equal(r.ev[exited].pid, victim);
    assert_int_equal(r.ev[exited].status, -SIGKILL);
    assert_false(r.ev[exited].expected);
    assert_int_equal(r.ev[restart].slot, slot);
    assert_true(r.ev[restart].delay == 0);
    char line[192];
    simul_supervisor_event_format(&r.ev[exited], line, sizeof line);
    assert_non_null(strstr(line, "killed by signal 9 (SIGKILL)"));
    assert_int_equal(simul_supervisor_deaths(s), 1);
    assert_int_equal(simul_supervisor_workers(s, ws, 4), 2);
    int pids[3] = {victim, ws[0].pid, ws[1].pid};
    assert_true(ws[0].pid != victim && ws[1].pid != victim);
    assert_int_equal(simul_supervisor_stop(s, -1), 0);
    finish(s, &r, pids, 3);
    return 0;
}

SIMUL_TASK_TEST(test_backoff_doubles)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "crash", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 1);
    o.backoff_min = 0.01;
    o.backoff_max = 0.04;
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    wait_events(&r, SIMUL_SUPERVISOR_RESTART, 5);
    double want[5] = {0, 0.01, 0.02, 0.04, 0.04};
    int k = 0;
    for (int i = 0; i < r.n && k < 5; i++) {
        if (r.ev[i].type == SIMUL_SUPERVISOR_EXITED) {
            assert_int_equal(r.ev[i].status, 3); /* the exit status is reported */
            assert_false(r.ev[i].expected);
        }
        if (r.ev[i].type == SIMUL_SUPERVISOR_RESTART) {
            assert_true(fabs(r.ev[i].delay - want[k]) < 1e-9);
            k++;
        }
    }
    assert_int_equal(k, 5);
    assert_true(simul_supervisor_deaths(s) >= 5);
    assert_true(simul_supervisor_stop(s, -1) >= 0);
    int pids[MAXEV], np = 0;
    for (int i = 0; i < r.n; i++)
        if (r.ev[i].type == SIMUL_SUPERVISOR_SPAWNED)
            pids[np++] = r.ev[i].pid;
    finish(s, &r, pids, np);
    setenv("TEST_SUP_MODE", "serve", 1);
    return 0;
}

SIMUL_TASK_TEST(test_reload_new_ready_before_old_exit)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "serve", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 3);
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    assert_int_equal(simul_supervisor_wait_ready(s), 0);
    simul_supervisor_worker ws[8];
    assert_int_equal(simul_supervisor_workers(s, ws, 8), 3);
    int pids[6];
    for (int i = 0; i < 3; i++)
        pids[i] = ws[i].pid;
    assert_int_equal(simul_supervisor_reload(s), 0);
    assert_int_equal(simul_supervisor_generation(s), 2);
    wait_events(&r, SIMUL_SUPERVISOR_EXITED, 3);
    /* Every gen-2 READY comes before the first gen-1 EXITED; the old ones got the retire signal
     * (their exit status 7 says so) and are not restarted. */
    int ready2 = 0;
    for (int i = 0; i < r.n; i++) {
        if (r.ev[i].type == SIMUL_SUPERVISOR_READY && r.ev[i].generation == 2)
            ready2++;
        if (r.ev[i].type == SIMUL_SUPERVISOR_EXITED) {
            assert_int_equal(ready2, 3);
            assert_int_equal(r.ev[i].generation, 1);
            assert_true(r.ev[i].expected);
            assert_int_equal(r.ev[i].status, 7);
        }
    }
    assert_int_equal(count(&r, SIMUL_SUPERVISOR_RESTART), 0);
    assert_int_equal(count(&r, SIMUL_SUPERVISOR_RELOADED), 1);
    assert_int_equal(simul_supervisor_workers(s, ws, 8), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ws[i].generation, 2);
        pids[3 + i] = ws[i].pid;
    }
    int got = ask_pid(simul_supervisor_port(s));
    assert_true(got == pids[3] || got == pids[4] || got == pids[5]);
    assert_int_equal(simul_supervisor_stop(s, -1), 0);
    finish(s, &r, pids, 6);
    return 0;
}

/* reload_batch 1: one slot at a time, each new worker ready before its slot's old one retires,
 * never more than workers + 1 processes. */
SIMUL_TASK_TEST(test_reload_one_by_one)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "serve", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 3);
    o.reload_batch = 1;
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    assert_int_equal(simul_supervisor_wait_ready(s), 0);
    int first = r.n;
    assert_int_equal(simul_supervisor_reload(s), 0);
    assert_int_equal(simul_supervisor_generation(s), 2);
    wait_events(&r, SIMUL_SUPERVISOR_EXITED, 3);
    int alive = 3, peak = 3;
    bool ready2[3] = {false, false, false};
    int pids[MAXEV], np = 0;
    for (int i = 0; i < r.n; i++) {
        const simul_supervisor_event *e = &r.ev[i];
        if (e->type == SIMUL_SUPERVISOR_SPAWNED)
            pids[np++] = e->pid;
        if (i < first)
            continue;
        if (e->type == SIMUL_SUPERVISOR_SPAWNED && ++alive > peak)
            peak = alive;
        if (e->type == SIMUL_SUPERVISOR_EXITED) {
            alive--;
            assert_int_equal(e->generation, 1);
            assert_true(ready2[e->slot]); /* its replacement was ready first */
        }
        if (e->type == SIMUL_SUPERVISOR_READY && e->generation == 2)
            ready2[e->slot] = true;
    }
    assert_true(peak <= 4);
    simul_supervisor_worker ws[8];
    assert_int_equal(simul_supervisor_workers(s, ws, 8), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ws[i].generation, 2);
    assert_int_equal(simul_supervisor_stop(s, -1), 0);
    finish(s, &r, pids, np);
    return 0;
}

/* The ready timeout of the cases whose new generation never says READY. */
#define NOT_READY_TIMEOUT 4.0

SIMUL_TASK_TEST(test_reload_fails_old_stay)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "serve", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 2);
    /* The one timeout covers the first generation's start too (a loaded machine under ASan has
     * taken more than 0.3 s to start a worker): long enough for any start, short enough that the
     * reload's hang ends soon. */
    o.ready_timeout = NOT_READY_TIMEOUT;
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    assert_int_equal(simul_supervisor_wait_ready(s), 0);
    simul_supervisor_worker ws[8];
    assert_int_equal(simul_supervisor_workers(s, ws, 8), 2);
    int pids[4] = {ws[0].pid, ws[1].pid, 0, 0};
    setenv("TEST_SUP_MODE", "never_ready", 1); /* the new generation hangs before READY */
    assert_int_equal(simul_supervisor_reload(s), -ECHILD);
    setenv("TEST_SUP_MODE", "serve", 1);
    assert_int_equal(simul_supervisor_generation(s), 1);
    assert_int_equal(count(&r, SIMUL_SUPERVISOR_RELOAD_FAILED), 1);
    assert_true(count(&r, SIMUL_SUPERVISOR_NOT_READY) >= 1);
    for (int i = 0, k = 2; i < r.n; i++)
        if (r.ev[i].type == SIMUL_SUPERVISOR_SPAWNED && r.ev[i].generation == 2 && k < 4)
            pids[k++] = r.ev[i].pid;
    /* Both old workers still serve; the new ones are gone and not restarted. */
    wait_events(&r, SIMUL_SUPERVISOR_EXITED, 2);
    assert_int_equal(simul_supervisor_workers(s, ws, 8), 2);
    assert_true((ws[0].pid == pids[0] || ws[0].pid == pids[1]) &&
                (ws[1].pid == pids[0] || ws[1].pid == pids[1]));
    int got = ask_pid(simul_supervisor_port(s));
    assert_true(got == pids[0] || got == pids[1]);
    assert_int_equal(count(&r, SIMUL_SUPERVISOR_RESTART), 0);
    assert_int_equal(simul_supervisor_stop(s, -1), 0);
    finish(s, &r, pids, 4);
    return 0;
}

static int reload_task(void *arg)
{
    return simul_supervisor_reload(arg);
}

/* An old worker that dies while a reload runs is started again if the reload fails. */
SIMUL_TASK_TEST(test_old_death_during_failed_reload)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "serve", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 2);
    o.ready_timeout = NOT_READY_TIMEOUT; /* as above; it also covers the victim's restart */
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    assert_int_equal(simul_supervisor_wait_ready(s), 0);
    simul_supervisor_worker ws[8];
    assert_int_equal(simul_supervisor_workers(s, ws, 8), 2);
    int pids[8] = {ws[0].pid, ws[1].pid};
    int np = 2;
    setenv("TEST_SUP_MODE", "never_ready", 1);
    simul_task *t;
    assert_int_equal(simul_task_spawn(&t, reload_task, s, NULL), 0);
    wait_events(&r, SIMUL_SUPERVISOR_SPAWNED, 4); /* the new generation is started */
    setenv("TEST_SUP_MODE", "serve", 1);
    assert_int_equal(kill(pids[0], SIGKILL), 0);
    int rc = 0;
    assert_int_equal(simul_task_join(t, &rc), 0);
    assert_int_equal(rc, -ECHILD);
    wait_events(&r, SIMUL_SUPERVISOR_READY, 3);  /* the dead slot is back, generation 1 */
    wait_events(&r, SIMUL_SUPERVISOR_EXITED, 3); /* the victim and both new workers */
    assert_int_equal(simul_supervisor_workers(s, ws, 8), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ws[i].generation, 1);
        assert_true(ws[i].pid != pids[0]);
    }
    for (int i = 0; i < r.n && np < 8; i++)
        if (r.ev[i].type == SIMUL_SUPERVISOR_SPAWNED && r.ev[i].pid != pids[0] &&
            r.ev[i].pid != pids[1])
            pids[np++] = r.ev[i].pid;
    assert_int_equal(simul_supervisor_stop(s, -1), 0);
    finish(s, &r, pids, np);
    return 0;
}

/* A worker that exits before it was ever ready at start: wait_ready says so (-ECHILD). */
SIMUL_TASK_TEST(test_boot_failure)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "boot_fail", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 2);
    o.backoff_min = 0.05;
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    assert_int_equal(simul_supervisor_wait_ready(s), -ECHILD);
    setenv("TEST_SUP_MODE", "serve", 1);
    bool seen = false;
    for (int i = 0; i < r.n; i++)
        if (r.ev[i].type == SIMUL_SUPERVISOR_EXITED) {
            assert_int_equal(r.ev[i].status, 5);
            assert_false(r.ev[i].expected);
            seen = true;
        }
    assert_true(seen);
    assert_true(simul_supervisor_stop(s, -1) >= 0);
    int pids[MAXEV], np = 0;
    for (int i = 0; i < r.n; i++)
        if (r.ev[i].type == SIMUL_SUPERVISOR_SPAWNED)
            pids[np++] = r.ev[i].pid;
    finish(s, &r, pids, np);
    return 0;
}

/* A worker whose loop is stuck stops pinging its watchdog: killed and started again; the
 * healthy one beside it is left alone. */
SIMUL_TASK_TEST(test_watchdog_kills_stuck_worker)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "serve", 1);
    setenv("TEST_SUP_HANG_SLOT", "1", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 2);
    o.watchdog_timeout = 2; /* pings every 0.67 s: a loaded machine does not miss 3 in a row */
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    wait_events(&r, SIMUL_SUPERVISOR_WATCHDOG, 1);
    unsetenv("TEST_SUP_HANG_SLOT"); /* the replacement serves */
    wait_events(&r, SIMUL_SUPERVISOR_READY, 3);
    int pids[MAXEV], np = 0;
    for (int i = 0; i < r.n; i++) {
        if (r.ev[i].type == SIMUL_SUPERVISOR_WATCHDOG)
            assert_int_equal(r.ev[i].slot, 1);
        if (r.ev[i].type == SIMUL_SUPERVISOR_EXITED && r.ev[i].slot == 1)
            assert_int_equal(r.ev[i].status, -SIGKILL);
        if (r.ev[i].type == SIMUL_SUPERVISOR_SPAWNED)
            pids[np++] = r.ev[i].pid;
    }
    assert_true(count(&r, SIMUL_SUPERVISOR_RESTART) >= 1);
    char line[192];
    simul_supervisor_event ev = {
        .type = SIMUL_SUPERVISOR_WATCHDOG, .slot = 1, .pid = 7, .generation = 1};
    simul_supervisor_event_format(&ev, line, sizeof line);
    assert_string_equal(line, "worker 1 pid=7 gen=1 missed its watchdog (stuck): killed");
    assert_true(simul_supervisor_stop(s, -1) >= 0);
    finish(s, &r, pids, np);
    return 0;
}

SIMUL_TASK_TEST(test_stop_deadline_kills)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "ignore_term", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 2);
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    assert_int_equal(simul_supervisor_wait_ready(s), 0);
    simul_supervisor_worker ws[4];
    assert_int_equal(simul_supervisor_workers(s, ws, 4), 2);
    int pids[2] = {ws[0].pid, ws[1].pid};
    double t0 = simul_now();
    assert_int_equal(simul_supervisor_stop(s, 0.3), 1);
    assert_true(simul_now() - t0 < 10);
    assert_int_equal(count(&r, SIMUL_SUPERVISOR_KILLED), 2);
    for (int i = 0; i < r.n; i++)
        if (r.ev[i].type == SIMUL_SUPERVISOR_EXITED)
            assert_int_equal(r.ev[i].status, -SIGKILL);
    finish(s, &r, pids, 2);
    setenv("TEST_SUP_MODE", "serve", 1);
    return 0;
}

SIMUL_TASK_TEST(test_reuseport_slots)
{
    (void)arg;
    setenv("TEST_SUP_MODE", "serve", 1);
    rec r;
    simul_supervisor_opts o = base_opts(&r, 2);
    o.flags = SIMUL_SUPERVISOR_REUSEPORT;
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    assert_int_equal(simul_supervisor_wait_ready(s), 0);
    simul_supervisor_worker ws[4];
    assert_int_equal(simul_supervisor_workers(s, ws, 4), 2);
    int pids[2] = {ws[0].pid, ws[1].pid};
    /* The kernel spreads connections over the slots' sockets by their addresses: both serve. */
    bool seen[2] = {false, false};
    for (int i = 0; i < 200 && !(seen[0] && seen[1]); i++) {
        int got = ask_pid(simul_supervisor_port(s));
        assert_true(got == pids[0] || got == pids[1]);
        seen[got == pids[1]] = true;
    }
    assert_true(seen[0] && seen[1]);
    assert_int_equal(simul_supervisor_stop(s, -1), 0);
    finish(s, &r, pids, 2);
    return 0;
}

/* systemd's socket activation, for real: in a child process (so fd 3 can be given away before
 * any loop exists) fd 3 is a listening socket and LISTEN_PID the child; the supervisor takes it,
 * its workers serve it, and the LISTEN_* variables are gone from the environment. */
static int lfd_port;

static int lfd_main(void *arg)
{
    (void)arg;
    rec r;
    simul_supervisor_opts o = base_opts(&r, 2);
    o.port = "1"; /* must be ignored: the inherited socket wins */
    simul_supervisor *s;
    if (simul_supervisor_start(&o, &s) < 0)
        return 10;
    int rc = 0;
    if (getenv("LISTEN_FDS") || getenv("LISTEN_PID") || getenv("LISTEN_FDNAMES"))
        rc = 11;
    if (rc == 0 && simul_supervisor_port(s) != lfd_port)
        rc = 12;
    if (rc == 0 && simul_supervisor_wait_ready(s) < 0)
        rc = 13;
    simul_supervisor_worker ws[4];
    if (rc == 0 && simul_supervisor_workers(s, ws, 4) != 2)
        rc = 14;
    if (rc == 0) {
        int who = ask_pid(lfd_port);
        if (who != ws[0].pid && who != ws[1].pid)
            rc = 15;
    }
    if (simul_supervisor_stop(s, -1) != 0 && rc == 0)
        rc = 16;
    simul_supervisor_free(s);
    simul_event_free(r.changed);
    return rc;
}

static void test_listen_fds_inherited(void **state)
{
    (void)state;
    setenv("TEST_SUP_MODE", "serve", 1);
    int fds[1];
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 16, 0, fds, 1), 1);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&sa, &len), 0);
    lfd_port = ntohs(sa.sin_port);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(fds[0], 3) != 3)
            _exit(20);
        close(fds[0]);
        char me[16];
        snprintf(me, sizeof me, "%d", (int)getpid());
        setenv("LISTEN_FDS", "1", 1);
        setenv("LISTEN_PID", me, 1);
        setenv("LISTEN_FDNAMES", "http", 1);
        int got[4];
        if (simul_worker_sockets(got, 4) != 1 || got[0] != 3)
            _exit(21);
        _exit(simul_run(lfd_main, NULL));
    }
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

SIMUL_TASK_TEST(test_notify_socket)
{
    (void)arg;
    char path[108];
    snprintf(path, sizeof path, "@simul-test-notify-%d", (int)getpid());
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path));
    sa.sun_path[0] = 0;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path))),
                     0);
    assert_int_equal(simul_worker_notify_ready(), 0); /* nobody to tell */
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(simul_worker_notify_ready(), 1);
    char buf[32] = {0};
    assert_int_equal(recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT), 7);
    assert_string_equal(buf, "READY=1");
    unsetenv("NOTIFY_SOCKET");
    close(fd);
    /* The worker's environment, and bad values in it. */
    assert_false(simul_worker_is_supervised());
    assert_int_equal(simul_worker_slot(), -1);
    int fds[4];
    assert_int_equal(simul_worker_sockets(fds, 4), 0);
    setenv("SIMUL_SUPERVISOR_FDS", "5,6", 1);
    assert_int_equal(simul_worker_sockets(fds, 4), 2);
    assert_int_equal(fds[1], 6);
    assert_int_equal(simul_worker_sockets(fds, 1), 2); /* the count, only max stored */
    setenv("SIMUL_SUPERVISOR_FDS", "5,x", 1);
    assert_int_equal(simul_worker_sockets(fds, 4), -EINVAL);
    setenv("SIMUL_SUPERVISOR_FDS", "-3", 1);
    assert_int_equal(simul_worker_sockets(fds, 4), -EINVAL);
    unsetenv("SIMUL_SUPERVISOR_FDS");
    return 0;
}

/* Any program that speaks the protocol can be a worker: here a shell. */
SIMUL_TASK_TEST(test_foreign_worker)
{
    (void)arg;
    const char *argv[] = {"/bin/sh", "-c",
                          "echo READY=1 >/proc/self/fd/$SIMUL_SUPERVISOR_NOTIFY_FD; exec sleep 600",
                          NULL};
    rec r;
    simul_supervisor_opts o = base_opts(&r, 2);
    o.argv = argv;
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), 0);
    assert_int_equal(simul_supervisor_wait_ready(s), 0);
    simul_supervisor_worker ws[4];
    assert_int_equal(simul_supervisor_workers(s, ws, 4), 2);
    int pids[2] = {ws[0].pid, ws[1].pid};
    assert_int_equal(simul_supervisor_stop(s, -1), 0);
    for (int i = 0; i < r.n; i++)
        if (r.ev[i].type == SIMUL_SUPERVISOR_EXITED)
            assert_int_equal(r.ev[i].status, -SIGTERM);
    finish(s, &r, pids, 2);
    return 0;
}

SIMUL_TASK_TEST(test_bad_options)
{
    (void)arg;
    rec r;
    simul_supervisor *s = (simul_supervisor *)&r;
    simul_supervisor_opts o = base_opts(&r, -1);
    assert_int_equal(simul_supervisor_start(&o, &s), -EINVAL);
    assert_null(s);
    o.workers = 2;
    o.stop_timeout = -1;
    assert_int_equal(simul_supervisor_start(&o, &s), -EINVAL);
    o.stop_timeout = 0;
    o.reload_batch = -1;
    assert_int_equal(simul_supervisor_start(&o, &s), -EINVAL);
    o.reload_batch = 0;
    o.retire_signal = 100000;
    assert_int_equal(simul_supervisor_start(&o, &s), -EINVAL);
    o.retire_signal = 0;
    int notsock = 0;
    o.socks = &notsock; /* stdin is not a listening socket */
    o.n_socks = 1;
    assert_int_equal(simul_supervisor_start(&o, &s), -EINVAL);
    /* A closed fd, and a socket that is not listening: -EINVAL too, and the dup made to check
     * it is not left open (the next fd is the same number before and after). */
    int closed = dup(0);
    close(closed);
    o.socks = &closed;
    assert_int_equal(simul_supervisor_start(&o, &s), -EINVAL);
    int unlistened = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(unlistened >= 0);
    int probe = dup(0);
    close(probe);
    o.socks = &unlistened;
    assert_int_equal(simul_supervisor_start(&o, &s), -EINVAL);
    int probe2 = dup(0);
    assert_int_equal(probe2, probe);
    close(probe2);
    close(unlistened);
    o.socks = NULL;
    o.n_socks = 0;
    /* A program that does not exist: the error, and nothing is left. */
    const char *argv[] = {"/nonexistent/simul-worker", NULL};
    o.argv = argv;
    assert_int_equal(simul_supervisor_start(&o, &s), -ENOENT);
    assert_int_equal(count(&r, SIMUL_SUPERVISOR_SPAWNED), 0);
    o.argv = NULL;
    /* A port in use. */
    int fds[1];
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 16, 0, fds, 1), 1);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(fds[0], (struct sockaddr *)&sa, &len);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(sa.sin_port));
    o.port = port;
    assert_int_equal(simul_supervisor_start(&o, &s), -EADDRINUSE);
    close(fds[0]);
    simul_event_free(r.changed);
    assert_int_equal(simul_supervisor_stop(NULL, 1), -EINVAL);
    assert_int_equal(simul_supervisor_reload(NULL), -EINVAL);
    assert_int_equal(simul_supervisor_wait_ready(NULL), -EINVAL);
    simul_supervisor_free(NULL);
    return 0;
}

/* The servers' side of it: start_server(sock=...) adopts given listening sockets. */
static int echo_one(simul_stream *s, void *arg)
{
    (void)arg;
    simul_stream_write(s, "hi\n", 3);
    return simul_stream_drain(s);
}

SIMUL_TASK_TEST(test_start_server_socks)
{
    (void)arg;
    int fds[1];
    assert_int_equal(simul_tcp_listen("127.0.0.1", "0", 16, 0, fds, 1), 1);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&sa, &len), 0);
    simul_server *srv = NULL;
    /* Refused, and the socket stays the caller's: with host/port, too many, not listening. */
    simul_stream_server_opts o = {.socks = fds, .n_socks = 1, .port = "0"};
    assert_int_equal(simul_start_server_opts(&o, echo_one, NULL, &srv), -EINVAL);
    o = (simul_stream_server_opts){.socks = fds, .n_socks = 17};
    assert_int_equal(simul_start_server_opts(&o, echo_one, NULL, &srv), -EINVAL);
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    o = (simul_stream_server_opts){.socks = &udp, .n_socks = 1};
    assert_int_equal(simul_start_server_opts(&o, echo_one, NULL, &srv), -EINVAL);
    assert_true(fcntl(udp, F_GETFD) >= 0);
    close(udp);
    int closed = 1000;
    o = (simul_stream_server_opts){.socks = &closed, .n_socks = 1};
    assert_int_equal(simul_start_server_opts(&o, echo_one, NULL, &srv), -EBADF);
    assert_true(fcntl(fds[0], F_GETFD) >= 0);
    /* Served: the port is the socket's, a client gets its answer, close closes the socket. */
    o = (simul_stream_server_opts){.socks = fds, .n_socks = 1};
    assert_int_equal(simul_start_server_opts(&o, echo_one, NULL, &srv), 0);
    assert_int_equal(simul_server_port(srv), ntohs(sa.sin_port));
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(sa.sin_port));
    int c = simul_tcp_connect("127.0.0.1", port);
    assert_true(c >= 0);
    char buf[8] = {0};
    assert_int_equal(simul_recv(c, buf, 3, 0), 3);
    assert_string_equal(buf, "hi\n");
    simul_close(c);
    simul_server_close(srv);
    assert_int_equal(simul_server_wait_closed(srv), 0);
    simul_server_free(srv);
    assert_true(fcntl(fds[0], F_GETFD) < 0); /* the server owned it */
    return 0;
}

static void test_start_outside_task(void **state)
{
    (void)state;
    simul_supervisor_opts o = {.workers = 1};
    simul_supervisor *s;
    assert_int_equal(simul_supervisor_start(&o, &s), -ENXIO);
    char line[64];
    simul_supervisor_event ev = {
        .type = SIMUL_SUPERVISOR_EXITED, .slot = 1, .generation = 2, .pid = 42, .status = 3};
    simul_supervisor_event_format(&ev, line, sizeof line);
    assert_string_equal(line, "worker 1 pid=42 gen=2 exited with status 3 unexpectedly");
}

/* The main of this binary and of test_supervisor_fallback.c: a worker the master re-executes
 * takes the worker path; the test process runs the cases (each file lists its own table, which
 * the CTest configure step reads from that file's source). */
static int supervisor_tests_main(int argc, char **argv, const struct CMUnitTest *tests, size_t n,
                                 const char *name)
{
    if (simul_worker_is_supervised()) {
        simul_supervisor_opts unused = {0};
        return simul_supervisor_main(argc, argv, &unused, test_worker, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    return simul_test_main(argc, argv, tests, n, name);
}

#ifndef SUPERVISOR_NO_MAIN
int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_ready_stop),
        cmocka_unit_test(test_restart_after_kill),
        cmocka_unit_test(test_backoff_doubles),
        cmocka_unit_test(test_reload_new_ready_before_old_exit),
        cmocka_unit_test(test_reload_one_by_one),
        cmocka_unit_test(test_reload_fails_old_stay),
        cmocka_unit_test(test_old_death_during_failed_reload),
        cmocka_unit_test(test_boot_failure),
        cmocka_unit_test(test_watchdog_kills_stuck_worker),
        cmocka_unit_test(test_stop_deadline_kills),
        cmocka_unit_test(test_reuseport_slots),
        cmocka_unit_test(test_listen_fds_inherited),
        cmocka_unit_test(test_notify_socket),
        cmocka_unit_test(test_foreign_worker),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_start_server_socks),
        cmocka_unit_test(test_start_outside_task),
    };
    return supervisor_tests_main(argc, argv, tests, ARRAY_LEN(tests), "test_supervisor");
}
#endif
