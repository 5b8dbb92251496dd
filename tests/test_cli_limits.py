"""The command line against extreme numbers, huge declared arrays and huge photos (issue 10, items 1 and 7).

Every bad value gives exactly one ``face3d: error:`` line (never a usage block or a traceback);
a ``.npy`` whose header declares more values than the pixel limit is refused before it is read;
a strip image is refused and the other photos of the run are still done; a large depth map is
built into a 3D model of at most the point cap (``--no-point-cap`` lifts it for the CLI).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib import format as npy_format
from PIL import Image

from face3d_core.cli import main
from face3d_core.images import MAX_PIXELS
from face3d_core.reconstruct import MAX_MODEL_POINTS
from tests.harness.hostile_files import flat_image
from tests.harness.paths import FILL_PY, MODEL, PHOTO, require


@pytest.fixture
def photo_and_depth(tmp_path):
    png = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (200, 200, 200)).save(png)
    npy = tmp_path / "depth.npy"
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)
    np.save(npy, 2.0 - ((xx - 32) ** 2 + (yy - 24) ** 2) / 2000.0)
    return png, npy


def one_error_line(argv, capsys) -> tuple[int, str]:
    """Run the CLI; return (exit code, its only stderr line), failing unless stderr is one error line."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("face3d: error: "), err
    assert "Traceback" not in err and "usage:" not in err
    return code, lines[0]


BAD_VALUES = [
    ("mesh", "--smooth", "inf"),
    ("mesh", "--smooth", "nan"),
    ("mesh", "--smooth", "-2"),
    ("mesh", "--smooth", "1e9"),
    ("mesh", "--fov", "0"),
    ("mesh", "--fov", "1e9"),
    ("mesh", "--fov", "nan"),
    ("mesh", "--depth-scale", "inf"),
    ("mesh", "--depth-scale", "0"),
    ("mesh", "--margin", "-5"),
    ("mesh", "--margin", "1e300"),
    ("mesh", "--stride", "0"),
    ("mesh", "--stride", "100000"),
    ("mesh", "--face", "-1"),
    ("mesh", "--face", "99999999999"),
    ("mesh", "--width-mm", "inf"),
    ("mesh", "--width-mm", "0"),
    ("mesh", "--base-mm", "nan"),
    ("mesh", "--relief", "1e12"),
    ("mesh", "--grid-mm", "-1"),
    ("mesh", "--format", "fbx"),
    ("measure", "--smooth", "inf"),
    ("measure", "--fov", "0"),
    ("measure", "--margin", "nan"),
    ("measure", "--depth-scale", "-1"),
    ("report", "--fov", "1e9"),
    ("report", "--smooth", "nan"),
    ("depth", "--margin", "-5"),
    ("depth", "--margin", "inf"),
    ("depth", "--face", "-3"),
    ("depth", "--face", "1e3"),
]


@pytest.mark.parametrize(("command", "option", "value"), BAD_VALUES)
def test_every_bad_number_is_one_error_line(photo_and_depth, capsys, command, option, value):
    png, _ = photo_and_depth
    code, line = one_error_line([command, png, option, value], capsys)
    assert code == 2 and option in line, line


def test_good_extreme_values_are_accepted(photo_and_depth, tmp_path, capsys):
    png, npy = photo_and_depth
    argv = ["mesh", png, "--depth", npy, "--face", "none", "--fov", "179", "--smooth", "0", "--stride", "64"]
    assert main([str(a) for a in [*argv, "-o", tmp_path / "x.ply", "--points"]]) == 0, capsys.readouterr().err


def _npy_declaring(path, shape, dtype="<f4") -> None:
    """A tiny .npy file whose header declares ``shape`` (the data is missing)."""
    with open(path, "wb") as handle:
        npy_format.write_array_header_1_0(handle, {"descr": dtype, "fortran_order": False, "shape": shape})
        handle.write(b"\0" * 64)


