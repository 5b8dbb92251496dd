"""What a test run costs: wall time, the largest process's peak memory, and extra disk.

Runs a command (by default ``make test``) and samples its whole process tree every 0.25 s:

* peak RSS of each process (the larger of sampled ``VmRSS`` and ``VmHWM`` while it lives), reported
  for the largest process and the largest ``python -m dashboard``-like server;
* peak of the tree's summed RSS;
* extra disk: the size of a private ``TMPDIR`` given to the command (every ``tmp_path``, server
  cache and checkpoint of the suite lands there) and the used-space growth of its file system;
* what is left running in the command's session when it ends (it should be nothing).

Usage::

    .venv/bin/python benchmarks/suite_cost.py                      # make test
    .venv/bin/python benchmarks/suite_cost.py -- make test-models
    .venv/bin/python benchmarks/suite_cost.py --json out.json -- .venv/bin/python -m pytest -q tests/test_mesh.py

It prints one table naming the CPU; nothing is asserted (see docs/testing.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import machine_description  # noqa: E402


@dataclass
class Cost:
    """Measured cost of one command."""

    command: list[str]
    exit_code: int = 0
    wall_s: float = 0.0
    largest_process_rss_mb: float = 0.0
    largest_process: str = ""
    largest_server_rss_mb: float = 0.0
    tree_rss_peak_mb: float = 0.0
    tmpdir_peak_mb: float = 0.0
    disk_growth_peak_mb: float = 0.0
    left_running: list[str] = field(default_factory=list)


def _status_kb(pid: int) -> tuple[int, int, int] | None:
    """``(ppid, VmRSS kB, VmHWM kB)`` of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {"PPid": 0, "VmRSS": 0, "VmHWM": 0}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0])
    return values["PPid"], values["VmRSS"], values["VmHWM"]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _session_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def _tree(root: int) -> dict[int, tuple[int, int]]:
    """``{pid: (rss kB, hwm kB)}`` of ``root`` and every descendant (also those in new sessions)."""
    parent_of: dict[int, int] = {}
    mem: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            status = _status_kb(int(entry.name))
            if status is not None:
                parent_of[int(entry.name)] = status[0]
                mem[int(entry.name)] = status[1:]
    members = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parent_of.items():
            if ppid in members and pid not in members:
                members.add(pid)
                changed = True
    return {pid: mem[pid] for pid in members if pid in mem}


def _du_mb(path: Path) -> float:
    total = 0
    for folder, _dirs, files in os.walk(path, onerror=lambda _e: None):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                pass
    return total / 2**20


def measure(command: list[str], *, interval_s: float = 0.25) -> Cost:
    """Run ``command`` with a private TMPDIR and sample its cost until it ends."""
    cost = Cost(command=command)
    tmp_root = Path(tempfile.mkdtemp(prefix="suite-cost-"))
    env = dict(os.environ, TMPDIR=str(tmp_root))
    disk_before = shutil.disk_usage(tmp_root).used
    peaks: dict[int, tuple[int, str]] = {}
    stop = threading.Event()

    def sample_disk() -> None:
        while not stop.wait(2.0):
            cost.tmpdir_peak_mb = max(cost.tmpdir_peak_mb, _du_mb(tmp_root))
            growth = (shutil.disk_usage(tmp_root).used - disk_before) / 2**20
            cost.disk_growth_peak_mb = max(cost.disk_growth_peak_mb, growth)

    disk_thread = threading.Thread(target=sample_disk, daemon=True)
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    disk_thread.start()
    try:
        while process.poll() is None:
            tree = _tree(process.pid)
            cost.tree_rss_peak_mb = max(cost.tree_rss_peak_mb, sum(rss for rss, _ in tree.values()) / 1024)
            for pid, (rss, hwm) in tree.items():
                peak = max(rss, hwm)
                if peak > peaks.get(pid, (0, ""))[0]:
                    peaks[pid] = (peak, peaks.get(pid, (0, ""))[1] or _cmdline(pid)[:160])
            time.sleep(interval_s)
    except KeyboardInterrupt:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
    cost.exit_code = process.returncode
    cost.wall_s = time.monotonic() - start
    stop.set()
    disk_thread.join()
    cost.tmpdir_peak_mb = max(cost.tmpdir_peak_mb, _du_mb(tmp_root))
    time.sleep(1.0)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _session_of(int(entry.name)) == process.pid:
            cost.left_running.append(_cmdline(int(entry.name))[:160])
    if peaks:
        pid, (peak_kb, cmd) = max(peaks.items(), key=lambda item: item[1][0])
        cost.largest_process_rss_mb = peak_kb / 1024
        cost.largest_process = cmd
        servers = [kb for kb, cmd in peaks.values() if "dashboard" in cmd or "fake_network_server" in cmd]
        cost.largest_server_rss_mb = max(servers, default=0) / 1024
    shutil.rmtree(tmp_root, ignore_errors=True)
    return cost


def main(argv: list[str] | None = None) -> int:
    """Run the command and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("command", nargs="*", default=["make", "test"])
    args = parser.parse_args(argv)
    cost = measure(args.command)
    print(f"\n## Cost of `{' '.join(cost.command)}`\n\n{machine_description()}\n")
    print("| figure | value |\n|---|---|")
    print(f"| exit code | {cost.exit_code} |")
    print(f"| wall time | {cost.wall_s / 60:.1f} min ({cost.wall_s:.0f} s) |")
    print(f"| largest process, peak RSS | {cost.largest_process_rss_mb:,.0f} MB (`{cost.largest_process[:70]}`) |")
    print(f"| largest app server, peak RSS | {cost.largest_server_rss_mb:,.0f} MB |")
    print(f"| whole process tree, peak RSS | {cost.tree_rss_peak_mb:,.0f} MB |")
    print(f"| extra disk (TMPDIR peak / file-system growth) | {cost.tmpdir_peak_mb:,.0f} / "
          f"{cost.disk_growth_peak_mb:,.0f} MB |")  # fmt: skip
    print(f"| processes left running | {len(cost.left_running)} |")
    for line in cost.left_running:
        print(f"  left: {line}")
    if args.json:
        args.json.write_text(json.dumps(asdict(cost), indent=2))
    return cost.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
