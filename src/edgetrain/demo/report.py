"""The demo's report folder: results.json (every figure), report.md and report.html (tables
and PNG plots: accuracy vs training samples per run, RAM breakdown per policy against the
device's SRAM, MACs per phase per run). Without matplotlib the report keeps its tables and
says why the plots are missing (``report.plots.missing_reason``)."""

from __future__ import annotations

from pathlib import Path

from edgetrain.demo.steps import RunResult, describe_verify
from edgetrain.io.atomic import write_json
from edgetrain.memory.plan import Plan
from edgetrain.report import plots
from edgetrain.report.document import Document

TARGET_RATIO = 0.9  # int8 gain >= 90 % of the float32 gain of the same layers (issue 3)
KB = 1024
ARENA_PARTS = {"act": "activations kept", "err": "errors", "grad": "gradients",
               "scratch": "scratch"}
STATE_PARTS = {"param": "trained parameters", "grad": "gradient accumulators",
               "optim": "optimizer state", "qparams": "quantization parameters"}


def run_summary(r: RunResult) -> dict:
    res = r.result
    out = {"label": r.run.label, "precision": r.run.precision, "policy": r.run.policy,
           "role": r.run.role, "accuracy_before": res.test_accuracy_before,
           "accuracy_per_epoch": list(res.accuracy), "accuracy": res.test_accuracy,
           "gain": r.gain, "loss_per_epoch": list(res.loss),
           "macs_per_sample": {k: round(v) for k, v in res.macs_per_sample.items()},
           "host_samples_per_second": res.samples_per_second,
           "adaptation_samples": r.samples}
    if r.plan is not None:
        out |= {"fits": r.plan.fits, "peak_ram_bytes": r.plan.peak_ram_bytes,
                "trainable_params": r.plan.trainable_params}
    return out


def adaptation_summary(runs: list[RunResult], drift: dict) -> dict:
    """Every run, and the bar: the on-device int8 run against the float32 reference."""
    dev = next(r for r in runs if r.run.role == "on-device")
    ref = next(r for r in runs if r.run.role == "reference")
    ratio = dev.gain / ref.gain if ref.gain > 0 else None
    drop = drift["accuracy_drop"]
    return {"runs": [run_summary(r) for r in runs], "on_device": dev.run.label,
            "reference": ref.run.label, "accuracy_before": dev.result.test_accuracy_before,
            "accuracy_after": dev.result.test_accuracy, "gain": dev.gain,
            "reference_gain": ref.gain, "gain_ratio": ratio,
            "target_ratio": TARGET_RATIO, "target_met": ratio is not None and ratio >= TARGET_RATIO,
            "recovered_fraction_of_drop": dev.gain / drop if drop > 0 else None}


def ram_breakdown(p: Plan) -> dict[str, float]:
    """KB per part of peak RAM: arena buffers live at the peak step by kind, the rest of the
    arena (alignment), and the whole-run state by kind."""
    parts: dict[str, float] = {}
    live = p.live_at(p.peak_step)
    for b in live:
        key = ARENA_PARTS.get(b.kind, "other arena")
        parts[key] = parts.get(key, 0.0) + b.bytes / KB
    rest = p.arena_bytes - sum(b.bytes for b in live)
    if rest > 0:
        parts["other arena (alignment)"] = rest / KB
    for b in p.state:
        key = STATE_PARTS.get(b.kind, "other state")
        parts[key] = parts.get(key, 0.0) + b.bytes / KB
    return parts


def make_plots(folder: Path, plans: dict[str, Plan], runs: list[RunResult], device) -> dict:
    """PNG files by name (relative paths), or {} without matplotlib."""
    if plots.missing_reason():
        return {}
    made = {
        "accuracy": plots.line_plot(folder / "accuracy_vs_step.png",
                                    {r.run.label: r.curve() for r in runs},
                                    "training samples seen on the new domain",
                                    "test accuracy (new domain)", "Accuracy vs training"),
        "ram": plots.stacked_bars(folder / "ram_per_policy.png",
                                  {n: ram_breakdown(p) for n, p in plans.items()}, "KB",
                                  f"Peak RAM per policy (int8) on {device.name}",
                                  device.sram_bytes / KB, f"{device.name} SRAM"),
        "macs": plots.stacked_bars(folder / "macs_per_phase.png",
                                   {r.run.label: {k: v / 1e6 for k, v in
                                                  r.result.macs_per_sample.items()}
                                    for r in runs}, "million MACs per sample (measured)",
                                   "MACs per phase per run"),
    }
    return {k: p.name for k, p in made.items() if p is not None}


