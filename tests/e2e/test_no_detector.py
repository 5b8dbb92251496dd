"""Offline with no face detector, in headless Chromium: the whole flow works and the page says why.

The server runs ``python -m dashboard`` the way the issue saw it fail: no ``FACE3D_YUNET_PATH``, no
detector anywhere, downloads allowed but the network unreachable (``https_proxy`` points at a closed
port on 127.0.0.1, so the detector download fails at once like on a machine without internet), an
empty ``HOME`` (fresh ``~/.cache``) and the MiDaS checkpoint in ``FACE3D_WEIGHTS_DIR``.

Uploads succeed and say that the whole photo will be used; depth and 3D run full frame; Compare says
in plain words that it needs the detector. No page shows a server path or a raw error, the details
are in the server log once, and every tab passes the same layout checks as with a detector.
Screenshots: ``test-artifacts/e2e/no-detector/``.
"""

from __future__ import annotations

import socket

import pytest

from face3d_core.faces import REASON_NOT_INSTALLED, packaged_yunet_path
from tests.e2e.conftest import ConsoleLog
from tests.e2e.flow import TABS, full_flow, measure_layout, open_tab, screenshot
from tests.harness.page_text import internal_leaks
from tests.harness.paths import FILL_PY, require
from tests.harness.processes import child_env
from tests.harness.servers import WebServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PHOTOS = ["fr_obama_official_portrait.jpg", "skimage_astronaut.png"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory, fill_weights):
    """The dashboard with no detector, an unreachable network and an empty home folder."""
    require(FILL_PY)
    if packaged_yunet_path().is_file():
        pytest.skip(f"a face detector is installed in {packaged_yunet_path().parent} (make vendor-detector)")
    root = tmp_path_factory.mktemp("no-detector")
    home = root / "home"
    home.mkdir()
    dead = f"http://127.0.0.1:{_closed_port()}"
    env = child_env(FACE3D_WEIGHTS_DIR=str(fill_weights), HOME=str(home))
    for name in ("FACE3D_YUNET_PATH", "FACE3D_OFFLINE", "FACE3D_CACHE_DIR", "XDG_CACHE_HOME"):
        env.pop(name, None)
    env.update(https_proxy=dead, http_proxy=dead, HTTPS_PROXY=dead, HTTP_PROXY=dead, no_proxy="", NO_PROXY="")
    server = WebServer.dashboard(env, root / "server.log", start_timeout=90.0)
    server.home = home
    server.weights = fill_weights
    try:
        yield server.start()
    finally:
        server.stop()


def test_the_whole_flow_works_without_a_detector(browser, bare_server, e2e_faces, artifacts_dir):
    folder = artifacts_dir / "no-detector"
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    console = ConsoleLog()
    console.attach(page)
    problems, texts = [], []
    try:
        page.goto(bare_server.url)
        full_flow(page, [e2e_faces / name for name in PHOTOS], compare_alert=True)
        alert = page.locator("#alerts .alert").inner_text()
        assert "Faces cannot be compared" in alert and "face detection is unavailable" in alert
        assert "administrator" in alert
        screenshot(page, folder, "4_compare_alert")
        texts.append(alert)

        open_tab(page, "upload")
        cards = page.locator(".face3d-gallery-card")
        assert cards.count() == 2
        for i in range(2):
            text = cards.nth(i).inner_text()
            assert "Face detection unavailable: the whole photo will be used." in text
            assert f"Why: {REASON_NOT_INSTALLED}." in text
        assert page.locator(".face3d-box").count() == 0  # no face boxes to click
        messages = page.inner_text("#upload-messages")
        assert "Added 2 photos" in messages and messages.count("Face detection unavailable") == 1

        for number, name in enumerate(TABS, start=1):
            open_tab(page, name)
            if name == "depth":
                page.wait_for_selector("#depth-results:not([hidden])")
                assert "whole photo" in page.inner_text("#depth-caption")
            if name == "model3d":
                page.wait_for_selector("#model3d-results:not([hidden]) .gl-container canvas")
            measured = measure_layout(page)
            problems += [f"{name}: {p}" for p in measured["problems"]]
            texts.append(page.inner_text("body"))
            screenshot(page, folder, f"{number}_{name}")
        html = page.content()
    finally:
        context.close()
    assert not console.errors, console.errors
    assert not problems, "\n".join(problems)
    for text in texts:
        assert internal_leaks(text) == [], internal_leaks(text)
    for secret in (str(bare_server.home), str(bare_server.weights), "urlopen", "Connection refused"):
        assert secret not in html
    log = bare_server.log_text()
    warnings = [line for line in log.splitlines() if "Face detection unavailable" in line]
    assert len(warnings) == 1, warnings  # the details once in the log, not once per upload
    assert "urlopen error" in warnings[0] and "face_detection_yunet_2026may.onnx" in warnings[0]
    assert not (bare_server.home / ".cache" / "face3d" / "weights" / "face_detection_yunet_2026may.onnx").exists()
