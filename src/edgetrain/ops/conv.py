"""Convolutions, float side: conv2d and conv1d (stride, padding, groups incl. depthwise).

Layout as PyTorch: x float[B, C, H, W] (conv1d: [B, C, L]), weight [O, C/groups, kh, kw]
(conv1d: [O, C/groups, k]), bias [O]. conv1d runs as conv2d with H = 1.

Two kernels, chosen by the shape (not by a flag):

* im2col + BLAS (Chellapilla et al. 2006, "High Performance Convolutional Neural Networks
  for Document Processing"): the columns are gathered with one strided slice per kernel
  offset into float[B, C*kh*kw, Ho*Wo], then one batched GEMM per group; a 1x1 stride-1
  convolution uses x itself as the columns. Backward: dW = dy . cols^T, dcols = W^T . dy
  and col2im accumulates dcols back per kernel offset with slicing (no np.add.at).
* depthwise (groups == C_in == C_out, MobileNet, Howard et al. 2017): a per-offset
  multiply-add; a block-diagonal GEMM would waste C-fold work. The padded input is laid out
  channels first and split into its stride phases, so each kernel offset reads one long
  contiguous run per channel across the whole batch (numpy's fast path) instead of many
  short rows; the few slots past each row's end are computed and dropped.

Arithmetic keeps the input dtype (float64 in, float64 math), so gradients can be checked
by finite differences in float64.

>>> import numpy as np
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> w, b = np.ones((1, 1, 2, 2), np.float32), np.zeros(1, np.float32)
>>> attrs = {"out_channels": 1, "kernel": 2, "stride": 2}
>>> y, _ = conv2d_forward(attrs, [x], {"weight": w, "bias": b}, False)
>>> y[0, 0].tolist()
[[10.0, 18.0], [42.0, 50.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetrain.errors import EdgetrainError
from edgetrain.ir.registry import OpDef, register


def pair(value, label: str = "value") -> tuple[int, int]:
    """An int or a pair of ints as (height, width)."""
    if isinstance(value, int | np.integer):
        return int(value), int(value)
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise EdgetrainError(f"{label} must be an int or a pair of ints, got {value!r}")


@dataclass(frozen=True)
class Geometry:
    """Everything about one 2D convolution except the data."""

    c_in: int
    c_out: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    in_hw: tuple[int, int]

    @property
    def out_hw(self) -> tuple[int, int]:
        return tuple((n + 2 * p - k) // s + 1 for n, p, k, s in
                     zip(self.in_hw, self.padding, self.kernel, self.stride))

    @property
    def depthwise(self) -> bool:
        return self.groups == self.c_in == self.c_out and self.groups > 1

    @property
    def pointwise(self) -> bool:
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)


def geometry_2d(attrs, in_shape: tuple[int, ...], op: str = "conv2d") -> Geometry:
    """Validated geometry of a conv2d node from its attrs and per-sample input (C, H, W)."""
    if len(in_shape) != 3:
        raise EdgetrainError(f"{op} expects a (C, H, W) input per sample, got {tuple(in_shape)}")
    return _geometry(attrs, in_shape[0], (in_shape[1], in_shape[2]), op,
                     pair(attrs["kernel"], "kernel"), pair(attrs.get("stride", 1), "stride"),
                     pair(attrs.get("padding", 0), "padding"))


def geometry_1d(attrs, in_shape: tuple[int, ...]) -> Geometry:
    """Geometry of a conv1d node as a conv2d with height 1; input (C, L)."""
    if len(in_shape) != 2:
        raise EdgetrainError(f"conv1d expects a (C, L) input per sample, got {tuple(in_shape)}")
    return _geometry(attrs, in_shape[0], (1, in_shape[1]), "conv1d",
                     (1, int(attrs["kernel"])), (1, int(attrs.get("stride", 1))),
                     (0, int(attrs.get("padding", 0))))


def _geometry(attrs, c_in, in_hw, op, kernel, stride, padding) -> Geometry:
    c_out, groups = int(attrs["out_channels"]), int(attrs.get("groups", 1))
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0 or c_out < 1 or groups < 1:
        raise EdgetrainError(f"{op}: kernel, stride, out_channels and groups must be >= 1 and "
                             f"padding >= 0 (got {dict(attrs)})")
    if c_in % groups or c_out % groups:
        raise EdgetrainError(f"{op}: groups={groups} must divide input channels ({c_in}) and "
                             f"out_channels ({c_out})")
    geo = Geometry(c_in, c_out, kernel, stride, padding, groups, tuple(in_hw))
    if min(geo.out_hw) < 1:
        raise EdgetrainError(f"{op}: kernel {kernel} is larger than the padded input "
                             f"{tuple(n + 2 * p for n, p in zip(in_hw, padding))}")
    return geo


def _check_input(x: np.ndarray, weight: np.ndarray, attrs, op: str) -> None:
    """The batch must be (B, C, *spatial) with C matching the weight's input channels."""
    c_in = weight.shape[1] * int(attrs.get("groups", 1))
    if x.ndim != weight.ndim or x.shape[1] != c_in:
        spatial = "H, W" if weight.ndim == 4 else "L"
        raise EdgetrainError(f"{op}: input batch has shape {x.shape}, expected (B, {c_in}, "
                             f"{spatial})")


