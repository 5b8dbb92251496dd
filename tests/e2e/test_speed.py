"""The user's waits in headless Chromium, recorded (never asserted as times): issue 9's flows.

A fresh ``python -m dashboard`` (its own cache, ``fill.py`` weights: the real MiDaS small network)
loads its default network in the background at start; once it has, one page goes through
:func:`tests.harness.browser_speed.run_flow`: the first depth map, the 3D model of a new face,
the 3D model from a cached depth map, the density slider up and back, and a comparison with a
new face. Each step's click-to-figure-data, click-to-drawn and ``Plotly.react`` times, the points
drawn and the server's peak memory go to ``speed.json`` in the e2e artifacts folder. The test
asserts what was drawn (trace types, point counts against the density levels), not how fast.
"""

from __future__ import annotations

import json

import pytest

from dashboard.controls import DENSITY_POINTS
from tests.e2e.conftest import own_dashboard
from tests.harness.browser_speed import new_page, run_flow, wait_for_warm_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def speed_server(tmp_path_factory, e2e_faces, fill_weights):
    """A ``python -m dashboard`` of its own: nothing computed yet."""
    with own_dashboard(tmp_path_factory, "e2e-speed", fill_weights) as server:
        yield server


def test_waits_in_the_browser_are_recorded(browser, speed_server, e2e_faces, artifacts_dir):
    wait_for_warm_server(speed_server.url)
    page = new_page(browser, speed_server.url)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        steps = run_flow(page, e2e_faces)
    finally:
        page.context.close()
    peak_rss = speed_server.peak_rss_bytes()
    record = {name: timing.to_dict() for name, timing in steps.items()}
    record["server_peak_rss_mb"] = round(peak_rss / 2**20) if peak_rss else None
    (artifacts_dir / "speed.json").write_text(json.dumps(record, indent=2))
    for name, timing in steps.items():
        print(
            f"{name:18s} click->data {timing.input_to_data_ms:7.0f} ms  click->drawn {timing.input_to_drawn_ms:7.0f} ms"
            f"  react {timing.react_ms:6.0f} ms  points {timing.points}  polls {timing.polls}"
        )
    assert not errors, errors

    assert steps["first_depth"].types == ("heatmap",)
    assert steps["first_depth"].polls >= 1  # Generate started a job
    default = steps["model3d_cached"]
    assert default.types[0] == "scatter3d" and len(default.types) == 4  # the cloud + measure overlays
    assert 0 < default.points[0] <= DENSITY_POINTS[3]  # the default density's point budget
    assert default.polls == 0  # Generate served the cached depth map at once: no job
    assert steps["model3d_new_face"].polls >= 1  # its depth map was a job
    assert steps["slider_full"].points[0] > default.points[0]  # every pixel, one step up
    assert steps["slider_back"].points == default.points
    assert steps["slider_full"].polls == steps["slider_back"].polls == 0
    compared = steps["compare_one_new"]
    assert compared.types == ("scatter3d", "scatter3d")
    assert 0 < compared.points[0] < default.points[0]  # Compare draws the portrait lighter than the 3D tab
    assert compared.polls >= 1  # the new face's depth map was a job
