/* coro.h — stackful coroutines: a saved context plus the stack it runs on. Knows nothing of
 * tasks or I/O. The switch is one call into assembly (or swapcontext where there is none),
 * wrapped so that ASan and TSan are told about every change of stack. */
#ifndef SIMUL_CORO_H
#define SIMUL_CORO_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMUL_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define SIMUL_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(SIMUL_ASAN)
#define SIMUL_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(SIMUL_TSAN)
#define SIMUL_TSAN 1
#endif

#ifdef SIMUL_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef SIMUL_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#ifndef SIMUL_CORO_ASM
#include <ucontext.h>
#endif

typedef void (*simul__coro_fn)(void *arg);

typedef struct simul__coro simul__coro;

/* A run stack shared by compact coroutines (x86-64 only; see runstack.c). The one whose live
 * frames it holds is the owner; the others keep theirs in right-sized heap copies. */
typedef struct simul__runstack {
    char *lo, *hi;        /* usable bytes [lo, hi) */
    simul__coro *owner;   /* whose frames [owner->sp, hi) hold; NULL if nobody's */
    char *scratch_top;    /* a small stack the copies run on when a switch leaves the run stack */
    struct simul__runstack *next; /* the loop's list */
    void *mem_lo;         /* what the loop got from its stack cache, to give back */
    size_t mem_size;
    void *scratch_lo;
    size_t scratch_size;
} simul__runstack;

struct simul__coro {
#ifdef SIMUL_CORO_ASM
    void *sp; /* saved stack pointer while suspended */
#else
    ucontext_t uc;
#endif
    simul__runstack *shared; /* compact: the run stack it runs on; NULL: a stack of its own */
    void *save;              /* compact: the copy of [sp, shared->hi) while evicted; lent by
                                the caller (not ours to free) while save_cap is 0 */
    uint32_t save_len;
    uint32_t save_cap;       /* the copy's capacity, a multiple of 64; the low 6 bits are the
                                resize policy's own (runstack.c): nonzero means owned */
    void *stack_lo;     /* lowest usable byte of the stack; NULL for a thread's own stack */
    size_t stack_size;
    const char *name;   /* for the overflow report; owned by whoever set it */
    simul__coro_fn fn;  /* entry point and argument, used once at boot */
    void *arg;
#ifdef SIMUL_ASAN
    void *asan_fake;
    /* The stack ASan is told it runs on after a switch here: the coroutine's stack, or for a
     * thread's own context the thread's real stack, so that ASan's view of the loop's stack
     * is right and noreturn calls there (exit, longjmp) can clean it. */
    const void *asan_stack_lo;
    size_t asan_stack_size;
#endif
#ifdef SIMUL_TSAN
    void *tsan_fiber;
    int tsan_owned;
#endif
};

/* The coroutine running on this thread (the thread's own context is NULL). Read by the
 * overflow handler, hence initial-exec TLS: no allocation inside a signal handler. */
extern __thread simul__coro *simul__coro_running __attribute__((tls_model("initial-exec")));

/* Makes `c` the record of the calling thread's own context (the loop's). Under ASan it also
 * records the thread's stack bounds (looked up once per thread). */
void simul__coro_init_thread(simul__coro *c);
/* Prepares `c` to run fn(arg) on [stack_lo, stack_lo + size) at its first switch-in. */
void simul__coro_init(simul__coro *c, void *stack_lo, size_t size, simul__coro_fn fn, void *arg);
#if defined(SIMUL_CORO_ASM) && defined(__x86_64__)
#define SIMUL_CORO_COMPACT 1 /* simul__ctx_switch_via exists only in switch_x86_64.S */
/* Prepares `c` to run fn(arg) on the shared run stack `rs`: its first frame is built in its
 * copy (the run stack may be in use). The copy is `lend` if it is not NULL and `lend_size`
 * bytes hold the frame (8-aligned; the caller leaves it alone until c first runs, and c never
 * frees it: save_cap 0 marks it), else from the heap. Returns 0 or -ENOMEM. */
int simul__coro_init_compact(simul__coro *c, simul__runstack *rs, simul__coro_fn fn, void *arg,
                             void *lend, size_t lend_size);
/* Makes `to` the owner of its run stack: saves the owner's frames to its copy and puts `to`'s
 * back. Returns to->sp. Runs on the scratch stack when the switch leaves the run stack. */
