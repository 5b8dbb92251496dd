"""The camera's field of view from a photo's EXIF data.

The back-projection (:mod:`face3d_core.geometry`) needs the horizontal field of view of the
whole upright photo. Phones and cameras usually store what is needed to compute it:

1. ``FocalLengthIn35mmFilm`` (EXIF tag ``0xA405``): the focal length a 36 x 24 mm film frame
   would need for the same view. The equivalence is defined by the frame *diagonal* (43.27
   mm), the usual "crop factor" convention, so for an image of ``W x H`` pixels the focal
   length in pixels is ``f_px = f35 * sqrt(W^2 + H^2) / 43.27``. This holds for any aspect
   ratio and any rotation (the diagonal does not change when the photo is turned).
2. ``FocalLength`` (``0x920A``, millimetres) with the sensor's pixel density
   ``FocalPlaneXResolution`` (``0xA20E``) in ``FocalPlaneResolutionUnit`` (``0xA210``: 2 inch,
   3 cm, 4 mm, 5 micrometre): ``f_px = FocalLength * FocalPlaneXResolution / unit_mm``, for the
   image size the camera wrote (``PixelXDimension``, ``0xA002``); a resized file scales it by
   ``stored width / PixelXDimension``. The resolution tags describe the *stored* (unrotated)
   x axis, so the stored width is used for that ratio, before the EXIF orientation is applied.

Pixels are square, so ``f_px`` is the same along both axes and survives rotation; the
horizontal field of view of the upright photo is then ``2 atan(W_upright / 2 / f_px)``
(EXIF orientations 5-8 swap width and height). A face crop of width ``w`` sees
``2 atan(w / 2 / f_px)`` (:meth:`CameraFov.crop_fov_deg`); :class:`~face3d_core.geometry.Intrinsics`
keeps the whole photo's camera and shifts its principal point for a crop, which is the same.

Without these tags :func:`photo_fov` falls back to :data:`~face3d_core.geometry.DEFAULT_FOV_DEG`
(55 degrees, a phone's main camera is about 50-75) and says so; a value given by the user
always wins.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from face3d_core.errors import Face3DError
from face3d_core.exif import PhotoExif, read_exif
from face3d_core.geometry import DEFAULT_FOV_DEG, focal_px_from_fov, fov_from_focal_px

logger = logging.getLogger(__name__)

FovSource = Literal["given", "exif_35mm", "exif_focal_plane", "default"]

#: Diagonal of a 36 x 24 mm film frame: the reference of "35 mm equivalent" focal lengths.
FILM_35MM_DIAGONAL_MM = math.hypot(36.0, 24.0)

#: Field of view accepted from EXIF (anything outside is treated as a broken tag).
PLAUSIBLE_FOV_DEG = (5.0, 150.0)


@dataclass(frozen=True)
class CameraFov:
    """Field of view of a photo and where it came from.

    Attributes:
        fov_deg: Horizontal field of view of the whole upright photo, degrees.
        focal_px: Focal length in pixels of the upright photo (None for a default or given FOV
            without the image size).
        source: ``"given"`` (by the user), ``"exif_35mm"`` (FocalLengthIn35mmFilm),
            ``"exif_focal_plane"`` (FocalLength and the sensor's pixel density) or ``"default"``.
        detail: A short human-readable note, e.g. ``"35 mm equivalent 26 mm"``.
        image_size_wh: ``(W, H)`` of the upright photo, if known.
    """

    fov_deg: float
    focal_px: float | None
    source: FovSource
    detail: str = ""
    image_size_wh: tuple[int, int] | None = None

    @classmethod
    def of_size(cls, fov_deg: float, source: FovSource, size_wh: tuple[int, int] | None, detail: str = "") -> CameraFov:
        """A field of view not from EXIF (``given``, ``default``), with its focal length where the size is known."""
        size = None if size_wh is None else (int(size_wh[0]), int(size_wh[1]))
        focal = None if size is None else focal_px_from_fov(size[0], fov_deg)
        return cls(float(fov_deg), focal, source, detail, size)

    @property
    def from_exif(self) -> bool:
        """True when the EXIF data gave the field of view."""
        return self.source in ("exif_35mm", "exif_focal_plane")

    def crop_fov_deg(self, crop_width_px: float) -> float:
        """Horizontal field of view of a crop ``crop_width_px`` wide (same camera), degrees.

        Raises:
            ValueError: The focal length in pixels is unknown.
        """
        if self.focal_px is None:
            raise ValueError("the focal length in pixels is unknown (no image size)")
        return fov_from_focal_px(crop_width_px, self.focal_px)

    def describe(self) -> str:
        """One line for the user, e.g. ``"FOV 63.2° from EXIF (35 mm equivalent 26 mm)"``."""
        if self.source == "given":
            return f"FOV {self.fov_deg:.3g}° (given)"
        if self.source == "default":
            why = f"; {self.detail}" if self.detail else ""
            return f"FOV {self.fov_deg:.3g}° (default{why})"
        return f"FOV {self.fov_deg:.3g}° from EXIF ({self.detail})"


def fov_from_exif(exif: PhotoExif | Image.Image) -> CameraFov | None:
    """Compute the horizontal field of view of the upright photo from its EXIF tags.

    Args:
        exif: The photo's :class:`~face3d_core.exif.PhotoExif` (as the decoder read it), or an
            opened (not yet transposed) Pillow image to read it from.

    Returns:
        The :class:`CameraFov` (source ``"exif_35mm"`` or ``"exif_focal_plane"``), or None when
        the tags are missing, not understood or give an implausible value.
    """
    if isinstance(exif, Image.Image):
        exif = read_exif(exif)
    stored_w, stored_h = exif.stored_size_wh
    upright_w, upright_h = exif.upright_size_wh

    candidates: list[tuple[float, FovSource, str]] = []
    f35 = exif.focal_35mm_mm
    if f35 is not None:
        focal_px = f35 * math.hypot(stored_w, stored_h) / FILM_35MM_DIAGONAL_MM
        candidates.append((focal_px, "exif_35mm", f"35 mm equivalent {f35:g} mm"))
    focal_mm, x_res, unit_mm = exif.focal_mm, exif.focal_plane_x_res, exif.focal_plane_unit_mm
    if focal_mm is not None and x_res is not None and unit_mm is not None:
        focal_px = focal_mm * x_res / unit_mm
        written_w = exif.pixel_x_dimension
        if written_w is not None and abs(written_w - stored_w) > 0.5:
            focal_px *= stored_w / written_w  # the file was resized after the camera wrote it
        sensor_mm = (written_w or stored_w) * unit_mm / x_res
        candidates.append(
            (focal_px, "exif_focal_plane", f"focal length {focal_mm:g} mm on a {sensor_mm:.3g} mm wide sensor")
        )
    for focal_px, source, detail in candidates:
        fov = fov_from_focal_px(upright_w, focal_px)
        if PLAUSIBLE_FOV_DEG[0] <= fov <= PLAUSIBLE_FOV_DEG[1]:
            return CameraFov(fov, focal_px, source, detail, (upright_w, upright_h))
        logger.info("Ignoring EXIF %s: it gives an implausible field of view of %.1f degrees", source, fov)
    return None


def photo_fov(
    photo: bytes | str | os.PathLike | None, fov_deg: float | None = None, *, default_deg: float = DEFAULT_FOV_DEG
) -> CameraFov:
    """Choose the field of view for a photo: the given value, else EXIF, else the default.

    Args:
        photo: The photo file's bytes or path (None: no EXIF to read).
        fov_deg: A field of view given by the user (degrees); it always wins.
        default_deg: The fallback.

    Returns:
        The :class:`CameraFov` with its source. Unreadable files or EXIF data fall back to
        the default (decoding errors are reported by :func:`face3d_core.images.decode_image`).
        The EXIF data is read within the decoder's budget (:func:`face3d_core.images.read_photo_exif`).
    """
    size = None
    found = None
    if photo is not None:
        from face3d_core.images import read_photo_exif  # the decoder's budget and rules

        try:
            data = photo if isinstance(photo, (bytes, bytearray)) else Path(photo).read_bytes()
            exif = read_photo_exif(bytes(data))
        except (OSError, Face3DError) as exc:
            logger.info("No EXIF field of view: %s", exc)
        else:
            found = fov_from_exif(exif)
            size = exif.upright_size_wh
    if fov_deg is not None:
        return CameraFov.of_size(fov_deg, "given", size)
    if found is not None:
        return found
    return CameraFov.of_size(default_deg, "default", size, "no focal length in EXIF" if photo is not None else "")
