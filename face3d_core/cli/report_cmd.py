"""``face3d report IMG... -o report.html``: one self-contained HTML report to share.

Each photo becomes a 3D face as in ``face3d mesh`` (the network, or ``--depth FILE.npy``) and
is measured as in ``face3d measure``. The report shows per face the photo crop, the depth map,
the interactive 3D model and the measurements, and for two or more photos the measurements side
by side, the depth profiles and (for two) the difference map. The file opens offline in any
current browser: Plotly's JavaScript is inside it. A bad file gets one error line and the
others are still reported; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from pathlib import Path

from face3d_core.cli import error_line, unexpected_message
from face3d_core.cli.face_source import add_source_arguments, build_face_depth, choose_fov, reconstruction_params
from face3d_core.cli.outputs import check_not_inputs
from face3d_core.errors import ExportError, Face3DError, NoFaceFoundError

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``face3d report``."""
    p = subparsers.add_parser(
        "report",
        help="write one self-contained HTML report (photos, depth maps, 3D models, measurements)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("images", nargs="+", metavar="IMG", help="JPEG or PNG photos (two or more: a comparison)")
    add_source_arguments(p, several=True)
    p.add_argument("-o", "--output", metavar="OUT.html", default="report.html", help="the report (report.html)")
    p.add_argument("--title", default=None, help="title of the report (default: from the file names)")
    p.add_argument(
        "--plain-js",
        action="store_true",
        help="embed Plotly's JavaScript uncompressed (2.8 MB larger; for browsers older than 2023)",
    )
    p.set_defaults(func=run)


def _per_image(values: list[str] | None, n: int, option: str) -> list[str | None]:
    if not values:
        return [None] * n
    if len(values) != n:
        raise ExportError(f"{option} was given {len(values)} time(s) for {n} photo(s): give it once per photo.")
    return list(values)


def _face(args: argparse.Namespace, image: str, depth_path: str | None, landmarks_path: str | None):
    """``(ReportFace, FaceDepth)`` of one photo."""
    from face3d_core.measure import measure_face
    from face3d_core.models.registry import get_spec
    from face3d_core.reconstruct import reconstruct_face
    from face3d_core.report import ReportFace, depth_nearness

    fov = choose_fov(args, image)
    params = reconstruction_params(args, fov, representation="mesh", color_mode="photo")
    face_depth = build_face_depth(
        args, image, depth_path=depth_path, landmarks_path=landmarks_path, face_index=args.face
    )
    model = reconstruct_face(face_depth, params)
    measurements, note = None, ""
    if face_depth.face is None:
        note = "no face was used (whole image), so there are no face points to measure between."
    else:
        try:
            measurements = measure_face(model, fov_source=fov.source)
        except ValueError as exc:
            note = f"the face could not be measured: {exc}."
    source = f"given depth map {Path(depth_path).name}" if depth_path else get_spec(args.model).title
    face = ReportFace(
        name=Path(image).name,
        image_rgb=face_depth.image_rgb,
        depth_norm=depth_nearness(face_depth.depth_rel, args.depth_kind),
        model=model,
        measurements=measurements,
        fov=fov,
        depth_model=source,
        note=note,
    )
    return face, face_depth


def _comparison(images: list[str], faces: list, depths: list, model_name: str):
    """The comparison of the reported faces, or None (with a warning) where they cannot be compared."""
    from face3d_core.compare import compare_faces
    from face3d_core.pipeline import DepthRef

    if len(faces) < 2:
        return None
    refs = []
    for index, image in enumerate(images):  # a key per position: the same photo may come twice
        key = hashlib.sha256(f"{index}\0{image}".encode()).hexdigest()
        refs.append(DepthRef(key, model_name, None if depths[index].face is None else 0))
    by_ref = dict(zip(refs, depths, strict=True))
    try:
        return compare_faces(refs, [face.name for face in faces], lambda ref, progress=None: by_ref[ref])
    except Face3DError as exc:
        print(f"face3d: warning: no comparison in the report: {exc.user_message}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    """Build and write the report; return 0 if every photo made it in, 1 otherwise."""
    from face3d_core.report import build_report

    try:
        depths = _per_image(args.depth, len(args.images), "--depth")
        marks = _per_image(args.landmarks, len(args.images), "--landmarks")
        check_not_inputs([args.output], [*args.images, *depths, *marks])
    except Face3DError as exc:
        print(error_line(exc.user_message), file=sys.stderr)
        return 1
    faces, face_depths, reported = [], [], []
    failures = 0
    for image, depth_path, landmarks_path in zip(args.images, depths, marks, strict=True):
        try:
            face, face_depth = _face(args, image, depth_path, landmarks_path)
        except NoFaceFoundError as exc:
            failures += 1
            print(error_line(f"{exc.user_message} (use --face none to report the whole image)", image), file=sys.stderr)
            continue
        except Face3DError as exc:
            failures += 1
            print(error_line(exc.user_message, image), file=sys.stderr)
            continue
        except Exception as exc:  # noqa: BLE001 - a bug on one photo must not stop the others
            failures += 1
            logger.debug("Unexpected error on %r", image, exc_info=exc)
            print(error_line(unexpected_message(exc), image), file=sys.stderr)
            continue
        faces.append(face)
        face_depths.append(face_depth)
        reported.append(image)
    if not faces:
        print(error_line("No photo could be reported."), file=sys.stderr)
        return 1
    comparison = _comparison(reported, faces, face_depths, args.model)
    text = build_report(faces, comparison=comparison, title=args.title, compress_js=not args.plain_js)
    out = Path(args.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(error_line(f"Cannot write {out}: {exc.strerror or exc}."), file=sys.stderr)
        return 1
    size_mb = out.stat().st_size / 1e6
    print(f"{out}: report of {len(faces)} face(s){' with a comparison' if comparison else ''}, {size_mb:.1f} MB")
    return 1 if failures else 0
