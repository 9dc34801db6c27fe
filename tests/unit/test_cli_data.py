"""CLI: datasets, models, pretrain, eval; and one clear line + exit 2 for every bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgetrain import zoo
from edgetrain.cli.main import main
from edgetrain.errors import EdgetrainError


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small mlp pre-trained on digits through the CLI (shared by the eval tests)."""
    out = tmp_path_factory.mktemp("run")
    assert main(["pretrain", "--model", "mlp", "--data", "digits", "--epochs", "2",
                 "--out", str(out), "--quiet"]) == 0
    return out


def test_datasets_json_lists_catalogue(capsys):
    code, out, _ = run_cli(capsys, "datasets", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and sorted(rows) == ["basic-motions", "digits", "mnist", "mnist1d"]
    assert rows["mnist"]["input_shape"] == [1, 28, 28] and rows["mnist"]["installed"] is True
    code, out, _ = run_cli(capsys, "datasets")
    assert "basic-motions  6x100" in out


def test_models_json_has_params_and_macs(capsys):
    code, out, _ = run_cli(capsys, "models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    g = zoo.build("mnist-cnn")
    assert code == 0 and set(rows) == set(zoo.names())
    assert rows["mnist-cnn"]["params"] == g.num_params()
    assert rows["mnist-cnn"]["macs"] == g.macs_per_sample() > 0


def test_pretrain_writes_model_and_results(trained, capsys):
    results = json.loads((trained / "results.json").read_text())
    assert len(results["train_loss"]) == 2 and len(results["test_accuracy_per_epoch"]) == 2
    assert results["test_accuracy"] == results["test_accuracy_per_epoch"][-1] > 0.5
    assert results["config"]["model"] == "mlp" and results["config"]["epochs"] == 2
    assert results["config"]["lr"] == 0.05  # from the mlp recipe
    assert results["model_path"].endswith("model.npz") and results["seconds"] > 0
    code, out, _ = run_cli(capsys, "eval", "--model", str(trained / "model.npz"), "--json")
    assert code == 0
    ev = json.loads(out)
    assert ev["dataset"] == "digits"  # recorded in the model file
    assert ev["accuracy"] == results["test_accuracy"] and ev["samples"] == 359


def test_eval_with_drift_and_text_output(trained, capsys):
    code, out, _ = run_cli(capsys, "eval", "--model", str(trained / "model.npz"), "--data",
                           "digits", "--drift", "classes:0-1", "--split", "train")
    assert code == 0 and "digits+classes:0-1 (train" in out and "\n9      -" in out


def test_pretrain_progress_and_drift(tmp_path, capsys):
    code, out, err = run_cli(capsys, "pretrain", "--model", "motion-cnn1d", "--data",
                             "basic-motions", "--drift", "gain:1.2@0", "offset:0.1",
                             "--epochs", "2", "--out", str(tmp_path / "m"))
    assert code == 0 and "epoch 2/2" in err and "test accuracy" in out
    meta = json.loads((tmp_path / "m" / "results.json").read_text())
    assert meta["config"]["drift"] == ["gain:1.2@0", "offset:0.1"]
    assert meta["dataset"]["name"] == "basic-motions+gain:1.2@0,offset:0.1"


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def bad_inputs(tmp, model_file):
    """(argv, expected message) for each kind of bad input."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(20, 1, 8, 8)).astype(np.float32)
    nan = x.copy()
    nan[3, 0, 1, 1] = np.nan
    (tmp / "broken.npz").write_bytes(model_file.read_bytes()[:100])
    (tmp / "garbage.csv").write_bytes(b"\xff\xfe\x00garbage")
    pre = ["pretrain", "--out", str(tmp / "out")]
    return [
        (pre + ["--model", "mlpp", "--data", "digits"],
         "unknown model 'mlpp' (did you mean 'mlp'?)"),
        (pre + ["--model", "mlp", "--data", "digts"], "unknown dataset 'digts'"),
        (pre + ["--model", "mlp", "--data", "digits", "--drift", "rotat:3"],
         "unknown drift transform 'rotat'"),
        (pre + ["--model", str(model_file), "--data", "mnist"], "takes inputs of shape"),
        (pre + ["--model", str(model_file), "--data",
                _npz(tmp / "k.npz", x=x, y=np.arange(20) % 12)], "has label 11"),
        (pre + ["--model", "mlp", "--data", _npz(tmp / "n.npz", x=nan, y=np.arange(20) % 2)],
         "NaN/inf"),
        (pre + ["--model", "mlp", "--data", _npz(tmp / "e.npz", x=x[:0], y=np.zeros(0))],
         "needs at least 2 samples"),
        (pre + ["--model", "mlp", "--data", str(tmp / "garbage.csv")], "cannot read"),
        (pre + ["--model", str(tmp / "broken.npz"), "--data", "digits"], "truncated"),
        (pre + ["--model", "mlp", "--data", "digits", "--epochs", "0"], "epochs must be"),
        (pre + ["--model", "mlp", "--data", "digits", "--batch", "-1"], "batch must be"),
        (pre + ["--model", "mlp", "--data", "digits", "--lr", "0"], "lr must be"),
        (pre + ["--model", "mlp", "--data", "digits", "--shape", "1,9,9"], "cannot view"),
        (["eval", "--model", "mlp"], "does not name its dataset"),
        (["eval", "--model", str(tmp / "none.npz"), "--data", "digits"], "does not exist"),
    ]


def test_every_bad_input_is_one_line_exit_2(trained, tmp_path, capsys):
    for argv, message in bad_inputs(tmp_path, trained / "model.npz"):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2, argv
        assert err.startswith(f"edgetrain {argv[0]}: error: ") and err.count("\n") == 1, err
        assert message in err, (message, err)
        assert not (tmp_path / "out").exists(), argv  # nothing half-written


def test_out_must_not_be_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = run_cli(capsys, "pretrain", "--model", "mlp", "--data", "digits",
                           "--out", str(tmp_path / "f"))
    assert code == 2 and "is a file" in err


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(EdgetrainError, match="unknown model"):
        main(["--debug", "pretrain", "--model", "mlpp", "--data", "digits", "--out",
              str(tmp_path)])


def test_console_entry_point_exit_code_and_single_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgetrain.cli.main", "pretrain", "--model",
                           "mlp", "--data", "mnsit", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("edgetrain pretrain: error: unknown dataset 'mnsit' (did you mean "
                           "'mnist'?)\n")


@pytest.mark.parametrize("command", ["datasets", "models", "pretrain", "eval"])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "usage: edgetrain" in capsys.readouterr().out


def test_progress_bar_redraws_on_a_terminal_and_prints_epochs():
    import io
    from types import SimpleNamespace as P

    from edgetrain.cli.progress import ProgressBar

    out = io.StringIO()
    bar = ProgressBar(out, live=True, min_interval=0.0)
    for step in (1, 2):
        bar(P(epoch=1, epochs=3, step=step, steps=2, loss=1.5, test_accuracy=None))
    bar(P(epoch=1, epochs=3, step=2, steps=2, loss=1.25, test_accuracy=0.5))
    text = out.getvalue()
    assert text.count("\r") == 3 and "[############------------] 1/2  loss 1.5000" in text
    assert text.endswith("\r\033[Kepoch 1/3  loss 1.2500  test accuracy 50.00 %\n")
