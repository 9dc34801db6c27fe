/* edgetrain integer kernels (see et_kernels.h). Plain loops on every core; on ARMv7E-M the
 * inner loops use dual 16-bit MACs and produce the same integers (all sums are exact int32).
 *
 * Blocking, so that one load or one unpack feeds several MACs: gathered convolutions and
 * stride-1 weight gradients compute one weight row against a block of four positions per
 * pass (et_rows4: each weight word is unpacked once for four positions; written in assembly
 * on ARMv7E-M, where it takes 13 instructions per 16 MACs and 10 per row), other weight
 * gradients four channels per pass over a shifted input. The blocks are gathered without
 * bounds tests where possible: the forward from a zero-point-padded plane through an offset
 * table, the stride-1 backward error through an offset table at inner positions, one-row
 * convolutions at stride > 1 by phases (no zero entries multiplied). 3 x 3 kernels with one
 * input channel per group run four outputs per pass in assembly (a channel's rows in one
 * call), their stride-1 backward error three kernel rows per pass (inline assembly), their
 * stride-2 backward error only the taps that meet an output (no zero products).
 * Scratch beyond et_conv_scratch is bounded stack buffers (blocks of ET_STACK_COL entries;
 * longer columns are summed chunk by chunk). */
#include <stddef.h>
#include <string.h>

#include "et_kernels.h"

#include "et_fill.h"
#include "et_simd.h"

/* int16 entries of the stack column used for the second position of a 2 x 2 block */
#define ET_STACK_COL 256

static int32_t et_min32(int32_t a, int32_t b) { return a < b ? a : b; }

/* a hot loop kept out of its caller, so that its registers are its own (no spills of the
 * caller's state inside the loop) */
#if defined(__GNUC__)
#define ET_LOOP_FN static __attribute__((noinline))
#else
#define ET_LOOP_FN static
#endif

#if ET_SIMD
static inline void et_st32h(int16_t *p, uint32_t v) { memcpy(p, &v, 4); }
#endif


/* ------------------------------------------------------------- gathered blocks */

/* A block holds the 16-bit operands of ET_NB = 4 positions (its columns j = 0..3) over n
 * entries. Each full group of four entries k .. k + 3 takes 16 int16: the pairs (k, k + 2)
 * of columns 0..3, then the pairs (k + 1, k + 3) of columns 0..3 -- the pairs SXTB16 and
 * SXTB16 ROR 8 unpack a row's four int8 into, so one LDM of four words meets one unpacked
 * weight pair in four dual MACs. Each of the n % 4 tail entries takes four int16, one per
 * column. The layout is the same on every core; only the loop reading it differs. */
#define ET_NB 4

/* one block against `rows` int8 rows; field order and offsets are read by et_rows4_dsp */
typedef struct {
    const int16_t *blk;          /*  0 */
    int32_t groups;              /*  4: full groups of four entries */
    int32_t init[ET_NB];         /*  8: each row's four sums start here (minus the corrections) */
    const int8_t *w;             /* 24: the first row; row r + 1 starts wskip after row r's end */
    int32_t tail;                /* 28: entries after the groups (0..3) */
    int32_t *out;                /* 32: the first row's four sums, stored; rows ldo apart */
    int32_t ldo, wskip;          /* 36, 40 */
    int32_t rows;                /* 44: at least one; the rows' stride n + wskip at least one */
    uintptr_t at[4];             /* 48: the assembly's own (entry points, groups and rows) */
} et_rows4_job;

#if ET_SIMD
/* the four sums of one row: {r4, r5, r6, r7}; per group of four entries one weight word
 * (r1), two LDMs of four column words (r8-r11), 2 SXTB16 and 8 SMLAD (13 instructions for
 * 16 MACs, all 32-bit encodings: 52 bytes a group); the row loop keeps its state in the job
 * (r0), every register is in use */
#define ET_GROUP                                                                            \
    "ldr.w lr, [r1], #4\n\t"        /* w0 w1 w2 w3 */                                      \
    "ldm.w r2!, {r8-r11}\n\t"       /* (k, k + 2) of columns 0..3 */                       \
    "sxtb16 ip, lr\n\t"             /* (w0, w2) */                                         \
    "smlad r4, ip, r8, r4\n\t"                                                              \
    "smlad r5, ip, r9, r5\n\t"                                                              \
    "smlad r6, ip, r10, r6\n\t"                                                             \
    "smlad r7, ip, r11, r7\n\t"                                                             \
    "ldm.w r2!, {r8-r11}\n\t"       /* (k + 1, k + 3) */                                   \
    "sxtb16 lr, lr, ror #8\n\t"     /* (w1, w3) */                                         \
    "smlad r4, lr, r8, r4\n\t"                                                              \
    "smlad r5, lr, r9, r5\n\t"                                                              \
    "smlad r6, lr, r10, r6\n\t"                                                             \
    "smlad r7, lr, r11, r7\n\t"
#define ET_GROUPS7 ET_GROUP ET_GROUP ET_GROUP ET_GROUP ET_GROUP ET_GROUP ET_GROUP
/* one tail entry: one int8 weight, two column words (24 bytes) */
#define ET_TAIL                                                                             \
    "ldrsb.w ip, [r1], #1\n\t"                                                              \
    "ldm.w r2!, {r8, r9}\n\t"                                                               \
    "smlabb r4, ip, r8, r4\n\t"                                                             \
    "smlabt r5, ip, r8, r5\n\t"                                                             \
    "smlabb r6, ip, r9, r6\n\t"                                                             \
    "smlabt r7, ip, r9, r7\n\t"

/* Per row: a jump into an eight-group loop body (Duff's device: a row of g groups enters it
 * (-g) & 7 groups in and makes (g + 7) / 8 passes, two instructions a pass), then the store
 * of the four sums, the step to the next row and the next row's LDM (block, passes, starting
 * sums) with the jump back as one IT block: 10 instructions a row besides the MACs' 13 per
 * group. The loop body is there twice: the copy rows with tail entries use jumps into the
 * three unrolled tail entries (3 - tail in; two more instructions a row), the other runs
 * straight into the row's end. The entry points are worked out once per call (at[0], at[1]);
 * during the call `groups` holds the passes and `rows` where the weight pointer stands after
 * the last row (at[2], at[3]: their values, put back on return). */
void et_rows4_dsp(et_rows4_job *jb);
__asm(
    ET_ASM_FUNCTION_BEGIN("et_rows4_dsp")
    "push {r4-r11, lr}\n\t"
    "ldrd r1, r2, [r0, #24]\n\t"    /* w, tail */
    "ldr r3, [r0, #4]\n\t"          /* groups */
    "ldrd r4, r5, [r0, #40]\n\t"    /* wskip, rows */
    "strd r3, r5, [r0, #56]\n\t"
    "add r6, r2, r3, lsl #2\n\t"    /* n = 4 groups + tail */
    "add r6, r6, r4\n\t"            /* the rows' stride */
    "mla r6, r6, r5, r1\n\t"        /* the end of the rows */
    "str r6, [r0, #44]\n\t"
    "adr.w r6, 5f\n\t"              /* tail entry: 3 - tail entries in */
    "rsb r4, r2, #3\n\t"
    "movs r5, #24\n\t"
    "mla r6, r4, r5, r6\n\t"
    "orr r6, r6, #1\n\t"
    "str r6, [r0, #52]\n\t"
    "cbz r3, 2f\n\t"                /* no groups: straight to the tail (or the row's end) */
    "adds r4, r3, #7\n\t"           /* passes */
    "lsrs r4, r4, #3\n\t"
    "str r4, [r0, #4]\n\t"
    "rsbs r3, r3, #0\n\t"           /* groups skipped in the first pass */
    "and r3, r3, #7\n\t"
    "adr.w r6, 3f\n\t"              /* with a tail: the first copy */
    "adr.w r4, 4f\n\t"
    "cmp r2, #0\n\t"
    "it eq\n\t"
    "moveq r6, r4\n\t"
    "movs r4, #52\n\t"
    "mla r6, r3, r4, r6\n\t"
    "orr r6, r6, #1\n"
    "2:\n\t"
    "str r6, [r0, #48]\n\t"
    "ldm r0, {r2-r7}\n\t"           /* blk, passes, the four starting sums */
    "ldr pc, [r0, #48]\n\t"
    ".balign 4\n"
    "3:\n\t"
    ET_GROUP
    "7:\n\t"
    ET_GROUPS7
    "subs r3, r3, #1\n\t"
    "bne 3b\n\t"
    "ldr pc, [r0, #52]\n\t"
    ".balign 4\n"
    "5:\n\t"
    ET_TAIL
    "8:\n\t"
    ET_TAIL
    ET_TAIL
    "9:\n\t"
    "b 6f\n\t"
    ".balign 4\n"
    "4:\n\t"
    ET_GROUP
    ET_GROUPS7
    "subs r3, r3, #1\n\t"
    "bne 4b\n"
    "6:\n\t"
    "ldrd r8, r9, [r0, #32]\n\t"    /* out, ldo */
    "stm r8, {r4-r7}\n\t"
    "add r8, r8, r9, lsl #2\n\t"
    "str r8, [r0, #32]\n\t"
    "ldrd r8, r9, [r0, #40]\n\t"    /* wskip, the end of the rows */
    "add r1, r1, r8\n\t"
    "ldm r0, {r2-r7}\n\t"           /* the next row's start (read past the last: harmless) */
    "cmp r1, r9\n\t"
    "it ne\n\t"
    "ldrne pc, [r0, #48]\n\t"
    "ldrd r3, r4, [r0, #56]\n\t"
    "str r3, [r0, #4]\n\t"
    "str r4, [r0, #44]\n\t"
    "pop {r4-r11, pc}\n\t"
    ".if (7b - 3b) != 52 || (8b - 5b) != 24 || (9b - 5b) != 72\n\t"
    ".error \"et_rows4_dsp: entry arithmetic needs 52-byte groups, 24-byte tails\"\n\t"
    ".endif\n\t"
    ET_ASM_FUNCTION_END("et_rows4_dsp"));

/* the assembly reads the job at these offsets (ARM: 4-byte pointers) */
typedef char et_rows4_job_layout[offsetof(et_rows4_job, rows) == 44 &&
                                 offsetof(et_rows4_job, tail) == 28 &&
                                 offsetof(et_rows4_job, at) == 48 ? 1 : -1];
#define et_rows4 et_rows4_dsp
#else
/* the same sums in plain C: s_j = init_j + sum_k column j [k] w_r[k] */
static void et_rows4(et_rows4_job *jb)
{
    const int8_t *w = jb->w;
    int32_t *out = jb->out, n = 4 * jb->groups;
    for (int32_t r = 0; r < jb->rows; r++, w += n + jb->tail + jb->wskip, out += jb->ldo) {
        const int16_t *b = jb->blk;
        int32_t s[ET_NB] = {0, 0, 0, 0}, k = 0;
        for (; k < n; k += 4, b += 16)
            for (int32_t j = 0; j < ET_NB; j++)
                s[j] += b[2 * j] * w[k] + b[2 * j + 1] * w[k + 2] + b[8 + 2 * j] * w[k + 1] +
                        b[9 + 2 * j] * w[k + 3];
        for (; k < n + jb->tail; k++, b += 4)
            for (int32_t j = 0; j < ET_NB; j++) s[j] += b[j] * w[k];
        for (int32_t j = 0; j < ET_NB; j++) out[j] = s[j] + jb->init[j];
    }
}
#endif

/* out_r[j] = block column j . w_r - corr[j] (add: out_r[j] += that) for j < npos and rows
 * r < rows (w_r = w + r ldw, out_r = out + r ldo): one block against every row. Short or
 * accumulating blocks go through a small buffer so that the loop stores four whole sums. */
static void et_rows_block(const int16_t *blk, int32_t n, const int8_t *w, int32_t ldw,
                          int32_t rows, int32_t *out, int32_t ldo, const int32_t *corr,
                          int32_t npos, int add)
{
    et_rows4_job jb = {blk, n >> 2, {-corr[0], -corr[1], -corr[2], -corr[3]}, w, n & 3, out,
                       ldo, ldw - n, rows, {0, 0, 0, 0}};
    if (npos == ET_NB && !add) {
        et_rows4(&jb);
        return;
    }
    int32_t tmp[16 * ET_NB];
    for (int32_t r0 = 0; r0 < rows; r0 += 16, w += 16 * ldw, out += 16 * ldo) {
        int32_t m = et_min32(16, rows - r0);
        jb.w = w;
        jb.out = tmp;
        jb.ldo = ET_NB;
        jb.rows = m;
        et_rows4(&jb);
        for (int32_t r = 0; r < m; r++)
            for (int32_t j = 0; j < npos; j++)
                out[r * ldo + j] = (add ? out[r * ldo + j] : 0) + tmp[r * ET_NB + j];
    }
}

/* ------------------------------------------------------------- dot products */

