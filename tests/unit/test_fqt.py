"""The int8 training engine: kernels exact, quantization close to float, policies, partial
updates, determinism, bad input. Small models on the digits dataset keep this fast."""

import json

import numpy as np
import pytest

from edgetrain import data
from edgetrain.cli.main import main
from edgetrain.engine.float32 import predict
from edgetrain.engine.int8 import Trainer
from edgetrain.errors import EdgetrainError
from edgetrain.io.model_file import save_graph
from edgetrain.ir import GraphBuilder, Policy, parse_policy
from edgetrain.numerics.kernels import int8_kernel
from edgetrain.numerics.quantize import fold_batchnorm, load_int8, quantize, save_int8
from edgetrain.ops.conv import conv2d_forward
from edgetrain.train.fqt import FQTConfig, accuracy, fit
from edgetrain.train.pretrain import PretrainConfig, pretrain


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def small_cnn(seed=0):
    b = GraphBuilder("small-cnn", (1, 8, 8), seed=seed)
    h = b.add("relu", b.add("conv2d", "input", name="conv1", out_channels=8, kernel=3,
                            padding=1), name="relu1")
    h = b.add("maxpool2d", h, name="pool1", kernel=2)
    h = b.add("relu", b.add("linear", b.add("flatten", h, name="flat"), name="fc1",
                            out_features=32), name="relu2")
    return b.build(b.add("linear", h, name="fc2", out_features=10))


def every_op_net(seed=0):
    """BN, depthwise, relu6, residual add, avgpool, GAP: every int8 kernel in one graph."""
    b = GraphBuilder("every-op", (1, 8, 8), seed=seed)
    h = b.add("conv2d", "input", name="stem", out_channels=8, kernel=3, padding=1)
    h = b.add("relu6", b.add("batchnorm", h, name="stem_bn"), name="stem_act")
    d = b.add("conv2d", h, name="dw", out_channels=8, kernel=3, padding=1, groups=8)
    d = b.add("relu6", b.add("batchnorm", d, name="dw_bn"), name="dw_act")
    d = b.add("conv2d", d, name="project", out_channels=8, kernel=1)
    h = b.add("add", h, d, name="res")
    h = b.add("avgpool2d", h, name="avg", kernel=2)
    h = b.add("global_avg_pool", h, name="gap")
    return b.build(b.add("linear", h, name="fc", out_features=10))


@pytest.fixture(scope="module")
def pretrained(digits):
    g = small_cnn()
    pretrain(g, digits, PretrainConfig(epochs=4, batch=32, lr=0.05))
    return g


def test_conv_kernel_is_exact_on_integers():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (2, 3, 6, 6)).astype(np.float64)
    w = rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.float64)
    attrs = {"out_channels": 4, "kernel": 3, "padding": 1, "stride": 2}
    acc, _ = int8_kernel("conv2d").forward(attrs, x, w)
    ref, _ = conv2d_forward(attrs, [x], {"weight": w, "bias": np.zeros(4)}, False)
    np.testing.assert_array_equal(acc.astype(np.int64), ref.astype(np.int64))
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    direct = int((xp[1, :, 0:3, 2:5] * w[3].astype(np.int64)).sum())  # output (1, 3, 0, 1)
    assert int(acc[1, 3, 0, 1]) == direct


def test_batchnorm_folding_keeps_the_function(digits):
    g = every_op_net()
    pretrain(g, digits, PretrainConfig(epochs=1, batch=32, lr=0.01))  # non-trivial BN stats
    folded = fold_batchnorm(g)
    assert [n.op for n in folded.nodes].count("batchnorm") == 0
    x = digits.x_test[:64]
    np.testing.assert_allclose(predict(folded, x), predict(g, x), rtol=1e-4, atol=1e-4)


def test_int8_inference_close_to_float(pretrained, digits):
    float_acc = float((predict(pretrained, digits.x_test).argmax(1) == digits.y_test).mean())
    for numerics in ("default", "paper"):
        m = quantize(pretrained, digits.x_train[:512], numerics)
        int8_acc = accuracy(Trainer(m, Policy(), "int8"), digits.x_test, digits.y_test)
        assert float_acc > 0.85
        assert int8_acc >= float_acc - 0.02, (numerics, int8_acc, float_acc)


