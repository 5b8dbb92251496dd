"""The face's own frame: head pose angles, the symmetry plane, and the surface seen from the face's front.

Known answers on surfaces with closed forms (a sphere seen by a pinhole camera, a mirror-
symmetric relief turned by a known rotation); the open head scans are in ``test_measure.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from face3d_core.face_frame import (
    FaceFrame,
    FrameSurface,
    HeadPose,
    estimate_face_frame,
    head_pose,
    pose_rotation,
)
from face3d_core.geometry import Intrinsics


class SphereSurface:
    """A sphere of radius ``r`` centred ``d`` mm in front of a pinhole camera (exact ray casting)."""

    def __init__(self, radius: float = 80.0, distance: float = 400.0, size: int = 400):
        self.r, self.d = radius, distance
        self.intr = Intrinsics.from_fov(size, size, 40.0)

    def points(self, uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        ray = np.stack(
            [(uv[:, 0] - self.intr.cx) / self.intr.fx, (self.intr.cy - uv[:, 1]) / self.intr.fy, -np.ones(len(uv))], 1
        )
        ray /= np.linalg.norm(ray, axis=1, keepdims=True)
        centre = np.array([0.0, 0.0, -self.d])
        b = ray @ centre
        disc = b * b - (centre @ centre - self.r**2)
        with np.errstate(invalid="ignore"):
            t = b - np.sqrt(disc)
        return np.where((disc >= 0)[:, None], ray * t[:, None], np.nan)

    def project(self, xyz: np.ndarray) -> np.ndarray:
        p = np.asarray(xyz, np.float64).reshape(-1, 3)
        return np.stack(
            [self.intr.cx + self.intr.fx * p[:, 0] / -p[:, 2], self.intr.cy - self.intr.fy * p[:, 1] / -p[:, 2]], 1
        )


def _frame(axes: np.ndarray, origin: np.ndarray) -> FaceFrame:
    camera = np.zeros(3)
    return FaceFrame(origin, axes, 63.0, camera, head_pose(axes, camera, origin, "symmetry"))


@pytest.mark.parametrize("yaw", [0.0, 25.0])
def test_frame_surface_heights_of_a_sphere(yaw):
    """Seen along any axis through its centre, a sphere's height at (x, y) is sqrt(r^2 - x^2 - y^2)."""
    sphere = SphereSurface()
    centre = np.array([0.0, 0.0, -sphere.d])
    axes = pose_rotation(yaw, 0.0, 0.0).T  # rows: the turned x, y, z
    front = FrameSurface(sphere, _frame(axes, centre))
    xy = np.array([[0.0, 0.0], [30.0, 10.0], [-40.0, -20.0], [20.0, 50.0]])
    expected = np.sqrt(sphere.r**2 - (xy**2).sum(axis=1))
    heights = front.heights(xy, 0.0)
    seen = (front.frame.from_frame(np.c_[xy, heights]) - np.zeros(3)) @ np.array([0, 0, 1.0]) + sphere.d
    visible = np.isfinite(heights)
    assert visible[:2].all()
    np.testing.assert_allclose(heights[visible], expected[visible], atol=0.05)
    assert np.all(seen[visible] > 0)
    # a point on the far side of a turned sphere is hidden from the camera: refused, not guessed
    if yaw:
        hidden = front.heights(np.array([[75.0, 0.0]]), 0.0)  # the side turned away (x > 0)
        assert np.isnan(hidden).all()


def test_pose_angles_round_trip_and_words():
    for yaw, pitch, roll in ((20, 0, 0), (-30, 10, 5), (0, -15, -8)):
        axes = pose_rotation(yaw, pitch, roll).T
        pose = head_pose(axes, np.array([0.0, 0.0, 500.0]), np.zeros(3), "symmetry")
        assert (pose.yaw_deg, pose.pitch_deg, pose.roll_deg) == pytest.approx((yaw, pitch, roll), abs=1e-6)
    assert HeadPose(20.2, 4.6, -2.1).describe() == "turned 20° to the right, tilted 5° up, leaning 2° clockwise"
    assert HeadPose(0.3, 0.2, 0.1).describe() == "facing the camera"
    assert HeadPose(30, 40, 0).turn_deg == pytest.approx(
        np.degrees(np.arccos(np.cos(np.radians(30)) * np.cos(np.radians(40))))
    )


class ReliefSurface:
    """A mirror-symmetric face-like relief (a nose on a cylinder), turned by a known rotation, seen by a camera."""

    def __init__(self, rotation: np.ndarray, distance: float = 500.0, size: int = 500):
        self.rot, self.d = rotation, distance
        self.intr = Intrinsics.from_fov(size, size, 40.0)
        xs = np.linspace(-80, 80, 321)
        self.grid = np.meshgrid(xs, xs)

    def height(self, x, y):
        face = 60.0 - x**2 / 120.0  # a cylinder along y
        nose = 25.0 * np.exp(-(x**2) / 60.0 - (y + 20.0) ** 2 / 300.0)
        return face + nose

    def points(self, uv):
        # ray-march the turned height field (small steps, then bisection): exact enough for a test
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        ray = np.stack(
            [(uv[:, 0] - self.intr.cx) / self.intr.fx, (self.intr.cy - uv[:, 1]) / self.intr.fy, -np.ones(len(uv))], 1
        )
        out = np.full((len(uv), 3), np.nan)
        ts = np.linspace(self.d - 150, self.d + 60, 700)
        for i, r in enumerate(ray):
            p = ts[:, None] * r[None] - np.array([0.0, 0.0, -self.d])  # relative to the head's centre
            local = p @ self.rot  # into the head's frame
            above = local[:, 2] - self.height(local[:, 0], local[:, 1])
            inside = np.flatnonzero((above[:-1] > 0) & (above[1:] <= 0) & (np.abs(local[:-1, 0]) < 70))
            if inside.size:
                k = inside[0]
                t = ts[k] + (ts[k + 1] - ts[k]) * above[k] / (above[k] - above[k + 1])
                out[i] = t * r
        return out

    def project(self, xyz):
        p = np.asarray(xyz, np.float64).reshape(-1, 3)
        return np.stack(
            [self.intr.cx + self.intr.fx * p[:, 0] / -p[:, 2], self.intr.cy - self.intr.fy * p[:, 1] / -p[:, 2]], 1
        )


@pytest.mark.parametrize("yaw,roll", [(0.0, 0.0), (20.0, 8.0)])
def test_symmetry_plane_gives_yaw_and_roll(yaw, roll):
    """Landmarks off by a few millimetres: the symmetry plane still gives the rotation to a degree or so."""
    rot = pose_rotation(yaw, 0.0, roll)
    surface = ReliefSurface(rot)
    marks_head = np.array([[-32, 15, 0], [32, 15, 0], [0, -20, 0], [-25, -55, 0], [25, -55, 0]], np.float64)
    marks_head[:, 2] = surface.height(marks_head[:, 0], marks_head[:, 1])
    marks_head[3] += [3.0, 2.0, 0.0]  # a detector's error on one mouth corner
    cam = marks_head @ rot.T - np.array([0.0, 0.0, surface.d])
    uv = surface.project(cam)
    on_surface = surface.points(uv)
    frame = estimate_face_frame(surface, uv, on_surface, np.zeros(3), samples=600)
    assert frame.pose.method == "symmetry"
    x_axis = rot[:, 0]
    angle = np.degrees(np.arccos(abs(frame.axes[0] @ x_axis)))
    assert angle < 1.0, angle
