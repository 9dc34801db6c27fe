"""Helpers shared by the subcommands: resolve "NAME or FILE" arguments for models and data,
standard argument groups, and plain-text tables / JSON output.

>>> print(format_table([{"name": "mnist", "classes": 10}], [("name", "dataset"),
...                                                        ("classes", "classes")]))
dataset  classes
mnist    10
>>> parse_shape("1,28,28")
(1, 28, 28)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgetrain import data, zoo
from edgetrain.data import Dataset
from edgetrain.errors import EdgetrainError, unknown
from edgetrain.io.model_file import load_graph
from edgetrain.ir.graph import Graph


def parse_shape(text: str) -> tuple[int, ...]:
    """A per-sample shape from its CLI form "C,H,W" (or "C,L", "N")."""
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise EdgetrainError(f"--shape '{text}' must be positive integers like 1,28,28")
    return shape


def add_data_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--data NAME|PATH, --drift SPEC..., --shape C,H,W, --seed."""
    names = ", ".join(data.names())
    parser.add_argument("--data", required=required, metavar="NAME|PATH",
                        help=f"a built-in dataset ({names}) or a .npz/.csv file")
    parser.add_argument("--drift", nargs="+", action="extend", default=[], metavar="SPEC",
                        help="drift transforms applied in order, e.g. rotate:30 noise:0.1 "
                             "invert contrast:0.5 classes:0-4 gain:1.5@0 offset:0.2")
    parser.add_argument("--shape", type=str, default=None, metavar="C,H,W",
                        help="reshape each sample of a user file, e.g. 1,28,28 for flat CSV rows")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for splits of user files, drift noise and training (default 0)")


def resolve_dataset(name_or_path: str, drift: list[str] = (), seed: int = 0,
                    shape: str | None = None) -> Dataset:
    """A dataset by catalogue name or file path, with drift transforms applied."""
    ds = data.load(name_or_path, seed=seed, shape=parse_shape(shape) if shape else None)
    return data.drift.apply(ds, list(drift), seed=seed)


def is_model_file(text: str) -> bool:
    return text.endswith(".npz") or "/" in text or Path(text).is_file()


def resolve_model(name_or_file: str, ds: Dataset | None = None, seed: int = 0) -> Graph:
    """A model file (loaded as saved) or a zoo model built for the dataset's sample shape and
    number of classes (zoo defaults when no dataset is given)."""
    if is_model_file(name_or_file):
        return load_graph(name_or_file)
    if name_or_file not in zoo.names():
        raise unknown("model", name_or_file, zoo.names())
    if ds is None:
        return zoo.build(name_or_file, seed=seed)
    return zoo.build(name_or_file, input_shape=ds.input_shape, num_classes=ds.num_classes,
                     seed=seed)


def format_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """Rows (dicts) as an aligned text table; columns are (key, header) pairs."""
    head = [h for _, h in columns]
    body = [[str(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in [head, *body])


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def percent(value: float) -> str:
    return f"{100.0 * value:.2f} %"


def out_dir(text: str) -> Path:
    """The --out folder; it may exist (files are replaced atomically) but not be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise EdgetrainError(f"--out '{path}' is a file; give a folder")
    return path

