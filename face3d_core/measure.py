"""Face measurements in millimetres, with an honest uncertainty.

:func:`measure_face` takes a :class:`~face3d_core.reconstruct.FaceModel3D` and returns
distances between landmarks and points derived from the surface (:class:`FaceMeasurements`,
with CSV rows and a JSON-friendly dict). No Dash import: the dashboard and a report call it.

Points (all on the surface, in the model's output frame; found by :func:`find_face_points`
from the five detector landmarks and the depth map, see :mod:`face3d_core.surface`):

* ``right_eye``, ``left_eye``, ``mouth_right``, ``mouth_left``: YuNet's landmarks (eye
  centres, mouth corners) lifted onto the surface. ``right``/``left`` are the person's.
* **face plane**: the least-squares plane through the two eyes and the two mouth corners;
  "in front of" means towards the camera. Everything below is measured relative to it, so a
  tilted or turned head gives the same points.
* ``nose_tip`` (pronasale): the nose's highest cap in front of the face plane, searched
  within a quarter of the eye distance around YuNet's nose landmark; the tip is the centroid
  of the cap within 2 % of the eye distance of the top (a flat dome's single highest point
  would be ill-defined).
* ``nasion``: the deepest point (nearest to the face plane) of the profile line from the
  nose tip up through the eyes' midpoint and 0.6 eye distances beyond; it must be a true
  dip (the profile rises again above it, towards the glabella), otherwise it is not found.
* ``alare_right``, ``alare_left``: the nose wings. On lines parallel to the eyes, from 15 %
  above to 40 % below the nose tip (of the tip-to-mouth distance), the alar-facial groove
  is a ridge of concave curvature of the height profile; it is picked 0.1-0.45 eye distances
  from the midline on the first line, followed downwards line by line, and its point
  farthest from the midline is the alare (so the nostrils, further in, never take over).
* ``face_side_right``, ``face_side_left``: along the eye line, outwards from each eye, the
  first point where the surface turns more than :data:`SIDE_TURN_DEG` (60 degrees) away from
  the face plane (the temple turning towards the ear), or where the surface ends.

Profiles are smoothed with a Gaussian of :data:`PROFILE_SIGMA_IPD` eye distances (about
1.5 mm) before curvatures and slopes are taken, so a noisy depth map gives stable points.

Measurements: eye distance, nose width (alare to alare), nose height (nasion to nose tip),
nose protrusion (nose tip to the face plane), mouth width and face width at the eyes.

**Scale and uncertainty.** What a distance is worth depends on where the millimetres came
from (:attr:`FaceModel3D.scale_source`):

* ``"eyes"`` (a photo and a relative-depth network): the scale is *assumed*: the eye
  distance is set to 63 mm, the adult mean. The eye distance is then the reference, not a
  measurement, and every distance inherits its spread between people (SD 3.8 mm, i.e. 6 %).
  The depth axis comes from the network's relative depth stretched to an assumed face relief
  (80 mm x depth scale): the part of a distance along the camera axis gets another
  :attr:`UncertaintyModel.relief_rel_sd` (25 %, a stated assumption, not a measurement:
  faces differ and networks flatten). Such a model gives proportions and plausible sizes,
  not a person's true size.
* ``"metric"`` (a depth sensor or a rendered scan): depth is in millimetres already and the
  eye distance is measured. The lateral scale also depends on the field of view: given by
  the user (taken as exact), from EXIF (2 %) or the 55 degree default (20 %).

With ``L`` the part of a distance across the image and ``Z`` the part along the camera
axis (``d^2 = L^2 + Z^2``), the 1-sigma uncertainty is
``sqrt((d s_scale)^2 + (L^2 / d s_fov)^2 + (Z^2 / d s_depth)^2)``. Landmark placement (a
few pixels for YuNet) is *not* included.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from face3d_core.surface import DepthSurface, Surface

logger = logging.getLogger(__name__)

#: Population spread of the adult interpupillary distance (SD, mm) around the 63 mm mean.
IPD_SD_MM = 3.8
#: A surface steeper than this (degrees from the face plane) ends the face at the eye line.
SIDE_TURN_DEG = 60.0
#: Gaussian smoothing of the profiles, in eye distances.
PROFILE_SIGMA_IPD = 0.025

POINT_NAMES: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_right",
    "mouth_left",
    "nasion",
    "alare_right",
    "alare_left",
    "face_side_right",
    "face_side_left",
)

#: Point name -> words for people (tables, reports).
POINT_LABELS: dict[str, str] = {
    "right_eye": "right eye centre",
    "left_eye": "left eye centre",
    "nose_tip": "nose tip",
    "mouth_right": "right mouth corner",
    "mouth_left": "left mouth corner",
    "nasion": "nasion (top of the nose)",
    "alare_right": "right nose wing",
    "alare_left": "left nose wing",
    "face_side_right": "right face side at the eyes",
    "face_side_left": "left face side at the eyes",
    "face_plane": "eye-mouth plane",
}

#: (name, label, from point, to point); ``nose_protrusion`` goes to the face plane.
MEASUREMENTS: tuple[tuple[str, str, str, str], ...] = (
    ("eye_distance", "Eye distance", "right_eye", "left_eye"),
    ("nose_width", "Nose width (alae)", "alare_right", "alare_left"),
    ("nose_height", "Nose height (nasion to tip)", "nasion", "nose_tip"),
    ("nose_protrusion", "Nose protrusion (tip to eye-mouth plane)", "nose_tip", "face_plane"),
    ("mouth_width", "Mouth width", "mouth_right", "mouth_left"),
    ("face_width_eyes", "Face width at the eyes", "face_side_right", "face_side_left"),
)

CSV_COLUMNS: tuple[str, ...] = (
    "image",
    "measurement",
    "label",
    "value_mm",
    "sigma_mm",
    "sigma_scale_mm",
    "sigma_fov_mm",
    "sigma_depth_mm",
    "reference",
    "scale_source",
    "fov_deg",
    "fov_source",
    "from",
    "to",
    "note",
)


@dataclass(frozen=True)
class UncertaintyModel:
    """Relative 1-sigma spreads of the scale factors (see the module docstring).

    Attributes:
        ipd_sd_mm: Spread of the true eye distance around the assumed one (``"eyes"`` scale).
        relief_rel_sd: Relative error of depth differences from a relative-depth network.
        metric_depth_rel_sd: Relative error of depth differences from a metric source.
        fov_rel_sd_given: Relative error of the lateral scale with a field of view given by the user.
        fov_rel_sd_exif: ... with a field of view from EXIF.
        fov_rel_sd_default: ... with the default field of view.
    """

    ipd_sd_mm: float = IPD_SD_MM
    relief_rel_sd: float = 0.25
    metric_depth_rel_sd: float = 0.0
    fov_rel_sd_given: float = 0.0
    fov_rel_sd_exif: float = 0.02
    fov_rel_sd_default: float = 0.20

    def fov_rel_sd(self, fov_source: str) -> float:
        """Relative error of the lateral scale for a field-of-view source."""
        if fov_source == "given":
            return self.fov_rel_sd_given
        if fov_source.startswith("exif"):
            return self.fov_rel_sd_exif
        return self.fov_rel_sd_default


@dataclass(frozen=True)
class FacePoint:
    """One point of the face.

    Attributes:
        name: See :data:`POINT_NAMES`.
        xyz: ``(3,) float64`` position in mm in the model's output frame (``NaN`` if not found).
        uv: ``(2,) float64`` position in depth-map pixels ``(column, row)``.
        method: ``"landmark"`` (detector), ``"refined"`` (landmark moved on the surface) or
            ``"derived"`` (found from the surface).
        note: Why it was not found, or how an edge case was handled.
    """

    name: str
    xyz: np.ndarray
    uv: np.ndarray
    method: str
    note: str = ""

    @property
    def found(self) -> bool:
        """True when the point has a finite position."""
        return bool(np.all(np.isfinite(self.xyz)))


@dataclass(frozen=True)
class FacePoints:
    """The points of a face and its eye-mouth plane.

    Attributes:
        points: Name -> :class:`FacePoint`.
        plane_point: ``(3,)`` a point of the face plane (centroid of eyes and mouth corners).
        plane_normal: ``(3,)`` its unit normal, pointing towards the camera.
        ipd_px: Eye distance in depth-map pixels.
        landmarks_uv: ``(5, 2)`` the detector's landmarks the points were found from (depth-map pixels).
    """

    points: dict[str, FacePoint]
    plane_point: np.ndarray
    plane_normal: np.ndarray
    ipd_px: float
    landmarks_uv: np.ndarray

    def __getitem__(self, name: str) -> FacePoint:
        return self.points[name]

    def height(self, xyz: np.ndarray) -> np.ndarray:
        """Signed distance (mm) of ``(..., 3)`` points in front of the face plane."""
        return (np.asarray(xyz, np.float64) - self.plane_point) @ self.plane_normal


@dataclass(frozen=True)
class Measurement:
    """One distance with its uncertainty.

    Attributes:
        name: Key, e.g. ``"nose_width"``.
        label: For people, e.g. ``"Nose width (alae)"``.
        value_mm: The distance (``NaN`` when a point was not found).
        sigma_mm: 1-sigma uncertainty, all parts combined.
        sigma_scale_mm: Part from the overall scale (the assumed eye distance, or 0 for metric depth).
        sigma_fov_mm: Part from the field of view (metric depth only).
        sigma_depth_mm: Part from the depth axis (the assumed relief, or the sensor).
        lateral_mm: Part of the distance across the image (``L``).
        axial_mm: Part of the distance along the camera axis (``Z``).
        from_point: Name of the first point.
        to_point: Name of the second point (``"face_plane"`` for the protrusion).
        reference: True when the value was set, not measured (the eye distance with the
            ``"eyes"`` scale).
        note: Anything a reader must know about this value.
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
    """

    measurements: tuple[Measurement, ...]
    points: FacePoints
    scale_source: str
    scale_note: str
    fov_deg: float
    fov_source: str
    uncertainty: UncertaintyModel = field(default_factory=UncertaintyModel)
    depth_to_image: tuple[float, float, float, float] = (1.0, 1.0, 0.0, 0.0)

    def image_xy(self, uv: np.ndarray) -> np.ndarray:
        """Depth-map pixel positions ``(..., 2)`` -> positions in the original photo."""
        sx, sy, ox, oy = self.depth_to_image
        return np.asarray(uv, np.float64) * np.array([sx, sy]) + np.array([ox, oy])

    def __getitem__(self, name: str) -> Measurement:
        for m in self.measurements:
            if m.name == name:
                return m
        raise KeyError(name)

    def values_mm(self) -> dict[str, float]:
        """Name -> value in mm."""
        return {m.name: m.value_mm for m in self.measurements}

    def to_rows(self, image: str = "") -> list[dict[str, object]]:
        """One dict per measurement with the keys of :data:`CSV_COLUMNS`."""
        rows = []
        for m in self.measurements:
            rows.append(
                {
                    "image": image,
                    "measurement": m.name,
                    "label": m.label,
                    "value_mm": _round(m.value_mm),
                    "sigma_mm": _round(m.sigma_mm),
                    "sigma_scale_mm": _round(m.sigma_scale_mm),
                    "sigma_fov_mm": _round(m.sigma_fov_mm),
                    "sigma_depth_mm": _round(m.sigma_depth_mm),
                    "reference": m.reference,
                    "scale_source": self.scale_source,
                    "fov_deg": _round(self.fov_deg),
                    "fov_source": self.fov_source,
                    "from": m.from_point,
                    "to": m.to_point,
                    "note": m.note,
                }
            )
        return rows

    def to_dict(self, image: str = "") -> dict[str, object]:
        """JSON-friendly form: scale, field of view, measurements and points (``None`` for NaN)."""
        return {
            "image": image,
            "scale_source": self.scale_source,
            "scale_note": self.scale_note,
            "fov_deg": _round(self.fov_deg),
            "fov_source": self.fov_source,
            "measurements": [
                {
                    "name": m.name,
                    "label": m.label,
                    "value_mm": _round(m.value_mm),
                    "sigma_mm": _round(m.sigma_mm),
                    "sigma_scale_mm": _round(m.sigma_scale_mm),
                    "sigma_fov_mm": _round(m.sigma_fov_mm),
                    "sigma_depth_mm": _round(m.sigma_depth_mm),
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
                    "note": p.note,
                }
                for p in self.points.points.values()
            },
            "landmarks_image_xy": [[_round(v) for v in xy] for xy in self.image_xy(self.points.landmarks_uv)],
        }


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
    """Format measurement rows (:meth:`FaceMeasurements.to_rows`) as CSV text with a header."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _missing(name: str, uv: np.ndarray, method: str, note: str) -> FacePoint:
    return FacePoint(name, np.full(3, np.nan), np.asarray(uv, np.float64), method, note)


