/* edgetrain float training (see et_float.h): each function is the translation of the
 * Trainer method named in its comment (edgetrain/engine/int8.py, precisions `mixed` and
 * `float32`). Tensors are batch-first, channels-first per sample, as in the engine. */
#include "et_float.h"

#include <math.h>

static float et_fmax(float a, float b) { return a > b ? a : b; }
static float et_fmin(float a, float b) { return a < b ? a : b; }

static uint32_t et_f_base(const et_ctx *c, int mode)   /* one draw per rounding call */
{
    return mode == ET_ROUND_STOCHASTIC ? et_stream_next(c->rng) : 0u;
}

static int32_t et_f_k(const et_conv_geo *g) { return g->c_in / g->groups * g->kh * g->kw; }
static int32_t et_f_out(const et_conv_geo *g) { return g->c_out * g->ho * g->wo; }
static int32_t et_f_in(const et_conv_geo *g) { return g->c_in * g->h * g->w; }

void et_f_trace(const et_ftensor *t, uint16_t id, int32_t batch)
{
    (void)t;
    (void)id;
    (void)batch;
    if (id != ET_NO_TRACE) ET_TRACE_T(id, t->v, 4u * (uint32_t)(t->n * batch));
}

/* ------------------------------------------------------------------- operands */

/* a layer input: float32 values, or (mixed) int8 codes read centred, (float)(x - z_x) */
typedef struct { const float *f; const int8_t *q; int32_t zero; } et_fx;

/* weight j of row o: float32 value, or (mixed) dequantize(w, w_qp) = (float)(w - z) * s[o] */
static inline float et_fw(const et_flayer *L, int32_t o, int32_t j)
{
    const et_wlayer *q = L->q;
    return q ? (float)((int32_t)q->w[j] - q->w_zero) * q->w_scale[o] : L->w[j];
}

/* --------------------------------------------------------------- convolutions
 * Direct loops over (output channel, output position, input channel, kernel offset); a
 * linear layer is a 1x1 convolution of a 1x1 input. Padding contributes nothing. */

static int32_t et_f_maxi(int32_t a, int32_t b) { return a > b ? a : b; }
static int32_t et_f_mini(int32_t a, int32_t b) { return a < b ? a : b; }

/* kernel offsets [lo, hi) of output position o whose input o * stride - pad + k lies in
 * [0, n): the same terms, in the same order, as testing each offset */
static void et_f_offsets(int32_t o, int32_t stride, int32_t pad, int32_t k, int32_t n,
                         int32_t *lo, int32_t *hi)
{
    int32_t base = o * stride - pad;
    *lo = et_f_maxi(0, -base);
    *hi = et_f_mini(k, n - base);
}

/* output positions [lo, hi) of kernel offset k whose input o * stride - pad + k lies in
 * [0, n) (n_out outputs) */
static void et_f_outputs(int32_t k, int32_t stride, int32_t pad, int32_t n, int32_t n_out,
                         int32_t *lo, int32_t *hi)
{
    int32_t first = pad - k, last = n - 1 + pad - k;   /* o * stride in [first, last] */
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    *hi = last < 0 ? 0 : et_f_mini(n_out, last / stride + 1);
}

static float et_f_window_dot(const et_conv_geo *g, const float *x, const float *w, int32_t c0,
                             int32_t oh, int32_t ow)
{
    int32_t cg = g->c_in / g->groups, i0, i1, j0, j1;
    et_f_offsets(oh, g->sh, g->ph, g->kh, g->h, &i0, &i1);
    et_f_offsets(ow, g->sw, g->pw, g->kw, g->w, &j0, &j1);
    int32_t dh = oh * g->sh - g->ph, dw = ow * g->sw - g->pw;
    float s = 0.0f;
    for (int32_t ci = 0; ci < cg; ci++)
        for (int32_t i = i0; i < i1; i++) {
            const float *xr = x + ((c0 + ci) * g->h + dh + i) * g->w + dw;
            const float *wr = w + (ci * g->kh + i) * g->kw;
            for (int32_t j = j0; j < j1; j++) s += xr[j] * wr[j];
        }
    return s;
}

