"""Geometry speed: the cheap step (refinement -> points -> mesh) for 0.25, 1 and 4 megapixel depth maps.

The scene is a synthetic head in front of a wall (ray-cast ellipsoid + nose, as relative
inverse depth ``d = 3e4 / z``, 0.1 % spikes), the face filling about half the map like a face
crop. For each size the table gives the median time of

* each stage of :func:`face3d_core.reconstruct.reconstruct_face` at full density (stride 1);
* the whole re-derivation after a smoothing change, at full density and at the display
  budget (``max_points=80_000``, the dashboard's point budget), points-only and mesh;
* the light mesh a 3D view shows of a large model (the dashboard's budget of 80k triangles):
  a second reconstruction at a coarser stride (``max_points=40_000``, what the 3D tab did
  before) against :func:`face3d_core.coarsen.coarser_mesh` of the model already built;
* simple baselines where they make sense: ``scipy.ndimage.gaussian_filter`` against our
  masked (normalised-convolution) OpenCV smoothing, ``scipy.ndimage.median_filter`` against
  ``cv2.medianBlur``, and a per-pixel Python-loop triangulation (timed on a band of rows and
  scaled to the full map) against the vectorised ``grid_mesh``;

and the number of points / triangles and the JSON bytes of the display figure (plotly
``Scatter3d`` / ``Mesh3d`` with numpy arrays, which plotly >= 6 sends base64-encoded).

Run: ``.venv/bin/python benchmarks/geometry_speed.py [--sizes 0.25 1 4] [--repeats 5]``.
The network is not part of this (see ``benchmarks/depth_speed.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine_description, median_ms, print_table  # noqa: E402
from face3d_core import refine  # noqa: E402
from face3d_core.coarsen import coarser_mesh  # noqa: E402
from face3d_core.faces import Face  # noqa: E402
from face3d_core.geometry import Intrinsics  # noqa: E402
from face3d_core.mesh import grid_mesh  # noqa: E402
from face3d_core.reconstruct import ReconstructionParams, reconstruct_face  # noqa: E402

DISPLAY_POINTS = 80_000
DISPLAY_TRIANGLES = 80_000


def head_scene(side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Face]:
    """``(depth_rel, image_rgb, face)`` of a head in front of a wall, ``side x side`` pixels."""
    fov = 50.0
    intr = Intrinsics.from_fov(side, side, fov)
    axes = np.array([75.0, 105.0, 90.0])
    # distance so that the head spans ~55 % of the width, as in a face crop with margin 0.5
    z_center = axes[0] * intr.fx / (0.275 * side) + axes[2]
    v, u = np.mgrid[0:side, 0:side].astype(np.float64)
    dx, dy = (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy
    qa = (dx / axes[0]) ** 2 + (dy / axes[1]) ** 2 + 1.0 / axes[2] ** 2
    qb = -2.0 * z_center / axes[2] ** 2
    qc = (z_center / axes[2]) ** 2 - 1.0
    disc = qb * qb - 4 * qa * qc
    head = disc >= 0
    t = np.where(head, (-qb - np.sqrt(np.clip(disc, 0, None))) / (2 * qa), 0.0)
    x, y = t * dx, t * dy
    t = t - head * 25.0 * np.exp(-((x / 12.0) ** 2 + ((y - 5.0) / 22.0) ** 2))
    z = np.where(head, t, 2.0 * z_center)
    rng = np.random.default_rng(seed)
    depth = (3.0e4 / z).astype(np.float32)
    spikes = rng.random(depth.shape) < 0.001
    depth[spikes] *= rng.uniform(0.7, 1.3, int(spikes.sum())).astype(np.float32)
    marks_mm = np.array([[-31.5, -30.0], [31.5, -30.0], [0.0, 8.0], [-25.0, 45.0], [25.0, 45.0]])
    r2 = (marks_mm[:, 0] / axes[0]) ** 2 + (marks_mm[:, 1] / axes[1]) ** 2
    z_marks = z_center - axes[2] * np.sqrt(1 - r2)
    marks = marks_mm / z_marks[:, None] * intr.fx + [intr.cx, intr.cy]
    rows, cols = np.nonzero(head)
    box = (cols.min(), rows.min() + 0.25 * np.ptp(rows), np.ptp(cols), 0.75 * np.ptp(rows))
    image = rng.integers(0, 256, (side, side, 3)).astype(np.uint8)
    return depth, image, Face(box, marks.astype(np.float32), 0.9)


def loop_mesh(valid: np.ndarray) -> int:
    """Baseline: triangulate a grid with a Python loop over the pixels (count only)."""
    h, w = valid.shape
    index = -np.ones((h, w), np.int64)
    count = 0
    for r in range(h):
        for c in range(w):
            if valid[r, c]:
                index[r, c] = count
                count += 1
    tris = []
    for r in range(h - 1):
        for c in range(w - 1):
            a, b, cc, d = index[r, c], index[r, c + 1], index[r + 1, c], index[r + 1, c + 1]
            if a >= 0 and b >= 0 and cc >= 0:
                tris.append((a, cc, b))
            if b >= 0 and cc >= 0 and d >= 0:
                tris.append((cc, d, b))
    return len(tris)


def figure_bytes(model) -> tuple[int, int]:
    """JSON bytes of the display figures (points, mesh) of a model, or (-1, -1) without plotly."""
    try:
        import plotly.graph_objects as go
    except ImportError:  # pragma: no cover
        return -1, -1
    pts = model.points_xyz
    scatter = go.Figure(
        go.Scatter3d(
            x=pts[:, 0],
            y=pts[:, 1],
            z=pts[:, 2],
            mode="markers",
            hoverinfo="skip",
            marker={"size": 2, "color": model.depth_values, "colorscale": "gray"},
        )
    )
    mesh = model.mesh
    mesh_fig = go.Figure(
        go.Mesh3d(
            x=mesh.vertices_xyz[:, 0],
            y=mesh.vertices_xyz[:, 1],
            z=mesh.vertices_xyz[:, 2],
            i=mesh.faces[:, 0],
            j=mesh.faces[:, 1],
            k=mesh.faces[:, 2],
            hoverinfo="skip",
            intensity=mesh.colors_rgb[:, 0].astype(np.float32) / 255.0,
            colorscale="gray",
        )
    )
    return len(scatter.to_json()), len(mesh_fig.to_json())


def bench(mp: float, repeats: int) -> dict[str, str]:
    side = int(round(np.sqrt(mp * 1e6)))
    depth, image, face = head_scene(side)
    scene = (depth, image, face)
    out: dict[str, str] = {"size": f"{side}x{side}"}

    full = ReconstructionParams(fov_deg=50.0, smoothing_sigma=2.0)
    model = reconstruct_face(scene, full)  # warm-up, stage breakdown below
    stage_runs = [reconstruct_face(scene, full).timings_ms for _ in range(repeats)]
    for stage in stage_runs[0]:
        out[f"stage {stage}"] = f"{np.median([r[stage] for r in stage_runs]):.1f}"
    points_only = full.replace(representation="points")
    out["full: points only"] = f"{median_ms(lambda: reconstruct_face(scene, points_only), repeats):.0f}"
    out["full: points + mesh"] = f"{median_ms(lambda: reconstruct_face(scene, full), repeats):.0f}"
    out["full: points / triangles"] = f"{model.n_points:,} / {model.n_faces:,}"

    display = full.replace(max_points=DISPLAY_POINTS)
    display_points = display.replace(representation="points")
    out["display: points only"] = f"{median_ms(lambda: reconstruct_face(scene, display_points), repeats):.0f}"
    out["display: points + mesh"] = f"{median_ms(lambda: reconstruct_face(scene, display), repeats):.0f}"
    shown = reconstruct_face(scene, display)
    out["display: stride"] = str(shown.stride)
    out["display: points / triangles"] = f"{shown.n_points:,} / {shown.n_faces:,}"
    scatter_b, mesh_b = figure_bytes(shown)
    out["display: figure MB (points / mesh)"] = f"{scatter_b / 1e6:.2f} / {mesh_b / 1e6:.2f}"
    bilateral = display.replace(edge_preserving=True)
    smooth_ms = [reconstruct_face(scene, bilateral).timings_ms["smooth"] for _ in range(max(1, repeats // 2))]
    out["display: edge-preserving smooth stage"] = f"{np.median(smooth_ms):.1f}"

    # the light display mesh of the full-density model
    second = full.replace(max_points=DISPLAY_TRIANGLES // 2)
    baseline_ms = median_ms(lambda: reconstruct_face(scene, second), repeats)
    ours_ms = median_ms(lambda: coarser_mesh(model, DISPLAY_TRIANGLES), repeats)
    out["view mesh: 2nd reconstruction / coarser_mesh"] = f"{baseline_ms:.0f} / {ours_ms:.0f}"
    light = coarser_mesh(model, DISPLAY_TRIANGLES)
    out["view mesh triangles: 2nd reconstruction / coarser_mesh"] = (
        f"{reconstruct_face(scene, second).n_faces:,} / {light.n_faces:,}"
    )

    # baselines
    from scipy import ndimage

    mask = model.mask | np.isfinite(model.depth_mm)
    d = depth.copy()
    out["gauss s=2: ours (cv2, masked) / scipy"] = (
        f"{median_ms(lambda: refine.smooth_depth(d, 2.0, valid=mask), repeats):.1f} / "
        f"{median_ms(lambda: ndimage.gaussian_filter(d, 2.0), repeats):.1f}"
    )
    import cv2

    out["median 5x5: cv2 / scipy"] = (
        f"{median_ms(lambda: cv2.medianBlur(d, 5), repeats):.1f} / "
        f"{median_ms(lambda: ndimage.median_filter(d, 5), max(1, repeats // 2), warmup=0):.0f}"
    )
    rows_g, cols_g = np.mgrid[0:side, 0:side].astype(np.float32)
    grid = np.dstack([cols_g, -rows_g, np.zeros_like(cols_g)])
    ours = median_ms(lambda: grid_mesh(grid, model.mask, compute_normals=False), repeats)
    band = slice(0, min(side, 100 if side > 1000 else 200))
    start = time.perf_counter()
    loop_mesh(model.mask[band])
    loop_ms = (time.perf_counter() - start) * 1000.0 * side / (band.stop - band.start)
    out["triangulate: ours / python loop (est.)"] = f"{ours:.0f} / {loop_ms:.0f}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.25, 1.0, 4.0], help="megapixels")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"# geometry speed, numpy {np.__version__}; times in ms (median of {args.repeats})")
    print(f"# {machine_description()}\n")
    results = [bench(mp, args.repeats) for mp in args.sizes]
    keys = list(results[0])
    rows = [[k] + [r.get(k, "") for r in results] for k in keys[1:]]
    columns = [f"{mp:g} MP ({r['size']})" for mp, r in zip(args.sizes, results, strict=True)]
    print_table(["stage", *columns], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
