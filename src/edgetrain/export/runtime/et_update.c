/* edgetrain int8 training engine, the in-place update (Trainer._update_layer and what it
 * calls in edgetrain/engine/int8.py; docs/numerics.md section 9) */
#include "et_engine.h"
#include "et_internal.h"

#include <math.h>
#include <string.h>

/* Cortex-M4/M7 (FPU and DSP instructions): the hot loops below written with VCVTR, VLDM/VSTM,
 * SMLAL/SMLAD and QSUB; elsewhere, or with ET_NO_SIMD, plain C giving the same numbers */
#if defined(__ARM_FP) && defined(__ARM_FEATURE_DSP) && !defined(ET_NO_SIMD)
#define ET_UPD_ASM 1
#else
#define ET_UPD_ASM 0
#endif


#if ET_UPD_ASM
/* one element of et_abs_max_quads: new only when (uint32)(x - mn) > (uint32)(mx - mn) */
#define ET_RANGE_TEST_ASM(x, N)                                                               \
    "sub %[t], " x ", %[mn]\n\t"                                                             \
    "cmp %[t], %[rg]\n\t"                                                                    \
    "bhi " N "1f\n"                                                                          \
    N "2:\n\t"
#define ET_RANGE_MOVE_ASM(x, N)                                                               \
    N "1:\n\t"                                                                               \
    "cmp " x ", %[mn]\n\t"                                                                   \
    "ite lt\n\t"                                                                             \
    "movlt %[mn], " x "\n\t"                                                                 \
    "movge %[mx], " x "\n\t"                                                                 \
    "sub %[rg], %[mx], %[mn]\n\t"                                                            \
    "b " N "2b\n"

/* the min and max (starting from mn <= mx) of q quads at g: four per LDM, each element by
 * the unsigned range test (x in [mn, mx] exactly when the wrapped difference x - mn is at
 * most mx - mn, for every int32 x when mn <= mx), one SUB, one CMP and a branch that is
 * rarely taken; 15 instructions per 4 */
static void et_min_max_quads(const int32_t *g, int32_t q, int32_t *mn_io, int32_t *mx_io)
{
    int32_t mn = *mn_io, mx = *mx_io, t;
    uint32_t rg = (uint32_t)mx - (uint32_t)mn;
    __asm volatile("0:\n\t"
                   "ldmia %[g]!, {r2-r5}\n\t"
                   ET_RANGE_TEST_ASM("r2", "1")
                   ET_RANGE_TEST_ASM("r3", "2")
                   ET_RANGE_TEST_ASM("r4", "3")
                   ET_RANGE_TEST_ASM("r5", "4")
                   "subs %[q], %[q], #1\n\t"
                   "bne 0b\n\t"
                   "b 9f\n"
                   ET_RANGE_MOVE_ASM("r2", "1")
                   ET_RANGE_MOVE_ASM("r3", "2")
                   ET_RANGE_MOVE_ASM("r4", "3")
                   ET_RANGE_MOVE_ASM("r5", "4")
                   "9:"
                   : [g] "+r"(g), [q] "+r"(q), [mn] "+r"(mn), [mx] "+r"(mx), [rg] "+r"(rg),
                     [t] "=&r"(t)
                   :
                   : "r2", "r3", "r4", "r5", "cc", "memory");
    *mn_io = mn;
    *mx_io = mx;
}
#endif

/* the largest |g| of n values (|INT32_MIN| read as INT32_MAX) */
int32_t et_abs_max(const int32_t *g, int32_t n)
{
    int32_t mn = 0, mx = 0, i = 0;
#if ET_UPD_ASM
    if (n >= 4) et_min_max_quads(g, n >> 2, &mn, &mx);
    i = n & ~3;
#endif
    for (; i + 4 <= n; i += 4) {                /* unrolled: the loop test once per 4 */
        int32_t a = g[i], b = g[i + 1], c = g[i + 2], d = g[i + 3];
        mn = a < mn ? a : mn;
        mx = a > mx ? a : mx;
        mn = b < mn ? b : mn;
        mx = b > mx ? b : mx;
        mn = c < mn ? c : mn;
        mx = c > mx ? c : mx;
        mn = d < mn ? d : mn;
        mx = d > mx ? d : mx;
    }
    for (; i < n; i++) {
        mn = g[i] < mn ? g[i] : mn;
        mx = g[i] > mx ? g[i] : mx;
    }
    mn = mn == ET_I32_MIN ? ET_I32_MAX : -mn;
    return mx > mn ? mx : mn;
}

/* the largest |g| of the rows kept (all rows when kept is null) of a rows x k gradient: the
 * rows no sample kept are all zeros (see et_standardize_rows), so they cannot raise it */
static int32_t et_kept_abs_max(const int32_t *g, int32_t rows, int32_t k, const uint8_t *kept)
{
    if (!kept) return et_abs_max(g, rows * k);
    int32_t amax = 0;
    for (int32_t r = 0; r < rows; r++) {
        int32_t a = kept[r] ? et_abs_max(g + r * k, k) : 0;
        amax = a > amax ? a : amax;
    }
    return amax;
}

/* one row of int32 gradient sums requantized into int8 codes in place (et_requantize per
 * element, the rounding mode a constant at each call site so the loop is specialized);
 * returns the sums of the codes and of their squares (|q| <= 128: int32 sums are exact) */
static inline void et_gradient_row(int32_t *gr, int32_t k, et_multiplier m, et_round_mode mode,
                                   uint32_t base, uint32_t j0, int32_t *s1, int32_t *s2)
{
    int32_t a = 0, b = 0;
    et_rq32 r = et_rq32_prepare(m, 31);
    if (r.fast) {                               /* one SMLAL and one SSAT per element */
        for (int32_t i = 0; i < k; i++) {
            int32_t q = et_ssat8(et_rq32_shift(&r, gr[i], mode,
                                               et_bits_for(mode, base, j0 + (uint32_t)i)));
            gr[i] = q;
            a += q;
            b += q * q;
        }
    } else {
        for (int32_t i = 0; i < k; i++) {
            int32_t q = et_requantize32(gr[i], m, 0, mode,
                                        et_bits_for(mode, base, j0 + (uint32_t)i), ET_QMIN,
                                        ET_QMAX);
            gr[i] = q;
            a += q;
            b += q * q;
        }
    }
    *s1 = a;
    *s2 = b;
}

#if ET_UPD_ASM
/* et_gradient_row's fast path for floor and nearest on ARMv7E-M, two elements per turn. V's
 * rounding term (et_rq32_term) takes no 64-bit add: floor's is 0; nearest's is 2^(s-1) +
 * (acc >> 31), which for s = 32 (sh == 0, every multiplier shift <= 32) is the low word
 * 2^31 + (acc >> 31) (no carry: 2^31 - 1 or 2^31) under a high word 0, and for s >= 33 the
 * low word acc >> 31 under the high word 2^(s-33) + (acc >> 31). One SMLAL adds acc * m; with
 * sh == 0 the result is V's high word itself. The sums take the pair packed as two int16
 * (|q| <= 128) in two SMLADs. shifted: sh >= 1 (a constant at each call). */
static inline void et_gradient_pairs(int32_t *gr, int32_t k, const et_rq32 *r,
                                     et_round_mode mode, int shifted, int32_t *s1,
                                     int32_t *s2)
{
    const int32_t m = r->m, sh = r->sh, ones = 0x00010001;
    const uint32_t half_lo = shifted ? 0u : 0x80000000u;   /* unsigned: the sum wraps */
    const int32_t half_hi = shifted ? et_hi32(r->half) : 0;
    const int near = mode == ET_ROUND_NEAREST;
    int32_t a = 0, b = 0, i = 0;
    for (; i + 2 <= k; i += 2) {
        int32_t x0 = gr[i], x1 = gr[i + 1], p, h0, h1;
        if (near) {
            uint32_t l0 = half_lo + (uint32_t)et_asr32(x0, 31);
            uint32_t l1 = half_lo + (uint32_t)et_asr32(x1, 31);
            h0 = shifted ? half_hi + et_asr32(x0, 31) : 0;
            h1 = shifted ? half_hi + et_asr32(x1, 31) : 0;
            __asm("smlal %0, %1, %2, %3" : "+r"(l0), "+r"(h0) : "r"(x0), "r"(m));
            __asm("smlal %0, %1, %2, %3" : "+r"(l1), "+r"(h1) : "r"(x1), "r"(m));
        } else {                                /* floor: V = acc * m, one SMULL */
            h0 = et_hi32((int64_t)x0 * m);
            h1 = et_hi32((int64_t)x1 * m);
        }
        x0 = et_ssat8(shifted ? h0 >> sh : h0);
        x1 = et_ssat8(shifted ? h1 >> sh : h1);
        gr[i] = x0;
        gr[i + 1] = x1;
        __asm("pkhbt %0, %1, %2, lsl #16" : "=r"(p) : "r"(x0), "r"(x1));
        __asm("smlad %0, %1, %2, %0" : "+r"(a) : "r"(p), "r"(ones));
        __asm("smlad %0, %1, %1, %0" : "+r"(b) : "r"(p));
    }
    if (i < k) {
        int32_t q = et_ssat8(et_rq32_shift(r, gr[i], mode, 0u));
        gr[i] = q;
        a += q;
        b += q * q;
    }
    *s1 = a;
    *s2 = b;
}

/* the same for s = 32 (sh == 0), written out: LDRD / STRD with the pointer's post-increment,
 * the nearest term as one ADD with a shifted operand (2^31 + (acc >> 31)), SMLAL (floor:
 * SMULL), SSAT of the high word; 15 instructions per pair */
#define ET_GRADIENT_PAIR_ASM(product)                                                         \
    "ldrd %[x0], %[x1], [%[g]]\n\t" product                                                  \
    "ssat %[x0], #8, %[h0]\n\t"                                                              \
    "ssat %[x1], #8, %[h1]\n\t"                                                              \
    "strd %[x0], %[x1], [%[g]], #8\n\t"                                                      \
    "pkhbt %[x0], %[x0], %[x1], lsl #16\n\t"                                                 \
    "smlad %[a], %[x0], %[ones], %[a]\n\t"                                                   \
    "smlad %[b], %[x0], %[x0], %[b]"
#define ET_GRADIENT_NEAREST                                                                   \
    "add %[l0], %[c], %[x0], asr #31\n\t"                                                    \
    "add %[l1], %[c], %[x1], asr #31\n\t"                                                    \
    "movs %[h0], #0\n\t"                                                                     \
    "movs %[h1], #0\n\t"                                                                     \
    "smlal %[l0], %[h0], %[x0], %[m]\n\t"                                                    \
    "smlal %[l1], %[h1], %[x1], %[m]\n\t"
#define ET_GRADIENT_FLOOR                                                                     \
    "smull %[l0], %[h0], %[x0], %[m]\n\t"                                                    \
    "smull %[l1], %[h1], %[x1], %[m]\n\t"

