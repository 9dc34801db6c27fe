"""The runtime's 32-bit requantization (et_rq32_* in et_numerics.h: one SMLAL and one shift of
the high word; the engine's requantization of accumulators, errors and gradients uses it)
against the specification, edgetrain.numerics.rounding.round_shift / requant.requantize,
integer for integer over random and extreme accumulators, every shift and every rounding
mode. Host build here; tests/cross/test_requant_numerics_cross.py runs the same harness on
Cortex-M."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgetrain.export import runner
from edgetrain.export.toolchains import available, target

OK, WHY = available("host")
MODES = {"floor": 0, "nearest": 1, "stochastic": 2}

# reads n, mode, seed and n records (acc int32, M float32, zero int32, acc_bits int32); writes
# per record: the form (0 general, 1 fast, 2 fast with the zero folded in), round_shift(acc *
# m, shift) (the rq32 form when fast, et_round_shift otherwise) as int64, and the int8
# requantization with the zero point
HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "et_numerics.h"

typedef struct { int32_t acc; float M; int32_t zero, acc_bits; } rec;

static int32_t shift_of(const et_rq32 *r, int32_t acc, int mode, uint32_t bits)
{
    switch (mode) {
    case ET_ROUND_FLOOR: return et_rq32_shift_small(r, acc, ET_ROUND_FLOOR, bits);
    case ET_ROUND_NEAREST: return et_rq32_shift_small(r, acc, ET_ROUND_NEAREST, bits);
    default: return et_rq32_shift_small(r, acc, ET_ROUND_STOCHASTIC, bits);
    }
}

static int8_t int8_of(const et_rq32 *r, int32_t acc, int32_t zero, int mode, uint32_t bits)
{
    switch (mode) {
    case ET_ROUND_FLOOR: return et_rq32_int8(r, acc, zero, ET_ROUND_FLOOR, bits);
    case ET_ROUND_NEAREST: return et_rq32_int8(r, acc, zero, ET_ROUND_NEAREST, bits);
    default: return et_rq32_int8(r, acc, zero, ET_ROUND_STOCHASTIC, bits);
    }
}

int main(void)
{
    uint32_t head[3];
    FILE *f = fopen("rq_in.bin", "rb"), *out = fopen("rq_out.bin", "wb");
    if (!f || !out || fread(head, 4, 3, f) != 3) return 3;
    rec *v = malloc(sizeof(rec) * (head[0] ? head[0] : 1));
    if (!v || fread(v, sizeof(rec), head[0], f) != head[0]) return 3;
    et_stream s;
    et_stream_seed(&s, head[2]);
    uint32_t base = head[1] == ET_ROUND_STOCHASTIC ? et_stream_next(&s) : 0u;
    for (uint32_t i = 0; i < head[0]; i++) {
        et_rq32 r = v[i].acc_bits == 31
                        ? et_rq32_prepare_zero(et_multiplier_from(v[i].M), v[i].zero)
                        : et_rq32_prepare(et_multiplier_from(v[i].M), v[i].acc_bits);
        uint32_t bits = et_bits(base, i);
        int64_t res[3] = {r.fast + r.zfold, 0, 0};
        if (r.fast) {
            res[1] = shift_of(&r, v[i].acc, (int)head[1], bits);
            res[2] = r.amul == 1 ? int8_of(&r, v[i].acc, v[i].zero, (int)head[1], bits)
                                 : et_ssat8(et_ssat16((int32_t)res[1]) + v[i].zero);
        } else {
            res[1] = et_round_shift((int64_t)v[i].acc * r.mul.m, r.mul.shift,
                                    (et_round_mode)head[1], bits);
            res[2] = et_requantize32(v[i].acc, r.mul, v[i].zero, (et_round_mode)head[1], bits,
                                     ET_QMIN, ET_QMAX);
        }
        fwrite(res, 8, 3, out);
    }
    fclose(out);
    return et_error;
}
"""


class RqHarness:
    def __init__(self, target_name: str, build_dir: Path):
        self.dir = Path(build_dir)
        src = self.dir / "rq_harness.c"
        src.write_text(HARNESS)
        self.prog = runner.build(target(target_name), [src], self.dir, name=f"rq_{target_name}")

    def run(self, recs: np.ndarray, mode: str, seed: int) -> np.ndarray:
        head = np.array([len(recs), MODES[mode], seed], np.uint32).tobytes()
        (self.dir / "rq_in.bin").write_bytes(head + recs.tobytes())
        res = runner.run(self.prog, self.dir, timeout=300)
        assert res.exit_code == 0, (res.exit_code, res.stdout, res.stderr)
        return np.frombuffer((self.dir / "rq_out.bin").read_bytes(), np.int64).reshape(-1, 3)


REC = np.dtype([("acc", "<i4"), ("M", "<f4"), ("zero", "<i4"), ("acc_bits", "<i4")])


def records(rng: np.random.Generator, n: int) -> np.ndarray:
    """Accumulators of every magnitude (and the int32 extremes), multipliers over every shift
    (exact powers of two make ties), zero points of int8 tensors, small-accumulator rows."""
    r = np.zeros(n, REC)
    r["acc_bits"] = rng.choice([31, 31, 31, 16, 9, 8], n)
    mag = rng.integers(0, r["acc_bits"] + 1)
    acc = rng.integers(-(2**31), 2**31, n, dtype=np.int64) >> (31 - mag)
    limit = 2 ** r["acc_bits"].astype(np.int64) - 1
    r["acc"] = np.clip(acc, -limit, limit)
    r["acc"][:8] = [0, 1, -1, 2**31 - 1, -(2**31), -(2**31) + 1, 3, -3]
    r["acc_bits"][:8] = 31
    shift = rng.integers(1, 66, n)
    M = rng.uniform(1.0, 2.0, n) * 2.0 ** (23 - shift)
    ties = rng.random(n) < 0.25
    M[ties] = 2.0 ** -rng.integers(-6, 40, ties.sum()).astype(np.float64)
    r["M"] = np.minimum(M, 127.0).astype(np.float32)
    r["M"][8:12] = [0.0, 1e-40, 127.99999, 2.0**-39]
    r["zero"] = rng.integers(-128, 128, n)
    return r


def compare(h: RqHarness, rng: np.random.Generator, mode: str, n: int = 6000) -> None:
    from edgetrain.numerics.requant import multiplier, requantize
    from edgetrain.numerics.rounding import Stream, round_shift

    recs = records(rng, n)
    seed = int(rng.integers(1, 2**31))
    got = h.run(recs, mode, seed)
    m, sh = multiplier(recs["M"])
    acc = recs["acc"].astype(np.int64)
    np.testing.assert_array_equal(got[:, 1], round_shift(acc * m, sh, mode, Stream(seed)))
    want8 = requantize(acc[None, :], recs["M"], recs["zero"], mode, Stream(seed), axis=1)[0]
    np.testing.assert_array_equal(got[:, 2], want8.astype(np.int64))
    fast = got[:, 0].astype(bool)
    assert fast.mean() > 0.5, "the fast form should cover most records"
    assert (fast & (recs["acc_bits"] < 31)).any() and (~fast).any()
    folded = got[:, 0] == 2
    assert folded.any() and (fast & ~folded).any(), "both int8 forms should be exercised"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    return RqHarness("host", tmp_path_factory.mktemp("rq_host"))


@pytest.mark.skipif(not OK, reason=f"host C compiler missing: {WHY}")
@pytest.mark.parametrize("mode", list(MODES))
def test_rq32_matches_engine_host(host, mode):
    compare(host, np.random.default_rng(40 + MODES[mode]), mode, n=20000)
