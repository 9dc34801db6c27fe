/* edgetrain integer and fixed-point primitives: the C99 translation of edgetrain.numerics
 * (docs/numerics.md is the specification; the Python module is the reference and the tests
 * compare the two over many random inputs, integer for integer).
 *
 * Fully quantized training as in Deutel et al. 2024, "On-Device Training of Fully Quantized
 * Deep Neural Networks on Cortex-M Microcontrollers" (IEEE TCAD): int8 tensors with a float32
 * scale and int32 zero point, int32/int64 accumulation, requantization by an exact integer
 * multiplier and shift, named rounding modes, fixed-point exp/log for the loss gradient.
 *
 * Rules that keep C equal to NumPy: every reduction is over integers; float32 appears only in
 * element-wise/scalar steps written in the same order as in Python; no libm; right shifts of
 * negative numbers go through et_asr64 (floor semantics, as Python's >>). Inputs outside a
 * primitive's stated range set et_error (checked by the caller) instead of returning garbage. */
#ifndef ET_NUMERICS_H
#define ET_NUMERICS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* a helper of a hot loop function, inlined into it whatever its size (no call) */
#if defined(__GNUC__)
#define ET_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define ET_ALWAYS_INLINE static inline
#endif

#define ET_QMIN (-128)
#define ET_QMAX 127
#define ET_ONE_Q30 ((int64_t)1 << 30)
#define ET_LN2_Q30 ((int64_t)744261118)
#define ET_LN2_Q16 ((int64_t)45426)
#define ET_GOLDEN 0x9E3779B9u

typedef enum { ET_ROUND_FLOOR = 0, ET_ROUND_NEAREST = 1, ET_ROUND_STOCHASTIC = 2 } et_round_mode;

/* error codes: the first error of a run is kept in et_error (0: none) */
enum {
    ET_OK = 0,
    ET_ERR_ROUND_RANGE = 1,     /* |v| > 2^40 or NaN given to et_round_f32 */
    ET_ERR_ACC_RANGE = 2,       /* |acc| >= 2^38 given to requantize */
    ET_ERR_MULTIPLIER = 3,      /* negative or NaN requantization multiplier */
    ET_ERR_EXP_RANGE = 4,       /* exp_q30 of a positive argument */
    ET_ERR_LOG_RANGE = 5,       /* log2_q30 outside [1, 2^62) */
    ET_ERR_SHIFT_RANGE = 6      /* shift outside [0, 62] */
};
extern int et_error;
void et_fail(int code);

/* floor(x / 2^s) for signed x, 0 <= s <= 63: Python's x >> s */
static inline int64_t et_asr64(int64_t x, int s)
{
    return x >= 0 ? (x >> s) : -(int64_t)((((uint64_t)(-(x + 1))) >> s) + 1u);
}

static inline int32_t et_sat(int64_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : (int32_t)v);
}

/* floor(x / 2^s) for signed x, 0 <= s <= 31 (one ASR: the compiler folds the form) */
static inline int32_t et_asr32(int32_t x, int s)
{
    return x < 0 ? ~(~x >> s) : x >> s;
}

/* floor(v / 2^32): the high word of an int64 (no code: a register of the pair) */
static inline int32_t et_hi32(int64_t v)
{
    uint32_t h = (uint32_t)((uint64_t)v >> 32);
    return h < 0x80000000u ? (int32_t)h : -(int32_t)(~h) - 1;
}

/* v clamped to int8 / int16: one SSAT on ARMv7-M (the compiler does not always find it) */
#if defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__)
static inline int32_t et_ssat8(int32_t v)
{
    int32_t r;
    __asm("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return r;
}
static inline int32_t et_ssat16(int32_t v)
{
    int32_t r;
    __asm("ssat %0, #16, %1" : "=r"(r) : "r"(v));
    return r;
}
#else
static inline int32_t et_ssat8(int32_t v) { return v < -128 ? -128 : (v > 127 ? 127 : v); }
static inline int32_t et_ssat16(int32_t v) { return v < -32768 ? -32768 : (v > 32767 ? 32767 : v); }
#endif

/* ---- the run's random stream: xorshift32 state, murmur3 fmix32 per element ---- */
uint32_t et_xorshift32(uint32_t x);
static inline uint32_t et_fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}
typedef struct { uint32_t state; } et_stream;
void et_stream_seed(et_stream *s, uint32_t seed);
uint32_t et_stream_next(et_stream *s);   /* advance once per rounding call: the call's base */
static inline uint32_t et_bits(uint32_t base, uint32_t i) { return et_fmix32(base + i * ET_GOLDEN); }
/* the bits of element i, drawn only when the mode is stochastic (they are unused otherwise) */
static inline uint32_t et_bits_for(int mode, uint32_t base, uint32_t i)
{
    return mode == ET_ROUND_STOCHASTIC ? et_bits(base, i) : 0u;
}

