"""Generated C against the Python int8 engine on the host: every traced tensor of every step
equal (outputs, errors, updated weights, biases, scales and zero points)."""

import json

import graphs
import numpy as np
import pytest
from graphs import calib, tiny_mlp

from edgetrain import data, zoo
from edgetrain.cli.main import main
from edgetrain.errors import EdgetrainError
from edgetrain.export.exporter import export_project
from edgetrain.export.toolchains import available
from edgetrain.export.verify import verify

OK, WHY = available("host")
pytestmark = pytest.mark.skipif(not OK, reason=f"host C compiler missing: {WHY}")


@pytest.mark.parametrize(("policy", "batch"), [("full", 1), ("partial", 1), ("bias-only", 3),
                                               ("last-1", 2), ("partial", 4)])
def test_tiny_mlp_bit_exact_for_30_steps(tmp_path, policy, batch):
    g = tiny_mlp()
    export_project(g, "nrf52840", tmp_path, policy=policy, batch=batch, calibration=calib(g))
    r = verify(tmp_path, "host", steps=30)
    assert r.bit_exact, r.mismatches[0].describe()
    assert r.compared_tensors > 30 * 10


@pytest.mark.parametrize("seed", range(3))
def test_random_graphs_bit_exact(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    g = graphs.random_graph(rng, f"random{seed}")
    policy = str(rng.choice(["full", "partial", "bias-only", "last-2"]))
    numerics = str(rng.choice(["default", "paper", "pow2"]))
    export_project(g, "imxrt1062", tmp_path, policy=policy, batch=int(rng.integers(1, 4)),
                   calibration=calib(g, seed=seed), numerics=numerics, seed=seed)
    r = verify(tmp_path, "host", steps=8)
    assert r.bit_exact, f"{g.name} {policy} {numerics}: {r.mismatches[0].describe()}"


def test_zoo_model_on_its_dataset(tmp_path):
    info = zoo.info("motion-cnn1d")
    ds = data.load(info.default_dataset)
    export_project(zoo.build("motion-cnn1d"), "nrf52840", tmp_path, policy="partial",
                   calibration=ds.x_train, dataset=info.default_dataset)
    r = verify(tmp_path, "host", steps=10)
    assert r.bit_exact, r.mismatches[0].describe()


def test_a_wrong_c_step_is_caught_and_named(tmp_path):
    g = tiny_mlp()
    export_project(g, "nrf52840", tmp_path, calibration=calib(g))
    model_c = tmp_path / "model.c"
    text = model_c.read_text()
    # a different learning rate in the C configuration: the first update must differ
    lr = "0.00999999978f"
    assert lr in text
    model_c.write_text(text.replace(lr, "0.0199999996f", 1))
    r = verify(tmp_path, "host", steps=3)
    assert not r.bit_exact
    first = r.mismatches[0]
    assert (first.step, first.tensor, first.layer) == (0, "w", "linear2")
    assert first.index is not None


def test_cli_export_and_verify_json(tmp_path, capsys):
    out = tmp_path / "proj"
    assert main(["export", "--model", "motion-cnn1d", "--data", "basic-motions", "--device",
                 "nrf52840", "--policy", "last-1", "--out", str(out)]) == 0
    assert "quantizing float model 'motion-cnn1d'" in capsys.readouterr().out
    assert main(["verify", str(out), "--target", "host", "--steps", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bit_exact"] is True and result["target"] == "host"
    assert result["steps"] == 3 and result["mismatches"] == []


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    assert main(["export", "--model", "motion-cnn1d", "--device", "nrf52840", "--out",
                 str(tmp_path)]) == 2
    assert "give --data" in capsys.readouterr().err
    assert main(["export", "--model", "motion-cnn1d", "--data", "basic-motions", "--device",
                 "nrf5284",
                 "--out", str(tmp_path)]) == 2
    assert "did you mean 'nrf52840'" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nothing")]) == 2
    with pytest.raises(EdgetrainError, match="calibration"):
        export_project(tiny_mlp(), "nrf52840", tmp_path)


@pytest.mark.parametrize("channels", [True, False])
def test_stochastic_rounding_everywhere_keeps_the_engine_order(tmp_path, channels):
    """All three roundings stochastic: every pass draws from the stream, so the C must
    consume it in exactly the engine's order (updates after the whole backward pass)."""
    from edgetrain.numerics.config import Numerics

    num = Numerics("all-stochastic", round_forward="stochastic", round_backward="stochastic",
                   round_update="stochastic", round_gradient="stochastic", grad_rows=True,
                   weight_channels=channels)
    g = graphs.image_graph(np.random.default_rng(7), "img7")
    export_project(g, "imxrt1062", tmp_path, policy="partial", batch=2, calibration=calib(g),
                   numerics=num, seed=5)
    assert "et_update_weight" in (tmp_path / "model.c").read_text()
    r = verify(tmp_path, "host", steps=6)
    assert r.bit_exact, r.mismatches[0].describe()
