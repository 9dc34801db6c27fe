"""The op registry: one :class:`OpDef` per op name; registering a name twice is an error.

An OpDef bundles what every pipeline stage needs to know about one op, float side:
shape inference, parameter shapes and initialisation, forward and backward (side by side,
in the op's module under ``edgetrain.ops``), and the forward MAC count. Integer kernels live
in the same module and are registered in their own table by the int8 engine's ops.

Forward:  ``forward(attrs, xs, p, training) -> (y, ctx)``
          ``xs`` are batch-first float32 arrays, ``p`` maps role -> array (e.g. "weight").
Backward: ``backward(attrs, ctx, dy, p, want) -> (dxs, dp)``
          ``want.inputs[i]`` says whether input i needs its error, ``want.params`` which
          roles need gradients; nothing else is computed (policies rely on this).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from edgetrain.errors import unknown


@dataclass(frozen=True)
class Want:
    """Which gradients a backward call must produce."""

    inputs: tuple[bool, ...]
    params: frozenset[str] = frozenset()


def no_params(attrs: Mapping, in_shapes: list[tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    return {}


@dataclass(frozen=True)
class OpDef:
    name: str
    infer_shape: Callable[[Mapping, list[tuple[int, ...]]], tuple[int, ...]]
    forward: Callable
    backward: Callable
    macs: Callable[[Mapping, list[tuple[int, ...]], tuple[int, ...]], int]
    param_shapes: Callable[[Mapping, list[tuple[int, ...]]], dict[str, tuple[int, ...]]] = no_params
    init_params: Callable[[Mapping, list[tuple[int, ...]], np.random.Generator], dict] | None = None
    trainable: tuple[str, ...] = ()  # roles that receive gradients ("weight", "bias", ...)
    buffers: tuple[str, ...] = ()  # roles that are state, not trained (BN running stats)
    kind: str = "layer"  # "layer" or "loss"
    doc: str = field(default="", compare=False)


_REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add an op; a second op with the same name is refused (no silent last-import-wins)."""
    if op.name in _REGISTRY:
        raise ValueError(f"op '{op.name}' is already registered")
    _REGISTRY[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    import edgetrain.ops  # noqa: F401  (registers the built-in ops)

    if name not in _REGISTRY:
        raise unknown("op", name, _REGISTRY)
    return _REGISTRY[name]


def op_names() -> list[str]:
    import edgetrain.ops  # noqa: F401

    return sorted(_REGISTRY)
