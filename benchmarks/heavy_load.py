"""Concurrent heavy use (issue 16, item 5): sessions doing the heaviest flow at once, and the server's memory.

Each session uploads a face photo of its own, generates the depth map, views the 3D model at full
density, clicks twice to measure, and downloads a printable relief (STL) and a report
(:mod:`tests.harness.heavy_load`). Memory is the sum of the PSS of the server's processes, sampled
every 0.2 s: idle (network loaded, one ordinary flow done), peak, and after the last request.
``tests/test_load.py`` runs 6 sessions x 1 round; this script runs any size, against this source
tree or another one (``--src``: e.g. an export of the code before issue 16, to compare).

Usage::

    python benchmarks/heavy_load.py --users 6 --rounds 3 --settle 60
    git archive <commit> | tar -x -C /tmp/before && python benchmarks/heavy_load.py --src /tmp/before
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import machine_description  # noqa: E402
from tests.harness.paths import FILL_PY, MODEL, YUNET_PATH, face_photos  # noqa: E402
from tests.harness.processes import child_env  # noqa: E402
from tests.harness.servers import WebServer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=6, help="sessions at once (default 6)")
    parser.add_argument("--rounds", type=int, default=3, help="flows per session (default 3)")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds sampled after the last request")
    parser.add_argument("--src", type=Path, default=REPO_ROOT, help="the source tree the server runs (default: this)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not (FILL_PY.is_file() and YUNET_PATH.is_file()):
        print("../shared (reference/fill.py, the face detector) not found: nothing to run")
        return 0
    from tests.doubles import write_fill_checkpoint
    from tests.harness.heavy_load import MIB, run_heavy_load

    print(machine_description())
    with tempfile.TemporaryDirectory(prefix="face3d-heavy-load-") as work:
        root = Path(work)
        write_fill_checkpoint(root / "weights", FILL_PY, MODEL)
        src = args.src.resolve()
        env = child_env(
            FACE3D_CACHE_DIR=str(root / "cache"), FACE3D_WEIGHTS_DIR=str(root / "weights"), PYTHONPATH=str(src)
        )
        server = WebServer.dashboard(env, root / "server.log", cwd=src).start()
        try:
            report = run_heavy_load(
                server,
                face_photos(),
                users=args.users,
                rounds=args.rounds,
                back_above_idle=300 * MIB,
                back_within_s=0.0,
                settle_s=args.settle,
            )
        finally:
            server.stop()
    print(report.table(f"HEAVY LOAD, python -m dashboard from {src}"))
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2))
    return 1 if report.stats.errors else 0


if __name__ == "__main__":
    sys.exit(main())
