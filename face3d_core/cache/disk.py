"""The result store on one machine: :class:`ResultCache` on :mod:`diskcache`.

Expensive results (depth maps, comparisons) and uploaded photos are stored on disk under the
keys of :mod:`face3d_core.cache.keys`, in the checked envelope of
:mod:`face3d_core.cache.store`. Several processes on one machine (gunicorn workers, job
threads) share one cache safely (diskcache is thread- and process-safe); work on one key is
serialised within a process (:class:`~face3d_core.cache.store.KeyLocks`).

Configuration (environment, read through :mod:`face3d_core.config`):

* ``FACE3D_CACHE_DIR``: the face3d cache folder (see :func:`face3d_core.weights.cache_dir`);
  results live in ``<cache dir>/results``.
* ``FACE3D_CACHE_SIZE_MB``: size limit of the result cache (default 2048); the least recently
  used entries are evicted beyond it.

Example:
    >>> import tempfile
    >>> from face3d_core.cache.keys import make_key
    >>> cache = ResultCache(tempfile.mkdtemp())
    >>> key = make_key("demo", "0" * 64, params={"sigma": 1.5})
    >>> cache.get_or_compute(key, lambda: 42)
    42
    >>> cache.get(key)
    42
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import diskcache

from face3d_core.cache.store import MISSING, EnvelopeStore, KeyLocks, encode_entry
from face3d_core.config import DEFAULT_CACHE_SIZE_MB, get_settings
from face3d_core.errors import CacheError
from face3d_core.weights import cache_dir

logger = logging.getLogger(__name__)

#: Default size limit of the result cache in megabytes (``FACE3D_CACHE_SIZE_MB`` unset).
DEFAULT_SIZE_MB = DEFAULT_CACHE_SIZE_MB


def _size_limit_bytes(size_limit_mb: float | None) -> int:
    if size_limit_mb is None:
        size_limit_mb = get_settings().cache_size_mb
    if size_limit_mb <= 0:
        raise ValueError("The cache size limit must be positive")
    return int(size_limit_mb * 1024 * 1024)


def default_results_dir() -> Path:
    """Return ``<FACE3D_CACHE_DIR or ~/.cache/face3d>/results``."""
    return cache_dir() / "results"


class ResultCache(EnvelopeStore):
    """A size-limited, integrity-checked, process-safe cache of computed results.

    Args:
        directory: Folder of the cache; defaults to :func:`default_results_dir`.
        size_limit_mb: Size limit; defaults to ``$FACE3D_CACHE_SIZE_MB`` or
            :data:`DEFAULT_SIZE_MB`. Least recently used entries are evicted beyond it.

    Raises:
        CacheError: The folder cannot be created or opened.
    """

    def __init__(self, directory: str | os.PathLike | None = None, size_limit_mb: float | None = None):
        super().__init__()
        self.directory = Path(directory) if directory is not None else default_results_dir()
        self.size_limit = _size_limit_bytes(size_limit_mb)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(
                str(self.directory),
                size_limit=self.size_limit,
                eviction_policy="least-recently-used",
                # diskcache evicts up to ``cull_limit`` entries at once when over the limit; our
                # entries are large, so evict one per write and catch up in :meth:`set`.
                cull_limit=1,
            )
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(
                f"The result cache folder {self.directory} cannot be used ({exc}). "
                "Set FACE3D_CACHE_DIR to a writable folder."
            ) from exc
        self._key_locks = KeyLocks()

    @property
    def location(self) -> str:
        """The cache folder, for messages and logs."""
        return str(self.directory)

    def ping(self) -> bool:
        """Return True when the cache database answers a read."""
        try:
            self._cache.get("face3d/ping", default=None, retry=True)
        except (OSError, sqlite3.Error) as exc:
            logger.warning("The result cache in %s does not answer: %s", self.directory, exc)
            return False
        return True

    # -- basic access -------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value under ``key``, or ``default`` when absent or damaged.

        A damaged entry (failed integrity check) is deleted, so it is recomputed next time.
        Read errors of the cache itself are logged and reported as a miss.
        """
        try:
            blob = self._cache.get(key, default=MISSING, retry=True)
        except (OSError, sqlite3.Error) as exc:
            # A read also records the access time (LRU eviction), which fails on a full or
            # read-only disk: read without recording it, so stored uploads stay available.
            blob = self._get_without_recording_access(key)
            log = logger.info if blob is not MISSING else logger.warning
            log("Cache read of %s could not record its access (%s); read it without", key, exc)
        value = self._checked_value(key, blob)
        return default if value is MISSING else value

    def _get_without_recording_access(self, key: str) -> Any:
        """Read an entry with a plain SELECT (no write at all); :data:`MISSING` when absent or unreadable."""
        try:
            db_key, raw = self._cache._disk.put(key)  # noqa: SLF001 - diskcache's key encoding
            row = self._cache._sql(  # noqa: SLF001 - diskcache has no read-only accessor
                "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = ?"
                " AND (expire_time IS NULL OR expire_time > ?)",
                (db_key, raw, time.time()),
            ).fetchone()
            if row is None:
                return MISSING
            return self._cache._disk.fetch(row[0], row[1], row[2], False)  # noqa: SLF001
        except (OSError, sqlite3.Error) as exc:
            logger.warning("Cache read of %s failed: %s", key, exc)
            return MISSING

    def set(self, key: str, value: Any, *, expire: float | None = None) -> None:
        """Store ``value`` (any picklable object) under ``key``.

        Raises:
            CacheError: The cache cannot be written (disk full, read-only ...).
        """
        blob = encode_entry(value)
        try:
            self._cache.set(key, blob, expire=expire, retry=True)
            if self._cache.volume() > self.size_limit * 1.25:
                evicted = self._cache.cull(retry=True)  # far over (a large entry): evict in batches
                logger.info("Result cache over its size limit: evicted %d entries", evicted)
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(
                f"Could not write to the result cache in {self.directory} ({exc}). "
                "Free some disk space, make sure the folder is writable, or set FACE3D_CACHE_DIR to another folder."
            ) from exc

    def delete(self, key: str) -> bool:
        """Remove ``key``; return True when it was present."""
        try:
            return bool(self._cache.delete(key, retry=True))
        except (OSError, sqlite3.Error) as exc:
            logger.warning("Cache delete of %s failed: %s", key, exc)
            return False

    def __contains__(self, key: str) -> bool:
        """Return True when an entry exists (without checking its integrity)."""
        try:
            return key in self._cache
        except (OSError, sqlite3.Error):
            return False

    # -- compute-once -------------------------------------------------------------------

    def key_lock(self, key: str) -> AbstractContextManager[None]:
        """Serialise work on one key within this process (two threads never compute it twice)."""
        return self._key_locks.hold(key)

    @property
    def locks_in_use(self) -> int:
        """Keys whose lock is held or waited for now (locks are dropped when unused)."""
        return len(self._key_locks)

    # -- housekeeping -------------------------------------------------------------------

    def volume(self) -> int:
        """Return the bytes used on disk (approximate)."""
        return int(self._cache.volume())

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        """Remove every entry."""
        self._cache.clear(retry=True)

    def close(self) -> None:
        """Close the underlying database connections."""
        self._cache.close()

    # -- disk-only diagnostics (not part of the ResultStore protocol) ----------------------

    def entry_path(self, key: str) -> Path | None:
        """Return the file that holds a large entry (diagnostics and tests), or None when inline."""
        try:
            row = self._cache._sql(  # noqa: SLF001 - diskcache has no public accessor for this
                "SELECT filename FROM Cache WHERE key = ? AND raw = 1", (key,)
            ).fetchone()
        except sqlite3.Error:
            return None
        if not row or not row[0]:
            return None
        return self.directory / row[0]


_default_lock = threading.Lock()
_default_caches: dict[tuple[str, int], ResultCache] = {}


def get_cache(directory: str | os.PathLike | None = None, size_limit_mb: float | None = None) -> ResultCache:
    """Return one shared :class:`ResultCache` per folder and size in this process."""
    folder = Path(directory) if directory is not None else default_results_dir()
    size = _size_limit_bytes(size_limit_mb)
    key = (str(folder.resolve()), size)
    with _default_lock:
        cache = _default_caches.get(key)
        if cache is None:
            cache = ResultCache(folder, size_limit_mb=size / (1024 * 1024))
            _default_caches[key] = cache
        return cache
