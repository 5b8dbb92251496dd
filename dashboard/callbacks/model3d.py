"""3D tab callbacks: generate (depth job), rebuild the view from the cache on slider changes, cameras.

Moving a slider never reruns the network: the depth map comes from the cache and only the
cheap reconstruction runs, once per set of slider values (kept in memory); a mesh too large
for a light figure is shown as a coarser grid of that same reconstruction. The camera stays
where the user left it: the browser keeps the last camera in a small store (a clientside
callback on the graph's ``relayoutData``) and every rebuilt figure is given that camera.

The field of view comes from the photo's EXIF focal length unless the user sets one
(:class:`ModelView`); every figure carries the empty click-to-measure traces
(:func:`face3d_core.figures.measure_overlay`) that :mod:`dashboard.callbacks.measure` patches.
"""

from __future__ import annotations

import logging

from dash import ClientsideFunction, Dash, Input, Output, Patch, State, ctx, no_update, set_props
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.browser_values import number, point_xyz
from dashboard.callbacks.depth import start_depth
from dashboard.callbacks.jobs import register_job_controller
from dashboard.callbacks.measure import MEASURE_DOWNLOADS, SOLID_DOWNLOADS, measurement_panel
from dashboard.callbacks.view3d import ShownModel, shown_model, view_dependencies
from dashboard.controls import Controls3D, ModelView
from dashboard.errors import shown_or_explained
from dashboard.jobs import JobRunner
from dashboard.layout.measure import MEASURE_HINT
from dashboard.services import Face3DService
from dashboard.sessions import current_session
from face3d_core import figures
from face3d_core.camera import CameraFov
from face3d_core.geometry import nearness_from_z
from face3d_core.mesh import Mesh
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import MAX_MODEL_POINTS, FaceModel3D
from face3d_core.report import fov_text

logger = logging.getLogger(__name__)

#: The 3D model's download buttons (enabled with the model).
MODEL_DOWNLOADS = (
    ids.MODEL3D_DOWNLOAD_PLY,
    ids.MODEL3D_DOWNLOAD_OBJ,
    ids.MODEL3D_DOWNLOAD_GLB,
    ids.MODEL3D_DOWNLOAD_STL,
)

CAMERA_BUTTONS = {
    ids.MODEL3D_CAMERA_FRONT: "front",
    ids.MODEL3D_CAMERA_SIDE: "side",
    ids.MODEL3D_CAMERA_TOP: "top",
}


def valid_camera(camera: object) -> dict | None:
    """A plotly scene camera dict when ``camera`` (from the browser) is one, else None: finite numbers only."""
    if not isinstance(camera, dict) or not isinstance(camera.get("eye"), dict):
        return None
    out = {}
    for part in ("eye", "up", "center"):
        value = camera.get(part)
        if value is None:
            continue
        point = point_xyz(value)
        if point is None:
            return None
        out[part] = dict(zip("xyz", point.tolist(), strict=True))
    return out


def view_state(view: object) -> tuple[dict | None, int]:
    """Return ``(camera or None, revision)`` from the view store."""
    if not isinstance(view, dict):
        return None, 0
    rev = number(view.get("rev") or 0, 0, 2**31)
    return valid_camera(view.get("camera")), 0 if rev is None else int(rev)


def uirevision_for(ref: DepthRef | None, rev: int) -> str:
    """The figure's ``uirevision``: new for another face or a camera preset, same for sliders."""
    if ref is None:
        return f"m3d--None-None-{rev}"
    return f"m3d-{ref.sha[:12]}-{ref.model_variant}-{ref.face_index}-{rev}"


def build_model_figure(
    face_model: FaceModel3D,
    controls: Controls3D,
    *,
    camera: dict | None,
    uirevision: str,
    shown_mesh: Mesh | None = None,
) -> dict:
    """The 3D figure of a reconstructed face for the display controls.

    Args:
        face_model: The reconstruction.
        controls: The 3D tab's controls.
        camera: The scene camera.
        uirevision: See :func:`uirevision_for`.
        shown_mesh: The mesh to draw in mesh mode (default the model's own; a coarser one
            keeps a large model's figure light).
    """
    photo = controls.colors == "photo"
    mesh = shown_mesh if shown_mesh is not None else face_model.mesh
    # hoverinfo "none": no hover label, but clicks reach click-to-measure
    if controls.display == "mesh" and mesh is not None and mesh.n_faces > 0:
        trace = figures.mesh_trace(
            mesh.vertices_xyz,
            mesh.faces,
            colors_rgb=mesh.colors_rgb if photo and mesh.colors_rgb is not None else None,
            gray_values=nearness_from_z(mesh.vertices_xyz[:, 2]),
            hoverinfo="none",
        )
    else:
        trace = figures.points_trace(
            face_model.points_xyz,
            colors_rgb=face_model.colors_rgb if photo else None,
            gray_values=face_model.depth_values,
            marker_size=2.5 if face_model.n_points < 30_000 else 2.0,
            hoverinfo="none",
        )
    return figures.model3d_figure(trace, camera=camera, uirevision=uirevision, overlays=figures.measure_overlay())


