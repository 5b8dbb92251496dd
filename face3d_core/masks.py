"""Masks: which depth-map pixels belong to the face (or, without a face, to the near object).

* :func:`face_mask`: an ellipse placed from the five landmarks (:func:`face_ellipse`,
  :func:`ellipse_mask`), refined by the depth inside it (:func:`otsu_split`), so the wall
  behind the head is not part of the 3D model;
* :func:`foreground_mask`: the near part of a scene without a face (Otsu on depth);
* :func:`fill_mask_holes`: the binary-mask clean-up both use.

Every mask is an ``(H, W) bool`` array in the depth map's pixel frame (x right, y down,
pixel centres on integers), True on the kept pixels. Depth inputs are relative inverse depth
(larger = nearer).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from face3d_core.faces import Face

logger = logging.getLogger(__name__)


def face_ellipse(face: Face, scale: float = 1.0) -> tuple[np.ndarray, tuple[float, float], float]:
    """Return an ellipse around the face from its landmarks: ``(center_xy, (semi_x, semi_y), angle_rad)``.

    The ellipse is placed with typical face proportions: the eye-to-mouth distance ``d``
    (eye midpoint to mouth midpoint) spans about 0.4 of the face height, the hairline is
    about ``1.1 d`` above the eyes and the chin about ``0.7 d`` below the mouth; the half
    width is about 1.15 interpupillary distances. The face box bounds it from below so a
    turned head (short eye distance in the image) keeps a sensible width. ``angle`` is the
    roll of the eye line (image y down).
    """
    marks = face.landmarks_xy.astype(np.float64)
    eye_mid = (marks[0] + marks[1]) / 2
    mouth_mid = (marks[3] + marks[4]) / 2
    down = mouth_mid - eye_mid
    d_em = float(np.linalg.norm(down))
    eye_vec = marks[1] - marks[0]
    ipd = float(np.linalg.norm(eye_vec))
    _, _, bw, bh = face.box_xywh
    if d_em < 1e-6:  # degenerate landmarks: use the box
        center = np.asarray(face.center_xy, np.float64)
        return center, (0.55 * bw * scale, 0.6 * bh * scale), 0.0
    angle = float(np.arctan2(eye_vec[1], eye_vec[0])) if ipd > 1e-6 else 0.0
    center = eye_mid + 0.3 * down
    semi_x = max(1.15 * ipd, 0.55 * bw)
    semi_y = max(1.4 * d_em, 0.6 * bh)
    return center, (semi_x * scale, semi_y * scale), angle


def ellipse_mask(
    shape_hw: tuple[int, int], center_xy: np.ndarray, semi_axes: tuple[float, float], angle_rad: float = 0.0
) -> np.ndarray:
    """Return an ``(H, W) bool`` mask of the pixels inside an ellipse (pixel centres on integers).

    Only the ellipse's bounding box is evaluated, so a small face in a large map is cheap.
    """
    height, width = shape_hw
    cx, cy = (float(v) for v in center_xy)
    ax, ay = (max(float(v), 1e-6) for v in semi_axes)
    cos, sin = float(np.cos(angle_rad)), float(np.sin(angle_rad))
    half_w = np.hypot(ax * cos, ay * sin)
    half_h = np.hypot(ax * sin, ay * cos)
    x0, x1 = max(int(np.floor(cx - half_w)), 0), min(int(np.ceil(cx + half_w)) + 1, width)
    y0, y1 = max(int(np.floor(cy - half_h)), 0), min(int(np.ceil(cy + half_h)) + 1, height)
    out = np.zeros((height, width), dtype=bool)
    if x1 <= x0 or y1 <= y0:
        return out
    ys = (np.arange(y0, y1, dtype=np.float32) - cy)[:, None]
    xs = (np.arange(x0, x1, dtype=np.float32) - cx)[None, :]
    u = (xs * cos + ys * sin) / ax
    v = (-xs * sin + ys * cos) / ay
    out[y0:y1, x0:x1] = (u * u + v * v) <= 1.0
    return out


def _largest_touching(keep: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Keep the connected region (4-connected) of ``keep`` that overlaps ``seed`` the most."""
    n, labels = cv2.connectedComponents(keep.view(np.uint8), connectivity=4)
    if n <= 2:
        return keep
    counts = np.bincount(labels[seed & keep], minlength=n)
    counts[0] = 0
    if counts.max() == 0:
        counts = np.bincount(labels.ravel(), minlength=n)
        counts[0] = 0
    return labels == int(np.argmax(counts))


