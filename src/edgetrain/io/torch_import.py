"""Import a PyTorch model as an edgetrain Graph (the "bring your own model" path).

``from_torch(module, input_shape)`` traces the module with ``torch.fx`` (so residual
connections in a custom ``forward`` work, not only ``nn.Sequential``) and maps every call to
an edgetrain op, copying weights and BatchNorm statistics. Supported: Conv1d/Conv2d (zero
padding, dilation 1, groups incl. depthwise, with or without bias), Linear, BatchNorm1d/2d,
ReLU, ReLU6, MaxPool2d/AvgPool2d (floor mode), AdaptiveAvgPool2d(1)/AdaptiveAvgPool1d(1),
Flatten / torch.flatten(x, 1), residual ``+`` / torch.add, F.relu / F.relu6, and the graphs
that ``to_torch`` builds. Anything else is a clear error naming the layer.

>>> import pytest; torch = pytest.importorskip("torch")  # the example needs torch
>>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
...                           torch.nn.Linear(4, 3))
>>> g = from_torch(net, (1, 8, 8))
>>> [n.op for n in g.nodes], g.shapes[g.output]
(['conv2d', 'relu', 'global_avg_pool', 'flatten', 'linear'], (3,))
"""

from __future__ import annotations

import operator

import numpy as np

from edgetrain.errors import EdgetrainError
from edgetrain.io.torch_bridge import import_torch, torch_classes
from edgetrain.ir.graph import INPUT, Graph, GraphBuilder


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _scalar_or_pair(values) -> int | tuple[int, int]:
    values = tuple(int(v) for v in values)
    return values[0] if len(set(values)) == 1 else values


def _conv_padding(m) -> tuple[int, ...]:
    if m.padding == "valid":
        return (0,) * len(m.kernel_size)
    if m.padding == "same":
        if any(s != 1 for s in m.stride) or any(k % 2 == 0 for k in m.kernel_size):
            raise EdgetrainError(f"{type(m).__name__}: padding='same' is supported for stride 1 "
                                 "and odd kernels only")
        return tuple(k // 2 for k in m.kernel_size)
    return tuple(m.padding)


def _conv(m, name):
    if m.padding_mode != "zeros" or any(d != 1 for d in m.dilation):
        raise EdgetrainError(f"layer '{name}': only zero padding and dilation 1 are supported "
                             f"(got padding_mode={m.padding_mode!r}, dilation={m.dilation})")
    one_d = len(m.kernel_size) == 1
    pick = (lambda v: int(v[0])) if one_d else _scalar_or_pair
    attrs = {"out_channels": m.out_channels, "kernel": pick(m.kernel_size),
             "stride": pick(m.stride), "padding": pick(_conv_padding(m)), "groups": m.groups}
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
    return ("conv1d" if one_d else "conv2d"), attrs, {"weight": _np(m.weight), "bias": bias}


def _linear(m, name):
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
    return "linear", {"out_features": m.out_features}, {"weight": _np(m.weight), "bias": bias}


def _batchnorm(m, name):
    if not m.track_running_stats or m.momentum is None:
        raise EdgetrainError(f"layer '{name}': BatchNorm needs track_running_stats=True and a "
                             "numeric momentum")
    c = m.num_features
    gamma = _np(m.weight) if m.affine else np.ones(c, np.float32)
    beta = _np(m.bias) if m.affine else np.zeros(c, np.float32)
    return "batchnorm", {"eps": float(m.eps), "momentum": float(m.momentum)}, {
        "gamma": gamma, "beta": beta, "running_mean": _np(m.running_mean),
        "running_var": _np(m.running_var)}


def _pool(op):
    def make(m, name):
        if getattr(m, "ceil_mode", False) or getattr(m, "dilation", 1) not in (1, (1, 1)) or (
                not getattr(m, "count_include_pad", True)) or getattr(m, "divisor_override", None):
            raise EdgetrainError(f"layer '{name}': only floor mode, dilation 1 and zero padding "
                                 "counted in averages are supported")
        stride = m.stride if m.stride is not None else m.kernel_size
        attrs = {"kernel": _scalar_or_pair(np.broadcast_to(m.kernel_size, 2)),
                 "stride": _scalar_or_pair(np.broadcast_to(stride, 2)),
                 "padding": _scalar_or_pair(np.broadcast_to(m.padding, 2))}
        return op, attrs, {}
    return make


def _adaptive(m, name):
    if tuple(np.atleast_1d(m.output_size)) not in ((1,), (1, 1)):
        raise EdgetrainError(f"layer '{name}': adaptive pooling is supported to size 1 only "
                             f"(global average pooling), got {m.output_size}")
    return "global_avg_pool", {}, {}


def _flatten_module(m, name):
    if m.start_dim != 1 or m.end_dim != -1:
        raise EdgetrainError(f"layer '{name}': Flatten must keep the batch dim (start_dim=1)")
    return "flatten", {}, {}


def _module_table(torch) -> dict:
    """torch module type -> (module, name) -> (op, attrs, params)."""
    nn = torch.nn
    own = torch_classes()
    return {nn.Conv2d: _conv, nn.Conv1d: _conv, nn.Linear: _linear,
            nn.BatchNorm1d: _batchnorm, nn.BatchNorm2d: _batchnorm,
            nn.ReLU: lambda m, n: ("relu", {}, {}), nn.ReLU6: lambda m, n: ("relu6", {}, {}),
            nn.MaxPool2d: _pool("maxpool2d"), nn.AvgPool2d: _pool("avgpool2d"),
            nn.AdaptiveAvgPool2d: _adaptive, nn.AdaptiveAvgPool1d: _adaptive,
            nn.Flatten: _flatten_module, nn.Identity: lambda m, n: (None, {}, {}),
            own.add: lambda m, n: ("add", {}, {}),
            own.global_avg_pool: lambda m, n: ("global_avg_pool", {}, {})}


def _function_table(torch) -> dict:
    """fx call_function / call_method target -> op (shape arguments checked separately)."""
    f = torch.nn.functional
    return {operator.add: "add", torch.add: "add", "add": "add",
            torch.flatten: "flatten", "flatten": "flatten",
            f.relu: "relu", torch.relu: "relu", "relu": "relu", f.relu6: "relu6"}


def _function_op(torch, node) -> str:
    table = _function_table(torch)
    target = node.target
    if target not in table:
        raise EdgetrainError(f"'{node.name}' calls {getattr(target, '__name__', target)}, which "
                             "has no edgetrain op (supported: +, flatten, relu, relu6)")
    op = table[target]
    if op == "flatten" and _flatten_dims(node) != (1, -1):
        raise EdgetrainError(f"'{node.name}': flatten must be flatten(x, 1) (keep the batch "
                             f"dim, flatten the rest), got dims {_flatten_dims(node)}")
    return op


def _flatten_dims(node) -> tuple[int, int]:
    """(start_dim, end_dim) of an fx flatten call, with torch's defaults (0, -1)."""
    args = list(node.args[1:3])
    start = node.kwargs.get("start_dim", args[0] if args else 0)
    end = node.kwargs.get("end_dim", args[1] if len(args) > 1 else -1)
    return int(start), int(end)


def _trace(module, torch):
    """fx GraphModule of `module`; to_torch's own Add/GlobalAvgPool stay single calls."""
    leaves = (torch_classes().add, torch_classes().global_avg_pool)

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, leaves) or super().is_leaf_module(m, qualname)

    try:
        return torch.fx.GraphModule(module, Tracer().trace(module))
    except Exception as e:  # fx raises many types for untraceable Python
        raise EdgetrainError(f"cannot trace {type(module).__name__} with torch.fx ({e}); "
                             "write its forward without data-dependent control flow") from e