def _smooth(values: np.ndarray, sigma_samples: float) -> np.ndarray:
    """Gaussian smoothing of 1-D profiles along the last axis, ignoring NaN (normalised convolution).

    Samples that are NaN stay NaN; edges are not padded with invented values.
    """
    if sigma_samples <= 0.5:
        return values
    ok = np.isfinite(values)
    filled = np.where(ok, values, 0.0)
    num = gaussian_filter1d(filled, sigma_samples, axis=-1, mode="constant")
    den = gaussian_filter1d(ok.astype(np.float64), sigma_samples, axis=-1, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok & (den > 1e-6), num / den, np.nan)


def _first_run(valid: np.ndarray) -> int:
    """Length of the leading run of True values."""
    bad = np.flatnonzero(~valid)
    return int(bad[0]) if bad.size else int(valid.size)


def find_face_points(surface: Surface, landmarks_uv: np.ndarray, *, step_px: float | None = None) -> FacePoints:
    """Find the face points of the module docstring on a surface.

    Args:
        surface: The surface (:class:`~face3d_core.surface.DepthSurface` of a model, or any
            :class:`~face3d_core.surface.Surface`).
        landmarks_uv: ``(5, 2)`` YuNet landmarks in the surface's pixel frame (order right eye,
            left eye, nose tip, right and left mouth corner).
        step_px: Sampling step of the profiles in pixels (default: 1/250 of the eye distance).

    Returns:
        The :class:`FacePoints`; points that cannot be found have ``NaN`` positions and a note.

    Raises:
        ValueError: The eyes or mouth corners are not on the surface, or the landmarks are
            degenerate.
    """
    marks = np.asarray(landmarks_uv, dtype=np.float64).reshape(5, 2)
    eye_r, eye_l, nose_uv, mouth_r, mouth_l = marks
    ipd_px = float(np.linalg.norm(eye_l - eye_r))
    if ipd_px < 2.0:
        raise ValueError("the eye landmarks are degenerate (less than 2 pixels apart)")
    step = float(step_px) if step_px else ipd_px / 250.0
    sigma = PROFILE_SIGMA_IPD * ipd_px / step  # in samples

    base = surface.points(marks)
    names = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")
    points: dict[str, FacePoint] = {}
    for i in (0, 1, 3, 4):
        if not np.all(np.isfinite(base[i])):
            raise ValueError(f"the {names[i].replace('_', ' ')} landmark is not on the face surface")
        points[names[i]] = FacePoint(names[i], base[i], marks[i], "landmark")

    # face plane through eyes and mouth corners, normal towards the camera (+Z)
    quad = base[[0, 1, 3, 4]]
    centroid = quad.mean(axis=0)
    _, _, vt = np.linalg.svd(quad - centroid)
    normal = vt[2] if vt[2][2] >= 0 else -vt[2]
    face = FacePoints(points, centroid, normal, ipd_px, marks)
    ipd_mm = float(np.linalg.norm(base[1] - base[0]))

    lat = _unit(eye_l - eye_r)  # image direction from the right eye to the left eye
    eye_mid = 0.5 * (eye_r + eye_l)
    mouth_mid = 0.5 * (mouth_r + mouth_l)
    down = _unit(mouth_mid - eye_mid)

    points["nose_tip"] = _find_nose_tip(surface, face, nose_uv, ipd_mm)
    tip = points["nose_tip"]
    anchor = tip.uv if tip.found else nose_uv
    points["nasion"] = _find_nasion(surface, face, anchor, eye_mid, step, sigma)
    right, left = _find_alae(surface, face, anchor, lat, down, mouth_mid, step, sigma)
    points["alare_right"], points["alare_left"] = right, left
    for side, eye, direction in (("right", eye_r, -lat), ("left", eye_l, lat)):
        points[f"face_side_{side}"] = _find_face_side(surface, face, eye, direction, side, step, sigma)
    ordered = {name: points[name] for name in POINT_NAMES}
    return FacePoints(ordered, centroid, normal, ipd_px, marks)


