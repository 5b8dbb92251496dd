"""Measure, print, share: measurement tables, click to measure, printable relief and reports.

* **Measurements** of the shown model (:meth:`~dashboard.services.model3d.Models3D.measurements`)
  as a table on the 3D tab and side by side for all faces on the Compare tab, with CSV and
  JSON downloads.
* **Click to measure** on the 3D view: a small state machine in the browser store
  ``{"model": model key, "points": [...]}``: the first click picks point 1, the second measures
  (straight and along the surface, :func:`face3d_core.geodesic.surface_distance`), a third
  starts again. Each click patches only the three overlay traces of the figure
  (:func:`face3d_core.figures.measure_overlay`), never the model, and the figure's
  ``uirevision`` is untouched, so the camera stays where the user turned it.
* **Printable relief** (STL solid, 3MF) and the **report** (one HTML file): the files are made
  by :func:`download_file`; the one download callback (:mod:`dashboard.callbacks.downloads`)
  keeps them for the session and the page fetches them from the ``/face3d/download`` route.
"""

from __future__ import annotations

import logging
import time

import dash_bootstrap_components as dbc
import numpy as np
from dash import ClientsideFunction, Dash, Input, NoUpdate, Output, Patch, State, ctx, html, no_update
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.browser_values import list_index, mapping, point_xyz, points_xyz
from dashboard.callbacks.compare import compare_settings, valid_pair
from dashboard.callbacks.view3d import ShownModel, shown_model, view_dependencies
from dashboard.controls import FOV_RANGE, ModelView
from dashboard.layout.measure import MEASURE_HINT
from dashboard.services import DepthMissingError, Face3DService, MeasureError
from dashboard.services.exports import MeasuredFace, ReliefSettings
from dashboard.sessions import current_session
from face3d_core import figures
from face3d_core.compare import ComparisonResult
from face3d_core.measure import FaceMeasurements, between_text, path_uncertainty
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import FaceModel3D
from face3d_core.report import (
    fov_text,
    pose_text,
    reference_text,
    refusal_notes,
    scale_note,
    side_by_side_rows,
    sigma_text,
    value_text,
)
from face3d_core.surface import lifted_off_surface, nearest_surface_point

logger = logging.getLogger(__name__)

#: Download buttons of this module -> (what, format).
DOWNLOAD_BUTTONS = {
    ids.MODEL3D_DOWNLOAD_MEASURE_CSV: ("measurements", "csv"),
    ids.MODEL3D_DOWNLOAD_MEASURE_JSON: ("measurements", "json"),
    ids.MODEL3D_DOWNLOAD_RELIEF_STL: ("relief", "stl"),
    ids.MODEL3D_DOWNLOAD_RELIEF_3MF: ("relief", "3mf"),
    ids.MODEL3D_DOWNLOAD_REPORT: ("report", "html"),
    ids.COMPARE_DOWNLOAD_MEASURE_CSV: ("compare-measurements", "csv"),
    ids.COMPARE_DOWNLOAD_MEASURE_JSON: ("compare-measurements", "json"),
    ids.COMPARE_DOWNLOAD_REPORT: ("compare-report", "html"),
}

#: The measurement downloads (enabled where the face was measured).
MEASURE_DOWNLOADS = (ids.MODEL3D_DOWNLOAD_MEASURE_CSV, ids.MODEL3D_DOWNLOAD_MEASURE_JSON)
#: The relief and report downloads (enabled with a model).
SOLID_DOWNLOADS = (ids.MODEL3D_DOWNLOAD_RELIEF_STL, ids.MODEL3D_DOWNLOAD_RELIEF_3MF, ids.MODEL3D_DOWNLOAD_REPORT)

POINT_1_PICKED = "Point 1 picked, click a second point."


# -- measurement tables -------------------------------------------------------------------


