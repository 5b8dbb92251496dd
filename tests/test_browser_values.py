"""One gate for browser values (issue 16 item 2): forged page values never become a traceback or library text.

The helpers of :mod:`dashboard.browser_values` are checked alone; then every server callback of the
app is called the way a browser calls it (``/_dash-update-component``, in this process) with the
page's own values where one field at a time is replaced by arbitrary JSON (hypothesis), and the known
defects (``10**400`` in six callbacks, forged click-to-measure points) get their own cases.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard import browser_values, ids
from dashboard.app import create_app
from dashboard.controls import Controls3D, ModelView
from tests.doubles import FakeEstimator, NoJobsRunner
from tests.harness import flows
from tests.harness.dash_client import CallbackError, DashHttp, alert_texts, output
from tests.harness.page_text import internal_leaks
from tests.harness.paths import MODEL, PHOTO, YUNET_PATH

HUGE = 10**400

#: Any JSON value, kept small (deeply nested or long values have their own cases).
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


# -- the helpers ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, derandomize=True)
@given(JSON)
def test_the_helpers_never_raise_and_return_their_type(value):
    number = browser_values.number(value, -5, 5)
    assert number is None or (isinstance(number, float) and math.isfinite(number) and -5 <= number <= 5)
    assert 0.0 <= browser_values.clamped(value, 0.0, 10.0, 2.0) <= 10.0
    assert browser_values.choice(value, ("points", "mesh"), "points") in ("points", "mesh")
    found = browser_values.list_index(value, 3)
    assert found is None or found in (0, 1, 2)
    point = browser_values.point_xyz(value)
    assert point is None or (point.shape == (3,) and np.isfinite(point).all())
    points = browser_values.points_xyz(value, 2)
    assert points is None or (len(points) <= 2 and all(p.shape == (3,) for p in points))
    view = ModelView.parse(value)
    assert view.ref is None and view.controls == Controls3D()
    texts = browser_values.distinct_texts(value, 3)
    assert len(texts) <= 3 and len(set(texts)) == len(texts) and all(isinstance(t, str) for t in texts)


@pytest.mark.parametrize("huge", [HUGE, -HUGE, "1e400", float("nan"), "nan", "-inf", True, [1], {"a": 1}])
def test_huge_or_odd_numbers_are_defaults_never_an_overflow(huge):
    """A JSON integer of 400 digits raised OverflowError in every control that turned it into a float."""
    raw = {"source": None, "smoothing": huge, "density": huge, "depth_scale": huge, "fov_auto": False, "fov_deg": huge}
    view = ModelView.parse(raw)
    assert view.controls == Controls3D() and view.fov_deg is None
    assert browser_values.point_xyz({"x": huge, "y": 0, "z": 0}) is None


def test_forged_points_are_refused_whole():
    """The click-to-measure store's points: exactly three finite numbers each, at most two of them."""
    for forged in ([["a", "b", "c"]], [[1, 2]], [None], [[1.0] * 1_000_000], [[[1, 2, 3], [4, 5, 6]]], [[1, 2, 3]] * 3):
        assert browser_values.points_xyz(forged, 2) is None, str(forged)[:40]
    assert [p.tolist() for p in browser_values.points_xyz([[1, 2, 3], (4.5, 5, 6)], 2)] == [[1, 2, 3], [4.5, 5, 6]]


