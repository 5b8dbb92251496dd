"""What every result store is: the :class:`ResultStore` protocol, the entry envelope and compute-once.

A result store maps cache keys (:mod:`face3d_core.cache.keys`) to computed results. Two
backends implement :class:`ResultStore`: :class:`~face3d_core.cache.disk.ResultCache`
(diskcache, one machine) and :class:`~face3d_core.cache.redis.RedisResultCache` (Redis, a
deployment). Both store the same entries in the same envelope, so either can serve what
the other would have computed.

Envelope: ``MAGIC | sha256(payload) | payload`` (payload: a pickle made here). A read re-hashes
the payload; an entry that does not match (a truncated or altered file) is deleted and
reported as a miss, so it is simply recomputed.

Compute-once: :func:`compute_once` is the one implementation of "read, else lock the key,
read again, compute, write"; stores pass their own read, write and lock (a per-process
:class:`KeyLocks` for the disk, a Redis lock across machines), and the in-memory tier of the
dashboard (:class:`dashboard.services.memory.MemoryLRU`) uses it with a :class:`KeyLocks` too.

Example:
    >>> locks = KeyLocks()
    >>> values = {}
    >>> compute_once("k", lambda: 42, read=lambda k: values.get(k, MISSING),
    ...              write=values.__setitem__, lock=locks.hold)
    42
    >>> len(locks)  # no lock is kept once nobody holds or waits for it
    0
"""

from __future__ import annotations

import abc
import hashlib
import logging
import pickle
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, TypeVar, runtime_checkable

from face3d_core.errors import CacheError

logger = logging.getLogger(__name__)

_MAGIC = b"F3DC\x01"
_DIGEST_LEN = 32

T = TypeVar("T")


class _Missing:
    """Sentinel type for "no usable entry"."""

    def __repr__(self) -> str:
        return "MISSING"


#: Returned by reads that found nothing usable (``None`` may be a stored value).
MISSING: Any = _Missing()


def encode_entry(value: Any) -> bytes:
    """Return the envelope of ``value`` (any picklable object)."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def decode_entry(blob: Any) -> Any:
    """Verify and unpickle an envelope; return :data:`MISSING` when it is damaged or foreign."""
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
        return pickle.loads(payload)  # noqa: S301 - our own server-side entries, hash-checked
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return MISSING


@runtime_checkable
class ResultStore(Protocol):
    """A store of computed results by cache key, shared by every thread and worker that uses it.

    Implemented by :class:`~face3d_core.cache.disk.ResultCache` and
    :class:`~face3d_core.cache.redis.RedisResultCache`. Backend-only diagnostics (the file of a
    disk entry, the memory Redis uses ...) are methods of the backend, not of this protocol.
    """

    @property
    def location(self) -> str:
        """Where the entries live, for messages and logs (a folder, or a URL without password)."""
        ...

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value under ``key``, or ``default`` when absent, damaged or unreadable."""
        ...

    def set(self, key: str, value: Any, *, expire: float | None = None) -> None:
        """Store ``value`` under ``key``; raise :class:`~face3d_core.errors.CacheError` when impossible."""
        ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; return True when it was present."""
        ...

    def __contains__(self, key: str) -> bool:
        """Return True when an entry exists (without checking its integrity); the check counts as a use."""
        ...

    def pin(self, content_hash: str, seconds: float) -> None:
        """Keep the entries of ``content_hash`` from eviction for ``seconds`` (where the backend can)."""
        ...

    def key_lock(self, key: str) -> AbstractContextManager[None]:
        """Serialise work on one key as far as the backend reaches (process or deployment)."""
        ...

    def get_or_compute(
        self, key: str, compute: Callable[[], T], *, expire: float | None = None, must_store: bool = False
    ) -> T:
        """Return the stored value of ``key`` or compute it once, store and return it."""
        ...

    def ping(self) -> bool:
        """Return True when the store answers (the health check)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class KeyLocks:
    """Per-key locks of one process; a key's lock is dropped once nobody holds or waits for it.

    So a long-running server never accumulates one lock per key it ever saw.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold ``key``'s lock for the ``with`` block (other threads for the same key wait)."""
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = (threading.Lock(), [0])
            entry[1][0] += 1  # holders and waiters
        lock, users = entry
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        """Number of keys held or waited for right now."""
        with self._guard:
            return len(self._locks)


