/* stack.c — stack slabs, guard regions, the per-size free pools and the overflow report.
 * Guards come from MADV_GUARD_INSTALL where the kernel has it (6.13+): they do not split the
 * mapping, so a million guarded stacks stay far below vm.max_map_count. Elsewhere each guard is
 * an mprotect'd page that splits the mapping in two, so those are rationed. A pool is a LIFO
 * whose low-water mark over a trim period tells which idle stacks nobody needed: their pages go
 * back to the kernel at the period's end, the rest stay warm for the steady state. */
#include "stack.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "coro.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SIMUL_HAVE_VALGRIND 1
#endif
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define GUARD_BYTES (16u * 1024u) /* catches frames up to 16 KiB that skip stack probes */
#define OVERFLOW_REACH ((size_t)8 << 20) /* a stack pointer this far below a stack overflowed it */
#define SLAB_BYTES (16u << 20) /* ~200 default stacks: their bookkeeping is noise per stack */
#define WARM_STACKS 16            /* idle stacks per size that keep their pages at any rate */

enum guard_mode { GUARD_UNKNOWN, GUARD_INSTALL, GUARD_MPROTECT };
static _Atomic int guard_mode = GUARD_UNKNOWN;
static atomic_long mprotect_budget = -1; /* guards left before stacks go unguarded */
static atomic_flag unguarded_warned = ATOMIC_FLAG_INIT;
static int guard_strict = -1;

typedef struct slab {
    struct slab *next;
    void *base;
    size_t bytes;
#ifdef SIMUL_HAVE_VALGRIND
    unsigned *vg_ids;
    size_t nslots;
#endif
} slab;

typedef struct pool {
    struct pool *next;
    size_t size;      /* usable bytes per stack */
    size_t slot;      /* guard + usable */
    slab *slabs;
    char *fresh;      /* next never-used slot in the newest slab */
    char *fresh_end;
    /* LIFO of idle stacks. [0, low) were not taken since the period began: the trim gives
     * their pages back. [0, cold) already did. cold <= low <= nidle. */
    void **idle;
    size_t nidle, cap, cold, low;
} pool;

struct simul__stack_cache {
    pool *pools;
    pool *last;
    size_t slabs, carved, cold_gets, released, madvise_calls;
};

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

size_t simul__stack_round(size_t size)
{
    size_t ps = page_size();
    if (size < SIMUL__STACK_MIN)
        size = SIMUL__STACK_MIN;
    if (size > SIZE_MAX - ps)
        return 0;
    return (size + ps - 1) & ~(ps - 1);
}

static long read_max_map_count(void)
{
    long v = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

/* Whether MADV_GUARD_INSTALL really guards: some environments (qemu-user, seccomp filters
 * that fake success) accept it and do nothing. A guarded page makes the kernel's own copy
 * from it fail with EFAULT; a write into a pipe is such a copy. */
static bool guard_install_works(void)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool works = false;
    int fds[2];
    if (madvise(p, ps, MADV_GUARD_INSTALL) == 0 && pipe2(fds, O_CLOEXEC) == 0) {
        works = write(fds[1], p, 1) < 0 && errno == EFAULT;
        close(fds[0]);
        close(fds[1]);
    }
    munmap(p, ps);
    return works;
}

static void guard_setup(void)
{
    const char *env = getenv("SIMUL_STACK_GUARD");
    guard_strict = env && strcmp(env, "strict") == 0;
    long budget = (read_max_map_count() - 4096) / 2;
    atomic_store(&mprotect_budget, budget > 0 ? budget : 0);
    if ((env && strcmp(env, "mprotect") == 0) || !guard_install_works())
        atomic_store(&guard_mode, GUARD_MPROTECT);
    else
        atomic_store(&guard_mode, GUARD_INSTALL);
}

static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

/* Puts a guard below one stack. Returns 0, or -ENOMEM when no guard can be had and the
 * user asked for strictness. */
static int guard_slot(char *slot)
{
    if (atomic_load(&guard_mode) == GUARD_INSTALL) {
        if (madvise(slot, GUARD_BYTES, MADV_GUARD_INSTALL) == 0)
            return 0;
        return -errno;
    }
    if (atomic_fetch_sub(&mprotect_budget, 1) > 0) {
        if (mprotect(slot, GUARD_BYTES, PROT_NONE) == 0)
            return 0;
        return -errno;
    }
    atomic_fetch_add(&mprotect_budget, 1);
    if (guard_strict)
        return -ENOMEM;
    if (!atomic_flag_test_and_set(&unguarded_warned))
        fprintf(stderr, "simul: warning: out of guard pages (vm.max_map_count); further task "
                        "stacks are unguarded (set SIMUL_STACK_GUARD=strict to fail instead)\n");
    return 0;
}

static int pool_new_slab(simul__stack_cache *c, pool *p)
{
    size_t n = SLAB_BYTES / p->slot;
    if (n == 0)
        n = 1;
    size_t bytes = n * p->slot;
    slab *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        free(s);
        return -ENOMEM;
    }
    s->base = base;
    s->bytes = bytes;
