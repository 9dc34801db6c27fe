"""Build a C program for a target and run it where that target runs: natively for the host,
under QEMU (semihosting) for a Cortex-M core. Both read their input files from and write
their output files to one work folder, so a test or ``verify`` talks to the C the same way
on every target.

>>> from edgetrain.export.toolchains import target
>>> _board(target("cortex-m7"))
'mps2-an500'
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgetrain.errors import EdgetrainError
from edgetrain.export import qemu, sources
from edgetrain.export.toolchains import Target, compile_program

# Harness programs use stdio (newlib's FILE buffers come from the heap) and deep kernels.
HARNESS_HEAP_BYTES = 32 * 1024
HARNESS_STACK_BYTES = 16 * 1024
QEMU_RAM_BYTES = 4 * 1024 * 1024  # what the mps2 boards map at 0x20000000
QEMU_FLASH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Program:
    target: Target
    path: Path


def build(t: Target, srcs: Sequence[str | Path], out_dir: str | Path, name: str = "prog",
          defines: Sequence[str] = (), include_dirs: Sequence[str | Path] = (),
          ram_bytes: int = QEMU_RAM_BYTES, flash_bytes: int = QEMU_FLASH_BYTES,
          extra_flags: Sequence[str] = ()) -> Program:
    """Compile ``srcs`` with every runtime source (+ the startup code for a cross target)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rt = out_dir / "_runtime"
    sources.copy_runtime(rt)
    files = [*map(Path, srcs)] + [rt / n for n in sources.runtime_files()
                                  if n.endswith(".c") and n != "et_startup.c"
                                  and not n.endswith("_main.c")]
    script = None
    if t.cross:
        files.append(rt / "et_startup.c")
        script = sources.write_linker_script(rt, f"qemu-{t.name}", ram_bytes, flash_bytes,
                                             t.name, HARNESS_STACK_BYTES, HARNESS_HEAP_BYTES)
    exe = out_dir / (f"{name}.elf" if t.cross else name)
    compile_program(t, files, exe, include_dirs=[rt, *include_dirs], defines=defines,
                    linker_script=script, extra_flags=extra_flags)
    return Program(t, exe)


def _board(t: Target) -> str:
    if t.qemu_board is None:
        raise ValueError(f"{t.name} runs natively")
    return t.qemu_board


def run(prog: Program, work_dir: str | Path, timeout: float = 300.0,
        count_instructions: bool = False) -> qemu.RunResult:
    """Run ``prog`` with ``work_dir`` as its current folder."""
    if prog.target.cross:
        return qemu.run_elf(prog.path, _board(prog.target), timeout, work_dir,
                            count_instructions, build_dir=prog.path.parent)
    try:
        proc = subprocess.run([str(prog.path.resolve())], check=False, cwd=work_dir,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgetrainError(f"{prog.path.name} did not finish within {timeout:.0f} s") from None
    return qemu.RunResult(proc.returncode, proc.stdout, proc.stderr)
