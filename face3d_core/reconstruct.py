"""The cheap step, composed: depth map (+ photo, face) -> clean 3D face in millimetres.

:func:`reconstruct_face` is what the dashboard reruns on every slider move; it never runs
the network. It is a short composition of stage functions, each usable and tested alone
(each can be switched in :class:`ReconstructionParams`; the key of
:attr:`FaceModel3D.timings_ms` in brackets):

0. **Lattice** (:func:`frame_source`, :func:`lattice_stride`, :func:`sample_lattice`): the
   input checked and put in the depth map's pixel frame, then sampled every ``stride`` pixels.
1. **Clean** (:func:`clean_depth`) [``outliers_holes``]: spikes
   (:func:`~face3d_core.refine.remove_outliers`) and holes (:func:`~face3d_core.refine.fill_holes`;
   holes touching the border stay empty).
2. **Mask** (:func:`model_mask`) [``mask``]: the face mask (:func:`~face3d_core.masks.face_mask`:
   landmark ellipse refined by depth), so the wall behind the head is not part of the model.
3. **Smooth** (:func:`smooth_in_mask`) [``smooth``] inside the mask: Gaussian with
   ``smoothing_sigma`` pixels (normalised convolution: the background never bleeds into the
   face outline), or a bilateral **edge-preserving** filter of the same spatial size.
4. **Metric depth** (:func:`fit_depth_conversion`, :class:`DepthConversion`) [``convert``]:
   relative inverse depth to metric depth with ``Z = 1 / (a d + b)`` (:mod:`face3d_core.geometry`),
   anchored so that the face's relief is ``relief_mm * depth_scale`` and its eyes are 63 mm
   apart (millimetre scale). Metric input is used as is.
5. **Flying pixels** (:func:`solid_pixels`) [``flying``] are dropped.
6. **Points** (:func:`lattice_points`, :func:`backproject_landmarks`, :func:`output_origin`,
   :func:`point_colors`) [``points``]: back-projection with a pinhole camera of ``fov_deg``
   (horizontal, whole photo); **colours** by depth (grayscale, lighter = nearer) or from the photo.
7. **Mesh** (:func:`surface_mesh`) [``mesh``]: grid triangulation without long edges.

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
    nearness_from_z,
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

#: Most points of a 3D model the dashboard and the CLI build (``max_points``): "full density"
#: means every depth pixel up to this many points (a grid mesh has about twice as many
#: triangles). It bounds the time and memory of a model, its figure and its downloads
#: whatever the photo's size (docs/reliability.md).
MAX_MODEL_POINTS = 1_500_000


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
        depth_conversion: How the depth values became millimetres (None for a model built
            elsewhere); :mod:`face3d_core.depth_fit` uses it to try another relief.
        landmarks_uv: ``(5, 2) float64`` the face's landmarks in depth-map pixels, also where
            they have no depth (a profile's hidden eye), or None without a face.
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
    depth_conversion: DepthConversion | None = None
    landmarks_uv: np.ndarray | None = None

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
    def point_cap_applied(self) -> bool:
        """True when the point budget (``params.max_points``) made the lattice coarser than asked."""
        return self.stride > int(self.params.stride)

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


# --------------------------------------------------------------------------------------------
# Stage 0: the input and the sampling lattice
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DepthFrame:
    """The input of :func:`reconstruct_face`, checked and brought to one pixel frame.

    Attributes:
        depth: ``(h, w) float32`` the depth map as given (relative inverse depth, or metric in
            the input's unit; ``NaN`` = missing). May be the caller's array: never written to.
        image_rgb: ``(h, w, 3) uint8`` the photo resized to the depth map, or None.
        face: The face in the depth map's pixels, or None.
        crop_box_xyxy: The depth map's box in the original photo's pixels.
        image_size_wh: ``(W, H)`` of the original photo.
        intrinsics: Camera of the depth map (``width, height == w, h``).
    """

    depth: np.ndarray
    image_rgb: np.ndarray | None
    face: Face | None
    crop_box_xyxy: tuple[int, int, int, int]
    image_size_wh: tuple[int, int]
    intrinsics: Intrinsics


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


def frame_source(
    source: FaceDepth | tuple | np.ndarray,
    *,
    fov_deg: float = DEFAULT_FOV_DEG,
    crop_box_xyxy: tuple[int, int, int, int] | None = None,
    image_size_wh: tuple[int, int] | None = None,
) -> DepthFrame:
    """Check the input and put depth, photo, face and camera in the depth map's pixel frame.

    Args:
        source: As :func:`reconstruct_face`'s ``source``. A ``(1, h, w)`` depth is squeezed.
        fov_deg: Horizontal field of view of the whole original photo, degrees.
        crop_box_xyxy: For a tuple/array source: where the depth map lies in the photo
            (default: it is the whole photo).
        image_size_wh: For a tuple/array source: the photo's size (default: the box's).

    Returns:
        The :class:`DepthFrame`. A photo of another size than the depth map is resized to it
        (area interpolation when shrinking, bilinear otherwise) and the face moved with it
        (pixel centres on integers); without a photo the face is taken to be in depth pixels.
        The camera is the whole photo's, cropped to the box and resampled to the depth map.

    Raises:
        ValueError: The depth is not ``(h, w)`` with both sides >= 2, or the photo is not ``(h', w', 3)``.
    """
    depth_in, image_rgb, face, box, size_wh = _unpack(source)
    depth = np.asarray(depth_in, dtype=np.float32)
    if depth.ndim == 3 and depth.shape[0] == 1:
        depth = depth[0]
    if depth.ndim != 2 or min(depth.shape) < 2:
        raise ValueError(f"expected an (H, W) depth map, got shape {depth.shape}")
    h, w = depth.shape
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
                face = face.resized((sx, sy))
    box = box if box is not None else (crop_box_xyxy or (0, 0, w, h))
    size_wh = size_wh if size_wh is not None else (image_size_wh or (box[2] - box[0], box[3] - box[1]))
    intrinsics = Intrinsics.from_fov(size_wh[0], size_wh[1], fov_deg).cropped(box)
    if (intrinsics.width, intrinsics.height) != (w, h):
        intrinsics = intrinsics.resized(w, h)
    return DepthFrame(depth, image_rgb, face, box, size_wh, intrinsics)


def _estimate_points(depth: np.ndarray, face: Face | None, mode: str, ellipse_scale: float) -> int:
    """Rough number of valid pixels the model will keep (for the ``max_points`` budget)."""
    h, w = depth.shape
    step = max(1, int(math.sqrt(h * w / 40_000)))
    sub = np.isfinite(depth[::step, ::step])
    if face is not None and mode in ("auto", "face"):
        center, axes, angle = face_ellipse(face, ellipse_scale)
        sub &= ellipse_mask(sub.shape, center / step, (axes[0] / step, axes[1] / step), angle)
    return int(sub.sum()) * step * step


def lattice_stride(
    depth: np.ndarray,
    face: Face | None,
    *,
    stride: int = 1,
    max_points: int | None = None,
    mask_mode: MaskMode = "auto",
    ellipse_scale: float = 1.0,
) -> int:
    """Grid stride of the lattice: ``stride``, raised until about ``max_points`` points remain.

    Args:
        depth: ``(h, w) float`` depth map (``NaN`` = missing).
        face: The face in depth pixels, or None.
        stride: The smallest stride (the user's density).
        max_points: Point budget, or None for no budget.
        mask_mode: As :attr:`ReconstructionParams.mask_mode`: with a face, only the pixels
            inside the face ellipse are counted.
        ellipse_scale: Size of that ellipse.

    Returns:
        ``s >= stride`` with ``(valid pixels) / s^2 <= max_points`` (counted on a coarse grid).
    """
    stride = int(stride)
    if max_points is None:
        return stride
    n_estimate = _estimate_points(depth, face, mask_mode, ellipse_scale)
    if n_estimate <= max_points * stride * stride:
        return stride
    return max(stride, int(math.ceil(math.sqrt(n_estimate / max_points))))


@dataclass(frozen=True, eq=False)
class Lattice:
    """The pixels ``(stride i, stride j)`` of a :class:`DepthFrame`, where every later stage runs.

    Attributes:
        depth: ``(hl, wl) float32`` C-contiguous depth on the lattice (input units, ``NaN`` =
            missing). May share memory with the input: never written to.
        image_rgb: ``(hl, wl, 3) uint8`` view of the photo on the lattice, or None.
        face: The face in lattice pixels, or None.
        intrinsics: Camera of the lattice (focal length and principal point divided by the stride).
        stride: Lattice step in depth-map pixels.
    """

    depth: np.ndarray
    image_rgb: np.ndarray | None
    face: Face | None
    intrinsics: Intrinsics
    stride: int


def sample_lattice(frame: DepthFrame, stride: int) -> Lattice:
    """Sample a depth frame on every ``stride``-th row and column (the same samples as a full-resolution map).

    Args:
        frame: The input.
        stride: Lattice step, ``>= 1``.

    Returns:
        The :class:`Lattice`: lattice pixel ``(i, j)`` is depth-map pixel ``(stride i, stride j)``.
    """
    s = int(stride)
    depth = np.ascontiguousarray(frame.depth[::s, ::s], dtype=np.float32)
    hl, wl = depth.shape
    full = frame.intrinsics
    intrinsics = Intrinsics(full.fx / s, full.fy / s, full.cx / s, full.cy / s, wl, hl)
    face = frame.face.transformed((1.0 / s, 1.0 / s)) if (frame.face is not None and s > 1) else frame.face
    image = frame.image_rgb[::s, ::s] if frame.image_rgb is not None else None
    return Lattice(depth, image, face, intrinsics, s)


# --------------------------------------------------------------------------------------------
# Stages 1-3: clean, mask, smooth (in the input's depth units)
# --------------------------------------------------------------------------------------------


def clean_depth(
    depth: np.ndarray,
    *,
    metric: bool = False,
    depth_unit_mm: float = 1.0,
    remove_outliers: bool = True,
    fill_holes: bool = True,
) -> np.ndarray:
    """Mark missing pixels, remove spikes and fill interior holes.

    Args:
        depth: ``(h, w) float32`` relative inverse depth (``NaN``/``inf`` = missing) or, with
            ``metric``, depth along the optical axis in ``depth_unit_mm`` (also ``<= 0`` = missing).
            Never written to.
        metric: The input is metric depth.
        depth_unit_mm: Millimetres per input unit (metric only).
        remove_outliers: Remove isolated spikes (:func:`~face3d_core.refine.remove_outliers`).
        fill_holes: Fill the spikes and the interior holes (:func:`~face3d_core.refine.fill_holes`).
            A hole that touches the border and was (partly) missing in the input is outside the
            object (a sensor's background) and stays empty.

    Returns:
        ``(h, w) float32``, ``NaN`` = missing: relative inverse depth, or metric depth in mm.
        May be ``depth`` itself when nothing changed.

    Raises:
        ValueError: No pixel is valid.
    """
    if metric:
        d = depth * np.float32(depth_unit_mm)
        valid_in = np.isfinite(d) & (d > 0)
    else:
        d = depth
        valid_in = np.isfinite(d)
    if not valid_in.any():
        raise ValueError("the depth map has no valid pixel")
    if not valid_in.all():
        d = d.copy() if d is depth else d
        d[~valid_in] = np.nan
    if remove_outliers:
        d = refine.remove_outliers(d)
    if fill_holes and not np.isfinite(d).all():
        holes = ~np.isfinite(d)
        outside = None
        if not valid_in.all():
            seeds = refine.border_regions(~valid_in)
            if seeds.any():
                _, labels = cv2.connectedComponents(holes.view(np.uint8), connectivity=4)
                outside_labels = np.zeros(int(labels.max()) + 1, dtype=bool)
                outside_labels[labels[seeds]] = True
                outside_labels[0] = False
                outside = outside_labels[labels]
        d = refine.fill_holes(d)
        if outside is not None:
            d[outside] = np.nan
    return d


def model_mask(
    depth: np.ndarray,
    face: Face | None,
    *,
    metric: bool = False,
    mask_mode: MaskMode = "auto",
    ellipse_scale: float = 1.0,
    mask_separation: float = 2.5,
) -> np.ndarray:
    """The pixels that may become the model: the face (or near object) without its background.

    Args:
        depth: ``(h, w) float32`` cleaned depth (:func:`clean_depth`; ``NaN`` = missing):
            relative inverse depth, or metric mm with ``metric`` (inverted for the masks).
        face: The face in these pixels, or None.
        metric: ``depth`` is metric.
        mask_mode: ``"face"`` (:func:`~face3d_core.masks.face_mask`; without a face it falls
            back to ``"foreground"``), ``"foreground"`` (:func:`~face3d_core.masks.foreground_mask`),
            ``"none"`` (every valid pixel), ``"auto"`` (face when there is one, else none).
        ellipse_scale: Size of the face ellipse.
        mask_separation: See :func:`~face3d_core.masks.face_mask`'s ``min_separation``.

    Returns:
        ``(h, w) bool``, only on finite pixels. An empty result falls back to every finite
        pixel, so the mask is empty only when ``depth`` has no finite pixel.
    """
    valid = np.isfinite(depth)
    if metric:
        with np.errstate(divide="ignore", invalid="ignore"):
            disp = np.float32(1.0) / depth
    else:
        disp = depth
    mode = mask_mode
    if mode == "auto":
        mode = "face" if face is not None else "none"
    if mode == "face" and face is None:
        logger.info("mask_mode='face' without a face: using the depth foreground instead")
        mode = "foreground"
    if mode == "face":
        mask = face_mask(disp, face, valid=valid, ellipse_scale=ellipse_scale, min_separation=mask_separation)
    elif mode == "foreground":
        mask = foreground_mask(disp, valid)
    else:
        mask = valid
    if not mask.any():
        logger.info("The mask is empty; using all valid pixels")
        mask = valid
    return mask


def smooth_in_mask(depth: np.ndarray, mask: np.ndarray, *, sigma: float, edge_preserving: bool = False) -> np.ndarray:
    """Smooth the depth inside the mask only, so the background never bleeds into the outline.

    Args:
        depth: ``(h, w) float32`` cleaned depth (any unit; ``NaN`` = missing).
        mask: ``(h, w) bool`` pixels to keep (:func:`model_mask`).
        sigma: Gaussian sigma in pixels of ``depth`` (0 = no smoothing).
        edge_preserving: A bilateral filter of the same spatial size instead of the Gaussian
            (:func:`~face3d_core.refine.edge_preserving_filter`).

    Returns:
        ``(h, w) float32`` in ``depth``'s unit, ``NaN`` outside the mask and where ``depth`` is
        ``NaN``. May be ``depth`` itself (no smoothing, mask everywhere).
    """
    if sigma > 0:
        if edge_preserving:
            return refine.edge_preserving_filter(depth, sigma_space=sigma, valid=mask)
        return refine.smooth_depth(depth, sigma, valid=mask)
    if not mask.all():
        return np.where(mask, depth, np.float32(np.nan))
    return depth


def landmark_depth(face: Face | None, depth_smooth: np.ndarray, depth_clean: np.ndarray) -> np.ndarray | None:
    """Depth at the five landmarks: smoothed, or the cleaned value where the smoothed is missing.

    Landmarks may fall outside the mask (a turned head), where the smoothed map is ``NaN``.

    Args:
        face: The face in these pixels, or None.
        depth_smooth: ``(h, w) float32`` :func:`smooth_in_mask` output.
        depth_clean: ``(h, w) float32`` :func:`clean_depth` output (same unit).

    Returns:
        ``(5,) float64`` bilinear samples in order :data:`~face3d_core.faces.LANDMARK_NAMES`
        (``NaN`` where no neighbour is finite), or None without a face.
    """
    if face is None:
        return None
    return sample_bilinear(np.where(np.isfinite(depth_smooth), depth_smooth, depth_clean), face.landmarks_xy)


# --------------------------------------------------------------------------------------------
# Stage 4: metric depth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthConversion:
    """How depth values become millimetres (see :mod:`face3d_core.geometry`).

    Attributes:
        scale_source: ``"metric"`` (values already in mm: :meth:`to_mm` is the identity),
            ``"eyes"`` (``z_near`` puts the eyes ``ipd_mm`` apart) or ``"assumed"``
            (``z_near`` = :data:`~face3d_core.geometry.DEFAULT_DISTANCE_MM`).
        d_lo: Relative inverse depth placed at ``z_near + relief`` (far anchor).
        d_hi: Relative inverse depth placed at ``z_near`` (near anchor), ``> d_lo``.
        z_near: Distance of the near anchor in mm.
        relief: Depth between the anchors in mm.
        model: ``"inverse"`` or ``"affine"`` (:func:`~face3d_core.geometry.relative_to_metric_depth`).
    """

    scale_source: ScaleSource
    d_lo: float = 0.0
    d_hi: float = 0.0
    z_near: float = 0.0
    relief: float = 0.0
    model: Literal["inverse", "affine"] = "inverse"

    def to_mm(self, depth: np.ndarray) -> np.ndarray:
        """Convert ``(...)`` depth values to ``(...) float32`` mm along the optical axis (metric: unchanged)."""
        if self.scale_source == "metric":
            return depth
        return relative_to_metric_depth(
            depth, self.d_lo, self.d_hi, z_near=self.z_near, relief=self.relief, model=self.model
        )


def fit_depth_conversion(
    depth_rel: np.ndarray,
    mask: np.ndarray,
    intrinsics: Intrinsics,
    *,
    face: Face | None = None,
    landmarks_depth_rel: np.ndarray | None = None,
    relief_mm: float = DEFAULT_RELIEF_MM,
    ipd_mm: float = MEAN_IPD_MM,
    depth_model: Literal["inverse", "affine"] = "inverse",
) -> DepthConversion:
    """Anchor relative inverse depth in millimetres: relief from the mask, scale from the eyes.

    The 2nd and 98th percentiles of ``depth_rel`` inside the mask (from about 100k samples)
    become the far and near anchors ``relief_mm`` apart. The near anchor's distance is solved
    so that the eyes end up ``ipd_mm`` apart (:func:`~face3d_core.geometry.solve_near_distance_for_ipd`)
    when a face with distinct eyes and finite eye depths is given; else it is
    :data:`~face3d_core.geometry.DEFAULT_DISTANCE_MM`.

    Args:
        depth_rel: ``(h, w) float32`` smoothed relative inverse depth (``NaN`` = missing).
        mask: ``(h, w) bool`` the model's pixels.
        intrinsics: Camera of ``depth_rel``.
        face: The face in these pixels, or None.
        landmarks_depth_rel: ``(5,)`` relative inverse depth at the landmarks (:func:`landmark_depth`).
        relief_mm: Face relief (already times the depth scale), ``> 0``.
        ipd_mm: Distance between the eyes in mm.
        depth_model: ``"inverse"`` or ``"affine"``.

    Returns:
        The :class:`DepthConversion` (``scale_source`` ``"eyes"`` or ``"assumed"``). A flat map
        (``d_hi == d_lo``) becomes a plane at ``z_near``.
    """
    hl, wl = depth_rel.shape
    sub_step = max(1, int(math.sqrt(hl * wl / 100_000)))
    values = depth_rel[::sub_step, ::sub_step]
    values = values[mask[::sub_step, ::sub_step] & np.isfinite(values)]
    if values.size == 0:
        values = depth_rel[np.isfinite(depth_rel)]
    d_lo, d_hi = (float(v) for v in np.percentile(values, [2.0, 98.0]))
    if not d_hi > d_lo:
        d_hi = d_lo + max(abs(d_lo), 1.0) * 1e-3  # a flat map: a plane at z_near
    z_near = DEFAULT_DISTANCE_MM
    scale_source: ScaleSource = "assumed"
    if face is not None and landmarks_depth_rel is not None and face.interocular_px > 0.5:
        eye_disp = landmarks_depth_rel[:2]
        if np.all(np.isfinite(eye_disp)):
            z_near = solve_near_distance_for_ipd(
                eye_disp, face.eyes_xy, intrinsics, d_lo, d_hi, relief=relief_mm, ipd_mm=ipd_mm, model=depth_model
            )
            scale_source = "eyes"
    return DepthConversion(scale_source, d_lo, d_hi, z_near, relief_mm, depth_model)


# --------------------------------------------------------------------------------------------
# Stages 5-7: flying pixels, points, mesh (millimetres)
# --------------------------------------------------------------------------------------------


def solid_pixels(
    depth_mm: np.ndarray,
    mask: np.ndarray,
    focal_px: float,
    *,
    drop_nonpositive: bool = False,
    remove_flying: bool = True,
    max_slope: float = 12.0,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The pixels that become geometry: in the mask, finite, and not flying pixels.

    Args:
        depth_mm: ``(h, w) float32`` metric depth along the optical axis, mm (``NaN`` = missing).
        mask: ``(h, w) bool`` the model's pixels.
        focal_px: Focal length of ``depth_mm``'s camera in pixels.
        drop_nonpositive: Also drop depths ``<= 0`` (metric input).
        remove_flying: Drop pixels steeper than ``max_slope`` to a neighbour
            (:func:`~face3d_core.refine.flying_pixels`).
        max_slope: Steepest kept surface slope (``tan`` of the angle to the image plane).

    Returns:
        ``(keep, window)``: ``(h, w) bool`` kept pixels, and ``(r0, r1, c0, c1)`` the bounding box
        (end exclusive) of the finite mask pixels before flying pixels were dropped, which holds
        every kept pixel (``(0, 0, 0, 0)`` when none).
    """
    keep = mask & np.isfinite(depth_mm)
    if drop_nonpositive:
        keep &= depth_mm > 0
    rows_any = np.flatnonzero(keep.any(axis=1))
    cols_any = np.flatnonzero(keep.any(axis=0))
    if not len(rows_any):
        return keep, (0, 0, 0, 0)
    r0, r1, c0, c1 = int(rows_any[0]), int(rows_any[-1]) + 1, int(cols_any[0]), int(cols_any[-1]) + 1
    if remove_flying:
        win = (slice(r0, r1), slice(c0, c1))
        keep[win] &= ~refine.flying_pixels(depth_mm[win], focal_px, max_slope=max_slope)
    return keep, (r0, r1, c0, c1)


@dataclass(frozen=True, eq=False)
class LatticePoints:
    """Back-projected lattice pixels, in the camera frame (mm; X right, Y up, Z towards the viewer).

    Attributes:
        grid_xyz: ``(r1 - r0, c1 - c0, 3) float32`` every pixel of the window (``NaN`` where
            the depth is missing), for triangulation.
        keep_window: ``(r1 - r0, c1 - c0) bool`` the kept pixels of the window.
        points_xyz: ``(N, 3) float32`` the kept points, row-major.
        rows: ``(N,) int64`` lattice row of each point.
        cols: ``(N,) int64`` lattice column of each point.
        pixel_xy: ``(N, 2) int32`` ``(col, row)`` of each point in the depth map (lattice index
            times the stride).
    """

    grid_xyz: np.ndarray
    keep_window: np.ndarray
    points_xyz: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    pixel_xy: np.ndarray


def lattice_points(
    depth_mm: np.ndarray,
    keep: np.ndarray,
    window: tuple[int, int, int, int],
    intrinsics: Intrinsics,
    stride: int = 1,
) -> LatticePoints:
    """Back-project the kept pixels with a pinhole camera (:func:`~face3d_core.geometry.backproject_grid`).

    Args:
        depth_mm: ``(hl, wl) float32`` metric depth on the lattice, mm.
        keep: ``(hl, wl) bool`` pixels to keep, all inside ``window``.
        window: ``(r0, r1, c0, c1)`` box holding the kept pixels (:func:`solid_pixels`).
        intrinsics: Camera of the lattice.
        stride: Lattice step, for :attr:`LatticePoints.pixel_xy`.

    Returns:
        The :class:`LatticePoints`.
    """
    r0, r1, c0, c1 = window
    keep_window = keep[r0:r1, c0:c1]
    grid = backproject_grid(depth_mm, intrinsics, window=window)
    rows, cols = np.nonzero(keep_window)
    rows += r0
    cols += c0
    pixel_xy = np.stack([cols * stride, rows * stride], axis=1).astype(np.int32)
    return LatticePoints(grid, keep_window, grid[keep_window], rows, cols, pixel_xy)


def backproject_landmarks(face: Face, landmarks_mm: np.ndarray, intrinsics: Intrinsics) -> np.ndarray | None:
    """3D landmarks in the camera frame (mm; X right, Y up, Z towards the viewer).

    Args:
        face: The face in the pixels of ``intrinsics``.
        landmarks_mm: ``(5,)`` metric depth at each landmark, mm.
        intrinsics: Camera of the face's pixels.

    Returns:
        ``(5, 3)`` points (float32 or float64, as ``landmarks_mm`` and the landmarks give), or
        None when a landmark's depth is not finite.
    """
    if not np.all(np.isfinite(landmarks_mm)):
        return None
    marks = face.landmarks_xy
    return np.stack(
        [
            (marks[:, 0] - intrinsics.cx) * landmarks_mm / intrinsics.fx,
            (intrinsics.cy - marks[:, 1]) * landmarks_mm / intrinsics.fy,
            -landmarks_mm,
        ],
        axis=1,
    )


def output_origin(points_xyz: np.ndarray, landmarks_xyz: np.ndarray | None, center: Center) -> np.ndarray:
    """Camera-frame position of the output frame's origin.

    Args:
        points_xyz: ``(N, 3) float32`` camera-frame points, mm.
        landmarks_xyz: ``(5, 3)`` camera-frame landmarks (:func:`backproject_landmarks`), or None.
        center: ``"centroid"`` (mean of the points, float64 accumulation), ``"nose"`` (the nose
            tip landmark) or ``"none"``; the origin is the camera centre when the points or the
            landmarks asked for are missing.

    Returns:
        ``(3,) float64`` mm.
    """
    if center == "centroid" and len(points_xyz):
        return points_xyz.mean(axis=0, dtype=np.float64)
    if center == "nose" and landmarks_xyz is not None:
        return landmarks_xyz[LANDMARK_NAMES.index("nose_tip")].astype(np.float64)
    return np.zeros(3)


def point_colors(
    points_xyz: np.ndarray,
    *,
    color_mode: ColorMode = "depth",
    image_rgb: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearness and colour of each point.

    Args:
        points_xyz: ``(N, 3) float32`` camera-frame points, mm (Z towards the viewer).
        color_mode: ``"depth"``: gray levels from 40 (farthest) to 255 (nearest), linear in
            nearness; ``"photo"``: the photo's pixel (depth colours without a photo).
        image_rgb: ``(hl, wl, 3) uint8`` the photo on the lattice, for ``"photo"``.
        rows: ``(N,)`` lattice row of each point, for ``"photo"``.
        cols: ``(N,)`` lattice column of each point, for ``"photo"``.

    Returns:
        ``(nearness, colors_rgb)``: ``(N,) float32`` in ``[0, 1]``, 1 = nearest
        (:func:`~face3d_core.geometry.nearness_from_z` of the distance, from at most ~50k
        samples), and ``(N, 3) uint8``.
    """
    nearness = nearness_from_z(-points_xyz[:, 2], z_towards_viewer=False, max_samples=50_000)
    if color_mode == "photo" and image_rgb is not None:
        return nearness, image_rgb[rows, cols]
    if color_mode == "photo":
        logger.info("color_mode='photo' without a photo: using depth colours")
    gray = (_DEPTH_GRAY_MIN + (255 - _DEPTH_GRAY_MIN) * nearness).astype(np.uint8)
    return nearness, np.repeat(gray[:, None], 3, axis=1)


def surface_mesh(
    points: LatticePoints,
    depth_mm: np.ndarray,
    window: tuple[int, int, int, int],
    focal_px: float,
    origin_mm: np.ndarray,
    colors_rgb: np.ndarray,
    *,
    max_slope: float = 12.0,
    texture_rgb: np.ndarray | None = None,
) -> Mesh:
    """Triangulate the kept lattice points without bridging depth jumps (:func:`~face3d_core.mesh.grid_mesh`).

    Args:
        points: The kept points and their window's grid (:func:`lattice_points`).
        depth_mm: ``(hl, wl) float32`` metric depth on the lattice, mm.
        window: ``(r0, r1, c0, c1)`` of ``points``.
        focal_px: Focal length of the lattice camera in pixels (a step's footprint is ``z / f``).
        origin_mm: ``(3,) float32`` camera-frame origin subtracted from every vertex.
        colors_rgb: ``(N, 3) uint8`` colour of each kept point.
        max_slope: Triangles with an edge longer than ``max(12, max_slope)`` footprints are dropped.
        texture_rgb: ``(h, w, 3) uint8`` the photo at the depth map's size, attached as texture
            with UVs from :attr:`LatticePoints.pixel_xy` (``v = 0`` at the bottom), or None.

    Returns:
        The :class:`~face3d_core.mesh.Mesh` in the output frame (mm), only vertices used by a triangle.
    """
    r0, r1, c0, c1 = window
    footprint = depth_mm[r0:r1, c0:c1] / np.float32(focal_px)
    uv = None
    if texture_rgb is not None:
        h, w = texture_rgb.shape[:2]
        pixel_xy = points.pixel_xy
        uv = np.stack([(pixel_xy[:, 0] + 0.5) / w, 1.0 - (pixel_xy[:, 1] + 0.5) / h], axis=1).astype(np.float32)
    return grid_mesh(
        points.grid_xyz - origin_mm,
        points.keep_window,
        footprint=footprint,
        max_edge_factor=max(DEFAULT_MAX_EDGE_FACTOR, max_slope),
        colors_grid=colors_rgb,
        uv_grid=uv,
        texture_rgb=texture_rgb,
    )


# --------------------------------------------------------------------------------------------
# The composition
# --------------------------------------------------------------------------------------------


class _StageClock:
    """Milliseconds per stage, each lap from the end of the previous one."""

    def __init__(self) -> None:
        self.timings_ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings_ms[name] = (now - self._last) * 1000.0
        self._last = now


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
    clock = _StageClock()
    metric = params.depth_kind == "metric"
    frame = frame_source(source, fov_deg=params.fov_deg, crop_box_xyxy=crop_box_xyxy, image_size_wh=image_size_wh)
    stride = lattice_stride(
        frame.depth,
        frame.face,
        stride=params.stride,
        max_points=params.max_points,
        mask_mode=params.mask_mode,
        ellipse_scale=params.ellipse_scale,
    )
    lat = sample_lattice(frame, stride)
    face, intr = lat.face, lat.intrinsics
    clean = clean_depth(
        lat.depth,
        metric=metric,
        depth_unit_mm=params.depth_unit_mm,
        remove_outliers=params.remove_outliers,
        fill_holes=params.fill_holes,
    )
    clock.lap("outliers_holes")
    mask = model_mask(
        clean,
        face,
        metric=metric,
        mask_mode=params.mask_mode,
        ellipse_scale=params.ellipse_scale,
        mask_separation=params.mask_separation,
    )
    clock.lap("mask")
    smooth = smooth_in_mask(clean, mask, sigma=params.smoothing_sigma / stride, edge_preserving=params.edge_preserving)
    clock.lap("smooth")
    marks_depth = landmark_depth(face, smooth, clean)
    if metric:
        conversion = DepthConversion("metric")
    else:
        conversion = fit_depth_conversion(
            smooth,
            mask,
            intr,
            face=face,
            landmarks_depth_rel=marks_depth,
            relief_mm=params.relief_mm * params.depth_scale,
            ipd_mm=params.ipd_mm,
            depth_model=params.depth_model,
        )
    depth_mm = conversion.to_mm(smooth)
    clock.lap("convert")
    keep, window = solid_pixels(
        depth_mm,
        mask,
        intr.focal_px,
        drop_nonpositive=metric,
        remove_flying=params.remove_flying_pixels,
        max_slope=params.max_slope,
    )
    clock.lap("flying")
    points = lattice_points(depth_mm, keep, window, intr, stride)
    landmarks_cam = None if face is None else backproject_landmarks(face, conversion.to_mm(marks_depth), intr)
    origin = output_origin(points.points_xyz, landmarks_cam, params.center)
    origin32 = origin.astype(np.float32)
    points_xyz = (points.points_xyz - origin32).astype(np.float32, copy=False)
    landmarks_xyz = None if landmarks_cam is None else (landmarks_cam - origin).astype(np.float32)
    nearness, colors = point_colors(
        points.points_xyz, color_mode=params.color_mode, image_rgb=lat.image_rgb, rows=points.rows, cols=points.cols
    )
    clock.lap("points")
    mesh = None
    if params.representation == "mesh":
        texture = None
        if params.texture and frame.image_rgb is not None:
            texture = np.asarray(frame.image_rgb, np.uint8)
        mesh = surface_mesh(
            points,
            depth_mm,
            window,
            intr.focal_px,
            origin32,
            colors,
            max_slope=params.max_slope,
            texture_rgb=texture,
        )
    clock.lap("mesh")

    model = FaceModel3D(
        points_xyz=points_xyz,
        colors_rgb=colors,
        depth_values=nearness,
        pixel_xy=points.pixel_xy,
        mesh=mesh,
        lattice_mask=keep,
        lattice_depth_mm=np.where(keep, depth_mm, np.float32(np.nan)).astype(np.float32, copy=False),
        landmarks_xyz=landmarks_xyz,
        origin_mm=origin,
        intrinsics=frame.intrinsics,
        scale_source=conversion.scale_source,
        stride=stride,
        params=params,
        crop_box_xyxy=tuple(int(v) for v in frame.crop_box_xyxy),
        image_size_wh=(int(frame.image_size_wh[0]), int(frame.image_size_wh[1])),
        timings_ms=clock.timings_ms,
        depth_conversion=conversion,
        landmarks_uv=None if frame.face is None else frame.face.landmarks_xy.astype(np.float64),
    )
    logger.debug(
        "reconstruct_face: %d points, %d triangles, stride %d, %s",
        model.n_points,
        model.n_faces,
        stride,
        ", ".join(f"{k} {v:.1f} ms" for k, v in clock.timings_ms.items()),
    )
    return model
