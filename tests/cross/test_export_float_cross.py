"""The float precisions (`mixed`, `float32`) on an emulated Cortex-M4 (QEMU): within the stated
tolerance of the Python engine, instructions per sample measured, RAM and flash read from the
model ELF."""

import numpy as np
import pytest

from edgetrain import zoo
from edgetrain.export.exporter import export_project
from edgetrain.export.toolchains import available
from edgetrain.export.verify import verify

OK, WHY = available("cortex-m4")
pytestmark = pytest.mark.skipif(not OK, reason=f"cross toolchain missing: {WHY}")


def calib(g, seed=0):
    return np.random.default_rng(seed).standard_normal((32, *g.input_shape)).astype(np.float32)


@pytest.mark.parametrize("precision", ["mixed", "float32"])
def test_motion_cnn1d_on_cortex_m4_within_tolerance(tmp_path, precision):
    g = zoo.build("motion-cnn1d")
    export_project(g, "nrf52840", tmp_path / precision, policy="last-2", precision=precision,
                   calibration=calib(g))
    r = verify(tmp_path / precision, "cortex-m4", steps=1)
    assert r.within_tolerance, r.mismatches[0].describe()
    assert r.fits and r.instructions_per_sample > r.macs_per_sample > 0
    assert 0 < r.ram_bytes < 256 * 1024 and r.flash_bytes > 0
    if precision == "mixed":
        assert r.max_abs_error["act"] == 0  # the int8 forward: the same integers on the M4


def test_float32_frozen_weights_are_four_bytes_each_in_flash(tmp_path):
    """float32 keeps 4-byte weights: the frozen ones of last-1 are const (flash)."""
    g = zoo.build("mlp")
    export_project(g, "imxrt1062", tmp_path, policy="last-1", precision="float32")
    r = verify(tmp_path, "cortex-m4", steps=1)
    assert r.within_tolerance, r.mismatches[0].describe()
    frozen = sum(v.size for k, v in g.params.items() if not k.startswith("fc3"))
    assert frozen > 100_000 and r.flash_bytes > 4 * frozen
    assert r.ram_bytes < 4 * frozen  # ... and not in RAM
