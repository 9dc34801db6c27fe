"""Random small graphs for the C-vs-Python export tests: conv2d (groups, depthwise), conv1d,
pools, global average pooling, residual adds, ReLU/ReLU6, batchnorm (folded), flatten and
linear layers, with random shapes and sizes."""

from __future__ import annotations

import numpy as np

from edgetrain.ir import GraphBuilder
from edgetrain.ir.graph import Graph


def _conv_block(b: GraphBuilder, rng, t: str, c: int) -> tuple[str, int]:
    groups = c if rng.random() < 0.3 and c > 1 else 1
    out = c if groups > 1 else int(rng.integers(2, 7))
    t = b.add("conv2d", t, out_channels=out, kernel=int(rng.choice([1, 3])),
              padding=int(rng.integers(0, 2)), stride=int(rng.choice([1, 1, 2])), groups=groups)
    if rng.random() < 0.5:
        t = b.add("batchnorm", t)
    return b.add(str(rng.choice(["relu", "relu6"])), t), out


def image_graph(rng: np.random.Generator, name: str) -> Graph:
    c, h = int(rng.integers(1, 4)), int(rng.integers(6, 11))
    b = GraphBuilder(name, (c, h, h), seed=int(rng.integers(1000)))
    t, c = _conv_block(b, rng, "input", c)
    if rng.random() < 0.5:  # a residual pair with the same shape
        u = b.add("conv2d", t, out_channels=c, kernel=3, padding=1)
        t = b.add("add", t, u)
    if rng.random() < 0.5 and min(b.shapes[t][1:]) >= 2:
        t = b.add(str(rng.choice(["maxpool2d", "avgpool2d"])), t, kernel=2)
    t, c = _conv_block(b, rng, t, c)
    if rng.random() < 0.5:
        t = b.add("global_avg_pool", t)
    else:
        t = b.add("flatten", t)
    if rng.random() < 0.5:
        t = b.add("relu", b.add("linear", t, out_features=int(rng.integers(4, 12))))
    classes = int(rng.integers(2, 6))
    return b.build(b.add("linear", t, out_features=classes), num_classes=classes)


def sequence_graph(rng: np.random.Generator, name: str) -> Graph:
    c, n = int(rng.integers(1, 5)), int(rng.integers(8, 20))
    b = GraphBuilder(name, (c, n), seed=int(rng.integers(1000)))
    t = b.add("conv1d", "input", out_channels=int(rng.integers(2, 6)), kernel=3,
              padding=int(rng.integers(0, 2)))
    t = b.add("relu", t)
    t = b.add("conv1d", t, out_channels=int(rng.integers(2, 6)), kernel=int(rng.integers(1, 4)),
              stride=int(rng.integers(1, 3)))
    t = b.add("global_avg_pool", b.add("relu6", t))
    classes = int(rng.integers(2, 6))
    return b.build(b.add("linear", t, out_features=classes), num_classes=classes)


def mlp_graph(rng: np.random.Generator, name: str) -> Graph:
    n = int(rng.integers(3, 20))
    b = GraphBuilder(name, (n,), seed=int(rng.integers(1000)))
    t = b.add("relu", b.add("linear", "input", out_features=int(rng.integers(3, 16))))
    classes = int(rng.integers(2, 6))
    return b.build(b.add("linear", t, out_features=classes), num_classes=classes)


MAKERS = (image_graph, sequence_graph, mlp_graph)


def random_graph(rng: np.random.Generator, name: str = "random") -> Graph:
    return MAKERS[int(rng.integers(len(MAKERS)))](rng, name)


def tiny_mlp() -> Graph:
    """linear 6 -> 10, ReLU, linear -> 4: the smallest trainable export."""
    b = GraphBuilder("tiny", (6,), seed=0)
    t = b.add("relu", b.add("linear", "input", out_features=10))
    return b.build(b.add("linear", t, out_features=4), num_classes=4)


def calib(g: Graph, n: int = 32, seed: int = 0) -> np.ndarray:
    """Seeded standard-normal calibration inputs float32[n, *input_shape]."""
    return np.random.default_rng(seed).standard_normal((n, *g.input_shape)).astype(np.float32)
