"""The Celery worker of face3d: runs the dashboard's jobs (depth network, comparisons).

Start one per inference machine (``FACE3D_REDIS_URL`` must point at the shared Redis)::

    FACE3D_REDIS_URL=redis://10.0.0.5:6379/0 celery -A dashboard.celery_app worker --concurrency 1

Each worker process builds one :class:`~dashboard.services.Face3DService` with the shared
:class:`~face3d_core.cache.redis.RedisResultCache` and loads each depth network once
(:func:`face3d_core.models.estimator.get_estimator`); every later job in that process reuses it.
A pool process starts loading the default network in the background as soon as it starts
(``worker_process_init``, prefork pool), so its first job does not wait for it. Nothing is loaded
in the parent process before the pool forks, so CUDA is initialised only in the child that uses
it. This module never imports Dash.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

import numpy as np
from celery.signals import worker_process_init

from dashboard.jobs import Heartbeat, JobState, JobStatus, JSONObject, execute_job
from dashboard.jobs_celery import TASK_NAME, RedisJobStore, make_celery
from face3d_core.pipeline import LoadableDepthPredictor
from face3d_core.weights import ProgressFn as DownloadProgressFn

if TYPE_CHECKING:  # the service is built after the fork (see worker_state)
    from dashboard.services import Face3DService
from face3d_core.config import get_settings
from face3d_core.errors import ConfigError

logger = logging.getLogger(__name__)


def _redis_url() -> str:
    url = get_settings().redis_url
    if not url:
        raise ConfigError(
            "FACE3D_REDIS_URL is not set: the face3d Celery worker needs the Redis URL shared with the "
            "web workers, e.g. FACE3D_REDIS_URL=redis://127.0.0.1:6379/0",
            variable="FACE3D_REDIS_URL",
        )
    return url


#: The Celery app (``celery -A dashboard.celery_app worker``).
app = make_celery(_redis_url())

_state_lock = threading.Lock()
_service: Face3DService | None = None
_store: RedisJobStore | None = None
#: Depth networks loaded by this process: model name -> how many times (1 unless something is wrong).
MODEL_LOADS: dict[str, int] = {}


class _LoadLoggingEstimator:
    """Wraps the process's estimator to log (and count) the one time its network is loaded."""

    def __init__(self, inner: LoadableDepthPredictor, model: str):
        self._inner = inner
        self._model = model

    @property
    def loaded(self) -> bool:
        return bool(self._inner.loaded)

    def load(self, progress: DownloadProgressFn | None = None) -> object:
        with _state_lock:
            was_loaded = self._inner.loaded
            started = time.perf_counter()
            network = self._inner.load(progress=progress)
            if not was_loaded:
                MODEL_LOADS[self._model] = MODEL_LOADS.get(self._model, 0) + 1
                logger.info(
                    "face3d worker process %d loaded depth model %s in %.1f s (load #%d in this process)",
                    os.getpid(),
                    self._model,
                    time.perf_counter() - started,
                    MODEL_LOADS[self._model],
                )
        return network

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        return self._inner.predict(image_rgb)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def _worker_estimator(model: str, precision: str = "fp32") -> LoadableDepthPredictor:
    from face3d_core.models.estimator import get_estimator

    return _LoadLoggingEstimator(get_estimator(model, precision=precision), model)


def worker_state() -> tuple[Face3DService, RedisJobStore]:
    """Return this process's service and job store (built on first use, after the fork)."""
    global _service, _store
    with _state_lock:
        if _service is None:
            from dashboard.services import Face3DService
            from face3d_core.cache.redis import RedisResultCache

            url = _redis_url()
            _service = Face3DService(RedisResultCache(url), estimator_factory=_worker_estimator)
            _store = RedisJobStore(url)
            logger.info("face3d worker process %d ready (shared cache in Redis)", os.getpid())
        assert _store is not None
        return _service, _store


def _warm_up() -> None:
    from dashboard.services.model_status import precision_choices_here
    from face3d_core.models.registry import DEFAULT_MODEL

    try:
        service, _ = worker_state()
        service.warmup.start(DEFAULT_MODEL, precision=precision_choices_here().default, figures=False)
    except Exception:  # noqa: BLE001 - the first job builds the service and reports any problem itself
        logger.exception("face3d worker process %d could not start its warm-up", os.getpid())


@worker_process_init.connect
def warm_up_worker_process(**_kwargs: object) -> None:
    """Start loading the default depth network in this new pool process, in the background."""
    threading.Thread(target=_warm_up, name="face3d-worker-warmup", daemon=True).start()


@app.task(name=TASK_NAME, ignore_result=True)
def run_job(job_id: str, kind: str, params: JSONObject) -> str:
    """Run one dashboard job (``kind`` is a :meth:`Face3DService.tasks` name); return its final state."""
    service, store = worker_state()
    status = store.get(job_id) or JobStatus(job_id=job_id, kind=kind)
    if status.state.finished:
        return status.state.value
    status.owner_pid = os.getpid()
    task = service.tasks().get(kind)
    if task is None:
        status.state = JobState.FAILED
        status.error_title = "Something went wrong"
        status.error_message = f"This server does not know the job {kind!r}. Please reload the page."
        store.put(status)
        return status.state.value
    with Heartbeat(store, job_id):
        final = execute_job(store, status, task, params)
    return final.state.value
