"""Optimizers: SGD (momentum, weight decay) and Adam, with PyTorch's update formulas.

SGD follows ``torch.optim.SGD`` (dampening 0): ``g = grad + wd * p``;
``buf = g`` on the first step, then ``buf = momentum * buf + g``; ``p -= lr * buf``
(Nesterov: ``p -= lr * (g + momentum * buf)``).
Adam follows ``torch.optim.Adam`` (Kingma & Ba 2015, "Adam: A Method for Stochastic
Optimization"; L2 weight decay added to the gradient, not AdamW):
``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
``p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)``.

``step(params, grads)`` updates ``params[key]`` in place for every key in ``grads`` (keys
without a gradient, e.g. frozen layers, are untouched). Optimizer state lives in
``state_`` keyed by the parameter key, so a policy may train different subsets over time.

>>> import numpy as np
>>> p = {"w": np.array([1.0, -2.0], np.float32)}
>>> opt = SGD(lr=0.1, momentum=0.9)
>>> opt.step(p, {"w": np.array([1.0, 1.0], np.float32)})
>>> opt.step(p, {"w": np.array([1.0, 1.0], np.float32)})
>>> p["w"].astype(float).round(3).tolist()
[0.71, -2.29]
"""

from __future__ import annotations

import math

import numpy as np

from edgetrain.errors import EdgetrainError


def _check_hyper(name: str, value: float, low: float = 0.0, high: float = math.inf) -> float:
    value = float(value)
    if not (low <= value < high) or math.isnan(value):
        raise EdgetrainError(f"optimizer {name} must be in [{low}, {high}), got {value}")
    return value


def _check_grads(params: dict, grads: dict) -> None:
    for key, g in grads.items():
        if key not in params:
            raise EdgetrainError(f"gradient for unknown parameter '{key}'")
        if np.shape(g) != np.shape(params[key]):
            raise EdgetrainError(f"gradient for '{key}' has shape {np.shape(g)}, parameter "
                                 f"has {np.shape(params[key])}")


class SGD:
    """Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay."""

    def __init__(self, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        self.lr = _check_hyper("lr", lr)
        self.momentum = _check_hyper("momentum", momentum, high=1.0)
        self.weight_decay = _check_hyper("weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise EdgetrainError("Nesterov momentum needs momentum > 0")
        self.state_: dict[str, np.ndarray] = {}

    def _direction(self, key: str, p: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """The step direction for one parameter (before scaling by lr)."""
        g = grad.astype(p.dtype, copy=True)
        if self.weight_decay:
            g += self.weight_decay * p
        if not self.momentum:
            return g
        buf = self.state_.get(key)
        if buf is None:
            buf = self.state_[key] = g.copy()
        else:
            buf *= self.momentum
            buf += g
        return g + self.momentum * buf if self.nesterov else buf

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update ``params[key]`` in place for every key in ``grads``."""
        _check_grads(params, grads)
        for key, grad in grads.items():
            p = params[key]
            p -= (self.lr * self._direction(key, p, grad)).astype(p.dtype, copy=False)


class Adam:
    """Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8, L2 weight decay 0)."""

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        self.lr = _check_hyper("lr", lr)
        self.betas = (_check_hyper("beta1", betas[0], high=1.0),
                      _check_hyper("beta2", betas[1], high=1.0))
        self.eps = _check_hyper("eps", eps)
        self.weight_decay = _check_hyper("weight_decay", weight_decay)
        self.state_: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}

    def _update(self, key: str, p: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """The amount to subtract from one parameter this step."""
        b1, b2 = self.betas
        g = grad.astype(p.dtype, copy=True)
        if self.weight_decay:
            g += self.weight_decay * p
        t, m, v = self.state_.get(key, (0, np.zeros_like(p), np.zeros_like(p)))
        t += 1
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        self.state_[key] = (t, m, v)
        step_size = self.lr / (1 - b1 ** t)
        denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + self.eps
        return step_size * m / denom

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update ``params[key]`` in place for every key in ``grads``."""
        _check_grads(params, grads)
        for key, grad in grads.items():
            p = params[key]
            p -= self._update(key, p, grad).astype(p.dtype, copy=False)
