"""Element-wise activations: ReLU (Nair & Hinton 2010) and ReLU6 (min(max(x, 0), 6), as in
MobileNetV2, Sandler et al. 2018). Gradients follow PyTorch: 1 where 0 < x (< 6), else 0."""

from __future__ import annotations

import numpy as np

from edgetrain.ir.registry import OpDef, register


def _same(attrs, in_shapes):
    return in_shapes[0]


def _no_macs(attrs, in_shapes, out_shape):
    return 0


# The output is the context; masks are made in the backward pass only (a frozen layer or
# inference never pays for them). np.clip has a SIMD path (np.maximum is ~4x slower here);
# masks multiply the error (np.where is far slower).
def relu_forward(attrs, xs, p, training):
    y = np.clip(xs[0], 0, np.inf)
    return y, y


def relu_backward(attrs, y, dy, p, want):
    return [dy * (y > 0) if want.inputs[0] else None], {}


def relu6_forward(attrs, xs, p, training):
    y = np.clip(xs[0], 0, 6)
    return y, y


def relu6_backward(attrs, y, dy, p, want):
    return [dy * ((y > 0) & (y < 6)) if want.inputs[0] else None], {}


register(OpDef("relu", _same, relu_forward, relu_backward, _no_macs))
register(OpDef("relu6", _same, relu6_forward, relu6_backward, _no_macs))


# --- int8 --- (same scale and zero point in and out: ReLU clamps at the zero point, ReLU6
# also at qmax = the int8 code of 6.0, which the engine derives from the scale)
def int_relu_forward(attrs, q, zero, qmax, mode, rng):
    y = np.maximum(q, zero).astype(np.int8)  # int8[B, ...]
    return y, y > zero


def int_relu6_forward(attrs, q, zero, qmax, mode, rng):
    y = np.clip(q, zero, qmax).astype(np.int8)  # int8[B, ...]
    return y, (y > zero) & (y < qmax)


def int_mask_backward(attrs, mask, e):
    return np.where(mask, e, 0)  # int64[B, ...] centred errors


def int_mask_backward_codes(attrs, mask, q, zero):
    """int8: the kept codes, else the zero code, as zero + (q - zero) * mask (arithmetic:
    NumPy's where() is an order of magnitude slower on such masks)."""
    d = np.subtract(q, zero, dtype=np.int16)  # int16[B, ...], |q - zero| <= 255
    d *= mask
    d += zero
    return d.astype(np.int8)


def _register_int8():
    from edgetrain.numerics.kernels import IntKernel, register_int8

    register_int8("relu", IntKernel(int_relu_forward, int_mask_backward,
                                    backward_codes=int_mask_backward_codes))
    register_int8("relu6", IntKernel(int_relu6_forward, int_mask_backward,
                                     backward_codes=int_mask_backward_codes))


_register_int8()
