"""The int8 kernel table: the integer side of each op, registered by the op's own module
(in its ``# --- int8 ---`` section) so float and integer code sit side by side.

Two kinds, chosen by what the op does to quantization parameters:

* :class:`WeightKernel` (linear, conv1d, conv2d): three linear maps on float64 arrays that
  hold integers (exact while partial sums stay below 2^53) or reals (mixed/float32 modes).
  The engine adds zero points, bias, requantization and scale tracking around them.
  ``backward_input``/``backward_weight`` take ``sel``: a :class:`Selection` of the output
  channels kept per sample (dynamic partial updates, Deutel et al. 2024) or None; kernels
  that can, compute only those rows (the errors of dropped channels are zero anyway, so a
  kernel that ignores ``sel`` gives the same numbers, it just does the dropped work).
  ``backward_weight`` also takes ``bound`` = max |e| * max |x| (or None): a kernel may use
  float32 where that bound proves its partial sums stay below 2^24 (same integers).
* :class:`IntKernel` (relu, relu6, pools, flatten): ``forward(attrs, q, zero, qmax, mode,
  rng) -> (q_out, ctx)`` keeps the input's scale; ``backward(attrs, ctx, e) -> e_in``
  maps centred integer errors (int64) to the input's centred errors; the input error's
  scale is the output error's divided by ``divisor(attrs, in_shape)`` (pool averaging).

>>> sorted(int8_names())[:3]
['add', 'avgpool2d', 'conv1d']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgetrain.errors import unknown


def one(attrs, in_shape) -> int:
    return 1


@dataclass(frozen=True)
class Selection:
    """Output channels kept per sample, padded to the batch's largest k."""

    idx: np.ndarray  # int64[B, k] channel indices (padding repeats a kept channel)
    e: np.ndarray  # [B, k, ...] the errors of those channels, zero on padding


@dataclass(frozen=True)
class WeightKernel:
    forward: Callable  # (attrs, x, w) -> (acc[B, O, ...], saved)
    backward_input: Callable  # (attrs, saved, e, w, sel) -> dx
    backward_weight: Callable  # (attrs, saved, e, w_shape, sel, bound) -> dw (exact)


@dataclass(frozen=True)
class IntKernel:
    forward: Callable  # (attrs, q, zero, qmax, mode, rng) -> (q_out, ctx)
    backward: Callable  # (attrs, ctx, e_centred) -> e_in_centred (int64)
    divisor: Callable = one  # input error scale = output error scale / divisor
    # optional shortcut for ops that only move or zero error codes (same integers as
    # `backward` + zero point): (attrs, ctx, codes int8, zero) -> input error codes int8
    backward_codes: Callable | None = None


@dataclass(frozen=True)
class AddKernel:
    """Marker for the residual add: the engine requantizes both inputs to a tracked scale."""


_INT8: dict[str, object] = {}


def register_int8(op: str, kernel) -> None:
    """Add the integer kernel of `op`; a second registration is refused."""
    if op in _INT8:
        raise ValueError(f"int8 kernel '{op}' is already registered")
    _INT8[op] = kernel


def int8_kernel(op: str):
    import edgetrain.ops  # noqa: F401  (registers the built-in kernels)

    if op not in _INT8:
        raise unknown("op with an int8 kernel", op, _INT8)
    return _INT8[op]


def int8_names() -> list[str]:
    import edgetrain.ops  # noqa: F401

    return sorted(_INT8)