/* Trainer._fwd_weight_f, one sample: y = W x + b */
static void et_f_conv_fwd(const et_conv_geo *g, const float *x, const float *w, const float *b,
                          float *y)
{
    int32_t og = g->c_out / g->groups, cg = g->c_in / g->groups, K = et_f_k(g);
    for (int32_t o = 0; o < g->c_out; o++)
        for (int32_t oh = 0; oh < g->ho; oh++)
            for (int32_t ow = 0; ow < g->wo; ow++)
                y[(o * g->ho + oh) * g->wo + ow] =
                    et_f_window_dot(g, x, w + o * K, (o / og) * cg, oh, ow) + b[o];
}

/* backward_input, one sample: dx = W^T e over the kept output channels */
static void et_f_conv_bwd_in(const et_flayer *L, const float *e, const uint8_t *kept,
                             float *dx)
{
    const et_conv_geo *g = &L->g;
    int32_t og = g->c_out / g->groups, cg = g->c_in / g->groups, K = et_f_k(g);
    for (int32_t i = 0; i < et_f_in(g); i++) dx[i] = 0.0f;
    for (int32_t o = 0; o < g->c_out; o++) {
        if (kept && !kept[o]) continue;
        int32_t c0 = (o / og) * cg, i0, i1, j0, j1;
        for (int32_t oh = 0; oh < g->ho; oh++)
            for (int32_t ow = 0; ow < g->wo; ow++) {
                float ev = e[(o * g->ho + oh) * g->wo + ow];
                if (ev == 0.0f) continue;
                et_f_offsets(oh, g->sh, g->ph, g->kh, g->h, &i0, &i1);
                et_f_offsets(ow, g->sw, g->pw, g->kw, g->w, &j0, &j1);
                int32_t dh = oh * g->sh - g->ph, dw = ow * g->sw - g->pw;
                for (int32_t ci = 0; ci < cg; ci++)
                    for (int32_t i = i0; i < i1; i++) {
                        float *dr = dx + ((c0 + ci) * g->h + dh + i) * g->w + dw;
                        int32_t wj = o * K + (ci * g->kh + i) * g->kw;
                        for (int32_t j = j0; j < j1; j++) dr[j] += ev * et_fw(L, o, wj + j);
                    }
            }
    }
}

/* sum over output positions of e[o, p] x[window(p) at (c, i, j)] */
static float et_f_grad_at(const et_conv_geo *g, const float *eo, const et_fx *x, int32_t c,
                          int32_t i, int32_t j)
{
    int32_t h0, h1, w0, w1;
    et_f_outputs(i, g->sh, g->ph, g->h, g->ho, &h0, &h1);
    et_f_outputs(j, g->sw, g->pw, g->w, g->wo, &w0, &w1);
    float s = 0.0f;
    for (int32_t oh = h0; oh < h1; oh++) {
        const float *er = eo + oh * g->wo;
        int32_t row = (c * g->h + oh * g->sh - g->ph + i) * g->w - g->pw + j;
        if (x->f) {
            for (int32_t ow = w0; ow < w1; ow++) s += er[ow] * x->f[row + ow * g->sw];
        } else {
            for (int32_t ow = w0; ow < w1; ow++)
                s += er[ow] * (float)((int32_t)x->q[row + ow * g->sw] - x->zero);
        }
    }
    return s;
}

