"""Drift transforms for adaptation experiments: a table of named, parameterised shifts of a
dataset's distribution, applied to both splits (the "new domain" a deployed model meets).

================  ==============================================================
``rotate:DEG``    rotate images DEG degrees counter-clockwise (bilinear, 0 outside)
``noise:STD``     add Gaussian noise of standard deviation STD (seeded)
``invert``        mirror values in the train range: x -> lo + hi - x (1 - x on [0, 1])
``contrast:F``    scale each sample around its mean by F, clipped to the train range
``classes:A-B``   class-incremental split: keep only classes A..B (labels unchanged)
``gain:G[@C]``    sensor gain drift: multiply channel C (default: all) by G
``offset:O[@C]``  sensor offset drift: add O to channel C (default: all)
================  ==============================================================

Rotation and inversion follow the rotated/negated-MNIST benchmarks of the continual
learning literature; gain/offset model the calibration drift of IMU sensors that TinyOL
(Ren et al. 2021, "TinyOL: TinyML with Online-Learning on Microcontrollers") adapts to.

>>> from edgetrain.data.dataset import make_dataset
>>> x = np.zeros((2, 1, 3, 3), np.float32); x[:, 0, 1, 2] = 1.0
>>> ds = make_dataset("dot", x, np.array([0, 1]), x, np.array([0, 1]))
>>> r = apply(ds, ["rotate:90"])
>>> r.name, r.x_train[0, 0].round(3).tolist()
('dot+rotate:90', [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
>>> apply(ds, ["rotat:90"])
Traceback (most recent call last):
...
edgetrain.errors.EdgetrainError: unknown drift transform 'rotat' (did you mean 'rotate'?)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgetrain.data.dataset import Dataset, make_dataset
from edgetrain.errors import EdgetrainError, unknown


@dataclass(frozen=True)
class Transform:
    name: str
    usage: str  # the spec form, e.g. "rotate:DEG"
    help: str
    parse: Callable[[str, str], object]  # (spec, parameter text) -> parameter
    apply: Callable[[Dataset, object, np.random.SeedSequence], Dataset]


def _number(spec: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise EdgetrainError(f"drift '{spec}': '{text}' is not a finite number")
    return value


def _non_negative(spec: str, text: str) -> float:
    value = _number(spec, text)
    if value < 0:
        raise EdgetrainError(f"drift '{spec}': needs a value >= 0, got {text}")
    return value


def _nothing(spec: str, text: str) -> None:
    if text:
        raise EdgetrainError(f"drift '{spec}': takes no parameter")


def _class_range(spec: str, text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    high = high or low
    if not (low.isdigit() and high.isdigit()) or int(low) > int(high):
        raise EdgetrainError(f"drift '{spec}': needs a class range A-B with A <= B, e.g. "
                             "classes:0-4")
    return int(low), int(high)


def _channel_value(spec: str, text: str) -> tuple[float, int | None]:
    value, _, channel = text.partition("@")
    if channel and not channel.isdigit():
        raise EdgetrainError(f"drift '{spec}': channel after '@' must be an index, e.g. @0")
    return _number(spec, value), int(channel) if channel else None


def _map_inputs(ds: Dataset, fn, seq: np.random.SeedSequence) -> Dataset:
    """The dataset with fn(x, rng) applied to each split's inputs (own random stream each)."""
    rng_train, rng_test = (np.random.default_rng(s) for s in seq.spawn(2))
    x_train = fn(np.array(ds.x_train), rng_train)  # float32[N_train, *shape]
    x_test = fn(np.array(ds.x_test), rng_test)  # float32[N_test, *shape]
    return make_dataset(ds.name, x_train, ds.y_train, x_test, ds.y_test, ds.num_classes,
                        ds.description)


