"""Face measurements against open head scans rendered with a known camera (exact metric depth).

Each scan of ``../shared/data/3d`` is rendered (``tests/scan_render.py``: RGB + exact depth,
640 x 800 pixels, 40 degree horizontal field of view, nose tip 450 mm away). The pipeline
measures the rendered depth map; the ground truth applies the same point definitions to the
scan itself, by exact ray casting at sub-pixel positions (no depth map involved). Landmarks:
MediaPipe's and ICT-FaceKit's by vertex index, projected; Lee Perry-Smith's from YuNet on the
rendered image (the detector path). Skipped where ``../shared`` is absent.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from face3d_core.faces import Face, detect_faces
from face3d_core.geometry import Intrinsics
from face3d_core.measure import CSV_COLUMNS, MEASUREMENTS, UncertaintyModel, measure_face, write_csv
from face3d_core.reconstruct import ReconstructionParams, reconstruct_face
from tests import scan_render as sr
from tests.harness.paths import REPO_ROOT, SHARED_DIR, YUNET_PATH

SCANS_DIR = SHARED_DIR / "data" / "3d"
CAMERA = Intrinsics.from_fov(640, 800, 40.0)
DISTANCE_MM = 450.0
METRIC = ReconstructionParams(depth_kind="metric", fov_deg=40.0, smoothing_sigma=0.0, representation="points")
NAMES = [name for name, *_ in MEASUREMENTS]


@dataclass
class Rendered:
    name: str
    rgb: np.ndarray
    depth: np.ndarray  # mm, NaN off the scan
    marks: np.ndarray  # (5, 2) landmarks in pixels
    face: Face
    caster: sr.RayCaster
    vertices_cam: np.ndarray


def render_scan(name: str, yaw_deg: float = 0.0) -> Rendered:
    if not SCANS_DIR.exists():
        pytest.skip(f"{SCANS_DIR} is absent (../shared not available)")
    loader = {"mediapipe": sr.load_mediapipe, "ict": sr.load_ict, "lee_perry_smith": sr.load_lee_perry_smith}[name]
    scan = loader(SCANS_DIR)
    if scan.landmarks is not None:
        target = scan.landmarks[2]
    else:
        head = scan.vertices[scan.vertices[:, 1] > 0]
        target = head[np.argmax(head[:, 2])]  # the nose tip: the most forward point of the head
    vc = sr.place(scan, DISTANCE_MM, target=target, yaw_deg=yaw_deg)
    depth, rgb = sr.render(vc, scan.faces, CAMERA, uv=scan.uv, texture=scan.texture)
    if scan.landmarks is not None:
        marks = sr.project(
            sr.transform_points(scan, scan.landmarks, DISTANCE_MM, target=target, yaw_deg=yaw_deg), CAMERA
        )
        face = Face.from_landmarks(marks)
    else:
        if not YUNET_PATH.exists():
            pytest.skip(f"{YUNET_PATH} is absent (../shared not available)")
        faces = detect_faces(rgb, model_path=YUNET_PATH)
        assert faces, "YuNet finds the face of the rendered scan"
        face = faces[0]
        marks = face.landmarks_xy.astype(np.float64)
    return Rendered(
        name, rgb, np.where(depth > 0, depth, np.nan), marks, face, sr.RayCaster(vc, scan.faces, CAMERA), vc
    )


_CACHE: dict[tuple[str, float], Rendered] = {}


def rendered(name: str, yaw_deg: float = 0.0) -> Rendered:
    key = (name, yaw_deg)
    if key not in _CACHE:
        _CACHE[key] = render_scan(name, yaw_deg)
    return _CACHE[key]


def measure_both(r: Rendered, params: ReconstructionParams = METRIC):
    model = reconstruct_face((r.depth, r.rgb, r.face), params)
    measured = measure_face(model, fov_source="given")
    truth = measure_face(model, surface=sr.ScanSurface(r.caster, model.origin_mm), landmarks=r.marks)
    return model, measured, truth


@pytest.mark.parametrize("name", ["mediapipe", "ict", "lee_perry_smith"])
def test_metric_depth_measures_the_scan_within_1_percent(name):
    r = rendered(name)
    model, measured, truth = measure_both(r)
    assert model.scale_source == "metric"
    assert measured.scale_source == "metric" and "metric depth" in measured.scale_note
    for m, t in zip(measured.measurements, truth.measurements, strict=True):
        assert np.isfinite(t.value_mm), (m.name, t.note)
        assert m.value_mm == pytest.approx(t.value_mm, rel=0.01), m.name
        assert not m.reference and not m.note
        # a field of view given by the user and metric depth: nothing uncertain in the model
        assert m.sigma_mm == 0.0


def test_the_points_are_where_anatomy_puts_them():
    """MediaPipe and ICT name some of the same points by vertex: the found points lie on them."""
    r = rendered("mediapipe")
    _, measured, _ = measure_both(r)
    origin = reconstruct_face((r.depth, r.rgb, r.face), METRIC).origin_mm

    def off(point, vertex):
        return np.linalg.norm(measured.points[point].xyz - (r.vertices_cam[vertex] - origin))

    assert off("nose_tip", 4) < 1.5  # MediaPipe's most forward nose vertex
    assert off("nasion", 168) < 3.0  # between the eyes, on the nose ridge
    assert off("alare_right", 129) < 3.0 and off("alare_left", 358) < 3.0  # the nose wings
    ict = rendered("ict")
    _, measured, _ = measure_both(ict)
    origin = reconstruct_face((ict.depth, ict.rgb, ict.face), METRIC).origin_mm
    lm = json.loads((SCANS_DIR / "ict_facekit" / "vertex_indices.json").read_text())["idx_to_landmark_verts"]
    assert np.linalg.norm(measured.points["nose_tip"].xyz - (ict.vertices_cam[lm[30]] - origin)) < 2.0
    assert np.linalg.norm(measured.points["nasion"].xyz - (ict.vertices_cam[lm[27]] - origin)) < 5.0


def test_turned_head():
    """Yaw 20 degrees: the face plane keeps the points; the hidden side of the face is flagged."""
    r = rendered("lee_perry_smith", yaw_deg=20.0)
    _, measured, truth = measure_both(r)
    for m, t in zip(measured.measurements, truth.measurements, strict=True):
        if m.name == "face_width_eyes":
            assert "outline" in m.note  # the far side ends at the silhouette, not where it turns
            continue
        assert m.value_mm == pytest.approx(t.value_mm, rel=0.01), m.name


def test_relative_depth_gets_its_scale_from_the_eyes_only():
    """Exact inverse depth, unknown scale and shift: sizes come from the assumed 63 mm eyes."""
    r = rendered("mediapipe")
    metric = measure_face(reconstruct_face((r.depth, r.rgb, r.face), METRIC))
    inverse = np.where(np.isfinite(r.depth), 1000.0 / np.nan_to_num(r.depth, nan=2000.0), 0.5) + 0.3
    model = reconstruct_face((inverse.astype(np.float32), r.rgb, r.face), METRIC.replace(depth_kind="inverse"))
    assert model.scale_source == "eyes"
    rel = measure_face(model, fov_source="given")
    eye = rel["eye_distance"]
    assert eye.reference and eye.value_mm == pytest.approx(63.0, abs=0.01) and eye.sigma_mm == 3.8
    assert "assumed" in rel.scale_note.lower()
    k = 63.0 / metric["eye_distance"].value_mm  # the true face scaled to 63 mm between the eyes
    for name in ("nose_width", "mouth_width"):  # across the image: right up to the scale
        assert rel[name].value_mm == pytest.approx(k * metric[name].value_mm, rel=0.03)
        assert rel[name].sigma_scale_mm == pytest.approx(rel[name].value_mm * 3.8 / 63.0)
    # along the camera axis the assumed relief rules: off by more, but within the stated uncertainty
    protrusion = rel["nose_protrusion"]
    truth = k * metric["nose_protrusion"].value_mm
    assert abs(protrusion.value_mm - truth) > 0.05 * truth
    assert abs(protrusion.value_mm - truth) < 2 * protrusion.sigma_mm
    assert protrusion.sigma_depth_mm > protrusion.sigma_scale_mm


def test_metric_scale_ignores_the_63_mm_assumption():
    r = rendered("ict")
    a = measure_face(reconstruct_face((r.depth, r.rgb, r.face), METRIC))
    b = measure_face(reconstruct_face((r.depth, r.rgb, r.face), METRIC.replace(ipd_mm=50.0)))
    assert a.values_mm() == b.values_mm()
    assert a["eye_distance"].value_mm == pytest.approx(64.6, abs=0.2)  # ICT's own eyes, not 63


def test_field_of_view_uncertainty_with_metric_depth():
    r = rendered("ict")
    model = reconstruct_face((r.depth, r.rgb, r.face), METRIC)
    unc = UncertaintyModel()
    for source, rel_sd in (("default", unc.fov_rel_sd_default), ("exif_35mm", unc.fov_rel_sd_exif)):
        result = measure_face(model, fov_source=source)
        m = result["mouth_width"]
        assert m.sigma_fov_mm == pytest.approx(m.lateral_mm**2 / m.value_mm * rel_sd)
        assert m.sigma_scale_mm == 0.0
        assert m.sigma_mm == pytest.approx(np.hypot(m.sigma_fov_mm, m.sigma_depth_mm))


def test_rows_and_json():
    r = rendered("mediapipe")
    model = reconstruct_face((r.depth, r.rgb, r.face), METRIC)
    result = measure_face(model, fov_source="default")
    rows = list(csv.DictReader(io.StringIO(write_csv(result.to_rows("a.png")))))
    assert [row["measurement"] for row in rows] == NAMES
    assert set(rows[0]) == set(CSV_COLUMNS)
    assert float(rows[1]["value_mm"]) == pytest.approx(result["nose_width"].value_mm, abs=1e-3)
    doc = json.loads(json.dumps(result.to_dict("a.png"), allow_nan=False))
    assert doc["fov_source"] == "default" and len(doc["measurements"]) == len(NAMES)
    # the depth map covers the whole photo here: image pixels are depth-map pixels
    assert np.allclose(doc["landmarks_image_xy"], r.marks, atol=1e-3)
    assert doc["points"]["nose_tip"]["method"] == "refined"


def test_a_model_without_a_face_cannot_be_measured():
    r = rendered("mediapipe")
    model = reconstruct_face(r.depth, METRIC)
    with pytest.raises(ValueError, match="landmarks"):
        measure_face(model)


def _cli(args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "face3d_core.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        timeout=300,
    )


@pytest.mark.slow
def test_measure_cli_on_rendered_scans(tmp_path):
    """``face3d measure`` as a user runs it: metric depth files, landmarks files or YuNet, CSV + JSON."""
    files = {}
    for name in ("mediapipe", "ict", "lee_perry_smith"):
        r = rendered(name)
        Image.fromarray(r.rgb).save(tmp_path / f"{name}.png")
        np.save(tmp_path / f"{name}.npy", np.nan_to_num(r.depth, nan=0.0) / 1000.0)  # metres, 0 = no data
        (tmp_path / f"{name}.json").write_text(json.dumps({"landmarks_xy": r.marks.tolist()}))
        files[name] = r
    common = ["--depth-kind", "metric", "--depth-unit", "m", "--fov", 40, "--smooth", 0]
    given = ["measure", tmp_path / "mediapipe.png", tmp_path / "ict.png", *common]
    for name in ("mediapipe", "ict"):
        given += ["--depth", tmp_path / f"{name}.npy", "--landmarks", tmp_path / f"{name}.json"]
    given += ["--csv", tmp_path / "given.csv", "--json", tmp_path / "given.json"]
    done = _cli(given)
    assert done.returncode == 0, done.stderr
    assert "Eye distance" in done.stdout and "metric depth" in done.stdout
    detected = ["measure", tmp_path / "lee_perry_smith.png", "--depth", tmp_path / "lee_perry_smith.npy", *common]
    done = _cli([*detected, "--json", tmp_path / "lps.json"], env={"FACE3D_YUNET_PATH": str(YUNET_PATH)})
    assert done.returncode == 0, done.stderr
    faces = (
        json.loads((tmp_path / "given.json").read_text())["faces"]
        + json.loads((tmp_path / "lps.json").read_text())["faces"]
    )
    rows = list(csv.DictReader((tmp_path / "given.csv").open()))
    assert len(rows) == 2 * len(NAMES)
    for doc in faces:
        name = Path(doc["image"]).stem
        r = files[name]
        assert doc["scale_source"] == "metric" and doc["fov_source"] == "given"
        # the landmarks the CLI used (given, or YuNet's) are the ones the truth is computed from
        assert np.allclose(doc["landmarks_image_xy"], r.marks, atol=0.05)
        _, _, truth = measure_both(r)
        for m in doc["measurements"]:
            assert m["value_mm"] == pytest.approx(truth[m["name"]].value_mm, rel=0.01), (name, m["name"])


@pytest.mark.slow
def test_mesh_cli_relief_of_a_rendered_scan(tmp_path):
    """``face3d mesh --solid`` on the Lee Perry-Smith render: one watertight body of the asked size."""
    import trimesh

    r = rendered("lee_perry_smith")
    Image.fromarray(r.rgb).save(tmp_path / "lps.png")
    np.save(tmp_path / "lps.npy", np.nan_to_num(r.depth, nan=0.0))
    (tmp_path / "lps.json").write_text(json.dumps(r.face.to_dict()))
    out = tmp_path / "lps.stl"
    args = ["mesh", tmp_path / "lps.png", "--depth", tmp_path / "lps.npy", "--depth-kind", "metric", "--fov", 40]
    args += ["--landmarks", tmp_path / "lps.json", "--solid", "--width-mm", 70, "--base-mm", 4, "-o", out]
    done = _cli(args)
    assert done.returncode == 0, done.stderr
    assert "printable solid 70.0 x" in done.stdout
    tm = trimesh.load(out)
    assert tm.is_watertight and tm.is_winding_consistent and tm.volume > 0
    assert len(tm.split(only_watertight=False)) == 1
    assert np.ptp(tm.vertices[:, 0]) == pytest.approx(70.0, abs=1e-3)
    top = tm.vertices[tm.vertices[:, 2] > 1e-6]
    assert top[:, 2].min() == pytest.approx(4.0, abs=1e-3)


def test_path_uncertainty_known_answers():
    from face3d_core.measure import path_uncertainty

    unc = UncertaintyModel()
    across = np.array([[0.0, 0.0, 0.0], [30.0, 40.0, 0.0]])  # 50 mm across the image
    along = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 20.0]])  # 20 mm along the camera axis
    eyes = {"scale_source": "eyes", "ipd_mm": 63.0}
    s = path_uncertainty(across, **eyes)
    assert s.scale_mm == pytest.approx(50 * 3.8 / 63) and s.depth_mm == 0 and s.sigma_mm == pytest.approx(s.scale_mm)
    s = path_uncertainty(along, **eyes)
    assert s.depth_mm == pytest.approx(20 * unc.relief_rel_sd)
    assert s.sigma_mm == pytest.approx(np.hypot(20 * 3.8 / 63, 20 * unc.relief_rel_sd))
    # metric depth: only the field of view (2 % from EXIF), and only across the image
    s = path_uncertainty(across, scale_source="metric", fov_source="exif_35mm")
    assert s.scale_mm == 0 and s.fov_mm == pytest.approx(50 * 0.02) and s.depth_mm == 0
    # a straight line cut into pieces has the same uncertainty (the factors are shared)
    pieces = np.linspace(across[0], across[1], 7)
    assert path_uncertainty(pieces, **eyes).sigma_mm == pytest.approx(path_uncertainty(across, **eyes).sigma_mm)
    assert np.isnan(path_uncertainty(across[:1], **eyes).sigma_mm)
    with pytest.raises(ValueError, match="no millimetre scale"):
        path_uncertainty(across, scale_source="assumed")
