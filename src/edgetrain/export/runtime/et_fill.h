/* edgetrain: buffer fills for the runtime's hot paths (et_engine.c, et_kernels.c). newlib's
 * memset stores a byte or a word at a time, and compilers turn plain zeroing loops into that
 * call; on ARMv7-M these store two or eight words per instruction. */
#ifndef ET_FILL_H
#define ET_FILL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* the word v over p[0 .. bytes rounded up to whole words), p word aligned: two registers per
 * STRD, 32 bytes a step (stack planes are unions with an int32, so word aligned) */
#if defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__)
static inline void et_fill_words(void *p, uint32_t v, size_t bytes)
{
    char *q = p, *end8 = q + (bytes & ~(size_t)31), *end = q + ((bytes + 3) & ~(size_t)3);
    while (q != end8)
        __asm("strd %1, %2, [%0, #8]\n\tstrd %1, %2, [%0, #16]\n\tstrd %1, %2, [%0, #24]\n\t"
              "strd %1, %2, [%0], #32"
              : "+r"(q) : "r"(v), "r"(v) : "memory");
    while (q != end) __asm("str %1, [%0], #4" : "+r"(q) : "r"(v) : "memory");
}
#endif

/* p[0 .. n) = 0 (int32: word aligned): on ARMv7-M sixteen words per two STM of eight zeroed
 * registers (r4-r6, r8, r10-r12, lr: not r7, the Thumb frame pointer, nor r9, a platform
 * register), the rest by STRD / STR */
static inline void et_zero32(int32_t *p, int32_t n)
{
#if defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__)
    int32_t *end16 = p + (n & ~15), *end = p + n;
    const uint32_t z0 = 0u, z1 = 0u;
    if (p != end16)
        __asm volatile("mov r4, #0\n\tmov r5, #0\n\tmov r6, #0\n\tmov r8, #0\n\t"
                       "mov r10, #0\n\tmov r11, #0\n\tmov r12, #0\n\tmov lr, #0\n"
                       "1:\n\tstmia %[p]!, {r4, r5, r6, r8, r10, r11, r12, lr}\n\t"
                       "stmia %[p]!, {r4, r5, r6, r8, r10, r11, r12, lr}\n\t"
                       "cmp %[p], %[end]\n\tbne 1b"
                       : [p] "+r"(p)
                       : [end] "r"(end16)
                       : "r4", "r5", "r6", "r8", "r10", "r11", "r12", "lr", "cc", "memory");
    for (; end - p >= 2; p += 2) __asm("strd %1, %2, [%0]" : : "r"(p), "r"(z0), "r"(z1) : "memory");
    if (p != end) *p = 0;
#else
    for (int32_t i = 0; i < n; i++) p[i] = 0;
#endif
}

/* bytes (rounded up to whole words: the buffer must have them) of byte v from p, aligned */
static inline void et_fill8(int8_t *p, int32_t v, size_t bytes)
{
#if defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__)
    et_fill_words(p, (uint32_t)(uint8_t)v * 0x01010101u, bytes);
#else
    memset(p, v, bytes);
#endif
}

#endif