/* ---- rounding: float32 values and exact int64 / 2^shift ---- */
/* the stochastic threshold u = (bits >> 8) * 2^-24 in [0, 1), exact: one fixed-point VCVT
 * (24 fraction bits) where the FPU has it */
static inline float et_uniform24(uint32_t bits)
{
#if defined(__ARM_FP) && (defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__))
    union { uint32_t u; float f; } c;
    c.u = bits >> 8;
    __asm("vcvt.f32.u32 %0, %0, #24" : "+t"(c.f));
    return c.f;
#else
    return (float)(bits >> 8) * 5.9604644775390625e-08f;   /* 2^-24 */
#endif
}

int64_t et_floor_f32(float v);                        /* |v| <= 2^40 */

/* ---- quantization parameters ---- */
typedef struct { float scale; int32_t zero; } et_qparams;
#define ET_S_MIN 9.094947017729282e-13f   /* 2^-40 */
float et_pow2_ceil(float s);
static inline float et_np_maximum(float a, float b) { return a > b ? a : b; }   /* w/o NaN */
static inline float et_np_minimum(float a, float b) { return a < b ? a : b; }
/* et_from_range's asymmetric case, lo <= 0 <= hi */
et_qparams et_from_range_asym(float lo, float hi, int pow2);

/* inline: once per channel of every per-channel weight tensor, each step */
static inline et_qparams et_from_range(float f_min, float f_max, int symmetric, int pow2)
{
    float lo = et_np_minimum(f_min, 0.0f), hi = et_np_maximum(f_max, 0.0f);
    if (!symmetric) return et_from_range_asym(lo, hi, pow2);
    float s = et_np_maximum(et_np_maximum(-lo, hi) / 127.0f, ET_S_MIN);
    et_qparams qp = {pow2 ? et_pow2_ceil(s) : s, 0};
    return qp;
}
float et_dequantize(int32_t q, et_qparams qp);

/* nearest, ties away from zero, for |v| < 2^30 (never NaN), from two truncations: with
 * t = trunc(v) and r = v - t (of v's sign, or 0; |r| < 1), trunc(2v) = 2t + trunc(2r), and
 * trunc(2r) is 1 for r >= 1/2, -1 for r <= -1/2, else 0, so the rounded value is
 * trunc(2v) - t; 2v is exact (a doubling) and inside int32 */
static inline int32_t et_nearest_half(float v)
{
    return (int32_t)(v + v) - (int32_t)v;
}

/* the same for |v| < 2^31: from 2^30 on v is integral (|v| >= 2^24), its truncation */
static inline int32_t et_nearest_small(float v)
{
    return v < 1073741824.0f && v > -1073741824.0f ? et_nearest_half(v) : (int32_t)v;
}

/* inline: once per element of every quantized tensor */
static inline int64_t et_round_f32(float v, et_round_mode mode, uint32_t bits)
{
    int64_t fl;
    float frac;
    if (v < 2147483520.0f && v > -2147483520.0f) {   /* int32 fast path: no int64 <-> float */
        int32_t i = (int32_t)v;
        if ((float)i > v) i -= 1;           /* |v| >= 2^24 is integral: never decremented */
        fl = i;
        frac = v - (float)i;                /* rounded for v in (-1/2, 0); 0 for |v| >= 2^23 */
    } else {
        fl = et_floor_f32(v);
        frac = v - (float)fl;
    }
    switch (mode) {
    case ET_ROUND_FLOOR:
        return fl;
    case ET_ROUND_NEAREST:                  /* |v| >= 2^31 is integral: fl itself */
        return v < 2147483520.0f && v > -2147483520.0f ? et_nearest_small(v) : fl;
    case ET_ROUND_STOCHASTIC: {
        return fl + (et_uniform24(bits) < frac);
    }
    }
    return fl;
}

