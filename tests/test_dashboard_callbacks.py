"""Callbacks as plain functions: call them with values, check what they return.

A real service (cache in a temp folder, real YuNet detector, real photos) with a fake depth
network, so no weights are needed and the network's calls can be counted.
"""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile

import numpy as np
import plotly.graph_objects as go
import pytest
from dash import no_update

from dashboard import ids
from dashboard.callbacks import choices, compare, depth, downloads, model3d, upload
from dashboard.callbacks.jobs import StartOutcome, cancel_view, poll_view, start_view
from dashboard.controls import Controls3D
from dashboard.errors import alert_for_exception
from dashboard.jobs import DiskJobStore, JobState, JobStatus, ThreadJobRunner
from dashboard.services import Face3DService, PhotoMissingError, safe_stem
from face3d_core import figures
from face3d_core.cache import ResultCache
from face3d_core.compare import ComparisonError, ComparisonItems
from face3d_core.errors import Face3DError, InvalidImageError, NoFaceFoundError
from face3d_core.pipeline import DepthRef
from tests.doubles import FakeEstimator, NoJobsRunner
from tests.harness.callbacks import finish_job, page_view
from tests.harness.page_text import component_text, internal_leaks
from tests.harness.service_calls import upload_meta

MODEL = "midas_v21_small_256"
#: The browser session of these tests (callbacks get it from the cookie; as plain functions it is passed in).
SESSION = "5" * 32


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="module")
def env(tmp_path_factory, yunet_path, faces_dir):
    root = tmp_path_factory.mktemp("dash")
    cache = ResultCache(root / "results")
    estimator = FakeEstimator()
    service = Face3DService(cache, estimator_factory=lambda *_: estimator, detector_path=yunet_path)
    store = DiskJobStore(root / "jobs")
    runner = ThreadJobRunner(store, service.tasks(), max_workers=1)
    yield {"service": service, "runner": runner, "estimator": estimator, "faces": faces_dir, "cache": cache}
    runner.shutdown()
    store.close()
    cache.close()


@pytest.fixture(scope="module")
def uploaded(env):
    """Upload three photos once: a portrait, two people, no face."""
    names = ["fr_obama_official_portrait.jpg", "fr_two_people.jpg", "skimage_coffee_noface.png"]
    contents = [data_url((env["faces"] / n).read_bytes()) for n in names]
    store, messages = upload.handle_upload(env["service"], contents, names, None, session=SESSION)
    return {"store": store, "messages": messages, "shas": [i["sha"] for i in store["items"]], "names": names}


def run_job(env, outcome: StartOutcome) -> dict:
    """Poll a started job like the interval does; return the result store value."""
    return finish_job(env["runner"], outcome, SESSION)


# -- upload -------------------------------------------------------------------------


def test_upload_keeps_good_files_and_explains_bad_ones(env, faces_dir):
    good = (faces_dir / "skimage_astronaut.png").read_bytes()
    corrupt = (faces_dir / "pillow_hopper_128.jpg").read_bytes()[:2000]
    contents = [
        data_url(good, "image/png"),
        data_url(b"hello, not an image", "text/plain"),
        data_url(corrupt),
        "garbage",
    ]
    names = ["astronaut.png", "notes.txt", "broken.jpg", "weird.bin"]
    store, messages = upload.handle_upload(env["service"], contents, names, {"items": []}, session=SESSION)
    assert len(store["items"]) == 1
    text = json.dumps([m.to_plotly_json() for m in messages], default=str)
    assert "Added 1 photo" in text
    assert "notes.txt" in text and "not a JPEG or PNG" in text
    assert "broken.jpg" in text and "damaged" in text
    assert "weird.bin" in text


def test_upload_too_large_file_gets_a_message(env):
    big = b"\xff\xd8\xff" + b"\0" * (26 * 1024 * 1024)
    store, messages = upload.handle_upload(
        env["service"], [data_url(big)], ["huge.jpg"], {"items": []}, session=SESSION
    )
    assert store["items"] == []
    assert "too large" in json.dumps(messages[0].to_plotly_json(), default=str)


