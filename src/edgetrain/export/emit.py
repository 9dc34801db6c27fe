"""The C emitter: an :class:`~edgetrain.numerics.quantize.Int8Model` + a policy -> model.c and
model.h, the generated half of a project whose other half is the runtime (et_engine.c, the
translation of edgetrain.engine.int8.Trainer, Deutel et al. 2024).

model.c holds the data and the order of work, nothing else:

* frozen weights ``const`` (flash); trained weights and biases in RAM, initialised by
  ``et_init`` from a ``const`` image; bias scales; every range tracker and gradient
  statistic with its initial value; the numerics configuration;
* ONE static arena (no malloc): every transient buffer (activations, errors, accumulators,
  gradients, scratch) at an offset found by the project's arena planner
  (``edgetrain.memory.arena``, greedy by size) from the lifetimes of this very sequence of
  calls, so two buffers share bytes only when never live together;
* ``et_train_batch``: the engine's calls in the engine's order (forward in graph order,
  loss, backward in reverse order with error merges, updates, deferred observations).

The trace ids (``et_trace_names``) name what ``edgetrain verify`` compares per step:
``act/<node>``, ``err/<tensor>``, ``w/<node>``, ``b/<node>`` (+ scales and zero points), the
names of ``Trainer.trace``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgetrain.engine.float32 import error_needed
from edgetrain.errors import EdgetrainError
from edgetrain.ir.graph import INPUT, Node
from edgetrain.ir.policy import Policy
from edgetrain.memory.arena import Request, align, get_planner, lower_bound
from edgetrain.memory.runtime import (
    CTYPE_BYTES,
    OBSERVATION_BYTES,
    RANGE_BYTES,
    conv_scratch,
    layer_geometry,
    queue_entries,
    weight_layer_arena,
)
from edgetrain.numerics.kernels import AddKernel, IntKernel, WeightKernel, int8_kernel
from edgetrain.numerics.quantize import Int8Model, output_clamp
from edgetrain.numerics.rounding import Stream
from edgetrain.ops.pool import pool_geometry

ROUND = {"floor": 0, "nearest": 1, "stochastic": 2}
INT_OPS = {"relu": "ET_RELU", "relu6": "ET_RELU6", "maxpool2d": "ET_MAXPOOL",
           "avgpool2d": "ET_AVGPOOL", "global_avg_pool": "ET_GAP", "flatten": "ET_FLATTEN"}
ALIGN = 8
I32 = 2**31


@dataclass(frozen=True)
class ExportConfig:
    """What the generated training step does: policy, batch (compile-time maximum), SGD
    learning rate, and the run seed of the stochastic-rounding stream."""

    policy: Policy = field(default_factory=Policy)
    batch: int = 1
    lr: float = 0.01
    seed: int = 0

    def __post_init__(self):
        if self.batch < 1:
            raise EdgetrainError(f"batch must be >= 1, got {self.batch}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise EdgetrainError(f"learning rate must be a positive number, got {self.lr}")


@dataclass
class Emitted:
    model_c: str
    model_h: str
    trace_names: list[str]
    arena_bytes: int
    arena_lower_bound: int
    state_bytes: int  # RAM outside the arena: trained weights, biases, trackers, statistics
    flash_data_bytes: int
    buffers: dict[str, dict]
    state_map: dict[str, tuple[str, str]] = field(default_factory=dict)  # float precisions


# ---------------------------------------------------------------- C literals

def f32(x) -> str:
    """An exact float32 C literal (9 significant digits round-trip)."""
    v = float(np.float32(x))
    if math.isinf(v):
        return "HUGE_VALF" if v > 0 else "-HUGE_VALF"
    text = f"{v:.9g}"
    return (text if any(ch in text for ch in ".e") else text + ".0") + "f"


def c_values(values, fmt=str, per_line: int = 16) -> str:
    vals = [fmt(v) for v in np.asarray(values).ravel()]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "\n}" if vals else "{0}"


def i32(v) -> str:
    v = int(v)
    return "(-2147483647 - 1)" if v == -I32 else str(v)


def c_ident(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def addr(buffer: str) -> str:
    """The C address of an arena buffer (its offset is a macro defined once planned)."""
    return f"ET_A(ET_OFF_{c_ident(buffer)})"


# ---------------------------------------------------------------- the emitter

class Emitter:
    """Walks the graph the way Trainer.step does and records C calls with the buffers each
    one touches; the lifetimes of those buffers give the arena. The class attributes are the
    precision-specific pieces of the model.c/model.h text (emit_float overrides them)."""

    precision = "int8"
    runtime_header = "et_engine.h"
    loss_ctype = "int64_t"  # the step's loss: Q16 sum (int8) or the float mean
    loss_to_q16 = "loss"
    predict_value = "et_dequantize({out}.q[k], {out}.qp)"
    weight_type = "int8"  # et_get_weights: int8 codes + int32 biases, or float32

    def __init__(self, model: Int8Model, cfg: ExportConfig):
        self.m, self.g, self.cfg, self.num = model, model.graph, cfg, model.numerics
        self.B = cfg.batch
        self.trainable = cfg.policy.trainable_params(self.g)
        self.needed = error_needed(self.g, self.trainable)
        self.buffers: dict[str, tuple[str, int]] = {}  # name -> (ctype, count)
        self.calls: list[tuple[str, tuple[str, ...]]] = []  # (code, buffers used)
        self.decls: list[str] = []  # static data and structs
        self.init: list[str] = []  # et_init body
        self.traces: list[str] = []
        self.tensor_buf: dict[str, str] = {}  # C tensor variable -> buffer
        self.layers: dict[str, str] = {}  # node -> C struct name
        self.state_bytes = 0
        self.flash_bytes = 0
        self.deferrable = 0  # trackers whose observations can be deferred (queue capacity)
        self.state_map: dict[str, tuple[str, str]] = {}  # RAM state array -> (kind, engine key)

    # ---- bookkeeping
    def scratch_use(self, kind: str, node: str) -> str | None:
        name = f"{kind}:{node}"
        return name if name in self.buffers else None

    def buf(self, name: str, ctype: str, count: int) -> str:
        self.buffers.setdefault(name, (ctype, max(int(count), 1)))
        return name

    def call(self, code: str, *uses: str) -> None:
        self.calls.append((code, tuple(u for u in uses if u)))

    def trace_id(self, *names: str) -> int:
        first = len(self.traces)
        self.traces.extend(names)
        return first

    def state_array(self, ctype: str, name: str, values, init_from_flash: bool) -> str:
        """A RAM array initialised by et_init from a const image (or a const array)."""
        values = np.asarray(values).ravel()
        fmt = f32 if ctype == "float" else i32
        if not init_from_flash:
            self.decls.append(f"static const {ctype} {name}[{values.size}] = "
                              f"{c_values(values, fmt)};")
            self.flash_bytes += values.size * np.dtype(np.float32 if ctype == "float"
                                                       else ctype.replace("_t", "")).itemsize
            return name
        size = values.size * np.dtype(np.float32 if ctype == "float"
                                      else ctype.replace("_t", "")).itemsize
        self.decls.append(f"static {ctype} {name}[{values.size}];")
        self.decls.append(f"static const {ctype} {name}_init[{values.size}] = "
                          f"{c_values(values, fmt)};")
        self.init.append(f"    memcpy({name}, {name}_init, sizeof {name});")
        self.state_bytes += size
        self.flash_bytes += size
        return name

    def ranges(self, name: str, lo, hi, seen, mutable: bool = True) -> str:
        """Range trackers (or gradient statistics); immutable ones stay in flash."""
        lo, hi = np.atleast_1d(np.float32(lo)), np.atleast_1d(np.float32(hi))
        items = [f"{{{f32(a)}, {f32(b)}, {int(bool(seen))}}}" for a, b in zip(lo, hi)]
        if not mutable:
            self.decls.append(f"static const et_range {name}[{len(items)}] = "
                              f"{{{', '.join(items)}}};")
            self.flash_bytes += RANGE_BYTES * len(items)
            return f"(et_range *){name}"
        self.decls.append(f"static et_range {name}[{len(items)}];")
        self.decls.append(f"static const et_range {name}_init[{len(items)}] = "
                          f"{{{', '.join(items)}}};")
        self.init.append(f"    memcpy({name}, {name}_init, sizeof {name});")
        self.state_bytes += RANGE_BYTES * len(items)
        self.flash_bytes += RANGE_BYTES * len(items)
        return name

    def tracker(self, key: str, n: int = 1, mutable: bool = True) -> str:
        if not key.endswith(":w"):  # activation/error trackers: their observations are deferred
            self.deferrable += 1
        st = self.m.state
        if f"{key}_lo" in st:
            lo, hi, seen = st[f"{key}_lo"], st[f"{key}_hi"], bool(st[f"{key}_seen"])
        else:
            lo, hi, seen = np.zeros(n, np.float32), np.zeros(n, np.float32), False
        if mutable:
            self.state_map["r_" + c_ident(key)] = ("range", key)
        return self.ranges("r_" + c_ident(key), np.broadcast_to(lo, (n,)),
                           np.broadcast_to(hi, (n,)), seen, mutable)

    def grad_stats(self, key: str, rows: int) -> str:
        st = self.m.state
        self.state_map["gs_" + c_ident(key)] = ("stats", key)
        if f"{key}_mean" in st:
            return self.ranges("gs_" + c_ident(key), st[f"{key}_mean"], st[f"{key}_var"],
                               bool(st[f"{key}_seen"]))
        return self.ranges("gs_" + c_ident(key), np.zeros(rows), np.zeros(rows), False)

    def tensor(self, var: str, buffer: str, n: int, trace: int | None) -> str:
        tid = "ET_NO_TRACE" if trace is None else str(trace)
        self.decls.append(f"static et_tensor {var} = {{(int8_t *){addr(buffer)}, {n}, "
                          f"{{0.0f, 0}}, {tid}}};")
        self.tensor_buf[var] = buffer
        return var

    def per_sample(self, tensor: str) -> int:
        return int(np.prod(self.g.shapes[tensor], dtype=np.int64))

    # ---- weight layers
    def geometry(self, node: Node) -> tuple[int, ...]:
        return layer_geometry(node.op, node.attrs, self.g.shapes[node.inputs[0]])

    def check_ranges(self, node: Node, geo, per_channel: bool, train_w: bool,
                     want_dx: bool) -> None:
        """Refuse a layer whose int32 sums could overflow (the C keeps int32 accumulators)."""
        c_in, _, _, c_out, ho, wo, kh, kw, *_rest, groups = geo
        k = c_in // groups * kh * kw
        fan_out = c_out // groups * kh * kw
        src, wmax = (16320, 128) if per_channel else (255, 255)
        limits = {"forward sum": k * 255 * 255,
                  "backward error sum": fan_out * src * wmax if want_dx else 0,
                  "weight gradient sum": self.B * ho * wo * 255 * 255 if train_w else 0,
                  "gradient row sum of squares": max(k, c_out) * 128 * 128 if train_w else 0}
        for what, bound in limits.items():
            if bound >= I32:
                raise EdgetrainError(f"layer '{node.name}': its {what} can reach {bound}, "
                                     "beyond the C runtime's int32 accumulators; use a smaller "
                                     "batch or split the layer")

    def weight_layer(self, node: Node) -> str:
        """Declare the et_wlayer of a linear/conv node; returns its C name."""
        n, geo = node.name, self.geometry(node)
        roles = self.trainable.get(n, frozenset())
        train_w, train_b = "weight" in roles, "bias" in roles
        want_dx = node.inputs[0] != INPUT and node.inputs[0] in self.needed
        self.check_ranges(node, geo, bool(self.num.weight_channels), train_w, want_dx)
        lo, hi = output_clamp(self.g, node)
        fields = [f".conv = {int(node.op != 'linear')}",
                  ".g = {" + ", ".join(map(str, geo)) + "}",
                  f".clamp_lo = {f32(lo)}", f".clamp_hi = {f32(hi)}",
                  f".train_w = {int(train_w)}", f".train_b = {int(train_b)}",
                  f".want_dx = {int(want_dx)}",
                  f".trace_gw = {self.trace_id(f'w/{n}', f'w_scale/{n}', f'w_zero/{n}', f'b/{n}')}"]
        fields += self.layer_state(node, geo, train_w, train_b, want_dx)
        fields += self.layer_buffers(node, geo, train_w, train_b)
        ident = c_ident(n)
        self.decls.append(f"static et_wlayer L_{ident} = {{\n    " + ",\n    ".join(fields)
                          + "\n};")
        self.layers[n] = f"L_{ident}"
        return f"L_{ident}"

    def layer_state(self, node: Node, geo, train_w: bool, train_b: bool,
                    want_dx: bool) -> list[str]:
        """Fields of the layer's long-lived state: parameters, trackers, statistics (RAM when
        trained, flash when frozen)."""
        st, n, ident = self.m.state, node.name, c_ident(node.name)
        c_out, per_ch = geo[3], bool(self.num.weight_channels)
        fields = [f".w = (int8_t *){self.state_array('int8_t', f'w_{ident}', st[n + ':w'], train_w)}",
                  f".b = (int32_t *){self.state_array('int32_t', f'b_{ident}', st[n + ':b'], train_b)}",
                  f".b_scale = {self.state_array('float', f'bs_{ident}', st[n + ':b_scale'], False)}",
                  f".w_range = {self.tracker(n + ':w', c_out if per_ch else 1, mutable=train_w)}",
                  f".a_range = {self.tracker(n + ':a')}",
                  f".dx_range = {self.tracker(n + ':dx') if want_dx else '0'}",
                  f".g_stats = {self.grad_stats(n + ':g', c_out) if train_w else '0'}",
                  f".gb_stats = {self.grad_stats(n + ':gb', 1) if train_b else '0'}"]
        w_zero = 0
        if train_w:  # recomputed from the tracker every step
            self.decls.append(f"static float ws_{ident}[{c_out}];")
            self.state_bytes += 4 * c_out
        else:  # frozen weights: their qparams never change, computed once, in flash
            qp = self.m.weight_qparams(n)
            w_zero = int(np.asarray(qp.zero).ravel()[0])
            self.decls.append(f"static const float ws_{ident}[{c_out}] = "
                              f"{c_values(np.broadcast_to(qp.scale, (c_out,)), f32)};")
            self.flash_bytes += 4 * c_out
        if train_w:
            self.state_map[f"w_{ident}"] = ("int8", n + ":w")
        if train_b:
            self.state_map[f"b_{ident}"] = ("int32", n + ":b")
        emax = "0"
        if self.cfg.policy.partial and train_w:
            self.state_map[f"em_{ident}"] = ("emax", n + ":emax")
            value = np.float32(np.asarray(st.get(f"{n}:emax", np.zeros(1))).ravel()[0])
            emax = "&" + self.ranges(f"em_{ident}", [value], [0.0], True) + "[0].lo"
        return fields + [f".w_scale = (float *)ws_{ident}", f".w_fixed = {int(not train_w)}",
                         f".w_zero = {w_zero}", f".emax = {emax}"]

    def layer_buffers(self, node: Node, geo, train_w: bool, train_b: bool) -> list[str]:
        """Fields pointing into the arena: accumulators, centred errors, gradients, scratch."""
        n = node.name
        bufs = weight_layer_arena(geo, self.B, train_w, train_b, self.cfg.policy.partial,
                                  bool(self.num.weight_channels))
        fields = []
        for member, (ctype, count, wanted) in bufs.items():
            name = f"{'sg' if member == 's_g' else member}:{n}"
            ptr = f"({ctype} *){addr(self.buf(name, ctype, count))}" if wanted else "0"
            fields.append(f".{member} = {ptr}")
        sc_fwd, sc_bwd = self.conv_scratch(node, geo)
        return fields + [f".sc_fwd = {sc_fwd}", f".sc_bwd = {sc_bwd}"]

    def conv_scratch(self, node: Node, geo) -> tuple[str, str]:
        """Initialisers of the forward and backward et_conv_scratch (see et_kernels.h)."""
        sizes = conv_scratch(node.op, geo)
        if not sizes:  # linear, depthwise: direct loops, no scratch
            return "{0, 0, 0}", "{0, 0, 0}"
        colf, colb, wt, kept = (self.buf(f"{what}:{node.name}", *sizes[what])
                                for what in ("colf", "colb", "wt", "kb"))
        return (f"{{(int16_t *){addr(colf)}, 0, 0}}",
                f"{{(int16_t *){addr(colb)}, (int8_t *){addr(wt)}, (int32_t *){addr(kept)}}}")

    def int_op(self, node: Node) -> str:
        ident = c_ident(node.name)
        shape = self.g.shapes[node.inputs[0]]
        out = self.g.shapes[node.name]
        if node.op in ("maxpool2d", "avgpool2d"):
            (kh, kw), (sh, sw), (ph, pw), _ = pool_geometry(node.attrs, shape, node.op)
            geo = (shape[0], shape[1], shape[2], out[1], out[2], kh, kw, sh, sw, ph, pw)
        elif node.op == "global_avg_pool":
            geo = (shape[0], 1, int(np.prod(shape[1:])), 1, 1, 1, 1, 1, 1, 0, 0)
        else:
            geo = (0,) * 11
        e32 = "0"
        if node.op in ("maxpool2d", "avgpool2d", "global_avg_pool"):
            e32 = addr(self.buf(f"e32:{node.name}", "int32_t",
                                self.per_sample(node.name) + self.per_sample(node.inputs[0])))
            e32 = f"(int32_t *){e32}"
        self.decls.append(f"static et_intop OP_{ident} = {{{INT_OPS[node.op]}, "
                          f"{{{', '.join(map(str, geo))}}}, {e32}}};")
        return f"OP_{ident}"

    # ---- the training step, in Trainer.step's order
    def forward(self) -> None:
        B = self.B
        self.tensor("T_input", self.buf("act:input", "int8_t", B * self.per_sample(INPUT)),
                    self.per_sample(INPUT), None)
        self.call("    et_quantize_input(x, &T_input, c.batch, "
                  f"{self.tracker('input:a')}, cfg.pow2);", "act:input")
        self.acts = {INPUT: ("T_input", "act:input")}
        for node in self.g.nodes:
            self.forward_node(node)

    def act_buffer(self, node: Node) -> str:
        if node.op == "flatten":  # the same codes: no copy
            return self.acts[node.inputs[0]][1]
        return self.buf(f"act:{node.name}", "int8_t", self.B * self.per_sample(node.name))

    def forward_node(self, node: Node) -> None:
        kernel = int8_kernel(node.op)
        buf = self.act_buffer(node)
        trace = self.trace_id(f"act/{node.name}", f"act_scale/{node.name}",
                              f"act_zero/{node.name}")
        var = self.tensor(f"T_{c_ident(node.name)}", buf, self.per_sample(node.name), trace)
        ins = [self.acts[t] for t in node.inputs]
        if isinstance(kernel, WeightKernel):
            L = self.weight_layer(node)
            self.call(f"    et_fwd_weight(&c, &{L}, &{ins[0][0]}, &{var}, observe);",
                      ins[0][1], f"acc:{node.name}", buf, self.scratch_use("colf", node.name))
        elif isinstance(kernel, IntKernel):
            op = self.int_op(node)
            self.call(f"    et_fwd_int(&c, &{op}, &{ins[0][0]}, &{var});", ins[0][1], buf)
        elif isinstance(kernel, AddKernel):
            scratch = self.buf(f"add:{node.name}", "int32_t", self.B * self.per_sample(node.name))
            lo, hi = output_clamp(self.g, node)
            self.call(f"    et_fwd_add(&c, {self.tracker(node.name + ':a')}, {f32(lo)}, {f32(hi)}, "
                      f"&{ins[0][0]}, &{ins[1][0]}, &{var}, (int32_t *){addr(scratch)}, observe);",
                      ins[0][1], ins[1][1], scratch, buf)
        else:
            raise EdgetrainError(f"op '{node.op}' has no C kernel yet")
        self.acts[node.name] = (var, buf)
        self.forward_calls = len(self.calls)

    def loss(self) -> str:
        out = self.g.output
        k = self.per_sample(out)
        grad = self.buf("loss:grad", "int64_t", self.B * k)
        exps = self.buf("loss:exps", "int64_t", k)
        e_buf = self.buf(f"err:{out}", "int8_t", self.B * k)
        e = self.tensor("E_loss", e_buf, k, None)
        self.call(f"    loss = et_loss_error(&c, &{self.acts[out][0]}, labels, "
                  f"{self.tracker(out + ':e')}, &{e}, (int64_t *){addr(grad)}, "
                  f"(int64_t *){addr(exps)});", self.acts[out][1], grad, exps, e_buf)
        return e

    def backward(self, e_out: str) -> list[str]:
        pending: dict[str, list[str]] = {self.g.output: [e_out]}
        updates: list[str] = []
        for node in reversed(self.g.nodes):
            if node.name not in self.needed or node.name not in pending:
                continue
            e = self.merge(node.name, pending.pop(node.name))
            tid = self.trace_id(f"err/{node.name}", f"err_scale/{node.name}",
                                f"err_zero/{node.name}")
            self.call(f"    et_trace_as(&{e}, {tid}, c.batch);", self.tensor_buf[e])
            for t, e_in in zip(node.inputs, self.backward_node(node, e)):
                if e_in is not None and t in self.needed:
                    pending.setdefault(t, []).append(e_in)
            if self.trainable.get(node.name) and self.update_early:
                self.update([node.name])
            elif self.trainable.get(node.name):
                updates.append(node.name)
        return updates

    @property
    def update_early(self) -> bool:
        """Apply each layer's update right after its backward pass (operator reordering, Lin
        et al. 2022), so its gradient buffer dies at once. The engine updates after the whole
        backward pass; both give the same numbers unless the backward pass draws from the
        random stream (stochastic backward rounding), which would change the draw order."""
        return self.num.round_backward != "stochastic"

    def merge(self, tensor: str, parts: list[str]) -> str:
        if len(parts) == 1:
            return parts[0]
        n = self.per_sample(tensor)
        buf = self.buf(f"err:{tensor}", "int8_t", self.B * n)
        scratch = self.buf(f"merge:{tensor}", "int32_t", self.B * n)
        var = self.tensor(f"E_{c_ident(tensor)}", buf, n, None)
        arr = f"parts_{c_ident(tensor)}"
        self.decls.append(f"static const et_tensor *const {arr}[{len(parts)}] = "
                          f"{{{', '.join('&' + p for p in parts)}}};")
        self.call(f"    et_merge_errors(&c, {self.tracker(tensor + ':em')}, {arr}, {len(parts)}, "
                  f"&{var}, (int32_t *){addr(scratch)});",
                  *(self.tensor_buf[p] for p in parts), scratch, buf)
        return var

    def backward_node(self, node: Node, e: str) -> list[str | None]:
        kernel = int8_kernel(node.op)
        e_buf = self.tensor_buf[e]
        if isinstance(kernel, AddKernel):
            return [e, e]
        t_in = node.inputs[0]
        x_var, x_buf = self.acts[t_in]
        y_var, y_buf = self.acts[node.name]
        want = t_in != INPUT and t_in in self.needed
        if isinstance(kernel, WeightKernel):
            L, n = self.layers[node.name], node.name
            roles = self.trainable.get(n, frozenset())
            dx, d_buf = "0", None
            if want:
                d_buf = self.buf(f"err:{n}>{t_in}", "int8_t", self.B * self.per_sample(t_in))
                dx = "&" + self.tensor(f"D_{c_ident(n)}", d_buf, self.per_sample(t_in), None)
            uses = [e_buf, f"ec:{n}", f"kept:{n}" if self.cfg.policy.partial else None,
                    f"gw:{n}" if "weight" in roles else None,
                    f"gb:{n}" if "bias" in roles else None,
                    x_buf if "weight" in roles else None,
                    # acc: dx sums, and the error magnitudes of a partial update's selection
                    f"dxacc:{n}" if want or (self.cfg.policy.partial and "weight" in roles)
                    else None, d_buf]
            uses += [self.scratch_use(k, n) for k in ("colb", "wt", "kb")]
            self.call(f"    et_bwd_weight(&c, &{L}, &{x_var}, &{e}, {dx});", *uses)
            return [dx[1:] if want else None]
        if not want:
            return [None]
        if node.op == "flatten":
            return [e]
        d_buf = self.buf(f"err:{node.name}>{t_in}", "int8_t", self.B * self.per_sample(t_in))
        dx = self.tensor(f"D_{c_ident(node.name)}", d_buf, self.per_sample(t_in), None)
        needs = {"relu": (y_buf,), "relu6": (y_buf,), "maxpool2d": (x_buf, y_buf)}
        e32 = f"e32:{node.name}" if node.op in ("maxpool2d", "avgpool2d",
                                                 "global_avg_pool") else None
        self.call(f"    et_bwd_int(&c, &OP_{c_ident(node.name)}, &{x_var}, &{y_var}, &{e}, "
                  f"&{dx});", e_buf, *needs.get(node.op, ()), e32, d_buf)
        return [dx]

    def update(self, nodes: list[str]) -> None:
        for n in nodes:
            roles = self.trainable[n]
            partial = self.cfg.policy.partial and "weight" in roles
            self.call(f"    et_update_weight(&c, &{self.layers[n]});",
                      f"gw:{n}" if "weight" in roles else None,
                      f"gb:{n}" if "bias" in roles else None, f"kept:{n}" if partial else None,
                      self.scratch_use("wrow", n), self.scratch_use("sg", n))

    def step_epilogue(self) -> str:
        """C lines run at the end of every training step (none for int8)."""
        return ""

    # ---- arena and text
    def arena(self) -> tuple[dict[str, int], int, int]:
        """Offsets of every buffer from its lifetime over the step's calls (greedy planner)."""
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for i, (_, uses) in enumerate(self.calls):
            for u in uses:
                first.setdefault(u, i)
                last[u] = i
        reqs = [Request(name, align(CTYPE_BYTES[ct] * count, ALIGN), first[name], last[name])
                for name, (ct, count) in self.buffers.items() if name in first]
        layout = get_planner("greedy-best").place(self.placement_lifetimes(reqs))
        layout.check(reqs)
        return layout.offsets, max(layout.size, ALIGN), lower_bound(reqs)

    def placement_lifetimes(self, reqs: list[Request]) -> list[Request]:
        """The lifetimes the arena is placed from, as the planner places this precision."""
        return reqs

    def config_c(self) -> str:
        n, p = self.num, self.cfg.policy
        vals = [ROUND[n.round_forward], ROUND[n.round_backward], ROUND[n.round_update],
                int(n.weight_channels), int(n.pow2_scales), f32(n.rate_activation),
                f32(n.rate_error), f32(n.rate_weight), f32(n.rate_grad_mean),
                f32(n.rate_grad_var), f32(n.grad_eps), f32(self.cfg.lr),
                f32(p.lambda_min if p.partial else 0.0), f32(p.lambda_max), int(p.partial),
                ROUND[n.round_gradient], int(n.grad_rows)]
        return f"static const et_config cfg = {{{', '.join(map(str, vals))}}};"

    def weights_table(self) -> str:
        rows = []
        for n in self.layers:
            ident, st = c_ident(n), self.m.state
            rows.append(f"    {{\"{n}\", w_{ident}, b_{ident}, {st[n + ':w'].size}, "
                        f"{st[n + ':b'].size}, ws_{ident}}}")
        return ("static const et_weights et_layers[] = {\n" + ",\n".join(rows) + "\n};\n"
                if rows else "static const et_weights et_layers[1];\n")


