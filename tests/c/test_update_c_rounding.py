"""The in-place update's row loops (et_update.c) against the specification, integer for
integer. Row quantization (et_quantize_row) against edgetrain.numerics.qparams.quantize with
stochastic rounding: the integer form of docs/numerics.md section 1's stochastic rule
(q = ~(sat32(k - 2^24 - RNE(V)) >> 24) with V = x / (scale * 2^-24), one rare correction;
VCVTR on Cortex-M4/M7, a C rounding elsewhere) must give the engine's codes bit for bit,
including the engine's float32 fraction of v in (-1/2, 0). Rows mix
integers, values one ulp either side of integers and of +-128, halves, tiny and subnormal
values, zeros of both signs and scales up to the form's limit (and beyond it, where the
general path runs); single-element rows force the threshold k to 0, 1, 2^23 and 2^24 - 1
through the inverse of fmix32. The int8 gradient of a row with its sums (et_gradient_row_mode,
SMLAL / SMLAD pairs on Cortex-M4/M7) against numerics.requant.requantize for every rounding
mode, with exact ties, odd row lengths and multipliers on both sides of shift 32. Host build
here; the cross tests at the bottom run the same harness on Cortex-M (QEMU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgetrain.export import runner
from edgetrain.export.toolchains import available, target

GOLDEN = 0x9E3779B9
M32 = 0xFFFFFFFF

# reads the row count, then per row a kind and a head of three words, then n values:
#   kind 0 (n, scale, h) and n float32: writes the flag "the integer form covered it" (int32)
#          and the n int8 codes of et_quantize_row (stochastic)
#   kind 1 (n, M, mode) and n int32 gradient sums: writes the sums of the codes and of their
#          squares (int32), the flag "the high-word form ran" (int32), et_abs_max of the row
#          (int32) and the n codes (int32) of et_gradient_row_mode (stream seed 7), then the
#          sums and codes again with the high-word form switched off (the pair and general
#          paths)
#   kind 2 (n, scale, mode + 4 * (zero + 128)) and n float32: writes the flag "the per-tensor
#          fast form ran" (int32) and the n int8 codes (floor or nearest)
#   kind 3 (n, zero, 0), scale, s_g, mu, sigma, lr, n int8 codes padded to 4 bytes and n int32
#          gradient codes: writes et_stepped_row's n floats, lo and hi
HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#define et_update_weight et_update_weight_harness_copy
#define et_abs_max et_abs_max_harness_copy
#include "et_update.c"

static int gradient_row(FILE *f, FILE *out, const uint32_t *head)
{
    int32_t n = (int32_t)head[0], sums[2];
    float M;
    memcpy(&M, &head[1], 4);
    int32_t *g = malloc(4 * (size_t)n);
    if (!g || fread(g, 4, (size_t)n, f) != (size_t)n) return 1;
    int32_t *g2 = malloc(4 * (size_t)n);
    if (!g2) return 1;
    memcpy(g2, g, 4 * (size_t)n);
    et_stream s;
    et_stream_seed(&s, 7);
    uint32_t base = head[2] == ET_ROUND_STOCHASTIC ? et_stream_next(&s) : 0u;
    et_multiplier mul = et_multiplier_from(M);
    int32_t amax = et_abs_max(g, n);
    et_grad_hw hw = et_grad_hw_of(mul, (int)head[2], amax), none = hw;
    int32_t form = hw.h.form != ET_RQH_NONE;
    none.h.form = ET_RQH_NONE;                  /* the same row without the high-word form */
    et_gradient_row_mode(g, n, mul, (int)head[2], amax, &hw, base, 0, &sums[0], &sums[1]);
    fwrite(sums, 4, 2, out);
    fwrite(&form, 4, 1, out);
    fwrite(&amax, 4, 1, out);
    fwrite(g, 4, (size_t)n, out);
    et_gradient_row_mode(g2, n, mul, (int)head[2], amax, &none, base, 0, &sums[0], &sums[1]);
    fwrite(sums, 4, 2, out);
    fwrite(g2, 4, (size_t)n, out);
    free(g);
    free(g2);
    return 0;
}

/* kind 3: one kept row stepped (et_stepped_row): head (n, zero), then scale, s_g, mu, sigma,
 * lr, n int8 codes (padded to 4 bytes) and n int32 gradient codes; writes the n floats, lo
 * and hi */
static int stepped_row(FILE *f, FILE *out, const uint32_t *head)
{
    int32_t n = (int32_t)head[0], pad = (n + 3) & ~3;
    float k5[5], lo, hi;
    int8_t *w = malloc((size_t)pad);
    int32_t *g = malloc(4 * (size_t)n);
    float *o = malloc(4 * (size_t)n);
    if (!w || !g || !o || fread(k5, 4, 5, f) != 5 || fread(w, 1, (size_t)pad, f) != (size_t)pad ||
        fread(g, 4, (size_t)n, f) != (size_t)n)
        return 1;
    et_row_step r = {(int32_t)head[1], k5[0], k5[1], k5[2], k5[3], k5[4]};
    int32_t bound = 0;                          /* the tightest bound: the table's edges */
    for (int32_t i = 0; i < n; i++) bound = abs(g[i]) > bound ? abs(g[i]) : bound;
    et_stepped_row(&r, w, g, n, bound, o, &lo, &hi);
    fwrite(o, 4, (size_t)n, out);
    fwrite(&lo, 4, 1, out);
    fwrite(&hi, 4, 1, out);
    free(w);
    free(g);
    free(o);
    return 0;
}

/* kind 2: per-tensor codes of n floats (floor or nearest) with a zero point */
static int tensor_row(FILE *f, FILE *out, const uint32_t *head)
{
    int32_t n = (int32_t)head[0], mode = (int32_t)(head[2] & 3u), fast = 0;
    et_qparams qp = {0.0f, (int32_t)(head[2] >> 2) - 128};
    memcpy(&qp.scale, &head[1], 4);
    float *x = malloc(4 * (size_t)n);
    int8_t *q = malloc((size_t)n);
    if (!x || !q || fread(x, 4, (size_t)n, f) != (size_t)n) return 1;
#if ET_UPD_ASM
    float lo = x[0], hi = x[0];
    for (int32_t i = 1; i < n; i++) {
        lo = et_minf(lo, x[i]);
        hi = et_maxf(hi, x[i]);
    }
    fast = et_tensor_fast(mode, lo / qp.scale, hi / qp.scale, qp.zero);
    if (fast && mode == ET_ROUND_FLOOR) {
        et_quotients(x, n, qp.scale);
        et_floor_codes(x, q, n, qp.zero);
    } else if (fast) {
        et_nearest_codes(x, q, n, qp.scale, qp.zero);
    }
#endif
    for (int32_t i = 0; i < n && !fast; i++) q[i] = et_quantize(x[i], qp, (et_round_mode)mode, 0u);
    fwrite(&fast, 4, 1, out);
    fwrite(q, 1, (size_t)n, out);
    free(x);
    free(q);
    return 0;
}

int main(void)
{
    uint32_t rows, head[4];
    FILE *f = fopen("uq_in.bin", "rb"), *out = fopen("uq_out.bin", "wb");
    if (!f || !out || fread(&rows, 4, 1, f) != 1) return 3;
    for (uint32_t r = 0; r < rows; r++) {
        if (fread(head, 4, 4, f) != 4) return 3;
        if (head[0] >= 1 && head[0] <= 3) {
            if ((head[0] == 1 ? gradient_row : head[0] == 2 ? tensor_row : stepped_row)(
                    f, out, head + 1))
                return 3;
            continue;
        }
        int32_t n = (int32_t)head[1];
        float *x = malloc(4 * (size_t)n);
        int8_t *q = malloc((size_t)n);
        et_qparams qp = {0.0f, 0};
        memcpy(&qp.scale, &head[2], 4);
        if (!x || !q || fread(x, 4, (size_t)n, f) != (size_t)n) return 3;
        float lo = x[0], hi = x[0];
        for (int32_t i = 1; i < n; i++) {
            lo = et_minf(lo, x[i]);
            hi = et_maxf(hi, x[i]);
        }
        int form = et_stochastic_covers(lo / qp.scale, hi / qp.scale, qp);
        int32_t ceil = form != ET_SC_NONE;
        int in_range = et_maxf(-lo, hi) / qp.scale <= 1048576.0f;
        et_quantize_row(x, q, n, qp, ET_ROUND_STOCHASTIC, head[3], 0, in_range, form);
        fwrite(&ceil, 4, 1, out);
        fwrite(q, 1, (size_t)n, out);
        free(x);
        free(q);
    }
    fclose(out);
    return et_error;
}
"""