def test_every_op_trains_in_every_precision(digits):
    g = every_op_net()
    for precision in ("int8", "mixed", "float32"):
        r = fit(g, digits, FQTConfig(precision=precision, epochs=3, lr=0.05))
        assert r.test_accuracy > r.test_accuracy_before + 0.15, (precision, r.accuracy)
        assert r.loss[-1] < r.loss[0] - 0.3, (precision, r.loss)
        assert r.macs_per_sample["backward_error"] > 0


def test_same_seed_same_int8_weights_and_trace(digits):
    g = small_cnn()
    x, y = digits.x_train[:64], digits.y_train[:64]
    runs = []
    for seed in (5, 5, 6):
        t = Trainer(quantize(g, x), Policy(), "int8", lr=0.01, seed=seed)
        t.step(x[:32], y[:32])
        t.step(x[32:], y[32:], trace=True)
        runs.append((t.model.state, t.trace))
    for key, value in runs[0][0].items():
        np.testing.assert_array_equal(value, runs[1][0][key])
    assert not np.array_equal(runs[0][0]["fc1:w"], runs[2][0]["fc1:w"])  # stochastic rounding
    trace = runs[0][1]
    for name in ("act/conv1", "err/fc2", "err/conv1", "w/conv1", "w_scale/fc2", "b/fc1"):
        assert name in trace, name
    assert trace["act/conv1"].dtype == np.int8 and trace["err/relu1"].dtype == np.int8


def test_last_n_never_writes_frozen_layers_and_skips_their_errors(digits):
    g = small_cnn()
    x, y = digits.x_train[:64], digits.y_train[:64]
    m = quantize(g, x)
    before = {k: v.copy() for k, v in m.state.items()}
    t = Trainer(m, parse_policy("last-1"), "int8", lr=0.01)
    t.step(x, y)
    for key in ("conv1:w", "conv1:b", "fc1:w", "fc1:b"):
        np.testing.assert_array_equal(m.state[key], before[key])
    assert not np.array_equal(m.state["fc2:w"], before["fc2:w"])
    assert t.macs["backward_error"] == 0 and t.macs["backward_weight"] == 64 * 32 * 10


def test_bias_only_changes_biases_only(digits):
    g = small_cnn()
    x, y = digits.x_train[:64], digits.y_train[:64]
    m = quantize(g, x)
    before = {k: v.copy() for k, v in m.state.items()}
    t = Trainer(m, parse_policy("bias-only"), "int8", lr=0.01)
    t.step(x, y)
    for layer in ("conv1", "fc1", "fc2"):
        np.testing.assert_array_equal(m.state[f"{layer}:w"], before[f"{layer}:w"])
        assert not np.array_equal(m.state[f"{layer}:b"], before[f"{layer}:b"])
    assert t.macs["backward_weight"] == 0


def test_partial_updates_skip_backward_work(digits):
    g = small_cnn()
    x, y = digits.x_train[:128], digits.y_train[:128]
    full = Trainer(quantize(g, x), Policy(), "int8", lr=0.01)
    part = Trainer(quantize(g, x), parse_policy("partial", lambda_min=0.1), "int8", lr=0.01)
    for i in range(0, 128, 32):
        full.step(x[i:i + 32], y[i:i + 32])
        part.step(x[i:i + 32], y[i:i + 32])
    assert part.macs["forward"] == full.macs["forward"]
    for phase in ("backward_error", "backward_weight"):
        assert 0 < part.macs[phase] < 0.9 * full.macs[phase], phase  # early: e ~ e_max


def test_partial_single_sample_keeps_k_rows():
    """With one sample, e == e_max so k = lambda_max * N: lambda_max = 0.25 keeps 1 of 4."""
    b = GraphBuilder("one", (6,), seed=0)
    g = b.build(b.add("linear", "input", name="fc", out_features=4))
    x = np.random.default_rng(0).normal(size=(1, 6)).astype(np.float32)
    m = quantize(g, x)
    before = m.state["fc:w"].copy()
    t = Trainer(m, parse_policy("partial", lambda_min=0.0, lambda_max=0.25), "int8", lr=0.01)
    t.step(x, np.array([2]))
    changed = np.any(m.state["fc:w"] != before, axis=1)
    assert changed.sum() == 1
    assert t.macs["backward_weight"] == 6


