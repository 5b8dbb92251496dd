"""The heaviest flow by several sessions at once against a running server, with its memory (issue 16, item 5).

Each session (:class:`tests.harness.users.HeavyUserSession`) uploads a photo of its own, generates
its depth map, views the 3D model at full density (mesh, photo colours), clicks twice to measure,
and downloads a printable relief (STL) and a report. Memory is the sum of the PSS of the server's
processes (the server, its image decoder and workers: :func:`tests.harness.processes.group_memory_bytes`),
sampled every 0.2 s; "idle" is the server with its network loaded after one ordinary flow.

Used by ``tests/test_load.py`` (6 sessions, 1 round) and ``benchmarks/heavy_load.py`` (longer runs,
any source tree, e.g. the code before issue 16).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from face3d_core.models.cpu_info import cpu_name
from tests.harness.processes import MemorySampler, group_memory_bytes
from tests.harness.servers import WebServer
from tests.harness.users import HeavyUserSession, Stats, UserSession, run_users

MIB = 2**20


@dataclass
class HeavyLoadReport:
    """What one heavy load run measured (bytes, seconds)."""

    users: int
    rounds: int
    cpu: str
    stats: Stats
    sessions: list[UserSession]
    wall_s: float
    idle: int
    peak: int
    back: int
    back_after_s: float
    #: ``(seconds after the last request, bytes)`` of every sample after it.
    after: list[tuple[float, int]] = field(default_factory=list)

    def table(self, title: str) -> str:
        """A plain-text report: the latencies, then the memory."""
        text = self.stats.table(f"{title}: {self.users} sessions x {self.rounds} round(s) ({self.cpu})")
        text += (
            f"\nwall {self.wall_s:.0f} s; server processes: idle {self.idle / MIB:.0f} MiB, peak "
            f"{self.peak / MIB:.0f} MiB (+{(self.peak - self.idle) / MIB:.0f}), {self.back_after_s:.0f} s after the "
            f"last request {self.back / MIB:.0f} MiB (+{(self.back - self.idle) / MIB:.0f})"
        )
        if self.after:
            horizon = int(self.after[-1][0])
            marks = [next((s, v) for s, v in self.after if s >= t) for t in range(0, horizon + 1, 10)]
            text += "\nafter the last request: " + ", ".join(
                f"{s:.0f} s +{(v - self.idle) / MIB:.0f} MiB" for s, v in marks
            )
        return text

    def to_json(self) -> dict:
        """The figures for a JSON artifact."""
        return {
            "cpu": self.cpu,
            "users": self.users,
            "rounds": self.rounds,
            "wall_s": self.wall_s,
            "idle_bytes": self.idle,
            "peak_bytes": self.peak,
            "back_bytes": self.back,
            "back_after_s": self.back_after_s,
            "after_last_request": [(round(s, 1), v - self.idle) for s, v in self.after],
            "latency": self.stats.summary(),
            "errors": self.stats.errors,
        }


def run_heavy_load(
    server: WebServer,
    photos: list[Path],
    *,
    users: int,
    rounds: int,
    back_above_idle: int,
    back_within_s: float,
    settle_s: float = 0.0,
) -> HeavyLoadReport:
    """Run ``users`` heavy sessions of ``rounds`` flows at once against ``server``; measure its memory.

    After the last request the memory is polled until it is at most ``back_above_idle`` above idle
    (or ``back_within_s`` passed), then sampled on until ``settle_s`` after the last request.
    """
    pgid = server.process.pid
    warm = Stats()
    run_users(server.url, 1, photos, 0, warm, first_user=2000)  # network loaded, code paths warm
    if warm.errors:
        raise AssertionError(f"the warm-up flow failed: {warm.errors}")
    idle = group_memory_bytes(pgid)
    stats = Stats()
    with MemorySampler(pgid) as sampler:
        started = time.monotonic()
        sessions = run_users(server.url, users, photos, 0, stats, max_flows=rounds, session_class=HeavyUserSession)
        ended = time.monotonic()
        deadline = ended + back_within_s
        while group_memory_bytes(pgid) > idle + back_above_idle and time.monotonic() < deadline:
            time.sleep(0.5)  # polled against a deadline (the janitor drops idle results within ~25 s)
        back_after = time.monotonic() - ended
        back = group_memory_bytes(pgid)
        while time.monotonic() < ended + settle_s:
            time.sleep(0.5)
    cpu = f"{cpu_name()}, {len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.1f}"
    return HeavyLoadReport(
        users=users,
        rounds=rounds,
        cpu=cpu,
        stats=stats,
        sessions=sessions,
        wall_s=ended - started,
        idle=idle,
        peak=sampler.peak(started),
        back=back,
        back_after_s=back_after,
        after=[(at - ended, value) for at, value in sampler.samples if at >= ended],
    )