static inline void et_gradient_pairs32(int32_t *gr, int32_t k, int32_t m, et_round_mode mode,
                                       int32_t *s1, int32_t *s2)
{
    const int32_t ones = 0x00010001;
    const uint32_t c = 0x80000000u;
    int32_t a = 0, b = 0, *g = gr, *end = gr + (k & ~1);
    while (g != end) {
        int32_t x0, x1, h0, h1;
        uint32_t l0, l1;
        if (mode == ET_ROUND_NEAREST)
            __asm volatile(ET_GRADIENT_PAIR_ASM(ET_GRADIENT_NEAREST)
                           : [g] "+r"(g), [a] "+r"(a), [b] "+r"(b), [x0] "=&r"(x0),
                             [x1] "=&r"(x1), [l0] "=&r"(l0), [l1] "=&r"(l1), [h0] "=&r"(h0),
                             [h1] "=&r"(h1)
                           : [m] "r"(m), [c] "r"(c), [ones] "r"(ones)
                           : "cc", "memory");
        else
            __asm volatile(ET_GRADIENT_PAIR_ASM(ET_GRADIENT_FLOOR)
                           : [g] "+r"(g), [a] "+r"(a), [b] "+r"(b), [x0] "=&r"(x0),
                             [x1] "=&r"(x1), [l0] "=&r"(l0), [l1] "=&r"(l1), [h0] "=&r"(h0),
                             [h1] "=&r"(h1)
                           : [m] "r"(m), [c] "r"(c), [ones] "r"(ones)
                           : "cc", "memory");
    }
    if (k & 1) {                            /* the last element: V's high word */
        int64_t v = (int64_t)gr[k - 1] * m +
                    (mode == ET_ROUND_NEAREST ? (int64_t)c + et_asr32(gr[k - 1], 31) : 0);
        int32_t q = et_ssat8(et_hi32(v));
        gr[k - 1] = q;
        a += q;
        b += q * q;
    }
    *s1 = a;
    *s2 = b;
}

/* the pair form for floor and nearest when the multiplier has the one-SMLAL form */
static ET_NOINLINE int et_gradient_pairs_mode(int32_t *gr, int32_t k, const et_rq32 *r,
                                              int mode, int32_t *s1, int32_t *s2)
{
    if (!r->fast || (mode != ET_ROUND_NEAREST && mode != ET_ROUND_FLOOR)) return 0;
    if (mode == ET_ROUND_NEAREST && r->sh == 0)
        et_gradient_pairs32(gr, k, r->m, ET_ROUND_NEAREST, s1, s2);
    else if (mode == ET_ROUND_NEAREST)
        et_gradient_pairs(gr, k, r, ET_ROUND_NEAREST, 1, s1, s2);
    else if (r->sh == 0)
        et_gradient_pairs32(gr, k, r->m, ET_ROUND_FLOOR, s1, s2);
    else
        et_gradient_pairs(gr, k, r, ET_ROUND_FLOOR, 1, s1, s2);
    return 1;
}
#endif

#if ET_UPD_ASM
/* bits of a magnitude: amax < 2^et_bit_length(amax) */
static int et_bit_length(int32_t amax)
{
    int bits = 0;
    while (bits < 31 && ((int32_t)1 << bits) <= amax) bits++;
    return bits;
}

/* the one-SMLAL form for a multiplier shift below 25 (small gradients): floor and nearest
 * depend on the exact value acc * m / 2^shift alone (nearest's tie term only on acc's sign),
 * so the row may be scaled by 2^la first, exact while every |acc| <= amax < 2^bits and la <=
 * 31 - bits (et_rq32_prepare checks it); the stochastic bits depend on the shift: not here */
static et_rq32 et_gradient_prescaled(int32_t *gr, int32_t k, et_multiplier m, int mode,
                                     int32_t amax)
{
    et_rq32 r = et_rq32_prepare(m, 31);
    if (r.fast || (mode != ET_ROUND_NEAREST && mode != ET_ROUND_FLOOR)) return r;
    et_rq32 s = et_rq32_prepare(m, et_bit_length(amax));
    if (!s.fast) return r;
    for (int32_t i = 0; i < k; i++) gr[i] *= s.amul;
    s.amul = 1;
    return s;
}
#endif

/* ---- the int8 gradient of a row from the high word of one product (et_rqh, whose proof is
 * at et_rqh in et_numerics.h: SMMLA / SMMLAR, then one SSAT that also shifts by sh), for
 * floor and nearest when no tie can occur. A multiplier shift below 25 (small gradients) has
 * every acc scaled by 2^la first (la = 25 - shift, shift + la = 25, so j = 7 and sh = 0):
 * floor and nearest depend on the exact value acc * m / 2^shift alone (nearest's tie term
 * only on acc's sign), which acc * 2^la * m / 2^(shift + la) keeps; exact while amax * 2^la
 * < 2^31, and the tie test runs on the scaled bound. */
typedef struct {
    et_rqh h;                     /* form ET_RQH_NONE: the form does not apply */
    int32_t la;                   /* the row's left shift */
} et_grad_hw;

/* amax: a bound on every |acc| of the rows the form will serve */
static et_grad_hw et_grad_hw_of(et_multiplier m, int mode, int32_t amax)
{
    et_grad_hw f;
    f.h.form = ET_RQH_NONE;
    f.la = m.shift >= 0 && m.shift < 25 ? 25 - m.shift : 0;
    if (!ET_UPD_ASM || amax < 0 || (f.la > 0 && amax >= ((int32_t)1 << (31 - f.la))))
        return f;
    m.shift += f.la;
    f.h = et_rqh_prepare(m, 0, (et_round_mode)mode, (uint32_t)amax << f.la);
    return f;
}

#if ET_UPD_ASM
/* four elements per turn: LDM, [LSL by la,] four high words, four SSATs, STM, the sums as
 * two int16 pairs (|q| <= 128) in four SMLADs; 18 instructions (22 with LSL) per 4 */
#define ET_GQ_LSL                                                                             \
    "lsl r2, r2, %[la]\n\tlsl r3, r3, %[la]\n\tlsl r4, r4, %[la]\n\tlsl r5, r5, %[la]\n\t"
#define ET_GQ_HI(op)                                                                          \
    op " r2, r2, %[m], %[ra]\n\t" op " r3, r3, %[m], %[ra]\n\t"                              \
    op " r4, r4, %[m], %[ra]\n\t" op " r5, r5, %[m], %[ra]\n\t"
#define ET_GQ_SAT(sh)                                                                         \
    "ssat r2, #8, r2" sh "\n\tssat r3, #8, r3" sh "\n\t"                                     \
    "ssat r4, #8, r4" sh "\n\tssat r5, #8, r5" sh "\n\t"
#define ET_GQ_LOOP(pre, op, sh)                                                               \
    __asm volatile("0:\n\t"                                                                   \
                   "ldmia %[g], {r2-r5}\n\t" pre ET_GQ_HI(op) ET_GQ_SAT(sh)                  \
                   "stmia %[g]!, {r2-r5}\n\t"                                                 \
                   "pkhbt r2, r2, r3, lsl #16\n\t"                                           \
                   "pkhbt r4, r4, r5, lsl #16\n\t"                                           \
                   "smlad %[a], r2, %[ones], %[a]\n\t"                                       \
                   "smlad %[a], r4, %[ones], %[a]\n\t"                                       \
                   "smlad %[b], r2, r2, %[b]\n\t"                                            \
                   "smlad %[b], r4, r4, %[b]\n\t"                                            \
                   "subs %[n], %[n], #1\n\t"                                                 \
                   "bne 0b"                                                                  \
                   : [g] "+r"(g), [n] "+r"(n), [a] "+r"(a), [b] "+r"(b)                      \
                   : [m] "r"(m), [ra] "r"(ra), [la] "r"(la), [ones] "r"(ones)                \
                   : "r2", "r3", "r4", "r5", "cc", "memory")

/* the quads of a row (n > 0 of them); the form's constants are the asm's operands */
static void et_gradient_quads(int32_t *g, int32_t n, const et_grad_hw *f, int32_t *s1,
                              int32_t *s2)
{
    const int32_t m = f->h.m, ra = f->h.ra, la = f->la, ones = 0x00010001;
    const int round = f->h.form == ET_RQH_HI_ROUND;
    int32_t a = *s1, b = *s2;
    if (la > 0 && round)                        /* la > 0: sh == 0 */
        ET_GQ_LOOP(ET_GQ_LSL, "smmlar", "");
    else if (la > 0)
        ET_GQ_LOOP(ET_GQ_LSL, "smmla", "");
    else if (round)
        ET_GQ_LOOP("", "smmlar", "");
    else if (f->h.sh == 0)
        ET_GQ_LOOP("", "smmla", "");
    else if (f->h.sh == 8)
        ET_GQ_LOOP("", "smmla", ", asr #8");
    else
        ET_GQ_LOOP("", "smmla", ", asr #16");
    *s1 = a;
    *s2 = b;
}

static ET_NOINLINE void et_gradient_hw(int32_t *gr, int32_t k, const et_grad_hw *f,
                                       int32_t *s1, int32_t *s2)
{
    int32_t a = 0, b = 0, i = k & ~3;
    if (k >= 4) et_gradient_quads(gr, k >> 2, f, &a, &b);
    for (; i < k; i++) {
        int32_t q = et_rqh_sat(et_rqh_hi(gr[i] * ((int32_t)1 << f->la), f->h.m, f->h.ra,
                                         f->h.form), f->h.sh);
        gr[i] = q;
        a += q;
        b += q * q;
    }
    *s1 = a;
    *s2 = b;
}
#endif

/* amax: the row's largest |acc| (or a bound on it); hw: the row's high-word form */
static void et_gradient_row_mode(int32_t *gr, int32_t k, et_multiplier m, int mode,
                                 int32_t amax, const et_grad_hw *hw, uint32_t base,
                                 uint32_t j0, int32_t *s1, int32_t *s2)
{
#if ET_UPD_ASM
    if (hw->h.form != ET_RQH_NONE) {
        et_gradient_hw(gr, k, hw, s1, s2);
        return;
    }
    et_rq32 r = et_gradient_prescaled(gr, k, m, mode, amax);
    if (et_gradient_pairs_mode(gr, k, &r, mode, s1, s2)) return;
#else
    (void)amax, (void)hw;
#endif
    switch (mode) {
    case ET_ROUND_FLOOR: et_gradient_row(gr, k, m, ET_ROUND_FLOOR, base, j0, s1, s2); break;
    case ET_ROUND_NEAREST: et_gradient_row(gr, k, m, ET_ROUND_NEAREST, base, j0, s1, s2); break;
    default: et_gradient_row(gr, k, m, (et_round_mode)mode, base, j0, s1, s2); break;
    }
}

/* a row takes the step table of the codes -4c .. 4c - 1 (et_stepped_row, Cortex-M4/M7) when
 * at least this long: building it costs about as much as computing 13c + 32 steps (all 256:
 * 448) */
#define ET_TABLE_MIN_K(c) (13 * (c) + 32)

/* layers with at most this many rows (per-channel weights, rows long enough for a table)
 * keep their rows' code bounds on the stack between the gradient and the step */
#define ET_CODE_BOUND_ROWS 256

/* a bound on every |q| of a row of int8 codes from the sum s2 of their squares: q^2 <= s2,
 * and for s2 < 2^14 (exact in float32) sqrtf, correctly rounded and monotone, gives at least
 * sqrtf(q^2) = |q| (q^2 and its root are exact), so its truncation does too */
static uint8_t et_code_bound(int32_t s2)
{
    return (uint8_t)(s2 >= 16384 ? 128 : (int32_t)sqrtf((float)s2));
}

/* Trainer._quantize_gradient + _int_row_stats + GradStats.observe, in place on g: g becomes
 * the int8 gradient, s_g[r] its scale per row (one scale for all rows unless grad_rows).
 * Row r's moving statistics are stats[r].lo (mean) and stats[r].hi (variance). bound: null,
 * or per kept row a bound on its codes' magnitudes (et_code_bound) */
