"""Content-addressed result cache on :mod:`diskcache`.

Expensive results (depth maps, 3D models, comparisons) and uploaded photos are stored on
disk under keys derived from *what* was computed, never from file names:

``face3d/v<version>/<kind>/<image sha256>/<model or ->/<params digest>``

so the second request for the same work is served from the cache, a change of algorithm
(a bump of :data:`CACHE_VERSION`) never serves stale results, and several processes on one
machine (gunicorn workers, job threads) share one cache safely (diskcache is thread- and
process-safe).

Configuration (environment, read through :mod:`face3d_core.config`):

* ``FACE3D_CACHE_DIR``: the face3d cache folder;
  results live in ``<cache dir>/results``.
* ``FACE3D_CACHE_SIZE_MB``: size limit of the result cache (default 2048); the least recently
  used entries are evicted beyond it.

Every value is stored as an envelope ``MAGIC | sha256(payload) | payload`` (payload: a pickle
made here); a read re-hashes the payload, and an entry that does not match (a truncated or
altered file) is deleted and reported as a miss, so it is simply recomputed.

Example:
    >>> import tempfile
    >>> cache = ResultCache(tempfile.mkdtemp())
    >>> key = make_key("demo", "0" * 64, params={"sigma": 1.5})
    >>> cache.get_or_compute(key, lambda: 42)
    42
    >>> cache.get(key)
    42
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import pickle
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import diskcache

from face3d_core.config import DEFAULT_CACHE_SIZE_MB, get_settings
from face3d_core.errors import CacheError
from face3d_core.weights import cache_dir

logger = logging.getLogger(__name__)

#: Bump when a stored format or an algorithm behind a cached result changes.
CACHE_VERSION = 1

#: Default size limit of the result cache in megabytes (``FACE3D_CACHE_SIZE_MB`` unset).
DEFAULT_SIZE_MB = DEFAULT_CACHE_SIZE_MB

_MAGIC = b"F3DC\x01"
_DIGEST_LEN = 32
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_KIND_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]*$")

T = TypeVar("T")


class _Missing:
    """Sentinel type for "no usable entry"."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def is_sha256_hex(value: object) -> bool:
    """Return True when ``value`` is a lowercase 64-character hex SHA-256 string."""
    return isinstance(value, str) and bool(_SHA256_RE.match(value))


def _canonical(value: Any) -> Any:
    """Turn params (dataclasses, tuples, numpy scalars ...) into plain JSON-able values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float):
        return "nan" if math.isnan(value) else value
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalar
        return _canonical(value.item())
    if hasattr(value, "value"):  # enum
        return _canonical(value.value)
    raise TypeError(f"Cannot use {type(value).__name__} in a cache key")


def params_digest(params: Any) -> str:
    """Return a short stable digest of parameters (a mapping, dataclass or ``None``).

    Two parameter sets that are equal as JSON (keys sorted) give the same digest.
    """
    if params is None:
        return "-"
    text = json.dumps(_canonical(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def make_key(
    kind: str,
    image_sha256: str,
    *,
    model: str | None = None,
    params: Any = None,
    version: int = CACHE_VERSION,
) -> str:
    """Build a cache key from the content hash of the input and what is computed from it.

    Args:
        kind: What the entry is (``"upload"``, ``"depth"``, ``"model3d"`` ...): lowercase.
        image_sha256: Lowercase hex SHA-256 of the input image bytes. Several inputs (a
            comparison) may be combined into one hash by the caller.
        model: Depth model name, if the result depends on one.
        params: Parameters of the computation (mapping or dataclass), hashed canonically.
        version: Format/algorithm version; defaults to :data:`CACHE_VERSION`.

    Returns:
        A key such as ``face3d/v1/depth/<sha>/midas_v21_small_256/<digest>``.

    Raises:
        ValueError: ``kind`` or ``image_sha256`` is malformed.
    """
    if not _KIND_RE.match(kind):
        raise ValueError(f"Invalid cache kind {kind!r}")
    if not is_sha256_hex(image_sha256):
        raise ValueError(f"Invalid image SHA-256 {image_sha256!r}")
    model_part = model if model else "-"
    if "/" in model_part:
        raise ValueError(f"Invalid model name {model!r}")
    return f"face3d/v{int(version)}/{kind}/{image_sha256}/{model_part}/{params_digest(params)}"


def combine_hashes(hashes: list[str] | tuple[str, ...]) -> str:
    """Return one SHA-256 hex for an ordered list of SHA-256 hex strings (for multi-input results)."""
    digest = hashlib.sha256()
    for value in hashes:
        if not is_sha256_hex(value):
            raise ValueError(f"Invalid SHA-256 {value!r}")
        digest.update(value.encode("ascii"))
    return digest.hexdigest()


def _size_limit_bytes(size_limit_mb: float | None) -> int:
    if size_limit_mb is None:
        size_limit_mb = get_settings().cache_size_mb
    if size_limit_mb <= 0:
        raise ValueError("The cache size limit must be positive")
    return int(size_limit_mb * 1024 * 1024)


def default_results_dir() -> Path:
    """Return ``<FACE3D_CACHE_DIR or ~/.cache/face3d>/results``."""
    return cache_dir() / "results"


def _encode(value: Any) -> bytes:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _decode(blob: Any) -> Any:
    """Verify and unpickle an envelope; return :data:`MISSING` when it is damaged."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        return MISSING
    blob = bytes(blob)
    head = len(_MAGIC) + _DIGEST_LEN
    if len(blob) < head or not blob.startswith(_MAGIC):
        return MISSING
    digest, payload = blob[len(_MAGIC) : head], blob[head:]
    if hashlib.sha256(payload).digest() != digest:
        return MISSING
    try:
        return pickle.loads(payload)  # noqa: S301 - our own server-side files, hash-checked
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return MISSING


