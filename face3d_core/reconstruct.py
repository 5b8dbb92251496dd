"""The cheap step, composed: depth map (+ photo, face) -> clean 3D face in millimetres.

:func:`reconstruct_face` is what the dashboard reruns on every slider move; it never runs
the network. Stages (each can be switched in :class:`ReconstructionParams`):

1. **Spikes** (:func:`~face3d_core.refine.remove_outliers`) and **holes**
   (:func:`~face3d_core.refine.fill_holes`; holes touching the border stay empty).
2. **Face mask** (:func:`~face3d_core.masks.face_mask`): landmark ellipse refined by depth,
   so the wall behind the head is not part of the model.
3. **Smoothing** inside the mask: Gaussian with ``smoothing_sigma`` pixels (normalised
   convolution: the background never bleeds into the face outline), or a bilateral
   **edge-preserving** filter of the same spatial size.
4. **Depth conversion** (:mod:`face3d_core.geometry`): relative inverse depth to metric
   depth with ``Z = 1 / (a d + b)``, anchored so that the face's relief is ``relief_mm *
   depth_scale`` and its eyes are 63 mm apart (millimetre scale). Metric input is used as is.
5. **Flying pixels** (:func:`~face3d_core.refine.flying_pixels`) are dropped.
6. **Back-projection** with a pinhole camera of ``fov_deg`` (horizontal, whole photo), on a
   grid of every ``stride``-th pixel; **colours** by depth (grayscale, lighter = nearer) or
   from the photo; **mesh** by grid triangulation without long edges.

**Density.** With ``stride`` s > 1 (or a ``max_points`` budget) every stage runs on the
lattice of pixels ``(s i, s j)`` with the smoothing sigma divided by s: the same points as
sampling a full-resolution result, at 1/s^2 of the cost. Depth networks predict at 224-518
pixels and upsample smoothly, so nothing is lost by not refining the upsampled pixels.

Output frame: millimetres, X right, Y up, Z towards the viewer, origin moved to the centroid
of the face points (``center="centroid"``; :attr:`FaceModel3D.origin_mm` gives the camera-
frame position of that origin, so ``points + origin`` are camera coordinates).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from face3d_core import refine
from face3d_core.faces import LANDMARK_NAMES, Face
from face3d_core.geometry import (
    DEFAULT_DISTANCE_MM,
    DEFAULT_FOV_DEG,
    DEFAULT_RELIEF_MM,
    MEAN_IPD_MM,
    Intrinsics,
    backproject_grid,
    relative_to_metric_depth,
    sample_bilinear,
    solve_near_distance_for_ipd,
)
from face3d_core.masks import ellipse_mask, face_ellipse, face_mask, foreground_mask
from face3d_core.mesh import DEFAULT_MAX_EDGE_FACTOR, Mesh, grid_mesh
from face3d_core.pipeline import FaceDepth

logger = logging.getLogger(__name__)

DepthKind = Literal["inverse", "metric"]
MaskMode = Literal["auto", "face", "foreground", "none"]
ColorMode = Literal["depth", "photo"]
Representation = Literal["points", "mesh"]
Center = Literal["centroid", "nose", "none"]
ScaleSource = Literal["eyes", "assumed", "metric"]

#: Gray level of the farthest point in the depth colour mode (nearest: 255).
_DEPTH_GRAY_MIN = 40


@dataclass(frozen=True)
class ReconstructionParams:
    """Everything the cheap step depends on (frozen and hashable: usable as a cache key).

    Attributes:
        smoothing_sigma: Gaussian smoothing in depth-map pixels (0 = none).
        edge_preserving: Use a bilateral filter (spatial sigma = ``smoothing_sigma``) instead
            of the Gaussian: keeps the nose and face outline sharp.
        remove_outliers: Remove isolated spikes before smoothing.
        fill_holes: Fill interior holes (missing or removed pixels).
        remove_flying_pixels: Drop points on depth discontinuities.
        max_slope: Steepest surface slope kept (``tan`` of the angle to the image plane) for
            flying pixels and mesh edges.
        depth_kind: ``"inverse"``: relative inverse depth (any network: larger = nearer);
            ``"metric"``: depth along the optical axis from a sensor, in ``depth_unit_mm``.
        depth_unit_mm: Millimetres per unit of metric input (1 for mm, 1000 for metres).
        depth_scale: Multiplies the face relief (inverse depth only): 1 natural, 2 deeper, 0.5 flatter.
        relief_mm: Face relief at ``depth_scale`` 1 (nose tip to the outline near the ears).
        depth_model: ``"inverse"`` (``Z = 1 / (a d + b)``) or ``"affine"`` relief.
        fov_deg: Horizontal field of view of the whole photo, degrees.
        ipd_mm: Interpupillary distance that sets the millimetre scale.
        mask_mode: ``"face"`` (landmark ellipse + depth), ``"foreground"`` (Otsu on depth),
            ``"none"`` (all valid pixels), ``"auto"`` (face when a face is known, else none).
        mask_separation: How clearly the background must stand apart from the face in depth
            to be cut from the face ellipse (see :func:`face3d_core.masks.face_mask`).
        ellipse_scale: Size of the face ellipse (1 = forehead to chin).
        stride: Use every ``stride``-th pixel (display density).
        max_points: If set, raise the stride until at most about this many points remain.
        representation: ``"mesh"`` (points and triangles) or ``"points"`` (no triangulation).
        color_mode: ``"depth"`` (grayscale, lighter = nearer) or ``"photo"``.
        texture: Attach the photo as a texture to the mesh (UVs from pixel coordinates).
        center: Origin of the output: ``"centroid"`` of the points, the ``"nose"`` tip
            landmark, or ``"none"`` (camera centre).
    """

    smoothing_sigma: float = 2.0
    edge_preserving: bool = False
    remove_outliers: bool = True
    fill_holes: bool = True
    remove_flying_pixels: bool = True
    max_slope: float = 12.0
    depth_kind: DepthKind = "inverse"
    depth_unit_mm: float = 1.0
    depth_scale: float = 1.0
    relief_mm: float = DEFAULT_RELIEF_MM
    depth_model: Literal["inverse", "affine"] = "inverse"
    fov_deg: float = DEFAULT_FOV_DEG
    ipd_mm: float = MEAN_IPD_MM
    mask_mode: MaskMode = "auto"
    mask_separation: float = 2.5
    ellipse_scale: float = 1.0
    stride: int = 1
    max_points: int | None = None
    representation: Representation = "mesh"
    color_mode: ColorMode = "depth"
    texture: bool = False
    center: Center = "centroid"

    def __post_init__(self) -> None:
        checks = [
            (self.smoothing_sigma >= 0, "smoothing_sigma must be >= 0"),
            (self.max_slope > 0, "max_slope must be > 0"),
            (self.depth_kind in ("inverse", "metric"), "depth_kind must be 'inverse' or 'metric'"),
            (self.depth_unit_mm > 0, "depth_unit_mm must be > 0"),
            (self.depth_scale > 0, "depth_scale must be > 0"),
            (self.relief_mm > 0, "relief_mm must be > 0"),
            (self.depth_model in ("inverse", "affine"), "depth_model must be 'inverse' or 'affine'"),
            (1.0 <= self.fov_deg <= 179.0, "fov_deg must be in [1, 179]"),
            (self.ipd_mm > 0, "ipd_mm must be > 0"),
            (self.mask_mode in ("auto", "face", "foreground", "none"), "unknown mask_mode"),
            (self.mask_separation > 0, "mask_separation must be > 0"),
            (self.ellipse_scale > 0, "ellipse_scale must be > 0"),
            (int(self.stride) >= 1, "stride must be >= 1"),
            (self.max_points is None or self.max_points >= 1, "max_points must be >= 1"),
            (self.representation in ("points", "mesh"), "representation must be 'points' or 'mesh'"),
            (self.color_mode in ("depth", "photo"), "color_mode must be 'depth' or 'photo'"),
            (self.center in ("centroid", "nose", "none"), "center must be 'centroid', 'nose' or 'none'"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def replace(self, **changes) -> ReconstructionParams:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, eq=False)
class FaceModel3D:
    """A reconstructed 3D face (or scene), in millimetres.

    Attributes:
        points_xyz: ``(N, 3) float32`` points in mm (X right, Y up, Z towards the viewer).
        colors_rgb: ``(N, 3) uint8`` per-point colours (grayscale by depth or the photo's).
        depth_values: ``(N,) float32`` nearness in ``[0, 1]`` (1 = nearest), for a colour scale.
        pixel_xy: ``(N, 2) int32`` ``(col, row)`` of each point in the depth map.
        mesh: The triangle mesh (``representation="mesh"``), or None.
        lattice_mask: ``(hl, wl) bool`` lattice pixels ``(stride i, stride j)`` that became
            geometry (face, valid, not flying). :attr:`mask` gives it at the depth map's size.
        lattice_depth_mm: ``(hl, wl) float32`` refined metric depth along the optical axis on the
            lattice (``NaN`` outside the mask). :attr:`depth_mm` gives it at the depth map's size.
        landmarks_xyz: ``(5, 3) float32`` 3D landmark positions in the output frame (order
            :data:`face3d_core.faces.LANDMARK_NAMES`), or None without a face.
        origin_mm: ``(3,) float64`` camera-frame position of the output origin.
        intrinsics: Camera of the depth map.
        scale_source: ``"eyes"`` (63 mm between the eyes), ``"assumed"`` (nominal 500 mm
            distance) or ``"metric"`` (metric input).
        stride: Grid stride actually used.
        params: The parameters used.
        crop_box_xyxy: Depth map's box in the original photo's pixels.
        image_size_wh: ``(W, H)`` of the original photo.
        timings_ms: Time per stage in milliseconds.
    """

    points_xyz: np.ndarray
    colors_rgb: np.ndarray
    depth_values: np.ndarray
    pixel_xy: np.ndarray
    mesh: Mesh | None
    lattice_mask: np.ndarray
    lattice_depth_mm: np.ndarray
    landmarks_xyz: np.ndarray | None
    origin_mm: np.ndarray
    intrinsics: Intrinsics
    scale_source: ScaleSource
    stride: int
    params: ReconstructionParams
    crop_box_xyxy: tuple[int, int, int, int]
    image_size_wh: tuple[int, int]
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def depth_shape(self) -> tuple[int, int]:
        """``(h, w)`` of the depth map the model was built from."""
        return (self.intrinsics.height, self.intrinsics.width)

    @functools.cached_property
    def mask(self) -> np.ndarray:
        """``(h, w) bool`` pixels of the depth map that became geometry (nearest lattice sample)."""
        return self._full_size(self.lattice_mask)

    @functools.cached_property
    def depth_mm(self) -> np.ndarray:
        """``(h, w) float32`` refined metric depth, ``NaN`` outside :attr:`mask` (nearest lattice sample)."""
        return self._full_size(self.lattice_depth_mm)

    def _full_size(self, lattice: np.ndarray) -> np.ndarray:
        h, w = self.depth_shape
        if lattice.shape == (h, w):
            return lattice
        if lattice.dtype == bool:
            return cv2.resize(lattice.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).view(bool)
        return cv2.resize(lattice, (w, h), interpolation=cv2.INTER_NEAREST)

    @property
    def n_points(self) -> int:
        """Number of points."""
        return int(self.points_xyz.shape[0])

    @property
    def n_faces(self) -> int:
        """Number of triangles (0 without a mesh)."""
        return 0 if self.mesh is None else self.mesh.n_faces

    @property
    def landmarks(self) -> dict[str, np.ndarray]:
        """Landmark name -> ``(3,) float32`` position in mm (empty without a face)."""
        if self.landmarks_xyz is None:
            return {}
        return dict(zip(LANDMARK_NAMES, self.landmarks_xyz, strict=True))

    def landmark(self, name: str) -> np.ndarray:
        """Return one 3D landmark by name.

        Raises:
            KeyError: No face landmarks, or an unknown name.
        """
        return self.landmarks[name]

    @property
    def bounds_mm(self) -> np.ndarray:
        """``(2, 3)`` min and max corner of the points."""
        if self.n_points == 0:
            return np.zeros((2, 3), np.float32)
        return np.stack([self.points_xyz.min(axis=0), self.points_xyz.max(axis=0)])


def _auto_stride(n_estimate: int, stride: int, max_points: int | None) -> int:
    if max_points is None or n_estimate <= max_points * stride * stride:
        return stride
    return max(stride, int(math.ceil(math.sqrt(n_estimate / max_points))))


def _estimate_points(depth: np.ndarray, face: Face | None, mode: str, ellipse_scale: float) -> int:
    """Rough number of valid pixels the model will keep (for the ``max_points`` budget)."""
    h, w = depth.shape
    step = max(1, int(math.sqrt(h * w / 40_000)))
    sub = np.isfinite(depth[::step, ::step])
    if face is not None and mode in ("auto", "face"):
        center, axes, angle = face_ellipse(face, ellipse_scale)
        sub &= ellipse_mask(sub.shape, center / step, (axes[0] / step, axes[1] / step), angle)
    return int(sub.sum()) * step * step


def _unpack(
    source,
) -> tuple[np.ndarray, np.ndarray | None, Face | None, tuple[int, int, int, int] | None, tuple[int, int] | None]:
    if isinstance(source, FaceDepth):
        return source.depth_rel, source.image_rgb, source.face, source.crop_box_xyxy, source.image_size_wh
    if isinstance(source, tuple):
        if len(source) != 3:
            raise ValueError("pass a FaceDepth or a (depth, image_rgb, face) tuple")
        depth, image, face = source
        return depth, image, face, None, None
    return source, None, None, None, None


def reconstruct_face(
    source: FaceDepth | tuple | np.ndarray,
    params: ReconstructionParams | None = None,
    *,
    crop_box_xyxy: tuple[int, int, int, int] | None = None,
    image_size_wh: tuple[int, int] | None = None,
) -> FaceModel3D:
    """Turn a depth map of a face into a clean 3D face.

    Args:
        source: A :class:`~face3d_core.pipeline.FaceDepth`, or ``(depth, image_rgb, face)``
            where ``depth`` is ``(h, w) float`` (relative inverse depth, or metric with
            ``params.depth_kind="metric"``; ``NaN``/``<= 0`` metric = missing), ``image_rgb`` the
            matching ``(h', w', 3) uint8`` photo or None (resized to the depth map if its size
            differs) and ``face`` a :class:`~face3d_core.faces.Face` in the photo's pixels or None;
            or a bare depth array.
        params: The parameters (default :class:`ReconstructionParams`).
        crop_box_xyxy: For a tuple/array source: where the depth map lies in the original
            photo (default: it is the whole photo).
        image_size_wh: For a tuple/array source: the original photo's size (default: the box's).

    Returns:
        The :class:`FaceModel3D`.

    Raises:
        ValueError: Shapes or parameters are invalid.
    """
    params = params or ReconstructionParams()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = (now - clock) * 1000.0
        clock = now

    depth_in, image_rgb, face, box, size_wh = _unpack(source)
    depth_full = np.asarray(depth_in, dtype=np.float32)
    if depth_full.ndim == 3 and depth_full.shape[0] == 1:
        depth_full = depth_full[0]
    if depth_full.ndim != 2 or min(depth_full.shape) < 2:
        raise ValueError(f"expected an (H, W) depth map, got shape {depth_full.shape}")
    h, w = depth_full.shape
    if image_rgb is not None:
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) image, got shape {image_rgb.shape}")
        ih, iw = image_rgb.shape[:2]
        if (ih, iw) != (h, w):
            sx, sy = w / iw, h / ih
            interp = cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR
            image_rgb = cv2.resize(image_rgb, (w, h), interpolation=interp)
            if face is not None:
                face = face.transformed((sx, sy), (0.5 * sx - 0.5, 0.5 * sy - 0.5))
    box = box if box is not None else (crop_box_xyxy or (0, 0, w, h))
    size_wh = size_wh if size_wh is not None else (image_size_wh or (box[2] - box[0], box[3] - box[1]))
    intr_full = Intrinsics.from_fov(size_wh[0], size_wh[1], params.fov_deg).cropped(box)
    if (intr_full.width, intr_full.height) != (w, h):
        intr_full = intr_full.resized(w, h)

    # -- 0. sampling lattice: with stride s everything runs on pixels (s i, s j) -------------
    stride = int(params.stride)
    if params.max_points is not None:
        stride = _auto_stride(
            _estimate_points(depth_full, face, params.mask_mode, params.ellipse_scale), stride, params.max_points
        )
    s = stride
    depth = np.array(depth_full[::s, ::s], dtype=np.float32)  # own copy
    hl, wl = depth.shape
    intr = Intrinsics(intr_full.fx / s, intr_full.fy / s, intr_full.cx / s, intr_full.cy / s, wl, hl)
    face_l = face.transformed((1.0 / s, 1.0 / s)) if (face is not None and s > 1) else face
    image_l = image_rgb[::s, ::s] if image_rgb is not None else None
    sigma = params.smoothing_sigma / s

    # -- 1. validity, spikes, holes ---------------------------------------------------------
    metric = params.depth_kind == "metric"
    if metric:
        depth *= np.float32(params.depth_unit_mm)
        valid0 = np.isfinite(depth) & (depth > 0)
    else:
        valid0 = np.isfinite(depth)
    if not valid0.any():
        raise ValueError("the depth map has no valid pixel")
    d = depth
    if not valid0.all():
        d[~valid0] = np.nan
    if params.remove_outliers:
        d = refine.remove_outliers(d)
    if params.fill_holes and not np.isfinite(d).all():
        # fill spikes and interior holes; a hole that touches the border and was (partly) missing
        # in the input is outside the object (a sensor's background) and stays empty
        holes = ~np.isfinite(d)
        outside = None
        if not valid0.all():
            seeds = refine.border_regions(~valid0)
            if seeds.any():
                _, labels = cv2.connectedComponents(holes.view(np.uint8), connectivity=4)
                outside_labels = np.zeros(int(labels.max()) + 1, dtype=bool)
                outside_labels[labels[seeds]] = True
                outside_labels[0] = False
                outside = outside_labels[labels]
        d = refine.fill_holes(d)
        if outside is not None:
            d[outside] = np.nan
    lap("outliers_holes")

    d_unsmoothed = d
    # -- 2. mask (before smoothing, so the background never bleeds into the face) -------------
    valid = np.isfinite(d)
    if metric:
        with np.errstate(divide="ignore", invalid="ignore"):
            disp = np.float32(1.0) / d
    else:
        disp = d
    mode = params.mask_mode
    if mode == "auto":
        mode = "face" if face_l is not None else "none"
    if mode == "face" and face_l is None:
        logger.info("mask_mode='face' without a face: using the depth foreground instead")
        mode = "foreground"
    if mode == "face":
        mask = face_mask(
            disp, face_l, valid=valid, ellipse_scale=params.ellipse_scale, min_separation=params.mask_separation
        )
    elif mode == "foreground":
        mask = foreground_mask(disp, valid)
    else:
        mask = valid
    if not mask.any():
        logger.info("The mask is empty; using all valid pixels")
        mask = valid
    lap("mask")

    # -- 3. smoothing inside the mask -------------------------------------------------------
    if sigma > 0:
        if params.edge_preserving:
            d = refine.edge_preserving_filter(d, sigma_space=sigma, valid=mask)
        else:
            d = refine.smooth_depth(d, sigma, valid=mask)
    elif not mask.all():
        d = np.where(mask, d, np.float32(np.nan))
    lap("smooth")

    # -- 4. metric depth --------------------------------------------------------------------
    eyes = face_l.eyes_xy if face_l is not None else None
    d_lo = d_hi = z_near = relief = 0.0
    if metric:
        depth_mm = d
        scale_source: ScaleSource = "metric"
    else:
        sub_step = max(1, int(math.sqrt(hl * wl / 100_000)))
        values = d[::sub_step, ::sub_step]
        values = values[mask[::sub_step, ::sub_step] & np.isfinite(values)]
        if values.size == 0:
            values = d[np.isfinite(d)]
        d_lo, d_hi = (float(v) for v in np.percentile(values, [2.0, 98.0]))
        if not d_hi > d_lo:
            d_hi = d_lo + max(abs(d_lo), 1.0) * 1e-3  # a flat map: a plane at z_near
        relief = params.relief_mm * params.depth_scale
        z_near = DEFAULT_DISTANCE_MM
        scale_source = "assumed"
        if eyes is not None and face_l.interocular_px > 0.5:
            eye_disp = sample_bilinear(np.where(np.isfinite(d), d, d_unsmoothed), eyes)
            if np.all(np.isfinite(eye_disp)):
                z_near = solve_near_distance_for_ipd(
                    eye_disp, eyes, intr, d_lo, d_hi, relief=relief, ipd_mm=params.ipd_mm, model=params.depth_model
                )
                scale_source = "eyes"
        depth_mm = relative_to_metric_depth(d, d_lo, d_hi, z_near=z_near, relief=relief, model=params.depth_model)
    lap("convert")

    # -- 5. flying pixels -------------------------------------------------------------------
    keep = mask & np.isfinite(depth_mm)
    if metric:
        keep &= depth_mm > 0
    rows_any = np.flatnonzero(keep.any(axis=1))
    cols_any = np.flatnonzero(keep.any(axis=0))
    if len(rows_any):
        r0, r1, c0, c1 = int(rows_any[0]), int(rows_any[-1]) + 1, int(cols_any[0]), int(cols_any[-1]) + 1
    else:
        r0 = r1 = c0 = c1 = 0
    win = (slice(r0, r1), slice(c0, c1))
    if params.remove_flying_pixels and len(rows_any):
        keep[win] &= ~refine.flying_pixels(depth_mm[win], intr.focal_px, max_slope=params.max_slope)
    lap("flying")

    # -- 6. points, colours, landmarks ------------------------------------------------------
    keep_w = keep[win]
    grid = backproject_grid(depth_mm, intr, window=(r0, r1, c0, c1))
    pts_cam = grid[keep_w]
    rows_k, cols_k = np.nonzero(keep_w)
    rows_k += r0
    cols_k += c0
    pixel_xy = np.stack([cols_k * s, rows_k * s], axis=1).astype(np.int32)

    landmarks_cam = None
    if face_l is not None:
        marks = face_l.landmarks_xy
        # landmarks may fall outside the mask (a turned head): use the unmasked depth there
        d_marks = sample_bilinear(np.where(np.isfinite(d), d, d_unsmoothed), marks)
        if metric:
            z_marks = d_marks
        else:
            z_marks = relative_to_metric_depth(
                d_marks, d_lo, d_hi, z_near=z_near, relief=relief, model=params.depth_model
            )
        if np.all(np.isfinite(z_marks)):
            landmarks_cam = np.stack(
                [
                    (marks[:, 0] - intr.cx) * z_marks / intr.fx,
                    (intr.cy - marks[:, 1]) * z_marks / intr.fy,
                    -z_marks,
                ],
                axis=1,
            )

    if params.center == "centroid" and len(pts_cam):
        origin = pts_cam.mean(axis=0, dtype=np.float64)
    elif params.center == "nose" and landmarks_cam is not None:
        origin = landmarks_cam[LANDMARK_NAMES.index("nose_tip")].astype(np.float64)
    else:
        origin = np.zeros(3)
    origin32 = origin.astype(np.float32)
    points = pts_cam - origin32
    landmarks_xyz = None if landmarks_cam is None else (landmarks_cam - origin).astype(np.float32)

    z_pts = -pts_cam[:, 2]
    if len(z_pts):
        z_lo, z_hi = np.percentile(z_pts[:: max(1, z_pts.size // 50_000)], [1.0, 99.0])
        span = max(float(z_hi - z_lo), 1e-6)
        nearness = np.clip((np.float32(z_hi) - z_pts) / np.float32(span), 0.0, 1.0).astype(np.float32)
    else:
        nearness = np.zeros(0, np.float32)
    if params.color_mode == "photo" and image_l is not None:
        colors = image_l[rows_k, cols_k]
    else:
        if params.color_mode == "photo":
            logger.info("color_mode='photo' without a photo: using depth colours")
        gray = (_DEPTH_GRAY_MIN + (255 - _DEPTH_GRAY_MIN) * nearness).astype(np.uint8)
        colors = np.repeat(gray[:, None], 3, axis=1)
    lap("points")

    # -- 7. mesh ----------------------------------------------------------------------------
    mesh = None
    if params.representation == "mesh":
        footprint = depth_mm[win] / np.float32(intr.focal_px)
        texture = np.asarray(image_rgb, np.uint8) if (params.texture and image_rgb is not None) else None
        uv = None
        if texture is not None:
            uv = np.stack([(pixel_xy[:, 0] + 0.5) / w, 1.0 - (pixel_xy[:, 1] + 0.5) / h], axis=1)
            uv = uv.astype(np.float32)
        mesh = grid_mesh(
            grid - origin32,
            keep_w,
            footprint=footprint,
            max_edge_factor=max(DEFAULT_MAX_EDGE_FACTOR, params.max_slope),
            colors_grid=colors,
            uv_grid=uv,
            texture_rgb=texture,
        )
    lap("mesh")

    depth_out = np.where(keep, depth_mm, np.float32(np.nan)).astype(np.float32, copy=False)
    model = FaceModel3D(
        points_xyz=points.astype(np.float32, copy=False),
        colors_rgb=colors,
        depth_values=nearness,
        pixel_xy=pixel_xy,
        mesh=mesh,
        lattice_mask=keep,
        lattice_depth_mm=depth_out,
        landmarks_xyz=landmarks_xyz,
        origin_mm=origin,
        intrinsics=intr_full,
        scale_source=scale_source,
        stride=stride,
        params=params,
        crop_box_xyxy=tuple(int(v) for v in box),
        image_size_wh=(int(size_wh[0]), int(size_wh[1])),
        timings_ms=timings,
    )
    logger.debug(
        "reconstruct_face: %d points, %d triangles, stride %d, %s",
        model.n_points,
        model.n_faces,
        stride,
        ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items()),
    )
    return model
