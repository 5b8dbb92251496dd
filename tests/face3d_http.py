"""Helpers of the reliability, load and scale-out tests: real processes driven over HTTP.

* :class:`ManagedProcess`: a server or worker subprocess in its own process group, always
  stopped (the whole group) by the test that started it;
* :class:`DashHttp`: calls the dashboard's callbacks over ``/_dash-update-component`` exactly like
  the browser (the callback map comes from ``/_dash-dependencies``);
* :class:`UserSession`: one simulated user (upload, depth job, depth view, 3D view, slider,
  thumbnail), recording every request's latency and checking that the results are its own.

Only 127.0.0.1 is ever contacted; every loop is bounded in count and time.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from dashboard import ids

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("FACE3D_SHARED_DIR", REPO_ROOT.parent / "shared"))
FACES_DIR = SHARED_DIR / "data" / "faces"
YUNET_PATH = SHARED_DIR / "models" / "face_detection_yunet.onnx"
FILL_PY = SHARED_DIR / "reference" / "fill.py"
MODEL = "midas_v21_small_256"

#: ``python -c`` launcher of a dashboard whose depth network is a :class:`FakeEstimator` that
#: sleeps ``FACE3D_TEST_FAKE_DELAY_S`` per prediction (to kill the server mid-inference).
FAKE_SERVER_CODE = """
import logging, os, sys
sys.path.insert(0, os.environ["FACE3D_REPO"])
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
from dashboard.app import create_app
from tests.doubles import FakeEstimator
fake = FakeEstimator(delay_s=float(os.environ.get("FACE3D_TEST_FAKE_DELAY_S", "0")))
app = create_app(os.environ["FACE3D_CACHE_DIR"], estimator_factory=lambda name: fake)
app.run(host="127.0.0.1", port=int(os.environ["FACE3D_TEST_PORT"]), threaded=True)
"""


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    """The test environment of a child process: offline, repository importable, unbuffered."""
    env = dict(os.environ)
    env.pop("FACE3D_REDIS_URL", None)
    env.update(
        FACE3D_OFFLINE="1",
        FACE3D_REPO=str(REPO_ROOT),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    if YUNET_PATH.is_file():
        env["FACE3D_YUNET_PATH"] = str(YUNET_PATH)
    env.update(extra)
    return env


class ManagedProcess:
    """A subprocess in its own process group, logging to a file; :meth:`stop` ends the whole group.

    Args:
        argv: Command line.
        env: Environment.
        log_path: Where stdout and stderr go.
        cwd: Working folder (default: the repository).
    """

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None):
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.cwd = cwd or REPO_ROOT
        self.process: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        """Start the process (a new session, so its children share its process group)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        """The process id (also the process group id)."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, a power cut) and reap it."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after ``timeout`` seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)  # stray children of the group, if any
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self.process = None

    def log_text(self) -> str:
        """The process's output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_for_http(url: str, process: ManagedProcess, timeout: float = 120.0) -> None:
    """Wait until ``url`` answers 200 (raising early if the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.argv[:3]} exited early:\n{process.log_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{process.log_text()[-3000:]}")


def vm_hwm_bytes(pid: int) -> int | None:
    """Peak resident memory of a live process (Linux ``VmHWM``), or None where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    """The ``data:`` URL ``dcc.Upload`` sends for a file."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _split_outputs(output: str) -> list[str]:
    if output.startswith(".."):
        return [part for part in output.strip(".").split("...") if part]
    return [output]


def _value(values: dict[str, Any], item: dict) -> Any:
    key = f"{item['id']}.{item['property']}"
    return values[key] if key in values else values.get(item["id"])


class CallbackError(Exception):
    """A callback request that did not return 200/204."""


class DashHttp:
    """The dashboard's callbacks over HTTP, as the browser calls them.

    Args:
        base_url: ``http://127.0.0.1:<port>/``.
        session: A ``requests.Session`` (one per simulated user: its own connection).
        timeout: Seconds per request.
    """

    def __init__(self, base_url: str, session: requests.Session | None = None, timeout: float = 120.0):
        self.base_url = base_url.rstrip("/") + "/"
        self.session = session or requests.Session()
        self.timeout = timeout
        self.deps: list[dict] = self.get_json("_dash-dependencies")

    def get(self, path: str) -> requests.Response:
        """GET a path of the app."""
        return self.session.get(self.base_url + path.lstrip("/"), timeout=self.timeout)

    def get_json(self, path: str) -> Any:
        """GET a path and parse its JSON."""
        response = self.get(path)
        response.raise_for_status()
        return response.json()

    def dependency(self, trigger: tuple[str, str], output_id: str | None = None) -> dict:
        """The callback that ``trigger`` (component id, property) fires (and that writes ``output_id``)."""
        for dep in self.deps:
            if not any((i["id"], i["property"]) == trigger for i in dep["inputs"]):
                continue
            if output_id is None or any(
                spec.split("@")[0].rsplit(".", 1)[0] == output_id for spec in _split_outputs(dep["output"])
            ):
                return dep
        raise KeyError(f"no callback for {trigger} -> {output_id}")

    def call(self, trigger: tuple[str, str], values: dict[str, Any], *, output_id: str | None = None) -> dict | None:
        """POST one callback; ``values`` maps ``"id.prop"`` or ``"id"`` to the values of its inputs and states.

        Returns:
            The response JSON, or None for "no update" (HTTP 204).

        Raises:
            CallbackError: Any other HTTP status.
        """
        dep = self.dependency(trigger, output_id)
        outputs = []
        for spec in _split_outputs(dep["output"]):
            component, prop = spec.split("@")[0].rsplit(".", 1)
            outputs.append({"id": component, "property": prop})
        body = {
            "output": dep["output"],
            "outputs": outputs if dep["output"].startswith("..") else outputs[0],
            "inputs": [{"id": i["id"], "property": i["property"], "value": _value(values, i)} for i in dep["inputs"]],
            "state": [{"id": s["id"], "property": s["property"], "value": _value(values, s)} for s in dep["state"]],
            "changedPropIds": [f"{trigger[0]}.{trigger[1]}"],
        }
        response = self.session.post(self.base_url + "_dash-update-component", json=body, timeout=self.timeout)
        if response.status_code == 204:
            return None
        if response.status_code != 200:
            raise CallbackError(f"{trigger}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()


def output(response: dict | None, component: str, prop: str, default: Any = None) -> Any:
    """A value of a callback response (``default`` when not updated)."""
    if not response:
        return default
    return response.get("response", {}).get(component, {}).get(prop, default)


def alert_texts(response: dict | None) -> list[str]:
    """Texts of the alerts a callback showed through ``set_props`` (the app-wide error handler)."""
    if not response:
        return []
    side = response.get("sideUpdate", {}).get(ids.ALERTS, {})
    return [json.dumps(side)] if side else []


def layout_values(layout: Any) -> dict[str, Any]:
    """``{component id: value}`` of every component with a ``value`` prop in ``/_dash-layout``."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and isinstance(props.get("id"), str) and "value" in props:
                found[props["id"]] = props["value"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(layout)
    return found


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

    def record(self, kind: str, seconds: float) -> None:
        """One served request."""
        with self._lock:
            self.latencies.setdefault(kind, []).append(seconds)

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

    def _timed(self, kind: str, func: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = func()
        self.stats.record(kind, time.perf_counter() - started)
        return value

    def open_page(self) -> None:
        """Load the page like a browser: HTML, layout, callback map."""
        session = requests.Session()
        page = self._timed("page", lambda: session.get(self.base_url, timeout=60))
        if page.status_code != 200:
            raise CallbackError(f"GET / -> {page.status_code}")
        self.http = self._timed("dependencies", lambda: DashHttp(self.base_url, session))
        layout = self._timed("layout", lambda: self.http.get_json("_dash-layout"))
        self.defaults = layout_values(layout)

    def _call(self, kind: str, trigger: tuple[str, str], values: dict, output_id: str | None = None) -> Any:
        assert self.http is not None
        response = self._timed(kind, lambda: self.http.call(trigger, values, output_id=output_id))
        alerts = alert_texts(response)
        if alerts:
            raise CallbackError(f"{kind}: the app showed an alert: {alerts[0][:300]}")
        return response

    def flow(self, iteration: int) -> dict:
        """Upload a unique photo, get its depth (job), view depth and 3D, move a slider, get the thumbnail.

        Returns:
            ``{"sha", "name", "result"}`` of this flow.

        Raises:
            CallbackError / AssertionError: A failed request or a result that is not this user's.
        """
        if self.http is None:
            self.open_page()
        assert self.http is not None
        path = self.photos[(self.user + iteration * 7) % len(self.photos)]
        data = photo_variant(path, self.user, iteration)
        sha = hashlib.sha256(data).hexdigest()
        name = f"user{self.user:02d}-it{iteration}-{path.stem}.jpg"

        response = self._call(
            "upload",
            (ids.UPLOAD, "contents"),
            {f"{ids.UPLOAD}.contents": [data_url(data)], f"{ids.UPLOAD}.filename": [name], ids.UPLOADS_STORE: None},
            output_id=ids.UPLOAD_MESSAGES,
        )
        store = output(response, ids.UPLOADS_STORE, "data")
        items = (store or {}).get("items") or []
        if [item["sha"] for item in items] != [sha]:
            raise AssertionError(f"user {self.user}: upload store {items} is not this user's photo {sha[:12]}")
        messages = json.dumps(output(response, ids.UPLOAD_MESSAGES, "children"))
        if name not in messages and "Added 1 photo" not in messages:
            raise AssertionError(f"user {self.user}: upload messages do not mention the photo: {messages[:300]}")

        values = {
            ids.job_store("depth"): None,
            ids.DEPTH_FACE: sha,
            ids.DEPTH_MODEL: MODEL,
            ids.UPLOADS_STORE: store,
            ids.DEPTH_GENERATE: 1,
        }
        wait_started = time.perf_counter()
        response = self._call("depth_start", (ids.DEPTH_GENERATE, "n_clicks"), values)
        result = output(response, ids.DEPTH_RESULT_STORE, "data")
        job = output(response, ids.job_store("depth"), "data")
        if result is None:
            if not (isinstance(job, dict) and job.get("id")):
                raise AssertionError(f"user {self.user}: Generate gave neither a result nor a job: {response}")
            self.stats.count("jobs")
            result = self._wait_job(job, values)
        else:
            self.stats.count("cache_hits")
        self.stats.depth_wait(time.perf_counter() - wait_started)
        if result.get("sha") != sha or result.get("model") != MODEL:
            raise AssertionError(f"user {self.user}: depth result {result} is not for this user's photo {sha[:12]}")

        response = self._call(
            "depth_view",
            (ids.DEPTH_RESULT_STORE, "data"),
            {ids.DEPTH_RESULT_STORE: result, ids.DEPTH_COLORMAP: self.defaults.get(ids.DEPTH_COLORMAP)},
            output_id=ids.DEPTH_MAP_GRAPH,
        )
        caption = str(output(response, ids.DEPTH_CAPTION, "children", ""))
        if name not in caption:
            raise AssertionError(f"user {self.user}: depth caption {caption[:120]!r} does not name {name}")

        view = {
            ids.MODEL3D_SOURCE_STORE: result,
            ids.MODEL3D_SMOOTHING: self.defaults.get(ids.MODEL3D_SMOOTHING),
            ids.MODEL3D_DENSITY: self.defaults.get(ids.MODEL3D_DENSITY),
            ids.MODEL3D_DEPTH_SCALE: self.defaults.get(ids.MODEL3D_DEPTH_SCALE),
            ids.MODEL3D_DISPLAY: self.defaults.get(ids.MODEL3D_DISPLAY),
            ids.MODEL3D_COLORS: self.defaults.get(ids.MODEL3D_COLORS),
            ids.MODEL3D_VIEW_STORE: None,
        }
        response = self._call("model3d_view", (ids.MODEL3D_SOURCE_STORE, "data"), view, output_id=ids.MODEL3D_GRAPH)
        stats_text = str(output(response, ids.MODEL3D_STATS, "children", ""))
        if "points" not in stats_text:
            raise AssertionError(f"user {self.user}: no 3D model: {stats_text[:200]!r}")
        view[ids.MODEL3D_SMOOTHING] = 1 + (self.user + iteration) % 4
        response = self._call("slider", (ids.MODEL3D_SMOOTHING, "value"), view, output_id=ids.MODEL3D_GRAPH)
        if "points" not in str(output(response, ids.MODEL3D_STATS, "children", "")):
            raise AssertionError(f"user {self.user}: the slider update gave no 3D model")

        thumb = self._timed("thumbnail", lambda: self.http.get(f"face3d/thumb/{sha}.jpg"))
        if thumb.status_code != 200 or not thumb.content.startswith(b"\xff\xd8"):
            raise AssertionError(f"user {self.user}: thumbnail of {sha[:12]} -> HTTP {thumb.status_code}")
        self.stats.count("flows")
        record = {"sha": sha, "name": name, "result": result}
        self.results.append(record)
        return record

    def _wait_job(self, job: dict, values: dict) -> dict:
        deadline = time.monotonic() + self.job_timeout_s
        tick = 0
        while time.monotonic() < deadline:
            time.sleep(self.poll_s)
            tick += 1
            poll = dict(values)
            poll[ids.job_store("depth")] = job
            poll[ids.job_interval("depth")] = tick
            response = self._call("depth_poll", (ids.job_interval("depth"), "n_intervals"), poll)
            result = output(response, ids.DEPTH_RESULT_STORE, "data")
            if result is not None:
                return result
            new_job = output(response, ids.job_store("depth"), "data", job)
            if not (isinstance(new_job, dict) and new_job.get("id")):
                message = output(response, ids.job_message("depth"), "children")
                raise AssertionError(f"user {self.user}: job {job['id'][:8]} ended without a result: {message}")
        raise AssertionError(f"user {self.user}: job {job['id'][:8]} not done within {self.job_timeout_s} s")


def run_users(
    base_url: str,
    users: int,
    photos: list[Path],
    duration_s: float,
    stats: Stats,
    *,
    first_user: int = 0,
    max_flows: int = 1000,
    **session_kwargs: Any,
) -> list[UserSession]:
    """Run ``users`` simulated users in threads, each repeating flows until ``duration_s`` has passed.

    Every user does at least one flow; a flow that started before the deadline runs to its end
    (every request has a timeout). User numbers start at ``first_user`` (unique photos per user).
    """
    sessions = [UserSession(base_url, first_user + n, photos, stats, **session_kwargs) for n in range(users)]
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


def python_exe() -> str:
    """The interpreter running the tests (the project's venv)."""
    return sys.executable
