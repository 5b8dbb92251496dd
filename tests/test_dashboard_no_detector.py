"""The dashboard without a face detector (offline, no file anywhere): uploads work, photos are used whole.

A real service (cache in a temp folder, real photos) with a fake depth network and no YuNet file
in any place face3d looks (no ``FACE3D_YUNET_PATH``, an empty package folder, empty weights and
cache folders, offline). Then the detector appears and a photo uploaded again gets its faces.
"""

from __future__ import annotations

import base64
import logging
import time

import pytest
from dash import no_update

from dashboard.callbacks import choices, compare, depth, upload
from dashboard.callbacks.jobs import poll_view, start_view
from dashboard.errors import alert_for_exception
from dashboard.jobs import DiskJobStore, ThreadJobRunner
from dashboard.services import Face3DService
from face3d_core import faces
from face3d_core.cache import ResultCache
from face3d_core.compare import ComparisonError
from tests.doubles import FakeEstimator, hide_detector
from tests.harness.page_text import component_text, internal_leaks

MODEL = "midas_v21_small_256"
#: The browser session of these tests (callbacks get it from the cookie; as plain functions it is passed in).
SESSION = "6" * 32
PHOTOS = ["fr_obama_official_portrait.jpg", "fr_two_people.jpg"]


def data_url(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


@pytest.fixture()
def no_detector(tmp_path, monkeypatch):
    hide_detector(tmp_path, monkeypatch)
    yield tmp_path
    faces.reset_detector_health()


@pytest.fixture()
def env(no_detector):
    cache = ResultCache(no_detector / "results")
    estimator = FakeEstimator()
    service = Face3DService(cache, estimator_factory=lambda *_: estimator)
    store = DiskJobStore(no_detector / "jobs")
    runner = ThreadJobRunner(store, service.tasks(), max_workers=1)
    yield {"service": service, "runner": runner, "estimator": estimator, "root": no_detector}
    runner.shutdown()
    store.close()
    cache.close()


def run_job(env, outcome):
    view = start_view(outcome)
    deadline = time.monotonic() + 30
    while view.result is no_update and view.alert is None and time.monotonic() < deadline:
        view = poll_view(env["runner"], view.job, session=SESSION)
        time.sleep(0.02)
    assert view.alert is None, view.alert
    return view.result


def test_uploads_succeed_and_say_the_whole_photo_is_used(env, faces_dir, caplog):
    contents = [data_url((faces_dir / name).read_bytes()) for name in PHOTOS] + [data_url(b"not an image")]
    with caplog.at_level(logging.WARNING, logger="face3d_core.faces"):
        store, messages = upload.handle_upload(env["service"], contents, [*PHOTOS, "notes.txt"], None, session=SESSION)
    assert len(store["items"]) == 2  # both photos kept; only the file that is not an image is refused
    text = component_text(messages)
    assert "Added 2 photos" in text
    assert text.count("Face detection unavailable") == 1  # one message for both photos, not one each
    assert "notes.txt" in text and "not a JPEG or PNG" in text
    assert internal_leaks(text) == [] and str(env["root"]) not in text
    assert len([r for r in caplog.records if "Face detection unavailable" in r.getMessage()]) == 1  # logged once

    gallery, count = upload.render_gallery(env["service"], store, lambda sha: f"/thumb/{sha}.jpg", session=SESSION)
    cards = component_text(gallery)
    assert count == "2"
    assert cards.count("Face detection unavailable: the whole photo will be used.") == 2
    assert f"Why: {faces.REASON_NOT_INSTALLED}." in cards and "Use face" not in cards  # no face boxes
    labels = [o["label"] for o in choices.face_options(env["service"], store, session=SESSION)]
    assert labels == [f"{name} (whole photo)" for name in PHOTOS]


def test_depth_and_3d_use_the_whole_photo_and_compare_says_why_it_cannot(env, faces_dir):
    store, _ = upload.handle_upload(
        env["service"], [data_url((faces_dir / name).read_bytes()) for name in PHOTOS], PHOTOS, None, session=SESSION
    )
    sha = store["items"][0]["sha"]
    result = run_job(env, depth.start_depth(env["service"], env["runner"], sha, MODEL, store, session=SESSION))
    assert result == {"sha": sha, "model": MODEL, "face": None, "precision": "fp32"}
    face_depth = env["service"].depth_maps.cached(depth.DepthRef.from_dict(result))
    meta = env["service"].uploads.meta(sha)
    assert face_depth.full_frame and face_depth.depth_rel.shape == (meta.height, meta.width)
    assert "whole photo" in depth.render_depth(env["service"], result, None, session=SESSION)[2]

    calls = env["estimator"].calls
    with pytest.raises(ComparisonError) as info:
        items = compare.compare_items([i["sha"] for i in store["items"]], [MODEL], ["fp32"])
        compare.start_compare(env["service"], env["runner"], items, store, session=SESSION)
    alert = alert_for_exception(info.value)
    assert alert.title == "Faces cannot be compared"
    assert "face detection is unavailable" in alert.message and "administrator" in alert.message
    assert internal_leaks(alert.message) == [] and env["estimator"].calls == calls


def test_a_photo_uploaded_again_once_the_detector_is_there_gets_its_faces(env, faces_dir, yunet_path, monkeypatch):
    data = (faces_dir / "fr_two_people.jpg").read_bytes()
    store, _ = upload.handle_upload(env["service"], [data_url(data)], ["fr_two_people.jpg"], None, session=SESSION)
    sha = store["items"][0]["sha"]
    assert env["service"].uploads.meta(sha).detector_unavailable == faces.REASON_NOT_INSTALLED

    monkeypatch.setenv("FACE3D_YUNET_PATH", str(yunet_path))
    faces.reset_detector_health()
    store, messages = upload.handle_upload(
        env["service"], [data_url(data)], ["fr_two_people.jpg"], store, session=SESSION
    )
    meta = env["service"].uploads.meta(sha)
    assert meta.detector_unavailable is None and meta.face_count == 2
    assert "already in the gallery" in component_text(messages)
    gallery, _ = upload.render_gallery(env["service"], store, lambda s: f"/thumb/{s}.jpg", session=SESSION)
    assert "2 faces" in component_text(gallery)