def fmix32(h: np.ndarray) -> np.ndarray:
    h = np.asarray(h, np.uint64) & M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h.astype(np.uint32)


def fmix32_inverse(b: int) -> int:
    """The h with fmix32(h) == b (every step of fmix32 is a bijection on uint32)."""
    b ^= b >> 16
    b = (b * pow(0xC2B2AE35, -1, 2**32)) & M32
    b ^= (b >> 13) ^ (b >> 26)
    b = (b * pow(0x85EBCA6B, -1, 2**32)) & M32
    return b ^ (b >> 16)


class FixedBits:
    """A stand-in for numerics.rounding.Stream that hands out given bits."""

    def __init__(self, bits: np.ndarray):
        self._bits = bits

    def bits(self, shape):
        return self._bits.reshape(shape)


def special_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """v = x / scale targets: integers, one ulp either side, halves, uniform, tiny, zeros."""
    ints = rng.integers(-128, 128, n).astype(np.float32)
    kind = rng.integers(0, 8, n)
    v = ints.copy()
    v[kind == 1] = np.nextafter(ints[kind == 1], np.float32(np.inf))
    v[kind == 2] = np.nextafter(ints[kind == 2], np.float32(-np.inf))
    v[kind == 3] = ints[kind == 3] + np.float32(0.5)
    v[kind == 4] = rng.uniform(-128, 128, (kind == 4).sum())
    v[kind == 5] = rng.uniform(-1, 1, (kind == 5).sum()) * 2.0 ** -rng.integers(1, 40, (kind == 5).sum())
    v[kind == 6] = rng.uniform(-2, 2, (kind == 6).sum())
    return np.clip(v, np.float32(-128), np.nextafter(np.float32(128), np.float32(0)))