#ifdef SIMUL_HAVE_VALGRIND
    s->nslots = n;
    /* Only under valgrind: elsewhere the ids would be zeros costing 4 bytes a stack. */
    s->vg_ids = RUNNING_ON_VALGRIND ? calloc(n, sizeof *s->vg_ids) : NULL;
#endif
    for (size_t i = 0; i < n; i++) {
        char *slot = (char *)base + i * p->slot;
        int rc = guard_slot(slot);
        if (rc < 0) {
            munmap(base, bytes);
#ifdef SIMUL_HAVE_VALGRIND
            free(s->vg_ids);
#endif
            free(s);
            return rc;
        }
#ifdef SIMUL_HAVE_VALGRIND
        if (s->vg_ids)
            s->vg_ids[i] = VALGRIND_STACK_REGISTER(slot + GUARD_BYTES, slot + p->slot);
#endif
    }
    s->next = p->slabs;
    p->slabs = s;
    c->slabs++;
    p->fresh = base;
    p->fresh_end = (char *)base + bytes;
    return 0;
}

static pool *pool_for(simul__stack_cache *c, size_t size)
{
    if (c->last && c->last->size == size)
        return c->last;
    for (pool *p = c->pools; p; p = p->next)
        if (p->size == size)
            return c->last = p;
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->size = size;
    p->slot = size + GUARD_BYTES;
    p->next = c->pools;
    c->pools = p;
    return c->last = p;
}

int simul__stack_cache_new(simul__stack_cache **out)
{
    pthread_once(&guard_once, guard_setup);
    simul__stack_cache *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    *out = c;
    return 0;
}

void simul__stack_cache_free(simul__stack_cache *c)
{
    if (!c)
        return;
    pool *p = c->pools;
    while (p) {
        pool *np = p->next;
        slab *s = p->slabs;
        while (s) {
            slab *ns = s->next;
#ifdef SIMUL_HAVE_VALGRIND
            for (size_t i = 0; s->vg_ids && i < s->nslots; i++)
                VALGRIND_STACK_DEREGISTER(s->vg_ids[i]);
            free(s->vg_ids);
#endif
            munmap(s->base, s->bytes);
            free(s);
            s = ns;
        }
        free(p->idle);
        free(p);
        p = np;
    }
    free(c);
}

int simul__stack_get(simul__stack_cache *c, size_t size, simul__stack *out)
{
    pool *p = pool_for(c, size);
    if (!p)
        return -ENOMEM;
    if (p->nidle) {
        size_t i = --p->nidle;
        out->lo = p->idle[i];
        out->size = size;
        if (i < p->low) { /* below the period's low-water mark: the one test a warm get pays */
            p->low = i;
            if (i < p->cold) {
                p->cold = i;
                c->cold_gets++; /* its pages fault in again as the task touches them */
            }
        }
        return 0;
    }
    if (p->fresh == p->fresh_end) {
        int rc = pool_new_slab(c, p);
        if (rc < 0)
            return rc;
    }
    out->lo = p->fresh + GUARD_BYTES;
    out->size = size;
    p->fresh += p->slot;
    c->carved++;
    return 0;
}

static bool idle_reserve(pool *p)
{
    if (p->nidle < p->cap)
        return true;
    size_t ncap = p->cap ? p->cap * 2 : 64;
    void **n = realloc(p->idle, ncap * sizeof *n);
    if (!n)
        return false;
    p->idle = n;
    p->cap = ncap;
    return true;
}

void simul__stack_put(simul__stack_cache *c, simul__stack st)
{
    pool *p = pool_for(c, st.size);
    if (!p || !idle_reserve(p))
        return; /* the stack stays mapped but unused: memory, not correctness */
    p->idle[p->nidle++] = st.lo;
}

void simul__stack_put_surplus(simul__stack_cache *c, simul__stack st)
{
    pool *p = pool_for(c, st.size);
    if (!p || !idle_reserve(p))
        return;
    /* In at the low-water mark, as if idle all period; the warm stack that was there moves to
     * the top (still warm, now the first to be reused). */
    if (p->low < p->nidle)
        p->idle[p->nidle] = p->idle[p->low];
    p->idle[p->low++] = st.lo;
    p->nidle++;
}

void simul__stack_cache_trim(simul__stack_cache *c)
{
    for (pool *p = c->pools; p; p = p->next) {
        size_t end = p->low;
        if (p->nidle - end < WARM_STACKS)
            end = p->nidle > WARM_STACKS ? p->nidle - WARM_STACKS : 0;
        /* Neighbours in the idle list are usually neighbours in memory (tasks end in the
         * order they were made), so runs of adjacent stacks go back in one call: the guards
         * between them survive MADV_DONTNEED (guard markers and PROT_NONE alike). */
        while (p->cold < end) {
            char *lo = p->idle[p->cold], *hi = lo + p->size;
            p->cold++;
            while (p->cold < end) {
                char *next = p->idle[p->cold];
                if (next == hi + GUARD_BYTES)
                    hi = next + p->size;
                else if (next + p->size + GUARD_BYTES == lo)
                    lo = next;
                else
                    break;
                p->cold++;
            }
            madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
            c->released += (size_t)(hi - lo + GUARD_BYTES) / p->slot;
            c->madvise_calls++;
        }
        p->low = p->nidle; /* a new period */
    }
}

