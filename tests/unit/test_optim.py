"""Optimizers follow PyTorch's update formulas (checked step by step against torch.optim)."""

import numpy as np
import pytest

from edgetrain.errors import EdgetrainError
from edgetrain.train.optim import SGD, Adam


def _trajectory(opt, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=(3,))}
    grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(steps)]
    start = {k: v.copy() for k, v in params.items()}
    for g in grads:
        opt.step(params, g)
    return start, grads, params


def _torch_trajectory(make_opt, start, grads):
    torch = pytest.importorskip("torch", reason="torch not installed (pip install edgetrain[torch])")
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in start.items()}
    opt = make_opt(torch, list(tp.values()))
    for g in grads:
        for k, t in tp.items():
            t.grad = torch.tensor(g[k], dtype=torch.float64)
        opt.step()
    return {k: t.detach().numpy() for k, t in tp.items()}


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"momentum": 0.9, "weight_decay": 0.01},
                                {"momentum": 0.5, "nesterov": True}])
def test_sgd_matches_torch(kw):
    start, grads, ours = _trajectory(SGD(lr=0.05, **kw))
    theirs = _torch_trajectory(lambda torch, ps: torch.optim.SGD(ps, lr=0.05, **kw), start, grads)
    for k in ours:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.01}, {"betas": (0.8, 0.99), "eps": 1e-6}])
def test_adam_matches_torch(kw):
    start, grads, ours = _trajectory(Adam(lr=0.01, **kw))
    theirs = _torch_trajectory(lambda torch, ps: torch.optim.Adam(ps, lr=0.01, **kw), start, grads)
    for k in ours:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, atol=1e-12)


def test_plain_sgd_step_by_hand():
    p = {"w": np.array([1.0, 2.0], np.float32)}
    SGD(lr=0.5, weight_decay=0.1).step(p, {"w": np.array([2.0, -2.0], np.float32)})
    np.testing.assert_allclose(p["w"], [1.0 - 0.5 * 2.1, 2.0 - 0.5 * (-1.8)], rtol=1e-6)
    assert p["w"].dtype == np.float32


def test_keys_without_grads_untouched_and_state_per_key():
    p = {"a": np.ones(2), "b": np.ones(2)}
    opt = Adam(lr=0.1)
    opt.step(p, {"a": np.ones(2)})
    np.testing.assert_array_equal(p["b"], np.ones(2))
    assert set(opt.state_) == {"a"}


@pytest.mark.parametrize("make", [lambda: SGD(lr=-1), lambda: SGD(lr=0.1, momentum=1.5),
                                  lambda: Adam(lr=0.1, betas=(1.0, 0.9)),
                                  lambda: SGD(lr=0.1, nesterov=True)])
def test_bad_hyperparameters(make):
    with pytest.raises(EdgetrainError):
        make()


def test_bad_grads():
    p = {"w": np.ones(3)}
    with pytest.raises(EdgetrainError, match="shape"):
        SGD(lr=0.1).step(p, {"w": np.ones(4)})
    with pytest.raises(EdgetrainError, match="unknown parameter"):
        SGD(lr=0.1).step(p, {"v": np.ones(3)})
