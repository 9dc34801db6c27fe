/* edgetrain int8 training engine (see et_engine.h): each function is the translation of the
 * Trainer method named in its comment, in edgetrain/engine/int8.py. Element i of a tensor is
 * its row-major index over the whole batch, which is also its stochastic-rounding index. */
#include "et_engine.h"
#include "et_fill.h"
#include "et_internal.h"
#include "et_simd.h"

#include <math.h>
#include <string.h>

#define ET_Q30 9.313225746154785e-10f          /* 2^-30 */
#define ET_CHANNEL_FRACTION 64.0f

/* ---- four int8 lanes per word on ARMv7E-M: SSUB8 sets each lane's GE flag when a >= b
 * (signed, no wrap), SEL picks each lane by it ---- */
#if defined(__ARM_FEATURE_DSP) && !defined(ET_NO_SIMD)
#define ET_SIMD8 1
static inline uint32_t et_sel_ge8(uint32_t a, uint32_t b, uint32_t t, uint32_t f)
{
    uint32_t r;                                 /* per lane: a >= b ? t : f */
    __asm("ssub8 %0, %1, %2\n\tsel %0, %3, %4" : "=&r"(r) : "r"(a), "r"(b), "r"(t), "r"(f)
          : "cc");
    return r;
}
static uint32_t et_splat8(int32_t v) { return (uint32_t)(uint8_t)v * 0x01010101u; }
#else
#define ET_SIMD8 0
#endif


/* ------------------------------------------------------------ range trackers */

static et_observation *et_deferred;
static int32_t et_n_deferred, et_max_deferred;

void et_deferred_reset(et_observation *queue, int32_t capacity)
{
    et_deferred = queue;
    et_max_deferred = capacity;
    et_n_deferred = 0;
}

void et_range_observe(et_range *r, float lo, float hi, float rate)   /* RangeTracker.observe */
{
    if (!(lo - lo == 0.0f) || !(hi - hi == 0.0f)) {   /* non-finite: training diverged */
        et_fail(ET_ERR_ROUND_RANGE);
        return;
    }
    if (!r->seen) {
        r->lo = lo;
        r->hi = hi;
        r->seen = 1;
        return;
    }
    r->lo = r->lo + rate * (lo - r->lo);
    r->hi = r->hi + rate * (hi - r->hi);
}

void et_deferred_commit(void)   /* Trainer._commit_observations */
{
    for (int32_t i = 0; i < et_n_deferred; i++)
        et_range_observe(et_deferred[i].r, et_deferred[i].lo, et_deferred[i].hi,
                         et_deferred[i].rate);
    et_n_deferred = 0;
}

static void et_defer(et_range *r, float lo, float hi, float rate)
{
    if (et_n_deferred >= et_max_deferred) {
        et_fail(ET_ERR_SHIFT_RANGE);
        return;
    }
    et_deferred[et_n_deferred].r = r;
    et_deferred[et_n_deferred].lo = lo;
    et_deferred[et_n_deferred].hi = hi;
    et_deferred[et_n_deferred].rate = rate;
    et_n_deferred++;
}

/* Trainer._tracked_qparams: an unseen tracker takes this step's range at once */
et_qparams et_tracked_qparams(const et_ctx *c, et_range *r, float lo, float hi, float rate,
                              int observe)
{
    if (observe && !r->seen)
        et_range_observe(r, lo, hi, rate);
    else if (observe)
        et_defer(r, lo, hi, rate);
    return et_range_qparams(r, 0, c->cfg->pow2);
}

/* ------------------------------------------------------------------- helpers */

void et_trace_tensor(const et_tensor *t, int32_t batch)
{
    (void)t;
    (void)batch;
    if (t->trace != ET_NO_TRACE) {
        ET_TRACE_T(t->trace, t->q, (uint32_t)(t->n * batch));
        ET_TRACE_T(t->trace + 1, &t->qp.scale, 4);
        ET_TRACE_T(t->trace + 2, &t->qp.zero, 4);
    }
}


/* four int32 by two LDRD (word alignment suffices on ARMv7-M) and four int8 by four STRB
 * (the compiler would merge the bytes with four BFI and one STR: two more instructions), each
 * pointer advanced by the last access; the stores are volatile, as an asm whose only output
 * (the advanced pointer) goes unused would otherwise be deleted, stores and all */
#if defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__)
ET_ALWAYS_INLINE void et_load4_next(const int32_t **p, int32_t *a)
{
    __asm("ldrd %0, %1, [%4, #8]\n\tldrd %2, %3, [%4], #16"
          : "=&r"(a[2]), "=&r"(a[3]), "=&r"(a[0]), "=&r"(a[1]), "+r"(*p)
          : "m"(*(const int32_t(*)[4]) * p));
}
ET_ALWAYS_INLINE void et_store4_next(int8_t **d, int32_t r0, int32_t r1, int32_t r2, int32_t r3)
{
    __asm volatile("strb %2, [%0, #1]\n\tstrb %3, [%0, #2]\n\t"
                   "strb %4, [%0, #3]\n\tstrb %1, [%0], #4"
                   : "+r"(*d) : "r"(r0), "r"(r1), "r"(r2), "r"(r3) : "memory");
}
#else
ET_ALWAYS_INLINE void et_load4_next(const int32_t **p, int32_t *a)
{
    for (int k = 0; k < 4; k++) a[k] = (*p)[k];
    *p += 4;
}
ET_ALWAYS_INLINE void et_store4_next(int8_t **d, int32_t r0, int32_t r1, int32_t r2, int32_t r3)
{
    (*d)[0] = (int8_t)r0;
    (*d)[1] = (int8_t)r1;
    (*d)[2] = (int8_t)r2;
    (*d)[3] = (int8_t)r3;
    *d += 4;
}
#endif

/* n int32 accumulators plus a bias requantized into int8 codes by the et_rq32 forms, element
 * j0 + i drawing the stochastic bits of index j0 + i (the rounding mode a constant at each
 * call site); acc[i] + bias must not leave int32 (the caller checks) */
ET_ALWAYS_INLINE void et_requant_span(const int32_t *acc, int32_t bias, int8_t *dst, int32_t n,
                                      et_multiplier m, int32_t zero, et_round_mode mode,
                                      uint32_t base, uint32_t j0)
{
    et_rq32 r = et_rq32_prepare_zero(m, zero);
    if (r.zfold) {                              /* one SMLAL, one shift, one SSAT */
        for (int32_t i = 0; i < n; i++)
            dst[i] = et_rq32_int8_folded(&r, acc[i] + bias, mode,
                                         et_bits_for(mode, base, j0 + (uint32_t)i));
        return;
    }
    if (r.fast) {
        for (int32_t i = 0; i < n; i++)
            dst[i] = et_rq32_int8_sat(&r, acc[i] + bias, zero, mode,
                                      et_bits_for(mode, base, j0 + (uint32_t)i));
        return;
    }
    for (int32_t i = 0; i < n; i++)
        dst[i] = (int8_t)et_requantize32(acc[i] + bias, m, zero, mode,
                                         et_bits_for(mode, base, j0 + (uint32_t)i), ET_QMIN,
                                         ET_QMAX);
}

/* the same by an et_rqh form (floor / nearest, no random bits): per element one SMMLA (or
 * SMMLAR) and one SSAT that also shifts by sh; form, sh and biased constants at each use */
ET_ALWAYS_INLINE void et_rqh_span(const int32_t *acc, int32_t bias, int8_t *dst, int32_t n,
                                  int32_t m, int32_t ra, int form, int sh, int biased)
{
    const int32_t *end4 = acc + (n & ~3);
    while (acc != end4) {                       /* loads first: int8 stores alias them */
        int32_t a[4];
        et_load4_next(&acc, a);
        if (biased) {
            a[0] += bias;
            a[1] += bias;
            a[2] += bias;
            a[3] += bias;
        }
        et_store4_next(&dst, et_rqh_sat(et_rqh_hi(a[0], m, ra, form), sh),
                       et_rqh_sat(et_rqh_hi(a[1], m, ra, form), sh),
                       et_rqh_sat(et_rqh_hi(a[2], m, ra, form), sh),
                       et_rqh_sat(et_rqh_hi(a[3], m, ra, form), sh));
    }
    for (int32_t i = 0; i < (n & 3); i++)
        dst[i] = (int8_t)et_rqh_sat(et_rqh_hi(acc[i] + (biased ? bias : 0), m, ra, form), sh);
}

typedef void (*et_rqh_loop)(const int32_t *acc, int32_t bias, int8_t *dst, int32_t n,
                            int32_t m, int32_t ra);
#if ET_SIMD8
/* the et_rqh forms eight accumulators a turn in assembly: one LDM of eight (int32: word
 * aligned) into r4-r11, [ADD of the bias,] SMMLA or SMMLAR, SSAT (shifting by sh) and STRB
 * each, then the loop test: 27 instructions per 8 (35 with the bias; et_rqh_span: 32 / 40).
 * The same instructions as et_rqh_hi / et_rqh_sat per element, so the same int8 codes.
 * et_rqh8_*(acc, dst, blocks of eight (at least one), m, ra, bias) */
#define ET_RQH8_EACH(op) op("r4", "0") op("r5", "1") op("r6", "2") op("r7", "3")              \
    op("r8", "4") op("r9", "5") op("r10", "6") op("r11", "7")
