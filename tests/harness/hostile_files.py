"""Files and names a user (or an attacker) might upload, made by code (nothing stored in the repository)."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

EVIL_HTML_NAME = '<img src=x onerror="alert(1)"><script>alert(2)</script>.png'
#: File names that must only ever be shown, as text: never used as paths or rendered as HTML.
EVIL_NAMES = ("../../x.png", "/etc/passwd", "..\\..\\win.png", EVIL_HTML_NAME, "a\x00b.png", "é" * 300 + ".png")


def png_bytes(array: np.ndarray, **kwargs) -> bytes:
    """A PNG file of ``array`` ((H, W) or (H, W, 3), uint8 or uint16)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", **kwargs)
    return buffer.getvalue()


def jpeg_bytes(array: np.ndarray) -> bytes:
    """A JPEG file (quality 90) of an (H, W, 3) uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a "decompression bomb")."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """``(marker, start, end)`` of each segment of a JPEG written by Pillow (scans include their data).

    Only for the files this module makes: Pillow writes no fill bytes and no restart markers.
    """
    segments = []
    pos = 2
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            segments.append((marker, pos, pos + 2))
            break
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # entropy-coded data up to the next marker (not 0xFF00 stuffing)
            while not (data[end] == 0xFF and data[end + 1] != 0x00):
                end += 1
        segments.append((marker, pos, end))
        pos = end
    return segments


@functools.lru_cache(maxsize=4)
def progressive_scan_bomb(side: int = 6000, scans: int = 15_000) -> bytes:
    """A progressive grey JPEG of ``side`` x ``side`` whose last (59-byte) AC scan is repeated to ``scans`` scans.

    Small on disk (about 1.1 MB for the defaults) and inside every size limit, but a decoder
    works through every scan over the whole image (31 s of CPU for the defaults).
    """
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    segments = _jpeg_segments(data)
    sos = [(start, end) for marker, start, end in segments if marker == 0xDA]
    last_start, last_end = sos[-1]
    eoi = segments[-1][1]
    return data[:eoi] + data[last_start:last_end] * (scans - len(sos)) + data[eoi:]


def flat_image(width: int, height: int, fmt: str = "PNG", value: int = 128) -> bytes:
    """An RGB image of one grey level (tiny as PNG, however many pixels it has)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (value, value, value)).save(buffer, fmt)
    return buffer.getvalue()


def flat_gray16_png(width: int, height: int, value: int = 40000) -> bytes:
    """A 16-bit grayscale PNG of one level: tiny, and the costliest mode to decode (16 bits to 8)."""
    return png_bytes(np.full((height, width), value, np.uint16))


