"""Depth map normalisation and writers."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from face3d_core.depthmap import (
    encode_depth_npy,
    encode_depth_png8,
    encode_depth_png16,
    normalize_depth,
    write_depth_outputs,
)
from face3d_core.errors import ExportError


def _ramp() -> np.ndarray:
    return np.tile(np.linspace(2.0, 10.0, 50, dtype=np.float32), (30, 1))


def test_normalize_maps_nearest_to_one():
    norm = normalize_depth(_ramp())
    assert norm.dtype == np.float32
    assert norm.min() == 0.0 and norm.max() == 1.0
    assert norm[0, -1] == 1.0  # largest inverse depth = nearest = 1


def test_normalize_handles_constant_nan_and_mask():
    assert np.all(normalize_depth(np.full((4, 4), 3.0)) == 0)
    depth = _ramp()
    depth[0, 0] = np.nan
    norm = normalize_depth(depth)
    assert np.isfinite(norm).all() and norm[0, 0] == 0.0
    mask = np.zeros(depth.shape, bool)
    mask[:, 10:20] = True
    norm = normalize_depth(_ramp(), mask=mask)
    assert norm[:, 10].min() == 0.0 and norm[:, 19].max() == pytest.approx(1.0)
    assert norm[:, 40].min() == 1.0  # outside the mask: clipped


def test_png8_lighter_is_nearer():
    png = cv2.imdecode(np.frombuffer(encode_depth_png8(_ramp()), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape == (30, 50)
    assert png[0, 0] == 0 and png[0, -1] == 255
    assert np.all(np.diff(png[0].astype(int)) >= 0)


def test_png16_has_more_levels_than_png8():
    png = cv2.imdecode(np.frombuffer(encode_depth_png16(_ramp()), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.max() == 65535
    assert len(np.unique(png)) == 50


def test_npy_is_raw_float32():
    depth = _ramp() * 0.123
    back = np.load(io.BytesIO(encode_depth_npy(depth)))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, depth)


def test_write_outputs(tmp_path):
    paths = write_depth_outputs(_ramp(), tmp_path / "out", "face")
    assert [p.name for p in paths] == ["face_depth.png", "face_depth16.png", "face_depth.npy"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    with pytest.raises(ExportError):
        write_depth_outputs(_ramp(), tmp_path, "../escape")
