"""Property tests of the integer primitives against float references, with stated bounds."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrain.errors import EdgetrainError
from edgetrain.numerics import (
    RangeTracker,
    Stream,
    dequantize,
    exp_q30,
    from_range,
    log2_q30,
    multiplier,
    requantize,
    round_f32,
    round_shift,
    softmax_ce_q30,
)
from edgetrain.numerics.config import get
from edgetrain.numerics.qparams import pow2_ceil, quantize

finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@given(st.lists(finite, min_size=1, max_size=50))
def test_round_modes_bound_the_float(values):
    v = np.array(values, np.float32)
    fl = round_f32(v, "floor")
    assert fl.dtype == np.int64
    near = round_f32(v, "nearest")
    sto = round_f32(v, "stochastic", Stream(3))
    np.testing.assert_array_equal(fl, np.floor(v).astype(np.int64))
    assert np.all(np.abs(near - v.astype(np.float64)) <= 0.5)
    assert np.all((sto == fl) | (sto == fl + 1))


def test_nearest_ties_away_from_zero():
    v = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], np.float32)
    np.testing.assert_array_equal(round_f32(v, "nearest"), [1, 2, 3, -1, -2, -3])


def test_stochastic_rounding_is_unbiased_and_seeded():
    v = np.full(20000, 0.3, np.float32)
    a, b = round_f32(v, "stochastic", Stream(7)), round_f32(v, "stochastic", Stream(7))
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean() - 0.3) < 0.02
    assert not np.array_equal(a, round_f32(v, "stochastic", Stream(8)))


def test_unknown_rounding_mode_is_named():
    with pytest.raises(EdgetrainError, match="did you mean 'nearest'"):
        round_f32(np.zeros(1, np.float32), "neares")


@given(st.integers(-(2**61), 2**61), st.integers(0, 62))
def test_round_shift_matches_exact_division(p, shift):
    exact = p / 2**shift
    fl = int(round_shift(np.array([p]), shift, "floor")[0])
    near = int(round_shift(np.array([p]), shift, "nearest")[0])
    assert fl == p >> shift
    assert abs(near - exact) <= 0.5
    sto = int(round_shift(np.array([p]), shift, "stochastic", Stream(1))[0])
    assert sto in (fl, fl + 1)


@given(st.floats(1e-11, 127.9))
def test_multiplier_is_exact(M):
    m, shift = multiplier(np.float32(M))
    assert int(m) * 2.0 ** -int(shift) == float(np.float32(M))
    assert 2**23 <= int(m) < 2**24


def test_scalar_multiplier_matches_the_per_channel_path():
    """The 0-d fast path and the array path derive the same (m, shift) from every float32."""
    bits = np.random.default_rng(0).integers(0, 2**31, 5000).astype(np.uint32)
    extremes = np.array([0, 1, 0x007FFFFF, 0x00800000, 0x42FFFFFF, 0x43000000, 0x7F7FFFFF],
                        np.uint32)
    M = np.concatenate([bits, extremes]).view(np.float32)  # sign bit clear: >= 0 or NaN
    M = M[~np.isnan(M)]
    m_arr, s_arr = multiplier(M)
    for i in range(len(M)):
        m, shift = multiplier(M[i])
        np.testing.assert_array_equal([m, shift], [m_arr[i], s_arr[i]])
        assert m.dtype == shift.dtype == np.int64
    with pytest.raises(FloatingPointError):
        multiplier(np.float32(np.nan))


def test_stream_bits_do_not_depend_on_earlier_calls():
    """bits() caches its per-size offsets: a call of one size after another size draws the
    same values as a fresh stream advanced the same number of times."""
    a, b = Stream(7), Stream(7)
    a.bits((3, 5))
    b.bits((2,))
    np.testing.assert_array_equal(a.bits((4, 4)), b.bits((4, 4)))
    np.testing.assert_array_equal(a.bits((15,)), b.bits((3, 5)).reshape(-1))


@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=30),
       st.floats(1e-6, 10.0), st.integers(-128, 127))
def test_requantize_within_half_a_step(accs, M, zero):
    acc = np.array(accs, np.int64)
    q = requantize(acc, np.float32(M), zero, "nearest", lo=-(2**31), hi=2**31 - 1)
    ref = acc * float(np.float32(M)) + zero
    inside = np.abs(ref) < 2**31 - 2
    assert np.all(np.abs(q[inside] - ref[inside]) <= 0.5 + 1e-9)
    qf = requantize(acc, np.float32(M), zero, "floor", lo=-(2**31), hi=2**31 - 1)
    np.testing.assert_array_equal(qf[inside], np.floor(ref[inside]).astype(np.int64))


def test_requantize_saturates_and_checks_range():
    np.testing.assert_array_equal(requantize(np.array([10**6, -(10**6)]), np.float32(1.0), 0,
                                             "floor"), [127, -128])
    with pytest.raises(OverflowError):
        requantize(np.array([2**40]), np.float32(0.5), 0, "floor")


@given(finite, finite, st.booleans())
def test_from_range_covers_the_range(a, b, symmetric):
    lo, hi = min(a, b), max(a, b)
    qp = from_range(np.float32(lo), np.float32(hi), symmetric)
    assert -128 <= int(qp.zero) <= 127
    x = np.array([lo, hi, 0.0], np.float32)
    back = dequantize(quantize(x, qp, "nearest"), qp)
    assert np.all(np.abs(back - x) <= float(qp.scale) * 1.0001)  # z = floor(.): one step
    assert back[2] == 0.0  # real zero is exactly representable


@given(st.floats(1e-30, 1e30))
def test_pow2_ceil(s):
    p = float(pow2_ceil(np.float32(s)))
    assert p >= float(np.float32(s)) and p / 2 < float(np.float32(s))
    assert np.log2(p) == int(np.log2(p))


def test_per_channel_quantization_uses_each_channel_scale():
    w = np.array([[1.0, -0.25], [0.02, 0.002]], np.float32)
    qp = from_range(w.min(axis=1), w.max(axis=1), symmetric=True)
    q = quantize(w, qp, "nearest")
    np.testing.assert_array_equal(q, [[127, -32], [127, 13]])


@given(st.integers(-32 * 2**30, 0))
def test_exp_q30_error_bound(t):
    assert abs(int(exp_q30(np.int64(t))) / 2**30 - np.exp(t / 2**30)) <= 1e-8


@given(st.integers(1, 2**62 - 1))
def test_log2_q30_error_bound(x):
    assert abs(int(log2_q30(np.int64(x))) / 2**16 - np.log2(x / 2**30)) <= 2**-15


@settings(max_examples=50)
@given(st.lists(st.integers(-128, 127), min_size=2, max_size=12), st.floats(0.01, 0.5))
def test_softmax_ce_matches_float(logits, scale):
    q = np.array([logits], np.int8)
    label = np.array([len(logits) // 2])
    grad, loss = softmax_ce_q30(q, np.float32(scale), label)
    z = np.maximum((q[0].astype(np.float64) - q.max()) * float(np.float32(scale)), -32.0)
    p = np.exp(z) / np.exp(z).sum()
    ref = p.copy()
    ref[label[0]] -= 1
    assert np.all(np.abs(grad[0] / 2**30 - ref) <= 1e-6)  # Q16 input rounding dominates
    ref_loss = -np.log(p[label[0]])
    assert abs(loss[0] / 2**16 - ref_loss) <= 1e-4 * max(1.0, ref_loss)


def test_tracker_moving_average_and_first_observation():
    t = RangeTracker.new()
    t.observe(-2.0, 4.0, 0.1)
    assert (float(t.lo), float(t.hi)) == (-2.0, 4.0)
    t.observe(0.0, 0.0, 0.1)
    np.testing.assert_array_equal([t.lo, t.hi], np.array([-1.8, 3.6], np.float32))
    with pytest.raises(FloatingPointError):
        t.observe(np.nan, 1.0, 0.1)


def test_named_configurations():
    assert get("paper").round_update == "floor" and not get("paper").weight_channels
    with pytest.raises(EdgetrainError, match="did you mean 'paper'"):
        get("papr")
