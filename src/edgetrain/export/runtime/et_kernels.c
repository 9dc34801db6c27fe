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

/* Columns of 16-bit operands for the dual-MAC loops. With DSP, each full group of four
 * entries is stored in the order 0, 2, 1, 3 (et_perm_col): the order SXTB16 / SXTB16 ROR 8
 * unpack four int8 weights in, so one 32-bit load of the column meets one weight pair. */

#if ET_SIMD
static inline uint32_t et_ld32h(const int16_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
#endif

/* a0 = sum col[perm(i)] * w0[i], a1 the same with w1 (two output rows share the column loads) */
static void et_dot2_col(const int16_t *col, const int8_t *w0, const int8_t *w1, int32_t n,
                        int32_t *a0, int32_t *a1)
{
    int32_t s0 = 0, s1 = 0, i = 0;
#if ET_SIMD
    for (; i + 4 <= n; i += 4) {
        uint32_t c02 = et_ld32h(col + i), c13 = et_ld32h(col + i + 2);
        uint32_t u = et_ld32(w0 + i), v = et_ld32(w1 + i);
        s0 = et_smlad(et_sxtb16(u), c02, s0);
        s0 = et_smlad(et_sxtb16_ror8(u), c13, s0);
        s1 = et_smlad(et_sxtb16(v), c02, s1);
        s1 = et_smlad(et_sxtb16_ror8(v), c13, s1);
    }
#endif
    for (; i < n; i++) {
        s0 += (int32_t)col[i] * w0[i];
        s1 += (int32_t)col[i] * w1[i];
    }
    *a0 = s0;
    *a1 = s1;
}

static int32_t et_dot_col(const int16_t *col, const int8_t *w, int32_t n)
{
    int32_t s = 0, i = 0;
#if ET_SIMD
    for (; i + 4 <= n; i += 4) {
        uint32_t u = et_ld32(w + i);
        s = et_smlad(et_sxtb16(u), et_ld32h(col + i), s);
        s = et_smlad(et_sxtb16_ror8(u), et_ld32h(col + i + 2), s);
    }
#endif
    for (; i < n; i++) s += (int32_t)col[i] * w[i];
    return s;
}

/* sum a[i] * b[i] over int16 vectors (natural order) */
static int32_t et_dot_q15(const int16_t *a, const int16_t *b, int32_t n)
{
    int32_t s = 0, i = 0;
#if ET_SIMD
    for (; i + 4 <= n; i += 4) {
        s = et_smlad(et_ld32h(a + i), et_ld32h(b + i), s);
        s = et_smlad(et_ld32h(a + i + 2), et_ld32h(b + i + 2), s);
    }
#endif
    for (; i < n; i++) s += (int32_t)a[i] * b[i];
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

static void et_conv_fwd_direct(const et_conv_geo *g, const int8_t *x, int32_t zx,
                               const int8_t *w, int32_t zw, int32_t *acc)
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

static void et_conv_bwd_in_direct(const et_conv_geo *g, const int16_t *ec,
                                  const uint8_t *sel, const int8_t *w, int32_t zw, int32_t *dx)
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

static void et_conv_bwd_w_direct(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
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

/* ---- gathered convolutions: a column of 16-bit operands per position, then dual-MAC
 * dot products against whole weight rows (CMSIS-NN style). Used unless every group has one
 * input and one output channel (depthwise), where the direct loops do less work. */

static int et_conv_direct(const et_conv_geo *g)
{
    return g->c_in / g->groups == 1 && g->c_out / g->groups == 1;
}

/* reorder a natural-order column into the dual-MAC order (0, 2, 1, 3 per group of four) */
static void et_perm_col(int16_t *col, int32_t n)
{
#if ET_SIMD
    for (int32_t i = 0; i + 4 <= n; i += 4) {
        int16_t c1 = col[i + 1];
        col[i + 1] = col[i + 2];
        col[i + 2] = c1;
    }
#else
    (void)col;
    (void)n;
#endif
}

/* column of centred inputs read by output position (oy, ox) of group gi; returns its sum */
static int32_t et_gather_x(const et_conv_geo *g, const int8_t *x, int32_t zx, int32_t c0,
                           int32_t oy, int32_t ox, int16_t *col)
{
    int32_t cg = g->c_in / g->groups, k = 0, sum = 0;
    int32_t y0 = oy * g->sh - g->ph, x0 = ox * g->sw - g->pw;
    int inside = y0 >= 0 && y0 + g->kh <= g->h && x0 >= 0 && x0 + g->kw <= g->w;
    for (int32_t c = 0; c < cg; c++) {
        const int8_t *xc = x + (c0 + c) * g->h * g->w;
        for (int32_t ky = 0; ky < g->kh; ky++) {
            int32_t iy = y0 + ky;
            if (inside) {                           /* no padding: copy the row */
                const int8_t *r = xc + iy * g->w + x0;
                for (int32_t kx = 0; kx < g->kw; kx++, k++) {
                    int32_t v = (int32_t)r[kx] - zx;
                    col[k] = (int16_t)v;
                    sum += v;
                }
                continue;
            }
            int row_ok = iy >= 0 && iy < g->h;
            for (int32_t kx = 0; kx < g->kw; kx++, k++) {
                int32_t ix = x0 + kx;
                int32_t v = row_ok && ix >= 0 && ix < g->w ? (int32_t)xc[iy * g->w + ix] - zx : 0;
                col[k] = (int16_t)v;
                sum += v;
            }
        }
    }
    et_perm_col(col, k);
    return sum;
}

void et_conv_fwd(const et_conv_geo *g, const int8_t *x, int32_t zx, const int8_t *w,
                 int32_t zw, int32_t *acc, const et_conv_scratch *sc)
{
    if (et_conv_direct(g)) {
        et_conv_fwd_direct(g, x, zx, w, zw, acc);
        return;
    }
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, K = cg * g->kh * g->kw;
    int32_t P = g->ho * g->wo;
    for (int32_t gi = 0; gi < g->groups; gi++)
        for (int32_t oy = 0; oy < g->ho; oy++)
            for (int32_t ox = 0; ox < g->wo; ox++) {
                int32_t p = oy * g->wo + ox, a0, a1;
                int32_t corr = zw * et_gather_x(g, x, zx, gi * cg, oy, ox, sc->col);
                int32_t o = gi * og, end = o + og;
                for (; o + 1 < end; o += 2) {
                    et_dot2_col(sc->col, w + o * K, w + (o + 1) * K, K, &a0, &a1);
                    acc[o * P + p] = a0 - corr;
                    acc[(o + 1) * P + p] = a1 - corr;
                }
                if (o < end) acc[o * P + p] = et_dot_col(sc->col, w + o * K, K) - corr;
            }
}

/* backward error: dx[c][iy][ix] = sum over kept outputs o and offsets (ky, kx) of
 * ec[o][oy][ox] * w[o][c][ky][kx]: a gathered convolution with transposed weights, built
 * per call for the kept outputs only (dropped structures cost nothing). */
void et_conv_bwd_in(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                    const int8_t *w, int32_t zw, int32_t *dx, const et_conv_scratch *sc)
{
    if (et_conv_direct(g)) {
        et_conv_bwd_in_direct(g, ec, sel, w, zw, dx);
        return;
    }
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, kk = g->kh * g->kw;
    int32_t P = g->ho * g->wo;
    for (int32_t gi = 0; gi < g->groups; gi++) {
        int32_t n = 0;                                  /* kept outputs of the group */
        for (int32_t ol = 0; ol < og; ol++) {
            int32_t o = gi * og + ol;
            if (sel && !sel[o]) continue;
            for (int32_t c = 0; c < cg; c++)
                for (int32_t k = 0; k < kk; k++)
                    sc->wt[c * og * kk + n * kk + k] = w[(o * cg + c) * kk + k];
            sc->kept[n++] = o;
        }
        int32_t KT = n * kk;
        for (int32_t iy = 0; iy < g->h; iy++)
            for (int32_t ix = 0; ix < g->w; ix++) {
                int32_t k = 0, sum = 0;
                for (int32_t j = 0; j < n; j++) {
                    const int16_t *eo = ec + sc->kept[j] * P;
                    for (int32_t ky = 0; ky < g->kh; ky++) {
                        int32_t ty = iy + g->ph - ky, oy = g->sh == 1 ? ty : ty / g->sh;
                        int row_ok = ty >= 0 && (g->sh == 1 || ty % g->sh == 0) && oy < g->ho;
                        for (int32_t kx = 0; kx < g->kw; kx++, k++) {
                            int32_t tx = ix + g->pw - kx, ox = g->sw == 1 ? tx : tx / g->sw;
                            int32_t v = row_ok && tx >= 0 && (g->sw == 1 || tx % g->sw == 0) &&
                                        ox < g->wo ? eo[oy * g->wo + ox] : 0;
                            sc->col[k] = (int16_t)v;
                            sum += v;
                        }
                    }
                }
                et_perm_col(sc->col, KT);
                for (int32_t c = 0; c < cg; c++)
                    dx[((gi * cg + c) * g->h + iy) * g->w + ix] =
                        (KT ? et_dot_col(sc->col, sc->wt + c * og * kk, KT) : 0) - zw * sum;
            }
    }
}

/* weight gradient: per kernel entry (c, ky, kx) the centred inputs it met at every output
 * position, then one int16 dot product per kept output channel */
void et_conv_bwd_w(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                   const int8_t *x, int32_t zx, int32_t *dw, const et_conv_scratch *sc)
{
    if (et_conv_direct(g)) {
        et_conv_bwd_w_direct(g, ec, sel, x, zx, dw);
        return;
    }
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, kk = g->kh * g->kw;
    int32_t P = g->ho * g->wo;
    for (int32_t gi = 0; gi < g->groups; gi++)
        for (int32_t c = 0; c < cg; c++) {
            const int8_t *xc = x + (gi * cg + c) * g->h * g->w;
            for (int32_t ky = 0; ky < g->kh; ky++)
                for (int32_t kx = 0; kx < g->kw; kx++) {
                    for (int32_t oy = 0; oy < g->ho; oy++) {
                        int32_t iy = oy * g->sh + ky - g->ph;
                        int row_ok = iy >= 0 && iy < g->h;
                        for (int32_t ox = 0; ox < g->wo; ox++) {
                            int32_t ix = ox * g->sw + kx - g->pw;
                            sc->col[oy * g->wo + ox] = (int16_t)(
                                row_ok && ix >= 0 && ix < g->w ? (int32_t)xc[iy * g->w + ix] - zx
                                                               : 0);
                        }
                    }
                    for (int32_t ol = 0; ol < og; ol++) {
                        int32_t o = gi * og + ol;
                        if (sel && !sel[o]) continue;
                        dw[(o * cg + c) * kk + ky * g->kw + kx] += et_dot_q15(ec + o * P,
                                                                             sc->col, P);
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
                y[o] = et_mean_q(s, m, zero, mode, et_bits_for(mode, base, off + o));
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
        y[i] = et_mean_q(s, m, zero, mode, et_bits_for(mode, base, off + (uint32_t)i));
    }
}

void et_gap_bwd(const int32_t *e, int32_t c, int32_t n, int32_t *dx)
{
    for (int32_t i = 0; i < c; i++)
        for (int32_t j = 0; j < n; j++) dx[i * n + j] = e[i];
}
