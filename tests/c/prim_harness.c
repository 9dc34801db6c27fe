/* Test harness for the runtime's numeric primitives: reads prim_in.bin, applies one
 * primitive to every element, writes prim_out.bin (little-endian, no padding). The same
 * program runs on the host and under QEMU (semihosting files), see tests/c/primitives.py.
 * Header: u32 op, n, mode, seed, extra; then the op's input arrays, each n long. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "et_numerics.h"

static FILE *out;

static void *read_all(FILE *f, size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p || fread(p, 1, bytes, f) != bytes) exit(3);
    return p;
}

static void emit(const void *p, size_t bytes) { fwrite(p, 1, bytes, out); }

static void op_stream(FILE *f, uint32_t n)
{
    uint32_t *seed = read_all(f, 4u * n);
    for (uint32_t i = 0; i < n; i++) {
        et_stream s;
        et_stream_seed(&s, seed[i]);
        uint32_t r[3] = {et_xorshift32(seed[i]), et_fmix32(seed[i]), et_stream_next(&s)};
        emit(r, sizeof r);
    }
}

static void op_round_f32(FILE *f, uint32_t n, et_round_mode mode, et_stream *s)
{
    float *v = read_all(f, 4u * n);
    uint32_t base = mode == ET_ROUND_STOCHASTIC ? et_stream_next(s) : 0;
    for (uint32_t i = 0; i < n; i++) {
        int64_t r = et_round_f32(v[i], mode, et_bits(base, i));
        emit(&r, 8);
    }
}

static void op_round_shift(FILE *f, uint32_t n, et_round_mode mode, et_stream *s)
{
    int64_t *p = read_all(f, 8u * n);
    int32_t *sh = read_all(f, 4u * n);
    uint32_t base = mode == ET_ROUND_STOCHASTIC ? et_stream_next(s) : 0;
    for (uint32_t i = 0; i < n; i++) {
        int64_t r = et_round_shift(p[i], sh[i], mode, et_bits(base, i));
        emit(&r, 8);
    }
}

static void op_requantize(FILE *f, uint32_t n, et_round_mode mode, et_stream *s)
{
    int64_t *acc = read_all(f, 8u * n);
    float *M = read_all(f, 4u * n);
    int32_t *zero = read_all(f, 4u * n);
    uint32_t base = mode == ET_ROUND_STOCHASTIC ? et_stream_next(s) : 0;
    for (uint32_t i = 0; i < n; i++) {
        et_multiplier mul = et_multiplier_from(M[i]);
        int64_t r[3] = {mul.m, mul.shift,
                        et_requantize(acc[i], mul, zero[i], mode, et_bits(base, i), -128, 127)};
        emit(r, sizeof r);
    }
}

static void op_qparams(FILE *f, uint32_t n, uint32_t extra)
{
    float *lo = read_all(f, 4u * n);
    float *hi = read_all(f, 4u * n);
    for (uint32_t i = 0; i < n; i++) {
        et_qparams qp = et_from_range(lo[i], hi[i], (int)(extra & 1u), (int)((extra >> 1) & 1u));
        emit(&qp.scale, 4);
        emit(&qp.zero, 4);
    }
}

static void op_quantize(FILE *f, uint32_t n, et_round_mode mode, et_stream *s)
{
    float *x = read_all(f, 4u * n);
    float *scale = read_all(f, 4u * n);
    int32_t *zero = read_all(f, 4u * n);
    uint32_t base = mode == ET_ROUND_STOCHASTIC ? et_stream_next(s) : 0;
    for (uint32_t i = 0; i < n; i++) {
        et_qparams qp = {scale[i], zero[i]};
        int32_t q = et_quantize(x[i], qp, mode, et_bits(base, i));
        float d = et_dequantize(q, qp);
        emit(&q, 4);
        emit(&d, 4);
    }
}

static void op_fixed(FILE *f, uint32_t n)
{
    int64_t *t = read_all(f, 8u * n);
    int64_t *x = read_all(f, 8u * n);
    for (uint32_t i = 0; i < n; i++) {
        int64_t r[2] = {et_exp_q30(t[i]), et_log2_q30(x[i])};
        emit(r, sizeof r);
    }
}

static void op_softmax(FILE *f, uint32_t n, uint32_t k)
{
    int8_t *logits = read_all(f, (size_t)n * k);
    float *s_out = read_all(f, 4u * n);
    int32_t *label = read_all(f, 4u * n);
    int64_t *grad = malloc(8u * k), *exps = malloc(8u * k);
    for (uint32_t i = 0; i < n; i++) {
        int64_t loss = et_softmax_ce_q30(logits + (size_t)i * k, (int)k, s_out[i], label[i],
                                         grad, exps);
        emit(grad, 8u * k);
        emit(&loss, 8);
    }
}

int main(void)
{
    FILE *f = fopen("prim_in.bin", "rb");
    if (!f) return 2;
    uint32_t *h = read_all(f, 20);
    out = fopen("prim_out.bin", "wb");
    if (!out) return 2;
    et_stream s;
    et_stream_seed(&s, h[3]);
    et_round_mode mode = (et_round_mode)h[2];
    switch (h[0]) {
    case 0: op_stream(f, h[1]); break;
    case 1: op_round_f32(f, h[1], mode, &s); break;
    case 2: op_round_shift(f, h[1], mode, &s); break;
    case 3: op_requantize(f, h[1], mode, &s); break;
    case 4: op_qparams(f, h[1], h[4]); break;
    case 5: op_quantize(f, h[1], mode, &s); break;
    case 6: op_fixed(f, h[1]); break;
    case 7: op_softmax(f, h[1], h[4]); break;
    default: return 4;
    }
    fclose(out);
    fclose(f);
    uint32_t err = (uint32_t)et_error;
    FILE *e = fopen("prim_err.bin", "wb");
    fwrite(&err, 4, 1, e);
    fclose(e);
    return 0;
}