/* s[r] = col . e_r over n int16 entries (natural order) for four rows e_r */
static void et_dot4_q15(const int16_t *col, const int16_t *const *e, int32_t n, int32_t *s)
{
    const int16_t *e0 = e[0], *e1 = e[1], *e2 = e[2], *e3 = e[3];
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
#if ET_SIMD
    int32_t m = n >> 2;
    if (m > 0) {
        uint32_t c0, c1, t;
        __asm volatile(
            "1:\n\t"
            "ldr %[c0], [%[col]], #4\n\t"
            "ldr %[c1], [%[col]], #4\n\t"
            "ldr %[t], [%[e0]], #4\n\t"
            "smlad %[s0], %[t], %[c0], %[s0]\n\t"
            "ldr %[t], [%[e0]], #4\n\t"
            "smlad %[s0], %[t], %[c1], %[s0]\n\t"
            "ldr %[t], [%[e1]], #4\n\t"
            "smlad %[s1], %[t], %[c0], %[s1]\n\t"
            "ldr %[t], [%[e1]], #4\n\t"
            "smlad %[s1], %[t], %[c1], %[s1]\n\t"
            "ldr %[t], [%[e2]], #4\n\t"
            "smlad %[s2], %[t], %[c0], %[s2]\n\t"
            "ldr %[t], [%[e2]], #4\n\t"
            "smlad %[s2], %[t], %[c1], %[s2]\n\t"
            "ldr %[t], [%[e3]], #4\n\t"
            "smlad %[s3], %[t], %[c0], %[s3]\n\t"
            "ldr %[t], [%[e3]], #4\n\t"
            "smlad %[s3], %[t], %[c1], %[s3]\n\t"
            "subs %[m], %[m], #1\n\t"
            "bne 1b\n\t"
            : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [col] "+r"(col),
              [e0] "+r"(e0), [e1] "+r"(e1), [e2] "+r"(e2), [e3] "+r"(e3), [m] "+r"(m),
              [c0] "=&r"(c0), [c1] "=&r"(c1), [t] "=&r"(t)
            :
            : "cc", "memory");
        n -= 4 * (n >> 2);
    }
#endif
    for (; i < n; i++) {
        int32_t c = col[i];
        s0 += c * e0[i];
        s1 += c * e1[i];
        s2 += c * e2[i];
        s3 += c * e3[i];
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
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

/* ---- one input channel per group, 3 wide (depthwise, or a first layer on a one-channel
 * input; kw == 3, stride 1 or 2 across): per input channel a padded copy of the plane in raw
 * codes, padding = the zero point, so every tap is valid and sum w (x - zx) = sum w x -
 * zx sum w; then rows of dual MACs, two outputs per 32-bit load. The backward error
 * correlates zero-padded (stride 2: dilated) error rows with the flipped kernel. Other
 * shapes with one input and one output channel per group take the direct loops above. */

/* one input and one output channel per group (depthwise) */
static int et_conv_direct(const et_conv_geo *g)
{
    return g->c_in / g->groups == 1 && g->c_out / g->groups == 1;
}

#define ET_DW_PLANE 2048   /* bytes of the stack plane / int16 error row buffer */
#define ET_DW_KH 8         /* kernel rows handled */

static int32_t et_plane_rows(const et_conv_geo *g) { return (g->ho - 1) * g->sh + g->kh; }
static int32_t et_plane_stride(const et_conv_geo *g) { return (g->wo - 1) * g->sw + 8; }

/* one input channel per group (depthwise, or a first layer on a one-channel input) */
static int et_dw3(const et_conv_geo *g)
{
    return g->c_in == g->groups && g->kw == 3 && (g->sw == 1 || g->sw == 2) && g->kh <= ET_DW_KH &&
           et_plane_rows(g) * et_plane_stride(g) <= ET_DW_PLANE;
}

/* plane row r = input row r - ph, column j = input column j - pw: the padding (zx) is
 * written once per call, each channel then copies its rows into the interior */
static void et_plane_init(const et_conv_geo *g, int32_t zx, int8_t *pl)
{
    et_fill8(pl, zx, (size_t)(et_plane_rows(g) * et_plane_stride(g)));
}

static void et_plane_fill(const et_conv_geo *g, const int8_t *xc, int8_t *pl)
{
    int32_t stride = et_plane_stride(g), rows = et_min32(g->h, et_plane_rows(g) - g->ph);
    int32_t n = et_min32(g->w, stride - g->pw);
    pl += g->ph * stride + g->pw;
#if ET_SIMD
    /* short rows: four word copies a row and no branches, the words at 0, 4, 8 (those past
     * the last word's start moved onto it: copied twice) and the last one, overlapping (no
     * byte tail) */
    if (n >= 4 && n <= 16) {
        int32_t o3 = n - 4, o1 = et_min32(4, o3), o2 = et_min32(8, o3), w = g->w;
        for (; rows > 0; rows--, pl += stride, xc += w) {
            et_st32(pl, et_ld32(xc));
            et_st32(pl + o1, et_ld32(xc + o1));
            et_st32(pl + o2, et_ld32(xc + o2));
            et_st32(pl + o3, et_ld32(xc + o3));
        }
        return;
    }
#endif
    for (int32_t iy = 0; iy < rows; iy++, pl += stride, xc += g->w) {
        int32_t i = 0;
#if ET_SIMD
        if (n >= 4) {               /* words; the last one overlaps: no byte tail */
            for (; i + 4 < n; i += 4) {
                uint32_t v = et_ld32(xc + i);
                __asm("" : "+r"(v));                  /* short rows: no memcpy call */
                et_st32(pl + i, v);
            }
            et_st32(pl + n - 4, et_ld32(xc + n - 4));
            continue;
        }
#endif
        for (; i < n; i++) pl[i] = xc[i];
    }
}

/* out[ox] += w0 x[ox s] + w1 x[ox s + 1] + w2 x[ox s + 2] for ox < n, s = 1 or 2 */
static void et_dw3_row(int32_t *out, const int8_t *x, const int32_t *w, int32_t n, int32_t s)
{
    int32_t ox = 0;
#if ET_SIMD
    uint32_t w02 = ET_PAIR(w[0], w[2]), w1 = ET_PAIR(w[1], 0);
    if (s == 1)
        for (; ox + 2 <= n; ox += 2) {
            uint32_t v = et_ld32(x + ox), e = et_sxtb16(v), o = et_sxtb16_ror8(v);
            out[ox] = et_smlabb(o, w1, et_smlad(e, w02, out[ox]));
            out[ox + 1] = et_smlatb(e, w1, et_smlad(o, w02, out[ox + 1]));
        }
    else
        for (; ox + 2 <= n; ox += 2) {
            uint32_t v = et_ld32(x + 2 * ox), e = et_sxtb16(v), o = et_sxtb16_ror8(v);
            uint32_t e2 = et_sxtb16(et_ld32(x + 2 * ox + 4));
            out[ox] = et_smlabb(o, w1, et_smlad(e, w02, out[ox]));
            out[ox + 1] = et_smlabt(e2, w02, et_smlatb(o, w1, et_smlatb(e, w02, out[ox + 1])));
        }
#endif
    for (; ox < n; ox++) {
        const int8_t *r = x + ox * s;
        out[ox] += w[0] * r[0] + w[1] * r[1] + w[2] * r[2];
    }
}


/* the job of et_dw33_quads_s1/_s2 (below) */
typedef struct {
    int32_t base[4];             /*  0: the sums start here */
    uint32_t w[6];               /* 16: per kernel row (w0, w2), (w1, 0) */
    int32_t stride;              /* 40: plane row stride */
    int32_t *end;                /* 44: the row's outputs end here (a multiple of four) */
    int32_t rows;                /* 48: output rows (at least one; counted down) */
    int32_t oskip;               /* 52: bytes from a row's end to the next row's outputs */
    int32_t orow;                /* 56: bytes from a row's end to the next row's end */
    int32_t xskip;               /* 60: bytes from where a row leaves x to the next row's */
} et_dw33_job;

/* the nine centred weights of a 3 x 3 kernel (w: plain loops; job: packed for the dual MACs) */
typedef struct { const int32_t *w; et_dw33_job *job; } et_w33;

#if ET_SIMD
/* Four outputs of a 3 x 3 kernel at a time, in assembly (every register in use; the
 * compiler's schedule of the same C spilled a third of the instructions). Per kernel row
 * (pair (w0, w2) and w1 in the bottom half, one LDRD from the job) and at stride 1, the
 * unpacked words of x[0..3] (e = (x0, x2), o = (x1, x3)) and x[4..7] (e2, o2) give
 *   s0 = x0 w0 + x2 w2 + x1 w1        SMLAD (e), SMLABB (o)
 *   s1 = x1 w0 + x3 w2 + x2 w1        SMLAD (o), SMLATB (e)
 *   s2 = x2 w0 + x4 w2 + x3 w1        SMLADX of (x4, x2) = PKHBT (e2, e), SMLATB (o)
 *   s3 = x3 w0 + x5 w2 + x4 w1        SMLADX of (x5, x3) = PKHBT (o2, o), SMLABB (e2)
 * and at stride 2, with x[8..11] (e3):
 *   s0 by SMLAD (e) + x1 w1, s1 = x2 w0 + x4 w2 + x3 w1 by SMLADX of PKHBT (e2, e),
 *   s2 by SMLAD (e2) + x5 w1, s3 = x6 w0 + x8 w2 + x7 w1 by SMLADX of PKHBT (e3, e2):
 * 17 (stride 2: 19) instructions per kernel row, 59 (65) per four outputs. The plane's slack
 * (8 bytes past the last output's window) covers the word reads. */
typedef char et_dw33_job_layout[offsetof(et_dw33_job, stride) == 40 &&
                                offsetof(et_dw33_job, end) == 44 &&
                                offsetof(et_dw33_job, xskip) == 60 ? 1 : -1];

/* r0 job, r1 x, r2 stride, r3 out, r4-r7 sums, r8/r9 the row's weights, r10-r12/lr temps
 * (A = r10, B = r11, C = ip, D = lr: the row pointer, then a loaded word) */
#define ET_DW_S1_ROW(ld, wofs)                                                             \
    ld                                                                                     \
    "ldrd r8, r9, [r0, #" #wofs "]\n\t"                                                    \
    "sxtb16 ip, r10\n\t"              /* e */                                              \
    "sxtb16 r10, r10, ror #8\n\t"     /* o */                                              \
    "smlad r4, ip, r8, r4\n\t"                                                             \
    "smlabb r4, r10, r9, r4\n\t"                                                           \
    "smlad r5, r10, r8, r5\n\t"                                                            \
    "smlatb r5, ip, r9, r5\n\t"                                                            \
    "smlatb r6, r10, r9, r6\n\t"                                                           \
    "sxtb16 r11, lr\n\t"              /* e2 */                                             \
    "pkhbt ip, r11, ip\n\t"           /* (x4, x2) */                                       \
    "smladx r6, ip, r8, r6\n\t"                                                            \
    "smlabb r7, r11, r9, r7\n\t"                                                           \
    "sxtb16 lr, lr, ror #8\n\t"       /* o2 */                                             \
    "pkhbt r10, lr, r10\n\t"          /* (x5, x3) */                                       \
    "smladx r7, r10, r8, r7\n\t"

#define ET_DW_S2_ROW(ld, wofs)                                                             \
    ld                                                                                     \
    "ldrd r8, r9, [r0, #" #wofs "]\n\t"                                                    \
    "sxtb16 ip, r10\n\t"              /* e */                                              \
    "sxtb16 r10, r10, ror #8\n\t"     /* o */                                              \
    "smlad r4, ip, r8, r4\n\t"                                                             \
    "smlabb r4, r10, r9, r4\n\t"                                                           \
    "smlatb r5, r10, r9, r5\n\t"                                                           \
    "sxtb16 r10, r11\n\t"             /* e2 */                                             \
    "pkhbt ip, r10, ip\n\t"           /* (x4, x2) */                                       \
    "smladx r5, ip, r8, r5\n\t"                                                            \
    "smlad r6, r10, r8, r6\n\t"                                                            \
    "sxtb16 r11, r11, ror #8\n\t"     /* o2 */                                             \
    "smlabb r6, r11, r9, r6\n\t"                                                           \
    "smlatb r7, r11, r9, r7\n\t"                                                           \
    "sxtb16 lr, lr\n\t"               /* e3 */                                             \
    "pkhbt r10, lr, r10\n\t"          /* (x8, x6) */                                       \
    "smladx r7, r10, r8, r7\n\t"

#define ET_DW_FUNC(name, step, ROW, ld0, ld1, ld2)                                         \
    ET_ASM_FUNCTION_BEGIN(#name)                                                           \
    "push {r4-r11, lr}\n\t"                                                                \
    "mov r3, r2\n\t"                                                                       \
    "ldr r2, [r0, #40]\n"                                                                  \
    "1:\n\t"                                                                               \
    "ldm r0, {r4-r7}\n\t"                                                                  \
    ROW(ld0, 16)                                                                           \
    ROW(ld1, 24)                                                                           \
    ROW(ld2, 32)                                                                           \
    "stm r3!, {r4-r7}\n\t"                                                                 \
    "adds r1, r1, #" #step "\n\t"                                                          \
    "ldr ip, [r0, #44]\n\t"                                                                \
    "cmp r3, ip\n\t"                                                                       \
    "bne 1b\n\t"                                                                           \
    "ldrd ip, lr, [r0, #48]\n\t"   /* rows left, oskip */                                  \
    "subs ip, ip, #1\n\t"                                                                  \
    "beq 9f\n\t"                                                                           \
    "str ip, [r0, #48]\n\t"                                                                \
    "add r3, r3, lr\n\t"                                                                   \
    "ldrd ip, lr, [r0, #56]\n\t"   /* orow, xskip */                                       \
    "add r1, r1, lr\n\t"                                                                   \
    "ldr lr, [r0, #44]\n\t"                                                                \
    "add lr, lr, ip\n\t"                                                                   \
    "str lr, [r0, #44]\n\t"                                                                \
    "b 1b\n"                                                                                \
    "9:\n\t"                                                                               \
    "pop {r4-r11, pc}\n\t"                                                                 \
    ET_ASM_FUNCTION_END(#name)

#define ET_LD_S1_0 "ldr r10, [r1]\n\tldr lr, [r1, #4]\n\t"
#define ET_LD_S1_1 "add lr, r1, r2\n\tldr r10, [lr]\n\tldr lr, [lr, #4]\n\t"
#define ET_LD_S1_2 "add lr, r1, r2, lsl #1\n\tldr r10, [lr]\n\tldr lr, [lr, #4]\n\t"
#define ET_LD_S2_0 "ldr r10, [r1]\n\tldr r11, [r1, #4]\n\tldr lr, [r1, #8]\n\t"
#define ET_LD_S2_1 "add lr, r1, r2\n\tldr r10, [lr]\n\tldr r11, [lr, #4]\n\tldr lr, [lr, #8]\n\t"
#define ET_LD_S2_2                                                                         \
    "add lr, r1, r2, lsl #1\n\tldr r10, [lr]\n\tldr r11, [lr, #4]\n\tldr lr, [lr, #8]\n\t"

/* jb->rows rows of outputs from plane row x on, each out[0 .. jb->end - out) (at least four
 * outputs), then out += that + oskip bytes, end += orow bytes, x += xskip bytes past where
 * the row's quads left it; changes rows and end */
void et_dw33_quads_s1(et_dw33_job *jb, const int8_t *x, int32_t *out);
void et_dw33_quads_s2(et_dw33_job *jb, const int8_t *x, int32_t *out);
__asm(ET_DW_FUNC(et_dw33_quads_s1, 4, ET_DW_S1_ROW, ET_LD_S1_0, ET_LD_S1_1, ET_LD_S1_2));
__asm(ET_DW_FUNC(et_dw33_quads_s2, 8, ET_DW_S2_ROW, ET_LD_S2_0, ET_LD_S2_1, ET_LD_S2_2));
#endif

/* out[ox] = base + sum over kernel rows k of w[3k .. 3k + 2] . x[k stride + ox s ..] for
 * ox < n, s = 1 or 2. Where out_end leaves room, the last one to three outputs are a whole
 * quad that also writes up to three entries past out[n - 1]: the caller writes those later
 * (they are the next row's or channel's outputs); else that quad goes through tmp. */
static inline void et_dw33_row(int32_t *out, const int8_t *x, int32_t stride, const et_w33 *k,
                               int32_t n, int32_t s, int32_t base, const int32_t *out_end)
{
    int32_t ox = 0;
#if ET_SIMD
    void (*quads)(et_dw33_job *, const int8_t *, int32_t *) =
        s == 1 ? et_dw33_quads_s1 : et_dw33_quads_s2;
    et_dw33_job *jb = k->job;
    int32_t whole = (n + 3) & ~3;
    ox = out_end - out >= whole ? whole : n & ~3;
    if (ox > 0) {
        jb->end = out + ox;
        jb->rows = 1;
        quads(jb, x, out);
    }
    if (ox < n) {           /* the last one to three: a whole quad into tmp (reads: slack) */
        int32_t tmp[4];
        jb->end = tmp + 4;
        jb->rows = 1;
        quads(jb, x + ox * s, tmp);
        for (int32_t i = 0; ox < n; ox++) {
            __asm("" : "+r"(i));                      /* three at most: not a memcpy call */
            out[ox] = tmp[i++];
        }
    }
#else
    (void)out_end;
#endif
    for (; ox < n; ox++) {
        int32_t t = base;
        for (int32_t r = 0; r < 3; r++) {
            const int8_t *xr = x + r * stride + ox * s;
            t += k->w[3 * r] * xr[0] + k->w[3 * r + 1] * xr[1] + k->w[3 * r + 2] * xr[2];
        }
        out[ox] = t;
    }
}

/* a 3 x 3 kernel over the padded plane of one channel (out: its ho x wo sums; out_end: the
 * end of the outputs the caller writes after these) */
static void et_dw33_plane(const et_conv_geo *g, int32_t *out, const int8_t *pl, int32_t stride,
                          const int32_t *w, int32_t base, const int32_t *out_end)
{
    et_dw33_job jb = {{base, base, base, base}, {0, 0, 0, 0, 0, 0}, stride, out, 1, 0, 0, 0};
    et_w33 k = {w, &jb};
    int32_t oy = 0;
#if ET_SIMD
    for (int32_t r = 0; r < 3; r++) {
        jb.w[2 * r] = ET_PAIR(w[3 * r], w[3 * r + 2]);
        jb.w[2 * r + 1] = ET_PAIR(w[3 * r + 1], 0);
    }
    /* the rows whose whole quads stay before out_end in one call, each as whole quads (a
     * row's last quad writes up to three of the following outputs, written after); the
     * rest by et_dw33_row */
    int32_t nq = (g->wo + 3) >> 2, step = 4 * g->sw, room = (int32_t)(out_end - out) - 4 * nq;
    oy = room < 0 ? 0 : et_min32(g->ho, room / g->wo + 1);
    if (oy > 0) {
        jb.end = out + 4 * nq;
        jb.rows = oy;
        jb.oskip = (int32_t)sizeof(int32_t) * (g->wo - 4 * nq);
        jb.orow = (int32_t)sizeof(int32_t) * g->wo;
        jb.xskip = g->sh * stride - nq * step;
        (g->sw == 1 ? et_dw33_quads_s1 : et_dw33_quads_s2)(&jb, pl, out);
        out += oy * g->wo;
    }
#endif
    for (; oy < g->ho; oy++, out += g->wo)
        et_dw33_row(out, pl + oy * g->sh * stride, stride, &k, g->wo, g->sw, base, out_end);
}

/* centred weights of channel c, kh rows of three; returns their sum */
static int32_t et_dw3_weights(const et_conv_geo *g, const int8_t *w, int32_t zw, int32_t c,
                              int32_t *wc)
{
    int32_t sum = 0;
    for (int32_t k = 0; k < g->kh * 3; k++) {
        wc[k] = (int32_t)w[c * g->kh * 3 + k] - zw;
        sum += wc[k];
    }
    return sum;
}

static void et_dw3_fwd(const et_conv_geo *g, const int8_t *x, int32_t zx, const int8_t *w,
                       int32_t zw, int32_t *acc)
{
    union { int32_t align; int8_t v[ET_DW_PLANE + 8]; } plb;  /* slack: the last quad's reads */
    int8_t *pl = plb.v;
    int32_t wc[ET_DW_KH * 3], stride = et_plane_stride(g);
    et_plane_init(g, zx, pl);
    for (int32_t c = 0, og = g->c_out / g->groups; c < g->c_out; c++) {
        if (c % og == 0) et_plane_fill(g, x + c / og * g->h * g->w, pl);
        int32_t base = -zx * et_dw3_weights(g, w, zw, c, wc);
        int32_t *out = acc + c * g->ho * g->wo;
        if (g->kh == 3) {
            et_dw33_plane(g, out, pl, stride, wc, base, acc + g->c_out * g->ho * g->wo);
            continue;
        }
        for (int32_t oy = 0; oy < g->ho; oy++, out += g->wo) {
            for (int32_t ox = 0; ox < g->wo; ox++) out[ox] = base;
            for (int32_t ky = 0; ky < g->kh; ky++)
                et_dw3_row(out, pl + (oy * g->sh + ky) * stride, wc + 3 * ky, g->wo, g->sw);
        }
    }
}

/* s[kx] += e x[kx], x[kx + 1], x[kx + 2] for one error e: a row's last when wo is odd */
static inline void et_dw3_grad_one(int32_t e, const int8_t *x, int32_t *s0, int32_t *s1,
                                   int32_t *s2)
{
    *s0 += e * x[0];
    *s1 += e * x[1];
    *s2 += e * x[2];
}

/* s[kx] += sum over oy < ho, ox < wo of e[oy wo + ox] x[oy xstep + ox st + kx] for kx < 3,
 * st = 1 or 2: one kernel row's three sums over a channel's whole error plane (e: its ho
 * rows of wo, read in order; x: the plane row the first error row meets), two errors per
 * word load; the rows are walked by pointers and the stride is chosen once per call, so a
 * short row costs a few instructions besides its pairs */
ET_LOOP_FN void et_dw3_grad_rows(const int16_t *e, const int8_t *x, int32_t ho, int32_t wo,
                             int32_t xstep, int32_t st, int32_t *s)
{
    int32_t s0 = s[0], s1 = s[1], s2 = s[2], even = wo & ~1, odd = wo & 1;
    const int16_t *last = e + ho * wo;
#if ET_SIMD
    if (st == 1)
        for (; e != last; x += xstep) {
            const int8_t *r = x;
            for (const int16_t *end = e + even; e != end; e += 2, r += 2) {
                uint32_t ee = et_ld32h(e), v = et_ld32(r);
                uint32_t xe = et_sxtb16(v), xo = et_sxtb16_ror8(v);
                s0 = et_smlatb(ee, xo, et_smlabb(ee, xe, s0));
                s1 = et_smlatt(ee, xe, et_smlabb(ee, xo, s1));
                s2 = et_smlatt(ee, xo, et_smlabt(ee, xe, s2));
            }
            if (odd) et_dw3_grad_one(*e++, r, &s0, &s1, &s2);
        }
    else
        for (; e != last; x += xstep) {
            const int8_t *r = x;
            for (const int16_t *end = e + even; e != end; e += 2, r += 4) {
                uint32_t ee = et_ld32h(e), v = et_ld32(r);
                uint32_t xe = et_sxtb16(v), xo = et_sxtb16_ror8(v);
                uint32_t xe2 = et_sxtb16(et_ld32(r + 4));
                s0 = et_smlad(ee, xe, s0);
                s1 = et_smlad(ee, xo, s1);
                s2 = et_smlatb(ee, xe2, et_smlabt(ee, xe, s2));
            }
            if (odd) et_dw3_grad_one(*e++, r, &s0, &s1, &s2);
        }
#else
    (void)even;
    (void)odd;
    for (; e != last; x += xstep)
        for (const int8_t *r = x, *end = x + wo * st; r != end; r += st)
            et_dw3_grad_one(*e++, r, &s0, &s1, &s2);
#endif
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
}

/* sum of n int16 (SMLAD with (1, 1): two a word) */
static int32_t et_sum_q15(const int16_t *e, int32_t n)
{
    int32_t s = 0, i = 0;
#if ET_SIMD
    for (; i + 4 <= n; i += 4)
        s = et_smlad(et_ld32h(e + i + 2), 0x00010001u, et_smlad(et_ld32h(e + i), 0x00010001u, s));
#endif
    for (; i < n; i++) s += e[i];
    return s;
}

/* dst[0..n) = src[0..n), int16, two a word where the DSP helpers are */
static void et_copy_q15(int16_t *dst, const int16_t *src, int32_t n)
{
    int32_t i = 0;
#if ET_SIMD
    for (; i + 2 <= n; i += 2) {                      /* short rows: no memcpy call */
        uint32_t v = et_ld32h(src + i);
        __asm("" : "+r"(v));
        et_st32h(dst + i, v);
    }
#endif
    for (; i < n; i++) dst[i] = src[i];
}

static void et_dw3_bwd_w(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                         const int8_t *x, int32_t zx, int32_t *dw)
{
    union { int32_t align; int8_t v[ET_DW_PLANE]; } plb;
    int8_t *pl = plb.v;
    int32_t stride = et_plane_stride(g), P = g->ho * g->wo;
    et_plane_init(g, zx, pl);
    for (int32_t c = 0, og = g->c_out / g->groups, filled = -1; c < g->c_out; c++) {
        if (sel && !sel[c]) continue;
        const int16_t *e = ec + c * P;
        int32_t esum = et_sum_q15(e, P);
        if (c / og != filled) et_plane_fill(g, x + (filled = c / og) * g->h * g->w, pl);
        int32_t *d = dw + c * g->kh * 3, corr = zx * esum;
        for (int32_t ky = 0; ky < g->kh; ky++, d += 3) {
            int32_t s[3] = {0, 0, 0};
            et_dw3_grad_rows(e, pl + ky * stride, g->ho, g->wo, g->sh * stride, g->sw, s);
            d[0] += s[0] - corr;
            d[1] += s[1] - corr;
            d[2] += s[2] - corr;
        }
    }
}

/* out[i] += f0 r[i] + f1 r[i + 1] + f2 r[i + 2] for i < n over int16 r */
static void et_dw3_row_q15(int32_t *out, const int16_t *r, const int32_t *f, int32_t n)
{
    int32_t i = 0;
#if ET_SIMD
    uint32_t f01 = ET_PAIR(f[0], f[1]), f12 = ET_PAIR(f[1], f[2]);
    for (; i + 2 <= n; i += 2) {
        uint32_t a = et_ld32h(r + i), b = et_ld32h(r + i + 2);
        out[i] = et_smlabt(b, f12, et_smlad(a, f01, out[i]));
        out[i + 1] = et_smlad(b, f12, et_smlatb(a, f01, out[i + 1]));
    }
#endif
    for (; i < n; i++) out[i] += f[0] * r[i] + f[1] * r[i + 1] + f[2] * r[i + 2];
}

static int et_dw3_in(const et_conv_geo *g)
{
    return et_dw3(g) && g->pw <= 2 && g->w + 8 <= ET_DW_PLANE / 2;
}

/* dx row += three int16 error rows (stride L apart, the lowest first: kernel rows 2, 1, 0)
 * correlated with the flipped kernel rows f + 6, f + 3, f, for every input row of a
 * channel: one load and one store per output for all three kernel rows (zero rows where a
 * kernel row meets the padding) */
ET_LOOP_FN void et_dw33_bwd_plane(int32_t *dx, const int16_t *er, int32_t L, const int32_t *f,
                                  int32_t h, int32_t w)
{
#if ET_SIMD
    /* per kernel row (for r0, r1, r2): (f0, f1), (f1, f2) */
    uint32_t wq[6] = {ET_PAIR(f[0], f[1]), ET_PAIR(f[1], f[2]), ET_PAIR(f[3], f[4]),
                      ET_PAIR(f[4], f[5]), ET_PAIR(f[6], f[7]), ET_PAIR(f[7], f[8])};
#endif
    for (int32_t iy = 0; iy < h; iy++, dx += w, er += L) {
        const int16_t *r2 = er, *r1 = er + L, *r0 = er + 2 * L;
        int32_t i = 0;
#if ET_SIMD
        /* per pair of outputs and kernel row: its two weight pairs by one LDRD, the word
         * (r[i + 2], r[i + 3]) then (r[i], r[i + 1]) into one register, so that the loop's
         * state fits the registers: 25 instructions per two outputs (18 MACs) */
        if (w >= 2) {
            const int16_t *p0 = r0, *p1 = r1, *p2 = r2;
            int32_t *d = dx, *end = dx + (w & ~1), s0, s1;
            uint32_t t, wa, wb;
            __asm volatile(
                "1:\n\t"
                "ldrd %[s0], %[s1], [%[d]]\n\t"
                "ldrd %[wa], %[wb], [%[wp]]\n\t"
                "ldr %[t], [%[p0], #4]\n\t"
                "smlabt %[s0], %[t], %[wb], %[s0]\n\t"
                "smlad %[s1], %[t], %[wb], %[s1]\n\t"
                "ldr %[t], [%[p0]], #4\n\t"
                "smlad %[s0], %[t], %[wa], %[s0]\n\t"
                "smlatb %[s1], %[t], %[wa], %[s1]\n\t"
                "ldrd %[wa], %[wb], [%[wp], #8]\n\t"
                "ldr %[t], [%[p1], #4]\n\t"
                "smlabt %[s0], %[t], %[wb], %[s0]\n\t"
                "smlad %[s1], %[t], %[wb], %[s1]\n\t"
                "ldr %[t], [%[p1]], #4\n\t"
                "smlad %[s0], %[t], %[wa], %[s0]\n\t"
                "smlatb %[s1], %[t], %[wa], %[s1]\n\t"
                "ldrd %[wa], %[wb], [%[wp], #16]\n\t"
                "ldr %[t], [%[p2], #4]\n\t"
                "smlabt %[s0], %[t], %[wb], %[s0]\n\t"
                "smlad %[s1], %[t], %[wb], %[s1]\n\t"
                "ldr %[t], [%[p2]], #4\n\t"
                "smlad %[s0], %[t], %[wa], %[s0]\n\t"
                "smlatb %[s1], %[t], %[wa], %[s1]\n\t"
                "strd %[s0], %[s1], [%[d]], #8\n\t"
                "cmp %[d], %[end]\n\t"
                "bne 1b\n\t"
                : [s0] "=&r"(s0), [s1] "=&r"(s1), [t] "=&r"(t), [wa] "=&r"(wa),
                  [wb] "=&r"(wb), [d] "+r"(d), [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2)
                : [end] "r"(end), [wp] "r"(wq)
                : "cc", "memory");
            i = w & ~1;
        }
#endif
        for (; i < w; i++)
            dx[i] += f[0] * r0[i] + f[1] * r0[i + 1] + f[2] * r0[i + 2] + f[3] * r1[i] +
                     f[4] * r1[i + 1] + f[5] * r1[i + 2] + f[6] * r2[i] + f[7] * r2[i + 1] +
                     f[8] * r2[i + 2];
    }
}

/* stride 1, three kernel rows, the channel's whole error plane (h + 2 rows) in the buffer
 * (at stride 2 the zero rows between error rows cost more than the row-by-row passes) */
static int et_dw33_bwd_whole(const et_conv_geo *g)
{
    return g->sh == 1 && g->sw == 1 && g->kh == 3 && g->ph <= 2 &&
           (g->h + 2) * (g->w + 8) <= ET_DW_PLANE / 2;
}

/* ---- 3 x 3 at stride 2 with padding 1: input row 2m meets error row m through kernel row
 * 1, input row 2m + 1 error rows m + 1 (kernel row 0) and m (kernel row 2); across likewise,
 * input column 2n meets e[n] through k1, column 2n + 1 e[n] through k2 and e[n + 1] through
 * k0. So each input takes only the taps that meet an output (one, two or four), with no
 * error copies and no zero products: per pair of input columns one word (e[n], e[n + 1]),
 * SMLABB with (k1, 0) and SMLAD with (k2, k0). */

/* dx[2n] += k1 e[n], dx[2n + 1] += k2 e[n] + k0 e[n + 1] (e[wo] = 0) for the w inputs */
static void et_dw33_s2_row(int32_t *dx, int32_t w, const int16_t *e, int32_t wo,
                           const int32_t *k)
{
    int32_t n = 0;
#if ET_SIMD
    uint32_t k20 = ET_PAIR(k[2], k[0]), k1 = ET_PAIR(k[1], 0);
    for (; n + 1 < wo; n++) {                     /* 2n + 1 <= 2 wo - 3 < w */
        uint32_t en = et_ld32h(e + n);
        dx[2 * n] = et_smlabb(en, k1, dx[2 * n]);
        dx[2 * n + 1] = et_smlad(en, k20, dx[2 * n + 1]);
    }
#endif
    for (; n < wo; n++) {
        int32_t e0 = e[n], e1 = n + 1 < wo ? e[n + 1] : 0;
        dx[2 * n] += k[1] * e0;
        if (2 * n + 1 < w) dx[2 * n + 1] += k[2] * e0 + k[0] * e1;
    }
}

/* the same for two error rows a and b with their kernel rows at once (one load and one
 * store of each input) */
static void et_dw33_s2_row2(int32_t *dx, int32_t w, const int16_t *ea, const int32_t *ka,
                            const int16_t *eb, const int32_t *kb, int32_t wo)
{
    int32_t n = 0;
#if ET_SIMD
    uint32_t a20 = ET_PAIR(ka[2], ka[0]), a1 = ET_PAIR(ka[1], 0);
    uint32_t b20 = ET_PAIR(kb[2], kb[0]), b1 = ET_PAIR(kb[1], 0);
    for (; n + 1 < wo; n++) {
        uint32_t x = et_ld32h(ea + n), y = et_ld32h(eb + n);
        dx[2 * n] = et_smlabb(y, b1, et_smlabb(x, a1, dx[2 * n]));
        dx[2 * n + 1] = et_smlad(y, b20, et_smlad(x, a20, dx[2 * n + 1]));
    }
#endif
    for (; n < wo; n++) {
        int32_t x0 = ea[n], y0 = eb[n];
        int32_t x1 = n + 1 < wo ? ea[n + 1] : 0, y1 = n + 1 < wo ? eb[n + 1] : 0;
        dx[2 * n] += ka[1] * x0 + kb[1] * y0;
        if (2 * n + 1 < w) dx[2 * n + 1] += ka[2] * x0 + ka[0] * x1 + kb[2] * y0 + kb[0] * y1;
    }
}

static int et_dw33_s2(const et_conv_geo *g)
{
    return g->kh == 3 && g->sh == 2 && g->sw == 2 && g->ph == 1 && g->pw == 1;
}

/* dx (one channel's h x w) += the error plane e (ho x wo) through the 3 x 3 kernel k
 * (centred, not flipped) at stride 2, padding 1 */
static void et_dw33_bwd_s2(const et_conv_geo *g, int32_t *dx, const int16_t *e,
                           const int32_t *k)
{
    for (int32_t iy = 0; iy < g->h; iy++, dx += g->w) {
        const int16_t *em = e + (iy >> 1) * g->wo;
        if (!(iy & 1))
            et_dw33_s2_row(dx, g->w, em, g->wo, k + 3);
        else if ((iy >> 1) + 1 < g->ho)
            et_dw33_s2_row2(dx, g->w, em + g->wo, k, em, k + 6, g->wo);
        else
            et_dw33_s2_row(dx, g->w, em, g->wo, k + 6);
    }
}

/* dx[iy][ix] = sum over (ky, oy) with oy sh = iy + ph - ky of the error row oy (padded by
 * 2 - pw on the left, dilated by the stride across: zeros between) correlated with kernel
 * row ky flipped */
static void et_dw3_bwd_in(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                          const int8_t *w, int32_t zw, int32_t *dx)
{
    union { int32_t align[ET_DW_PLANE / 4]; int16_t v[ET_DW_PLANE / 2]; } erb;
    int16_t *er = erb.v;
    int32_t wc[ET_DW_KH * 3], f[ET_DW_KH * 3], lead = 2 - g->pw, hw = g->h * g->w;
    int32_t n = et_min32(g->wo, (g->w + 1 - lead) / g->sw + 1);   /* errors ever read */
    int whole = et_dw33_bwd_whole(g);
    et_zero32(dx, g->c_in * hw);
    et_zero32(erb.align, ET_DW_PLANE / 4);
    for (int32_t c = 0, og = g->c_out / g->groups; c < g->c_out; c++) {
        if (sel && !sel[c]) continue;
        int32_t *dxc = dx + c / og * hw;              /* the outputs of a group share it */
        et_dw3_weights(g, w, zw, c, wc);
        if (et_dw33_s2(g)) {
            et_dw33_bwd_s2(g, dxc, ec + c * g->ho * g->wo, wc);
            continue;
        }
        for (int32_t k = 0; k < g->kh * 3; k += 3) {         /* each row flipped */
            f[k] = wc[k + 2];
            f[k + 1] = wc[k + 1];
            f[k + 2] = wc[k];
        }
        if (whole) {                              /* error row oy at buffer row oy + 2 - ph */
            for (int32_t oy = 0; oy < g->ho; oy++) {
                int16_t *eb = er + (oy + 2 - g->ph) * (g->w + 8) + lead;
                et_copy_q15(eb, ec + (c * g->ho + oy) * g->wo, n);
            }
            et_dw33_bwd_plane(dxc, er, g->w + 8, f, g->h, g->w);
            continue;
        }
        for (int32_t oy = 0; oy < g->ho; oy++) {
            const int16_t *eo = ec + (c * g->ho + oy) * g->wo;
            for (int32_t ox = 0; ox < n; ox++) er[lead + ox * g->sw] = eo[ox];
            for (int32_t ky = 0; ky < g->kh; ky++) {
                int32_t iy = oy * g->sh + ky - g->ph;
                if (iy >= 0 && iy < g->h)
                    et_dw3_row_q15(dxc + iy * g->w, er, f + 3 * ky, g->w);
            }
        }
    }
}

/* ---- gathered convolutions: per block of four output (or, backward, input) positions a
 * block of 16-bit operands (see et_rows4_job), then every weight row against it: each
 * weight word is unpacked once for four positions. Used unless every group has one input
 * and one output channel (depthwise). Columns longer than ET_STACK_COL entries are split
 * into chunks, each summed into the outputs. */

typedef union { int32_t align; int16_t v[ET_NB * ET_STACK_COL]; } et_block_buf;


/* column j of a block over n entries from natural-order entries col[0..n) */
static void et_put_col(int16_t *blk, int32_t j, const int16_t *col, int32_t n)
{
    int32_t k = 0;
    for (int16_t *b = blk + 2 * j; k + 4 <= n; k += 4, b += 16) {
#if ET_SIMD
        uint32_t lo = et_ld32h(col + k), hi = et_ld32h(col + k + 2);
        et_st32h(b, et_pkhbt(lo, hi));            /* (k, k + 2) */
        et_st32h(b + 8, et_pkhtb(lo, hi));        /* (k + 1, k + 3) */
#else
        b[0] = col[k];
        b[1] = col[k + 2];
        b[8] = col[k + 1];
        b[9] = col[k + 3];
#endif
    }
    for (int16_t *b = blk + 4 * k + j; k < n; k++, b += 4) *b = col[k];
}

/* corr[j] = zw * (sum of column j's n entries in the block) */
static void et_block_corr(const int16_t *blk, int32_t n, int32_t zw, int32_t *corr)
{
    for (int32_t j = 0; j < ET_NB; j++) corr[j] = 0;
    if (zw == 0) return;
    int32_t k = 0;
#if ET_SIMD
    const uint32_t ones = 0x00010001u;                /* SMLAD: both halves summed */
    int32_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    for (const int16_t *b = blk; k + 4 <= n; k += 4, b += 16) {
        c0 = et_smlad(et_ld32h(b + 8), ones, et_smlad(et_ld32h(b), ones, c0));
        c1 = et_smlad(et_ld32h(b + 10), ones, et_smlad(et_ld32h(b + 2), ones, c1));
        c2 = et_smlad(et_ld32h(b + 12), ones, et_smlad(et_ld32h(b + 4), ones, c2));
        c3 = et_smlad(et_ld32h(b + 14), ones, et_smlad(et_ld32h(b + 6), ones, c3));
    }
    corr[0] = c0;
    corr[1] = c1;
    corr[2] = c2;
    corr[3] = c3;
#endif
    for (const int16_t *b = blk + 4 * k; k + 4 <= n; k += 4, b += 16)
        for (int32_t j = 0; j < ET_NB; j++)
            corr[j] += b[2 * j] + b[2 * j + 1] + b[8 + 2 * j] + b[9 + 2 * j];
    for (const int16_t *b = blk + 4 * k; k < n; k++, b += 4)
        for (int32_t j = 0; j < ET_NB; j++) corr[j] += b[j];
    for (int32_t j = 0; j < ET_NB; j++) corr[j] *= zw;
}

/* column j of a block: the centred inputs of a 1 x 1 kernel without padding in n channels
 * (x: the position in the first, planes hw apart) */
static void et_put_1x1(int16_t *blk, int32_t j, const int8_t *x, int32_t zx, int32_t hw,
                       int32_t n)
{
    int32_t c = 0;
    for (int16_t *b = blk + 2 * j; c + 4 <= n; c += 4, b += 16, x += 4 * hw) {
        b[0] = (int16_t)(x[0] - zx);
        b[1] = (int16_t)(x[2 * hw] - zx);
        b[8] = (int16_t)(x[hw] - zx);
        b[9] = (int16_t)(x[3 * hw] - zx);
    }
    for (int16_t *b = blk + 4 * c + j; c < n; c++, b += 4, x += hw) *b = (int16_t)(x[0] - zx);
}

#if ET_SIMD
/* the whole block of four adjacent positions of a 1 x 1 stride-1 kernel (x: the first
 * position in the first of n channels): one word load per channel, unpacked and centred
 * for four positions at once, the channel pairs packed by PKHBT / PKHTB */
static void et_put_1x1_adjacent(int16_t *blk, const int8_t *x, int32_t zx, int32_t hw,
                                int32_t n)
{
    uint32_t zz = ET_PAIR(zx, zx);
    int32_t c = 0;
    for (; c + 4 <= n; c += 4, blk += 16, x += 4 * hw) {
        uint32_t v[4], e[4], o[4];                    /* e: positions (0, 2), o: (1, 3) */
        for (int32_t i = 0; i < 4; i++) {
            v[i] = et_ld32(x + i * hw);
            e[i] = et_ssub16(et_sxtb16(v[i]), zz);
            o[i] = et_ssub16(et_sxtb16_ror8(v[i]), zz);
        }
        for (int32_t h = 0; h < 2; h++) {             /* channels (h, h + 2) */
            int16_t *b = blk + 8 * h;
            et_st32h(b, et_pkhbt(e[h], e[h + 2]));
            et_st32h(b + 2, et_pkhbt(o[h], o[h + 2]));
            et_st32h(b + 4, et_pkhtb(e[h], e[h + 2]));
            et_st32h(b + 6, et_pkhtb(o[h], o[h + 2]));
        }
    }
    for (int16_t *b = blk; c < n; c++, b += 4, x += hw)
        for (int32_t j = 0; j < ET_NB; j++) b[j] = (int16_t)(x[j] - zx);
}
#endif

/* column of centred inputs read by output position p of the group whose first input
 * channel is c0 (natural order) */
static void et_gather_x(const et_conv_geo *g, const int8_t *x, int32_t zx, int32_t c0,
                        int32_t p, int16_t *col)
{
    int32_t cg = g->c_in / g->groups, k = 0, oy = p / g->wo, ox = p - oy * g->wo;
    int32_t y0 = oy * g->sh - g->ph, x0 = ox * g->sw - g->pw, hw = g->h * g->w;
    int inside = y0 >= 0 && y0 + g->kh <= g->h && x0 >= 0 && x0 + g->kw <= g->w;
    for (int32_t c = 0; c < cg; c++) {
        const int8_t *xc = x + (c0 + c) * hw;
        for (int32_t ky = 0; ky < g->kh; ky++) {
            int32_t iy = y0 + ky;
            if (inside) {                           /* no padding: copy the row */
                const int8_t *r = xc + iy * g->w + x0;
                for (int32_t kx = 0; kx < g->kw; kx++, k++) col[k] = (int16_t)(r[kx] - zx);
                continue;
            }
            int row_ok = iy >= 0 && iy < g->h;
            for (int32_t kx = 0; kx < g->kw; kx++, k++) {
                int32_t ix = x0 + kx;
                col[k] = (int16_t)(row_ok && ix >= 0 && ix < g->w ? xc[iy * g->w + ix] - zx : 0);
            }
        }
    }
}

/* the block of output positions p + j (j < 4; past the last position, the last again) over
 * the entries [k0, k0 + n) of their columns, group input channels from c0 */
static void et_block_x(const et_conv_geo *g, const int8_t *x, int32_t zx, int32_t c0,
                       int32_t p, int32_t k0, int32_t n, int16_t *col, int16_t *blk)
{
    int32_t P = g->ho * g->wo, hw = g->h * g->w;
    int one = g->kh == 1 && g->kw == 1 && g->ph == 0 && g->pw == 0;
#if ET_SIMD
    if (one && g->sh == 1 && g->sw == 1 && p + ET_NB <= P) {  /* positions = input offsets */
        et_put_1x1_adjacent(blk, x + (c0 + k0) * hw + p, zx, hw, n);
        return;
    }
#endif
    for (int32_t j = 0; j < ET_NB; j++) {
        int32_t q = et_min32(p + j, P - 1), oy = q / g->wo, ox = q - oy * g->wo;
        if (one) {
            et_put_1x1(blk, j, x + (c0 + k0) * hw + oy * g->sh * g->w + ox * g->sw, zx, hw, n);
            continue;
        }
        et_gather_x(g, x, zx, c0, q, col);
        et_put_col(blk, j, col + k0, n);
    }
}

/* ---- gathered forward through a padded plane: the group's input channels are copied into
 * a stack plane in raw codes, padded with the zero point (plane row r = input row r - ph,
 * column q = input column q - pw), so every kernel tap of every output position reads a
 * valid code, and padding gives x - zx = 0 exactly. A table of the K entries' plane offsets
 * (in sc->col: c rows cols + ky cols + kx < ET_FWD_PLANE fits int16) then gathers the four
 * positions' columns straight into block order, without bounds tests. */
#define ET_FWD_PLANE 2048

static int32_t et_fwd_rows(const et_conv_geo *g) { return (g->ho - 1) * g->sh + g->kh; }
static int32_t et_fwd_cols(const et_conv_geo *g) { return (g->wo - 1) * g->sw + g->kw; }

/* (a 1 x 1 stride-1 kernel without padding reads the input words directly: et_block_x) */
static int et_fwd_plane(const et_conv_geo *g)
{
    int one = g->kh == 1 && g->kw == 1 && g->ph == 0 && g->pw == 0 && g->sh == 1 && g->sw == 1;
    return !one && g->c_in / g->groups * et_fwd_rows(g) * et_fwd_cols(g) <= ET_FWD_PLANE;
}

/* the cg input channels from xg into the plane (rows x cols each), padding = zx */
static void et_fwd_plane_fill(const et_conv_geo *g, const int8_t *xg, int32_t zx, int8_t *pl)
{
    int32_t cg = g->c_in / g->groups, rows = et_fwd_rows(g), cols = et_fwd_cols(g);
    int32_t nr = et_min32(g->h, rows - g->ph), nc = et_min32(g->w, cols - g->pw);
    et_fill8(pl, zx, (size_t)(cg * rows * cols));
    for (int32_t c = 0; c < cg && nc > 0; c++)
        for (int32_t iy = 0; iy < nr; iy++)
            memcpy(pl + (c * rows + iy + g->ph) * cols + g->pw, xg + (c * g->h + iy) * g->w,
                   (size_t)nc);
}

/* the entries [0, n) of four positions' columns (b[j]: position j's first tap in the plane,
 * off: the entries' offsets from it) in block order, centred */
static void et_block_plane(const int8_t *const *b, const int16_t *off, int32_t n, int32_t zx,
                           int16_t *blk)
{
    int32_t k = 0;
    const int8_t *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
#if ET_SIMD
    uint32_t zz = ET_PAIR(zx, zx);
    for (; k + 4 <= n; k += 4, blk += 16) {
        int32_t o0 = off[k], o1 = off[k + 1], o2 = off[k + 2], o3 = off[k + 3];
        et_st32h(blk, et_ssub16(et_pkhbt((uint32_t)b0[o0], (uint32_t)b0[o2]), zz));
        et_st32h(blk + 2, et_ssub16(et_pkhbt((uint32_t)b1[o0], (uint32_t)b1[o2]), zz));
        et_st32h(blk + 4, et_ssub16(et_pkhbt((uint32_t)b2[o0], (uint32_t)b2[o2]), zz));
        et_st32h(blk + 6, et_ssub16(et_pkhbt((uint32_t)b3[o0], (uint32_t)b3[o2]), zz));
        et_st32h(blk + 8, et_ssub16(et_pkhbt((uint32_t)b0[o1], (uint32_t)b0[o3]), zz));
        et_st32h(blk + 10, et_ssub16(et_pkhbt((uint32_t)b1[o1], (uint32_t)b1[o3]), zz));
        et_st32h(blk + 12, et_ssub16(et_pkhbt((uint32_t)b2[o1], (uint32_t)b2[o3]), zz));
        et_st32h(blk + 14, et_ssub16(et_pkhbt((uint32_t)b3[o1], (uint32_t)b3[o3]), zz));
    }
#endif
    for (; k + 4 <= n; k += 4, blk += 16)
        for (int32_t j = 0; j < ET_NB; j++) {
            const int8_t *bj = b[j];
            blk[2 * j] = (int16_t)(bj[off[k]] - zx);
            blk[2 * j + 1] = (int16_t)(bj[off[k + 2]] - zx);
            blk[8 + 2 * j] = (int16_t)(bj[off[k + 1]] - zx);
            blk[9 + 2 * j] = (int16_t)(bj[off[k + 3]] - zx);
        }
    for (; k < n; k++, blk += 4) {
        int32_t o = off[k];
        blk[0] = (int16_t)(b0[o] - zx);
        blk[1] = (int16_t)(b1[o] - zx);
        blk[2] = (int16_t)(b2[o] - zx);
        blk[3] = (int16_t)(b3[o] - zx);
    }
}

static void et_conv_fwd_plane(const et_conv_geo *g, const int8_t *x, int32_t zx,
                              const int8_t *w, int32_t zw, int32_t *acc, int16_t *off)
{
    et_block_buf blk;
    union { int32_t align; int8_t v[ET_FWD_PLANE]; } plb;
    int8_t *pl = plb.v;
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, K = cg * g->kh * g->kw;
    int32_t P = g->ho * g->wo, rows = et_fwd_rows(g), cols = et_fwd_cols(g), corr[ET_NB];
    for (int32_t c = 0, k = 0; c < cg; c++)
        for (int32_t ky = 0; ky < g->kh; ky++)
            for (int32_t kx = 0; kx < g->kw; kx++) off[k++] = (int16_t)((c * rows + ky) * cols + kx);
    for (int32_t gi = 0; gi < g->groups; gi++) {
        et_fwd_plane_fill(g, x + gi * cg * g->h * g->w, zx, pl);
        for (int32_t p = 0; p < P; p += ET_NB) {
            const int8_t *b[ET_NB];
            for (int32_t j = 0; j < ET_NB; j++) {      /* past the last position: it again */
                int32_t q = et_min32(p + j, P - 1), oy = q / g->wo, ox = q - oy * g->wo;
                b[j] = pl + oy * g->sh * cols + ox * g->sw;
            }
            for (int32_t k0 = 0; k0 < K; k0 += ET_STACK_COL) {
                int32_t n = et_min32(ET_STACK_COL, K - k0);
                et_block_plane(b, off + k0, n, zx, blk.v);
                et_block_corr(blk.v, n, zw, corr);
                et_rows_block(blk.v, n, w + gi * og * K + k0, K, og, acc + gi * og * P + p, P,
                              corr, et_min32(ET_NB, P - p), k0 > 0);
            }
        }
    }
}

void et_conv_fwd(const et_conv_geo *g, const int8_t *x, int32_t zx, const int8_t *w,
                 int32_t zw, int32_t *acc, const et_conv_scratch *sc)
{
    if (et_dw3(g) || et_conv_direct(g)) {
        (et_dw3(g) ? et_dw3_fwd : et_conv_fwd_direct)(g, x, zx, w, zw, acc);
        return;
    }
    if (et_fwd_plane(g)) {
        et_conv_fwd_plane(g, x, zx, w, zw, acc, sc->col);
        return;
    }
    et_block_buf blk;
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, K = cg * g->kh * g->kw;
    int32_t P = g->ho * g->wo, corr[ET_NB];
    for (int32_t gi = 0; gi < g->groups; gi++)
        for (int32_t p = 0; p < P; p += ET_NB)
            for (int32_t k0 = 0; k0 < K; k0 += ET_STACK_COL) {
                int32_t n = et_min32(ET_STACK_COL, K - k0);
                et_block_x(g, x, zx, gi * cg, p, k0, n, sc->col, blk.v);
                et_block_corr(blk.v, n, zw, corr);
                et_rows_block(blk.v, n, w + gi * og * K + k0, K, og, acc + gi * og * P + p, P,
                              corr, et_min32(ET_NB, P - p), k0 > 0);
            }
}

/* Backward error: dx[c][iy][ix] = sum over kept outputs o and offsets (ky, kx) of
 * ec[o][oy][ox] * w[o][c][ky][kx]: a gathered convolution with transposed weights, built
 * per call for the kept outputs only (dropped structures cost nothing). */

/* dst[c ld + j] = src_j[c] for j < 4, c < n: four rows of bytes into four columns, four
 * bytes of each row per word (a 4 x 4 byte transpose by masks, shifts and halfword packs) */
static void et_transpose4(const int8_t *const *src, int32_t n, int8_t *dst, int32_t ld)
{
    int32_t c = 0;
#if ET_SIMD
    const uint32_t m = 0x00FF00FFu;
    for (; c + 4 <= n; c += 4, dst += 4 * ld) {
        uint32_t a = et_ld32(src[0] + c), b = et_ld32(src[1] + c);
        uint32_t x = et_ld32(src[2] + c), y = et_ld32(src[3] + c);
        uint32_t ab0 = (a & m) | ((b & m) << 8), ab1 = ((a >> 8) & m) | (b & ~m);  /* a0 b0 a2 b2 */
        uint32_t xy0 = (x & m) | ((y & m) << 8), xy1 = ((x >> 8) & m) | (y & ~m);  /* a1 b1 a3 b3 */
        et_st32(dst, et_pkhbt(ab0, xy0));
        et_st32(dst + ld, et_pkhbt(ab1, xy1));
        et_st32(dst + 2 * ld, et_pkhtb(ab0, xy0));
        et_st32(dst + 3 * ld, et_pkhtb(ab1, xy1));
    }
#endif
    for (; c < n; c++, dst += ld)
        for (int32_t j = 0; j < 4; j++) dst[j] = src[j][c];
}

/* et_transpose_kept for a 1 x 1 kernel: wt row c = w[o_j][c] for the kept o_j, four kept
 * outputs' rows at once */
static int32_t et_transpose_kept_1x1(const et_conv_geo *g, const uint8_t *sel, const int8_t *w,
                                     int32_t gi, const et_conv_scratch *sc)
{
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, n = 0, P = g->ho * g->wo;
    const int8_t *quad[4];
    for (int32_t o = gi * og; o < (gi + 1) * og; o++) {
        if (sel && !sel[o]) continue;
        quad[n & 3] = w + o * cg;
        if ((n & 3) == 3) et_transpose4(quad, cg, sc->wt + n - 3, og);
        sc->kept[n++] = o * P;
    }
    for (int32_t j = n & ~3; j < n; j++)              /* the last one to three */
        for (int32_t c = 0; c < cg; c++) sc->wt[c * og + j] = quad[j & 3][c];
    return n;
}

/* wt row c (stride og * kk) = w[o_j][c][k] for kept o_j, entries j * kk + k; kept[j] = o_j *
 * P (the error row's offset). Returns the number of kept outputs. */
static int32_t et_transpose_kept(const et_conv_geo *g, const uint8_t *sel, const int8_t *w,
                                 int32_t gi, const et_conv_scratch *sc)
{
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, kk = g->kh * g->kw;
    int32_t n = 0, P = g->ho * g->wo, ld = og * kk;
    if (kk == 1) return et_transpose_kept_1x1(g, sel, w, gi, sc);
    for (int32_t o = gi * og; o < (gi + 1) * og; o++) {
        if (sel && !sel[o]) continue;
        const int8_t *src = w + o * cg * kk;
        int8_t *dst = sc->wt + n * kk;
        for (int32_t c = 0; c < cg; c++, dst += ld)
            for (int32_t k = 0; k < kk; k++) dst[k] = *src++;
        sc->kept[n++] = o * P;
    }
    return n;
}

/* the output coordinate whose errors input coordinate i meets through kernel offset k
 * (stride s, padding pad, n outputs), or -1 */
static int32_t et_source1(int32_t i, int32_t k, int32_t s, int32_t pad, int32_t n)
{
    int32_t t = i + pad - k;
    if (t < 0 || t % s) return -1;
    return t / s < n ? t / s : -1;
}

/* column of kept errors met by input position p (entries j * kk + k, natural order) */
static void et_gather_e(const et_conv_geo *g, const int16_t *ec, const int32_t *kept,
                        int32_t n, int32_t p, int16_t *col)
{
    int32_t kk = g->kh * g->kw, iy = p / g->w, ix = p - iy * g->w;
    for (int32_t ky = 0, k = 0; ky < g->kh; ky++) {
        int32_t oy = et_source1(iy, ky, g->sh, g->ph, g->ho);
        for (int32_t kx = 0; kx < g->kw; kx++, k++) {
            int32_t ox = et_source1(ix, kx, g->sw, g->pw, g->wo);
            int16_t *dst = col + k;
            if (oy < 0 || ox < 0) {
                for (int32_t j = 0; j < n; j++, dst += kk) *dst = 0;
                continue;
            }
            const int16_t *eq = ec + oy * g->wo + ox;
            for (int32_t j = 0; j < n; j++, dst += kk) *dst = eq[kept[j]];
        }
    }
}

/* the whole block of four adjacent input positions of a 1 x 1 stride-1 convolution
 * (errors met at the same positions): kept errors e_j[p .. p + 3], j < m */
static void et_block_e1x1(const int16_t *ec, const int32_t *kept, int32_t m, int16_t *blk)
{
    int32_t j = 0;
    for (; j + 4 <= m; j += 4, blk += 16)
        for (int32_t h = 0; h < 2; h++) {             /* entries (j + h, j + h + 2) */
            const int16_t *a = ec + kept[j + h], *c = ec + kept[j + h + 2];
            int16_t *b = blk + 8 * h;
#if ET_SIMD
            uint32_t a01 = et_ld32h(a), a23 = et_ld32h(a + 2);
            uint32_t c01 = et_ld32h(c), c23 = et_ld32h(c + 2);
            et_st32h(b, et_pkhbt(a01, c01));
            et_st32h(b + 2, et_pkhtb(a01, c01));
            et_st32h(b + 4, et_pkhbt(a23, c23));
            et_st32h(b + 6, et_pkhtb(a23, c23));
#else
            for (int32_t q = 0; q < ET_NB; q++) {
                b[2 * q] = a[q];
                b[2 * q + 1] = c[q];
            }
#endif
        }
    for (; j < m; j++, blk += 4)
        for (int32_t q = 0; q < ET_NB; q++) blk[q] = ec[kept[j] + q];
}

/* the block of input positions p + j (j < 4; past the last position, the last again) over
 * the entries [k0, k0 + m) of their kept-error columns */
static void et_block_e(const et_conv_geo *g, const int16_t *ec, const int32_t *kept,
                       int32_t n, int32_t p, int32_t k0, int32_t m, int16_t *col, int16_t *blk)
{
    int32_t hw = g->h * g->w;
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
        p + ET_NB <= hw) {
        et_block_e1x1(ec + p, kept + k0, m, blk);
        return;
    }
    for (int32_t j = 0; j < ET_NB; j++) {
        et_gather_e(g, ec, kept, n, et_min32(p + j, hw - 1), col);
        et_put_col(blk, j, col + k0, m);
    }
}

/* ---- stride 1: an input position (iy, ix) whose every kernel tap meets an output
 * (iy in [kh - 1 - ph, ho - ph), ix likewise: "inner") reads entry j kk + k of its column at
 * ec + iy wo + ix + t[j kk + k], t = kept_j + (ph - ky) wo + (pw - kx): a table instead of
 * bounds tests; the other positions take et_gather_e. */

static int et_bwd_table(const et_conv_geo *g, int32_t KT)
{
    return g->sh == 1 && g->sw == 1 && KT > 0 && KT <= ET_STACK_COL;
}

static void et_bwd_table_fill(const et_conv_geo *g, const int32_t *kept, int32_t n, int32_t *t)
{
    for (int32_t j = 0, e = 0; j < n; j++)
        for (int32_t ky = 0; ky < g->kh; ky++)
            for (int32_t kx = 0; kx < g->kw; kx++)
                t[e++] = kept[j] + (g->ph - ky) * g->wo + g->pw - kx;
}

/* the error plane's origin for input position p if p is inner, else NULL */
static const int16_t *et_inner_e(const et_conv_geo *g, const int16_t *ec, int32_t p)
{
    int32_t iy = p / g->w, ix = p - iy * g->w;
    int inner = iy >= g->kh - 1 - g->ph && iy < g->ho - g->ph && ix >= g->kw - 1 - g->pw &&
                ix < g->wo - g->pw;
    return inner ? ec + iy * g->wo + ix : NULL;
}

/* block column j = entries [0, n) of the column at b (entry e at b[t[e]]) */
static void et_put_col_tab(int16_t *blk, int32_t j, const int16_t *b, const int32_t *t,
                           int32_t n)
{
    int32_t k = 0;
    for (int16_t *d = blk + 2 * j; k + 4 <= n; k += 4, d += 16) {
#if ET_SIMD
        et_st32h(d, et_pkhbt((uint16_t)b[t[k]], (uint32_t)b[t[k + 2]]));
        et_st32h(d + 8, et_pkhbt((uint16_t)b[t[k + 1]], (uint32_t)b[t[k + 3]]));
#else
        d[0] = b[t[k]];
        d[1] = b[t[k + 2]];
        d[8] = b[t[k + 1]];
        d[9] = b[t[k + 3]];
#endif
    }
    for (int16_t *d = blk + 4 * k + j; k < n; k++, d += 4) *d = b[t[k]];
}

/* the block of the four inner positions at b[0..3] (entries [0, n), table t) */
static void et_block_tab(const int16_t *const *b, const int32_t *t, int32_t n, int16_t *blk)
{
    int32_t k = 0;
#if ET_SIMD
    const int16_t *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
    for (; k + 4 <= n; k += 4, blk += 16) {
        int32_t o0 = t[k], o1 = t[k + 1], o2 = t[k + 2], o3 = t[k + 3];
        et_st32h(blk, et_pkhbt((uint16_t)b0[o0], (uint32_t)b0[o2]));
        et_st32h(blk + 2, et_pkhbt((uint16_t)b1[o0], (uint32_t)b1[o2]));
        et_st32h(blk + 4, et_pkhbt((uint16_t)b2[o0], (uint32_t)b2[o2]));
        et_st32h(blk + 6, et_pkhbt((uint16_t)b3[o0], (uint32_t)b3[o2]));
        et_st32h(blk + 8, et_pkhbt((uint16_t)b0[o1], (uint32_t)b0[o3]));
        et_st32h(blk + 10, et_pkhbt((uint16_t)b1[o1], (uint32_t)b1[o3]));
        et_st32h(blk + 12, et_pkhbt((uint16_t)b2[o1], (uint32_t)b2[o3]));
        et_st32h(blk + 14, et_pkhbt((uint16_t)b3[o1], (uint32_t)b3[o3]));
    }
#endif
    for (int32_t j = 0; j < ET_NB; j++) et_put_col_tab(blk, j, b[j], t + k, n - k);
}

/* the block of input positions p + j (as et_block_e) through the table t (KT entries) */
static void et_block_e_tab(const et_conv_geo *g, const int16_t *ec, const int32_t *kept,
                           int32_t n, int32_t p, const int32_t *t, int16_t *col, int16_t *blk)
{
    int32_t hw = g->h * g->w, KT = n * g->kh * g->kw, all = 1;
    const int16_t *b[ET_NB];
    for (int32_t j = 0; j < ET_NB; j++) {
        b[j] = et_inner_e(g, ec, et_min32(p + j, hw - 1));
        all = all && b[j];
    }
    if (all) {
        et_block_tab(b, t, KT, blk);
        return;
    }
    for (int32_t j = 0; j < ET_NB; j++) {
        if (b[j]) {
            et_put_col_tab(blk, j, b[j], t, KT);
            continue;
        }
        et_gather_e(g, ec, kept, n, et_min32(p + j, hw - 1), col);
        et_put_col(blk, j, col, KT);
    }
}

/* ---- one row (conv1d) at stride s > 1, by phases: the inputs ix = f + s i of phase f meet
 * only the taps kx = r + s m (r = (f + pw) % s) and there the output ox = i + q - m (q =
 * (f + pw) / s): per phase a stride-1 correlation of the kept errors with that phase's taps,
 * so no zero entry is multiplied (the gathered form above multiplies s - 1 of every s).
 * The transposed weights are phase-major (row c: phase 0's n kk_0 entries, kept output
 * major, then phase 1's, ...); each phase's outputs land phase-major in the channel's row,
 * put in place at the end through a stack row. */

typedef struct { int32_t r, q, taps, pos, first; } et_phase;   /* first: in the row */

static et_phase et_phase_of(const et_conv_geo *g, int32_t f)
{
    int32_t s = g->sw, r = (f + g->pw) % s, taps = r < g->kw ? (g->kw - r + s - 1) / s : 0;
    et_phase ph = {r, (f + g->pw) / s, taps, f < g->w ? (g->w - f + s - 1) / s : 0, 0};
    for (int32_t e = 0; e < f; e++) ph.first += e < g->w ? (g->w - e + s - 1) / s : 0;
    return ph;
}

static int et_bwd_phases(const et_conv_geo *g)
{
    return g->h == 1 && g->kh == 1 && g->ph == 0 && g->sw > 1 && g->w <= ET_STACK_COL &&
           g->c_out / g->groups * ((g->kw + g->sw - 1) / g->sw) <= ET_STACK_COL;
}

/* kept[j] = o_j * wo for the group's kept outputs; wt phase-major; returns their number */
static int32_t et_transpose_phases(const et_conv_geo *g, const uint8_t *sel, const int8_t *w,
                                   int32_t gi, const et_conv_scratch *sc)
{
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, n = 0;
    for (int32_t o = gi * og; o < (gi + 1) * og; o++)
        if (!sel || sel[o]) sc->kept[n++] = o * g->wo;
    for (int32_t c = 0; c < cg; c++) {
        int8_t *dst = sc->wt + c * og * g->kw;
        for (int32_t f = 0; f < g->sw; f++) {
            et_phase ph = et_phase_of(g, f);
            for (int32_t j = 0; j < n; j++) {
                const int8_t *src = w + (sc->kept[j] / g->wo * cg + c) * g->kw + ph.r;
                for (int32_t m = 0; m < ph.taps; m++) *dst++ = src[m * g->sw];
            }
        }
    }
    return n;
}

/* column of phase position i over the kept errors (entries j taps + m), zero off the row */
static void et_gather_phase(const et_conv_geo *g, const int16_t *ec, const int32_t *kept,
                            int32_t n, const et_phase *ph, int32_t i, int16_t *col)
{
    for (int32_t j = 0; j < n; j++)
        for (int32_t m = 0, ox = i + ph->q; m < ph->taps; m++, ox--)
            *col++ = (int16_t)(ox >= 0 && ox < g->wo ? ec[kept[j] + ox] : 0);
}

/* the block of phase positions i + j (past the last, the last again): through the table t
 * (entry j taps + m at ec + i + t[..]) where every tap meets an output */
static void et_block_phase(const et_conv_geo *g, const int16_t *ec, const int32_t *kept,
                           int32_t n, const et_phase *ph, int32_t i, const int32_t *t,
                           int16_t *col, int16_t *blk)
{
    int32_t KT = n * ph->taps;
    for (int32_t j = 0; j < ET_NB; j++) {
        int32_t q = et_min32(i + j, ph->pos - 1);
        if (q + ph->q - ph->taps + 1 >= 0 && q + ph->q < g->wo) {
            et_put_col_tab(blk, j, ec + q, t, KT);
            continue;
        }
        et_gather_phase(g, ec, kept, n, ph, q, col);
        et_put_col(blk, j, col, KT);
    }
}

/* the cg rows of dx from phase-major (phase f's outputs from ph.first on) to natural order
 * (row: w entries of room) */
static void et_phases_in_place(const et_conv_geo *g, int32_t *dx, int32_t cg, int32_t *row)
{
    for (int32_t c = 0; c < cg; c++, dx += g->w) {
        memcpy(row, dx, (size_t)g->w * sizeof *dx);
        for (int32_t f = 0, i0 = 0; f < g->sw && f < g->w; f++)
            for (int32_t ix = f; ix < g->w; ix += g->sw) dx[ix] = row[i0++];
    }
}

static void et_conv_bwd_in_phases(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                                  const int8_t *w, int32_t zw, int32_t *dx,
                                  const et_conv_scratch *sc)
{
    et_block_buf blk;
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, corr[ET_NB], t[ET_STACK_COL];
    for (int32_t gi = 0; gi < g->groups; gi++) {
        int32_t n = et_transpose_phases(g, sel, w, gi, sc), done = 0;
        int32_t *dxg = dx + gi * cg * g->w;
        for (int32_t f = 0; f < g->sw; f++) {
            et_phase ph = et_phase_of(g, f);
            int32_t KT = n * ph.taps;
            for (int32_t j = 0, e = 0; j < n; j++)
                for (int32_t m = 0; m < ph.taps; m++) t[e++] = sc->kept[j] + ph.q - m;
            for (int32_t i = 0; i < ph.pos; i += ET_NB) {
                et_block_phase(g, ec, sc->kept, n, &ph, i, t, sc->col, blk.v);
                et_block_corr(blk.v, KT, zw, corr);
                et_rows_block(blk.v, KT, sc->wt + done, og * g->kw, cg, dxg + ph.first + i,
                              g->w, corr, et_min32(ET_NB, ph.pos - i), 0);
            }
            done += KT;
        }
        et_phases_in_place(g, dxg, cg, t);
    }
}

void et_conv_bwd_in(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                    const int8_t *w, int32_t zw, int32_t *dx, const et_conv_scratch *sc)
{
    if (et_dw3_in(g) || et_conv_direct(g)) {
        (et_dw3_in(g) ? et_dw3_bwd_in : et_conv_bwd_in_direct)(g, ec, sel, w, zw, dx);
        return;
    }
    if (et_bwd_phases(g)) {
        et_conv_bwd_in_phases(g, ec, sel, w, zw, dx, sc);
        return;
    }
    et_block_buf blk;
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, kk = g->kh * g->kw;
    int32_t hw = g->h * g->w, corr[ET_NB], t[ET_STACK_COL];
    int one = kk == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
    for (int32_t gi = 0; gi < g->groups; gi++) {
        int32_t n = et_transpose_kept(g, sel, w, gi, sc), KT = n * kk;
        int tab = !one && et_bwd_table(g, KT);
        if (tab) et_bwd_table_fill(g, sc->kept, n, t);
        for (int32_t p = 0; p < hw; p += ET_NB)
            for (int32_t k0 = 0; k0 == 0 || k0 < KT; k0 += ET_STACK_COL) {
                int32_t m = et_min32(ET_STACK_COL, KT - k0);
                if (tab)
                    et_block_e_tab(g, ec, sc->kept, n, p, t, sc->col, blk.v);
                else
                    et_block_e(g, ec, sc->kept, n, p, k0, m, sc->col, blk.v);
                et_block_corr(blk.v, m, zw, corr);
                et_rows_block(blk.v, m, sc->wt + k0, og * kk, cg, dx + gi * cg * hw + p, hw,
                              corr, et_min32(ET_NB, hw - p), k0 > 0);
            }
    }
}

/* centred inputs met by kernel entry (ky, kx) of input plane xc at every output position
 * (natural order, zero where the entry reads padding) */
static void et_gather_shift(const et_conv_geo *g, const int8_t *xc, int32_t zx, int32_t ky,
                            int32_t kx, int16_t *col)
{
    int32_t x0 = et_first_valid(kx, g->sw, g->pw);
    int32_t x1 = et_end_valid(kx, g->sw, g->pw, g->w, g->wo);
    if (x1 < x0) x1 = x0;
    for (int32_t oy = 0; oy < g->ho; oy++, col += g->wo) {
        int32_t iy = oy * g->sh + ky - g->ph, ox = 0;
        if (iy < 0 || iy >= g->h) {
            memset(col, 0, (size_t)g->wo * sizeof *col);
            continue;
        }
        for (; ox < x0; ox++) col[ox] = 0;
        const int8_t *xr = xc + iy * g->w + x0 * g->sw + kx - g->pw;
        if (g->sw == 1)
            for (; ox < x1; ox++) col[ox] = (int16_t)(*xr++ - zx);
        else
            for (; ox < x1; ox++, xr += g->sw) col[ox] = (int16_t)(*xr - zx);
        for (; ox < g->wo; ox++) col[ox] = 0;
    }
}

/* dw[o_j ld] += col . e_{o_j} for the kept outputs o_j (errors ec + o_j P), four at a time */
static void et_grad_dots(const int16_t *col, const int16_t *ec, int32_t P, const int32_t *kept,
                         int32_t n, int32_t *dw, int32_t ld)
{
    int32_t s[4], j = 0;
    for (; j + 4 <= n; j += 4) {
        const int32_t *kj = kept + j;
        const int16_t *e[4] = {ec + kj[0] * P, ec + kj[1] * P, ec + kj[2] * P, ec + kj[3] * P};
        et_dot4_q15(col, e, P, s);
        dw[kj[0] * ld] += s[0];
        dw[kj[1] * ld] += s[1];
        dw[kj[2] * ld] += s[2];
        dw[kj[3] * ld] += s[3];
    }
    if (j == n) return;
    const int16_t *e[4];                              /* the short last block repeats a row */
    for (int32_t t = 0; t < 4; t++) e[t] = ec + kept[et_min32(j + t, n - 1)] * P;
    et_dot4_q15(col, e, P, s);
    for (int32_t t = 0; j + t < n; t++) dw[kept[j + t] * ld] += s[t];
}

/* Weight gradient of a stride-1 convolution (or of a one-row convolution at any stride, see
 * et_grad_1d) as block products (et_rows4):
 *   dw[o][c][ky][kx] = sum_p e_o[p] (x_c[p + (ky, kx)] - zx)
 *                    = sum_p e_o[p] x_c[p + (ky, kx)] - zx sum_p e_o[p]   (exact integers),
 * with the raw int8 inputs as the rows and four kept outputs' errors as the block's columns;
 * the correction is the block's column sums times zx (et_block_corr). The inputs sit in a
 * plane padded with the zero point (padding then adds zx e, which the correction removes)
 * and the sum runs over the plane's width wp = wo + kw - 1, the errors being zero in the
 * kw - 1 extra columns: every kernel offset then reads one contiguous run of the plane.
 * A 1 x 1 kernel without padding reads the input planes themselves. Only the final sums are
 * guaranteed to fit int32 (the exporter's check); the dual MACs wrap modulo 2^32, so the
 * result is exact either way. */

#define ET_GRAD_PLANE 1024   /* bytes of one channel's plane at most */
#define ET_GRAD_PLANES 2304  /* bytes of the stack planes (every channel of a group if they fit) */
#define ET_GRAD_SPAN 128     /* plane positions per block */

static int et_grad_plain_1x1(const et_conv_geo *g)
{
    return g->kh == 1 && g->kw == 1 && g->ph == 0 && g->pw == 0 && g->sh == 1 && g->sw == 1;
}

/* One row (conv1d), any stride: each channel's padded row is split into sw phases (phase f
 * holds the inputs at f, f + sw, f + 2 sw, ...), so kernel entry kx reads a contiguous run
 * of phase kx % sw from kx / sw on, and the sum runs over the wo outputs themselves. The
 * phases of all the group's channels are filled once per group, phase-major, so that one
 * kernel entry of every channel is one call with rows lp apart. */
static int et_grad_1d(const et_conv_geo *g)
{
    return g->h == 1 && g->kh == 1 && g->ph == 0 && !et_grad_plain_1x1(g);
}

/* entries per phase */
static int32_t et_grad_lp(const et_conv_geo *g) { return (g->w + 2 * g->pw + g->sw - 1) / g->sw; }

/* the plane width the sums run over */
static int32_t et_grad_wp(const et_conv_geo *g)
{
    return et_grad_1d(g) ? g->wo : g->wo + g->kw - 1;
}

/* bytes of one channel's padded plane (2-D case) and the slack after the last one: the runs
 * of the last kernel offsets read up to kw - 2 bytes past it (where the errors are zero) */
static int32_t et_grad_plane_bytes(const et_conv_geo *g)
{
    return (g->ho + g->kh - 1) * et_grad_wp(g);
}

static int32_t et_grad_slack(const et_conv_geo *g) { return g->kw > 8 ? g->kw : 8; }

static int et_grad_blocks(const et_conv_geo *g)
{
    if (et_grad_plain_1x1(g)) return 1;
    if (et_grad_1d(g)) return g->sw * g->c_in / g->groups * et_grad_lp(g) <= ET_GRAD_PLANE;
    return g->sh == 1 && g->sw == 1 && et_grad_plane_bytes(g) + et_grad_slack(g) <= ET_GRAD_PLANE;
}

/* 2-D case: the planes of all the group's input channels fit the stack buffer at once, so
 * they are filled once per group (else one channel's plane per block and channel) */
static int et_grad_all_planes(const et_conv_geo *g)
{
    return !et_grad_plain_1x1(g) && !et_grad_1d(g) &&
           g->c_in / g->groups * et_grad_plane_bytes(g) + et_grad_slack(g) <= ET_GRAD_PLANES;
}

/* dw_j[at + r lds] += tmp[r][j] for r < m, j < nj (four pointers at once when nj = 4) */
static void et_add_rows(const int32_t *tmp, int32_t m, int32_t *const *dwj, int32_t at,
                        int32_t lds, int32_t nj)
{
    if (nj == ET_NB) {
        int32_t *d0 = dwj[0] + at, *d1 = dwj[1] + at, *d2 = dwj[2] + at, *d3 = dwj[3] + at;
        for (int32_t r = 0, o = 0; r < m; r++, o += lds, tmp += ET_NB) {
            d0[o] += tmp[0];
            d1[o] += tmp[1];
            d2[o] += tmp[2];
            d3[o] += tmp[3];
        }
        return;
    }
    for (int32_t j = 0; j < nj; j++)
        for (int32_t r = 0; r < m; r++) dwj[j][at + r * lds] += tmp[r * ET_NB + j];
}

/* dw_j[r lds] += block column j . w_r - corr[j] for j < nj, r < rows (w_r = w + r ldw) */
static void et_grad_rows(const int16_t *blk, int32_t n, const int8_t *w, int32_t ldw,
                         int32_t rows, int32_t *const *dwj, int32_t lds, int32_t nj,
                         const int32_t *corr)
{
    int32_t tmp[16 * ET_NB];
    et_rows4_job jb = {blk, n >> 2, {-corr[0], -corr[1], -corr[2], -corr[3]}, w, n & 3, tmp,
                       ET_NB, ldw - n, 0, {0, 0, 0, 0}};
    for (int32_t r0 = 0; r0 < rows; r0 += 16) {
        int32_t m = et_min32(16, rows - r0);
        jb.w = w + r0 * ldw;
        jb.out = tmp;
        jb.rows = m;
        et_rows4(&jb);
        et_add_rows(tmp, m, dwj, r0 * lds, lds, nj);
    }
}

/* the error at plane column q of plane row er (wo errors, then zeros up to wp; q past wp:
 * the following rows) */
static int16_t et_err_padded(const int16_t *er, int32_t q, int32_t wo, int32_t wp)
{
    for (; q >= wp; q -= wp) er += wo;
    return q < wo ? er[q] : 0;
}

/* block column j = the errors e at plane positions [p0, p0 + m) of plane rows of wp entries
 * (each: a row's wo errors, then zeros), straight into block order: four entries inside
 * one row's errors by two word loads and PKHBT / PKHTB, the others one by one */
static void et_put_col_padded(int16_t *blk, int32_t j, const int16_t *e, int32_t wo,
                              int32_t wp, int32_t p0, int32_t m)
{
    int32_t oy = p0 / wp, ox = p0 - oy * wp, k = 0;
    const int16_t *er = e + oy * wo;
    for (int16_t *b = blk + 2 * j; k + 4 <= m; k += 4, b += 16) {
        if (ox + 4 <= wo) {
#if ET_SIMD
            uint32_t lo = et_ld32h(er + ox), hi = et_ld32h(er + ox + 2);
            et_st32h(b, et_pkhbt(lo, hi));            /* (k, k + 2) */
            et_st32h(b + 8, et_pkhtb(lo, hi));        /* (k + 1, k + 3) */
#else
            b[0] = er[ox];
            b[1] = er[ox + 2];
            b[8] = er[ox + 1];
            b[9] = er[ox + 3];
#endif
        } else {
            b[0] = et_err_padded(er, ox, wo, wp);
            b[1] = et_err_padded(er, ox + 2, wo, wp);
            b[8] = et_err_padded(er, ox + 1, wo, wp);
            b[9] = et_err_padded(er, ox + 3, wo, wp);
        }
        for (ox += 4; ox >= wp; ox -= wp) er += wo;
    }
    for (int16_t *b = blk + 4 * k + j; k < m; k++, b += 4) {
        *b = et_err_padded(er, ox, wo, wp);
        for (ox++; ox >= wp; ox -= wp) er += wo;
    }
}

/* block column j = errors e_j at plane positions [p0, p0 + m) (zero past each row's wo) */
static void et_grad_block(const et_conv_geo *g, const int16_t *const *e, int32_t p0, int32_t m,
                          int16_t *blk)
{
    int32_t wp = et_grad_wp(g);
    for (int32_t j = 0; j < ET_NB; j++) {
        if (wp == g->wo)
            et_put_col(blk, j, e[j] + p0, m);
        else
            et_put_col_padded(blk, j, e[j], g->wo, wp, p0, m);
    }
}

/* input plane c of the group, padded: rows and columns offset by (ph, pw), stride wp */
static void et_grad_fill(const et_conv_geo *g, const int8_t *xc, int8_t *pl)
{
    int32_t wp = et_grad_wp(g);
    pl += g->ph * wp + g->pw;
    for (int32_t iy = 0; iy < g->h; iy++, pl += wp, xc += g->w) memcpy(pl, xc, (size_t)g->w);
}

/* the phases of the group's padded input rows (xg: the first; see et_grad_1d): phase f of
 * channel c at (f cg + c) lp, padding = zx */
static void et_grad_fill_1d(const et_conv_geo *g, const int8_t *xg, int32_t zx, int8_t *pl)
{
    int32_t cg = g->c_in / g->groups, lp = et_grad_lp(g);
    for (int32_t f = 0; f < g->sw; f++)
        for (int32_t c = 0; c < cg; c++, pl += lp)
            for (int32_t i = 0, t = f - g->pw; i < lp; i++, t += g->sw)
                pl[i] = t >= 0 && t < g->w ? xg[c * g->w + t] : (int8_t)zx;
}

/* every kernel entry of the group's cg input channels (xg: the first) against one block
 * of four kept outputs' errors over plane positions [p0, p0 + m); dw: the group's first
 * output channel's gradient, dwj: the four outputs'; all: every channel's plane is in pl
 * (et_grad_all_planes), else each is filled here */
static void et_grad_channels(const et_conv_geo *g, const int8_t *xg, int32_t zx, int8_t *pl,
                             int all, const int16_t *blk, int32_t p0, int32_t m,
                             int32_t *const *dwj, int32_t nj)
{
    int32_t cg = g->c_in / g->groups, kk = g->kh * g->kw, wp = et_grad_wp(g), corr[ET_NB];
    int32_t *d[ET_NB];
    et_block_corr(blk, m, zx, corr);
    if (et_grad_plain_1x1(g)) {                 /* rows: the cg input planes */
        et_grad_rows(blk, m, xg + p0, g->h * g->w, cg, dwj, 1, nj, corr);
        return;
    }
    for (int32_t kx = 0; kx < g->kw && et_grad_1d(g); kx++) {  /* rows: the cg channels */
        const int8_t *run = pl + (kx % g->sw * cg) * et_grad_lp(g) + kx / g->sw + p0;
        for (int32_t j = 0; j < nj; j++) d[j] = dwj[j] + kx;
        et_grad_rows(blk, m, run, et_grad_lp(g), cg, d, kk, nj, corr);
    }
    for (int32_t c = 0; c < cg && !et_grad_1d(g); c++) {
        const int8_t *plc = all ? pl + c * et_grad_plane_bytes(g) : pl;
        if (!all) et_grad_fill(g, xg + c * g->h * g->w, pl);
        for (int32_t ky = 0; ky < g->kh; ky++) {
            for (int32_t j = 0; j < nj; j++) d[j] = dwj[j] + c * kk + ky * g->kw;
            et_grad_rows(blk, m, plc + ky * wp + p0, 1, g->kw, d, 1, nj, corr);
        }
    }
}

static void et_conv_bwd_w_blocks(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                                 const int8_t *x, int32_t zx, int32_t *dw)
{
    union { int32_t align; int16_t v[ET_NB * ET_GRAD_SPAN]; } blk;
    union { int32_t align; int8_t v[ET_GRAD_PLANES]; } pl;
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, kk = g->kh * g->kw;
    int32_t P = g->ho * g->wo, span = g->ho * et_grad_wp(g), kept[ET_NB];
    int all = et_grad_all_planes(g), one_d = et_grad_1d(g);
    if (!et_grad_plain_1x1(g) && !one_d)
        et_fill8(pl.v, zx, (size_t)((all ? cg : 1) * et_grad_plane_bytes(g) + et_grad_slack(g)));
    for (int32_t o = 0, filled = -1; o < g->c_out;) {
        int32_t nj = 0, gi = o / og;
        for (; o < (gi + 1) * og && nj < ET_NB; o++)      /* four kept outputs of one group */
            if (!sel || sel[o]) kept[nj++] = o;
        if (nj == 0) continue;
        if (gi != filled && (one_d || all)) {          /* the group's planes, once */
            filled = gi;
            if (one_d)
                et_grad_fill_1d(g, x + gi * cg * g->w, zx, pl.v);
            else                                        /* the padding stays zx */
                for (int32_t c = 0; c < cg; c++)
                    et_grad_fill(g, x + (gi * cg + c) * g->h * g->w,
                                 pl.v + c * et_grad_plane_bytes(g));
        }
        const int16_t *e[ET_NB];
        int32_t *dwj[ET_NB];
        for (int32_t j = 0; j < ET_NB; j++) e[j] = ec + kept[et_min32(j, nj - 1)] * P;
        for (int32_t j = 0; j < nj; j++) dwj[j] = dw + kept[j] * cg * kk;
        for (int32_t p0 = 0; p0 < span; p0 += ET_GRAD_SPAN) {
            int32_t m = et_min32(ET_GRAD_SPAN, span - p0);
            et_grad_block(g, e, p0, m, blk.v);
            et_grad_channels(g, x + gi * cg * g->h * g->w, zx, pl.v, all, blk.v, p0, m, dwj, nj);
        }
    }
}

/* weight gradient: per kernel entry (c, ky, kx) the centred inputs it met at every output
 * position, then int16 dot products with four kept output channels' errors at a time */
void et_conv_bwd_w(const et_conv_geo *g, const int16_t *ec, const uint8_t *sel,
                   const int8_t *x, int32_t zx, int32_t *dw, const et_conv_scratch *sc)
{
    int dw3 = et_dw3(g) && g->c_out / g->groups < 4;  /* else 4-row dots do less work */
    if (dw3 || et_conv_direct(g)) {
        (dw3 ? et_dw3_bwd_w : et_conv_bwd_w_direct)(g, ec, sel, x, zx, dw);
        return;
    }
    if (et_grad_blocks(g)) {
        et_conv_bwd_w_blocks(g, ec, sel, x, zx, dw);
        return;
    }
    int32_t cg = g->c_in / g->groups, og = g->c_out / g->groups, kk = g->kh * g->kw;
    int32_t P = g->ho * g->wo;
    for (int32_t gi = 0; gi < g->groups; gi++) {
        int32_t n = 0;
        for (int32_t o = gi * og; o < (gi + 1) * og; o++)
            if (!sel || sel[o]) sc->kept[n++] = o;
        for (int32_t c = 0; c < cg; c++)
            for (int32_t k = 0; k < kk; k++) {
                et_gather_shift(g, x + (gi * cg + c) * g->h * g->w, zx, k / g->kw, k % g->kw,
                                sc->col);
                et_grad_dots(sc->col, ec, P, sc->kept, n, dw + c * kk + k, cg * kk);
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

/* 2 x 2 windows at stride 2 without padding (the common case): no bounds checks, the
 * windows do not overlap */
static int et_pool22(const et_pool_geo *g)
{
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0;
}

#if ET_SIMD
/* bytewise signed maximum (SSUB8 sets the GE flags, SEL picks by them) */
static inline uint32_t et_max8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b));
    return r;
}
#endif

static int32_t et_max2(int32_t a, int32_t b) { return a > b ? a : b; }

static void et_maxpool22_fwd(const et_pool_geo *g, const int8_t *x, int8_t *y)
{
    for (int32_t c = 0; c < g->c; c++)
        for (int32_t oy = 0; oy < g->ho; oy++, y += g->wo) {
            const int8_t *r0 = x + (c * g->h + 2 * oy) * g->w, *r1 = r0 + g->w;
            int32_t ox = 0;
#if ET_SIMD
            for (; ox + 2 <= g->wo; ox += 2) {          /* two windows per word */
                uint32_t m = et_max8(et_ld32(r0 + 2 * ox), et_ld32(r1 + 2 * ox));
                m = et_max8(m, m >> 8);                 /* bytes 0 and 2 */
                y[ox] = (int8_t)m;
                y[ox + 1] = (int8_t)(m >> 16);
            }
#endif
            for (; ox < g->wo; ox++)
                y[ox] = (int8_t)et_max2(et_max2(r0[2 * ox], r0[2 * ox + 1]),
                                        et_max2(r1[2 * ox], r1[2 * ox + 1]));
        }
}

static void et_maxpool22_bwd(const et_pool_geo *g, const int8_t *x, const int8_t *y,
                             const int32_t *e, int32_t *dx)
{
    et_zero32(dx, g->c * g->h * g->w);
    for (int32_t c = 0; c < g->c; c++)
        for (int32_t oy = 0; oy < g->ho; oy++, y += g->wo, e += g->wo) {
            int32_t i0 = (c * g->h + 2 * oy) * g->w;
            const int8_t *r0 = x + i0, *r1 = r0 + g->w;
            for (int32_t ox = 0; ox < g->wo; ox++) {    /* the first maximum, row-major */
                int32_t v = y[ox], j = 2 * ox, *d = dx + i0 + j;
                if (r0[j] == v) d[0] = e[ox];
                else if (r0[j + 1] == v) d[1] = e[ox];
                else if (r1[j] == v) d[g->w] = e[ox];
                else if (r1[j + 1] == v) d[g->w + 1] = e[ox];
            }
        }
}

void et_maxpool_fwd(const et_pool_geo *g, const int8_t *x, int8_t *y)
{
    if (et_pool22(g)) {
        et_maxpool22_fwd(g, x, y);
        return;
    }
    for (int32_t c = 0; c < g->c; c++)
        for (int32_t oy = 0; oy < g->ho; oy++)
            for (int32_t ox = 0; ox < g->wo; ox++)
                y[(c * g->ho + oy) * g->wo + ox] = (int8_t)et_max_at(g, x + c * g->h * g->w, oy, ox);
}

void et_maxpool_bwd(const et_pool_geo *g, const int8_t *x, const int8_t *y, const int32_t *e,
                    int32_t *dx)
{
    if (et_pool22(g)) {
        et_maxpool22_bwd(g, x, y, e, dx);
        return;
    }
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
