"""Generated C vs the Python int8 engine on every zoo model x policy, on the host and on an
emulated Cortex-M4: bit-exactness over N training steps (every traced tensor of every step),
instructions per sample and per MAC measured in QEMU (with and without the DSP inner
loops), and the RAM of the model ELF against the memory planner's prediction.
Writes the BENCHMARKS.md section "export".

Bars (issue 5): every zoo model x {full, last-N, bias-only, partial} bit-exact for 100 steps
on host and cortex-m4; ELF RAM (.data + .bss) within 5 % of the planner's prediction;
instructions per MAC of a whole training step on cortex-m4 (target <= 3).

    .venv/bin/python bench/export.py [--steps 100] [--device imxrt1062] [--models a,b]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgetrain import data, zoo
from edgetrain.export.exporter import export_project
from edgetrain.export.toolchains import available, target
from edgetrain.export.verify import build, run_program, verify
from edgetrain.memory.plan import plan
from edgetrain.memory.runtime import STACK_RESERVE_BYTES
from edgetrain.report.benchmarks import machine_summary, update_section

POLICIES = ("full", "last-2", "bias-only", "partial")
RAM_BAR = 0.05
IPM_BAR = 3.0


@dataclass
class Row:
    model: str
    policy: str
    host_exact: bool
    m4_exact: bool | None
    tensors: int
    ipm: float | None
    ipm_plain: float | None
    ips: float | None
    macs: int
    elf_ram: int | None
    model_ram: int
    plan_ram: int
    flash: int | None
    fits: bool | None
    seconds: float
    runtime_ram: int = 0  # of plan_ram: the C program's descriptors and fixed statics
    batch_exact: bool | None = None  # cortex-m4 at the larger batch
    batch_ipm: float | None = None
    batch_elf_ram: int | None = None
    batch_plan_ram: int | None = None
    stack: int | None = None  # cortex-m4 stack high-water mark, batch 1

    @property
    def gap(self) -> float:
        """ELF RAM vs the plan; without the cross toolchain, the emitted model RAM plus the
        planner's runtime RAM stands for the ELF."""
        ram = self.elf_ram if self.elf_ram is not None else self.model_ram + self.runtime_ram
        return _gap(ram, self.plan_ram)

    @property
    def batch_gap(self) -> float | None:
        return _gap(self.batch_elf_ram, self.batch_plan_ram)


def _gap(ram: int | None, planned: int | None) -> float | None:
    """(measured RAM - planner's peak RAM) / planner's peak RAM, None when not measured."""
    return None if ram is None or not planned else (ram - planned) / planned


def _export(model: str, device: str, out: Path, **options):
    """The zoo model, exported (quantized on its default dataset when int8/mixed)."""
    info = zoo.info(model)
    graph = zoo.build(model)
    ds = data.load(info.default_dataset)
    return graph, export_project(graph, device, out, calibration=ds.x_train,
                                 dataset=info.default_dataset, **options)


def run_case(model: str, policy: str, device: str, steps: int, cross: bool,
             batch: int = 0, batch_steps: int = 10) -> Row:
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        graph, out = _export(model, device, Path(tmp) / "p", policy=policy)
        host = verify(out.path, "host", steps)
        m4 = plain = None
        if cross:
            m4 = verify(out.path, "cortex-m4", steps)
            plain = _plain_ipm(out.path, steps, m4.macs_per_sample)
        p = plan(graph, device, policy, "int8", batch=1)
        m = out.manifest
        b_exact = b_ipm = b_ram = b_plan = None
        if cross and batch > 1:
            _, big = _export(model, device, Path(tmp) / "b", policy=policy, batch=batch)
            res = verify(big.path, "cortex-m4", batch_steps)
            b_exact, b_ipm, b_ram = res.bit_exact, res.instructions_per_mac, res.ram_bytes
            b_plan = plan(graph, device, policy, "int8", batch=batch).peak_ram_bytes
        return Row(model, policy, host.bit_exact, m4.bit_exact if m4 else None,
                   host.compared_tensors, m4.instructions_per_mac if m4 else None, plain,
                   m4.instructions_per_sample if m4 else None, host.macs_per_sample,
                   m4.ram_bytes if m4 else None, m["arena_bytes"] + m["state_bytes"],
                   p.peak_ram_bytes, m4.flash_bytes if m4 else None, m4.fits if m4 else None,
                   time.time() - t0, p.runtime_ram_bytes, b_exact, b_ipm, b_ram, b_plan,
                   m4.stack_bytes if m4 else None)


