"""Generated C of the float precisions (`mixed`, `float32`) against the Python engine on the
host: every traced tensor of every step within the stated tolerance (verify.TOLERANCES),
each step started from the C program's state."""

import json

import numpy as np
import pytest
from graphs import calib, tiny_mlp

from edgetrain import zoo
from edgetrain.cli.main import main
from edgetrain.errors import EdgetrainError
from edgetrain.export.exporter import export_project
from edgetrain.export.toolchains import available
from edgetrain.export.verify import TOLERANCES, Bound, difference, verify
from edgetrain.numerics.quantize import quantize

OK, WHY = available("host")
pytestmark = pytest.mark.skipif(not OK, reason=f"host C compiler missing: {WHY}")


@pytest.mark.parametrize("precision", ["mixed", "float32"])
@pytest.mark.parametrize("policy", ["full", "last-2"])
@pytest.mark.parametrize("name", zoo.names())
def test_zoo_models_within_tolerance(tmp_path, name, policy, precision):
    g = zoo.build(name)
    export_project(g, "imxrt1062", tmp_path, policy=policy, precision=precision,
                   calibration=calib(g) if precision == "mixed" else None)
    r = verify(tmp_path, "host", steps=2)
    assert r.within_tolerance, r.mismatches[0].describe()
    assert r.precision == precision and r.compared_tensors > 2 * 5
    assert {"err", "w", "b", "loss", "predict"} <= set(r.max_rel_error)
    if precision == "mixed":  # the int8 forward is the int8 runtime's: the same integers
        assert r.max_abs_error["act"] == 0 and r.max_rel_error["act_scale"] == 0


@pytest.mark.parametrize(("precision", "policy", "batch"),
                         [("mixed", "partial", 2), ("float32", "partial", 3),
                          ("mixed", "bias-only", 3)])
def test_policies_and_batches_within_tolerance_for_12_steps(tmp_path, precision, policy,
                                                            batch):
    g = tiny_mlp()
    export_project(g, "nrf52840", tmp_path, policy=policy, batch=batch, precision=precision,
                   calibration=calib(g))
    r = verify(tmp_path, "host", steps=12)
    assert r.within_tolerance, r.mismatches[0].describe()
    assert r.compared_tensors >= 12 * 5


def test_mixed_per_tensor_weights_and_stochastic_forward(tmp_path):
    """Per-tensor affine weights and stochastic rounding in the forward pass and the update:
    the forward's draws and the update's draws in the engine's order."""
    from edgetrain.numerics.config import Numerics

    g = tiny_mlp()
    num = Numerics("stoch", round_forward="stochastic", round_update="stochastic",
                   weight_channels=False)
    export_project(g, "nrf52840", tmp_path, precision="mixed", policy="partial", batch=2,
                   calibration=calib(g), numerics=num, seed=3)
    r = verify(tmp_path, "host", steps=8)
    assert r.within_tolerance, r.mismatches[0].describe()
    assert r.max_abs_error["act"] == 0 and "et_m_update" in (tmp_path / "model.c").read_text()


def test_a_wrong_float_step_is_caught_and_named(tmp_path):
    g = tiny_mlp()
    export_project(g, "nrf52840", tmp_path, precision="float32")
    model_c = tmp_path / "model.c"
    text = model_c.read_text()
    lr = "0.00999999978f"
    assert lr in text
    model_c.write_text(text.replace(lr, "0.0109999999f", 1))  # 10 % larger steps
    r = verify(tmp_path, "host", steps=2)
    assert not r.within_tolerance and not r.bit_exact
    first = r.mismatches[0]
    assert (first.step, first.tensor) == (0, "w") and first.layer in ("linear0", "linear2")


def test_tolerance_bound_and_difference():
    d = np.array([0.0, 1.0, 2.0])
    assert Bound(abs=2).allows(d, 100) and not Bound(abs=1).allows(d, 100)
    assert Bound(rel=0.02).allows(d, 100) and not Bound(rel=0.01).allows(d, 100)
    assert Bound(abs=1, flips=0.01).allows(d, 100)  # one element of 3 may flip
    assert not Bound(abs=0, flips=0.01).allows(d, 100)  # but not two
    assert not Bound(abs=10).allows(np.array([np.inf]), 1)
    want = np.array([1.0, -4.0, 0.5], np.float32)
    got = np.array([1.0, -4.001, np.nan], np.float32).tobytes()
    abs_err, rel, i, top = difference(want, got)
    assert (abs_err, i, top) == (np.inf, 2, 4.0)
    abs_err, rel, i, top = difference(want[:2], got[:8])
    assert i == 1 and abs(abs_err - 0.001) < 1e-6 and abs(rel - 0.00025) < 1e-6
    assert difference(want, got[:4]) is None  # different sizes
    assert set(TOLERANCES) == {"mixed", "float32"}


def test_float32_needs_no_calibration_and_refuses_an_int8_model(tmp_path):
    g = tiny_mlp()
    done = export_project(g, "nrf52840", tmp_path / "f", precision="float32")
    assert not done.quantized_here and done.manifest["precision"] == "float32"
    assert "et_float.c" in (tmp_path / "f" / "Makefile").read_text()
    with pytest.raises(EdgetrainError, match="int8 model"):
        export_project(quantize(g, calib(g)), "nrf52840", tmp_path / "q", precision="float32")
    with pytest.raises(EdgetrainError, match="calibration"):
        export_project(g, "nrf52840", tmp_path / "m", precision="mixed")
    with pytest.raises(EdgetrainError, match="did you mean 'mixed'"):
        export_project(g, "nrf52840", tmp_path / "x", precision="mixd", calibration=calib(g))


def test_cli_export_float32_and_verify_json(tmp_path, capsys):
    out = tmp_path / "proj"
    assert main(["export", "--model", "motion-cnn1d", "--device", "nrf52840", "--precision",
                 "float32", "--policy", "last-1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "quantizing" not in printed and "float32" in printed
    assert main(["verify", str(out), "--target", "host", "--steps", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["precision"] == "float32" and result["within_tolerance"] is True
    assert result["tolerance"]["w"] == {"abs": 0.0, "rel": 1e-4, "flips": 0.0}
    assert set(result["max_abs_error"]) == set(result["max_rel_error"]) >= {"act", "w", "err"}
    with pytest.raises(SystemExit):  # argparse: invalid choice
        main(["export", "--model", "motion-cnn1d", "--device", "nrf52840", "--precision",
              "half", "--out", str(out)])
    assert "invalid choice: 'half'" in capsys.readouterr().err
