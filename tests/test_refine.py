"""Known-answer tests of the depth clean-up (face3d_core.refine)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from face3d_core.refine import (
    depth_slope,
    edge_preserving_filter,
    fill_holes,
    flying_pixels,
    remove_outliers,
    smooth_depth,
)


def sphere_cap(size: int = 128, radius: float = 50.0, base: float = 600.0) -> np.ndarray:
    """Depth (mm) of a sphere cap in front of a plane: smooth, curved, known everywhere."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) - (size - 1) / 2
    r2 = x * x + y * y
    cap = np.sqrt(np.maximum(radius**2 - r2, 0.0))
    return (base - cap).astype(np.float32)


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean((np.asarray(a, np.float64) - b) ** 2)))


class TestOutliers:
    def test_spikes_are_removed_and_the_surface_is_kept(self):
        depth = sphere_cap()
        rng = np.random.default_rng(0)
        spikes = np.zeros(depth.shape, bool)
        inner = spikes[2:-2, 2:-2]  # the outer 2-pixel frame is never flagged (biased median there)
        inner.ravel()[rng.choice(inner.size, 60, replace=False)] = True
        noisy = depth.copy()
        noisy[spikes] += rng.choice([-1.0, 1.0], spikes.sum()) * rng.uniform(20, 60, spikes.sum())
        out = remove_outliers(noisy)
        assert np.isnan(out[spikes]).all()
        false_alarms = np.isnan(out) & ~spikes
        assert false_alarms.sum() <= 0.002 * depth.size
        np.testing.assert_array_equal(out[~np.isnan(out)], noisy[~np.isnan(out)])

    def test_the_border_frame_is_never_flagged(self):
        depth = sphere_cap()
        depth[0, 5] += 100.0
        depth[1, 1] -= 100.0
        out = remove_outliers(depth)
        assert np.isfinite(out[:2]).all() and np.isfinite(out[:, :2]).all()

    def test_a_depth_step_is_not_an_outlier(self):
        depth = np.full((60, 80), 1000.0, np.float32)
        depth[15:45, 20:60] = 600.0  # a face-sized block in front of a wall
        out = remove_outliers(depth)
        # a 5x5 median keeps straight edges; only pixels at the block's corners may be flagged
        corners = np.array([[15, 20], [15, 59], [44, 20], [44, 59]])
        flagged = np.argwhere(np.isnan(out))
        assert len(flagged) <= 16
        for pixel in flagged:
            assert np.abs(corners - pixel).max(axis=1).min() <= 1, pixel

    def test_nan_input_stays_nan_and_rejects_bad_kernel(self):
        depth = sphere_cap(32)
        depth[3, 3] = np.nan
        assert np.isnan(remove_outliers(depth)[3, 3])
        with pytest.raises(ValueError):
            remove_outliers(depth, kernel_size=7)


class TestHoles:
    def test_holes_in_a_plane_are_filled_with_the_plane(self):
        y, x = np.mgrid[0:100, 0:120].astype(np.float32)
        plane = 500.0 + 0.8 * x - 0.5 * y
        holey = plane.copy()
        holey[40:55, 50:70] = np.nan
        holey[10, 10] = np.nan
        filled = fill_holes(holey)
        assert np.isfinite(filled).all()
        np.testing.assert_array_equal(filled[np.isfinite(holey)], plane[np.isfinite(holey)])
        assert np.abs(filled - plane).max() < 2.0  # 1 % of the 80 mm tilt across the hole... at most 2 mm
        assert abs(filled[10, 10] - plane[10, 10]) < 0.5

    def test_border_and_large_holes_can_be_kept(self):
        depth = np.full((50, 50), 700.0, np.float32)
        depth[:, :5] = np.nan  # outside the object
        depth[20:23, 20:23] = np.nan  # 9 px interior hole
        depth[30:40, 30:40] = np.nan  # 100 px interior hole
        out = fill_holes(depth, keep_border_holes=True)
        assert np.isnan(out[:, :5]).all()
        assert np.isfinite(out[20:23, 20:23]).all() and np.isfinite(out[30:40, 30:40]).all()
        out = fill_holes(depth, keep_border_holes=True, max_hole_px=50)
        assert np.isfinite(out[20:23, 20:23]).all() and np.isnan(out[30:40, 30:40]).all()

    def test_all_nan_stays_nan(self):
        assert np.isnan(fill_holes(np.full((4, 4), np.nan))).all()


