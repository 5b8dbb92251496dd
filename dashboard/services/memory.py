"""The memory tier: hot results of this process, in front of the shared result store.

Depth maps are kept here after a store read (a slider move then needs no disk or Redis read)
and 3D reconstructions live only here (rebuilding one costs tens of milliseconds, less than
writing a 10 MB model to disk would).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from face3d_core.cache import MISSING, KeyLocks, compute_once

T = TypeVar("T")


def approx_nbytes(value: Any, _depth: int = 0) -> int:
    """Bytes held by the numpy arrays of a value (dataclasses, tuples, dicts; shallowly nested)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if _depth > 3:
        return 0
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(approx_nbytes(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value))
    if isinstance(value, (list, tuple)):
        return sum(approx_nbytes(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        return sum(approx_nbytes(v, _depth + 1) for v in value.values())
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return 0


class MemoryLRU:
    """A small thread-safe least-recently-used store of objects in this process.

    Args:
        max_items: Entries kept at most.
        max_bytes: Bytes of numpy arrays kept at most (see :func:`approx_nbytes`); the least
            recently used entries go first. One entry larger than this is still kept alone.
    """

    def __init__(self, max_items: int, max_bytes: int = 256 * 1024 * 1024):
        self.max_items = max(1, int(max_items))
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks = KeyLocks()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def get(self, key: str) -> Any | None:
        """Return the value of ``key`` (marking it recently used) or None."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return entry[0]

    def _peek(self, key: str) -> Any:
        """The value of ``key`` or MISSING, without counting or reordering."""
        with self._lock:
            entry = self._items.get(key)
        return MISSING if entry is None else entry[0]

    def put(self, key: str, value: Any) -> None:
        """Store ``value``, evicting the least recently used entries beyond the limits."""
        size = approx_nbytes(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > 1 and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def get_or_compute(self, key: str, compute: Callable[[], T]) -> T:
        """Return the stored value or compute it once (concurrent callers for the key wait for it)."""

        def read(k: str) -> Any:
            value = self.get(k)
            return MISSING if value is None else value

        return compute_once(key, compute, read=read, write=self.put, lock=self._key_locks.hold, reread=self._peek)

    @property
    def locks_in_use(self) -> int:
        """Keys being computed or waited for now."""
        return len(self._key_locks)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
