"""The demo's steps, each a call into the library's public APIs (no numerics here):
data and drift (``data``), float32 pre-training (``train.pretrain``), post-training
quantization (``numerics.quantize``), planning (``memory.plan``), on-device training
(``train.fqt``), export and bit-exact verification (``export``).

The method is Deutel et al. 2024 ("On-Device Training of Fully Quantized Deep Neural Networks
on Cortex-M Microcontrollers"): pre-train in float, quantize, then adapt the last layers in
int8 on the device with dynamic partial gradient updates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from edgetrain import data, zoo
from edgetrain.data import Dataset, make_dataset
from edgetrain.demo.recipes import DemoRecipe
from edgetrain.engine.int8 import Trainer
from edgetrain.errors import EdgetrainError
from edgetrain.ir.graph import Graph
from edgetrain.ir.policy import Policy, parse_policy
from edgetrain.memory import devices
from edgetrain.memory.plan import Plan, plan
from edgetrain.numerics.quantize import Int8Model, quantize
from edgetrain.train import pretrain as pre
from edgetrain.train.fqt import FQTConfig, FQTResult, fit
from edgetrain.train.fqt import accuracy as int8_accuracy

CALIBRATION_SAMPLES = 512


@dataclass(frozen=True)
class Domains:
    source: Dataset  # the original domain (pre-training, quantization calibration)
    target: Dataset  # the new domain: adaptation samples and its test split


def _pick(n: int, k: int | None, rng: np.random.Generator) -> np.ndarray:
    """k indices of n (all, in order, when k is None or >= n), seeded."""
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(rng.permutation(n)[:k])


def _subset(ds: Dataset, name: str, train: np.ndarray, test: np.ndarray) -> Dataset:
    return make_dataset(name, ds.x_train[train], ds.y_train[train], ds.x_test[test],
                        ds.y_test[test], num_classes=ds.num_classes,
                        description=ds.description)


def domains(recipe: DemoRecipe, seed: int) -> Domains:
    """The original domain and the drifted one (same test samples, drift applied)."""
    ds = data.load(recipe.dataset)
    rng = np.random.default_rng(seed)
    test = _pick(len(ds.y_test), recipe.test_samples, rng)
    source = _subset(ds, ds.name, _pick(len(ds.y_train), recipe.pretrain_samples, rng), test)
    shifted = data.drift.apply(ds, list(recipe.drift), seed=seed)
    adapt = _pick(len(ds.y_train), recipe.adapt_samples, rng)
    return Domains(source, _subset(shifted, shifted.name, adapt, test))


def pretrained(recipe: DemoRecipe, source: Dataset, seed: int,
               on_progress=None) -> tuple[Graph, pre.PretrainResult]:
    """The recipe's zoo model trained in float32 on the original domain."""
    graph = zoo.build(recipe.model, input_shape=source.input_shape,
                      num_classes=source.num_classes, seed=seed)
    config = replace(pre.recipe(recipe.model), epochs=recipe.pretrain_epochs, seed=seed)
    return graph, pre.pretrain(graph, source, config, on_progress)


def float_accuracy(graph: Graph, ds: Dataset) -> float:
    return pre.evaluate(graph, ds.x_test, ds.y_test).accuracy


def int8_test_accuracy(model: Int8Model, ds: Dataset) -> float:
    """Inference accuracy of the int8 model (a copy: evaluation never touches its state)."""
    return int8_accuracy(Trainer(model.copy(), Policy(), "int8"), ds.x_test, ds.y_test)


def quantized(graph: Graph, source: Dataset) -> Int8Model:
    """Post-training int8 quantization, calibrated on original-domain training samples."""
    return quantize(graph, source.x_train[:CALIBRATION_SAMPLES], "default")


def candidate_policies(graph: Graph, transfer_layers: int) -> list[str]:
    """The policies the plan compares: full training, the last layers, bias-only, and
    dynamic partial updates on each of them."""
    layers = len(graph.weight_nodes())
    lasts = [f"last-{n}" for n in dict.fromkeys((transfer_layers, 2, 1)) if n < layers]
    base = ["full", *lasts, "bias-only"]
    return base + [f"partial-{p}" if p != "full" else "partial" for p in ["full", *lasts]]


