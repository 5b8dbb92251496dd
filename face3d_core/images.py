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

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from face3d_core import decode_sandbox
from face3d_core.errors import InvalidImageError
from face3d_core.exif import PhotoExif, read_exif, upright

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


@dataclass(frozen=True)
class DecodedPhoto:
    """A decoded photo and what its EXIF says.

    Attributes:
        image_rgb: ``(H, W, 3) uint8`` RGB, upright (EXIF orientation applied).
        exif: The tags face3d uses (:class:`~face3d_core.exif.PhotoExif`), read by the same decode.
    """

    image_rgb: np.ndarray
    exif: PhotoExif


def check_file(data: object) -> str:
    """The checks made before anything is decoded: empty, too large, not JPEG/PNG, too many JPEG scans.

    Costs microseconds whatever the file holds (no pixel is decoded).

    Returns:
        The format, ``"JPEG"`` or ``"PNG"``.

    Raises:
        InvalidImageError: The file is refused (the message says why).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImageError("No image data was received.")
    if len(data) == 0:
        raise InvalidImageError("The file is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidImageError(
            f"The file is too large ({len(data) / 1e6:.1f} MB); the limit is {MAX_FILE_BYTES // (1024 * 1024)} MB."
        )
    data = bytes(data)
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
    return fmt


def decode_photo(data: bytes, *, name: str | None = None) -> DecodedPhoto:
    """Decode a JPEG or PNG file's bytes to an upright RGB array, with its EXIF tags.

    The file is checked first (:func:`check_file`), then decoded inside a CPU-time and memory
    budget by a separate process (:mod:`face3d_core.decode_sandbox`; in this process where that
    is unavailable).

    Args:
        data: The whole file's content.
        name: The file's name, only for log messages (never used as a path).

    Returns:
        The :class:`DecodedPhoto`.

    Raises:
        InvalidImageError: Empty, too large, not JPEG/PNG, truncated/corrupt, too many pixels,
            too small, too long to decode or too much memory. The message says what is wrong in
            words a user understands.
    """
    fmt = check_file(data)
    label = name or "upload"
    answer = decode_sandbox.SANDBOX.run("decode", bytes(data), fmt, label)
    if answer is None:
        return _decode(io.BytesIO(bytes(data)), fmt, label)
    header, pixels = answer
    if pixels is None or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise decode_sandbox.DecodeRefused(decode_sandbox.DECODER_FAILED_MESSAGE)
    _check_size(pixels.shape[1], pixels.shape[0])
    return DecodedPhoto(pixels, _exif_from_header(header))


def decode_image(data: bytes, *, name: str | None = None) -> np.ndarray:
    """Decode a JPEG or PNG file's bytes to an upright RGB array (see :func:`decode_photo`).

    Args:
        data: The whole file's content.
        name: The file's name, only for log messages (never used as a path).

    Returns:
        ``(H, W, 3) uint8`` RGB, EXIF orientation applied.

    Raises:
        InvalidImageError: Empty, too large, not JPEG/PNG, truncated/corrupt, too many pixels or
            too small, too long to decode. The message says what is wrong in words a user understands.

    Example:
        >>> import io, numpy as np
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("L", (32, 20), 128).save(buf, "PNG")
        >>> decode_image(buf.getvalue()).shape
        (20, 32, 3)
    """
    return decode_photo(data, name=name).image_rgb


def read_photo_exif(data: bytes, *, name: str | None = None) -> PhotoExif:
    """The EXIF tags of a JPEG or PNG file (no pixels kept), read inside the decoder's budget.

    Raises:
        InvalidImageError: The file is refused or cannot be read (see :func:`decode_photo`).
    """
    fmt = check_file(data)
    label = name or "upload"
    answer = decode_sandbox.SANDBOX.run("exif", bytes(data), fmt, label)
    if answer is None:
        return _read_exif(io.BytesIO(bytes(data)), fmt, label)
    return _exif_from_header(answer[0])


def _exif_from_header(header: dict) -> PhotoExif:
    """The :class:`PhotoExif` a decoder process sent, checked field by field."""
    raw = header.get("exif")
    if not isinstance(raw, dict):
        raise decode_sandbox.DecodeRefused(decode_sandbox.DECODER_FAILED_MESSAGE)
    try:
        size = tuple(int(v) for v in raw["stored_size_wh"])
        numbers = {
            f.name: None if raw.get(f.name) is None else float(raw[f.name])
            for f in dataclasses.fields(PhotoExif)
            if f.name not in ("stored_size_wh", "orientation")
        }
        exif = PhotoExif(stored_size_wh=size, orientation=int(raw.get("orientation", 1)), **numbers)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as exc:
        raise decode_sandbox.DecodeRefused(decode_sandbox.DECODER_FAILED_MESSAGE) from exc
    if len(size) != 2 or not 1 <= exif.orientation <= 8:
        raise decode_sandbox.DecodeRefused(decode_sandbox.DECODER_FAILED_MESSAGE)
    return exif


def _open_checked(source: Any, fmt: str) -> Image.Image:
    """Open (not decode) a file as Pillow image of the sniffed format and an acceptable size."""
    img = Image.open(source)
    if ALLOWED_FORMATS.get(img.format or "") != fmt:
        raise InvalidImageError("The file's content does not match a JPEG or PNG image.")
    _check_size(*img.size)
    return img


def _pillow_errors(fmt: str, name: str) -> contextlib.AbstractContextManager:
    """Pillow's errors as :class:`InvalidImageError` (a decompression bomb, a damaged file)."""

    @contextlib.contextmanager
    def translated():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                yield
        except InvalidImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImageError(
                f"The image declares too many pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels."
            ) from exc
        except MemoryError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            if "memory" in str(exc).lower():  # a codec's own allocation failed (the memory budget)
                raise MemoryError(str(exc)) from exc
            logger.info("Could not decode %r: %s", name, exc)
            raise InvalidImageError(
                f"The {fmt} file is damaged or incomplete (it may have been cut off during transfer)."
            ) from exc

    return translated()


