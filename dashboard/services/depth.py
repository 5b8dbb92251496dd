"""Depth maps: the expensive step, computed once per (photo, model, face) and shared by key.

:meth:`DepthMaps.compute` goes through the result store's one compute-once path
(:meth:`~face3d_core.cache.store.ResultStore.get_or_compute`): concurrent requests for the
same :class:`~face3d_core.pipeline.DepthRef` run the network once (per process on disk, across
workers on Redis), and a memory tier in front serves hot depth maps without a store read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dashboard.services.memory import MemoryLRU
from dashboard.services.uploads import Uploads
from face3d_core.cache import ResultStore, make_key
from face3d_core.pipeline import (
    WORK_MAX_SIDE,
    DepthRef,
    FaceDepth,
    LoadableDepthPredictor,
    TaskProgress,
    compute_face_depth,
    no_progress,
)

logger = logging.getLogger(__name__)

#: ``model name -> estimator``; one loaded network per process by default.
EstimatorFactory = Callable[[str], LoadableDepthPredictor]


def process_estimator(model: str) -> LoadableDepthPredictor:
    """The process-wide estimator of a model (torch is imported on first use only)."""
    from face3d_core.models.estimator import get_estimator

    return get_estimator(model)


class DepthMaps:
    """Cached depth maps of uploaded photos.

    Args:
        store: The result store.
        uploads: Where the photos are.
        margin: Crop margin around the face (fraction of the face box on each side).
        estimator_factory: ``model name -> estimator``.
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

    def key(self, ref: DepthRef) -> str:
        """Cache key of a face's depth map."""
        params = {"face": ref.face, "margin": self.margin, "max_side": self.max_side}
        return make_key("depth", ref.sha, model=ref.model, params=params)

    def cached(self, ref: DepthRef) -> FaceDepth | None:
        """Return the cached depth map or None (never runs the network)."""
        key = self.key(ref)
        value = self.memory.get(key)
        if value is None:
            value = self.store.get(key)
            if not isinstance(value, FaceDepth):
                return None
            self.memory.put(key, value)
        return value

    def compute(self, ref: DepthRef, progress: TaskProgress | None = None) -> FaceDepth:
        """Return the depth map of one face, from the cache or by running the network once.

        Raises:
            Face3DError: Missing photo or weights, no such face ...
            CacheError: The result cannot be stored (other workers read it by key).
        """
        key = self.key(ref)
        hot = self.memory.get(key)
        if hot is not None:
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
        estimator = self.estimator_factory(ref.model)
        if not estimator.loaded:
            report(0.2, "Loading the depth model (first time only)...")

            def download_progress(done: int, total: int | None) -> None:
                if total:
                    report(0.2 + 0.2 * done / total, f"Downloading the model weights: {100 * done // total}%")

            estimator.load(progress=download_progress)
        report(0.45, "Estimating depth...")
        result = compute_face_depth(
            image_rgb,
            model_name=ref.model,
            face_index=ref.face,
            margin=self.margin,
            faces=meta.faces,
            estimator=estimator,
            max_side=self.max_side,
        )
        return result