def emit(model: Int8Model, cfg: ExportConfig, name: str = "model") -> Emitted:
    """model.c / model.h text for training ``model`` under ``cfg`` (int8 precision; the float
    precisions: :func:`edgetrain.export.emit_float.emit_float`)."""
    em = Emitter(model, cfg)
    em.forward()
    n_forward = len(em.calls)
    e_out = em.loss()
    updates = em.backward(e_out)
    em.update(updates)
    return emitted(em, name, n_forward)


def emitted(em: Emitter, name: str, n_forward: int, state_map: bool = False) -> Emitted:
    """The arena, model.c / model.h text and sizes of an emitter that has walked the step
    (its first ``n_forward`` calls are the forward pass); ``state_map``: include the RAM
    state map (the float precisions' verify restarts each step from the C's state)."""
    offsets, arena_bytes, bound = em.arena()
    model_c = _model_c(em, name, n_forward, offsets)
    em.state_bytes += OBSERVATION_BYTES * queue_entries(em.deferrable)  # deferred queue
    model_h = _model_h(em, name, arena_bytes)
    buffers = {b: {"ctype": ct, "count": cnt, "offset": offsets.get(b)}
               for b, (ct, cnt) in em.buffers.items()}
    return Emitted(model_c, model_h, em.traces, arena_bytes, bound, em.state_bytes,
                   em.flash_bytes, buffers, em.state_map if state_map else {})


