"""The few EXIF tags face3d uses, read defensively: every tag of any type or count is understood or ignored.

EXIF is written by cameras, phones, editors and attackers. A tag may carry another type or
count than the standard says (a ``FocalPlaneResolutionUnit`` of two values, an ``Orientation``
written as the text ``"6"``, a rational with a zero denominator, a string of megabytes), and
Pillow hands such values through as tuples, bytes or strings. :func:`read_exif` reads the tags
below into a small :class:`PhotoExif`; a value it cannot understand is ignored with one log line
(``INFO``) and never raises, whatever the file holds.

Understood: a number (int, float, rational), a one-element sequence of one, or text holding a
decimal number (``"6"``, ``"26"`` with NUL padding). Anything else (several values, a non-finite or
non-positive number, an orientation outside 1-8) is ignored.

The decoder (:mod:`face3d_core.images`) turns photos upright with :attr:`PhotoExif.orientation`
and :mod:`face3d_core.camera` computes the field of view from the same :class:`PhotoExif`, so
both agree on a photo's orientation by construction (an ``Orientation`` of ``"6"`` turns the
pixels and swaps width and height for the field of view alike).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

TAG_ORIENTATION = 0x0112
IFD_EXIF = 0x8769
TAG_FOCAL_LENGTH = 0x920A
TAG_FOCAL_35MM = 0xA405
TAG_FOCAL_PLANE_X_RES = 0xA20E
TAG_FOCAL_PLANE_UNIT = 0xA210
TAG_PIXEL_X_DIMENSION = 0xA002

#: Millimetres per FocalPlaneResolutionUnit (EXIF 2.3: 2 inch, 3 centimetre; 4 mm and 5 um are
#: written by some cameras although only 2 and 3 are in the standard).
UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
#: The unit EXIF assumes when the tag is absent: inches.
DEFAULT_UNIT = 2

#: Pillow's transposition for each EXIF orientation (2-8; 1 is upright).
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: Longest text read as a number (longer text is ignored unread).
_MAX_TEXT = 32


@dataclass(frozen=True)
class PhotoExif:
    """What face3d takes from a photo's EXIF (small, picklable, the same in every process).

    Attributes:
        stored_size_wh: ``(W, H)`` of the image as stored (before the orientation is applied).
        orientation: EXIF orientation 1-8 (1: upright, also when absent or not understood).
        focal_35mm_mm: FocalLengthIn35mmFilm in mm, or None.
        focal_mm: FocalLength in mm, or None.
        focal_plane_x_res: FocalPlaneXResolution (pixels per unit), or None.
        focal_plane_unit_mm: Millimetres per FocalPlaneResolutionUnit (inches when the tag is
            absent), or None when the tag holds a unit that is not understood.
        pixel_x_dimension: PixelXDimension (the width the camera wrote), or None.
    """

    stored_size_wh: tuple[int, int]
    orientation: int = 1
    focal_35mm_mm: float | None = None
    focal_mm: float | None = None
    focal_plane_x_res: float | None = None
    focal_plane_unit_mm: float | None = UNIT_MM[DEFAULT_UNIT]
    pixel_x_dimension: float | None = None

    @property
    def swaps_sides(self) -> bool:
        """True when the orientation turns the photo by 90 degrees (orientations 5-8)."""
        return self.orientation in (5, 6, 7, 8)

    @property
    def upright_size_wh(self) -> tuple[int, int]:
        """``(W, H)`` of the photo once turned upright."""
        w, h = self.stored_size_wh
        return (h, w) if self.swaps_sides else (w, h)


def _ignored(name: str, value: Any, why: str) -> None:
    shown = repr(value)
    logger.info("EXIF %s ignored: %s (%s)", name, why, shown if len(shown) <= 60 else shown[:57] + "...")


def tag_number(value: Any, name: str) -> float | None:
    """One EXIF value as a finite number, or None (absent, or not understood: logged once).

    Args:
        value: What Pillow returned for the tag (None when absent).
        name: The tag's name, for the log.

    Example:
        >>> tag_number(6, "Orientation"), tag_number("6", "Orientation"), tag_number((26,), "F35")
        (6.0, 6.0, 26.0)
        >>> tag_number((2, 2), "FocalPlaneResolutionUnit") is None
        True
    """
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            _ignored(name, value, f"{len(value)} values where one number belongs")
            return None
        value = value[0]
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[: _MAX_TEXT + 1]).decode("ascii", errors="replace")
    if isinstance(value, str):
        text = value.strip("\x00 \t")
        if len(text) > _MAX_TEXT:
            _ignored(name, value, "text too long to be a number")
            return None
        value = text
    if isinstance(value, bool):
        _ignored(name, value, "not a number")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        _ignored(name, value, "not a number")
        return None
    if not math.isfinite(number):
        _ignored(name, value, "not a finite number")
        return None
    return number


def _positive(value: Any, name: str) -> float | None:
    number = tag_number(value, name)
    if number is not None and number <= 0:
        _ignored(name, value, "not a positive number")
        return None
    return number


def orientation_of(value: Any) -> int:
    """The EXIF ``Orientation`` as 1-8 (1 when absent or not understood, logged).

    Example:
        >>> orientation_of(6), orientation_of("6"), orientation_of(b"8"), orientation_of(9), orientation_of(None)
        (6, 6, 8, 1, 1)
    """
    number = tag_number(value, "Orientation")
    if number is None:
        return 1
    if number != int(number) or not 1 <= number <= 8:
        _ignored("Orientation", value, "not one of 1-8")
        return 1
    return int(number)


def unit_mm_of(value: Any) -> float | None:
    """Millimetres per FocalPlaneResolutionUnit: inches when absent; None for a unit not understood (logged)."""
    if value is None:
        return UNIT_MM[DEFAULT_UNIT]
    number = tag_number(value, "FocalPlaneResolutionUnit")
    unit = UNIT_MM.get(int(number)) if number is not None and number == int(number) else None
    if unit is None and number is not None:
        _ignored("FocalPlaneResolutionUnit", value, "not a known unit (2 inch, 3 cm, 4 mm, 5 um)")
    return unit


def read_exif(image: Image.Image) -> PhotoExif:
    """Read the tags of :class:`PhotoExif` from an opened (not yet transposed) Pillow image; never raises.

    Args:
        image: As opened by Pillow: its size is the stored size, its EXIF data intact.

    Returns:
        The :class:`PhotoExif` (defaults for everything absent or not understood; an EXIF block
        Pillow cannot parse at all is ignored as a whole, with one log line).
    """
    size = (int(image.size[0]), int(image.size[1]))
    try:
        exif = image.getexif()
        orientation = orientation_of(exif.get(TAG_ORIENTATION))
        sub = exif.get_ifd(IFD_EXIF)
        return PhotoExif(
            stored_size_wh=size,
            orientation=orientation,
            focal_35mm_mm=_positive(sub.get(TAG_FOCAL_35MM), "FocalLengthIn35mmFilm"),
            focal_mm=_positive(sub.get(TAG_FOCAL_LENGTH), "FocalLength"),
            focal_plane_x_res=_positive(sub.get(TAG_FOCAL_PLANE_X_RES), "FocalPlaneXResolution"),
            focal_plane_unit_mm=unit_mm_of(sub.get(TAG_FOCAL_PLANE_UNIT)),
            pixel_x_dimension=_positive(sub.get(TAG_PIXEL_X_DIMENSION), "PixelXDimension"),
        )
    except Exception as exc:  # noqa: BLE001 - any EXIF block, however broken, is ignored, never fatal
        logger.info("EXIF data ignored: Pillow could not read it (%s: %.80s)", type(exc).__name__, exc)
        return PhotoExif(stored_size_wh=size)


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` turned upright for an EXIF orientation (1-8; anything else leaves it as it is)."""
    method = ORIENTATION_TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)
