"""Known answers from open head scans: a pinhole renderer and an exact ray caster (numpy only).

The scans in ``../shared/data/3d`` (see its MANIFEST.md) are placed in front of a pinhole
camera of known field of view (camera frame: X right, Y up, Z towards the viewer, the camera
at the origin looking along -Z, pixel centres on integers, like :mod:`face3d_core.geometry`):

* :func:`render` rasterises them into an RGB image and an exact metric depth map (the depth
  of every pixel is the exact ray-plane intersection with the visible triangle);
* :func:`raycast_depth` intersects arbitrary rays (sub-pixel positions) with the triangles
  (Moller-Trumbore, triangles binned by their image footprint): the ground truth the
  measurements are compared with, computed independently of the rendered depth map.

Landmarks of the scans are given by vertex index (MediaPipe's canonical face with iris,
ICT-FaceKit's 68 Multi-PIE landmarks) and projected into the image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face3d_core.geometry import Intrinsics


@dataclass(frozen=True)
class Scan:
    """A head scan in millimetres, face towards +Z, with its landmark points.

    Attributes:
        name: Short name.
        vertices: ``(N, 3) float64`` mm.
        faces: ``(M, 3) int64`` triangles.
        landmarks: ``(5, 3) float64`` right eye centre, left eye centre, nose tip, right and
            left mouth corner (the person's sides, YuNet's order), mm; None when unknown.
        uv: ``(N, 2)`` texture coordinates (row = v * H) or None.
        texture: ``(h, w, 3) uint8`` colour texture or None.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    landmarks: np.ndarray | None
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None


def load_mediapipe(root: Path) -> Scan:
    v, f = _read_obj(root / "mediapipe_canonical_face" / "face_model_with_iris.obj")
    v = v * 10.0  # centimetres
    keep = (f < 468).all(axis=1)  # the iris vertices are a separate patch in front of the eye surface
    # iris centres 468 / 473, nose tip (most anterior) 4, mouth corners 61 / 291
    marks = v[[468, 473, 4, 61, 291]]
    return Scan("mediapipe", v, f[keep], marks)


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of an OBJ in the file's own vertex order (polygons fanned)."""
    verts, tris = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            idx = [int(tok.split("/")[0]) - 1 for tok in line.split()[1:]]
            tris.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
    return np.asarray(verts, np.float64), np.asarray(tris, np.int64)


def load_ict(root: Path) -> Scan:
    folder = root / "ict_facekit"
    v, f = _read_obj(folder / "generic_neutral_mesh.obj")
    v = v * 10.0  # centimetres
    skin = f < 11248  # face, head and neck
    eyeballs = (f >= 21451) & (f < 24591)
    keep = skin.all(axis=1) | eyeballs.all(axis=1)
    lm = np.asarray(json.loads((folder / "vertex_indices.json").read_text())["idx_to_landmark_verts"])
    right_eye = v[lm[36:42]].mean(axis=0)
    left_eye = v[lm[42:48]].mean(axis=0)
    marks = np.stack([right_eye, left_eye, v[lm[30]], v[lm[48]], v[lm[54]]])
    return Scan("ict", v, f[keep], marks)


def load_lee_perry_smith(root: Path, mm_per_unit: float = 50.0) -> Scan:
    """The Lee Perry-Smith scan; its units are arbitrary (about 5 cm), ``mm_per_unit`` sets them."""
    import trimesh
    from PIL import Image

    folder = root / "lee_perry_smith"
    scene = trimesh.load(folder / "LeePerrySmith.glb")
    mesh = next(iter(scene.geometry.values()))
    v = np.asarray(mesh.vertices, np.float64) * mm_per_unit
    f = np.asarray(mesh.faces, np.int64)
    uv = np.asarray(mesh.visual.uv, np.float64)
    texture = np.asarray(Image.open(folder / "Map-COL.jpg").convert("RGB"))
    return Scan("lee_perry_smith", v, f, None, uv, texture)


