/* subprocess.c — child processes (asyncio.create_subprocess_exec / _shell). posix_spawn makes
 * the child (glibc: clone(CLONE_VM|CLONE_VFORK), exec errors reported), its pipes become streams,
 * and its exit is a pidfd registered with the loop like any fd. Without pidfds the loop's SIGCHLD
 * makes it poll each of its own children with waitpid(pid, WNOHANG), never -1. A child whose
 * handle is freed while it runs goes to a process-wide reaper thread, so no zombie outlives it.
 * A child group is signalled by number only while the child holds that number; after the reap,
 * through the leader's pidfd or not at all. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../io/io.h"
#include "../io/signal.h"
#include "../offload/pool.h"
#include "../stream/stream.h"
#include "child.h"

extern char **environ;

#define SHELL "/bin/sh"
#define POLL_SLOW 1.0       /* s: SIGCHLD safety net while the loop holds SIGCHLD */
#define POLL_FAST 0.02      /* s: when another loop owns SIGCHLD */
#define REAPER_BLIND_MS 50  /* ms: the reaper's poll period for children without a pidfd */
#define FEED_CHUNK (256 * 1024)
#define READ_CHUNK (64 * 1024)
#define UMASK_SET SIMUL_PROCESS_UMASK(0) /* the tag that keeps 0 meaning "inherit" */

struct simul_process {
    simul_loop *loop;
    pid_t pid;
    int pidfd;             /* -1: watched through SIGCHLD (the fallback) */
    pid_t pgid;            /* the child's own process group; 0: it shares ours */
    int group_pidfd;       /* a reaped group leader's pidfd: names its group exactly, -1 */
    int status;
    bool reaped;
    bool freed;            /* the caller gave the handle back; memory stays while users > 0 */
    bool communicating;
    unsigned users;        /* tasks inside wait / communicate */
    simul_stream *pipes[3]; /* a hold on each pipe stream, so a caller may close one freely */
    simul__waitq waiters;
    simul_process *next, *prev; /* the loop's fallback children */
};

/* ---- the reaper thread: children whose handle was freed while they ran ---------------------- */

typedef struct orphan {
    pid_t pid;
    int pidfd;
} orphan;

static pthread_mutex_t reaper_mu = PTHREAD_MUTEX_INITIALIZER;
static orphan *orphans;
static size_t norphans, orphans_cap;
static bool reaper_running;
static int reaper_wake = -1;

/* Reaps the orphans that exited. Under reaper_mu. */
static void reap_orphans(void)
{
    for (size_t i = 0; i < norphans;) {
        int st;
        if (simul__child_try_reap(orphans[i].pid, orphans[i].pidfd, &st)) {
            if (orphans[i].pidfd >= 0)
                close(orphans[i].pidfd);
            orphans[i] = orphans[--norphans];
        } else {
            i++;
        }
    }
}

static void *reaper_main(void *arg)
{
    (void)arg;
    struct pollfd *pf = NULL;
    size_t pfcap = 0;
    pthread_mutex_lock(&reaper_mu);
    for (;;) {
        reap_orphans();
        if (norphans == 0)
            break;
        size_t k = 0;
        bool blind = reaper_wake < 0;
        if (pfcap < norphans + 1) {
            struct pollfd *np = realloc(pf, (norphans + 1) * sizeof *np);
            if (np) {
                pf = np;
                pfcap = norphans + 1;
            }
        }
        if (pfcap >= norphans + 1) {
            if (reaper_wake >= 0)
                pf[k++] = (struct pollfd){.fd = reaper_wake, .events = POLLIN};
            for (size_t i = 0; i < norphans; i++) {
                if (orphans[i].pidfd >= 0)
                    pf[k++] = (struct pollfd){.fd = orphans[i].pidfd, .events = POLLIN};
                else
                    blind = true;
            }
        } else {
            blind = true; /* no memory for the poll set: look every period instead */
            k = 0;
        }
        int wake = reaper_wake;
        pthread_mutex_unlock(&reaper_mu);
        /* The pidfds polled stay open: only this thread closes orphans' pidfds. */
        poll(k ? pf : NULL, (nfds_t)k, blind ? REAPER_BLIND_MS : -1);
        if (wake >= 0) {
            uint64_t v;
            ssize_t r = read(wake, &v, sizeof v);
            (void)r; /* EAGAIN: it was a pidfd that woke us */
        }
        pthread_mutex_lock(&reaper_mu);
    }
    /* Nothing left: the thread and its eventfd go; the next orphan starts a new one. */
    if (reaper_wake >= 0)
        close(reaper_wake);
    reaper_wake = -1;
    reaper_running = false;
    free(orphans);
    orphans = NULL;
    orphans_cap = 0;
    pthread_mutex_unlock(&reaper_mu);
    free(pf);
    return NULL;
}

