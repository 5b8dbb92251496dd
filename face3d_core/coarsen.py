"""A coarser mesh of a reconstructed face, from the model's own refined lattice.

A 3D view should stay light (a browser draws some 10^5 triangles smoothly), while the model
the user downloads keeps every lattice point. :func:`coarser_mesh` derives the light mesh
from a :class:`~face3d_core.reconstruct.FaceModel3D` that was already built: it samples the
model's refined metric depth (``lattice_depth_mm``: outliers removed, holes filled, masked,
smoothed, flying pixels dropped) on a coarser grid and triangulates that, so the view shows
the same surface without running the reconstruction a second time. It is a few milliseconds
of back-projection and grid triangulation, against tens of milliseconds for a reconstruction
(and much faster than vertex-clustering decimation, :func:`face3d_core.mesh.decimate_mesh`).

Example:
    >>> from face3d_core.reconstruct import ReconstructionParams, reconstruct_face
    >>> import numpy as np
    >>> yy, xx = np.mgrid[0:200, 0:200].astype(np.float32)
    >>> depth = 1.0 + np.exp(-((xx - 100) ** 2 + (yy - 100) ** 2) / 3000.0)
    >>> model = reconstruct_face(depth, ReconstructionParams(mask_mode="none"))
    >>> light = coarser_mesh(model, 10_000)
    >>> light.n_faces <= 10_000 < model.n_faces
    True
"""

from __future__ import annotations

import math

import numpy as np

from face3d_core.geometry import backproject_pixels
from face3d_core.mesh import DEFAULT_MAX_EDGE_FACTOR, Mesh, grid_mesh
from face3d_core.reconstruct import FaceModel3D


def _lattice_colors(model: FaceModel3D) -> np.ndarray:
    """``(hl, wl, 3) uint8`` the model's point colours on its lattice (black where no point)."""
    colors = np.zeros((*model.lattice_depth_mm.shape, 3), np.uint8)
    stride = int(model.stride)
    colors[model.pixel_xy[:, 1] // stride, model.pixel_xy[:, 0] // stride] = model.colors_rgb
    return colors


def _mesh_at_step(model: FaceModel3D, step: float, colors_lattice: np.ndarray) -> Mesh:
    """Triangulate the lattice points nearest to a grid of spacing ``step`` lattice steps."""
    depth_lattice = model.lattice_depth_mm
    rows = np.unique(np.round(np.arange(0.0, depth_lattice.shape[0], step)).astype(np.intp))
    cols = np.unique(np.round(np.arange(0.0, depth_lattice.shape[1], step)).astype(np.intp))
    rows = rows[rows < depth_lattice.shape[0]]
    cols = cols[cols < depth_lattice.shape[1]]
    depth_mm = depth_lattice[np.ix_(rows, cols)]
    stride = int(model.stride)
    intr = model.intrinsics
    # back-project with the pixel coordinates of the depth map, exactly like the reconstruction
    grid = backproject_pixels((cols * stride)[None, :], (rows * stride)[:, None], depth_mm, intr)
    grid -= model.origin_mm.astype(np.float32)
    footprint = depth_mm * np.float32(step * stride / intr.focal_px)
    return grid_mesh(
        grid,
        np.isfinite(depth_mm),
        footprint=footprint,
        max_edge_factor=max(DEFAULT_MAX_EDGE_FACTOR, model.params.max_slope),
        colors_grid=colors_lattice[np.ix_(rows, cols)],
    )


def coarser_mesh(model: FaceModel3D, max_triangles: int) -> Mesh | None:
    """Return a mesh of the model's surface with at most about ``max_triangles`` triangles.

    Args:
        model: A reconstructed face (``representation="mesh"``).
        max_triangles: Triangle budget (``>= 1``).

    Returns:
        The model's own mesh when it is within the budget (or None without a mesh); otherwise
        a mesh of the same refined surface sampled on a coarser grid, with per-vertex colours
        from the model's points (no texture coordinates: it is for display).

    Raises:
        ValueError: ``max_triangles`` < 1.
    """
    if max_triangles < 1:
        raise ValueError("max_triangles must be >= 1")
    mesh = model.mesh
    if mesh is None or mesh.n_faces <= max_triangles:
        return mesh
    colors_lattice = _lattice_colors(model)
    # a grid mesh has about two triangles per point: the spacing scales with sqrt(triangles)
    step = math.sqrt(mesh.n_faces / max_triangles)
    coarse = _mesh_at_step(model, step, colors_lattice)
    while coarse.n_faces > max_triangles:
        step *= 1.05 * math.sqrt(coarse.n_faces / max_triangles)
        coarse = _mesh_at_step(model, step, colors_lattice)
    return coarse
