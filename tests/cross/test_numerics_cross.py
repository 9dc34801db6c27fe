"""The runtime's C primitives on Cortex-M (soft-float M0+, hard-float M4/M7) against
edgetrain.numerics: the same comparisons as tests/c/test_numerics_c.py, run under QEMU."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "c"))

import primitives as P  # tests/c helper

from edgetrain.export.toolchains import available

OK, WHY = available("cortex-m4")
pytestmark = pytest.mark.skipif(not OK, reason=f"cross toolchain missing: {WHY}")

CORES = ["cortex-m0plus", "cortex-m4", "cortex-m7"]


@pytest.fixture(scope="module", params=CORES)
def h(request, tmp_path_factory):
    return P.Harness(request.param, tmp_path_factory.mktemp(f"prim_{request.param}"))


def test_stream_and_rounding(h):
    rng = np.random.default_rng(10)
    P.compare_stream(h, rng, n=500)
    for mode in ("floor", "nearest", "stochastic"):
        P.compare_round_f32(h, rng, mode, n=1500)
        P.compare_round_shift(h, rng, mode, n=1500)


def test_requantize_and_qparams(h):
    rng = np.random.default_rng(11)
    for mode in ("floor", "nearest", "stochastic"):
        P.compare_requantize(h, rng, mode, n=1500)
        P.compare_quantize(h, rng, mode, n=1500)
    P.compare_qparams(h, rng, symmetric=False, pow2=False, n=1500)
    P.compare_qparams(h, rng, symmetric=True, pow2=True, n=1500)


def test_fixed_point_and_softmax(h):
    rng = np.random.default_rng(12)
    P.compare_fixed(h, rng, n=1500)
    P.compare_softmax(h, rng, k=10, n=100)
