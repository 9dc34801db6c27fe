"""``edgetrain export``: an int8 model (or a float one, quantized on the way) + a device + a
policy -> a self-contained C99 project (see :mod:`edgetrain.export.project`) that trains in
one of the engine's precisions: ``int8`` (default, bit-exact with the engine), ``mixed``
(int8 forward and weights, float32 errors and gradients) or ``float32`` (a float model, no
quantization); the float ones are compared with a stated tolerance (docs/deploy.md).

>>> from edgetrain.ir import GraphBuilder
>>> b = GraphBuilder("tiny", (4,), seed=0)
>>> g = b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
...                   out_features=3))
>>> import tempfile
>>> out = export_project(g, "nrf52840", tempfile.mkdtemp(), calibration=np.ones((8, 4), np.float32))
>>> out.manifest["device"], out.manifest["policy"], out.emitted.arena_bytes > 0
('nrf52840', 'full', True)
>>> export_project(g, "nrf52840", tempfile.mkdtemp(), precision="float32").manifest["precision"]
'float32'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetrain.errors import EdgetrainError, unknown
from edgetrain.export import project
from edgetrain.export.emit import Emitted, ExportConfig, emit
from edgetrain.export.emit_float import emit_float, float_model
from edgetrain.export.verify import MODEL_FILE
from edgetrain.ir.graph import Graph
from edgetrain.ir.policy import parse_policy
from edgetrain.memory import devices
from edgetrain.numerics.quantize import Int8Model, quantize, save_int8

CALIBRATION_SAMPLES = 512
PRECISIONS = ("int8", "mixed", "float32")
FLOAT_SOURCES = ("et_float.c",)  # runtime sources the float precisions add to the Makefile


@dataclass
class Exported:
    path: Path
    manifest: dict
    emitted: Emitted
    quantized_here: bool


def as_int8(model: Graph | Int8Model, calibration: np.ndarray | None,
            numerics: str = "default") -> tuple[Int8Model, bool]:
    """The int8 model; a float graph is quantized with ``calibration`` inputs."""
    if isinstance(model, Int8Model):
        return model, False
    if calibration is None or len(calibration) == 0:
        raise EdgetrainError(f"model '{model.name}' is a float model: give calibration data "
                             "(--data NAME) to quantize it for int8 export")
    return quantize(model, calibration[:CALIBRATION_SAMPLES], numerics), True


def as_float32(model: Graph | Int8Model, numerics: str = "default") -> Int8Model:
    """The carrier of a float32 export: a float graph, BatchNorm folded, nothing quantized."""
    if isinstance(model, Int8Model):
        raise EdgetrainError(f"model '{model.graph.name}' is an int8 model: precision float32 "
                             "exports a float model; give the float model file (or a zoo "
                             "name), or export this one with --precision int8 or mixed")
    return float_model(model, numerics)


def model_for(model: Graph | Int8Model, precision: str, calibration: np.ndarray | None,
              numerics: str) -> tuple[Int8Model, bool]:
    """(the model the engine trains in ``precision``, whether it was quantized here)."""
    if precision not in PRECISIONS:
        raise unknown("precision", precision, PRECISIONS)
    if precision == "float32":
        return as_float32(model, numerics), False
    return as_int8(model, calibration, numerics)


def emit_for(model: Int8Model, cfg: ExportConfig, precision: str) -> Emitted:
    if precision == "int8":
        return emit(model, cfg, model.graph.name)
    return emit_float(model, cfg, precision, model.graph.name)


def export_project(model: Graph | Int8Model, device: str, out: str | Path,
                   policy: str = "full", lambda_min: float | None = None, batch: int = 1,
                   lr: float = 0.01, seed: int = 0, calibration: np.ndarray | None = None,
                   dataset: str | None = None, numerics: str = "default",
                   precision: str = "int8") -> Exported:
    """Write the C project for training ``model`` on ``device`` in ``precision`` into
    ``out``."""
    dev = devices.get(device)
    int8, quantized_here = model_for(model, precision, calibration, numerics)
    pol = parse_policy(policy, lambda_min)
    cfg = ExportConfig(pol, batch, lr, seed)
    emitted = emit_for(int8, cfg, precision)
    manifest = {"model": int8.graph.name, "device": dev.name, "core": dev.core.name,
                "policy": policy, "lambda_min": lambda_min, "lambda_max": pol.lambda_max,
                "precision": precision, "numerics": int8.numerics.name, "batch": batch, "lr": lr,
                "seed": seed, "dataset": dataset, "trace_names": emitted.trace_names,
                "arena_bytes": emitted.arena_bytes,
                "arena_lower_bound_bytes": emitted.arena_lower_bound,
                "state_bytes": emitted.state_bytes, "flash_data_bytes": emitted.flash_data_bytes,
                "buffers": emitted.buffers, "state_map": emitted.state_map}
    path = project.write_project(out, dev, emitted.model_c, emitted.model_h, manifest,
                                 project.readme(manifest),
                                 FLOAT_SOURCES if precision != "int8" else ())
    save_int8(int8, path / MODEL_FILE)
    return Exported(path, manifest, emitted, quantized_here)
