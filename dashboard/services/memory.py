"""The memory tier: hot results of this process, in front of the shared result store.

Depth maps are kept here after a store read (a slider move then needs no disk or Redis read)
and 3D reconstructions live only here (rebuilding one costs tens of milliseconds, less than
writing a 10 MB model to disk would).

Large entries do not outstay their use: :class:`MemoryJanitor` drops entries of at least
:data:`LARGE_ENTRY_BYTES` that nobody used for :data:`IDLE_LARGE_S` (any entry after
:data:`IDLE_ANY_S`) and then gives the freed memory back to the system, so a server returns
close to its idle size within a minute of the last request (docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from face3d_core.cache import MISSING, KeyLocks, compute_once

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: An entry this large (bytes of arrays) ...
LARGE_ENTRY_BYTES = 4 * 2**20
#: ... is dropped once nobody used it for this long (seconds); a rebuild costs tens of ms or a disk read.
IDLE_LARGE_S = 20.0
#: Every entry is dropped after this long unused.
IDLE_ANY_S = 600.0
#: How often the janitor looks.
JANITOR_PERIOD_S = 5.0


def approx_nbytes(value: object, _depth: int = 0) -> int:
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
        self._items: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._used: dict[str, float] = {}  # key -> time.monotonic() of its last use
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks = KeyLocks()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def get(self, key: str) -> object | None:
        """Return the value of ``key`` (marking it recently used) or None."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self._used[key] = time.monotonic()
            self.hits += 1
            return entry[0]

    def _peek(self, key: str) -> object:
        """The value of ``key`` or MISSING, without counting or reordering."""
        with self._lock:
            entry = self._items.get(key)
        return MISSING if entry is None else entry[0]

    def put(self, key: str, value: object) -> None:
        """Store ``value``, evicting the least recently used entries beyond the limits."""
        size = approx_nbytes(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._used[key] = time.monotonic()
            self._bytes += size
            while len(self._items) > 1 and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
                gone, (_, dropped) = self._items.popitem(last=False)
                self._used.pop(gone, None)
                self._bytes -= dropped

    def get_or_compute(self, key: str, compute: Callable[[], T]) -> T:
        """Return the stored value or compute it once (concurrent callers for the key wait for it)."""

        def read(k: str) -> object:
            value = self.get(k)
            return MISSING if value is None else value

        return compute_once(key, compute, read=read, write=self.put, lock=self._key_locks.hold, reread=self._peek)

    @property
    def locks_in_use(self) -> int:
        """Keys being computed or waited for now."""
        return len(self._key_locks)

    def drop_idle(self, idle_s: float, min_bytes: int = 0) -> int:
        """Drop entries of at least ``min_bytes`` not used for ``idle_s`` seconds; returns the bytes dropped."""
        now = time.monotonic()
        freed = 0
        with self._lock:
            for key in [k for k, (_, size) in self._items.items() if size >= min_bytes]:
                if now - self._used.get(key, now) >= idle_s:
                    _, size = self._items.pop(key)
                    self._used.pop(key, None)
                    self._bytes -= size
                    freed += size
        return freed

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self._used.clear()
            self._bytes = 0


class MemoryJanitor:
    """A daemon thread that drops idle entries of memory tiers and then gives the memory back.

    Args:
        tiers: The memory tiers to look after.
        period_s: How often it looks.
        idle_large_s: Idle time after which a large entry goes (:data:`LARGE_ENTRY_BYTES`).
        idle_any_s: Idle time after which any entry goes.
        after: Called after entries were dropped (default: give freed memory back to the system).
    """

    def __init__(
        self,
        tiers: list[MemoryLRU],
        *,
        period_s: float = JANITOR_PERIOD_S,
        idle_large_s: float = IDLE_LARGE_S,
        idle_any_s: float = IDLE_ANY_S,
        after: Callable[[], object] | None = None,
    ):
        self.tiers = tiers
        self.period_s = period_s
        self.idle_large_s = idle_large_s
        self.idle_any_s = idle_any_s
        if after is None:
            from dashboard.allocator import release_free_memory

            after = release_free_memory
        self.after = after
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> int:
        """One look: drop what is idle, give memory back if anything went; returns the bytes dropped."""
        freed = 0
        for tier in self.tiers:
            freed += tier.drop_idle(self.idle_large_s, LARGE_ENTRY_BYTES)
            freed += tier.drop_idle(self.idle_any_s)
        if freed:
            self.after()
            logger.info("Dropped %.0f MB of idle results from memory", freed / 2**20)
        return freed

    def start(self) -> MemoryJanitor:
        """Start the thread (once; again after a fork)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="face3d-memory-janitor", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the janitor must keep going
                logger.exception("The memory janitor failed")
