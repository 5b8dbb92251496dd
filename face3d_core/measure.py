"""Face measurements in millimetres, in the face's own frame, with an honest uncertainty.

:func:`measure_face` takes a :class:`~face3d_core.reconstruct.FaceModel3D` and returns the
distances of :data:`MEASUREMENTS` (:class:`FaceMeasurements`, with CSV rows and a
JSON-friendly dict), the head pose and what was refused and why. No Dash import: the
dashboard, the CLI and the report call it.

**Steps** (each in its own module):

1. **Pose** (:mod:`face3d_core.face_frame`): the face's frame from the surface itself (the
   detector's landmarks on the surface, refined by the bilateral symmetry plane), and the head
   pose (yaw, pitch, roll) relative to the line of sight.
2. **Depth** (:mod:`face3d_core.depth_fit`, relative depth only): the relief that makes the
   face symmetric in 3D (a turned head), or typical adult proportions (a frontal one), with
   the uncertainty that is left; the frame is found again on the fitted surface.
3. **Points** (:mod:`face3d_core.landmarks3d`): nose tip, nasion, subnasale, nose wings, mouth
   corners and the face's sides at the eyes, found on the surface seen from the front of the
   face. The detector's five points only seed them (its eye centres are used as they are).
4. **Distances**: 3D lengths between the points (a distance does not depend on the frame it
   is expressed in; the frame decides where the points are). A left-right pair (nose wings,
   mouth corners, face sides) whose far member is hidden at a turned head is measured on the
   visible side and mirrored across the symmetry plane (``status="mirrored"``; the ± then
   includes :attr:`UncertaintyModel.asymmetry_sd_mm`, how much the two halves of a face
   differ). A pair whose two members disagree by more than :data:`PAIR_TOLERANCE_IPD` eye
   distances across the plane keeps the better-seen one, mirrored.

**Refused, never guessed** (``status="refused"``, value empty, the reason in ``note``): a
head turned more than :data:`MAX_TURN_DEG` from the line of sight (or tilted more than
:data:`MAX_PITCH_DEG`), a face under :data:`MIN_IPD_PX` pixels between the eyes, a point the
camera does not see (hidden, or seen edge-on: its depth is not reliable), both members of a
pair missing, no nose on the surface (a flat picture).

**Scale and uncertainty.** What a distance is worth depends on where the millimetres came
from (:attr:`FaceModel3D.scale_source`):

* ``"eyes"`` (a photo and a relative-depth network): the scale is *assumed*: the eye
  distance is set to 63 mm, the adult mean. The eye distance is then the reference, not a
  measurement, and every distance inherits its spread between people (SD 3.8 mm, i.e. 6 %).
  The depth axis comes from the fitted relief: the part of a distance along the camera axis
  gets the fit's relative uncertainty (:attr:`~face3d_core.depth_fit.ReliefFit.sigma_rel`:
  a few % for a turned head, about 12 % for a frontal one). Such a model gives proportions
  and plausible sizes, not a person's true size.
* ``"metric"`` (a depth sensor or a rendered scan): depth is in millimetres already and the
  eye distance is measured. The lateral scale also depends on the field of view: given by
  the user (taken as exact), from EXIF (2 %) or the 55 degree default (20 %).

With ``L`` the part of a distance across the image and ``Z`` the part along the camera
axis (``d^2 = L^2 + Z^2``), the 1-sigma uncertainty is
``sqrt((d s_scale)^2 + (L^2 / d s_fov)^2 + (Z^2 / d s_depth)^2 (+ s_asym^2 when mirrored))``.
Landmark placement (a few pixels for YuNet) is *not* included.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from face3d_core.csv_safety import csv_text
from face3d_core.depth_fit import METRIC_FIT, ReliefFit, fit_relief
from face3d_core.face_frame import FaceFrame, HeadPose, estimate_face_frame
from face3d_core.landmarks3d import POINT_LABELS, POINT_NAMES, FacePoint, FacePoints, PointFinder
from face3d_core.surface import DepthSurface, Surface

logger = logging.getLogger(__name__)

__all__ = [
    "CSV_COLUMNS",
    "MEASUREMENTS",
    "POINT_LABELS",
    "POINT_NAMES",
    "FaceMeasurements",
    "FacePoint",
    "FacePoints",
    "Measurement",
    "UncertaintyModel",
    "between_text",
    "landmarks_uv",
    "measure_face",
    "path_uncertainty",
    "write_csv",
]

#: Population spread of the adult interpupillary distance (SD, mm) around the 63 mm mean.
IPD_SD_MM = 3.8
#: A head turned further than this from the line of sight is not measured (degrees).
MAX_TURN_DEG = 36.0
#: ... nor one tilted up or down further than this (degrees).
MAX_PITCH_DEG = 30.0
#: How far the five landmarks of a real face are from mirror symmetry, as the relief fit assumes
#: (1 SD, mm): a real face's asymmetry and where a detector puts the points on it.
RELIEF_ASYMMETRY_SD_MM = 3.0
#: Eye distance over the distance from the eyes' midpoint to the mouth's, facing the camera (0.91 in
#: MediaPipe's canonical face, 0.93 in ICT-FaceKit's, 0.91 in the Lee Perry-Smith scan).
EYES_TO_EYE_MOUTH = 0.92
#: A head whose landmarks alone say it is turned further than this (degrees) is a profile: refused.
PROFILE_TURN_DEG = 50.0
#: Fewest depth-map pixels between the eyes for a measurement.
MIN_IPD_PX = 20.0
#: Two well-seen members of a pair that disagree by more than this across the symmetry plane (eye
#: distances) are refused.
PAIR_TOLERANCE_IPD = 0.12
#: A point seen at more than this angle (surface normal to the direction to the camera, degrees) is
#: not used when its partner is seen better: the partner is mirrored instead.
RELIABLE_VIEW_DEG = 65.0
#: Only a point seen within this angle (degrees) is mirrored to stand in for a hidden partner ...
MIRROR_VIEW_DEG = 50.0
#: ... and only while the head is turned less than this (degrees): beyond, the depth is too uncertain.
MIRROR_TURN_DEG = 32.0

#: (name, label, from point, to point); ``nose_protrusion`` goes to the eye-mouth plane.
MEASUREMENTS: tuple[tuple[str, str, str, str], ...] = (
    ("eye_distance", "Eye distance", "right_eye", "left_eye"),
    ("nose_width", "Nose width (alae)", "alare_right", "alare_left"),
    ("nose_height", "Nose height (nasion to tip)", "nasion", "nose_tip"),
    ("nose_depth", "Nose depth (subnasale to tip)", "subnasale", "nose_tip"),
    ("nose_protrusion", "Nose protrusion (tip to eye-mouth plane)", "nose_tip", "face_plane"),
    ("mouth_width", "Mouth width", "mouth_right", "mouth_left"),
    ("face_width_eyes", "Face width at the eyes", "face_side_right", "face_side_left"),
)

#: Measurements between a left and a right point (may be mirrored when one side is hidden).
PAIRED: frozenset[str] = frozenset({"nose_width", "mouth_width", "face_width_eyes"})

CSV_COLUMNS: tuple[str, ...] = (
    "image",
    "model",
    "precision",
    "measurement",
    "label",
    "status",
    "value_mm",
    "sigma_mm",
    "sigma_scale_mm",
    "sigma_fov_mm",
    "sigma_depth_mm",
    "sigma_asymmetry_mm",
    "sigma_placement_mm",
    "reference",
    "scale_source",
    "fov_deg",
    "fov_source",
    "yaw_deg",
    "pitch_deg",
    "roll_deg",
    "depth_fit",
    "from",
    "to",
    "note",
)


@dataclass(frozen=True)
class UncertaintyModel:
    """Relative 1-sigma spreads of the scale factors (see the module docstring).

    Attributes:
        ipd_sd_mm: Spread of the true eye distance around the assumed one (``"eyes"`` scale).
        relief_rel_sd: Relative error of depth differences from a relative-depth network when
            no relief could be fitted (and on the 3D view, whose relief is assumed).
        metric_depth_rel_sd: Relative error of depth differences from a metric source.
        fov_rel_sd_given: Relative error of the lateral scale with a field of view given by the user.
        fov_rel_sd_exif: ... with a field of view from EXIF.
        fov_rel_sd_default: ... with the default field of view.
        asymmetry_sd_mm: How much the distances of a point and its partner from the face's
            symmetry plane differ between people (1 SD, mm); a difference of 3-4 mm is what
            people start to see as asymmetry (Cheong & Lo, "Facial asymmetry: etiology,
            evaluation and management", Chang Gung Med J 2011; PMC5556787).
        placement_px: 1-sigma placement of a point found on the surface, in units of the
            surface's blur (its lattice step and smoothing, in depth-map pixels, combined).
    """

    ipd_sd_mm: float = IPD_SD_MM
    relief_rel_sd: float = 0.25
    metric_depth_rel_sd: float = 0.0
    fov_rel_sd_given: float = 0.0
    fov_rel_sd_exif: float = 0.02
    fov_rel_sd_default: float = 0.20
    asymmetry_sd_mm: float = 2.0
    placement_px: float = 0.5

    def fov_rel_sd(self, fov_source: str) -> float:
        """Relative error of the lateral scale for a field-of-view source."""
        if fov_source == "given":
            return self.fov_rel_sd_given
        if fov_source.startswith("exif"):
            return self.fov_rel_sd_exif
        return self.fov_rel_sd_default


@dataclass(frozen=True)
class Measurement:
    """One distance with its uncertainty, or why it was refused.

    Attributes:
        name: Key, e.g. ``"nose_width"``.
        label: For people, e.g. ``"Nose width (alae)"``.
        value_mm: The distance (``NaN`` when refused).
        sigma_mm: 1-sigma uncertainty, all parts combined.
        sigma_scale_mm: Part from the overall scale (the assumed eye distance, or 0 for metric depth).
        sigma_fov_mm: Part from the field of view (metric depth only).
        sigma_depth_mm: Part from the depth axis (the fitted relief, or the sensor).
        lateral_mm: Part of the distance across the image (``L``).
        axial_mm: Part of the distance along the camera axis (``Z``).
        from_point: Name of the first point.
        to_point: Name of the second point (``"face_plane"`` for the protrusion).
        reference: True when the value was set, not measured (the eye distance with the
            ``"eyes"`` scale).
        note: Anything a reader must know about this value; for a refused one, the reason.
        status: ``"measured"``, ``"mirrored"`` (one side hidden: the visible one mirrored
            across the symmetry plane), ``"reference"`` or ``"refused"``.
        sigma_asymmetry_mm: Part from the face's own asymmetry (mirrored only).
        sigma_placement_mm: Part from where the points found on the surface can be placed: the
            depth map's resolution at the face and its smoothing.
        ends_xyz: ``(2, 3)`` the two ends in the output frame (mm, the measured geometry), or None.
    """

    name: str
    label: str
    value_mm: float
    sigma_mm: float
    sigma_scale_mm: float
    sigma_fov_mm: float
    sigma_depth_mm: float
    lateral_mm: float
    axial_mm: float
    from_point: str
    to_point: str
    reference: bool = False
    note: str = ""
    status: str = "measured"
    sigma_asymmetry_mm: float = 0.0
    sigma_placement_mm: float = 0.0
    ends_xyz: np.ndarray | None = field(default=None, compare=False)

    @property
    def refused(self) -> bool:
        """True when no value is given (see :attr:`note` for why)."""
        return self.status == "refused"


@dataclass(frozen=True)
class FaceMeasurements:
    """All measurements of one face (see :func:`measure_face`).

    Attributes:
        measurements: In the order of :data:`MEASUREMENTS`.
        points: The face points used.
        scale_source: ``"eyes"`` or ``"metric"`` (see the module docstring).
        scale_note: One sentence on where the millimetres come from.
        fov_deg: Horizontal field of view of the photo used for the back-projection.
        fov_source: ``"given"``, ``"exif_35mm"``, ``"exif_focal_plane"`` or ``"default"``.
        uncertainty: The spreads used.
        depth_to_image: ``(sx, sy, ox, oy)``: a depth-map pixel ``(u, v)`` lies at
            ``(u sx + ox, v sy + oy)`` in the original photo.
        pose: The head pose (None when it could not be estimated).
        relief: How the depth axis was scaled (:class:`~face3d_core.depth_fit.ReliefFit`).
        refusal: Why nothing was measured ("" when something was).
        camera_xyz: ``(3,)`` the camera centre in the output frame (for :meth:`display_xyz`).
    """

    measurements: tuple[Measurement, ...]
    points: FacePoints
    scale_source: str
    scale_note: str
    fov_deg: float
    fov_source: str
    uncertainty: UncertaintyModel = field(default_factory=UncertaintyModel)
    depth_to_image: tuple[float, float, float, float] = (1.0, 1.0, 0.0, 0.0)
    pose: HeadPose | None = None
    relief: ReliefFit = METRIC_FIT
    refusal: str = ""
    camera_xyz: np.ndarray = field(default_factory=lambda: np.zeros(3), compare=False)

    def image_xy(self, uv: np.ndarray) -> np.ndarray:
        """Depth-map pixel positions ``(..., 2)`` -> positions in the original photo."""
        sx, sy, ox, oy = self.depth_to_image
        return np.asarray(uv, np.float64) * np.array([sx, sy]) + np.array([ox, oy])

    def display_xyz(self, xyz: np.ndarray) -> np.ndarray:
        """``(..., 3)`` measured points -> where they lie on the model as drawn (its own relief).

        With a fitted relief the measured geometry is deeper or flatter than the 3D view; a
        point moves along its camera ray to the view's depth. Metric depth: unchanged.
        """
        pts = np.asarray(xyz, np.float64)
        fit = self.relief.depth_map
        if fit is None:
            return pts
        cam = self.camera_xyz
        z_new = cam[2] - pts[..., 2]  # depth along the camera axis (the camera looks along -Z)
        z_old = fit.inverse(z_new)
        with np.errstate(invalid="ignore", divide="ignore"):
            return cam + (pts - cam) * (z_old / z_new)[..., None]

    def __getitem__(self, name: str) -> Measurement:
        for m in self.measurements:
            if m.name == name:
                return m
        raise KeyError(name)

    def values_mm(self) -> dict[str, float]:
        """Name -> value in mm (NaN when refused)."""
        return {m.name: m.value_mm for m in self.measurements}

    def _pose_cells(self) -> dict[str, float | None]:
        if self.pose is None:
            return {"yaw_deg": None, "pitch_deg": None, "roll_deg": None}
        return {
            "yaw_deg": _round(self.pose.yaw_deg, 1),
            "pitch_deg": _round(self.pose.pitch_deg, 1),
            "roll_deg": _round(self.pose.roll_deg, 1),
        }

    def to_rows(self, image: str = "", model: str = "", precision: str = "") -> list[dict[str, object]]:
        """One dict per measurement with the keys of :data:`CSV_COLUMNS`.

        A refused value is empty (``None``), the reason in ``note``.

        Args:
            image: The photo's name.
            model: The depth network that gave the depth (registry name; empty for a given depth map).
            precision: Its precision (``fp32``, ``bf16``; empty where not known).
        """
        rows = []
        pose = self._pose_cells()
        for m in self.measurements:
            rows.append(
                {
                    "image": image,
                    "model": model,
                    "precision": precision,
                    "measurement": m.name,
                    "label": m.label,
                    "status": m.status,
                    "value_mm": _round(m.value_mm),
                    "sigma_mm": _round(m.sigma_mm),
                    "sigma_scale_mm": _round(m.sigma_scale_mm),
                    "sigma_fov_mm": _round(m.sigma_fov_mm),
                    "sigma_depth_mm": _round(m.sigma_depth_mm),
                    "sigma_asymmetry_mm": _round(m.sigma_asymmetry_mm),
                    "sigma_placement_mm": _round(m.sigma_placement_mm),
                    "reference": m.reference,
                    "scale_source": self.scale_source,
                    "fov_deg": _round(self.fov_deg),
                    "fov_source": self.fov_source,
                    **pose,
                    "depth_fit": self.relief.method,
                    "from": m.from_point,
                    "to": m.to_point,
                    "note": m.note,
                }
            )
        return rows

    def to_dict(self, image: str = "", model: str = "", precision: str = "") -> dict[str, object]:
        """JSON-friendly form: pose, scale, depth fit, field of view, measurements and points (``None`` for NaN).

        ``model`` and ``precision`` name the depth network that gave the depth (see :meth:`to_rows`).
        """
        return {
            "image": image,
            "model": model,
            "precision": precision,
            "pose": None if self.pose is None else self.pose.to_dict(),
            "refusal": self.refusal or None,
            "scale_source": self.scale_source,
            "scale_note": self.scale_note,
            "depth_fit": self.relief.to_dict(),
            "fov_deg": _round(self.fov_deg),
            "fov_source": self.fov_source,
            "measurements": [
                {
                    "name": m.name,
                    "label": m.label,
                    "status": m.status,
                    "refused": m.refused,
                    "value_mm": _round(m.value_mm),
                    "sigma_mm": _round(m.sigma_mm),
                    "sigma_scale_mm": _round(m.sigma_scale_mm),
                    "sigma_fov_mm": _round(m.sigma_fov_mm),
                    "sigma_depth_mm": _round(m.sigma_depth_mm),
                    "sigma_asymmetry_mm": _round(m.sigma_asymmetry_mm),
                    "sigma_placement_mm": _round(m.sigma_placement_mm),
                    "lateral_mm": _round(m.lateral_mm),
                    "axial_mm": _round(m.axial_mm),
                    "from": m.from_point,
                    "to": m.to_point,
                    "reference": m.reference,
                    "note": m.note,
                }
                for m in self.measurements
            ],
            "points": {
                p.name: {
                    "xyz_mm": [_round(v) for v in p.xyz],
                    "depth_map_xy": [_round(v) for v in p.uv],
                    "image_xy": [_round(v) for v in self.image_xy(p.uv)],
                    "method": p.method,
                    "hidden": p.hidden,
                    "note": p.note,
                }
                for p in self.points.points.values()
            },
            "landmarks_image_xy": [[_round(v) for v in xy] for xy in self.image_xy(self.points.landmarks_uv)],
        }


# --------------------------------------------------------------------------------------------
# Text for people (tables, the CLI, reports)
# --------------------------------------------------------------------------------------------


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def length_text(value: float, sigma: float) -> str:
    """A length rounded to what it means: whole mm when it is uncertain by 1 mm or more."""
    return f"{value:.0f}" if _finite(sigma) and sigma >= 1.0 else f"{value:.1f}"


def value_text(m: Measurement) -> str:
    """The value of a measurement for people, e.g. ``"44 mm"``, ``"41 mm (mirrored)"`` or ``"refused"``."""
    if m.refused or not _finite(m.value_mm):
        return "refused"
    text = f"{length_text(m.value_mm, m.sigma_mm)} mm"
    return text + " (mirrored)" if m.status == "mirrored" else text


def sigma_text(m: Measurement) -> str:
    """Its 1-sigma uncertainty, e.g. ``"± 2.7 mm"`` (empty when refused)."""
    if m.refused or not (_finite(m.value_mm) and _finite(m.sigma_mm)):
        return ""
    return f"± {m.sigma_mm:.0f} mm" if m.sigma_mm >= 1.0 else f"± {m.sigma_mm:.1f} mm"


def pose_text(result: FaceMeasurements | None) -> str:
    """The head pose in words, e.g. ``"Head turned 20° to the right, tilted 5° up (from the face's symmetry)"``."""
    if result is None or result.pose is None:
        return "Head pose unknown" + (f": {result.refusal}" if result is not None and result.refusal else "")
    pose = result.pose
    how = "from the face's symmetry" if pose.method == "symmetry" else "from the eyes and mouth only"
    angles = f"yaw {pose.yaw_deg:.0f}°, pitch {pose.pitch_deg:.0f}°, roll {pose.roll_deg:.0f}°"
    return f"Head {pose.describe()} ({how}; {angles})"


def between_text(from_point: str, to_point: str) -> str:
    """Where a distance is measured, in words, e.g. ``"nasion (top of the nose) to nose tip"``."""
    return f"{POINT_LABELS.get(from_point, from_point)} to {POINT_LABELS.get(to_point, to_point)}"


@dataclass(frozen=True)
class DistanceSigma:
    """The 1-sigma uncertainty of one distance and its parts (mm; see the module docstring).

    Attributes:
        sigma_mm: All parts combined.
        scale_mm: Part from the overall scale.
        fov_mm: Part from the field of view.
        depth_mm: Part from the depth axis.
    """

    sigma_mm: float
    scale_mm: float
    fov_mm: float
    depth_mm: float


def scale_spreads(
    scale_source: str, fov_source: str, ipd_mm: float, uncertainty: UncertaintyModel | None = None
) -> tuple[float, float, float]:
    """Relative spreads ``(scale, field of view, depth)`` of a model's millimetres.

    Raises:
        ValueError: ``scale_source`` is neither ``"eyes"`` nor ``"metric"`` (no millimetre scale).
    """
    unc = uncertainty or UncertaintyModel()
    if scale_source == "eyes":
        return unc.ipd_sd_mm / float(ipd_mm), 0.0, unc.relief_rel_sd
    if scale_source == "metric":
        return 0.0, unc.fov_rel_sd(fov_source), unc.metric_depth_rel_sd
    raise ValueError("the model has no millimetre scale (no face landmarks); nothing can be measured")


def path_uncertainty(
    path_xyz: np.ndarray,
    *,
    scale_source: str,
    fov_source: str = "given",
    ipd_mm: float = 63.0,
    uncertainty: UncertaintyModel | None = None,
) -> DistanceSigma:
    """1-sigma uncertainty of the length of a polyline (two points: a straight distance).

    Each factor (scale, field of view, depth stretch) is one number for the whole model, so
    its errors add up along the path: to first order a segment with lateral part ``L`` and
    axial part ``Z`` (length ``d``) changes by ``L^2 / d`` times the lateral and ``Z^2 / d``
    times the axial relative error, and the whole path by the sums of those.

    Args:
        path_xyz: ``(K, 3)`` points in the model's output frame (mm), ``K >= 2``.
        scale_source: The model's :attr:`~face3d_core.reconstruct.FaceModel3D.scale_source`.
        fov_source: Where the field of view came from.
        ipd_mm: The eye distance the scale assumes (``"eyes"`` scale).
        uncertainty: The spreads (default :class:`UncertaintyModel`).

    Returns:
        The :class:`DistanceSigma` (all NaN for a path with a non-finite point).

    Raises:
        ValueError: No millimetre scale.
    """
    s_scale, s_fov, s_depth = scale_spreads(scale_source, fov_source, ipd_mm, uncertainty)
    pts = np.asarray(path_xyz, dtype=np.float64).reshape(-1, 3)
    if len(pts) < 2 or not np.isfinite(pts).all():
        nan = float("nan")
        return DistanceSigma(nan, nan, nan, nan)
    seg = np.diff(pts, axis=0)
    d = np.linalg.norm(seg, axis=1)
    ok = d > 0
    lateral2 = seg[ok, 0] ** 2 + seg[ok, 1] ** 2  # across the image
    axial2 = seg[ok, 2] ** 2  # along the camera axis (Z of the output frame)
    sig_scale = float(d.sum()) * s_scale
    sig_fov = float((lateral2 / d[ok]).sum()) * s_fov
    sig_depth = float((axial2 / d[ok]).sum()) * s_depth
    return DistanceSigma(float(np.sqrt(sig_scale**2 + sig_fov**2 + sig_depth**2)), sig_scale, sig_fov, sig_depth)


def _round(value: float, digits: int = 3) -> float | None:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def write_csv(rows: Iterable[dict[str, object]]) -> str:
    """Format measurement rows (:meth:`FaceMeasurements.to_rows`) as CSV text with a header.

    Text that a spreadsheet would run as a formula (an image named ``=HYPERLINK(...).jpg``) is
    written inert (:func:`face3d_core.csv_safety.csv_text`).
    """
    return csv_text(rows, CSV_COLUMNS)


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def landmarks_uv(model) -> np.ndarray:
    """The model's five landmarks in depth-map pixels ``(5, 2)`` (projected from 3D).

    Raises:
        ValueError: The model has no face landmarks.
    """
    given = getattr(model, "landmarks_uv", None)
    if given is not None:
        return np.asarray(given, np.float64).reshape(5, 2)
    if model.landmarks_xyz is None:
        raise ValueError("the model has no face landmarks")
    return DepthSurface(model).project(model.landmarks_xyz)


def _seed_points(surface: Surface, marks: np.ndarray) -> np.ndarray:
    """``(5, 3)`` the landmarks on the surface; where the strict surface ends, the nearest valid depth."""
    pts = surface.points(marks)
    if isinstance(surface, DepthSurface) and not np.isfinite(pts).all():
        loose = DepthSurface.__new__(DepthSurface)
        loose.__dict__.update(surface.__dict__)
        loose.strict = False
        pts = np.where(np.isfinite(pts), pts, loose.points(marks))
    return pts


def _protrusion(tip: np.ndarray, plane_pts: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Distance of ``tip`` from the least-squares plane of ``plane_pts`` ``(4, 3)``: ``(mm, foot point, normal)``."""
    centroid = plane_pts.mean(axis=0)
    _, _, vt = np.linalg.svd(plane_pts - centroid)
    normal = vt[2]
    height = float((tip - centroid) @ normal)
    if height < 0:
        normal, height = -normal, -height
    return height, tip - height * normal, normal


class _Measurer:
    """Turns the points of one face into :class:`Measurement` values (see the module docstring)."""

    def __init__(
        self,
        points: dict[str, FacePoint],
        frame: FaceFrame,
        fit: ReliefFit,
        spreads,
        unc,
        reference: bool,
        point_sd_mm: float = 0.0,
    ):
        self.points = points
        self.frame = frame
        self.fit = fit
        self.spreads = spreads  # (scale, fov, depth) relative sigmas
        self.unc = unc
        self.eye_reference = reference
        self.tolerance = PAIR_TOLERANCE_IPD * frame.ipd_mm
        self.allow_mirror = True
        self.point_sd_mm = float(point_sd_mm)

    def _mirror(self, p: FacePoint) -> np.ndarray:
        f = self.frame.to_frame(p.xyz)
        return self.frame.from_frame(f * np.array([-1.0, 1.0, 1.0]))

    @staticmethod
    def _reliable(p: FacePoint) -> bool:
        return p.found and not p.view_deg > RELIABLE_VIEW_DEG

    def pair(self, a: FacePoint, b: FacePoint, allow_mirror: bool) -> tuple[np.ndarray | None, str, str]:
        """The two ends of a left-right distance: ``(ends (2, 3) or None, status, note)``.

        Both points well seen and in agreement across the symmetry plane: measured. One hidden
        or seen too obliquely (:data:`RELIABLE_VIEW_DEG`): the other one, mirrored. Two well-seen
        points that disagree, or nothing well seen: refused.
        """
        good_a, good_b = self._reliable(a), self._reliable(b)
        if good_a and good_b:
            mismatch = float(np.linalg.norm(self._mirror(a) - b.xyz))
            if mismatch <= self.tolerance:
                return np.stack([a.xyz, b.xyz]), "measured", ""
            return (
                None,
                "refused",
                (f"the left and right points disagree by {mismatch:.0f} mm across the face's symmetry plane"),
            )
        if not (good_a or good_b):
            reasons = "; ".join(dict.fromkeys(p.note or "seen too obliquely" for p in (a, b)))
            return None, "refused", f"not found on either side ({reasons})"
        seen, other = (a, b) if good_a else (b, a)
        if not allow_mirror or seen.view_deg > MIRROR_VIEW_DEG:
            return None, "refused", f"{POINT_LABELS[other.name]}: {other.note or 'seen too obliquely'}"
        if other.found:
            why = f"{POINT_LABELS[other.name]} seen too obliquely ({other.view_deg:.0f}°)"
        else:
            why = f"{POINT_LABELS[other.name]} not found ({other.note or 'not in view'})"
        return (
            np.stack([seen.xyz, self._mirror(seen)]),
            "mirrored",
            f"{why}: the other side, mirrored across the face's symmetry plane",
        )

    def _sd(self, p: FacePoint) -> float:
        """Placement spread of a point found on the surface (0 for the detector's own points)."""
        return self.point_sd_mm if p.method in ("refined", "derived") else 0.0

    def measurement(self, name: str, label: str, a_name: str, b_name: str) -> Measurement:
        a = self.points[a_name]
        status, note = "measured", ""
        b_point = self.points.get(b_name)
        placement = self._sd(a) if b_point is None else math.hypot(self._sd(a), self._sd(b_point))
        if b_name == "face_plane":
            plane = [self.points[n] for n in ("right_eye", "left_eye")]
            mouth, _, _ = self.pair(self.points["mouth_right"], self.points["mouth_left"], self.allow_mirror)
            if not a.found:
                return self.refused(name, label, a_name, b_name, a.note or "the nose tip was not found")
            if not all(p.found for p in plane) or mouth is None:
                return self.refused(name, label, a_name, b_name, "the eyes or the mouth corners were not found")
            _, foot, _ = _protrusion(a.xyz, np.vstack([plane[0].xyz, plane[1].xyz, mouth]))
            ends = np.stack([a.xyz, foot])
        elif name in PAIRED:
            ends, status, note = self.pair(a, self.points[b_name], allow_mirror=self.allow_mirror)
            if ends is None:
                return self.refused(name, label, a_name, b_name, note)
            if status == "mirrored":
                placement = 2.0 * max(self._sd(a), self._sd(b_point))
        else:
            b = self.points[b_name]
            if not (a.found and b.found):
                missing_point = a if not a.found else b
                reason = f"{POINT_LABELS[missing_point.name]}: {missing_point.note or 'not found'}"
                return self.refused(name, label, a_name, b_name, reason)
            ends = np.stack([a.xyz, b.xyz])
        return self.value(name, label, a_name, b_name, ends, status, note, placement)

    def value(self, name, label, a_name, b_name, ends, status, note, placement: float = 0.0) -> Measurement:
        vec = ends[1] - ends[0]
        value = float(np.linalg.norm(vec))
        s_scale, s_fov, s_depth = self.spreads
        lateral2, axial2 = vec[0] ** 2 + vec[1] ** 2, vec[2] ** 2
        sig_scale = value * s_scale
        sig_fov = lateral2 / value * s_fov if value > 0 else 0.0
        sig_depth = axial2 / value * s_depth if value > 0 else 0.0
        sig_asym = self.unc.asymmetry_sd_mm if status == "mirrored" else 0.0
        sigma = math.sqrt(sig_scale**2 + sig_fov**2 + sig_depth**2 + sig_asym**2 + placement**2)
        reference = name == "eye_distance" and self.eye_reference
        if reference:
            status, note = "reference", "the scale reference: set, not measured"
            sig_scale, sig_fov, sig_depth, sig_asym, placement = self.unc.ipd_sd_mm, 0.0, 0.0, 0.0, 0.0
            sigma = self.unc.ipd_sd_mm
        return Measurement(
            name, label, value, sigma, sig_scale, sig_fov, sig_depth, math.sqrt(lateral2), math.sqrt(axial2),
            a_name, b_name, reference, note, status, sig_asym, placement, ends,
        )  # fmt: skip

    @staticmethod
    def refused(name: str, label: str, a_name: str, b_name: str, reason: str) -> Measurement:
        nan = float("nan")
        return Measurement(
            name, label, nan, nan, nan, nan, nan, nan, nan, a_name, b_name, False, reason, "refused", nan, nan
        )  # fmt: skip


def _all_refused(reason: str) -> tuple[Measurement, ...]:
    return tuple(_Measurer.refused(n, label, a, b, reason) for n, label, a, b in MEASUREMENTS)


def _empty_points(marks: np.ndarray, reason: str) -> FacePoints:
    pts = {
        n: FacePoint(n, np.full(3, np.nan), marks[min(i, 4)] if i < 5 else marks[2], "landmark", reason)
        for i, n in enumerate(POINT_NAMES)
    }
    ipd_px = float(np.linalg.norm(marks[1] - marks[0]))
    return FacePoints(pts, np.full(3, np.nan), np.full(3, np.nan), ipd_px, marks)


@dataclass(frozen=True, eq=False)
class FaceGeometry:
    """A face ready to be measured or compared in its own frame (see :func:`face_geometry`).

    Attributes:
        surface: The surface to measure (the model's, with the fitted relief for relative depth).
        frame: The face's frame on that surface (the head pose is ``frame.pose``).
        relief: The relief fit (:data:`~face3d_core.depth_fit.METRIC_FIT` for metric depth).
        landmarks_uv: ``(5, 2)`` the detector's landmarks in depth-map pixels.
        seeds_xyz: ``(5, 3)`` the same on :attr:`surface`.
        turn_deg: The head's turn from the line of sight (the larger of the estimates before and
            after the relief fit).
    """

    surface: Surface
    frame: FaceFrame
    relief: ReliefFit
    landmarks_uv: np.ndarray
    seeds_xyz: np.ndarray
    turn_deg: float

    @property
    def within_limits(self) -> bool:
        """True when the pose allows measuring (:data:`MAX_TURN_DEG`, :data:`MAX_PITCH_DEG`)."""
        return self.turn_deg <= MAX_TURN_DEG and abs(self.frame.pose.pitch_deg) <= MAX_PITCH_DEG

    def pose_refusal(self) -> str:
        """Why the pose is not measured ("" when it is)."""
        if self.within_limits:
            return ""
        if abs(self.frame.pose.pitch_deg) > MAX_PITCH_DEG:
            how = f"tilted {abs(self.frame.pose.pitch_deg):.0f}° {'up' if self.frame.pose.pitch_deg > 0 else 'down'}"
            return f"the head is {how}: measuring needs a face within {MAX_PITCH_DEG:.0f}° of level"
        return (
            f"the head is turned about {self.turn_deg:.0f}° away from the camera: measuring needs a face "
            f"within {MAX_TURN_DEG:.0f}° of facing it"
        )


class GeometryRefused(ValueError):
    """The face cannot be put in its own frame (the message says why)."""


def landmark_turn_deg(landmarks_uv: np.ndarray) -> float:
    """How far the head is turned, from the five landmarks in the picture alone (degrees, rough).

    An adult's eyes are about :data:`EYES_TO_EYE_MOUTH` times as far apart as the eyes' midpoint
    is from the mouth's; turning the head shortens the first in the picture, not the second. A
    profile's far eye is hidden, and where a detector puts it says little; this catches it
    before the surface is asked (tilting the head does the opposite, so it never over-reads).
    """
    marks = np.asarray(landmarks_uv, np.float64).reshape(5, 2)
    eyes = float(np.linalg.norm(marks[1] - marks[0]))
    eye_mouth = float(np.linalg.norm(marks[:2].mean(axis=0) - marks[3:].mean(axis=0)))
    if eye_mouth <= 0:
        return 90.0
    return float(np.degrees(np.arccos(np.clip(eyes / eye_mouth / EYES_TO_EYE_MOUTH, 0.0, 1.0))))


def face_geometry(model, *, surface: Surface | None = None, landmarks: np.ndarray | None = None) -> FaceGeometry:
    """Pose, frame and (relative depth) relief of a reconstructed face: steps 1 and 2 of the module docstring.

    Args:
        model: The :class:`~face3d_core.reconstruct.FaceModel3D` (with face landmarks).
        surface: The surface (default: the model's :class:`DepthSurface`); another surface is
            taken as metric (no relief fit).
        landmarks: ``(5, 2)`` landmarks in the surface's pixels (default: the model's).

    Raises:
        ValueError: The model has no face landmarks.
        GeometryRefused: The face is too small, off its surface or degenerate (the message says which).
    """
    own_surface = surface is None
    surface = surface or DepthSurface(model)
    marks = landmarks_uv(model) if landmarks is None else np.asarray(landmarks, np.float64).reshape(5, 2)
    camera = -np.asarray(model.origin_mm, np.float64)
    if not np.isfinite(marks).all():
        raise GeometryRefused("the face landmarks are not in the depth map")
    ipd_px = float(np.linalg.norm(marks[1] - marks[0]))
    if ipd_px < MIN_IPD_PX:
        raise GeometryRefused(
            f"the face is too small: its eyes are {ipd_px:.0f} pixels apart, measuring needs {MIN_IPD_PX:.0f}"
        )
    yaw_2d = landmark_turn_deg(marks)
    if yaw_2d > PROFILE_TURN_DEG:
        raise GeometryRefused(
            f"the head is turned about {yaw_2d:.0f}° (its eyes are close together in the picture): measuring "
            f"needs a face within {MAX_TURN_DEG:.0f}° of facing the camera"
        )
    seeds = _seed_points(surface, marks)
    if not np.isfinite(seeds[[0, 1, 3, 4]]).all():
        raise GeometryRefused(
            "the eyes or the mouth corners are not on the face's surface "
            "(a head turned too far, or a landmark off the face)"
        )
    try:
        frame = estimate_face_frame(surface, marks, seeds, camera)
    except ValueError as exc:
        raise GeometryRefused(f"the face landmarks are degenerate ({exc})") from exc
    fit = METRIC_FIT
    turn = frame.pose.turn_deg
    if own_surface and model.scale_source == "eyes":
        tip = PointFinder(surface, frame, marks, seeds).nose_tip()
        tip_uv = (
            None if isinstance(tip, FacePoint) else surface.project(frame.from_frame(np.r_[tip.xy, tip.h])[None])[0]
        )
        fit = fit_relief(model, surface, marks, tip_uv, asymmetry_sd_mm=RELIEF_ASYMMETRY_SD_MM)
        if fit.depth_map is not None:
            surface = surface.with_depth_map(fit.depth_map)
            seeds = _seed_points(surface, marks)
            frame = estimate_face_frame(surface, marks, seeds, camera, start=frame)
    # a relative model's depth is least sure where the head is turned far: either estimate counts
    return FaceGeometry(surface, frame, fit, marks, seeds, max(turn, frame.pose.turn_deg))


def measure_face(
    model,
    *,
    fov_source: str = "given",
    uncertainty: UncertaintyModel | None = None,
    surface: Surface | None = None,
    landmarks: np.ndarray | None = None,
) -> FaceMeasurements:
    """Measure a reconstructed face in millimetres, in its own frame (see the module docstring).

    Args:
        model: The :class:`~face3d_core.reconstruct.FaceModel3D` (with face landmarks).
        fov_source: Where the field of view came from (see :class:`UncertaintyModel`).
        uncertainty: The spreads (default :class:`UncertaintyModel`).
        surface: The surface to measure (default: the model's :class:`DepthSurface`); another
            surface is measured as metric (no relief fit).
        landmarks: ``(5, 2)`` landmarks in the surface's pixels (default: the model's).

    Returns:
        The :class:`FaceMeasurements`; what cannot be measured is refused in it, with the reason.

    Raises:
        ValueError: The model has no face landmarks, or no millimetre scale.
    """
    unc = uncertainty or UncertaintyModel()
    marks = landmarks_uv(model) if landmarks is None else np.asarray(landmarks, np.float64).reshape(5, 2)
    scale_source = model.scale_source
    fov_deg = float(model.params.fov_deg)
    ipd_mm = float(model.params.ipd_mm)
    profile = np.isfinite(marks).all() and landmark_turn_deg(marks) > PROFILE_TURN_DEG
    if scale_source not in ("eyes", "metric") and profile:
        scale_source = "eyes"  # the eyes had no depth: a profile, refused below for its pose
    spreads = list(scale_spreads(scale_source, fov_source, ipd_mm, unc))  # raises without a millimetre scale
    x0, y0, x1, y1 = model.crop_box_xyxy
    h, w = model.depth_shape
    sx, sy = (x1 - x0) / w, (y1 - y0) / h
    mapping = (sx, sy, x0 + 0.5 * sx - 0.5, y0 + 0.5 * sy - 0.5)
    camera = -np.asarray(model.origin_mm, np.float64)
    common = {
        "fov_deg": fov_deg,
        "fov_source": fov_source,
        "uncertainty": unc,
        "depth_to_image": mapping,
        "camera_xyz": camera,
    }

    def refuse_all(reason: str, pose: HeadPose | None = None, fit: ReliefFit | None = None) -> FaceMeasurements:
        note = _scale_note(scale_source, ipd_mm, unc, fit or (METRIC_FIT if scale_source == "metric" else None))
        return FaceMeasurements(
            _all_refused(reason), _empty_points(marks, reason), scale_source, note, pose=pose,
            relief=fit or METRIC_FIT, refusal=reason, **common,
        )  # fmt: skip

    try:
        geometry = face_geometry(model, surface=surface, landmarks=marks)
    except GeometryRefused as exc:
        return refuse_all(str(exc))
    surface, frame, fit, seeds, turn = (
        geometry.surface,
        geometry.frame,
        geometry.relief,
        geometry.seeds_xyz,
        geometry.turn_deg,
    )
    if fit.method != "metric":
        spreads[2] = fit.sigma_rel
    pose = frame.pose
    scale_note = _scale_note(scale_source, ipd_mm, unc, fit)
    if not geometry.within_limits:
        return refuse_all(geometry.pose_refusal(), pose, fit)
    ipd_px = float(np.linalg.norm(marks[1] - marks[0]))
    points = PointFinder(surface, frame, marks, seeds).find()
    # a point found on the surface is placed to about half the surface's blur (lattice step and smoothing)
    depth_at_face = float(frame.camera_xyz[2] - frame.origin_xyz[2])
    blur_px = math.hypot(float(model.stride), float(model.params.smoothing_sigma))
    point_sd = unc.placement_px * blur_px * depth_at_face / model.intrinsics.focal_px
    measurer = _Measurer(points, frame, fit, spreads, unc, scale_source == "eyes", point_sd)
    measurer.allow_mirror = turn <= MIRROR_TURN_DEG
    results = [measurer.measurement(*spec) for spec in MEASUREMENTS]
    eyes = (points["right_eye"], points["left_eye"])
    if scale_source == "eyes" and not all(p.found for p in eyes):
        reason = "an eye is hidden, and the millimetres come from the distance between the eyes"
        results = list(_all_refused(reason))
    quad = [p.xyz for p in (*eyes, points["mouth_right"], points["mouth_left"]) if p.found]
    plane_point, plane_normal = np.full(3, np.nan), np.full(3, np.nan)
    if len(quad) == 4:
        centroid = np.mean(quad, axis=0)
        _, _, vt = np.linalg.svd(np.asarray(quad) - centroid)
        plane_point, plane_normal = centroid, (vt[2] if vt[2] @ frame.axes[2] >= 0 else -vt[2])
    face_points = FacePoints(points, plane_point, plane_normal, ipd_px, marks, frame)
    logger.debug("measure_face: pose %s, depth fit %s", pose.describe(), fit.describe())
    return FaceMeasurements(tuple(results), face_points, scale_source, scale_note, pose=pose, relief=fit, **common)


def _scale_note(scale_source: str, ipd_mm: float, unc: UncertaintyModel, fit: ReliefFit | None) -> str:
    if scale_source == "eyes":
        depth = fit.describe() if fit is not None and fit.method != "metric" else "face depth assumed"
        return (
            f"Scale assumed: the eyes are set {ipd_mm:g} mm apart (adult mean; people differ by about "
            f"{unc.ipd_sd_mm:g} mm); {depth}."
        )
    return "Scale from the metric depth map (millimetres along the camera axis) and the field of view."