/* backward_weight, one sample added to gw: dW[o] += e[o] x^T over the kept channels */
static void et_f_conv_bwd_w(const et_conv_geo *g, const float *e, const uint8_t *kept,
                            const et_fx *x, float *gw)
{
    int32_t og = g->c_out / g->groups, cg = g->c_in / g->groups, K = et_f_k(g);
    int32_t P = g->ho * g->wo;
    for (int32_t o = 0; o < g->c_out; o++) {
        if (kept && !kept[o]) continue;
        int32_t c0 = (o / og) * cg;
        for (int32_t ci = 0; ci < cg; ci++)
            for (int32_t i = 0; i < g->kh; i++)
                for (int32_t j = 0; j < g->kw; j++)
                    gw[o * K + (ci * g->kh + i) * g->kw + j] +=
                        et_f_grad_at(g, e + o * P, x, c0 + ci, i, j);
    }
}

/* ----------------------------------------------------------------- forward */

void et_f_input(const float *x, et_ftensor *t, int32_t batch)
{
    for (int32_t i = 0; i < t->n * batch; i++) t->v[i] = x[i];
    et_f_trace(t, t->trace, batch);
}

void et_f_fwd_weight(const et_ctx *c, const et_flayer *L, const et_ftensor *x, et_ftensor *y)
{
    for (int32_t b = 0; b < c->batch; b++)
        et_f_conv_fwd(&L->g, x->v + b * x->n, L->w, L->b, y->v + b * y->n);
    et_f_trace(y, y->trace, c->batch);
}

static void et_f_maxpool_fwd(const et_pool_geo *g, const float *x, float *y)
{
    for (int32_t ch = 0; ch < g->c; ch++)
        for (int32_t oh = 0; oh < g->ho; oh++)
            for (int32_t ow = 0; ow < g->wo; ow++) {
                float m = -HUGE_VALF;
                for (int32_t i = 0; i < g->kh; i++)
                    for (int32_t j = 0; j < g->kw; j++) {
                        int32_t ih = oh * g->sh - g->ph + i, iw = ow * g->sw - g->pw + j;
                        if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                        m = et_fmax(m, x[(ch * g->h + ih) * g->w + iw]);
                    }
                y[(ch * g->ho + oh) * g->wo + ow] = m;
            }
}

/* average pooling: window sum (zero padding counted) times 1 / (kh kw) */
static void et_f_avgpool_fwd(const et_pool_geo *g, const float *x, float *y)
{
    float inv = 1.0f / (float)(g->kh * g->kw);
    for (int32_t ch = 0; ch < g->c; ch++)
        for (int32_t oh = 0; oh < g->ho; oh++)
            for (int32_t ow = 0; ow < g->wo; ow++) {
                float s = 0.0f;
                for (int32_t i = 0; i < g->kh; i++)
                    for (int32_t j = 0; j < g->kw; j++) {
                        int32_t ih = oh * g->sh - g->ph + i, iw = ow * g->sw - g->pw + j;
                        if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                        s += x[(ch * g->h + ih) * g->w + iw];
                    }
                y[(ch * g->ho + oh) * g->wo + ow] = s * inv;
            }
}

static void et_f_gap_fwd(const et_pool_geo *g, const float *x, float *y)
{
    for (int32_t ch = 0; ch < g->c; ch++) {
        float s = 0.0f;
        for (int32_t i = 0; i < g->w; i++) s += x[ch * g->w + i];
        y[ch] = s / (float)g->w;
    }
}

/* Trainer._fwd_op_f: relu, relu6, pools, flatten on float32 values */
void et_f_fwd_int(const et_ctx *c, const et_intop *op, const et_ftensor *x, et_ftensor *y)
{
    int32_t B = c->batch;
    for (int32_t b = 0; b < B; b++) {
        const float *xb = x->v + b * x->n;
        float *yb = y->v + b * y->n;
        if (op->kind == ET_MAXPOOL) {
            et_f_maxpool_fwd(&op->g, xb, yb);
        } else if (op->kind == ET_AVGPOOL) {
            et_f_avgpool_fwd(&op->g, xb, yb);
        } else if (op->kind == ET_GAP) {
            et_f_gap_fwd(&op->g, xb, yb);
        } else {
            float hi = op->kind == ET_RELU6 ? 6.0f : HUGE_VALF;
            for (int32_t i = 0; i < x->n; i++)
                yb[i] = op->kind == ET_FLATTEN ? xb[i] : et_fmin(et_fmax(xb[i], 0.0f), hi);
        }
    }
    et_f_trace(y, y->trace, B);
}

