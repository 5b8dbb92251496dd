"""Loose-value calls on a :class:`~dashboard.services.Face3DService` for tests, benchmarks and scripts.

The page goes through the callbacks, which check the session once (``service.access``) and pass
a :class:`~face3d_core.pipeline.DepthRef` to the composers. Tests and scripts often start from
plain values (a photo's bytes, its hash, a model name, a face index); these helpers turn them
into the composers' calls, in the server's own session (``""``) unless told otherwise.
"""

from __future__ import annotations

import numpy as np

from dashboard.services import Face3DService, UploadMeta
from face3d_core.errors import Face3DError
from face3d_core.pipeline import DepthRef, FaceDepth, TaskProgress


def ingest_upload(service: Face3DService, data: bytes, name: str, session: str = "") -> UploadMeta:
    """Store an upload for ``session``; see :meth:`dashboard.services.access.Access.upload`."""
    return service.access.upload(session, data, name)


def upload_meta(service: Face3DService, sha: str, session: str = "") -> UploadMeta | None:
    """The photo as ``session`` sees it, or None; see :meth:`dashboard.services.access.Access.meta`."""
    return service.access.meta(session, sha)


def image(service: Face3DService, sha: str) -> np.ndarray:
    """The decoded ``(H, W, 3) uint8`` RGB photo (see :meth:`dashboard.services.uploads.Uploads.photo`)."""
    return service.uploads.photo(sha)


def depth_key(service: Face3DService, sha: str, model: str, face: int | None, precision: str = "fp32") -> str:
    """Cache key of a face's depth map (see :meth:`dashboard.services.depth.DepthMaps.key`)."""
    return service.depth_maps.key(DepthRef(sha, model, face, precision))


def cached_depth(
    service: Face3DService, sha: str, model: str, face: int | None, precision: str = "fp32"
) -> FaceDepth | None:
    """A cached depth map, or None (also for values that name no depth map)."""
    try:
        ref = DepthRef(sha, model, face, precision)
    except (ValueError, Face3DError):
        return None
    return service.depth_maps.cached(ref)


def compute_depth(
    service: Face3DService,
    sha: str,
    model: str,
    face: int | None,
    progress: TaskProgress | None = None,
    precision: str = "fp32",
) -> FaceDepth:
    """The depth map of one face, from the cache or by running the network (see :meth:`DepthMaps.compute`)."""
    return service.depth_maps.compute(DepthRef(sha, model, face, precision), progress)
