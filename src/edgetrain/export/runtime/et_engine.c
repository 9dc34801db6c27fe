/* edgetrain int8 training engine (see et_engine.h): each function is the translation of the
 * Trainer method named in its comment, in edgetrain/engine/int8.py. Element i of a tensor is
 * its row-major index over the whole batch, which is also its stochastic-rounding index. */
#include "et_engine.h"

#include <math.h>
#include <string.h>

#define ET_I32_MIN (-2147483647 - 1)
#define ET_I32_MAX 2147483647
#define ET_Q30 9.313225746154785e-10f          /* 2^-30 */
#define ET_S_MIN_F 9.094947017729282e-13f      /* 2^-40, numerics.qparams.S_MIN */
#define ET_CHANNEL_FRACTION 64.0f

/* the per-element loops of the update kept out of their callers (registers for the loop) */
#if defined(__GNUC__)
#define ET_NOINLINE __attribute__((noinline))
#else
#define ET_NOINLINE
#endif

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

static uint32_t et_call_base(const et_ctx *c, int mode)
{
    return mode == ET_ROUND_STOCHASTIC ? et_stream_next(c->rng) : 0u;
}

static float et_maxf(float a, float b) { return a > b ? a : b; }
static float et_minf(float a, float b) { return a < b ? a : b; }
static float et_clipf(float v, float lo, float hi) { return et_minf(et_maxf(v, lo), hi); }

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

