"""Comparisons: 2 to 6 items aligned and compared by :func:`face3d_core.compare.compare_faces`, cached by key.

An *item* is a face under a depth model in a precision (a :class:`~face3d_core.pipeline.DepthRef`):
several faces under one network, one face under several networks ("which network sees this face
best?"), or a mix.

The core does the work; this composer supplies the cached depth maps (the network runs only
for items without one, each through the depth maps' compute-once path) and each photo's field
of view (the faces are put in their own 3D frames before they are compared), and keeps the
result in the store under a key of the ordered items and fields of view, which is all the
browser holds. An item whose network's weights are missing is left out, with the usual
missing-weights message (:class:`SkippedItem`), and the others are still compared.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dashboard.services.camera import Cameras
from dashboard.services.depth import DepthMaps
from dashboard.services.uploads import Uploads
from face3d_core.cache import ResultStore, combine_hashes, make_key
from face3d_core.compare import (
    COMPARE_MODEL_POINTS,
    DEFAULT_SIZE,
    MIN_FACES,
    ComparisonError,
    ComparisonItems,
    ComparisonResult,
    compare_faces,
)
from face3d_core.errors import Face3DError, UnknownModelError, WeightsUnavailableError
from face3d_core.models.registry import get_spec
from face3d_core.pipeline import DepthRef, FaceDepth, TaskProgress, no_progress
from face3d_core.reconstruct import FaceModel3D, ReconstructionParams, reconstruct_face

logger = logging.getLogger(__name__)

#: A key of :meth:`Comparisons.key` (the browser holds it; anything else is refused unread).
_COMPARE_KEY_RE = re.compile(r"^face3d/v\d{1,4}/compare/[0-9a-f]{64}/[A-Za-z0-9_.-]{1,64}/[0-9a-f]{20}$")
#: The model part of the key of a comparison of several networks.
MIXED_MODELS = "mixed"
#: Share of a comparison's progress spent on the depth maps (the rest: aligning and comparing).
DEPTH_SHARE = 0.85
#: Longest text kept from the browser's copy of a skipped item.
_MAX_TEXT = 400


@dataclass(frozen=True)
class SkippedItem:
    """An item left out of a comparison because its network's weights are missing; the others still ran.

    Attributes:
        name: The item's display name (face and model).
        model: Its depth model (the page offers that model's weights file and download command).
        title: The error's title (``Model weights missing``).
        message: The error's web message (what to do; no server paths).
    """

    name: str
    model: str
    title: str
    message: str

    @classmethod
    def of(cls, name: str, ref: DepthRef, error: Face3DError) -> SkippedItem:
        """The skipped item of ``ref`` (displayed as ``name``) that failed with ``error``."""
        return cls(name, ref.model, error.title, error.web_message)

    def to_dict(self) -> dict[str, str]:
        """JSON form for the page's result store."""
        return {"name": self.name, "model": self.model, "title": self.title, "message": self.message}

    @classmethod
    def from_dict(cls, data: object) -> SkippedItem | None:
        """Parse what the page sends back; None for anything that is not a skipped item of a registered model."""
        if not isinstance(data, Mapping):
            return None
        values = [data.get(k) for k in ("name", "model", "title", "message")]
        if not all(isinstance(v, str) for v in values):
            return None
        try:
            get_spec(values[1])
        except (UnknownModelError, TypeError):
            return None
        return cls(*(v[:_MAX_TEXT] for v in values))


@dataclass(frozen=True)
class ComparisonRun:
    """A finished comparison: its key, the result and the items left out.

    Attributes:
        key: The result's cache key (of the compared items only).
        result: The comparison.
        skipped: Items left out (their network's weights are missing).
    """

    key: str
    result: ComparisonResult
    skipped: tuple[SkippedItem, ...] = ()

    def to_store(self) -> dict[str, object]:
        """What the page's result store holds: ``{"key", "count", "skipped"}`` (small)."""
        return {"key": self.key, "count": len(self.result.names), "skipped": [s.to_dict() for s in self.skipped]}


class Comparisons:
    """Cached comparisons of uploaded faces under one or more depth models.

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

    def key(self, items: ComparisonItems) -> str:
        """Cache key of a comparison of ``items`` (in order; checked when they were built)."""
        refs = items.refs
        variants = [ref.model_variant for ref in refs]
        return make_key(
            "compare",
            combine_hashes([ref.sha for ref in refs]),
            model=variants[0] if len(set(variants)) == 1 else MIXED_MODELS,
            params={
                "faces": [ref.face_index for ref in refs],
                "models": variants,
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
            refs: The items to compare.
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
        self,
        items: ComparisonItems,
        names: Sequence[str] | None = None,
        progress: TaskProgress | None = None,
        *,
        key: str | None = None,
    ) -> ComparisonRun:
        """Align and compare the items; an item whose network's weights are missing is left out.

        Depth maps come from the cache where present; the others are computed (network). The
        stored result is shared by every session that holds these photos; pages show it with
        their own names (:meth:`~dashboard.services.access.Access.comparison`).

        Args:
            items: The items, in order (checked when built).
            names: The requesting session's names of the items (for messages); default
                ``item 1``, ``item 2`` ...
            progress: Progress of the whole comparison.
            key: :meth:`key` of ``items`` where the caller has it already (computed once per
                comparison); a comparison that leaves items out is another comparison, with its own key.

        Raises:
            ComparisonError: A photo without a face.
            WeightsUnavailableError: Fewer than two items left (the first missing network's error).
            PhotoMissingError: A photo is no longer stored.
        """
        refs = list(items.refs)
        names = list(names) if names is not None else [f"item {index + 1}" for index in range(len(refs))]
        report = progress or no_progress
        kept: list[tuple[DepthRef, str]] = []
        skipped: list[SkippedItem] = []
        first_error: WeightsUnavailableError | None = None
        for number, (ref, name) in enumerate(zip(refs, names, strict=True)):

            def sub(fraction: float, message: str, number: int = number, name: str = name) -> None:
                done = DEPTH_SHARE * (number + fraction) / len(refs)
                report(done, f"Item {number + 1} of {len(refs)} ({name}): {message}")

            try:
                self.depth.compute(ref, sub)
            except WeightsUnavailableError as exc:
                logger.info("Comparison item %s left out: %s", name, exc.user_message)
                skipped.append(SkippedItem.of(name, ref, exc))
                first_error = first_error or exc
                continue
            kept.append((ref, name))
        if len(kept) < MIN_FACES:  # the items were at least two: the others were left out
            raise first_error or ComparisonError("Choose at least two items to compare.")
        if skipped:  # fewer items: another comparison (a subset of different items, so its check holds)
            items, key = ComparisonItems(tuple(ref for ref, _ in kept)), None
        key = key or self.key(items)
        result = self.cached(key)
        if result is None:

            def align_progress(fraction: float, message: str) -> None:
                report(DEPTH_SHARE + (1.0 - DEPTH_SHARE) * fraction, message)

            result = compare_faces(
                items, [name for _, name in kept], self.depth.compute, align_progress, model_of=self.model_of
            )
            self.store.set(key, result)
        return ComparisonRun(key, result, tuple(skipped))
