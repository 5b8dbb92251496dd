"""Issue 9's dashboard logic as plain functions: polling cadence, work done in the callback, start-up.

* a job's first poll comes :data:`~dashboard.jobs.FIRST_POLL_MS` after its start, then every
  :data:`~dashboard.jobs.POLL_MS`; polling stops when it ends (the controller's ``interval`` and
  ``disabled`` outputs);
* short work is done in the callback: the 3D model of a cached depth map and the comparison of
  cached faces never start a job;
* the background start-up (:class:`~dashboard.services.warmup.Warmup`) loads the network once, a
  job that comes meanwhile waits for it and says so, and a failed load is left to the job; a real
  ``python -m dashboard`` starts loading before any request (``/face3d/warmup``, its log);
* density is a point budget: the default 3D view of a 1 MP portrait stays within it, every pixel is
  one step up, and the comparison draws lighter than the 3D tab.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from dash import no_update

from dashboard import ids
from dashboard.app import create_app
from dashboard.callbacks import compare, depth, model3d, upload
from dashboard.callbacks.jobs import StartOutcome, poll_view, start_view
from dashboard.controls import DENSITY_POINTS, Controls3D
from dashboard.jobs import FIRST_POLL_MS, POLL_MS, DiskJobStore, JobState, JobStatus, ThreadJobRunner, execute_job
from dashboard.layout import build_layout
from dashboard.services import Face3DService
from dashboard.services.depth import LOADING_MESSAGE, PRELOADING_MESSAGE
from dashboard.services.model_status import precision_choices_here
from face3d_core.cache import ResultCache
from face3d_core.compare import ComparisonItems
from face3d_core.errors import WeightsUnavailableError
from face3d_core.reconstruct import MAX_MODEL_POINTS
from tests.doubles import FakeEstimator, NoJobsRunner
from tests.harness.browser_speed import wait_for_warm_server
from tests.harness.callbacks import page_view
from tests.harness.dash_client import data_url
from tests.harness.processes import child_env
from tests.harness.servers import WebServer

MODEL = "midas_v21_small_256"
SESSION = "9" * 32


class GatedEstimator(FakeEstimator):
    """The fake network, whose load waits until the test opens the gate (and may fail)."""

    def __init__(self, fail: bool = False):
        super().__init__()
        self.gate = threading.Event()
        self.loads = 0
        self.prepared = 0
        self._loaded = False
        self.fail = fail

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self, progress=None):
        if not self.gate.wait(30):
            raise AssertionError("the test never opened the gate")
        if self.fail:
            raise WeightsUnavailableError("The weights file x.pt is missing. Download it from https://example.org.")
        if not self._loaded:
            self.loads += 1
            self._loaded = True
        return self

    def prepare(self):
        self.prepared += 1
        return []


@pytest.fixture()
def env(tmp_path, yunet_path, faces_dir):
    cache = ResultCache(tmp_path / "results")
    estimator = GatedEstimator()
    service = Face3DService(cache, estimator_factory=lambda *_: estimator, detector_path=yunet_path)
    names = ["fr_obama_official_portrait.jpg", "skimage_astronaut.png"]
    contents = [data_url((faces_dir / n).read_bytes()) for n in names]
    store, _ = upload.handle_upload(service, contents, names, None, session=SESSION)
    yield {"service": service, "estimator": estimator, "store": store, "shas": [i["sha"] for i in store["items"]]}
    cache.close()


# -- polling -------------------------------------------------------------------------------------


def test_a_job_is_polled_soon_after_its_start_then_often_and_not_after_its_end(tmp_path):
    assert FIRST_POLL_MS <= 100 and POLL_MS <= 250
    release = threading.Event()

    def task(params, job):
        job.report(0.5, "Half way")
        release.wait(10)
        return {"done": True}

    store = DiskJobStore(tmp_path / "jobs")
    runner = ThreadJobRunner(store, {"slow": task}, max_workers=1)
    try:
        job_id = runner.submit("slow", {}, SESSION)
        view = start_view(StartOutcome(job_id=job_id))
        assert (view.interval_disabled, view.interval_ms, view.panel_hidden) == (False, FIRST_POLL_MS, False)
        deadline = time.monotonic() + 10
        while runner.status(job_id, SESSION).state != JobState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.02)
        running = poll_view(runner, view.job, session=SESSION)
        assert (running.interval_disabled, running.interval_ms) == (False, POLL_MS)
        assert running.message == "Half way" and running.result is no_update
        release.set()
        while (done := poll_view(runner, view.job, session=SESSION)).result is no_update:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert done.result == {"done": True} and done.interval_disabled and done.job is None
        assert done.interval_ms is no_update  # the next start sets it again
    finally:
        release.set()
        runner.shutdown()
        store.close()


def test_the_job_intervals_start_switched_off_at_the_first_poll_interval():
    def walk(node):
        yield node
        children = getattr(node, "children", None)
        for child in children if isinstance(children, list) else [children] if children is not None else []:
            yield from walk(child)

    layout = build_layout([], MODEL, precision_choices_here())
    intervals = {
        n.id: n for n in walk(layout) if getattr(n, "id", None) in {ids.job_interval(p) for p in ids.JOB_PREFIXES}
    }
    assert set(intervals) == {ids.job_interval(p) for p in ids.JOB_PREFIXES}
    for interval in intervals.values():
        assert interval.disabled is True and interval.interval == FIRST_POLL_MS


# -- work done in the callback -------------------------------------------------------------------


def test_3d_of_a_cached_depth_map_and_a_comparison_of_cached_faces_start_no_job(env):
    service, runner = env["service"], NoJobsRunner()
    env["estimator"].gate.set()
    refs = [depth.depth_request(service, sha, MODEL, env["store"], session=SESSION) for sha in env["shas"]]
    for ref in refs:
        service.depth_maps.compute(ref)
    outcome = depth.start_depth(service, runner, env["shas"][0], MODEL, env["store"], session=SESSION)
    assert outcome.job_id is None and outcome.result == refs[0].to_dict()
    items = compare.compare_items(env["shas"], [MODEL], ["fp32"])
    outcome = compare.start_compare(service, runner, items, env["store"], session=SESSION)
    assert outcome.job_id is None and outcome.result["count"] == 2
    assert runner.submitted == []


def test_a_comparison_with_a_face_without_depth_map_is_a_job(env):
    service, runner = env["service"], NoJobsRunner()
    env["estimator"].gate.set()
    service.depth_maps.compute(depth.depth_request(service, env["shas"][0], MODEL, env["store"], session=SESSION))
    items = compare.compare_items(env["shas"], [MODEL], ["fp32"])
    outcome = compare.start_compare(service, runner, items, env["store"], session=SESSION)
    assert outcome.job_id == "0" * 64 and runner.submitted == ["compare"]


# -- start-up off the request path ---------------------------------------------------------------


def _depth_job(service, ref, messages: list[str]) -> JobStatus:
    """Run the depth task like the job runner does, recording every progress message in ``messages``."""

    class Store:
        def put(self, status):
            messages.append(status.message)

        def cancel_requested(self, job_id):
            return False

    return execute_job(Store(), JobStatus(job_id="1" * 64, kind="depth"), service.tasks()["depth"], ref.to_dict())


def test_a_job_during_the_start_up_load_waits_for_it_and_says_so(env):
    service, estimator = env["service"], env["estimator"]
    threads = service.warmup.start(MODEL)
    assert service.warmup.status()["depth_model"] == {
        "model": MODEL,
        "precision": "fp32",
        "state": "loading",
        "seconds": None,
    }
    ref = depth.depth_request(service, env["shas"][0], MODEL, env["store"], session=SESSION)
    messages: list[str] = []
    finished: list[JobStatus] = []
    job = threading.Thread(target=lambda: finished.append(_depth_job(service, ref, messages)))
    job.start()
    deadline = time.monotonic() + 20
    while PRELOADING_MESSAGE not in messages:  # the job waits for the load the server started
        assert time.monotonic() < deadline and job.is_alive(), messages
        time.sleep(0.02)
    estimator.gate.set()
    job.join(30)
    for thread in threads:
        thread.join(30)
    assert finished[0].state == JobState.DONE, finished[0]
    assert LOADING_MESSAGE not in messages
    assert estimator.loads == 1 and estimator.prepared == 1
    state = service.warmup.status()["depth_model"]
    assert state["state"] == "ready" and state["seconds"] > 0
    assert service.warmup.start(MODEL) == []  # once per process


def test_a_failed_start_up_load_is_left_to_the_first_job(tmp_path, yunet_path, faces_dir):
    cache = ResultCache(tmp_path / "results")
    estimator = GatedEstimator(fail=True)
    estimator.gate.set()
    service = Face3DService(cache, estimator_factory=lambda *_: estimator, detector_path=yunet_path)
    try:
        for thread in service.warmup.start(MODEL):
            thread.join(30)
        assert service.warmup.status()["depth_model"]["state"] == "failed"
        store, _ = upload.handle_upload(
            service, [data_url((faces_dir / "skimage_astronaut.png").read_bytes())], ["a.png"], None, session=SESSION
        )
        ref = depth.depth_request(service, store["items"][0]["sha"], MODEL, store, session=SESSION)
        messages: list[str] = []
        status = _depth_job(service, ref, messages)
        assert status.state == JobState.FAILED and "Download it from" in status.error_message
        assert LOADING_MESSAGE in messages  # the job tried again itself, no longer "started with the server"
    finally:
        cache.close()


def test_a_scale_out_web_worker_loads_no_network(env):
    threads = env["service"].warmup.start(None)
    for thread in threads:
        thread.join(30)
    assert env["service"].warmup.status() == {"depth_model": None}
    assert env["estimator"].loads == 0


def test_the_app_starts_its_warm_up_only_when_asked(tmp_path, yunet_path):
    estimator = GatedEstimator()
    estimator.gate.set()
    quiet = create_app(tmp_path / "a", estimator_factory=lambda *_: estimator, detector_path=yunet_path)
    assert quiet.server.test_client().get("/face3d/warmup").get_json() == {"depth_model": None}
    warm = create_app(tmp_path / "b", estimator_factory=lambda *_: estimator, detector_path=yunet_path, warm_up=True)
    deadline = time.monotonic() + 30
    while (state := warm.server.test_client().get("/face3d/warmup").get_json())["depth_model"]["state"] == "loading":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state["depth_model"]["model"] == MODEL and state["depth_model"]["state"] == "ready"
    assert estimator.loads == 1
    for app in (quiet, warm):
        app.face3d.runner.shutdown()


@pytest.mark.slow
def test_python_m_dashboard_loads_its_network_when_it_starts(tmp_path, fill_weights):
    """The real server process, real network (``fill.py`` weights): loading starts before any request."""
    env = child_env(FACE3D_CACHE_DIR=str(tmp_path / "cache"), FACE3D_WEIGHTS_DIR=str(fill_weights))
    server = WebServer.dashboard(env, tmp_path / "server.log", start_timeout=120.0).start()
    try:
        import requests

        status = requests.get(server.url + "face3d/warmup", timeout=10).json()
        assert status["depth_model"]["model"] == MODEL and status["depth_model"]["state"] in ("loading", "ready")
        ready = wait_for_warm_server(server.url, timeout_s=600)
        assert ready["depth_model"]["seconds"] > 0
        log = server.log_text()
        assert f"Loading the depth model {MODEL} in the background" in log and f"{MODEL} ready for input sizes" in log
        assert "Job " not in log  # no job asked for it
    finally:
        server.stop()


# -- density --------------------------------------------------------------------------------------


def test_density_levels_are_point_budgets_with_every_pixel_one_step_above_the_default():
    default = Controls3D()
    assert default.to_params().max_points == DENSITY_POINTS[default.density] is not None
    assert DENSITY_POINTS[default.density + 1] is None  # every pixel, one step up ...
    assert Controls3D(density=default.density + 1).to_params().max_points == MAX_MODEL_POINTS  # ... up to the cap
    budgets = [DENSITY_POINTS[level] for level in sorted(DENSITY_POINTS)[:-1]]
    assert budgets == sorted(budgets)
    assert compare.COMPARE_VIEW_DENSITY < default.density


def test_the_default_3d_view_of_a_1mp_portrait_keeps_to_its_budget_and_compare_draws_lighter(env):
    service = env["service"]
    env["estimator"].gate.set()
    ref = depth.depth_request(service, env["shas"][0], MODEL, env["store"], session=SESSION)
    service.depth_maps.compute(ref)
    meta = service.uploads.meta(ref.sha)
    assert meta.width * meta.height > 1_000_000
    values = (2.0, Controls3D().density, 1.0, "points", "gray")
    fig, stats, *_ = model3d.render_model3d(
        service, page_view(ref.to_dict(), *values[:3], display=values[3], colors=values[4]), None, session=SESSION
    )
    shown = _points(fig["data"][0])
    assert f"{shown:,} points" in stats and "cap" not in stats  # a budget by design, not the 1.5 M point cap
    assert fig["data"][0]["marker"]["symbol"] == "square"
    assert 0.25 * DENSITY_POINTS[3] < shown <= DENSITY_POINTS[3]
    full = model3d.render_model3d(service, page_view(ref.to_dict(), 2.0, 4, 1.0), None, session=SESSION)[0]
    assert _points(full["data"][0]) > 2 * shown
    other = depth.depth_request(service, env["shas"][1], MODEL, env["store"], session=SESSION)
    service.depth_maps.compute(other)
    result = service.comparisons.compute(ComparisonItems((ref, other)), ["a", "b"]).result
    fig3d = compare.compare_3d(service, result, 0)
    assert 0 < _points(fig3d["data"][0]) < shown


def _points(trace: dict) -> int:
    import base64

    spec = trace["x"]
    return len(base64.b64decode(spec["bdata"])) // np.dtype(spec["dtype"]).itemsize
