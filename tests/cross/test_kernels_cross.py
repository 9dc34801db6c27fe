"""The integer kernels on Cortex-M: plain loops on the M0+, dual-MAC (SXTB16 + SMLAD) loops
on the M4/M7, all equal to the float64 ops on centred integer data."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "c"))

import kernels as K  # tests/c helper

from edgetrain.export.toolchains import available

OK, WHY = available("cortex-m4")
pytestmark = pytest.mark.skipif(not OK, reason=f"cross toolchain missing: {WHY}")


@pytest.fixture(scope="module", params=["cortex-m0plus", "cortex-m4", "cortex-m7"])
def h(request, tmp_path_factory):
    return K.KernelHarness(request.param, tmp_path_factory.mktemp(f"kern_{request.param}"))


def test_kernels_match_float64_ops(h):
    rng = np.random.default_rng(42)
    for kind in ("linear", "conv2d", "depthwise", "conv1d"):
        for with_sel in (False, True):
            for _ in range(3):
                K.compare(h, rng, kind, with_sel)
