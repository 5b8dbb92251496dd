"""The dashboard's work, without Dash: small composers of :mod:`face3d_core` with the result store.

Callbacks stay thin and call a :class:`Face3DService`, which holds one composer per concern:

* :mod:`~dashboard.services.uploads` (``service.uploads``): a photo is stored once under its
  SHA-256 (original bytes + :class:`UploadMeta` with the faces found and a JPEG thumbnail);
  the browser keeps only the hash;
* :mod:`~dashboard.services.access` (``service.access``): which session uploaded which photo
  under which name (pages see only their own photos, with their own names) and which photos
  are in use (pinned against eviction);
* :mod:`~dashboard.services.depth` (``service.depth_maps``): the expensive step (the depth
  network), computed once per :class:`~face3d_core.pipeline.DepthRef` through the store's
  compute-once path, with a memory tier in front;
* :mod:`~dashboard.services.model3d` (``service.models3d``): the cheap step (reconstruction
  for slider values) in memory, so moving a slider back never reruns anything;
* :mod:`~dashboard.services.comparison` (``service.comparisons``): comparisons of items (a face
  under a model and a precision) by :func:`face3d_core.compare.compare_faces`, cached per
  ordered items; an item whose network's weights are missing is left out, the others run;
* :mod:`~dashboard.services.exports` (``service.exports``): download files (also the
  measurements and the printable relief);
* :mod:`~dashboard.services.downloads` (``service.downloads``): prepared downloads, streamed by a
  session-bound route (never base64 inside a callback's JSON);
* :mod:`~dashboard.services.heavy` (``service.heavy``): at most ``FACE3D_HEAVY_TASKS`` large
  results made at once (full-density 3D, reliefs, reports, large downloads), then memory given
  back; :class:`~dashboard.services.memory.MemoryJanitor` (``service.janitor``) drops large idle
  results from memory;
* :mod:`~dashboard.services.camera` (``service.cameras``): each photo's field of view (EXIF);
* :mod:`~dashboard.services.reports` (``service.reports``): the shared HTML report;
* :mod:`~dashboard.services.model_status`: which depth models have weights here;
* :mod:`~dashboard.services.warmup` (``service.warmup``): the start-up work a server does in
  the background (the default network, the face detector, plotly);
* :mod:`~dashboard.services.live` (``service.live``): live depth of camera frames (bounded per
  session and process, never stored).

Errors users can meet here are in :mod:`~dashboard.services.errors`. Nothing here imports
Dash, so every function is testable with plain values.
"""

from __future__ import annotations

import os

from dashboard.jobs import JobContext, Task
from dashboard.services.access import Access, MembershipStore, MemoryMembershipStore
from dashboard.services.camera import Cameras
from dashboard.services.comparison import Comparisons
from dashboard.services.depth import DepthMaps, EstimatorFactory, process_estimator
from dashboard.services.downloads import Downloads
from dashboard.services.errors import (
    PHOTO_MISSING_MESSAGE,
    DepthMissingError,
    MeasureError,
    PhotoMissingError,
    ServerBusyError,
)
from dashboard.services.exports import Exports, safe_stem
from dashboard.services.heavy import HeavyWork
from dashboard.services.live import LiveLimits, LiveStreams
from dashboard.services.memory import MemoryJanitor, MemoryLRU, approx_nbytes
from dashboard.services.model3d import Models3D
from dashboard.services.model_status import ModelStatus, all_model_status, model_status
from dashboard.services.reports import Reports
from dashboard.services.uploads import MAX_UPLOADS, THUMB_MAX_SIDE, UploadMeta, Uploads, make_thumbnail
from dashboard.services.warmup import Warmup
from face3d_core.cache import ResultStore
from face3d_core.compare import ComparisonItems, ComparisonResult
from face3d_core.config import get_settings
from face3d_core.faces import DEFAULT_MARGIN
from face3d_core.pipeline import DepthRef

__all__ = [
    "MAX_UPLOADS",
    "PHOTO_MISSING_MESSAGE",
    "THUMB_MAX_SIDE",
    "Access",
    "ComparisonResult",
    "DepthMissingError",
    "Face3DService",
    "MeasureError",
    "MemoryLRU",
    "ModelStatus",
    "PhotoMissingError",
    "ServerBusyError",
    "UploadMeta",
    "all_model_status",
    "approx_nbytes",
    "make_thumbnail",
    "model_status",
    "safe_stem",
]


