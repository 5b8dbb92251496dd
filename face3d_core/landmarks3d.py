"""Face points placed on the 3D surface, in the face's own frame.

The detector's five landmarks (eye centres, nose tip, mouth corners) only *seed* the search.
Every other point is found on the surface seen from the front of the face
(:class:`~face3d_core.face_frame.FrameSurface`: heights ``h(x, y)`` along the face's forward
axis, with ``x`` towards the person's left, ``y`` up, origin between the eyes on the symmetry
plane; lengths scale with the eye distance ``E``), so a turned or tilted head gives the same
points as a frontal one:

* ``nose_tip`` (pronasale): the centroid of the nose's cap (the surface within 0.02 E of its
  highest point) near the nose seed. A flat dome's single highest point would be
  ill-defined; the centroid of its cap is not. No cap standing 0.08 E above its surroundings:
  no nose (a flat picture), not found.
* ``nasion``: the deepest point of the midline profile (``x = 0``, the symmetry plane) between
  the nose tip and 0.6 E above the eyes; it must be a true dip (the profile rises again
  towards the glabella).
* ``subnasale``: on the midline below the tip, the point deepest below the chord from the nose
  tip to the upper lip's most prominent point (where the columella meets the lip).
* ``alare_right``, ``alare_left`` (the nose wings' most lateral points): on lines parallel to
  ``x`` from a little above the tip down to the subnasale, the alar-facial groove is a valley
  (positive curvature) of the height profile; it is picked 0.10-0.45 E from the midline on
  the first line, followed line by line, and its point farthest from the midline is the alare
  (so the nostrils, further in, never take over).
* ``mouth_right``, ``mouth_left`` (cheilion): the oral fissure is a valley of the vertical
  height profiles between the lips; it is followed from the midline outwards, and the mouth
  corner is where it fades (its depth below the lips drops under a third of the midline's).
  Without a fissure (an open mouth, a beard, too coarse a surface) the detector's corner is
  kept and says so.
* ``face_side_right``, ``face_side_left``: along the eye line, outwards from each eye, the
  first point where the surface turns more than :data:`SIDE_TURN_DEG` (45 degrees) away
  from the face's forward axis (the temple turning towards the ear; at 45 degrees the far side
  stays in view of a head turned up to about 30 degrees).

A point the camera does not see is **not found, with the reason** (the far side of a turned
head, a wing hidden behind the nose, the outline cut by the mask); so is a point seen nearly
edge-on (:data:`~face3d_core.face_frame.GRAZING_LIMIT_DEG`): its depth is not reliable.
Profiles are smoothed with a Gaussian of :data:`PROFILE_SIGMA_IPD` eye distances (about 1.5
mm) before curvatures and slopes are taken.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from face3d_core.face_frame import GRAZING_LIMIT_DEG, FaceFrame, FrameSurface, surface_normals
from face3d_core.surface import Surface

logger = logging.getLogger(__name__)

#: A surface steeper than this (degrees from the face's forward axis) ends the face at the eye line.
SIDE_TURN_DEG = 45.0
#: Gaussian smoothing of the profiles, in eye distances.
PROFILE_SIGMA_IPD = 0.025
#: The nose tip is the centroid of the nose's cap this deep below its highest point (eye distances).
NOSE_CAP_IPD = 0.02
#: A nose stands at least this far (eye distances) above its surroundings, or there is none.
MIN_NOSE_IPD = 0.08
#: Sampling step of the profiles, in eye distances.
PROFILE_STEP_IPD = 0.006

POINT_NAMES: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_right",
    "mouth_left",
    "nasion",
    "subnasale",
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
    "subnasale": "subnasale (below the nose)",
    "alare_right": "right nose wing",
    "alare_left": "left nose wing",
    "face_side_right": "right face side at the eyes",
    "face_side_left": "left face side at the eyes",
    "face_plane": "eye-mouth plane",
}


@dataclass(frozen=True)
class FacePoint:
    """One point of the face.

    Attributes:
        name: See :data:`POINT_NAMES`.
        xyz: ``(3,) float64`` position in mm in the model's output frame (``NaN`` if not found).
        uv: ``(2,) float64`` position in depth-map pixels ``(column, row)`` (where it was looked for
            when not found).
        method: ``"landmark"`` (the detector's), ``"refined"`` (moved on the surface from a
            detector landmark) or ``"derived"`` (found from the surface).
        note: Why it was not found, or how an edge case was handled.
        hidden: True when it was not found because the camera does not see it.
        view_deg: Angle between the surface's normal there and the direction to the camera
            (degrees; NaN when unknown): 0 faces the camera, 90 is edge-on.
    """

    name: str
    xyz: np.ndarray
    uv: np.ndarray
    method: str
    note: str = ""
    hidden: bool = False
    view_deg: float = float("nan")

    @property
    def found(self) -> bool:
        """True when the point has a finite position."""
        return bool(np.all(np.isfinite(self.xyz)))


@dataclass(frozen=True)
class FacePoints:
    """The points of a face, its eye-mouth plane and its frame.

    Attributes:
        points: Name -> :class:`FacePoint` (order :data:`POINT_NAMES`).
        plane_point: ``(3,)`` a point of the eye-mouth plane (centroid of eyes and mouth corners).
        plane_normal: ``(3,)`` its unit normal, pointing out of the face.
        ipd_px: Eye distance in depth-map pixels.
        landmarks_uv: ``(5, 2)`` the detector's landmarks the points were found from (depth-map pixels).
        frame: The face frame the points were found in (None when it could not be set up).
    """

    points: dict[str, FacePoint]
    plane_point: np.ndarray
    plane_normal: np.ndarray
    ipd_px: float
    landmarks_uv: np.ndarray
    frame: FaceFrame | None = field(default=None)

    def __getitem__(self, name: str) -> FacePoint:
        return self.points[name]

    def height(self, xyz: np.ndarray) -> np.ndarray:
        """Signed distance (mm) of ``(..., 3)`` points in front of the eye-mouth plane."""
        return (np.asarray(xyz, np.float64) - self.plane_point) @ self.plane_normal


def missing(name: str, uv: np.ndarray, method: str, note: str, *, hidden: bool = False) -> FacePoint:
    """A point that was not found, with the reason."""
    return FacePoint(name, np.full(3, np.nan), np.asarray(uv, np.float64).reshape(2), method, note, hidden)


def smooth_profiles(values: np.ndarray, sigma_samples: float) -> np.ndarray:
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


@dataclass(frozen=True)
class _Found:
    """A point located on the face-frame height field, before it is checked for being seen.

    Attributes:
        name: Point name.
        xy: ``(2,)`` face-frame position (mm).
        h: Its height (mm): the search's start.
        method: As :attr:`FacePoint.method`.
        note: As :attr:`FacePoint.note`.
    """

    name: str
    xy: np.ndarray
    h: float
    method: str
    note: str = ""


class PointFinder:
    """Finds the points of the module docstring on one face.

    The work is batched: the nose tip first, then every profile that only needs it (the
    midline, the lips, the eye line) in one pass, then the nose wings, then every point is
    checked for being seen in one lookup.

    Args:
        surface: The camera's depth surface.
        frame: The face frame.
        seeds_uv: ``(5, 2)`` detector landmarks in the surface's pixels.
        seeds_xyz: ``(5, 3)`` the same on the surface (NaN where off it).
    """

    def __init__(self, surface: Surface, frame: FaceFrame, seeds_uv: np.ndarray, seeds_xyz: np.ndarray):
        self.surface = surface
        self.frame = frame
        self.front = FrameSurface(surface, frame)
        self.ipd = float(frame.ipd_mm)
        self.step = PROFILE_STEP_IPD * self.ipd
        self.sigma = PROFILE_SIGMA_IPD / PROFILE_STEP_IPD  # in samples
        self.seeds_uv = np.asarray(seeds_uv, np.float64).reshape(5, 2)
        self.seeds_xyz = np.asarray(seeds_xyz, np.float64).reshape(5, 3)
        self.seeds_f = frame.to_frame(self.seeds_xyz)

    # -- helpers -----------------------------------------------------------------------------

    def _uv_guess(self, xy: np.ndarray, h: float) -> np.ndarray:
        xy = np.asarray(xy, np.float64).reshape(2)
        on_line = self.frame.from_frame(np.array([xy[0], xy[1], h]))
        return self.surface.project(on_line[None])[0]

    def _missing(self, name: str, xy, h: float, method: str, note: str, hidden: bool = False) -> FacePoint:
        return missing(name, self._uv_guess(xy, h), method, note, hidden=hidden)

    def _check(self, found: list[_Found]) -> dict[str, FacePoint]:
        """Look every located point up on the surface at once and keep those seen (not edge-on)."""
        if not found:
            return {}
        xy = np.array([f.xy for f in found], np.float64)
        h = np.array([f.h for f in found], np.float64)
        pts, uv = self.front.lookup(xy, h)
        ok = np.isfinite(pts).all(axis=1)
        angle = np.full(len(found), np.nan)
        if ok.any():
            angle[ok] = self.frame.view_angle_deg(pts[ok], surface_normals(self.surface, uv[ok]))
        out = {}
        for i, f in enumerate(found):
            if not ok[i]:
                out[f.name] = self._missing(f.name, f.xy, f.h, f.method, "not in view of the camera", hidden=True)
            elif not angle[i] <= GRAZING_LIMIT_DEG:
                seen = "seen edge-on" if np.isfinite(angle[i]) else "at a depth edge"
                out[f.name] = missing(f.name, uv[i], f.method, f"{seen}: its depth is not reliable", hidden=True)
            else:
                out[f.name] = FacePoint(f.name, pts[i], uv[i], f.method, f.note, view_deg=float(angle[i]))
        return out

    def _seed_point(self, name: str, index: int, note: str = "") -> FacePoint:
        """A detector landmark as it is (on the surface at its pixel), unless seen edge-on."""
        xyz = self.seeds_xyz[index]
        uv = self.seeds_uv[index]
        if not np.all(np.isfinite(xyz)):
            return missing(name, uv, "landmark", "the detector's point is not on the surface", hidden=True)
        normal = surface_normals(self.surface, uv[None])
        angle = float(self.frame.view_angle_deg(xyz[None], normal)[0]) if np.isfinite(normal).all() else 90.0
        if not angle <= GRAZING_LIMIT_DEG:
            return missing(name, uv, "landmark", "seen edge-on: its depth is not reliable", hidden=True)
        return FacePoint(name, xyz, uv, "landmark", note, view_deg=angle)

    # -- the points ----------------------------------------------------------------------------

    def nose_tip(self) -> _Found | FacePoint:
        """Pronasale (see the module docstring): located, or a missing point with the reason."""
        e = self.ipd
        seed = self.seeds_f[2] if np.all(np.isfinite(self.seeds_f[2])) else np.array([0.0, -0.6 * e, 0.4 * e])
        grid = _disc(seed[:2], 0.3 * e, 0.025 * e)
        h = self.front.heights(grid, float(seed[2]))
        if np.isfinite(h).sum() < 0.3 * len(h):
            return missing("nose_tip", self.seeds_uv[2], "refined", "the nose is not in view", hidden=True)
        best = grid[int(np.nanargmax(h))]
        ring = h[np.linalg.norm(grid - best, axis=1) > 0.22 * e]
        fine = _disc(best, 0.08 * e, 0.005 * e)
        hf = self.front.heights(fine, float(np.nanmax(h)))
        if not np.isfinite(hf).any():
            return missing("nose_tip", self.seeds_uv[2], "refined", "the nose is not in view", hidden=True)
        top = float(np.nanmax(hf))
        if not (np.isfinite(ring).any() and top - float(np.nanmedian(ring)) >= MIN_NOSE_IPD * e):
            note = "no nose stands out of the surface (a flat picture?)"
            return missing("nose_tip", self.seeds_uv[2], "refined", note)
        cap = np.isfinite(hf) & (hf >= top - NOSE_CAP_IPD * e)
        return _Found("nose_tip", fine[cap].mean(axis=0), top, "refined")

    def _nasion(self, ys: np.ndarray, h: np.ndarray) -> _Found | FacePoint:
        """The deepest dip of the midline ``h(ys)`` (smoothed, from below the nose up) under the brow."""
        e = self.ipd
        n = len(ys)
        margin = max(int(2 * self.sigma), 2)
        reach = int(0.35 * e / self.step)
        inner = np.arange(margin, n - margin)
        inner = inner[np.isfinite(h[inner])]
        if len(inner) < 4 * margin:
            return self._missing(
                "nasion", [0.0, 0.1 * e], 0.0, "derived", "the midline above the nose is not in view", True
            )
        dips = inner[(h[inner] <= h[inner - 1]) & (h[inner] <= h[inner + 1])]
        rise = np.array([np.nanmax(h[k : k + reach + 1]) - h[k] for k in dips])
        if not dips.size or not rise.max() > 0.002 * e:
            return self._missing("nasion", [0.0, 0.1 * e], 0.0, "derived", "no dip between the nose and the brow")
        k = int(dips[np.argmax(rise)])  # the dip with the highest brow above it
        return _Found("nasion", np.array([0.0, ys[k]]), float(h[k]), "derived")

    def _subnasale(self, ys: np.ndarray, h: np.ndarray, tip_y: float, mouth_y: float) -> _Found | FacePoint:
        """Where the columella meets the upper lip, on the midline ``h(ys)`` (ys increasing)."""
        e = self.ipd
        span = (ys >= mouth_y - 0.1 * e) & (ys <= tip_y)
        if not mouth_y < tip_y - 0.2 * e:
            return self._missing("subnasale", [0.0, tip_y], 0.0, "derived", "the mouth is not below the nose")
        if np.isfinite(h[span]).mean() < 0.9:
            return self._missing(
                "subnasale", [0.0, tip_y - 0.2 * e], 0.0, "derived", "the midline below the nose is not in view", True
            )
        idx = np.flatnonzero(span & np.isfinite(h))  # short gaps: steep walls under the tip
        near_tip = idx[ys[idx] >= tip_y - 0.1 * e]
        k_tip = int(near_tip[np.argmax(h[near_tip])]) if near_tip.size else int(idx[-1])
        near_mouth = idx[np.abs(ys[idx] - mouth_y) <= 0.1 * e]
        k_mouth = int(near_mouth[np.argmin(h[near_mouth])])  # the fissure between the lips
        if k_tip - k_mouth < 8:
            return self._missing("subnasale", [0.0, tip_y], 0.0, "derived", "no upper lip below the nose")
        seg = np.arange(k_mouth, k_tip + 1)
        t = (ys[seg] - ys[k_mouth]) / (ys[k_tip] - ys[k_mouth])
        depth = h[k_mouth] + t * (h[k_tip] - h[k_mouth]) - h[seg]
        k = int(seg[np.nanargmax(depth)])
        if not np.isfinite(h[k : k_tip + 1]).mean() >= 0.9:  # the columella is hidden behind the tip
            return self._missing("subnasale", [0.0, ys[k]], h[k], "derived", "hidden behind the nose tip", True)
        if not np.nanmax(depth) > 0.02 * e:
            return self._missing(
                "subnasale", [0.0, ys[k]], h[k], "derived", "no angle between the nose and the upper lip"
            )
        return _Found("subnasale", np.array([0.0, ys[k]]), float(h[k]), "derived")

    def _mouth_corner(self, name: str, sign: float, xs: np.ndarray, ys: np.ndarray, h: np.ndarray) -> _Found | None:
        """The end of the oral fissure on one side: columns ``h (len(xs), len(ys))``, ys decreasing."""
        e = self.ipd
        reach = max(int(0.03 * e / self.step), 2)
        valley, depth = [], []
        k_prev: int | None = None
        for c in range(len(xs)):
            col = h[c]
            ok = np.isfinite(col)
            if ok.mean() < 0.8:
                break
            if not ok.all():  # short gaps (steep walls between the lips): bridged linearly
                col = np.interp(np.arange(len(col)), np.flatnonzero(ok), col[ok])
            # the first column: the deepest valley near the mouth line; then the nearest one to the last
            start = max(int(0.07 * e / self.step), reach)  # the first column: near the detector's mouth line
            mid = len(ys) // 2
            lo, hi = (
                (max(mid - start, 1), min(mid + start + 1, len(ys) - 1))
                if k_prev is None
                else (max(k_prev - reach, 1), min(k_prev + reach + 1, len(ys) - 1))
            )
            window = col[lo:hi]
            inner = (window <= col[lo - 1 : hi - 1]) & (window <= col[lo + 1 : hi + 1])
            if not inner.any():
                break
            cand = lo + np.flatnonzero(inner)
            if k_prev is None:
                dips = [min(col[: k + 1].max(), col[k:].max()) - col[k] for k in cand]
                k = int(cand[int(np.argmax(dips))])
            else:
                k = int(cand[np.argmin(np.abs(cand - k_prev))])
            if abs(k - mid) > start:  # drifted off the mouth line (into the chin's or the cheek's creases)
                break
            d = min(col[: k + 1].max(), col[k:].max()) - col[k]
            if not d > 0:
                break
            valley.append(k)
            depth.append(d)
            k_prev = k
        if len(depth) < 5 or max(depth) <= 0.005 * e:
            return None
        depth_arr = np.asarray(depth)
        # the corner: where the fissure's depth falls below 15 % of its greatest (linear between columns)
        threshold = 0.15 * float(depth_arr.max())
        top = int(np.argmax(depth_arr))
        below = np.flatnonzero(depth_arr[top:] < threshold)
        last = len(depth_arr) - 1
        x_end = float(xs[last])
        if below.size:
            c1 = top + int(below[0])
            c0 = c1 - 1
            t = (depth_arr[c0] - threshold) / max(depth_arr[c0] - depth_arr[c1], 1e-12)
            x_end = float(xs[c0] + t * (xs[c1] - xs[c0]))
            last = c0
        if x_end < 0.2 * e:
            return None
        return _Found(name, np.array([sign * x_end, ys[valley[last]]]), float(h[last, valley[last]]), "refined")

    def _face_side(self, name: str, sign: float, s: np.ndarray, h: np.ndarray) -> _Found | FacePoint:
        """Outwards along the eye line (``h(s)``, smoothed): the first point steeper than :data:`SIDE_TURN_DEG`."""
        e = self.ipd
        n = _first_run(np.isfinite(h))
        if n < 8:
            return self._missing(name, [sign * s[0], 0.0], 0.0, "derived", "the side of the face is not in view", True)
        half = max(int(round(2 * self.sigma)), 1)
        k = np.arange(n)
        hi, lo = np.minimum(k + half, n - 1), np.maximum(k - half, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            angle = np.degrees(np.arctan2(h[lo] - h[hi], s[hi] - s[lo]))
        # the first point from where the surface keeps turning away (over 0.08 eye distances, or to
        # its end): an eye socket's rim that is briefly steep does not count
        steep = angle > SIDE_TURN_DEG
        window = max(int(0.08 * e / self.step), 1)
        run = np.convolve(steep[::-1].astype(np.int64), np.ones(window, np.int64), "full")[:n][::-1]
        lasting = steep & ((run >= window) | (np.arange(n) + window > n))
        k_first = np.flatnonzero(lasting)
        if k_first.size:
            k_side = int(k_first[0])
            return _Found(name, np.array([sign * s[k_side], 0.0]), float(h[k_side]), "derived")
        # the surface ends before it turns away: the camera's outline (a turned head) or the mask's
        end_xy, end_h = np.array([sign * s[n - 1], 0.0]), float(h[n - 1])
        if n == len(s):
            return self._missing(
                name, end_xy, end_h, "derived", "the surface does not turn away within 1.5 eye distances"
            )
        pts, uv = self.front.lookup(np.array([[sign * s[max(n - 3, 0)], 0.0]]), end_h)
        normal = surface_normals(self.surface, uv) if np.isfinite(uv).all() else np.full((1, 3), np.nan)
        edge_on = not (
            np.isfinite(normal).all() and self.frame.view_angle_deg(pts, normal)[0] <= GRAZING_LIMIT_DEG - 15.0
        )
        if edge_on:
            return self._missing(
                name, end_xy, end_h, "derived", "this side of the face is turned away from the camera", True
            )
        return self._missing(
            name, end_xy, end_h, "derived", "the face outline is cut off (by the mask or the photo's edge)"
        )

    def _alae(self, tip: _Found, sub_y: float, sub_h: float) -> list[_Found | FacePoint]:
        """The nose wings' most lateral points (see the module docstring)."""
        e = self.ipd
        span = max(float(tip.xy[1] - sub_y), 0.1 * e)
        rows = np.arange(tip.xy[1] + 0.5 * span, sub_y - 0.1 * span, -0.015 * e)
        s = np.arange(0.0, 0.6 * e + 1e-9, self.step)
        zone = (s >= 0.10 * e) & (s <= 0.45 * e)
        window = 0.03 * e
        requests = [
            (np.stack(np.broadcast_arrays(sign * s[None, :], rows[:, None]), axis=-1), sub_h) for sign in (-1.0, 1.0)
        ]
        heights = self.front.profiles(requests)
        camera_x = float(self.frame.to_frame(self.frame.camera_xyz)[0])
        far_side = (
            0.0
            if abs(camera_x) < 0.1 * np.linalg.norm(self.frame.camera_xyz - self.frame.origin_xyz)
            else -np.sign(camera_x)
        )
        found: list[_Found | FacePoint] = []
        for name, sign, h_raw in zip(("alare_right", "alare_left"), (-1.0, 1.0), heights, strict=True):
            hidden_note = "the nose wing is not in view (hidden behind the nose)"
            guess = [sign * 0.3 * e, sub_y]
            h = smooth_profiles(h_raw, self.sigma)
            curvature = np.gradient(np.gradient(h, axis=1), axis=1)
            if (np.isfinite(h[:, zone]).mean(axis=1) >= 0.7).mean() < 0.5:
                found.append(self._missing(name, guess, sub_h, "derived", hidden_note, True))
                continue
            track, k_prev, misses = [], None, 0
            for r in range(len(rows)):
                allowed = zone if k_prev is None else zone & (np.abs(s - s[k_prev]) <= window)
                c = np.where(allowed & np.isfinite(curvature[r]), curvature[r], -np.inf)
                k = int(np.argmax(c))
                if not c[k] > 0:
                    misses += 1
                    if k_prev is not None and misses >= 3:
                        break
                    continue
                misses, k_prev = 0, k
                track.append((r, k))
            if not track:
                found.append(self._missing(name, guess, sub_h, "derived", "no groove beside the nose wing"))
                continue
            upper = [rk for rk in track if rows[rk[0]] >= sub_y + 0.15 * span] or track  # the wing, not its base
            r, k = max(upper, key=lambda rk: s[rk[1]])
            inner = int(np.searchsorted(s, 0.10 * e)) if sign == far_side else k
            if not np.isfinite(h[r, inner : k + int(0.05 * e / self.step) + 1]).all():
                # on the side turned away, a groove partly hidden behind the nose: what was found may be another crease
                found.append(self._missing(name, [sign * s[k], rows[r]], sub_h, "derived", hidden_note, True))
                continue
            found.append(_Found(name, np.array([sign * s[k], rows[r]]), float(h[r, k]), "derived"))
        return found

    def find(self) -> dict[str, FacePoint]:
        """All points of :data:`POINT_NAMES`."""
        e = self.ipd
        points: dict[str, FacePoint] = {}
        located: list[_Found] = []
        points["right_eye"] = self._seed_point("right_eye", 0)
        points["left_eye"] = self._seed_point("left_eye", 1)
        tip = self.nose_tip()
        if isinstance(tip, FacePoint):
            points["nose_tip"] = tip
        else:
            located.append(tip)
        seeds = self.seeds_f
        seeds_ok = np.isfinite(seeds[3:5]).all()
        mouth_y = float(seeds[3:5, 1].mean()) if seeds_ok else -1.1 * e
        tip_y = float(tip.xy[1]) if isinstance(tip, _Found) else -0.55 * e
        tip_h = float(tip.h) if isinstance(tip, _Found) else 0.4 * e
        mouth_h = float(seeds[3:5, 2].mean()) if seeds_ok else 0.0
        # one pass for the midline, the lips and the eye line
        mid_ys = np.arange(mouth_y - 0.15 * e, 0.6 * e, self.step)
        half = 0.5 * abs(float(seeds[4, 0] - seeds[3, 0])) if seeds_ok else 0.4 * e
        lip_ys = np.arange(mouth_y + 0.15 * e, mouth_y - 0.15 * e, -self.step)
        lip_xs = np.arange(0.1 * e, half + 0.3 * e, 0.015 * e)
        side_s = np.arange(0.45 * e, 1.5 * e, self.step)
        eye_h = float(np.nanmean(seeds[:2, 2])) if np.isfinite(seeds[:2, 2]).any() else 0.0
        requests = [(np.stack([np.zeros_like(mid_ys), mid_ys], axis=1), 0.5 * (tip_h + mouth_h))]
        for sign in (-1.0, 1.0):
            requests.append((np.stack(np.broadcast_arrays(sign * lip_xs[:, None], lip_ys[None, :]), axis=-1), mouth_h))
        for sign in (-1.0, 1.0):
            requests.append((np.stack([sign * side_s, np.zeros_like(side_s)], axis=1), eye_h))
        mid_h, lip_r, lip_l, side_r, side_l = (smooth_profiles(h, self.sigma) for h in self.front.profiles(requests))
        above = mid_ys >= tip_y + 0.4 * (0.0 - tip_y)
        results: list[_Found | FacePoint] = [self._nasion(mid_ys[above], mid_h[above])]
        for name, index, sign, lips in (("mouth_right", 3, -1.0, lip_r), ("mouth_left", 4, 1.0, lip_l)):
            corner = self._mouth_corner(name, sign, lip_xs, lip_ys, lips) if seeds_ok else None
            results.append(
                corner or self._seed_point(name, index, "the detector's corner (no oral fissure found on the surface)")
            )
        results.append(self._face_side("face_side_right", -1.0, side_s, side_r))
        results.append(self._face_side("face_side_left", 1.0, side_s, side_l))
        sub: _Found | FacePoint
        if isinstance(tip, _Found):
            sub = self._subnasale(mid_ys, mid_h, tip_y, mouth_y)
        else:
            sub = missing("subnasale", self.seeds_uv[2], "derived", "the nose tip was not found")
        results.append(sub)
        if isinstance(tip, _Found):
            sub_y = float(sub.xy[1]) if isinstance(sub, _Found) else tip_y - 0.3 * (tip_y - mouth_y)
            sub_h = float(sub.h) if isinstance(sub, _Found) else tip_h - 0.3 * e
            results.extend(self._alae(tip, sub_y, sub_h))
        else:
            why = "the nose tip was not found"
            results.extend(missing(n, self.seeds_uv[2], "derived", why) for n in ("alare_right", "alare_left"))
        for r in results:
            if isinstance(r, FacePoint):
                points[r.name] = r
            else:
                located.append(r)
        points.update(self._check(located))
        return {name: points[name] for name in POINT_NAMES}


def _disc(center: np.ndarray, radius: float, step: float) -> np.ndarray:
    """``(N, 2)`` grid points within ``radius`` of ``center``."""
    offsets = np.arange(-radius, radius + 0.5 * step, step)
    du, dv = np.meshgrid(offsets, offsets)
    inside = du * du + dv * dv <= radius * radius
    return np.asarray(center, np.float64)[:2] + np.stack([du[inside], dv[inside]], axis=1)