/* et_round_f32's int32 fast path alone, for |v| <= 2^20 (never NaN): the same integer */
static inline int32_t et_round_small(float v, et_round_mode mode, uint32_t bits)
{
    int32_t i = (int32_t)v;
    float fi = (float)i;
    if (fi > v) {                           /* floor: fi - 1 is exact, no second conversion */
        i -= 1;
        fi -= 1.0f;
    }
    float frac = v - fi;                    /* rounded for v in (-1/2, 0), as the engine's */
    switch (mode) {
    case ET_ROUND_FLOOR:
        return i;
    case ET_ROUND_NEAREST:
        return et_nearest_half(v);
    case ET_ROUND_STOCHASTIC: {
        return et_uniform24(bits) < frac ? i + 1 : i;
    }
    }
    return i;
}

/* et_quantize of v = x / scale outside +-2^20 or NaN: clipped (NaN reported) */
static inline int8_t et_quantize_clipped(float v, et_qparams qp, et_round_mode mode,
                                         uint32_t bits)
{
    if (v < -1048576.0f) v = -1048576.0f;    /* clip to +-2^20 */
    if (v > 1048576.0f) v = 1048576.0f;
    if (v != v)                             /* NaN: et_round_f32 reports it */
        return (int8_t)et_sat(et_round_f32(v, mode, bits) + qp.zero, ET_QMIN, ET_QMAX);
    return (int8_t)et_ssat8(et_round_small(v, mode, bits) + qp.zero);   /* |q| <= 2^20 + 128 */
}

static inline int8_t et_quantize(float x, et_qparams qp, et_round_mode mode, uint32_t bits)
{
    float v = x / qp.scale;
    if (!(fabsf(v) <= 1048576.0f))          /* outside +-2^20 or NaN */
        return et_quantize_clipped(v, qp, mode, bits);
    return (int8_t)et_ssat8(et_round_small(v, mode, bits) + qp.zero);   /* |q| <= 2^20 + 128 */
}

/* ---- requantization: float32 M == m * 2^-shift exactly ---- */
typedef struct { int64_t m; int shift; } et_multiplier;
et_multiplier et_multiplier_bad(void);        /* reports ET_ERR_MULTIPLIER, returns {0, 0} */

/* numerics.multiplier_from: M >= 0 clamped below 128 is the float's own 24-bit significand m
 * times 2^-shift, shift = 150 - (biased exponent), at most 62 (m = 0 below 2^-126); inline (a
 * few instructions, once per row of every layer). Bits of floats >= 0 order as their values,
 * so the clamp is one unsigned minimum; the sign bit is cleared first (-0 is M >= 0) */
static inline et_multiplier et_multiplier_from(float M)
{
    et_multiplier out = {0, 0};
    uint32_t u;
    if (!(M >= 0.0f)) return et_multiplier_bad();
    memcpy(&u, &M, sizeof u);
    u &= 0x7FFFFFFFu;
    u = u < 0x42FFFFFFu ? u : 0x42FFFFFFu;      /* the largest float32 below 128 */
    int32_t e = (int32_t)(u >> 23);
    if (e > 0) {
        out.m = (int64_t)((u & 0x7FFFFFu) | 0x800000u);
        out.shift = 150 - e < 62 ? 150 - e : 62;
    }
    return out;
}

/* inline: called once per tensor element in every kernel epilogue */
static inline int64_t et_round_shift(int64_t p, int shift, et_round_mode mode, uint32_t bits)
{
    if (shift < 0 || shift > 62) {
        et_fail(ET_ERR_SHIFT_RANGE);
        return 0;
    }
    switch (mode) {
    case ET_ROUND_FLOOR:
        return et_asr64(p, shift);
    case ET_ROUND_NEAREST: {                /* ties away from zero */
        int64_t half = shift > 0 ? (int64_t)1 << (shift - 1) : 0;
        int64_t mag = ((p < 0 ? -p : p) + half) >> shift;
        return p < 0 ? -mag : mag;
    }
    case ET_ROUND_STOCHASTIC: {
        int64_t r = shift <= 32 ? (int64_t)((uint64_t)bits >> (32 - shift))
                                : (int64_t)((uint64_t)bits << (shift - 32));   /* [0, 2^shift) */
        return et_asr64(p + r, shift);
    }
    }
    return et_asr64(p, shift);
}

#define ET_ACC_LIMIT ((int64_t)1 << 38)