/* Takes over a running child (and its pidfd, -1 if none). If no memory or thread can be had the
 * child stays listed (or, without memory for the list, stays a zombie until this process exits)
 * and the next adoption retries the thread. */
static void reaper_adopt(pid_t pid, int pidfd)
{
    pthread_mutex_lock(&reaper_mu);
    if (norphans == orphans_cap) {
        size_t cap = orphans_cap ? orphans_cap * 2 : 8;
        orphan *v = realloc(orphans, cap * sizeof *v);
        if (v) {
            orphans = v;
            orphans_cap = cap;
        }
    }
    if (norphans < orphans_cap) {
        orphans[norphans++] = (orphan){pid, pidfd};
    } else if (pidfd >= 0) {
        close(pidfd);
    }
    if (reaper_running) {
        uint64_t one = 1;
        ssize_t r = write(reaper_wake, &one, sizeof one);
        (void)r; /* EAGAIN: already signalled */
    } else if (norphans > 0) {
        reaper_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); /* -1: the thread polls blind */
        pthread_attr_t at;
        pthread_t th;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 64 * 1024);
        int rc = simul__thread_start(&th, &at, reaper_main, NULL);
        pthread_attr_destroy(&at);
        if (rc == 0) {
            reaper_running = true;
        } else if (reaper_wake >= 0) {
            close(reaper_wake);
            reaper_wake = -1;
        }
    }
    pthread_mutex_unlock(&reaper_mu);
}

/* ---- the loop's fallback children (SIGCHLD) -------------------------------------------------- */

/* One per loop that has children without a pidfd. Loop thread only. */
typedef struct childloop {
    simul_loop *loop;
    simul_process *head;
    bool sig_held;    /* our SIGCHLD handler is installed on this loop */
    bool timer_armed;
    simul_handle timer;
} childloop;

static __thread childloop *tls_children;

static void complete(simul_process *p, int status);

/* complete() unlinks p, and frees cl with the last child: cl is not touched after that. */
static void poll_children(childloop *cl)
{
    for (simul_process *p = cl->head, *next; p; p = next) {
        next = p->next;
        int st;
        if (simul__child_try_reap(p->pid, -1, &st))
            complete(p, st);
    }
}

static void on_sigchld(int sig, void *arg)
{
    (void)sig;
    poll_children(arg);
}

static void on_poll_timer(void *arg)
{
    childloop *cl = arg;
    cl->timer_armed = false;
    poll_children(cl);
    if (tls_children != cl)
        return; /* the last child went, and cl with it */
    if (simul_call_later(cl->sig_held ? POLL_SLOW : POLL_FAST, on_poll_timer, cl, &cl->timer) == 0)
        cl->timer_armed = true;
}

/* The loop's record, made on first use. Before a fallback child is spawned: SIGCHLD is caught
 * from then on, so an exit that comes before the child is listed is not missed. */
static childloop *children_get(simul_loop *loop, int *err)
{
    childloop *cl = tls_children;
    if (cl) {
        /* Emptied records are freed, and a loop cannot close with a child listed. */
        SIMUL__ASSERT(cl->loop == loop);
        return cl;
    }
    cl = calloc(1, sizeof *cl);
    if (!cl) {
        *err = -ENOMEM;
        return NULL;
    }
    cl->loop = loop;
    /* -EBUSY: another loop owns SIGCHLD; the fast timer poll stands in for it. */
    cl->sig_held = simul__signal_add(SIGCHLD, on_sigchld, cl, false) == 0;
    tls_children = cl;
    return cl;
}

static void children_maybe_free(childloop *cl)
{
    if (cl->head)
        return;
    if (cl->timer_armed)
        simul_handle_cancel(cl->timer);
    if (cl->sig_held)
        simul_remove_signal_handler(SIGCHLD);
    tls_children = NULL;
    free(cl);
}

static void children_add(childloop *cl, simul_process *p)
{
    p->prev = NULL;
    p->next = cl->head;
    if (cl->head)
        cl->head->prev = p;
    cl->head = p;
    if (!cl->timer_armed &&
        simul_call_later(cl->sig_held ? POLL_SLOW : POLL_FAST, on_poll_timer, cl, &cl->timer) == 0)
        cl->timer_armed = true;
}

static void children_remove(simul_process *p)
{
    childloop *cl = tls_children;
    if (p->prev)
        p->prev->next = p->next;
    else
        cl->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
    children_maybe_free(cl);
}

/* ---- watching and reaping -------------------------------------------------------------------- */

/* The child is gone: record its status, stop watching, wake the waiters. */
static void complete(simul_process *p, int status)
{
    p->status = status;
    p->reaped = true;
    if (p->pidfd >= 0 && p->pgid == p->pid) {
        /* Kept for simul_process_send_signal_group: the group may outlive its leader, and after
         * the reap only the pidfd tells it from a later group with the same number. */
        simul_fd_forget(p->pidfd);
        p->group_pidfd = p->pidfd;
        p->pidfd = -1;
    } else if (p->pidfd >= 0) {
        simul_close(p->pidfd); /* drops the reader and the registration with it */
        p->pidfd = -1;
    } else {
        children_remove(p);
    }
    simul__waitq_wake_all(&p->waiters, 0);
}

