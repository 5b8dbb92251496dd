"""Reliability and security of face3d under hostile inputs and faults, tried for real.

1. Hostile files (the corpus of ``test_hostile_inputs`` plus malicious file names and odd but
   valid images) through the CLI (a subprocess, peak memory measured), through the upload
   callback as a plain function (with a hypothesis fuzz test) and through the running app over
   HTTP (peak memory of the server, no file written outside the cache directory).
2. Faults: a corrupted or half-written cache entry is recomputed; a full or read-only cache
   disk gives a clear error and loses no upload already stored (a real tmpfs in a private mount
   namespace where the machine allows it, else injected errors); a weights download cut off
   halfway inside a depth job leaves no partial file and a retry works; the server killed
   (SIGKILL) during inference and started again keeps every upload.
3. Security: 127.0.0.1 by default, request size enforced by the server, file names never
   used as paths, user text never rendered as HTML, weights only with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import io
import json
import logging
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dashboard import ids
from dashboard.app import MAX_REQUEST_BYTES
from dashboard.callbacks.upload import handle_upload, store_items
from dashboard.jobs import DiskJobStore as JobStore
from dashboard.jobs import JobState, ThreadJobRunner
from dashboard.services import Face3DService, PhotoMissingError
from face3d_core.cache import ResultCache
from tests.doubles import FakeEstimator
from tests.face3d_http import (
    FACES_DIR,
    FAKE_SERVER_CODE,
    FILL_PY,
    MODEL,
    REPO_ROOT,
    YUNET_PATH,
    DashHttp,
    ManagedProcess,
    base_env,
    data_url,
    free_port,
    output,
    python_exe,
    vm_hwm_bytes,
    wait_for_http,
)
from tests.test_hostile_inputs import hostile_corpus

PHOTO = FACES_DIR / "skimage_astronaut.png"
SECOND_PHOTO = FACES_DIR / "pillow_hopper_128.jpg"
THIRD_PHOTO = FACES_DIR / "interfaces_016.jpg"
EVIL_HTML_NAME = '<img src=x onerror="alert(1)"><script>alert(2)</script>.png'
EVIL_NAMES = ("../../x.png", "/etc/passwd", "..\\..\\win.png", EVIL_HTML_NAME, "a\x00b.png", "é" * 300 + ".png")
#: Most the peak resident memory of a process may grow while it handles the whole corpus.
#: A decoded 50000x50000 "PNG bomb" alone would need 7.5 GB.
MEMORY_GROWTH_LIMIT = 400 * 2**20


def _need_shared() -> None:
    if not PHOTO.is_file() or not YUNET_PATH.is_file():
        pytest.skip("../shared (face photos, YuNet) is absent")


def _png(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", **kwargs)
    return buffer.getvalue()


def _face_variant(path: Path, mode: str) -> bytes:
    """A real face photo re-encoded as a CMYK JPEG or a 16-bit grayscale PNG."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    buffer = io.BytesIO()
    if mode == "cmyk":
        rgb.convert("CMYK").save(buffer, "JPEG", quality=92)
    else:
        gray16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        Image.fromarray(gray16).save(buffer, "PNG")
    return buffer.getvalue()


def odd_but_valid() -> dict[str, bytes]:
    """Valid photos in unusual encodings: they must work."""
    return {"cmyk_face.jpg": _face_variant(PHOTO, "cmyk"), "gray16_face.png": _face_variant(PHOTO, "gray16")}


def tree(root: Path, exclude: Path | None = None) -> set[str]:
    """Relative paths of every file under ``root`` (except under ``exclude``)."""
    files = set()
    for path in root.rglob("*"):
        if exclude is not None and (path == exclude or exclude in path.parents):
            continue
        if path.is_file() or path.is_symlink():
            files.add(str(path.relative_to(root)))
    return files


# =====================================================================================
# 1. Hostile inputs through the CLI
# =====================================================================================