et_qparams et_range_qparams(const et_range *r, int symmetric, int pow2)
{
    return et_from_range(r->lo, r->hi, symmetric, pow2);
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

static int8_t et_sat8(int64_t v) { return (int8_t)et_sat(v, ET_QMIN, ET_QMAX); }

/* n int32 accumulators plus a bias requantized into int8 codes, element j0 + i drawing the
 * stochastic bits of index j0 + i (the rounding mode a constant at each call site: specialized
 * loops); acc[i] + bias must not leave int32 (the caller checks) */
static inline void et_requant_span(const int32_t *acc, int32_t bias, int8_t *dst, int32_t n,
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

static void et_requant_row(const int32_t *acc, int32_t bias, int8_t *dst, int32_t n,
                           et_multiplier m, int32_t zero, int mode, uint32_t base, uint32_t j0)
{
    switch (mode) {
    case ET_ROUND_FLOOR:
        et_requant_span(acc, bias, dst, n, m, zero, ET_ROUND_FLOOR, base, j0);
        break;
    case ET_ROUND_NEAREST:
        et_requant_span(acc, bias, dst, n, m, zero, ET_ROUND_NEAREST, base, j0);
        break;
    default: et_requant_span(acc, bias, dst, n, m, zero, (et_round_mode)mode, base, j0); break;
    }
}

/* Trainer._forward, input: quantize with the input tracker's qparams, rounding nearest */
void et_quantize_input(const float *x, et_tensor *t, int32_t batch, const et_range *r,
                       int pow2)
{
    t->qp = et_range_qparams(r, 0, pow2);
    for (int32_t i = 0; i < t->n * batch; i++)
        t->q[i] = et_quantize(x[i], t->qp, ET_ROUND_NEAREST, 0);
}

/* -------------------------------------------------------------- weight layers */

static int32_t et_out_per_sample(const et_wlayer *L) { return L->g.c_out * L->g.ho * L->g.wo; }
static int32_t et_in_per_sample(const et_wlayer *L) { return L->g.c_in * L->g.h * L->g.w; }
static int32_t et_k(const et_wlayer *L)
{
    return (L->g.c_in / L->g.groups) * L->g.kh * L->g.kw;
}

/* Trainer._weights: this step's weight scales (per channel or one) and zero point */
static void et_weight_qparams(const et_ctx *c, et_wlayer *L)
{
    int32_t O = L->g.c_out;
    if (L->w_fixed) return;                     /* computed at export time (flash) */
    if (c->cfg->weight_channels) {
        for (int32_t o = 0; o < O; o++)
            L->w_scale[o] = et_range_qparams(&L->w_range[o], 1, 0).scale;
        L->w_zero = 0;
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
    return et_requantize(L->b[o], mb, 0, ET_ROUND_NEAREST, 0, ET_I32_MIN, ET_I32_MAX);
}

/* running min / max of n int32 */
static void et_minmax_update(const int32_t *a, int32_t n, int32_t *mn, int32_t *mx)
{
    int32_t lo = *mn, hi = *mx;
    for (int32_t i = 0; i < n; i++) {
        lo = a[i] < lo ? a[i] : lo;
        hi = a[i] > hi ? a[i] : hi;
    }
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

/* Trainer._fwd_weight_q: the channel ranges come from the accumulators' extremes plus the
 * bias (adding a constant keeps the order), so the sums are read once before requantizing */
void et_fwd_weight(const et_ctx *c, et_wlayer *L, const et_tensor *x, et_tensor *y,
                   int observe)
{
    int32_t B = c->batch, O = L->g.c_out, P = L->g.ho * L->g.wo, ny = O * P;
    et_weight_qparams(c, L);
    for (int32_t b = 0; b < B; b++)
        et_forward_acc(L, x->q + b * x->n, x->qp.zero, L->acc + b * ny);
    float lo = 0.0f, hi = 0.0f;
    int fused = 1;                              /* every sum + bias fits int32 */
    for (int32_t o = 0; o < O; o++) {
        float s_acc = x->qp.scale * L->w_scale[o];
        int32_t bias = et_bias_acc(L, o, s_acc), amn = ET_I32_MAX, amx = ET_I32_MIN;
        for (int32_t b = 0; b < B; b++) et_minmax_update(L->acc + b * ny + o * P, P, &amn, &amx);
        int64_t mn = (int64_t)amn + bias, mx = (int64_t)amx + bias;
        fused &= mn >= ET_I32_MIN && mx <= ET_I32_MAX;
        float clo = (float)mn * s_acc, chi = (float)mx * s_acc;
        lo = o == 0 ? clo : et_minf(lo, clo);
        hi = o == 0 ? chi : et_maxf(hi, chi);
    }
    if (!fused) et_add_biases_saturated(L, x->qp.scale, B);
    lo = et_clipf(lo, L->clamp_lo, L->clamp_hi);
    hi = et_clipf(hi, L->clamp_lo, L->clamp_hi);
    y->qp = et_tracked_qparams(c, L->a_range, lo, hi, c->cfg->rate_activation, observe);
    const int mode = c->cfg->round_forward;     /* locals: int8 stores alias everything */
    const int32_t *acc = L->acc, zero = y->qp.zero;
    int8_t *yq = y->q;
    uint32_t base = et_call_base(c, mode);
    for (int32_t o = 0; o < O; o++) {
        float s_acc = x->qp.scale * L->w_scale[o];
        int32_t bias = fused ? et_bias_acc(L, o, s_acc) : 0;
        et_multiplier m = et_multiplier_from(s_acc / y->qp.scale);
        for (int32_t b = 0; b < B; b++) {
            int32_t i = b * ny + o * P;
            et_requant_row(acc + i, bias, yq + i, P, m, zero, mode, base, (uint32_t)i);
        }
    }
    L->s_x = x->qp.scale;
    et_trace_tensor(y, B);
}

/* Trainer._select: per sample keep the top-k output channels by error magnitude */
static void et_select(const et_ctx *c, et_wlayer *L, float s_e)
{
    int32_t B = c->batch, O = L->g.c_out, P = L->g.ho * L->g.wo;
    float lmin = c->cfg->lambda_min, lmax = c->cfg->lambda_max;
    for (int32_t b = 0; b < B; b++) {
        int16_t *ec = L->ec + b * O * P;
        uint8_t *kept = L->kept + b * O;
        int64_t total = 0;
        for (int32_t o = 0; o < O; o++) {
            int32_t m = 0;
            for (int32_t p = 0; p < P; p++) m += ec[o * P + p] < 0 ? -ec[o * P + p] : ec[o * P + p];
            L->dxacc[o] = m;                          /* magnitudes (acc is free here) */
            total += m;
        }
        float mean = ((float)total * s_e) / (float)(O * P);
        if (mean > L->emax[0]) L->emax[0] = mean;
        float ratio = L->emax[0] > 0.0f ? mean / L->emax[0] : 0.0f;
        float frac = lmin + ratio * (lmax - lmin);
        int64_t k = et_floor_f32(frac * (float)O);
        if (k < 1) k = 1;
        if (k > O) k = O;
        for (int32_t o = 0; o < O; o++) {          /* rank = channels ahead in the stable order */
            int32_t rank = 0;
            for (int32_t j = 0; j < O; j++)
                rank += L->dxacc[j] > L->dxacc[o] || (L->dxacc[j] == L->dxacc[o] && j < o);
            kept[o] = rank < k;
            if (!kept[o])
                for (int32_t p = 0; p < P; p++) ec[o * P + p] = 0;
        }
    }
}

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
    return emax * (xmn > xmx ? xmn : xmx);      /* <= 2^15 * 255: no overflow */
}

/* Trainer._weight_grads: int sums over the batch (gradient scales kept for the update) */
static void et_weight_grads(const et_ctx *c, et_wlayer *L, const et_tensor *x, float s_e)
{
    int32_t B = c->batch, O = L->g.c_out, P = L->g.ho * L->g.wo, K = et_k(L);
    L->s_wgrad = s_e * L->s_x;
    L->s_bgrad = s_e;
    L->g_amax1 = 0;                             /* unknown: the update scans the gradient */
    if (L->train_w && !L->conv && B == 1)       /* <= 2^15 * 255 + 1 < 2^24 */
        L->g_amax1 = (unsigned)et_outer_abs_max(L->ec, O, x->q, L->g.c_in, x->qp.zero) + 1u;
    if (L->train_w) {
        for (int32_t i = 0; i < O * K; i++) L->gw[i] = 0;
        for (int32_t b = 0; b < B; b++) {
            const uint8_t *sel = c->cfg->partial ? L->kept + b * O : 0;
            const int16_t *ec = L->ec + b * O * P;
            const int8_t *xb = x->q + b * x->n;
            if (L->conv)
                et_conv_bwd_w(&L->g, ec, sel, xb, x->qp.zero, L->gw, &L->sc_bwd);
            else
                et_linear_bwd_w(ec, sel, xb, x->qp.zero, L->g.c_in, O, L->gw);
        }
    }
    if (L->train_b)
        for (int32_t o = 0; o < O; o++) {
            int32_t s = 0;
            for (int32_t b = 0; b < B; b++)
                for (int32_t p = 0; p < P; p++) s += L->ec[(b * O + o) * P + p];
            L->gb[o] = s;
        }
}

/* Trainer._error_source: per-channel weight scales folded into int16 errors */
static float et_error_source(const et_ctx *c, et_wlayer *L, float s_e)
{
    int32_t n = c->batch * et_out_per_sample(L), P = L->g.ho * L->g.wo, O = L->g.c_out;
    if (!c->cfg->weight_channels)
        return s_e * L->w_scale[0];
    float s_max = L->w_scale[0];
    for (int32_t o = 1; o < O; o++) s_max = et_maxf(s_max, L->w_scale[o]);
    for (int32_t o = 0; o < O; o++) {
        et_multiplier m = et_multiplier_from((L->w_scale[o] / s_max) * ET_CHANNEL_FRACTION);
        et_rq32 r = et_rq32_prepare(m, 16);     /* int16 errors; the result fits int16 */
        for (int32_t b = 0; b < n / (O * P); b++) {
            int16_t *ec = L->ec + (b * O + o) * P;
            if (r.fast)
                for (int32_t p = 0; p < P; p++)
                    ec[p] = (int16_t)et_rq32_shift_small(&r, ec[p], ET_ROUND_NEAREST, 0u);
            else
                for (int32_t p = 0; p < P; p++)
                    ec[p] = (int16_t)et_requantize32(ec[p], m, 0, ET_ROUND_NEAREST, 0,
                                                     ET_I32_MIN, ET_I32_MAX);
        }
    }
    return (s_e * s_max) / ET_CHANNEL_FRACTION;
}

/* ec = eq - ze as int16 (four codes per word on M4/M7: SXTB16 splits even and odd bytes,
 * SSUB16 centres two at a time, PKHBT / PKHTB put them back in order) */
static void et_centre_errors(const int8_t *eq, int32_t ze, int32_t n, int16_t *ec)
{
    int32_t i = 0;
#if ET_SIMD8
    const uint32_t zz = (uint32_t)(uint16_t)ze * 0x00010001u;
    for (; i + 4 <= n; i += 4) {
        uint32_t v, ev, od, lo, hi;
        memcpy(&v, eq + i, 4);
        __asm("sxtb16 %0, %1" : "=r"(ev) : "r"(v));              /* bytes 0, 2 */
        __asm("sxtb16 %0, %1, ror #8" : "=r"(od) : "r"(v));      /* bytes 1, 3 */
        __asm("ssub16 %0, %1, %2" : "=r"(ev) : "r"(ev), "r"(zz));
        __asm("ssub16 %0, %1, %2" : "=r"(od) : "r"(od), "r"(zz));
        __asm("pkhbt %0, %1, %2, lsl #16" : "=r"(lo) : "r"(ev), "r"(od));   /* 0, 1 */
        __asm("pkhtb %0, %1, %2, asr #16" : "=r"(hi) : "r"(od), "r"(ev));   /* 2, 3 */
        memcpy(ec + i, &lo, 4);
        memcpy(ec + i + 2, &hi, 4);
    }
#endif
    for (; i < n; i++) ec[i] = (int16_t)(eq[i] - ze);
}

/* Trainer._bwd_weight_q */
void et_bwd_weight(const et_ctx *c, et_wlayer *L, const et_tensor *x, const et_tensor *e,
                   et_tensor *dx)
{
    int32_t B = c->batch, ny = et_out_per_sample(L), nx = et_in_per_sample(L);
    et_centre_errors(e->q, e->qp.zero, B * ny, L->ec);
    if (c->cfg->partial && L->train_w) et_select(c, L, e->qp.scale);
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
        for (int32_t i = 0; i < nx; i++) {
            mn = acc[i] < mn ? acc[i] : mn;
            mx = acc[i] > mx ? acc[i] : mx;
        }
    }
    dx->qp = et_tracked_qparams(c, L->dx_range, (float)mn * s_src, (float)mx * s_src,
                                c->cfg->rate_error, 1);
    et_multiplier m = et_multiplier_from(s_src / dx->qp.scale);
    const int mode = c->cfg->round_backward;
    const int32_t *acc = L->dxacc, zero = dx->qp.zero;
    int8_t *dq = dx->q;
    uint32_t base = et_call_base(c, mode);
    et_requant_row(acc, 0, dq, B * nx, m, zero, mode, base, 0u);
}

/* ------------------------------------------------------------------- update */

/* the largest |g| of n values */
static int32_t et_abs_max(const int32_t *g, int32_t n)
{
    int32_t mn = 0, mx = 0, i = 0;
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

static void et_gradient_row_mode(int32_t *gr, int32_t k, et_multiplier m, int mode,
                                 uint32_t base, uint32_t j0, int32_t *s1, int32_t *s2)
{
    switch (mode) {
    case ET_ROUND_FLOOR: et_gradient_row(gr, k, m, ET_ROUND_FLOOR, base, j0, s1, s2); break;
    case ET_ROUND_NEAREST: et_gradient_row(gr, k, m, ET_ROUND_NEAREST, base, j0, s1, s2); break;
    default: et_gradient_row(gr, k, m, (et_round_mode)mode, base, j0, s1, s2); break;
    }
}

/* Trainer._quantize_gradient + _int_row_stats + GradStats.observe, in place on g: g becomes
 * the int8 gradient, s_g[r] its scale per row (one scale for all rows unless grad_rows).
 * Row r's moving statistics are stats[r].lo (mean) and stats[r].hi (variance). */
static void et_standardize_rows(const et_ctx *c, int32_t *g, int32_t rows, int32_t k,
                                float scale, et_range *stats, const uint8_t *kept_rows,
                                int32_t g_absmax, float *s_g)
{
    const int mode = c->cfg->round_gradient, grad_rows = c->cfg->grad_rows;
    const float rate_mean = c->cfg->rate_grad_mean, rate_var = c->cfg->rate_grad_var;
    int32_t amax = grad_rows ? 0 : (g_absmax >= 0 ? g_absmax : et_abs_max(g, rows * k));
    float s_all = grad_rows ? 0.0f : et_maxf(((float)amax * scale) / 127.0f, ET_S_MIN_F);
    uint32_t base = et_call_base(c, mode);
    float n = (float)k;
    int seen = stats[0].seen;                   /* one flag for all rows, as GradStats */
    for (int32_t r = 0; r < rows; r++) {
        int32_t *gr = g + r * k, s1, s2;
        float sg = grad_rows ? et_maxf(((float)et_abs_max(gr, k) * scale) / 127.0f, ET_S_MIN_F)
                             : s_all;
        et_multiplier m = et_multiplier_from(scale / sg);
        s_g[r] = sg;
        et_gradient_row_mode(gr, k, m, mode, base, (uint32_t)(r * k), &s1, &s2);
        float mean_q = (float)s1 / n;
        float var_q = et_maxf((float)s2 / n - mean_q * mean_q, 0.0f);
        float mean = mean_q * sg, var = (var_q * sg) * sg;
        et_range *st = &stats[r];
        st->seen = 1;
        if (kept_rows && !kept_rows[r]) continue;   /* dropped rows keep their statistics */
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

static ET_NOINLINE void et_quantize_row(const float *src, int8_t *dst, int32_t n, et_qparams qp,
                                        int mode, uint32_t base, uint32_t j0, int in_range)
{
    if (in_range)
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

/* one kept row stepped into wrow; returns the row's range in lo/hi (elements taken in pairs:
 * the smaller of two against lo, the larger against hi, 3 comparisons instead of 4) */
static ET_NOINLINE void et_stepped_row(et_row_step r, const int8_t *w, const int32_t *g,
                                       int32_t k, float *wrow, float *lo_out, float *hi_out)
{
    float wf = et_stepped(r, w[0], g[0]), lo = wf, hi = wf;
    int32_t i = 1;
    wrow[0] = wf;
    for (; i + 2 <= k; i += 2) {
        float a = et_stepped(r, w[i], g[i]), b = et_stepped(r, w[i + 1], g[i + 1]);
        wrow[i] = a;
        wrow[i + 1] = b;
        int a_small = a < b;
        lo = et_minf(lo, a_small ? a : b);
        hi = et_maxf(hi, a_small ? b : a);
    }
    if (i < k) {
        wf = et_stepped(r, w[i], g[i]);
        wrow[i] = wf;
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
    return et_finite(255.0f * r->scale) && et_finite(r->s_g) && et_finite(r->mu) &&
           r->sigma > 0.0f && et_finite(r->sigma) && r->lr != 0.0f && et_finite(r->lr);
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

/* per-channel weights: each row is dequantized, stepped, re-ranged and requantized on its
 * own (one pass, the new float row kept in `row`); same numbers as the whole-tensor form.
 * Rows dropped by a partial update keep scale and codes, so they are not computed at all. */
static void et_apply_weight_rows(const et_ctx *c, et_wlayer *L, const uint8_t *rows)
{
    int32_t O = L->g.c_out, K = et_k(L);
    const int mode = c->cfg->round_update;
    const float rate = c->cfg->rate_weight;
    uint32_t base = et_call_base(c, mode);
    for (int32_t o = 0; o < O; o++) {
        if (rows && !rows[o]) continue;
        et_row_step r = et_row_step_of(c, L, o, L->w_scale[o], L->w_zero);
        float lo, hi;
        et_stepped_row(r, L->w + o * K, L->gw + o * K, K, L->wrow, &lo, &hi);
        et_range_observe(&L->w_range[o], lo, hi, rate);
        et_qparams qp = et_range_qparams(&L->w_range[o], 1, 0);
        et_quantize_row(L->wrow, L->w + o * K, K, qp, mode, base, (uint32_t)(o * K),
                        et_row_in_range(&r, lo, hi, qp.scale));
    }
    et_weight_qparams(c, L);
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

/* Trainer._apply_weight (one scale for the tensor): dequantize, step, observe the new range
 * over all rows, then recompute each row's new weights and requantize them in place */
static void et_apply_weight(const et_ctx *c, et_wlayer *L, const uint8_t *rows)
{
    int32_t O = L->g.c_out, K = et_k(L), old_zero = L->w_zero;
    float glo = 0.0f, ghi = 0.0f;
    for (int32_t o = 0; o < O; o++) {
        float lo, hi;
        et_row_step r = et_row_step_of(c, L, o, L->w_scale[o], old_zero);
        if (!rows || rows[o])
            et_stepped_range(r, L->w + o * K, L->gw + o * K, K, &lo, &hi);
        else
            et_dequantized_range(L->w + o * K, K, old_zero, L->w_scale[o], &lo, &hi);
        glo = o == 0 ? lo : et_minf(glo, lo);
        ghi = o == 0 ? hi : et_maxf(ghi, hi);
    }
    et_range_observe(&L->w_range[0], glo, ghi, c->cfg->rate_weight);
    et_qparams qp = et_range_qparams(&L->w_range[0], 0, 0);
    uint32_t base = et_call_base(c, c->cfg->round_update);
    for (int32_t o = 0; o < O; o++) {
        et_row_step r = et_row_step_of(c, L, o, L->w_scale[o], old_zero);
        et_requantize_stepped_row(r, !rows || rows[o], L->w + o * K, L->gw + o * K, K, qp,
                                  c->cfg->round_update, base, (uint32_t)(o * K));
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
        et_standardize_rows(c, L->gw, L->g.c_out, et_k(L), L->s_wgrad, L->g_stats, rows,
                            (int32_t)L->g_amax1 - 1,
                            L->s_g);
        if (c->cfg->weight_channels)
            et_apply_weight_rows(c, L, rows);
        else
            et_apply_weight(c, L, rows);
    }
    if (L->train_b) {
        float s_g;
        et_standardize_rows(c, L->gb, 1, L->g.c_out, L->s_bgrad, L->gb_stats, 0, -1, &s_g);
        et_apply_bias(c, L, s_g, rows);
    }
}

/* ----------------------------------------------------------- integer ops */


/* y = min(max(x, zero), qmax) per element (relu / relu6 on int8 codes); y may be x */
static void et_relu_span(const int8_t *x, int8_t *y, int32_t n, int32_t zero, int32_t qmax)
{
    int32_t i = 0;
#if ET_SIMD8
    const uint32_t zb = et_splat8(zero), qb = et_splat8(qmax);
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
        for (int32_t i = 0; i < e->n; i++) ein[i] = (int32_t)eb[i] - ze;
        if (op->kind == ET_MAXPOOL) {
            et_maxpool_bwd(&op->g, xb, yb, ein, eout);
        } else if (op->kind == ET_AVGPOOL) {
            et_avgpool_bwd(&op->g, ein, eout);
            divisor = op->g.kh * op->g.kw;
        } else {
            et_gap_bwd(ein, op->g.c, op->g.w, eout);
            divisor = op->g.w;
        }
        for (int32_t i = 0; i < dx->n; i++) db[i] = et_sat8((int64_t)eout[i] + ze);
    }
    dx->qp.scale = divisor != 1 ? e->qp.scale / (float)divisor : e->qp.scale;
    dx->qp.zero = ze;
}

/* ------------------------------------------------------------ add and merge */

static void et_minmax32(const int32_t *r, int32_t n, int32_t *mn, int32_t *mx)
{
    *mn = ET_I32_MAX;
    *mx = ET_I32_MIN;
    for (int32_t i = 0; i < n; i++) {
        if (r[i] < *mn) *mn = r[i];
        if (r[i] > *mx) *mx = r[i];
    }
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

/* sum over parts of requantize(q - zero, s_part / s_out, 0, mode) into r (one call each) */
static void et_requantized_sum(const et_ctx *c, const et_tensor *const *parts, int n, float s_out,
                               int mode, int32_t count, int32_t *r)
{
    for (int32_t i = 0; i < count; i++) r[i] = 0;
    for (int p = 0; p < n; p++) {
        const et_tensor *t = parts[p];
        et_multiplier m = et_multiplier_from(t->qp.scale / s_out);
        uint32_t base = et_call_base(c, mode);
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
    for (int32_t i = 0; i < count; i++) y->q[i] = et_sat8((int64_t)scratch[i] + qp.zero);
    y->qp = qp;
    et_trace_tensor(y, c->batch);
}

/* Trainer._merge_q */
void et_merge_errors(const et_ctx *c, et_range *em, const et_tensor *const *parts, int n,
                     et_tensor *out, int32_t *scratch)
{
    int32_t count = out->n * c->batch, mn, mx;
    float bound_lo = 0.0f, bound_hi = 0.0f;
    for (int p = 0; p < n; p++) {
        int32_t qmn = 127, qmx = -128;
        for (int32_t i = 0; i < count; i++) {
            if (parts[p]->q[i] < qmn) qmn = parts[p]->q[i];
            if (parts[p]->q[i] > qmx) qmx = parts[p]->q[i];
        }
        bound_lo += (float)(qmn - parts[p]->qp.zero) * parts[p]->qp.scale;
        bound_hi += (float)(qmx - parts[p]->qp.zero) * parts[p]->qp.scale;
    }
    if (!em->seen) et_range_observe(em, bound_lo, bound_hi, c->cfg->rate_error);
    et_qparams qp = et_range_qparams(em, 0, c->cfg->pow2);
    et_requantized_sum(c, parts, n, qp.scale, c->cfg->round_backward, count, scratch);
    et_minmax32(scratch, count, &mn, &mx);
    et_defer(em, (float)mn * qp.scale, (float)mx * qp.scale, c->cfg->rate_error);
    for (int32_t i = 0; i < count; i++) out->q[i] = et_sat8((int64_t)scratch[i] + qp.zero);
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