bool simul__stack_cache_has_surplus(const simul__stack_cache *c)
{
    for (const pool *p = c->pools; p; p = p->next)
        if (p->nidle - p->cold > WARM_STACKS)
            return true;
    return false;
}

void simul__stack_cache_stats(const simul__stack_cache *c, simul__stack_stats *out)
{
    memset(out, 0, sizeof *out);
    out->slabs = c->slabs;
    out->carved = c->carved;
    out->cold_gets = c->cold_gets;
    out->released = c->released;
    out->madvise_calls = c->madvise_calls;
    for (const pool *p = c->pools; p; p = p->next) {
        out->idle += p->nidle;
        out->idle_cold += p->cold;
    }
}

/* ---- overflow report ---------------------------------------------------------------------- */

static struct sigaction prev_segv, prev_bus;

static size_t fmt_u(char *buf, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static void put(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* The stack pointer at the fault, or NULL where we cannot read it. */
static char *fault_sp(void *uctx)
{
    ucontext_t *uc = uctx;
#if defined(__x86_64__)
    return (char *)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (char *)uc->uc_mcontext.sp;
#else
    (void)uc;
    return NULL;
#endif
}

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    simul__coro *c = simul__coro_running;
    char *addr = si->si_addr;
    char *sp = fault_sp(uctx);
    bool in_guard = c && c->stack_lo && addr >= (char *)c->stack_lo - GUARD_BYTES &&
                    addr < (char *)c->stack_lo;
    /* A frame larger than the guard (an on-stack array, compiled without stack probes) moves the
     * stack pointer below the stack and faults further down: the stack pointer tells. */
    bool sp_below = c && c->stack_lo && sp && sp < (char *)c->stack_lo &&
                    sp >= (char *)c->stack_lo - OVERFLOW_REACH;
    if (in_guard || sp_below) {
        char msg[512];
        size_t n = 0;
        const char *name = c->name ? c->name : "?";
        static const char a[] = "simul: task '", b[] = "' overflowed its ", d[] = " KiB stack",
                          big[] = " (a frame larger than the guard jumped past it: build with "
                                  "-fstack-clash-protection, as simul's pkg-config and CMake "
                                  "flags do, so it stops at the guard)",
                          e[] = ". Give it a bigger one: simul_task_opts.stack_size for this "
                                "task, simul_loop_set_stack_size(loop, bytes) for every task; or "
                                "move large arrays to the heap\n";
        memcpy(msg + n, a, sizeof a - 1);
        n += sizeof a - 1;
        size_t nl = strnlen(name, 64);
        memcpy(msg + n, name, nl);
        n += nl;
        memcpy(msg + n, b, sizeof b - 1);
        n += sizeof b - 1;
        /* Rounded up: a task's record sits at the top of its stack (core/task.c), so the
         * frames get a little less than the size asked for. */
        n += fmt_u(msg + n, (c->stack_size + 1023) / 1024);
        memcpy(msg + n, d, sizeof d - 1);
        n += sizeof d - 1;
        if (!in_guard) {
            memcpy(msg + n, big, sizeof big - 1);
            n += sizeof big - 1;
        }
        memcpy(msg + n, e, sizeof e - 1);
        n += sizeof e - 1;
        put(2, msg, n);
        signal(sig, SIG_DFL); /* returning re-runs the access and the default action ends us */
        return;
    }
    /* Not ours: hand it to whoever was there before, or let it kill the process. */
    struct sigaction *prev = sig == SIGSEGV ? &prev_segv : &prev_bus;
    if (prev->sa_flags & SA_SIGINFO && prev->sa_sigaction) {
        prev->sa_sigaction(sig, si, uctx);
        return;
    }
    if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN && prev->sa_handler) {
        prev->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);
}

static void install_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &prev_segv);
    sigaction(SIGBUS, &sa, &prev_bus);
}

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

int simul__stack_overflow_guard_thread(void **altstack_out)
{
    *altstack_out = NULL;
    pthread_once(&handler_once, install_handler);
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return 0; /* the thread has one already (ASan installs its own) */
    size_t size = 64 * 1024;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -ENOMEM;
    stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) < 0) {
        int e = errno;
        munmap(mem, size);
        return -e;
    }
    *altstack_out = mem;
    return 0;
}

void simul__stack_overflow_guard_thread_end(void *altstack)
{
    if (!altstack)
        return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(altstack, 64 * 1024);
}