def plan_rows(res: dict) -> list[dict]:
    chosen = res["plan"]["chosen"]
    return [{"policy": p["name"] + (" (chosen)" if p["name"] == chosen else ""),
             "fits": p["fits"], "peak RAM KB": round(p["peak_ram_bytes"] / KB, 1),
             "arena KB": round(p["arena_bytes"] / KB, 1),
             "state KB": round(p["state_bytes"] / KB, 1),
             "flash KB": round(p["flash_bytes"] / KB, 1),
             "trained params": p["trainable_params"],
             "MACs fwd": p["macs_per_sample"]["forward"],
             "MACs bwd err": p["macs_per_sample"]["backward_error"],
             "MACs bwd w": p["macs_per_sample"]["backward_weight"],
             "latency ms (est.)": p["latency_ms_estimate"]} for p in res["plan"]["policies"]]


def adaptation_rows(res: dict) -> list[dict]:
    return [{"run": r["label"], "role": r["role"], "fits device": r.get("fits", "n/a"),
             "before %": round(100 * r["accuracy_before"], 1),
             "after %": round(100 * r["accuracy"], 1), "gain pts": round(100 * r["gain"], 1),
             "MACs fwd": r["macs_per_sample"]["forward"],
             "MACs bwd err": r["macs_per_sample"]["backward_error"],
             "MACs bwd w": r["macs_per_sample"]["backward_weight"],
             "host samples/s": round(r["host_samples_per_second"], 1)}
            for r in res["adaptation"]["runs"]]


def summary_rows(res: dict) -> list[dict]:
    a, d = res["adaptation"], res["drift"]
    ratio = "n/a" if a["gain_ratio"] is None else f"{100 * a['gain_ratio']:.0f} %"
    return [
        {"figure": "int8 accuracy, original domain", "value": _pct(d["int8_source"])},
        {"figure": "int8 accuracy after the shift", "value": _pct(d["int8_target"])},
        {"figure": "accuracy drop", "value": f"{100 * d['accuracy_drop']:.1f} points"},
        {"figure": f"after on-device training ({a['on_device']})",
         "value": _pct(a["accuracy_after"])},
        {"figure": "int8 gain / float32 gain of the same layers",
         "value": f"{ratio} (target >= 90 %: {'met' if a['target_met'] else 'NOT met'})"},
        {"figure": "bit_exact (C vs Python engine)", "value": str(res["bit_exact"]).lower()},
        {"figure": "total time", "value": f"{res['seconds']['total']:.0f} s (load average "
                                          f"{res.get('load_average_at_start')} at the start)"},
    ]


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def commands(res: dict) -> list[str]:
    """The same steps as CLI commands a user types on their own model and data."""
    c, r = res["config"], res["config"]["recipe"]
    drift = " ".join(r["drift"])
    pol = res["plan"]["chosen"]
    lines = [
        ("edgetrain pretrain", f"--model {r['model']} --data {c['data']} --out runs/float"),
        ("edgetrain quantize", f"--model runs/float/model.npz --data {c['data']}",
         "--out runs/int8.npz"),
        ("edgetrain plan --search", f"--model runs/int8.npz --device {c['device']}",
         f"--batch {r['batch']}"),
        ("edgetrain train", f"--model runs/int8.npz --data {c['data']} --drift {drift}",
         f"--precision int8 --policy {pol} --lambda-min {r['lambda_min']}",
         f"--epochs {r['epochs']} --batch {r['batch']}",
         f"--lr {r['lr']} --out runs/adapted"),
        ("edgetrain export", f"--model runs/int8.npz --device {c['device']} --policy {pol}",
         f"--lambda-min {r['lambda_min']}",
         f"--batch {r['batch']} --lr {r['lr']} --data {c['data']} --out runs/c"),
        *[(f"edgetrain verify runs/c --target {t}",) for t in res["verify"]],
    ]
    return [" ".join(parts) for parts in lines]


