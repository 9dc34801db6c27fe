"""Batch normalisation, float side (Ioffe & Szegedy 2015, "Batch Normalization"), with
PyTorch's semantics: channels first, statistics per channel over the batch and all spatial
positions of (C,), (C, L) or (C, H, W) inputs. Training normalises with the biased batch
variance and updates the running statistics in place with the unbiased one:
``running = (1 - momentum) * running + momentum * batch``; evaluation uses the running
statistics. Trainable roles ``gamma``, ``beta``; buffers ``running_mean``, ``running_var``;
attrs ``eps`` = 1e-5, ``momentum`` = 0.1. The int8 path folds it into the preceding conv.

>>> import numpy as np
>>> x = np.array([[1.0], [3.0]])
>>> p = {"gamma": np.ones(1), "beta": np.zeros(1), "running_mean": np.zeros(1),
...      "running_var": np.ones(1)}
>>> y, _ = batchnorm_forward({}, [x], p, True)
>>> y.round(4).ravel().tolist(), p["running_mean"].tolist(), p["running_var"].tolist()
([-1.0, 1.0], [0.2], [1.1])
"""

from __future__ import annotations

import numpy as np

from edgetrain.errors import EdgetrainError
from edgetrain.ir.registry import OpDef, register


def _check_shape(shape, op="batchnorm"):
    if len(shape) not in (1, 2, 3):
        raise EdgetrainError(f"{op} expects (C,), (C, L) or (C, H, W) per sample, got "
                             f"{tuple(shape)}")


def _infer(attrs, in_shapes):
    _check_shape(in_shapes[0])
    return tuple(in_shapes[0])


def _param_shapes(attrs, in_shapes):
    _check_shape(in_shapes[0])
    c = (in_shapes[0][0],)
    return {"gamma": c, "beta": c, "running_mean": c, "running_var": c}


def _init(attrs, in_shapes, rng):
    c = in_shapes[0][0]
    return {"gamma": np.ones(c, np.float32), "beta": np.zeros(c, np.float32),
            "running_mean": np.zeros(c, np.float32), "running_var": np.ones(c, np.float32)}


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """A per-channel vector float[C] shaped to broadcast against float[B, C, *spatial]."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _reduce_axes(x: np.ndarray) -> tuple[int, ...]:
    return (0, *range(2, x.ndim))


def _batch_stats(x, attrs, p):
    """Biased batch mean and variance per channel; updates the running statistics in place."""
    axes = _reduce_axes(x)
    n = x.size // x.shape[1]
    if n < 2:
        raise EdgetrainError("batchnorm in training needs more than one value per channel; "
                             "use a batch of at least 2 samples")
    mean = x.mean(axis=axes)  # float[C]
    var = x.var(axis=axes)  # float[C]
    m = float(attrs.get("momentum", 0.1))
    for key, value in (("running_mean", mean), ("running_var", var * (n / (n - 1)))):
        buf = p[key]
        buf *= 1.0 - m
        buf += m * value
    return mean, var


def batchnorm_forward(attrs, xs, p, training):
    (x,) = xs  # float[B, C, *spatial]
    if x.ndim < 2 or x.shape[1] != len(p["gamma"]):
        raise EdgetrainError(f"batchnorm: input batch has shape {x.shape}, expected "
                             f"(B, {len(p['gamma'])}, ...)")
    eps = float(attrs.get("eps", 1e-5))
    if training:
        mean, var = _batch_stats(x, attrs, p)
    else:
        mean, var = p["running_mean"], p["running_var"]
    invstd = (1.0 / np.sqrt(var.astype(x.dtype) + eps)).astype(x.dtype)  # float[C]
    xhat = (x - _per_channel(mean.astype(x.dtype), x.ndim)) * _per_channel(invstd, x.ndim)
    y = xhat * _per_channel(p["gamma"], x.ndim) + _per_channel(p["beta"], x.ndim)
    return y, (xhat, invstd, training)


def batchnorm_backward(attrs, ctx, dy, p, want):
    xhat, invstd, training = ctx
    axes, nd = _reduce_axes(dy), dy.ndim
    dbeta = dy.sum(axis=axes)  # float[C]
    dgamma = (dy * xhat).sum(axis=axes)  # float[C]
    dx = None
    if want.inputs[0]:
        scale = _per_channel(p["gamma"] * invstd, nd)
        if training:
            n = dy.size // dy.shape[1]
            dx = scale * (dy - _per_channel(dbeta / n, nd) - xhat * _per_channel(dgamma / n, nd))
        else:
            dx = scale * dy
    grads = {role: g for role, g in (("gamma", dgamma), ("beta", dbeta)) if role in want.params}
    return [dx], grads


def _macs(attrs, in_shapes, out_shape):
    """One multiply-add per element (scale and shift; folded away in int8)."""
    return int(np.prod(out_shape))


register(OpDef("batchnorm", _infer, batchnorm_forward, batchnorm_backward, _macs, _param_shapes,
               _init, trainable=("gamma", "beta"), buffers=("running_mean", "running_var"),
               doc="batch normalisation over channels (C first)"))
