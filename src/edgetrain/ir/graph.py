"""The graph IR: a DAG of nodes in topological order, named tensors and parameters.

Shapes are per sample (no batch dimension), channels first: images (C, H, W), time series
(C, L), vectors (N,). Every node has exactly one output tensor, named after the node.
Parameters live in ``Graph.params`` as float32 arrays keyed ``"<node>.<role>"``; a node maps
each role to its key in ``Node.params``.

>>> b = GraphBuilder("tiny", (4,), seed=0)
>>> h = b.add("linear", "input", out_features=3)
>>> g = b.build(b.add("relu", h), num_classes=3)
>>> [n.name for n in g.nodes], g.shapes["linear0"], g.num_params()
(['linear0', 'relu1'], (3,), 15)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from edgetrain.errors import EdgetrainError
from edgetrain.ir.registry import get_op

INPUT = "input"


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # role -> key in Graph.params

    @property
    def output(self) -> str:
        return self.name


@dataclass
class Graph:
    name: str
    input_shape: tuple[int, ...]
    nodes: list[Node]
    params: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    output: str
    loss: str = "softmax_ce"
    num_classes: int = 0
    meta: dict = field(default_factory=dict)  # provenance: dataset, normalisation, ...

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        from edgetrain.errors import unknown

        raise unknown("layer", name, [n.name for n in self.nodes])

    def param(self, node: Node, role: str) -> np.ndarray:
        return self.params[node.params[role]]

    def node_params(self, node: Node) -> dict[str, np.ndarray]:
        return {role: self.params[key] for role, key in node.params.items()}

    def weight_nodes(self) -> list[Node]:
        """Nodes with a trainable weight (conv, linear), in order: the 'layers' of policies."""
        return [n for n in self.nodes if "weight" in n.params and get_op(n.op).trainable]

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {INPUT: []}
        for n in self.nodes:
            out[n.name] = []
            for t in n.inputs:
                out[t].append(n)
        return out

    def in_shapes(self, node: Node) -> list[tuple[int, ...]]:
        return [self.shapes[t] for t in node.inputs]

    def num_params(self) -> int:
        """Number of trainable parameter values (buffers such as BN statistics excluded)."""
        return sum(
            self.params[key].size
            for n in self.nodes
            for role, key in n.params.items()
            if role in get_op(n.op).trainable
        )

    def macs_per_sample(self) -> int:
        """Forward multiply-accumulates for one sample."""
        return sum(
            get_op(n.op).macs(n.attrs, self.in_shapes(n), self.shapes[n.name]) for n in self.nodes
        )

    def copy(self) -> Graph:
        """A deep copy: parameters are new arrays."""
        return copy.deepcopy(self)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)


class GraphBuilder:
    """Builds a Graph node by node, inferring shapes and initialising parameters."""

    def __init__(self, name: str, input_shape: tuple[int, ...], seed: int = 0):
        self.name = name
        self.input_shape = tuple(int(s) for s in input_shape)
        self.rng = np.random.default_rng(seed)
        self.nodes: list[Node] = []
        self.params: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...]] = {INPUT: self.input_shape}

    def add(self, op: str, *inputs: str, name: str | None = None, **attrs) -> str:
        """Append a node; returns the name of its output tensor."""
        opdef = get_op(op)
        name = name or f"{op}{len(self.nodes)}"
        if name in self.shapes:
            raise EdgetrainError(f"duplicate tensor name '{name}' in graph '{self.name}'")
        for t in inputs:
            if t not in self.shapes:
                raise EdgetrainError(f"node '{name}' reads '{t}', which no earlier node makes")
        in_shapes = [self.shapes[t] for t in inputs]
        self.shapes[name] = tuple(opdef.infer_shape(attrs, in_shapes))
        values = init_params(opdef, attrs, in_shapes, self.rng)
        roles = {}
        for role, value in values.items():
            self.params[f"{name}.{role}"] = value
            roles[role] = f"{name}.{role}"
        self.nodes.append(Node(name, op, tuple(inputs), dict(attrs), roles))
        return name

    def build(self, output: str, loss: str = "softmax_ce", num_classes: int = 0) -> Graph:
        g = Graph(self.name, self.input_shape, self.nodes, self.params, self.shapes, output,
                  loss, num_classes or int(np.prod(self.shapes[output])))
        validate(g)
        return g


def init_params(opdef, attrs, in_shapes, rng) -> dict[str, np.ndarray]:
    """The op's own initialiser, else PyTorch-style uniform(+-1/sqrt(fan_in)) weights, zero bias."""
    if opdef.init_params is not None:
        return opdef.init_params(attrs, in_shapes, rng)
    out = {}
    for role, shape in opdef.param_shapes(attrs, in_shapes).items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        bound = 1.0 / math.sqrt(fan_in)
        if role == "bias":
            out[role] = np.zeros(shape, np.float32)
        else:
            out[role] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return out


def validate(g: Graph) -> None:
    """Check topological order, shapes and parameter shapes; raise EdgetrainError if broken."""
    known = {INPUT: tuple(g.input_shape)}
    for n in g.nodes:
        opdef = get_op(n.op)
        for t in n.inputs:
            if t not in known:
                raise EdgetrainError(f"graph '{g.name}': node '{n.name}' reads '{t}' before it "
                                     "is made (nodes must be in topological order)")
        in_shapes = [known[t] for t in n.inputs]
        known[n.name] = tuple(opdef.infer_shape(n.attrs, in_shapes))
        for role, shape in opdef.param_shapes(n.attrs, in_shapes).items():
            key = n.params.get(role)
            if key not in g.params:
                raise EdgetrainError(f"graph '{g.name}': node '{n.name}' has no {role}")
            if tuple(g.params[key].shape) != tuple(shape):
                raise EdgetrainError(f"graph '{g.name}': {key} has shape "
                                     f"{tuple(g.params[key].shape)}, expected {tuple(shape)}")
    if g.output not in known:
        raise EdgetrainError(f"graph '{g.name}': output '{g.output}' is not a tensor")
    g.shapes = known
