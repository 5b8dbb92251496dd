"""``face3d measure IMG...``: face measurements in millimetres, with their uncertainty.

For each photo the 3D face is built as in ``face3d mesh`` (the network, or ``--depth
FILE.npy`` once per photo; ``--depth-kind metric`` for a depth sensor) and measured
(:mod:`face3d_core.measure`): eye distance, nose width, nose height, nose protrusion, mouth
width and face width at the eyes. A table per photo goes to the terminal; ``--csv`` and
``--json`` write every value with its uncertainty and where the scale came from. With a
relative-depth network the eyes are *set* 63 mm apart (the scale reference): the other
values are proportions in plausible millimetres, not a person's true size; metric depth
measures true sizes. Every distance is measured in the face's own frame (the head pose, from
the face's symmetry, is printed and written); what a view cannot show (the far side of a head
turned too far, a hidden point) is refused with the reason: an empty value and a note in CSV
and JSON, never a guess. A bad file gets one error line; the others are still measured; the
exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from face3d_core.cli import error_line, unexpected_message
from face3d_core.cli.face_source import add_source_arguments, build_face_model, choose_fov, reconstruction_params
from face3d_core.cli.outputs import check_distinct, check_not_inputs
from face3d_core.errors import ExportError, Face3DError, NoFaceFoundError

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``face3d measure``."""
    p = subparsers.add_parser(
        "measure",
        help="measure faces in millimetres (CSV/JSON)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("images", nargs="+", metavar="IMG", help="JPEG or PNG photos")
    add_source_arguments(p, several=True)
    p.add_argument("--csv", metavar="OUT.csv", help="write all measurements as CSV")
    p.add_argument("--json", metavar="OUT.json", help="write all measurements and points as JSON")
    p.set_defaults(func=run)


def _per_image(values: list[str] | None, n: int, option: str) -> list[str | None]:
    if not values:
        return [None] * n
    if len(values) != n:
        raise ExportError(f"{option} was given {len(values)} time(s) for {n} photo(s): give it once per photo.")
    return list(values)


def _table(image: str, result) -> str:
    from face3d_core.measure import pose_text, sigma_text, value_text

    lines = [
        f"{image}: {result.scale_note} FOV {result.fov_deg:.3g}° ({result.fov_source}).",
        f"  {pose_text(result)}.",
    ]
    for m in result.measurements:
        if m.refused:
            value = f"refused ({m.note})"
        else:
            value = f"{value_text(m):>18s} {sigma_text(m)}" + (" (scale reference)" if m.reference else "")
            if m.status == "mirrored":
                value += f"  [{m.note}]"
        lines.append(f"  {m.label:<42s} {value}")
    return "\n".join(lines)


def _write(path: str, text: str) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    except OSError as exc:
        raise ExportError(f"Cannot write {path}: {exc.strerror or exc}.") from exc


def run(args: argparse.Namespace) -> int:
    """Measure every photo; return 0 if all succeeded, 1 otherwise."""
    from face3d_core.measure import measure_face, write_csv

    try:
        depths = _per_image(args.depth, len(args.images), "--depth")
        marks = _per_image(args.landmarks, len(args.images), "--landmarks")
        check_distinct([args.csv, args.json])
        check_not_inputs([o for o in (args.csv, args.json) if o], [*args.images, *depths, *marks])
    except Face3DError as exc:
        print(error_line(exc.user_message), file=sys.stderr)
        return 1
    rows: list[dict] = []
    documents: list[dict] = []
    failures = 0
    for image, depth_path, landmarks_path in zip(args.images, depths, marks, strict=True):
        try:
            if args.face is None and landmarks_path is None:
                raise NoFaceFoundError("Measurements need a face: --face none cannot be measured.")
            fov = choose_fov(args, image)
            params = reconstruction_params(args, fov, representation="points", color_mode="depth")
            model = build_face_model(
                args, image, params, depth_path=depth_path, landmarks_path=landmarks_path, face_index=args.face
            )
            try:
                result = measure_face(model, fov_source=fov.source)
            except ValueError as exc:
                raise NoFaceFoundError(f"The face could not be measured: {exc}.") from exc
        except NoFaceFoundError as exc:
            failures += 1
            hint = "" if landmarks_path else " Measurements need a face (--landmarks FILE.json can give its points)."
            print(error_line(f"{exc.user_message}{hint}", image), file=sys.stderr)
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
        print(_table(image, result))
        network = "" if depth_path else args.model  # a given depth map came from no network of ours
        rows.extend(result.to_rows(image, network))
        documents.append(result.to_dict(image, network))
    try:
        if args.csv:
            _write(args.csv, write_csv(rows))
        if args.json:
            _write(args.json, json.dumps({"faces": documents}, indent=2, allow_nan=False) + "\n")
    except Face3DError as exc:
        print(error_line(exc.user_message), file=sys.stderr)
        return 1
    return 1 if failures else 0