static void et_standardize_rows(const et_ctx *c, int32_t *g, int32_t rows, int32_t k,
                                float scale, et_range *stats, const uint8_t *kept_rows,
                                int32_t g_absmax, float *s_g, uint8_t *bound)
{
    const int mode = c->cfg->round_gradient, grad_rows = c->cfg->grad_rows;
    const float rate_mean = c->cfg->rate_grad_mean, rate_var = c->cfg->rate_grad_var;
    int32_t amax = grad_rows    ? 0
                   : g_absmax >= 0 ? g_absmax
                                   : et_kept_abs_max(g, rows, k, kept_rows);
    float s_all = grad_rows ? 0.0f : et_maxf(((float)amax * scale) / 127.0f, ET_S_MIN_F);
    uint32_t base = et_call_base(c, mode);
    float n = (float)k;
    int seen = stats[0].seen;                   /* one flag for all rows, as GradStats */
    et_multiplier m = {0, 0};                   /* one multiplier and form for all rows */
    et_grad_hw hw = {{0, 0, ET_RQH_NONE, 0}, 0};
    if (!grad_rows) {
        m = et_multiplier_from(scale / s_all);
        hw = et_grad_hw_of(m, mode, amax);
    }
    for (int32_t r = 0; r < rows; r++) {
        int32_t *gr = g + r * k, s1, s2;
        /* a row no sample of the batch kept: its weight gradient was never accumulated, so it
         * is all zeros, and 0 quantizes to 0 in every rounding mode (floor and nearest of 0 are
         * 0; stochastic adds bits below 2^sh before the shift). Its codes are already right,
         * its statistics stay, and the update does not read it: only its scale is set. */
        int dropped = kept_rows && !kept_rows[r];
        int32_t row_max = !grad_rows ? amax : dropped ? 0 : et_abs_max(gr, k);
        float sg = grad_rows ? et_maxf(((float)row_max * scale) / 127.0f, ET_S_MIN_F) : s_all;
        if (dropped) {
            s_g[r] = sg;
            stats[r].seen = 1;
            continue;
        }
        if (grad_rows) {
            m = et_multiplier_from(scale / sg);
            hw = et_grad_hw_of(m, mode, row_max);
        }
        s_g[r] = sg;
        et_gradient_row_mode(gr, k, m, mode, row_max, &hw, base, (uint32_t)(r * k), &s1, &s2);
        if (bound) bound[r] = et_code_bound(s2);
        float mean_q = (float)s1 / n;
        float var_q = et_maxf((float)s2 / n - mean_q * mean_q, 0.0f);
        float mean = mean_q * sg, var = (var_q * sg) * sg;
        et_range *st = &stats[r];
        st->seen = 1;
        if (!seen) {
            st->lo = mean;
            st->hi = var;
        } else {
            st->lo = st->lo + rate_mean * (mean - st->lo);
            st->hi = st->hi + rate_var * (var - st->hi);
        }
    }
}

/* sigma of a row: sqrt(moving variance) + eps */
static float et_sigma(const et_ctx *c, const et_range *st) { return sqrtf(st->hi) + c->cfg->grad_eps; }

/* the standardized step of an element: lr * ((g_q * s_g - mu) / sigma); rows dropped by a
 * partial update get a zero step */
static float et_step_s(const et_ctx *c, int32_t gq, float s_g, float mu, float sigma, int kept)
{
    if (!kept) return 0.0f;
    float g_real = (float)gq * s_g;
    return c->cfg->lr * ((g_real - mu) / sigma);
}

static float et_step(const et_ctx *c, int32_t gq, float s_g, const et_range *st, int kept)
{
    return kept ? et_step_s(c, gq, s_g, st->lo, et_sigma(c, st), 1) : 0.0f;
}

/* n floats quantized into int8 codes (et_quantize per element; the rounding mode a constant
 * at each call site so the loop is specialized; the stream's bits drawn incrementally).
 * in_range: the caller knows every |src / scale| <= 2^20 (no NaN), so the clip test goes */
static inline void et_quantize_span(const float *src, int8_t *dst, int32_t n, et_qparams qp,
                                    et_round_mode mode, uint32_t base, uint32_t j0,
                                    int in_range)
{
    const float scale = qp.scale;
    const int32_t zero = qp.zero;
    uint32_t h = base + j0 * ET_GOLDEN;         /* et_bits(base, j0 + i) == fmix32(h) */
    for (int32_t i = 0; i < n; i++, h += ET_GOLDEN) {
        uint32_t bits = mode == ET_ROUND_STOCHASTIC ? et_fmix32(h) : 0u;
        dst[i] = in_range ? (int8_t)et_ssat8(et_round_small(src[i] / scale, mode, bits) + zero)
                          : et_quantize(src[i], qp, mode, bits);
    }
}

static inline void et_quantize_span_mode(const float *src, int8_t *dst, int32_t n,
                                         et_qparams qp, int mode, uint32_t base, uint32_t j0,
                                         int in_range)
{
    switch (mode) {
    case ET_ROUND_FLOOR:
        et_quantize_span(src, dst, n, qp, ET_ROUND_FLOOR, base, j0, in_range);
        break;
    case ET_ROUND_NEAREST:
        et_quantize_span(src, dst, n, qp, ET_ROUND_NEAREST, base, j0, in_range);
        break;
    case ET_ROUND_STOCHASTIC:
        et_quantize_span(src, dst, n, qp, ET_ROUND_STOCHASTIC, base, j0, in_range);
        break;
    default:
        et_quantize_span(src, dst, n, qp, (et_round_mode)mode, base, j0, in_range);
        break;
    }
}

/* ---- stochastic rounding of a symmetric row by integer arithmetic (docs/numerics.md
 * section 1). The engine's rule for v = x / scale and the threshold u = k * 2^-24 (k = bits
 * >> 8): q = floor(v) + (u < frac), frac = v - floor(v) in float32 (exact except for v in
 * (-1/2, 0), where 1 + v rounds to the 2^-24 grid). With V = v * 2^24 and R = RNE(V) (V
 * rounded to the nearest integer, ties to even: VCVTR under the default FPSCR rounding mode),
 * for -128 <= v < 128 the code with zero point 0 is
 *     q = sat8(-F),  F = floor((k - R) / 2^24),  computed as ~(sat32(k - 2^24 - R) >> 24)
 * (F - 1 = floor((k - 2^24 - R) / 2^24) lies in [-129, 127]; clamping it to [-128, 127]
 * maps F = -128 to the saturated 127; a saturating 32-bit subtraction (QSUB) clamps that
 * way; k - 2^24 is (bits >> 8) | 0xFF000000 as int32), except in one case:
 * - |v| >= 1/2: V is an integer (v's ulp is 2^-24 or more), R = V, frac is exact, and
 *   floor(v) + (u < frac) = ceil(v - u) = -floor((k - V) / 2^24) = -F.
 * - v in (-1/2, 0]: floor(v) = -1 and frac = RNE(2^24 + V) * 2^-24 = (2^24 + R) * 2^-24, so
 *   q = -1 + (k < 2^24 + R); and -F = ceil((R - k) / 2^24) with R - k in (-3 * 2^23, 0] is
 *   0 exactly when k < 2^24 + R: the same.
 * - v in (0, 1/2): frac = v exact and q = (k < V) = (k < ceil(V)); -F = (k < R). They differ
 *   only when R = ceil(V) - 1 (V rounded down) and k = R, i.e. k - 2^24 - R = -2^24: then
 *   q = 1 if V > R, which the one rare branch sets (F - 1 = -2 gives ~(-2) = 1).
 * V itself is one division, V = x / (scale * 2^-24): the same float as (x / scale) * 2^24
 * for scale < 2 (and scale >= 2^-40, so scale * 2^-24 is exact). Rounding commutes with the
 * power-of-two scaling while x / scale is normal; when |x / scale| < 2^-126 both lie in
 * (-1/2, 1/2), where everything above depends only on the sign and on V > R, and x / scale
 * and V have the same sign and are both nonzero: a nonzero float32 |x| >= 2^-149 divided by
 * scale < 2 exceeds 2^-150, so it does not round to 0 in float32.
 * Without the FPU and DSP instructions, or with ET_NO_SIMD, the same integers from C
 * (et_rne_f32, the saturating subtraction in int64). */

/* which form of et_stochastic_codes serves a row: none, one element at a time (QSUB), or the
 * four-element turns with the code's negation saturating (every v >= -127) or wrapping
 * (every v <= 127); see et_stochastic_quads */
enum { ET_SC_NONE, ET_SC_ONE, ET_SC_SAT, ET_SC_WRAP };

/* the integer form covers a row with zero point 0, scale < 2 and values v = x / scale in
 * [vlo, vhi] (NaN fails); returns the form (ET_SC_NONE: not covered) */
static int et_stochastic_covers(float vlo, float vhi, et_qparams qp)
{
    if (!(qp.zero == 0 && qp.scale < 2.0f && vlo >= -128.0f && vhi < 128.0f)) return ET_SC_NONE;
    return vlo >= -127.0f ? ET_SC_SAT : vhi <= 127.0f ? ET_SC_WRAP : ET_SC_ONE;
}

