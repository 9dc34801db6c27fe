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

#if ET_SIMD
/* ---- forward on ARMv7E-M: the centred input is unpacked once into (x0, x2), (x1, x3) int16
 * word pairs on the stack (ET_LIN_GROUPS groups of four inputs a chunk, 2 KB), then one pass
 * of et_dot5_dsp per five weight rows: per group of four inputs one LDRD of the pairs and per
 * row LDR, 2 SXTB16, 2 SMLAD (26 instructions for 20 MACs; 1.25 per MAC is the floor with int8
 * weights). SMLAD adds modulo 2^32 and the exporter checks that every true sum fits int32, so
 * the order of the additions does not change a result. */
#define ET_LIN_GROUPS 256

/* five rows: 0, 1, 2 at w, w + ldw, w + 2 ldw and 3, 4 at w3, w3 + ldw (the rows may repeat);
 * field order and offsets are read by et_dot5_dsp */
typedef struct {
    const uint32_t *x;   /*  0: groups x (x0 x2, x1 x3) pairs, word aligned (LDRD) */
    const int8_t *w;     /*  4 */
    const int8_t *w3;    /*  8 */
    int32_t ldw;         /* 12 */
    int32_t groups;      /* 16: at least one */
    int32_t *out;        /* 20: the five sums */
} et_dot5_job;

/* one group of four inputs (r9 = x0 x2, r10 = x1 x3) against the five rows {r4 .. r8}; the
 * rows at a register offset are loaded before the post-incremented base row */
#define ET_ROW5(ld, acc)                                                                    \
    ld                                                                                      \
    "sxtb16 ip, r11\n\t"             /* (w0, w2) */                                        \
    "sxtb16 r11, r11, ror #8\n\t"    /* (w1, w3) */                                        \
    "smlad " acc ", ip, r9, " acc "\n\t"                                                   \
    "smlad " acc ", r11, r10, " acc "\n\t"
#define ET_GROUP5                                                                           \
    "ldrd r9, r10, [r0], #8\n\t"                                                           \
    ET_ROW5("ldr r11, [r1, r3]\n\t", "r5")                                                 \
    ET_ROW5("ldr r11, [r1, r3, lsl #1]\n\t", "r6")                                         \
    ET_ROW5("ldr r11, [r1], #4\n\t", "r4")                                                 \
    ET_ROW5("ldr r11, [r2, r3]\n\t", "r8")                                                 \
    ET_ROW5("ldr r11, [r2], #4\n\t", "r7")

void et_dot5_dsp(const et_dot5_job *jb);
__asm(
    ".pushsection .text.et_dot5_dsp, \"ax\", %progbits\n\t"
    ".syntax unified\n\t"
    ".thumb\n\t"
    ".balign 4\n\t"
    ".global et_dot5_dsp\n\t"
    ".thumb_func\n\t"
    ".type et_dot5_dsp, %function\n"
    "et_dot5_dsp:\n\t"
    "push {r0, r4-r11, lr}\n\t"
    "ldm r0, {r0-r3, lr}\n\t"       /* x, w, w3, ldw, groups */
    "movs r4, #0\n\t"
    "movs r5, #0\n\t"
    "movs r6, #0\n\t"
    "movs r7, #0\n\t"
    "mov r8, #0\n\t"
    "lsrs lr, lr, #1\n\t"           /* carry: an odd group first */
    "bcc 2f\n\t"
    ET_GROUP5
    "2:\n\t"
    "lsrs lr, lr, #1\n\t"           /* fours of groups; carry: an odd pair (enters at 5) */
    "bcs 6f\n\t"
    "cmp lr, #0\n\t"
    "beq 4f\n"
    "3:\n\t"
    ET_GROUP5
    ET_GROUP5
    "5:\n\t"
    ET_GROUP5
    ET_GROUP5
    "subs lr, lr, #1\n\t"
    "bne 3b\n\t"
    "b 4f\n"
    "6:\n\t"
    "adds lr, lr, #1\n\t"
    "b 5b\n"
    "4:\n\t"
    "ldr r0, [sp]\n\t"
    "ldr r0, [r0, #20]\n\t"
    "stm r0, {r4-r8}\n\t"
    "pop {r0, r4-r11, pc}\n\t"
    ".size et_dot5_dsp, . - et_dot5_dsp\n\t"
    ".popsection\n");

