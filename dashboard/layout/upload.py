"""Upload tab: drag-and-drop several photos or take one with the camera, a gallery of faces, pick or remove a face.

The camera panel (preview, capture, live depth) is plain HTML here; ``assets/face3d_camera.js``
drives it in the browser and ``dashboard/live_endpoint.py`` answers its live frames.
"""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.layout.common import card, precision_picker
from dashboard.services.model_status import PrecisionChoices
from face3d_core.figures import DEFAULT_COLORMAP, depth_colormap_gradient
from face3d_core.images import MAX_FILE_BYTES
from face3d_core.live import MAX_FRAME_SIDE

#: Browser-side size limit: larger files are refused before upload (and reported).
BROWSER_MAX_BYTES = MAX_FILE_BYTES


def script_button(children, component_id: str, class_name: str, **props) -> html.Button:
    """A button that ``assets/face3d_camera.js`` handles (Dash does not count its clicks)."""
    return html.Button(
        children, id=component_id, type="button", className=f"btn {class_name}", disable_n_clicks=True, **props
    )


def camera_icon() -> html.Span:
    """A small camera drawn by CSS (no icon font needed)."""
    return html.Span(className="face3d-icon-camera me-2", **{"aria-hidden": "true"})


def camera_button() -> html.Div:
    """The button that opens the camera, and where the page says why the camera cannot be used."""
    return html.Div(
        [
            script_button(
                [camera_icon(), "Take a photo with the camera"],
                ids.CAMERA_START,
                "btn-outline-primary w-100 face3d-camera-start",
                **{"aria-controls": ids.CAMERA_PANEL, "aria-expanded": "false"},
            ),
            html.Div(id=ids.CAMERA_MESSAGE, className="small mt-2", role="status", **{"aria-live": "polite"}),
        ],
        className="mt-3",
    )


def camera_panel(precision: PrecisionChoices) -> html.Section:
    """The camera: preview and live depth side by side, then the capture button and the live toggle.

    Hidden until the camera is open. Two columns at every width (a phone too), so the preview, the
    depth beside it and the capture button fit one screen.
    """
    preview = html.Div(
        [
            html.Div("Camera", className="face3d-graph-title"),
            html.Div(
                [
                    html.Video(
                        id=ids.CAMERA_VIDEO,
                        autoPlay=True,
                        muted=True,
                        playsInline=True,
                        disable_n_clicks=True,
                        className="face3d-camera-video",
                    ),
                    html.Div(id=ids.CAMERA_CROP_BOX, className="face3d-camera-crop", hidden=True),
                ],
                className="face3d-camera-view face3d-camera-view--preview",
                role="img",
                **{"aria-label": "The camera's picture"},
            ),
        ],
        className="face3d-camera-col",
    )
    depth = html.Div(
        [
            html.Div("Live depth", className="face3d-graph-title"),
            html.Div(
                [
                    html.Canvas(id=ids.LIVE_DEPTH, className="face3d-live-depth", **{"data-frames": "0"}),
                    html.Div(
                        "Turn on Live depth to see the depth of the camera's picture here.",
                        id=ids.LIVE_PLACEHOLDER,
                        className="face3d-live-placeholder small",
                    ),
                ],
                className="face3d-camera-view face3d-camera-view--depth",
                role="img",
                **{"aria-label": "The depth of the camera's picture (the colour bar below says which end is near)"},
            ),
            html.Div(
                [
                    html.Span("far", className="small text-muted"),
                    html.Span(
                        id=ids.LIVE_LEGEND,
                        className="face3d-live-legend-bar",
                        style={"background": depth_colormap_gradient(DEFAULT_COLORMAP)},
                    ),
                    html.Span("near", className="small text-muted"),
                ],
                className="face3d-live-legend",
                title="The Depth tab's colour map",
            ),
            html.Div(id=ids.LIVE_STATS, className="small text-muted face3d-live-stats", **{"aria-live": "off"}),
        ],
        className="face3d-camera-col",
    )
    controls = html.Div(
        [
            script_button(
                [camera_icon(), "Take photo"], ids.CAMERA_CAPTURE, "btn-primary face3d-camera-capture", disabled=True
            ),
            script_button(
                "Live depth",
                ids.LIVE_START,
                "btn-outline-secondary face3d-live-start",
                disabled=True,
                title="Show the depth of the camera's picture as it moves",
                **{"aria-pressed": "false"},
            ),
            script_button(
                "Switch camera", ids.CAMERA_SWITCH, "btn-outline-secondary face3d-camera-switch", hidden=True
            ),
        ],
        className="face3d-camera-controls",
    )
    return html.Section(
        card(
            "Camera",
            [
                html.Div([preview, depth], className="face3d-camera-grid"),
                controls,
                html.Div(
                    precision_picker(ids.LIVE_PRECISION, precision),
                    className="face3d-live-precision mt-2",
                ),
                html.Div(id=ids.CAMERA_STATUS, className="small text-muted", role="status", **{"aria-live": "polite"}),
            ],
            header_extra=script_button("Close camera", ids.CAMERA_CLOSE, "btn-link btn-sm p-0 face3d-camera-close"),
        ),
        id=ids.CAMERA_PANEL,
        hidden=True,
        className="face3d-camera",
        **{
            "aria-label": "Camera",
            "data-colormap": DEFAULT_COLORMAP,
            "data-max-side": str(MAX_FRAME_SIDE),
        },
    )