def test_int8_model_file_round_trip(tmp_path, digits):
    m = quantize(small_cnn(), digits.x_train[:64])
    loaded = load_int8(save_int8(m, tmp_path / "m.npz"))
    assert loaded.numerics == m.numerics
    for key, value in m.state.items():
        np.testing.assert_array_equal(loaded.state[key], value)


def test_bad_input_is_refused(digits):
    g = small_cnn()
    m = quantize(g, digits.x_train[:64])
    with pytest.raises(EdgetrainError, match="lambda_min must be in"):
        parse_policy("partial", lambda_min=1.5)
    with pytest.raises(EdgetrainError, match="unknown trainable layer 'fc3'"):
        Trainer(m, parse_policy("layers:fc3"), "int8")
    with pytest.raises(EdgetrainError, match="quantization steps"):
        Trainer(m, Policy(), "int8", lr=50.0)
    with pytest.raises(EdgetrainError, match="unknown precision"):
        FQTConfig(precision="int4")


def test_cli_train_writes_results_and_refuses_bad_lr(tmp_path, pretrained, capsys):
    model = save_graph(pretrained, tmp_path / "float.npz")
    out = tmp_path / "run"
    args = ["train", "--model", str(model), "--data", "digits", "--policy", "partial-last-2",
            "--epochs", "1", "--quiet", "--out", str(out)]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    for key in ("test_accuracy_before", "test_accuracy", "loss", "macs_per_sample",
                "model_path", "config"):
        assert key in results
    assert results["config"]["policy_name"].startswith("partial-last-2")
    assert results["test_accuracy"] >= results["test_accuracy_before"] - 0.02
    assert load_int8(results["model_path"]).state["conv1:w"].dtype == np.int8
    bad = tmp_path / "bad"
    assert main(["train", "--model", str(model), "--data", "digits", "--lr", "100",
                 "--quiet", "--out", str(bad)]) == 2
    assert "quantization steps" in capsys.readouterr().err
    assert not bad.exists()


def test_cli_quantize(tmp_path, pretrained, capsys):
    model = save_graph(pretrained, tmp_path / "float.npz")
    assert main(["quantize", "--model", str(model), "--data", "digits", "--out",
                 str(tmp_path / "q.npz")]) == 0
    summary = json.loads((tmp_path / "q.json").read_text())
    assert summary["int8_accuracy"] >= summary["float_accuracy"] - 0.02


def test_short_bars_from_scratch_and_transfer(digits, pretrained):
    """Short versions of the bench bars (bench/fqt.py has the full ones): from scratch int8
    close to float32 and better than the paper's numerics; transfer gain kept."""
    g = small_cnn(seed=1)
    acc = {name: fit(g, digits, FQTConfig(precision, numerics=numerics, epochs=3,
                                          lr=0.01)).test_accuracy
           for name, precision, numerics in (("float32", "float32", "default"),
                                             ("int8", "int8", "default"),
                                             ("paper", "int8", "paper"))}
    assert acc["float32"] > 0.85
    assert acc["int8"] >= acc["float32"] - 0.03, acc
    assert acc["int8"] >= acc["paper"], acc
    target = data.drift.apply(digits, ["invert"], seed=0)
    gains = {}
    for precision in ("float32", "int8"):
        r = fit(pretrained, target, FQTConfig(precision, policy="last-2", epochs=2, lr=0.01))
        gains[precision] = r.test_accuracy - r.test_accuracy_before
    assert gains["float32"] > 0.2
    assert gains["int8"] >= 0.8 * gains["float32"], gains


def test_fit_is_deterministic(digits):
    g = small_cnn()
    config = FQTConfig(epochs=1, lr=0.01, seed=3)
    a, b = fit(g, digits, config), fit(g, digits, config)
    assert a.loss == b.loss
    for key, value in a.model.state.items():
        np.testing.assert_array_equal(value, b.model.state[key])


