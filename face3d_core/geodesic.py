"""Click to measure: the distance between two surface points, straight and along the surface.

:func:`surface_distance` gives, for two points picked on a :class:`~face3d_core.reconstruct.FaceModel3D`
(e.g. the vertices a user clicked), the straight-line distance and the distance along the
surface (a geodesic), with the path as a polyline to draw.

1. **Graph.** Dijkstra (:func:`scipy.sparse.csgraph.dijkstra`) over the mesh's edges, each
   weighted by its length, plus one extra edge across every pair of triangles sharing an edge:
   between the two opposite corners, with the length of the straight line through both
   triangles unfolded into a plane (only where that line crosses the shared edge, so it is an
   exact path on the surface). A grid mesh has only 3 edge directions (up to 41 % too long
   across the missing diagonal); the unfolded edges bring 8 directions and more. The graph is
   built once per mesh and cached.
2. **Refinement** (``refine=True``). The graph path is pulled tight on the surface: its
   points move in the depth map's pixel plane and are lifted onto the surface
   (:class:`~face3d_core.surface.DepthSurface`), each moving towards the midpoint of its
   neighbours within the surface's tangent plane, coarse to fine (8, 16, 32 ... points).
   Where a move would leave the surface (a hole, the outline) the point stays. The result is
   a locally shortest path (the geodesic near the graph path); its length never comes out
   longer than the graph path's.

Distances are in millimetres, in the model's own scale (see :mod:`face3d_core.measure` for
what that scale is worth).
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from face3d_core.mesh import Mesh
from face3d_core.surface import DepthSurface

logger = logging.getLogger(__name__)

_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class SurfacePath:
    """The distance between two picked points.

    Attributes:
        start_xyz: ``(3,) float64`` first point (on the surface, mm).
        end_xyz: ``(3,) float64`` second point.
        straight_mm: Straight-line distance.
        surface_mm: Distance along the surface (refined when asked, else the graph's).
        graph_mm: Length of the Dijkstra path on the mesh graph.
        path_xyz: ``(K, 3) float32`` the path on the surface, from start to end (mm).
        timings_ms: Time per step (``graph``, ``dijkstra``, ``refine``).
    """

    start_xyz: np.ndarray
    end_xyz: np.ndarray
    straight_mm: float
    surface_mm: float
    graph_mm: float
    path_xyz: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


def mesh_graph(mesh: Mesh) -> csr_matrix:
    """The weighted edge graph of a mesh (edges + unfolded opposite-corner edges), cached per mesh.

    Returns:
        ``(N, N)`` symmetric CSR matrix of edge lengths in mm.
    """
    graph = _GRAPHS.get(mesh)
    if graph is None:
        graph = _build_graph(mesh.vertices_xyz, mesh.faces)
        _GRAPHS[mesh] = graph
    return graph


def _build_graph(vertices: np.ndarray, faces: np.ndarray) -> csr_matrix:
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = len(v)
    # half-edges: (u -> w) in face k with opposite corner o
    u = f.ravel()
    w = np.roll(f, -1, axis=1).ravel()
    o = np.roll(f, -2, axis=1).ravel()
    lo, hi = np.minimum(u, w), np.maximum(u, w)
    key = lo * n + hi
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    same = key_sorted[1:] == key_sorted[:-1]
    # the mesh edges, once each
    first = order[np.concatenate([[True], ~same])]
    e_lo, e_hi = lo[first], hi[first]
    e_len = np.linalg.norm(v[e_hi] - v[e_lo], axis=1)
    # interior edges (two half-edges): unfold the two triangles around the shared edge (a, b),
    # p above it, q below; the straight line p-q is on the surface where it crosses a-b
    pair = np.flatnonzero(same)
    h1, h2 = order[pair], order[pair + 1]
    a, b = lo[h1], hi[h1]
    p, q = o[h1], o[h2]
    ab = v[b] - v[a]
    len_ab = np.linalg.norm(ab, axis=1)
    ok = len_ab > 0
    e = np.divide(ab, len_ab[:, None], out=np.zeros_like(ab), where=ok[:, None])
    ap, aq = v[p] - v[a], v[q] - v[a]
    xp, xq = np.einsum("ij,ij->i", ap, e), np.einsum("ij,ij->i", aq, e)
    yp = np.sqrt(np.maximum(np.einsum("ij,ij->i", ap, ap) - xp * xp, 0.0))
    yq = np.sqrt(np.maximum(np.einsum("ij,ij->i", aq, aq) - xq * xq, 0.0))
    ysum = yp + yq
    with np.errstate(invalid="ignore", divide="ignore"):
        x_cross = xp + (xq - xp) * yp / ysum
    crosses = ok & (ysum > 0) & (x_cross > 0) & (x_cross < len_ab) & (p != q)
    p, q = p[crosses], q[crosses]
    u_len = np.sqrt((xp[crosses] - xq[crosses]) ** 2 + ysum[crosses] ** 2)
    # one entry per vertex pair (the shortest, should an unfolded edge repeat an edge)
    s2 = np.concatenate([e_lo, np.minimum(p, q)])
    d2 = np.concatenate([e_hi, np.maximum(p, q)])
    length = np.concatenate([e_len, u_len])
    k2 = s2 * n + d2
    order = np.argsort(k2, kind="stable")
    k2 = k2[order]
    starts = np.flatnonzero(np.concatenate([[True], k2[1:] != k2[:-1]]))
    length = np.maximum(np.minimum.reduceat(length[order], starts), 1e-12)
    s2, d2 = s2[order[starts]], d2[order[starts]]
    rows = np.concatenate([s2, d2])
    cols = np.concatenate([d2, s2])
    return csr_matrix((np.concatenate([length, length]), (rows, cols)), shape=(n, n))


def _nearest_vertex(vertices: np.ndarray, xyz: np.ndarray) -> int:
    d = vertices - np.asarray(xyz, np.float32)
    return int(np.argmin(np.einsum("ij,ij->i", d, d)))


#: Dijkstra first explores only this many straight-line distances around the start (a path
#: on a face is rarely longer); if the end is not reached, the whole graph.
SEARCH_RADIUS_FACTOR = 1.6


def graph_path(mesh: Mesh, start: int, end: int) -> tuple[np.ndarray, float]:
    """Shortest path on :func:`mesh_graph` between two vertex indices.

    Returns:
        ``(vertex indices from start to end, length in mm)``; ``(empty, inf)`` when the two
        vertices are not connected.
    """
    graph = mesh_graph(mesh)
    if start == end:
        return np.array([start]), 0.0
    straight = float(np.linalg.norm(mesh.vertices_xyz[start].astype(np.float64) - mesh.vertices_xyz[end]))
    dist, pred = dijkstra(
        graph, directed=True, indices=start, return_predecessors=True, limit=SEARCH_RADIUS_FACTOR * straight + 1.0
    )
    if not np.isfinite(dist[end]):
        dist, pred = dijkstra(graph, directed=True, indices=start, return_predecessors=True)
    length = float(dist[end])
    if not np.isfinite(length):
        return np.zeros(0, dtype=np.int64), float("inf")
    path = [end]
    while path[-1] != start:
        path.append(int(pred[path[-1]]))
    return np.asarray(path[::-1], dtype=np.int64), length


def _polyline_length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum()) if len(points) > 1 else 0.0


def _resample(points: np.ndarray, count: int) -> np.ndarray:
    """``count`` points evenly spaced along a polyline (by arc length)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:
        return np.repeat(points[:1], count, axis=0)
    target = np.linspace(0.0, arc[-1], count)
    return np.stack([np.interp(target, arc, points[:, k]) for k in range(points.shape[1])], axis=1)


def refine_path(
    surface: DepthSurface,
    path_uv: np.ndarray,
    *,
    final_spacing_px: float = 1.0,
    iterations: int = 30,
    tolerance_px: float = 0.02,
    coarse_to_fine: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Pull a path tight on the surface (see the module docstring).

    Args:
        surface: The surface to stay on.
        path_uv: ``(K, 2)`` the start path in pixel coordinates (end points are kept).
        final_spacing_px: Spacing of the final path's points, in pixels.
        iterations: Most relaxation steps per level.
        tolerance_px: A level ends when no point moves more than this (pixels).
        coarse_to_fine: Start with 9 points and double them (fast on smooth surfaces); else
            relax the path at the final spacing only.

    Returns:
        ``(path_uv (K', 2), path_xyz (K', 3))``.
    """
    uv = np.asarray(path_uv, dtype=np.float64)
    span = float(np.linalg.norm(np.diff(uv, axis=0), axis=1).sum())
    final_count = max(3, int(np.ceil(span / final_spacing_px)) + 1)
    count = min(9, final_count) if coarse_to_fine else final_count
    uv = _resample(uv, count)
    h = 0.5  # pixels, for the surface's tangent vectors
    offsets = np.array([[h, 0.0], [-h, 0.0], [0.0, h], [0.0, -h]])
    while True:
        xyz = surface.points(uv)
        for _ in range(iterations):
            inner = uv[1:-1]
            m = len(inner)
            around = surface.points((inner[None, :, :] + offsets[:, None, :]).reshape(-1, 2)).reshape(4, m, 3)
            du = (around[0] - around[1]) / (2 * h)
            dv = (around[2] - around[3]) / (2 * h)
            delta = 0.5 * (xyz[:-2] + xyz[2:]) - xyz[1:-1]
            # least squares: jac (3x2) @ step = delta, in the tangent plane
            a11, a12, a22 = (du * du).sum(1), (du * dv).sum(1), (dv * dv).sum(1)
            b1, b2 = (du * delta).sum(1), (dv * delta).sum(1)
            det = a11 * a22 - a12 * a12
            with np.errstate(invalid="ignore", divide="ignore"):
                step = np.stack([(a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det], axis=1)
            step = np.where(np.isfinite(step), step, 0.0)
            moved = inner + step
            new_xyz = surface.points(moved)
            ok = np.all(np.isfinite(new_xyz), axis=1)
            uv[1:-1][ok] = moved[ok]
            xyz[1:-1][ok] = new_xyz[ok]
            if not ok.any() or np.abs(step[ok]).max() < tolerance_px:
                break
        if count >= final_count:
            return uv, xyz
        count = min(2 * count - 1, final_count)
        # densify: new points evenly spaced by 3D arc length, placed by their pixels
        seg = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        target = np.linspace(0.0, arc[-1], count)
        uv = np.stack([np.interp(target, arc, uv[:, k]) for k in range(2)], axis=1)


def _valid_path(surface: DepthSurface, uv: np.ndarray, xyz: np.ndarray) -> bool:
    """Every point on the surface, and no segment across a hole (its quarter points are on it too)."""
    if not (np.isfinite(uv).all() and np.isfinite(xyz).all()):
        return False
    inner = np.concatenate([uv[:-1] + f * (uv[1:] - uv[:-1]) for f in (0.25, 0.5, 0.75)])
    return bool(np.isfinite(surface.depth(inner)).all())


def _refined(surface: DepthSurface, path_xyz: np.ndarray, spacing_px: float) -> np.ndarray | None:
    """The graph path pulled tight, or None where it cannot be refined safely.

    Coarse to fine first (fast); if that leaves a point off the surface or a chord across a
    hole, again at the final spacing only, starting from the graph path itself (whose edges
    all lie on the surface), with more iterations.
    """
    uv0 = surface.project(path_xyz)
    uv, xyz = refine_path(surface, uv0, final_spacing_px=spacing_px)
    if _valid_path(surface, uv, xyz):
        return xyz
    logger.debug("Coarse-to-fine refinement crossed a hole; refining at full resolution only")
    uv, xyz = refine_path(surface, uv0, final_spacing_px=spacing_px, iterations=300, coarse_to_fine=False)
    return xyz if _valid_path(surface, uv, xyz) else None


def surface_distance(
    model,
    start_xyz: np.ndarray,
    end_xyz: np.ndarray,
    *,
    refine: bool = True,
    mesh: Mesh | None = None,
) -> SurfacePath:
    """Distance between two picked points, straight and along the surface, with the path.

    Args:
        model: The :class:`~face3d_core.reconstruct.FaceModel3D` (with a mesh).
        start_xyz: ``(3,)`` first point in the model's output frame (mm), e.g. a clicked
            vertex; it is snapped to the nearest mesh vertex.
        end_xyz: ``(3,)`` second point.
        refine: Pull the graph path tight on the surface (see the module docstring).
        mesh: The mesh to search the path on (default the model's own). A coarser grid of the
            same surface (:func:`face3d_core.coarsen.coarser_mesh`) bounds the graph's cost for
            a very large model; the refinement still follows the model's own surface.

    Returns:
        The :class:`SurfacePath`.

    Raises:
        ValueError: The model has no mesh, or the two points lie on separate pieces of it.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    mesh = model.mesh if mesh is None else mesh
    if mesh is None or mesh.n_faces == 0:
        raise ValueError("surface distances need the mesh (representation='mesh')")
    cached = mesh in _GRAPHS
    mesh_graph(mesh)
    timings["graph"] = 0.0 if cached else (time.perf_counter() - clock) * 1000.0
    clock = time.perf_counter()
    i = _nearest_vertex(mesh.vertices_xyz, start_xyz)
    j = _nearest_vertex(mesh.vertices_xyz, end_xyz)
    indices, graph_len = graph_path(mesh, i, j)
    timings["dijkstra"] = (time.perf_counter() - clock) * 1000.0
    if not np.isfinite(graph_len):
        raise ValueError("the two points lie on separate pieces of the surface")
    start = mesh.vertices_xyz[i].astype(np.float64)
    end = mesh.vertices_xyz[j].astype(np.float64)
    path = mesh.vertices_xyz[indices].astype(np.float64)
    surface_len = graph_len
    clock = time.perf_counter()
    if refine and len(indices) > 2:
        refined = _refined(DepthSurface(model, strict=False), path, spacing_px=1.5 * model.stride)
        if refined is not None and _polyline_length(refined) <= graph_len:
            refined[0], refined[-1] = start, end  # the exact picked vertices
            path, surface_len = refined, _polyline_length(refined)
    timings["refine"] = (time.perf_counter() - clock) * 1000.0
    return SurfacePath(
        start,
        end,
        float(np.linalg.norm(end - start)),
        float(surface_len),
        float(graph_len),
        path.astype(np.float32),
        timings,
    )
