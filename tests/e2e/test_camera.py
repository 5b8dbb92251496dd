"""The camera in a real browser: Chromium plays a face photo (a y4m written at test time) as its webcam.

One Chromium of this module's own (the fake camera needs launch flags) against the session's
dashboard server (the real network with ``fill.py`` weights):

* capture adds one photo to the gallery (named ``camera YYYY-MM-DD HH.MM.SS.jpg``) that goes on to
  a depth map and a 3D model like any upload;
* live depth draws frames, nothing of the stream reaches the cache folder or the server's log, and
  it stops when the toggle is turned off or the tab changes (the camera's tracks end);
* the preview, the capture button and the live view fit a phone screen (390 x 844);
* a refused camera and a plain-http page from another host say so in one sentence, with what to do.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ConsoleLog
from tests.e2e.flow import NETWORK_TIMEOUT_MS, measure_now, open_tab, screenshot
from tests.harness.browser_speed import wait_for_warm_server
from tests.harness.fake_camera import (
    INSECURE_HOST,
    INSECURE_HOST_RULE,
    fake_camera_args,
    stored_files,
    write_y4m,
)
from tests.harness.paths import PORTRAIT_PHOTO, require

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FRAMES = "() => +document.getElementById('live-depth').getAttribute('data-frames')"
PHOTO_NAME = re.compile(r"^camera \d{4}-\d\d-\d\d \d\d\.\d\d\.\d\d\.jpg$")


@pytest.fixture(scope="module")
def camera_browser(tmp_path_factory, e2e_faces, playwright_driver):
    """Headless Chromium whose camera shows a face photo, and which maps :data:`INSECURE_HOST` to 127.0.0.1."""
    require(PORTRAIT_PHOTO)
    video = write_y4m(PORTRAIT_PHOTO, tmp_path_factory.mktemp("camera") / "camera.y4m")
    args = [*CHROMIUM_ARGS, *fake_camera_args(video), INSECURE_HOST_RULE]
    instance = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
    yield instance
    instance.close()


def _page(browser, url: str, *, camera: bool = True):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, permissions=["camera"] if camera else [])
    page = context.new_page()
    page.face3d_console = ConsoleLog()
    page.face3d_console.attach(page)
    page.goto(url)
    page.wait_for_selector("#camera-start")
    return page


def _wait_frames(page, at_least: int) -> None:
    page.wait_for_function(f"() => ({FRAMES})() >= {at_least}", timeout=NETWORK_TIMEOUT_MS)


def test_camera_photo_and_live_depth(camera_browser, dashboard_server, artifacts_dir):
    wait_for_warm_server(dashboard_server.url)
    page = _page(camera_browser, dashboard_server.url)
    try:
        page.click("#camera-start")
        page.wait_for_function(
            "() => window.face3dCamera.active() && document.getElementById('camera-video').videoWidth > 0"
        )
        assert page.is_visible("#camera-panel")
        page.click("#live-start")
        assert page.get_attribute("#live-start", "aria-pressed") == "true"
        _wait_frames(page, 3)
        # nothing of the stream lands in the cache folder or the log while frames go on
        cache = _cache_dir(dashboard_server)
        files_before = stored_files(cache)
        log_before = len(dashboard_server.log_text())
        _wait_frames(page, page.evaluate(FRAMES) + 6)
        assert stored_files(cache) == files_before, "a live frame changed the cache folder"
        assert "live/frame" not in dashboard_server.log_text()[log_before:]
        assert page.is_visible("#camera-crop-box"), "the face crop is shown on the preview"
        assert not measure_now(page)["problems"]
        screenshot(page, artifacts_dir, "camera-live-1440")
        _fits_a_phone(page, artifacts_dir)

        # toggle off: no frame is drawn after it, while a photo is taken and stored
        page.click("#live-start")
        stopped_at = page.evaluate(FRAMES)
        page.click("#camera-capture")
        page.wait_for_function("document.querySelectorAll('.face3d-gallery-card').length === 1", timeout=60_000)
        name = page.inner_text(".face3d-gallery-card .fw-semibold")
        assert PHOTO_NAME.match(name), name
        assert "1 face" in page.inner_text(".face3d-gallery-card")
        assert page.evaluate(FRAMES) == stopped_at, "live depth went on after the toggle was turned off"

        # leaving the tab stops the camera; the captured photo goes on to depth and 3D like any upload
        page.click("#live-start")
        _wait_frames(page, stopped_at + 1)
        open_tab(page, "depth")
        page.wait_for_function(
            "() => !window.face3dCamera.active() && !window.face3dCamera.live() && "
            "window.face3dCamera.trackStates().length > 0 && "
            "window.face3dCamera.trackStates().every(s => s === 'ended')"
        )
        page.click("#depth-generate")
        page.wait_for_selector("#depth-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
        open_tab(page, "model3d")
        page.click("#model3d-generate")
        page.wait_for_selector("#model3d-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
        open_tab(page, "upload")
        assert page.is_hidden("#camera-panel"), "the camera is closed after leaving the tab"
        assert not [e for e in page.face3d_console.errors if e.startswith("pageerror")]
    finally:
        page.context.close()


def _cache_dir(server) -> Path:
    """The dashboard server's cache folder (``FACE3D_CACHE_DIR`` of its environment)."""
    return Path(server.process.env["FACE3D_CACHE_DIR"])


def _fits_a_phone(page, artifacts_dir: Path) -> None:
    """At 390 x 844 the preview, the live depth beside it and the capture button fit one screen."""
    page.set_viewport_size({"width": 390, "height": 844})
    page.evaluate("document.getElementById('camera-panel').scrollIntoView({block: 'start'})")
    boxes = page.evaluate(
        """() => Object.fromEntries(['camera-video', 'live-depth', 'camera-capture', 'live-start'].map(id => {
             const b = document.getElementById(id).getBoundingClientRect();
             return [id, [b.left, b.top, b.right, b.bottom]];
           }))"""
    )
    for element, (left, _top, right, bottom) in boxes.items():
        assert left >= 0 and right <= 390, (element, boxes)
        assert bottom - boxes["camera-video"][1] <= 844, (element, boxes)
    assert boxes["live-depth"][0] >= boxes["camera-video"][2] - 1, "the depth is beside the preview"
    assert boxes["camera-capture"][3] - boxes["camera-capture"][1] >= 44, "a touch-sized capture button"
    assert not measure_now(page)["problems"]
    screenshot(page, artifacts_dir, "camera-live-390")
    page.set_viewport_size({"width": 1440, "height": 900})


def test_camera_refused_or_insecure_says_what_to_do(camera_browser, dashboard_server):
    page = _page(camera_browser, dashboard_server.url, camera=False)
    try:
        page.click("#camera-start")
        page.wait_for_function("() => document.getElementById('camera-message').textContent.includes('blocked')")
        message = page.inner_text("#camera-message")
        assert "allow it" in message and message.count(".") == 1, message
        assert page.is_hidden("#camera-panel")
        # plain http from another host name: no camera API at all
        page.goto(dashboard_server.url.replace("127.0.0.1", INSECURE_HOST))
        page.wait_for_selector("#camera-start")
        assert page.evaluate("() => window.isSecureContext") is False
        page.click("#camera-start")
        page.wait_for_function("() => document.getElementById('camera-message').textContent.includes('HTTPS')")
        message = page.inner_text("#camera-message")
        assert "localhost" in message and message.count(".") == 1, message
        assert page.is_visible("#upload"), "the rest of the page is unaffected"
        assert not [e for e in page.face3d_console.errors if e.startswith("pageerror")]
    finally:
        page.context.close()