@dataclass
class FloatRow:
    model: str
    policy: str
    precision: str
    host_ok: bool
    m4_ok: bool | None
    worst_rel: float
    worst_kind: str
    flips: int
    ipm: float | None
    ips: float | None
    int8_ips: float | None
    elf_ram: int | None
    plan_ram: int

    @property
    def gap(self) -> float | None:
        return _gap(self.elf_ram, self.plan_ram)


def run_float_case(model: str, policy: str, precision: str, device: str, steps: int,
                   cross: bool, int8_ips: float | None) -> FloatRow:
    """A mixed/float32 export: within tolerance on host and cortex-m4, its instructions and
    ELF RAM against the plan of the same precision."""
    with tempfile.TemporaryDirectory() as tmp:
        graph, out = _export(model, device, Path(tmp) / "p", policy=policy, precision=precision)
        host = verify(out.path, "host", steps)
        m4 = verify(out.path, "cortex-m4", steps) if cross else None
    kind, worst = max(host.max_rel_error.items(), key=lambda kv: kv[1], default=("-", 0.0))
    return FloatRow(model, policy, precision, host.within_tolerance,
                    m4.within_tolerance if m4 else None, worst, kind,
                    sum(host.flipped_elements.values()),
                    m4.instructions_per_mac if m4 else None,
                    m4.instructions_per_sample if m4 else None, int8_ips,
                    m4.ram_bytes if m4 else None,
                    plan(graph, device, policy, precision, batch=1).peak_ram_bytes)


