"""The host shortcuts of the integer primitives give the spec's integers bit for bit:
requantization rounded in exact float64 instead of int64 shifts, quantization rounded as
integral floats, 2x2 max pooling on int16 pairs. References below are written from
docs/numerics.md with Python ints, or are the general loops."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrain.numerics import Stream, multiplier, requant, requantize, round_f32
from edgetrain.numerics.qparams import QParams, quantize
from edgetrain.ops import pool

MODES = ("floor", "nearest")


def spec_round_shift(p: int, shift: int, mode: str) -> int:
    """docs/numerics.md section 1, on Python ints."""
    if mode == "floor" or shift == 0:
        return p >> shift
    mag = (abs(p) + (1 << (shift - 1))) >> shift
    return mag if p >= 0 else -mag


def spec_requantize(acc, M, zero, mode, lo=-128, hi=127) -> list[int]:
    m, shift = (int(v) for v in multiplier(np.float32(M)))
    return [min(max(spec_round_shift(int(a) * m, shift, mode) + int(zero), lo), hi)
            for a in acc]


multipliers = st.one_of(
    st.floats(0, 127.875, width=32),
    st.sampled_from([0.0, 0.5, 0.25, 2.0**-45, 1e-40, 2.0**-39, 2.0**-24, 1.0]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(2**37), 2**37), min_size=1, max_size=40), multipliers,
       st.integers(-128, 127), st.sampled_from(MODES), st.booleans())
def test_requantize_matches_the_integer_spec(accs, M, zero, mode, wide):
    lo, hi = (-(2**31), 2**31 - 1) if wide else (-128, 127)
    acc = np.array(accs, np.int64)
    want = spec_requantize(accs, M, zero, mode, lo, hi)
    got = requantize(acc, np.float32(M), zero, mode, lo=lo, hi=hi)
    np.testing.assert_array_equal(got, want)
    if np.abs(acc).max() < 2**24:  # the GEMMs hand over exact floats
        np.testing.assert_array_equal(
            requantize(acc.astype(np.float32), np.float32(M), zero, mode, lo=lo, hi=hi), want)


@pytest.mark.parametrize("mode", MODES)
def test_requantize_ties_and_signs(mode):
    acc = np.array([1, -1, 3, -3, 5, -5, 2**30 + 1, -(2**30) - 1, 0], np.int64)
    for M in (np.float32(0.5), np.float32(0.25), np.float32(2.0**-31)):
        np.testing.assert_array_equal(requantize(acc, M, 0, mode, lo=-(2**31), hi=2**31 - 1),
                                      spec_requantize(acc, M, 0, mode, -(2**31), 2**31 - 1))


@pytest.mark.parametrize("mode", MODES)
def test_float_and_integer_paths_agree_per_channel(mode, monkeypatch):
    rng = np.random.default_rng(5)
    acc = rng.integers(-(2**30), 2**30, (6, 5, 7)).astype(np.float64)  # [B, C, P]
    M = (rng.random(5) * 2.0 ** rng.integers(-40, 2, 5)).astype(np.float32)
    zero = rng.integers(-128, 128, 5).astype(np.int32)
    fast = requantize(acc, M, zero, mode)
    monkeypatch.setattr(requant, "DYADIC_ACC_LIMIT", 0)  # force the int64 product and shifts
    np.testing.assert_array_equal(fast, requantize(acc, M, zero, mode))


def test_large_accumulators_take_the_integer_path():
    acc = np.array([2**38 - 1, -(2**38) + 1, 2**38 - 3], np.int64)
    M = np.float32(0.3)  # m ~ 2^23: |acc| m ~ 2^61
    for mode in MODES:
        np.testing.assert_array_equal(
            requantize(acc, M, 0, mode, lo=-(2**31), hi=2**31 - 1),
            spec_requantize(acc, M, 0, mode, -(2**31), 2**31 - 1))


def spec_quantize(x, scale, zero, mode, seed) -> np.ndarray:
    """docs/numerics.md section 2: v = clamp(x / s, +-2^20), saturate(round(v) + z), with
    the rounding done in int64 from the stream's bits as section 1 writes it."""
    v = np.clip(x / scale, np.float32(-2.0**20), np.float32(2.0**20)).astype(np.float32)
    fl = np.floor(v).astype(np.int64)
    frac = (v - np.floor(v)).astype(np.float64)
    if mode == "floor":
        r = fl
    elif mode == "nearest":
        r = fl + ((frac > 0.5) | ((frac == 0.5) & (v >= 0)))
    else:
        u = (Stream(seed).bits(v.shape) >> np.uint32(8)).astype(np.float64) * 2.0**-24
        r = fl + (u < frac)
    return np.clip(r + zero, -128, 127).astype(np.int8)


