"""Drive tests/c/prim_harness.c (the runtime's numeric primitives, compiled for a target)
from Python: write the inputs, run, read the outputs as NumPy arrays. Shared by tests/c
(host) and tests/cross (Cortex-M under QEMU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetrain.export import runner
from edgetrain.export.toolchains import target

HERE = Path(__file__).resolve().parent
MODES = {"floor": 0, "nearest": 1, "stochastic": 2}
OPS = {"stream": 0, "round_f32": 1, "round_shift": 2, "requantize": 3, "qparams": 4,
       "quantize": 5, "fixed": 6, "softmax": 7}


class Harness:
    def __init__(self, target_name: str, build_dir: Path):
        self.dir = Path(build_dir)
        self.prog = runner.build(target(target_name), [HERE / "prim_harness.c"], self.dir,
                                 name=f"prim_{target_name}")

    def call(self, op: str, n: int, arrays: list[np.ndarray], mode: str = "floor",
             seed: int = 1, extra: int = 0) -> tuple[bytes, int]:
        """(output bytes, et_error) of one harness run."""
        head = np.array([OPS[op], n, MODES[mode], seed, extra], np.uint32).tobytes()
        body = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
        (self.dir / "prim_in.bin").write_bytes(head + body)
        res = runner.run(self.prog, self.dir, timeout=120)
        assert res.exit_code == 0, (res.exit_code, res.stdout, res.stderr)
        err = int(np.frombuffer((self.dir / "prim_err.bin").read_bytes(), np.uint32)[0])
        return (self.dir / "prim_out.bin").read_bytes(), err

    def records(self, op, n, arrays, dtype, mode="floor", seed=1, extra=0):
        """Outputs as a structured/plain array of ``dtype``; asserts no range error."""
        raw, err = self.call(op, n, arrays, mode, seed, extra)
        assert err == 0, f"C primitive reported error code {err}"
        return np.frombuffer(raw, dtype)


# ---- comparisons: each draws random in-range inputs, runs C, compares with Python ----

def _f32_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mixed magnitudes, exact ties, integers and the range edges."""
    parts = [rng.uniform(-300, 300, n // 4), rng.integers(-1000, 1000, n // 8) + 0.5,
             rng.integers(-1000, 1000, n // 8).astype(float),
             rng.standard_normal(n // 4) * 10.0 ** rng.integers(-8, 9, n // 4)]
    big = rng.uniform(-1, 1, n // 8) * 2.0**40
    edges = [2.0**40, -2.0**40, 2.0**23 + 1, -(2.0**23) - 1, 0.0, -0.0, 1e-30, -1e-30,
             # around -1/2, where v - floor(v) rounds in float32 (nearest must not use it)
             -0.5, -0.5 + 2.0**-25, -0.5 + 2.0**-24, 0.5 - 2.0**-25, 0.5, -1.5 + 2.0**-23]
    v = np.concatenate([*parts, big, edges]).astype(np.float32)
    return v[np.abs(v) <= 2.0**40]


def compare_stream(h: Harness, rng: np.random.Generator, n: int = 2000) -> None:
    from edgetrain.numerics.rounding import Stream, fmix32, xorshift32

    seeds = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    seeds[:2] = [0, 1]
    got = h.records("stream", n, [seeds], np.uint32).reshape(n, 3)
    want_x = np.array([xorshift32(s) for s in seeds], np.uint32)
    streams = [Stream(int(s)) for s in seeds]
    want_next = np.array([s.bits((1,))[0] for s in streams], np.uint32)  # fmix32(base + 0)
    np.testing.assert_array_equal(got[:, 0], want_x)
    np.testing.assert_array_equal(got[:, 1], fmix32(seeds))
    np.testing.assert_array_equal(fmix32(got[:, 2]), want_next)


def compare_round_f32(h: Harness, rng: np.random.Generator, mode: str, n: int = 4000) -> None:
    from edgetrain.numerics.rounding import Stream, round_f32

    v = _f32_values(rng, n)
    seed = int(rng.integers(1, 2**31))
    got = h.records("round_f32", len(v), [v], np.int64, mode, seed)
    np.testing.assert_array_equal(got, round_f32(v, mode, Stream(seed)))


def compare_round_shift(h: Harness, rng: np.random.Generator, mode: str,
                        n: int = 4000) -> None:
    from edgetrain.numerics.rounding import Stream, round_shift

    shift = rng.integers(0, 63, n).astype(np.int32)
    mag = rng.integers(0, 62, n)
    p = (rng.integers(-(2**40), 2**40, n) << np.minimum(mag, 21)).astype(np.int64)
    p[:6] = [0, -1, 1, -(2**61), 2**61, -3]
    seed = int(rng.integers(1, 2**31))
    got = h.records("round_shift", n, [p, shift], np.int64, mode, seed)
    np.testing.assert_array_equal(got, round_shift(p, shift.astype(np.int64), mode,
                                                   Stream(seed)))


def compare_requantize(h: Harness, rng: np.random.Generator, mode: str,
                       n: int = 4000) -> None:
    from edgetrain.numerics.requant import multiplier, requantize
    from edgetrain.numerics.rounding import Stream

    acc = rng.integers(-(2**31), 2**31, n).astype(np.int64) >> rng.integers(0, 31, n)
    M = (rng.uniform(0.0, 1.0, n) * 10.0 ** rng.integers(-9, 3, n)).astype(np.float32)
    M[:4] = [0.0, 200.0, 1e-40, 0.75]
    zero = rng.integers(-128, 128, n).astype(np.int32)
    seed = int(rng.integers(1, 2**31))
    got = h.records("requantize", n, [acc, M, zero], np.int64, mode, seed).reshape(n, 3)
    m, sh = multiplier(M)
    np.testing.assert_array_equal(got[:, 0], m)
    np.testing.assert_array_equal(got[:, 1], sh)
    want = requantize(acc[None, :], M, zero, mode, Stream(seed), axis=1)[0]
    np.testing.assert_array_equal(got[:, 2], want.astype(np.int64))


def compare_qparams(h: Harness, rng: np.random.Generator, symmetric: bool, pow2: bool,
                    n: int = 3000) -> None:
    from edgetrain.numerics.qparams import from_range

    lo = (-rng.exponential(1.0, n) * 10.0 ** rng.integers(-6, 4, n)).astype(np.float32)
    hi = (rng.exponential(1.0, n) * 10.0 ** rng.integers(-6, 4, n)).astype(np.float32)
    lo[:3], hi[:3] = [0.0, 0.5, -2.0], [0.0, 1.0, -1.0]  # empty, positive-only, negative-only
    out = h.records("qparams", n, [lo, hi], np.uint32,
                    extra=int(symmetric) | (int(pow2) << 1)).reshape(n, 2)
    qp = from_range(lo, hi, symmetric=symmetric, pow2=pow2)
    np.testing.assert_array_equal(out[:, 0].view(np.float32).view(np.uint32),
                                  np.asarray(qp.scale, np.float32).view(np.uint32))
    np.testing.assert_array_equal(out[:, 1].view(np.int32), qp.zero)


def compare_quantize(h: Harness, rng: np.random.Generator, mode: str, n: int = 4000) -> None:
    from edgetrain.numerics.qparams import QParams, dequantize, quantize
    from edgetrain.numerics.rounding import Stream

    x = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 3, n)).astype(np.float32)
    scale = (rng.uniform(0.5, 2.0, n) * 10.0 ** rng.integers(-4, 1, n)).astype(np.float32)
    zero = rng.integers(-128, 128, n).astype(np.int32)
    seed = int(rng.integers(1, 2**31))
    out = h.records("quantize", n, [x, scale, zero], np.uint32, mode, seed).reshape(n, 2)
    # per-element parameters: one "channel" per element along axis 0
    qp = QParams(scale, zero)
    q = quantize(x, qp, mode, Stream(seed), axis=0)
    np.testing.assert_array_equal(out[:, 0].view(np.int32), q.astype(np.int32))
    np.testing.assert_array_equal(out[:, 1].view(np.float32).view(np.uint32),
                                  dequantize(q, qp, axis=0).view(np.uint32))


def compare_fixed(h: Harness, rng: np.random.Generator, n: int = 4000) -> None:
    from edgetrain.numerics.fixedpoint import exp_q30, log2_q30

    t = -rng.integers(0, 40 * 2**30, n).astype(np.int64)
    t[:3] = [0, -1, -(2**30)]
    x = rng.integers(1, 2**62, n, dtype=np.int64) >> rng.integers(0, 62, n)
    x = np.maximum(x, 1)
    x[:5] = [1, 2**30, 2**29, 2**62 - 1, 2**31 + 1]
    got = h.records("fixed", n, [t, x], np.int64).reshape(n, 2)
    np.testing.assert_array_equal(got[:, 0], exp_q30(t))
    np.testing.assert_array_equal(got[:, 1], log2_q30(x))


def compare_softmax(h: Harness, rng: np.random.Generator, k: int, n: int = 500) -> None:
    from edgetrain.numerics.fixedpoint import softmax_ce_q30

    logits = rng.integers(-128, 128, (n, k)).astype(np.int8)
    s_out = (rng.uniform(0.5, 2.0, n) * 10.0 ** rng.integers(-3, 0, n)).astype(np.float32)
    labels = rng.integers(0, k, n).astype(np.int32)
    got = h.records("softmax", n, [logits, s_out, labels], np.int64, extra=k).reshape(n, k + 1)
    for i in range(n):  # one output scale per sample here; the engine has one per tensor
        grad, loss = softmax_ce_q30(logits[i:i + 1], s_out[i], labels[i:i + 1].astype(np.int64))
        np.testing.assert_array_equal(got[i, :k], grad[0])
        np.testing.assert_array_equal(got[i, k], loss[0])
