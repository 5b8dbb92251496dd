"""What ``face3d mesh`` and ``face3d measure`` share: from a photo (+ options) to a 3D face.

A photo becomes a :class:`~face3d_core.reconstruct.FaceModel3D` in one of two ways:

* the depth network on a crop around face ``--face N`` (default), or
* a given depth map, ``--depth FILE.npy`` (relative inverse depth, or ``--depth-kind metric``).

The face is YuNet's, or, with ``--landmarks FILE.json``, five landmarks given in the photo's
pixels (after its EXIF rotation): ``{"landmarks_xy": [[x, y] x 5]}`` in the order right eye,
left eye, nose tip, right mouth corner, left mouth corner (the person's sides; what
:meth:`face3d_core.faces.Face.to_dict` writes is accepted as is, ``box_xywh`` optional).

The field of view is ``--fov`` when given, else the photo's EXIF focal length
(:func:`face3d_core.camera.photo_fov`), else 55 degrees.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from face3d_core.camera import CameraFov, photo_fov
from face3d_core.cli.arg_types import MAX_FACE_NUMBER, number
from face3d_core.errors import InvalidDepthError, NoFaceFoundError, shown_value
from face3d_core.images import MAX_PIXELS
from face3d_core.models.registry import DEFAULT_MODEL, list_models

UNITS_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


def face_arg(value: str) -> int | None:
    """``--face``: a face number, or ``none`` for the whole image."""
    if value.strip().lower() in {"none", "full", "all", "whole"}:
        return None
    try:
        index = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a face number (0 = largest) or 'none', got {shown_value(value)}"
        ) from None
    if index < 0:
        raise argparse.ArgumentTypeError("face numbers start at 0 (the largest face)")
    if index > MAX_FACE_NUMBER:
        raise argparse.ArgumentTypeError(f"face numbers go up to {MAX_FACE_NUMBER}, got {shown_value(value)}")
    return index


def positive(value: str) -> float:
    """A finite number > 0."""
    result = float(value)
    if not (result > 0 and np.isfinite(result)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {shown_value(value)}")
    return result


def non_negative(value: str) -> float:
    """A finite number >= 0."""
    result = float(value)
    if not (result >= 0 and np.isfinite(result)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {shown_value(value)}")
    return result


#: ``--fov``: degrees in [1, 179].
fov_arg = number(1.0, 179.0)
#: ``--smooth``: Gaussian sigma in depth-map pixels.
smooth_arg = number(0.0, 50.0)
#: ``--depth-scale``: relief multiplier.
depth_scale_arg = number(0.05, 20.0)
#: ``--margin``: crop margin, fraction of the face box on each side.
margin_arg = number(0.0, 5.0)


def add_source_arguments(p: argparse.ArgumentParser, *, several: bool = False) -> None:
    """Register the options that choose how a photo becomes a 3D face.

    Args:
        p: The subcommand's parser.
        several: The command takes several photos: ``--depth`` and ``--landmarks`` may then be
            repeated, once per photo, in the same order.
    """
    action = "append" if several else "store"
    each = " (repeat it once per IMG, in order)" if several else ""
    p.add_argument(
        "--depth",
        metavar="FILE.npy",
        action=action,
        help=f"use this depth map (.npy, H x W) instead of the network{each}",
    )
    p.add_argument(
        "--depth-kind",
        choices=["inverse", "metric"],
        default="inverse",
        help="inverse: relative inverse depth (larger = nearer); metric: depth from a sensor",
    )
    p.add_argument("--depth-unit", choices=sorted(UNITS_MM), default="mm", help="unit of metric depth (mm)")
    p.add_argument(
        "--landmarks",
        metavar="FILE.json",
        action=action,
        help=f'use these five face landmarks instead of detecting the face: {{"landmarks_xy": [[x, y], ...]}}{each}',
    )
    p.add_argument(
        "--fov",
        type=fov_arg,
        default=None,
        metavar="DEG",
        help="horizontal field of view of the photo in degrees (default: from the photo's EXIF, else 55)",
    )
    p.add_argument(
        "--smooth",
        type=smooth_arg,
        default=2.0,
        metavar="S",
        help="Gaussian smoothing sigma in depth-map pixels (0 = none; default 2)",
    )
    p.add_argument("--edge-preserving", action="store_true", help="bilateral filter instead of the Gaussian")
    p.add_argument(
        "--depth-scale", type=depth_scale_arg, default=1.0, help="exaggerate (>1) or flatten (<1) the relief"
    )
    p.add_argument(
        "--face",
        type=face_arg,
        default=0,
        metavar="N",
        help="which face, 0 = largest (default 0); 'none' = whole image",
    )
    p.add_argument(
        "--margin", type=margin_arg, default=None, help="crop margin around the face (fraction of its size, 0 to 5)"
    )
    p.add_argument("--model", default=DEFAULT_MODEL, choices=list_models(), help=f"depth model ({DEFAULT_MODEL})")
    p.add_argument("--weights", metavar="PATH", help="depth checkpoint file")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")


def check_depth_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Read a ``.npy`` file's header and check it before any value is read.

    Returns:
        ``(shape, dtype)`` as declared.

    Raises:
        InvalidDepthError: Not a ``.npy`` file (version 1 or 2), not real numbers, not 2D (after
            dropping axes of length 1), more values than the photo pixel limit, or shorter than
            its header declares.
    """
    from numpy.lib import format as npy_format

    try:
        with open(path, "rb") as handle:
            version = npy_format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = npy_format.read_array_header_2_0(handle)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
            data_start = handle.tell()
        size = Path(path).stat().st_size
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidDepthError(f"Cannot read the depth map {path} as a .npy array ({exc}).") from exc
    if dtype.hasobject or dtype.kind not in "iuf":
        raise InvalidDepthError(f"The depth map {path} must hold real numbers, got {dtype}.")
    kept = tuple(int(n) for n in shape if n != 1)
    if len(kept) != 2 or min(kept) < 2:
        raise InvalidDepthError(f"The depth map {path} must be a 2D (H, W) array, got shape {tuple(shape)}.")
    values = kept[0] * kept[1]
    if values > MAX_PIXELS:
        raise InvalidDepthError(
            f"The depth map {path} declares {kept[1]}x{kept[0]} = {values / 1e6:.0f} megapixels; "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels."
        )
    if size < data_start + values * dtype.itemsize:
        raise InvalidDepthError(f"The depth map {path} is incomplete: its header declares more data than it holds.")
    return tuple(shape), dtype


