"""3D models: the cheap step, rebuilt from a cached depth map for each set of slider values.

Reconstructions live in this process's memory tier (:class:`MemoryLRU`): a slider moved back
is served at once, and a new value costs one reconstruction (tens of ms), never the network.
A view that must stay light gets a coarser mesh derived from that same reconstruction
(:func:`face3d_core.coarsen.coarser_mesh`), so each view reconstructs once.

Click to measure needs the mesh's edge graph (:func:`face3d_core.geodesic.mesh_graph`, tens
of milliseconds for a display-density face, 0.1 s at full density): it is built in a
background thread as soon as a model is built, so the first click does not wait for it. The
graph of a model larger than :data:`GEODESIC_MAX_TRIANGLES` is built on a coarser grid of the
same surface (:meth:`Models3D.graph_mesh`): a graph costs about 1 KB per triangle while it is
built (1.7 GB and 7 s for the 1.9 M triangles of a capped full-density model), and the path is
refined on the model's own surface anyway.
Measurements (:func:`face3d_core.measure.measure_face`) are kept in memory next to their model.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from dashboard.services.depth import DepthMaps
from dashboard.services.errors import DepthMissingError, MeasureError
from dashboard.services.heavy import HEAVY_POINTS, HeavyWork
from dashboard.services.memory import MemoryLRU
from face3d_core.cache import make_key
from face3d_core.coarsen import coarser_mesh
from face3d_core.geodesic import SurfacePath, mesh_graph, surface_distance
from face3d_core.measure import FaceMeasurements, measure_face
from face3d_core.mesh import Mesh
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import FaceModel3D, ReconstructionParams, reconstruct_face

logger = logging.getLogger(__name__)

#: Most triangles the click-to-measure graph is built on (see the module docstring).
GEODESIC_MAX_TRIANGLES = 400_000

_GRAPH_BUILDER: ThreadPoolExecutor | None = None
_GRAPH_BUILDER_LOCK = threading.Lock()


def _graph_builder() -> ThreadPoolExecutor:
    """One background thread per process that builds mesh graphs (started on first use)."""
    global _GRAPH_BUILDER
    with _GRAPH_BUILDER_LOCK:
        if _GRAPH_BUILDER is None:
            _GRAPH_BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="face3d-mesh-graph")
        return _GRAPH_BUILDER


def is_heavy(params: ReconstructionParams) -> bool:
    """True for a reconstruction of many points (its budget from :data:`~dashboard.services.heavy.HEAVY_POINTS` up)."""
    return params.max_points is None or params.max_points >= HEAVY_POINTS


class Models3D:
    """Reconstructed faces per (depth map, parameters), in memory.

    Args:
        depth: The cached depth maps.
        memory: The memory tier for reconstructions and display meshes.
        heavy: The turnstile a reconstruction of many points waits at (full density, reliefs).
    """

    def __init__(
        self,
        depth: DepthMaps,
        memory: MemoryLRU | None = None,
        *,
        precompute_graphs: bool = True,
        heavy: HeavyWork | None = None,
    ):
        self.depth = depth
        self.heavy = heavy if heavy is not None else HeavyWork()
        self.memory = memory if memory is not None else MemoryLRU(max_items=64, max_bytes=192 * 1024 * 1024)
        self.precompute_graphs = precompute_graphs
        self._graph_jobs: dict[str, Future] = {}
        self._graph_lock = threading.Lock()

    def key(self, ref: DepthRef, params: ReconstructionParams) -> str:
        """Cache key of a reconstruction for one parameter set."""
        return make_key(
            "model3d",
            ref.sha,
            model=ref.model_variant,
            params={"face": ref.face_index, "margin": self.depth.margin, "recon": params},
        )

    def model(self, ref: DepthRef, params: ReconstructionParams) -> FaceModel3D:
        """Return the :class:`FaceModel3D` for these parameters (never runs the network).

        Raises:
            DepthMissingError: The depth map is not in the cache (generate it first).
        """
        key = self.key(ref, params)

        def build() -> FaceModel3D:
            face_depth = self.depth.cached(ref)
            if face_depth is None:
                raise DepthMissingError("The depth map of this face is not ready. Click Generate 3D model first.")
            built = reconstruct_face(face_depth, params)
            if self.precompute_graphs:
                self._prepare_graph(key, built)
            return built

        cached = self.memory.get(key)
        if isinstance(cached, FaceModel3D):
            return cached
        if is_heavy(params):  # the turn first, then the key's lock (never the other way round)
            with self.heavy.turn("A 3D model of many points"):
                return self.memory.get_or_compute(key, build)
        return self.memory.get_or_compute(key, build)

    def _graph_mesh_of(self, key: str, face_model: FaceModel3D) -> Mesh | None:
        """The mesh clicks are measured on: the model's own, or a coarser grid of it beyond the bound."""
        mesh = face_model.mesh
        if mesh is None or mesh.n_faces <= GEODESIC_MAX_TRIANGLES:
            return mesh
        return self.memory.get_or_compute(f"{key}/graph-mesh", lambda: coarser_mesh(face_model, GEODESIC_MAX_TRIANGLES))

    def graph_mesh(self, ref: DepthRef, params: ReconstructionParams) -> Mesh | None:
        """The mesh :meth:`surface_path` searches on (at most :data:`GEODESIC_MAX_TRIANGLES` triangles).

        Raises:
            DepthMissingError: The depth map is not in the cache.
        """
        return self._graph_mesh_of(self.key(ref, params), self.model(ref, params))

    def _prepare_graph(self, key: str, face_model: FaceModel3D) -> None:
        """Start building the mesh's edge graph in the background (for the first click)."""
        if face_model.mesh is None or face_model.mesh.n_faces == 0:
            return

        def build_graph() -> None:
            mesh = self._graph_mesh_of(key, face_model)
            if mesh is not None:
                mesh_graph(mesh)

        with self._graph_lock:
            for done in [k for k, job in self._graph_jobs.items() if job.done()]:
                del self._graph_jobs[done]
            self._graph_jobs[key] = _graph_builder().submit(build_graph)

    def wait_for_graph(self, key: str) -> None:
        """Wait until the background build of the mesh graph of model ``key`` (if any) is done."""
        with self._graph_lock:
            job = self._graph_jobs.get(key)
        if job is not None:
            try:
                job.result(timeout=60)
            except Exception:  # the click then builds the graph itself
                logger.exception("Building a mesh graph in the background failed")

    def surface_path(
        self, ref: DepthRef, params: ReconstructionParams, start_xyz: np.ndarray, end_xyz: np.ndarray
    ) -> SurfacePath:
        """Distance between two clicked points of the model, straight and along the surface.

        Raises:
            DepthMissingError: The depth map is not in the cache.
            MeasureError: The model has no surface there, or the points are on separate pieces.
        """
        face_model = self.model(ref, params)
        key = self.key(ref, params)
        self.wait_for_graph(key)
        try:
            return surface_distance(face_model, start_xyz, end_xyz, mesh=self._graph_mesh_of(key, face_model))
        except ValueError as exc:
            raise MeasureError(
                f"These two points cannot be measured between: {exc}. Pick two points on the face."
            ) from exc

    def measurements(self, ref: DepthRef, params: ReconstructionParams, fov_source: str) -> FaceMeasurements:
        """The face's measurements (:func:`face3d_core.measure.measure_face`), kept in memory.

        Args:
            ref: The depth map.
            params: The reconstruction parameters (the model measured).
            fov_source: Where ``params.fov_deg`` came from (``"exif_35mm"``, ``"default"`` ...).

        Raises:
            DepthMissingError: The depth map is not in the cache.
            MeasureError: The face cannot be measured (no face, or its landmarks are off the surface).
        """
        face_model = self.model(ref, params)

        def measure() -> FaceMeasurements:
            try:
                return measure_face(face_model, fov_source=fov_source)
            except ValueError as exc:
                raise MeasureError(f"This face could not be measured: {exc}.") from exc

        return self.memory.get_or_compute(f"{self.key(ref, params)}/measure-{fov_source}", measure)

    def display_mesh(self, ref: DepthRef, params: ReconstructionParams, max_triangles: int) -> Mesh | None:
        """The mesh of :meth:`model` with at most ``max_triangles`` triangles, for a light view.

        The model's own mesh when it is small enough; otherwise a coarser grid of the same
        refined surface (kept in memory too, so revisiting a slider value is instant).

        Raises:
            DepthMissingError: The depth map is not in the cache.
        """
        face_model = self.model(ref, params)
        if face_model.mesh is None or face_model.mesh.n_faces <= max_triangles:
            return face_model.mesh
        key = f"{self.key(ref, params)}/display-mesh-{int(max_triangles)}"
        return self.memory.get_or_compute(key, lambda: coarser_mesh(face_model, max_triangles))
