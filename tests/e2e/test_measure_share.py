"""End-to-end in headless Chromium: click to measure on the 3D view, and the report file offline.

The app runs with a stand-in network that returns the true depth of two photos rendered from
a head scan (``fake_network_server --scene``; the photos carry an EXIF focal length), so the
face has a real shape without network weights. The tests run in file order on one page.
Timings (click to drawn) are written to ``<artifacts>/click_to_measure.json``.
"""

from __future__ import annotations

import io
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.e2e.conftest import ConsoleLog
from tests.harness.page_waits import next_frames, settle
from tests.harness.processes import child_env
from tests.harness.servers import WebServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

GRAPH = "document.querySelector('#model3d-graph .js-plotly-plot')"
STATUS = "document.querySelector('#model3d-measure-status').innerText"


@pytest.fixture(scope="module")
def scene_server(tmp_path_factory, scene_photos, fill_weights):
    root = tmp_path_factory.mktemp("e2e-measure")
    env = child_env(FACE3D_WEIGHTS_DIR=str(fill_weights))  # the picker shows ready weights; the stand-in runs
    server = WebServer.fake_network(env, root / "server.log", cache_dir=root / "cache", scenes=scene_photos)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(browser, scene_server):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    tab.face3d_console = ConsoleLog()
    tab.face3d_console.attach(tab)
    tab.goto(scene_server.url)
    yield tab
    context.close()


@pytest.fixture(autouse=True)
def no_console_errors(page, scene_server):
    start = len(page.face3d_console.errors)
    yield
    new = page.face3d_console.errors[start:]
    assert not new, "browser console errors:\n" + "\n".join(new) + "\n" + scene_server.log_text()[-3000:]


def plot_box(page) -> tuple[float, float]:
    """The centre of the 3D view on the screen (the page scrolled to the top, where the view is)."""
    page.evaluate("window.scrollTo(0, 0)")
    next_frames(page, 2)
    box = page.locator("#model3d-graph .js-plotly-plot").first.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def click_on_view(page, x: float, y: float) -> None:
    """A user's click: the pointer rests, the button goes down and comes up (about 150 ms)."""
    page.mouse.move(x - 6, y - 6)
    page.mouse.move(x, y, steps=4)
    next_frames(page, 2)  # the 3D scene picks the point under the pointer when it draws
    page.mouse.down()
    next_frames(page, 2)
    page.evaluate("window.face3dTestUp = performance.now()")
    page.mouse.up()


def measure_once(page, first: tuple[float, float], second: tuple[float, float]) -> dict:
    """Click two points; return the timings (ms from the second button release) and the status."""
    click_on_view(page, *first)
    page.wait_for_function(f"{STATUS}.startsWith('Point 1 picked')", timeout=30_000)
    assert page.inner_text("#model3d-measure-status") == "Point 1 picked, click a second point."
    click_on_view(page, *second)
    answered = page.wait_for_function(
        f"{STATUS}.includes('along the surface') ? performance.now() - window.face3dTestUp : false", timeout=30_000
    ).json_value()
    drawn = page.wait_for_function(
        f"""{GRAPH}.data[3].x.length > 2 ? new Promise(done => requestAnimationFrame(() => requestAnimationFrame(
            () => done(performance.now() - window.face3dTestUp)))) : false""",
        timeout=30_000,
    ).json_value()
    return {"status_ms": answered, "drawn_ms": drawn, "status": page.inner_text("#model3d-measure-status")}


