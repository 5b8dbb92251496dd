"""Triangle meshes from depth grids: triangulation, normals, colours, UVs and decimation.

A depth map is a regular grid, so its mesh needs no search: every 2x2 block of valid
pixels ``a b / c d`` gives the triangles ``(a, c, b)`` and ``(c, d, b)``, wound counter-
clockwise as seen from the camera (normals point towards the viewer, +Z). Triangles are
skipped where a corner is masked out or where an edge is much longer than the grid step
at that depth (a jump across a depth discontinuity: the "curtain" between a face and the
wall behind it). Everything is vectorised; there is no Python loop over pixels.

UV convention: ``u = (col + 0.5) / W``, ``v = 1 - (row + 0.5) / H`` (OpenGL / OBJ: ``v = 0``
at the *bottom* row of the texture). The glTF writer flips ``v`` for its top-left origin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

logger = logging.getLogger(__name__)

#: Triangles with an edge longer than this many grid steps (at their depth) are dropped.
DEFAULT_MAX_EDGE_FACTOR = 12.0


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh with per-vertex attributes.

    Attributes:
        vertices_xyz: ``(N, 3) float32`` positions in mm (X right, Y up, Z towards the viewer).
        faces: ``(M, 3) int32`` vertex indices, counter-clockwise seen from outside/front.
        normals: ``(N, 3) float32`` unit vertex normals.
        colors_rgb: ``(N, 3) uint8`` vertex colours, or None.
        uv: ``(N, 2) float32`` texture coordinates (``v = 0`` at the bottom), or None.
        texture_rgb: ``(h, w, 3) uint8`` texture image for ``uv``, or None.
    """

    vertices_xyz: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colors_rgb: np.ndarray | None = None
    uv: np.ndarray | None = None
    texture_rgb: np.ndarray | None = None

    @property
    def n_vertices(self) -> int:
        """Number of vertices."""
        return int(self.vertices_xyz.shape[0])

    @property
    def n_faces(self) -> int:
        """Number of triangles."""
        return int(self.faces.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the vertex, face, normal, colour and UV arrays."""
        arrays = (self.vertices_xyz, self.faces, self.normals, self.colors_rgb, self.uv)
        return int(sum(a.nbytes for a in arrays if a is not None))


def face_normals(vertices: np.ndarray, faces: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    """Return ``(M, 3) float32`` triangle normals (unit, or area-weighted when not normalised)."""
    v = np.asarray(vertices, dtype=np.float32)
    f = np.asarray(faces)
    if f.size == 0:
        return np.zeros((0, 3), np.float32)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    if normalize:
        length = np.linalg.norm(n, axis=1, keepdims=True)
        n = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    return n.astype(np.float32, copy=False)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals.

    Args:
        vertices: ``(N, 3) float`` positions.
        faces: ``(M, 3) int`` triangles.

    Returns:
        ``(N, 3) float32`` unit normals (``(0, 0, 1)`` for vertices without a triangle).
    """
    v = np.asarray(vertices, dtype=np.float32)
    f = np.asarray(faces, dtype=np.int64)
    n_vertices = v.shape[0]
    out = np.zeros((n_vertices, 3), np.float32)
    if f.size:
        fn = face_normals(v, f, normalize=False)  # length = 2 * area: area weighting for free
        idx = f.ravel()
        for axis in range(3):
            out[:, axis] = np.bincount(idx, weights=np.repeat(fn[:, axis], 3), minlength=n_vertices)
    length = np.linalg.norm(out, axis=1, keepdims=True)
    lonely = length[:, 0] <= 0
    out = np.divide(out, length, out=np.zeros_like(out), where=length > 0)
    out[lonely] = (0.0, 0.0, 1.0)
    return out.astype(np.float32, copy=False)


def grid_uv(shape_hw: tuple[int, int], stride: int = 1, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Return ``(h, w, 2) float32`` UVs of the pixels ``[r0:r1:stride, c0:c1:stride]`` of an ``H x W`` image.

    ``window`` is ``(r0, r1, c0, c1)`` (default: the whole image); ``v = 0`` at the bottom row.
    """
    height, width = shape_hw
    r0, r1, c0, c1 = window if window is not None else (0, height, 0, width)
    u = (np.arange(c0, c1, stride, dtype=np.float32) + 0.5) / width
    v = 1.0 - (np.arange(r0, r1, stride, dtype=np.float32) + 0.5) / height
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu, vv], axis=-1)


def grid_mesh(
    points_grid: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    footprint: np.ndarray | None = None,
    max_edge_factor: float | None = DEFAULT_MAX_EDGE_FACTOR,
    colors_grid: np.ndarray | None = None,
    uv_grid: np.ndarray | None = None,
    texture_rgb: np.ndarray | None = None,
    compute_normals: bool = True,
) -> Mesh:
    """Triangulate a grid of points (e.g. a back-projected depth map).

    Works on the bounding box of the valid points with one array per coordinate, so every
    step is a handful of whole-array operations; vertex normals are accumulated on the grid
    (each triangle's area-weighted normal added to its three corners) without any scatter.

    Args:
        points_grid: ``(h, w, 3) float`` points of a regular pixel grid, rows top to bottom.
        valid: ``(h, w) bool`` points to use (default: finite ones).
        footprint: ``(h, w) float`` lateral size of one grid step at each point (``stride *
            z / f`` in mm). With ``max_edge_factor``, triangles with an edge longer than
            ``max_edge_factor * footprint`` (at the edge's nearer end) are dropped.
        max_edge_factor: See ``footprint``; ``None`` keeps every triangle.
        colors_grid: ``(h, w, 3) uint8`` colours per grid point, or ``(n, 3)`` colours of the
            ``n`` valid points in row-major order.
        uv_grid: ``(h, w, 2) float32`` texture coordinates per grid point (or ``(n, 2)`` as above).
        texture_rgb: Texture image for ``uv_grid``.
        compute_normals: Compute vertex normals (else zeros).

    Returns:
        A :class:`Mesh` with only the vertices used by some triangle, in row-major grid order.
    """
    pts = np.asarray(points_grid, dtype=np.float32)
    if pts.ndim != 3 or pts.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) grid, got shape {pts.shape}")
    ok = np.isfinite(pts[..., 2])
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    n_ok = int(ok.sum())
    rows = np.flatnonzero(ok.any(axis=1))
    cols = np.flatnonzero(ok.any(axis=0))
    if n_ok < 3 or len(rows) < 2 or len(cols) < 2:
        empty = np.zeros((0, 3), np.float32)
        return Mesh(
            empty,
            np.zeros((0, 3), np.int32),
            empty,
            None if colors_grid is None else np.zeros((0, 3), np.uint8),
            None if uv_grid is None else np.zeros((0, 2), np.float32),
            None,
        )
    win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    okw = ok[win]
    px, py, pz = (np.ascontiguousarray(pts[win][..., k]) for k in range(3))
    tl, tr = (slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None))
    bl, br = (slice(1, None), slice(None, -1)), (slice(1, None), slice(1, None))
    # grid edges that may be used: both ends valid and (optionally) not too long
    top = okw[tl] & okw[tr]  # a-b (upper row of the 2x2 block)
    bottom = okw[bl] & okw[br]  # c-d
    left = okw[tl] & okw[bl]  # a-c
    right = okw[tr] & okw[br]  # b-d
    diag = okw[bl] & okw[tr]  # c-b (shared diagonal)
    if footprint is not None and max_edge_factor is not None:
        lim = np.float32(max_edge_factor) * np.asarray(footprint, dtype=np.float32)[win]
        lim2 = lim * lim

        def short(s0: tuple[slice, slice], s1: tuple[slice, slice]) -> np.ndarray:
            dx, dy, dz = px[s0] - px[s1], py[s0] - py[s1], pz[s0] - pz[s1]
            with np.errstate(invalid="ignore"):
                return dx * dx + dy * dy + dz * dz <= np.minimum(lim2[s0], lim2[s1])

        top &= short(tl, tr)
        bottom &= short(bl, br)
        left &= short(tl, bl)
        right &= short(tr, br)
        diag &= short(bl, tr)
    upper = left & diag & top  # triangle (a, c, b)
    lower = bottom & right & diag  # triangle (c, d, b)
    # vertices: grid cells used by a triangle
    used = np.zeros(okw.shape, dtype=bool)
    used[tl] |= upper
    used[bl] |= upper | lower
    used[tr] |= upper | lower
    used[br] |= lower
    index = np.full(okw.shape, -1, dtype=np.int32)
    n_used = int(used.sum())
    index[used] = np.arange(n_used, dtype=np.int32)
    faces = np.concatenate(
        [
            np.stack([index[tl][upper], index[bl][upper], index[tr][upper]], axis=1),
            np.stack([index[bl][lower], index[br][lower], index[tr][lower]], axis=1),
        ]
    )
    verts = np.stack([px[used], py[used], pz[used]], axis=1)
    if compute_normals:
        normals = _grid_vertex_normals(px, py, pz, upper, lower, used)
    else:
        normals = np.zeros_like(verts)

    used_of_ok = None

    def per_vertex(attr: np.ndarray | None, dtype) -> np.ndarray | None:
        nonlocal used_of_ok
        if attr is None:
            return None
        arr = np.asarray(attr, dtype=dtype)
        if arr.ndim == 2:  # one row per valid point, row-major: every valid point lies in the window
            if len(arr) != n_ok:
                raise ValueError(f"expected {n_ok} per-point values (one per valid point), got {len(arr)}")
            if used_of_ok is None:
                used_of_ok = used[okw]
            return arr[used_of_ok]
        return arr[win][used]

    colors = per_vertex(colors_grid, np.uint8)
    uv = per_vertex(uv_grid, np.float32)
    return Mesh(verts, faces, normals, colors, uv, texture_rgb if uv is not None else None)


def _grid_vertex_normals(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, upper: np.ndarray, lower: np.ndarray, used: np.ndarray
) -> np.ndarray:
    """Area-weighted vertex normals of a grid mesh, accumulated on the grid (no scatter)."""
    tl, tr = (slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None))
    bl, br = (slice(1, None), slice(None, -1)), (slice(1, None), slice(1, None))
    acc = [np.zeros(px.shape, np.float32) for _ in range(3)]

    def add(p0, p1, p2, mask, corners) -> None:
        # n = (p1 - p0) x (p2 - p0), zero where the triangle is absent
        e1 = [c[p1] - c[p0] for c in (px, py, pz)]
        e2 = [c[p2] - c[p0] for c in (px, py, pz)]
        n = (e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0])
        for k in range(3):
            nk = np.where(mask, n[k], np.float32(0.0))
            for corner in corners:
                acc[k][corner] += nk

    add(tl, bl, tr, upper, (tl, bl, tr))  # triangle (a, c, b)
    add(bl, br, tr, lower, (bl, br, tr))  # triangle (c, d, b)
    normals = np.stack([a[used] for a in acc], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    normals[length[:, 0] <= 0] = (0.0, 0.0, 1.0)
    return normals.astype(np.float32, copy=False)


def remove_unreferenced(mesh: Mesh) -> Mesh:
    """Return the mesh without vertices that no triangle uses."""
    used = np.zeros(mesh.n_vertices, dtype=bool)
    used[mesh.faces.ravel()] = True
    if used.all():
        return mesh
    remap = np.cumsum(used) - 1

    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[used]

    return Mesh(
        mesh.vertices_xyz[used],
        remap[mesh.faces].astype(np.int32),
        mesh.normals[used],
        pick(mesh.colors_rgb),
        pick(mesh.uv),
        mesh.texture_rgb,
    )


def _cluster(mesh: Mesh, cell: float) -> Mesh:
    v = mesh.vertices_xyz.astype(np.float64)
    keys = np.floor((v - v.min(axis=0)) / cell).astype(np.int64)
    span = keys.max(axis=0) + 1
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
    uniq, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.ravel()
    n = len(uniq)
    counts = np.bincount(inverse, minlength=n).astype(np.float64)

    def mean(attr: np.ndarray) -> np.ndarray:
        cols = [
            np.bincount(inverse, weights=attr[:, k].astype(np.float64), minlength=n) / counts
            for k in range(attr.shape[1])
        ]
        return np.stack(cols, axis=1)

    verts = mean(v).astype(np.float32)
    faces = inverse[mesh.faces]
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[ok]
    if len(faces):
        # drop duplicate triangles (same three vertices, any rotation)
        canon = np.sort(faces, axis=1)
        _, first = np.unique(canon, axis=0, return_index=True)
        faces = faces[np.sort(first)]
    colors = None
    if mesh.colors_rgb is not None:
        colors = np.clip(np.rint(mean(mesh.colors_rgb)), 0, 255).astype(np.uint8)
    uv = None if mesh.uv is None else mean(mesh.uv).astype(np.float32)
    out = Mesh(verts, faces.astype(np.int32), np.zeros_like(verts), colors, uv, mesh.texture_rgb)
    out = remove_unreferenced(out)
    return replace(out, normals=vertex_normals(out.vertices_xyz, out.faces))


def decimate_mesh(mesh: Mesh, target_faces: int) -> Mesh:
    """Reduce a mesh to at most ``target_faces`` triangles by vertex clustering.

    Vertices are merged per cubic cell (positions, colours and UVs averaged); the cell size
    is found by bisection. Fast and robust for display; for grid meshes a larger sampling
    stride (see :class:`face3d_core.reconstruct.ReconstructionParams`) is faster still.

    Args:
        mesh: The mesh.
        target_faces: Maximum number of triangles (``>= 1``).

    Returns:
        The decimated mesh (the input itself when it is already small enough).
    """
    if target_faces < 1:
        raise ValueError("target_faces must be >= 1")
    if mesh.n_faces <= target_faces:
        return mesh
    extent = float(np.ptp(mesh.vertices_xyz, axis=0).max()) or 1.0
    # mean edge length as the starting scale
    f = mesh.faces
    v = mesh.vertices_xyz
    edge = float(np.linalg.norm(v[f[:, 0]] - v[f[:, 1]], axis=1).mean()) or 1e-3
    lo, hi = edge * 0.5, edge * np.sqrt(mesh.n_faces / target_faces) * 4.0
    hi = min(max(hi, lo * 2), extent)
    best = _cluster(mesh, hi)
    while best.n_faces > target_faces and hi < extent:
        hi = min(hi * 2.0, extent)
        best = _cluster(mesh, hi)
    for _ in range(10):
        mid = 0.5 * (lo + hi)
        trial = _cluster(mesh, mid)
        if trial.n_faces > target_faces:
            lo = mid
        else:
            hi, best = mid, trial
            if trial.n_faces > 0.9 * target_faces:
                break
    logger.debug("decimate_mesh: %d -> %d faces (cell %.3g)", mesh.n_faces, best.n_faces, hi)
    return best
