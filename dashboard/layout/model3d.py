"""3D model tab: generate the model, shape sliders, display options, camera presets, downloads."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.controls import DEFAULT_CONTROLS, DENSITY_MARKS, DEPTH_SCALE_MARKS, SMOOTHING_MARKS
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
from dashboard.layout.measure import fov_field, measure_bar, measurements_card, relief_controls, report_button
from dashboard.services.model_status import PrecisionChoices

GRAPH_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["resetCameraLastSave3d"],
    "toImageButtonOptions": {"format": "png", "filename": "face3d_view"},
}


def _slider(component_id: str, minimum: float, maximum: float, step: float, value: float, marks: dict):
    return dcc.Slider(
        id=component_id,
        min=minimum,
        max=maximum,
        step=step,
        value=value,
        marks=marks,
        updatemode="mouseup",
        tooltip={"placement": "bottom", "always_visible": False},
    )


def _display_controls(c) -> list:
    """Points or mesh, grey depth or photo colours, camera presets."""
    return [
        field(
            "Show as",
            dbc.RadioItems(
                id=ids.MODEL3D_DISPLAY,
                value=c.display,
                inline=True,
                options=[{"label": "Points", "value": "points"}, {"label": "Mesh", "value": "mesh"}],
            ),
        ),
        field(
            "Colours",
            dbc.RadioItems(
                id=ids.MODEL3D_COLORS,
                value=c.colors,
                inline=True,
                options=[{"label": "Grayscale depth", "value": "gray"}, {"label": "Photo", "value": "photo"}],
            ),
        ),
        html.Div("Camera", className="fw-semibold small mb-1"),
        dbc.ButtonGroup(
            [
                dbc.Button("Front", id=ids.MODEL3D_CAMERA_FRONT, color="secondary", outline=True, size="sm"),
                dbc.Button("Side", id=ids.MODEL3D_CAMERA_SIDE, color="secondary", outline=True, size="sm"),
                dbc.Button("Top", id=ids.MODEL3D_CAMERA_TOP, color="secondary", outline=True, size="sm"),
            ],
            className="w-100",
        ),
    ]


def _download_controls() -> list:
    """The 3D files, the printable relief and the report."""
    return [
        *download_buttons(
            "3D files",
            [
                ("PLY", ids.MODEL3D_DOWNLOAD_PLY),
                ("OBJ", ids.MODEL3D_DOWNLOAD_OBJ),
                ("GLB", ids.MODEL3D_DOWNLOAD_GLB),
                ("STL", ids.MODEL3D_DOWNLOAD_STL),
            ],
        ),
        relief_controls(),
        report_button(ids.MODEL3D_DOWNLOAD_REPORT),
    ]


def model3d_tab(model_options: list[dict], default_model: str, precision: PrecisionChoices) -> dbc.Row:
    """Layout of the 3D Model tab."""
    c = DEFAULT_CONTROLS
    settings = card(
        "3D model",
        [
            field("Face", face_dropdown(ids.MODEL3D_FACE)),
            field("Depth model", model_dropdown(ids.MODEL3D_MODEL, model_options, default_model)),
            precision_picker(ids.MODEL3D_PRECISION, precision),
            html.Div(id=ids.MODEL3D_MODEL_INFO, className="mb-3"),
            dbc.Button("Generate 3D model", id=ids.MODEL3D_GENERATE, color="primary", className="w-100"),
            job_panel("model3d"),
            sections(
                ids.MODEL3D_SECTIONS,
                [
                    (
                        "shape",
                        "Shape",
                        [
                            field("Smoothing", _slider(ids.MODEL3D_SMOOTHING, 0, 4, 0.5, c.smoothing, SMOOTHING_MARKS)),
                            field("Point density", _slider(ids.MODEL3D_DENSITY, 1, 4, 1, c.density, DENSITY_MARKS)),
                            field(
                                "Depth scale",
                                _slider(ids.MODEL3D_DEPTH_SCALE, 0.5, 2.0, 0.25, c.depth_scale, DEPTH_SCALE_MARKS),
                            ),
                            fov_field(),
                        ],
                    ),
                    ("display", "Display", _display_controls(c)),
                    ("downloads", "Downloads and report", _download_controls()),
                ],
            ),
        ],
    )
    view = card(
        "3D view",
        [
            empty_state(
                ids.MODEL3D_EMPTY,
                "No 3D model yet",
                "Choose a face, then click Generate 3D model. Drag to rotate, scroll to zoom.",
            ),
            html.Div(
                id=ids.MODEL3D_RESULTS,
                hidden=True,
                children=[
                    figure_box(
                        responsive_graph(ids.MODEL3D_GRAPH, GRAPH_CONFIG, clear_on_unhover=True),
                        "3D view of the face: drag to rotate, scroll to zoom; the Camera buttons turn it too",
                        shape="view3d",
                        role="figure",
                    ),
                    measure_bar(),
                    html.Div(id=ids.MODEL3D_STATS, className="small text-muted mt-1"),
                ],
            ),
        ],
        card_id=ids.MODEL3D_VIEW_CARD,
    )
    return dbc.Row(
        [dbc.Col(settings, lg=3, className="face3d-settings"), dbc.Col([view, measurements_card()], lg=9)],
        className="g-3",
    )
