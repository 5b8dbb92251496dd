"""From relative inverse depth to metric depth to 3D points (pinhole camera, millimetres).

**What the network gives.** MiDaS-style networks predict *relative inverse depth*
``d`` (disparity-like, larger = nearer) that is only known up to an unknown scale and
shift: ``d = s / Z + t``. Treating ``d`` as depth turns the face inside out (the nose
becomes the farthest point); treating it as ``1 / Z`` with ``t = 0`` flattens or
stretches it arbitrarily.

**The model used here.** We invert the affine inverse-depth relation explicitly:

    ``Z = 1 / (a * d + b)``   (:func:`disparity_to_depth`)

and choose ``a, b`` from two anchors on the face (:func:`inverse_depth_coefficients`):
the ``p_hi`` percentile of ``d`` inside the face mask (the nose tip region) is placed at
the distance ``z_near`` and the ``p_lo`` percentile (the face outline near the ears) at
``z_far = z_near + relief``. ``relief`` is the face's depth extent: :data:`DEFAULT_RELIEF_MM`
(80 mm, nose tip to the cheek/jaw outline of an adult face, cf. MediaPipe's canonical face)
times the user's *depth scale* (1 = natural, 2 = twice as deep, 0.5 = flatter). Between the
anchors the network's own inverse-depth ratios are kept exactly; nearer = larger ``d`` =
smaller ``Z``, so the face is never inverted. An *affine relief* ``Z = z_near + relief *
(1 - u)`` (``u`` the normalised ``d``) is the first-order approximation of this for a face
far from the camera and is available as ``model="affine"``.

**Camera.** A pinhole camera with square pixels and the principal point at the centre of
the *whole photo*: ``f = (W / 2) / tan(fov / 2)`` where ``fov`` is the horizontal field of
view of the whole photo (:class:`Intrinsics`). A face crop keeps this camera, shifted by
the crop's offset, so a crop and the full frame give the same geometry. Pixel centres lie
on integer coordinates (``cx = (W - 1) / 2``).

**Output frame.** Points are returned in a right-handed frame with **X right, Y up, Z
towards the viewer** (the glTF / MediaPipe convention: the face looks along +Z). A pixel
``(u, v)`` at metric depth ``z`` maps to ``X = (u - cx) z / f``, ``Y = -(v - cy) z / f``,
``Z = -z``.

**Millimetres.** Where eye landmarks are known, ``z_near`` is chosen so that the 3D
distance between the two eye landmarks equals the mean adult interpupillary distance,
:data:`MEAN_IPD_MM` = 63 mm (:func:`solve_near_distance_for_ipd`). Scaling every point about
the camera centre leaves the image unchanged, so this fixes the one free scale of a single
photo; X, Y and Z are then in millimetres (``scale_source="eyes"``). Without landmarks a
nominal face distance :data:`DEFAULT_DISTANCE_MM` (500 mm) is assumed (``"assumed"``).
Metric depth input (a depth sensor) is used as it is (``"metric"``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

#: Mean adult interpupillary distance in millimetres (used to put the model in mm).
MEAN_IPD_MM = 63.0
#: Default depth extent of a face, nose tip to the outline near the ears, in millimetres.
DEFAULT_RELIEF_MM = 80.0
#: Nominal camera-to-nearest-point distance when no landmarks give a scale.
DEFAULT_DISTANCE_MM = 500.0
#: Default horizontal field of view of a photo (a phone's main camera is ~ 50-70 degrees).
DEFAULT_FOV_DEG = 55.0


def focal_px_from_fov(width_px: float, fov_deg: float) -> float:
    """Focal length in pixels of an image ``width_px`` wide whose horizontal field of view is ``fov_deg``.

    ``f = (W / 2) / tan(fov / 2)``; :func:`fov_from_focal_px` is its inverse.

    Example:
        >>> round(focal_px_from_fov(1000, 90.0), 6)
        500.0
    """
    return float(width_px) / 2.0 / math.tan(math.radians(float(fov_deg)) / 2.0)


def fov_from_focal_px(width_px: float, focal_px: float) -> float:
    """Horizontal field of view (degrees) of an image ``width_px`` wide seen with focal length ``focal_px`` pixels.

    Example:
        >>> round(fov_from_focal_px(1000, 500.0), 6)
        90.0
    """
    return math.degrees(2.0 * math.atan(float(width_px) / 2.0 / float(focal_px)))


DepthModel = Literal["inverse", "affine"]


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (square pixels, no distortion).

    Attributes:
        fx: Focal length along x in pixels.
        fy: Focal length along y in pixels.
        cx: Principal point x (pixel centres on integers).
        cy: Principal point y.
        width: Width in pixels of the image these intrinsics describe.
        height: Height in pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> Intrinsics:
        """Intrinsics of a ``width x height`` photo with horizontal field of view ``fov_deg``."""
        if not 1.0 <= fov_deg <= 179.0:
            raise ValueError(f"fov_deg must be in [1, 179], got {fov_deg}")
        f = focal_px_from_fov(width, fov_deg)
        return cls(float(f), float(f), (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))

    @property
    def focal_px(self) -> float:
        """Mean focal length in pixels."""
        return 0.5 * (self.fx + self.fy)

    @property
    def fov_deg(self) -> float:
        """Horizontal field of view in degrees."""
        return fov_from_focal_px(self.width, self.fx)

    def cropped(self, box_xyxy: tuple[int, int, int, int]) -> Intrinsics:
        """Intrinsics of the sub-image ``[y0:y1, x0:x1]`` (same camera, shifted principal point)."""
        x0, y0, x1, y1 = box_xyxy
        return Intrinsics(self.fx, self.fy, self.cx - x0, self.cy - y0, int(x1 - x0), int(y1 - y0))

    def resized(self, width: int, height: int) -> Intrinsics:
        """Intrinsics of the same view resampled to ``width x height`` pixels."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, int(width), int(height)
        )