def stats_text(
    face_model: FaceModel3D, controls: Controls3D, shown_triangles: int | None = None, fov: CameraFov | None = None
) -> str:
    """One line about the model (as downloaded): size, points, triangles, scale source, field of view, what is shown."""
    bounds = face_model.bounds_mm
    size = bounds[1] - bounds[0]
    scale = {
        "eyes": "scaled by the eye distance (63 mm)",
        "assumed": "scale assumed (no face landmarks)",
        "metric": "metric input",
    }.get(face_model.scale_source, "")
    if controls.display == "mesh":
        shown = face_model.n_faces if shown_triangles is None else shown_triangles
        note = f" ({shown:,} shown)" if shown < face_model.n_faces else ""
        counts = f"{face_model.n_points:,} points · {face_model.n_faces:,} triangles{note}"
    else:
        shown = min(face_model.n_points, figures.MAX_DISPLAY_POINTS)
        note = f" ({shown:,} shown)" if shown < face_model.n_points else ""
        counts = f"{face_model.n_points:,} points{note} · {face_model.n_faces:,} triangles"
    camera = f" · {fov_text(fov)}" if fov is not None else ""
    if face_model.point_cap_applied and face_model.params.max_points == MAX_MODEL_POINTS:
        # ("full" density only: the lower levels are point budgets by design, not a cap)
        counts += f" · {face_model.params.max_points / 1e6:.3g} M point cap applied"
    return (
        f"{counts} · {size[0]:.0f} × {size[1]:.0f} × {size[2]:.0f} mm (W × H × D) · {scale}{camera}. "
        "Drag to rotate, scroll to zoom, right-drag to pan."
    )


def render_model3d(
    service: Face3DService, view: ModelView, view_store: object, *, session: str, new_source: bool = False
) -> tuple:
    """Figure and stats for the 3D tab.

    The camera is the one the user left (kept in the view store by the browser), so moving a
    slider never moves the view; a new face starts from the front camera.

    Args:
        service: The dashboard service.
        view: The view the page asks for (with its display controls).
        view_store: The view store (``{"camera", "rev"}``).
        session: The browser session (only its own photos are shown).
        new_source: True when the source itself changed (reset the camera).

    Returns:
        ``(figure, stats, empty hidden, results hidden, downloads disabled, new view store or no_update)``.

    Raises:
        PhotoMissingError: The photo is not the session's or no longer stored.
        DepthMissingError: Its depth map is no longer stored.
    """
    return render_shown(service, shown_model(service, view, session=session), view_store, new_source=new_source)


def render_shown(service: Face3DService, shown: ShownModel | None, view_store: object, *, new_source: bool) -> tuple:
    """:func:`render_model3d` of a view already checked for the session."""
    if shown is None:
        return EMPTY_MODEL3D
    ref, controls, params = shown.ref, shown.controls, shown.params
    face_model = service.models3d.model(ref, params)
    shown_mesh = None
    if controls.display == "mesh":
        # too many triangles for a light figure: a coarser grid of the same reconstruction
        shown_mesh = service.models3d.display_mesh(ref, params, figures.MAX_DISPLAY_TRIANGLES)
    camera, rev = view_state(view_store)
    new_view: object = no_update
    if new_source:
        camera, rev = None, rev + 1
        new_view = {"camera": None, "rev": rev}
    fig = build_model_figure(
        face_model,
        controls,
        camera=camera or figures.CAMERA_PRESETS[figures.DEFAULT_CAMERA],
        uirevision=uirevision_for(ref, rev),
        shown_mesh=shown_mesh,
    )
    shown_triangles = shown_mesh.n_faces if shown_mesh is not None else None
    return fig, stats_text(face_model, controls, shown_triangles, shown.fov), True, False, False, new_view


#: What the 3D tab shows without a model.
EMPTY_MODEL3D = (figures.go.Figure(), "", False, True, True, no_update)


def camera_patch(source: object, view: object, preset: str) -> tuple[dict, Patch]:
    """New view store and a figure patch that moves the camera to a preset (no data resent)."""
    _, rev = view_state(view)
    rev += 1
    camera = figures.CAMERA_PRESETS[preset]
    patch = Patch()
    revision = uirevision_for(DepthRef.from_dict(source), rev)
    patch["layout"]["uirevision"] = revision
    patch["layout"]["scene"]["uirevision"] = revision
    patch["layout"]["scene"]["camera"] = camera
    return {"camera": camera, "rev": rev}, patch


