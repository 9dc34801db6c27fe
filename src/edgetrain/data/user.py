"""User datasets from files: ``.npz`` and ``.csv``, validated like the built-in ones.

``.npz`` holds either ``x_train, y_train, x_test, y_test`` or ``x, y`` (then split
stratified and seeded, 20 % test); an optional ``num_classes`` scalar fixes K. Inputs are
``[N, *shape]`` and used as given (no scaling). Loaded with ``allow_pickle=False``.

``.csv``: one sample per row, the integer label in the last column, an optional header
row; rows are split stratified and seeded like ``x, y``. Samples are flat ``(F,)`` unless a
shape is given (e.g. ``(1, 28, 28)``), which must hold exactly F values.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgetrain.data.dataset import Dataset, check_labels, make_dataset, stratified_split
from edgetrain.errors import EdgetrainError

TEST_FRACTION = 0.2


def split_xy(name: str, x, y, seed: int, num_classes: int | None, description: str) -> Dataset:
    """A Dataset from one labelled array pair, split stratified by `seed`."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise EdgetrainError(f"dataset '{name}': {len(x)} samples but {len(y)} labels")
    if len(x) < 2:
        raise EdgetrainError(f"dataset '{name}': needs at least 2 samples to split into "
                             f"train and test, has {len(x)}")
    y = check_labels(name, "all", y, len(x), num_classes)
    tr, te = stratified_split(y, TEST_FRACTION, seed)
    if len(te) == 0 or len(tr) == 0:
        raise EdgetrainError(f"dataset '{name}': too few samples per class to hold out a test "
                             "split; give x_train/y_train/x_test/y_test instead")
    return make_dataset(name, x[tr], y[tr], x[te], y[te], num_classes, description)


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise EdgetrainError(f"cannot read '{path}' as .npz (need numeric arrays, no pickled "
                             f"objects): {e}")


def load_npz(path: Path, seed: int = 0) -> Dataset:
    arrays = _npz_arrays(path)
    name, desc = path.stem, f"user data from {path.name}"
    k = arrays.get("num_classes")
    k = int(k) if k is not None else None
    full = ("x_train", "y_train", "x_test", "y_test")
    if all(key in arrays for key in full):
        return make_dataset(name, *(arrays[key] for key in full), k, desc)
    if "x" in arrays and "y" in arrays:
        return split_xy(name, arrays["x"], arrays["y"], seed, k, desc)
    raise EdgetrainError(f"'{path}' has arrays {sorted(arrays)}; expected x_train, y_train, "
                         "x_test, y_test (or x, y to split)")


def _csv_rows(path: Path) -> np.ndarray:
    """The numeric rows of a CSV file, skipping one header row if the first line has text."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise EdgetrainError(f"cannot read '{path}' as text CSV: {e}")
    if lines and not _numeric_row(lines[0]):
        lines = lines[1:]
    if not lines:
        raise EdgetrainError(f"dataset '{path.stem}': '{path}' has no data rows")
    widths = {len(ln.split(",")) for ln in lines}
    if len(widths) != 1:
        raise EdgetrainError(f"'{path}': rows have different numbers of columns {sorted(widths)}")
    try:
        return np.array([ln.split(",") for ln in lines], dtype=np.float64)  # float64[N, F + 1]
    except ValueError as e:
        raise EdgetrainError(f"'{path}': a value is not a number ({e})")


def _numeric_row(line: str) -> bool:
    try:
        [float(v) for v in line.split(",")]
    except ValueError:
        return False
    return True


def load_csv(path: Path, seed: int = 0) -> Dataset:
    rows = _csv_rows(path)
    if rows.shape[1] < 2:
        raise EdgetrainError(f"'{path}': needs feature columns and a label column, found "
                             f"{rows.shape[1]} column")
    x, y = rows[:, :-1], rows[:, -1]  # float64[N, F], float64[N]
    return split_xy(path.stem, x, y, seed, None, f"user data from {path.name}")


def with_shape(ds: Dataset, shape: tuple[int, ...]) -> Dataset:
    """The dataset with every sample reshaped to `shape` (same number of values)."""
    shape = tuple(int(s) for s in shape)
    size = int(np.prod(ds.input_shape))
    if any(s <= 0 for s in shape) or int(np.prod(shape)) != size:
        raise EdgetrainError(f"dataset '{ds.name}': cannot view samples of shape "
                             f"{ds.input_shape} ({size} values) as {shape}")
    return make_dataset(ds.name, ds.x_train.reshape(-1, *shape), ds.y_train,
                        ds.x_test.reshape(-1, *shape), ds.y_test, ds.num_classes,
                        ds.description)


LOADERS = {".npz": load_npz, ".csv": load_csv}