def rotate_images(x: np.ndarray, degrees: float) -> np.ndarray:
    """Bilinear rotation of float32[N, C, H, W] images about their centre, zeros outside."""
    _n, _c, h, w = x.shape
    t = math.radians(degrees)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)  # output grid
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    # inverse map: the source of each output pixel (counter-clockwise rotation on screen)
    sx = math.cos(t) * (xx - cx) - math.sin(t) * (yy - cy) + cx
    sy = math.sin(t) * (xx - cx) + math.cos(t) * (yy - cy) + cy
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = (sx - x0).astype(np.float32), (sy - y0).astype(np.float32)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 2), (1, 2)))  # float32[N, C, H+3, W+3]
    out = np.zeros_like(x)
    for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                        (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        ry, rx = y0 + dy, x0 + dx
        inside = (ry >= 0) & (ry < h) & (rx >= 0) & (rx < w)
        ry, rx = np.where(inside, ry, -1) + 1, np.where(inside, rx, -1) + 1
        out += padded[:, :, ry, rx] * wgt  # float32[N, C, H, W]
    return out


def _rotate(ds: Dataset, degrees: float, seq) -> Dataset:
    if len(ds.input_shape) != 3:
        raise EdgetrainError(f"drift 'rotate' needs images (C, H, W); '{ds.name}' samples "
                             f"have shape {ds.input_shape}")
    return _map_inputs(ds, lambda x, rng: rotate_images(x, degrees), seq)


def _noise(ds: Dataset, std: float, seq) -> Dataset:
    return _map_inputs(
        ds, lambda x, rng: x + rng.normal(0.0, std, size=x.shape).astype(np.float32), seq)


def _invert(ds: Dataset, _, seq) -> Dataset:
    lo, hi = float(ds.x_train.min()), float(ds.x_train.max())
    return _map_inputs(ds, lambda x, rng: np.float32(lo + hi) - x, seq)


def _contrast(ds: Dataset, factor: float, seq) -> Dataset:
    lo, hi = float(ds.x_train.min()), float(ds.x_train.max())

    def fn(x, rng):
        axes = tuple(range(1, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)  # float32[N, 1, ...]
        return np.clip(mean + np.float32(factor) * (x - mean), lo, hi)

    return _map_inputs(ds, fn, seq)


def _check_channel(ds: Dataset, spec: str, channel: int | None) -> None:
    if channel is not None and (len(ds.input_shape) < 2 or channel >= ds.input_shape[0]):
        raise EdgetrainError(f"drift '{spec}': '{ds.name}' has no channel {channel} (samples "
                             f"have shape {ds.input_shape}, channels first)")


def _sensor(op: Callable[[np.ndarray, float], np.ndarray], spec: str):
    def apply_sensor(ds: Dataset, param: tuple[float, int | None], seq) -> Dataset:
        value, channel = param
        _check_channel(ds, spec, channel)

        def fn(x, rng):
            sel = (slice(None),) if channel is None else (slice(None), channel)
            x[sel] = op(x[sel], np.float32(value))
            return x

        return _map_inputs(ds, fn, seq)

    return apply_sensor


def _classes(ds: Dataset, bounds: tuple[int, int], seq) -> Dataset:
    low, high = bounds
    if high >= ds.num_classes:
        raise EdgetrainError(f"drift 'classes:{low}-{high}': '{ds.name}' has classes "
                             f"0..{ds.num_classes - 1}")
    tr = (ds.y_train >= low) & (ds.y_train <= high)
    te = (ds.y_test >= low) & (ds.y_test <= high)
    return make_dataset(ds.name, ds.x_train[tr], ds.y_train[tr], ds.x_test[te], ds.y_test[te],
                        ds.num_classes, ds.description)


TRANSFORMS: dict[str, Transform] = {t.name: t for t in (
    Transform("rotate", "rotate:DEG", "rotate images by DEG degrees", _number, _rotate),
    Transform("noise", "noise:STD", "add Gaussian noise", _non_negative, _noise),
    Transform("invert", "invert", "mirror values in the train range", _nothing, _invert),
    Transform("contrast", "contrast:F", "scale contrast by F", _non_negative, _contrast),
    Transform("classes", "classes:A-B", "keep classes A..B only", _class_range, _classes),
    Transform("gain", "gain:G[@C]", "multiply channel C (or all) by G", _channel_value,
              _sensor(np.multiply, "gain")),
    Transform("offset", "offset:O[@C]", "add O to channel C (or all)", _channel_value,
              _sensor(np.add, "offset")),
)}


def parse(spec: str) -> tuple[Transform, object]:
    """(transform, parsed parameter) for one spec such as ``"rotate:30"``."""
    name, sep, text = spec.strip().partition(":")
    if name not in TRANSFORMS:
        raise unknown("drift transform", name, TRANSFORMS)
    t = TRANSFORMS[name]
    if sep and not text and t.parse is not _nothing:
        raise EdgetrainError(f"drift '{spec}': missing parameter, use {t.usage}")
    if not sep and t.parse is not _nothing:
        raise EdgetrainError(f"drift '{spec}': needs a parameter, use {t.usage}")
    return t, t.parse(spec, text)


def apply(ds: Dataset, specs: list[str], seed: int = 0) -> Dataset:
    """The dataset after each drift spec in order; every spec is parsed before any runs."""
    parsed = [parse(s) for s in specs]
    seqs = np.random.SeedSequence(seed).spawn(len(parsed))
    for (t, param), seq in zip(parsed, seqs):
        ds = t.apply(ds, param, seq)
    if not specs:
        return ds
    label = ",".join(s.strip() for s in specs)
    return Dataset(f"{ds.name}+{label}", ds.x_train, ds.y_train, ds.x_test, ds.y_test,
                   ds.num_classes, ds.input_shape, f"{ds.description} [drift: {label}]")
