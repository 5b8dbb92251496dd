"""Face measurements in the face's own frame, against open head scans with known answers.

The scans of ``../shared/data/3d`` are rendered by the project's renderer in the issue's head
poses and framings (:mod:`tests.harness.scan_views`): exact metric depth, and exact inverse
depth with an unknown scale and shift (a flawless relative-depth network). The truth is each
scan's own distances, measured once on its frontal view; seeds are the scan's five landmark
points, fixed once on its surface. Skipped where ``../shared`` is absent.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from face3d_core.faces import Face, detect_faces
from face3d_core.images import load_image
from face3d_core.measure import (
    CSV_COLUMNS,
    MAX_TURN_DEG,
    MEASUREMENTS,
    UncertaintyModel,
    measure_face,
    path_uncertainty,
    write_csv,
)
from face3d_core.reconstruct import ReconstructionParams, reconstruct_face
from tests.harness import scan_views as sv
from tests.harness.paths import REPO_ROOT

NAMES = [name for name, *_ in MEASUREMENTS]
#: Accuracy targets of the issue for |yaw| <= 30 and |pitch| <= 15: metric, relative (after the 63 mm eyes).
TARGET = {"metric": 0.03, "relative": 0.08}

#: The views ``make test`` checks (51 of the 99 of the issue's grid; ``benchmarks/measure_accuracy.py``
#: runs all of them): every pose at 250 px for the three scans; at 120 and 400 px the frontal view,
#: the largest turns each way, a tilt and a turn beyond the limits for Lee Perry-Smith (the real
#: scan), a turn and a tilt for the two average faces.
GRID = (
    [(name, yaw, pitch, 250) for name in sv.SCAN_NAMES for yaw, pitch in sv.POSES]
    + [
        ("lee_perry_smith", yaw, pitch, px)
        for px in (120, 400)
        for yaw, pitch in ((0, 0), (30, 0), (-30, 0), (0, -10), (45, 0))
    ]
    + [
        (name, yaw, pitch, px)
        for name in ("mediapipe", "ict")
        for px in (120, 400)
        for yaw, pitch in ((30, 0), (0, 15))
    ]
)


def _inside(yaw: float, pitch: float) -> bool:
    return abs(yaw) <= 30 and abs(pitch) <= 15


@pytest.fixture(scope="module")
def grid():
    """``(scan, yaw, pitch, px, kind) -> FaceMeasurements`` for :data:`GRID` (each view rendered once)."""
    results = {}
    for name, yaw, pitch, px in GRID:
        view = sv.render_view(name, yaw, pitch, px)
        for kind in ("metric", "relative"):
            results[name, yaw, pitch, px, kind] = measure_face(view.model(kind))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["metric", "relative"])
def test_known_answers_in_any_pose_and_framing(grid, kind):
    """Within the targets for |yaw| <= 30, |pitch| <= 15 (or refused, saying why); beyond, refused or within."""
    inside, outside, far_off = [], [], []
    for (name, yaw, pitch, px, k), result in grid.items():
        if k != kind:
            continue
        truth = sv.truth(name) if kind == "metric" else sv.relative_truth(name)
        for m in result.measurements:
            if m.reference:
                continue
            if m.refused:
                assert m.note and np.isnan(m.value_mm), (name, yaw, pitch, px, m.name)
                (inside if _inside(yaw, pitch) else outside).append(None)
                continue
            error = m.value_mm / truth[m.name] - 1.0
            case = (name, yaw, pitch, px, m.name, m.status, round(100 * error, 1), round(100 * m.sigma_mm / m.value_mm))
            # every value within its own stated 1-sigma or the target, whichever is larger: never far off
            if abs(error) > max(TARGET[kind], 1.5 * m.sigma_mm / m.value_mm):
                far_off.append(case)
            (inside if _inside(yaw, pitch) else outside).append((case, abs(error) <= TARGET[kind]))
    assert not far_off, far_off
    measured = [c for c in inside if c is not None]
    within = [ok for _, ok in measured]
    # at most 2 % of the values of the reachable poses miss the target (Lee Perry-Smith is a real,
    # slightly asymmetric face: its mirrored nose width and its nose protrusion at yaw 15)
    assert sum(within) >= 0.98 * len(within), [c for c, ok in measured if not ok]
    assert len(measured) >= 0.9 * len(inside)  # refusals stay rare where the targets apply
    assert all(c is None or c[1] for c in outside), [c for c in outside if c and not c[1]]
    beyond = [c for c in outside if c is None]
    assert len(beyond) >= 0.9 * len(outside)  # yaw 45: refused, the head is turned too far


def test_pose_is_estimated_from_the_face_itself(grid):
    """The estimated head rotation between a frontal and a turned view is the rendered one."""
    from face3d_core.face_frame import pose_rotation

    for name in sv.SCAN_NAMES:
        for kind, tolerance in (("metric", 2.5), ("relative", 4.0)):
            frontal = grid[name, 0, 0, 250, kind].points.frame
            for yaw, pitch in ((15, 0), (-30, 0), (0, 10), (0, -15)):
                turned = grid[name, yaw, pitch, 250, kind].points.frame
                seen = turned.axes.T @ frontal.axes  # frontal -> turned, in the output frame
                rendered = sv.render_view(name, yaw, pitch, 250).rotation @ sv.render_view(name, 0, 0, 250).rotation.T
                error = np.degrees(np.arccos(np.clip((np.trace(rendered.T @ seen) - 1) / 2, -1, 1)))
                assert error < tolerance, (name, kind, yaw, pitch, error)
                pose = turned.pose
                # yaw and pitch relative to the line of sight: within a few degrees of the rendered ones
                assert abs(pose.yaw_deg - yaw) < 4.5 and abs(pose.pitch_deg - pitch - frontal.pose.pitch_deg) < 4.5
    assert pose_rotation(20, 0, 0)[0, 2] > 0  # yaw > 0 turns the face towards the image's right


def test_pose_and_refusals_reach_csv_and_json(grid):
    turned = grid["lee_perry_smith", 30, 0, 250, "relative"]
    profile = grid["lee_perry_smith", 45, 0, 250, "relative"]
    rows = list(csv.DictReader(io.StringIO(write_csv(turned.to_rows("a.png") + profile.to_rows("b.png")))))
    assert set(rows[0]) == set(CSV_COLUMNS) and [r["measurement"] for r in rows[: len(NAMES)]] == NAMES
    assert float(rows[0]["yaw_deg"]) == pytest.approx(turned.pose.yaw_deg, abs=0.06)
    assert all(r["depth_fit"] == turned.relief.method for r in rows[: len(NAMES)])
    refused = [r for r in rows if r["status"] == "refused"]
    assert refused and all(r["value_mm"] == "" and r["sigma_mm"] == "" and r["note"] for r in refused)
    assert {r["image"] for r in refused} >= {"b.png"}
    doc = json.loads(json.dumps(profile.to_dict("b.png"), allow_nan=False))
    assert doc["pose"]["yaw_deg"] > 25 and "turned" in doc["pose"]["text"]
    assert f"within {MAX_TURN_DEG:.0f}°" in doc["refusal"] and all(
        m["refused"] and m["value_mm"] is None for m in doc["measurements"]
    )
    doc = json.loads(json.dumps(turned.to_dict("a.png"), allow_nan=False))
    statuses = {m["name"]: m["status"] for m in doc["measurements"]}
    assert statuses["eye_distance"] == "reference" and statuses["nose_height"] == "measured"
    assert doc["depth_fit"]["method"] in ("symmetry", "symmetry+prior") and doc["depth_fit"]["sigma_rel"] < 0.15
    # a left-right pair whose far side is hidden: the near side mirrored, said so
    mirrored = grid["ict", 30, 0, 250, "relative"]["nose_width"]
    assert mirrored.status == "mirrored" and "mirrored" in mirrored.note and mirrored.sigma_asymmetry_mm > 0


def test_the_detector_landmarks_only_seed_the_points():
    """Nose and mouth seeds placed a few millimetres off: the points found on the surface do not move."""
    view = sv.render_view("ict", 15, 0, 250)
    model = view.model("metric")
    exact = measure_face(model)
    ipd_px = float(np.linalg.norm(view.seeds_uv[1] - view.seeds_uv[0]))
    marks = view.seeds_uv.copy()
    marks[2] += [0.08 * ipd_px, -0.06 * ipd_px]  # the nose landmark off the tip
    marks[3] += [0.04 * ipd_px, 0.03 * ipd_px]  # the mouth corners off the corners
    marks[4] += [-0.03 * ipd_px, -0.02 * ipd_px]
    moved = measure_face(reconstruct_face((view.depth_mm, None, Face.from_landmarks(marks)), sv.METRIC_PARAMS,
                                          crop_box_xyxy=view.crop_box_xyxy, image_size_wh=sv.PHOTO_WH))  # fmt: skip
    for name in ("nose_tip", "nasion", "subnasale", "mouth_right", "mouth_left"):
        a, b = exact.points[name], moved.points[name]
        assert a.found and b.found and np.linalg.norm(a.xyz - b.xyz) < 0.6, name
    for name in NAMES:
        # (the mouth seeds also set the frame's up direction: a nasion a fraction of a millimetre away)
        assert moved[name].value_mm == pytest.approx(exact[name].value_mm, rel=0.02, nan_ok=True), name
    assert exact.points["mouth_left"].method == "refined"


def test_truth_points_lie_on_the_published_landmarks():
    """The points the truth is measured between sit on the vertices the scans' authors name."""
    # MediaPipe's vertex 168 and ICT's landmark 27 are the nose bridge at the eyes, a little below the dip
    for name, limits in (("mediapipe", {"nose_tip": 1.5, "nasion": 6.0, "subnasale": 3.0, "alare_right": 3.0}),
                         ("ict", {"nose_tip": 3.0, "nasion": 7.5, "subnasale": 3.0, "mouth_left": 3.0})):  # fmt: skip
        found, published = sv.truth_points(name), sv.published_points(name)
        for point, limit in limits.items():
            assert np.linalg.norm(found[point] - published[point]) < limit, (name, point)


