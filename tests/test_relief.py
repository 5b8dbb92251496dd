"""Printable relief: one closed, consistently wound body of the requested size, whatever the mask."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
import trimesh

from face3d_core.cli import main
from face3d_core.export import export_mesh
from face3d_core.reconstruct import ReconstructionParams, reconstruct_face
from face3d_core.relief import relief_from_depth, relief_from_model
from tests.test_cli_mesh import sphere_depth


def dome(h: int = 200, w: int = 180, radius: float = 80.0, depth_per_px: float = 0.5) -> np.ndarray:
    """A spherical cap as depth (mm): 500 at the rim, nearer towards the middle; NaN outside."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = (u - w / 2) ** 2 + (v - h / 2) ** 2
    inside = r2 < radius**2
    z = 500.0 - depth_per_px * np.sqrt(np.maximum(radius**2 - r2, 0.0))
    return np.where(inside, z, np.nan).astype(np.float32)


def as_trimesh(mesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(mesh.vertices_xyz, mesh.faces, process=False)


def assert_closed_body(mesh) -> trimesh.Trimesh:
    tm = as_trimesh(mesh)
    assert tm.is_watertight
    assert tm.is_winding_consistent
    assert tm.volume > 0  # consistent winding + positive volume: normals point outwards
    assert tm.is_volume
    assert len(tm.split(only_watertight=False)) == 1
    assert tm.area_faces.min() > 1e-6  # no degenerate triangle
    # every vertex is a manifold vertex: its triangles form one fan (no pinch points)
    edges = np.sort(tm.edges_unique, axis=1)
    assert len(edges) * 2 == len(tm.faces) * 3
    assert tm.euler_number == 2  # a closed surface of genus 0: one ball-like body
    return tm


def test_dome_becomes_a_solid_of_the_requested_size():
    depth = dome()
    solid = relief_from_depth(depth, 0.5, width_mm=80.0, base_mm=3.0)
    tm = assert_closed_body(solid.mesh)
    lo, hi = tm.bounds
    assert lo == pytest.approx([0.0, 0.0, 0.0], abs=1e-4)
    assert hi[0] - lo[0] == pytest.approx(80.0, abs=1e-4)
    # the rim (farthest depth) sits exactly base_mm above the base
    top = tm.vertices[tm.vertices[:, 2] > 0]
    assert top[:, 2].min() == pytest.approx(3.0, abs=1e-4)
    # true proportions: the dome's depth range (about 40 mm) at a 0.5 mm pixel pitch, in
    # pixels, times the printed size of a pixel (158 pixels wide, columns 11..169, -> 80 mm)
    depth_px = (np.nanmax(depth) - np.nanmin(depth)) / 0.5
    assert solid.size_mm[2] - 3.0 == pytest.approx(depth_px * 80 / 158, rel=1e-4)
    # faces: the bottom faces down, the top faces up
    normals = tm.face_normals
    centers = tm.triangles_center
    assert (normals[centers[:, 2] == 0][:, 2] < -0.999).all()
    assert (normals[centers[:, 2] > 3.5][:, 2] > 0).mean() > 0.95


def test_relief_exaggeration_and_base():
    flat = relief_from_depth(dome(), 0.5, width_mm=60.0, base_mm=2.0, relief=1.0)
    deep = relief_from_depth(dome(), 0.5, width_mm=60.0, base_mm=5.0, relief=2.0)
    assert deep.size_mm[2] - 5.0 == pytest.approx(2.0 * (flat.size_mm[2] - 2.0), rel=1e-6)
    assert deep.size_mm[0] == pytest.approx(60.0)


def test_holes_islands_and_corner_contacts_still_give_one_body():
    depth = dome()
    depth[90:110, 80:95] = np.nan  # a hole inside the face
    depth[5:20, 5:20] = 480.0  # an island in a corner
    depth[rng_mask(depth.shape, 0.03)] = np.nan  # scattered missing pixels
    depth[170:182, 60:120:2] = np.nan  # a comb of gaps at the outline (corner-only contacts)
    solid = relief_from_depth(depth, 0.5, grid_step_mm=0.3)
    assert solid.islands_dropped >= 1  # the corner island (and pixels cut off by the noise)
    assert solid.size_mm[1] < 82  # the dome alone: 159 rows at 80 / 158 mm each; with the island 89 mm
    assert solid.holes_filled_px > 300
    assert_closed_body(solid.mesh)


def rng_mask(shape, fraction):
    return np.random.default_rng(7).random(shape) < fraction


def test_checkerboard_outline_is_repaired():
    """Cells touching only at corners would make non-manifold vertices."""
    depth = np.full((40, 40), 400.0, np.float32)
    depth[::2, ::2] = np.nan
    depth[1::2, 1::2] = np.nan  # a checkerboard: no two valid pixels share an edge
    depth[10:30, 10:30] = 400.0
    depth[10:30:3, 30:34] = np.nan
    solid = relief_from_depth(depth, 1.0, width_mm=30.0, grid_step_mm=0.01)
    assert_closed_body(solid.mesh)


def test_too_little_to_print():
    with pytest.raises(ValueError):
        relief_from_depth(np.full((10, 10), np.nan, np.float32), 1.0)
    with pytest.raises(ValueError):
        relief_from_depth(dome(), 0.5, base_mm=0.0)


def test_from_a_reconstructed_model_and_3mf():
    depth = sphere_depth()
    model = reconstruct_face(depth, ReconstructionParams(depth_kind="metric", fov_deg=60.0, smoothing_sigma=0))
    solid = relief_from_model(model, width_mm=50.0, base_mm=2.5)
    tm = assert_closed_body(solid.mesh)
    assert np.ptp(tm.vertices[:, 0]) == pytest.approx(50.0, abs=1e-4)
    # the visible cap of the sphere is at most 51 mm deep over 119 mm wide (less after the steep
    # rim is trimmed as flying pixels): at 50 mm wide, at most 21.5 mm deep
    assert 0.3 * 50 < solid.size_mm[2] - 2.5 < 0.43 * 50
    files = export_mesh(solid.mesh, "3mf", name="relief")
    with zipfile.ZipFile(io.BytesIO(files["relief.3mf"])) as archive:
        names = set(archive.namelist())
        assert {"[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"} <= names
        rels = ET.fromstring(archive.read("_rels/.rels"))
        assert rels[0].get("Target") == "/3D/3dmodel.model"
        root = ET.fromstring(archive.read("3D/3dmodel.model"))
    ns = {"m": "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"}
    assert root.get("unit") == "millimeter"
    verts = np.array([[float(v.get(k)) for k in "xyz"] for v in root.iterfind(".//m:vertex", ns)])
    tris = np.array([[int(t.get(k)) for k in ("v1", "v2", "v3")] for t in root.iterfind(".//m:triangle", ns)])
    assert np.abs(verts - solid.mesh.vertices_xyz).max() < 1e-3
    assert (tris == solid.mesh.faces).all()
    assert trimesh.Trimesh(verts, tris, process=False).is_watertight


@pytest.mark.parametrize("fmt", ["stl", "3mf"])
def test_cli_solid(tmp_path, capsys, fmt):
    from PIL import Image

    depth = sphere_depth()
    npy = tmp_path / "sphere.npy"
    np.save(npy, depth)
    png = tmp_path / "photo.png"
    Image.fromarray(np.full(depth.shape + (3,), 200, np.uint8)).save(png)
    out = tmp_path / f"relief.{fmt}"
    argv = ["mesh", png, "--depth", npy, "--depth-kind", "metric", "--fov", 60, "--face", "none"]
    argv += ["--solid", "--width-mm", 60, "--base-mm", 2, "-o", out]
    assert main([str(a) for a in argv]) == 0
    stdout = capsys.readouterr().out
    assert "printable solid 60.0 x" in stdout and "base 2 mm" in stdout
    if fmt == "stl":
        tm = trimesh.load(out)  # STL repeats the corners of every triangle: merged on load
        assert tm.is_watertight and tm.is_winding_consistent and tm.volume > 0
        assert np.ptp(tm.vertices[:, 0]) == pytest.approx(60.0, abs=1e-3)
        assert tm.bounds[0][2] == pytest.approx(0.0, abs=1e-4)
    else:
        assert zipfile.is_zipfile(out)


def test_cli_solid_needs_a_mesh(tmp_path, capsys):
    from PIL import Image

    depth = sphere_depth()
    npy = tmp_path / "sphere.npy"
    np.save(npy, depth)
    png = tmp_path / "photo.png"
    Image.fromarray(np.full(depth.shape + (3,), 200, np.uint8)).save(png)
    argv = ["mesh", png, "--depth", npy, "--depth-kind", "metric", "--face", "none", "--solid", "--points"]
    assert main([str(a) for a in [*argv, "--format", "ply", "-o", tmp_path / "x.ply"]]) == 1
    assert "without --points" in capsys.readouterr().err


def test_the_triangle_budget_makes_the_grid_coarser_and_says_so():
    """Issue 16: a wide relief of a large depth map once had 3.8 M triangles; now at most the budget."""
    depth = dome(h=440, w=400, radius=195.0, depth_per_px=0.3)
    asked = relief_from_depth(depth, 0.5, width_mm=300.0, max_triangles=10**9)  # as before: no budget
    assert not asked.budget_applied and asked.mesh.n_faces > 400_000
    solid = relief_from_depth(depth, 0.5, width_mm=300.0, max_triangles=60_000)
    assert solid.budget_applied and 0.85 * 60_000 <= solid.mesh.n_faces <= 60_000
    tm = assert_closed_body(solid.mesh)
    assert np.ptp(tm.vertices[:, 0]) == pytest.approx(300.0, abs=1e-3)
    assert solid.grid_step_mm > 0.4 and "to stay within 0.06 M triangles" in solid.describe()
    # the same proportions as the full grid (the coarser grid's outermost row lies a little inside the rim)
    assert solid.size_mm[2] == pytest.approx(asked.size_mm[2], rel=0.03)
    small = relief_from_depth(dome(), 0.5, width_mm=50.0)  # an ordinary relief: the asked grid (or finer)
    assert not small.budget_applied and not small.pixel_limited and "coarser" not in small.describe()
    wide = relief_from_depth(dome(), 0.5, width_mm=300.0)  # 158 pixels over 300 mm: 1.9 mm each
    assert wide.pixel_limited and wide.grid_step_mm > 1.8 and "too few pixels" in wide.describe()


def test_a_relief_model_has_the_points_its_grid_can_use():
    from face3d_core.relief import MAX_RELIEF_TRIANGLES, relief_max_points

    assert relief_max_points(80.0) == 4 * 200**2  # 200 columns at 0.4 mm
    assert relief_max_points(300.0) == MAX_RELIEF_TRIANGLES // 2  # capped: the budget, not every pixel
    assert relief_max_points(20.0) >= 10_000
