/* procpool.c — ProcessPoolExecutor: CPU-bound functions run in forked worker processes while the
 * calling task waits on pipes through the loop. A call owns its worker from hand-over to
 * release; anything that leaves a worker in an unknown state (a cancel mid-call, a crash, a
 * malformed reply) kills it and reaps it by pid before the call returns, so the next call gets a
 * fresh one and no zombie or fd outlives a call. Workers are forked from a loop callback, so they
 * run on the loop thread's stack, not on the small stack of the task that asked for them. */
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"

#define REQ_MAGIC 0x53505251u /* "SPRQ" */
#define REP_MAGIC 0x53505250u /* "SPRP" */
#define MAX_WORKERS 4096
#define PIPE_BYTES (1 << 20) /* fewer wake-ups per MiB moved; a failure just keeps 64 KiB */

/* The request a worker reads: the function is a pointer of the parent, valid in the fork. */
typedef struct req_hdr {
    uint32_t magic;
    uint32_t pad;
    simul_proc_fn fn;
    uint64_t in_len;
    uint64_t max_reply; /* the worker refuses to send more (the parent checks again) */
} req_hdr;

enum { REP_OK = 0, REP_TOO_BIG = 1, REP_NOMEM = 2 };

typedef struct rep_hdr {
    uint32_t magic;
    int32_t status; /* REP_*: only REP_OK is followed by out_len bytes */
    int32_t result; /* fn's return value (REP_OK, REP_TOO_BIG) */
    uint32_t pad;
    uint64_t out_len;
} rep_hdr;

enum { W_EMPTY = 0, W_IDLE, W_BUSY };

typedef struct worker {
    pid_t pid;  /* 0: no process (never started, or reaped) */
    int pidfd;  /* -1 where pidfd_open is missing: reaping then blocks briefly */
    int rq, rp; /* the parent's ends: requests out, replies in; -1 when closed */
    uint8_t state;
} worker;

struct simul_procpool {
    simul_loop *loop;
    worker *w;
    int size;           /* slots: the maximum number of workers */
    int nworkers;       /* processes alive (not yet reaped) */
    simul__waitq queue; /* calls waiting for a worker; w->value gets the one handed over */
    size_t max_request, max_reply;
    int users; /* calls inside: the memory stays until the last one leaves a closed pool */
    bool closed;
};

/* An internal error of one exchange: the worker's end of a pipe is gone (EOF, EPIPE). */
#define DIED (-EOWNERDEAD)

/* ---- the worker process ---------------------------------------------------------------------- */

/* Blocking I/O for the worker. -1 on EOF or an error (the parent is gone or gave up on us). */
static int w_read(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int w_writev(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t n = writev(fd, iov, cnt);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* Every fd but 0-2 and the worker's two pipe ends: a forked copy of a socket the parent later
 * closes would keep its peer from ever seeing EOF. */
static void close_inherited(int a, int b)
{
    int keep[2] = {a < b ? a : b, a < b ? b : a};
    unsigned from = 3;
    for (int i = 0; i < 2; i++) {
        if (keep[i] < (int)from)
            continue;
        if ((unsigned)keep[i] > from && close_range(from, (unsigned)keep[i] - 1, 0) < 0) {
            for (unsigned fd = from; fd < (unsigned)keep[i]; fd++)
                close((int)fd);
        }
        from = (unsigned)keep[i] + 1;
    }
    if (close_range(from, ~0u, 0) < 0) {
        long max = sysconf(_SC_OPEN_MAX);
        if (max < 0 || max > 65536)
            max = 65536;
        for (long fd = from; fd < max; fd++)
            close((int)fd);
    }
}

/* Handlers of the parent (its signal self-pipe, the stack-overflow reporter, ...) mean nothing
 * here: back to the default actions, so a crash shows as the signal that caused it. SIGINT is
 * ignored: the terminal sends Ctrl-C to the whole process group, and the parent decides. */
static void reset_signals(void)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL}, ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&dfl.sa_mask);
    sigemptyset(&ign.sa_mask);
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP)
            continue;
        if (sigaction(s, NULL, &old) == 0 && old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)
            sigaction(s, &dfl, NULL);
    }
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGPIPE, &ign, NULL); /* a parent that stopped reading: EPIPE, and we leave */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Reads and drops len bytes (a request whose input could not be stored). */
static int w_skip(int fd, uint64_t len)
{
    char sink[4096];
    while (len > 0) {
        size_t n = len < sizeof sink ? (size_t)len : sizeof sink;
        if (w_read(fd, sink, n) < 0)
            return -1;
        len -= n;
    }
    return 0;
}

