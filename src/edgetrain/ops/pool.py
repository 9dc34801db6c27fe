"""Pooling, float side: maxpool2d, avgpool2d (attrs kernel, stride = kernel, padding = 0;
floor mode, PyTorch semantics: max pads with -inf, average counts the zero padding) and
global_avg_pool over all spatial dims ((C, H, W) or (C, L) -> (C,)), as in Lin et al. 2014,
"Network In Network".

Both windowed pools loop over kernel offsets only (a handful of strided slices), never over
pixels. Max pooling routes the gradient to the first maximum of each window in row-major
order, as PyTorch does.

>>> import numpy as np
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> maxpool2d_forward({"kernel": 2}, [x], {}, False)[0][0, 0].tolist()
[[5.0, 7.0], [13.0, 15.0]]
>>> global_avg_pool_forward({}, [x], {}, False)[0].tolist()
[[7.5]]
"""

from __future__ import annotations

import math
import sys

import numpy as np

from edgetrain.errors import EdgetrainError
from edgetrain.ir.registry import OpDef, register
from edgetrain.ops.conv import pad_hw, pair, window


def pool_geometry(attrs, in_shape, op):
    """(kernel, stride, padding, out_hw) of a 2D pool over a (C, H, W) input."""
    if len(in_shape) != 3:
        raise EdgetrainError(f"{op} expects a (C, H, W) input per sample, got {tuple(in_shape)}")
    kernel = pair(attrs["kernel"], "kernel")
    stride = pair(attrs.get("stride") or attrs["kernel"], "stride")
    padding = pair(attrs.get("padding", 0), "padding")
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise EdgetrainError(f"{op}: kernel and stride must be >= 1, padding >= 0 "
                             f"(got {dict(attrs)})")
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise EdgetrainError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    out_hw = tuple((n + 2 * p - k) // s + 1
                   for n, p, k, s in zip(in_shape[1:], padding, kernel, stride))
    if min(out_hw) < 1:
        raise EdgetrainError(f"{op}: kernel {kernel} is larger than the input {in_shape[1:]}")
    return kernel, stride, padding, out_hw


def _infer_pool(op):
    def infer(attrs, in_shapes):
        *_, out_hw = pool_geometry(attrs, in_shapes[0], op)
        return (in_shapes[0][0], *out_hw)
    return infer


def _check_batch(x, op):
    if x.ndim != 4:
        raise EdgetrainError(f"{op}: input batch has shape {x.shape}, expected (B, C, H, W)")


