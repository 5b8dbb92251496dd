"""Downloads streamed from a session-bound route, not sent as base64 inside a callback's JSON.

A download button's callback makes the file (:mod:`~dashboard.services.exports`,
:mod:`~dashboard.services.reports`) and hands it to :meth:`Downloads.prepare`, which keeps it
for :data:`DOWNLOAD_TTL_S` and returns a small link ``{"url", "filename", "size"}``; the page
follows the link (``assets/face3d.js``: ``startDownload``) and ``GET /face3d/download/<token>/<name>``
streams the file with its content type, its name (``Content-Disposition: attachment``) and a
length, in chunks, from disk. A 190 MB STL was once 254 MB of base64 inside one JSON response,
held several times in the server's memory and once more in the browser's.

The token names the file, its name, an expiry and the session it was made for, signed with the
server's secret (HMAC-SHA256): another session, an altered or expired token, or a file that is
gone get the same 404 as a token never issued. So a token needs no shared record and works on
every web worker that shares the secret and the spool:

* one machine: files in ``<cache dir>/downloads`` (:class:`DiskSpool`, mode 0600, shared by the
  workers of the machine; files older than the lifetime are deleted as new ones arrive);
* scale-out: the result store (Redis), with an expiry (:class:`StoreSpool`);
* a cache folder that cannot be written: this process's memory (:class:`MemorySpool`, bounded).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from face3d_core.cache import ResultStore, make_key

logger = logging.getLogger(__name__)

#: How long a prepared download can be fetched.
DOWNLOAD_TTL_S = 600
#: Most bytes of prepared downloads kept at once (the oldest go first).
MAX_SPOOL_BYTES = 2 * 2**30
#: Most bytes kept by the in-memory fallback.
MAX_MEMORY_SPOOL_BYTES = 512 * 2**20
#: Content types by file suffix (IANA types where registered).
MEDIA_TYPES = {
    ".png": "image/png",
    ".npy": "application/octet-stream",
    ".ply": "application/octet-stream",
    ".glb": "model/gltf-binary",
    ".stl": "model/stl",
    ".3mf": "model/3mf",
    ".zip": "application/zip",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
}
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


def media_type(filename: str) -> str:
    """The content type of a download by its suffix (``application/octet-stream`` for others)."""
    return MEDIA_TYPES.get(os.path.splitext(filename)[1].lower(), "application/octet-stream")


@dataclass(frozen=True)
class Prepared:
    """A prepared download where the route finds it.

    Attributes:
        filename: The file's name (``[A-Za-z0-9_.-]``).
        path: The file on disk, or None.
        data: The file's bytes (when not on disk), or None.
    """

    filename: str
    path: Path | None = None
    data: bytes | None = None

    @property
    def media_type(self) -> str:
        """Its content type."""
        return media_type(self.filename)


class Spool(Protocol):
    """Where prepared downloads wait to be fetched."""

    def put(self, file_id: str, data: bytes) -> None:
        """Keep ``data`` under ``file_id`` (raises ``OSError`` where it cannot)."""

    def get(self, file_id: str, filename: str) -> Prepared | None:
        """The file, or None when it is gone."""


class DiskSpool:
    """Prepared downloads as files of one folder (shared by the web workers of a machine).

    Args:
        folder: The folder (created, mode 0700).
        ttl_s: Files older than this are deleted when new ones arrive.
        max_bytes: The oldest files go first beyond this total.
    """

    def __init__(self, folder: Path, ttl_s: float = DOWNLOAD_TTL_S, max_bytes: int = MAX_SPOOL_BYTES):
        self.folder = Path(folder)
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes

    def put(self, file_id: str, data: bytes) -> None:
        """Write the file (0600, never over another), then sweep old ones."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.folder / file_id
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.sweep()

    def get(self, file_id: str, filename: str) -> Prepared | None:
        """The file, unless it is gone or older than the lifetime."""
        path = self.folder / file_id
        try:
            if time.time() - path.stat().st_mtime > self.ttl_s:
                return None
        except OSError:
            return None
        return Prepared(filename, path=path)

    def sweep(self) -> int:
        """Delete files past their lifetime, then the oldest beyond :attr:`max_bytes`; returns how many went."""
        try:
            entries = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.folder.iterdir() if _ID_RE.match(p.name)]
        except OSError:
            return 0
        entries.sort()
        now, total, removed = time.time(), sum(size for _, size, _ in entries), 0
        for mtime, size, path in entries:
            if now - mtime <= self.ttl_s and total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed


