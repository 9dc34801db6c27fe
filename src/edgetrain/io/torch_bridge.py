"""Bridge to PyTorch: an edgetrain Graph as an equivalent ``torch.nn.Module`` with the same
weights, and gradients/weights read back keyed like ``Graph.params``.

Used to check the float engine against PyTorch autograd (outputs and every gradient) and to
compare training throughput. The other direction, a PyTorch model as a Graph, is
``edgetrain.io.torch_import.from_torch``. torch is optional: it is imported inside these functions and
its absence is a clear error naming the ``torch`` extra.

>>> import pytest; torch = pytest.importorskip("torch")  # the example needs torch
>>> from edgetrain import zoo
>>> g = zoo.build("mlp", input_shape=(8,), num_classes=3)
>>> m = to_torch(g)
>>> m(torch.zeros(2, 8)).shape
torch.Size([2, 3])
>>> sorted(params_from_torch(g, m)) == sorted(g.params)
True
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from edgetrain.errors import EdgetrainError
from edgetrain.ir.graph import INPUT, Graph, Node
from edgetrain.ops.conv import pair

# graph role -> attribute of the torch module that holds it
ROLE_ATTR = {"weight": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
             "running_mean": "running_mean", "running_var": "running_var"}


def import_torch():
    """The torch module, or an EdgetrainError naming the extra to install."""
    try:
        import torch
    except ImportError as e:
        raise EdgetrainError("this needs PyTorch: pip install 'edgetrain[torch]' "
                             "(torch==2.13.0, CPU)") from e
    return torch


class TorchClasses(NamedTuple):
    add: type  # residual sum of two inputs
    global_avg_pool: type  # mean over all spatial dims -> (B, C)
    graph: type  # runs a Graph's layers in order


@functools.cache
def torch_classes() -> TorchClasses:
    """Small torch modules for ops PyTorch has no single layer for, and the graph module."""
    torch = import_torch()

    class Add(torch.nn.Module):
        def forward(self, a, b):
            return a + b

    class GlobalAvgPool(torch.nn.Module):
        def forward(self, x):
            return x.flatten(2).mean(dim=2)

    class GraphModule(torch.nn.Module):
        """Runs the layers in the graph's topological order, wiring tensors by name."""

        def __init__(self, layers: dict, wiring: list[tuple[str, tuple[str, ...]]], output: str):
            super().__init__()
            self.layers = torch.nn.ModuleDict(layers)
            self.wiring = wiring
            self.output = output

        def forward(self, x):
            values = {INPUT: x}
            for name, inputs in self.wiring:
                values[name] = self.layers[name](*(values[t] for t in inputs))
            return values[self.output]

    return TorchClasses(Add, GlobalAvgPool, GraphModule)


def _conv2d(nn, node, in_shape):
    a = node.attrs
    return nn.Conv2d(in_shape[0], a["out_channels"], pair(a["kernel"]), pair(a.get("stride", 1)),
                     pair(a.get("padding", 0)), groups=a.get("groups", 1))


def _conv1d(nn, node, in_shape):
    a = node.attrs
    return nn.Conv1d(in_shape[0], a["out_channels"], a["kernel"], a.get("stride", 1),
                     a.get("padding", 0), groups=a.get("groups", 1))


def _pool(cls):
    def make(nn, node, in_shape):
        a = node.attrs
        return getattr(nn, cls)(pair(a["kernel"]), pair(a.get("stride") or a["kernel"]),
                                pair(a.get("padding", 0)))
    return make


def _batchnorm(nn, node, in_shape):
    cls = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
    return cls(in_shape[0], eps=node.attrs.get("eps", 1e-5),
               momentum=node.attrs.get("momentum", 0.1))


# op -> (nn, node, per-sample input shape) -> torch module
_LAYERS = {
    "conv2d": _conv2d,
    "conv1d": _conv1d,
    "linear": lambda nn, node, s: nn.Linear(s[0], node.attrs["out_features"]),
    "relu": lambda nn, node, s: nn.ReLU(),
    "relu6": lambda nn, node, s: nn.ReLU6(),
    "maxpool2d": _pool("MaxPool2d"),
    "avgpool2d": _pool("AvgPool2d"),
    "global_avg_pool": lambda nn, node, s: torch_classes().global_avg_pool(),
    "flatten": lambda nn, node, s: nn.Flatten(),
    "add": lambda nn, node, s: torch_classes().add(),
    "batchnorm": _batchnorm,
}


def _layer(nn, graph: Graph, node: Node):
    if node.op not in _LAYERS:
        raise EdgetrainError(f"op '{node.op}' (node '{node.name}') has no PyTorch equivalent "
                             f"here; supported: {', '.join(sorted(_LAYERS))}")
    return _LAYERS[node.op](nn, node, graph.shapes[node.inputs[0]])


def _torch_tensor(module, node: Node, role: str):
    return getattr(module.layers[node.name], ROLE_ATTR[role])


def to_torch(graph: Graph):
    """A torch.nn.Module computing the same function as `graph`, with a copy of its weights
    and BatchNorm statistics (float32; call ``.double()`` for float64)."""
    torch = import_torch()
    layers = {node.name: _layer(torch.nn, graph, node) for node in graph.nodes}
    wiring = [(n.name, n.inputs) for n in graph.nodes]
    module = torch_classes().graph(layers, wiring, graph.output)
    with torch.no_grad():
        for node in graph.nodes:
            for role, key in node.params.items():
                _torch_tensor(module, node, role).copy_(torch.from_numpy(graph.params[key]))
    return module


def grads_from_torch(graph: Graph, module) -> dict[str, np.ndarray]:
    """Gradients left by ``loss.backward()`` on ``to_torch(graph)``, keyed like Graph.params
    (trainable roles only; parameters without a gradient are left out)."""
    out = {}
    for node in graph.nodes:
        for role, key in node.params.items():
            t = _torch_tensor(module, node, role)
            if role not in ("running_mean", "running_var") and t.grad is not None:
                out[key] = t.grad.detach().cpu().numpy().copy()
    return out


def params_from_torch(graph: Graph, module) -> dict[str, np.ndarray]:
    """Every parameter and buffer of ``to_torch(graph)`` keyed like Graph.params, in the
    dtype of the graph's own arrays (to load weights trained in PyTorch back)."""
    return {key: _torch_tensor(module, node, role).detach().cpu().numpy()
            .astype(graph.params[key].dtype)
            for node in graph.nodes for role, key in node.params.items()}
