"""Model files: exact round trips, and a clear error for every kind of broken file."""

import json
import pickle  # only to forge a foreign file; never loaded
import zipfile

import numpy as np
import pytest

from edgetrain import zoo
from edgetrain.engine.float32 import predict
from edgetrain.errors import EdgetrainError
from edgetrain.io import model_file
from edgetrain.ir import GraphBuilder


def small_graph():
    b = GraphBuilder("small", (5,), seed=1)
    h = b.add("relu", b.add("linear", "input", out_features=7))
    g = b.build(b.add("linear", h, out_features=3))
    g.meta["dataset"] = "toy"
    return g


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_graph_round_trip_is_exact(tmp_path, name):
    g = zoo.build(name, seed=3)
    path = model_file.save_graph(g, tmp_path / f"{name}.npz")
    back = model_file.load_graph(path)
    assert sorted(back.params) == sorted(g.params)
    for key, a in g.params.items():
        assert back.params[key].dtype == a.dtype
        np.testing.assert_array_equal(back.params[key], a)
    assert [(n.name, n.op, n.inputs, n.attrs, n.params) for n in back.nodes] == \
        [(n.name, n.op, n.inputs, n.attrs, n.params) for n in g.nodes]
    assert back.shapes == g.shapes and back.num_classes == g.num_classes
    x = np.random.default_rng(0).normal(size=(3, *g.input_shape)).astype(np.float32)
    np.testing.assert_array_equal(predict(back, x), predict(g, x))


def test_meta_and_provenance_are_kept(tmp_path):
    path = model_file.save_graph(small_graph(), tmp_path / "m.npz")
    assert model_file.load_graph(path).meta == {"dataset": "toy"}
    prov = model_file.read_provenance(path)
    assert prov["edgetrain"] and prov["created"].endswith("+00:00")


def test_bundle_keeps_integer_dtypes(tmp_path):
    arrays = {"q": np.array([-128, 0, 127], np.int8), "acc": np.array([1 << 30], np.int32)}
    model_file.save_bundle(tmp_path / "q.npz", "int8-graph", {"scales": [0.5]}, arrays)
    kind, manifest, back = model_file.load_bundle(tmp_path / "q.npz")
    assert kind == "int8-graph" and manifest == {"scales": [0.5]}
    for key, a in arrays.items():
        assert back[key].dtype == a.dtype
        np.testing.assert_array_equal(back[key], a)


def test_objects_and_reserved_names_are_refused(tmp_path):
    with pytest.raises(EdgetrainError, match="never pickle"):
        model_file.save_bundle(tmp_path / "o.npz", "k", {}, {"o": np.array([{}], object)})
    with pytest.raises(EdgetrainError, match="not allowed"):
        model_file.save_bundle(tmp_path / "o.npz", "k", {}, {"__manifest__": np.zeros(1)})
    with pytest.raises(EdgetrainError, match="plain JSON"):
        model_file.save_bundle(tmp_path / "o.npz", "k", {"f": object()}, {})
    assert not list(tmp_path.iterdir())  # nothing half-written


def _rewrite(path, header_change=None, array_change=None):
    """Re-pack a model file with a modified manifest or array (a forged/damaged file)."""
    with np.load(path) as f:
        raw = {k: f[k] for k in f.files}
    header = json.loads(raw["__manifest__"].tobytes())
    if header_change:
        header_change(header)
    if array_change:
        array_change(raw)
    raw["__manifest__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **raw)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]), "truncated or corrupted"),
    (lambda p: p.write_bytes(b""), "not an .npz archive"),
    (lambda p: p.write_text("hello"), "not an .npz archive"),
    (lambda p: p.write_bytes(pickle.dumps({"w": [1.0]})), "not an .npz archive"),
    (lambda p: np.savez(p, w=np.zeros(3)), "not an edgetrain model file"),
    (lambda p: _rewrite(p, lambda h: h.update(version=2)), "format version 2"),
    (lambda p: _rewrite(p, lambda h: h.update(format="other")), "not an edgetrain model file"),
    (lambda p: _rewrite(p, array_change=lambda a: a["linear0.weight"].__setitem__((0, 0), 9.0)),
     "checksum"),
    (lambda p: _rewrite(p, array_change=lambda a: a.pop("linear0.bias")), "do not match"),
    (lambda p: _rewrite(p, lambda h: h["content"].pop("nodes")), "lacks graph field"),
])
def test_damaged_files_give_one_clear_line(tmp_path, damage, message):
    path = model_file.save_graph(small_graph(), tmp_path / "m.npz")
    damage(path)
    with pytest.raises(EdgetrainError, match=message) as err:
        model_file.load_graph(path)
    assert "\n" not in str(err.value)


def test_flipped_byte_inside_compressed_array_is_caught(tmp_path):
    path = model_file.save_graph(small_graph(), tmp_path / "m.npz")
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("linear0.weight.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EdgetrainError, match="corrupted"):
        model_file.load_graph(path)


def test_missing_file_and_wrong_kind(tmp_path):
    with pytest.raises(EdgetrainError, match="does not exist"):
        model_file.load_graph(tmp_path / "none.npz")
    model_file.save_bundle(tmp_path / "q.npz", "int8-graph", {}, {})
    with pytest.raises(EdgetrainError, match="holds a 'int8-graph' model"):
        model_file.load_graph(tmp_path / "q.npz")
