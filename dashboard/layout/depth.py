"""Depth tab: choose a face and a model, generate the depth map, compare it with the photo."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.layout.common import (
    card,
    download_buttons,
    empty_state,
    face_dropdown,
    field,
    figure_box,
    job_panel,
    model_dropdown,
    precision_picker,
    responsive_graph,
    sections,
)
from dashboard.services.model_status import PrecisionChoices
from face3d_core.figures import DEFAULT_COLORMAP, DEPTH_COLORMAPS

GRAPH_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
}


def depth_tab(model_options: list[dict], default_model: str, precision: PrecisionChoices) -> dbc.Row:
    """Layout of the Depth tab."""
    settings = card(
        "Depth map",
        [
            field("Face", face_dropdown(ids.DEPTH_FACE)),
            field("Depth model", model_dropdown(ids.DEPTH_MODEL, model_options, default_model)),
            precision_picker(ids.DEPTH_PRECISION, precision),
            html.Div(id=ids.DEPTH_MODEL_INFO, className="mb-3"),
            dbc.Button("Generate depth map", id=ids.DEPTH_GENERATE, color="primary", className="w-100"),
            job_panel("depth"),
            sections(
                ids.DEPTH_SECTIONS,
                [
                    (
                        "display",
                        "Colours and downloads",
                        [
                            field(
                                "Colour map",
                                dcc.Dropdown(
                                    id=ids.DEPTH_COLORMAP,
                                    options=[{"label": k, "value": k} for k in DEPTH_COLORMAPS],
                                    value=DEFAULT_COLORMAP,
                                    clearable=False,
                                    searchable=False,
                                ),
                                "Grayscale: lighter = nearer.",
                            ),
                            *download_buttons(
                                "Download",
                                [
                                    ("PNG 8-bit", ids.DEPTH_DOWNLOAD_PNG8),
                                    ("PNG 16-bit", ids.DEPTH_DOWNLOAD_PNG16),
                                    (".npy", ids.DEPTH_DOWNLOAD_NPY),
                                ],
                            ),
                        ],
                    )
                ],
            ),
        ],
    )
    graphs = dbc.Row(
        [
            dbc.Col(
                [
                    html.Div("Photo", className="face3d-graph-title"),
                    figure_box(
                        responsive_graph(ids.DEPTH_ORIGINAL_GRAPH, GRAPH_CONFIG),
                        "The photo (the part the depth map covers)",
                    ),
                ],
                md=6,
                className="face3d-figure-col",
            ),
            dbc.Col(
                [
                    html.Div("Depth map", className="face3d-graph-title"),
                    figure_box(
                        responsive_graph(ids.DEPTH_MAP_GRAPH, GRAPH_CONFIG),
                        "The depth map of the photo beside it; the caption below says how to read it",
                    ),
                ],
                md=6,
                className="face3d-figure-col",
                id=ids.DEPTH_MAP_COL,
            ),
        ],
        className="g-3",
    )
    results = card(
        "Result",
        [
            empty_state(
                ids.DEPTH_EMPTY, "No depth map yet", "Choose a face and a model, then click Generate depth map."
            ),
            html.Div(
                id=ids.DEPTH_RESULTS,
                hidden=True,
                children=[
                    graphs,
                    html.Div(id=ids.DEPTH_CAPTION, className="small text-muted mt-2", **{"aria-live": "polite"}),
                ],
            ),
        ],
    )
    return dbc.Row([dbc.Col(settings, lg=3, className="face3d-settings"), dbc.Col(results, lg=9)], className="g-3")
