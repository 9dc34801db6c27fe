/* edgetrain: the ARMv7E-M DSP helpers the integer kernels share (et_kernels.c, et_linear.c).
 * ET_SIMD is 1 when the target has the DSP extension (__ARM_FEATURE_DSP) and ET_NO_SIMD is not
 * defined; the helpers are single instructions (SXTB16, SSUB16, SMLAD, SMLAxy, PKHBT/PKHTB) and
 * unaligned word loads/stores through memcpy (one LDR/STR on ARMv7-M). */
#ifndef ET_SIMD_H
#define ET_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && !defined(ET_NO_SIMD)
#define ET_SIMD 1
static inline uint32_t et_ld32(const int8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint32_t et_ld32h(const int16_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline void et_st32(int8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline uint32_t et_sxtb16(uint32_t v)
{ uint32_t r; __asm("sxtb16 %0, %1" : "=r"(r) : "r"(v)); return r; }
static inline uint32_t et_sxtb16_ror8(uint32_t v)
{ uint32_t r; __asm("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v)); return r; }
static inline uint32_t et_ssub16(uint32_t a, uint32_t b)
{ uint32_t r; __asm("ssub16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b)); return r; }
static inline int32_t et_smlad(uint32_t a, uint32_t b, int32_t acc)
{ int32_t r; __asm("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc)); return r; }
/* single 16 x 16 MACs on chosen halves: b(ottom) / t(op) of the first, then the second operand */
static inline int32_t et_smlabb(uint32_t a, uint32_t b, int32_t acc)
{ int32_t r; __asm("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc)); return r; }
static inline int32_t et_smlatb(uint32_t a, uint32_t b, int32_t acc)
{ int32_t r; __asm("smlatb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc)); return r; }
static inline int32_t et_smlabt(uint32_t a, uint32_t b, int32_t acc)
{ int32_t r; __asm("smlabt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc)); return r; }
static inline int32_t et_smlatt(uint32_t a, uint32_t b, int32_t acc)
{ int32_t r; __asm("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc)); return r; }
/* a.bottom * b.top + a.top * b.bottom + acc (the halves of a exchanged) */
static inline int32_t et_smladx(uint32_t a, uint32_t b, int32_t acc)
{ int32_t r; __asm("smladx %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc)); return r; }
/* (low half of a, high half of b) */
static inline uint32_t et_pkhbt0(uint32_t a, uint32_t b)
{ uint32_t r; __asm("pkhbt %0, %1, %2" : "=r"(r) : "r"(a), "r"(b)); return r; }
/* (low half of a, low half of b) and (high half of a, high half of b) */
static inline uint32_t et_pkhbt(uint32_t a, uint32_t b)
{ uint32_t r; __asm("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b)); return r; }
static inline uint32_t et_pkhtb(uint32_t a, uint32_t b)
{ uint32_t r; __asm("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a)); return r; }
#define ET_PAIR(lo, hi) (((uint32_t)(uint16_t)(lo)) | ((uint32_t)(hi) << 16))
#else
#define ET_SIMD 0
#endif

/* The head and tail of a Thumb-2 function written in a file-scope __asm block (`name` a
 * string literal): its own section (the linker drops it when unused), a global function
 * symbol, and its size. */
#define ET_ASM_FUNCTION_BEGIN(name)                                                          \
    ".pushsection .text." name ", \"ax\", %progbits\n\t"                                     \
    ".syntax unified\n\t"                                                                    \
    ".thumb\n\t"                                                                             \
    ".balign 4\n\t"                                                                          \
    ".global " name "\n\t"                                                                   \
    ".thumb_func\n\t"                                                                        \
    ".type " name ", %function\n"                                                            \
    name ":\n\t"
#define ET_ASM_FUNCTION_END(name) ".size " name ", . - " name "\n\t" ".popsection\n"

#endif
