"""Output names of the command line never collide, and no output overwrites an input (issue 10, item 8).

``face3d depth x.jpg x.png x_1.jpg`` once reported 3 of 3 done while x.png's maps had been
overwritten by x_1.jpg's. The rules, checked here with a stand-in network whose depth is the
photo's grey level (so each output file shows which photo it came from):

* one run never writes two results to one name: photos with the same stem keep their
  extension in it (``x_jpg``, ``x_png``), and names still equal get ``_2``, ``_3`` ...;
* an output never replaces one of the run's inputs (``face3d mesh`` and ``face3d measure``
  refuse, naming the file; ``face3d depth`` picks another name);
* files left by an earlier run are replaced (documented in docs/usage.md).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from PIL import Image

from face3d_core.cli import main
from face3d_core.cli.outputs import unique_stems


class GreyEstimator:
    """Depth = the photo's grey level: an output file tells which photo it came from."""

    device = types.SimpleNamespace(type="cpu")
    precision = "fp32"
    loaded = True

    def load(self, progress=None):
        return None

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        if image_rgb.mean() == 77:  # the photo that trips a bug in this test
            raise RuntimeError("resize assertion failed\nsecond line of a C++ message")
        return image_rgb[..., 0].astype(np.float32)


@pytest.fixture
def grey_network(monkeypatch):
    monkeypatch.setattr("face3d_core.models.estimator.get_estimator", lambda *a, **k: GreyEstimator())


def _photo(path, grey: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (40, 30), (grey, grey, grey))
    image.save(path, "JPEG" if path.suffix.lower() in {".jpg", ".jpeg"} else "PNG", quality=100)


def _grey_of(npy) -> int:
    return int(round(float(np.load(npy).mean())))


