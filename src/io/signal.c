/* signal.c — POSIX signals delivered to a loop: the C-level handler only writes the signal's
 * number to the owning loop's non-blocking self-pipe (async-signal-safe, and correct whichever
 * thread the kernel picks), and a reader on the loop runs the handlers and wakes waiting tasks. */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "signal.h"

typedef struct sigwaiter {
    simul__wait w;
    struct sigwaiter *next, *prev;
    const int *sigs;
    int n;
    int got;
} sigwaiter;

/* One per loop that uses signals (at most one per thread). Loop thread only. */
typedef struct sigloop {
    simul_loop *loop;
    int rfd, wfd;
    int refs;         /* handlers + signals waited on: the state lives while > 0 */
    bool dispatching; /* inside the reader: a handler that removes the last user must not free */
    simul_signal_cb cb[NSIG];
    void *arg[NSIG];
    bool cb_oneshot[NSIG]; /* the handler wants SA_RESETHAND when it is sig's only user */
    sigwaiter *head, *tail;
    simul__close_hook on_close; /* removes the handlers a closing loop still has */
} sigloop;

static __thread sigloop *tls;

/* Process-wide, under M: which loop has each signal, how often, and what to restore. */
static pthread_mutex_t M = PTHREAD_MUTEX_INITIALIZER;
static struct {
    sigloop *owner;
    int refs;
    bool oneshot; /* installed with SA_RESETHAND: the kernel may have put SIG_DFL back since */
    struct sigaction old;
} owners[NSIG];

/* Read by the C handler: the pipe to write (fd + 1, 0 for none) and the loop to nudge. */
static atomic_int sig_wfd[NSIG];
static _Atomic(simul_loop *) sig_loop[NSIG];
static atomic_int in_handler; /* handlers running now: a pipe is closed only at 0 */

static void on_signal(int sig)
{
    int saved = errno;
    atomic_fetch_add(&in_handler, 1);
    int fd = atomic_load(&sig_wfd[sig]) - 1;
    if (fd >= 0) {
        unsigned char b = (unsigned char)sig;
        ssize_t r = write(fd, &b, 1);
        (void)r; /* a full pipe already holds more wake-ups than anyone needs */
        simul_loop *loop = atomic_load(&sig_loop[sig]);
        /* The loop skips its poll while tasks are ready and it has no counted I/O (the pipe is
         * not counted, see state_get): this makes a busy loop poll and see the pipe. */
        if (loop)
            simul__loop_wake(loop);
    }
    atomic_fetch_sub(&in_handler, 1);
    errno = saved;
}

static bool sig_ok(int sig)
{
    return sig > 0 && sig < NSIG && sig != SIGKILL && sig != SIGSTOP;
}

/* ---- taking and giving back a signal --------------------------------------------------------- */

/* Under M: our C handler as sig's disposition; oneshot adds SA_RESETHAND (simul_run's Ctrl-C, so
 * that a second one kills). */
static int install(int sig, bool oneshot, struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | (oneshot ? SA_RESETHAND : 0);
    if (sigaction(sig, &sa, old) < 0)
        return -errno;
    owners[sig].oneshot = oneshot;
    return 0;
}

static int acquire(sigloop *st, int sig, bool oneshot)
{
    int rc = 0;
    pthread_mutex_lock(&M);
    if (owners[sig].owner == st) {
        /* A second user of a oneshot disposition: it must stay, and must be ours again if the
         * one shot has already fired. */
        if (owners[sig].oneshot)
            rc = install(sig, false, NULL);
        if (rc == 0)
            owners[sig].refs++;
    } else if (owners[sig].owner) {
        rc = -EBUSY; /* another loop's: a signal has one owner in the process */
    } else {
        atomic_store(&sig_loop[sig], st->loop);
        atomic_store(&sig_wfd[sig], st->wfd + 1);
        rc = install(sig, oneshot, &owners[sig].old);
        if (rc < 0) {
            atomic_store(&sig_wfd[sig], 0);
            atomic_store(&sig_loop[sig], NULL);
        } else {
            owners[sig].owner = st;
            owners[sig].refs = 1;
        }
    }
    pthread_mutex_unlock(&M);
    return rc;
}

