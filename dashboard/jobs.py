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
check whether a job's owner is still alive differs: here the heartbeat of the server process,
named by a random token, with a ``/proc`` check of processes of this machine so that a crash is
noticed at once; there the heartbeat of the job on its Celery worker). A process id alone never
decides: a restarted container's server is process 1 again.

Job ids are issued by :class:`JobIds`, bound to the browser session that started the job: a
session can only read and cancel its own jobs, and anything that is not such an id is refused
before it reaches the job store or a log.

Cancellation is cooperative: a task calls :meth:`JobContext.check` between its steps; a
cancelled job is reported as cancelled at once, and its thread stops at the next check (a
network forward pass in progress finishes first; its result still goes to the cache).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Protocol, TypeAlias, TypedDict

from face3d_core.cache import MISSING
from face3d_core.cache.diskdb import DiskDB, OnDamage
from face3d_core.config import get_settings
from face3d_core.errors import CacheError, Face3DError

logger = logging.getLogger(__name__)

#: A JSON value: job parameters and results are made of these (they cross processes as JSON).
JSONValue: TypeAlias = "str | int | float | bool | None | list[JSONValue] | dict[str, JSONValue]"
#: A JSON object: a job's parameters or its result.
JSONObject: TypeAlias = "dict[str, JSONValue]"

