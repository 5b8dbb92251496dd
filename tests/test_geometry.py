"""Known-answer tests of the depth model and the pinhole back-projection (face3d_core.geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from face3d_core.geometry import (
    Intrinsics,
    backproject_depth,
    backproject_grid,
    disparity_to_depth,
    focal_px_from_fov,
    fov_from_focal_px,
    inverse_depth_coefficients,
    nearness_from_z,
    relative_to_metric_depth,
    sample_bilinear,
    solve_near_distance_for_ipd,
)


def ray_depth_plane(intr: Intrinsics, normal, offset) -> np.ndarray:
    """Depth along the axis where each pixel's ray meets the plane ``n . P = offset`` (camera, y down)."""
    v, u = np.mgrid[0 : intr.height, 0 : intr.width].astype(np.float64)
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], axis=-1)
    return offset / (rays @ np.asarray(normal, np.float64))


def ray_depth_sphere(intr: Intrinsics, center, radius) -> np.ndarray:
    """Depth of the near side of a sphere (camera frame, y down); NaN where the ray misses."""
    v, u = np.mgrid[0 : intr.height, 0 : intr.width].astype(np.float64)
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], axis=-1)
    c = np.asarray(center, np.float64)
    a = (rays * rays).sum(-1)
    b = -2.0 * (rays @ c)
    cc = c @ c - radius**2
    disc = b * b - 4 * a * cc
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where(disc >= 0, t, np.nan)


def to_output_frame(p_cam_ydown: np.ndarray) -> np.ndarray:
    """Camera frame (x right, y down, z forward) -> face3d output frame (x right, y up, z to viewer)."""
    return p_cam_ydown * np.array([1.0, -1.0, -1.0])


class TestIntrinsics:
    def test_fov_90_gives_half_width_focal(self):
        intr = Intrinsics.from_fov(640, 480, 90.0)
        assert intr.fx == pytest.approx(320.0)
        assert (intr.cx, intr.cy) == (319.5, 239.5)
        assert intr.fov_deg == pytest.approx(90.0)

    def test_rejects_bad_fov(self):
        with pytest.raises(ValueError):
            Intrinsics.from_fov(10, 10, 0.0)

    def test_crop_keeps_the_camera(self):
        intr = Intrinsics.from_fov(200, 100, 60.0)
        depth = ray_depth_plane(intr, (0.1, -0.2, 1.0), 500.0)
        full = backproject_grid(depth, intr)
        box = (30, 20, 150, 90)
        crop = backproject_grid(depth[20:90, 30:150], intr.cropped(box))
        np.testing.assert_allclose(crop, full[20:90, 30:150], rtol=1e-6, atol=1e-4)

    def test_resize_keeps_the_view(self):
        intr = Intrinsics.from_fov(400, 300, 50.0)
        small = intr.resized(200, 150)
        assert small.fov_deg == pytest.approx(intr.fov_deg)
        # the image centre stays the principal point
        assert (small.cx, small.cy) == (99.5, 74.5)


