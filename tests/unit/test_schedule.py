"""The training-step schedule keeps exactly what the policy needs."""

import pytest

from edgetrain import zoo
from edgetrain.errors import EdgetrainError
from edgetrain.ir import GraphBuilder, Policy, parse_policy
from edgetrain.memory.schedule import ScheduleConfig, build_schedule

BACKWARD = ("backward_weight", "backward_error", "update")


def sched(model, policy="full", **config):
    g = model if not isinstance(model, str) else zoo.build(model)
    return build_schedule(g, parse_policy(policy) if isinstance(policy, str) else policy,
                          ScheduleConfig(**config))


def acts_read_in_backward(s):
    return {b for st in s.steps if st.phase in BACKWARD for b in st.reads
            if b.startswith("act:")}


def span(s, name):
    used = [st.index for st in s.steps if name in st.reads + st.writes]
    return min(used), max(used)


def test_full_training_keeps_the_inputs_of_weight_gradients():
    s = sched("mnist-cnn")
    kept = acts_read_in_backward(s)
    # conv2 reads pool1, fc1 reads the flattened pool2 (a view of act:pool2), conv1 the input
    assert {"act:input", "act:pool1", "act:pool2", "act:relu3"} <= kept
    w = next(st for st in s.steps if st.phase == "backward_weight" and st.node == "conv2")
    assert "act:pool1" in w.reads


def test_bias_only_keeps_no_input_for_weight_gradients():
    s = sched("mnist-cnn", "bias-only")
    for st in s.steps:
        if st.phase == "backward_weight":
            assert not [b for b in st.reads if b.startswith("act:")], st
            assert st.macs == 0
    assert not any(b.startswith("grad:") and b.endswith(".weight") for b in s.buffers)
    # ReLU masks and max-pool inputs are still needed to pass the error down
    assert "act:relu2" in acts_read_in_backward(s)


def test_frozen_prefix_keeps_nothing():
    s = sched("mnist-cnn", "last-1")
    loss = next(st.index for st in s.steps if st.phase == "loss")
    for name in ("act:input", "act:conv1", "act:relu1", "act:pool1", "act:conv2", "act:pool2"):
        assert span(s, name)[1] < loss, name
    assert acts_read_in_backward(s) == {"act:relu3"}
    assert {st.node for st in s.steps if st.phase in BACKWARD} == {"fc2"}
    assert not any(b.startswith("err:") and b != "err:fc2" for b in s.buffers)


def test_reordering_applies_each_update_right_after_its_gradient():
    s = sched("mnist-cnn", reorder=True)
    grads = [b for b in s.buffers if b.startswith("grad:")]
    spans = {g: span(s, g) for g in grads}
    for g, (first, last) in spans.items():
        assert s.steps[last].phase == "update" and s.steps[last].node == s.buffers[g].node
        others = [o for o in grads if s.buffers[o].node != s.buffers[g].node]
        assert all(spans[o][1] < first or spans[o][0] > last for o in others), g


def test_without_reordering_all_gradients_live_until_the_end():
    s = sched("mnist-cnn", reorder=False)
    last = len(s.steps) - 1
    updates = [st for st in s.steps if st.phase == "update"]
    assert [st.index for st in updates] == list(range(last - len(updates) + 1, last + 1))
    first_update = updates[0].index
    for g in (b for b in s.buffers if b.startswith("grad:")):
        assert span(s, g)[0] < first_update <= span(s, g)[1]


def test_batch_keeps_gradient_accumulators_in_state():
    s = sched("mnist-cnn", batch=8)
    grads = [b for b in s.buffers.values() if b.kind == "grad"]
    assert grads and all(b.region == "state" for b in grads)
    w = next(st for st in s.steps if st.phase == "backward_weight" and st.node == "fc2")
    assert "grad:fc2.weight" in w.reads  # accumulated: read, add, write
    with pytest.raises(EdgetrainError, match="needs batch 1"):
        ScheduleConfig(batch=8, reorder=True)