/* This loop's handler of sig is replaced by one that wants `oneshot`: the disposition follows the
 * new handler when it is the only user, and is put back if a one shot already fired. */
static int retake(int sig, bool oneshot)
{
    pthread_mutex_lock(&M);
    int rc = install(sig, oneshot && owners[sig].refs == 1, NULL);
    pthread_mutex_unlock(&M);
    return rc;
}

static void release(int sig)
{
    pthread_mutex_lock(&M);
    sigloop *st = owners[sig].owner;
    if (--owners[sig].refs == 0) {
        sigaction(sig, &owners[sig].old, NULL); /* the previous disposition, whatever it was */
        owners[sig].owner = NULL;
        atomic_store(&sig_wfd[sig], 0);
        atomic_store(&sig_loop[sig], NULL);
    } else if (owners[sig].refs == 1 && st->cb[sig] && st->cb_oneshot[sig] && !owners[sig].oneshot) {
        /* A wait that shared simul_run's Ctrl-C is over: a second Ctrl-C kills again. */
        install(sig, true, NULL);
    }
    pthread_mutex_unlock(&M);
}

/* ---- the loop's state ------------------------------------------------------------------------ */

static void on_readable(int fd, void *arg);
static void on_loop_close(simul_loop *loop, void *arg);

static sigloop *state_get(int *err)
{
    simul_loop *loop = simul__loop();
    if (!loop) {
        *err = -ENXIO;
        return NULL;
    }
    if (tls) {
        /* Handlers must be removed before their loop closes (simul_loop_close does not know
         * them): a state left from an earlier loop is a bug of the caller. */
        SIMUL__ASSERT(tls->loop == loop);
        return tls;
    }
    sigloop *st = calloc(1, sizeof *st);
    if (!st) {
        *err = -ENOMEM;
        return NULL;
    }
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
        *err = -errno;
        free(st);
        return NULL;
    }
    st->loop = loop;
    st->rfd = p[0];
    st->wfd = p[1];
    int rc = simul_add_reader(st->rfd, on_readable, st);
    if (rc < 0) {
        close(p[0]);
        close(p[1]);
        free(st);
        *err = rc;
        return NULL;
    }
    /* Like the backend's own wake-up, the pipe is not user I/O: counting it would cost every
     * pass a poll (simul_run installs SIGINT for every program) and hide the debug deadlock
     * hint. on_signal makes the loop poll when a signal comes. */
    simul__loop_io_count(loop, -1);
    st->on_close = (simul__close_hook){.fn = on_loop_close, .arg = st};
    simul__loop_close_hook_add(loop, &st->on_close);
    tls = st;
    return st;
}

static void state_maybe_free(sigloop *st)
{
    if (st->refs > 0 || st->dispatching)
        return;
    /* Our signals are released: wait out a handler that read the fd just before. */
    while (atomic_load(&in_handler) > 0)
        sched_yield();
    simul__loop_close_hook_remove(st->loop, &st->on_close);
    simul__loop_io_count(st->loop, 1); /* simul_close's forget gives back the count we took */
    simul_close(st->rfd);
    close(st->wfd);
    tls = NULL;
    free(st);
}

static void dispatch(sigloop *st, int sig)
{
    if (sig <= 0 || sig >= NSIG)
        return;
    if (st->cb[sig])
        st->cb[sig](sig, st->arg[sig]);
    for (sigwaiter *x = st->head, *next; x; x = next) {
        next = x->next;
        for (int i = 0; i < x->n; i++) {
            if (x->sigs[i] != sig)
                continue;
            /* Off the list now; the task gives its signals back when it resumes. */
            if (x->prev)
                x->prev->next = x->next;
            else
                st->head = x->next;
            if (x->next)
                x->next->prev = x->prev;
            else
                st->tail = x->prev;
            x->next = x->prev = NULL;
            x->got = sig;
            simul__wake(&x->w, 0);
            break;
        }
    }
}