class Face3DService:
    """Uploads, cached depth maps, 3D models, comparisons and downloads for the dashboard.

    Args:
        cache: The result store (shared by all server threads and workers).
        margin: Crop margin around the face (fraction of the face box on each side).
        estimator_factory: ``model name -> estimator`` (``.loaded``, ``.load(progress)``,
            ``.predict(image_rgb)``); default :func:`face3d_core.models.estimator.get_estimator`,
            which keeps one loaded network per process.
        detector_path: YuNet model file (default: the lookup order of :mod:`face3d_core.faces`).
        members: Which session uploaded which photo (default: in this process only; the app
            passes the disk or Redis store shared by its workers).
        in_use_s: How long a photo stays pinned after its last use (default ``FACE3D_IN_USE_S``).
        live_limits: What camera live depth may cost this process (default :class:`LiveLimits`).
        live_off_reason: Why this server offers no live depth (None: it does).
        heavy: The turnstile of heavy work (default: ``FACE3D_HEAVY_TASKS`` at once).
        downloads: Where prepared downloads wait (default: this process's memory; the app passes
            a spool in the cache folder, or the result store in scale-out mode).
    """

    def __init__(
        self,
        cache: ResultStore,
        *,
        margin: float | None = None,
        estimator_factory: EstimatorFactory | None = None,
        detector_path: str | os.PathLike | None = None,
        members: MembershipStore | None = None,
        in_use_s: float | None = None,
        live_limits: LiveLimits | None = None,
        live_off_reason: str | None = None,
        heavy: HeavyWork | None = None,
        downloads: Downloads | None = None,
    ):
        self.cache = cache
        self.margin = float(DEFAULT_MARGIN if margin is None else margin)
        self.uploads = Uploads(cache, detector_path)
        self.access = Access(members or MemoryMembershipStore(), self.uploads, cache, in_use_s=in_use_s)
        self.depth_maps = DepthMaps(
            cache, self.uploads, margin=self.margin, estimator_factory=estimator_factory or process_estimator
        )
        self.heavy = heavy if heavy is not None else HeavyWork(get_settings().heavy_tasks)
        self.models3d = Models3D(self.depth_maps, heavy=self.heavy)
        self.cameras = Cameras(self.uploads)
        self.comparisons = Comparisons(cache, self.uploads, self.depth_maps, self.cameras)
        self.exports = Exports(self.depth_maps, self.models3d, heavy=self.heavy)
        self.reports = Reports(self.depth_maps, self.models3d, heavy=self.heavy)
        self.warmup = Warmup(self.depth_maps, self.uploads)
        self.live = LiveStreams(self.depth_maps, detector_path, limits=live_limits, off_reason=live_off_reason)
        self.downloads = downloads if downloads is not None else Downloads()
        self.janitor = MemoryJanitor([self.depth_maps.memory, self.models3d.memory])

    # -- background tasks ----------------------------------------------------------------

    def tasks(self) -> dict[str, Task]:
        """Task name -> function for the job runner (JSON params in, small JSON result out).

        ``depth``: params are a :meth:`DepthRef.to_dict`; ``compare``: ``{"refs": [DepthRef dicts],
        "names": [the requesting session's names of the items]}``, result
        :meth:`~dashboard.services.comparison.ComparisonRun.to_store`. The caller checked the
        session's access.
        """

        def depth_task(params: dict, job: JobContext) -> dict:
            ref = _job_ref(params)
            self.depth_maps.compute(ref, progress=job.report)
            return ref.to_dict()

        def compare_task(params: dict, job: JobContext) -> dict:
            items = ComparisonItems(tuple(_job_ref(item) for item in params["refs"]))  # the job's boundary
            names = [str(name) for name in params.get("names") or []]
            key = params.get("key") if isinstance(params.get("key"), str) else None  # the caller's, computed once
            return self.comparisons.compute(items, names or None, progress=job.report, key=key).to_store()

        return {"depth": depth_task, "compare": compare_task}


def _job_ref(params: dict) -> DepthRef:
    """The :class:`DepthRef` of a job's parameters (as :meth:`DepthRef.to_dict` wrote them).

    Raises:
        ValueError, UnknownModelError: Parameters that name no depth map.
    """
    return DepthRef(params.get("sha"), params.get("model"), params.get("face"), params.get("precision", "fp32"))
