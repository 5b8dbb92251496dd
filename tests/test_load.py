"""Load test: many simulated users drive the running dashboard over HTTP at the same time.

The app runs as ``python -m dashboard`` in a subprocess on a free 127.0.0.1 port, with a
temporary cache, ``FACE3D_OFFLINE=1`` and a real ``midas_v21_small_256`` checkpoint made by
``../shared/reference/fill.py`` (so the real network code runs, no download). Each simulated
user has its own HTTP connection and repeatedly uploads a photo unique to it (one of the 20
faces in ``../shared/data/faces`` with a small user-specific mark), starts the depth job, polls
it like the page does (every 500 ms), views the depth map and the 3D model, moves a slider and
fetches the thumbnail.

Asserted: no request failed, no alert was shown, no server-side unexpected error was logged,
every user got their own results (the upload store, the job's result and the captions name
that user's photo), the server is still up. Reported, not asserted: requests served and the
p50/p95 latency per request kind.

Knobs: ``FACE3D_LOAD_USERS`` (default 8), ``FACE3D_LOAD_SECONDS`` (default 8); docs/reliability.md's figures are
from 20 users for 30 s (``FACE3D_LOAD_USERS=20 FACE3D_LOAD_SECONDS=30``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import requests

from face3d_core.models.cpu_info import cpu_name
from tests.harness.paths import FILL_PY, MODEL, RELIABILITY_ARTIFACTS, YUNET_PATH, face_photos, require
from tests.harness.processes import cache_sharing_compiled_models, child_env
from tests.harness.servers import WebServer
from tests.harness.users import Stats, run_users

pytestmark = [pytest.mark.slow, pytest.mark.system]

USERS = int(os.environ.get("FACE3D_LOAD_USERS", "8"))
SECONDS = float(os.environ.get("FACE3D_LOAD_SECONDS", "8"))


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    require(YUNET_PATH, FILL_PY)
    found = face_photos()
    assert len(found) >= 10
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory, photos, fill_weights):
    root = tmp_path_factory.mktemp("load")
    cache = cache_sharing_compiled_models(root / "cache", tmp_path_factory)
    env = child_env(FACE3D_CACHE_DIR=str(cache), FACE3D_WEIGHTS_DIR=str(fill_weights))
    web = WebServer.dashboard(env, root / "server.log")
    try:
        yield web.start()
    finally:
        web.stop()


def test_concurrent_users_get_their_own_results_without_errors(server, photos, capsys):
    url = server.url
    warm = Stats()  # a server that has been up a while: network loaded, code paths warm
    run_users(url, 1, photos, 0, warm, first_user=1000)
    assert not warm.errors, warm.errors
    stats = Stats()
    started = time.perf_counter()
    sessions = run_users(url, USERS, photos, SECONDS, stats)
    elapsed = time.perf_counter() - started

    served = stats.requests
    summary = stats.summary()
    peak_rss = server.peak_rss_bytes()
    cpu = f"{cpu_name()} ({len(os.sched_getaffinity(0))} CPUs)"
    table = stats.table(f"LOAD: {USERS} users for {SECONDS:.0f} s against python -m dashboard ({MODEL}, {cpu})")
    table += f"\nwall {elapsed:.0f} s (flows started before the deadline run to their end)"
    if peak_rss:
        table += f", server peak RSS {peak_rss / 2**20:.0f} MiB"
    report = {
        "cpu": cpu,
        "users": USERS,
        "seconds": SECONDS,
        "requests": served,
        "errors": stats.errors,
        "flows": stats.flows,
        "jobs": stats.jobs,
        "cache_hits": stats.cache_hits,
        "wall_s": elapsed,
        "latency": summary,
        "depth_wait_s": sorted(stats.depth_waits),
        "server_peak_rss_bytes": peak_rss,
    }
    RELIABILITY_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (RELIABILITY_ARTIFACTS / "load.json").write_text(json.dumps(report, indent=2))
    with capsys.disabled():
        print("\n" + table)

    assert not stats.errors, "errors under load:\n" + "\n".join(stats.errors[:20])
    assert served > 0 and stats.flows >= USERS, f"only {stats.flows} complete flows for {USERS} users"
    # No cross-talk: every user finished at least one flow, and each user's photos are theirs only.
    owners: dict[str, int] = {}
    for session in sessions:
        assert session.results, f"user {session.user} completed no flow"
        for record in session.results:
            assert record["result"]["sha"] == record["sha"]
            assert owners.setdefault(record["sha"], session.user) == session.user, "two users got the same photo"
    # The server survived, and logged no unexpected error.
    assert server.alive()
    assert requests.get(url + "face3d/health", timeout=10).json() == {"status": "ok"}
    log = server.log_text()
    assert "Unexpected error" not in log and "Traceback" not in log, log[-3000:]


HEAVY_USERS = int(os.environ.get("FACE3D_HEAVY_LOAD_USERS", "6"))
HEAVY_ROUNDS = int(os.environ.get("FACE3D_HEAVY_LOAD_ROUNDS", "1"))
#: Most the server's processes may hold above idle during the heavy flows, and shortly after them.
HEAVY_PEAK_ABOVE_IDLE = 1.5 * 2**30
BACK_ABOVE_IDLE = 300 * 2**20
BACK_WITHIN_S = 60.0


def test_concurrent_heavy_use_is_bounded_and_memory_goes_back(tmp_path, tmp_path_factory, photos, fill_weights, capsys):
    """Issue 16: 6 sessions at once do upload, depth, 3D at full density, 2 clicks, a relief STL and a report.

    Before: +2.75 GB over a 520 MB idle at the peak, and 2.3-2.9 GB kept afterwards (the issue's
    report). See :mod:`tests.harness.heavy_load` for what is measured; ``benchmarks/heavy_load.py``
    runs it longer, or against another source tree.
    """
    from tests.harness.heavy_load import run_heavy_load

    cache = cache_sharing_compiled_models(tmp_path / "cache", tmp_path_factory)
    env = child_env(FACE3D_CACHE_DIR=str(cache), FACE3D_WEIGHTS_DIR=str(fill_weights))
    server = WebServer.dashboard(env, tmp_path / "server.log").start()
    try:
        report = run_heavy_load(
            server,
            photos,
            users=HEAVY_USERS,
            rounds=HEAVY_ROUNDS,
            back_above_idle=BACK_ABOVE_IDLE,
            back_within_s=BACK_WITHIN_S,
        )
        log = server.log_text()
    finally:
        server.stop()
    table = report.table("HEAVY LOAD, python -m dashboard")
    RELIABILITY_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (RELIABILITY_ARTIFACTS / "heavy_load.json").write_text(json.dumps(report.to_json(), indent=2))
    with capsys.disabled():
        print("\n" + table)
    assert not report.stats.errors, "errors under heavy load:\n" + "\n".join(report.stats.errors[:20])
    assert all(session.results for session in report.sessions), "a session completed no flow"
    assert "Unexpected error" not in log and "Traceback" not in log, log[-3000:]
    assert report.peak - report.idle <= HEAVY_PEAK_ABOVE_IDLE, table
    assert report.back - report.idle <= BACK_ABOVE_IDLE, table