def test_upload_stores_keys_only_and_detects_faces(env, uploaded):
    store = uploaded["store"]
    assert len(store["items"]) == 3
    assert len(json.dumps(store)) < 500  # keys, not pixels
    portrait, two, noface = (upload_meta(env["service"], s, SESSION) for s in uploaded["shas"])
    assert portrait.face_count == 1 and two.face_count == 2 and noface.face_count == 0
    assert store["items"][2]["face"] is None
    assert portrait.thumb_jpeg[:3] == b"\xff\xd8\xff"


def test_same_photo_twice_is_recognised(env, uploaded):
    data = (env["faces"] / uploaded["names"][0]).read_bytes()
    store, messages = upload.handle_upload(
        env["service"], [data_url(data)], [uploaded["names"][0]], uploaded["store"], session=SESSION
    )
    assert len(store["items"]) == 3
    assert "already in the gallery" in json.dumps(messages[0].to_plotly_json(), default=str)


def test_rejected_files_messages():
    messages = upload.rejected_messages({"files": [{"name": "<b>big</b>.jpg", "size": 40_000_000}, "junk"]})
    assert len(messages) == 1
    text = json.dumps(messages[0].to_plotly_json(), default=str)
    assert "40.0 MB" in text and "<b>big</b>.jpg" in text  # shown as text (React escapes it)
    assert upload.rejected_messages(None) == []


def test_gallery_cards_boxes_and_empty_state(env, uploaded):
    children, count = upload.render_gallery(
        env["service"], uploaded["store"], lambda sha: f"/t/{sha}.jpg", session=SESSION
    )
    assert count == "3"
    text = json.dumps([c.to_plotly_json() for c in children], default=str)
    assert text.count(ids.FACE_BOX) == 3  # 1 + 2 faces, none on the coffee cup
    assert "No face found" in text and "2 faces" in text
    empty, count = upload.render_gallery(env["service"], None, lambda sha: "", session=SESSION)
    assert count == "0" and "Upload a face photo to begin" in json.dumps(empty[0].to_plotly_json(), default=str)


def test_gallery_reports_photos_no_longer_cached(env):
    store = {"items": [{"sha": "f" * 64, "face": 0}]}
    children, count = upload.render_gallery(env["service"], store, lambda sha: "", session=SESSION)
    assert count == "0"
    assert "no longer stored" in json.dumps(children[0].to_plotly_json(), default=str)


def test_pick_and_remove_faces(uploaded):
    two = uploaded["shas"][1]
    picked = upload.pick_face(uploaded["store"], two, 1)
    assert upload.face_for(picked, two) == 1
    removed = upload.remove_photo(picked, two)
    assert two not in [i["sha"] for i in removed["items"]] and len(removed["items"]) == 2


def test_store_items_ignores_junk():
    junk = {"items": [{"sha": "../../etc/passwd"}, "x", {"sha": "a" * 64, "face": -3}, {"sha": "a" * 64}]}
    assert upload.store_items(junk) == [{"sha": "a" * 64, "face": None}]
    assert upload.store_items("nonsense") == []
    # a forged store of a million photos costs no more than a full gallery
    forged = {"items": [{"sha": f"{i:064x}", "face": 0} for i in range(1_000_000)]}
    started = time.perf_counter()
    assert len(upload.store_items(forged)) == upload.MAX_UPLOADS
    assert time.perf_counter() - started < 0.05


def test_comparison_keys_from_the_browser_are_checked_before_any_read(env):
    reads = []
    comparisons = env["service"].comparisons
    original = comparisons.store.get
    try:
        comparisons.store.get = lambda key, default=None: reads.append(key) or original(key, default)
        for junk in ("face3d/" + "x" * (25 * 1024 * 1024), "face3d/v2/depth/" + "a" * 64 + "/m/" + "0" * 20, None, 7):
            assert comparisons.cached(junk) is None
        assert reads == []
        key = "face3d/v2/compare/" + "a" * 64 + "/midas_v21_small_256/" + "0" * 20
        assert comparisons.cached(key) is None and reads == [key]  # well-formed: looked up (and absent)
    finally:
        comparisons.store.get = original


