/* coro.c — building the first frame of a coroutine, and the ucontext fallback's entry. */
#include "coro.h"

#include <stdlib.h>
#include <string.h>
#ifdef SIMUL_ASAN
#include <pthread.h>
#endif

__thread simul__coro *simul__coro_running __attribute__((tls_model("initial-exec")));

#ifdef SIMUL_CORO_ASM
void simul__coro_boot(void);
#endif

static void coro_entry(void *arg)
{
    simul__coro *c = arg;
    simul__coro_started(c);
    c->fn(c->arg);
    __builtin_trap(); /* the entry function must leave with simul__coro_exit */
}

#ifndef SIMUL_CORO_ASM
static void coro_entry_uc(unsigned hi, unsigned lo)
{
    coro_entry((void *)(((uintptr_t)hi << 32) | (uintptr_t)lo));
}
#endif

#ifdef SIMUL_ASAN
/* The calling thread's stack, as pthread knows it; {NULL, 0} (ASan's "unknown") if it cannot be
 * had. Cached per thread: for the main thread glibc reads /proc/self/maps, and every loop asks.
 * A forked child keeps the cache, and rightly so: its one thread runs on the same addresses. */
static __thread const void *thread_stack_lo;
static __thread size_t thread_stack_size;
static __thread int thread_stack_looked_up;

static void thread_stack_bounds(const void **lo, size_t *size)
{
    if (!thread_stack_looked_up) {
        thread_stack_looked_up = 1;
        pthread_attr_t a;
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
            void *addr;
            size_t len;
            if (pthread_attr_getstack(&a, &addr, &len) == 0) {
                thread_stack_lo = addr;
                thread_stack_size = len;
            }
            pthread_attr_destroy(&a);
        }
    }
    *lo = thread_stack_lo;
    *size = thread_stack_size;
}
#endif

void simul__coro_init_thread(simul__coro *c)
{
    memset(c, 0, sizeof *c);
#ifdef SIMUL_ASAN
    thread_stack_bounds(&c->asan_stack_lo, &c->asan_stack_size);
#endif
#ifdef SIMUL_TSAN
    c->tsan_fiber = __tsan_get_current_fiber();
#endif
}

static void init_common(simul__coro *c, void *stack_lo, size_t size, simul__coro_fn fn, void *arg)
{
    c->stack_lo = stack_lo;
    c->stack_size = size;
    c->fn = fn;
    c->arg = arg;
    c->shared = NULL;
    c->save = NULL;
    c->save_len = c->save_cap = 0;
#ifdef SIMUL_ASAN
    c->asan_fake = NULL;
    c->asan_stack_lo = stack_lo;
    c->asan_stack_size = size;
#endif
#ifdef SIMUL_TSAN
    c->tsan_fiber = __tsan_create_fiber(0);
    c->tsan_owned = 1;
#endif
}

#ifdef SIMUL_CORO_ASM
/* Writes the first frame of c into `f`, a frame that will sit 16 bytes below a 16-aligned top,
 * so that after the switch's `ret` pops it the stack pointer is 16-aligned at boot's call. */
static void build_frame(simul__coro *c, struct simul__ctx_frame *f)
{
    memset(f, 0, sizeof *f);
#if defined(__x86_64__)
    f->mxcsr = 0x1F80; /* defaults: all exceptions masked, round to nearest */
    f->x87cw = 0x037F;
    f->r12 = (uint64_t)(uintptr_t)coro_entry;
    f->r13 = (uint64_t)(uintptr_t)c;
    f->ret = (uint64_t)(uintptr_t)simul__coro_boot;
#else
    f->x[0] = (uint64_t)(uintptr_t)coro_entry;
    f->x[1] = (uint64_t)(uintptr_t)c;
    f->x30 = (uint64_t)(uintptr_t)simul__coro_boot;
#endif
}
#endif

void simul__coro_init(simul__coro *c, void *stack_lo, size_t size, simul__coro_fn fn, void *arg)
{
    init_common(c, stack_lo, size, fn, arg);
#ifdef SIMUL_ASAN
    /* A pooled stack still carries the poisoned redzones of the frames of its last task that
     * never returned (the entry and the task's main): clear them before reuse. */
    __asan_unpoison_memory_region(stack_lo, size);
#endif
#ifdef SIMUL_CORO_ASM
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
    struct simul__ctx_frame *f = (struct simul__ctx_frame *)(top - 16 - sizeof *f);
    build_frame(c, f);
    c->sp = f;
#else
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack_lo;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)c;
    makecontext(&c->uc, (void (*)(void))coro_entry_uc, 2, (unsigned)(p >> 32), (unsigned)p);
#endif
}

#ifdef SIMUL_CORO_COMPACT
int simul__coro_init_compact(simul__coro *c, simul__runstack *rs, simul__coro_fn fn, void *arg,
                             void *lend, size_t lend_size)
{
    /* The first frame is built in the copy, as if evicted before it ran: whoever owns the run
     * stack now keeps it untouched. A lent copy spares a spawn its malloc, and an idle task the
     * hole that copy left in the heap once its first eviction replaced it. */
    uintptr_t hi = (uintptr_t)rs->hi;
    uintptr_t sp = (hi & ~(uintptr_t)15) - 16 - sizeof(struct simul__ctx_frame);
    size_t n = hi - sp, cap = 0;
    void *save = lend;
    if (!lend || lend_size < n) {
        cap = (n + 63) & ~(size_t)63;
        save = calloc(1, cap);
        if (!save)
            return -12; /* ENOMEM */
    } else {
        memset(save, 0, n);
    }
    init_common(c, rs->lo, (size_t)(rs->hi - rs->lo), fn, arg);
    build_frame(c, save);
    c->shared = rs;
    c->save = save;
    c->save_cap = (uint32_t)cap;
    c->save_len = (uint32_t)n;
    c->sp = (void *)sp;
    return 0;
}
#endif

void simul__coro_destroy(simul__coro *c)
{
    if (c->save_cap)
        free(c->save);
    c->save = NULL;
    c->save_len = c->save_cap = 0;
    c->shared = NULL;
#ifdef SIMUL_TSAN
    if (c->tsan_owned && c->tsan_fiber) {
        __tsan_destroy_fiber(c->tsan_fiber);
        c->tsan_fiber = NULL;
        c->tsan_owned = 0;
    }
#endif
}

void simul__coro_started(simul__coro *self)
{
    /* First arrival on a fresh stack: there is no fake stack to restore yet. */
#ifdef SIMUL_ASAN
    const void *lo;
    size_t size;
    __sanitizer_finish_switch_fiber(NULL, &lo, &size);
#endif
    (void)self;
}
