"""Child program: the ``face3d`` command line, reporting its own peak memory.

Run as ``python -m tests.harness.cli_peak_rss <face3d arguments>``: exits with the CLI's exit
code after writing ``FACE3D_MAXRSS_KB <n>`` (``ru_maxrss`` of this process) as the last line of
stderr. :func:`run_cli` starts it and reads that line back.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

MARKER = "FACE3D_MAXRSS_KB"


def run_cli(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600) -> tuple[int, str, int]:
    """Run ``face3d <args>`` in a child process.

    Returns:
        ``(exit code, stderr, peak resident memory in bytes)``.

    Raises:
        AssertionError: The child died before reporting its memory (a crash, an OOM kill).
    """
    completed = subprocess.run(
        [sys.executable, "-m", __name__, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    match = re.search(rf"{MARKER} (\d+)", completed.stderr)
    assert match, f"the CLI process died (rc {completed.returncode}):\n{completed.stderr[-3000:]}"
    return completed.returncode, completed.stderr, int(match.group(1)) * 1024


def main() -> int:
    """Run the CLI on ``sys.argv[1:]`` and report the peak memory on stderr."""
    from face3d_core.cli import main as face3d_main

    code = face3d_main(sys.argv[1:])
    print(MARKER, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
