"""`edgetrain` entry point: a table of subcommands, each a module with `configure(parser)`
(its arguments) and `run(args) -> exit code`. Bad input (EdgetrainError) is one line on
stderr and exit code 2; `--debug` shows the traceback instead."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# The models here are small: one BLAS thread per process is faster than two fighting over a
# 2-core machine (10x on mnist-cnn, BENCHMARKS.md). Set before numpy loads; a user's own
# setting wins. Integer results do not depend on it.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from edgetrain.errors import EdgetrainError

# subcommand -> (module, one-line help); modules are imported only when used
COMMANDS: dict[str, tuple[str, str]] = {
    "devices": ("edgetrain.cli.devices", "list the device catalogue (cores, SRAM, flash, QEMU)"),
    "plan": ("edgetrain.cli.plan", "does training fit? peak RAM, flash, MACs, latency estimate"),
    "datasets": ("edgetrain.cli.datasets", "list the built-in offline datasets"),
    "models": ("edgetrain.cli.models", "list the model zoo with parameters and MACs"),
    "pretrain": ("edgetrain.cli.pretrain", "train a float32 model on a dataset"),
    "eval": ("edgetrain.cli.eval", "evaluate a model file on a dataset"),
    "quantize": ("edgetrain.cli.quantize", "post-training int8 quantization of a float model"),
    "train": ("edgetrain.cli.train", "on-device training: int8 (FQT), mixed or float32"),
    "export": ("edgetrain.cli.export", "generate the C99 training project for a device"),
    "verify": ("edgetrain.cli.verify", "check the generated C against the int8 engine, bit for bit"),
    "demo": ("edgetrain.cli.demo", "the whole pipeline end to end, with a report (start here)"),
    "bench": ("edgetrain.cli.bench", "datasets x precisions x policies vs PyTorch -> BENCHMARKS.md"),
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edgetrain",
                                     description="Train neural networks on microcontrollers.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # import only the module that runs
            importlib.import_module(module).configure(p)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from edgetrain.engine.heap import keep_freed_memory

    keep_freed_memory()  # the CLI owns its process: reuse freed pages between steps
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except EdgetrainError as e:
        if args.debug:
            raise
        print(f"edgetrain {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgetrain: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
