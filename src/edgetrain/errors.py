"""User-facing errors: one clear line that names the problem and what to do.

The CLI turns an :class:`EdgetrainError` into that line and exit code 2. Library code raises
it for bad *input* (unknown names, wrong shapes, unreadable files); programming errors stay
ordinary exceptions.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgetrainError(ValueError):
    """Bad input from the user; the message is shown as is, on one line."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or a list of choices.

    >>> suggest("mnsit", ["mnist", "digits"])
    " (did you mean 'mnist'?)"
    """
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (choose one of: {', '.join(choices)})"


def unknown(kind: str, name: str, choices: Iterable[str]) -> EdgetrainError:
    """The error for an unknown model/dataset/op/device name, with the closest suggestion.

    >>> str(unknown("dataset", "mnsit", ["mnist", "digits"]))
    "unknown dataset 'mnsit' (did you mean 'mnist'?)"
    """
    return EdgetrainError(f"unknown {kind} '{name}'{suggest(name, choices)}")
