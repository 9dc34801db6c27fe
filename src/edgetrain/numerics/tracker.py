"""Scale tracking as in Deutel et al. 2024: the range [f_min, f_max] of a tensor is observed
while it is computed (from integer accumulator extremes, no float copy is kept) and
smoothed with an exponential moving average; the quantization parameters of the next step
come from the smoothed range. Rates (weight of the new observation): 0.1 activations and
errors, 0.001 weights; gradient statistics (mean, variance) 0.85 and 0.7.

State is plain arrays: ``lo``, ``hi`` (float32, per tensor or per channel) and ``seen``
(bool). The first observation is taken as is; afterwards, in float32, in this order:
``lo = lo + rate * (obs_lo - lo)``, ``hi = hi + rate * (obs_hi - hi)``.

>>> t = RangeTracker.new()
>>> t.observe(np.float32(-1), np.float32(1), 0.1); t.observe(np.float32(0), np.float32(3), 0.1)
>>> float(t.lo), float(t.hi)
(-0.8999999761581421, 1.2000000476837158)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetrain.numerics.qparams import QParams, from_range


@dataclass
class RangeTracker:
    lo: np.ndarray  # float32[] or float32[C]
    hi: np.ndarray
    seen: np.ndarray  # bool[]

    @classmethod
    def new(cls, shape: tuple[int, ...] = ()) -> RangeTracker:
        return cls(np.zeros(shape, np.float32), np.zeros(shape, np.float32),
                   np.array(False))

    @classmethod
    def of(cls, lo, hi) -> RangeTracker:
        return cls(np.array(lo, np.float32), np.array(hi, np.float32), np.array(True))

    def observe(self, obs_lo, obs_hi, rate: float) -> None:
        obs_lo, obs_hi = np.float32(obs_lo), np.float32(obs_hi)
        if not (np.isfinite(obs_lo).all() and np.isfinite(obs_hi).all()):
            raise FloatingPointError("non-finite range observed: training diverged")
        if not self.seen:
            self.lo, self.hi, self.seen = (np.array(obs_lo, np.float32),
                                           np.array(obs_hi, np.float32), np.array(True))
            return
        r = np.float32(rate)
        self.lo = np.asarray(self.lo + r * (obs_lo - self.lo), np.float32)
        self.hi = np.asarray(self.hi + r * (obs_hi - self.hi), np.float32)

    def qparams(self, symmetric: bool = False, pow2: bool = False) -> QParams:
        return from_range(self.lo, self.hi, symmetric, pow2)


def int_range(acc: np.ndarray, scale, axis: int | None = None):
    """The real range [min, max] of integer values times a float32 scale: the integer
    extremes are found exactly, then converted (float32(int) * scale)."""
    if axis is None:
        lo, hi = acc.min(), acc.max()
    else:
        other = tuple(i for i in range(acc.ndim) if i != axis)
        lo, hi = acc.min(axis=other), acc.max(axis=other)
    s = np.asarray(scale, np.float32)
    return np.float32(lo) * s if lo.ndim == 0 else lo.astype(np.float32) * s, (
        np.float32(hi) * s if hi.ndim == 0 else hi.astype(np.float32) * s)


@dataclass
class GradStats:
    """Moving mean and variance of the gradient per filter/row (the paper's gradient
    standardization): float32[R] each, plus ``seen``."""

    mean: np.ndarray
    var: np.ndarray
    seen: np.ndarray

    @classmethod
    def new(cls, rows: int) -> GradStats:
        return cls(np.zeros(rows, np.float32), np.zeros(rows, np.float32), np.array(False))

    def observe(self, mean, var, rate_mean: float, rate_var: float) -> None:
        mean, var = np.asarray(mean, np.float32), np.asarray(var, np.float32)
        if not self.seen:
            self.mean, self.var, self.seen = mean.copy(), var.copy(), np.array(True)
            return
        self.mean = self.mean + np.float32(rate_mean) * (mean - self.mean)
        self.var = self.var + np.float32(rate_var) * (var - self.var)
