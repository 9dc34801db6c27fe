"""`edgetrain plan`: does training fit? Peak RAM, flash, MACs and a latency estimate per
layer and in total; with --search, every policy that fits and the RAM/parameters frontier.
Exit code 0 when it fits, 1 when it does not, 2 on bad input."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from edgetrain.errors import EdgetrainError, unknown
from edgetrain.ir.graph import Graph
from edgetrain.memory import devices
from edgetrain.memory.arena import PLANNERS
from edgetrain.memory.plan import Plan, PlanConfig, plan
from edgetrain.memory.schedule import OPTIMIZERS, ORDERS, PRECISIONS
from edgetrain.memory.search import SearchResult, search

SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1 << 20, "mb": 1 << 20,
              "mib": 1 << 20}


def byte_size(text: str) -> int:
    """'262144', '256K', '256KiB' or '1M' -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size in bytes (e.g. 262144 or 256K)")
    return int(m.group(1)) * SIZE_UNITS[m.group(2).lower()]


def shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a shape (e.g. 3,32,32)") from None
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a shape (e.g. 3,32,32)")
    return dims


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="zoo model name or model file (.npz)")
    parser.add_argument("--device", required=True, help="device name (see `edgetrain devices`)")
    parser.add_argument("--devices", metavar="FILE", action="append", default=[],
                        help="a TOML file with more devices (repeatable)")
    parser.add_argument("--policy", default="full",
                        help="full, last-N, bias-only, partial, partial-last-N, layers:a,b")
    parser.add_argument("--lambda-min", type=float, default=None,
                        help="lambda_min of the partial policy (default 0.1)")
    parser.add_argument("--precision", default="int8", choices=sorted(PRECISIONS))
    parser.add_argument("--batch", type=int, default=1,
                        help="samples per update (batch > 1 keeps gradient accumulators)")
    parser.add_argument("--no-reorder", action="store_true",
                        help="apply updates after the whole backward pass (batch 1)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd-std",
                        help="optimizer state to plan (default: the engine's sgd-std, SGD "
                        "with gradient standardization per row)")
    parser.add_argument("--order", choices=("auto", *ORDERS), default="auto",
                        help="per layer: error then weight gradient or the reverse "
                        "(auto: the smaller arena)")
    parser.add_argument("--planner", choices=sorted(PLANNERS), default="greedy-best",
                        help="greedy: TFLite Micro's largest-first; greedy-best: best of "
                        "four first-fit orders")
    parser.add_argument("--input-shape", type=shape, default=None,
                        help="zoo model input shape per sample, e.g. 3,32,32")
    parser.add_argument("--num-classes", type=int, default=None, help="zoo model classes")
    parser.add_argument("--search", action="store_true",
                        help="list every policy that fits, ranked by trained parameters")
    parser.add_argument("--ram-budget", type=byte_size, default=None, metavar="BYTES",
                        help="RAM budget for --search (default: the device's SRAM)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def load_model(spec: str, input_shape=None, num_classes=None) -> Graph:
    """A zoo model by name, or a float32 graph from a model file."""
    from edgetrain import zoo

    if spec in zoo.names():
        return zoo.build(spec, input_shape=input_shape, num_classes=num_classes)
    path = Path(spec)
    if not path.exists():
        if path.suffix:
            raise EdgetrainError(f"model file '{spec}' does not exist")
        raise unknown("model", spec, zoo.names())
    if input_shape is not None or num_classes is not None:
        raise EdgetrainError("--input-shape/--num-classes apply to zoo models only")
    from edgetrain.numerics.quantize import load_model

    model = load_model(path)
    return model if isinstance(model, Graph) else model.graph  # int8: BatchNorm already folded


def kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


LAYER_COLUMNS = (("layer", "node"), ("op", "op"), ("role", "role"), ("fwd MACs", "forward_macs"),
                 ("err MACs", "backward_error_macs"), ("wgrad MACs", "backward_weight_macs"),
                 ("act B", "act_bytes"), ("kept B", "kept_bytes"), ("err B", "err_bytes"),
                 ("grad B", "grad_bytes"), ("RAM B", "ram_bytes"), ("flash B", "flash_bytes"),
                 ("live B", "peak_live_bytes"))


def aligned(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def layer_table(p: Plan) -> str:
    head = tuple(h for h, _ in LAYER_COLUMNS)
    body = [tuple(f"{v:,}" if isinstance(v, int) else str(v)
                  for v in (getattr(r, k) for _, k in LAYER_COLUMNS)) for r in p.layers]
    return aligned([head, *body])


def totals(p: Plan) -> str:
    d, c = p.device, p.cost
    gap = 100.0 * (p.arena_bytes / p.lower_bound_bytes - 1) if p.lower_bound_bytes else 0.0
    verdict = "fits" if p.fits else "DOES NOT FIT"
    m = c.macs
    lines = [
        (f"peak RAM      {p.peak_ram_bytes:,} B = arena {p.arena_bytes:,} (liveness lower bound "
        f"{p.lower_bound_bytes:,}, +{gap:.1f} %) + state {p.state_bytes:,}"
        f"{f' (C runtime {p.runtime_ram_bytes:,})' if p.runtime_ram_bytes else ''}; "
        f"{f'stack {p.stack_reserved_bytes:,} reserved; ' if p.stack_reserved_bytes else ''}"
        f"SRAM {d.sram_bytes:,} B ({100 * p.peak_ram_bytes / d.sram_bytes:.0f} % used)"),
        (f"flash         {p.flash_bytes:,} B = data {p.flash_data_bytes:,} + code "
        f"{p.code_bytes_estimate:,} (estimate); flash {d.flash_bytes:,} B"),
        f"trained       {p.trainable_params:,} parameters",
        (f"MACs/sample   forward {m['forward']:,}, backward error {m['backward_error']:,}, "
        f"backward weight {m['backward_weight']:,}"),
        f"bytes moved   {c.bytes_moved:,} per sample",
        (f"latency       {c.latency_ms_estimate:,.2f} ms per sample (ESTIMATE from the "
        f"cycles-per-MAC table of {d.core.name} at {d.clock_mhz:g} MHz)"),
    ]
    if p.policy.partial:
        lines.append(f"              {c.latency_ms_estimate_best:,.2f} ms at lambda_min "
                     "(best case, ESTIMATE)")
    peak = p.peak_summary()
    live = ", ".join(f"{b['name']} {b['bytes']:,}" for b in peak["largest_live"])
    lines.append(f"arena peak    step {peak['index']} ({peak['phase']} {peak['node']}): {live}")
    lines.append(f"verdict       {verdict} on {d.name}")
    return "\n".join(lines)


def header(p: Plan) -> str:
    d = p.device
    return (f"{p.graph} on {d.name} ({d.core.name}, {kib(d.sram_bytes)} SRAM, "
            f"{kib(d.flash_bytes)} flash, {d.clock_mhz:g} MHz)\npolicy {p.policy.name}, "
            f"{p.config.precision}, batch {p.config.batch}, operator reordering "
            f"{'on' if p.schedule.config.reordered else 'off'}, backward "
            f"{p.schedule.config.order}, planner {p.planner}")


def shortfall(p: Plan, graph: Graph) -> dict:
    """By how much it misses, and the policy with the most trained parameters that fits."""
    result = search(graph, p.device, p.config.precision, batches=(p.config.batch,), lambdas=())
    best = result.fitting[0].to_dict() if result.fitting else None
    return {"ram_over_bytes": p.ram_over_bytes, "flash_over_bytes": p.flash_over_bytes,
            "would_fit": best}


def print_shortfall(info: dict) -> None:
    if info["ram_over_bytes"]:
        print(f"over SRAM by {info['ram_over_bytes']:,} B")
    if info["flash_over_bytes"]:
        print(f"over flash by {info['flash_over_bytes']:,} B")
    fit = info["would_fit"]
    if fit:
        print(f"would fit: --policy {fit['policy']} --batch {fit['batch']} "
              f"({fit['trainable_params']:,} trained parameters, peak RAM "
              f"{fit['peak_ram_bytes']:,} B)")
    else:
        print("no candidate policy fits at this precision; try --precision int8 or a "
              "larger device")


def run_plan(args: argparse.Namespace, graph: Graph, device: devices.Device) -> int:
    config = PlanConfig(precision=args.precision, batch=args.batch,
                        reorder=False if args.no_reorder else None, optimizer=args.optimizer,
                        planner=args.planner, order=args.order)
    p = plan(graph, device, args.policy, lambda_min=args.lambda_min, config=config)
    info = None if p.fits else shortfall(p, graph)
    if args.json:
        print(json.dumps({**p.to_dict(), **(info or {})}, indent=2))
    else:
        print(header(p), layer_table(p), totals(p), sep="\n\n")
        for note in p.notes:
            print(f"note: {note}")
        if info:
            print_shortfall(info)
    return 0 if p.fits else 1


def search_table(r: SearchResult) -> str:
    frontier = {(c.policy, c.batch) for c in r.frontier}
    head = ("policy", "batch", "trained params", "peak RAM B", "flash B", "ms (est.)",
            "frontier")
    body = [(c.policy, str(c.batch), f"{c.trainable_params:,}", f"{c.peak_ram_bytes:,}",
             f"{c.flash_bytes:,}", f"{c.latency_ms_estimate:,.2f}",
             "*" if (c.policy, c.batch) in frontier else "") for c in r.fitting]
    return aligned([head, *body]) if body else "(none)"


def run_search(args: argparse.Namespace, graph: Graph, device: devices.Device) -> int:
    def progress(done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\rplanning {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr)

    r = search(graph, device, args.precision, args.ram_budget,
               batches=tuple(dict.fromkeys((1, args.batch, 8))),
               lambdas=(args.lambda_min or 0.1,), on_progress=progress)
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
    else:
        print(f"{graph.name} on {device.name}, {args.precision}: {len(r.fitting)} of "
              f"{len(r.candidates)} candidates fit {r.ram_budget:,} B of RAM\n")
        print(search_table(r))
        print("\nfrontier (RAM vs trained parameters, all candidates; latency is an ESTIMATE):")
        for c in r.frontier:
            print(f"  {c.peak_ram_bytes:>10,} B  {c.trainable_params:>10,} params  "
                  f"{c.policy} batch {c.batch}{'' if c.fits else '  (over budget)'}")
    return 0 if r.fitting else 1


def run(args: argparse.Namespace) -> int:
    device = devices.get(args.device, args.devices)
    graph = load_model(args.model, args.input_shape, args.num_classes)
    if args.ram_budget is not None and not args.search:
        raise EdgetrainError("--ram-budget applies to --search")
    return (run_search if args.search else run_plan)(args, graph, device)