/* a - b saturated to int32 (QSUB) */
static inline int32_t et_qsub32(int32_t a, int32_t b)
{
#if ET_UPD_ASM
    int32_t r;
    __asm("qsub %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return et_sat((int64_t)a - b, ET_I32_MIN, ET_I32_MAX);
#endif
}

#if ET_UPD_ASM
/* one element: t = sat32(k - 2^24 - R) with R in register c, V in float register sv; the rare
 * case t == -2^24 branches to the stub of label n, which sets t = -2^25 (code 1) when V > R;
 * then the code ~(t >> 24) is stored and h steps on. fmix32's constants sit in registers. */
#define ET_STOCHASTIC_CODE_ASM(c, sv, n)                                                      \
    "eor %[t], %[h], %[h], lsr #16\n\t"                                                      \
    "mul %[t], %[t], %[m1]\n\t"                                                              \
    "eor %[t], %[t], %[t], lsr #13\n\t"                                                      \
    "mul %[t], %[t], %[m2]\n\t"                                                              \
    "eor %[t], %[t], %[t], lsr #16\n\t"                                                      \
    "orr %[t], %[ff], %[t], lsr #8\n\t"                                                      \
    "qsub %[t], %[t], %[" c "]\n\t"                                                          \
    "cmp %[t], #0xFF000000\n\t"                                                              \
    "beq " n "f\n"                                                                           \
    n "0:\n\t"                                                                               \
    "mvn %[t], %[t], asr #24\n\t"                                                            \
    "strb %[t], [%[d]], #1\n\t"                                                              \
    "add %[h], %[h], %[gold]\n\t"
#define ET_STOCHASTIC_STUB_ASM(c, sv, n)                                                      \
    n ":\n\t"                                                                                \
    "vmov s7, %[" c "]\n\t"                                                                  \
    "vcvt.f32.s32 s7, s7\n\t"                                                                \
    "vcmpe.f32 " sv ", s7\n\t"                                                               \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "it gt\n\t"                                                                              \
    "movgt %[t], #0xFE000000\n\t"                                                            \
    "b " n "0b\n\t"
#define ET_STOCHASTIC_OPERANDS                                                                \
    : [p] "+r"(x), [d] "+r"(dst), [h] "+r"(h), [c0] "=&r"(c0), [c1] "=&r"(c1), [t] "=&r"(t)   \
    : [m1] "r"(m1), [m2] "r"(m2), [ff] "r"(ff), [gold] "r"(gold), [sd] "t"(sd)               \
    : "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "cc", "memory"
/* four codes per turn, the same integers as ET_STOCHASTIC_CODE_ASM. That code is sat8(-f)
 * with f = floor(e / 2^24), e = k - R exact: ~(sat32(e - 2^24) >> 24) is -(f - 1) - 1 = -f
 * unless e - 2^24 leaves int32, where both give the saturated code. Here e is one RSB (k is
 * bits >> 8, the shifted operand) wrapping mod 2^32, f its top byte, and the four -f come
 * from one bytewise subtraction from 0 of the packed top bytes (PKHTB twice, AND, UXTAB16:
 * [f3 f2 f1 f0]): with every v >= -127, R >= -127 * 2^24 and e < 2^31 does not wrap, f is
 * in [-128, 127] and QSUB8 saturates -f to int8 as sat8 does (form ET_SC_SAT); with every
 * v <= 127, f is in [-127, 128] and only f = 128 wraps, to -128, whose negation mod 256
 * (USUB8) is the code -128 = sat8(-128) (ET_SC_WRAP). The rare case is e = 0 exactly (a
 * wrapped e is 0 only for e = 0, |e| < 2^31 + 2^24); a product e0 e1 e2 e3 that is 0 mod
 * 2^32 sends the turn to the per-element test (a false alarm costs time only), where the
 * code 1 is e = -1. 51 instructions per 4. */
#define ET_STOCHASTIC_HASH_ASM(e)                                                             \
    "eor %[t], %[h], %[h], lsr #16\n\t"                                                      \
    "mul %[t], %[t], %[m1]\n\t"                                                              \
    "eor %[t], %[t], %[t], lsr #13\n\t"                                                      \
    "mul %[t], %[t], %[m2]\n\t"                                                              \
    "eor %[t], %[t], %[t], lsr #16\n\t"                                                      \
    "rsb %[" e "], %[" e "], %[t], lsr #8\n\t"                                               \
    "add %[h], %[h], %[gold]\n\t"
#define ET_STOCHASTIC_RARE_ASM(e, sr, sv)                                                     \
    "cmp %[" e "], #0\n\t"                                                                   \
    "bne 1f\n\t"                                                                             \
    "vcvt.f32.s32 s7, " sr "\n\t"                                                            \
    "vcmpe.f32 " sv ", s7\n\t"                                                               \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "it gt\n\t"                                                                              \
    "movgt %[" e "], #-1\n"                                                                  \
    "1:\n\t"
#define ET_STOCHASTIC_QUADS_ASM(negate)                                                       \
    "5:\n\t"                                                                                 \
    "vldmia %[p]!, {s8-s11}\n\t"                                                             \
    "vdiv.f32 s8, s8, %[sd]\n\t"                                                             \
    "vdiv.f32 s9, s9, %[sd]\n\t"                                                             \
    "vdiv.f32 s10, s10, %[sd]\n\t"                                                           \
    "vdiv.f32 s11, s11, %[sd]\n\t"                                                           \
    "vcvtr.s32.f32 s12, s8\n\t"                                                              \
    "vcvtr.s32.f32 s13, s9\n\t"                                                              \
    "vcvtr.s32.f32 s14, s10\n\t"                                                             \
    "vcvtr.s32.f32 s15, s11\n\t"                                                             \
    "vmov %[e0], %[e1], s12, s13\n\t"                                                        \
    "vmov %[e2], %[e3], s14, s15\n\t"                                                        \
    ET_STOCHASTIC_HASH_ASM("e0")                                                             \
    ET_STOCHASTIC_HASH_ASM("e1")                                                             \
    ET_STOCHASTIC_HASH_ASM("e2")                                                             \
    ET_STOCHASTIC_HASH_ASM("e3")                                                             \
    "mul %[t], %[e0], %[e1]\n\t"                                                             \
    "mul %[t], %[t], %[e2]\n\t"                                                              \
    "mul %[t], %[t], %[e3]\n\t"                                                              \
    "cbz %[t], 8f\n"                                                                         \
    "6:\n\t"                                                                                 \
    "pkhtb %[e3], %[e3], %[e1], asr #16\n\t"     /* [f3 . f1 .] */                           \
    "pkhtb %[e2], %[e2], %[e0], asr #16\n\t"     /* [f2 . f0 .] */                           \
    "and %[e3], %[e3], #0xFF00FF00\n\t"                                                      \
    "uxtab16 %[e3], %[e3], %[e2], ror #8\n\t"    /* [f3 f2 f1 f0] */                         \
    negate " %[e3], %[z], %[e3]\n\t"             /* the four codes -f */                     \
    "str %[e3], [%[d]], #4\n\t"                                                              \
    "subs %[q], %[q], #1\n\t"                                                                \
    "bne 5b\n\t"                                                                             \
    "b 9f\n"                                                                                 \
    "8:\n\t"                                                                                 \
    ET_STOCHASTIC_RARE_ASM("e0", "s12", "s8")                                                \
    ET_STOCHASTIC_RARE_ASM("e1", "s13", "s9")                                                \
    ET_STOCHASTIC_RARE_ASM("e2", "s14", "s10")                                               \
    ET_STOCHASTIC_RARE_ASM("e3", "s15", "s11")                                               \
    "b 6b\n"                                                                                 \
    "9:"
#define ET_STOCHASTIC_QUADS_OPERANDS                                                          \
    : [p] "+r"(x), [d] "+r"(dst), [h] "+r"(h), [q] "+r"(q), [e0] "=&r"(e0), [e1] "=&r"(e1),   \
      [e2] "=&r"(e2), [e3] "=&r"(e3), [t] "=&l"(t)                                            \
    : [m1] "r"(m1), [m2] "r"(m2), [z] "r"(z), [gold] "r"(gold), [sd] "t"(sd)                  \
    : "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "cc", "memory"

/* q turns (form ET_SC_SAT or ET_SC_WRAP) */
ET_ALWAYS_INLINE void et_stochastic_quads(const float *x, int8_t *dst, int32_t q,
                                          uint32_t h, float sd, int form)
{
    const uint32_t m1 = 0x85EBCA6Bu, m2 = 0xC2B2AE35u, gold = ET_GOLDEN;
    const int32_t z = 0;
    int32_t e0, e1, e2, e3, t;
    if (form == ET_SC_SAT)
        __asm volatile(ET_STOCHASTIC_QUADS_ASM("qsub8") ET_STOCHASTIC_QUADS_OPERANDS);
    else
        __asm volatile(ET_STOCHASTIC_QUADS_ASM("usub8") ET_STOCHASTIC_QUADS_OPERANDS);
}

/* the codes of n floats x (the row's stepped weights; form: et_stochastic_covers), four per
 * turn (VLDM, four VDIVs by scale * 2^-24, four VCVTRs rounding to nearest even, then the
 * integer form per element), the rest (all of a row of form ET_SC_ONE) one at a time */
static ET_NOINLINE void et_stochastic_codes(const float *x, int8_t *dst, int32_t n,
                                            uint32_t h, float scale, int form)
{
    const uint32_t m1 = 0x85EBCA6Bu, m2 = 0xC2B2AE35u, ff = 0xFF000000u, gold = ET_GOLDEN;
    const float sd = scale * 5.9604644775390625e-08f;     /* scale * 2^-24, exact */
    const int32_t n4 = form == ET_SC_ONE ? 0 : n & ~3;
    int32_t c0, c1, t;
    if (n4 > 0) et_stochastic_quads(x, dst, n4 >> 2, h, sd, form);
    x += n4;
    dst += n4;
    h += (uint32_t)n4 * gold;
    for (int32_t i = 0; i < n - n4; i++)
        __asm volatile("vldmia %[p]!, {s8}\n\t"
                       "vdiv.f32 s8, s8, %[sd]\n\t"
                       "vcvtr.s32.f32 s12, s8\n\t"
                       "vmov %[c0], s12\n\t"
                       ET_STOCHASTIC_CODE_ASM("c0", "s8", "1")
                       "b 9f\n"
                       ET_STOCHASTIC_STUB_ASM("c0", "s8", "1")
                       "9:"
                       ET_STOCHASTIC_OPERANDS);
    (void)c1;
}
#else
/* V rounded to the nearest integer, ties to even, for |V| < 2^31: the truncation t is exact,
 * and so is V - t (|V| < 2^23; larger V are integers) */
static inline int32_t et_rne_f32(float v)
{
    int32_t t = (int32_t)v;
    float r = v - (float)t;                 /* in (-1, 1) */
    if (r > 0.5f || (r == 0.5f && (t & 1))) return t + 1;
    if (r < -0.5f || (r == -0.5f && (t & 1))) return t - 1;
    return t;
}

static ET_NOINLINE void et_stochastic_codes(const float *x, int8_t *dst, int32_t n,
                                            uint32_t h, float scale, int form)
{
    (void)form;
    const float sd = scale * 5.9604644775390625e-08f;     /* scale * 2^-24, exact */
    for (int32_t i = 0; i < n; i++, h += ET_GOLDEN) {
        float v = x[i] / sd;                               /* V */
        int32_t r = et_rne_f32(v);
        int32_t t = et_qsub32((int32_t)((et_fmix32(h) >> 8) | 0xFF000000u), r);
        if (t == -0x1000000 && v > (float)r) t = -0x2000000;   /* k = R, V rounded down */
        dst[i] = (int8_t)~et_asr32(t, 24);
    }
}
#endif

/* form: the integer form's et_stochastic_covers for the row (used for stochastic rounding
 * unless ET_SC_NONE); in_range: every |src / scale| <= 2^20, no NaN */
static ET_NOINLINE void et_quantize_row(const float *src, int8_t *dst, int32_t n,
                                        et_qparams qp, int mode, uint32_t base, uint32_t j0,
                                        int in_range, int form)
{
    if (in_range && form != ET_SC_NONE && mode == ET_ROUND_STOCHASTIC)
        et_stochastic_codes(src, dst, n, base + j0 * ET_GOLDEN, qp.scale, form);
    else if (in_range)
        et_quantize_span_mode(src, dst, n, qp, mode, base, j0, 1);
    else
        et_quantize_span_mode(src, dst, n, qp, mode, base, j0, 0);
}

/* a row's update constants: new weight = (w - zero) * scale - lr * ((g * s_g - mu) / sigma) */
typedef struct { int32_t zero; float scale, s_g, mu, sigma, lr; } et_row_step;

/* the updated float weight of one element (the engine's float32 operations in its order);
 * the row passed by value: its fields are locals the loops' float stores cannot alias */
static inline float et_stepped(et_row_step r, int8_t w, int32_t g)
{
    float wf = (float)((int32_t)w - r.zero) * r.scale;
    float g_real = (float)g * r.s_g;
    return wf - r.lr * ((g_real - r.mu) / r.sigma);
}

#if ET_UPD_ASM
/* two elements stepped (et_stepped's float32 operations in its order, written out: the
 * pair's loads and stores are one VLDM / VSTM and no pointer needs its own add) and taken
 * into lo / hi exactly as the C loop does: a_small = a < b (MI: false when unordered), lo =
 * small unless lo < small (PL), hi = large unless hi > large (LE: true when unordered);
 * the moves sit out of line, so a pair that sets no new extreme costs 9 instructions there.
 * zero_op is empty when the zero point is 0, else subtracts it from both codes. */
#define ET_STEPPED_PAIR_ASM(zero_op)                                                          \
    "ldrsb %[w0], [%[w]], #1\n\t"                                                            \
    "ldrsb %[w1], [%[w]], #1\n\t"                                                            \
    "vldmia %[g]!, {s0-s1}\n\t" zero_op                                                      \
    "vmov s2, s3, %[w0], %[w1]\n\t"                                                          \
    "vcvt.f32.s32 s0, s0\n\t"                                                                \
    "vcvt.f32.s32 s1, s1\n\t"                                                                \
    "vcvt.f32.s32 s2, s2\n\t"                                                                \
    "vcvt.f32.s32 s3, s3\n\t"                                                                \
    "vmul.f32 s0, s0, %[sg]\n\t"                                                             \
    "vmul.f32 s1, s1, %[sg]\n\t"                                                             \
    "vsub.f32 s0, s0, %[mu]\n\t"                                                             \
    "vsub.f32 s1, s1, %[mu]\n\t"                                                             \
    "vdiv.f32 s0, s0, %[sig]\n\t"                                                            \
    "vdiv.f32 s1, s1, %[sig]\n\t"                                                            \
    "vmul.f32 s2, s2, %[sc]\n\t"                                                             \
    "vmul.f32 s3, s3, %[sc]\n\t"                                                             \
    "vmul.f32 s0, s0, %[lr]\n\t"                                                             \
    "vmul.f32 s1, s1, %[lr]\n\t"                                                             \
    "vsub.f32 s2, s2, s0\n\t"                                                                \
    "vsub.f32 s3, s3, s1\n\t"

/* the pair's floats stored; the pair taken into lo / hi (as described above) */
#define ET_PAIR_STORE "vstmia %[o]!, {s2-s3}\n\t"
#define ET_PAIR_EXTREMES                                                                      \
    "vcmpe.f32 s2, s3\n\t"                                                                   \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "bmi 1f\n\t"                                  /* small b (s3), large a (s2) */           \
    "vcmpe.f32 %[lo], s3\n\t"                                                                \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "bpl 3f\n"                                                                               \
    "2:\n\t"                                                                                 \
    "vcmpe.f32 %[hi], s2\n\t"                                                                \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "ble 4f\n\t"                                                                             \
    "b 9f\n"                                                                                 \
    "3:\n\t"                                                                                 \
    "vmov.f32 %[lo], s3\n\t"                                                                 \
    "b 2b\n"                                                                                 \
    "4:\n\t"                                                                                 \
    "vmov.f32 %[hi], s2\n\t"                                                                 \
    "b 9f\n"                                                                                 \
    "5:\n\t"                                                                                 \
    "vmov.f32 %[lo], s2\n\t"                                                                 \
    "b 6f\n"                                                                                 \
    "7:\n\t"                                                                                 \
    "vmov.f32 %[hi], s3\n\t"                                                                 \
    "b 9f\n"                                                                                 \
    "1:\n\t"                                      /* small a (s2), large b (s3) */           \
    "vcmpe.f32 %[lo], s2\n\t"                                                                \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "bpl 5b\n"                                                                               \
    "6:\n\t"                                                                                 \
    "vcmpe.f32 %[hi], s3\n\t"                                                                \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "ble 7b\n"                                                                               \
    "9:"

#define ET_SUB_ZERO "sub %[w0], %[w0], %[z]\n\tsub %[w1], %[w1], %[z]\n\t"

#define ET_STEPPED_PAIR_OPERANDS                                                              \
    : [w] "+r"(w), [g] "+r"(g), [o] "+r"(o), [w0] "=&r"(w0), [w1] "=&r"(w1), [lo] "+t"(lo),  \
      [hi] "+t"(hi)                                                                           \
    : [z] "r"(zero), [sg] "t"(r.s_g), [mu] "t"(r.mu), [sig] "t"(r.sigma), [sc] "t"(r.scale), \
      [lr] "t"(r.lr)                                                                          \
    : "s0", "s1", "s2", "s3", "cc", "memory"

#define ET_STEPPED_LOOP_OPERANDS                                                              \
    : [w] "+r"(w), [g] "+r"(g), [o] "+r"(o), [w0] "=&r"(w0), [w1] "=&r"(w1), [lo] "+t"(lo),  \
      [hi] "+t"(hi), [n] "+r"(n)                                                              \
    : [z] "r"(zero), [sg] "t"(r.s_g), [mu] "t"(r.mu), [sig] "t"(r.sigma), [sc] "t"(r.scale), \
      [lr] "t"(r.lr)                                                                          \
    : "s0", "s1", "s2", "s3", "cc", "memory"

/* one pair (a, b) taken into lo / hi exactly as ET_PAIR_EXTREMES does, written with the
 * local labels N1..N9 (N a digit string) so that two pairs fit in one asm block; every move
 * also sets T = 0 (see below) */
#define ET_PAIR_EXTREMES_AB(a, b, N)                                                          \
    "vcmpe.f32 " a ", " b "\n\t"                                                             \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "bmi " N "1f\n\t"                             /* small b, large a */                     \
    "vcmpe.f32 %[lo], " b "\n\t"                                                             \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "bpl " N "3f\n"                                                                          \
    N "2:\n\t"                                                                               \
    "vcmpe.f32 %[hi], " a "\n\t"                                                             \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "ble " N "4f\n\t"                                                                        \
    "b " N "9f\n"                                                                            \
    N "3:\n\t"                                                                               \
    "vmov.f32 %[lo], " b "\n\t"                                                              \
    "mov %[T], #0\n\t"                                                                       \
    "b " N "2b\n"                                                                            \
    N "4:\n\t"                                                                               \
    "vmov.f32 %[hi], " a "\n\t"                                                              \
    "mov %[T], #0\n\t"                                                                       \
    "b " N "9f\n"                                                                            \
    N "5:\n\t"                                                                               \
    "vmov.f32 %[lo], " a "\n\t"                                                              \
    "mov %[T], #0\n\t"                                                                       \
    "b " N "6f\n"                                                                            \
    N "7:\n\t"                                                                               \
    "vmov.f32 %[hi], " b "\n\t"                                                              \
    "mov %[T], #0\n\t"                                                                       \
    "b " N "9f\n"                                                                            \
    N "1:\n\t"                                    /* small a, large b */                     \
    "vcmpe.f32 %[lo], " a "\n\t"                                                             \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "bpl " N "5b\n"                                                                          \
    N "6:\n\t"                                                                               \
    "vcmpe.f32 %[hi], " b "\n\t"                                                             \
    "vmrs APSR_nzcv, fpscr\n\t"                                                              \
    "ble " N "7b\n"                                                                          \
    N "9:\n\t"

/* T from lo and hi (labels N8, N9), then on to label `next`: 2 * the bit pattern of
 * min(|lo|, |hi|) when lo has its sign bit set, hi has not and neither is NaN, else 0 */
#define ET_QUAD_THRESHOLD(N, next)                                                            \
    "vmov %[w0], %[lo]\n\t"                                                                  \
    "vmov %[w1], %[hi]\n\t"                                                                  \
    "lsls %[w0], %[w0], #1\n\t"                   /* C: lo's sign */                         \
    "bcc " N "8f\n\t"                                                                        \
    "lsls %[w1], %[w1], #1\n\t"                   /* C: hi's sign */                         \
    "bcs " N "8f\n\t"                                                                        \
    "cmp %[w0], #0xFF000000\n\t"                  /* above: a NaN */                         \
    "it ls\n\t"                                                                              \
    "cmpls %[w1], #0xFF000000\n\t"                                                           \
    "bhi " N "8f\n\t"                                                                        \
    "cmp %[w0], %[w1]\n\t"                                                                   \
    "ite lo\n\t"                                                                             \
    "movlo %[T], %[w0]\n\t"                                                                  \
    "movhs %[T], %[w1]\n\t"                                                                  \
    "b " next "\n"                                                                           \
    N "8:\n\t"                                                                               \
    "mov %[T], #0\n\t"                                                                       \
    "b " next "\n"

/* ---- four stepped elements per turn, their extremes mostly by one integer compare each.
 * T is 2 * the bit pattern of min(|lo|, |hi|) (the sign shifted out) when lo has its sign
 * bit set, hi has not and neither is NaN; else 0. An element x with (bits(x) << 1) < T
 * (unsigned) has |x| < |lo| and |x| < |hi| (the magnitude's bit pattern orders like the
 * magnitude for floats that are not NaN; a NaN's exceeds every T), so lo < x < hi, and the
 * pair code would leave lo and hi as they are for it (every comparison strict, no move).
 * A pair whose two elements pass is skipped; any other pair runs the pair code, in order.
 * A move sets T = 0 (nothing passes) until T is recomputed after that pair, so lo and hi
 * end exactly as the pair loop leaves them, for every input (NaN, -0.0 and infinities
 * included). 46 instructions per 4 when all four pass. */
#define ET_QUAD_STEPS_COMPUTED(zero_op)                                                       \
    "ldrsb %[w0], [%[w]], #1\n\t"                                                            \
    "ldrsb %[w1], [%[w]], #1\n\t"                                                            \
    "ldrsb %[w2], [%[w]], #1\n\t"                                                            \
    "ldrsb %[w3], [%[w]], #1\n\t"                                                            \
    "vldmia %[g]!, {s0-s3}\n\t" zero_op                                                      \
    "vmov s4, s5, %[w0], %[w1]\n\t"                                                          \
    "vmov s6, s7, %[w2], %[w3]\n\t"                                                          \
    "vcvt.f32.s32 s0, s0\n\tvcvt.f32.s32 s1, s1\n\t"                                         \
    "vcvt.f32.s32 s2, s2\n\tvcvt.f32.s32 s3, s3\n\t"                                         \
    "vcvt.f32.s32 s4, s4\n\tvcvt.f32.s32 s5, s5\n\t"                                         \
    "vcvt.f32.s32 s6, s6\n\tvcvt.f32.s32 s7, s7\n\t"                                         \
    "vmul.f32 s0, s0, %[sg]\n\tvmul.f32 s1, s1, %[sg]\n\t"                                   \
    "vmul.f32 s2, s2, %[sg]\n\tvmul.f32 s3, s3, %[sg]\n\t"                                   \
    "vsub.f32 s0, s0, %[mu]\n\tvsub.f32 s1, s1, %[mu]\n\t"                                   \
    "vsub.f32 s2, s2, %[mu]\n\tvsub.f32 s3, s3, %[mu]\n\t"                                   \
    "vdiv.f32 s0, s0, %[sig]\n\tvdiv.f32 s1, s1, %[sig]\n\t"                                 \
    "vdiv.f32 s2, s2, %[sig]\n\tvdiv.f32 s3, s3, %[sig]\n\t"                                 \
    "vmul.f32 s4, s4, %[sc]\n\tvmul.f32 s5, s5, %[sc]\n\t"                                   \
    "vmul.f32 s6, s6, %[sc]\n\tvmul.f32 s7, s7, %[sc]\n\t"                                   \
    "vmul.f32 s0, s0, %[lr]\n\tvmul.f32 s1, s1, %[lr]\n\t"                                   \
    "vmul.f32 s2, s2, %[lr]\n\tvmul.f32 s3, s3, %[lr]\n\t"

/* the four steps looked up in the row's table (et_step_table; tb points at the entry of code
 * 0, the gradient codes are int8) instead of computed: LDM, four LDRs, two VMOVs */
#define ET_QUAD_STEPS_TABLE(zero_op)                                                          \
    "ldmia %[g]!, {%[w0], %[w1], %[w2], %[w3]}\n\t"                                         \
    "ldr %[w0], [%[tb], %[w0], lsl #2]\n\t"                                                 \
    "ldr %[w1], [%[tb], %[w1], lsl #2]\n\t"                                                 \
    "ldr %[w2], [%[tb], %[w2], lsl #2]\n\t"                                                 \
    "ldr %[w3], [%[tb], %[w3], lsl #2]\n\t"                                                 \
    "vmov s0, s1, %[w0], %[w1]\n\t"                                                          \
    "vmov s2, s3, %[w2], %[w3]\n\t"                                                          \
    "ldrsb %[w0], [%[w]], #1\n\t"                                                            \
    "ldrsb %[w1], [%[w]], #1\n\t"                                                            \
    "ldrsb %[w2], [%[w]], #1\n\t"                                                            \
    "ldrsb %[w3], [%[w]], #1\n\t" zero_op                                                    \
    "vmov s4, s5, %[w0], %[w1]\n\t"                                                          \
    "vmov s6, s7, %[w2], %[w3]\n\t"                                                          \
    "vcvt.f32.s32 s4, s4\n\tvcvt.f32.s32 s5, s5\n\t"                                         \
    "vcvt.f32.s32 s6, s6\n\tvcvt.f32.s32 s7, s7\n\t"                                         \
    "vmul.f32 s4, s4, %[sc]\n\tvmul.f32 s5, s5, %[sc]\n\t"                                   \
    "vmul.f32 s6, s6, %[sc]\n\tvmul.f32 s7, s7, %[sc]\n\t"

#define ET_STEPPED_QUAD_ASM(steps)                                                            \
    "0:\n\t" steps                                                                           \
    "vsub.f32 s4, s4, s0\n\tvsub.f32 s5, s5, s1\n\t"                                         \
    "vsub.f32 s6, s6, s2\n\tvsub.f32 s7, s7, s3\n\t"                                         \
    "vstmia %[o]!, {s4-s7}\n\t"                                                              \
    "vmov %[w0], %[w1], s4, s5\n\t"                                                          \
    "vmov %[w2], %[w3], s6, s7\n\t"                                                          \
    "cmp %[T], %[w0], lsl #1\n\t"                                                            \
    "bls 5f\n\t"                                                                             \
    "cmp %[T], %[w1], lsl #1\n\t"                                                            \
    "bls 5f\n"                                                                               \
    "3:\n\t"                                                                                 \
    "cmp %[T], %[w2], lsl #1\n\t"                                                            \
    "bls 6f\n\t"                                                                             \
    "cmp %[T], %[w3], lsl #1\n\t"                                                            \
    "bls 6f\n"                                                                               \
    "1:\n\t"                                                                                 \
    "subs %[n], %[n], #1\n\t"                                                                \
    "bne 0b\n\t"                                                                             \
    "b 9f\n"                                                                                 \
    "5:\n\t" ET_PAIR_EXTREMES_AB("s4", "s5", "1")                                            \
    "cmp %[T], #0\n\t"                                                                       \
    "bne 3b\n\t" ET_QUAD_THRESHOLD("1", "3b")                                                \
    "6:\n\t" ET_PAIR_EXTREMES_AB("s6", "s7", "2")                                            \
    "cmp %[T], #0\n\t"                                                                       \
    "bne 1b\n\t" ET_QUAD_THRESHOLD("2", "1b")                                                \
    "9:"

#define ET_SUB_ZERO4                                                                          \
    "sub %[w0], %[w0], %[z]\n\tsub %[w1], %[w1], %[z]\n\t"                                   \
    "sub %[w2], %[w2], %[z]\n\tsub %[w3], %[w3], %[z]\n\t"

#define ET_STEPPED_QUAD_OPERANDS                                                              \
    : [w] "+r"(w), [g] "+r"(g), [o] "+r"(o), [n] "+r"(n), [T] "+r"(t), [w0] "=&r"(w0),       \
      [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3), [lo] "+t"(lo), [hi] "+t"(hi)            \
    : [z] "r"(zero), [sg] "t"(r.s_g), [mu] "t"(r.mu), [sig] "t"(r.sigma), [sc] "t"(r.scale), \
      [lr] "t"(r.lr)                                                                          \
    : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "cc", "memory"

#define ET_STEPPED_TABLE_OPERANDS                                                             \
    : [w] "+r"(w), [g] "+r"(g), [o] "+r"(o), [n] "+r"(n), [T] "+r"(t), [w0] "=&r"(v0),       \
      [w1] "=&r"(v1), [w2] "=&r"(v2), [w3] "=&r"(v3), [lo] "+t"(lo), [hi] "+t"(hi)            \
    : [z] "r"(zero), [tb] "r"(tb), [sc] "t"(r.scale)                                          \
    : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "cc", "memory"

/* rows at least this long take the four-element turns (shorter ones the pairs alone: their
 * extremes move often and T would rarely let a turn pass) */
#define ET_QUAD_MIN_K 24


/* the steps of the gradient codes q = q0 .. q0 + 4 * turns - 1 into tab: lr * ((q * s_g -
 * mu) / sigma) by the same float32 operations on the same operands as the four-element turn
 * (float q is exact as a counter stepped by 4.0f), so a lookup gives the computed float, NaN
 * and infinities included; 23 instructions per 4 */
static ET_NOINLINE void et_step_table(const et_row_step *rp, int32_t q0, int32_t turns,
                                      float *tab)
{
    const float first[4] = {(float)q0, (float)(q0 + 1), (float)(q0 + 2), (float)(q0 + 3)};
    const et_row_step r = *rp;
    int32_t n = turns;
    __asm volatile("vldmia %[f], {s4-s7}\n\t"
                   "vmov.f32 s8, #4.0\n"
                   "0:\n\t"
                   "vmul.f32 s0, s4, %[sg]\n\tvmul.f32 s1, s5, %[sg]\n\t"
                   "vmul.f32 s2, s6, %[sg]\n\tvmul.f32 s3, s7, %[sg]\n\t"
                   "vsub.f32 s0, s0, %[mu]\n\tvsub.f32 s1, s1, %[mu]\n\t"
                   "vsub.f32 s2, s2, %[mu]\n\tvsub.f32 s3, s3, %[mu]\n\t"
                   "vdiv.f32 s0, s0, %[sig]\n\tvdiv.f32 s1, s1, %[sig]\n\t"
                   "vdiv.f32 s2, s2, %[sig]\n\tvdiv.f32 s3, s3, %[sig]\n\t"
                   "vmul.f32 s0, s0, %[lr]\n\tvmul.f32 s1, s1, %[lr]\n\t"
                   "vmul.f32 s2, s2, %[lr]\n\tvmul.f32 s3, s3, %[lr]\n\t"
                   "vadd.f32 s4, s4, s8\n\tvadd.f32 s5, s5, s8\n\t"
                   "vadd.f32 s6, s6, s8\n\tvadd.f32 s7, s7, s8\n\t"
                   "vstmia %[t]!, {s0-s3}\n\t"
                   "subs %[n], %[n], #1\n\t"
                   "bne 0b"
                   : [t] "+r"(tab), [n] "+r"(n)
                   : [f] "r"(first), [sg] "t"(r.s_g), [mu] "t"(r.mu), [sig] "t"(r.sigma),
                     [lr] "t"(r.lr)
                   : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "cc", "memory");
}

/* the loop of et_stepped_row after its first element (k - 1 elements left at w, g, o): the
 * pairs of elements 1, 2 | 3, 4 | ..., two per turn, then an odd pair alone. tb: null, or
 * the entry of code 0 in the row's step table (the four-element turns look steps up) */
ET_ALWAYS_INLINE void et_stepped_pairs(et_row_step r, int32_t zero, const int8_t *w,
                                        const int32_t *g, float *o, int32_t k,
                                        const float *tb, float *lo_io, float *hi_io)
{
    float lo = *lo_io, hi = *hi_io;
    int32_t n = (k - 1) >> 1, w0, w1;        /* pairs; the loop itself in the asm (SUBS, BNE) */
    if (k >= ET_QUAD_MIN_K && tb) {
        /* LDM's register list ascends: the four in r2..r5 */
        register int32_t v0 __asm("r2"), v1 __asm("r3"), v2 __asm("r4"), v3 __asm("r5");
        int32_t t = 0, odd = n & 1;
        n >>= 1;
        if (zero == 0)
            __asm volatile(ET_STEPPED_QUAD_ASM(ET_QUAD_STEPS_TABLE(""))
                               ET_STEPPED_TABLE_OPERANDS);
        else
            __asm volatile(ET_STEPPED_QUAD_ASM(ET_QUAD_STEPS_TABLE(ET_SUB_ZERO4))
                               ET_STEPPED_TABLE_OPERANDS);
        n = odd;
    } else if (k >= ET_QUAD_MIN_K) {
        int32_t w2, w3, t = 0, odd = n & 1;
        n >>= 1;
        if (zero == 0)
            __asm volatile(ET_STEPPED_QUAD_ASM(ET_QUAD_STEPS_COMPUTED(""))
                               ET_STEPPED_QUAD_OPERANDS);
        else
            __asm volatile(ET_STEPPED_QUAD_ASM(ET_QUAD_STEPS_COMPUTED(ET_SUB_ZERO4))
                               ET_STEPPED_QUAD_OPERANDS);
        n = odd;
    }
    if (n > 0 && zero == 0)
        __asm volatile("0:\n\t" ET_STEPPED_PAIR_ASM("") ET_PAIR_STORE ET_PAIR_EXTREMES
                       "\n\tsubs %[n], %[n], #1\n\tbne 0b"
                       ET_STEPPED_LOOP_OPERANDS);
    else if (n > 0)
        __asm volatile("0:\n\t" ET_STEPPED_PAIR_ASM(ET_SUB_ZERO) ET_PAIR_STORE ET_PAIR_EXTREMES
                       "\n\tsubs %[n], %[n], #1\n\tbne 0b"
                       ET_STEPPED_LOOP_OPERANDS);
    *lo_io = lo;
    *hi_io = hi;
}
#else
static inline void et_stepped_pairs(et_row_step r, int32_t zero, const int8_t *w,
                                    const int32_t *g, float *o, int32_t k, const float *tb,
                                    float *lo_io, float *hi_io)
{
    float lo = *lo_io, hi = *hi_io;
    (void)tb;
    r.zero = zero;
    for (int32_t i = 1; i + 2 <= k; i += 2, w += 2, g += 2, o += 2) {
        float a = et_stepped(r, w[0], g[0]), b = et_stepped(r, w[1], g[1]);
        o[0] = a;
        o[1] = b;
        int a_small = a < b;
        lo = et_minf(lo, a_small ? a : b);
        hi = et_maxf(hi, a_small ? b : a);
    }
    *lo_io = lo;
    *hi_io = hi;
}
#endif

/* one kept row stepped into wrow; returns the row's range in lo/hi (elements taken in pairs:
 * the smaller of two against lo, the larger against hi, 3 comparisons instead of 4). g holds
 * int8 gradient codes, every |g| <= bound (128: no bound known); a long row looks its steps
 * up in a table of the codes -4c .. 4c - 1 (c = bound / 4 + 1, all 256 from bound 124 on) */
static ET_NOINLINE void et_stepped_row(const et_row_step *rp, const int8_t *w,
                                       const int32_t *g, int32_t k, int32_t bound, float *wrow,
                                       float *lo_out, float *hi_out)
{
    const et_row_step r = *rp;
    float wf = et_stepped(r, w[0], g[0]), lo = wf, hi = wf;
    const float *tb = 0;
#if ET_UPD_ASM
    float tab[256];
    int32_t c = bound >= 124 ? 32 : (bound >> 2) + 1;
    if (k >= ET_TABLE_MIN_K(1) && k >= ET_TABLE_MIN_K(c)) {
        et_step_table(rp, -4 * c, 2 * c, tab);
        tb = tab + 4 * c;
    }
#else
    (void)bound;
#endif
    wrow[0] = wf;
    if (r.zero == 0)        /* per-channel symmetric weights: no subtraction */
        et_stepped_pairs(r, 0, w + 1, g + 1, wrow + 1, k, tb, &lo, &hi);
    else
        et_stepped_pairs(r, r.zero, w + 1, g + 1, wrow + 1, k, tb, &lo, &hi);
    if (k % 2 == 0) {       /* the last element when k - 1 is odd */
        wf = et_stepped(r, w[k - 1], g[k - 1]);
        wrow[k - 1] = wf;
        lo = et_minf(lo, wf);
        hi = et_maxf(hi, wf);
    }
    *lo_out = lo;
    *hi_out = hi;
}

/* the range of one kept row's stepped weights (not stored) */
static void et_stepped_range(et_row_step r, const int8_t *w, const int32_t *g, int32_t k,
                             float *lo_out, float *hi_out)
{
    float wf = et_stepped(r, w[0], g[0]), lo = wf, hi = wf;
    for (int32_t i = 1; i < k; i++) {
        wf = et_stepped(r, w[i], g[i]);
        lo = et_minf(lo, wf);
        hi = et_maxf(hi, wf);
    }
    *lo_out = lo;
    *hi_out = hi;
}

static int et_finite(float x) { return x - x == 0.0f; }   /* not inf, not NaN */

/* every stepped weight of a row with these constants is a number (no NaN): (w - zero) *
 * scale stays finite (|w - zero| <= 255), the step's quotient has a finite numerator part and
 * sigma > 0, and lr != 0 keeps lr * inf from being NaN; an infinity would show in lo / hi */
static int et_row_step_no_nan(const et_row_step *r)
{
    /* et_finite of each at once: x - x is +0 for a finite x, NaN for an infinity or NaN, and
     * a sum of such terms is 0 exactly when every term is */
    float s255 = 255.0f * r->scale;
    float z = (s255 - s255) + (r->s_g - r->s_g) + (r->mu - r->mu) + (r->sigma - r->sigma) +
              (r->lr - r->lr);
    return z == 0.0f && r->sigma > 0.0f && r->lr != 0.0f;
}

/* no element of the row leaves +-2^20 once divided by scale (division by scale > 0 keeps
 * the order, so the row's largest magnitude bounds them all) and none is NaN */
static int et_row_in_range(const et_row_step *r, float lo, float hi, float scale)
{
    return et_row_step_no_nan(r) && et_finite(lo) && et_finite(hi) &&
           et_maxf(-lo, hi) / scale <= 1048576.0f;
}

static et_row_step et_row_step_of(const et_ctx *c, const et_wlayer *L, int32_t o, float scale,
                                  int32_t zero)
{
    et_row_step r;
    r.zero = zero;
    r.scale = scale;
    r.s_g = L->s_g[o];
    r.mu = L->g_stats[o].lo;
    r.sigma = et_sigma(c, &L->g_stats[o]);
    r.lr = c->cfg->lr;
    return r;
}

/* per-channel weights (bound: null, or a bound on each kept row's gradient codes): each row
 * is dequantized, stepped, re-ranged and requantized on its
 * own (one pass, the new float row kept in `row`); same numbers as the whole-tensor form.
 * Rows dropped by a partial update keep scale and codes, so they are not computed at all. */
static void et_apply_weight_rows(const et_ctx *c, et_wlayer *L, const uint8_t *rows,
                                 const uint8_t *bound)
{
    int32_t O = L->g.c_out, K = et_k(L);
    const int mode = c->cfg->round_update;
    const float rate = c->cfg->rate_weight;
    uint32_t base = et_call_base(c, mode);
    for (int32_t o = 0; o < O; o++) {
        if (rows && !rows[o]) continue;
        et_row_step r = et_row_step_of(c, L, o, L->w_scale[o], L->w_zero);
        float lo, hi;
        et_stepped_row(&r, L->w + o * K, L->gw + o * K, K, bound ? bound[o] : 128, L->wrow,
                       &lo, &hi);
        et_range_observe(&L->w_range[o], lo, hi, rate);
        et_qparams qp = et_range_qparams(&L->w_range[o], 1, 0);
        int in_range = et_row_in_range(&r, lo, hi, qp.scale);
        int form = in_range && mode == ET_ROUND_STOCHASTIC
                       ? et_stochastic_covers(lo / qp.scale, hi / qp.scale, qp)
                       : ET_SC_NONE;
        /* the stochastic codes called here, not through et_quantize_row: that extra call
         * measured +1.1 insn per trained parameter on mbednet partial (short rows) */
        if (form != ET_SC_NONE)
            et_stochastic_codes(L->wrow, L->w + o * K, K, base + (uint32_t)(o * K) * ET_GOLDEN,
                                qp.scale, form);
        else
            et_quantize_row(L->wrow, L->w + o * K, K, qp, mode, base, (uint32_t)(o * K),
                            in_range, ET_SC_NONE);
        if (!L->w_fixed) L->w_scale[o] = qp.scale;   /* et_weight_qparams' scale of row o */
    }
    /* the rest of et_weight_qparams: the rows updated above have their new scales, the rows
     * a partial update dropped take theirs from their (unchanged) ranges */
    if (!L->w_fixed && rows)
        et_channel_scales(L, rows);
    else if (!L->w_fixed)
        L->w_zero = 0;
    ET_TRACE_T(L->trace_gw, L->w, O * K);
    ET_TRACE_T(L->trace_gw + 1, L->w_scale, 4 * O);
    ET_TRACE_T(L->trace_gw + 2, &L->w_zero, 4);
}

/* the range of one row's dequantized codes: the step of a dropped row is zero (wf - 0.0f is
 * wf) and (w - zero) * scale grows with w (scale > 0), so the extreme codes give it */
static void et_dequantized_range(const int8_t *w, int32_t k, int32_t zero, float scale,
                                 float *lo_out, float *hi_out)
{
    int32_t mn = w[0], mx = w[0];
    for (int32_t i = 1; i < k; i++) {
        mn = w[i] < mn ? w[i] : mn;
        mx = w[i] > mx ? w[i] : mx;
    }
    *lo_out = (float)(mn - zero) * scale - 0.0f;
    *hi_out = (float)(mx - zero) * scale - 0.0f;
}

/* a kept row's updated weights recomputed (the same floats as et_stepped_row) and quantized
 * with the new qparams; a dropped row's codes requantized with a zero step */
static inline void et_requantize_stepped(et_row_step r, int kept, int8_t *w,
                                         const int32_t *g, int32_t k, et_qparams qp,
                                         et_round_mode mode, uint32_t base, uint32_t j0)
{
    for (int32_t i = 0; i < k; i++) {
        float wf = kept ? et_stepped(r, w[i], g[i])
                        : (float)((int32_t)w[i] - r.zero) * r.scale - 0.0f;
        w[i] = et_quantize(wf, qp, mode, et_bits_for(mode, base, j0 + (uint32_t)i));
    }
}

static void et_requantize_stepped_row(et_row_step r, int kept, int8_t *w,
                                      const int32_t *g, int32_t k, et_qparams qp, int mode,
                                      uint32_t base, uint32_t j0)
{
    switch (mode) {
    case ET_ROUND_FLOOR:
        et_requantize_stepped(r, kept, w, g, k, qp, ET_ROUND_FLOOR, base, j0);
        break;
    case ET_ROUND_NEAREST:
        et_requantize_stepped(r, kept, w, g, k, qp, ET_ROUND_NEAREST, base, j0);
        break;
    default:
        et_requantize_stepped(r, kept, w, g, k, qp, (et_round_mode)mode, base, j0);
        break;
    }
}

#if ET_UPD_ASM
/* ---- the per-tensor update (numerics paper / nearest) on ARMv7E-M: the stepped floats of a
 * row are recomputed in chunks of ET_CHUNK on the stack (256 bytes; the update already ran
 * et_stepped_row's pairs, the same instructions) and converted without et_round_small's
 * float compares. floor: v = w_f / scale (round to nearest, as et_quantize), then VCVTR
 * under FPSCR.RMode = round towards minus infinity: floor(v) exactly for |v| <= 2^20.
 * VCVTR.S32.F32 rounds by FPSCR.RMode (ARMv7-M ARM, VCVT/VCVTR between floating-point and
 * integer: the R form uses the FPSCR rounding mode, the plain form rounds towards zero);
 * QEMU translates the R form to vfp_tosis, float32_to_int32 under the FPSCR's mode: the
 * same. The divisions run first in their own pass under round to nearest; the conversion
 * pass (one non-inlined function) does no float arithmetic, and the FPSCR is switched
 * around it alone and restored after it (its cumulative flags with it: nothing reads them). nearest (ties away from zero): T = trunc(v * 2^23), one VCVT to
 * fixed point (round towards zero always, the scaling exact), gives floor(|v| * 2^23) with
 * v's sign, and round(v) = (T + 2^22 - [T < 0]) >> 23: for v >= 0 floor((floor(V) + 2^22) /
 * 2^23) = floor(v + 1/2) (nested floors), for v < 0 (T = -floor(|V|)) floor((T + 2^22 - 1) /
 * 2^23) = -floor((-T + 2^22) / 2^23) = -floor(|v| + 1/2). The zero point joins as zero * 2^23
 * inside the shift (wrapping 32-bit adds: only the final sum must fit, which |v| <= 250 and
 * |v + zero| <= 250 grant), and SSAT's own shift gives the int8. */
#define ET_CHUNK 64

static inline void et_stepped_store_pairs(et_row_step r, int32_t zero, const int8_t *w,
                                          const int32_t *g, float *o, int32_t pairs)
{
    float lo = 0.0f, hi = 0.0f;     /* operands of the shared constraint list, unused */
    for (int32_t i = 0; i < pairs; i++) {
        int32_t w0, w1;
        if (zero == 0)
            __asm volatile(ET_STEPPED_PAIR_ASM("") ET_PAIR_STORE ET_STEPPED_PAIR_OPERANDS);
        else
            __asm volatile(ET_STEPPED_PAIR_ASM(ET_SUB_ZERO) ET_PAIR_STORE
                               ET_STEPPED_PAIR_OPERANDS);
    }
}

/* n stepped floats of a kept row into o (et_stepped's values) */
static void et_stepped_store(et_row_step r, const int8_t *w, const int32_t *g, int32_t n,
                             float *o)
{
    if (r.zero == 0)
        et_stepped_store_pairs(r, 0, w, g, o, n >> 1);
    else
        et_stepped_store_pairs(r, r.zero, w, g, o, n >> 1);
    if (n & 1) o[n - 1] = et_stepped(r, w[n - 1], g[n - 1]);
}

/* the range of a kept row's stepped floats by the pairs of et_stepped_row: the same lo / hi
 * as one element at a time when no element is NaN (et_row_step_no_nan; no -0.0 either) */
static void et_stepped_range_pairs(et_row_step r, const int8_t *w, const int32_t *g,
                                   int32_t k, float *lo_out, float *hi_out)
{
    float wf = et_stepped(r, w[0], g[0]), lo = wf, hi = wf, o[2], *op = o;
    const int8_t *wp = w + 1;
    const int32_t *gp = g + 1;
    const int32_t zero = r.zero;
    for (int32_t i = 1; i + 2 <= k; i += 2) {
        int32_t w0, w1;
        __asm volatile(ET_STEPPED_PAIR_ASM(ET_SUB_ZERO) ET_PAIR_EXTREMES
                       : [w] "+r"(wp), [g] "+r"(gp), [o] "+r"(op), [w0] "=&r"(w0),
                         [w1] "=&r"(w1), [lo] "+t"(lo), [hi] "+t"(hi)
                       : [z] "r"(zero), [sg] "t"(r.s_g), [mu] "t"(r.mu), [sig] "t"(r.sigma),
                         [sc] "t"(r.scale), [lr] "t"(r.lr)
                       : "s0", "s1", "s2", "s3", "cc", "memory");
    }
    if (k % 2 == 0) {
        wf = et_stepped(r, w[k - 1], g[k - 1]);
        lo = et_minf(lo, wf);
        hi = et_maxf(hi, wf);
    }
    *lo_out = lo;
    *hi_out = hi;
}

/* n floats x divided by scale in place (round to nearest), four per VLDM / VSTM */
static void et_quotients(float *x, int32_t n, float d)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4)
        __asm volatile("vldmia %[p], {s8-s11}\n\t"
                       "vdiv.f32 s8, s8, %[d]\n\t"
                       "vdiv.f32 s9, s9, %[d]\n\t"
                       "vdiv.f32 s10, s10, %[d]\n\t"
                       "vdiv.f32 s11, s11, %[d]\n\t"
                       "vstmia %[p]!, {s8-s11}"
                       : [p] "+r"(x)
                       : [d] "t"(d)
                       : "s8", "s9", "s10", "s11", "memory");
    for (; i < n; i++, x++) *x = *x / d;
}

