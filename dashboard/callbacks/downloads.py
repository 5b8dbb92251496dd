"""Downloads: depth map (8-bit PNG, 16-bit PNG, .npy) and 3D model (PLY, OBJ zip, GLB, STL).

One callback feeds the single ``dcc.Download`` (which lives outside the tabs, so it works
whichever tab is shown). Files are made from the cache; nothing is recomputed by the network.
"""

from __future__ import annotations

import logging
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.controls import Controls3D
from dashboard.services import DepthMissingError, Face3DService, safe_stem
from face3d_core.depthmap import encode_depth_npy, encode_depth_png8, encode_depth_png16

logger = logging.getLogger(__name__)

DEPTH_BUTTONS = {
    ids.DEPTH_DOWNLOAD_PNG8: ("png8", "_depth.png"),
    ids.DEPTH_DOWNLOAD_PNG16: ("png16", "_depth16.png"),
    ids.DEPTH_DOWNLOAD_NPY: ("npy", "_depth.npy"),
}
MODEL_BUTTONS = {
    ids.MODEL3D_DOWNLOAD_PLY: "ply",
    ids.MODEL3D_DOWNLOAD_OBJ: "obj",
    ids.MODEL3D_DOWNLOAD_GLB: "glb",
    ids.MODEL3D_DOWNLOAD_STL: "stl",
}


def depth_file(service: Face3DService, result: Any, kind: str) -> tuple[str, bytes]:
    """Return ``(file name, bytes)`` of the depth map in ``kind`` (png8, png16, npy).

    Raises:
        DepthMissingError: No depth map for this result in the cache.
    """
    face_depth = None
    if isinstance(result, dict) and result.get("sha"):
        face_depth = service.cached_depth(result["sha"], result.get("model"), result.get("face"))
    if face_depth is None:
        raise DepthMissingError("Generate the depth map first.")
    meta = service.require_meta(result["sha"])
    encoders = {"png8": encode_depth_png8, "png16": encode_depth_png16, "npy": encode_depth_npy}
    suffix = {k: v for k, v in DEPTH_BUTTONS.values()}[kind]
    return safe_stem(meta.name) + suffix, encoders[kind](face_depth.depth_rel)


def model_file(
    service: Face3DService, source: Any, fmt: str, smoothing: Any, density: Any, depth_scale: Any
) -> tuple[str, bytes]:
    """Return ``(file name, bytes)`` of the 3D model as shown (same slider values).

    Raises:
        DepthMissingError: No 3D model yet.
    """
    if not isinstance(source, dict) or not source.get("sha"):
        raise DepthMissingError("Generate the 3D model first.")
    controls = Controls3D.from_values(smoothing, density, depth_scale, None, None)
    return service.export_model(source["sha"], source["model"], source.get("face"), controls.to_params(), fmt)


def register(app: Dash, service: Face3DService) -> None:
    """Register the download callback."""

    @app.callback(
        Output(ids.DOWNLOAD, "data"),
        *(Input(button, "n_clicks") for button in (*DEPTH_BUTTONS, *MODEL_BUTTONS)),
        State(ids.DEPTH_RESULT_STORE, "data"),
        State(ids.MODEL3D_SOURCE_STORE, "data"),
        State(ids.MODEL3D_SMOOTHING, "value"),
        State(ids.MODEL3D_DENSITY, "value"),
        State(ids.MODEL3D_DEPTH_SCALE, "value"),
        prevent_initial_call=True,
    )
    def _download(*args):
        depth_result, source, smoothing, density, depth_scale = args[-5:]
        trigger = ctx.triggered_id
        if not ctx.triggered or not ctx.triggered[0].get("value"):
            raise PreventUpdate
        if trigger in DEPTH_BUTTONS:
            name, data = depth_file(service, depth_result, DEPTH_BUTTONS[trigger][0])
        elif trigger in MODEL_BUTTONS:
            name, data = model_file(service, source, MODEL_BUTTONS[trigger], smoothing, density, depth_scale)
        else:
            raise PreventUpdate
        logger.info("Download %s (%d bytes)", name, len(data))
        return dcc.send_bytes(data, name)
