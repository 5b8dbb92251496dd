"""Small layout pieces shared by the tabs: empty states, job panels, labelled controls."""

from __future__ import annotations

from collections.abc import Sequence

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.jobs import FIRST_POLL_MS
from dashboard.services.model_status import PrecisionChoices
from face3d_core.models.registry import get_spec, list_models


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
                    html.Small(id=ids.job_message(prefix), className="text-muted", role="status"),
                    dbc.Button("Cancel", id=ids.job_cancel(prefix), size="sm", color="secondary", outline=True),
                ],
            ),
        ],
    )


def figure_box(graph: dcc.Graph, label: str, *, shape: str = "image", role: str = "img", box_id: str | None = None):
    """A graph in a box whose size CSS sets (``assets/face3d.css``); the graph fills it and follows it.

    The graph must be ``responsive=True`` with ``style={"height": "100%"}``: it is re-laid out whenever
    the box changes size (a window resize, a column that shows up, a box that was hidden when the
    figure arrived), so a figure never overflows its card.

    Args:
        graph: The graph.
        label: What the graph shows, for screen readers (``aria-label``).
        shape: ``image`` (photo and depth map) or ``diff`` (difference map): as tall as the picture
            is at the column's width (the picture's aspect ratio comes from the figure, see
            ``aspectStyle`` in ``assets/face3d.js``; the box's column must be a
            ``face3d-figure-col``); ``view3d`` (a 3D view as tall as the window allows),
            ``compare3d`` (views two per row) or ``profiles``.
        role: ``img`` for a picture (its parts are not announced), ``figure`` for an interactive view.
        box_id: An id for the box (when a callback sets its class).
    """
    extra = {"id": box_id} if box_id else {}
    return html.Div(
        graph, className=f"face3d-figure-box face3d-figure-box--{shape}", role=role, **extra, **{"aria-label": label}
    )


def responsive_graph(graph_id: str, config: dict, **graph_props) -> dcc.Graph:
    """A graph that fills its :func:`figure_box` and is laid out again whenever the box changes size.

    ``graph_props`` are further ``dcc.Graph`` properties (e.g. ``clear_on_unhover=True``).
    """
    return dcc.Graph(
        id=graph_id, config=config, responsive=True, style={"height": "100%", "width": "100%"}, **graph_props
    )


def job_stores(prefix: str) -> list:
    """The store and interval of a tab's job; they live outside the tabs so they keep running."""
    return [
        dcc.Store(id=ids.job_store(prefix), storage_type="memory"),
        # switched on by the job controller (first poll soon after the start, then every POLL_MS)
        dcc.Interval(id=ids.job_interval(prefix), interval=FIRST_POLL_MS, disabled=True),
    ]


def field(label: str, control, help_text: str | None = None, *, html_for: str | None = None) -> html.Div:
    """A labelled form control with optional help text.

    The label names the control for screen readers: ``assets/face3d.js`` points the control's
    focusable part (a dropdown's button, a slider's thumb, a group of radio buttons) at it with
    ``aria-labelledby``, since Dash's dropdowns and sliders take no ARIA properties.
    """
    children = [dbc.Label(label, html_for=html_for, className="form-label fw-semibold small mb-1"), control]
    if help_text:
        children.append(dbc.FormText(help_text))
    return html.Div(children, className="mb-3 face3d-field")


def card(
    title: str, body, *, header_extra=None, class_name: str = "", body_class: str = "", card_id: str | None = None
) -> dbc.Card:
    """A titled card (``card_id``: an id for it, e.g. to bring it into view)."""
    header = html.Div(
        [html.H2(title, className="face3d-card-title"), header_extra],
        className="d-flex justify-content-between align-items-center",
    )
    return dbc.Card(
        [dbc.CardHeader(header, className="bg-white"), dbc.CardBody(body, className=body_class)],
        className=f"shadow-sm mb-3 {class_name}",
        **({"id": card_id} if card_id else {}),
    )


def model_dropdown(component_id: str, options: list[dict], value: str) -> dcc.Dropdown:
    """The depth model picker."""
    return dcc.Dropdown(id=component_id, options=options, value=value, clearable=False, searchable=False)


