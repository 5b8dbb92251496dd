"""The field of view of each uploaded photo: from its EXIF focal length, or the default, or the user's.

The back-projection needs the horizontal field of view of the whole photo
(:func:`face3d_core.camera.photo_fov`). The EXIF data is read once per photo and process
(from the stored original bytes; a few milliseconds) and kept in memory; a value chosen by
the user always wins.
"""

from __future__ import annotations

from dashboard.services.errors import PhotoMissingError
from dashboard.services.memory import MemoryLRU
from dashboard.services.uploads import Uploads
from face3d_core.camera import CameraFov, photo_fov


class Cameras:
    """Fields of view of the uploaded photos.

    Args:
        uploads: Where the photos are.
        memory: The memory tier (one small :class:`~face3d_core.camera.CameraFov` per photo).
    """

    def __init__(self, uploads: Uploads, memory: MemoryLRU | None = None):
        self.uploads = uploads
        self.memory = memory if memory is not None else MemoryLRU(max_items=256, max_bytes=1024 * 1024)

    def fov(self, sha: str, given_deg: float | None = None) -> CameraFov:
        """The field of view of a photo: ``given_deg`` when set, else its EXIF's, else the default.

        A photo no longer stored (its depth map may still be cached) gets the default, not
        remembered, so the EXIF value is used again once the photo is uploaded again.
        """
        try:
            auto = self.memory.get_or_compute(f"fov/{sha}", lambda: photo_fov(self.uploads.original(sha)))
        except PhotoMissingError:
            auto = photo_fov(None)
        if given_deg is None:
            return auto
        return CameraFov.of_size(given_deg, "given", auto.image_size_wh)