# -- choices ------------------------------------------------------------------------


def test_face_options_and_sync(env, uploaded):
    options = choices.face_options(
        env["service"], upload.pick_face(uploaded["store"], uploaded["shas"][1], 1), session=SESSION
    )
    labels = [o["label"] for o in options]
    assert "fr_two_people.jpg (face 2 of 2)" in labels
    assert any("no face found" in label for label in labels)
    first, second = options[0]["value"], options[1]["value"]
    assert choices.sync_faces(options, None, None, None) == first
    assert choices.sync_faces(options, first, second, ids.MODEL3D_FACE) == second
    assert choices.sync_faces(options, second, first, ids.DEPTH_FACE) == second
    assert choices.sync_faces([], "x", "y", None) is None
    assert choices.compare_selection(options, None) == [first, second]
    assert choices.compare_selection(options, ["gone", second]) == [second]
    for junk in (5, 1.5, True, {second: 1}, second):  # no choice from the page: the first two, never a TypeError
        assert choices.compare_selection(options, junk) == [first, second]
    assert choices.compare_selection(options[:1], None) == [first]  # one face, to compare under several models
    # photos uploaded one at a time: the second joins the first (the e2e flows clicked Compare with one face)
    assert choices.compare_selection(options[:2], [first], options[:1]) == [first, second]
    assert choices.compare_selection(options, [second], options) == [second]  # a narrowed choice stays


def test_model_options_show_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("FACE3D_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FACE3D_OFFLINE", "1")
    (tmp_path / "midas_v21_small_256.pt").write_bytes(b"x")
    options = {o["value"]: o["label"] for o in choices.model_options()}
    assert options[MODEL].startswith("✓")
    assert "weights missing" in options["dpt_large_384"]
    info = component_text(choices.model_info("dpt_large_384"))
    assert "dpt_large_384.pt" in info and "https://github.com/isl-org/MiDaS" in info and "FACE3D_WEIGHTS_DIR" in info
    assert "face3d models --download dpt_large_384" in info  # the copyable command
    assert str(tmp_path) not in info and internal_leaks(info) == []  # no server folder on the page
    monkeypatch.delenv("FACE3D_OFFLINE")
    assert "MB download" in {o["value"]: o["label"] for o in choices.model_options()}["dpt_large_384"]
    assert choices.valid_model("nonsense") == MODEL


# -- depth --------------------------------------------------------------------------


def test_generate_depth_then_served_from_cache(env, uploaded):
    sha = uploaded["shas"][0]
    calls = env["estimator"].calls
    outcome = depth.start_depth(env["service"], env["runner"], sha, MODEL, uploaded["store"], session=SESSION)
    assert outcome.job_id is not None
    result = run_job(env, outcome)
    assert result == {"sha": sha, "model": MODEL, "face": 0, "precision": "fp32"}
    assert env["estimator"].calls == calls + 1
    again = depth.start_depth(env["service"], env["runner"], sha, MODEL, uploaded["store"], session=SESSION)
    assert again.job_id is None and again.result == result  # second request: cache, no job
    assert env["estimator"].calls == calls + 1

    photo, depth_fig, caption, empty_hidden, results_hidden, disabled = depth.render_depth(
        env["service"], result, "Grayscale", session=SESSION
    )
    assert isinstance(photo, go.Figure) and isinstance(depth_fig, go.Figure)
    assert depth_fig.data[0].type == "heatmap" and depth_fig.data[0].zmax == 1.0
    assert "Lighter = nearer" in caption and empty_hidden and not results_hidden and not disabled
    viridis = depth.render_depth(env["service"], result, "Viridis", session=SESSION)[1]
    assert viridis.data[0].colorscale != depth_fig.data[0].colorscale


