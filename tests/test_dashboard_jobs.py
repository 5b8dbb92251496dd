"""Tests of the in-process job runner (dashboard.jobs): progress, results, errors, cancel."""

from __future__ import annotations

import threading
import time

import pytest

from dashboard.jobs import DiskJobStore, JobCancelled, JobState, JobStatus, ThreadJobRunner
from face3d_core.errors import NoFaceFoundError


def wait_finished(runner, job_id, timeout=10.0) -> JobStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = runner.status(job_id)
        if status is not None and status.state.finished:
            return status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish: {runner.status(job_id)}")


@pytest.fixture()
def store(tmp_path):
    result = DiskJobStore(tmp_path / "jobs")
    yield result
    result.close()


def make_runner(store, tasks, workers=1):
    return ThreadJobRunner(store, tasks, max_workers=workers)


def test_job_reports_progress_and_result(store):
    seen = threading.Event()
    release = threading.Event()

    def task(params, job):
        job.report(0.5, "Halfway")
        seen.set()
        release.wait(5)
        return {"echo": params["x"]}

    runner = make_runner(store, {"t": task})
    job_id = runner.submit("t", {"x": 7})
    assert seen.wait(5)
    status = runner.status(job_id)
    assert status.state == JobState.RUNNING
    assert status.progress == pytest.approx(0.5)
    assert status.message == "Halfway"
    release.set()
    final = wait_finished(runner, job_id)
    assert final.state == JobState.DONE
    assert final.result == {"echo": 7}
    assert final.progress == 1.0
    runner.shutdown()


def test_user_error_is_reported_with_its_message(store):
    def task(params, job):
        raise NoFaceFoundError("No face was found in this photo.")

    runner = make_runner(store, {"t": task})
    status = wait_finished(runner, runner.submit("t", {}))
    assert status.state == JobState.FAILED
    assert status.error_title == NoFaceFoundError.title
    assert "No face" in status.error_message
    runner.shutdown()


def test_unexpected_error_is_logged_not_shown(store, caplog):
    def task(params, job):
        raise RuntimeError("secret internal detail /srv/path")

    runner = make_runner(store, {"t": task})
    status = wait_finished(runner, runner.submit("t", {}))
    assert status.state == JobState.FAILED
    assert "secret" not in status.error_message
    assert "Traceback" not in status.error_message
    assert "reference" in status.error_message
    assert any("secret internal detail" in str(r.exc_info) for r in caplog.records if r.exc_info)
    runner.shutdown()


def test_cancel_is_immediate_and_stops_the_task(store):
    started = threading.Event()
    steps = []

    def task(params, job):
        started.set()
        for i in range(500):
            job.report(i / 500, "working")
            steps.append(i)
            time.sleep(0.01)
        return {}

    runner = make_runner(store, {"t": task})
    job_id = runner.submit("t", {})
    assert started.wait(5)
    runner.cancel(job_id)
    assert runner.status(job_id).state == JobState.CANCELLED  # at once, before the thread notices
    deadline = time.monotonic() + 10
    while store.get(job_id).state != JobState.CANCELLED and time.monotonic() < deadline:
        time.sleep(0.02)  # the worker thread itself records the end of the job
    assert store.get(job_id).state == JobState.CANCELLED
    count = len(steps)
    time.sleep(0.1)
    assert len(steps) == count < 500  # the task really stopped
    runner.shutdown()


def test_queued_job_cancelled_before_it_starts_never_runs(store):
    release = threading.Event()
    ran = []

    def blocker(params, job):
        release.wait(5)
        return {}

    def task(params, job):
        ran.append(1)
        return {}

    runner = make_runner(store, {"block": blocker, "t": task}, workers=1)
    first = runner.submit("block", {})
    second = runner.submit("t", {})
    assert runner.status(second).state == JobState.QUEUED
    runner.cancel(second)
    release.set()
    wait_finished(runner, first)
    assert wait_finished(runner, second).state == JobState.CANCELLED
    assert ran == []
    runner.shutdown()


def test_unknown_job_and_unknown_kind(store):
    runner = make_runner(store, {})
    assert runner.status("nope") is None
    with pytest.raises(KeyError):
        runner.submit("missing", {})
    runner.shutdown()


def test_another_worker_process_sees_and_cancels_the_job(tmp_path):
    """Two runners on one store folder stand for two server workers on one machine."""
    release = threading.Event()

    def task(params, job):
        while not release.is_set():
            job.report(0.3, "working")
            time.sleep(0.01)
        return {}

    store_a, store_b = DiskJobStore(tmp_path / "jobs"), DiskJobStore(tmp_path / "jobs")
    worker_a = make_runner(store_a, {"t": task})
    worker_b = make_runner(store_b, {"t": task})
    job_id = worker_a.submit("t", {})
    time.sleep(0.2)
    assert worker_b.status(job_id).state == JobState.RUNNING
    worker_b.cancel(job_id)
    assert wait_finished(worker_a, job_id).state == JobState.CANCELLED
    release.set()
    worker_a.shutdown()
    worker_b.shutdown()
    store_a.close()
    store_b.close()


def test_job_of_a_dead_process_is_reported_failed(store):
    status = JobStatus(job_id="abc", kind="t", state=JobState.RUNNING, owner_pid=2**22 + 12345)
    store.put(status)
    runner = make_runner(store, {})
    reported = runner.status("abc")
    assert reported.state == JobState.FAILED
    assert "restarted" in reported.error_message
    runner.shutdown()


def test_status_roundtrip():
    status = JobStatus(job_id="x", kind="depth", state=JobState.DONE, result={"sha": "a"})
    assert JobStatus.from_dict(status.to_dict()) == status


def test_job_context_check_raises_after_cancel(store):
    from dashboard.jobs import JobContext

    status = JobStatus(job_id="c1", kind="t")
    context = JobContext(store, status)
    context.check()
    store.request_cancel("c1")
    with pytest.raises(JobCancelled):
        context.report(0.5, "x")


def test_live_status_is_shared_logic_with_the_owner_check_injected(store):
    from dashboard.jobs import live_status

    checked = []

    def owner_alive(alive):
        def check(status):
            checked.append(status.job_id)
            return alive

        return check

    store.put(JobStatus(job_id="run", kind="t", state=JobState.RUNNING))
    assert live_status(store, "run", owner_alive(True), "gone").state == JobState.RUNNING
    interrupted = live_status(store, "run", owner_alive(False), "The worker stopped.")
    assert interrupted.state == JobState.FAILED and interrupted.error_title == "Job interrupted"
    assert interrupted.error_message == "The worker stopped."
    assert store.get("run").state == JobState.RUNNING  # reporting never rewrites the record
    store.request_cancel("run")
    assert live_status(store, "run", owner_alive(False), "gone").state == JobState.CANCELLED  # cancel wins
    store.put(JobStatus(job_id="done", kind="t", state=JobState.DONE, result={"k": 1}))
    checked.clear()
    assert live_status(store, "done", owner_alive(False), "gone").result == {"k": 1}
    assert checked == []  # a finished job is not checked at all
    assert live_status(store, "unknown", owner_alive(True), "gone") is None