/* Level-triggered: a pidfd is readable once the child has exited (so it is reapable now). */
static void on_pidfd(int fd, void *arg)
{
    (void)fd;
    simul_process *p = arg;
    int st;
    if (simul__child_try_reap(p->pid, p->pidfd, &st))
        complete(p, st);
}

/* Starts watching a child just spawned. Never fails: without a pidfd (or without a registration
 * for it) the child is watched through SIGCHLD, which `cl` (made before the spawn when the
 * fallback was planned) or a record made now provides. */
static void watch(simul_process *p, childloop *cl)
{
    int fd = simul__child_pidfd_open(p->pid);
    if (fd >= 0) {
        simul_fd_forget(fd); /* a stale record of an fd closed behind the loop's back */
        if (simul_add_reader(fd, on_pidfd, p) == 0) {
            p->pidfd = fd;
            return;
        }
        close(fd);
    }
    int err = 0;
    if (!cl)
        cl = children_get(p->loop, &err);
    if (!cl) {
        /* No memory even for the fallback record: the reaper thread watches it instead. */
        reaper_adopt(p->pid, -1);
        p->reaped = true; /* from the handle's point of view: it will never know the status */
        p->status = SIMUL__CHILD_UNKNOWN;
        return;
    }
    children_add(cl, p);
    /* SIGCHLD may have come between the spawn and the listing (with cl made just now: before). */
    int st;
    if (simul__child_try_reap(p->pid, -1, &st))
        complete(p, st);
}

/* ---- spawning -------------------------------------------------------------------------------- */

typedef struct spawn_fds {
    int child[3];  /* the fd dup2'ed onto 0/1/2 in the child (-1: none); closed after the spawn
                      when `own` */
    bool own[3];
    int parent[3]; /* our end of each pipe, -1 */
} spawn_fds;

/* A copy of fd at 3 or above (close-on-exec), so that a dup2 onto 0..2 in the child cannot
 * overwrite it before its own turn. */
static int above_stdio(int fd)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static void close_fds(spawn_fds *s)
{
    for (int i = 0; i < 3; i++) {
        if (s->own[i] && s->child[i] >= 0)
            close(s->child[i]);
        if (s->parent[i] >= 0)
            close(s->parent[i]);
        s->child[i] = s->parent[i] = -1;
        s->own[i] = false;
    }
}

static int prepare_fds(const simul_process_opts *o, spawn_fds *s)
{
    const int mode[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
    const int fd[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
    for (int i = 0; i < 3; i++) {
        s->child[i] = s->parent[i] = -1;
        s->own[i] = false;
    }
    for (int i = 0; i < 3; i++) {
        if (mode[i] == SIMUL_STDIO_PIPE) {
            int p[2];
            if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
            int mine = i == 0 ? p[1] : p[0], theirs = i == 0 ? p[0] : p[1];
            s->parent[i] = mine;
            s->child[i] = theirs;
            s->own[i] = true;
            if (theirs < 3) {
                int up = above_stdio(theirs);
                if (up < 0)
                    return -errno;
                close(theirs);
                s->child[i] = up;
            }
        } else if (mode[i] == SIMUL_STDIO_FD) {
            if (fcntl(fd[i], F_GETFD) < 0)
                return -EBADF;
            s->child[i] = fd[i];
            if (fd[i] < 3 && fd[i] != i) {
                int up = above_stdio(fd[i]);
                if (up < 0)
                    return -errno;
                s->child[i] = up;
                s->own[i] = true;
            }
        }
    }
    return 0;
}

static bool mode_ok(int m, int i)
{
    return (m >= SIMUL_STDIO_INHERIT && m <= SIMUL_STDIO_FD) || (m == SIMUL_STDIO_STDOUT && i == 2);
}

/* PATH lookup for a program when the child gets its own environment: as execvp, but in env's
 * PATH (as Python does), checked here since posix_spawnp would search this process's PATH.
 * Returns 0 with the path in buf, or -ENOENT / -EACCES (a match that cannot be executed). */
static int search_path(const char *prog, const char *const *env, char *buf, size_t cap)
{
    const char *path = NULL;
    for (const char *const *e = env; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0) {
            path = *e + 5;
            break;
        }
    if (!path)
        path = "/bin:/usr/bin"; /* glibc's default (confstr _CS_PATH) */
    size_t plen = strlen(prog);
    int err = -ENOENT;
    for (const char *d = path;; d++) {
        const char *end = strchr(d, ':');
        size_t dlen = end ? (size_t)(end - d) : strlen(d);
        const char *dir = dlen ? d : ".";
        if (!dlen)
            dlen = 1;
        if (dlen + 1 + plen + 1 <= cap) {
            memcpy(buf, dir, dlen);
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, prog, plen + 1);
            struct stat st;
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
                if (faccessat(AT_FDCWD, buf, X_OK, AT_EACCESS) == 0)
                    return 0;
                err = -EACCES;
            }
        }
        if (!end)
            break;
        d = end;
    }
    return err;
}

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE_CLOSEFROM 1 /* posix_spawn_file_actions_addclosefrom_np */
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define HAVE_DUP2_SELF 1 /* adddup2(fd, fd) clears FD_CLOEXEC in the child (POSIX 2024) */
#endif

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static bool sorted_has(const int *v, size_t n, int x)
{
    return bsearch(&x, v, n, sizeof *v, cmp_int) != NULL;
}

