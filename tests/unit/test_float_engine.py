"""The float32 engine over whole graphs: end-to-end finite differences (residual fan-out,
BatchNorm, depthwise), policies skip the backward work they do not need, predict."""

import dataclasses

import numpy as np
import pytest

from edgetrain import zoo
from edgetrain.engine.float32 import error_needed, forward, loss_and_grads, predict
from edgetrain.ir import GraphBuilder, Policy, registry


def _residual_graph():
    b = GraphBuilder("residual", (2, 6, 6), seed=3)
    h = b.add("relu6", b.add("batchnorm", b.add("conv2d", "input", out_channels=4, kernel=3,
                                                padding=1)))
    r = b.add("conv2d", h, out_channels=4, kernel=3, padding=1, groups=4)
    r = b.add("conv2d", b.add("relu", r), out_channels=4, kernel=1)
    h = b.add("add", h, r)
    return b.build(b.add("linear", b.add("global_avg_pool", h), out_features=3))


def _float64(graph):
    g = graph.copy()
    g.params = {k: v.astype(np.float64) for k, v in g.params.items()}
    return g


def _loss(graph, x, y):
    g = graph.copy()  # training mode updates BN statistics; keep the graph unchanged
    return loss_and_grads(g, x, y, {})[0]


def test_whole_graph_gradients_match_finite_differences():
    g = _float64(_residual_graph())
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 2, 6, 6)), np.array([0, 1, 2, 1])
    _, _, grads = loss_and_grads(g.copy(), x, y, Policy().trainable_params(g))
    assert set(grads) == {k for k in g.params if "running" not in k}
    for key in ("conv2d0.weight", "batchnorm1.gamma", "conv2d3.weight", "conv2d5.bias"):
        arr, num = g.params[key], np.zeros_like(g.params[key])
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + 1e-6
            up = _loss(g, x, y)
            arr[idx] = old - 1e-6
            num[idx] = (up - _loss(g, x, y)) / 2e-6
            arr[idx] = old
        np.testing.assert_allclose(grads[key], num, rtol=1e-5, atol=1e-8, err_msg=key)


def test_frozen_prefix_gets_no_backward_call(monkeypatch):
    calls = []
    conv = registry.get_op("conv2d")

    def counting(attrs, ctx, dy, p, want):
        calls.append(want)
        return conv.backward(attrs, ctx, dy, p, want)

    monkeypatch.setitem(registry._REGISTRY, "conv2d", dataclasses.replace(conv, backward=counting))
    g = zoo.build("mnist-cnn")
    x, y = np.zeros((2, 1, 28, 28), np.float32), np.array([1, 2])
    _, _, grads = loss_and_grads(g, x, y, Policy(last_n=2).trainable_params(g))
    assert sorted(grads) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    assert calls == []
    _, _, grads = loss_and_grads(g, x, y, Policy(last_n=3).trainable_params(g))
    assert len(calls) == 1 and calls[0].inputs == (False,)  # conv2 needs no input error
    assert calls[0].params == {"weight", "bias"}


def test_bias_only_asks_for_biases_only():
    g = zoo.build("mbednet")
    trainable = Policy(bias_only=True).trainable_params(g)
    x, y = np.zeros((2, 1, 28, 28), np.float32), np.array([1, 2])
    _, _, grads = loss_and_grads(g, x, y, trainable)
    assert grads and all(k.endswith(".bias") for k in grads)
    assert "input" not in error_needed(g, trainable)


def test_predict_in_chunks_equals_one_forward_and_leaves_bn_alone():
    g = zoo.build("motion-cnn1d", seed=1)
    x = np.random.default_rng(0).normal(size=(10, 6, 100)).astype(np.float32)
    before = {k: v.copy() for k, v in g.params.items()}
    np.testing.assert_allclose(predict(g, x, batch=3), forward(g, x).values[g.output],
                               rtol=1e-5, atol=1e-6)
    for k, v in g.params.items():
        np.testing.assert_array_equal(v, before[k])
    assert predict(g, x[:0]).shape == (0, 4)


@pytest.mark.parametrize("dtype,expected", [(np.float64, np.float64), (np.float32, np.float32),
                                            (np.int64, np.float32), (np.uint8, np.float32)])
def test_input_dtypes(dtype, expected):
    g = zoo.build("mlp", input_shape=(5,), num_classes=3)
    g.params = {k: v.astype(expected) for k, v in g.params.items()}
    assert forward(g, np.ones((2, 5), dtype)).values[g.output].dtype == expected


def test_keep_freed_memory_takes_effect_on_glibc():
    import platform

    from edgetrain.engine.heap import keep_freed_memory

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc
