"""``Any`` only at the Dash boundary (issue 17 item 7).

Inside ``dashboard/`` every value has a real type (a dataclass, a TypedDict, a Protocol, a concrete
class, ``object`` for a value still to be parsed). ``Any`` may appear only where a raw value comes
from the browser:

* in a function registered as a Dash callback (decorated with ``app.callback`` / ``dash.callback``),
  parameters, return and body;
* as the type of ``**kwargs`` forwarded to a Dash or Plotly constructor;
* in the modules of :data:`BOUNDARY_MODULES`, whose job is to take such raw values.

The check reads the source (AST), so it is fast and needs no import of the app.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"

#: Modules (relative to ``dashboard/``) that take raw page values; ``Any`` may appear anywhere in them.
BOUNDARY_MODULES = {"browser_values.py"}


def _is_callback_decorator(node: ast.expr) -> bool:
    """``@app.callback(...)``, ``@dash.callback(...)``, ``@callback(...)`` (called or bare)."""
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr == "callback"
    return isinstance(target, ast.Name) and target.id == "callback"


def _any_names(tree: ast.Module) -> set[str]:
    """Names this module binds to ``typing.Any`` (``Any`` itself, or an ``as`` alias)."""
    names = {"Any"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("typing", "typing_extensions"):
            names.update(alias.asname for alias in node.names if alias.name == "Any" and alias.asname)
    return names


def _annotation_roots(tree: ast.Module) -> Iterator[ast.expr]:
    """Every annotation of the module (parameters, returns, annotated names, ``TypeAlias`` values)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    yield arg.annotation
            if node.returns is not None:
                yield node.returns
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation
            if node.value is not None and "TypeAlias" in ast.unparse(node.annotation):
                yield node.value


def _string_annotation_uses(tree: ast.Module, names: set[str]) -> Iterator[ast.AST]:
    """Uses of ``Any`` inside annotations written as text (``"dict[str, Any]"``), at the text's line."""
    for root in _annotation_roots(tree):
        for node in ast.walk(root):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    parsed = ast.parse(node.value, mode="eval")
                except SyntaxError:
                    continue
                for inner in ast.walk(parsed):
                    if _is_any(inner, names):
                        yield node


def _is_any(node: ast.AST, names: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names
    return isinstance(node, ast.Attribute) and node.attr == "Any"


def _allowed_spans(tree: ast.Module) -> list[tuple[int, int]]:
    """Line spans of the functions registered as Dash callbacks (decorators included)."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
            _is_callback_decorator(d) for d in node.decorator_list
        ):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            spans.append((start, node.end_lineno or node.lineno))
    return spans


def _kwargs_annotations(tree: ast.Module) -> set[int]:
    """``id()`` of every node inside a ``**kwargs`` annotation (forwarded to Dash/Plotly: allowed)."""
    allowed = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.args.kwarg is not None:
            annotation = node.args.kwarg.annotation
            if annotation is not None:
                allowed.update(id(n) for n in ast.walk(annotation))
    return allowed


def any_outside_boundary(source: str) -> list[int]:
    """Line numbers of the uses of ``Any`` in ``source`` outside the Dash boundary (imports excluded)."""
    tree = ast.parse(source)
    names = _any_names(tree)
    spans = _allowed_spans(tree)
    kwargs = _kwargs_annotations(tree)
    uses = [node for node in ast.walk(tree) if _is_any(node, names) and id(node) not in kwargs]
    uses += list(_string_annotation_uses(tree, names))
    return sorted(node.lineno for node in uses if not any(start <= node.lineno <= end for start, end in spans))


def _dashboard_modules() -> list[Path]:
    return sorted(DASHBOARD.rglob("*.py"))


def test_any_only_at_the_dash_boundary():
    assert _dashboard_modules(), "dashboard/ not found"
    found = {}
    for path in _dashboard_modules():
        name = path.relative_to(DASHBOARD).as_posix()
        if name in BOUNDARY_MODULES:
            continue
        lines = any_outside_boundary(path.read_text(encoding="utf-8"))
        if lines:
            found[name] = lines
    assert not found, (
        "`Any` outside the Dash boundary (give these a real type: a dataclass, TypedDict, Protocol, a concrete "
        f"class, or `object` for a raw value still to be parsed): {found}"
    )


def test_the_allow_lists_name_existing_modules():
    for name in BOUNDARY_MODULES:
        assert (DASHBOARD / name).is_file(), f"{name} is allowed `Any` but does not exist: remove it from the list"


# -- the check itself finds what it must (and only that) ---------------------------------------

INTERNAL = """
from typing import Any

def render(service: Any, data: dict[str, Any]) -> Any:
    return data
"""

CALLBACK = """
from typing import Any

def register(app):
    @app.callback(Output("a", "b"), Input("c", "d"))
    def _on_change(value: Any) -> Any:
        parsed: Any = value
        return parsed

    @dash.callback
    def _other(value: Any):
        return value
"""

FORWARDED = """
from typing import Any

def card(title: str, **kwargs: Any) -> dbc.Card:
    return dbc.Card(title, **kwargs)
"""

HIDDEN = """
import typing
from typing import Any as Whatever, TypeAlias

Params: TypeAlias = "dict[str, Any]"

def a(x: Whatever) -> None: ...
def b(x: typing.Any) -> None: ...
def c(x: "list[Any]") -> None: ...
def d(*args: Any) -> None: ...
"""


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(INTERNAL, [4, 4, 4], id="internal function"),
        pytest.param(CALLBACK, [], id="registered callbacks"),
        pytest.param(FORWARDED, [], id="kwargs forwarded"),
        pytest.param(HIDDEN, [5, 7, 8, 9, 10], id="alias, typing.Any, text annotations, *args"),
    ],
)
def test_the_check_finds_any_outside_callbacks(source, expected):
    assert any_outside_boundary(source) == expected