CLI_CODE = """
import resource, sys
from face3d_core.cli import main
code = main(sys.argv[1:])
print("FACE3D_MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def fill_weights(tmp_path_factory) -> Path:
    if not FILL_PY.is_file():
        pytest.skip("../shared/reference/fill.py is absent")
    from tests.doubles import write_fill_checkpoint

    folder = tmp_path_factory.mktemp("weights")
    write_fill_checkpoint(folder, FILL_PY, MODEL)
    return folder


def _run_cli(root: Path, cwd: Path, args: list[str], weights: Path) -> tuple[int, str, int]:
    env = base_env(
        FACE3D_WEIGHTS_DIR=str(weights),
        FACE3D_CACHE_DIR=str(root / "cache"),
        HOME=str(root / "home"),
        TMPDIR=str(root / "tmp"),
    )
    completed = subprocess.run(
        [python_exe(), "-c", CLI_CODE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    match = re.search(r"FACE3D_MAXRSS_KB (\d+)", completed.stderr)
    assert match, f"the CLI process died (rc {completed.returncode}):\n{completed.stderr[-3000:]}"
    return completed.returncode, completed.stderr, int(match.group(1)) * 1024


@pytest.mark.slow
def test_cli_reports_each_hostile_file_and_does_the_good_ones(tmp_path, fill_weights):
    _need_shared()
    root = tmp_path
    for folder in ("home", "tmp", "cache", "a/b/work", "out", "in"):
        (root / folder).mkdir(parents=True)
    cwd = root / "a" / "b" / "work"
    bad = hostile_corpus()
    for name, data in bad.items():
        (root / "in" / name).write_bytes(data)
    good = odd_but_valid()
    for name, data in good.items():
        (root / "in" / name).write_bytes(data)
    photo = PHOTO.read_bytes()
    (root / "a" / "x.png").write_bytes(photo)  # reached as ../../x.png from the working folder
    (root / "in" / "<i onmouseover=alert(1)>bold<i> & 'quoted'.png").write_bytes(photo)
    good_args = [str(root / "in" / name) for name in good]
    good_args += ["../../x.png", str(root / "in" / "<i onmouseover=alert(1)>bold<i> & 'quoted'.png")]
    bad_args = [str(root / "in" / name) for name in bad]
    common = ["depth", "--full-frame", "--no-progress", "--out-dir", str(root / "out"), "--model", MODEL]

    rc, _, baseline_rss = _run_cli(root, cwd, [*common, str(root / "in" / "cmyk_face.jpg")], fill_weights)
    assert rc == 0
    for path in (root / "out").iterdir():
        path.unlink()
    before = tree(root, exclude=root / "out")

    rc, stderr, hostile_rss = _run_cli(root, cwd, [*common, *bad_args, *good_args], fill_weights)

    assert rc == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("face3d: error:")]
    assert len(error_lines) == len(bad), "\n".join(error_lines)
    for name in bad:
        line = next(line for line in error_lines if name in line)
        message = line.split(": ", 3)[-1]
        assert 10 < len(message) < 300 and message.endswith("."), line
    # the good files were all done, and every output is a plain file in --out-dir
    outputs = sorted(p.name for p in (root / "out").iterdir())
    for stem in ("cmyk_face", "gray16_face", "x", "<i onmouseover=alert(1)>bold<i> & 'quoted'"):
        assert f"{stem}_depth.png" in outputs and f"{stem}_depth.npy" in outputs, outputs
    assert tree(root, exclude=root / "out") == before, "the CLI wrote files outside --out-dir"
    growth = hostile_rss - baseline_rss
    print(f"CLI peak RSS: {baseline_rss / 2**20:.0f} MiB one photo, {hostile_rss / 2**20:.0f} MiB with the corpus")
    assert growth < MEMORY_GROWTH_LIMIT, f"peak memory grew by {growth / 2**20:.0f} MiB on the hostile corpus"


# =====================================================================================
# 1b. Hostile inputs through the upload callback (plain function, fuzzed)
# =====================================================================================


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Face3DService:
    _need_shared()
    cache = ResultCache(tmp_path_factory.mktemp("svc") / "results")
    yield Face3DService(cache, estimator_factory=lambda name: FakeEstimator(), detector_path=YUNET_PATH)
    cache.close()


def _texts(component) -> str:
    return json.dumps(component.to_plotly_json(), default=lambda o: o.to_plotly_json())


def test_upload_callback_gives_every_hostile_file_its_own_message(service):
    corpus = hostile_corpus()
    names = list(corpus)
    contents = [data_url(data) for data in corpus.values()]
    photo = PHOTO.read_bytes()
    names += list(EVIL_NAMES)
    contents += [data_url(photo)] * len(EVIL_NAMES)
    good = odd_but_valid()
    names += list(good)
    contents += [data_url(data) for data in good.values()]
    contents.append("data:image/png;base64,!!!not base64!!!")
    names.append("broken_base64.png")
    contents.append("not a data url")
    names.append("no_data_url.png")

    store, messages = handle_upload(service, contents, names, None)

    items = store_items(store)
    texts = [_texts(m) for m in messages]
    # one warning per hostile or broken file, naming it, with a clear sentence
    for name in [*corpus, "broken_base64.png", "no_data_url.png"]:
        hits = [t for t in texts if json.dumps(name)[1:-1] in t]
        assert len(hits) == 1, (name, hits)
        assert '"color": "warning"' in hits[0] and "Traceback" not in hits[0]
    assert not any('"color": "danger"' in t for t in texts), "an unexpected error reached the user"
    # the valid photos were stored: the evil-named photo once (same bytes), CMYK and 16-bit PNG
    assert len(items) == 3, items
    for item in items:
        assert service.upload_meta(item["sha"]) is not None


def _mutated(base: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    data = bytearray(base)
    for position, value in edits:
        data[position % len(data)] = value
    return bytes(data[: max(1, len(data) - cut % len(data))])


_SMALL_FACE = None


def _small_face() -> bytes:
    global _SMALL_FACE
    if _SMALL_FACE is None:
        _SMALL_FACE = SECOND_PHOTO.read_bytes() if SECOND_PHOTO.is_file() else _png(np.zeros((32, 32, 3), np.uint8))
    return _SMALL_FACE


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    files=st.lists(
        st.tuples(
            st.text(min_size=0, max_size=80),
            st.one_of(
                st.binary(max_size=2048).map(data_url),
                st.text(max_size=200),
                st.tuples(
                    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
                    st.integers(0, 10_000),
                ).map(lambda e: data_url(_mutated(_small_face(), e[0], e[1]))),
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_upload_callback_never_raises(service, files):
    """Any names and contents: the callback returns; each file gets at most one message; names stay text."""
    names = [name for name, _ in files]
    contents = [content for _, content in files]
    store, messages = handle_upload(service, contents, names, None)
    assert isinstance(store, dict) and len(store_items(store)) <= len(files)
    for message in messages:
        payload = message.to_plotly_json()
        assert payload["type"] == "Alert" and payload["props"].get("color") != "danger", _texts(message)
        assert "dangerously_allow_html" not in _texts(message)


# =====================================================================================
# 1c. Hostile inputs through the running app over HTTP
# =====================================================================================


class FakeServer:
    """``create_app`` with a fake (optionally slow) network, as a subprocess on 127.0.0.1."""

    def __init__(self, root: Path, delay_s: float = 0.0):
        self.root = root
        self.cwd = root / "a" / "b" / "cwd"
        for folder in (self.cwd, root / "home", root / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        self.cache_dir = root / "cache"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = base_env(
            FACE3D_CACHE_DIR=str(self.cache_dir),
            FACE3D_TEST_PORT=str(self.port),
            FACE3D_TEST_FAKE_DELAY_S=str(delay_s),
            HOME=str(root / "home"),
            TMPDIR=str(root / "tmp"),
        )
        self.process: ManagedProcess | None = None

    def start(self) -> FakeServer:
        argv = [python_exe(), "-c", FAKE_SERVER_CODE]
        self.process = ManagedProcess(argv, self.env, self.root / "server.log", self.cwd)
        self.process.start()
        wait_for_http(self.url + "face3d/health", self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory):
    _need_shared()
    server = FakeServer(tmp_path_factory.mktemp("hostile-http"))
    try:
        yield server.start()
    finally:
        server.stop()


def _upload(client: DashHttp, data: bytes | str, name: str, store=None) -> dict | None:
    content = data if isinstance(data, str) else data_url(data)
    return client.call(
        (ids.UPLOAD, "contents"),
        {f"{ids.UPLOAD}.contents": [content], f"{ids.UPLOAD}.filename": [name], ids.UPLOADS_STORE: store},
        output_id=ids.UPLOAD_MESSAGES,
    )


def test_hostile_uploads_over_http_bounded_memory_no_stray_files(fake_server):
    client = DashHttp(fake_server.url)
    photo = PHOTO.read_bytes()
    warm = _upload(client, photo, "warm-up.png")  # decoder, detector and figures warmed up
    assert output(warm, ids.UPLOADS_STORE, "data")["items"]
    before_rss = vm_hwm_bytes(fake_server.process.pid)
    before_files = tree(fake_server.root, exclude=fake_server.cache_dir)

    for name, data in hostile_corpus().items():
        response = _upload(client, data, name)
        messages = json.dumps(output(response, ids.UPLOAD_MESSAGES, "children"))
        assert name in messages and '"warning"' in messages, (name, messages[:300])
        assert output(response, ids.UPLOADS_STORE, "data")["items"] == [], name
    for name in EVIL_NAMES:
        response = _upload(client, photo, name)
        assert output(response, ids.UPLOADS_STORE, "data")["items"], name

    assert fake_server.process.alive()
    assert requests.get(fake_server.url + "face3d/health", timeout=10).status_code == 200
    after_rss = vm_hwm_bytes(fake_server.process.pid)
    if before_rss and after_rss:
        print(f"server peak RSS {before_rss / 2**20:.0f} MiB -> {after_rss / 2**20:.0f} MiB over the corpus")
        assert after_rss - before_rss < MEMORY_GROWTH_LIMIT
    assert tree(fake_server.root, exclude=fake_server.cache_dir) - before_files <= {"server.log"}
    assert not (fake_server.root / "a" / "x.png").exists() and not (REPO_ROOT / "x.png").exists()
    log = fake_server.process.log_text()
    assert "Unexpected error" not in log and "Traceback" not in log, log[-3000:]


# =====================================================================================
# 3. Security
# =====================================================================================


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
        response = _upload(client, corpus[name], name)
        assert expected in json.dumps(output(response, ids.UPLOAD_MESSAGES, "children")), name


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
    photo = _face_variant(PHOTO, "cmyk")  # bytes no other test uploads, so the name is this one
    response = _upload(client, photo, EVIL_HTML_NAME)
    store = output(response, ids.UPLOADS_STORE, "data")
    sha = store["items"][0]["sha"]
    responses = [response]
    responses.append(client.call((ids.UPLOADS_STORE, "data"), {ids.UPLOADS_STORE: store}, output_id=ids.GALLERY))
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


def test_download_names_are_made_from_safe_characters_only(fake_server):
    client = DashHttp(fake_server.url)
    photo = THIRD_PHOTO.read_bytes() if THIRD_PHOTO.is_file() else PHOTO.read_bytes()
    response = _upload(client, photo, "../../evil/<x>name.jpg")
    store = output(response, ids.UPLOADS_STORE, "data")
    sha = store["items"][0]["sha"]
    result = _generate_depth(client, store, sha, timeout_s=60)
    triggered = client.call(
        (ids.DEPTH_DOWNLOAD_PNG8, "n_clicks"), {ids.DEPTH_DOWNLOAD_PNG8: 1, ids.DEPTH_RESULT_STORE: result}
    )
    filename = output(triggered, ids.DOWNLOAD, "data")["filename"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.png", filename), filename
    assert ".." not in filename and "/" not in filename


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
# 2. Faults
# =====================================================================================


def _generate_depth(client: DashHttp, store: dict, sha: str, timeout_s: float) -> dict:
    values = {
        ids.job_store("depth"): None,
        ids.DEPTH_FACE: sha,
        ids.DEPTH_MODEL: MODEL,
        ids.UPLOADS_STORE: store,
        ids.DEPTH_GENERATE: 1,
    }
    response = client.call((ids.DEPTH_GENERATE, "n_clicks"), values)
    result = output(response, ids.DEPTH_RESULT_STORE, "data")
    job = output(response, ids.job_store("depth"), "data")
    deadline = time.monotonic() + timeout_s
    tick = 0
    while result is None and time.monotonic() < deadline:
        time.sleep(0.2)
        tick += 1
        response = client.call(
            (ids.job_interval("depth"), "n_intervals"),
            values | {ids.job_store("depth"): job, ids.job_interval("depth"): tick},
        )
        result = output(response, ids.DEPTH_RESULT_STORE, "data")
        assert not response.get("sideUpdate"), response.get("sideUpdate")
    assert result is not None, "the depth job did not finish"
    return result


def test_corrupted_or_half_written_cache_entries_are_recomputed(tmp_path):
    _need_shared()
    fake = FakeEstimator()
    cache = ResultCache(tmp_path / "results")
    service = Face3DService(cache, estimator_factory=lambda name: fake, detector_path=YUNET_PATH)
    meta = service.ingest_upload(PHOTO.read_bytes(), "a.png")
    first = service.compute_depth(meta.sha256, MODEL, 0)
    key = service.depth_key(meta.sha256, MODEL, 0)
    assert fake.calls == 1

    def fresh() -> Face3DService:  # a new server process: empty memory tier, same disk cache
        return Face3DService(
            ResultCache(tmp_path / "results"), estimator_factory=lambda name: fake, detector_path=YUNET_PATH
        )

    # a truncated file (a crash or a full disk in the middle of writing it)
    path = cache.entry_path(key)
    assert path is not None and path.is_file()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again = fresh().compute_depth(meta.sha256, MODEL, 0)
    assert fake.calls == 2, "a truncated entry was served instead of recomputed"
    np.testing.assert_array_equal(again.depth_rel, first.depth_rel)

    # flipped bytes in the middle (bit rot)
    path = cache.entry_path(key)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    fresh().compute_depth(meta.sha256, MODEL, 0)
    assert fake.calls == 3

    # the entry's file vanished (the database row was written, the file was not)
    cache.entry_path(key).unlink()
    fresh().compute_depth(meta.sha256, MODEL, 0)
    assert fake.calls == 4

    # a damaged *upload* cannot be recomputed: a clear message, never garbage
    upload_path = cache.entry_path(f"face3d/v1/upload/{meta.sha256}/-/-")
    assert upload_path is not None
    upload_path.write_bytes(upload_path.read_bytes()[:100])
    other = fresh()
    with pytest.raises(PhotoMissingError, match="upload it again"):
        other.compute_depth(meta.sha256, MODEL, None)


FAULT_CHILD = r"""
import errno, json, os, sqlite3, subprocess, sys
sys.path.insert(0, os.environ["FACE3D_REPO"])
mode, cache_dir, yunet, photo_a, photo_b, photo_c = sys.argv[1:7]
from dashboard.callbacks.upload import handle_upload
from dashboard.jobs import DiskJobStore as JobStore, ThreadJobRunner
from dashboard.services import Face3DService
from tests.doubles import FakeEstimator
from face3d_core.cache import ResultCache
from face3d_core.errors import CacheError
import diskcache

