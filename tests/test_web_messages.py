"""Messages for people: every alert says what is wrong and what to do, and never shows server internals.

Each error is produced the real way (a missing checkpoint offline, a download that fails, a damaged
checkpoint, an unusable cache folder, a detector file OpenCV cannot load ...), turned into the alert
the page shows (``dashboard.errors``, or a failed job through the job runner), and the alert's text
is scanned for paths, tracebacks and raw library errors (:mod:`tests.harness.page_text`).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import time
import urllib.error

import numpy as np
import pytest

import dashboard
import face3d_core
from dashboard.callbacks.jobs import poll_view
from dashboard.errors import AlertInfo, alert_for_exception, looks_internal, make_alert
from dashboard.jobs import DiskJobStore, ThreadJobRunner
from face3d_core.errors import (
    CacheError,
    Face3DError,
    WeightsIntegrityError,
    WeightsUnavailableError,
)
from face3d_core.models.registry import get_spec
from face3d_core.weights import WeightsFile, download_file, resolve_weights, verify_file
from tests.harness.page_text import component_text, internal_leaks

MODEL = "midas_v21_small_256"


def alert_text(err: BaseException) -> tuple[AlertInfo, str]:
    info = alert_for_exception(err)
    return info, component_text(make_alert(info))


@pytest.fixture()
def server_dirs(tmp_path, monkeypatch):
    """A server's folders under a recognisable temporary path; offline."""
    root = tmp_path / "srv-face3d-secret"
    monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(root / "weights"))
    monkeypatch.setenv("FACE3D_CACHE_DIR", str(root / "cache"))
    monkeypatch.setenv("FACE3D_OFFLINE", "1")
    return root


def assert_clean(text: str, *secrets: str) -> None:
    assert internal_leaks(text) == [], text
    for secret in secrets:
        assert secret not in text, text


# -- titles -------------------------------------------------------------------------------------


def _all_error_classes() -> list[type[Face3DError]]:
    for package in (face3d_core, dashboard):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name.endswith(("celery_app", "wsgi", "__main__")):
                continue  # start a server or a worker on import
            importlib.import_module(module.name)
    found, todo = [], [Face3DError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in found if cls is not Face3DError and cls.__module__.startswith(("face3d_core", "dashboard"))]


def test_every_error_has_a_title_that_says_what_is_wrong():
    classes = _all_error_classes()
    assert len(classes) >= 12
    for cls in classes:
        assert cls.title and cls.title != Face3DError.title, cls
        assert len(cls.title) <= 40 and not cls.title.endswith("."), cls  # a title, not a sentence
        if cls.default_web_message is not None:
            assert not looks_internal(cls.default_web_message), cls


# -- missing and damaged weights ---------------------------------------------------------------


def test_a_missing_checkpoint_offline_shows_file_link_and_command(server_dirs):
    spec = get_spec(MODEL)
    with pytest.raises(WeightsUnavailableError) as caught:
        resolve_weights(spec.weights_file)
    assert str(server_dirs) in caught.value.user_message  # the CLI says where to put it
    info, text = alert_text(caught.value)
    assert info.title == "Model weights missing"
    assert spec.file_name in text and spec.url in text
    assert f"face3d models --download {MODEL}" in text
    assert_clean(text, str(server_dirs))
    link = make_alert(info)
    assert spec.url in repr(link)  # a link (href), not only text


def test_a_download_that_fails_keeps_urllib_text_off_the_page(server_dirs, monkeypatch):
    monkeypatch.delenv("FACE3D_OFFLINE")

    def no_network(request, timeout):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    wf = get_spec(MODEL).weights_file
    with pytest.raises(WeightsUnavailableError) as caught:
        download_file(wf.url, server_dirs / "cache" / "weights" / wf.file_name, opener=no_network, describe=wf)
    assert "urlopen error" in caught.value.user_message  # the detail is kept for the log and the CLI
    _, text = alert_text(caught.value)
    assert "could not be downloaded" in text
    assert_clean(text, str(server_dirs), "name resolution")


def test_a_damaged_file_names_no_folder(server_dirs):
    wf = WeightsFile("x.onnx", "https://example.org/x.onnx", "0" * 64)
    path = server_dirs / "weights" / "x.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"damaged")
    with pytest.raises(WeightsIntegrityError) as caught:
        verify_file(wf, path)
    _, text = alert_text(caught.value)
    assert "x.onnx" in text and "damaged" in text
    assert_clean(text, str(server_dirs))


