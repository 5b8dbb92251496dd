"""Image input: the one place where uploaded or given files are decoded.

Every photo enters face3d through :func:`decode_image` (bytes) or :func:`load_image`
(path) and leaves as ``(H, W, 3) uint8`` RGB with its EXIF orientation applied.
Grayscale, grayscale+alpha, RGBA (composited on white), palette and 16-bit PNGs become
8-bit RGB. Anything else raises :class:`~face3d_core.errors.InvalidImageError` with a
message written for the user.

Limits (checked before any pixel is decoded, so a "PNG bomb" costs nothing):
``MAX_FILE_BYTES`` (25 MB), ``MAX_PIXELS`` (40 megapixels), ``MIN_SIDE`` (16 px),
``MAX_ASPECT_RATIO`` (the longer side at most 8 times the shorter) and, for JPEG,
``MAX_JPEG_SCANS`` (100 scans: a progressive JPEG of thousands of tiny scans is a small file
that costs a decoder seconds of CPU per hundred scans; :func:`count_jpeg_scans` counts them
from the segment structure) and ``MAX_JPEG_SEGMENTS`` (1000 marker segments).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from face3d_core.errors import InvalidImageError

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 40_000_000
MIN_SIDE = 16
#: Longest side / shortest side. Longer strips are no face photos, and they break the
#: resampling of the depth network's input and output.
MAX_ASPECT_RATIO = 8.0
#: Most scans (SOS segments) a JPEG may have. Photos have 1 (baseline) or about 10
#: (progressive); libjpeg-turbo's own tools refuse more than a few hundred.
MAX_JPEG_SCANS = 100
#: Most marker segments (scans included) a JPEG may have; photos have a few dozen.
MAX_JPEG_SEGMENTS = 1000
ALLOWED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "MPO": "JPEG"}  # MPO: phone JPEGs with a depth/preview

_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
)
_OTHER_SIGNATURES = (
    (b"GIF8", "a GIF"),
    (b"RIFF", "a WebP/RIFF file"),
    (b"%PDF", "a PDF"),
    (b"BM", "a BMP"),
    (b"II*\x00", "a TIFF"),
    (b"MM\x00*", "a TIFF"),
    (b"<?xml", "an XML/SVG file"),
    (b"<svg", "an SVG drawing"),
    (b"\x00\x00\x00", "a HEIC/MP4-like container"),
)


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex SHA-256 of ``data`` (the content key used for caching)."""
    return hashlib.sha256(data).hexdigest()


def _sniff(data: bytes) -> str:
    """Return ``"JPEG"`` or ``"PNG"`` from the magic bytes, else raise InvalidImageError."""
    for magic, fmt in _SIGNATURES:
        if data.startswith(magic):
            return fmt
    head = data[:64].lstrip()
    for magic, what in _OTHER_SIGNATURES:
        if head.startswith(magic):
            raise InvalidImageError(f"This file is {what}, not a JPEG or PNG photo. Please upload a JPEG or PNG.")
    raise InvalidImageError("This file is not a JPEG or PNG image. Please upload a JPEG or PNG photo.")


#: In entropy-coded data: a 0xFF that starts a marker (not 0xFF00 stuffing, not a restart
#: marker RST0-7, not a fill byte 0xFF).
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
#: At a marker: one 0xFF and any fill bytes 0xFF after it.
_FILL_BYTES = re.compile(rb"\xff+")
#: Markers without a length field: RST0-7, SOI, TEM.
_STANDALONE_MARKERS = frozenset([*range(0xD0, 0xD9), 0x01])


def count_jpeg_scans(data: bytes, stop_after: int | None = None) -> int:
    """Count the scans (SOS segments) of the first image of a JPEG file, without decoding it.

    Walks the marker segments from SOI: segments with a length field are skipped by it; after
    each SOS the entropy-coded data is skipped up to the next marker that is not 0xFF00
    stuffing, a restart marker or a fill byte. The walk ends at EOI (a second image after it,
    as in MPO files, is not counted), at ``stop_after + 1`` scans, or where the structure is
    damaged (the decoder reports that).

    Args:
        data: The file's bytes (starting with SOI ``FF D8``).
        stop_after: Stop counting once more than this many scans were found.

    Returns:
        The number of scans found.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("L", (32, 32)).save(buf, "JPEG", progressive=True)
        >>> count_jpeg_scans(buf.getvalue())
        6
    """
    return _walk_jpeg(data, stop_after, None)[0]


def _walk_jpeg(data: bytes, max_scans: int | None, max_segments: int | None) -> tuple[int, int]:
    """``(scans, segments)`` of the first image (see :func:`count_jpeg_scans`), stopping past either limit.

    Every step is a C-level search or a jump by a segment's length, so a file of millions of
    fill bytes or empty segments costs no Python loop per byte (and ``max_segments`` bounds the
    loop over segments).
    """
    end = len(data)
    pos = 2
    scans = segments = 0
    while pos + 1 < end:
        fill = _FILL_BYTES.match(data, pos)  # 0xFF, then any fill bytes 0xFF before the marker
        if fill is None or fill.end() >= end:
            break  # not a marker where one must be: damaged
        marker = data[fill.end()]
        pos = fill.end() + 1
        if marker == 0xD9:  # EOI
            break
        segments += 1
        if max_segments is not None and segments > max_segments:
            break
        if marker in _STANDALONE_MARKERS:
            continue
        if pos + 2 > end:
            break
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            break
        pos += length
        if marker == 0xDA:
            scans += 1
            if max_scans is not None and scans > max_scans:
                break
            found = _MARKER_AFTER_SCAN.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return scans, segments