def test_depth_without_a_photo_is_a_user_error(env):
    with pytest.raises(Face3DError) as info:
        depth.start_depth(env["service"], env["runner"], None, MODEL, None, session=SESSION)
    assert "Upload" in info.value.user_message
    with pytest.raises(PhotoMissingError):
        depth.start_depth(env["service"], env["runner"], "e" * 64, MODEL, None, session=SESSION)


def test_depth_render_empty_state(env):
    assert depth.render_depth(env["service"], None, None, session=SESSION)[3:] == (False, True, True)


def test_whole_photo_when_no_face(env, uploaded):
    sha = uploaded["shas"][2]
    result = run_job(
        env, depth.start_depth(env["service"], env["runner"], sha, MODEL, uploaded["store"], session=SESSION)
    )
    assert result["face"] is None
    caption = depth.render_depth(env["service"], result, None, session=SESSION)[2]
    assert "whole photo" in caption


def test_failed_job_becomes_an_alert(env):
    job_id = env["runner"].submit("depth", {"sha": "d" * 64, "model": MODEL, "face": 0}, SESSION)
    outcome = StartOutcome(job_id=job_id)
    view = start_view(outcome)
    deadline = time.monotonic() + 20
    while view.alert is None and time.monotonic() < deadline:
        view = poll_view(env["runner"], view.job, session=SESSION)
        time.sleep(0.05)
    assert view.alert is not None and "upload it again" in view.alert.message
    assert view.panel_hidden and view.interval_disabled and not view.busy


def test_cancel_view():
    class Runner:
        cancelled: list = []

        def cancel(self, job_id, owner):
            self.cancelled.append((job_id, owner))
            return True

        def status(self, job_id, owner):
            return JobStatus(job_id=job_id, kind="depth", state=JobState.CANCELLED)

    runner = Runner()
    view = cancel_view(runner, {"id": "j1"}, session=SESSION)
    assert view.message == "Cancelled." and view.interval_disabled and not view.busy
    assert runner.cancelled == [("j1", SESSION)]
    assert poll_view(runner, {"id": "j1"}, session=SESSION).message == "Cancelled."
    assert cancel_view(runner, None, session=SESSION).message == "Cancelled." and runner.cancelled == [("j1", SESSION)]


# -- 3D -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source(env, uploaded):
    sha = uploaded["shas"][0]
    return run_job(
        env, depth.start_depth(env["service"], env["runner"], sha, MODEL, uploaded["store"], session=SESSION)
    )


def test_sliders_never_rerun_the_network(env, source):
    calls = env["estimator"].calls
    turned = {"eye": {"x": 1.1, "y": 0.2, "z": 1.4}, "up": {"x": 0, "y": 1, "z": 0}, "center": {"x": 0, "y": 0, "z": 0}}
    camera = {"camera": turned, "rev": 2}
    shown = []
    for smoothing, density, scale, display, colors in [
        (2.0, 3, 1.0, "points", "gray"),
        (0.0, 3, 1.0, "points", "gray"),
        (2.0, 2, 1.5, "mesh", "photo"),
        (2.0, 3, 1.0, "mesh", "gray"),
        (2.0, 3, 1.0, "points", "photo"),
    ]:
        fig, stats, empty_hidden, results_hidden, disabled, view = model3d.render_model3d(
            env["service"],
            page_view(source, smoothing, density, scale, display=display, colors=colors),
            camera,
            session=SESSION,
        )
        assert empty_hidden and not results_hidden and not disabled and view is no_update
        assert fig["layout"]["scene"]["camera"]["eye"]["x"] == 1.1  # the user's camera, not a preset
        assert fig["data"][0]["type"] == ("mesh3d" if display == "mesh" else "scatter3d")
        assert fig["data"][0]["hoverinfo"] == "none"  # clicks reach click-to-measure, no hover label
        shown.append(fig)
        assert "points" in stats and "mm" in stats
    assert env["estimator"].calls == calls
    assert len({f["layout"]["uirevision"] for f in shown}) == 1  # the camera stays put
    fig, *_, view = model3d.render_model3d(
        env["service"], page_view(source, 2.0, 3, 1.0, display="points"), camera, new_source=True, session=SESSION
    )
    assert view == {"camera": None, "rev": 3} and fig["layout"]["scene"]["camera"]["eye"]["z"] == 1.9


