"""Writers for 3D models: binary PLY, OBJ + MTL + PNG texture, GLB (binary glTF 2.0), binary STL, 3MF.

All writers are plain numpy (no 3D library) and return ``{file name: bytes}`` so the
dashboard can offer downloads without touching the disk; :func:`write_files` saves them.

Units and frames: positions are millimetres, X right, Y up, Z towards the viewer (the
face looks along +Z), as produced by :mod:`face3d_core.geometry`. PLY, OBJ and STL have
no unit field and carry the millimetre values. glTF's unit is the metre: the GLB keeps
the millimetre vertex data and puts a ``0.001`` scale on its node, so viewers show the
face at its true size.

Formats:

* **PLY** (binary little-endian): vertices with ``float x, y, z``, optional ``float nx, ny,
  nz`` and ``uchar red, green, blue``; triangles as ``uchar`` count + ``int`` indices. Used
  for meshes and for point clouds.
* **OBJ**: ``v x y z [r g b]`` (colours in ``[0, 1]``, a common extension), ``vt``, ``vn``
  and ``f a/a/a``; with a texture, a ``.mtl`` (``map_Kd``) and the texture ``.png``.
* **GLB**: one mesh primitive (``TRIANGLES``, or ``POINTS`` for point clouds) with
  ``POSITION``, ``NORMAL``, ``COLOR_0`` (normalised ``uint8`` RGBA) or ``TEXCOORD_0`` + an
  embedded PNG base-colour texture, ``uint32`` indices; unlit-looking material
  (metallic 0, roughness 1).
* **STL** (binary): triangles with facet normals; no colour (STL has no standard for it).
* **3MF** (3D Manufacturing Format core specification): a ZIP package with
  ``[Content_Types].xml``, ``_rels/.rels`` and ``3D/3dmodel.model`` holding one mesh object in
  millimetres (``unit="millimeter"``), triangles counter-clockwise seen from outside; the
  format slicers prefer for printing (:mod:`face3d_core.relief` makes closed solids).
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from face3d_core.errors import ExportError
from face3d_core.mesh import Mesh, face_normals

logger = logging.getLogger(__name__)

MeshFormat = Literal["ply", "obj", "glb", "stl", "3mf"]
MESH_FORMATS: tuple[str, ...] = ("ply", "obj", "glb", "stl", "3mf")
POINT_FORMATS: tuple[str, ...] = ("ply", "glb")

_GLTF_ARRAY_BUFFER = 34962
_GLTF_ELEMENT_ARRAY_BUFFER = 34963
_GLTF_FLOAT = 5126
_GLTF_UNSIGNED_BYTE = 5121
_GLTF_UNSIGNED_INT = 5125


def _check_points(points_xyz: np.ndarray) -> np.ndarray:
    pts = np.asarray(points_xyz, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ExportError(f"Cannot export: expected (N, 3) points, got shape {pts.shape}.")
    if len(pts) == 0:
        raise ExportError("There is nothing to export: the 3D model has no points.")
    if not np.isfinite(pts).all():
        raise ExportError("Cannot export: the 3D model has invalid (non-finite) coordinates.")
    return pts


def _check_colors(colors_rgb: np.ndarray | None, n: int) -> np.ndarray | None:
    if colors_rgb is None:
        return None
    col = np.asarray(colors_rgb)
    if col.shape != (n, 3):
        raise ExportError(f"Cannot export: expected ({n}, 3) colours, got shape {col.shape}.")
    return col.astype(np.uint8, copy=False)


def _png(image_rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(np.asarray(image_rgb, np.uint8)[..., ::-1]))
    if not ok:
        raise ExportError("The texture image could not be encoded as PNG.")
    return buf.tobytes()


# --------------------------------------------------------------------------------------------
# PLY
# --------------------------------------------------------------------------------------------


def ply_bytes(
    points_xyz: np.ndarray,
    colors_rgb: np.ndarray | None = None,
    normals: np.ndarray | None = None,
    faces: np.ndarray | None = None,
    *,
    comment: str = "face3d, units: millimetres, X right, Y up, Z towards the viewer",
) -> bytes:
    """Encode a point cloud or mesh as binary little-endian PLY.

    Args:
        points_xyz: ``(N, 3) float`` positions.
        colors_rgb: ``(N, 3) uint8`` vertex colours, or None.
        normals: ``(N, 3) float`` vertex normals, or None.
        faces: ``(M, 3) int`` triangles, or None for a point cloud.
        comment: One header comment line.

    Returns:
        The file's bytes.
    """
    pts = _check_points(points_xyz)
    n = len(pts)
    cols = _check_colors(colors_rgb, n)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    header = [
        "ply",
        "format binary_little_endian 1.0",
        f"comment {comment}",
        f"element vertex {n}",
        "property float x",
        "property float y",
        "property float z",
    ]
    if normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
        header += ["property float nx", "property float ny", "property float nz"]
    if cols is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    vertex = np.empty(n, dtype=np.dtype(fields))
    vertex["x"], vertex["y"], vertex["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    if normals is not None:
        nrm = np.asarray(normals, dtype=np.float32).reshape(n, 3)
        vertex["nx"], vertex["ny"], vertex["nz"] = nrm[:, 0], nrm[:, 1], nrm[:, 2]
    if cols is not None:
        vertex["red"], vertex["green"], vertex["blue"] = cols[:, 0], cols[:, 1], cols[:, 2]
    chunks = [vertex.tobytes()]
    if faces is not None:
        tri = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        if tri.size and (tri.min() < 0 or tri.max() >= n):
            raise ExportError("Cannot export: a triangle refers to a vertex that does not exist.")
        header += [f"element face {len(tri)}", "property list uchar int vertex_indices"]
        face_rec = np.empty(len(tri), dtype=np.dtype([("n", "u1"), ("v", "<i4", (3,))]))
        face_rec["n"] = 3
        face_rec["v"] = tri
        chunks.append(face_rec.tobytes())
    header.append("end_header")
    return ("\n".join(header) + "\n").encode("ascii") + b"".join(chunks)


# --------------------------------------------------------------------------------------------
# OBJ
# --------------------------------------------------------------------------------------------


#: Rows formatted at a time: the text of one block is small, whatever the mesh's size.
_ROWS_PER_BLOCK = 32_768


def _write_rows(out: Any, fmt: str, *columns: np.ndarray, index_repeat: int = 0) -> None:
    """Write rows formatted with ``fmt``, one C-level ``%`` call per block of rows.

    Args:
        out: Where the text goes (ASCII): anything with ``write(bytes)`` (a buffer, a ZIP member).
        fmt: Format of one row (ending with a newline).
        *columns: ``(N, k)`` arrays whose rows are put side by side (floats are written with the
            float32 value they hold: ``tolist`` gives the same doubles as ``astype(float64)``).
        index_repeat: For a single ``(N, 3)`` triangle array: write each 1-based index this many
            times (``f a/a/a`` or ``f a//a``).

    Memory stays bounded (one block's Python values at a time), whatever the number of rows.
    """
    count = len(columns[0])
    for start in range(0, count, _ROWS_PER_BLOCK):
        parts = [column[start : start + _ROWS_PER_BLOCK] for column in columns]
        if index_repeat:
            block = np.repeat(parts[0].astype(np.int64) + 1, index_repeat, axis=1)
        else:
            block = parts[0] if len(parts) == 1 else np.hstack(parts)
        out.write(((fmt * len(block)) % tuple(block.ravel().tolist())).encode("ascii"))


def obj_files(mesh: Mesh, name: str = "face", *, texture: bool | None = None) -> dict[str, bytes]:
    """Encode a mesh as Wavefront OBJ (+ MTL + PNG when textured).

    Args:
        mesh: The mesh.
        name: Base file name (``name.obj``, ``name.mtl``, ``name.png``).
        texture: Use the mesh's texture (default: when it has one); otherwise vertex colours
            are written as ``v x y z r g b``.

    Returns:
        ``{"name.obj": ..., ["name.mtl": ..., "name.png": ...]}``.
    """
    verts = _check_points(mesh.vertices_xyz)
    use_texture = (mesh.texture_rgb is not None and mesh.uv is not None) if texture is None else texture
    if use_texture and (mesh.texture_rgb is None or mesh.uv is None):
        raise ExportError("Cannot export a textured OBJ: this 3D model has no texture.")
    out = io.BytesIO()
    out.write(f"# face3d OBJ: {mesh.n_vertices} vertices, {mesh.n_faces} triangles; units: millimetres\n".encode())
    if use_texture:
        out.write(f"mtllib {name}.mtl\n".encode())
    if mesh.colors_rgb is not None and not use_texture:
        colors = mesh.colors_rgb / 255.0  # float64, as before
        _write_rows(out, "v %.4f %.4f %.4f %.4f %.4f %.4f\n", verts, colors)
    else:
        _write_rows(out, "v %.4f %.4f %.4f\n", verts)
    if use_texture:
        _write_rows(out, "vt %.6f %.6f\n", mesh.uv)
    _write_rows(out, "vn %.5f %.5f %.5f\n", mesh.normals)
    if use_texture:
        out.write(f"usemtl {name}\n".encode())
        _write_rows(out, "f %d/%d/%d %d/%d/%d %d/%d/%d\n", mesh.faces, index_repeat=3)
    else:
        _write_rows(out, "f %d//%d %d//%d %d//%d\n", mesh.faces, index_repeat=2)
    files = {f"{name}.obj": out.getvalue()}
    if use_texture:
        files[f"{name}.mtl"] = (
            f"# face3d material\nnewmtl {name}\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\n"
            f"Ks 0.000 0.000 0.000\nNs 1.0\nillum 1\nmap_Kd {name}.png\n"
        ).encode("ascii")
        files[f"{name}.png"] = _png(mesh.texture_rgb)
    return files


# --------------------------------------------------------------------------------------------
# GLB
# --------------------------------------------------------------------------------------------


class _GltfBuffer:
    """Collects binary blobs (4-byte aligned) and their buffer views / accessors."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.length = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add_view(self, data: bytes, target: int | None = None) -> int:
        pad = (-self.length) % 4
        if pad:
            self.chunks.append(b"\x00" * pad)
            self.length += pad
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.chunks.append(data)
        self.length += len(data)
        self.views.append(view)
        return len(self.views) - 1

    def add_accessor(
        self,
        array: np.ndarray,
        component: int,
        kind: str,
        target: int | None,
        *,
        normalized: bool = False,
        minmax: bool = False,
    ) -> int:
        view = self.add_view(np.ascontiguousarray(array).tobytes(), target)
        acc = {"bufferView": view, "componentType": component, "count": int(array.shape[0]), "type": kind}
        if normalized:
            acc["normalized"] = True
        if minmax:
            acc["min"] = array.min(axis=0).astype(float).tolist()
            acc["max"] = array.max(axis=0).astype(float).tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def blob(self) -> bytes:
        data = b"".join(self.chunks)
        return data + b"\x00" * ((-len(data)) % 4)


def glb_bytes(
    vertices_xyz: np.ndarray,
    faces: np.ndarray | None = None,
    *,
    normals: np.ndarray | None = None,
    colors_rgb: np.ndarray | None = None,
    uv: np.ndarray | None = None,
    texture_rgb: np.ndarray | None = None,
    name: str = "face",
) -> bytes:
    """Encode a mesh (or, with ``faces=None``, a point cloud) as binary glTF 2.0.

    Args:
        vertices_xyz: ``(N, 3) float`` positions in mm.
        faces: ``(M, 3) int`` triangles, or None for points.
        normals: ``(N, 3) float`` vertex normals.
        colors_rgb: ``(N, 3) uint8`` vertex colours (ignored when a texture is given: glTF
            would multiply both).
        uv: ``(N, 2) float`` texture coordinates with ``v = 0`` at the bottom (flipped here).
        texture_rgb: ``(h, w, 3) uint8`` base-colour texture for ``uv``.
        name: Mesh and node name.

    Returns:
        The ``.glb`` file's bytes.
    """
    verts = _check_points(vertices_xyz)
    n = len(verts)
    buf = _GltfBuffer()
    attributes = {"POSITION": buf.add_accessor(verts, _GLTF_FLOAT, "VEC3", _GLTF_ARRAY_BUFFER, minmax=True)}
    if normals is not None:
        nrm = np.asarray(normals, dtype=np.float32).reshape(n, 3)
        attributes["NORMAL"] = buf.add_accessor(nrm, _GLTF_FLOAT, "VEC3", _GLTF_ARRAY_BUFFER)
    textured = texture_rgb is not None and uv is not None
    if textured:
        st = np.asarray(uv, dtype=np.float32).reshape(n, 2).copy()
        st[:, 1] = 1.0 - st[:, 1]  # glTF: v = 0 at the top of the image
        attributes["TEXCOORD_0"] = buf.add_accessor(st, _GLTF_FLOAT, "VEC2", _GLTF_ARRAY_BUFFER)
    elif colors_rgb is not None:
        cols = _check_colors(colors_rgb, n)
        rgba = np.concatenate([cols, np.full((n, 1), 255, np.uint8)], axis=1)
        attributes["COLOR_0"] = buf.add_accessor(rgba, _GLTF_UNSIGNED_BYTE, "VEC4", _GLTF_ARRAY_BUFFER, normalized=True)
    primitive: dict = {"attributes": attributes, "material": 0}
    if faces is not None:
        tri = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        if tri.size and (tri.min() < 0 or tri.max() >= n):
            raise ExportError("Cannot export: a triangle refers to a vertex that does not exist.")
        primitive["indices"] = buf.add_accessor(
            tri.astype(np.uint32).reshape(-1, 1), _GLTF_UNSIGNED_INT, "SCALAR", _GLTF_ELEMENT_ARRAY_BUFFER
        )
        primitive["mode"] = 4
    else:
        primitive["mode"] = 0
    material: dict = {
        "name": name,
        "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0},
        "doubleSided": True,
    }
    gltf: dict = {
        "asset": {"version": "2.0", "generator": "face3d"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name, "scale": [0.001, 0.001, 0.001]}],
        "meshes": [{"name": name, "primitives": [primitive]}],
        "materials": [material],
    }
    if textured:
        image_view = buf.add_view(_png(texture_rgb))
        gltf["images"] = [{"bufferView": image_view, "mimeType": "image/png"}]
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9729, "wrapS": 33071, "wrapT": 33071}]
        gltf["textures"] = [{"source": 0, "sampler": 0}]
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0}
    binary = buf.blob()
    gltf["buffers"] = [{"byteLength": len(binary)}]
    gltf["bufferViews"] = buf.views
    gltf["accessors"] = buf.accessors
    json_chunk = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    json_chunk += b" " * ((-len(json_chunk)) % 4)
    total = 12 + 8 + len(json_chunk) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(json_chunk), b"JSON"),
            json_chunk,
            struct.pack("<I4s", len(binary), b"BIN\x00"),
            binary,
        ]
    )


