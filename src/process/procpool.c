/* procpool.c — ProcessPoolExecutor: CPU-bound functions run in forked worker processes; the loop
 * moves requests and replies over pipes. Every call is a job, driven by fd events, not by the
 * task that asked for it, so a job can be submitted from a callback and awaited as a future. The
 * loop watches every worker all the time (its reply pipe and its pidfd): a worker that dies,
 * busy or idle, is reaped by pid as soon as the loop sees it go, so no zombie outlives it and an
 * idle death never fails a call. A worker in an unknown state (a cancel mid-call, a crash, a
 * malformed reply) is killed; the job it held ends only once it is reaped. Workers are forked on
 * the loop's own context (a callback or an fd event), never on the small stack of a task. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../io/io.h"
#include "../offload/pool.h"
#include "child.h"

#define REQ_MAGIC 0x53505251u /* "SPRQ" */
#define REP_MAGIC 0x53505250u /* "SPRP" */
#define MAX_WORKERS 4096
#define PIPE_BYTES (1 << 20) /* fewer wake-ups per MiB moved; a failure just keeps 64 KiB */

/* The request a worker reads: the function is a pointer of the parent, valid in the fork. */
typedef struct req_hdr {
    uint32_t magic;
    uint32_t flags; /* REQ_LAST: exit once the reply is sent (max_calls reached) */
    simul_proc_fn fn;
    uint64_t in_len;
    uint64_t max_reply; /* the worker refuses to send more (the parent checks again) */
} req_hdr;

enum { REQ_LAST = 1u };

enum { REP_OK = 0, REP_TOO_BIG = 1, REP_NOMEM = 2 };

typedef struct rep_hdr {
    uint32_t magic;
    int32_t status; /* REP_*: only REP_OK is followed by out_len bytes */
    int32_t result; /* fn's return value (REP_OK, REP_TOO_BIG) */
    uint32_t pad;
    uint64_t out_len;
} rep_hdr;

typedef struct simul_procpool_job job;

/* W_DYING: killed or told to exit, pipes closed, waiting to be reaped (its pidfd still open). */
enum { W_EMPTY = 0, W_IDLE, W_BUSY, W_DYING };

typedef struct worker {
    simul_procpool *pool;
    pid_t pid;  /* 0: no process (never started, or reaped) */
    int pidfd;  /* -1 where pidfd_open is missing: reaping then blocks briefly */
    int rq, rp; /* the parent's ends: requests out, replies in; -1 when closed */
    simul__fd *frq, *frp;
    job *job;   /* BUSY: the job it runs; DYING: the job that ends once it is reaped, if any */
    long calls; /* calls completed, for max_calls */
    uint8_t state;
} worker;

/* J_ENDING: its worker was killed (cancel, crash, bad reply); done once the worker is reaped. */
enum { J_QUEUED = 1, J_SENDING, J_RECEIVING, J_ENDING, J_DONE };

struct simul_procpool_job {
    simul_procpool *pool;
    job *next, *prev; /* the pool's FIFO while QUEUED */
    worker *wk;       /* SENDING, RECEIVING, ENDING */
    simul_proc_fn fn;
    const void *in; /* borrowed from simul_procpool_call's caller, or own_in */
    size_t in_len;
    void *own_in;
    req_hdr h;
    size_t sent; /* bytes of h + input written to the worker's request pipe */
    rep_hdr rh;
    size_t got; /* bytes of rh + reply read */
    void *out;
    int status;     /* DONE: what simul_procpool_call returns */
    int end_status; /* ENDING: the status once the worker is reaped */
    int result;
    bool has_result;
    bool died;    /* ENDING because fn's worker died: the result is its wait status */
    bool retried; /* re-queued once after a worker that died before reading the request */
    uint8_t state;
    simul__wait *waiter; /* the task in simul_procpool_call */
    simul_future *fut;   /* simul_procpool_submit's */
};

