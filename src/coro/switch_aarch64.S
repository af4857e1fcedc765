/* switch_aarch64.S — AAPCS64 context switch: x19-x30, d8-d15 and FPCR go on the old stack;
 * only the stack pointer is stored. */
#include "context.h"
#if defined(__aarch64__) && defined(SIMUL_CORO_ASM)
    .text
/* void simul__ctx_switch(void **save_sp, void *load_sp) */
    .globl simul__ctx_switch
    .hidden simul__ctx_switch
    .type simul__ctx_switch, %function
    .p2align 4
simul__ctx_switch:
    .cfi_startproc
    sub sp, sp, #SIMUL_CTX_SIZE
    stp x19, x20, [sp, #SIMUL_CTX_X19]
    stp x21, x22, [sp, #SIMUL_CTX_X21]
    stp x23, x24, [sp, #SIMUL_CTX_X23]
    stp x25, x26, [sp, #SIMUL_CTX_X25]
    stp x27, x28, [sp, #SIMUL_CTX_X27]
    stp x29, x30, [sp, #SIMUL_CTX_X29]
    stp d8, d9, [sp, #SIMUL_CTX_D8]
    stp d10, d11, [sp, #SIMUL_CTX_D10]
    stp d12, d13, [sp, #SIMUL_CTX_D12]
    stp d14, d15, [sp, #SIMUL_CTX_D14]
    mrs x9, fpcr
    str x9, [sp, #SIMUL_CTX_FPCR]
    mov x9, sp
    str x9, [x0]
    mov sp, x1
    ldp x19, x20, [sp, #SIMUL_CTX_X19]
    ldp x21, x22, [sp, #SIMUL_CTX_X21]
    ldp x23, x24, [sp, #SIMUL_CTX_X23]
    ldp x25, x26, [sp, #SIMUL_CTX_X25]
    ldp x27, x28, [sp, #SIMUL_CTX_X27]
    ldp x29, x30, [sp, #SIMUL_CTX_X29]
    ldp d8, d9, [sp, #SIMUL_CTX_D8]
    ldp d10, d11, [sp, #SIMUL_CTX_D10]
    ldp d12, d13, [sp, #SIMUL_CTX_D12]
    ldp d14, d15, [sp, #SIMUL_CTX_D14]
    ldr x9, [sp, #SIMUL_CTX_FPCR]
    msr fpcr, x9
    add sp, sp, #SIMUL_CTX_SIZE
    ret
    .cfi_endproc
    .size simul__ctx_switch, .-simul__ctx_switch

/* First code a new coroutine runs: call x19(x20). The function never returns. */
    .globl simul__coro_boot
    .hidden simul__coro_boot
    .type simul__coro_boot, %function
    .p2align 4
simul__coro_boot:
    .cfi_startproc
    .cfi_undefined x30
    mov x29, #0
    mov x0, x20
    blr x19
    brk #0
    .cfi_endproc
    .size simul__coro_boot, .-simul__coro_boot
#endif
    .section .note.GNU-stack,"",%progbits