#ifdef HAVE_CLOSEFROM
/* Closes in the child every fd above 2 but the sorted fds pass[0..n). Above the last one a
 * closefrom; below it only the fds that would survive the exec (open here without
 * close-on-exec) need a close action, found in /proc/self/fd or, without /proc, one by one. */
static int close_all_but(posix_spawn_file_actions_t *fa, const int *pass, size_t n)
{
    int top = pass[n - 1], rc = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while (!rc && (e = readdir(d))) {
            char *end;
            long fd = strtol(e->d_name, &end, 10);
            if (*end || end == e->d_name || fd < 3 || fd >= top || sorted_has(pass, n, (int)fd))
                continue;
            int fl = fcntl((int)fd, F_GETFD); /* the directory's own fd is close-on-exec */
            if (fl >= 0 && !(fl & FD_CLOEXEC))
                rc = posix_spawn_file_actions_addclose(fa, (int)fd);
        }
        closedir(d);
    } else {
        for (int fd = 3; !rc && fd < top; fd++) {
            int fl = fcntl(fd, F_GETFD);
            if (fl >= 0 && !(fl & FD_CLOEXEC) && !sorted_has(pass, n, fd))
                rc = posix_spawn_file_actions_addclose(fa, fd);
        }
    }
    /* A close action on an fd another thread closed meanwhile is no error (glibc). */
    if (!rc && top < INT_MAX)
        rc = posix_spawn_file_actions_addclosefrom_np(fa, top + 1);
    return rc;
}
#endif

/* What the spawn itself needs, so it can run on the umask thread. */
typedef struct spawn_call {
    const char *const *argv;
    const char *const *env;
    posix_spawn_file_actions_t *fa;
    posix_spawnattr_t *at;
    mode_t mask;
    pid_t pid;
    int rc; /* a positive errno, as posix_spawn's */
} spawn_call;

static int spawn_now(spawn_call *c)
{
    char *const *av = (char *const *)c->argv;
    char *const *ev = c->env ? (char *const *)c->env : environ;
    if (strchr(c->argv[0], '/'))
        return posix_spawn(&c->pid, c->argv[0], c->fa, c->at, av, ev);
    if (!c->env)
        return posix_spawnp(&c->pid, c->argv[0], c->fa, c->at, av, ev);
    char path[PATH_MAX];
    int r = search_path(c->argv[0], c->env, path, sizeof path);
    return r < 0 ? -r : posix_spawn(&c->pid, path, c->fa, c->at, av, ev);
}

/* posix_spawn has no umask attribute and umask(2) is process-wide: this thread takes a private
 * copy of the cwd/root/umask record first, so the mask it sets reaches the child (which copies
 * the record of the thread that spawns it) and nobody else. */
static void *umask_thread(void *arg)
{
    spawn_call *c = arg;
    if (unshare(CLONE_FS) < 0) {
        c->rc = errno;
        return NULL;
    }
    umask(c->mask);
    c->rc = spawn_now(c);
    return NULL;
}

static int spawn_with_umask(spawn_call *c)
{
    pthread_t th;
    int rc = simul__thread_start(&th, NULL, umask_thread, c);
    if (rc < 0)
        return -rc;
    pthread_join(th, NULL);
    return c->rc;
}

static int do_spawn(const simul_process_opts *o, const char *const *argv, spawn_fds *s, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int *pass = NULL;
    size_t npass = o->n_pass_fds;
    if (npass) {
        pass = malloc(npass * sizeof *pass);
        if (!pass)
            return -ENOMEM;
        memcpy(pass, o->pass_fds, npass * sizeof *pass);
        qsort(pass, npass, sizeof *pass, cmp_int);
    }
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc) {
        free(pass);
        return -rc;
    }
    rc = posix_spawnattr_init(&at);
    if (rc) {
        posix_spawn_file_actions_destroy(&fa);
        free(pass);
        return -rc;
    }
    const int mode[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
    for (int i = 0; i < 3 && !rc; i++) {
        if (s->child[i] >= 0)
            rc = posix_spawn_file_actions_adddup2(&fa, s->child[i], i);
        else if (mode[i] == SIMUL_STDIO_DEVNULL)
            rc = posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY,
                                                  0);
        else if (mode[i] == SIMUL_STDIO_STDOUT)
            rc = posix_spawn_file_actions_adddup2(&fa, 1, 2); /* after fd 1 is in place */
    }
    /* The closes come after the stdio dup2s: a caller's stdout_fd may be one of the fds closed. */
