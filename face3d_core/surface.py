"""The face surface as a continuous function of the depth map's pixel coordinates.

A :class:`~face3d_core.reconstruct.FaceModel3D` keeps its refined metric depth on a pixel
lattice. :class:`DepthSurface` turns it back into a surface that can be sampled anywhere:
``points(uv)`` maps ``(N, 2)`` depth-map pixel positions ``(u = column, v = row)`` to
``(N, 3)`` points in the model's output frame (mm, X right, Y up, Z towards the viewer,
origin at :attr:`FaceModel3D.origin_mm`), with bilinear interpolation of the depth and the
model's own pinhole camera; ``project(xyz)`` is its inverse for points on the surface.

Anything that offers ``points(uv)`` and ``project(xyz)`` (:class:`Surface`) can be measured
by :mod:`face3d_core.measure`: the tests use an exactly ray-cast scan for ground truth.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy.ndimage import map_coordinates


class Surface(Protocol):
    """A surface seen by a pinhole camera, sampled at depth-map pixel positions."""

    def points(self, uv: np.ndarray) -> np.ndarray:
        """``(N, 2)`` pixel positions -> ``(N, 3) float64`` points in mm (``NaN`` where no surface)."""
        ...

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """``(N, 3)`` points in mm -> ``(N, 2) float64`` pixel positions."""
        ...


class DepthSurface:
    """The surface of a :class:`~face3d_core.reconstruct.FaceModel3D` (see the module docstring).

    Args:
        model: The 3D face; its ``lattice_depth_mm`` (``NaN`` outside the face),
            ``intrinsics``, ``stride`` and ``origin_mm`` are used.
        strict: Where the surface ends: ``True``, at half a lattice step beyond the last valid
            lattice pixel (the nearest lattice pixel must be valid: outlines found to half a
            step); ``False``, wherever any of the four surrounding lattice pixels is valid (a
            path between valid pixels never drops out).
    """

    def __init__(self, model, *, strict: bool = True) -> None:
        self.strict = bool(strict)
        self.depth_lattice = np.asarray(model.lattice_depth_mm, dtype=np.float64)
        self._valid = np.isfinite(self.depth_lattice)
        self._valid_f = self._valid.astype(np.float64)
        self._filled = np.where(self._valid, self.depth_lattice, 0.0)
        self.stride = int(model.stride)
        self.intrinsics = model.intrinsics
        self.origin_mm = np.asarray(model.origin_mm, dtype=np.float64).reshape(3)

    @property
    def shape_hw(self) -> tuple[int, int]:
        """``(h, w)`` of the depth map in pixels (the lattice spans it with ``stride``)."""
        return (self.intrinsics.height, self.intrinsics.width)

    def depth(self, uv: np.ndarray) -> np.ndarray:
        """Depth along the optical axis (mm) at ``(N, 2)`` pixel positions.

        Bilinear over the valid lattice neighbours (weights renormalised); ``NaN`` off the
        surface (see ``strict``) and at non-finite positions.
        """
        pts = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        finite = np.isfinite(pts).all(axis=1)
        lat = np.where(finite[:, None], pts, -1.0) / self.stride
        hl, wl = self.depth_lattice.shape
        inside = finite & (lat[:, 0] > -0.5) & (lat[:, 0] < wl - 0.5) & (lat[:, 1] > -0.5) & (lat[:, 1] < hl - 0.5)
        coords = np.stack([np.clip(lat[:, 1], 0.0, hl - 1.0), np.clip(lat[:, 0], 0.0, wl - 1.0)])
        weighted = map_coordinates(self._filled, coords, order=1, mode="nearest", prefilter=False)
        weight = map_coordinates(self._valid_f, coords, order=1, mode="nearest", prefilter=False)
        keep = inside & (weight > 1e-9)
        if self.strict:
            keep &= self._valid[np.rint(coords[0]).astype(np.int64), np.rint(coords[1]).astype(np.int64)]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(keep, weighted / weight, np.nan)

    def points(self, uv: np.ndarray) -> np.ndarray:
        """``(N, 2)`` pixel positions -> ``(N, 3) float64`` points in the output frame (mm)."""
        pts = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        z = self.depth(pts)
        intr = self.intrinsics
        cam = np.stack([(pts[:, 0] - intr.cx) * z / intr.fx, (intr.cy - pts[:, 1]) * z / intr.fy, -z], axis=1)
        return cam - self.origin_mm

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """``(N, 3)`` points in the output frame -> ``(N, 2) float64`` pixel positions."""
        cam = np.asarray(xyz, dtype=np.float64).reshape(-1, 3) + self.origin_mm
        z = -cam[:, 2]
        intr = self.intrinsics
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.stack([intr.cx + intr.fx * cam[:, 0] / z, intr.cy - intr.fy * cam[:, 1] / z], axis=1)

    def normals(self, uv: np.ndarray, *, step_px: float = 0.5) -> np.ndarray:
        """``(N, 2)`` pixel positions -> ``(N, 3) float64`` unit surface normals facing the camera.

        Central differences of :meth:`points` over ``step_px`` pixels; ``NaN`` where the surface
        does not reach all four neighbours.
        """
        pts = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        h = float(step_px)
        du = self.points(pts + [h, 0.0]) - self.points(pts - [h, 0.0])
        dv = self.points(pts + [0.0, h]) - self.points(pts - [0.0, h])
        n = np.cross(du, dv)
        with np.errstate(invalid="ignore", divide="ignore"):
            n = n / np.linalg.norm(n, axis=1, keepdims=True)
        return np.where(n[:, 2:3] < 0, -n, n)  # towards the viewer (+Z in the output frame)
