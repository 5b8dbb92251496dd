"""Layout of measuring, printing and sharing (3D and Compare tabs).

The field of view, click to measure, the measurement tables, the printable relief and the
report downloads.
"""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.controls import FOV_MARKS, FOV_RANGE
from dashboard.layout.common import card, field
from dashboard.services.exports import ReliefSettings
from face3d_core.geometry import DEFAULT_FOV_DEG
from face3d_core.relief import DEFAULT_BASE_MM, DEFAULT_RELIEF, DEFAULT_WIDTH_MM

#: Status of click to measure before the first click.
MEASURE_HINT = "Click a point on the face to start measuring (then a second one)."


def fov_field() -> html.Div:
    """The field of view: "auto (EXIF)" by default, or a value chosen on the slider."""
    return field(
        "Field of view",
        html.Div(
            [
                dbc.Switch(
                    id=ids.MODEL3D_FOV_AUTO,
                    label="Auto (EXIF)",
                    value=True,
                    className="small mb-1",
                ),
                dcc.Slider(
                    id=ids.MODEL3D_FOV,
                    min=FOV_RANGE[0],
                    max=FOV_RANGE[1],
                    step=1,
                    value=DEFAULT_FOV_DEG,
                    marks=FOV_MARKS,
                    disabled=True,
                    updatemode="mouseup",
                    tooltip={"placement": "bottom", "always_visible": False},
                ),
                html.Div(id=ids.MODEL3D_FOV_INFO, className="small text-muted"),
            ]
        ),
        html_for=ids.MODEL3D_FOV_AUTO,
    )


def _number_input(component_id: str, value: float, name: str) -> dbc.Input:
    # a text field (with the number keyboard on phones), not type="number": a browser turns what a
    # number field cannot read ("1e400", letters) into an empty value, which would silently become
    # the default; the server reads the typed text (ReliefSettings) and says what is wrong
    low, high = ReliefSettings.RANGES[name]
    return dbc.Input(
        id=component_id,
        type="text",
        inputMode="decimal",
        value=f"{value:g}",
        size="sm",
        debounce=True,
        maxLength=32,
        placeholder=f"{low:g}-{high:g}",
        autoComplete="off",
    )


def relief_controls() -> html.Div:
    """Printable relief: width, base thickness, relief exaggeration, STL and 3MF downloads."""
    inputs = dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Width mm", html_for=ids.MODEL3D_RELIEF_WIDTH, className="small mb-0"),
                    _number_input(ids.MODEL3D_RELIEF_WIDTH, DEFAULT_WIDTH_MM, "width_mm"),
                ]
            ),
            dbc.Col(
                [
                    dbc.Label("Base mm", html_for=ids.MODEL3D_RELIEF_BASE, className="small mb-0"),
                    _number_input(ids.MODEL3D_RELIEF_BASE, DEFAULT_BASE_MM, "base_mm"),
                ]
            ),
            dbc.Col(
                [
                    dbc.Label("Relief ×", html_for=ids.MODEL3D_RELIEF_SCALE, className="small mb-0"),
                    _number_input(ids.MODEL3D_RELIEF_SCALE, DEFAULT_RELIEF, "relief"),
                ]
            ),
        ],
        className="g-1 mb-1",
    )
    return html.Div(
        [
            html.Div("Printable relief", className="fw-semibold small mb-1"),
            inputs,
            dbc.FormText(
                f"Defaults: {DEFAULT_WIDTH_MM:g} mm wide (20-300), {DEFAULT_BASE_MM:g} mm base (1-20), relief "
                f"{DEFAULT_RELIEF:g}× (0.1-2): at 1× a whole face is about as deep as two thirds of its width, "
                "half that prints faster and cleaner.",
                className="d-block mb-1",
            ),
            dbc.ButtonGroup(
                [
                    dbc.Button(label, id=bid, color="secondary", outline=True, size="sm", disabled=True, title=title)
                    for label, bid, title in (
                        ("STL solid", ids.MODEL3D_DOWNLOAD_RELIEF_STL, "A closed solid for any slicer"),
                        ("3MF", ids.MODEL3D_DOWNLOAD_RELIEF_3MF, "3D Manufacturing Format, in millimetres"),
                    )
                ],
                className="w-100",
            ),
            html.Div(id=ids.MODEL3D_RELIEF_INFO, className="small text-muted mt-1"),
        ],
        className="mt-3",
    )


def report_button(component_id: str) -> dbc.Button:
    """A "Download report" button (one HTML file that opens offline)."""
    return dbc.Button(
        "Download report",
        id=component_id,
        color="primary",
        outline=True,
        size="sm",
        disabled=True,
        className="w-100 mt-3",
        title="One HTML file with the photo, depth map, interactive 3D model and measurements; opens offline",
    )


def measure_bar() -> html.Div:
    """Status of click to measure and its Clear button, under the 3D view."""
    return html.Div(
        className="d-flex justify-content-between align-items-center gap-2 mt-1",
        children=[
            html.Div(
                MEASURE_HINT,
                id=ids.MODEL3D_MEASURE_STATUS,
                className="small fw-semibold face3d-measure-status",
                role="status",
                **{"aria-live": "polite"},
            ),
            dbc.Button("Clear", id=ids.MODEL3D_MEASURE_CLEAR, color="secondary", outline=True, size="sm"),
            dcc.Store(id=ids.MODEL3D_MEASURE_STORE, data=None),
            dcc.Store(id=ids.MODEL3D_MEASURE_CLICK, data=None),
        ],
    )


def _download_buttons(buttons: list[tuple[str, str]]) -> dbc.ButtonGroup:
    return dbc.ButtonGroup(
        [
            dbc.Button(label, id=bid, color="secondary", outline=True, size="sm", disabled=True)
            for label, bid in buttons
        ],
        size="sm",
    )


def measurements_card() -> dbc.Card:
    """The 3D tab's measurement table with its CSV and JSON downloads."""
    return card(
        "Measurements",
        html.Div(id=ids.MODEL3D_MEASURE_TABLE, className="small"),
        header_extra=_download_buttons(
            [("CSV", ids.MODEL3D_DOWNLOAD_MEASURE_CSV), ("JSON", ids.MODEL3D_DOWNLOAD_MEASURE_JSON)]
        ),
    )


def compare_measurements_card() -> dbc.Card:
    """The Compare tab's measurements side by side, with CSV, JSON and report downloads."""
    return card(
        "Measurements side by side",
        html.Div(id=ids.COMPARE_MEASURE_TABLE, className="small"),
        header_extra=html.Div(
            [
                _download_buttons(
                    [
                        ("CSV", ids.COMPARE_DOWNLOAD_MEASURE_CSV),
                        ("JSON", ids.COMPARE_DOWNLOAD_MEASURE_JSON),
                        ("Download report", ids.COMPARE_DOWNLOAD_REPORT),
                    ]
                )
            ]
        ),
    )
