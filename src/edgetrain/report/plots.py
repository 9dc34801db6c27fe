"""PNG plots for reports (matplotlib, the `plot` extra). Without matplotlib every function
returns None and `missing_reason()` says why, so reports keep their tables."""

from __future__ import annotations

from pathlib import Path


def missing_reason() -> str | None:
    """None when plotting works, else one line saying what to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "plots skipped: matplotlib is not installed (pip install 'edgetrain[plot]')"
    return None


def _pyplot():
    if missing_reason():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def line_plot(path: str | Path, series: dict[str, tuple[list, list]], xlabel: str,
              ylabel: str, title: str) -> Path | None:
    """series: label -> (x values, y values)."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker=".", label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, plt, Path(path))


def stacked_bars(path: str | Path, bars: dict[str, dict[str, float]], ylabel: str, title: str,
                 limit: float | None = None, limit_label: str = "") -> Path | None:
    """bars: bar label -> {part: value}; an optional horizontal limit line (e.g. device SRAM)."""
    plt = _pyplot()
    if plt is None:
        return None
    parts = list(dict.fromkeys(p for stack in bars.values() for p in stack))
    fig, ax = plt.subplots(figsize=(6.4, 4))
    bottoms = [0.0] * len(bars)
    for part in parts:
        heights = [stack.get(part, 0.0) for stack in bars.values()]
        ax.bar(list(bars), heights, bottom=bottoms, label=part)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    if limit is not None:
        ax.axhline(limit, color="red", linestyle="--", label=limit_label)
    ax.set(ylabel=ylabel, title=title)
    ax.tick_params(axis="x", labelrotation=20)
    ax.legend(fontsize=8)
    return _save(fig, plt, Path(path))
