"""Where the instructions of one C training step go on an emulated Cortex-M4: a zoo model is
exported, checked bit-exact against the Python engine, then run under QEMU with the project's
instruction-count plugin in profile mode. Prints instructions per MAC of the whole step, per
function, per runtime source file, the update's instructions per trained parameter (the floor
of update-bound cases: instructions per MAC >= that cost / MACs per trained parameter), and
(--hot FUNC) the disassembly of FUNC with each address's executions per step.
A tool for kernel work on the runtime (issue 5's instructions-per-MAC bar); it writes nothing
to BENCHMARKS.md (bench/export.py measures the whole-step figures there).

    .venv/bin/python bench/profile_step.py mbednet bias-only [--batch 8] [--steps 3] \
        [--top 25] [--hot et_rows4_dsp ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from edgetrain import data, zoo
from edgetrain.export import qemu
from edgetrain.export.exporter import export_project
from edgetrain.export.sources import runtime_files, runtime_source
from edgetrain.export.toolchains import available, target
from edgetrain.export.verify import program, verify
from edgetrain.memory.plan import PlanConfig, plan

TARGET = "cortex-m4"


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=zoo.names())
    ap.add_argument("policy", help="full, last-N, bias-only, partial")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="imxrt1062")
    ap.add_argument("--top", type=int, default=25, help="functions to list")
    ap.add_argument("--hot", nargs="*", default=[], help="functions to disassemble")
    ap.add_argument("--out", default=None, help="project directory (default: a temporary one)")
    return ap.parse_args(argv)


def exported(args: argparse.Namespace, out: Path):
    info = zoo.info(args.model)
    ds = data.load(info.default_dataset)
    return export_project(zoo.build(args.model), args.device, out / "project",
                          policy=args.policy, batch=args.batch, calibration=ds.x_train,
                          dataset=info.default_dataset)


def source_of_functions() -> dict[str, str]:
    """Function name -> the runtime source defining it (a definition starts a line)."""
    define = re.compile(r"^[A-Za-z_][\w \t*]*?\b(\w+)\s*\([^;]*$", re.MULTILINE)
    return {name: f for f in runtime_files() if f.endswith(".c")
            for name in define.findall(runtime_source(f))}


def by_source(functions: list[tuple[str, int]]) -> dict[str, int]:
    """Instructions per runtime source; model.c and the C library under their own names.
    A static inline function counts where it was inlined; an assembly function where its
    name is written."""
    where, out = source_of_functions(), {}
    texts = {f: runtime_source(f) for f in runtime_files() if f.endswith(".c")}
    for name, count in functions:
        mentions = [f for f, text in texts.items() if re.search(rf"\b{name}\b", text)]
        if not name.startswith("et_"):
            src = "libc"
        else:
            src = where.get(name) or (mentions[0] if mentions else "model.c")
        out[src] = out.get(src, 0) + count
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def trained_params(args: argparse.Namespace) -> int:
    return plan(zoo.build(args.model), args.device, args.policy,
                config=PlanConfig(batch=args.batch)).trainable_params


def annotated(elf: Path, func: str, counts: dict[int, int], steps: int) -> list[str]:
    """FUNC's disassembly, each line prefixed by its executions per step."""
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    start = next((i for i, ln in enumerate(dis) if ln.endswith(f"<{func}>:")), None)
    if start is None:
        return [f"(no function {func} in {elf.name})"]
    lines = []
    for ln in dis[start + 1:]:
        if not ln.strip():
            break
        head = ln.split(":")[0].strip()
        if not head or any(ch not in "0123456789abcdef" for ch in head):  # objdump's "..." (zero fill)
            lines.append(f"{'':10} {ln}")
            continue
        lines.append(f"{counts.get(int(head, 16), 0) / steps:10.0f} {ln}")
    return lines


def main(argv: list[str]) -> int:
    args = parse(argv)
    ok, missing = available(TARGET)
    if not ok:
        print(f"cannot profile on {TARGET}: {missing}", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="et_profile_"))
    project = exported(args, out)
    check = verify(project.path, TARGET, args.steps)
    print(f"{args.model} {args.policy} batch {args.batch}: bit_exact {check.bit_exact}, "
          f"{check.instructions_per_mac:.2f} insn/MAC over {args.steps} steps")
    t = target(TARGET)
    elf = program(project.path, t, "et_bench")
    run = qemu.run_elf(elf, t.qemu_board, 900, cwd=project.path, count_instructions=True,
                       build_dir=project.path / "build", profile=True)
    macs = args.steps * args.batch * check.macs_per_sample
    functions = qemu.function_profile(elf, run)
    total = sum(c for _, c in functions)
    print("per function over the whole run (start-up included: et_reset_handler, its memset "
          "of .bss), per MAC of the steps:")
    for name, count in functions[:args.top]:
        print(f"{name:36s} {count / macs:7.3f} insn/MAC {100 * count / total:5.1f} %")
    files = by_source(functions)
    print("\nby source: " + ", ".join(f"{f} {c / macs:.3f}" for f, c in files.items())
          + " insn/MAC")
    trained = trained_params(args)
    if trained and "et_update.c" in files:
        per_weight = files["et_update.c"] / (args.steps * trained)
        print(f"update: {per_weight:.1f} insn per trained parameter per step; "
              f"{check.macs_per_sample * args.batch / trained:.2f} MACs per trained parameter "
              f"per step")
    for func in args.hot:
        print(f"\n{func} (executions per step, per address)")
        print("\n".join(annotated(elf, func, dict(run.profile), args.steps)))
    return 0 if check.bit_exact else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
