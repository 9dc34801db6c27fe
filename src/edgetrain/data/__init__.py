"""Offline datasets (no network, ever), user data files and drift transforms.

>>> names()
['basic-motions', 'digits', 'mnist', 'mnist1d']
>>> ds = load("digits")
>>> ds.x_train.shape, ds.x_test.shape, ds.num_classes, float(ds.x_train.max())
((1438, 1, 8, 8), (359, 1, 8, 8), 10, 1.0)
>>> load("mnsit")
Traceback (most recent call last):
...
edgetrain.errors.EdgetrainError: unknown dataset 'mnsit' (did you mean 'mnist'?)
"""

from __future__ import annotations

import functools
from pathlib import Path

from edgetrain.data import drift
from edgetrain.data.builtin import ENTRIES, Entry
from edgetrain.data.dataset import Dataset, make_dataset, stratified_split
from edgetrain.data.user import LOADERS, with_shape
from edgetrain.errors import EdgetrainError, unknown

__all__ = ["Dataset", "Entry", "catalogue", "drift", "is_file_reference", "load", "make_dataset",
           "names", "stratified_split"]


def names() -> list[str]:
    """Names of the built-in datasets."""
    return sorted(ENTRIES)


def catalogue() -> list[Entry]:
    """The built-in datasets' catalogue rows (shape, classes, sizes) without loading them."""
    return [ENTRIES[n] for n in names()]


@functools.cache
def _builtin(name: str) -> Dataset:
    return ENTRIES[name].loader()  # arrays are read-only, so sharing them is safe


def is_file_reference(text: str) -> bool:
    """Whether a "NAME or PATH" argument names a file rather than a catalogue entry."""
    return Path(text).suffix.lower() in LOADERS or "/" in text or Path(text).exists()


def load(name_or_path: str, seed: int = 0, shape: tuple[int, ...] | None = None) -> Dataset:
    """A built-in dataset by name (fixed split; `seed` is unused) or a user ``.npz`` /
    ``.csv`` file (split by `seed` when it holds one labelled set). `shape` reshapes every
    sample, e.g. ``(1, 28, 28)`` for flat CSV rows."""
    if name_or_path in ENTRIES:
        ds = _builtin(name_or_path)
    elif is_file_reference(name_or_path):
        ds = load_file(Path(name_or_path), seed)
    else:
        raise unknown("dataset", name_or_path, ENTRIES)
    return ds if shape is None else with_shape(ds, shape)


def load_file(path: Path, seed: int = 0) -> Dataset:
    suffix = path.suffix.lower()
    if suffix not in LOADERS:
        raise EdgetrainError(f"cannot read data file '{path}': use .npz or .csv "
                             f"(got '{suffix or 'no extension'}')")
    if not path.is_file():
        raise EdgetrainError(f"data file '{path}' does not exist")
    return LOADERS[suffix](path, seed)