void et_f_fwd_add(const et_ctx *c, const et_ftensor *a, const et_ftensor *b, et_ftensor *y)
{
    for (int32_t i = 0; i < a->n * c->batch; i++) y->v[i] = a->v[i] + b->v[i];
    et_f_trace(y, y->trace, c->batch);
}

/* -------------------------------------------------------------------- loss */

void et_m_logits(const et_ctx *c, const et_tensor *q, float *logits)
{
    for (int32_t i = 0; i < q->n * c->batch; i++) logits[i] = et_dequantize(q->q[i], q->qp);
}

/* Trainer._loss_error (float errors): p = softmax(logits) in double, e = p - onehot */
float et_f_loss(const et_ctx *c, const float *logits, int32_t k, const int32_t *labels,
                et_ftensor *e)
{
    double total = 0.0;
    for (int32_t b = 0; b < c->batch; b++) {
        const float *l = logits + b * k;
        double m = l[0], sum = 0.0;
        for (int32_t i = 1; i < k; i++) m = l[i] > m ? l[i] : m;
        for (int32_t i = 0; i < k; i++) sum += exp((double)l[i] - m);
        for (int32_t i = 0; i < k; i++) {
            double p = exp((double)l[i] - m) / sum;
            if (i == labels[b]) total -= log(p > 1e-30 ? p : 1e-30);
            e->v[b * k + i] = (float)(i == labels[b] ? p - 1.0 : p);
        }
    }
    return (float)(total / (double)c->batch);
}

/* ---------------------------------------------------------------- backward */

/* Trainer._select (float errors): per sample keep the top-k output channels by summed |e|,
 * k from the sample's mean error against the largest seen (dynamic partial updates) */
static void et_f_select(const et_ctx *c, et_flayer *L, const float *e)
{
    int32_t O = L->g.c_out, P = L->g.ho * L->g.wo;
    float lmin = c->cfg->lambda_min, lmax = c->cfg->lambda_max;
    for (int32_t b = 0; b < c->batch; b++) {
        const float *eb = e + b * O * P;
        uint8_t *kept = L->kept + b * O;
        float total = 0.0f;
        for (int32_t o = 0; o < O; o++) {
            float m = 0.0f;
            for (int32_t p = 0; p < P; p++) m += fabsf(eb[o * P + p]);
            L->mags[o] = m;
            total += m;
        }
        float mean = total / (float)(O * P);
        if (mean > L->emax[0]) L->emax[0] = mean;
        float ratio = L->emax[0] > 0.0f ? mean / L->emax[0] : 0.0f;
        int64_t k = et_floor_f32((lmin + ratio * (lmax - lmin)) * (float)O);
        k = k < 1 ? 1 : (k > O ? O : k);
        for (int32_t o = 0; o < O; o++) {          /* rank = channels ahead in the stable order */
            int32_t rank = 0;
            for (int32_t j = 0; j < O; j++)
                rank += L->mags[j] > L->mags[o] || (L->mags[j] == L->mags[o] && j < o);
            kept[o] = rank < k;
        }
    }
}

