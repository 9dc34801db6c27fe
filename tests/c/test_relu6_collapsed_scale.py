"""Regression (issue 5): a relu6 whose input range collapsed to the scale floor 2^-40.

With pow2 numerics and policy full, random image graph 1061 gets a depthwise 1x1 convolution
whose output range is empty, so its scale is S_MIN = 2^-40 and 6 / s = 6.6e12 lies beyond the
rounding range |v| <= 2^40. The engine (Trainer._fwd_int_q) clamps 6 / s at 255 before rounding
the relu6 bound; the C runtime did not, and stopped with "numeric range error 1"."""

import graphs
import numpy as np
import pytest

from edgetrain.export.exporter import export_project
from edgetrain.export.toolchains import available
from edgetrain.export.verify import read_manifest, read_records, verify
from edgetrain.numerics.rounding import F32_LIMIT

OK, WHY = available("host")
pytestmark = pytest.mark.skipif(not OK, reason=f"host C compiler missing: {WHY}")

STEPS = 8


def relu6_input_scales(project, graph) -> list[float]:
    """The scale of every relu6 input at every step, as the C program traced it."""
    names = read_manifest(project)["trace_names"]
    records = read_records(project / "verify_out.bin", names)
    inputs = [n.inputs[0] for n in graph.nodes if n.op == "relu6"]
    return [float(np.frombuffer(rec[f"act_scale/{t}"], np.float32)[0])
            for rec in records.values() for t in inputs]


def test_relu6_bound_of_a_collapsed_scale_is_bit_exact(tmp_path):
    g = graphs.image_graph(np.random.default_rng(1061), "img1061")
    calib = np.random.default_rng(0).standard_normal((32, *g.input_shape)).astype(np.float32)
    export_project(g, "imxrt1062", tmp_path, policy="full", batch=1, calibration=calib,
                   numerics="pow2", seed=0)
    r = verify(tmp_path, "host", steps=STEPS)
    assert r.bit_exact, r.mismatches[0].describe()
    assert r.steps == STEPS
    scales = relu6_input_scales(tmp_path, g)
    assert len(scales) >= STEPS  # every step ran and traced its relu6 input
    # the case itself: 6 / s beyond the rounding range, so only the clamp keeps it finite
    assert max(np.float32(6) / np.float32(s) for s in scales) > F32_LIMIT