struct simul_procpool {
    simul_loop *loop;
    worker *w;
    int size;     /* slots: the maximum number of workers */
    int nworkers; /* processes alive (not yet reaped) */
    job *qhead, *qtail;
    size_t max_request, max_reply;
    long max_calls;      /* 0: a worker serves any number of calls */
    int refs;            /* the open pool, each job not yet freed, a scheduled pump */
    bool pump_scheduled; /* a fork is due: it must run on the loop's context */
    simul_handle pump_handle;
    bool dispatching, again; /* dispatch is not re-entered: a nested request loops once more */
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
        if (h.flags & REQ_LAST)
            _exit(0); /* by itself: an EOF could be held off by a stray copy of our pipe */
    }
}

/* ---- processes: signal, reap ----------------------------------------------------------------- */

/* Through the pidfd the signal cannot hit a recycled pid (if someone else reaped ours). */
static void kill_worker(worker *wk)
{
    if (wk->pid > 0)
        (void)simul__child_signal(wk->pid, wk->pidfd, SIGKILL);
}

static void close_pipes(worker *wk)
{
    if (wk->rq >= 0)
        simul_close(wk->rq); /* drops the fd's handler with its registration */
    if (wk->rp >= 0)
        simul_close(wk->rp);
    wk->rq = wk->rp = -1;
    wk->frq = wk->frp = NULL;
}

/* ---- jobs: queue and completion -------------------------------------------------------------- */

static void pool_unref(simul_procpool *p)
{
    if (--p->refs == 0) {
        free(p->w);
        free(p);
    }
}

static void queue_push(simul_procpool *p, job *j, bool at_head)
{
    j->state = J_QUEUED;
    j->wk = NULL;
    if (at_head) {
        j->prev = NULL;
        j->next = p->qhead;
        if (p->qhead)
            p->qhead->prev = j;
        else
            p->qtail = j;
        p->qhead = j;
    } else {
        j->next = NULL;
        j->prev = p->qtail;
        if (p->qtail)
            p->qtail->next = j;
        else
            p->qhead = j;
        p->qtail = j;
    }
}

static void queue_unlink(simul_procpool *p, job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        p->qhead = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        p->qtail = j->prev;
    j->next = j->prev = NULL;
}

/* Ends a job: wakes its task or completes its future. Never runs user code inline (a woken task
 * and future callbacks run later), so the state machine may call it anywhere. */
static void finish(job *j, int status)
{
    if (j->fut && simul_future_done(j->fut)) {
        /* The submitter cancelled the future first: the job reports what the future says. */
        status = -ECANCELED;
        j->has_result = false;
    }
    if (status < 0) {
        free(j->out);
        j->out = NULL;
        j->rh.out_len = 0;
    }
    free(j->own_in); /* a finished job is never sent again */
    j->own_in = NULL;
    j->in = NULL;
    j->status = status;
    j->state = J_DONE;
    j->wk = NULL;
    if (j->waiter) {
        simul__wait *w = j->waiter;
        j->waiter = NULL;
        simul__wake(w, 0);
    }
    if (j->fut)
        simul_future_set_result(j->fut, status, j);
}

static void dispatch(simul_procpool *p);

/* The worker's process is reaped: the slot is free, and the job waiting on the reap ends. */
static void reaped(worker *wk, int status)
{
    simul_procpool *p = wk->pool;
    close_pipes(wk);
    if (wk->pidfd >= 0)
        simul_close(wk->pidfd);
    wk->pidfd = -1;
    wk->pid = 0;
    wk->calls = 0;
    wk->state = W_EMPTY;
    p->nworkers--;
    job *j = wk->job;
    wk->job = NULL;
    if (j) {
        if (j->died) {
            j->has_result = true;
            j->result = status;
        }
        finish(j, j->end_status);
    }
    dispatch(p);
}

/* Takes a worker out of service: closes its pipes (EOF makes a healthy worker _exit), kills it
 * unless it is leaving by itself, and reaps it now or when its pidfd says it exited. `j`, if
 * any, ends with `status` once the worker is reaped. */