#ifdef SIMUL_ASAN
/* The loop's context is announced to ASan as a fiber of unknown bounds; the worker lives on it,
 * so it tells ASan the thread's real stack, or every noreturn call (exit, abort in fn) warns. */
static void asan_own_stack(void)
{
    pthread_attr_t a;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &a) != 0)
        return;
    if (pthread_attr_getstack(&a, &lo, &size) == 0) {
        void *fake = NULL;
        __sanitizer_start_switch_fiber(&fake, lo, size);
        __sanitizer_finish_switch_fiber(fake, NULL, NULL);
    }
    pthread_attr_destroy(&a);
}
#endif

__attribute__((noreturn)) static void worker_main(int rq, int rp, pid_t parent)
{
    simul__loop_tls = NULL; /* simul calls in fn find no loop instead of the parent's copy */
    /* Tied to the loop's thread; the getppid check closes the race with a parent that died
     * before the prctl. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    prctl(PR_SET_NAME, "simul-worker");
    close_inherited(rq, rp);
    reset_signals();
    for (;;) {
        req_hdr h;
        if (w_read(rq, &h, sizeof h) < 0 || h.magic != REQ_MAGIC)
            _exit(0); /* EOF: the pool is closed */
        rep_hdr r = {.magic = REP_MAGIC, .status = REP_OK};
        void *in = NULL, *out = NULL;
        size_t out_len = 0;
        if (h.in_len > 0 && !(in = malloc((size_t)h.in_len))) {
            if (w_skip(rq, h.in_len) < 0)
                _exit(0);
            r.status = REP_NOMEM;
        } else if (h.in_len > 0 && w_read(rq, in, (size_t)h.in_len) < 0) {
            _exit(0);
        }
        if (r.status == REP_OK) {
            r.result = h.fn(in, (size_t)h.in_len, &out, &out_len);
            if (!out)
                out_len = 0;
            if (out_len > h.max_reply) {
                r.status = REP_TOO_BIG;
                free(out);
                out = NULL;
                out_len = 0;
            }
        }
        free(in);
        r.out_len = out_len;
        struct iovec iov[2] = {{&r, sizeof r}, {out, out_len}};
        if (w_writev(rp, iov, out_len ? 2 : 1) < 0)
            _exit(0);
        free(out);
    }
}

/* ---- processes: start, signal, reap ---------------------------------------------------------- */

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0); /* close-on-exec by definition */
#else
    (void)pid;
    return -1;
#endif
}

static void kill_worker(worker *wk)
{
    if (wk->pid <= 0)
        return;
#ifdef SYS_pidfd_send_signal
    /* Through the pidfd the signal cannot hit a recycled pid (if someone else reaped ours). */
    if (wk->pidfd >= 0 && syscall(SYS_pidfd_send_signal, wk->pidfd, SIGKILL, NULL, 0) == 0)
        return;
#endif
    kill(wk->pid, SIGKILL);
}

/* A wait status as the call reports it: -SIGNUM or the exit status; INT_MIN if unknown. */
static int decode_status(int st)
{
    if (WIFSIGNALED(st))
        return -WTERMSIG(st);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return INT_MIN;
}

/* Reaps without waiting: 1 and *status once reaped (or lost to someone else's wait), 0 while the
 * process is still exiting. */
