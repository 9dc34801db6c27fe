"""Rounding modes and the run's pseudo-random stream (the integer core of Deutel et al. 2024,
"On-Device Training of Fully Quantized Deep Neural Networks on Cortex-M Microcontrollers",
which rounds with ``floor``; ``nearest`` and ``stochastic`` are this project's additions).

Every mode is a named entry of a table; each works on two kinds of input:

* ``round_f32(v, mode, rng)``: float32 values (|v| <= 2^40) -> int64 (``v`` already scaled).
* ``round_shift(p, shift, mode, rng)``: the exact value ``p / 2**shift`` of an int64 ``p``.

Modes (the same integers in Python and C):

==============  ===========================================================================
``floor``       largest integer <= v (the paper)
``nearest``     nearest integer, ties AWAY from zero (2.5 -> 3, -2.5 -> -3)
``stochastic``  floor(v) + (u < frac(v)), u uniform from the run's stream (unbiased)
==============  ===========================================================================

The stream: a xorshift32 state (seeded per run, never 0) advances once per rounding call and
gives the call's base ``b``; element ``i`` (row-major) gets ``fmix32(b + i * 0x9E3779B9)``
(murmur3's finaliser), so a whole tensor is drawn at once in NumPy and in a plain C loop.

>>> rng = Stream(1)
>>> round_f32(np.array([2.5, -2.5, 0.4], np.float32), "nearest", rng).tolist()
[3, -3, 0]
>>> round_shift(np.array([-5], np.int64), 1, "floor", rng).tolist()
[-3]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from edgetrain.errors import unknown

GOLDEN = np.uint32(0x9E3779B9)
F32_LIMIT = np.float32(2.0**40)  # range of values rounded to int64


def xorshift32(x: np.uint32) -> np.uint32:
    """One step of Marsaglia's xorshift32 (13, 17, 5).

    >>> int(xorshift32(np.uint32(1)))
    270369
    """
    x = np.uint32(x)
    x ^= np.uint32(x << np.uint32(13))
    x ^= np.uint32(x >> np.uint32(17))
    x ^= np.uint32(x << np.uint32(5))
    return np.uint32(x)


def fmix32(h: np.ndarray) -> np.ndarray:
    """murmur3's 32-bit finaliser, element-wise on uint32 (wrapping multiplies)."""
    return _fmix32_inplace(h.astype(np.uint32, copy=True))


def _fmix32_inplace(h: np.ndarray) -> np.ndarray:
    """fmix32 overwriting the uint32 array h (the caller's fresh array)."""
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


class Stream:
    """The run's random stream; its whole state is one uint32 (``state``)."""

    def __init__(self, seed: int):
        s = np.uint32(int(seed) & 0xFFFFFFFF)
        self.state = np.array(s if s else np.uint32(0x6D2B79F5), np.uint32)  # never 0

    def bits(self, shape: tuple[int, ...]) -> np.ndarray:
        """uint32[shape] of random bits for one rounding call (advances the state once)."""
        self.state = np.array(xorshift32(self.state[()]), np.uint32)
        n = math.prod(shape)
        with np.errstate(over="ignore"):
            h = self.state[()] + _golden_steps(n)  # uint32 wraps; a fresh array
        return _fmix32_inplace(h).reshape(shape)


@lru_cache(maxsize=64)
def _golden_steps(n: int) -> np.ndarray:
    """uint32 idx * GOLDEN (wrapping) for idx < n, read-only: bits()' per-element offsets,
    the same for every call of one size, so computed once."""
    with np.errstate(over="ignore"):
        steps = np.arange(n, dtype=np.uint32) * GOLDEN
    steps.flags.writeable = False
    return steps


