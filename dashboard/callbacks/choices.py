"""The choice of face, depth model and precision, shared by the Depth, 3D and Compare tabs.

The Depth and 3D tabs each show a face and a model picker; they are kept in sync (picking a
face in one tab picks it in the other), with one callback per pair so there is no cycle.
"""

from __future__ import annotations

from collections.abc import Callable

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, ctx, html, no_update
from dash.development.base_component import Component

from dashboard import ids
from dashboard.browser_values import distinct_texts
from dashboard.callbacks.upload import store_items
from dashboard.layout.common import weights_help
from dashboard.layout.compare import MAX_COMPARE
from dashboard.services import Face3DService
from dashboard.services.model_status import (
    ModelStatus,
    PrecisionChoices,
    all_model_status,
    model_status,
    precision_choices_here,
    precision_note,
)
from dashboard.sessions import current_session
from face3d_core.errors import UnknownModelError
from face3d_core.models.registry import DEFAULT_MODEL, get_spec, list_models
from face3d_core.pipeline import PRECISIONS


def face_options(service: Face3DService, store: object, *, session: str) -> list[dict]:
    """Dropdown options for the session's uploaded photos: value = SHA-256, label = its name and face."""
    options = []
    for item in store_items(store):
        meta = service.access.meta(session, item["sha"])
        if meta is None:
            continue
        index = meta.face_index(item["face"])
        if meta.detector_unavailable is not None:
            label = f"{meta.name} (whole photo)"
        elif meta.face_count == 0:
            label = f"{meta.name} (whole photo, no face found)"
        elif meta.face_count == 1:
            label = meta.name
        else:
            label = f"{meta.name} (face {index + 1} of {meta.face_count})"
        options.append({"label": label, "value": meta.sha256})
    return options


def sync_faces(options: list[dict], depth_value: object, model3d_value: object, trigger: object) -> str | None:
    """Return the face both pickers should show after a change (first photo by default): an option's value or None."""
    valid: list[str] = [o["value"] for o in options]
    chosen, other = (model3d_value, depth_value) if trigger == ids.MODEL3D_FACE else (depth_value, model3d_value)
    for wanted in (chosen, other):
        if wanted in valid:
            return valid[valid.index(wanted)]
    return valid[0] if valid else None


def compare_selection(options: list[dict], current: object, previous: object = None) -> list[str]:
    """The Compare tab's faces after the uploads changed: the still-valid choices, topped up to two with new photos.

    With nothing chosen the first two photos (or the only one: one face under several models is a
    comparison) are preselected. Photos uploaded one at a time are added until two are chosen, so
    the second upload joins the first; a choice the user narrowed is left alone until another photo
    arrives.

    Args:
        options: The face options now.
        current: The faces chosen (browser value).
        previous: The face options before this change (browser value): what counts as new.
    """
    valid = [o["value"] for o in options]
    chosen = [v for v in distinct_texts(current, MAX_COMPARE) if v in valid]
    if not chosen:
        return valid[:2]
    known = {o.get("value") for o in previous if isinstance(o, dict)} if isinstance(previous, list) else set(valid)
    new = [v for v in valid if v not in known and v not in chosen]
    return chosen + new[: max(0, 2 - len(chosen))]


def model_options(statuses: list[ModelStatus] | None = None) -> list[dict]:
    """Dropdown options for the depth models, saying which have weights here."""
    options = []
    for status in statuses if statuses is not None else all_model_status():
        if status.ready:
            label = f"✓ {status.title}"
        elif status.downloadable:
            label = f"{status.title} · {status.size_mb:.0f} MB download"
        else:
            label = f"{status.title} · weights missing"
        options.append({"label": label, "value": status.name, "title": status.description})
    return options


def follow_choice(chosen: object, current: object) -> object:
    """The Compare tab's models (or precisions) after the Depth/3D tabs chose ``chosen``.

    A single choice follows the other tabs (a comparison of faces uses the model the user just
    worked with); several chosen on the Compare tab (a comparison of models) stay as they are.
    """
    if isinstance(current, list) and len(current) > 1:
        return no_update
    return [chosen] if isinstance(chosen, str) else no_update


def models_info(
    models: object, precisions: object, last_runtime: Callable[[str, str], str | None] | None = None
) -> html.Div | None:
    """What the user needs to know about the Compare tab's models: the help for each one whose weights are missing.

    Args:
        models: The chosen models (browser values).
        precisions: The chosen precisions.
        last_runtime: ``(model, precision) -> text or None``: what ran it last here.
    """
    chosen = [m for m in distinct_texts(models, len(list_models())) if m in list_models()]
    fast = [p for p in distinct_texts(precisions, len(PRECISIONS)) if p in PRECISIONS and p != "fp32"]
    missing = [m for m in chosen if not model_status(m).ready]
    parts = [model_info(m) for m in missing]
    ready = [get_spec(m).label for m in chosen if m not in missing]
    if ready:
        parts.append(
            html.Div(
                [dbc.Badge("Weights ready", color="success", className="me-2"), html.Span(", ".join(ready))],
                className="small",
            )
        )
    if fast:
        runtime = last_runtime(chosen[0], fast[0]) if last_runtime and chosen else None
        parts.append(html.Div(precision_note(fast[0], runtime), className="small text-muted mt-1"))
    return html.Div(parts, className="d-grid gap-1") if parts else None


