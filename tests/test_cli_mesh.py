"""``face3d mesh``: known answers through the whole command (metric sphere), formats, user errors."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from face3d_core.cli import main
from face3d_core.geometry import Intrinsics


def sphere_depth(h: int = 240, w: int = 320, fov: float = 60.0, center=(10.0, -5.0, 400.0), radius: float = 60.0):
    """Depth (mm along the axis) of a sphere's near side; 0 where the ray misses (a sensor's "no data")."""
    intr = Intrinsics.from_fov(w, h, fov)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], axis=-1)
    c = np.asarray(center)
    a = (rays * rays).sum(-1)
    b = -2.0 * (rays @ c)
    disc = b * b - 4 * a * (c @ c - radius**2)
    with np.errstate(invalid="ignore"):
        z = np.where(disc >= 0, (-b - np.sqrt(disc)) / (2 * a), 0.0)
    return z.astype(np.float32)


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares sphere: |p|^2 = 2 p.c + (r^2 - |c|^2). Returns centre, radius, residuals."""
    p = np.asarray(points, np.float64)
    a = np.hstack([2 * p, np.ones((len(p), 1))])
    sol, *_ = np.linalg.lstsq(a, (p * p).sum(1), rcond=None)
    center = sol[:3]
    radius = float(np.sqrt(sol[3] + center @ center))
    return center, radius, np.linalg.norm(p - center, axis=1) - radius


@pytest.fixture
def sphere_files(tmp_path):
    depth = sphere_depth()
    npy = tmp_path / "sphere.npy"
    np.save(npy, depth)
    png = tmp_path / "photo.png"
    Image.fromarray(np.full(depth.shape + (3,), 200, np.uint8)).save(png)
    return png, npy


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_metric_sphere_stays_a_sphere(sphere_files, tmp_path, capsys):
    png, npy = sphere_files
    out = tmp_path / "sphere.ply"
    code, stdout, stderr = run(
        [
            "mesh",
            png,
            "--depth",
            npy,
            "--depth-kind",
            "metric",
            "--fov",
            60,
            "--smooth",
            0,
            "--face",
            "none",
            "-o",
            out,
        ],
        capsys,
    )
    assert code == 0, stderr
    assert "metric" in stdout
    mesh = trimesh.load(out, process=False)
    center, radius, residual = fit_sphere(mesh.vertices)
    assert radius == pytest.approx(60.0, rel=1e-4)
    assert np.abs(residual).max() < 0.01  # mm
    assert len(mesh.faces) > 1000
    # the near side faces the viewer (+Z)
    assert (mesh.vertex_normals[:, 2] > 0).mean() > 0.95


def test_wrong_fov_bends_the_sphere(sphere_files, tmp_path, capsys):
    """The back-projection really uses --fov: a wrong field of view is no longer a sphere."""
    png, npy = sphere_files
    out = tmp_path / "wrong.ply"
    code, _, stderr = run(
        [
            "mesh",
            png,
            "--depth",
            npy,
            "--depth-kind",
            "metric",
            "--fov",
            30,
            "--smooth",
            0,
            "--face",
            "none",
            "-o",
            out,
        ],
        capsys,
    )
    assert code == 0, stderr
    _, _, residual = fit_sphere(trimesh.load(out, process=False).vertices)
    assert np.abs(residual).max() > 0.5


def test_depth_units(sphere_files, tmp_path, capsys):
    png, npy = sphere_files
    metres = tmp_path / "metres.npy"
    np.save(metres, np.load(npy) / 1000.0)
    out = tmp_path / "m.ply"
    code, _, stderr = run(
        [
            "mesh",
            png,
            "--depth",
            metres,
            "--depth-kind",
            "metric",
            "--depth-unit",
            "m",
            "--fov",
            60,
            "--smooth",
            0,
            "--face",
            "none",
            "-o",
            out,
        ],
        capsys,
    )
    assert code == 0, stderr
    _, radius, _ = fit_sphere(trimesh.load(out, process=False).vertices)
    assert radius == pytest.approx(60.0, rel=1e-4)


@pytest.mark.parametrize("fmt", ["ply", "obj", "glb", "stl"])
def test_every_format_is_readable(sphere_files, tmp_path, capsys, fmt):
    png, npy = sphere_files
    out = tmp_path / f"model.{fmt}"
    code, stdout, stderr = run(
        ["mesh", png, "--depth", npy, "--depth-kind", "metric", "--fov", 60, "--face", "none", "-o", out], capsys
    )
    assert code == 0, stderr
    assert str(out) in stdout
    loaded = trimesh.load(out, force="mesh")
    assert len(loaded.faces) > 1000
    width = np.ptp(loaded.vertices, axis=0)[0] * (1000.0 if fmt == "glb" else 1.0)  # glTF is in metres
    visible = 2 * 60.0 * np.sqrt(1 - (60.0 / np.linalg.norm([10.0, -5.0, 400.0])) ** 2)  # silhouette diameter
    # smoothing and the removal of steep rim pixels trim the outline a little, never more than 10 %
    assert 0.9 * visible < width <= visible