def _typed_length(spec: dict) -> int:
    return len(base64.b64decode(spec["bdata"])) // np.dtype(spec["dtype"]).itemsize


def _view(source, values):
    """The page's view of ``(smoothing, density, depth scale, display, colours)``."""
    smoothing, density, scale, display, colors = values
    return page_view(source, smoothing, density, scale, display=display, colors=colors)


def test_a_large_mesh_view_reconstructs_once_and_stays_light(env, source, monkeypatch):
    from dashboard.services import model3d as model3d_service

    built = []
    real = model3d_service.reconstruct_face
    monkeypatch.setattr(model3d_service, "reconstruct_face", lambda *a, **k: built.append(1) or real(*a, **k))
    values = (1.25, 4, 1.0, "mesh", "gray")  # full density: more triangles than a light figure holds
    fig, stats, *_ = model3d.render_model3d(env["service"], _view(source, values), None, session=SESSION)
    assert len(built) == 1  # the view is drawn from the one reconstruction the download uses
    full = env["service"].models3d.model(DepthRef.from_dict(source), Controls3D.from_values(*values).to_params())
    assert full.n_faces > figures.MAX_DISPLAY_TRIANGLES
    shown = _typed_length(fig["data"][0]["i"])
    assert 0.5 * figures.MAX_DISPLAY_TRIANGLES < shown <= figures.MAX_DISPLAY_TRIANGLES
    assert f"{full.n_faces:,} triangles ({shown:,} shown)" in stats
    model3d.render_model3d(
        env["service"], page_view(source, *values[:3], display="mesh", colors="photo"), None, session=SESSION
    )  # colours: no rebuild
    model3d.render_model3d(env["service"], _view(source, values), None, session=SESSION)  # revisit: from memory
    assert len(built) == 1


def test_photo_colours_are_numeric_with_a_colorscale(env, source):
    fig = model3d.render_model3d(env["service"], page_view(source, 2.0, 3, 1.0, colors="photo"), None, session=SESSION)[
        0
    ]
    marker = fig["data"][0]["marker"]
    assert marker["color"]["dtype"] == "u1"  # one byte per point, no colour strings
    assert len(marker["colorscale"]) >= 2


def test_camera_presets_patch_only_the_camera(source):
    store, patch = model3d.camera_patch(source, {"camera": None, "rev": 3}, "side")
    assert store == {"camera": figures.CAMERA_PRESETS["side"], "rev": 4}
    operations = json.dumps(patch.to_plotly_json())
    assert "camera" in operations and "uirevision" in operations and '"x": 1.9' in operations


def test_3d_empty_state(env):
    assert model3d.render_model3d(env["service"], page_view(None, 1, 3, 1), None, session=SESSION)[2:] == (
        False,
        True,
        True,
        no_update,
    )


def test_camera_from_the_browser_is_validated():
    assert model3d.valid_camera({"eye": {"x": "1", "y": 0, "z": 2}}) == {"eye": {"x": 1.0, "y": 0.0, "z": 2.0}}
    assert model3d.valid_camera({"eye": "evil"}) is None
    assert model3d.valid_camera(None) is None
    assert model3d.view_state({"camera": {"eye": {"x": 0}}, "rev": "x"}) == (None, 0)


# -- downloads ----------------------------------------------------------------------


def test_depth_downloads(env, source, uploaded):
    name, png8 = downloads.depth_file(env["service"], DepthRef.from_dict(source), "png8", session=SESSION)
    assert name == "fr_obama_official_portrait_depth.png" and png8[:8] == b"\x89PNG\r\n\x1a\n"
    name16, png16 = downloads.depth_file(env["service"], DepthRef.from_dict(source), "png16", session=SESSION)
    assert name16.endswith("_depth16.png") and png16[:8] == b"\x89PNG\r\n\x1a\n"
    _, npy = downloads.depth_file(env["service"], DepthRef.from_dict(source), "npy", session=SESSION)
    array = np.load(io.BytesIO(npy), allow_pickle=False)
    assert array.dtype == np.float32 and array.ndim == 2
    with pytest.raises(Face3DError):
        downloads.depth_file(env["service"], None, "png8", session=SESSION)