class TestBackprojection:
    def test_plane_at_known_depth_is_a_plane(self):
        intr = Intrinsics.from_fov(64, 48, 60.0)
        pts, idx = backproject_depth(np.full((48, 64), 1000.0), intr)
        assert pts.shape == (64 * 48, 3) and pts.dtype == np.float32
        np.testing.assert_allclose(pts[:, 2], -1000.0)
        # the image spans tan(fov / 2) * z on each side of the axis (edge pixels are 0.5 px inside)
        # column 63 is 31.5 px right of the centre; f = 32 / tan(30 deg)
        assert pts[:, 0].max() == pytest.approx(31.5 * np.tan(np.radians(30.0)) / 32.0 * 1000.0, rel=1e-5)
        assert pts[:, 1].max() == pytest.approx(23.5 * np.tan(np.radians(30.0)) / 32.0 * 1000.0, rel=1e-5)
        assert idx[0] == 0 and idx[-1] == 64 * 48 - 1

    def test_tilted_plane_points_satisfy_the_plane_equation(self):
        intr = Intrinsics.from_fov(80, 60, 70.0)
        normal = np.array([0.3, -0.2, 1.0])
        depth = ray_depth_plane(intr, normal, 800.0)
        pts, _ = backproject_depth(depth, intr)
        p_cam = to_output_frame(pts.astype(np.float64))
        np.testing.assert_allclose(p_cam @ normal, 800.0, rtol=1e-5)

    def test_sphere_depth_gives_points_at_the_radius(self):
        intr = Intrinsics.from_fov(120, 90, 60.0)
        center = np.array([20.0, -10.0, 600.0])
        depth = ray_depth_sphere(intr, center, 90.0)
        pts, _ = backproject_depth(depth, intr)
        assert len(pts) > 500
        dist = np.linalg.norm(to_output_frame(pts.astype(np.float64)) - center, axis=1)
        np.testing.assert_allclose(dist, 90.0, rtol=1e-5)

    def test_invalid_and_masked_pixels_are_skipped(self):
        intr = Intrinsics.from_fov(10, 8, 60.0)
        depth = np.full((8, 10), 100.0)
        depth[0, 0] = np.nan
        depth[1, 1] = 0.0
        mask = np.ones((8, 10), bool)
        mask[2, 2] = False
        pts, idx = backproject_depth(depth, intr, valid=mask)
        assert len(pts) == 80 - 3
        assert not np.isin([0, 11, 22], idx).any()

    def test_stride_takes_every_nth_pixel(self):
        intr = Intrinsics.from_fov(10, 8, 60.0)
        pts, idx = backproject_depth(np.full((8, 10), 100.0), intr, stride=3)
        assert len(pts) == 3 * 4
        assert set(idx % 10) == {0, 3, 6, 9} and set(idx // 10) == {0, 3, 6}

    def test_shape_mismatch_is_an_error(self):
        with pytest.raises(ValueError):
            backproject_depth(np.ones((5, 5)), Intrinsics.from_fov(6, 5, 60.0))


class TestDisparityModel:
    def test_coefficients_hit_both_anchors(self):
        a, b = inverse_depth_coefficients(2.0, 7.0, 400.0, 500.0)
        z = disparity_to_depth(np.array([7.0, 2.0]), a, b)
        np.testing.assert_allclose(z, [400.0, 500.0], rtol=1e-6)

    def test_affine_inverse_depth_is_inverted_exactly(self):
        """Relative inverse depth d = s / Z + t is recovered exactly from two anchors."""
        rng = np.random.default_rng(1)
        z_true = rng.uniform(450.0, 700.0, size=1000)
        d = 3.0e4 / z_true - 12.0
        lo_i, hi_i = np.argmin(d), np.argmax(d)
        relief = z_true[lo_i] - z_true[hi_i]
        z = relative_to_metric_depth(d, d[lo_i], d[hi_i], z_near=z_true[hi_i], relief=relief)
        np.testing.assert_allclose(z, z_true, rtol=1e-5)

    def test_nearer_is_never_inverted(self):
        d = np.linspace(0.0, 1.0, 50)
        for model in ("inverse", "affine"):
            z = relative_to_metric_depth(d, 0.1, 0.9, z_near=500.0, relief=80.0, model=model)
            assert np.all(np.diff(z) < 0), model  # larger relative inverse depth = nearer

    def test_relief_is_the_anchor_distance(self):
        z = relative_to_metric_depth(np.array([0.2, 0.8]), 0.2, 0.8, z_near=300.0, relief=120.0)
        np.testing.assert_allclose(z, [420.0, 300.0], rtol=1e-6)

    def test_affine_model_is_first_order_of_inverse(self):
        d = np.linspace(0.0, 1.0, 11)
        zi = relative_to_metric_depth(d, 0.0, 1.0, z_near=2000.0, relief=20.0, model="inverse")
        za = relative_to_metric_depth(d, 0.0, 1.0, z_near=2000.0, relief=20.0, model="affine")
        np.testing.assert_allclose(zi, za, atol=0.1)  # relief << distance: nearly equal
        zi = relative_to_metric_depth(d, 0.0, 1.0, z_near=100.0, relief=100.0, model="inverse")
        za = relative_to_metric_depth(d, 0.0, 1.0, z_near=100.0, relief=100.0, model="affine")
        assert np.abs(zi - za).max() > 5.0  # close to the camera they differ

    def test_far_background_is_clamped_finite(self):
        z = relative_to_metric_depth(np.array([-100.0, 0.0, 1.0]), 0.0, 1.0, z_near=500.0, relief=80.0)
        assert np.all(np.isfinite(z)) and z[0] == pytest.approx(500.0 + 20 * 80.0)

    def test_bad_anchors_raise(self):
        with pytest.raises(ValueError):
            inverse_depth_coefficients(1.0, 1.0, 400.0, 500.0)
        with pytest.raises(ValueError):
            relative_to_metric_depth(np.ones(3), 0.0, 1.0, z_near=500.0, relief=0.0)


class TestMillimetreScale:
    def test_eye_distance_becomes_63_mm(self):
        """Two eyes 63 mm apart on a face at a known distance: z_near is recovered."""
        intr = Intrinsics.from_fov(400, 400, 50.0)
        z_eyes = np.array([620.0, 650.0])  # a turned head: the left eye is farther
        eyes_cam = np.array([[-30.0, -20.0], [30.0, -20.0]])
        # make the 3D distance exactly 63 mm: adjust x of the second eye
        dz = z_eyes[1] - z_eyes[0]
        dx = np.sqrt(63.0**2 - dz**2)
        eyes_cam[1, 0] = eyes_cam[0, 0] + dx
        eyes_xy = eyes_cam / z_eyes[:, None] * intr.fx + np.array([intr.cx, intr.cy])
        z_near_true, relief = 580.0, 100.0
        a, b = inverse_depth_coefficients(0.0, 1.0, z_near_true, z_near_true + relief)
        eye_disp = (1.0 / z_eyes - b) / a
        z_near = solve_near_distance_for_ipd(eye_disp, eyes_xy, intr, 0.0, 1.0, relief=relief)
        assert z_near == pytest.approx(z_near_true, rel=1e-4)

    def test_degenerate_eyes_raise(self):
        intr = Intrinsics.from_fov(10, 10, 50.0)
        with pytest.raises(ValueError):
            solve_near_distance_for_ipd(np.array([1.0, 1.0]), np.zeros((2, 2)), intr, 0.0, 1.0, relief=80.0)


def test_sample_bilinear_on_a_ramp_and_with_nan():
    ramp = np.add.outer(np.arange(5.0) * 10.0, np.arange(6.0))  # value = 10 * row + col
    xy = np.array([[1.5, 2.25], [0.0, 0.0], [5.0, 4.0], [9.0, -3.0]])
    np.testing.assert_allclose(sample_bilinear(ramp, xy), [24.0, 0.0, 45.0, 5.0])
    holey = ramp.copy()
    holey[2, 2] = np.nan
    # the NaN corner is skipped and the other three share its weight
    assert sample_bilinear(holey, np.array([[2.5, 2.5]]))[0] == pytest.approx((23.0 + 32.0 + 33.0) / 3.0)
    assert np.isnan(sample_bilinear(np.full((3, 3), np.nan), np.array([[1.0, 1.0]])))[0]


class TestNearness:
    def test_robust_range_is_stretched_to_zero_one(self):
        z = np.linspace(-600.0, -500.0, 101)  # output frame: Z towards the viewer, -500 is nearest
        near = nearness_from_z(z)
        assert near.dtype == np.float32 and near.shape == (101,)
        # the 1st and 99th percentiles (-599, -501) become 0 and 1; beyond them it is clipped
        np.testing.assert_allclose(near, np.clip((z + 599.0) / 98.0, 0.0, 1.0), atol=1e-6)
        assert near[0] == 0.0 and near[-1] == 1.0 and near[50] == pytest.approx(0.5, abs=1e-6)

    def test_a_stray_point_does_not_squash_the_scale(self):
        z = np.concatenate([np.linspace(-600.0, -500.0, 200), [-100.0]])  # one point far in front
        near = nearness_from_z(z)
        assert near[-1] == 1.0
        assert near[100] == pytest.approx(0.5, abs=0.02)

    def test_distance_convention_is_the_mirror(self):
        distance = np.random.default_rng(0).uniform(400.0, 700.0, 1000)
        np.testing.assert_allclose(
            nearness_from_z(distance, z_towards_viewer=False), nearness_from_z(-distance), atol=1e-6
        )
        assert nearness_from_z(distance, z_towards_viewer=False)[np.argmin(distance)] == 1.0

    def test_percentiles_from_strided_samples(self):
        z = np.arange(1000.0)
        # every 100th value: 0, 100, ..., 900 -> percentiles 9 and 891
        near = nearness_from_z(z, max_samples=10)
        assert near[450] == pytest.approx((450.0 - 9.0) / 882.0, abs=1e-6)

    def test_constant_and_empty(self):
        np.testing.assert_array_equal(nearness_from_z(np.full(7, -500.0)), np.zeros(7, np.float32))
        empty = nearness_from_z(np.zeros(0))
        assert empty.shape == (0,) and empty.dtype == np.float32


def test_focal_length_and_field_of_view_are_one_formula_both_ways():
    """f = (W / 2) / tan(fov / 2): a 90 degree view of 1000 px has f = 500 px; the camera and intrinsics agree."""
    from face3d_core.camera import CameraFov

    assert focal_px_from_fov(1000, 90.0) == pytest.approx(500.0)
    assert fov_from_focal_px(1000, 500.0) == pytest.approx(90.0)
    for fov in (20.0, 55.0, 100.0):
        assert fov_from_focal_px(640, focal_px_from_fov(640, fov)) == pytest.approx(fov)
        intr = Intrinsics.from_fov(640, 480, fov)
        assert intr.fx == pytest.approx(focal_px_from_fov(640, fov)) and intr.fov_deg == pytest.approx(fov)
        given = CameraFov.of_size(fov, "given", (640, 480))
        assert given.focal_px == pytest.approx(intr.fx) and given.crop_fov_deg(640) == pytest.approx(fov)
    assert CameraFov.of_size(55.0, "default", None).focal_px is None
