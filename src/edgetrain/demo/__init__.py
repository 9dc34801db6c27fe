"""``edgetrain demo``: the whole pipeline on one dataset and one device, as a newcomer sees
it first (see :mod:`edgetrain.demo.pipeline`; per-dataset choices in
:mod:`edgetrain.demo.recipes`).

Orchestration only: every number comes from the library (pretrain, quantize, plan, the int8
engine of Deutel et al. 2024, export and verify)."""

from edgetrain.demo.pipeline import DemoConfig, Reporter, run_demo

__all__ = ["DemoConfig", "Reporter", "run_demo"]