class _Importer:
    """Walks an fx graph in order and appends the matching edgetrain nodes."""

    def __init__(self, torch, traced, builder: GraphBuilder):
        self.torch, self.traced, self.b = torch, traced, builder
        self.modules = _module_table(torch)
        self.names: dict[str, str] = {}  # fx node name -> edgetrain tensor name

    def tensor(self, arg) -> str:
        if not hasattr(arg, "name") or arg.name not in self.names:
            raise EdgetrainError(f"unsupported argument {arg!r}: only tensors from earlier "
                                 "layers can be wired")
        return self.names[arg.name]

    def module_node(self, node):
        m = self.traced.get_submodule(node.target)
        if type(m) not in self.modules:
            raise EdgetrainError(f"layer '{node.target}' is a {type(m).__name__}, which has no "
                                 "edgetrain op; supported: " + ", ".join(
                                     sorted(t.__name__ for t in self.modules)))
        op, attrs, params = self.modules[type(m)](m, node.target)
        self.emit(node, op, attrs, params, [a for a in node.args if hasattr(a, "name")])

    def emit(self, node, op, attrs, params, args):
        inputs = [self.tensor(a) for a in args]
        if op is None:  # identity
            self.names[node.name] = inputs[0]
            return
        name = node.name if node.name != INPUT else f"{INPUT}_"
        self.names[node.name] = self.b.add(op, *inputs, name=name, **attrs)
        for role, value in params.items():
            key = f"{name}.{role}"
            if self.b.params[key].shape != value.shape:
                raise EdgetrainError(f"layer '{node.target}': {role} has shape {value.shape}, "
                                     f"expected {self.b.params[key].shape} for this input")
            self.b.params[key] = value

    def run(self) -> str:
        """Import every node; returns the output tensor's name."""
        for node in self.traced.graph.nodes:
            if node.op == "placeholder":
                if self.names:
                    raise EdgetrainError("the model must take exactly one input tensor")
                self.names[node.name] = INPUT
            elif node.op == "call_module":
                self.module_node(node)
            elif node.op in ("call_function", "call_method"):
                op = _function_op(self.torch, node)
                args = node.args[:2] if op == "add" else node.args[:1]
                self.emit(node, op, {}, {}, list(args))
            elif node.op == "output":
                return self.tensor(node.args[0])
            else:
                raise EdgetrainError(f"unsupported fx node '{node.name}' ({node.op})")
        raise EdgetrainError("the traced model has no output")


def from_torch(module, input_shape: tuple[int, ...], name: str | None = None) -> Graph:
    """An edgetrain Graph computing the same function as `module` (per-sample input shape
    `input_shape`, channels first), with its weights and BatchNorm statistics."""
    torch = import_torch()
    if not isinstance(module, torch.nn.Module):
        raise EdgetrainError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    traced = _trace(module, torch)
    b = GraphBuilder(name or type(module).__name__.lower(), tuple(input_shape))
    output = _Importer(torch, traced, b).run()
    graph = b.build(output)
    graph.meta["imported_from"] = f"torch:{type(module).__name__}"
    return graph
