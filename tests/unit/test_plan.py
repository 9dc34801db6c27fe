"""Plans of the zoo models: the planner's bars, totals, fits, cost model."""

import math

import pytest

from edgetrain import zoo
from edgetrain.errors import EdgetrainError
from edgetrain.ir import Policy
from edgetrain.memory import devices, runtime
from edgetrain.memory.cost import bytes_moved_by_phase
from edgetrain.memory.plan import PlanConfig, plan
from edgetrain.memory.search import candidate_policies, search


def zoo_policies():
    for name in zoo.names():
        g = zoo.build(name)
        layers = len(g.weight_nodes())
        for policy in ("full", "last-1", f"last-{max(1, layers // 2)}", "bias-only", "partial"):
            yield name, policy


GRAPHS = {name: zoo.build(name) for name in zoo.names()}


@pytest.mark.parametrize("model, policy", list(zoo_policies()))
def test_arena_within_ten_percent_of_the_lower_bound(model, policy):
    for precision in ("int8", "float32"):
        p = plan(GRAPHS[model], "imxrt1062", policy, precision)
        assert p.lower_bound_bytes <= p.arena_bytes <= 1.10 * p.lower_bound_bytes, (
            model, policy, precision, p.arena_bytes, p.lower_bound_bytes)


def test_operator_reordering_lowers_peak_ram_on_mbednet():
    g = GRAPHS["mbednet"]
    reordered = plan(g, "nrf52840", config=PlanConfig(reorder=True))
    accumulated = plan(g, "nrf52840", config=PlanConfig(reorder=False))
    assert reordered.peak_ram_bytes < accumulated.peak_ram_bytes
    # the saving comes from gradient buffers that no longer live together
    grads = sum(-(-b.bytes // 8) * 8 for b in accumulated.arena if b.kind == "grad")
    assert 0 < accumulated.arena_bytes - reordered.arena_bytes <= grads


def test_policies_order_memory_as_expected_on_mnist_cnn():
    g = GRAPHS["mnist-cnn"]
    peak = {pol: plan(g, "imxrt1062", pol).peak_ram_bytes
            for pol in ("full", "last-2", "last-1", "bias-only")}
    assert peak["last-1"] < peak["last-2"] < peak["full"]
    assert peak["bias-only"] < peak["full"]
    assert plan(g, "imxrt1062", "full", batch=8).peak_ram_bytes > peak["full"]


def test_totals_and_regions_add_up():
    p = plan(GRAPHS["mnist-cnn"], "rp2040", "last-2", "int8")
    assert p.peak_ram_bytes == p.arena_bytes + p.state_bytes
    assert p.flash_bytes == p.flash_data_bytes + p.code_bytes_estimate
    assert p.state_bytes >= sum(b.bytes for b in p.state)
    assert p.flash_data_bytes >= sum(b.bytes for b in p.flash)
    assert {b.region for b in p.state} == {"state"} and {b.region for b in p.flash} == {"flash"}
    assert p.trainable_params == 784 * 64 + 64 + 64 * 10 + 10  # fc1 on 16x7x7, fc2
    assert p.buffer("param:fc1.weight").bytes == 784 * 64  # int8 weights in RAM
    tensor_state = sum(b.bytes for b in p.state if b.node == "input")  # trackers, queue
    assert p.runtime_ram_bytes == sum(b.bytes for b in p.state if b.node == "runtime") > 0
    assert (sum(r.ram_bytes for r in p.layers) + tensor_state + p.runtime_ram_bytes
            == sum(b.bytes for b in p.state))


def test_runtime_ram_is_planned_for_the_exported_c_program_only():
    g = GRAPHS["mnist-cnn"]
    p = plan(g, "rp2040", "last-2", "int8")
    fixed = p.buffer("runtime:fixed")
    assert fixed.bytes == runtime.fixed_ram(devices.get("rp2040").core.arch).total
    structs = {b.dtype: b.bytes for b in p.state if b.kind == "runtime" and b is not fixed}
    assert p.runtime_ram_bytes == fixed.bytes + sum(structs.values())
    assert structs["et_wlayer"] == runtime.STRUCT_BYTES["et_wlayer"] * len(g.weight_nodes())
    assert p.to_dict(detail=False)["runtime_ram_bytes"] == p.runtime_ram_bytes
    for b in p.state:  # descriptors are .data: a load image in flash
        if b.kind == "runtime" and b is not fixed:
            assert p.buffer(f"init:{b.name}").bytes == b.bytes
    for precision in ("mixed", "float32"):  # the float C programs: their own descriptors
        q = plan(g, "rp2040", "last-2", precision)
        kinds = {b.dtype for b in q.state if b.kind == "runtime"}
        assert {"et_ftensor", "et_flayer", "uint8"} <= kinds
        assert ("et_wlayer" in kinds) == (precision == "mixed")  # mixed: the int8 forward's
        other = plan(g, "rp2040", "last-2", config=PlanConfig(precision, optimizer="adam"))
        assert other.runtime_ram_bytes == 0  # an optimizer no C program runs: engine memory


def test_batch_major_at_int8_per_sample_accumulators_on_request():
    g = GRAPHS["mnist-cnn"]
    major = plan(g, "imxrt1062", "full", "int8", batch=4)
    per_sample = plan(g, "imxrt1062", "full", config=PlanConfig(batch=4, batch_major=False))
    assert major.config.is_batch_major and not per_sample.config.is_batch_major
    assert major.buffer("act:conv1").bytes == 4 * per_sample.buffer("act:conv1").bytes
    assert {b.region for b in major.arena + major.state if b.kind == "grad"} == {"arena"}
    assert {b.region for b in per_sample.arena + per_sample.state
            if b.kind == "grad"} == {"state"}
    assert any("whole batch" in n for n in major.notes)
    assert PlanConfig(precision="float32", batch=4).is_batch_major  # as the float C step
    assert not PlanConfig(precision="float32", batch=4, optimizer="adam").is_batch_major
    # bytes moved per sample: a sample's own data as at batch 1, weights read once per batch
    one = plan(g, "imxrt1062", "full", "int8", batch=1)
    moved = {b: bytes_moved_by_phase(p.schedule) for b, p in ((1, one), (4, major))}
    assert moved[4]["input"] == moved[1]["input"] == 784
    assert moved[4]["update"] == moved[1]["update"] / 4
    assert major.cost.bytes_moved < one.cost.bytes_moved


def test_a_c_program_fits_only_with_the_stack_the_linker_reserves():
    import dataclasses

    g = GRAPHS["motion-cnn1d"]
    peak = plan(g, "nrf52840", "bias-only", "int8").peak_ram_bytes
    stack = runtime.STACK_RESERVE_BYTES
    tight = dataclasses.replace(devices.get("nrf52840"), sram_bytes=peak + stack - 1)
    p = plan(g, tight, "bias-only", "int8")
    assert p.stack_reserved_bytes == stack and not p.fits and p.ram_over_bytes == 1
    roomy = dataclasses.replace(tight, sram_bytes=peak + stack)
    assert plan(g, roomy, "bias-only", "int8").fits
    assert plan(g, tight, "bias-only", "float32").stack_reserved_bytes == stack  # every precision


def test_fits_and_shortfall_against_the_device():
    g = GRAPHS["mbednet"]
    big = plan(g, "imxrt1062", "full", "float32")
    small = plan(g, "nrf52840", "full", "float32")
    assert big.fits and not small.fits
    assert small.ram_over_bytes == small.peak_ram_bytes + runtime.STACK_RESERVE_BYTES - 256 * 1024
    d = small.to_dict(detail=False)
    assert d["fits"] is False and d["ram_over_bytes"] == small.ram_over_bytes


def test_forward_macs_match_the_graph_and_backward_follows_the_policy():
    g = GRAPHS["mnist-cnn"]
    full = plan(g, "nrf52840", "full", "float32").cost.macs
    assert full["forward"] == g.macs_per_sample()
    conv1 = 28 * 28 * 8 * 9
    assert full["backward_weight"] == g.macs_per_sample()
    assert full["backward_error"] == g.macs_per_sample() - conv1  # nothing flows into the input
    bias = plan(g, "nrf52840", "bias-only", "float32").cost.macs
    assert bias["backward_weight"] == 0 and bias["backward_error"] == full["backward_error"]
    last = plan(g, "nrf52840", "last-1", "float32").cost.macs
    assert last == {"forward": full["forward"], "backward_error": 0,
                    "backward_weight": 64 * 10}


def test_int8_folds_batchnorm_macs_away():
    g = GRAPHS["mbednet"]
    bn = sum(math.prod(g.shapes[n.name]) for n in g.nodes if n.op == "batchnorm")
    assert plan(g, "nrf52840", precision="int8").cost.macs["forward"] == g.macs_per_sample() - bn


def test_latency_is_an_estimate_that_follows_the_core():
    g = GRAPHS["mnist-cnn"]
    m7 = plan(g, "imxrt1062", precision="int8").cost
    m0 = plan(g, "rp2040", precision="int8").cost
    assert m0.latency_ms_estimate > m7.latency_ms_estimate > 0
    soft = plan(g, "rp2040", precision="float32").cost
    assert soft.latency_ms_estimate > 5 * m0.latency_ms_estimate  # no FPU on the M0+
    part = plan(g, "imxrt1062", Policy(lambda_min=0.1)).cost
    assert part.latency_ms_estimate_best < part.latency_ms_estimate
    assert "latency_ms_estimate" in part.to_dict()


def test_user_devices_and_bad_input(tmp_path):
    g = GRAPHS["mlp"]
    with pytest.raises(EdgetrainError, match="unknown device"):
        plan(g, "nrf5284")
    with pytest.raises(EdgetrainError, match="alignment"):
        PlanConfig(alignment=0)
    with pytest.raises(EdgetrainError, match="only 3 weight layers"):
        plan(g, "nrf52840", "last-4")
    d = devices.get("nrf52840")
    assert plan(g, d, "last-1").device is d


def test_search_ranks_fitting_policies_and_draws_the_frontier():
    g = GRAPHS["mnist-cnn"]
    r = search(g, "nrf52840", ram_budget=64 * 1024, batches=(1,), lambdas=())
    fitting = r.fitting
    assert fitting and all(c.peak_ram_bytes <= 64 * 1024 for c in fitting)
    params = [c.trainable_params for c in fitting]
    assert params == sorted(params, reverse=True)
    front = r.frontier
    assert [c.peak_ram_bytes for c in front] == sorted(c.peak_ram_bytes for c in front)
    assert [c.trainable_params for c in front] == sorted(c.trainable_params for c in front)
    for c in r.candidates:  # nothing off the frontier beats a frontier point on both axes
        assert not any(c.peak_ram_bytes <= f.peak_ram_bytes and c.trainable_params >
                       f.trainable_params for f in front)
    assert len(candidate_policies(g, (0.1,))) == 2 * 4 + 1


def test_auto_backward_order_keeps_the_smaller_arena():
    g = GRAPHS["motion-cnn1d"]
    arenas = {o: plan(g, "nrf52840", config=PlanConfig(order=o)).arena_bytes
              for o in ("error-first", "weight-first")}
    auto = plan(g, "nrf52840")
    assert auto.arena_bytes == min(arenas.values())
    assert auto.to_dict(detail=False)["backward_order"] in arenas
    with pytest.raises(EdgetrainError, match="unknown backward order"):
        PlanConfig(order="sideways")


@pytest.mark.parametrize("model", ["mnist-cnn", "mbednet"])
def test_macs_per_phase_equal_what_the_int8_engine_counts(model):
    import numpy as np

    from edgetrain.engine.int8 import Trainer
    from edgetrain.ir import parse_policy
    from edgetrain.numerics.quantize import quantize

    g = GRAPHS[model]
    x = np.random.default_rng(0).normal(size=(4, *g.input_shape)).astype(np.float32)
    quantized = quantize(g, x)
    for policy in ("full", "last-2", "bias-only", "partial"):
        for precision in ("int8", "mixed", "float32"):
            trainer = Trainer(quantized.copy(), parse_policy(policy), precision, lr=1e-3)
            trainer.step(x[:1], np.array([3]))
            planned = plan(g, "imxrt1062", policy, precision).cost.macs  # unfolded graph
            if policy == "partial":  # worst case planned; the engine keeps k <= N rows
                assert trainer.macs["forward"] == planned["forward"]
                assert all(trainer.macs[k] <= planned[k] for k in planned)
            else:
                assert trainer.macs == planned, (policy, precision)


def test_peak_step_names_the_buffers_to_shrink():
    p = plan(GRAPHS["mnist-cnn"], "nrf52840", "full", "int8")
    peak = p.peak_summary()
    live = p.live_at(peak["index"])
    assert sum(-(-b.bytes // 8) * 8 for b in live) == p.lower_bound_bytes
    assert [b["bytes"] for b in peak["largest_live"]] == sorted(
        (b["bytes"] for b in peak["largest_live"]), reverse=True)
    assert p.to_dict(detail=False)["peak_step"]["phase"] == p.schedule.steps[peak["index"]].phase
