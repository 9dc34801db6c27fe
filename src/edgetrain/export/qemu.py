"""Run a Cortex-M ELF under QEMU: semihosting I/O (stdout and host files), the program's
exit code, a timeout, and exact instruction counts from the project's own TCG plugin
(``export/plugin/insncount.c``, built on first use with the host compiler).

QEMU counts instructions, not cycles (it has no Cortex-M timing model): the counts are
*measured*, latencies derived from them are estimates.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgetrain.errors import EdgetrainError
from edgetrain.export.toolchains import (
    CROSS_INSTALL_HINT,
    HOST_INSTALL_HINT,
    TARGETS,
    find_tool,
    run_tool,
    symbol_address,
)

# exit code the runtime's fault handler passes to QEMU (see runtime/et_startup.c)
FAULT_EXIT_CODE = 99
MARK_BEGIN, MARK_END = "et_mark_begin", "et_mark_end"


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    stdout: str
    stderr: str
    instructions: int | None = None  # whole run
    measured_instructions: int | None = None  # inside et_mark_begin/et_mark_end regions
    regions: int | None = None
    profile: tuple[tuple[int, int], ...] = ()  # (instruction address, executions)


class QemuTimeout(EdgetrainError):
    """The guest did not exit in time (an endless loop or a far too large workload)."""


def plugin_path(build_dir: str | Path) -> Path:
    """The instruction-count plugin, compiled into ``build_dir`` if not there yet (the file
    name carries a hash of the source, so an edited plugin is rebuilt)."""
    src = resources.files("edgetrain.export").joinpath("plugin/insncount.c")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:10]
    out = Path(build_dir) / f"libetinsn-{digest}.so"
    if out.exists():
        return out
    cc = find_tool(TARGETS["host"].compiler, HOST_INSTALL_HINT)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.so")
    with resources.as_file(src) as path:
        run_tool([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", str(path), "-o",
                  str(tmp)], "building the QEMU instruction-count plugin")
    tmp.replace(out)
    return out


def qemu_command(elf: Path, board: str, plugin: str | None = None) -> list[str]:
    qemu = find_tool("qemu-system-arm", CROSS_INSTALL_HINT)
    cmd = [qemu, "-M", board, "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    if plugin:
        cmd += ["-plugin", plugin, "-d", "plugin"]
    return cmd


def run_elf(elf: str | Path, board: str, timeout: float = 120.0, cwd: str | Path | None = None,
            count_instructions: bool = False, build_dir: str | Path | None = None,
            profile: bool = False) -> RunResult:
    """Run ``elf`` on QEMU ``board``; files the guest opens are relative to ``cwd``.

    With ``count_instructions`` the run uses the plugin and reports the whole-run count and
    the count inside the guest's et_mark_begin()/et_mark_end() regions (if it has them).
    """
    elf = Path(elf).resolve()
    plugin = None
    if count_instructions:
        lib = plugin_path(build_dir or elf.parent)
        plugin = f"{lib},{_marker_args(elf)}" if _has_markers(elf) else str(lib)
        plugin += ",profile=1" if profile else ""
    cmd = qemu_command(elf, board, plugin)
    try:
        proc = subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise QemuTimeout(f"{elf.name} on {board} did not finish within {timeout:.0f} s; "
                          "raise the timeout or run fewer steps") from None
    return _result(proc)


def _has_markers(elf: Path) -> bool:
    try:
        symbol_address(elf, MARK_BEGIN)
        return True
    except EdgetrainError:
        return False


def _marker_args(elf: Path) -> str:
    return (f"begin={symbol_address(elf, MARK_BEGIN):#x},"
            f"end={symbol_address(elf, MARK_END):#x}")


_COUNTS = re.compile(r"et_insns total=(\d+) measured=(\d+) regions=(\d+)")
_PROFILE = re.compile(r"et_prof ([0-9a-f]+) (\d+)\n?")


def function_profile(elf: str | Path, result: RunResult) -> list[tuple[str, int]]:
    """(function, executed instructions) from a run with ``profile=True``, largest first."""
    tool = find_tool("arm-none-eabi-nm", CROSS_INSTALL_HINT)
    out = run_tool([tool, "-n", str(elf)], "reading symbols").stdout
    funcs = sorted((int(a, 16) & ~1, name) for a, kind, name in
                   (ln.split() for ln in out.splitlines() if len(ln.split()) == 3)
                   if kind in "Tt")
    starts = [a for a, _ in funcs]
    totals: dict[str, int] = {}
    for addr, count in result.profile:
        i = bisect.bisect_right(starts, addr) - 1
        name = funcs[i][1] if i >= 0 else "?"
        totals[name] = totals.get(name, 0) + count
    return sorted(totals.items(), key=lambda kv: -kv[1])


def _result(proc: subprocess.CompletedProcess) -> RunResult:
    prof = tuple((int(a, 16), int(c)) for a, c in _PROFILE.findall(proc.stderr))
    stderr = _PROFILE.sub("", proc.stderr)
    m = _COUNTS.search(stderr)
    stderr = _COUNTS.sub("", stderr).strip()
    if m is None:
        return RunResult(proc.returncode, proc.stdout, stderr)
    total, measured, regions = (int(v) for v in m.groups())
    return RunResult(proc.returncode, proc.stdout, stderr, total, measured, regions, prof)