/* codes sat8(floor(v) + zero) of n quotients v (|v| <= 2^20), RMode = -infinity here alone */
static ET_NOINLINE void et_floor_codes(const float *x, int8_t *dst, int32_t n, int32_t zero)
{
    uint32_t fpscr;
    __asm volatile("vmrs %0, fpscr" : "=r"(fpscr));
    __asm volatile("vmsr fpscr, %0" : : "r"((fpscr & ~0x00C00000u) | 0x00800000u) : "memory");
    for (int32_t i = 0; i < n; i++) {
        int32_t c;
        __asm volatile("vldmia %[p]!, {s15}\n\t"
                       "vcvtr.s32.f32 s15, s15\n\t"
                       "vmov %[c], s15"
                       : [p] "+r"(x), [c] "=r"(c)
                       :
                       : "s15", "memory");
        dst[i] = (int8_t)et_ssat8(c + zero);
    }
    __asm volatile("vmsr fpscr, %0" : : "r"(fpscr) : "memory");
}

/* codes sat8(round_nearest(x / scale) + zero) of n floats (|v| <= 250, |v + zero| <= 250) */
static void et_nearest_codes(const float *x, int8_t *dst, int32_t n, float scale,
                             int32_t zero)
{
    const uint32_t cz = 0x00400000u + ((uint32_t)zero << 23);   /* 2^22 + zero * 2^23 */
    for (int32_t i = 0; i < n; i++) {
        int32_t t, u;
        __asm volatile("vldmia %[p]!, {s15}\n\t"
                       "vdiv.f32 s15, s15, %[d]\n\t"
                       "vcvt.s32.f32 s15, s15, #23\n\t"
                       "vmov %[t], s15\n\t"
                       "add %[u], %[cz], %[t], asr #31\n\t"
                       "add %[u], %[u], %[t]\n\t"
                       "ssat %[u], #8, %[u], asr #23\n\t"
                       "strb %[u], [%[o]], #1"
                       : [p] "+r"(x), [o] "+r"(dst), [t] "=&r"(t), [u] "=&r"(u)
                       : [d] "t"(scale), [cz] "r"(cz)
                       : "s15", "memory");
    }
}

