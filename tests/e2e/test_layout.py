"""Layout at common screen sizes: nothing overflows or overlaps its card, in headless Chromium.

For each window size a fresh browser runs the whole flow (upload two faces, depth map, 3D model,
comparison), then every tab is measured with ``getBoundingClientRect`` (``measure_layout.js``):
every graph (its SVG and WebGL layers, colour bars, pictures), table and image must lie inside its
card; colour bars lie inside their figure and over no picture or text; figures fit their boxes and
do not overlap; pictures keep their aspect ratio; the comparison's 3D views share the card's width;
the page never scrolls sideways and every tab is within reach; titles drawn in a figure never
overlap. After each Generate (and Compare) the result's card is in view. The phone (390x844: a
touch screen) starts with its settings sections folded, and one finger turns the 3D view without
scrolling the page. A screenshot of each tab at each size goes to ``test-artifacts/e2e/layout/``
with the measured boxes beside it (JSON), and one of the window right after each result.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import ConsoleLog
from tests.e2e.flow import (
    TABS,
    full_flow,
    measure_layout,
    measure_now,
    open_tab,
    result_in_view,
    screenshot,
    touch_drag,
)
from tests.harness.page_waits import next_frames

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SIZES = [(1280, 720), (1440, 900), (1920, 1080), (1024, 768), (390, 844)]
#: Checked in ``make test``: a desktop and a phone; the other sizes in ``make test-system``.
EVERY_RUN = {(1440, 900), (390, 844)}
#: Narrower than this (CSS px) is a phone: a touch screen, the settings above the results, folded sections.
PHONE_MAX_PX = 600
#: Bootstrap's ``md``: narrower, the photo and the depth map lie one above the other.
MD_PX = 768
PHOTOS = ["fr_obama_official_portrait.jpg", "skimage_astronaut.png"]

#: What each tab must show once the flow ran (so a check cannot pass by measuring nothing).
READY = {
    "upload": "document.querySelectorAll('.face3d-gallery-card img.face3d-thumb').length === 2",
    "depth": "document.querySelector('#depth-map-graph .hm image, #depth-map-graph .heatmaplayer image') && "
    "document.querySelector('#depth-original-graph .imagelayer image')",
    "model3d": "document.querySelector('#model3d-graph .gl-container canvas')",
    "compare": "document.querySelectorAll('#compare-3d-graph .gl-container canvas').length >= 2 && "
    "document.querySelector('#compare-diff-graph .hm image, #compare-diff-graph .heatmaplayer image') && "
    "document.querySelector('#compare-metrics table')",
}
AT_LEAST = {
    "upload": {"cards": 3, "images": 2},
    "depth": {"graphs": 2, "colorbars": 1, "pictures": 2},
    "model3d": {"graphs": 1, "scenes": 1},
    "compare": {"graphs": 3, "scenes": 2, "colorbars": 1, "pictures": 1, "tables": 1},
}


@pytest.fixture(scope="module")
def layout_dir(artifacts_dir):
    return artifacts_dir / "layout"


def _fresh_page(browser, server, width: int, height: int):
    phone = width < PHONE_MAX_PX  # a phone: touch, mobile viewport, a dense screen
    context = browser.new_context(
        viewport={"width": width, "height": height},
        has_touch=phone,
        is_mobile=phone,
        device_scale_factor=2 if phone else 1,
    )
    page = context.new_page()
    console = ConsoleLog()
    console.attach(page)
    page.goto(server.url)
    return context, page, console


def _tab_problems(name: str, measured: dict, width: int = 1440) -> list[str]:
    problems = [f"{name}: {p}" for p in measured["problems"]]
    for what, least in AT_LEAST[name].items():
        if measured["counts"][what] < least:
            problems.append(f"{name}: measured {measured['counts'][what]} {what}, expected at least {least}")
    boxes = measured["boxes"]
    if name == "depth":  # photo and depth map side by side (one above the other on a phone): drawn alike
        photo, depth = boxes["pictures"]["depth-original-graph"], boxes["pictures"]["depth-map-graph"]
        level = "l" if width < MD_PX else "t"
        if abs(photo["w"] - depth["w"]) > 2 or abs(photo["h"] - depth["h"]) > 2 or abs(photo[level] - depth[level]) > 2:
            problems.append(f"depth: the photo {photo} and the depth map {depth} are not drawn alike")
        if width >= MD_PX and photo["r"] > depth["l"]:
            problems.append("depth: the photo and the depth map are not side by side")
        if width < MD_PX and photo["b"] > depth["t"]:
            problems.append("depth: the photo and the depth map are not one above the other")
    if name == "compare":  # the 3D views share the card's width, two per row
        graph = boxes["graphs"]["compare-3d-graph"]
        scenes = [b for key, b in boxes["scenes"].items() if key.startswith("compare-3d-graph")]
        widths = [s["w"] for s in scenes]
        if len(scenes) == 2 and (min(widths) < 0.45 * graph["w"] or sum(widths) < 0.9 * graph["w"]):
            problems.append(f"compare: the 3D views {widths} do not share the {graph['w']:.0f} px width")
        if len(scenes) == 2 and abs(scenes[0]["t"] - scenes[1]["t"]) > 2:
            problems.append("compare: two 3D views are not on one row")
    return problems


#: How many settings sections each tab has (open on wide screens, folded on a phone).
SECTIONS = {"depth": 1, "model3d": 3, "compare": 1}


@pytest.mark.parametrize(
    "size",
    [pytest.param(size, marks=() if size in EVERY_RUN else pytest.mark.system) for size in SIZES],
    ids=[f"{w}x{h}" for w, h in SIZES],
)
def test_every_tab_fits_its_cards(browser, ui_server, e2e_faces, layout_dir, size):
    """Every tab fits; a result comes into view after its button; on a phone lists fold and a finger turns the view."""
    width, height = size
    phone = width < PHONE_MAX_PX
    context, page, console = _fresh_page(browser, ui_server, width, height)
    problems, report = [], {}

    def after_result(tab: str) -> None:
        if not result_in_view(page, tab):
            problems.append(f"{tab}: the result is out of sight after its button was pressed")
        page.screenshot(path=str(layout_dir / f"{width}x{height}_{tab}_result_in_view.png"))  # the window only
        opened = page.evaluate(f"document.querySelectorAll('#{tab}-sections .accordion-collapse.show').length")
        if opened != (0 if phone else SECTIONS[tab]):
            problems.append(f"{tab}: {opened} of {SECTIONS[tab]} settings sections open at {width} px")
        if phone and tab == "model3d":  # one finger turns the 3D view, and the page does not scroll with it
            scrolled = page.evaluate("window.scrollY")
            before, after = touch_drag(page, "#model3d-graph", 80, 20)
            if page.evaluate("window.scrollY") != scrolled:
                problems.append("model3d: a touch drag on the 3D view scrolled the page")
            report["touch"] = {"eye_before": before, "eye_after": after}

    try:
        full_flow(page, [e2e_faces / name for name in PHOTOS], after_result=after_result)
        for name in TABS:
            open_tab(page, name)
            page.wait_for_function(READY[name], timeout=60_000)
            measured = measure_layout(page)
            screenshot(page, layout_dir, f"{width}x{height}_{name}")
            report[name] = measured
            problems += _tab_problems(name, measured, width)
        (layout_dir / f"{width}x{height}.json").write_text(json.dumps(report, indent=1))
    finally:
        context.close()
    assert not console.errors, console.errors
    assert not problems, "\n".join(problems)


def test_figures_follow_a_window_resize(browser, ui_server, e2e_faces, layout_dir):
    """Turn a wide window narrow and back: every figure is laid out again for its new box."""
    context, page, console = _fresh_page(browser, ui_server, 1920, 1080)
    try:
        full_flow(page, [e2e_faces / name for name in PHOTOS])
        problems = []
        for name in ("compare", "depth"):
            open_tab(page, name)
            page.wait_for_function(READY[name], timeout=60_000)
            wide = measure_layout(page)
            page.set_viewport_size({"width": 1024, "height": 768})
            narrow = measure_layout(page)
            page.set_viewport_size({"width": 1440, "height": 900})
            problems += _tab_problems(name, narrow) + _tab_problems(name, measure_layout(page))
            for graph, box in narrow["boxes"]["graphs"].items():
                if box["w"] >= wide["boxes"]["graphs"][graph]["w"]:
                    problems.append(f"{name}: {graph} did not get narrower with the window")
        screenshot(page, layout_dir, "resized_1920_to_1024_to_1440_depth")
    finally:
        context.close()
    assert not console.errors, console.errors
    assert not problems, "\n".join(problems)


def test_the_checks_catch_the_defects_seen_in_issue_11(browser, ui_server, e2e_faces, layout_dir):
    """The measurements fail on the reported defects, put back on purpose into a page that was fine.

    A depth map laid out wider than its card, the difference map's colour bar beside the map over the
    metrics table, and the comparison's two 3D views squeezed into less than half the card.
    """
    context, page, _ = _fresh_page(browser, ui_server, 1440, 900)
    gd = "document.querySelector('#{} .js-plotly-plot')".format
    try:
        full_flow(page, [e2e_faces / name for name in PHOTOS])
        open_tab(page, "depth")
        page.wait_for_function(READY["depth"], timeout=60_000)
        assert _tab_problems("depth", measure_layout(page)) == []
        # wider than its card, and lower, so the picture differs from the photo's whatever its aspect ratio
        # (the upload order, and with it the first photo, is the order the browser finished reading them)
        page.evaluate(f"Plotly.relayout({gd('depth-map-graph')}, {{autosize: false, width: 900, height: 300}})")
        found = "\n".join(_tab_problems("depth", measure_now(page)))
        assert "overflows its card" in found and "the figure is 900x" in found and "not drawn alike" in found
        screenshot(page, layout_dir, "fault_depth_map_wider_than_its_card")

        open_tab(page, "compare")
        page.wait_for_function(READY["compare"], timeout=60_000)
        assert _tab_problems("compare", measure_layout(page)) == []
        bar_beside = (
            "{'colorbar.orientation': 'v', 'colorbar.x': 1.35, 'colorbar.y': 0.5, 'colorbar.yanchor': 'middle'}"
        )
        squeezed = "{'scene.domain.x': [0, 0.2], 'scene2.domain.x': [0.22, 0.44]}"
        page.evaluate(f"Plotly.restyle({gd('compare-diff-graph')}, {bar_beside}).then(() => true)")
        page.evaluate(f"Plotly.relayout({gd('compare-diff-graph')}, {{'margin.autoexpand': false}}).then(() => true)")
        page.evaluate(f"Plotly.relayout({gd('compare-3d-graph')}, {squeezed}).then(() => true)")
        next_frames(page, 2)
        found = "\n".join(_tab_problems("compare", measure_now(page)))
        assert "leaves its figure" in found and "lies over the text" in found
        assert "do not share the" in found
        screenshot(page, layout_dir, "fault_colour_bar_over_the_table_and_narrow_views")
    finally:
        context.close()
