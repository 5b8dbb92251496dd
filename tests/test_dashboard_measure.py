"""Measure, print, share in the dashboard, as plain functions: tables, click to measure, downloads.

A real service (cache in a temp folder, real YuNet) whose stand-in network returns the true
depth of photos rendered from a head scan (:class:`tests.doubles.KnownSceneEstimator`); the
photos carry an EXIF focal length (35 mm equivalent 37 mm: 40.1 degrees), a second photo has
none.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import zipfile
from html import escape as html_escape
from xml.etree import ElementTree

import numpy as np
import pytest
import trimesh
from dash import no_update
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.callbacks import compare, depth, measure, model3d, upload
from dashboard.callbacks.view3d import shown_model
from dashboard.layout.measure import MEASURE_HINT
from dashboard.services import DepthMissingError, Face3DService, PhotoMissingError, safe_stem
from dashboard.services.exports import ReliefSettings
from face3d_core import figures
from face3d_core.cache import ResultCache
from face3d_core.camera import photo_fov
from face3d_core.compare import ComparisonItems
from face3d_core.errors import ExportError
from face3d_core.images import load_image
from face3d_core.measure import CSV_COLUMNS, MEASUREMENTS
from face3d_core.relief import DEFAULT_RELIEF
from face3d_core.report import value_text
from tests.doubles import KnownSceneEstimator
from tests.harness.callbacks import page_view
from tests.harness.dash_client import data_url

MODEL = "midas_v21_small_256"
#: The browser session of these tests (another one must see nothing of it).
SESSION = "a" * 32
OTHER = "b" * 32
#: (smoothing, density, depth scale) of the 3D tab's defaults.
SLIDERS = (2.0, 3, 1.0)


@pytest.fixture(scope="module")
def env(tmp_path_factory, yunet_path, scene_photos, faces_dir):
    root = tmp_path_factory.mktemp("measure-dash")
    cache = ResultCache(root / "results")
    scenes = [(load_image(photo), np.load(depth_file)) for photo, depth_file in scene_photos]
    estimator = KnownSceneEstimator(scenes)
    service = Face3DService(cache, estimator_factory=lambda *_: estimator, detector_path=yunet_path)
    photos = [photo for photo, _ in scene_photos] + [faces_dir / "skimage_astronaut.png"]
    names = ["scan <b>front</b>.jpg", "scan turned.jpg", "astronaut.png"]
    contents = [data_url(p.read_bytes(), "image/png" if p.suffix == ".png" else "image/jpeg") for p in photos]
    store, _ = upload.handle_upload(service, contents, names, None, session=SESSION)
    shas = [item["sha"] for item in store["items"]]
    sources = []
    for sha in shas:  # what a finished depth job leaves in the cache
        ref = depth.depth_request(service, sha, MODEL, store, session=SESSION)
        service.depth_maps.compute(ref)
        sources.append(ref.to_dict())
    yield {"service": service, "store": store, "shas": shas, "sources": sources, "names": names, "photos": photos}
    cache.close()


def view_of(env, index=0, fov_auto=True, fov_deg=None):
    view = page_view(env["sources"][index], *SLIDERS, fov_auto=fov_auto, fov_deg=fov_deg)
    return shown_model(env["service"], view, session=SESSION)


# -- field of view ----------------------------------------------------------------------------


def test_exif_field_of_view_is_used_and_said(env):
    service, source = env["service"], env["sources"][0]
    expected = photo_fov(env["photos"][0])
    assert expected.source == "exif_35mm" and expected.fov_deg == pytest.approx(40.13, abs=0.01)
    fig, stats, *_ = model3d.render_model3d(service, page_view(source, *SLIDERS), None, session=SESSION)
    assert "FOV 40° from EXIF (35 mm equivalent 37 mm)" in stats
    shown = view_of(env)
    assert shown.params.fov_deg == pytest.approx(expected.fov_deg)
    face_model = service.models3d.model(shown.ref, shown.params)
    # the camera of the whole photo: f = (W / 2) / tan(fov / 2), the same in the crop
    width = service.uploads.require_meta(shown.ref.sha).width
    assert face_model.intrinsics.fx == pytest.approx(width / 2 / math.tan(math.radians(expected.fov_deg) / 2), rel=1e-3)


def test_default_field_of_view_without_exif_and_the_override(env):
    service = env["service"]
    _, stats, *_ = model3d.render_model3d(service, page_view(env["sources"][2], *SLIDERS), None, session=SESSION)
    assert "FOV 55° (default: no focal length in the photo's EXIF)" in stats
    _, stats, *_ = model3d.render_model3d(
        service, page_view(env["sources"][0], *SLIDERS, fov_auto=False, fov_deg=62), None, session=SESSION
    )
    assert "FOV 62° (set by you)" in stats
    assert view_of(env, 0, False, 62).params.fov_deg == 62.0
    assert view_of(env, 0, True, 62).params.fov_deg == pytest.approx(40.13, abs=0.01)  # auto wins over the slider
    # switching "auto (EXIF)" off starts the slider at the photo's value
    assert measure.fov_slider(service, True, env["sources"][0], session=SESSION) == (True, no_update)
    assert measure.fov_slider(service, False, env["sources"][0], session=SESSION) == (False, 40)
    assert measure.fov_slider(service, False, env["sources"][2], session=SESSION) == (False, 55)
    assert measure.fov_slider(service, False, None, session=SESSION) == (False, no_update)
    # the measurement table's caption says which field of view was used
    *_, info = measure.render_measurements(
        service, page_view(env["sources"][0], *SLIDERS, fov_auto=False, fov_deg=62), session=SESSION
    )
    assert info == "FOV 62° (set by you)"


# -- measurement tables ---------------------------------------------------------------------


def _text(component) -> str:
    return json.dumps(component.to_plotly_json(), default=str)


def test_measurement_table_shows_values_uncertainty_and_the_scale_reference(env):
    service = env["service"]
    table, measure_off, model_off, info = measure.render_measurements(
        service, page_view(env["sources"][0], *SLIDERS), session=SESSION
    )
    assert not measure_off and not model_off and "from EXIF" in info
    shown = view_of(env)
    result = service.models3d.measurements(shown.ref, shown.params, shown.fov.source)
    text = _text(table)
    for m in result.measurements:
        assert m.label in text and value_text(m) in text
    assert "scale reference: assumed 63 mm" in text  # the eye distance is set, not measured
    assert "right nose wing to left nose wing" in text  # what it is measured between
    assert "relative depth only" in text  # the honest note
    assert result["eye_distance"].reference and result["eye_distance"].value_mm == pytest.approx(63.0, abs=1e-3)
    assert 30 < result["nose_width"].value_mm < 60 and result["nose_width"].sigma_mm > 0
    assert "Head facing the camera" in text  # the head pose, from the face itself


def test_turned_face_table_shows_its_pose_and_what_is_refused_or_mirrored(env):
    """The scan turned 20°: the pose is said; a hidden far side is mirrored (said so) or refused (with the reason)."""
    service = env["service"]
    table, *_ = measure.render_measurements(service, page_view(env["sources"][1], *SLIDERS), session=SESSION)
    text = _text(table)
    shown = view_of(env, 1)
    result = service.models3d.measurements(shown.ref, shown.params, shown.fov.source)
    assert 13 < result.pose.yaw_deg < 25 and "Head turned" in text
    special = [m for m in result.measurements if m.refused or m.status == "mirrored"]
    assert special  # the far side of a head turned 20 degrees is partly hidden
    for m in special:
        assert json.dumps(value_text(m))[1:-1] in text and json.dumps(m.note)[1:-1] in text


def test_measurement_table_without_a_model_or_a_face(env, uploaded_noface):
    service = env["service"]
    table, measure_off, model_off, info = measure.render_measurements(
        service, page_view(None, *SLIDERS), session=SESSION
    )
    assert measure_off and model_off and info == "" and "Generate a 3D model" in _text(table)
    table, measure_off, model_off, _ = measure.render_measurements(
        service, page_view(uploaded_noface, *SLIDERS), session=SESSION
    )
    assert measure_off and not model_off and "no face points" in _text(table)


@pytest.fixture(scope="module")
def uploaded_noface(env, faces_dir):
    service = env["service"]
    name = "skimage_coffee_noface.png"
    store, _ = upload.handle_upload(
        service, [data_url((faces_dir / name).read_bytes(), "image/png")], [name], None, session=SESSION
    )
    sha = store["items"][0]["sha"]
    ref = depth.depth_request(service, sha, MODEL, store, session=SESSION)
    assert ref.face_index is None
    service.depth_maps.compute(ref)
    return ref.to_dict()


def test_compare_measurements_side_by_side(env):
    service = env["service"]
    refs = [depth.depth_request(service, sha, MODEL, env["store"], session=SESSION) for sha in env["shas"][:2]]
    run = service.comparisons.compute(ComparisonItems(refs))
    key, result = run.key, run.result
    table, disabled = measure.render_compare_measurements(service, {"key": key}, session=SESSION)
    text = _text(table)
    assert not disabled
    assert "scan &lt;b&gt;front&lt;/b&gt;.jpg" not in text and "scan <b>front</b>.jpg" in text  # text, not HTML
    assert text.count("(reference)") == 2 and "Nose width (alae) (mm)" in text
    measured = measure.compare_measurements(service, result)
    for m in measured:
        assert m is not None and m["nose_width"].value_mm > 0
    assert measure.render_compare_measurements(service, None, session=SESSION) == (None, True)


# -- click to measure -----------------------------------------------------------------------


def _vertices(env, index=0):
    shown = view_of(env, index)
    return shown, env["service"].models3d.model(shown.ref, shown.params).mesh.vertices_xyz.astype(np.float64)


def _patched(patch) -> dict[int, dict[str, list]]:
    """Trace index -> {axis: values} set by a figure patch."""
    out: dict[int, dict[str, list]] = {}
    for op in patch.to_plotly_json()["operations"]:
        assert op["operation"] == "Assign"
        _, index, axis = op["location"]
        out.setdefault(index, {})[axis] = op["params"]["value"]
    return out


def test_click_state_machine_measures_straight_and_along_the_surface(env):
    service = env["service"]
    shown, verts = _vertices(env)
    face_model = service.models3d.model(shown.ref, shown.params)
    landmarks = face_model.landmarks
    # two clicks near the nose tip and the right mouth corner (a little off the surface, as plotly reports)
    a_click = landmarks["nose_tip"] + [0.3, -0.2, 0.4]
    b_click = landmarks["mouth_right"] + [-0.2, 0.3, 0.5]

    patch, state, status = measure.measure_click(
        service, shown, {"x": a_click[0], "y": a_click[1], "z": a_click[2]}, None
    )
    assert status == "Point 1 picked, click a second point."
    a = verts[np.argmin(np.linalg.norm(verts - a_click, axis=1))]  # the nearest vertex, found independently
    assert np.allclose(state["points"][0], a, atol=1e-3)
    ops = _patched(patch)
    assert set(ops) == {figures.MEASURE_POINTS_INDEX, figures.MEASURE_STRAIGHT_INDEX, figures.MEASURE_PATH_INDEX}
    assert len(ops[figures.MEASURE_POINTS_INDEX]["x"]) == 1 and ops[figures.MEASURE_PATH_INDEX]["x"] == []

    # point 1 again: still waiting for a second point
    with pytest.raises(PreventUpdate):
        measure.measure_click(service, shown, {"x": a[0], "y": a[1], "z": a[2]}, state)

    started = time.perf_counter()
    patch, state2, status = measure.measure_click(
        service, shown, {"points": [{"x": b_click[0], "y": b_click[1], "z": b_click[2]}]}, state
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    b = verts[np.argmin(np.linalg.norm(verts - b_click, axis=1))]
    straight = float(np.linalg.norm(b - a))
    assert f"Straight line {straight:.1f} mm" in status
    surface = float(status.split("along the surface ")[1].split(" mm")[0])
    assert straight <= surface <= 1.6 * straight  # over the cheek: longer than the chord, not absurdly
    assert "±" in status and "Click again" in status
    ops = _patched(patch)
    path = np.stack([ops[figures.MEASURE_PATH_INDEX][k] for k in "xyz"], axis=1)
    assert len(path) > 5
    # drawn 1 mm in front of the surface: the path's length is close to the measured one
    assert np.linalg.norm(np.diff(path, axis=0), axis=1).sum() == pytest.approx(surface, rel=0.1)
    assert len(state2["points"]) == 2
    print(f"click to measure (server side, graph built in the background): {elapsed_ms:.0f} ms")

    # a third click starts a new measurement, even on a point of the last one; Clear empties everything
    _, state3, status = measure.measure_click(service, shown, dict(zip("xyz", b, strict=True)), state2)
    assert status.startswith("Point 1") and np.allclose(state3["points"], [b], atol=1e-3)
    patch, state4, status = measure.clear_measurement()
    assert state4 is None and status == MEASURE_HINT
    assert all(v == [] for trace in _patched(patch).values() for v in trace.values())


def test_a_click_on_a_photo_coloured_mesh_uses_the_clicked_triangle(env):
    service = env["service"]
    shown = view_of(env)
    mesh = service.models3d.display_mesh(shown.ref, shown.params, figures.MAX_DISPLAY_TRIANGLES)
    i, j, k = (int(v) for v in mesh.faces[len(mesh.faces) // 2])
    # plotly's x/y/z are not data coordinates here (one colour per triangle): they must be ignored
    click = {"points": [{"x": 0.01, "y": -0.02, "z": 0.2, "i": i, "j": j, "k": k, "curveNumber": 0}]}
    xyz = measure.clicked_point(service, shown, click)
    assert np.allclose(xyz, mesh.vertices_xyz[[i, j, k]].mean(axis=0))
    assert measure.clicked_point(service, shown, {"x": 1, "y": 2, "z": 3, "i": 10**9, "j": 0, "k": 1}) is None
    assert measure.clicked_point(service, shown, {"points": []}) is None
    assert measure.clicked_point(service, shown, {"x": "nan", "y": 0, "z": 0}) is None


def test_state_of_another_model_starts_again_and_the_first_click_finds_the_graph_built(env):
    service = env["service"]
    shown = view_of(env, 0, False, 48)  # a new field of view: a new model, its graph built in the background
    face_model = service.models3d.model(shown.ref, shown.params)
    v = face_model.mesh.vertices_xyz.astype(np.float64)
    stale = {"model": "another model", "points": [v[0].tolist()]}
    _, state, status = measure.measure_click(service, shown, dict(zip("xyz", v[10], strict=True)), stale)
    assert status.startswith("Point 1") and len(state["points"]) == 1
    service.models3d.wait_for_graph(service.models3d.key(shown.ref, shown.params))
    result = service.models3d.surface_path(shown.ref, shown.params, v[10], v[len(v) // 2])
    assert result.timings_ms["graph"] == 0.0  # built before the click


def test_clicks_without_a_model_or_a_position_do_nothing(env):
    with pytest.raises(PreventUpdate):
        measure.measure_click(env["service"], None, {"x": 0, "y": 0, "z": 0}, None)
    with pytest.raises(PreventUpdate):
        measure.measure_click(env["service"], view_of(env), {"points": [{"x": None}]}, None)


def test_every_3d_figure_carries_the_empty_measure_traces(env):
    fig, *_ = model3d.render_model3d(
        env["service"], page_view(env["sources"][0], *SLIDERS, display="mesh", colors="photo"), None, session=SESSION
    )
    assert [t["type"] for t in fig["data"]] == ["mesh3d", "scatter3d", "scatter3d", "scatter3d"]
    assert all(fig["data"][i]["x"] == [] for i in (1, 2, 3))
    assert fig["data"][0]["hoverinfo"] == "none"  # clicks reach the app, no hover label


# -- downloads ------------------------------------------------------------------------------


def _download(env, button, *, source="first", **kw):
    """A download as the page asks for it (the first photo's 3D view unless ``source`` says otherwise)."""
    values = dict(view=page_view(env["sources"][0] if source == "first" else source, 2.0, 3, 1.0), session=SESSION)
    values.update(kw)
    return measure.download_file(env["service"], button, **values)


def test_measurement_downloads_csv_and_json(env):
    name, data, _ = _download(env, ids.MODEL3D_DOWNLOAD_MEASURE_CSV)
    assert name == safe_stem(env["names"][0]) + "_measurements.csv"
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert list(rows[0]) == list(CSV_COLUMNS) and [r["measurement"] for r in rows] == [m[0] for m in MEASUREMENTS]
    assert rows[0]["reference"] == "True" and rows[0]["fov_source"] == "exif_35mm"
    assert rows[0]["image"] == "scan <b>front</b>.jpg"
    name, data, _ = _download(env, ids.MODEL3D_DOWNLOAD_MEASURE_JSON)
    document = json.loads(data)
    (face,) = document["faces"]
    assert face["scale_source"] == "eyes" and len(face["measurements"]) == len(MEASUREMENTS)
    by_name = {m["name"]: m for m in face["measurements"]}
    assert float(rows[1]["value_mm"]) == by_name["nose_width"]["value_mm"]


def _closed(data: bytes, file_type: str) -> trimesh.Trimesh:
    if file_type == "3mf":  # read by hand (trimesh's 3MF reader needs lxml)
        root = ElementTree.fromstring(zipfile.ZipFile(io.BytesIO(data)).read("3D/3dmodel.model"))
        ns = {"m": "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"}
        assert root.get("unit") == "millimeter"
        vertices = [[float(v.get(a)) for a in "xyz"] for v in root.iterfind(".//m:vertex", ns)]
        triangles = [[int(t.get(a)) for a in ("v1", "v2", "v3")] for t in root.iterfind(".//m:triangle", ns)]
        mesh = trimesh.Trimesh(vertices, triangles, process=False)
    else:
        mesh = trimesh.load(io.BytesIO(data), file_type=file_type, force="mesh")
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    return mesh


def test_printable_relief_stl_and_3mf(env):
    name, stl, note = _download(env, ids.MODEL3D_DOWNLOAD_RELIEF_STL, relief=(None, None, None))
    assert name.endswith("_relief.stl") and "base 3 mm" in note and f"relief {DEFAULT_RELIEF:g}×" in note
    default = _closed(stl, "stl")
    width, height, depth_mm = default.extents
    assert width == pytest.approx(80.0, abs=0.5)
    true = _closed(_download(env, ids.MODEL3D_DOWNLOAD_RELIEF_STL, relief=(80, 3, 1.0))[1], "stl")
    # the relief scales the face's depth above the base: twice as deep at 1x as at 0.5x
    assert (true.extents[2] - 3.0) == pytest.approx(2 * (depth_mm - 3.0), rel=0.02)
    print(
        f"relief 80 mm wide: {width:.0f} x {height:.0f} x {depth_mm:.0f} mm at 0.5x, "
        f"{true.extents[2]:.0f} mm deep at 1x"
    )
    name, threemf, _ = _download(env, ids.MODEL3D_DOWNLOAD_RELIEF_3MF, relief=(120, 2, 0.5))
    assert name.endswith(".3mf") and "3D/3dmodel.model" in zipfile.ZipFile(io.BytesIO(threemf)).namelist()
    assert _closed(threemf, "3mf").extents[0] == pytest.approx(120.0, abs=0.5)


@pytest.mark.parametrize(
    "values, message",
    [
        ((500, 3, 0.5), "Width must be between 20 and 300 mm"),
        ((80, 0.2, 0.5), "Base thickness must be between 1 and 20 mm"),
        ((80, 3, 9), "Relief must be between 0.1 and 2"),
        (("wide", 3, 0.5), "Width must be between"),
        (("1e400", 3, 0.5), "Width must be between 20 and 300 mm; it is '1e400'"),
        ((10**400, 3, 0.5), "Width must be between"),
        ((True, 3, 0.5), "Width must be between"),
        (([80], 3, 0.5), "Width must be between"),
        (("nan", 3, 0.5), "Width must be between"),
    ],
)
def test_relief_settings_out_of_range_are_user_errors(values, message):
    with pytest.raises(ExportError, match=message):
        ReliefSettings.from_values(*values)


def test_relief_fields_send_what_was_typed_and_messages_repeat_at_most_40_characters():
    """An unreadable width is refused with a message, never silently the 80 mm default."""
    from dashboard.layout.measure import relief_controls

    fields = [
        c
        for c in _walk(relief_controls())
        if getattr(c, "id", None) in (ids.MODEL3D_RELIEF_WIDTH, ids.MODEL3D_RELIEF_BASE, ids.MODEL3D_RELIEF_SCALE)
    ]
    # a number field hands the page None for "1e400" or letters (read as "empty": the default)
    assert len(fields) == 3 and all(f.type == "text" and f.inputMode == "decimal" for f in fields)
    assert ReliefSettings.from_values(" 80,5 ", "3", "0.5") == ReliefSettings(80.5, 3.0, 0.5)
    with pytest.raises(ExportError) as caught:
        ReliefSettings.from_values("9" * 1_000_000, 3, 0.5)
    assert len(caught.value.web_message) < 120, caught.value.web_message
    assert "'" + "9" * 40 + "...'" in caught.value.web_message


def _walk(component):
    yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children] if children is not None else []:
        if hasattr(child, "to_plotly_json"):
            yield from _walk(child)


