"""Make the screenshots of the README and docs/ (usage.md, camera.md) with headless Chromium.

The app runs with a stand-in depth network that returns the true depth of photos rendered
from the Lee Perry-Smith head scan of ``../shared`` (:mod:`tests.harness.scenes`; the photos
carry an EXIF focal length), so the pictures show a real face shape without network weights.

* ``docs/images/tab-upload.png``, ``tab-depth.png``, ``tab-3d.png``, ``tab-compare.png``: each tab
  of the dashboard at 1440 x 900 after its work is done (two photos uploaded, a depth map, a 3D mesh
  in photo colours, a comparison of the two faces), for the README;
* ``docs/images/measure.png``: the 3D tab after click to measure (mesh, photo colours) with
  the measurement table;
* ``docs/images/print.png``: the 3D tab's printable relief panel after a download, beside the
  downloaded STL file drawn by :mod:`face3d_core.figures`;
* ``docs/images/share.png``: the top of the comparison report, opened from disk with the
  network blocked;
* ``docs/images/camera.png`` and ``camera-phone.png``: the Upload tab with the camera open, live
  depth on and a photo taken (desktop), and the camera panel on a 390 x 844 phone screen. The
  browser's camera plays the rendered head (:mod:`tests.harness.fake_camera`); the stand-in network
  finds each live frame's face crop in the render and returns its true depth (its speed means
  nothing, so the frame rate line is left empty: the rates are in docs/camera.md).

Run: ``.venv/bin/python docs/make_screenshots.py [tabs] [readme] [camera]`` (default all; needs ../shared,
Chromium and Playwright).
PNGs are reduced to 256 colours to stay small.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from dashboard import ids  # noqa: E402
from face3d_core.models.registry import DEFAULT_MODEL, get_spec  # noqa: E402
from tests.harness.paths import SCANS_DIR, YUNET_PATH  # noqa: E402
from tests.harness.processes import child_env  # noqa: E402
from tests.harness.scenes import write_scene  # noqa: E402
from tests.harness.servers import WebServer  # noqa: E402

OUT = REPO / "docs" / "images"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
GRAPH = "document.querySelector('#model3d-graph .js-plotly-plot')"


def save_png(png: bytes, path: Path, width: int | None = None) -> None:
    """Save a screenshot reduced to 256 colours (and to ``width`` pixels)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if width and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"{path.relative_to(REPO)}: {image.width}x{image.height}, {path.stat().st_size / 1024:.0f} KB")


def click(page, x: float, y: float) -> None:
    """A click as a user makes it: rest, press, release."""
    page.mouse.move(x - 6, y - 6)
    page.mouse.move(x, y, steps=4)
    page.wait_for_timeout(300)
    page.mouse.down()
    page.wait_for_timeout(150)
    page.mouse.up()


def stl_page(stl: Path, folder: Path) -> Path:
    """A page that draws an STL file with face3d's own mesh figure (Plotly's JavaScript inline)."""
    import numpy as np
    import plotly.io as pio
    import trimesh

    from face3d_core import figures

    mesh = trimesh.load(stl, force="mesh")
    verts = np.asarray(mesh.vertices, np.float32)
    faces = np.asarray(mesh.faces)
    height = (verts[:, 2] - verts[:, 2].min()) / np.ptp(verts[:, 2])  # shaded by height above the bed
    trace = figures.mesh_trace(verts, faces, gray_values=height, max_triangles=len(faces))
    trace["colorscale"] = [[0, "rgb(120,80,45)"], [1, "rgb(236,200,150)"]]
    trace["lighting"] = {"ambient": 0.45, "diffuse": 0.85, "specular": 0.08, "roughness": 0.8}
    trace["lightposition"] = {"x": 3000, "y": 2000, "z": 1500}
    camera = {
        "eye": {"x": 1.1, "y": -1.3, "z": 1.5},
        "up": {"x": 0, "y": 1, "z": 0},
        "center": {"x": 0, "y": 0, "z": 0},
    }
    fig = figures.model3d_figure(trace, camera=camera, height=520)
    fig["layout"]["scene"]["bgcolor"] = "#f4f6f8"
    path = folder / "relief.html"
    pio.write_html(fig, path, include_plotlyjs=True, full_html=True, default_width=560, default_height=520)
    return path


