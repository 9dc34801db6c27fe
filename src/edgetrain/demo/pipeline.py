"""``run_demo``: the whole story on one dataset and one device, step by step.

pre-train float32 -> quantize int8 -> plan the policies for the device -> domain shift (the
accuracy drop) -> on-device int8 training with dynamic partial updates, compared with float32
fine-tuning of the same layers and other policies (the recovery) -> export C and verify it
bit-exact (host, and the device's core under QEMU when installed) -> report folder.

Library code does not print: a :class:`Reporter` receives the step titles, one-line results
and training progress (the CLI draws them on stderr).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from edgetrain.demo import report, steps
from edgetrain.demo.recipes import DemoRecipe, check_budget
from edgetrain.demo.recipes import get as get_recipe
from edgetrain.memory import devices

STEPS = ("pre-train float32", "quantize int8", "plan for the device", "domain shift",
         "on-device training", "export C and verify", "report")


@dataclass(frozen=True)
class DemoConfig:
    device: str = "nrf52840"
    data: str = "mnist"
    out: str = "runs/demo"
    quick: bool = False
    ram_budget: int | None = None  # bytes for training; None: the device's SRAM
    seed: int = 0
    qemu: bool = True  # also verify on the emulated core when the toolchain is installed

    def __post_init__(self):
        devices.get(self.device)
        get_recipe(self.data)
        check_budget(self.ram_budget)


class Reporter:
    """Receives what the demo is doing; this one ignores it (subclass to show it)."""

    def step(self, index: int, total: int, title: str) -> None:
        """A step starts (1-based index)."""

    def info(self, text: str) -> None:
        """A one-line result."""

    def progress(self, p) -> None:
        """Training progress (train.pretrain.Progress / train.fqt.Progress)."""


class _Timer:
    def __init__(self, reporter: Reporter):
        self.reporter, self.seconds, self._index = reporter, {}, 0

    def start(self, title: str) -> None:
        self._index += 1
        self._title, self._t0 = title, time.perf_counter()
        self.reporter.step(self._index, len(STEPS), title)

    def stop(self) -> None:
        self.seconds[self._title] = round(time.perf_counter() - self._t0, 2)


def run_demo(config: DemoConfig, reporter: Reporter | None = None) -> dict:
    """Run every step; writes report.md, report.html, results.json (and PNG plots, the C
    project) into ``config.out``; returns the results dict."""
    rep = reporter or Reporter()
    recipe = get_recipe(config.data, config.quick)
    timer, res = _Timer(rep), {"config": _config_dict(config, recipe)}
    steps.check_feasible(recipe, config.device, _budget(config))
    start, load = time.perf_counter(), steps.load_average()
    timer.start(STEPS[0])
    dom = steps.domains(recipe, config.seed)
    graph, pre = steps.pretrained(recipe, dom.source, config.seed, rep.progress)
    res["pretrain"] = _pretrain_summary(pre, recipe)
    timer.stop()
    model = _quantize_step(timer, rep, graph, dom, res)
    chosen, plans = _plan_step(timer, rep, model, config, recipe, res)
    _drift_step(timer, rep, graph, model, dom, res)
    runs = _adapt_step(timer, rep, model, dom, recipe, config, chosen, plans, res)
    _export_step(timer, rep, model, chosen, recipe, config, res)
    timer.start(STEPS[6])
    res["seconds"] = {**timer.seconds, "total": round(time.perf_counter() - start, 2)}
    res["load_average_at_start"] = load
    report.write(Path(config.out), res, plans, runs, devices.get(config.device))
    timer.stop()
    rep.info(f"report: {Path(config.out) / 'report.html'} (and report.md, results.json)")
    return res


def _budget(config: DemoConfig) -> int:
    return config.ram_budget or devices.get(config.device).sram_bytes


def _config_dict(config: DemoConfig, recipe: DemoRecipe) -> dict:
    return {"device": config.device, "data": config.data, "out": str(config.out),
            "quick": config.quick, "ram_budget_bytes": config.ram_budget,
            "seed": config.seed, "recipe": recipe.to_dict()}


def _pretrain_summary(pre, recipe: DemoRecipe) -> dict:
    return {"model": recipe.model, "epochs": recipe.pretrain_epochs,
            "test_accuracy": pre.final_accuracy, "accuracy_per_epoch": list(pre.test_accuracy),
            "seconds": pre.seconds, "samples_per_second": pre.samples_per_second}


def _quantize_step(timer, rep, graph, dom, res):
    timer.start(STEPS[1])
    model = steps.quantized(graph, dom.source)
    res["quantize"] = {"float32_accuracy": steps.float_accuracy(graph, dom.source),
                       "int8_accuracy": steps.int8_test_accuracy(model, dom.source),
                       "calibration_samples": steps.CALIBRATION_SAMPLES,
                       "numerics": model.numerics.name}
    q = res["quantize"]
    rep.info(f"{graph.name} on {dom.source.name}: float32 {_pct(q['float32_accuracy'])}, "
             f"int8 {_pct(q['int8_accuracy'])}")
    timer.stop()
    return model


def _plan_step(timer, rep, model, config, recipe, res):
    timer.start(STEPS[2])
    device = devices.get(config.device)
    budget = _budget(config)
    names = steps.candidate_policies(model.graph, recipe.transfer_layers)
    plans = steps.planned(model.graph, device.name, names, "int8", recipe)
    chosen = steps.choose_policy(plans, model.graph, recipe.transfer_layers, budget)
    res["plan"] = {"device": device.to_dict(), "ram_budget_bytes": budget,
                   "precision": "int8", "batch": recipe.batch, "chosen": chosen,
                   "policies": [p.to_dict(detail=False) | {"name": n} for n, p in plans.items()]}
    p = plans[chosen]
    rep.info(f"chosen: {chosen}: peak RAM {p.peak_ram_bytes:,} B of {budget:,} B, "
             f"{p.trainable_params:,} trainable parameters")
    timer.stop()
    return chosen, plans


def _drift_step(timer, rep, graph, model, dom, res):
    timer.start(STEPS[3])
    d = {"drift": list(res["config"]["recipe"]["drift"]),
         "float32_source": steps.float_accuracy(graph, dom.source),
         "float32_target": steps.float_accuracy(graph, dom.target),
         "int8_source": res["quantize"]["int8_accuracy"],
         "int8_target": steps.int8_test_accuracy(model, dom.target)}
    d["accuracy_drop"] = d["int8_source"] - d["int8_target"]
    res["drift"] = d
    rep.info(f"drift {' '.join(d['drift'])}: int8 accuracy {_pct(d['int8_source'])} -> "
             f"{_pct(d['int8_target'])} (drop {100 * d['accuracy_drop']:.1f} points)")
    timer.stop()


def _adapt_step(timer, rep, model, dom, recipe, config, chosen, plans, res):
    timer.start(STEPS[4])
    out = []
    for run in steps.adaptation_runs(chosen, config.quick):
        rep.info(f"{run.label} ({run.role})")
        result = steps.adapt(model, dom.target, run, recipe, config.seed, rep.progress)
        p = plans.get(run.policy) if run.precision == "int8" else steps.planned(
            model.graph, config.device, [run.policy], run.precision, recipe)[run.policy]
        out.append(steps.RunResult(run, result, len(dom.target.y_train), p))
    res["adaptation"] = report.adaptation_summary(out, res["drift"])
    a = res["adaptation"]
    rep.info(f"recovery: int8 {chosen} {_pct(a['accuracy_before'])} -> "
             f"{_pct(a['accuracy_after'])}; gain {_ratio(a['gain_ratio'])} of float32 "
             f"fine-tuning of the same layers (target >= 90 %: "
             f"{'met' if a['target_met'] else 'NOT met'})")
    timer.stop()
    return out


def _export_step(timer, rep, model, chosen, recipe, config, res):
    timer.start(STEPS[5])
    res["export"], res["verify"] = steps.export_and_verify(
        model, chosen, recipe, config.device, Path(config.out) / "c", config.seed,
        config.qemu, rep.info)
    verified = [v for v in res["verify"].values() if "skipped" not in v]
    res["bit_exact"] = bool(verified) and all(v["bit_exact"] for v in verified)
    timer.stop()


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{100 * r:.0f} %"