def _rng_init(model: Int8Model, seed: int) -> int:
    """The stream state Trainer starts from: Stream(seed), seeded per run."""
    return int(Stream(seed).state)


def _model_c(em: Emitter, name: str, n_forward: int, offsets: dict[str, int]) -> str:
    """model.c: the data part, then the functions of the API."""
    return _model_c_data(em, name, offsets) + _model_c_api(em, n_forward)


def _model_c_data(em: Emitter, name: str, offsets: dict[str, int]) -> str:
    """Includes, the arena and its offsets, configuration, parameters, trackers."""
    defines = "\n".join(f"#define ET_OFF_{c_ident(b)} {off}" for b, off in sorted(
        offsets.items(), key=lambda kv: kv[1]))
    unused = [b for b in em.buffers if b not in offsets]  # declared, never touched by a call
    defines += "".join(f"\n#define ET_OFF_{c_ident(b)} 0 /* unused by this policy */"
                       for b in unused)
    names = ",\n    ".join(f'"{t}"' for t in em.traces)
    return f"""/* Generated by `edgetrain export` for model '{name}': data and order of work of one
 * training step ({em.precision}, policy {em.cfg.policy.name}, numerics '{em.num.name}', batch <= {em.B}).
 * The runtime (et_engine.c) holds the arithmetic; nothing here allocates memory. */
#include <math.h>
#include <string.h>

#include "{em.runtime_header}"
#include "model.h"

/* ---- one static arena; offsets from the arena planner over this step's buffer lifetimes */
static union {{ int64_t align; uint8_t bytes[ET_ARENA_BYTES]; }} et_arena;
#define ET_A(off) (et_arena.bytes + (off))
{defines}

/* ---- configuration, random stream, parameters, trackers (RAM arrays start from a const image) */
{em.config_c()}
static et_stream rng;
static const uint32_t rng_init = {_rng_init(em.m, em.cfg.seed)}u;
static int64_t et_loss_q16;

{chr(10).join(em.decls)}

/* deferred range observations of one step: at most two per tracker (merges) */
static et_observation et_queue[{queue_entries(em.deferrable)}];

{em.weights_table()}
#if ET_TRACE
const char *const et_trace_names[ET_TRACE_COUNT] = {{
    {names}
}};
#endif
"""