def precision_picker(component_id: str, choices: PrecisionChoices) -> html.Div:
    """Exact (fp32) or Fast (bf16): the fast choice is shown disabled, with the reason, where the CPU lacks it."""
    options = [{"label": label, "value": value} for value, label in choices.options.items()]
    if choices.unavailable is not None:
        options.append({"label": "Fast (bf16)", "value": "bf16", "disabled": True})
    radio = dbc.RadioItems(
        id=component_id, options=options, value=choices.default, inline=True, className="face3d-precision"
    )
    return field("Precision", radio, choices.unavailable)


def precision_checklist(component_id: str, choices: PrecisionChoices) -> html.Div:
    """Exact (fp32), Fast (bf16) or both (an item each); Fast disabled, with the reason, where not offered."""
    options = [{"label": label, "value": value} for value, label in choices.options.items()]
    if choices.unavailable is not None:
        options.append({"label": "Fast (bf16)", "value": "bf16", "disabled": True})
    checklist = dbc.Checklist(
        id=component_id, options=options, value=[choices.default], inline=True, className="face3d-precision"
    )
    return field("Precision", checklist, choices.unavailable)


#: At most this wide (CSS pixels) the settings column lies above the results: its sections start folded.
NARROW_MAX_PX = 991
#: At most this wide (CSS pixels) is a phone: figures with two plots side by side stack them.
PHONE_MAX_PX = 599


def sections(component_id: str, items: list[tuple[str, str, list]]) -> dbc.Accordion:
    """Long control lists folded into titled sections: open on wide screens, folded on narrow ones.

    ``assets/face3d.js`` (``foldSections``) folds them when the page starts on a screen at most
    :data:`NARROW_MAX_PX` wide, so a phone shows the view after a short list; a section the user
    opens stays open (Dash keeps ``active_item`` when the tab is shown again).

    Args:
        component_id: The accordion's id (one of :data:`dashboard.ids.SECTIONS`).
        items: ``(item id, title, children)`` per section.
    """
    return dbc.Accordion(
        [dbc.AccordionItem(children, title=title, item_id=item_id) for item_id, title, children in items],
        id=component_id,
        always_open=True,
        active_item=[item_id for item_id, _, _ in items],
        flush=True,
        className="face3d-sections",
    )


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


def model_for_file(file_name: str) -> str | None:
    """The registered depth model whose checkpoint is ``file_name`` (None for other files)."""
    for name in list_models():
        if get_spec(name).file_name == file_name:
            return name
    return None


def download_command(model: str) -> str:
    """The command that downloads a model's weights on the server."""
    return f"face3d models --download {model}"


def weights_help(file_name: str, url: str | None, size_mb: float | None = None) -> html.Div:
    """How to get a missing weights file: its name, the official URL as a link, the copyable command.

    No server folder is named: the command puts the file where the server looks for it.
    """
    size = f" (about {size_mb:.0f} MB)" if size_mb else ""
    rows = [html.Div(["File: ", html.Code(file_name), size])]
    if url:
        rows.append(
            html.Div(
                [
                    "Download: ",
                    html.A(url, href=url, target="_blank", rel="noopener noreferrer", className="text-break"),
                ]
            )
        )
    model = model_for_file(file_name)
    if model is not None:
        command = download_command(model)
        rows.append(
            html.Div(
                [
                    html.Span("Or run this on the server: "),
                    html.Span(
                        [
                            html.Code(command, className="face3d-command"),
                            # assets/face3d.js copies data-copy to the clipboard (no server round trip)
                            html.Button(
                                "Copy",
                                type="button",
                                title="Copy the command",
                                className="btn btn-sm btn-outline-secondary py-0 ms-1 face3d-copy",
                                **{"data-copy": command, "aria-label": f"Copy the command {command}"},
                            ),
                        ],
                        className="face3d-command-row",
                    ),
                ]
            )
        )
    return html.Div(rows, className="face3d-weights-help small mt-2")


def download_buttons(title: str, buttons: Sequence[tuple[str, str]]) -> list:
    """A titled row of download buttons ``(label, id)``, disabled until there is something to download."""
    return [
        html.Div(title, className="fw-semibold small mb-1"),
        dbc.ButtonGroup(
            [
                dbc.Button(label, id=bid, color="secondary", outline=True, size="sm", disabled=True)
                for label, bid in buttons
            ],
            className="w-100",
        ),
    ]
