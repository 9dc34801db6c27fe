"""Every zoo model against PyTorch 2.13 autograd: same logits, loss, parameter gradients and
BatchNorm running statistics after one training-mode step (float64 on both sides)."""

import sys

import numpy as np
import pytest

from edgetrain import zoo
from edgetrain.engine.float32 import forward, loss_and_grads, predict
from edgetrain.errors import EdgetrainError
from edgetrain.io import torch_bridge
from edgetrain.ir import Policy

torch = pytest.importorskip("torch", reason="torch not installed: pip install 'edgetrain[torch]'")

SHAPES = [("mbednet", (1, 28, 28)), ("mbednet", (3, 32, 32)), ("mlp", (1, 28, 28)),
          ("mnist-cnn", (1, 28, 28)), ("motion-cnn1d", (6, 100))]


def _float64(graph):
    g = graph.copy()
    g.params = {k: v.astype(np.float64) for k, v in g.params.items()}
    return g


def _batch(graph, n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *graph.input_shape))
    return x, rng.integers(0, graph.num_classes, size=n)


@pytest.mark.parametrize("name,shape", SHAPES, ids=[f"{n}-{'x'.join(map(str, s))}"
                                                    for n, s in SHAPES])
def test_outputs_and_gradients_match_torch(name, shape):
    graph = zoo.build(name, input_shape=shape, seed=1)
    module = torch_bridge.to_torch(graph).double().train()
    g64 = _float64(graph)
    x, y = _batch(graph)

    loss, logits, grads = loss_and_grads(g64, x, y, Policy().trainable_params(g64))
    out = module(torch.from_numpy(x))
    t_loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
    t_loss.backward()
    t_grads = torch_bridge.grads_from_torch(graph, module)

    np.testing.assert_allclose(logits, out.detach().numpy(), rtol=1e-9, atol=1e-11)
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    trainable = {k for k in graph.params if not k.endswith(("running_mean", "running_var"))}
    assert set(grads) == set(t_grads) == trainable
    for key, g in grads.items():
        np.testing.assert_allclose(g, t_grads[key], rtol=1e-8, atol=1e-11, err_msg=key)
    state = torch_bridge.params_from_torch(g64, module)
    for key in graph.params:
        np.testing.assert_allclose(g64.params[key], state[key], rtol=1e-12, atol=1e-14,
                                   err_msg=key)


@pytest.mark.parametrize("name", zoo.names())
def test_eval_mode_float32_matches_torch(name):
    graph = zoo.build(name, seed=2)
    x, _ = _batch(graph, n=4, seed=3)
    forward(graph, x.astype(np.float32), training=True)  # non-trivial BN running stats
    module = torch_bridge.to_torch(graph).eval()
    with torch.no_grad():
        expected = module(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(predict(graph, x), expected, rtol=1e-4, atol=1e-5)


def _every_op_graph():
    """A graph using every float layer op and option the bridge maps (beyond the zoo)."""
    from edgetrain.ir import GraphBuilder

    b = GraphBuilder("every-op", (4, 9, 10), seed=5)
    h = b.add("conv2d", "input", out_channels=6, kernel=(3, 2), stride=(1, 2), padding=(1, 0),
              groups=2)
    h = b.add("batchnorm", h, eps=1e-3, momentum=0.3)
    h = b.add("relu6", h)
    h = b.add("maxpool2d", h, kernel=3, stride=2, padding=1)
    r = b.add("conv2d", h, out_channels=6, kernel=3, padding=1, groups=6)
    h = b.add("add", h, r)
    h = b.add("avgpool2d", h, kernel=2, stride=1)
    h = b.add("relu", b.add("batchnorm", b.add("linear", b.add("flatten", h), out_features=8)))
    return b.build(b.add("linear", h, out_features=3))


def test_every_op_matches_torch():
    graph = _every_op_graph()
    assert {n.op for n in graph.nodes} >= {"conv2d", "batchnorm", "relu6", "maxpool2d", "add",
                                           "avgpool2d", "flatten", "linear", "relu"}
    module = torch_bridge.to_torch(graph).double().train()
    g64 = _float64(graph)
    x, y = _batch(graph, n=5)
    loss, logits, grads = loss_and_grads(g64, x, y, Policy().trainable_params(g64))
    out = module(torch.from_numpy(x))
    t_loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(logits, out.detach().numpy(), rtol=1e-9, atol=1e-11)
    t_grads = torch_bridge.grads_from_torch(graph, module)
    assert set(grads) == set(t_grads)
    for key, g in grads.items():
        np.testing.assert_allclose(g, t_grads[key], rtol=1e-8, atol=1e-11, err_msg=key)


def test_unsupported_op_is_a_clear_error():
    from edgetrain.ir import GraphBuilder

    b = GraphBuilder("loss-as-layer", (3,), seed=0)
    graph = b.build(b.add("linear", "input", out_features=2))
    graph.nodes[0] = type(graph.nodes[0])("odd", "mse", ("input",))
    with pytest.raises(EdgetrainError, match="no PyTorch equivalent"):
        torch_bridge.to_torch(graph)


def test_partial_policy_gradients_are_a_subset():
    graph = zoo.build("mbednet", seed=0)
    g64 = _float64(graph)
    x, y = _batch(graph, n=4)
    policy = Policy(last_n=2)
    _, _, grads = loss_and_grads(g64, x, y, policy.trainable_params(g64))
    module = torch_bridge.to_torch(graph).double().train()
    torch.nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    full = torch_bridge.grads_from_torch(graph, module)
    assert grads and set(grads) < set(full)
    for key, g in grads.items():
        np.testing.assert_allclose(g, full[key], rtol=1e-8, atol=1e-11)


def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(EdgetrainError, match=r"edgetrain\[torch\]"):
        torch_bridge.import_torch()