# --------------------------------------------------------------------------------------------
# STL
# --------------------------------------------------------------------------------------------


def stl_bytes(vertices_xyz: np.ndarray, faces: np.ndarray, *, header: str = "face3d mesh, millimetres") -> bytes:
    """Encode triangles as binary STL (facet normals from the winding; no colour).

    Args:
        vertices_xyz: ``(N, 3) float`` positions.
        faces: ``(M, 3) int`` triangles.
        header: Text for the 80-byte header (must not start with ``solid``).

    Returns:
        The file's bytes.
    """
    verts = _check_points(vertices_xyz)
    tri = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(tri) == 0:
        raise ExportError("There is nothing to export as STL: the 3D model has no triangles.")
    if tri.min() < 0 or tri.max() >= len(verts):
        raise ExportError("Cannot export: a triangle refers to a vertex that does not exist.")
    layout = np.dtype([("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])  # 50 bytes
    record = np.zeros(len(tri), dtype=layout)
    record["normal"] = face_normals(verts, tri)
    record["v"] = verts[tri]
    head = header.encode("ascii", "replace")[:80]
    if head.lower().startswith(b"solid"):
        head = b"face3d " + head
    return head[:80].ljust(80, b"\x00") + struct.pack("<I", len(tri)) + record.tobytes()


# --------------------------------------------------------------------------------------------
# 3MF
# --------------------------------------------------------------------------------------------

_3MF_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
    "</Types>\n"
)
_3MF_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
    'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>'
    "</Relationships>\n"
)
_3MF_CORE_NS = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"


def threemf_bytes(vertices_xyz: np.ndarray, faces: np.ndarray, *, name: str = "face") -> bytes:
    """Encode one mesh as a 3MF package (millimetres; see the module docstring).

    Args:
        vertices_xyz: ``(N, 3) float`` positions in mm.
        faces: ``(M, 3) int`` triangles, counter-clockwise seen from outside.
        name: Object name stored in the model.

    Returns:
        The ``.3mf`` file's bytes (a ZIP archive).
    """
    verts = _check_points(vertices_xyz)
    tri = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(tri) == 0:
        raise ExportError("There is nothing to export as 3MF: the 3D model has no triangles.")
    if tri.min() < 0 or tri.max() >= len(verts):
        raise ExportError("Cannot export: a triangle refers to a vertex that does not exist.")
    safe_name = "".join(ch for ch in name if ch.isalnum() or ch in " _-.") or "face"
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<model unit="millimeter" xml:lang="en-US" xmlns="{_3MF_CORE_NS}">'
        f'<resources><object id="1" type="model" name="{safe_name}"><mesh><vertices>'
    )
    buffer = io.BytesIO()
    # the fastest deflate level: the model's XML compresses to about a third either way, at a fourth of the CPU
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", _3MF_CONTENT_TYPES)
        archive.writestr("_rels/.rels", _3MF_RELS)
        with archive.open("3D/3dmodel.model", "w", force_zip64=True) as model:
            model.write(head.encode())
            _write_rows(model, '<vertex x="%.4f" y="%.4f" z="%.4f"/>', verts)
            model.write(b"</vertices><triangles>")
            _write_rows(model, '<triangle v1="%d" v2="%d" v3="%d"/>', tri)
            model.write(b'</triangles></mesh></object></resources><build><item objectid="1"/></build></model>\n')
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Front doors
# --------------------------------------------------------------------------------------------


