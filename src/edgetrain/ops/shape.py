"""Shape and wiring ops: flatten (per sample to (N,)) and add (residual connection, as in
He et al. 2016, "Deep Residual Learning", and MobileNetV2's inverted residuals)."""

from __future__ import annotations

import math

from edgetrain.errors import EdgetrainError
from edgetrain.ir.registry import OpDef, register


def _no_macs(attrs, in_shapes, out_shape):
    return 0


def _flatten_shape(attrs, in_shapes):
    if len(in_shapes) != 1:
        raise EdgetrainError(f"flatten takes one input, got {len(in_shapes)}")
    return (math.prod(in_shapes[0]),)


def flatten_forward(attrs, xs, p, training):
    (x,) = xs  # float[B, *shape]
    return x.reshape(len(x), -1), x.shape  # float[B, prod(shape)]


def flatten_backward(attrs, shape, dy, p, want):
    return [dy.reshape(shape) if want.inputs[0] else None], {}


def _add_shape(attrs, in_shapes):
    if len(in_shapes) != 2:
        raise EdgetrainError(f"add takes two inputs (a residual pair), got {len(in_shapes)}")
    a, b = (tuple(s) for s in in_shapes)
    if a != b:
        raise EdgetrainError(f"add needs inputs of the same shape, got {a} and {b}")
    return a


def add_forward(attrs, xs, p, training):
    a, b = xs  # float[B, *shape] each
    return a + b, None


def add_backward(attrs, ctx, dy, p, want):
    return [dy if want.inputs[0] else None, dy if want.inputs[1] else None], {}


register(OpDef("flatten", _flatten_shape, flatten_forward, flatten_backward, _no_macs,
               doc="flatten per sample to (N,)"))
register(OpDef("add", _add_shape, add_forward, add_backward, _no_macs,
               doc="element-wise sum of two tensors (residual)"))


# --- int8 --- (flatten is a reshape of the codes; add requantizes both inputs to its own
# tracked scale, which the engine does, so its kernel is a marker)
def int_flatten_forward(attrs, q, zero, qmax, mode, rng):
    return q.reshape(len(q), -1), q.shape  # int8[B, N]


def int_flatten_backward(attrs, shape, e):
    return e.reshape(shape)


def _register_int8():
    from edgetrain.numerics.kernels import AddKernel, IntKernel, register_int8

    register_int8("flatten", IntKernel(int_flatten_forward, int_flatten_backward,
                                       backward_codes=lambda attrs, shape, q, zero:
                                       q.reshape(shape)))
    register_int8("add", AddKernel())


_register_int8()