def _decode(source: Any, fmt: str, name: str) -> DecodedPhoto:
    """The decoding itself (in a decoder process, or here): a checked file object to an upright photo."""
    with _pillow_errors(fmt, name):
        img = _open_checked(source, fmt)
        img.load()
        exif = read_exif(img)
        img = upright(img, exif.orientation)
    image_rgb = _to_rgb_uint8(img)
    _check_size(image_rgb.shape[1], image_rgb.shape[0])
    return DecodedPhoto(image_rgb, exif)


def _read_exif(source: Any, fmt: str, name: str) -> PhotoExif:
    """The EXIF tags of a checked file object (PNG data after the pixels is read by decoding them)."""
    with _pillow_errors(fmt, name):
        return read_exif(_open_checked(source, fmt))


def sandboxed_work(kind: str, source: Any, fmt: str, name: str) -> tuple[dict, np.ndarray | None]:
    """What a decoder process does for one request (see :mod:`face3d_core.decode_sandbox`).

    Args:
        kind: ``"decode"`` (pixels and EXIF) or ``"exif"`` (EXIF only).
        source: The file, readable and seekable.
        fmt: The format :func:`check_file` found.
        name: The file's name, for log lines.

    Returns:
        ``(header, pixels or None)``: the header holds ``exif`` (and ``shape`` with pixels).
    """
    if kind == "exif":
        return {"exif": dataclasses.asdict(_read_exif(source, fmt, name))}, None
    photo = _decode(source, fmt, name)
    return {"shape": list(photo.image_rgb.shape), "exif": dataclasses.asdict(photo.exif)}, photo.image_rgb


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


def read_file(path: str | os.PathLike) -> bytes:
    """Read a photo file from disk, refusing one over :data:`MAX_FILE_BYTES` before reading it.

    Raises:
        InvalidImageError: Missing, unreadable or too large.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidImageError(
                f"The file is too large ({size / 1e6:.1f} MB); the limit is {MAX_FILE_BYTES // (1024 * 1024)} MB."
            )
        return path.read_bytes()
    except InvalidImageError:
        raise
    except OSError as exc:
        raise InvalidImageError(f"Cannot read the file ({exc.strerror or exc}).") from exc


def load_photo(path: str | os.PathLike) -> DecodedPhoto:
    """Read and decode a JPEG/PNG file from disk, with its EXIF tags (see :func:`decode_photo`).

    Raises:
        InvalidImageError: Missing/unreadable file, or anything :func:`decode_photo` rejects.
    """
    return decode_photo(read_file(path), name=Path(path).name)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read and decode a JPEG/PNG file from disk (see :func:`decode_image`).

    Raises:
        InvalidImageError: Missing/unreadable file, or anything :func:`decode_image` rejects.
    """
    return load_photo(path).image_rgb
