"""The runtime's integer kernels (et_kernels.c) against the float64 ops on centred integer
data (exact): random layer shapes, strides, paddings, groups, zero points and partial-update
selections."""

import kernels as K  # tests/c helper
import numpy as np
import pytest

from edgetrain.export.toolchains import available

OK, WHY = available("host")
pytestmark = pytest.mark.skipif(not OK, reason=f"host C compiler missing: {WHY}")


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    return K.KernelHarness("host", tmp_path_factory.mktemp("kern_host"))


@pytest.mark.parametrize("kind", ["linear", "conv2d", "depthwise", "conv1d"])
@pytest.mark.parametrize("with_sel", [False, True])
def test_kernels_match_float64_ops(h, kind, with_sel):
    rng = np.random.default_rng([len(kind), int(with_sel), ord(kind[1])])
    for _ in range(25):
        K.compare(h, rng, kind, with_sel)
