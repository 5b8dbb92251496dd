"""Start-up work off the request path: what a server process prepares right after it starts.

Without it the first user pays for everything a process does once: loading the depth network
(seconds, with its runtime), creating the face detector and plotly's lazy imports. A server
(``python -m dashboard``, every gunicorn worker, every Celery worker) calls :meth:`Warmup.start`
once it is built: the default network loads in a thread of its own
(:meth:`~dashboard.services.depth.DepthMaps.preload`) and a second thread warms the rest. A
request that comes earlier simply waits for what it needs (the network loads once per process)
and its job says so (:data:`~dashboard.services.depth.PRELOADING_MESSAGE`).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from dashboard.services.depth import DepthMaps
from dashboard.services.uploads import Uploads

logger = logging.getLogger(__name__)


class Warmup:
    """Background start-up of one server process.

    Args:
        depth_maps: Loads the depth network (:meth:`DepthMaps.preload`).
        uploads: Its face detector is warmed (uploads detect faces).
    """

    def __init__(self, depth_maps: DepthMaps, uploads: Uploads):
        self.depth_maps = depth_maps
        self.uploads = uploads
        self.model: str | None = None
        self.precision = "fp32"
        self._lock = threading.Lock()
        self._started = False
        self._rest_seconds: float | None = None

    def start(self, model: str | None, *, precision: str = "fp32", figures: bool = True) -> list[threading.Thread]:
        """Start the background work (once per process; later calls do nothing).

        Args:
            model: The depth network to load (None: none, e.g. a web worker of a scale-out
                deployment, whose jobs run on Celery workers).
            precision: The precision to load it for (the pickers' default).
            figures: Also warm plotly's figure code (web servers; a Celery worker draws nothing).

        Returns:
            The threads started (empty when started before).
        """
        with self._lock:
            if self._started:
                return []
            self._started = True
            self.model = model
            self.precision = precision
        threads = []
        if model is not None:
            preload = self.depth_maps.preload(model, precision)
            if preload is not None:
                threads.append(preload)
        rest = threading.Thread(target=self._warm_rest, args=(figures,), name="face3d-warmup", daemon=True)
        rest.start()
        threads.append(rest)
        return threads

    def _warm_rest(self, figures: bool) -> None:
        started = time.perf_counter()
        try:
            from face3d_core.faces import detect_faces

            # OpenCV's DNN module and the detector file, read once before the first upload
            detect_faces(np.zeros((64, 64, 3), np.uint8), model_path=self.uploads.detector_path)
        except Exception as exc:  # noqa: BLE001 - no detector here: uploads report it themselves
            logger.info("Face detector not warmed up: %s", exc)
        if figures:
            from face3d_core import figures as plotly_figures

            plotly_figures.warm_up()
        self._rest_seconds = round(time.perf_counter() - started, 3)
        logger.info("Face detector and figures warmed up in %.2f s", self._rest_seconds)

    def status(self) -> dict:
        """What the background start-up has done: ``{"depth_model": ... or None}``.

        ``depth_model`` is ``{"model", "precision", "state", "seconds"}``.
        ``state`` is ``loading``, ``ready`` or ``failed``; ``depth_model`` is None when this process
        loads no network at start.
        """
        preload = self.depth_maps.preload_state(self.model, self.precision) if self.model else None
        return {"depth_model": preload.to_dict() if preload is not None else None}
