"""End-to-end in headless Chromium: upload real photos, depth, 3D, compare, tabs, reload, restart.

The tests run in file order on one page (each builds on the previous one's state, like a user
session). Every test fails on a browser console error and saves a screenshot of its tab.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.e2e.flow import TABS, wait_for_stable_layout
from tests.e2e.flow import open_tab as open_named_tab
from tests.harness.page_waits import next_frames, settle

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900), pytest.mark.usefixtures("no_console_errors")]

NETWORK_TIMEOUT_MS = 300_000
PHOTOS = ["fr_obama_official_portrait.jpg", "fr_two_people.jpg", "skimage_astronaut.png"]


def open_tab(page, label: str) -> None:
    open_named_tab(page, next(name for name, text in TABS.items() if text == label))
    settle(page)


def shot(page, artifacts_dir: Path, name: str) -> None:
    wait_for_stable_layout(page)
    next_frames(page, 2)  # WebGL scenes draw in the frame after their layout
    page.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=True)


def graph_js(graph_id: str) -> str:
    return f"document.querySelector('#{graph_id} .js-plotly-plot')"


def test_upload_tab(page, e2e_faces, text_file, oversized_file, artifacts_dir):
    page.wait_for_selector("text=No photos yet")
    files = [str(e2e_faces / name) for name in PHOTOS] + [str(text_file)]
    page.set_input_files("#upload input[type=file]", files)
    page.wait_for_function("document.querySelectorAll('.face3d-gallery-card').length === 3", timeout=120_000)
    messages = page.inner_text("#upload-messages")
    assert "Added 3 photos" in messages
    assert "notes.txt" in messages and "not a JPEG or PNG" in messages

    page.set_input_files("#upload input[type=file]", [str(oversized_file)])
    page.wait_for_selector("#upload-rejected-messages >> text=too large", timeout=30_000)
    assert "huge_photo.jpg" in page.inner_text("#upload-rejected-messages")

    # the group photo: two boxes; choose the second face
    boxes = page.locator(".face3d-gallery-card", has_text="fr_two_people.jpg").locator(".face3d-box")
    assert boxes.count() == 2
    boxes.nth(1).click()
    page.locator(".face3d-gallery-card", has_text="fr_two_people.jpg").locator(
        ".face3d-box-selected >> text=2"
    ).wait_for(timeout=20_000)
    thumbs_ok = page.evaluate(
        "Array.from(document.querySelectorAll('.face3d-thumb')).every(i => i.complete && i.naturalWidth > 0)"
    )
    assert thumbs_ok
    shot(page, artifacts_dir, "1_upload")


def test_depth_tab_generate_cancel_and_download(page, artifacts_dir, tmp_path):
    open_tab(page, "2 · Depth map")
    page.wait_for_selector("text=No depth map yet")
    page.wait_for_selector("#depth-model-info >> text=Weights ready")

    # start, then cancel while the job runs (the server began loading the network at its start; on a
    # fresh cache it is still exporting and checking it, and the job waits for that). Where the server
    # was quicker than the click, the job has ended before the cancel: then the finished depth map must
    # be shown, with no error (cancelling a running job is also tested on the callbacks themselves).
    page.click("#depth-generate")
    page.wait_for_selector("#depth-job-panel:not([hidden]), #depth-results:not([hidden])")
    cancel = page.locator("#depth-job-cancel")
    if cancel.is_visible():
        cancel.click()
    page.wait_for_selector("#depth-job-message:has-text('Cancelled.'), #depth-results:not([hidden])")
    cancelled = page.locator("#depth-job-message:has-text('Cancelled.')").is_visible()
    assert page.is_enabled("#depth-generate")
    assert page.locator("#alerts .alert-danger").count() == 0

    if cancelled:  # start again; the page stays responsive while it runs (the progress text keeps updating)
        assert page.locator("#depth-results").is_hidden()
        page.click("#depth-generate")
        page.wait_for_selector("#depth-job-panel:not([hidden]), #depth-results:not([hidden])")
    open_tab(page, "1 · Upload")
    assert page.locator(".face3d-gallery-card").count() == 3
    open_tab(page, "2 · Depth map")
    page.wait_for_selector("#depth-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
    assert "Lighter = nearer" in page.inner_text("#depth-caption")
    page.wait_for_selector("#depth-map-graph .heatmaplayer, #depth-map-graph .hm image", state="attached")

    # hover shows the value
    box = page.locator("#depth-map-graph .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#depth-map-graph .hovertext", timeout=10_000)
    assert "depth" in page.locator("#depth-map-graph .hovertext").first.text_content()

    # colour map
    page.click("#depth-colormap")
    page.get_by_role("option", name="Viridis").click()
    page.wait_for_function(f"{graph_js('depth-map-graph')}.data[0].colorscale.length > 2", timeout=20_000)

    # 16-bit PNG download
    with page.expect_download() as info:
        page.click("#depth-download-png16")
    path = tmp_path / "depth16.png"
    info.value.save_as(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[24] == 16  # bit depth in the IHDR chunk
    width, height = struct.unpack(">II", data[16:24])
    assert width > 50 and height > 50
    page.mouse.move(5, 5)
    shot(page, artifacts_dir, "2_depth")


def test_model3d_tab_sliders_keep_the_camera(page, artifacts_dir, tmp_path):
    open_tab(page, "3 · 3D model")
    page.wait_for_selector("text=No 3D model yet")
    page.click("#model3d-generate")  # the depth map is cached: no network run
    page.wait_for_selector("#model3d-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
    page.wait_for_function(
        f"{graph_js('model3d-graph')} && {graph_js('model3d-graph')}.data.length === 4"
    )  # + measure overlay
    assert page.locator("#model3d-graph canvas").count() >= 1  # WebGL scene
    assert page.evaluate(f"{graph_js('model3d-graph')}.data[0].type") == "scatter3d"

    # the user turns the camera with the mouse, then moves a slider: the camera stays where it was
    box = page.locator("#model3d-graph .gl-container").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 150, cy + 40, steps=12)
    page.mouse.up()
    settle(page)
    turned = page.evaluate(f"{graph_js('model3d-graph')}._fullLayout.scene.camera.eye")
    assert abs(turned["x"]) > 0.2  # the drag turned the view
    stats_before = page.inner_text("#model3d-stats")
    page.focus("#model3d-density [role=slider]")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"document.querySelector('#model3d-stats').innerText !== {stats_before!r}", timeout=60_000)
    settle(page)
    eye = page.evaluate(f"{graph_js('model3d-graph')}._fullLayout.scene.camera.eye")
    for axis in "xyz":
        assert eye[axis] == pytest.approx(turned[axis], abs=1e-3)

    # camera preset
    page.click("#model3d-camera-top")
    page.wait_for_function(f"Math.abs({graph_js('model3d-graph')}._fullLayout.scene.camera.eye.y - 1.9) < 1e-3")

    # mesh with photo colours
    page.get_by_label("Mesh").check()
    page.get_by_label("Photo").check()
    page.wait_for_function(f"{graph_js('model3d-graph')}.data[0].type === 'mesh3d'", timeout=60_000)
    page.click("#model3d-camera-front")

    with page.expect_download() as info:
        page.click("#model3d-download-glb")
    path = tmp_path / "face.glb"
    info.value.save_as(path)
    assert path.read_bytes()[:4] == b"glTF"
    shot(page, artifacts_dir, "3_model3d")


def test_compare_tab(page, artifacts_dir):
    open_tab(page, "4 · Compare")
    page.wait_for_selector("text=Nothing to compare yet")
    page.click("#compare-run")  # the first two photos are preselected
    page.wait_for_selector("#compare-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
    page.wait_for_selector("#compare-pair-section:not([hidden])")
    assert "RMS difference" in page.inner_text("#compare-metrics")
    scenes = page.evaluate(
        f"Object.keys({graph_js('compare-3d-graph')}._fullLayout).filter(k => /^scene\\d*$/.test(k)).length"
    )
    assert scenes == 2
    assert page.evaluate(f"{graph_js('compare-profiles-graph')}.data.length") == 4

    # one shared camera: turning the first view turns the second
    page.evaluate(
        f"Plotly.relayout({graph_js('compare-3d-graph')}, "
        "{'scene.camera': {eye: {x: 1.5, y: 0.3, z: 0.9}, up: {x: 0, y: 1, z: 0}, center: {x: 0, y: 0, z: 0}}})"
    )
    page.wait_for_function(
        f"Math.abs({graph_js('compare-3d-graph')}._fullLayout.scene2.camera.eye.x - 1.5) < 1e-6", timeout=20_000
    )
    # back to the front view for the screenshot (the second view follows again)
    page.evaluate(
        f"Plotly.relayout({graph_js('compare-3d-graph')}, "
        "{'scene.camera': {eye: {x: 0, y: 0, z: 1.9}, up: {x: 0, y: 1, z: 0}, center: {x: 0, y: 0, z: 0}}})"
    )
    page.wait_for_function(
        f"Math.abs({graph_js('compare-3d-graph')}._fullLayout.scene2.camera.eye.z - 1.9) < 1e-6", timeout=20_000
    )
    shot(page, artifacts_dir, "4_compare")


def test_user_errors_are_dismissable_alerts(page):
    open_tab(page, "4 · Compare")
    page.locator("#compare-faces").click()
    page.keyboard.press("Escape")
    # deselect everything, then ask for a comparison
    page.evaluate("document.querySelector('#compare-faces')")  # present
    clear = page.locator("#compare-faces .dash-dropdown-clear, #compare-faces [aria-label*='Clear']").first
    if clear.count():
        clear.click()
        page.keyboard.press("Escape")
        page.click("#compare-run")
        alert = page.locator("#alerts .alert")
        alert.wait_for(timeout=20_000)
        assert "at least two faces" in alert.inner_text()
        alert.locator(".btn-close").click()
        page.wait_for_function("!document.querySelector('#alerts .alert.show')", timeout=10_000)


def test_uploads_survive_reload_and_server_restart(page, dashboard_server, artifacts_dir):
    page.reload()
    page.wait_for_function("document.querySelectorAll('.face3d-gallery-card').length === 3", timeout=60_000)
    page.wait_for_load_state("networkidle")  # no callback in flight while the server is down
    dashboard_server.restart()
    page.reload()
    page.wait_for_function("document.querySelectorAll('.face3d-gallery-card').length === 3", timeout=60_000)
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.face3d-thumb')).every(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000,
    )
    # the chosen face of the group photo is remembered too
    group = page.locator(".face3d-gallery-card", has_text="fr_two_people.jpg")
    assert group.locator(".face3d-box-selected").inner_text() == "2"
    # and the depth map is still in the cache: Generate is served at once, no job
    open_tab(page, "2 · Depth map")
    page.click("#depth-generate")
    page.wait_for_selector("#depth-results:not([hidden])", timeout=30_000)
    shot(page, artifacts_dir, "5_after_restart")
    # remove a photo from the gallery
    open_tab(page, "1 · Upload")
    page.locator(".face3d-gallery-card", has_text="skimage_astronaut").get_by_text("Remove").click()
    page.wait_for_function("document.querySelectorAll('.face3d-gallery-card').length === 2", timeout=20_000)
    assert page.inner_text("#gallery-count") == "2"