def export_mesh(mesh: Mesh, fmt: str, *, name: str = "face", texture: bool | None = None) -> dict[str, bytes]:
    """Export a mesh in one format.

    Args:
        mesh: The mesh.
        fmt: ``"ply"``, ``"obj"``, ``"glb"``, ``"stl"`` or ``"3mf"``.
        name: Base file name (without extension).
        texture: For OBJ and GLB: use the mesh's texture image (default: when it has one)
            instead of vertex colours.

    Returns:
        ``{file name: bytes}`` (several files for a textured OBJ).

    Raises:
        ExportError: Unknown format, empty mesh, invalid data.
    """
    fmt = fmt.lower().lstrip(".")
    if mesh.n_faces == 0:
        raise ExportError("There is nothing to export: the 3D model has no triangles (try the point cloud).")
    use_texture = (mesh.texture_rgb is not None and mesh.uv is not None) if texture is None else texture
    if fmt == "ply":
        return {f"{name}.ply": ply_bytes(mesh.vertices_xyz, mesh.colors_rgb, mesh.normals, mesh.faces)}
    if fmt == "obj":
        return obj_files(mesh, name, texture=use_texture)
    if fmt == "glb":
        return {
            f"{name}.glb": glb_bytes(
                mesh.vertices_xyz,
                mesh.faces,
                normals=mesh.normals,
                colors_rgb=mesh.colors_rgb,
                uv=mesh.uv if use_texture else None,
                texture_rgb=mesh.texture_rgb if use_texture else None,
                name=name,
            )
        }
    if fmt == "stl":
        return {f"{name}.stl": stl_bytes(mesh.vertices_xyz, mesh.faces)}
    if fmt == "3mf":
        return {f"{name}.3mf": threemf_bytes(mesh.vertices_xyz, mesh.faces, name=name)}
    raise ExportError(f"Unknown 3D format {fmt!r}; choose one of {', '.join(MESH_FORMATS)}.")


