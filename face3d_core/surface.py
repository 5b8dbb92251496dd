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

import copy
from collections.abc import Callable
from typing import Protocol

import numpy as np


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
        # edge-padded by one row and column, so the four bilinear neighbours always exist
        self._filled_p = np.pad(np.where(self._valid, self.depth_lattice, 0.0), ((0, 1), (0, 1)), mode="edge").ravel()
        self._valid_p = np.pad(self._valid.astype(np.float64), ((0, 1), (0, 1)), mode="edge").ravel()
        self.stride = int(model.stride)
        self.intrinsics = model.intrinsics
        self.origin_mm = np.asarray(model.origin_mm, dtype=np.float64).reshape(3)
        self.depth_map: Callable[[np.ndarray], np.ndarray] | None = None

    def with_depth_map(self, depth_map: Callable[[np.ndarray], np.ndarray] | None) -> DepthSurface:
        """The same surface with its depths remapped: ``depth_map((N,) mm) -> (N,) mm`` (shares the arrays).

        :meth:`depth` stays the model's; :meth:`points` (and everything built on it) uses the
        remapped depth. :mod:`face3d_core.depth_fit` uses it to try another relief of a
        relative-depth model without rebuilding it.
        """
        other = copy.copy(self)
        other.depth_map = depth_map
        return other

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
        hl, wl = self.depth_lattice.shape
        with np.errstate(invalid="ignore"):
            x = pts[:, 0] / self.stride
            y = pts[:, 1] / self.stride
            finite = np.isfinite(x) & np.isfinite(y)
            inside = finite & (x > -0.5) & (x < wl - 0.5) & (y > -0.5) & (y < hl - 0.5)
        xc = np.clip(np.where(finite, x, 0.0), 0.0, wl - 1.0)
        yc = np.clip(np.where(finite, y, 0.0), 0.0, hl - 1.0)
        j0 = xc.astype(np.int64)
        i0 = yc.astype(np.int64)
        fx, fy = xc - j0, yc - i0
        row = wl + 1
        k = i0 * row + j0
        w00, w01, w10, w11 = (1.0 - fx) * (1.0 - fy), fx * (1.0 - fy), (1.0 - fx) * fy, fx * fy
        f, v = self._filled_p, self._valid_p
        weighted = f[k] * w00 + f[k + 1] * w01 + f[k + row] * w10 + f[k + row + 1] * w11
        weight = v[k] * w00 + v[k + 1] * w01 + v[k + row] * w10 + v[k + row + 1] * w11
        keep = inside & (weight > 1e-9)
        if self.strict:
            keep &= self._valid[np.rint(yc).astype(np.int64), np.rint(xc).astype(np.int64)]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(keep, weighted / weight, np.nan)

    def points(self, uv: np.ndarray) -> np.ndarray:
        """``(N, 2)`` pixel positions -> ``(N, 3) float64`` points in the output frame (mm)."""
        pts = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        z = self.depth(pts)
        if self.depth_map is not None:
            z = self.depth_map(z)
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


def nearest_surface_point(model, xyz: np.ndarray) -> np.ndarray:
    """The model's mesh vertex (or point, without a mesh) nearest to ``xyz``: what a click on the surface means.

    Args:
        model: The 3D face (:class:`~face3d_core.reconstruct.FaceModel3D`).
        xyz: ``(3,)`` a position in the model's output frame, mm.

    Returns:
        ``(3,) float64`` the nearest vertex, mm.
    """
    mesh = model.mesh
    candidates = mesh.vertices_xyz if mesh is not None and mesh.n_vertices else model.points_xyz
    d = candidates - np.asarray(xyz, np.float32).reshape(1, 3)
    return candidates[int(np.argmin(np.einsum("ij,ij->i", d, d)))].astype(np.float64)


def lifted_off_surface(model, xyz: np.ndarray, lift_mm: float) -> np.ndarray:
    """Points on the model's surface moved ``lift_mm`` along its normal (towards the viewer).

    Marks drawn on a surface float this far in front of it, so the surface never hides them.

    Args:
        model: The 3D face (:class:`~face3d_core.reconstruct.FaceModel3D`).
        xyz: ``(N, 3)`` (or ``(3,)``) points on the surface, mm.
        lift_mm: How far to move them, mm.

    Returns:
        ``(N, 3) float64``, mm; unchanged where the surface's normal is unknown.
    """
    pts = np.asarray(xyz, np.float64).reshape(-1, 3)
    surface = DepthSurface(model, strict=False)
    normals = surface.normals(surface.project(pts))
    return np.where(np.isfinite(normals).all(axis=1, keepdims=True), pts + lift_mm * normals, pts)
