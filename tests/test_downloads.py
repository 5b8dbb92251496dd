"""Prepared downloads (issue 16, item 4): files kept for their session, found only by a signed link.

The route that streams them is tried over HTTP in ``test_security.py``; here the links and the
spools as plain objects: a link works for its own session only, and not once altered or expired;
files past their lifetime or beyond the size limit go; a folder that cannot be written falls back
to memory; every file has its content type.
"""

from __future__ import annotations

import os
import time

import pytest

from dashboard.services.downloads import DiskSpool, Downloads, MemorySpool, StoreSpool, media_type
from face3d_core.cache import ResultCache

ALICE, BOB = "a" * 32, "b" * 32


def _parts(link: dict) -> tuple[str, str]:
    _, _, token, filename = link["url"].split("/")
    return token, filename


def test_a_link_finds_its_file_for_its_session_only(tmp_path):
    downloads = Downloads(b"s" * 32, DiskSpool(tmp_path / "downloads"))
    link = downloads.prepare(ALICE, "face_relief.stl", b"solid" * 1000)
    assert link["filename"] == "face_relief.stl" and link["size"] == 5000
    assert link["url"].startswith("face3d/download/") and link["url"].endswith("/face_relief.stl")
    token, filename = _parts(link)
    found = downloads.find(ALICE, token, filename)
    assert found is not None and found.path.read_bytes() == b"solid" * 1000
    assert found.media_type == "model/stl"
    assert os.stat(found.path).st_mode & 0o777 == 0o600
    file_id, expires, signature = token.split(".")
    other_id = file_id[:-1] + ("1" if file_id[-1] == "0" else "0")
    refused = [
        (BOB, token, filename),  # another session
        (ALICE, token, "other.stl"),  # another name
        (ALICE, f"{file_id}.{int(expires) + 60}.{signature}", filename),  # a later expiry
        (ALICE, f"{other_id}.{expires}.{signature}", filename),  # another file
        (ALICE, "../../etc/passwd", filename),
        (ALICE, token, "../secret_key"),
    ]
    for session, bad_token, bad_name in refused:
        assert downloads.find(session, bad_token, bad_name) is None, (session, bad_token, bad_name)
    other_server = Downloads(b"t" * 32, DiskSpool(tmp_path / "downloads"))  # another secret
    assert other_server.find(ALICE, token, filename) is None


def test_links_expire_and_old_files_are_swept(tmp_path, monkeypatch):
    spool = DiskSpool(tmp_path / "downloads", ttl_s=60, max_bytes=10_000)
    downloads = Downloads(b"s" * 32, spool, ttl_s=60)
    old = downloads.prepare(ALICE, "old.png", b"x" * 4000)
    old_id = _parts(old)[0].split(".")[0]
    past = time.time() - 120
    os.utime(spool.folder / old_id, (past, past))
    newer = downloads.prepare(ALICE, "new.png", b"y" * 4000)  # sweeps the expired file
    assert not (spool.folder / old_id).exists()
    assert downloads.find(ALICE, *_parts(newer)) is not None
    for n in range(3):  # beyond max_bytes the oldest go
        downloads.prepare(ALICE, f"more{n}.png", b"z" * 4000)
    assert sum(p.stat().st_size for p in spool.folder.iterdir()) <= 10_000
    monkeypatch.setattr(time, "time", lambda: past + 10_000)  # the link itself has expired
    assert downloads.find(ALICE, *_parts(newer)) is None


def test_a_spool_that_cannot_be_written_falls_back_to_memory(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the spool folder should be")
    downloads = Downloads(b"s" * 32, DiskSpool(blocked))
    link = downloads.prepare(ALICE, "report.html", b"<html></html>")
    found = downloads.find(ALICE, *_parts(link))
    assert found is not None and found.data == b"<html></html>" and found.path is None
    assert found.media_type == "text/html; charset=utf-8"


def test_memory_and_store_spools(tmp_path):
    memory = MemorySpool(ttl_s=60, max_bytes=100)
    for n in range(5):
        memory.put(f"{n:032x}", b"m" * 40)
    assert memory.get(f"{0:032x}", "x.csv") is None and memory.get(f"{4:032x}", "x.csv").data == b"m" * 40
    cache = ResultCache(tmp_path / "results")
    try:
        downloads = Downloads(b"s" * 32, StoreSpool(cache))
        link = downloads.prepare(ALICE, "face_3d.glb", b"glTF" * 10)
        assert downloads.find(ALICE, *_parts(link)).data == b"glTF" * 10
        assert downloads.find(BOB, *_parts(link)) is None
    finally:
        cache.close()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a_depth.png", "image/png"),
        ("a_depth.npy", "application/octet-stream"),
        ("a_3d.ply", "application/octet-stream"),
        ("a_3d.glb", "model/gltf-binary"),
        ("a_3d.stl", "model/stl"),
        ("a_relief.3mf", "model/3mf"),
        ("a_3d_obj.zip", "application/zip"),
        ("a_measurements.csv", "text/csv; charset=utf-8"),
        ("a_measurements.json", "application/json"),
        ("a_report.html", "text/html; charset=utf-8"),
    ],
)
def test_every_download_has_its_content_type(name, expected):
    assert media_type(name) == expected


def test_only_safe_names_are_prepared():
    with pytest.raises(ValueError):
        Downloads().prepare(ALICE, "../x.png", b"x")
