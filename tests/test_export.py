"""Round trips of the 3D writers through an independent reader (trimesh)."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from face3d_core.errors import ExportError
from face3d_core.export import export_mesh, export_points, glb_bytes, ply_bytes, write_files
from face3d_core.mesh import Mesh, grid_mesh, grid_uv


@pytest.fixture
def mesh() -> Mesh:
    """A small curved, coloured, textured grid mesh (mm)."""
    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[0:6, 0:8].astype(np.float32)
    relief = 10.0 * np.cos(cols / 3.0) * np.cos(rows / 3.0)
    grid = np.stack([cols * 5.0 - 17.5, 12.5 - rows * 5.0, relief], -1)
    colors = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
    texture = rng.integers(0, 256, (12, 16, 3)).astype(np.uint8)
    return grid_mesh(grid, colors_grid=colors, uv_grid=grid_uv((6, 8)), texture_rgb=texture)


def load(files: dict[str, bytes], tmp_path: Path, ext: str, **kwargs):
    write_files(files, tmp_path)
    name = next(k for k in files if k.endswith(f".{ext}"))
    return trimesh.load(tmp_path / name, process=False, **kwargs)


class TestPly:
    def test_mesh_round_trip(self, mesh, tmp_path):
        loaded = load(export_mesh(mesh, "ply"), tmp_path, "ply")
        np.testing.assert_array_equal(loaded.vertices, mesh.vertices_xyz)
        np.testing.assert_array_equal(loaded.faces, mesh.faces)
        np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], mesh.colors_rgb)
        np.testing.assert_allclose(loaded.vertex_normals, mesh.normals, atol=1e-6)

    def test_points_round_trip(self, mesh):
        files = export_points(mesh.vertices_xyz, mesh.colors_rgb, "ply")
        cloud = trimesh.load(io.BytesIO(files["face_points.ply"]), file_type="ply")
        assert isinstance(cloud, trimesh.PointCloud)
        np.testing.assert_array_equal(cloud.vertices, mesh.vertices_xyz)
        np.testing.assert_array_equal(cloud.colors[:, :3], mesh.colors_rgb)

    def test_header_is_binary_little_endian_with_units(self, mesh):
        data = ply_bytes(mesh.vertices_xyz, mesh.colors_rgb, None, mesh.faces)
        header = data[: data.index(b"end_header")].decode("ascii")
        assert "format binary_little_endian 1.0" in header and "millimetres" in header
        body = len(data) - len(header) - len("end_header\n")
        assert body == mesh.n_vertices * (12 + 3) + mesh.n_faces * (1 + 12)


class TestObj:
    def test_vertex_colours_round_trip(self, mesh, tmp_path):
        files = export_mesh(mesh, "obj", texture=False)
        assert list(files) == ["face.obj"]
        loaded = load(files, tmp_path, "obj")
        np.testing.assert_allclose(loaded.vertices, mesh.vertices_xyz, atol=1e-4)
        np.testing.assert_array_equal(loaded.faces, mesh.faces)
        np.testing.assert_allclose(loaded.visual.vertex_colors[:, :3], mesh.colors_rgb, atol=1)

    def test_texture_round_trip(self, mesh, tmp_path):
        files = export_mesh(mesh, "obj")
        assert set(files) == {"face.obj", "face.mtl", "face.png"}
        assert b"map_Kd face.png" in files["face.mtl"]
        loaded = load(files, tmp_path, "obj")
        np.testing.assert_allclose(loaded.vertices, mesh.vertices_xyz, atol=1e-4)
        np.testing.assert_allclose(loaded.visual.uv, mesh.uv, atol=1e-6)
        image = np.asarray(loaded.visual.material.image.convert("RGB"))
        np.testing.assert_array_equal(image, mesh.texture_rgb)

    def test_textured_export_without_texture_is_an_error(self, mesh):
        bare = Mesh(mesh.vertices_xyz, mesh.faces, mesh.normals, mesh.colors_rgb)
        with pytest.raises(ExportError):
            export_mesh(bare, "obj", texture=True)


class TestGlb:
    def test_vertex_colour_mesh_round_trip_in_metres(self, mesh):
        data = export_mesh(mesh, "glb", texture=False)["face.glb"]
        scene = trimesh.load(io.BytesIO(data), file_type="glb", process=False)
        geom = next(iter(scene.geometry.values()))
        np.testing.assert_allclose(geom.vertices, mesh.vertices_xyz, rtol=1e-6)  # the data stays in mm
        np.testing.assert_array_equal(geom.faces, mesh.faces)
        # with a material (ours is matte, not glTF's default metal) trimesh keeps COLOR_0 as an attribute
        colors = np.asarray(geom.visual.vertex_attributes["color"])[:, :3]
        np.testing.assert_array_equal(colors, mesh.colors_rgb)
        world = scene.to_geometry() if hasattr(scene, "to_geometry") else scene.dump(concatenate=True)
        np.testing.assert_allclose(world.vertices, mesh.vertices_xyz / 1000.0, rtol=1e-6, atol=1e-9)

    def test_texture_round_trip(self, mesh):
        data = export_mesh(mesh, "glb")["face.glb"]
        scene = trimesh.load(io.BytesIO(data), file_type="glb", process=False)
        geom = next(iter(scene.geometry.values()))
        np.testing.assert_allclose(geom.visual.uv, mesh.uv, atol=1e-6)  # trimesh flips glTF's v back
        image = np.asarray(geom.visual.material.baseColorTexture.convert("RGB"))
        np.testing.assert_array_equal(image, mesh.texture_rgb)

    def test_points_round_trip(self, mesh):
        data = export_points(mesh.vertices_xyz, mesh.colors_rgb, "glb")["face_points.glb"]
        scene = trimesh.load(io.BytesIO(data), file_type="glb")
        cloud = next(iter(scene.geometry.values()))
        assert isinstance(cloud, trimesh.PointCloud)
        np.testing.assert_allclose(cloud.vertices, mesh.vertices_xyz, rtol=1e-6)
        np.testing.assert_array_equal(cloud.colors[:, :3], mesh.colors_rgb)

    def test_container_layout_follows_the_spec(self, mesh):
        data = glb_bytes(mesh.vertices_xyz, mesh.faces, normals=mesh.normals, colors_rgb=mesh.colors_rgb)
        magic, version, length = struct.unpack_from("<4sII", data, 0)
        assert (magic, version, length) == (b"glTF", 2, len(data))
        json_len, json_type = struct.unpack_from("<I4s", data, 12)
        assert json_type == b"JSON" and json_len % 4 == 0
        gltf = json.loads(data[20 : 20 + json_len])
        bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
        assert bin_type == b"BIN\x00" and bin_len % 4 == 0 and bin_len == gltf["buffers"][0]["byteLength"]
        assert all(view["byteOffset"] % 4 == 0 for view in gltf["bufferViews"])
        position = gltf["accessors"][gltf["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
        np.testing.assert_allclose(position["min"], mesh.vertices_xyz.min(axis=0), rtol=1e-6)
        np.testing.assert_allclose(position["max"], mesh.vertices_xyz.max(axis=0), rtol=1e-6)
        assert gltf["nodes"][0]["scale"] == [0.001, 0.001, 0.001]


class TestStl:
    def test_triangles_round_trip(self, mesh, tmp_path):
        files = export_mesh(mesh, "stl")
        assert len(files["face.stl"]) == 84 + 50 * mesh.n_faces
        loaded = load(files, tmp_path, "stl")
        np.testing.assert_allclose(loaded.triangles, mesh.vertices_xyz[mesh.faces], rtol=1e-6)
        expected = np.cross(
            *(mesh.vertices_xyz[mesh.faces][:, k] - mesh.vertices_xyz[mesh.faces][:, 0] for k in (1, 2))
        )
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose(loaded.face_normals, expected, atol=1e-5)


class TestErrors:
    def test_unknown_format(self, mesh):
        with pytest.raises(ExportError, match="Unknown 3D format"):
            export_mesh(mesh, "fbx")

    def test_points_cannot_be_stl_or_obj(self, mesh):
        for fmt in ("stl", "obj"):
            with pytest.raises(ExportError, match="point cloud"):
                export_points(mesh.vertices_xyz, None, fmt)

    def test_empty_and_invalid_models(self, mesh):
        empty = Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros((0, 3), np.float32))
        with pytest.raises(ExportError, match="nothing to export"):
            export_mesh(empty, "ply")
        with pytest.raises(ExportError):
            export_points(np.array([[0.0, np.nan, 1.0]]), None, "ply")
        bad = Mesh(mesh.vertices_xyz, mesh.faces + 1000, mesh.normals)
        with pytest.raises(ExportError):
            export_mesh(bad, "glb")

    def test_unwritable_folder(self, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(ExportError, match="Cannot write"):
            write_files({"a.ply": b"1"}, blocker / "sub")


def test_texture_png_is_a_real_png(mesh):
    png = export_mesh(mesh, "obj")["face.png"]
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (16, 12)
