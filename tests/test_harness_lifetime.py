"""A test run that is stopped leaves nothing behind.

A child pytest run starts what the suite starts (a real ``python -m dashboard``, a server-like
process with a worker of its own as gunicorn and Celery have, and headless Chromium where present)
through the harness, then it is stopped from outside the way CI and ``timeout make test`` stop a
run (SIGTERM to the test process), or killed outright (SIGKILL: no handler can run). Every process
of that run is found by a marker in its environment; none may be left afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.harness.paths import REPO_ROOT

CHILD_TEST = '''
import os
import time
from pathlib import Path

from tests.harness.processes import PYTHON, ManagedProcess, child_env
from tests.harness.servers import WebServer

SERVER_WITH_A_WORKER = """
import signal, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
def stop(*_):
    worker.terminate()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
time.sleep(600)
"""


def test_start_everything_then_wait():
    root = Path(os.environ["LIFETIME_DIR"])
    WebServer.dashboard(child_env(FACE3D_CACHE_DIR=str(root / "cache")), root / "dashboard.log").launch()
    ManagedProcess([PYTHON, "-c", SERVER_WITH_A_WORKER], dict(os.environ), root / "server.log").start()
    if os.environ.get("LIFETIME_BROWSER"):
        from playwright.sync_api import sync_playwright

        browser = sync_playwright().start().chromium.launch(
            executable_path=os.environ["LIFETIME_BROWSER"], args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        browser.new_page().goto("about:blank")
    (root / "ready").write_text("started")
    time.sleep(600)  # the run under test waits here until it is stopped from outside
'''

CHROMIUM = os.environ.get("FACE3D_CHROMIUM", "/usr/bin/chromium")


def _marked_processes(mark: bytes) -> list[str]:
    """Command lines of the live processes whose environment carries ``mark``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark not in Path(f"/proc/{entry.name}/environ").read_bytes():
                continue
            state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                found.append(Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
        except (OSError, IndexError):
            continue
    return found


def _wait_for(condition, timeout_s: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_run_leaves_no_process_behind(tmp_path, stop_signal):
    if os.geteuid() != 0 and not os.access("/proc/1/environ", os.R_OK):
        pytest.skip("needs to read other processes' environments")
    mark = f"FACE3D_LIFETIME_MARK={uuid.uuid4().hex}"
    (tmp_path / "test_child_run.py").write_text(CHILD_TEST)
    env = dict(
        os.environ,
        FACE3D_LIFETIME_MARK=mark.split("=", 1)[1],
        LIFETIME_DIR=str(tmp_path),
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    if Path(CHROMIUM).is_file():
        env["LIFETIME_BROWSER"] = CHROMIUM
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest"]
    argv += ["-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path / "test_child_run.py")]
    run = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: (tmp_path / "ready").exists() or run.poll() is not None, 120)
        assert run.poll() is None, "the child run ended before it was stopped"
        started = _marked_processes(mark.encode())
        assert len(started) >= 4, started  # pytest, the dashboard, the server and its worker (+ the browser)
        os.kill(run.pid, stop_signal)
        run.wait(timeout=60)
        assert _wait_for(lambda: not _marked_processes(mark.encode()), 30, 0.2), _marked_processes(mark.encode())
    finally:
        if run.poll() is None:
            run.kill()
