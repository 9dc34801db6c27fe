"""`edgetrain plan`: table, JSON keys, exit codes, shortfall, search, model files."""

import json

import numpy as np
import pytest

from edgetrain import zoo
from edgetrain.cli.main import main
from edgetrain.io.model_file import save_bundle, save_graph


def run(capsys, *argv):
    code = main(["plan", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_fits_prints_a_layer_table_and_exits_0(capsys):
    code, out, _ = run(capsys, "--model", "mnist-cnn", "--device", "nrf52840", "--policy",
                       "last-1")
    assert code == 0
    assert "fc1" in out and "conv1" in out and "ESTIMATE" in out and "fits on nrf52840" in out


def test_json_has_the_agreed_keys(capsys):
    code, out, _ = run(capsys, "--model", "mbednet", "--device", "imxrt1062", "--json")
    d = json.loads(out)
    assert code == 0 and d["fits"] is True and d["device"] == "imxrt1062"
    for key in ("peak_ram_bytes", "arena_bytes", "lower_bound_bytes", "flash_bytes",
                "latency_ms_estimate", "layers", "buffers"):
        assert key in d
    assert set(d["macs_per_sample"]) == {"forward", "backward_error", "backward_weight"}
    assert d["peak_ram_bytes"] == d["arena_bytes"] + d["state_bytes"]


def test_does_not_fit_says_by_how_much_and_what_would_fit(capsys):
    code, out, _ = run(capsys, "--model", "mbednet", "--device", "nrf52840", "--precision",
                       "float32", "--json")
    d = json.loads(out)
    assert code == 1 and d["fits"] is False
    # the exported program's 8 KB stack is reserved beside .data + .bss
    assert d["ram_over_bytes"] == d["peak_ram_bytes"] + 8192 - 256 * 1024 > 0
    assert d["would_fit"]["peak_ram_bytes"] <= 256 * 1024
    code, out, _ = run(capsys, "--model", "mbednet", "--device", "nrf52840", "--precision",
                       "float32")
    assert code == 1 and "over SRAM by" in out and "would fit: --policy" in out


@pytest.mark.parametrize("argv, message", [
    (["--model", "mbednt", "--device", "nrf52840"], "did you mean 'mbednet'"),
    (["--model", "mbednet", "--device", "nrf5284"], "unknown device"),
    (["--model", "mbednet", "--device", "nrf52840", "--policy", "last-99"], "weight layers"),
    (["--model", "mbednet", "--device", "nrf52840", "--batch", "0"], "batch"),
    (["--model", "missing.npz", "--device", "nrf52840"], "does not exist"),
    (["--model", "mbednet", "--device", "nrf52840", "--ram-budget", "1K"], "--search"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_search_lists_fitting_policies_ranked(capsys):
    code, out, _ = run(capsys, "--model", "mnist-cnn", "--device", "nrf52840", "--search",
                       "--ram-budget", "48K", "--json")
    d = json.loads(out)
    assert code == 0 and d["ram_budget_bytes"] == 48 * 1024
    params = [c["trainable_params"] for c in d["fitting"]]
    assert params and params == sorted(params, reverse=True)
    assert all(c["peak_ram_bytes"] <= 48 * 1024 for c in d["fitting"])
    code, out, _ = run(capsys, "--model", "mnist-cnn", "--device", "nrf52840", "--search",
                       "--ram-budget", "64")
    assert code == 1 and "0 of" in out


def test_model_files(capsys, tmp_path):
    path = tmp_path / "m.npz"
    save_graph(zoo.build("mlp"), path)
    code, out, _ = run(capsys, "--model", str(path), "--device", "imxrt1062", "--json")
    assert code == 0 and json.loads(out)["model"] == "mlp"
    from edgetrain.numerics.quantize import quantize, save_int8

    g = zoo.build("motion-cnn1d")
    save_int8(quantize(g, np.zeros((4, 6, 100), np.float32)), tmp_path / "i8.npz")
    code, out, _ = run(capsys, "--model", str(tmp_path / "i8.npz"), "--device", "nrf52840",
                       "--json")
    d = json.loads(out)
    assert code == 0 and d["trainable_params"] == sum(
        v.size for k, v in g.params.items() if k.startswith(("conv", "fc")) and "_bn" not in k)
    other = tmp_path / "q.npz"
    save_bundle(other, "int8-model", {}, {})
    code, _, err = run(capsys, "--model", str(other), "--device", "imxrt1062")
    assert code == 2 and "int8-model" in err


def test_zoo_shape_overrides(capsys):
    code, out, _ = run(capsys, "--model", "mbednet", "--device", "imxrt1062", "--input-shape",
                       "3,32,32", "--json")
    assert code == 0 and json.loads(out)["layers"][0]["act_bytes"] == 16 * 16 * 16


def test_engine_order_without_reordering_can_be_asked_for(capsys):
    argv = ["--model", "motion-cnn1d", "--device", "nrf52840", "--json"]
    code, out, _ = run(capsys, *argv, "--no-reorder", "--order", "weight-first", "--planner",
                       "greedy")
    d = json.loads(out)
    assert code == 0 and d["reorder"] is False and d["backward_order"] == "weight-first"
    assert d["planner"] == "greedy"
    _, out, _ = run(capsys, *argv)
    assert json.loads(out)["peak_ram_bytes"] < d["peak_ram_bytes"]