class TestSmoothing:
    def test_smoothing_lowers_the_error_of_a_noisy_sphere(self):
        truth = sphere_cap(128, radius=200.0)  # the sphere covers the whole map
        rng = np.random.default_rng(3)
        noisy = truth + rng.normal(0.0, 2.0, truth.shape).astype(np.float32)
        before = rms(noisy, truth)
        errors = [rms(smooth_depth(noisy, s), truth) for s in (1.0, 2.0)]
        assert errors[0] < 0.6 * before
        assert errors[1] < errors[0]

    def test_sigma_zero_is_identity(self):
        depth = sphere_cap(20)
        np.testing.assert_array_equal(smooth_depth(depth, 0.0), depth)

    def test_matches_scipy_gaussian_on_full_valid_maps(self):
        rng = np.random.default_rng(4)
        depth = rng.normal(500, 5, (60, 70)).astype(np.float32)
        ours = smooth_depth(depth, 2.0)
        ref = ndimage.gaussian_filter(depth.astype(np.float64), 2.0, mode="reflect", truncate=3.0)
        # interior equal up to kernel discretisation
        np.testing.assert_allclose(ours[8:-8, 8:-8], ref[8:-8, 8:-8], atol=0.05)

    def test_missing_pixels_do_not_leak(self):
        """A constant face next to a far background (masked out) stays exactly constant."""
        depth = np.full((40, 40), 600.0, np.float32)
        depth[:, 25:] = 2000.0
        valid = np.zeros((40, 40), bool)
        valid[:, :25] = True
        out = smooth_depth(depth, 3.0, valid=valid)
        np.testing.assert_allclose(out[:, :25], 600.0, rtol=1e-6)
        assert np.isnan(out[:, 25:]).all()


class TestEdgePreserving:
    def test_keeps_a_step_sharp_while_removing_noise(self):
        rng = np.random.default_rng(5)
        truth = np.full((60, 60), 700.0, np.float32)
        truth[:, 30:] = 600.0
        noisy = truth + rng.normal(0, 1.0, truth.shape).astype(np.float32)
        bil = edge_preserving_filter(noisy, sigma_space=3.0, sigma_range=0.05)
        gauss = smooth_depth(noisy, 3.0)
        flat = np.s_[:, 5:24]
        assert rms(bil[flat], truth[flat]) < 0.6 * rms(noisy[flat], truth[flat])
        edge = np.s_[:, 27:33]
        assert rms(bil[edge], truth[edge]) < 0.3 * rms(gauss[edge], truth[edge])

    def test_invalid_pixels_stay_invalid(self):
        depth = sphere_cap(30)
        depth[0, 0] = np.nan
        assert np.isnan(edge_preserving_filter(depth)[0, 0])


class TestFlyingPixels:
    def test_the_ramp_between_face_and_wall_is_flagged(self):
        focal = 500.0
        depth = np.full((40, 60), 1200.0, np.float32)
        depth[:, :28] = 600.0
        depth[:, 28] = 800.0  # smeared pixels between the two
        depth[:, 29] = 1000.0
        flying = flying_pixels(depth, focal)
        assert flying[:, 28].all() and flying[:, 29].all()
        assert not flying[:, :27].any() and not flying[:, 31:].any()

    def test_a_steep_but_real_surface_is_kept(self):
        focal = 500.0
        x = np.arange(80, dtype=np.float32)
        # a plane at 70 degrees to the image plane: slope tan(70) = 2.7 per footprint
        z = 600.0 * np.exp(np.tan(np.radians(70.0)) * x / focal)  # dz = tan(a) * z / f per pixel
        depth = np.tile(z, (10, 1))
        assert depth_slope(depth, focal)[:, 1:-1].max() == pytest.approx(np.tan(np.radians(70.0)), rel=0.01)
        assert not flying_pixels(depth, focal).any()