static void on_readable(int fd, void *arg)
{
    sigloop *st = arg;
    unsigned char buf[64];
    st->dispatching = true;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break; /* EAGAIN: drained */
        for (ssize_t i = 0; i < n; i++)
            dispatch(st, buf[i]); /* in the order the signals came */
        if (n < (ssize_t)sizeof buf)
            break;
    }
    st->dispatching = false;
    state_maybe_free(st);
}

/* ---- handlers -------------------------------------------------------------------------------- */

int simul__signal_add(int sig, simul_signal_cb cb, void *arg, bool oneshot)
{
    if (!sig_ok(sig) || !cb)
        return -EINVAL;
    int rc = 0;
    sigloop *st = state_get(&rc);
    if (!st)
        return rc;
    if (!st->cb[sig]) {
        rc = acquire(st, sig, oneshot);
        if (rc < 0) {
            state_maybe_free(st);
            return rc;
        }
        st->refs++;
    } else if ((rc = retake(sig, oneshot)) < 0) {
        return rc;
    }
    st->cb[sig] = cb;
    st->arg[sig] = arg;
    st->cb_oneshot[sig] = oneshot;
    return 0;
}

int simul_add_signal_handler(int sig, simul_signal_cb cb, void *arg)
{
    return simul__signal_add(sig, cb, arg, false);
}

int simul_remove_signal_handler(int sig)
{
    if (sig <= 0 || sig >= NSIG)
        return -EINVAL;
    if (!simul__loop())
        return -ENXIO;
    sigloop *st = tls;
    if (!st || !st->cb[sig])
        return 0;
    st->cb[sig] = NULL;
    st->arg[sig] = NULL;
    release(sig);
    st->refs--;
    state_maybe_free(st);
    return 1;
}

/* The loop's close hook (added with the state, so it runs before the fd table's). */
static void on_loop_close(simul_loop *loop, void *arg)
{
    sigloop *st = arg;
    if (tls != st || st->loop != loop)
        return;
    /* No task waits here (the loop only closes without tasks), so handlers are the only users. */
    for (int sig = 1; sig < NSIG && tls; sig++)
        if (st->cb[sig])
            simul_remove_signal_handler(sig);
}

/* ---- waiting --------------------------------------------------------------------------------- */

static void waiter_unlink(simul__wait *w)
{
    sigwaiter *x = w->ctx;
    sigloop *st = tls;
    if (x->prev)
        x->prev->next = x->next;
    else
        st->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        st->tail = x->prev;
    x->next = x->prev = NULL;
}

int simul_wait_signal(const int *sigs, int n)
{
    simul_task *self = simul__task_require(__func__);
    if (!sigs || n <= 0)
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (!sig_ok(sigs[i]))
            return -EINVAL;
    if (!self)
        return -EPERM;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    sigloop *st = state_get(&rc);
    if (!st)
        return rc;
    int taken = 0;
    for (; taken < n; taken++) {
        rc = acquire(st, sigs[taken], false);
        if (rc < 0)
            break;
        st->refs++;
    }
    if (rc == 0) {
        /* The dispatcher reads the record and the signal list while we are suspended: for a
         * compact task both go off its stack (the list may be the caller's local array). */
        SIMUL__REC(sigwaiter, x, self);
        int *sigcopy = NULL;
        if (x && self->compact && (sigcopy = malloc((size_t)n * sizeof *sigcopy)))
            memcpy(sigcopy, sigs, (size_t)n * sizeof *sigcopy);
        if (!x || (self->compact && !sigcopy)) {
            rc = -ENOMEM;
        } else {
            *x = (sigwaiter){.sigs = sigcopy ? sigcopy : sigs, .n = n};
            x->w = (simul__wait){.unlink = waiter_unlink, .ctx = x};
            x->prev = st->tail;
            if (st->tail)
                st->tail->next = x;
            else
                st->head = x;
            st->tail = x;
            simul__loop_thread_wait_begin(st->loop); /* a signal will wake it: not stuck */
            rc = simul__park(&x->w, SIMUL__INF);
            simul__loop_thread_wait_end(st->loop);
            if (rc == 0)
                rc = x->got;
        }
        free(sigcopy);
    }
    while (taken-- > 0) {
        release(sigs[taken]);
        st->refs--;
    }
    state_maybe_free(st);
    return rc;
}
