"""What a page shows, as text: Dash component trees flattened, and the check for server internals.

:func:`component_text` walks a Dash component (and its children, at any depth) and returns every
string a browser would show or link to (children, ``href``, ``title``, ``alt``, ``aria-label``,
``data-copy``). :func:`internal_leaks` lists what in a text looks like server internals (a
filesystem path, a traceback, raw urllib / OpenCV error text). It is written independently of
``dashboard.errors.looks_internal``, so a test with it also checks that guard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: Props whose text a user sees or follows.
_TEXT_PROPS = ("children", "href", "title", "alt", "aria-label", "data-copy", "label", "placeholder")

_LEAKS = {
    "absolute path": re.compile(r"(?:^|[\s(\"'=,;])(/(?:[\w.@+-]+/)+[\w.@+-]*)"),
    "home path": re.compile(r"(?:^|[\s(\"'])(~/[\w.-]+)"),
    "windows path": re.compile(r"\b([A-Z]:\\[\w\\.-]+)"),
    "traceback": re.compile(r"(Traceback \(most recent call last\)|File \"[^\"]+\", line \d+)"),
    "urllib error": re.compile(r"(<urlopen error[^>]*>?|urllib\.error\.\w+|\[Errno -?\d+\])"),
    "OpenCV error": re.compile(r"(cv2\.error|OpenCV\([\d.]+\)|error: \(-\d+:[^)]*\)|Assertion failed)"),
    "Python exception name": re.compile(r"\b((?:Key|Value|Type|Attribute|Runtime|OS|Index)Error\b)"),
}


def component_text(component: Any) -> str:
    """Every user-visible string of a Dash component tree (or a list of them), joined by newlines."""
    return "\n".join(_walk(component))


def _walk(node: Any) -> Iterable[str]:
    if node is None or isinstance(node, bool):
        return
    if isinstance(node, (str, int, float)):
        yield str(node)
        return
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item)
        return
    props = node.to_plotly_json().get("props", {}) if hasattr(node, "to_plotly_json") else {}
    for name in _TEXT_PROPS:
        if name in props:
            yield from _walk(props[name])


def internal_leaks(text: str) -> list[str]:
    """What in ``text`` looks like server internals, as ``"kind: match"`` lines (empty: none)."""
    found = []
    for kind, pattern in _LEAKS.items():
        for match in pattern.finditer(text or ""):
            value = match.group(1)
            if kind == "absolute path" and value.startswith("//"):
                continue  # protocol-relative URL part
            found.append(f"{kind}: {value}")
    return found
