"""What the whole page does in the browser: no freeze at the first switch to a tab, phones.

* **Warm-up while idle.** ``dcc.Graph`` loads plotly.js (4.6 MB) when the first graph mounts,
  and compiling it blocks the browser for a second or more on a slow CPU (measured: 0.9-2.1 s
  of long tasks at the first switch to the Depth tab on a 2-core EPYC, software WebGL). So once
  the page has loaded and the browser is idle (``requestIdleCallback``, at the latest
  :data:`WARMUP_TIMEOUT_MS` after the page appeared), ``assets/face3d.js`` sets
  :data:`~dashboard.ids.PAGE_WARMUP_STORE` and :func:`warmup_children` puts a tiny graph in a
  hidden box: Dash's own loader fetches and compiles plotly.js then, and every later graph uses
  it (``docs/dashboard-ui.md`` has the figures). A page opened with
  ``window.face3dWarmup = false`` set before it loads skips this (the benchmark's baseline).
* **Sections** (:func:`dashboard.layout.common.sections`) start folded on narrow screens.
* **Phones**: :data:`~dashboard.ids.PAGE_VIEWPORT` says whether the window is a phone's
  (``PHONE_MAX_PX``), so the Compare tab stacks the two depth profiles there.
* **A new result comes into view** on narrow screens, where it lies below the settings: after
  *Generate* (or *Compare*) the page scrolls to the result's card.
"""

from __future__ import annotations

from dash import ClientsideFunction, Dash, Input, Output, State, dcc

from dashboard import ids
from dashboard.layout import REVEAL_TARGETS

#: Longest wait (ms) for an idle moment before the warm-up starts anyway.
WARMUP_TIMEOUT_MS = 2500

#: The tiny figure of the warm-up: a heat map, drawn once where nobody sees it.
WARMUP_FIGURE = {
    "data": [{"type": "heatmap", "z": [[0, 1], [1, 0]], "showscale": False, "hoverinfo": "skip"}],
    "layout": {
        "width": 40,
        "height": 40,
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
        "xaxis": {"visible": False},
        "yaxis": {"visible": False},
    },
}


def warmup_children(_signal: object) -> list:
    """What the hidden warm-up box receives once the browser is idle: a tiny static graph."""
    return [dcc.Graph(figure=WARMUP_FIGURE, config={"staticPlot": True, "displayModeBar": False}, responsive=False)]


def register(app: Dash) -> None:
    """Register the page-wide browser behaviour."""
    app.clientside_callback(  # when the browser is idle after the page loaded: set PAGE_WARMUP_STORE
        ClientsideFunction(namespace="face3d", function_name="warmUpWhenIdle"),
        Output(ids.PAGE_WARMUP_STORE, "data"),
        Input(ids.PAGE_WARMUP, "id"),
    )
    app.callback(Output(ids.PAGE_WARMUP, "children"), Input(ids.PAGE_WARMUP_STORE, "data"), prevent_initial_call=True)(
        warmup_children
    )
    app.clientside_callback(  # {"phone": bool} now, and again whenever a resize crosses the phone width
        ClientsideFunction(namespace="face3d", function_name="watchViewport"),
        Output(ids.PAGE_VIEWPORT, "data"),
        Input(ids.PAGE_VIEWPORT, "id"),
        State(ids.PAGE_CONFIG, "data"),
    )
    app.clientside_callback(  # long control lists start folded on narrow screens
        ClientsideFunction(namespace="face3d", function_name="foldSections"),
        *(Output(section, "active_item") for section in ids.SECTIONS),
        Input(ids.TABS, "id"),
        State(ids.PAGE_CONFIG, "data"),
    )
    app.clientside_callback(  # a new result comes into view on narrow screens (returns no update)
        ClientsideFunction(namespace="face3d", function_name="revealResult"),
        Output(ids.PAGE_CONFIG, "data"),
        *(Input(store, "data") for store in REVEAL_TARGETS),
        State(ids.PAGE_CONFIG, "data"),
        prevent_initial_call=True,
    )
