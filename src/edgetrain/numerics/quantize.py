"""Post-training quantization of a float graph (Jacob et al. 2018, "Quantization and Training
of Neural Networks for Efficient Integer-Arithmetic-Only Inference"; the graph preparation
of Deutel et al. 2024): BatchNorm folded into the preceding convolution, activation ranges
calibrated on data, int8 weights (affine per tensor or symmetric per output channel), int32
biases at scale s_x * s_w.

The result, :class:`Int8Model`, is the folded float graph plus ``state``: a flat dict of
plain arrays (int8 weights, int32 biases, every range tracker, later the gradient
statistics and the random stream) that is the whole engine state, saved with
``io.model_file.save_bundle`` as kind ``"int8"``. State keys:

``<node>:w`` int8 weight, ``<node>:w_lo|w_hi|w_seen`` its range tracker (per channel when
symmetric), ``<node>:b`` int32 bias, ``<node>:b_scale`` float32[O] its fixed scale,
``<tensor>:a_lo|a_hi|a_seen`` activation range trackers (the input and the outputs of
weight layers and adds).

>>> from edgetrain.ir import GraphBuilder
>>> b = GraphBuilder("tiny", (4,), seed=0)
>>> g = b.build(b.add("relu", b.add("linear", "input", out_features=3)))
>>> m = quantize(g, np.ones((8, 4), np.float32))
>>> m.state["linear0:w"].dtype, m.state["linear0:b"].dtype, sorted(m.tracked)
(dtype('int8'), dtype('int32'), ['input', 'linear0'])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgetrain.errors import EdgetrainError
from edgetrain.ir.graph import INPUT, Graph, Node, validate
from edgetrain.ir.registry import get_op
from edgetrain.numerics.config import Numerics
from edgetrain.numerics.config import get as get_numerics
from edgetrain.numerics.kernels import AddKernel, WeightKernel, int8_kernel
from edgetrain.numerics.qparams import QParams
from edgetrain.numerics.qparams import quantize as quantize_values
from edgetrain.numerics.rounding import round_f32
from edgetrain.numerics.tracker import RangeTracker

KIND = "int8"
CLAMPS = {"relu": (0.0, np.inf), "relu6": (0.0, 6.0)}  # fused activation -> output range
CALIB_BATCH = 256


@dataclass
class Int8Model:
    graph: Graph  # BN-folded float graph (the float32 reference of the same weights)
    numerics: Numerics
    state: dict[str, np.ndarray]

    @property
    def tracked(self) -> list[str]:
        """Tensors with their own activation range tracker."""
        return [k[:-len(":a_lo")] for k in self.state if k.endswith(":a_lo")]

    def tracker(self, key: str) -> RangeTracker:
        return RangeTracker(self.state[f"{key}_lo"], self.state[f"{key}_hi"],
                            self.state[f"{key}_seen"])

    def put_tracker(self, key: str, t: RangeTracker) -> None:
        self.state[f"{key}_lo"], self.state[f"{key}_hi"] = t.lo, t.hi
        self.state[f"{key}_seen"] = np.asarray(t.seen)

    def weight_qparams(self, node: str) -> QParams:
        return self.tracker(f"{node}:w").qparams(symmetric=self.numerics.weight_channels)

    def act_qparams(self, tensor: str) -> QParams:
        return self.tracker(f"{tensor}:a").qparams(pow2=self.numerics.pow2_scales)

    def copy(self) -> Int8Model:
        return Int8Model(self.graph.copy(), self.numerics,
                         {k: v.copy() for k, v in self.state.items()})


def is_weight_node(node: Node) -> bool:
    return isinstance(int8_kernel(node.op), WeightKernel)


def fold_batchnorm(graph: Graph) -> Graph:
    """A copy of `graph` with every BatchNorm folded into the conv/linear feeding it:
    w' = w * gamma / sqrt(var + eps) per output channel, b' = (b - mean) * that + beta."""
    g = graph.copy()
    consumers = g.consumers()
    rename: dict[str, str] = {}
    nodes = []
    for node in g.nodes:
        node = replace(node, inputs=tuple(rename.get(t, t) for t in node.inputs))
        if node.op != "batchnorm":
            nodes.append(node)
            continue
        prev = next((n for n in nodes if n.name == node.inputs[0]), None)
        if prev is None or "weight" not in prev.params or len(consumers[prev.name]) != 1:
            raise EdgetrainError(f"batchnorm '{node.name}' does not directly follow a conv or "
                                 "linear layer, so it cannot be folded for int8")
        _fold_into(g, prev, node)
        rename[node.name] = prev.name
        for role in node.params.values():
            g.params.pop(role)
    g.nodes = nodes
    g.output = rename.get(g.output, g.output)
    validate(g)
    return g


def _fold_into(g: Graph, conv: Node, bn: Node) -> None:
    p = g.node_params(bn)
    eps = np.float64(bn.attrs.get("eps", 1e-5))
    factor = p["gamma"].astype(np.float64) / np.sqrt(p["running_var"].astype(np.float64) + eps)
    w = g.params[conv.params["weight"]]
    shape = (-1,) + (1,) * (w.ndim - 1)
    g.params[conv.params["weight"]] = (w * factor.reshape(shape)).astype(np.float32)
    b = g.params[conv.params["bias"]].astype(np.float64)
    g.params[conv.params["bias"]] = ((b - p["running_mean"]) * factor + p["beta"]).astype(
        np.float32)


def output_clamp(graph: Graph, node: Node) -> tuple[float, float]:
    """The real range a node's output can take: clamped when its only consumer is ReLU or
    ReLU6 (the activation is fused into the requantization), else unbounded."""
    users = graph.consumers()[node.name]
    if len(users) == 1 and users[0].op in CLAMPS:
        return CLAMPS[users[0].op]
    return (-np.inf, np.inf)


def tracked_tensors(graph: Graph) -> list[str]:
    """The input and the outputs that get their own scale (weight layers and adds)."""
    out = [INPUT]
    for node in graph.nodes:
        kernel = int8_kernel(node.op)
        if isinstance(kernel, WeightKernel | AddKernel):
            out.append(node.name)
    return out


def calibrate(graph: Graph, x: np.ndarray) -> dict[str, tuple[np.float32, np.float32]]:
    """(min, max) of the input and of each tracked output over `x`, float forward in
    inference mode, output ranges clamped by fused activations."""
    tracked = tracked_tensors(graph)
    lo = {t: np.float32(np.inf) for t in tracked}
    hi = {t: np.float32(-np.inf) for t in tracked}
    for i in range(0, len(x), CALIB_BATCH):
        values = {INPUT: np.asarray(x[i:i + CALIB_BATCH], np.float32)}
        for node in graph.nodes:
            values[node.name] = get_op(node.op).forward(
                node.attrs, [values[t] for t in node.inputs], graph.node_params(node), False)[0]
        for t in tracked:
            lo[t] = min(lo[t], np.float32(values[t].min()))
            hi[t] = max(hi[t], np.float32(values[t].max()))
    clamps = {n.name: output_clamp(graph, n) for n in graph.nodes}
    return {t: (np.float32(np.clip(lo[t], *clamps.get(t, (-np.inf, np.inf)))),
                np.float32(np.clip(hi[t], *clamps.get(t, (-np.inf, np.inf))))) for t in tracked}


def _weight_state(node: Node, w: np.ndarray, b: np.ndarray, s_x: np.float32,
                  numerics: Numerics) -> dict[str, np.ndarray]:
    if numerics.weight_channels:
        flat = w.reshape(len(w), -1)
        t = RangeTracker.of(flat.min(axis=1), flat.max(axis=1))
    else:
        t = RangeTracker.of(w.min(), w.max())
    qp = t.qparams(symmetric=numerics.weight_channels)
    b_scale = np.broadcast_to(s_x * qp.scale, b.shape).astype(np.float32)  # float32[O]
    b_q = round_f32(np.clip(b / b_scale, -2.0**31, 2.0**31 - 1), "nearest")
    n = node.name
    return {f"{n}:w": quantize_values(w, qp, "nearest"), f"{n}:w_lo": t.lo, f"{n}:w_hi": t.hi,
            f"{n}:w_seen": t.seen, f"{n}:b": np.clip(b_q, -2**31, 2**31 - 1).astype(np.int32),
            f"{n}:b_scale": b_scale}


def quantize(graph: Graph, x_calib: np.ndarray, numerics: Numerics | str = "default",
             ) -> Int8Model:
    """Fold BatchNorm, calibrate activation ranges on `x_calib`, quantize the weights."""
    numerics = get_numerics(numerics) if isinstance(numerics, str) else numerics
    if len(x_calib) == 0:
        raise EdgetrainError("quantize needs calibration data (got 0 samples)")
    g = fold_batchnorm(graph)
    for node in g.nodes:
        int8_kernel(node.op)  # every op needs an integer kernel
    state: dict[str, np.ndarray] = {}
    for t, (lo, hi) in calibrate(g, x_calib).items():
        tr = RangeTracker.of(lo, hi)
        state.update({f"{t}:a_lo": tr.lo, f"{t}:a_hi": tr.hi, f"{t}:a_seen": tr.seen})
    model = Int8Model(g, numerics, state)
    for node in g.nodes:
        if is_weight_node(node):
            s_x = model.act_qparams(_scale_source(g, node.inputs[0])).scale
            state.update(_weight_state(node, g.param(node, "weight"), g.param(node, "bias"),
                                       s_x, numerics))
    return model


def _scale_source(graph: Graph, tensor: str) -> str:
    """The tracked tensor whose scale `tensor` carries (pass-through ops keep the scale;
    pools keep it too, by requantizing their means into it)."""
    while tensor != INPUT and not isinstance(int8_kernel(graph.node(tensor).op),
                                             WeightKernel | AddKernel):
        tensor = graph.node(tensor).inputs[0]
    return tensor


def save_int8(model: Int8Model, path: str | Path) -> Path:
    from edgetrain.io.model_file import graph_to_manifest, save_bundle

    manifest = {"graph": graph_to_manifest(model.graph), "numerics": model.numerics.to_dict()}
    arrays = {**{f"param/{k}": v for k, v in model.graph.params.items()},
              **{f"state/{k}": v for k, v in model.state.items()}}
    return save_bundle(path, KIND, manifest, arrays)


def int8_from_bundle(manifest: dict, arrays: dict[str, np.ndarray]) -> Int8Model:
    from edgetrain.io.model_file import graph_from_manifest

    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    state = {k[len("state/"):]: v for k, v in arrays.items() if k.startswith("state/")}
    try:
        numerics = Numerics(**manifest["numerics"])
        graph = graph_from_manifest(manifest["graph"], params)
    except (KeyError, TypeError) as e:
        raise EdgetrainError(f"int8 model manifest is damaged ({e})")
    return Int8Model(graph, numerics, state)


def load_int8(path: str | Path) -> Int8Model:
    from edgetrain.io.model_file import load_bundle

    kind, manifest, arrays = load_bundle(path)
    if kind != KIND:
        raise EdgetrainError(f"model file '{path}' holds a '{kind}' model, not an int8 one; "
                             "run 'edgetrain quantize' first")
    return int8_from_bundle(manifest, arrays)


def load_model(path: str | Path) -> Graph | Int8Model:
    """A model file of either kind: a float32 graph or an int8 model."""
    from edgetrain.io.model_file import GRAPH_KIND, graph_from_manifest, load_bundle

    kind, manifest, arrays = load_bundle(path)
    if kind == KIND:
        return int8_from_bundle(manifest, arrays)
    if kind == GRAPH_KIND:
        return graph_from_manifest(manifest, arrays)
    raise EdgetrainError(f"model file '{path}' holds a '{kind}' model, neither a float32 "
                         "graph nor an int8 model")