def test_depth_fit_says_what_is_still_unknown(grid):
    """A frontal face: depth from adult proportions, about 12 %; a turned one: from its own symmetry, a few %."""
    frontal = grid["mediapipe", 0, 0, 250, "relative"]
    turned = grid["ict", 30, 0, 250, "relative"]
    assert frontal.relief.method == "prior" and frontal.relief.sigma_rel >= 0.10
    assert turned.relief.method == "symmetry" and turned.relief.sigma_rel <= 0.7 * frontal.relief.sigma_rel
    p = frontal["nose_protrusion"]
    assert p.sigma_depth_mm == pytest.approx(p.axial_mm**2 / p.value_mm * frontal.relief.sigma_rel)
    assert "adult proportions" in frontal.scale_note and "symmetric" in turned.scale_note
    assert grid["ict", 0, 0, 250, "metric"].relief.method == "metric"
    # smoothing blurs the surface: the points are placed less surely, and the ± says so
    view = sv.render_view("ict", 0, 0, 120)
    sharp = measure_face(view.model("metric"))
    smooth = measure_face(view.model("metric", sv.METRIC_PARAMS.replace(smoothing_sigma=3.0)))
    assert smooth["nose_width"].sigma_placement_mm > 2.5 * sharp["nose_width"].sigma_placement_mm > 0


