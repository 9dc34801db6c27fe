"""Requantization with an integer multiplier and shift (as TFLite's
MultiplyByQuantizedMultiplier; the rescaling step of Deutel et al. 2024, section on the
forward and backward GEMMs, done without a float temporary).

A float32 real multiplier M > 0 is *exactly* m * 2^-shift with m its 24-bit significand
(read from the float's bits): no rounding happens when it is derived, so Python and C derive
the same (m, shift) from the same float32 M. Requantization then is

    q = saturate(round_shift(acc * m, shift, mode) + zero, lo, hi)

with an int64 product. Input ranges (checked): |acc| < 2^38, 0 <= M < 128 (larger M is
clamped to the largest float32 below 128); shift is clamped to 62 without rescaling m, so
an M below 2^-39 acts as m * 2^-62, in [2^-39, 2^-38) (the same in C).

Host shortcut, same integers: while max|acc| < 2^29 (so |acc| m < 2^53), acc * m * 2^-shift is held exactly
in float64 and rounded there (``rounding.ROUND_DYADIC``; floor and nearest), which is
several times faster in NumPy than the int64 product and shifts. C keeps the int64 form.

>>> m, sh = multiplier(np.float32(0.75))
>>> int(m), int(sh)
(12582912, 24)
>>> requantize(np.array([100, -100]), np.float32(0.75), 0, "nearest").tolist()
[75, -75]
"""

from __future__ import annotations

import math

import numpy as np

from edgetrain.numerics.qparams import QMAX, QMIN
from edgetrain.numerics.rounding import ROUND_DYADIC, Stream, round_shift_inplace

ACC_LIMIT = 2**38
DYADIC_ACC_LIMIT = 2**29  # |acc| below this: acc * M (24-bit m) is exact in float64
M_EXACT = 2.0**-39  # from here up M == m * 2^-shift with shift <= 62
M_MAX = np.array(0x42FFFFFF, np.uint32).view(np.float32)  # largest float32 below 128


def multiplier(M) -> tuple[np.ndarray, np.ndarray]:
    """(m int64, shift int64) with M == m * 2^-shift exactly; M = 0 or subnormal -> (0, 0)."""
    M = np.minimum(np.asarray(M, np.float32), M_MAX)
    if M.ndim == 0:
        return _multiplier_scalar(M)
    if (~(M >= 0)).any():
        raise FloatingPointError(f"requantization multiplier must be >= 0, got {M}")
    u = M.view(np.uint32).astype(np.int64)
    exp = (u >> 23) & 0xFF
    m = np.where(exp > 0, (u & 0x7FFFFF) | 0x800000, 0)
    shift = np.where(exp > 0, np.minimum(150 - exp, 62), 0)
    return m.astype(np.int64), shift.astype(np.int64)


