"""`edgetrain bench`: datasets x precisions x policies (accuracy, peak RAM, flash, MACs per
phase, host samples/s, QEMU instructions when installed), PyTorch float32 side by side, the
paper's numbers quoted; writes the section "bench" of BENCHMARKS.md (with this command and
the machine). --quick: two small datasets, under 5 minutes."""

from __future__ import annotations

import argparse
import shlex
import sys

from edgetrain.bench import BenchConfig, run_bench, section
from edgetrain.bench.suite import POLICIES, PRECISIONS
from edgetrain.cli.common import print_json
from edgetrain.demo.recipes import names as dataset_names
from edgetrain.report.benchmarks import update_section

SECTION = "bench"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="two small datasets, reduced step sizes (under 5 minutes)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", default="BENCHMARKS.md", metavar="FILE",
                        help="the benchmarks file whose 'bench' section is written "
                             "(default BENCHMARKS.md)")
    parser.add_argument("--no-write", action="store_true", help="do not write --out")
    parser.add_argument("--data", nargs="+", default=None, metavar="NAME",
                        help=f"datasets ({', '.join(dataset_names())}; default: all, "
                             "--quick: digits basic-motions)")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS),
                        metavar="P", help="int8 mixed float32 (default all)")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), metavar="POLICY",
                        help=f"default: {' '.join(POLICIES)}")
    parser.add_argument("--device", default="nrf52840", help="device for RAM/flash and QEMU")
    parser.add_argument("--no-qemu", action="store_true", help="skip QEMU measurements")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (options left at their defaults omitted)."""
    parts = ["edgetrain", "bench"] + (["--quick"] if args.quick else [])
    if args.data:
        parts += ["--data", *args.data]
    for flag, value, default in (("--precisions", args.precisions, list(PRECISIONS)),
                                 ("--policies", args.policies, list(POLICIES))):
        if value != default:
            parts += [flag, *value]
    if args.device != "nrf52840":
        parts += ["--device", args.device]
    parts += [f for f, on in (("--no-qemu", args.no_qemu), ("--no-torch", args.no_torch))
              if on]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    config = BenchConfig(args.quick, tuple(args.data) if args.data else None,
                         tuple(args.precisions), tuple(args.policies), args.device,
                         not args.no_qemu, not args.no_torch)
    results = run_bench(config, lambda text: print(text, file=sys.stderr, flush=True))
    markdown = section(results, command_line(args))
    if not args.no_write:
        path = update_section(SECTION, markdown, args.out)
        print(f"wrote section '{SECTION}' of {path}", file=sys.stderr)
    if args.json:
        print_json(results)
    else:
        print(markdown)
    return 0
