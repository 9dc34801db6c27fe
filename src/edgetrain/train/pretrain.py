"""Float32 pre-training: seeded mini-batch training of a Graph on a Dataset, evaluation.

The float32 model is the starting point of on-device training: Deutel et al. 2024
("Fully quantized training with dynamic partial gradient updates on Cortex-M",
arXiv 2407.10734) pre-train in float, then quantize and fine-tune on the device. Training
uses the float32 engine's ``loss_and_grads`` and the optimizers of ``train.optim``.

>>> from edgetrain.data import make_dataset
>>> from edgetrain.ir import GraphBuilder
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(64, 2)).astype(np.float32); y = (x[:, 0] > 0).astype(np.int64)
>>> ds = make_dataset("halves", x, y, x, y)
>>> b = GraphBuilder("lin", (2,), seed=0); g = b.build(b.add("linear", "input", out_features=2))
>>> result = pretrain(g, ds, PretrainConfig(epochs=20, batch=16, lr=0.5, momentum=0.0))
>>> len(result.train_loss), result.test_accuracy[-1] > 0.95
(20, True)
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from edgetrain.data import Dataset
from edgetrain.engine.float32 import loss_and_grads, predict
from edgetrain.errors import EdgetrainError, unknown
from edgetrain.ir.graph import Graph
from edgetrain.ir.policy import Policy
from edgetrain.ir.registry import get_op
from edgetrain.train.optim import SGD, Adam

OPTIMIZERS = {
    "sgd": lambda c: SGD(c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
    "adam": lambda c: Adam(c.lr, weight_decay=c.weight_decay),
}

# learning-rate factor for epoch e of E (0-based)
SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": lambda e, total: 1.0,
    "cosine": lambda e, total: 0.5 * (1.0 + math.cos(math.pi * e / total)),
}


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = 10
    batch: int = 32
    lr: float = 0.05
    optimizer: str = "sgd"  # one of OPTIMIZERS
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    seed: int = 0
    schedule: str = "constant"  # one of SCHEDULES, applied per epoch
    shift: int = 0  # augmentation: random translation by up to `shift` steps/pixels

    def __post_init__(self):
        for name in ("epochs", "batch", "seed", "shift"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise EdgetrainError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # plain ints: the config goes to JSON
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise EdgetrainError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        self._check_ranges()

    def _check_ranges(self) -> None:
        for name in ("epochs", "batch"):
            if getattr(self, name) <= 0:
                raise EdgetrainError(f"{name} must be a positive integer, got "
                                     f"{getattr(self, name)}")
        if self.lr <= 0:
            raise EdgetrainError(f"lr must be a positive number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise unknown("optimizer", self.optimizer, OPTIMIZERS)
        if self.schedule not in SCHEDULES:
            raise unknown("lr schedule", self.schedule, SCHEDULES)
        if not 0.0 <= self.momentum < 1.0 or self.weight_decay < 0.0:
            raise EdgetrainError("momentum must be in [0, 1) and weight_decay >= 0")
        if self.shift < 0:
            raise EdgetrainError(f"shift must be >= 0, got {self.shift}")


# tuned defaults per zoo model: `bench/float_accuracy.py` measures them (BENCHMARKS.md)
RECIPES: dict[str, PretrainConfig] = {
    "mnist-cnn": PretrainConfig(epochs=30, batch=32, lr=0.05, weight_decay=5e-4,
                                schedule="cosine", shift=1),
    "motion-cnn1d": PretrainConfig(epochs=30, batch=8, lr=0.01, optimizer="adam",
                                   schedule="cosine"),
    "mlp": PretrainConfig(epochs=20, batch=32, lr=0.05, schedule="cosine"),
    "mbednet": PretrainConfig(epochs=15, batch=32, lr=0.002, optimizer="adam",
                              schedule="cosine"),
}


def recipe(model: str) -> PretrainConfig:
    """The tuned training configuration of a zoo model (PretrainConfig() for others)."""
    return RECIPES.get(model, PretrainConfig())


@dataclass(frozen=True)
class Progress:
    """One progress report: after each step (test_accuracy None) and at each epoch's end."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based within the epoch
    steps: int
    loss: float  # mean training loss of the epoch so far
    test_accuracy: float | None = None


@dataclass(frozen=True)
class PretrainResult:
    train_loss: tuple[float, ...]  # mean per epoch
    test_accuracy: tuple[float, ...]  # after each epoch
    seconds: float  # wall time, per-epoch test evaluation included
    samples_per_second: float  # training samples / seconds

    @property
    def final_accuracy(self) -> float:
        return self.test_accuracy[-1]

    def to_dict(self) -> dict:
        return {**asdict(self), "train_loss": list(self.train_loss),
                "test_accuracy": list(self.test_accuracy)}


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float  # mean softmax cross-entropy
    samples: int
    per_class_accuracy: tuple[float | None, ...]  # None for a class absent from y

    def to_dict(self) -> dict:
        return {**asdict(self), "per_class_accuracy": list(self.per_class_accuracy)}