#: The nose tip is the centroid of the nose's cap this deep below its highest point (eye distances).
NOSE_CAP_IPD = 0.02


def _grid_around(center_uv: np.ndarray, radius: float, step: float) -> np.ndarray:
    offsets = np.arange(-radius, radius + 0.5 * step, step)
    du, dv = np.meshgrid(offsets, offsets)
    inside = du * du + dv * dv <= radius * radius
    return np.asarray(center_uv, np.float64) + np.stack([du[inside], dv[inside]], axis=1)


def _find_nose_tip(surface: Surface, face: FacePoints, nose_uv: np.ndarray, ipd_mm: float) -> FacePoint:
    """Pronasale: the centroid of the nose's cap (the part within 2 % of the eye distance of its top).

    The highest point alone is ill-conditioned (a nose tip is a flat dome); the centroid of
    its cap is not. Coarse search within a quarter eye distance of the landmark, then a fine
    grid around the best point.
    """
    ipd = face.ipd_px
    uv = _grid_around(nose_uv, 0.25 * ipd, 0.02 * ipd)
    h = face.height(surface.points(uv))
    if not np.isfinite(h).any():
        return _missing("nose_tip", nose_uv, "refined", "no surface around the nose landmark")
    best = uv[int(np.nanargmax(h))]
    uv = _grid_around(best, 0.12 * ipd, 0.004 * ipd)
    h = face.height(surface.points(uv))
    top = np.nanmax(h)
    cap = np.isfinite(h) & (h >= top - NOSE_CAP_IPD * ipd_mm)
    tip_uv = uv[cap].mean(axis=0)
    xyz = surface.points(tip_uv[None])[0]
    if not np.all(np.isfinite(xyz)):
        return _missing("nose_tip", tip_uv, "refined", "the nose tip is not on the surface")
    return FacePoint("nose_tip", xyz, tip_uv, "refined")


