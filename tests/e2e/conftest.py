"""Fixtures of the real-browser tests: a dashboard server in a subprocess and headless Chromium.

The server runs ``python -m dashboard`` with a temporary ``FACE3D_CACHE_DIR``, a temporary
``FACE3D_WEIGHTS_DIR`` holding a ``midas_v21_small_256.pt`` made by ``fill.py`` (the real network
code runs; no download) and ``FACE3D_OFFLINE=1``. Chromium is Debian's ``/usr/bin/chromium``
driven by Playwright (never ``playwright install``). Everything skips cleanly when Chromium,
Playwright or ``../shared`` is missing.

Screenshots go to ``$FACE3D_E2E_ARTIFACTS`` or ``test-artifacts/e2e`` in the repository.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("FACE3D_SHARED_DIR", REPO_ROOT.parent / "shared"))
FACES_DIR = SHARED_DIR / "data" / "faces"
YUNET_PATH = SHARED_DIR / "models" / "face_detection_yunet.onnx"

CHROMIUM = os.environ.get("FACE3D_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-gl=swiftshader",
    "--enable-unsafe-swiftshader",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    folder = Path(os.environ.get("FACE3D_E2E_ARTIFACTS", REPO_ROOT / "test-artifacts" / "e2e"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def e2e_faces() -> Path:
    if not FACES_DIR.is_dir():
        pytest.skip(f"{FACES_DIR} is absent (../shared not available)")
    return FACES_DIR


class DashboardServer:
    """A ``python -m dashboard`` subprocess that can be restarted on the same port and cache."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path):
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the dashboard exited early; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "face3d/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"the dashboard did not start within {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def dashboard_server(tmp_path_factory, e2e_faces):
    fill_py = SHARED_DIR / "reference" / "fill.py"
    if not fill_py.is_file() or not YUNET_PATH.is_file():
        pytest.skip("../shared/reference/fill.py or the YuNet model is absent")
    try:
        import face3d_core.models.midas_small  # noqa: F401
    except ImportError:
        pytest.skip("the MiDaS small network is not available")
    from tests.doubles import write_fill_checkpoint

    root = tmp_path_factory.mktemp("e2e")
    weights = root / "weights"
    write_fill_checkpoint(weights, fill_py)
    env = dict(os.environ)
    env.update(
        FACE3D_CACHE_DIR=str(root / "cache"),
        FACE3D_WEIGHTS_DIR=str(weights),
        FACE3D_OFFLINE="1",
        FACE3D_YUNET_PATH=str(YUNET_PATH),
        PYTHONUNBUFFERED="1",
    )
    server = DashboardServer(env, _free_port(), root / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


class ConsoleLog:
    """Browser console errors and uncaught page errors."""

    def __init__(self):
        self.errors: list[str] = []

    def attach(self, page) -> None:
        page.on(
            "console",
            lambda msg: self.errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))


@pytest.fixture(scope="module")
def page(browser, dashboard_server):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    console = ConsoleLog()
    console.attach(tab)
    tab.face3d_console = console
    tab.goto(dashboard_server.url)
    yield tab
    context.close()


@pytest.fixture()
def no_console_errors(page, dashboard_server):
    """Fail the test if the browser logged an error while it ran."""
    start = len(page.face3d_console.errors)
    yield
    new = page.face3d_console.errors[start:]
    assert not new, (
        "browser console errors:\n"
        + "\n".join(new)
        + "\n--- server log tail ---\n"
        + dashboard_server.log_text()[-3000:]
    )


@pytest.fixture(scope="session")
def oversized_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "huge_photo.jpg"
    with open(path, "wb") as handle:
        handle.write(b"\xff\xd8\xff")
        handle.truncate(26 * 1024 * 1024)
    return path


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("txt") / "notes.txt"
    path.write_text("not a photo")
    return path