def load_depth_file(path: str | Path) -> np.ndarray:
    """Read a ``.npy`` depth map as ``(H, W) float32``, its header checked first (:func:`check_depth_header`).

    Raises:
        InvalidDepthError: Unreadable, not numeric, not 2D, too large, incomplete, or without
            any finite value.
    """
    check_depth_header(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidDepthError(f"Cannot read the depth map {path} as a .npy array ({exc}).") from exc
    array = np.squeeze(array)
    if array.ndim != 2 or min(array.shape) < 2:
        raise InvalidDepthError(f"The depth map {path} must be a 2D (H, W) array, got shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise InvalidDepthError(f"The depth map {path} must hold real numbers, got {array.dtype}.")
    depth = array.astype(np.float32)
    if not np.isfinite(depth).any():
        raise InvalidDepthError(f"The depth map {path} has no finite value.")
    return depth


def load_landmarks_file(path: str | Path, image_size_wh: tuple[int, int]):
    """Read five face landmarks from a JSON file (see the module docstring) as a Face.

    Raises:
        NoFaceFoundError: The file is unreadable, malformed, or its points lie outside the photo.
    """
    from face3d_core.faces import Face

    try:
        data = json.loads(Path(path).read_text())
        marks = np.asarray(data["landmarks_xy"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NoFaceFoundError(
            f"Cannot read face landmarks from {path} ({exc}); expected JSON like "
            '{"landmarks_xy": [[x, y], [x, y], [x, y], [x, y], [x, y]]}.'
        ) from exc
    if marks.shape != (5, 2) or not np.isfinite(marks).all():
        raise NoFaceFoundError(
            f"The landmarks in {path} must be five [x, y] pairs (right eye, left eye, nose tip, "
            f"right and left mouth corner), got shape {marks.shape}."
        )
    width, height = image_size_wh
    if (marks < -0.5).any() or (marks[:, 0] > width - 0.5).any() or (marks[:, 1] > height - 0.5).any():
        raise NoFaceFoundError(f"The landmarks in {path} lie outside the {width}x{height} photo.")
    if "box_xywh" in data:
        return Face(tuple(data["box_xywh"]), marks.astype(np.float32), float(data.get("score", 1.0)))
    return Face.from_landmarks(marks, float(data.get("score", 1.0)))


def reconstruction_params(args: argparse.Namespace, fov: CameraFov, **overrides):
    """The :class:`~face3d_core.reconstruct.ReconstructionParams` of the shared options.

    The model is built with at most :data:`~face3d_core.reconstruct.MAX_MODEL_POINTS` points
    (``max_points``), as in the dashboard, unless an override says otherwise.
    """
    from face3d_core.reconstruct import MAX_MODEL_POINTS, ReconstructionParams

    values = dict(
        max_points=MAX_MODEL_POINTS,
        smoothing_sigma=args.smooth,
        edge_preserving=args.edge_preserving,
        depth_kind=args.depth_kind,
        depth_unit_mm=UNITS_MM[args.depth_unit],
        depth_scale=args.depth_scale,
        fov_deg=fov.fov_deg,
    )
    values.update(overrides)
    return ReconstructionParams(**values)


def choose_fov(args: argparse.Namespace, image_path: str | Path) -> CameraFov:
    """``--fov`` if given, else the photo's EXIF, else the default."""
    return photo_fov(image_path, args.fov)


def build_face_depth(
    args: argparse.Namespace,
    image_path: str | Path,
    *,
    depth_path: str | Path | None = None,
    landmarks_path: str | Path | None = None,
    face_index: int | None = 0,
):
    """The depth map of one photo with what is needed to use it (the expensive step).

    A given depth map (``depth_path``) covers the whole photo: the photo is resized to it and
    the face moved with it, so a depth map of another size than the photo (a network's
    output) keeps the photo's camera.

    Args:
        args: Parsed options (``model``, ``weights``, ``device``, ``margin``).
        image_path: The photo.
        depth_path: A given depth map (skips the network).
        landmarks_path: Given landmarks (skips the detector; wins over ``face_index``).
        face_index: Which detected face (None: the whole image).

    Returns:
        The :class:`~face3d_core.pipeline.FaceDepth` (``depth_rel`` holds the given depth as
        it is, metric or not).

    Raises:
        Face3DError: Unreadable photo, depth map or landmarks; no such face; missing weights.
    """
    import cv2

    from face3d_core.faces import DEFAULT_MARGIN, detect_faces, select_face
    from face3d_core.images import load_image
    from face3d_core.pipeline import FaceDepth

    image_rgb = load_image(image_path)
    size_wh = (image_rgb.shape[1], image_rgb.shape[0])
    given_face = load_landmarks_file(landmarks_path, size_wh) if landmarks_path else None
    if depth_path:
        depth = load_depth_file(depth_path)
        face = given_face
        if face is None and face_index is not None:
            face = select_face(detect_faces(image_rgb), face_index)
        h, w = depth.shape
        crop_rgb, crop_face = image_rgb, face
        if (w, h) != size_wh:
            sx, sy = w / size_wh[0], h / size_wh[1]
            crop_rgb = cv2.resize(image_rgb, (w, h), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
            if face is not None:
                crop_face = face.resized((sx, sy))
        return FaceDepth(
            depth_rel=depth,
            image_rgb=crop_rgb,
            crop_box_xyxy=(0, 0, size_wh[0], size_wh[1]),
            face=crop_face,
            model_name=args.model,
            image_size_wh=size_wh,
            faces=() if face is None else (face,),
            face_index=None if face is None else 0,
        )
    from face3d_core.pipeline import compute_face_depth

    return compute_face_depth(
        image_rgb,
        model_name=args.model,
        weights=args.weights,
        face_index=0 if given_face is not None else face_index,
        faces=[given_face] if given_face is not None else None,
        margin=DEFAULT_MARGIN if args.margin is None else args.margin,
        device=args.device,
    )


def build_face_model(
    args: argparse.Namespace,
    image_path: str | Path,
    params,
    *,
    depth_path: str | Path | None = None,
    landmarks_path: str | Path | None = None,
    face_index: int | None = 0,
):
    """Build the 3D face of one photo (:func:`build_face_depth`, then the reconstruction).

    Returns:
        The :class:`~face3d_core.reconstruct.FaceModel3D`.

    Raises:
        Face3DError: Unreadable photo, depth map or landmarks; no such face; missing weights.
    """
    from face3d_core.reconstruct import reconstruct_face

    face_depth = build_face_depth(
        args, image_path, depth_path=depth_path, landmarks_path=landmarks_path, face_index=face_index
    )
    return reconstruct_face(face_depth, params)


SCALE_WORDS = {
    "eyes": "mm (63 mm between the eyes)",
    "metric": "mm (metric depth)",
    "assumed": "nominal mm (no face: 500 mm distance assumed)",
}
