"""`edgetrain export`: a model + a device + a policy -> a self-contained C99 training project
(runtime, model.c/model.h, one static arena, the device's linker script, a Makefile for the
host and Cortex-M0+/M4/M7). A float model is quantized on the way with calibration data.
``--precision`` picks what the generated code trains in: int8 (default, bit-exact with the
engine), mixed (int8 forward and weights, float errors and gradients) or float32 (a float
model, no quantization).
"""

from __future__ import annotations

import argparse

from edgetrain.cli.common import is_model_file, out_dir, resolve_dataset, resolve_model
from edgetrain.errors import EdgetrainError
from edgetrain.export.exporter import CALIBRATION_SAMPLES, PRECISIONS, export_project
from edgetrain.ir.graph import Graph
from edgetrain.memory import devices
from edgetrain.numerics.config import names as numerics_names


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="FILE|NAME",
                        help="an int8 model file (edgetrain quantize/train), a float model file "
                             "or a zoo model (both quantized on the way: give --data)")
    parser.add_argument("--device", required=True, metavar="NAME",
                        help=f"target device ({', '.join(devices.names())}); its SRAM and flash "
                             "size the linker script")
    parser.add_argument("--devices", metavar="FILE", default=None,
                        help="a TOML file with more devices")
    parser.add_argument("--policy", default="full",
                        help="full, last-N, bias-only, partial, partial-last-N, layers:a,b")
    parser.add_argument("--lambda-min", type=float, default=None,
                        help="partial updates: the smallest fraction of structures updated")
    parser.add_argument("--batch", type=int, default=1, help="largest mini-batch (default 1)")
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the stochastic-rounding stream (default 0)")
    parser.add_argument("--data", metavar="NAME|PATH", default=None,
                        help="calibration data for a float model, and the data 'edgetrain "
                             "verify' trains on (default: the dataset the model was trained on)")
    parser.add_argument("--numerics", choices=numerics_names(), default="default",
                        help="numerics configuration when a float model is quantized")
    parser.add_argument("--precision", choices=PRECISIONS, default="int8",
                        help="int8 (default; bit-exact with the engine), mixed (int8 forward "
                             "and weights, float32 errors and gradients) or float32 (a float "
                             "model; no quantization); the float ones are verified within a "
                             "stated tolerance")
    parser.add_argument("--out", required=True, metavar="DIR", help="the project folder")


def _load(args):
    """(model: Int8Model or Graph, dataset name or None); a model file is read once."""
    from edgetrain.numerics.quantize import load_model

    if is_model_file(args.model):
        model = load_model(args.model)
        graph = model if isinstance(model, Graph) else model.graph
        return model, args.data or graph.meta.get("data")
    graph = resolve_model(args.model, None, args.seed)
    return graph, args.data or graph.meta.get("data")


def run(args: argparse.Namespace) -> int:
    out = out_dir(args.out)
    dev = devices.get(args.device, args.devices)
    model, dataset = _load(args)
    calibration = None
    if not hasattr(model, "state") and args.precision != "float32":  # a float graph
        if dataset is None:
            raise EdgetrainError(f"model '{model.name}' is a float model: give --data NAME to "
                                 "calibrate its int8 quantization")
        calibration = resolve_dataset(dataset, seed=args.seed).x_train
        print(f"quantizing float model '{model.name}' to int8 (numerics '{args.numerics}', "
              f"{min(len(calibration), CALIBRATION_SAMPLES)} calibration samples of "
              f"'{dataset}')")
    done = export_project(model, dev, out, args.policy, args.lambda_min, args.batch, args.lr,
                          args.seed, calibration, dataset, args.numerics, args.precision)
    m = done.manifest
    print(f"wrote {done.path}: {m['model']} for {m['device']} ({m['core']}), {m['precision']}, "
          f"policy {m['policy']}, arena {m['arena_bytes']} B (lower bound "
          f"{m['arena_lower_bound_bytes']} B) + state {m['state_bytes']} B")
    print(f"  build: make -C {done.path} host|cortex-m0plus|cortex-m4|cortex-m7")
    print(f"  check: edgetrain verify {done.path} --target host --steps 100")
    return 0
