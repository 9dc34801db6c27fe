/* edgetrain bare-metal startup for Cortex-M (ARMv6-M and ARMv7-M):
 * vector table, .data copy, .bss zero, FPU enable when built with one, main().
 *
 * ET_SEMIHOSTING=1 (default; the test programs et_verify, et_bench under QEMU): newlib's
 * semihosting I/O is set up before main() and main's return value ends the run through
 * semihosting exit (QEMU exits with it); any fault prints one line through raw semihosting
 * and exits with code 99, so a crash under QEMU ends the run instead of hanging it. The top
 * 32 KB of the stack are painted before main() and, after it, the deepest word written is
 * reported as "edgetrain: stack N bytes" (the high-water mark the linker's stack reservation
 * must cover).
 * Linked with -nostartfiles --specs=nano.specs --specs=rdimon.specs.
 *
 * ET_SEMIHOSTING=0 (the model-only program et_deploy, and firmware on a real board): no
 * semihosting, no exit(), no stdio: nothing pulls newlib's reentrancy, stdio or malloc state
 * into RAM. main() returning, or a fault, parks the core in a loop.
 * Linked with -nostartfiles --specs=nano.specs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef ET_SEMIHOSTING
#define ET_SEMIHOSTING 1
#endif

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack, __StackLimit;
extern int main(void);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);

void et_reset_handler(void);
void et_fault_handler(void);

__attribute__((section(".isr_vector"), used))
const void *const et_vectors[16] = {
    &_estack,            /* initial main stack pointer */
    et_reset_handler,    /* reset */
    et_fault_handler,    /* NMI */
    et_fault_handler,    /* HardFault */
    et_fault_handler,    /* MemManage */
    et_fault_handler,    /* BusFault */
    et_fault_handler,    /* UsageFault */
    0, 0, 0, 0,
    et_fault_handler,    /* SVCall */
    et_fault_handler,    /* DebugMon */
    0,
    et_fault_handler,    /* PendSV */
    et_fault_handler,    /* SysTick */
};

#if ET_SEMIHOSTING
#define ET_STACK_PAINT 0x57AC57ACu
#define ET_STACK_WATCH (32u * 1024u)    /* bytes below the top watched: 4x the reservation */

static uint32_t *et_stack_floor;        /* the lowest painted word */

/* the words from ET_STACK_WATCH below this frame (not below the stack reservation) up to
 * just below this frame: a deeper stack would already have overrun the reservation */
static void __attribute__((noinline)) et_paint_stack(void)
{
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    uintptr_t room = (uintptr_t)sp - (uintptr_t)&__StackLimit;
    et_stack_floor = room > ET_STACK_WATCH ? sp - ET_STACK_WATCH / 4 : &__StackLimit;
    for (uint32_t *p = et_stack_floor; p < sp - 16; p++) *p = ET_STACK_PAINT;
}

/* bytes from the top of RAM down to the deepest word no longer painted */
static uint32_t et_stack_used(void)
{
    const uint32_t *p = et_stack_floor;
    while (p < &_estack && *p == ET_STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}
#endif

void et_reset_handler(void)
{
    uint32_t *src = &_sidata;
    uint32_t *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
#if defined(__ARM_FP)
    /* CP10/CP11 full access; without it the first VFP instruction faults (NOCP) */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm volatile("dsb\n isb");
#endif
#if ET_SEMIHOSTING
    et_paint_stack();
    initialise_monitor_handles();
    __libc_init_array();
    int rc = main();
    printf("edgetrain: stack %lu bytes\n", (unsigned long)et_stack_used());
    exit(rc);
#else
    __libc_init_array();
    (void)main();
    for (;;) {}
#endif
}

#if ET_SEMIHOSTING
static int et_semihost(int op, const void *arg)
{
    register int r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void et_fault_handler(void)
{
    static const char msg[] = "edgetrain: FAULT (unhandled exception)\n";
    static const uint32_t exit_block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, 99u};
    et_semihost(0x04 /* SYS_WRITE0 */, msg);
    et_semihost(0x20 /* SYS_EXIT_EXTENDED */, exit_block);
    for (;;) {}
}
#else
void et_fault_handler(void)
{
    for (;;) {}
}
#endif

/* -nostartfiles drops crti/crtn; __libc_init_array and __libc_fini_array still call these */
void _init(void) {}
void _fini(void) {}