def compute_once(
    key: str,
    compute: Callable[[], T],
    *,
    read: Callable[[str], Any],
    write: Callable[[str, T], None],
    lock: Callable[[str], AbstractContextManager[Any]],
    reread: Callable[[str], Any] | None = None,
) -> T:
    """Return the stored value of ``key``, or compute it once while concurrent callers wait.

    Args:
        key: The key.
        compute: Makes the value (called at most once per key while the lock is held).
        read: ``key -> value or MISSING``.
        write: Stores a computed value.
        lock: ``key -> context manager`` serialising work on the key.
        reread: The read after waiting for the lock (default ``read``).

    Returns:
        The stored or computed value.
    """
    value = read(key)
    if value is not MISSING:
        return value
    with lock(key):
        value = (reread or read)(key)
        if value is not MISSING:
            return value
        value = compute()
        write(key, value)
        return value


class EnvelopeStore(abc.ABC):
    """Checked reads and ``get_or_compute`` for stores that keep :func:`encode_entry` envelopes.

    A backend implements the raw access below and calls :meth:`_checked_value` on every raw
    read, so both backends verify entries, drop damaged ones and count hits and misses the
    same way.
    """

    def __init__(self) -> None:
        self._stats_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @abc.abstractmethod
    def get(self, key: str, default: Any = None) -> Any:
        """Return the value under ``key``, or ``default`` when absent, damaged or unreadable."""

    @abc.abstractmethod
    def set(self, key: str, value: Any, *, expire: float | None = None) -> None:
        """Store ``value`` under ``key``; raise :class:`~face3d_core.errors.CacheError` when impossible."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; return True when it was present."""

    @abc.abstractmethod
    def key_lock(self, key: str) -> AbstractContextManager[None]:
        """Serialise work on one key as far as the backend reaches."""

    def _checked_value(self, key: str, blob: Any) -> Any:
        """Decode a stored envelope (or :data:`MISSING`), drop it if damaged, count the hit or miss.

        Returns:
            The value, or :data:`MISSING` when absent or damaged (a damaged entry is deleted, so it
            is recomputed next time).
        """
        value = MISSING if blob is MISSING else decode_entry(blob)
        if blob is not MISSING and value is MISSING:
            logger.warning("Cache entry %s failed its integrity check; it will be recomputed", key)
            self.delete(key)
        with self._stats_lock:
            if value is MISSING:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def _read_after_wait(self, key: str) -> Any:
        """A read after waiting for the key's lock: a hit there undoes the miss counted before."""
        value = self.get(key, MISSING)
        if value is not MISSING:
            with self._stats_lock:
                self.misses -= 1
        return value

    def get_or_compute(
        self, key: str, compute: Callable[[], T], *, expire: float | None = None, must_store: bool = False
    ) -> T:
        """Return the stored value of ``key`` or compute, store and return it.

        Concurrent calls for the same key compute once (within a process for the disk cache,
        across workers for the Redis cache, as far as each ``key_lock`` reaches).

        Args:
            key: The cache key.
            compute: Makes the value.
            expire: Lifetime of a stored value in seconds (default: the store's).
            must_store: Raise when the computed value cannot be stored (a result that other
                workers read by key); otherwise a failure to store is logged and the value returned.

        Raises:
            CacheError: ``must_store`` and the store refused the write.
        """

        def write(key: str, value: T) -> None:
            try:
                self.set(key, value, expire=expire)
            except CacheError as exc:
                if must_store:
                    raise
                logger.warning("%s", exc)

        return compute_once(
            key,
            compute,
            read=lambda k: self.get(k, MISSING),
            write=write,
            lock=self.key_lock,
            reread=self._read_after_wait,
        )