def disparity_to_depth(disparity: np.ndarray, a: float, b: float, *, max_depth: float | None = None) -> np.ndarray:
    """Convert (relative) inverse depth to depth: ``Z = 1 / (a * d + b)``.

    Args:
        disparity: ``(...) float`` inverse depth (larger = nearer).
        a: Scale (``> 0``).
        b: Shift.
        max_depth: Depth where ``a * d + b`` is too small or negative (far background): the
            result is clamped to this. Default: no clamp (``inf`` / ``NaN`` may appear).

    Returns:
        ``(...) float32`` depth in the units of ``1 / (a d + b)``.
    """
    d = np.asarray(disparity)
    dtype = np.float32 if d.dtype == np.float32 else np.float64  # float32 keeps ~1e-6 relative precision
    inv = dtype(a) * d.astype(dtype, copy=False) + dtype(b)
    if max_depth is not None:
        inv = np.maximum(inv, dtype(1.0 / max_depth))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (dtype(1.0) / inv).astype(np.float32, copy=False)


def inverse_depth_coefficients(d_lo: float, d_hi: float, z_near: float, z_far: float) -> tuple[float, float]:
    """Return ``(a, b)`` with ``1 / (a d_hi + b) = z_near`` and ``1 / (a d_lo + b) = z_far``.

    Raises:
        ValueError: ``d_hi <= d_lo`` or not ``0 < z_near < z_far``.
    """
    if not d_hi > d_lo:
        raise ValueError(f"need d_hi > d_lo, got {d_lo}, {d_hi}")
    if not 0 < z_near < z_far:
        raise ValueError(f"need 0 < z_near < z_far, got {z_near}, {z_far}")
    a = (1.0 / z_near - 1.0 / z_far) / (d_hi - d_lo)
    b = 1.0 / z_far - a * d_lo
    return float(a), float(b)


def relative_to_metric_depth(
    depth_rel: np.ndarray,
    d_lo: float,
    d_hi: float,
    *,
    z_near: float,
    relief: float,
    model: DepthModel = "inverse",
) -> np.ndarray:
    """Metric depth from relative inverse depth with the anchors of the module docstring.

    Args:
        depth_rel: ``(...) float`` relative inverse depth (larger = nearer).
        d_lo: Value placed at ``z_near + relief`` (far anchor, e.g. 2nd percentile on the face).
        d_hi: Value placed at ``z_near`` (near anchor, e.g. 98th percentile).
        z_near: Distance of the near anchor (mm).
        relief: Depth between the anchors (mm, ``> 0``).
        model: ``"inverse"`` (``Z = 1 / (a d + b)``) or ``"affine"`` (``Z`` linear in ``d``).

    Returns:
        ``(...) float32`` depth in mm, clamped to ``[z_near / 4, z_near + 20 relief]`` so far
        background stays finite and extrapolation beyond the nose stays positive.
    """
    if relief <= 0:
        raise ValueError(f"relief must be > 0, got {relief}")
    z_far = z_near + relief
    z_max = z_near + 20.0 * relief
    if model == "inverse":
        a, b = inverse_depth_coefficients(d_lo, d_hi, z_near, z_far)
        z = disparity_to_depth(depth_rel, a, b, max_depth=z_max)
        np.maximum(z, np.float32(z_near / 4.0), out=z)  # max_depth already bounds it above
        return z
    elif model == "affine":
        u = (np.asarray(depth_rel, dtype=np.float64) - d_lo) / (d_hi - d_lo)
        z = (z_far - relief * u).astype(np.float32)
    else:
        raise ValueError(f"unknown depth model {model!r}")
    return np.clip(z, z_near / 4.0, z_max).astype(np.float32)


