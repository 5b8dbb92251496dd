"""Relative depth made self-consistent: the relief that makes the face symmetric in 3D.

A relative-depth network gives inverse depth up to an unknown scale and shift,
``d = s / Z + t``. With the eyes set 63 mm apart (the scale) one unknown is left: how deep
the face is. :mod:`face3d_core.reconstruct` assumes a relief (80 mm between the 2nd and 98th
percentile of the face's depth, times the depth scale); that assumption is what made nose
protrusion 20-30 % off. For measuring, the relief is *fitted* instead.

One family of reconstructions, indexed by ``rho = relief / z_near`` (the ratio that fixes the
shape; the eye distance fixes the size), maps the model's depths to
``Z' = s / (alpha / Z + beta)`` (:class:`ReliefMap`; the inverse depths are kept exactly, so
this equals reconstructing with another relief, at the cost of a few multiplications). Two
kinds of evidence choose ``rho`` (:func:`fit_relief`), each a Gaussian term on ``log rho``:

* **Symmetry.** A face is mirror-symmetric. Stretching depth along the camera's axis keeps a
  frontal face symmetric but shears a turned one: its eye line and mouth line stop being
  parallel, and the nose tip leaves the plane halfway between the eyes and between the mouth
  corners (:func:`symmetry_residuals_of`). With the five points' pixels fixed, these residuals
  vanish at the true relief once the head is turned by more than a few degrees; their noise is
  the detector's placement error and the face's own asymmetry.
* **Adult proportions.** The nose tip stands about :data:`PRIOR_PROTRUSION_IPD` eye distances in
  front of the plane of the eyes and the mouth corners (0.55 in MediaPipe's canonical face,
  0.49 in ICT-FaceKit's neutral face: both averages of many adults). Between people it varies
  by about :data:`PRIOR_PROTRUSION_SD` (12 %; nasal tip protrusion varies by about 10 % between
  adults of one group and more between groups: Farkas et al., "International anthropometric
  study of facial morphology in various ethnic groups/races", J Craniofac Surg 2005).

A frontal face gets the prior and its spread; a turned face gets the relief its symmetry
asks for, with an uncertainty from the cost's curvature (never below :data:`MIN_SIGMA_REL`).
``sigma_rel`` is the relative 1-sigma uncertainty of depth differences that is left: what the
± of a distance along the camera's axis reports.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from face3d_core.geometry import inverse_depth_coefficients
from face3d_core.surface import DepthSurface

logger = logging.getLogger(__name__)

#: Nose tip in front of the eye-mouth plane, in eye distances, for an average adult (see the module docstring).
PRIOR_PROTRUSION_IPD = 0.52
#: Relative spread (1 SD) of that ratio between adults.
PRIOR_PROTRUSION_SD = 0.12
#: Candidate reliefs, as factors of the model's own (the relief the 3D view shows).
RHO_FACTORS = np.exp(np.linspace(math.log(0.25), math.log(4.0), 121))
#: The relief is never known better than this (relative, 1 SD): a network's depth is not exactly
#: an affine function of inverse depth, so a perfectly symmetric fit still leaves this much.
MIN_SIGMA_REL = 0.04


@dataclass(frozen=True)
class ReliefMap:
    """Model depth -> depth with another relief: ``Z' = scale / (alpha / Z + beta)`` (``"inverse"`` models).

    For ``"affine"`` models ``Z' = scale * (alpha * Z + beta)``. Built by :func:`relief_map`.

    Attributes:
        rho: Relief over near distance of the new reconstruction.
        alpha: See above.
        beta: See above.
        scale: Sets the eye distance back to the model's.
        model: ``"inverse"`` or ``"affine"``.
    """

    rho: float
    alpha: float
    beta: float
    scale: float
    model: str = "inverse"

    def __call__(self, z_mm: np.ndarray) -> np.ndarray:
        """The remapped depths of ``(N,)`` model depths (mm)."""
        z = np.asarray(z_mm, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.model == "affine":
                return self.scale * (self.alpha * z + self.beta)
            return self.scale / (self.alpha / z + self.beta)

    def inverse(self, z_mm: np.ndarray) -> np.ndarray:
        """The model's depth of a remapped depth (the inverse of calling the map)."""
        z = np.asarray(z_mm, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.model == "affine":
                return (z / self.scale - self.beta) / self.alpha
            return self.alpha / (self.scale / z - self.beta)


def model_rho(model) -> float | None:
    """The ``rho`` (relief over near distance) a relative-depth model was built with; None for metric depth."""
    conv = getattr(model, "depth_conversion", None)
    if conv is None or conv.scale_source != "eyes" or not conv.z_near > 0:
        return None
    return float(conv.relief / conv.z_near)


def _relief_coefficients(model, rhos: np.ndarray, eyes_uv: np.ndarray, eyes_z_mm: np.ndarray):
    """``(alpha, beta, scale)`` arrays of the :class:`ReliefMap` for each of ``rhos (K,)``."""
    conv = model.depth_conversion
    rhos = np.asarray(rhos, np.float64)
    z_eyes = np.asarray(eyes_z_mm, np.float64)
    if conv.model == "affine":
        # Z = z_far - relief u, u = (d - d_lo) / (d_hi - d_lo); new: Z1 = (1 + rho) - rho u
        z_far0 = conv.z_near + conv.relief
        alpha, beta = rhos / conv.relief, (1.0 + rhos) - rhos * z_far0 / conv.relief
        z1 = alpha[:, None] * z_eyes + beta[:, None]
    else:
        a0, b0 = inverse_depth_coefficients(conv.d_lo, conv.d_hi, conv.z_near, conv.z_near + conv.relief)
        a1 = (1.0 - 1.0 / (1.0 + rhos)) / (conv.d_hi - conv.d_lo)  # inverse_depth_coefficients(d_lo, d_hi, 1, 1 + rho)
        b1 = 1.0 / (1.0 + rhos) - a1 * conv.d_lo
        alpha, beta = a1 / a0, b1 - a1 * b0 / a0
        z1 = 1.0 / (alpha[:, None] / z_eyes + beta[:, None])
    intr = model.intrinsics
    rays = np.stack([(eyes_uv[:, 0] - intr.cx) / intr.fx, (intr.cy - eyes_uv[:, 1]) / intr.fy, -np.ones(2)], axis=1)
    old = np.linalg.norm(rays[0] * z_eyes[0] - rays[1] * z_eyes[1])
    new = np.linalg.norm(rays[0] * z1[:, :1] - rays[1] * z1[:, 1:2], axis=1)
    return alpha, beta, old / np.maximum(new, 1e-12)


def relief_map(model, rho: float, eyes_uv: np.ndarray, eyes_z_mm: np.ndarray) -> ReliefMap:
    """The :class:`ReliefMap` of a relative-depth model for ``rho``, keeping its eye distance.

    Args:
        model: A :class:`~face3d_core.reconstruct.FaceModel3D` with an ``"eyes"`` depth conversion.
        rho: The new relief over near distance (``> 0``).
        eyes_uv: ``(2, 2)`` the eye landmarks in depth-map pixels.
        eyes_z_mm: ``(2,)`` the model's depth at the eyes (mm along the camera axis).
    """
    alpha, beta, scale = _relief_coefficients(model, np.array([rho]), np.asarray(eyes_uv, np.float64), eyes_z_mm)
    return ReliefMap(float(rho), float(alpha[0]), float(beta[0]), float(scale[0]), model.depth_conversion.model)


@dataclass(frozen=True)
class ReliefFit:
    """The relief chosen for a relative-depth face (see the module docstring).

    Attributes:
        method: ``"symmetry"`` (the face's own symmetry decided), ``"symmetry+prior"`` (both
            weighed in), ``"prior"`` (a frontal face: adult proportions) or ``"metric"``
            (metric depth: nothing to fit).
        rho: Relief over near distance chosen (NaN for metric).
        factor: ``rho`` over the model's own (1 = the relief the 3D view shows).
        sigma_rel: Relative 1-sigma uncertainty left on depth differences.
        depth_map: The :class:`ReliefMap` to apply to the model's depths (None: keep them).
    """

    method: str
    rho: float
    factor: float
    sigma_rel: float
    depth_map: ReliefMap | None = None

    def describe(self) -> str:
        """The fit in words, for the notes under a table."""
        if self.method == "metric":
            return "depth measured in millimetres"
        how = {
            "symmetry": "fitted so the face is symmetric in 3D",
            "symmetry+prior": "fitted to the face's symmetry and typical adult proportions",
            "prior": "from typical adult proportions (a face seen straight on shows no depth scale)",
        }[self.method]
        return f"face depth {how} (± {100 * self.sigma_rel:.0f} %)"

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        finite = math.isfinite(self.rho)
        return {
            "method": self.method,
            "relief_factor": round(self.factor, 3) if finite else None,
            "sigma_rel": round(self.sigma_rel, 3),
            "text": self.describe(),
        }


METRIC_FIT = ReliefFit("metric", float("nan"), 1.0, 0.0)


def symmetry_residuals_of(points: np.ndarray) -> np.ndarray:
    """``(..., 4)`` how far five points ``(..., 5, 3)`` (eyes, nose tip, mouth corners) are from mirror symmetry (mm).

    Two: the eye line and the mouth line are not parallel (their directions' difference across
    the mean direction, times half the eye distance); two: the eyes' and the mouth's midpoints
    are not on the plane through the nose tip across the mean direction.
    """
    pts = np.asarray(points, np.float64)
    eye_r, eye_l, tip, mouth_r, mouth_l = (pts[..., i, :] for i in range(5))
    e, m = eye_l - eye_r, mouth_l - mouth_r
    e_len = np.linalg.norm(e, axis=-1, keepdims=True)
    e_hat, m_hat = e / e_len, m / np.linalg.norm(m, axis=-1, keepdims=True)
    n = e_hat + m_hat
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    diff = (e_hat - m_hat) * (0.5 * e_len)
    t1 = np.cross(n, np.array([0.0, 1.0, 0.0]))
    t1 /= np.linalg.norm(t1, axis=-1, keepdims=True)
    t2 = np.cross(n, t1)

    def dot(a, b):
        return np.sum(a * b, axis=-1)

    return np.stack(
        [dot(diff, t1), dot(diff, t2), dot(n, 0.5 * (eye_r + eye_l) - tip), dot(n, 0.5 * (mouth_r + mouth_l) - tip)],
        axis=-1,
    )


def protrusion_ipd(points: np.ndarray) -> np.ndarray:
    """How far the nose tip stands in front of the eyes' and mouth corners' plane, in eye distances.

    ``(..., 5, 3)`` points (eyes, nose tip, mouth corners) -> ``(...)``.
    """
    pts = np.asarray(points, np.float64)
    quad = pts[..., [0, 1, 3, 4], :]
    centroid = quad.mean(axis=-2, keepdims=True)
    normal = np.linalg.svd(quad - centroid)[2][..., 2, :]
    height = np.abs(np.sum((pts[..., 2, :] - centroid[..., 0, :]) * normal, axis=-1))
    return height / np.linalg.norm(pts[..., 1, :] - pts[..., 0, :], axis=-1)


def fit_relief(
    model,
    surface: DepthSurface,
    landmarks_uv: np.ndarray,
    tip_uv: np.ndarray | None,
    *,
    landmark_sd_px: float | None = None,
    asymmetry_sd_mm: float = 2.0,
) -> ReliefFit:
    """Choose the relief of a relative-depth face (see the module docstring).

    The five points (the detector's eyes and mouth corners, and the nose tip found on the
    surface) keep their pixels while the relief changes; for each relief of a fine grid of
    :data:`RHO_FACTORS` their mirror-symmetry residuals (:func:`symmetry_residuals_of`) and
    the prior on the nose's protrusion give a cost, in units of the landmarks' placement
    noise. Its minimum (refined by a parabola) is the relief; the curvature there is the
    information, so a frontal face (no curvature from symmetry) gets the prior's spread.

    Args:
        model: The :class:`~face3d_core.reconstruct.FaceModel3D`.
        surface: Its :class:`~face3d_core.surface.DepthSurface` (the model's own depths).
        landmarks_uv: ``(5, 2)`` detector landmarks in depth-map pixels.
        tip_uv: ``(2,)`` the nose tip found on the surface (pixels), or None (the prior only).
        landmark_sd_px: Placement noise of the landmarks (1 SD, pixels); default 3 % of the
            eye distance, at least 1 pixel (a face detector's typical error).
        asymmetry_sd_mm: How far a real face's landmarks are from mirror symmetry (1 SD, mm).

    Returns:
        The :class:`ReliefFit` (:data:`METRIC_FIT` for metric depth).
    """
    rho0 = model_rho(model)
    if rho0 is None:
        return METRIC_FIT
    marks = np.asarray(landmarks_uv, np.float64).reshape(5, 2)
    ipd_px = float(np.linalg.norm(marks[1] - marks[0]))
    noise_px = landmark_sd_px if landmark_sd_px is not None else max(0.03 * ipd_px, 1.0)
    eyes_z = -(np.asarray(model.landmarks_xyz, np.float64)[:2, 2] + model.origin_mm[2])
    base = surface.with_depth_map(None)
    uv = marks.copy()
    if tip_uv is not None:
        uv[2] = tip_uv
    log_f = np.log(RHO_FACTORS)
    alpha, beta, scale = _relief_coefficients(model, rho0 * RHO_FACTORS, marks[:2], eyes_z)
    z0 = base.depth(uv)
    with np.errstate(invalid="ignore", divide="ignore"):
        if model.depth_conversion.model == "affine":
            z = scale[:, None] * (alpha[:, None] * z0 + beta[:, None])
        else:
            z = scale[:, None] / (alpha[:, None] / z0 + beta[:, None])
    intr = base.intrinsics
    rays = np.stack([(uv[:, 0] - intr.cx) / intr.fx, (intr.cy - uv[:, 1]) / intr.fy, -np.ones(5)], axis=1)
    pts = rays[None] * z[:, :, None]  # (K, 5, 3) camera frame (the origin does not matter here)
    sym, prior = np.full(len(log_f), np.nan), np.full(len(log_f), np.nan)
    if np.isfinite(pts).all():
        ipd_mm = np.linalg.norm(pts[:, 1] - pts[:, 0], axis=1)
        # placement noise (a pixel's size at the face) and the face's own asymmetry
        noise_mm = np.hypot(noise_px * ipd_mm / ipd_px, asymmetry_sd_mm)
        if tip_uv is not None:
            sym = 0.5 * np.sum((symmetry_residuals_of(pts) / noise_mm[:, None]) ** 2, axis=1)
        p = protrusion_ipd(pts)
        with np.errstate(divide="ignore", invalid="ignore"):
            prior = 0.5 * (np.log(p / PRIOR_PROTRUSION_IPD) / PRIOR_PROTRUSION_SD) ** 2
    have_sym, have_prior = np.isfinite(sym).all(), np.isfinite(prior).all()
    if not (have_sym or have_prior):
        return ReliefFit("prior", rho0, 1.0, 0.25, None)
    total = (sym if have_sym else 0.0) + (prior if have_prior else 0.0)
    k = int(np.argmin(total))
    h = float(log_f[1] - log_f[0])
    j = min(max(k, 1), len(total) - 2)

    def curvature(values) -> float:
        if np.isscalar(values):
            return 0.0
        return max(float(values[j - 1] - 2 * values[j] + values[j + 1]) / (h * h), 0.0)

    best = float(log_f[k])
    if 0 < k < len(total) - 1:
        denom = total[k - 1] - 2 * total[k] + total[k + 1]
        if denom > 0:
            best += float(np.clip(0.5 * h * (total[k - 1] - total[k + 1]) / denom, -h, h))
    info_sym = curvature(sym) if have_sym else 0.0
    info_prior = curvature(prior) if have_prior else 0.0
    info = info_sym + info_prior
    sigma = max(1.0 / math.sqrt(info), MIN_SIGMA_REL) if info > 0 else 0.25
    if info_sym > 4.0 * info_prior:
        method = "symmetry"
    elif info_sym > 0.25 * info_prior:
        method = "symmetry+prior"
    else:
        method = "prior"
    factor = math.exp(best)
    logger.debug(
        "relief fit: factor %.3f, sigma %.3f, %s (information: symmetry %.1f, prior %.1f)",
        factor, sigma, method, info_sym, info_prior,
    )  # fmt: skip
    return ReliefFit(
        method, rho0 * factor, factor, float(min(sigma, 0.25)), relief_map(model, rho0 * factor, marks[:2], eyes_z)
    )