def register(app: Dash, service: Face3DService, runner: JobRunner) -> None:
    """Register the 3D tab's callbacks."""
    register_job_controller(
        app,
        runner,
        "model3d",
        trigger_id=ids.MODEL3D_GENERATE,
        result_store_id=ids.MODEL3D_SOURCE_STORE,
        states=[
            State(ids.MODEL3D_FACE, "value"),
            State(ids.MODEL3D_MODEL, "value"),
            State(ids.UPLOADS_STORE, "data"),
            State(ids.MODEL3D_PRECISION, "value"),
        ],
        start=lambda sha, model, store, precision, session: start_depth(
            service, runner, sha, model, store, session=session, precision=precision
        ),
    )

    @app.callback(
        output=[
            Output(ids.MODEL3D_GRAPH, "figure"),
            Output(ids.MODEL3D_STATS, "children"),
            Output(ids.MODEL3D_EMPTY, "hidden"),
            Output(ids.MODEL3D_RESULTS, "hidden"),
            *(Output(button, "disabled") for button in MODEL_DOWNLOADS),
            Output(ids.MODEL3D_MEASURE_TABLE, "children"),
            *(Output(button, "disabled") for button in MEASURE_DOWNLOADS),
            *(Output(button, "disabled") for button in SOLID_DOWNLOADS),
            Output(ids.MODEL3D_FOV_INFO, "children"),
        ],
        inputs={
            "raw": view_dependencies(Input),
            "display": Input(ids.MODEL3D_DISPLAY, "value"),
            "colors": Input(ids.MODEL3D_COLORS, "value"),
        },
        state={"view_store": State(ids.MODEL3D_VIEW_STORE, "data")},
    )
    def _render(raw, display, colors, view_store):
        # the one callback of the six values: the view is parsed and checked once, then drawn and measured
        trigger = ctx.triggered_id
        view = ModelView.parse(raw).shown_as(display, colors)
        session = current_session()
        shown: list[ShownModel | None] = []

        def drawn() -> tuple:
            shown.append(shown_model(service, view, session=session))
            return render_shown(service, shown[0], view_store, new_source=trigger in (None, ids.MODEL3D_SOURCE_STORE))

        fig, stats, empty_hidden, results_hidden, disabled, new_view = shown_or_explained(drawn, EMPTY_MODEL3D)
        if new_view is not no_update:
            set_props(ids.MODEL3D_VIEW_STORE, {"data": new_view})
        # a new figure has no picked points: click to measure starts again
        set_props(ids.MODEL3D_MEASURE_STORE, {"data": None})
        set_props(ids.MODEL3D_MEASURE_STATUS, {"children": MEASURE_HINT})
        model_outputs = (fig, stats, empty_hidden, results_hidden, *[disabled] * len(MODEL_DOWNLOADS))
        if trigger in (ids.MODEL3D_DISPLAY, ids.MODEL3D_COLORS):  # the same model: its measurements stand
            return [*model_outputs, *[no_update] * (2 + len(MEASURE_DOWNLOADS) + len(SOLID_DOWNLOADS))]
        table, measure_off, model_off, info = (
            shown_or_explained(lambda: measurement_panel(service, shown[0]), (None, True, True, ""))
            if shown
            else (None, True, True, "")
        )
        return [
            *model_outputs,
            table,
            *[measure_off] * len(MEASURE_DOWNLOADS),
            *[model_off] * len(SOLID_DOWNLOADS),
            info,
        ]

    @app.callback(
        Output(ids.MODEL3D_VIEW_STORE, "data", allow_duplicate=True),
        Output(ids.MODEL3D_GRAPH, "figure", allow_duplicate=True),
        Input(ids.MODEL3D_CAMERA_FRONT, "n_clicks"),
        Input(ids.MODEL3D_CAMERA_SIDE, "n_clicks"),
        Input(ids.MODEL3D_CAMERA_TOP, "n_clicks"),
        State(ids.MODEL3D_SOURCE_STORE, "data"),
        State(ids.MODEL3D_VIEW_STORE, "data"),
        prevent_initial_call=True,
    )
    def _camera(_front, _side, _top, source, view):
        preset = CAMERA_BUTTONS.get(ctx.triggered_id)
        if preset is None:
            raise PreventUpdate
        return camera_patch(source, view, preset)

    # The browser remembers where the user turned the camera (no server round trip).
    app.clientside_callback(
        ClientsideFunction(namespace="face3d", function_name="rememberCamera"),
        Output(ids.MODEL3D_VIEW_STORE, "data", allow_duplicate=True),
        Input(ids.MODEL3D_GRAPH, "relayoutData"),
        State(ids.MODEL3D_VIEW_STORE, "data"),
        prevent_initial_call=True,
    )
