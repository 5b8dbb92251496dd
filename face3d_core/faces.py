"""Faces: YuNet detection and the crop the depth network sees.

Separating the face from the background in a depth map is :mod:`face3d_core.masks`.

Detection uses OpenCV's YuNet (``cv2.FaceDetectorYN``). The model file is found in this order
(:func:`resolve_yunet_path`):

1. an explicit ``model_path`` argument, else the environment variable ``FACE3D_YUNET_PATH``
   (read through :mod:`face3d_core.config`): used as given, any YuNet version;
2. the copy shipped inside the package, ``face3d_core/data/face_detection_yunet_2026may.onnx``
   (package data, see :mod:`face3d_core.data`; put there by ``make vendor-detector``);
3. ``$FACE3D_WEIGHTS_DIR/face_detection_yunet_2026may.onnx``, then the face3d cache dir;
4. a download from the OpenCV zoo (:data:`YUNET_WEIGHTS`) into the cache.

Files found in 2-4 are checked against :data:`YUNET_WEIGHTS`' SHA-256 when loaded (hashed once
per file version); a mismatch is a :class:`~face3d_core.errors.WeightsIntegrityError`.

:func:`detect_faces` raises when the detector cannot run. :func:`find_faces` is the forgiving
form for callers that can go on with the whole photo (the dashboard's uploads): it never raises
for a missing, damaged or failing detector, returns why in a few words, logs the details once
and does not try to download again for :data:`DETECTOR_RETRY_S` seconds.

The pinned file is OpenCV zoo's ``face_detection_yunet_2026may.onnx`` (229,738 bytes,
SHA-256 ``ebafce4e…22f0f0``): the dynamic-input re-export of YuNet that the zoo ships as
its default for OpenCV 5. It is *not* the older ``face_detection_yunet_2023mar.onnx``
(232,589 bytes, SHA-256 ``8f2383e4…552fa4``, fixed 640x640 input); that file also works
with :func:`detect_faces` when given by path.

Coordinates are image pixels (x right, y down, pixel centres on integers). A
:class:`Face` carries YuNet's five landmarks in YuNet's order: the person's right eye
(image left in a frontal photo), left eye, nose tip, right and left mouth corners.

``cv2.FaceDetectorYN`` is not thread-safe: one detector is kept per thread and per
configuration, and ``setInputSize`` is called for every image.

Example:
    >>> faces = detect_faces(image_rgb)            # doctest: +SKIP
    >>> crop = crop_face(image_rgb, faces[0])       # doctest: +SKIP
    >>> crop.image_rgb.shape, crop.box_xyxy         # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from face3d_core import data as package_data
from face3d_core.config import get_settings
from face3d_core.errors import NoFaceFoundError, WeightsIntegrityError, WeightsUnavailableError
from face3d_core.weights import WeightsFile, resolve_weights, verify_file

logger = logging.getLogger(__name__)

#: The YuNet detector file: OpenCV zoo ``face_detection_yunet_2026may.onnx`` (MIT licence).
YUNET_WEIGHTS = WeightsFile(
    file_name=package_data.DETECTOR_FILE_NAME,
    url=package_data.DETECTOR_URL,
    sha256=package_data.DETECTOR_SHA256,
    size_mb=0.23,
)

#: After the detector could not be found or downloaded, :func:`find_faces` waits this long
#: before looking (and trying to download) again.
DETECTOR_RETRY_S = 300.0

#: Names of the five landmarks, in YuNet's order.
LANDMARK_NAMES: tuple[str, ...] = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")

#: Default crop margin: fraction of the face box size added on every side.
DEFAULT_MARGIN = 0.5

DEFAULT_SCORE_THRESHOLD = 0.7
DEFAULT_NMS_THRESHOLD = 0.3
#: Photos are shrunk so that their longer side is at most this before detection: YuNet
#: misses faces that fill a multi-megapixel frame, and it is 10-30x faster on the small image.
DEFAULT_DETECT_MAX_SIDE = 640

#: The fact only: each caller adds what its user can do (the CLI commands name their own options).
NO_FACE_MESSAGE = "No face was found in this photo."


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    Attributes:
        box_xywh: ``(x, y, width, height)`` of the face box in pixels (float).
        landmarks_xy: ``(5, 2) float32`` landmark positions in pixels, order :data:`LANDMARK_NAMES`.
        score: Detector confidence in ``[0, 1]``.
    """

    box_xywh: tuple[float, float, float, float]
    landmarks_xy: np.ndarray
    score: float

    def __post_init__(self) -> None:
        box = tuple(float(v) for v in self.box_xywh)
        if len(box) != 4:
            raise ValueError(f"box_xywh must have 4 values, got {len(box)}")
        marks = np.array(self.landmarks_xy, dtype=np.float32).reshape(5, 2)
        marks.setflags(write=False)
        object.__setattr__(self, "box_xywh", box)
        object.__setattr__(self, "landmarks_xy", marks)
        object.__setattr__(self, "score", float(self.score))

    @property
    def box_xyxy(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` of the face box in pixels."""
        x, y, w, h = self.box_xywh
        return (x, y, x + w, y + h)

    @property
    def area(self) -> float:
        """Area of the face box in square pixels."""
        return max(self.box_xywh[2], 0.0) * max(self.box_xywh[3], 0.0)

    @property
    def center_xy(self) -> np.ndarray:
        """``(2,) float32`` centre of the face box."""
        x, y, w, h = self.box_xywh
        return np.array([x + w / 2, y + h / 2], dtype=np.float32)

    @property
    def eyes_xy(self) -> np.ndarray:
        """``(2, 2) float32``: the right and left eye positions."""
        return self.landmarks_xy[:2]

    @property
    def interocular_px(self) -> float:
        """Distance between the two eye landmarks in pixels."""
        return float(np.linalg.norm(self.landmarks_xy[0] - self.landmarks_xy[1]))

    def landmark(self, name: str) -> np.ndarray:
        """Return one landmark ``(2,) float32`` by name (see :data:`LANDMARK_NAMES`)."""
        return self.landmarks_xy[LANDMARK_NAMES.index(name)]

    @classmethod
    def from_landmarks(cls, landmarks_xy: np.ndarray, score: float = 1.0) -> Face:
        """A face from five given landmarks (e.g. placed by hand), with a YuNet-like box.

        The box is centred between the eyes and the mouth, 2.2 eye distances wide, and
        reaches 1.2 eye-to-mouth distances above the eyes and 0.8 below the mouth (the
        proportions of YuNet's boxes); it only bounds the face mask from below.

        Args:
            landmarks_xy: ``(5, 2)`` pixel positions in the order of :data:`LANDMARK_NAMES`.
            score: Confidence to record.
        """
        marks = np.asarray(landmarks_xy, dtype=np.float64).reshape(5, 2)
        eye_mid = marks[:2].mean(axis=0)
        mouth_mid = marks[3:].mean(axis=0)
        ipd = float(np.linalg.norm(marks[1] - marks[0]))
        d_em = float(np.linalg.norm(mouth_mid - eye_mid))
        width = 2.2 * ipd
        cx = 0.5 * (eye_mid[0] + mouth_mid[0])
        top = eye_mid[1] - 1.2 * d_em
        return cls((cx - width / 2, top, width, 3.0 * d_em), marks.astype(np.float32), score)

    def transformed(
        self, scale_xy: tuple[float, float] = (1.0, 1.0), offset_xy: tuple[float, float] = (0.0, 0.0)
    ) -> Face:
        """Return this face in another pixel frame: ``p' = p * scale + offset``.

        A resized image's face is :meth:`resized`.
        """
        sx, sy = (float(v) for v in scale_xy)
        ox, oy = (float(v) for v in offset_xy)
        x, y, w, h = self.box_xywh
        marks = self.landmarks_xy * np.array([sx, sy], np.float32) + np.array([ox, oy], np.float32)
        return Face((x * sx + ox, y * sy + oy, w * sx, h * sy), marks, self.score)

    def resized(self, scale_xy: tuple[float, float]) -> Face:
        """Return this face in its image resampled by ``scale_xy`` (new size / old size, per axis).

        Pixel centres lie on integers, so ``p`` maps to ``(p + 0.5) * s - 0.5``.
        """
        sx, sy = (float(v) for v in scale_xy)
        return self.transformed((sx, sy), (0.5 * sx - 0.5, 0.5 * sy - 0.5))

    def translated(self, dx: float, dy: float) -> Face:
        """Return this face shifted by ``(dx, dy)`` pixels (e.g. into a crop's frame)."""
        return self.transformed((1.0, 1.0), (dx, dy))

    def to_dict(self) -> dict:
        """JSON-friendly form: ``{"box_xywh": [...], "landmarks_xy": [[x, y], ...], "score": s}``."""
        return {
            "box_xywh": [round(v, 3) for v in self.box_xywh],
            "landmarks_xy": np.round(self.landmarks_xy.astype(np.float64), 3).tolist(),
            "score": round(self.score, 4),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Face:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(data["box_xywh"]), np.asarray(data["landmarks_xy"], np.float32), data["score"])

    def __repr__(self) -> str:
        x, y, w, h = self.box_xywh
        return f"Face(box_xywh=({x:.1f}, {y:.1f}, {w:.1f}, {h:.1f}), score={self.score:.3f})"


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """A crop of a photo around one face.

    Attributes:
        image_rgb: ``(h, w, 3) uint8`` the cropped pixels (a contiguous copy).
        box_xyxy: ``(x0, y0, x1, y1)`` integer crop box in the original image's pixels
            (``x1``/``y1`` exclusive): ``image[y0:y1, x0:x1]`` is the crop.
        face: The face in crop coordinates.
        image_size_wh: ``(W, H)`` of the original image.
    """

    image_rgb: np.ndarray
    box_xyxy: tuple[int, int, int, int]
    face: Face
    image_size_wh: tuple[int, int]

    def to_image_xy(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` crop pixel coordinates to original image pixels."""
        return np.asarray(xy, dtype=np.float32) + np.array(self.box_xyxy[:2], np.float32)

    def to_crop_xy(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` original image pixel coordinates to crop pixels."""
        return np.asarray(xy, dtype=np.float32) - np.array(self.box_xyxy[:2], np.float32)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_LOCAL = threading.local()


def packaged_yunet_path() -> Path:
    """Where the detector shipped with the package is (or would be): ``face3d_core/data/...onnx``."""
    return package_data.packaged_detector_path()


def resolve_yunet_path(model_path: str | os.PathLike | None = None, *, allow_download: bool = True) -> Path:
    """Return the YuNet model file (explicit path or ``$FACE3D_YUNET_PATH``, package, weights dir, cache, download).

    An explicit path or ``$FACE3D_YUNET_PATH`` is used as given; a file found anywhere else must
    have :data:`YUNET_WEIGHTS`' SHA-256.

    Raises:
        WeightsUnavailableError: Not found and not downloadable.
        WeightsIntegrityError: The file found does not match :data:`YUNET_WEIGHTS`' SHA-256.
    """
    if model_path is None:
        model_path = get_settings().yunet_path
    if model_path is not None:
        return resolve_weights(YUNET_WEIGHTS, model_path, allow_download=False)
    packaged = packaged_yunet_path()
    if packaged.is_file():
        return verify_file(YUNET_WEIGHTS, packaged, where="shipped with face3d")
    path = resolve_weights(YUNET_WEIGHTS, allow_download=allow_download)
    return verify_file(YUNET_WEIGHTS, path)


def _detector(path: Path, score_threshold: float, nms_threshold: float) -> cv2.FaceDetectorYN:
    """Return this thread's detector for one configuration (created on first use)."""
    cache = getattr(_LOCAL, "detectors", None)
    if cache is None:
        cache = _LOCAL.detectors = {}
    key = (str(path), float(score_threshold), float(nms_threshold))
    det = cache.get(key)
    if det is None:
        logger.debug("Creating a YuNet detector from %s in thread %s", path, threading.current_thread().name)
        # OpenCV 5 logs a harmless "targets are not supported by the new graph engine" warning here
        old_level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(min(old_level, cv2.utils.logging.LOG_LEVEL_ERROR))
        try:
            det = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, 5000)
        except cv2.error as exc:
            raise WeightsUnavailableError(
                f"The face detector file {path} could not be loaded ({exc.err or exc}). "
                f"Download {YUNET_WEIGHTS.file_name} from {YUNET_WEIGHTS.url}.",
                web_message="The face detector file on the server could not be loaded.",
                file_name=YUNET_WEIGHTS.file_name,
                url=YUNET_WEIGHTS.url,
            ) from exc
        finally:
            cv2.utils.logging.setLogLevel(old_level)
        cache[key] = det
    return det