/* a kept row requantized with the tensor's new qparams: floor or nearest (fast: the row
 * constants give no NaN and the tensor's values v = w_f / scale are in the forms' range) */
static ET_NOINLINE void et_requantize_kept(et_row_step r, int8_t *w, const int32_t *g,
                                           int32_t k, et_qparams qp, int mode)
{
    float buf[ET_CHUNK];
    for (int32_t c0 = 0; c0 < k; c0 += ET_CHUNK) {
        int32_t n = k - c0 < ET_CHUNK ? k - c0 : ET_CHUNK;
        et_stepped_store(r, w + c0, g + c0, n, buf);
        if (mode == ET_ROUND_FLOOR) {
            et_quotients(buf, n, qp.scale);
            et_floor_codes(buf, w + c0, n, qp.zero);
        } else {
            et_nearest_codes(buf, w + c0, n, qp.scale, qp.zero);
        }
    }
}

/* the fast per-tensor forms apply to the tensor's values [vlo, vhi] = [lo, hi] / scale */
static int et_tensor_fast(int mode, float vlo, float vhi, int32_t zero)
{
    if (mode == ET_ROUND_FLOOR) return vlo >= -1048576.0f && vhi <= 1048576.0f;
    return mode == ET_ROUND_NEAREST && vlo >= -250.0f && vhi <= 250.0f &&
           vlo + (float)zero >= -250.0f && vhi + (float)zero <= 250.0f;
}
#endif

