"""Child program: the dashboard with a stand-in depth network, served on 127.0.0.1.

Run as ``python -m tests.harness.fake_network_server --port N --cache-dir DIR [--delay-s S]
[--scene PHOTO:DEPTH.npy ...]`` (started by :meth:`tests.harness.servers.WebServer.fake_network`).
The network is a :class:`~tests.doubles.FakeEstimator` that sleeps ``--delay-s`` seconds per
prediction, so a test can kill the server while a depth job is running; with ``--scene`` it is
a :class:`~tests.doubles.KnownSceneEstimator` that returns the true depth of those photos.
"""

from __future__ import annotations

import argparse
import logging
import os


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until killed."""
    parser = argparse.ArgumentParser(prog="python -m tests.harness.fake_network_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--delay-s", type=float, default=0.0, help="seconds each prediction sleeps")
    parser.add_argument(
        "--scene",
        action="append",
        default=[],
        metavar="PHOTO:DEPTH.npy",
        help="a photo whose true relative inverse depth is known (repeatable; see KnownSceneEstimator)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import numpy as np

    from dashboard.app import create_app
    from dashboard.request_limits import run_dev_server
    from face3d_core.images import load_image
    from tests.doubles import FakeEstimator, KnownSceneEstimator

    scenes = []
    for item in args.scene:
        photo, depth = item.rsplit(":", 1)
        scenes.append((load_image(photo), np.load(depth)))
    fake = KnownSceneEstimator(scenes, delay_s=args.delay_s) if scenes else FakeEstimator(delay_s=args.delay_s)
    app = create_app(args.cache_dir, estimator_factory=lambda *_: fake)
    logging.getLogger(__name__).info("Fake network server running as process %d", os.getpid())
    run_dev_server(app, "127.0.0.1", args.port)  # as python -m dashboard serves


if __name__ == "__main__":
    main()
