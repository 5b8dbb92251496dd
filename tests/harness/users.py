"""Simulated users of a running dashboard: each its own connection, photos and results, many in threads.

:class:`UserSession` runs the flows of :mod:`tests.harness.flows` (upload, depth job, depth view,
3D view, slider, thumbnail), timing every request into :class:`Stats` and checking that every
result is this user's own.
"""

from __future__ import annotations

import hashlib
import io
import json
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from dashboard import ids
from dashboard.services.exports import safe_stem
from tests.harness import flows
from tests.harness.dash_client import DashHttp, Timing, output
from tests.harness.paths import MODEL


def photo_variant(path: Path, user: int, iteration: int, max_side: int = 1024) -> bytes:
    """A JPEG of ``path`` made unique to (user, iteration) by a small coloured corner block."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        image = ImageOps.exif_transpose(img).convert("RGB")
    image.thumbnail((max_side, max_side))
    digest = hashlib.sha256(f"{user}-{iteration}".encode()).digest()
    block = Image.new("RGB", (10, 10), tuple(digest[:3]))
    image.paste(block, (0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _percentiles(values: list[float]) -> dict[str, float]:
    """Count, median and 95th percentile (nearest rank) in milliseconds."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"n": len(ordered), "p50_ms": 1000 * statistics.median(ordered), "p95_ms": 1000 * p95}