static inline int32_t et_requantize(int64_t acc, et_multiplier mul, int32_t zero, et_round_mode mode,
                      uint32_t bits, int32_t lo, int32_t hi)
{
    if (acc >= ET_ACC_LIMIT || acc <= -ET_ACC_LIMIT) {
        et_fail(ET_ERR_ACC_RANGE);
        return 0;
    }
    return et_sat(et_round_shift(acc * mul.m, mul.shift, mode, bits) + zero, lo, hi);
}

/* et_requantize of an int32 accumulator: |acc| < 2^38 always holds, and m < 2^24 makes the
 * product one 32 x 32 -> 64 multiply; the same integer */
static inline int32_t et_requantize32(int32_t acc, et_multiplier mul, int32_t zero,
                                      et_round_mode mode, uint32_t bits, int32_t lo, int32_t hi)
{
    if (mode == ET_ROUND_NEAREST && mul.shift >= 1 && mul.shift <= 62) {
        /* (|acc| m + 2^(shift-1)) >> shift on 32-bit halves (UMLAL); a magnitude of 2^32 or
         * more is clamped to 2^32 - 1, which saturates to lo / hi all the same */
        int s = mul.shift;
        uint32_t ua = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
        uint64_t t = (uint64_t)ua * (uint32_t)mul.m + ((uint64_t)1 << (s - 1));
        uint32_t th = (uint32_t)(t >> 32), tl = (uint32_t)t, mag;
        if (s >= 32)
            mag = th >> (s - 32);
        else
            mag = (th >> s) ? 0xFFFFFFFFu : (th << (32 - s)) | (tl >> s);
        int64_t q = acc < 0 ? -(int64_t)mag : (int64_t)mag;
        return et_sat(q + zero, lo, hi);
    }
    int64_t p = (int64_t)acc * (int32_t)mul.m;
    return et_sat(et_round_shift(p, mul.shift, mode, bits) + zero, lo, hi);
}

/* ---- requantization of int32 accumulators by one multiplier, prepared once per row ----
 * et_round_shift(acc * m, shift, mode) on a 32-bit core. With L = max(0, 32 - shift) split
 * as L = La + Lm (Lm <= 7 keeps m << Lm below 2^31; La > 0 only for accumulators known to be
 * small, |acc| < 2^(31 - La)) and s = shift + L in [32, 62], the result is floor(V / 2^s)
 * for the 64-bit V = (acc << La) * (m << Lm) + R, R the mode's rounding term times 2^L:
 *   floor       0
 *   nearest     2^(s-1) - [acc < 0]   (ties away from zero: for p < 0 the engine's
 *                                     -floor((|p| + half) / 2^s) is floor((p + half - 1) / 2^s))
 *   stochastic  bits << (s - 32)   (the engine's (bits >> (32 - shift)) << L when shift < 32
 *               differs by less than 2^L, and acc * 2^L is a multiple of 2^L: same floor)
 * |P| < 2^62 and 0 <= R < 2^62 keep |V| < 2^63, so V is one SMLAL and the result, which fits
 * int32, one arithmetic shift of V's high word by s - 32: the same integers as
 * et_requantize32 (tests/c/test_requant_numerics_c.py checks them against the engine). */
typedef struct {
    int32_t m;                    /* m << Lm: below 2^31 */
    int32_t amul;                 /* 2^La */
    int sh;                       /* s - 32, in [0, 30] */
    int64_t half;                 /* 2^(s-1) */
    int64_t zbase, zhalf;         /* zero * 2^s and 2^(s-1) + zero * 2^s when zfold */
    int fast;                     /* the form above applies (else et_requantize32) */
    int zfold;                    /* the zero point is added inside V (s <= 54) */
    et_multiplier mul;            /* the multiplier itself, for the general path */
} et_rq32;

/* acc_bits: every accumulator of the row has |acc| < 2^acc_bits (31: any int32) */
static inline et_rq32 et_rq32_prepare(et_multiplier mul, int acc_bits)
{
    et_rq32 r;
    int L = mul.shift < 32 ? 32 - mul.shift : 0, lm = L < 7 ? L : 7, la = L - lm;
    r.mul = mul;
    r.fast = mul.shift >= 1 && mul.shift <= 62 && mul.m >= 0 && mul.m < ((int64_t)1 << 24) &&
             la <= 31 - acc_bits;
    if (!r.fast) {                /* unused: in range all the same */
        la = lm = L = 0;
        mul.shift = 32;
    }
    r.m = (int32_t)(mul.m << lm);
    r.amul = (int32_t)1 << la;
    r.sh = mul.shift + L - 32;
    r.half = (int64_t)1 << (mul.shift + L - 1);
    r.zbase = r.zhalf = 0;
    r.zfold = 0;
    return r;
}

