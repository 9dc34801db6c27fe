"""C toolchains: the host compiler and arm-none-eabi-gcc for each Cortex-M core.

One table (:data:`TARGETS`) says how to build for a target and which QEMU board runs it;
the generated project's Makefile is written from the same table, so the flags used by
``edgetrain verify`` and by a user typing ``make`` are the same. Every build is strict
C99 with IEEE float semantics kept: ``-std=c99 -Wall -Wextra -Werror -ffp-contract=off``
and no fast-math (bit-exactness with the Python engine depends on it, see DESIGN.md).

>>> t = target("cortex-m4")
>>> t.compiler, t.qemu_board, t.dsp
('arm-none-eabi-gcc', 'mps2-an386', True)
>>> " ".join(t.cpu_flags)
'-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard'
>>> target("cortex_m4").name
Traceback (most recent call last):
...
edgetrain.errors.EdgetrainError: unknown target 'cortex_m4' (did you mean 'cortex-m4'?)
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgetrain.errors import EdgetrainError, unknown

CROSS_INSTALL_HINT = ("install the Cortex-M toolchain and emulator: apt-get install "
                      "--no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
                      "qemu-system-arm")
HOST_INSTALL_HINT = "install a C compiler: apt-get install --no-install-recommends gcc make"

# Strict C99; no FMA contraction and no fast-math, so float32 scalar steps round as in NumPy.
C_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-O2")
# Bare metal: sections per function so unused code is dropped, our own startup code,
# newlib-nano. Programs that talk to QEMU (stdio, files, exit codes) add semihosting
# (rdimon); the model-only program et_deploy does not, so no stdio/malloc state is linked.
CROSS_FLAGS = ("-ffunction-sections", "-fdata-sections", "-nostartfiles")
CROSS_LINK_FLAGS = ("-Wl,--gc-sections", "--specs=nano.specs")
SEMIHOSTING_LINK_FLAGS = ("--specs=rdimon.specs",)


@dataclass(frozen=True)
class Target:
    """Where generated C runs: the host, or a Cortex-M core under QEMU."""

    name: str
    compiler: str
    cpu_flags: tuple[str, ...]
    qemu_board: str | None  # None: runs natively
    dsp: bool  # ARMv7E-M DSP extension (SXTB16, SMLAD)
    fpu: bool

    @property
    def cross(self) -> bool:
        return self.qemu_board is not None

    def install_hint(self) -> str:
        return CROSS_INSTALL_HINT if self.cross else HOST_INSTALL_HINT


TARGETS: dict[str, Target] = {
    t.name: t for t in (
        Target("host", "cc", (), None, False, True),
        Target("cortex-m0plus", "arm-none-eabi-gcc",
               ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"), "mps2-an385", False, False),
        Target("cortex-m4", "arm-none-eabi-gcc",
               ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
               "mps2-an386", True, True),
        Target("cortex-m7", "arm-none-eabi-gcc",
               ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
               "mps2-an500", True, True),
    )
}


def target(name: str) -> Target:
    """The target called ``name`` (host, cortex-m0plus, cortex-m4, cortex-m7)."""
    if name not in TARGETS:
        raise unknown("target", name, TARGETS)
    return TARGETS[name]


class ToolMissing(EdgetrainError):
    """A compiler, size tool or emulator is not installed; the message says how to get it."""


def find_tool(name: str, hint: str) -> str:
    """Absolute path of executable ``name``, or ToolMissing naming ``hint``."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"'{name}' not found: {hint}")
    return path


def available(target_name: str) -> tuple[bool, str]:
    """(True, '') if everything to build and run ``target_name`` is installed, else (False,
    what to install). Tests use this to skip cleanly."""
    t = target(target_name)
    tools = [t.compiler] + (["qemu-system-arm", "arm-none-eabi-size"] if t.cross else [])
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return False, f"{', '.join(missing)} not found: {t.install_hint()}"
    return True, ""


@dataclass(frozen=True)
class BuildResult:
    path: Path
    command: tuple[str, ...]


