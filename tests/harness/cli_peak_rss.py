"""Child program: the ``face3d`` command line, reporting its own peak memory.

Run as ``python -m tests.harness.cli_peak_rss <face3d arguments>``: exits with the CLI's exit
code after writing ``FACE3D_MAXRSS_KB <n>`` (``ru_maxrss`` of this process) and
``FACE3D_DECODER_MAXRSS_KB <n>`` (the largest peak of its image decoder's workers, which decode
in processes of their own: :mod:`face3d_core.decode_sandbox`) as the last lines of stderr.
:func:`run_cli` starts it and reads them back.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

MARKER = "FACE3D_MAXRSS_KB"
DECODER_MARKER = "FACE3D_DECODER_MAXRSS_KB"
#: Peak resident memory of the last run's decoder workers (bytes), read by :func:`run_cli`.
LAST_DECODER_PEAK = [0]


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
    decoder = re.search(rf"{DECODER_MARKER} (\d+)", completed.stderr)
    LAST_DECODER_PEAK[0] = int(decoder.group(1)) * 1024 if decoder else 0
    return completed.returncode, completed.stderr, int(match.group(1)) * 1024


def decoder_peak_kb() -> int:
    """The largest ``VmHWM`` (kB) of this process's image decoder workers now (0 where there are none)."""
    from face3d_core.decode_sandbox import SANDBOX

    zygote, peak = SANDBOX.zygote_pid, 0
    if zygote is None:
        return 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(") ", 1)[1].split()[1]) != zygote:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        found = re.search(r"VmHWM:\s+(\d+)", status)
        peak = max(peak, int(found.group(1)) if found else 0)
    return peak


def main() -> int:
    """Run the CLI on ``sys.argv[1:]`` and report the peak memory on stderr."""
    from face3d_core.cli import main as face3d_main

    code = face3d_main(sys.argv[1:])
    print(DECODER_MARKER, decoder_peak_kb(), file=sys.stderr)
    print(MARKER, own_peak_kb(), file=sys.stderr)
    return code


def own_peak_kb() -> int:
    """This process's peak resident memory (kB): ``VmHWM`` of its own memory map.

    Not ``ru_maxrss``: on Linux that also keeps the peak of the process it was started from (the
    memory map before ``exec``), so a CLI started by a test process of 1.2 GB reported 1.2 GB.
    """
    try:
        found = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
    except OSError:
        found = None
    return int(found.group(1)) if found else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    sys.exit(main())
