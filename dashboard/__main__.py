"""``python -m dashboard``: serve the face3d dashboard (default http://127.0.0.1:8050).

The server listens on 127.0.0.1 (this machine only) unless ``--host`` or ``FACE3D_HOST`` says
otherwise; any other address is logged as a warning, because the app has no login: anyone who
can reach the port can upload photos and read the results. A bad setting (``FACE3D_*``
variable) or an unusable cache folder is reported as one line and the process exits with
status 1. Requests are bounded (:mod:`dashboard.request_limits`): a body over the limit gets
413, a client sending too slowly (``FACE3D_READ_TIMEOUT_S``) is disconnected.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging

from dashboard.app import create_app
from dashboard.request_limits import run_dev_server
from face3d_core.config import get_settings
from face3d_core.errors import ConfigError, Face3DError

logger = logging.getLogger(__name__)

_PROG = "python -m dashboard"


def is_loopback(host: str) -> bool:
    """Return True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the development server (threaded).

    Raises:
        SystemExit: With a one-line message (status 1) for a bad setting or cache folder.
    """
    try:
        settings = get_settings()
    except ConfigError as exc:
        raise SystemExit(f"{_PROG}: error: {exc.user_message}") from None
    parser = argparse.ArgumentParser(prog=_PROG, description="Serve the face3d dashboard.")
    parser.add_argument(
        "--host",
        default=settings.host,
        help="interface to listen on (default $FACE3D_HOST or 127.0.0.1: this machine only)",
    )
    parser.add_argument("--port", type=int, default=settings.port, help="port (default $FACE3D_PORT or 8050)")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default $FACE3D_CACHE_DIR or ~/.cache/face3d)")
    parser.add_argument("--debug", action="store_true", help="Dash dev tools and reloading (development only)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not is_loopback(args.host):
        logger.warning(
            "Listening on %s: the dashboard has no login, so anyone who can reach this port can upload photos "
            "and see results. Put it behind an authenticating reverse proxy (see docs/deployment.md).",
            args.host,
        )
    try:
        app = create_app(args.cache_dir, warm_up=True)  # the default network loads in the background now
    except Face3DError as exc:
        raise SystemExit(f"{_PROG}: error: {exc.user_message}") from None
    logger.info("Serving on http://%s:%d", args.host, args.port)
    run_dev_server(app, args.host, args.port, debug=args.debug)


if __name__ == "__main__":
    main()
