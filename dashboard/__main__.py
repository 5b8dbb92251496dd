"""``python -m dashboard``: serve the face3d dashboard (default http://127.0.0.1:8050)."""

from __future__ import annotations

import argparse
import logging

from dashboard.app import create_app


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the development server (threaded)."""
    parser = argparse.ArgumentParser(prog="python -m dashboard", description="Serve the face3d dashboard.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default $FACE3D_CACHE_DIR or ~/.cache/face3d)")
    parser.add_argument("--debug", action="store_true", help="Dash dev tools and reloading (development only)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(args.cache_dir)
    logging.getLogger(__name__).info("Serving on http://%s:%d", args.host, args.port)
    app.run(host=args.host, port=args.port, debug=args.debug, threaded=True)


if __name__ == "__main__":
    main()