def test_partial_is_planned_for_its_worst_case_and_says_so():
    full, part = sched("mnist-cnn"), sched("mnist-cnn", Policy(lambda_min=0.1))
    assert any("worst case" in n for n in part.notes)
    # int8: the C runtime's kept-row flags, uint8 per output channel
    assert {b for b in part.buffers if b.startswith("scratch:kept:")} == {
        "scratch:kept:conv1", "scratch:kept:conv2", "scratch:kept:fc1", "scratch:kept:fc2"}
    assert part.buffers["scratch:kept:conv2"].bytes == 16
    mixed = sched("mnist-cnn", Policy(lambda_min=0.1), precision="mixed")
    assert mixed.buffers["scratch:topk:conv2"].elements == 2 * 16  # index + magnitude
    assert [st.macs for st in part.steps] == [st.macs for st in full.steps]


@pytest.mark.parametrize("precision, act, err, grad, weight", [
    ("int8", "int8", "int8", "int32", "int8"),
    ("mixed", "int8", "float32", "float32", "int8"),
    ("float32", "float32", "float32", "float32", "float32"),
])
def test_storage_types_follow_the_precision(precision, act, err, grad, weight):
    s = sched("mnist-cnn", precision=precision)
    b = s.buffers
    assert (b["act:conv1"].dtype, b["err:conv2"].dtype, b["grad:fc1.weight"].dtype,
            b["param:conv1.weight"].dtype) == (act, err, grad, weight)
    assert b["act:conv1"].bytes == 8 * 28 * 28 * {"int8": 1, "float32": 4}[act]


def test_int8_weight_gradients_widen_to_int64_only_when_int32_could_overflow():
    small, big = sched("mnist-cnn", batch=1), sched("mnist-cnn", batch=64)
    assert small.buffers["grad:conv1.weight"].dtype == "int32"
    # conv1: 64 samples x 28 x 28 positions x 255 x 255 > 2^31
    assert big.buffers["grad:conv1.weight"].dtype == "int64"
    assert big.buffers["grad:fc1.weight"].dtype == "int32"
    assert big.buffers["grad:conv1.bias"].dtype == "int32"


def test_batchnorm_is_folded_in_every_precision():
    for precision in ("int8", "mixed", "float32"):
        s = sched("motion-cnn1d", precision=precision)
        assert not any("conv1_bn" in name for name in s.buffers), precision
        assert any("folded" in n for n in s.notes)


def test_a_batchnorm_that_cannot_fold_trains_gamma_from_its_kept_input():
    b = GraphBuilder("bn", (2, 6, 6), seed=0)
    h = b.add("relu", b.add("conv2d", "input", out_channels=3, kernel=3, padding=1))
    h = b.add("batchnorm", h, name="bn")  # after a ReLU: nothing to fold into
    g = b.build(b.add("linear", b.add("flatten", h), out_features=2))
    s = sched(g, precision="float32")
    assert s.buffers["param:bn.gamma"].region == "state"
    w = next(st for st in s.steps if st.node == "bn" and st.phase == "backward_weight")
    assert "act:relu1" in w.reads


def test_residual_float_errors_are_summed_into_one_buffer():
    s = sched("mbednet", precision="mixed")  # stem_relu6 feeds block1_expand and block1_add
    writers = [st for st in s.steps if "err:stem_relu6" in st.writes]
    assert [st.node for st in writers] == ["block1_add", "block1_expand"]
    first, second = writers
    assert "err:stem_relu6" not in first.reads  # the first contribution writes
    assert "err:stem_relu6" in second.reads  # the second adds to it