@pytest.mark.parametrize(
    "fmt, check",
    [
        ("ply", lambda name, data: name.endswith(".ply") and data.startswith(b"ply")),
        ("glb", lambda name, data: name.endswith(".glb") and data[:4] == b"glTF"),
        ("stl", lambda name, data: name.endswith(".stl") and len(data) > 84),
        (
            "obj",
            lambda name, data: (
                name.endswith(".zip") and any(n.endswith(".obj") for n in zipfile.ZipFile(io.BytesIO(data)).namelist())
            ),
        ),
    ],
)
def test_model_downloads(env, source, fmt, check):
    name, data = downloads.model_file(env["service"], page_view(source, 2.0, 3, 1.0), fmt, session=SESSION)
    assert check(name, data), name


def test_download_names_are_safe():
    assert safe_stem("../../etc/passwd") == "passwd"
    assert safe_stem("<script>.jpg") == "script"
    assert safe_stem("....") == "face"


# -- compare ------------------------------------------------------------------------


def test_compare_two_faces(env, uploaded, faces_dir):
    store, _ = upload.handle_upload(
        env["service"],
        [data_url((faces_dir / "skimage_astronaut.png").read_bytes(), "image/png")],
        ["skimage_astronaut.png"],
        uploaded["store"],
        session=SESSION,
    )
    shas = [uploaded["shas"][0], store["items"][-1]["sha"]]
    items = compare.compare_items(shas, [MODEL], ["fp32"])
    with pytest.raises(Face3DError, match="at least two faces"):
        compare.start_compare(env["service"], env["runner"], items[:1], store, session=SESSION)
    result = run_job(env, compare.start_compare(env["service"], env["runner"], items, store, session=SESSION))
    assert result["count"] == 2 and result["skipped"] == []
    again = compare.start_compare(env["service"], env["runner"], items, store, session=SESSION)
    assert again.job_id is None  # cached
    shown = compare.render_compare(env["service"], result, 0, session=SESSION)
    empty_hidden, results_hidden, fig3d, note, pages, profiles, first_options, _, first, second, skipped = shown
    assert empty_hidden and not results_hidden and (first, second) == (0, 1) and skipped is None
    assert sum(1 for key in fig3d["layout"] if key.startswith("scene")) == 2
    titles = [a["hovertext"] for a in fig3d["layout"]["annotations"]]
    assert titles == ["fr_obama_official_portrait.jpg · MiDaS small", "skimage_astronaut.png · MiDaS small"]
    assert [o["label"] for o in first_options] == [f"{i + 1}. {t}" for i, t in enumerate(titles)]
    assert len(profiles.data) == 4  # 2 faces x (nose, eyes)
    diff, metrics = compare.render_pair(env["service"], result, 1, 0, session=SESSION)  # second minus first
    assert diff.data[0].type == "heatmap" and "skimage_astronaut.png · MiDaS small −" in diff.data[0].hovertemplate
    assert "RMS difference" in json.dumps(metrics.to_plotly_json(), default=str)
    assert "two different" in json.dumps(
        compare.render_pair(env["service"], result, 1, 1, session=SESSION)[1].to_plotly_json()
    )
    assert compare.swap_pair(0, 1) == (1, 0) and compare.valid_pair(7, "x", 2) == (0, 1)
    assert pages == []


def test_compare_refuses_a_photo_without_face_before_any_job(env, uploaded):
    shas = [uploaded["shas"][0], uploaded["shas"][2]]
    calls = env["estimator"].calls
    items = compare.compare_items(shas, [MODEL], ["fp32"])
    with pytest.raises(ComparisonError, match="No face was found in skimage_coffee_noface.png") as info:
        compare.start_compare(env["service"], env["runner"], items, uploaded["store"], session=SESSION)
    assert "Remove it from the comparison" in alert_for_exception(info.value).message
    assert env["estimator"].calls == calls  # refused at once: no depth network ran