def maxpool2d_forward(attrs, xs, p, training):
    (x,) = xs  # float[B, C, H, W]
    _check_batch(x, "maxpool2d")
    (kh, kw), stride, padding, out_hw = pool_geometry(attrs, x.shape[1:], "maxpool2d")
    xp = pad_hw(x, padding, -np.inf)
    y = window(xp, 0, 0, stride, out_hw).copy()  # float[B, C, Ho, Wo]
    for k in range(1, kh * kw):
        np.maximum(y, window(xp, k // kw, k % kw, stride, out_hw), out=y)
    return y, (xp, y, (kh, kw), stride, padding, x.shape)


def maxpool2d_backward(attrs, ctx, dy, p, want):
    """Each window's error goes to its first maximum (row-major), found again by comparison
    (cheaper than keeping an argmax; masks multiply, they do not select)."""
    if not want.inputs[0]:
        return [None], {}
    xp, y, (kh, kw), stride, (ph, pw), shape = ctx
    overlap = stride[0] < kh or stride[1] < kw
    dxp = np.zeros(xp.shape, dy.dtype)
    taken = np.zeros(y.shape, bool)  # windows whose maximum already got the error
    for k in range(kh * kw):
        first = window(xp, k // kw, k % kw, stride, y.shape[2:]) == y
        first &= ~taken
        taken |= first
        target = window(dxp, k // kw, k % kw, stride, y.shape[2:])
        if overlap:
            target += dy * first
        else:
            target[...] = dy * first
    return [dxp[:, :, ph:ph + shape[2], pw:pw + shape[3]]], {}


def avgpool2d_forward(attrs, xs, p, training):
    (x,) = xs  # float[B, C, H, W]
    _check_batch(x, "avgpool2d")
    (kh, kw), stride, padding, out_hw = pool_geometry(attrs, x.shape[1:], "avgpool2d")
    xp = pad_hw(x, padding)
    y = np.zeros((*x.shape[:2], *out_hw), x.dtype)  # float[B, C, Ho, Wo]
    for k in range(kh * kw):
        y += window(xp, k // kw, k % kw, stride, out_hw)
    y *= 1.0 / (kh * kw)
    return y, (x.shape, (kh, kw), stride, padding)


def avgpool2d_backward(attrs, ctx, dy, p, want):
    if not want.inputs[0]:
        return [None], {}
    shape, (kh, kw), stride, (ph, pw) = ctx
    dxp = np.zeros((*shape[:2], shape[2] + 2 * ph, shape[3] + 2 * pw), dy.dtype)
    share = dy * (1.0 / (kh * kw))
    for k in range(kh * kw):
        window(dxp, k // kw, k % kw, stride, dy.shape[2:])[...] += share
    return [dxp[:, :, ph:ph + shape[2], pw:pw + shape[3]]], {}


def _infer_gap(attrs, in_shapes):
    (shape,) = in_shapes
    if len(shape) not in (2, 3):
        raise EdgetrainError(f"global_avg_pool expects (C, H, W) or (C, L) per sample, got "
                             f"{tuple(shape)}")
    return (shape[0],)


def global_avg_pool_forward(attrs, xs, p, training):
    (x,) = xs  # float[B, C, *spatial]
    if x.ndim not in (3, 4):
        raise EdgetrainError(f"global_avg_pool: input batch has shape {x.shape}, expected "
                             "(B, C, H, W) or (B, C, L)")
    return x.reshape(*x.shape[:2], -1).mean(axis=2), x.shape  # float[B, C]


def global_avg_pool_backward(attrs, shape, dy, p, want):
    if not want.inputs[0]:
        return [None], {}
    n = math.prod(shape[2:])
    dx = np.broadcast_to((dy * (1.0 / n))[:, :, None], (*shape[:2], n))  # float[B, C, n]
    return [np.ascontiguousarray(dx).reshape(shape)], {}


def _no_macs(attrs, in_shapes, out_shape):
    return 0


def _avg_macs(attrs, in_shapes, out_shape):
    """One accumulate per window element."""
    return math.prod(out_shape) * math.prod(pair(attrs["kernel"]))


def _gap_macs(attrs, in_shapes, out_shape):
    return math.prod(in_shapes[0])


register(OpDef("maxpool2d", _infer_pool("maxpool2d"), maxpool2d_forward, maxpool2d_backward,
               _no_macs, doc="2D max pooling"))
register(OpDef("avgpool2d", _infer_pool("avgpool2d"), avgpool2d_forward, avgpool2d_backward,
               _avg_macs, doc="2D average pooling (zero padding counted)"))
register(OpDef("global_avg_pool", _infer_gap, global_avg_pool_forward,
               global_avg_pool_backward, _gap_macs, doc="mean over all spatial dims -> (C,)"))


# --- int8 --- (max pooling works on the codes directly; average pooling sums the centred
# codes exactly and requantizes by 1/n into the input's scale; backward returns the summed
# centred errors, whose scale is the output error's scale / n)
def int_maxpool2d_forward(attrs, q, zero, qmax, mode, rng):
    (kh, kw), stride, padding, out_hw = pool_geometry(attrs, q.shape[1:], "maxpool2d")
    if _pairs_apply((kh, kw), stride, padding, q.shape):
        y, arg = _maxpool_pairs(q)
        return y, (arg, q.shape, (kh, kw), stride, padding)
    xp = pad_hw(q.astype(np.int16), padding, -32768) if any(padding) else q  # below any code
    wins = [window(xp, k // kw, k % kw, stride, out_hw) for k in range(kh * kw)]
    y = wins[0].copy()  # int[B, C, Ho, Wo]
    for win in wins[1:]:
        np.maximum(y, win, out=y)
    # offset index of the first maximum (as the float op): the lowest k whose code equals
    # the max, found by writing k = last .. 0 (int8 holds any kernel up to 11 x 11)
    arg = np.full(y.shape, kh * kw - 1, np.int8 if kh * kw <= 127 else np.int32)
    for k in range(kh * kw - 2, -1, -1):
        np.copyto(arg, k, where=wins[k] == y)
    return y.astype(np.int8, copy=False), (arg, q.shape, (kh, kw), stride, padding)


def int_maxpool2d_backward(attrs, ctx, e):
    arg, shape, (kh, kw), stride, (ph, pw) = ctx
    dxp = np.zeros((*shape[:2], shape[2] + 2 * ph, shape[3] + 2 * pw), e.dtype)
    for k in range(kh * kw):
        window(dxp, k // kw, k % kw, stride, arg.shape[2:])[...] += np.where(arg == k, e, 0)
    return dxp[:, :, ph:ph + shape[2], pw:pw + shape[3]]  # centred errors, summed


def int_maxpool2d_backward_codes(attrs, ctx, q, zero):
    """Error codes routed to each window's first maximum, the zero code elsewhere (the same
    integers as the centred backward; overlapping windows sum, so they take that path)."""
    arg, shape, (kh, kw), stride, padding = ctx
    if tuple(stride) != (kh, kw) or any(padding):
        e = int_maxpool2d_backward(attrs, ctx, q.astype(np.int32) - zero) + zero
        return np.clip(e, -128, 127).astype(np.int8)
    if _pairs_apply((kh, kw), stride, padding, shape):
        return _unpool_pairs(arg, q, zero, shape)
    dx = np.full(shape, zero, np.int8)
    ho, wo = arg.shape[2:]
    for k in range(kh * kw):
        view = dx[:, :, k // kw:k // kw + kh * ho:kh, k % kw:k % kw + kw * wo:kw]
        np.copyto(view, q, where=arg == k)
    return dx


# 2x2 windows at stride 2 (the common case) on contiguous rows: NumPy is slow on int8 views
# with stride 2, so each image row is read as int16 pairs (even column = low byte on a
# little-endian host) and split into its even and odd columns. Same integers as the loops.
def _pairs_apply(kernel, stride, padding, shape) -> bool:
    return (tuple(kernel) == (2, 2) and tuple(stride) == (2, 2) and not any(padding)
            and shape[-2] % 2 == 0 and shape[-1] % 2 == 0 and sys.byteorder == "little")


def _maxpool_pairs(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max, offset k = 2 i + j of the first maximum in row-major order) of each 2x2 window
    of int8 q[B, C, H, W]: int8[B, C, H/2, W/2] each."""
    b, c, h, w = q.shape
    pairs = np.ascontiguousarray(q).view(np.int16)  # [B, C, H, W/2]
    even, odd = pairs.astype(np.int8), (pairs >> 8).astype(np.int8)  # the low, high bytes
    row_max = np.maximum(even, odd).reshape(b, c, h // 2, 2, w // 2)
    row_j = (odd > even).reshape(b, c, h // 2, 2, w // 2)  # a tie keeps the even column
    lower = row_max[:, :, :, 1] > row_max[:, :, :, 0]  # a tie keeps the upper row
    j = row_j[:, :, :, 0] ^ row_j[:, :, :, 1]  # j of the chosen row (bool ops: no np.where)
    j &= lower
    j ^= row_j[:, :, :, 0]
    arg = np.add(lower, lower, dtype=np.int8)  # 2 i
    arg += j
    return np.maximum(row_max[:, :, :, 0], row_max[:, :, :, 1]), arg


def _unpool_pairs(arg: np.ndarray, q: np.ndarray, zero, shape) -> np.ndarray:
    """int8[shape]: each window's code q at its offset arg, the zero code elsewhere."""
    b, c, h, w = shape
    d = np.subtract(q, zero, dtype=np.int16)  # code - zero: z + d * [arg == k] is q or z
    pairs = np.empty((b, c, h // 2, 2, w // 2), np.int16)  # [B, C, H/2, i, W/2]
    for i in (0, 1):
        even = d * (arg == 2 * i)  # int16 (no np.where: slow with a scalar operand)
        even += zero
        even &= 0xFF  # the low byte
        odd = d * (arg == 2 * i + 1)
        odd += zero
        odd <<= 8
        np.bitwise_or(odd, even, out=pairs[:, :, :, i])
    return pairs.view(np.int8).reshape(shape)


def _window_sum(xc, attrs):
    kernel, stride, padding, out_hw = pool_geometry(attrs, xc.shape[1:], "avgpool2d")
    xp = pad_hw(xc, padding)
    acc = np.zeros((*xc.shape[:2], *out_hw), np.int64)  # int64[B, C, Ho, Wo]
    for k in range(kernel[0] * kernel[1]):
        acc += window(xp, k // kernel[1], k % kernel[1], stride, out_hw)
    return acc, (xc.shape, kernel, stride, padding)


def _requantize_mean(acc, n, zero, mode, rng):
    from edgetrain.numerics.requant import requantize

    return requantize(acc, np.float32(1) / np.float32(n), zero, mode, rng)


def int_avgpool2d_forward(attrs, q, zero, qmax, mode, rng):
    acc, ctx = _window_sum(q.astype(np.int64) - zero, attrs)
    return _requantize_mean(acc, math.prod(ctx[1]), zero, mode, rng), ctx


def int_avgpool2d_backward(attrs, ctx, e):
    shape, (kh, kw), stride, (ph, pw) = ctx
    dxp = np.zeros((*shape[:2], shape[2] + 2 * ph, shape[3] + 2 * pw), e.dtype)
    for k in range(kh * kw):
        window(dxp, k // kw, k % kw, stride, e.shape[2:])[...] += e
    return dxp[:, :, ph:ph + shape[2], pw:pw + shape[3]]


def _avg_divisor(attrs, in_shape):
    return math.prod(pair(attrs["kernel"]))


def int_gap_forward(attrs, q, zero, qmax, mode, rng):
    acc = (q.astype(np.int64) - zero).reshape(*q.shape[:2], -1).sum(axis=2)  # int64[B, C]
    return _requantize_mean(acc, math.prod(q.shape[2:]), zero, mode, rng), q.shape


def int_gap_backward(attrs, shape, e):
    return np.broadcast_to(e.reshape(*e.shape, *([1] * (len(shape) - 2))), shape).copy()


def _gap_divisor(attrs, in_shape):
    return math.prod(in_shape[1:])


def _register_int8():
    from edgetrain.numerics.kernels import IntKernel, register_int8

    register_int8("maxpool2d", IntKernel(int_maxpool2d_forward, int_maxpool2d_backward,
                                         backward_codes=int_maxpool2d_backward_codes))
    register_int8("avgpool2d", IntKernel(int_avgpool2d_forward, int_avgpool2d_backward,
                                         _avg_divisor))
    register_int8("global_avg_pool", IntKernel(int_gap_forward, int_gap_backward, _gap_divisor))


_register_int8()