#define ET_RQH8_ADD(r, k) "add " r ", " r ", lr\n\t"
#define ET_RQH8_MMLA(r, k) "smmla " r ", " r ", r3, ip\n\t"
#define ET_RQH8_MMLAR(r, k) "smmlar " r ", " r ", r3, ip\n\t"
#define ET_RQH8_SAT0(r, k) "ssat " r ", #8, " r "\n\t"
#define ET_RQH8_SAT8(r, k) "ssat " r ", #8, " r ", asr #8\n\t"
#define ET_RQH8_SAT16(r, k) "ssat " r ", #8, " r ", asr #16\n\t"
#define ET_RQH8_STORE(r, k) "strb " r ", [r1, #" k "]\n\t"
#define ET_RQH8_NONE(r, k)
#define ET_RQH8_FUNCTION(name, add, mmla, sat)                                                \
    void name(const int32_t *acc, int8_t *dst, int32_t blocks, int32_t m, int32_t ra,         \
              int32_t bias);                                                                  \
    __asm(ET_ASM_FUNCTION_BEGIN(#name)                                                        \
          "push {r4-r11, lr}\n\t"                                                             \
          "ldrd ip, lr, [sp, #36]\n"      /* ra, bias */                                      \
          "1:\n\t"                                                                            \
          "ldm r0!, {r4-r11}\n\t"                                                             \
          ET_RQH8_EACH(add) ET_RQH8_EACH(mmla) ET_RQH8_EACH(sat) ET_RQH8_EACH(ET_RQH8_STORE)  \
          "adds r1, r1, #8\n\t"                                                               \
          "subs r2, r2, #1\n\t"                                                               \
          "bne 1b\n\t"                                                                        \
          "pop {r4-r11, pc}\n\t"                                                              \
          ET_ASM_FUNCTION_END(#name));
ET_RQH8_FUNCTION(et_rqh8_hi0, ET_RQH8_NONE, ET_RQH8_MMLA, ET_RQH8_SAT0)
ET_RQH8_FUNCTION(et_rqh8_hi0_b, ET_RQH8_ADD, ET_RQH8_MMLA, ET_RQH8_SAT0)
ET_RQH8_FUNCTION(et_rqh8_hi8, ET_RQH8_NONE, ET_RQH8_MMLA, ET_RQH8_SAT8)
ET_RQH8_FUNCTION(et_rqh8_hi8_b, ET_RQH8_ADD, ET_RQH8_MMLA, ET_RQH8_SAT8)
ET_RQH8_FUNCTION(et_rqh8_hi16, ET_RQH8_NONE, ET_RQH8_MMLA, ET_RQH8_SAT16)
ET_RQH8_FUNCTION(et_rqh8_hi16_b, ET_RQH8_ADD, ET_RQH8_MMLA, ET_RQH8_SAT16)
ET_RQH8_FUNCTION(et_rqh8_round0, ET_RQH8_NONE, ET_RQH8_MMLAR, ET_RQH8_SAT0)
ET_RQH8_FUNCTION(et_rqh8_round0_b, ET_RQH8_ADD, ET_RQH8_MMLAR, ET_RQH8_SAT0)
/* the blocks of eight by the assembly, the last n % 8 by et_rqh_span */
#define ET_RQH_LOOP(name, form, sh, biased)                                                  \
    static void name(const int32_t *acc, int32_t bias, int8_t *dst, int32_t n, int32_t m,   \
                     int32_t ra)                                                            \
    {                                                                                       \
        int32_t head = n & ~7;                                                              \
        if (head) name##_asm(acc, dst, head >> 3, m, ra, bias);                             \
        et_rqh_span(acc + head, bias, dst + head, n - head, m, ra, form, sh, biased);       \
    }
#define et_rqh_hi0_asm et_rqh8_hi0
#define et_rqh_hi0_b_asm et_rqh8_hi0_b
#define et_rqh_hi8_asm et_rqh8_hi8
#define et_rqh_hi8_b_asm et_rqh8_hi8_b
#define et_rqh_hi16_asm et_rqh8_hi16
#define et_rqh_hi16_b_asm et_rqh8_hi16_b
#define et_rqh_round0_asm et_rqh8_round0
#define et_rqh_round0_b_asm et_rqh8_round0_b
#else
#define ET_RQH_LOOP(name, form, sh, biased)                                                  \
    static void name(const int32_t *acc, int32_t bias, int8_t *dst, int32_t n, int32_t m,   \
                     int32_t ra)                                                            \
    {                                                                                       \
        et_rqh_span(acc, bias, dst, n, m, ra, form, sh, biased);                            \
    }
#endif
ET_RQH_LOOP(et_rqh_hi0, ET_RQH_HI, 0, 0)
ET_RQH_LOOP(et_rqh_hi0_b, ET_RQH_HI, 0, 1)
ET_RQH_LOOP(et_rqh_hi8, ET_RQH_HI, 8, 0)
ET_RQH_LOOP(et_rqh_hi8_b, ET_RQH_HI, 8, 1)
ET_RQH_LOOP(et_rqh_hi16, ET_RQH_HI, 16, 0)
ET_RQH_LOOP(et_rqh_hi16_b, ET_RQH_HI, 16, 1)
ET_RQH_LOOP(et_rqh_round0, ET_RQH_HI_ROUND, 0, 0)
ET_RQH_LOOP(et_rqh_round0_b, ET_RQH_HI_ROUND, 0, 1)

/* [sh / 8, or 3 for SMMLAR][biased] */
static const et_rqh_loop et_rqh_loops[4][2] = {
    {et_rqh_hi0, et_rqh_hi0_b}, {et_rqh_hi8, et_rqh_hi8_b}, {et_rqh_hi16, et_rqh_hi16_b},
    {et_rqh_round0, et_rqh_round0_b},
};

/* rows of n accumulators (row r at acc + r * stride) plus one bias by a prepared et_rqh form
 * (h->form != ET_RQH_NONE) */
ET_ALWAYS_INLINE void et_rqh_rows(const et_rqh *h, const int32_t *acc, int32_t rows,
                                  int32_t stride, int32_t bias, int8_t *dst, int32_t n)
{
    et_rqh_loop loop = et_rqh_loops[h->form == ET_RQH_HI_ROUND ? 3 : h->sh / 8][bias != 0];
    for (int32_t r = 0; r < rows; r++)
        loop(acc + r * stride, bias, dst + r * stride, n, h->m, h->ra);
}

/* et_requant_rows of a handful of elements: et_requantize32 each (the same integers) */
ET_ALWAYS_INLINE void et_requant_few(const int32_t *acc, int32_t rows, int32_t stride,
                                     int32_t bias, int8_t *dst, int32_t n, et_multiplier m,
                                     int32_t zero, et_round_mode mode, uint32_t base,
                                     uint32_t j0)
{
    for (int32_t r = 0; r < rows; r++)
        for (int32_t i = 0; i < n; i++) {
            int32_t k = r * stride + i;
            dst[k] = (int8_t)et_requantize32(acc[k] + bias, m, zero, mode,
                                             et_bits_for(mode, base, j0 + (uint32_t)k), ET_QMIN,
                                             ET_QMAX);
        }
}

/* rows of n accumulators (row r at acc + r * stride, its elements drawing the stochastic bits
 * of j0 + r * stride + i) plus one bias, requantized by one multiplier; every acc + bias has
 * magnitude at most amax (it selects the et_rqh form) */
static void et_requant_rows(const int32_t *acc, int32_t rows, int32_t stride, int32_t bias,
                            int8_t *dst, int32_t n, et_multiplier m, int32_t zero, int mode,
                            uint32_t base, uint32_t j0, uint32_t amax)
{
    if (rows * n <= 4) {                        /* a few elements: no row preparation */
        switch (mode) {
        case ET_ROUND_FLOOR:
            et_requant_few(acc, rows, stride, bias, dst, n, m, zero, ET_ROUND_FLOOR, base, j0);
            return;
        case ET_ROUND_NEAREST:
            et_requant_few(acc, rows, stride, bias, dst, n, m, zero, ET_ROUND_NEAREST, base, j0);
            return;
        default:
            et_requant_few(acc, rows, stride, bias, dst, n, m, zero, ET_ROUND_STOCHASTIC, base,
                           j0);
            return;
        }
    }
    et_rqh h = et_rqh_prepare(m, zero, (et_round_mode)mode, amax);
    if (h.form != ET_RQH_NONE) {
        et_rqh_rows(&h, acc, rows, stride, bias, dst, n);
        return;
    }
    for (int32_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * stride;
        int8_t *d = dst + r * stride;
        uint32_t j = j0 + (uint32_t)(r * stride);
        switch (mode) {
        case ET_ROUND_FLOOR:
            et_requant_span(a, bias, d, n, m, zero, ET_ROUND_FLOOR, base, j);
            break;
        case ET_ROUND_NEAREST:
            et_requant_span(a, bias, d, n, m, zero, ET_ROUND_NEAREST, base, j);
            break;
        default: et_requant_span(a, bias, d, n, m, zero, ET_ROUND_STOCHASTIC, base, j); break;
        }
    }
}

/* Trainer._forward, input: quantize with the input tracker's qparams, rounding nearest. Each
 * v = x / scale takes the fast form, et_nearest_half(v) + zero saturated to int8: for |v| <
 * 2^30 that is et_quantize's code (beyond 2^20 its clip saturates to the same end). The range
 * test is hoisted: the loop sums |v|, and a float sum of magnitudes is at least each of them
 * (rounding is monotonic), so a sum below 2^30 proves every v in range and none NaN; else the
 * tensor is quantized again by et_quantize (its clip, its NaN report) */
void et_quantize_input(const float *x, et_tensor *t, int32_t batch, const et_range *r,
                       int pow2)
{
    t->qp = et_range_qparams(r, 0, pow2);
    const et_qparams qp = t->qp;                /* locals: int8 stores alias everything */
    int8_t *q = t->q;
    const int32_t n = t->n * batch;
    float mags = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        float v = x[i] / qp.scale;
        mags += fabsf(v);
        q[i] = (int8_t)et_ssat8(et_nearest_half(v) + qp.zero);
    }
    if (!(mags < 1073741824.0f))                /* some |v| >= 2^30, or NaN */
        for (int32_t i = 0; i < n; i++) q[i] = et_quantize(x[i], qp, ET_ROUND_NEAREST, 0);
}

/* -------------------------------------------------------------- weight layers */

static int32_t et_out_per_sample(const et_wlayer *L) { return L->g.c_out * L->g.ho * L->g.wo; }
static int32_t et_in_per_sample(const et_wlayer *L) { return L->g.c_in * L->g.h * L->g.w; }

/* per-channel weights: each row's symmetric scale from its range, zero point 0; rows marked
 * in `keep` (NULL: none) keep the scale they have */
void et_channel_scales(et_wlayer *L, const uint8_t *keep)
{
    for (int32_t o = 0; o < L->g.c_out; o++)
        if (!keep || !keep[o]) L->w_scale[o] = et_range_qparams(&L->w_range[o], 1, 0).scale;
    L->w_zero = 0;
}

/* Trainer._weights: this step's weight scales (per channel or one) and zero point */
void et_weight_qparams(const et_ctx *c, et_wlayer *L)
{
    int32_t O = L->g.c_out;
    if (L->w_fixed) return;                     /* computed at export time (flash) */
    if (c->cfg->weight_channels) {
        et_channel_scales(L, NULL);
    } else {
        et_qparams qp = et_range_qparams(&L->w_range[0], 0, 0);
        for (int32_t o = 0; o < O; o++) L->w_scale[o] = qp.scale;
        L->w_zero = qp.zero;
    }
}

static void et_forward_acc(const et_wlayer *L, const int8_t *x, int32_t zx, int32_t *acc)
{
    if (L->conv)
        et_conv_fwd(&L->g, x, zx, L->w, L->w_zero, acc, &L->sc_fwd);
    else
        et_linear_fwd(x, zx, L->w, L->w_zero, L->g.c_in, L->g.c_out, acc);
}

/* channel o's bias in accumulator units (scale s_acc), rounding nearest */
static int32_t et_bias_acc(const et_wlayer *L, int32_t o, float s_acc)
{
    et_multiplier mb = et_multiplier_from(L->b_scale[o] / s_acc);
    return et_requantize32(L->b[o], mb, 0, ET_ROUND_NEAREST, 0, ET_I32_MIN, ET_I32_MAX);
}

/* (float)v, by the single-precision conversion of an int32 when v fits one (the same correctly
 * rounded value, without the int64 library call) */
static float et_f32_of(int64_t v)
{
    return v >= ET_I32_MIN && v <= ET_I32_MAX ? (float)(int32_t)v : (float)v;
}

/* the largest magnitude in [mn, mx] as an int32 can hold it (2^31 at most) */
static uint32_t et_abs_bound(int64_t mn, int64_t mx)
{
    int64_t a = -mn > mx ? -mn : mx;
    return a > 0x80000000LL ? 0x80000000u : (a < 0 ? 0u : (uint32_t)a);   /* < 0: empty */
}


/* [lo, hi] (span = hi - lo) takes v in: an element inside changes nothing, and that is one
 * unsigned compare: for lo <= hi, (uint32)(v - lo) <= hi - lo exactly when lo <= v <= hi (a v
 * below lo wraps to 2^32 - (lo - v) > hi - lo, as hi - v < 2^32) */
ET_ALWAYS_INLINE void et_widen(int32_t v, int32_t *lo, int32_t *hi, uint32_t *span)
{
    if ((uint32_t)v - (uint32_t)*lo > *span) {
        if (v < *lo)
            *lo = v;
        else
            *hi = v;
        *span = (uint32_t)*hi - (uint32_t)*lo;
    }
}

/* running min / max of n int32 (*mn > *mx: none yet) */
static void et_minmax_update(const int32_t *a, int32_t n, int32_t *mn, int32_t *mx)
{
    if (n <= 0) return;
    int32_t lo = *mn, hi = *mx;
    if (lo > hi) lo = hi = a[0];
    uint32_t span = (uint32_t)hi - (uint32_t)lo;
    const int32_t *end = a + n;
#if defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__)
    /* four at a time with the rare widening out of line (16 instructions per 4 elements) over
     * the first 64, where the range still grows often */
    const int32_t *end4 = a + (n < 64 ? n & ~3 : 64);
    if (a != end4) {
        int32_t v0, v1, v2, v3;
        uint32_t t;
#define ET_MM_TEST(v, out, back) \
    "sub %[t], " v ", %[lo]\n\tcmp %[t], %[span]\n\tbhi " out "f\n" back ":\n\t"
#define ET_MM_WIDEN(v, out, back)                                                          \
    out ":\n\tcmp " v ", %[lo]\n\tite lt\n\tmovlt %[lo], " v "\n\tmovge %[hi], " v        \
        "\n\tsub %[span], %[hi], %[lo]\n\tb " back "b\n\t"
        __asm("1:\n\t"
              "ldrd %[v2], %[v3], [%[p], #8]\n\t"
              "ldrd %[v0], %[v1], [%[p]], #16\n\t"
              ET_MM_TEST("%[v0]", "20", "21") ET_MM_TEST("%[v1]", "22", "23")
              ET_MM_TEST("%[v2]", "24", "25") ET_MM_TEST("%[v3]", "26", "27")
              "cmp %[p], %[end]\n\tbne 1b\n\tb 9f\n\t"
              ET_MM_WIDEN("%[v0]", "20", "21") ET_MM_WIDEN("%[v1]", "22", "23")
              ET_MM_WIDEN("%[v2]", "24", "25") ET_MM_WIDEN("%[v3]", "26", "27")
              "9:"
              : [lo] "+r"(lo), [hi] "+r"(hi), [span] "+r"(span), [p] "+r"(a),
                [v0] "=&r"(v0), [v1] "=&r"(v1), [v2] "=&r"(v2), [v3] "=&r"(v3), [t] "=&r"(t)
              : [end] "r"(end4)
              : "cc", "memory");
#undef ET_MM_TEST
#undef ET_MM_WIDEN
    }
    /* then eight per LDM (word aligned: int32) into r4-r6, r8, r10-r12, lr (not r7, the Thumb
     * frame pointer, nor r9, a platform register), each less lo, and one chain of conditional
     * unsigned compares against span (IT: a compare runs while the ones before found their
     * element inside): 22 instructions per 8 elements. A block with an element outside leaves
     * the loop with p past it, and C widens the range by its eight */
    const int32_t *end8 = a + ((end - a) & ~7);
    while (a != end8) {
        __asm volatile("1:\n\t"
                       "ldmia %[p]!, {r4, r5, r6, r8, r10, r11, r12, lr}\n\t"
                       "sub r4, r4, %[lo]\n\tsub r5, r5, %[lo]\n\tsub r6, r6, %[lo]\n\t"
                       "sub r8, r8, %[lo]\n\tsub r10, r10, %[lo]\n\tsub r11, r11, %[lo]\n\t"
                       "sub r12, r12, %[lo]\n\tsub lr, lr, %[lo]\n\t"
                       "cmp r4, %[span]\n\t"
                       "itttt ls\n\tcmpls r5, %[span]\n\tcmpls r6, %[span]\n\t"
                       "cmpls r8, %[span]\n\tcmpls r10, %[span]\n\t"
                       "ittt ls\n\tcmpls r11, %[span]\n\tcmpls r12, %[span]\n\t"
                       "cmpls lr, %[span]\n\t"
                       "bhi 2f\n\t"
                       "cmp %[p], %[end]\n\tbne 1b\n"
                       "2:"
                       : [p] "+r"(a)
                       : [lo] "r"(lo), [span] "r"(span), [end] "r"(end8)
                       : "r4", "r5", "r6", "r8", "r10", "r11", "r12", "lr", "cc", "memory");
        for (int32_t k = -8; k < 0; k++) et_widen(a[k], &lo, &hi, &span);   /* rare */
    }
#else
    const int32_t *end4 = a + (n & ~3);
    while (a != end4) {
        int32_t v[4];
        et_load4_next(&a, v);
        et_widen(v[0], &lo, &hi, &span);
        et_widen(v[1], &lo, &hi, &span);
        et_widen(v[2], &lo, &hi, &span);
        et_widen(v[3], &lo, &hi, &span);
    }
#endif
    for (; a != end; a++) et_widen(*a, &lo, &hi, &span);
    *mn = lo;
    *mx = hi;
}

/* the engine's int32 accumulators with the bias added and saturated, in place: only needed
 * when some sum leaves int32 (otherwise the bias is added as the sums are requantized) */
static void et_add_biases_saturated(const et_wlayer *L, float s_x, int32_t B)
{
    int32_t O = L->g.c_out, P = L->g.ho * L->g.wo;
    for (int32_t o = 0; o < O; o++) {
        int32_t bias = et_bias_acc(L, o, s_x * L->w_scale[o]);
        for (int32_t b = 0; b < B; b++)
            for (int32_t p = 0; p < P; p++) {
                int32_t *a = &L->acc[(b * O + o) * P + p];
                *a = et_sat((int64_t)*a + bias, ET_I32_MIN, ET_I32_MAX);
            }
    }
}

#define ET_BIAS_CACHE 128                       /* channels whose bias both passes share */
#define ET_SHORT_ROWS 4                         /* P below: the bias joins the sums in place */

typedef struct {
    float lo, hi;                               /* the output's float range over channels */
    uint32_t amax;                              /* largest |sum + bias| (2^31 at most) */
    int fused;                                  /* every sum + bias fits int32 */
} et_out_range;

/* saturate(a + b) to int32: one QADD on M4 / M7 */
ET_ALWAYS_INLINE int32_t et_qadd32(int32_t a, int32_t b)
{
#if ET_SIMD8
    int32_t r;
    __asm("qadd %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return et_sat((int64_t)a + b, ET_I32_MIN, ET_I32_MAX);
#endif
}

/* min / max of channel o's sums over the batch (rows of P at stride ny); short rows (P <
 * ET_SHORT_ROWS: linear layers) also take the bias in place, saturated, as the engine's sums
 * (the same values the requantization would form: they read no further) */
static void et_channel_minmax(int32_t *acc, int32_t B, int32_t ny, int32_t P, int32_t bias,
                              int32_t *mn, int32_t *mx)
{
    int32_t lo = ET_I32_MAX, hi = ET_I32_MIN;
    if (P == 1) {                               /* one sum per sample (linear) */
        for (const int32_t *end = acc + B * ny; acc != end; acc += ny) {
            int32_t v = *acc;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            *acc = et_qadd32(v, bias);
        }
    } else if (P >= ET_SHORT_ROWS) {
        for (int32_t b = 0; b < B; b++) et_minmax_update(acc + b * ny, P, &lo, &hi);
    } else {
        for (int32_t b = 0; b < B; b++, acc += ny)   /* no call per element */
            for (int32_t p = 0; p < P; p++) {
                int32_t v = acc[p];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
                acc[p] = et_qadd32(v, bias);
            }
    }
    *mn = lo;
    *mx = hi;
}

/* the channel ranges from the accumulators' extremes plus the bias (adding a constant keeps
 * the order); biases[o] = channel o's bias for o < ET_BIAS_CACHE */
static et_out_range et_channel_ranges(const et_wlayer *L, float s_x, int32_t B,
                                      int32_t *biases)
{
    int32_t O = L->g.c_out, P = L->g.ho * L->g.wo;
    et_out_range r = {0.0f, 0.0f, 0u, 1};
    for (int32_t o = 0; o < O; o++) {
        float s_acc = s_x * L->w_scale[o];
        int32_t bias = et_bias_acc(L, o, s_acc), amn, amx;
        if (o < ET_BIAS_CACHE) biases[o] = bias;
        et_channel_minmax(L->acc + o * P, B, O * P, P, bias, &amn, &amx);
        int64_t mn = (int64_t)amn + bias, mx = (int64_t)amx + bias;
        r.fused &= mn >= ET_I32_MIN && mx <= ET_I32_MAX;
        r.amax = et_abs_bound(mn, mx) > r.amax ? et_abs_bound(mn, mx) : r.amax;
        float clo = et_f32_of(mn) * s_acc, chi = et_f32_of(mx) * s_acc;
        r.lo = o == 0 ? clo : et_minf(r.lo, clo);
        r.hi = o == 0 ? chi : et_maxf(r.hi, chi);
    }
    return r;
}

/* dst[i * stride] = the et_rqh form of acc[i * stride], i < n (form and sh constants at each
 * use: one SMMLA or SMMLAR and one SSAT per element) */
ET_ALWAYS_INLINE void et_rqh_strided(const int32_t *acc, int32_t stride, int8_t *dst,
                                     int32_t n, int32_t m, int32_t ra, int form, int sh)
{
    for (int32_t i = 0; i < n; i++, acc += stride, dst += stride)
        *dst = (int8_t)et_rqh_sat(et_rqh_hi(*acc, m, ra, form), sh);
}

/* et_rqh_strided by a prepared form (h->form != ET_RQH_NONE) */
static void et_rqh_column(const et_rqh *h, const int32_t *acc, int32_t stride, int8_t *dst,
                          int32_t n)
{
    if (h->form == ET_RQH_HI_ROUND)
        et_rqh_strided(acc, stride, dst, n, h->m, h->ra, ET_RQH_HI_ROUND, 0);
    else if (h->sh == 0)
        et_rqh_strided(acc, stride, dst, n, h->m, h->ra, ET_RQH_HI, 0);
    else if (h->sh == 8)
        et_rqh_strided(acc, stride, dst, n, h->m, h->ra, ET_RQH_HI, 8);
    else
        et_rqh_strided(acc, stride, dst, n, h->m, h->ra, ET_RQH_HI, 16);
}

/* the requantization of a layer of short rows (P < ET_SHORT_ROWS, biased already) into int8
 * codes, every channel in this one call, element k = b * ny + p of channel o drawing the bits
 * of o * P + k (the mode a constant at each call site): an et_rqh form for a batch of rows,
 * else et_requantize32 each (no preparation) */
ET_ALWAYS_INLINE void et_requant_short(const et_wlayer *L, int32_t B, float s_x, et_qparams qp,
                                       et_round_mode mode, uint32_t base, uint32_t amax,
                                       int8_t *yq)
{
    const int32_t O = L->g.c_out, P = L->g.ho * L->g.wo, ny = O * P;
    const int prepare = B * P > 4 && mode != ET_ROUND_STOCHASTIC;
    const int32_t *acc = L->acc;
    if (B * P == 1) {                           /* one sum per channel (linear, batch 1) */
        for (int32_t o = 0; o < O; o++)
            yq[o] = (int8_t)et_requantize32(acc[o],
                                            et_multiplier_from((s_x * L->w_scale[o]) / qp.scale),
                                            qp.zero, mode, et_bits_for(mode, base, (uint32_t)o),
                                            ET_QMIN, ET_QMAX);
        return;
    }
    for (int32_t o = 0; o < O; o++, acc += P, yq += P) {
        et_multiplier m = et_multiplier_from((s_x * L->w_scale[o]) / qp.scale);
        et_rqh h = {0, 0, ET_RQH_NONE, 0};
        if (prepare) h = et_rqh_prepare(m, qp.zero, mode, amax);
        if (h.form != ET_RQH_NONE && P == 1) {  /* linear: the channel's B sums at stride ny */
            et_rqh_column(&h, acc, ny, yq, B);
            continue;
        }
        for (int32_t b = 0; b < B; b++)
            for (int32_t p = 0; p < P; p++) {
                int32_t k = b * ny + p;
                yq[k] = h.form != ET_RQH_NONE
                            ? et_rqh_int8(&h, acc[k])
                            : (int8_t)et_requantize32(acc[k], m, qp.zero, mode,
                                                      et_bits_for(mode, base,
                                                                  (uint32_t)(o * P + k)),
                                                      ET_QMIN, ET_QMAX);
            }
    }
}

static void et_requant_short_layer(const et_wlayer *L, int32_t B, float s_x, et_qparams qp,
                                   int mode, uint32_t base, uint32_t amax, int8_t *yq)
{
    switch (mode) {
    case ET_ROUND_FLOOR:
        et_requant_short(L, B, s_x, qp, ET_ROUND_FLOOR, base, amax, yq);
        return;
    case ET_ROUND_NEAREST:
        et_requant_short(L, B, s_x, qp, ET_ROUND_NEAREST, base, amax, yq);
        return;
    default: et_requant_short(L, B, s_x, qp, ET_ROUND_STOCHASTIC, base, amax, yq); return;
    }
}

/* the requantization of a layer of rows of P >= ET_SHORT_ROWS sums (biased already unless
 * r->fused), channel o by its own multiplier: an et_rqh form prepared here (no call for the
 * common case), else et_requant_rows' other forms */
static void et_requant_channels(const et_wlayer *L, int32_t B, float s_x, const et_out_range *r,
                                const int32_t *biases, int mode, uint32_t base, et_tensor *y)
{
    const int32_t O = L->g.c_out, P = L->g.ho * L->g.wo, ny = O * P, zero = y->qp.zero;
    const int32_t *acc = L->acc;
    int8_t *yq = y->q;
    for (int32_t o = 0; o < O; o++, acc += P, yq += P) {
        float s_acc = s_x * L->w_scale[o];
        int32_t bias = !r->fused ? 0 : o < ET_BIAS_CACHE ? biases[o] : et_bias_acc(L, o, s_acc);
        et_multiplier m = et_multiplier_from(s_acc / y->qp.scale);
        et_rqh h = et_rqh_prepare(m, zero, (et_round_mode)mode, r->amax);
        if (h.form != ET_RQH_NONE)
            et_rqh_rows(&h, acc, B, ny, bias, yq, P);
        else
            et_requant_rows(acc, B, ny, bias, yq, P, m, zero, mode, base, (uint32_t)(o * P),
                            r->amax);
    }
}

/* Trainer._fwd_weight_q: the ranges are read from the sums before requantizing them */
void et_fwd_weight(const et_ctx *c, et_wlayer *L, const et_tensor *x, et_tensor *y,
                   int observe)
{
    int32_t B = c->batch, O = L->g.c_out, P = L->g.ho * L->g.wo, ny = O * P;
    int32_t biases[ET_BIAS_CACHE];
    et_weight_qparams(c, L);
    int32_t b = 0;
    for (; !L->conv && b + 4 <= B; b += 4)      /* linear: four, then two samples per weight */
        et_linear_fwd4(x->q + b * x->n, x->n, x->qp.zero, L->w, L->w_zero, L->g.c_in, O,
                       L->acc + b * ny, ny);
    for (; !L->conv && b + 2 <= B; b += 2)
        et_linear_fwd2(x->q + b * x->n, x->n, x->qp.zero, L->w, L->w_zero, L->g.c_in, O,
                       L->acc + b * ny, ny);
    for (; b < B; b++)
        et_forward_acc(L, x->q + b * x->n, x->qp.zero, L->acc + b * ny);
    et_out_range r = et_channel_ranges(L, x->qp.scale, B, biases);
    float lo = et_clipf(r.lo, L->clamp_lo, L->clamp_hi);
    float hi = et_clipf(r.hi, L->clamp_lo, L->clamp_hi);
    y->qp = et_tracked_qparams(c, L->a_range, lo, hi, c->cfg->rate_activation, observe);
    const int mode = c->cfg->round_forward;     /* locals: int8 stores alias everything */
    uint32_t base = et_call_base(c, mode);
    L->s_x = x->qp.scale;
    if (P < ET_SHORT_ROWS) {                    /* the sums hold their biases */
        et_requant_short_layer(L, B, x->qp.scale, y->qp, mode, base, r.amax, y->q);
        et_trace_tensor(y, B);
        return;
    }
    if (!r.fused) et_add_biases_saturated(L, x->qp.scale, B);
    et_requant_channels(L, B, x->qp.scale, &r, biases, mode, base, y);
    et_trace_tensor(y, B);
}

/* sum over i of |q[i] - zero| for int8 codes (below 2^31 for n < 2^23): on M4 / M7 USADA8
 * adds four absolute differences of unsigned bytes per word; q ^ 0x80 is q + 128 as an
 * unsigned byte, and zero alike, so every difference is kept */
static int32_t et_abs_dev8(const int8_t *q, int32_t n, int32_t zero)
{
    uint32_t s = 0u;
    int32_t i = 0;
#if ET_SIMD8
    const uint32_t zb = et_splat8(zero) ^ 0x80808080u;
    for (; i + 8 <= n; i += 8) {
        uint32_t v0, v1;
        memcpy(&v0, q + i, 4);
        memcpy(&v1, q + i + 4, 4);
        __asm("usada8 %0, %1, %2, %0" : "+r"(s) : "r"(v0 ^ 0x80808080u), "r"(zb));
        __asm("usada8 %0, %1, %2, %0" : "+r"(s) : "r"(v1 ^ 0x80808080u), "r"(zb));
    }
#endif
    for (; i < n; i++) s += (uint32_t)(q[i] < zero ? zero - q[i] : q[i] - zero);
    return (int32_t)s;
}

/* the k-th largest of v[0 .. n) (1 <= k <= n), v reordered: Hoare's selection (FIND) */
static int32_t et_kth_largest(int32_t *v, int32_t n, int32_t k)
{
    int32_t lo = 0, hi = n - 1, t = k - 1;
    while (lo < hi) {
        int32_t pivot = v[lo + (hi - lo) / 2], i = lo, j = hi;
        while (i <= j) {                        /* descending: v[.. i) >= pivot >= v(j ..] */
            while (v[i] > pivot) i++;
            while (v[j] < pivot) j--;
            if (i <= j) {
                int32_t s = v[i];
                v[i++] = v[j];
                v[j--] = s;
            }
        }
        if (t <= j)
            hi = j;
        else if (t >= i)
            lo = i;
        else
            break;                              /* v(j .. i) all equal the pivot */
    }
    return v[t];
}

/* kept[o] = channel o's rank in the stable descending order of mags (ties: lower index
 * first) is below k. With t the k-th largest magnitude, the channels above t rank below k
 * and number a < k; a channel equal to t ranks a + (equal channels before it), so the first
 * k - a of them are kept; those below t rank k or more. spare: O int32 of scratch */
static void et_keep_top(const int32_t *mags, int32_t O, int32_t k, int32_t *spare,
                        uint8_t *kept)
{
    memcpy(spare, mags, (size_t)O * sizeof *spare);
    int32_t t = et_kth_largest(spare, O, k), ties = k;
    for (int32_t o = 0; o < O; o++) ties -= mags[o] > t;
    for (int32_t o = 0; o < O; o++) {
        int keep = mags[o] > t || (mags[o] == t && ties > 0);
        ties -= mags[o] == t && keep;
        kept[o] = (uint8_t)keep;
    }
}

/* mags[o] = the sum of |e - zero| over channel o's P codes; returns their total */
static int64_t et_channel_mags(const int8_t *eq, int32_t O, int32_t P, int32_t zero,
                               int32_t *mags)
{
    int64_t total = 0;
    if (P == 1) {                               /* linear: one code a channel, no call */
        int32_t t = 0;                          /* at most 255 O: an int32 */
        for (int32_t o = 0; o < O; o++) {
            int32_t d = eq[o] - zero;
            mags[o] = d < 0 ? -d : d;
            t += mags[o];
        }
        return t;
    }
    for (int32_t o = 0; o < O; o++) {
        mags[o] = et_abs_dev8(eq + o * P, P, zero);
        total += mags[o];
    }
    return total;
}

/* Trainer._select: per sample keep the top-k output channels by error magnitude (the sum of
 * |e - zero| of each channel's codes); et_centre_kept then zeroes the others' errors */
static void et_select(const et_ctx *c, et_wlayer *L, const et_tensor *e)
{
    int32_t B = c->batch, O = L->g.c_out, P = L->g.ho * L->g.wo;
    float lmin = c->cfg->lambda_min, lmax = c->cfg->lambda_max;
    for (int32_t b = 0; b < B; b++) {
        const int8_t *eq = e->q + b * O * P;
        uint8_t *kept = L->kept + b * O;
        int64_t total = et_channel_mags(eq, O, P, e->qp.zero, L->dxacc);   /* dxacc: free */
        float mean = ((float)total * e->qp.scale) / (float)(O * P);
        if (mean > L->emax[0]) L->emax[0] = mean;
        float ratio = L->emax[0] > 0.0f ? mean / L->emax[0] : 0.0f;
        float frac = lmin + ratio * (lmax - lmin);
        int64_t k = et_floor_f32(frac * (float)O);
        if (k < 1) k = 1;
        if (k >= O) {                           /* every channel kept */
            memset(kept, 1, (size_t)O);
            continue;
        }
        et_keep_top(L->dxacc, O, (int32_t)k, L->gw, kept);   /* gw: zeroed after this */
    }
}

static void et_minmax8(const int8_t *q, int32_t n, int32_t *mn, int32_t *mx);

#define ET_BOUND_BATCH 64                       /* samples whose input ranges fit the stack */
#define ET_BOUND_ROWS 128                       /* rows whose bound both passes share */

/* the largest |g| of a linear layer's weight gradient from one sample: g[o][i] is
 * e[o] * (x[i] - zero), so its largest magnitude is max|e| * max|x - zero| (O + K reads
 * instead of O * K); errors of dropped rows are zero already */
static int32_t et_outer_abs_max(const int16_t *ec, int32_t O, const int8_t *x, int32_t n,
                                int32_t zx)
{
    int32_t emax = 0, xmn = x[0], xmx = x[0];
    for (int32_t o = 0; o < O; o++) {
        int32_t a = ec[o] < 0 ? -ec[o] : ec[o];
        emax = a > emax ? a : emax;
    }
    for (int32_t i = 1; i < n; i++) {
        xmn = x[i] < xmn ? x[i] : xmn;
        xmx = x[i] > xmx ? x[i] : xmx;
    }
    xmn = zx - xmn;
    xmx = xmx - zx;
    return emax * (xmn > xmx ? xmn : xmx);      /* <= 255 * 255: no overflow */
}

/* a bound on max_i |G[o][i]| for G[o][i] = sum_b e_b[o] * (x_b[i] - zx), row o of the batch's
 * weight gradient of a linear layer (errors e_b[o] = ec[b * O]): with sample b's centred
 * inputs in [lo[b], hi[b]], each term lies in [min(e lo, e hi), max(e lo, e hi)], so G[o][i]
 * lies between the sums of those ends. |e| <= 255 and |x - zx| <= 255: a term is below 2^16,
 * and ET_BOUND_BATCH of them fit int32 */
static int32_t et_outer_bound(const int16_t *ec, int32_t O, const int16_t *lo,
                              const int16_t *hi, int32_t B)
{
    int32_t up = 0, dn = 0;
    for (int32_t b = 0; b < B; b++, ec += O) {
        int32_t a = *ec * lo[b], c = *ec * hi[b];
        up += a > c ? a : c;
        dn += a > c ? c : a;
    }
    return up > -dn ? up : -dn;
}

/* the largest |G| of a linear layer's final batch weight gradient (gw: O rows of K), exactly,
 * reading only the rows that could hold it: the row of the largest bound first, then each
 * row whose bound exceeds the largest magnitude found so far (a row at or below it cannot
 * raise it); at batch 1 directly (G = e x). Returns -1 when unknown (batches over
 * ET_BOUND_BATCH: the update scans). */
static int64_t et_grad_abs_max(const et_wlayer *L, const et_tensor *x, int32_t B)
{
    const int32_t O = L->g.c_out, K = L->g.c_in;
    int16_t lo[ET_BOUND_BATCH], hi[ET_BOUND_BATCH];
    if (B == 1) return et_outer_abs_max(L->ec, O, x->q, K, x->qp.zero);
    if (B > ET_BOUND_BATCH) return -1;
    for (int32_t b = 0; b < B; b++) {           /* sample b's centred input range */
        int32_t mn, mx;
        et_minmax8(x->q + b * x->n, K, &mn, &mx);
        lo[b] = (int16_t)(mn - x->qp.zero);
        hi[b] = (int16_t)(mx - x->qp.zero);
    }
    int32_t top = 0, top_bound = -1, bounds[ET_BOUND_ROWS];
    for (int32_t o = 0; o < O; o++) {
        int32_t u = et_outer_bound(L->ec + o, O, lo, hi, B);
        if (o < ET_BOUND_ROWS) bounds[o] = u;
        if (u > top_bound) top = o, top_bound = u;
    }
    int64_t amax = et_abs_max(L->gw + top * K, K);
    for (int32_t o = 0; o < O; o++)
        if (o != top && (o < ET_BOUND_ROWS ? bounds[o] : et_outer_bound(L->ec + o, O, lo, hi, B))
                            > amax) {
            int64_t r = et_abs_max(L->gw + o * K, K);
            amax = r > amax ? r : amax;
        }
    return amax;
}

/* the sum of n int16 (modulo 2^32 as int32 adds): on M4 / M7 SMLAD adds the two halves of a
 * word, four words per LDM-sized step */
static int32_t et_sum16(const int16_t *e, int32_t n)
{
    int32_t s = 0, i = 0;
#if ET_SIMD8
    const uint32_t ones = 0x00010001u;
    for (; i + 8 <= n; i += 8) {                /* halfword aligned: one LDR per word */
        uint32_t w0, w1, w2, w3;
        memcpy(&w0, e + i, 4);
        memcpy(&w1, e + i + 2, 4);
        memcpy(&w2, e + i + 4, 4);
        memcpy(&w3, e + i + 6, 4);
        __asm("smlad %0, %1, %2, %0" : "+r"(s) : "r"(w0), "r"(ones));
        __asm("smlad %0, %1, %2, %0" : "+r"(s) : "r"(w1), "r"(ones));
        __asm("smlad %0, %1, %2, %0" : "+r"(s) : "r"(w2), "r"(ones));
        __asm("smlad %0, %1, %2, %0" : "+r"(s) : "r"(w3), "r"(ones));
    }
#endif
    for (; i < n; i++) s += e[i];
    return s;
}

/* Trainer._weight_grads: int sums over the batch (gradient scales kept for the update) */
static void et_weight_grads(const et_ctx *c, et_wlayer *L, const et_tensor *x, float s_e)
{
    int32_t B = c->batch, O = L->g.c_out, P = L->g.ho * L->g.wo, K = et_k(L);
    L->s_wgrad = s_e * L->s_x;
    L->s_bgrad = s_e;
    L->g_amax1 = 0;                             /* unknown: the update scans the gradient */
    if (L->train_w) {
        et_zero32(L->gw, O * K);
        int32_t b = 0;
        for (; !L->conv && b + 2 <= B; b += 2)  /* linear: two samples per pass */
            et_linear_bwd_w2(L->ec + b * O, O, c->cfg->partial ? L->kept + b * O : 0, O,
                             x->q + b * x->n, x->n, x->qp.zero, K, O, L->gw);
        for (; b < B; b++) {
            const uint8_t *sel = c->cfg->partial ? L->kept + b * O : 0;
            const int16_t *ec = L->ec + b * O * P;
            const int8_t *xb = x->q + b * x->n;
            if (L->conv)
                et_conv_bwd_w(&L->g, ec, sel, xb, x->qp.zero, L->gw, &L->sc_bwd);
            else
                et_linear_bwd_w(ec, sel, xb, x->qp.zero, L->g.c_in, O, L->gw);
        }
        /* linear: the exact largest |g| for the update */
        int64_t amax = L->conv ? -1 : et_grad_abs_max(L, x, B);
        if (amax >= 0 && amax < (1 << 24) - 1) L->g_amax1 = (unsigned)amax + 1u;
    }
    if (L->train_b) {                           /* dropped rows are zero: skipped */
        const uint8_t *kept = c->cfg->partial && L->train_w ? L->kept : 0;
        for (int32_t o = 0; o < O; o++) {
            int32_t s = 0;
            if (P == 1)                         /* linear: a dropped row's error is 0 */
                for (const int16_t *e = L->ec + o, *end = e + B * O; e != end; e += O) s += *e;
            else
                for (int32_t b = 0; b < B; b++)
                    if (!kept || kept[b * O + o]) s += et_sum16(L->ec + (b * O + o) * P, P);
            L->gb[o] = s;
        }
    }
}

/* channel o's errors (B rows of P at stride O * P, the rows kept[b * O + o] == 0 skipped when
 * kept is given) times m, rounding nearest: int16 pairs by an et_rqw form, or the et_rq32
 * forms; a channel of a handful of errors (linear layers) takes the requantization itself
 * (no preparation) */
static void et_fold_channel(const et_wlayer *L, int32_t o, int32_t B, const uint8_t *kept,
                            et_multiplier m)
{
    const int32_t O = L->g.c_out, P = L->g.ho * L->g.wo;
    if (B * P <= 4) {
        for (int32_t b = 0; b < B; b++)
            for (int16_t *ec = L->ec + (b * O + o) * P, *end = ec + P; ec != end; ec++)
                *ec = (int16_t)et_requantize32(*ec, m, 0, ET_ROUND_NEAREST, 0, ET_I32_MIN,
                                               ET_I32_MAX);
        return;
    }
    et_rqw h = et_rqw_prepare(m, 255, ET_ROUND_NEAREST);    /* centred codes: |e| <= 255 */
    if (h.sh && P == 1) {                       /* linear: B errors at stride O (0 stays 0) */
        for (int16_t *ec = L->ec + o, *end = ec + B * O; ec != end; ec += O)
            *ec = (int16_t)et_rqw_one(&h, *ec);
        return;
    }
    if (h.sh) {
        for (int32_t b = 0; b < B; b++)
            if (!kept || kept[b * O + o]) et_rqw_span(L->ec + (b * O + o) * P, P, &h);
        return;
    }
    et_rq32 r = et_rq32_prepare(m, 16);         /* int16 errors; the result fits int16 */
    for (int32_t b = 0; b < B; b++) {
        int16_t *ec = L->ec + (b * O + o) * P;
        if (kept && !kept[b * O + o]) continue;
        for (int32_t p = 0; p < P; p++)
            ec[p] = r.fast ? (int16_t)et_rq32_shift_small(&r, ec[p], ET_ROUND_NEAREST, 0u)
                           : (int16_t)et_requantize32(ec[p], m, 0, ET_ROUND_NEAREST, 0,
                                                      ET_I32_MIN, ET_I32_MAX);
    }
}

/* channel o is kept for some sample (kept: NULL when every channel is) */
static int et_kept_by_any(const uint8_t *kept, int32_t B, int32_t O, int32_t o)
{
    if (!kept) return 1;
    for (int32_t b = 0; b < B; b++)
        if (kept[b * O + o]) return 1;
    return 0;
}

/* Trainer._error_source: per-channel weight scales folded into int16 errors; the rows a partial
 * update dropped are zero, and stay zero (every form rounds 0 to 0), so they are skipped */
static float et_error_source(const et_ctx *c, et_wlayer *L, float s_e)
{
    int32_t O = L->g.c_out;
    const uint8_t *kept = c->cfg->partial && L->train_w ? L->kept : 0;
    if (!c->cfg->weight_channels)
        return s_e * L->w_scale[0];
    float s_max = L->w_scale[0];
    for (int32_t o = 1; o < O; o++) s_max = et_maxf(s_max, L->w_scale[o]);
    for (int32_t o = 0; o < O; o++)
        if (et_kept_by_any(kept, c->batch, O, o))   /* else its errors are zero: they stay */
            et_fold_channel(L, o, c->batch, kept,
                            et_multiplier_from((L->w_scale[o] / s_max) * ET_CHANNEL_FRACTION));
    return (s_e * s_max) / ET_CHANNEL_FRACTION;
}

/* ec = eq - ze as int16. On M4 / M7 SXTAB16 takes a word's even and odd codes as two int16
 * pairs and adds -ze to each (the differences, |d| <= 255, are the int16 sums), PKHBT / PKHTB
 * put them back in order: eight codes per LDRD and two STRD when both arrays are word aligned
 * (13 instructions), else four per LDR */
static void et_centre_errors(const int8_t *eq, int32_t ze, int32_t n, int16_t *ec)
{
    int32_t i = 0;
#if ET_SIMD8
    const uint32_t nz = (uint32_t)(uint16_t)(-ze) * 0x00010001u;
    uint32_t v, w, ev, od, a, b, c, d;
#define ET_CENTRE4(v, lo, hi)                                                              \
    __asm("sxtab16 %0, %1, %2" : "=r"(ev) : "r"(nz), "r"(v));                 /* 0, 2 */    \
    __asm("sxtab16 %0, %1, %2, ror #8" : "=r"(od) : "r"(nz), "r"(v));         /* 1, 3 */    \
    __asm("pkhbt %0, %1, %2, lsl #16" : "=r"(lo) : "r"(ev), "r"(od));         /* 0, 1 */    \
    __asm("pkhtb %0, %1, %2, asr #16" : "=r"(hi) : "r"(od), "r"(ev))          /* 2, 3 */
    if ((((uintptr_t)eq | (uintptr_t)ec) & 3u) == 0)
        for (; i + 8 <= n; i += 8) {
            __asm("ldrd %0, %1, [%2]" : "=&r"(v), "=&r"(w) : "r"(eq + i),
                  "m"(*(const uint32_t(*)[2])(eq + i)));
            ET_CENTRE4(v, a, b);
            ET_CENTRE4(w, c, d);
            __asm("strd %1, %2, [%0]" : : "r"(ec + i), "r"(a), "r"(b) : "memory");
            __asm("strd %1, %2, [%0, #8]" : : "r"(ec + i), "r"(c), "r"(d) : "memory");
        }
    for (; i + 4 <= n; i += 4) {
        memcpy(&v, eq + i, 4);
        ET_CENTRE4(v, a, b);
        memcpy(ec + i, &a, 4);
        memcpy(ec + i + 2, &b, 4);
    }
#undef ET_CENTRE4
#endif
    for (; i < n; i++) ec[i] = (int16_t)(eq[i] - ze);
}

/* the centred errors of the kept channels (et_centre_errors over each run of them), those of
 * the dropped ones zero (a dropped channel's codes are never centred) */
static void et_centre_kept(const et_wlayer *L, int32_t B, const et_tensor *e)
{
    const int32_t O = L->g.c_out, P = L->g.ho * L->g.wo;
    if (P == 1) {                               /* one error a channel (linear): no runs */
        const int8_t *q = e->q;                 /* locals: the int16 stores alias them */
        const uint8_t *kept = L->kept;
        const int32_t ze = e->qp.zero;
        int16_t *ec = L->ec;
        for (int32_t i = 0; i < B * O; i++) ec[i] = (int16_t)(kept[i] ? q[i] - ze : 0);
        return;
    }
    for (int32_t b = 0; b < B; b++) {
        const uint8_t *kept = L->kept + b * O;
        int32_t o = 0;
        while (o < O) {
            int32_t end = o, first = (b * O + o) * P;
            while (end < O && kept[end] == kept[o]) end++;
            if (kept[o])
                et_centre_errors(e->q + first, e->qp.zero, (end - o) * P, L->ec + first);
            else
                memset(L->ec + first, 0, (size_t)((end - o) * P) * sizeof *L->ec);
            o = end;
        }
    }
}

/* Trainer._bwd_weight_q */
void et_bwd_weight(const et_ctx *c, et_wlayer *L, const et_tensor *x, const et_tensor *e,
                   et_tensor *dx)
{
    int32_t B = c->batch, ny = et_out_per_sample(L), nx = et_in_per_sample(L);
    if (c->cfg->partial && L->train_w) {
        et_select(c, L, e);
        et_centre_kept(L, B, e);
    } else {
        et_centre_errors(e->q, e->qp.zero, B * ny, L->ec);
    }
    if (L->train_w || L->train_b) et_weight_grads(c, L, x, e->qp.scale);
    if (!L->want_dx) return;
    float s_src = et_error_source(c, L, e->qp.scale);
    int32_t mn = ET_I32_MAX, mx = ET_I32_MIN;
    for (int32_t b = 0; b < B; b++) {
        const uint8_t *sel = c->cfg->partial && L->train_w ? L->kept + b * L->g.c_out : 0;
        int32_t *acc = L->dxacc + b * nx;
        if (L->conv)
            et_conv_bwd_in(&L->g, L->ec + b * ny, sel, L->w, L->w_zero, acc, &L->sc_bwd);
        else
            et_linear_bwd_in(L->ec + b * ny, sel, L->w, L->w_zero, L->g.c_in, L->g.c_out, acc);
        et_minmax_update(acc, nx, &mn, &mx);
    }
    dx->qp = et_tracked_qparams(c, L->dx_range, (float)mn * s_src, (float)mx * s_src,
                                c->cfg->rate_error, 1);
    et_multiplier m = et_multiplier_from(s_src / dx->qp.scale);
    const int mode = c->cfg->round_backward;
    const int32_t *acc = L->dxacc, zero = dx->qp.zero;
    int8_t *dq = dx->q;
    uint32_t base = et_call_base(c, mode);
    et_requant_rows(acc, 1, 0, 0, dq, B * nx, m, zero, mode, base, 0u, et_abs_bound(mn, mx));
}

/* ----------------------------------------------------------- integer ops */


#if ET_SIMD8
/* eight int8 codes as two words from p (word aligned) by one LDRD, p advanced; stored alike */
ET_ALWAYS_INLINE void et_load8_next(const int8_t **p, uint32_t *a, uint32_t *b)
{
    __asm("ldrd %0, %1, [%2], #8" : "=&r"(*a), "=&r"(*b), "+r"(*p)
          : "m"(*(const uint32_t(*)[2]) * p));
}
ET_ALWAYS_INLINE void et_store8_next(int8_t **p, uint32_t a, uint32_t b)
{
    __asm volatile("strd %1, %2, [%0], #8" : "+r"(*p) : "r"(a), "r"(b) : "memory");
}
#define ET_WORD_ALIGNED(p) (((uintptr_t)(p) & 3u) == 0)
#endif

/* y = min(max(x, zero), qmax) per element (relu / relu6 on int8 codes); y may be x */
static void et_relu_span(const int8_t *x, int8_t *y, int32_t n, int32_t zero, int32_t qmax)
{
    int32_t i = 0;
#if ET_SIMD8
    const uint32_t zb = et_splat8(zero), qb = et_splat8(qmax);
    if (ET_WORD_ALIGNED(x) && ET_WORD_ALIGNED(y)) {   /* eight a turn by LDRD / STRD */
        const int8_t *xp = x, *end = x + (n & ~7);
        int8_t *yp = y;
        while (xp != end) {
            uint32_t v0, v1;
            et_load8_next(&xp, &v0, &v1);
            v0 = et_sel_ge8(v0, zb, v0, zb);
            v1 = et_sel_ge8(v1, zb, v1, zb);
            et_store8_next(&yp, et_sel_ge8(v0, qb, qb, v0), et_sel_ge8(v1, qb, qb, v1));
        }
        i = n & ~7;
    }
    for (; i + 4 <= n; i += 4) {
        uint32_t v;
        memcpy(&v, x + i, 4);
        v = et_sel_ge8(v, zb, v, zb);           /* max(v, zero) */
        v = et_sel_ge8(v, qb, qb, v);           /* min(v, qmax) */
        memcpy(y + i, &v, 4);
    }
#endif
    for (; i < n; i++) {
        int32_t v = x[i] < zero ? zero : x[i];
        y[i] = (int8_t)(v > qmax ? qmax : v);
    }
}

/* d = lo < y < hi ? e : ze per element (the error passes where the activation is live) */
static void et_mask_span(const int8_t *y, const int8_t *e, int8_t *d, int32_t n, int32_t lo,
                         int32_t hi, int32_t ze)
{
    int32_t i = 0;
#if ET_SIMD8
    if (lo < 127 && hi > -128) {                /* lo + 1 and hi - 1 are int8 */
        const uint32_t lob = et_splat8(lo + 1), hib = et_splat8(hi - 1), zb = et_splat8(ze);
        if (ET_WORD_ALIGNED(y) && ET_WORD_ALIGNED(e) && ET_WORD_ALIGNED(d)) {
            const int8_t *yp = y, *ep = e, *end = y + (n & ~7);
            int8_t *dp = d;
            while (yp != end) {                 /* eight a turn by LDRD / STRD */
                uint32_t y0, y1, e0, e1;
                et_load8_next(&yp, &y0, &y1);
                et_load8_next(&ep, &e0, &e1);
                e0 = et_sel_ge8(hib, y0, et_sel_ge8(y0, lob, e0, zb), zb);
                e1 = et_sel_ge8(hib, y1, et_sel_ge8(y1, lob, e1, zb), zb);
                et_store8_next(&dp, e0, e1);
            }
            i = n & ~7;
        }
        for (; i + 4 <= n; i += 4) {
            uint32_t yv, ev;
            memcpy(&yv, y + i, 4);
            memcpy(&ev, e + i, 4);
            ev = et_sel_ge8(yv, lob, ev, zb);   /* y >= lo + 1 */
            ev = et_sel_ge8(hib, yv, ev, zb);   /* y <= hi - 1 */
            memcpy(d + i, &ev, 4);
        }
    }
#endif
    for (; i < n; i++)
        d[i] = (int8_t)(y[i] > lo && y[i] < hi ? e[i] : ze);
}

/* Trainer._fwd_int_q's qmax of relu6: min(127, z + nearest(min(6 / s, 255))); the clamp at
 * 255 keeps 6 / s inside the rounding range when a collapsed range gives s = 2^-40 */
int32_t et_relu6_qmax(const et_qparams *qp)
{
    float six = et_minf(6.0f / qp->scale, 255.0f);
    int64_t q = qp->zero + et_round_f32(six, ET_ROUND_NEAREST, 0);
    return q < 127 ? (int32_t)q : 127;
}

/* Trainer._fwd_int_q */
void et_fwd_int(const et_ctx *c, const et_intop *op, const et_tensor *x, et_tensor *y)
{
    int32_t B = c->batch, zero = x->qp.zero;
    y->qp = x->qp;
    if (op->kind == ET_RELU || op->kind == ET_RELU6) {
        int32_t qmax = op->kind == ET_RELU6 ? et_relu6_qmax(&x->qp) : 127;
        et_relu_span(x->q, y->q, x->n * B, zero, qmax);
    } else if (op->kind == ET_MAXPOOL) {
        for (int32_t b = 0; b < B; b++) et_maxpool_fwd(&op->g, x->q + b * x->n, y->q + b * y->n);
    } else if (op->kind == ET_AVGPOOL || op->kind == ET_GAP) {
        uint32_t base = et_call_base(c, c->cfg->round_forward);
        for (int32_t b = 0; b < B; b++) {
            if (op->kind == ET_AVGPOOL)
                et_avgpool_fwd(&op->g, x->q + b * x->n, zero, c->cfg->round_forward, base,
                               (uint32_t)(b * y->n), y->q + b * y->n);
            else
                et_gap_fwd(x->q + b * x->n, op->g.c, op->g.w, zero, c->cfg->round_forward,
                           base, (uint32_t)(b * y->n), y->q + b * y->n);
        }
    } else if (y->q != x->q) {                   /* flatten: the same codes */
        for (int32_t i = 0; i < x->n * B; i++) y->q[i] = x->q[i];
    }
    et_trace_tensor(y, B);
}

/* c[i] = q[i] - zero as int32 */
static void et_centre32(const int8_t *q, int32_t n, int32_t zero, int32_t *c)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        int32_t q0 = q[i], q1 = q[i + 1], q2 = q[i + 2], q3 = q[i + 3];
        c[i] = q0 - zero;
        c[i + 1] = q1 - zero;
        c[i + 2] = q2 - zero;
        c[i + 3] = q3 - zero;
    }
    for (; i < n; i++) c[i] = q[i] - zero;
}

/* saturate8(v + zero); on M4 / M7 QADD saturates the sum to int32 first, which keeps its
 * sign, so the SSAT to int8 that follows gives the exact sum's saturation */
ET_ALWAYS_INLINE int32_t et_add_sat8(int32_t v, int32_t zero)
{
#if ET_SIMD8
    int32_t t;
    __asm("qadd %0, %1, %2" : "=r"(t) : "r"(v), "r"(zero));
    return et_ssat8(t);
#else
    return et_sat((int64_t)v + zero, ET_QMIN, ET_QMAX);
#endif
}

/* d[i] = saturate8(v[i] + zero) */
static void et_codes_of(const int32_t *v, int32_t n, int32_t zero, int8_t *d)
{
    const int32_t *end4 = v + (n & ~3);
    while (v != end4) {
        int32_t a[4];
        et_load4_next(&v, a);
        et_store4_next(&d, et_add_sat8(a[0], zero), et_add_sat8(a[1], zero),
                       et_add_sat8(a[2], zero), et_add_sat8(a[3], zero));
    }
    for (int32_t i = 0; i < (n & 3); i++) d[i] = (int8_t)et_add_sat8(v[i], zero);
}

/* Trainer._bwd_int_q: centred errors through the op's integer backward, then saturated */
void et_bwd_int(const et_ctx *c, const et_intop *op, const et_tensor *x, const et_tensor *y,
                const et_tensor *e, et_tensor *dx)
{
    int32_t B = c->batch, ze = e->qp.zero, divisor = 1;
    int32_t qmax = op->kind == ET_RELU6 ? et_relu6_qmax(&x->qp) : 127;
    for (int32_t b = 0; b < B; b++) {
        const int8_t *eb = e->q + b * e->n, *yb = y->q + b * y->n, *xb = x->q + b * x->n;
        int8_t *db = dx->q + b * dx->n;
        if (op->kind == ET_RELU || op->kind == ET_RELU6 || op->kind == ET_FLATTEN) {
            /* the error passes where lo < y < hi: relu y > zero, relu6 also y < qmax */
            const int32_t lo = op->kind == ET_FLATTEN ? -129 : x->qp.zero;
            const int32_t hi = op->kind == ET_RELU6 ? qmax : 128;
            et_mask_span(yb, eb, db, e->n, lo, hi, ze);
            continue;
        }
        int32_t *ein = op->e32, *eout = op->e32 + e->n;
        et_centre32(eb, e->n, ze, ein);
        if (op->kind == ET_MAXPOOL) {
            et_maxpool_bwd(&op->g, xb, yb, ein, eout);
        } else if (op->kind == ET_AVGPOOL) {
            et_avgpool_bwd(&op->g, ein, eout);
            divisor = op->g.kh * op->g.kw;
        } else {
            et_gap_bwd(ein, op->g.c, op->g.w, eout);
            divisor = op->g.w;
        }
        et_codes_of(eout, dx->n, ze, db);
    }
    dx->qp.scale = divisor != 1 ? e->qp.scale / (float)divisor : e->qp.scale;
    dx->qp.zero = ze;
}

/* ------------------------------------------------------------ add and merge */

static void et_minmax32(const int32_t *r, int32_t n, int32_t *mn, int32_t *mx)
{
    *mn = ET_I32_MAX;
    *mx = ET_I32_MIN;
    et_minmax_update(r, n, mn, mx);
}

/* r[i] += requantize(q[i] - zero, M, 0, mode) with the fast form (|q - zero| <= 255, M < 128:
 * each term is below 2^15 in magnitude, so neither it nor the sum of a few saturates) */
static inline void et_requantized_add(const et_tensor *t, const et_rq32 *rq, int32_t count,
                                      et_round_mode mode, uint32_t base, int32_t *r)
{
    const int8_t *q = t->q;
    const int32_t zero = t->qp.zero;
    for (int32_t i = 0; i < count; i++)
        r[i] += et_rq32_shift_small(rq, (int32_t)q[i] - zero, mode,
                                    et_bits_for(mode, base, (uint32_t)i));
}

static void et_requantized_add_mode(const et_tensor *t, const et_rq32 *rq, int32_t count,
                                    int mode, uint32_t base, int32_t *r)
{
    switch (mode) {
    case ET_ROUND_FLOOR: et_requantized_add(t, rq, count, ET_ROUND_FLOOR, base, r); break;
    case ET_ROUND_NEAREST: et_requantized_add(t, rq, count, ET_ROUND_NEAREST, base, r); break;
    default: et_requantized_add(t, rq, count, (et_round_mode)mode, base, r); break;
    }
}

/* r[i] += round(e[i] * M) for e[i] = q[i] - zero by an et_rqw form (sh a constant): on M4 / M7
 * SXTB16 splits a word's codes into two int16 pairs, SSUB16 centres them, SMLAWB / SMLAWT
 * multiply each lane, and the shift by sh rides on the ADD */
ET_ALWAYS_INLINE void et_rqw_add_span(const int8_t *q, int32_t zero, int32_t n, const et_rqw *h,
                                      int sh, int set, int32_t *r)
{
    int32_t i = 0;
#if ET_SIMD8
    const uint32_t zz = (uint32_t)(uint16_t)zero * 0x00010001u;
    const int32_t m = h->m, ra = h->ra;
    for (; i + 4 <= n; i += 4) {
        uint32_t v, ev, od;
        int32_t t0, t1, t2, t3;
        memcpy(&v, q + i, 4);
        __asm("sxtb16 %0, %1" : "=r"(ev) : "r"(v));              /* codes 0, 2 */
        __asm("sxtb16 %0, %1, ror #8" : "=r"(od) : "r"(v));      /* codes 1, 3 */
        __asm("ssub16 %0, %1, %2" : "=r"(ev) : "r"(ev), "r"(zz));
        __asm("ssub16 %0, %1, %2" : "=r"(od) : "r"(od), "r"(zz));
        __asm("smlawb %0, %1, %2, %3" : "=r"(t0) : "r"(m), "r"(ev), "r"(ra));
        __asm("smlawb %0, %1, %2, %3" : "=r"(t1) : "r"(m), "r"(od), "r"(ra));
        __asm("smlawt %0, %1, %2, %3" : "=r"(t2) : "r"(m), "r"(ev), "r"(ra));
        __asm("smlawt %0, %1, %2, %3" : "=r"(t3) : "r"(m), "r"(od), "r"(ra));
        if (set) {
            r[i] = et_asr32(t0, sh);
            r[i + 1] = et_asr32(t1, sh);
            r[i + 2] = et_asr32(t2, sh);
            r[i + 3] = et_asr32(t3, sh);
        } else {
            r[i] += et_asr32(t0, sh);
            r[i + 1] += et_asr32(t1, sh);
            r[i + 2] += et_asr32(t2, sh);
            r[i + 3] += et_asr32(t3, sh);
        }
    }
#endif
    for (; i < n; i++) {
        int32_t v = et_asr32(h->ra + (int32_t)et_asr64((int64_t)h->m * (q[i] - zero), 16), sh);
        r[i] = set ? v : r[i] + v;
    }
}

/* r[i] (+)= the terms of t: `set` writes them (the first part of a sum), else adds */
static void et_rqw_add(const et_tensor *t, const et_rqw *h, int32_t count, int set, int32_t *r)
{
    if (h->sh == 8 && set)
        et_rqw_add_span(t->q, t->qp.zero, count, h, 8, 1, r);
    else if (h->sh == 8)
        et_rqw_add_span(t->q, t->qp.zero, count, h, 8, 0, r);
    else if (set)
        et_rqw_add_span(t->q, t->qp.zero, count, h, 16, 1, r);
    else
        et_rqw_add_span(t->q, t->qp.zero, count, h, 16, 0, r);
}

/* sum over parts of requantize(q - zero, s_part / s_out, 0, mode) into r (one call each) */
static void et_requantized_sum(const et_ctx *c, const et_tensor *const *parts, int n, float s_out,
                               int mode, int32_t count, int32_t *r)
{
    for (int p = 0; p < n; p++) {
        const et_tensor *t = parts[p];
        et_multiplier m = et_multiplier_from(t->qp.scale / s_out);
        uint32_t base = et_call_base(c, mode);
        et_rqw h = et_rqw_prepare(m, 255, (et_round_mode)mode);   /* |q - zero| <= 255 */
        if (h.sh && n <= 256) {                 /* terms below 2^15: the sum fits */
            et_rqw_add(t, &h, count, p == 0, r);   /* the first part writes */
            continue;
        }
        if (p == 0) et_zero32(r, count);
        et_rq32 rq = et_rq32_prepare(m, 8);     /* |q - zero| < 2^8 */
        if (rq.fast && n <= 256) {
            et_requantized_add_mode(t, &rq, count, mode, base, r);
            continue;
        }
        for (int32_t i = 0; i < count; i++) {
            int64_t v = (int64_t)r[i] + et_requantize((int64_t)t->q[i] - t->qp.zero, m, 0,
                                                      (et_round_mode)mode,
                                                      et_bits_for(mode, base, (uint32_t)i),
                                                      ET_I32_MIN,
                                                      ET_I32_MAX);
            r[i] = et_sat(v, ET_I32_MIN, ET_I32_MAX);
        }
    }
}

/* Trainer._fwd_add_q */
void et_fwd_add(const et_ctx *c, et_range *a_range, float clamp_lo, float clamp_hi,
                const et_tensor *a, const et_tensor *b, et_tensor *y, int32_t *scratch,
                int observe)
{
    int32_t count = a->n * c->batch, mn, mx;
    const et_tensor *parts[2] = {a, b};
    et_qparams qp = et_range_qparams(a_range, 0, c->cfg->pow2);
    et_requantized_sum(c, parts, 2, qp.scale, c->cfg->round_forward, count, scratch);
    et_minmax32(scratch, count, &mn, &mx);
    float lo = et_clipf((float)mn * qp.scale, clamp_lo, clamp_hi);
    float hi = et_clipf((float)mx * qp.scale, clamp_lo, clamp_hi);
    (void)et_tracked_qparams(c, a_range, lo, hi, c->cfg->rate_activation, observe);
    et_codes_of(scratch, count, qp.zero, y->q);
    y->qp = qp;
    et_trace_tensor(y, c->batch);
}

/* min / max of n int8 codes (127 / -128 when n = 0): four lanes per word on M4 / M7 */
static void et_minmax8(const int8_t *q, int32_t n, int32_t *mn, int32_t *mx)
{
    int32_t lo = 127, hi = -128, i = 0;
#if ET_SIMD8
    uint32_t lo4 = et_splat8(127), hi4 = et_splat8(-128);
    for (; i + 4 <= n; i += 4) {
        uint32_t v;
        memcpy(&v, q + i, 4);
        lo4 = et_sel_ge8(v, lo4, lo4, v);       /* per lane min(v, lo) */
        hi4 = et_sel_ge8(v, hi4, v, hi4);       /* per lane max(v, hi) */
    }
    for (int k = 0; k < 32; k += 8) {
        int32_t l = (int8_t)(lo4 >> k), h = (int8_t)(hi4 >> k);
        lo = l < lo ? l : lo;
        hi = h > hi ? h : hi;
    }
#endif
    for (; i < n; i++) {
        lo = q[i] < lo ? q[i] : lo;
        hi = q[i] > hi ? q[i] : hi;
    }
    *mn = lo;
    *mx = hi;
}

/* Trainer._merge_q */
void et_merge_errors(const et_ctx *c, et_range *em, const et_tensor *const *parts, int n,
                     et_tensor *out, int32_t *scratch)
{
    int32_t count = out->n * c->batch, mn, mx;
    float bound_lo = 0.0f, bound_hi = 0.0f;
    for (int p = 0; p < n; p++) {
        int32_t qmn, qmx;
        et_minmax8(parts[p]->q, count, &qmn, &qmx);
        bound_lo += (float)(qmn - parts[p]->qp.zero) * parts[p]->qp.scale;
        bound_hi += (float)(qmx - parts[p]->qp.zero) * parts[p]->qp.scale;
    }
    if (!em->seen) et_range_observe(em, bound_lo, bound_hi, c->cfg->rate_error);
    et_qparams qp = et_range_qparams(em, 0, c->cfg->pow2);
    et_requantized_sum(c, parts, n, qp.scale, c->cfg->round_backward, count, scratch);
    et_minmax32(scratch, count, &mn, &mx);
    et_defer(em, (float)mn * qp.scale, (float)mx * qp.scale, c->cfg->rate_error);
    et_codes_of(scratch, count, qp.zero, out->q);
    out->qp = qp;
}

/* ----------------------------------------------------------------------- loss */

/* Trainer._loss_error (int8): fixed-point softmax cross-entropy gradient, requantized */
int64_t et_loss_error(const et_ctx *c, const et_tensor *logits, const int32_t *labels,
                      et_range *e_range, et_tensor *e, int64_t *grad, int64_t *exps)
{
    int32_t B = c->batch, K = logits->n;
    int64_t loss = 0, mn = INT64_MAX, mx = INT64_MIN;
    for (int32_t b = 0; b < B; b++) {
        loss += et_softmax_ce_q30(logits->q + b * K, K, logits->qp.scale, labels[b],
                                  grad + b * K, exps);
        for (int32_t i = 0; i < K; i++) {
            if (grad[b * K + i] < mn) mn = grad[b * K + i];
            if (grad[b * K + i] > mx) mx = grad[b * K + i];
        }
    }
    e->qp = et_tracked_qparams(c, e_range, (float)mn * ET_Q30, (float)mx * ET_Q30,
                               c->cfg->rate_error, 1);
    et_multiplier m = et_multiplier_from(ET_Q30 / e->qp.scale);
    uint32_t base = et_call_base(c, c->cfg->round_backward);
    for (int32_t i = 0; i < B * K; i++)
        e->q[i] = (int8_t)et_requantize(grad[i], m, e->qp.zero,
                                        (et_round_mode)c->cfg->round_backward,
                                        et_bits_for(c->cfg->round_backward, base,
                                                    (uint32_t)i), ET_QMIN, ET_QMAX);
    return loss;
}

void et_trace_as(const et_tensor *t, uint16_t id, int32_t batch)
{
    (void)t;
    (void)id;
    (void)batch;
    ET_TRACE_T(id, t->q, (uint32_t)(t->n * batch));
    ET_TRACE_T(id + 1, &t->qp.scale, 4);
    ET_TRACE_T(id + 2, &t->qp.zero, 4);
}
