"""3D tab callbacks: generate (depth job), rebuild the view from the cache on slider changes, cameras.

Moving a slider never reruns the network: the depth map comes from the cache and only the
cheap reconstruction runs (itself cached per parameter set). The camera stays where the user
left it because the figure's ``uirevision`` only changes for a new face or a camera preset.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from dash import Dash, Input, Output, Patch, State, ctx
from dash.exceptions import PreventUpdate

from dashboard import figures, ids
from dashboard.callbacks.depth import start_depth
from dashboard.callbacks.jobs import register_job_controller
from dashboard.controls import Controls3D
from dashboard.jobs import JobRunner
from dashboard.services import Face3DService

logger = logging.getLogger(__name__)

CAMERA_BUTTONS = {
    ids.MODEL3D_CAMERA_FRONT: "front",
    ids.MODEL3D_CAMERA_SIDE: "side",
    ids.MODEL3D_CAMERA_TOP: "top",
}


def camera_state(store: Any) -> tuple[str, int]:
    """Return ``(preset name, revision)`` from the camera store."""
    if isinstance(store, dict) and store.get("preset") in figures.CAMERA_PRESETS:
        return store["preset"], int(store.get("rev") or 0)
    return figures.DEFAULT_CAMERA, 0


def uirevision_for(source: dict, rev: int) -> str:
    """The figure's ``uirevision``: new for another face or a camera preset, same for sliders."""
    return f"m3d-{source.get('sha', '')[:12]}-{source.get('model')}-{source.get('face')}-{rev}"


