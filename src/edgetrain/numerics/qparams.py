"""Quantization parameters: real = scale * (q - zero), q int8 in [-128, 127].

Deutel et al. 2024 store uint8 with s = (f_max - f_min) / 255 and z = floor(-f_min / s); the
int8 form used here is the same arithmetic with the zero point moved by -128. Scales are
float32, zero points int32; per tensor (shape ``()``) or per output channel (shape ``(C,)``,
symmetric, zero point 0). Every step below is a float32 scalar/element-wise operation in a
fixed order, so C computes the same bits:

* affine:    lo = min(f_min, 0); hi = max(f_max, 0); s = max((hi - lo) / 255, S_MIN);
             z = clamp(floor(-lo / s) - 128, -128, 127)
* symmetric: s = max(max(|f_min|, |f_max|) / 127, S_MIN); z = 0
* pow2 (option): s is then replaced by the next power of two >= s (exact, from its bits)

>>> qp = from_range(np.float32(-1.0), np.float32(1.0))
>>> float(qp.scale), int(qp.zero)
(0.007843137718737125, -1)
>>> quantize(np.array([0.5, -2.0], np.float32), qp, "nearest").tolist()
[63, -128]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetrain.numerics.rounding import Stream, round_f32_integral

QMIN, QMAX = -128, 127
S_MIN = np.float32(2.0**-40)  # smallest scale: keeps every division finite


@dataclass(frozen=True)
class QParams:
    scale: np.ndarray  # float32[] or float32[C]
    zero: np.ndarray  # int32[] or int32[C]

    def __post_init__(self):
        object.__setattr__(self, "scale", np.asarray(self.scale, np.float32))
        object.__setattr__(self, "zero", np.asarray(self.zero, np.int32))


def pow2_ceil(s: np.ndarray) -> np.ndarray:
    """The smallest power of two >= s (float32 > 0, normal), by bit operations.

    >>> pow2_ceil(np.float32(0.3)).tolist(), pow2_ceil(np.float32(0.25)).tolist()
    (0.5, 0.25)
    """
    u = np.asarray(s, np.float32).view(np.uint32)
    exp = u & np.uint32(0x7F800000)
    bump = np.where((u & np.uint32(0x007FFFFF)) != 0, np.uint32(0x00800000), np.uint32(0))
    return (exp + bump).astype(np.uint32).view(np.float32)


def from_range(f_min, f_max, symmetric: bool = False, pow2: bool = False) -> QParams:
    """QParams covering [f_min, f_max] (float32 scalars or per-channel arrays)."""
    lo = np.minimum(np.asarray(f_min, np.float32), np.float32(0))
    hi = np.maximum(np.asarray(f_max, np.float32), np.float32(0))
    if symmetric:
        s = np.maximum(np.maximum(-lo, hi) / np.float32(127), S_MIN)
        s = pow2_ceil(s) if pow2 else s
        return QParams(s, np.zeros(s.shape, np.int32))
    s = np.maximum((hi - lo) / np.float32(255), S_MIN)
    s = pow2_ceil(s) if pow2 else s
    z = np.floor(-lo / s).astype(np.int64) - 128
    return QParams(s, z.clip(np.int64(QMIN), np.int64(QMAX)).astype(np.int32))


def saturate(q: np.ndarray, lo: int = QMIN, hi: int = QMAX) -> np.ndarray:
    """Clamp integers to [lo, hi] and store as int8 (or int32 when the range is wider)."""
    dtype = np.int8 if QMIN <= lo and hi <= QMAX else np.int32
    return np.asarray(q).clip(np.int64(lo), np.int64(hi)).astype(dtype)  # int64 bounds: fast


def _bcast(a: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """Per-channel parameter shaped to broadcast along `axis` of an ndim tensor."""
    if a.ndim == 0:
        return a
    shape = [1] * ndim
    shape[axis] = a.size
    return a.reshape(shape)


def quantize(x: np.ndarray, qp: QParams, mode: str, rng: Stream | None = None,
             axis: int = 0) -> np.ndarray:
    """int8 q = saturate(round(x / s) + z); per-channel parameters apply along `axis`."""
    x = np.asarray(x, np.float32)
    s, z = _bcast(qp.scale, x.ndim, axis), _bcast(qp.zero, x.ndim, axis)
    v = np.clip(x / s, np.float32(-2.0**20), np.float32(2.0**20))  # float32[x.shape]
    r = round_f32_integral(v, mode, rng)  # integral float32/float64, |r| <= 2^20
    q = r + z.astype(r.dtype)  # exact: |q| < 2^24
    return q.clip(q.dtype.type(QMIN), q.dtype.type(QMAX)).astype(np.int8)  # saturate


def dequantize(q: np.ndarray, qp: QParams, axis: int = 0) -> np.ndarray:
    """float32 s * (q - z): int subtraction first, then one float32 multiply."""
    s, z = _bcast(qp.scale, q.ndim, axis), _bcast(qp.zero, q.ndim, axis)
    if np.asarray(q).dtype.itemsize == 1:  # int8 codes: q - z (|.| <= 255) exact in float32
        return np.subtract(q, z, dtype=np.float32) * s
    return (q.astype(np.int32) - z).astype(np.float32) * s