def measurement_table(result: FaceMeasurements) -> html.Div:
    """One face's measurements: the head pose, then value, ± (1 sigma), between which points; the honest note below.

    A refused value says so, with the reason under its label; a mirrored one (the far side
    hidden) is marked and says why.
    """
    rows = []
    for m in result.measurements:
        label: list[str | Component] = [m.label]
        if m.reference:
            label.append(dbc.Badge(reference_text(result), color="warning", text_color="dark", className="ms-1"))
        elif m.note:
            label.append(html.Div(m.note, className="text-muted"))
        value_class = "text-end font-monospace text-nowrap" + (" text-muted fst-italic" if m.refused else "")
        rows.append(
            html.Tr(
                [
                    html.Td(label),
                    html.Td(value_text(m), className=value_class),
                    html.Td(sigma_text(m), className="text-end font-monospace text-nowrap"),
                    html.Td(between_text(m.from_point, m.to_point)),
                ]
            )
        )
    head = html.Thead(html.Tr([html.Th("Measurement"), html.Th("Value"), html.Th("± (1σ)"), html.Th("Between")]))
    return html.Div(
        [
            html.Div(pose_text(result), className="mb-1 fw-semibold face3d-pose"),
            dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, className="mb-2 face3d-measure-table"),
            html.Div(scale_note(result), className="text-muted"),
        ]
    )


def render_measurements(service: Face3DService, view: ModelView, *, session: str) -> tuple[html.Div, bool, bool, str]:
    """The 3D tab's measurement table and the state of its downloads (only of the session's own photo).

    Returns:
        ``(table or message, measurement downloads disabled, relief/report downloads disabled,
        field-of-view text)``.

    Raises:
        PhotoMissingError: The photo is not the session's or no longer stored.
    """
    return measurement_panel(service, shown_model(service, view, session=session))


def measurement_panel(service: Face3DService, shown: ShownModel | None) -> tuple[html.Div, bool, bool, str]:
    """:func:`render_measurements` of a view already checked for the session."""
    if shown is None:
        return html.Div("Generate a 3D model to measure it.", className="text-muted"), True, True, ""
    info = fov_text(shown.fov)
    if shown.ref.face_index is None:
        message = "No face was found in this photo, so there are no face points to measure between."
        return html.Div(message, className="text-muted"), True, False, info
    try:
        result = service.models3d.measurements(shown.ref, shown.params, shown.fov.source)
    except MeasureError as exc:
        return html.Div(exc.web_message, className="text-muted"), True, False, info
    return measurement_table(result), False, False, info


def compare_measurements(service: Face3DService, result: ComparisonResult) -> list[FaceMeasurements | None]:
    """The measurements of every compared face (None for a face that cannot be measured)."""
    measured: list[FaceMeasurements | None] = []
    for ref, (params, fov) in zip(result.refs, compare_settings(service, result.refs), strict=True):
        try:
            measured.append(service.models3d.measurements(ref, params, fov.source))
        except MeasureError as exc:
            logger.info("Face %s not measured: %s", ref.sha[:12], exc)
            measured.append(None)
    return measured


def session_comparison(service: Face3DService, data: object, session: str) -> ComparisonResult | None:
    """The comparison the page names, as ``session`` sees it (None unless it holds every compared photo)."""
    key = data.get("key") if isinstance(data, dict) else None
    return service.access.comparison(session, service.comparisons.cached(key))


def render_compare_measurements(service: Face3DService, data: object, *, session: str) -> tuple[html.Div | None, bool]:
    """The Compare tab's measurements side by side (only of the session's own comparison).

    Returns:
        ``(table or nothing, downloads disabled)``.
    """
    result = session_comparison(service, data, session)
    if result is None:
        return None, True
    measured = compare_measurements(service, result)
    head = html.Thead(html.Tr([html.Th("Measurement"), *[html.Th(name) for name in result.names]]))
    body = html.Tbody(
        [
            html.Tr([html.Td(label), *[html.Td(cell, className="text-end font-monospace") for cell in cells]])
            for label, cells in side_by_side_rows(measured)
        ]
    )
    found = [m for m in measured if m is not None]
    note = "Values ± one standard deviation, in mm, each item measured in its own frame. " + scale_note(
        found[0] if found else None
    )
    lines = refusal_notes(list(zip(result.names, measured, strict=True)))
    table = html.Div(
        [
            dbc.Table([head, body], size="sm", striped=True, responsive=True, className="mb-2 face3d-side-by-side"),
            html.Ul([html.Li(line) for line in lines], className="small text-muted mb-1") if lines else None,
            html.Div(note, className="text-muted"),
        ]
    )
    return table, False