def test_relief_settings_defaults():
    assert ReliefSettings.from_values(None, "", None) == ReliefSettings(80.0, 3.0, DEFAULT_RELIEF)
    assert DEFAULT_RELIEF < 1


def test_face_report_download(env):
    name, data, _ = _download(env, ids.MODEL3D_DOWNLOAD_REPORT)
    html = data.decode("utf-8")
    assert name == safe_stem(env["names"][0]) + "_report.html"
    assert "scan &lt;b&gt;front&lt;/b&gt;.jpg" in html and "scan <b>front</b>" not in html
    assert "FOV 40° from EXIF" in html and "Nose width (alae)" in html
    assert 'id="face3d-plotly-gz"' in html and len(data) < 5_000_000


def test_compare_downloads(env):
    service = env["service"]
    refs = [depth.depth_request(service, sha, MODEL, env["store"], session=SESSION) for sha in env["shas"][:2]]
    key = service.comparisons.compute(ComparisonItems(refs)).key
    name, data, _ = _download(env, ids.COMPARE_DOWNLOAD_MEASURE_CSV, compare_data={"key": key})
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert name == "face3d_comparison_measurements.csv"
    assert len(rows) == 2 * len(MEASUREMENTS) and {r["image"] for r in rows} == set(env["names"][:2])
    assert {(r["model"], r["precision"]) for r in rows} == {(MODEL, "fp32")}  # the network of each row
    name, data, _ = _download(env, ids.COMPARE_DOWNLOAD_REPORT, compare_data={"key": key}, compare_pair=(1, 0))
    html = data.decode("utf-8")
    assert "Measurements side by side" in html and "Depth profiles" in html
    first, second = (html_escape(f"{n} · MiDaS small") for n in env["names"][1::-1])
    assert f"Difference: {first} minus {second}" in html  # the pair chosen on the page
    size_mb = len(data) / 1e6
    print(f"comparison report of 2 faces: {size_mb:.2f} MB")
    assert size_mb < 5
    with pytest.raises(Exception, match="Run a comparison first"):
        _download(env, ids.COMPARE_DOWNLOAD_REPORT, compare_data=None)


