/* edgetrain integer kernels: the multiply-accumulate work of one training sample.
 *
 * The C translation of the int8 kernel table (edgetrain.numerics.kernels and the
 * "# --- int8 ---" sections of the edgetrain.ops modules): forward, backward error and weight
 * gradient of linear, conv2d (groups, depthwise) and conv1d (= conv2d with H = 1), as in
 * Deutel et al. 2024 (IEEE TCAD), "On-Device Training of Fully Quantized Deep Neural
 * Networks on Cortex-M Microcontrollers": E_{n-1} = W^T E_n and dW = E_n X^T as transposed
 * GEMMs/convolutions on integers.
 *
 * Operands are int8 with a zero point; the kernels work on centred values (q - zero), so
 * zero padding is the real zero; errors come centred as int16. Accumulators are int32: the
 * exporter checks for every layer that no sum can leave the int32 range (weight gradients
 * are summed over the mini-batch in place). `sel` (NULL: all) marks the output channels kept by dynamic partial
 * updates: dropped channels cost no work in either backward kernel.
 *
 * On ARMv7E-M (Cortex-M4/M7, __ARM_FEATURE_DSP) the inner loops use dual 16-bit MACs
 * (SXTB16 + SMLAD, SMLAxy, PKHBT) unless ET_NO_SIMD is defined; the results are identical
 * integers. Besides et_conv_scratch the kernels use bounded stack buffers: a block of four
 * int16 columns (2 KB) and, forward, a zero-point-padded input plane (2 KB) or, backward,
 * an offset table (1 KB) for the gathered convolutions, padded input planes (2.25 KB: every
 * input channel of a group when they fit) and a block (1 KB) for stride-1 weight gradients
 * and, for layers with one input channel per group and 3-wide kernels, a padded input plane
 * or error plane (2 KB); deepest frame
 * 4.4 KB (et_conv_fwd) and about 5.3 KB down to et_rows4 on Cortex-M4 (-fstack-usage),
 * inside the 8 KB stack the linker script reserves. */
#ifndef ET_KERNELS_H
#define ET_KERNELS_H

#include <stdint.h>

#include "et_linear.h"

typedef struct {
    int32_t c_in, h, w;          /* input, per sample */
    int32_t c_out, ho, wo;       /* output */
    int32_t kh, kw, sh, sw, ph, pw, groups;
} et_conv_geo;

/* conv2d, per sample, channels first; w[c_out][c_in/groups][kh][kw]. Scratch (see
 * et_conv_scratch_sizes): col int16[max(K, c_out/groups * kh * kw, ho * wo)] with
 * K = c_in/groups * kh * kw, wt int8[weight count], kept int32[c_out]. */
typedef struct { int16_t *col; int8_t *wt; int32_t *kept; } et_conv_scratch;
void et_conv_fwd(const et_conv_geo *g, const int8_t *x, int32_t zx, const int8_t *w,
                 int32_t zw, int32_t *acc, const et_conv_scratch *sc);
void et_conv_bwd_in(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                    const int8_t *w, int32_t zw, int32_t *dx, const et_conv_scratch *sc);
void et_conv_bwd_w(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                   const int8_t *x, int32_t zx, int32_t *dw, const et_conv_scratch *sc);


/* ---- pooling (integer side of edgetrain.ops.pool), per sample, channels first ----
 * Max pooling works on the int8 codes (padding never wins); its backward sends each window's
 * centred error to the window's first maximum (row-major), summing where windows overlap.
 * Average pooling sums centred codes exactly and requantizes the sum by M = 1 / n into the
 * input's scale (rounding `mode`, stochastic bits from `base` at element offset `off`);
 * its backward spreads the summed centred errors (scale: the output error's / n). */
typedef struct {
    int32_t c, h, w, ho, wo, kh, kw, sh, sw, ph, pw;
} et_pool_geo;

void et_maxpool_fwd(const et_pool_geo *g, const int8_t *x, int8_t *y);
void et_maxpool_bwd(const et_pool_geo *g, const int8_t *x, const int8_t *y, const int32_t *e,
                    int32_t *dx);
void et_avgpool_fwd(const et_pool_geo *g, const int8_t *x, int32_t zero, int mode,
                    uint32_t base, uint32_t off, int8_t *y);
void et_avgpool_bwd(const et_pool_geo *g, const int32_t *e, int32_t *dx);
/* global average pooling: x[c][n] -> y[c] */
void et_gap_fwd(const int8_t *x, int32_t c, int32_t n, int32_t zero, int mode, uint32_t base,
                uint32_t off, int8_t *y);
void et_gap_bwd(const int32_t *e, int32_t c, int32_t n, int32_t *dx);

#endif
