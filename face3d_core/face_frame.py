"""The face's own frame: head pose from the 3D surface, and the surface seen from the front.

A photo shows a head in any pose. Measurements and comparisons are made in a frame attached to
the face itself, found from the reconstructed 3D surface (never from the image plane):

* **Seed** (:func:`landmark_axes`): the five detector landmarks lifted onto the surface
  give rough axes: ``x`` from the right eye to the left eye (the person's sides; x points to
  the image's right in a frontal photo), ``y`` from the mouth up to the eyes, ``z = x × y``
  out of the face.
* **Bilateral symmetry** (:func:`fit_symmetry_plane`): the mid-sagittal plane is the plane
  that maps the face onto itself when mirrored. Surface points around the eyes, nose and
  mouth are mirrored across a candidate plane; each mirrored point is looked up on the
  surface where the camera sees it (projective association, as in depth-camera ICP), and
  the signed distance to the surface's tangent plane there is the residual. Gauss-Newton
  steps on the plane's normal and offset with Tukey weights minimise them. Mirrored points
  that fall behind the visible surface (the far side of a turned head) get no weight, so a
  turned head is fitted on what both halves show. This is the "mirror registration" idea of
  symmetry-plane methods for 3D faces (e.g. Benz et al., "Refinement of mirror-symmetric
  planes of 3D faces", 2002; Pan et al., IEEE TIP 2010: "Finding symmetry plane of 3-D face
  shape"); nothing here is copied from them.
* **Frame** (:func:`estimate_face_frame`): ``x`` is the symmetry plane's normal, ``y`` the
  mouth-to-eyes direction within the plane tilted forward by :data:`NEUTRAL_TILT_DEG` (so that
  ``z``, ``x × y``, is where a face looking straight ahead looks); the origin is the eyes'
  midpoint moved onto the plane. The symmetry fixes yaw and roll; the eyes and the mouth fix pitch.
  Without a usable symmetry fit the landmark axes are kept (``method="landmarks"``).
* **Pose** (:class:`HeadPose`): yaw, pitch and roll of that frame relative to the **line of
  sight** from the camera to the face (what a person sees in the picture: a face at the edge
  of a wide photo that looks into the lens is frontal). Yaw > 0: the face turns towards the
  image's right; pitch > 0: the face tilts up (chin forward); roll > 0: the head leans
  counter-clockwise in the picture. ``R = R_yaw · R_pitch · R_roll``.
* **Seen from the front** (:class:`FrameSurface`): the surface as a height field of the face
  frame: for a face-frame position ``(x, y)`` (mm) the surface point on the line through it
  along ``z``, found by a secant search along that line on the camera's depth surface. Where
  the camera does not see that part of the face (the far side of a turned head, behind the
  nose) there is no such point on the visible surface, the search does not converge and the
  answer is ``NaN``: hidden parts are *refused*, never guessed.

Units: millimetres, in the output frame of :class:`~face3d_core.reconstruct.FaceModel3D`
(X right, Y up, Z towards the viewer) unless stated.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from face3d_core.surface import Surface

logger = logging.getLogger(__name__)

#: Most surface samples the symmetry fit uses (its cost is linear in them).
SYMMETRY_SAMPLES = 1500
#: Gauss-Newton iterations of the symmetry fit.
SYMMETRY_ITERATIONS = 7
#: Fewest mirrored points that must find a partner for the symmetry to count.
SYMMETRY_MIN_INLIERS = 150
#: The symmetry fit may turn the landmark axes by at most this much (degrees); more is a failed fit.
SYMMETRY_MAX_TURN_DEG = 25.0
#: The line from the mouth to the eyes leans back this much from the vertical of a face looking straight
#: ahead (degrees): 7.4 in MediaPipe's canonical face, 8.3 in ICT-FaceKit's neutral face (both are
#: averages of many people). The frame's ``y`` is tilted by it, so a face looking straight into the
#: camera has pitch 0.
NEUTRAL_TILT_DEG = 8.0
#: A surface point seen at more than this angle from the line of sight is "seen edge-on" (degrees).
GRAZING_LIMIT_DEG = 80.0


@dataclass(frozen=True)
class HeadPose:
    """Head pose relative to the line of sight (see the module docstring).

    Attributes:
        yaw_deg: Turn about the face's vertical axis; > 0 towards the image's right.
        pitch_deg: Tilt about the face's left-right axis; > 0 up (chin forward).
        roll_deg: Lean in the picture; > 0 counter-clockwise.
        method: ``"symmetry"`` (symmetry plane + landmarks) or ``"landmarks"`` (landmarks only).
    """

    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    method: str = "symmetry"

    @property
    def turn_deg(self) -> float:
        """Angle between the face's forward axis and the line of sight (degrees, >= 0)."""
        cy, cp = math.cos(math.radians(self.yaw_deg)), math.cos(math.radians(self.pitch_deg))
        return math.degrees(math.acos(max(-1.0, min(1.0, cy * cp))))

    def describe(self) -> str:
        """The pose in words, e.g. ``"turned 20° to the right, tilted 5° up, leaning 2° anticlockwise"``."""
        parts = []
        yaw, pitch, roll = (round(v) for v in (self.yaw_deg, self.pitch_deg, self.roll_deg))
        parts.append("facing the camera" if yaw == 0 else f"turned {abs(yaw)}° to the {'right' if yaw > 0 else 'left'}")
        if pitch:
            parts.append(f"tilted {abs(pitch)}° {'up' if pitch > 0 else 'down'}")
        if roll:
            parts.append(f"leaning {abs(roll)}° {'anticlockwise' if roll > 0 else 'clockwise'}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (angles rounded to 0.1 degree)."""
        return {
            "yaw_deg": round(float(self.yaw_deg), 1),
            "pitch_deg": round(float(self.pitch_deg), 1),
            "roll_deg": round(float(self.roll_deg), 1),
            "method": self.method,
            "text": self.describe(),
        }


@dataclass(frozen=True)
class FaceFrame:
    """The face's own frame (see the module docstring).

    Attributes:
        origin_xyz: ``(3,) float64`` the eyes' midpoint on the symmetry plane (mm, output frame).
        axes: ``(3, 3) float64`` rows ``x`` (towards the person's left), ``y`` (up), ``z`` (out
            of the face), unit vectors in the output frame.
        ipd_mm: 3D distance of the two eye landmarks (mm).
        camera_xyz: ``(3,) float64`` the camera centre in the output frame.
        pose: The head pose.
        symmetry_rms_mm: RMS residual of the mirrored points that found a partner (NaN without a fit).
        symmetry_inliers: How many mirrored points found a partner.
    """

    origin_xyz: np.ndarray
    axes: np.ndarray
    ipd_mm: float
    camera_xyz: np.ndarray
    pose: HeadPose
    symmetry_rms_mm: float = float("nan")
    symmetry_inliers: int = 0

    def to_frame(self, xyz: np.ndarray) -> np.ndarray:
        """``(..., 3)`` output-frame points -> face-frame coordinates ``(x, y, z)`` (mm)."""
        return (np.asarray(xyz, np.float64) - self.origin_xyz) @ self.axes.T

    def from_frame(self, fxyz: np.ndarray) -> np.ndarray:
        """``(..., 3)`` face-frame coordinates -> output-frame points (mm)."""
        return np.asarray(fxyz, np.float64) @ self.axes + self.origin_xyz

    def view_angle_deg(self, xyz: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """``(N,)`` angle (degrees) between each surface normal and the direction to the camera."""
        to_cam = self.camera_xyz - np.asarray(xyz, np.float64).reshape(-1, 3)
        to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
        cosine = np.clip(np.einsum("ij,ij->i", to_cam, np.asarray(normals, np.float64).reshape(-1, 3)), -1.0, 1.0)
        return np.degrees(np.arccos(cosine))


# --------------------------------------------------------------------------------------------
# Helpers on surfaces
# --------------------------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def surface_normals(surface: Surface, uv: np.ndarray, step_px: float = 0.75) -> np.ndarray:
    """``(N, 2)`` pixel positions -> ``(N, 3)`` unit normals facing the camera (NaN off the surface).

    Central differences over ``step_px`` pixels (the surface's own ``normals`` where it has them).
    """
    pts = np.asarray(uv, np.float64).reshape(-1, 2)
    if hasattr(surface, "normals"):
        return surface.normals(pts, step_px=step_px)
    h = float(step_px)
    four = surface.points(np.concatenate([pts + [h, 0.0], pts - [h, 0.0], pts + [0.0, h], pts - [0.0, h]]))
    n = len(pts)
    normal = np.cross(four[:n] - four[n : 2 * n], four[2 * n : 3 * n] - four[3 * n :])
    with np.errstate(invalid="ignore", divide="ignore"):
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    return np.where(normal[:, 2:3] < 0, -normal, normal)


def _rotation_to_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """``R = R_yaw(Y) R_pitch(P) R_roll(R)`` (columns: the face's axes in the view frame) -> degrees."""
    fwd = rot[:, 2]
    yaw = math.degrees(math.atan2(fwd[0], fwd[2]))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, fwd[1]))))
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    r_roll = r_pitch.T @ r_yaw.T @ rot
    roll = math.degrees(math.atan2(r_roll[1, 0], r_roll[0, 0]))
    return yaw, pitch, roll


