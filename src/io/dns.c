/* dns.c — getaddrinfo off the loop, on the resolver's own pool of at most 4 threads (never the
 * executor's: slow lookups must not starve file work). One process-wide mutex orders every
 * hand-over of a request between its task, its worker and the loop, so exactly one side frees
 * it, and a worker touches a loop only while the waiting task keeps that loop alive. */
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include "../core/internal.h"
#include "dns.h"

#define MAX_THREADS 4
#define IDLE_NS (5 * 1000000000LL) /* an idle worker exits after this */

typedef int (*lookup_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

/* Ownership: the task owns a request until it submits it; then
 * - delivered (the worker posted, the loop ran `deliver`): the task takes the result and frees;
 * - abandoned (cancel/deadline) while queued: freed at once by the task's unlink;
 * - abandoned while a worker runs it: the worker frees it when the lookup returns and never
 *   touches the loop (which may be gone by then);
 * - abandoned after the worker posted ("late"): `deliver` is already queued on the loop with a
 *   pointer to it, so the task waits for that (shielded, one loop pass) and then frees. */
typedef struct req {
    struct req *next, *prev; /* the queue (G) */
    simul_loop *loop;
    struct addrinfo hints;
    bool has_hints;
    char *host, *service; /* copies, in the same allocation */
    /* under G */
    bool queued, abandoned, finished;
    /* written by the worker before `finished`; read by the task after delivery (ordered by G) */
    struct addrinfo *res;
    int rc;
    /* loop thread only */
    simul__wait *w; /* the task's wait while it waits */
    bool delivered;
} req;

enum { GONE = 0, LATE = 1 }; /* what an abandoning unlink leaves the task (in w->aux) */

static pthread_mutex_t G = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static req *q_head, *q_tail;
static int qlen, nthreads, nidle;
static int inflight;            /* requests submitted and not yet freed */
static unsigned long nfinished; /* lookups whose result was posted to a loop */
static int64_t idle_ns = IDLE_NS;
static _Atomic(lookup_fn) lookup = getaddrinfo;

/* ---- errors ---------------------------------------------------------------------------------- */

int simul__eai_error(int eai, int sys_errno)
{
    if (eai == 0)
        return 0;
    if (eai == EAI_SYSTEM)
        return sys_errno > 0 ? -sys_errno : -EIO;
    if (eai == EAI_MEMORY)
        return -ENOMEM; /* the same out-of-memory every other call reports */
    return SIMUL_EAI(eai);
}

bool simul__host_is_numeric(const char *host, const struct addrinfo *hints)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (!host || (hints && (hints->ai_flags & AI_NUMERICHOST)))
        return true;
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* ---- the pool -------------------------------------------------------------------------------- */

static void q_push(req *r)
{
    r->next = NULL;
    r->prev = q_tail;
    if (q_tail)
        q_tail->next = r;
    else
        q_head = r;
    q_tail = r;
    r->queued = true;
    qlen++;
}

static void q_remove(req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        q_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        q_tail = r->prev;
    r->next = r->prev = NULL;
    r->queued = false;
    qlen--;
}

static void req_free_locked(req *r)
{
    if (r->res)
        freeaddrinfo(r->res);
    free(r);
    inflight--;
}

static void deliver(void *arg)
{
    req *r = arg;
    /* The worker posted this while holding G: once we get G, its call_soon_threadsafe has
     * returned, so the loop may be closed from here on without the worker still inside it. */
    pthread_mutex_lock(&G);
    pthread_mutex_unlock(&G);
    r->delivered = true;
    simul__wait *w = r->w;
    if (w) {
        r->w = NULL;
        simul__wake(w, 0);
    }
}

/* The lookup is over (result in r->res / r->rc). Called and returns with G held. */
static void complete_locked(req *r)
{
    for (;;) {
        if (r->abandoned) {
            req_free_locked(r);
            return;
        }
        /* Not abandoned: the task is parked on r->loop, so that loop cannot be closed (it has a
         * live task) while we hold G, which the task's unlink needs. */
        int rc = simul_loop_call_soon_threadsafe(r->loop, deliver, r);
        if (rc == 0) {
            r->finished = true;
            nfinished++;
            return;
        }
        SIMUL__ASSERT(rc == -ENOMEM);
        /* Let go of G so the task can still give up meanwhile; retry shortly. */
        pthread_mutex_unlock(&G);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
        pthread_mutex_lock(&G);
    }
}

static struct timespec idle_deadline(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + idle_ns % 1000000000;
    ts.tv_sec += (time_t)(idle_ns / 1000000000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

static void *worker(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&G);
    for (;;) {
        struct timespec until = idle_deadline();
        while (!q_head) {
            nidle++;
            int rc = pthread_cond_timedwait(&work_cv, &G, &until);
            nidle--;
            if (rc == ETIMEDOUT && !q_head) {
                nthreads--;
                pthread_mutex_unlock(&G);
                return NULL;
            }
        }
        req *r = q_head;
        q_remove(r);
        pthread_mutex_unlock(&G);

        struct addrinfo *res = NULL;
        errno = 0;
        int eai = atomic_load(&lookup)(r->host, r->service, r->has_hints ? &r->hints : NULL, &res);
        r->rc = simul__eai_error(eai, errno);
        r->res = eai == 0 ? res : NULL;

        pthread_mutex_lock(&G);
        complete_locked(r);
    }
}

/* After fork only the forking thread exists: forget the workers and the queued requests (they
 * belong to the parent's tasks). */
static void at_fork_prepare(void)
{
    pthread_mutex_lock(&G);
}

static void at_fork_parent(void)
{
    pthread_mutex_unlock(&G);
}

static void at_fork_child(void)
{
    q_head = q_tail = NULL;
    qlen = nthreads = nidle = inflight = 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&work_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_unlock(&G);
}

static void pool_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* idle timeouts immune to clock changes */
    pthread_cond_init(&work_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child);
}

static int start_thread(void)
{
    pthread_attr_t a;
    pthread_t th;
    sigset_t all, old;
    if (pthread_attr_init(&a))
        return -ENOMEM;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    /* Workers inherit a full signal mask: process signals go to the application's threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&th, &a, worker, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    return -rc;
}

/* Queues r; a worker will complete it through complete_locked. */
static void submit(req *r)
{
    pthread_once(&once, pool_init);
    pthread_mutex_lock(&G);
    q_push(r);
    inflight++;
    bool spawn = qlen > nidle && nthreads < MAX_THREADS;
    if (spawn)
        nthreads++;
    if (nidle)
        pthread_cond_signal(&work_cv);
    pthread_mutex_unlock(&G);
    if (!spawn)
        return;
    int rc = start_thread();
    if (rc == 0)
        return;
    pthread_mutex_lock(&G);
    nthreads--;
    if (nthreads == 0) {
        /* No worker will ever take the queue: fail what is in it, through the normal delivery
         * (r's own task parks right after this and is woken by it like any other). */
        req *q;
        while ((q = q_head)) {
            q_remove(q);
            q->rc = rc;
            complete_locked(q);
        }
    }
    pthread_mutex_unlock(&G);
}

/* ---- the task side --------------------------------------------------------------------------- */

static void abandon(simul__wait *w)
{
    req *r = w->ctx;
    r->w = NULL;
    pthread_mutex_lock(&G);
    r->abandoned = true;
    if (r->queued) {
        q_remove(r); /* no worker has seen it: free it now */
        req_free_locked(r);
        w->aux = GONE;
    } else {
        w->aux = r->finished ? LATE : GONE; /* GONE: the worker frees it when it returns */
    }
    pthread_mutex_unlock(&G);
}

static req *req_new(const char *host, const char *service, const struct addrinfo *hints)
{
    size_t hl = host ? strlen(host) + 1 : 0, sl = service ? strlen(service) + 1 : 0;
    req *r = calloc(1, sizeof *r + hl + sl);
    if (!r)
        return NULL;
    char *p = (char *)(r + 1);
    if (host) {
        r->host = memcpy(p, host, hl);
        p += hl;
    }
    if (service)
        r->service = memcpy(p, service, sl);
    if (hints) {
        /* Only these four may be set in hints (POSIX); the pointers are not ours to copy. */
        r->has_hints = true;
        r->hints.ai_flags = hints->ai_flags;
        r->hints.ai_family = hints->ai_family;
        r->hints.ai_socktype = hints->ai_socktype;
        r->hints.ai_protocol = hints->ai_protocol;
    }
    return r;
}

int simul_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                      struct addrinfo **res)
{
    if (!res)
        return -EINVAL;
    *res = NULL;
    simul_task *self = simul__task_self();
    if (simul__host_is_numeric(host, hints)) {
        /* No name service involved: answer at once, on this thread. */
        if (self) {
            int rc = simul__task_check(self);
            if (rc < 0)
                return rc;
        }
        errno = 0;
        int eai = getaddrinfo(host, service, hints, res);
        if (eai != 0)
            *res = NULL;
        return simul__eai_error(eai, errno);
    }
    self = simul__task_require(__func__);
    if (!self)
        return -EPERM;
    int rc = simul__task_check(self);
    if (rc < 0)
        return rc;
    req *r = req_new(host, service, hints);
    if (!r)
        return -ENOMEM;
    r->loop = self->loop;
    simul__wait w = {.unlink = abandon, .ctx = r};
    r->w = &w;
    submit(r);
    self->loop->thread_waits++; /* a worker will wake it: the loop is not stuck */
    rc = simul__park(&w, SIMUL__INF);
    self->loop->thread_waits--;
    if (rc == 0) {
        SIMUL__ASSERT(r->delivered);
        rc = r->rc;
        *res = r->res;
        r->res = NULL;
        pthread_mutex_lock(&G);
        req_free_locked(r);
        pthread_mutex_unlock(&G);
        return rc;
    }
    if (w.aux == LATE) {
        if (!r->delivered) {
            /* `deliver` is queued on this loop with r: wait for it so it never runs on freed
             * memory nor is left behind if the loop closes. It comes within a pass. */
            simul_scope shield;
            simul_scope_shield(&shield);
            simul__wait w2 = {0};
            r->w = &w2;
            simul__park(&w2, SIMUL__INF);
            simul_scope_end(&shield);
            SIMUL__ASSERT(r->delivered);
        }
        pthread_mutex_lock(&G);
        req_free_locked(r);
        pthread_mutex_unlock(&G);
    }
    return rc;
}

void simul_freeaddrinfo(struct addrinfo *res)
{
    if (res)
        freeaddrinfo(res);
}

/* ---- test hooks (the unit tests link the static library) ------------------------------------- */

/* Replaces the function the workers call (NULL restores getaddrinfo) and the idle time after
 * which a worker exits. */
void simul__dns_test_set(lookup_fn fn, int64_t idle_after_ns);
void simul__dns_test_set(lookup_fn fn, int64_t idle_after_ns)
{
    atomic_store(&lookup, fn ? fn : getaddrinfo);
    pthread_mutex_lock(&G);
    idle_ns = idle_after_ns > 0 ? idle_after_ns : IDLE_NS;
    pthread_mutex_unlock(&G);
}

/* The pool's counters, read together under its lock. */
void simul__dns_test_counts(int *threads, int *idle, int *pending, unsigned long *finished);
void simul__dns_test_counts(int *threads, int *idle, int *pending, unsigned long *finished)
{
    pthread_mutex_lock(&G);
    *threads = nthreads;
    *idle = nidle;
    *pending = inflight;
    *finished = nfinished;
    pthread_mutex_unlock(&G);
}