def test_comparison_of_cached_faces_is_done_in_the_callback(env, uploaded):
    shas = [uploaded["shas"][1], uploaded["shas"][0]]  # not compared in this order before
    service, runner = env["service"], NoJobsRunner()
    refs = [depth.depth_request(service, sha, MODEL, uploaded["store"], session=SESSION) for sha in shas]
    for ref in refs:
        service.depth_maps.compute(ref)  # the depth maps are cached
    assert service.comparisons.cached(service.comparisons.key(ComparisonItems(refs))) is None
    started = time.perf_counter()
    items = compare.compare_items(shas, [MODEL], ["fp32"])
    outcome = compare.start_compare(service, runner, items, uploaded["store"], session=SESSION)
    seconds = time.perf_counter() - started
    assert outcome.job_id is None and runner.submitted == []
    assert outcome.result == {"key": service.comparisons.key(ComparisonItems(refs)), "count": 2, "skipped": []}
    assert service.comparisons.cached(outcome.result["key"]) is not None
    view = start_view(outcome)
    assert view.result == outcome.result and view.interval_disabled and view.panel_hidden
    print(f"comparison of two cached faces in the callback: {1000 * seconds:.0f} ms")


def test_compare_pages_respect_the_webgl_limit():
    assert compare.pages(3) == [[0, 1, 2]]
    assert compare.pages(6) == [[0, 1, 2, 3], [2, 3, 4, 5]]
    assert all(len(group) <= compare.MAX_SCENES for n in range(2, 7) for group in compare.pages(n))
    assert [o["label"] for o in compare.page_options(5)] == ["Items 1–4", "Items 2–5"]


def test_compare_empty_state(env):
    assert compare.render_compare(env["service"], None, 0, session=SESSION)[:2] == (False, True)


# -- errors -------------------------------------------------------------------------


def test_user_errors_show_their_message():
    info = alert_for_exception(NoFaceFoundError("No face was found in this photo."))
    assert info.title == "No face found" and "No face" in info.message and info.color == "warning"


def test_unexpected_errors_never_show_internals():
    info = alert_for_exception(ZeroDivisionError("internal detail"))
    assert "internal detail" not in info.message and "Traceback" not in info.message
    assert "reference" in info.message


def test_figures_escape_user_text():
    fig = figures.profiles_figure(
        ["<img src=x onerror=alert(1)>"], [(np.zeros(3), np.zeros(3))], [(np.zeros(3), np.zeros(3))]
    )
    assert "<img" not in fig.data[0].name and "&lt;img" in fig.data[0].name


def test_invalid_image_error_is_user_facing():
    assert issubclass(InvalidImageError, Face3DError)


def test_a_depth_job_decodes_the_photo_once_and_faces_stay_face_objects(tmp_path, yunet_path, faces_dir, monkeypatch):
    from dashboard.services import uploads as uploads_service
    from face3d_core.faces import Face

    decoded = []
    real = uploads_service.decode_image
    monkeypatch.setattr(uploads_service, "decode_image", lambda *a, **k: decoded.append(1) or real(*a, **k))
    cache = ResultCache(tmp_path / "results")
    service = Face3DService(cache, estimator_factory=lambda *_: FakeEstimator(), detector_path=yunet_path)
    data = (faces_dir / "fr_two_people.jpg").read_bytes()
    meta = service.uploads.ingest(data, "two.jpg")
    assert len(decoded) == 1 and meta.face_count == 2
    assert all(isinstance(face, Face) for face in meta.faces)
    service.uploads.ingest(data, "renamed.jpg")  # same bytes, another name: validated already
    assert len(decoded) == 1
    ref = DepthRef(meta.sha256, MODEL, 1)
    face_depth = service.depth_maps.compute(ref)
    assert len(decoded) == 2  # one decode for the depth job
    assert face_depth.faces[1].box_xywh == meta.faces[1].box_xywh  # the stored faces, not re-detected
    fresh = Face3DService(ResultCache(tmp_path / "results"), detector_path=yunet_path)
    assert all(isinstance(face, Face) for face in fresh.uploads.meta(meta.sha256).faces)  # through the store
    cache.close()


