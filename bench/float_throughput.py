"""Float32 training throughput: the edgetrain float engine against PyTorch 2.13 CPU.

Each zoo model is trained with SGD (momentum 0.9) on the same random batches, same batch
size, in the same process; repeats are interleaved (edgetrain, torch, edgetrain, ...) so
machine noise hits both alike, and the medians are reported. Before timing, both sides must
give the same loss on the first batch. Everything is measured twice in one process: first
with the default glibc allocator, then after ``engine.heap.keep_freed_memory()`` (which the
CLI can call at start-up; it helps both libraries). Writes the section "float-throughput"
of BENCHMARKS.md.

    .venv/bin/python bench/float_throughput.py [--batch 32] [--steps 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from edgetrain import zoo
from edgetrain.engine.float32 import loss_and_grads
from edgetrain.engine.heap import keep_freed_memory
from edgetrain.ir import Policy
from edgetrain.report.benchmarks import machine_summary, update_section
from edgetrain.train.optim import SGD

LR, MOMENTUM = 0.01, 0.9
EXTRA_SHAPES = {"mbednet": [(3, 32, 32)]}  # measured besides each model's default shape


@dataclass(frozen=True)
class Result:
    model: str
    input_shape: tuple[int, ...]
    edgetrain: float  # samples/s, median
    torch: float  # samples/s, median

    @property
    def ratio(self) -> float:
        """How many times slower edgetrain is than PyTorch (1.0 = same speed)."""
        return self.torch / self.edgetrain


def make_batches(graph, batch: int, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(batch, *graph.input_shape)).astype(np.float32),
             rng.integers(0, graph.num_classes, size=batch)) for _ in range(steps)]


def edgetrain_runner(graph, batches):
    """A function that trains one pass over `batches` with the edgetrain float engine."""
    trainable = Policy().trainable_params(graph)
    opt = SGD(LR, momentum=MOMENTUM)

    def run():
        for x, y in batches:
            _, _, grads = loss_and_grads(graph, x, y, trainable)
            opt.step(graph.params, grads)
    return run


def torch_runner(graph, batches):
    """The same training pass in PyTorch (same model, weights, data, optimizer)."""
    import torch

    from edgetrain.io.torch_bridge import to_torch

    module = to_torch(graph).train()
    opt = torch.optim.SGD(module.parameters(), lr=LR, momentum=MOMENTUM)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def run():
        for x, y in data:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(module(x), y).backward()
            opt.step()
    return run


def limit_threads(n: int):
    """Both libraries on n threads: PyTorch via set_num_threads, numpy's BLAS via
    threadpoolctl (installed with scikit-learn); a context manager restoring numpy's limit."""
    import torch

    try:
        from threadpoolctl import threadpool_limits
    except ImportError as e:
        raise SystemExit("--threads needs threadpoolctl: pip install threadpoolctl") from e
    torch.set_num_threads(n)
    return threadpool_limits(limits=n)


def check_same_loss(graph, x, y) -> None:
    """Both sides must compute the same function: equal loss on one batch (float32)."""
    import torch

    from edgetrain.io.torch_bridge import to_torch

    ours, _, _ = loss_and_grads(graph.copy(), x, y, {})
    theirs = torch.nn.functional.cross_entropy(to_torch(graph).train()(torch.from_numpy(x)),
                                               torch.from_numpy(y)).item()
    if abs(ours - theirs) > 1e-4 * max(1.0, abs(theirs)):
        raise SystemExit(f"{graph.name}: loss {ours} here vs {theirs} in PyTorch; not comparable")


def measure(name: str, shape, batch: int, steps: int, repeats: int) -> Result:
    graph = zoo.build(name, input_shape=shape, seed=0)
    batches = make_batches(graph, batch, steps)
    check_same_loss(graph, *batches[0])
    runners = {"edgetrain": edgetrain_runner(graph.copy(), batches),
               "torch": torch_runner(graph, batches)}
    times = {k: [] for k in runners}
    for run in runners.values():  # warm-up (allocations, thread pools, caches)
        run()
    for _ in range(repeats):
        for key, run in runners.items():
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    rate = {k: batch * steps / statistics.median(v) for k, v in times.items()}
    return Result(name, graph.input_shape, rate["edgetrain"], rate["torch"])


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def markdown(runs: dict[str, list[Result]], args, command: str, load: str) -> str:
    lines = ["## Float32 training throughput: edgetrain vs PyTorch", "",
             (f"SGD (momentum {MOMENTUM}), batch {args.batch}, random data, {args.steps} steps "
              f"per repeat, median of {args.repeats} interleaved repeats, {args.threads} "
              "thread(s) for both (numpy BLAS and torch; one thread keeps the comparison stable "
              "on a shared machine). Target: edgetrain within 2x of PyTorch. The last column is "
              "time per step relative to PyTorch (edgetrain slower when above 1)."), "",
             ("| allocator | model | input | edgetrain samples/s | PyTorch samples/s | "
              "edgetrain / PyTorch time |"), "|---|---|---|---:|---:|---:|"]
    for mode, results in runs.items():
        for r in results:
            shape = "x".join(map(str, r.input_shape))
            lines.append(f"| {mode} | {r.model} | {shape} | {r.edgetrain:,.0f} | "
                         f"{r.torch:,.0f} | {r.ratio:.2f}x |")
    lines += ["", f"Command: `{command}`", "",
              f"Machine: {machine_summary()}; load average {load} when the run started"]
    return "\n".join(lines)


def cases(args) -> list[tuple[str, tuple[int, ...] | None]]:
    """(model, input shape) pairs to measure; None is the model's default shape."""
    out = []
    for name in args.models:
        out.append((name, None))
        out += [] if args.no_extra else [(name, s) for s in EXTRA_SHAPES.get(name, [])]
    return out


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="training steps per timed repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="threads for numpy BLAS and torch")
    p.add_argument("--models", nargs="*", default=zoo.names(), choices=zoo.names())
    p.add_argument("--no-extra", action="store_true",
                   help=f"skip the extra shapes {EXTRA_SHAPES} beside the defaults")
    p.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md")
    p.add_argument("--default-heap-only", action="store_true",
                   help="skip the second pass with keep_freed_memory()")
    return p.parse_args(argv)


def measure_all(args, mode: str) -> list[Result]:
    results = []
    for name, shape in cases(args):
        r = measure(name, shape, args.batch, args.steps, args.repeats)
        results.append(r)
        shape = "x".join(map(str, r.input_shape))
        print(f"{mode:9s} {name:14s} {shape:9s} edgetrain {r.edgetrain:9.0f}/s  "
              f"torch {r.torch:9.0f}/s  ratio {r.ratio:.2f}x", flush=True)
    return results


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    runs, load = {}, _load()
    with limit_threads(args.threads):
        runs["default"] = measure_all(args, "default")
        if not args.default_heap_only and keep_freed_memory():
            runs["kept heap"] = measure_all(args, "kept heap")
    text = markdown(runs, args, " ".join(["python bench/float_throughput.py", *argv]), load)
    if not args.no_write:
        update_section("float-throughput", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
