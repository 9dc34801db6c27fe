"""The Dataset record and the checks every dataset passes before anyone trains on it.

>>> x = np.zeros((4, 1, 2, 2), np.float32); y = np.array([0, 1, 0, 1])
>>> ds = make_dataset("toy", x, y, x, y, description="four blank images")
>>> ds.input_shape, ds.num_classes, ds.x_train.flags.writeable
((1, 2, 2), 2, False)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetrain.errors import EdgetrainError


@dataclass(frozen=True)
class Dataset:
    """A classification dataset, split into train and test. Arrays are read-only: the loaders
    cache them per process, so transforms (``data.drift``) return new arrays instead."""

    name: str
    x_train: np.ndarray  # float32[N_train, *input_shape]
    y_train: np.ndarray  # int64[N_train], labels in [0, num_classes)
    x_test: np.ndarray  # float32[N_test, *input_shape]
    y_test: np.ndarray  # int64[N_test]
    num_classes: int
    input_shape: tuple[int, ...]
    description: str = ""

    def summary(self) -> dict:
        """A JSON-ready description (no arrays)."""
        return {"name": self.name, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "train": len(self.y_train),
                "test": len(self.y_test), "description": self.description}


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def check_features(name: str, split: str, x) -> np.ndarray:
    """x as float32[N, ...] with at least one sample and only finite values."""
    try:
        x = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise EdgetrainError(f"dataset '{name}': {split} inputs are not a numeric array ({e})")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise EdgetrainError(f"dataset '{name}': {split} inputs have dtype {x.dtype}, "
                             "expected numbers")
    if x.ndim < 2:
        raise EdgetrainError(f"dataset '{name}': {split} inputs have shape {x.shape}, expected "
                             "[samples, features...]")
    if len(x) == 0 or x[0].size == 0:
        raise EdgetrainError(f"dataset '{name}': {split} split is empty")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0, 0])
        raise EdgetrainError(f"dataset '{name}': {split} inputs contain {int(bad.sum())} NaN/inf "
                             f"values (first in sample {first}); clean or impute them first")
    return x


def check_labels(name: str, split: str, y, n: int, num_classes: int | None) -> np.ndarray:
    """y as int64[n] with integer values in [0, num_classes)."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise EdgetrainError(f"dataset '{name}': {split} labels have shape {y.shape}, expected "
                             f"({n},) to match the {n} inputs")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise EdgetrainError(f"dataset '{name}': {split} labels have dtype {y.dtype}, expected "
                             "integer class indices 0..K-1")
    floating = np.issubdtype(y.dtype, np.floating)
    if floating and (not np.all(np.isfinite(y)) or np.any(y != np.round(y))):
        raise EdgetrainError(f"dataset '{name}': {split} labels are not integers; labels "
                                 "must be class indices 0..K-1")
    y = y.astype(np.int64)
    high = num_classes if num_classes is not None else None
    if y.min() < 0 or (high is not None and y.max() >= high):
        bound = f"0..{high - 1}" if high is not None else "non-negative"
        raise EdgetrainError(f"dataset '{name}': {split} labels range {y.min()}..{y.max()} is "
                             f"out of range (must be {bound})")
    return y


def make_dataset(name: str, x_train, y_train, x_test, y_test, num_classes: int | None = None,
                 description: str = "") -> Dataset:
    """Validate the four arrays and build a read-only Dataset; raises EdgetrainError naming
    the first problem (empty split, NaN/inf, wrong shapes, labels not in 0..K-1)."""
    x_train = check_features(name, "train", x_train)
    x_test = check_features(name, "test", x_test)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise EdgetrainError(f"dataset '{name}': train samples have shape {x_train.shape[1:]} "
                             f"but test samples {x_test.shape[1:]}")
    y_train = check_labels(name, "train", y_train, len(x_train), num_classes)
    y_test = check_labels(name, "test", y_test, len(x_test), num_classes)
    k = num_classes or int(max(y_train.max(), y_test.max())) + 1
    if k < 2:
        raise EdgetrainError(f"dataset '{name}': needs at least 2 classes, labels have {k}")
    arrays = [_readonly(a) for a in (x_train, y_train, x_test, y_test)]
    return Dataset(name, *arrays, num_classes=int(k), input_shape=tuple(x_train.shape[1:]),
                   description=description)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """(train indices, test indices): each class split in the same proportion, seeded; a
    class with two or more samples puts at least one in each split.

    >>> tr, te = stratified_split(np.array([0] * 8 + [1] * 4), 0.25, seed=0)
    >>> len(tr), len(te), sorted(np.array([0] * 8 + [1] * 4)[te].tolist())
    (9, 3, [0, 0, 1])
    """
    if not 0.0 < test_fraction < 1.0:
        raise EdgetrainError(f"test fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = round(len(idx) * test_fraction)
        n_test = min(max(n_test, 1), len(idx) - 1) if len(idx) >= 2 else 0
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
