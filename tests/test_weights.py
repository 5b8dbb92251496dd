"""Weights lookup order, download against a real HTTP server on 127.0.0.1, integrity, offline."""

from __future__ import annotations

import hashlib
import http.server
from pathlib import Path

import pytest

from face3d_core.errors import WeightsIntegrityError, WeightsUnavailableError
from face3d_core.weights import WeightsFile, download_file, find_weights, resolve_weights
from tests.harness.servers import file_server


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files[path]``; ``/cut/...`` announces the full size but stops halfway."""

    def do_GET(self):  # noqa: N802 - http.server API
        files: dict[str, bytes] = self.server.files  # type: ignore[attr-defined]
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        cut = self.path.startswith("/cut/")
        data = files.get(self.path.removeprefix("/cut"))
        if data is None:
            self.send_error(404, "not found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if cut else data)
        self.wfile.flush()
        if cut:
            self.close_connection = True

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture()
def http_server():
    with file_server(_Handler) as server:
        yield server


@pytest.fixture()
def dirs(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FACE3D_CACHE_DIR", str(cache))
    monkeypatch.delenv("FACE3D_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("FACE3D_OFFLINE", raising=False)
    return tmp_path, cache / "weights"


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    """A real MiDaS-small checkpoint with fill.py weights, as torch.save writes it."""
    import torch

    from face3d_core.models.registry import get_spec
    from tests.conftest import load_fill_module

    fill = load_fill_module()
    state = fill.fill_state_dict(get_spec("midas_v21_small_256").build().state_dict())
    path = tmp_path_factory.mktemp("ckpt") / "midas_v21_small_256.pt"
    torch.save(state, path)
    return path.read_bytes()


def _url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_download_verifies_hash_and_loads(http_server, dirs, checkpoint_bytes):
    import torch

    from face3d_core.models.estimator import load_checkpoint
    from face3d_core.models.registry import get_spec

    http_server.files["/w/midas_v21_small_256.pt"] = checkpoint_bytes
    wf = WeightsFile(
        "midas_v21_small_256.pt",
        _url(http_server, "/w/midas_v21_small_256.pt"),
        hashlib.sha256(checkpoint_bytes).hexdigest(),
    )
    seen = []
    path = resolve_weights(wf, progress=lambda done, total: seen.append((done, total)))
    assert path == dirs[1] / "midas_v21_small_256.pt"
    assert path.read_bytes() == checkpoint_bytes
    assert seen[0] == (0, len(checkpoint_bytes)) and seen[-1] == (len(checkpoint_bytes), len(checkpoint_bytes))
    net = get_spec("midas_v21_small_256").build()
    net.load_state_dict(load_checkpoint(path), strict=True)  # weights_only load of a real checkpoint
    assert isinstance(next(iter(net.state_dict().values())), torch.Tensor)
    # second resolution hits the cache: no new request
    count = len(http_server.requests)
    assert resolve_weights(wf) == path
    assert len(http_server.requests) == count


def test_corrupted_download_leaves_no_file(http_server, dirs, checkpoint_bytes):
    corrupt = bytearray(checkpoint_bytes)
    corrupt[len(corrupt) // 2] ^= 0xFF
    http_server.files["/w/m.pt"] = bytes(corrupt)
    wf = WeightsFile("m.pt", _url(http_server, "/w/m.pt"), hashlib.sha256(checkpoint_bytes).hexdigest())
    with pytest.raises(WeightsIntegrityError, match="SHA-256"):
        resolve_weights(wf)
    assert not dirs[1].exists() or list(dirs[1].iterdir()) == []


def test_download_cut_off_halfway_leaves_no_partial_file(http_server, dirs):
    data = b"x" * 300_000
    http_server.files["/w/m.pt"] = data
    wf = WeightsFile("m.pt", _url(http_server, "/cut/w/m.pt"), hashlib.sha256(data).hexdigest())
    with pytest.raises(WeightsUnavailableError, match="broke off"):
        resolve_weights(wf)
    assert not dirs[1].exists() or list(dirs[1].iterdir()) == []


def test_http_404_names_file_url_and_folder(http_server, dirs):
    wf = WeightsFile("missing.pt", _url(http_server, "/nothing/missing.pt"), None, size_mb=80)
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights(wf)
    message = str(info.value)
    assert "missing.pt" in message and wf.url in message and str(dirs[1]) in message


def test_offline_never_touches_the_network(http_server, dirs, monkeypatch):
    monkeypatch.setenv("FACE3D_OFFLINE", "1")
    http_server.files["/w/m.pt"] = b"data"
    wf = WeightsFile("m.pt", _url(http_server, "/w/m.pt"))
    with pytest.raises(WeightsUnavailableError, match="switched off"):
        resolve_weights(wf)
    assert http_server.requests == []


def test_lookup_order(dirs, monkeypatch, tmp_path):
    wf = WeightsFile("m.pt", "http://127.0.0.1:9/never")
    cache_copy = dirs[1] / "m.pt"
    cache_copy.parent.mkdir(parents=True)
    cache_copy.write_bytes(b"cache")
    assert find_weights(wf) == cache_copy
    wdir = tmp_path / "wdir"
    wdir.mkdir()
    (wdir / "m.pt").write_bytes(b"weights dir")
    monkeypatch.setenv("FACE3D_WEIGHTS_DIR", str(wdir))
    assert find_weights(wf) == wdir / "m.pt"
    explicit = tmp_path / "mine.pt"
    explicit.write_bytes(b"explicit")
    assert find_weights(wf, explicit) == explicit
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        find_weights(wf, tmp_path / "nope.pt")


def test_fake_opener_network_error(dirs):
    import urllib.error

    def opener(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    with pytest.raises(WeightsUnavailableError, match="no route to host"):
        download_file("https://example.invalid/x.pt", dirs[1] / "x.pt", opener=opener)
    assert not (dirs[1] / "x.pt").exists()


def test_bad_checkpoint_file_gives_typed_error(tmp_path):
    from face3d_core.models.estimator import load_checkpoint

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="could not be read"):
        load_checkpoint(Path(bad))