def test_an_upload_is_hashed_once_and_composers_trust_the_gate(tmp_path, yunet_path, faces_dir, monkeypatch):
    """An upload is hashed once; after the callback's access check no composer reads the meta again."""
    from dashboard.services import access as access_service
    from dashboard.services import uploads as uploads_service

    hashed = []
    real = uploads_service.sha256_hex
    for module in (access_service, uploads_service):
        monkeypatch.setattr(module, "sha256_hex", lambda data: hashed.append(len(data)) or real(data))
    cache = ResultCache(tmp_path / "results")
    service = Face3DService(cache, estimator_factory=lambda *_: FakeEstimator(), detector_path=yunet_path)
    data = (faces_dir / "fr_obama_official_portrait.jpg").read_bytes()
    meta = service.access.upload(SESSION, data, "a.jpg")
    assert hashed == [len(data)]
    ref = DepthRef(meta.sha256, MODEL, None)
    service.depth_maps.compute(ref)
    read = []
    monkeypatch.setattr(service.uploads, "require_meta", lambda sha: read.append(sha))
    params = Controls3D().to_params()
    service.exports.depth_file(ref, "png8", "a.jpg")
    service.exports.model_file(ref, params, "stl", "a.jpg")
    service.reports.face_report(ref, params, service.cameras.fov(ref.sha), meta)
    assert read == []
    cache.close()


def test_memory_lru_computes_once_and_keeps_no_locks():
    import threading

    from dashboard.services import MemoryLRU

    lru = MemoryLRU(max_items=8)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return np.arange(3)

    threads = [threading.Thread(target=lambda: lru.get_or_compute("k", slow)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and lru.locks_in_use == 0
    with pytest.raises(ZeroDivisionError):
        lru.get_or_compute("bad", lambda: 1 / 0)
    assert lru.locks_in_use == 0 and lru.get("bad") is None


def test_memory_lru_limits_items_and_bytes():
    from dashboard.services import MemoryLRU

    lru = MemoryLRU(max_items=3, max_bytes=1000)
    for i in range(5):
        lru.put(f"k{i}", np.zeros(10, np.float32))  # 40 bytes each
    assert lru.get("k0") is None and lru.get("k4") is not None  # item limit
    lru.put("big", np.zeros(200, np.float32))  # 800 bytes: pushes older ones out
    assert lru.nbytes <= 1000 and lru.get("big") is not None
    calls = []
    assert lru.get_or_compute("c", lambda: calls.append(1) or np.ones(2)).sum() == 2
    lru.get_or_compute("c", lambda: calls.append(1) or np.ones(2))
    assert calls == [1]


def test_weights_errors_reach_the_page_without_server_paths(tmp_path, monkeypatch):
    import pickle

    from face3d_core.errors import WeightsUnavailableError
    from face3d_core.models.estimator import load_checkpoint
    from face3d_core.models.registry import get_spec
    from face3d_core.weights import resolve_weights

    monkeypatch.setenv("FACE3D_OFFLINE", "1")
    monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("FACE3D_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights(get_spec(MODEL).weights_file)
    missing = info.value
    assert str(tmp_path / "weights") in missing.user_message  # the CLI says where to put it
    broken = tmp_path / "weights" / "broken.pt"
    broken.parent.mkdir()
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError) as info:
        load_checkpoint(broken)
    for error in (missing, info.value, pickle.loads(pickle.dumps(missing))):
        shown = alert_for_exception(error).message
        assert str(tmp_path) not in shown and "/tmp" not in shown, shown
    assert "FACE3D_WEIGHTS_DIR" in alert_for_exception(missing).message
    assert "broken.pt" in alert_for_exception(info.value).message  # the file's name, not its folder