@pytest.mark.parametrize(
    ("shape", "dtype", "phrase"),
    [
        ((100000, 100000), "<f4", "megapixels"),
        ((1, 100000, 100000), "<f8", "megapixels"),
        ((MAX_PIXELS // 1000 + 1, 1000), "<f4", "megapixels"),
        ((64, 48), "<f4", "incomplete"),
        ((4, 5, 6), "<f4", "2D"),
        ((64, 48), "|O", "numbers"),
        ((64, 48), "<c8", "numbers"),
    ],
)
def test_depth_files_are_checked_from_their_header(
    photo_and_depth, tmp_path, capsys, monkeypatch, shape, dtype, phrase
):
    png, _ = photo_and_depth
    huge = tmp_path / "declared.npy"
    _npy_declaring(huge, shape, dtype)

    def no_load(*args, **kwargs):
        raise AssertionError("np.load read a file whose header is unacceptable")

    monkeypatch.setattr(np, "load", no_load)
    code, line = one_error_line(["mesh", png, "--depth", huge, "--face", "none"], capsys)
    assert code == 1 and phrase in line and str(huge) in line, line


def test_a_large_depth_map_is_built_up_to_the_point_cap(tmp_path, capsys):
    side = 1300  # 1.69 M pixels, more than the cap
    png = tmp_path / "big.png"
    png.write_bytes(flat_image(side, side))
    npy = tmp_path / "big.npy"
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    np.save(npy, 3.0 - ((xx - side / 2) ** 2 + (yy - side / 2) ** 2) / side**2)
    base = ["mesh", png, "--depth", npy, "--face", "none", "--points", "--smooth", "0"]
    assert main([str(a) for a in [*base, "-o", tmp_path / "capped.ply"]]) == 0
    out = capsys.readouterr().out
    capped = int(out.split(": ")[1].split(" points")[0])
    assert capped <= MAX_MODEL_POINTS and f"{MAX_MODEL_POINTS / 1e6:.3g} M point cap applied" in out, out
    assert main([str(a) for a in [*base, "--no-point-cap", "-o", tmp_path / "full.ply"]]) == 0
    out = capsys.readouterr().out
    assert int(out.split(": ")[1].split(" points")[0]) > MAX_MODEL_POINTS and "cap" not in out, out


@pytest.mark.slow
def test_a_strip_gets_one_line_and_the_good_photo_is_still_done(tmp_path, capsys, monkeypatch, fill_weights):
    require(PHOTO, FILL_PY)
    monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(fill_weights))
    monkeypatch.setenv("FACE3D_OFFLINE", "1")
    strip = tmp_path / "strip_20000x16.png"
    strip.write_bytes(flat_image(20000, 16))
    good = tmp_path / "good.png"
    good.write_bytes(PHOTO.read_bytes())
    out_dir = tmp_path / "out"
    argv = ["depth", "--full-frame", "--no-progress", "--model", MODEL, "--out-dir", out_dir, strip, good]
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("face3d: error:")]
    assert len(errors) == 1 and "strip_20000x16.png" in errors[0] and "long and narrow" in errors[0], err
    assert "1 of 2 images done" in out
    assert sorted(p.name for p in out_dir.iterdir()) == ["good_depth.npy", "good_depth.png", "good_depth16.png"]


@pytest.mark.parametrize("command", ["depth", "mesh", "measure", "report"])
def test_no_face_advice_names_only_options_the_command_has(
    command, photo_and_depth, tmp_path, monkeypatch, capsys, request
):
    """A photo without a face: one line whose advice names options of that command only (no "full-frame mode")."""
    import re

    from face3d_core.cli import build_parser
    from tests.harness.paths import YUNET_PATH

    require(YUNET_PATH)
    monkeypatch.setenv("FACE3D_YUNET_PATH", str(YUNET_PATH))
    monkeypatch.setenv("FACE3D_OFFLINE", "1")
    if command == "depth":
        monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(request.getfixturevalue("fill_weights")))
    png, npy = photo_and_depth  # a plain grey picture: no face
    argv = {
        "depth": ["depth", png, "--out-dir", tmp_path / "out", "--no-progress"],
        "mesh": ["mesh", png, "--depth", npy, "-o", tmp_path / "m.ply"],
        "measure": ["measure", png, "--depth", npy],
        "report": ["report", png, "--depth", npy, "-o", tmp_path / "r.html"],
    }[command]
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "No face was found in this photo." in line]
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    options = {opt for action in subparsers.choices[command]._actions for opt in action.option_strings}
    named = set(re.findall(r"--[a-z][a-z-]*", line))
    assert named and named <= options, (named - options, line)
    assert "mode" not in line, line  # no mode the command does not have


@pytest.mark.slow
def test_a_300_mm_relief_of_a_40_megapixel_photo_stays_under_1_gb(tmp_path):
    """Issue 16: ``face3d mesh --solid`` of a 6000x6600 photo at 300 mm was a 190 MB STL at 2.0 GB peak.

    The depth map is given (the network's working copy size, 1862x2048), so this measures the photo's
    decoding and the relief, not the network (with the network: 738 MiB, docs/reliability.md).
    """
    from tests.harness import cli_peak_rss
    from tests.harness.processes import child_env

    big = tmp_path / "flat_6000x6600.png"
    big.write_bytes(flat_image(6000, 6600))
    yy, xx = np.mgrid[0:2048, 0:1862].astype(np.float32)
    np.save(tmp_path / "depth.npy", 1.5 + np.sin(xx / 150.0) * np.cos(yy / 170.0) * 0.2)
    args = ["mesh", str(big), "--depth", str(tmp_path / "depth.npy"), "--face", "none", "--solid"]
    args += ["--width-mm", "300", "--base-mm", "20", "--relief", "2", "-o", str(tmp_path / "relief.stl")]
    rc, err, peak = cli_peak_rss.run_cli(args, cwd=tmp_path, env=child_env(FACE3D_CACHE_DIR=str(tmp_path / "c")))
    decoder = cli_peak_rss.LAST_DECODER_PEAK[0]
    assert rc == 0, err[-2000:]
    size = (tmp_path / "relief.stl").stat().st_size
    mib = 2**20
    print(f"CLI 300 mm relief: STL {size / 1e6:.0f} MB, peak {peak / mib:.0f} MiB (decoder {decoder / mib:.0f} MiB)")
    assert size <= 84 + 50 * 1_600_000
    assert peak < 2**30 and decoder < 2**30
