"""Drift transforms: each named transform does what it says, seeded, on both splits."""

import numpy as np
import pytest

from edgetrain import data
from edgetrain.data import drift
from edgetrain.data.dataset import make_dataset
from edgetrain.errors import EdgetrainError


def images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, 1, 8, 8)).astype(np.float32)
    x[0, 0] = 0.0
    x[0, 0, 0, 0] = 1.0  # sample 0: one bright pixel, top-left, for exact checks
    x[1, 0] = 0.0
    x[1, 0, 0, 0], x[1, 0, 7, 7] = 0.0, 1.0  # data range stays [0, 1]
    return make_dataset("img", x, np.arange(n) % 3, x[::-1].copy(), np.arange(n) % 3)


def series(n=6):
    x = np.arange(n * 3 * 5, dtype=np.float32).reshape(n, 3, 5)
    return make_dataset("ts", x, np.arange(n) % 2, x + 1, np.arange(n) % 2)


def test_rotate_90_moves_pixels_like_rot90():
    ds = images()
    out = drift.apply(ds, ["rotate:90"])
    np.testing.assert_allclose(out.x_train, np.rot90(ds.x_train, k=1, axes=(2, 3)), atol=1e-5)
    np.testing.assert_allclose(out.x_test, np.rot90(ds.x_test, k=1, axes=(2, 3)), atol=1e-5)


def test_rotate_small_angle_interpolates_and_zero_is_identity():
    ds = images()
    np.testing.assert_allclose(drift.apply(ds, ["rotate:0"]).x_train, ds.x_train, atol=1e-6)
    out = drift.apply(ds, ["rotate:45"]).x_train[0, 0]
    assert out[0, 0] == 0.0  # the corner pixel rotates off the grid: zero fill
    ones = make_dataset("ones", np.ones((2, 1, 9, 9), np.float32), np.array([0, 1]),
                        np.ones((2, 1, 9, 9), np.float32), np.array([0, 1]))
    turned = drift.apply(ones, ["rotate:10"]).x_train[0, 0]
    np.testing.assert_allclose(turned[2:7, 2:7], 1.0, atol=1e-6)  # bilinear keeps constants
    assert 0.0 < turned[0, 0] < 1.0 or turned[0, 0] == 0.0
    assert turned.sum() < 81.0  # corners partly leave the grid


def test_rotate_needs_images():
    with pytest.raises(EdgetrainError, match="needs images"):
        drift.apply(series(), ["rotate:10"])


def test_noise_is_seeded_with_requested_std():
    ds = data.load("digits")
    a = drift.apply(ds, ["noise:0.2"], seed=3)
    b = drift.apply(ds, ["noise:0.2"], seed=3)
    c = drift.apply(ds, ["noise:0.2"], seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert abs(float((a.x_train - ds.x_train).std()) - 0.2) < 0.005
    assert not np.array_equal(a.x_train[:len(a.x_test)] - ds.x_train[:len(a.x_test)],
                              a.x_test - ds.x_test)  # own stream per split


def test_invert_and_contrast():
    ds = images()
    np.testing.assert_allclose(drift.apply(ds, ["invert"]).x_train, 1.0 - ds.x_train)
    flat = drift.apply(ds, ["contrast:0"]).x_train
    np.testing.assert_allclose(flat, np.broadcast_to(ds.x_train.mean(axis=(1, 2, 3),
                                                                      keepdims=True),
                                                     flat.shape), atol=1e-6)
    strong = drift.apply(ds, ["contrast:10"]).x_train
    assert strong.min() == 0.0 and strong.max() == 1.0  # clipped to the train range


def test_classes_keeps_a_range_and_labels():
    ds = data.load("digits")
    out = drift.apply(ds, ["classes:3-5"])
    np.testing.assert_array_equal(np.unique(out.y_train), [3, 4, 5])
    np.testing.assert_array_equal(np.unique(out.y_test), [3, 4, 5])
    assert out.num_classes == 10 and len(out.y_train) == np.isin(ds.y_train, [3, 4, 5]).sum()
    with pytest.raises(EdgetrainError, match="has classes 0..9"):
        drift.apply(ds, ["classes:8-12"])


def test_gain_and_offset_per_channel():
    ds = series()
    g = drift.apply(ds, ["gain:2@1"])
    np.testing.assert_array_equal(g.x_train[:, 1], 2 * ds.x_train[:, 1])
    np.testing.assert_array_equal(g.x_train[:, [0, 2]], ds.x_train[:, [0, 2]])
    o = drift.apply(ds, ["offset:-0.5"])
    np.testing.assert_array_equal(o.x_test, ds.x_test - 0.5)
    with pytest.raises(EdgetrainError, match="no channel 3"):
        drift.apply(ds, ["gain:2@3"])


def test_chained_specs_name_the_result_and_leave_source_alone():
    ds = images()
    before = ds.x_train.copy()
    out = drift.apply(ds, ["invert", "offset:1"])
    assert out.name == "img+invert,offset:1" and "drift: invert,offset:1" in out.description
    np.testing.assert_allclose(out.x_train, 2.0 - before)
    np.testing.assert_array_equal(ds.x_train, before)


@pytest.mark.parametrize("spec, message", [
    ("rotat:5", "did you mean 'rotate'"),
    ("rotate", "needs a parameter"),
    ("rotate:", "missing parameter"),
    ("rotate:abc", "not a finite number"),
    ("noise:-1", ">= 0"),
    ("invert:2", "takes no parameter"),
    ("classes:5-2", "A <= B"),
    ("gain:2@x", "must be an index"),
])
def test_bad_specs(spec, message):
    with pytest.raises(EdgetrainError, match=message):
        drift.apply(images(), [spec])
