"""The runtime's integer kernels on chosen shapes that reach each fast path and its edges:
2 x 2 gathered blocks (odd positions, odd rows, columns longer than the stack column),
linear blocks (1-12 rows, inputs a multiple of four or not, longer than one stack chunk), the depthwise 3-wide plane
(stride 1 and 2 across, odd widths, paddings 0-2, 2-5 kernel rows, partial selections, one
input channel shared by several outputs) and its fallbacks. Host here; Cortex-M4/M7 (DSP loops) and M0+ under QEMU when the cross
toolchain is installed. Every result equals the float64 ops on centred integer data."""

import kernels as K  # tests/c helper
import numpy as np
import pytest

from edgetrain.export.toolchains import available
from edgetrain.ops import conv


def _conv(c_in, hw, c_out, kernel, stride=1, padding=0, groups=1):
    attrs = {"out_channels": c_out, "kernel": kernel, "stride": stride, "padding": padding,
             "groups": groups}
    return "conv2d", (conv.geometry_2d(attrs, (c_in, *hw)), attrs)


def _linear(n_in, n_out):
    return "linear", (conv.Geometry(n_in, n_out, (1, 1), (1, 1), (0, 0), 1, (1, 1)),
                      {"out_features": n_out})


SHAPES = {
    "pointwise": _conv(16, (5, 5), 6, 1),                 # odd positions (25)
    "pointwise-odd-rows": _conv(6, (3, 4), 5, 1),          # odd output rows, K tail of 2
    "pointwise-long-k": _conv(300, (2, 3), 4, 1),          # K > ET_STACK_COL: one column
    "conv3x3-pad": _conv(3, (6, 7), 4, 3, 1, 1),
    "conv3x3-stride2": _conv(5, (9, 8), 3, 3, 2, 1),
    "conv-groups": _conv(6, (5, 5), 4, (2, 3), (1, 2), (1, 0), 2),
    "conv1d": _conv(4, (1, 23), 6, (1, 5), (1, 2), (0, 2)),
    "dw-s1": _conv(5, (7, 9), 5, 3, 1, 1, 5),
    "dw-s2-odd": _conv(4, (7, 9), 4, 3, 2, 1, 4),         # odd output width (4 x 5)
    "dw-s2-even": _conv(3, (14, 14), 3, 3, 2, 1, 3),
    "dw-nopad": _conv(3, (6, 6), 3, 3, 1, 0, 3),
    "dw-pad2": _conv(3, (4, 5), 3, 3, 1, 2, 3),
    "dw-rows2": _conv(3, (6, 5), 3, (2, 3), 1, (1, 1), 3),
    "dw-rows5": _conv(2, (8, 6), 2, (5, 3), (2, 1), (2, 1), 2),
    "dw-1wide": _conv(3, (5, 1), 3, 3, 1, 1, 3),
    "one-input-channel": _conv(1, (7, 9), 5, 3, 1, 1),    # 3-wide plane, 4-row gradient dots
    "one-input-per-group": _conv(2, (6, 7), 6, 3, 2, 1, 2),  # 3 outputs a plane, 3-wide grads
    "dw-stride3-fallback": _conv(3, (8, 8), 3, 3, 3, 1, 3),
    "dw-5wide-fallback": _conv(3, (6, 8), 3, 5, 1, 2, 3),
    "linear-1": _linear(9, 1),
    "linear-3": _linear(5, 3),
    "linear-7": _linear(37, 7),
    "linear-wide": _linear(130, 12),
    "linear-aligned": _linear(64, 9),        # word-aligned rows: the LDRD forward loop
    "linear-chunks": _linear(1040, 5),       # inputs beyond one 2 KB stack chunk
    "linear-chunks-odd": _linear(1031, 4),
}


def _check(h, name, with_sel, seed):
    kind, (geo, attrs) = SHAPES[name]
    rng = np.random.default_rng(seed)
    z = [int(rng.integers(-128, 128)), int(rng.integers(-128, 128)), int(rng.integers(-128, 128))]
    nx = geo.c_in * int(np.prod(geo.in_hw))
    ny = geo.c_out * int(np.prod(geo.out_hw))
    nw = geo.c_out * geo.c_in // geo.groups * geo.kernel[0] * geo.kernel[1]
    x, w, e = (rng.integers(-128, 128, n).astype(np.int8) for n in (nx, nw, ny))
    e[rng.random(ny) < 0.2] = z[2]  # some zero errors (skipped rows in the linear kernels)
    sel = (rng.random(geo.c_out) < 0.6).astype(np.uint8) if with_sel else None
    acc, dx, dw, _ = h.run(0 if kind == "linear" else 1, geo, z, x, w, e, sel)
    r_acc, r_dx, r_dw = K.reference(kind, geo, attrs, z, x, w, e, sel)
    np.testing.assert_array_equal(acc, r_acc.astype(np.int64), err_msg=f"{name}: forward")
    np.testing.assert_array_equal(dx, r_dx.astype(np.int64), err_msg=f"{name}: input error")
    np.testing.assert_array_equal(dw, r_dw.astype(np.int64), err_msg=f"{name}: weight grad")


HOST_OK, HOST_WHY = available("host")
CROSS_OK, CROSS_WHY = available("cortex-m4")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    return K.KernelHarness("host", tmp_path_factory.mktemp("kshape_host"))


@pytest.mark.skipif(not HOST_OK, reason=f"host C compiler missing: {HOST_WHY}")
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shapes_on_host(host, name):
    for i, with_sel in enumerate((False, True)):
        _check(host, name, with_sel, seed=[len(name), i])


@pytest.mark.skipif(not CROSS_OK, reason=f"cross toolchain missing: {CROSS_WHY}")
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7", "cortex-m0plus"])
def test_shapes_on_cortex_m(tmp_path_factory, target):
    h = K.KernelHarness(target, tmp_path_factory.mktemp(f"kshape_{target}"))
    for name in sorted(SHAPES):
        _check(h, name, name.startswith(("dw", "linear", "one")), seed=[len(name), 7])
