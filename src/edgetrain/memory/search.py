"""Policy search: which ways of training fit a RAM budget, and what each trains.

Candidates are the policies of the field on the model's weight layers: ``full``, ``last-N``
(N = 1 .. layers-1), ``bias-only`` (TinyTL), each ``last-N``/``full`` with dynamic partial
updates at the given lambda_min values (Deutel et al. 2024; same RAM in the worst case, less
backward work), at each batch size (batch > 1 keeps gradient accumulators). Every candidate
is planned; those within the budget are ranked by trained parameters (more first), then
peak RAM, then the latency estimate. The frontier is the set of candidates no other beats
on both RAM (lower) and trained parameters (higher).

>>> from edgetrain.ir import GraphBuilder
>>> b = GraphBuilder("tiny", (16,), seed=0)
>>> g = b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
...                   out_features=4))
>>> r = search(g, "nrf52840", ram_budget=1500, batches=(1,), lambdas=())
>>> [(c.policy, c.trainable_params, c.peak_ram_bytes, c.fits) for c in r.candidates]
[('last-1', 36, 1232, True), ('bias-only', 12, 1112, True), ('full', 172, 2160, False)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from edgetrain.errors import EdgetrainError
from edgetrain.ir.graph import Graph
from edgetrain.ir.policy import Policy
from edgetrain.memory import devices
from edgetrain.memory.plan import Plan, PlanConfig, plan


@dataclass(frozen=True)
class Candidate:
    policy: str
    batch: int
    trainable_params: int
    peak_ram_bytes: int
    arena_bytes: int
    flash_bytes: int
    latency_ms_estimate: float
    latency_ms_estimate_best_case: float
    fits: bool  # within the RAM budget and the device (its RAM with the stack, its flash)

    @classmethod
    def of(cls, p: Plan, ram_budget: int) -> Candidate:
        return cls(p.policy.name, p.config.batch, p.trainable_params, p.peak_ram_bytes,
                   p.arena_bytes, p.flash_bytes, round(p.cost.latency_ms_estimate, 3),
                   round(p.cost.latency_ms_estimate_best, 3),
                   p.peak_ram_bytes <= ram_budget and p.fits)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    device: str
    precision: str
    ram_budget: int
    candidates: tuple[Candidate, ...]  # ranked: fitting first, by trained parameters

    @property
    def fitting(self) -> list[Candidate]:
        return [c for c in self.candidates if c.fits]

    @property
    def frontier(self) -> list[Candidate]:
        """Candidates that no other has at most the RAM and more trained parameters (or the
        same parameters in less RAM); sorted by RAM."""
        ordered = sorted(self.candidates, key=lambda c: (c.peak_ram_bytes, -c.trainable_params,
                                                         c.latency_ms_estimate))
        out, best = [], -1
        for c in ordered:
            if c.trainable_params > best:
                out.append(c)
                best = c.trainable_params
        return out

    def to_dict(self) -> dict:
        return {"device": self.device, "precision": self.precision,
                "ram_budget_bytes": self.ram_budget,
                "fitting": [c.to_dict() for c in self.fitting],
                "frontier": [c.to_dict() for c in self.frontier],
                "candidates": len(self.candidates)}


def candidate_policies(graph: Graph, lambdas: Sequence[float] = (0.1,)) -> list[Policy]:
    """full, last-N, bias-only, and the partial variants of full and last-N."""
    layers = len(graph.weight_nodes())
    base = [Policy()] + [Policy(last_n=n) for n in range(1, layers)]
    partial = [Policy(last_n=p.last_n, lambda_min=lam) for lam in lambdas for p in base]
    return base + [Policy(bias_only=True)] + partial


def rank_key(c: Candidate) -> tuple:
    return (not c.fits, -c.trainable_params, c.peak_ram_bytes, c.latency_ms_estimate,
            c.policy, c.batch)


def search(graph: Graph, device: str | devices.Device, precision: str = "int8",
           ram_budget: int | None = None, batches: Sequence[int] = (1, 8),
           lambdas: Sequence[float] = (0.1,),
           on_progress: Callable[[int, int], None] | None = None) -> SearchResult:
    """Plan every candidate; the budget defaults to the device's SRAM."""
    device = devices.get(device)
    budget = device.sram_bytes if ram_budget is None else int(ram_budget)
    if budget <= 0:
        raise EdgetrainError(f"the RAM budget must be a positive number of bytes, got {budget}")
    jobs = [(p, b) for b in dict.fromkeys(batches) for p in candidate_policies(graph, lambdas)]
    found = []
    for i, (policy, batch) in enumerate(jobs):
        p = plan(graph, device, policy, config=PlanConfig(precision=precision, batch=batch))
        found.append(Candidate.of(p, budget))
        if on_progress:
            on_progress(i + 1, len(jobs))
    return SearchResult(device.name, precision, budget, tuple(sorted(found, key=rank_key)))