out = {"mode": mode}
fault = {"kind": None}
if mode == "real":
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", cache_dir], check=True)
else:  # no mount namespace here: inject the errors the kernel and SQLite would raise
    original_set = diskcache.Cache.set
    def failing_set(self, *args, **kwargs):
        if fault["kind"] == "full":
            raise OSError(errno.ENOSPC, "No space left on device")
        if fault["kind"] == "readonly":
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return original_set(self, *args, **kwargs)
    diskcache.Cache.set = failing_set

fake = FakeEstimator()
def make_service():
    return Face3DService(ResultCache(os.path.join(cache_dir, "results")), estimator_factory=lambda n: fake,
                         detector_path=yunet)
service = make_service()
runner = ThreadJobRunner(JobStore(os.path.join(cache_dir, "jobs")), service.tasks())
read = lambda p: open(p, "rb").read()
meta_a = service.ingest_upload(read(photo_a), "a.png")
service.compute_depth(meta_a.sha256, "midas_v21_small_256", 0)

from face3d_http import data_url
def upload_message(data, name):
    store, messages = handle_upload(service, [data_url(data)], [name], None)
    return store["items"], " ".join(str(m.to_plotly_json()["props"]["children"]) for m in messages)

def stored_ok(svc, sha):
    return svc.upload_meta(sha) is not None and svc.image(sha).ndim == 3

