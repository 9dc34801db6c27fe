/* edgetrain float training in C99: the `mixed` and `float32` precisions of
 * edgetrain.engine.int8.Trainer (Deutel et al. 2024, "On-Device Training of Fully Quantized
 * Deep Neural Networks on Cortex-M Microcontrollers", whose float32 and mixed baselines these
 * are):
 *
 *   mixed    int8 forward (the int8 runtime's et_fwd_* functions, unchanged), float32 errors
 *            and gradients, the int8 weights updated in place by the standardized SGD step;
 *   float32  float32 forward, errors, gradients and weights, the same standardized update.
 *
 * Float sums run in one fixed order (row-major loops); the Python engine sums with BLAS in
 * float32/float64, so the two agree to rounding, not bit for bit: `edgetrain verify` compares
 * them with the tolerance stated in docs/deploy.md. The softmax cross-entropy runs in double
 * (K values per sample) as the engine does. Nothing here allocates memory. */
#ifndef ET_FLOAT_H
#define ET_FLOAT_H

#include <stdint.h>

#include "et_engine.h"

typedef struct {                  /* a float32 tensor of the whole batch */
    float *v;                     /* float32[B * n] */
    int32_t n;                    /* elements per sample */
    uint16_t trace;               /* trace id of the values (ET_NO_TRACE: none) */
} et_ftensor;

typedef struct {                  /* the float side of a weight layer */
    et_conv_geo g;                /* linear: c_in = n_in, c_out = n_out, all else 1 */
    float *w;                     /* float32 mode: float32[O * K] (RAM when trained) */
    float *b;                     /* float32 mode: float32[O] */
    et_wlayer *q;                 /* mixed: the int8 layer (codes, scales, trackers), else 0 */
    uint8_t train_w, train_b, want_dx;
    float *emax;                  /* partial updates: largest mean error seen (1 float) */
    et_range *g_stats, *gb_stats; /* per row: lo = moving mean, hi = moving variance */
    /* arena scratch */
    float *gw;                    /* float32[O * K] weight gradient (batch sum) */
    float *gb;                    /* float32[O] bias gradient */
    float *mags;                  /* float32[O] partial updates: error magnitude per channel */
    uint8_t *kept;                /* uint8[B * O] kept output channels (partial) */
    uint16_t trace_gw;            /* trace id of the updated weights (+1 scale, +2 zero, +3 bias) */
} et_flayer;

/* ---- float32 forward ---- */
void et_f_input(const float *x, et_ftensor *t, int32_t batch);
void et_f_fwd_weight(const et_ctx *c, const et_flayer *L, const et_ftensor *x, et_ftensor *y);
void et_f_fwd_int(const et_ctx *c, const et_intop *op, const et_ftensor *x, et_ftensor *y);
void et_f_fwd_add(const et_ctx *c, const et_ftensor *a, const et_ftensor *b, et_ftensor *y);

/* ---- loss: softmax cross-entropy in double; e = p - onehot per sample; returns the mean
 * loss. mixed: the int8 logits dequantized into `logits` first (et_m_logits). ---- */
void et_m_logits(const et_ctx *c, const et_tensor *q, float *logits);
float et_f_loss(const et_ctx *c, const float *logits, int32_t k, const int32_t *labels,
                et_ftensor *e);

/* ---- backward: errors of a weight layer's input, its gradients (float32: x float; mixed:
 * x the int8 codes, gradient scaled by s_x after the sum) ---- */
void et_f_bwd_weight(const et_ctx *c, et_flayer *L, const et_ftensor *x, et_ftensor *e,
                     et_ftensor *dx);
void et_m_bwd_weight(const et_ctx *c, et_flayer *L, const et_tensor *x, et_ftensor *e,
                     et_ftensor *dx);
void et_f_bwd_int(const et_ctx *c, const et_intop *op, const et_ftensor *x,
                  const et_ftensor *y, const et_ftensor *e, et_ftensor *dx);
void et_m_bwd_int(const et_ctx *c, const et_intop *op, const et_tensor *x, const et_tensor *y,
                  const et_ftensor *e, et_ftensor *dx);
/* the error of a tensor read by several nodes: the sum of their errors, in order */
void et_f_merge(const et_ctx *c, const et_ftensor *const *parts, int n, et_ftensor *out);

/* ---- the standardized SGD update (float32 weights / int8 weights in place) ---- */
void et_f_update(const et_ctx *c, et_flayer *L);
void et_m_update(const et_ctx *c, et_flayer *L);

void et_f_trace(const et_ftensor *t, uint16_t id, int32_t batch);

#endif
