"""`edgetrain demo`: the quick path end to end (report files, the accuracy drop and its
recovery, bit-exactness), the report without matplotlib, recipes and bad input."""

import json
import shutil
import sys

import pytest

from edgetrain import data, zoo
from edgetrain.cli.main import main
from edgetrain.demo import DemoConfig, Reporter, recipes, report, run_demo, steps
from edgetrain.errors import EdgetrainError
from edgetrain.memory import devices


class Recorder(Reporter):
    def __init__(self):
        self.steps, self.lines, self.progress_reports = [], [], 0

    def step(self, index, total, title):
        self.steps.append((index, total, title))

    def info(self, text):
        self.lines.append(text)

    def progress(self, p):
        self.progress_reports += 1


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    rec = Recorder()
    res = run_demo(DemoConfig("nrf52840", "digits", str(out), quick=True, qemu=False), rec)
    return out, res, rec


def test_quick_demo_writes_the_report_and_every_figure(quick_run):
    out, res, rec = quick_run
    for name in ("report.md", "report.html", "results.json"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["drift"]["accuracy_drop"] == res["drift"]["accuracy_drop"] > 0.05
    a = saved["adaptation"]
    assert a["accuracy_after"] > a["accuracy_before"]  # the shift is partly recovered
    assert a["gain"] == pytest.approx(a["accuracy_after"] - a["accuracy_before"])
    assert {r["role"] for r in a["runs"]} >= {"on-device", "reference"}
    assert [s[2] for s in rec.steps] == list(recipes_steps())
    assert rec.progress_reports > 0
    md = (out / "report.md").read_text()
    assert "accuracy drop" in md and saved["plan"]["chosen"] in md


def recipes_steps():
    from edgetrain.demo.pipeline import STEPS

    return STEPS


def test_quick_demo_chooses_a_fitting_partial_policy(quick_run):
    _, res, _ = quick_run
    plan = res["plan"]
    chosen = next(p for p in plan["policies"] if p["name"] == plan["chosen"])
    assert chosen["policy"].startswith("partial") and chosen["fits"]
    assert chosen["peak_ram_bytes"] <= plan["ram_budget_bytes"]
    on_device = res["adaptation"]["runs"][0]
    assert on_device["policy"] == plan["chosen"] and on_device["precision"] == "int8"
    # partial updates do less backward work than dense training of the same layers
    dense = next(r for r in res["adaptation"]["runs"]
                 if r["precision"] == "int8" and r["role"] == "comparison")
    part_bwd = sum(on_device["macs_per_sample"][k] for k in ("backward_error",
                                                            "backward_weight"))
    assert part_bwd < sum(dense["macs_per_sample"][k] for k in ("backward_error",
                                                                 "backward_weight"))


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (apt-get install gcc)")
def test_quick_demo_is_bit_exact_on_the_host(quick_run):
    out, res, _ = quick_run
    assert res["verify"]["host"]["bit_exact"] is True
    assert res["bit_exact"] is True
    assert (out / "c" / "model.c").exists()


def test_quick_demo_plots(quick_run):
    out, _, _ = quick_run
    pytest.importorskip("matplotlib")
    for name in ("accuracy_vs_step.png", "ram_per_policy.png", "macs_per_phase.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "![" in (out / "report.md").read_text()


def test_report_without_matplotlib_keeps_tables_and_says_why(quick_run, tmp_path,
                                                             monkeypatch):
    _, res, _ = quick_run
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    saved = report.write(tmp_path, dict(res), {}, [], devices.get("nrf52840"))
    md = (tmp_path / "report.md").read_text()
    assert "matplotlib is not installed" in md and "![" not in md
    assert "| int8 accuracy after the shift |" in md
    assert not list(tmp_path.glob("*.png"))
    assert "matplotlib" in saved["plots"]["skipped"]


def test_every_recipe_model_builds_for_its_dataset():
    for name in recipes.names():
        r = recipes.get(name)
        ds = data.load(name)
        g = zoo.build(r.model, input_shape=ds.input_shape, num_classes=ds.num_classes)
        assert r.transfer_layers <= len(g.weight_nodes())
        data.drift.apply(ds, list(r.drift))  # the drift specs parse and apply


def test_too_small_a_budget_is_refused_before_any_training():
    with pytest.raises(EdgetrainError, match="no partial-update policy fits"):
        run_demo(DemoConfig("nrf52840", "digits", "unused", quick=True, ram_budget=1000))


@pytest.mark.parametrize("argv, message", [
    (["--device", "nrf52"], "unknown device 'nrf52'"),
    (["--out", __file__], "is a file; give a folder"),
    (["--data", "mnsit"], "unknown dataset 'mnsit' (did you mean 'mnist'?)"),
    (["--ram-budget", "-1"], "RAM budget must be a positive number"),
])
def test_bad_input_is_one_clear_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main(["demo", "--quick", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_candidate_policies_cover_the_field():
    g = zoo.build("mbednet")
    names = steps.candidate_policies(g, 5)
    assert names == ["full", "last-5", "last-2", "last-1", "bias-only", "partial",
                     "partial-last-5", "partial-last-2", "partial-last-1"]


def test_the_planner_choice_follows_the_ram_budget():
    g = zoo.build("mbednet")
    recipe = recipes.get("mnist")
    names = steps.candidate_policies(g, recipe.transfer_layers)
    plans = steps.planned(g, "nrf52840", names, "int8", recipe)
    sram = devices.get("nrf52840").sram_bytes
    assert steps.choose_policy(plans, g, 5, sram) == "partial-last-5"  # "partial" trains 18
    tight = plans["partial-last-1"].peak_ram_bytes
    assert tight < plans["partial-last-2"].peak_ram_bytes
    assert steps.choose_policy(plans, g, 5, tight) == "partial-last-1"
    with pytest.raises(EdgetrainError, match="smallest \\(partial-last-1"):
        steps.choose_policy(plans, g, 5, tight - 1)
