"""Every float op: backward against central finite differences (float64, inputs and trainable
parameters), shape inference against the forward pass, Want honoured, bad input rejected."""

import copy

import numpy as np
import pytest

from edgetrain.errors import EdgetrainError
from edgetrain.ir.graph import init_params
from edgetrain.ir.registry import Want, get_op, op_names

# (id, op, attrs, per-sample input shapes, training)
CASES = [
    ("conv2d-basic", "conv2d", {"out_channels": 4, "kernel": 3, "padding": 1}, [(3, 5, 5)], True),
    ("conv2d-stride2", "conv2d", {"out_channels": 3, "kernel": 3, "stride": 2, "padding": 1},
     [(2, 6, 7)], True),
    ("conv2d-rect", "conv2d", {"out_channels": 2, "kernel": (2, 3), "stride": (2, 1),
                               "padding": (1, 0)}, [(2, 5, 6)], True),
    ("conv2d-groups", "conv2d", {"out_channels": 6, "kernel": 3, "groups": 2}, [(4, 5, 5)], True),
    ("conv2d-depthwise", "conv2d", {"out_channels": 4, "kernel": 3, "stride": 2, "padding": 1,
                                    "groups": 4}, [(4, 6, 6)], True),
    ("conv2d-depthwise-odd", "conv2d", {"out_channels": 3, "kernel": (3, 2), "stride": (2, 3),
                                        "padding": (1, 1), "groups": 3}, [(3, 7, 8)], True),
    ("conv2d-dw-multiplier", "conv2d", {"out_channels": 4, "kernel": 3, "padding": 1,
                                        "groups": 2}, [(2, 4, 4)], True),
    ("conv2d-pointwise", "conv2d", {"out_channels": 5, "kernel": 1}, [(3, 4, 4)], True),
    ("conv1d-basic", "conv1d", {"out_channels": 4, "kernel": 5, "stride": 2, "padding": 2},
     [(3, 11)], True),
    ("conv1d-groups", "conv1d", {"out_channels": 4, "kernel": 3, "groups": 2}, [(2, 8)], True),
    ("conv1d-depthwise", "conv1d", {"out_channels": 3, "kernel": 3, "padding": 1, "groups": 3},
     [(3, 7)], True),
    ("maxpool2d", "maxpool2d", {"kernel": 2}, [(2, 4, 6)], True),
    ("maxpool2d-overlap-pad", "maxpool2d", {"kernel": 3, "stride": 2, "padding": 1}, [(2, 5, 5)],
     True),
    ("avgpool2d", "avgpool2d", {"kernel": 2}, [(2, 4, 4)], True),
    ("avgpool2d-overlap-pad", "avgpool2d", {"kernel": 3, "stride": 2, "padding": 1}, [(2, 5, 6)],
     True),
    ("gap-2d", "global_avg_pool", {}, [(3, 4, 5)], True),
    ("gap-1d", "global_avg_pool", {}, [(3, 7)], True),
    ("flatten", "flatten", {}, [(2, 3, 4)], True),
    ("add", "add", {}, [(3, 4), (3, 4)], True),
    ("linear", "linear", {"out_features": 3}, [(5,)], True),
    ("relu", "relu", {}, [(4, 5)], True),
    ("relu6", "relu6", {}, [(4, 5)], True),
    ("batchnorm-2d-train", "batchnorm", {}, [(3, 4, 4)], True),
    ("batchnorm-1d-train", "batchnorm", {"eps": 1e-3, "momentum": 0.2}, [(3, 6)], True),
    ("batchnorm-flat-train", "batchnorm", {}, [(4,)], True),
    ("batchnorm-2d-eval", "batchnorm", {}, [(3, 4, 4)], False),
]
BATCH = 3


def _setup(op, attrs, shapes, seed=0):
    rng = np.random.default_rng(seed)
    opdef = get_op(op)
    params = {k: v.astype(np.float64) for k, v in init_params(opdef, attrs, shapes, rng).items()}
    for role in ("gamma", "beta", "bias", "running_mean"):  # non-trivial values everywhere
        if role in params:
            params[role] = params[role] + rng.normal(scale=0.5, size=params[role].shape)
    if "running_var" in params:
        params["running_var"] = rng.uniform(0.5, 2.0, size=params["running_var"].shape)
    scale = 4.0 if op == "relu6" else 1.0  # straddle both kinks of relu6
    xs = [rng.normal(scale=scale, size=(BATCH, *s)) for s in shapes]
    return opdef, xs, params