#: Rows converted at a time from 16/32-bit or float pixels (bounds the float64 temporaries).
_ROWS_PER_BLOCK = 256


def _to_gray8(values: np.ndarray, scale: float) -> np.ndarray:
    """``(H, W)`` numbers to ``uint8``: ``clip(rint(values * scale), 0, 255)``, a block of rows at a time.

    The same values as converting the whole array at once, with float64 temporaries of one block
    (a 40-megapixel 16-bit image once needed 0.9 GB here).
    """
    gray = np.empty(values.shape, np.uint8)
    for start in range(0, values.shape[0], _ROWS_PER_BLOCK):
        block = values[start : start + _ROWS_PER_BLOCK].astype(np.float64)
        gray[start : start + _ROWS_PER_BLOCK] = np.clip(np.rint(block * scale), 0, 255)
    return gray


def _to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image of any supported mode to ``(H, W, 3) uint8`` RGB."""
    mode = img.mode
    if mode in {"I;16", "I;16B", "I;16L", "I", "I;16N"}:
        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            # 16-bit (or 32-bit int) grayscale: keep the full range by scaling, not clipping.
            top = 65535.0 if arr.max() <= 65535 else float(arr.max())
            arr = _to_gray8(arr, 255.0 / max(top, 1.0))
        return np.ascontiguousarray(np.repeat(arr[..., None], 3, axis=2))
    if mode == "F":
        arr = _to_gray8(np.asarray(img), 1.0)
        return np.ascontiguousarray(np.repeat(arr[..., None], 3, axis=2))
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode == "LA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in {"RGBA", "RGBa"}:
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGB"), mask=img.getchannel("A"))
        img = background
    elif mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, RGBX ...
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def decode_image(data: bytes, *, name: str | None = None) -> np.ndarray:
    """Decode a JPEG or PNG file's bytes to an upright RGB array.

    Args:
        data: The whole file's content.
        name: The file's name, only for log messages (never used as a path).

    Returns:
        ``(H, W, 3) uint8`` RGB, EXIF orientation applied.

    Raises:
        InvalidImageError: Empty, too large, not JPEG/PNG, truncated/corrupt, too many pixels or
            too small. The message says what is wrong in words a user understands.

    Example:
        >>> import io, numpy as np
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("L", (32, 20), 128).save(buf, "PNG")
        >>> decode_image(buf.getvalue()).shape
        (20, 32, 3)
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImageError("No image data was received.")
    data = bytes(data)
    if len(data) == 0:
        raise InvalidImageError("The file is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidImageError(
            f"The file is too large ({len(data) / 1e6:.1f} MB); the limit is {MAX_FILE_BYTES // (1024 * 1024)} MB."
        )
    fmt = _sniff(data)
    if fmt == "JPEG":
        scans, segments = _walk_jpeg(data, MAX_JPEG_SCANS, MAX_JPEG_SEGMENTS)
        if scans > MAX_JPEG_SCANS:
            raise InvalidImageError(
                f"This JPEG has too many progressive scans (more than {MAX_JPEG_SCANS}); decoding it would take "
                "minutes. Save it again as an ordinary JPEG or PNG."
            )
        if segments > MAX_JPEG_SEGMENTS:
            raise InvalidImageError(
                f"This JPEG has too many segments (more than {MAX_JPEG_SEGMENTS}). Save it again as an ordinary "
                "JPEG or PNG."
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if ALLOWED_FORMATS.get(img.format or "") != fmt:
                raise InvalidImageError("The file's content does not match a JPEG or PNG image.")
            width, height = img.size
            _check_size(width, height)
            img.load()
            img = ImageOps.exif_transpose(img)
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(
            f"The image declares too many pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        logger.info("Could not decode %r: %s", name or "upload", exc)
        raise InvalidImageError(
            f"The {fmt} file is damaged or incomplete (it may have been cut off during transfer)."
        ) from exc
    image_rgb = _to_rgb_uint8(img)
    _check_size(image_rgb.shape[1], image_rgb.shape[0])
    return image_rgb


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise InvalidImageError(
            f"The image is too large ({width}x{height} = {width * height / 1e6:.0f} megapixels); "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels."
        )
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            f"The image is too small ({width}x{height} pixels); both sides must be at least {MIN_SIDE} pixels."
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidImageError(
            f"The image is too long and narrow ({width}x{height} pixels); the longer side may be at most "
            f"{MAX_ASPECT_RATIO:g} times the shorter. Crop it around the face."
        )


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read and decode a JPEG/PNG file from disk (see :func:`decode_image`).

    Raises:
        InvalidImageError: Missing/unreadable file, or anything :func:`decode_image` rejects.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidImageError(
                f"The file is too large ({size / 1e6:.1f} MB); the limit is {MAX_FILE_BYTES // (1024 * 1024)} MB."
            )
        data = path.read_bytes()
    except InvalidImageError:
        raise
    except OSError as exc:
        raise InvalidImageError(f"Cannot read the file ({exc.strerror or exc}).") from exc
    return decode_image(data, name=path.name)
