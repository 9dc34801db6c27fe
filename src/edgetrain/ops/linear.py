"""Linear (fully connected): y = x W^T + b, W: float32[out, in]."""

from __future__ import annotations

from edgetrain.errors import EdgetrainError
from edgetrain.ir.registry import OpDef, register


def _infer(attrs, in_shapes):
    (shape,) = in_shapes
    if len(shape) != 1:
        raise EdgetrainError(f"linear expects a flat input (N,), got {shape}; add a flatten")
    return (int(attrs["out_features"]),)


def _param_shapes(attrs, in_shapes):
    return {"weight": (int(attrs["out_features"]), in_shapes[0][0]),
            "bias": (int(attrs["out_features"]),)}


def forward(attrs, xs, p, training):
    (x,) = xs  # float32[B, in]
    y = x @ p["weight"].T + p["bias"]  # float32[B, out]
    return y, x


def backward(attrs, x, dy, p, want):
    dx = dy @ p["weight"] if want.inputs[0] else None  # float32[B, in]
    dp = {}
    if "weight" in want.params:
        dp["weight"] = dy.T @ x  # float32[out, in]
    if "bias" in want.params:
        dp["bias"] = dy.sum(axis=0)
    return [dx], dp


def _macs(attrs, in_shapes, out_shape):
    return in_shapes[0][0] * out_shape[0]


register(OpDef("linear", _infer, forward, backward, _macs, _param_shapes,
               trainable=("weight", "bias")))


# --- int8 --- (integer side; the engine adds zero points, bias and requantization)
def int_forward(attrs, x, w):
    return x @ w.T, x  # float64[B, out] (exact integers when x, w are)


def int_backward_input(attrs, x, e, w, sel=None):
    if sel is None:
        return e @ w  # float64[B, in]
    return (sel.e[:, None, :] @ w[sel.idx])[:, 0]  # only the k kept rows per sample


def int_backward_weight(attrs, x, e, w_shape, sel=None, bound=None):
    """dW, exact; float32 when the batch sum of |e x| <= B * bound stays below 2^24."""
    import numpy as np

    dtype = np.float32 if bound is not None and len(e) * bound < 2**24 else np.float64
    x, e = x.astype(dtype, copy=False), e.astype(dtype, copy=False)
    if sel is None:
        return e.T @ x  # [out, in]
    rows = sel.e[:, :, None] * x[:, None, :]  # [B, k, in]
    dw = np.zeros(w_shape, rows.dtype)
    np.add.at(dw, sel.idx.ravel(), rows.reshape(-1, w_shape[1]))
    return dw


def _register_int8():
    from edgetrain.numerics.kernels import WeightKernel, register_int8

    register_int8("linear", WeightKernel(int_forward, int_backward_input, int_backward_weight))


_register_int8()
