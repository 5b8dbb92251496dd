"""Depth clean-up: spikes, holes, smoothing, edge-preserving filtering, flying pixels.

All functions take and return ``(H, W) float32`` maps in any depth-like unit (relative
inverse depth or millimetres). Missing values are ``NaN``: the functions that remove
pixels set them to ``NaN``, :func:`fill_holes` fills them, and :func:`smooth_depth`
ignores them (normalised convolution), so nothing from outside the valid region bleeds in.

Everything is vectorised on OpenCV's separable/box filters; a 1-megapixel map takes a
few milliseconds per step (see ``benchmarks/geometry_speed.py``).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

logger = logging.getLogger(__name__)


def _as_depth(depth: np.ndarray) -> np.ndarray:
    arr = np.asarray(depth, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"expected an (H, W) depth map, got shape {arr.shape}")
    return arr


def robust_range(depth: np.ndarray, valid: np.ndarray | None = None, percentiles=(1.0, 99.0)) -> float:
    """Return ``p_hi - p_lo`` of the valid values (0 if none), from at most ~250k samples."""
    arr = _as_depth(depth)
    ok = np.isfinite(arr) if valid is None else (np.asarray(valid, bool) & np.isfinite(arr))
    values = arr[ok]
    if values.size == 0:
        return 0.0
    step = max(1, values.size // 250_000)
    lo, hi = np.percentile(values[::step], percentiles)
    return float(hi - lo)


def remove_outliers(
    depth: np.ndarray, *, threshold: float = 6.0, min_jump: float = 0.03, kernel_size: int = 5
) -> np.ndarray:
    """Remove isolated spikes: pixels far from their neighbourhood's median become ``NaN``.

    A pixel is a spike when ``|d - median_k(d)| > max(threshold * sigma, min_jump * range)``
    where ``sigma`` is the robust (MAD) scale of the residuals over the whole map and
    ``range`` the 1-99 % range of the values. A median keeps straight depth edges, so the
    outline of a face against a wall is not removed. The outer ``kernel_size // 2`` pixels of
    the map are never flagged (the median is biased there by the replicated border).

    Args:
        depth: ``(H, W) float`` depth (``NaN`` = missing).
        threshold: Residual threshold in robust standard deviations.
        min_jump: Smallest residual counted as a spike, as a fraction of the depth range.
        kernel_size: Median window, 3 or 5 pixels.

    Returns:
        ``(H, W) float32`` copy with the spikes set to ``NaN``.
    """
    arr = _as_depth(depth)
    if kernel_size not in (3, 5):
        raise ValueError("kernel_size must be 3 or 5")
    finite = np.isfinite(arr)
    if not finite.any():
        return arr.copy()
    work = arr if finite.all() else fill_holes(arr)
    med = cv2.medianBlur(np.ascontiguousarray(work), kernel_size)
    resid = np.abs(work - med)
    step = max(1, int(np.sqrt(arr.size / 60_000)))  # statistics from a ~60k-pixel lattice
    sub_ok = finite[::step, ::step]
    sigma = 1.4826 * float(np.median(resid[::step, ::step][sub_ok]))
    limit = max(threshold * sigma, min_jump * robust_range(arr[::step, ::step], sub_ok))
    if limit <= 0:
        return arr.copy()
    spikes = finite & (resid > limit)
    # the median is biased in the outer frame (replicated border): never flag it
    r = kernel_size // 2
    spikes[:r], spikes[-r:], spikes[:, :r], spikes[:, -r:] = False, False, False, False
    out = arr.copy()
    out[spikes] = np.nan
    if spikes.any():
        logger.debug("remove_outliers: %d spike pixels", int(spikes.sum()))
    return out


def fill_holes(
    depth: np.ndarray,
    *,
    keep_border_holes: bool = False,
    max_hole_px: int | None = None,
    relax_iterations: int = 6,
) -> np.ndarray:
    """Fill ``NaN`` pixels smoothly from their surroundings (multi-level push-pull).

    Push: the map is repeatedly halved with validity-weighted averages until every pixel of
    the coarsest level has data. Pull: from coarse to fine, each level's missing pixels take
    the upsampled coarser level and are then relaxed a few times towards the average of
    their 3x3 neighbours (Jacobi steps of a discrete Laplace equation, known pixels fixed).
    Relaxing on every level makes the fill close to a harmonic interpolation: a plane is
    filled with the plane (to a few hundredths of its step across the hole), a curved
    surface smoothly, and the cost stays a few full-size passes.

    Args:
        depth: ``(H, W) float`` depth with ``NaN`` holes.
        keep_border_holes: Leave ``NaN`` regions that touch the image border as they are
            (they are outside the object, e.g. the background of a sensor depth map).
        max_hole_px: Leave ``NaN`` regions larger than this many pixels as they are.
        relax_iterations: Jacobi steps per pyramid level (0 = plain push-pull).

    Returns:
        ``(H, W) float32``; all ``NaN`` (an all-``NaN`` input) stays ``NaN``.
    """
    arr = _as_depth(depth)
    holes = ~np.isfinite(arr)
    if not holes.any() or holes.all():
        return arr.copy()
    weight = np.ones(arr.shape, np.float32)
    weight[holes] = 0.0
    values = arr.copy()
    values[holes] = 0.0
    pyramid = [(values, weight)]  # level 0 holds the values themselves (weights are 0/1)
    vw, w = values, weight
    while min(w.shape) > 1 and (w <= 0).any():
        size = (max(1, (w.shape[1] + 1) // 2), max(1, (w.shape[0] + 1) // 2))
        vw = cv2.resize(vw, size, interpolation=cv2.INTER_AREA)
        w = cv2.resize(w, size, interpolation=cv2.INTER_AREA)
        pyramid.append((vw, w))
    vw, w = pyramid[-1]
    level = np.divide(vw, w, out=np.zeros_like(vw), where=w > 0)
    if (w <= 0).any():  # a 1-pixel-wide level without data: use the global mean
        level[w <= 0] = float(values[~holes].mean())
    for depth_index in range(len(pyramid) - 2, -1, -1):
        vw, w = pyramid[depth_index]
        up = cv2.resize(level, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        if depth_index == 0:
            free = holes
            level = vw  # our own copy of the input, with zeros in the holes
            level[free] = up[free]
        else:
            free = w < 1.0
            own = np.divide(vw, w, out=np.zeros_like(vw), where=w > 0)
            level = (w * own + (1.0 - w) * up).astype(np.float32)  # partial weight mixes with coarse data
        _relax(level, free, relax_iterations)
    out = level
    if keep_border_holes:
        out[border_regions(holes)] = np.nan
    if max_hole_px is not None:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(holes.view(np.uint8), connectivity=4)
        big = stats[:, cv2.CC_STAT_AREA] > max_hole_px
        big[0] = False  # label 0 is the valid region
        out[big[labels]] = np.nan
    return out


def border_regions(mask: np.ndarray) -> np.ndarray:
    """Return the pixels of ``mask`` that are 4-connected to the image border (one flood fill)."""
    h, w = mask.shape
    canvas = np.ones((h + 2, w + 2), np.uint8)  # a frame of mask pixels around the image
    canvas[1:-1, 1:-1] = mask
    cv2.floodFill(canvas, None, (0, 0), 2, flags=4)
    return canvas[1:-1, 1:-1] == 2


def _relax(level: np.ndarray, free: np.ndarray, iterations: int) -> None:
    """In place: replace ``level[free]`` by its 3x3 neighbourhood mean, ``iterations`` times."""
    if iterations <= 0 or not free.any():
        return
    if free.mean() > 0.25:  # many free pixels: whole-image box filter
        for _ in range(iterations):
            level[free] = cv2.blur(level, (3, 3), borderType=cv2.BORDER_REPLICATE)[free]
        return
    h, w = level.shape
    target = np.flatnonzero(free)
    rows, cols = np.divmod(target, w)
    neighbours = [
        (np.clip(rows + dr, 0, h - 1) * w + np.clip(cols + dc, 0, w - 1)) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
    ]
    flat = level.reshape(-1)
    for _ in range(iterations):
        total = np.zeros(len(target), np.float32)
        for idx in neighbours:
            total += flat[idx]
        flat[target] = total / np.float32(9.0)


def _gaussian_ksize(sigma: float) -> int:
    return 2 * int(np.ceil(3.0 * sigma)) + 1


def smooth_depth(depth: np.ndarray, sigma: float, *, valid: np.ndarray | None = None) -> np.ndarray:
    """Gaussian smoothing that ignores missing pixels (normalised convolution).

    ``out = G * (d w) / G * w`` with ``w`` = 1 on valid pixels: values near holes and
    borders come only from valid neighbours, so the background never leaks into the face.

    Args:
        depth: ``(H, W) float`` depth (``NaN`` = missing).
        sigma: Gaussian standard deviation in pixels; ``<= 0`` returns a copy.
        valid: Optional ``(H, W) bool`` restricting the pixels used (default: finite ones).

    Returns:
        ``(H, W) float32``; ``NaN`` where the input was not valid.
    """
    arr = _as_depth(depth)
    ok = np.isfinite(arr)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    if sigma <= 0:
        return np.where(ok, arr, np.nan).astype(np.float32)
    ksize = _gaussian_ksize(sigma)
    if ok.all():
        return cv2.GaussianBlur(arr, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)
    weight = ok.astype(np.float32)
    num = cv2.GaussianBlur(
        np.where(ok, arr, 0.0).astype(np.float32), (ksize, ksize), sigma, borderType=cv2.BORDER_CONSTANT
    )
    den = cv2.GaussianBlur(weight, (ksize, ksize), sigma, borderType=cv2.BORDER_CONSTANT)
    out = np.divide(num, den, out=np.full_like(num, np.nan), where=ok & (den > 1e-6))
    return out


def edge_preserving_filter(
    depth: np.ndarray, *, sigma_space: float = 3.0, sigma_range: float = 0.05, valid: np.ndarray | None = None
) -> np.ndarray:
    """Bilateral filter: smooths flat regions, keeps depth edges (nose outline, face/background).

    Args:
        depth: ``(H, W) float`` depth (``NaN`` = missing; filled for filtering, ``NaN`` again after).
        sigma_space: Spatial standard deviation in pixels.
        sigma_range: Range standard deviation as a fraction of the 1-99 % depth range.
        valid: Optional ``(H, W) bool`` of usable pixels.

    Returns:
        ``(H, W) float32``, ``NaN`` where the input was not valid.
    """
    arr = _as_depth(depth)
    ok = np.isfinite(arr)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    if not ok.any() or sigma_space <= 0:
        return np.where(ok, arr, np.nan).astype(np.float32)
    work = fill_holes(np.where(ok, arr, np.nan)) if not ok.all() else arr
    span = robust_range(work, ok) or 1.0
    radius = max(1, int(round(1.5 * sigma_space)))
    out = cv2.bilateralFilter(np.ascontiguousarray(work), 2 * radius + 1, float(sigma_range * span), float(sigma_space))
    return np.where(ok, out, np.nan).astype(np.float32)


def depth_slope(depth_mm: np.ndarray, focal_px: float) -> np.ndarray:
    """Return the steepest depth step to a 4-neighbour, relative to the pixel's footprint.

    ``slope = max_n |z - z_n| / (z / f)``: a surface seen at angle ``a`` from the image
    plane has slope ``tan(a)``; a jump across a depth discontinuity has a huge slope.

    Args:
        depth_mm: ``(H, W) float`` metric depth along the optical axis (``NaN`` = missing).
        focal_px: Focal length in pixels.

    Returns:
        ``(H, W) float32`` slopes (``NaN`` neighbours are ignored; 0 where none is valid).
    """
    z = _as_depth(depth_mm)
    pad = np.pad(z, 1, mode="edge")
    center = pad[1:-1, 1:-1]
    with np.errstate(invalid="ignore"):
        diffs = [
            np.abs(center - pad[:-2, 1:-1]),
            np.abs(center - pad[2:, 1:-1]),
            np.abs(center - pad[1:-1, :-2]),
            np.abs(center - pad[1:-1, 2:]),
        ]
        step = np.fmax(np.fmax(diffs[0], diffs[1]), np.fmax(diffs[2], diffs[3]))
        footprint = np.abs(z) / float(focal_px)
        slope = np.divide(step, footprint, out=np.zeros_like(z), where=footprint > 0)
    return np.nan_to_num(slope, nan=0.0).astype(np.float32)


def flying_pixels(depth_mm: np.ndarray, focal_px: float, *, max_slope: float = 12.0) -> np.ndarray:
    """Flag "flying pixels": points smeared across a depth discontinuity.

    Depth networks and smoothing turn a jump (face edge in front of a wall) into a ramp;
    back-projected, the ramp becomes a curtain of points between face and wall. A pixel
    whose step to a neighbour is steeper than ``max_slope`` footprints (84.8 degrees for
    12) is flagged.

    Args:
        depth_mm: ``(H, W) float`` metric depth (``NaN`` = missing).
        focal_px: Focal length in pixels.
        max_slope: Steepest allowed surface slope ``tan(angle)``.

    Returns:
        ``(H, W) bool``, True on flying pixels.
    """
    return depth_slope(depth_mm, focal_px) > max_slope