/* et_rq32_prepare for int8 outputs with a zero point in [-128, 127]: when s <= 54 the zero
 * times 2^s joins V (|V| < 2^62 + 2^61 + 2^61: no overflow) and floor(V / 2^s) is the rounded
 * value plus the zero, exactly; one saturation then gives the int8 */
static inline et_rq32 et_rq32_prepare_zero(et_multiplier mul, int32_t zero)
{
    et_rq32 r = et_rq32_prepare(mul, 31);
    r.zfold = r.fast && r.sh <= 54 - 32;
    if (r.zfold) {
        r.zbase = (int64_t)zero * ((int64_t)1 << (r.sh + 32));
        r.zhalf = r.half + r.zbase;
    }
    return r;
}

/* V's rounding term for one element (mode a constant at the call site) */
static inline int64_t et_rq32_term(const et_rq32 *r, int32_t acc, et_round_mode mode,
                                   uint32_t bits)
{
    if (mode == ET_ROUND_NEAREST) return r->half + et_asr32(acc, 31);
    if (mode == ET_ROUND_STOCHASTIC) return (int64_t)((uint64_t)bits << r->sh);
    return 0;
}

/* round_shift(acc * m, shift, mode, bits) when r->fast and La = 0 (r->amul == 1) */
static inline int32_t et_rq32_shift(const et_rq32 *r, int32_t acc, et_round_mode mode,
                                    uint32_t bits)
{
    int64_t v = et_rq32_term(r, acc, mode, bits) + (int64_t)acc * r->m;
    return et_asr32(et_hi32(v), r->sh);
}

/* the same for a small accumulator (|acc| < 2^acc_bits of et_rq32_prepare) */
static inline int32_t et_rq32_shift_small(const et_rq32 *r, int32_t acc, et_round_mode mode,
                                          uint32_t bits)
{
    int64_t v = et_rq32_term(r, acc, mode, bits) + (int64_t)(acc * r->amul) * r->m;
    return et_asr32(et_hi32(v), r->sh);
}

/* et_requantize32(acc, mul, zero, mode, bits, -128, 127) when r->fast, La = 0 and zero in
 * [-128, 127]: a result beyond int16 saturates to the same int8 after the zero is added */
static inline int8_t et_rq32_int8_sat(const et_rq32 *r, int32_t acc, int32_t zero,
                                      et_round_mode mode, uint32_t bits)
{
    return (int8_t)et_ssat8(et_ssat16(et_rq32_shift(r, acc, mode, bits)) + zero);
}

/* the same when r->zfold (et_rq32_prepare_zero): the zero is inside V already */
static inline int8_t et_rq32_int8_folded(const et_rq32 *r, int32_t acc, et_round_mode mode,
                                         uint32_t bits)
{
    int64_t v = mode == ET_ROUND_NEAREST ? r->zhalf + et_asr32(acc, 31)
                : mode == ET_ROUND_STOCHASTIC ? r->zbase + (int64_t)((uint64_t)bits << r->sh)
                : r->zbase;
    v += (int64_t)acc * r->m;
    return (int8_t)et_ssat8(et_asr32(et_hi32(v), r->sh));
}

static inline int8_t et_rq32_int8(const et_rq32 *r, int32_t acc, int32_t zero,
                                  et_round_mode mode, uint32_t bits)
{
    return r->zfold ? et_rq32_int8_folded(r, acc, mode, bits)
                    : et_rq32_int8_sat(r, acc, zero, mode, bits);
}