@dataclass
class Stats:
    """Requests, latencies and errors of a set of simulated users (thread-safe)."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: Seconds from pressing Generate to having the depth map (queue + network), per flow.
    depth_waits: list[float] = field(default_factory=list)
    flows: int = 0
    jobs: int = 0
    cache_hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, timing: Timing) -> None:
        """One served request."""
        with self._lock:
            self.latencies.setdefault(timing.kind, []).append(timing.seconds)

    def depth_wait(self, seconds: float) -> None:
        """Time a user waited for one depth map (not a request: many polls)."""
        with self._lock:
            self.depth_waits.append(seconds)

    def error(self, text: str) -> None:
        """One error (failed request, wrong result, alert)."""
        with self._lock:
            self.errors.append(text)

    def count(self, attribute: str) -> None:
        """Increment ``flows``, ``jobs`` or ``cache_hits``."""
        with self._lock:
            setattr(self, attribute, getattr(self, attribute) + 1)

    @property
    def requests(self) -> int:
        """Requests served."""
        return sum(len(v) for v in self.latencies.values())

    def summary(self) -> dict[str, Any]:
        """Per request kind and overall: count, p50 and p95 in milliseconds."""
        every = [v for values in self.latencies.values() for v in values]
        out = {kind: _percentiles(values) for kind, values in sorted(self.latencies.items())}
        if every:
            out["ALL"] = _percentiles(every)
        return out

    def table(self, title: str) -> str:
        """A plain-text report table."""
        lines = [title, f"{'request':<16}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}"]
        for kind, values in self.summary().items():
            lines.append(f"{kind:<16}{values['n']:>7}{values['p50_ms']:>10.0f}{values['p95_ms']:>10.0f}")
        if self.depth_waits:
            wait = _percentiles(self.depth_waits)
            lines.append(
                f"{'(depth wait)':<16}{wait['n']:>7}{wait['p50_ms']:>10.0f}{wait['p95_ms']:>10.0f}"
                "   Generate -> depth map, queue + network (not a request)"
            )
        lines.append(
            f"flows {self.flows}, depth jobs {self.jobs}, cache hits {self.cache_hits}, errors {len(self.errors)}"
        )
        return "\n".join(lines)


class UserSession:
    """One simulated user of the dashboard (own HTTP connection, own browser-side stores).

    Args:
        base_url: The app's URL.
        user: User number (for unique photos and names).
        photos: Face photos to pick from.
        stats: Shared statistics.
        poll_s: Job polling period (the app's ``dcc.Interval`` is 500 ms).
        job_timeout_s: Longest wait for one depth job.
    """

    def __init__(
        self,
        base_url: str,
        user: int,
        photos: list[Path],
        stats: Stats,
        *,
        poll_s: float = 0.5,
        job_timeout_s: float = 180.0,
    ):
        self.base_url = base_url
        self.user = user
        self.photos = photos
        self.stats = stats
        self.poll_s = poll_s
        self.job_timeout_s = job_timeout_s
        self.http: DashHttp | None = None
        self.defaults: dict[str, Any] = {}
        self.results: list[dict] = []

    def open_page(self) -> None:
        """Load the page like a browser: a new connection, HTML, callback map, layout."""
        session = requests.Session()
        self.http = DashHttp(self.base_url, session, recorder=self.stats.record, refuse_alerts=True)
        self.defaults = flows.open_page(self.http)

    def flow(self, iteration: int) -> dict:
        """Upload a unique photo, get its depth (job), view depth and 3D, move a slider, get the thumbnail.

        Returns:
            ``{"sha", "name", "result"}`` of this flow.

        Raises:
            CallbackError / AssertionError: A failed request or a result that is not this user's.
        """
        if self.http is None:
            self.open_page()
        http = self.http
        assert http is not None
        path = self.photos[(self.user + iteration * 7) % len(self.photos)]
        data = photo_variant(path, self.user, iteration, getattr(self, "max_side", 1024))
        sha = hashlib.sha256(data).hexdigest()
        name = f"user{self.user:02d}-it{iteration}-{path.stem}.jpg"

        response = flows.upload(http, data, name)
        store = output(response, ids.UPLOADS_STORE, "data")
        items = (store or {}).get("items") or []
        if [item["sha"] for item in items] != [sha]:
            raise AssertionError(f"user {self.user}: upload store {items} is not this user's photo {sha[:12]}")
        messages = json.dumps(output(response, ids.UPLOAD_MESSAGES, "children"))
        if name not in messages and "Added 1 photo" not in messages:
            raise AssertionError(f"user {self.user}: upload messages do not mention the photo: {messages[:300]}")

        wait_started = time.perf_counter()
        start = flows.start_depth(http, store, sha)
        result = flows.wait_for_depth(http, start, timeout_s=self.job_timeout_s, poll_s=self.poll_s)
        self.stats.count("cache_hits" if start.result is not None else "jobs")
        self.stats.depth_wait(time.perf_counter() - wait_started)
        if result.get("sha") != sha or result.get("model") != MODEL:
            raise AssertionError(f"user {self.user}: depth result {result} is not for this user's photo {sha[:12]}")

        response = flows.view_depth(http, result, self.defaults.get(ids.DEPTH_COLORMAP))
        caption = str(output(response, ids.DEPTH_CAPTION, "children", ""))
        if name not in caption:
            raise AssertionError(f"user {self.user}: depth caption {caption[:120]!r} does not name {name}")

        view = flows.model3d_values(result, self.defaults)
        response = flows.view_3d(http, view)
        stats_text = str(output(response, ids.MODEL3D_STATS, "children", ""))
        if "points" not in stats_text:
            raise AssertionError(f"user {self.user}: no 3D model: {stats_text[:200]!r}")
        view[ids.MODEL3D_SMOOTHING] = 1 + (self.user + iteration) % 4
        response = flows.move_control(http, view, ids.MODEL3D_SMOOTHING)
        if "points" not in str(output(response, ids.MODEL3D_STATS, "children", "")):
            raise AssertionError(f"user {self.user}: the slider update gave no 3D model")

        thumb = flows.thumbnail(http, sha)
        if thumb.status_code != 200 or not thumb.content.startswith(b"\xff\xd8"):
            raise AssertionError(f"user {self.user}: thumbnail of {sha[:12]} -> HTTP {thumb.status_code}")
        self.stats.count("flows")
        record = {"sha": sha, "name": name, "result": result}
        self.results.append(record)
        return record


class HeavyUserSession(UserSession):
    """A user of the heaviest flow (issue 16): the ordinary flow, then the 3D model at full density
    (mesh, photo colours), two clicks to measure, a printable relief (STL) and a report, both
    fetched from the download route; every file must be named after this user's photo.

    Args:
        max_side: Longest side of the photos (default 2400: the shared photos at their own size).
        **kwargs: See :class:`UserSession`.
    """

    def __init__(self, *args: Any, max_side: int = 2400, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_side = max_side

    def flow(self, iteration: int) -> dict:
        """The ordinary flow, then full density, two clicks, a relief and a report."""
        record = super().flow(iteration)
        http = self.http
        assert http is not None
        stem = safe_stem(record["name"])
        full = {
            **flows.model3d_values(record["result"], self.defaults),
            ids.MODEL3D_DENSITY: 4,
            ids.MODEL3D_DISPLAY: "mesh",
            ids.MODEL3D_COLORS: "photo",
        }
        shown = flows.view_3d(http, full)
        stats = str(output(shown, ids.MODEL3D_STATS, "children", ""))
        if "points" not in stats:
            raise AssertionError(f"user {self.user}: no full-density model: {stats[:200]!r}")
        ends = flows.points_to_measure(output(shown, ids.MODEL3D_GRAPH, "figure"))
        first = flows.measure_click(http, full, ends[0], None)
        state = output(first, ids.MODEL3D_MEASURE_STORE, "data")
        second = flows.measure_click(http, full, ends[1], state)
        status = str(output(second, ids.MODEL3D_MEASURE_STATUS, "children", ""))
        if "along the surface" not in status:
            raise AssertionError(f"user {self.user}: the second click measured nothing: {status[:200]!r}")
        for kind, start in (("relief_stl", b"face3d"), ("report", b"<!DOCTYPE")):
            answer = flows.download(http, kind, full)
            link = output(answer, ids.DOWNLOAD, "data") or {}
            fetched = flows.fetch_download(http, answer, kind=f"fetch_{kind}")
            if fetched.status_code != 200 or not fetched.content.startswith(start):
                raise AssertionError(f"user {self.user}: {kind} -> HTTP {fetched.status_code}")
            if not str(link.get("filename", "")).startswith(stem):
                raise AssertionError(f"user {self.user}: {kind} is named {link.get('filename')!r}, not after {stem}")
        return record


def run_users(
    base_url: str,
    users: int,
    photos: list[Path],
    duration_s: float,
    stats: Stats,
    *,
    first_user: int = 0,
    max_flows: int = 1000,
    session_class: type[UserSession] = UserSession,
    **session_kwargs: Any,
) -> list[UserSession]:
    """Run ``users`` simulated users in threads, each repeating flows until ``duration_s`` has passed.

    Every user does at least one flow; a flow that started before the deadline runs to its end
    (every request has a timeout). User numbers start at ``first_user`` (unique photos per user).
    """
    sessions = [session_class(base_url, first_user + n, photos, stats, **session_kwargs) for n in range(users)]
    deadline = time.monotonic() + duration_s

    def run(session: UserSession) -> None:
        iteration = 0
        while (iteration == 0 or time.monotonic() < deadline) and iteration < max_flows:
            try:
                session.flow(iteration)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                stats.error(f"user {session.user} flow {iteration}: {type(exc).__name__}: {exc}")
                session.http = None  # like a page reload
            iteration += 1

    threads = [threading.Thread(target=run, args=(s,), name=f"user-{s.user}", daemon=True) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration_s + 600)
    if any(thread.is_alive() for thread in threads):
        stats.error("some simulated users did not finish within 10 minutes after the deadline")
    return sessions
