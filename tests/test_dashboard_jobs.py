"""Tests of the in-process job runner (dashboard.jobs): progress, results, errors, cancel."""

from __future__ import annotations

import threading
import time

import pytest

from dashboard.jobs import DiskJobStore, JobCancelled, JobIds, JobState, JobStatus, ThreadJobRunner
from face3d_core.errors import NoFaceFoundError

#: The secret every "worker" of these tests shares (as the workers of one machine do).
JOB_IDS = JobIds(b"a test secret shared by the workers of one machine")


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
    return ThreadJobRunner(store, tasks, max_workers=workers, job_ids=JOB_IDS)


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
    assert runner.status(JOB_IDS.issue("")) is None  # well-formed, never submitted
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


def test_job_of_a_dead_process_is_reported_failed_even_when_its_pid_is_ours(store, monkeypatch):
    """A restarted container's server is process 1 again: a process id says nothing about the job."""
    import os

    runner = make_runner(store, {})
    job_id = JOB_IDS.issue("")
    # the record of a process that died: same pid as this one (reused), its own token, no heartbeat
    store.put(JobStatus(job_id=job_id, kind="t", state=JobState.RUNNING, owner_pid=os.getpid(), owner_token="f" * 32))
    reported = runner.status(job_id)
    assert reported.state == JobState.FAILED and reported.error_title == "Job interrupted"
    assert "restarted" in reported.error_message
    # a record written before owner tokens existed (an upgrade is a restart): interrupted too
    old = JobStatus(job_id=JOB_IDS.issue(""), kind="t", state=JobState.RUNNING).to_dict()
    del old["owner_token"]
    store._db.set(f"job/{old['job_id']}", old)
    assert runner.status(old["job_id"]).state == JobState.FAILED
    runner.shutdown()


def test_a_job_stays_alive_while_its_process_beats_and_is_interrupted_when_it_stops(tmp_path, monkeypatch):
    """Two runners on one folder are two server processes; the second watches the first one's job."""
    monkeypatch.setenv("FACE3D_JOB_HEARTBEAT_S", "0.2")
    release = threading.Event()
    store_a, store_b = DiskJobStore(tmp_path / "jobs"), DiskJobStore(tmp_path / "jobs")
    worker_a = make_runner(store_a, {"t": lambda params, job: release.wait(30) and {}})
    worker_b = make_runner(store_b, {})
    try:
        job_id = worker_a.submit("t", {})
        time.sleep(1.0)  # five beats
        assert worker_b.status(job_id).state == JobState.RUNNING
        worker_a._heartbeat.__exit__(None, None, None)  # the process "dies": no more beats
        time.sleep(1.0)  # more than three missed beats
        status = worker_b.status(job_id)
        assert status.state == JobState.FAILED and status.error_title == "Job interrupted"
    finally:
        release.set()
        worker_a.shutdown()
        worker_b.shutdown()
        store_a.close()
        store_b.close()


def test_job_ids_have_the_server_form_and_belong_to_their_session(store, caplog):
    import logging
    import re

    release = threading.Event()
    runner = make_runner(store, {"t": lambda params, job: release.wait(10) and {}})
    try:
        mine = runner.submit("t", {}, "alice")
        assert re.fullmatch(r"[0-9a-f]{64}", mine)
        assert runner.status(mine, "alice").state in (JobState.QUEUED, JobState.RUNNING)
        # another session can neither read nor cancel it
        assert runner.status(mine, "mallory") is None
        assert runner.cancel(mine, "mallory") is False
        assert not store.cancel_requested(mine)
        # a forged id (right form, wrong tag) and junk are refused before the store or a log sees them
        forged = mine[:32] + ("0" if mine[32] != "0" else "1") + mine[33:]
        huge = "f" * (25 * 1024 * 1024)
        before = store._db.cache.volume()
        with caplog.at_level(logging.DEBUG):
            for junk in (forged, huge, huge + "!", None, 42, {"id": "x"}, "../../etc/passwd"):
                assert runner.status(junk, "alice") is None
                assert runner.cancel(junk, "alice") is False
        assert store._db.cache.volume() <= before + 64 * 1024  # nothing stored for them
        assert max((len(r.getMessage()) for r in caplog.records), default=0) < 1000  # nor logged
        assert runner.cancel(mine, "alice") is True
        assert runner.status(mine, "alice").state == JobState.CANCELLED
    finally:
        release.set()
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


def test_a_process_identity_is_more_than_its_pid():
    """A beat names a process by boot, PID namespace, pid and start time: a reused pid is not it."""
    import subprocess
    import sys

    from dashboard.jobs import _proc_start_ticks, identity_alive, process_identity

    mine = process_identity()
    if mine["boot"] is None or mine["pidns"] is None:
        pytest.skip("no /proc here: only heartbeats decide")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        identity = dict(mine, pid=child.pid, start=_proc_start_ticks(child.pid))
        assert identity_alive(identity) is True
        assert identity_alive(dict(identity, start=identity["start"] - 1)) is False  # the pid, reused by another
        assert identity_alive(dict(identity, pidns="pid:[1]")) is None  # another container: cannot tell
        assert identity_alive(dict(identity, boot="another-boot")) is None  # another machine
        assert identity_alive(mine) is True
    finally:
        child.kill()
        child.wait()
    assert identity_alive(identity) is False  # gone
