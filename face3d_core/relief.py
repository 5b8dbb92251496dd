"""A printable relief: the face as one closed solid with side walls and a flat base.

A depth map seen from the camera is a height field, so the relief is built on its pixel
grid: the face surface on top, a flat base underneath and vertical walls along the outline.
Every step keeps it one closed body (a 2-manifold without boundary):

1. **Region.** The valid pixels of the depth map (the face mask); only the largest
   4-connected island is kept and its holes are filled (their depth is interpolated
   smoothly with :func:`face3d_core.refine.fill_holes`).
2. **Grid.** The region is resampled every ``k`` pixels so that the printed grid step is about
   ``grid_step_mm`` (0.4 mm, a common nozzle width, by default). The solid has at most
   ``max_triangles`` triangles (:data:`MAX_RELIEF_TRIANGLES`, 1.5 M: finer than an FDM nozzle or a
   resin printer's pixels resolve at any width up to 300 mm, and what slicers take in seconds):
   where the width asks for more, the step grows until the solid fits (``k`` is then a fraction
   of a pixel and the depth is interpolated bilinearly between pixels), and
   :attr:`ReliefSolid.budget_applied` says so.
3. **Cells.** A grid cell is used when its four corners are in the region; again only the
   largest edge-connected (4-connected) group of cells is kept and its holes are filled,
   a hole being any group of missing cells not edge-connected to the outside. Then no two
   cells can touch only at a corner (a "pinch", where the surface would not be a manifold):
   if cells ``a`` and ``d`` touched diagonally and were joined by a path of cells, that path
   would enclose one of the two missing cells, which would then be a hole and filled. The
   cells form a topological disc and its outline is one simple closed loop.
4. **Solid.** Top: two triangles per cell, counter-clockwise seen from above. Base: the same
   triangles, reversed, at ``z = 0``. Walls: a vertical quad under every outline edge.
   Every edge is then shared by exactly two triangles that traverse it in opposite
   directions, so the solid is watertight, consistently wound and its normals point out.

Geometry: the relief is an orthographic height field over the photo's image plane (what a
relief is): ``x`` right and ``y`` up in the image, scaled so that the solid is ``width_mm``
wide; the height above the base is ``base_mm`` at the farthest face point plus the
face's depth times the same scale (true proportions at the face's distance) times
``relief`` (exaggeration). The face looks along +Z; the base lies on ``z = 0``, so it prints
face up. Units: millimetres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from face3d_core.mesh import Mesh, vertex_normals
from face3d_core.refine import fill_holes

logger = logging.getLogger(__name__)

#: Default width of the printed relief (mm).
DEFAULT_WIDTH_MM = 80.0
#: Default thickness of the base under the farthest face point (mm).
DEFAULT_BASE_MM = 3.0
#: Default lateral grid step of the printed surface (mm): about a 0.4 mm nozzle.
DEFAULT_GRID_STEP_MM = 0.4
#: Most triangles of a relief solid (see the module docstring): a 300 mm relief of a 40-megapixel
#: photo once had 3.8 M (a 190 MB STL that a slicer could not even report on within 5 minutes).
MAX_RELIEF_TRIANGLES = 1_500_000
#: Default relief exaggeration. At true proportions (1) a whole face 80 mm wide is 52-55 mm deep
#: above the base (measured on three photos and a rendered head scan): a block two thirds as deep as
#: it is wide, which prints for hours and turns the near-vertical cheeks and ears into coarse stair
#: steps. Half the depth (about 30 mm with the base) keeps nose, lips and eyes readable and prints in
#: half the time; from one photo the true depth is an assumption anyway (see :mod:`face3d_core.measure`).
DEFAULT_RELIEF = 0.5


@dataclass(frozen=True)
class ReliefSolid:
    """A relief solid and what was done to make it one closed body.

    Attributes:
        mesh: The closed triangle mesh (mm, base on ``z = 0``, face towards +Z).
        size_mm: ``(3,)`` extent in x, y, z.
        grid_step_mm: Lateral distance between neighbouring surface vertices.
        islands_dropped: Number of smaller islands of the mask that were left out.
        holes_filled_px: Pixels of the depth map filled inside the outline.
        budget_applied: True when the triangle budget made the grid coarser than asked.
        max_triangles: The triangle budget it was made within.
        pixel_limited: True when one depth-map pixel is already coarser than the asked grid step
            at this width (the photo's face has too few pixels for a finer print).
    """

    mesh: Mesh
    size_mm: np.ndarray
    grid_step_mm: float
    islands_dropped: int
    holes_filled_px: int
    budget_applied: bool = False
    max_triangles: int = MAX_RELIEF_TRIANGLES
    pixel_limited: bool = False

    def describe(self) -> str:
        """One line for the user: size, triangles, grid step, and the budget where it applied."""
        x, y, z = self.size_mm
        text = f"{x:.0f} × {y:.0f} × {z:.0f} mm, {self.mesh.n_faces:,} triangles, grid {self.grid_step_mm:.2f} mm"
        if self.budget_applied:
            text += f" (coarser than asked, to stay within {self.max_triangles / 1e6:.3g} M triangles for printing)"
        elif self.pixel_limited:
            text += " (one pixel of the depth map at this width: the face has too few pixels for a finer grid)"
        return text


def relief_max_points(width_mm: float, grid_step_mm: float = DEFAULT_GRID_STEP_MM) -> int:
    """Points of the 3D model a relief of ``width_mm`` needs: enough for its grid, never more than its budget.

    The grid is ``width_mm / grid_step_mm`` columns wide; a face is at most about twice as tall as
    wide, so four times the square of that is ample. A reconstruction of that many points (not
    every pixel of a 40-megapixel photo) is all a relief is made of.
    """
    columns = max(1.0, float(width_mm) / max(float(grid_step_mm), 1e-3))
    return int(min(MAX_RELIEF_TRIANGLES // 2, max(10_000, 4 * columns * columns)))


def _largest_component(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Largest 4-connected component (and how many others there were)."""
    from scipy import ndimage  # imported here: the CLI starts faster without it

    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask.copy(), 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels == int(np.argmax(sizes)), n - 1


def _sample(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``values`` (finite) at fractional positions ``rows x cols``, interpolated bilinearly (exact at whole ones)."""
    r0 = np.minimum(np.floor(rows).astype(np.int64), values.shape[0] - 1)
    c0 = np.minimum(np.floor(cols).astype(np.int64), values.shape[1] - 1)
    r1, c1 = np.minimum(r0 + 1, values.shape[0] - 1), np.minimum(c0 + 1, values.shape[1] - 1)
    wr, wc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = values[r0][:, c0] * (1 - wc) + values[r0][:, c1] * wc
    bottom = values[r1][:, c0] * (1 - wc) + values[r1][:, c1] * wc
    return (top * (1 - wr) + bottom * wr).astype(np.float32)


def _grid_cells(region: np.ndarray, depth: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid every ``k`` pixels: ``(vertex valid, vertex depth, cells)`` (cells: see the module docstring).

    Raises:
        ValueError: The region is too small or too thin at this step.
    """
    from scipy import ndimage

    rows = np.arange(0.0, region.shape[0] - 1 + 1e-9, k)
    cols = np.arange(0.0, region.shape[1] - 1 + 1e-9, k)
    if float(k).is_integer():  # whole pixels: the pixels themselves
        step = int(k)
        grid_valid, grid_depth = region[::step, ::step], depth[::step, ::step]
    else:  # a vertex is in the region when its nearest pixel is
        near_r, near_c = np.rint(rows).astype(np.int64), np.rint(cols).astype(np.int64)
        grid_valid, grid_depth = region[near_r][:, near_c], _sample(depth, rows, cols)
    if min(grid_valid.shape) < 2:
        raise ValueError("the depth map has too few valid pixels for a relief")
    cells = grid_valid[:-1, :-1] & grid_valid[:-1, 1:] & grid_valid[1:, :-1] & grid_valid[1:, 1:]
    cells, _ = _largest_component(cells)
    if not cells.any():
        raise ValueError("the face region is too thin for a relief")
    cells = ndimage.binary_fill_holes(cells)  # 4-connected background: see the module docstring
    return grid_valid, grid_depth, cells


def _triangles(cells: np.ndarray) -> int:
    """Triangles of the solid of ``cells``: two per cell on top and at the base, two per outline edge."""
    padded = np.pad(cells, 1)
    outline = int((padded[1:, :] != padded[:-1, :]).sum() + (padded[:, 1:] != padded[:, :-1]).sum())
    return 4 * int(cells.sum()) + 2 * outline


def relief_from_depth(
    depth_mm: np.ndarray,
    pixel_pitch_mm: float,
    *,
    width_mm: float = DEFAULT_WIDTH_MM,
    base_mm: float = DEFAULT_BASE_MM,
    relief: float = 1.0,
    grid_step_mm: float = DEFAULT_GRID_STEP_MM,
    max_triangles: int = MAX_RELIEF_TRIANGLES,
) -> ReliefSolid:
    """Build the closed relief solid from a metric depth map.

    Args:
        depth_mm: ``(H, W) float`` depth along the optical axis in mm; ``NaN`` (or ``<= 0``)
            outside the face.
        pixel_pitch_mm: Lateral size of one pixel at the face's distance (``depth / focal_px``),
            mm; it sets the ratio of depth to width (true proportions).
        width_mm: Width of the solid (x extent), mm.
        base_mm: Thickness of the base under the farthest face point, mm (``> 0``).
        relief: Exaggeration of the face's depth (1 = true proportions).
        grid_step_mm: Target lateral grid step of the printed surface, mm.
        max_triangles: Most triangles of the solid (the grid grows coarser beyond).

    Returns:
        The :class:`ReliefSolid`.

    Raises:
        ValueError: Invalid parameters, or fewer than 2 x 2 valid pixels.
    """
    from scipy import ndimage

    if not (width_mm > 0 and base_mm > 0 and relief > 0 and grid_step_mm > 0 and pixel_pitch_mm > 0):
        raise ValueError("width_mm, base_mm, relief, grid_step_mm and pixel_pitch_mm must be > 0")
    if max_triangles < 100:
        raise ValueError("max_triangles must be at least 100")
    depth = np.asarray(depth_mm, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"expected an (H, W) depth map, got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    region, islands_dropped = _largest_component(valid)
    if region.sum() < 4:
        raise ValueError("the depth map has too few valid pixels for a relief")
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    region = ndimage.binary_fill_holes(region[window])
    depth = np.where(region & valid[window], depth[window], np.float32(np.nan))
    holes_filled = int((region & ~valid[window]).sum())
    depth = fill_holes(depth)  # smooth values for filled holes and the grid's outside corners

    # the grid: every k-th pixel, k from the printed size of one pixel, coarser if the budget asks
    mm_per_px = width_mm / max(int(region.shape[1]) - 1, 1)
    k: float = max(1, int(np.floor(grid_step_mm / mm_per_px)))
    grid_valid, grid_depth, cells = _grid_cells(region, depth, k)
    budget_applied = False
    triangles = _triangles(cells)
    while triangles > max_triangles:
        budget_applied = True
        k *= max(1.02, 0.999 * float(np.sqrt(triangles / max_triangles)))  # area goes with 1 / k^2
        grid_valid, grid_depth, cells = _grid_cells(region, depth, k)
        triangles = _triangles(cells)

    # vertices of the used cells
    gh, gw = grid_valid.shape
    used = np.zeros((gh, gw), dtype=bool)
    used[:-1, :-1] |= cells
    used[:-1, 1:] |= cells
    used[1:, :-1] |= cells
    used[1:, 1:] |= cells
    index = np.full((gh, gw), -1, dtype=np.int64)
    n = int(used.sum())
    index[used] = np.arange(n)
    vr, vc = np.nonzero(used)
    z_face = grid_depth[vr, vc].astype(np.float64)
    # true proportions: depth in pixels of the same pitch, then the printed scale
    scale = width_mm / (float(vc.max() - vc.min()) * k)  # printed mm per depth-map pixel
    height = base_mm + (z_face.max() - z_face) / pixel_pitch_mm * scale * relief
    x = (vc - vc.min()) * k * scale
    y = (vr.max() - vr) * k * scale
    top = np.stack([x, y, height], axis=1)
    bottom = np.stack([x, y, np.zeros(n)], axis=1)
    vertices = np.concatenate([top, bottom]).astype(np.float32)

    # top triangles (counter-clockwise seen from +Z: image rows go down, y up)
    ci, cj = np.nonzero(cells)
    a, b = index[ci, cj], index[ci, cj + 1]
    c, d = index[ci + 1, cj], index[ci + 1, cj + 1]
    top_faces = np.concatenate([np.stack([a, c, b], axis=1), np.stack([c, d, b], axis=1)])
    base_faces = top_faces[:, ::-1] + n

    # walls under the outline: directed top edges used by one triangle only
    edges = np.concatenate([top_faces[:, [0, 1]], top_faces[:, [1, 2]], top_faces[:, [2, 0]]])
    key = np.minimum(edges[:, 0], edges[:, 1]) * n + np.maximum(edges[:, 0], edges[:, 1])
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    outline = edges[counts[inverse.ravel()] == 1]
    u, v = outline[:, 0], outline[:, 1]
    wall_faces = np.concatenate([np.stack([v, u, u + n], axis=1), np.stack([v, u + n, v + n], axis=1)])

    faces = np.concatenate([top_faces, base_faces, wall_faces]).astype(np.int32)
    mesh = Mesh(vertices, faces, vertex_normals(vertices, faces))
    size = vertices.max(axis=0) - vertices.min(axis=0)
    logger.info(
        "Relief solid: %d vertices, %d triangles, %.1f x %.1f x %.1f mm, grid step %.2f mm",
        mesh.n_vertices,
        mesh.n_faces,
        *size,
        k * scale,
    )
    step_mm = float(k * scale)
    pixel_limited = not budget_applied and k == 1 and step_mm > 1.05 * grid_step_mm
    return ReliefSolid(
        mesh,
        size.astype(np.float64),
        step_mm,
        islands_dropped,
        holes_filled,
        budget_applied=budget_applied,
        max_triangles=max_triangles,
        pixel_limited=pixel_limited,
    )


def relief_from_model(
    model,
    *,
    width_mm: float = DEFAULT_WIDTH_MM,
    base_mm: float = DEFAULT_BASE_MM,
    relief: float = 1.0,
    grid_step_mm: float = DEFAULT_GRID_STEP_MM,
    max_triangles: int = MAX_RELIEF_TRIANGLES,
) -> ReliefSolid:
    """Build the relief solid of a :class:`~face3d_core.reconstruct.FaceModel3D`.

    Uses the model's refined metric depth on its sampling lattice (the face mask, after
    smoothing and flying-pixel removal); see :func:`relief_from_depth` for the arguments.
    """
    depth = model.lattice_depth_mm
    focal_lattice = model.intrinsics.focal_px / model.stride
    z_ref = float(np.nanmedian(depth)) if np.isfinite(depth).any() else 1.0
    return relief_from_depth(
        depth,
        z_ref / focal_lattice,
        width_mm=width_mm,
        base_mm=base_mm,
        relief=relief,
        grid_step_mm=grid_step_mm,
        max_triangles=max_triangles,
    )