/* ---- int8 requantization from the high word of one product (SMMLA / SMMLAR) ----
 * et_requantize32(acc, mul, zero, mode, 0, -128, 127) for floor and nearest, when every
 * accumulator of the row has |acc| <= amax. With m = m' * 2^tz (m' odd) pick j in [-tz, 7]
 * and sh in {0, 8, 16} with s = shift + j = 32 + sh; then mS = m * 2^j < 2^31 is exact and
 * P = acc * mS = acc * m * 2^j. The engine's value is floor((P + R + Z) / 2^s), Z = zero * 2^s,
 * R = 0 (floor) or H - [acc < 0] with H = 2^(s-1) (nearest, ties away from zero; see
 * et_rq32). Nested floors are exact: floor(V / 2^s) = floor(floor(V / 2^32) / 2^sh), and
 *   floor    Z is a multiple of 2^32: floor(V / 2^32) = floor(P / 2^32) + zero * 2^sh   (SMMLA)
 *   nearest  sh > 0: H + Z is a multiple of 2^32, so floor((P + H + Z) / 2^32) is
 *            floor(P / 2^32) + 2^(sh-1) + zero * 2^sh                                 (SMMLA)
 *            sh = 0: floor((P + 2^31) / 2^32) + zero                                  (SMMLAR)
 * That drops the -[acc < 0], which moves the result only at a tie, P + H = k * 2^s, i.e.
 * v2(P) = s - 1, i.e. v2(acc) = shift - 1 - tz =: T. A tie needs |acc| >= 2^T, so the form
 * is used for nearest only when amax < 2^T (or T outside [0, 31]: no int32 has v2 = T).
 * Bounds: |acc| <= 2^31 and mS < 2^31 give |floor(P / 2^32)| <= 2^30, the addend is below
 * 2^24, so the 32-bit sum never wraps; the high word shifted right by sh (a floor) and
 * saturated is the engine's int8. Stochastic rounding, m = 0, a possible tie, or a shift
 * that no j reaches (outside [25, 48 + tz]) keep the et_rq32 forms (form ET_RQH_NONE). */
enum { ET_RQH_NONE = 0, ET_RQH_HI = 1, ET_RQH_HI_ROUND = 2 };
typedef struct {
    int32_t m;                    /* m * 2^j, below 2^31 */
    int32_t ra;                   /* zero * 2^sh, plus 2^(sh-1) for nearest with sh > 0 */
    uint8_t form;                 /* ET_RQH_*: SMMLA, SMMLAR (nearest, sh = 0), or neither */
    uint8_t sh;                   /* s - 32: 0, 8 or 16 */
} et_rqh;

static inline int et_trailing_zeros(uint32_t m)   /* m > 0 */
{
#if defined(__GNUC__)
    return __builtin_ctz(m);
#else
    int t = 0;
    while (!(m & 1u)) {
        m >>= 1;
        t++;
    }
    return t;
#endif
}

/* whether nearest rounding of acc * m / 2^shift can meet a tie for some |acc| <= amax: a tie
 * needs v2(acc) = T = shift - 1 - tz, so |acc| >= 2^T (none when T is outside [0, max_t]) */
static inline int et_tie_possible(et_multiplier mul, int tz, uint32_t amax, int max_t)
{
    int tie = mul.shift - 1 - tz;
    return tie >= 0 && tie <= max_t && amax >= ((uint32_t)1 << tie);
}

/* m * 2^j for the j with shift + j = s, when j is in [-tz, 7] (no bit lost, below 2^31) */
static inline int et_scaled_m(et_multiplier mul, int tz, int s, int32_t *m)
{
    int j = s - mul.shift;
    if (j < -tz || j > 7) return 0;
    *m = (int32_t)(j >= 0 ? mul.m << j : mul.m >> -j);
    return 1;
}

/* the proof is above; inline: once per row of every layer, where passing its struct argument
 * and result cost as much as its work */
ET_ALWAYS_INLINE et_rqh et_rqh_prepare(et_multiplier mul, int32_t zero, et_round_mode mode,
                                       uint32_t amax)
{
    et_rqh r = {0, 0, ET_RQH_NONE, 0};
    if (mode == ET_ROUND_STOCHASTIC || mul.m <= 0 || mul.m >= ((int64_t)1 << 24) ||
        zero < ET_QMIN || zero > ET_QMAX || amax > 0x80000000u)
        return r;
    int tz = et_trailing_zeros((uint32_t)mul.m);
    if (mode == ET_ROUND_NEAREST && et_tie_possible(mul, tz, amax, 31)) return r;
    for (int sh = 0; sh <= 16; sh += 8) {
        if (!et_scaled_m(mul, tz, 32 + sh, &r.m)) continue;
        r.sh = (uint8_t)sh;
        r.form = mode == ET_ROUND_NEAREST && sh == 0 ? ET_RQH_HI_ROUND : ET_RQH_HI;
        r.ra = zero * ((int32_t)1 << sh) +
               (mode == ET_ROUND_NEAREST && sh > 0 ? (int32_t)1 << (sh - 1) : 0);
        return r;
    }
    return r;
}

