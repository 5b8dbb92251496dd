"""The expensive step, composed: photo -> (face crop) -> depth network -> :class:`FaceDepth`.

:func:`compute_face_depth` detects the faces, crops around the chosen one and runs the
depth network on the crop, so the network's fixed input resolution is spent on the face.
Its result is what gets cached (by image hash, model, face index, margin); every slider
change afterwards only reruns the cheap step, :func:`face3d_core.reconstruct.reconstruct_face`.

``face_index=None`` is the full-frame mode: exactly the official whole-image pipeline,
no detection, no crop.

**Working copy.** The cost of a photo must not grow with its pixel count: the network and
everything after it work on a *working copy* of the crop (or of the whole photo) whose longer
side is at most :data:`WORK_MAX_SIDE` (2048) pixels, shrunk with area interpolation. Depth
networks predict at 224-518 pixels, so nothing is lost; a 40-megapixel photo gives a depth
map of at most 2048 x 2048 float32 (16 MB) instead of 160 MB. The original photo is kept
(uploads store its bytes); :attr:`FaceDepth.crop_box_xyxy` and :attr:`FaceDepth.image_size_wh`
stay in its pixels, so the camera and the measurements refer to the real photo.

:class:`DepthRef` names one such result (photo hash, model, face, precision) wherever it
travels: from the browser into the dashboard's services, job parameters and cache keys.

Example:
    >>> from face3d_core.images import load_image
    >>> fd = compute_face_depth(load_image("face.jpg"))         # doctest: +SKIP
    >>> fd.depth_rel.shape == fd.image_rgb.shape[:2]             # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from face3d_core.cache.keys import is_sha256_hex
from face3d_core.errors import Face3DError, UnknownModelError, shown_value
from face3d_core.faces import DEFAULT_MARGIN, Face, crop_face, detect_faces, select_face
from face3d_core.models.registry import DEFAULT_MODEL, get_spec
from face3d_core.weights import ProgressFn as DownloadProgressFn

logger = logging.getLogger(__name__)

#: Longest side, in pixels, of the working copy the depth network and the 3D model work on.
WORK_MAX_SIDE = 2048

#: Precisions a depth map can be computed in: ``fp32`` (exact, the default), ``bf16`` (the fast CPU
#: mode, only where the CPU has native bfloat16) and ``fp16`` (CUDA).
PRECISIONS = ("fp32", "bf16", "fp16")

#: Progress of a long task: ``progress(fraction done in [0, 1], message for the user)``.
TaskProgress = Callable[[float, str], None]


def no_progress(_fraction: float, _message: str) -> None:
    """A :data:`TaskProgress` that reports nothing."""


@dataclass(frozen=True)
class DepthRef:
    """Which depth map: a photo (by content hash), a registered model, a face (or the whole photo), a precision.

    Validated once, when built; everything downstream (services, jobs, cache keys) can rely
    on it.

    Attributes:
        sha: Lowercase hex SHA-256 of the photo's bytes.
        model: Registered depth model name.
        face_index: Index of the face in the photo's detected faces (0 = largest), or None for the
            whole photo (full-frame mode).
        precision: One of :data:`PRECISIONS`; ``fp32`` unless the user chose the fast mode.

    Raises:
        ValueError: ``sha`` is not a lowercase 64-character hex string, ``face_index`` is neither
            None nor a non-negative int, or ``precision`` is not one of :data:`PRECISIONS`.
        UnknownModelError: ``model`` is not a registered model name.

    Example:
        >>> ref = DepthRef("0" * 64, "midas_v21_small_256", 0)
        >>> DepthRef.from_dict(ref.to_dict()) == ref
        True
        >>> DepthRef.from_dict({"sha": "junk", "model": "midas_v21_small_256"}) is None
        True
    """

    sha: str
    model: str
    face_index: int | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not is_sha256_hex(self.sha):
            raise ValueError(f"Invalid photo key {shown_value(self.sha)}: expected 64 lowercase hex digits")
        try:
            get_spec(self.model)
        except TypeError:  # unhashable junk
            raise UnknownModelError(f"Unknown depth model {shown_value(self.model)}.") from None
        face = self.face_index
        if face is not None and (isinstance(face, bool) or not isinstance(face, int) or face < 0):
            raise ValueError(f"Invalid face index {shown_value(face)}: expected None or an int >= 0")
        if not isinstance(self.precision, str) or self.precision not in PRECISIONS:
            raise ValueError(
                f"Invalid precision {shown_value(self.precision)}: expected one of {', '.join(PRECISIONS)}"
            )

    @property
    def model_variant(self) -> str:
        """The model name as cache keys use it: the registry name, plus ``.bf16``/``.fp16`` off fp32.

        Example:
            >>> DepthRef("0" * 64, "midas_v21_small_256", 0, "bf16").model_variant
            'midas_v21_small_256.bf16'
        """
        return self.model if self.precision == "fp32" else f"{self.model}.{self.precision}"

    @classmethod
    def from_dict(cls, data: Any) -> DepthRef | None:
        """Parse ``{"sha", "model", "face", "precision"}`` as the browser or a job sends it; None for anything invalid.

        A missing precision is ``fp32`` (what every depth map was before the fast mode).
        """
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(data.get("sha"), data.get("model"), data.get("face"), data.get("precision", "fp32"))
        except (ValueError, Face3DError):
            return None

    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{"sha", "model", "face", "precision"}`` (job parameters, result stores in the browser)."""
        return {"sha": self.sha, "model": self.model, "face": self.face_index, "precision": self.precision}