def fov_slider(service: Face3DService, auto: object, source: object, *, session: str) -> tuple[bool, int | NoUpdate]:
    """The field-of-view slider: disabled while "auto (EXIF)" is on; switched off, it starts at the photo's value.

    Returns:
        ``(disabled, value or no_update)``.
    """
    if auto:
        return True, no_update
    ref = DepthRef.from_dict(source)
    if ref is None or service.access.meta(session, ref.sha) is None:
        return False, no_update
    low, high = FOV_RANGE
    return False, int(min(max(round(service.cameras.fov(ref.sha).fov_deg), low), high))


# -- click to measure -----------------------------------------------------------------------


def clicked_point(service: Face3DService, shown: ShownModel, click: object) -> np.ndarray | None:
    """The ``(3,)`` position (mm) of a click on the 3D view, or None when it has none.

    ``click`` is ``{"x", "y", "z"}`` (the browser's ``pickPoint``) or plotly's ``clickData``.
    On a mesh, plotly names the clicked triangle (``i``, ``j``, ``k``: vertex indices of the
    drawn mesh); its ``x``/``y``/``z`` are not data coordinates when the mesh has one colour per
    triangle (photo colours), so the triangle's centre in the drawn mesh is used.
    """
    click = mapping(click)
    if click is None:
        return None
    if "points" in click:
        points = click["points"]
        click = mapping(points[0]) if isinstance(points, list) and points else None
        if click is None:
            return None
    corners = [click.get(k) for k in ("i", "j", "k")]
    if all(isinstance(c, int) and not isinstance(c, bool) for c in corners):
        mesh = service.models3d.display_mesh(shown.ref, shown.params, figures.MAX_DISPLAY_TRIANGLES)
        count = 0 if mesh is None else mesh.n_vertices
        vertices = [list_index(c, count) for c in corners]
        if mesh is None or any(v is None for v in vertices):
            return None
        return mesh.vertices_xyz[vertices].astype(np.float64).mean(axis=0)
    return point_xyz(click)


#: The click-to-measure marks float this far in front of the surface (mm), so the surface never hides them.
LIFT_MM = 1.0


def overlay_patch(points=None, straight=None, path=None) -> Patch:
    """A figure patch that sets only the three click-to-measure traces (empty where None)."""
    patch = Patch()
    for index, xyz in (
        (figures.MEASURE_POINTS_INDEX, points),
        (figures.MEASURE_STRAIGHT_INDEX, straight),
        (figures.MEASURE_PATH_INDEX, path),
    ):
        pts = np.zeros((0, 3)) if xyz is None else np.asarray(xyz, np.float64).reshape(-1, 3)
        for axis, name in enumerate("xyz"):
            patch["data"][index][name] = [round(float(v), 3) for v in pts[:, axis]]
    return patch


def distance_status(shown: ShownModel, face_model: FaceModel3D, straight_mm: float, surface_mm: float, path_xyz) -> str:
    """The status line of a finished measurement, with its uncertainty where the scale allows one."""
    text = f"Straight line {straight_mm:.1f} mm · along the surface {surface_mm:.1f} mm"
    try:
        common = {
            "scale_source": face_model.scale_source,
            "fov_source": shown.fov.source,
            "ipd_mm": shown.params.ipd_mm,
        }
        sigma_straight = path_uncertainty(np.asarray(path_xyz)[[0, -1]], **common).sigma_mm
        sigma_surface = path_uncertainty(path_xyz, **common).sigma_mm
        text += f" (± {sigma_straight:.1f} / ± {sigma_surface:.1f} mm)"
    except ValueError:
        text += " (nominal millimetres: no face set the scale)"
    return text + ". Click again to start a new measurement."


