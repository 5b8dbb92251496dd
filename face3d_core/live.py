"""Live depth: the depth map of one camera frame, fast enough for a moving picture on a CPU.

A live view sends small JPEG frames many times a second; each becomes a colour-mapped depth
picture through the steps below, every one of them bounded in cost:

1. :func:`decode_frame`: a JPEG of at most :data:`MAX_FRAME_BYTES` whose longer side is at most
   :data:`MAX_FRAME_SIDE` px, with at most :data:`MAX_FRAME_SCANS` scans (checked from its header
   and segments before any pixel is decoded), decoded by
   :func:`face3d_core.images.decode_image` (the one decoder, with its scan and size limits);
2. face detection with YuNet on the frame shrunk to :data:`DETECT_MAX_SIDE` px
   (:func:`face3d_core.faces.find_faces`, quiet: nothing is logged per frame);
3. :class:`FaceTracker`: the face box smoothed across frames (so the crop does not jitter) and
   held for a few frames when the detector misses the face once; the crop is a square around
   it with the Depth tab's margin (:data:`face3d_core.faces.DEFAULT_MARGIN`), moved inside the
   frame rather than cut by its border;
4. the crop (or the whole frame where no face is tracked) is resized to one live input size
   (:func:`live_input_size`: 192 x 192 for the default MiDaS small, whose still input is 256 x 256),
   so every frame has the same input shape: the compiled runtime serves it without compiling
   again, and the network's cost per frame is fixed whatever the camera;
5. the depth is normalised like the Depth tab's (:func:`face3d_core.depthmap.normalize_depth`,
   1 = nearest) and coloured with a lookup table of the same colour map
   (:func:`face3d_core.figures.depth_colormap_lut`).

Nothing here stores or logs a frame: the caller gets the picture and throws the frame away.

Example:
    >>> frame_rgb = decode_frame(jpeg_bytes)                              # doctest: +SKIP
    >>> live = live_depth(frame_rgb, estimator, FaceTracker(), lut)       # doctest: +SKIP
    >>> live.depth_rgb.shape, live.crop_xyxy                              # doctest: +SKIP
    ((192, 192, 3), (212, 40, 468, 296))
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from face3d_core.depthmap import normalize_depth
from face3d_core.errors import InvalidImageError
from face3d_core.faces import DEFAULT_MARGIN, Face, find_faces
from face3d_core.images import count_jpeg_scans, decode_image
from face3d_core.models.registry import ModelSpec
from face3d_core.models.transforms import prepare_array

logger = logging.getLogger(__name__)

#: Longest side of a live frame in pixels (the page scales its frames to fit).
MAX_FRAME_SIDE = 640
#: Largest live frame in bytes (a 640 x 480 camera JPEG at quality 0.8 is 30-80 kB).
MAX_FRAME_BYTES = 400 * 1024
#: Most scans a live frame's JPEG may have (a browser's canvas writes baseline JPEGs: one scan).
MAX_FRAME_SCANS = 16
#: Frames are shrunk to this longer side for face detection (YuNet finds faces of 20 px and more).
DETECT_MAX_SIDE = 320
#: Smallest crop side in frame pixels (a face further away is cropped with more around it).
MIN_CROP_SIDE = 32
#: JPEG quality of the depth picture sent back.
DEPTH_JPEG_QUALITY = 85
#: Longest side of the network input for live frames. The default MiDaS small runs live at
#: 192 x 192 (0.56x the pixels of its 256 x 256 still input) so that a 2-core CPU keeps up with the
#: camera; a captured photo goes through the whole pipeline at the network's own size. Networks
#: with a fixed input (``resize_mode="square"``) keep theirs.
LIVE_NET_MAX_SIDE = 192

_JPEG_MAGIC = b"\xff\xd8\xff"


class LiveEstimator(Protocol):
    """What the live view needs of a depth estimator (:class:`~face3d_core.models.estimator.DepthEstimator`)."""

    spec: ModelSpec

    def infer_array(self, batch: np.ndarray) -> np.ndarray:
        """``(B, 3, h, w) float32`` network input -> ``(B, h, w) float32`` relative inverse depth."""
        ...


def decode_frame(data: bytes, *, max_side: int = MAX_FRAME_SIDE, max_bytes: int = MAX_FRAME_BYTES) -> np.ndarray:
    """Decode one live camera frame (a JPEG), refusing anything bigger than a frame before decoding it.

    Args:
        data: The JPEG file's bytes.
        max_side: Longest side allowed, in pixels.
        max_bytes: Largest file allowed.

    Returns:
        ``(H, W, 3) uint8`` RGB.

    Raises:
        InvalidImageError: Empty, too large in bytes or pixels, too many scans, not a JPEG, or damaged.
    """
    if not data:
        raise InvalidImageError("The camera frame was empty.")
    if len(data) > max_bytes:
        raise InvalidImageError(f"A camera frame may be at most {max_bytes // 1024} kB.")
    if bytes(data[:3]) != _JPEG_MAGIC:
        raise InvalidImageError("A camera frame must be a JPEG image.")
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError("The camera frame is damaged.") from exc
    if max(width, height) > max_side:
        raise InvalidImageError(f"A camera frame may be at most {max_side} pixels on its longer side.")
    if count_jpeg_scans(bytes(data), stop_after=MAX_FRAME_SCANS) > MAX_FRAME_SCANS:
        raise InvalidImageError(f"A camera frame may have at most {MAX_FRAME_SCANS} JPEG scans.")
    return decode_image(bytes(data), name="live frame")


def square_box(
    center_xy: tuple[float, float], side: float, frame_size_wh: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A square ``(x0, y0, x1, y1)`` of about ``side`` px centred on ``center_xy``, moved to lie inside the frame.

    The side is at least :data:`MIN_CROP_SIDE` and at most the frame's shorter side; the square
    is shifted (not cut) where it would cross the frame's border, so the crop stays square.

    Example:
        >>> square_box((10.0, 100.0), 100.0, (640, 480))
        (0, 50, 100, 150)
    """
    width, height = frame_size_wh
    side_px = int(round(min(max(side, MIN_CROP_SIDE), width, height)))
    x0 = int(round(center_xy[0] - side_px / 2))
    y0 = int(round(center_xy[1] - side_px / 2))
    x0 = min(max(x0, 0), width - side_px)
    y0 = min(max(y0, 0), height - side_px)
    return (x0, y0, x0 + side_px, y0 + side_px)


