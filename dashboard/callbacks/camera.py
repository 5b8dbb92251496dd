"""Camera callbacks: the live view follows the Depth tab's colour map.

Everything else of the camera runs in the browser (``assets/face3d_camera.js``): a captured photo
enters through the Upload tab's own callback (it is put into ``dcc.Upload``'s contents), and live
frames go to ``/face3d/live/frame`` (:mod:`dashboard.live_endpoint`), not through Dash.
"""

from __future__ import annotations

from dash import Dash, Input, Output

from dashboard import ids
from face3d_core.figures import DEFAULT_COLORMAP, DEPTH_COLORMAPS, depth_colormap_gradient


def live_colormap(colormap: object) -> tuple[str, dict]:
    """The colour map the live view asks for (the Depth tab's, else the default) and its legend bar's style."""
    name = colormap if isinstance(colormap, str) and colormap in DEPTH_COLORMAPS else DEFAULT_COLORMAP
    return name, {"background": depth_colormap_gradient(name)}


def register(app: Dash) -> None:
    """Register the camera's callbacks."""

    @app.callback(
        Output(ids.CAMERA_PANEL, "data-colormap"),
        Output(ids.LIVE_LEGEND, "style"),
        Input(ids.DEPTH_COLORMAP, "value"),
    )
    def _on_colormap(colormap):
        return live_colormap(colormap)
