"""The face detector offline: shipped as package data, found in a fixed order, hash-checked, and never fatal.

Lookup order (``face3d_core.faces.resolve_yunet_path``): ``FACE3D_YUNET_PATH`` -> the package's
``face3d_core/data`` -> ``$FACE3D_WEIGHTS_DIR`` -> the cache -> a download (here from a real HTTP
server on 127.0.0.1). ``find_faces`` turns every way the detector can be missing or broken into a
short reason, logs the details once and does not retry a failed download for a while.
"""

from __future__ import annotations

import http.server
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from face3d_core import data as package_data
from face3d_core import faces
from face3d_core.data.__main__ import main as vendor_main
from face3d_core.data.__main__ import vendor_detector
from face3d_core.errors import WeightsIntegrityError, WeightsUnavailableError
from face3d_core.images import load_image
from face3d_core.weights import WeightsFile
from tests.doubles import hide_detector
from tests.harness.servers import file_server

NAME = faces.YUNET_WEIGHTS.file_name


class _Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        body = self.server.files.get(self.path)  # type: ignore[attr-defined]
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_files():
    with file_server(_Files) as server:
        yield server


@pytest.fixture()
def lookup(tmp_path, monkeypatch):
    """Every place the detector may be, empty: env var unset, an empty package folder, empty folders."""
    packaged = hide_detector(tmp_path, monkeypatch)
    yield {
        "packaged": packaged,
        "weights": tmp_path / "weights" / NAME,
        "cache": tmp_path / "cache" / "weights" / NAME,
    }
    faces.reset_detector_health()


def _served_yunet(monkeypatch, server, path: str = "/yunet.onnx") -> str:
    url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    monkeypatch.setattr(faces, "YUNET_WEIGHTS", WeightsFile(NAME, url, faces.YUNET_WEIGHTS.sha256, 0.23))
    return url


# -- lookup order and hashes --------------------------------------------------------------


def test_lookup_order_env_then_package_then_weights_dir_then_cache_then_download(
    lookup, yunet_path, monkeypatch, http_files, tmp_path
):
    good = yunet_path.read_bytes()
    http_files.files["/yunet.onnx"] = good
    _served_yunet(monkeypatch, http_files)
    monkeypatch.delenv("FACE3D_OFFLINE")

    assert faces.resolve_yunet_path() == lookup["cache"]  # nothing on disk: downloaded into the cache
    assert http_files.requests == ["/yunet.onnx"] and lookup["cache"].read_bytes() == good
    lookup["weights"].write_bytes(good)
    assert faces.resolve_yunet_path() == lookup["weights"]  # the weights folder before the cache
    lookup["packaged"].write_bytes(good)
    assert faces.resolve_yunet_path() == lookup["packaged"]  # the package's copy before both
    monkeypatch.setenv("FACE3D_YUNET_PATH", str(yunet_path))
    assert faces.resolve_yunet_path() == yunet_path  # the variable overrides everything
    assert http_files.requests == ["/yunet.onnx"]  # one download in all


def test_the_variable_takes_any_yunet_file_as_given(lookup, tmp_path, monkeypatch):
    other = tmp_path / "my_yunet.onnx"
    other.write_bytes(b"another version")  # not the pinned hash: the user's choice, used as given
    monkeypatch.setenv("FACE3D_YUNET_PATH", str(other))
    assert faces.resolve_yunet_path() == other
    monkeypatch.setenv("FACE3D_YUNET_PATH", str(tmp_path / "missing.onnx"))
    with pytest.raises(WeightsUnavailableError):
        faces.resolve_yunet_path()


@pytest.mark.parametrize("place", ["packaged", "weights", "cache"])
def test_a_wrong_file_found_by_lookup_is_refused_with_a_clear_error(lookup, place):
    lookup[place].parent.mkdir(parents=True, exist_ok=True)
    lookup[place].write_bytes(b"\x08\x07 not the detector")
    with pytest.raises(WeightsIntegrityError) as info:
        faces.resolve_yunet_path()
    message = info.value.user_message
    assert str(lookup[place]) in message and "SHA-256" in message and faces.YUNET_WEIGHTS.sha256 in message
    assert faces.YUNET_WEIGHTS.url in message  # what to put there instead
    assert str(lookup[place].parent) not in info.value.web_message  # no server folder for the web
    if place == "packaged":
        assert "shipped with face3d" in message


def test_a_good_packaged_detector_detects_faces(lookup, yunet_path, faces_dir):
    lookup["packaged"].write_bytes(yunet_path.read_bytes())
    found = faces.detect_faces(load_image(faces_dir / "fr_two_people.jpg"))
    assert len(found) == 2
    assert faces.resolve_yunet_path() == lookup["packaged"]


def test_a_file_damaged_after_a_good_load_is_caught(lookup, yunet_path):
    lookup["packaged"].write_bytes(yunet_path.read_bytes())
    assert faces.resolve_yunet_path() == lookup["packaged"]
    damaged = bytearray(yunet_path.read_bytes())
    damaged[1000] ^= 0xFF
    lookup["packaged"].write_bytes(bytes(damaged))  # same size, a new modification time
    with pytest.raises(WeightsIntegrityError):
        faces.resolve_yunet_path()


