"""`edgetrain datasets [--json]`: the built-in offline datasets (nothing is downloaded)."""

from __future__ import annotations

import argparse

from edgetrain import data
from edgetrain.cli.common import format_table, print_json
from edgetrain.data.builtin import installed

COLUMNS = [("name", "dataset"), ("shape", "sample shape"), ("classes", "classes"),
           ("train", "train"), ("test", "test"), ("package", "package"),
           ("installed", "installed"), ("description", "description")]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def rows() -> list[dict]:
    """One dict per built-in dataset, from the catalogue (no dataset is loaded)."""
    return [{"name": e.name, "shape": "x".join(map(str, e.input_shape)),
             "input_shape": list(e.input_shape), "classes": e.num_classes, "train": e.train,
             "test": e.test, "package": e.package,
             "installed": installed(e), "description": e.description}
            for e in data.catalogue()]


def run(args: argparse.Namespace) -> int:
    if args.json:
        print_json([{k: v for k, v in r.items() if k != "shape"} for r in rows()])
    else:
        table = [{**r, "installed": "yes" if r["installed"] else "no"} for r in rows()]
        print(format_table(table, COLUMNS))
        print("\nUser data: --data FILE.npz (x_train/y_train/x_test/y_test or x/y) or FILE.csv "
              "(label last).")
    return 0
