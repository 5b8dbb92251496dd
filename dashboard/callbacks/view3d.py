"""The 3D view's six page values, defined once, and the view they name as a session sees it.

The 3D tab's figure and measurements, click to measure and the downloads all depend on the
same six values (the source store, smoothing, density, depth scale, "auto (EXIF)" and the
field of view). :func:`view_dependencies` lists them once, as a Dash dict group, so every
callback receives them as one ``dict``; :meth:`dashboard.controls.ModelView.parse` turns that
into a typed value where it enters, and :func:`shown_model` checks the session and resolves the
field of view, once per callback.
"""

from __future__ import annotations

from dataclasses import dataclass

from dash import Input, State

from dashboard import ids
from dashboard.controls import Controls3D, ModelView
from dashboard.services import Face3DService, UploadMeta
from face3d_core.camera import CameraFov
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import ReconstructionParams

#: The six values (the keys :meth:`~dashboard.controls.ModelView.parse` reads): component and property.
VIEW_COMPONENTS = {
    "source": (ids.MODEL3D_SOURCE_STORE, "data"),
    "smoothing": (ids.MODEL3D_SMOOTHING, "value"),
    "density": (ids.MODEL3D_DENSITY, "value"),
    "depth_scale": (ids.MODEL3D_DEPTH_SCALE, "value"),
    "fov_auto": (ids.MODEL3D_FOV_AUTO, "value"),
    "fov_deg": (ids.MODEL3D_FOV, "value"),
}


def view_dependencies(kind: type[Input] | type[State] = Input) -> dict[str, Input | State]:
    """The six values as a Dash dict group (``inputs=dict(view=view_dependencies())``): the callback gets one dict."""
    return {key: kind(component, prop) for key, (component, prop) in VIEW_COMPONENTS.items()}


@dataclass(frozen=True)
class ShownModel:
    """A parsed view as the session may see it: its depth map, controls, field of view and photo.

    Attributes:
        ref: The depth map.
        controls: The tab's controls.
        fov: The field of view (from EXIF, the default, or the user's).
        meta: The photo as the session sees it (its own file name).
    """

    ref: DepthRef
    controls: Controls3D
    fov: CameraFov
    meta: UploadMeta

    @property
    def params(self) -> ReconstructionParams:
        """The reconstruction parameters of this view (the same for the view, downloads and measurements)."""
        return self.controls.to_params(self.fov.fov_deg)


def shown_model(service: Face3DService, view: ModelView, *, session: str) -> ShownModel | None:
    """The view as ``session`` sees it (None without a 3D source); the photo is checked first.

    Raises:
        PhotoMissingError: The photo is not the session's or no longer stored.
    """
    if view.ref is None:
        return None
    meta = service.access.require_photo(session, view.ref.sha)
    return ShownModel(view.ref, view.controls, service.cameras.fov(view.ref.sha, view.fov_deg), meta)
