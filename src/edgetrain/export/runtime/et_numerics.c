/* edgetrain integer and fixed-point primitives (see et_numerics.h and docs/numerics.md).
 * Each function is the line-by-line translation of its namesake in edgetrain.numerics. */
#include "et_numerics.h"

#include <string.h>

int et_error = ET_OK;

void et_fail(int code)
{
    if (et_error == ET_OK) et_error = code;
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

/* ------------------------------------------------------------------ stream */

uint32_t et_xorshift32(uint32_t x)
{
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}


void et_stream_seed(et_stream *s, uint32_t seed)
{
    s->state = seed ? seed : 0x6D2B79F5u;   /* never 0 */
}

uint32_t et_stream_next(et_stream *s)
{
    s->state = et_xorshift32(s->state);
    return s->state;
}

/* ---------------------------------------------------------------- rounding */

#define ET_F32_LIMIT 1099511627776.0f   /* 2^40 */

int64_t et_floor_f32(float v)
{
    if (!(v <= ET_F32_LIMIT && v >= -ET_F32_LIMIT)) {   /* also NaN */
        et_fail(ET_ERR_ROUND_RANGE);
        return 0;
    }
    int64_t i = (int64_t)v;                 /* truncates toward zero, exact */
    return ((float)i > v) ? i - 1 : i;
}



/* ------------------------------------------------------------------ qparams */

float et_pow2_ceil(float s)
{
    uint32_t u = f32_bits(s);
    uint32_t e = u & 0x7F800000u;
    uint32_t bump = (u & 0x007FFFFFu) ? 0x00800000u : 0u;
    return bits_f32(e + bump);
}

et_qparams et_from_range_asym(float lo, float hi, int pow2)
{
    et_qparams qp;
    float s = et_np_maximum((hi - lo) / 255.0f, ET_S_MIN);
    s = pow2 ? et_pow2_ceil(s) : s;
    qp.scale = s;
    qp.zero = et_sat(et_floor_f32(-lo / s) - 128, ET_QMIN, ET_QMAX);
    return qp;
}


float et_dequantize(int32_t q, et_qparams qp)
{
    return (float)(q - qp.zero) * qp.scale;
}

/* ------------------------------------------------------------ requantization */

et_multiplier et_multiplier_bad(void)
{
    et_multiplier out = {0, 0};
    et_fail(ET_ERR_MULTIPLIER);
    return out;
}


/* --------------------------------------------------------------- fixed point */

static const int64_t et_taylor_q30[10] = {   /* round(2^30 / n!) */
    1073741824, 1073741824, 536870912, 178956971, 44739243,
    8947849, 1491308, 213044, 26631, 2959
};

#define ET_T_MIN (-32 * ET_ONE_Q30)

int64_t et_exp_q30(int64_t t)
{
    if (t > 0) {
        et_fail(ET_ERR_EXP_RANGE);
        return 0;
    }
    if (t < ET_T_MIN) t = ET_T_MIN;
    int64_t k = (-t) / ET_LN2_Q30;          /* non-negative: floor */
    int64_t r = t + k * ET_LN2_Q30;         /* Q30 in (-ln2, 0] */
    int64_t acc = et_taylor_q30[9];
    for (int n = 8; n >= 0; n--)
        acc = et_taylor_q30[n] + et_asr64(acc * r, 30);
    return et_asr64(acc, (int)(k < 62 ? k : 62));
}

int64_t et_log2_q30(int64_t x)
{
    if (x < 1 || x >= ((int64_t)1 << 62)) {
        et_fail(ET_ERR_LOG_RANGE);
        return 0;
    }
    int n = 0;                              /* floor(log2 x) */
    while ((x >> (n + 1)) != 0) n++;
    int64_t y = n <= 30 ? x << (30 - n) : x >> (n - 30);   /* Q30 in [1, 2) */
    int64_t out = (int64_t)(n - 30) * 65536;
    for (int bit = 15; bit >= 0; bit--) {
        y = (y * y) >> 30;                  /* Q30 in [1, 4) */
        if (y >= ((int64_t)2 << 30)) {
            y >>= 1;
            out += (int64_t)1 << bit;
        }
    }
    return out;
}

int64_t et_softmax_ce_q30(const int8_t *logits, int k, float s_out, int label,
                          int64_t *grad, int64_t *exps)
{
    int32_t qmax = logits[0];
    for (int i = 1; i < k; i++)
        if (logits[i] > qmax) qmax = logits[i];
    float scale = s_out * 1073741824.0f;    /* float32 scalar, as in Python */
    int64_t total = 0, t_label = 0;
    for (int i = 0; i < k; i++) {
        float v = (float)(logits[i] - qmax) * scale;
        if (v < -34359738368.0f) v = -34359738368.0f;   /* T_MIN = -32 * 2^30 */
        int64_t t = et_round_f32(v, ET_ROUND_NEAREST, 0);   /* Q30, <= 0 */
        if (i == label) t_label = t;
        exps[i] = et_exp_q30(t);
        total += exps[i];
    }
    for (int i = 0; i < k; i++)
        grad[i] = (exps[i] << 30) / total;  /* both positive: floor */
    grad[label] -= ET_ONE_Q30;
    return et_asr64(et_log2_q30(total) * ET_LN2_Q16, 16) - et_asr64(t_label, 14);
}

/* ------------------------------------------- requantization by the high word */

/* the proof is at et_rqw in et_numerics.h */
et_rqw et_rqw_prepare(et_multiplier mul, uint32_t emax, et_round_mode mode)
{
    et_rqw r = {0, 0, 0};
    if (mode == ET_ROUND_STOCHASTIC || mul.m <= 0 || mul.m >= ((int64_t)1 << 24) ||
        mul.shift < 0 || emax > 32768u ||
        (((int64_t)emax * mul.m) >> (mul.shift < 62 ? mul.shift : 62)) >= 32767)
        return r;                                   /* a result might leave int16 */
    int tz = et_trailing_zeros((uint32_t)mul.m);
    if (mode == ET_ROUND_NEAREST && et_tie_possible(mul, tz, emax, 15)) return r;
    for (int sh = 8; sh <= 16; sh += 8) {
        if (!et_scaled_m(mul, tz, 16 + sh, &r.m)) continue;
        r.ra = mode == ET_ROUND_NEAREST ? (int32_t)1 << (sh - 1) : 0;
        r.sh = (uint8_t)sh;
        return r;
    }
    return r;
}