/* the assembly reads the job at these offsets (ARM: 4-byte pointers) */
typedef char et_dot5_job_layout[offsetof(et_dot5_job, groups) == 16 &&
                                offsetof(et_dot5_job, out) == 20 ? 1 : -1];

/* p[2g], p[2g + 1] = (x0 - zx, x2 - zx), (x1 - zx, x3 - zx) of group g (|x - zx| <= 255 fits
 * a halfword); returns the sum of the centred inputs */
static int32_t et_pairs_centred(const int8_t *x, int32_t zx, int32_t groups, uint32_t *p)
{
    const uint32_t zz = ET_PAIR(zx, zx), ones = 0x00010001u;
    int32_t s = 0;
    for (int32_t g = 0; g < groups; g++) {
        uint32_t xv = et_ld32(x + 4 * g);
        uint32_t x02 = et_ssub16(et_sxtb16(xv), zz), x13 = et_ssub16(et_sxtb16_ror8(xv), zz);
        p[2 * g] = x02;                                   /* (x0, x2) centred */
        p[2 * g + 1] = x13;                               /* (x1, x3) centred */
        s = et_smlad(x13, ones, et_smlad(x02, ones, s));
    }
    return s;
}

/* a pass over r < 5 rows repeats rows (no load leaves the weights): the second base row
 * (in rows past w) and the row step per r, and which of the five sums is row t's */
static const int8_t ET_W3_ROW[5] = {0, 0, 1, 1, 2};
static const int8_t ET_SUM_OF_ROW[5][4] = {{0}, {0}, {0, 3}, {0, 1, 2}, {0, 1, 2, 4}};

/* acc[o] = (add ? acc[o] : 0) + the chunk's sum for every row o, five rows a pass */
static void et_rows5(const uint32_t *pairs, int32_t groups, const int8_t *w, int32_t n_in,
                     int32_t n_out, int32_t *acc, int add)
{
    int32_t s[5];
    for (int32_t o = 0; o < n_out; o += 5, w += 5 * n_in) {
        int32_t r = et_min32(5, n_out - o);
        et_dot5_job jb = {pairs, w, w + (r == 5 ? 3 : ET_W3_ROW[r]) * n_in, r > 2 ? n_in : 0,
                          groups, s};
        et_dot5_dsp(&jb);
        for (int32_t t = 0; t < r; t++)
            acc[o + t] = (add ? acc[o + t] : 0) + s[r == 5 ? t : ET_SUM_OF_ROW[r][t]];
    }
}

void et_linear_fwd(const int8_t *x, int32_t zx, const int8_t *w, int32_t zw,
                   int32_t n_in, int32_t n_out, int32_t *acc)
{
    uint32_t pairs[2 * ET_LIN_GROUPS];                 /* int16 (x0, x2), (x1, x3) per group */
    int32_t groups = n_in >> 2, sum = 0;
    if (groups == 0) memset(acc, 0, (size_t)n_out * sizeof *acc);
    for (int32_t g = 0; g < groups; g += ET_LIN_GROUPS) {
        int32_t ng = et_min32(ET_LIN_GROUPS, groups - g);
        sum += et_pairs_centred(x + 4 * g, zx, ng, pairs);
        et_rows5(pairs, ng, w + 4 * g, n_in, n_out, acc, g > 0);
    }
    for (int32_t i = 4 * groups; i < n_in; i++) {      /* the last n_in % 4 inputs */
        int32_t xc = (int32_t)x[i] - zx;
        sum += xc;
        for (int32_t o = 0; o < n_out; o++) acc[o] += xc * w[o * n_in + i];
    }
    /* sum (x - zx)(w - zw) = sum (x - zx) w - zw * sum (x - zx): exact integer identity */
    if (zw)
        for (int32_t o = 0; o < n_out; o++) acc[o] -= zw * sum;
}
#else
/* ---- forward in plain C (M0+, ET_NO_SIMD, host) */

/* s[r] = sum_i (x_i - zx) * w_r[i] for four rows w_r */
static void et_dot4_centred(const int8_t *x, int32_t zx, const int8_t *const *w, int32_t n,
                            int32_t *s)
{
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
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
#endif

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