void *simul__coro_swap(void *to);
void *simul__ctx_switch_via(void **save_sp, void *scratch_top, void *(*fn)(void *), void *arg);
#endif
/* malloc and realloc calls for compact copies made by this thread's switches (tests count;
 * always 0 where there are no compact switches). */
extern __thread unsigned long simul__coro_save_allocs;
/* Releases what init took (the TSan fiber, a compact copy). */
void simul__coro_destroy(simul__coro *c);
/* Called first thing by a coroutine's entry function. */
void simul__coro_started(simul__coro *self);

#ifdef SIMUL_CORO_ASM
void simul__ctx_switch(void **save_sp, void *load_sp);
#endif

#ifdef SIMUL_CORO_COMPACT
/* The switch into a compact coroutine. Out of line, so that the stackful switch stays a load, a
 * test and the call (under TSan it must stay in the caller's frame: see below). `from_rs` is
 * the run stack the leaving context runs on, if any. */
#ifdef SIMUL_TSAN
__attribute__((always_inline)) static inline
#else
__attribute__((noinline, unused)) static
#endif
void simul__coro_switch_shared(void **save_sp, simul__runstack *from_rs,
                                             simul__coro *to)
{
    if (to->shared->owner == to) {
        simul__ctx_switch(save_sp, to->sp); /* still on the run stack: nothing to copy */
    } else if (from_rs == to->shared) {
        /* Leaving that same run stack: the copies run on the scratch stack, between saving
         * this context and loading the next. */
        simul__ctx_switch_via(save_sp, to->shared->scratch_top, simul__coro_swap, to);
    } else {
        simul__ctx_switch(save_sp, simul__coro_swap(to));
    }
}
#endif

/* Always inlined: TSan's function-exit hook of a helper that returned after the fiber
 * switch would pop the new fiber's shadow stack. The switch must stay in the caller's frame. */
__attribute__((always_inline)) static inline void simul__coro_before_(simul__coro *from,
                                                                      simul__coro *to, int dying)
{
    (void)from;
    (void)dying;
#ifdef SIMUL_ASAN
    __sanitizer_start_switch_fiber(dying ? NULL : &from->asan_fake, to->asan_stack_lo,
                                   to->asan_stack_size);
#endif
#ifdef SIMUL_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    simul__coro_running = to->stack_lo ? to : NULL;
}

__attribute__((always_inline)) static inline void simul__coro_after_(simul__coro *self)
{
    (void)self;
#ifdef SIMUL_ASAN
    const void *lo;
    size_t size;
    __sanitizer_finish_switch_fiber(self->asan_fake, &lo, &size);
#endif
}

/* Saves the running context into `from` and resumes `to`. Returns when someone switches back. */
__attribute__((always_inline)) static inline void simul__coro_switch(simul__coro *from,
                                                                     simul__coro *to)
{
    simul__coro_before_(from, to, 0);
#ifdef SIMUL_CORO_COMPACT
    if (__builtin_expect(to->shared != NULL, 0)) /* the one branch stackful switches pay */
        simul__coro_switch_shared(&from->sp, from->shared, to);
    else
        simul__ctx_switch(&from->sp, to->sp);
#elif defined(SIMUL_CORO_ASM)
    simul__ctx_switch(&from->sp, to->sp);
#else
    swapcontext(&from->uc, &to->uc);
#endif
    simul__coro_after_(from);
}

/* Leaves a finished coroutine `self` for good; `scratch` receives the dead context. */
__attribute__((noreturn, always_inline)) static inline void
simul__coro_exit(simul__coro *self, simul__coro *scratch, simul__coro *to)
{
    simul__coro_before_(scratch, to, 1);
#ifdef SIMUL_CORO_COMPACT
    if (self->shared)
        self->shared->owner = NULL; /* its frames are dead: nothing to save */
    if (__builtin_expect(to->shared != NULL, 0))
        simul__coro_switch_shared(&scratch->sp, self->shared, to);
    else
        simul__ctx_switch(&scratch->sp, to->sp);
#elif defined(SIMUL_CORO_ASM)
    (void)self;
    simul__ctx_switch(&scratch->sp, to->sp);
#else
    (void)self;
    swapcontext(&scratch->uc, &to->uc);
#endif
    __builtin_trap();
}

#endif
