/* edgetrain linear-layer kernels (see et_linear.h): forward, backward error and weight
 * gradient of a fully connected layer on centred int8 operands, four weight rows per pass
 * over the input so that one load and unpack of the input feeds four rows. On ARMv7E-M the
 * inner loops use dual 16-bit MACs (et_simd.h) and produce the same integers. */
#include <stddef.h>
#include <string.h>

#include "et_linear.h"
#include "et_simd.h"

static int32_t et_min32(int32_t a, int32_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------------ linear */

/* s[r] = sum_i (x_i - zx) * w_r[i] for four rows w_r: the input is loaded, sign-extended
 * and centred once for four rows */
static void et_dot4_centred(const int8_t *x, int32_t zx, const int8_t *const *w, int32_t n,
                            int32_t *s)
{
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
#if ET_SIMD
    uint32_t zz = ET_PAIR(zx, zx);
    for (; i + 4 <= n; i += 4) {
        uint32_t xv = et_ld32(x + i), u;
        uint32_t x02 = et_ssub16(et_sxtb16(xv), zz), x13 = et_ssub16(et_sxtb16_ror8(xv), zz);
        u = et_ld32(w0 + i);
        s0 = et_smlad(et_sxtb16_ror8(u), x13, et_smlad(et_sxtb16(u), x02, s0));
        u = et_ld32(w1 + i);
        s1 = et_smlad(et_sxtb16_ror8(u), x13, et_smlad(et_sxtb16(u), x02, s1));
        u = et_ld32(w2 + i);
        s2 = et_smlad(et_sxtb16_ror8(u), x13, et_smlad(et_sxtb16(u), x02, s2));
        u = et_ld32(w3 + i);
        s3 = et_smlad(et_sxtb16_ror8(u), x13, et_smlad(et_sxtb16(u), x02, s3));
    }
#endif
    for (; i < n; i++) {
        int32_t xc = (int32_t)x[i] - zx;
        s0 += xc * w0[i];
        s1 += xc * w1[i];
        s2 += xc * w2[i];
        s3 += xc * w3[i];
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
}

static int32_t et_sum_centred(const int8_t *x, int32_t zx, int32_t n)
{
    int32_t s = 0;
    for (int32_t i = 0; i < n; i++)
        s += (int32_t)x[i] - zx;
    return s;
}

void et_linear_fwd(const int8_t *x, int32_t zx, const int8_t *w, int32_t zw,
                   int32_t n_in, int32_t n_out, int32_t *acc)
{
    /* sum (x - zx)(w - zw) = sum (x - zx) w - zw * sum (x - zx): exact integer identity */
    int32_t corr = zw ? zw * et_sum_centred(x, zx, n_in) : 0, s[4];
    for (int32_t o = 0; o < n_out; o += 4) {
        const int8_t *rows[4];                        /* a short last block repeats its row */
        for (int32_t t = 0; t < 4; t++) rows[t] = w + et_min32(o + t, n_out - 1) * n_in;
        et_dot4_centred(x, zx, rows, n_in, s);
        for (int32_t t = 0; t < et_min32(4, n_out - o); t++) acc[o + t] = s[t] - corr;
    }
}

/* dx[i] += sum_r e_r * w_r[i] over the four rows w_r. With DSP, two rows' weights at one
 * input are packed in a pair (PKHBT/PKHTB) for one SMLAD against the packed errors. */
static void et_axpy4(int32_t *restrict dx, const int8_t *const *w, const int32_t *e, int32_t n)
{
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    int32_t i = 0;
#if ET_SIMD
    uint32_t e01 = ET_PAIR(e[0], e[1]), e23 = ET_PAIR(e[2], e[3]);
    for (; i + 4 <= n; i += 4) {
        uint32_t a = et_ld32(w0 + i), b = et_ld32(w1 + i);
        uint32_t a02 = et_sxtb16(a), a13 = et_sxtb16_ror8(a);
        uint32_t b02 = et_sxtb16(b), b13 = et_sxtb16_ror8(b);
        int32_t d0 = et_smlad(et_pkhbt(a02, b02), e01, dx[i]);
        int32_t d1 = et_smlad(et_pkhbt(a13, b13), e01, dx[i + 1]);
        int32_t d2 = et_smlad(et_pkhtb(a02, b02), e01, dx[i + 2]);
        int32_t d3 = et_smlad(et_pkhtb(a13, b13), e01, dx[i + 3]);
        a = et_ld32(w2 + i);
        b = et_ld32(w3 + i);
        a02 = et_sxtb16(a);
        a13 = et_sxtb16_ror8(a);
        b02 = et_sxtb16(b);
        b13 = et_sxtb16_ror8(b);
        dx[i] = et_smlad(et_pkhbt(a02, b02), e23, d0);
        dx[i + 1] = et_smlad(et_pkhbt(a13, b13), e23, d1);
        dx[i + 2] = et_smlad(et_pkhtb(a02, b02), e23, d2);
        dx[i + 3] = et_smlad(et_pkhtb(a13, b13), e23, d3);
    }
#endif
    for (; i < n; i++)
        dx[i] += e[0] * w0[i] + e[1] * w1[i] + e[2] * w2[i] + e[3] * w3[i];
}

void et_linear_bwd_in(const int16_t *ec, const uint8_t *sel, const int8_t *w, int32_t zw,
                      int32_t n_in, int32_t n_out, int32_t *dx)
{
    const int8_t *rows[4];
    int32_t e[4], esum = 0, r = 0;
    memset(dx, 0, (size_t)n_in * sizeof *dx);
    for (int32_t o = 0; o <= n_out; o++) {
        int last = o == n_out;
        if (!last && (ec[o] == 0 || (sel && !sel[o]))) continue;
        if (!last) {                                  /* kept row with an error: queue it */
            rows[r] = w + o * n_in;
            e[r++] = ec[o];
            esum += ec[o];
        }
        if (r == 4 || (last && r > 0)) {
            for (int32_t t = r; t < 4; t++) {         /* pad the block with zero errors */
                rows[t] = rows[0];
                e[t] = 0;
            }
            et_axpy4(dx, rows, e, n_in);
            r = 0;
        }
    }
    if (zw)
        for (int32_t i = 0; i < n_in; i++) dx[i] -= zw * esum;
}

/* dw_r[i] += e_r * (x_i - zx) for four distinct rows dw_r (the centred input unpacked once;
 * rows that do not overlap let the compiler pair the loads and stores) */
static void et_outer4(int32_t *restrict d0, int32_t *restrict d1, int32_t *restrict d2,
                      int32_t *restrict d3, const int32_t *e, const int8_t *x, int32_t zx,
                      int32_t n)
{
    int32_t e0 = e[0], e1 = e[1], e2 = e[2], e3 = e[3], i = 0;
#if ET_SIMD
    uint32_t zz = ET_PAIR(zx, zx), e01 = ET_PAIR(e0, e1), e23 = ET_PAIR(e2, e3);
    for (; i + 4 <= n; i += 4) {
        uint32_t xv = et_ld32(x + i);
        uint32_t x02 = et_ssub16(et_sxtb16(xv), zz), x13 = et_ssub16(et_sxtb16_ror8(xv), zz);
        d0[i] = et_smlabb(x02, e01, d0[i]);
        d0[i + 1] = et_smlabb(x13, e01, d0[i + 1]);
        d0[i + 2] = et_smlatb(x02, e01, d0[i + 2]);
        d0[i + 3] = et_smlatb(x13, e01, d0[i + 3]);
        d1[i] = et_smlabt(x02, e01, d1[i]);
        d1[i + 1] = et_smlabt(x13, e01, d1[i + 1]);
        d1[i + 2] = et_smlatt(x02, e01, d1[i + 2]);
        d1[i + 3] = et_smlatt(x13, e01, d1[i + 3]);
        d2[i] = et_smlabb(x02, e23, d2[i]);
        d2[i + 1] = et_smlabb(x13, e23, d2[i + 1]);
        d2[i + 2] = et_smlatb(x02, e23, d2[i + 2]);
        d2[i + 3] = et_smlatb(x13, e23, d2[i + 3]);
        d3[i] = et_smlabt(x02, e23, d3[i]);
        d3[i + 1] = et_smlabt(x13, e23, d3[i + 1]);
        d3[i + 2] = et_smlatt(x02, e23, d3[i + 2]);
        d3[i + 3] = et_smlatt(x13, e23, d3[i + 3]);
    }
#endif
    for (; i < n; i++) {
        int32_t xc = (int32_t)x[i] - zx;
        d0[i] += e0 * xc;
        d1[i] += e1 * xc;
        d2[i] += e2 * xc;
        d3[i] += e3 * xc;
    }
}

/* dw[i] += e * (x_i - zx): one row (the rows a four-row block leaves over) */
static void et_outer1(int32_t *dw, int32_t e, const int8_t *x, int32_t zx, int32_t n)
{
    for (int32_t i = 0; i < n; i++) dw[i] += e * ((int32_t)x[i] - zx);
}

void et_linear_bwd_w(const int16_t *ec, const uint8_t *sel, const int8_t *x, int32_t zx,
                     int32_t n_in, int32_t n_out, int32_t *dw)
{
    int32_t *rows[4], e[4], r = 0;
    for (int32_t o = 0; o < n_out; o++) {
        if (ec[o] == 0 || (sel && !sel[o])) continue;
        rows[r] = dw + o * n_in;
        e[r++] = ec[o];
        if (r == 4) {
            et_outer4(rows[0], rows[1], rows[2], rows[3], e, x, zx, n_in);
            r = 0;
        }
    }
    for (int32_t t = 0; t < r; t++) et_outer1(rows[t], e[t], x, zx, n_in);
}