#ifdef HAVE_CLOSEFROM
    if (!rc && !(o->flags & SIMUL_PROCESS_KEEP_FDS))
        rc = npass ? close_all_but(&fa, pass, npass)
                   : posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    for (size_t i = 0; i < npass && !rc; i++)
        if (i == 0 || pass[i] != pass[i - 1])
            rc = posix_spawn_file_actions_adddup2(&fa, pass[i], pass[i]);
    free(pass);
    if (!rc && o->cwd)
        rc = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    /* Whatever this process does with signals (simul_run's SIGINT, ignored SIGPIPE, blocked
     * workers), the child starts clean. */
    sigset_t none, all;
    sigemptyset(&none);
    /* Every bit, not sigfillset: glibc's set leaves out its two internal signals (32, 33), and
     * its spawn then starts the child with them ignored, which the program would keep. */
    memset(&all, 0xff, sizeof all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (o->flags & SIMUL_PROCESS_NEW_SESSION)
        flags |= POSIX_SPAWN_SETSID;
    if ((o->flags & SIMUL_PROCESS_NEW_PGROUP) || o->join_pgid > 0)
        flags |= POSIX_SPAWN_SETPGROUP;
    if (!rc)
        rc = posix_spawnattr_setsigmask(&at, &none);
    if (!rc)
        rc = posix_spawnattr_setsigdefault(&at, &all);
    if (!rc)
        rc = posix_spawnattr_setpgroup(&at, o->join_pgid); /* 0: a group of its own */
    if (!rc)
        rc = posix_spawnattr_setflags(&at, flags);
    if (!rc) {
        spawn_call c = {.argv = argv, .env = o->env, .fa = &fa, .at = &at, .pid = 0, .rc = 0};
        if (o->umask) {
            c.mask = (mode_t)(o->umask & 0777);
            rc = spawn_with_umask(&c);
        } else {
            rc = spawn_now(&c);
        }
        *pid = c.pid;
    }
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
}

/* Debug mode: an errno alone does not say what failed (the program, or the cwd it was to run
 * in: posix_spawn reports both as ENOENT), so name it. */
static void report_spawn_failure(const simul_process_opts *o, const char *const *argv, int rc)
{
    if (o->cwd && access(o->cwd, X_OK) < 0) {
        fprintf(stderr, "simul: simul_process_exec(): cannot start '%s': its working directory "
                        "'%s' is not usable (%s)\n", argv[0], o->cwd, strerror(errno));
        return;
    }
    fprintf(stderr, "simul: simul_process_exec(): cannot start '%s': %s%s%s\n", argv[0],
            simul_strerror(rc),
            rc == -ENOENT && !strchr(argv[0], '/') ? " (not found in PATH" : "",
            rc == -ENOENT && !strchr(argv[0], '/') ? (o->env ? " of the env given)" : ")") : "");
}

