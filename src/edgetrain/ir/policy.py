"""Update policies: which parameters are trained and which backward work is done.

A policy is data. The same object drives the engine (what is computed), the planner (what
is kept in RAM) and the exporter (what code is emitted). Text forms, as on the CLI:

=================  =============================================================
``full``           every layer
``last-N``         the last N weight layers (conv/linear) and everything after the
                   first of them; frozen layers are never written
``bias-only``      biases only (TinyTL, Cai et al. 2020): no inputs kept for weight grads
``partial``        dynamic partial updates (Deutel et al. 2024): per layer and sample
                   only the top-k filters/rows by error magnitude get gradients,
                   k = max(floor((lmin + |e/e_max| (lmax - lmin)) N), 1)
``partial-last-N`` partial updates restricted to the last N weight layers
``layers:a,b``     exactly these layers (node names)
=================  =============================================================

>>> parse_policy("last-2").name
'last-2'
>>> parse_policy("partial", lambda_min=0.1).name
'partial(lambda_min=0.1,lambda_max=1.0)'
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetrain.errors import EdgetrainError, unknown
from edgetrain.ir.registry import get_op


@dataclass(frozen=True)
class Policy:
    last_n: int | None = None  # train the last N weight layers; None: all (or `names`)
    names: tuple[str, ...] = ()  # explicit layer names; overrides last_n
    bias_only: bool = False
    lambda_min: float | None = None  # not None: dynamic partial updates
    lambda_max: float = 1.0

    def __post_init__(self):
        for label, lam in (("lambda_min", self.lambda_min), ("lambda_max", self.lambda_max)):
            if lam is not None and not 0.0 <= lam <= 1.0:
                raise EdgetrainError(f"{label} must be in [0, 1], got {lam}")
        if self.lambda_min is not None and self.lambda_min > self.lambda_max:
            raise EdgetrainError(f"lambda_min ({self.lambda_min}) must not exceed "
                                 f"lambda_max ({self.lambda_max})")
        if self.last_n is not None and self.last_n < 1:
            raise EdgetrainError(f"last-N needs N >= 1, got {self.last_n}")

    @property
    def partial(self) -> bool:
        return self.lambda_min is not None

    @property
    def name(self) -> str:
        if self.names:
            base = "layers:" + ",".join(self.names)
        elif self.last_n is not None:
            base = f"last-{self.last_n}"
        else:
            base = "full"
        if self.bias_only:
            base = "bias-only" if base == "full" else f"bias-only-{base}"
        if self.partial:
            lam = f"(lambda_min={self.lambda_min},lambda_max={self.lambda_max})"
            base = "partial" + lam if base == "full" else f"partial-{base}{lam}"
        return base

    def trainable_layers(self, graph) -> tuple[str, ...]:
        """Names of the weight layers (conv/linear) this policy trains, in graph order."""
        layers = [n.name for n in graph.weight_nodes()]
        if self.names:
            for name in self.names:
                if name not in layers:
                    raise unknown("trainable layer", name, layers)
            return tuple(n for n in layers if n in self.names)
        if self.last_n is None:
            return tuple(layers)
        if self.last_n > len(layers):
            raise EdgetrainError(f"policy last-{self.last_n}: model '{graph.name}' has only "
                                 f"{len(layers)} weight layers")
        return tuple(layers[-self.last_n:])

    def trainable_params(self, graph) -> dict[str, frozenset[str]]:
        """node name -> roles trained. Nodes after the first trained layer (e.g. BatchNorm)
        are trained too unless layers were named explicitly."""
        layers = self.trainable_layers(graph)
        if not layers:
            return {}
        order = [n.name for n in graph.nodes]
        first = order.index(layers[0])
        out = {}
        for i, node in enumerate(graph.nodes):
            roles = frozenset(get_op(node.op).trainable) & frozenset(node.params)
            picked = node.name in layers if self.names else i >= first
            if self.bias_only:
                roles &= {"bias"}
            if roles and picked:
                out[node.name] = roles
        return out


def parse_policy(text: str, lambda_min: float | None = None, lambda_max: float = 1.0) -> Policy:
    """Parse the CLI form of a policy (see module docstring)."""
    text = text.strip()
    partial = text.startswith("partial")
    if partial:
        text = text[len("partial"):].lstrip("-") or "full"
        lambda_min = 0.1 if lambda_min is None else lambda_min
    elif lambda_min is not None:
        raise EdgetrainError("--lambda-min only applies to the 'partial' policy")
    lam = {"lambda_min": lambda_min, "lambda_max": lambda_max} if partial else {}
    if text == "full":
        return Policy(**lam)
    if text == "bias-only":
        return Policy(bias_only=True, **lam)
    if text.startswith("last-"):
        n = text[len("last-"):]
        if not n.isdigit():
            raise EdgetrainError(f"policy 'last-{n}': N must be a positive integer, e.g. last-2")
        return Policy(last_n=int(n), **lam)
    if text.startswith("layers:"):
        names = tuple(s for s in text[len("layers:"):].split(",") if s)
        if not names:
            raise EdgetrainError("policy 'layers:' needs layer names, e.g. layers:conv3,fc")
        return Policy(names=names, **lam)
    raise EdgetrainError(f"unknown policy '{text}' (choose full, last-N, bias-only, partial, "
                         "partial-last-N or layers:a,b)")
