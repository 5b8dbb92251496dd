"""A coarser mesh of a reconstructed face, from the model's own refined lattice.

A 3D view should stay light (a browser draws some 10^5 triangles smoothly), while the model
the user downloads keeps every lattice point. :func:`coarser_mesh` derives the light mesh
from a :class:`~face3d_core.reconstruct.FaceModel3D` that was already built: it samples the
model's refined metric depth (``lattice_depth_mm``: outliers removed, holes filled, masked,
smoothed, flying pixels dropped) on a coarser grid and triangulates that, so the view shows
the same surface without running the reconstruction a second time. The grid spacing need not
be a whole number of lattice steps, so the mesh comes close to the budget. It costs one
back-projection and one grid triangulation (about 10 ms for 80k triangles; see
``benchmarks/geometry_speed.py``), less than a second reconstruction and far less than
vertex-clustering decimation (:func:`face3d_core.mesh.decimate_mesh`).

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


def _mesh_at_step(model: FaceModel3D, step: float, lattice_rc: tuple[np.ndarray, np.ndarray]) -> Mesh:
    """Triangulate the lattice points nearest to a grid of spacing ``step`` lattice steps.

    Args:
        model: The reconstruction.
        step: Grid spacing in lattice steps (``>= 1``, need not be an integer).
        lattice_rc: ``(rows, cols)`` lattice position of each of the model's points.
    """
    depth_lattice = model.lattice_depth_mm
    height, width = depth_lattice.shape
    rows = np.unique(np.minimum(np.round(np.arange(0.0, height, step)).astype(np.intp), height - 1))
    cols = np.unique(np.minimum(np.round(np.arange(0.0, width, step)).astype(np.intp), width - 1))
    depth_mm = depth_lattice.take(rows, axis=0).take(cols, axis=1)
    stride = int(model.stride)
    intr = model.intrinsics
    # back-project with the pixel coordinates of the depth map, exactly like the reconstruction
    grid = backproject_pixels((cols * stride)[None, :], (rows * stride)[:, None], depth_mm, intr)
    grid -= model.origin_mm.astype(np.float32)
    footprint = depth_mm * np.float32(step * stride / intr.focal_px)
    # the model's points are its finite lattice samples in row-major order, so the points on the
    # coarse grid are the ones in a chosen row and a chosen column, in the order grid_mesh wants
    row_chosen = np.zeros(height, bool)
    row_chosen[rows] = True
    col_chosen = np.zeros(width, bool)
    col_chosen[cols] = True
    on_grid = row_chosen[lattice_rc[0]] & col_chosen[lattice_rc[1]]
    return grid_mesh(
        grid,
        np.isfinite(depth_mm),
        footprint=footprint,
        max_edge_factor=max(DEFAULT_MAX_EDGE_FACTOR, model.params.max_slope),
        colors_grid=model.colors_rgb[on_grid],
        compute_normals=False,  # a view lights the surface itself
    )


def coarser_mesh(model: FaceModel3D, max_triangles: int) -> Mesh | None:
    """Return a mesh of the model's surface with at most about ``max_triangles`` triangles.

    Args:
        model: A reconstructed face (``representation="mesh"``).
        max_triangles: Triangle budget (``>= 1``).

    Returns:
        The model's own mesh when it is within the budget (or None without a mesh); otherwise
        a mesh of the same refined surface sampled on a coarser grid, with per-vertex colours
        from the model's points (no normals, no texture coordinates: it is for display).

    Raises:
        ValueError: ``max_triangles`` < 1.
    """
    if max_triangles < 1:
        raise ValueError("max_triangles must be >= 1")
    mesh = model.mesh
    if mesh is None or mesh.n_faces <= max_triangles:
        return mesh
    lattice_rc = (model.pixel_xy[:, 1] // int(model.stride), model.pixel_xy[:, 0] // int(model.stride))
    # a grid mesh has about two triangles per point: the spacing scales with sqrt(triangles)
    step = math.sqrt(mesh.n_faces / max_triangles)
    coarse = _mesh_at_step(model, step, lattice_rc)
    while coarse.n_faces > max_triangles:
        step *= 1.05 * math.sqrt(coarse.n_faces / max_triangles)
        coarse = _mesh_at_step(model, step, lattice_rc)
    return coarse