def make_rows(rng: np.random.Generator) -> list[tuple[np.ndarray, np.float32, int]]:
    rows = []
    for r in range(48):
        n = int(rng.integers(1, 300))
        scale = np.float32(2.0 ** rng.uniform(-30, 1))  # below 2: the ceiling form's range
        if r % 12 == 5:
            scale = np.float32(2.0 ** -int(rng.integers(0, 40)))  # powers of two
        if r % 12 == 7:
            scale = np.float32(rng.uniform(2.0, 8.0))  # beyond the form: the general path
        x = (special_values(rng, n) * scale).astype(np.float32)
        if r % 12 == 3:  # subnormal and zero weights
            x[: n // 2] = (rng.integers(-50, 50, n // 2) * np.float32(1e-45)).astype(np.float32)
            x[-1:] = np.float32(-0.0)
        if r % 12 == 9 and n > 2:  # the extremes themselves: v = -128 and just below 128
            x[0] = np.float32(-128) * scale
            x[1] = np.nextafter(np.float32(128), np.float32(0)) * scale
        if r % 12 == 11:  # a value at v >= 128: the general path
            x[0] = np.float32(128.5) * scale
        rows.append((x, scale, int(rng.integers(0, 2**32))))
    for k in (0, 1, 2**23, 2**24 - 2, 2**24 - 1):  # forced thresholds, first or second element
        for v in (0.0, 1e-30, -1e-30, 5.0, -5.0, 2.5, -2.5, 127.0, -128.0, 0.9999999, -0.9999999):
            low = int(rng.integers(0, 256))
            h = fmix32_inverse((k << 8) | low)
            scale = np.float32(0.0123)
            x = np.array([v, -v], np.float32) * scale
            rows.append((x[:1], scale, h))
            rows.append((x[::-1].copy(), scale, (h - GOLDEN) & M32))
    scale = np.float32(2.0**-6)  # v = x / scale exact: thresholds at the rounding grid of v
    fine = [-0.49999997, -0.5 + 2.0**-24, -0.3, -0.1234567, -1e-7, -3e-9, 1.25 * 2.0**-24,
            1.75 * 2.0**-24, 0.3, 0.1234567, 1e-7, 2.0**-30]
    for v in np.array(fine, np.float32):
        big = float(v) * 2.0**24  # V, exact in float64
        r = int(np.round(big))  # ties to even, as float32 conversions
        ks = {r - 1, r, r + 1, int(np.ceil(big)), 2**24 + r - 1, 2**24 + r, 2**24 + r + 1}
        for k in sorted(q for q in ks if 0 <= q < 2**24):
            h = fmix32_inverse((k << 8) | int(rng.integers(0, 256)))
            rows.append((np.array([v * scale], np.float32), scale, h))
            at = int(rng.integers(0, 8))  # the same element inside a row of four-element turns
            x = (special_values(rng, 9) * scale).astype(np.float32)
            x[at] = v * scale
            rows.append((x, scale, (h - at * GOLDEN) & M32))
    return rows


def expected(x: np.ndarray, scale: np.float32, h: int) -> np.ndarray:
    from edgetrain.numerics.qparams import QParams, quantize

    bits = fmix32((h + np.arange(len(x), dtype=np.uint64) * GOLDEN) & M32)
    return quantize(x, QParams(scale, 0), "stochastic", FixedBits(bits))


class UpdateHarness:
    def __init__(self, target_name: str, build_dir: Path):
        self.dir = Path(build_dir)
        src = self.dir / "uq_harness.c"
        src.write_text(HARNESS)
        self.prog = runner.build(target(target_name), [src], self.dir, name=f"uq_{target_name}")

    def _run(self, records: list[bytes]) -> bytes:
        (self.dir / "uq_in.bin").write_bytes(np.uint32(len(records)).tobytes()
                                             + b"".join(records))
        res = runner.run(self.prog, self.dir, timeout=300)
        assert res.exit_code == 0, (res.exit_code, res.stdout, res.stderr)
        return (self.dir / "uq_out.bin").read_bytes()

    def run(self, rows) -> list[tuple[int, np.ndarray]]:
        raw = self._run([np.array([0, len(x)], np.uint32).tobytes() + np.float32(scale).tobytes()
                         + np.array([h], np.uint32).tobytes() + x.astype(np.float32).tobytes()
                         for x, scale, h in rows])
        out, pos = [], 0
        for x, _, _ in rows:
            flag = int(np.frombuffer(raw[pos:pos + 4], np.int32)[0])
            out.append((flag, np.frombuffer(raw[pos + 4:pos + 4 + len(x)], np.int8)))
            pos += 4 + len(x)
        return out

    def tensor_codes(self, rows) -> list[tuple[int, np.ndarray]]:
        raw = self._run([np.array([2, len(x)], np.uint32).tobytes() + np.float32(sc).tobytes()
                         + np.array([MODES[mode] + 4 * (zero + 128)], np.uint32).tobytes()
                         + x.astype(np.float32).tobytes() for x, sc, zero, mode in rows])
        out, pos = [], 0
        for x, _, _, _ in rows:
            flag = int(np.frombuffer(raw[pos:pos + 4], np.int32)[0])
            out.append((flag, np.frombuffer(raw[pos + 4:pos + 4 + len(x)], np.int8)))
            pos += 4 + len(x)
        return out

    def gradients(self, rows) -> list[tuple[int, int, list[tuple[int, int, np.ndarray]]]]:
        """Per row: the high-word flag, the row's largest |g| and (s1, s2, codes) with and
        without that form."""
        raw = self._run([np.array([1, len(g)], np.uint32).tobytes() + np.float32(M).tobytes()
                         + np.array([MODES[mode]], np.uint32).tobytes()
                         + g.astype(np.int32).tobytes() for g, M, mode in rows])
        out, pos = [], 0
        for g, _, _ in rows:
            n = len(g)
            v = np.frombuffer(raw[pos:pos + 24 + 8 * n], np.int32)
            runs = [(int(v[0]), int(v[1]), v[4:4 + n]),
                    (int(v[4 + n]), int(v[5 + n]), v[6 + n:])]
            out.append((int(v[2]), int(v[3]), runs))
            pos += 24 + 8 * n
        return out

    def stepped(self, rows) -> list[tuple[np.ndarray, np.float32, np.float32]]:
        recs = []
        for w, g, zero, consts in rows:
            pad = np.zeros((-len(w)) % 4, np.int8)
            recs.append(np.array([3, len(w), zero, 0], np.int32).tobytes()
                        + np.asarray(consts, np.float32).tobytes() + w.astype(np.int8).tobytes()
                        + pad.tobytes() + g.astype(np.int32).tobytes())
        raw = self._run(recs)
        out, pos = [], 0
        for w, _, _, _ in rows:
            v = np.frombuffer(raw[pos:pos + 4 * len(w) + 8], np.float32)
            out.append((v[:-2], v[-2], v[-1]))
            pos += 4 * len(w) + 8
        return out


MODES = {"floor": 0, "nearest": 1, "stochastic": 2}


def gradient_rows(rng: np.random.Generator) -> list[tuple[np.ndarray, np.float32, str]]:
    """Rows of int32 gradient sums with multipliers 2^-40 .. 127 (shifts on both sides of 32),
    exact powers of two with odd multiples of half a step (ties of nearest), int32 extremes
    and odd lengths (the pair loops' last element)."""
    rows = []
    for r in range(60):
        n = int(rng.integers(1, 200))
        mag = int(rng.integers(0, 31))
        g = rng.integers(-(2**mag), 2**mag + 1, n).astype(np.int64)
        if r % 2 == 0:  # a power-of-two multiplier and exact ties (shift 25..32: s = 32)
            j = int(rng.integers(2, 10)) if r % 4 == 0 else int(rng.integers(1, 40))
            M = np.float32(2.0**-j)
            half = 2 ** min(int(rng.integers(0, 9)), max(29 - j, 0))  # mostly unsaturated
            g = (2 * rng.integers(-half, half, n) + 1) << (j - 1)
        else:
            M = np.float32(rng.uniform(1, 2) * 2.0 ** -int(rng.integers(-6, 41)))
        if r % 10 == 3 and n > 2:
            g[:2] = [2**31 - 1, -(2**31)]
        g = np.clip(g, -(2**31), 2**31 - 1)
        rows.append((g.astype(np.int32), M, ("floor", "nearest", "stochastic")[r % 3]))
    for r in range(16):  # the engine's own multipliers: scale / s_g with s_g from the largest |g|
        n = int(rng.integers(1, 200))
        g = rng.integers(-(2 ** int(rng.integers(1, 31))), 2**30, n).astype(np.int64)
        g = np.clip(g, -(2**31) + 1, 2**31 - 1).astype(np.int32)
        scale = np.float32(2.0 ** rng.uniform(-20, -5))
        s_g = np.maximum((np.float32(np.abs(g.astype(np.int64)).max()) * scale) / np.float32(127),
                         np.float32(2.0**-40))
        rows.append((g, np.float32(scale / s_g), ("floor", "nearest")[r % 2]))
    return rows


def compare_gradients(h: UpdateHarness, seed: int, high_word: bool) -> None:
    """Both forms against the engine; high_word: the build has the SMMLA form (M4 / M7)."""
    from edgetrain.numerics.requant import requantize
    from edgetrain.numerics.rounding import Stream

    rows = gradient_rows(np.random.default_rng(seed))
    got = h.gradients(rows)
    for (g, M, mode), (_, amax, runs) in zip(rows, got):
        assert amax == min(int(np.abs(g.astype(np.int64)).max()), 2**31 - 1)
        want = requantize(g.astype(np.int64), M, 0, mode, Stream(7)).astype(np.int64)
        for s1, s2, q in runs:
            np.testing.assert_array_equal(q, want)
            assert (s1, s2) == (int(want.sum()), int((want * want).sum()))
    flags = np.array([f for f, _, _ in got])
    if high_word:
        assert flags.mean() > 0.3 and (flags == 0).any(), "both gradient paths should run"
    else:
        assert not flags.any(), "the high-word form is for ARMv7E-M builds only"


def stepped_rows(rng: np.random.Generator) -> list[tuple]:
    """Rows for et_stepped_row: short and long (the four-element turns from 24 on, the step
    table from 45 on), zero points 0 and not, mixed-sign, one-signed and constant rows,
    extremes early and late, and constants that make infinities and NaN (sigma 0, huge lr)."""
    rows = []
    for r in range(40):
        n = (int(rng.integers(1, 40)) if r % 4 == 0 else
             int(rng.integers(400, 900)) if r % 8 == 3 else int(rng.integers(24, 300)))
        zero = 0 if r % 3 else int(rng.integers(-128, 128))
        w = rng.integers(-128, 128, n)
        g = rng.integers(-128, 128, n)
        if r % 8 == 3:  # long rows: codes of every magnitude bound (step tables of all sizes)
            bound = int(rng.integers(0, 129))
            g = rng.integers(-bound, min(bound, 127) + 1, n)
        if r % 5 == 1:  # one-signed row: every stepped weight positive
            w, g = rng.integers(60, 128, n), rng.integers(-3, 4, n)
            zero = 0
        if r % 5 == 2 and n >= 3:  # a narrow row with a few far extremes late in it
            w, g = rng.integers(-3, 4, n), rng.integers(-3, 4, n)
            w[-3:] = [127, -128, 100]
        if r % 7 == 3:  # constant rows: ties everywhere
            w, g = np.full(n, w[0]), np.full(n, g[0])
        consts = [2.0 ** rng.uniform(-10, -4), 2.0 ** rng.uniform(-12, -6),
                  rng.uniform(-1e-3, 1e-3), 2.0 ** rng.uniform(-12, -6), 2.0 ** rng.uniform(-8, -3)]
        if r % 10 == 7:  # sigma 0 and mu 0: +-inf steps, NaN (0 / 0) where g == 0
            consts[2:4] = [0.0, 0.0]
            g[rng.integers(0, n, 1 + n // 8)] = 0
            g[0] = 0 if r % 20 == 7 else g[0]  # the first element NaN: lo and hi start NaN
        if r % 10 == 9:
            consts[4] = 3e38  # lr * quotient overflows to +-inf
        rows.append((w.astype(np.int8), g.astype(np.int32), zero, np.float32(consts)))
    for at, n in ((21, 64), (23, 64), (301, 512)):  # one NaN (inf - inf) among finite
        w, g = np.zeros(n, np.int8), rng.integers(-1, 2, n).astype(np.int32)  # weights
        w[1:9], g[1:9] = [-1, 1, 1, -1, -1, -1, 1, 1], [1, -1, 1, -1, 0, 0, 1, 1]
        w[at], g[at] = 3, 3
        rows.append((w, g, 0, np.float32([2e38, 2e38, 0.0, 1.0, 0.25])))
    return rows


def pair_range(x: np.ndarray) -> tuple[np.float32, np.float32]:
    """et_stepped_row's lo / hi, comparison for comparison: the first element, then pairs
    (the smaller against lo, the larger against hi), then the last element when n is even.
    min(small, lo) is `lo if lo < small else small`, the C's order (it matters for NaN)."""
    lo = hi = x[0]
    for a, b in zip(x[1:-1:2], x[2::2]):
        small, large = (a, b) if a < b else (b, a)
        lo = min(small, lo)
        hi = max(large, hi)
    if len(x) % 2 == 0:
        lo = min(x[-1], lo)
        hi = max(x[-1], hi)
    return lo, hi


def compare_stepped(h: UpdateHarness, seed: int) -> None:
    rows = stepped_rows(np.random.default_rng(seed))
    with np.errstate(all="ignore"):
        for (w, g, zero, (sc, sg, mu, sig, lr)), (o, lo, hi) in zip(rows, h.stepped(rows)):
            wf = (w.astype(np.int32) - zero).astype(np.float32) * sc
            want = wf - lr * ((g.astype(np.float32) * sg - mu) / sig)  # float32 throughout
            assert_same_floats(o, want)
            assert_same_floats(np.float32([lo, hi]), np.float32(pair_range(want)))


def assert_same_floats(got: np.ndarray, want: np.ndarray) -> None:
    """Bit for bit, except that a NaN's sign and payload are the platform's."""
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def tensor_rows(rng: np.random.Generator) -> list[tuple[np.ndarray, np.float32, int, str]]:
    """Per-tensor rows (affine zero points) of floor and nearest: exact ties of both signs,
    values one ulp off ties and integers, tiny values; some beyond the fast forms' range."""
    rows = []
    for r in range(40):
        n = int(rng.integers(1, 150))
        zero = int(rng.integers(-128, 128))
        scale = np.float32(2.0 ** rng.uniform(-20, 3))
        v = (rng.integers(-120, 120, n) + np.float32(0.5)).astype(np.float32) - zero * (r % 2)
        kind = rng.integers(0, 5, n)
        v[kind == 1] = np.nextafter(v[kind == 1], np.float32(np.inf))
        v[kind == 2] = np.nextafter(v[kind == 2], np.float32(-np.inf))
        v[kind == 3] = np.floor(v[kind == 3])
        v[kind == 4] = rng.uniform(-1, 1, (kind == 4).sum()) * 2.0 ** -rng.integers(1, 30)
        if r % 10 == 9:
            v[0] = 300.0  # beyond the nearest form: the general path
        scale = np.float32(2.0 ** -int(rng.integers(0, 10))) if r % 3 == 0 else scale
        x = (v.astype(np.float32) * scale).astype(np.float32)  # exact for a power of two
        rows.append((x, scale, zero, ("floor", "nearest")[r % 4 // 2]))
    return rows


def compare_tensor_codes(h: UpdateHarness, seed: int, fast_expected: bool) -> None:
    from edgetrain.numerics.qparams import QParams, quantize

    rows = tensor_rows(np.random.default_rng(seed))
    got = h.tensor_codes(rows)
    for (x, scale, zero, mode), (fast, codes) in zip(rows, got):
        want = quantize(x, QParams(scale, zero), mode)
        np.testing.assert_array_equal(codes, want)
    flags = np.array([f for f, _ in got])
    if fast_expected:
        assert flags.mean() > 0.6 and (flags == 0).any(), "both paths should run"


def compare(h: UpdateHarness, seed: int) -> None:
    rows = make_rows(np.random.default_rng(seed))
    got = h.run(rows)
    for (x, scale, hb), (_, codes) in zip(rows, got):
        np.testing.assert_array_equal(codes, expected(x, scale, hb))
    flags = np.array([f for f, _ in got])
    assert flags.mean() > 0.8, "the integer form should cover most rows"
    assert (flags == 0).any(), "the general path should run for some rows too"


OK, WHY = available("host")


@pytest.mark.skipif(not OK, reason=f"host C compiler missing: {WHY}")
def test_update_rows_match_engine_host(tmp_path):
    h = UpdateHarness("host", tmp_path)
    for seed in range(3):
        compare(h, seed)
        compare_gradients(h, seed, high_word=False)
        compare_tensor_codes(h, seed, fast_expected=False)
        compare_stepped(h, seed)


CROSS_OK, CROSS_WHY = available("cortex-m4")


@pytest.mark.skipif(not CROSS_OK, reason=f"cross toolchain missing: {CROSS_WHY}")
@pytest.mark.parametrize("name", ["cortex-m0plus", "cortex-m4", "cortex-m7"])
def test_update_rows_match_engine_cortex_m(tmp_path, name):
    h = UpdateHarness(name, tmp_path)
    compare(h, 10)
    compare_gradients(h, 11, high_word=name != "cortex-m0plus")
    compare_tensor_codes(h, 12, fast_expected=name != "cortex-m0plus")
    compare_stepped(h, 13)
