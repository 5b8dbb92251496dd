"""The ``face3d`` command line: ``face3d depth``, ``mesh``, ``measure``, ``report``, ``models``.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` (which sets
``func=run``) and ``run(args) -> int``. User errors (:class:`~face3d_core.errors.Face3DError`)
are printed as one line ``face3d: error: ...`` with a non-zero exit code, never as a traceback; so is
a bad ``FACE3D_*`` setting (:class:`~face3d_core.errors.ConfigError`), checked before any work, and
so is a bad option value (every number has a range: :mod:`face3d_core.cli.arg_types`).

The ``face3d`` command and ``python -m face3d_core.cli`` run :func:`console_main`, which ends the
process at once after the work (:func:`os._exit` once its output is flushed): the interpreter's
ordinary exit tears down every imported module, which took about a second after torch was
imported, and a command line tool has nothing left to clean up. :func:`main` itself returns the
exit code (tests and other Python code call it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from face3d_core import __version__
from face3d_core.cli.arg_types import OneLineParser
from face3d_core.config import get_settings
from face3d_core.errors import Face3DError

_SUBCOMMANDS = ("depth_cmd", "mesh_cmd", "measure_cmd", "report_cmd", "models_cmd")
#: Subcommands that decode photos (their decoder process is started first: see :mod:`face3d_core.decode_sandbox`).
_DECODING_COMMANDS = ("depth", "mesh", "measure", "report")
#: True when this process is the ``face3d`` command itself (:func:`console_main`), not a caller of :func:`main`:
#: only then is the image decoder forked from it (a process of one thread, ending right after the work).
_WHOLE_PROCESS = False


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    parser: argparse.ArgumentParser = OneLineParser(
        prog="face3d", description="Photo of a face -> depth map -> 3D model (MiDaS)."
    )
    parser.add_argument("--version", action="version", version=f"face3d {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMANDS:
        importlib.import_module(f"face3d_core.cli.{name}").add_parser(subparsers)
    return parser


def error_line(message: str, source: str | None = None) -> str:
    """Format one user-facing error line (``face3d: error: <source>: <message>``)."""
    return f"face3d: error: {source}: {message}" if source else f"face3d: error: {message}"


def unexpected_message(exc: BaseException) -> str:
    """The one line for an unexpected error on one input (a bug): what it was and how to see more."""
    text = " ".join(str(exc).split())[:200]
    return f"unexpected error ({type(exc).__name__}: {text}); run with -vv for details, and please report it."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 some inputs failed, 2 usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        get_settings()  # a bad FACE3D_* value stops here, as one line, before any work
        if args.command in _DECODING_COMMANDS:  # the image decoder starts while the command sets up its work
            from face3d_core.decode_sandbox import SANDBOX

            SANDBOX.prestart(fork=_WHOLE_PROCESS)
        return int(args.func(args))
    except Face3DError as exc:
        print(error_line(exc.user_message), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("face3d: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _exit_status(exc: SystemExit) -> int:
    """The status Python would exit with for ``exc`` (a message is printed to stderr, as Python does)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def console_main() -> None:
    """Entry point of the ``face3d`` command: :func:`main`, then flush and end the process at once.

    Standard output and error and the log handlers are flushed, then :func:`os._exit` ends the
    process with :func:`main`'s exit code (argparse's for usage errors, ``--help`` and
    ``--version``), skipping the interpreter's teardown of imported modules. An unexpected
    exception is left to Python (traceback, status 1).
    """
    global _WHOLE_PROCESS
    _WHOLE_PROCESS = True
    try:
        status = main()
    except SystemExit as exc:
        status = _exit_status(exc)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(status)
