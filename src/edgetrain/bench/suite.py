"""``edgetrain bench``: datasets x precisions x policies, measured in one run.

Per dataset (the demo's recipe: model, drift, adaptation samples, epochs, batch, lr): the zoo
model is pre-trained in float32 on the original domain, quantized, then adapted on the drifted
domain with each precision (int8, mixed, float32: Deutel et al. 2024) and each policy (full,
last-2, bias-only (Cai et al. 2020), dynamic partial updates at lambda_min = 0.1). Each case
gives the test accuracy before and after, peak RAM and flash (the planner, for the device),
the MACs per phase the engine executed, host samples/s, and for int8 the instructions per
sample measured under QEMU (the exported C on the device's core) when it is installed.

Side by side, in the same run: PyTorch float32 training of the same pre-trained model
(``io.torch_bridge.to_torch``) on the same samples, same epochs and batch, the same layers
trainable (Adam at PyTorch's default lr 1e-3), for each dense policy. One thread for numpy and PyTorch.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

from edgetrain.demo import recipes, steps
from edgetrain.demo.recipes import DemoRecipe
from edgetrain.errors import EdgetrainError, unknown
from edgetrain.ir.graph import Graph
from edgetrain.ir.policy import parse_policy
from edgetrain.memory import devices
from edgetrain.memory.plan import plan
from edgetrain.numerics.quantize import Int8Model
from edgetrain.train.fqt import FQTConfig, fit

PRECISIONS = ("int8", "mixed", "float32")
POLICIES = ("full", "last-2", "bias-only", "partial")
FULL_DATASETS = ("mnist", "digits", "mnist1d", "basic-motions")
QUICK_DATASETS = ("digits", "basic-motions")
TORCH_LR = 1e-3  # Adam at PyTorch's default learning rate


@dataclass(frozen=True)
class BenchConfig:
    quick: bool = False
    datasets: tuple[str, ...] | None = None  # None: FULL_DATASETS (QUICK_DATASETS)
    precisions: tuple[str, ...] = PRECISIONS
    policies: tuple[str, ...] = POLICIES
    device: str = "nrf52840"
    qemu: bool = True  # measure int8 instructions per sample when QEMU is installed
    torch: bool = True  # PyTorch side by side when installed
    seed: int = 0

    def __post_init__(self):
        devices.get(self.device)
        if not (self.precisions and self.policies and self.chosen_datasets()):
            raise EdgetrainError("nothing to run: give at least one dataset, precision and "
                                 "policy")
        for name in self.chosen_datasets():
            recipes.get(name)
        for p in self.precisions:
            if p not in PRECISIONS:
                raise unknown("precision", p, PRECISIONS)
        for p in self.policies:
            parse_policy(p)

    def chosen_datasets(self) -> tuple[str, ...]:
        if self.datasets is not None:
            return self.datasets
        return QUICK_DATASETS if self.quick else FULL_DATASETS

    def recipe(self, dataset: str) -> DemoRecipe:
        return recipes.get(dataset, self.quick).for_bench()


@contextmanager
def one_thread():
    """numpy BLAS and PyTorch on one thread each (a stable comparison on a shared
    machine); yields a note saying what was limited."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "threads not limited (threadpoolctl missing)"
        return
    try:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    with threadpool_limits(limits=1):
        yield "one thread for numpy BLAS and PyTorch"
    if torch is not None:
        torch.set_num_threads(before)


def case_row(dataset: str, model: str, precision: str, policy: str, result,
             plan_) -> dict:
    """One case's figures (JSON-ready)."""
    return {"dataset": dataset, "model": model, "precision": precision, "policy": policy,
            "accuracy_before": result.test_accuracy_before,
            "accuracy": result.test_accuracy,
            "gain": result.test_accuracy - result.test_accuracy_before,
            "peak_ram_bytes": plan_.peak_ram_bytes, "flash_bytes": plan_.flash_bytes,
            "fits": plan_.fits, "trainable_params": plan_.trainable_params,
            "macs_per_sample": {k: round(v) for k, v in result.macs_per_sample.items()},
            "host_samples_per_second": result.samples_per_second,
            "instructions_per_sample": None, "bit_exact": None}


def run_case(model: Int8Model, target, recipe: DemoRecipe, precision: str, policy: str,
             config: BenchConfig) -> dict:
    lam = recipe.lambda_for(policy)
    cfg = FQTConfig(precision, policy, lam, epochs=recipe.epochs, batch=recipe.batch,
                    lr=recipe.lr, seed=config.seed)
    result = fit(model, target, cfg)
    p = plan(model.graph, config.device, policy, precision, recipe.batch, lambda_min=lam)
    return case_row(recipe.dataset, recipe.model, precision, policy, result, p)


def measure_on_core(model: Int8Model, recipe: DemoRecipe, policy: str,
                    config: BenchConfig) -> dict:
    """Export the int8 case and verify one step under QEMU: bit_exact and the measured
    instructions per sample; {'skipped': why} without the toolchain."""
    cross = steps.verify_target(config.device)
    if cross is None:
        return {"skipped": f"{config.device} has no QEMU board"}
    with tempfile.TemporaryDirectory(prefix="edgetrain-bench-") as tmp:
        steps.export_recipe(model, policy, recipe, config.device, tmp, config.seed)
        return steps.verified(tmp, cross, 1)


def _torch_trainable(module, graph: Graph, policy: str) -> list:
    """Freeze everything, then make the policy's parameters trainable; returns them."""
    from edgetrain.io.torch_bridge import ROLE_ATTR

    for t in module.parameters():
        t.requires_grad_(False)
    out = []
    for node, roles in parse_policy(policy).trainable_params(graph).items():
        for role in sorted(roles):
            t = getattr(module.layers[node], ROLE_ATTR[role])
            out.append(t.requires_grad_(True))
    return out