values = st.floats(-3e6, 3e6, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=60), st.floats(2.0**-20, 10, width=32),
       st.integers(-128, 127), st.sampled_from(["floor", "nearest", "stochastic"]),
       st.integers(1, 2**32 - 1))
def test_quantize_matches_the_spec(xs, scale, zero, mode, seed):
    x = np.array(xs, np.float32)
    qp = QParams(np.float32(scale), np.int32(zero))
    np.testing.assert_array_equal(quantize(x, qp, mode, Stream(seed)),
                                  spec_quantize(x, np.float32(scale), zero, mode, seed))


def test_nearest_just_below_a_half_rounds_down():
    below = np.nextafter(np.float32(0.5), np.float32(0))  # 0.5 - 2^-25: v + 0.5 rounds in f32
    v = np.array([below, -below, np.float32(2.0**21 - 0.125), np.float32(-(2.0**21) + 0.125)])
    np.testing.assert_array_equal(round_f32(v, "nearest"), [0, 0, 2**21, -(2**21)])
    np.testing.assert_array_equal(quantize(v[:2], QParams(np.float32(1), np.int32(0)),
                                           "nearest"), [0, 0])


def test_quantize_and_rounding_refuse_nan():
    with pytest.raises(FloatingPointError):
        quantize(np.array([1.0, np.nan], np.float32), QParams(np.float32(1), np.int32(0)),
                 "nearest")
    with pytest.raises(FloatingPointError):
        round_f32(np.array([np.float32(2.0**41)]), "floor")


@pytest.mark.parametrize("shape", [(4, 3, 8, 6), (1, 1, 2, 2), (2, 2, 6, 4)])
@pytest.mark.parametrize("high", [-126, 2, 128])  # few distinct codes: many ties
def test_maxpool_pairs_path_matches_the_window_loops(shape, high, monkeypatch):
    rng = np.random.default_rng(high + 200)
    q = rng.integers(-128, high, shape).astype(np.int8)
    e = rng.integers(-128, 128, (shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(
        np.int8)
    attrs, zeros = {"kernel": 2}, [(-5, -7), (127, -128), (-128, 127)]
    fast = [(pool.int_maxpool2d_forward(attrs, q, zq, 127, "nearest", None), ze)
            for zq, ze in zeros]
    monkeypatch.setattr(pool, "_pairs_apply", lambda *args: False)  # the general loops
    for ((y, ctx), ze), (zq, _) in zip(fast, zeros):
        y0, ctx0 = pool.int_maxpool2d_forward(attrs, q, zq, 127, "nearest", None)
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_array_equal(ctx[0], ctx0[0])  # first maximum's offset
        np.testing.assert_array_equal(pool.int_maxpool2d_backward_codes(attrs, ctx, e, ze),
                                      pool.int_maxpool2d_backward_codes(attrs, ctx0, e, ze))
        assert (y.dtype, ctx[0].dtype) == (y0.dtype, ctx0[0].dtype) == (np.int8, np.int8)


@pytest.mark.parametrize("mode", MODES)
def test_requantize_clips_exactly_when_values_can_leave_the_range(mode):
    cases = [(np.array([-1000, 999, 1000, -999]), np.float32(0.1), 3),  # within: no clip
             (np.array([-1270, 1265, 1275, -1285]), np.float32(0.1), 0),  # at the edges
             (np.array([-(2**28), 2**28 - 1, 5]), np.float32(2.0**-21), -2)]
    for acc, M, zero in cases:
        np.testing.assert_array_equal(requantize(acc, M, zero, mode),
                                      spec_requantize(acc, M, zero, mode))
        per_channel = requantize(acc.reshape(1, -1, 1), np.full(len(acc), M), zero, mode)
        np.testing.assert_array_equal(per_channel.ravel(), spec_requantize(acc, M, zero, mode))