static int try_reap(worker *wk, int *status)
{
    int st;
    pid_t r;
    do
        r = waitpid(wk->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    *status = r == wk->pid ? decode_status(st) : INT_MIN; /* ECHILD: reaped elsewhere */
    return 1;
}

static void forget_worker(simul_procpool *p, worker *wk)
{
    if (wk->rq >= 0)
        simul_close(wk->rq);
    if (wk->rp >= 0)
        simul_close(wk->rp);
    if (wk->pidfd >= 0)
        simul_close(wk->pidfd); /* a task parked on it wakes with -EBADF */
    if (wk->pid > 0)
        p->nworkers--;
    wk->rq = wk->rp = wk->pidfd = -1;
    wk->pid = 0;
}

/* Blocking reap of a worker that was killed or is exiting: for close, and where no pidfd is
 * available. The wait is short: SIGKILL cannot be caught. */
static int reap_blocking(worker *wk)
{
    int st;
    pid_t r;
    do
        r = waitpid(wk->pid, &st, 0);
    while (r < 0 && errno == EINTR);
    return r == wk->pid ? decode_status(st) : INT_MIN;
}

/* Kills wk (it is in an unknown state, or already dead) and reaps it before returning, waiting
 * on its pidfd through the loop, shielded: the caller is often cancelled already, and returning
 * with a zombie left is what this avoids. Returns the decoded status. The pool may be closed
 * meanwhile: close then reaps it and this returns INT_MIN. */
static int retire(simul_procpool *p, worker *wk)
{
    kill_worker(wk);
    if (wk->rq >= 0)
        simul_close(wk->rq);
    if (wk->rp >= 0)
        simul_close(wk->rp);
    wk->rq = wk->rp = -1;
    int status = INT_MIN;
    simul_scope shield;
    simul_scope_shield(&shield);
    while (!p->closed && wk->pid > 0 && !try_reap(wk, &status)) {
        int err = 0;
        simul__fd *f = wk->pidfd >= 0 ? simul__fd_get(p->loop, wk->pidfd, &err) : NULL;
        if (!f) {
            status = reap_blocking(wk);
            break;
        }
        /* Cleared only after waitpid saw it alive: the exit that follows is a new edge. */
        simul__fd_clear(f, SIMUL__DIR_READ);
        if (simul__fd_wait(f, SIMUL__DIR_READ) < 0 && !p->closed) {
            status = reap_blocking(wk);
            break;
        }
    }
    simul_scope_end(&shield);
    if (!p->closed)
        forget_worker(p, wk);
    return status;
}

typedef struct spawn_req {
    simul_procpool *pool;
    worker *wk;
    simul__wait w;
    int crq, crp; /* the child's ends */
    int err;
} spawn_req;

/* Runs on the loop's own context (a callback), so the child starts on the thread's stack. */
static void fork_cb(void *arg)
{
    spawn_req *s = arg;
    simul_procpool *p = s->pool;
    if (p->closed) {
        s->err = -ECANCELED;
    } else {
        pid_t parent = getpid();
        /* Buffered output would be printed again by a child that flushes it. */
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
#ifdef SIMUL_ASAN
            asan_own_stack(); /* before the first noreturn call: worker_main itself */
#endif
            worker_main(s->crq, s->crp, parent);
        }
        if (pid < 0) {
            s->err = -errno;
        } else {
            s->wk->pid = pid;
            s->wk->pidfd = open_pidfd(pid);
            if (s->wk->pidfd >= 0)
                simul_fd_forget(s->wk->pidfd);
            p->nworkers++;
        }
    }
    simul__wake(&s->w, 0);
}

