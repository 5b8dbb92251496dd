"""Wiring of the dashboard over HTTP: layout, ``/_dash-dependencies``, routes, error handling."""

from __future__ import annotations

import json
import re

import pytest

from dashboard import ids
from dashboard.app import create_app, local_bootstrap_css
from tests.doubles import FakeEstimator


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return create_app(tmp_path_factory.mktemp("wiring"), estimator_factory=lambda *_: FakeEstimator())


@pytest.fixture(scope="module")
def client(app):
    return app.server.test_client()


@pytest.fixture(scope="module")
def dependencies(client):
    response = client.get("/_dash-dependencies")
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture(scope="module")
def layout_ids(client):
    found = []

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and "id" in props:
                found.append(props["id"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(client.get("/_dash-layout").get_json())
    return found


def _split_outputs(output: str) -> list[str]:
    """``..a.b...c.d..`` or ``a.b`` -> ``["a.b", "c.d"]`` (duplicate-output hashes kept)."""
    if output.startswith(".."):
        return [part for part in output.strip(".").split("...") if part]
    return [output]


#: Types of the pattern-matching ids.
PATTERN_TYPES = (ids.FACE_BOX, ids.REMOVE_UPLOAD, ids.UPLOAD_AGAIN, ids.COMPARE_ITEM_REMOVE)


def _component(spec: str) -> str:
    return spec.split("@")[0].rsplit(".", 1)[0]


def test_every_referenced_component_exists(dependencies, layout_ids):
    static_ids = {i for i in layout_ids if isinstance(i, str)}
    assert len(static_ids) == len([i for i in layout_ids if isinstance(i, str)]), "duplicate ids"
    for dep in dependencies:
        names = [_component(o) for o in _split_outputs(dep["output"])]
        names += [i["id"] for i in dep["inputs"] + dep["state"]]
        for name in names:
            if name.startswith("{"):
                assert json.loads(name)["type"] in PATTERN_TYPES
            else:
                assert name in static_ids, f"{name} is used by a callback but not in the layout"


def test_every_id_constant_is_in_the_layout(layout_ids):
    static_ids = {i for i in layout_ids if isinstance(i, str)}
    constants = {v for k, v in vars(ids).items() if k.isupper() and isinstance(v, str)}
    constants -= set(PATTERN_TYPES)
    constants -= {ids.TAB_UPLOAD, ids.TAB_DEPTH, ids.TAB_MODEL3D, ids.TAB_COMPARE}  # tab values
    missing = constants - static_ids
    assert not missing, missing
    for prefix in ids.JOB_PREFIXES:
        for make in (ids.job_store, ids.job_interval, ids.job_panel, ids.job_progress, ids.job_cancel):
            assert make(prefix) in static_ids


def test_outputs_are_unique_unless_explicitly_duplicated(dependencies):
    owners = {}
    for dep in dependencies:
        for output in _split_outputs(dep["output"]):
            if "@" in output:
                continue  # allow_duplicate=True
            assert output not in owners, f"{output} has two callbacks"
            owners[output] = dep


def _deps_with_input(dependencies, component, prop):
    return [d for d in dependencies if any(i["id"] == component and i["property"] == prop for i in d["inputs"])]


def test_main_flows_are_wired(dependencies):
    def outputs_of(component, prop):
        return {o for d in _deps_with_input(dependencies, component, prop) for o in _split_outputs(d["output"])}

    assert any(o.startswith("uploads-store.data") for o in outputs_of(ids.UPLOAD, "contents"))
    assert f"{ids.GALLERY}.children" in outputs_of(ids.UPLOADS_STORE, "data")
    assert f"{ids.DEPTH_RESULT_STORE}.data" in outputs_of(ids.DEPTH_GENERATE, "n_clicks")
    assert f"{ids.DEPTH_MAP_GRAPH}.figure" in outputs_of(ids.DEPTH_RESULT_STORE, "data")
    assert f"{ids.MODEL3D_SOURCE_STORE}.data" in outputs_of(ids.MODEL3D_GENERATE, "n_clicks")
    assert f"{ids.COMPARE_RESULT_STORE}.data" in outputs_of(ids.COMPARE_RUN, "n_clicks")
    assert f"{ids.DOWNLOAD}.data" in outputs_of(ids.MODEL3D_DOWNLOAD_GLB, "n_clicks")
    for prefix in ids.JOB_PREFIXES:
        assert f"{ids.job_store(prefix)}.data" in outputs_of(ids.job_cancel(prefix), "n_clicks")
        assert f"{ids.job_progress(prefix)}.value" in outputs_of(ids.job_interval(prefix), "n_intervals")


def test_sliders_only_rebuild_the_figure(dependencies):
    shape = (ids.MODEL3D_SMOOTHING, ids.MODEL3D_DENSITY, ids.MODEL3D_DEPTH_SCALE, ids.MODEL3D_FOV_AUTO, ids.MODEL3D_FOV)
    for slider in (*shape, ids.MODEL3D_DISPLAY, ids.MODEL3D_COLORS):
        deps = _deps_with_input(dependencies, slider, "value")
        outputs = [o for d in deps for o in _split_outputs(d["output"])]
        figure_deps = [d for d in deps if f"{ids.MODEL3D_GRAPH}.figure" in _split_outputs(d["output"])]
        assert len(figure_deps) == 1  # one figure rebuild per move
        assert not any("job" in o for o in outputs)  # never starts the network
        # one callback draws and measures the view (display controls leave the table as it is: see
        # test_one_callback_draws_and_measures_the_view)
        assert f"{ids.MODEL3D_MEASURE_TABLE}.children" in _split_outputs(figure_deps[0]["output"])
        assert len([d for d in deps if f"{ids.MODEL3D_MEASURE_TABLE}.children" in _split_outputs(d["output"])]) == 1


def test_compare_cameras_sync_in_the_browser(dependencies):
    deps = _deps_with_input(dependencies, ids.COMPARE_3D_GRAPH, "relayoutData")
    assert len(deps) == 1 and deps[0]["clientside_function"]["function_name"] == "syncCameras"


def test_page_is_served_without_external_resources(client):
    html = client.get("/").get_data(as_text=True)
    assert "<title>face3d</title>" in html
    external = re.findall(r'(?:href|src)="(https?://[^"]+)"', html)
    if local_bootstrap_css() is not None:
        assert external == []
        assert client.get("/face3d/vendor/bootstrap.min.css").status_code == 200
    assert client.get("/assets/face3d.css").status_code == 200
    assert client.get("/assets/face3d.js").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/face3d/thumb/" + "a" * 64 + ".jpg",
        "/face3d/thumb/..%2F..%2Fetc%2Fpasswd.jpg",
        "/face3d/thumb/ABC.jpg",
    ],
)
def test_thumbnail_route_only_serves_known_hashes(client, path):
    response = client.get(path)
    # 404, or Dash's catch-all page for unknown paths: never a file
    assert response.status_code == 404 or response.mimetype == "text/html"
    assert response.mimetype != "image/jpeg" and b"root:" not in response.data


