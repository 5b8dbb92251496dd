"""Comparisons: 2 to 6 faces aligned and compared by :func:`face3d_core.compare.compare_faces`, cached by key.

The core does the work; this composer names the faces, supplies the cached depth maps (the
network runs only for faces without one) and each photo's field of view (the faces are put in
their own 3D frames before they are compared), and keeps the result in the store under a key
of the ordered photos, faces, model and fields of view, which is all the browser holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dashboard.services.camera import Cameras
from dashboard.services.depth import DepthMaps
from dashboard.services.uploads import Uploads
from face3d_core.cache import ResultStore, combine_hashes, make_key
from face3d_core.compare import (
    COMPARE_MODEL_POINTS,
    DEFAULT_SIZE,
    ComparisonError,
    ComparisonResult,
    check_comparable,
    compare_faces,
)
from face3d_core.pipeline import DepthRef, FaceDepth, TaskProgress
from face3d_core.reconstruct import FaceModel3D, ReconstructionParams, reconstruct_face

#: A key of :meth:`Comparisons.key` (the browser holds it; anything else is refused unread).
_COMPARE_KEY_RE = re.compile(r"^face3d/v\d{1,4}/compare/[0-9a-f]{64}/[A-Za-z0-9_.-]{1,64}/[0-9a-f]{20}$")


class Comparisons:
    """Cached comparisons of uploaded faces.

    Args:
        store: The result store.
        uploads: Where the photos (and their names) are.
        depth: The cached depth maps.
        cameras: Each photo's field of view (default: the default field of view for all).
    """

    def __init__(self, store: ResultStore, uploads: Uploads, depth: DepthMaps, cameras: Cameras | None = None):
        self.store = store
        self.uploads = uploads
        self.depth = depth
        self.cameras = cameras

    def _fov_deg(self, ref: DepthRef) -> float:
        return float(self.cameras.fov(ref.sha).fov_deg) if self.cameras is not None else ReconstructionParams().fov_deg

    def model_of(self, ref: DepthRef, face_depth: FaceDepth) -> FaceModel3D:
        """The light 3D face a comparison puts in its own frame (the photo's field of view)."""
        params = ReconstructionParams(
            fov_deg=self._fov_deg(ref), representation="points", max_points=COMPARE_MODEL_POINTS
        )
        return reconstruct_face(face_depth, params)

    def key(self, refs: Sequence[DepthRef]) -> str:
        """Cache key of a comparison of ``refs`` (in order).

        Raises:
            ComparisonError: Not 2 to 6 faces of one model and precision.
        """
        check_comparable(refs)
        return make_key(
            "compare",
            combine_hashes([ref.sha for ref in refs]),
            model=refs[0].model_variant,
            params={
                "faces": [ref.face_index for ref in refs],
                "size": DEFAULT_SIZE,
                "margin": self.depth.margin,
                "max_side": self.depth.max_side,
                "align": "face-frame-3d",
                "fov": [round(self._fov_deg(ref), 3) for ref in refs],
            },
        )

    def check_alignable(self, refs: Sequence[DepthRef], names: Sequence[str]) -> None:
        """Refuse at once (before any network runs) faces that cannot be aligned: photos used whole.

        Args:
            refs: The faces to compare.
            names: The requesting session's labels of the faces (for the message).

        Raises:
            ComparisonError: A photo has no face (none found, or face detection unavailable).
            PhotoMissingError: A photo is no longer stored.
        """
        for ref, name in zip(refs, names, strict=True):
            if ref.face_index is not None:
                continue
            meta = self.uploads.require_meta(ref.sha)
            if meta.detector_unavailable is not None:
                raise ComparisonError(
                    f"Faces are aligned by their eyes, nose and mouth, but face detection is unavailable "
                    f"on this server ({meta.detector_unavailable}). Ask the server's administrator to "
                    "install the face detector."
                )
            raise ComparisonError(
                f"No face was found in {name}, so it cannot be aligned with the others. Remove it from the comparison."
            )

    def cached(self, key: object) -> ComparisonResult | None:
        """Return a cached comparison by key (None when absent, or for anything but a comparison key)."""
        value = self.store.get(key) if isinstance(key, str) and _COMPARE_KEY_RE.match(key) else None
        return value if isinstance(value, ComparisonResult) else None

    def compute(
        self, refs: Sequence[DepthRef], names: Sequence[str] | None = None, progress: TaskProgress | None = None
    ) -> tuple[str, ComparisonResult]:
        """Align and compare the faces; return ``(cache key, result)``.

        Depth maps come from the cache where present; the others are computed (network). The
        stored result is shared by every session that holds these photos; pages show it with
        their own names (:meth:`~dashboard.services.access.Access.comparison`).

        Args:
            refs: The faces, in order.
            names: The requesting session's labels of the faces (for messages); default
                ``face 1``, ``face 2`` ...
            progress: Progress of the whole comparison.

        Raises:
            ComparisonError: Not 2 to 6 faces, or a photo without a face.
            PhotoMissingError: A photo is no longer stored.
        """
        refs = list(refs)
        key = self.key(refs)
        cached = self.cached(key)
        if cached is not None:
            return key, cached
        names = list(names) if names is not None else [f"face {index + 1}" for index in range(len(refs))]
        result = compare_faces(refs, names, self.depth.compute, progress, model_of=self.model_of)
        self.store.set(key, result)
        return key, result
