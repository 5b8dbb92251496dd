"""Fixtures of the real-browser tests: a dashboard server in a subprocess and headless Chromium.

The server (:class:`tests.harness.servers.WebServer`) runs ``python -m dashboard`` with a temporary
``FACE3D_CACHE_DIR``, a ``FACE3D_WEIGHTS_DIR`` holding a ``midas_v21_small_256.pt`` made by
``fill.py`` (the real network code runs; no download) and ``FACE3D_OFFLINE=1``. Chromium is
Debian's ``/usr/bin/chromium`` driven by Playwright (never ``playwright install``). Everything skips
cleanly when Chromium, Playwright or ``../shared`` is missing.

Screenshots go to ``$FACE3D_E2E_ARTIFACTS`` or ``test-artifacts/e2e`` in the repository.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.harness.page_waits import RequestTrackingBrowser
from tests.harness.paths import FACES_DIR, FILL_PY, REPO_ROOT, YUNET_PATH, require
from tests.harness.processes import cache_sharing_compiled_models, child_env
from tests.harness.servers import WebServer

CHROMIUM = os.environ.get("FACE3D_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-gl=swiftshader",
    "--enable-unsafe-swiftshader",
]


@contextmanager
def own_dashboard(tmp_path_factory, name: str, fill_weights: Path) -> Iterator[WebServer]:
    """A running ``python -m dashboard`` with a cache folder of its own (``<tmp>/<name>N/cache``); stopped on exit."""
    require(FILL_PY, YUNET_PATH)
    root = tmp_path_factory.mktemp(name)
    cache = cache_sharing_compiled_models(root / "cache", tmp_path_factory)
    env = child_env(FACE3D_CACHE_DIR=str(cache), FACE3D_WEIGHTS_DIR=str(fill_weights))
    server = WebServer.dashboard(env, root / "server.log", start_timeout=90.0)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    folder = Path(os.environ.get("FACE3D_E2E_ARTIFACTS", REPO_ROOT / "test-artifacts" / "e2e"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def e2e_faces() -> Path:
    require(FACES_DIR)
    return FACES_DIR


@pytest.fixture(scope="session")
def dashboard_server(tmp_path_factory, e2e_faces, fill_weights):
    """``python -m dashboard`` on a free port (restartable on the same port and cache)."""
    require(FILL_PY, YUNET_PATH)
    try:
        import face3d_core.models.midas_small  # noqa: F401
    except ImportError:
        pytest.skip("the MiDaS small network is not available")
    with own_dashboard(tmp_path_factory, "e2e", fill_weights) as server:
        yield server


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory, e2e_faces, fill_weights):
    """A second ``python -m dashboard`` with its own cache, for the layout and keyboard tests.

    Its own cache keeps ``test_browser.py``'s assumptions (a depth map is computed, not served from
    the cache) whatever runs first.
    """
    with own_dashboard(tmp_path_factory, "e2e-ui", fill_weights) as server:
        yield server


@pytest.fixture(scope="session")
def playwright_driver():
    """The session's one Playwright driver: a second sync driver cannot start while one runs."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_driver):
    """Headless Chromium; its contexts count the page's requests in flight (``tests.harness.page_waits``)."""
    instance = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield RequestTrackingBrowser(instance)
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
