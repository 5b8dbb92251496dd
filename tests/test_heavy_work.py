"""Concurrent heavy use bounded (issue 16, item 5): the turnstile, the memory janitor, the services using them.

The load test (``test_load.py``, slow) measures a real server under six sessions of the heaviest
flow; here the parts as plain objects: at most ``slots`` tasks at once in order of arrival, a
refusal instead of an endless wait, a task inside a task takes no second turn, memory given back
when the last task ends; idle large results dropped from memory; and the services (relief, report,
full-density model) going through the turnstile is tested on the dashboard's service in
``test_dashboard_measure.py``.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dashboard.services import heavy as heavy_module
from dashboard.services.errors import ServerBusyError
from dashboard.services.heavy import HeavyWork
from dashboard.services.memory import LARGE_ENTRY_BYTES, MemoryJanitor, MemoryLRU


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_at_most_slots_tasks_run_at_once_in_order_of_arrival(monkeypatch):
    released = []
    monkeypatch.setattr(heavy_module, "release_free_memory", lambda: released.append(1))
    work = HeavyWork(slots=2)
    gate = threading.Event()
    order: list[int] = []
    running_seen: list[int] = []

    def task(n: int) -> None:
        with work.turn(f"task {n}"):
            order.append(n)
            running_seen.append(work.running)
            gate.wait(10)

    threads = []
    for n in range(6):  # arriving one after the other
        thread = threading.Thread(target=task, args=(n,))
        thread.start()
        threads.append(thread)
        _wait_until(lambda n=n: work.running + work.waiting == n + 1)
    assert work.running == 2 and work.waiting == 4 and order == [0, 1]
    gate.set()
    for thread in threads:
        thread.join(10)
    assert order == list(range(6)) and max(running_seen) == 2 == work.most_at_once
    assert released, "memory was not given back after the last task"


def test_a_task_waits_at_most_its_limit_then_the_server_is_busy():
    work = HeavyWork(slots=1, wait_s=0.2)
    inside = threading.Event()
    done = threading.Event()

    def hold() -> None:
        with work.turn("holder"):
            inside.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(10)
    started = time.monotonic()
    with pytest.raises(ServerBusyError, match="busy"):
        with work.turn("late"):
            pass
    assert time.monotonic() - started < 5 and work.waiting == 0
    done.set()
    holder.join(10)
    with work.turn("after"):  # free again
        with work.turn("inside it"):  # a task inside a task takes no second turn (no deadlock on 1 slot)
            assert work.running == 1


def test_idle_large_results_are_dropped_and_memory_given_back(monkeypatch):
    from dashboard.services import memory

    now = [1000.0]

    class Clock:  # the memory tier's clock, moved by the test
        @staticmethod
        def monotonic() -> float:
            return now[0]

    monkeypatch.setattr(memory, "time", Clock)
    tier = MemoryLRU(max_items=10, max_bytes=1 << 30)
    tier.put("large", np.zeros(LARGE_ENTRY_BYTES, np.uint8))
    tier.put("small", np.zeros(1000, np.uint8))
    given_back = []
    janitor = MemoryJanitor([tier], idle_large_s=20, idle_any_s=600, after=lambda: given_back.append(1))
    assert janitor.sweep() == 0 and not given_back  # just used
    now[0] += 19
    tier.get("large")  # used again: its idle time starts again
    now[0] += 19
    assert janitor.sweep() == 0
    now[0] += 2
    tier.get("small")
    assert janitor.sweep() == LARGE_ENTRY_BYTES and given_back == [1]
    assert tier.get("large") is None and tier.get("small") is not None and tier.nbytes == 1000
    now[0] += 600
    assert janitor.sweep() == 1000 and tier.nbytes == 0