def test_textured_obj_writes_three_files(sphere_files, tmp_path, capsys):
    png, npy = sphere_files
    out = tmp_path / "tex.obj"
    code, _, stderr = run(
        ["mesh", png, "--depth", npy, "--depth-kind", "metric", "--face", "none", "--texture", "-o", out], capsys
    )
    assert code == 0, stderr
    assert (tmp_path / "tex.mtl").exists() and (tmp_path / "tex.png").exists()


def test_points(sphere_files, tmp_path, capsys):
    png, npy = sphere_files
    out = tmp_path / "cloud.ply"
    code, stdout, stderr = run(
        ["mesh", png, "--depth", npy, "--depth-kind", "metric", "--face", "none", "--points", "--stride", 2, "-o", out],
        capsys,
    )
    assert code == 0, stderr
    cloud = trimesh.load(out)
    assert isinstance(cloud, trimesh.PointCloud)
    n_valid = int((np.load(npy)[::2, ::2] > 0).sum())
    assert 0.8 * n_valid <= len(cloud.vertices) <= n_valid
    assert f"{len(cloud.vertices)} points" in stdout


def test_inverse_depth_with_a_face(faces_dir, yunet_path, tmp_path, capsys, monkeypatch):
    """A relative inverse depth map of a real photo: the face is found and the model is in mm."""
    monkeypatch.setenv("FACE3D_YUNET_PATH", str(yunet_path))
    photo = faces_dir / "skimage_astronaut.png"
    h, w = 512, 512
    y, x = np.mgrid[0:h, 0:w]
    # a smooth dome centred on the face (relative inverse depth: larger = nearer)
    dome = (10.0 - ((x - 222.0) ** 2 + (y - 120.0) ** 2) / 4000.0).astype(np.float32)
    npy = tmp_path / "rel.npy"
    np.save(npy, dome)
    out = tmp_path / "face.glb"
    code, stdout, stderr = run(["mesh", photo, "--depth", npy, "-o", out], capsys)
    assert code == 0, stderr
    assert "63 mm between the eyes" in stdout
    assert trimesh.load(out, force="mesh").vertices.shape[0] > 100


class TestErrors:
    def test_missing_image(self, tmp_path, capsys):
        code, _, stderr = run(["mesh", tmp_path / "nope.jpg", "-o", tmp_path / "x.ply"], capsys)
        assert code == 1
        assert stderr.startswith("face3d: error: ") and "Traceback" not in stderr

    def test_bad_depth_file(self, sphere_files, tmp_path, capsys):
        png, _ = sphere_files
        bad = tmp_path / "bad.npy"
        bad.write_bytes(b"not numpy")
        code, _, stderr = run(["mesh", png, "--depth", bad, "--face", "none"], capsys)
        assert code == 1 and str(bad) in stderr
        cube = tmp_path / "cube.npy"
        np.save(cube, np.zeros((3, 4, 5)))
        code, _, stderr = run(["mesh", png, "--depth", cube, "--face", "none"], capsys)
        assert code == 1 and "2D" in stderr

    def test_no_face_says_how_to_go_on(self, sphere_files, yunet_path, capsys, monkeypatch):
        monkeypatch.setenv("FACE3D_YUNET_PATH", str(yunet_path))
        png, npy = sphere_files
        code, _, stderr = run(["mesh", png, "--depth", npy, "--depth-kind", "metric"], capsys)
        assert code == 1
        assert "No face" in stderr and "--face none" in stderr and "Traceback" not in stderr

    def test_points_cannot_be_stl(self, sphere_files, tmp_path, capsys):
        png, npy = sphere_files
        code, _, stderr = run(
            ["mesh", png, "--depth", npy, "--face", "none", "--points", "--format", "stl", "-o", tmp_path / "p.stl"],
            capsys,
        )
        assert code == 1 and "point cloud" in stderr

    def test_usage_errors_exit_2(self, sphere_files, capsys):
        png, _ = sphere_files
        bad = (["mesh", png, "--face", "-1"], ["mesh", png, "--smooth", "-2"], ["mesh", png, "--format", "fbx"])
        for argv in bad:
            with pytest.raises(SystemExit) as info:
                main([str(a) for a in argv])
            assert info.value.code == 2