#if !ET_UPD_ASM   /* never called: the fast forms are ARMv7E-M only */
#define et_stepped_range_fast et_stepped_range
static int et_tensor_fast(int mode, float vlo, float vhi, int32_t zero)
{
    (void)mode, (void)vlo, (void)vhi, (void)zero;
    return 0;
}
static void et_requantize_kept(et_row_step r, int8_t *w, const int32_t *g, int32_t k,
                               et_qparams qp, int mode)
{
    (void)r, (void)w, (void)g, (void)k, (void)qp, (void)mode;
}
#else
#define et_stepped_range_fast et_stepped_range_pairs
#endif

/* Trainer._apply_weight (one scale for the tensor): dequantize, step, observe the new range
 * over all rows, then recompute each row's new weights and requantize them in place */
static void et_apply_weight(const et_ctx *c, et_wlayer *L, const uint8_t *rows)
{
    int32_t O = L->g.c_out, K = et_k(L), old_zero = L->w_zero;
    float glo = 0.0f, ghi = 0.0f;
    for (int32_t o = 0; o < O; o++) {
        float lo, hi;
        et_row_step r = et_row_step_of(c, L, o, L->w_scale[o], old_zero);
        if ((!rows || rows[o]) && ET_UPD_ASM && et_row_step_no_nan(&r))
            et_stepped_range_fast(r, L->w + o * K, L->gw + o * K, K, &lo, &hi);
        else if (!rows || rows[o])
            et_stepped_range(r, L->w + o * K, L->gw + o * K, K, &lo, &hi);
        else
            et_dequantized_range(L->w + o * K, K, old_zero, L->w_scale[o], &lo, &hi);
        glo = o == 0 ? lo : et_minf(glo, lo);
        ghi = o == 0 ? hi : et_maxf(ghi, hi);
    }
    et_range_observe(&L->w_range[0], glo, ghi, c->cfg->rate_weight);
    et_qparams qp = et_range_qparams(&L->w_range[0], 0, 0);
    uint32_t base = et_call_base(c, c->cfg->round_update);
    int fast = ET_UPD_ASM && et_finite(glo) && et_finite(ghi) &&
               et_tensor_fast(c->cfg->round_update, glo / qp.scale, ghi / qp.scale, qp.zero);
    for (int32_t o = 0; o < O; o++) {
        et_row_step r = et_row_step_of(c, L, o, L->w_scale[o], old_zero);
        if (fast && (!rows || rows[o]) && et_row_step_no_nan(&r))
            et_requantize_kept(r, L->w + o * K, L->gw + o * K, K, qp, c->cfg->round_update);
        else
            et_requantize_stepped_row(r, !rows || rows[o], L->w + o * K, L->gw + o * K, K,
                                      qp, c->cfg->round_update, base, (uint32_t)(o * K));
    }
    et_weight_qparams(c, L);
    ET_TRACE_T(L->trace_gw, L->w, O * K);
    ET_TRACE_T(L->trace_gw + 1, L->w_scale, 4);
    ET_TRACE_T(L->trace_gw + 2, &L->w_zero, 4);
}

