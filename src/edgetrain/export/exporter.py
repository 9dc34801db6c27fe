"""``edgetrain export``: an int8 model (or a float one, quantized on the way) + a device + a
policy -> a self-contained C99 project (see :mod:`edgetrain.export.project`).

>>> from edgetrain.ir import GraphBuilder
>>> b = GraphBuilder("tiny", (4,), seed=0)
>>> g = b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
...                   out_features=3))
>>> import tempfile
>>> out = export_project(g, "nrf52840", tempfile.mkdtemp(), calibration=np.ones((8, 4), np.float32))
>>> out.manifest["device"], out.manifest["policy"], out.emitted.arena_bytes > 0
('nrf52840', 'full', True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetrain.errors import EdgetrainError
from edgetrain.export import project
from edgetrain.export.emit import Emitted, ExportConfig, emit
from edgetrain.export.verify import MODEL_FILE
from edgetrain.ir.graph import Graph
from edgetrain.ir.policy import parse_policy
from edgetrain.memory import devices
from edgetrain.numerics.quantize import Int8Model, quantize, save_int8

CALIBRATION_SAMPLES = 512


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


def export_project(model: Graph | Int8Model, device: str, out: str | Path,
                   policy: str = "full", lambda_min: float | None = None, batch: int = 1,
                   lr: float = 0.01, seed: int = 0, calibration: np.ndarray | None = None,
                   dataset: str | None = None, numerics: str = "default") -> Exported:
    """Write the C project for training ``model`` on ``device`` into ``out``."""
    dev = devices.get(device)
    int8, quantized_here = as_int8(model, calibration, numerics)
    pol = parse_policy(policy, lambda_min)
    cfg = ExportConfig(pol, batch, lr, seed)
    emitted = emit(int8, cfg, int8.graph.name)
    manifest = {"model": int8.graph.name, "device": dev.name, "core": dev.core.name,
                "policy": policy, "lambda_min": lambda_min, "lambda_max": pol.lambda_max,
                "precision": "int8", "numerics": int8.numerics.name, "batch": batch, "lr": lr,
                "seed": seed, "dataset": dataset, "trace_names": emitted.trace_names,
                "arena_bytes": emitted.arena_bytes,
                "arena_lower_bound_bytes": emitted.arena_lower_bound,
                "state_bytes": emitted.state_bytes, "flash_data_bytes": emitted.flash_data_bytes,
                "buffers": emitted.buffers}
    path = project.write_project(out, dev, emitted.model_c, emitted.model_h, manifest,
                                 project.readme(manifest))
    save_int8(int8, path / MODEL_FILE)
    return Exported(path, manifest, emitted, quantized_here)