class StoreSpool:
    """Prepared downloads in the shared result store, with an expiry (scale-out: every machine reads them)."""

    def __init__(self, store: ResultStore, ttl_s: float = DOWNLOAD_TTL_S):
        self.store = store
        self.ttl_s = ttl_s

    @staticmethod
    def key(file_id: str) -> str:
        """The store key of a prepared download."""
        return make_key("download", hashlib.sha256(file_id.encode("ascii")).hexdigest())

    def put(self, file_id: str, data: bytes) -> None:
        """Store the bytes under a key of their own."""
        self.store.set(self.key(file_id), data, expire=self.ttl_s)

    def get(self, file_id: str, filename: str) -> Prepared | None:
        """The bytes, or None."""
        data = self.store.get(self.key(file_id))
        return Prepared(filename, data=data) if isinstance(data, bytes) else None


class MemorySpool:
    """Prepared downloads in this process's memory (bounded; where nothing else can be written)."""

    def __init__(self, ttl_s: float = DOWNLOAD_TTL_S, max_bytes: int = MAX_MEMORY_SPOOL_BYTES):
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._files: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, file_id: str, data: bytes) -> None:
        """Keep the bytes; the oldest go beyond the lifetime or the size limit."""
        with self._lock:
            self._files[file_id] = (time.monotonic(), data)
            total = sum(len(d) for _, d in self._files.values())
            while self._files:
                made, oldest = next(iter(self._files.values()))
                if time.monotonic() - made <= self.ttl_s and total <= self.max_bytes:
                    break
                self._files.popitem(last=False)
                total -= len(oldest)

    def get(self, file_id: str, filename: str) -> Prepared | None:
        """The bytes, or None."""
        with self._lock:
            entry = self._files.get(file_id)
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            return None
        return Prepared(filename, data=entry[1])


class Downloads:
    """Prepares downloads and finds them for the route (see the module docstring).

    Args:
        secret: The server's secret (signs the tokens).
        spool: Where files wait (default: this process's memory).
        ttl_s: How long a link works.
    """

    def __init__(self, secret: bytes | None = None, spool: Spool | None = None, ttl_s: float = DOWNLOAD_TTL_S):
        self._secret = secret or secrets.token_bytes(32)
        self.spool: Spool = spool or MemorySpool(ttl_s)
        self.ttl_s = ttl_s
        self._fallback: MemorySpool | None = None

    def _signature(self, session: str, file_id: str, expires: int, filename: str) -> str:
        message = f"download\x00{session}\x00{file_id}\x00{expires}\x00{filename}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def prepare(self, session: str, filename: str, data: bytes) -> dict:
        """Keep a file for ``session`` and return its link ``{"url", "filename", "size"}`` (small JSON).

        Raises:
            ValueError: A file name that is not ``[A-Za-z0-9_.-]`` (names come from ``safe_stem``).
        """
        if not _NAME_RE.match(filename):
            raise ValueError(f"not a safe download name: {filename!r}")
        file_id = secrets.token_hex(16)
        try:
            self.spool.put(file_id, data)
            where = "spool"
        except OSError as exc:  # e.g. a read-only cache folder: keep it in this process
            if self._fallback is None:
                logger.warning("Downloads cannot be written to the spool (%s); keeping them in memory", exc)
                self._fallback = MemorySpool(self.ttl_s)
            self._fallback.put(file_id, data)
            where = "memory"
        expires = int(time.time() + self.ttl_s)
        token = f"{file_id}.{expires}.{self._signature(session, file_id, expires, filename)}"
        logger.info("Download %s ready (%d bytes, %s)", filename, len(data), where)
        return {"url": f"face3d/download/{token}/{filename}", "filename": filename, "size": len(data)}

    def find(self, session: str, token: str, filename: str) -> Prepared | None:
        """The file a link names, for the session it was made for; None for anything else."""
        parts = str(token).split(".")
        if len(parts) != 3 or not _ID_RE.match(parts[0]) or not parts[1].isdigit() or not _NAME_RE.match(filename):
            return None
        file_id, expires, signature = parts[0], int(parts[1]), parts[2]
        expected = self._signature(session, file_id, expires, filename)
        if not hmac.compare_digest(signature, expected) or time.time() > expires:
            return None
        found = self.spool.get(file_id, filename)
        if found is None and self._fallback is not None:
            found = self._fallback.get(file_id, filename)
        return found