def planned(graph: Graph, device: str, policies: list[str], precision: str,
            recipe: DemoRecipe) -> dict[str, Plan]:
    """policy -> the plan of one training step on the device."""
    return {p: plan(graph, device, p, precision, recipe.batch,
                    lambda_min=recipe.lambda_for(p)) for p in policies}


def check_feasible(recipe: DemoRecipe, device: str, budget: int) -> None:
    """Refuse early (before any training) when no partial-update policy can fit: the plan
    depends on the graph's shapes only, so the untrained model answers."""
    ds = data.load(recipe.dataset)
    graph = zoo.build(recipe.model, input_shape=ds.input_shape, num_classes=ds.num_classes)
    names = [p for p in candidate_policies(graph, recipe.transfer_layers)
             if p.startswith("partial")]
    choose_policy(planned(graph, device, names, "int8", recipe), graph,
                  recipe.transfer_layers, budget)


def trained_layer_count(policy: Policy, graph: Graph) -> int:
    return len(policy.trainable_layers(graph))


def choose_policy(plans: dict[str, Plan], graph: Graph, transfer_layers: int,
                  budget: int) -> str:
    """The dynamic-partial-update policy that trains the most parameters among those that
    fit the RAM budget (and the device's flash) and train at most ``transfer_layers``."""
    ok = [p for name, p in plans.items() if p.policy.partial and p.flash_over_bytes == 0
          and p.peak_ram_bytes <= budget
          and trained_layer_count(p.policy, graph) <= transfer_layers]
    if not ok:
        smallest = min((p for p in plans.values() if p.policy.partial),
                       key=lambda p: p.peak_ram_bytes)
        raise EdgetrainError(
            f"no partial-update policy fits: the smallest ({smallest.policy.name}) needs "
            f"{smallest.peak_ram_bytes:,} B of RAM, the budget is {budget:,} B; choose a "
            f"device with more SRAM (edgetrain devices) or a larger --ram-budget")
    best = max(ok, key=lambda p: (p.trainable_params, -p.peak_ram_bytes))
    return next(name for name, p in plans.items() if p is best)


@dataclass(frozen=True)
class Run:
    """One adaptation run: a precision and a policy on the new domain."""

    label: str
    precision: str
    policy: str
    role: str = "comparison"  # on-device (the chosen policy), reference, comparison


def adaptation_runs(chosen: str, quick: bool) -> list[Run]:
    """The chosen int8 partial run, float32 fine-tuning of the same layers (the reference
    of the accuracy bar), and the other policies for comparison."""
    layers = parse_policy(chosen).last_n
    same = "full" if layers is None else f"last-{layers}"
    runs = [Run(f"int8 {chosen}", "int8", chosen, "on-device"),
            Run(f"float32 {same}", "float32", same, "reference"),
            Run(f"int8 {same}", "int8", same)]
    return runs if quick else [*runs, Run("int8 bias-only", "int8", "bias-only")]


@dataclass
class RunResult:
    run: Run
    result: FQTResult
    samples: int  # adaptation samples per epoch
    plan: Plan | None = None
    extra: dict = field(default_factory=dict)

    @property
    def gain(self) -> float:
        return self.result.test_accuracy - self.result.test_accuracy_before

    def curve(self) -> tuple[list[int], list[float]]:
        """(training samples seen, test accuracy): before training, then after each epoch."""
        acc = [self.result.test_accuracy_before, *self.result.accuracy]
        return [i * self.samples for i in range(len(acc))], acc


def adapt(model: Int8Model, target: Dataset, run: Run, recipe: DemoRecipe, seed: int,
          on_progress=None) -> FQTResult:
    """Train a copy of the int8 model on the new domain (the model is not modified)."""
    config = FQTConfig(run.precision, run.policy, recipe.lambda_for(run.policy),
                       epochs=recipe.epochs, batch=recipe.batch, lr=recipe.lr, seed=seed)
    return fit(model, target, config, on_progress)


