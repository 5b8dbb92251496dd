"""What the browser tests do on the page, written once: open a tab, run the full flow, wait, measure, shoot.

* :func:`full_flow`: upload photos, generate the depth map, the 3D model and the comparison, like a user;
* :func:`wait_for_stable_layout`: until every figure has been laid out for its box and nothing moves;
* :func:`measure_layout`: the boxes of everything in the open tab's cards
  (``tests/e2e/measure_layout.js``) and the problems found in them;
* :func:`screenshot`: a full-page PNG under the artifacts folder.
"""

from __future__ import annotations

from pathlib import Path

from tests.harness.page_waits import next_frames, settle

NETWORK_TIMEOUT_MS = 300_000
TABS = {"upload": "1 · Upload", "depth": "2 · Depth map", "model3d": "3 · 3D model", "compare": "4 · Compare"}
_MEASURE_JS = (Path(__file__).with_name("measure_layout.js")).read_text()

#: Every figure has its plotly layout for its box, none is pending, and the boxes did not move for
#: ``calm`` animation frames in a row (about a quarter of a second at 60 frames per second).
_STABLE_LAYOUT_JS = """(calm) => {
  const signature = Array.from(document.querySelectorAll('.js-plotly-plot')).filter(gd => {
    const b = gd.getBoundingClientRect();
    return b.width > 0 && b.height > 0;  // a figure in a hidden section has no box to fit
  }).map(gd => {
    const b = gd.getBoundingClientRect();
    const full = gd._fullLayout || {};
    const fits = Math.abs((full.width || 0) - b.width) <= 2 && Math.abs((full.height || 0) - b.height) <= 2;
    return [Math.round(b.left), Math.round(b.top), Math.round(b.width), Math.round(b.height), fits,
            gd.classList.contains('dash-graph--pending')].join(',');
  }).join(';');
  const fitted = signature.split(';').every(part => !part || part.endsWith(',true,false'));
  const same = fitted && signature === window.face3dLayoutSignature;
  window.face3dLayoutSignature = signature;
  window.face3dStableFrames = same ? (window.face3dStableFrames || 0) + 1 : 0;
  return window.face3dStableFrames >= calm;
}"""
#: Frames the layout must stay still for :func:`wait_for_stable_layout`.
STABLE_FRAMES = 15


def open_tab(page, name: str) -> None:
    """Click a tab by its short name (``upload``, ``depth``, ``model3d``, ``compare``)."""
    page.get_by_text(TABS[name], exact=True).click()
    page.wait_for_function(
        "label => Array.from(document.querySelectorAll('.face3d-tab--selected, .tab--selected'))"
        ".some(t => t.textContent.trim() === label)",
        arg=TABS[name],
    )


def wait_for_stable_layout(page, timeout_ms: int = 20_000) -> None:
    """Wait until the page is idle, every figure is laid out for its box and nothing moved for a while."""
    settle(page, timeout_ms)
    page.evaluate("window.face3dLayoutSignature = undefined; window.face3dStableFrames = 0")
    try:
        page.wait_for_function(_STABLE_LAYOUT_JS, arg=STABLE_FRAMES, polling="raf", timeout=timeout_ms)
    except Exception as error:  # Playwright's TimeoutError: say what kept moving
        signature = page.evaluate("window.face3dLayoutSignature")
        raise AssertionError(f"the figures kept moving or never fitted their boxes: {signature}") from error


def measure_layout(page) -> dict:
    """Boxes and problems of the open tab (see ``measure_layout.js``), once the layout is stable."""
    wait_for_stable_layout(page)
    next_frames(page, 2)  # WebGL scenes draw a frame after their layout
    return measure_now(page)


def measure_now(page) -> dict:
    """Boxes and problems of the open tab as they are now (no waiting)."""
    return page.evaluate(_MEASURE_JS)


