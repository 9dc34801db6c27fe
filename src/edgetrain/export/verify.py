"""Verification of a generated project against the Python int8 engine (the specification):
build the project for a target, run N training steps on the same data in C (natively, or on
an emulated Cortex-M under QEMU) and in :class:`edgetrain.engine.int8.Trainer`, and compare
every traced tensor of every step, integer for integer and float bit for bit: outputs
(``act/*``), errors (``err/*``), updated weights and biases (``w/*``, ``b/*``) and every scale
and zero point; after the last step, ``et_predict`` against ``Trainer.logits`` (reported as
step N, layer ``logits``, tensor ``predict``). The first mismatch is named by step, layer,
tensor and index.

For a cross target the same steps also run without the trace, bracketed by instruction-count
markers (QEMU plugin: *measured* instructions per sample), and the ELF of the model alone
gives RAM (.data + .bss) and flash (.text + .data).

Precisions ``mixed`` and ``float32`` (float errors and gradients) are compared with the
tolerance of :data:`TOLERANCES` instead (docs/deploy.md states and justifies it): per tensor
kind the largest absolute difference and the largest difference relative to the tensor's
largest magnitude are reported (``max_abs_error``, ``max_rel_error``) and checked
(``within_tolerance``); ``bit_exact`` says whether every bit agreed anyway.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgetrain.engine.int8 import Trainer
from edgetrain.errors import EdgetrainError
from edgetrain.export import qemu
from edgetrain.export.toolchains import Target, elf_size, run_tool, target
from edgetrain.ir.policy import parse_policy
from edgetrain.numerics.quantize import Int8Model, load_int8

MAGIC = 0x31565445  # "ETV1"
MODEL_FILE = "model.int8.npz"
MANIFEST = "export.json"


@dataclass(frozen=True)
class Mismatch:
    step: int
    layer: str
    tensor: str
    index: int | None  # flat index of the first differing element (None: missing/shape)
    expected: str
    got: str

    def describe(self) -> str:
        where = f"index {self.index}" if self.index is not None else "whole tensor"
        return (f"step {self.step}, layer '{self.layer}', tensor '{self.tensor}', {where}: "
                f"expected {self.expected}, got {self.got}")


@dataclass
class VerifyResult:
    target: str
    steps: int
    batch: int
    bit_exact: bool
    compared_tensors: int
    mismatches: list[Mismatch] = field(default_factory=list)
    instructions_per_sample: float | None = None
    instructions_per_mac: float | None = None
    macs_per_sample: int | None = None
    ram_bytes: int | None = None
    flash_bytes: int | None = None
    stack_bytes: int | None = None  # deepest stack use of the measured run (cross targets)
    fits: bool | None = None  # the model ELF links within the device's RAM and flash
    fit_error: str | None = None
    precision: str = "int8"
    within_tolerance: bool = True  # int8: the same as bit_exact (tolerance 0)
    max_abs_error: dict[str, float] = field(default_factory=dict)  # per tensor kind
    max_rel_error: dict[str, float] = field(default_factory=dict)
    flipped_elements: dict[str, int] = field(default_factory=dict)  # beyond rounding, allowed
    tolerance: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mismatches"] = [asdict(m) for m in self.mismatches]
        return d


def read_manifest(project: str | Path) -> dict:
    path = Path(project) / MANIFEST
    if not path.exists():
        raise EdgetrainError(f"'{project}' is not an exported project (no {MANIFEST}); "
                             "run 'edgetrain export' first")
    return json.loads(path.read_text())


# ------------------------------------------------------------------------- data

def step_data(manifest: dict, model: Int8Model, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs float32[steps, B, ...] and labels int32[steps, B]: the export's dataset when it
    named one (its first training samples), else seeded random data."""
    batch, shape = manifest["batch"], tuple(model.graph.input_shape)
    n = steps * batch
    if manifest.get("dataset"):
        from edgetrain import data

        ds = data.load(manifest["dataset"], seed=manifest.get("seed", 0))
        reps = -(-n // len(ds.x_train))
        x = np.concatenate([ds.x_train] * reps)[:n].astype(np.float32)
        y = np.concatenate([ds.y_train] * reps)[:n].astype(np.int32)
    else:
        rng = np.random.default_rng(manifest.get("seed", 0))
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        y = rng.integers(0, model.graph.num_classes, n).astype(np.int32)
    return x.reshape(steps, batch, *shape), y.reshape(steps, batch)


def write_inputs(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    steps, batch = y.shape
    per = int(np.prod(x.shape[2:]))
    head = np.array([MAGIC, steps, batch, per], np.uint32).tobytes()
    body = b"".join(x[s].astype(np.float32).tobytes() + y[s].astype(np.int32).tobytes()
                    for s in range(steps))
    path.write_bytes(head + body)


# ------------------------------------------------------------------ C side

BUILDS = {  # what -> make goal
    "verify": lambda t: str(Path("build") / t.name / (f"et_verify{'.elf' if t.cross else ''}")),
    "test": lambda t: f"{t.name}-test",  # verify + bench programs
    "all": lambda t: t.name,  # + the model ELF linked for the device
}


def build(project: Path, t: Target, what: str = "test", extra_cflags: str = "") -> None:
    """Run make for one goal of :data:`BUILDS`."""
    make = ["make", "-s", "-C", str(project), BUILDS[what](t)]
    if extra_cflags:
        make.append(f"EXTRA_CFLAGS={extra_cflags}")
    run_tool(make, f"building the project for {t.name}", timeout=600)


def program(project: Path, t: Target, name: str) -> Path:
    return project / "build" / t.name / (f"{name}.elf" if t.cross else name)


def run_program(project: Path, t: Target, name: str, timeout: float,
                count: bool = False) -> qemu.RunResult:
    from edgetrain.export.runner import Program, run

    res = run(Program(t, program(project, t, name)), project, timeout, count)
    if res.exit_code != 0:
        raise EdgetrainError(f"{name} on {t.name} ended with exit code {res.exit_code}: "
                             f"{(res.stdout + res.stderr).strip()[-300:] or 'no output'}")
    return res


def read_records(path: Path, names: list[str]) -> dict[int, dict[str, bytes]]:
    """step -> {trace name: raw bytes} from the C program's verify_out.bin."""
    raw = path.read_bytes()
    out: dict[int, dict[str, bytes]] = {}
    pos = 0
    while pos + 8 <= len(raw):
        tid, step, size = struct.unpack_from("<HHI", raw, pos)
        out.setdefault(step, {})[names[tid]] = raw[pos + 8:pos + 8 + size]
        pos += 8 + size
    return out


# --------------------------------------------------------------- comparison

def _as_bytes(value) -> tuple[bytes, np.dtype]:
    a = np.asarray(value)
    dtype = {"f": np.float32, "i": np.int32 if a.dtype.itemsize >= 4 else np.int8,
             "u": np.uint8, "b": np.uint8}[a.dtype.kind]
    return np.ascontiguousarray(a.astype(dtype)).tobytes(), np.dtype(dtype)


def compare_tensor(step: int, name: str, expected, got: bytes | None) -> Mismatch | None:
    kind, _, layer = name.partition("/")
    want, dtype = _as_bytes(expected)
    if got is None:
        return Mismatch(step, layer, kind, None, f"{np.asarray(expected).size} values",
                        "nothing (not traced by the C code)")
    e = np.frombuffer(want, dtype)
    g = np.frombuffer(got, dtype) if len(got) % dtype.itemsize == 0 else np.zeros(0, dtype)
    if e.size != g.size and g.size == 1 and e.size > 1 and np.all(e == e[0]):
        g = np.full(e.size, g[0], dtype)  # per-channel zero points: one value in C
    if e.size != g.size:
        return Mismatch(step, layer, kind, None, f"{e.size} values", f"{g.size} values")
    diff = np.flatnonzero(e.view(np.uint8 if dtype.itemsize == 1 else f"u{dtype.itemsize}")
                          != g.view(np.uint8 if dtype.itemsize == 1 else f"u{dtype.itemsize}"))
    if diff.size == 0:
        return None
    i = int(diff[0])
    return Mismatch(step, layer, kind, i, repr(e[i].item()), repr(g[i].item()))


def compare_step(step: int, trace: dict, records: dict[str, bytes],
                 compare: Callable = compare_tensor) -> list[Mismatch]:
    out = []
    for name, value in trace.items():
        m = compare(step, name, value, records.get(name))
        if m is not None:
            out.append(m)
    for name in records.keys() - trace.keys():
        kind, _, layer = name.partition("/")
        out.append(Mismatch(step, layer, kind, None, "nothing (not traced by Python)",
                            f"{len(records[name])} bytes"))
    return out


# ------------------------------------------------- float precisions: tolerance

@dataclass(frozen=True)
class Bound:
    """The largest allowed difference of one tensor kind: elements must satisfy
    ``|C - Python| <= abs + rel * max |Python|`` (max over the tensor), except at most a
    fraction ``flips`` of them (at least one when nonzero): the elements on the other side
    of a discontinuity (a ReLU mask or a max-pool's arg max decided by a float32 rounding
    difference of the forward pass)."""

    abs: float = 0.0
    rel: float = 0.0
    flips: float = 0.0

    def beyond(self, d: np.ndarray, top: float) -> int:
        """How many differences ``d`` exceed abs + rel * top."""
        return int(np.count_nonzero(d > self.abs + self.rel * top))

    def allows(self, d: np.ndarray, top: float) -> bool:
        allowed = int(np.ceil(self.flips * d.size))
        return self.beyond(d, top) <= allowed and bool(np.isfinite(d).all())


# Set from the per-step differences measured over 100 steps of every zoo model x {full,
# last-2} on host (docs/deploy.md, "mixed and float32"), with a margin of 10-40x. Codes
# (act, w, zero points) are int8, b int32 (mixed); errors and the loss are in loss-gradient
# units (|e| <= 1), so their absolute floor is float32 rounding of values near 1.
TOLERANCES: dict[str, dict[str, Bound]] = {
    "mixed": {"act": Bound(abs=1), "act_scale": Bound(rel=1e-4), "act_zero": Bound(abs=1),
              "err": Bound(abs=1e-6, rel=1e-3, flips=0.005), "w": Bound(abs=1),
              "w_scale": Bound(rel=1e-4), "w_zero": Bound(abs=1), "b": Bound(abs=1, rel=1e-3),
              "loss": Bound(abs=1e-6, rel=1e-4), "predict": Bound(abs=1e-6, rel=1e-4)},
    "float32": {"act": Bound(rel=1e-4), "err": Bound(abs=1e-6, rel=1e-3, flips=0.005),
                "w": Bound(rel=1e-4), "b": Bound(rel=1e-4), "loss": Bound(abs=1e-6, rel=1e-4),
                "predict": Bound(abs=1e-6, rel=1e-4)},
}


def value_arrays(expected, got: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Python's and the C's values of one tensor as float64 arrays, or None when the sizes
    differ (per-channel zero points: one value in C)."""
    want, dtype = _as_bytes(expected)
    e = np.frombuffer(want, dtype).astype(np.float64)
    if len(got) % dtype.itemsize:
        return None
    g = np.frombuffer(got, dtype).astype(np.float64)
    if g.size == 1 and e.size > 1 and np.all(e == e[0]):
        g = np.full(e.size, g[0])
    return (e, g) if e.size == g.size else None


def difference(expected, got: bytes) -> tuple[float, float, int, float] | None:
    """(max |got - expected|, that over max |expected|, its flat index, max |expected|), or
    None when the sizes differ; non-finite C values count as infinitely far."""
    arrays = value_arrays(expected, got)
    if arrays is None:
        return None
    e, g = arrays
    if e.size == 0:
        return 0.0, 0.0, 0, 0.0
    d = np.where(np.isfinite(g), np.abs(g - e), np.inf)
    i = int(np.argmax(d))
    top = float(np.abs(e).max())
    rel = float(d[i]) / top if top > 0 else (0.0 if d[i] == 0 else float("inf"))
    return float(d[i]), rel, i, top


class ToleranceCheck:
    """Compares tensors within the precision's bounds and keeps, per tensor kind, the largest
    differences and how many elements lay beyond the rounding bound (``flipped``);
    ``exact`` stays True while every value agrees bit for bit."""

    def __init__(self, precision: str):
        self.bounds = TOLERANCES[precision]
        self.max_abs: dict[str, float] = {}
        self.max_rel: dict[str, float] = {}
        self.flipped: dict[str, int] = {}
        self.exact = True

    def __call__(self, step: int, name: str, expected, got: bytes | None) -> Mismatch | None:
        kind, _, layer = name.partition("/")
        exact = compare_tensor(step, name, expected, got)
        if exact is None:
            self._keep(kind, 0.0, 0.0, 0)
            return None
        self.exact = False
        arrays = None if got is None else value_arrays(expected, got)
        if arrays is None:
            return exact  # missing, or a different size
        e, g = arrays
        d = np.where(np.isfinite(g), np.abs(g - e), np.inf)
        top = float(np.abs(e).max())
        bound = self.bounds.get(kind, Bound())
        i = int(np.argmax(d))
        self._keep(kind, float(d[i]), float(d[i]) / top if top > 0 else float("inf"),
                   bound.beyond(d, top))
        if bound.allows(d, top):
            return None
        return Mismatch(step, layer, kind, i, repr(e[i].item()), repr(g[i].item()))

    def _keep(self, kind: str, abs_err: float, rel_err: float, flipped: int) -> None:
        self.max_abs[kind] = max(self.max_abs.get(kind, 0.0), abs_err)
        self.max_rel[kind] = max(self.max_rel.get(kind, 0.0), rel_err)
        self.flipped[kind] = self.flipped.get(kind, 0) + flipped

    def stated(self) -> dict[str, dict[str, float]]:
        return {k: {"abs": b.abs, "rel": b.rel, "flips": b.flips}
                for k, b in self.bounds.items()}


RANGE = np.dtype({"names": ["lo", "hi", "seen"], "formats": ["<f4", "<f4", "u1"],
                  "offsets": [0, 4, 8], "itemsize": 12})  # et_range


def _put(state: dict, key: str, values: np.ndarray) -> None:
    """state[key] = values, in the shape (and dtype) the engine keeps there."""
    old = state.get(key)
    if old is not None:
        state[key] = values.astype(old.dtype).reshape(old.shape)
    else:
        state[key] = values.reshape(()) if values.size == 1 else values


def _sync_range(state: dict, key: str, raw: bytes, stats: bool) -> None:
    r = np.frombuffer(raw, RANGE)
    lo, hi = ("_mean", "_var") if stats else ("_lo", "_hi")
    _put(state, key + lo, r["lo"].astype(np.float32))
    _put(state, key + hi, r["hi"].astype(np.float32))
    state[key + "_seen"] = np.array(bool(r["seen"][0]))


def sync_state(trainer: Trainer, records: dict[str, bytes], state_map: dict) -> None:
    """Start the engine's next step from the C program's state after its last step (weights,
    biases, trackers, gradient statistics, partial-update maxima, random stream), so a float
    step is compared alone: its differences do not compound over steps (docs/deploy.md)."""
    st, g = trainer.model.state, trainer.graph
    for name, (kind, key) in state_map.items():
        raw = records.get(f"state/{name}")
        if raw is None:
            continue
        if kind in ("range", "stats"):
            _sync_range(st, key, raw, kind == "stats")
        elif kind == "emax":
            st[key] = np.array(np.frombuffer(raw, RANGE)["lo"][0], np.float32)
        elif kind in ("weight", "bias"):
            param = g.param(g.node(key), kind)
            param[...] = np.frombuffer(raw, np.float32).reshape(param.shape)
        else:
            _put(st, key, np.frombuffer(raw, np.int8 if kind == "int8" else np.int32))
    if "state/rng" in records:
        trainer.rng.state = np.array(np.frombuffer(records["state/rng"], np.uint32)[0])
        st["rng"] = trainer.rng.state


class FloatTrace(Trainer):
    """The engine, also recording the float tensors of mixed and float32 steps under the C's
    trace names (``Trainer.trace`` holds the int8 ones): float errors as they enter each
    node, float32 activations and updated float32 weights and biases."""

    def _forward(self, x, observe):
        fwd = super()._forward(x, observe)
        if not self.quantized:
            for node in self.graph.nodes:
                self._record(f"act/{node.name}", np.asarray(fwd.values[node.name], np.float32))
        return fwd

    def _merge(self, tensor, errors):
        e = super()._merge(tensor, errors)
        if not self.integer_errors:
            self._record(f"err/{tensor}", np.asarray(e, np.float32))
        return e

    def _apply_weight(self, node, step, rows):
        super()._apply_weight(node, step, rows)
        if not self.quantized:
            self._record(f"w/{node.name}", self.graph.param(node, "weight"))

    def _apply_bias(self, node, step, rows):
        super()._apply_bias(node, step, rows)
        if not self.quantized:
            self._record(f"b/{node.name}", self.graph.param(node, "bias"))


# ---------------------------------------------------------------- main entry

def python_traces(model: Int8Model, manifest: dict, x: np.ndarray, y: np.ndarray,
                  on_step: Callable[[int], None] | None = None,
                  records: dict[int, dict[str, bytes]] | None = None
                  ) -> tuple[list[dict], float, np.ndarray]:
    """The engine's trace of every step, the MACs it executed per sample (all phases) and
    its inference logits for the last step's first sample after training. Float
    precisions with the C's ``records``: each step starts from the C's state."""
    policy = parse_policy(manifest["policy"], manifest.get("lambda_min"),
                          manifest.get("lambda_max", 1.0))
    precision = manifest.get("precision", "int8")
    trainer = FloatTrace(model.copy(), policy, precision, lr=manifest["lr"],
                         seed=manifest["seed"])
    traces = []
    for s in range(len(y)):
        if precision != "int8" and records and s > 0:
            sync_state(trainer, records.get(s - 1, {}), manifest.get("state_map", {}))
        loss = trainer.step(x[s], y[s], trace=True)
        if precision != "int8":
            trainer.trace["loss/batch"] = np.float32(loss)
        traces.append(trainer.trace)
        if on_step:
            on_step(s)
    if precision != "int8" and records:  # et_predict runs from the C's final state
        sync_state(trainer, records.get(len(y) - 1, {}), manifest.get("state_map", {}))
    macs = sum(trainer.macs.values()) / max(trainer.samples, 1)
    trainer.trace = None  # inference records nothing into the last step's trace
    return traces, macs, trainer.logits(x[-1][:1])[0]  # et_predict after the last step


def verify(project: str | Path, target_name: str = "host", steps: int = 10,
           timeout: float = 600.0, on_step: Callable[[int], None] | None = None
           ) -> VerifyResult:
    """Build, run ``steps`` training steps in C and in Python, compare every step."""
    project = Path(project).resolve()
    if steps < 1:
        raise EdgetrainError(f"--steps must be >= 1, got {steps}")
    manifest = read_manifest(project)
    t = target(target_name)
    model = load_int8(project / MODEL_FILE)
    x, y = step_data(manifest, model, steps)
    write_inputs(project / "verify_in.bin", x, y)
    build(project, t, "test" if t.cross else "verify")
    run_program(project, t, "et_verify", timeout)
    records = read_records(project / "verify_out.bin", manifest["trace_names"])
    traces, macs, logits = python_traces(model, manifest, x, y, on_step, records)
    for step_records in records.values():  # the C state, used above, is not compared
        for name in [n for n in step_records if n.startswith("state/")]:
            del step_records[name]
    precision = manifest.get("precision", "int8")
    check = ToleranceCheck(precision) if precision != "int8" else compare_tensor
    mismatches = [m for s, tr in enumerate(traces)
                  for m in compare_step(s, tr, records.get(s, {}), check)]
    got = project / "predict_out.bin"
    m = check(steps, "predict/logits", logits, got.read_bytes() if got.exists() else None)
    mismatches += [m] if m else []
    result = VerifyResult(t.name, steps, manifest["batch"], not mismatches,
                          sum(len(tr) for tr in traces), mismatches, macs_per_sample=round(macs),
                          precision=precision, within_tolerance=not mismatches)
    if isinstance(check, ToleranceCheck):
        result.bit_exact = check.exact and not mismatches
        result.max_abs_error, result.max_rel_error = check.max_abs, check.max_rel
        result.flipped_elements = check.flipped
        result.tolerance = check.stated()
    if t.cross:
        _measure(project, t, result, timeout)
    return result


def _measure(project: Path, t: Target, result: VerifyResult, timeout: float) -> None:
    """Instructions per sample (QEMU plugin, untraced program), its stack high-water mark and
    the ELF sizes."""
    res = run_program(project, t, "et_bench", timeout, count=True)
    samples = result.steps * result.batch
    stack = re.search(r"edgetrain: stack (\d+) bytes", res.stdout)
    result.stack_bytes = int(stack.group(1)) if stack else None
    if res.measured_instructions is not None:
        result.instructions_per_sample = res.measured_instructions / samples
        if result.macs_per_sample:
            result.instructions_per_mac = result.instructions_per_sample / result.macs_per_sample
    try:
        build(project, t, "all")
    except EdgetrainError as e:  # the device's linker script refused it
        result.fits = False
        result.fit_error = str(e)
        return
    size = elf_size(program(project, t, "et_deploy"))
    result.ram_bytes, result.flash_bytes = size.ram_bytes, size.flash_bytes
    result.fits = True
