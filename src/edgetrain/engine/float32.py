"""The float32 engine: forward, backward over a Graph, batch first.

>>> from edgetrain.ir import GraphBuilder, Policy
>>> b = GraphBuilder("tiny", (4,), seed=0)
>>> g = b.build(b.add("linear", "input", out_features=3))
>>> x, y = np.ones((2, 4), np.float32), np.array([0, 2])
>>> loss, logits, grads = loss_and_grads(g, x, y, Policy().trainable_params(g))
>>> logits.shape, sorted(grads)
((2, 3), ['linear0.bias', 'linear0.weight'])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetrain.ir.graph import INPUT, Graph
from edgetrain.ir.registry import Want, get_op


@dataclass
class Trace:
    """What a forward pass keeps for the backward pass."""

    values: dict[str, np.ndarray]  # tensor name -> float32[B, ...]
    ctxs: dict[str, object]  # node name -> op context


def as_float(x) -> np.ndarray:
    """float64 input stays float64 (gradient checks, parity with PyTorch in double);
    anything else computes in float32."""
    x = np.asarray(x)
    return x if x.dtype == np.float64 else x.astype(np.float32, copy=False)


def forward(graph: Graph, x: np.ndarray, training: bool = False) -> Trace:
    """Run every node; in training mode BatchNorm uses and updates batch statistics.
    The ops compute in the dtype of x and the parameters (float32 normally)."""
    values = {INPUT: as_float(x)}
    ctxs = {}
    for node in graph.nodes:
        y, ctx = get_op(node.op).forward(node.attrs, [values[t] for t in node.inputs],
                                         graph.node_params(node), training)
        values[node.name] = y
        ctxs[node.name] = ctx
    return Trace(values, ctxs)


def predict(graph: Graph, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Logits for x, in inference mode, in chunks of `batch`."""
    outs = [forward(graph, x[i:i + batch]).values[graph.output] for i in range(0, len(x), batch)]
    return np.concatenate(outs) if outs else np.zeros((0, graph.num_classes), np.float32)


def error_needed(graph: Graph, trainable: dict[str, frozenset[str]]) -> set[str]:
    """Tensors whose error (dLoss/dtensor) must be computed: those downstream of a trained
    parameter. A frozen prefix gets no error at all."""
    needed: set[str] = set()
    for node in graph.nodes:
        if node.name in trainable or any(t in needed for t in node.inputs):
            needed.add(node.name)
    return needed


def backward(graph: Graph, trace: Trace, d_output: np.ndarray,
             trainable: dict[str, frozenset[str]]) -> dict[str, np.ndarray]:
    """Gradients of the trained parameters (param key -> array), given dLoss/d(output)."""
    needed = error_needed(graph, trainable)
    errors = {graph.output: d_output}
    grads = {}
    for node in reversed(graph.nodes):
        if node.name not in needed or node.name not in errors:
            continue
        want = Want(tuple(t in needed for t in node.inputs), trainable.get(node.name, frozenset()))
        dxs, dps = get_op(node.op).backward(node.attrs, trace.ctxs[node.name],
                                            errors.pop(node.name), graph.node_params(node), want)
        for role, g in dps.items():
            grads[node.params[role]] = g
        for t, dx in zip(node.inputs, dxs):
            if dx is not None and t != INPUT:
                errors[t] = errors[t] + dx if t in errors else dx  # residual fan-out sums
    return grads


def loss_and_grads(graph: Graph, x: np.ndarray, y: np.ndarray,
                   trainable: dict[str, frozenset[str]]):
    """One forward + backward in training mode: (mean loss, logits, grads)."""
    trace = forward(graph, x, training=True)
    logits = trace.values[graph.output]
    loss_op = get_op(graph.loss)
    loss, ctx = loss_op.forward({}, [logits, y], {}, True)
    (d_logits, _), _ = loss_op.backward({}, ctx, 1.0, {}, Want((True, False)))
    return loss, logits, backward(graph, trace, d_logits, trainable)
