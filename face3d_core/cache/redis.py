"""The result store of a deployment: :class:`RedisResultCache`, shared by every web and inference worker.

:class:`RedisResultCache` implements :class:`~face3d_core.cache.store.ResultStore` like the
disk :class:`~face3d_core.cache.disk.ResultCache` and stores exactly the same entries under
exactly the same keys (:func:`~face3d_core.cache.keys.make_key`, e.g.
``face3d/v2/depth/<sha256>/midas_v21_small_256/<digest>``) in the same integrity-checked
envelope (:func:`~face3d_core.cache.store.encode_entry`), so a depth map computed by an
inference worker on one machine is a cache hit for a web worker on another.

Size: every entry gets a time to live (``FACE3D_CACHE_TTL_S``, default 30 days) and Redis is
meant to run with ``--maxmemory <size> --maxmemory-policy volatile-lru``: when memory is
full Redis evicts the least recently used *cache entries* (they have a TTL) and never the
Celery queue (its keys have none). An evicted entry is a miss: a depth map is recomputed; a
photo is reported as no longer stored.

Locks: :meth:`RedisResultCache.key_lock` is a Redis lock, so two inference workers never run
the network for the same key at the same time, even on different machines.

The module is named after the backend; ``import redis`` below is the client library
(absolute imports), not this module.

Example:
    >>> from face3d_core.cache.keys import make_key
    >>> cache = RedisResultCache("redis://127.0.0.1:6379/0")     # doctest: +SKIP
    >>> cache.get_or_compute(make_key("demo", "0" * 64), lambda: 42)  # doctest: +SKIP
    42
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from face3d_core.cache.store import MISSING, EnvelopeStore, encode_entry
from face3d_core.config import get_settings
from face3d_core.errors import CacheError

logger = logging.getLogger(__name__)

#: Longest a worker may hold the compute lock of one key (seconds); a crashed holder frees it then.
LOCK_TIMEOUT_S = 900
#: Prefix of every key this module writes (the cache keys already start with it).
KEY_PREFIX = "face3d/"
_LOCK_PREFIX = "face3d-lock:"


def redact_url(url: str) -> str:
    """Return a Redis URL without its password, for messages and logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


class RedisResultCache(EnvelopeStore):
    """Integrity-checked results in Redis, keyed like :class:`~face3d_core.cache.disk.ResultCache`.

    Args:
        url: Redis URL (``redis://host:port/db``).
        ttl_s: Time to live of each entry (default ``$FACE3D_CACHE_TTL_S`` or 30 days).
        client: An existing ``redis.Redis`` client (tests); built from ``url`` otherwise.

    Raises:
        CacheError: The ``redis`` package is missing.
    """

    def __init__(self, url: str, *, ttl_s: int | None = None, client: Any = None):
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - redis is in requirements.txt
            raise CacheError("FACE3D_REDIS_URL is set but the 'redis' package is not installed.") from exc
        super().__init__()
        self._redis_module = redis
        self.url = url
        self.ttl_s = int(ttl_s) if ttl_s else get_settings().cache_ttl_s
        self._client = client if client is not None else redis.Redis.from_url(url, socket_timeout=30)

    @property
    def location(self) -> str:
        """The Redis URL without its password, for messages and logs."""
        return redact_url(self.url)

    @property
    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._redis_module.RedisError, OSError)

    def ping(self) -> bool:
        """Return True when Redis answers."""
        try:
            return bool(self._client.ping())
        except self._errors:
            return False

    # -- basic access -------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value under ``key``, or ``default`` when absent, damaged or unreachable.

        A damaged entry (failed integrity check) is deleted, so it is recomputed next time.
        """
        try:
            blob = self._client.get(key)
        except self._errors as exc:
            logger.warning("Redis read of %s failed: %s", key, exc)
            blob = None
        value = self._checked_value(key, MISSING if blob is None else blob)
        return default if value is MISSING else value

    def set(self, key: str, value: Any, *, expire: float | None = None) -> None:
        """Store ``value`` under ``key`` with a time to live.

        Raises:
            CacheError: Redis refused the write (out of memory, read-only replica) or is down.
        """
        blob = encode_entry(value)
        ttl = int(expire) if expire else self.ttl_s
        try:
            self._client.set(key, blob, ex=max(1, ttl))
        except self._errors as exc:
            raise CacheError(
                f"Could not write to the result cache at {self.location} ({exc}). "
                "Check that Redis is running and has memory left (maxmemory, volatile-lru)."
            ) from exc

    def delete(self, key: str) -> bool:
        """Remove ``key``; return True when it was present."""
        try:
            return bool(self._client.delete(key))
        except self._errors as exc:
            logger.warning("Redis delete of %s failed: %s", key, exc)
            return False

    def __contains__(self, key: str) -> bool:
        """Return True when an entry exists (without checking its integrity).

        ``TOUCH`` (not ``EXISTS``): the check counts as a use for Redis' LRU eviction, like a read.
        """
        try:
            return bool(self._client.touch(key))
        except self._errors:
            return False

    def pin(self, content_hash: str, seconds: float) -> None:
        """Nothing: Redis evicts by its own ``maxmemory-policy`` (reads and checks count as use).

        Size Redis' ``maxmemory`` for the photos in use (see docs/deployment.md).
        """
        return None

    # -- compute-once -------------------------------------------------------------------

    @contextmanager
    def key_lock(self, key: str) -> Iterator[None]:
        """Serialise work on one key across every process and machine using this Redis."""
        lock = self._client.lock(
            _LOCK_PREFIX + key, timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S, thread_local=False
        )
        try:
            acquired = lock.acquire()
        except self._errors as exc:
            raise CacheError(f"The result cache at {self.location} cannot be reached ({exc}).") from exc
        try:
            yield
        finally:
            if acquired:
                try:
                    lock.release()
                except self._errors as exc:  # expired (work took longer than the timeout) or Redis gone
                    logger.warning("Could not release the lock of %s: %s", key, exc)

    # -- housekeeping -------------------------------------------------------------------

    def _keys(self) -> Iterator[bytes]:
        yield from self._client.scan_iter(match=KEY_PREFIX + "*", count=500)

    def volume(self) -> int:
        """Return the memory Redis uses in bytes (the whole instance)."""
        try:
            return int(self._client.info("memory").get("used_memory", 0))
        except self._errors:
            return 0

    def __len__(self) -> int:
        try:
            return sum(1 for _ in self._keys())
        except self._errors:
            return 0

    def clear(self) -> None:
        """Remove every face3d cache entry (not the job queue)."""
        batch = []
        for key in self._keys():
            batch.append(key)
            if len(batch) >= 500:
                self._client.delete(*batch)
                batch.clear()
        if batch:
            self._client.delete(*batch)

    def close(self) -> None:
        """Close the connection pool."""
        try:
            self._client.close()
        except self._errors:  # pragma: no cover
            pass
