"""Compare tab: 2 to 6 items (a face under a model) side by side, aligned depth profiles, the difference of any two."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.layout.common import (
    card,
    empty_state,
    field,
    figure_box,
    job_panel,
    precision_checklist,
    responsive_graph,
    sections,
)
from dashboard.layout.measure import compare_measurements_card
from dashboard.services.model_status import PrecisionChoices

MAX_COMPARE = 6
GRAPH_CONFIG = {"displaylogo": False, "responsive": True}


def _pair_dropdown(component_id: str, value: int) -> dcc.Dropdown:
    """One of the two items of the difference map (options: the compared items)."""
    return dcc.Dropdown(id=component_id, options=[], value=value, clearable=False, searchable=False)


def compare_tab(model_options: list[dict], default_model: str, precision: PrecisionChoices) -> dbc.Row:
    """Layout of the Compare tab: items (faces x models x precisions, as chips), the views, the difference of two."""
    settings = card(
        "Compare faces or models",
        [
            field(
                "Faces",
                dcc.Dropdown(
                    id=ids.COMPARE_FACES,
                    options=[],
                    value=[],
                    multi=True,
                    placeholder="Choose one or more faces",
                    searchable=False,
                ),
            ),
            field(
                "Depth models",
                dcc.Dropdown(
                    id=ids.COMPARE_MODELS,
                    options=model_options,
                    value=[default_model],
                    multi=True,
                    clearable=False,
                    searchable=False,
                    placeholder="Choose one or more models",
                ),
                "One face under several models shows which network sees it best.",
            ),
            precision_checklist(ids.COMPARE_PRECISIONS, precision),
            html.Div(id=ids.COMPARE_MODEL_INFO, className="mb-3"),
            html.Div(
                [
                    html.Div(
                        [
                            html.Span("Items to compare", className="fw-semibold small"),
                            html.Span(id=ids.COMPARE_ITEMS_NOTE, className="small text-muted ms-2"),
                        ],
                        className="mb-1",
                    ),
                    html.Div(id=ids.COMPARE_ITEMS, className="face3d-chips", role="list"),
                ],
                className="mb-3",
            ),
            dbc.Button("Compare", id=ids.COMPARE_RUN, color="primary", className="w-100"),
            job_panel("compare"),
            dcc.Store(id=ids.COMPARE_ITEMS_STORE, data=[]),
            dcc.Store(id=ids.COMPARE_REMOVED_STORE, data=None),
            sections(
                ids.COMPARE_SECTIONS,
                [
                    (
                        "how",
                        "How items are compared",
                        html.P(
                            "An item is a face under a depth model. Each is put in its own 3D frame (head pose "
                            "from its symmetry) and seen as if it faced the camera; its depth is normalised to "
                            "its own range (0 = far, 1 = nearest), so shapes compare, not sizes or poses. "
                            "Positions are in inter-ocular distances (IOD). Depth maps computed before are "
                            "reused.",
                            className="small text-muted mb-0",
                        ),
                    )
                ],
            ),
        ],
    )
    views = html.Div(
        [
            html.Div(
                className="d-flex justify-content-between align-items-center mb-2",
                children=[
                    html.Div(id=ids.COMPARE_3D_NOTE, className="small text-muted"),
                    dbc.RadioItems(id=ids.COMPARE_PAGE, options=[], value=0, inline=True, className="small"),
                ],
            ),
            figure_box(
                responsive_graph(ids.COMPARE_3D_GRAPH, GRAPH_CONFIG),
                "3D views of the compared items, two per row, with one shared camera",
                shape="compare3d",
                role="figure",
                box_id=ids.COMPARE_3D_BOX,
            ),
            dcc.Store(id=ids.COMPARE_CAMERA_SYNC),
        ]
    )
    results = html.Div(
        id=ids.COMPARE_RESULTS,
        hidden=True,
        children=[
            card("3D views (one shared camera)", views),
            compare_measurements_card(),
            card(
                "Depth profiles",
                figure_box(
                    responsive_graph(ids.COMPARE_PROFILES_GRAPH, GRAPH_CONFIG),
                    "Depth profiles of the items: vertical through the nose and horizontal through the eyes",
                    shape="profiles",
                    role="figure",
                ),
            ),
            html.Div(
                id=ids.COMPARE_PAIR_SECTION,
                children=card(
                    "Difference of two items",
                    [
                        html.Div(
                            [
                                html.Div(
                                    field("First", _pair_dropdown(ids.COMPARE_PAIR_FIRST, 0)),
                                    className="face3d-pair-pick",
                                ),
                                html.Button(
                                    "⇄",
                                    id=ids.COMPARE_PAIR_SWAP,
                                    type="button",
                                    title="Swap the two items",
                                    className="btn btn-sm btn-outline-secondary face3d-pair-swap",
                                    **{"aria-label": "Swap the two items"},
                                ),
                                html.Div(
                                    field("minus second", _pair_dropdown(ids.COMPARE_PAIR_SECOND, 1)),
                                    className="face3d-pair-pick",
                                ),
                            ],
                            className="face3d-pair-row",
                        ),
                        dbc.Row(
                            [
                                dbc.Col(
                                    figure_box(
                                        responsive_graph(ids.COMPARE_DIFF_GRAPH, GRAPH_CONFIG),
                                        "Difference map of the two items: red where the first is nearer, blue "
                                        "where the second is",
                                        shape="diff",
                                        box_id=ids.COMPARE_DIFF_BOX,
                                    ),
                                    md=6,
                                    xl=7,
                                    className="face3d-figure-col",
                                ),
                                dbc.Col(html.Div(id=ids.COMPARE_METRICS), md=6, xl=5),
                            ],
                            className="g-3 align-items-center",
                        ),
                    ],
                ),
            ),
        ],
    )
    right = html.Div(
        [
            html.Div(id=ids.COMPARE_SKIPPED),
            html.Div(
                id=ids.COMPARE_EMPTY,
                children=card(
                    "Comparison",
                    empty_state(
                        "compare-empty-state",
                        "Nothing to compare yet",
                        "Choose two or more faces, or one face and two or more models, then click Compare.",
                    ),
                ),
            ),
            results,
        ]
    )
    return dbc.Row([dbc.Col(settings, lg=3, className="face3d-settings"), dbc.Col(right, lg=9)], className="g-3")
