"""Comparing faces: landmark alignment, depth profiles, difference maps and metrics.

Depth from a single photo is relative (unknown scale and shift), every photo frames the face
differently and every head is turned its own way, so faces are compared in a common
*canonical frame*:

1. :func:`align_face_3d` (what :func:`compare_faces` uses) reconstructs each face in 3D, puts it
   in its own frame (:func:`face3d_core.measure.face_geometry`: head pose from the surface's
   symmetry, relief fitted for relative depth) and samples its surface seen from the front of
   the face on a ``size x size`` grid where the eyes lie on a fixed template: a face turned
   20 degrees is compared as if it looked into the camera (parts the camera did not see are
   empty). :func:`align_face` is the older 2D method (a similarity transform of the depth map
   that brings the five landmarks onto the template), used for a face that cannot be put in
   its frame (turned too far, too small). Either way the depth is then normalised robustly over
   the central face region to ``[0, 1]`` (0 = the far 2nd percentile, 1 = the near 98th
   percentile; 1 = nearest).
2. :func:`nose_profile` (vertical, through the nose tip) and :func:`eye_profile` (horizontal,
   through the eyes) sample the aligned map; positions are in inter-ocular distances (IOD)
   from the nose tip / face centre, so profiles of different faces overlay.
3. :func:`difference_map` and :func:`compare_pair` compare two aligned faces
   (:meth:`ComparisonResult.pair` for any two items of a comparison).
4. :func:`compare_faces` composes these for 2 to 6 *items* into a :class:`ComparisonResult`; an
   item is a face under a depth model in a precision, so one face under several networks
   ("which network sees this face best?") compares like several faces under one. It
   gets each item's depth from a caller-supplied provider (the dashboard's cached depth maps,
   or :func:`face3d_core.pipeline.compute_face_depth` directly), so it knows nothing of caches.

All depth values here are in normalised units (fractions of the face's own depth range),
not millimetres.

Example:
    >>> import numpy as np
    >>> yy, xx = np.mgrid[0:200, 0:200].astype(np.float32)
    >>> depth = np.exp(-((xx - 100) ** 2 + (yy - 110) ** 2) / 2000.0)
    >>> marks = np.array([[70, 80], [130, 80], [100, 110], [75, 140], [125, 140]], np.float32)
    >>> face = align_face(depth, marks)
    >>> face.depth.shape
    (128, 128)
    >>> round(compare_pair(face, face).rms_difference, 6)
    0.0
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from face3d_core.errors import Face3DError
from face3d_core.face_frame import FrameSurface, HeadPose
from face3d_core.masks import face_mask
from face3d_core.models.registry import get_spec
from face3d_core.pipeline import DepthRef, FaceDepth, TaskProgress, no_progress

logger = logging.getLogger(__name__)

#: Landmark order used throughout face3d (YuNet's order).
LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")

#: Template positions of the five landmarks as fractions of the canonical grid (x, y).
#: The subject's right eye appears on the image's left. Proportions of an average adult face:
#: nose tip 0.57 IOD below the eyes, mouth 1.13 IOD below, mouth width 0.83 IOD.
TEMPLATE_XY = np.array([[0.35, 0.40], [0.65, 0.40], [0.50, 0.571], [0.375, 0.74], [0.625, 0.74]], dtype=np.float64)

#: Central face region used for normalisation and metrics: an ellipse (centre x, centre y,
#: half-width, half-height) as fractions of the grid.
FACE_REGION = (0.50, 0.58, 0.28, 0.36)

DEFAULT_SIZE = 128

#: Fewest and most faces in one comparison.
MIN_FACES, MAX_FACES = 2, 6

#: ``depth_of(ref, progress) -> FaceDepth``: the depth map of one face, from wherever the caller keeps them.
DepthProvider = Callable[[DepthRef, TaskProgress], FaceDepth]
#: ``model_of(ref, face_depth) -> FaceModel3D``: the 3D face of a depth map (the caller's parameters,
#: e.g. the photo's field of view).
ModelProvider = Callable[[DepthRef, FaceDepth], object]
#: Most points of the reconstruction :func:`compare_faces` makes when no ``model_of`` is given.
COMPARE_MODEL_POINTS = 120_000


class ComparisonError(Face3DError):
    """Faces cannot be compared (no landmarks, degenerate landmarks, no common area)."""

    title = "Faces cannot be compared"


@dataclass(frozen=True)
class AlignedFace:
    """One face's depth in the canonical frame.

    Attributes:
        depth: ``(S, S) float32`` normalised depth, 1 = nearest; NaN where there is no data.
        valid: ``(S, S) bool``, True where ``depth`` holds data.
        landmarks_xy: ``(5, 2) float32`` the face's own landmarks mapped into the grid (pixels).
        transform: ``(2, 3) float64`` affine map from source pixels to grid pixels.
        fit_error: RMS distance of the mapped landmarks from the template, in IODs (a pose
            indicator: near 0 for a frontal face, larger for a turned head).
        pose: The head pose when the face was aligned in 3D (None: by its landmarks in 2D).
        note: How the face was aligned when it could not be in 3D ("" otherwise).
    """

    depth: np.ndarray
    valid: np.ndarray
    landmarks_xy: np.ndarray
    transform: np.ndarray
    fit_error: float
    pose: HeadPose | None = None
    note: str = ""

    @property
    def size(self) -> int:
        """Side of the canonical grid in pixels."""
        return int(self.depth.shape[0])

    @property
    def iod_px(self) -> float:
        """Template inter-ocular distance in grid pixels."""
        return float((TEMPLATE_XY[1, 0] - TEMPLATE_XY[0, 0]) * self.size)


@dataclass(frozen=True)
class Profile:
    """A depth profile along one line of the canonical grid.

    Attributes:
        positions: ``(n,) float32`` position along the line in inter-ocular distances
            (0 at the nose tip for the vertical profile, at the face centre for the horizontal).
        values: ``(n,) float32`` normalised depth (1 = nearest); NaN where there is no data.
    """

    positions: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class PairMetrics:
    """Numbers comparing two aligned faces (normalised depth units unless stated).

    Attributes:
        rms_difference: Root mean square of ``a - b`` over the common face region.
        mean_abs_difference: Mean of ``|a - b|`` over the common face region.
        max_abs_difference: 99th percentile of ``|a - b|`` (robust maximum).
        correlation: Pearson correlation of the two depth maps over the common region.
        overlap: Fraction of the face region where both faces have data.
        nose_prominence_a: Nose tip depth minus mean eye depth of face a.
        nose_prominence_b: The same for face b.
    """

    rms_difference: float
    mean_abs_difference: float
    max_abs_difference: float
    correlation: float
    overlap: float
    nose_prominence_a: float
    nose_prominence_b: float


def similarity_transform(src_xy: np.ndarray, dst_xy: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama) mapping ``src_xy`` onto ``dst_xy``.

    Args:
        src_xy: ``(n, 2)`` source points, n >= 2.
        dst_xy: ``(n, 2)`` destination points.

    Returns:
        ``(2, 3) float64`` matrix ``M`` with ``dst ~= M[:, :2] @ src + M[:, 2]`` (no reflection).

    Raises:
        ComparisonError: The source points coincide.
    """
    src = np.asarray(src_xy, dtype=np.float64)
    dst = np.asarray(dst_xy, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"expected two (n, 2) point sets, got {src.shape} and {dst.shape}")
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    var_src = float((src_c**2).sum(axis=1).mean())
    if var_src < 1e-9:
        raise ComparisonError("The face landmarks coincide; the face is too small or not detected properly.")
    cov = dst_c.T @ src_c / src.shape[0]
    u, sing, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sing * d).sum() / var_src)
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_dst - scale * rot @ mu_src
    return matrix