def measure_click(
    service: Face3DService, shown: ShownModel | None, click: object, state: object
) -> tuple[Patch, dict | None, str]:
    """One click on the 3D view: pick point 1, or measure to point 2 (see the module docstring).

    Args:
        service: The dashboard service.
        shown: The shown model (None: nothing to measure).
        click: The click (see :func:`clicked_point`).
        state: The measure store (``{"model", "points"}`` or None).

    Returns:
        ``(figure patch, new state, status text)``.

    Raises:
        PreventUpdate: No model or a click without a position.
        MeasureError: The two points cannot be measured between.
    """
    xyz = None if shown is None else clicked_point(service, shown, click)
    if xyz is None:
        raise PreventUpdate
    started = time.perf_counter()
    face_model = service.models3d.model(shown.ref, shown.params)
    point = nearest_surface_point(face_model, xyz)
    key = service.models3d.key(shown.ref, shown.params)
    stored = mapping(state) or {}
    # the store comes back from the page: at most two finite points of this model, else nothing picked
    picked = (points_xyz(stored.get("points"), 2) or []) if stored.get("model") == key else []
    if len(picked) == 1 and np.allclose(point, picked[0], atol=1e-3):
        raise PreventUpdate  # point 1 again: still waiting for a second point
    if len(picked) != 1:  # nothing picked yet, or a finished measurement: start again
        new_state = {"model": key, "points": [point.round(3).tolist()]}
        return overlay_patch(points=lifted_off_surface(face_model, point, LIFT_MM)), new_state, POINT_1_PICKED
    first = picked[0]
    result = service.models3d.surface_path(shown.ref, shown.params, first, point)
    ends = np.stack([result.start_xyz, result.end_xyz])
    status = distance_status(shown, face_model, result.straight_mm, result.surface_mm, result.path_xyz)
    logger.info(
        "Measured %.1f mm straight, %.1f mm along the surface (%d path points) in %.0f ms %s",
        result.straight_mm,
        result.surface_mm,
        len(result.path_xyz),
        (time.perf_counter() - started) * 1000.0,
        {k: round(v, 1) for k, v in result.timings_ms.items()},
    )
    new_state = {"model": key, "points": [p.round(3).tolist() for p in ends]}
    marks = lifted_off_surface(face_model, ends, LIFT_MM)
    return (
        overlay_patch(points=marks, straight=marks, path=lifted_off_surface(face_model, result.path_xyz, LIFT_MM)),
        new_state,
        status,
    )


def clear_measurement() -> tuple[Patch, None, str]:
    """The Clear button: no picked points, empty overlay."""
    return overlay_patch(), None, MEASURE_HINT


# -- downloads ------------------------------------------------------------------------------


def download_file(
    service: Face3DService,
    trigger: str,
    *,
    view: ModelView | None = None,
    relief: tuple[object, object, object] = (None, None, None),
    compare_data: object = None,
    compare_pair: tuple[object, object] = (0, 1),
    session: str,
) -> tuple[str, bytes, str | None]:
    """The file of one download button of this module (only of the session's own photos).

    Args:
        service: The dashboard service.
        trigger: The button.
        view: The 3D view the page shows (None: none).
        relief: The relief's width, base and scale as typed.
        compare_data: The Compare tab's result store.
        compare_pair: The Compare tab's two items of the difference map (the comparison report shows
            that difference; checked by :func:`~dashboard.callbacks.compare.valid_pair`).
        session: The browser session.

    Returns:
        ``(file name, bytes, note for the relief's info line or None)``.

    Raises:
        DepthMissingError: Nothing to download yet.
        MeasureError: The face (or no compared face) can be measured.
        PhotoMissingError: A photo is not the session's or no longer stored.
        ExportError: Relief settings out of range, or no solid can be made.
    """
    what, fmt = DOWNLOAD_BUTTONS[trigger]
    if what.startswith("compare"):
        result = session_comparison(service, compare_data, session)
        if result is None:
            raise DepthMissingError("Run a comparison first.")
        if what == "compare-report":
            chosen = valid_pair(*compare_pair, len(result.names))
            name, data = service.reports.comparison_report(result, compare_settings(service, result.refs), chosen)
            return name, data, None
        faces = service.access.labels(session, result.refs)  # the image column; the model has its own
        measured = [
            MeasuredFace(face, m, ref)
            for face, ref, m in zip(faces, result.refs, compare_measurements(service, result), strict=True)
            if m
        ]
        if not measured:
            raise MeasureError("None of the compared faces could be measured.")
        name, data = service.exports.measurements_file(measured, fmt, "face3d_comparison")
        return name, data, None
    shown = shown_model(service, view or ModelView(), session=session)
    if shown is None:
        raise DepthMissingError("Generate the 3D model first.")
    meta = shown.meta
    if what == "measurements":
        result = service.models3d.measurements(shown.ref, shown.params, shown.fov.source)
        measured = [MeasuredFace(meta.face_label(shown.ref.face_index), result, shown.ref)]
        name, data = service.exports.measurements_file(measured, fmt, meta.name)
        return name, data, None
    if what == "relief":
        settings = ReliefSettings.from_values(*relief)
        name, data, solid = service.exports.relief_file(shown.ref, shown.params, fmt, settings, meta.name)
        note = f"{name}: {solid.describe()}, base {settings.base_mm:.3g} mm, relief {settings.relief:.2g}×."
        return name, data, note
    name, data = service.reports.face_report(shown.ref, shown.params, shown.fov, meta)
    return name, data, None