class DepthPredictor(Protocol):
    """Anything with the estimator's ``predict`` (:class:`face3d_core.models.estimator.DepthEstimator`)."""

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        """Return ``(H, W) float32`` relative inverse depth for an ``(H, W, 3) uint8`` image."""
        ...


class LoadableDepthPredictor(DepthPredictor, Protocol):
    """A predictor that loads its network on demand (:class:`face3d_core.models.estimator.DepthEstimator`)."""

    @property
    def loaded(self) -> bool:  # pragma: no cover - protocol
        """True once the network is in memory."""
        ...

    def load(self, progress: DownloadProgressFn | None = None) -> object:  # pragma: no cover - protocol
        """Load the network (downloading its weights if needed), reporting ``(bytes_done, bytes_total)``."""
        ...


@dataclass(frozen=True, eq=False)
class FaceDepth:
    """The network's depth for one face (or the whole photo) and what is needed to use it.

    Attributes:
        depth_rel: ``(h, w) float32`` relative inverse depth over the crop (larger = nearer), the
            network's output at the working copy's size: the raw values the ``.npy`` download gives.
        image_rgb: ``(h, w, 3) uint8`` the crop's pixels (the whole photo in full-frame mode), as
            the working copy: at most :data:`WORK_MAX_SIDE` pixels on the longer side.
        crop_box_xyxy: ``(x0, y0, x1, y1)`` of the crop in the original photo's pixels (may be
            larger than ``(w, h)``: see :attr:`working_copy`).
        face: The chosen face in the depth map's pixels, or None in full-frame mode.
        model_name: The depth network used.
        image_size_wh: ``(W, H)`` of the original photo (the camera's field of view refers to it).
        faces: All faces found in the photo (original pixels, largest first); empty in full-frame mode.
        face_index: Index of the chosen face in ``faces``, or None in full-frame mode.
        margin: Crop margin used (None in full-frame mode).
        runtime: What ran the network, e.g. ``OpenVINO 2026.4.1, bf16, 0.09 max / 0.018 mean of std
            from PyTorch fp32`` (:meth:`RuntimeReport.describe`); None where the estimator does not say.
    """

    depth_rel: np.ndarray
    image_rgb: np.ndarray
    crop_box_xyxy: tuple[int, int, int, int]
    face: Face | None
    model_name: str
    image_size_wh: tuple[int, int]
    faces: tuple[Face, ...] = ()
    face_index: int | None = None
    margin: float | None = None
    runtime: str | None = None

    @property
    def full_frame(self) -> bool:
        """True when the depth covers the whole photo without a chosen face."""
        return self.face is None

    @property
    def box_size_wh(self) -> tuple[int, int]:
        """``(W, H)`` of the crop (or the whole photo) in the original photo's pixels."""
        x0, y0, x1, y1 = self.crop_box_xyxy
        return (int(x1 - x0), int(y1 - y0))

    @property
    def working_copy(self) -> bool:
        """True when the depth map is a shrunk working copy of its crop (see the module docstring)."""
        height, width = self.depth_rel.shape
        return (width, height) != self.box_size_wh


