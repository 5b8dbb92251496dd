"""Scale-out job backend: the dashboard's jobs on Celery workers, job records in Redis.

Used when ``FACE3D_REDIS_URL`` is set (see :func:`dashboard.app.create_app`). Why Celery behind
the existing :class:`~dashboard.jobs.JobRunner` interface rather than Dash's ``CeleryManager``:

* the callbacks, progress bar and cancel button stay exactly as they are (``submit`` /
  ``status`` / ``cancel``); ``CeleryManager`` would turn them into ``background=True``
  callbacks with another progress and cancel mechanism;
* a web worker only *sends* a task by name (``send_task``) with JSON parameters: it never
  imports torch or builds a network, and the inference workers never import Dash (they
  import :mod:`dashboard.celery_app`, which needs only the core and the service);
* the network is loaded once per Celery worker process, on its first job, and reused by every
  later job (``CeleryManager`` runs the whole callback, Dash included, in the worker);
* the results (depth maps, comparisons) go to the shared result store
  (:class:`~face3d_core.cache.redis.RedisResultCache`) under the same keys as the embedded
  diskcache, so the web workers read them by key; Celery's own result backend is not used.

Job records (state, progress, message, result keys, error) and cancel flags are JSON in Redis
(:class:`RedisJobStore`, a :class:`~dashboard.jobs.JobStore`), so any web worker can report on
or cancel any job. A running job refreshes a heartbeat key; a job whose worker died (no
heartbeat) is reported as interrupted by the shared :func:`~dashboard.jobs.live_status`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from dashboard.jobs import JOB_TTL_S, JobIds, JobState, JobStatus, JSONObject, heartbeat_interval, live_status
from dashboard.services.errors import JobQueueError
from face3d_core.cache.redis import redact_url
from face3d_core.errors import CacheError

if TYPE_CHECKING:  # imported where used: the web process imports them only in scale-out mode
    import redis
    from celery import Celery

logger = logging.getLogger(__name__)

#: Name of the one Celery task that runs any dashboard job (see :mod:`dashboard.celery_app`).
TASK_NAME = "face3d.run_job"


def make_celery(url: str) -> Celery:
    """Return a Celery app that uses Redis at ``url`` as its broker (no result backend).

    Settings: JSON messages only; no Celery results (state lives in :class:`RedisJobStore`);
    one message prefetched per worker process, so long network jobs spread over all workers
    instead of queueing behind a busy one.
    """
    from celery import Celery

    celery = Celery("face3d", broker=url)
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_default_queue="face3d",
    )
    return celery


def _broker_errors() -> tuple[type[BaseException], ...]:
    """Exceptions of the broker client libraries that mean "Redis cannot be reached"."""
    import redis
    from kombu.exceptions import OperationalError

    return (OperationalError, redis.RedisError)


class RedisJobStore:
    """Job records, cancel flags and heartbeats in Redis (shared by every machine).

    Implements :class:`dashboard.jobs.JobStore`, plus the heartbeat (:meth:`beat` / :meth:`alive`).

    Args:
        url: Redis URL.
        client: An existing ``redis.Redis`` client (tests); built from ``url`` otherwise.
    """

    def __init__(self, url: str, client: redis.Redis | None = None):
        import redis

        self._errors = (redis.RedisError, OSError)
        self.url = url
        self._client = client if client is not None else redis.Redis.from_url(url, socket_timeout=30)

    def _fail(self, exc: BaseException) -> CacheError:
        return CacheError(f"The job store at {redact_url(self.url)} cannot be reached ({exc}). Is Redis running?")

    def put(self, status: JobStatus) -> None:
        """Write a job record.

        Raises:
            CacheError: Redis is unreachable or refused the write.
        """
        status.updated = time.time()
        try:
            self._client.set(f"face3d-job:{status.job_id}", json.dumps(status.to_dict()), ex=JOB_TTL_S)
        except self._errors as exc:
            raise self._fail(exc) from exc

    def get(self, job_id: str) -> JobStatus | None:
        """Read a job record, or None when unknown, expired or unreadable."""
        try:
            raw = self._client.get(f"face3d-job:{job_id}")
        except self._errors as exc:
            logger.warning("Job store read failed: %s", exc)
            return None
        if raw is None:
            return None
        try:
            return JobStatus.from_dict(json.loads(raw))
        except (KeyError, TypeError, ValueError):
            return None

    def request_cancel(self, job_id: str) -> None:
        """Raise the cancel flag of a job."""
        try:
            self._client.set(f"face3d-cancel:{job_id}", b"1", ex=JOB_TTL_S)
        except self._errors as exc:
            raise self._fail(exc) from exc

    def cancel_requested(self, job_id: str) -> bool:
        """Return True once the cancel flag of a job is raised."""
        try:
            return bool(self._client.exists(f"face3d-cancel:{job_id}"))
        except self._errors:
            return False

    def beat(self, name: str, ttl_s: float) -> None:
        """Mark ``name`` (the job a worker runs) as alive for the next ``ttl_s`` seconds."""
        try:
            self._client.set(f"face3d-alive:{name}", str(os.getpid()), ex=max(1, int(ttl_s + 0.999)))
        except self._errors as exc:
            logger.warning("Heartbeat of %s failed: %s", name[:12], exc)

    def alive(self, name: str) -> bool:
        """Return True while the heartbeat of ``name`` is fresh (True if Redis is unreachable)."""
        try:
            return bool(self._client.exists(f"face3d-alive:{name}"))
        except self._errors:
            return True

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class CeleryJobRunner:
    """A :class:`~dashboard.jobs.JobRunner` that queues jobs for Celery workers.

    Args:
        store: Job records in Redis.
        celery: The Celery app used to send tasks (see :func:`make_celery`).
        kinds: Task names the workers know (``Face3DService.tasks()`` keys).
        job_ids: Issues and checks job ids (give every web worker the same secret, see
            :mod:`dashboard.sessions`; default: a secret of this process only).
    """

    def __init__(self, store: RedisJobStore, celery: Celery, kinds: Iterable[str], *, job_ids: JobIds | None = None):
        self.store = store
        self.celery = celery
        self.kinds = frozenset(kinds)
        self.job_ids = job_ids or JobIds()

    @classmethod
    def from_url(cls, url: str, kinds: Iterable[str], *, job_ids: JobIds | None = None) -> CeleryJobRunner:
        """Build the runner for a Redis URL (job store and broker on the same Redis)."""
        return cls(RedisJobStore(url), make_celery(url), kinds, job_ids=job_ids)

    def submit(self, kind: str, params: JSONObject, owner: str = "") -> str:
        """Record a queued job for ``owner`` (a session id) and send it to the workers; return its id.

        Raises:
            KeyError: Unknown task name.
            JobQueueError: Redis cannot be reached.
        """
        if kind not in self.kinds:
            raise KeyError(f"Unknown job kind {kind!r}")
        status = JobStatus(job_id=self.job_ids.issue(owner), kind=kind, owner_pid=0)
        try:
            self.store.put(status)
            self.celery.send_task(TASK_NAME, args=[status.job_id, kind, dict(params)], task_id=status.job_id)
        except (CacheError, OSError, *_broker_errors()) as exc:
            raise JobQueueError(
                "The job could not be queued because the job queue (Redis) cannot be reached. "
                "Please try again in a moment."
            ) from exc
        logger.info("Job %s (%s) sent to the Celery workers", status.job_id[:12], kind)
        return status.job_id

    def status(self, job_id: str, owner: str = "") -> JobStatus | None:
        """Return the job's status, or None for an id that is not ``owner``'s.

        A running job without a heartbeat is reported as interrupted.
        """
        if not self.job_ids.owned_by(job_id, owner):
            return None

        def worker_alive(status: JobStatus) -> bool:
            # a queued job waits for a worker; a running one is alive while it beats (3 beats of slack)
            if status.state != JobState.RUNNING or time.time() - status.updated <= 3 * heartbeat_interval():
                return True
            return self.store.alive(job_id)

        return live_status(
            self.store,
            job_id,
            worker_alive,
            "The worker running this job stopped (restart or crash). Please start it again.",
        )

    def cancel(self, job_id: str, owner: str = "") -> bool:
        """Raise ``owner``'s job's cancel flag (a queued job never starts); False for an id that is not theirs."""
        if not self.job_ids.owned_by(job_id, owner):
            return False
        self.store.request_cancel(job_id)
        return True

    def shutdown(self, wait: bool = False) -> None:
        """Close the connections (the workers keep running)."""
        self.store.close()
