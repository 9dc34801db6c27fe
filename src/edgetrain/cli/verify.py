"""`edgetrain verify DIR --target T --steps N`: build the exported project, run N training
steps in C (host, or Cortex-M under QEMU) and in the Python int8 engine on the same data,
and compare every output, error, updated weight and scale of every step. int8 projects must
be bit-exact; mixed and float32 ones must agree within the stated tolerance (docs/deploy.md).
Exit code 0 when they do, 1 on a mismatch (the first one is named), 2 on bad input."""

from __future__ import annotations

import argparse
import sys

from edgetrain.cli.common import print_json
from edgetrain.export.toolchains import TARGETS
from edgetrain.export.verify import verify


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", metavar="DIR", help="a folder written by 'edgetrain export'")
    parser.add_argument("--target", default="host", choices=list(TARGETS),
                        help="where the C runs (cross targets under QEMU)")
    parser.add_argument("--steps", type=int, default=10, help="training steps (default 10)")
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="seconds allowed for one run of the C program")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _progress(steps: int):
    def report(step: int) -> None:
        if sys.stderr.isatty():
            print(f"\rpython engine: step {step + 1}/{steps}", end="", file=sys.stderr)
    return report


def _agreement(r) -> str:
    if r.bit_exact:
        return "bit-exact"
    if r.precision != "int8" and r.within_tolerance:
        worst = ", ".join(f"{k} {r.max_rel_error[k]:.1e}" for k in sorted(r.max_rel_error)
                          if r.max_rel_error[k] > 0)
        return f"{r.precision}: within tolerance (largest relative differences: {worst})"
    return f"{len(r.mismatches)} mismatching tensors"


def _summary(r) -> list[str]:
    lines = [f"{r.target}: {r.steps} steps x batch {r.batch}, {r.compared_tensors} tensors "
             f"compared: " + _agreement(r)]
    if r.mismatches:
        lines.append("  first mismatch: " + r.mismatches[0].describe())
    if r.instructions_per_sample is not None:
        lines.append(f"  measured in QEMU: {r.instructions_per_sample:,.0f} instructions per "
                     f"sample ({r.macs_per_sample:,} MACs: {r.instructions_per_mac:.2f} "
                     "instructions per MAC)")
    if r.fits is False:
        lines.append(f"  does NOT fit the device: {r.fit_error}")
    if r.ram_bytes is not None:
        lines.append(f"  model ELF: RAM (.data + .bss) {r.ram_bytes:,} B, flash "
                     f"{r.flash_bytes:,} B")
    return lines


def run(args: argparse.Namespace) -> int:
    result = verify(args.project, args.target, args.steps, args.timeout, _progress(args.steps))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        print_json(result.to_dict())
    else:
        print("\n".join(_summary(result)))
    return 0 if result.bit_exact or result.within_tolerance else 1