static void end_worker(worker *wk, job *j, int status, bool kill_it)
{
    if (kill_it)
        kill_worker(wk);
    close_pipes(wk);
    wk->state = W_DYING;
    wk->job = j;
    if (j) {
        j->state = J_ENDING;
        j->end_status = status;
        j->wk = wk;
    }
    int st;
    if (simul__child_try_reap(wk->pid, wk->pidfd, &st))
        reaped(wk, st);
    else if (wk->pidfd < 0) /* nothing will say when: wait, briefly (SIGKILL or EOF ends it) */
        reaped(wk, simul__child_reap(wk->pid, wk->pidfd));
}

/* ---- one exchange, driven by fd events ------------------------------------------------------- */

/* Writes what the pipe takes. 1 once the whole request is written, 0 to wait for the next
 * writable edge, or a negative errno (DIED: the worker's end is closed). */
static int send_more(job *j)
{
    worker *wk = j->wk;
    size_t hdr = sizeof j->h, total = hdr + j->in_len;
    while (j->sent < total) {
        struct iovec iov[2];
        int cnt = 0;
        if (j->sent < hdr)
            iov[cnt++] = (struct iovec){(char *)&j->h + j->sent, hdr - j->sent};
        size_t off = j->sent < hdr ? 0 : j->sent - hdr;
        if (j->in_len > off)
            iov[cnt++] = (struct iovec){(char *)j->in + off, j->in_len - off};
        long n = simul__fd_try_writev(wk->frq, iov, cnt);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return n == -EPIPE ? DIED : (int)n;
        j->sent += (size_t)n;
    }
    return 1;
}

/* Reads the reply on until j->got reaches `end`, into dst, which holds the reply's bytes from
 * offset `from` on. 1 once there, 0 to wait, DIED on EOF, or a negative errno. */
static int read_until(job *j, void *dst, size_t from, size_t end)
{
    while (j->got < end) {
        long n = simul__fd_try_read(j->wk->frp, (char *)dst + (j->got - from), end - j->got);
        if (n == -EAGAIN)
            return 0;
        if (n == 0)
            return DIED;
        if (n < 0)
            return (int)n;
        j->got += (size_t)n;
    }
    return 1;
}

/* Reads what has arrived of the reply. 1 once complete, 0 to wait, or a negative errno (DIED:
 * EOF before the whole reply; -EPROTO: not a reply this pool sent for; -ENOMEM). */
static int recv_more(job *j)
{
    size_t hdr = sizeof j->rh;
    if (j->got < hdr) {
        int rc = read_until(j, &j->rh, 0, hdr);
        if (rc <= 0)
            return rc;
        rep_hdr *rh = &j->rh;
        if (rh->magic != REP_MAGIC || rh->status < REP_OK || rh->status > REP_NOMEM ||
            (rh->status == REP_OK && rh->out_len > j->h.max_reply) ||
            (rh->status != REP_OK && rh->out_len != 0))
            return -EPROTO;
        if (rh->out_len > 0 && !(j->out = malloc((size_t)rh->out_len)))
            return -ENOMEM;
    }
    return read_until(j, j->out, hdr, hdr + (size_t)j->rh.out_len);
}

/* The whole reply is in: the job ends with it. */
static void complete(job *j)
{
    j->wk->job = NULL;
    j->has_result = j->rh.status != REP_NOMEM;
    j->result = j->rh.result;
    finish(j, j->rh.status == REP_OK ? 0 : j->rh.status == REP_TOO_BIG ? -EMSGSIZE : -ENOMEM);
}

/* Whether the worker provably never read any of the job's request: every byte written is still
 * in the pipe (FIONREAD on our end counts them even after the reader is gone: the pipe's buffer
 * lives as long as our end). A read, even a partial one, takes bytes out; nothing else reads the
 * pipe. Must be asked before the pipe is closed. */
static bool request_unread(const worker *wk, const job *j)
{
    int queued = -1;
    if (j->sent == 0)
        return true;
    return wk->rq >= 0 && ioctl(wk->rq, FIONREAD, &queued) == 0 && queued >= 0 &&
           (size_t)queued == j->sent;
}