/* Everything about opts that can be refused before anything is made. */
static int check_opts(const simul_process_opts *o)
{
    const int mode[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
    const int fd[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
    for (int i = 0; i < 3; i++) {
        if (!mode_ok(mode[i], i))
            return -EINVAL;
        if (mode[i] == SIMUL_STDIO_FD && fd[i] < 0)
            return -EBADF;
    }
    if (o->flags & ~(SIMUL_PROCESS_NEW_SESSION | SIMUL_PROCESS_NEW_PGROUP | SIMUL_PROCESS_KEEP_FDS))
        return -EINVAL;
    if (o->umask && (o->umask & ~0777) != UMASK_SET)
        return -EINVAL;
    if (o->join_pgid < 0 ||
        (o->join_pgid > 0 && (o->flags & (SIMUL_PROCESS_NEW_SESSION | SIMUL_PROCESS_NEW_PGROUP))))
        return -EINVAL;
    if (o->n_pass_fds && !o->pass_fds)
        return -EINVAL;
    if (o->n_pass_fds > (size_t)INT_MAX)
        return -EINVAL;
    for (size_t i = 0; i < o->n_pass_fds; i++)
        if (o->pass_fds[i] >= 0 && o->pass_fds[i] < 3)
            return -EINVAL; /* stdio is the modes' business */
    for (size_t i = 0; i < o->n_pass_fds; i++)
        if (o->pass_fds[i] < 0 || fcntl(o->pass_fds[i], F_GETFD) < 0)
            return -EBADF;
#ifndef HAVE_DUP2_SELF
    if (o->n_pass_fds)
        return -ENOSYS; /* an older libc would leave them close-on-exec */
#endif
    return 0;
}

static void release_pipe(simul_process *p, int i);

static int spawn(const simul_process_opts *o, const char *const *argv, simul_process **out)
{
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    if (!argv || !argv[0])
        return -EINVAL;
    int rc = check_opts(o);
    if (rc < 0)
        return rc;
    simul_process *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->loop = loop;
    p->pidfd = -1;
    p->group_pidfd = -1;
    spawn_fds s;
    rc = prepare_fds(o, &s);
    /* The streams exist before the child does: once it runs, nothing can fail any more. */
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (s.parent[i] < 0)
            continue;
        rc = simul_stream_from_fd(s.parent[i], &p->pipes[i]);
        if (rc == 0) {
            s.parent[i] = -1; /* the stream's now */
            p->pipes[i]->users++;
        }
    }
    childloop *cl = NULL;
    if (rc == 0 && simul__child_no_pidfd())
        cl = children_get(loop, &rc); /* SIGCHLD caught before the child can exit */
    if (rc == 0) {
        rc = do_spawn(o, argv, &s, &p->pid);
        if (rc < 0 && simul__loop_debug(loop))
            report_spawn_failure(o, argv, rc);
    }
    close_fds(&s);
    if (rc < 0) {
        for (int i = 0; i < 3; i++)
            release_pipe(p, i);
        if (cl)
            children_maybe_free(cl);
        free(p);
        return rc;
    }
    if (o->flags & (SIMUL_PROCESS_NEW_SESSION | SIMUL_PROCESS_NEW_PGROUP))
        p->pgid = p->pid;
    else
        p->pgid = o->join_pgid;
    watch(p, cl);
    simul__loop_handle_ref(loop); /* until simul_process_close: the loop does not close under a handle */
    *out = p;
    return 0;
}

int simul_process_exec(const simul_process_opts *opts, simul_process **out)
{
    if (out)
        *out = NULL;
    if (!opts || !out)
        return -EINVAL;
    return spawn(opts, opts->argv, out);
}

int simul_process_shell(const char *cmd, const simul_process_opts *opts, simul_process **out)
{
    if (out)
        *out = NULL;
    if (!cmd || !out || (opts && opts->argv))
        return -EINVAL;
    simul_process_opts none = {0};
    const char *argv[] = {SHELL, "-c", cmd, NULL};
    return spawn(opts ? opts : &none, argv, out);
}

/* ---- the handle ------------------------------------------------------------------------------ */

static simul_stream *pipe_of(const simul_process *p, int i)
{
    simul_stream *s = p && !p->freed ? p->pipes[i] : NULL;
    return s && !s->closing ? s : NULL;
}

simul_stream *simul_process_stdin(const simul_process *p)
{
    return pipe_of(p, 0);
}

simul_stream *simul_process_stdout(const simul_process *p)
{
    return pipe_of(p, 1);
}

simul_stream *simul_process_stderr(const simul_process *p)
{
    return pipe_of(p, 2);
}

int simul_process_pid(const simul_process *p)
{
    return p ? (int)p->pid : -EINVAL;
}

/* Closes a stream without suspending: in a task, inside an already expired deadline scope, so a
 * flush that would wait gives up at once and the queue is dropped. */
static void close_now(simul_stream *s)
{
    if (s->closing)
        return;
    simul_scope sc;
    if (simul__task_self() && simul_scope_deadline_ns(&sc, INT64_MIN) == 0) {
        simul_stream_close(s);
        simul_scope_end(&sc);
    } else {
        simul_stream_close(s);
    }
}

/* Closes pipe i if still open and drops our hold (which frees the stream once it is closed). */
static void release_pipe(simul_process *p, int i)
{
    simul_stream *s = p->pipes[i];
    if (!s)
        return;
    p->pipes[i] = NULL;
    close_now(s);
    simul__stream_leave(s);
}

static void leave(simul_process *p)
{
    if (--p->users == 0 && p->freed)
        free(p);
}

int simul_process_wait(simul_process *p, int *status)
{
    simul_task *t = simul__task_require(__func__);
    if (!p || p->freed)
        return -EINVAL;
    if (!t)
        return -EPERM;
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    p->users++;
    while (rc == 0 && !p->reaped && !p->freed) {
        /* A SIGCHLD is coming, not an fd event the loop counts: not stuck (debug's hint). */
        bool blind = p->pidfd < 0;
        if (blind)
            simul__loop_thread_wait_begin(p->loop);
        rc = simul__waitq_park(t, &p->waiters);
        if (blind)
            simul__loop_thread_wait_end(p->loop);
    }
    if (rc == 0 && !p->reaped)
        rc = -ECANCELED; /* freed under us */
    if (rc == 0 && status)
        *status = p->status;
    leave(p);
    return rc;
}

int simul_process_returncode(simul_process *p, int *status)
{
    if (!p || p->freed)
        return -EINVAL;
    int st;
    if (!p->reaped && simul__child_try_reap(p->pid, p->pidfd, &st))
        complete(p, st);
    if (!p->reaped)
        return -EAGAIN;
    if (status)
        *status = p->status;
    return 0;
}

int simul_process_send_signal(simul_process *p, int sig)
{
    if (!p || p->freed || sig < 0 || sig >= NSIG)
        return -EINVAL;
    if (p->reaped)
        return -ESRCH;
    return simul__child_signal(p->pid, p->pidfd, sig);
}

int simul_process_send_signal_group(simul_process *p, int sig)
{
    if (!p || p->freed || sig < 0 || sig >= NSIG || p->pgid <= 0)
        return -EINVAL;
    return simul__child_signal_group(p->pgid, !p->reaped, p->group_pidfd, sig);
}

int simul_process_terminate(simul_process *p)
{
    return simul_process_send_signal(p, SIGTERM);
}

int simul_process_kill(simul_process *p)
{
    return simul_process_send_signal(p, SIGKILL);
}

void simul_process_close(simul_process *p)
{
    if (!p || p->freed)
        return;
    p->freed = true;
    for (int i = 0; i < 3; i++)
        release_pipe(p, i);
    simul__waitq_wake_all(&p->waiters, -ECANCELED);
    int st;
    if (!p->reaped && simul__child_try_reap(p->pid, p->pidfd, &st)) {
        complete(p, st);
    } else if (!p->reaped) {
        if (p->pidfd >= 0)
            simul_fd_forget(p->pidfd); /* the reaper polls it from now on, on its own thread */
        else
            children_remove(p);
        reaper_adopt(p->pid, p->pidfd);
        p->pidfd = -1;
    }
    if (p->group_pidfd >= 0) {
        close(p->group_pidfd);
        p->group_pidfd = -1;
    }
    simul__loop_handle_unref(p->loop);
    if (p->users == 0)
        free(p);
}

/* ---- communicate ----------------------------------------------------------------------------- */

typedef struct feed {
    simul_stream *s;
    const char *data;
    size_t len;
    int rc;
} feed;

/* Writes the input, then closes stdin; a child that stopped reading is not an error. Closes only
 * once everything was taken by the pipe, so an interrupted feed never shows the child a false
 * EOF. */
static int feed_main(void *arg)
{
    feed *f = arg;
    int rc = simul_stream_set_write_buffer_limits(f->s, 0, 0); /* drain = until all is taken */
    for (size_t off = 0; rc == 0 && off < f->len;) {
        size_t n = f->len - off < FEED_CHUNK ? f->len - off : FEED_CHUNK;
        rc = simul_stream_write(f->s, f->data + off, n);
        if (rc == 0)
            rc = simul_stream_drain(f->s);
        off += n;
    }
    if (rc == -EPIPE || rc == -ECONNRESET)
        rc = 0; /* as asyncio: the child exited or closed its stdin early */
    if (rc == 0) {
        int c = simul_stream_close(f->s); /* nothing queued: does not suspend */
        if (c < 0 && c != -EPIPE && c != -ECONNRESET)
            rc = c;
    }
    f->rc = rc;
    return rc;
}

typedef struct collect {
    simul_stream *s;
    char **buf;
    size_t *len;
    size_t limit;
    int rc;
    char *obuf;        /* where buf/len point: the caller's output may be on a compact stack */
    size_t olen;
    char scratch[512]; /* output dropped (out == NULL): read into this, via the stream's buffer */
} collect;

static int collect_pipe(collect *c);

static int collect_main(void *arg)
{
    collect *c = arg;
    return c->rc = collect_pipe(c);
}

static int collect_pipe(collect *c)
{
    if (!c->buf) {
        for (;;) {
            long n = simul_stream_read(c->s, c->scratch, sizeof c->scratch);
            if (n <= 0)
                return (int)n;
        }
    }
    size_t cap = 0;
    for (;;) {
        size_t len = *c->len;
        /* Room for one more chunk, never beyond limit + 1 (which proves the overflow) + NUL. */
        size_t want = c->limit - len < READ_CHUNK ? c->limit - len + 1 : READ_CHUNK;
        if (cap - len < want + 1) {
            size_t ncap = cap ? cap : READ_CHUNK;
            while (ncap - len < want + 1)
                ncap *= 2;
            char *nb = realloc(*c->buf, ncap);
            if (!nb)
                return -ENOMEM;
            *c->buf = nb;
            cap = ncap;
        }
        long n = simul_stream_read(c->s, *c->buf + len, want);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 0;
        *c->len = len + (size_t)n;
        (*c->buf)[*c->len] = '\0';
        if (*c->len > c->limit)
            return -EMSGSIZE;
    }
}

void simul_process_output_free(simul_process_output *o)
{
    if (!o)
        return;
    free(o->out);
    free(o->err);
    memset(o, 0, sizeof *o);
}

int simul_process_communicate(simul_process *p, const void *input, size_t input_len, size_t limit,
                              simul_process_output *out, int *status)
{
    simul_task *t = simul__task_require(__func__);
    if (out)
        memset(out, 0, sizeof *out);
    if (!p || p->freed || (input_len && !input))
        return -EINVAL;
    if (!t)
        return -EPERM;
    simul_stream *in = pipe_of(p, 0), *so = pipe_of(p, 1), *se = pipe_of(p, 2);
    if (input_len && !in)
        return -EINVAL;
    if (p->communicating)
        return -EBUSY;
    int rc = simul__task_check(t);
    if (rc < 0)
        return rc;
    if (limit == 0)
        limit = SIMUL_PROCESS_OUTPUT_LIMIT;
    if (limit == SIZE_MAX)
        limit = SIZE_MAX - 2; /* limit + 1 and the NUL still fit */
    if (out) {
        /* An empty pipe gives "" (as asyncio's b''), so NULL means only "not a pipe". */
        if ((so && !(out->out = calloc(1, 1))) || (se && !(out->err = calloc(1, 1)))) {
            simul_process_output_free(out);
            return -ENOMEM;
        }
    }
    /* The helper tasks get the records, not the caller's frames: those move while a compact
     * caller is suspended (and so would `input` if it is on that stack). */
    SIMUL__REC(feed, fdp, t);
    SIMUL__REC(collect, cop, t);
    SIMUL__REC(collect, cep, t);
    void *input_copy = NULL;
    if (input_len && simul__on_run_stack(t, input) && (input_copy = malloc(input_len)))
        input = memcpy(input_copy, input, input_len);
    if (!fdp || !cop || !cep || (input_len && simul__on_run_stack(t, input))) {
        simul_process_output_free(out);
        return -ENOMEM;
    }
    p->users++;
    p->communicating = true;
    feed fd_ = {in, input, input_len, 0}, *fdr = fdp;
    *fdr = fd_;
#define fd (*fdr)
    collect *co_ = cop, *ce_ = cep;
    *co_ = (collect){so, out ? &co_->obuf : NULL, out ? &co_->olen : NULL, limit, 0,
                     out ? out->out : NULL, 0, {0}};
    *ce_ = (collect){se, out ? &ce_->obuf : NULL, out ? &ce_->olen : NULL, limit, 0,
                     out ? out->err : NULL, 0, {0}};
#define co (*co_)
#define ce (*ce_)
    simul_group *g;
    rc = simul_group_new(&g);
    if (rc == 0) {
        /* A group: the first failure (-EMSGSIZE, ...) stops the others, and a cancel or deadline
         * of this task stops them all before the call returns. */
        simul_task_opts opt = {.name = "communicate", .stack_size = 0};
        int sr = 0;
        if (in)
            sr = simul_group_spawn(g, feed_main, &fd, &opt);
        if (sr == 0 && so)
            sr = simul_group_spawn(g, collect_main, &co, &opt);
        if (sr == 0 && se)
            sr = simul_group_spawn(g, collect_main, &ce, &opt);
        if (sr < 0)
            simul_group_cancel(g);
        int first = 0;
        rc = simul_group_join(g, &first);
        if (rc == 0)
            rc = sr < 0 ? sr : first;
        /* The group does not count -ECANCELED as a failure: a pipe closed under a child (by
         * free, or by the caller) ends it that way, and the output is then incomplete. */
        if (rc == 0)
            rc = fd.rc ? fd.rc : co.rc ? co.rc : ce.rc;
    }
    if (out) {
        out->out = co.obuf;
        out->out_len = co.olen;
        out->err = ce.obuf;
        out->err_len = ce.olen;
    }
#undef fd
#undef co
#undef ce
    free(input_copy);
    p->communicating = false;
    if (rc == 0 && p->freed)
        rc = -ECANCELED;
    if (rc == 0) {
        /* Both at EOF: nothing is queued, so these close at once. */
        if (so)
            close_now(so);
        if (se)
            close_now(se);
        rc = simul_process_wait(p, status);
    }
    leave(p);
    return rc;
}

/* ---- test hooks (the unit tests link the static library) ------------------------------------- */

/* 1 if p's exit is watched through a pidfd, 0 through SIGCHLD, -1 if it has been reaped. */
int simul__process_test_watch(const simul_process *p);
int simul__process_test_watch(const simul_process *p)
{
    return p->reaped ? -1 : p->pidfd >= 0;
}

/* Children the reaper thread still has to reap. */
size_t simul__process_test_orphans(void);
size_t simul__process_test_orphans(void)
{
    pthread_mutex_lock(&reaper_mu);
    size_t n = norphans;
    pthread_mutex_unlock(&reaper_mu);
    return n;
}
