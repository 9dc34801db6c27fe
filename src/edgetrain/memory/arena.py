"""Buffer lifetimes and arena planning: place buffers with known lifetimes in one block of
memory so that no two overlap while both are live.

The planner follows TensorFlow Lite Micro's ``GreedyMemoryPlanner`` (David et al. 2021,
"TensorFlow Lite Micro: Embedded Machine Learning on TinyML Systems"): buffers are taken
largest first; each is put at the lowest offset where it fits in the gaps left by the
already placed buffers whose lifetimes overlap its own (first fit). Sizes are rounded up to
the alignment, so every offset is aligned.

Limits: optimal placement is NP-hard (dynamic storage allocation); greedy-by-size has no
constant-factor guarantee. Its quality is measured against the *liveness lower bound*, the
largest sum of bytes live at one step, which no placement can beat (bench/planner.py reports
the gap on every zoo model and policy). Lifetimes are whole steps, inclusive: a buffer read
and a buffer written by the same step are live together (no in-place reuse).

Every planner implements :class:`Planner`:

>>> reqs = [Request("a", 64, 0, 1), Request("b", 32, 1, 2), Request("c", 64, 2, 3)]
>>> layout = GreedyBySize().place(reqs)
>>> layout.offsets, layout.size, lower_bound(reqs)
({'a': 0, 'c': 0, 'b': 64}, 96, 96)
>>> layout.check(reqs)  # raises if two live buffers overlap
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgetrain.errors import unknown


@dataclass(frozen=True)
class Request:
    """A buffer to place: aligned size in bytes, first and last step (inclusive)."""

    name: str
    size: int
    first: int
    last: int

    def overlaps(self, other: Request) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Layout:
    offsets: dict[str, int]
    size: int  # arena bytes: the highest end of any buffer

    def check(self, requests: Sequence[Request]) -> None:
        """Raise AssertionError if a buffer is unplaced or two live buffers overlap."""
        for r in requests:
            assert r.name in self.offsets, f"{r.name} not placed"
            assert 0 <= self.offsets[r.name] and self.offsets[r.name] + r.size <= self.size
        for i, a in enumerate(requests):
            for b in requests[i + 1:]:
                if a.overlaps(b) and a.size and b.size:
                    oa, ob = self.offsets[a.name], self.offsets[b.name]
                    assert oa + a.size <= ob or ob + b.size <= oa, f"{a.name} overlaps {b.name}"


class Planner(Protocol):
    """Places requests in one arena. ``name`` identifies it in reports; ``place`` must return
    a Layout in which live buffers never overlap (``Layout.check``)."""

    name: str

    def place(self, requests: Sequence[Request]) -> Layout: ...


def align(n: int, alignment: int) -> int:
    """n rounded up to a multiple of alignment.

    >>> align(13, 8), align(16, 8), align(0, 8)
    (16, 16, 0)
    """
    return -(-n // alignment) * alignment


def first_fit(size: int, placed: list[tuple[int, int]]) -> int:
    """The lowest offset where ``size`` bytes fit between the (offset, end) intervals."""
    candidate = 0
    for start, end in sorted(placed):
        if start >= candidate + size:
            break
        candidate = max(candidate, end)
    return candidate


def place_in_order(requests: Sequence[Request], order: Sequence[Request]) -> Layout:
    """First-fit placement taking the requests in ``order``."""
    offsets: dict[str, int] = {}
    done: list[Request] = []
    for r in order:
        placed = [(offsets[p.name], offsets[p.name] + p.size) for p in done if p.overlaps(r)]
        offsets[r.name] = first_fit(r.size, placed) if r.size else 0
        done.append(r)
    size = max((offsets[r.name] + r.size for r in requests), default=0)
    return Layout(offsets, size)


class GreedyBySize:
    """TFLite Micro's greedy planner: largest first (ties: earlier first use, then name),
    first fit among the buffers live at the same time."""

    name = "greedy"

    def place(self, requests: Sequence[Request]) -> Layout:
        order = sorted(requests, key=lambda r: (-r.size, r.first, r.name))
        return place_in_order(requests, order)


class GreedyBest:
    """Greedy first fit under several orders (size, size x lifetime, first use), keeping the
    smallest arena: never worse than :class:`GreedyBySize`, a few times its cost."""

    name = "greedy-best"
    ORDERS: tuple[Callable[[Request], tuple], ...] = (
        lambda r: (-r.size, r.first, r.name),
        lambda r: (-r.size * (r.last - r.first + 1), r.first, r.name),
        lambda r: (-(r.last - r.first), -r.size, r.name),
        lambda r: (r.first, -r.size, r.name),
    )

    def place(self, requests: Sequence[Request]) -> Layout:
        layouts = [place_in_order(requests, sorted(requests, key=k)) for k in self.ORDERS]
        return min(layouts, key=lambda lay: lay.size)


PLANNERS: dict[str, type] = {"greedy": GreedyBySize, "greedy-best": GreedyBest}


def get_planner(name: str) -> Planner:
    if name not in PLANNERS:
        raise unknown("planner", name, PLANNERS)
    return PLANNERS[name]()


def live_bytes(requests: Sequence[Request], steps: int | None = None) -> list[int]:
    """Bytes live at each step (index = step), for ``steps`` steps (default: up to the last
    step any request uses)."""
    steps = max((r.last for r in requests), default=-1) + 1 if steps is None else steps
    delta = [0] * (steps + 1)
    for r in requests:
        delta[r.first] += r.size
        delta[r.last + 1] -= r.size
    live, total = [], 0
    for d in delta[:-1]:
        total += d
        live.append(total)
    return live


def lower_bound(requests: Sequence[Request]) -> int:
    """The liveness lower bound: the largest sum of sizes live at one step."""
    return max(live_bytes(requests), default=0)


def ranked(requests: Sequence[Request]) -> list[Request]:
    """The same requests with each lifetime endpoint replaced by its rank among all distinct
    endpoints: the same overlaps, but lifetimes no longer depend on how many steps (or C
    calls) lie between two endpoints, so a schedule and the C calls it mirrors (which has
    more calls: traces, views) are placed alike. The float exports and their plans place
    ranked requests.

    >>> [(r.first, r.last) for r in ranked([Request("a", 8, 0, 5), Request("b", 8, 5, 9)])]
    [(0, 1), (1, 2)]
    """
    ends = sorted({r.first for r in requests} | {r.last for r in requests})
    rank = {v: i for i, v in enumerate(ends)}
    return [Request(r.name, r.size, rank[r.first], rank[r.last]) for r in requests]

