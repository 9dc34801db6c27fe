"""The C emitter of the float precisions (`mixed`, `float32`) of
:class:`edgetrain.engine.int8.Trainer`, after Deutel et al. 2024 ("On-Device Training of
Fully Quantized Deep Neural Networks on Cortex-M Microcontrollers", whose mixed and float32
baselines these are). The runtime half is ``runtime/et_float.c``.

* ``mixed``: the int8 forward is the int8 emitter's, call for call (et_quantize_input,
  et_fwd_weight, et_fwd_int, et_fwd_add: the same integers); the loss, the errors and the
  gradients are float32 (et_m_*), and each trained layer's int8 weights are updated in place
  by the standardized SGD step (et_m_update).
* ``float32``: the same graph (BatchNorm folded), policy and update, all in float32 (et_f_*).

Both keep the int8 emitter's bookkeeping: one static arena planned from the buffers' lifetimes
over this step's calls, trace ids named as the engine's trace (``act/``, ``err/``, ``w/``,
``b/`` and ``loss/batch``), updates right after each layer's backward pass (the float
backward draws nothing from the random stream, so the order of draws is the engine's).

>>> from edgetrain.ir import GraphBuilder
>>> from edgetrain.export.emit import ExportConfig
>>> b = GraphBuilder("tiny", (4,), seed=0)
>>> g = b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
...                   out_features=3))
>>> out = emit_float(float_model(g), ExportConfig(), "float32")
>>> [line.strip() for line in out.model_c.splitlines() if "et_f_update" in line]
['et_f_update(&c, &F_linear2);', 'et_f_update(&c, &F_linear0);']
>>> [t for t in out.trace_names if t.startswith(("loss", "err"))]
['loss/batch', 'err/linear2', 'err/relu1', 'err/linear0']
"""

from __future__ import annotations

import numpy as np

from edgetrain.errors import EdgetrainError, unknown
from edgetrain.export.emit import (
    Emitted,
    Emitter,
    ExportConfig,
    addr,
    c_ident,
    emitted,
)
from edgetrain.ir.graph import INPUT, Graph, Node
from edgetrain.memory.arena import Request, ranked
from edgetrain.memory.runtime import float_layer_arena
from edgetrain.numerics.config import Numerics
from edgetrain.numerics.config import get as get_numerics
from edgetrain.numerics.kernels import AddKernel, IntKernel, WeightKernel, int8_kernel
from edgetrain.numerics.quantize import Int8Model, fold_batchnorm

FLOAT_PRECISIONS = ("mixed", "float32")


def float_model(graph: Graph, numerics: Numerics | str = "default") -> Int8Model:
    """The carrier of a float32 export: the BatchNorm-folded float graph, no quantization
    state (the float32 engine reads only the graph, the numerics' rates and its own state)."""
    num = get_numerics(numerics) if isinstance(numerics, str) else numerics
    return Int8Model(fold_batchnorm(graph), num, {})


