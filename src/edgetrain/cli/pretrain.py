"""`edgetrain pretrain`: float32 training of a zoo model or model file on a dataset.

Writes DIR/model.npz and DIR/results.json only when training has finished (atomically), so
a failed or interrupted run leaves nothing half-written. Hyper-parameters left out come from
the model's tuned recipe (``train.pretrain.RECIPES``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from edgetrain.cli.common import add_data_args, out_dir, percent, resolve_dataset, resolve_model
from edgetrain.cli.progress import ProgressBar
from edgetrain.io.atomic import write_json
from edgetrain.io.model_file import save_graph
from edgetrain.train.pretrain import (
    OPTIMIZERS,
    SCHEDULES,
    PretrainConfig,
    check_compatible,
    pretrain,
    recipe,
)

# CLI option -> PretrainConfig field (None on the command line: take the recipe's value)
OVERRIDES = {"epochs": "epochs", "batch": "batch", "lr": "lr", "optimizer": "optimizer",
             "momentum": "momentum", "weight_decay": "weight_decay", "schedule": "schedule",
             "shift": "shift"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="NAME|FILE",
                        help="a zoo model (see `edgetrain models`) or a model file")
    add_data_args(parser)
    parser.add_argument("--epochs", type=int, help="passes over the training set")
    parser.add_argument("--batch", type=int, help="mini-batch size")
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), help="sgd or adam")
    parser.add_argument("--momentum", type=float, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, help="L2 weight decay")
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), help="learning-rate schedule")
    parser.add_argument("--shift", type=int,
                        help="augmentation: random shifts of up to N pixels/steps")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for model.npz and results.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, model: str) -> PretrainConfig:
    """The model's recipe with every option given on the command line applied."""
    given = {field: getattr(args, opt) for opt, field in OVERRIDES.items()
             if getattr(args, opt) is not None}
    return dataclasses.replace(recipe(model), seed=args.seed, **given)


def run(args: argparse.Namespace) -> int:
    out = out_dir(args.out)
    ds = resolve_dataset(args.data, args.drift, args.seed, args.shape)
    graph = resolve_model(args.model, ds, args.seed)
    config = config_from_args(args, graph.name)
    check_compatible(graph, ds)
    start = time.perf_counter()
    result = pretrain(graph, ds, config, on_progress=None if args.quiet else ProgressBar())
    graph.meta.update({"data": args.data, "drift": list(args.drift), "dataset": ds.name,
                       "pretrain": dataclasses.asdict(config),
                       "test_accuracy": result.final_accuracy})
    model_path = save_graph(graph, out / "model.npz")
    results = {"test_accuracy": result.final_accuracy, "train_loss": list(result.train_loss),
               "test_accuracy_per_epoch": list(result.test_accuracy),
               "model_path": str(model_path),
               "config": {"model": args.model, "data": args.data, "drift": list(args.drift),
                          "shape": args.shape, **dataclasses.asdict(config)},
               "dataset": ds.summary(),
               "model": {"name": graph.name, "params": graph.num_params(),
                         "macs_per_sample": graph.macs_per_sample()},
               "seconds": time.perf_counter() - start,
               "samples_per_second": result.samples_per_second}
    write_json(out / "results.json", results)
    print(f"{graph.name} on {ds.name}: test accuracy {percent(result.final_accuracy)} after "
          f"{config.epochs} epochs ({results['seconds']:.1f} s); wrote {model_path} and "
          f"{out / 'results.json'}")
    return 0
