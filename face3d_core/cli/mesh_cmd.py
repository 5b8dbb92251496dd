"""``face3d mesh IMG``: a 3D face model (mesh or point cloud) from a photo.

By default the depth network runs on a crop around face ``--face N`` (0 = largest) and
the result is refined, converted to millimetres (63 mm between the eyes) and triangulated.
``--depth FILE.npy`` skips the network and uses an existing depth map instead:
``--depth-kind inverse`` (default) for relative inverse depth from any model (larger =
nearer), ``--depth-kind metric`` for depth along the optical axis from a sensor (in
``--depth-unit``). With metric depth, a known ``--fov`` and ``--smooth 0`` the
back-projection is exact. ``--full-frame`` uses the whole photo without a face.
``--landmarks FILE.json`` gives the five face landmarks instead of detecting them. The field
of view is ``--fov``, else the photo's EXIF focal length, else 55 degrees (the output says
which).

``--solid`` writes a printable relief instead (:mod:`face3d_core.relief`): one closed body of
the face surface, side walls and a flat base ``--base-mm`` thick, ``--width-mm`` wide, the
relief exaggerated by ``--relief``, at most ``--max-triangles`` triangles (1.5 M: the grid grows
coarser than ``--grid-mm`` beyond, and the output says so); best as ``--format stl`` or ``3mf``.

Output: ``-o OUT`` (a file name; its extension picks the format unless ``--format`` is
given), by default ``<image stem>_3d.<format>`` in the current folder. OBJ writes
``.obj`` + ``.mtl`` + ``.png`` when ``--texture`` is set. An output never replaces an input
(photo, depth map, landmarks): that is an error; a file of an earlier run is replaced.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from face3d_core.cli import error_line
from face3d_core.cli.arg_types import number, whole_number
from face3d_core.cli.face_source import (
    SCALE_WORDS,
    add_source_arguments,
    build_face_model,
    choose_fov,
    reconstruction_params,
)
from face3d_core.cli.outputs import check_not_inputs
from face3d_core.errors import ExportError, Face3DError, NoFaceFoundError
from face3d_core.export import MESH_FORMATS, POINT_FORMATS, export_mesh, export_points, write_files
from face3d_core.reconstruct import MAX_MODEL_POINTS
from face3d_core.relief import (
    DEFAULT_BASE_MM,
    DEFAULT_GRID_STEP_MM,
    DEFAULT_RELIEF,
    DEFAULT_WIDTH_MM,
    MAX_RELIEF_TRIANGLES,
    relief_max_points,
)

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``face3d mesh``."""
    p = subparsers.add_parser(
        "mesh",
        help="build a 3D model (PLY/OBJ/GLB/STL/3MF) of a face, or a printable relief",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("image", metavar="IMG", help="JPEG or PNG photo")
    add_source_arguments(p)
    p.add_argument(
        "--format",
        choices=list(MESH_FORMATS),
        default=None,
        help="output format (default: from -o's extension, else ply; stl with --solid)",
    )
    p.add_argument("--points", action="store_true", help="write a point cloud instead of a mesh (ply or glb)")
    p.add_argument("--full-frame", action="store_true", help="whole image, no face (same as --face none)")
    p.add_argument(
        "--stride", type=whole_number(1, 64), default=1, help="use every N-th pixel (1 to 64; coarser, smaller files)"
    )
    p.add_argument(
        "--no-point-cap",
        action="store_true",
        help=f"use every pixel even beyond {MAX_MODEL_POINTS / 1e6:.3g} M points (the default cap; slow, large files)",
    )
    p.add_argument(
        "--color",
        choices=["depth", "photo"],
        default="photo",
        help="vertex colours: the photo's (default) or grayscale by depth",
    )
    p.add_argument("--texture", action="store_true", help="OBJ/GLB: attach the photo as a texture")
    p.add_argument("--no-mask", action="store_true", help="keep the background (no face mask)")
    p.add_argument("--solid", action="store_true", help="a closed, printable relief with walls and a flat base")
    p.add_argument(
        "--width-mm",
        type=number(0, 2000, low_open=True),
        default=DEFAULT_WIDTH_MM,
        help=f"--solid: width (default {DEFAULT_WIDTH_MM:g})",
    )
    p.add_argument(
        "--base-mm",
        type=number(0, 500, low_open=True),
        default=DEFAULT_BASE_MM,
        help=f"--solid: base thickness under the deepest point (default {DEFAULT_BASE_MM:g})",
    )
    p.add_argument(
        "--relief",
        type=number(0, 100, low_open=True),
        default=DEFAULT_RELIEF,
        help=f"--solid: depth exaggeration, 1 = true proportions (default {DEFAULT_RELIEF:g}: a whole face at 1 "
        "is two thirds as deep as it is wide)",
    )
    p.add_argument(
        "--grid-mm",
        type=number(0, 100, low_open=True),
        default=DEFAULT_GRID_STEP_MM,
        help=f"--solid: lateral grid step of the printed surface (default {DEFAULT_GRID_STEP_MM:g})",
    )
    p.add_argument(
        "--max-triangles",
        type=whole_number(1000, 20_000_000),
        default=MAX_RELIEF_TRIANGLES,
        help=f"--solid: most triangles of the solid; a coarser grid beyond (default {MAX_RELIEF_TRIANGLES:,})",
    )
    p.add_argument("-o", "--output", metavar="OUT", help="output file (default: <image stem>_3d.<format>)")
    p.set_defaults(func=run)


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
    return "stl" if args.solid else "ply"


def run(args: argparse.Namespace) -> int:
    """Build and write the 3D model; return 0 on success, 1 on a user error."""
    from face3d_core.relief import relief_from_model

    started = time.perf_counter()
    source = args.image
    solid = None
    try:
        fmt = _pick_format(args)
        if args.points and fmt not in POINT_FORMATS:
            raise ExportError(f"A point cloud can be written as {' or '.join(POINT_FORMATS)}, not {fmt}.")
        if args.points and args.solid:
            raise ExportError("A printable solid is a mesh: use --solid without --points.")
        fov = choose_fov(args, args.image)
        max_points = None if args.no_point_cap else MAX_MODEL_POINTS
        if args.solid and max_points is not None:  # a relief is made of the points its grid can use
            max_points = min(max_points, max(relief_max_points(args.width_mm, args.grid_mm), args.max_triangles // 2))
        params = reconstruction_params(
            args,
            fov,
            stride=args.stride,
            max_points=max_points,
            representation="points" if args.points or args.solid else "mesh",
            color_mode=args.color,
            texture=args.texture,
            mask_mode="none" if args.no_mask else "auto",
        )
        model = build_face_model(
            args,
            args.image,
            params,
            depth_path=args.depth,
            landmarks_path=args.landmarks,
            face_index=None if args.full_frame else args.face,
        )
        out = _output_path(args, fmt)
        name = out.stem
        if args.points:
            files = export_points(model.points_xyz, model.colors_rgb, fmt, name=name)
        elif args.solid:
            try:
                solid = relief_from_model(
                    model,
                    width_mm=args.width_mm,
                    base_mm=args.base_mm,
                    relief=args.relief,
                    grid_step_mm=args.grid_mm,
                    max_triangles=args.max_triangles,
                )
            except ValueError as exc:
                raise ExportError(f"No printable relief could be made: {exc}.") from exc
            files = export_mesh(solid.mesh, fmt, name=name)
        else:
            if model.mesh is None or model.mesh.n_faces == 0:
                raise ExportError("The 3D model has no triangles; try --points or less smoothing/masking.")
            files = export_mesh(model.mesh, fmt, name=name, texture=args.texture)
        check_not_inputs([out.parent / file_name for file_name in files], [args.image, args.depth, args.landmarks])
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
    elif solid is not None:
        x, y, z = solid.size_mm
        what = (
            f"printable solid {x:.1f} x {y:.1f} x {z:.1f} mm, {solid.mesh.n_faces} triangles, "
            f"base {args.base_mm:g} mm, grid {solid.grid_step_mm:.2f} mm"
        )
        if solid.budget_applied:
            what += f" (coarser than --grid-mm to stay within --max-triangles {args.max_triangles})"
    else:
        what = f"{model.mesh.n_vertices} vertices, {model.n_faces} triangles"
    if model.point_cap_applied and solid is None:
        what += f", {MAX_MODEL_POINTS / 1e6:.3g} M point cap applied (--no-point-cap for every pixel)"
    scale = SCALE_WORDS[model.scale_source]
    elapsed = time.perf_counter() - started
    print(f"{', '.join(str(p) for p in paths)}: {what}, units {scale}, {fov.describe()}, {elapsed:.1f} s")
    return 0
