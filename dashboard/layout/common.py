"""Small layout pieces shared by the tabs: empty states, job panels, labelled controls."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.jobs import FIRST_POLL_MS


def empty_state(component_id: str, title: str, hint: str, icon: str = "◐") -> html.Div:
    """A friendly placeholder that tells the user what to do next."""
    return html.Div(
        id=component_id,
        className="face3d-empty text-center text-muted",
        children=[
            html.Div(icon, className="face3d-empty-icon", **{"aria-hidden": "true"}),
            html.H5(title, className="mb-1"),
            html.P(hint, className="mb-0 small"),
        ],
    )


def job_panel(prefix: str) -> html.Div:
    """Progress bar, status text and Cancel button of a tab's background job (hidden when idle)."""
    return html.Div(
        id=ids.job_panel(prefix),
        hidden=True,
        className="mt-3",
        children=[
            dbc.Progress(
                id=ids.job_progress(prefix),
                value=0,
                striped=True,
                animated=True,
                className="face3d-progress",
                style={"height": "1.1rem"},
            ),
            html.Div(
                className="d-flex justify-content-between align-items-center mt-2 gap-2",
                children=[
                    html.Small(id=ids.job_message(prefix), className="text-muted"),
                    dbc.Button("Cancel", id=ids.job_cancel(prefix), size="sm", color="secondary", outline=True),
                ],
            ),
        ],
    )


def job_stores(prefix: str) -> list:
    """The store and interval of a tab's job; they live outside the tabs so they keep running."""
    return [
        dcc.Store(id=ids.job_store(prefix), storage_type="memory"),
        # switched on by the job controller (first poll soon after the start, then every POLL_MS)
        dcc.Interval(id=ids.job_interval(prefix), interval=FIRST_POLL_MS, disabled=True),
    ]


def field(label: str, control, help_text: str | None = None, *, html_for: str | None = None) -> html.Div:
    """A labelled form control with optional help text."""
    children = [dbc.Label(label, html_for=html_for, className="form-label fw-semibold small mb-1"), control]
    if help_text:
        children.append(dbc.FormText(help_text))
    return html.Div(children, className="mb-3")


def card(title: str, body, *, header_extra=None, class_name: str = "", body_class: str = "") -> dbc.Card:
    """A titled card."""
    header = html.Div(
        [html.Span(title, className="fw-semibold"), header_extra],
        className="d-flex justify-content-between align-items-center",
    )
    return dbc.Card(
        [dbc.CardHeader(header, className="bg-white"), dbc.CardBody(body, className=body_class)],
        className=f"shadow-sm mb-3 {class_name}",
    )


def model_dropdown(component_id: str, options: list[dict], value: str) -> dcc.Dropdown:
    """The depth model picker."""
    return dcc.Dropdown(id=component_id, options=options, value=value, clearable=False, searchable=False)


def face_dropdown(component_id: str) -> dcc.Dropdown:
    """The face picker (options come from the uploads)."""
    return dcc.Dropdown(
        id=component_id,
        options=[],
        value=None,
        clearable=False,
        searchable=False,
        placeholder="Upload a photo first",
    )