/* Trainer._weight_grads (float): batch sums, kept channels only; mixed scales dW by s_x */
static void et_f_grads(const et_ctx *c, et_flayer *L, const et_fx *xs, int32_t nx, float s_x,
                       const float *e)
{
    int32_t O = L->g.c_out, P = L->g.ho * L->g.wo, K = et_f_k(&L->g);
    const int partial = c->cfg->partial && L->train_w;
    if (L->train_w) {
        for (int32_t i = 0; i < O * K; i++) L->gw[i] = 0.0f;
        for (int32_t b = 0; b < c->batch; b++) {
            et_fx xb = {xs->f ? xs->f + b * nx : 0, xs->q ? xs->q + b * nx : 0, xs->zero};
            et_f_conv_bwd_w(&L->g, e + b * O * P, partial ? L->kept + b * O : 0, &xb, L->gw);
        }
        if (s_x != 1.0f)
            for (int32_t i = 0; i < O * K; i++) L->gw[i] = L->gw[i] * s_x;
    }
    if (L->train_b)
        for (int32_t o = 0; o < O; o++) {
            float s = 0.0f;
            for (int32_t b = 0; b < c->batch; b++) {
                if (partial && !L->kept[b * O + o]) continue;
                for (int32_t p = 0; p < P; p++) s += e[(b * O + o) * P + p];
            }
            L->gb[o] = s;
        }
}

/* Trainer._bwd_weight_f */
static void et_f_bwd_layer(const et_ctx *c, et_flayer *L, const et_fx *x, float s_x,
                           et_ftensor *e, et_ftensor *dx)
{
    int32_t O = L->g.c_out, nx = et_f_in(&L->g), ny = et_f_out(&L->g);
    const int partial = c->cfg->partial && L->train_w;
    if (partial) et_f_select(c, L, e->v);
    if (L->train_w || L->train_b) et_f_grads(c, L, x, nx, s_x, e->v);
    if (!L->want_dx) return;
    for (int32_t b = 0; b < c->batch; b++)
        et_f_conv_bwd_in(L, e->v + b * ny, partial ? L->kept + b * O : 0, dx->v + b * nx);
}

void et_f_bwd_weight(const et_ctx *c, et_flayer *L, const et_ftensor *x, et_ftensor *e,
                     et_ftensor *dx)
{
    et_fx xs = {x->v, 0, 0};
    et_f_bwd_layer(c, L, &xs, 1.0f, e, dx);
}

void et_m_bwd_weight(const et_ctx *c, et_flayer *L, const et_tensor *x, et_ftensor *e,
                     et_ftensor *dx)
{
    et_fx xs = {0, x->q, x->qp.zero};
    et_f_bwd_layer(c, L, &xs, x->qp.scale, e, dx);
}

/* the first maximum (row-major) of each window receives the window's error; `key` holds
 * float32 values (xf) or int8 codes (xq) */
static void et_f_maxpool_bwd(const et_pool_geo *g, const float *xf, const int8_t *xq,
                             const float *e, float *dx)
{
    for (int32_t i = 0; i < g->c * g->h * g->w; i++) dx[i] = 0.0f;
    for (int32_t ch = 0; ch < g->c; ch++)
        for (int32_t oh = 0; oh < g->ho; oh++)
            for (int32_t ow = 0; ow < g->wo; ow++) {
                int32_t best = -1;
                float bv = 0.0f;
                for (int32_t i = 0; i < g->kh; i++)
                    for (int32_t j = 0; j < g->kw; j++) {
                        int32_t ih = oh * g->sh - g->ph + i, iw = ow * g->sw - g->pw + j;
                        if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                        int32_t idx = (ch * g->h + ih) * g->w + iw;
                        float v = xf ? xf[idx] : (float)xq[idx];
                        if (best < 0 || v > bv) {
                            best = idx;
                            bv = v;
                        }
                    }
                dx[best] += e[(ch * g->ho + oh) * g->wo + ow];
            }
}

/* average pooling: each window's error spread over it, times `share` (float32: 1 / n) */
static void et_f_avgpool_bwd(const et_pool_geo *g, const float *e, float share, float *dx)
{
    for (int32_t i = 0; i < g->c * g->h * g->w; i++) dx[i] = 0.0f;
    for (int32_t ch = 0; ch < g->c; ch++)
        for (int32_t oh = 0; oh < g->ho; oh++)
            for (int32_t ow = 0; ow < g->wo; ow++) {
                float ev = e[(ch * g->ho + oh) * g->wo + ow] * share;
                for (int32_t i = 0; i < g->kh; i++)
                    for (int32_t j = 0; j < g->kw; j++) {
                        int32_t ih = oh * g->sh - g->ph + i, iw = ow * g->sw - g->pw + j;
                        if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                        dx[(ch * g->h + ih) * g->w + iw] += ev;
                    }
            }
}