def check_compatible(graph: Graph, ds: Dataset) -> None:
    """Raise EdgetrainError unless the dataset's samples and labels fit the model."""
    if tuple(ds.input_shape) != tuple(graph.input_shape):
        raise EdgetrainError(f"model '{graph.name}' takes inputs of shape {graph.input_shape} "
                             f"but dataset '{ds.name}' has samples of shape {ds.input_shape}")
    top = int(max(ds.y_train.max(initial=0), ds.y_test.max(initial=0)))
    if top >= graph.num_classes:
        raise EdgetrainError(f"dataset '{ds.name}' has label {top} but model '{graph.name}' "
                             f"has only {graph.num_classes} outputs (labels 0.."
                             f"{graph.num_classes - 1})")


def evaluate(graph: Graph, x: np.ndarray, y: np.ndarray, batch: int = 256) -> Evaluation:
    """Accuracy, mean cross-entropy and per-class accuracy of the model on (x, y)."""
    if len(x) == 0:
        raise EdgetrainError("cannot evaluate on an empty set of samples")
    logits = predict(graph, x, batch).astype(np.float64)  # float64[N, K]
    z = logits - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # float64[N, K]
    loss = float(-log_probs[np.arange(len(y)), y].mean())
    correct = logits.argmax(axis=1) == y  # bool[N]
    per_class = tuple(float(correct[y == c].mean()) if np.any(y == c) else None
                      for c in range(graph.num_classes))
    return Evaluation(float(correct.mean()), loss, len(y), per_class)


def shift_batch(x: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each sample translated by a random offset in [-shift, shift] per spatial axis, zero
    filled (light augmentation for images (C, H, W) and series (C, L))."""
    if shift == 0 or x.ndim < 3:
        return x
    spatial = x.shape[2:]
    pad = [(0, 0), (0, 0)] + [(shift, shift)] * len(spatial)
    padded = np.pad(x, pad)  # float32[B, C, *(S + 2 shift)]
    offsets = rng.integers(0, 2 * shift + 1, size=(len(x), len(spatial)))
    out = np.empty_like(x)
    for i, off in enumerate(offsets):
        window = tuple(slice(o, o + s) for o, s in zip(off, spatial))
        out[i] = padded[(i, slice(None), *window)]
    return out


def _batches(n: int, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled index batches; a trailing batch of one sample is dropped (BatchNorm)."""
    order = rng.permutation(n)
    out = [order[i:i + batch] for i in range(0, n, batch)]
    return out[:-1] if len(out) > 1 and len(out[-1]) == 1 else out


def _train_epoch(graph, ds, opt, trainable, config, rng, report) -> tuple[float, int]:
    """One pass over the shuffled training set: (mean training loss, steps)."""
    batches = _batches(len(ds.y_train), config.batch, rng)
    total, seen = 0.0, 0
    for step, idx in enumerate(batches, start=1):
        x = shift_batch(ds.x_train[idx], config.shift, rng)  # float32[B, *input_shape]
        loss, _, grads = loss_and_grads(graph, x, ds.y_train[idx], trainable)
        if not math.isfinite(loss):
            raise EdgetrainError(f"training diverged (loss {loss}) at step {step}; lower --lr")
        opt.step(graph.params, grads)
        total, seen = total + loss * len(idx), seen + len(idx)
        report(step, len(batches), total / seen)
    return total / seen, len(batches)


def pretrain(graph: Graph, ds: Dataset, config: PretrainConfig,
             on_progress: Callable[[Progress], None] | None = None) -> PretrainResult:
    """Train every parameter of `graph` in place; test accuracy is measured after each
    epoch. `on_progress` receives a Progress after every step and epoch."""
    check_compatible(graph, ds)
    if get_op(graph.loss).name != "softmax_ce":
        raise EdgetrainError(f"pretrain trains classifiers (softmax_ce); model '{graph.name}' "
                             f"has loss '{graph.loss}'")
    notify = on_progress or (lambda p: None)
    rng = np.random.default_rng(config.seed)
    opt = OPTIMIZERS[config.optimizer](config)
    trainable = Policy().trainable_params(graph)
    losses, accuracies, start = [], [], time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        opt.lr = config.lr * SCHEDULES[config.schedule](epoch - 1, config.epochs)
        loss, steps = _train_epoch(graph, ds, opt, trainable, config, rng,
                            lambda s, n, m, e=epoch: notify(Progress(e, config.epochs, s, n, m)))
        accuracy = evaluate(graph, ds.x_test, ds.y_test).accuracy
        losses.append(loss)
        accuracies.append(accuracy)
        notify(Progress(epoch, config.epochs, steps, steps, loss, accuracy))
    seconds = time.perf_counter() - start
    samples = config.epochs * len(ds.y_train)
    return PretrainResult(tuple(losses), tuple(accuracies), seconds, samples / seconds)
