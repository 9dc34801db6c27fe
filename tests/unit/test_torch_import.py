"""from_torch: PyTorch models (Sequential or a traced forward with residuals) become graphs
computing the same function with the same weights; unsupported layers are clear errors."""

import numpy as np
import pytest

from edgetrain import zoo
from edgetrain.engine.float32 import loss_and_grads, predict
from edgetrain.errors import EdgetrainError
from edgetrain.io import torch_bridge
from edgetrain.io.torch_import import from_torch
from edgetrain.ir import Policy

torch = pytest.importorskip("torch", reason="torch not installed: pip install 'edgetrain[torch]'")
nn = torch.nn


def _x(shape, n=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def _same_outputs(graph, module, shape):
    x = _x(shape)
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(predict(graph, x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_round_trip(name):
    original = zoo.build(name, seed=4)
    original.params = {k: v + 0.01 * (k.endswith("running_var")) for k, v in
                       original.params.items()}
    back = from_torch(torch_bridge.to_torch(original), original.input_shape)
    assert [n.op for n in back.nodes] == [n.op for n in original.nodes]
    assert back.num_params() == original.num_params()
    assert back.macs_per_sample() == original.macs_per_sample()
    for a, b in zip(original.nodes, back.nodes):
        for role in a.params:
            np.testing.assert_array_equal(original.param(a, role), back.param(b, role))
    x = _x(original.input_shape)
    np.testing.assert_allclose(predict(back, x), predict(original, x), rtol=1e-6, atol=1e-6)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding="valid", bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding="same", groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 3 * 3, 5, bias=False)

    def forward(self, x):
        h = torch.nn.functional.relu6(self.bn(self.stem(x)))
        h = h + self.pw(torch.relu(self.dw(h)))
        return self.fc(torch.flatten(self.pool(h), 1))


def test_residual_module_with_functional_calls():
    torch.manual_seed(0)
    m = Residual()
    with torch.no_grad():  # non-trivial BN statistics
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
    g = from_torch(m, (3, 13, 13))
    assert [n.op for n in g.nodes] == ["conv2d", "batchnorm", "relu6", "conv2d", "relu",
                                       "conv2d", "add", "maxpool2d", "flatten", "linear"]
    _same_outputs(g, m, (3, 13, 13))
    np.testing.assert_array_equal(g.params[g.nodes[0].params["bias"]], np.zeros(8, np.float32))


def test_imported_model_trains_like_torch():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Conv1d(6, 8, 5, stride=2, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
                      nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 4)).double().train()
    g = from_torch(m, (6, 20))
    g.params = {k: v.astype(np.float64) for k, v in g.params.items()}
    x, y = np.random.default_rng(0).normal(size=(5, 6, 20)), np.array([0, 1, 2, 3, 1])
    loss, _, grads = loss_and_grads(g, x, y, Policy().trainable_params(g))
    t_loss = torch.nn.functional.cross_entropy(m(torch.from_numpy(x)), torch.from_numpy(y))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    torch_grads = [p.grad.numpy() for p in m.parameters()]
    ours = [grads[key] for n in g.nodes for role, key in n.params.items() if key in grads]
    assert len(ours) == len(torch_grads)
    for a, b in zip(ours, torch_grads):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("module,shape,match", [
    (nn.Sequential(nn.Linear(4, 3), nn.Sigmoid()), (4,), "Sigmoid, which has no edgetrain op"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2)), (1, 8, 8), "dilation 1"),
    (nn.Sequential(nn.Flatten(0)), (4,), "start_dim=1"),
    (nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), (1, 5, 5), "floor mode"),
    (nn.Sequential(nn.AdaptiveAvgPool2d(2)), (1, 4, 4), "size 1 only"),
    (nn.Sequential(nn.Conv2d(3, 2, 3)), (1, 8, 8), "weight has shape"),
])
def test_unsupported_or_mismatched_models(module, shape, match):
    with pytest.raises(EdgetrainError, match=match):
        from_torch(module, shape)


class Flat(nn.Module):
    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return torch.flatten(x, *self.dims)


@pytest.mark.parametrize("dims,ok", [((1,), True), ((1, -1), True), ((), False), ((1, 2), False)])
def test_functional_flatten_dims(dims, ok):
    if ok:
        assert from_torch(Flat(*dims), (2, 3, 4)).shapes["flatten"] == (24,)
    else:
        with pytest.raises(EdgetrainError, match="flatten must be"):
            from_torch(Flat(*dims), (2, 3, 4))


def test_not_a_module():
    with pytest.raises(EdgetrainError, match="torch.nn.Module"):
        from_torch(lambda x: x, (3,))
