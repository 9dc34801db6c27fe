/* edgetrain integer kernels (see et_kernels.h). Plain loops, correct first; the dual-MAC
 * inner loops for ARMv7E-M sit next to the plain ones and produce the same integers. */
#include "et_kernels.h"

#if defined(__ARM_FEATURE_DSP) && !defined(ET_NO_SIMD)
#define ET_SIMD 1
#include <string.h>
static inline uint32_t et_ld32(const int8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint32_t et_sxtb16(uint32_t v)
{ uint32_t r; __asm("sxtb16 %0, %1" : "=r"(r) : "r"(v)); return r; }
static inline uint32_t et_sxtb16_ror8(uint32_t v)
{ uint32_t r; __asm("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v)); return r; }
static inline uint32_t et_ssub16(uint32_t a, uint32_t b)
{ uint32_t r; __asm("ssub16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b)); return r; }
static inline int32_t et_smlad(uint32_t a, uint32_t b, int32_t acc)
{ int32_t r; __asm("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc)); return r; }
#else
#define ET_SIMD 0
#endif

/* sum_i (x_i - zx) * w_i over n elements: the dot product every forward row needs.
 * With DSP: four int8 per load, sign-extended in pairs (SXTB16), x centred with SSUB16,
 * two multiply-accumulates per SMLAD. */
static int32_t et_dot_centred(const int8_t *x, int32_t zx, const int8_t *w, int32_t n)
{
    int32_t acc = 0;
    int32_t i = 0;
#if ET_SIMD
    uint32_t zz = ((uint32_t)(uint16_t)zx << 16) | (uint16_t)zx;
    for (; i + 4 <= n; i += 4) {
        uint32_t xv = et_ld32(x + i), wv = et_ld32(w + i);
        acc = et_smlad(et_ssub16(et_sxtb16(xv), zz), et_sxtb16(wv), acc);
        acc = et_smlad(et_ssub16(et_sxtb16_ror8(xv), zz), et_sxtb16_ror8(wv), acc);
    }
#endif
    for (; i < n; i++)
        acc += ((int32_t)x[i] - zx) * (int32_t)w[i];
    return acc;
}

static int32_t et_sum_centred(const int8_t *x, int32_t zx, int32_t n)
{
    int32_t s = 0;
    for (int32_t i = 0; i < n; i++)
        s += (int32_t)x[i] - zx;
    return s;
}

/* ------------------------------------------------------------------ linear */

void et_linear_fwd(const int8_t *x, int32_t zx, const int8_t *w, int32_t zw,
                   int32_t n_in, int32_t n_out, int32_t *acc)
{
    /* sum (x - zx)(w - zw) = sum (x - zx) w - zw * sum (x - zx): exact integer identity */
    int32_t xsum = zw ? et_sum_centred(x, zx, n_in) : 0;
    for (int32_t o = 0; o < n_out; o++)
        acc[o] = et_dot_centred(x, zx, w + (int32_t)o * n_in, n_in) - zw * xsum;
}

void et_linear_bwd_in(const int16_t *ec, const uint8_t *sel, const int8_t *w, int32_t zw,
                      int32_t n_in, int32_t n_out, int32_t *dx)
{
    int32_t esum = 0;
    for (int32_t i = 0; i < n_in; i++) dx[i] = 0;
    for (int32_t o = 0; o < n_out; o++) {
        if (sel && !sel[o]) continue;
        int32_t eo = ec[o];
        if (eo == 0) continue;
        const int8_t *row = w + (int32_t)o * n_in;
        esum += eo;
        for (int32_t i = 0; i < n_in; i++)
            dx[i] += eo * (int32_t)row[i];
    }
    if (zw)
        for (int32_t i = 0; i < n_in; i++) dx[i] -= zw * esum;
}

void et_linear_bwd_w(const int16_t *ec, const uint8_t *sel, const int8_t *x, int32_t zx,
                     int32_t n_in, int32_t n_out, int32_t *dw)
{
    for (int32_t o = 0; o < n_out; o++) {
        if (sel && !sel[o]) continue;
        int32_t eo = ec[o];
        if (eo == 0) continue;
        int32_t *row = dw + (int32_t)o * n_in;
        for (int32_t i = 0; i < n_in; i++)
            row[i] += eo * ((int32_t)x[i] - zx);
    }
}

/* ------------------------------------------------------------------- conv2d */

/* The input rows and columns a kernel offset reads for output row/column range:
 * output position p reads input p * s + k - pad, valid when inside [0, n). */
static int32_t et_first_valid(int32_t k, int32_t s, int32_t pad)
{
    int32_t p = 0;
    while (p * s + k - pad < 0) p++;
    return p;
}

static int32_t et_end_valid(int32_t k, int32_t s, int32_t pad, int32_t n, int32_t n_out)
{
    int32_t p = n_out;
    while (p > 0 && (p - 1) * s + k - pad >= n) p--;
    return p;
}

void et_conv_fwd(const et_conv_geo *g, const int8_t *x, int32_t zx, const int8_t *w,
                 int32_t zw, int32_t *acc)
{
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups;
    int32_t hw = g->h * g->w, howo = g->ho * g->wo;
    for (int32_t o = 0; o < g->c_out; o++) {
        int32_t *out = acc + o * howo;
        for (int32_t p = 0; p < howo; p++) out[p] = 0;
        int32_t c0 = (o / og) * cg;
        for (int32_t c = 0; c < cg; c++) {
            const int8_t *xc = x + (c0 + c) * hw;
            for (int32_t ky = 0; ky < g->kh; ky++) {
                int32_t y0 = et_first_valid(ky, g->sh, g->ph);
                int32_t y1 = et_end_valid(ky, g->sh, g->ph, g->h, g->ho);
                for (int32_t kx = 0; kx < g->kw; kx++) {
                    int32_t wv = (int32_t)w[((o * cg + c) * g->kh + ky) * g->kw + kx] - zw;
                    if (wv == 0) continue;
                    int32_t x0 = et_first_valid(kx, g->sw, g->pw);
                    int32_t x1 = et_end_valid(kx, g->sw, g->pw, g->w, g->wo);
                    for (int32_t oy = y0; oy < y1; oy++) {
                        const int8_t *xr = xc + (oy * g->sh + ky - g->ph) * g->w + kx - g->pw;
                        int32_t *orow = out + oy * g->wo;
                        for (int32_t ox = x0; ox < x1; ox++)
                            orow[ox] += wv * ((int32_t)xr[ox * g->sw] - zx);
                    }
                }
            }
        }
    }
}

void et_conv_bwd_in(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                    const int8_t *w, int32_t zw, int32_t *dx)
{
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups;
    int32_t hw = g->h * g->w, howo = g->ho * g->wo;
    for (int32_t i = 0; i < g->c_in * hw; i++) dx[i] = 0;
    for (int32_t o = 0; o < g->c_out; o++) {
        if (sel && !sel[o]) continue;
        const int16_t *eo = ec + o * howo;
        int32_t c0 = (o / og) * cg;
        for (int32_t c = 0; c < cg; c++) {
            int32_t *dxc = dx + (c0 + c) * hw;
            for (int32_t ky = 0; ky < g->kh; ky++) {
                int32_t y0 = et_first_valid(ky, g->sh, g->ph);
                int32_t y1 = et_end_valid(ky, g->sh, g->ph, g->h, g->ho);
                for (int32_t kx = 0; kx < g->kw; kx++) {
                    int32_t wv = (int32_t)w[((o * cg + c) * g->kh + ky) * g->kw + kx] - zw;
                    if (wv == 0) continue;
                    int32_t x0 = et_first_valid(kx, g->sw, g->pw);
                    int32_t x1 = et_end_valid(kx, g->sw, g->pw, g->w, g->wo);
                    for (int32_t oy = y0; oy < y1; oy++) {
                        int32_t *dr = dxc + (oy * g->sh + ky - g->ph) * g->w + kx - g->pw;
                        const int16_t *er = eo + oy * g->wo;
                        for (int32_t ox = x0; ox < x1; ox++)
                            dr[ox * g->sw] += wv * (int32_t)er[ox];
                    }
                }
            }
        }
    }
}

void et_conv_bwd_w(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                   const int8_t *x, int32_t zx, int32_t *dw)
{
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups;
    int32_t hw = g->h * g->w, howo = g->ho * g->wo;
    for (int32_t o = 0; o < g->c_out; o++) {
        if (sel && !sel[o]) continue;
        const int16_t *eo = ec + o * howo;
        int32_t c0 = (o / og) * cg;
        for (int32_t c = 0; c < cg; c++) {
            const int8_t *xc = x + (c0 + c) * hw;
            for (int32_t ky = 0; ky < g->kh; ky++) {
                int32_t y0 = et_first_valid(ky, g->sh, g->ph);
                int32_t y1 = et_end_valid(ky, g->sh, g->ph, g->h, g->ho);
                for (int32_t kx = 0; kx < g->kw; kx++) {
                    int32_t x0 = et_first_valid(kx, g->sw, g->pw);
                    int32_t x1 = et_end_valid(kx, g->sw, g->pw, g->w, g->wo);
                    int32_t s = 0;
                    for (int32_t oy = y0; oy < y1; oy++) {
                        const int8_t *xr = xc + (oy * g->sh + ky - g->ph) * g->w + kx - g->pw;
                        const int16_t *er = eo + oy * g->wo;
                        for (int32_t ox = x0; ox < x1; ox++)
                            s += (int32_t)er[ox] * ((int32_t)xr[ox * g->sw] - zx);
                    }
                    dw[((o * cg + c) * g->kh + ky) * g->kw + kx] += s;
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ pooling */

#include "et_numerics.h"

static int32_t et_max_at(const et_pool_geo *g, const int8_t *xc, int32_t oy, int32_t ox)
{
    int32_t best = -129;
    for (int32_t ky = 0; ky < g->kh; ky++) {
        int32_t iy = oy * g->sh + ky - g->ph;
        if (iy < 0 || iy >= g->h) continue;
        for (int32_t kx = 0; kx < g->kw; kx++) {
            int32_t ix = ox * g->sw + kx - g->pw;
            if (ix >= 0 && ix < g->w && xc[iy * g->w + ix] > best) best = xc[iy * g->w + ix];
        }
    }
    return best;
}

void et_maxpool_fwd(const et_pool_geo *g, const int8_t *x, int8_t *y)
{
    for (int32_t c = 0; c < g->c; c++)
        for (int32_t oy = 0; oy < g->ho; oy++)
            for (int32_t ox = 0; ox < g->wo; ox++)
                y[(c * g->ho + oy) * g->wo + ox] = (int8_t)et_max_at(g, x + c * g->h * g->w, oy, ox);
}

void et_maxpool_bwd(const et_pool_geo *g, const int8_t *x, const int8_t *y, const int32_t *e,
                    int32_t *dx)
{
    for (int32_t i = 0; i < g->c * g->h * g->w; i++) dx[i] = 0;
    for (int32_t c = 0; c < g->c; c++) {
        const int8_t *xc = x + c * g->h * g->w;
        for (int32_t oy = 0; oy < g->ho; oy++)
            for (int32_t ox = 0; ox < g->wo; ox++) {
                int32_t o = (c * g->ho + oy) * g->wo + ox, found = 0;
                for (int32_t ky = 0; ky < g->kh && !found; ky++) {
                    int32_t iy = oy * g->sh + ky - g->ph;
                    if (iy < 0 || iy >= g->h) continue;
                    for (int32_t kx = 0; kx < g->kw && !found; kx++) {
                        int32_t ix = ox * g->sw + kx - g->pw;
                        if (ix >= 0 && ix < g->w && xc[iy * g->w + ix] == y[o]) {
                            dx[c * g->h * g->w + iy * g->w + ix] += e[o];
                            found = 1;
                        }
                    }
                }
            }
    }
}

static int8_t et_mean_q(int64_t sum, et_multiplier m, int32_t zero, int mode, uint32_t bits)
{
    return (int8_t)et_requantize(sum, m, zero, (et_round_mode)mode, bits, ET_QMIN, ET_QMAX);
}

void et_avgpool_fwd(const et_pool_geo *g, const int8_t *x, int32_t zero, int mode,
                    uint32_t base, uint32_t off, int8_t *y)
{
    et_multiplier m = et_multiplier_from(1.0f / (float)(g->kh * g->kw));
    for (int32_t c = 0; c < g->c; c++) {
        const int8_t *xc = x + c * g->h * g->w;
        for (int32_t oy = 0; oy < g->ho; oy++)
            for (int32_t ox = 0; ox < g->wo; ox++) {
                int32_t s = 0;
                for (int32_t ky = 0; ky < g->kh; ky++) {
                    int32_t iy = oy * g->sh + ky - g->ph;
                    if (iy < 0 || iy >= g->h) continue;
                    for (int32_t kx = 0; kx < g->kw; kx++) {
                        int32_t ix = ox * g->sw + kx - g->pw;
                        if (ix >= 0 && ix < g->w) s += (int32_t)xc[iy * g->w + ix] - zero;
                    }
                }
                uint32_t o = (uint32_t)((c * g->ho + oy) * g->wo + ox);
                y[o] = et_mean_q(s, m, zero, mode, et_bits(base, off + o));
            }
    }
}

void et_avgpool_bwd(const et_pool_geo *g, const int32_t *e, int32_t *dx)
{
    for (int32_t i = 0; i < g->c * g->h * g->w; i++) dx[i] = 0;
    for (int32_t c = 0; c < g->c; c++)
        for (int32_t oy = 0; oy < g->ho; oy++)
            for (int32_t ox = 0; ox < g->wo; ox++) {
                int32_t eo = e[(c * g->ho + oy) * g->wo + ox];
                for (int32_t ky = 0; ky < g->kh; ky++) {
                    int32_t iy = oy * g->sh + ky - g->ph;
                    if (iy < 0 || iy >= g->h) continue;
                    for (int32_t kx = 0; kx < g->kw; kx++) {
                        int32_t ix = ox * g->sw + kx - g->pw;
                        if (ix >= 0 && ix < g->w) dx[(c * g->h + iy) * g->w + ix] += eo;
                    }
                }
            }
}

void et_gap_fwd(const int8_t *x, int32_t c, int32_t n, int32_t zero, int mode, uint32_t base,
                uint32_t off, int8_t *y)
{
    et_multiplier m = et_multiplier_from(1.0f / (float)n);
    for (int32_t i = 0; i < c; i++) {
        int32_t s = 0;
        for (int32_t j = 0; j < n; j++) s += (int32_t)x[i * n + j] - zero;
        y[i] = et_mean_q(s, m, zero, mode, et_bits(base, off + (uint32_t)i));
    }
}

void et_gap_bwd(const int32_t *e, int32_t c, int32_t n, int32_t *dx)
{
    for (int32_t i = 0; i < c; i++)
        for (int32_t j = 0; j < n; j++) dx[i * n + j] = e[i];
}