def run_tool(cmd: Sequence[str], what: str, cwd: Path | None = None,
             timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Run a build command; a failure raises EdgetrainError with the tool's first error line."""
    try:
        proc = subprocess.run(list(cmd), check=False, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgetrainError(f"{what}: timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise EdgetrainError(f"{what} failed: {first_error(proc.stderr + proc.stdout)}")
    return proc


def first_error(output: str) -> str:
    """The most telling line of a compiler/linker log (the first 'error' line, else the last).

    >>> first_error("a.c:1: warning: x\\nld: region `RAM' overflowed by 12 bytes\\nmore")
    "ld: region `RAM' overflowed by 12 bytes"
    """
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in lines:
        if re.search(r"\berror:|overflowed|undefined reference", ln, re.IGNORECASE):
            return ln
    return lines[-1] if lines else "(no output)"


def compile_program(t: Target, sources: Sequence[str | Path], out: str | Path,
                    include_dirs: Sequence[str | Path] = (), defines: Sequence[str] = (),
                    linker_script: str | Path | None = None,
                    extra_flags: Sequence[str] = ()) -> BuildResult:
    """Compile and link ``sources`` into an executable (host) or ELF (cross)."""
    cc = find_tool(t.compiler, t.install_hint())
    cmd = [cc, *C_FLAGS, *t.cpu_flags]
    if t.cross:
        if linker_script is None:
            raise ValueError("a cross build needs a linker script")
        cmd += [*CROSS_FLAGS, f"-T{linker_script}", *CROSS_LINK_FLAGS, *SEMIHOSTING_LINK_FLAGS]
    cmd += [f"-I{d}" for d in include_dirs] + [f"-D{d}" for d in defines]
    cmd += [*extra_flags, *map(str, sources), "-o", str(out)]
    cmd.append("-lm")
    run_tool(cmd, f"building {Path(out).name} for {t.name}")
    return BuildResult(Path(out), tuple(cmd))


def compile_shared_library(sources: Sequence[str | Path], out: str | Path,
                           include_dirs: Sequence[str | Path] = (),
                           defines: Sequence[str] = ()) -> BuildResult:
    """A host shared library (for ctypes tests of single C primitives)."""
    t = TARGETS["host"]
    cc = find_tool(t.compiler, t.install_hint())
    cmd = [cc, *C_FLAGS, "-shared", "-fPIC", *[f"-I{d}" for d in include_dirs],
           *[f"-D{d}" for d in defines], *map(str, sources), "-o", str(out)]
    run_tool(cmd, f"building {Path(out).name}")
    return BuildResult(Path(out), tuple(cmd))


@dataclass(frozen=True)
class ElfSize:
    """Section sizes of a Cortex-M ELF, in bytes. ``reserved`` are the heap and stack
    reservations of the linker script (NOLOAD, counted apart from the program's own bss)."""

    text: int
    data: int
    bss: int
    reserved: int

    @property
    def flash_bytes(self) -> int:
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        """Static RAM of the program: .data + .bss (heap/stack reservations excluded)."""
        return self.data + self.bss


RESERVED_SECTIONS = (".heap", ".stack")
TEXT_SECTIONS = (".text", ".preinit_array", ".init_array", ".fini_array", ".ARM.exidx",
                 ".rodata", ".isr_vector")


def elf_size(elf: str | Path) -> ElfSize:
    """Per-section sizes from ``arm-none-eabi-size -A``."""
    tool = find_tool("arm-none-eabi-size", CROSS_INSTALL_HINT)
    out = run_tool([tool, "-A", str(elf)], f"reading sizes of {Path(elf).name}").stdout
    sizes = {"text": 0, "data": 0, "bss": 0, "reserved": 0, "other": 0}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith(".") or not parts[1].isdigit():
            continue
        sizes[_section_kind(parts[0])] += int(parts[1])
    del sizes["other"]  # debug info, comments, attributes: not loaded
    return ElfSize(**sizes)


def _section_kind(name: str) -> str:
    if name in RESERVED_SECTIONS:
        return "reserved"
    if name.startswith(TEXT_SECTIONS):
        return "text"
    if name.startswith(".data"):
        return "data"
    if name.startswith(".bss"):
        return "bss"
    return "other"


def symbol_address(elf: str | Path, symbol: str) -> int:
    """Address of ``symbol`` in ``elf`` (Thumb bit cleared)."""
    tool = find_tool("arm-none-eabi-nm", CROSS_INSTALL_HINT)
    out = run_tool([tool, str(elf)], f"reading symbols of {Path(elf).name}").stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == symbol:
            return int(parts[0], 16) & ~1
    raise EdgetrainError(f"symbol '{symbol}' not found in {elf}")