def gain_ratio(on_device: RunResult, reference: RunResult) -> float | None:
    """int8 accuracy gain / float32 gain of the same layers (None when float32 gained
    nothing, so the ratio says nothing)."""
    return on_device.gain / reference.gain if reference.gain > 0 else None


def verify_target(device: str) -> str | None:
    """The export target that emulates the device's core (by QEMU board), if any."""
    from edgetrain.export.toolchains import TARGETS

    board = devices.get(device).qemu_board
    return next((t.name for t in TARGETS.values() if t.cross and t.qemu_board == board), None)


def verified(project, target_name: str, steps: int) -> dict:
    """Verify on one target: its result, or why it was skipped (tools missing) or failed."""
    from edgetrain.export.toolchains import available
    from edgetrain.export.verify import verify

    ok, why = available(target_name)
    if not ok:
        return {"target": target_name, "skipped": why}
    try:
        return verify(project, target_name, steps).to_dict()
    except EdgetrainError as e:
        return {"target": target_name, "bit_exact": False, "error": str(e)}


def export_recipe(model: Int8Model, policy: str, recipe: DemoRecipe, device: str, out,
                  seed: int):
    """The C project training ``model`` with ``policy`` as the recipe trains it."""
    from edgetrain.export.exporter import export_project

    return export_project(model, device, out, policy=policy,
                          lambda_min=recipe.lambda_for(policy), batch=recipe.batch,
                          lr=recipe.lr, seed=seed, dataset=recipe.dataset)


def export_and_verify(model: Int8Model, policy: str, recipe: DemoRecipe, device: str,
                      out, seed: int, qemu: bool, info=lambda text: None) -> tuple[dict, dict]:
    """Export the quantized model (what is flashed before adaptation) for training with
    ``policy`` on the device, then compare C and Python step by step on the host and on
    the device's core under QEMU. Returns (export summary, target -> verify result)."""
    exported = export_recipe(model, policy, recipe, device, out, seed)
    m = exported.manifest
    summary = {"path": str(exported.path), "policy": policy, "batch": recipe.batch,
               **{k: m[k] for k in ("arena_bytes", "arena_lower_bound_bytes", "state_bytes",
                                    "flash_data_bytes")}}
    info(f"exported {exported.path}: arena {m['arena_bytes']:,} B, state "
         f"{m['state_bytes']:,} B")
    targets = ["host"]
    cross = verify_target(device)
    if qemu and cross:
        targets.append(cross)
    results = {}
    for name in targets:
        results[name] = verified(exported.path, name, recipe.verify_steps)
        info(describe_verify(results[name]))
    return summary, results


def describe_verify(v: dict) -> str:
    """One line: bit-exact or not, measured instructions, or why it was skipped."""
    if "skipped" in v:
        return f"{v['target']}: skipped: {v['skipped']}"
    if "error" in v:
        return f"{v['target']}: FAILED: {v['error']}"
    text = (f"{v['target']}: {v['steps']} steps x batch {v['batch']}, "
            f"{v['compared_tensors']:,} tensors: "
            + ("bit-exact" if v["bit_exact"] else f"{len(v['mismatches'])} mismatches"))
    if v.get("instructions_per_sample"):
        text += f"; {v['instructions_per_sample']:,.0f} instructions per sample (measured)"
    if v.get("fits") is True:
        text += (f"; the device program fits: RAM {v['ram_bytes']:,} B, flash "
                 f"{v['flash_bytes']:,} B")
    elif v.get("fits") is False:
        text += f"; the device program does NOT fit: {v.get('fit_error')}"
    return text


def load_average() -> list[float] | None:
    """The 1/5/15-minute load average when a run starts (the machine may be shared)."""
    try:
        return [round(v, 1) for v in os.getloadavg()]
    except OSError:
        return None
