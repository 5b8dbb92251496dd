"""How long the browser's main thread is blocked, from the Long Tasks API: shared by an e2e test and a benchmark.

A *long task* is a stretch of main-thread work of 50 ms or more (``PerformanceObserver`` with
``{type: "longtask"}``); while one runs, the page answers no click, key or scroll. :func:`install`
adds an observer to every page of a browser context before the page's own scripts run;
:func:`first_tab_switches` then opens a fresh page of the dashboard, uploads photos, waits until the
page is idle (and plotly.js is loaded where the page warms it up) and clicks each tab once, adding
up the long tasks from each click until the page is quiet again.

Used by ``tests/e2e/test_no_freeze.py`` (asserts issue 17's budget: at most 300 ms per first tab
switch) and ``benchmarks/tab_switch.py`` (the same with the warm-up switched off, for the
before/after figures). No fixed sleeps: every wait is for a condition in the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Records every long task of the page in ``window.face3dLongTasks`` as ``[start ms, duration ms]``.
OBSERVER_JS = """
window.face3dLongTasks = [];
try {
  new PerformanceObserver(function (list) {
    list.getEntries().forEach(function (e) { window.face3dLongTasks.push([e.startTime, e.duration]); });
  }).observe({ type: "longtask", buffered: true });
} catch (error) { window.face3dLongTasks = null; }
"""
#: Keeps the page from warming plotly.js up while idle (the benchmark's "before").
NO_WARMUP_JS = "window.face3dWarmup = false;"

#: No long task may end in this many ms for the page to count as quiet.
QUIET_MS = 800
#: The tabs in the order a user meets them, by label.
TAB_LABELS = {"depth": "2 · Depth map", "model3d": "3 · 3D model", "compare": "4 · Compare", "upload": "1 · Upload"}

#: Quiet: no request in flight, no figure pending or component loading, and no long task ended for
#: ``quiet`` ms (the request counter is :mod:`tests.harness.page_waits`'s, installed in every context).
_QUIET = """([since, quiet]) => {
  const busy = (window.face3dInflight || 0) > 0
    || !!document.querySelector('.dash-graph--pending, [data-dash-is-loading="true"]');
  if (busy) { window.face3dQuietSince = null; return false; }
  const now = performance.now();
  if (window.face3dQuietSince == null) { window.face3dQuietSince = now; }
  const tasks = window.face3dLongTasks || [];
  const ends = tasks.filter(t => t[0] + t[1] >= since).map(t => t[0] + t[1]);
  return now - Math.max(since, window.face3dQuietSince, ...ends) >= quiet;
}"""


@dataclass
class Blocking:
    """The long tasks of one step.

    Attributes:
        durations_ms: Each long task's duration, in order.
    """

    durations_ms: list[float] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        """The main thread's blocked time: all long tasks together."""
        return float(sum(self.durations_ms))

    @property
    def longest_ms(self) -> float:
        """The longest single task (0 when none)."""
        return float(max(self.durations_ms, default=0.0))

    def to_dict(self) -> dict:
        """JSON form (rounded to the millisecond)."""
        return {"total_ms": round(self.total_ms), "tasks_ms": [round(d) for d in self.durations_ms]}


def install(context, *, warmup: bool = True) -> None:
    """Record long tasks in every page of ``context`` (``warmup=False``: no plotly.js warm-up while idle)."""
    context.add_init_script(OBSERVER_JS + ("" if warmup else NO_WARMUP_JS))


def now_ms(page) -> float:
    """The page's clock (``performance.now()``)."""
    return float(page.evaluate("performance.now()"))


def blocking_since(page, since_ms: float, *, quiet_ms: float = QUIET_MS, timeout_ms: float = 30_000) -> Blocking:
    """Wait until the page is quiet for ``quiet_ms``; return the long tasks that started after ``since_ms``.

    Quiet: no request in flight, no figure pending, and no long task ended, for ``quiet_ms`` in a row.

    Raises:
        AssertionError: The browser does not report long tasks (no Long Tasks API).
    """
    assert page.evaluate("window.face3dLongTasks !== null"), "this browser has no Long Tasks API"
    page.evaluate("window.face3dQuietSince = null")
    page.wait_for_function(_QUIET, arg=[since_ms, quiet_ms], timeout=timeout_ms, polling=100)
    tasks = page.evaluate("since => (window.face3dLongTasks || []).filter(t => t[0] >= since)", since_ms)
    return Blocking([float(duration) for _start, duration in tasks])


def open_tab(page, name: str) -> Blocking:
    """Click the tab ``name`` once the page is quiet; return what the switch blocked."""
    blocking_since(page, 0.0)
    since = now_ms(page)
    page.get_by_text(TAB_LABELS[name], exact=True).click()
    page.wait_for_function(
        "label => Array.from(document.querySelectorAll('.face3d-tab--selected, .tab--selected'))"
        ".some(t => t.textContent.trim() === label)",
        arg=TAB_LABELS[name],
    )
    return blocking_since(page, since)


def _page_with_photos(context, url: str, photos: list[Path], *, warmup: bool):
    """A new page of ``context`` on the dashboard with ``photos`` uploaded (and plotly.js loaded with ``warmup``)."""
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("text=No photos yet")
    page.set_input_files("#upload input[type=file]", [str(p) for p in photos])
    page.wait_for_function(
        f"document.querySelectorAll('.face3d-gallery-card').length === {len(photos)}", timeout=120_000
    )
    if warmup:
        page.wait_for_function("!!window.Plotly", timeout=60_000)
    return page


def first_tab_switches(browser, url: str, photos: list[Path], *, warmup: bool = True) -> dict[str, Blocking]:
    """A fresh page: upload ``photos``, wait until idle, then the first switch to every tab (and back to Upload).

    With ``warmup`` the page is also waited for until plotly.js is loaded (it warms it up while idle,
    during the upload): machine load then cannot make the measurement race the warm-up.

    Returns:
        ``{"load": page load and upload, "depth", "model3d", "compare", "upload"}``.
    """
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    install(context, warmup=warmup)
    try:
        page = _page_with_photos(context, url, photos, warmup=warmup)
        steps = {"load": blocking_since(page, 0.0)}
        for name in ("depth", "model3d", "compare", "upload"):
            steps[name] = open_tab(page, name)
        return steps
    finally:
        context.close()


def generate_right_after_the_switch(browser, url: str, photo: Path, *, warmup: bool = True) -> tuple[Blocking, float]:
    """A fresh page: upload ``photo``, wait until idle, open the Depth tab and click *Generate* at once.

    The depth map should be in the server's cache already (an untimed run before): what is timed is
    the page, not the network.

    Returns:
        ``(what the switch and the click blocked, ms from the click on Generate to the depth map drawn)``.
    """
    import time

    context = browser.new_context(viewport={"width": 1440, "height": 900})
    install(context, warmup=warmup)
    try:
        page = _page_with_photos(context, url, [photo], warmup=warmup)
        blocking_since(page, 0.0)
        since = now_ms(page)
        page.get_by_text(TAB_LABELS["depth"], exact=True).click()
        page.locator("#depth-generate").wait_for()
        started = time.perf_counter()
        page.click("#depth-generate")
        page.wait_for_function(
            "() => { const gd = document.querySelector('#depth-map-graph .js-plotly-plot');"
            " return gd && gd.data && gd.data.length > 0 && !!gd.querySelector('.hm image, .heatmaplayer image'); }",
            timeout=120_000,
            polling="raf",
        )
        drawn_ms = (time.perf_counter() - started) * 1000.0
        return blocking_since(page, since), drawn_ms
    finally:
        context.close()