def _find_nasion(
    surface: Surface, face: FacePoints, tip_uv: np.ndarray, eye_mid: np.ndarray, step: float, sigma: float
) -> FacePoint:
    up_vec = eye_mid - tip_uv
    nose_len = float(np.linalg.norm(up_vec))
    if nose_len < 1.0:
        return _missing("nasion", eye_mid, "derived", "the nose tip lies on the eye line")
    up = up_vec / nose_len
    t = np.arange(0.4 * nose_len, nose_len + 0.6 * face.ipd_px, step)
    uv = tip_uv + t[:, None] * up
    h = face.height(surface.points(uv))
    n = _first_run(np.isfinite(h))
    if n < 8 * max(sigma, 1.0):
        return _missing("nasion", eye_mid, "derived", "the profile above the nose leaves the surface")
    hs = _smooth(h[:n], sigma)
    k = int(np.nanargmin(hs))
    margin = max(int(2 * sigma), 2)
    if k < margin or k > n - 1 - margin:
        return _missing("nasion", uv[k], "derived", "no dip between the nose and the forehead on the profile")
    return FacePoint("nasion", surface.points(uv[k][None])[0], uv[k], "derived")


def _find_alae(
    surface: Surface,
    face: FacePoints,
    tip_uv: np.ndarray,
    lat: np.ndarray,
    down: np.ndarray,
    mouth_mid: np.ndarray,
    step: float,
    sigma: float,
) -> tuple[FacePoint, FacePoint]:
    """Alare: the most lateral points of the alar-facial grooves, each tracked from above the tip down.

    On lines parallel to the eyes (every 1 % of the eye distance, from 15 % of the tip-to-mouth
    distance above the nose tip to 40 % below it) the groove is a ridge of concave curvature
    of the profile's height above the face plane. It is picked between 0.1 and 0.45 eye
    distances from the midline on the first line and then followed line by line (within 3 %
    of the eye distance), so the stronger curvature of the nostrils further in never takes
    over; tracking ends where the groove fades (curvature <= 0 on three lines in a row). The
    alare is the tracked point farthest from the midline on each side.
    """
    ipd = face.ipd_px
    reach = float((mouth_mid - tip_uv) @ down)
    if reach < 2.0:
        miss = "the mouth is not below the nose tip"
        return (_missing("alare_right", tip_uv, "derived", miss), _missing("alare_left", tip_uv, "derived", miss))
    rows = np.arange(-0.15 * reach, 0.40 * reach + 1e-9, 0.01 * ipd)
    s = np.arange(0.0, 0.55 * ipd + 1e-9, step)
    window = 0.03 * ipd
    found = []
    for side, sign in (("right", -1.0), ("left", 1.0)):
        name = f"alare_{side}"
        centers = tip_uv + rows[:, None] * down
        uv = centers[:, None, :] + sign * s[None, :, None] * lat
        pts = surface.points(uv.reshape(-1, 2)).reshape(len(rows), len(s), 3)
        curvature = np.gradient(np.gradient(_smooth(face.height(pts), sigma), axis=1), axis=1)
        zone = (s >= 0.10 * ipd) & (s <= 0.45 * ipd)
        track = []
        k_prev = None
        misses = 0
        for r in range(len(rows)):
            allowed = zone if k_prev is None else zone & (np.abs(s - s[k_prev]) <= window)
            c = np.where(allowed & np.isfinite(curvature[r]), curvature[r], -np.inf)
            k = int(np.argmax(c))
            if not c[k] > 0:
                misses += 1
                if k_prev is not None and misses >= 3:
                    break
                continue
            misses = 0
            k_prev = k
            track.append((r, k))
        if not track:
            found.append(_missing(name, tip_uv, "derived", "no alar groove found beside the nose"))
            continue
        r, k = max(track, key=lambda rk: s[rk[1]])
        found.append(FacePoint(name, pts[r, k], uv[r, k], "derived"))
    return found[0], found[1]


