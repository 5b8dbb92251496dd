"""Security of face3d, tried against the running app where it matters.

1. Exposure and limits: 127.0.0.1 by default (other addresses log a warning), request size
   enforced by the server (HTTP 413), oversized files and pixel bombs refused by the server.
2. User text: file names never used as paths (download names rebuilt from safe characters),
   never rendered as HTML.
3. Weights: loaded only with ``weights_only=True``; a pickled payload never runs.
4. Sessions (real HTTP clients with their own cookies): a server-issued signed cookie; job ids
   of the server's form only, and only the session's own; each session sees only the photos it
   uploaded, under its own names, and learns nothing about anybody else's.
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
from tests.harness.flows import (
    download,
    download_depth_png8,
    fetch_download,
    gallery,
    generate_comparison,
    generate_depth,
    model3d_values,
    open_page,
    start_depth,
    thumbnail,
    upload,
    view_3d,
    view_comparison,
    view_depth,
    wait_for_depth,
)
from tests.harness.hostile_files import EVIL_HTML_NAME, face_variant, hostile_corpus
from tests.harness.paths import PHOTO, REPO_ROOT, THIRD_PHOTO
from tests.harness.users import photo_variant

# =====================================================================================
# 1. Exposure and limits
# =====================================================================================


def test_default_bind_is_loopback_and_other_hosts_warn(monkeypatch, caplog):
    import dashboard.__main__ as entry

    calls = []

    class _App:
        def run(self, **kwargs):
            calls.append(kwargs)

    monkeypatch.setattr(entry, "create_app", lambda cache_dir=None, **_options: _App())
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

    assert Config().bind == ["127.0.0.1:8000"]  # gunicorn's own default, as documented in docs/deployment.md
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


def test_downloads_are_streamed_from_a_route_bound_to_the_session(fake_server):
    """Issue 16: a file is a link in the callback's answer, fetched with its type and name, by its session only."""
    client = DashHttp(fake_server.url)
    defaults = open_page(client)
    response = upload(client, PHOTO.read_bytes(), "streamed.jpg")
    store = output(response, ids.UPLOADS_STORE, "data")
    result = generate_depth(client, store, store["items"][0]["sha"], timeout_s=60)
    checks = {"png8": ("image/png", b"\x89PNG"), "stl": ("model/stl", b"face3d"), "report": ("text/html", b"<!DOCTYPE")}
    for kind, (content_type, start) in checks.items():
        values = {ids.DEPTH_RESULT_STORE: result} if kind == "png8" else model3d_values(result, defaults)
        answer = download(client, kind, values)
        assert client.last.size_bytes < 2000, f"{kind}: the callback answer carries the file"
        link = output(answer, ids.DOWNLOAD, "data")
        fetched = fetch_download(client, answer)
        assert fetched.status_code == 200, (kind, fetched.status_code)
        assert fetched.headers["Content-Type"].startswith(content_type), fetched.headers
        assert fetched.headers["Content-Disposition"] == f"attachment; filename={link['filename']}"
        assert fetched.headers["X-Content-Type-Options"] == "nosniff" and "no-store" in fetched.headers["Cache-Control"]
        assert int(fetched.headers["Content-Length"]) == len(fetched.content) == link["size"]
        assert fetched.content.startswith(start), fetched.content[:40]
    # another browser (its own cookie), even knowing the link, gets what an unknown link gets
    stranger = DashHttp(fake_server.url)
    open_page(stranger)
    url = link["url"]
    unknown = url.replace(url.split("/")[-2], "0" * 32 + ".1.x")
    refused, never = stranger.get(url), stranger.get(unknown)
    assert refused.status_code == never.status_code == 404 and refused.content == never.content


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
    thumb = thumbnail(client, sha)  # (this browser uploaded it: its cookie goes with the request)
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


# =====================================================================================
# 4. Sessions
# =====================================================================================

SESSION_COOKIE_RE = re.compile(r"face3d_session=([0-9a-f]{32}\.[0-9a-f]{32});")


def _browser(server) -> DashHttp:
    """A new browser: its own connection and cookie jar, the page loaded once."""
    client = DashHttp(server.url, requests.Session())
    open_page(client)
    return client


