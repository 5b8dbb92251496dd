"""The one gate for values that come from the page: numbers, choices, points, stores.

Anything a browser sends can be forged: a slider value of ``10**400`` (JSON integers have no
size limit), ``NaN`` written as text, a list where a number belongs, a store holding a million
floats or a nested list that numpy would broadcast. Every callback parses what it receives here,
once, where it enters, and downstream code gets plain typed values. A value that does not parse
is ``None`` (the caller keeps its default, or answers "no update"); nothing here raises for a
bad value, so no browser value becomes a traceback or library text on the page.

No Dash import: the helpers are plain functions, tested with arbitrary JSON (hypothesis).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")

#: Longest text read as a number (``"80,5"``, ``"1e3"``); anything longer is not a number.
MAX_NUMBER_TEXT = 40
#: Largest coordinate a point from the page may have, mm (a face is a few hundred mm across).
MAX_COORDINATE_MM = 1e6


def number(value: object, low: float = -math.inf, high: float = math.inf) -> float | None:
    """A finite number within ``[low, high]``, or None.

    Accepts JSON numbers (not booleans) and short numeric text (a decimal comma too). Integers
    too large for a float (``10**400``) and ``NaN``/``inf`` are None, never an ``OverflowError``.

    Example:
        >>> number(10**400) is None, number("2,5"), number(True), number(7, 0, 5)
        (True, 2.5, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_TEXT:
            return None
        value = value.strip().replace(",", ".")
    elif not isinstance(value, (int, float)):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(result) or not low <= result <= high:
        return None
    return result


def clamped(value: object, low: float, high: float, default: float) -> float:
    """A number brought into ``[low, high]`` (a slider's range); ``default`` when it is not a finite number.

    Example:
        >>> clamped(99, 0, 10, 2.0), clamped("junk", 0, 10, 2.0), clamped(-10**400, 0, 10, 2.0)
        (10.0, 2.0, 2.0)
    """
    parsed = number(value)
    return default if parsed is None else float(min(max(parsed, low), high))


def choice(value: object, options: Sequence[T], default: T) -> T:
    """``value`` when it is one of ``options`` (compared as hashable JSON scalars), else ``default``."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        for option in options:
            if type(option) is type(value) and option == value:
                return option
    return default


def list_index(value: object, count: int) -> int | None:
    """An integer index into ``count`` items (``0 <= i < count``), or None (also for ``True`` or ``1.5``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value < count else None


def text(value: object, max_chars: int) -> str | None:
    """A string of at most ``max_chars`` characters, or None."""
    return value if isinstance(value, str) and len(value) <= max_chars else None


def mapping(value: object) -> Mapping[str, object] | None:
    """A JSON object (``dict``), or None."""
    return value if isinstance(value, Mapping) else None


def point_xyz(value: object, limit: float = MAX_COORDINATE_MM) -> np.ndarray | None:
    """A ``(3,) float64`` point: ``[x, y, z]`` or ``{"x", "y", "z"}`` of finite numbers within ``±limit``; else None."""
    if isinstance(value, Mapping):
        value = [value.get(axis) for axis in ("x", "y", "z")]
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return None
    parsed = [number(v, -limit, limit) for v in value]
    if any(v is None for v in parsed):
        return None
    return np.array(parsed, dtype=np.float64)


def points_xyz(value: object, max_points: int, limit: float = MAX_COORDINATE_MM) -> list[np.ndarray] | None:
    """A list of at most ``max_points`` points (see :func:`point_xyz`), or None when any of them is not one."""
    if not isinstance(value, (list, tuple)) or len(value) > max_points:
        return None
    points = [point_xyz(v, limit) for v in value]
    return None if any(p is None for p in points) else points


def text_list(value: object, max_items: int) -> list[str]:
    """A text or a list of texts (``dcc.Upload``'s ``contents``, ``filename``): at most ``max_items``.

    An item that is not text is ``""`` (it keeps its place); a value that is neither is an empty list.
    """
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [item if isinstance(item, str) else "" for item in items[:max_items]]


def distinct_texts(value: object, max_items: int) -> list[str]:
    """The distinct texts of a list (a multi-select's ``value``), in order, at most ``max_items``; junk ignored.

    Example:
        >>> distinct_texts(["a", 7, "b", "a", None, "c"], 2)
        ['a', 'b']
    """
    chosen: list[str] = []
    for item in value[: 4 * max_items] if isinstance(value, list) else []:
        if isinstance(item, str) and item not in chosen and len(chosen) < max_items:
            chosen.append(item)
    return chosen
