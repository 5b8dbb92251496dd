"""Layout of the dashboard: the shell (navbar, tabs, stores) and one module per tab."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.layout.common import NARROW_MAX_PX, PHONE_MAX_PX, job_stores
from dashboard.layout.compare import compare_tab
from dashboard.layout.depth import depth_tab
from dashboard.layout.model3d import model3d_tab
from dashboard.layout.upload import upload_tab
from dashboard.services.model_status import PrecisionChoices

PRODUCT_NAME = "face3d"


def navbar() -> dbc.Navbar:
    """The top bar with the product name."""
    return dbc.Navbar(
        dbc.Container(
            [
                html.A(
                    [
                        html.Span("◐", className="face3d-logo me-2", **{"aria-hidden": "true"}),
                        html.Span(PRODUCT_NAME, className="fw-bold"),
                    ],
                    href="/",
                    className="navbar-brand d-flex align-items-center",
                ),
                html.Span("Face photo → depth map → 3D model", className="navbar-text small text-white-50"),
            ],
            fluid=True,
        ),
        id=ids.NAVBAR,
        color="dark",
        dark=True,
        className="mb-3 face3d-navbar",
    )


#: What comes into view on narrow screens when a tab's new result arrives: ``result store: (the box
#: that shows the result, what to bring to the top once it is shown)``: the depth map (below the
#: photo), the 3D view's card, the comparison.
REVEAL_TARGETS = {
    ids.DEPTH_RESULT_STORE: (ids.DEPTH_RESULTS, ids.DEPTH_MAP_COL),
    ids.MODEL3D_SOURCE_STORE: (ids.MODEL3D_RESULTS, ids.MODEL3D_VIEW_CARD),
    ids.COMPARE_RESULT_STORE: (ids.COMPARE_RESULTS, ids.COMPARE_RESULTS),
}


def page_config() -> dict:
    """What ``assets/face3d.js`` needs to know of the layout (:data:`dashboard.ids.PAGE_CONFIG`)."""
    return {"narrow_max_px": NARROW_MAX_PX, "phone_max_px": PHONE_MAX_PX, "reveal": REVEAL_TARGETS}


def build_layout(model_options: list[dict], default_model: str, precision: PrecisionChoices) -> html.Div:
    """The whole page.

    Args:
        model_options: Options of the model pickers (see :func:`dashboard.callbacks.choices.model_options`).
        default_model: Model selected at first.
        precision: The precisions offered (see :func:`dashboard.services.model_status.precision_choices_here`).
    """
    tabs = dcc.Tabs(
        id=ids.TABS,
        value=ids.TAB_UPLOAD,
        mobile_breakpoint=0,  # one row of tabs on a phone too (stacked tabs push everything down)
        className="face3d-tabs",
        parent_className="face3d-tabs-parent",
        content_className="face3d-tab-content pt-3",
        children=[
            dcc.Tab(
                label="1 · Upload",
                value=ids.TAB_UPLOAD,
                children=upload_tab(precision),
                className="face3d-tab",
                selected_className="face3d-tab--selected",
            ),
            dcc.Tab(
                label="2 · Depth map",
                value=ids.TAB_DEPTH,
                children=depth_tab(model_options, default_model, precision),
                className="face3d-tab",
                selected_className="face3d-tab--selected",
            ),
            dcc.Tab(
                label="3 · 3D model",
                value=ids.TAB_MODEL3D,
                children=model3d_tab(model_options, default_model, precision),
                className="face3d-tab",
                selected_className="face3d-tab--selected",
            ),
            dcc.Tab(
                label="4 · Compare",
                value=ids.TAB_COMPARE,
                children=compare_tab(model_options, default_model, precision),
                className="face3d-tab",
                selected_className="face3d-tab--selected",
            ),
        ],
    )
    stores = [
        dcc.Store(id=ids.UPLOADS_STORE, storage_type="local"),
        dcc.Store(id=ids.UPLOAD_REJECTED_STORE),
        dcc.Store(id=ids.DEPTH_RESULT_STORE, storage_type="session"),
        dcc.Store(id=ids.MODEL3D_SOURCE_STORE, storage_type="session"),
        dcc.Store(id=ids.MODEL3D_VIEW_STORE, data={"camera": None, "rev": 0}),
        dcc.Store(id=ids.COMPARE_RESULT_STORE, storage_type="session"),
        dcc.Store(id=ids.DOWNLOAD),
        dcc.Store(id=ids.DOWNLOAD_STARTED),
        dcc.Store(id=ids.PAGE_WARMUP_STORE),
        dcc.Store(id=ids.PAGE_CONFIG, data=page_config()),
        dcc.Store(id=ids.PAGE_VIEWPORT, data={"phone": False}),
        html.Div(id=ids.PAGE_WARMUP, className="face3d-warmup", hidden=True, **{"aria-hidden": "true"}),
    ]
    for prefix in ids.JOB_PREFIXES:
        stores.extend(job_stores(prefix))
    return html.Div(
        [
            navbar(),
            dbc.Container(
                [
                    html.Div(id=ids.ALERTS, className="face3d-alerts", role="status", **{"aria-live": "polite"}),
                    tabs,
                ],
                fluid=True,
                className="pb-4 face3d-main",
            ),
            html.Div(
                id=ids.DOWNLOAD_STATUS, className="face3d-download-status", role="status", **{"aria-live": "polite"}
            ),
            *stores,
        ]
    )