class FloatErrors(Emitter):
    """Loss, backward pass and update with float32 errors (shared by both precisions); the
    subclasses say which forward runs and which runtime functions (``et_m_`` / ``et_f_``)."""

    prefix = "f"
    runtime_header = "et_float.h"
    loss_ctype = "float"
    loss_to_q16 = "(int64_t)(loss * 65536.0f)"

    def __init__(self, model: Int8Model, cfg: ExportConfig):
        super().__init__(model, cfg)
        self.flayers: dict[str, str] = {}  # node -> C name of its et_flayer

    @property
    def update_early(self) -> bool:
        return True  # float backward passes draw nothing from the random stream

    def placement_lifetimes(self, reqs: list[Request]) -> list[Request]:
        """Ranked lifetimes (``arena.ranked``: trace and view calls do not stretch them), as
        the planner places a float plan's arena."""
        return ranked(reqs)

    def step_epilogue(self) -> str:
        """Trace the whole RAM state after each step (``state/<array>``, ``state/rng``):
        verify starts the engine's next step from it, so each step is compared alone."""
        lines = [f"    ET_TRACE_T({self.trace_id('state/' + name)}, {name}, sizeof {name});\n"
                 for name in self.state_map]
        lines.append(f"    ET_TRACE_T({self.trace_id('state/rng')}, &rng.state, 4);\n")
        return "".join(lines)

    def ftensor(self, var: str, buffer: str, n: int, trace: int | None) -> str:
        tid = "ET_NO_TRACE" if trace is None else str(trace)
        self.decls.append(f"static et_ftensor {var} = {{(float *){addr(buffer)}, {n}, {tid}}};")
        self.tensor_buf[var] = buffer
        return var

    def ferr(self, var: str, tensor: str) -> str:
        """A float error tensor of the whole batch with the shape of `tensor`."""
        n = self.per_sample(tensor)
        return self.ftensor(var, self.buf(f"ferr:{var}", "float", self.B * n), n, None)

    # ---- the float side of a weight layer
    def flayer(self, node: Node, params: list[str], trace_gw: int) -> str:
        """Declare the et_flayer of a weight node (params: its weights or int8 layer, its
        gradient statistics and partial-update maximum)."""
        n, ident = node.name, c_ident(node.name)
        geo = self.geometry(node)
        train_w, train_b, partial = self.roles(node)
        want_dx = node.inputs[0] != INPUT and node.inputs[0] in self.needed
        fields = [".g = {" + ", ".join(map(str, geo)) + "}", *params,
                  f".train_w = {int(train_w)}", f".train_b = {int(train_b)}",
                  f".want_dx = {int(want_dx)}"]
        bufs = float_layer_arena(geo, self.B, train_w, train_b, partial)  # as the planner's
        for member, (ctype, count, wanted) in bufs.items():
            ptr = f"({ctype} *){addr(self.buf(f'{member}:{n}', ctype, count))}" if wanted else "0"
            fields.append(f".{member} = {ptr}")
        fields.append(f".trace_gw = {trace_gw}")
        self.decls.append(f"static et_flayer F_{ident} = {{\n    " + ",\n    ".join(fields)
                          + "\n};")
        self.flayers[n] = f"F_{ident}"
        return f"F_{ident}"

    def roles(self, node: Node) -> tuple[bool, bool, bool]:
        """(weights trained, bias trained, partial updates) of a weight node."""
        roles = self.trainable.get(node.name, frozenset())
        train_w = "weight" in roles
        return train_w, "bias" in roles, self.cfg.policy.partial and train_w

    # ---- loss, backward, update
    def loss(self) -> str:
        out = self.g.output
        e = self.ferr("E_loss", out)
        tid = self.trace_id("loss/batch")
        logits, uses = self.logits()
        self.call(f"    loss = et_f_loss(&c, {logits}, {self.per_sample(out)}, labels, &{e});",
                  *uses, self.tensor_buf[e])
        self.call(f"    ET_TRACE_T({tid}, &loss, 4);")
        return e

    def backward(self, e_out: str) -> list[str]:
        pending: dict[str, list[str]] = {self.g.output: [e_out]}
        for node in reversed(self.g.nodes):
            if node.name not in self.needed or node.name not in pending:
                continue
            e = self.merge(node.name, pending.pop(node.name))
            tid = self.trace_id(f"err/{node.name}")
            self.call(f"    et_f_trace(&{e}, {tid}, c.batch);", self.tensor_buf[e])
            for t, e_in in zip(node.inputs, self.backward_node(node, e)):
                if e_in is not None and t in self.needed:
                    pending.setdefault(t, []).append(e_in)
            if self.trainable.get(node.name):
                self.update([node.name])
        return []

    def merge(self, tensor: str, parts: list[str]) -> str:
        if len(parts) == 1:
            return parts[0]
        var = self.ferr(f"E_{c_ident(tensor)}", tensor)
        arr = f"parts_{c_ident(tensor)}"
        self.decls.append(f"static const et_ftensor *const {arr}[{len(parts)}] = "
                          f"{{{', '.join('&' + p for p in parts)}}};")
        self.call(f"    et_f_merge(&c, {arr}, {len(parts)}, &{var});",
                  *(self.tensor_buf[p] for p in parts), self.tensor_buf[var])
        return var

    def backward_node(self, node: Node, e: str) -> list[str | None]:
        kernel = int8_kernel(node.op)
        if isinstance(kernel, AddKernel):
            return [e, e]
        t_in = node.inputs[0]
        want = t_in != INPUT and t_in in self.needed
        if isinstance(kernel, WeightKernel):
            return [self.backward_weight(node, e, want)]
        if not want:
            return [None]
        if node.op == "flatten":
            return [e]
        (x_var, x_buf), (y_var, y_buf) = self.acts[t_in], self.acts[node.name]
        dx = self.ferr(f"D_{c_ident(node.name)}", t_in)
        self.call(f"    et_{self.prefix}_bwd_int(&c, &OP_{c_ident(node.name)}, &{x_var}, "
                  f"&{y_var}, &{e}, &{dx});", self.tensor_buf[e], x_buf, y_buf,
                  self.tensor_buf[dx])
        return [dx]

    def backward_weight(self, node: Node, e: str, want: bool) -> str | None:
        n, (x_var, x_buf) = node.name, self.acts[node.inputs[0]]
        roles = self.trainable.get(n, frozenset())
        dx = self.ferr(f"D_{c_ident(n)}", node.inputs[0]) if want else None
        partial = self.cfg.policy.partial and "weight" in roles
        uses = [self.tensor_buf[e], x_buf if "weight" in roles else None,
                f"gw:{n}" if "weight" in roles else None, f"gb:{n}" if "bias" in roles else None,
                f"kept:{n}" if partial else None, f"mags:{n}" if partial else None,
                self.tensor_buf[dx] if dx else None]
        self.call(f"    et_{self.prefix}_bwd_weight(&c, &{self.flayers[n]}, &{x_var}, &{e}, "
                  f"{'&' + dx if dx else '0'});", *uses)
        return dx

    def update(self, nodes: list[str]) -> None:
        for n in nodes:
            roles = self.trainable[n]
            partial = self.cfg.policy.partial and "weight" in roles
            self.call(f"    et_{self.prefix}_update(&c, &{self.flayers[n]});",
                      f"gw:{n}" if "weight" in roles else None,
                      f"gb:{n}" if "bias" in roles else None, f"kept:{n}" if partial else None)


