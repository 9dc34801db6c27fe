"""The integer training engine: fully quantized training (FQT) with dynamic partial
gradient updates, after Deutel, Hannig, Mutschler, Teich, "On-Device Training of Fully
Quantized Deep Neural Networks on Cortex-M Microcontrollers" (IEEE TCAD 2024).

THIS MODULE IS THE SPECIFICATION the C runtime copies; docs/numerics.md states each rule.
Three precisions share one graph (BN folded by ``numerics.quantize``) and one policy:

=========  ===================  =====================  ==================================
precision  forward              errors / gradients     weights
=========  ===================  =====================  ==================================
int8       int8, int32 acc      int8, int64 acc        int8, in-place standardized update
mixed      int8, int32 acc      float                  int8, in-place standardized update
float32    float32              float                  float32, standardized update
=========  ===================  =====================  ==================================

One training step on a mini-batch: forward (scales fixed for the step, ranges observed),
integer softmax cross-entropy gradient, backward in reverse graph order (errors only where
a trained parameter lies upstream; dropped structures of partial updates skipped), weight
update per trained layer, then the deferred range-tracker updates in observation order.
Host GEMMs run on float64 BLAS over integers (exact below 2^53).

>>> from edgetrain.ir import GraphBuilder, Policy
>>> from edgetrain.numerics.quantize import quantize
>>> b = GraphBuilder("tiny", (4,), seed=0)
>>> g = b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
...                   out_features=3))
>>> x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
>>> t = Trainer(quantize(g, x), Policy(), "int8", lr=0.01, seed=1)
>>> loss = t.step(x, np.arange(16) % 3)
>>> t.model.state["linear2:w"].dtype, sorted(t.macs)
(dtype('int8'), ['backward_error', 'backward_weight', 'forward'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgetrain.engine.float32 import error_needed
from edgetrain.errors import EdgetrainError, unknown
from edgetrain.ir.graph import INPUT, Node
from edgetrain.ir.policy import Policy
from edgetrain.ir.registry import Want, get_op
from edgetrain.numerics.fixedpoint import softmax_ce_q30
from edgetrain.numerics.kernels import IntKernel, Selection, int8_kernel
from edgetrain.numerics.qparams import S_MIN, QParams, dequantize, quantize, saturate
from edgetrain.numerics.quantize import Int8Model, output_clamp
from edgetrain.numerics.requant import requantize
from edgetrain.numerics.rounding import Stream, round_f32, round_f32_integral
from edgetrain.numerics.tracker import GradStats, RangeTracker

PRECISIONS = ("int8", "mixed", "float32")
I32 = (-(2**31), 2**31 - 1)
Q30 = np.float32(2.0**-30)
CHANNEL_FRACTION = np.float32(64)  # per-channel weights: errors rescaled with 6 extra bits
MAX_UPDATE_STEPS = 127  # lr / s_w above this saturates every weight update


@dataclass
class Pass:
    """What one forward pass leaves for the backward pass."""

    values: dict[str, object] = field(default_factory=dict)  # tensor -> (q, qp) or float
    ctxs: dict[str, object] = field(default_factory=dict)  # node -> kernel context


def _channel_shape(a: np.ndarray, ndim: int) -> np.ndarray:
    """A per-channel vector [C] shaped to broadcast along axis 1 of an ndim batch."""
    return a.reshape((1, -1) + (1,) * (ndim - 2)) if np.ndim(a) else a


def _add_bias(acc: np.ndarray, bias: np.ndarray, bound: int) -> np.ndarray:
    """acc + bias[C] along axis 1, exact. acc (float32/float64 holding integers, |acc| <=
    bound) stays float when |acc| + |bias| is below its exact-integer limit (2^24 / 2^53);
    requantize converts it to int64 in the same pass as before. Otherwise int64."""
    b = _channel_shape(bias, acc.ndim)  # int32[1, C, 1...]
    limit = 2**24 if acc.dtype == np.float32 else 2**53
    if acc.dtype.kind == "f" and bound + _max_abs(bias) < limit:
        return acc + b.astype(acc.dtype)
    return acc.astype(np.int64) + b


def _channel_range(acc: np.ndarray, scale: np.ndarray):
    """Real [min, max] of integer-valued acc[B, C, ...] (int64 or exact float) with
    per-channel (or one) float32 scale, and the integer extremes of acc."""
    a3 = acc.reshape(acc.shape[0], acc.shape[1], -1)
    lo_c, hi_c = a3.min(axis=2).min(axis=0), a3.max(axis=2).max(axis=0)  # [C], integers
    lo = lo_c.astype(np.float32) * scale  # float32[C]
    hi = hi_c.astype(np.float32) * scale
    return (np.float32(lo.min()), np.float32(hi.max())), (lo_c.min(), hi_c.max())


def _max_centred(q: np.ndarray, zero) -> int:
    """max |q - zero| over an int8 tensor (two reductions on the codes)."""
    return max(abs(int(q.max()) - int(zero)), abs(int(q.min()) - int(zero)))


def _exact_dtype(terms: int, a_max, b_max) -> type:
    """float32 when every partial sum of `terms` products |a b| <= a_max b_max stays below
    2^24 (exact in float32 BLAS), else float64 (exact below 2^53): same integers, faster."""
    return np.float32 if terms * int(a_max) * int(b_max) < 2**24 else np.float64


def _centred_weights(w: np.ndarray, qp: QParams, dtype=np.float64) -> np.ndarray:
    """(w - z_w) as float `dtype` (exact: |w - z| <= 255), zero points per output channel
    (axis 0) or one."""
    z = qp.zero.reshape((-1,) + (1,) * (w.ndim - 1)) if qp.zero.ndim else qp.zero
    return np.subtract(w, z, dtype=dtype)


def _max_centred_weights(w: np.ndarray, qp: QParams) -> int:
    """max |w - z_w| read from the int8 codes (per-channel weights are symmetric: z = 0)."""
    if qp.zero.ndim == 0 or not qp.zero.any():
        return _max_centred(w, qp.zero.flat[0] if qp.zero.size else 0)
    return _max_abs(_centred_weights(w, qp))


def _max_abs(a: np.ndarray) -> int:
    """max |a| of an integer-valued array from its two extremes (no |a| temporary)."""
    return max(-int(a.min()), int(a.max()))


def _sum_spatial(e: np.ndarray, dtype=None) -> np.ndarray:
    """Per-channel sum over batch and spatial axes: [C] (float64 sums of integer-valued
    errors are exact)."""
    return e.sum(axis=(0, *range(2, e.ndim)), dtype=dtype)


class Trainer:
    """Trains an :class:`Int8Model` in place: ``step(x, y) -> mean loss``; ``macs`` counts
    the multiply-accumulates executed per phase, ``samples`` the samples seen."""

    def __init__(self, model: Int8Model, policy: Policy, precision: str = "int8",
                 lr: float = 0.01, seed: int = 0):
        if precision not in PRECISIONS:
            raise unknown("precision", precision, PRECISIONS)
        if not (np.isfinite(lr) and lr > 0):
            raise EdgetrainError(f"learning rate must be a positive number, got {lr}")
        self.model, self.graph, self.policy = model, model.graph, policy
        self.precision, self.lr, self.num = precision, np.float32(lr), model.numerics
        self.trainable = policy.trainable_params(self.graph)
        self.needed = error_needed(self.graph, self.trainable)
        self.kernels = {n.name: int8_kernel(n.op) for n in self.graph.nodes}
        self.clamps = {n.name: output_clamp(self.graph, n) for n in self.graph.nodes}
        self.macs = {"forward": 0, "backward_error": 0, "backward_weight": 0}
        self.samples = 0
        self.trace: dict[str, np.ndarray] | None = None
        self.rng = Stream(seed)  # seeded per run; its state is saved with the model
        model.state["rng"] = self.rng.state
        self._deferred: list[tuple[str, np.float32, np.float32, float]] = []
        self._step_wqp: dict[str, QParams] = {}  # weight qparams of this step, by node
        self._row_macs = {n.name: self._macs_per_row(n) for n in self.graph.nodes
                          if n.name in self.needed}
        self._check_learning_rate()

    # ----------------------------------------------------------------- public API
    def step(self, x: np.ndarray, y: np.ndarray, trace: bool = False) -> float:
        """One mini-batch step; with trace=True, ``self.trace`` holds every tensor of it."""
        self.trace = {} if trace else None
        self._deferred, self._step_wqp = [], {}
        fwd = self._forward(np.asarray(x, np.float32), observe=True)
        loss, e_out = self._loss_error(fwd.values[self.graph.output], np.asarray(y))
        grads = self._backward(fwd, e_out)
        for name, (g_w, g_b, scales, rows) in grads.items():
            self._update_layer(self.graph.node(name), g_w, g_b, scales, rows)
        self._commit_observations()
        self.model.state["rng"] = self.rng.state
        self.macs["forward"] += len(x) * self.graph.macs_per_sample()
        self.samples += len(x)
        return loss

    def logits(self, x: np.ndarray, seed: int = 0) -> np.ndarray:
        """float32[B, K] logits in inference mode (no range updates; stochastic rounding,
        if configured, draws from its own stream so evaluation never changes training)."""
        saved = self.rng
        self.rng, self._step_wqp = Stream(seed), {}
        try:
            out = self._forward(np.asarray(x, np.float32), observe=False).values[
                self.graph.output]
        finally:
            self.rng = saved
        return dequantize(*out) if self.quantized else np.asarray(out, np.float32)

    @property
    def quantized(self) -> bool:
        return self.precision != "float32"

    @property
    def integer_errors(self) -> bool:
        return self.precision == "int8"

    # ------------------------------------------------------------- scale tracking
    def _tracked_qparams(self, key: str, lo, hi, rate: float, observe: bool) -> QParams:
        """QParams of a tracked tensor for this step. A tracker that has never seen data
        takes this step's range at once; otherwise the observation is deferred."""
        if f"{key}_lo" not in self.model.state:
            self.model.put_tracker(key, RangeTracker.new())
        tracker = self.model.tracker(key)
        if observe and not tracker.seen:
            tracker.observe(lo, hi, rate)
            self.model.put_tracker(key, tracker)
        elif observe:
            self._deferred.append((key, lo, hi, rate))
        return tracker.qparams(pow2=self.num.pow2_scales)

    def _commit_observations(self) -> None:
        for key, lo, hi, rate in self._deferred:
            tracker = self.model.tracker(key)
            tracker.observe(lo, hi, rate)
            self.model.put_tracker(key, tracker)
        self._deferred = []

    def _record(self, name: str, value) -> None:
        if self.trace is not None:
            self.trace[name] = np.array(value, copy=True)

    # -------------------------------------------------------------------- forward
    def _forward(self, x: np.ndarray, observe: bool) -> Pass:
        fwd = Pass()
        if self.quantized:
            qp = self.model.act_qparams(INPUT)
            fwd.values[INPUT] = (quantize(x, qp, "nearest"), qp)
        else:
            fwd.values[INPUT] = x
        for node in self.graph.nodes:
            kernel = self.kernels[node.name]
            kind = (type(kernel).__name__, self.quantized)
            value, ctx = FORWARD[kind](self, node, [fwd.values[t] for t in node.inputs],
                                       observe)
            fwd.values[node.name], fwd.ctxs[node.name] = value, ctx
            if self.quantized:
                self._record(f"act/{node.name}", value[0])
                self._record(f"act_scale/{node.name}", value[1].scale)
                self._record(f"act_zero/{node.name}", value[1].zero)
        return fwd

    def _weights(self, node: Node) -> tuple[np.ndarray, QParams]:
        """The int8 weights and their qparams (derived once per step: they change only in
        the update, after their last use)."""
        qp = self._step_wqp.get(node.name)
        if qp is None:
            qp = self._step_wqp[node.name] = self.model.weight_qparams(node.name)
        return self.model.state[f"{node.name}:w"], qp

    def _fwd_weight_q(self, node, inputs, observe):
        ((x, x_qp),) = inputs
        w, w_qp = self._weights(node)
        w_max = _max_centred_weights(w, w_qp)
        x_max = _max_centred(x, x_qp.zero)
        dtype = _exact_dtype(w[0].size, x_max, w_max)
        wc = _centred_weights(w, w_qp, dtype)  # the backward pass reuses it (same weights)
        xc = np.subtract(x, x_qp.zero, dtype=dtype)  # centred input, exact
        acc, saved = self.kernels[node.name].forward(node.attrs, xc, wc)
        s_acc = x_qp.scale * w_qp.scale  # float32[] or [O]
        bias = requantize(self.model.state[f"{node.name}:b"],
                          self.model.state[f"{node.name}:b_scale"] / s_acc, 0, "nearest",
                          lo=I32[0], hi=I32[1], axis=0)  # int32[O] at the accumulator scale
        acc = _add_bias(acc, bias, w[0].size * x_max * w_max)  # [B, O, ...] exact integers
        real, ints = _channel_range(acc, np.broadcast_to(s_acc, bias.shape))
        lo, hi = np.clip(real, *self.clamps[node.name]).astype(np.float32)
        qp = self._tracked_qparams(f"{node.name}:a", lo, hi, self.num.rate_activation, observe)
        y = requantize(acc, s_acc / qp.scale, qp.zero, self.num.round_forward, self.rng,
                       extremes=ints)
        return (y, qp), (saved, x_qp.scale, x_max, (wc, w_max))

    def _fwd_weight_f(self, node, inputs, observe):
        (x,) = inputs
        p = self.graph.node_params(node)
        acc, saved = self.kernels[node.name].forward(node.attrs, x, p["weight"])
        return acc + _channel_shape(p["bias"], acc.ndim), (saved, np.float32(1), 0, None)

    def _fwd_int_q(self, node, inputs, observe):
        ((q, qp),) = inputs
        six = np.minimum(np.float32(6) / qp.scale, np.float32(255))  # the code of 6.0
        qmax = int(min(127, int(qp.zero) + int(round_f32(six, "nearest"))))
        y, ctx = self.kernels[node.name].forward(node.attrs, q, int(qp.zero), qmax,
                                                 self.num.round_forward, self.rng)
        return (y, qp), ctx

    def _fwd_op_f(self, node, inputs, observe):
        return get_op(node.op).forward(node.attrs, inputs, {}, False)

    def _fwd_add_q(self, node, inputs, observe):
        (a, qa), (b, qb) = inputs
        qp = self.model.act_qparams(node.name)  # the scale used to find this step's range
        parts = [requantize(q.astype(np.int64) - p.zero, p.scale / qp.scale, 0,
                            self.num.round_forward, self.rng, *I32) for q, p in ((a, qa), (b, qb))]
        r = parts[0].astype(np.int64) + parts[1]  # int64[B, ...] at the output scale
        lo, hi = np.clip((np.float32(r.min()) * qp.scale, np.float32(r.max()) * qp.scale),
                         *self.clamps[node.name]).astype(np.float32)
        self._tracked_qparams(f"{node.name}:a", lo, hi, self.num.rate_activation, observe)
        return (saturate(r + qp.zero), qp), None

    # ----------------------------------------------------------------------- loss
    def _loss_error(self, out, y: np.ndarray):
        """(mean loss, error at the logits): int8 errors from the fixed-point softmax
        cross-entropy; float errors from the float one (per sample, not averaged)."""
        if self.integer_errors:
            q, qp = out
            grad, loss = softmax_ce_q30(q, qp.scale, y)  # int64[B, K] Q30, int64[B] Q16
            lo, hi = np.float32(grad.min()) * Q30, np.float32(grad.max()) * Q30
            e_qp = self._tracked_qparams(f"{self.graph.output}:e", lo, hi,
                                         self.num.rate_error, True)
            e = requantize(grad, Q30 / e_qp.scale, e_qp.zero, self.num.round_backward, self.rng)
            return float(loss.sum()) / (65536.0 * len(y)), (e, e_qp)
        logits = dequantize(*out) if self.quantized else out
        z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss = float(-np.log(np.maximum(p[rows, y], 1e-30)).mean())
        p[rows, y] -= 1.0
        return loss, p

    # ------------------------------------------------------------------- backward
    def _backward(self, fwd: Pass, e_out) -> dict[str, tuple]:
        """Reverse pass; returns node -> (weight grad or None, bias grad or None, x scale)."""
        pending: dict[str, list] = {self.graph.output: [e_out]}
        grads: dict[str, tuple] = {}
        for node in reversed(self.graph.nodes):
            if node.name not in self.needed or node.name not in pending:
                continue
            e = self._merge(node.name, pending.pop(node.name))
            kernel = self.kernels[node.name]
            kind = (type(kernel).__name__, self.integer_errors)
            e_ins, g = BACKWARD[kind](self, node, fwd, e)
            if g is not None:
                grads[node.name] = g
            for t, e_in in zip(node.inputs, e_ins):
                if e_in is not None and t in self.needed:  # never INPUT
                    pending.setdefault(t, []).append(e_in)
        return grads

    def _wants_input_error(self, node: Node) -> bool:
        t = node.inputs[0]
        return t != INPUT and t in self.needed

    def _merge(self, tensor: str, errors: list):
        """The error of a tensor read by several nodes: the sum of their errors (int8:
        requantized to the tensor's own tracked merge scale)."""
        if len(errors) == 1 or not self.integer_errors:
            e = errors[0] if len(errors) == 1 else sum(errors)
        else:
            e = self._merge_q(tensor, errors)
        if self.integer_errors:
            self._record(f"err/{tensor}", e[0])
            self._record(f"err_scale/{tensor}", e[1].scale)
            self._record(f"err_zero/{tensor}", e[1].zero)
        return e

    def _merge_q(self, tensor: str, errors: list):
        bound_lo = bound_hi = np.float32(0)
        for q, qp in errors:  # first use: the sum of the ranges bounds the merged range
            bound_lo += np.float32(int(q.min()) - int(qp.zero)) * qp.scale
            bound_hi += np.float32(int(q.max()) - int(qp.zero)) * qp.scale
        key = f"{tensor}:em"
        if f"{key}_lo" not in self.model.state or not self.model.tracker(key).seen:
            self._tracked_qparams(key, bound_lo, bound_hi, self.num.rate_error, True)
        qp = self.model.tracker(key).qparams(pow2=self.num.pow2_scales)
        r = sum(requantize(q.astype(np.int64) - p.zero, p.scale / qp.scale, 0,
                           self.num.round_backward, self.rng, *I32).astype(np.int64)
                for q, p in errors)
        self._deferred.append((key, np.float32(r.min()) * qp.scale,
                               np.float32(r.max()) * qp.scale, self.num.rate_error))
        return saturate(r + qp.zero), qp

    def _bwd_int_q(self, node, fwd, e):
        q, qp = e
        kernel: IntKernel = self.kernels[node.name]
        if kernel.backward_codes is not None:  # exact pass-through: no arithmetic on codes
            return [(kernel.backward_codes(node.attrs, fwd.ctxs[node.name], q, qp.zero),
                     qp)], None
        e_in = kernel.backward(node.attrs, fwd.ctxs[node.name], q.astype(np.int32) - qp.zero)
        n = kernel.divisor(node.attrs, self.graph.shapes[node.inputs[0]])
        scale = qp.scale / np.float32(n) if n != 1 else qp.scale
        return [(saturate(e_in + qp.zero), QParams(scale, qp.zero))], None

    def _bwd_op_f(self, node, fwd, e):
        if self.quantized:  # mixed: the forward ran the integer kernel, use its context
            kernel: IntKernel = self.kernels[node.name]
            n = kernel.divisor(node.attrs, self.graph.shapes[node.inputs[0]])
            return [kernel.backward(node.attrs, fwd.ctxs[node.name], e) / n], None
        want = Want(tuple(True for _ in node.inputs))
        dxs, _ = get_op(node.op).backward(node.attrs, fwd.ctxs[node.name], e, {}, want)
        return dxs, None

    def _bwd_add(self, node, fwd, e):
        return [e, e], None

    def _bwd_weight_q(self, node, fwd, e):
        q, e_qp = e
        (saved, x_scale, x_max, (wc, w_max)) = fwd.ctxs[node.name]
        ec = np.subtract(q, e_qp.zero, dtype=np.float32)  # float32[B, O, ...] centred, exact
        ec, mask, sel = self._select(node, ec, e_qp.scale)
        g = self._weight_grads(node, saved, ec, mask, sel, e_qp.scale * x_scale, e_qp.scale,
                               x_max)
        if not self._wants_input_error(node):
            return [None], g
        self._count(node, "backward_error", mask, len(q))
        w, w_qp = self._weights(node)
        src, s_src = self._error_source(ec, e_qp.scale, w_qp.scale)
        terms = (w.shape[0] // int(node.attrs.get("groups", 1))) * math.prod(w.shape[2:])
        dtype = _exact_dtype(terms, _max_abs(src), w_max)
        src = src.astype(dtype, copy=False)
        sel_src = None if sel is None else Selection(sel.idx, _gather(src, sel.idx))
        acc = self.kernels[node.name].backward_input(node.attrs, saved, src, wc.astype(dtype, copy=False),
                                                     sel_src)  # exact integers (float)
        ints = (acc.min(), acc.max())  # requantize converts acc to int64 itself
        lo, hi = np.float32(ints[0]) * s_src, np.float32(ints[1]) * s_src
        qp = self._tracked_qparams(f"{node.name}:dx", lo, hi, self.num.rate_error, True)
        e_in = requantize(acc, s_src / qp.scale, qp.zero, self.num.round_backward, self.rng,
                          extremes=ints)
        return [(e_in, qp)], g

    def _error_source(self, ec, s_e, s_w):
        """Errors ready for W^T e with one scale: per-channel weight scales are folded into
        the errors (x s_w[o] / max s_w, 6 extra fraction bits) so the sum is over integers."""
        if np.ndim(s_w) == 0:
            return ec, s_e * s_w
        s_max = np.float32(s_w.max())
        src = requantize(ec, (s_w / s_max) * CHANNEL_FRACTION, 0, "nearest", lo=I32[0],
                         hi=I32[1], axis=1)  # int32[B, O, ...]
        return src, (s_e * s_max) / CHANNEL_FRACTION

    def _bwd_weight_f(self, node, fwd, e):
        (saved, x_scale, _, _) = fwd.ctxs[node.name]
        e, mask, sel = self._select(node, e, np.float32(1))
        g = self._weight_grads(node, saved, e, mask, sel, x_scale, np.float32(1))
        if not self._wants_input_error(node):
            return [None], g
        self._count(node, "backward_error", mask, len(e))
        if self.quantized:
            w, w_qp = self._weights(node)
            w_real = dequantize(w, w_qp).astype(np.float64)
        else:
            w_real = self.graph.param(node, "weight")
        return [self.kernels[node.name].backward_input(node.attrs, saved, e, w_real, sel)], g

    def _weight_grads(self, node, saved, ec, mask, sel, s_w_grad, s_b_grad, x_max=0):
        """(weight gradient, bias gradient, their scales, kept rows or None) of a trained
        layer, or None: integer sums in int8 mode (real = scale * value; the bias gradient
        as float64 holding the exact integer sum), float otherwise."""
        roles = self.trainable.get(node.name, frozenset())
        if not roles:
            return None
        g_w = g_b = None
        if "weight" in roles:
            self._count(node, "backward_weight", mask, len(ec))
            w_shape = self.graph.param(node, "weight").shape
            bound = x_max * _max_abs(ec) if self.integer_errors else None
            g_w = self.kernels[node.name].backward_weight(node.attrs, saved, ec, w_shape, sel,
                                                          bound)
            g_w = g_w if self.integer_errors else g_w * np.float64(s_w_grad)  # int8: exact sums
        if "bias" in roles:
            g_b = _sum_spatial(ec, np.float64 if self.integer_errors else None)  # [O]
        scales = (s_w_grad, s_b_grad) if self.integer_errors else (1.0, 1.0)
        return g_w, g_b, scales, None if mask is None else mask.any(axis=0)

    # ------------------------------------------------------ dynamic partial updates
    def _select(self, node: Node, ec: np.ndarray, s_e: np.float32):
        """Deutel et al.'s dynamic partial update: per sample keep the top-k output
        channels by error magnitude, k = max(floor((lmin + |e/e_max| (lmax - lmin)) N), 1),
        e = the sample's mean |error| at this layer, e_max the largest seen so far. Returns
        (errors with dropped channels zeroed, kept mask[B, N] or None, Selection or None)."""
        if not self.policy.partial or "weight" not in self.trainable.get(node.name, ()):
            return ec, None, None
        b, n = ec.shape[:2]
        mags = np.abs(ec).reshape(b, n, -1).sum(axis=2, dtype=np.float64)  # [B, N], exact
        mean = (mags.sum(axis=1).astype(np.float32) * s_e) / np.float32(ec[0].size)  # [B]
        key = f"{node.name}:emax"
        prev = self.model.state.get(key, np.zeros((), np.float32)).reshape(1)
        emax = np.maximum.accumulate(np.concatenate([prev, mean]))[1:]  # float32[B]
        self.model.state[key] = np.array(emax[-1], np.float32)
        ratio = mean / np.where(emax > 0, emax, np.float32(1))  # 0 when e_max is 0
        lmin, lmax = np.float32(self.policy.lambda_min), np.float32(self.policy.lambda_max)
        frac = lmin + ratio * (lmax - lmin)  # float32[B]
        k = np.clip(np.floor(frac * np.float32(n)).astype(np.int64), 1, n)  # int64[B]
        order = np.argsort(-mags, axis=1, kind="stable")[:, :k.max()]  # ties: lower index
        valid = np.arange(k.max())[None, :] < k[:, None]  # bool[B, kmax]
        mask = np.zeros((b, n), bool)
        np.put_along_axis(mask, order, valid, axis=1)
        ec = ec * mask.reshape((b, n) + (1,) * (ec.ndim - 2))
        return ec, mask, Selection(order, _gather(ec, order))

    def _count(self, node: Node, phase: str, mask, batch: int) -> None:
        """Add the MACs of one backward phase: each kept structure (filter/row) costs its
        share of the layer's MACs; without partial updates every structure is kept."""
        n_out = self.graph.shapes[node.name][0]
        kept = batch * n_out if mask is None else int(np.count_nonzero(mask))
        self.macs[phase] += kept * self._row_macs[node.name]

    def _macs_per_row(self, node: Node) -> int:
        """MACs of one output structure (filter/row) of a node, per sample."""
        total = get_op(node.op).macs(node.attrs, self.graph.in_shapes(node),
                                     self.graph.shapes[node.name])
        return total // self.graph.shapes[node.name][0]

    # --------------------------------------------------------------------- update
    def _update_layer(self, node: Node, g_w, g_b, scales, rows) -> None:
        """The paper's in-place SGD with gradient standardization per filter/row:
        w' = (1/s_w')[(w - z_w) s_w - lr (g - mu)/sigma] + z_w' (bias: its own row).
        `rows` (partial updates): the filters/rows kept for at least one sample of the
        batch; the others, and their statistics, are left as they are."""
        if g_w is not None:
            step = self._standardized(f"{node.name}:g", g_w.reshape(len(g_w), -1), scales[0],
                                      rows)
            self._apply_weight(node, step.reshape(g_w.shape), rows)
        if g_b is not None:
            step = self._standardized(f"{node.name}:gb", g_b.reshape(1, -1), scales[1], None)
            if rows is not None:
                step = step * rows[None, :]
            self._apply_bias(node, step.reshape(-1), rows)

    def _standardized(self, key: str, g: np.ndarray, scale, rows) -> np.ndarray:
        """float32 lr * (g - mu) / sigma per row, mu/sigma moving averages (rates 0.85/0.7);
        rows not kept get a zero step and keep their statistics."""
        if self.integer_errors:
            g_q, s_g = self._quantize_gradient(g, scale)  # s_g: float32[] or [R, 1]
            mean, var = _int_row_stats(g_q, s_g)
            g_real = np.multiply(g_q, s_g, dtype=np.float32)  # float32[R, K]
        else:
            g_real = g.astype(np.float32)
            mean, var = g.mean(axis=1).astype(np.float32), g.var(axis=1).astype(np.float32)
        stats = self._grad_stats(key, len(g))
        old_mean, old_var = stats.mean.copy(), stats.var.copy()
        stats.observe(mean, var, self.num.rate_grad_mean, self.num.rate_grad_var)
        if rows is not None:
            stats.mean = np.where(rows, stats.mean, old_mean)
            stats.var = np.where(rows, stats.var, old_var)
        st = self.model.state
        st[f"{key}_mean"], st[f"{key}_var"], st[f"{key}_seen"] = stats.mean, stats.var, stats.seen
        sigma = np.sqrt(stats.var) + np.float32(self.num.grad_eps)  # float32[R]
        step = g_real  # lr * ((g_real - mean) / sigma), in place: float32[R, K]
        step -= stats.mean[:, None]
        step /= sigma[:, None]
        step *= self.lr
        return step if rows is None else step * rows[:, None]

    def _grad_stats(self, key: str, rows: int) -> GradStats:
        st = self.model.state
        if f"{key}_mean" not in st:
            return GradStats.new(rows)
        return GradStats(st[f"{key}_mean"], st[f"{key}_var"], st[f"{key}_seen"])

    def _quantize_gradient(self, g: np.ndarray, scale) -> tuple[np.ndarray, np.ndarray]:
        """int8 gradient, symmetric, scale from this step's largest |g| (int64 exact), one
        per tensor or (numerics.grad_rows) one per row: float32[] or float32[R, 1]."""
        if self.num.grad_rows:
            g_max = np.abs(g).max(axis=1).astype(np.float32)  # float32[R]
            s_g = np.maximum((g_max * scale) / np.float32(127), S_MIN)
            q = requantize(g, scale / s_g, 0, self.num.round_gradient, self.rng, axis=0)
            return q, s_g[:, None]
        g_max = np.float32(np.abs(g).max())
        s_g = np.maximum((g_max * scale) / np.float32(127), S_MIN)
        return requantize(g, scale / s_g, 0, self.num.round_gradient, self.rng), s_g

    def _apply_weight(self, node: Node, step: np.ndarray, rows) -> None:
        n = node.name
        if not self.quantized:
            self.graph.param(node, "weight")[...] -= step
            return
        w, w_qp = self._weights(node)
        w_f = dequantize(w, w_qp, axis=0)  # float32[O, ...], a fresh array
        w_f -= step
        old = self.model.tracker(f"{n}:w")
        tracker = self.model.tracker(f"{n}:w")
        flat = w_f.reshape(len(w_f), -1)
        if self.num.weight_channels:
            tracker.observe(flat.min(axis=1), flat.max(axis=1), self.num.rate_weight)
            if rows is not None:  # rows not kept keep their scale and their codes
                tracker.lo = np.where(rows, tracker.lo, old.lo)
                tracker.hi = np.where(rows, tracker.hi, old.hi)
        else:
            tracker.observe(flat.min(), flat.max(), self.num.rate_weight)
        self.model.put_tracker(f"{n}:w", tracker)
        qp = tracker.qparams(symmetric=self.num.weight_channels)
        new = quantize(w_f, qp, self.num.round_update, self.rng)
        if rows is not None and self.num.weight_channels:
            new[~rows] = w[~rows]
        self.model.state[f"{n}:w"] = new
        self._step_wqp.pop(n, None)  # the cached qparams were the old weights'
        self._record(f"w/{n}", new)
        self._record(f"w_scale/{n}", qp.scale)
        self._record(f"w_zero/{n}", qp.zero)

    def _apply_bias(self, node: Node, step: np.ndarray, rows) -> None:
        n = node.name
        if not self.quantized:
            self.graph.param(node, "bias")[...] -= step
            return
        s_b = self.model.state[f"{n}:b_scale"]
        old = self.model.state[f"{n}:b"]
        b_f = old.astype(np.float32) * s_b - step  # float32[O]
        v = np.clip(b_f / s_b, np.float32(I32[0]), np.float32(2.0**31 - 128))
        b = round_f32_integral(v, self.num.round_update, self.rng).astype(np.int32)  # in I32
        self.model.state[f"{n}:b"] = b if rows is None else np.where(rows, b, old)
        self._record(f"b/{n}", self.model.state[f"{n}:b"])

    def _check_learning_rate(self) -> None:
        """Refuse a learning rate that moves int8 weights by more than the whole range per
        unit of standardized gradient (every update would saturate)."""
        if not self.quantized:
            return
        for name, roles in self.trainable.items():
            if "weight" not in roles:
                continue
            s_min = float(self.model.weight_qparams(name).scale.min())
            steps = float(self.lr) / s_min
            if steps > MAX_UPDATE_STEPS:
                raise EdgetrainError(
                    f"learning rate {float(self.lr):g} moves the int8 weights of layer '{name}' "
                    f"by {steps:.0f} quantization steps per standardized gradient unit (more "
                    f"than {MAX_UPDATE_STEPS}): use --lr below {MAX_UPDATE_STEPS * s_min:.3g}")


def _gather(e: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """e[b, idx[b, j], ...] (float). Padding slots name dropped channels, whose errors are
    already zero, so they add nothing."""
    shape = idx.shape + (1,) * (e.ndim - 2)
    kept = np.take_along_axis(e, idx.reshape(shape), axis=1)
    return kept if kept.dtype.kind == "f" else kept.astype(np.float64)


def _int_row_stats(g_q: np.ndarray, s_g: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance per row of an int8 gradient, from exact integer sums:
    mean = (float)S1 / n * s_g, var = max((float)S2 / n - m^2, 0) * s_g * s_g."""
    n = np.float32(g_q.shape[1])
    s1 = g_q.sum(axis=1, dtype=np.int64)
    s2 = np.square(g_q, dtype=np.int32).sum(axis=1, dtype=np.int64)  # squares <= 128^2
    mean_q = s1.astype(np.float32) / n  # float32[R]
    var_q = np.maximum(s2.astype(np.float32) / n - mean_q * mean_q, np.float32(0))
    s_g = np.asarray(s_g, np.float32).reshape(-1) if np.ndim(s_g) else s_g  # [] or [R]
    return mean_q * s_g, (var_q * s_g) * s_g


FORWARD = {
    ("WeightKernel", True): Trainer._fwd_weight_q,
    ("WeightKernel", False): Trainer._fwd_weight_f,
    ("IntKernel", True): Trainer._fwd_int_q,
    ("IntKernel", False): Trainer._fwd_op_f,
    ("AddKernel", True): Trainer._fwd_add_q,
    ("AddKernel", False): Trainer._fwd_op_f,
}
BACKWARD = {
    ("WeightKernel", True): Trainer._bwd_weight_q,
    ("WeightKernel", False): Trainer._bwd_weight_f,
    ("IntKernel", True): Trainer._bwd_int_q,
    ("IntKernel", False): Trainer._bwd_op_f,
    ("AddKernel", True): Trainer._bwd_add,
    ("AddKernel", False): Trainer._bwd_add,
}