def _depth(argv, capsys) -> tuple[int, str, str]:
    code = main(["depth", "--full-frame", "--no-progress", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def test_same_stems_keep_their_extension_and_nothing_is_overwritten(tmp_path, grey_network, capsys):
    photos = {"x.jpg": 50, "x.png": 100, "x_1.jpg": 150}
    for name, grey in photos.items():
        _photo(tmp_path / name, grey)
    out_dir = tmp_path / "out"
    code, out, err = _depth(["--out-dir", out_dir, *(tmp_path / n for n in photos)], capsys)
    assert code == 0 and "3 of 3 images done" in out, err
    written = sorted(p.name for p in out_dir.iterdir())
    assert len(written) == 9, written
    for stem, grey in (("x_jpg", 50), ("x_png", 100), ("x_1", 150)):
        assert _grey_of(out_dir / f"{stem}_depth.npy") == grey, stem
        assert {f"{stem}_depth.png", f"{stem}_depth16.png"} <= set(written)


def test_names_that_still_clash_get_numbers(tmp_path, grey_network, capsys):
    _photo(tmp_path / "a" / "x.jpg", 10)
    _photo(tmp_path / "b" / "x.jpg", 20)
    _photo(tmp_path / "X.JPG", 30)  # the same name on a case-insensitive disk
    _photo(tmp_path / "x_jpg.png", 40)  # its own stem is another photo's first choice
    inputs = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "X.JPG", tmp_path / "x_jpg.png"]
    stems = unique_stems(inputs)
    assert len({s.casefold() for s in stems}) == 4, stems
    out_dir = tmp_path / "out"
    code, _, err = _depth(["--out-dir", out_dir, *inputs], capsys)
    assert code == 0, err
    greys = sorted(_grey_of(p) for p in out_dir.glob("*_depth.npy"))
    assert greys == [10, 20, 30, 40]
    assert unique_stems([tmp_path / "x.jpg", tmp_path / "y.png"]) == ["x", "y"]  # no clash: plain stems


def test_an_output_never_replaces_an_input(tmp_path, grey_network, capsys):
    out_dir = tmp_path / "out"
    _photo(tmp_path / "a.jpg", 60)
    _photo(out_dir / "a_depth.png", 90)  # an input where a.jpg's map would go
    before = (out_dir / "a_depth.png").read_bytes()
    code, _, err = _depth(["--out-dir", out_dir, tmp_path / "a.jpg", out_dir / "a_depth.png"], capsys)
    assert code == 0, err
    assert (out_dir / "a_depth.png").read_bytes() == before
    greys = {p.name: _grey_of(p) for p in out_dir.glob("*_depth.npy")}
    assert sorted(greys.values()) == [60, 90] and len(greys) == 2, greys


def test_an_earlier_runs_files_are_replaced(tmp_path, grey_network, capsys):
    _photo(tmp_path / "x.jpg", 50)
    out_dir = tmp_path / "out"
    assert _depth(["--out-dir", out_dir, tmp_path / "x.jpg"], capsys)[0] == 0
    _photo(tmp_path / "x.jpg", 120)
    assert _depth(["--out-dir", out_dir, tmp_path / "x.jpg"], capsys)[0] == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["x_depth.npy", "x_depth.png", "x_depth16.png"]
    assert _grey_of(out_dir / "x_depth.npy") == 120


def test_an_unexpected_error_on_one_photo_is_one_line_and_the_others_are_done(tmp_path, grey_network, capsys):
    _photo(tmp_path / "bad.png", 77)
    _photo(tmp_path / "good.png", 30)
    code, out, err = _depth(["--out-dir", tmp_path / "out", tmp_path / "bad.png", tmp_path / "good.png"], capsys)
    assert code == 1 and "1 of 2 images done" in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("face3d: error: ") and "bad.png" in lines[0], err
    assert "RuntimeError" in lines[0] and "Traceback" not in err
    assert _grey_of(tmp_path / "out" / "good_depth.npy") == 30


def _depth_file(path) -> None:
    yy, xx = np.mgrid[0:30, 0:40].astype(np.float32)
    np.save(path, 2.0 - ((xx - 20) ** 2 + (yy - 15) ** 2) / 400.0)


def test_mesh_refuses_to_overwrite_its_own_inputs(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    _photo(photo, 200)
    depth = tmp_path / "photo_depth.npy"
    _depth_file(depth)
    before = photo.read_bytes(), depth.read_bytes()
    base = ["mesh", photo, "--depth", depth, "--face", "none", "--smooth", "0"]
    # a textured OBJ named after the photo would write photo.png over the photo
    code = main([str(a) for a in [*base, "--format", "obj", "--texture", "-o", tmp_path / "photo.obj"]])
    _, err = capsys.readouterr()
    assert code == 1 and "photo.png" in err and "overwrite" in err, err
    odd = tmp_path / "depth.ply"  # a depth map under another extension, and -o the same file
    with open(odd, "wb") as handle:
        np.save(handle, np.load(depth))
    odd_before = odd.read_bytes()
    code = main([str(a) for a in ["mesh", photo, "--depth", odd, "--face", "none", "-o", odd]])
    _, err = capsys.readouterr()
    assert code == 1 and "overwrite" in err and "depth.ply" in err, err
    assert (photo.read_bytes(), depth.read_bytes(), odd.read_bytes()) == (*before, odd_before)
    assert not (tmp_path / "photo.obj").exists()


def test_measure_refuses_one_file_for_two_outputs_or_an_input(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FACE3D_OFFLINE", "1")  # refused before any work: nothing to download
    photo = tmp_path / "photo.png"
    _photo(photo, 200)
    same = tmp_path / "m.txt"
    code = main(["measure", str(photo), "--csv", str(same), "--json", str(same)])
    _, err = capsys.readouterr()
    assert code == 1 and "m.txt" in err and not same.exists(), err
    code = main(["measure", str(photo), "--csv", str(photo)])
    _, err = capsys.readouterr()
    assert code == 1 and "overwrite" in err, err
    assert Image.open(photo).size == (40, 30)


def test_report_refuses_to_overwrite_a_photo(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FACE3D_OFFLINE", "1")  # refused before any work: nothing to download
    photo = tmp_path / "photo.png"
    _photo(photo, 200)
    before = photo.read_bytes()
    code = main(["report", str(photo), "-o", str(photo)])
    _, err = capsys.readouterr()
    assert code == 1 and "overwrite" in err and photo.read_bytes() == before, err