def tab_screenshots(playwright, url: str, scenes: list) -> None:
    """``tab-*.png``: each of the four tabs at 1440 x 900 once its result is shown."""
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url)
        page.set_input_files("#upload input[type=file]", [str(photo) for photo, _ in scenes])
        page.wait_for_function("document.querySelectorAll('.face3d-gallery-card').length === 2", timeout=60_000)
        page.wait_for_function("Array.from(document.querySelectorAll('.face3d-thumb')).every(i => i.complete)")
        page.wait_for_timeout(500)
        save_png(page.screenshot(), OUT / "tab-upload.png", width=720)

        page.get_by_text("2 · Depth map", exact=True).click()
        page.click(f"#{ids.DEPTH_GENERATE}")
        page.wait_for_selector(f"#{ids.DEPTH_RESULTS}:not([hidden])", timeout=120_000)
        page.wait_for_selector("#depth-map-graph .heatmaplayer, #depth-map-graph .hm image", state="attached")
        page.mouse.move(5, 5)
        page.wait_for_timeout(1000)
        save_png(page.screenshot(), OUT / "tab-depth.png", width=720)

        page.get_by_text("3 · 3D model", exact=True).click()
        page.click(f"#{ids.MODEL3D_GENERATE}")
        page.wait_for_selector(f"#{ids.MODEL3D_RESULTS}:not([hidden])", timeout=120_000)
        page.get_by_label("Mesh").check()
        page.get_by_label("Photo", exact=True).check()
        page.wait_for_function(f"{GRAPH}.data[0].type === 'mesh3d'", timeout=60_000)
        page.evaluate("window.scrollTo(0, 0)")  # the radio buttons scrolled the page
        page.mouse.move(5, 5)
        page.wait_for_timeout(1500)
        save_png(page.screenshot(), OUT / "tab-3d.png", width=720)

        page.get_by_text("4 · Compare", exact=True).click()
        page.click(f"#{ids.COMPARE_RUN}")  # the two photos are preselected
        page.wait_for_selector(f"#{ids.COMPARE_RESULTS}:not([hidden])", timeout=120_000)
        page.wait_for_selector("#compare-3d-graph .gl-container", state="attached")
        page.evaluate("window.scrollTo(0, 0)")
        page.mouse.move(5, 5)
        page.wait_for_timeout(2500)
        save_png(page.screenshot(), OUT / "tab-compare.png", width=720)
    finally:
        browser.close()


def camera_screenshots(playwright, url: str, photo: Path, folder: Path) -> None:
    """``camera.png`` (desktop) and ``camera-phone.png`` (390 x 844): live depth of the rendered head."""
    from tests.harness.fake_camera import fake_camera_args, write_y4m

    video = write_y4m(photo, folder / "camera.y4m", size_wh=(640, 480))
    browser = playwright.chromium.launch(
        executable_path="/usr/bin/chromium", args=[*CHROMIUM_ARGS, *fake_camera_args(video)]
    )
    try:
        for name, viewport, mobile in (("camera", (1400, 1000), False), ("camera-phone", (390, 844), True)):
            context = browser.new_context(
                viewport={"width": viewport[0], "height": viewport[1]},
                permissions=["camera"],
                is_mobile=mobile,
                has_touch=mobile,
                device_scale_factor=1,
            )
            page = context.new_page()
            page.goto(url)
            page.click(f"#{ids.CAMERA_START}")
            page.wait_for_function(
                "() => window.face3dCamera.active() && document.getElementById('camera-video').videoWidth"
            )
            page.click(f"#{ids.LIVE_START}")
            page.wait_for_function("() => +document.getElementById('live-depth').dataset.frames >= 8", timeout=120_000)
            page.wait_for_function("() => document.getElementById('live-stats').textContent.length > 0")
            page.add_style_tag(content="#live-stats { visibility: hidden; }")  # a stand-in's frame rate means nothing
            if not mobile:
                page.click(f"#{ids.CAMERA_CAPTURE}")
                page.wait_for_function("document.querySelectorAll('.face3d-gallery-card').length === 1", timeout=60_000)
                page.wait_for_function("Array.from(document.querySelectorAll('.face3d-thumb')).every(i => i.complete)")
                page.wait_for_timeout(800)
                save_png(page.screenshot(full_page=True), OUT / f"{name}.png", width=900)
            else:
                page.evaluate("document.getElementById('camera-panel').scrollIntoView({block: 'start'})")
                page.wait_for_timeout(500)
                save_png(page.screenshot(), OUT / f"{name}.png")
            context.close()
    finally:
        browser.close()


