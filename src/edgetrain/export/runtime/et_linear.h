/* edgetrain linear-layer kernels: the integer forward, backward error and weight gradient of
 * a fully connected layer for one sample (Deutel et al. 2024: E_{n-1} = W^T E_n, dW = E_n X^T).
 * Operands are int8 with a zero point, errors centred int16, accumulators int32 (the exporter
 * checks that no sum leaves the int32 range). `sel` (NULL: all) marks the output rows kept by
 * dynamic partial updates; dropped rows cost no backward work. */
#ifndef ET_LINEAR_H
#define ET_LINEAR_H

#include <stdint.h>

/* linear: x[n_in], w[n_out][n_in] -> acc[n_out] = sum_i (x_i - zx)(w_oi - zw) */
void et_linear_fwd(const int8_t *x, int32_t zx, const int8_t *w, int32_t zw,
                   int32_t n_in, int32_t n_out, int32_t *acc);
/* et_linear_fwd of two or four samples (sample k at x + k * xs, its sums at acc + k * as) at
 * once: on ARMv7E-M each weight loaded and unpacked once for all of them; the same integers */
void et_linear_fwd2(const int8_t *x, int32_t xs, int32_t zx, const int8_t *w, int32_t zw,
                    int32_t n_in, int32_t n_out, int32_t *acc, int32_t as);
void et_linear_fwd4(const int8_t *x, int32_t xs, int32_t zx, const int8_t *w, int32_t zw,
                    int32_t n_in, int32_t n_out, int32_t *acc, int32_t as);
/* dx[i] = sum_{o kept} ec_o (w_oi - zw); ec: centred errors (int16) */
void et_linear_bwd_in(const int16_t *ec, const uint8_t *sel, const int8_t *w, int32_t zw,
                      int32_t n_in, int32_t n_out, int32_t *dx);
/* dw[o][i] += ec_o (x_i - zx) for kept o */
void et_linear_bwd_w(const int16_t *ec, const uint8_t *sel, const int8_t *x, int32_t zx,
                     int32_t n_in, int32_t n_out, int32_t *dw);
/* et_linear_bwd_w of two samples at once (sample b's errors at ec + es, its kept rows at
 * sel + ss, its input at x + xs): on ARMv7E-M one dual MAC per input and row for both; the
 * same integers */
void et_linear_bwd_w2(const int16_t *ec, int32_t es, const uint8_t *sel, int32_t ss,
                      const int8_t *x, int32_t xs, int32_t zx, int32_t n_in, int32_t n_out,
                      int32_t *dw);

#endif
