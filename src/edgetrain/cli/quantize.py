"""`edgetrain quantize`: post-training quantization of a float model to int8 (BatchNorm
folded, activation ranges calibrated on training data, per-tensor or per-channel weights,
int32 biases), with the int8 accuracy next to the float one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgetrain.cli.common import add_data_args, out_dir, percent, resolve_dataset, resolve_model
from edgetrain.engine.float32 import predict
from edgetrain.engine.int8 import Trainer
from edgetrain.errors import EdgetrainError
from edgetrain.io.atomic import write_json
from edgetrain.ir.policy import Policy
from edgetrain.numerics.config import names as numerics_names
from edgetrain.numerics.quantize import quantize, save_int8
from edgetrain.train.fqt import accuracy


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="NAME|FILE",
                        help="a float32 model file (or a zoo model, untrained)")
    add_data_args(parser)
    parser.add_argument("--numerics", choices=numerics_names(), default="default",
                        help="numerics configuration (weights per tensor for 'paper', per "
                             "channel for 'default')")
    parser.add_argument("--calibration", type=int, default=512,
                        help="training samples used to calibrate activation ranges")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="the int8 model file to write (.npz)")


def run(args: argparse.Namespace) -> int:
    if args.calibration < 1:
        raise EdgetrainError(f"--calibration must be >= 1, got {args.calibration}")
    out = Path(args.out if args.out.endswith(".npz") else f"{args.out}.npz")
    out_dir(str(out.parent))
    ds = resolve_dataset(args.data, args.drift, args.seed, args.shape)
    graph = resolve_model(args.model, ds, args.seed)
    model = quantize(graph, ds.x_train[:args.calibration], args.numerics)
    float_acc = float((predict(graph, ds.x_test).argmax(axis=1) == ds.y_test).mean())
    int8_acc = accuracy(Trainer(model, Policy(), "int8"), ds.x_test, ds.y_test)
    path = save_int8(model, out)
    write_json(out.with_suffix(".json"), {"float_accuracy": float_acc, "int8_accuracy": int8_acc,
                                    "model_path": str(path), "numerics": args.numerics,
                                    "calibration": args.calibration,
                                    "int8_bytes": int(sum(v.nbytes for k, v in
                                                          model.state.items()
                                                          if k.endswith((":w", ":b"))))})
    print(f"{graph.name}: float32 test accuracy {percent(float_acc)}, int8 "
          f"{percent(int8_acc)} ({np.abs(float_acc - int8_acc) * 100:.2f} points apart); "
          f"wrote {path}")
    return 0
