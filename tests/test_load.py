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

Knobs: ``FACE3D_LOAD_USERS`` (default 20), ``FACE3D_LOAD_SECONDS`` (default 30).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import requests

from tests.face3d_http import (
    FACES_DIR,
    FILL_PY,
    MODEL,
    REPO_ROOT,
    YUNET_PATH,
    ManagedProcess,
    Stats,
    base_env,
    free_port,
    python_exe,
    run_users,
    vm_hwm_bytes,
    wait_for_http,
)

pytestmark = pytest.mark.slow

USERS = int(os.environ.get("FACE3D_LOAD_USERS", "20"))
SECONDS = float(os.environ.get("FACE3D_LOAD_SECONDS", "30"))
ARTIFACTS = Path(os.environ.get("FACE3D_RELIABILITY_ARTIFACTS", REPO_ROOT / "test-artifacts" / "reliability"))


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    if not FACES_DIR.is_dir() or not YUNET_PATH.is_file() or not FILL_PY.is_file():
        pytest.skip("../shared (faces, YuNet, reference/fill.py) is absent")
    found = sorted(p for p in FACES_DIR.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert len(found) >= 10
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory, photos):
    from tests.doubles import write_fill_checkpoint

    root = tmp_path_factory.mktemp("load")
    write_fill_checkpoint(root / "weights", FILL_PY, MODEL)
    port = free_port()
    env = base_env(FACE3D_CACHE_DIR=str(root / "cache"), FACE3D_WEIGHTS_DIR=str(root / "weights"))
    process = ManagedProcess(
        [python_exe(), "-m", "dashboard", "--host", "127.0.0.1", "--port", str(port)], env, root / "server.log"
    )
    process.start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/face3d/health", process)
        yield process, f"http://127.0.0.1:{port}/"
    finally:
        process.stop()


def test_concurrent_users_get_their_own_results_without_errors(server, photos, capsys):
    process, url = server
    warm = Stats()  # a server that has been up a while: network loaded, code paths warm
    run_users(url, 1, photos, 0, warm, first_user=1000)
    assert not warm.errors, warm.errors
    stats = Stats()
    started = time.perf_counter()
    sessions = run_users(url, USERS, photos, SECONDS, stats)
    elapsed = time.perf_counter() - started

    served = stats.requests
    summary = stats.summary()
    peak_rss = vm_hwm_bytes(process.pid)
    table = stats.table(f"LOAD: {USERS} users for {SECONDS:.0f} s against python -m dashboard ({MODEL}, CPU)")
    table += f"\nwall {elapsed:.0f} s (flows started before the deadline run to their end)"
    if peak_rss:
        table += f", server peak RSS {peak_rss / 2**20:.0f} MiB"
    report = {
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
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "load.json").write_text(json.dumps(report, indent=2))
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
    assert process.alive()
    assert requests.get(url + "face3d/health", timeout=10).json() == {"status": "ok"}
    log = process.log_text()
    assert "Unexpected error" not in log and "Traceback" not in log, log[-3000:]
