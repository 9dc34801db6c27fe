"""`edgetrain demo`: pre-train, quantize, plan, shift the domain, train on the device in int8
with dynamic partial updates, export C and verify it bit-exact, and write a report folder
(report.md, report.html, results.json, PNG plots). Offline; a few minutes on 2 cores
(--quick: about one)."""

from __future__ import annotations

import argparse
import sys

from edgetrain.cli.common import out_dir
from edgetrain.cli.progress import ProgressBar
from edgetrain.demo import DemoConfig, Reporter, run_demo
from edgetrain.demo.recipes import names as recipe_names
from edgetrain.memory import devices


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="nrf52840",
                        help=f"target device ({', '.join(devices.names())}; default nrf52840)")
    parser.add_argument("--data", default="mnist",
                        help=f"dataset ({', '.join(recipe_names())}; default mnist); the model "
                             "and the drift are chosen per dataset")
    parser.add_argument("--out", default="runs/demo", metavar="DIR",
                        help="report folder (default runs/demo)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller step sizes (about a minute)")
    parser.add_argument("--ram-budget", type=float, default=None, metavar="KB",
                        help="RAM for training in KiB (default: the device's SRAM)")
    parser.add_argument("--no-qemu", action="store_true",
                        help="verify on the host only, even when QEMU is installed")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")


class StderrReporter(Reporter):
    """Step titles, results and progress bars on stderr."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.bar = ProgressBar(self.stream)

    def step(self, index: int, total: int, title: str) -> None:
        print(f"\n[{index}/{total}] {title}", file=self.stream, flush=True)

    def info(self, text: str) -> None:
        print(f"  {text}", file=self.stream, flush=True)

    def progress(self, p) -> None:
        self.bar(p)


def run(args: argparse.Namespace) -> int:
    budget = None if args.ram_budget is None else int(args.ram_budget * 1024)
    config = DemoConfig(args.device, args.data, str(out_dir(args.out)), args.quick, budget,
                        args.seed, not args.no_qemu)
    res = run_demo(config, StderrReporter())
    a = res["adaptation"]
    print(f"accuracy {100 * res['drift']['int8_source']:.1f} % -> shift "
          f"{100 * res['drift']['int8_target']:.1f} % -> on-device int8 "
          f"{100 * a['accuracy_after']:.1f} %; bit_exact: {str(res['bit_exact']).lower()}; "
          f"report {args.out}/report.html")
    return 0
