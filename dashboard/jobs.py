"""Background jobs: long work (the depth network) off the request thread, with progress and cancel.

Why not Dash's ``DiskcacheManager``: it starts a new OS process per job, so a PyTorch model
would be loaded again for every job, and CUDA cannot be initialised again in a forked child.
Here a small thread pool inside the server process runs jobs; the network is loaded once per
process (:func:`face3d_core.models.estimator.get_estimator`) and shared by all jobs.

Job state (state, progress, message, result keys, error) and the cancel flag live in a
:class:`JobStore`: :class:`DiskJobStore` on diskcache here, so every server worker on the
machine can report on and cancel any job; the browser holds only the job id and polls with a
``dcc.Interval``.

The runner sits behind the small :class:`JobRunner` protocol (``submit`` / ``status`` /
``cancel``) and jobs are named tasks with JSON parameters, so another backend plugs in without
touching the callbacks: with ``FACE3D_REDIS_URL`` set, :mod:`dashboard.jobs_celery` runs the
same tasks on Celery workers (:class:`~dashboard.jobs_celery.RedisJobStore`), through the same
:func:`execute_job`, and both runners answer ``status`` through :func:`live_status` (only the
check whether a job's owner is still alive differs: a process id here, a heartbeat there).

Cancellation is cooperative: a task calls :meth:`JobContext.check` between its steps; a
cancelled job is reported as cancelled at once, and its thread stops at the next check (a
network forward pass in progress finishes first; its result still goes to the cache).
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from face3d_core.cache.diskdb import DiskDB, OnDamage
from face3d_core.config import get_settings
from face3d_core.errors import CacheError, Face3DError

logger = logging.getLogger(__name__)

#: How long finished job records are kept (seconds).
JOB_TTL_S = 6 * 3600


class JobState(str, enum.Enum):
    """Life cycle of a job."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for done, failed and cancelled."""
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass
class JobStatus:
    """What the browser learns about a job (all JSON-friendly).

    Attributes:
        job_id: Random hex id.
        kind: Task name.
        state: Life cycle state.
        progress: Fraction done in ``[0, 1]``.
        message: What is happening now, for the user.
        result: Small dict of cache keys / identifiers when done.
        error_title: Title of the user-facing error when failed.
        error_message: Message of the user-facing error when failed.
        owner_pid: Process running the job (to detect jobs lost in a server restart).
        created: Unix time of submission.
        updated: Unix time of the last change.
    """

    job_id: str
    kind: str
    state: JobState = JobState.QUEUED
    progress: float = 0.0
    message: str = "Waiting to start..."
    result: dict[str, Any] | None = None
    error_title: str | None = None
    error_message: str | None = None
    owner_pid: int = field(default_factory=os.getpid)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict (state as its string value)."""
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobStatus:
        """Rebuild from :meth:`to_dict` output."""
        values = dict(data)
        values["state"] = JobState(values["state"])
        return cls(**values)


class JobCancelled(Exception):
    """Raised inside a task by :meth:`JobContext.check` once the job was cancelled."""


class JobStore(Protocol):
    """Where job records and cancel flags live.

    Implemented by :class:`DiskJobStore` and :class:`~dashboard.jobs_celery.RedisJobStore`.
    """

    def put(self, status: JobStatus) -> None:
        """Write a job record (raise :class:`~face3d_core.errors.CacheError` when impossible)."""
        ...

    def get(self, job_id: str) -> JobStatus | None:
        """Read a job record, or None when unknown, expired or unreadable."""
        ...

    def request_cancel(self, job_id: str) -> None:
        """Raise the cancel flag of a job."""
        ...

    def cancel_requested(self, job_id: str) -> bool:
        """Return True once the cancel flag of a job is raised."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class DiskJobStore:
    """Job records and cancel flags on diskcache (shared by the processes of one machine).

    Every access waits a bounded time (:class:`~face3d_core.cache.diskdb.DiskDB`): on a
    read-only folder records are still read and writes fail at once; a damaged index is
    rebuilt empty at start (job records are disposable).

    Args:
        directory: Folder of the store (``<cache dir>/jobs`` by default in the app).

    Raises:
        CacheError: The folder cannot be created or opened.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._db = DiskDB(
            self.directory, label="the job records", on_damage=OnDamage.REBUILD, size_limit=64 * 1024 * 1024
        )

    def put(self, status: JobStatus) -> None:
        """Write a job record.

        Raises:
            CacheError: The folder cannot be written (disk full, read-only).
        """
        status.updated = time.time()
        self._db.set(f"job/{status.job_id}", status.to_dict(), expire=JOB_TTL_S)

    def get(self, job_id: str) -> JobStatus | None:
        """Read a job record, or None when unknown or expired."""
        data = self._db.get(f"job/{job_id}")
        if not isinstance(data, dict):
            return None
        try:
            return JobStatus.from_dict(data)
        except (KeyError, TypeError, ValueError):
            return None

    def request_cancel(self, job_id: str) -> None:
        """Raise the cancel flag of a job.

        Raises:
            CacheError: The folder cannot be written.
        """
        self._db.set(f"cancel/{job_id}", True, expire=JOB_TTL_S)

    def cancel_requested(self, job_id: str) -> bool:
        """Return True once the cancel flag of a job is raised."""
        return self._db.get(f"cancel/{job_id}") is True

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()


class JobContext:
    """Handed to a running task: report progress and check for cancellation."""

    def __init__(self, store: JobStore, status: JobStatus):
        self._store = store
        self._status = status

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self._status.job_id

    def check(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled."""
        if self._store.cancel_requested(self._status.job_id):
            raise JobCancelled(self._status.job_id)

    def report(self, progress: float, message: str) -> None:
        """Record progress (``0..1``) and a message for the user, then check for cancellation."""
        self.check()
        self._status.progress = float(min(max(progress, 0.0), 1.0))
        self._status.message = message
        self._store.put(self._status)


