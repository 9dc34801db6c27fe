"""Element-wise activations: ReLU, ReLU6."""

from __future__ import annotations

import numpy as np

from edgetrain.ir.registry import OpDef, register


def _same(attrs, in_shapes):
    return in_shapes[0]


def _no_macs(attrs, in_shapes, out_shape):
    return 0


def relu_forward(attrs, xs, p, training):
    y = np.maximum(xs[0], 0)
    return y, y > 0


def relu_backward(attrs, mask, dy, p, want):
    return [dy * mask if want.inputs[0] else None], {}


def relu6_forward(attrs, xs, p, training):
    x = xs[0]
    return np.clip(x, 0, 6), (x > 0) & (x < 6)


register(OpDef("relu", _same, relu_forward, relu_backward, _no_macs))
register(OpDef("relu6", _same, relu6_forward, relu_backward, _no_macs))