def test_click_two_points_after_rotating(page, scene_photos, artifacts_dir):
    # one at a time: the browser reads files chosen together in parallel, and the gallery's order (the
    # 3D tab shows the first photo) would be the order they finished in
    for count, (photo, _) in enumerate(scene_photos, start=1):
        page.set_input_files("#upload input[type=file]", [str(photo)])
        page.wait_for_function(f"document.querySelectorAll('.face3d-gallery-card').length === {count}", timeout=60_000)
    page.get_by_text("3 · 3D model", exact=True).click()
    page.click("#model3d-generate")
    page.wait_for_selector("#model3d-results:not([hidden])", timeout=120_000)
    page.wait_for_function(f"{GRAPH} && {GRAPH}.data.length === 4", timeout=60_000)
    assert "FOV 40° from EXIF (35 mm equivalent 37 mm)" in page.inner_text("#model3d-stats")
    assert "scale reference" in page.inner_text("#model3d-measure-table")
    settle(page)

    # the user turns the face a little: that drag must not pick a point
    cx, cy = plot_box(page)
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 70, cy + 15, steps=10)
    page.mouse.up()
    settle(page)
    assert page.inner_text("#model3d-measure-status").startswith("Click a point")
    camera = page.evaluate(f"{GRAPH}._fullLayout.scene.camera.eye")

    timings = []
    for k in range(5):
        result = measure_once(page, (cx - 30 + 8 * k, cy - 45), (cx + 25, cy + 50 - 8 * k))
        straight = float(result["status"].split("Straight line ")[1].split(" mm")[0])
        surface = float(result["status"].split("along the surface ")[1].split(" mm")[0])
        assert 20 < straight <= surface < 2 * straight
        timings.append(result)
    # the camera stayed where the user turned it, and the model was never resent
    eye = page.evaluate(f"{GRAPH}._fullLayout.scene.camera.eye")
    assert all(eye[a] == pytest.approx(camera[a], abs=1e-6) for a in "xyz")
    assert page.evaluate(f"{GRAPH}.data[1].x.length") == 2

    # turning the view keeps the measurement drawn
    page.mouse.move(cx, cy + 150)
    page.mouse.down()
    page.mouse.move(cx - 60, cy + 150, steps=8)
    page.mouse.up()
    settle(page)
    assert page.evaluate(f"{GRAPH}.data[3].x.length") > 2
    page.screenshot(path=str(artifacts_dir / "measure_points.png"))

    # on the mesh with photo colours too (plotly names the clicked triangle there)
    page.get_by_label("Mesh").check()
    page.get_by_label("Photo", exact=True).check()
    page.wait_for_function(f"{GRAPH}.data[0].type === 'mesh3d' && {GRAPH}.data[3].x.length === 0", timeout=60_000)
    settle(page)
    cx, cy = plot_box(page)
    result = measure_once(page, (cx - 20, cy - 30), (cx + 25, cy + 30))
    assert "along the surface" in result["status"]
    timings.append(result)
    page.click("#model3d-measure-clear")
    page.wait_for_function(f"{GRAPH}.data[3].x.length === 0 && {GRAPH}.data[1].x.length === 0", timeout=20_000)
    assert page.inner_text("#model3d-measure-status").startswith("Click a point")

    drawn = [t["drawn_ms"] for t in timings]
    report = {
        "what": "second click (button up) to path drawn, headless Chromium + SwiftShader (CPU WebGL)",
        "status_ms": [round(t["status_ms"]) for t in timings],
        "drawn_ms": [round(v) for v in drawn],
        "drawn_median_ms": round(statistics.median(drawn)),
    }
    (artifacts_dir / "click_to_measure.json").write_text(json.dumps(report, indent=2))
    print("click to measure:", report)


def _plotted_pixels(png: bytes, background=(0x20, 0x24, 0x2B)) -> float:
    """Fraction of a 3D plot's pixels that are neither the scene background nor white."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    far_bg = np.abs(rgb - np.array(background)).sum(axis=2) > 30
    not_white = rgb.sum(axis=2) < 740
    return float((far_bg & not_white).mean())


def open_offline(browser, path: Path, artifacts_dir: Path, name: str) -> dict:
    """Open a report from disk with every non-file request blocked; check that its plots are drawn."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    asked = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            asked.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    tab = context.new_page()
    console = ConsoleLog()
    console.attach(tab)
    tab.goto(path.as_uri())
    tab.wait_for_selector("body[data-face3d-ready='1']", timeout=60_000)
    tab.wait_for_function(
        "Array.from(document.querySelectorAll('.js-plotly-plot')).every(g => !!g._fullLayout)", timeout=60_000
    )
    next_frames(tab, 3)  # the WebGL scenes draw in the frames after their layout
    drawn = tab.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => !!g._fullLayout)")
    scenes = tab.locator(".js-plotly-plot:has(.gl-container)")
    pixels = [_plotted_pixels(scenes.nth(i).screenshot()) for i in range(scenes.count())]
    tab.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=True)
    context.close()
    return {"drawn": drawn, "pixels": pixels, "asked": asked, "errors": console.errors}


def test_reports_open_offline(page, browser, tmp_path, artifacts_dir):
    page.get_by_text("3 · 3D model", exact=True).click()
    with page.expect_download() as info:
        page.click("#model3d-download-report")
    face_report = tmp_path / info.value.suggested_filename
    info.value.save_as(face_report)
    assert face_report.name == "lee_perry_smith_yaw0_report.html"

    page.get_by_text("4 · Compare", exact=True).click()
    page.click("#compare-run")  # both photos are preselected
    page.wait_for_selector("#compare-results:not([hidden])", timeout=120_000)
    page.wait_for_function("!document.querySelector('#compare-download-report').disabled", timeout=30_000)
    assert page.inner_text("#compare-measure-table").count("(reference)") == 2
    with page.expect_download() as info:
        page.click("#compare-download-report")
    compare_report = tmp_path / "compare.html"
    info.value.save_as(compare_report)
    size_mb = compare_report.stat().st_size / 1e6
    print(f"comparison report (2 faces): {size_mb:.2f} MB; one face: {face_report.stat().st_size / 1e6:.2f} MB")
    assert size_mb < 5

    for path, name, plots in ((face_report, "report_one_face", 2), (compare_report, "report_compare", 6)):
        seen = open_offline(browser, path, artifacts_dir, name)
        assert seen["errors"] == [] and seen["asked"] == []  # nothing fetched, nothing failed
        assert seen["drawn"] == [True] * plots
        assert seen["pixels"] and all(p > 0.05 for p in seen["pixels"]), seen["pixels"]  # WebGL drew the face
