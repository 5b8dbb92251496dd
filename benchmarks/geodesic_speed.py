"""Click to measure: time and accuracy of surface distances at display density.

Scenes: the synthetic head of ``geometry_speed.py`` (a 1 MP depth map reduced to the
dashboard's display budget, ``max_points=80_000``: about 51k points) for speed, and a metric
sphere (radius 60 mm, 0.3 MP at stride 1 and 2) for accuracy against great circles.
Pairs of vertices 20-120 mm apart (typical clicks) are drawn at random.

Rows:

* **baseline**: Dijkstra over the plain mesh edges (what ``scipy.sparse.csgraph`` gives
  out of the box), graph built once;
* **ours, graph only**: Dijkstra over the edges plus the unfolded opposite-corner edges;
* **ours, refined** (the default of :func:`face3d_core.geodesic.surface_distance`): the graph
  path pulled tight on the surface;
* **first click**: the same, including building the graph (done once per mesh).

Run: ``.venv/bin/python benchmarks/geodesic_speed.py [--pairs 20]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import print_table  # noqa: E402
from benchmarks.geometry_speed import DISPLAY_POINTS, head_scene  # noqa: E402
from face3d_core import geodesic  # noqa: E402
from face3d_core.reconstruct import ReconstructionParams, reconstruct_face  # noqa: E402
from tests.test_cli_mesh import sphere_depth  # noqa: E402


def plain_graph(mesh):
    f = mesh.faces.astype(np.int64)
    a = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    b = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(lo * mesh.n_vertices + hi)
    lo, hi = key // mesh.n_vertices, key % mesh.n_vertices
    w = np.linalg.norm(mesh.vertices_xyz[lo].astype(np.float64) - mesh.vertices_xyz[hi], axis=1)
    n = mesh.n_vertices
    return coo_matrix((np.concatenate([w, w]), (np.concatenate([lo, hi]), np.concatenate([hi, lo]))), (n, n)).tocsr()


def plain_length(graph, i, j):
    return float(dijkstra(graph, directed=True, indices=i)[j])


def pairs_of(model, n, seed=0):
    rng = np.random.default_rng(seed)
    v = model.mesh.vertices_xyz.astype(np.float64)
    out = []
    while len(out) < n:
        i, j = (int(k) for k in rng.integers(0, len(v), 2))
        if 20.0 <= np.linalg.norm(v[i] - v[j]) <= 120.0:
            out.append((i, j))
    return out


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - start) * 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20)
    args = parser.parse_args(argv)
    print(
        f"# geodesic speed, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"median (max) ms over {args.pairs} clicks"
    )
    depth, image, face = head_scene(1000)
    model = reconstruct_face((depth, image, face), ReconstructionParams(max_points=DISPLAY_POINTS))
    v = model.mesh.vertices_xyz.astype(np.float64)
    pairs = pairs_of(model, args.pairs)
    base_graph = plain_graph(model.mesh)
    geodesic.mesh_graph(model.mesh)  # built once per mesh (timed below as the first click)
    results = {"baseline (plain edges)": [], "ours, graph only": [], "ours, refined": []}
    for i, j in pairs:
        results["baseline (plain edges)"].append(timed(lambda i=i, j=j: plain_length(base_graph, i, j))[1])
        results["ours, graph only"].append(
            timed(lambda i=i, j=j: geodesic.surface_distance(model, v[i], v[j], refine=False))[1]
        )
        results["ours, refined"].append(timed(lambda i=i, j=j: geodesic.surface_distance(model, v[i], v[j]))[1])
    firsts = []
    for _ in range(5):
        fresh = reconstruct_face((depth, image, face), ReconstructionParams(max_points=DISPLAY_POINTS))
        i, j = pairs[0]
        firsts.append(timed(lambda fresh=fresh, i=i, j=j: geodesic.surface_distance(fresh, v[i], v[j]))[1])
    rows = [[k, f"{statistics.median(t):.1f} ({max(t):.1f})"] for k, t in results.items()]
    rows.append(["first click (builds the graph)", f"{statistics.median(firsts):.1f} ({max(firsts):.1f})"])
    print(f"\nhead, 1 MP depth map at display density: {model.n_points} points, {model.n_faces} triangles\n")
    print_table(["method", "ms per click"], rows)

    print("\naccuracy on a metric sphere (r = 60 mm), relative error of the surface distance\n")
    table = []
    radius, center = 60.0, np.array([10.0, -5.0, 400.0])
    center_out = np.array([center[0], -center[1], -center[2]])
    for stride in (1, 2):
        params = ReconstructionParams(
            depth_kind="metric", fov_deg=60.0, smoothing_sigma=0, stride=stride, center="none"
        )
        d = sphere_depth(480, 640, 60.0, tuple(center), radius)
        sphere = reconstruct_face(np.where(d > 0, d, np.nan), params)
        sv = sphere.mesh.vertices_xyz.astype(np.float64)
        graph = plain_graph(sphere.mesh)
        errors = {"baseline (plain edges)": [], "ours, graph only": [], "ours, refined": []}
        for i, j in pairs_of(sphere, args.pairs, seed=stride):
            ua, ub = (sv[i] - center_out) / radius, (sv[j] - center_out) / radius
            truth = radius * np.arccos(np.clip(ua @ ub, -1, 1))
            errors["baseline (plain edges)"].append(plain_length(graph, i, j) / truth - 1)
            errors["ours, graph only"].append(
                geodesic.surface_distance(sphere, sv[i], sv[j], refine=False).surface_mm / truth - 1
            )
            errors["ours, refined"].append(geodesic.surface_distance(sphere, sv[i], sv[j]).surface_mm / truth - 1)
        for k, e in errors.items():
            e = np.abs(e) * 100
            table.append(
                [f"stride {stride} ({sphere.n_points} points)", k, f"{np.median(e):.3f} %", f"{e.max():.3f} %"]
            )
    print_table(["sphere", "method", "median error", "max error"], table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
