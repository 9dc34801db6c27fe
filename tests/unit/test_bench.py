"""`edgetrain bench` on a tiny configuration: the structure of its results, its BENCHMARKS.md
section (command, machine, PyTorch side by side, the paper quoted) and bad input."""

import json

import pytest

from edgetrain.bench import BenchConfig, run_bench, section
from edgetrain.bench.markdown import PAPER_ROWS
from edgetrain.bench.suite import torch_missing
from edgetrain.cli.main import main
from edgetrain.errors import EdgetrainError

TINY = ["--quick", "--data", "basic-motions", "--precisions", "int8", "float32",
        "--policies", "last-2", "partial", "--no-qemu"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "BENCH.md"
    out.write_text("# Benchmarks\n\n<!-- begin:other -->\nkept\n<!-- end:other -->\n")
    return out, main(["bench", *TINY, "--json", "--out", str(out)])


def test_bench_writes_its_section_and_keeps_the_others(tiny, capsys):
    out, code = tiny
    assert code == 0
    text = out.read_text()
    assert "<!-- begin:other -->\nkept\n<!-- end:other -->" in text
    assert text.count("<!-- begin:bench -->") == 1
    assert "Command: `edgetrain bench --quick --data basic-motions" in text
    assert "Machine: " in text and "QUOTED" in text
    assert all(row[0] in text for row in PAPER_ROWS)


def test_bench_results_cover_every_case():
    res = run_bench(BenchConfig(quick=True, datasets=("basic-motions",),
                                precisions=("int8", "float32"), policies=("last-2", "partial"),
                                qemu=False))
    (d,) = res["datasets"]
    assert [(c["precision"], c["policy"]) for c in d["cases"]] == [
        ("int8", "last-2"), ("int8", "partial"), ("float32", "last-2"), ("float32", "partial")]
    for c in d["cases"]:
        assert 0.0 <= c["accuracy"] <= 1.0 and c["peak_ram_bytes"] > 0 and c["flash_bytes"] > 0
        assert set(c["macs_per_sample"]) == {"forward", "backward_error", "backward_weight"}
        assert c["host_samples_per_second"] > 0
    int8 = {c["policy"]: c for c in d["cases"] if c["precision"] == "int8"}
    assert (int8["partial"]["macs_per_sample"]["backward_weight"]
            < int8["last-2"]["macs_per_sample"]["backward_weight"] or
            int8["partial"]["macs_per_sample"]["backward_error"]
            < int8["last-2"]["macs_per_sample"]["backward_error"])
    if torch_missing():
        assert d["torch"] == [] and "PyTorch" in d["torch_skipped"]
    else:  # PyTorch on the dense policy only, in the same run
        assert [t["policy"] for t in d["torch"]] == ["last-2"]
        assert d["torch"][0]["samples_per_second"] > 0
    md = section(res, "edgetrain bench (test)")
    assert "| int8 | partial |" in md
    assert ("PyTorch / edgetrain float32" in md) == bool(d["torch"])
    json.dumps(res)  # JSON-ready


@pytest.mark.parametrize("argv, message", [
    (["--data", "mnsit"], "unknown dataset 'mnsit'"),
    (["--precisions", "int4"], "unknown precision 'int4'"),
    (["--policies", "lats-2"], "unknown policy"),
    (["--device", "nrf52"], "unknown device 'nrf52'"),
])
def test_bad_input_is_one_clear_line_and_exit_2(argv, message, capsys, tmp_path):
    out = tmp_path / "B.md"
    assert main(["bench", "--quick", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_empty_configuration_is_refused():
    with pytest.raises(EdgetrainError, match="nothing to run"):
        BenchConfig(precisions=())