/* The worker's process is gone or going (EOF, EPIPE, or its pidfd reported the exit). A reply
 * already complete in the pipe still wins; a request it provably never read goes back to the
 * head of the queue, once; else the job fails with -EOWNERDEAD once the worker is reaped. */
static void worker_lost(worker *wk)
{
    simul_procpool *p = wk->pool;
    job *j = wk->state == W_BUSY ? wk->job : NULL;
    int status = DIED;
    if (j && j->state == J_RECEIVING) {
        /* The pidfd's event may come before the reply pipe's in one batch: the process is gone,
         * so a read now tells the truth (the rest of the reply, or EOF). */
        wk->frp->ready |= (uint8_t)(1u << SIMUL__DIR_READ);
        int rc = recv_more(j);
        if (rc == 1) {
            complete(j);
            j = NULL;
        } else if (rc < 0 && rc != DIED) {
            status = rc; /* a malformed reply, or no memory for it */
        }
    }
    if (j && status == DIED && !j->retried && request_unread(wk, j)) {
        wk->job = NULL;
        j->retried = true;
        j->sent = 0;
        queue_push(p, j, true);
        j = NULL;
    }
    if (j)
        j->died = status == DIED;
    end_worker(wk, j, status, true);
    dispatch(p);
}

/* A worker finished a call: back to idle, or out once it has served max_calls. A request marked
 * last made it exit by itself; one whose limit was lowered during the call is killed (it only
 * waits for a request). */
static void release(worker *wk, bool last)
{
    simul_procpool *p = wk->pool;
    wk->calls++;
    if (last || (p->max_calls > 0 && wk->calls >= p->max_calls))
        end_worker(wk, NULL, 0, !last);
    else
        wk->state = W_IDLE;
    dispatch(p);
}

/* Moves the worker's job on as far as the pipes allow. `fresh`: the request was just handed
 * over, so no reply can be there yet; the reply's edge will come (the pipe goes from empty to
 * not), so the read is left to it. Never reading at once also keeps a dispatch from running a
 * fast worker through the whole queue without the loop polling in between. */
static void progress(worker *wk, bool fresh)
{
    job *j = wk->job;
    if (j->state == J_SENDING) {
        int rc = send_more(j);
        if (rc == DIED) {
            worker_lost(wk);
            return;
        }
        if (rc < 0) {
            end_worker(wk, j, rc, true);
            dispatch(wk->pool);
            return;
        }
        if (rc == 0)
            return;
        j->state = J_RECEIVING;
        if (fresh)
            return;
    }
    int rc = recv_more(j);
    if (rc == 0)
        return;
    if (rc == DIED) {
        worker_lost(wk);
    } else if (rc < 0) {
        end_worker(wk, j, rc, true);
        dispatch(wk->pool);
    } else {
        bool last = j->h.flags & REQ_LAST;
        complete(j);
        release(wk, last);
    }
}

/* Anything on an idle worker's reply pipe is news: EOF (it died: the OOM killer, a kill -9) or
 * bytes nobody asked for (it is broken). Either way it goes, before a call is given to it. */
static void check_idle(worker *wk)
{
    char c;
    long n = simul__fd_try_read(wk->frp, &c, 1);
    if (n == -EAGAIN)
        return;
    if (n == 0) {
        worker_lost(wk);
    } else {
        end_worker(wk, NULL, 0, true);
        dispatch(wk->pool);
    }
}

static void on_request_pipe(void *owner, uint32_t events)
{
    worker *wk = owner;
    if (wk->state == W_BUSY)
        progress(wk, false);
    else if (wk->state == W_IDLE && (events & SIMUL__EV_ERROR)) /* the reader is gone */
        check_idle(wk);
}

static void on_reply_pipe(void *owner, uint32_t events)
{
    (void)events;
    worker *wk = owner;
    if (wk->state == W_BUSY)
        progress(wk, false);
    else if (wk->state == W_IDLE)
        check_idle(wk);
}