#: A task: ``task(params, context) -> small JSON-able result dict``.
Task = Callable[[dict[str, Any], JobContext], dict[str, Any]]


class JobRunner(Protocol):
    """What the callbacks need from a job backend.

    Implemented by :class:`ThreadJobRunner` and :class:`~dashboard.jobs_celery.CeleryJobRunner`.
    """

    def submit(self, kind: str, params: dict[str, Any]) -> str:
        """Queue a task by name with JSON parameters; return the job id."""
        ...

    def status(self, job_id: str) -> JobStatus | None:
        """Return the job's current status, or None for an unknown id."""
        ...

    def cancel(self, job_id: str) -> None:
        """Ask the job to stop; it is reported as cancelled at once."""
        ...


def live_status(
    store: JobStore, job_id: str, owner_alive: Callable[[JobStatus], bool], interrupted_message: str
) -> JobStatus | None:
    """A job's status as the user should see it, for any runner.

    A raised cancel flag shows the job cancelled at once (its worker stops at its next step);
    an unfinished job whose owner is gone shows as interrupted.

    Args:
        store: The job store.
        job_id: The job.
        owner_alive: Whether the process or worker running an unfinished job still works on it
            (the backend's own check: a process id, a heartbeat).
        interrupted_message: What to tell the user when it does not.

    Returns:
        The status, or None for an unknown job.
    """
    status = store.get(job_id)
    if status is None or status.state.finished:
        return status
    if store.cancel_requested(job_id):
        status.state = JobState.CANCELLED
        status.message = "Cancelled"
    elif not owner_alive(status):
        status.state = JobState.FAILED
        status.error_title = "Job interrupted"
        status.error_message = interrupted_message
    return status


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_unexpected(exc: BaseException) -> tuple[str, str, str]:
    """Log an unexpected exception and return ``(reference, title, message)`` safe for users."""
    reference = uuid.uuid4().hex[:8]
    logger.error("Unexpected error (reference %s)", reference, exc_info=exc)
    return (
        reference,
        "Something went wrong",
        f"An unexpected error occurred on the server (reference {reference}). It has been logged; please try again.",
    )