# -- disk full ------------------------------------------------------------------------
filler = os.path.join(cache_dir, "filler.bin")
if mode == "real":
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(os.urandom(1 << 20))
                handle.flush()
        except OSError as exc:
            out["fill_errno"] = exc.errno
    # top up the last bytes
    try:
        with open(filler, "ab") as handle:
            while True:
                handle.write(b"\0" * 4096); handle.flush()
    except OSError:
        pass
else:
    fault["kind"] = "full"
items, message = upload_message(read(photo_b), "b.jpg")
out["full_upload_items"] = items
out["full_upload_message"] = message
try:
    service.ingest_upload(read(photo_b), "b.jpg")
    out["full_ingest_error"] = None
except CacheError as exc:
    out["full_ingest_error"] = exc.user_message
try:
    job = runner.submit("depth", {"sha": meta_a.sha256, "model": "midas_v21_small_256", "face": None})
    import time
    for _ in range(200):
        status = runner.status(job)
        if status is not None and status.state.finished:
            break
        time.sleep(0.05)
    out["full_job"] = [status.state.value, status.error_title, status.error_message] if status else None
except CacheError as exc:
    out["full_job"] = ["submit-refused", exc.title, exc.user_message]
out["full_a_still_ok_same_process"] = stored_ok(service, meta_a.sha256)
out["full_a_depth_cached"] = service.cached_depth(meta_a.sha256, "midas_v21_small_256", 0) is not None
try:
    out["full_a_still_ok_new_process"] = stored_ok(make_service(), meta_a.sha256)