/* Trainer._apply_bias */
static void et_apply_bias(const et_ctx *c, et_wlayer *L, float s_g, const uint8_t *rows)
{
    int32_t O = L->g.c_out, *g = L->gb;
    uint32_t base = et_call_base(c, c->cfg->round_update);
    for (int32_t o = 0; o < O; o++) {
        if (rows && !rows[o]) continue;         /* dropped channels keep their bias */
        float s_b = L->b_scale[o];
        float b_f = (float)L->b[o] * s_b - et_step(c, g[o], s_g, L->gb_stats, 1);
        float v = et_clipf(b_f / s_b, -2147483648.0f, 2147483520.0f);
        int64_t r = et_round_f32(v, (et_round_mode)c->cfg->round_update,
                                 et_bits_for(c->cfg->round_update, base, (uint32_t)o));
        L->b[o] = et_sat(r, ET_I32_MIN, ET_I32_MAX);
    }
    ET_TRACE_T(L->trace_gw + 3, L->b, 4 * O);
}

/* Trainer._update_layer: weight rows (filters) first, then the bias as one row */
void et_update_weight(const et_ctx *c, et_wlayer *L)
{
    const uint8_t *rows = 0;
    if (c->cfg->partial && L->train_w) {        /* rows kept for at least one sample */
        for (int32_t b = 1; b < c->batch; b++)
            for (int32_t o = 0; o < L->g.c_out; o++) L->kept[o] |= L->kept[b * L->g.c_out + o];
        rows = L->kept;
    }
    if (L->train_w) {
        uint8_t bound[ET_CODE_BOUND_ROWS];      /* the per-channel rows' code bounds */
        int rows_bound = ET_UPD_ASM && c->cfg->weight_channels &&
                         L->g.c_out <= ET_CODE_BOUND_ROWS && et_k(L) >= ET_TABLE_MIN_K(1);
        et_standardize_rows(c, L->gw, L->g.c_out, et_k(L), L->s_wgrad, L->g_stats, rows,
                            (int32_t)L->g_amax1 - 1, L->s_g, rows_bound ? bound : 0);
        if (c->cfg->weight_channels)
            et_apply_weight_rows(c, L, rows, rows_bound ? bound : 0);
        else
            et_apply_weight(c, L, rows);
    }
    if (L->train_b) {
        float s_g;
        et_standardize_rows(c, L->gb, 1, L->g.c_out, L->s_bgrad, L->gb_stats, 0, -1, &s_g, 0);
        et_apply_bias(c, L, s_g, rows);
    }
}
