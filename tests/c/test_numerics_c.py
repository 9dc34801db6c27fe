"""The runtime's C primitives (et_numerics.c) against edgetrain.numerics, the specification:
many random in-range inputs per primitive and rounding mode, compared integer for integer
(floats bit for bit). Host build here; tests/cross runs the same on Cortex-M."""

import numpy as np
import primitives as P  # tests/c helper
import pytest

from edgetrain.export.toolchains import available

OK, WHY = available("host")
pytestmark = pytest.mark.skipif(not OK, reason=f"host C compiler missing: {WHY}")

MODES = ["floor", "nearest", "stochastic"]


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    return P.Harness("host", tmp_path_factory.mktemp("prim_host"))


def test_stream(h):
    P.compare_stream(h, np.random.default_rng(0))


@pytest.mark.parametrize("mode", MODES)
def test_round_f32(h, mode):
    P.compare_round_f32(h, np.random.default_rng(1), mode)


@pytest.mark.parametrize("mode", MODES)
def test_round_shift(h, mode):
    P.compare_round_shift(h, np.random.default_rng(2), mode)


@pytest.mark.parametrize("mode", MODES)
def test_requantize(h, mode):
    P.compare_requantize(h, np.random.default_rng(3), mode)


@pytest.mark.parametrize(("symmetric", "pow2"), [(False, False), (True, False), (False, True),
                                                 (True, True)])
def test_qparams(h, symmetric, pow2):
    P.compare_qparams(h, np.random.default_rng(4), symmetric, pow2)


@pytest.mark.parametrize("mode", MODES)
def test_quantize(h, mode):
    P.compare_quantize(h, np.random.default_rng(5), mode)


def test_exp_log(h):
    P.compare_fixed(h, np.random.default_rng(6))


@pytest.mark.parametrize("k", [2, 10, 37])
def test_softmax_ce(h, k):
    P.compare_softmax(h, np.random.default_rng(7), k)


def test_out_of_range_inputs_set_the_error_flag(h):
    v = np.array([2.0**41], np.float32)
    _, err = h.call("round_f32", 1, [v])
    assert err == 1  # ET_ERR_ROUND_RANGE: Python raises for the same input
    _, err = h.call("fixed", 1, [np.array([5], np.int64), np.array([1], np.int64)])
    assert err == 4  # ET_ERR_EXP_RANGE


def test_nearest_at_the_edges_of_the_two_truncation_form(h):
    # et_nearest_half: trunc(2v) - trunc(v) below 2^30, the truncation from 2^30 on
    from edgetrain.numerics.rounding import Stream, round_f32

    ties = np.arange(2.0**21, 2.0**21 + 64) + 0.5  # the largest exact halves are below 2^23
    near = [2.0**30 - 64, 2.0**30, 2.0**30 + 128, 2.0**31 - 128, 2.0**31, 2.0**31 + 256,
            2.0**23 - 0.5, 2.0**22 + 0.5, 0.5 - 2.0**-25, 1.5, 2.5, 3.5]
    v = np.concatenate([ties, -ties, near, np.negative(near)]).astype(np.float32)
    got = h.records("round_f32", len(v), [v], np.int64, "nearest", 1)
    np.testing.assert_array_equal(got, round_f32(v, "nearest", Stream(1)))
