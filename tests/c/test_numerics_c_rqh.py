"""The runtime's high-word requantization (et_rqh_* in et_numerics.h: one SMMLA or SMMLAR and
one SSAT per int8, used by the engine's epilogues for floor and nearest rounding) against the
specification, edgetrain.numerics.requant.requantize, integer for integer: random and extreme
accumulators under a stated bound, multipliers over every shift, exact powers of two and
accumulators that are ties (which must fall back to the et_rq32 forms). Host here; the same
harness on Cortex-M under QEMU when the cross toolchain is installed (SMMLA / SMMLAR / SSAT
with shift there, the plain-C emulation on ARMv6-M)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgetrain.export import runner
from edgetrain.export.toolchains import available, target

MODES = {"floor": 0, "nearest": 1}

# reads n, mode and n records (acc int32, M float32, zero int32, amax uint32); writes per
# record the form chosen (ET_RQH_*) and the int8 (et_rqh_int8 when a form applies, else the
# et_requantize32 reference path) as int32
HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "et_numerics.h"

typedef struct { int32_t acc; float M; int32_t zero; uint32_t amax; } rec;

int main(void)
{
    uint32_t head[2];
    FILE *f = fopen("rqh_in.bin", "rb"), *out = fopen("rqh_out.bin", "wb");
    if (!f || !out || fread(head, 4, 2, f) != 2) return 3;
    rec *v = malloc(sizeof(rec) * (head[0] ? head[0] : 1));
    if (!v || fread(v, sizeof(rec), head[0], f) != head[0]) return 3;
    for (uint32_t i = 0; i < head[0]; i++) {
        et_multiplier mul = et_multiplier_from(v[i].M);
        et_rqh h = et_rqh_prepare(mul, v[i].zero, (et_round_mode)head[1], v[i].amax);
        int32_t res[2] = {h.form, 0};
        res[1] = h.form != ET_RQH_NONE
                     ? et_rqh_int8(&h, v[i].acc)
                     : et_requantize32(v[i].acc, mul, v[i].zero, (et_round_mode)head[1], 0,
                                       ET_QMIN, ET_QMAX);
        fwrite(res, 4, 2, out);
    }
    fclose(out);
    return et_error;
}
"""

REC = np.dtype([("acc", "<i4"), ("M", "<f4"), ("zero", "<i4"), ("amax", "<u4")])


class RqhHarness:
    def __init__(self, target_name: str, build_dir: Path):
        self.dir = Path(build_dir)
        src = self.dir / "rqh_harness.c"
        src.write_text(HARNESS)
        self.prog = runner.build(target(target_name), [src], self.dir, name=f"rqh_{target_name}")

    def run(self, recs: np.ndarray, mode: str) -> np.ndarray:
        head = np.array([len(recs), MODES[mode]], np.uint32).tobytes()
        (self.dir / "rqh_in.bin").write_bytes(head + recs.tobytes())
        res = runner.run(self.prog, self.dir, timeout=300)
        assert res.exit_code == 0, (res.exit_code, res.stdout, res.stderr)
        return np.frombuffer((self.dir / "rqh_out.bin").read_bytes(), np.int32).reshape(-1, 2)


def records(rng: np.random.Generator, n: int) -> np.ndarray:
    """Row bounds of every size, accumulators inside them (a quarter exact multiples of a
    power of two, so that ties occur), multipliers over shifts 20..60 with and without trailing
    zeros (exact powers of two among them), and the int32 extremes."""
    r = np.zeros(n, REC)
    bits = rng.integers(0, 32, n)
    amax = np.minimum(2.0 ** bits * rng.uniform(0.5, 1.0, n), 2.0**31).astype(np.int64)
    r["amax"] = amax
    acc = rng.integers(-amax, amax + 1)
    pow2 = rng.random(n) < 0.25
    k = rng.integers(0, 31, n)
    acc[pow2] = (np.sign(acc[pow2]) * ((np.abs(acc[pow2]) >> k[pow2]) << k[pow2]))
    r["acc"] = np.clip(acc, -(2**31), 2**31 - 1)
    shift = rng.integers(20, 61, n)
    mant = rng.integers(2**23, 2**24, n)
    strip = rng.integers(0, 24, n)
    mant = (mant >> strip) << strip                          # trailing zeros
    M = mant.astype(np.float64) * 2.0 ** -shift.astype(np.float64)
    exact = rng.random(n) < 0.2
    M[exact] = 2.0 ** -rng.integers(0, 40, exact.sum()).astype(np.float64)
    r["M"] = M.astype(np.float32)
    r["zero"] = rng.integers(-128, 128, n)
    r["acc"][:6] = [0, -(2**31), 2**31 - 1, -1, 1, -(2**30)]
    r["amax"][:6] = 2**31
    return r