class MixedEmitter(FloatErrors):
    """mixed: the int8 forward (inherited), float errors and gradients, int8 update."""

    prefix = "m"
    precision = "mixed"

    def check_ranges(self, node: Node, geo, per_channel: bool, train_w: bool,
                     want_dx: bool) -> None:
        super().check_ranges(node, geo, per_channel, False, False)  # int32 forward sums only

    def weight_layer(self, node: Node) -> str:
        """The int8 et_wlayer (declared as for int8, with its statistics and maximum) and the
        et_flayer of the float backward pass pointing at it."""
        name = super().weight_layer(node)
        n, ident = node.name, c_ident(node.name)
        if n not in self.needed:  # a frozen prefix: no backward pass, no float side
            return name
        train_w, train_b, partial = self.roles(node)
        params = [f".q = &{name}",
                  f".g_stats = {'gs_' + c_ident(n + ':g') if train_w else '0'}",
                  f".gb_stats = {'gs_' + c_ident(n + ':gb') if train_b else '0'}",
                  f".emax = {f'&em_{ident}[0].lo' if partial else '0'}"]
        self.flayer(node, params, self.traces.index(f"w/{n}"))
        return name

    def logits(self) -> tuple[str, tuple[str, ...]]:
        out = self.g.output
        buf = self.buf("logits", "float", self.B * self.per_sample(out))
        var, q_buf = self.acts[out]
        self.call(f"    et_m_logits(&c, &{var}, (float *){addr(buf)});", q_buf, buf)
        return f"(float *){addr(buf)}", (buf,)