def _as_rgb(image_rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(image_rgb)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    return image[..., :3]


def detect_faces(
    image_rgb: np.ndarray,
    *,
    model_path: str | os.PathLike | None = None,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    nms_threshold: float = DEFAULT_NMS_THRESHOLD,
    max_side: int | None = DEFAULT_DETECT_MAX_SIDE,
    quiet: bool = False,
) -> list[Face]:
    """Detect every face in a photo with YuNet.

    Args:
        image_rgb: ``(H, W, 3) uint8`` RGB photo (``(H, W)`` grayscale is accepted too).
        model_path: YuNet ``.onnx`` file; default: see the module docstring.
        score_threshold: Minimum detector confidence.
        nms_threshold: IoU threshold of the non-maximum suppression.
        max_side: The photo is shrunk (area interpolation) so that its longer side is at most
            this many pixels before detection; results are mapped back. ``None``: never shrink.
        quiet: Say what was found at debug level, not info (the frames of a live view: many a second).

    Returns:
        All faces, largest box first, in the photo's pixel coordinates (an empty list if none).

    Raises:
        WeightsUnavailableError: The YuNet model file cannot be found or downloaded.
    """
    image = _as_rgb(image_rgb)
    height, width = image.shape[:2]
    path = resolve_yunet_path(model_path)
    scale = 1.0
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    else:
        size = (width, height)
        small = image
    bgr = np.ascontiguousarray(small[..., ::-1])
    det = _detector(path, score_threshold, nms_threshold)
    det.setInputSize(size)
    _, raw = det.detect(bgr)
    level = logging.DEBUG if quiet else logging.INFO
    if raw is None or len(raw) == 0:
        logger.log(level, "No face found in a %dx%d image", width, height)
        return []
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, 15)
    # back to the original pixel frame (pixel centres on integers)
    sx, sy = width / size[0], height / size[1]
    faces = []
    for row in raw:
        x, y, w, h = row[:4]
        marks = row[4:14].reshape(5, 2)
        marks = (marks + 0.5) * np.array([sx, sy]) - 0.5
        box = ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5, w * sx, h * sy)
        faces.append(Face(box, marks.astype(np.float32), float(row[14])))
    faces.sort(key=lambda f: f.area, reverse=True)
    logger.log(level, "Found %d face(s) in a %dx%d image", len(faces), width, height)
    return faces


