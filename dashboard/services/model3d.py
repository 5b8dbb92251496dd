"""3D models: the cheap step, rebuilt from a cached depth map for each set of slider values.

Reconstructions live in this process's memory tier (:class:`MemoryLRU`): a slider moved back
is served at once, and a new value costs one reconstruction (tens of ms), never the network.
A view that must stay light gets a coarser mesh derived from that same reconstruction
(:func:`face3d_core.coarsen.coarser_mesh`), so each view reconstructs once.
"""

from __future__ import annotations

from dashboard.services.depth import DepthMaps
from dashboard.services.errors import DepthMissingError
from dashboard.services.memory import MemoryLRU
from face3d_core.cache import make_key
from face3d_core.coarsen import coarser_mesh
from face3d_core.mesh import Mesh
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import FaceModel3D, ReconstructionParams, reconstruct_face


class Models3D:
    """Reconstructed faces per (depth map, parameters), in memory.

    Args:
        depth: The cached depth maps.
        memory: The memory tier for reconstructions and display meshes.
    """

    def __init__(self, depth: DepthMaps, memory: MemoryLRU | None = None):
        self.depth = depth
        self.memory = memory if memory is not None else MemoryLRU(max_items=64, max_bytes=192 * 1024 * 1024)

    def key(self, ref: DepthRef, params: ReconstructionParams) -> str:
        """Cache key of a reconstruction for one parameter set."""
        return make_key(
            "model3d", ref.sha, model=ref.model, params={"face": ref.face, "margin": self.depth.margin, "recon": params}
        )

    def model(self, ref: DepthRef, params: ReconstructionParams) -> FaceModel3D:
        """Return the :class:`FaceModel3D` for these parameters (never runs the network).

        Raises:
            DepthMissingError: The depth map is not in the cache (generate it first).
        """

        def build() -> FaceModel3D:
            face_depth = self.depth.cached(ref)
            if face_depth is None:
                raise DepthMissingError("The depth map of this face is not ready. Click Generate 3D model first.")
            return reconstruct_face(face_depth, params)

        return self.memory.get_or_compute(self.key(ref, params), build)

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
