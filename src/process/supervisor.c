/* supervisor.c — a master process on a simul loop that runs N exec'd workers on listening sockets
 * it keeps open for its whole life (so no queued connection dies with a worker), one watcher
 * task per worker (its READY=1 on a pipe, then its exit through simul_process_wait), restarts with
 * back-off, reloads by generations (new ones ready before old ones retire) and stops with a
 * deadline. The worker's side (simul_worker_*) reads what the master put in its environment. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "simul.h"

extern char **environ;

#define MAX_WORKERS 1024
#define MAX_FDS_PER_SLOT 16 /* every address of one host name */
#define ENV_FDS "SIMUL_SUPERVISOR_FDS"
#define ENV_NOTIFY "SIMUL_SUPERVISOR_NOTIFY_FD"
#define ENV_SLOT "SIMUL_SUPERVISOR_SLOT"
#define ENV_GEN "SIMUL_SUPERVISOR_GENERATION"
#define ENV_PPID "SIMUL_SUPERVISOR_PPID"
#define ENV_RETIRE "SIMUL_SUPERVISOR_RETIRE_SIGNAL"
#define ENV_WATCHDOG "SIMUL_SUPERVISOR_WATCHDOG_USEC"

typedef struct worker {
    struct simul_supervisor *s;
    struct worker *next;
    simul_process *proc;
    simul_task *watch;
    int slot;
    unsigned gen;
    int pid;
    int nfd;          /* read end of the readiness pipe; -1 once closed */
    int64_t ready_ns; /* when it said READY=1; 0 before */
    bool alive;       /* not reaped yet */
    bool retiring;    /* the master asked it to go: its exit is expected */
    bool no_restart;  /* a failed reload's worker: never started again */
    bool in_backoff;  /* its watcher sleeps before a restart: stop may cancel it */
    bool done;        /* its watcher returned: join and free */
    bool kill_armed;
    simul_handle kill_timer; /* SIGKILL at the end of stop_timeout */
} worker;

struct simul_supervisor {
    simul_supervisor_opts o;
    char **argv; /* the worker command (owned copy) */
    int *socks;  /* every listening fd: n_slots_fds per slot if reuseport, else shared */
    int nsocks;
    int per_slot; /* reuseport: fds per slot; 0: every worker gets all */
    int port;
    unsigned gen;        /* the generation every slot serves (the last complete reload's) */
    unsigned top_gen;    /* the newest generation ever started (a failed reload's too) */
    unsigned reload_gen; /* the one a reload in progress starts; 0 outside a reload */
    unsigned *slot_gen;  /* per slot: the generation that serves it (restarted if it dies) */
    bool reloading, stopping, stopped, fast;
    bool reload_failed;     /* a worker of the reload's generation died or was not ready */
    bool booted;            /* generation 1 was all ready once */
    unsigned boot_failures; /* before that: workers that exited without ever being ready */
    unsigned long deaths;
    simul_backoff *restarts; /* per slot: the back-off over its deaths in a row */
    worker *workers;
    simul_event *changed; /* set whenever a worker becomes ready or exits */
    simul_event *wake;    /* serve_forever: a signal came */
    bool want_reload, want_stop, want_fast;
};

/* ---- events ------------------------------------------------------------------------------- */

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGHUP:
        return "SIGHUP";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGILL:
        return "SIGILL";
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGKILL:
        return "SIGKILL";
    case SIGUSR1:
        return "SIGUSR1";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGUSR2:
        return "SIGUSR2";
    case SIGPIPE:
        return "SIGPIPE";
    case SIGALRM:
        return "SIGALRM";
    case SIGTERM:
        return "SIGTERM";
    default:
        return "signal";
    }
}

static int format_exit(int status, char *buf, size_t n)
{
    if (status < 0)
        return snprintf(buf, n, "killed by signal %d (%s)", -status, sig_name(-status));
    return snprintf(buf, n, "exited with status %d", status);
}

int simul_supervisor_event_format(const simul_supervisor_event *ev, char *buf, size_t n)
{
    if (!ev || !buf)
        return -EINVAL;
    char what[96];
    switch (ev->type) {
    case SIMUL_SUPERVISOR_SPAWNED:
        snprintf(what, sizeof what, "started");
        break;
    case SIMUL_SUPERVISOR_READY:
        snprintf(what, sizeof what, "ready");
        break;
    case SIMUL_SUPERVISOR_EXITED:
        format_exit(ev->status, what, sizeof what);
        if (!ev->expected)
            strncat(what, " unexpectedly", sizeof what - strlen(what) - 1);
        break;
    case SIMUL_SUPERVISOR_RESTART:
        snprintf(what, sizeof what, "restarting in %.1f s", ev->delay);
        break;
    case SIMUL_SUPERVISOR_NOT_READY:
        snprintf(what, sizeof what, "not ready in time: killed");
        break;
    case SIMUL_SUPERVISOR_KILLED:
        snprintf(what, sizeof what, "still draining: killed");
        break;
    case SIMUL_SUPERVISOR_WATCHDOG:
        snprintf(what, sizeof what, "missed its watchdog (stuck): killed");
        break;
    case SIMUL_SUPERVISOR_SPAWN_FAILED:
        snprintf(what, sizeof what, "start failed: %s", simul_strerror(ev->status));
        break;
    case SIMUL_SUPERVISOR_RELOADING:
        return snprintf(buf, n, "reloading: starting generation %u", ev->generation);
    case SIMUL_SUPERVISOR_RELOADED:
        return snprintf(buf, n, "reloaded: generation %u ready, the old one retiring",
                        ev->generation);
    case SIMUL_SUPERVISOR_RELOAD_FAILED:
        return snprintf(buf, n, "reload failed: generation %u not ready, the old one stays",
                        ev->generation);
    case SIMUL_SUPERVISOR_STOPPING:
        return snprintf(buf, n, "stopping");
    case SIMUL_SUPERVISOR_STOPPED:
        return snprintf(buf, n, "stopped: every worker reaped");
    default:
        snprintf(what, sizeof what, "event %d", (int)ev->type);
        break;
    }
    return snprintf(buf, n, "worker %d pid=%d gen=%u %s", ev->slot, ev->pid, ev->generation, what);
}