/* A pidfd becomes readable once its process has exited. */
static void on_pidfd(void *owner, uint32_t events)
{
    (void)events;
    worker *wk = owner;
    int st;
    if (wk->state == W_DYING) {
        if (simul__child_try_reap(wk->pid, wk->pidfd, &st))
            reaped(wk, st);
    } else if (wk->state == W_IDLE || wk->state == W_BUSY) {
        worker_lost(wk);
    }
}

/* Gives a queued job to a live worker and sends what the pipe takes at once. */
static void start(worker *wk, job *j)
{
    simul_procpool *p = wk->pool;
    wk->state = W_BUSY;
    wk->job = j;
    j->wk = wk;
    j->state = J_SENDING;
    j->sent = j->got = 0;
    j->h =
        (req_hdr){.magic = REQ_MAGIC, .fn = j->fn, .in_len = j->in_len, .max_reply = p->max_reply};
    if (p->max_calls > 0 && wk->calls + 1 >= p->max_calls)
        j->h.flags = REQ_LAST;
    progress(wk, true);
}

/* ---- workers: start ------------------------------------------------------------------------ */

static int watch(simul_loop *loop, int fd, simul__fd_handler h, worker *wk, simul__fd **out)
{
    int err = 0;
    simul_fd_forget(fd); /* a record left by an earlier fd with this number starts clean */
    simul__fd *f = simul__fd_get(loop, fd, &err);
    if (!f)
        return err;
    if (out)
        *out = f;
    return simul__fd_set_handler(f, h, wk);
}

/* Starts the process of an empty slot. Runs on the loop's own context (a callback or an fd
 * event), so the child starts on the thread's stack. */
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
    pid_t parent = getpid();
    /* Buffered output would be printed again by a child that flushes it. */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        worker_main(rq[0], rp[1], parent);
    }
    int err = pid < 0 ? -errno : 0;
    close(rq[0]);
    close(rp[1]);
    wk->rq = rq[1];
    wk->rp = rp[0];
    if (err < 0) {
        close_pipes(wk);
        return err;
    }
    wk->pid = pid;
    /* SIMUL_NO_PIDFD=1 (as for subprocesses) forces the fallback: idle deaths are then seen by
     * EOF on the reply pipe only, and reaping blocks briefly after the kill. */
    wk->pidfd = simul__child_pidfd_open(pid);
    wk->calls = 0;
    wk->job = NULL;
    wk->state = W_IDLE;
    p->nworkers++;
    err = watch(p->loop, wk->rq, on_request_pipe, wk, &wk->frq);
    if (err == 0)
        err = watch(p->loop, wk->rp, on_reply_pipe, wk, &wk->frp);
    if (err == 0 && wk->pidfd >= 0 && watch(p->loop, wk->pidfd, on_pidfd, wk, NULL) < 0) {
        simul_close(wk->pidfd); /* unwatched, it is no use: reap by blocking instead */
        wk->pidfd = -1;
    }
    if (err < 0) {
        kill_worker(wk);
        close_pipes(wk);
        (void)simul__child_reap(wk->pid, wk->pidfd);
        if (wk->pidfd >= 0)
            simul_close(wk->pidfd);
        wk->pidfd = -1;
        wk->pid = 0;
        wk->state = W_EMPTY;
        p->nworkers--;
    }
    return err;
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

static void pump(void *arg)
{
    simul_procpool *p = arg;
    p->pump_scheduled = false;
    dispatch(p);
    pool_unref(p);
}

/* Hands queued jobs, in FIFO order, to idle workers, starting workers in empty slots. A fork
 * from a task is deferred to a callback (pump): the child must not start on a task's stack. */
