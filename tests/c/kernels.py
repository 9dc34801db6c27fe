"""Drive tests/c/kernel_harness.c: one layer's three integer kernels in C against the float64
ops of edgetrain.ops on integer-valued (centred) data, which are exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetrain.export import runner
from edgetrain.export.toolchains import target
from edgetrain.ir.registry import Want
from edgetrain.ops import conv, linear

HERE = Path(__file__).resolve().parent


class KernelHarness:
    def __init__(self, target_name: str, build_dir: Path):
        self.dir = Path(build_dir)
        self.prog = runner.build(target(target_name), [HERE / "kernel_harness.c"], self.dir,
                                 name=f"kern_{target_name}")

    def run(self, kind, geo, z, x, w, e, sel, reps=1, count=False):
        head = np.array([kind, geo.c_in, *geo.in_hw, geo.c_out, *geo.out_hw, *geo.kernel,
                         *geo.stride, *geo.padding, geo.groups, sel is not None, reps],
                        np.int32)
        sel_b = (np.ones(geo.c_out, np.uint8) if sel is None else sel.astype(np.uint8))
        blob = b"".join(a.tobytes() for a in (head, np.array(z, np.int32), x, w, e, sel_b))
        (self.dir / "kern_in.bin").write_bytes(blob)
        res = runner.run(self.prog, self.dir, timeout=300, count_instructions=count)
        assert res.exit_code == 0, (res.exit_code, res.stdout, res.stderr)
        raw = (self.dir / "kern_out.bin").read_bytes()
        ny, nx = geo.c_out * int(np.prod(geo.out_hw)), geo.c_in * int(np.prod(geo.in_hw))
        acc = np.frombuffer(raw[:4 * ny], np.int32)
        dx = np.frombuffer(raw[4 * ny:4 * (ny + nx)], np.int32)
        dw = np.frombuffer(raw[4 * (ny + nx):], np.int32)
        return acc, dx, dw, res


def random_layer(rng: np.random.Generator, kind: str):
    """(geometry, attrs) of a random small linear / conv2d / depthwise / conv1d layer."""
    if kind == "linear":
        n_in, n_out = int(rng.integers(1, 70)), int(rng.integers(1, 20))
        attrs = {"out_features": n_out}
        return conv.Geometry(n_in, n_out, (1, 1), (1, 1), (0, 0), 1, (1, 1)), attrs
    while True:
        groups = 1
        c_in = int(rng.integers(1, 6))
        c_out = int(rng.integers(1, 6))
        if kind == "depthwise":
            groups = c_in = c_out = int(rng.integers(2, 6))
        elif rng.random() < 0.3:
            groups = int(rng.choice([d for d in range(1, c_in + 1) if c_in % d == 0]))
            c_out = groups * int(rng.integers(1, 3))
        h = 1 if kind == "conv1d" else int(rng.integers(1, 9))
        w = int(rng.integers(1, 10))
        kh = 1 if kind == "conv1d" else int(rng.integers(1, 4))
        kw = int(rng.integers(1, 4))
        sh, sw = (1 if kind == "conv1d" else int(rng.integers(1, 3))), int(rng.integers(1, 3))
        ph = 0 if kind == "conv1d" else int(rng.integers(0, kh))
        pw = int(rng.integers(0, kw))
        attrs = {"out_channels": c_out, "kernel": (kh, kw), "stride": (sh, sw),
                 "padding": (ph, pw), "groups": groups}
        if h + 2 * ph >= kh and w + 2 * pw >= kw:  # the kernel fits the padded input
            return conv.geometry_2d(attrs, (c_in, h, w)), attrs


def reference(kind, geo, attrs, z, x, w, e, sel):
    """(acc, dx, dw) from the float64 ops on centred integer values."""
    xc = (x.astype(np.float64) - z[0])[None]
    wc = w.astype(np.float64) - z[1]
    ec = e.astype(np.float64) - z[2]
    if sel is not None:
        ec = ec.reshape(geo.c_out, -1) * sel[:, None]
    want = Want((True,), frozenset({"weight"}))
    if kind == "linear":
        p = {"weight": wc.reshape(geo.c_out, geo.c_in), "bias": np.zeros(geo.c_out)}
        y, ctx = linear.forward(attrs, [xc.reshape(1, -1)], p, True)
        (dx,), dp = linear.backward(attrs, ctx, ec.reshape(1, -1), p, want)
    else:
        p = {"weight": wc.reshape(geo.c_out, geo.c_in // geo.groups, *geo.kernel),
             "bias": np.zeros(geo.c_out)}
        y, ctx = conv.conv2d_forward(attrs, [xc.reshape(1, geo.c_in, *geo.in_hw)], p, True)
        (dx,), dp = conv.conv2d_backward(attrs, ctx, ec.reshape(1, geo.c_out, *geo.out_hw), p,
                                         want)
    return y.ravel(), dx.ravel(), dp["weight"].ravel()


def random_case(rng, kind, with_sel):
    geo, attrs = random_layer(rng, kind)
    z = [int(rng.integers(-128, 128)), int(rng.choice([0, int(rng.integers(-128, 128))])),
         int(rng.integers(-128, 128))]
    nx = geo.c_in * int(np.prod(geo.in_hw))
    ny = geo.c_out * int(np.prod(geo.out_hw))
    nw = geo.c_out * geo.c_in // geo.groups * geo.kernel[0] * geo.kernel[1]
    x, w, e = (rng.integers(-128, 128, n).astype(np.int8) for n in (nx, nw, ny))
    sel = (rng.random(geo.c_out) < 0.5).astype(np.uint8) if with_sel else None
    return geo, attrs, z, x, w, e, sel


def compare(h: KernelHarness, rng, kind: str, with_sel: bool) -> None:
    geo, attrs, z, x, w, e, sel = random_case(rng, kind, with_sel)
    acc, dx, dw, _ = h.run(0 if kind == "linear" else 1, geo, z, x, w, e, sel)
    r_acc, r_dx, r_dw = reference(kind, geo, attrs, z, x, w, e, sel)
    np.testing.assert_array_equal(acc, r_acc.astype(np.int64))
    np.testing.assert_array_equal(dx, r_dx.astype(np.int64))
    np.testing.assert_array_equal(dw, r_dw.astype(np.int64))
