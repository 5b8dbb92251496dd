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
from dashboard.callbacks.model3d import model_view
from dashboard.services import DepthMissingError, Face3DService
from dashboard.sessions import current_session
from face3d_core.pipeline import DepthRef

logger = logging.getLogger(__name__)

#: Button -> depth map format (see :data:`dashboard.services.exports.DEPTH_FORMATS`).
DEPTH_BUTTONS = {
    ids.DEPTH_DOWNLOAD_PNG8: "png8",
    ids.DEPTH_DOWNLOAD_PNG16: "png16",
    ids.DEPTH_DOWNLOAD_NPY: "npy",
}
MODEL_BUTTONS = {
    ids.MODEL3D_DOWNLOAD_PLY: "ply",
    ids.MODEL3D_DOWNLOAD_OBJ: "obj",
    ids.MODEL3D_DOWNLOAD_GLB: "glb",
    ids.MODEL3D_DOWNLOAD_STL: "stl",
}


def depth_file(service: Face3DService, result: Any, kind: str, *, session: str) -> tuple[str, bytes]:
    """Return ``(file name, bytes)`` of the depth map in ``kind`` (png8, png16, npy).

    Raises:
        DepthMissingError: No depth map for this result in the cache.
        PhotoMissingError: The photo is not the session's or no longer stored.
    """
    ref = DepthRef.from_dict(result)
    if ref is None:
        raise DepthMissingError("Generate the depth map first.")
    meta = service.access.require_photo(session, ref.sha)
    return service.exports.depth_file(ref, kind, meta.name)


def model_file(
    service: Face3DService,
    source: Any,
    fmt: str,
    smoothing: Any,
    density: Any,
    depth_scale: Any,
    fov_auto: Any = True,
    fov_deg: Any = None,
    *,
    session: str,
) -> tuple[str, bytes]:
    """Return ``(file name, bytes)`` of the 3D model as shown (same slider values and field of view).

    Raises:
        DepthMissingError: No 3D model yet.
        PhotoMissingError: The photo is not the session's or no longer stored.
    """
    shown = model_view(service, source, smoothing, density, depth_scale, fov_auto, fov_deg, session=session)
    if shown is None:
        raise DepthMissingError("Generate the 3D model first.")
    return service.exports.model_file(shown.ref, shown.params, fmt, shown.meta.name)


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
        State(ids.MODEL3D_FOV_AUTO, "value"),
        State(ids.MODEL3D_FOV, "value"),
        prevent_initial_call=True,
    )
    def _download(*args):
        depth_result, source, smoothing, density, depth_scale, fov_auto, fov_deg = args[-7:]
        trigger = ctx.triggered_id
        if not ctx.triggered or not ctx.triggered[0].get("value"):
            raise PreventUpdate
        session = current_session()
        if trigger in DEPTH_BUTTONS:
            name, data = depth_file(service, depth_result, DEPTH_BUTTONS[trigger], session=session)
        elif trigger in MODEL_BUTTONS:
            name, data = model_file(
                service,
                source,
                MODEL_BUTTONS[trigger],
                smoothing,
                density,
                depth_scale,
                fov_auto,
                fov_deg,
                session=session,
            )
        else:
            raise PreventUpdate
        logger.info("Download %r (%d bytes)", name, len(data))
        return dcc.send_bytes(data, name)
