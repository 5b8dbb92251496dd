"""The result store on one machine: :class:`ResultCache` on :mod:`diskcache`.

Expensive results (depth maps, comparisons) and uploaded photos are stored on disk under the
keys of :mod:`face3d_core.cache.keys`, in the checked envelope of
:mod:`face3d_core.cache.store`. Several processes on one machine (gunicorn workers, job
threads) share one cache safely (diskcache is thread- and process-safe); work on one key is
serialised within a process (:class:`~face3d_core.cache.store.KeyLocks`). Every database
operation waits a bounded time and a read-only folder is served read-only
(:class:`~face3d_core.cache.diskdb.DiskDB`); a damaged index is moved aside at start.

Eviction: beyond the size limit the least recently used entries go first; reading an entry
or checking that it exists counts as using it. Entries whose content hash is *pinned*
(:meth:`ResultCache.pin`: a photo and its results while a page or a job uses them) are never
evicted; when only pinned entries are left, a new entry that does not fit is refused
(:class:`CacheFullError`) instead of evicting something in use.

Configuration (environment, read through :mod:`face3d_core.config`):

* ``FACE3D_CACHE_DIR``: the face3d cache folder (see :func:`face3d_core.weights.cache_dir`);
  results live in ``<cache dir>/results``.
* ``FACE3D_CACHE_SIZE_MB``: size limit of the result cache (default 2048).

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

from face3d_core.cache.diskdb import DiskDB, OnDamage
from face3d_core.cache.keys import content_hash_of, is_sha256_hex
from face3d_core.cache.store import MISSING, EnvelopeStore, KeyLocks, encode_entry
from face3d_core.config import DEFAULT_CACHE_SIZE_MB, get_settings
from face3d_core.errors import CacheError
from face3d_core.weights import cache_dir

logger = logging.getLogger(__name__)

#: Default size limit of the result cache in megabytes (``FACE3D_CACHE_SIZE_MB`` unset).
DEFAULT_SIZE_MB = DEFAULT_CACHE_SIZE_MB
#: Key prefix of pins (``<prefix><content hash>``), stored beside the entries they protect.
PIN_PREFIX = "face3d/pin/"


class CacheFullError(CacheError):
    """Every entry of the cache is in use and a new one does not fit in its size limit."""

    title = "Cache full"
    default_web_message = None  # its message names no server internals: shown as it is


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
            :data:`DEFAULT_SIZE_MB`. Least recently used entries that are not pinned are
            evicted beyond it.

    Raises:
        CacheError: The folder cannot be created or opened.
    """

    def __init__(self, directory: str | os.PathLike | None = None, size_limit_mb: float | None = None):
        super().__init__()
        self.directory = Path(directory) if directory is not None else default_results_dir()
        self.size_limit = _size_limit_bytes(size_limit_mb)
        self._db = DiskDB(
            self.directory,
            label="the result cache",
            on_damage=OnDamage.MOVE_ASIDE,
            size_limit=self.size_limit,
            eviction_policy="least-recently-used",
            # diskcache's own eviction is off (it cannot skip pinned entries): see _make_room
            cull_limit=0,
        )
        self._cache = self._db.cache
        self._key_locks = KeyLocks()

    @property
    def location(self) -> str:
        """The cache folder, for messages and logs."""
        return str(self.directory)

    def ping(self) -> bool:
        """Return True when the cache database answers a read."""
        try:
            self._db.sql("SELECT 1 FROM Settings LIMIT 1")
        except (OSError, sqlite3.Error, CacheError) as exc:
            logger.warning("The result cache in %s does not answer: %s", self.directory, exc)
            return False
        return True

    # -- basic access -------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value under ``key``, or ``default`` when absent or damaged.

        The read counts as a use (least-recently-used eviction), except on a read-only folder,
        where entries are read without recording it. A damaged entry (failed integrity check)
        is deleted, so it is recomputed next time. Read errors are logged and reported as a miss.
        """
        value = self._checked_value(key, self._db.get(key))
        return default if value is MISSING else value

    def set(self, key: str, value: Any, *, expire: float | None = None) -> None:
        """Store ``value`` (any picklable object) under ``key``, evicting unpinned entries beyond the limit.

        Raises:
            CacheFullError: Only pinned (in use) entries are left to evict and the new one does not fit.
            CacheError: The cache cannot be written (disk full, read-only ...).
        """
        self._db.set(key, encode_entry(value), expire=expire)
        self._make_room(key)

    def delete(self, key: str) -> bool:
        """Remove ``key``; return True when it was present."""
        return self._db.delete(key)

    def __contains__(self, key: str) -> bool:
        """Return True when an entry exists (without checking its integrity); the check counts as a use."""
        return self._db.touch(key)

    # -- in use: pins and eviction ------------------------------------------------------

    def pin(self, content_hash: str, seconds: float) -> None:
        """Keep every entry of ``content_hash`` (a photo's SHA-256, a comparison's hash) for ``seconds``.

        Pinned entries are never evicted; a pin is renewed by pinning again. Failures (a
        read-only folder, where nothing is evicted anyway) are logged.
        """
        if not is_sha256_hex(content_hash) or seconds <= 0:
            return
        try:
            self._db.set(PIN_PREFIX + content_hash, time.time() + seconds, expire=seconds)
        except CacheError as exc:
            logger.info("Could not pin %s: %s", content_hash[:12], exc)

    def pinned_hashes(self) -> set[str]:
        """Content hashes pinned right now."""
        rows = self._db.sql(
            "SELECT key FROM Cache WHERE key >= ? AND key < ? AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)",
            (PIN_PREFIX, PIN_PREFIX[:-1] + chr(ord("/") + 1), time.time()),
        )
        return {str(key)[len(PIN_PREFIX) :] for (key,) in rows}

    def _make_room(self, new_key: str) -> None:
        """Evict unpinned entries, least recently used first, until the cache fits its limit.

        Raises:
            CacheFullError: Still over the limit with only pinned entries (and ``new_key``) left;
                ``new_key`` is removed again.
        """
        if self._cache.volume() <= self.size_limit:
            return
        try:
            self._db.run(lambda: self._cache.expire(retry=False), write=True)
            pinned = self.pinned_hashes()
            candidates = self._db.sql("SELECT key FROM Cache WHERE raw = 1 ORDER BY access_time")
        except (OSError, sqlite3.Error, CacheError) as exc:
            logger.warning("Could not evict from the result cache: %s", exc)
            return
        evicted = 0
        for (key,) in candidates:
            key = str(key)
            if key == new_key or key.startswith(PIN_PREFIX) or content_hash_of(key) in pinned:
                continue
            if self._db.delete(key):
                evicted += 1
            if self._cache.volume() <= self.size_limit:
                break
        if evicted:
            logger.info("Result cache over its size limit: evicted %d entries", evicted)
        if self._cache.volume() > self.size_limit and not new_key.startswith(PIN_PREFIX):
            self._db.delete(new_key)
            logger.warning(
                "Result cache full of entries in use (%d pinned photos or comparisons): refused %s",
                len(pinned),
                new_key,
            )
            raise CacheFullError(
                f"The server's result cache is full of photos and results that are in use right now (limit "
                f"{self.size_limit / 2**20:.0f} MB), so this could not be stored. Please try again later; the "
                "server's operator can raise FACE3D_CACHE_SIZE_MB."
            )

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
        self._db.run(lambda: self._cache.clear(retry=False), write=True)

    def close(self) -> None:
        """Close the underlying database connections."""
        self._db.close()

    # -- disk-only diagnostics (not part of the ResultStore protocol) ----------------------

    def entry_path(self, key: str) -> Path | None:
        """Return the file that holds a large entry (diagnostics and tests), or None when inline."""
        try:
            rows = self._db.sql("SELECT filename FROM Cache WHERE key = ? AND raw = 1", (key,))
        except (sqlite3.Error, CacheError):
            return None
        if not rows or not rows[0][0]:
            return None
        return self.directory / rows[0][0]


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
