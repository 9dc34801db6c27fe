"""A dependency-free progress bar on stderr for long runs (training, sweeps).

It accepts any report object with ``epoch, epochs, step, steps, loss`` and an optional
``test_accuracy`` (set once per epoch), such as ``train.pretrain.Progress``. On a terminal
the current line is redrawn at most ten times a second; elsewhere (logs, CI) one line is
written per epoch.

>>> import io
>>> from types import SimpleNamespace as P
>>> out = io.StringIO()
>>> bar = ProgressBar(out, live=False)
>>> bar(P(epoch=1, epochs=2, step=3, steps=3, loss=0.5, test_accuracy=None))
>>> bar(P(epoch=1, epochs=2, step=3, steps=3, loss=0.5, test_accuracy=0.9))
>>> out.getvalue()
'epoch 1/2  loss 0.5000  test accuracy 90.00 %\\n'
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def bar(fraction: float, width: int = 24) -> str:
    """A text bar such as '[######------]'.

    >>> bar(0.5, 4)
    '[##--]'
    """
    done = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * done + "-" * (width - done) + "]"


class ProgressBar:
    def __init__(self, stream: TextIO | None = None, live: bool | None = None,
                 min_interval: float = 0.1):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.min_interval = min_interval
        self._last = 0.0

    def __call__(self, p) -> None:
        accuracy = getattr(p, "test_accuracy", None)
        if accuracy is not None:
            self._write_line(f"epoch {p.epoch}/{p.epochs}  loss {p.loss:.4f}  "
                             f"test accuracy {100.0 * accuracy:.2f} %")
        elif self.live:
            self._redraw(p)

    def _redraw(self, p) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval and p.step != p.steps:
            return
        self._last = now
        self.stream.write(f"\repoch {p.epoch}/{p.epochs} {bar(p.step / p.steps)} "
                          f"{p.step}/{p.steps}  loss {p.loss:.4f}")
        self.stream.flush()

    def _write_line(self, text: str) -> None:
        prefix = "\r\033[K" if self.live else ""
        self.stream.write(prefix + text + "\n")
        self.stream.flush()