static void dispatch(simul_procpool *p)
{
    if (p->closed)
        return;
    if (p->dispatching) {
        p->again = true;
        return;
    }
    p->dispatching = true;
    do {
        p->again = false;
        while (p->qhead && !p->closed) {
            job *j = p->qhead;
            if (j->fut && simul_future_done(j->fut)) { /* cancelled by its submitter */
                queue_unlink(p, j);
                finish(j, -ECANCELED);
                continue;
            }
            worker *wk = pick(p);
            if (!wk)
                break;
            if (wk->state == W_EMPTY) {
                if (simul__task_self()) {
                    if (!p->pump_scheduled) {
                        if (simul__call_soon(p->loop, pump, p, &p->pump_handle) < 0) {
                            queue_unlink(p, j);
                            finish(j, -ENOMEM);
                            continue;
                        }
                        p->pump_scheduled = true;
                        p->refs++;
                    }
                    break;
                }
                int rc = spawn(p, wk);
                if (rc < 0) {
                    queue_unlink(p, j);
                    finish(j, rc);
                    continue;
                }
            }
            queue_unlink(p, j);
            start(wk, j);
        }
    } while (p->again && !p->closed);
    p->dispatching = false;
}

/* Gives up a job that has not finished: a queued one never runs; a running one's worker is
 * killed, and the job ends with `status` once it is reaped. */
static void cancel(job *j, int status)
{
    simul_procpool *p = j->pool;
    if (j->state == J_QUEUED) {
        queue_unlink(p, j);
        finish(j, status);
    } else if (j->state == J_SENDING || j->state == J_RECEIVING) {
        end_worker(j->wk, j, status, true);
        dispatch(p);
    }
}

/* ---- public ---------------------------------------------------------------------------------- */

static int cpu_count(void)
{
    int n = simul__cpu_count();
    return n < MAX_WORKERS ? n : MAX_WORKERS;
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
        w[i] = (worker){.pool = p, .pidfd = -1, .rq = -1, .rp = -1, .state = W_EMPTY};
    p->loop = loop;
    p->w = w;
    p->size = n;
    p->refs = 1;
    p->max_request = p->max_reply = SIMUL_PROCPOOL_MAX_MESSAGE;
    simul__loop_handle_ref(loop); /* until close: simul_loop_close refuses while the pool is open */
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

int simul_procpool_set_max_calls(simul_procpool *p, long max_calls_per_worker)
{
    if (!p || p->closed || max_calls_per_worker < 0)
        return -EINVAL;
    p->max_calls = max_calls_per_worker;
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

static void call_unlink(simul__wait *w)
{
    job *j = w->ctx;
    j->waiter = NULL;
}

/* Parks the calling task until the job is done or the wait is interrupted. */
static int await_job(job *j)
{
    if (j->state == J_DONE)
        return 0;
    SIMUL__REC(simul__wait, w, simul__task_self());
    if (!w)
        return -ENOMEM;
    *w = (simul__wait){.unlink = call_unlink, .ctx = j};
    j->waiter = w;
    return simul__park(w, SIMUL__INF);
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

    /* The job lives on this stack and `in` is borrowed: the call does not return before the job
     * is done, which includes reaping a worker that was killed for it. */
    /* (A compact task's frames move while it is suspended: there the job is on the heap, and so
     * is a copy of `in` if `in` is on its stack, since the loop sends it while we wait.) */
    SIMUL__REC(job, jp, self);
    void *in_copy = NULL;
    if (jp && in_len && simul__on_run_stack(self, in) && (in_copy = malloc(in_len)))
        in = memcpy(in_copy, in, in_len);
    if (!jp || (in_len && simul__on_run_stack(self, in)))
        return -ENOMEM;
    job *jj = jp;
    *jj = (job){.pool = p, .fn = fn, .in = in, .in_len = in_len};
    p->refs++;
    queue_push(p, jj, false);
    dispatch(p);
    /* A worker woken by the request often replies before this task gets on: one read for this
     * job (and this job only) then saves a loop pass. */
    if (jj->state == J_RECEIVING)
        progress(jj->wk, false);
    rc = await_job(jj);
    if (rc < 0 && jj->state != J_DONE) {
        cancel(jj, rc);
        simul_scope shield;
        simul_scope_shield(&shield);
        while (jj->state != J_DONE)
            await_job(jj);
        simul_scope_end(&shield);
    }
    /* Done: a reply that was complete before the cancel took effect wins. */
    rc = jj->status;
    if (result && jj->has_result)
        *result = jj->result;
    if (rc == 0 && out) {
        *out = jj->out;
        jj->out = NULL;
    }
    if (rc == 0 && out_len)
        *out_len = (size_t)jj->rh.out_len;
    free(jj->out);
    free(in_copy);
    pool_unref(p);
    return rc;
}

static void on_future_done(simul_future *f, void *arg)
{
    (void)f;
    job *j = arg;
    if (j->state != J_DONE && j->state != J_ENDING)
        cancel(j, -ECANCELED); /* the submitter cancelled (or set) the future */
}

int simul_procpool_submit(simul_procpool *p, simul_proc_fn fn, const void *in, size_t in_len,
                          simul_procpool_job **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!p || !fn || (!in && in_len) || p->closed || simul__loop() != p->loop)
        return -EINVAL;
    if (in_len > p->max_request)
        return -EMSGSIZE;
    job *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->pool = p;
    j->fn = fn;
    j->in_len = in_len;
    if (in_len > 0 && !(j->own_in = malloc(in_len))) {
        free(j);
        return -ENOMEM;
    }
    if (in_len > 0)
        memcpy(j->own_in, in, in_len);
    j->in = j->own_in;
    int rc = simul_future_new(&j->fut);
    if (rc == 0 && (rc = simul_future_add_done_callback(j->fut, on_future_done, j)) < 0)
        simul_future_free(j->fut);
    if (rc < 0) {
        free(j->own_in);
        free(j);
        return rc;
    }
    p->refs++;
    queue_push(p, j, false);
    dispatch(p);
    *out = j;
    return 0;
}

simul_future *simul_procpool_job_future(simul_procpool_job *j)
{
    return j ? j->fut : NULL;
}

int simul_procpool_job_result(simul_procpool_job *j, void **out, size_t *out_len, int *result)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!j)
        return -EINVAL;
    if (j->state != J_DONE)
        return -EINPROGRESS;
    if (result && j->has_result)
        *result = j->result;
    if (j->status == 0 && out_len)
        *out_len = (size_t)j->rh.out_len;
    if (j->status == 0 && out) {
        *out = j->out;
        j->out = NULL;
    }
    return j->status;
}

