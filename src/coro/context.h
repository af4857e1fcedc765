/* context.h — the saved-register frame of a suspended coroutine, shared by C and assembly.
 * A switch pushes the callee-saved registers on the old stack and stores the stack pointer;
 * a new coroutine gets a hand-built frame that "returns" into simul__coro_boot. */
#ifndef SIMUL_CORO_CONTEXT_H
#define SIMUL_CORO_CONTEXT_H

#if defined(__x86_64__) && !defined(SIMUL_CORO_UCONTEXT)
#define SIMUL_CORO_ASM 1
/* Offsets from the saved stack pointer (bytes). */
#define SIMUL_CTX_FPCW 0   /* MXCSR (4 bytes) then the x87 control word (2 bytes) */
#define SIMUL_CTX_R15 8
#define SIMUL_CTX_R14 16
#define SIMUL_CTX_R13 24   /* boot: the argument */
#define SIMUL_CTX_R12 32   /* boot: the function */
#define SIMUL_CTX_RBX 40
#define SIMUL_CTX_RBP 48
#define SIMUL_CTX_RET 56
#define SIMUL_CTX_SIZE 64
#elif defined(__aarch64__) && !defined(SIMUL_CORO_UCONTEXT)
#define SIMUL_CORO_ASM 1
#define SIMUL_CTX_X19 0    /* boot: the function */
#define SIMUL_CTX_X20 8    /* boot: the argument */
#define SIMUL_CTX_X21 16
#define SIMUL_CTX_X23 32
#define SIMUL_CTX_X25 48
#define SIMUL_CTX_X27 64
#define SIMUL_CTX_X29 80   /* x29 (fp) then x30 (lr: where the switch returns) */
#define SIMUL_CTX_X30 88
#define SIMUL_CTX_D8 96
#define SIMUL_CTX_D10 112
#define SIMUL_CTX_D12 128
#define SIMUL_CTX_D14 144
#define SIMUL_CTX_FPCR 160
#define SIMUL_CTX_SIZE 176
#endif

#ifndef __ASSEMBLER__
#include <stdint.h>
#if defined(SIMUL_CORO_ASM) && defined(__x86_64__)
struct simul__ctx_frame {
    uint32_t mxcsr;
    uint16_t x87cw;
    uint16_t pad;
    uint64_t r15, r14, r13, r12, rbx, rbp, ret;
};
_Static_assert(__builtin_offsetof(struct simul__ctx_frame, mxcsr) == SIMUL_CTX_FPCW, "fpcw");
_Static_assert(__builtin_offsetof(struct simul__ctx_frame, r13) == SIMUL_CTX_R13, "r13");
_Static_assert(__builtin_offsetof(struct simul__ctx_frame, r12) == SIMUL_CTX_R12, "r12");
_Static_assert(__builtin_offsetof(struct simul__ctx_frame, rbp) == SIMUL_CTX_RBP, "rbp");
_Static_assert(__builtin_offsetof(struct simul__ctx_frame, ret) == SIMUL_CTX_RET, "ret");
_Static_assert(sizeof(struct simul__ctx_frame) == SIMUL_CTX_SIZE, "size");
#elif defined(SIMUL_CORO_ASM) && defined(__aarch64__)
struct simul__ctx_frame {
    uint64_t x[10]; /* x19..x28 */
    uint64_t x29, x30;
    uint64_t d[8];  /* d8..d15 */
    uint64_t fpcr, pad;
};
_Static_assert(__builtin_offsetof(struct simul__ctx_frame, x29) == SIMUL_CTX_X29, "x29");
_Static_assert(__builtin_offsetof(struct simul__ctx_frame, x30) == SIMUL_CTX_X30, "x30");
_Static_assert(__builtin_offsetof(struct simul__ctx_frame, d) == SIMUL_CTX_D8, "d8");
_Static_assert(__builtin_offsetof(struct simul__ctx_frame, fpcr) == SIMUL_CTX_FPCR, "fpcr");
_Static_assert(sizeof(struct simul__ctx_frame) == SIMUL_CTX_SIZE, "size");
#endif
#endif /* __ASSEMBLER__ */
#endif