/* Starts the process of an empty slot the caller holds. */
static int spawn(simul_procpool *p, worker *wk)
{
    int rq[2], rp[2];
    if (pipe2(rq, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(rp, O_CLOEXEC) < 0) {
        int e = -errno;
        close(rq[0]);
        close(rq[1]);
        return e;
    }
    /* Only the parent's ends are non-blocking: the worker blocks in plain read/write. */
    fcntl(rq[1], F_SETFL, O_NONBLOCK);
    fcntl(rp[0], F_SETFL, O_NONBLOCK);
    fcntl(rq[1], F_SETPIPE_SZ, PIPE_BYTES);
    fcntl(rp[0], F_SETPIPE_SZ, PIPE_BYTES);
    simul_fd_forget(rq[1]); /* a record left by an earlier fd with this number starts clean */
    simul_fd_forget(rp[0]);
    wk->rq = rq[1];
    wk->rp = rp[0];
    spawn_req s = {.pool = p, .wk = wk, .crq = rq[0], .crp = rp[1]};
    /* Shielded: the fork comes within a pass; a cancel is seen right after. */
    simul_scope shield;
    simul_scope_shield(&shield);
    int rc = simul__call_soon(p->loop, fork_cb, &s, NULL);
    if (rc == 0)
        simul__park(&s.w, SIMUL__INF);
    simul_scope_end(&shield);
    close(rq[0]);
    close(rp[1]);
    if (p->closed)
        return -ECANCELED; /* close has closed wk's ends (and killed the child, if any) */
    if (rc == 0)
        rc = s.err;
    if (rc < 0)
        forget_worker(p, wk);
    return rc;
}

/* ---- slots ----------------------------------------------------------------------------------- */

/* Gives the caller's worker (alive or an empty slot) to the first waiting call, else back. */
static void release(simul_procpool *p, worker *wk)
{
    if (p->closed)
        return;
    simul__wait *w = simul__waitq_pop(&p->queue);
    if (w) {
        wk->state = W_BUSY;
        w->value = wk;
        simul__wake(w, 0);
        return;
    }
    wk->state = wk->pid > 0 ? W_IDLE : W_EMPTY;
}

static worker *pick(simul_procpool *p)
{
    worker *empty = NULL;
    for (int i = 0; i < p->size; i++) {
        worker *wk = &p->w[i];
        if (wk->state == W_IDLE)
            return wk;
        if (wk->state == W_EMPTY && !empty)
            empty = wk;
    }
    return empty;
}

/* Suspends until the caller holds a worker with a live process. */
static int acquire(simul_procpool *p, simul_task *self, worker **out)
{
    worker *wk = p->queue.head ? NULL : pick(p); /* FIFO: nobody overtakes a waiting call */
    if (wk) {
        wk->state = W_BUSY;
    } else {
        simul__wait w = {.unlink = simul__waitq_unlink};
        simul__waitq_push(&p->queue, &w);
        int rc = simul__park(&w, SIMUL__INF);
        if (rc < 0)
            return rc; /* unlinked (cancel, deadline) or woken by close: no worker is ours */
        if (p->closed)
            return -ECANCELED;
        wk = w.value;
    }
    /* A cancel that landed after the hand-over: pass the worker on, nothing was sent. */
    int rc = simul__task_check(self);
    if (rc == 0 && wk->pid <= 0)
        rc = spawn(p, wk);
    if (rc < 0) {
        release(p, wk);
        return p->closed ? -ECANCELED : rc;
    }
    *out = wk;
    return 0;
}

/* ---- one exchange ---------------------------------------------------------------------------- */

static int send_all(simul_task *self, simul__fd *f, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        long n = simul__fd_try_writev(f, iov, cnt);
        if (n == -EAGAIN) {
            int rc = simul__task_check(self);
            if (rc == 0)
                rc = simul__fd_wait(f, SIMUL__DIR_WRITE);
            if (rc < 0)
                return rc;
            continue;
        }
        if (n < 0)
            return n == -EPIPE ? DIED : (int)n;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (long)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

static int recv_all(simul_task *self, simul__fd *f, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        long n = simul__fd_try_read(f, (char *)buf + got, len - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            return DIED;
        if (n != -EAGAIN)
            return (int)n;
        int rc = simul__task_check(self);
        if (rc == 0)
            rc = simul__fd_wait(f, SIMUL__DIR_READ);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Sends the request and reads the reply into *rh and *buf (malloc'd, NULL if empty). A non-zero
 * return leaves the worker in an unknown state. */
static int exchange(simul_procpool *p, simul_task *self, worker *wk, simul_proc_fn fn,
                    const void *in, size_t in_len, rep_hdr *rh, void **buf)
{
    int err = 0;
    simul__fd *rq = simul__fd_get(p->loop, wk->rq, &err);
    simul__fd *rp = rq ? simul__fd_get(p->loop, wk->rp, &err) : NULL;
    if (!rp)
        return err;
    req_hdr h = {.magic = REQ_MAGIC, .fn = fn, .in_len = in_len, .max_reply = p->max_reply};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)in, in_len}};
    int rc = send_all(self, rq, iov, in_len ? 2 : 1);
    if (rc == 0)
        rc = recv_all(self, rp, rh, sizeof *rh);
    if (rc < 0)
        return rc;
    if (rh->magic != REP_MAGIC || rh->status < REP_OK || rh->status > REP_NOMEM ||
        (rh->status == REP_OK && rh->out_len > h.max_reply) ||
        (rh->status != REP_OK && rh->out_len != 0))
        return -EPROTO;
    if (rh->status != REP_OK || rh->out_len == 0)
        return 0;
    if (!(*buf = malloc((size_t)rh->out_len)))
        return -ENOMEM;
    rc = recv_all(self, rp, *buf, (size_t)rh->out_len);
    if (rc < 0) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

/* ---- public ---------------------------------------------------------------------------------- */

static int cpu_count(void)
{
    cpu_set_t set;
    long n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (n < MAX_WORKERS ? (int)n : MAX_WORKERS) : 1;
}

int simul_procpool_new(int workers, simul_procpool **out)
{
    if (!out || workers < 0 || workers > MAX_WORKERS)
        return -EINVAL;
    simul_loop *loop = simul__loop();
    if (!loop)
        return -ENXIO;
    int n = workers ? workers : cpu_count();
    simul_procpool *p = calloc(1, sizeof *p);
    worker *w = calloc((size_t)n, sizeof *w);
    if (!p || !w) {
        free(p);
        free(w);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++)
        w[i] = (worker){.pidfd = -1, .rq = -1, .rp = -1, .state = W_EMPTY};
    p->loop = loop;
    p->w = w;
    p->size = n;
    p->max_request = p->max_reply = SIMUL_PROCPOOL_MAX_MESSAGE;
    loop->handles++; /* until close: simul_loop_close refuses while the pool is open */
    *out = p;
    return 0;
}

int simul_procpool_set_limits(simul_procpool *p, size_t max_request, size_t max_reply)
{
    if (!p || p->closed)
        return -EINVAL;
    p->max_request = max_request ? max_request : SIMUL_PROCPOOL_MAX_MESSAGE;
    p->max_reply = max_reply ? max_reply : SIMUL_PROCPOOL_MAX_MESSAGE;
    return 0;
}

int simul_procpool_size(const simul_procpool *p)
{
    return p ? p->size : -EINVAL;
}

int simul_procpool_workers(const simul_procpool *p)
{
    return p ? p->nworkers : -EINVAL;
}

static void pool_free(simul_procpool *p)
{
    free(p->w);
    free(p);
}

int simul_procpool_call(simul_procpool *p, simul_proc_fn fn, const void *in, size_t in_len,
                        void **out, size_t *out_len, int *result)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    simul_task *self = simul__task_require(__func__);
    if (!p || !fn || (!in && in_len) || p->closed)
        return -EINVAL;
    if (!self)
        return -EPERM;
    if (self->loop != p->loop)
        return -EINVAL;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    if (in_len > p->max_request)
        return -EMSGSIZE;

    p->users++;
    worker *wk = NULL;
    rc = acquire(p, self, &wk);
    if (rc == 0) {
        rep_hdr rh = {0};
        void *buf = NULL;
        rc = exchange(p, self, wk, fn, in, in_len, &rh, &buf);
        if (p->closed) {
            rc = -ECANCELED; /* close killed and reaped the worker under us */
        } else if (rc == 0) {
            release(p, wk);
            if (result && rh.status != REP_NOMEM)
                *result = rh.result;
            if (rh.status == REP_TOO_BIG)
                rc = -EMSGSIZE;
            else if (rh.status == REP_NOMEM)
                rc = -ENOMEM;
        } else {
            int status = retire(p, wk);
            if (p->closed) {
                rc = -ECANCELED;
            } else {
                release(p, wk);
                if (rc == DIED && result)
                    *result = status;
            }
        }
        if (rc == 0 && out) {
            *out = buf;
            buf = NULL;
        }
        if (rc == 0 && out_len)
            *out_len = (size_t)rh.out_len;
        free(buf);
    }
    if (--p->users == 0 && p->closed)
        pool_free(p);
    return rc;
}

int simul_procpool_close(simul_procpool *p)
{
    if (!p || p->closed)
        return -EINVAL;
    p->closed = true;
    p->loop->handles--;
    simul__wait *w;
    while ((w = simul__waitq_pop(&p->queue)))
        simul__wake(w, -ECANCELED);
    /* Kill them all first so they die in parallel, then reap one by one. Closing the fds wakes
     * the calls parked on them (-EBADF); each sees the pool closed and returns -ECANCELED. */
    for (int i = 0; i < p->size; i++)
        kill_worker(&p->w[i]);
    for (int i = 0; i < p->size; i++) {
        worker *wk = &p->w[i];
        if (wk->pid > 0)
            reap_blocking(wk);
        forget_worker(p, wk);
        wk->state = W_EMPTY;
    }
    if (p->users == 0)
        pool_free(p);
    return 0;
}