def register(app: Dash, service: Face3DService) -> None:
    """Register the measuring, printing and sharing callbacks."""

    @app.callback(
        Output(ids.MODEL3D_FOV, "disabled"),
        Output(ids.MODEL3D_FOV, "value"),
        Input(ids.MODEL3D_FOV_AUTO, "value"),
        State(ids.MODEL3D_SOURCE_STORE, "data"),
        prevent_initial_call=True,
    )
    def _fov_slider(auto, source):
        return fov_slider(service, auto, source, session=current_session())

    # plotly reports a click once per frame drawn while the button is down (and at the start of
    # a drag): the browser turns a press into one pick (assets/face3d.js) and writes it here
    app.clientside_callback(
        ClientsideFunction(namespace="face3d", function_name="pickPoint"),
        Output(ids.MODEL3D_MEASURE_CLICK, "data"),
        Input(ids.MODEL3D_GRAPH, "clickData"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction(namespace="face3d", function_name="hoverPoint"),
        Output(ids.MODEL3D_MEASURE_CLICK, "data", allow_duplicate=True),
        Input(ids.MODEL3D_GRAPH, "hoverData"),
        prevent_initial_call=True,
    )

    @app.callback(
        output=[
            Output(ids.MODEL3D_GRAPH, "figure", allow_duplicate=True),
            Output(ids.MODEL3D_MEASURE_STORE, "data"),
            Output(ids.MODEL3D_MEASURE_STATUS, "children"),
        ],
        inputs={
            "click": Input(ids.MODEL3D_MEASURE_CLICK, "data"),
            "_clear": Input(ids.MODEL3D_MEASURE_CLEAR, "n_clicks"),
        },
        state={"state": State(ids.MODEL3D_MEASURE_STORE, "data"), "raw": view_dependencies(State)},
        prevent_initial_call=True,
    )
    def _click(click, _clear, state, raw):
        if ctx.triggered_id == ids.MODEL3D_MEASURE_CLEAR:
            return clear_measurement()
        shown = shown_model(service, ModelView.parse(raw), session=current_session())
        return measure_click(service, shown, click, state)

    @app.callback(
        Output(ids.COMPARE_MEASURE_TABLE, "children"),
        Output(ids.COMPARE_DOWNLOAD_MEASURE_CSV, "disabled"),
        Output(ids.COMPARE_DOWNLOAD_MEASURE_JSON, "disabled"),
        Output(ids.COMPARE_DOWNLOAD_REPORT, "disabled"),
        Input(ids.COMPARE_RESULT_STORE, "data"),
    )
    def _compare_measurements(data):
        table, disabled = render_compare_measurements(service, data, session=current_session())
        return table, disabled, disabled, disabled
