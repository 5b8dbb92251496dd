"""Hostile and odd files through the decoder (and a property-based fuzz test of it).

The same files through the upload callback, the running server and the CLI: ``test_hostile_files.py``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from face3d_core.errors import InvalidImageError
from face3d_core.images import MAX_FILE_BYTES, decode_image
from tests.harness.hostile_files import hostile_corpus, jpeg_bytes, png_bytes


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
    sixteen = png_bytes(np.full((32, 32), 40000, np.uint16))
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


_VALID_PNG = png_bytes(np.random.default_rng(2).integers(0, 256, (24, 24, 3), dtype=np.uint8))
_VALID_JPEG = jpeg_bytes(np.random.default_rng(3).integers(0, 256, (24, 24, 3), dtype=np.uint8))


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