def _model_c_api(em: Emitter, n_forward: int) -> str:
    """et_init, the training step in the engine's order, et_predict, et_get_weights."""
    step = "\n".join(code for code, _ in em.calls)
    fwd = "\n".join(code for code, _ in em.calls[:n_forward])
    out = em.acts[em.g.output][0]
    return f"""void et_init(void)
{{
{chr(10).join(em.init)}
    rng.state = rng_init;
    et_error = ET_OK;
}}

static void et_step(const float *x, const int32_t *labels, int32_t batch)
{{
    et_ctx c = {{&cfg, &rng, batch}};
    const int observe = 1;
    {em.loss_ctype} loss = 0;
    (void)observe;
    et_deferred_reset(et_queue, {queue_entries(em.deferrable)});
{step}
    et_deferred_commit();
{em.step_epilogue()}    et_loss_q16 = {em.loss_to_q16};
}}

int et_train_batch(const float *inputs, const int32_t *labels, int32_t n)
{{
    if (n < 1 || n > ET_BATCH) {{
        et_fail(ET_ERR_SHIFT_RANGE);
        return et_error;
    }}
    for (int32_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= ET_NUM_CLASSES) {{
            et_fail(ET_ERR_SHIFT_RANGE);
            return et_error;
        }}
    et_step(inputs, labels, n);
    return et_error;
}}

int et_train_step(const float *input, int32_t label)
{{
    return et_train_batch(input, &label, 1);
}}

int64_t et_last_loss_q16(void) {{ return et_loss_q16; }}

void et_predict(const float *input, float *logits)
{{
    et_stream eval;
    et_stream_seed(&eval, 0);
    et_ctx c = {{&cfg, &eval, 1}};
    const int observe = 0;
    const float *x = input;
    (void)observe;
{fwd}
    for (int32_t k = 0; k < ET_NUM_CLASSES; k++)
        logits[k] = {em.predict_value.format(out=out)};
}}

int32_t et_layer_count(void) {{ return {len(em.layers)}; }}

et_weights et_get_weights(int32_t layer)
{{
    return et_layers[layer < 0 || layer >= {len(em.layers)} ? 0 : layer];
}}
"""


