"""Reports: the shared HTML file of one face (3D tab) or of a comparison (Compare tab).

The core writes the page (:func:`face3d_core.report.build_report`); this composer gathers what
it shows from the cache: each face's crop and depth map, its reconstruction for the shown
settings and its measurements. Nothing here runs the network.
"""

from __future__ import annotations

from collections.abc import Sequence

from dashboard.services.depth import DepthMaps
from dashboard.services.errors import DepthMissingError, MeasureError
from dashboard.services.exports import safe_stem
from dashboard.services.heavy import HeavyWork
from dashboard.services.model3d import Models3D
from dashboard.services.uploads import UploadMeta
from face3d_core.camera import CameraFov
from face3d_core.compare import ComparisonResult
from face3d_core.depthmap import normalize_depth
from face3d_core.models.estimator import PRECISION_LABELS
from face3d_core.models.registry import get_spec
from face3d_core.pipeline import DepthRef
from face3d_core.reconstruct import ReconstructionParams
from face3d_core.report import ReportFace, build_report


def network_title(ref: DepthRef) -> str:
    """A report face's depth network, e.g. ``"MiDaS v2.1 small (256)"``, with ``· Fast (bf16)`` when not exact."""
    title = get_spec(ref.model).title
    return title if ref.precision == "fp32" else f"{title} · {PRECISION_LABELS.get(ref.precision, ref.precision)}"


class Reports:
    """HTML reports of cached results.

    Args:
        depth: The cached depth maps.
        models: The reconstructions and measurements.
        heavy: The turnstile a report waits at.
    """

    def __init__(self, depth: DepthMaps, models: Models3D, *, heavy: HeavyWork | None = None):
        self.depth = depth
        self.models = models
        self.heavy = heavy if heavy is not None else getattr(models, "heavy", None) or HeavyWork()

    def face(self, ref: DepthRef, params: ReconstructionParams, fov: CameraFov, label: str) -> ReportFace:
        """One face of a report, as the 3D tab shows it; ``label`` is its name for the asking session.

        Raises:
            DepthMissingError: No depth map for ``ref`` in the cache.
        """
        face_depth = self.depth.cached(ref)
        if face_depth is None:
            raise DepthMissingError("Generate the 3D model first.")
        model = self.models.model(ref, params)
        measurements, note = None, ""
        if face_depth.face is None:
            note = "no face was found in this photo, so there are no face points to measure between."
        else:
            try:
                measurements = self.models.measurements(ref, params, fov.source)
            except MeasureError as exc:
                note = exc.web_message
        return ReportFace(
            name=label,
            image_rgb=face_depth.image_rgb,
            depth_norm=normalize_depth(face_depth.depth_rel),
            model=model,
            measurements=measurements,
            fov=fov,
            depth_model=network_title(ref),
            note=note,
        )

    def face_report(
        self, ref: DepthRef, params: ReconstructionParams, fov: CameraFov, meta: UploadMeta
    ) -> tuple[str, bytes]:
        """Return ``(file name, HTML bytes)`` of one face's report (``meta``: the photo as the session sees it).

        Raises:
            DepthMissingError: No depth map for ``ref`` in the cache.
        """
        with self.heavy.turn("A report"):
            face = self.face(ref, params, fov, meta.face_label(ref.face_index))
            return f"{safe_stem(meta.name)}_report.html", build_report([face]).encode("utf-8")

    def comparison_report(
        self,
        result: ComparisonResult,
        settings: Sequence[tuple[ReconstructionParams, CameraFov]],
        pair: tuple[int, int] = (0, 1),
    ) -> tuple[str, bytes]:
        """Return ``(file name, HTML bytes)`` of a comparison's report.

        Args:
            result: The comparison, with the asking session's names (see :meth:`Access.comparison`).
            settings: ``(params, field of view)`` of each item, in the comparison's order.
            pair: The two items whose difference map the report shows (first minus second).

        Raises:
            DepthMissingError: A depth map is no longer in the cache.
        """
        with self.heavy.turn("A comparison report"):
            faces = [
                self.face(ref, params, fov, label)
                for ref, (params, fov), label in zip(result.refs, settings, result.names, strict=True)
            ]
            html = build_report(faces, comparison=result, pair=pair)
        return f"face3d_comparison_{len(faces)}_items_report.html", html.encode("utf-8")