def test_an_unreadable_checkpoint_names_no_folder(server_dirs):
    pytest.importorskip("torch")
    from face3d_core.models.estimator import load_checkpoint

    path = server_dirs / "weights" / "midas_v21_small_256.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError) as caught:
        load_checkpoint(path)
    _, text = alert_text(caught.value)
    assert "midas_v21_small_256.pt" in text
    assert_clean(text, str(server_dirs), "UnpicklingError")


def test_a_detector_file_opencv_cannot_load_names_no_folder(server_dirs):
    from face3d_core.faces import detect_faces

    bad = server_dirs / "bad_yunet.onnx"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(WeightsUnavailableError) as caught:
        detect_faces(np.zeros((64, 64, 3), np.uint8), model_path=bad)
    assert "Failed to parse" in caught.value.user_message or str(bad) in caught.value.user_message
    _, text = alert_text(caught.value)
    assert_clean(text, str(server_dirs), "parse")


# -- the cache -------------------------------------------------------------------------------------


def test_an_unusable_cache_folder_names_no_folder(server_dirs):
    from face3d_core.cache import ResultCache

    blocker = server_dirs / "not-a-folder"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(CacheError) as caught:
        ResultCache(blocker / "results")
    assert str(blocker) in caught.value.user_message  # for the administrator's log and the CLI
    info, text = alert_text(caught.value)
    assert info.title == "Cache problem" and "administrator" in text
    assert_clean(text, str(server_dirs), "Errno")


# -- the guard and unexpected errors ----------------------------------------------------------------


def test_an_error_that_forgot_its_web_message_is_caught_by_the_guard(caplog):
    class Careless(Face3DError):
        title = "Careless"

    err = Careless('Could not open /var/lib/face3d/x.bin: File "/srv/app.py", line 3')
    with caplog.at_level(logging.ERROR, logger="dashboard.errors"):
        info, text = alert_text(err)
    assert info.title == "Careless" and "reference" in text
    assert_clean(text, "/var/lib")
    assert "/var/lib/face3d/x.bin" in caplog.text  # the detail is in the log, for the administrator


def test_an_unexpected_exception_shows_a_reference_only(caplog):
    with caplog.at_level(logging.ERROR):
        info, text = alert_text(RuntimeError("boom in /opt/face3d/secret.py"))
    assert info.title == "Something went wrong" and "reference" in text
    assert_clean(text, "/opt/face3d", "RuntimeError")
    assert "secret.py" in caplog.text


# -- a failed job ---------------------------------------------------------------------------------


def test_a_job_that_misses_its_weights_offers_the_download(server_dirs, tmp_path):
    spec = get_spec(MODEL)

    def task(params, job):
        resolve_weights(spec.weights_file)

    store = DiskJobStore(tmp_path / "jobs")
    runner = ThreadJobRunner(store, {"depth": task}, max_workers=1)
    try:
        session = "7" * 32
        job_id = runner.submit("depth", {}, session)
        deadline = time.monotonic() + 20
        view = poll_view(runner, {"id": job_id}, session=session)
        while view.alert is None and time.monotonic() < deadline:
            time.sleep(0.05)
            view = poll_view(runner, {"id": job_id}, session=session)
    finally:
        runner.shutdown(wait=True)
        store.close()
    assert view.alert is not None and view.alert.file_name == spec.file_name
    text = component_text(make_alert(view.alert))
    assert spec.url in text and f"face3d models --download {MODEL}" in text
    assert_clean(text, str(server_dirs))


def test_page_text_scanner_finds_what_it_should():
    assert internal_leaks("see /tmp/abc/def.txt") and internal_leaks("<urlopen error [Errno -3] x>")
    assert internal_leaks('Traceback (most recent call last):\n  File "/a/b.py", line 3')
    assert internal_leaks("cv2.error: OpenCV(4.10.0) error: (-215:Assertion failed)")
    assert internal_leaks("in ~/face3d/weights") and internal_leaks(r"C:\Users\me\w.pt")
    assert not internal_leaks("Download it from https://github.com/isl-org/MiDaS/releases/download/v2_1/x.pt")
    assert not internal_leaks("PLY/OBJ files, 1/2 of the face, 0 = far, 1 = near")