except CacheError as exc:
    out["full_a_still_ok_new_process"] = "open failed: " + exc.user_message
# free the disk: everything works again, nothing was lost
if mode == "real":
    os.remove(filler)
fault["kind"] = None
items, message = upload_message(read(photo_b), "b.jpg")
out["after_free_upload_ok"] = len(items) == 1
sha_b = items[0]["sha"] if items else None

# -- read-only ------------------------------------------------------------------------
# (a) the folder turns read-only under the running server (a read-only bind mount over it:
#     files already open stay as they are, every new file is refused with EROFS);
# (b) a new server process is started on the read-only folder.
if mode == "real":
    subprocess.run(["mount", "--bind", cache_dir, cache_dir], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", cache_dir], check=True)
else:
    fault["kind"] = "readonly"
items, message = upload_message(read(photo_c), "c.jpg")
out["ro_upload_items"] = items
out["ro_upload_message"] = message
out["ro_a_still_ok_same_process"] = stored_ok(service, meta_a.sha256)
if mode == "real":
    try:
        out["ro_new_process"] = stored_ok(make_service(), meta_a.sha256)
    except CacheError as exc:
        out["ro_new_process"] = "open failed: " + exc.user_message
    subprocess.run(["umount", "-l", cache_dir], check=True)
else:
    out["ro_new_process"] = "open failed: (simulated) writable folder"
fault["kind"] = None  # (the read-only mount vanishes with this process's mount namespace)
final = make_service()
out["final_a_ok"] = stored_ok(final, meta_a.sha256)
out["final_b_ok"] = sha_b is not None and stored_ok(final, sha_b)
print("FAULT_RESULT " + json.dumps(out))
"""


def _mount_namespace_available() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        probe = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.mark.slow
def test_full_or_read_only_cache_disk_gives_clear_errors_and_keeps_uploads(tmp_path):
    _need_shared()
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    real = _mount_namespace_available()
    args = ["real" if real else "simulated", str(cache_dir), str(YUNET_PATH), str(PHOTO)]
    args += [str(THIRD_PHOTO), str(FACES_DIR / "fr_obama_official_portrait.jpg")]
    command = [python_exe(), "-c", FAULT_CHILD, *args]
    if real:
        command = ["unshare", "--mount", "--propagation", "private", *command]
    env = base_env(PYTHONPATH=f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'tests'}")
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    match = re.search(r"FAULT_RESULT (\{.*\})", completed.stdout)
    assert match, f"rc {completed.returncode}\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
    out = json.loads(match.group(1))
    print(json.dumps(out, indent=1))

    # disk full: the upload is refused with a message that says what to do; the job too
    assert out["full_upload_items"] == []
    assert "Free some disk space" in out["full_upload_message"], out["full_upload_message"]
    assert out["full_ingest_error"] and "Free some disk space" in out["full_ingest_error"]
    state, title, message = out["full_job"]
    assert state in {"submit-refused", JobState.FAILED.value}, out["full_job"]
    assert title == "Cache problem" and "disk space" in message, out["full_job"]
    # ... and what was stored before is still there, for this process and a restarted one
    assert out["full_a_still_ok_same_process"] and out["full_a_depth_cached"]
    new_process = out["full_a_still_ok_new_process"]
    assert new_process is True or "writable folder" in new_process, new_process
    assert out["after_free_upload_ok"]
    # read-only: a clear message, stored uploads still readable
    assert out["ro_upload_items"] == []
    assert "Could not write to the result cache" in out["ro_upload_message"], out["ro_upload_message"]
    assert out["ro_a_still_ok_same_process"]
    # a server started on a read-only folder either serves what is stored or says what to do
    assert out["ro_new_process"] is True or "writable folder" in out["ro_new_process"], out["ro_new_process"]
    assert out["final_a_ok"] and out["final_b_ok"]


class _CutHandler(http.server.BaseHTTPRequestHandler):
    """Serves the checkpoint; while ``server.cut`` is set it stops after half the announced bytes."""

    def do_GET(self):  # noqa: N802 - http.server API
        data: bytes = self.server.data  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if self.server.cut else data)  # type: ignore[attr-defined]
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_download_cut_off_inside_a_depth_job_leaves_no_partial_weights(tmp_path, monkeypatch, fill_weights):
    _need_shared()
    import dataclasses

    from face3d_core.models.estimator import DepthEstimator
    from face3d_core.models.registry import get_spec

    checkpoint = (fill_weights / get_spec(MODEL).file_name).read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutHandler)
    server.data, server.cut = checkpoint, True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("FACE3D_CACHE_DIR", str(tmp_path / "home-cache"))
        monkeypatch.delenv("FACE3D_WEIGHTS_DIR", raising=False)
        monkeypatch.delenv("FACE3D_OFFLINE", raising=False)
        url = f"http://127.0.0.1:{server.server_address[1]}/{get_spec(MODEL).file_name}"
        spec = dataclasses.replace(get_spec(MODEL), url=url, sha256=hashlib.sha256(checkpoint).hexdigest())
        estimator = DepthEstimator(MODEL, device="cpu", precision="fp32")
        estimator.spec = spec
        service = Face3DService(
            ResultCache(tmp_path / "results"), estimator_factory=lambda name: estimator, detector_path=YUNET_PATH
        )
        runner = ThreadJobRunner(JobStore(tmp_path / "jobs"), service.tasks())
        meta = service.ingest_upload(PHOTO.read_bytes(), "a.png")
        weights_folder = tmp_path / "home-cache" / "weights"

        def run_job() -> object:
            job = runner.submit("depth", {"sha": meta.sha256, "model": MODEL, "face": 0})
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                status = runner.status(job)
                if status.state.finished:
                    return status
                time.sleep(0.05)
            raise AssertionError("job did not finish")

        status = run_job()
        assert status.state == JobState.FAILED and status.error_title == "Model weights missing"
        assert "broke off" in status.error_message and url in status.error_message
        assert not weights_folder.exists() or list(weights_folder.iterdir()) == [], "a partial download was kept"

        server.cut = False  # the network is back: the same job now works
        status = run_job()
        assert status.state == JobState.DONE, status
        assert [p.name for p in weights_folder.iterdir()] == [spec.file_name]
        runner.shutdown()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_server_killed_during_inference_keeps_every_upload(tmp_path):
    _need_shared()
    server = FakeServer(tmp_path, delay_s=4.0).start()
    try:
        client = DashHttp(server.url)
        store = None
        photos = [PHOTO, THIRD_PHOTO, FACES_DIR / "fr_obama_official_portrait.jpg"]
        for index, path in enumerate(photos):
            response = _upload(client, path.read_bytes(), f"photo{index}{path.suffix}", store)
            store = output(response, ids.UPLOADS_STORE, "data")
        shas = [item["sha"] for item in store["items"]]
        assert len(shas) == 3
        values = {
            ids.job_store("depth"): None,
            ids.DEPTH_FACE: shas[0],
            ids.DEPTH_MODEL: MODEL,
            ids.UPLOADS_STORE: store,
            ids.DEPTH_GENERATE: 1,
        }
        job = output(client.call((ids.DEPTH_GENERATE, "n_clicks"), values), ids.job_store("depth"), "data")
        poll = values | {ids.job_store("depth"): job, ids.job_interval("depth"): 1}
        deadline = time.monotonic() + 60
        message = ""
        while time.monotonic() < deadline and "Estimating depth" not in str(message):
            time.sleep(0.1)
            response = client.call((ids.job_interval("depth"), "n_intervals"), poll)
            message = output(response, ids.job_message("depth"), "children")
        assert "Estimating depth" in str(message), message  # the (4 s) network is running now

        server.process.kill()  # SIGKILL: no clean-up of any kind
        server.start()

        client = DashHttp(server.url)
        gallery = client.call((ids.UPLOADS_STORE, "data"), {ids.UPLOADS_STORE: store}, output_id=ids.GALLERY)
        assert output(gallery, ids.GALLERY_COUNT, "children") == "3", "uploads were lost in the crash"
        for sha in shas:
            assert requests.get(f"{server.url}face3d/thumb/{sha}.jpg", timeout=10).status_code == 200
        interrupted = client.call((ids.job_interval("depth"), "n_intervals"), poll | {ids.job_interval("depth"): 2})
        assert "Job interrupted" in json.dumps(interrupted.get("sideUpdate", {})), interrupted
        result = _generate_depth(client, store, shas[0], timeout_s=90)  # starting again works
        assert result["sha"] == shas[0]
    finally:
        server.stop()