def apply_transform(matrix: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to ``(n, 2)`` points."""
    pts = np.asarray(points_xy, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def template_px(size: int = DEFAULT_SIZE) -> np.ndarray:
    """Template landmarks in grid pixels (pixel centres on integers, as everywhere in face3d)."""
    return TEMPLATE_XY * size - 0.5


def face_region_mask(size: int = DEFAULT_SIZE) -> np.ndarray:
    """Return the ``(size, size) bool`` central face ellipse of the canonical grid."""
    cx, cy = FACE_REGION[0] * size - 0.5, FACE_REGION[1] * size - 0.5
    rx, ry = FACE_REGION[2] * size, FACE_REGION[3] * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


def _check_inputs(depth_rel: np.ndarray, landmarks_xy: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    depth = np.asarray(depth_rel, dtype=np.float32)
    if depth.ndim != 2 or min(depth.shape) < 2:
        raise ValueError(f"expected an (H, W) depth map, got shape {depth.shape}")
    if landmarks_xy is None:
        raise ComparisonError(
            "No face landmarks are available for this photo (no face was found), so it cannot be "
            "aligned with the others. Choose photos in which a face was detected."
        )
    marks = np.asarray(landmarks_xy, dtype=np.float64)
    if marks.shape != (5, 2) or not np.all(np.isfinite(marks)):
        raise ValueError(f"expected (5, 2) finite landmarks, got shape {marks.shape}")
    return depth, marks


def align_face(
    depth_rel: np.ndarray,
    landmarks_xy: np.ndarray | None,
    *,
    mask: np.ndarray | None = None,
    size: int = DEFAULT_SIZE,
) -> AlignedFace:
    """Warp a face's depth map into the canonical frame and normalise it.

    Args:
        depth_rel: ``(H, W) float`` relative inverse depth (larger = nearer) of the photo or crop.
        landmarks_xy: ``(5, 2)`` landmarks in the same pixel coordinates as ``depth_rel``.
        mask: Optional ``(H, W) bool`` of usable pixels (e.g. the face mask).
        size: Side of the canonical grid in pixels.

    Returns:
        The aligned, normalised face.

    Raises:
        ComparisonError: No landmarks, degenerate landmarks, or no usable depth in the face region.
    """
    depth, marks = _check_inputs(depth_rel, landmarks_xy)
    valid_src = np.isfinite(depth)
    if mask is not None:
        mask_arr = np.asarray(mask, dtype=bool)
        if mask_arr.shape != depth.shape:
            raise ValueError(f"mask shape {mask_arr.shape} differs from depth shape {depth.shape}")
        valid_src &= mask_arr
    template = template_px(size)
    matrix = similarity_transform(marks, template)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.75:  # shrink first with area averaging, so the warp does not alias
        factor = scale * 1.25
        new_w = max(2, round(depth.shape[1] * factor))
        new_h = max(2, round(depth.shape[0] * factor))
        fx, fy = new_w / depth.shape[1], new_h / depth.shape[0]
        filled = np.where(valid_src, depth, 0.0).astype(np.float32)
        weight = cv2.resize(valid_src.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_AREA)
        summed = cv2.resize(filled, (new_w, new_h), interpolation=cv2.INTER_AREA)
        with np.errstate(invalid="ignore", divide="ignore"):
            depth = np.where(weight > 0.5, summed / np.maximum(weight, 1e-6), np.nan).astype(np.float32)
        valid_src = weight > 0.5
        marks = (marks + 0.5) * np.array([fx, fy]) - 0.5  # pixel centres on integers
        matrix = similarity_transform(marks, template)
    src = np.where(valid_src, depth, np.nan).astype(np.float32)
    warped = cv2.warpAffine(
        src,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float("nan"),
    )
    normalised, valid = _normalised(warped, size)
    mapped = apply_transform(matrix, marks)
    iod = (TEMPLATE_XY[1, 0] - TEMPLATE_XY[0, 0]) * size
    fit_error = float(np.sqrt(((mapped - template) ** 2).sum(axis=1).mean()) / iod)
    return AlignedFace(
        depth=normalised,
        valid=valid,
        landmarks_xy=mapped.astype(np.float32),
        transform=matrix,
        fit_error=fit_error,
    )


def _normalised(heights: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Heights (any unit, larger = nearer) -> ``(depth in [0, 1] over the face region, valid)``.

    Raises:
        ComparisonError: Too little of the face region has data, or it is flat.
    """
    valid = np.isfinite(heights)
    region = face_region_mask(size) & valid
    if region.sum() < 0.2 * face_region_mask(size).sum():
        raise ComparisonError(
            "Too little of the face has depth data to compare it; use a crop that shows the whole face."
        )
    low, high = np.percentile(heights[region], [2.0, 98.0])
    span = float(high - low)
    if not np.isfinite(span) or span <= 1e-12:
        raise ComparisonError("The face's depth map is flat; it cannot be compared.")
    normalised = ((heights - low) / span).astype(np.float32)
    normalised[~valid] = np.nan
    return normalised, valid


def align_face_3d(model, *, size: int = DEFAULT_SIZE, geometry=None) -> AlignedFace:
    """A face's surface seen from the front of the face, on the canonical grid (pose-normalised).

    The grid's pixels are positions in the face's own frame (x towards the person's left, y up,
    in eye distances from the eyes' midpoint, placed so the eyes fall on :data:`TEMPLATE_XY`);
    each holds the height of the surface along the face's forward axis
    (:class:`~face3d_core.face_frame.FrameSurface`), NaN where the camera did not see it.

    Args:
        model: The :class:`~face3d_core.reconstruct.FaceModel3D` (with face landmarks).
        size: Side of the grid in pixels.
        geometry: Its :class:`~face3d_core.measure.FaceGeometry` if already known.

    Raises:
        ComparisonError: The face cannot be put in its frame (the message says why), or too little
            of it is seen.
    """
    from face3d_core.measure import GeometryRefused, face_geometry

    try:
        geometry = geometry or face_geometry(model)
    except (GeometryRefused, ValueError) as exc:
        raise ComparisonError(f"This face cannot be aligned in 3D: {exc}.") from exc
    if not geometry.within_limits:
        raise ComparisonError(f"This face cannot be aligned in 3D: {geometry.pose_refusal()}.")
    frame = geometry.frame
    template = template_px(size)
    eye_mid = template[:2].mean(axis=0)
    iod_px = float(template[1, 0] - template[0, 0])
    mm_per_px = frame.ipd_mm / iod_px
    cols = (np.arange(size) - eye_mid[0]) * mm_per_px
    rows = -(np.arange(size) - eye_mid[1]) * mm_per_px
    xy = np.stack(np.broadcast_arrays(cols[None, :], rows[:, None]), axis=-1)  # (size, size, 2): rows are profiles
    heights = FrameSurface(geometry.surface, frame).profile_heights(xy, float(frame.to_frame(geometry.seeds_xyz[2])[2]))
    depth, valid = _normalised(heights, size)
    marks_f = frame.to_frame(geometry.seeds_xyz)[:, :2]
    marks_grid = np.stack([eye_mid[0] + marks_f[:, 0] / mm_per_px, eye_mid[1] - marks_f[:, 1] / mm_per_px], axis=1)
    marks_grid = np.where(np.isfinite(marks_grid), marks_grid, template)
    fit_error = float(np.sqrt(((marks_grid - template) ** 2).sum(axis=1).mean()) / iod_px)
    transform = similarity_transform(np.asarray(geometry.landmarks_uv, np.float64), marks_grid)
    return AlignedFace(depth, valid, marks_grid.astype(np.float32), transform, fit_error, frame.pose)


def _band_mean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as intended
        return np.nanmean(values, axis=axis)


def nose_profile(face: AlignedFace, half_width: int = 1) -> Profile:
    """Vertical depth profile through the nose tip (forehead at negative positions, chin positive).

    Values outside the central face region (:data:`FACE_REGION`) are NaN.

    Args:
        face: An aligned face.
        half_width: Columns on each side averaged with the centre column.
    """
    size = face.size
    col = int(np.clip(round(float(face.landmarks_xy[2, 0])), half_width, size - 1 - half_width))
    band = face.depth[:, col - half_width : col + half_width + 1]
    values = _band_mean(band, axis=1).astype(np.float32)
    values[~face_region_mask(size)[:, col]] = np.nan  # only the face, not hair or background
    rows = np.arange(size, dtype=np.float64)
    positions = ((rows - float(face.landmarks_xy[2, 1])) / face.iod_px).astype(np.float32)
    return Profile(positions=positions, values=values)


def eye_profile(face: AlignedFace, half_width: int = 1) -> Profile:
    """Horizontal depth profile through both eyes (image left at negative positions).

    Values outside the central face region (:data:`FACE_REGION`) are NaN.

    Args:
        face: An aligned face.
        half_width: Rows above and below averaged with the centre row.
    """
    size = face.size
    row = int(np.clip(round(float(face.landmarks_xy[:2, 1].mean())), half_width, size - 1 - half_width))
    band = face.depth[row - half_width : row + half_width + 1, :]
    values = _band_mean(band, axis=0).astype(np.float32)
    values[~face_region_mask(size)[row, :]] = np.nan  # only the face, not hair or background
    cols = np.arange(size, dtype=np.float64)
    centre = float(face.landmarks_xy[:2, 0].mean())
    positions = ((cols - centre) / face.iod_px).astype(np.float32)
    return Profile(positions=positions, values=values)


def _sample(face: AlignedFace, xy: np.ndarray, radius: int = 1) -> float:
    x, y = (int(round(float(v))) for v in xy)
    size = face.size
    x0, x1 = max(0, x - radius), min(size, x + radius + 1)
    y0, y1 = max(0, y - radius), min(size, y + radius + 1)
    patch = face.depth[y0:y1, x0:x1]
    patch = patch[np.isfinite(patch)]
    return float(patch.mean()) if patch.size else float("nan")


def nose_prominence(face: AlignedFace) -> float:
    """Nose tip depth minus the mean depth at the two eyes (normalised units; larger = longer nose)."""
    nose = _sample(face, face.landmarks_xy[2])
    eyes = _band_mean(np.array([_sample(face, face.landmarks_xy[0]), _sample(face, face.landmarks_xy[1])]), 0)
    return float(nose - eyes)


def _check_pair(a: AlignedFace, b: AlignedFace) -> None:
    if a.depth.shape != b.depth.shape:
        raise ValueError(f"aligned faces differ in size: {a.depth.shape} vs {b.depth.shape}")


def difference_map(a: AlignedFace, b: AlignedFace) -> np.ndarray:
    """Return ``a - b`` over the common face region, ``(S, S) float32``, NaN elsewhere.

    Positive values: face ``a`` is nearer (more prominent) there.
    """
    _check_pair(a, b)
    common = a.valid & b.valid & face_region_mask(a.size)
    diff = np.full(a.depth.shape, np.nan, dtype=np.float32)
    diff[common] = a.depth[common] - b.depth[common]
    return diff


def compare_pair(a: AlignedFace, b: AlignedFace) -> PairMetrics:
    """Compute the numbers comparing two aligned faces.

    Raises:
        ComparisonError: The two faces share too little area.
    """
    _check_pair(a, b)
    region = face_region_mask(a.size)
    common = a.valid & b.valid & region
    overlap = float(common.sum() / region.sum())
    if common.sum() < 16:
        raise ComparisonError("The two faces share too little area with depth data to be compared.")
    da = a.depth[common].astype(np.float64)
    db = b.depth[common].astype(np.float64)
    diff = da - db
    std_a, std_b = float(da.std()), float(db.std())
    correlation = float(np.corrcoef(da, db)[0, 1]) if std_a > 1e-12 and std_b > 1e-12 else float("nan")
    return PairMetrics(
        rms_difference=float(np.sqrt(np.mean(diff**2))),
        mean_abs_difference=float(np.mean(np.abs(diff))),
        max_abs_difference=float(np.percentile(np.abs(diff), 99.0)),
        correlation=correlation,
        overlap=overlap,
        nose_prominence_a=nose_prominence(a),
        nose_prominence_b=nose_prominence(b),
    )


@dataclass(frozen=True)
class PairComparison:
    """Two items of a comparison compared: the difference map and its numbers.

    Attributes:
        first: Index of the first item in the comparison.
        second: Index of the second item.
        names: Their display names, ``(first, second)``.
        diff: ``(S, S) float32`` first minus second (:func:`difference_map`), NaN outside the common face region.
        metrics: The numbers (:func:`compare_pair`).
    """

    first: int
    second: int
    names: tuple[str, str]
    diff: np.ndarray
    metrics: PairMetrics


@dataclass(frozen=True, eq=False)
class ComparisonResult:
    """A comparison of 2 to 6 aligned items (what :func:`compare_faces` returns).

    An *item* is a face under a depth model in a precision (a :class:`~face3d_core.pipeline.DepthRef`):
    several faces under one model, one face under several models, or a mix.

    Attributes:
        refs: The compared depth maps, in the caller's order.
        names: Display names (e.g. ``"a.jpg · MiDaS small"``).
        aligned: Aligned, normalised faces.
        nose: Vertical profiles through the nose.
        eyes: Horizontal profiles through the eyes.
    """

    refs: tuple[DepthRef, ...]
    names: tuple[str, ...]
    aligned: tuple[AlignedFace, ...]
    nose: tuple[Profile, ...]
    eyes: tuple[Profile, ...]

    @property
    def shas(self) -> tuple[str, ...]:
        """Photos (content hashes), in order."""
        return tuple(ref.sha for ref in self.refs)

    @property
    def models(self) -> tuple[str, ...]:
        """Depth model of each item, in order."""
        return tuple(ref.model for ref in self.refs)

    @property
    def precisions(self) -> tuple[str, ...]:
        """Precision of each item's depth map, in order."""
        return tuple(ref.precision for ref in self.refs)

    def pair(self, first: int = 0, second: int = 1) -> PairComparison:
        """Compare two of the items: ``first`` minus ``second`` (a few milliseconds).

        Raises:
            ValueError: An index outside the items, or the same item twice.
        """
        count = len(self.aligned)
        if not (0 <= first < count and 0 <= second < count) or first == second:
            raise ValueError(f"expected two different items of {count}, got {first} and {second}")
        a, b = self.aligned[first], self.aligned[second]
        return PairComparison(
            first, second, (self.names[first], self.names[second]), difference_map(a, b), compare_pair(a, b)
        )


def check_comparable(refs: Sequence[DepthRef]) -> None:
    """Check that ``refs`` can form one comparison: 2 to 6 different items (faces, models and precisions may mix).

    Raises:
        ComparisonError: Too few or too many items, or one item chosen twice.
    """
    if not MIN_FACES <= len(refs) <= MAX_FACES:
        raise ComparisonError(f"Choose between {MIN_FACES} and {MAX_FACES} items to compare.")
    if len(set(refs)) != len(refs):
        raise ComparisonError(
            "The same face under the same model and precision is chosen twice; choose each item only once."
        )


@dataclass(frozen=True)
class ComparisonItems:
    """The items of one comparison, checked once when built (:func:`check_comparable`).

    Built where the items enter (the Compare button's callback, a comparison job's parameters);
    everything after it (the cache key, :func:`compare_faces`) takes it as checked.

    Attributes:
        refs: 2 to 6 different items, in order (faces, models and precisions may mix).

    Raises:
        ComparisonError: Too few or too many items, or one item chosen twice.

    Example:
        >>> a, b = DepthRef("0" * 64, "midas_v21_small_256", 0), DepthRef("1" * 64, "midas_v21_small_256", 0)
        >>> len(ComparisonItems((a, b)))
        2
    """

    refs: tuple[DepthRef, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "refs", tuple(self.refs))
        check_comparable(self.refs)

    def __len__(self) -> int:
        return len(self.refs)

    def __iter__(self):
        return iter(self.refs)


def item_name(face_name: str, ref: DepthRef) -> str:
    """An item's display name: the face and the model, and the precision when not exact.

    Example:
        >>> item_name("a.jpg", DepthRef("0" * 64, "dpt_hybrid_384", 0, "bf16"))
        'a.jpg · DPT-Hybrid · bf16'
    """
    name = f"{face_name} · {get_spec(ref.model).label}"
    return name if ref.precision == "fp32" else f"{name} · {ref.precision}"


def _default_model(ref: DepthRef, face_depth: FaceDepth):
    """A light reconstruction for comparing (the default field of view)."""
    from face3d_core.reconstruct import ReconstructionParams, reconstruct_face

    return reconstruct_face(face_depth, ReconstructionParams(representation="points", max_points=COMPARE_MODEL_POINTS))


def _aligned(ref: DepthRef, face_depth: FaceDepth, model_of: ModelProvider, size: int) -> AlignedFace:
    """One face in 3D (:func:`align_face_3d`), or by its landmarks in 2D when it cannot be, saying why."""
    try:
        return align_face_3d(model_of(ref, face_depth), size=size)
    except ComparisonError as exc:
        reason = str(exc).removeprefix("This face cannot be aligned in 3D: ").rstrip(".")
        logger.info("Face %s aligned in 2D: %s", ref.sha[:12], reason)
        mask = face_mask(face_depth.depth_rel, face_depth.face)
        flat = align_face(face_depth.depth_rel, face_depth.face.landmarks_xy, mask=mask, size=size)
        return dataclasses.replace(flat, note=f"aligned by its eyes, nose and mouth in the picture only ({reason})")


def compare_faces(
    refs: ComparisonItems | Sequence[DepthRef],
    names: Sequence[str],
    depth_of: DepthProvider,
    progress: TaskProgress | None = None,
    *,
    size: int = DEFAULT_SIZE,
    model_of: ModelProvider | None = None,
) -> ComparisonResult:
    """Align 2 to 6 items in their own 3D frames (pose-normalised) and compare their depth.

    Args:
        refs: The items (a face under a model and a precision), each with a face index; faces,
            models and precisions may mix. :class:`ComparisonItems` are taken as checked; a
            plain sequence is checked here.
        names: Display name of each face (also used in messages).
        depth_of: Returns the :class:`~face3d_core.pipeline.FaceDepth` of one face; it gets a
            progress function for its own share of the work.
        progress: Progress of the whole comparison.
        size: Side of the canonical grid.
        model_of: Returns the 3D face of a depth map (default: a light reconstruction with the
            default field of view); a face that cannot be put in its frame is aligned in 2D.

    Returns:
        The :class:`ComparisonResult` (:meth:`ComparisonResult.pair` compares any two items).

    Raises:
        ComparisonError: Fewer than 2 or more than 6 items, an item chosen twice, or a photo
            without a face.
    """
    refs = list(refs if isinstance(refs, ComparisonItems) else ComparisonItems(tuple(refs)))
    if len(names) != len(refs):
        raise ValueError(f"expected {len(refs)} names, got {len(names)}")
    for ref, name in zip(refs, names, strict=True):
        if ref.face_index is None:
            raise ComparisonError(
                f"No face was found in {name}, so it cannot be aligned with the others. Remove it from the comparison."
            )
    report = progress or no_progress
    count = len(refs)
    aligned = []
    for number, ref in enumerate(refs):

        def sub(fraction: float, message: str, number: int = number) -> None:
            report(0.05 + 0.85 * (number + fraction) / count, f"Face {number + 1} of {count}: {message}")

        face_depth = depth_of(ref, sub)  # a face was asked for, so face_depth.face is set
        aligned.append(_aligned(ref, face_depth, model_of or _default_model, size))
    report(0.93, "Comparing profiles...")
    return ComparisonResult(
        refs=tuple(refs),
        names=tuple(names),
        aligned=tuple(aligned),
        nose=tuple(nose_profile(a) for a in aligned),
        eyes=tuple(eye_profile(a) for a in aligned),
    )