def _post_callback(client, dependencies, trigger_id, trigger_prop, value, states=None):
    dep = _deps_with_input(dependencies, trigger_id, trigger_prop)[0]
    outputs = [
        {"id": _component(o), "property": o.split("@")[0].rsplit(".", 1)[1]} for o in _split_outputs(dep["output"])
    ]
    inputs = []
    for item in dep["inputs"]:
        entry = {"id": item["id"], "property": item["property"]}
        entry["value"] = value if item["id"] == trigger_id else None
        inputs.append(entry)
    state = [{"id": s["id"], "property": s["property"], "value": (states or {}).get(s["id"])} for s in dep["state"]]
    if not dep["output"].startswith(".."):
        outputs = outputs[0]  # a single-output callback gets one output spec, as the browser sends it
    body = {
        "output": dep["output"],
        "outputs": outputs,
        "inputs": inputs,
        "state": state,
        "changedPropIds": [f"{trigger_id}.{trigger_prop}"],
    }
    return client.post("/_dash-update-component", json=body)


def test_user_error_becomes_an_alert(client, dependencies):
    source = {"sha": "a" * 64, "model": "midas_v21_small_256", "face": 0}
    response = _post_callback(
        client, dependencies, ids.MODEL3D_DOWNLOAD_PLY, "n_clicks", 1, {ids.MODEL3D_SOURCE_STORE: source}
    )
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "no longer stored" in text and ids.ALERTS in text
    assert "Traceback" not in text


def test_unexpected_error_never_shows_a_traceback(app, client, dependencies, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("internal secret /srv/data")

    monkeypatch.setattr(app.face3d.service.access, "require_photo", broken)
    source = {"sha": "b" * 64, "model": "midas_v21_small_256", "face": 0}
    response = _post_callback(client, dependencies, ids.MODEL3D_SOURCE_STORE, "data", source)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "internal secret" not in text and "Traceback" not in text
    assert "reference" in text and ids.ALERTS in text
    assert client.get("/face3d/health").get_json() == {"status": "ok"}  # still serving


def test_health_asks_the_result_store(app, client, monkeypatch):
    from face3d_core.cache import ResultStore

    assert isinstance(app.face3d.cache, ResultStore) and app.face3d.cache.ping()
    assert client.get("/face3d/health").status_code == 200
    monkeypatch.setattr(app.face3d.cache, "ping", lambda: False)  # the store stops answering
    response = client.get("/face3d/health")
    assert response.status_code == 503 and response.get_json()["status"] == "unavailable"