class Float32Emitter(FloatErrors):
    """float32: float forward, errors, gradients and weights."""

    precision = "float32"
    predict_value = "{out}.v[k]"
    weight_type = "float"

    def check_ranges(self, node: Node, geo, per_channel: bool, train_w: bool,
                     want_dx: bool) -> None:
        return None  # no integer accumulators

    def forward(self) -> None:
        var = self.ftensor("T_input", self.buf("act:input", "float", self.B * self.per_sample(INPUT)),
                           self.per_sample(INPUT), None)
        self.call(f"    et_f_input(x, &{var}, c.batch);", "act:input")
        self.acts = {INPUT: (var, "act:input")}
        for node in self.g.nodes:
            self.forward_node(node)

    def forward_node(self, node: Node) -> None:
        kernel = int8_kernel(node.op)
        n = node.name
        buf = (self.acts[node.inputs[0]][1] if node.op == "flatten"
               else self.buf(f"act:{n}", "float", self.B * self.per_sample(n)))
        var = self.ftensor(f"T_{c_ident(n)}", buf, self.per_sample(n), self.trace_id(f"act/{n}"))
        ins = [self.acts[t] for t in node.inputs]
        if isinstance(kernel, WeightKernel):
            self.call(f"    et_f_fwd_weight(&c, &{self.weight_layer(node)}, &{ins[0][0]}, "
                      f"&{var});", ins[0][1], buf)
        elif isinstance(kernel, IntKernel):
            self.call(f"    et_f_fwd_int(&c, &{self.int_op(node)}, &{ins[0][0]}, &{var});",
                      ins[0][1], buf)
        elif isinstance(kernel, AddKernel):
            self.call(f"    et_f_fwd_add(&c, &{ins[0][0]}, &{ins[1][0]}, &{var});",
                      ins[0][1], ins[1][1], buf)
        else:
            raise EdgetrainError(f"op '{node.op}' has no C kernel yet")
        self.acts[n] = (var, buf)

    def weight_layer(self, node: Node) -> str:
        """The et_flayer of a float32 weight layer: float weights (RAM when trained)."""
        n, ident = node.name, c_ident(node.name)
        train_w, train_b, partial = self.roles(node)
        w = self.state_array("float", f"w_{ident}", self.g.param(node, "weight"), train_w)
        b = self.state_array("float", f"b_{ident}", self.g.param(node, "bias"), train_b)
        if train_w:
            self.state_map[w] = ("weight", n)
        if train_b:
            self.state_map[b] = ("bias", n)
        c_out = len(self.g.param(node, "bias"))
        params = [f".w = (float *){w}", f".b = (float *){b}",
                  f".g_stats = {self.grad_stats(n + ':g', c_out) if train_w else '0'}",
                  f".gb_stats = {self.grad_stats(n + ':gb', 1) if train_b else '0'}",
                  f".emax = {self.emax(node) if partial else '0'}"]
        trace = self.trace_id(f"w/{n}", f"w_scale/{n}", f"w_zero/{n}", f"b/{n}")
        self.layers[n] = self.flayer(node, params, trace)
        return self.layers[n]

    def emax(self, node: Node) -> str:
        value = np.float32(np.asarray(self.m.state.get(f"{node.name}:emax", np.zeros(1)))
                           .ravel()[0])
        self.state_map[f"em_{c_ident(node.name)}"] = ("emax", node.name + ":emax")
        return "&" + self.ranges(f"em_{c_ident(node.name)}", [value], [0.0], True) + "[0].lo"

    def logits(self) -> tuple[str, tuple[str, ...]]:
        var, buf = self.acts[self.g.output]
        return f"{var}.v", (buf,)

    def weights_table(self) -> str:
        rows = []
        for n in self.layers:
            ident = c_ident(n)
            rows.append(f"    {{\"{n}\", w_{ident}, b_{ident}, "
                        f"{self.g.param(self.g.node(n), 'weight').size}, "
                        f"{self.g.param(self.g.node(n), 'bias').size}, 0}}")
        return ("static const et_weights et_layers[] = {\n" + ",\n".join(rows) + "\n};\n"
                if rows else "static const et_weights et_layers[1];\n")


EMITTERS = {"mixed": MixedEmitter, "float32": Float32Emitter}


def emit_float(model: Int8Model, cfg: ExportConfig, precision: str,
               name: str = "model") -> Emitted:
    """model.c / model.h text for training ``model`` under ``cfg`` in a float precision."""
    if precision not in EMITTERS:
        raise unknown("precision", precision, FLOAT_PRECISIONS)
    em = EMITTERS[precision](model, cfg)
    em.forward()
    n_forward = len(em.calls)
    em.backward(em.loss())
    return emitted(em, name, n_forward, state_map=True)