#: How long finished job records are kept (seconds).
JOB_TTL_S = 6 * 3600
#: Milliseconds from a job's start to the page's first poll of it.
FIRST_POLL_MS = 100
#: Milliseconds between the page's polls of a running job.
POLL_MS = 250


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
        job_id: 64 hex digits from :class:`JobIds` (random, bound to the session that started it).
        kind: Task name.
        state: Life cycle state.
        progress: Fraction done in ``[0, 1]``.
        message: What is happening now, for the user.
        result: Small dict of cache keys / identifiers when done.
        error_title: Title of the user-facing error when failed.
        error_message: Message of the user-facing error when failed (its web message: no
            server paths, no raw exception text).
        error_file: A missing weights file behind the failure (the page offers its download).
        error_url: That file's official download URL.
        owner_pid: Process running the job (for logs only: a process id is reused, e.g. by a
            restarted container's process 1, so it never decides whether a job is alive).
        owner_token: Random token of the process (thread runner) that runs the job; the job is
            alive while that process's heartbeat is fresh (see :class:`Heartbeat`).
        created: Unix time of submission.
        updated: Unix time of the last change.
    """

    job_id: str
    kind: str
    state: JobState = JobState.QUEUED
    progress: float = 0.0
    message: str = "Waiting to start..."
    result: JSONObject | None = None
    error_title: str | None = None
    error_message: str | None = None
    error_file: str | None = None
    error_url: str | None = None
    owner_pid: int = field(default_factory=os.getpid)
    owner_token: str = ""
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> JSONObject:
        """Return a plain dict (state as its string value)."""
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> JobStatus:
        """Rebuild from :meth:`to_dict` output (fields this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
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

    def beat(self, name: str, ttl_s: float) -> None:
        """Mark ``name`` (a process token, or a job id) as alive for the next ``ttl_s`` seconds."""
        ...

    def alive(self, name: str) -> bool:
        """Return True while the heartbeat of ``name`` is fresh."""
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
        self._beat_failing = False

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

    def beat(self, name: str, ttl_s: float) -> None:
        """Mark ``name`` (a process token) as alive for the next ``ttl_s`` seconds (a failure is logged once).

        The beat also records who beats (:func:`process_identity`), so that a process on this
        machine that died is noticed at once, not only when its beat runs out.
        """
        try:
            self._db.set(f"alive/{name}", process_identity(), expire=ttl_s)
            self._beat_failing = False
        except CacheError as exc:
            if not self._beat_failing:
                logger.warning("Heartbeat %s could not be recorded: %s", name[:8], exc)
            self._beat_failing = True

    def alive(self, name: str) -> bool:
        """Return True while the heartbeat of ``name`` is fresh and its process, where this machine can tell, lives."""
        if not name:
            return False
        beat = self._db.get(f"alive/{name}")
        return beat is not MISSING and identity_alive(beat) is not False

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
Task = Callable[[JSONObject, JobContext], JSONObject]


class JobRunner(Protocol):
    """What the callbacks need from a job backend.

    Implemented by :class:`ThreadJobRunner` and :class:`~dashboard.jobs_celery.CeleryJobRunner`.
    """

    def submit(self, kind: str, params: JSONObject, owner: str = "") -> str:
        """Queue a task by name with JSON parameters for ``owner`` (a session id); return the job id."""
        ...

    def status(self, job_id: str, owner: str = "") -> JobStatus | None:
        """Return the job's current status, or None for an unknown id or one that is not ``owner``'s."""
        ...

    def cancel(self, job_id: str, owner: str = "") -> bool:
        """Ask ``owner``'s job to stop (reported as cancelled at once); False for an id that is not theirs."""
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


def _proc_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (``/proc/<pid>/stat``), None where unknown."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _read_link_or_file(path: str, link: bool) -> str | None:
    try:
        return os.readlink(path) if link else Path(path).read_text().strip()
    except OSError:
        return None


class ProcessIdentity(TypedDict):
    """One process of one machine (see :func:`process_identity`); stored as JSON in a heartbeat."""

    pid: int
    boot: str | None
    pidns: str | None
    start: int | None


_IDENTITY: ProcessIdentity | None = None


def process_identity() -> ProcessIdentity:
    """This process as another process of the machine can check it: boot, PID namespace, pid, start time.

    A process id alone is reused (a restarted container's server is process 1 again); with the
    boot id, the PID namespace and the start time it names one process (Linux; elsewhere only
    the pid, which :func:`identity_alive` then does not trust).
    """
    global _IDENTITY
    if _IDENTITY is None or _IDENTITY["pid"] != os.getpid():
        _IDENTITY = {
            "pid": os.getpid(),
            "boot": _read_link_or_file("/proc/sys/kernel/random/boot_id", link=False),
            "pidns": _read_link_or_file("/proc/self/ns/pid", link=True),
            "start": _proc_start_ticks(os.getpid()),
        }
    return _IDENTITY


def identity_alive(identity: object) -> bool | None:
    """Whether the process of a :func:`process_identity` still runs: True, False, or None when this machine cannot tell.

    Only a process of the same boot and PID namespace can be checked (``/proc``); for one of
    another machine or container the answer is None and its heartbeat alone decides.
    """
    mine = process_identity()
    if not isinstance(identity, dict) or mine["boot"] is None or mine["pidns"] is None:
        return None
    if identity.get("boot") != mine["boot"] or identity.get("pidns") != mine["pidns"]:
        return None
    pid = identity.get("pid")
    if not isinstance(pid, int):
        return None
    return _proc_start_ticks(pid) == identity.get("start")


def heartbeat_interval() -> float:
    """Seconds between heartbeats (``FACE3D_JOB_HEARTBEAT_S``, default 5); 3 missed beats = gone."""
    return get_settings().job_heartbeat_s


class Heartbeat:
    """Context manager: refresh the heartbeat of ``name`` from a background thread while it is held.

    The thread runner beats for its process (a random token per process, so a restarted
    server that got the same process id is never taken for the old one); a Celery worker beats
    for the job it runs.

    Args:
        store: Where the heartbeat lives.
        name: What is alive (a process token or a job id).
        interval_s: Seconds between beats (default :func:`heartbeat_interval`); a beat lasts three.
    """

    def __init__(self, store: JobStore, name: str, interval_s: float | None = None):
        self.store = store
        self.name = name
        self.interval_s = interval_s or heartbeat_interval()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"face3d-heartbeat-{name[:8]}", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.store.beat(self.name, 3 * self.interval_s)

    def __enter__(self) -> Heartbeat:
        self.store.beat(self.name, 3 * self.interval_s)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


#: A job id as the server issues it: 32 hex digits of randomness, then 32 of :class:`JobIds` tag.
JOB_ID_RE = re.compile(r"^[0-9a-f]{64}$")


class JobIds:
    """Issues job ids bound to their owner (a browser session) and checks them.

    A job id is ``nonce + HMAC-SHA256(secret, owner, nonce)[:16 bytes]`` in hex: anything else
    (a 25 MB string, another session's id) is refused before it reaches the job store or a log.

    Args:
        secret: The server's secret (shared by every web worker, see :mod:`dashboard.sessions`);
            default: a random one for this process (a single process, tests).
    """

    def __init__(self, secret: bytes | None = None):
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def _tag(self, owner: str, nonce: str) -> str:
        message = f"job\x00{owner}\x00{nonce}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def issue(self, owner: str) -> str:
        """A new job id belonging to ``owner``."""
        nonce = secrets.token_hex(16)
        return nonce + self._tag(owner, nonce)

    def owned_by(self, job_id: object, owner: str) -> bool:
        """True when ``job_id`` has the server's form and was issued to ``owner``."""
        if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
            return False
        return hmac.compare_digest(job_id[32:], self._tag(owner, job_id[:32]))


def describe_unexpected(exc: BaseException) -> tuple[str, str, str]:
    """Log an unexpected exception and return ``(reference, title, message)`` safe for users."""
    reference = uuid.uuid4().hex[:8]
    logger.error("Unexpected error (reference %s)", reference, exc_info=exc)
    return (
        reference,
        "Something went wrong",
        f"An unexpected error occurred on the server (reference {reference}). It has been logged; please try again.",
    )


def execute_job(store: JobStore, status: JobStatus, task: Task, params: JSONObject) -> JobStatus:
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
        status.error_message = exc.web_message  # shown on the page: no server paths
        status.error_file = getattr(exc, "file_name", None)
        status.error_url = getattr(exc, "url", None)
        status.message = exc.title
        logger.info("Job %s (%s) failed: %r", status.job_id, status.kind, exc.user_message)
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

    The process beats a heartbeat under a random token (:class:`Heartbeat`) and writes that
    token into its job records: a job whose process is gone (killed, restarted, even as the
    same process id in a container) is reported as interrupted after three missed beats.

    Args:
        store: Where job records, cancel flags and heartbeats live.
        tasks: Task name -> function.
        max_workers: Threads running jobs at the same time (``FACE3D_JOB_WORKERS``, default 1:
            one network at a time keeps a small CPU responsive).
        job_ids: Issues and checks job ids (default: a secret of this process only).
    """

    def __init__(
        self,
        store: JobStore,
        tasks: Mapping[str, Task],
        max_workers: int | None = None,
        *,
        job_ids: JobIds | None = None,
    ):
        if max_workers is None:
            max_workers = get_settings().job_workers
        self.store = store
        self.tasks = dict(tasks)
        self.job_ids = job_ids or JobIds()
        self.token = secrets.token_hex(16)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="face3d-job")
        self._heartbeat = Heartbeat(store, self.token).__enter__()

    def submit(self, kind: str, params: JSONObject, owner: str = "") -> str:
        """Queue ``tasks[kind](params)`` for ``owner`` (a session id); return the new job id.

        Raises:
            KeyError: Unknown task name.
            CacheError: The job store cannot be written.
        """
        if kind not in self.tasks:
            raise KeyError(f"Unknown job kind {kind!r}")
        status = JobStatus(job_id=self.job_ids.issue(owner), kind=kind, owner_token=self.token)
        self.store.put(status)
        self._pool.submit(self._run, status, dict(params))
        logger.info("Job %s (%s) queued", status.job_id[:12], kind)
        return status.job_id

    def _run(self, status: JobStatus, params: JSONObject) -> None:
        execute_job(self.store, status, self.tasks[status.kind], params)

    def _owner_alive(self, status: JobStatus) -> bool:
        return status.owner_token == self.token or self.store.alive(status.owner_token)

    def status(self, job_id: str, owner: str = "") -> JobStatus | None:
        """Return the job's status, or None for an id that is not ``owner``'s.

        An unfinished job whose process is gone (no heartbeat) is reported as interrupted.
        """
        if not self.job_ids.owned_by(job_id, owner):
            return None
        return live_status(
            self.store,
            job_id,
            self._owner_alive,
            "The server restarted while this job was running. Please start it again.",
        )

    def cancel(self, job_id: str, owner: str = "") -> bool:
        """Raise the job's cancel flag (the UI shows it cancelled at once); False for an id that is not ``owner``'s."""
        if not self.job_ids.owned_by(job_id, owner):
            return False
        self.store.request_cancel(job_id)
        return True

    def shutdown(self, wait: bool = False) -> None:
        """Stop accepting jobs and beating; optionally wait for running ones."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._heartbeat.__exit__(None, None, None)
