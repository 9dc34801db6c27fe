"""`edgetrain train`: on-device training simulated bit-exactly on the host: int8 (fully
quantized, Deutel et al. 2024), mixed or float32, with an update policy.

A float model (zoo name or float32 model file) is quantized first, with a message
(calibration = the training data). Every input is checked before training starts; DIR/
model.npz and DIR/results.json are written (atomically) only when training has finished.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from edgetrain.cli.common import add_data_args, is_model_file, out_dir, percent, resolve_dataset
from edgetrain.cli.common import resolve_model as resolve_zoo_model
from edgetrain.cli.progress import ProgressBar
from edgetrain.engine.int8 import PRECISIONS
from edgetrain.errors import EdgetrainError
from edgetrain.io.atomic import write_json
from edgetrain.io.model_file import save_graph
from edgetrain.numerics.config import names as numerics_names
from edgetrain.numerics.quantize import Int8Model, load_model, save_int8
from edgetrain.train.fqt import FQTConfig, fit


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="NAME|FILE",
                        help="a zoo model, a float32 model file or an int8 model file")
    add_data_args(parser)
    parser.add_argument("--precision", choices=PRECISIONS, default="int8",
                        help="int8 (fully quantized), mixed (int8 forward, float backward) or "
                             "float32 (default int8)")
    parser.add_argument("--policy", default="full",
                        help="full, last-N, bias-only, partial, partial-last-N or layers:a,b "
                             "(default full)")
    parser.add_argument("--lambda-min", type=float, default=None,
                        help="partial updates: smallest kept fraction of filters/rows "
                             "(default 0.1)")
    parser.add_argument("--lambda-max", type=float, default=1.0,
                        help="partial updates: largest kept fraction (default 1.0)")
    parser.add_argument("--numerics", choices=numerics_names(), default="default",
                        help="numerics configuration when quantizing a float model "
                             "(paper reproduces Deutel et al.; default)")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training set")
    parser.add_argument("--batch", type=int, default=32, help="mini-batch size")
    parser.add_argument("--lr", type=float, default=0.01,
                        help="learning rate of the standardized SGD update (default 0.01)")
    parser.add_argument("--schedule", choices=("constant", "cosine"), default="cosine",
                        help="learning rate per epoch (default cosine; the paper: constant)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for model.npz and results.json")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads for the host simulation (default 1: the small GEMMs "
                             "of on-device models run fastest on one thread)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _model(text: str, ds, seed: int):
    return load_model(text) if is_model_file(text) else resolve_zoo_model(text, ds, seed)


def blas_threads(n: int):
    """A context limiting numpy's BLAS to n threads (threadpoolctl, installed with
    scikit-learn); without it, a context that changes nothing."""
    if n < 1:
        raise EdgetrainError(f"--threads must be >= 1, got {n}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n)


def run(args: argparse.Namespace) -> int:
    with blas_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    out = out_dir(args.out)
    config = FQTConfig(args.precision, args.policy, args.lambda_min, args.lambda_max,
                       args.numerics, args.epochs, args.batch, args.lr, args.seed,
                       args.schedule)
    ds = resolve_dataset(args.data, args.drift, args.seed, args.shape)
    model = _model(args.model, ds, args.seed)
    if not isinstance(model, Int8Model):
        print(f"{model.name} is a float model: quantizing it to int8 (numerics "
              f"'{config.numerics}', calibration on the training data)", file=sys.stderr)
    start = time.perf_counter()
    result = fit(model, ds, config, on_progress=None if args.quiet else ProgressBar())
    trained = result.model
    path = (save_graph(trained.graph, out / "model.npz") if config.precision == "float32"
            else save_int8(trained, out / "model.npz"))
    results = {**result.summary(), "model_path": str(path),
               "config": {"model": args.model, "data": args.data, "drift": list(args.drift),
                          "shape": args.shape, **config.to_dict(),
                          "numerics_config": trained.numerics.to_dict()},
               "dataset": ds.summary(),
               "seconds": time.perf_counter() - start}
    write_json(out / "results.json", results)
    print(f"{trained.graph.name} on {ds.name} ({config.precision}, "
          f"{config.parsed_policy().name}): test accuracy {percent(result.test_accuracy_before)}"
          f" -> {percent(result.test_accuracy)}; wrote {path} and {out / 'results.json'}")
    return 0