def pose_rotation(yaw_deg: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """``(3, 3)`` rotation ``R_yaw R_pitch R_roll`` of the module docstring (X right, Y up, Z towards the viewer)."""
    cy, sy = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    cp, sp = math.cos(math.radians(pitch_deg)), math.sin(math.radians(pitch_deg))
    cr, sr = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


def view_basis(camera_xyz: np.ndarray, target_xyz: np.ndarray) -> np.ndarray:
    """``(3, 3)`` rows: right, up, towards the camera, for the line of sight from the camera to ``target_xyz``."""
    back = _unit(np.asarray(camera_xyz, np.float64) - np.asarray(target_xyz, np.float64))
    right = _unit(np.cross(np.array([0.0, 1.0, 0.0]), back))
    up = np.cross(back, right)
    return np.stack([right, up, back])


def head_pose(axes: np.ndarray, camera_xyz: np.ndarray, origin_xyz: np.ndarray, method: str) -> HeadPose:
    """The :class:`HeadPose` of face axes (rows x, y, z) seen from ``camera_xyz``."""
    view = view_basis(camera_xyz, origin_xyz)
    yaw, pitch, roll = _rotation_to_angles(view @ np.asarray(axes, np.float64).T)
    return HeadPose(yaw, pitch, roll, method)


def _upright(x: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Axes (rows x, y, z) from ``x`` and the mouth-to-eyes direction, ``y`` tilted by :data:`NEUTRAL_TILT_DEG`."""
    y = _unit(up - (up @ x) * x)
    z = np.cross(x, y)
    t = math.radians(NEUTRAL_TILT_DEG)
    return np.stack([x, math.cos(t) * y + math.sin(t) * z, math.cos(t) * z - math.sin(t) * y])


def landmark_axes(landmarks_xyz: np.ndarray) -> np.ndarray:
    """``(3, 3)`` rough face axes (rows x, y, z) from the five landmarks ``(5, 3)`` on the surface.

    Raises:
        ValueError: The landmarks are degenerate (coincident or collinear).
    """
    eye_r, eye_l, _nose, mouth_r, mouth_l = np.asarray(landmarks_xyz, np.float64).reshape(5, 3)
    x = (eye_l - eye_r) + (mouth_l - mouth_r)
    up = 0.5 * (eye_r + eye_l) - 0.5 * (mouth_r + mouth_l)
    if np.linalg.norm(x) < 1e-6 or np.linalg.norm(up) < 1e-6:
        raise ValueError("the face landmarks are degenerate")
    x = _unit(x)
    if np.linalg.norm(np.cross(x, up)) < 1e-6 * np.linalg.norm(up):
        raise ValueError("the face landmarks are degenerate")
    return _upright(x, up)


# --------------------------------------------------------------------------------------------
# The symmetry plane
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SymmetryFit:
    """Result of :func:`fit_symmetry_plane`.

    Attributes:
        normal: ``(3,)`` unit normal of the plane (sign as the initial normal).
        offset: The plane is ``{p : normal · p = offset}`` (mm).
        rms_mm: RMS residual of the weighted mirrored points.
        inliers: Mirrored points with a weight > 0 at the end.
        converged: The last step was small.
    """

    normal: np.ndarray
    offset: float
    rms_mm: float
    inliers: int
    converged: bool


def _tangent_basis(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([0.0, 1.0, 0.0]) if abs(n[1]) < 0.9 else np.array([0.0, 0.0, 1.0])
    t1 = _unit(np.cross(n, helper))
    return t1, np.cross(n, t1)


def symmetry_residuals(
    surface: Surface, points_xyz: np.ndarray, normal: np.ndarray, offset: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror ``points_xyz`` across a plane and measure how far each lands from the surface.

    Returns:
        ``(residuals (N,), surface normals (N, 3), mirrored points (N, 3))``: signed distance of each
        mirrored point to the tangent plane of the surface point seen at its pixel (> 0 in
        front of the surface; NaN where the mirrored point projects off the surface). The
        normals come from forward differences over one pixel (two extra lookups, not four).
    """
    pts = np.asarray(points_xyz, np.float64)
    mirrored = pts - 2.0 * (pts @ normal - offset)[:, None] * normal
    uv = surface.project(mirrored)
    n = len(pts)
    three = surface.points(np.concatenate([uv, uv + [1.0, 0.0], uv + [0.0, 1.0]]))
    seen = three[:n]
    normals = np.cross(three[n : 2 * n] - seen, three[2 * n :] - seen)
    with np.errstate(invalid="ignore", divide="ignore"):
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(normals[:, 2:3] < 0, -normals, normals)
    residual = np.einsum("ij,ij->i", normals, mirrored - seen)
    return residual, normals, mirrored


def fit_symmetry_plane(
    surface: Surface,
    points_xyz: np.ndarray,
    normal: np.ndarray,
    offset: float,
    *,
    iterations: int = SYMMETRY_ITERATIONS,
    min_scale_mm: float = 0.4,
) -> SymmetryFit:
    """Fit the mirror-symmetry plane of a surface (see the module docstring).

    Args:
        surface: The camera's depth surface (``points``, ``project``).
        points_xyz: ``(N, 3)`` surface points of the face region (output frame, mm).
        normal: ``(3,)`` initial plane normal (the landmark ``x`` axis).
        offset: Initial offset (``normal · p`` of a point on the plane).
        iterations: Gauss-Newton steps.
        min_scale_mm: Floor of the robust residual scale (the surface's own noise).

    Returns:
        The :class:`SymmetryFit`.
    """
    pts = np.asarray(points_xyz, np.float64)
    n = _unit(np.asarray(normal, np.float64))
    d = float(offset)
    rms, inliers, converged = float("nan"), 0, False
    for _ in range(iterations):
        r, m, _mirrored = symmetry_residuals(surface, pts, n, d)
        ok = np.isfinite(r) & np.isfinite(m).all(axis=1)
        if ok.sum() < SYMMETRY_MIN_INLIERS:
            break
        scale = max(1.4826 * float(np.median(np.abs(r[ok]))), min_scale_mm)
        c = 4.685 * scale
        u = np.where(ok, np.abs(np.nan_to_num(r)) / c, np.inf)
        w = np.where(u < 1.0, (1.0 - u * u) ** 2, 0.0)
        inliers = int((w > 0).sum())
        if inliers < SYMMETRY_MIN_INLIERS:
            break
        rms = float(np.sqrt(np.sum(w * np.nan_to_num(r) ** 2) / np.sum(w)))
        t1, t2 = _tangent_basis(n)
        dist = pts @ n - d
        # d(mirrored)/d(param): -2((t.p) n + (n.p - d) t) for a turn t of the normal, 2 n for the offset
        jac = np.empty((len(pts), 3))
        mn = m @ n
        for k, t in enumerate((t1, t2)):
            jac[:, k] = -2.0 * ((pts @ t) * mn + dist * (m @ t))
        jac[:, 2] = 2.0 * mn
        sel = w > 0
        jw = jac[sel] * w[sel, None]
        lhs = jac[sel].T @ jw + 1e-9 * np.eye(3)
        rhs = -jw.T @ r[sel]
        step = np.linalg.solve(lhs, rhs)
        n = _unit(n + step[0] * t1 + step[1] * t2)
        d += float(step[2])
        if abs(step[0]) < 1e-5 and abs(step[1]) < 1e-5 and abs(step[2]) < 1e-3:
            converged = True
            break
    return SymmetryFit(n, d, rms, inliers, converged)


# --------------------------------------------------------------------------------------------
# The frame
# --------------------------------------------------------------------------------------------


def face_region_samples(
    surface: Surface, landmarks_uv: np.ndarray, axes: np.ndarray, origin: np.ndarray, ipd_mm: float, count: int
) -> np.ndarray:
    """``(N, 3)`` surface points around eyes, nose and mouth on a regular pixel grid (at most ``count``).

    The region, in the landmark axes and eye distances from the eyes' midpoint: ``|x| < 1``,
    ``-1.6 < y < 0.6`` and ``z > -0.7`` (the front of the face, not the ears or the neck).
    """
    marks = np.asarray(landmarks_uv, np.float64).reshape(5, 2)
    ipd_px = float(np.linalg.norm(marks[1] - marks[0]))
    lo = marks.min(axis=0) - 1.0 * ipd_px
    hi = marks.max(axis=0) + 1.0 * ipd_px
    area = float(np.prod(hi - lo))
    step = max(math.sqrt(area / (2.0 * count)), 0.5)
    us = np.arange(lo[0], hi[0], step)
    vs = np.arange(lo[1], hi[1], step)
    uu, vv = np.meshgrid(us, vs)
    pts = surface.points(np.stack([uu.ravel(), vv.ravel()], axis=1))
    pts = pts[np.isfinite(pts).all(axis=1)]
    local = (pts - origin) @ axes.T / ipd_mm
    keep = (np.abs(local[:, 0]) < 1.0) & (local[:, 1] > -1.6) & (local[:, 1] < 0.6) & (local[:, 2] > -0.7)
    pts = pts[keep]
    if len(pts) > count:
        pts = pts[np.linspace(0, len(pts) - 1, count).astype(np.int64)]
    return pts


def estimate_face_frame(
    surface: Surface,
    landmarks_uv: np.ndarray,
    landmarks_xyz: np.ndarray,
    camera_xyz: np.ndarray,
    *,
    samples: int = SYMMETRY_SAMPLES,
    start: FaceFrame | None = None,
) -> FaceFrame:
    """Estimate the face's own frame and the head pose from the surface (see the module docstring).

    Args:
        surface: The camera's depth surface.
        landmarks_uv: ``(5, 2)`` detector landmarks in the surface's pixels.
        landmarks_xyz: ``(5, 3)`` the same on the surface (output frame, mm; eyes and mouth finite).
        camera_xyz: ``(3,)`` the camera centre in the output frame.
        samples: Surface samples of the symmetry fit.
        start: A frame found before (e.g. on the same face with another relief): its symmetry
            plane is where the fit starts (fewer steps), and its region is sampled.

    Returns:
        The :class:`FaceFrame` (``pose.method`` ``"landmarks"`` when the symmetry fit failed).

    Raises:
        ValueError: Degenerate landmarks.
    """
    marks = np.asarray(landmarks_xyz, np.float64).reshape(5, 3)
    axes0 = landmark_axes(marks)
    eye_mid = 0.5 * (marks[0] + marks[1])
    ipd = float(np.linalg.norm(marks[1] - marks[0]))
    camera = np.asarray(camera_xyz, np.float64).reshape(3)
    pts = face_region_samples(surface, landmarks_uv, axes0, eye_mid, ipd, samples)
    method = "landmarks"
    axes, origin, rms, inliers = axes0, eye_mid, float("nan"), 0
    if len(pts) >= SYMMETRY_MIN_INLIERS:
        n0 = axes0[0] if start is None or start.pose.method != "symmetry" else start.axes[0]
        steps = SYMMETRY_ITERATIONS if start is None else max(SYMMETRY_ITERATIONS - 3, 3)
        fit = fit_symmetry_plane(surface, pts, n0, float(n0 @ eye_mid), iterations=steps)
        turn = math.degrees(math.acos(min(1.0, abs(float(fit.normal @ axes0[0])))))
        if fit.inliers >= SYMMETRY_MIN_INLIERS and turn <= SYMMETRY_MAX_TURN_DEG and np.isfinite(fit.rms_mm):
            x = fit.normal if fit.normal @ axes0[0] > 0 else -fit.normal
            axes = _upright(x, 0.5 * (marks[0] + marks[1]) - 0.5 * (marks[3] + marks[4]))
            origin = eye_mid - (float(fit.normal @ eye_mid) - fit.offset) * fit.normal  # moved onto the plane
            rms, inliers, method = fit.rms_mm, fit.inliers, "symmetry"
        else:
            logger.debug("symmetry fit refused: turn %.1f deg, %d inliers, rms %s", turn, fit.inliers, fit.rms_mm)
    pose = head_pose(axes, camera, origin, method)
    return FaceFrame(origin, axes, ipd, camera, pose, rms, inliers)


# --------------------------------------------------------------------------------------------
# The surface seen from the front
# --------------------------------------------------------------------------------------------


class FrameSurface:
    """The surface as a height field of the face frame (see the module docstring).

    Args:
        surface: The camera's depth surface.
        frame: The face frame.
        tolerance_mm: A point counts as found when the line and the surface meet within this.
        iterations: Most secant steps per line.
    """

    #: Other starting heights (mm, relative to the given start) tried where the start sees no surface.
    RESTARTS = (-12.0, -25.0, 12.0, -40.0, -60.0)

    def __init__(self, surface: Surface, frame: FaceFrame, *, tolerance_mm: float = 0.03, iterations: int = 8):
        self.surface = surface
        self.frame = frame
        self.tolerance_mm = float(tolerance_mm)
        self.iterations = int(iterations)

    def _residual(self, xy: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Height of the surface seen where the line point at height ``h`` projects, minus ``h``."""
        f = self.frame
        on_line = f.origin_xyz + xy[:, :1] * f.axes[0] + xy[:, 1:2] * f.axes[1] + h[:, None] * f.axes[2]
        uv = self.surface.project(on_line)
        seen = self.surface.points(uv)
        return (seen - f.origin_xyz) @ f.axes[2] - h, seen, uv

    def lookup(self, xy: np.ndarray, h_start: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Surface points at face-frame positions.

        Args:
            xy: ``(N, 2)`` face-frame ``(x, y)`` in mm.
            h_start: Starting height(s) of the search (mm); a good guess saves steps.

        Returns:
            ``(points_xyz (N, 3), uv (N, 2))``: output-frame points and their pixels; NaN where
            that part of the face is not seen by the camera (or off the surface).
        """
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        n = len(xy)
        if n == 0:
            return np.zeros((0, 3)), np.zeros((0, 2))
        h = np.broadcast_to(np.asarray(h_start, np.float64), (n,)).copy()
        h[~np.isfinite(h)] = 0.0
        g, seen, uv = self._residual(xy, h)
        for offset in self.RESTARTS:
            bad = np.flatnonzero(~np.isfinite(g))
            if not bad.size:
                break
            g2, seen2, uv2 = self._residual(xy[bad], h[bad] + offset)
            ok = np.isfinite(g2)
            sel = bad[ok]
            h[sel] += offset
            g[sel], seen[sel], uv[sel] = g2[ok], seen2[ok], uv2[ok]
        best_g = np.abs(g)
        best_seen, best_uv = seen, uv
        active = np.flatnonzero(np.isfinite(g) & (best_g >= self.tolerance_mm))
        h0, g0 = h[active], g[active]
        h1 = h0 + g0  # a fixed-point step first: exact for a line along the camera's axis
        for iteration in range(self.iterations):
            if iteration == 4:  # lines still far from the surface after four steps do not meet it in view
                close = best_g[active] < 1.0
                active, h0, g0, h1 = active[close], h0[close], g0[close], h1[close]
            if not active.size:
                break
            g1, seen1, uv1 = self._residual(xy[active], h1)
            better = np.isfinite(g1) & (np.abs(g1) < best_g[active])
            idx = active[better]
            best_g[idx], best_seen[idx], best_uv[idx] = np.abs(g1[better]), seen1[better], uv1[better]
            with np.errstate(invalid="ignore", divide="ignore"):
                slope = (g1 - g0) / (h1 - h0)
                step = np.where(np.isfinite(slope) & (slope < -0.05), -g1 / slope, g1)
            step = np.clip(np.nan_to_num(step), -20.0, 20.0)
            # a point that left the surface goes back halfway towards the last one that was on it
            lost = ~np.isfinite(g1)
            step[lost] = 0.5 * (h0[lost] - h1[lost])
            keep = (best_g[active] >= self.tolerance_mm) & (np.abs(step) > 1e-6)
            h0 = np.where(lost, h0, h1)[keep]
            g0 = np.where(lost, g0, g1)[keep]
            h1 = (h1 + step)[keep]
            active = active[keep]
        found = best_g < self.tolerance_mm
        return np.where(found[:, None], best_seen, np.nan), np.where(found[:, None], best_uv, np.nan)

    def heights(self, xy: np.ndarray, h_start: np.ndarray | float = 0.0) -> np.ndarray:
        """``(N,)`` face-frame heights ``z`` (mm) of the surface at ``(N, 2)`` positions (NaN: not seen)."""
        pts, _ = self.lookup(xy, h_start)
        return (pts - self.frame.origin_xyz) @ self.frame.axes[2]

    def profile_heights(self, xy: np.ndarray, h_start: float = 0.0, coarse: int = 8) -> np.ndarray:
        """Heights along profiles ``(..., n, 2)`` (the last axis runs along each profile); see :meth:`profiles`."""
        return self.profiles([(xy, h_start)], coarse)[0]

    def profiles(self, requests: list[tuple[np.ndarray, float]], coarse: int = 8) -> list[np.ndarray]:
        """Heights along many profiles at once: ``[(xy (..., n, 2), h_start)] -> [(..., n) heights]``.

        Every ``coarse``-th sample of each profile is looked up first; the others start from
        the heights of their neighbours (two or three steps instead of ten), and samples
        beyond the coarse samples that found the surface are not looked up (NaN). All
        requests share two lookups, so their cost is that of their samples, not their number.
        """
        plans, coarse_xy, coarse_h = [], [], []
        for xy, h0 in requests:
            xy = np.asarray(xy, np.float64)
            shape = xy.shape[:-1]
            flat = xy.reshape(-1, shape[-1], 2)
            count = flat.shape[1]
            step = coarse if count > 2 * coarse else 1
            picks = np.unique(np.r_[np.arange(0, count, step), count - 1])
            plans.append((shape, flat, picks))
            coarse_xy.append(flat[:, picks].reshape(-1, 2))
            coarse_h.append(np.full(flat.shape[0] * len(picks), float(h0)))
        h_coarse_all = self.heights(np.concatenate(coarse_xy), np.concatenate(coarse_h))
        fine_xy, fine_h, slots, offset = [], [], [], 0
        for shape, flat, picks in plans:
            rows, count = flat.shape[:2]
            h_coarse = h_coarse_all[offset : offset + rows * len(picks)].reshape(rows, len(picks))
            offset += rows * len(picks)
            start = np.full((rows, count), np.nan)
            positions = np.arange(count)
            for r in range(rows):
                ok = np.flatnonzero(np.isfinite(h_coarse[r]))
                if not ok.size:
                    continue
                lo = picks[max(ok[0] - 1, 0)]
                hi = picks[min(ok[-1] + 1, len(picks) - 1)]
                span = (positions >= lo) & (positions <= hi)
                start[r, span] = np.interp(positions[span], picks[ok], h_coarse[r, ok])
            known = np.zeros((rows, count), bool)
            known[:, picks] = True
            todo = np.flatnonzero((np.isfinite(start) & ~known).ravel())
            fine_xy.append(flat.reshape(-1, 2)[todo])
            fine_h.append(start.ravel()[todo])
            out = np.full(rows * count, np.nan)
            out.reshape(rows, count)[:, picks] = h_coarse
            slots.append((shape, out, todo))
        h_fine_all = self.heights(np.concatenate(fine_xy), np.concatenate(fine_h)) if fine_xy else np.zeros(0)
        results, offset = [], 0
        for shape, out, todo in slots:
            out[todo] = h_fine_all[offset : offset + len(todo)]
            offset += len(todo)
            results.append(out.reshape(shape))
        return results
