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
"""

from __future__ import annotations

import json
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
    fits: bool | None = None  # the model ELF links within the device's RAM and flash
    fit_error: str | None = None

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


def compare_step(step: int, trace: dict, records: dict[str, bytes]) -> list[Mismatch]:
    out = []
    for name, value in trace.items():
        m = compare_tensor(step, name, value, records.get(name))
        if m is not None:
            out.append(m)
    for name in records.keys() - trace.keys():
        kind, _, layer = name.partition("/")
        out.append(Mismatch(step, layer, kind, None, "nothing (not traced by Python)",
                            f"{len(records[name])} bytes"))
    return out


# ---------------------------------------------------------------- main entry

def python_traces(model: Int8Model, manifest: dict, x: np.ndarray, y: np.ndarray,
                  on_step: Callable[[int], None] | None = None
                  ) -> tuple[list[dict], float, np.ndarray]:
    """The engine's trace of every step, the MACs it executed per sample (all phases) and
    its inference logits for the last step's first sample after training."""
    policy = parse_policy(manifest["policy"], manifest.get("lambda_min"),
                          manifest.get("lambda_max", 1.0))
    trainer = Trainer(model.copy(), policy, "int8", lr=manifest["lr"], seed=manifest["seed"])
    traces = []
    for s in range(len(y)):
        trainer.step(x[s], y[s], trace=True)
        traces.append(trainer.trace)
        if on_step:
            on_step(s)
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
    traces, macs, logits = python_traces(model, manifest, x, y, on_step)
    mismatches = [m for s, tr in enumerate(traces) for m in compare_step(s, tr, records.get(s, {}))]
    got = project / "predict_out.bin"
    m = compare_tensor(steps, "predict/logits", logits,
                       got.read_bytes() if got.exists() else None)
    mismatches += [m] if m else []
    result = VerifyResult(t.name, steps, manifest["batch"], not mismatches,
                          sum(len(tr) for tr in traces), mismatches, macs_per_sample=round(macs))
    if t.cross:
        _measure(project, t, result, timeout)
    return result


def _measure(project: Path, t: Target, result: VerifyResult, timeout: float) -> None:
    """Instructions per sample (QEMU plugin, untraced program) and ELF sizes."""
    res = run_program(project, t, "et_bench", timeout, count=True)
    samples = result.steps * result.batch
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
