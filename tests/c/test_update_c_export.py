"""The update's Cortex-M4/M7 code paths (et_update.c: VCVTR under a switched rounding mode,
fixed-point VCVT, the written-out stepped and gradient pairs, the per-tensor rows in chunks
of 64) inside whole training steps, against the Python int8 engine under QEMU: every numerics
configuration (per-channel stochastic `default` and `pow2`, per-tensor `paper` with floor and
`nearest`), full and partial updates (dropped rows take the general path), the plain C forms
(-DET_NO_SIMD) on the M4's FPU, every traced tensor of every step equal.
tests/c/test_update_c_rounding.py checks the row loops alone over extreme values."""

import pytest
from graphs import calib

from edgetrain.export.exporter import export_project
from edgetrain.export.toolchains import available
from edgetrain.export.verify import verify
from edgetrain.ir import GraphBuilder

OK, WHY = available("cortex-m4")
pytestmark = pytest.mark.skipif(not OK, reason=f"cross toolchain missing: {WHY}")


def wide_mlp():
    """linear 457 -> 12, ReLU, linear -> 5: rows longer than one chunk, of odd length, long
    enough for the step table (et_update.c's ET_TABLE_MIN_K)."""
    b = GraphBuilder("wide", (457,), seed=3)
    t = b.add("relu", b.add("linear", "input", out_features=12))
    return b.build(b.add("linear", t, out_features=5), num_classes=5)


@pytest.mark.parametrize(("numerics", "policy", "batch", "core", "plain"),
                         [("default", "full", 1, "cortex-m4", False),
                          ("paper", "partial", 2, "cortex-m4", False),
                          ("nearest", "full", 1, "cortex-m7", False),
                          ("pow2", "partial", 1, "cortex-m4", True),
                          # batch 7: the linear forward's four-sample, two-sample and
                          # one-sample kernels in turn, over an odd n_in (457) and n_out (5)
                          ("default", "partial", 7, "cortex-m4", False)])
def test_update_bit_exact_on_cortex_m(tmp_path, monkeypatch, numerics, policy, batch, core,
                                      plain):
    if plain:  # the C forms on the FPU: the project Makefile reads EXTRA_CFLAGS
        monkeypatch.setenv("EXTRA_CFLAGS", "-DET_NO_SIMD")
    g = wide_mlp()
    export_project(g, "imxrt1062", tmp_path, policy=policy, batch=batch, calibration=calib(g),
                   numerics=numerics, lr=0.02)
    r = verify(tmp_path, core, steps=10)
    assert r.bit_exact, f"{numerics} {policy}: {r.mismatches[0].describe()}"