def _find_face_side(
    surface: Surface, face: FacePoints, eye_uv: np.ndarray, direction: np.ndarray, side: str, step: float, sigma: float
) -> FacePoint:
    """Outwards from one eye: the first point where the surface is steeper than :data:`SIDE_TURN_DEG`.

    The slope is taken over a window of two smoothing widths on each side (one-sided where
    the surface ends), so a turn right at the outline is still seen.
    """
    name = f"face_side_{side}"
    ipd = face.ipd_px
    t = np.arange(0.0, 1.4 * ipd, step)
    uv = eye_uv + t[:, None] * direction
    pts = surface.points(uv)
    n = _first_run(np.all(np.isfinite(pts), axis=1))
    if n < 4:
        return _missing(name, eye_uv, "derived", "no surface beside the eye")
    pts = pts[:n]
    h = face.height(pts)
    inplane = pts - np.outer(h, face.plane_normal)
    lateral = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(inplane, axis=0), axis=1))])
    half = max(int(round(2 * sigma)), 1)
    k = np.arange(n)
    hi, lo = np.minimum(k + half, n - 1), np.maximum(k - half, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        angle = np.degrees(np.arctan2(h[lo] - h[hi], lateral[hi] - lateral[lo]))
    start = int(np.searchsorted(t[:n], 0.3 * ipd))
    steep = np.flatnonzero(angle[start:] > SIDE_TURN_DEG)
    if steep.size:
        k = start + int(steep[0])
        return FacePoint(name, pts[k], uv[k], "derived")
    k = n - 1
    note = "the surface ends before it turns away (outline of the mask)"
    if n == len(t):
        note = "the surface does not turn away within 1.4 eye distances"
    return FacePoint(name, pts[k], uv[k], "derived", note)


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


def landmarks_uv(model) -> np.ndarray:
    """The model's five landmarks in depth-map pixels ``(5, 2)`` (projected from 3D).

    Raises:
        ValueError: The model has no face landmarks.
    """
    if model.landmarks_xyz is None:
        raise ValueError("the model has no face landmarks")
    return DepthSurface(model).project(model.landmarks_xyz)


def measure_face(
    model,
    *,
    fov_source: str = "given",
    uncertainty: UncertaintyModel | None = None,
    surface: Surface | None = None,
    landmarks: np.ndarray | None = None,
) -> FaceMeasurements:
    """Measure a reconstructed face in millimetres.

    Args:
        model: The :class:`~face3d_core.reconstruct.FaceModel3D` (with face landmarks).
        fov_source: Where the field of view came from (see :class:`UncertaintyModel`).
        uncertainty: The spreads (default :class:`UncertaintyModel`).
        surface: The surface to measure (default: the model's :class:`DepthSurface`).
        landmarks: ``(5, 2)`` landmarks in the surface's pixels (default: the model's).

    Returns:
        The :class:`FaceMeasurements`.

    Raises:
        ValueError: The model has no face, or the landmarks are not on the surface.
    """
    unc = uncertainty or UncertaintyModel()
    surface = surface or DepthSurface(model)
    marks = landmarks_uv(model) if landmarks is None else np.asarray(landmarks, np.float64)
    face = find_face_points(surface, marks)
    scale_source = model.scale_source
    fov_deg = float(model.params.fov_deg)
    ipd_mm = float(model.params.ipd_mm)
    scale_spreads(scale_source, fov_source, ipd_mm, unc)  # raises without a millimetre scale
    if scale_source == "eyes":
        scale_note = (
            f"Scale assumed: the eyes are set {ipd_mm:g} mm apart (adult mean; people differ by "
            f"about {unc.ipd_sd_mm:g} mm); depth from a relative-depth network stretched to an assumed relief."
        )
    else:
        scale_note = "Scale from the metric depth map (millimetres along the camera axis) and the field of view."

    view = np.array([0.0, 0.0, 1.0])  # camera axis in the output frame
    results = []
    for name, label, a_name, b_name in MEASUREMENTS:
        a = face[a_name]
        note = a.note
        if b_name == "face_plane":
            b_xyz = a.xyz - face.height(a.xyz) * face.plane_normal if a.found else np.full(3, np.nan)
            found = a.found
        else:
            b = face[b_name]
            b_xyz = b.xyz
            found = a.found and b.found
            note = "; ".join(x for x in (a.note, b.note) if x)
        if not found:
            value = lateral = axial = sigma_all = sig_scale = sig_fov = sig_depth = float("nan")
        else:
            vec = b_xyz - a.xyz
            value = float(np.linalg.norm(vec))
            axial = float(abs(vec @ view))
            lateral = float(np.hypot(vec[0], vec[1]))
            parts = path_uncertainty(
                np.stack([a.xyz, b_xyz]),
                scale_source=scale_source,
                fov_source=fov_source,
                ipd_mm=ipd_mm,
                uncertainty=unc,
            )
            sigma_all, sig_scale, sig_fov, sig_depth = parts.sigma_mm, parts.scale_mm, parts.fov_mm, parts.depth_mm
        reference = name == "eye_distance" and scale_source == "eyes"
        if reference:
            note = "the scale reference: set, not measured"
            sig_scale, sig_fov, sig_depth = unc.ipd_sd_mm, 0.0, 0.0
            sigma_all = unc.ipd_sd_mm
        results.append(
            Measurement(
                name,
                label,
                value,
                sigma_all,
                sig_scale,
                sig_fov,
                sig_depth,
                lateral,
                axial,
                a_name,
                b_name,
                reference,
                note,
            )
        )
    x0, y0, x1, y1 = model.crop_box_xyxy
    h, w = model.depth_shape
    sx, sy = (x1 - x0) / w, (y1 - y0) / h
    mapping = (sx, sy, x0 + 0.5 * sx - 0.5, y0 + 0.5 * sy - 0.5)
    return FaceMeasurements(tuple(results), face, scale_source, scale_note, fov_deg, fov_source, unc, mapping)
