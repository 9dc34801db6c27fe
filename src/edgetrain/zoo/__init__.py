"""The model zoo: reference models as float32 graphs, deterministic for a seed.

======================  =====================================================================
``mnist-cnn``           4 trainable layers (conv-relu-maxpool x2, linear-relu, linear), no BN:
                        the from-scratch model of Deutel et al. 2024 (MNIST family)
``mbednet``             MobileNetV2-style (Sandler et al. 2018): stem conv-BN-ReLU6, inverted
                        residual blocks (1x1 expand, 3x3 depthwise, 1x1 project, residual add),
                        GAP, linear; for 1x28x28 and 3x32x32 transfer learning
``motion-cnn1d``        1D CNN (conv1d-BN-ReLU x3, GAP, linear) for 6x100 IMU time series
``mlp``                 flatten, two hidden ReLU layers, linear
======================  =====================================================================

>>> names()
['mbednet', 'mlp', 'mnist-cnn', 'motion-cnn1d']
>>> info("mnist-cnn").input_shape
(1, 28, 28)
>>> g = build("mlp", input_shape=(64,), num_classes=10)
>>> g.shapes[g.output], g.num_params()
((10,), 17226)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgetrain.errors import EdgetrainError, unknown
from edgetrain.ir.graph import Graph, GraphBuilder
from edgetrain.zoo import models


@dataclass(frozen=True)
class ZooInfo:
    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    default_dataset: str


@dataclass(frozen=True)
class _Entry:
    info: ZooInfo
    body: Callable[[GraphBuilder, int], str]  # (builder, num_classes) -> output tensor
    ranks: tuple[int, ...]  # accepted per-sample input ranks


_ZOO: dict[str, _Entry] = {
    "mnist-cnn": _Entry(ZooInfo(
        "mnist-cnn", "CNN with 4 trainable layers (conv-relu-pool x2, fc-relu, fc), no BN; "
        "trains from scratch, also in int8", (1, 28, 28), 10, "mnist"), models.mnist_cnn, (3,)),
    "mbednet": _Entry(ZooInfo(
        "mbednet", "MobileNetV2-style: stem + 5 inverted residual blocks (expand, depthwise, "
        "project, BN, residual add), GAP, fc", (1, 28, 28), 10, "mnist"), models.mbednet, (3,)),
    "motion-cnn1d": _Entry(ZooInfo(
        "motion-cnn1d", "1D CNN (conv1d-BN-ReLU x3, GAP, fc) for multichannel time series",
        (6, 100), 4, "basic-motions"), models.motion_cnn1d, (2,)),
    "mlp": _Entry(ZooInfo(
        "mlp", "multilayer perceptron: flatten, fc-relu 128, fc-relu 64, fc", (1, 28, 28), 10,
        "mnist"), models.mlp, (1, 2, 3)),
}


def names() -> list[str]:
    """Names of the zoo models, sorted."""
    return sorted(_ZOO)


def _entry(name: str) -> _Entry:
    if name not in _ZOO:
        raise unknown("model", name, _ZOO)
    return _ZOO[name]


def info(name: str) -> ZooInfo:
    """Description, default input shape, classes and dataset of a zoo model."""
    return _entry(name).info


def _checked_shape(entry: _Entry, input_shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in (input_shape or entry.info.input_shape))
    if len(shape) not in entry.ranks or any(s < 1 for s in shape):
        wanted = " or ".join(f"{r}-D" for r in entry.ranks)
        raise EdgetrainError(f"model '{entry.info.name}' takes a {wanted} input per sample "
                             f"(e.g. {entry.info.input_shape}), got {shape}")
    return shape


def build(name: str, input_shape: tuple[int, ...] | None = None,
          num_classes: int | None = None, seed: int = 0) -> Graph:
    """A fresh float32 graph of zoo model `name`; the same seed gives the same weights."""
    entry = _entry(name)
    shape = _checked_shape(entry, input_shape)
    classes = entry.info.num_classes if num_classes is None else int(num_classes)
    if classes < 2:
        raise EdgetrainError(f"num_classes must be at least 2, got {num_classes}")
    b = GraphBuilder(name, shape, seed=seed)
    graph = b.build(entry.body(b, classes), num_classes=classes)
    graph.meta["zoo"] = name
    return graph