def fill_mask_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a binary mask (background regions not connected to the border)."""
    h, w = mask.shape
    canvas = np.zeros((h + 2, w + 2), np.uint8)
    canvas[1:-1, 1:-1] = mask
    flood = canvas.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return (canvas[1:-1, 1:-1] > 0) | (flood[1:-1, 1:-1] == 0)


def otsu_split(values: np.ndarray, bins: int = 256) -> tuple[float, float]:
    """Split 1-D values in two classes with Otsu's method.

    Args:
        values: ``(N,) float`` samples (finite).
        bins: Histogram bins between the 0.5 and 99.5 percentiles.

    Returns:
        ``(threshold, separation)``: the threshold, and the gap between the class means in
        units of the summed class standard deviations (``(m_hi - m_lo) / (s_hi + s_lo)``).
        Two halves of one uniform distribution give about 1.7, a face in front of a wall
        typically well above 3. ``separation`` is 0 when the values are constant.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2:
        return (float(v[0]) if v.size else 0.0), 0.0
    lo, hi = np.percentile(v, [0.5, 99.5])
    if not hi > lo:
        return float(lo), 0.0
    hist, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    centers = 0.5 * (edges[:-1] + edges[1:])
    weight = hist.astype(np.float64)
    w0 = np.cumsum(weight)
    w1 = w0[-1] - w0
    m0 = np.cumsum(weight * centers)
    mean0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mean1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mean0 - mean1) ** 2
    k = int(np.argmax(between[:-1]))
    threshold = float(edges[k + 1])
    low, high = v[v < threshold], v[v >= threshold]
    if low.size == 0 or high.size == 0:
        return threshold, 0.0
    spread = float(low.std() + high.std())
    gap = float(high.mean() - low.mean())
    return threshold, (gap / spread if spread > 0 else float("inf"))


def face_mask(
    depth_rel: np.ndarray | None,
    face: Face,
    *,
    shape_hw: tuple[int, int] | None = None,
    valid: np.ndarray | None = None,
    ellipse_scale: float = 1.0,
    min_separation: float = 2.5,
) -> np.ndarray:
    """Separate the face from the background: landmark-guided ellipse refined by depth.

    1. An ellipse from the landmarks (:func:`face_ellipse`, scaled by ``ellipse_scale``).
    2. Inside it, the relative inverse depth is split in two classes (:func:`otsu_split`).
       When the classes are clearly apart (``separation >= min_separation``: a wall or
       background seen around the head, past the chin), the far class is dropped; the
       threshold never rises above the 5th percentile of the face core (the ellipse at
       45 %: eyes, nose, mouth, cheeks), so the face itself is never cut. A face that fills
       its ellipse (smooth depth, no second mode) keeps the whole ellipse.
    3. Only the connected region that holds the core is kept, its holes are filled and,
       after a depth cut, its outline is smoothed (morphological opening).

    Args:
        depth_rel: ``(h, w) float`` relative inverse depth (larger = nearer), in the same
            pixel frame as ``face``; ``None`` gives the plain ellipse.
        face: The face, in the depth map's pixel coordinates.
        shape_hw: Mask shape when ``depth_rel`` is None.
        valid: Optional ``(h, w) bool`` of usable depth pixels (default: finite values).
        ellipse_scale: Scale of the ellipse (1 = forehead to chin, ear to ear).
        min_separation: How clearly the background must stand apart from the face (in
            class standard deviations) to be cut. Lower cuts more readily.

    Returns:
        ``(h, w) bool``, True on the face.
    """
    if depth_rel is None:
        if shape_hw is None:
            raise ValueError("face_mask needs depth_rel or shape_hw")
        center, axes, angle = face_ellipse(face, ellipse_scale)
        return ellipse_mask(shape_hw, center, axes, angle)
    depth = np.asarray(depth_rel, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"expected an (H, W) depth map, got shape {depth.shape}")
    ok = np.isfinite(depth)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    center, axes, angle = face_ellipse(face, ellipse_scale)
    outer = ellipse_mask(depth.shape, center, axes, angle) & ok
    core = ellipse_mask(depth.shape, center, (axes[0] * 0.45, axes[1] * 0.45), angle) & ok
    if core.sum() < 9:
        logger.info("Face core has too few valid depth pixels; using the ellipse alone")
        return outer
    values = depth[outer]
    values = values[:: max(1, values.size // 100_000)]
    threshold, separation = otsu_split(values)
    if separation < min_separation:
        return fill_mask_holes(_largest_touching(outer, core)) & ok
    core_lo = float(np.percentile(depth[core], 5.0))
    threshold = min(threshold, core_lo)
    keep = outer & (depth >= threshold)
    keep = fill_mask_holes(_largest_touching(keep, core))
    radius = max(1, round(min(axes) * 0.03))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    opened = cv2.morphologyEx(keep.view(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)
    if opened[core].any():
        keep = opened
    return keep & ok


def foreground_mask(depth_rel: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Return the near part of a scene without a face: Otsu's threshold on relative inverse depth.

    Args:
        depth_rel: ``(H, W) float`` relative inverse depth (larger = nearer).
        valid: Optional ``(H, W) bool`` of usable pixels.

    Returns:
        ``(H, W) bool``: the largest connected region nearer than the threshold.
    """
    depth = np.asarray(depth_rel, dtype=np.float32)
    ok = np.isfinite(depth)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    if not ok.any():
        return ok
    lo, hi = np.percentile(depth[ok], [0.5, 99.5])
    if hi <= lo:
        return ok
    gray = np.zeros(depth.shape, np.uint8)
    gray[ok] = np.clip((depth[ok] - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    thr, _ = cv2.threshold(gray[ok].reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    near = ok & (gray > thr)
    return _largest_touching(near, near)
