"""The C emitter without a compiler: what the generated code traces is exactly what the
engine traces, float literals are exact, the Makefile carries the strict flags, and bad
input is refused clearly."""

import numpy as np
import pytest

from edgetrain.engine.int8 import Trainer
from edgetrain.errors import EdgetrainError
from edgetrain.export.emit import ExportConfig, emit, f32
from edgetrain.export.project import makefile
from edgetrain.ir import GraphBuilder
from edgetrain.ir.policy import parse_policy
from edgetrain.numerics.quantize import quantize


def small_cnn():
    b = GraphBuilder("small", (2, 6, 6), seed=1)
    t = b.add("relu", b.add("conv2d", "input", out_channels=4, kernel=3, padding=1))
    t = b.add("maxpool2d", t, kernel=2)
    t = b.add("flatten", t)
    return b.build(b.add("linear", t, out_features=3), num_classes=3)


@pytest.mark.parametrize("policy", ["full", "partial", "bias-only", "last-1"])
def test_traced_names_are_the_engines(policy):
    g = small_cnn()
    x = np.random.default_rng(0).standard_normal((8, 2, 6, 6)).astype(np.float32)
    model = quantize(g, x)
    emitted = emit(model, ExportConfig(parse_policy(policy), batch=2))
    trainer = Trainer(model.copy(), parse_policy(policy), "int8", lr=0.01)
    trainer.step(x[:2], np.array([0, 2]), trace=True)
    assert set(trainer.trace) <= set(emitted.trace_names)
    assert emitted.arena_bytes >= emitted.arena_lower_bound > 0
    assert "malloc" not in emitted.model_c
    frozen = policy in ("last-1", "bias-only")  # weights of conv2d0 not trained: flash
    assert ("static const int8_t w_conv2d0[" in emitted.model_c) == frozen


def test_float_literals_round_trip_exactly():
    rng = np.random.default_rng(0)
    for v in np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-30, 30, 200),
                             [0.1, 1e-8, 2.0**-40, 3.4e38]]).astype(np.float32):
        text = f32(v)
        assert text.endswith("f")
        assert np.float32(float(text[:-1])) == v
    assert f32(np.inf) == "HUGE_VALF" and f32(-np.inf) == "-HUGE_VALF"


def test_makefile_builds_strictly_for_every_target():
    text = makefile("nrf52840", "cortex-m4f")
    assert "-std=c99 -Wall -Wextra -Werror -ffp-contract=off" in text
    assert "fast-math" not in text
    for target in ("host:", "cortex-m0plus:", "cortex-m4:", "cortex-m7:"):
        assert target in text
    assert "-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard" in text


def test_bad_config_is_refused():
    with pytest.raises(EdgetrainError, match="batch"):
        ExportConfig(batch=0)
    with pytest.raises(EdgetrainError, match="learning rate"):
        ExportConfig(lr=-1.0)