void simul_procpool_job_free(simul_procpool_job *j)
{
    if (!j)
        return;
    simul_procpool *p = j->pool;
    if (j->state == J_QUEUED) {
        queue_unlink(p, j);
    } else if (j->state == J_SENDING || j->state == J_RECEIVING) {
        worker *wk = j->wk;
        wk->job = NULL;
        end_worker(wk, NULL, 0, true);
        dispatch(p);
    } else if (j->state == J_ENDING) {
        j->wk->job = NULL; /* the pool reaps the worker without it */
    }
    free(j->own_in);
    free(j->out);
    simul_future_free(j->fut); /* drops our done callback; tasks awaiting it get -ECANCELED */
    free(j);
    pool_unref(p);
}

int simul_procpool_close(simul_procpool *p)
{
    if (!p || p->closed)
        return -EINVAL;
    p->closed = true;
    simul__loop_handle_unref(p->loop);
    if (p->pump_scheduled && simul_handle_cancel(p->pump_handle) == 0) {
        p->pump_scheduled = false; /* its reference goes: a loop closed next never runs it */
        p->refs--;
    }
    while (p->qhead) {
        job *j = p->qhead;
        queue_unlink(p, j);
        finish(j, -ECANCELED);
    }
    /* Kill them all first so they die in parallel, then reap one by one. */
    for (int i = 0; i < p->size; i++)
        kill_worker(&p->w[i]);
    for (int i = 0; i < p->size; i++) {
        worker *wk = &p->w[i];
        if (wk->pid > 0) {
            simul__child_reap(wk->pid, wk->pidfd);
            p->nworkers--;
        }
        close_pipes(wk);
        if (wk->pidfd >= 0)
            simul_close(wk->pidfd);
        wk->pidfd = -1;
        wk->pid = 0;
        wk->state = W_EMPTY;
        job *j = wk->job;
        wk->job = NULL;
        if (j)
            finish(j, -ECANCELED);
    }
    pool_unref(p);
    return 0;
}
