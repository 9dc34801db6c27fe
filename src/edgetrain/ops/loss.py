"""Losses: softmax cross-entropy (integer labels) and mean squared error.

``forward(attrs, [logits, target], {}, training) -> (mean loss over the batch, ctx)``;
``backward`` returns d(mean loss)/d(logits).
"""

from __future__ import annotations

import numpy as np

from edgetrain.ir.registry import OpDef, register


def _scalar(attrs, in_shapes):
    return ()


def _no_macs(attrs, in_shapes, out_shape):
    return 0


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_ce_forward(attrs, xs, p, training):
    logits, labels = xs  # float32[B, K], int[B]
    probs = softmax(logits.astype(np.float64))
    b = np.arange(len(labels))
    loss = -np.log(np.maximum(probs[b, labels], 1e-12)).mean()
    return float(loss), (probs, labels, logits.dtype)


def softmax_ce_backward(attrs, ctx, dy, p, want):
    probs, labels, dtype = ctx
    grad = probs.copy()
    grad[np.arange(len(labels)), labels] -= 1.0
    return [(grad * (dy / len(labels))).astype(dtype), None], {}  # float[B, K], logits' dtype


def mse_forward(attrs, xs, p, training):
    pred, target = xs
    diff = pred - target.reshape(pred.shape)
    return float(np.mean(diff.astype(np.float64) ** 2)), diff


def mse_backward(attrs, diff, dy, p, want):
    return [(2.0 * diff / diff.size * dy).astype(diff.dtype), None], {}


register(OpDef("softmax_ce", _scalar, softmax_ce_forward, softmax_ce_backward, _no_macs,
               kind="loss"))
register(OpDef("mse", _scalar, mse_forward, mse_backward, _no_macs, kind="loss"))
