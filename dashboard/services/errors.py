"""The dashboard's own user-facing errors (the core's are in :mod:`face3d_core.errors`)."""

from __future__ import annotations

from face3d_core.errors import Face3DError

PHOTO_MISSING_MESSAGE = (
    "This photo is no longer stored on the server (the cache was cleared or it was evicted to "
    "save space). Please upload it again."
)


class PhotoMissingError(Face3DError):
    """An upload's key is known to the browser but its data is no longer in the cache."""

    title = "Photo no longer available"

    def __init__(self, message: str = PHOTO_MISSING_MESSAGE):
        super().__init__(message)


class DepthMissingError(Face3DError):
    """A step needs a depth map that has not been computed yet."""

    title = "Depth map not ready"


class MeasureError(Face3DError):
    """A face cannot be measured, or two clicked points cannot be measured between."""

    title = "Cannot measure"


class ServerBusyError(Face3DError):
    """Too much heavy work is waiting for its turn (:mod:`~dashboard.services.heavy`): try again shortly."""

    title = "The server is busy"

    def __init__(self, message: str = "The server is busy making other large results; please try again in a minute."):
        super().__init__(message)
