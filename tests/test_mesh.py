"""Tests of the grid triangulation, normals and decimation (face3d_core.mesh)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from face3d_core.geometry import Intrinsics, backproject_grid
from face3d_core.mesh import Mesh, decimate_mesh, grid_mesh, grid_uv, remove_unreferenced, vertex_normals


def flat_grid(h: int, w: int, z: float = 0.0) -> np.ndarray:
    """Points of a plane facing the viewer: x right, y up (row 0 at the top)."""
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([cols, -rows, np.full_like(cols, z)], axis=-1)


def sphere_grid(n: int = 60, radius: float = 80.0, distance: float = 400.0):
    """Back-projected depth of a sphere seen by a 60-degree camera; returns grid, footprint, centre."""
    intr = Intrinsics.from_fov(n, n, 40.0)
    v, u = np.mgrid[0:n, 0:n].astype(np.float64)
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], axis=-1)
    c = np.array([0.0, 0.0, distance])
    a = (rays * rays).sum(-1)
    b = -2.0 * (rays @ c)
    disc = b * b - 4 * a * (c @ c - radius**2)
    with np.errstate(invalid="ignore"):
        z = np.where(disc >= 0, (-b - np.sqrt(disc)) / (2 * a), np.nan)
    grid = backproject_grid(z, intr)
    return grid, z / intr.fx, np.array([0.0, 0.0, -distance])


class TestGridMesh:
    def test_full_grid_has_two_triangles_per_cell_facing_the_viewer(self):
        mesh = grid_mesh(flat_grid(4, 5))
        assert mesh.n_vertices == 20 and mesh.n_faces == 2 * 3 * 4
        assert mesh.faces.dtype == np.int32 and mesh.vertices_xyz.dtype == np.float32
        np.testing.assert_allclose(mesh.normals, np.tile([0.0, 0.0, 1.0], (20, 1)), atol=1e-6)
        tm = trimesh.Trimesh(mesh.vertices_xyz, mesh.faces, process=False)
        assert tm.is_winding_consistent
        assert np.allclose(tm.face_normals[:, 2], 1.0)  # counter-clockwise seen from +Z
        assert tm.area == pytest.approx(3 * 4)

    def test_masked_pixel_removes_its_triangles(self):
        valid = np.ones((4, 5), bool)
        valid[1, 2] = False  # an interior pixel touches 6 triangles of the grid
        mesh = grid_mesh(flat_grid(4, 5), valid)
        assert mesh.n_faces == 24 - 6 and mesh.n_vertices == 19

    def test_nan_points_are_skipped_and_unused_vertices_dropped(self):
        grid = flat_grid(3, 3)
        grid[0, 1] = np.nan
        grid[1, 1] = np.nan  # the centre gone: only the lower triangle (c, d, b) of the last block remains
        mesh = grid_mesh(grid)
        assert mesh.n_faces == 1 and mesh.n_vertices == 3  # the other 4 valid points are unused
        np.testing.assert_array_equal(np.sort(mesh.vertices_xyz[:, :2], axis=0), [[1, -2], [2, -2], [2, -1]])

    def test_long_edges_across_a_depth_jump_are_dropped(self):
        grid = flat_grid(6, 8)
        grid[:, 4:, 2] = -500.0  # right half 500 units behind: a wall
        foot = np.ones((6, 8), np.float32)  # grid step is 1 unit
        kept = grid_mesh(grid, footprint=foot, max_edge_factor=10.0)
        assert kept.n_faces == 2 * 5 * 3 + 2 * 5 * 3  # both halves, nothing across columns 3-4
        assert np.ptp(kept.vertices_xyz[kept.faces][:, :, 2], axis=1).max() == 0.0
        everything = grid_mesh(grid, footprint=foot, max_edge_factor=None)
        assert everything.n_faces == 2 * 5 * 7

    def test_sphere_normals_point_outwards(self):
        grid, foot, center = sphere_grid()
        mesh = grid_mesh(grid, footprint=foot)
        radial = mesh.vertices_xyz - center
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        cos = np.einsum("ij,ij->i", radial, mesh.normals)
        assert np.median(cos) > 0.999 and cos.min() > 0.9

    def test_colours_and_uvs_follow_their_vertices(self):
        h, w = 4, 6
        colors = np.zeros((h, w, 3), np.uint8)
        colors[..., 0] = np.arange(w)[None, :] * 10
        colors[..., 1] = np.arange(h)[:, None] * 20
        valid = np.ones((h, w), bool)
        valid[0, 0] = False
        mesh = grid_mesh(
            flat_grid(h, w),
            valid,
            colors_grid=colors,
            uv_grid=grid_uv((h, w)),
            texture_rgb=np.zeros((h, w, 3), np.uint8),
        )
        cols = mesh.vertices_xyz[:, 0]
        rows = -mesh.vertices_xyz[:, 1]
        np.testing.assert_array_equal(mesh.colors_rgb[:, 0], cols * 10)
        np.testing.assert_array_equal(mesh.colors_rgb[:, 1], rows * 20)
        np.testing.assert_allclose(mesh.uv[:, 0], (cols + 0.5) / w)
        np.testing.assert_allclose(mesh.uv[:, 1], 1.0 - (rows + 0.5) / h)
        assert mesh.texture_rgb is not None

    def test_per_point_colours_in_row_major_order(self):
        h, w = 4, 6
        valid = np.ones((h, w), bool)
        valid[0, 0] = False
        per_point = np.arange(valid.sum() * 3, dtype=np.uint8).reshape(-1, 3)
        grid_colors = np.zeros((h, w, 3), np.uint8)
        grid_colors[valid] = per_point
        a = grid_mesh(flat_grid(h, w), valid, colors_grid=per_point)
        b = grid_mesh(flat_grid(h, w), valid, colors_grid=grid_colors)
        np.testing.assert_array_equal(a.colors_rgb, b.colors_rgb)
        with pytest.raises(ValueError, match="per-point"):
            grid_mesh(flat_grid(h, w), valid, colors_grid=per_point[:-1])

    def test_rejects_bad_shapes(self):
        with pytest.raises(ValueError):
            grid_mesh(np.zeros((4, 4)))


def test_grid_uv_window_matches_the_full_grid():
    full = grid_uv((20, 30), 3)
    part = grid_uv((20, 30), 3, window=(6, 20, 9, 30))
    np.testing.assert_array_equal(part, full[2:, 3:])


def test_vertex_normals_of_a_lonely_vertex():
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]], np.float32)
    normals = vertex_normals(verts, np.array([[0, 1, 2]]))
    np.testing.assert_allclose(normals, [[0, 0, 1]] * 4, atol=1e-6)


def test_remove_unreferenced():
    verts = np.arange(15, dtype=np.float32).reshape(5, 3)
    mesh = Mesh(verts, np.array([[0, 2, 4]], np.int32), np.zeros_like(verts), np.zeros((5, 3), np.uint8))
    out = remove_unreferenced(mesh)
    np.testing.assert_array_equal(out.vertices_xyz, verts[[0, 2, 4]])
    np.testing.assert_array_equal(out.faces, [[0, 1, 2]])


class TestDecimation:
    def test_reduces_to_the_target_and_keeps_the_shape(self):
        grid, foot, center = sphere_grid(120)
        mesh = grid_mesh(grid, footprint=foot, colors_grid=np.full(grid.shape, 200, np.uint8))
        small = decimate_mesh(mesh, 2000)
        assert 1000 <= small.n_faces <= 2000
        dist = np.linalg.norm(small.vertices_xyz - center, axis=1)
        # vertices stay close to the sphere: averaging a cluster moves it inwards by far less than a cell
        assert np.abs(dist - 80.0).max() < 2.0
        assert small.colors_rgb is not None and (small.colors_rgb == 200).all()
        tm = trimesh.Trimesh(small.vertices_xyz, small.faces, process=False)
        assert tm.area == pytest.approx(trimesh.Trimesh(mesh.vertices_xyz, mesh.faces).area, rel=0.05)

    def test_small_mesh_is_returned_as_is(self):
        mesh = grid_mesh(flat_grid(3, 3))
        assert decimate_mesh(mesh, 100) is mesh
        with pytest.raises(ValueError):
            decimate_mesh(mesh, 0)
