"""The bench results as the BENCHMARKS.md section "bench": per dataset a table of every
precision x policy, PyTorch float32 side by side with the speed ratios, and the paper's
numbers for the comparable settings, marked as quoted (not re-measured here).

>>> ratio(300.0, 100.0)
'3.00x'
>>> ratio(None, 100.0)
'n/a'
"""

from __future__ import annotations

KB = 1024

# Deutel et al. 2024, Cortex-M7 (reference/TECHNIQUES.md section 1): QUOTED, not measured here
PAPER_ROWS = (
    ("daliac, IMU (transfer)", "97.1 / 96.9 / 96.5", "153.7 / 201.3", "17.1 / 59.0",
     "basic-motions (IMU), mnist1d"),
    ("cwru, vibration (transfer)", "99.5 / 99.8 / 99.8", "17.2 / 42.3", "3.6 / 8.7",
     "basic-motions, mnist1d"),
    ("cifar10 (transfer)", "85.8 / 85.9 / 85.6", "339.7 / 799.7", "193.2 / 1398.8",
     "mnist (mbednet, MobileNetV2-style)"),
    ("EMNIST-digits (scratch)", "91.5 / 93.1 / 97.3", "", "35.4 / 36.1", "mnist, digits"),
)
PAPER_NOTE = ("Partial updates at lambda_min = 0.1 (paper): backward pass 4.0-8.7x faster "
              "with 0 to -1.3 points of accuracy; forward pass unchanged.")


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if not a or not b else f"{a / b:.2f}x"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def case_line(c: dict) -> str:
    m = c["macs_per_sample"]
    instr = c.get("instructions_per_sample")
    exact = {True: "yes", False: "NO", None: "-"}[c.get("bit_exact")]
    return (f"| {c['precision']} | {c['policy']} | {_pct(c['accuracy_before'])} -> "
            f"{_pct(c['accuracy'])} | {100 * c['gain']:+.1f} | "
            f"{c['peak_ram_bytes'] / KB:,.1f} | {c['flash_bytes'] / KB:,.1f} | "
            f"{'yes' if c['fits'] else 'no'} | {m['forward']:,} | {m['backward_error']:,} | "
            f"{m['backward_weight']:,} | {c['host_samples_per_second']:,.0f} | "
            f"{'-' if not instr else f'{instr:,.0f}'} | {exact} |")


CASE_HEAD = ("| precision | policy | accuracy % before -> after | gain pts | peak RAM KB | "
             "flash KB | fits | MACs fwd | MACs bwd err | MACs bwd w | host samples/s | "
             "QEMU instr/sample | bit-exact C |\n"
             "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")


TORCH_HEAD = ("| policy | PyTorch accuracy % | PyTorch samples/s | edgetrain float32 samples/s "
              "| PyTorch / edgetrain float32 | edgetrain int8 samples/s | PyTorch / int8 |")


def torch_lines(d: dict) -> list[str]:
    """PyTorch rows with edgetrain's float32 and int8 speed on the same policy."""
    by = {(c["precision"], c["policy"]): c for c in d["cases"]}
    lines = [TORCH_HEAD, "|---|---|---:|---:|---:|---:|---:|"]
    for t in d["torch"]:
        f = by.get(("float32", t["policy"]), {}).get("host_samples_per_second")
        q = by.get(("int8", t["policy"]), {}).get("host_samples_per_second")
        lines.append(f"| {t['policy']} | {_pct(t['accuracy_before'])} -> {_pct(t['accuracy'])}"
                     f" | {t['samples_per_second']:,.0f} | {f or 0:,.0f} | "
                     f"{ratio(t['samples_per_second'], f)} | {q or 0:,.0f} | "
                     f"{ratio(t['samples_per_second'], q)} |")
    return lines


def dataset_section(d: dict) -> str:
    r = d["recipe"]
    head = (f"### {d['dataset']}: {d['model']}, drift {' '.join(r['drift'])}\n\n"
            f"Pre-trained float32 {_pct(d['float32_source_accuracy'])} % on the original "
            f"domain (int8 {_pct(d['int8_source_accuracy'])} %, after the shift "
            f"{_pct(d['int8_shifted_accuracy'])} %); adaptation on {r['adapt_samples']} "
            f"samples of the new domain, {r['epochs']} epochs, batch {r['batch']}, "
            f"lr {r['lr']}; partial = dynamic partial updates, lambda_min {r['lambda_min']}.")
    parts = [head, CASE_HEAD + "\n" + "\n".join(case_line(c) for c in d["cases"])]
    if d["torch"]:
        parts.append("PyTorch float32, same pre-trained model, same samples and layers "
                     "(Adam, PyTorch's default lr 1e-3, BatchNorm frozen):\n\n"
                     + "\n".join(torch_lines(d)))
    else:
        parts.append(f"PyTorch: skipped: {d.get('torch_skipped')}")
    return "\n\n".join(parts)


def _load(load: list[float] | None) -> str:
    return "" if not load else f"; load average {' '.join(map(str, load))} at the start"


def paper_section() -> str:
    rows = "\n".join(f"| {a} | {b} | {c} | {e} | {f} |" for a, b, c, e, f in PAPER_ROWS)
    return ("### The paper's numbers (QUOTED from Deutel et al. 2024, Cortex-M7; not "
            "re-measured here)\n\n| dataset | accuracy % u8 / mixed / f32 | RAM KB u8 / f32 | "
            "ms per sample u8 / f32 | comparable setting here |\n|---|---|---|---|---|\n"
            f"{rows}\n\n{PAPER_NOTE}")


def section(results: dict, command: str) -> str:
    c = results["config"]
    head = ("## bench: datasets x precisions x policies, PyTorch side by side\n\n"
            f"Command: `{command}`  \nMachine: {results['machine']}; {results['threads']}  \n"
            f"Device for RAM/flash (planner) and QEMU: {c['device']}; total "
            f"{results['seconds']:.0f} s{_load(results.get('load_average'))}.\n\n"
            "Accuracy: test split of the drifted domain, before -> after adaptation. MACs: "
            "executed by the engine per training sample. Peak RAM and flash: the planner. "
            "QEMU instructions: the exported int8 C, one training step, measured (--quick: "
            "the partial case only); bit-exact: that step, C vs the Python engine.")
    body = [dataset_section(d) for d in results["datasets"]]
    return "\n\n".join([head, *body, paper_section()])
