"""`edgetrain devices [--devices FILE] [--json]`: the device catalogue."""

from __future__ import annotations

import argparse
import json

from edgetrain.memory import devices


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", metavar="FILE", action="append", default=[],
                        help="a TOML file with more [cores.NAME]/[devices.NAME] (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def table(rows: list[devices.Device]) -> str:
    """The catalogue as an aligned text table."""
    head = ("device", "core", "SRAM KiB", "flash KiB", "MHz", "FPU", "DSP", "QEMU board")
    body = [(d.name, d.core.name, str(d.sram_bytes // 1024), str(d.flash_bytes // 1024),
             f"{d.clock_mhz:g}", "yes" if d.fpu else "no", "yes" if d.dsp else "no",
             d.qemu_board or "-") for d in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [head, *body])


def run(args: argparse.Namespace) -> int:
    catalogue = devices.catalogue(args.devices)
    rows = [catalogue[name] for name in sorted(catalogue)]
    if args.json:
        print(json.dumps([d.to_dict() for d in rows], indent=2))
    else:
        print(table(rows))
    return 0