def _model(depth: np.ndarray, marks: np.ndarray, kind: str = "inverse") -> object:
    return reconstruct_face(
        (depth, None, Face.from_landmarks(marks)), ReconstructionParams(depth_kind=kind, fov_deg=40)
    )


def test_refused_not_guessed_adversarial_inputs():
    view = sv.render_view("lee_perry_smith", 0, 0, 250)
    # a flat picture (a photo of a photo): no nose stands out, nothing about it is measured
    flat = measure_face(_model(np.full_like(view.depth_mm, 2.0), view.seeds_uv))
    assert flat["nose_height"].refused and flat["nose_protrusion"].refused and flat["nose_width"].refused
    assert "flat picture" in flat["nose_protrusion"].note
    # a tiny face: eyes under 20 pixels apart
    centre = view.seeds_uv.mean(axis=0)
    tiny = measure_face(_model(view.inverse_depth, view.seeds_uv), landmarks=centre + (view.seeds_uv - centre) * 0.15)
    assert tiny.refusal.startswith("the face is too small") and all(m.refused for m in tiny.measurements)
    # NaN and inf holes in the depth: measured where the surface is, never a crash
    holes = view.inverse_depth.copy()
    holes[::7, ::5] = np.nan
    holes[3::11, 2::9] = np.inf
    result = measure_face(_model(holes, view.seeds_uv))
    assert all(m.refused or np.isfinite(m.value_mm) for m in result.measurements)
    # profiles: yaw 60 to 90 degrees are refused, whatever the detector said
    for yaw in (60, 75, 90):
        side = sv.render_view("ict", yaw, 0, 250)
        for kind in ("metric", "relative"):
            r = measure_face(side.model(kind))
            assert all(m.refused for m in r.measurements), (yaw, kind, [(m.name, m.value_mm) for m in r.measurements])
            assert r.refusal