static void emit(simul_supervisor *s, simul_supervisor_event_type type, const worker *w, int status,
                 double delay)
{
    simul_supervisor_event ev = {.type = type,
                                 .slot = w ? w->slot : -1,
                                 .generation = w               ? w->gen
                                               : s->reload_gen ? s->reload_gen
                                                               : s->gen,
                                 .pid = w ? w->pid : 0,
                                 .status = status,
                                 .expected = w && w->retiring,
                                 .delay = delay};
    if (s->o.on_event) {
        s->o.on_event(&ev, s->o.event_arg);
    } else if (!s->o.quiet) {
        char line[192];
        simul_supervisor_event_format(&ev, line, sizeof line);
        /* One write per line: the workers share stderr, and lines must not interleave. */
        char out[256];
        int len = snprintf(out, sizeof out, "supervisor[%d]: %s\n", (int)getpid(), line);
        if (len > 0) {
            ssize_t r = write(2, out, (size_t)len < sizeof out ? (size_t)len : sizeof out - 1);
            (void)r;
        }
    }
}

/* ---- starting a worker --------------------------------------------------------------------- */

static bool env_ours(const char *e)
{
    static const char *const drop[] = {
        "SIMUL_SUPERVISOR_", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "NOTIFY_SOCKET="};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (strncmp(e, drop[i], strlen(drop[i])) == 0)
            return true;
    return false;
}

static void watch_start(worker *w);

/* Starts a worker of generation gen in slot. Returns 0 or the spawn's error. */
static int spawn_worker(simul_supervisor *s, int slot, unsigned gen, worker **out)
{
    worker *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->s = s;
    w->slot = slot;
    w->gen = gen;
    w->nfd = -1;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        int e = -errno;
        free(w);
        return e;
    }
    /* The child's end blocks (a readiness write is one small line); ours does not. */
    fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) & ~O_NONBLOCK);

    const int *fds = s->socks;
    int nfds = s->nsocks;
    if (s->per_slot) {
        fds = s->socks + slot * s->per_slot;
        nfds = s->per_slot;
    }
    int pass[MAX_FDS_PER_SLOT * 2 + 1];
    int npass = 0;
    char fdlist[MAX_FDS_PER_SLOT * 12] = "";
    for (int i = 0; i < nfds && npass < MAX_FDS_PER_SLOT * 2; i++) {
        pass[npass++] = fds[i];
        size_t l = strlen(fdlist);
        snprintf(fdlist + l, sizeof fdlist - l, i ? ",%d" : "%d", fds[i]);
    }
    pass[npass++] = p[1];

    size_t nenv = 0;
    while (environ && environ[nenv])
        nenv++;
    char **env = calloc(nenv + 8, sizeof *env);
    char vars[7][96];
    int rc = env ? 0 : -ENOMEM;
    if (rc == 0) {
        size_t k = 0;
        for (size_t i = 0; i < nenv; i++)
            if (!env_ours(environ[i]))
                env[k++] = environ[i];
        snprintf(vars[0], sizeof vars[0], ENV_NOTIFY "=%d", p[1]);
        snprintf(vars[1], sizeof vars[1], ENV_SLOT "=%d", slot);
        snprintf(vars[2], sizeof vars[2], ENV_GEN "=%u", gen);
        snprintf(vars[3], sizeof vars[3], ENV_PPID "=%d", (int)getpid());
        snprintf(vars[4], sizeof vars[4], ENV_RETIRE "=%d", s->o.retire_signal);
        snprintf(vars[5], sizeof vars[5], ENV_WATCHDOG "=%lld",
                 (long long)(s->o.watchdog_timeout * 1e6));
        for (int i = 0; i < 6; i++)
            env[k++] = vars[i];
        char *fdvar = malloc(strlen(ENV_FDS) + strlen(fdlist) + 2);
        if (!fdvar) {
            rc = -ENOMEM;
        } else {
            sprintf(fdvar, ENV_FDS "=%s", fdlist);
            env[k++] = fdvar;
            env[k] = NULL;
            simul_process_opts po = {.argv = (const char *const *)s->argv,
                                     .env = (const char *const *)env,
                                     .flags = SIMUL_PROCESS_NEW_PGROUP,
                                     .pass_fds = pass,
                                     .n_pass_fds = (size_t)npass};
            rc = simul_process_exec(&po, &w->proc);
            free(fdvar);
        }
        free(env);
    }
    close(p[1]);
    if (rc < 0) {
        close(p[0]);
        free(w);
        return rc;
    }
    w->nfd = p[0];
    w->pid = simul_process_pid(w->proc);
    w->alive = true;
    w->next = s->workers;
    s->workers = w;
    emit(s, SIMUL_SUPERVISOR_SPAWNED, w, 0, 0);
    watch_start(w);
    if (out)
        *out = w;
    return 0;
}

