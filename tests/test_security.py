"""Security of face3d, tried against the running app where it matters.

1. Exposure and limits: 127.0.0.1 by default (other addresses log a warning), request size
   enforced by the server (HTTP 413), oversized files and pixel bombs refused by the server.
2. User text: file names never used as paths (download names rebuilt from safe characters),
   never rendered as HTML.
3. Weights: loaded only with ``weights_only=True``; a pickled payload never runs.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
from pathlib import Path

import pytest
import requests

from dashboard import ids
from dashboard.app import MAX_REQUEST_BYTES
from tests.harness.dash_client import DashHttp, output
from tests.harness.flows import download_depth_png8, gallery, generate_depth, upload
from tests.harness.hostile_files import EVIL_HTML_NAME, face_variant, hostile_corpus
from tests.harness.paths import PHOTO, REPO_ROOT, THIRD_PHOTO

# =====================================================================================
# 1. Exposure and limits
# =====================================================================================


def test_default_bind_is_loopback_and_other_hosts_warn(monkeypatch, caplog):
    import dashboard.__main__ as entry

    calls = []

    class _App:
        def run(self, **kwargs):
            calls.append(kwargs)

    monkeypatch.setattr(entry, "create_app", lambda cache_dir=None: _App())
    monkeypatch.delenv("FACE3D_HOST", raising=False)
    with caplog.at_level(logging.WARNING, logger="dashboard.__main__"):
        entry.main([])
    assert calls[-1]["host"] == "127.0.0.1" and not caplog.records
    monkeypatch.setenv("FACE3D_HOST", "0.0.0.0")
    with caplog.at_level(logging.WARNING, logger="dashboard.__main__"):
        entry.main([])
    assert calls[-1]["host"] == "0.0.0.0"
    assert any("no login" in record.getMessage() for record in caplog.records)
    from gunicorn.config import Config

    assert Config().bind == ["127.0.0.1:8000"]  # gunicorn's own default, as documented in the README
    readme = (REPO_ROOT / "README.md").read_text()
    assert "0.0.0.0" in readme and "warning" in readme.lower()


def test_server_rejects_request_bodies_over_the_limit(fake_server):
    """The browser's dcc.Upload max_size is only a hint: the server refuses huge bodies itself (413)."""
    connection = http.client.HTTPConnection("127.0.0.1", fake_server.port, timeout=30)
    try:
        connection.putrequest("POST", "/_dash-update-component")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(MAX_REQUEST_BYTES + 1))
        connection.endheaders()
        connection.send(b'{"output": "upload-messages.children", "inputs": [')
        response = connection.getresponse()
        assert response.status == 413
    finally:
        connection.close()
    assert requests.get(fake_server.url + "face3d/health", timeout=10).status_code == 200


def test_oversized_and_bomb_uploads_are_refused_by_the_server(fake_server):
    client = DashHttp(fake_server.url)
    corpus = hostile_corpus()
    for name, expected in (("too_big_30MB.jpg", "too large"), ("png_bomb_50000x50000.png", "megapixels")):
        response = upload(client, corpus[name], name)
        assert expected in json.dumps(output(response, ids.UPLOAD_MESSAGES, "children")), name


# =====================================================================================
# 2. User text: file names are shown, as text, and never used as paths
# =====================================================================================


def test_download_names_are_made_from_safe_characters_only(fake_server):
    client = DashHttp(fake_server.url)
    photo = THIRD_PHOTO.read_bytes() if THIRD_PHOTO.is_file() else PHOTO.read_bytes()
    response = upload(client, photo, "../../evil/<x>name.jpg")
    store = output(response, ids.UPLOADS_STORE, "data")
    sha = store["items"][0]["sha"]
    result = generate_depth(client, store, sha, timeout_s=60)
    triggered = download_depth_png8(client, result)
    filename = output(triggered, ids.DOWNLOAD, "data")["filename"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.png", filename), filename
    assert ".." not in filename and "/" not in filename


def _own_strings(value) -> list[str]:
    """Strings in a component's props, not descending into child components."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        if "type" in value and "props" in value:
            return []
        return [s for v in value.values() for s in _own_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _own_strings(v)]
    return []


def _components_with(node, needle: str, found: list) -> None:
    """Collect every Dash component (as JSON) whose own props contain ``needle``."""
    if isinstance(node, dict):
        if "type" in node and "props" in node:
            if any(needle in text for text in _own_strings(node["props"])):
                found.append(node)
        for value in node.values():
            _components_with(value, needle, found)
    elif isinstance(node, list):
        for value in node:
            _components_with(value, needle, found)


def test_user_text_is_never_rendered_as_html(fake_server):
    client = DashHttp(fake_server.url)
    photo = face_variant(PHOTO, "cmyk")  # bytes no other test uploads, so the name is this one
    response = upload(client, photo, EVIL_HTML_NAME)
    store = output(response, ids.UPLOADS_STORE, "data")
    sha = store["items"][0]["sha"]
    responses = [response]
    responses.append(gallery(client, store))
    responses.append(client.call((ids.UPLOADS_STORE, "data"), {ids.UPLOADS_STORE: store}, output_id=ids.DEPTH_FACE))
    found: list = []
    for item in responses:
        _components_with(item, EVIL_HTML_NAME, found)
        assert "dangerously_allow_html" not in json.dumps(item)
    assert found, "the file name should be shown (as text) in the upload message and the gallery"
    for component in found:
        assert component["type"] not in {"Markdown", "Iframe"}, component
        assert not component["props"].get("dangerously_allow_html"), component
    # the face picker shows it as a plain dropdown label
    assert any(EVIL_HTML_NAME in text for text in _own_strings(responses[2]))
    thumb = requests.get(f"{fake_server.url}face3d/thumb/{sha}.jpg", timeout=10)
    assert thumb.headers["Content-Type"] == "image/jpeg" and thumb.headers["X-Content-Type-Options"] == "nosniff"
    # and no component anywhere in the dashboard may render raw HTML
    sources = "\n".join(p.read_text() for p in (REPO_ROOT / "dashboard").rglob("*.py"))
    assert "dangerously_allow_html" not in sources and "dcc.Markdown" not in sources


# =====================================================================================
# 3. Weights files
# =====================================================================================


def test_weights_are_loaded_with_weights_only_and_a_malicious_pickle_never_runs(tmp_path):
    torch = pytest.importorskip("torch")
    from face3d_core.errors import WeightsUnavailableError
    from face3d_core.models.estimator import load_checkpoint

    sources = [p for p in (REPO_ROOT / "face3d_core").rglob("*.py")] + list((REPO_ROOT / "dashboard").rglob("*.py"))
    for path in sources:
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text()):
            assert "weights_only=True" in call, f"{path}: {call}"
        assert "load_state_dict_from_url" not in path.read_text() or "weights_only=True" in path.read_text()

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pt"
    torch.save({"conv.weight": torch.zeros(1), "extra": Payload()}, evil)
    with pytest.raises(WeightsUnavailableError):
        load_checkpoint(evil)
    assert not marker.exists(), "a pickled payload ran while loading weights"