def test_metric_scale_ignores_the_63_mm_assumption(grid):
    view = sv.render_view("ict", 0, 0, 250)
    a = grid["ict", 0, 0, 250, "metric"]
    b = measure_face(view.model("metric", sv.METRIC_PARAMS.replace(ipd_mm=50.0)))
    assert a.values_mm() == pytest.approx(b.values_mm(), nan_ok=True)
    assert a["eye_distance"].value_mm == pytest.approx(64.6, abs=0.2) and not a["eye_distance"].reference


def test_relative_depth_takes_its_scale_from_the_eyes(grid):
    rel = grid["ict", 30, 0, 250, "relative"]
    eye = rel["eye_distance"]
    assert eye.reference and eye.value_mm == pytest.approx(63.0, abs=0.01) and eye.sigma_mm == 3.8
    assert "assumed" in rel.scale_note.lower()
    width = rel["mouth_width"]
    assert width.sigma_scale_mm == pytest.approx(width.value_mm * 3.8 / 63.0)


def test_field_of_view_uncertainty_with_metric_depth():
    model = sv.render_view("ict", 0, 0, 250).model("metric")
    unc = UncertaintyModel()
    for source, rel_sd in (("default", unc.fov_rel_sd_default), ("exif_35mm", unc.fov_rel_sd_exif)):
        m = measure_face(model, fov_source=source)["mouth_width"]
        assert m.sigma_fov_mm == pytest.approx(m.lateral_mm**2 / m.value_mm * rel_sd)
        assert m.sigma_scale_mm == 0.0
        assert m.sigma_mm == pytest.approx(np.sqrt(m.sigma_fov_mm**2 + m.sigma_depth_mm**2 + m.sigma_placement_mm**2))


def test_a_model_without_a_face_cannot_be_measured():
    model = reconstruct_face(sv.render_view("mediapipe", 0, 0, 120).depth_mm, sv.METRIC_PARAMS)
    with pytest.raises(ValueError, match="landmarks"):
        measure_face(model)


def test_path_uncertainty_known_answers():
    unc = UncertaintyModel()
    across = np.array([[0.0, 0.0, 0.0], [30.0, 40.0, 0.0]])  # 50 mm across the image
    along = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 20.0]])  # 20 mm along the camera axis
    eyes = {"scale_source": "eyes", "ipd_mm": 63.0}
    s = path_uncertainty(across, **eyes)
    assert s.scale_mm == pytest.approx(50 * 3.8 / 63) and s.depth_mm == 0 and s.sigma_mm == pytest.approx(s.scale_mm)
    s = path_uncertainty(along, **eyes)
    assert s.depth_mm == pytest.approx(20 * unc.relief_rel_sd)
    assert s.sigma_mm == pytest.approx(np.hypot(20 * 3.8 / 63, 20 * unc.relief_rel_sd))
    s = path_uncertainty(across, scale_source="metric", fov_source="exif_35mm")
    assert s.scale_mm == 0 and s.fov_mm == pytest.approx(50 * 0.02) and s.depth_mm == 0
    pieces = np.linspace(across[0], across[1], 7)
    assert path_uncertainty(pieces, **eyes).sigma_mm == pytest.approx(path_uncertainty(across, **eyes).sigma_mm)
    assert np.isnan(path_uncertainty(across[:1], **eyes).sigma_mm)
    with pytest.raises(ValueError, match="no millimetre scale"):
        path_uncertainty(across, scale_source="assumed")