#: The envelope encoder, public for other stores of the same entries (:mod:`face3d_core.redis_cache`).
encode_entry = _encode


class ComputeOnceMixin:
    """Checked reads and ``get_or_compute``, shared by the disk cache and the Redis cache.

    The host class provides ``get``, ``set``, ``delete``, ``key_lock``, ``hits``, ``misses`` and
    ``_stats_lock``. Shared by the disk cache and the Redis cache so both verify entries and compute a missing one once.
    """

    def _checked_value(self, key: str, blob: Any) -> Any:
        """Decode a stored envelope (or :data:`MISSING`), drop it if damaged, count the hit or miss.

        Returns:
            The value, or :data:`MISSING` when absent or damaged (a damaged entry is deleted, so it
            is recomputed next time).
        """
        value = MISSING if blob is MISSING else _decode(blob)
        if blob is not MISSING and value is MISSING:
            logger.warning("Cache entry %s failed its integrity check; it will be recomputed", key)
            self.delete(key)
        with self._stats_lock:
            if value is MISSING:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def get_or_compute(self, key: str, compute: Callable[[], T], *, expire: float | None = None) -> T:
        """Return the cached value of ``key`` or compute, store and return it.

        Concurrent calls for the same key compute once (within a process for the disk cache,
        across workers for the Redis cache, as far as each ``key_lock`` reaches). A failure to store
        the result is logged and the computed value still returned.
        """
        value = self.get(key, MISSING)
        if value is not MISSING:
            return value
        with self.key_lock(key):
            value = self.get(key, MISSING)
            if value is not MISSING:
                # Counted as a miss above and a hit now: undo the miss for clean statistics.
                with self._stats_lock:
                    self.misses -= 1
                return value
            value = compute()
            try:
                self.set(key, value, expire=expire)
            except CacheError as exc:
                logger.warning("%s", exc)
            return value


class ResultCache(ComputeOnceMixin):
    """A size-limited, integrity-checked, process-safe cache of computed results.

    Args:
        directory: Folder of the cache; defaults to :func:`default_results_dir`.
        size_limit_mb: Size limit; defaults to ``$FACE3D_CACHE_SIZE_MB`` or
            :data:`DEFAULT_SIZE_MB`. Least recently used entries are evicted beyond it.

    Raises:
        CacheError: The folder cannot be created or opened.
    """

    def __init__(self, directory: str | os.PathLike | None = None, size_limit_mb: float | None = None):
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
        self._stats_lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_guard = threading.Lock()

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
        blob = _encode(value)
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

    # -- compute-through ----------------------------------------------------------------

    @contextmanager
    def key_lock(self, key: str) -> Iterator[None]:
        """Serialise work on one key within this process (two threads never compute it twice)."""
        with self._key_locks_guard:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            yield

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
