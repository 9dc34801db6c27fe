"""`edgetrain models [--json]`: the model zoo with parameters and MACs per sample."""

from __future__ import annotations

import argparse

from edgetrain import zoo
from edgetrain.cli.common import format_table, print_json

COLUMNS = [("name", "model"), ("shape", "input shape"), ("num_classes", "classes"),
           ("params", "parameters"), ("macs", "MACs/sample"),
           ("default_dataset", "dataset"), ("description", "description")]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def rows() -> list[dict]:
    """One dict per zoo model, built at its default shape to count parameters and MACs."""
    out = []
    for name in zoo.names():
        info, g = zoo.info(name), zoo.build(name)
        out.append({"name": name, "input_shape": list(info.input_shape),
                    "shape": "x".join(map(str, info.input_shape)),
                    "num_classes": info.num_classes, "params": g.num_params(),
                    "macs": g.macs_per_sample(), "layers": len(g.weight_nodes()),
                    "default_dataset": info.default_dataset, "description": info.description})
    return out


def run(args: argparse.Namespace) -> int:
    if args.json:
        print_json([{k: v for k, v in r.items() if k != "shape"} for r in rows()])
    else:
        print(format_table(rows(), COLUMNS))
    return 0