def hostile_corpus() -> dict[str, bytes]:
    """Name -> bytes of files a user (or an attacker) might upload."""
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    gif = io.BytesIO()
    Image.fromarray(photo).save(gif, "GIF")
    webp = io.BytesIO()
    try:
        Image.fromarray(photo).save(webp, "WEBP")
    except (KeyError, OSError):  # Pillow built without WebP
        webp = io.BytesIO(b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\0" * 32)
    return {
        "zero_bytes.jpg": b"",
        "truncated.jpg": jpeg_bytes(photo)[:300],
        "truncated.png": png_bytes(photo)[:200],
        "png_bomb_50000x50000.png": declared_png(50000, 50000),
        "too_big_30MB.jpg": b"\xff\xd8\xff" + b"\0" * (30 * 1024 * 1024),
        "gif_renamed.jpg": gif.getvalue(),
        "webp_renamed.jpg": webp.getvalue(),
        "svg_renamed.jpg": b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        "pdf_renamed.jpg": b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
        "random_bytes.png": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "one_pixel.png": png_bytes(np.zeros((1, 1, 3), np.uint8)),
        "20000x10.png": png_bytes(np.zeros((10, 20000, 3), np.uint8)),
        "strip_20000x16.png": flat_image(20000, 16),
        "wide_65000x600.jpg": flat_image(65000, 600, "JPEG"),
        "progressive_15000_scans.jpg": progressive_scan_bomb(),
        "png_header_only.png": b"\x89PNG\r\n\x1a\n",
        "jpeg_soi_only.jpg": b"\xff\xd8\xff\xe0",
    }


def face_variant(path: Path, mode: str) -> bytes:
    """A real face photo re-encoded as a CMYK JPEG (``mode="cmyk"``) or a 16-bit grayscale PNG."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    buffer = io.BytesIO()
    if mode == "cmyk":
        rgb.convert("CMYK").save(buffer, "JPEG", quality=92)
    else:
        gray16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        Image.fromarray(gray16).save(buffer, "PNG")
    return buffer.getvalue()


def odd_but_valid(photo: Path) -> dict[str, bytes]:
    """Valid photos in unusual encodings, made from ``photo``: they must work."""
    return {"cmyk_face.jpg": face_variant(photo, "cmyk"), "gray16_face.png": face_variant(photo, "gray16")}


def file_tree(root: Path, exclude: Path | None = None) -> set[str]:
    """Relative paths of every file under ``root`` (except under ``exclude``)."""
    files = set()
    for path in root.rglob("*"):
        if exclude is not None and (path == exclude or exclude in path.parents):
            continue
        if path.is_file() or path.is_symlink():
            files.add(str(path.relative_to(root)))
    return files


#: TIFF field types used by :func:`raw_exif`: name -> (type code, struct format of one value).
_TIFF_TYPES = {"ascii": (2, "s"), "short": (3, "H"), "long": (4, "I"), "rational": (5, "II")}


def raw_exif(ifd0: dict[int, tuple[str, object]], exif_ifd: dict[int, tuple[str, object]] | None = None) -> bytes:
    """An EXIF block (``Exif\\0\\0`` + little-endian TIFF) with tags of exactly the given type and values.

    Pillow writes only well-formed tags; this writes what a broken or hostile camera would, e.g.
    ``{0x0112: ("ascii", "6")}`` (an Orientation as text) or ``{0xA210: ("short", (2, 2))}`` (a unit
    of count 2). Values: text for ``ascii``, an int or a tuple of ints for ``short``/``long``, a
    tuple of ``(numerator, denominator)`` pairs for ``rational``.
    """

    def entries(tags: dict[int, tuple[str, object]], offset: int) -> tuple[bytes, bytes]:
        table, data = b"", b""
        data_at = offset + 2 + 12 * len(tags) + 4
        for tag, (kind, value) in sorted(tags.items()):
            code, fmt = _TIFF_TYPES[kind]
            if kind == "ascii":
                payload, count = str(value).encode("latin-1") + b"\x00", len(str(value)) + 1
            else:
                values = value if isinstance(value, tuple) else (value,)
                if kind == "rational":
                    payload = b"".join(struct.pack("<II", *pair) for pair in values)
                else:
                    payload = b"".join(struct.pack("<" + fmt, v) for v in values)
                count = len(values)
            if len(payload) <= 4:
                field = payload.ljust(4, b"\x00")
            else:
                field = struct.pack("<I", data_at + len(data))
                data += payload + (b"\x00" if len(payload) % 2 else b"")
            table += struct.pack("<HHI", tag, code, count) + field
        return struct.pack("<H", len(tags)) + table + struct.pack("<I", 0), data

    sub_tags = dict(exif_ifd or {})
    tags0 = dict(ifd0)
    if sub_tags:
        tags0[0x8769] = ("long", 0)  # patched below, once the first IFD's size is known
    first, first_data = entries(tags0, 8)
    sub_offset = 8 + len(first) + len(first_data)
    if sub_tags:
        tags0[0x8769] = ("long", sub_offset)
        first, first_data = entries(tags0, 8)
    tiff = b"II*\x00" + struct.pack("<I", 8) + first + first_data
    if sub_tags:
        sub, sub_data = entries(sub_tags, sub_offset)
        tiff += sub + sub_data
    return b"Exif\x00\x00" + tiff


def jpeg_with_exif(image_rgb: np.ndarray, exif_block: bytes) -> bytes:
    """A JPEG of ``image_rgb`` with ``exif_block`` (see :func:`raw_exif`) as its APP1 segment."""
    body = jpeg_bytes(image_rgb)
    return body[:2] + b"\xff\xe1" + struct.pack(">H", len(exif_block) + 2) + exif_block + body[2:]


def junk_byte_scan_bomb(side: int = 3000, scans: int = 4000) -> bytes:
    """The scan-limit bypass of issue 16: :func:`progressive_scan_bomb` with one junk ``0x00`` byte.

    The byte goes after the marker segment that follows scan 2, where a marker must start: a
    segment walker that expects one stops there (it counts 2 scans), while libjpeg skips the byte
    ("extraneous bytes before marker") and decodes every scan (23 s of CPU for the defaults).
    """
    data = progressive_scan_bomb(side, scans)
    segments = _jpeg_segments(data)
    sos = [i for i, (marker, _, _) in enumerate(segments) if marker == 0xDA]
    _, _, after = segments[sos[1] + 1]  # the segment that follows scan 2 ends here
    return data[:after] + b"\x00" + data[after:]