/* the mask of relu/relu6 at element i: float32 from the output value, mixed from its code */
static int et_f_pass(const et_intop *op, const float *yf, const int8_t *yq, int32_t i,
                     int32_t zero, int32_t qmax)
{
    if (op->kind == ET_FLATTEN) return 1;
    if (yf) return yf[i] > 0.0f && (op->kind == ET_RELU || yf[i] < 6.0f);
    return yq[i] > zero && (op->kind == ET_RELU || yq[i] < qmax);
}

/* one sample of an op that keeps the shape or pools; mixed divides by n after the sum
 * (kernel.backward / divisor), float32 multiplies each share by 1 / n (the float op) */
static void et_f_bwd_op(const et_intop *op, const float *xf, const int8_t *xq, const float *yf,
                        const int8_t *yq, int32_t zero, int32_t qmax, const float *e, int32_t n,
                        float *dx)
{
    const et_pool_geo *g = &op->g;
    int32_t nx = g->c * g->h * g->w;
    if (op->kind == ET_MAXPOOL) {
        et_f_maxpool_bwd(g, xf, xq, e, dx);
    } else if (op->kind == ET_AVGPOOL) {
        float d = (float)(g->kh * g->kw);
        et_f_avgpool_bwd(g, e, xf ? 1.0f / d : 1.0f, dx);
        if (!xf)
            for (int32_t i = 0; i < nx; i++) dx[i] = dx[i] / d;
    } else if (op->kind == ET_GAP) {
        for (int32_t ch = 0; ch < g->c; ch++)
            for (int32_t i = 0; i < g->w; i++)
                dx[ch * g->w + i] = xf ? e[ch] * (1.0f / (float)g->w) : e[ch] / (float)g->w;
    } else {
        for (int32_t i = 0; i < n; i++)
            dx[i] = et_f_pass(op, yf, yq, i, zero, qmax) ? e[i] : 0.0f;
    }
}

void et_f_bwd_int(const et_ctx *c, const et_intop *op, const et_ftensor *x,
                  const et_ftensor *y, const et_ftensor *e, et_ftensor *dx)
{
    for (int32_t b = 0; b < c->batch; b++)
        et_f_bwd_op(op, x->v + b * x->n, 0, y->v + b * y->n, 0, 0, 0, e->v + b * e->n, e->n,
                    dx->v + b * dx->n);
}

/* Trainer._bwd_op_f (mixed): the integer forward's context, float errors */
void et_m_bwd_int(const et_ctx *c, const et_intop *op, const et_tensor *x, const et_tensor *y,
                  const et_ftensor *e, et_ftensor *dx)
{
    int32_t qmax = et_relu6_qmax(&x->qp);
    for (int32_t b = 0; b < c->batch; b++)
        et_f_bwd_op(op, 0, x->q + b * x->n, 0, y->q + b * y->n, x->qp.zero, qmax,
                    e->v + b * e->n, e->n, dx->v + b * dx->n);
}

void et_f_merge(const et_ctx *c, const et_ftensor *const *parts, int n, et_ftensor *out)
{
    for (int32_t i = 0; i < out->n * c->batch; i++) {
        float s = parts[0]->v[i];
        for (int p = 1; p < n; p++) s += parts[p]->v[i];
        out->v[i] = s;
    }
}

/* ------------------------------------------------------------------ update */

/* Trainer._standardized (float): row mean and variance (two passes), moving averages;
 * rows not kept keep their statistics (one `seen` flag for all rows, as GradStats) */