def float_markdown(rows: list[FloatRow], args) -> str:
    lines = ["", (f"Mixed and float32 exports (`--precision`; policy full, {args.float_steps} "
                  "steps per target, each step compared from the C program's own state within "
                  "the tolerances of docs/deploy.md). Worst difference: the host run's largest "
                  "difference relative to the tensor's largest magnitude, and its tensor kind "
                  "(one int8 code of a weight is 1/127 = 7.9e-3; a flip is an element past the "
                  "rounding bound where a ReLU mask or max-pool arg max went the other way, "
                  "which the tolerance allows in errors). Insn/sample vs the int8 export's "
                  "(table above)."), "",
             ("| model | precision | host | cortex-m4 | worst rel. difference | flips | "
              "insn/MAC M4 | insn/sample | vs int8 | ELF RAM | planner RAM | gap |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ok = {True: "within", False: "OUT", None: "-"}
    for r in rows:
        ratio = r.ips / r.int8_ips if r.ips and r.int8_ips else None
        lines.append(
            f"| {r.model} | {r.precision} | {ok[r.host_ok]} | {ok[r.m4_ok]} | "
            f"{r.worst_rel:.1e} ({r.worst_kind}) | {r.flips} | {fmt(r.ipm)} | {fmt(r.ips, '{:,.0f}')} | "
            f"{fmt(ratio, '{:.1f}x')} | {fmt(r.elf_ram, '{:,}')} | {r.plan_ram:,} | "
            f"{fmt(r.gap and 100 * r.gap, '{:+.2f} %')} |")
    return "\n".join(lines)


def _plain_ipm(project: Path, steps: int, macs: int | None) -> float | None:
    """Instructions per MAC of the same steps built with -DET_NO_SIMD (plain C loops)."""
    t = target("cortex-m4")
    shutil.rmtree(project / "build" / t.name, ignore_errors=True)
    build(project, t, "test", "-DET_NO_SIMD")
    res = run_program(project, t, "et_bench", 1200, count=True)
    shutil.rmtree(project / "build" / t.name, ignore_errors=True)
    if res.measured_instructions is None or not macs:
        return None
    return res.measured_instructions / steps / macs


def _exact(v: bool | None) -> str:
    return "-" if v is None else ("exact" if v else "MISMATCH")


def fmt(v, spec="{:.2f}") -> str:
    return "-" if v is None else spec.format(v)


def markdown(rows: list[Row], args, cross: bool) -> str:
    lines = [(f"Command: `.venv/bin/python bench/export.py --steps {args.steps} --device "
             f"{args.device} --batch {args.batch} --batch-steps {args.batch_steps}`  "), f"Machine: {machine_summary()}", "",
             (f"Each case: the zoo model quantized (numerics `default`), exported for "
             f"`{args.device}`, then {args.steps} training steps (batch 1) of the C program "
             "compared with `engine.int8.Trainer` tensor by tensor at every step (outputs, "
             "errors, updated weights and biases, all scales and zero points). Instructions "
             "are *measured* by the project's QEMU plugin over whole training steps "
             "(`et_bench`, no trace); MACs are those the Python engine executed "
             "(forward + backward error + weight gradient). RAM: ELF RAM, .data + .bss of the "
             "model-only program `et_deploy` (no semihosting, stdio or heap; the 8 KB stack is "
             "reserved apart), against the planner's `peak_ram_bytes`, which includes "
             "`runtime_ram_bytes` (the C descriptors and the fixed C library/runtime statics, "
             "`edgetrain.memory.runtime`); model RAM is the generated code's arena + "
             "parameters + trackers."),
             (f"Batch {args.batch}: the same case exported with `--batch {args.batch}` and "
              f"verified on cortex-m4 for {args.batch_steps} steps (one update per batch, so the "
              "update's per-weight work is shared by the batch's samples)."), "",
             ("| model | policy | host | cortex-m4 | tensors | insn/MAC M4 (DSP) | insn/MAC "
              f"plain C | insn/sample | batch {args.batch} M4 | insn/MAC batch {args.batch} | "
              "model RAM | planner RAM | ELF RAM | gap | flash | fits | "
              f"ELF RAM batch {args.batch} | planner batch {args.batch} | gap | stack |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.policy} | {'exact' if r.host_exact else 'MISMATCH'} | "
            f"{'-' if r.m4_exact is None else ('exact' if r.m4_exact else 'MISMATCH')} | "
            f"{r.tensors} | {fmt(r.ipm)} | {fmt(r.ipm_plain)} | {fmt(r.ips, '{:,.0f}')} | "
            f"{_exact(r.batch_exact)} | {fmt(r.batch_ipm)} | "
            f"{r.model_ram:,} | {r.plan_ram:,} | {fmt(r.elf_ram, '{:,}')} | "
            f"{100 * r.gap:+.2f} % | {fmt(r.flash, '{:,}')} | {fmt(r.fits, '{}')} | "
            f"{fmt(r.batch_elf_ram, '{:,}')} | {fmt(r.batch_plan_ram, '{:,}')} | "
            f"{fmt(r.batch_gap and 100 * r.batch_gap, '{:+.2f} %')} | "
            f"{fmt(r.stack, '{:,}')} |")
    exact = all(r.host_exact and r.m4_exact is not False and r.batch_exact is not False
                for r in rows)
    ram_ok = sum(abs(r.gap) <= RAM_BAR for r in rows)
    batch_gaps = [r.batch_gap for r in rows if r.batch_gap is not None]
    ipm = [r.ipm for r in rows if r.ipm is not None]
    lines += ["", ("Where the RAM gap comes from: the planner models the C runtime's own "
                   "buffers by the rule the emitter uses (`edgetrain.memory.runtime`: conv "
                   "scratch, per-layer sums, update scratch, 12-byte trackers, gradient "
                   "statistics, the observation queue; at batch B the batch-major buffers "
                   "of the C step), so the arenas are equal to the byte, and the C program's "
                   "descriptors and fixed statics (measured by tests/cross/test_deploy_ram.py); "
                   "the plan is a few bytes above the ELF because it rounds every state "
                   "buffer up to 8 bytes. `export.json` lists every buffer with its offset."),
              "", (f"- Bit-exact: {'all' if exact else 'NOT all'} {len(rows)} cases "
              f"({'host and cortex-m4' if cross else 'host only: cross toolchain missing'})."),
              (f"- ELF RAM within {RAM_BAR:.0%} of the planner: {ram_ok} of {len(rows)} cases "
               f"(gap {100 * min(r.gap for r in rows):+.2f} % to "
               f"{100 * max(r.gap for r in rows):+.2f} %)"
               + (f"; at batch {args.batch}: {sum(abs(g) <= RAM_BAR for g in batch_gaps)} of "
                  f"{len(batch_gaps)}." if batch_gaps else ".")),
              (f"- Instructions per MAC on cortex-m4: {min(ipm):.2f} to {max(ipm):.2f} "
               f"(target <= {IPM_BAR:g}); {sum(v <= IPM_BAR for v in ipm)} of {len(ipm)} cases "
               "meet it at batch 1." if ipm else "- Instructions per MAC: not measured.")]
    stacks = [r.stack for r in rows if r.stack is not None]
    if stacks:
        lines.append(f"- Stack high-water mark on cortex-m4 (painted stack, `et_bench`): "
                     f"{min(stacks):,} to {max(stacks):,} bytes; within the "
                     f"{STACK_RESERVE_BYTES:,}-byte reservation in "
                     f"{sum(v <= STACK_RESERVE_BYTES for v in stacks)} of {len(stacks)} cases.")
    bipm = [r.batch_ipm for r in rows if r.batch_ipm is not None]
    if bipm:
        lines.append(f"- At batch {args.batch}: {min(bipm):.2f} to {max(bipm):.2f} instructions "
                     f"per MAC; {sum(v <= IPM_BAR for v in bipm)} of {len(bipm)} cases <= "
                     f"{IPM_BAR:g}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--device", default="imxrt1062")
    ap.add_argument("--models", default=",".join(zoo.names()))
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--batch", type=int, default=8, help="second export at this batch (0: none)")
    ap.add_argument("--batch-steps", type=int, default=10)
    ap.add_argument("--float-precisions", default="mixed,float32",
                    help="also export these precisions (policy full); '' for none")
    ap.add_argument("--float-steps", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    cross = available("cortex-m4")[0]
    rows = []
    for model in args.models.split(","):
        for policy in args.policies.split(","):
            rows.append(run_case(model, policy, args.device, args.steps, cross, args.batch,
                                 args.batch_steps))
            r = rows[-1]
            print(f"{model:14s} {policy:10s} host {r.host_exact} m4 {r.m4_exact} "
                  f"ipm {fmt(r.ipm)} plain {fmt(r.ipm_plain)} batch {_exact(r.batch_exact)} "
                  f"ipm {fmt(r.batch_ipm)} ram {r.model_ram} plan "
                  f"{r.plan_ram} ({100 * r.gap:+.1f} %) {r.seconds:.0f}s", flush=True)
    text = markdown(rows, args, cross)
    int8_ips = {r.model: r.ips for r in rows if r.policy == "full"}
    floats = [run_float_case(m, "full", prec, args.device, args.float_steps, cross,
                             int8_ips.get(m))
              for m in args.models.split(",") for prec in args.float_precisions.split(",")
              if prec]
    if floats:
        text += "\n" + float_markdown(floats, args)
    print(text)
    if not args.no_write:
        update_section("export", text)
    floats_ok = all(r.host_ok and r.m4_ok is not False for r in floats)
    return 0 if floats_ok and all(r.host_exact and r.m4_exact is not False
                                  and r.batch_exact is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
