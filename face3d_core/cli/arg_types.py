"""Argument types of the ``face3d`` command line: every number has a range, and a bad value is one line.

Each numeric option is parsed by a type from here (:func:`number`, :func:`whole_number`,
:func:`face_number`), so ``inf``, ``nan`` and values outside a sensible range stop the command
before any work with ``face3d: error: argument --fov: ...`` (:class:`OneLineParser`), never a
usage block or a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from face3d_core.errors import shown_value

#: Highest face number accepted (photos hold far fewer faces).
MAX_FACE_NUMBER = 999


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line: ``face3d: error: <what> (see <prog> --help)``."""

    def error(self, message: str):  # type: ignore[override]
        """Print one error line and exit with status 2 (argparse's usage-error status)."""
        self.exit(2, f"face3d: error: {message} (see {self.prog} --help)\n")

    def exit(self, status: int = 0, message: str | None = None):  # type: ignore[override]
        """Exit, writing ``message`` to stderr as is."""
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


def number(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type for a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``).

    Example:
        >>> number(0, 50)("2.5")
        2.5
        >>> number(0, 50)("inf")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: must be a number from 0 to 50, got 'inf'
    """
    what = f"more than {low:g} and at most {high:g}" if low_open else f"from {low:g} to {high:g}"

    def parse(value: str) -> float:
        try:
            result = float(value)
        except ValueError:
            result = math.nan
        if not math.isfinite(result) or result > high or result < low or (low_open and result == low):
            raise argparse.ArgumentTypeError(f"must be a number {what}, got {shown_value(value)}")
        return result

    parse.__name__ = "number"  # argparse names the type in some messages
    return parse


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type for a whole number in ``[low, high]``."""

    def parse(value: str) -> int:
        try:
            result = int(value, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high}, got {shown_value(value)}"
            ) from None
        if not low <= result <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, got {shown_value(value)}")
        return result

    parse.__name__ = "whole number"
    return parse


#: ``--face`` of ``face3d depth``: 0 (the largest face) to :data:`MAX_FACE_NUMBER`.
face_number = whole_number(0, MAX_FACE_NUMBER)