def test_the_package_folder_is_the_real_one():
    folder = Path(faces.__file__).parent / "data"
    assert faces.packaged_yunet_path() == folder / NAME
    assert (folder / package_data.DETECTOR_LICENSE).is_file()
    notice = (folder / package_data.DETECTOR_LICENSE).read_text()
    assert "MIT" in notice and "Shiqi Yu" in notice and package_data.DETECTOR_SHA256 in notice
    assert faces.YUNET_WEIGHTS.sha256 == package_data.DETECTOR_SHA256


# -- make vendor-detector -----------------------------------------------------------------


def test_vendoring_copies_the_pinned_file_only(yunet_path, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    wrong = tmp_path / NAME
    wrong.write_bytes(b"not the detector")
    with pytest.raises(ValueError, match="SHA-256"):
        vendor_detector(wrong, folder)
    assert list(folder.iterdir()) == []  # nothing written, not even a temporary file
    dest = vendor_detector(yunet_path, folder)
    assert dest == folder / NAME and dest.read_bytes() == yunet_path.read_bytes()
    assert list(folder.iterdir()) == [dest]


def test_vendor_command_exit_codes(tmp_path, capsys):
    assert vendor_main([str(tmp_path / "absent.onnx")]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        vendor_main([])
    assert info.value.code == 2


# -- find_faces: never fatal, logged once, no download storm ----------------------------------


def test_no_detector_anywhere_gives_a_short_reason(lookup, faces_dir):
    image = load_image(faces_dir / "fr_two_people.jpg")
    with pytest.raises(WeightsUnavailableError):
        faces.detect_faces(image)
    detection = faces.find_faces(image)
    assert detection.faces == () and not detection.ran
    assert detection.unavailable == faces.REASON_NOT_INSTALLED


def test_a_failing_download_is_logged_once_and_not_retried_for_a_while(
    lookup, monkeypatch, http_files, faces_dir, caplog
):
    _served_yunet(monkeypatch, http_files, "/missing.onnx")  # the server answers 404
    monkeypatch.delenv("FACE3D_OFFLINE")
    now = [1000.0]
    monkeypatch.setattr(faces, "_clock", lambda: now[0])
    image = load_image(faces_dir / "pillow_hopper_128.jpg")
    with caplog.at_level(logging.DEBUG, logger="face3d_core.faces"):
        results = [faces.find_faces(image) for _ in range(5)]
    assert all(r.unavailable == faces.REASON_NOT_INSTALLED for r in results)
    assert http_files.requests == ["/missing.onnx"]  # tried once, not once per photo
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "404" in warnings[0].getMessage()  # the details, once, in the log
    assert "404" not in results[0].unavailable and "/" not in results[0].unavailable

    now[0] += faces.DETECTOR_RETRY_S + 1  # later: looked for again (and the same problem not logged again)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="face3d_core.faces"):
        assert faces.find_faces(image).unavailable == faces.REASON_NOT_INSTALLED
    assert http_files.requests == ["/missing.onnx", "/missing.onnx"] and caplog.records == []


def test_the_detector_is_used_as_soon_as_it_appears(lookup, monkeypatch, yunet_path, faces_dir):
    now = [50.0]
    monkeypatch.setattr(faces, "_clock", lambda: now[0])
    image = load_image(faces_dir / "fr_two_people.jpg")
    assert not faces.find_faces(image).ran
    lookup["weights"].write_bytes(yunet_path.read_bytes())
    assert not faces.find_faces(image).ran  # still within the retry pause
    now[0] += faces.DETECTOR_RETRY_S + 1
    assert len(faces.find_faces(image).faces) == 2


def test_a_damaged_detector_file_gives_its_reason(lookup, faces_dir):
    lookup["packaged"].write_bytes(b"garbage")
    detection = faces.find_faces(load_image(faces_dir / "pillow_hopper_128.jpg"))
    assert detection.unavailable == faces.REASON_DAMAGED


def test_an_unloadable_file_gives_its_reason(lookup, tmp_path, faces_dir):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    detection = faces.find_faces(load_image(faces_dir / "pillow_hopper_128.jpg"), model_path=bad)
    assert detection.unavailable == faces.REASON_UNLOADABLE


def test_an_opencv_error_while_detecting_gives_its_reason(lookup, yunet_path, monkeypatch, faces_dir, caplog):
    class Broken:
        def setInputSize(self, size):  # noqa: N802 - OpenCV API
            pass

        def detect(self, image):
            raise cv2.error("OpenCV(5.0.0) /io/opencv/modules/dnn/src/net.cpp:42: error: (-215:Assertion failed)")

    monkeypatch.setattr(faces, "_detector", lambda *args: Broken())
    image = load_image(faces_dir / "pillow_hopper_128.jpg")
    with caplog.at_level(logging.WARNING, logger="face3d_core.faces"):
        detection = faces.find_faces(image, model_path=yunet_path)
    assert detection.unavailable == faces.REASON_FAILED
    assert "Assertion failed" in caplog.text and "Assertion" not in detection.unavailable


def test_a_caller_bug_is_not_hidden(lookup):
    with pytest.raises(ValueError):
        faces.find_faces(np.zeros((8, 8, 3), np.float32))