def export_points(
    points_xyz: np.ndarray,
    colors_rgb: np.ndarray | None = None,
    fmt: str = "ply",
    *,
    normals: np.ndarray | None = None,
    name: str = "face_points",
) -> dict[str, bytes]:
    """Export a point cloud as PLY or GLB (``POINTS``); OBJ/STL cannot hold coloured points.

    Args:
        points_xyz: ``(N, 3) float`` positions in mm.
        colors_rgb: ``(N, 3) uint8`` colours, or None.
        fmt: ``"ply"`` or ``"glb"``.
        normals: Optional ``(N, 3) float`` normals.
        name: Base file name.

    Returns:
        ``{file name: bytes}``.

    Raises:
        ExportError: Unsupported format or invalid data.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt == "ply":
        return {f"{name}.ply": ply_bytes(points_xyz, colors_rgb, normals)}
    if fmt == "glb":
        return {f"{name}.glb": glb_bytes(points_xyz, None, normals=normals, colors_rgb=colors_rgb, name=name)}
    raise ExportError(f"A point cloud cannot be saved as {fmt.upper()}; use PLY or GLB, or export the mesh instead.")


def write_files(files: Mapping[str, bytes], out_dir: str | os.PathLike) -> list[Path]:
    """Write ``{name: bytes}`` into a folder (created if needed); return the paths.

    Raises:
        ExportError: The folder or a file cannot be written.
    """
    folder = Path(out_dir)
    paths = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for file_name, data in files.items():
            path = folder / file_name
            tmp = path.with_name(f".{path.name}.part")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            paths.append(path)
    except OSError as exc:
        raise ExportError(f"Cannot write the 3D model to {folder}: {exc.strerror or exc}.") from exc
    logger.info("Wrote %s", ", ".join(repr(str(p)) for p in paths))
    return paths