def _objective(opdef, attrs, xs, params, training, r):
    y, _ = opdef.forward(attrs, xs, copy.deepcopy(params), training)
    return float(np.sum(y * r))


def _numeric_grad(f, arr, eps=1e-6):
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        up = f()
        arr[idx] = old - eps
        down = f()
        arr[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradients_match_finite_differences(case):
    _, op, attrs, shapes, training = case
    opdef, xs, params = _setup(op, attrs, shapes)
    y, ctx = opdef.forward(attrs, xs, copy.deepcopy(params), training)
    assert y.dtype == np.float64, "ops must keep the input dtype"
    r = np.random.default_rng(1).normal(size=y.shape)
    want = Want(tuple(True for _ in xs), frozenset(opdef.trainable) & frozenset(params))
    dxs, dps = opdef.backward(attrs, ctx, r, params, want)

    def f():
        return _objective(opdef, attrs, xs, params, training, r)

    for x, dx in zip(xs, dxs):
        assert dx.shape == x.shape and dx.dtype == np.float64
        np.testing.assert_allclose(dx, _numeric_grad(f, x), rtol=1e-5, atol=1e-7)
    assert set(dps) == set(want.params)
    for role, g in dps.items():
        assert g.shape == params[role].shape and g.dtype == np.float64
        np.testing.assert_allclose(g, _numeric_grad(f, params[role]), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_shape_inference_matches_forward(case):
    _, op, attrs, shapes, training = case
    opdef, xs, params = _setup(op, attrs, shapes)
    y, _ = opdef.forward(attrs, xs, params, training)
    assert tuple(y.shape) == (BATCH, *opdef.infer_shape(attrs, shapes))
    for role, shape in opdef.param_shapes(attrs, shapes).items():
        assert params[role].shape == shape


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_backward_computes_only_what_is_wanted(case):
    _, op, attrs, shapes, training = case
    opdef, xs, params = _setup(op, attrs, shapes)
    y, ctx = opdef.forward(attrs, xs, params, training)
    dxs, dps = opdef.backward(attrs, ctx, np.ones_like(y), params,
                              Want(tuple(False for _ in xs), frozenset()))
    assert all(dx is None for dx in dxs) and dps == {}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_in_float32_out(dtype):
    opdef, xs, params = _setup("conv2d", {"out_channels": 2, "kernel": 3}, [(2, 5, 5)])
    params = {k: v.astype(np.float32) for k, v in params.items()}
    y, _ = opdef.forward({"out_channels": 2, "kernel": 3}, [xs[0].astype(dtype)], params, True)
    assert y.dtype == dtype


def test_softmax_ce_gradient():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(4, 5)), np.array([0, 3, 4, 1])
    op = get_op("softmax_ce")
    _, ctx = op.forward({}, [logits, labels], {}, True)
    (dl, _), _ = op.backward({}, ctx, 1.0, {}, Want((True, False)))
    num = _numeric_grad(lambda: op.forward({}, [logits, labels], {}, True)[0], logits)
    assert dl.dtype == np.float64
    np.testing.assert_allclose(dl, num, rtol=1e-6, atol=1e-9)


def test_mse_gradient():
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    op = get_op("mse")
    _, ctx = op.forward({}, [pred, target], {}, True)
    (dp, _), _ = op.backward({}, ctx, 1.0, {}, Want((True, False)))
    num = _numeric_grad(lambda: op.forward({}, [pred, target], {}, True)[0], pred)
    np.testing.assert_allclose(dp, num, rtol=1e-6, atol=1e-9)


def test_every_builtin_layer_op_is_checked():
    builtin = {n for n in op_names() if get_op(n).kind == "layer"
               and get_op(n).forward.__module__.startswith("edgetrain.ops.")}
    assert builtin - {c[1] for c in CASES} == set()


def test_batchnorm_running_stats_update_in_place():
    opdef, (x,), params = _setup("batchnorm", {"momentum": 0.3}, [(2, 3, 3)])
    before_mean, before_var = params["running_mean"].copy(), params["running_var"].copy()
    buf = params["running_mean"]
    opdef.forward({"momentum": 0.3}, [x], params, True)
    assert params["running_mean"] is buf
    n = x.size // 2
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)) * n / (n - 1)
    np.testing.assert_allclose(params["running_mean"], 0.7 * before_mean + 0.3 * mean)
    np.testing.assert_allclose(params["running_var"], 0.7 * before_var + 0.3 * var)
    frozen = copy.deepcopy(params)
    opdef.forward({}, [x], params, False)  # eval leaves the statistics alone
    np.testing.assert_array_equal(params["running_mean"], frozen["running_mean"])


