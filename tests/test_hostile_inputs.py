"""Hostile and odd files through the decoder (and a property-based fuzz test of it)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from face3d_core.errors import InvalidImageError
from face3d_core.images import MAX_FILE_BYTES, decode_image


def _png(arr: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **kwargs)
    return buf.getvalue()


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _declared_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


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
        "truncated.jpg": _jpeg(photo)[:300],
        "truncated.png": _png(photo)[:200],
        "png_bomb_50000x50000.png": _declared_png(50000, 50000),
        "too_big_30MB.jpg": b"\xff\xd8\xff" + b"\0" * (30 * 1024 * 1024),
        "gif_renamed.jpg": gif.getvalue(),
        "webp_renamed.jpg": webp.getvalue(),
        "svg_renamed.jpg": b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        "pdf_renamed.jpg": b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
        "random_bytes.png": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "one_pixel.png": _png(np.zeros((1, 1, 3), np.uint8)),
        "20000x10.png": _png(np.zeros((10, 20000, 3), np.uint8)),
        "png_header_only.png": b"\x89PNG\r\n\x1a\n",
        "jpeg_soi_only.jpg": b"\xff\xd8\xff\xe0",
    }


@pytest.mark.parametrize(("name", "data"), list(hostile_corpus().items()), ids=list(hostile_corpus()))
def test_hostile_file_gives_clear_message(name, data):
    with pytest.raises(InvalidImageError) as info:
        decode_image(data, name=name)
    message = info.value.user_message
    assert 10 < len(message) < 300 and "Traceback" not in message
    assert message[0].isupper() and message.endswith(".")


def test_valid_files_with_odd_modes_decode():
    cmyk = io.BytesIO()
    Image.new("CMYK", (32, 32), (10, 20, 30, 0)).save(cmyk, "JPEG")
    sixteen = _png(np.full((32, 32), 40000, np.uint16))
    for data in (cmyk.getvalue(), sixteen):
        out = decode_image(data)
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_file_size_limit_is_25_mb():
    assert MAX_FILE_BYTES == 25 * 1024 * 1024


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=4096))
def test_fuzz_random_bytes_never_crash(data):
    try:
        out = decode_image(data)
    except InvalidImageError:
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


_VALID_PNG = _png(np.random.default_rng(2).integers(0, 256, (24, 24, 3), dtype=np.uint8))
_VALID_JPEG = _jpeg(np.random.default_rng(3).integers(0, 256, (24, 24, 3), dtype=np.uint8))


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([_VALID_PNG, _VALID_JPEG]),
    edits=st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(min_value=0, max_value=10_000),
)
def test_fuzz_mutated_images_never_crash(base, edits, cut):
    """Flip bytes in / cut real JPEG and PNG files: either a clean image or InvalidImageError."""
    data = bytearray(base)
    for pos, value in edits:
        data[pos % len(data)] = value
    data = bytes(data[: max(1, len(data) - cut % len(data))])
    try:
        out = decode_image(data)
    except InvalidImageError:
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
