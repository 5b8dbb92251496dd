"""Child program: a full and then read-only cache disk under a running service, for real where allowed.

Run as ``python -m tests.harness.cache_disk_faults MODE CACHE_DIR YUNET PHOTO_A PHOTO_B PHOTO_C``
(started by :func:`run_cache_disk_faults`). With ``MODE=real`` it runs as root in a private mount
namespace (``unshare --mount``): the cache folder is a 24 MB tmpfs that gets filled to ``ENOSPC``,
then a read-only bind mount; the mounts vanish with the process. With ``MODE=simulated`` (no mount
namespace on this machine) it injects the errors the kernel and SQLite would raise.

It prints one line ``FAULT_RESULT <json>`` with what the service did at each step; the test asserts.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.harness.paths import MODEL
from tests.harness.service_calls import cached_depth, compute_depth, image, ingest_upload

MARKER = "FAULT_RESULT"


def mount_namespace_available() -> bool:
    """True where this process may create a private mount namespace and mount a tmpfs in it (root)."""
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


def run_cache_disk_faults(cache_dir: Path, yunet: Path, photos: list[Path], env: dict[str, str]) -> dict[str, Any]:
    """Run this program (in a private mount namespace where available) and return its findings.

    Args:
        cache_dir: An empty folder for the cache.
        yunet: The YuNet model file.
        photos: Three face photos (one stored before the faults, two uploaded during them).
        env: The child's environment.

    Returns:
        The ``FAULT_RESULT`` dictionary (``"mode"`` says ``real`` or ``simulated``).
    """
    real = mount_namespace_available()
    command = [sys.executable, "-m", __name__, "real" if real else "simulated", str(cache_dir), str(yunet)]
    command += [str(path) for path in photos]
    if real:
        command = ["unshare", "--mount", "--propagation", "private", *command]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    match = re.search(rf"{MARKER} (\{{.*\}})", completed.stdout)
    assert match, f"rc {completed.returncode}\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
    return json.loads(match.group(1))


class _Faults:
    """The current fault: a real mount (``real``) or errors injected into diskcache (``simulated``)."""

    def __init__(self, mode: str, cache_dir: str):
        self.real = mode == "real"
        self.cache_dir = cache_dir
        self.kind: str | None = None
        self.filler = os.path.join(cache_dir, "filler.bin")
        if self.real:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", cache_dir], check=True)
        else:
            self._inject()

    def _inject(self) -> None:
        import diskcache

        original_set = diskcache.Cache.set
        faults = self

        def failing_set(cache, *args, **kwargs):
            if faults.kind == "full":
                raise OSError(errno.ENOSPC, "No space left on device")
            if faults.kind == "readonly":
                raise sqlite3.OperationalError("attempt to write a readonly database")
            return original_set(cache, *args, **kwargs)

        diskcache.Cache.set = failing_set

    def fill_disk(self, out: dict[str, Any]) -> None:
        """Fill the disk to the last byte (``ENOSPC``)."""
        self.kind = "full"
        if not self.real:
            return
        with open(self.filler, "wb") as handle:
            try:
                while True:
                    handle.write(os.urandom(1 << 20))
                    handle.flush()
            except OSError as exc:
                out["fill_errno"] = exc.errno
        try:  # top up the last bytes
            with open(self.filler, "ab") as handle:
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
        except OSError:
            pass

    def free_disk(self) -> None:
        """Free the disk again."""
        if self.real:
            os.remove(self.filler)
        self.kind = None

    def make_read_only(self) -> None:
        """The folder turns read-only under the running service (a read-only bind mount over it).

        Files already open stay as they are; every new file is refused with ``EROFS``.
        """
        self.kind = "readonly"
        if self.real:
            subprocess.run(["mount", "--bind", self.cache_dir, self.cache_dir], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", self.cache_dir], check=True)

    def make_writable(self) -> None:
        """Remove the read-only mount (it would also vanish with this process's mount namespace)."""
        if self.real:
            subprocess.run(["umount", "-l", self.cache_dir], check=True)
        self.kind = None


def main(argv: list[str]) -> None:
    """Run the faults in order and print the findings."""
    mode, cache_dir, yunet, photo_a, photo_b, photo_c = argv[:6]
    from dashboard.callbacks.upload import handle_upload
    from dashboard.jobs import DiskJobStore, ThreadJobRunner
    from dashboard.services import Face3DService
    from face3d_core.cache import ResultCache
    from face3d_core.errors import CacheError
    from tests.doubles import FakeEstimator
    from tests.harness.dash_client import data_url

    out: dict[str, Any] = {"mode": mode}
    faults = _Faults(mode, cache_dir)
    fake = FakeEstimator()

    def make_service() -> Face3DService:
        return Face3DService(
            ResultCache(os.path.join(cache_dir, "results")), estimator_factory=lambda *_: fake, detector_path=yunet
        )

    def read(path: str) -> bytes:
        return Path(path).read_bytes()

    def upload_message(data: bytes, name: str) -> tuple[list, str]:
        store, messages = handle_upload(service, [data_url(data)], [name], None, session="")
        return store["items"], " ".join(str(m.to_plotly_json()["props"]["children"]) for m in messages)

    def stored_ok(svc: Face3DService, sha: str) -> bool:
        return svc.uploads.meta(sha) is not None and image(svc, sha).ndim == 3

    service = make_service()
    runner = ThreadJobRunner(DiskJobStore(os.path.join(cache_dir, "jobs")), service.tasks())
    meta_a = ingest_upload(service, read(photo_a), "a.png")
    compute_depth(service, meta_a.sha256, MODEL, 0)

    # -- disk full ------------------------------------------------------------------------
    faults.fill_disk(out)
    items, message = upload_message(read(photo_b), "b.jpg")
    out["full_upload_items"] = items
    out["full_upload_message"] = message
    try:
        ingest_upload(service, read(photo_b), "b.jpg")
        out["full_ingest_error"] = None
    except CacheError as exc:
        out["full_ingest_error"] = exc.user_message
    try:
        job = runner.submit("depth", {"sha": meta_a.sha256, "model": MODEL, "face": None})
        for _ in range(200):
            status = runner.status(job)
            if status is not None and status.state.finished:
                break
            time.sleep(0.05)
        out["full_job"] = [status.state.value, status.error_title, status.error_message] if status else None
    except CacheError as exc:
        out["full_job"] = ["submit-refused", exc.title, exc.user_message]
    out["full_a_still_ok_same_process"] = stored_ok(service, meta_a.sha256)
    out["full_a_depth_cached"] = cached_depth(service, meta_a.sha256, MODEL, 0) is not None
    try:
        out["full_a_still_ok_new_process"] = stored_ok(make_service(), meta_a.sha256)
    except CacheError as exc:
        out["full_a_still_ok_new_process"] = "open failed: " + exc.user_message
    # free the disk: everything works again, nothing was lost
    faults.free_disk()
    items, message = upload_message(read(photo_b), "b.jpg")
    out["after_free_upload_ok"] = len(items) == 1
    sha_b = items[0]["sha"] if items else None

    # -- read-only ------------------------------------------------------------------------
    # (a) the folder turns read-only under the running server; (b) a new server process is
    # started on the read-only folder.
    faults.make_read_only()
    items, message = upload_message(read(photo_c), "c.jpg")
    out["ro_upload_items"] = items
    out["ro_upload_message"] = message
    out["ro_a_still_ok_same_process"] = stored_ok(service, meta_a.sha256)
    if faults.real:
        try:
            out["ro_new_process"] = stored_ok(make_service(), meta_a.sha256)
        except CacheError as exc:
            out["ro_new_process"] = "open failed: " + exc.user_message
    else:
        out["ro_new_process"] = "open failed: (simulated) writable folder"
    faults.make_writable()
    final = make_service()
    out["final_a_ok"] = stored_ok(final, meta_a.sha256)
    out["final_b_ok"] = sha_b is not None and stored_ok(final, sha_b)
    print(f"{MARKER} {json.dumps(out)}")


if __name__ == "__main__":
    main(sys.argv[1:])