def screenshot(page, folder: Path, name: str) -> Path:
    """A full-page screenshot ``folder/name.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def upload(page, paths: list[Path], expected_cards: int) -> None:
    """Drop photos on the upload area and wait for the gallery to show ``expected_cards`` photos."""
    page.set_input_files("#upload input[type=file]", [str(p) for p in paths])
    page.wait_for_function(
        f"document.querySelectorAll('.face3d-gallery-card').length === {expected_cards}", timeout=120_000
    )
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.face3d-thumb')).every(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000,
    )


#: What shows the result of each tab's button: the depth map, the 3D view's card, the comparison.
RESULTS = {"depth": "#depth-map-col", "model3d": "#model3d-view-card", "compare": "#compare-results"}

#: The page has stopped scrolling (the same position for 10 frames in a row).
_SCROLL_SETTLED = """() => new Promise(resolve => { let last = -1, same = 0;
  (function look() { same = window.scrollY === last ? same + 1 : 0; last = window.scrollY;
    if (same >= 10) { resolve(last); } else { requestAnimationFrame(look); } })(); })"""
#: The top of a result lies in the upper half of the window.
_IN_VIEW = """sel => { const top = document.querySelector(sel).getBoundingClientRect().top;
  return top >= -1 && top <= window.innerHeight / 2; }"""


def result_in_view(page, tab: str, timeout_ms: int = 10_000) -> bool:
    """Whether ``tab``'s result comes into view (the page scrolls to it on a narrow screen), once scrolling stops."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(_IN_VIEW, arg=RESULTS[tab], timeout=timeout_ms)
    except PlaywrightTimeout:  # not in view
        return False
    page.evaluate(_SCROLL_SETTLED)
    return page.evaluate(_IN_VIEW, RESULTS[tab])


_CAMERA_EYE = """sel => { const gd = document.querySelector(sel + ' .js-plotly-plot');
  const eye = gd._fullLayout.scene._scene.getCamera().eye; return [eye.x, eye.y, eye.z]; }"""


def touch_drag(page, selector: str, dx: float, dy: float, steps: int = 10) -> tuple[list[float], list[float]]:
    """Drag one finger across the middle of the 3D graph ``selector`` (real touch events, through CDP).

    Returns:
        The camera's eye position before and after the drag.
    """
    before = page.evaluate(_CAMERA_EYE, selector)
    box = page.locator(f"{selector} .js-plotly-plot").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        for step in range(1, steps + 1):
            point = {"x": x + dx * step / steps, "y": y + dy * step / steps}
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        cdp.detach()
    page.wait_for_function(
        "([sel, before]) => { const gd = document.querySelector(sel + ' .js-plotly-plot');"
        " const eye = gd._fullLayout.scene._scene.getCamera().eye;"
        " return Math.abs(eye.x - before[0]) + Math.abs(eye.y - before[1]) + Math.abs(eye.z - before[2]) > 1e-3; }",
        arg=[selector, before],
        timeout=10_000,
    )
    return before, page.evaluate(_CAMERA_EYE, selector)


def full_flow(page, photos: list[Path], *, compare_alert: bool = False, after_result=None) -> None:
    """Upload ``photos``, then generate the depth map, the 3D model and the comparison of the first two.

    Args:
        page: A Playwright page on the dashboard (empty gallery).
        photos: Two or more photos.
        compare_alert: The comparison is expected to be refused with an alert (no face detector).
        after_result: Called as ``after_result(tab)`` as soon as a tab's result is shown.
    """
    page.wait_for_selector("text=No photos yet")
    upload(page, photos, len(photos))
    open_tab(page, "depth")
    page.click("#depth-generate")
    page.wait_for_selector("#depth-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
    if after_result:
        after_result("depth")
    open_tab(page, "model3d")
    page.click("#model3d-generate")
    page.wait_for_selector("#model3d-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelector('#model3d-graph .js-plotly-plot') && "
        "document.querySelector('#model3d-graph .js-plotly-plot').data.length >= 1"
    )
    if after_result:
        after_result("model3d")
    open_tab(page, "compare")
    page.click("#compare-run")
    if compare_alert:
        page.wait_for_selector("#alerts .alert", timeout=NETWORK_TIMEOUT_MS)
    else:
        page.wait_for_selector("#compare-results:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
        page.wait_for_selector("#compare-pair-section:not([hidden])", timeout=NETWORK_TIMEOUT_MS)
        if after_result:
            after_result("compare")
