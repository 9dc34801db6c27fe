"""Float32 pre-training: config checks, seeded determinism, progress, accuracy bars (short)."""

import numpy as np
import pytest

from edgetrain import data, zoo
from edgetrain.data import make_dataset
from edgetrain.errors import EdgetrainError
from edgetrain.ir import GraphBuilder
from edgetrain.train.pretrain import (
    PretrainConfig,
    check_compatible,
    evaluate,
    pretrain,
    shift_batch,
)


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = (rng.normal(size=(n, 4)) + 3.0 * np.eye(3, 4)[y]).astype(np.float32)
    return make_dataset("blobs", x[: n // 2], y[: n // 2], x[n // 2:], y[n // 2:])


def mlp(seed=0, classes=3):
    b = GraphBuilder("tiny", (4,), seed=seed)
    return b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
                         out_features=classes))


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch": -4}, "batch must be a positive integer"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"lr": "0.1"}, "lr must be a finite number"),
    ({"optimizer": "adma"}, "did you mean 'adam'"),
    ({"schedule": "cosin"}, "did you mean 'cosine'"),
    ({"momentum": 1.0}, "momentum"),
    ({"shift": -1}, "shift"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(EdgetrainError, match=message):
        PretrainConfig(**kwargs)


def test_config_normalises_numpy_scalars_for_json():
    import dataclasses
    import json

    cfg = PretrainConfig(epochs=np.int64(3), lr=np.float32(0.5), seed=np.int32(2))
    assert json.loads(json.dumps(dataclasses.asdict(cfg)))["epochs"] == 3
    assert type(cfg.lr) is float and type(cfg.seed) is int


def test_same_seed_same_model_different_seed_differs():
    ds, cfg = blobs(), PretrainConfig(epochs=3, batch=8, lr=0.05, seed=5)
    a, b, c = mlp(), mlp(), mlp()
    ra, rb = pretrain(a, ds, cfg), pretrain(b, ds, cfg)
    pretrain(c, ds, PretrainConfig(epochs=3, batch=8, lr=0.05, seed=6))
    assert ra.train_loss == rb.train_loss
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params)


def test_progress_reports_every_step_and_epoch():
    events = []
    result = pretrain(mlp(), blobs(), PretrainConfig(epochs=2, batch=16, lr=0.05),
                      on_progress=events.append)
    steps = [e for e in events if e.test_accuracy is None]
    ends = [e for e in events if e.test_accuracy is not None]
    assert len(steps) == 2 * 4 and [e.step for e in steps[:4]] == [1, 2, 3, 4]
    assert all(e.steps == 4 and e.epochs == 2 for e in steps)
    assert [e.test_accuracy for e in ends] == list(result.test_accuracy)
    assert [e.loss for e in ends] == list(result.train_loss)


def test_training_lowers_loss_with_adam_and_cosine():
    result = pretrain(mlp(), blobs(), PretrainConfig(epochs=15, batch=8, lr=0.01,
                                                     optimizer="adam", schedule="cosine"))
    assert result.train_loss[-1] < 0.5 * result.train_loss[0]
    assert result.final_accuracy >= 0.9


def test_divergence_is_reported():
    with pytest.raises(EdgetrainError, match="diverged"), np.errstate(all="ignore"):
        pretrain(mlp(), blobs(), PretrainConfig(epochs=3, batch=8, lr=1e30, momentum=0.0))


def test_incompatible_model_and_data():
    with pytest.raises(EdgetrainError, match=r"takes inputs of shape \(4,\)"):
        check_compatible(mlp(), data.load("digits"))
    with pytest.raises(EdgetrainError, match="has label 2 but model 'tiny' has only 2 outputs"):
        pretrain(mlp(classes=2), blobs(), PretrainConfig())


def test_evaluate_matches_argmax_and_marks_absent_classes():
    g, ds = mlp(seed=3), blobs()
    from edgetrain.engine.float32 import predict

    keep = ds.y_test != 2
    ev = evaluate(g, ds.x_test[keep], ds.y_test[keep])
    pred = predict(g, ds.x_test[keep]).argmax(axis=1)
    assert ev.accuracy == float(np.mean(pred == ds.y_test[keep]))
    assert ev.samples == int(keep.sum()) and ev.per_class_accuracy[2] is None
    with pytest.raises(EdgetrainError, match="empty"):
        evaluate(g, ds.x_test[:0], ds.y_test[:0])


def test_shift_batch_moves_content_within_bounds():
    x = np.zeros((50, 1, 9, 9), np.float32)
    x[:, 0, 4, 4] = 1.0
    out = shift_batch(x, 2, np.random.default_rng(0))
    rows, cols = np.nonzero(out[:, 0].sum(axis=0))
    assert out.sum() == 50.0 and rows.min() == 2 and rows.max() == 6 and cols.min() == 2
    np.testing.assert_array_equal(shift_batch(x, 0, np.random.default_rng(0)), x)


def test_mlp_on_digits_reaches_90_percent():
    ds = data.load("digits")
    g = zoo.build("mlp", input_shape=ds.input_shape, num_classes=ds.num_classes, seed=0)
    result = pretrain(g, ds, PretrainConfig(epochs=10, batch=32, lr=0.05, schedule="cosine"))
    assert result.final_accuracy >= 0.90


def test_motion_cnn1d_on_basic_motions_reaches_85_percent():
    ds = data.load("basic-motions")
    g = zoo.build("motion-cnn1d", seed=0)
    result = pretrain(g, ds, PretrainConfig(epochs=15, batch=8, lr=0.01, optimizer="adam",
                                            schedule="cosine"))
    assert result.final_accuracy >= 0.85
