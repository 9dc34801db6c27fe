"""The planner predicts the RAM the exported C program declares (issue 5's bar: within 5 %).

The emitter reports its static RAM (arena + state) without a compiler; the planner's int8
plan models the same C runtime buffers (``edgetrain.memory.runtime``), so its arena is the
emitter's to the byte and its model state differs only by the planner's 8-byte alignment.
The plan's state also holds the runtime RAM (descriptors, fixed statics) that the emitter
does not count; ``tests/cross/test_deploy_ram.py`` checks that part against the ELF."""

import numpy as np
import pytest

from edgetrain import zoo
from edgetrain.export.emit import ExportConfig, emit
from edgetrain.ir.policy import parse_policy
from edgetrain.memory.plan import PlanConfig, plan
from edgetrain.numerics.quantize import quantize

RAM_BAR = 0.05
_MODELS: dict = {}


def quantized(model: str, numerics: str = "default"):
    if (model, numerics) not in _MODELS:
        g = zoo.build(model)
        calib = np.random.default_rng(0).normal(size=(32, *g.input_shape)).astype(np.float32)
        _MODELS[model, numerics] = (g, quantize(g, calib, numerics))
    return _MODELS[model, numerics]


def emitted_and_planned(model: str, policy: str, numerics: str = "default", batch: int = 1):
    g, q = quantized(model, numerics)
    e = emit(q, ExportConfig(parse_policy(policy), batch=batch))
    config = PlanConfig(precision="int8", batch=batch,
                        weight_channels=q.numerics.weight_channels)
    return e, plan(g, "imxrt1062", policy, config=config)


@pytest.mark.parametrize("model, policy", [
    ("motion-cnn1d", "full"), ("motion-cnn1d", "bias-only"), ("mbednet", "partial"),
    ("mbednet", "last-2"), ("mlp", "bias-only"), ("mnist-cnn", "full")])
def test_planner_peak_ram_is_the_emitted_static_ram(model, policy):
    e, p = emitted_and_planned(model, policy)
    emitted = e.arena_bytes + e.state_bytes + p.runtime_ram_bytes
    assert abs(p.peak_ram_bytes - emitted) <= RAM_BAR * p.peak_ram_bytes
    assert p.arena_bytes == e.arena_bytes  # same buffers, same lifetimes, same placement
    check_model_state(e, p)


@pytest.mark.parametrize("model, policy, batch", [
    ("mbednet", "full", 2), ("motion-cnn1d", "bias-only", 3), ("mnist-cnn", "partial", 2),
    ("mlp", "last-2", 4)])
def test_batch_is_planned_as_the_c_runtime_runs_it(model, policy, batch):
    """At batch B the C step holds the whole batch (batch-major activations, errors, sums)
    and updates each layer from the batch's gradient at once: no accumulators."""
    e, p = emitted_and_planned(model, policy, batch=batch)
    assert p.arena_bytes == e.arena_bytes
    check_model_state(e, p)
    g = quantized(model)[0]
    assert p.buffer("act:input").elements == batch * int(np.prod(g.input_shape))
    assert not [b for b in p.state if b.kind == "grad"]
    one = emitted_and_planned(model, policy)[1]
    assert p.state_bytes == one.state_bytes and p.arena_bytes > one.arena_bytes


