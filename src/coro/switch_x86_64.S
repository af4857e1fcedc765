/* switch_x86_64.S — System V x86-64 context switch: callee-saved registers, MXCSR and the x87
 * control word go on the old stack; only the stack pointer is stored. */
#include "context.h"
#if defined(__x86_64__) && defined(SIMUL_CORO_ASM)
    .text

/* The two switches differ only in how they find the stack to load, so the frame they push and
 * pop is written once, as macros: expanded inline, they cost no call or jump on the hot path. */

/* Push the callee-saved registers, MXCSR and the x87 control word (the frame context.h
 * describes) and store the stack pointer in *%rdi. */
    .macro simul_save_frame
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
    .endm

/* Pop such a frame from the stack now in %rsp and return into whoever saved it. */
    .macro simul_load_frame
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
    .endm

    .macro simul_func_begin name
    .globl \name
    .hidden \name
    .type \name, @function
    .p2align 4
\name:
    .cfi_startproc
    .endm

    .macro simul_func_end name
    .cfi_endproc
    .size \name, .-\name
    .endm

/* void simul__ctx_switch(void **save_sp, void *load_sp) */
    simul_func_begin simul__ctx_switch
    simul_save_frame
    movq %rsi, %rsp
    simul_load_frame
    simul_func_end simul__ctx_switch

/* void *simul__ctx_switch_via(void **save_sp, void *scratch_top, void *(*fn)(void *), void *arg)
 * Saves like simul__ctx_switch, then calls fn(arg) on the scratch stack and loads the stack
 * pointer it returns: compact coroutines share a run stack, and the copy that evicts the running
 * one and puts the next one back cannot run on that run stack. */
    simul_func_begin simul__ctx_switch_via
    simul_save_frame
    .cfi_remember_state
    movq %rsi, %rsp
    .cfi_undefined rip
    movq %rcx, %rdi
    callq *%rdx
    movq %rax, %rsp
    .cfi_restore_state
    simul_load_frame
    simul_func_end simul__ctx_switch_via

/* First code a new coroutine runs: call r12(r13). The function never returns. */
    simul_func_begin simul__coro_boot
    .cfi_undefined rip
    movq %r13, %rdi
    callq *%r12
    ud2
    simul_func_end simul__coro_boot
#endif
    .section .note.GNU-stack,"",@progbits