/* ---- watching a worker ------------------------------------------------------------------- */

static void kill_cb(void *arg)
{
    worker *w = arg;
    w->kill_armed = false;
    if (w->alive) {
        emit(w->s, SIMUL_SUPERVISOR_KILLED, w, 0, 0);
        simul_process_kill(w->proc);
    }
}

/* Asks w to go with sig; SIGKILL after timeout seconds (< 0: never armed here). */
static void retire(worker *w, int sig, double timeout)
{
    if (!w->alive)
        return;
    w->retiring = true;
    simul_process_send_signal(w->proc, sig);
    if (timeout >= 0 && !w->kill_armed &&
        simul_call_later(timeout, kill_cb, w, &w->kill_timer) == 0)
        w->kill_armed = true;
}

/* Reads the readiness pipe; true once READY=1 came. EOF or an error: false for good. */
static bool read_ready(worker *w, bool *eof)
{
    char buf[512];
    for (;;) {
        ssize_t n = read(w->nfd, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = 0;
            /* sd_notify's format: NAME=value lines; READY=1 is all the master needs. */
            for (char *line = buf; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                    *nl = 0;
                if (strcmp(line, "READY=1") == 0)
                    return true;
                line = nl ? nl + 1 : NULL;
            }
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            *eof = true;
        return false;
    }
}

static double backoff(simul_supervisor *s, worker *w)
{
    int64_t now = simul_now_ns();
    if (w->ready_ns && now - w->ready_ns >= (int64_t)(s->o.backoff_reset * 1e9))
        simul_backoff_reset(&s->restarts[w->slot]);
    /* The first death in a while: back at once, like nginx and gunicorn (`immediate`); then
     * backoff_min doubling to backoff_max, without jitter (restarts are local, not a herd). */
    return simul_backoff_next(&s->restarts[w->slot]);
}

static int watch_main(void *arg)
{
    worker *w = arg;
    simul_supervisor *s = w->s;

    /* 1. Readiness, within ready_timeout. */
    simul_scope sc;
    simul_scope_timeout(&sc, s->o.ready_timeout);
    bool eof = false;
    int rc = 0;
    while (!eof) {
        if (read_ready(w, &eof)) {
            w->ready_ns = simul_now_ns();
            emit(s, SIMUL_SUPERVISOR_READY, w, 0, 0);
            simul_event_set(s->changed);
            break;
        }
        if (eof || (rc = simul_wait_readable(w->nfd)) < 0)
            break;
    }
    simul_scope_end(&sc);
    if (rc == -ETIMEDOUT && w->alive && !w->retiring) {
        emit(s, SIMUL_SUPERVISOR_NOT_READY, w, 0, 0);
        simul_process_kill(w->proc);
    }

    /* 1b. The watchdog: every message (WATCHDOG=1 or any other) proves the worker's loop runs;
     * silence for watchdog_timeout kills it. Ends at the pipe's EOF (the worker's exit). */
    while (w->ready_ns && !eof && s->o.watchdog_timeout > 0) {
        simul_scope wd;
        simul_scope_timeout(&wd, s->o.watchdog_timeout);
        rc = simul_wait_readable(w->nfd);
        simul_scope_end(&wd);
        if (rc == -ETIMEDOUT) {
            if (w->alive) {
                emit(s, SIMUL_SUPERVISOR_WATCHDOG, w, 0, 0);
                simul_process_kill(w->proc);
            }
            break;
        }
        if (rc < 0)
            break;
        char sink[256];
        ssize_t n;
        while ((n = read(w->nfd, sink, sizeof sink)) > 0) {
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            eof = true;
    }

    /* 2. The exit. Shielded: a worker is always reaped by its watcher, whatever happens. */
    simul_scope sh;
    simul_scope_shield(&sh);
    int status = 0;
    simul_process_wait(w->proc, &status);
    simul_scope_end(&sh);
    w->alive = false;
    if (w->kill_armed) {
        simul_handle_cancel(w->kill_timer);
        w->kill_armed = false;
    }
    simul_close(w->nfd);
    w->nfd = -1;
    emit(s, SIMUL_SUPERVISOR_EXITED, w, status, 0);
    /* Started again only if its generation still serves its slot: an old worker whose slot a
     * reload has not switched yet is, a reload's new worker is not (the reload fails). */
    bool restart = !w->retiring && !w->no_restart && !s->stopping && w->gen == s->slot_gen[w->slot];
    if (!w->retiring)
        s->deaths++;
    if (!w->retiring && !s->booted && !w->ready_ns)
        s->boot_failures++; /* gunicorn's "Worker failed to boot" */
    if (s->reloading && w->gen == s->reload_gen && !w->retiring) {
        w->no_restart = true; /* a new worker died during its reload: the reload fails */
        s->reload_failed = true;
    }
    simul_event_set(s->changed);

    /* 3. Start it again, after the back-off; a failed start is retried the same way. */
    while (restart && !s->stopping && w->gen == s->slot_gen[w->slot]) {
        double d = backoff(s, w);
        emit(s, SIMUL_SUPERVISOR_RESTART, w, 0, d);
        w->in_backoff = true;
        int r = d > 0 ? simul_sleep(d) : simul_yield();
        w->in_backoff = false;
        if (r < 0 || s->stopping || w->gen != s->slot_gen[w->slot])
            break;
        int e = spawn_worker(s, w->slot, w->gen, NULL);
        if (e == 0)
            break;
        w->pid = 0; /* the event is about the start that failed, not the dead process */
        emit(s, SIMUL_SUPERVISOR_SPAWN_FAILED, w, e, 0);
        w->ready_ns = 0;
    }
    w->done = true;
    simul_event_set(s->changed);
    return 0;
}

static void watch_start(worker *w)
{
    char name[32];
    snprintf(name, sizeof name, "supervise-%d", w->pid);
    simul_task_opts to = {.name = name};
    if (simul_task_spawn(&w->watch, watch_main, w, &to) < 0) {
        /* No memory for a task: nobody could watch it, so it must not run unwatched. */
        simul_process_kill(w->proc);
        w->watch = NULL;
    }
}

/* Joins and frees the workers whose watchers have finished. */
static void collect(simul_supervisor *s)
{
    for (worker **pp = &s->workers; *pp;) {
        worker *w = *pp;
        if (w->done || !w->watch) {
            *pp = w->next;
            if (w->watch)
                simul_task_join(w->watch, NULL); /* done: returns at once */
            /* Without a watcher the child was killed: the process layer's reaper takes it. */
            simul_process_close(w->proc);
            if (w->nfd >= 0)
                simul_close(w->nfd);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

/* Suspends until pred(s) holds; the watchers set `changed` on every state change. */
static int wait_until(simul_supervisor *s, bool (*pred)(simul_supervisor *s, void *arg), void *arg)
{
    for (;;) {
        collect(s);
        if (pred(s, arg))
            return 0;
        simul_event_clear(s->changed);
        int rc = simul_event_wait(s->changed);
        if (rc < 0)
            return rc;
    }
}

/* ---- start --------------------------------------------------------------------------------- */

static int cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* systemd's sockets, if they are meant for this process: fds 3 .. 3+LISTEN_FDS-1. */
static int listen_fds_env(int *fds, int max)
{
    const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
    if (!pid || !n || atol(pid) != (long)getpid())
        return 0;
    int count = atoi(n);
    if (count <= 0)
        return 0;
    int k = 0;
    for (int i = 0; i < count && k < max; i++)
        fds[k++] = 3 + i;
    return k;
}

static int sock_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static void close_socks(simul_supervisor *s)
{
    for (int i = 0; i < s->nsocks; i++)
        close(s->socks[i]);
    free(s->socks);
    s->socks = NULL;
    s->nsocks = 0;
}

static int open_socks(simul_supervisor *s, const simul_supervisor_opts *o)
{
    int inh[MAX_FDS_PER_SLOT];
    int n = (o->flags & SIMUL_SUPERVISOR_NO_LISTEN_FDS) ? 0 : listen_fds_env(inh, MAX_FDS_PER_SLOT);
    const int *given = n ? inh : o->socks;
    int ngiven = n ? n : o->n_socks;
    if (n) {
        /* sd_listen_fds(1): taken; the workers are told through our own variables. */
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDNAMES");
    }
    if (ngiven > 0) {
        if (ngiven > MAX_FDS_PER_SLOT)
            return -EINVAL;
        s->socks = calloc((size_t)ngiven, sizeof *s->socks);
        if (!s->socks)
            return -ENOMEM;
        for (int i = 0; i < ngiven; i++) {
            /* Ours from now on: a dup for the caller's; systemd's fds themselves (close-on-exec
             * so only the workers' pass_fds carry them). A given fd that is closed, or is not a
             * listening socket, is the caller's mistake: -EINVAL either way. */
            int fd = n ? given[i] : fcntl(given[i], F_DUPFD_CLOEXEC, 3);
            if (fd < 0) {
                int e = errno == EBADF ? -EINVAL : -errno;
                close_socks(s);
                return e;
            }
            if (simul_listener_adopt(fd) < 0) { /* non-blocking and close-on-exec if it is */
                if (!n)
                    close(fd);
                close_socks(s);
                return -EINVAL;
            }
            s->socks[s->nsocks++] = fd;
        }
        s->port = sock_port(s->socks[0]);
        return 0;
    }
    int slots = (o->flags & SIMUL_SUPERVISOR_REUSEPORT) ? s->o.workers : 1;
    s->socks = calloc((size_t)slots * MAX_FDS_PER_SLOT, sizeof *s->socks);
    if (!s->socks)
        return -ENOMEM;
    char port[16];
    snprintf(port, sizeof port, "%s", o->port && *o->port ? o->port : "0");
    for (int i = 0; i < slots; i++) {
        int fds[MAX_FDS_PER_SLOT];
        int k = simul_tcp_listen(o->host, port, o->backlog, slots > 1 ? SIMUL_LISTEN_REUSEPORT : 0,
                                 fds, MAX_FDS_PER_SLOT);
        if (k < 0 || (i > 0 && k != s->per_slot)) {
            for (int j = 0; j < k; j++)
                close(fds[j]);
            close_socks(s);
            return k < 0 ? k : -EADDRNOTAVAIL;
        }
        if (i == 0) {
            s->port = sock_port(fds[0]);
            snprintf(port, sizeof port, "%d", s->port); /* the others join this one's port */
        }
        for (int j = 0; j < k; j++)
            s->socks[s->nsocks++] = fds[j];
        if (slots > 1)
            s->per_slot = k;
    }
    return 0;
}

static int copy_argv(simul_supervisor *s, const simul_supervisor_opts *o)
{
    const char *const *src = o->argv ? o->argv : o->self_argv;
    size_t n = 0;
    while (src && src[n])
        n++;
    if (!o->argv && n == 0)
        n = 1; /* re-exec with no arguments at all */
    s->argv = calloc(n + 1, sizeof *s->argv);
    if (!s->argv)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *a = src ? src[i] : NULL;
        if (i == 0 && !o->argv) {
            /* This program again: by the binary's path (argv[0] may be a bare name resolved
             * through PATH, or relative to a directory we left). */
            char exe[PATH_MAX];
            ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (l <= 0)
                return -errno;
            exe[l] = 0;
            a = exe;
            s->argv[i] = strdup(a);
        } else {
            s->argv[i] = strdup(a ? a : "");
        }
        if (!s->argv[i])
            return -ENOMEM;
    }
    return 0;
}

static void free_argv(simul_supervisor *s)
{
    for (size_t i = 0; s->argv && s->argv[i]; i++)
        free(s->argv[i]);
    free(s->argv);
    s->argv = NULL;
}

static bool none_alive(simul_supervisor *s, void *arg)
{
    (void)arg;
    for (worker *w = s->workers; w; w = w->next)
        if (w->alive || !w->done)
            return false;
    return true;
}

int simul_supervisor_start(const simul_supervisor_opts *opts, simul_supervisor **out)
{
    if (out)
        *out = NULL;
    if (!opts || !out || opts->workers < 0 || opts->workers > MAX_WORKERS || opts->n_socks < 0 ||
        (opts->n_socks > 0 && !opts->socks) || !(opts->ready_timeout >= 0) ||
        !(opts->stop_timeout >= 0) || !(opts->backoff_min >= 0) || !(opts->backoff_max >= 0) ||
        !(opts->backoff_reset >= 0) || !(opts->watchdog_timeout >= 0) || opts->reload_batch < 0 ||
        opts->stop_signal < 0 || opts->stop_signal >= NSIG || opts->retire_signal < 0 ||
        opts->retire_signal >= NSIG || (opts->argv && !opts->argv[0]))
        return -EINVAL;
    if (!simul_loop_current())
        return -ENXIO;
    if (!simul_task_current())
        return -EPERM;
    simul_supervisor *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->o = *opts;
    simul_supervisor_opts *o = &s->o;
    if (!o->workers)
        o->workers = cpu_count();
    if (o->workers > MAX_WORKERS)
        o->workers = MAX_WORKERS;
    if (o->ready_timeout == 0)
        o->ready_timeout = 30;
    if (o->stop_timeout == 0)
        o->stop_timeout = 30;
    if (o->backoff_min == 0)
        o->backoff_min = 0.1;
    if (o->backoff_max == 0)
        o->backoff_max = 10;
    if (o->backoff_reset == 0)
        o->backoff_reset = 10;
    if (!o->stop_signal)
        o->stop_signal = SIGTERM;
    if (!o->retire_signal)
        o->retire_signal = o->stop_signal;
    o->host = o->port = NULL; /* read during the call only */
    o->socks = NULL;
    o->argv = o->self_argv = NULL;
    s->gen = s->top_gen = 1;
    int rc = copy_argv(s, opts);
    if (rc == 0 && !(s->restarts = calloc((size_t)o->workers, sizeof *s->restarts)))
        rc = -ENOMEM;
    /* A backoff_max below backoff_min caps every delay at backoff_max, as before. */
    double lo = o->backoff_min < o->backoff_max ? o->backoff_min : o->backoff_max;
    simul_backoff_opts bo = {.base = lo, .cap = o->backoff_max, .immediate = 1};
    for (int i = 0; rc == 0 && i < o->workers; i++)
        rc = simul_backoff_init(&s->restarts[i], &bo); /* -EINVAL: both bounds infinite */
    if (rc == 0 && !(s->slot_gen = calloc((size_t)o->workers, sizeof *s->slot_gen)))
        rc = -ENOMEM;
    for (int i = 0; rc == 0 && i < o->workers; i++)
        s->slot_gen[i] = 1;
    if (rc == 0)
        rc = simul_event_new(&s->changed);
    if (rc == 0)
        rc = simul_event_new(&s->wake);
    if (rc == 0)
        rc = open_socks(s, opts);
    for (int i = 0; rc == 0 && i < o->workers; i++)
        rc = spawn_worker(s, i, s->gen, NULL);
    if (rc < 0) {
        if (s->changed && s->workers) {
            /* Stop what started; the watchers reap them (from the loop, soon). */
            s->stopping = true;
            for (worker *w = s->workers; w; w = w->next)
                retire(w, SIGKILL, -1);
            simul_scope sh;
            simul_scope_shield(&sh);
            wait_until(s, none_alive, NULL);
            simul_scope_end(&sh);
        }
        simul_supervisor_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- ready, reload, stop ---------------------------------------------------------------- */

/* Every slot has a ready worker of the generation that serves it. */
static bool gen_ready(simul_supervisor *s, void *arg)
{
    (void)arg;
    int ready = 0;
    for (worker *w = s->workers; w; w = w->next)
        if (w->gen == s->slot_gen[w->slot] && w->alive && w->ready_ns && !w->retiring)
            ready++;
    if (ready >= s->o.workers)
        s->booted = true;
    return ready >= s->o.workers || s->stopping || s->want_stop ||
           (!s->booted && s->boot_failures > 0);
}

int simul_supervisor_wait_ready(simul_supervisor *s)
{
    if (!s)
        return -EINVAL;
    int rc = wait_until(s, gen_ready, NULL);
    if (rc < 0)
        return rc;
    if (s->stopping)
        return -ESHUTDOWN;
    return s->booted || s->boot_failures == 0 ? 0 : -ECHILD;
}

/* A reload batch: slots [first, last) of generation gen. */
typedef struct batch {
    unsigned gen;
    int first, last;
} batch;

/* A batch's progress: each of its new workers ready (1), one of them gone (-1), not yet (0). */
static int batch_state(simul_supervisor *s, const batch *b)
{
    if (s->reload_failed)
        return -1;
    int ready = 0;
    for (worker *w = s->workers; w; w = w->next)
        if (w->gen == b->gen && w->slot >= b->first && w->slot < b->last && w->alive && w->ready_ns)
            ready++;
    return ready >= b->last - b->first ? 1 : 0;
}

static bool batch_settled(simul_supervisor *s, void *arg)
{
    return s->stopping || s->want_stop || batch_state(s, arg) != 0;
}

/* The batch's old workers have exited (or a stop began). */
static bool batch_old_gone(simul_supervisor *s, void *arg)
{
    const batch *b = arg;
    if (s->stopping || s->want_stop)
        return true;
    for (worker *w = s->workers; w; w = w->next)
        if (w->slot >= b->first && w->slot < b->last && w->gen != b->gen && w->alive)
            return false;
    return true;
}

int simul_supervisor_reload(simul_supervisor *s)
{
    if (!s)
        return -EINVAL;
    if (s->stopping)
        return -ESHUTDOWN;
    if (s->reloading)
        return -EBUSY;
    unsigned gen = ++s->top_gen;
    s->reloading = true;
    s->reload_failed = false;
    s->reload_gen = gen;
    emit(s, SIMUL_SUPERVISOR_RELOADING, NULL, 0, 0);
    int n = s->o.workers;
    int size = s->o.reload_batch > 0 && s->o.reload_batch < n ? s->o.reload_batch : n;
    int rc = 0;
    batch b = {.gen = gen};
    for (b.first = 0; rc == 0 && b.first < n; b.first = b.last) {
        b.last = b.first + size < n ? b.first + size : n;
        for (int i = b.first; rc == 0 && i < b.last; i++)
            rc = spawn_worker(s, i, gen, NULL);
        if (rc == 0)
            rc = wait_until(s, batch_settled, &b);
        if (rc == 0 && (s->stopping || s->want_stop))
            rc = -ESHUTDOWN;
        if (rc == 0 && batch_state(s, &b) < 0)
            rc = -ECHILD;
        if (rc < 0)
            break;
        /* The batch is ready: its slots switch, and their old workers retire. */
        for (int i = b.first; i < b.last; i++)
            s->slot_gen[i] = gen;
        for (worker *w = s->workers; w; w = w->next)
            if (w->slot >= b.first && w->slot < b.last && w->gen != gen)
                retire(w, s->o.retire_signal, s->o.stop_timeout);
        /* In batches, the old ones leave before the next batch starts: that bounds the peak
         * (the point of batches); at most stop_timeout each, then they are killed. */
        if (size < n && b.last < n)
            rc = wait_until(s, batch_old_gone, &b);
    }
    if (rc < 0) {
        /* Slots not switched keep their generation: retire the new workers they started
         * (slots of earlier batches stay on the new generation). */
        emit(s, SIMUL_SUPERVISOR_RELOAD_FAILED, NULL, 0, 0);
        for (worker *w = s->workers; w; w = w->next)
            if (w->gen == gen && s->slot_gen[w->slot] != gen) {
                w->no_restart = true;
                retire(w, s->o.retire_signal, s->o.stop_timeout);
            }
        s->reloading = false;
        s->reload_gen = 0;
        return rc == -ECHILD || rc == -ESHUTDOWN || rc == -ECANCELED || rc == -ETIMEDOUT ? rc
                                                                                         : -ECHILD;
    }
    s->gen = gen;
    for (int i = 0; i < n; i++)
        simul_backoff_reset(&s->restarts[i]);
    s->reloading = false;
    emit(s, SIMUL_SUPERVISOR_RELOADED, NULL, 0, 0);
    s->reload_gen = 0;
    return 0;
}

int simul_supervisor_stop(simul_supervisor *s, double timeout)
{
    if (!s)
        return -EINVAL;
    if (s->stopped)
        return 0;
    if (timeout < 0)
        timeout = s->o.stop_timeout;
    bool first = !s->stopping;
    s->stopping = true;
    if (first)
        emit(s, SIMUL_SUPERVISOR_STOPPING, NULL, 0, 0);
    for (worker *w = s->workers; w; w = w->next) {
        if (w->in_backoff)
            simul_task_cancel(w->watch);
        retire(w, timeout == 0 ? SIGKILL : s->o.stop_signal, -1);
    }
    simul_event_set(s->changed); /* a reload waiting for its generation gives up */
    int killed = 0;
    simul_scope dl;
    simul_scope_timeout(&dl, timeout);
    int rc = wait_until(s, none_alive, NULL);
    simul_scope_end(&dl);
    if (rc < 0) {
        for (worker *w = s->workers; w; w = w->next)
            if (w->alive) {
                emit(s, SIMUL_SUPERVISOR_KILLED, w, 0, 0);
                simul_process_kill(w->proc);
                killed = 1;
            }
        simul_scope sh;
        simul_scope_shield(&sh);
        wait_until(s, none_alive, NULL);
        simul_scope_end(&sh);
    }
    collect(s);
    close_socks(s);
    s->stopped = true;
    emit(s, SIMUL_SUPERVISOR_STOPPED, NULL, 0, 0);
    return killed || timeout == 0 ? 1 : 0;
}

/* ---- serve_forever: the master's signals ---------------------------------------------------- */

static void on_sig(int sig, void *arg)
{
    simul_supervisor *s = arg;
    if (sig == SIGHUP) {
        s->want_reload = true;
    } else if (sig == SIGQUIT || s->want_stop) {
        /* A second stop request, or a fast one: no more waiting. */
        s->want_fast = true;
        s->want_stop = true;
        for (worker *w = s->workers; w; w = w->next)
            if (w->alive) {
                w->retiring = true;
                simul_process_kill(w->proc);
            }
    } else {
        s->want_stop = true;
    }
    simul_event_set(s->wake);
    simul_event_set(s->changed); /* a reload in progress gives up its wait if stopping */
}

static const int master_sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT};

int simul_supervisor_serve_forever(simul_supervisor *s)
{
    if (!s)
        return -EINVAL;
    size_t nsig = sizeof master_sigs / sizeof master_sigs[0];
    size_t added = 0;
    int rc = 0;
    for (; added < nsig; added++)
        if ((rc = simul_add_signal_handler(master_sigs[added], on_sig, s)) < 0)
            break;
    int result = 0;
    while (rc == 0 && !s->want_stop) {
        if (s->want_reload) {
            s->want_reload = false;
            int r = simul_supervisor_reload(s);
            if (r == -ECANCELED) {
                rc = r;
                break;
            }
            continue;
        }
        collect(s);
        simul_event_clear(s->wake);
        if (s->want_reload || s->want_stop)
            continue;
        if ((rc = simul_event_wait(s->wake)) < 0)
            break;
    }
    if (added == nsig || rc == -ECANCELED || s->want_stop) {
        simul_scope sh;
        simul_scope_shield(&sh);
        result = simul_supervisor_stop(s, s->want_fast ? 0 : -1);
        simul_scope_end(&sh);
    }
    for (size_t i = 0; i < added; i++)
        simul_remove_signal_handler(master_sigs[i]);
    return rc < 0 ? rc : result;
}

/* ---- getters, free ----------------------------------------------------------------------- */

int simul_supervisor_port(const simul_supervisor *s)
{
    return s ? s->port : -EINVAL;
}

unsigned simul_supervisor_generation(const simul_supervisor *s)
{
    return s ? s->gen : 0;
}

unsigned long simul_supervisor_deaths(const simul_supervisor *s)
{
    return s ? s->deaths : 0;
}

int simul_supervisor_workers(const simul_supervisor *s, simul_supervisor_worker *out, int max)
{
    if (!s || (max > 0 && !out))
        return -EINVAL;
    int n = 0;
    for (const worker *w = s->workers; w; w = w->next) {
        if (!w->alive)
            continue;
        if (n < max)
            out[n] = (simul_supervisor_worker){.slot = w->slot,
                                               .generation = w->gen,
                                               .pid = w->pid,
                                               .ready = w->ready_ns != 0,
                                               .retiring = w->retiring};
        n++;
    }
    return n;
}

void simul_supervisor_free(simul_supervisor *s)
{
    if (!s)
        return;
    /* Not stopped: kill what runs; the process layer's reaper takes each child. */
    while (s->workers) {
        worker *w = s->workers;
        s->workers = w->next;
        if (w->alive)
            simul_process_kill(w->proc);
        if (w->kill_armed)
            simul_handle_cancel(w->kill_timer);
        if (w->watch) {
            if (!w->done)
                simul_task_cancel(w->watch);
            simul_task_detach(w->watch); /* a watcher still running owns nothing freed here */
        }
        if (w->done || !w->watch) {
            simul_process_close(w->proc);
            if (w->nfd >= 0)
                simul_close(w->nfd);
            free(w);
        }
        /* else: leaked on purpose rather than freed under a running watcher; stop first. */
    }
    close_socks(s);
    free_argv(s);
    free(s->restarts);
    simul_event_free(s->changed);
    simul_event_free(s->wake);
    free(s->slot_gen);
    free(s);
}

/* ---- the ready-made main ----------------------------------------------------------------- */

typedef struct master_args {
    simul_supervisor_opts o;
    int result;
} master_args;

static int master_main(void *arg)
{
    master_args *m = arg;
    simul_supervisor *s;
    int rc = simul_supervisor_start(&m->o, &s);
    if (rc < 0) {
        fprintf(stderr, "supervisor: cannot start: %s\n", simul_strerror(rc));
        m->result = 1;
        return rc;
    }
    if (!m->o.quiet && !m->o.on_event) {
        char line[128];
        int len =
            snprintf(line, sizeof line, "supervisor[%d]: %d workers on port %d%s\n", (int)getpid(),
                     m->o.workers ? m->o.workers : cpu_count(), simul_supervisor_port(s),
                     (m->o.flags & SIMUL_SUPERVISOR_REUSEPORT) ? " (reuseport)" : "");
        if (len > 0) {
            ssize_t r = write(2, line, (size_t)len);
            (void)r;
        }
    }
    /* A worker that cannot even start would restart for ever: give up, as gunicorn's arbiter
     * does ("Worker failed to boot"), so a service manager sees the failure. A signal during
     * the boot is handled by serve_forever right after. */
    size_t nsig = sizeof master_sigs / sizeof master_sigs[0];
    for (size_t i = 0; i < nsig; i++)
        simul_add_signal_handler(master_sigs[i], on_sig, s); /* serve_forever's, from now */
    rc = simul_supervisor_wait_ready(s);
    if (rc == -ECHILD && !s->want_stop) {
        fprintf(stderr, "supervisor[%d]: a worker failed to boot: stopping\n", (int)getpid());
        simul_supervisor_stop(s, -1);
        for (size_t i = 0; i < nsig; i++)
            simul_remove_signal_handler(master_sigs[i]);
        simul_supervisor_free(s);
        m->result = 1;
        return rc;
    }
    rc = simul_supervisor_serve_forever(s);
    for (size_t i = 0; i < nsig; i++)
        simul_remove_signal_handler(master_sigs[i]);
    simul_supervisor_free(s);
    m->result = rc == 0 ? 0 : 1;
    return rc;
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return *end ? dflt : n;
}

int simul_supervisor_main(int argc, char **argv, const simul_supervisor_opts *opts,
                          simul_task_fn worker_fn, void *arg)
{
    if (!opts || !worker_fn)
        return 2;
    if (simul_worker_is_supervised()) {
        /* Die with the master; if it is already gone, the parent is someone else now. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if ((long)getppid() != env_long(ENV_PPID, -1))
            return 1;
        int rc = simul_run(worker_fn, arg);
        return rc < 0 ? 1 : rc;
    }
    master_args m = {.o = *opts};
    if (!m.o.self_argv && !m.o.argv) {
        (void)argc;
        m.o.self_argv = (const char *const *)argv;
    }
    simul_run(master_main, &m);
    return m.result;
}

/* ---- the worker's side ------------------------------------------------------------------- */

bool simul_worker_is_supervised(void)
{
    return getenv(ENV_FDS) != NULL && getenv(ENV_NOTIFY) != NULL;
}

int simul_worker_slot(void)
{
    return simul_worker_is_supervised() ? (int)env_long(ENV_SLOT, -1) : -1;
}

unsigned simul_worker_generation(void)
{
    return simul_worker_is_supervised() ? (unsigned)env_long(ENV_GEN, 0) : 0;
}

int simul_worker_sockets(int *fds, int max)
{
    if (max > 0 && !fds)
        return -EINVAL;
    const char *list = getenv(ENV_FDS);
    if (!list)
        return listen_fds_env(fds, max);
    int n = 0;
    for (const char *p = list; *p;) {
        char *end;
        long fd = strtol(p, &end, 10);
        if (end == p || fd < 0 || fd > INT_MAX)
            return -EINVAL;
        if (n < max)
            fds[n] = (int)fd;
        n++;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -EINVAL;
    }
    return n;
}

int simul_worker_notify_ready(void)
{
    const char *msg = "READY=1\n";
    long fd = env_long(ENV_NOTIFY, -1);
    if (getenv(ENV_FDS) && fd >= 0) {
        fcntl((int)fd, F_SETFD, FD_CLOEXEC); /* not for the programs this worker runs */
        ssize_t r;
        do
            r = write((int)fd, msg, strlen(msg));
        while (r < 0 && errno == EINTR);
        return r < 0 ? -errno : 1;
    }
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path || (path[0] != '/' && path[0] != '@'))
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = 0; /* the abstract namespace */
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    ssize_t r = sendto(s, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    int e = r < 0 ? -errno : 1;
    close(s);
    return e;
}

typedef struct watchdog {
    int fd;
    double period;
} watchdog;

static int watchdog_main(void *arg)
{
    watchdog wd = *(watchdog *)arg;
    free(arg);
    static const char msg[] = "WATCHDOG=1\n";
    while (simul_sleep(wd.period) == 0) {
        ssize_t r = write(wd.fd, msg, sizeof msg - 1);
        (void)r; /* a full pipe holds pings enough; EPIPE: the master is gone */
    }
    return 0;
}

int simul_worker_watchdog_start(void)
{
    long usec = env_long(ENV_WATCHDOG, 0);
    long fd = env_long(ENV_NOTIFY, -1);
    if (!getenv(ENV_FDS) || usec <= 0 || fd < 0)
        return 0;
    if (!simul_loop_current())
        return -ENXIO;
    /* Ours alone (the master closed its copy): never block the loop on a full pipe, and keep
     * it out of programs this worker runs, or they would hold the master's EOF back. */
    fcntl((int)fd, F_SETFL, fcntl((int)fd, F_GETFL) | O_NONBLOCK);
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    watchdog *wd = malloc(sizeof *wd);
    if (!wd)
        return -ENOMEM;
    wd->fd = (int)fd;
    wd->period = (double)usec / 3e6;
    simul_task_opts to = {.name = "watchdog"};
    int rc = simul_task_spawn(NULL, watchdog_main, wd, &to);
    if (rc < 0) {
        free(wd);
        return rc;
    }
    return 1;
}

int simul_worker_wait_drain(void)
{
    int retire = (int)env_long(ENV_RETIRE, 0);
    int sigs[3] = {SIGTERM, SIGINT, 0};
    int n = 2;
    if (retire > 0 && retire < NSIG && retire != SIGTERM && retire != SIGINT && retire != SIGKILL &&
        retire != SIGSTOP)
        sigs[n++] = retire;
    int sig = simul_wait_signal(sigs, n);
    if (sig < 0)
        return sig;
    return sig == retire && retire != SIGTERM && retire != SIGINT ? SIMUL_WORKER_RETIRE
                                                                  : SIMUL_WORKER_STOP;
}