@dataclass(frozen=True)
class FaceDetection:
    """What :func:`find_faces` found: the faces, or why face detection could not run.

    Attributes:
        faces: Faces found, largest first (empty when none was found or detection could not run).
        unavailable: ``None`` when the detector ran; otherwise why it could not, in a few words
            for people, e.g. ``"the face detector is not installed"`` (no paths, no raw errors).
    """

    faces: tuple[Face, ...] = ()
    unavailable: str | None = None

    @property
    def ran(self) -> bool:
        """True when the detector ran (then an empty ``faces`` means no face is in the photo)."""
        return self.unavailable is None


#: Short reasons :func:`find_faces` gives (for people: the details go to the log).
REASON_NOT_INSTALLED = "the face detector is not installed"
REASON_DAMAGED = "the face detector file is damaged"
REASON_UNLOADABLE = "the face detector could not be loaded"
REASON_FAILED = "the face detector failed on this photo"


class _DetectorHealth:
    """Remembers a detector that could not be found, so uploads do not retry a download each time.

    Each distinct problem is logged once as a warning with its details (later repeats at
    debug level); a detector that works again is logged once at info level.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._missing_until = 0.0
        self._missing_reason = REASON_NOT_INSTALLED
        self._logged: set[tuple[str, str]] = set()

    def skip_reason(self, now: float) -> str | None:
        """The reason to give without trying, while a recent failure is remembered; else None."""
        with self._lock:
            return self._missing_reason if now < self._missing_until else None

    def failed(self, reason: str, detail: str, *, remember_for: float, now: float) -> None:
        """Record (and log once) a detector that could not run."""
        with self._lock:
            if remember_for > 0:
                self._missing_until = now + remember_for
                self._missing_reason = reason
            first = (reason, detail) not in self._logged
            self._logged.add((reason, detail))
        if first:
            logger.warning("Face detection unavailable (%s); the whole photo is used. %s", reason, detail)
        else:
            logger.debug("Face detection unavailable (%s): %s", reason, detail)

    def worked(self) -> None:
        """Forget past failures (logged once when there were some)."""
        with self._lock:
            had = bool(self._logged) or self._missing_until > 0
            self._missing_until = 0.0
            self._logged.clear()
        if had:
            logger.info("Face detection works again")


_HEALTH = _DetectorHealth()
_clock = time.monotonic  # seconds; tests move it forward


def find_faces(
    image_rgb: np.ndarray,
    *,
    model_path: str | os.PathLike | None = None,
    max_side: int | None = DEFAULT_DETECT_MAX_SIDE,
    quiet: bool = False,
) -> FaceDetection:
    """Detect faces where possible; never fail because of the detector.

    Like :func:`detect_faces`, but a missing, damaged or failing detector (offline, no file,
    an OpenCV error) gives ``FaceDetection(faces=(), unavailable=<short reason>)`` instead of
    an exception, so the caller can go on with the whole photo. The details are logged once per
    problem. After the detector could not be found or downloaded, this returns at once (without
    looking or downloading again) for :data:`DETECTOR_RETRY_S` seconds.

    Args:
        image_rgb: ``(H, W, 3) uint8`` RGB photo.
        model_path: YuNet ``.onnx`` file; default: see the module docstring.
        max_side: See :func:`detect_faces`.
        quiet: See :func:`detect_faces`.

    Returns:
        The faces, largest first, or why detection could not run.

    Raises:
        ValueError: ``image_rgb`` is not a uint8 image (a caller's bug, not the detector's).
    """
    _as_rgb(image_rgb)  # a caller's bad array is a bug, not a detector problem
    now = _clock()
    # only the default lookup is remembered (an explicit file is the caller's to fix)
    remember = DETECTOR_RETRY_S if model_path is None else 0.0
    skip = _HEALTH.skip_reason(now) if model_path is None else None
    if skip is not None:
        return FaceDetection((), skip)
    try:
        faces = detect_faces(image_rgb, model_path=model_path, max_side=max_side, quiet=quiet)
    except WeightsIntegrityError as exc:
        _HEALTH.failed(REASON_DAMAGED, exc.user_message, remember_for=remember, now=now)
        return FaceDetection((), REASON_DAMAGED)
    except WeightsUnavailableError as exc:
        reason = REASON_UNLOADABLE if isinstance(exc.__cause__, cv2.error) else REASON_NOT_INSTALLED
        _HEALTH.failed(reason, exc.user_message, remember_for=remember, now=now)
        return FaceDetection((), reason)
    except cv2.error as exc:  # the detector ran and failed on this photo: try again with the next one
        _HEALTH.failed(REASON_FAILED, f"OpenCV: {exc}", remember_for=0.0, now=now)
        return FaceDetection((), REASON_FAILED)
    _HEALTH.worked()
    return FaceDetection(tuple(faces))


def reset_detector_health() -> None:
    """Forget remembered detector failures (the next :func:`find_faces` looks again at once)."""
    _HEALTH.worked()


def select_face(faces: list[Face], face_index: int) -> Face:
    """Return ``faces[face_index]`` or raise a user-facing error.

    Raises:
        NoFaceFoundError: The list is empty, or has no face with this index.
    """
    if not faces:
        raise NoFaceFoundError(NO_FACE_MESSAGE)
    if face_index < 0 or face_index >= len(faces):
        raise NoFaceFoundError(
            f"Face number {face_index} was asked for, but {len(faces)} face(s) were found "
            f"(numbers 0 to {len(faces) - 1}, largest first)."
        )
    return faces[face_index]


# --------------------------------------------------------------------------------------------
# Crop
# --------------------------------------------------------------------------------------------


def crop_box(
    face: Face, image_size_wh: tuple[int, int], margin: float = DEFAULT_MARGIN, *, square: bool = True
) -> tuple[int, int, int, int]:
    """Return the integer crop box ``(x0, y0, x1, y1)`` around a face, clipped to the image.

    Args:
        face: The face, in image pixels.
        image_size_wh: ``(W, H)`` of the image.
        margin: Fraction of the face box's size added on every side (0.5: the crop is twice
            the face box's size before clipping).
        square: Use a square of the box's longer side (the networks' inputs are near-square).
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    width, height = image_size_wh
    x, y, w, h = face.box_xywh
    cx, cy = x + w / 2, y + h / 2
    if square:
        w = h = max(w, h)
    half_w = w * (0.5 + margin)
    half_h = h * (0.5 + margin)
    x0 = int(np.floor(max(cx - half_w, 0)))
    y0 = int(np.floor(max(cy - half_h, 0)))
    x1 = int(np.ceil(min(cx + half_w, width)))
    y1 = int(np.ceil(min(cy + half_h, height)))
    if x1 - x0 < 2 or y1 - y0 < 2:  # a face box outside the image: fall back to the whole image
        return (0, 0, int(width), int(height))
    return (x0, y0, x1, y1)


def crop_face(image_rgb: np.ndarray, face: Face, margin: float = DEFAULT_MARGIN, *, square: bool = True) -> FaceCrop:
    """Crop a photo around a face so that the depth network's resolution goes to the face.

    Args:
        image_rgb: ``(H, W, 3) uint8`` RGB photo.
        face: The face in the photo's pixels.
        margin: Fraction of the face box size added on every side (see :func:`crop_box`).
        square: Crop a square around the face (clipped at the image borders).

    Returns:
        The :class:`FaceCrop` (pixels, box in image pixels, face in crop pixels).
    """
    image = _as_rgb(image_rgb)
    height, width = image.shape[:2]
    box = crop_box(face, (width, height), margin, square=square)
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    return FaceCrop(crop, box, face.translated(-x0, -y0), (width, height))