# -- every callback, as the browser calls it -----------------------------------------------------


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The app in this process with one photo whose depth map is cached, and the page's values for it."""
    app = create_app(
        tmp_path_factory.mktemp("gate") / "cache",
        estimator_factory=lambda *_: FakeEstimator(),
        runner=NoJobsRunner(),
        detector_path=YUNET_PATH,
    )
    client = DashHttp.in_process(app)
    values = flows.open_page(client)
    store = output(flows.upload(client, PHOTO.read_bytes(), PHOTO.name), ids.UPLOADS_STORE, "data")
    sha = store["items"][0]["sha"]
    service = app.face3d.service
    from face3d_core.pipeline import DepthRef

    ref = DepthRef(sha, MODEL, 0)
    service.depth_maps.compute(ref)
    source = ref.to_dict()
    params = Controls3D().to_params(service.cameras.fov(sha).fov_deg)
    vertices = service.models3d.model(ref, params).mesh.vertices_xyz
    values |= {
        ids.UPLOADS_STORE: store,
        ids.DEPTH_RESULT_STORE: source,
        ids.MODEL3D_SOURCE_STORE: source,
        ids.MODEL3D_FOV_AUTO: True,
        ids.DEPTH_FACE: sha,
        ids.MODEL3D_FACE: sha,
        ids.MODEL3D_MEASURE_CLICK: dict(zip("xyz", vertices[len(vertices) // 2].tolist(), strict=True)),
        "model_key": service.models3d.key(ref, params),
    }
    yield client, values
    app.face3d.cache.close()


def _server_callbacks(client: DashHttp) -> list[tuple[dict, dict]]:
    """(callback, one of its inputs) of every callback the server runs (clientside ones have no server code)."""
    return [
        (dep, trigger)
        for dep in client.dependencies()
        if not dep.get("clientside_function")
        for trigger in dep["inputs"]
        if isinstance(trigger["id"], str)
    ]


def _call_and_check(client: DashHttp, dep: dict, trigger: dict, values: dict, caplog) -> None:
    caplog.clear()
    key = (trigger["id"], trigger["property"])
    output_id = dep["output"].strip(".").split("...")[0].split("@")[0].rsplit(".", 1)[0]
    try:
        response = client.call(key, values, output_id=output_id)
    except CallbackError as exc:  # only HTTP statuses a page expects: none for a value a page can send
        raise AssertionError(f"{key}: {exc}") from exc
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith(("dashboard", "face3d"))]
    assert not errors, f"{key}: {errors[0].getMessage()[:300]}"
    for text in alert_texts(response or {}):
        assert not internal_leaks(text), f"{key}: {text[:200]}"
        assert "broadcast" not in text and "Something went wrong" not in text, f"{key}: {text[:200]}"


def _with(values: dict, item: dict, value: object) -> dict:
    return {**values, f"{item['id']}.{item['property']}": value, item["id"]: value}


def test_the_page_s_own_values_pass(page, caplog):
    client, values = page
    for dep, trigger in _server_callbacks(client):
        _call_and_check(client, dep, trigger, values, caplog)


@pytest.mark.parametrize(
    ("component", "prop"),
    [
        (ids.MODEL3D_SMOOTHING, "value"),
        (ids.MODEL3D_DENSITY, "value"),
        (ids.MODEL3D_DEPTH_SCALE, "value"),
        (ids.MODEL3D_FOV, "value"),
        (ids.MODEL3D_RELIEF_WIDTH, "value"),
        (ids.MODEL3D_MEASURE_CLICK, "data"),
    ],
)
def test_a_400_digit_number_is_never_a_traceback(page, caplog, component, prop):
    """Issue 16: ``10**400`` raised OverflowError in six callbacks (the page said "Something went wrong")."""
    client, values = page
    forged = {"x": HUGE, "y": 0, "z": 0} if component == ids.MODEL3D_MEASURE_CLICK else HUGE
    forged_values = {**values, ids.MODEL3D_FOV_AUTO: False, component: forged, ids.MODEL3D_MEASURE_CLEAR: None}
    for dep, trigger in _server_callbacks(client):
        if any(item["id"] == component for item in (*dep["inputs"], *dep["state"])):
            for button in (ids.MODEL3D_DOWNLOAD_RELIEF_STL, ids.MODEL3D_DOWNLOAD_STL):
                forged_values[button] = 1 if trigger["id"] == button else None
            _call_and_check(client, dep, trigger, forged_values, caplog)


@pytest.mark.parametrize(
    "points",
    [[["a", "b", "c"]], [[1, 2]], [None], [[0.5] * 1_000_000], [[[1, 2, 3], [4, 5, 6]]], "junk", [[HUGE, 0, 0]]],
    ids=["text", "two", "null", "million", "nested", "string", "huge"],
)
def test_a_forged_measure_store_starts_again(page, caplog, points):
    """Forged points gave tracebacks, and a nested list put numpy's broadcast text on the page."""
    client, values = page
    state = {"model": values["model_key"], "points": points}  # the shown model's own key: read, not skipped
    response = client.call((ids.MODEL3D_MEASURE_CLICK, "data"), {**values, ids.MODEL3D_MEASURE_STORE: state})
    status = output(response, ids.MODEL3D_MEASURE_STATUS, "children")
    assert status == "Point 1 picked, click a second point.", status


@settings(
    max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_arbitrary_json_in_any_field_of_any_callback(page, caplog, data):
    """Property test: every server callback, one input or state replaced by arbitrary JSON."""
    client, values = page
    callbacks = _server_callbacks(client)
    dep, trigger = data.draw(st.sampled_from(callbacks), label="callback")
    fields = [*dep["inputs"], *dep["state"]]
    forged = data.draw(st.sampled_from(fields), label="field")
    value = data.draw(JSON, label="value")
    _call_and_check(client, dep, trigger, _with(values, forged, value), caplog)
