"""Compare tab: 2 to 6 faces side by side, aligned depth profiles, a difference map for two."""

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
    model_dropdown,
    precision_picker,
    responsive_graph,
)
from dashboard.layout.measure import compare_measurements_card
from dashboard.services.model_status import PrecisionChoices

MAX_COMPARE = 6
GRAPH_CONFIG = {"displaylogo": False, "responsive": True}


def compare_tab(model_options: list[dict], default_model: str, precision: PrecisionChoices) -> dbc.Row:
    """Layout of the Compare tab."""
    settings = card(
        "Compare faces",
        [
            field(
                "Faces (2 to 6)",
                dcc.Dropdown(
                    id=ids.COMPARE_FACES,
                    options=[],
                    value=[],
                    multi=True,
                    placeholder="Choose at least two faces",
                    searchable=False,
                ),
            ),
            field("Depth model", model_dropdown(ids.COMPARE_MODEL, model_options, default_model)),
            precision_picker(ids.COMPARE_PRECISION, precision),
            html.Div(id=ids.COMPARE_MODEL_INFO, className="mb-3"),
            dbc.Button("Compare", id=ids.COMPARE_RUN, color="primary", className="w-100"),
            job_panel("compare"),
            html.Hr(),
            html.P(
                "Each face is put in its own 3D frame (head pose from its symmetry) and seen as if it "
                "faced the camera; its depth is normalised to its own range (0 = far, 1 = nearest), so "
                "shapes compare, not sizes or poses. Positions are in inter-ocular distances (IOD).",
                className="small text-muted mb-0",
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
                "3D views of the compared faces, two per row, with one shared camera",
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
                    "Depth profiles of the faces: vertical through the nose and horizontal through the eyes",
                    shape="profiles",
                    role="figure",
                ),
            ),
            html.Div(
                id=ids.COMPARE_PAIR_SECTION,
                hidden=True,
                children=card(
                    "Difference of the two faces",
                    dbc.Row(
                        [
                            dbc.Col(
                                figure_box(
                                    responsive_graph(ids.COMPARE_DIFF_GRAPH, GRAPH_CONFIG),
                                    "Difference map of the two faces: red where the first is nearer, blue where "
                                    "the second is",
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
                ),
            ),
        ],
    )
    right = html.Div(
        [
            html.Div(
                id=ids.COMPARE_EMPTY,
                children=card(
                    "Comparison",
                    empty_state(
                        "compare-empty-state",
                        "Nothing to compare yet",
                        "Upload two or more face photos, choose them here, then click Compare.",
                    ),
                ),
            ),
            results,
        ]
    )
    return dbc.Row([dbc.Col(settings, lg=3, className="face3d-settings"), dbc.Col(right, lg=9)], className="g-3")
