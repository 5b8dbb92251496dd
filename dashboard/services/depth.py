"""Depth maps: the expensive step, computed once per (photo, model, face) and shared by key.

:meth:`DepthMaps.compute` goes through the result store's one compute-once path
(:meth:`~face3d_core.cache.store.ResultStore.get_or_compute`): concurrent requests for the
same :class:`~face3d_core.pipeline.DepthRef` run the network once (per process on disk, across
workers on Redis), and a memory tier in front serves hot depth maps without a store read.

:meth:`DepthMaps.preload` loads a network in a background thread when the server starts (see
:mod:`~dashboard.services.warmup`), so the first click does not pay for it; a job that comes
earlier waits for that load and says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dashboard.services.memory import MemoryLRU
from dashboard.services.uploads import Uploads
from face3d_core.cache import ResultStore, make_key
from face3d_core.errors import Face3DError
from face3d_core.pipeline import (
    WORK_MAX_SIDE,
    DepthRef,
    FaceDepth,
    LoadableDepthPredictor,
    TaskProgress,
    compute_face_depth,
    no_progress,
    runtime_description,
)

logger = logging.getLogger(__name__)

#: ``(model name, precision) -> estimator``; one loaded network per model and precision per process
#: by default. The precision is one of :data:`face3d_core.pipeline.PRECISIONS`.
EstimatorFactory = Callable[[str, str], LoadableDepthPredictor]

#: What a job says while it waits for the network the server began loading at its start.
PRELOADING_MESSAGE = "Loading the depth model (started with the server)..."
#: What a job says while it loads a network itself.
LOADING_MESSAGE = "Loading the depth model (first time only)..."


@dataclass
class PreloadState:
    """A network loaded in the background (:meth:`DepthMaps.preload`).

    Attributes:
        model: Registry name.
        precision: The precision it was loaded for.
        state: ``loading``, ``ready`` or ``failed``.
        seconds: How long the load took (None while loading).
        error: Why it failed, for the log (the first job reports the error to the user itself).
    """

    model: str
    precision: str = "fp32"
    state: str = "loading"
    seconds: float | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        """``{"model", "precision", "state", "seconds"}`` (for ``/face3d/warmup``; no error text, no paths)."""
        return {"model": self.model, "precision": self.precision, "state": self.state, "seconds": self.seconds}


def process_estimator(model: str, precision: str = "fp32") -> LoadableDepthPredictor:
    """The process-wide estimator of a model in a precision (torch is imported on first use only).

    Where the precision is not native here (bf16 on a CPU without it), the estimator runs fp32
    and says so in its runtime report (shown in the depth map's caption).
    """
    from face3d_core.models.estimator import get_estimator

    return get_estimator(model, precision=precision)


class DepthMaps:
    """Cached depth maps of uploaded photos.

    Args:
        store: The result store.
        uploads: Where the photos are.
        margin: Crop margin around the face (fraction of the face box on each side).
        estimator_factory: ``(model name, precision) -> estimator``.
        memory: The memory tier for hot depth maps.
    """

    def __init__(
        self,
        store: ResultStore,
        uploads: Uploads,
        *,
        margin: float,
        estimator_factory: EstimatorFactory = process_estimator,
        memory: MemoryLRU | None = None,
    ):
        self.store = store
        self.uploads = uploads
        self.margin = float(margin)
        self.estimator_factory = estimator_factory
        self.memory = memory if memory is not None else MemoryLRU(max_items=16, max_bytes=128 * 1024 * 1024)
        #: Longest side of the working copy the network runs on (part of the key).
        self.max_side = WORK_MAX_SIDE
        self._preloads: dict[tuple[str, str], PreloadState] = {}
        self._preload_lock = threading.Lock()

    def preload(self, model: str, precision: str = "fp32") -> threading.Thread | None:
        """Load ``model``'s network (in ``precision``) in a background thread now, once per process.

        A job that needs the network meanwhile waits for this load (the estimator loads once)
        and shows :data:`PRELOADING_MESSAGE`. A failure is only logged: the first job reports it.

        Returns:
            The loading thread, or None when this model was preloaded before.
        """
        with self._preload_lock:
            if (model, precision) in self._preloads:
                return None
            state = self._preloads[(model, precision)] = PreloadState(model, precision)
        thread = threading.Thread(target=self._preload, args=(state,), name=f"face3d-preload-{model}", daemon=True)
        thread.start()
        return thread

    def _preload(self, state: PreloadState) -> None:
        started = time.perf_counter()
        logger.info("Loading the depth model %s in the background (started with the server)", state.model)
        try:
            estimator = self.estimator_factory(state.model, state.precision)
            estimator.load()
            prepare = getattr(estimator, "prepare", None)  # compiled runtimes: the usual input sizes
            if callable(prepare):
                prepare()
        except Exception as exc:  # noqa: BLE001 - never fatal here: the first job reports it to its user
            state.error = exc.user_message if isinstance(exc, Face3DError) else f"{type(exc).__name__}: {exc}"
            state.state = "failed"
            logger.warning("Could not load the depth model %s in the background: %s", state.model, state.error)
        else:
            state.state = "ready"
            logger.info("Depth model %s loaded in the background in %.2f s", state.model, time.perf_counter() - started)
        state.seconds = round(time.perf_counter() - started, 3)

    def preload_state(self, model: str, precision: str = "fp32") -> PreloadState | None:
        """The background load of ``model`` in ``precision`` (None when none was started in this process)."""
        return self._preloads.get((model, precision))

    def last_runtime(self, model: str, precision: str) -> str | None:
        """What ran ``model`` in ``precision`` last in this process, with its deviation from fp32.

        None before the first depth map of that model here, or where the estimator does not say.
        """
        return runtime_description(self.estimator_factory(model, precision))

    def key(self, ref: DepthRef) -> str:
        """Cache key of a face's depth map (fp32 maps keep the keys they had before the fast mode)."""
        params = {"face": ref.face_index, "margin": self.margin, "max_side": self.max_side}
        return make_key("depth", ref.sha, model=ref.model_variant, params=params)

    def cached(self, ref: DepthRef) -> FaceDepth | None:
        """Return the cached depth map or None (never runs the network)."""
        key = self.key(ref)
        value = self.memory.get(key)
        if not isinstance(value, FaceDepth):
            value = self.store.get(key)
            if not isinstance(value, FaceDepth):
                return None
            self.memory.put(key, value)
        return value

    def is_cached(self, ref: DepthRef) -> bool:
        """Whether the depth map is computed and stored (an existence check: nothing is read)."""
        key = self.key(ref)
        return self.memory.get(key) is not None or key in self.store

    def compute(self, ref: DepthRef, progress: TaskProgress | None = None) -> FaceDepth:
        """Return the depth map of one face, from the cache or by running the network once.

        Raises:
            Face3DError: Missing photo or weights, no such face ...
            CacheError: The result cannot be stored (other workers read it by key).
        """
        key = self.key(ref)
        hot = self.memory.get(key)
        if isinstance(hot, FaceDepth):
            return hot
        report = progress or no_progress
        computed = []

        def run() -> FaceDepth:
            computed.append(True)
            return self._run_network(ref, report)

        result = self.store.get_or_compute(key, run, must_store=True)
        self.memory.put(key, result)
        if computed:
            # after storing: a cancel noticed here (the report checks for it) keeps the finished work
            report(0.97, "Saved.")
        return result

    def _run_network(self, ref: DepthRef, report: TaskProgress) -> FaceDepth:
        report(0.1, "Reading the photo...")
        meta = self.uploads.require_meta(ref.sha)
        image_rgb = self.uploads.photo(ref.sha)  # the one decode of this job
        estimator = self.estimator_factory(ref.model, ref.precision)
        if not estimator.loaded:
            preload = self.preload_state(ref.model, ref.precision)
            report(0.2, PRELOADING_MESSAGE if preload is not None and preload.state == "loading" else LOADING_MESSAGE)

            def download_progress(done: int, total: int | None) -> None:
                if total:
                    report(0.2 + 0.2 * done / total, f"Downloading the model weights: {100 * done // total}%")

            estimator.load(progress=download_progress)
        report(0.45, "Estimating depth...")
        result = compute_face_depth(
            image_rgb,
            model_name=ref.model,
            face_index=ref.face_index,
            margin=self.margin,
            faces=meta.faces,
            estimator=estimator,
            max_side=self.max_side,
        )
        return result