@pytest.mark.parametrize("extra, message", [
    (["--policy", "layers:fc9"], "unknown trainable layer 'fc9'"),
    (["--policy", "partial", "--lambda-min", "1.5"], "lambda_min must be in"),
    (["--precision", "mixed", "--policy", "last-9"], "has only 4 weight layers"),
])
def test_cli_train_bad_input_writes_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert main(["train", "--model", "mnist-cnn", "--data", "digits", "--quiet", "--out",
                 str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_float32_precision_gradients_match_the_float_engine(digits):
    from edgetrain.engine.float32 import loss_and_grads

    g = every_op_net()
    pretrain(g, digits, PretrainConfig(epochs=1, batch=32, lr=0.01))
    folded = fold_batchnorm(g)
    x, y = digits.x_train[:16], digits.y_train[:16]
    _, _, ref = loss_and_grads(folded, x, y, Policy().trainable_params(folded))
    t = Trainer(quantize(g, x), Policy(), "float32")
    fwd = t._forward(x, observe=False)
    _, e = t._loss_error(fwd.values[folded.output], y)
    for name, (g_w, g_b, _, _) in t._backward(fwd, e).items():  # per-sample sums
        np.testing.assert_allclose(g_w, 16 * ref[f"{name}.weight"], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(g_b, 16 * ref[f"{name}.bias"], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("op, attrs, shape", [
    ("maxpool2d", {"kernel": 2}, (2, 3, 7, 7)),
    ("maxpool2d", {"kernel": 3, "stride": 2, "padding": 1}, (2, 3, 9, 9)),
    ("relu", {}, (2, 3, 5, 5)), ("relu6", {}, (2, 3, 5, 5)), ("flatten", {}, (2, 3, 4, 4)),
])
def test_code_shortcuts_equal_the_centred_backward(op, attrs, shape):
    kernel = int8_kernel(op)
    rng = np.random.default_rng(1)
    q = rng.integers(-128, 128, shape).astype(np.int8)
    y, ctx = kernel.forward(attrs, q, -5, 90, "nearest", None)
    e = rng.integers(-128, 128, y.shape).astype(np.int8)
    centred = kernel.backward(attrs, ctx, e.astype(np.int32) + 3) - 3  # zero point -3
    expected = np.clip(centred, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(kernel.backward_codes(attrs, ctx, e, -3), expected)


def test_gradient_scale_per_row_option(digits):
    from dataclasses import replace

    from edgetrain.numerics.config import get

    x, y = digits.x_train[:32], digits.y_train[:32]
    m = quantize(small_cnn(), x, replace(get("default"), grad_rows=True,
                                         round_gradient="stochastic"))
    before = m.state["fc1:w"].copy()
    Trainer(m, Policy(), "int8", lr=0.01).step(x, y)
    assert m.state["fc1:g_mean"].shape == (32,)
    assert not np.array_equal(m.state["fc1:w"], before)


@pytest.mark.parametrize("attrs", [{"kernel": 3, "padding": 1}, {"kernel": 3, "stride": 2},
                                   {"kernel": (2, 3), "stride": (2, 1), "padding": (1, 0)}])
def test_conv_backward_input_equals_the_float_kernel(attrs):
    from edgetrain.ir.registry import Want
    from edgetrain.ops.conv import conv2d_backward

    rng = np.random.default_rng(2)
    attrs = {"out_channels": 5, **attrs}
    x = rng.integers(-100, 100, (2, 3, 7, 8)).astype(np.float64)
    w = rng.integers(-100, 100, (5, 3, *np.broadcast_to(attrs["kernel"], 2))).astype(np.float64)
    kernel = int8_kernel("conv2d")
    acc, ctx = kernel.forward(attrs, x, w)
    e = rng.integers(-100, 100, acc.shape).astype(np.float64)
    _, fctx = conv2d_forward(attrs, [x], {"weight": w, "bias": np.zeros(5)}, False)
    ref = conv2d_backward(attrs, fctx, e, {"weight": w}, Want((True,)))[0][0]
    np.testing.assert_array_equal(kernel.backward_input(attrs, ctx, e, w), ref)