def _multiplier_scalar(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """multiplier() of one float32 (0-d) with Python ints: the same bits, less overhead."""
    if not M >= 0:
        raise FloatingPointError(f"requantization multiplier must be >= 0, got {M}")
    u = int(M.view(np.uint32))
    exp = (u >> 23) & 0xFF
    m, shift = ((u & 0x7FFFFF) | 0x800000, min(150 - exp, 62)) if exp > 0 else (0, 0)
    return np.array(m, np.int64), np.array(shift, np.int64)


def requantize(acc: np.ndarray, M, zero, mode: str, rng: Stream | None = None,
               lo: int = QMIN, hi: int = QMAX, axis: int = 1,
               extremes: tuple[int, int] | None = None) -> np.ndarray:
    """saturate(round(acc * M) + zero, lo, hi); M and zero may be per-channel along `axis`.
    `acc` holds integers (an int array, or a float array of exact integers as the host
    GEMMs return). `extremes`: (min, max) of acc when the caller has them already."""
    acc = np.asarray(acc)
    bound = _checked_bound(acc, extremes)
    M = np.minimum(np.asarray(M, np.float32), M_MAX)
    zero = np.asarray(zero, np.int64)
    dtype = np.int8 if QMIN <= lo and hi <= QMAX else np.int32
    if mode in ROUND_DYADIC and bound < DYADIC_ACC_LIMIT:
        M = _multiplier_f64(M)
        within = _stays_within(bound, M, zero, lo, hi)
        return _requantize_dyadic(acc, M, zero, mode, None if within else (lo, hi), axis,
                                  dtype)
    shape = acc.shape
    acc, M, zero = _channel_view(acc, M, zero, axis)
    m, shift = multiplier(M)
    q = round_shift_inplace(acc.astype(np.int64) * m, shift, mode, rng)  # |acc m| < 2^62
    q += zero
    q.clip(np.int64(lo), np.int64(hi), out=q)  # int64 bounds: no Python-int dispatch
    return q.astype(dtype).reshape(shape)


def _channel_view(acc: np.ndarray, M, zero: np.ndarray, axis: int):
    """(acc, M, zero) as they are, or with a per-channel M or zero along `axis`: acc viewed
    as [outer, C, inner] (so inner loops are long) and M, zero as [1, C, 1]."""
    if not (np.ndim(M) or zero.ndim):
        return acc, M, zero
    shape = acc.shape
    acc = acc.reshape(math.prod(shape[:axis]), -1, math.prod(shape[axis + 1:]))
    M, zero = (np.reshape(a, (1, -1, 1)) if np.ndim(a) else a for a in (M, zero))
    return acc, M, zero


def _requantize_dyadic(acc, M, zero, mode, bounds, axis, dtype) -> np.ndarray:
    """requantize's float64 path (M float64, exact): acc * M rounded, zero added (unless
    it is all 0), clipped to `bounds` (None: the caller proved no value leaves them)."""
    shape = acc.shape
    acc, M, zero = _channel_view(acc, M, zero, axis)
    v = ROUND_DYADIC[mode](np.multiply(acc, M, dtype=np.float64))  # integral float64
    if zero.any():
        v += zero
    if bounds is not None:
        v.clip(np.float64(bounds[0]), np.float64(bounds[1]), out=v)
    return v.astype(dtype).reshape(shape)


def _stays_within(bound: int, M, zero: np.ndarray, lo: int, hi: int) -> bool:
    """Whether every round(acc * M) + zero with |acc| <= bound lies in [lo, hi] (so the
    clip is a no-op): |round(acc M)| <= bound max(M) + 1, with a margin for the float."""
    reach = bound * float(M if np.ndim(M) == 0 else M.max()) * (1 + 2.0**-40) + 1.0
    z_lo, z_hi = (int(zero), int(zero)) if zero.ndim == 0 else (int(zero.min()),
                                                                int(zero.max()))
    return lo <= z_lo - reach and z_hi + reach <= hi


def _checked_bound(acc: np.ndarray, extremes) -> int:
    """max |acc| (0 when empty), checked against the accumulator range |acc| < 2^38."""
    if not acc.size:
        return 0
    a_min, a_max = extremes if extremes is not None else (acc.min(), acc.max())
    if int(a_max) >= ACC_LIMIT or int(a_min) <= -ACC_LIMIT:
        raise OverflowError(f"accumulator out of range |acc| < 2^38 ({a_min}, {a_max})")
    return max(-int(a_min), int(a_max))


def _multiplier_f64(M: np.ndarray):
    """m * 2^-shift of multiplier(M) as float64 (M clamped already): M itself when M is 0
    or >= 2^-39 (shift <= 62, nothing clamped), else from (m, shift)."""
    if M.ndim == 0:
        f = float(M)
        if f == 0.0 or f >= M_EXACT:
            return f
    elif ((M >= M_EXACT) | (M == 0)).all():
        return M.astype(np.float64)
    m, shift = multiplier(M)  # checks M >= 0 (and not NaN)
    return np.ldexp(m.astype(np.float64), -shift.astype(np.int32))  # exact: 24-bit m