def execute_job(store: JobStore, status: JobStatus, task: Task, params: dict[str, Any]) -> JobStatus:
    """Run one job to its end and record every state change in ``store`` (any job backend).

    The task's user-facing errors become a failed job with their message; anything else is
    logged with a reference and reported without internals. Never raises (a job must never
    kill the thread or worker process that runs it).

    Args:
        store: Where the job record and its cancel flag live.
        status: The job's record (queued).
        task: The function to run.
        params: The task's JSON parameters.

    Returns:
        The final status (also written to ``store``).
    """
    context = JobContext(store, status)
    try:
        context.check()
        status.state = JobState.RUNNING
        context.report(0.02, "Starting...")
        started = time.perf_counter()
        result = task(params, context)
        context.check()
        status.state = JobState.DONE
        status.progress = 1.0
        status.message = "Done"
        status.result = result
        logger.info("Job %s (%s) done in %.2f s", status.job_id, status.kind, time.perf_counter() - started)
    except JobCancelled:
        status.state = JobState.CANCELLED
        status.message = "Cancelled"
        logger.info("Job %s (%s) cancelled", status.job_id, status.kind)
    except Face3DError as exc:
        status.state = JobState.FAILED
        status.error_title = exc.title
        status.error_message = exc.user_message
        status.message = exc.title
        logger.info("Job %s (%s) failed: %s", status.job_id, status.kind, exc)
    except Exception as exc:  # noqa: BLE001 - a job must never kill the worker thread
        _, status.error_title, status.error_message = describe_unexpected(exc)
        status.state = JobState.FAILED
        status.message = status.error_title
    try:
        if store.cancel_requested(status.job_id) and status.state != JobState.CANCELLED:
            status.state = JobState.CANCELLED
            status.message = "Cancelled"
        store.put(status)
    except Exception as exc:  # noqa: BLE001 - the job store itself failed (disk full, Redis gone)
        logger.error("Could not record the end of job %s (%s): %s", status.job_id, status.state.value, exc)
    return status


class ThreadJobRunner:
    """Runs tasks in a thread pool of this process; state in a :class:`JobStore`.

    Args:
        store: Where job records and cancel flags live.
        tasks: Task name -> function.
        max_workers: Threads running jobs at the same time (``FACE3D_JOB_WORKERS``, default 1:
            one network at a time keeps a small CPU responsive).
    """

    def __init__(self, store: JobStore, tasks: Mapping[str, Task], max_workers: int | None = None):
        if max_workers is None:
            max_workers = get_settings().job_workers
        self.store = store
        self.tasks = dict(tasks)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="face3d-job")
        self._lock = threading.Lock()

    def submit(self, kind: str, params: dict[str, Any]) -> str:
        """Queue ``tasks[kind](params)``; return the new job id.

        Raises:
            KeyError: Unknown task name.
        """
        if kind not in self.tasks:
            raise KeyError(f"Unknown job kind {kind!r}")
        status = JobStatus(job_id=uuid.uuid4().hex, kind=kind)
        self.store.put(status)
        self._pool.submit(self._run, status, dict(params))
        logger.info("Job %s (%s) queued", status.job_id, kind)
        return status.job_id

    def _run(self, status: JobStatus, params: dict[str, Any]) -> None:
        execute_job(self.store, status, self.tasks[status.kind], params)

    def status(self, job_id: str) -> JobStatus | None:
        """Return the job's status; a job whose process died is reported as interrupted."""
        return live_status(
            self.store,
            job_id,
            lambda status: _pid_alive(status.owner_pid),
            "The server restarted while this job was running. Please start it again.",
        )

    def cancel(self, job_id: str) -> None:
        """Raise the job's cancel flag (the UI shows it cancelled at once)."""
        self.store.request_cancel(job_id)

    def shutdown(self, wait: bool = False) -> None:
        """Stop accepting jobs; optionally wait for running ones."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
