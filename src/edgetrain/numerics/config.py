"""Named numerics configurations (frozen): which rounding, granularity and scale tracking
the int8 engine uses. ``paper`` reproduces Deutel et al. 2024 (uint8-equivalent affine per
tensor, floor rounding everywhere, min/max tracking with rates 0.1/0.001, gradient
standardization with rates 0.85/0.7); ``default`` is this project's improvement (see
docs/numerics.md for what each change buys).

>>> get("paper").round_forward, get("default").weight_channels
('floor', True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgetrain.errors import unknown
from edgetrain.numerics.rounding import MODES


@dataclass(frozen=True)
class Numerics:
    name: str
    round_forward: str = "floor"  # activations (requantized accumulators)
    round_backward: str = "floor"  # errors and quantized gradients
    round_update: str = "floor"  # the in-place weight update
    round_gradient: str = "floor"  # int8 weight gradients before standardization
    grad_rows: bool = False  # gradient scale per filter/row instead of per tensor
    weight_channels: bool = False  # per-output-channel symmetric weight scales
    pow2_scales: bool = False  # activation/error scales rounded up to powers of two
    rate_activation: float = 0.1
    rate_error: float = 0.1
    rate_weight: float = 0.001
    rate_grad_mean: float = 0.85
    rate_grad_var: float = 0.7
    grad_eps: float = 1e-8  # sigma = sqrt(var) + eps in the standardization

    def __post_init__(self):
        for mode in (self.round_forward, self.round_backward, self.round_update,
                     self.round_gradient):
            if mode not in MODES:
                raise unknown("rounding mode", mode, MODES)

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS: dict[str, Numerics] = {
    "paper": Numerics("paper"),
    "default": Numerics("default", round_forward="nearest", round_backward="nearest",
                        round_update="stochastic", round_gradient="nearest",
                        weight_channels=True, rate_weight=1.0),
    "nearest": Numerics("nearest", round_forward="nearest", round_backward="nearest",
                        round_update="nearest", round_gradient="nearest"),
    "pow2": Numerics("pow2", round_forward="nearest", round_backward="nearest",
                     round_update="stochastic", round_gradient="nearest",
                     weight_channels=True, rate_weight=1.0, pow2_scales=True),
}


def names() -> list[str]:
    return list(CONFIGS)


def get(name: str) -> Numerics:
    if name not in CONFIGS:
        raise unknown("numerics configuration", name, CONFIGS)
    return CONFIGS[name]
