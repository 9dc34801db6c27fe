"""Fixed-point exp and log, and the integer softmax cross-entropy gradient.

Deutel et al. 2024 compute the loss gradient on the device without a float copy of the
logits; this module defines that step with integers only (no libm), so C does the same:

* ``exp_q30(t)``: t int64 Q30 (t <= 0) -> exp(t) in Q30. Range reduction t = r - k ln2
  (k = (-t) // LN2_Q30, r in (-ln2, 0]), degree-9 Taylor polynomial of exp(r) by Horner with
  Q30 coefficients and arithmetic shifts, then >> k. |error| <= 1e-8 (absolute, on [0, 1]).
* ``log2_q30(x)``: x int64 Q30 in [1, 2^62) -> log2(x / 2^30) in Q16, by normalisation to
  [1, 2) (bits below Q30 dropped) and 16 rounds of repeated squaring. |error| <= 2^-15.
* ``softmax_ce_q30(logits_q, s_out, labels)``: with d = q - max(q) (int), t = nearest(d * (s *
  2^30)) in float32 then int64 (|d * s| <= 32 is clamped), e = exp_q30(t), S = sum_j e_j,
  p_i = (e_i << 30) // S, gradient p - onehot in Q30 (int64[B, K]) and per-sample loss
  -ln p_label = ln(S / 2^30) - t_label / 2^30 in Q16 (log-sum-exp: exact for tiny p too).

>>> int(exp_q30(np.int64(0)))
1073741824
>>> round(int(exp_q30(np.int64(-(1 << 30)))) / 2**30, 6)
0.367879
>>> int(log2_q30(np.int64(1 << 29)))
-65536
"""

from __future__ import annotations

import math

import numpy as np

from edgetrain.numerics.rounding import round_f32

ONE_Q30 = 1 << 30
LN2_Q30 = 744261118  # round(ln 2 * 2^30)
LN2_Q16 = 45426  # round(ln 2 * 2^16)
T_MIN = -32 * ONE_Q30  # exp(-32) < 2^-46: below Q30 resolution
TAYLOR_Q30 = tuple(round(ONE_Q30 / math.factorial(n)) for n in range(10))  # 1/n! in Q30


def exp_q30(t: np.ndarray) -> np.ndarray:
    """exp(t / 2^30) in Q30 for int64 t <= 0 (values below -32 give 0)."""
    t = np.asarray(t, np.int64)
    if np.any(t > 0):
        raise ValueError("exp_q30 takes t <= 0")
    t = np.maximum(t, T_MIN)
    k = (-t) // LN2_Q30  # int64, 0..46
    r = t + k * LN2_Q30  # Q30 in (-ln2, 0]
    acc = np.full(t.shape, TAYLOR_Q30[9], np.int64)
    for n in range(8, -1, -1):
        acc = TAYLOR_Q30[n] + ((acc * r) >> 30)  # |acc * r| < 2^61
    return acc >> np.minimum(k, 62)


def log2_q30(x: np.ndarray) -> np.ndarray:
    """log2(x / 2^30) in Q16 (int64) for int64 x in [1, 2^62)."""
    x = np.asarray(x, np.int64)
    if np.any((x < 1) | (x >= 1 << 62)):
        raise ValueError("log2_q30 takes 1 <= x < 2^62")
    n = np.frexp(x.astype(np.float64))[1].astype(np.int64) - 1  # floor(log2 x)
    n = np.where(x >= (np.int64(1) << n), n, n - 1)  # float64 rounding up near 2^k
    y = np.where(n <= 30, x << np.maximum(30 - n, 0), x >> np.maximum(n - 30, 0))  # [1, 2)
    out = (n - 30) << 16
    for bit in range(15, -1, -1):
        y = (y * y) >> 30  # Q30 in [1, 4)
        big = y >= (2 << 30)
        y = np.where(big, y >> 1, y)
        out = out + (big.astype(np.int64) << bit)
    return out


def softmax_ce_q30(logits_q: np.ndarray, s_out, labels: np.ndarray):
    """(gradient p - onehot: int64[B, K] Q30, loss -ln p_label: int64[B] Q16)."""
    d = logits_q.astype(np.int32) - logits_q.max(axis=1, keepdims=True).astype(np.int32)
    scale = np.float32(s_out) * np.float32(ONE_Q30)  # float32 scalar
    v = np.maximum(d.astype(np.float32) * scale, np.float32(T_MIN))  # float32[B, K], <= 0
    t = round_f32(v, "nearest")  # int64[B, K] Q30, <= 0
    e = exp_q30(t)  # int64[B, K] Q30
    total = e.sum(axis=1, keepdims=True)  # int64[B, 1], >= 2^30 (the max logit gives 1)
    p = (e << 30) // total  # int64[B, K] Q30
    rows = np.arange(len(labels))
    grad = p.copy()
    grad[rows, labels] -= ONE_Q30
    loss = ((log2_q30(total[:, 0]) * LN2_Q16) >> 16) - (t[rows, labels] >> 14)  # int64[B] Q16
    return grad, loss
