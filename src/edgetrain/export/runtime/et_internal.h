/* edgetrain runtime: small helpers shared by et_engine.c and et_update.c (not a public API) */
#ifndef ET_INTERNAL_H
#define ET_INTERNAL_H

#include "et_engine.h"

#define ET_I32_MIN (-2147483647 - 1)
#define ET_I32_MAX 2147483647
#define ET_S_MIN_F 9.094947017729282e-13f      /* 2^-40, numerics.qparams.S_MIN */

/* the per-element loops of the update kept out of their callers (registers for the loop) */
#if defined(__GNUC__)
#define ET_NOINLINE __attribute__((noinline))
#else
#define ET_NOINLINE
#endif

/* the base of one rounding call's random bits: the stream advances only for stochastic calls */
static inline uint32_t et_call_base(const et_ctx *c, int mode)
{
    return mode == ET_ROUND_STOCHASTIC ? et_stream_next(c->rng) : 0u;
}

static inline float et_maxf(float a, float b) { return a > b ? a : b; }
static inline float et_minf(float a, float b) { return a < b ? a : b; }
static inline float et_clipf(float v, float lo, float hi) { return et_minf(et_maxf(v, lo), hi); }

/* entries per filter / FC row of a weight layer */
static inline int32_t et_k(const et_wlayer *L)
{
    return (L->g.c_in / L->g.groups) * L->g.kh * L->g.kw;
}

/* the largest |g| of n int32 (et_update.c; |INT32_MIN| read as INT32_MAX) */
int32_t et_abs_max(const int32_t *g, int32_t n);
/* Trainer._weights: this step's weight scales (per channel or one) and zero point */
void et_weight_qparams(const et_ctx *c, et_wlayer *L);
/* per-channel weight scales from the rows' ranges (rows marked in `keep` excepted), zero 0 */
void et_channel_scales(et_wlayer *L, const uint8_t *keep);

#endif
