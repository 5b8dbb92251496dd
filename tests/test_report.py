"""The shared report: contents, size, escaping, the embedded Plotly, and ``face3d report``.

The browser side (the file opens offline and draws its plots) is tested in
``tests/e2e/test_measure_share.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from face3d_core.camera import photo_fov
from face3d_core.compare import compare_faces
from face3d_core.faces import detect_faces
from face3d_core.images import load_image
from face3d_core.measure import MEASUREMENTS, measure_face
from face3d_core.pipeline import DepthRef, FaceDepth
from face3d_core.reconstruct import ReconstructionParams, reconstruct_face
from face3d_core.report import (
    ReportFace,
    build_report,
    depth_nearness,
    side_by_side_rows,
    value_text,
)
from tests.harness.processes import child_env

EVIL = '<script>alert("x")</script></script><img src=x onerror=alert(1)> & "quotes".jpg'


def _dome_face(name: str = "dome.png") -> ReportFace:
    """A face without landmarks (a smooth dome): no measurements, but every figure."""
    yy, xx = np.mgrid[0:160, 0:128].astype(np.float32)
    depth = 1.0 + np.sqrt(np.clip(1 - ((xx - 64) / 50) ** 2 - ((yy - 80) / 70) ** 2, 0, None))
    image = np.dstack([(xx * 2).astype(np.uint8), (yy * 1.5).astype(np.uint8), np.full_like(xx, 90, np.uint8)])
    model = reconstruct_face((depth, image, None), ReconstructionParams(mask_mode="foreground", color_mode="photo"))
    return ReportFace(name, image, depth_nearness(depth), model, None, photo_fov(None), "test depth", "no face here")


def _figures(html: str) -> list[dict]:
    blocks = re.findall(r'<script type="application/json" id="face3d-fig-\d+">(.*?)</script>', html, re.S)
    return [json.loads(block) for block in blocks]


def test_user_text_is_escaped_everywhere():
    html = build_report([_dome_face(EVIL)], title=EVIL)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html  # shown as text, in the title and heading
    # the figure blocks hold no "<" at all, so nothing in them can close their <script>
    blocks = re.findall(r'id="face3d-fig-\d+">(.*?)</script>', html, re.S)
    assert blocks and all("<" not in block and ">" not in block for block in blocks)
    assert "No measurements: no face here" in html


def test_one_face_report_contents():
    html = build_report([_dome_face()])
    figs = _figures(html)
    assert [f["data"][0]["type"] for f in figs] == ["heatmap", "mesh3d"]  # depth map, 3D model
    assert figs[1]["layout"]["scene"]["aspectmode"] == "data"
    assert 'src="data:image/jpeg;base64,' in html  # the photo crop
    assert "<title>face3d report: dome.png</title>" in html
    assert "Measurements side by side" not in html  # one face: no comparison


def test_plotly_is_embedded_once_and_unpacks_to_plotly():
    html = build_report([_dome_face(), _dome_face("second.png")])
    packed = re.findall(r'id="face3d-plotly-gz">([A-Za-z0-9+/=]+)</script>', html)
    assert len(packed) == 1
    source = gzip.decompress(base64.b64decode(packed[0])).decode("utf-8")
    from plotly.offline import get_plotlyjs

    assert source == get_plotlyjs()
    assert "DecompressionStream" in html and "https://" not in html.split('id="face3d-plotly-gz"')[0]
    plain = build_report([_dome_face()], compress_js=False)
    assert 'id="face3d-plotly-gz"' not in plain and get_plotlyjs()[:2000] in plain
    assert len(plain) - len(build_report([_dome_face()])) > 2_500_000


def test_side_by_side_rows_say_what_is_missing():
    rows = side_by_side_rows([None, None])
    assert [label for label, _ in rows] == ["Head pose (yaw / pitch)"] + [f"{m[1]} (mm)" for m in MEASUREMENTS]
    assert all(cells == ["–", "–"] for _, cells in rows)


def test_depth_nearness_of_inverse_and_metric_depth():
    inverse = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    assert np.allclose(depth_nearness(inverse), [[0, 1 / 3], [2 / 3, 1]])
    metric = np.array([[400.0, 300.0], [200.0, 100.0]], np.float32)  # mm along the axis: smaller = nearer
    assert np.allclose(depth_nearness(metric, "metric"), [[0, 1 / 3], [2 / 3, 1]])


@pytest.fixture(scope="module")
def scene_faces(scene_photos, yunet_path):
    """The two rendered scan photos with their true depth, reconstructed and measured as the CLI does."""
    faces, depths = [], []
    for photo, depth_path in scene_photos:
        image = load_image(photo)
        depth = np.load(depth_path)
        face = detect_faces(image, model_path=yunet_path)[0]
        face_depth = FaceDepth(depth, image, (0, 0, image.shape[1], image.shape[0]), face, "midas_v21_small_256",
                               (image.shape[1], image.shape[0]), (face,), 0)  # fmt: skip
        fov = photo_fov(photo)
        model = reconstruct_face(face_depth, ReconstructionParams(fov_deg=fov.fov_deg, color_mode="photo"))
        faces.append(
            ReportFace(photo.name, image, depth_nearness(depth), model, measure_face(model, fov_source=fov.source), fov)
        )
        depths.append(face_depth)
    refs = [DepthRef(hashlib.sha256(bytes([i])).hexdigest(), "midas_v21_small_256", 0) for i in range(2)]
    comparison = compare_faces(refs, [f.name for f in faces], lambda ref, progress=None: depths[refs.index(ref)])
    return faces, comparison


def test_two_face_comparison_report_contents_and_size(scene_faces):
    faces, comparison = scene_faces
    networks = ["MiDaS v2.1 small (256)", "Depth Anything V2 Small (518) · Fast (bf16)"]
    faces = [dataclasses.replace(face, depth_model=net) for face, net in zip(faces, networks, strict=True)]
    html = build_report(faces, comparison=comparison, pair=(1, 0))
    size_mb = len(html.encode("utf-8")) / 1e6
    print(f"report of a 2-face comparison: {size_mb:.2f} MB")
    assert size_mb < 5.0
    for section in ("Measurements side by side", "Depth profiles", "RMS difference"):
        assert section in html
    # the chosen pair, second minus first; every column of the side-by-side table says its network
    assert f"Difference: {faces[1].name} minus {faces[0].name}" in html
    side = html[html.index('id="side-by-side"') : html.index('id="profiles"')]
    assert all(f'<div class="muted">{net}</div>' in side for net in networks)
    figs = _figures(html)
    kinds = [f["data"][0]["type"] for f in figs]
    assert kinds.count("mesh3d") == 2 and kinds.count("heatmap") == 3 and kinds.count("scatter") == 1
    for face in faces:
        for m in face.measurements.measurements:
            assert value_text(m) in html
    assert html.count("scale reference: assumed 63 mm") == 2
    assert "FOV 40° from EXIF (35 mm equivalent 37 mm)" in html
    # the measured points and distances are drawn on each 3D model
    model_figs = [f for f in figs if f["data"][0]["type"] == "mesh3d"]
    assert all(len(f["data"]) == 3 and "nose tip" in f["data"][1]["text"] for f in model_figs)
    # the head pose of each face, and how the comparison aligned them (in 3D, as if facing the camera)
    assert "Head facing the camera" in html and "Head turned" in html and "Head pose (yaw / pitch)" in html
    assert html.count("compared as if it faced the camera") == 2
    # the measured points are drawn on the model as shown (its own relief), not floating beside it
    from face3d_core.surface import DepthSurface

    for face, fig in zip(faces, model_figs, strict=True):
        drawn = np.c_[fig["data"][1]["x"], fig["data"][1]["y"], fig["data"][1]["z"]]
        surface = DepthSurface(face.model, strict=False)
        on_model = surface.points(surface.project(drawn))
        ok = np.isfinite(on_model).all(axis=1)
        assert ok.sum() >= 8 and np.median(np.linalg.norm(on_model[ok] - drawn[ok], axis=1)) < 1.0


def _run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "face3d_core.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=child_env(),
    )


def test_cli_report_of_two_photos_with_depth_files(scene_photos, yunet_path, tmp_path, faces_dir):
    (a, da), (b, db) = scene_photos
    out = tmp_path / "out" / "report.html"
    result = _run_cli("report", a, b, "--depth", da, "--depth", db, "-o", out, "--title", "Two <scans>", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "report of 2 face(s) with a comparison" in result.stdout
    html = out.read_text(encoding="utf-8")
    assert "<title>Two &lt;scans&gt;</title>" in html and '<section id="difference">' in html
    assert "given depth map lee_perry_smith_yaw0_depth.npy" in html and "FOV 40° from EXIF" in html
    assert out.stat().st_size < 5_000_000
    # a photo without a face: one error line, the others still reported, exit code 1
    bad = faces_dir / "skimage_coffee_noface.png"
    result = _run_cli("report", a, bad, "--depth", da, "--depth", da, "-o", tmp_path / "r2.html", cwd=tmp_path)
    assert result.returncode == 1
    assert "skimage_coffee_noface.png" in result.stderr and "--face none" in result.stderr
    assert "report of 1 face(s)" in result.stdout and (tmp_path / "r2.html").is_file()


def test_cli_report_needs_as_many_depth_files_as_photos(scene_photos, tmp_path):
    (a, da), (b, _) = scene_photos
    result = _run_cli("report", a, b, "--depth", da, "-o", tmp_path / "r.html", cwd=tmp_path)
    assert result.returncode == 1 and "once per photo" in result.stderr
    assert not (tmp_path / "r.html").exists()