def upload_tab(precision: PrecisionChoices) -> html.Div:
    """Layout of the Upload tab (the camera's live depth offers the server's ``precision`` choices)."""
    drop_zone = dcc.Upload(
        id=ids.UPLOAD,
        multiple=True,
        max_size=BROWSER_MAX_BYTES,
        className="face3d-dropzone",
        className_active="face3d-dropzone face3d-dropzone-active",
        children=html.Div(
            [
                html.Div("⇪", className="face3d-dropzone-icon", **{"aria-hidden": "true"}),
                html.Div(
                    [
                        html.Strong("Drag and drop face photos here"),
                        " or ",
                        html.Span("choose files", className="face3d-link"),
                    ]
                ),
                html.Div(
                    f"JPEG or PNG, up to {MAX_FILE_BYTES // (1024 * 1024)} MB each. Several at once is fine.",
                    className="small text-muted mt-1",
                ),
            ]
        ),
    )
    left = card(
        "Add photos",
        [
            html.Div(drop_zone, className="face3d-upload-guard", **{"data-max-bytes": str(BROWSER_MAX_BYTES)}),
            camera_button(),
            html.Div(id=ids.UPLOAD_REJECTED_MESSAGES, className="mt-3"),
            dcc.Loading(html.Div(id=ids.UPLOAD_MESSAGES, className="mt-3"), type="dot", color="#6c757d"),
            html.Hr(),
            html.Div(
                [
                    html.Div("Tips", className="fw-semibold small mb-1"),
                    html.Ul(
                        [
                            html.Li("A sharp, well-lit, roughly frontal face works best."),
                            html.Li("In a group photo, click a face box to choose the face to use."),
                            html.Li("Photos stay on this server's cache; your browser keeps only their keys."),
                        ],
                        className="small text-muted ps-3 mb-0",
                    ),
                ]
            ),
        ],
    )
    gallery = card(
        "Your faces",
        html.Div(id=ids.GALLERY, className="face3d-gallery"),
        header_extra=html.Div(
            [
                dbc.Badge("0", id=ids.GALLERY_COUNT, color="secondary", pill=True, className="me-2"),
                dbc.Button(
                    "Remove all", id=ids.CLEAR_ALL, size="sm", color="link", className="text-danger p-0 face3d-clear"
                ),
            ],
            className="d-flex align-items-center",
        ),
    )
    return html.Div([camera_panel(precision), dbc.Row([dbc.Col(left, lg=4), dbc.Col(gallery, lg=8)], className="g-3")])
