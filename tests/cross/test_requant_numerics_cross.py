"""The runtime's 32-bit requantization (et_rq32_*) on Cortex-M under QEMU: ARMv6-M (plain C,
no SSAT), M4 and M7 (SSAT, SMLAL), against the engine's round_shift / requantize; the same
comparison as tests/c/test_requant_numerics_c.py."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "c"))

import test_requant_numerics_c as R  # tests/c module: harness and comparison

from edgetrain.export.toolchains import available

OK, WHY = available("cortex-m4")
pytestmark = pytest.mark.skipif(not OK, reason=f"cross toolchain missing: {WHY}")


@pytest.fixture(scope="module", params=["cortex-m0plus", "cortex-m4", "cortex-m7"])
def h(request, tmp_path_factory):
    return R.RqHarness(request.param, tmp_path_factory.mktemp(f"rq_{request.param}"))


def test_rq32_matches_engine_on_cortex_m(h):
    for k, mode in enumerate(R.MODES):
        R.compare(h, np.random.default_rng(60 + k), mode, n=3000)
