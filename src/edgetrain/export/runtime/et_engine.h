/* edgetrain int8 training engine in C99: the translation of edgetrain.engine.int8.Trainer
 * (the specification; docs/numerics.md states each rule), after Deutel et al. 2024, "On-Device
 * Training of Fully Quantized Deep Neural Networks on Cortex-M Microcontrollers".
 *
 * One step on a mini-batch of B samples, tensors batch-first as in the Python engine:
 * forward (scales fixed for the step, ranges observed), fixed-point softmax cross-entropy
 * gradient, backward in reverse graph order, weight updates, then the deferred range-tracker
 * observations in order. The generated model.c holds the tables (layers, tensors, trackers,
 * weights) and calls these functions in graph order; nothing here allocates memory. */
#ifndef ET_ENGINE_H
#define ET_ENGINE_H

#include <stdint.h>

#include "et_kernels.h"
#include "et_numerics.h"

#ifndef ET_TRACE
#define ET_TRACE 0
#endif
#if ET_TRACE
void et_trace(uint16_t id, const void *data, uint32_t bytes);   /* provided by the harness */
#define ET_TRACE_T(id, p, n) et_trace((uint16_t)(id), (p), (uint32_t)(n))
#else
#define ET_TRACE_T(id, p, n) ((void)0)
#endif
#define ET_NO_TRACE 0xFFFFu

typedef struct { float lo, hi; uint8_t seen; } et_range;   /* a range tracker */

typedef struct {                  /* numerics configuration (edgetrain.numerics.config) */
    uint8_t round_forward, round_backward, round_update, weight_channels, pow2;
    float rate_activation, rate_error, rate_weight, rate_grad_mean, rate_grad_var, grad_eps;
    float lr, lambda_min, lambda_max;
    uint8_t partial;
    uint8_t round_gradient;       /* int8 weight gradients before standardization */
    uint8_t grad_rows;            /* one gradient scale per filter/row (else per tensor) */
} et_config;

typedef struct {                  /* an int8 tensor of the whole batch and its qparams */
    int8_t *q;                    /* int8[B * n] */
    int32_t n;                    /* elements per sample */
    et_qparams qp;
    uint16_t trace;               /* trace id of the values; +1 scale, +2 zero */
} et_tensor;

typedef struct {                  /* engine state shared by every call of one model */
    const et_config *cfg;
    et_stream *rng;
    int32_t batch;
} et_ctx;

/* ---- range trackers: first observation taken at once, later ones deferred ---- */
typedef struct { et_range *r; float lo, hi, rate; } et_observation;
/* the step's queue of deferred observations: storage and capacity come from model.c */
void et_deferred_reset(et_observation *queue, int32_t capacity);
void et_deferred_commit(void);
et_qparams et_tracked_qparams(const et_ctx *c, et_range *r, float lo, float hi, float rate,
                              int observe);
static inline et_qparams et_range_qparams(const et_range *r, int symmetric, int pow2)
{
    return et_from_range(r->lo, r->hi, symmetric, pow2);
}
void et_range_observe(et_range *r, float lo, float hi, float rate);

