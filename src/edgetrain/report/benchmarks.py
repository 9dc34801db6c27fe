"""BENCHMARKS.md is assembled from sections, one per benchmark script, each written between
``<!-- begin:NAME -->`` and ``<!-- end:NAME -->`` markers so scripts can rerun independently."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from edgetrain.io.atomic import write_text

HEADER = ("# Benchmarks\n\nEvery figure below was produced by the command shown with it, on the "
          "machine named with it. The machine is shared and noisy: compare the ratios and "
          "medians measured in the same run, not absolute times across runs.\n")


def machine_summary() -> str:
    """One line naming the machine and the library versions that matter for speed."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores", f"Python {platform.python_version()}",
             f"numpy {np.__version__}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    return "; ".join(parts)


def update_section(name: str, markdown: str, path: str | Path = "BENCHMARKS.md") -> Path:
    """Replace (or append) the section NAME of the benchmarks file, atomically."""
    path = Path(path)
    text = path.read_text() if path.exists() else HEADER
    block = f"<!-- begin:{name} -->\n{markdown.strip()}\n<!-- end:{name} -->"
    pattern = re.compile(rf"<!-- begin:{re.escape(name)} -->.*?<!-- end:{re.escape(name)} -->",
                         re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else (
        text.rstrip() + "\n\n" + block + "\n")
    return write_text(path, text)
