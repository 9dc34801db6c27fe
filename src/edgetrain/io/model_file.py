"""Model files: one ``.npz`` archive holding the arrays plus a JSON manifest. Never pickle.

The manifest (stored as the UTF-8 bytes of a uint8 array named ``__manifest__``) records the
format name and version, the kind of model, the caller's content (for float graphs: the
graph structure), every array's shape, dtype and SHA-256, and provenance. Loading uses
``allow_pickle=False`` and checks all of it, so a truncated, corrupted, foreign or
newer-version file fails with one clear line instead of a wrong model.

``save_bundle``/``load_bundle`` are generic (the int8 engine stores quantized models with
its own ``kind``); ``save_graph``/``load_graph`` handle float32 graphs.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "m.npz"
>>> _ = save_bundle(path, "demo", {"note": "hi"}, {"w": np.arange(3, dtype=np.int8)})
>>> kind, manifest, arrays = load_bundle(path)
>>> kind, manifest, arrays["w"].tolist()
('demo', {'note': 'hi'}, [0, 1, 2])
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import platform
import zipfile
from pathlib import Path

import numpy as np

from edgetrain.errors import EdgetrainError
from edgetrain.io.atomic import write_bytes
from edgetrain.ir.graph import Graph, Node, validate

FORMAT = "edgetrain-model"
VERSION = 1
MANIFEST_KEY = "__manifest__"
GRAPH_KIND = "float32-graph"


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _check_arrays(arrays: dict) -> dict[str, np.ndarray]:
    out = {}
    for key, a in arrays.items():
        a = np.asarray(a)
        if not isinstance(key, str) or not key or key.startswith("__"):
            raise EdgetrainError(f"model file array name {key!r} is not allowed (non-empty "
                                 "text, not starting with '__')")
        if a.dtype.hasobject or a.dtype.kind not in "biuf":
            raise EdgetrainError(f"model file array '{key}' has dtype {a.dtype}; only "
                                 "bool/int/uint/float arrays are stored (never pickle)")
        out[key] = a
    return out


def _provenance() -> dict:
    from edgetrain import __version__

    return {"edgetrain": __version__, "numpy": np.__version__,
            "python": platform.python_version(),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def save_bundle(path: str | Path, kind: str, manifest: dict, arrays: dict) -> Path:
    """Write arrays + a JSON-serialisable manifest to `path` atomically; returns the path."""
    arrays = _check_arrays(arrays)
    header = {"format": FORMAT, "version": VERSION, "kind": str(kind),
              "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": sha256(a)}
                         for k, a in arrays.items()},
              "provenance": _provenance(), "content": manifest}
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise EdgetrainError(f"model manifest is not plain JSON data: {e}")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays,
                        **{MANIFEST_KEY: np.frombuffer(text.encode(), np.uint8)})
    return write_bytes(path, buffer.getvalue())


def _read_archive(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise EdgetrainError(f"model file '{path}' does not exist")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise EdgetrainError(f"'{path}' is not an edgetrain model file (not an .npz "
                                 "archive); pass a file written by edgetrain")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise EdgetrainError(f"model file '{path}' is truncated or corrupted ({e}); "
                             "re-create it")


def _read_header(path: Path, raw: dict[str, np.ndarray]) -> dict:
    if MANIFEST_KEY not in raw:
        raise EdgetrainError(f"'{path}' is not an edgetrain model file (no manifest)")
    try:
        header = json.loads(raw.pop(MANIFEST_KEY).tobytes().decode())
    except (UnicodeDecodeError, ValueError) as e:
        raise EdgetrainError(f"model file '{path}' has a corrupted manifest ({e})")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise EdgetrainError(f"'{path}' is not an edgetrain model file")
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise EdgetrainError(f"model file '{path}' has format version {version}; this "
                             f"edgetrain reads version {VERSION}: upgrade edgetrain")
    return header


def _check_contents(path: Path, header: dict, raw: dict[str, np.ndarray]) -> None:
    expected = header.get("arrays", {})
    if set(expected) != set(raw):
        missing = sorted(set(expected) - set(raw)) or sorted(set(raw) - set(expected))
        raise EdgetrainError(f"model file '{path}' is corrupted: arrays {missing} do not "
                             "match its manifest")
    for key, spec in expected.items():
        a = raw[key]
        if list(a.shape) != spec["shape"] or a.dtype.str != spec["dtype"] or \
                sha256(a) != spec["sha256"]:
            raise EdgetrainError(f"model file '{path}' is corrupted: array '{key}' does not "
                                 "match its manifest checksum")


def load_bundle(path: str | Path) -> tuple[str, dict, dict[str, np.ndarray]]:
    """(kind, manifest content, arrays) of a model file, every array checked."""
    path = Path(path)
    raw = _read_archive(path)
    header = _read_header(path, raw)
    _check_contents(path, header, raw)
    return header["kind"], header.get("content", {}), raw


def read_provenance(path: str | Path) -> dict:
    """Who wrote a model file and when (edgetrain/numpy/python versions, UTC time)."""
    path = Path(path)
    return _read_header(path, _read_archive(path)).get("provenance", {})


def _jsonable(value):
    """Attribute values as JSON (tuples -> lists, numpy scalars -> Python numbers)."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _tuples(value):
    """Inverse of _jsonable for attributes: JSON lists come back as tuples."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def graph_to_manifest(graph: Graph) -> dict:
    """The structure of a graph as JSON data (parameters are stored as arrays)."""
    return {"name": graph.name, "input_shape": list(graph.input_shape),
            "output": graph.output, "loss": graph.loss, "num_classes": graph.num_classes,
            "meta": _jsonable(graph.meta),
            "nodes": [{"name": n.name, "op": n.op, "inputs": list(n.inputs),
                       "attrs": _jsonable(n.attrs), "params": dict(n.params)}
                      for n in graph.nodes]}


def graph_from_manifest(manifest: dict, arrays: dict[str, np.ndarray]) -> Graph:
    """Rebuild a Graph from graph_to_manifest's data and its arrays; shapes re-inferred."""
    try:
        nodes = [Node(d["name"], d["op"], tuple(d["inputs"]), _tuples(d["attrs"]),
                      dict(d["params"])) for d in manifest["nodes"]]
        g = Graph(manifest["name"], tuple(manifest["input_shape"]), nodes,
                  dict(arrays), {},
                  manifest["output"], manifest["loss"], int(manifest["num_classes"]),
                  dict(manifest.get("meta", {})))
    except (KeyError, TypeError) as e:
        raise EdgetrainError(f"model manifest lacks graph field {e}; the file is damaged")
    validate(g)
    return g


def save_graph(graph: Graph, path: str | Path) -> Path:
    """Save a float32 graph (structure, parameters, buffers, meta) to `path`."""
    return save_bundle(path, GRAPH_KIND, graph_to_manifest(graph), graph.params)


def load_graph(path: str | Path) -> Graph:
    """Load a float32 graph saved by save_graph."""
    kind, manifest, arrays = load_bundle(path)
    if kind != GRAPH_KIND:
        raise EdgetrainError(f"model file '{path}' holds a '{kind}' model, not a float32 "
                             "graph")
    return graph_from_manifest(manifest, arrays)