/* ---- weight layers (linear, conv2d, conv1d) ---- */
typedef struct {
    unsigned conv : 8;            /* 0: linear, 1: conv (conv1d as conv2d with H = 1) */
    unsigned g_amax1 : 24;        /* largest |weight gradient| + 1 when the backward pass
                                     knows it (linear, batch 1), else 0; shares conv's word */
    et_conv_geo g;                /* linear: c_in = n_in, c_out = n_out, all else 1 */
    int8_t *w;                    /* int8[O * K]: RAM when trained, flash (cast) when frozen */
    int32_t *b;                   /* int32[O] */
    const float *b_scale;         /* float32[O] */
    et_range *w_range;            /* 1 or O trackers (per-channel symmetric) */
    et_range *a_range;            /* output activation tracker */
    et_range *dx_range;           /* input-error tracker (NULL when no input error) */
    float clamp_lo, clamp_hi;     /* fused ReLU/ReLU6 output range */
    uint8_t train_w, train_b, want_dx;
    uint8_t w_fixed;              /* frozen weights: w_scale / w_zero are constants */
    float *emax;                  /* partial updates: largest mean error seen (1 float) */
    /* arena scratch */
    int32_t *acc;                 /* int32[B * O * P] forward accumulators */
    int32_t *dxacc;               /* int32[B * max(in, O)] dx sums / partial-update magnitudes */
    int16_t *ec;                  /* int16[B * O * P] centred (selected) errors */
    int32_t *gw;                  /* int32[O * K] weight gradient (batch sum), then int8 g */
    int32_t *gb;                  /* int32[O] bias gradient */
    uint8_t *kept;                /* uint8[B * O] kept output channels (partial) */
    float *w_scale;               /* float32[O] this step's weight scales (scratch) */
    et_conv_scratch sc_fwd, sc_bwd;  /* gathered-convolution scratch of each pass */
    float *wrow;                  /* float32[K] one updated row (per-channel update) */
    float *s_g;                   /* float32[O] gradient scale of each row (update scratch) */
    /* update state */
    et_range *g_stats;            /* per row: lo = moving mean, hi = moving variance */
    et_range *gb_stats;           /* bias row */
    float s_x, s_wgrad, s_bgrad;  /* scales saved for the backward pass / update */
    int32_t w_zero;
    uint16_t trace_gw;            /* trace id of the updated weights (+1 bias) */
} et_wlayer;

void et_fwd_weight(const et_ctx *c, et_wlayer *L, const et_tensor *x, et_tensor *y,
                   int observe);
void et_bwd_weight(const et_ctx *c, et_wlayer *L, const et_tensor *x, const et_tensor *e,
                   et_tensor *dx);
void et_update_weight(const et_ctx *c, et_wlayer *L);

/* ---- integer ops that keep the scale (relu, relu6, pools, flatten) ---- */
enum { ET_RELU, ET_RELU6, ET_MAXPOOL, ET_AVGPOOL, ET_GAP, ET_FLATTEN };
typedef struct {
    uint8_t kind;
    et_pool_geo g;                /* pools; GAP: c, h = 1, w = n */
    int32_t *e32;                 /* int32 scratch: centred errors in / out */
} et_intop;

/* Trainer._fwd_int_q's qmax of relu6 on int8 codes of the given qparams */
int32_t et_relu6_qmax(const et_qparams *qp);
void et_fwd_int(const et_ctx *c, const et_intop *op, const et_tensor *x, et_tensor *y);
void et_bwd_int(const et_ctx *c, const et_intop *op, const et_tensor *x, const et_tensor *y,
                const et_tensor *e, et_tensor *dx);

/* ---- residual add: both inputs requantized to the output's tracked scale ---- */
void et_fwd_add(const et_ctx *c, et_range *a_range, float clamp_lo, float clamp_hi,
                const et_tensor *a, const et_tensor *b, et_tensor *y, int32_t *scratch,
                int observe);
/* the error of a tensor read by several nodes: sum requantized to its own tracked scale */
void et_merge_errors(const et_ctx *c, et_range *em, const et_tensor *const *parts, int n,
                     et_tensor *out, int32_t *scratch);

/* ---- input quantization and the loss gradient ---- */
void et_quantize_input(const float *x, et_tensor *t, int32_t batch, const et_range *r,
                       int pow2);
/* returns the batch's summed loss in Q16 */
int64_t et_loss_error(const et_ctx *c, const et_tensor *logits, const int32_t *labels,
                      et_range *e_range, et_tensor *e, int64_t *grad, int64_t *exps);

void et_trace_tensor(const et_tensor *t, int32_t batch);
void et_trace_as(const et_tensor *t, uint16_t id, int32_t batch);

#endif
