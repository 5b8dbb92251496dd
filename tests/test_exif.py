"""EXIF read defensively (issue 16, item 3): any tag of any type or count is understood or ignored.

Photos here carry EXIF written byte by byte (:func:`tests.harness.hostile_files.raw_exif`), as a
broken or hostile camera would: a ``FocalPlaneResolutionUnit`` of count 2 (it once made
``camera.fov_from_exif`` raise ``TypeError`` and broke the photo on every tab and in ``face3d
mesh``), an ``Orientation`` stored as the text ``"6"`` (applied by ``camera.py`` but not by the
decoder: a field of view of 66 degrees instead of 55), and, fuzzed, any type and count for every
tag face3d reads. The decoder and the field of view must agree on the orientation every time.
"""

from __future__ import annotations

import io
import logging
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from face3d_core.camera import photo_fov
from face3d_core.exif import (
    TAG_FOCAL_35MM,
    TAG_FOCAL_LENGTH,
    TAG_FOCAL_PLANE_UNIT,
    TAG_FOCAL_PLANE_X_RES,
    TAG_ORIENTATION,
    TAG_PIXEL_X_DIMENSION,
    orientation_of,
    read_exif,
    tag_number,
)
from face3d_core.images import decode_photo
from tests.harness.hostile_files import jpeg_with_exif, raw_exif

#: A stored 96 x 64 photo whose left half is white.
STORED = np.zeros((64, 96, 3), np.uint8)
STORED[:, :48] = 255


def photo(ifd0: dict, exif_ifd: dict | None = None) -> bytes:
    return jpeg_with_exif(STORED, raw_exif(ifd0, exif_ifd))


def test_an_orientation_stored_as_text_is_applied_by_the_decoder_and_the_field_of_view_alike():
    data = photo({TAG_ORIENTATION: ("ascii", "6")}, {TAG_FOCAL_35MM: ("short", 26)})
    decoded = decode_photo(data)
    assert decoded.image_rgb.shape == (96, 64, 3)  # turned upright: a portrait
    assert decoded.image_rgb[:48].mean() > 200 and decoded.image_rgb[48:].mean() < 50  # the white half on top
    fov = photo_fov(data)
    assert fov.image_size_wh == (64, 96) == decoded.image_rgb.shape[1::-1]
    focal_px = 26 * math.hypot(96, 64) / math.hypot(36, 24)
    assert fov.source == "exif_35mm" and fov.fov_deg == pytest.approx(math.degrees(2 * math.atan(32 / focal_px)))


def test_a_focal_plane_unit_of_count_2_is_ignored_with_one_log_line(caplog):
    sub = {
        TAG_FOCAL_LENGTH: ("rational", ((4, 1),)),
        TAG_FOCAL_PLANE_X_RES: ("rational", ((2540, 1),)),
        TAG_FOCAL_PLANE_UNIT: ("short", (2, 2)),
    }
    data = photo({}, sub)
    with caplog.at_level(logging.INFO, logger="face3d_core.exif"):
        read_exif(Image.open(io.BytesIO(data)))
    lines = [r.getMessage() for r in caplog.records if "FocalPlaneResolutionUnit" in r.getMessage()]
    assert len(lines) == 1 and "2 values" in lines[0], lines
    fov = photo_fov(data)  # the unit is not understood, so the focal plane gives no field of view
    assert fov.source == "default" and fov.fov_deg == 55.0
    assert decode_photo(data).image_rgb.shape == (64, 96, 3)


def test_such_a_photo_works_on_the_dashboard_and_in_face3d_mesh(tmp_path, capsys):
    """Before: an uncaught TypeError on the 3D view, measurements, downloads, report, Compare and in the CLI."""
    from dashboard.services.camera import Cameras
    from dashboard.services.uploads import Uploads
    from face3d_core.cache import ResultCache
    from face3d_core.cli import main

    data = photo(
        {TAG_ORIENTATION: ("short", 1)}, {TAG_FOCAL_PLANE_UNIT: ("short", (2, 2)), TAG_FOCAL_35MM: ("long", 26)}
    )
    cache = ResultCache(tmp_path / "results")
    try:
        uploads = Uploads(cache)
        meta = uploads.ingest(data, "broken exif.jpg")
        fov = Cameras(uploads).fov(meta.sha256)  # what every tab asks first
        assert fov.source == "exif_35mm" and fov.image_size_wh == (96, 64)
    finally:
        cache.close()
    (tmp_path / "broken.jpg").write_bytes(data)
    yy, xx = np.mgrid[0:64, 0:96].astype(np.float32)
    np.save(tmp_path / "depth.npy", 2.0 - ((xx - 48) ** 2 + (yy - 32) ** 2) / 3000.0)
    argv = ["mesh", tmp_path / "broken.jpg", "--depth", tmp_path / "depth.npy", "--face", "none"]
    assert main([str(a) for a in [*argv, "-o", tmp_path / "out.ply"]]) == 0, capsys.readouterr().err
    assert "from EXIF" in capsys.readouterr().out


def test_tag_values_of_any_kind():
    assert tag_number(None, "x") is None
    assert tag_number(26, "x") == 26.0 and tag_number("26", "x") == 26.0 and tag_number(b"26\x00", "x") == 26.0
    assert tag_number((26,), "x") == 26.0 and tag_number([4.5], "x") == 4.5
    for junk in ((2, 2), (), "abc", "9" * 100, float("nan"), float("inf"), True, object(), {"a": 1}):
        assert tag_number(junk, "x") is None, junk
    assert [orientation_of(v) for v in (6, "6", (8,), b"3", 0, 9, 6.5, "x", None)] == [6, 6, 8, 3, 1, 1, 1, 1, 1]


_KINDS = {
    "ascii": st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    "short": st.one_of(st.integers(0, 65535), st.lists(st.integers(0, 65535), min_size=0, max_size=4).map(tuple)),
    "long": st.one_of(st.integers(0, 2**32 - 1), st.lists(st.integers(0, 2**32 - 1), max_size=3).map(tuple)),
    "rational": st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), min_size=1, max_size=3).map(
        tuple
    ),
}
_TAG = st.sampled_from(list(_KINDS)).flatmap(lambda kind: _KINDS[kind].map(lambda value: (kind, value)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    orientation=st.one_of(st.none(), _TAG),
    sub=st.dictionaries(
        st.sampled_from(
            [TAG_FOCAL_35MM, TAG_FOCAL_LENGTH, TAG_FOCAL_PLANE_X_RES, TAG_FOCAL_PLANE_UNIT, TAG_PIXEL_X_DIMENSION]
        ),
        _TAG,
        max_size=5,
    ),
)
def test_fuzz_any_tag_of_any_type_or_count_never_breaks_a_photo(orientation, sub):
    """Decoding and the field of view never raise, and they agree on the photo's orientation."""
    ifd0 = {} if orientation is None else {TAG_ORIENTATION: orientation}
    data = photo(ifd0, sub)
    decoded = decode_photo(data)
    fov = photo_fov(data)
    assert decoded.image_rgb.shape[1::-1] == fov.image_size_wh == decoded.exif.upright_size_wh
    assert 5.0 <= fov.fov_deg <= 150.0 and math.isfinite(fov.fov_deg)