def compare(h: RqhHarness, rng: np.random.Generator, mode: str, n: int) -> None:
    from edgetrain.numerics.requant import requantize

    recs = records(rng, n)
    got = h.run(recs, mode)
    want = requantize(recs["acc"].astype(np.int64)[None, :], recs["M"], recs["zero"], mode,
                      axis=1)[0]
    np.testing.assert_array_equal(got[:, 1], want.astype(np.int32))
    form = got[:, 0]
    assert (form != 0).mean() > 0.5, "the high-word form should cover most records"
    assert (form == 0).any(), "the fallback (ties, far shifts) should be exercised"
    if mode == "nearest":
        assert (form == 1).any() and (form == 2).any(), "SMMLA and SMMLAR both exercised"


def _harness(name: str, tmp_path_factory) -> RqhHarness:
    ok, why = available(name)
    if not ok:
        pytest.skip(f"{name} toolchain missing ({why}): install gcc / arm-none-eabi-gcc, qemu")
    return RqhHarness(name, tmp_path_factory.mktemp(f"rqh_{name}"))


@pytest.mark.parametrize("mode", list(MODES))
def test_rqh_matches_engine_host(tmp_path_factory, mode):
    h = _harness("host", tmp_path_factory)
    compare(h, np.random.default_rng(70 + MODES[mode]), mode, n=30000)


@pytest.mark.parametrize("name", ["cortex-m0plus", "cortex-m4", "cortex-m7"])
def test_rqh_matches_engine_on_cortex_m(tmp_path_factory, name):
    h = _harness(name, tmp_path_factory)
    for mode, code in MODES.items():
        compare(h, np.random.default_rng(80 + code), mode, n=4000)


def test_ties_are_never_given_to_the_high_word_form(tmp_path_factory):
    """A row bound that admits a tie of nearest rounding keeps the et_rq32 form."""
    h = _harness("host", tmp_path_factory)
    r = np.zeros(4, REC)
    r["M"] = np.float32(2.0**-8)                  # m = 2^23, shift 31: ties at acc = 128 * odd
    r["acc"] = [128, -128, 384, -384]
    r["amax"] = [128, 128, 1 << 20, 127]          # the last bound is false for its acc
    got = h.run(r[:3], "nearest")
    np.testing.assert_array_equal(got[:, 0], [0, 0, 0])
    np.testing.assert_array_equal(got[:, 1], [1, -1, 2])    # ties away from zero
    assert h.run(r[3:], "nearest")[0, 0] != 0     # a bound below 2^T admits the form


# int16 times a multiplier (the error fold, add / merge terms): reads n, mode and n records
# (three int16 values, M float32, emax uint32); writes per record sh of the et_rqw form (0:
# none) and the three results (et_rqw_span: one pair of a word and one scalar tail; the
# et_requantize32 path when no form applies) as int32
FOLD_HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "et_numerics.h"

typedef struct { int16_t e[4]; float M; uint32_t emax; } rec;