def _check_f32(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    if v.size and not (v.min() >= -F32_LIMIT and v.max() <= F32_LIMIT):  # NaN fails too
        raise FloatingPointError(f"value out of the rounding range |v| <= 2^40 (max {np.max(v)})")
    return v


# The float modes return the rounded values as integral floats (exact: float32 for floor and
# stochastic, float64 for nearest), so callers that stay in [-2^24, 2^24] skip int64.
def _f32_floor(v, rng):
    return np.floor(v)


def _f32_nearest(v, rng):
    return _dyadic_nearest(v.astype(np.float64))  # v has 24 bits: v +- 0.5 exact in float64


def _f32_stochastic(v, rng):
    r = np.floor(v)
    # frac: a float32 subtraction, exact except for v in (-1/2, 0), where it rounds (and can
    # reach 1.0); the C copies this rounding. 0 for |v| >= 2^23, so r + 1 below is exact
    frac = v - r
    u = (rng.bits(v.shape) >> np.uint32(8)).astype(np.float32)  # float32 integers < 2^24
    u *= np.float32(2.0**-24)  # [0, 1), exact
    return r + (u < frac)  # float32


# The shift modes work IN PLACE on p (a fresh int64 array owned by the caller).
def _shift_floor(p, shift, rng):
    p >>= shift
    return p


def _shift_nearest(p, shift, rng):
    # ties away from zero: (p + 2^(s-1) - (p < 0)) >> s equals sign(p) (|p| + 2^(s-1)) >> s
    if shift.ndim == 0 and int(shift) == 0:
        return p
    if shift.ndim == 0 or bool((shift > 0).all()):
        neg = p >> 63  # -1 where p < 0, else 0: int64 like p (no bool -> int64 cast)
        p += np.int64(1) << (shift - 1)
        p += neg
    else:
        neg = p < 0
        on = (shift > 0).astype(np.int64)  # small (per channel): shift 0 means divide by 1
        p += on << np.maximum(shift - 1, 0)
        p -= neg * on
    p >>= shift
    return p


def _shift_stochastic(p, shift, rng):
    bits = rng.bits(np.shape(p)).astype(np.int64)  # [0, 2^32)
    p += np.where(shift <= 32, bits >> np.maximum(32 - shift, 0),
                  bits << np.maximum(shift - 32, 0))
    p >>= shift
    return p


# Host shortcut (same integers): v = p * 2^-shift held EXACTLY in float64 (|p| < 2^53, so
# v's bits span at most 53 places and v +- 0.5 is exact too) is rounded in place by float
# operations instead of int64 shifts: floor(v) == p >> shift, and ties away from zero
# trunc(v + copysign(0.5, v)) == sign(p) ((|p| + 2^(shift-1)) >> shift). Stochastic
# rounding has no such form (it consumes the stream's bits) and stays on round_shift.
SIGN_BIT, HALF_BITS = np.uint64(1 << 63), np.uint64(0x3FE0000000000000)  # float64 0.5


def _dyadic_floor(v):
    return np.floor(v, out=v)


def _dyadic_nearest(v):
    half = v.view(np.uint64) & SIGN_BIT  # copysign(0.5, v) from v's sign bit (no libm call)
    half |= HALF_BITS
    v += half.view(np.float64)
    return np.trunc(v, out=v)


ROUND_DYADIC: dict[str, Callable] = {"floor": _dyadic_floor, "nearest": _dyadic_nearest}

ROUND_F32: dict[str, Callable] = {"floor": _f32_floor, "nearest": _f32_nearest,
                                  "stochastic": _f32_stochastic}
ROUND_SHIFT: dict[str, Callable] = {"floor": _shift_floor, "nearest": _shift_nearest,
                                    "stochastic": _shift_stochastic}
MODES = tuple(ROUND_F32)


def round_f32(v: np.ndarray, mode: str, rng: Stream | None = None) -> np.ndarray:
    """int64 rounding of float32 values ``v`` (|v| <= 2^40, no NaN) by the named mode."""
    return round_f32_integral(v, mode, rng).astype(np.int64)


def round_f32_integral(v: np.ndarray, mode: str, rng: Stream | None = None) -> np.ndarray:
    """round_f32 with the result left as integral floats (float32 or float64, exact)."""
    if mode not in ROUND_F32:
        raise unknown("rounding mode", mode, ROUND_F32)
    return ROUND_F32[mode](_check_f32(v), rng)


def round_shift(p: np.ndarray, shift: np.ndarray | int, mode: str,
                rng: Stream | None = None) -> np.ndarray:
    """int64 rounding of ``p / 2**shift`` (``0 <= shift <= 62``, |p| < 2^62)."""
    return round_shift_inplace(np.array(p, np.int64), np.asarray(shift, np.int64), mode, rng)


def round_shift_inplace(p: np.ndarray, shift: np.ndarray, mode: str,
                        rng: Stream | None = None) -> np.ndarray:
    """round_shift on an int64 array the caller owns (it is overwritten and returned)."""
    if mode not in ROUND_SHIFT:
        raise unknown("rounding mode", mode, ROUND_SHIFT)
    return ROUND_SHIFT[mode](p, shift, rng)