def main(argv: list[str] | None = None) -> int:
    """Make the screenshots (``tabs``: the four tabs, ``readme``: measure, print, share, ``camera``: the camera's).

    Returns 1 where ../shared is absent.
    """
    from playwright.sync_api import sync_playwright

    wanted = set(sys.argv[1:] if argv is None else argv) or {"tabs", "readme", "camera"}

    if not (SCANS_DIR / "lee_perry_smith").exists() or not YUNET_PATH.exists():
        print("../shared (head scans, YuNet) is absent: nothing to do")
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scenes = [write_scene(SCANS_DIR, folder / "scenes", yaw_deg=yaw) for yaw in (0.0, 20.0)]
        # The stand-in network reads no checkpoint; an empty file of the default model's name makes the model
        # picker show what a server with its weights shows (instead of the "Weights missing" note).
        weights = folder / "weights" / get_spec(DEFAULT_MODEL).file_name
        weights.parent.mkdir()
        weights.touch()
        env = child_env(FACE3D_WEIGHTS_DIR=str(weights.parent))
        server = WebServer.fake_network(env, folder / "server.log", cache_dir=folder / "cache", scenes=scenes)
        server.start()
        try:
            with sync_playwright() as playwright:
                if "tabs" in wanted:
                    tab_screenshots(playwright, server.url, scenes)
                if "camera" in wanted:
                    camera_screenshots(playwright, server.url, scenes[0][0], folder)
                if "readme" not in wanted:
                    return 0
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
                page = context.new_page()
                page.goto(server.url)
                page.set_input_files("#upload input[type=file]", [str(photo) for photo, _ in scenes])
                page.wait_for_function("document.querySelectorAll('.face3d-gallery-card').length === 2", timeout=60_000)
                page.get_by_text("3 · 3D model", exact=True).click()
                page.click("#model3d-generate")
                page.wait_for_selector("#model3d-results:not([hidden])", timeout=120_000)
                page.get_by_label("Mesh").check()
                page.get_by_label("Photo", exact=True).check()
                page.wait_for_function(f"{GRAPH}.data[0].type === 'mesh3d'", timeout=60_000)
                page.wait_for_timeout(1500)
                page.evaluate("window.scrollTo(0, 0)")  # the radio buttons scrolled the page
                page.wait_for_timeout(500)
                box = page.locator("#model3d-graph .js-plotly-plot").first.bounding_box()
                cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                click(page, cx - 38, cy - 62)  # between the eyes
                page.wait_for_function(
                    "document.querySelector('#model3d-measure-status').innerText.startsWith('Point')"
                )
                click(page, cx + 62, cy + 58)  # the cheek beside the mouth
                page.wait_for_function(f"{GRAPH}.data[3].x.length > 2", timeout=30_000)
                page.mouse.move(5, 5)
                page.wait_for_timeout(1500)
                cards = [
                    page.locator(f"#{ids.MODEL3D_RESULTS}").locator("xpath=ancestor::div[contains(@class, 'card')]")
                ]
                cards.append(
                    page.locator(f"#{ids.MODEL3D_MEASURE_TABLE}").locator(
                        "xpath=ancestor::div[contains(@class, 'card')]"
                    )
                )
                top, bottom = cards[0].first.bounding_box(), cards[1].first.bounding_box()
                clip = {
                    "x": top["x"],
                    "y": top["y"],
                    "width": top["width"],
                    "height": bottom["y"] + bottom["height"] - top["y"],
                }
                save_png(page.screenshot(clip=clip, full_page=True), OUT / "measure.png", width=900)

                with page.expect_download() as info:
                    page.click("#model3d-download-relief-stl")
                stl = folder / "relief.stl"
                info.value.save_as(stl)
                page.wait_for_function("document.querySelector('#model3d-relief-info').innerText.length > 0")
                panel = page.locator("#model3d-relief-info").locator("xpath=..")
                panel_png = panel.screenshot()
                solid = context.new_page()
                solid.set_viewport_size({"width": 560, "height": 520})
                solid.goto(stl_page(stl, folder).as_uri())
                solid.wait_for_selector(".js-plotly-plot .gl-container", state="attached")
                solid.wait_for_timeout(2500)
                solid_png = solid.locator(".js-plotly-plot").first.screenshot()
                left, right_img = Image.open(io.BytesIO(panel_png)), Image.open(io.BytesIO(solid_png))
                canvas = Image.new(
                    "RGB", (left.width + right_img.width + 24, max(left.height, right_img.height)), "white"
                )
                canvas.paste(left, (0, (canvas.height - left.height) // 2))
                canvas.paste(right_img, (left.width + 24, (canvas.height - right_img.height) // 2))
                buffer = io.BytesIO()
                canvas.save(buffer, "PNG")
                save_png(buffer.getvalue(), OUT / "print.png", width=900)

                page.get_by_text("4 · Compare", exact=True).click()
                page.click("#compare-run")
                page.wait_for_selector("#compare-results:not([hidden])", timeout=120_000)
                page.wait_for_function("!document.querySelector('#compare-download-report').disabled", timeout=60_000)
                with page.expect_download() as info:
                    page.click("#compare-download-report")
                report = folder / "report.html"
                info.value.save_as(report)
                offline = browser.new_context(viewport={"width": 1100, "height": 1400})
                offline.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
                view = offline.new_page()
                view.goto(report.as_uri())
                view.wait_for_selector("body[data-face3d-ready='1']", timeout=60_000)
                view.locator("#face-1").scroll_into_view_if_needed()
                view.wait_for_timeout(2500)
                shot = view.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": 1100, "height": 1900})
                save_png(shot, OUT / "share.png", width=900)
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