def test_downloads_need_a_model(env):
    with pytest.raises(Exception, match="Generate the 3D model first"):
        _download(env, ids.MODEL3D_DOWNLOAD_REPORT, source=None)


def test_compare_3d_views_use_each_photos_field_of_view(env):
    service = env["service"]
    refs = [
        depth.depth_request(service, sha, MODEL, env["store"], session=SESSION)
        for sha in (env["shas"][0], env["shas"][2])
    ]
    settings = compare.compare_settings(service, refs)
    assert settings[0][1].source == "exif_35mm" and settings[1][1].source == "default"
    assert settings[0][0].fov_deg == pytest.approx(40.13, abs=0.01) and settings[1][0].fov_deg == 55.0


def test_figure_patch_size_is_small(env):
    """A click sends the overlay only: well under the model figure's size."""
    service = env["service"]
    shown, verts = _vertices(env)
    fig, *_ = model3d.render_model3d(service, page_view(env["sources"][0], *SLIDERS), None, session=SESSION)
    _, state, _ = measure.measure_click(service, shown, dict(zip("xyz", verts[100], strict=True)), None)
    patch, _, _ = measure.measure_click(service, shown, dict(zip("xyz", verts[len(verts) // 2], strict=True)), state)
    patch_bytes = len(json.dumps(patch.to_plotly_json()))
    assert patch_bytes < figures.figure_json_bytes(fig) / 20


def test_another_session_sees_nothing_of_these_photos(env):
    """Measurements, clicks, reliefs, reports and comparisons are served only to the session that uploaded."""
    service, source = env["service"], env["sources"][0]
    with pytest.raises(PhotoMissingError):
        measure.render_measurements(service, page_view(source, *SLIDERS), session=OTHER)
    with pytest.raises(PhotoMissingError):
        shown_model(service, page_view(source, *SLIDERS), session=OTHER)
    for button in (ids.MODEL3D_DOWNLOAD_MEASURE_CSV, ids.MODEL3D_DOWNLOAD_RELIEF_STL, ids.MODEL3D_DOWNLOAD_REPORT):
        with pytest.raises(PhotoMissingError):
            _download(env, button, session=OTHER)
    assert measure.fov_slider(service, False, source, session=OTHER) == (False, no_update)
    refs = [depth.depth_request(service, sha, MODEL, env["store"], session=SESSION) for sha in env["shas"][:2]]
    key = service.comparisons.compute(ComparisonItems(refs)).key
    assert measure.render_compare_measurements(service, {"key": key}, session=OTHER) == (None, True)
    with pytest.raises(DepthMissingError, match="Run a comparison first"):
        _download(env, ids.COMPARE_DOWNLOAD_REPORT, compare_data={"key": key}, session=OTHER)


def test_reports_and_files_carry_the_sessions_own_names(env):
    """The same photo uploaded by another session under another name: each sees its own name."""
    service = env["service"]
    data = env["photos"][0].read_bytes()
    store, _ = upload.handle_upload(service, [data_url(data)], ["bob's face.jpg"], None, session=OTHER)
    ref = depth.depth_request(service, store["items"][0]["sha"], MODEL, store, session=OTHER)
    assert ref.to_dict() == env["sources"][0]  # the same content: the same cached depth map
    name, html, _ = _download(env, ids.MODEL3D_DOWNLOAD_REPORT, session=OTHER)
    assert name == "bob_s_face_report.html" and "bob&#x27;s face.jpg" in html.decode()
    assert "front" not in html.decode()
    name, _, _ = _download(env, ids.MODEL3D_DOWNLOAD_REPORT)
    assert name == safe_stem(env["names"][0]) + "_report.html"


def test_reliefs_reports_and_full_density_models_wait_their_turn(env, monkeypatch):
    """Issue 16: with every turn taken, heavy work waits (and is refused after its limit); the default view never."""
    import threading

    from dashboard.services import ServerBusyError

    service = env["service"]
    shown = view_of(env)
    full = model3d.Controls3D.from_values(2.0, 4, 1.0, None, None).to_params(shown.params.fov_deg)
    monkeypatch.setattr(service.heavy, "wait_s", 0.3)
    hold = threading.Event()
    holding = threading.Barrier(service.heavy.slots + 1)

    def occupy() -> None:
        with service.heavy.turn("someone else's report"):
            holding.wait(10)
            hold.wait(10)

    others = [threading.Thread(target=occupy) for _ in range(service.heavy.slots)]
    for other in others:
        other.start()
    holding.wait(10)
    try:
        assert service.models3d.model(shown.ref, shown.params).n_points > 0  # the default view never waits
        for heavy_call in (
            lambda: _download(env, ids.MODEL3D_DOWNLOAD_RELIEF_STL),
            lambda: _download(env, ids.MODEL3D_DOWNLOAD_REPORT),
            lambda: service.models3d.model(shown.ref, full),
        ):
            with pytest.raises(ServerBusyError, match="busy"):
                heavy_call()
    finally:
        hold.set()
        for other in others:
            other.join(10)
    name, _, note = _download(env, ids.MODEL3D_DOWNLOAD_RELIEF_STL)  # a turn is free again
    assert name.endswith("_relief.stl") and "triangles" in note
