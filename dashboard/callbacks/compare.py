"""Compare tab callbacks: run the comparison job, show 3D views, profiles, difference and numbers.

WebGL: a page may hold only a handful of WebGL contexts and each 3D scene is one, so the
3D views show at most 4 faces at a time (one figure, one scene each; a pager switches
between faces 1-4 and the last 4). ``dcc.Tabs`` unmounts hidden tabs, so the 3D tab's scene
is gone while this tab is shown. The cameras of the scenes are kept in sync in the browser
(``assets/face3d.js``) without a server round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Dash, Input, Output, State, html

from dashboard import ids
from dashboard.callbacks.depth import NothingSelectedError, depth_request
from dashboard.callbacks.jobs import StartOutcome, register_job_controller
from dashboard.controls import DEFAULT_CONTROLS, Controls3D
from dashboard.errors import shown_or_explained
from dashboard.jobs import JobRunner
from dashboard.layout.compare import MAX_COMPARE
from dashboard.services import Face3DService
from dashboard.services.errors import ComparisonMissingError
from dashboard.sessions import current_session
from face3d_core import figures
from face3d_core.camera import CameraFov
from face3d_core.compare import ComparisonResult
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import ReconstructionParams
from face3d_core.report import PAIR_METRICS_NOTE, pair_metric_rows

logger = logging.getLogger(__name__)

#: Most 3D scenes shown at once (WebGL contexts).
MAX_SCENES = 4
#: Density of the comparison's 3D views: a level below the 3D tab's default (several scenes are
#: drawn at once, each with its own WebGL context); measurements and reports use the 3D tab's.
COMPARE_VIEW_DENSITY = DEFAULT_CONTROLS.density - 1


def start_compare(
    service: Face3DService,
    runner: JobRunner,
    shas: Any,
    model: Any,
    store: Any,
    *,
    session: str,
    precision: Any = "fp32",
) -> StartOutcome:
    """Compare button: a cached comparison, or one of faces whose depth maps are all cached, at once; else a job.

    Only a face without a depth map (the network must run) makes it a background job for
    ``session``; comparing cached faces takes tens of milliseconds and is done in the callback.

    Raises:
        NothingSelectedError: Fewer than two or more than :data:`MAX_COMPARE` faces.
        PhotoMissingError: A photo is not the session's or no longer stored.
        ComparisonError: The faces cannot be compared (e.g. a photo without a face), when
            computed here.
    """
    chosen = [sha for sha in (shas if isinstance(shas, list) else []) if isinstance(sha, str)]
    if len(chosen) < 2:
        raise NothingSelectedError("Choose at least two faces to compare (upload more photos if needed).")
    if len(chosen) > MAX_COMPARE:
        raise NothingSelectedError(f"Choose at most {MAX_COMPARE} faces to compare.")
    refs = [depth_request(service, sha, model, store, session=session, precision=precision) for sha in chosen]
    key = service.comparisons.key(refs)
    names = service.access.labels(session, refs)
    service.comparisons.check_alignable(refs, names)
    if service.comparisons.cached(key) is not None:
        return StartOutcome(result={"key": key, "count": len(refs)})
    if all(service.depth_maps.cached(ref) is not None for ref in refs):
        # no network to run: aligning and comparing takes tens of milliseconds, done here (no job)
        key, result = service.comparisons.compute(refs, names)
        return StartOutcome(result={"key": key, "count": len(result.names)})
    params = {"refs": [ref.to_dict() for ref in refs], "names": names}
    return StartOutcome(job_id=runner.submit("compare", params, session))


def pages(count: int) -> list[list[int]]:
    """Groups of face indices shown together in 3D (at most :data:`MAX_SCENES` each)."""
    if count <= MAX_SCENES:
        return [list(range(count))]
    return [list(range(MAX_SCENES)), list(range(count - MAX_SCENES, count))]


def page_options(count: int) -> list[dict]:
    """Pager options for the 3D views (empty when all faces fit)."""
    groups = pages(count)
    if len(groups) == 1:
        return []
    return [{"label": f"Faces {g[0] + 1}–{g[-1] + 1}", "value": i} for i, g in enumerate(groups)]


def compare_settings(service: Face3DService, refs: Sequence[DepthRef]) -> list[tuple[ReconstructionParams, CameraFov]]:
    """``(params, field of view)`` of each compared face: the 3D tab's defaults, each photo's own EXIF field of view."""
    settings = []
    for ref in refs:
        fov = service.cameras.fov(ref.sha)
        settings.append((DEFAULT_CONTROLS.to_params(fov.fov_deg), fov))
    return settings


def metrics_table(result: ComparisonResult) -> Any:
    """The small table of numbers for two faces."""
    if result.metrics is None:
        return html.Div()
    rows = pair_metric_rows(result)
    return html.Div(
        [
            dbc.Table(
                [
                    html.Tbody(
                        [
                            html.Tr(
                                [
                                    html.Td(label, className="text-truncate", style={"maxWidth": "16rem"}),
                                    html.Td(value, className="text-end font-monospace"),
                                ]
                            )
                            for label, value in rows
                        ]
                    )
                ],
                size="sm",
                striped=True,
                className="mb-2 small",
            ),
            html.Div(PAIR_METRICS_NOTE, className="small text-muted"),
        ]
    )


def compare_3d(service: Face3DService, result: ComparisonResult, page: int, camera: dict | None = None) -> dict:
    """The 3D views of one page of faces, one scene each, sharing the camera preset.

    Each face is drawn at :data:`COMPARE_VIEW_DENSITY` (a points-only reconstruction of its own,
    kept in memory like the 3D tab's).
    """
    groups = pages(len(result.names))
    group = groups[page if isinstance(page, int) and 0 <= page < len(groups) else 0]
    traces, names = [], []
    refs = result.refs
    view = Controls3D(density=COMPARE_VIEW_DENSITY)
    for index in group:
        fov_deg = service.cameras.fov(refs[index].sha).fov_deg
        params = view.to_params(fov_deg).replace(representation="points", texture=False)  # points only: no mesh
        face_model = service.models3d.model(refs[index], params)
        traces.append(figures.points_trace(face_model.points_xyz, gray_values=face_model.depth_values, marker_size=2.5))
        names.append(result.names[index])
    return figures.compare_3d_figure(
        traces,
        names,
        camera=camera or figures.CAMERA_PRESETS["front"],
        uirevision=f"compare-{'-'.join(s[:8] for s in result.shas)}-{page}",
    )


#: What the Compare tab shows without a comparison.
EMPTY_COMPARE = (False, True, figures.go.Figure(), "", [], figures.go.Figure(), True, figures.go.Figure(), None)


def render_compare(service: Face3DService, data: Any, page: Any, *, session: str) -> tuple:
    """Everything the Compare tab shows for a comparison result (only of the session's own photos).

    Returns:
        ``(empty hidden, results hidden, 3D figure, 3D note, page options, profiles figure,
        pair section hidden, difference figure, metrics)``.

    Raises:
        ComparisonMissingError: The comparison is not stored (any more) or shows a photo that is
            not the session's (the same answer for both).
    """
    key = data.get("key") if isinstance(data, dict) else None
    if not key:
        return EMPTY_COMPARE
    result = service.access.comparison(session, service.comparisons.cached(key))
    if result is None:
        raise ComparisonMissingError(
            "This comparison is no longer stored on the server. Press Compare to run it again "
            "(upload the photos again if they are gone from the gallery)."
        )
    count = len(result.names)
    fig3d = compare_3d(service, result, page if isinstance(page, int) else 0)
    note = (
        f"{count} faces: 3D views show up to {MAX_SCENES} at a time (a browser allows only a few 3D "
        "views per page). Rotate one view and the others follow."
        if count > MAX_SCENES
        else "Rotate one view and the others follow."
    )
    profiles = figures.profiles_figure(
        result.names,
        [(p.positions, p.values) for p in result.nose],
        [(p.positions, p.values) for p in result.eyes],
    )
    if count == 2 and result.diff is not None:
        diff = figures.difference_figure(result.diff, result.names[0], result.names[1])
        return True, False, fig3d, note, page_options(count), profiles, False, diff, metrics_table(result)
    return True, False, fig3d, note, page_options(count), profiles, True, figures.go.Figure(), None


def register(app: Dash, service: Face3DService, runner: JobRunner) -> None:
    """Register the Compare tab's callbacks."""
    register_job_controller(
        app,
        runner,
        "compare",
        trigger_id=ids.COMPARE_RUN,
        result_store_id=ids.COMPARE_RESULT_STORE,
        states=[
            State(ids.COMPARE_FACES, "value"),
            State(ids.COMPARE_MODEL, "value"),
            State(ids.UPLOADS_STORE, "data"),
            State(ids.COMPARE_PRECISION, "value"),
        ],
        start=lambda shas, model, store, precision, session: start_compare(
            service, runner, shas, model, store, session=session, precision=precision
        ),
    )

    @app.callback(
        Output(ids.COMPARE_EMPTY, "hidden"),
        Output(ids.COMPARE_RESULTS, "hidden"),
        Output(ids.COMPARE_3D_GRAPH, "figure"),
        Output(ids.COMPARE_3D_NOTE, "children"),
        Output(ids.COMPARE_PAGE, "options"),
        Output(ids.COMPARE_PROFILES_GRAPH, "figure"),
        Output(ids.COMPARE_PAIR_SECTION, "hidden"),
        Output(ids.COMPARE_DIFF_GRAPH, "figure"),
        Output(ids.COMPARE_METRICS, "children"),
        Input(ids.COMPARE_RESULT_STORE, "data"),
        Input(ids.COMPARE_PAGE, "value"),
    )
    def _render(data, page):
        return shown_or_explained(lambda: render_compare(service, data, page, session=current_session()), EMPTY_COMPARE)

    app.clientside_callback(  # the difference map's box takes the map's aspect ratio
        ClientsideFunction(namespace="face3d", function_name="aspectStyle"),
        Output(ids.COMPARE_DIFF_BOX, "style"),
        Input(ids.COMPARE_DIFF_GRAPH, "figure"),
    )

    app.clientside_callback(  # two views per row: the box is as tall as the rows need
        ClientsideFunction(namespace="face3d", function_name="compareBoxClass"),
        Output(ids.COMPARE_3D_BOX, "className"),
        Input(ids.COMPARE_3D_GRAPH, "figure"),
    )

    app.clientside_callback(
        ClientsideFunction(namespace="face3d", function_name="syncCameras"),
        Output(ids.COMPARE_CAMERA_SYNC, "data"),
        Input(ids.COMPARE_3D_GRAPH, "relayoutData"),
        State(ids.COMPARE_3D_GRAPH, "id"),
        prevent_initial_call=True,
    )
