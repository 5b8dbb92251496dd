"""Faults, tried for real: damaged cache entries, a full or read-only disk, a cut-off download, a killed server.

1. A corrupted, half-written or vanished cache entry is recomputed; a damaged upload says so.
2. A full or read-only cache disk gives a clear error and loses no upload already stored (a real
   tmpfs in a private mount namespace where the machine allows it, else injected errors; see
   :mod:`tests.harness.cache_disk_faults`).
3. A weights download cut off halfway inside a depth job leaves no partial file; a retry works.
4. The server killed (SIGKILL) during inference and started again keeps every upload.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import subprocess
import threading
import time

import numpy as np
import pytest

from dashboard import ids
from dashboard.jobs import DiskJobStore, JobState, ThreadJobRunner
from dashboard.services import Face3DService, PhotoMissingError
from face3d_core.cache import ResultCache
from tests.doubles import FakeEstimator
from tests.harness.cache_disk_faults import mount_namespace_available, run_cache_disk_faults
from tests.harness.dash_client import DashHttp, output
from tests.harness.flows import (
    download_depth_png8,
    gallery,
    generate_depth,
    model3d_values,
    open_page,
    poll_depth,
    press_upload_again,
    start_depth,
    thumbnail,
    upload,
    view_3d,
    view_depth,
)
from tests.harness.page_text import internal_leaks
from tests.harness.paths import MODEL, PHOTO, PORTRAIT_PHOTO, THIRD_PHOTO, YUNET_PATH, require
from tests.harness.processes import child_env
from tests.harness.readonly_cache_server import run_readonly_cache_server
from tests.harness.servers import PID_NAMESPACE, fake_network_server
from tests.harness.service_calls import compute_depth, depth_key, ingest_upload

# =====================================================================================
# 1. Damaged cache entries
# =====================================================================================


def test_corrupted_or_half_written_cache_entries_are_recomputed(tmp_path):
    require(PHOTO, YUNET_PATH)
    fake = FakeEstimator()
    cache = ResultCache(tmp_path / "results")
    service = Face3DService(cache, estimator_factory=lambda *_: fake, detector_path=YUNET_PATH)
    meta = ingest_upload(service, PHOTO.read_bytes(), "a.png")
    first = compute_depth(service, meta.sha256, MODEL, 0)
    key = depth_key(service, meta.sha256, MODEL, 0)
    assert fake.calls == 1

    def fresh() -> Face3DService:  # a new server process: empty memory tier, same disk cache
        return Face3DService(
            ResultCache(tmp_path / "results"), estimator_factory=lambda *_: fake, detector_path=YUNET_PATH
        )

    # a truncated file (a crash or a full disk in the middle of writing it)
    path = cache.entry_path(key)
    assert path is not None and path.is_file()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again = compute_depth(fresh(), meta.sha256, MODEL, 0)
    assert fake.calls == 2, "a truncated entry was served instead of recomputed"
    np.testing.assert_array_equal(again.depth_rel, first.depth_rel)

    # flipped bytes in the middle (bit rot)
    path = cache.entry_path(key)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    compute_depth(fresh(), meta.sha256, MODEL, 0)
    assert fake.calls == 3

    # the entry's file vanished (the database row was written, the file was not)
    cache.entry_path(key).unlink()
    compute_depth(fresh(), meta.sha256, MODEL, 0)
    assert fake.calls == 4

    # a damaged *upload* cannot be recomputed: a clear message, never garbage
    upload_path = cache.entry_path(f"face3d/v1/upload/{meta.sha256}/-/-")
    assert upload_path is not None
    upload_path.write_bytes(upload_path.read_bytes()[:100])
    other = fresh()
    with pytest.raises(PhotoMissingError, match="upload it again"):
        compute_depth(other, meta.sha256, MODEL, None)


# =====================================================================================
# 2. A full or read-only cache disk
# =====================================================================================


@pytest.mark.slow
def test_full_or_read_only_cache_disk_gives_clear_errors_and_keeps_uploads(tmp_path):
    require(PHOTO, YUNET_PATH)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    out = run_cache_disk_faults(cache_dir, YUNET_PATH, [PHOTO, THIRD_PHOTO, PORTRAIT_PHOTO], child_env())
    print(json.dumps(out, indent=1))

    # disk full: the upload is refused with a message that says what to do; the job too
    # (the page says so without the server's folder; the service's message for the log and the CLI names it)
    assert out["full_upload_items"] == []
    assert "storage is full" in out["full_upload_message"], out["full_upload_message"]
    assert str(cache_dir) not in out["full_upload_message"]
    assert out["full_ingest_error"] and "Free some disk space" in out["full_ingest_error"]
    state, title, message = out["full_job"]
    assert state in {"submit-refused", JobState.FAILED.value}, out["full_job"]
    assert title == "Cache problem" and ("disk space" in message or "storage is full" in message), out["full_job"]
    if state == JobState.FAILED.value:  # a failed job is shown on the page: no server folder
        assert str(cache_dir) not in message
    # ... and what was stored before is still there, for this process and a restarted one
    assert out["full_a_still_ok_same_process"] and out["full_a_depth_cached"]
    new_process = out["full_a_still_ok_new_process"]
    assert new_process is True or "writable folder" in new_process, new_process
    assert out["after_free_upload_ok"]
    # read-only: a clear message, stored uploads still readable
    assert out["ro_upload_items"] == []
    assert "read-only" in out["ro_upload_message"], out["ro_upload_message"]
    assert str(cache_dir) not in out["ro_upload_message"]
    assert out["ro_a_still_ok_same_process"]
    # a server started on a read-only folder either serves what is stored or says what to do
    assert out["ro_new_process"] is True or "writable folder" in out["ro_new_process"], out["ro_new_process"]
    assert out["final_a_ok"] and out["final_b_ok"]


#: Longest a request of the read-only phase may take, and the server CPU it may use (seconds).
READ_ONLY_REQUEST_LIMIT_S = 5.0


@pytest.mark.slow
def test_read_only_cache_under_a_running_server_never_makes_requests_spin(tmp_path):
    """A real read-only bind mount over the cache of a running ``python -m dashboard``-style server.

    Reads (thumbnails, gallery, depth, 3D, comparison, job poll) are still served; writes
    (upload, a new job) fail fast saying the cache is not writable; no request holds a CPU.
    """
    require(PHOTO, YUNET_PATH, THIRD_PHOTO, PORTRAIT_PHOTO)
    if not mount_namespace_available():
        pytest.skip("needs root and mount namespaces (unshare --mount) for a real read-only mount")
    out = run_readonly_cache_server(tmp_path, [PHOTO, THIRD_PHOTO, PORTRAIT_PHOTO], child_env())
    print(json.dumps(out, indent=1))
    by_label = {entry["request"]: entry for entry in out["requests"]}
    for entry in out["requests"]:
        assert "error" not in entry, entry
        assert entry["seconds"] < READ_ONLY_REQUEST_LIMIT_S, entry
        assert entry["server_cpu_s"] < READ_ONLY_REQUEST_LIMIT_S, entry
    for round_number in (1, 2):
        suffix = f"#{round_number}"
        for label in ("thumbnail a", "thumbnail b"):
            assert by_label[label + suffix]["result"] == {"status": 200, "jpeg": True}, by_label[label + suffix]
        assert by_label["gallery" + suffix]["result"] == "2"
        assert "a.png" in by_label["depth view" + suffix]["result"]
        assert "points" in by_label["3D view" + suffix]["result"]
        assert by_label["comparison view" + suffix]["result"] is False  # results shown
        assert by_label["job poll" + suffix]["result"] is True
        # the page says the storage is read-only (its web message: no server folder), what still works
        for action in ("upload", "generate"):
            shown = by_label[action + suffix]["result"]
            assert "storage is read-only" in shown and "can still be viewed" in shown, shown
            assert internal_leaks(shown) == [], shown
    assert out["server_alive"]
    assert out["server_cpu_read_only_s"] < 4 * READ_ONLY_REQUEST_LIMIT_S, out["server_cpu_read_only_s"]
    assert out["writable_again_items"] == 3  # the mount is gone: uploads work again


@pytest.mark.slow
@pytest.mark.parametrize("store", ["results", "jobs"])
def test_a_damaged_index_is_repaired_when_the_server_starts(tmp_path, store):
    """A ``cache.db`` that is no database any more: the server starts, says what it did, and works.

    Job records are disposable (rebuilt empty); the result cache's index is moved aside (its
    files are kept) and a fresh one started: the photos then have to be uploaded again.
    """
    require(PHOTO, YUNET_PATH)
    server = fake_network_server(tmp_path)
    server.start()
    try:
        client = DashHttp(server.url)
        open_page(client)
        store_data = output(upload(client, PHOTO.read_bytes(), "a.png"), ids.UPLOADS_STORE, "data")
        sha = store_data["items"][0]["sha"]
        generate_depth(client, store_data, sha, timeout_s=60)
        job = start_depth(client, store_data, sha, model="dpt_levit_224")
        generate_depth(client, store_data, sha, timeout_s=60, model="dpt_levit_224")
    finally:
        server.stop()
    folder = server.cache_dir / store
    index = folder / "cache.db"
    value_files = sorted(p.relative_to(folder) for p in folder.rglob("*.val"))
    with open(index, "r+b") as handle:  # the header and the first pages overwritten: not a database any more
        handle.write(b"this is not a database, whatever it was " * 200)
    for log_file in (folder / "cache.db-wal", folder / "cache.db-shm"):  # (or its log would repair it)
        log_file.unlink(missing_ok=True)

    server.start()  # raises with the server's log if it does not become healthy
    try:
        log = server.log_text()
        assert "Traceback" not in log, log[-3000:]
        client = DashHttp(server.url, client.session)  # the same browser
        open_page(client)
        if store == "results":
            assert "moved to cache.db.damaged-" in log and "fresh, empty index" in log, log[-3000:]
            aside = list(folder.glob("cache.db.damaged-*"))
            assert aside and aside[0].read_bytes().startswith(b"this is not a database")
            assert sorted(p.relative_to(folder) for p in folder.rglob("*.val")) == value_files  # files kept
            shown = gallery(client, store_data)
            assert output(shown, ids.GALLERY_COUNT, "children") == "0"
            assert "upload them again" in json.dumps(output(shown, ids.GALLERY, "children"))
            store_data = output(upload(client, PHOTO.read_bytes(), "a.png"), ids.UPLOADS_STORE, "data")
        else:
            assert "store was rebuilt empty" in log, log[-3000:]
            assert output(gallery(client, store_data), ids.GALLERY_COUNT, "children") == "1"  # results untouched
            lost = poll_depth(client, job, 5)
            assert "start it again" in json.dumps(lost), lost
        result = generate_depth(client, store_data, sha, timeout_s=60, model="dpt_swin2_tiny_256")  # a new job
        assert result["sha"] == sha
    finally:
        server.stop()


# =====================================================================================
# 3. A weights download cut off halfway
# =====================================================================================


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
    require(PHOTO, YUNET_PATH)
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
            ResultCache(tmp_path / "results"), estimator_factory=lambda *_: estimator, detector_path=YUNET_PATH
        )
        runner = ThreadJobRunner(DiskJobStore(tmp_path / "jobs"), service.tasks())
        meta = ingest_upload(service, PHOTO.read_bytes(), "a.png")
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
        assert status.error_file == spec.file_name and status.error_url == url  # the page offers the link
        assert not weights_folder.exists() or list(weights_folder.iterdir()) == [], "a partial download was kept"

        server.cut = False  # the network is back: the same job now works
        status = run_job()
        assert status.state == JobState.DONE, status
        assert [p.name for p in weights_folder.iterdir()] == [spec.file_name]
        runner.shutdown()
    finally:
        server.shutdown()
        server.server_close()


# =====================================================================================
# 4. The server killed during inference
# =====================================================================================


@pytest.mark.slow
def test_server_killed_during_inference_keeps_every_upload(tmp_path):
    require(PHOTO, YUNET_PATH)
    server = fake_network_server(tmp_path, delay_s=4.0).start()
    try:
        client = DashHttp(server.url)
        store = None
        photos = [PHOTO, THIRD_PHOTO, PORTRAIT_PHOTO]
        for index, path in enumerate(photos):
            response = upload(client, path.read_bytes(), f"photo{index}{path.suffix}", store)
            store = output(response, ids.UPLOADS_STORE, "data")
        shas = [item["sha"] for item in store["items"]]
        assert len(shas) == 3
        started = start_depth(client, store, shas[0])
        deadline = time.monotonic() + 60
        message = ""
        while time.monotonic() < deadline and "Estimating depth" not in str(message):
            time.sleep(0.1)
            response = poll_depth(client, started, 1)
            message = output(response, ids.job_message("depth"), "children")
        assert "Estimating depth" in str(message), message  # the (4 s) network is running now

        server.kill()  # SIGKILL: no clean-up of any kind
        server.start()

        client = DashHttp(server.url, client.session)  # the same browser (cookie) after the restart
        shown = gallery(client, store)
        assert output(shown, ids.GALLERY_COUNT, "children") == "3", "uploads were lost in the crash"
        for sha in shas:
            assert thumbnail(client, sha).status_code == 200
        interrupted = poll_depth(client, started, 2)
        assert "Job interrupted" in json.dumps(interrupted.get("sideUpdate", {})), interrupted
        result = generate_depth(client, store, shas[0], timeout_s=90)  # starting again works
        assert result["sha"] == shas[0]
    finally:
        server.stop()


def _pid_namespace_available() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        probe = subprocess.run([*PID_NAMESPACE, "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.system
def test_a_job_interrupted_in_a_container_is_not_taken_for_alive_after_the_restart(tmp_path):
    """The server is process 1 of its PID namespace (as in a container), killed mid-job, started again.

    The new server is process 1 again, so the dead job's process id is "alive": the job must
    still be reported interrupted (liveness is not a process id alone).
    """
    require(PHOTO, YUNET_PATH)
    if not _pid_namespace_available():
        pytest.skip("needs root and PID namespaces (unshare --pid --fork --mount-proc)")
    # heartbeats every second (3 missed = gone): the restarted server reports the job within seconds
    server = fake_network_server(
        tmp_path, delay_s=30.0, command_prefix=PID_NAMESPACE, FACE3D_JOB_HEARTBEAT_S="1"
    ).start()
    try:
        client = DashHttp(server.url)
        open_page(client)
        store = output(upload(client, PHOTO.read_bytes(), "a.png"), ids.UPLOADS_STORE, "data")
        sha = store["items"][0]["sha"]
        started = start_depth(client, store, sha)
        deadline = time.monotonic() + 60
        message = ""
        while time.monotonic() < deadline and "Estimating depth" not in str(message):
            time.sleep(0.1)
            message = output(poll_depth(client, started, 1), ids.job_message("depth"), "children")
        assert "Estimating depth" in str(message), message

        server.kill()
        server.start()
        assert server.log_text().count("running as process 1\n") == 2, server.log_text()[-2000:]

        client = DashHttp(server.url, client.session)
        restarted = time.monotonic()
        deadline = restarted + 30
        shown = ""
        while time.monotonic() < deadline:
            response = poll_depth(client, started, 2)
            shown = json.dumps(response)
            if "Job interrupted" in shown:
                break
            time.sleep(0.5)
        print(f"\nPID 1 RESTART: 'Job interrupted' shown {time.monotonic() - restarted:.1f} s after the restart")
        assert "Job interrupted" in shown, shown
    finally:
        server.stop()


# =====================================================================================
# 6. A small cache under another session's uploads
# =====================================================================================

#: The cache size limit of these tests (MB) and the uploads of the other session that overflow it.
SMALL_CACHE_MB = 50
FLOOD_UPLOADS = 28


def _big_unique_jpeg(index: int) -> bytes:
    """About 2.5 MB of JPEG noise, different for every ``index`` (no face: it is stored all the same)."""
    from PIL import Image

    pixels = (np.random.default_rng(index).random((1400, 1800, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def _flood(client: DashHttp, count: int) -> list[str]:
    """Another session uploads ``count`` big photos, one at a time; returns the upload messages."""
    messages = []
    for index in range(count):
        response = upload(client, _big_unique_jpeg(index), f"flood-{index}.jpg")
        messages.append(json.dumps(output(response, ids.UPLOAD_MESSAGES, "children")))
    return messages


def _a_user_with_a_depth_map(server) -> tuple[DashHttp, dict, str, dict, dict]:
    client = DashHttp(server.url)
    defaults = open_page(client)
    store = output(upload(client, PHOTO.read_bytes(), "mine.png"), ids.UPLOADS_STORE, "data")
    sha = store["items"][0]["sha"]
    result = generate_depth(client, store, sha, timeout_s=60)
    assert "mine.png" in str(output(view_depth(client, result), ids.DEPTH_CAPTION, "children"))
    return client, store, sha, result, defaults


@pytest.mark.slow
def test_another_sessions_uploads_never_evict_a_photo_in_use(tmp_path):
    """FACE3D_CACHE_SIZE_MB=50; user A has a photo and its depth map open; user B uploads 70 MB.

    Before: B's uploads evicted A's photo first (checking that it exists did not count as a use),
    so A's gallery emptied, the depth view went blank and downloads said the photo was gone.
    """
    require(PHOTO, YUNET_PATH)
    server = fake_network_server(tmp_path, FACE3D_CACHE_SIZE_MB=str(SMALL_CACHE_MB)).start()
    try:
        alice, store, sha, result, defaults = _a_user_with_a_depth_map(server)
        bob = DashHttp(server.url)
        open_page(bob)
        messages = _flood(bob, FLOOD_UPLOADS)
        volume = sum(p.stat().st_size for p in (server.cache_dir / "results").rglob("*") if p.is_file())
        added = sum("Added 1 photo" in m for m in messages)
        refused = [m for m in messages if "full of photos and results that are in use" in m]
        print(
            f"\nEVICTION: limit {SMALL_CACHE_MB} MB, other session's uploads added {added}, refused {len(refused)}, "
            f"results folder {volume / 2**20:.1f} MB"
        )

        # A's page still has everything, on every tab
        assert output(gallery(alice, store), ids.GALLERY_COUNT, "children") == "1"
        assert thumbnail(alice, sha).status_code == 200
        assert "mine.png" in str(output(view_depth(alice, result), ids.DEPTH_CAPTION, "children"))
        assert "points" in str(output(view_3d(alice, model3d_values(result, defaults)), ids.MODEL3D_STATS, "children"))
        download = download_depth_png8(alice, result)
        assert output(download, ids.DOWNLOAD, "data")["filename"] == "mine_depth.png"
        # B's uploads beyond the limit were refused (everything else is in use), saying so
        assert added >= 10 and refused, messages[-3:]
        assert added + len(refused) == FLOOD_UPLOADS
        # and the cache kept its limit
        assert volume <= (SMALL_CACHE_MB + 8) * 2**20, volume
    finally:
        server.stop()


@pytest.mark.slow
def test_a_photo_evicted_anyway_is_reported_alike_on_every_tab_with_an_offer_to_upload_again(tmp_path):
    """Once nobody used it for FACE3D_IN_USE_S, a photo may be evicted: every tab then says so, the same way."""
    require(PHOTO, YUNET_PATH)
    server = fake_network_server(tmp_path, FACE3D_CACHE_SIZE_MB=str(SMALL_CACHE_MB), FACE3D_IN_USE_S="2").start()
    try:
        alice, store, sha, result, defaults = _a_user_with_a_depth_map(server)
        time.sleep(3)  # alice's page stays idle longer than FACE3D_IN_USE_S
        bob = DashHttp(server.url)
        open_page(bob)
        messages = _flood(bob, FLOOD_UPLOADS)
        assert all("Added 1 photo" in m for m in messages), [m for m in messages if "Added" not in m][:2]

        shown = gallery(alice, store)
        assert output(shown, ids.GALLERY_COUNT, "children") == "0"
        assert "no longer stored on the server" in json.dumps(output(shown, ids.GALLERY, "children"))
        assert thumbnail(alice, sha).status_code == 404
        alerts = {
            "depth": view_depth(alice, result),
            "3D": view_3d(alice, model3d_values(result, defaults)),
            "download": download_depth_png8(alice, result),
            "generate": start_depth(alice, store, sha).response,
        }
        texts = {}
        for tab, response in alerts.items():
            side = json.dumps((response or {}).get("sideUpdate", {}))
            assert "Photo no longer available" in side and "Please upload it again" in side, (tab, side[:400])
            assert '"Upload again"' in side and ids.UPLOAD_AGAIN in side, (tab, side[:400])
            texts[tab] = side.split('"id"')[0]
        assert len(set(texts.values())) == 1, texts  # the same alert on every tab
        assert output(alerts["depth"], ids.DEPTH_RESULTS, "hidden") is True  # blank, and it says why
        assert output(alerts["3D"], ids.MODEL3D_RESULTS, "hidden") is True
        assert output(alerts["download"], ids.DOWNLOAD, "data") is None
        # "Upload again" takes the user to the Upload tab; uploading again brings everything back
        switched = press_upload_again(alice, alerts["3D"])
        assert output(switched, ids.TABS, "value") == ids.TAB_UPLOAD
        store = output(upload(alice, PHOTO.read_bytes(), "mine.png"), ids.UPLOADS_STORE, "data")
        assert generate_depth(alice, store, sha, timeout_s=60)["sha"] == sha
    finally:
        server.stop()
