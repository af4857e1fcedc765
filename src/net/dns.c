/* dns.c — getaddrinfo off the loop, on the resolver's own pool of at most 4 threads (pool.c;
 * never the executor's pool: slow lookups must not starve file work). A lookup whose task gave up
 * finishes on its worker, which frees it; a numeric host is answered at once, on the caller. */
#include <arpa/inet.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"
#include "../offload/pool.h"

#define IDLE_NS (5 * 1000000000LL) /* an idle worker exits after this */

typedef int (*lookup_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

typedef struct lookup_job {
    simul__job base;
    struct addrinfo hints;
    bool has_hints;
    char *host, *service; /* copies, in the same allocation */
    struct addrinfo *res; /* written by the worker, read by the task once it is delivered */
    int rc;
} lookup_job;

static int max_threads(void)
{
    return 4;
}

static simul__pool pool = SIMUL__POOL_INIT(max_threads, IDLE_NS);
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

/* ---- lookups ----------------------------------------------------------------------------- */

static void lookup_work(simul__job *j)
{
    lookup_job *l = (lookup_job *)j;
    struct addrinfo *res = NULL;
    errno = 0;
    int eai = atomic_load(&lookup)(l->host, l->service, l->has_hints ? &l->hints : NULL, &res);
    l->rc = simul__eai_error(eai, errno);
    l->res = eai == 0 ? res : NULL;
}

static void lookup_free(simul__job *j)
{
    lookup_job *l = (lookup_job *)j;
    if (l->res)
        freeaddrinfo(l->res);
    free(l);
}

static lookup_job *lookup_new(const char *host, const char *service, const struct addrinfo *hints)
{
    size_t hl = host ? strlen(host) + 1 : 0, sl = service ? strlen(service) + 1 : 0;
    lookup_job *l = calloc(1, sizeof *l + hl + sl);
    if (!l)
        return NULL;
    l->base.work = lookup_work;
    l->base.drop = lookup_free;
    char *p = (char *)(l + 1);
    if (host) {
        l->host = memcpy(p, host, hl);
        p += hl;
    }
    if (service)
        l->service = memcpy(p, service, sl);
    if (hints) {
        /* Only these four may be set in hints (POSIX); the pointers are not ours to copy. */
        l->has_hints = true;
        l->hints.ai_flags = hints->ai_flags;
        l->hints.ai_family = hints->ai_family;
        l->hints.ai_socktype = hints->ai_socktype;
        l->hints.ai_protocol = hints->ai_protocol;
    }
    return l;
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
    lookup_job *l = lookup_new(host, service, hints);
    if (!l)
        return -ENOMEM;
    int fate;
    rc = simul__pool_run(&pool, &l->base, &fate);
    if (rc < 0 && fate == SIMUL__JOB_DROPPED)
        return rc; /* the worker frees the lookup when it returns */
    if (rc == 0 && fate == SIMUL__JOB_LATE) {
        rc = l->base.late_rc; /* an answer nobody waits for any more: dropped, as if unasked */
    } else if (rc == 0) {
        rc = l->rc;
        *res = l->res;
        l->res = NULL;
    }
    lookup_free(&l->base);
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
    simul__pool_set_idle(&pool, idle_after_ns, IDLE_NS);
}

/* The pool's counters: threads, idle ones, lookups not yet freed, answers posted to a loop. */
void simul__dns_test_counts(int *threads, int *idle, int *pending, unsigned long *finished);
void simul__dns_test_counts(int *threads, int *idle, int *pending, unsigned long *finished)
{
    simul__pool_counts(&pool, threads, idle, pending);
    *finished = simul__pool_posted(&pool);
}
