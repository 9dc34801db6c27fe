"""Memory planner bars: arena against the liveness lower bound on every zoo model x policy x
precision, the saving of operator reordering (Lin et al. 2022), and the planning time.
Writes the BENCHMARKS.md section "planner".

Bars (issue 4): arena <= 1.10 x lower bound in every case (default planner; TFLite Micro's
size order is reported beside it); operator reordering lowers peak RAM against
accumulate-then-update on mbednet; planning any zoo model takes under 1 s.

    .venv/bin/python bench/planner.py [--device nrf52840] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

from edgetrain import zoo
from edgetrain.memory.plan import PlanConfig, plan
from edgetrain.report.benchmarks import machine_summary, update_section

PRECISIONS = ("int8", "mixed", "float32")
BAR_GAP = 1.10
BAR_SECONDS = 1.0


@dataclass(frozen=True)
class Case:
    model: str
    policy: str
    precision: str
    arena: int
    lower_bound: int
    arena_tflm_order: int
    peak_ram: int
    trainable_params: int

    @property
    def gap(self) -> float:
        return self.arena / self.lower_bound - 1 if self.lower_bound else 0.0

    @property
    def gap_tflm(self) -> float:
        return self.arena_tflm_order / self.lower_bound - 1 if self.lower_bound else 0.0


def policies(graph) -> list[str]:
    n = len(graph.weight_nodes())
    picks = dict.fromkeys(["full", f"last-{max(1, n // 2)}", "last-2", "last-1", "bias-only",
                           "partial", "partial-last-2"])
    return [p for p in picks if not p.startswith("last-") or int(p[5:]) <= n]


def measure_case(graph, model, policy, precision, device) -> Case:
    best = plan(graph, device, policy, config=PlanConfig(precision=precision))
    tflm = plan(graph, device, policy, config=PlanConfig(precision=precision, planner="greedy"))
    return Case(model, best.policy.name, precision, best.arena_bytes, best.lower_bound_bytes,
                tflm.arena_bytes, best.peak_ram_bytes, best.trainable_params)


def planning_seconds(graph, device, repeats: int) -> float:
    """Median wall time of planning full training (int8), the largest schedule."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan(graph, device, "full", "int8")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def reorder_rows(device) -> list[tuple]:
    """(model, policy, peak reordered, peak accumulate-then-update, saving %) at batch 1."""
    rows = []
    for model in zoo.names():
        g = zoo.build(model)
        for policy in ("full", "last-2"):
            on = plan(g, device, policy, config=PlanConfig(reorder=True)).peak_ram_bytes
            off = plan(g, device, policy, config=PlanConfig(reorder=False)).peak_ram_bytes
            rows.append((model, policy, on, off, 100.0 * (off - on) / off))
    return rows


def gap_table(cases: list[Case]) -> list[str]:
    head = ("| model | policy | precision | lower bound B | arena B | gap | TFLM order arena B "
            "| TFLM gap | peak RAM B | trained params |")
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cases:
        lines.append(f"| {c.model} | {c.policy} | {c.precision} | {c.lower_bound:,} | "
                     f"{c.arena:,} | {100 * c.gap:.2f} % | {c.arena_tflm_order:,} | "
                     f"{100 * c.gap_tflm:.2f} % | {c.peak_ram:,} | {c.trainable_params:,} |")
    return lines


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def summary(cases, mbed, seconds) -> list[str]:
    """The three bars, one line each."""
    worst = max(cases, key=lambda c: c.gap)
    tflm = max(cases, key=lambda c: c.gap_tflm)
    times = ", ".join(f"{m} {1000 * t:.1f} ms" for m, t in seconds.items())
    gap_line = (f"- Arena vs liveness lower bound, {len(cases)} cases (zoo model x policy x "
                f"precision): worst gap {100 * worst.gap:.2f} % ({worst.model}, {worst.policy}, "
                f"{worst.precision}); bar <= {100 * (BAR_GAP - 1):.0f} %: "
                f"{verdict(worst.gap <= BAR_GAP - 1)}. TFLite Micro's size order alone: worst "
                f"{100 * tflm.gap_tflm:.2f} % ({tflm.model}, {tflm.policy}, {tflm.precision}).")
    reorder_line = (f"- Operator reordering on mbednet (full, int8, batch 1): peak RAM "
                    f"{mbed[2]:,} B vs {mbed[3]:,} B accumulate-then-update, saving "
                    f"{mbed[4]:.1f} %: {verdict(mbed[2] < mbed[3])}.")
    time_line = (f"- Planning time (full training, int8, median): {times}; bar < "
                 f"{BAR_SECONDS:.0f} s: {verdict(max(seconds.values()) < BAR_SECONDS)}.")
    return [gap_line, reorder_line, time_line]


def report(cases, reorder, seconds, device, command) -> tuple[str, bool]:
    mbed = next(r for r in reorder if r[0] == "mbednet" and r[1] == "full")
    ok = (max(c.gap for c in cases) <= BAR_GAP - 1 and mbed[2] < mbed[3]
          and max(seconds.values()) < BAR_SECONDS)
    lines = [
        "## Memory planner", "",
        f"Command: `{command}`  ", f"Machine: {machine_summary()}  ",
        f"Device for the plans: {device} (placement does not depend on it).", "",
        *summary(cases, mbed, seconds),
        "", "### Operator reordering (batch 1, int8)", "",
        "| model | policy | peak RAM reordered B | peak RAM accumulate-then-update B | saving |",
        "|---|---|---:|---:|---:|",
        *[f"| {m} | {p} | {on:,} | {off:,} | {s:.1f} % |" for m, p, on, off, s in reorder],
        "", "### Arena vs lower bound per case", "", *gap_table(cases),
    ]
    return "\n".join(lines), ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="nrf52840")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--output", default="BENCHMARKS.md")
    args = ap.parse_args(argv)
    cases, seconds = [], {}
    for model in zoo.names():
        g = zoo.build(model)
        seconds[model] = planning_seconds(g, args.device, args.repeats)
        for policy in policies(g):
            for precision in PRECISIONS:
                cases.append(measure_case(g, model, policy, precision, args.device))
        print(f"{model}: {len(policies(g)) * len(PRECISIONS)} cases, "
              f"{1000 * seconds[model]:.1f} ms per plan", file=sys.stderr)
    command = "python bench/planner.py " + " ".join(argv if argv is not None else sys.argv[1:])
    markdown, ok = report(cases, reorder_rows(args.device), seconds, args.device,
                          command.strip())
    update_section("planner", markdown, args.output)
    print(markdown)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