def backproject_pixels(u: np.ndarray, v: np.ndarray, z: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Back-project pixels ``(u, v)`` at depth ``z`` to ``(..., 3) float32`` points.

    The output frame is X right, Y up, Z towards the viewer (see the module docstring).
    """
    z = np.asarray(z, dtype=np.float32)
    x = (np.asarray(u, np.float32) - np.float32(intrinsics.cx)) * (z / np.float32(intrinsics.fx))
    y = (np.float32(intrinsics.cy) - np.asarray(v, np.float32)) * (z / np.float32(intrinsics.fy))
    return np.stack(np.broadcast_arrays(x, y, -z), axis=-1).astype(np.float32, copy=False)


def backproject_depth(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    *,
    valid: np.ndarray | None = None,
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Back-project a metric depth map to a point cloud.

    Args:
        depth: ``(H, W) float`` depth along the optical axis (mm); ``NaN``/``<= 0`` = missing.
        intrinsics: The camera of this depth map (``width``/``height`` must match).
        valid: Optional ``(H, W) bool`` of pixels to keep.
        stride: Keep every ``stride``-th row and column (display density).

    Returns:
        ``(points_xyz, pixel_index)``: ``(N, 3) float32`` points in mm (X right, Y up, Z towards
        the viewer) and ``(N,) int64`` flat indices ``row * W + col`` of their pixels.

    Example:
        >>> intr = Intrinsics.from_fov(4, 3, 90.0)
        >>> pts, idx = backproject_depth(np.full((3, 4), 100.0), intr)
        >>> pts.shape, float(pts[0, 2])
        ((12, 3), -100.0)
    """
    z = np.asarray(depth, dtype=np.float32)
    if z.ndim != 2:
        raise ValueError(f"expected an (H, W) depth map, got shape {z.shape}")
    height, width = z.shape
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise ValueError(f"intrinsics are for {intrinsics.width}x{intrinsics.height}, depth map is {width}x{height}")
    stride = max(1, int(stride))
    rows = np.arange(0, height, stride)
    cols = np.arange(0, width, stride)
    sub = z[::stride, ::stride]
    ok = np.isfinite(sub) & (sub > 0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)[::stride, ::stride]
    rr, cc = np.nonzero(ok)
    r = rows[rr]
    c = cols[cc]
    points = backproject_pixels(c, r, sub[rr, cc], intrinsics)
    return points, (r.astype(np.int64) * width + c)


def backproject_grid(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    *,
    stride: int = 1,
    window: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Back-project a lattice of pixels to an ``(h, w, 3) float32`` grid of points (``NaN`` kept).

    Args:
        depth: ``(H, W) float`` metric depth (the whole map of ``intrinsics``).
        intrinsics: Camera of the depth map.
        stride: Use pixels ``[r0:r1:stride, c0:c1:stride]``.
        window: ``(r0, r1, c0, c1)`` region of the map (default: all of it).

    Returns:
        ``(h, w, 3) float32`` points for ``depth[r0:r1:stride, c0:c1:stride]``.
    """
    z = np.asarray(depth, dtype=np.float32)
    height, width = z.shape
    stride = max(1, int(stride))
    r0, r1, c0, c1 = window if window is not None else (0, height, 0, width)
    sub = z[r0:r1:stride, c0:c1:stride]
    r = np.arange(r0, r1, stride, dtype=np.float32)[:, None]
    c = np.arange(c0, c1, stride, dtype=np.float32)[None, :]
    return backproject_pixels(c, r, sub, intrinsics)


def nearness_from_z(
    z_mm: np.ndarray,
    *,
    z_towards_viewer: bool = True,
    max_samples: int | None = None,
) -> np.ndarray:
    """Nearness of points in ``[0, 1]`` from their z coordinate: 1 = nearest, 0 = farthest.

    The robust range of ``z`` (its 1st to 99th percentile) is stretched to ``[0, 1]`` and the
    result clipped, so a few stray points neither squash the scale nor leave it. This is the
    grayscale of the depth colour mode (lighter = nearer) wherever points are shown.

    Args:
        z_mm: ``(N,) float`` z of each point, in mm (any unit works: the result is unitless).
        z_towards_viewer: True (default): ``z_mm`` is the Z coordinate of the output frame
            (X right, Y up, Z towards the viewer), so larger = nearer. False: ``z_mm`` is the
            distance from the camera along the optical axis, so larger = farther.
        max_samples: Take the percentiles from about this many evenly strided samples
            (every ``N // max_samples``-th value) instead of all ``N``: cheaper on large clouds.

    Returns:
        ``(N,) float32`` in ``[0, 1]``, 1 at the nearest. The arithmetic is float32 throughout.
        A constant ``z`` gives 0 everywhere (the span is floored at ``1e-6``).

    Example:
        >>> nearness_from_z(np.array([-600.0, -550.0, -500.0])).round(2).tolist()
        [0.0, 0.5, 1.0]
    """
    z = np.asarray(z_mm, dtype=np.float32).reshape(-1)
    if z.size == 0:
        return np.zeros(0, np.float32)
    step = 1 if max_samples is None else max(1, z.size // max_samples)
    z_lo, z_hi = np.percentile(z[::step], [1.0, 99.0])
    span = np.float32(max(float(z_hi - z_lo), 1e-6))
    offset = (z - np.float32(z_lo)) if z_towards_viewer else (np.float32(z_hi) - z)
    return np.clip(offset / span, 0.0, 1.0).astype(np.float32)


def sample_bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample an ``(H, W)`` float map at ``(N, 2)`` pixel positions (bilinear, clamped at borders).

    ``NaN`` neighbours are skipped (weights renormalised); all-``NaN`` gives ``NaN``.
    """
    img = np.asarray(image, dtype=np.float64)
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    height, width = img.shape
    x = np.clip(pts[:, 0], 0, width - 1)
    y = np.clip(pts[:, 1], 0, height - 1)
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx, fy = x - x0, y - y0
    corners = np.stack([img[y0, x0], img[y0, x1], img[y1, x0], img[y1, x1]], axis=1)
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
    ok = np.isfinite(corners)
    weights = np.where(ok, weights, 0.0)
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (np.where(ok, corners, 0.0) * weights).sum(axis=1) / total, np.nan)


def solve_near_distance_for_ipd(
    eye_disparity: np.ndarray,
    eyes_xy: np.ndarray,
    intrinsics: Intrinsics,
    d_lo: float,
    d_hi: float,
    *,
    relief: float,
    ipd_mm: float = MEAN_IPD_MM,
    model: DepthModel = "inverse",
    iterations: int = 8,
) -> float:
    """Find ``z_near`` so that the two eye landmarks end up ``ipd_mm`` apart in 3D.

    Only the two eye points are converted per iteration (the full map is converted once,
    afterwards). The 3D eye distance grows almost linearly with ``z_near``, so a secant /
    fixed-point iteration converges in a few steps.

    Args:
        eye_disparity: ``(2,)`` relative inverse depth at the two eyes.
        eyes_xy: ``(2, 2)`` eye pixel positions in the depth map's frame.
        intrinsics: Camera of the depth map.
        d_lo: Far anchor value (see :func:`relative_to_metric_depth`).
        d_hi: Near anchor value.
        relief: Relief in mm.
        ipd_mm: Target interpupillary distance.
        model: Depth model.
        iterations: Maximum iterations.

    Returns:
        ``z_near`` in mm.
    """
    eyes = np.asarray(eyes_xy, dtype=np.float64).reshape(2, 2)
    disp = np.asarray(eye_disparity, dtype=np.float64).reshape(2)
    ipd_px = float(np.linalg.norm(eyes[0] - eyes[1]))
    if ipd_px <= 0 or not np.all(np.isfinite(disp)):
        raise ValueError("eye landmarks are degenerate")
    z_near = max(intrinsics.focal_px * ipd_mm / ipd_px, 1.0)  # frontal, eyes at the near anchor

    def eye_distance(zn: float) -> float:
        z = relative_to_metric_depth(disp, d_lo, d_hi, z_near=zn, relief=relief, model=model)
        pts = backproject_pixels(eyes[:, 0], eyes[:, 1], z, intrinsics).astype(np.float64)
        return float(np.linalg.norm(pts[0] - pts[1]))

    for _ in range(iterations):
        dist = eye_distance(z_near)
        if dist <= 0:
            break
        ratio = ipd_mm / dist
        z_near *= ratio
        if abs(ratio - 1.0) < 1e-6:
            break
    return float(z_near)
