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


def _rows(v: np.ndarray, n: int, dtype) -> np.ndarray:
    """A per-channel vector float[C] repeated to float[C, n]: it broadcasts against
    float[B, C, n] with contiguous inner loops (much faster than a (C, 1) broadcast)."""
    return np.repeat(v.astype(dtype, copy=False)[:, None], n, axis=1)


def _update_running(p, attrs, mean, var, count: int) -> None:
    """running = (1 - momentum) running + momentum batch, in place; unbiased variance."""
    if count < 2:
        raise EdgetrainError("batchnorm in training needs more than one value per channel; "
                             "use a batch of at least 2 samples")
    m = float(attrs.get("momentum", 0.1))
    for key, value in (("running_mean", mean), ("running_var", var * (count / (count - 1)))):
        buf = p[key]
        buf *= 1.0 - m
        buf += m * value


def _train_stats(x3, attrs, p):
    """Centred input float[B, C, n] and 1/std per channel from the batch statistics."""
    count = x3.shape[0] * x3.shape[2]
    mean = np.einsum("bcn->c", x3) / count  # float[C]
    xc = x3 - _rows(mean, x3.shape[2], x3.dtype)  # float[B, C, n]
    var = np.einsum("bcn,bcn->c", xc, xc) / count  # float[C], biased
    _update_running(p, attrs, mean, var, count)
    return xc, var


def batchnorm_forward(attrs, xs, p, training):
    (x,) = xs  # float[B, C, *spatial]
    if x.ndim < 2 or x.shape[1] != len(p["gamma"]):
        raise EdgetrainError(f"batchnorm: input batch has shape {x.shape}, expected "
                             f"(B, {len(p['gamma'])}, ...)")
    eps, dt = float(attrs.get("eps", 1e-5)), x.dtype
    x3 = x.reshape(*x.shape[:2], -1)  # float[B, C, n]
    n = x3.shape[2]
    if training:
        xc, var = _train_stats(x3, attrs, p)
    else:
        xc, var = x3 - _rows(p["running_mean"], n, dt), p["running_var"]
    invstd = (1.0 / np.sqrt(var.astype(dt) + eps)).astype(dt)  # float[C]
    y = xc * _rows(p["gamma"] * invstd, n, dt)
    y += _rows(p["beta"], n, dt)
    return y.reshape(x.shape), (xc, invstd, training)


def batchnorm_backward(attrs, ctx, dy, p, want):
    xc, invstd, training = ctx  # float[B, C, n], float[C]
    dy3 = dy.reshape(xc.shape)
    n, count, dt = xc.shape[2], xc.shape[0] * xc.shape[2], dy.dtype
    dbeta = np.einsum("bcn->c", dy3)  # float[C]
    dgamma = np.einsum("bcn,bcn->c", dy3, xc) * invstd  # float[C]
    dx = None
    if want.inputs[0]:
        k1 = p["gamma"] * invstd  # dx = k1 (dy - dbeta/N - xhat dgamma/N)
        dx = dy3 * _rows(k1, n, dt)
        if training:
            dx -= xc * _rows(k1 * invstd * dgamma / count, n, dt)
            dx -= _rows(k1 * dbeta / count, n, dt)
        dx = dx.reshape(dy.shape)
    grads = {role: g for role, g in (("gamma", dgamma), ("beta", dbeta)) if role in want.params}
    return [dx], grads


def _macs(attrs, in_shapes, out_shape):
    """One multiply-add per element (scale and shift; folded away in int8)."""
    return int(np.prod(out_shape))


register(OpDef("batchnorm", _infer, batchnorm_forward, batchnorm_backward, _macs, _param_shapes,
               _init, trainable=("gamma", "beta"), buffers=("running_mean", "running_var"),
               doc="batch normalisation over channels (C first)"))
