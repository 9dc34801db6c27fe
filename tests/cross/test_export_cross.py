"""Generated C on emulated Cortex-M (QEMU) against the Python int8 engine: bit-exact steps,
instruction counts measured by the plugin, RAM and flash read from the model ELF."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "c"))

import graphs  # tests/c helper

from edgetrain.export.exporter import export_project
from edgetrain.export.toolchains import available
from edgetrain.export.verify import verify
from edgetrain.memory.runtime import STACK_RESERVE_BYTES

OK, WHY = available("cortex-m4")
pytestmark = pytest.mark.skipif(not OK, reason=f"cross toolchain missing: {WHY}")


def calib(g, seed=0):
    return np.random.default_rng(seed).standard_normal((32, *g.input_shape)).astype(np.float32)


@pytest.mark.parametrize(("core", "seed", "policy"), [("cortex-m4", 2, "partial"),
                                                      ("cortex-m0plus", 3, "bias-only")])
def test_random_graph_bit_exact_with_measurements(tmp_path, core, seed, policy):
    g = graphs.image_graph(np.random.default_rng(seed), f"img{seed}")
    export_project(g, "nrf52840", tmp_path, policy=policy, batch=2, calibration=calib(g))
    r = verify(tmp_path, core, steps=6)
    assert r.bit_exact, r.mismatches[0].describe()
    d = r.to_dict()
    assert {"target", "bit_exact", "steps", "mismatches", "instructions_per_sample",
            "ram_bytes", "flash_bytes"} <= set(d)
    assert r.fits and r.instructions_per_sample > r.macs_per_sample > 0
    assert 0 < r.ram_bytes < 256 * 1024 and r.flash_bytes > 0
    assert 0 < d["stack_bytes"] <= STACK_RESERVE_BYTES  # the linker's reservation covers it


def test_a_model_too_large_for_the_device_does_not_link(tmp_path):
    from edgetrain.ir import GraphBuilder

    b = GraphBuilder("big-maps", (1, 200, 200), seed=0)  # 320 KB of int8 activations
    t = b.add("global_avg_pool", b.add("relu", b.add("conv2d", "input", out_channels=8,
                                                     kernel=3, padding=1)))
    g = b.build(b.add("linear", t, out_features=4), num_classes=4)
    export_project(g, "rp2040", tmp_path, policy="last-1", calibration=calib(g))  # 264 KB
    r = verify(tmp_path, "cortex-m0plus", steps=1)
    assert r.bit_exact  # the test programs run with QEMU's memory
    assert r.fits is False and "RAM' overflowed" in r.fit_error