static void et_f_observe_rows(const et_ctx *c, const float *g, int32_t rows, int32_t k,
                              et_range *stats, const uint8_t *kept)
{
    int seen = stats[0].seen;
    for (int32_t r = 0; r < rows; r++) {
        const float *gr = g + r * k;
        float s = 0.0f, v = 0.0f;
        for (int32_t i = 0; i < k; i++) s += gr[i];
        float mean = s / (float)k;
        for (int32_t i = 0; i < k; i++) v += (gr[i] - mean) * (gr[i] - mean);
        float var = v / (float)k;
        et_range *st = &stats[r];
        st->seen = 1;
        if (kept && !kept[r]) continue;
        if (!seen) {
            st->lo = mean;
            st->hi = var;
        } else {
            st->lo = st->lo + c->cfg->rate_grad_mean * (mean - st->lo);
            st->hi = st->hi + c->cfg->rate_grad_var * (var - st->hi);
        }
    }
}

/* lr * ((g - mu) / sigma), sigma = sqrt(moving variance) + eps */
static float et_f_step(const et_ctx *c, float g, const et_range *st)
{
    return c->cfg->lr * ((g - st->lo) / (sqrtf(st->hi) + c->cfg->grad_eps));
}

/* the output channels kept for at least one sample of the batch (partial), or 0: all */
static const uint8_t *et_f_rows(const et_ctx *c, et_flayer *L)
{
    if (!(c->cfg->partial && L->train_w)) return 0;
    for (int32_t b = 1; b < c->batch; b++)
        for (int32_t o = 0; o < L->g.c_out; o++) L->kept[o] |= L->kept[b * L->g.c_out + o];
    return L->kept;
}

/* Trainer._update_layer, float32: w -= step, b -= step (rows not kept: no step) */
void et_f_update(const et_ctx *c, et_flayer *L)
{
    int32_t O = L->g.c_out, K = et_f_k(&L->g);
    const uint8_t *rows = et_f_rows(c, L);
    if (L->train_w) {
        et_f_observe_rows(c, L->gw, O, K, L->g_stats, rows);
        for (int32_t o = 0; o < O; o++) {
            if (rows && !rows[o]) continue;
            for (int32_t i = 0; i < K; i++)
                L->w[o * K + i] = L->w[o * K + i] - et_f_step(c, L->gw[o * K + i], &L->g_stats[o]);
        }
        ET_TRACE_T(L->trace_gw, L->w, 4 * O * K);
    }
    if (L->train_b) {
        et_f_observe_rows(c, L->gb, 1, O, L->gb_stats, 0);
        for (int32_t o = 0; o < O; o++)
            if (!rows || rows[o]) L->b[o] = L->b[o] - et_f_step(c, L->gb[o], L->gb_stats);
        ET_TRACE_T(L->trace_gw + 3, L->b, 4 * O);
    }
}

/* the updated real weight j of row o: (float)(w - z) * s - step (the old qparams) */
static float et_m_new_weight(const et_ctx *c, const et_flayer *L, int32_t o, int32_t j,
                             const uint8_t *rows)
{
    float wf = et_fw(L, o, j);
    return (rows && !rows[o]) ? wf : wf - et_f_step(c, L->gw[j], &L->g_stats[o]);
}

/* this step's new weight qparams into the int8 layer (Trainer.model.weight_qparams) */
static void et_m_weight_qparams(const et_ctx *c, et_wlayer *q)
{
    int per_ch = c->cfg->weight_channels;
    et_qparams qp = et_range_qparams(&q->w_range[0], per_ch, 0);
    for (int32_t o = 0; o < q->g.c_out; o++)
        q->w_scale[o] = per_ch ? et_range_qparams(&q->w_range[o], 1, 0).scale : qp.scale;
    q->w_zero = per_ch ? 0 : qp.zero;
}

/* the new real weights, written over their gradients in gw, and the new range of each row
 * (per channel) or of the tensor, observed by the trackers */
