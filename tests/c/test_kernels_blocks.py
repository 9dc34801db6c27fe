"""The block kernels of et_kernels.c at their edges: gathered blocks of four positions
(position counts not a multiple of four, 1-7 entries so every tail of 0-3 entries and odd
group counts, columns split at 256 entries, one weight row) and the stride-1 weight
gradient as block products (plane spans split into several 128-position chunks, chunks
ending inside a plane row, four-output bundles with one to three outputs left over, planes
too large for the stack buffer) and its one-row form at strides 1-3 (phases of the row). Host, and under QEMU on Cortex-M4 (assembly loop), M7 and
M0+ (plain C) when the cross toolchain is installed; every result equals the float64 ops
on centred integer data."""

import kernels as K  # tests/c helper
import numpy as np
import pytest

from edgetrain.export.toolchains import available
from edgetrain.ops import conv


def _conv(c_in, hw, c_out, kernel, stride=1, padding=0, groups=1):
    attrs = {"out_channels": c_out, "kernel": kernel, "stride": stride, "padding": padding,
             "groups": groups}
    return conv.geometry_2d(attrs, (c_in, *hw)), attrs


SHAPES = {
    **{f"tail-k{k}": _conv(k, (3, 5), 3, 1) for k in (1, 2, 3, 5, 6, 7)},  # 15 positions
    "one-row": _conv(4, (2, 3), 1, 1),
    "k257": _conv(257, (2, 2), 2, 1),                # one chunk of 256 entries, then one
    "k516": _conv(516, (1, 5), 3, 1),                # three chunks, the last of four
    "pointwise-289": _conv(5, (17, 17), 7, 1),       # 1 x 1 gradient: 3 spans of 128
    "grad-chunks": _conv(10, (13, 15), 6, 3, 1, 1),  # plane 15 x 17: spans end mid-row;
    # ten planes overflow the stack buffer: one channel filled per block
    "grad-bundles": _conv(3, (6, 6), 9, (2, 3), 1, (0, 1)),  # bundles of 4, 4, 1
    "grad-1d": _conv(3, (1, 40), 5, (1, 5), 1, (0, 2)),
    "grad-1d-s2": _conv(3, (1, 301), 5, (1, 5), (1, 2), (0, 2)),  # phases; spans of 128
    "grad-1d-s3": _conv(2, (1, 30), 4, (1, 4), (1, 3), (0, 1)),   # phases of 2, 1, 1 entries
    "grad-1d-1x1-s2": _conv(3, (1, 9), 2, 1, (1, 2)),
    "grad-plane-big": _conv(2, (40, 40), 4, 3, 1, 1),  # plane over 1 KB: the 4-row dots
    "groups-s1": _conv(4, (5, 6), 6, 3, 1, 1, 2),
}


def _check(h, name, with_sel, seed):
    geo, attrs = SHAPES[name]
    rng = np.random.default_rng(seed)
    z = [int(rng.integers(-128, 128)) for _ in range(3)]
    nx = geo.c_in * int(np.prod(geo.in_hw))
    ny = geo.c_out * int(np.prod(geo.out_hw))
    nw = geo.c_out * geo.c_in // geo.groups * geo.kernel[0] * geo.kernel[1]
    x, w, e = (rng.integers(-128, 128, n).astype(np.int8) for n in (nx, nw, ny))
    sel = (rng.random(geo.c_out) < 0.6).astype(np.uint8) if with_sel else None
    acc, dx, dw, _ = h.run(1, geo, z, x, w, e, sel)
    r_acc, r_dx, r_dw = K.reference("conv2d", geo, attrs, z, x, w, e, sel)
    np.testing.assert_array_equal(acc, r_acc.astype(np.int64), err_msg=f"{name}: forward")
    np.testing.assert_array_equal(dx, r_dx.astype(np.int64), err_msg=f"{name}: input error")
    np.testing.assert_array_equal(dw, r_dw.astype(np.int64), err_msg=f"{name}: weight grad")


def _zero_points_centred(h, name):
    """zw = 0 and zx = 0 skip no work the corrections need: same results."""
    geo, attrs = SHAPES[name]
    rng = np.random.default_rng(5)
    nx = geo.c_in * int(np.prod(geo.in_hw))
    ny = geo.c_out * int(np.prod(geo.out_hw))
    nw = geo.c_out * geo.c_in // geo.groups * geo.kernel[0] * geo.kernel[1]
    x, w, e = (rng.integers(-128, 128, n).astype(np.int8) for n in (nx, nw, ny))
    acc, dx, dw, _ = h.run(1, geo, [0, 0, 3], x, w, e, None)
    r_acc, r_dx, r_dw = K.reference("conv2d", geo, attrs, [0, 0, 3], x, w, e, None)
    np.testing.assert_array_equal(acc, r_acc.astype(np.int64))
    np.testing.assert_array_equal(dx, r_dx.astype(np.int64))
    np.testing.assert_array_equal(dw, r_dw.astype(np.int64))


HOST_OK, HOST_WHY = available("host")
CROSS_OK, CROSS_WHY = available("cortex-m4")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    return K.KernelHarness("host", tmp_path_factory.mktemp("kblock_host"))


@pytest.mark.skipif(not HOST_OK, reason=f"host C compiler missing: {HOST_WHY}")
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_blocks_on_host(host, name):
    for i, with_sel in enumerate((False, True)):
        _check(host, name, with_sel, seed=[len(name), i, 11])
    _zero_points_centred(host, name)


@pytest.mark.skipif(not CROSS_OK, reason=f"cross toolchain missing: {CROSS_WHY}")
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7", "cortex-m0plus"])
def test_blocks_on_cortex_m(tmp_path_factory, target):
    h = K.KernelHarness(target, tmp_path_factory.mktemp(f"kblock_{target}"))
    for i, name in enumerate(sorted(SHAPES)):
        _check(h, name, i % 2 == 1, seed=[len(name), 7])
        _zero_points_centred(h, name)
