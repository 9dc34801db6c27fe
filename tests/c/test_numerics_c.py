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
