"""The model zoo: names, info, deterministic builds, overridable shapes, sizes, and that each
model can actually learn (a few SGD steps on one batch lower the loss)."""

import numpy as np
import pytest

from edgetrain import zoo
from edgetrain.engine.float32 import loss_and_grads
from edgetrain.errors import EdgetrainError
from edgetrain.ir import Policy
from edgetrain.train.optim import SGD


def test_names_and_info():
    assert zoo.names() == ["mbednet", "mlp", "mnist-cnn", "motion-cnn1d"]
    for name in zoo.names():
        info = zoo.info(name)
        assert info.name == name and info.description and info.num_classes >= 2
        g = zoo.build(name)
        assert g.input_shape == info.input_shape and g.shapes[g.output] == (info.num_classes,)
        assert g.num_params() > 0 and g.macs_per_sample() > 0


def test_unknown_model_suggests_closest():
    with pytest.raises(EdgetrainError, match="did you mean 'mnist-cnn'"):
        zoo.build("mnist_cnn")


@pytest.mark.parametrize("name", ["mbednet", "mlp", "mnist-cnn", "motion-cnn1d"])
def test_same_seed_same_weights(name):
    a, b, c = zoo.build(name, seed=3), zoo.build(name, seed=3), zoo.build(name, seed=4)
    assert a.params.keys() == b.params.keys()
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params)


def test_mnist_cnn_has_four_trainable_layers_and_no_batchnorm():
    g = zoo.build("mnist-cnn")
    assert [n.op for n in g.weight_nodes()] == ["conv2d", "conv2d", "linear", "linear"]
    assert "batchnorm" not in {n.op for n in g.nodes}


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_mbednet_size_and_structure(shape):
    g = zoo.build("mbednet", input_shape=shape, num_classes=10)
    assert 20_000 <= g.num_params() <= 60_000
    ops = [n.op for n in g.nodes]
    assert ops.count("add") >= 2 and "global_avg_pool" in ops and "relu6" in ops
    depthwise = [n for n in g.nodes if n.op == "conv2d" and n.attrs.get("groups", 1) > 1]
    assert all(n.attrs["groups"] == g.shapes[n.inputs[0]][0] for n in depthwise) and depthwise


def test_overrides():
    g = zoo.build("motion-cnn1d", input_shape=(3, 50), num_classes=7)
    assert g.input_shape == (3, 50) and g.shapes[g.output] == (7,)
    assert zoo.build("mlp", input_shape=(64,), num_classes=10).shapes["fc3"] == (10,)


@pytest.mark.parametrize("name,shape,match", [
    ("mnist-cnn", (28, 28), "3-D input"),
    ("motion-cnn1d", (6, 100, 1), "2-D input"),
    ("mnist-cnn", (1, 2, 2), "larger"),
])
def test_bad_input_shapes(name, shape, match):
    with pytest.raises(EdgetrainError, match=match):
        zoo.build(name, input_shape=shape)


def test_bad_num_classes():
    with pytest.raises(EdgetrainError, match="num_classes"):
        zoo.build("mlp", num_classes=1)


@pytest.mark.parametrize("name", ["mbednet", "mlp", "mnist-cnn", "motion-cnn1d"])
def test_each_model_learns_one_batch(name):
    g = zoo.build(name, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, *g.input_shape)).astype(np.float32)
    y = rng.integers(0, g.num_classes, size=16)
    trainable = Policy().trainable_params(g)
    opt = SGD(lr=0.05, momentum=0.9)
    first = None
    for _ in range(30):
        loss, _, grads = loss_and_grads(g, x, y, trainable)
        first = loss if first is None else first
        opt.step(g.params, grads)
    assert loss < 0.5 * first