def working_copy(image_rgb: np.ndarray, max_side: int | None = WORK_MAX_SIDE) -> tuple[np.ndarray, tuple[float, float]]:
    """Shrink an image so that its longer side is at most ``max_side`` pixels.

    Args:
        image_rgb: ``(H, W, 3) uint8`` image.
        max_side: The longest side allowed; None: no limit.

    Returns:
        ``(image, (sx, sy))``: the image itself when small enough (scale ``(1, 1)``), else a
        copy shrunk with area interpolation, and the scale from input to output pixels
        (``p_out = (p_in + 0.5) * s - 0.5`` with pixel centres on integers).

    Example:
        >>> small, scale = working_copy(np.zeros((6600, 6000, 3), np.uint8))
        >>> small.shape, round(scale[0], 4)
        ((2048, 1862, 3), 0.3103)
    """
    height, width = image_rgb.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image_rgb, (1.0, 1.0)
    factor = max_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)
    return small, (size[0] / width, size[1] / height)


def compute_face_depth(
    image_rgb: np.ndarray,
    *,
    model_name: str = DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
    face_index: int | None = 0,
    margin: float = DEFAULT_MARGIN,
    faces: Sequence[Face] | None = None,
    estimator: DepthPredictor | None = None,
    detector_path: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    max_side: int | None = WORK_MAX_SIDE,
) -> FaceDepth:
    """Run the depth network on a crop around one face (or on the whole photo).

    Args:
        image_rgb: ``(H, W, 3) uint8`` RGB photo.
        model_name: Registry name of the depth network.
        weights: Explicit checkpoint path for the network.
        face_index: Which face (0 = largest); ``None`` = the whole photo, no detection.
        margin: Crop margin, fraction of the face box size added on every side.
        faces: Faces already detected in this photo (skips detection).
        estimator: An object with ``predict(image_rgb) -> depth_rel``; default: the
            process-wide :func:`face3d_core.models.estimator.get_estimator` for ``model_name``.
        detector_path: YuNet model file (see :mod:`face3d_core.faces`).
        device: Device for the default estimator.
        precision: Precision for the default estimator.
        max_side: Longest side of the working copy of the crop (see the module docstring);
            None: the crop at its full size.

    Returns:
        The :class:`FaceDepth`.

    Raises:
        NoFaceFoundError: ``face_index`` is not None and there is no such face (the message
            states the fact; callers add what their user can do).
        WeightsUnavailableError: The network or detector file is missing.
    """
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    if estimator is None:
        from face3d_core.models.estimator import get_estimator

        estimator = get_estimator(model_name, weights=weights, device=device, precision=precision)
    if face_index is None:
        work, _ = working_copy(image, max_side)
        _log_working_copy(work, width, height)
        depth = _predict(estimator, work)
        return FaceDepth(
            depth,
            work,
            (0, 0, width, height),
            None,
            model_name,
            (width, height),
            runtime=runtime_description(estimator),
        )
    found = tuple(faces) if faces is not None else tuple(detect_faces(image, model_path=detector_path))
    face = select_face(list(found), face_index)
    crop = crop_face(image, face, margin)
    logger.info("Face %d of %d: crop %s of a %dx%d photo", face_index, len(found), crop.box_xyxy, width, height)
    work, (sx, sy) = working_copy(crop.image_rgb, max_side)
    crop_face_px = crop.face if work is crop.image_rgb else crop.face.resized((sx, sy))
    _log_working_copy(work, *crop.image_rgb.shape[1::-1])
    depth = _predict(estimator, work)
    return FaceDepth(
        depth,
        work,
        crop.box_xyxy,
        crop_face_px,
        model_name,
        (width, height),
        found,
        face_index,
        float(margin),
        runtime_description(estimator),
    )


def runtime_description(estimator: object) -> str | None:
    """What ran the estimator's latest prediction, in words (None where it does not report it).

    Example:
        >>> runtime_description(object()) is None
        True
    """
    report = getattr(estimator, "runtime_report", None)
    described = report() if callable(report) else None
    describe = getattr(described, "describe", None)
    return describe() if callable(describe) else None


def _log_working_copy(work: np.ndarray, width: int, height: int) -> None:
    if work.shape[:2] != (height, width):
        logger.info("Working copy %dx%d of %dx%d pixels", work.shape[1], work.shape[0], width, height)


def _predict(estimator: DepthPredictor, image_rgb: np.ndarray) -> np.ndarray:
    depth = np.asarray(estimator.predict(image_rgb), dtype=np.float32)
    if depth.shape != image_rgb.shape[:2]:
        raise ValueError(f"the estimator returned shape {depth.shape} for an image of {image_rgb.shape[:2]}")
    return depth