def document(res: dict, images: dict[str, str]) -> Document:
    c, d, a = res["config"], res["drift"], res["adaptation"]
    doc = Document(f"edgetrain demo: {c['recipe']['model']} on {c['data']}, "
                   f"{c['device']}")
    doc.paragraph("Pre-train in float32 on the original domain, quantize to int8, plan "
                  "training on the device, shift the domain, adapt on the device in int8 "
                  "with dynamic partial gradient updates (Deutel et al. 2024), export C and "
                  "verify it bit for bit against the Python engine."
                  + (" Quick run: reduced step sizes." if c["quick"] else ""))
    doc.table(summary_rows(res))
    _pretrain_section(doc, res)
    _plan_section(doc, res, images)
    doc.heading("4. Domain shift")
    doc.table([{"model": "float32", "original domain %": round(100 * d["float32_source"], 1),
                "after the shift %": round(100 * d["float32_target"], 1)},
               {"model": "int8", "original domain %": round(100 * d["int8_source"], 1),
                "after the shift %": round(100 * d["int8_target"], 1)}])
    _adapt_section(doc, res, images, a)
    _verify_section(doc, res)
    doc.heading("7. The same steps on your own model and data")
    doc.code("\n".join(commands(res)))
    if not images:
        doc.paragraph(plots.missing_reason() or "plots skipped")
    return doc


def _pretrain_section(doc: Document, res: dict) -> None:
    p, q = res["pretrain"], res["quantize"]
    doc.heading("1-2. Pre-training (float32) and quantization (int8)")
    doc.table([{"model": p["model"], "epochs": p["epochs"],
                "float32 test %": round(100 * q["float32_accuracy"], 2),
                "int8 test %": round(100 * q["int8_accuracy"], 2),
                "numerics": q["numerics"], "pre-training s": round(p["seconds"], 1)}])


def _plan_section(doc: Document, res: dict, images: dict[str, str]) -> None:
    pl = res["plan"]
    doc.heading(f"3. Plan on {pl['device']['name']} (int8, batch {pl['batch']})")
    doc.paragraph(f"RAM budget {pl['ram_budget_bytes']:,} B (device SRAM "
                  f"{pl['device']['sram_bytes']:,} B). Chosen: {pl['chosen']}, the partial-"
                  "update policy that trains the most parameters within the budget among "
                  f"those training at most the last {res['config']['recipe']['transfer_layers']}"
                  " layers. MACs are per sample (worst case for partial updates); latency "
                  "is the cost model's ESTIMATE.")
    doc.table(plan_rows(res))
    if "ram" in images:
        doc.image(images["ram"], "Peak RAM per policy vs device SRAM")


def _adapt_section(doc: Document, res: dict, images: dict[str, str], a: dict) -> None:
    r = res["config"]["recipe"]
    doc.heading("5. On-device training on the new domain")
    doc.paragraph(f"{r['adapt_samples']} labelled samples of the new domain, {r['epochs']} "
                  f"epochs, batch {r['batch']}, lr {r['lr']}; accuracy on the new domain's test "
                  "split. MACs are the engine's measured counts per training sample.")
    doc.table(adaptation_rows(res))
    for key, caption in (("accuracy", "Test accuracy vs training samples"),
                         ("macs", "MACs per phase per run (measured)")):
        if key in images:
            doc.image(images[key], caption)


def _verify_section(doc: Document, res: dict) -> None:
    e = res["export"]
    doc.heading("6. Export C and verify")
    doc.paragraph(f"C project: {e['path']} (policy {e['policy']}, batch {e['batch']}): "
                  f"arena {e['arena_bytes']:,} B, state {e['state_bytes']:,} B, flash data "
                  f"{e['flash_data_bytes']:,} B.")
    doc.table([{"target": t, "result": describe_verify(v)} for t, v in res["verify"].items()])


def write(folder: Path, res: dict, plans: dict[str, Plan], runs: list[RunResult],
          device) -> dict:
    """Plots, report.md, report.html and results.json in ``folder``."""
    images = make_plots(folder, plans, runs, device)
    res["plots"] = images or {"skipped": plots.missing_reason()}
    document(res, images).write(folder)
    write_json(folder / "results.json", res)
    return res