def test_yunet_seeded_scene_turned_20_degrees(scene_photos, yunet_path):
    """The detector's own landmarks on a textured render: the same face at 0 and 20 degrees measures alike."""
    values = []
    for photo, depth_path in scene_photos:
        image = load_image(photo)
        face = detect_faces(image, model_path=yunet_path)[0]
        model = reconstruct_face((np.load(depth_path), image, face), ReconstructionParams(fov_deg=40.1))
        values.append(measure_face(model, fov_source="exif_35mm"))
    frontal, turned = values
    assert abs(frontal.pose.yaw_deg) < 6 and 13 < turned.pose.yaw_deg < 24
    for name in ("nose_height", "nose_protrusion", "mouth_width"):
        a, b = frontal[name], turned[name]
        assert not a.refused and not b.refused, name
        assert abs(a.value_mm - b.value_mm) < 2.0 * np.hypot(a.sigma_mm, b.sigma_mm), (name, a.value_mm, b.value_mm)


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
def test_measure_cli_pose_and_refusals(tmp_path):
    """``face3d measure`` as a user runs it: metric depth files and landmarks, CSV + JSON with the pose and refusals."""
    views = {"frontal": sv.render_view("ict", 0, 0, 250), "profile": sv.render_view("ict", 60, 0, 250)}
    args = ["measure"]
    width, height = sv.PHOTO_WH
    for name, view in views.items():
        x0, y0, x1, y1 = view.crop_box_xyxy
        photo_depth = np.zeros((height, width), np.float32)  # the whole photo: 0 = no data
        photo_depth[y0:y1, x0:x1] = np.nan_to_num(view.depth_mm, nan=0.0) / 1000.0  # metres
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(tmp_path / f"{name}.png")
        np.save(tmp_path / f"{name}.npy", photo_depth)
        marks = view.seeds_uv + [x0, y0]
        (tmp_path / f"{name}.json").write_text(json.dumps({"landmarks_xy": marks.tolist()}))
        args.append(tmp_path / f"{name}.png")
    for name in views:
        args += ["--depth", tmp_path / f"{name}.npy", "--landmarks", tmp_path / f"{name}.json"]
    args += ["--depth-kind", "metric", "--depth-unit", "m", "--fov", sv.FOV_DEG, "--smooth", 0]
    done = _cli([*args, "--csv", tmp_path / "m.csv", "--json", tmp_path / "m.json"])
    assert done.returncode == 0, done.stderr
    assert "Head facing the camera" in done.stdout and "refused (" in done.stdout
    faces = json.loads((tmp_path / "m.json").read_text())["faces"]
    assert abs(faces[0]["pose"]["yaw_deg"]) < 3 and faces[1]["refusal"]
    by_name = {m["name"]: m for m in faces[0]["measurements"]}
    assert by_name["nose_width"]["value_mm"] == pytest.approx(sv.truth("ict")["nose_width"], rel=0.03)
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert len(rows) == 2 * len(NAMES) and all(r["value_mm"] == "" for r in rows if r["image"].endswith("profile.png"))


@pytest.mark.slow
def test_mesh_cli_relief_of_a_rendered_scan(tmp_path):
    """``face3d mesh --solid`` on the Lee Perry-Smith render: one watertight body of the asked size."""
    import trimesh

    view = sv.render_view("lee_perry_smith", 0, 0, 250)
    h, w = view.depth_mm.shape
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / "lps.png")
    np.save(tmp_path / "lps.npy", np.nan_to_num(view.depth_mm, nan=0.0))
    (tmp_path / "lps.json").write_text(json.dumps({"landmarks_xy": view.seeds_uv.tolist()}))
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


def test_scan_views_skip_cleanly_without_shared(monkeypatch, tmp_path):
    """The harness skips (never fails) where ``../shared`` is absent."""
    monkeypatch.setattr(sv, "SCANS_DIR", tmp_path / "missing")
    sv.scan_face.cache_clear()
    try:
        with pytest.raises(pytest.skip.Exception):
            sv.scan_face("ict")
    finally:
        sv.scan_face.cache_clear()
