"""Float32 accuracy bars: each zoo model trained with its tuned recipe (the defaults of
`edgetrain pretrain`) on its dataset, over several seeds. Writes the BENCHMARKS.md section
"float-accuracy".

Bars (issue 2): mnist-cnn on mnist >= 97 % test accuracy; motion-cnn1d on basic-motions
>= 90 %. Extra rows (--all) put mlp on digits and mbednet on mnist beside them.

    .venv/bin/python bench/float_accuracy.py [--seeds 0 1 2] [--all]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from dataclasses import dataclass

from edgetrain import data, zoo
from edgetrain.report.benchmarks import machine_summary, update_section
from edgetrain.train.pretrain import pretrain, recipe


@dataclass(frozen=True)
class Case:
    model: str
    dataset: str
    bar: float | None  # required test accuracy, None: reported only


BARS = (Case("mnist-cnn", "mnist", 0.97), Case("motion-cnn1d", "basic-motions", 0.90))
EXTRAS = (Case("mlp", "digits", None), Case("mbednet", "mnist", None))


@dataclass(frozen=True)
class Row:
    case: Case
    accuracies: tuple[float, ...]  # final test accuracy per seed
    seconds: float  # median training time per seed

    @property
    def passed(self) -> bool | None:
        return None if self.case.bar is None else min(self.accuracies) >= self.case.bar


def measure(case: Case, seeds: list[int]) -> Row:
    ds = data.load(case.dataset)
    accuracies, seconds = [], []
    for seed in seeds:
        graph = zoo.build(case.model, input_shape=ds.input_shape, num_classes=ds.num_classes,
                          seed=seed)
        result = pretrain(graph, ds, dataclasses.replace(recipe(case.model), seed=seed))
        accuracies.append(result.final_accuracy)
        seconds.append(result.seconds)
        print(f"{case.model} on {case.dataset} seed {seed}: {100 * result.final_accuracy:.2f} %"
              f" in {result.seconds:.1f} s", file=sys.stderr)
    return Row(case, tuple(accuracies), statistics.median(seconds))


def command(case: Case) -> str:
    c = recipe(case.model)
    return (f"edgetrain pretrain --model {case.model} --data {case.dataset} --epochs {c.epochs} "
            f"--batch {c.batch} --lr {c.lr:g} --optimizer {c.optimizer} --schedule {c.schedule}"
            + (f" --momentum {c.momentum:g}" if c.optimizer == "sgd" else "")
            + (f" --weight-decay {c.weight_decay:g}" if c.weight_decay else "")
            + (f" --shift {c.shift}" if c.shift else "") + " --seed 0 --out runs/"
            + case.model)


def markdown(rows: list[Row], argv: list[str]) -> str:
    lines = ["## Float32 accuracy (pre-training)", "",
             f"Command: `.venv/bin/python bench/float_accuracy.py {' '.join(argv)}`".rstrip(),
             f"Machine: {machine_summary()}", "",
             ("| model | dataset | test accuracy per seed (%) | min (%) | bar | pass | "
              "s per run (median) |"), "|---|---|---|---|---|---|---|"]
    for r in rows:
        accs = ", ".join(f"{100 * a:.1f}" for a in r.accuracies)
        bar = "-" if r.case.bar is None else f">= {100 * r.case.bar:.0f} %"
        ok = {None: "-", True: "yes", False: "**no**"}[r.passed]
        lines.append(f"| {r.case.model} | {r.case.dataset} | {accs} | "
                     f"{100 * min(r.accuracies):.1f} | {bar} | {ok} | {r.seconds:.1f} |")
    lines += ["", ("Each run is the model's default recipe (`train.pretrain.RECIPES`), so "
              "`edgetrain pretrain --model M --data D --out DIR` trains the same way; spelled "
              "out (seed 0):"), ""]
    lines += [f"    {command(r.case)}" for r in rows]
    lines += ["", ("Times are wall seconds per run including per-epoch evaluation, on a machine "
              "shared with other jobs: compare accuracies, not times.")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--all", action="store_true", help="also mlp/digits, mbednet/mnist")
    parser.add_argument("--no-write", action="store_true", help="print, do not update the file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = [measure(c, args.seeds) for c in BARS + (EXTRAS if args.all else ())]
    text = markdown(rows, argv)
    print(text)
    if not args.no_write:
        update_section("float-accuracy", text)
    print(f"total {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
