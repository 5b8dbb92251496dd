"""``face3d depth IMG...``: depth maps for one or many photos.

Writes ``<name>_depth.png`` (8-bit grayscale, lighter = nearer), ``<name>_depth16.png``
(16-bit) and ``<name>_depth.npy`` (raw relative inverse depth, float32) per photo; names are
unique within a run and never an input's (:mod:`face3d_core.cli.outputs`: ``x.jpg`` and
``x.png`` give ``x_jpg_*`` and ``x_png_*``), and files of an earlier run are replaced. By
default the network runs on a crop around the largest face (the maps then cover that
crop); ``--full-frame`` runs exactly the official whole-image pipeline instead.
A bad file gets one error line; the others are still processed; the exit code is 1 if
any file failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from face3d_core.cli import error_line, unexpected_message
from face3d_core.cli.arg_types import face_number
from face3d_core.cli.face_source import margin_arg
from face3d_core.cli.outputs import stems_sparing_inputs
from face3d_core.depthmap import DEPTH_FILE_SUFFIXES, write_depth_outputs
from face3d_core.errors import Face3DError, NoFaceFoundError
from face3d_core.images import load_image
from face3d_core.models.registry import DEFAULT_MODEL, list_models

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``face3d depth``."""
    p = subparsers.add_parser("depth", help="predict depth maps for photos")
    p.add_argument("images", nargs="+", metavar="IMG", help="JPEG or PNG photos")
    p.add_argument("--model", default=DEFAULT_MODEL, choices=list_models(), help=f"depth model ({DEFAULT_MODEL})")
    p.add_argument("--weights", metavar="PATH", help="checkpoint file (default: weights dir / cache / download)")
    p.add_argument("--out-dir", default=".", metavar="D", help="output folder (default: current folder)")
    p.add_argument("--full-frame", action="store_true", help="whole image, official pipeline (no face crop)")
    p.add_argument("--face", type=face_number, default=0, metavar="N", help="which face, 0 = largest (default 0)")
    p.add_argument(
        "--margin", type=margin_arg, default=None, help="crop margin around the face, fraction of its size (0 to 5)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Process every image; return 0 if all succeeded, 1 otherwise."""
    from tqdm import tqdm

    from face3d_core.models.estimator import get_estimator
    from face3d_core.pipeline import compute_face_depth

    estimator = get_estimator(args.model, weights=args.weights, device=args.device, precision=args.precision)
    estimator.load()  # a missing checkpoint is one clear error, before any file is touched
    out_dir = Path(args.out_dir)
    failures: list[str] = []
    written = 0
    started = time.perf_counter()
    stems = stems_sparing_inputs(args.images, out_dir, DEPTH_FILE_SUFFIXES)
    bar = tqdm(args.images, unit="img", disable=args.no_progress or len(args.images) < 2, file=sys.stderr)
    for image_path, stem in zip(bar, stems, strict=True):
        bar.set_postfix_str(Path(image_path).name[:30])
        try:
            image_rgb = load_image(image_path)
            kwargs = {} if args.margin is None else {"margin": args.margin}
            result = compute_face_depth(
                image_rgb,
                model_name=args.model,
                weights=args.weights,
                face_index=None if args.full_frame else args.face,
                estimator=estimator,
                **kwargs,
            )
            paths = write_depth_outputs(result.depth_rel, out_dir, stem)
            written += 1
            logger.info("%r -> %s", image_path, ", ".join(repr(p.name) for p in paths))
        except NoFaceFoundError as exc:
            failures.append(image_path)
            tqdm.write(
                error_line(f"{exc.user_message} (use --full-frame for the whole image)", image_path), file=sys.stderr
            )
        except Face3DError as exc:
            failures.append(image_path)
            tqdm.write(error_line(exc.user_message, image_path), file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - a bug on one photo must not stop the others
            failures.append(image_path)
            logger.debug("Unexpected error on %r", image_path, exc_info=exc)
            tqdm.write(error_line(unexpected_message(exc), image_path), file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(
        f"{written} of {len(args.images)} images done in {elapsed:.1f} s "
        f"({args.model}, {estimator.device.type}, {estimator.precision}); outputs in {out_dir}"
        + (f"; {len(failures)} failed" if failures else "")
    )
    return 1 if failures else 0