WEIGHTS_STRUCT = {
    "int8": """typedef struct {
    const char *name;
    const int8_t *weight;         /* int8[out_channels][weight_count / out_channels] */
    const int32_t *bias;          /* int32[out_channels], scale = the layer's bias scale */
    int32_t weight_count, out_channels;
    const float *scale;           /* float32[out_channels] weight scales (zero point 0 when
                                     per channel) */
} et_weights;""",
    "float": """typedef struct {
    const char *name;
    const float *weight;          /* float32[out_channels][weight_count / out_channels] */
    const float *bias;            /* float32[out_channels] */
    int32_t weight_count, out_channels;
    const float *scale;           /* 0: float32 weights have no scale */
} et_weights;""",
}


def _model_h(em: Emitter, name: str, arena_bytes: int) -> str:
    return f"""/* Generated by `edgetrain export`: the API of model '{name}' (see docs/deploy.md).
 *   et_init()                          reset weights, scales and statistics to the exported ones
 *   et_predict(input, logits)          float32[ET_INPUT_SIZE] -> float32[ET_NUM_CLASSES]
 *   et_train_step(input, label)        one sample, one update; returns 0 or an error code
 *   et_train_batch(inputs, labels, n)  n <= ET_BATCH samples, one update
 *   et_get_weights(layer)              the current int8 weights, int32 biases and scales */
#ifndef ET_MODEL_H
#define ET_MODEL_H

#include <stdint.h>

#define ET_INPUT_SIZE {em.per_sample(INPUT)}
#define ET_NUM_CLASSES {em.per_sample(em.g.output)}
#define ET_BATCH {em.B}
#define ET_ARENA_BYTES {arena_bytes}
#define ET_TRACE_COUNT {len(em.traces)}

{WEIGHTS_STRUCT[em.weight_type]}

void et_init(void);
void et_predict(const float *input, float *logits);
int et_train_step(const float *input, int32_t label);
int et_train_batch(const float *inputs, const int32_t *labels, int32_t n);
int64_t et_last_loss_q16(void);
int32_t et_layer_count(void);
et_weights et_get_weights(int32_t layer);

#endif
"""