def test_the_session_cookie_is_issued_by_the_server_signed_http_only_and_same_site(fake_server):
    first = requests.get(fake_server.url, timeout=30)
    header = first.headers.get("Set-Cookie", "")
    match = SESSION_COOKIE_RE.search(header)
    assert match, header
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header, header
    session_id, signature = match.group(1).split(".")
    # a cookie the server did not sign (a guessed or altered one) is replaced by a new session
    for forged in (f"{session_id}.{'0' * 32}", f"{'0' * 32}.{signature}", "x" * 65, "a" * 5000):
        reply = requests.get(fake_server.url, cookies={"face3d_session": forged}, timeout=30)
        renewed = SESSION_COOKIE_RE.search(reply.headers.get("Set-Cookie", ""))
        assert renewed and renewed.group(1) != forged and not renewed.group(1).startswith(session_id), forged
    # a valid cookie is kept: callbacks get no new one
    client = DashHttp(fake_server.url, requests.Session())
    client.session.cookies.set("face3d_session", match.group(1))
    client.dependencies()
    reply = client.session.post(
        fake_server.url + "_dash-update-component",
        json={"output": "x.y", "outputs": {"id": "x", "property": "y"}, "inputs": [], "changedPropIds": []},
        timeout=30,
    )
    assert "face3d_session" not in reply.headers.get("Set-Cookie", "")


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_cancel_or_poll_with_a_huge_job_id_stores_and_logs_nothing(fake_server):
    """The defect: a 25 MB job id sent to Cancel three times grew jobs/ by 200 MB and the log by 78 MB."""
    client = _browser(fake_server)
    jobs_folder = fake_server.cache_dir / "jobs"
    jobs_before, log_before = _folder_bytes(jobs_folder), len(fake_server.log_text())
    huge = {"id": "f" * (25 * 1024 * 1024)}
    for prefix in ("depth", "depth", "compare"):
        response = client.call(
            (ids.job_cancel(prefix), "n_clicks"), {ids.job_cancel(prefix): 1, ids.job_store(prefix): huge}
        )
        assert output(response, ids.job_message(prefix), "children") == "Cancelled."
    polled = client.call(
        (ids.job_interval("depth"), "n_intervals"), {ids.job_interval("depth"): 1, ids.job_store("depth"): huge}
    )
    assert "start it again" in json.dumps(polled)  # an unknown job, nothing else
    jobs_growth = _folder_bytes(jobs_folder) - jobs_before
    log_growth = len(fake_server.log_text()) - log_before
    print(f"\nHUGE JOB ID: 3 cancels + 1 poll with a 25 MB id: jobs/ grew {jobs_growth} bytes, log {log_growth} bytes")
    assert jobs_growth < 1024 * 1024, f"jobs/ grew by {jobs_growth} bytes"
    assert log_growth < 64 * 1024, f"the log grew by {log_growth} bytes"


def test_a_session_can_neither_read_nor_cancel_another_sessions_job(fake_server):
    from dashboard.jobs import DiskJobStore

    alice, mallory = _browser(fake_server), _browser(fake_server)
    data = photo_variant(PHOTO, 301, 0)
    store = output(upload(alice, data, "alice.jpg"), ids.UPLOADS_STORE, "data")
    sha = store["items"][0]["sha"]
    started = start_depth(alice, store, sha)
    assert started.job and re.fullmatch(r"[0-9a-f]{64}", started.job["id"]), started.job
    stolen = start_depth(alice, store, sha).values | {}  # the same inputs, sent by another browser
    polled = mallory.call(
        (ids.job_interval("depth"), "n_intervals"),
        stolen | {ids.job_store("depth"): started.job, ids.job_interval("depth"): 3},
    )
    assert output(polled, ids.DEPTH_RESULT_STORE, "data") is None  # no result for someone else's job
    assert "start it again" in json.dumps(polled)  # as for an unknown job
    mallory.call(
        (ids.job_cancel("depth"), "n_clicks"), {ids.job_cancel("depth"): 1, ids.job_store("depth"): started.job}
    )
    jobs = DiskJobStore(fake_server.cache_dir / "jobs")
    try:
        assert not jobs.cancel_requested(started.job["id"]), "another session cancelled the job"
    finally:
        jobs.close()
    result = wait_for_depth(alice, started, timeout_s=60)  # the owner still gets it
    assert result["sha"] == sha