@dataclass
class FaceTracker:
    """The face of a live view across frames: a smoothed square around it, held through short misses.

    Each frame's detection moves the tracked square part of the way towards the new face
    (exponential smoothing with ``smoothing``), so the crop follows the face without jitter; a
    jump (another face, or a cut) starts again at the new face. When no face is found the last
    square is kept for ``hold_frames`` frames, then the view falls back to the whole frame.

    Args:
        margin: Fraction of the face box added on every side (the Depth tab's crop margin).
        smoothing: Weight of the newest detection, in ``(0, 1]`` (1: no smoothing).
        hold_frames: Frames without a face before the whole frame is used.
    """

    margin: float = DEFAULT_MARGIN
    smoothing: float = 0.5
    hold_frames: int = 5
    #: ``(centre x, centre y, side)`` of the tracked square in frame pixels, or None.
    state: tuple[float, float, float] | None = field(default=None, init=False)
    misses: int = field(default=0, init=False)

    def _target(self, faces: Sequence[Face]) -> tuple[float, float, float]:
        """The square the newest detection asks for: around the tracked face, else the largest."""

        def square_of(face: Face) -> tuple[float, float, float]:
            x, y, w, h = face.box_xywh
            return (x + w / 2, y + h / 2, max(w, h) * (1 + 2 * self.margin))

        largest = max(faces, key=lambda f: f.area)
        if self.state is None:
            return square_of(largest)
        big_enough = [f for f in faces if f.area >= 0.5 * largest.area]
        cx, cy, _ = self.state
        nearest = min(big_enough, key=lambda f: math.hypot(square_of(f)[0] - cx, square_of(f)[1] - cy))
        return square_of(nearest)

    def update(self, faces: Sequence[Face], frame_size_wh: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """Take one frame's faces; return the square crop ``(x0, y0, x1, y1)`` to use, or None (whole frame)."""
        if faces:
            target = self._target(faces)
            self.misses = 0
            if self.state is None or self._jumped(target):
                self.state = target
            else:
                a = self.smoothing
                self.state = tuple(a * new + (1 - a) * old for new, old in zip(target, self.state, strict=True))  # type: ignore[assignment]
        else:
            self.misses += 1
            if self.misses > self.hold_frames:
                self.state = None
        if self.state is None:
            return None
        cx, cy, side = self.state
        return square_box((cx, cy), side, frame_size_wh)

    def _jumped(self, target: tuple[float, float, float]) -> bool:
        cx, cy, side = self.state  # type: ignore[misc]
        moved = math.hypot(target[0] - cx, target[1] - cy) > 0.5 * side
        rescaled = max(target[2], side) > 1.5 * min(target[2], side)
        return moved or rescaled


@dataclass(frozen=True)
class LiveDepth:
    """The depth picture of one live frame.

    Attributes:
        depth_rgb: ``(h, w, 3) uint8`` RGB: the normalised depth (1 = nearest) in the colour map,
            at the network's resolution, with the aspect ratio of what it shows (the crop, or the
            whole frame).
        crop_xyxy: The square crop in frame pixels, or None where the whole frame was used.
        frame_size_wh: ``(W, H)`` of the frame.
        timings_ms: Wall time of each step in milliseconds: ``detect`` (face detection, crop and
            network input), ``network``, ``colour`` (normalisation and colour map).
    """

    depth_rgb: np.ndarray
    crop_xyxy: tuple[int, int, int, int] | None
    frame_size_wh: tuple[int, int]
    timings_ms: dict[str, float]


def live_depth(
    frame_rgb: np.ndarray,
    estimator: LiveEstimator,
    tracker: FaceTracker,
    lut: np.ndarray,
    *,
    detector_path: str | os.PathLike | None = None,
) -> LiveDepth:
    """The colour-mapped depth of one camera frame: the tracked face's square crop, else the whole frame.

    Args:
        frame_rgb: ``(H, W, 3) uint8`` RGB frame (:func:`decode_frame`).
        estimator: The depth network (one process-wide instance; its own lock serialises runs).
        tracker: This stream's :class:`FaceTracker` (updated).
        lut: ``(256, 3) uint8`` colour of each depth level (:func:`face3d_core.figures.depth_colormap_lut`).
        detector_path: YuNet model file (default: the lookup order of :mod:`face3d_core.faces`);
            where detection cannot run the whole frame is used.

    Returns:
        The :class:`LiveDepth`.
    """
    height, width = frame_rgb.shape[:2]
    started = time.perf_counter()
    detection = find_faces(frame_rgb, model_path=detector_path, max_side=DETECT_MAX_SIDE, quiet=True)
    crop_xyxy = tracker.update(detection.faces, (width, height))
    if crop_xyxy is None:
        view = frame_rgb
    else:
        x0, y0, x1, y1 = crop_xyxy
        view = frame_rgb[y0:y1, x0:x1]
    net_h, net_w = live_input_size(estimator.spec)
    # one input shape for every frame: area-shrink to the network's size, then its own normalisation
    small = cv2.resize(view, (net_w, net_h), interpolation=cv2.INTER_AREA)
    batch = prepare_array(small, dataclasses.replace(estimator.spec, net_size=(net_h, net_w)))[None]
    detected = time.perf_counter()
    depth_rel = estimator.infer_array(batch)[0]
    inferred = time.perf_counter()
    levels = np.rint(normalize_depth(depth_rel) * 255.0).astype(np.uint8)
    depth_rgb = lut[levels]
    view_h, view_w = view.shape[:2]
    if view_h != view_w:  # the whole frame, squeezed into the square input: back to its aspect ratio
        scale = max(net_h, net_w) / max(view_h, view_w)
        size = (max(1, round(view_w * scale)), max(1, round(view_h * scale)))
        depth_rgb = cv2.resize(depth_rgb, size, interpolation=cv2.INTER_LINEAR)
    coloured = time.perf_counter()
    timings = {
        "detect": (detected - started) * 1000.0,
        "network": (inferred - detected) * 1000.0,
        "colour": (coloured - inferred) * 1000.0,
    }
    return LiveDepth(np.ascontiguousarray(depth_rgb), crop_xyxy, (width, height), timings)


def live_input_size(spec: ModelSpec) -> tuple[int, int]:
    """The network input ``(height, width)`` of live frames: at most :data:`LIVE_NET_MAX_SIDE` a side.

    The network's own size where it takes no other (``resize_mode="square"``) or is already smaller;
    else shrunk to the longest side :data:`LIVE_NET_MAX_SIDE`, each side a multiple of the network's
    ``multiple_of``.
    """
    net_h, net_w = spec.net_size
    longest = max(net_h, net_w)
    if spec.resize_mode == "square" or longest <= LIVE_NET_MAX_SIDE:
        return net_h, net_w
    step = spec.multiple_of
    scale = LIVE_NET_MAX_SIDE / longest
    return max(step, int(net_h * scale) // step * step), max(step, int(net_w * scale) // step * step)


def encode_depth_jpeg(depth_rgb: np.ndarray, quality: int = DEPTH_JPEG_QUALITY) -> bytes:
    """JPEG bytes of a live depth picture (``(h, w, 3) uint8`` RGB)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(depth_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - JPEG encoding of uint8 RGB does not fail
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