def model_state(p) -> tuple[int, int]:
    """(aligned bytes, buffers) of the plan's state without the runtime's own RAM."""
    state = [b for b in p.state if b.kind != "runtime"]
    return sum(-(-b.bytes // 8) * 8 for b in state), len(state)


def check_model_state(e, p):
    planned, buffers = model_state(p)
    assert e.state_bytes <= planned <= e.state_bytes + 8 * buffers  # each rounded up to 8


@pytest.mark.parametrize("model, policy", [
    ("mbednet", "partial"), ("mlp", "bias-only"), ("motion-cnn1d", "last-2"),
    ("mnist-cnn", "full")])  # adds and merges, no input error, frozen layers, pools
def test_runtime_ram_counts_the_emitted_descriptors(model, policy):
    e, p = emitted_and_planned(model, policy)
    declared = {struct: e.model_c.count(f"static {struct} ")
                for struct in ("et_tensor", "et_wlayer", "et_intop")}
    planned = {b.dtype: b.elements for b in p.state if b.kind == "runtime"
               and b.dtype != "uint8"}
    assert planned == declared


def test_per_tensor_weight_scales_follow_the_numerics():
    e, p = emitted_and_planned("motion-cnn1d", "full", "paper")  # per-tensor weight scales
    assert p.arena_bytes == e.arena_bytes
    check_model_state(e, p)
    per_channel = plan(quantized("motion-cnn1d")[0], "imxrt1062", "full", "int8")
    assert per_channel.state_bytes > p.state_bytes  # one weight range per channel


# ---- the float exports (mixed, float32): the planner models et_float.c's buffers
# (``memory/schedule_float.py``, ``runtime.float_layer_arena``) as it models the int8 runtime's

def float_emitted_and_planned(model: str, policy: str, precision: str, batch: int = 1):
    from edgetrain.export.emit_float import emit_float, float_model

    g, q = quantized(model)
    carrier = q if precision == "mixed" else float_model(g)
    e = emit_float(carrier, ExportConfig(parse_policy(policy), batch=batch), precision)
    return e, plan(g, "imxrt1062", policy, config=PlanConfig(precision=precision, batch=batch))


FLOAT_CASES = [("motion-cnn1d", "full", "mixed"), ("motion-cnn1d", "partial", "float32"),
               ("mbednet", "partial", "mixed"), ("mbednet", "last-2", "float32"),
               ("mnist-cnn", "bias-only", "mixed"), ("mlp", "full", "float32")]


@pytest.mark.parametrize("model, policy, precision", FLOAT_CASES)
def test_float_plans_hold_the_emitted_float_program(model, policy, precision):
    """Same arena to the byte (same buffers, lifetimes in C calls, placement), the same
    model state up to the plan's 8-byte rounding, the same descriptors."""
    e, p = float_emitted_and_planned(model, policy, precision)
    assert p.arena_bytes == e.arena_bytes
    assert p.lower_bound_bytes == e.arena_lower_bound
    check_model_state(e, p)
    structs = ("et_tensor", "et_wlayer", "et_intop", "et_ftensor", "et_flayer")
    declared = {s: e.model_c.count(f"static {s} ") for s in structs}
    planned = {b.dtype: b.elements for b in p.state if b.kind == "runtime" and b.dtype != "uint8"}
    assert planned == {s: n for s, n in declared.items() if n}
    emitted = e.arena_bytes + e.state_bytes + p.runtime_ram_bytes
    assert 0 <= p.peak_ram_bytes - emitted <= 8 * len(p.state)


@pytest.mark.parametrize("model, policy, precision, batch", [
    ("mbednet", "full", "float32", 2), ("motion-cnn1d", "partial", "mixed", 3)])
def test_float_batch_is_planned_as_the_float_c_step(model, policy, precision, batch):
    e, p = float_emitted_and_planned(model, policy, precision, batch)
    assert p.arena_bytes == e.arena_bytes
    check_model_state(e, p)
    assert not [b for b in p.state if b.kind == "grad"]  # summed over the batch, no accumulator
    g = quantized(model)[0]
    assert p.buffer(f"err:{g.output}").elements == batch * int(np.prod(g.shapes[g.output]))
    assert e.buffers["ferr:E_loss"]["count"] == p.buffer(f"err:{g.output}").elements


def test_float_layer_buffers_are_the_runtime_rule():
    """Each et_flayer's arena members are runtime.float_layer_arena's, in plan and export."""
    from edgetrain.memory.runtime import CTYPE_BYTES, float_layer_arena, layer_geometry

    e, p = float_emitted_and_planned("motion-cnn1d", "partial", "float32")
    g = quantized("motion-cnn1d")[0]
    for node in g.weight_nodes():
        geo = layer_geometry(node.op, node.attrs, g.shapes[node.inputs[0]])
        rule = float_layer_arena(geo, 1, True, True, True)
        planned = {"gw": p.buffer(f"grad:{node.params['weight']}"),
                   "gb": p.buffer(f"grad:{node.params['bias']}"),
                   "mags": p.buffer(f"scratch:mags:{node.name}"),
                   "kept": p.buffer(f"scratch:kept:{node.name}")}
        for member, (ctype, count, _) in rule.items():
            assert e.buffers[f"{member}:{node.name}"]["count"] == count
            assert planned[member].bytes == CTYPE_BYTES[ctype] * count