def gray_from_z(z: np.ndarray) -> np.ndarray:
    """Nearness in ``[0, 1]`` from display-frame z (towards the viewer = nearer)."""
    z = np.asarray(z, dtype=np.float32)
    if z.size == 0:
        return z
    lo, hi = np.percentile(z, [1.0, 99.0])
    return np.clip((z - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0).astype(np.float32)


def build_model_figure(face_model: Any, controls: Controls3D, *, camera: dict | None, uirevision: str):
    """The 3D figure of a reconstructed face for the display controls."""
    photo = controls.colors == "photo"
    if controls.display == "mesh" and face_model.mesh is not None and face_model.mesh.n_faces > 0:
        mesh = face_model.mesh
        trace = figures.mesh_trace(
            mesh.vertices_xyz, mesh.faces,
            colors_rgb=mesh.colors_rgb if photo and mesh.colors_rgb is not None else None,
            gray_values=gray_from_z(mesh.vertices_xyz[:, 2]),
        )
    else:
        trace = figures.points_trace(
            face_model.points_xyz,
            colors_rgb=face_model.colors_rgb if photo else None,
            gray_values=face_model.depth_values,
            marker_size=2.5 if face_model.n_points < 30_000 else 2.0,
        )
    return figures.model3d_figure(trace, camera=camera, uirevision=uirevision)


def stats_text(face_model: Any, controls: Controls3D) -> str:
    """One line about the model: size, points, triangles, scale source."""
    bounds = face_model.bounds_mm
    size = bounds[1] - bounds[0]
    scale = {"eyes": "scaled by the eye distance (63 mm)", "assumed": "scale assumed (no face landmarks)",
             "metric": "metric input"}.get(face_model.scale_source, "")
    shown = min(face_model.n_points, figures.MAX_DISPLAY_POINTS)
    points = f"{face_model.n_points:,} points" + (f" ({shown:,} shown)" if shown < face_model.n_points else "")
    return (f"{points} · {face_model.n_faces:,} triangles · {size[0]:.0f} × {size[1]:.0f} × {size[2]:.0f} mm "
            f"(W × H × D) · {scale}. Drag to rotate, scroll to zoom, right-drag to pan.")


def render_model3d(
    service: Face3DService, source: Any, smoothing: Any, density: Any, depth_scale: Any,
    display: Any, colors: Any, camera_store: Any,
) -> tuple:
    """Figure and stats for the 3D tab.

    Returns:
        ``(figure, stats, empty hidden, results hidden, downloads disabled)``.
    """
    if not isinstance(source, dict) or not source.get("sha"):
        return figures.go.Figure(), "", False, True, True
    controls = Controls3D.from_values(smoothing, density, depth_scale, display, colors)
    face_model = service.model3d(source["sha"], source["model"], source.get("face"), controls.to_params())
    preset, rev = camera_state(camera_store)
    fig = build_model_figure(face_model, controls, camera=figures.CAMERA_PRESETS[preset],
                             uirevision=uirevision_for(source, rev))
    return fig, stats_text(face_model, controls), True, False, False


def camera_patch(source: Any, camera_store: Any, preset: str) -> tuple[dict, Patch]:
    """New camera store and a figure patch that moves the camera to a preset (no data resent)."""
    _, rev = camera_state(camera_store)
    rev += 1
    patch = Patch()
    revision = uirevision_for(source if isinstance(source, dict) else {}, rev)
    patch["layout"]["uirevision"] = revision
    patch["layout"]["scene"]["uirevision"] = revision
    patch["layout"]["scene"]["camera"] = figures.CAMERA_PRESETS[preset]
    return {"preset": preset, "rev": rev}, patch


def register(app: Dash, service: Face3DService, runner: JobRunner) -> None:
    """Register the 3D tab's callbacks."""
    register_job_controller(
        app, runner, "model3d",
        trigger_id=ids.MODEL3D_GENERATE,
        result_store_id=ids.MODEL3D_SOURCE_STORE,
        states=[State(ids.MODEL3D_FACE, "value"), State(ids.MODEL3D_MODEL, "value"),
                State(ids.UPLOADS_STORE, "data")],
        start=lambda sha, model, store: start_depth(service, runner, sha, model, store),
    )

    @app.callback(
        Output(ids.MODEL3D_GRAPH, "figure"),
        Output(ids.MODEL3D_STATS, "children"),
        Output(ids.MODEL3D_EMPTY, "hidden"),
        Output(ids.MODEL3D_RESULTS, "hidden"),
        Output(ids.MODEL3D_DOWNLOAD_PLY, "disabled"),
        Output(ids.MODEL3D_DOWNLOAD_OBJ, "disabled"),
        Output(ids.MODEL3D_DOWNLOAD_GLB, "disabled"),
        Output(ids.MODEL3D_DOWNLOAD_STL, "disabled"),
        Input(ids.MODEL3D_SOURCE_STORE, "data"),
        Input(ids.MODEL3D_SMOOTHING, "value"),
        Input(ids.MODEL3D_DENSITY, "value"),
        Input(ids.MODEL3D_DEPTH_SCALE, "value"),
        Input(ids.MODEL3D_DISPLAY, "value"),
        Input(ids.MODEL3D_COLORS, "value"),
        State(ids.MODEL3D_CAMERA_STORE, "data"),
    )
    def _render(source, smoothing, density, depth_scale, display, colors, camera_store):
        fig, stats, empty_hidden, results_hidden, disabled = render_model3d(
            service, source, smoothing, density, depth_scale, display, colors, camera_store)
        return fig, stats, empty_hidden, results_hidden, disabled, disabled, disabled, disabled

    @app.callback(
        Output(ids.MODEL3D_CAMERA_STORE, "data"),
        Output(ids.MODEL3D_GRAPH, "figure", allow_duplicate=True),
        Input(ids.MODEL3D_CAMERA_FRONT, "n_clicks"),
        Input(ids.MODEL3D_CAMERA_SIDE, "n_clicks"),
        Input(ids.MODEL3D_CAMERA_TOP, "n_clicks"),
        State(ids.MODEL3D_SOURCE_STORE, "data"),
        State(ids.MODEL3D_CAMERA_STORE, "data"),
        prevent_initial_call=True,
    )
    def _camera(_front, _side, _top, source, camera_store):
        preset = CAMERA_BUTTONS.get(ctx.triggered_id)
        if preset is None:
            raise PreventUpdate
        return camera_patch(source, camera_store, preset)