int main(void)
{
    uint32_t head[2];
    FILE *f = fopen("rqw_in.bin", "rb"), *out = fopen("rqw_out.bin", "wb");
    if (!f || !out || fread(head, 4, 2, f) != 2) return 3;
    uint32_t n = head[0];
    et_round_mode mode = (et_round_mode)head[1];
    rec *v = malloc(sizeof(rec) * (n ? n : 1));
    if (!v || fread(v, sizeof(rec), n, f) != n) return 3;
    for (uint32_t i = 0; i < n; i++) {
        et_multiplier mul = et_multiplier_from(v[i].M);
        et_rqw h = et_rqw_prepare(mul, v[i].emax, mode);
        int32_t res[4] = {h.sh, 0, 0, 0};
        if (h.sh) {
            et_rqw_span(v[i].e + (i & 1), 3, &h);   /* word-aligned and not */
            for (int k = 0; k < 3; k++) res[k + 1] = v[i].e[k + (i & 1)];
        } else {
            for (int k = 0; k < 3; k++)
                res[k + 1] = et_requantize32(v[i].e[k + (i & 1)], mul, 0, mode, 0,
                                             -2147483647 - 1, 2147483647);
        }
        fwrite(res, 4, 4, out);
    }
    fclose(out);
    return et_error;
}
"""

FOLD_REC = np.dtype([("e", "<i2", 4), ("M", "<f4"), ("emax", "<u4")])


def fold_records(rng: np.random.Generator, n: int) -> np.ndarray:
    """Centred int8 errors (|e| <= 255, some multiples of powers of two) and the fold's
    multipliers (w_scale ratio * 64: in (0, 64], exact powers of two among them)."""
    r = np.zeros(n, FOLD_REC)
    emax = rng.choice([255, 255, 127, 16, 1], n)[:, None]
    r["emax"] = emax[:, 0]
    e = rng.integers(-emax, emax + 1, (n, 4))
    k = rng.integers(0, 8, (n, 1))
    tie = rng.random((n, 1)) < 0.3
    r["e"] = np.where(tie, np.sign(e) * ((np.abs(e) >> k) << k), e)   # still within +-emax
    M = rng.uniform(0.0, 1.0, n) ** 3 * 64.0
    exact = rng.random(n) < 0.25
    M[exact] = 64.0 * 2.0 ** -rng.integers(0, 20, exact.sum()).astype(np.float64)
    r["M"] = M.astype(np.float32)
    return r


def fold_compare(name: str, tmp_path_factory, rng: np.random.Generator, n: int,
                 mode: str) -> None:
    from edgetrain.numerics.requant import multiplier
    from edgetrain.numerics.rounding import round_shift

    ok, why = available(name)
    if not ok:
        pytest.skip(f"{name} toolchain missing ({why}): install gcc / arm-none-eabi-gcc, qemu")
    d = tmp_path_factory.mktemp(f"rqw_{name}_{mode}")
    (d / "rqw.c").write_text(FOLD_HARNESS)
    prog = runner.build(target(name), [d / "rqw.c"], d, name=f"rqw_{name}")
    recs = fold_records(rng, n)
    head = np.array([n, MODES[mode]], np.uint32).tobytes()
    (d / "rqw_in.bin").write_bytes(head + recs.tobytes())
    res = runner.run(prog, d, timeout=300)
    assert res.exit_code == 0, (res.exit_code, res.stdout, res.stderr)
    got = np.frombuffer((d / "rqw_out.bin").read_bytes(), np.int32).reshape(-1, 4)
    off = np.arange(n) & 1
    e = np.stack([recs["e"][np.arange(n), off + k] for k in range(3)], 1).astype(np.int64)
    m, shift = multiplier(recs["M"])
    want = round_shift(e * m[:, None], shift[:, None], mode)
    np.testing.assert_array_equal(got[:, 1:], want.astype(np.int32))
    assert (got[:, 0] == 8).any() and (got[:, 0] == 16).any() and (got[:, 0] == 0).any()
    assert (got[:, 0] != 0).mean() > 0.5


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", ["host", "cortex-m0plus", "cortex-m4", "cortex-m7"])
def test_int16_scaling_matches_engine(tmp_path_factory, name, mode):
    fold_compare(name, tmp_path_factory, np.random.default_rng(90 + MODES[mode]),
                 20000 if name == "host" else 4000, mode)