def rotation(yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """``(3, 3)`` head rotation (scan frame -> camera frame, X right, Y up, Z towards the viewer).

    Yaw turns the face towards the image's right, pitch tilts it up (chin forward), roll leans it
    counter-clockwise in the picture; applied as ``yaw @ pitch @ roll``.
    """
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    r_yaw = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    r_pitch = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    r_roll = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


def place(
    scan: Scan, distance_mm: float, *, yaw_deg: float = 0.0, pitch_deg: float = 0.0, target: np.ndarray | None = None
) -> np.ndarray:
    """Camera-frame vertices: the scan turned by ``yaw`` (and ``pitch``), ``target`` at ``distance_mm``."""
    target = scan.vertices.mean(axis=0) if target is None else np.asarray(target, np.float64)
    return (scan.vertices - target) @ rotation(yaw_deg, pitch_deg).T - np.array([0.0, 0.0, distance_mm])


def transform_points(scan: Scan, points: np.ndarray, distance_mm: float, **kw) -> np.ndarray:
    """Apply the same placement as :func:`place` to other points of the scan."""
    shifted = Scan(scan.name, np.vstack([scan.vertices, points]), scan.faces, None)
    return place(shifted, distance_mm, target=kw.pop("target", scan.vertices.mean(axis=0)), **kw)[len(scan.vertices) :]


def project(points_cam: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """``(N, 3)`` camera-frame points -> ``(N, 2)`` pixel positions."""
    p = np.asarray(points_cam, np.float64)
    z = -p[:, 2]
    return np.stack([intr.cx + intr.fx * p[:, 0] / z, intr.cy - intr.fy * p[:, 1] / z], axis=1)


def _rays(uv: np.ndarray, intr: Intrinsics) -> np.ndarray:
    return np.stack([(uv[:, 0] - intr.cx) / intr.fx, -(uv[:, 1] - intr.cy) / intr.fy, -np.ones(len(uv))], axis=1)


def _zbuffer(v: np.ndarray, f: np.ndarray, intr: Intrinsics):
    """Visible triangle per pixel: ``(flat pixel index, depth, triangle, ray)`` of each covered pixel."""
    pix = project(v, intr)
    tri = pix[f]  # (M, 3, 2)
    lo = np.ceil(tri.min(axis=1)).astype(np.int64)
    hi = np.floor(tri.max(axis=1)).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi[:, 0] = np.minimum(hi[:, 0], intr.width - 1)
    hi[:, 1] = np.minimum(hi[:, 1], intr.height - 1)
    nx = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
    ny = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    count = nx * ny
    tri_id = np.repeat(np.arange(len(f)), count)
    start = np.repeat(np.cumsum(count) - count, count)
    local = np.arange(count.sum()) - start
    px = lo[tri_id, 0] + local % nx[tri_id]
    py = lo[tri_id, 1] + local // nx[tri_id]
    # inside test with 2D edge functions (either winding)
    a, b, c = tri[tri_id, 0], tri[tri_id, 1], tri[tri_id, 2]

    def edge(p0, p1):
        return (p1[:, 0] - p0[:, 0]) * (py - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (px - p0[:, 0])

    e0, e1, e2 = edge(b, c), edge(c, a), edge(a, b)
    inside = ((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) & (e2 <= 0))
    tri_id, px, py = tri_id[inside], px[inside], py[inside]
    # exact depth: the ray through the pixel centre meets the triangle's plane
    v0 = v[f[tri_id, 0]]
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    rays = _rays(np.stack([px, py], axis=1).astype(np.float64), intr)
    nt = n[tri_id]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (nt * v0).sum(axis=1) / (nt * rays).sum(axis=1)  # the point is t * ray, depth = t
    ok = np.isfinite(t) & (t > 0)
    tri_id, px, py, t, rays = tri_id[ok], px[ok], py[ok], t[ok], rays[ok]
    flat = py * intr.width + px
    order = np.lexsort((t, flat))
    first = np.ones(len(order), dtype=bool)
    first[1:] = flat[order][1:] != flat[order][:-1]
    win = order[first]
    return flat[win], t[win], tri_id[win], rays[win], n


def render_depth(vertices_cam: np.ndarray, faces: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Exact depth only (mm along the axis, 0 = no surface): :func:`render` without the colours."""
    flat, depth_hit, *_ = _zbuffer(np.asarray(vertices_cam, np.float64), np.asarray(faces, np.int64), intr)
    depth = np.zeros(intr.height * intr.width)
    depth[flat] = depth_hit
    return depth.reshape(intr.height, intr.width).astype(np.float32)


def render(
    vertices_cam: np.ndarray,
    faces: np.ndarray,
    intr: Intrinsics,
    *,
    uv: np.ndarray | None = None,
    texture: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer rendering: ``(depth (H, W) float32 mm, 0 = no surface; rgb (H, W, 3) uint8)``.

    The depth is exact per pixel centre (ray-plane intersection); colour is the texture (with
    ``uv``/``texture``) or a grey, times a Lambert term with the light at the camera.
    """
    v = np.asarray(vertices_cam, np.float64)
    f = np.asarray(faces, np.int64)
    flat, depth_hit, hit_tri, rays, n = _zbuffer(v, f, intr)
    depth = np.zeros(intr.height * intr.width)
    depth[flat] = depth_hit
    hit = rays * depth_hit[:, None]
    unit_n = n[hit_tri] / np.linalg.norm(n[hit_tri], axis=1, keepdims=True)
    view = -hit / np.linalg.norm(hit, axis=1, keepdims=True)
    lambert = np.abs((unit_n * view).sum(axis=1))
    if uv is not None and texture is not None:
        bary = _barycentric(hit, v[f[hit_tri, 0]], v[f[hit_tri, 1]], v[f[hit_tri, 2]])
        tex_uv = (bary[:, :, None] * uv[f[hit_tri]]).sum(axis=1)
        th, tw = texture.shape[:2]
        col = texture[
            np.clip((tex_uv[:, 1] * th).astype(int), 0, th - 1), np.clip((tex_uv[:, 0] * tw).astype(int), 0, tw - 1)
        ].astype(np.float64)
    else:
        col = np.full((len(flat), 3), 200.0)
    rgb = np.full((intr.height * intr.width, 3), 40.0)
    rgb[flat] = col * (0.35 + 0.65 * lambert[:, None])
    return (
        depth.reshape(intr.height, intr.width).astype(np.float32),
        np.clip(rgb, 0, 255).astype(np.uint8).reshape(intr.height, intr.width, 3),
    )


def _barycentric(p, a, b, c):
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    w1 = (d11 * d20 - d01 * d21) / den
    w2 = (d00 * d21 - d01 * d20) / den
    return np.stack([1 - w1 - w2, w1, w2], axis=1)


class RayCaster:
    """Exact first hits of camera rays with a triangle mesh (Moller-Trumbore, binned triangles)."""

    def __init__(self, vertices_cam: np.ndarray, faces: np.ndarray, intr: Intrinsics, bin_px: float = 8.0):
        self.v = np.asarray(vertices_cam, np.float64)
        self.f = np.asarray(faces, np.int64)
        self.intr = intr
        self.bin = float(bin_px)
        tri = project(self.v, intr)[self.f]
        lo = np.floor(tri.min(axis=1) / self.bin).astype(np.int64)
        hi = np.floor(tri.max(axis=1) / self.bin).astype(np.int64)
        self.origin = lo.min(axis=0)
        lo -= self.origin
        hi -= self.origin
        self.shape = tuple((hi.max(axis=0) + 1).tolist())
        nx, ny = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
        count = nx * ny
        tri_id = np.repeat(np.arange(len(self.f)), count)
        local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        bx = lo[tri_id, 0] + local % nx[tri_id]
        by = lo[tri_id, 1] + local // nx[tri_id]
        cell = by * self.shape[0] + bx
        order = np.argsort(cell, kind="stable")
        self.cell_tris = tri_id[order]
        self.cell_start = np.searchsorted(cell[order], np.arange(self.shape[0] * self.shape[1] + 1))

    def depth(self, uv: np.ndarray) -> np.ndarray:
        """Depth (mm along the axis) of the first hit at ``(N, 2)`` pixel positions (NaN: none)."""
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        out = np.full(len(uv), np.nan)
        b = np.floor(uv / self.bin).astype(np.int64) - self.origin
        ok = (b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 0] < self.shape[0]) & (b[:, 1] < self.shape[1])
        idx = np.flatnonzero(ok)
        cell = b[idx, 1] * self.shape[0] + b[idx, 0]
        n = self.cell_start[cell + 1] - self.cell_start[cell]
        ray_id = np.repeat(idx, n)
        local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        tri = self.cell_tris[np.repeat(self.cell_start[cell], n) + local]
        d = _rays(uv[ray_id], self.intr)
        v0, v1, v2 = (self.v[self.f[tri, k]] for k in range(3))
        e1, e2 = v1 - v0, v2 - v0
        p = np.cross(d, e2)
        det = (e1 * p).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            s = -v0  # ray origin is the camera centre
            uu = (s * p).sum(1) * inv
            q = np.cross(s, e1)
            vv = (d * q).sum(1) * inv
            t = (e2 * q).sum(1) * inv
        eps = 1e-12
        hit = (np.abs(det) > eps) & (uu >= -1e-9) & (vv >= -1e-9) & (uu + vv <= 1 + 1e-9) & (t > 0)
        t = np.where(hit, t, np.inf)
        best = np.full(len(uv), np.inf)
        np.minimum.at(best, ray_id, t)
        out = np.where(np.isfinite(best), best, np.nan)
        return out


class ScanSurface:
    """A :class:`face3d_core.surface.Surface` of the exact scan (for ground truth)."""

    def __init__(self, caster: RayCaster, origin_mm: np.ndarray):
        self.caster = caster
        self.origin_mm = np.asarray(origin_mm, np.float64)

    def points(self, uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        z = self.caster.depth(uv)
        return _rays(uv, self.caster.intr) * z[:, None] - self.origin_mm

    def project(self, xyz: np.ndarray) -> np.ndarray:
        return project(np.asarray(xyz, np.float64).reshape(-1, 3) + self.origin_mm, self.caster.intr)