def test_residual_int8_errors_stay_apart_until_merged():
    s = sched("mbednet", precision="int8")  # each int8 contribution has its own scale
    part = "err:stem_relu6@block1_expand"
    assert s.buffers[part].dtype == "int8"
    merges = [st for st in s.steps if st.phase == "merge"]
    assert len(merges) == 3  # one per residual block (block1, block3, block5)
    merge = next(st for st in merges if st.node == "stem_relu6")
    assert set(merge.reads) == {"err:stem_relu6", part}
    assert merge.writes == ("scratch:merge:stem_relu6", "err:stem_relu6")
    assert max(st.index for st in s.steps if part in st.reads + st.writes) == merge.index


def test_int8_accumulators_are_scratch_for_one_step():
    s = sched("mnist-cnn", precision="int8")
    fwd = next(st for st in s.steps if st.node == "conv2" and st.phase == "forward")
    assert "scratch:acc:conv2" in fwd.writes
    assert s.buffers["scratch:acc:conv2"].bytes == 4 * 16 * 14 * 14
    err = next(st for st in s.steps if st.node == "conv2" and st.phase == "backward_error")
    assert s.buffers["scratch:dxacc:conv2"].bytes == 4 * 8 * 14 * 14 and \
        "scratch:dxacc:conv2" in err.writes
    ec = next(st for st in s.steps if st.node == "conv2" and "scratch:ec:conv2" in st.writes)
    later = next(st for st in s.steps if st.node == "conv2" and st.index > ec.index
                 and st.phase in ("backward_weight", "backward_error"))
    assert s.buffers["scratch:ec:conv2"].dtype == "int16" and "scratch:ec:conv2" in later.reads
    assert s.buffers["scratch:dx:pool1"].elements == 8 * 28 * 28 + 8 * 14 * 14  # in + out
    assert not any(b.startswith("scratch:") for b in sched("mnist-cnn", precision="float32")
                   .buffers if b != "scratch:loss")


def test_frozen_weights_stay_in_flash_trained_ones_go_to_ram_with_an_image():
    s = sched("mnist-cnn", "last-2")
    b = s.buffers
    assert b["param:conv1.weight"].region == "flash"
    assert b["param:fc1.weight"].region == "state" and b["init:fc1.weight"].region == "flash"
    assert s.trainable_param_count() == sum(
        zoo.build("mnist-cnn").params[k].size for k in ("fc1.weight", "fc1.bias", "fc2.weight",
                                                        "fc2.bias"))


def test_views_share_their_input_buffer():
    s = sched("mlp")
    assert "act:flatten" not in s.buffers
    assert "act:input" in next(st for st in s.steps if st.node == "fc1").reads
    assert s.storage("act:flatten") == "act:input" and s.storage("act:fc1") == "act:fc1"
    folded = sched("motion-cnn1d")
    assert folded.storage("act:conv1_bn") == "act:conv1"
    assert folded.storage("err:conv1_bn") == "err:conv1"


def test_conservative_plan_for_an_op_without_a_memory_rule():
    from edgetrain.ir.registry import OpDef, get_op, register

    try:
        get_op("test_square")
    except EdgetrainError:
        register(OpDef("test_square", lambda a, s: s[0], None, None, lambda a, s, o: 0))
    b = GraphBuilder("sq", (4,), seed=0)
    g = b.build(b.add("linear", b.add("test_square", b.add("linear", "input", out_features=4)),
                      out_features=2))
    s = build_schedule(g, Policy(), ScheduleConfig())
    assert any("test_square" in n for n in s.notes)
    err = next(st for st in s.steps if st.phase == "backward_error" and st.node == "test_square1")
    assert {"act:linear0", "act:test_square1"} <= set(err.reads)


def test_bad_config_is_refused():
    with pytest.raises(EdgetrainError, match="unknown precision 'int4'"):
        ScheduleConfig(precision="int4")
    with pytest.raises(EdgetrainError, match="batch must be a positive integer"):
        ScheduleConfig(batch=0)
    with pytest.raises(EdgetrainError, match="unknown optimizer"):
        ScheduleConfig(optimizer="lion")