def test_each_session_sees_only_its_own_photos_under_its_own_names(fake_server):
    """Two sessions upload the same bytes under different names; a third holds the photo but never uploaded it."""
    alice, bob, eve = _browser(fake_server), _browser(fake_server), _browser(fake_server)
    data = photo_variant(PHOTO, 302, 0)
    other = photo_variant(THIRD_PHOTO, 302, 1)
    store_a = output(upload(alice, data, "alice.jpg"), ids.UPLOADS_STORE, "data")
    store_a = output(upload(alice, other, "alice-2.jpg", store_a), ids.UPLOADS_STORE, "data")
    sha, sha_other = (item["sha"] for item in store_a["items"])
    depth_a = generate_depth(alice, store_a, sha, timeout_s=60)
    comparison = generate_comparison(alice, store_a, [sha, sha_other], timeout_s=60)
    store_b = output(upload(bob, data, "bob.jpg"), ids.UPLOADS_STORE, "data")
    assert [item["sha"] for item in store_b["items"]] == [sha]  # the same content, stored once

    # the names stay each session's own
    for client, store, mine, theirs in ((alice, store_a, "alice.jpg", "bob.jpg"), (bob, store_b, "bob.jpg", "alice")):
        shown = json.dumps(gallery(client, store))
        assert mine in shown and theirs not in shown, shown[:500]
        picker = json.dumps(
            client.call((ids.UPLOADS_STORE, "data"), {ids.UPLOADS_STORE: store}, output_id=ids.DEPTH_FACE)
        )
        assert mine in picker and theirs not in picker
    caption = str(output(view_depth(alice, depth_a), ids.DEPTH_CAPTION, "children"))
    assert caption.startswith("alice.jpg"), caption
    caption = str(output(view_depth(bob, depth_a), ids.DEPTH_CAPTION, "children"))
    assert caption.startswith("bob.jpg"), caption  # bob uploaded it too: the same depth map, his name

    # eve holds the photo (she knows its hash) but never uploaded it: it does not exist for her
    never = "0" * 64
    for candidate in (sha, sha_other):
        mine, unknown = thumbnail(eve, candidate), thumbnail(eve, never)
        assert mine.status_code == unknown.status_code == 404 and mine.content == unknown.content
    assert thumbnail(alice, sha).status_code == 200 and thumbnail(bob, sha).status_code == 200
    assert thumbnail(bob, sha_other).status_code == 404  # bob uploaded only the first photo
    forged_store = {"items": [{"sha": sha, "face": 0}, {"sha": sha_other, "face": 0}]}
    shown = gallery(eve, forged_store)
    assert output(shown, ids.GALLERY_COUNT, "children") == "0"
    picker = eve.call((ids.UPLOADS_STORE, "data"), {ids.UPLOADS_STORE: forged_store}, output_id=ids.DEPTH_FACE)
    assert output(picker, ids.DEPTH_FACE, "options") == []
    assert "alice" not in json.dumps(picker) and "bob" not in json.dumps(picker)
    refused = {
        "generate": start_depth(eve, forged_store, sha).response,
        "depth view": view_depth(eve, depth_a),
        "3D view": view_3d(eve, model3d_values(depth_a, {})),
        "download": download_depth_png8(eve, depth_a),
        "comparison": view_comparison(eve, comparison["key"], comparison["count"]),
    }
    for what, response in refused.items():
        text = json.dumps(response)
        assert "alice" not in text and "bob" not in text, (what, text[:500])
        assert ids.ALERTS in json.dumps((response or {}).get("sideUpdate", {})), (what, text[:500])
        assert output(response, ids.DOWNLOAD, "data") is None and output(response, ids.DEPTH_CAPTION, "children") in (
            None,
            "",
        ), what
    assert output(refused["comparison"], ids.COMPARE_RESULTS, "hidden") is True
    # what eve sees for alice's comparison is what she sees for one that does not exist
    absent = view_comparison(eve, comparison["key"].replace(comparison["key"][-4:], "0000"), 2)
    assert (
        json.dumps(absent["sideUpdate"]).split('"id"')[0]
        == json.dumps(refused["comparison"]["sideUpdate"]).split('"id"')[0]
    )


def test_the_server_secret_is_made_once_private_and_shared_by_the_workers_of_a_machine(tmp_path, monkeypatch):
    import stat
    import subprocess
    import sys

    from dashboard.sessions import server_secret

    monkeypatch.delenv("FACE3D_SECRET_KEY", raising=False)
    program = "import sys; from pathlib import Path; from dashboard.sessions import server_secret; "
    program += "print(server_secret(Path(sys.argv[1])).decode())"
    workers = [  # four workers starting at the same moment on an empty cache folder
        subprocess.Popen(
            [sys.executable, "-c", program, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
        )
        for _ in range(4)
    ]
    secrets_seen = {worker.communicate(timeout=120)[0].strip() for worker in workers}
    assert len(secrets_seen) == 1 and len(secrets_seen.pop()) == 64
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]  # nothing left aside
    path.chmod(0o644)
    assert server_secret(tmp_path) == path.read_text().strip().encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # made private again
    monkeypatch.setenv("FACE3D_SECRET_KEY", "k" * 40)
    assert server_secret(tmp_path) == b"k" * 40


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlinked_secret_file_is_refused_never_followed_or_chmodded(tmp_path, monkeypatch, caplog, dangling):
    """A ``secret_key`` that is a link (to a file outside the cache, or to nothing) is neither read nor chmodded."""
    import stat

    from dashboard.sessions import server_secret

    monkeypatch.delenv("FACE3D_SECRET_KEY", raising=False)
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    cache.mkdir()
    outside.mkdir()
    target = outside / "someone_elses_file"
    if not dangling:
        target.write_text("x" * 64)
        target.chmod(0o644)
    (cache / "secret_key").symlink_to(target)
    with caplog.at_level("WARNING", logger="dashboard.sessions"):
        secret = server_secret(cache)
    assert secret != b"x" * 64 and len(secret) == 32  # a secret of this process, not the link's target
    assert "symbolic link" in caplog.text and "FACE3D_SECRET_KEY" in caplog.text
    if not dangling:
        assert stat.S_IMODE(target.stat().st_mode) == 0o644  # the target outside the cache is untouched
    else:
        assert not target.exists()  # nothing was created through the link
    assert (cache / "secret_key").is_symlink() and [p.name for p in cache.iterdir()] == ["secret_key"]