def valid_model(value: object) -> str:
    """Return ``value`` if it is a registered model, else the default."""
    return value if value in list_models() else DEFAULT_MODEL


def valid_precision(value: object, choices: PrecisionChoices) -> str:
    """Return ``value`` if this server offers it, else the default precision."""
    return value if isinstance(value, str) and value in choices.options else choices.default


def model_info(name: str, precision: str = "fp32", runtime: str | None = None) -> Component:
    """What the user needs to know about a model's weights (and how to get missing ones) and its precision.

    Args:
        name: The chosen model.
        precision: The chosen precision.
        runtime: What ran this model in this precision last, with its deviation from fp32.
    """
    try:
        status = model_status(name)
    except UnknownModelError as exc:
        return dbc.Alert(exc.web_message, color="warning", className="small py-2 mb-0")
    text = precision_note(precision, runtime)
    note = html.Div(text, className="small text-muted mt-1 face3d-precision-note") if text else None
    if status.ready:
        return html.Div(
            [
                dbc.Badge("Weights ready", color="success", className="me-2"),
                html.Span(status.description, className="small text-muted"),
                note,
            ]
        )
    if status.downloadable:
        return html.Div(
            [
                dbc.Badge("Not downloaded yet", color="info", className="me-2"),
                html.Span(
                    f"About {status.size_mb:.0f} MB; downloaded automatically the first time you generate.",
                    className="small text-muted",
                ),
                note,
            ]
        )
    # no server folder on the page: the command puts the file where the server looks for it
    return dbc.Alert(
        [
            html.Strong("Weights missing"),
            html.Div(
                "This model's weights are not on the server, which cannot download them. The server's "
                "administrator can put the file below in the server's weights folder (FACE3D_WEIGHTS_DIR) "
                "or run the command below; then reload this page.",
                className="mt-1",
            ),
            weights_help(status.file_name, status.url, status.size_mb),
        ],
        color="warning",
        className="small py-2 mb-0",
    )


def register(app: Dash, service: Face3DService) -> None:
    """Register the face and model picker callbacks."""

    @app.callback(
        Output(ids.DEPTH_FACE, "options"),
        Output(ids.DEPTH_FACE, "value"),
        Output(ids.MODEL3D_FACE, "options"),
        Output(ids.MODEL3D_FACE, "value"),
        Input(ids.UPLOADS_STORE, "data"),
        Input(ids.DEPTH_FACE, "value"),
        Input(ids.MODEL3D_FACE, "value"),
    )
    def _sync_faces(store, depth_value, model3d_value):
        options = face_options(service, store, session=current_session())
        chosen = sync_faces(options, depth_value, model3d_value, ctx.triggered_id)
        return options, chosen, options, chosen

    @app.callback(
        Output(ids.COMPARE_FACES, "options"),
        Output(ids.COMPARE_FACES, "value"),
        Input(ids.UPLOADS_STORE, "data"),
        State(ids.COMPARE_FACES, "value"),
        State(ids.COMPARE_FACES, "options"),
    )
    def _compare_faces(store, current, previous):
        options = face_options(service, store, session=current_session())
        return options, compare_selection(options, current, previous)

    precision_choices = precision_choices_here()

    @app.callback(
        Output(ids.DEPTH_MODEL, "value"),
        Output(ids.MODEL3D_MODEL, "value"),
        Output(ids.DEPTH_PRECISION, "value"),
        Output(ids.MODEL3D_PRECISION, "value"),
        Output(ids.LIVE_PRECISION, "value"),
        Output(ids.DEPTH_MODEL_INFO, "children"),
        Output(ids.MODEL3D_MODEL_INFO, "children"),
        Input(ids.DEPTH_MODEL, "value"),
        Input(ids.MODEL3D_MODEL, "value"),
        Input(ids.DEPTH_PRECISION, "value"),
        Input(ids.MODEL3D_PRECISION, "value"),
        Input(ids.LIVE_PRECISION, "value"),
    )
    def _sync_models(depth_model, model3d_model, depth_precision, model3d_precision, live_precision):
        trigger = ctx.triggered_id
        chosen = valid_model(model3d_model if trigger == ids.MODEL3D_MODEL else depth_model)
        precision = {ids.MODEL3D_PRECISION: model3d_precision, ids.LIVE_PRECISION: live_precision}.get(
            trigger, depth_precision
        )
        precision = valid_precision(precision, precision_choices)
        info = model_info(chosen, precision, service.depth_maps.last_runtime(chosen, precision))
        return chosen, chosen, precision, precision, precision, info, info

    @app.callback(
        Output(ids.COMPARE_MODELS, "value"),
        Output(ids.COMPARE_PRECISIONS, "value"),
        Input(ids.DEPTH_MODEL, "value"),
        Input(ids.DEPTH_PRECISION, "value"),
        State(ids.COMPARE_MODELS, "value"),
        State(ids.COMPARE_PRECISIONS, "value"),
    )
    def _follow_models(model, precision, compare_models, compare_precisions):
        return follow_choice(model, compare_models), follow_choice(precision, compare_precisions)

    @app.callback(
        Output(ids.COMPARE_MODEL_INFO, "children"),
        Input(ids.COMPARE_MODELS, "value"),
        Input(ids.COMPARE_PRECISIONS, "value"),
    )
    def _compare_model_info(models, precisions):
        return models_info(models, precisions, service.depth_maps.last_runtime)
