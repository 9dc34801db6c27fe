"""On-device training simulation: fully quantized training (int8), mixed or float32, with an
update policy (full, last-N, bias-only, dynamic partial updates), as in Deutel et al. 2024
("On-Device Training of Fully Quantized Deep Neural Networks on Cortex-M Microcontrollers").

``fit(model, dataset, config)`` quantizes a float graph first (calibration = training data),
trains with ``engine.int8.Trainer`` and returns a :class:`FQTResult` with the accuracy
before and after, the loss per epoch and the MACs executed per training sample per phase.

>>> from edgetrain.data import make_dataset
>>> from edgetrain.ir import GraphBuilder
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(256, 2)).astype(np.float32); y = (x[:, 0] > 0).astype(np.int64)
>>> ds = make_dataset("halves", x, y, x, y)
>>> b = GraphBuilder("lin", (2,), seed=0)
>>> g = b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
...                   out_features=2))
>>> result = fit(g, ds, FQTConfig(epochs=3, batch=16, lr=0.02))
>>> result.quantized_from_float, len(result.loss), result.test_accuracy > 0.9
(True, 3, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from edgetrain.data import Dataset
from edgetrain.engine.int8 import PRECISIONS, Trainer
from edgetrain.errors import EdgetrainError, unknown
from edgetrain.ir.graph import Graph
from edgetrain.ir.policy import Policy, parse_policy
from edgetrain.numerics.config import get as get_numerics
from edgetrain.numerics.quantize import Int8Model, quantize
from edgetrain.train.pretrain import SCHEDULES

CALIBRATION_SAMPLES = 512
EVAL_BATCH = 500


@dataclass(frozen=True)
class FQTConfig:
    precision: str = "int8"  # int8 | mixed | float32
    policy: str = "full"  # full | last-N | bias-only | partial[-last-N] | layers:a,b
    lambda_min: float | None = None  # partial updates (default 0.1 when policy is partial)
    lambda_max: float = 1.0
    numerics: str = "default"  # a name of numerics.config.CONFIGS (int8 models: their own)
    epochs: int = 3
    batch: int = 32
    lr: float = 0.01
    seed: int = 0
    schedule: str = "cosine"  # learning rate per epoch: constant (the paper) | cosine

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise unknown("precision", self.precision, PRECISIONS)
        if self.schedule not in SCHEDULES:
            raise unknown("lr schedule", self.schedule, SCHEDULES)
        for name in ("epochs", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise EdgetrainError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise EdgetrainError(f"lr must be a positive number, got {self.lr!r}")
        get_numerics(self.numerics)
        self.parsed_policy()

    def parsed_policy(self) -> Policy:
        return parse_policy(self.policy, self.lambda_min, self.lambda_max)

    def to_dict(self) -> dict:
        return {**asdict(self), "policy_name": self.parsed_policy().name}


@dataclass(frozen=True)
class Progress:
    """One report: after each step (test_accuracy None) and at each epoch's end."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    test_accuracy: float | None = None


@dataclass
class FQTResult:
    model: Int8Model
    test_accuracy_before: float
    test_accuracy: float
    loss: list[float]  # mean training loss per epoch
    accuracy: list[float]  # test accuracy after each epoch
    macs_per_sample: dict[str, float]  # forward, backward_error, backward_weight
    samples_per_second: float
    quantized_from_float: bool

    def summary(self) -> dict:
        return {"test_accuracy_before": self.test_accuracy_before,
                "test_accuracy": self.test_accuracy, "loss": self.loss,
                "accuracy": self.accuracy, "macs_per_sample": self.macs_per_sample,
                "samples_per_second": self.samples_per_second,
                "quantized_from_float": self.quantized_from_float}


def prepare(model: Graph | Int8Model, ds: Dataset, config: FQTConfig) -> tuple[Int8Model, bool]:
    """The int8 model to train and whether it was quantized here from a float graph
    (calibration on the first training samples, the numerics of `config`)."""
    if isinstance(model, Int8Model):
        return model.copy(), False
    _check_compatible(model, ds)
    calib = ds.x_train[:CALIBRATION_SAMPLES]
    return quantize(model, calib, get_numerics(config.numerics)), True


def _check_compatible(graph: Graph, ds: Dataset) -> None:
    if tuple(graph.input_shape) != tuple(ds.input_shape):
        raise EdgetrainError(f"model '{graph.name}' takes inputs of shape "
                             f"{tuple(graph.input_shape)}, dataset '{ds.name}' has "
                             f"{tuple(ds.input_shape)}")
    if graph.num_classes != ds.num_classes:
        raise EdgetrainError(f"model '{graph.name}' has {graph.num_classes} outputs, dataset "
                             f"'{ds.name}' has {ds.num_classes} classes")


def accuracy(trainer: Trainer, x: np.ndarray, y: np.ndarray) -> float:
    """Test accuracy of the trainer's current model (inference mode, in chunks)."""
    hits = sum(int((trainer.logits(x[i:i + EVAL_BATCH]).argmax(axis=1) ==
                    y[i:i + EVAL_BATCH]).sum()) for i in range(0, len(x), EVAL_BATCH))
    return hits / max(len(x), 1)


def fit(model: Graph | Int8Model, ds: Dataset, config: FQTConfig,
        on_progress: Callable[[Progress], None] | None = None) -> FQTResult:
    """Train a copy of `model` on `ds`; the input model is never modified."""
    qmodel, from_float = prepare(model, ds, config)
    _check_compatible(qmodel.graph, ds)
    trainer = Trainer(qmodel, config.parsed_policy(), config.precision, config.lr, config.seed)
    before = accuracy(trainer, ds.x_test, ds.y_test)
    rng = np.random.default_rng(config.seed)
    losses, accs, seconds = [], [], 0.0
    for epoch in range(1, config.epochs + 1):
        factor = SCHEDULES[config.schedule](epoch - 1, config.epochs)
        trainer.lr = np.float32(config.lr * factor)  # one float32 rate per epoch
        start = time.perf_counter()
        losses.append(_train_epoch(trainer, ds, config, rng, epoch, on_progress))
        seconds += time.perf_counter() - start
        accs.append(accuracy(trainer, ds.x_test, ds.y_test))
        if on_progress:
            on_progress(Progress(epoch, config.epochs, 1, 1, losses[-1], accs[-1]))
    macs = {k: v / max(trainer.samples, 1) for k, v in trainer.macs.items()}
    return FQTResult(qmodel, before, accs[-1], losses, accs, macs,
                     trainer.samples / max(seconds, 1e-9), from_float)


def _train_epoch(trainer: Trainer, ds: Dataset, config: FQTConfig, rng, epoch: int,
                 on_progress) -> float:
    """One pass over the shuffled training set in mini-batches (the last partial batch is
    used too); returns the mean loss."""
    order = rng.permutation(len(ds.x_train))
    batches = [order[i:i + config.batch] for i in range(0, len(order), config.batch)]
    total = 0.0
    for step, idx in enumerate(batches, start=1):
        loss = trainer.step(ds.x_train[idx], ds.y_train[idx])
        if not math.isfinite(loss):
            raise EdgetrainError(f"training diverged at epoch {epoch} (loss {loss}); lower "
                                 "--lr")
        total += loss * len(idx)
        if on_progress:
            on_progress(Progress(epoch, config.epochs, step, len(batches),
                                 total / min(step * config.batch, len(order))))
    return total / len(order)