def pad_hw(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """x float[B, C, H, W] padded on H and W (a copy only when padding is non-zero)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    b, c, h, w = x.shape
    out = np.full((b, c, h + 2 * ph, w + 2 * pw), value, x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def window(xp: np.ndarray, i: int, j: int, stride, out_hw) -> np.ndarray:
    """The strided view of padded xp[B, C, Hp, Wp] that kernel offset (i, j) reads:
    float[B, C, Ho, Wo]."""
    (sh, sw), (ho, wo) = stride, out_hw
    return xp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]


def im2col(x: np.ndarray, geo: Geometry) -> np.ndarray:
    """Columns float[B, C*kh*kw, Ho*Wo] (rows ordered c, i, j as the weight's last axes)."""
    b = len(x)
    (ho, wo), (kh, kw) = geo.out_hw, geo.kernel
    if geo.pointwise:
        return x.reshape(b, geo.c_in, ho * wo)
    xp = pad_hw(x, geo.padding)
    cols = np.empty((b, geo.c_in, kh, kw, ho, wo), x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = window(xp, i, j, geo.stride, (ho, wo))
    return cols.reshape(b, geo.c_in * kh * kw, ho * wo)


def col2im(dcols: np.ndarray, geo: Geometry) -> np.ndarray:
    """The adjoint of im2col: float[B, C*kh*kw, Ho*Wo] -> float[B, C, H, W], summing overlaps."""
    b = len(dcols)
    (h, w), (ho, wo), (kh, kw), (ph, pw) = geo.in_hw, geo.out_hw, geo.kernel, geo.padding
    if geo.pointwise:
        return dcols.reshape(b, geo.c_in, h, w)
    d6 = dcols.reshape(b, geo.c_in, kh, kw, ho, wo)
    dxp = np.zeros((b, geo.c_in, h + 2 * ph, w + 2 * pw), dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            window(dxp, i, j, geo.stride, (ho, wo))[...] += d6[:, :, i, j]
    return dxp[:, :, ph:ph + h, pw:pw + w]


def _gemm_forward(x, weight, geo):
    cols = im2col(x, geo)  # float[B, C*kh*kw, P]
    g = geo.groups
    wg = weight.reshape(g, geo.c_out // g, -1)  # float[g, O/g, C/g*kh*kw]
    if g == 1:
        y = np.matmul(wg[0], cols)  # float[B, O, P]
    else:
        y = np.matmul(wg, cols.reshape(len(x), g, -1, cols.shape[-1]))  # float[B, g, O/g, P]
    return y.reshape(len(x), geo.c_out, *geo.out_hw), cols


def _gemm_backward(cols, dy, weight, geo, want_dx, want_dw):
    b, g = len(dy), geo.groups
    dyg = dy.reshape(b, g, geo.c_out // g, -1)  # float[B, g, O/g, P]
    colsg = cols.reshape(b, g, -1, cols.shape[-1])  # float[B, g, K, P]
    dw = dx = None
    if want_dw:
        dw = np.matmul(dyg, colsg.transpose(0, 1, 3, 2)).sum(axis=0)  # float[g, O/g, K]
        dw = dw.reshape(weight.shape)
    if want_dx:
        wg = weight.reshape(g, geo.c_out // g, -1)
        dcols = np.matmul(wg.transpose(0, 2, 1), dyg)  # float[B, g, K, P]
        dx = col2im(dcols.reshape(b, -1, dcols.shape[-1]), geo)
    return dx, dw


def _phase_rows(phase: int, stride: int, pad: int, n: int) -> tuple[int, slice, int]:
    """Where phase `phase` of the padded axis meets the unpadded one: (first index in the
    phase, the input's slice, count)."""
    t0 = max(0, -(-(pad - phase) // stride))  # first t with phase + stride*t - pad >= 0
    start = phase + stride * t0 - pad
    return t0, slice(start, n, stride), len(range(start, n, stride))


def phase_split(x: np.ndarray, geo: Geometry) -> tuple[np.ndarray, int, int]:
    """The zero-padded input, channels outermost, split into its stride phases and flattened:
    float[C, sh*sw, (B+1)*Hq*Wq], and Hq, Wq. Per channel, kernel offset (i, j) then reads ONE
    contiguous run across the whole batch (see `phase_run`), so numpy loops over long rows;
    the extra zero image keeps the last run in bounds."""
    (sh, sw), (ph, pw), (h, w) = geo.stride, geo.padding, geo.in_hw
    b, c = x.shape[:2]
    hq, wq = -(-(h + 2 * ph) // sh), -(-(w + 2 * pw) // sw)
    out = np.zeros((c, sh, sw, b + 1, hq, wq), x.dtype)
    xt = x.transpose(1, 0, 2, 3)  # view [C, B, H, W]
    for a in range(sh):
        t0, rows, nr = _phase_rows(a, sh, ph, h)
        for d in range(sw):
            u0, cols, nc = _phase_rows(d, sw, pw, w)
            out[:, a, d, :b, t0:t0 + nr, u0:u0 + nc] = xt[:, :, rows, cols]
    return out.reshape(c, sh * sw, (b + 1) * hq * wq), hq, wq


def phase_merge(flat: np.ndarray, geo: Geometry, hq: int, wq: int) -> np.ndarray:
    """The adjoint of phase_split (padding dropped): float[B, C, H, W]."""
    (sh, sw), (ph, pw), (h, w) = geo.stride, geo.padding, geo.in_hw
    ph6 = flat.reshape(len(flat), sh, sw, -1, hq, wq)
    b = ph6.shape[3] - 1
    x = np.empty((b, len(flat), h, w), flat.dtype)
    xt = x.transpose(1, 0, 2, 3)
    for a in range(sh):
        t0, rows, nr = _phase_rows(a, sh, ph, h)
        for d in range(sw):
            u0, cols, nc = _phase_rows(d, sw, pw, w)
            xt[:, :, rows, cols] = ph6[:, a, d, :b, t0:t0 + nr, u0:u0 + nc]
    return x


def phase_run(flat: np.ndarray, geo: Geometry, n: int, wq: int, i: int, j: int) -> np.ndarray:
    """What kernel offset (i, j) reads for the n = B*Hq*Wq output slots: float[C, n]. Slot
    (b, r, q) is output (r, q) of sample b when r < Ho and q < Wo; the rest are ignored."""
    sh, sw = geo.stride
    start = (i // sh) * wq + j // sw
    return flat[:, (i % sh) * sw + j % sw, start:start + n]


def _depthwise_forward(x, weight, geo):
    flat, hq, wq = phase_split(x, geo)
    (ho, wo), b, n = geo.out_hw, len(x), len(x) * hq * wq
    acc = np.empty((geo.c_out, n), np.result_type(x, weight))  # float[C, B*Hq*Wq]
    tmp = np.empty_like(acc)
    for k in range(geo.kernel[0] * geo.kernel[1]):
        i, j = divmod(k, geo.kernel[1])
        run = phase_run(flat, geo, n, wq, i, j)
        np.multiply(run, weight[:, 0, i, j, None], out=acc if k == 0 else tmp)
        if k:
            acc += tmp
    y = acc.reshape(geo.c_out, b, hq, wq)[:, :, :ho, :wo].transpose(1, 0, 2, 3)
    return np.ascontiguousarray(y), (flat, hq, wq)  # float[B, C, Ho, Wo]


def _depthwise_backward(saved, dy, weight, geo, want_dx, want_dw):
    flat, hq, wq = saved
    (ho, wo), (kh, kw), (b, c) = geo.out_hw, geo.kernel, dy.shape[:2]
    dyf = np.zeros((c, b, hq, wq), dy.dtype)  # the ignored slots get no error
    dyf[:, :, :ho, :wo] = dy.transpose(1, 0, 2, 3)
    dyf = dyf.reshape(c, b * hq * wq)  # float[C, B*Hq*Wq]
    dw = np.zeros(weight.shape, dy.dtype) if want_dw else None
    dflat = np.zeros(flat.shape, dy.dtype) if want_dx else None
    tmp = np.empty_like(dyf)
    for i in range(kh):
        for j in range(kw):
            if want_dw:  # per-channel dot products as a batched matmul
                run = phase_run(flat, geo, dyf.shape[1], wq, i, j)
                dw[:, 0, i, j] = np.matmul(dyf[:, None, :], run[:, :, None])[:, 0, 0]
            if want_dx:
                np.multiply(dyf, weight[:, 0, i, j, None], out=tmp)
                phase_run(dflat, geo, dyf.shape[1], wq, i, j)[...] += tmp
    return (phase_merge(dflat, geo, hq, wq) if want_dx else None), dw


# kernel family -> (forward(x, w, geo) -> (y, saved), backward(saved, dy, w, geo, dx?, dw?))
_KERNELS = {True: (_depthwise_forward, _depthwise_backward),
            False: (_gemm_forward, _gemm_backward)}


def conv_forward_2d(x, weight, bias, geo: Geometry):
    """y float[B, O, Ho, Wo] and the context the backward pass needs."""
    fwd, _ = _KERNELS[geo.depthwise]
    y, saved = fwd(x, weight, geo)
    y3 = y.reshape(len(x), geo.c_out, -1)  # view [B, O, P]; per-channel rows: long inner loops
    y3 += np.repeat(bias.astype(y.dtype, copy=False)[:, None], y3.shape[2], axis=1)
    return y, (saved, geo)


def conv_backward_2d(ctx, dy, weight, want_dx: bool, want_params: frozenset):
    """(dx float[B, C, H, W] or None, {role: grad}) for a 2D convolution."""
    saved, geo = ctx
    _, bwd = _KERNELS[geo.depthwise]
    dx, dw = bwd(saved, dy, weight, geo, want_dx, "weight" in want_params)
    grads = {"weight": dw} if dw is not None else {}
    if "bias" in want_params:
        grads["bias"] = np.einsum("bchw->c", dy)  # float[O]
    return dx, grads


def conv2d_forward(attrs, xs, p, training):
    (x,) = xs  # float[B, C, H, W]
    _check_input(x, p["weight"], attrs, "conv2d")
    geo = geometry_2d(attrs, x.shape[1:])
    return conv_forward_2d(x, p["weight"], p["bias"], geo)


def conv2d_backward(attrs, ctx, dy, p, want):
    dx, grads = conv_backward_2d(ctx, dy, p["weight"], want.inputs[0], want.params)
    return [dx], grads


def conv1d_forward(attrs, xs, p, training):
    (x,) = xs  # float[B, C, L]
    _check_input(x, p["weight"], attrs, "conv1d")
    geo = geometry_1d(attrs, x.shape[1:])
    y, ctx = conv_forward_2d(x[:, :, None, :], p["weight"][:, :, None, :], p["bias"], geo)
    return y[:, :, 0, :], ctx  # float[B, O, Lo]


def conv1d_backward(attrs, ctx, dy, p, want):
    dx, grads = conv_backward_2d(ctx, dy[:, :, None, :], p["weight"][:, :, None, :],
                                 want.inputs[0], want.params)
    if "weight" in grads:
        grads["weight"] = grads["weight"][:, :, 0, :]  # float[O, C/g, k]
    return [dx[:, :, 0, :] if dx is not None else None], grads


def _infer_2d(attrs, in_shapes):
    geo = geometry_2d(attrs, in_shapes[0])
    return (geo.c_out, *geo.out_hw)


def _infer_1d(attrs, in_shapes):
    geo = geometry_1d(attrs, in_shapes[0])
    return (geo.c_out, geo.out_hw[1])


def _params_2d(attrs, in_shapes):
    geo = geometry_2d(attrs, in_shapes[0])
    return {"weight": (geo.c_out, geo.c_in // geo.groups, *geo.kernel), "bias": (geo.c_out,)}


def _params_1d(attrs, in_shapes):
    geo = geometry_1d(attrs, in_shapes[0])
    return {"weight": (geo.c_out, geo.c_in // geo.groups, geo.kernel[1]), "bias": (geo.c_out,)}


def _init(param_shapes):
    """PyTorch's default conv init: weight and bias ~ U(+-1/sqrt(fan_in))."""
    def init(attrs, in_shapes, rng):
        shapes = param_shapes(attrs, in_shapes)
        bound = 1.0 / np.sqrt(np.prod(shapes["weight"][1:]))
        return {role: rng.uniform(-bound, bound, size=shape).astype(np.float32)
                for role, shape in shapes.items()}
    return init


def _macs(attrs, in_shapes, out_shape):
    c_in = in_shapes[0][0]
    kernel = np.prod(pair(attrs["kernel"])) if len(in_shapes[0]) == 3 else int(attrs["kernel"])
    return int(np.prod(out_shape) * (c_in // int(attrs.get("groups", 1))) * kernel)


register(OpDef("conv2d", _infer_2d, conv2d_forward, conv2d_backward, _macs, _params_2d,
               _init(_params_2d), trainable=("weight", "bias"),
               doc="2D convolution (stride, padding, groups, depthwise)"))
register(OpDef("conv1d", _infer_1d, conv1d_forward, conv1d_backward, _macs, _params_1d,
               _init(_params_1d), trainable=("weight", "bias"),
               doc="1D convolution over (C, L)"))


# --- int8 --- (integer side: the same kernels on float64 arrays holding integers, exact
# while partial sums stay below 2^53; inputs are centred (q - zero), so zero padding is the
# real zero. The engine adds zero points, bias and requantization.)
def int_conv2d_forward(attrs, x, w):
    geo = geometry_2d(attrs, x.shape[1:])
    y, saved = _KERNELS[geo.depthwise][0](x, w, geo)  # float64[B, O, Ho, Wo]
    return y, (saved, geo)


def _kept_rows(sel, b):
    return sel.e.reshape(b, sel.e.shape[1], -1)  # [B, k, P]


def _transposed_per_offset(e, w, geo):
    """W^T e accumulated straight into the padded input, one GEMM per kernel offset (no
    [B, C*kh*kw, P] column buffer): dx float[B, C, H, W]."""
    b, (h, wd), (ho, wo), (kh, kw), (ph, pw) = (len(e), geo.in_hw, geo.out_hw, geo.kernel,
                                                geo.padding)
    e3 = e.reshape(b, geo.c_out, ho * wo)
    dxp = np.zeros((b, geo.c_in, h + 2 * ph, wd + 2 * pw), e.dtype)
    for i in range(kh):
        for j in range(kw):
            part = np.matmul(np.ascontiguousarray(w[:, :, i, j].T), e3)  # [B, C, P]
            window(dxp, i, j, geo.stride, (ho, wo))[...] += part.reshape(b, geo.c_in, ho, wo)
    return dxp[:, :, ph:ph + h, pw:pw + wd]


def int_conv2d_backward_input(attrs, ctx, e, w, sel=None):
    saved, geo = ctx
    if sel is None and geo.groups == 1 and not geo.pointwise:
        return _transposed_per_offset(e, w, geo)
    if sel is None or geo.groups > 1:  # grouped: dropped channels have zero error
        return _KERNELS[geo.depthwise][1](saved, e, w, geo, True, False)[0]
    w_sel = w.reshape(geo.c_out, -1)[sel.idx]  # [B, k, C*kh*kw]: the kept filters only
    dcols = np.matmul(w_sel.transpose(0, 2, 1), _kept_rows(sel, len(e)))  # [B, K, P]
    return col2im(dcols, geo)  # [B, C, H, W]


def int_conv2d_backward_weight(attrs, ctx, e, w_shape, sel=None, bound=None):
    """dW, exact. `bound` = max |e| * max |x|: per-sample GEMMs run in float32 over chunks
    of positions whose sums stay below 2^24; chunks and samples are summed in float64."""
    saved, geo = ctx
    if sel is not None and geo.groups == 1:
        saved = saved.astype(np.float64, copy=False)  # one dtype: mixed matmul skips BLAS
        kept = _kept_rows(sel, len(e)).astype(np.float64, copy=False)
        rows = np.matmul(kept, saved.transpose(0, 2, 1))  # [B, k, K]
        dw = np.zeros((w_shape[0], rows.shape[2]), rows.dtype)
        np.add.at(dw, sel.idx.ravel(), rows.reshape(-1, rows.shape[2]))
        return dw.reshape(w_shape)
    positions = e[0, 0].size
    if geo.depthwise and bound is not None and saved[1] * saved[2] * bound < 2**24:
        return _int_depthwise_weight(saved, e, w_shape, geo)
    if geo.depthwise:
        return _depthwise_backward(saved, e.astype(np.float64), np.zeros(w_shape), geo, False,
                                   True)[1]
    chunk = positions if bound is None else (2**24 - 1) // max(int(bound), 1)
    if bound is None or chunk < min(positions, 64):
        saved = saved.astype(np.float64, copy=False)  # one dtype: mixed matmul skips BLAS
        return _gemm_backward(saved, e.astype(np.float64), np.zeros(w_shape), geo, False,
                              True)[1]
    b, g = len(e), geo.groups
    eg = e.astype(np.float32, copy=False).reshape(b, g, geo.c_out // g, -1)  # [B, g, O/g, P]
    cols = saved.astype(np.float32, copy=False).reshape(b, g, -1, saved.shape[-1])
    dw = 0.0
    for p0 in range(0, positions, chunk):  # each partial sum <= chunk * bound < 2^24
        part = np.matmul(eg[..., p0:p0 + chunk], cols[..., p0:p0 + chunk].transpose(0, 1, 3, 2))
        dw = dw + part.sum(axis=0, dtype=np.float64)  # [g, O/g, K], exact below 2^53
    return dw.reshape(w_shape)


def _int_depthwise_weight(saved, e, w_shape, geo):
    """Depthwise dW, exact: per channel and sample the sum over the Hq*Wq phase slots of
    e * x runs in float32 (the caller checked Hq*Wq * max|e| * max|x| < 2^24), the samples
    are summed in float64. float64[C, 1, kh, kw]."""
    flat, hq, wq = saved  # float32[C, phases, (B+1)*Hq*Wq] from the forward pass
    (ho, wo), (kh, kw), (b, c) = geo.out_hw, geo.kernel, e.shape[:2]
    ef = np.zeros((c, b, hq, wq), np.float32)  # slots outside the output get no error
    ef[:, :, :ho, :wo] = e.transpose(1, 0, 2, 3)
    ef = ef.reshape(c, b, hq * wq)
    dw = np.empty(w_shape, np.float64)
    for i in range(kh):
        for j in range(kw):
            run = phase_run(flat, geo, b * hq * wq, wq, i, j).reshape(c, b, hq * wq)
            dw[:, 0, i, j] = np.einsum("cbp,cbp->cb", ef, run).sum(axis=1, dtype=np.float64)
    return dw


def _as_2d(attrs):
    return {**attrs, "kernel": (1, int(attrs["kernel"])), "stride": (1, int(attrs.get("stride", 1))),
            "padding": (0, int(attrs.get("padding", 0)))}


def _sel_2d(sel):
    if sel is None:
        return None
    return type(sel)(sel.idx, sel.e[:, :, None, :])


def int_conv1d_forward(attrs, x, w):
    y, ctx = int_conv2d_forward(_as_2d(attrs), x[:, :, None, :], w[:, :, None, :])
    return y[:, :, 0, :], ctx  # float64[B, O, Lo]


def int_conv1d_backward_input(attrs, ctx, e, w, sel=None):
    dx = int_conv2d_backward_input(_as_2d(attrs), ctx, e[:, :, None, :], w[:, :, None, :],
                                   _sel_2d(sel))
    return dx[:, :, 0, :]  # [B, C, L]


def int_conv1d_backward_weight(attrs, ctx, e, w_shape, sel=None, bound=None):
    o, c, k = w_shape
    dw = int_conv2d_backward_weight(_as_2d(attrs), ctx, e[:, :, None, :], (o, c, 1, k),
                                    _sel_2d(sel), bound)
    return dw[:, :, 0, :]


def _register_int8():
    from edgetrain.numerics.kernels import WeightKernel, register_int8

    register_int8("conv2d", WeightKernel(int_conv2d_forward, int_conv2d_backward_input,
                                         int_conv2d_backward_weight))
    register_int8("conv1d", WeightKernel(int_conv1d_forward, int_conv1d_backward_input,
                                         int_conv1d_backward_weight))


_register_int8()
