"""``face3d models``: list the depth networks; ``--download`` fetches their weights."""

from __future__ import annotations

import argparse
import sys

from face3d_core.errors import Face3DError
from face3d_core.models.registry import DEFAULT_MODEL, get_spec, list_models
from face3d_core.weights import find_weights, resolve_weights


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``face3d models``."""
    p = subparsers.add_parser("models", help="list depth models and whether their weights are present")
    p.add_argument("--download", nargs="+", metavar="MODEL", help="download these models' weights into the cache")
    p.set_defaults(func=run)


def _download(names: list[str]) -> int:
    from tqdm import tqdm

    failed = 0
    for name in names:
        try:
            spec = get_spec(name)
            with tqdm(total=None, unit="B", unit_scale=True, desc=spec.file_name, file=sys.stderr) as bar:

                def progress(done: int, total: int | None, bar: tqdm = bar) -> None:
                    if total and bar.total != total:
                        bar.total = total
                    bar.update(done - bar.n)

                path = resolve_weights(spec.weights_file, progress=progress)
            print(f"{name}: {path}")
        except Face3DError as exc:
            failed += 1
            print(f"face3d: error: {name}: {exc.user_message}", file=sys.stderr)
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    """List every registered model: input size, download size, weights status."""
    if args.download:
        return _download(args.download)
    rows = []
    for name in list_models():
        spec = get_spec(name)
        try:
            path = find_weights(spec.weights_file)
        except Face3DError:
            path = None
        status = str(path) if path else f"missing (face3d models --download {name})"
        size = f"{spec.net_size[0]}x{spec.net_size[1]}"
        rows.append((name + (" *" if name == DEFAULT_MODEL else ""), size, f"{spec.size_mb:.0f} MB", status))
    widths = [max(len(r[i]) for r in rows + [("MODEL", "INPUT", "SIZE", "WEIGHTS")]) for i in range(3)]
    header = ("MODEL", "INPUT", "SIZE", "WEIGHTS")
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)))
    print("* default model. Weights are looked up in $FACE3D_WEIGHTS_DIR, then the cache folder.")
    return 0
