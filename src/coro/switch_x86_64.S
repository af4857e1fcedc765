/* switch_x86_64.S — System V x86-64 context switch: callee-saved registers, MXCSR and the x87
 * control word go on the old stack; only the stack pointer is stored. */
#include "context.h"
#if defined(__x86_64__) && defined(SIMUL_CORO_ASM)
    .text
/* void simul__ctx_switch(void **save_sp, void *load_sp) */
    .globl simul__ctx_switch
    .hidden simul__ctx_switch
    .type simul__ctx_switch, @function
    .p2align 4
simul__ctx_switch:
    .cfi_startproc
    pushq %rbp
    .cfi_adjust_cfa_offset 8
    pushq %rbx
    .cfi_adjust_cfa_offset 8
    pushq %r12
    .cfi_adjust_cfa_offset 8
    pushq %r13
    .cfi_adjust_cfa_offset 8
    pushq %r14
    .cfi_adjust_cfa_offset 8
    pushq %r15
    .cfi_adjust_cfa_offset 8
    subq $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr SIMUL_CTX_FPCW(%rsp)
    fnstcw SIMUL_CTX_FPCW+4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr SIMUL_CTX_FPCW(%rsp)
    fldcw SIMUL_CTX_FPCW+4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    .cfi_adjust_cfa_offset -56
    ret
    .cfi_endproc
    .size simul__ctx_switch, .-simul__ctx_switch

/* void *simul__ctx_switch_via(void **save_sp, void *scratch_top, void *(*fn)(void *), void *arg)
 * Saves like simul__ctx_switch, then calls fn(arg) on the scratch stack and loads the stack
 * pointer it returns: compact coroutines share a run stack, and the copy that evicts the running
 * one and puts the next one back cannot run on that run stack. */
    .globl simul__ctx_switch_via
    .hidden simul__ctx_switch_via
    .type simul__ctx_switch_via, @function
    .p2align 4
simul__ctx_switch_via:
    .cfi_startproc
    pushq %rbp
    .cfi_adjust_cfa_offset 8
    pushq %rbx
    .cfi_adjust_cfa_offset 8
    pushq %r12
    .cfi_adjust_cfa_offset 8
    pushq %r13
    .cfi_adjust_cfa_offset 8
    pushq %r14
    .cfi_adjust_cfa_offset 8
    pushq %r15
    .cfi_adjust_cfa_offset 8
    subq $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr SIMUL_CTX_FPCW(%rsp)
    fnstcw SIMUL_CTX_FPCW+4(%rsp)
    movq %rsp, (%rdi)
    .cfi_remember_state
    movq %rsi, %rsp
    .cfi_undefined rip
    movq %rcx, %rdi
    callq *%rdx
    movq %rax, %rsp
    .cfi_restore_state
    ldmxcsr SIMUL_CTX_FPCW(%rsp)
    fldcw SIMUL_CTX_FPCW+4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    .cfi_adjust_cfa_offset -56
    ret
    .cfi_endproc
    .size simul__ctx_switch_via, .-simul__ctx_switch_via

/* First code a new coroutine runs: call r12(r13). The function never returns. */
    .globl simul__coro_boot
    .hidden simul__coro_boot
    .type simul__coro_boot, @function
    .p2align 4
simul__coro_boot:
    .cfi_startproc
    .cfi_undefined rip
    movq %r13, %rdi
    callq *%r12
    ud2
    .cfi_endproc
    .size simul__coro_boot, .-simul__coro_boot
#endif
    .section .note.GNU-stack,"",@progbits
