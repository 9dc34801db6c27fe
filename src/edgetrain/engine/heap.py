"""Keep freed memory in the process heap between training steps (glibc only).

A training step allocates every activation of the forward pass (kept for the backward
pass) and frees them all at the end. glibc's default policy serves such large blocks with
fresh ``mmap`` pages or trims them from the heap after the step, so every step pays page
faults and kernel zeroing again: on the reference machine that is ~40 % of a float32
mbednet step (74 -> 46 ms per batch of 32; PyTorch gains alike, see BENCHMARKS.md). Raising
the mmap and trim thresholds keeps the pages mapped and reuses them.

This changes process-wide allocator settings, so the library never calls it on import; the
CLI and benchmark scripts (which own their process) call it once at start-up. Numerics are
unaffected.

>>> isinstance(keep_freed_memory(), bool)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses larger values on 64-bit


def keep_freed_memory(trim_bytes: int = 512 << 20) -> bool:
    """Tell glibc to serve blocks up to 32 MiB from the heap and to keep up to `trim_bytes`
    of freed memory mapped. Returns whether the settings took effect (False on other C
    libraries, e.g. macOS or musl, where nothing is changed)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, int(trim_bytes)))