static void et_m_observe_weights(const et_ctx *c, et_flayer *L, const uint8_t *rows)
{
    int32_t O = L->g.c_out, K = et_f_k(&L->g);
    int per_ch = c->cfg->weight_channels;
    float glo = 0.0f, ghi = 0.0f;
    for (int32_t o = 0; o < O; o++) {
        float lo = 0.0f, hi = 0.0f;
        for (int32_t i = 0; i < K; i++) {
            float wf = et_m_new_weight(c, L, o, o * K + i, rows);
            L->gw[o * K + i] = wf;
            lo = i == 0 ? wf : et_fmin(lo, wf);
            hi = i == 0 ? wf : et_fmax(hi, wf);
        }
        if (per_ch && (!rows || rows[o]))         /* dropped rows keep scale and codes */
            et_range_observe(&L->q->w_range[o], lo, hi, c->cfg->rate_weight);
        glo = o == 0 ? lo : et_fmin(glo, lo);
        ghi = o == 0 ? hi : et_fmax(ghi, hi);
    }
    if (!per_ch) et_range_observe(&L->q->w_range[0], glo, ghi, c->cfg->rate_weight);
}

/* Trainer._apply_weight (mixed): dequantize, step, observe the new range, requantize */
static void et_m_apply_weight(const et_ctx *c, et_flayer *L, const uint8_t *rows)
{
    et_wlayer *q = L->q;
    int32_t O = L->g.c_out, K = et_f_k(&L->g);
    int per_ch = c->cfg->weight_channels, mode = c->cfg->round_update;
    et_m_observe_weights(c, L, rows);
    uint32_t base = et_f_base(c, mode);
    for (int32_t o = 0; o < O; o++) {
        if (per_ch && rows && !rows[o]) continue;
        et_qparams qp = et_range_qparams(&q->w_range[per_ch ? o : 0], per_ch, 0);
        for (int32_t i = 0; i < K; i++) {      /* gw holds the new real weights */
            int32_t j = o * K + i;
            q->w[j] = et_quantize(L->gw[j], qp, (et_round_mode)mode,
                                  et_bits_for(mode, base, (uint32_t)j));
        }
    }
    et_m_weight_qparams(c, q);
    ET_TRACE_T(L->trace_gw, q->w, O * K);
    ET_TRACE_T(L->trace_gw + 1, q->w_scale, 4 * (per_ch ? O : 1));
    ET_TRACE_T(L->trace_gw + 2, &q->w_zero, 4);
}

/* Trainer._apply_bias (mixed): b' = round(clamp((b s_b - step) / s_b)), int32 */
static void et_m_apply_bias(const et_ctx *c, et_flayer *L, const uint8_t *rows)
{
    et_wlayer *q = L->q;
    int mode = c->cfg->round_update;
    uint32_t base = et_f_base(c, mode);
    for (int32_t o = 0; o < L->g.c_out; o++) {
        if (rows && !rows[o]) continue;
        float s_b = q->b_scale[o];
        float b_f = (float)q->b[o] * s_b - et_f_step(c, L->gb[o], L->gb_stats);
        float v = b_f / s_b;
        v = v < -2147483648.0f ? -2147483648.0f : (v > 2147483520.0f ? 2147483520.0f : v);
        int64_t r = et_round_f32(v, (et_round_mode)mode, et_bits_for(mode, base, (uint32_t)o));
        q->b[o] = et_sat(r, (-2147483647 - 1), 2147483647);
    }
    ET_TRACE_T(L->trace_gw + 3, q->b, 4 * L->g.c_out);
}

/* Trainer._update_layer, mixed: standardized float step on the int8 weights, in place */
void et_m_update(const et_ctx *c, et_flayer *L)
{
    int32_t O = L->g.c_out, K = et_f_k(&L->g);
    const uint8_t *rows = et_f_rows(c, L);
    if (L->train_w) {
        et_f_observe_rows(c, L->gw, O, K, L->g_stats, rows);
        et_m_apply_weight(c, L, rows);
    }
    if (L->train_b) {
        et_f_observe_rows(c, L->gb, 1, O, L->gb_stats, 0);
        et_m_apply_bias(c, L, rows);
    }
}
