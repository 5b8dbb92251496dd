"""The user's waits in a real browser, timed: one flow shared by the e2e test and ``benchmarks/ui_speed.py``.

:func:`run_flow` drives a page of a running ``python -m dashboard`` whose default network has
finished loading (:func:`wait_for_warm_server`), with :mod:`tests.harness.browser_timing`
recording, through the waits issue 9 names:

1. ``first_depth``: *Generate depth map* for a photo nobody computed yet (the depth job);
2. ``model3d_new_face``: *Generate 3D model* for another photo without a depth map;
3. ``model3d_cached``: the 3D model of the first photo (its depth map is cached), default density;
4. ``slider_full`` / ``slider_back``: the density slider one step up (every pixel) and back;
5. ``compare_one_new``: *Compare* of the first photo with a third one nobody computed yet.

Each is a :class:`~tests.harness.browser_timing.DrawTiming` (click to figure data, click to
drawn, ``Plotly.react`` alone, points drawn).
"""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tests.harness.browser_timing import DrawTiming, install, now_ms, wait_for_draw
from tests.harness.page_waits import settle, track_requests

#: Photos of the flow, in upload order: a 1 MP portrait (first depth, then its 3D model), the new
#: face of the comparison (the Compare tab preselects the first two photos) and a face for the new
#: 3D model.
FLOW_PHOTOS = ("fr_obama_official_portrait.jpg", "fr_two_people.jpg", "skimage_astronaut.png")
#: Longest wait for one step (a loaded machine, software WebGL).
STEP_TIMEOUT_MS = 180_000


def wait_for_warm_server(url: str, timeout_s: float = 180.0) -> dict:
    """Wait until the server's background start-up has loaded the default network (``/face3d/warmup``).

    Returns:
        The last ``/face3d/warmup`` answer (``{"depth_model": {"model", "state", "seconds"}}``).

    Raises:
        AssertionError: The load failed, the server loads no network, or ``timeout_s`` passed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        status = requests.get(url + "face3d/warmup", timeout=10).json()
        model = status.get("depth_model")
        assert model is not None, f"the server loads no depth network at its start: {status}"
        assert model["state"] != "failed", f"the background load failed: {status}"
        if model["state"] == "ready":
            return status
        assert time.monotonic() < deadline, f"the default network did not load within {timeout_s} s: {status}"
        time.sleep(0.2)


def new_page(browser, url: str, viewport: dict | None = None):
    """A new page (own context: own session cookie) with the timing recorder, opened at ``url``."""
    context = browser.new_context(viewport=viewport or {"width": 1440, "height": 900})
    install(context)
    track_requests(context)  # the benchmark's plain browser too (installing twice is harmless)
    page = context.new_page()
    page.goto(url)
    return page


def open_tab(page, label: str) -> None:
    """Click a tab by its label and wait until it is selected and the page is idle."""
    page.get_by_text(label, exact=True).click()
    page.wait_for_function(
        "label => Array.from(document.querySelectorAll('.face3d-tab--selected, .tab--selected'))"
        ".some(t => t.textContent.trim() === label)",
        arg=label,
    )
    settle(page)


def choose(page, dropdown: str, option: str) -> None:
    """Pick ``option`` (its label starts so) in the dropdown ``#dropdown`` and wait until the page is idle."""
    page.click(f"#{dropdown}")
    page.get_by_role("option", name=option).first.click()
    settle(page)


def _settle(page) -> None:
    """Let earlier callbacks and drawing finish, so a step's clock starts on an idle page."""
    settle(page)


def click_and_time(page, selector: str, graph: str) -> DrawTiming:
    """Click ``selector`` and time it until ``graph`` is drawn again."""
    _settle(page)
    since = now_ms(page)
    page.click(selector)
    return wait_for_draw(page, graph, since, timeout_ms=STEP_TIMEOUT_MS)


def key_and_time(page, selector: str, key: str, graph: str) -> DrawTiming:
    """Press ``key`` on ``selector`` and time it until ``graph`` is drawn again."""
    _settle(page)
    page.focus(selector)
    since = now_ms(page)
    page.keyboard.press(key)
    return wait_for_draw(page, graph, since, timeout_ms=STEP_TIMEOUT_MS)


def run_flow(page, faces_dir: Path) -> dict[str, DrawTiming]:
    """Upload :data:`FLOW_PHOTOS` and time every step of the module doc (the page is fresh).

    The photos are uploaded one at a time: the browser reads several chosen files in parallel, so
    their gallery order (and with it the two photos the Compare tab preselects: the first two, of
    which only the portrait has a depth map when Compare runs) would be the order they finished in.
    """
    portrait, _compared, new_face = FLOW_PHOTOS
    page.wait_for_selector("text=No photos yet")
    for count, name in enumerate(FLOW_PHOTOS, start=1):
        page.set_input_files("#upload input[type=file]", [str(faces_dir / name)])
        page.wait_for_function(f"document.querySelectorAll('.face3d-gallery-card').length === {count}", timeout=120_000)
    steps: dict[str, DrawTiming] = {}

    open_tab(page, "2 · Depth map")
    page.wait_for_selector("#depth-model-info >> text=Weights ready")
    choose(page, "depth-face", portrait)
    steps["first_depth"] = click_and_time(page, "#depth-generate", "depth-map-graph")

    open_tab(page, "3 · 3D model")
    choose(page, "model3d-face", new_face)
    steps["model3d_new_face"] = click_and_time(page, "#model3d-generate", "model3d-graph")
    choose(page, "model3d-face", portrait)
    steps["model3d_cached"] = click_and_time(page, "#model3d-generate", "model3d-graph")
    slider = "#model3d-density [role=slider]"
    steps["slider_full"] = key_and_time(page, slider, "ArrowRight", "model3d-graph")
    steps["slider_back"] = key_and_time(page, slider, "ArrowLeft", "model3d-graph")

    open_tab(page, "4 · Compare")
    page.wait_for_selector("#compare-faces")  # the first two photos are preselected
    steps["compare_one_new"] = click_and_time(page, "#compare-run", "compare-3d-graph")
    return steps
