/* edgetrain linear-layer kernels (see et_linear.h): forward, backward error and weight
 * gradient of a fully connected layer on centred int8 operands (Deutel et al. 2024), several
 * weight rows per pass over the input so that one load and unpack of the input feeds them.
 * Plain C (M0+, ET_NO_SIMD, host): four rows a pass. ARMv7E-M (ET_SIMD): the input is
 * centred and unpacked ONCE into int16 pairs on the stack, then hand-scheduled assembly
 * loops run over it: forward two rows a pass with dual MACs (SMLAD, ~1.2 instructions per
 * MAC), weight gradient and backward error four rows a pass with single MACs between LDM and
 * STM (~1.6 and ~1.9). At batch > 1 the forward takes four samples (or two) per pass, so
 * each weight word is loaded and unpacked once for all of them (~0.81 / ~0.94 instructions
 * per MAC), and the weight gradient two samples per pass, one dual MAC for both (~0.41).
 * Every path produces the same integers. */
#include <stddef.h>
#include <string.h>

#include "et_linear.h"
#include "et_simd.h"

static int32_t et_min32(int32_t a, int32_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------------ linear */

#if ET_SIMD
/* ---- forward on ARMv7E-M: the centred input is unpacked once into (x0, x2), (x1, x3) int16
 * word pairs on the stack (ET_LIN_GROUPS groups of four inputs a chunk, 2 KB), then two weight
 * rows at a time run over it in assembly: per eight inputs one LDM of four pairs and per row
 * one LDRD of eight weights (two LDRs when the rows are not word aligned), 4 SXTB16 and
 * 4 SMLAD (19 instructions for 16 MACs; the plain C loop took about 2.1 per MAC). SMLAD adds
 * modulo 2^32 and the exporter checks that every true sum fits int32, so the order of the
 * additions does not change a result. */
#define ET_LIN_GROUPS 256

/* field order and offsets are read by et_dot2_dsp / et_dot2u_dsp */
typedef struct {
    const uint32_t *x;   /*  0: the pairs, word aligned (LDM / LDRD) */
    int32_t octs;        /*  4: groups of eight inputs */
    const int8_t *w0;    /*  8: the first pass's two rows */
    const int8_t *w1;    /* 12 */
    int32_t skip;        /* 16: bytes from where a pass leaves the rows to the next two rows */
    int32_t *out;        /* 20: two sums a pass, added to (out[0], out[1]); advances */
    int32_t passes;      /* 24: at least one; counts down */
    int32_t quad;        /* 28: 1: four more inputs after the octs */
} et_dot2_job;

/* one row's eight weights (loaded by `ld` into r9, r10) against the pairs {r5-r8} into acc */
#define ET_DOT2_ROW(ld, acc)                                                                \
    ld                                                                                      \
    "sxtb16 r11, r9\n\t"            /* (w0, w2) */                                         \
    "smlad " acc ", r11, r5, " acc "\n\t"                                                   \
    "sxtb16 r9, r9, ror #8\n\t"     /* (w1, w3) */                                         \
    "smlad " acc ", r9, r6, " acc "\n\t"                                                    \
    "sxtb16 r11, r10\n\t"           /* (w4, w6) */                                         \
    "smlad " acc ", r11, r7, " acc "\n\t"                                                   \
    "sxtb16 r10, r10, ror #8\n\t"   /* (w5, w7) */                                         \
    "smlad " acc ", r10, r8, " acc "\n\t"
#define ET_DOT2_OCT(ld0, ld1)                                                               \
    "ldm r0!, {r5-r8}\n\t"          /* (x0, x2) (x1, x3) (x4, x6) (x5, x7) */              \
    ET_DOT2_ROW(ld0, "r3")                                                                  \
    ET_DOT2_ROW(ld1, "r4")
#define ET_DOT2_QUAD(rp, acc)                                                               \
    "ldr r9, [" rp "], #4\n\t"                                                              \
    "sxtb16 r11, r9\n\t"                                                                    \
    "smlad " acc ", r11, r5, " acc "\n\t"                                                   \
    "sxtb16 r9, r9, ror #8\n\t"                                                             \
    "smlad " acc ", r9, r6, " acc "\n\t"

/* passes of two rows (r1, r2) over the octs: four octs a loop turn, entered part way for the
 * octs left over (lr = octs / 4 turns after the carries of octs' two low bits) */
#define ET_DOT2_FN(name, ld0, ld1)                                                          \
    ET_ASM_FUNCTION_BEGIN(name)                                                             \
    "push {r4-r11, lr}\n\t"                                                                 \
    "mov ip, r0\n\t"                /* the job */                                          \
    "ldrd r1, r2, [ip, #8]\n"       /* the rows */                                         \
    "1:\n\t"                                                                                \
    "ldrd r0, lr, [ip]\n\t"         /* pairs, octs */                                      \
    "ldr r9, [ip, #20]\n\t"                                                                 \
    "ldrd r3, r4, [r9]\n\t"         /* the sums so far */                                  \
    "lsrs lr, lr, #1\n\t"           /* carry: an odd oct first */                          \
    "bcc 2f\n\t"                                                                            \
    ET_DOT2_OCT(ld0, ld1)                                                                   \
    "2:\n\t"                                                                                \
    "lsrs lr, lr, #1\n\t"           /* turns; carry: two more octs (enter at 5) */         \
    "bcs 6f\n\t"                                                                            \
    "cmp lr, #0\n\t"                                                                        \
    "beq 4f\n"                                                                              \
    "3:\n\t"                                                                                \
    ET_DOT2_OCT(ld0, ld1)                                                                   \
    ET_DOT2_OCT(ld0, ld1)                                                                   \
    "5:\n\t"                                                                                \
    ET_DOT2_OCT(ld0, ld1)                                                                   \
    ET_DOT2_OCT(ld0, ld1)                                                                   \
    "subs lr, lr, #1\n\t"                                                                   \
    "bne 3b\n\t"                                                                            \
    "b 4f\n"                                                                                \
    "6:\n\t"                                                                                \
    "adds lr, lr, #1\n\t"                                                                   \
    "b 5b\n"                                                                                \
    "4:\n\t"                                                                                \
    "ldr lr, [ip, #28]\n\t"         /* a last group of four inputs */                      \
    "cmp lr, #0\n\t"                                                                        \
    "beq 7f\n\t"                                                                            \
    "ldrd r5, r6, [r0], #8\n\t"                                                             \
    ET_DOT2_QUAD("r1", "r3")                                                                \
    ET_DOT2_QUAD("r2", "r4")                                                                \
    "7:\n\t"                                                                                \
    "ldr r9, [ip, #20]\n\t"                                                                 \
    "strd r3, r4, [r9], #8\n\t"                                                             \
    "str r9, [ip, #20]\n\t"                                                                 \
    "ldr r9, [ip, #16]\n\t"         /* the next two rows */                                \
    "add r1, r1, r9\n\t"                                                                    \
    "add r2, r2, r9\n\t"                                                                    \
    "ldr r9, [ip, #24]\n\t"                                                                 \
    "subs r9, r9, #1\n\t"                                                                   \
    "str r9, [ip, #24]\n\t"                                                                 \
    "bne 1b\n\t"                                                                            \
    "pop {r4-r11, pc}\n\t"                                                                  \
    ET_ASM_FUNCTION_END(name)

/* word-aligned rows: one LDRD a row; any rows: two (unaligned) LDRs */
void et_dot2_dsp(et_dot2_job *jb);
void et_dot2u_dsp(et_dot2_job *jb);
__asm(ET_DOT2_FN("et_dot2_dsp", "ldrd r9, r10, [r1], #8\n\t", "ldrd r9, r10, [r2], #8\n\t"));
__asm(ET_DOT2_FN("et_dot2u_dsp", "ldr r9, [r1], #4\n\tldr r10, [r1], #4\n\t",
                 "ldr r9, [r2], #4\n\tldr r10, [r2], #4\n\t"));

/* the assembly reads the job at these offsets (ARM: 4-byte pointers) */
typedef char et_dot2_job_layout[offsetof(et_dot2_job, out) == 20 &&
                                offsetof(et_dot2_job, quad) == 28 ? 1 : -1];

/* the centred int16 pairs of n samples (sample k at x + k * xs), interleaved by group of
 * four inputs: p[2 (n g + k)], p[2 (n g + k) + 1] = (x0 - zx, x2 - zx), (x1 - zx, x3 - zx) of
 * sample k's group g (|x - zx| <= 255 fits a halfword); s[k] += the sum of its centred inputs */
static void et_pairs_centred(const int8_t *x, int32_t xs, int32_t n, int32_t zx,
                             int32_t groups, uint32_t *p, int32_t *s)
{
    const uint32_t zz = ET_PAIR(zx, zx), ones = 0x00010001u;
    for (int32_t k = 0; k < n; k++) {
        const int8_t *xk = x + k * xs;
        uint32_t *pk = p + 2 * k;
        int32_t sk = s[k];
        for (int32_t g = 0; g < groups; g++, pk += 2 * n) {
            uint32_t v = et_ld32(xk + 4 * g);
            pk[0] = et_ssub16(et_sxtb16(v), zz);          /* (x0, x2) centred */
            pk[1] = et_ssub16(et_sxtb16_ror8(v), zz);     /* (x1, x3) centred */
            sk = et_smlad(pk[1], ones, et_smlad(pk[0], ones, sk));
        }
        s[k] = sk;
    }
}

/* the rest of the forward of n samples (as et_pairs_centred, sums at acc + k * as): the last
 * n_in % 4 inputs, then the weight zero point: sum (x - zx)(w - zw) = sum (x - zx) w - zw *
 * sum (x - zx), an exact integer identity */
static void et_forward_rest(const int8_t *x, int32_t xs, int32_t n, int32_t zx,
                            const int8_t *w, int32_t zw, int32_t n_in, int32_t n_out,
                            int32_t *acc, int32_t as, int32_t *sum)
{
    for (int32_t k = 0; k < n; k++) {
        const int8_t *xk = x + k * xs;
        int32_t *ak = acc + k * as;
        for (int32_t i = n_in & ~3; i < n_in; i++) {
            int32_t xc = (int32_t)xk[i] - zx;
            sum[k] += xc;
            for (int32_t o = 0; o < n_out; o++) ak[o] += xc * w[o * n_in + i];
        }
        if (zw)
            for (int32_t o = 0; o < n_out; o++) ak[o] -= zw * sum[k];
    }
}

/* acc[o] += the chunk's sum for every row o (w: the chunk's first column), two rows a pass;
 * an odd last row runs as both rows of one more pass */
static void et_rows2(const uint32_t *pairs, int32_t groups, const int8_t *w, int32_t n_in,
                     int32_t n_out, int32_t *acc)
{
    const int aligned = (((uintptr_t)w | (uintptr_t)n_in) & 3u) == 0;
    void (*dot)(et_dot2_job *) = aligned ? et_dot2_dsp : et_dot2u_dsp;
    et_dot2_job jb = {pairs, groups >> 1, w, w + n_in, 2 * n_in - 4 * groups, acc,
                      n_out >> 1, groups & 1};
    if (jb.passes > 0) dot(&jb);
    if (n_out & 1) {
        const int8_t *last = w + (n_out - 1) * n_in;
        int32_t s[2] = {acc[n_out - 1], acc[n_out - 1]};
        et_dot2_job one = {pairs, groups >> 1, last, last, 0, s, 1, groups & 1};
        dot(&one);
        acc[n_out - 1] = s[0];
    }
}

void et_linear_fwd(const int8_t *x, int32_t zx, const int8_t *w, int32_t zw,
                   int32_t n_in, int32_t n_out, int32_t *acc)
{
    uint32_t pairs[2 * ET_LIN_GROUPS];                 /* int16 (x0, x2), (x1, x3) per group */
    int32_t groups = n_in >> 2, sum = 0;
    memset(acc, 0, (size_t)n_out * sizeof *acc);
    for (int32_t g = 0; g < groups; g += ET_LIN_GROUPS) {
        int32_t ng = et_min32(ET_LIN_GROUPS, groups - g);
        et_pairs_centred(x + 4 * g, 0, 1, zx, ng, pairs, &sum);
        et_rows2(pairs, ng, w + 4 * g, n_in, n_out, acc);
    }
    et_forward_rest(x, 0, 1, zx, w, zw, n_in, n_out, acc, 0, &sum);
}

/* ---- forward of two samples on ARMv7E-M: both samples' centred inputs unpacked once into
 * pairs, per group of four inputs (a0 a2) (a1 a3) (b0 b2) (b1 b3) (ET_LIN_GROUPS2 groups a
 * chunk, 2 KB of stack), then two weight rows at a time: per group one LDM of the four pairs
 * and per row one LDR of four weights, unpacked ONCE by 2 SXTB16 for both samples' 4 SMLAD
 * (15 instructions for 16 MACs; one sample a pass took 19). The sums are the same int32
 * modulo 2^32 (SMLAD adds modulo 2^32; the exporter checks that every true sum fits int32). */
#define ET_LIN_GROUPS2 128

/* field order and offsets are read by et_dot22_dsp */
typedef struct {
    const uint32_t *x;   /*  0: the pairs, word aligned (LDM) */
    const uint32_t *end; /*  4: past the chunk's last group */
    const int8_t *w0;    /*  8: this pass's first row (the second is n_in bytes on) */
    int32_t skip;        /* 12: bytes from where a pass leaves w0 to the next pass's w0 */
    int32_t *out0;       /* 16: sample a's two sums a pass, added to; advances */
    int32_t *out1;       /* 20: sample b's */
    int32_t passes;      /* 24: at least one; counts down */
    int32_t n_in;        /* 28: bytes from the first row to the second (0: one row twice) */
    int32_t rem;         /* 32: groups % 4 (the loop is entered part way for them) */
} et_dot22_job;

/* one row (post-incremented rp) into the sums ra (sample a), rb (sample b) against the
 * pairs {r4-r7} of one group */
#define ET_DOT22_ROW(rp, ra, rb)                                                            \
    "ldr ip, [" rp "], #4\n\t"      /* w0 w1 w2 w3 */                                      \
    "sxtb16 lr, ip\n\t"             /* (w0, w2) */                                         \
    "smlad " ra ", lr, r4, " ra "\n\t"                                                      \
    "smlad " rb ", lr, r6, " rb "\n\t"                                                      \
    "sxtb16 ip, ip, ror #8\n\t"     /* (w1, w3) */                                         \
    "smlad " ra ", ip, r5, " ra "\n\t"                                                      \
    "smlad " rb ", ip, r7, " rb "\n\t"
#define ET_DOT22_GROUP                                                                      \
    "ldm r0!, {r4-r7}\n\t"          /* (a0, a2) (a1, a3) (b0, b2) (b1, b3) */              \
    ET_DOT22_ROW("r1", "r8", "r9")                                                          \
    ET_DOT22_ROW("r2", "r10", "r11")

/* a four-group loop over the pairs at r0 up to end, entered part way so that its first pass
 * runs ip = groups % 4 groups (ip = 0: all four): a chunk of any number of groups, no tail */
#define ET_FOUR_GROUPS_FROM_IP(group, end)                                                  \
    "cmp ip, #2\n\t"                                                                        \
    "beq 12f\n\t"                                                                           \
    "bhi 11f\n\t"                                                                           \
    "cmp ip, #1\n\t"                                                                        \
    "beq 13f\n"                                                                             \
    "10:\n\t" group "11:\n\t" group "12:\n\t" group "13:\n\t" group                         \
    "cmp r0, " end "\n\tbne 10b\n\t"

/* r0: pairs (up to r3: their end), r1 / r2: the rows, r8-r11: the sums (row 0 a, b, row 1
 * a, b), r4-r7 a group's pairs, ip / lr weights; the job's address stays on the stack. The
 * four-group loop's first pass runs rem = groups % 4 groups (0: four). */
void et_dot22_dsp(et_dot22_job *jb);
__asm(
    ET_ASM_FUNCTION_BEGIN("et_dot22_dsp")
    "push {r4-r11, lr}\n\t"
    "push {r0}\n"
    "1:\n\t"
    "ldr ip, [sp]\n\t"
    "ldm ip, {r0, r3}\n\t"          /* pairs, end */
    "ldr r1, [ip, #8]\n\t"
    "ldr r2, [ip, #28]\n\t"
    "add r2, r1, r2\n\t"            /* the second row */
    "ldr r4, [ip, #16]\n\t"
    "ldrd r8, r10, [r4]\n\t"        /* row 0 / row 1 sums of sample a */
    "ldr r5, [ip, #20]\n\t"
    "ldrd r9, r11, [r5]\n\t"        /* of sample b */
    "ldr ip, [ip, #32]\n\t"
    ET_FOUR_GROUPS_FROM_IP(ET_DOT22_GROUP, "r3")
    "ldr ip, [sp]\n\t"
    "ldr r4, [ip, #16]\n\t"
    "strd r8, r10, [r4], #8\n\t"
    "str r4, [ip, #16]\n\t"
    "ldr r5, [ip, #20]\n\t"
    "strd r9, r11, [r5], #8\n\t"
    "str r5, [ip, #20]\n\t"
    "ldr r4, [ip, #12]\n\t"         /* the next two rows */
    "add r1, r1, r4\n\t"
    "str r1, [ip, #8]\n\t"
    "ldr r4, [ip, #24]\n\t"
    "subs r4, r4, #1\n\t"
    "str r4, [ip, #24]\n\t"
    "bne 1b\n\t"
    "add sp, sp, #4\n\t"
    "pop {r4-r11, pc}\n\t"
    ET_ASM_FUNCTION_END("et_dot22_dsp"));

typedef char et_dot22_job_layout[offsetof(et_dot22_job, out0) == 16 &&
                                 offsetof(et_dot22_job, rem) == 32 ? 1 : -1];

/* acc_a[o], acc_b[o] += the chunk's sums for every row o (w: the chunk's first column), two
 * rows a pass; an odd last row runs as both rows of one more pass */
static void et_rows22(const uint32_t *pairs, int32_t groups, const int8_t *w, int32_t n_in,
                      int32_t n_out, int32_t *acc_a, int32_t *acc_b)
{
    et_dot22_job jb = {pairs, pairs + 4 * groups, w, 2 * n_in - 4 * groups, acc_a, acc_b,
                       n_out >> 1, n_in, groups & 3};
    if (jb.passes > 0) et_dot22_dsp(&jb);
    if (n_out & 1) {
        int32_t sa[2] = {acc_a[n_out - 1], 0}, sb[2] = {acc_b[n_out - 1], 0};
        et_dot22_job one = {pairs, pairs + 4 * groups, w + (n_out - 1) * n_in, 0, sa, sb, 1, 0,
                            groups & 3};
        et_dot22_dsp(&one);
        acc_a[n_out - 1] = sa[0];
        acc_b[n_out - 1] = sb[0];
    }
}

void et_linear_fwd2(const int8_t *x, int32_t xs, int32_t zx, const int8_t *w, int32_t zw,
                    int32_t n_in, int32_t n_out, int32_t *acc, int32_t as)
{
    uint32_t pairs[4 * ET_LIN_GROUPS2];                /* int16 pairs of both samples */
    int32_t groups = n_in >> 2, sum[2] = {0, 0};
    memset(acc, 0, (size_t)n_out * sizeof *acc);
    memset(acc + as, 0, (size_t)n_out * sizeof *acc);
    for (int32_t g = 0; g < groups; g += ET_LIN_GROUPS2) {
        int32_t ng = et_min32(ET_LIN_GROUPS2, groups - g);
        et_pairs_centred(x + 4 * g, xs, 2, zx, ng, pairs, sum);
        et_rows22(pairs, ng, w + 4 * g, n_in, n_out, acc, acc + as);
    }
    et_forward_rest(x, xs, 2, zx, w, zw, n_in, n_out, acc, as, sum);
}

/* ---- forward of four samples on ARMv7E-M, one weight row a pass: per group of four inputs
 * one LDR of the row's four weights, 2 SXTB16, then the four samples' pairs by two LDM of
 * four words (two samples each) into 8 SMLAD (13 instructions for 16 MACs). Pairs per group:
 * (a0 a2) (a1 a3) of samples 0, 1, 2, 3 in turn (ET_LIN_GROUPS4 groups a chunk, 2 KB). */
#define ET_LIN_GROUPS4 64

/* field order and offsets are read by et_dot14_dsp */
typedef struct {
    const uint32_t *x;   /*  0: the pairs, word aligned (LDM) */
    const int8_t *w;     /*  4: this pass's row at the chunk's first column */
    const uint32_t *end; /*  8: past the chunk's last group */
    int32_t skip;        /* 12: bytes from where a pass leaves w to the next row */
    int32_t *out;        /* 16: sample 0's sum of this row, added to; advances a row a pass */
    int32_t stride;      /* 20: bytes from one sample's sums to the next sample's */
    int32_t passes;      /* 24: rows, at least one; counts down */
    int32_t rem;         /* 28: groups % 4 (the loop is entered part way for them) */
} et_dot14_job;

#define ET_DOT14_GROUP                                                                      \
    "ldr ip, [r1], #4\n\t"          /* w0 w1 w2 w3 */                                      \
    "sxtb16 lr, ip\n\t"             /* (w0, w2) */                                         \
    "sxtb16 ip, ip, ror #8\n\t"     /* (w1, w3) */                                         \
    "ldm r0!, {r4-r7}\n\t"          /* samples 0 and 1 */                                  \
    "smlad r8, lr, r4, r8\n\t"                                                              \
    "smlad r8, ip, r5, r8\n\t"                                                              \
    "smlad r9, lr, r6, r9\n\t"                                                              \
    "smlad r9, ip, r7, r9\n\t"                                                              \
    "ldm r0!, {r4-r7}\n\t"          /* samples 2 and 3 */                                  \
    "smlad r10, lr, r4, r10\n\t"                                                            \
    "smlad r10, ip, r5, r10\n\t"                                                            \
    "smlad r11, lr, r6, r11\n\t"                                                            \
    "smlad r11, ip, r7, r11\n\t"

/* r0: pairs (up to r2: their end), r1: the row, r3: the job, r8-r11: the four samples' sums,
 * r4-r7 pairs, ip / lr weights. The four-group loop's first pass runs rem groups. */
void et_dot14_dsp(et_dot14_job *jb);
__asm(
    ET_ASM_FUNCTION_BEGIN("et_dot14_dsp")
    "push {r4-r11, lr}\n\t"
    "mov r3, r0\n"
    "1:\n\t"
    "ldm r3, {r0, r1, r2}\n\t"      /* pairs, row, end */
    "ldrd r4, r5, [r3, #16]\n\t"    /* out, stride */
    "ldr r8, [r4]\n\t"
    "add r4, r4, r5\n\t"
    "ldr r9, [r4]\n\t"
    "add r4, r4, r5\n\t"
    "ldr r10, [r4]\n\t"
    "ldr r11, [r4, r5]\n\t"
    "ldr ip, [r3, #28]\n\t"
    ET_FOUR_GROUPS_FROM_IP(ET_DOT14_GROUP, "r2")
    "ldrd r4, r5, [r3, #16]\n\t"
    "str r9, [r4, r5]\n\t"
    "add r6, r4, r5, lsl #1\n\t"
    "str r10, [r6]\n\t"
    "str r11, [r6, r5]\n\t"
    "str r8, [r4], #4\n\t"          /* the next row's sums */
    "str r4, [r3, #16]\n\t"
    "ldr r4, [r3, #12]\n\t"
    "add r1, r1, r4\n\t"            /* the next row */
    "str r1, [r3, #4]\n\t"
    "ldr r4, [r3, #24]\n\t"
    "subs r4, r4, #1\n\t"
    "str r4, [r3, #24]\n\t"
    "bne 1b\n\t"
    "pop {r4-r11, pc}\n\t"
    ET_ASM_FUNCTION_END("et_dot14_dsp"));

typedef char et_dot14_job_layout[offsetof(et_dot14_job, out) == 16 &&
                                 offsetof(et_dot14_job, rem) == 28 ? 1 : -1];

void et_linear_fwd4(const int8_t *x, int32_t xs, int32_t zx, const int8_t *w, int32_t zw,
                    int32_t n_in, int32_t n_out, int32_t *acc, int32_t as)
{
    uint32_t pairs[8 * ET_LIN_GROUPS4];                /* int16 pairs of the four samples */
    int32_t groups = n_in >> 2, sum[4] = {0, 0, 0, 0};
    for (int32_t k = 0; k < 4; k++) memset(acc + k * as, 0, (size_t)n_out * sizeof *acc);
    for (int32_t g = 0; g < groups; g += ET_LIN_GROUPS4) {
        int32_t ng = et_min32(ET_LIN_GROUPS4, groups - g);
        et_pairs_centred(x + 4 * g, xs, 4, zx, ng, pairs, sum);
        et_dot14_job jb = {pairs, w + 4 * g, pairs + 8 * ng, n_in - 4 * ng, acc,
                           as * (int32_t)sizeof *acc, n_out, ng & 3};
        if (n_out > 0) et_dot14_dsp(&jb);
    }
    et_forward_rest(x, xs, 4, zx, w, zw, n_in, n_out, acc, as, sum);
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

#if !ET_SIMD
/* plain C: one sample after the other (the same integers) */
static void et_linear_fwd_each(const int8_t *x, int32_t xs, int32_t n, int32_t zx,
                               const int8_t *w, int32_t zw, int32_t n_in, int32_t n_out,
                               int32_t *acc, int32_t as)
{
    for (int32_t k = 0; k < n; k++)
        et_linear_fwd(x + k * xs, zx, w, zw, n_in, n_out, acc + k * as);
}

void et_linear_fwd2(const int8_t *x, int32_t xs, int32_t zx, const int8_t *w, int32_t zw,
                    int32_t n_in, int32_t n_out, int32_t *acc, int32_t as)
{
    et_linear_fwd_each(x, xs, 2, zx, w, zw, n_in, n_out, acc, as);
}

void et_linear_fwd4(const int8_t *x, int32_t xs, int32_t zx, const int8_t *w, int32_t zw,
                    int32_t n_in, int32_t n_out, int32_t *acc, int32_t as)
{
    et_linear_fwd_each(x, xs, 4, zx, w, zw, n_in, n_out, acc, as);
}
#endif

#if ET_SIMD
/* the next (up to) four kept rows with an error from *o on: their indices and errors, padded
 * to four with the first row and zero errors; returns how many are real (0: none left) */
static int32_t et_next_rows4(const int16_t *ec, const uint8_t *sel, int32_t n_out, int32_t *o,
                             int32_t idx[4], int32_t e[4])
{
    int32_t r = 0;
    for (; *o < n_out && r < 4; (*o)++)
        if (ec[*o] != 0 && (!sel || sel[*o])) {
            idx[r] = *o;
            e[r++] = ec[*o];
        }
    for (int32_t t = r; t < 4 && r > 0; t++) {
        idx[t] = idx[0];
        e[t] = 0;
    }
    return r;
}

/* ---- backward error on ARMv7E-M: four weight rows a pass in et_axpy4_dsp, per group of
 * four inputs an LDM of dx, per row LDR, 2 SXTB16 and 4 SMLAxy against that row's error
 * (a half of an error pair), an STM (30 instructions for 16 MACs). A short pass repeats its
 * first row with zero errors. */

/* field order and offsets are read by et_axpy4_dsp */
typedef struct {
    int32_t *dx;         /*  0: word aligned (LDM / STM) */
    const int8_t *w[4];  /*  4: the four rows */
    uint32_t e01, e23;   /* 20, 24: (e0, e1), (e2, e3) as int16 pairs */
    int32_t groups;      /* 28: at least one */
} et_axpy4_job;

/* one row (post-incremented rp) times the b(ottom) or t(op) half of the error pair ep into
 * {r5 .. r8} = dx[i .. i + 3] */
#define ET_AXPY_ROW(rp, h, ep)                                                              \
    "ldr r9, [" rp "], #4\n\t"      /* w0 w1 w2 w3 */                                      \
    "sxtb16 r10, r9\n\t"            /* (w0, w2) */                                         \
    "smlab" h " r5, r10, " ep ", r5\n\t"                                                    \
    "smlat" h " r7, r10, " ep ", r7\n\t"                                                    \
    "sxtb16 r10, r9, ror #8\n\t"    /* (w1, w3) */                                         \
    "smlab" h " r6, r10, " ep ", r6\n\t"                                                    \
    "smlat" h " r8, r10, " ep ", r8\n\t"
#define ET_AXPY_GROUP                                                                       \
    "ldm r0, {r5-r8}\n\t"                                                                   \
    ET_AXPY_ROW("r1", "b", "r11")                                                           \
    ET_AXPY_ROW("r2", "t", "r11")                                                           \
    ET_AXPY_ROW("r3", "b", "ip")                                                            \
    ET_AXPY_ROW("r4", "t", "ip")                                                            \
    "stm r0!, {r5-r8}\n\t"

/* The loop both four-row kernels share: the job struct loaded into r0-r4, r11, ip, lr (lr:
 * the groups), then `group` (one group of four inputs) run lr times: an odd group first,
 * then fours, entering the four-loop halfway for an odd pair (Duff's device). */
#define ET_ROWS4_FUNCTION(name, group)                                                          \
__asm(                                                                                          \
    ET_ASM_FUNCTION_BEGIN(#name)                                                                \
    "push {r4-r11, lr}\n\t"                                                                     \
    "ldm r0, {r0-r4, r11, ip, lr}\n\t"    /* the job (8 words) */                               \
    "lsrs lr, lr, #1\n\t"           /* carry: an odd group first */                             \
    "bcc 2f\n\t"                                                                                \
    group                                                                                       \
    "2:\n\t"                                                                                    \
    "lsrs lr, lr, #1\n\t"           /* fours of groups; carry: an odd pair (enters at 5) */     \
    "bcs 6f\n\t"                                                                                \
    "cmp lr, #0\n\t"                                                                            \
    "beq 4f\n"                                                                                  \
    "3:\n\t"                                                                                    \
    group                                                                                       \
    group                                                                                       \
    "5:\n\t"                                                                                    \
    group                                                                                       \
    group                                                                                       \
    "subs lr, lr, #1\n\t"                                                                       \
    "bne 3b\n\t"                                                                                \
    "b 4f\n"                                                                                    \
    "6:\n\t"                                                                                    \
    "adds lr, lr, #1\n\t"                                                                       \
    "b 5b\n"                                                                                    \
    "4:\n\t"                                                                                    \
    "pop {r4-r11, pc}\n\t"                                                                      \
    ET_ASM_FUNCTION_END(#name));

void et_axpy4_dsp(const et_axpy4_job *jb);
ET_ROWS4_FUNCTION(et_axpy4_dsp, ET_AXPY_GROUP)

typedef char et_axpy4_job_layout[offsetof(et_axpy4_job, e01) == 20 &&
                                 offsetof(et_axpy4_job, groups) == 28 ? 1 : -1];

void et_linear_bwd_in(const int16_t *ec, const uint8_t *sel, const int8_t *w, int32_t zw,
                      int32_t n_in, int32_t n_out, int32_t *dx)
{
    int32_t idx[4], e[4], esum = 0, groups = n_in >> 2;
    for (int32_t o = 0; o < n_out; o++)
        if (!sel || sel[o]) esum += ec[o];
    /* sum e (w - zw) = sum e w - zw * sum e: dx starts at the correction (exact) */
    for (int32_t i = 0; i < n_in; i++) dx[i] = -zw * esum;
    et_axpy4_job jb = {dx, {w, w, w, w}, 0u, 0u, groups};
    for (int32_t o = 0; groups > 0 && et_next_rows4(ec, sel, n_out, &o, idx, e) > 0;) {
        for (int32_t t = 0; t < 4; t++) jb.w[t] = w + idx[t] * n_in;
        jb.e01 = ET_PAIR(e[0], e[1]);
        jb.e23 = ET_PAIR(e[2], e[3]);
        et_axpy4_dsp(&jb);
    }
    for (int32_t o = 0; o < n_out; o++)               /* the last n_in % 4 inputs */
        if (!sel || sel[o])
            for (int32_t i = 4 * groups; i < n_in; i++) dx[i] += ec[o] * w[o * n_in + i];
}
#else
/* ---- backward error in plain C */

/* dx[i] += sum_r e_r * w_r[i] over the four rows w_r */
static void et_axpy4(int32_t *restrict dx, const int8_t *const *w, const int32_t *e, int32_t n)
{
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    int32_t i = 0;
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
#endif

#if ET_SIMD
/* dw[o][i] += ec_o (x_i - zx) over the last n_in % 4 inputs, for kept rows with an error */
static void et_outer_tail(const int16_t *ec, const uint8_t *sel, const int8_t *x, int32_t zx,
                          int32_t n_in, int32_t n_out, int32_t *dw)
{
    for (int32_t i = n_in & ~3; i < n_in; i++) {
        int32_t xc = (int32_t)x[i] - zx;
        for (int32_t o = 0; o < n_out; o++)
            if (ec[o] != 0 && (!sel || sel[o])) dw[o * n_in + i] += ec[o] * xc;
    }
}

/* ---- weight gradient on ARMv7E-M: the centred input pairs of et_pairs_centred (stack
 * chunks as in the forward), four gradient rows a pass in et_outer4_dsp: per group of four
 * inputs one LDRD of the pairs and per row LDM, 4 SMLAxy, STM (25 instructions for 16 MACs).
 * Each row's load-multiply-store finishes before the next row's load, so a row may repeat
 * with a zero error (it reads back what it stored and adds 0): a short last pass repeats its
 * first row. SMLAxy adds modulo 2^32 like the int32 sums of the plain loop. */

/* field order and offsets are read by et_outer4_dsp */
typedef struct {
    const uint32_t *x;   /*  0: groups x (x0 x2, x1 x3) pairs, word aligned (LDRD) */
    int32_t *d[4];       /*  4: the four rows, word aligned (LDM / STM) */
    uint32_t e01, e23;   /* 20, 24: (e0, e1), (e2, e3) as int16 pairs */
    int32_t groups;      /* 28: at least one */
} et_outer4_job;

/* one row: the four gradients at rp += e * (x0, x1, x2, x3), e the b(ottom) or t(op) half
 * of the error pair ep; {r5-r8} are scratch */
#define ET_OUTER_ROW(rp, h, ep)                                                             \
    "ldm " rp ", {r5-r8}\n\t"                                                               \
    "smlab" h " r5, r9, " ep ", r5\n\t"                                                     \
    "smlab" h " r6, r10, " ep ", r6\n\t"                                                    \
    "smlat" h " r7, r9, " ep ", r7\n\t"                                                     \
    "smlat" h " r8, r10, " ep ", r8\n\t"                                                    \
    "stm " rp "!, {r5-r8}\n\t"
#define ET_OUTER_GROUP                                                                      \
    "ldrd r9, r10, [r0], #8\n\t"    /* (x0, x2), (x1, x3) */                               \
    ET_OUTER_ROW("r1", "b", "r11")                                                          \
    ET_OUTER_ROW("r2", "t", "r11")                                                          \
    ET_OUTER_ROW("r3", "b", "ip")                                                           \
    ET_OUTER_ROW("r4", "t", "ip")

void et_outer4_dsp(const et_outer4_job *jb);
ET_ROWS4_FUNCTION(et_outer4_dsp, ET_OUTER_GROUP)

typedef char et_outer4_job_layout[offsetof(et_outer4_job, e01) == 20 &&
                                  offsetof(et_outer4_job, groups) == 28 ? 1 : -1];

/* dw[o][i] += ec_o * (chunk pair i) over the chunk's groups, for every kept row o with an
 * error, four rows a pass (dw: the chunk's first column) */
static void et_outer_rows(const int16_t *ec, const uint8_t *sel, const uint32_t *pairs,
                          int32_t groups, int32_t n_in, int32_t n_out, int32_t *dw)
{
    et_outer4_job jb = {pairs, {dw, dw, dw, dw}, 0u, 0u, groups};
    int32_t idx[4], e[4];
    for (int32_t o = 0; et_next_rows4(ec, sel, n_out, &o, idx, e) > 0;) {
        for (int32_t t = 0; t < 4; t++) jb.d[t] = dw + idx[t] * n_in;
        jb.e01 = ET_PAIR(e[0], e[1]);
        jb.e23 = ET_PAIR(e[2], e[3]);
        et_outer4_dsp(&jb);
    }
}

void et_linear_bwd_w(const int16_t *ec, const uint8_t *sel, const int8_t *x, int32_t zx,
                     int32_t n_in, int32_t n_out, int32_t *dw)
{
    uint32_t pairs[2 * ET_LIN_GROUPS];                 /* int16 (x0, x2), (x1, x3) per group */
    int32_t groups = n_in >> 2, unused = 0;            /* the input's sum: not needed here */
    for (int32_t g = 0; g < groups; g += ET_LIN_GROUPS) {
        int32_t ng = et_min32(ET_LIN_GROUPS, groups - g);
        et_pairs_centred(x + 4 * g, 0, 1, zx, ng, pairs, &unused);
        et_outer_rows(ec, sel, pairs, ng, n_in, n_out, dw + 4 * g);
    }
    et_outer_tail(ec, sel, x, zx, n_in, n_out, dw);
}

/* ---- weight gradient of two samples a, b on ARMv7E-M: dw[o][i] += e_a (a_i - zx) + e_b (b_i
 * - zx) is one SMLAD of the input pair (a_i, b_i) and the error pair (e_a, e_b). The pairs of
 * both samples, interleaved by input (et_pairs_of_two), then two gradient rows a pass in
 * et_outer22_dsp: per group of four inputs one LDM of four pairs and per row LDM, 4 SMLAD, STM
 * (13 instructions for 32 MACs; et_outer4_dsp takes 25 for 16). A row runs when either sample
 * keeps a nonzero error in it (the other's zero error adds 0), and as in et_outer4_dsp each
 * row's load-multiply-store finishes before the next row's load, so a short pass repeats its
 * row with a zero error pair. SMLAD adds modulo 2^32 like the int32 sums of one sample after
 * the other, and every true sum fits int32 (the exporter checks), so the sums are the same. */

/* field order and offsets are read by et_outer22_dsp */
typedef struct {
    const uint32_t *x;   /*  0: groups x four (a_i, b_i) int16 pairs, word aligned (LDM) */
    int32_t *d0, *d1;    /*  4, 8: the two rows, word aligned (LDM / STM) */
    uint32_t e[2];       /* 12, 16: (e_a, e_b) of each row as int16 pairs */
    int32_t rem;         /* 20: groups % 4 (the loop is entered part way for them) */
    const uint32_t *end; /* 24: past the last group */
} et_outer22_job;

#define ET_OUTER22_ROW(rp, ep)                                                              \
    "ldm " rp ", {r9-r12}\n\t"                                                                \
    "smlad r9, r5, " ep ", r9\n\t"                                                            \
    "smlad r10, r6, " ep ", r10\n\t"                                                          \
    "smlad r11, r7, " ep ", r11\n\t"                                                          \
    "smlad r12, r8, " ep ", r12\n\t"                                                          \
    "stm " rp "!, {r9-r12}\n\t"
#define ET_OUTER22_GROUP                                                                    \
    "ldm r0!, {r5-r8}\n\t"          /* (a0, b0) (a1, b1) (a2, b2) (a3, b3) */              \
    ET_OUTER22_ROW("r1", "r3")                                                              \
    ET_OUTER22_ROW("r2", "r4")

/* r0: pairs (up to lr: their end), r1 / r2: the rows, r3 / r4: their error pairs, r5-r8 a
 * group's pairs, r9-r12 four gradients (ip holds rem until the loop is entered) */
void et_outer22_dsp(const et_outer22_job *jb);
__asm(
    ET_ASM_FUNCTION_BEGIN("et_outer22_dsp")
    "push {r4-r11, lr}\n\t"
    "ldm r0, {r0-r4, ip, lr}\n\t"   /* the job (7 words) */
    ET_FOUR_GROUPS_FROM_IP(ET_OUTER22_GROUP, "lr")
    "pop {r4-r11, pc}\n\t"
    ET_ASM_FUNCTION_END("et_outer22_dsp"));

typedef char et_outer22_job_layout[offsetof(et_outer22_job, e) == 12 &&
                                   offsetof(et_outer22_job, end) == 24 ? 1 : -1];

/* the centred inputs of samples a and b as int16 pairs interleaved by input: p[4 g + k] =
 * (a_{4g+k} - zx, b_{4g+k} - zx) for k = 0 .. 3 (|x - zx| <= 255 fits a halfword) */
static void et_pairs_of_two(const int8_t *xa, const int8_t *xb, int32_t zx, int32_t groups,
                            uint32_t *p)
{
    const uint32_t zz = ET_PAIR(zx, zx);
    for (int32_t g = 0; g < groups; g++, p += 4) {
        uint32_t va = et_ld32(xa + 4 * g), vb = et_ld32(xb + 4 * g);
        uint32_t a02 = et_ssub16(et_sxtb16(va), zz), a13 = et_ssub16(et_sxtb16_ror8(va), zz);
        uint32_t b02 = et_ssub16(et_sxtb16(vb), zz), b13 = et_ssub16(et_sxtb16_ror8(vb), zz);
        p[0] = et_pkhbt(a02, b02);                     /* (a0, b0) */
        p[1] = et_pkhbt(a13, b13);                     /* (a1, b1) */
        p[2] = et_pkhtb(a02, b02);                     /* (a2, b2) */
        p[3] = et_pkhtb(a13, b13);                     /* (a3, b3) */
    }
}

/* the next (up to) two rows from *o on where sample a or b keeps a nonzero error: their
 * indices and (e_a, e_b) pairs (a dropped row's error read as 0), padded to two with the
 * first row and a zero pair; returns how many are real (0: none left) */
static int32_t et_next_rows2(const int16_t *ea, const int16_t *eb, const uint8_t *sa,
                             const uint8_t *sb, int32_t n_out, int32_t *o, int32_t idx[2],
                             uint32_t e[2])
{
    int32_t r = 0;
    for (; *o < n_out && r < 2; (*o)++) {
        int32_t a = !sa || sa[*o] ? ea[*o] : 0, b = !sb || sb[*o] ? eb[*o] : 0;
        if (a | b) {
            idx[r] = *o;
            e[r++] = ET_PAIR(a, b);
        }
    }
    if (r == 1) {
        idx[1] = idx[0];
        e[1] = 0u;
    }
    return r;
}

void et_linear_bwd_w2(const int16_t *ec, int32_t es, const uint8_t *sel, int32_t ss,
                      const int8_t *x, int32_t xs, int32_t zx, int32_t n_in, int32_t n_out,
                      int32_t *dw)
{
    uint32_t pairs[4 * ET_LIN_GROUPS2];                /* int16 (a_i, b_i) per input */
    const int16_t *eb = ec + es;
    const uint8_t *sb = sel ? sel + ss : NULL;
    int32_t groups = n_in >> 2, idx[2];
    for (int32_t g = 0; g < groups; g += ET_LIN_GROUPS2) {
        int32_t ng = et_min32(ET_LIN_GROUPS2, groups - g);
        et_pairs_of_two(x + 4 * g, x + xs + 4 * g, zx, ng, pairs);
        et_outer22_job jb = {pairs, dw, dw, {0u, 0u}, ng & 3, pairs + 4 * ng};
        for (int32_t o = 0; et_next_rows2(ec, eb, sel, sb, n_out, &o, idx, jb.e) > 0;) {
            jb.d0 = dw + idx[0] * n_in + 4 * g;
            jb.d1 = dw + idx[1] * n_in + 4 * g;
            et_outer22_dsp(&jb);
        }
    }
    et_outer_tail(ec, sel, x, zx, n_in, n_out, dw);
    et_outer_tail(eb, sb, x + xs, zx, n_in, n_out, dw);
}
#else
/* ---- weight gradient in plain C */

/* dw_r[i] += e_r * (x_i - zx) for four distinct rows dw_r (the centred input unpacked once;
 * rows that do not overlap let the compiler pair the loads and stores) */
static void et_outer4(int32_t *restrict d0, int32_t *restrict d1, int32_t *restrict d2,
                      int32_t *restrict d3, const int32_t *e, const int8_t *x, int32_t zx,
                      int32_t n)
{
    int32_t e0 = e[0], e1 = e[1], e2 = e[2], e3 = e[3], i = 0;
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

/* plain C: one sample after the other (the same integers) */
void et_linear_bwd_w2(const int16_t *ec, int32_t es, const uint8_t *sel, int32_t ss,
                      const int8_t *x, int32_t xs, int32_t zx, int32_t n_in, int32_t n_out,
                      int32_t *dw)
{
    et_linear_bwd_w(ec, sel, x, zx, n_in, n_out, dw);
    et_linear_bwd_w(ec + es, sel ? sel + ss : NULL, x + xs, zx, n_in, n_out, dw);
}
#endif
