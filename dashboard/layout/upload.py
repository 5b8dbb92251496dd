"""Upload tab: drag-and-drop several photos, a gallery of faces, pick or remove a face."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.layout.common import card
from face3d_core.images import MAX_FILE_BYTES

#: Browser-side size limit: larger files are refused before upload (and reported).
BROWSER_MAX_BYTES = MAX_FILE_BYTES


def upload_tab() -> html.Div:
    """Layout of the Upload tab."""
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
    return dbc.Row([dbc.Col(left, lg=4), dbc.Col(gallery, lg=8)], className="g-3")