def _torch_accuracy(torch, module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        pred = module(torch.from_numpy(np.array(x))).argmax(dim=1).numpy()
    return float((pred == y).mean())


def torch_finetune(graph: Graph, target, policy: str, recipe: DemoRecipe, seed: int) -> dict:
    """PyTorch float32 training of the same pre-trained model on the same samples, the same
    layers trainable, BatchNorm statistics frozen (eval mode) as in the folded graph."""
    from edgetrain.io.torch_bridge import import_torch, to_torch

    torch = import_torch()
    module = to_torch(graph).eval()
    opt = torch.optim.Adam(_torch_trainable(module, graph, policy), lr=TORCH_LR)
    x = torch.from_numpy(np.array(target.x_train))  # float32[N, *shape], a writable copy
    y = torch.from_numpy(np.array(target.y_train, np.int64))  # int64[N]
    before = _torch_accuracy(torch, module, target.x_test, target.y_test)
    gen, seconds = torch.Generator().manual_seed(seed), 0.0
    for _ in range(recipe.epochs):
        order = torch.randperm(len(y), generator=gen)
        start = time.perf_counter()
        for i in range(0, len(y), recipe.batch):
            idx = order[i:i + recipe.batch]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(module(x[idx]), y[idx]).backward()
            opt.step()
        seconds += time.perf_counter() - start
    return {"dataset": recipe.dataset, "model": recipe.model, "policy": policy,
            "accuracy_before": before,
            "accuracy": _torch_accuracy(torch, module, target.x_test, target.y_test),
            "samples_per_second": recipe.epochs * len(y) / max(seconds, 1e-9),
            "torch_version": torch.__version__}


def torch_missing() -> str | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        return "PyTorch is not installed (pip install 'edgetrain[torch]')"
    return None


def bench_dataset(name: str, config: BenchConfig,
                  info: Callable[[str], None] = lambda text: None) -> dict:
    """Every case of one dataset, and PyTorch on its dense policies."""
    recipe = config.recipe(name)
    dom = steps.domains(recipe, config.seed)
    graph, pre = steps.pretrained(recipe, dom.source, config.seed)
    model = steps.quantized(graph, dom.source)
    out = {"dataset": name, "model": recipe.model, "recipe": recipe.to_dict(),
           "float32_source_accuracy": pre.final_accuracy,
           "int8_source_accuracy": steps.int8_test_accuracy(model, dom.source),
           "int8_shifted_accuracy": steps.int8_test_accuracy(model, dom.target),
           "cases": [], "torch": []}
    info(f"{name}: {recipe.model} pre-trained to {100 * pre.final_accuracy:.1f} %")
    for precision in config.precisions:
        for policy in config.policies:
            row = run_case(model, dom.target, recipe, precision, policy, config)
            if precision == "int8" and config.qemu and (
                    not config.quick or parse_policy(policy).partial):
                row |= _core_figures(measure_on_core(model, recipe, policy, config))
            out["cases"].append(row)
            info(describe_case(row))
    out["torch"], out["torch_skipped"] = _torch_rows(graph, dom.target, recipe, config, info)
    return out


def _core_figures(v: dict) -> dict:
    if "skipped" in v:
        return {"qemu_skipped": v["skipped"]}
    if "error" in v:
        return {"bit_exact": False, "qemu_error": v["error"]}
    out = {"instructions_per_sample": v.get("instructions_per_sample"),
           "bit_exact": v["bit_exact"], "qemu_target": v["target"]}
    if v["mismatches"]:
        m = v["mismatches"][0]
        out["qemu_error"] = (f"first mismatch: step {m['step']}, layer {m['layer']}, "
                             f"tensor {m['tensor']}")
    return out


def _torch_rows(graph, target, recipe, config, info) -> tuple[list[dict], str | None]:
    why = None if config.torch else "disabled (--no-torch)"
    why = why or torch_missing()
    if why:
        return [], why
    rows = []
    for policy in config.policies:
        if parse_policy(policy).partial:
            continue  # no PyTorch counterpart of dynamic partial updates
        rows.append(torch_finetune(graph, target, policy, recipe, config.seed))
        info(f"  PyTorch float32 {policy}: {100 * rows[-1]['accuracy']:.1f} %, "
             f"{rows[-1]['samples_per_second']:,.0f} samples/s")
    return rows, None


def describe_case(row: dict) -> str:
    text = (f"  {row['precision']} {row['policy']}: {100 * row['accuracy_before']:.1f} -> "
            f"{100 * row['accuracy']:.1f} %, peak RAM {row['peak_ram_bytes']:,} B, "
            f"{row['host_samples_per_second']:,.0f} samples/s")
    if row.get("instructions_per_sample"):
        text += f", {row['instructions_per_sample']:,.0f} instructions/sample (QEMU)"
    if row.get("bit_exact") is False:
        text += f", C NOT bit-exact: {row.get('qemu_error') or 'mismatch'}"
    return text


def run_bench(config: BenchConfig, info: Callable[[str], None] = lambda text: None) -> dict:
    """Every dataset of the configuration; the results as one JSON-ready dict."""
    from edgetrain.report.benchmarks import machine_summary

    start, load = time.perf_counter(), steps.load_average()
    with one_thread() as threads:
        results = [bench_dataset(name, config, info) for name in config.chosen_datasets()]
    return {"config": {**asdict(config), "datasets": list(config.chosen_datasets())},
            "machine": machine_summary(), "threads": threads, "load_average": load,
            "datasets": results,
            "seconds": round(time.perf_counter() - start, 1)}

