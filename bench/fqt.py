"""Fully quantized training (Deutel et al. 2024) against its bars; writes the BENCHMARKS.md
section "fqt".

1. From scratch: mnist-cnn on mnist in float32, mixed and int8 (numerics 'default' and
   'paper'); bars int8 >= float32 - 2 points, mixed >= float32 - 1 point.
2. Transfer: float32 pre-training on mnist, then the drifted domain (rotated or inverted
   digits); the last 2 layers adapted in int8 (quantized, calibration on the new domain's
   training data) vs float32 fine-tuning of the same layers; bar: int8 gain >= 90 % of the
   float32 gain.
3. Dynamic partial updates at lambda_min = 0.1 vs full int8, from scratch and in transfer:
   backward MACs (error + weight) >= 5x fewer with <= 1.5 points accuracy loss; the
   end-to-end ratio with the forward pass.
4. Ablation: the paper's numerics with one of the default's changes at a time.
5. Host speed: int8 training samples/s vs PyTorch float32 training of the same model, same
   batches, interleaved repeats in the same run, one thread each; bar: within 3x.

    .venv/bin/python bench/fqt.py [--epochs 10] [--transfer-epochs 3] [--pretrain-epochs 6]
    .venv/bin/python bench/fqt.py --only speed [--repeats 5]   # part 5 only, printed
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

import numpy as np

from edgetrain import data, zoo
from edgetrain.engine.heap import keep_freed_memory
from edgetrain.engine.int8 import Trainer
from edgetrain.ir import Policy
from edgetrain.numerics.config import get as get_numerics
from edgetrain.numerics.quantize import quantize
from edgetrain.report.benchmarks import machine_summary, update_section
from edgetrain.train.fqt import FQTConfig, fit
from edgetrain.train.pretrain import PretrainConfig, pretrain

PAPER = """Quoted from Deutel et al. 2024 (Cortex-M7, *not measured here*): from scratch
EMNIST-digits uint8 / mixed / float32 91.5 / 93.1 / 97.3 %, Fashion-MNIST 76.1 / 79.9 /
84.0 %, KMNIST 63.4 / 69.9 / 83.4 %; transfer CIFAR-10 85.8 / 85.9 / 85.6 %; partial
updates at lambda_min = 0.1: backward pass 4.0-8.7x faster with 0 to -1.3 points."""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def scratch(ds, epochs: int, lr: float) -> dict[str, object]:
    g = zoo.build("mnist-cnn", seed=0)
    runs = {"float32": FQTConfig("float32"), "mixed": FQTConfig("mixed"),
            "int8 (default)": FQTConfig("int8"), "int8 (paper)": FQTConfig("int8", numerics="paper"),
            "int8 partial 0.1": FQTConfig("int8", policy="partial", lambda_min=0.1)}
    out = {}
    for name, cfg in runs.items():
        start = time.perf_counter()
        out[name] = fit(g, ds, replace(cfg, epochs=epochs, lr=lr, batch=32))
        log(f"scratch {name}: {pct(out[name].test_accuracy)} "
            f"({time.perf_counter() - start:.0f} s)")
    return out


ABLATION = {  # the paper's numerics with one of the default's changes at a time
    "paper": {},
    "paper + weights re-ranged each step": {"rate_weight": 1.0},
    "paper + nearest/stochastic rounding": {"round_forward": "nearest",
                                            "round_backward": "nearest",
                                            "round_update": "stochastic"},
    "paper + per-channel weights": {"weight_channels": True},
    "default (all three)": None,
}


def ablation(ds, epochs: int, lr: float) -> list[str]:
    """Which of the default's changes closes the paper's gap: int8 from scratch."""
    g = zoo.build("mnist-cnn", seed=0)
    rows = ["| int8 numerics | test accuracy |", "|---|---|"]
    for name, change in ABLATION.items():
        numerics = get_numerics("default") if change is None else replace(
            get_numerics("paper"), name=name, **change)
        model = quantize(g, ds.x_train[:512], numerics)
        r = fit(model, ds, FQTConfig("int8", epochs=epochs, lr=lr, batch=32))
        log(f"ablation {name}: {pct(r.test_accuracy)}")
        rows.append(f"| {name} | {pct(r.test_accuracy)} |")
    return rows


def reference_float(ds, epochs: int) -> float:
    """Test accuracy of the usual float recipe (SGD momentum 0.9, lr 0.05, cosine)."""
    g = zoo.build("mnist-cnn", seed=0)
    result = pretrain(g, ds, PretrainConfig(epochs=epochs, batch=32, lr=0.05,
                                            schedule="cosine"))
    log(f"scratch float32 reference recipe: {pct(result.final_accuracy)}")
    return result.final_accuracy


def backward_macs(r) -> float:
    return r.macs_per_sample["backward_error"] + r.macs_per_sample["backward_weight"]


def scratch_table(res, epochs: int, reference: float) -> tuple[str, list[str]]:
    f32 = res["float32"].test_accuracy
    rows = ["| run | test accuracy | vs float32 | backward MACs/sample | total MACs/sample |",
            "|---|---|---|---|---|",
            (f"| float32 reference: train.pretrain, SGD momentum 0.9, lr 0.05, cosine | "
             f"{pct(reference)} | {100 * (reference - f32):+.1f} | | |")]
    for name, r in res.items():
        total = backward_macs(r) + r.macs_per_sample["forward"]
        rows.append(f"| {name} | {pct(r.test_accuracy)} | "
                    f"{100 * (r.test_accuracy - f32):+.1f} | {backward_macs(r):,.0f} | "
                    f"{total:,.0f} |")
    full, part = res["int8 (default)"], res["int8 partial 0.1"]
    bwd_ratio = backward_macs(full) / backward_macs(part)
    e2e = (backward_macs(full) + full.macs_per_sample["forward"]) / (
        backward_macs(part) + part.macs_per_sample["forward"])
    loss = 100 * (full.test_accuracy - part.test_accuracy)
    bars = [
        _bar("int8 >= float32 - 2 points", full.test_accuracy >= f32 - 0.02,
             f"{pct(full.test_accuracy)} vs {pct(f32)}"),
        _bar("mixed >= float32 - 1 point", res["mixed"].test_accuracy >= f32 - 0.01,
             f"{pct(res['mixed'].test_accuracy)} vs {pct(f32)}"),
        _bar("partial 0.1: backward MACs >= 5x fewer", bwd_ratio >= 5, f"{bwd_ratio:.1f}x "
             f"(end-to-end incl. forward {e2e:.2f}x)"),
        _bar("partial 0.1: <= 1.5 points lost", loss <= 1.5, f"{-loss:+.1f} points vs full"),
    ]
    title = (f"From scratch: mnist-cnn on mnist (4,000 train / 1,000 test), {epochs} epochs, "
             "batch 32, standardized SGD lr 0.01 (the paper's update, all precisions), seed 0")
    return f"{title}\n\n" + "\n".join(rows), bars


def _bar(name: str, ok: bool, detail: str) -> str:
    return f"| {name} | {detail} | {'met' if ok else 'NOT met'} |"


def pretrained(ds, epochs: int):
    g = zoo.build("mnist-cnn", seed=0)
    pretrain(g, ds, PretrainConfig(epochs=epochs, batch=32, lr=0.05, schedule="cosine"))
    return g


def transfer(g, ds, drift: str, epochs: int, lr: float):
    target = data.drift.apply(ds, [drift], seed=0)
    out = {}
    for name, precision, policy in (("float32", "float32", "last-2"), ("int8", "int8", "last-2"),
                                    ("partial", "int8", "partial-last-2")):
        cfg = FQTConfig(precision, policy=policy, epochs=epochs, lr=lr, batch=32)
        out[name] = fit(g, target, cfg)
        log(f"transfer {drift} {name}: {pct(out[name].test_accuracy_before)} -> "
            f"{pct(out[name].test_accuracy)}")
    return out


def transfer_rows(drift: str, res) -> tuple[str, float, str]:
    f, q, p = res["float32"], res["int8"], res["partial"]
    gain_f = f.test_accuracy - f.test_accuracy_before
    gain_q = q.test_accuracy - q.test_accuracy_before
    ratio = gain_q / gain_f if gain_f > 0 else float("nan")
    fewer = backward_macs(q) / backward_macs(p)  # partial vs full int8
    change = p.test_accuracy - q.test_accuracy
    row = (f"| {drift} | {pct(f.test_accuracy_before)} -> {pct(f.test_accuracy)} | "
           f"{pct(q.test_accuracy_before)} -> {pct(q.test_accuracy)} | {100 * ratio:.0f} % | "
           f"{pct(p.test_accuracy)} ({100 * change:+.1f}), backward MACs {fewer:.1f}x fewer |")
    return row, ratio, _bar(f"transfer ({drift}): partial 0.1 vs full int8",
                            fewer >= 5 and -change <= 0.015,
                            f"{fewer:.1f}x fewer backward MACs, {100 * change:+.1f} points vs full")


def speed(batch: int, steps: int, repeats: int,
          numerics: str = "default") -> tuple[float, float]:
    """Median samples/s of int8 training and PyTorch float32 training (one thread each)."""
    import torch
    from threadpoolctl import threadpool_limits

    from edgetrain.io.torch_bridge import to_torch

    g = zoo.build("mnist-cnn", seed=0)
    rng = np.random.default_rng(0)
    batches = [(rng.random((batch, *g.input_shape)).astype(np.float32),
                rng.integers(0, g.num_classes, batch)) for _ in range(steps)]
    trainer = Trainer(quantize(g, batches[0][0], numerics), Policy(), "int8", lr=0.01)
    module = to_torch(g).train()
    opt = torch.optim.SGD(module.parameters(), lr=0.01)
    tdata = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def run_int8():
        for x, y in batches:
            trainer.step(x, y)

    def run_torch():
        for x, y in tdata:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(module(x), y).backward()
            opt.step()

    torch.set_num_threads(1)
    times: dict[str, list[float]] = {"int8": [], "torch": []}
    with threadpool_limits(limits=1):
        for _ in range(repeats + 1):  # the first round warms up
            for name, fn in (("int8", run_int8), ("torch", run_torch)):
                start = time.perf_counter()
                fn()
                times[name].append(batch * steps / (time.perf_counter() - start))
    return statistics.median(times["int8"][1:]), statistics.median(times["torch"][1:])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--pretrain-epochs", type=int, default=6)
    p.add_argument("--transfer-epochs", type=int, default=3)
    p.add_argument("--drifts", nargs="+", default=["rotate:45", "invert"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--ablation", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the numerics ablation (one change at a time)")
    p.add_argument("--out", default="BENCHMARKS.md")
    p.add_argument("--only", choices=["speed"],
                   help="run only this part and print it (BENCHMARKS.md is left as it is)")
    args = p.parse_args(argv)
    keep_freed_memory()  # as the CLI does; process-wide, so PyTorch gets it too
    if args.only == "speed":
        int8_sps, torch_sps = speed(32, 10, args.repeats)
        print(f"int8 {int8_sps:.0f} samples/s, PyTorch {torch_sps:.0f} samples/s "
              f"({torch_sps / int8_sps:.2f}x)")
        return 0
    ds = data.load("mnist")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        res = scratch(ds, args.epochs, args.lr)
        table, bars = scratch_table(res, args.epochs, reference_float(ds, args.epochs))
        rows = []
        source = pretrained(ds, args.pretrain_epochs)
        for drift in args.drifts:
            row, ratio, partial_bar = transfer_rows(drift, transfer(
                source, ds, drift, args.transfer_epochs, args.lr))
            rows.append(row)
            bars.append(_bar(f"transfer ({drift}): int8 gain >= 90 % of float32 gain",
                             ratio >= 0.9, f"{100 * ratio:.0f} %"))
            bars.append(partial_bar)
        ablation_rows = ablation(ds, args.epochs, args.lr) if args.ablation else []
    int8_sps, torch_sps = speed(32, 10, args.repeats)
    bars.append(_bar("host speed: int8 within 3x of PyTorch float32",
                     torch_sps / int8_sps <= 3, f"int8 {int8_sps:.0f} samples/s, PyTorch "
                     f"{torch_sps:.0f} samples/s ({torch_sps / int8_sps:.2f}x)"))
    cmd = "    .venv/bin/python bench/fqt.py " + " ".join(argv or sys.argv[1:])
    md = "\n\n".join([
        "## fqt: fully quantized training (Deutel et al. 2024)", f"Command:\n\n{cmd}",
        (f"Machine: {machine_summary()}; one thread for numpy BLAS and PyTorch; glibc heap "
         "kept between steps (engine.heap.keep_freed_memory, as the CLI) for both."), table,
        f"Transfer: mnist-cnn pre-trained in float32 on mnist ({args.pretrain_epochs} epochs),"
        f" then the last 2 layers adapted on the drifted domain for {args.transfer_epochs} "
        "epochs (int8: quantized first, calibration on the new domain)\n\n"
        "| drift | float32 fine-tuning | int8 adaptation | int8 gain / float32 gain | "
        "int8 partial-last-2, lambda_min 0.1 (vs int8) |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows),
        *([f"Which change closes the gap (int8 from scratch, {args.epochs} epochs, one change "
           "to the paper's numerics at a time)\n\n" + "\n".join(ablation_rows)]
          if ablation_rows else []),
        "Bars\n\n| bar | measured | |\n|---|---|---|\n" + "\n".join(bars), PAPER])
    update_section("fqt", md, args.out)
    log(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
