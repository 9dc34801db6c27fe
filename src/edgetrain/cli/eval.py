"""`edgetrain eval --model FILE --data NAME|PATH [--drift ...] [--json]`: accuracy, loss and
per-class accuracy of a float32 model on a dataset split (default: test)."""

from __future__ import annotations

import argparse

from edgetrain.cli.common import (
    add_data_args,
    format_table,
    percent,
    print_json,
    resolve_dataset,
    resolve_model,
)
from edgetrain.errors import EdgetrainError
from edgetrain.train.pretrain import check_compatible, evaluate


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="FILE|NAME",
                        help="a model file (from `edgetrain pretrain`) or a zoo model")
    add_data_args(parser, required=False)
    parser.add_argument("--split", choices=("test", "train"), default="test",
                        help="which split to evaluate (default test)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def data_source(args: argparse.Namespace, meta: dict) -> str:
    """--data, else the dataset the model was trained on (recorded in the model file)."""
    if args.data:
        return args.data
    if "data" in meta:
        return meta["data"]
    raise EdgetrainError("the model file does not name its dataset; give --data NAME|PATH")


def run(args: argparse.Namespace) -> int:
    graph = resolve_model(args.model, None, args.seed)
    ds = resolve_dataset(data_source(args, graph.meta), args.drift, args.seed, args.shape)
    check_compatible(graph, ds)
    x, y = (ds.x_test, ds.y_test) if args.split == "test" else (ds.x_train, ds.y_train)
    ev = evaluate(graph, x, y)
    if args.json:
        print_json({"model": args.model, "dataset": ds.name, "split": args.split,
                    **ev.to_dict()})
        return 0
    print(f"{graph.name} on {ds.name} ({args.split}, {ev.samples} samples): accuracy "
          f"{percent(ev.accuracy)}, loss {ev.loss:.4f}")
    rows = [{"class": c, "accuracy": "-" if a is None else percent(a)}
            for c, a in enumerate(ev.per_class_accuracy)]
    print(format_table(rows, [("class", "class"), ("accuracy", "accuracy")]))
    return 0