def test_maxpool_gradient_goes_to_first_maximum_on_ties():
    op = get_op("maxpool2d")
    x = np.ones((1, 1, 2, 2))
    y, ctx = op.forward({"kernel": 2}, [x], {}, True)
    (dx,), _ = op.backward({"kernel": 2}, ctx, np.ones_like(y), {}, Want((True,)))
    np.testing.assert_array_equal(dx[0, 0], [[1.0, 0.0], [0.0, 0.0]])


BAD_SHAPES = [
    ("conv2d", {"out_channels": 2, "kernel": 3}, [(3, 5)], "(C, H, W)"),
    ("conv2d", {"out_channels": 2, "kernel": 3, "groups": 2}, [(3, 5, 5)], "groups"),
    ("conv2d", {"out_channels": 2, "kernel": 7}, [(1, 5, 5)], "larger"),
    ("conv2d", {"out_channels": 2, "kernel": 0}, [(1, 5, 5)], ">= 1"),
    ("conv2d", {"out_channels": 2, "kernel": (1, 2, 3)}, [(1, 5, 5)], "pair"),
    ("conv1d", {"out_channels": 2, "kernel": 3}, [(3, 5, 5)], "(C, L)"),
    ("maxpool2d", {"kernel": 2}, [(4, 4)], "(C, H, W)"),
    ("avgpool2d", {"kernel": 2, "padding": 2}, [(1, 4, 4)], "half the kernel"),
    ("global_avg_pool", {}, [(4,)], "(C, H, W) or (C, L)"),
    ("batchnorm", {}, [(1, 2, 3, 4)], "(C,), (C, L) or (C, H, W)"),
    ("add", {}, [(3,), (4,)], "same shape"),
    ("linear", {"out_features": 2}, [(3, 4)], "flatten"),
]


@pytest.mark.parametrize("op,attrs,shapes,match", BAD_SHAPES)
def test_bad_shapes_are_clear_errors(op, attrs, shapes, match):
    with pytest.raises(EdgetrainError, match=match.replace("(", r"\(").replace(")", r"\)")):
        get_op(op).infer_shape(attrs, shapes)


@pytest.mark.parametrize("op,attrs,shape,bad", [
    ("conv2d", {"out_channels": 2, "kernel": 3}, (3, 5, 5), (2, 4, 5, 5)),
    ("conv1d", {"out_channels": 2, "kernel": 3}, (3, 8), (2, 4, 8)),
    ("batchnorm", {}, (3, 4), (2, 5, 4)),
    ("maxpool2d", {"kernel": 2}, (3, 4, 4), (2, 4, 4)),
])
def test_channel_mismatch_at_run_time(op, attrs, shape, bad):
    opdef, _, params = _setup(op, attrs, [shape])
    with pytest.raises(EdgetrainError, match="input batch has shape"):
        opdef.forward(attrs, [np.zeros(bad)], params, True)


def test_batchnorm_needs_two_values_per_channel():
    opdef, _, params = _setup("batchnorm", {}, [(3,)])
    with pytest.raises(EdgetrainError, match="at least 2"):
        opdef.forward({}, [np.zeros((1, 3))], params, True)


@pytest.mark.parametrize("op,attrs,shapes,macs", [
    ("conv2d", {"out_channels": 4, "kernel": 3, "padding": 1}, [(2, 5, 5)], 4 * 25 * 2 * 9),
    ("conv2d", {"out_channels": 4, "kernel": 3, "groups": 4}, [(4, 5, 5)], 4 * 9 * 9),
    ("conv1d", {"out_channels": 4, "kernel": 3, "stride": 2}, [(2, 9)], 4 * 4 * 2 * 3),
    ("maxpool2d", {"kernel": 2}, [(2, 4, 4)], 0),
])
def test_macs(op, attrs, shapes, macs):
    opdef = get_op(op)
    assert opdef.macs(attrs, shapes, opdef.infer_shape(attrs, shapes)) == macs