#if defined(__ARM_FEATURE_DSP) && !defined(ET_NO_SIMD)
static inline int32_t et_smmla(int32_t a, int32_t b, int32_t ra)   /* ra + floor(ab / 2^32) */
{
    int32_t r;
    __asm("smmla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(ra));
    return r;
}
static inline int32_t et_smmlar(int32_t a, int32_t b, int32_t ra)  /* + 2^31 before floor */
{
    int32_t r;
    __asm("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(ra));
    return r;
}
#else
static inline int32_t et_smmla(int32_t a, int32_t b, int32_t ra)
{
    return et_hi32((int64_t)a * b + (int64_t)ra * 4294967296LL);   /* no wrap: see above */
}
static inline int32_t et_smmlar(int32_t a, int32_t b, int32_t ra)
{
    return et_hi32((int64_t)a * b + (int64_t)ra * 4294967296LL + 2147483648LL);
}
#endif

/* et_ssat8(floor(v / 2^8)) and et_ssat8(floor(v / 2^16)): SSAT's own shift on ARMv7-M */
#if defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__)
static inline int32_t et_ssat8_asr8(int32_t v)
{
    int32_t r;
    __asm("ssat %0, #8, %1, asr #8" : "=r"(r) : "r"(v));
    return r;
}
static inline int32_t et_ssat8_asr16(int32_t v)
{
    int32_t r;
    __asm("ssat %0, #8, %1, asr #16" : "=r"(r) : "r"(v));
    return r;
}
#else
static inline int32_t et_ssat8_asr8(int32_t v) { return et_ssat8(et_asr32(v, 8)); }
static inline int32_t et_ssat8_asr16(int32_t v) { return et_ssat8(et_asr32(v, 16)); }
#endif

/* the two steps of an et_rqh form, for loops that keep form and sh constant: the high word
 * (SMMLA, or SMMLAR for ET_RQH_HI_ROUND), then one SSAT that also shifts by sh */
static inline int32_t et_rqh_hi(int32_t a, int32_t m, int32_t ra, int form)
{
    return form == ET_RQH_HI_ROUND ? et_smmlar(a, m, ra) : et_smmla(a, m, ra);
}
static inline int32_t et_rqh_sat(int32_t hi, int sh)
{
    return sh == 0 ? et_ssat8(hi) : sh == 8 ? et_ssat8_asr8(hi) : et_ssat8_asr16(hi);
}

/* one element by a prepared et_rqh (form != ET_RQH_NONE) */
static inline int8_t et_rqh_int8(const et_rqh *r, int32_t acc)
{
    return (int8_t)et_rqh_sat(et_rqh_hi(acc, r->m, r->ra, r->form), r->sh);
}

/* ---- int16 values times one multiplier, two per word (SMLAWB / SMLAWT) ----
 * round_shift(e * m, shift, mode) for |e| <= emax, mode floor or nearest, when the result fits
 * int16 (the engine's per-channel error fold, the requantized terms of add and merge).
 * SMLAWB / SMLAWT give ra + floor(mS * e / 2^16) for the bottom / top halfword e of a word
 * (the 48-bit product's bits 47..16). With mS = m * 2^j < 2^31 exact (j in [-tz, 7], m = m' *
 * 2^tz) and s = shift + j = 16 + sh, sh in {8, 16}, nested floors give floor((P + R) / 2^s) =
 * floor((floor(P / 2^16) + R / 2^16) / 2^sh) when R is a multiple of 2^16: R = 0 for floor
 * (ra = 0), and for nearest H = 2^(s-1) (ra = 2^(sh-1)); the shift by sh then folds into
 * PKHTB / PKHBT (packing a pair) or the ADD that accumulates it. As at et_rqh, dropping the
 * -[e < 0] of ties away from zero is exact unless a tie can occur: v2(e) = shift - 1 - tz = T
 * with |e| >= 2^T, excluded by emax < 2^T (or T outside [0, 15]). |mS * e| < 2^46 keeps the
 * sums far from wrapping. */
typedef struct {
    int32_t m;                    /* m * 2^j, below 2^31 */
    int32_t ra;                   /* 0 (floor) or 2^(sh-1) (nearest) */
    uint8_t sh;                   /* 8 or 16; 0: the form does not apply */
} et_rqw;

et_rqw et_rqw_prepare(et_multiplier mul, uint32_t emax, et_round_mode mode);

/* one int16 by a prepared et_rqw (sh != 0) */
static inline int32_t et_rqw_one(const et_rqw *h, int32_t e)
{
    return et_asr32(h->ra + (int32_t)et_asr64((int64_t)h->m * e, 16), h->sh);
}

/* e[i] = round(e[i] * M) by a prepared et_rqw: on M4 / M7 two int16 per word, SMLAWB and
 * SMLAWT for the halves, the shift by sh folded into PKHTB / PKHBT (unaligned words are fine) */
static inline void et_rqw_span(int16_t *e, int32_t n, const et_rqw *h)
{
    int32_t i = 0;
#if defined(__ARM_FEATURE_DSP) && !defined(ET_NO_SIMD)
    const int32_t m = h->m, ra = h->ra;
    uint32_t w, lo, hi;
    if (h->sh == 16) {                          /* hi >> 16 is its top half already */
        for (; i + 2 <= n; i += 2) {
            memcpy(&w, e + i, 4);
            __asm("smlawb %0, %1, %2, %3" : "=r"(lo) : "r"(m), "r"(w), "r"(ra));
            __asm("smlawt %0, %1, %2, %3" : "=r"(hi) : "r"(m), "r"(w), "r"(ra));
            __asm("pkhtb %0, %1, %2, asr #16" : "=r"(w) : "r"(hi), "r"(lo));
            memcpy(e + i, &w, 4);
        }
    } else {                                    /* (hi << 8) holds hi >> 8 in its top half */
        for (; i + 4 <= n; i += 4) {            /* two words a turn: one loop test */
            uint32_t w2, lo2, hi2;
            memcpy(&w, e + i, 4);
            memcpy(&w2, e + i + 2, 4);
            __asm("smlawb %0, %1, %2, %3" : "=r"(lo) : "r"(m), "r"(w), "r"(ra));
            __asm("smlawt %0, %1, %2, %3" : "=r"(hi) : "r"(m), "r"(w), "r"(ra));
            __asm("smlawb %0, %1, %2, %3" : "=r"(lo2) : "r"(m), "r"(w2), "r"(ra));
            __asm("smlawt %0, %1, %2, %3" : "=r"(hi2) : "r"(m), "r"(w2), "r"(ra));
            lo = (uint32_t)et_asr32((int32_t)lo, 8);
            lo2 = (uint32_t)et_asr32((int32_t)lo2, 8);
            __asm("pkhbt %0, %1, %2, lsl #8" : "=r"(w) : "r"(lo), "r"(hi));
            __asm("pkhbt %0, %1, %2, lsl #8" : "=r"(w2) : "r"(lo2), "r"(hi2));
            memcpy(e + i, &w, 4);
            memcpy(e + i + 2, &w2, 4);
        }
        for (; i + 2 <= n; i += 2) {
            memcpy(&w, e + i, 4);
            __asm("smlawb %0, %1, %2, %3" : "=r"(lo) : "r"(m), "r"(w), "r"(ra));
            __asm("smlawt %0, %1, %2, %3" : "=r"(hi) : "r"(m), "r"(w), "r"(ra));
            lo = (uint32_t)et_asr32((int32_t)lo, 8);
            __asm("pkhbt %0, %1, %2, lsl #8" : "=r"(w) : "r"(lo), "r"(hi));
            memcpy(e + i, &w, 4);
        }
    }
#endif
    for (; i < n; i++) e[i] = (int16_t)et_rqw_one(h, e[i]);
}

/* ---- fixed point: exp, log2, softmax cross-entropy gradient ---- */
int64_t et_exp_q30(int64_t t);                        /* t <= 0, Q30 -> Q30 */
int64_t et_log2_q30(int64_t x);                       /* x in [1, 2^62), Q30 -> Q16 */
/* one sample: logits int8[k] with output scale s_out; grad int64[k] (p - onehot, Q30);
 * returns the loss -ln p_label in Q16. exps is int64[k] scratch. */
int64_t et_softmax_ce_q30(const int8_t *logits, int k, float s_out, int label,
                          int64_t *grad, int64_t *exps);

#endif
