"""Heavy work of this process bounded: at most a few large results are made at once, then memory goes back.

A 3D model at full density, a printable relief, a report, a large 3D download or comparison
each need a few hundred MB for a second or two. Six sessions asking at once once took a server
2.75 GB above its idle size, and it kept 2.3-2.9 GB afterwards. :class:`HeavyWork` lets
``FACE3D_HEAVY_TASKS`` (default 2) of them run at once per server process; the others wait
their turn in order of arrival (a page shows "Preparing..." meanwhile), at most
:data:`QUEUE_WAIT_S`, then get "the server is busy" rather than an endless wait. When the last
running task ends, the memory freed is given back to the system (``malloc_trim``:
:func:`dashboard.allocator.release_free_memory`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dashboard.allocator import release_free_memory
from dashboard.services.errors import ServerBusyError

logger = logging.getLogger(__name__)

#: Longest wait for a turn.
QUEUE_WAIT_S = 120.0
#: A reconstruction is heavy from this many points of its budget up (the 3D tab's "full" density).
HEAVY_POINTS = 200_000


class HeavyWork:
    """A turnstile for heavy work: ``slots`` tasks at once, first come first served.

    Args:
        slots: Tasks at once (at least 1).
        wait_s: Longest wait for a turn.
    """

    def __init__(self, slots: int = 2, wait_s: float = QUEUE_WAIT_S):
        self.slots = max(1, int(slots))
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._running = 0
        self._queue: list[object] = []
        self._local = threading.local()
        #: Most tasks that ever ran at once (tests and the load test read it).
        self.most_at_once = 0

    @property
    def running(self) -> int:
        """Tasks running now."""
        return self._running

    @property
    def waiting(self) -> int:
        """Tasks waiting for a turn now."""
        return len(self._queue)

    @contextmanager
    def turn(self, what: str) -> Iterator[None]:
        """Run the ``with`` block as one heavy task (re-entrant: a task inside a task takes no second turn).

        Raises:
            ServerBusyError: No turn within :attr:`wait_s`.
        """
        if getattr(self._local, "depth", 0) > 0:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        ticket = object()
        started = time.monotonic()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._running >= self.slots or self._queue[0] is not ticket:
                    left = started + self.wait_s - time.monotonic()
                    if left <= 0:
                        logger.warning(
                            "%s refused: %d heavy tasks running, %d waiting", what, self._running, self.waiting
                        )
                        raise ServerBusyError()
                    self._cond.wait(left)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        waited = time.monotonic() - started
        if waited > 0.05:
            logger.info("%s waited %.1f s for its turn", what, waited)
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            with self._cond:
                self._running -= 1
                last = self._running == 0
                self._cond.notify_all()
            if last:
                release_free_memory()
