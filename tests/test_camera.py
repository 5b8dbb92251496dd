"""Field of view from EXIF: known lens geometry, rotation, resizing, fallbacks, and the CLI using it."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import trimesh
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from face3d_core.camera import photo_fov
from face3d_core.cli import main
from tests.test_cli_mesh import fit_sphere, sphere_depth

ORIENTATION, EXIF_IFD = 0x0112, 0x8769
FOCAL_LENGTH, FOCAL_35MM = 0x920A, 0xA405
PLANE_X_RES, PLANE_UNIT, PIXEL_X = 0xA20E, 0xA210, 0xA002


def jpeg(size_wh, *, orientation=None, f35=None, focal_mm=None, x_res=None, unit=None, written_w=None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    sub = exif.get_ifd(EXIF_IFD)
    if f35 is not None:
        sub[FOCAL_35MM] = f35
    if focal_mm is not None:
        sub[FOCAL_LENGTH] = IFDRational(round(focal_mm * 100000), 100000)
    if x_res is not None:
        sub[PLANE_X_RES] = IFDRational(round(x_res * 1000), 1000)
    if unit is not None:
        sub[PLANE_UNIT] = unit
    if written_w is not None:
        sub[PIXEL_X] = written_w
    buffer = io.BytesIO()
    Image.new("RGB", size_wh, (120, 130, 140)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_35mm_equivalent_on_a_3_to_2_frame_is_the_film_geometry():
    # a 36 mm lens on a 36 x 24 mm frame: horizontal FOV 2 atan(18 / 36) = 53.130 degrees
    fov = photo_fov(jpeg((360, 240), f35=36))
    assert fov.source == "exif_35mm"
    assert fov.fov_deg == pytest.approx(53.1301, abs=1e-3)
    # the textbook value of a 50 mm lens on full frame: 39.6 degrees horizontally
    assert photo_fov(jpeg((600, 400), f35=50)).fov_deg == pytest.approx(39.60, abs=0.01)
    assert "from EXIF" in fov.describe() and "36 mm" in fov.describe()


def test_35mm_equivalent_uses_the_diagonal_for_other_aspect_ratios():
    # 4:3 photo, 26 mm equivalent (a phone's main camera): f_px = 26 * diagonal / 43.27
    fov = photo_fov(jpeg((400, 300), f35=26))
    focal_px = 26 * 500 / math.hypot(36, 24)
    assert fov.focal_px == pytest.approx(focal_px)
    assert fov.fov_deg == pytest.approx(math.degrees(2 * math.atan(200 / focal_px)), abs=1e-9)
    assert 65 < fov.fov_deg < 70


def test_rotation_swaps_width_and_height():
    # stored 360 x 240 but EXIF orientation 6: the upright photo is 240 wide -> 2 atan(12 / 36)
    fov = photo_fov(jpeg((360, 240), orientation=6, f35=36))
    assert fov.image_size_wh == (240, 360)
    assert fov.fov_deg == pytest.approx(math.degrees(2 * math.atan(12 / 36)), abs=1e-3)
    assert photo_fov(jpeg((360, 240), orientation=3, f35=36)).fov_deg == pytest.approx(53.1301, abs=1e-3)


def test_focal_length_with_focal_plane_resolution():
    # 4 mm lens, 6.4 mm wide sensor written as 640 px: 100 px/mm = 2540 px/inch -> f = 400 px
    fov = photo_fov(jpeg((640, 480), focal_mm=4.0, x_res=2540, unit=2, written_w=640))
    assert fov.source == "exif_focal_plane"
    assert fov.focal_px == pytest.approx(400.0, rel=1e-6)
    assert fov.fov_deg == pytest.approx(math.degrees(2 * math.atan(320 / 400)), abs=1e-6)
    # the same camera wrote 1280 px, the file was halved afterwards: same field of view
    halved = photo_fov(jpeg((640, 480), focal_mm=4.0, x_res=5080, unit=2, written_w=1280))
    assert halved.fov_deg == pytest.approx(fov.fov_deg, abs=1e-6)
    # centimetres as the unit
    assert photo_fov(jpeg((640, 480), focal_mm=4.0, x_res=1000, unit=3)).focal_px == pytest.approx(400.0)


def test_the_35mm_tag_wins_when_both_are_present():
    fov = photo_fov(jpeg((360, 240), f35=36, focal_mm=4.0, x_res=2540, unit=2))
    assert fov.source == "exif_35mm"


def test_given_fov_wins_and_default_says_why(tmp_path):
    data = jpeg((360, 240), f35=36)
    given = photo_fov(data, 70.0)
    assert given.source == "given" and given.fov_deg == 70.0
    assert given.focal_px == pytest.approx(180 / math.tan(math.radians(35)))
    path = tmp_path / "plain.png"
    Image.new("RGB", (64, 48)).save(path)
    default = photo_fov(path)
    assert default.source == "default" and default.fov_deg == 55.0
    assert "no focal length in EXIF" in default.describe()
    assert photo_fov(None).source == "default"


def test_broken_or_implausible_tags_fall_back():
    assert photo_fov(jpeg((360, 240), f35=1)).source == "default"  # 175 degrees: not a camera
    assert photo_fov(jpeg((640, 480), focal_mm=4.0, x_res=2540, unit=1)).source == "default"  # unit "none"
    assert photo_fov(b"not an image").source == "default"


def test_crop_fov_from_the_focal_length():
    fov = photo_fov(jpeg((360, 240), f35=36))  # f = 360 px
    assert fov.crop_fov_deg(360) == pytest.approx(fov.fov_deg)
    assert fov.crop_fov_deg(120) == pytest.approx(math.degrees(2 * math.atan(60 / 360)))


def test_mesh_cli_takes_the_fov_from_exif(tmp_path, capsys):
    """A metric sphere rendered with a 60 degree camera stays a sphere only with the EXIF field of view."""
    depth = sphere_depth(fov=60.0)  # 320 x 240
    npy = tmp_path / "sphere.npy"
    np.save(npy, depth)
    focal_px = 160 / math.tan(math.radians(30))  # 60 degrees over 320 px
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg((320, 240), focal_mm=focal_px / 100, x_res=1000, unit=3))  # 100 px/mm
    out = tmp_path / "s.ply"
    argv = ["mesh", photo, "--depth", npy, "--depth-kind", "metric", "--smooth", 0, "--face", "none", "-o", out]
    assert main([str(a) for a in argv]) == 0
    stdout = capsys.readouterr().out
    assert "FOV 60° from EXIF" in stdout
    _, radius, residual = fit_sphere(trimesh.load(out, process=False).vertices)
    assert radius == pytest.approx(60.0, rel=1e-4) and np.abs(residual).max() < 0.01
    # --fov overrides EXIF (and bends the sphere)
    assert main([str(a) for a in [*argv, "--fov", 45]]) == 0
    assert "FOV 45° (given)" in capsys.readouterr().out
    _, _, residual = fit_sphere(trimesh.load(out, process=False).vertices)
    assert np.abs(residual).max() > 0.5
