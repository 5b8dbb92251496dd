"""``face3d mesh IMG``: a 3D face model (mesh or point cloud) from a photo.

By default the depth network runs on a crop around face ``--face N`` (0 = largest) and
the result is refined, converted to millimetres (63 mm between the eyes) and triangulated.
``--depth FILE.npy`` skips the network and uses an existing depth map instead:
``--depth-kind inverse`` (default) for relative inverse depth from any model (larger =
nearer), ``--depth-kind metric`` for depth along the optical axis from a sensor (in
``--depth-unit``). With metric depth, a known ``--fov`` and ``--smooth 0`` the
back-projection is exact. ``--full-frame`` uses the whole photo without a face.

Output: ``-o OUT`` (a file name; its extension picks the format unless ``--format`` is
given), by default ``<image stem>_3d.<format>`` in the current folder. OBJ writes
``.obj`` + ``.mtl`` + ``.png`` when ``--texture`` is set.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from face3d_core.cli import error_line
from face3d_core.errors import ExportError, Face3DError, InvalidDepthError, NoFaceFoundError
from face3d_core.export import MESH_FORMATS, POINT_FORMATS, export_mesh, export_points, write_files
from face3d_core.geometry import DEFAULT_FOV_DEG
from face3d_core.models.registry import DEFAULT_MODEL, list_models

logger = logging.getLogger(__name__)

_UNITS_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


def _face_arg(value: str) -> int | None:
    if value.strip().lower() in {"none", "full", "all", "whole"}:
        return None
    try:
        index = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a face number (0 = largest) or 'none', got {value!r}") from None
    if index < 0:
        raise argparse.ArgumentTypeError("face numbers start at 0 (the largest face)")
    return index


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``face3d mesh``."""
    p = subparsers.add_parser(
        "mesh",
        help="build a 3D model (PLY/OBJ/GLB/STL) of a face",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("image", metavar="IMG", help="JPEG or PNG photo")
    p.add_argument("--depth", metavar="FILE.npy", help="use this depth map (.npy, H x W) instead of the network")
    p.add_argument(
        "--depth-kind",
        choices=["inverse", "metric"],
        default="inverse",
        help="inverse: relative inverse depth (larger = nearer); metric: depth from a sensor",
    )
    p.add_argument("--depth-unit", choices=sorted(_UNITS_MM), default="mm", help="unit of metric depth (mm)")
    p.add_argument(
        "--fov",
        type=float,
        default=DEFAULT_FOV_DEG,
        metavar="DEG",
        help=f"horizontal field of view of the photo in degrees (default {DEFAULT_FOV_DEG:g})",
    )
    p.add_argument(
        "--format",
        choices=list(MESH_FORMATS),
        default=None,
        help="output format (default: from -o's extension, else ply)",
    )
    p.add_argument("--points", action="store_true", help="write a point cloud instead of a mesh (ply or glb)")
    p.add_argument(
        "--smooth",
        type=_non_negative,
        default=2.0,
        metavar="S",
        help="Gaussian smoothing sigma in depth-map pixels (0 = none; default 2)",
    )
    p.add_argument("--edge-preserving", action="store_true", help="bilateral filter instead of the Gaussian")
    p.add_argument("--depth-scale", type=_positive, default=1.0, help="exaggerate (>1) or flatten (<1) the relief")
    p.add_argument(
        "--face",
        type=_face_arg,
        default=0,
        metavar="N",
        help="which face, 0 = largest (default 0); 'none' = whole image",
    )
    p.add_argument("--full-frame", action="store_true", help="whole image, no face (same as --face none)")
    p.add_argument(
        "--margin", type=_non_negative, default=None, help="crop margin around the face (fraction of its size)"
    )
    p.add_argument("--stride", type=int, default=1, help="use every N-th pixel (coarser, smaller files)")
    p.add_argument(
        "--color",
        choices=["depth", "photo"],
        default="photo",
        help="vertex colours: the photo's (default) or grayscale by depth",
    )
    p.add_argument("--texture", action="store_true", help="OBJ/GLB: attach the photo as a texture")
    p.add_argument("--no-mask", action="store_true", help="keep the background (no face mask)")
    p.add_argument("--model", default=DEFAULT_MODEL, choices=list_models(), help=f"depth model ({DEFAULT_MODEL})")
    p.add_argument("--weights", metavar="PATH", help="depth checkpoint file")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (default: <image stem>_3d.<format>)")
    p.set_defaults(func=run)


def load_depth_file(path: str | Path) -> np.ndarray:
    """Read a ``.npy`` depth map as ``(H, W) float32``.

    Raises:
        InvalidDepthError: Unreadable, not numeric, not 2D, or without any finite value.
    """
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


def _output_path(args: argparse.Namespace, fmt: str) -> Path:
    if args.output:
        out = Path(args.output)
        return out if out.suffix else out.with_suffix(f".{fmt}")
    return Path.cwd() / f"{Path(args.image).stem or 'face'}_3d.{fmt}"


def _pick_format(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    if args.output:
        suffix = Path(args.output).suffix.lower().lstrip(".")
        if suffix in MESH_FORMATS:
            return suffix
    return "ply"


def run(args: argparse.Namespace) -> int:
    """Build and write the 3D model; return 0 on success, 1 on a user error."""
    from face3d_core.faces import DEFAULT_MARGIN, detect_faces, select_face
    from face3d_core.images import load_image
    from face3d_core.reconstruct import ReconstructionParams, reconstruct_face

    started = time.perf_counter()
    source = args.image
    try:
        fmt = _pick_format(args)
        if args.points and fmt not in POINT_FORMATS:
            raise ExportError(f"A point cloud can be written as {' or '.join(POINT_FORMATS)}, not {fmt}.")
        face_index = None if args.full_frame else args.face
        image_rgb = load_image(args.image)
        params = ReconstructionParams(
            smoothing_sigma=args.smooth,
            edge_preserving=args.edge_preserving,
            depth_kind=args.depth_kind,
            depth_unit_mm=_UNITS_MM[args.depth_unit],
            depth_scale=args.depth_scale,
            fov_deg=args.fov,
            stride=max(1, args.stride),
            representation="points" if args.points else "mesh",
            color_mode=args.color,
            texture=args.texture,
            mask_mode="none" if args.no_mask else "auto",
        )
        if args.depth:
            source = args.depth
            depth = load_depth_file(args.depth)
            source = args.image
            face = None
            if face_index is not None:
                face = select_face(detect_faces(image_rgb), face_index)
            model = reconstruct_face(
                (depth, image_rgb, face), params, image_size_wh=(image_rgb.shape[1], image_rgb.shape[0])
            )
        else:
            from face3d_core.pipeline import compute_face_depth

            face_depth = compute_face_depth(
                image_rgb,
                model_name=args.model,
                weights=args.weights,
                face_index=face_index,
                margin=DEFAULT_MARGIN if args.margin is None else args.margin,
                device=args.device,
            )
            model = reconstruct_face(face_depth, params)
        out = _output_path(args, fmt)
        name = out.stem
        if args.points:
            files = export_points(model.points_xyz, model.colors_rgb, fmt, name=name)
        else:
            if model.mesh is None or model.mesh.n_faces == 0:
                raise ExportError("The 3D model has no triangles; try --points or less smoothing/masking.")
            files = export_mesh(model.mesh, fmt, name=name, texture=args.texture)
        paths = write_files(files, out.parent)
    except NoFaceFoundError as exc:
        hint = f"{exc.user_message} (use --face none for the whole image)"
        print(error_line(hint, source), file=sys.stderr)
        return 1
    except Face3DError as exc:
        print(error_line(exc.user_message, source), file=sys.stderr)
        return 1
    if args.points:
        what = f"{model.n_points} points"
    else:
        what = f"{model.mesh.n_vertices} vertices, {model.n_faces} triangles"
    scale = {
        "eyes": "mm (63 mm between the eyes)",
        "metric": "mm (metric depth)",
        "assumed": "nominal mm (no face: 500 mm distance assumed)",
    }[model.scale_source]
    print(f"{', '.join(str(p) for p in paths)}: {what}, units {scale}, {time.perf_counter() - started:.1f} s")
    return 0
